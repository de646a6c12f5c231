//! The room task's part in recording: it turns the core's [`Output::Record`] into commands,
//! as it does the gates. For each audio and video track of a recorded participant, the
//! recorder is told which file to write, then the engine to hand it the track's packets; to
//! stop, the other way round. A track published while its publisher is recorded is recorded
//! from its start.
//!
//! [`Output::Record`]: signaling::room::Output::Record

use signaling::wire::{MediaKind, TrackInfo};

use super::RoomTask;
use crate::media::TrackKey;
use crate::recorder::FileSpec;

/// The kinds of track the recorder writes.
const RECORDED_KINDS: [MediaKind; 2] = [MediaKind::Audio, MediaKind::Video];

impl RoomTask {
    /// Start or stop recording `participant`'s tracks, those to come included.
    pub(super) fn record(&mut self, participant: String, session: String, on: bool) {
        let theirs: Vec<(TrackKey, TrackInfo)> = self
            .tracks
            .iter()
            .filter(|(_, (_, publisher, _))| *publisher == participant)
            .map(|(id, (key, publisher, kind))| {
                let info = TrackInfo {
                    id: id.clone(),
                    participant: publisher.clone(),
                    kind: *kind,
                };
                (*key, info)
            })
            .collect();
        if on {
            for (key, info) in theirs {
                self.tap(key, &info, session.clone());
            }
            self.recorded.insert(participant, session);
        } else {
            self.stop_recording(&participant);
        }
    }

    /// Stop recording `participant`'s tracks.
    pub(super) fn stop_recording(&mut self, participant: &str) {
        self.recorded.remove(participant);
        let theirs: Vec<TrackKey> = self
            .tracks
            .values()
            .filter(|(_, publisher, _)| publisher == participant)
            .map(|(key, _, _)| *key)
            .collect();
        for key in theirs {
            self.untap(key);
        }
    }

    /// Record `track` (key `key`) in `session`, if it is of a kind the recorder writes. The
    /// recorder learns of the file before the engine sends the first packet.
    pub(super) fn tap(&mut self, key: TrackKey, track: &TrackInfo, session: String) {
        if !RECORDED_KINDS.contains(&track.kind) || !self.taps.insert(key) {
            return;
        }
        let spec = FileSpec {
            session,
            participant: track.participant.clone(),
            track: track.id.clone(),
            kind: track.kind,
        };
        self.registry.recorder.open(key, spec);
        self.registry.media.record(key, true);
    }

    /// Stop recording `key`, if it is recorded: the engine first, then the file ends.
    pub(super) fn untap(&mut self, key: TrackKey) {
        if self.taps.remove(&key) {
            self.registry.media.record(key, false);
            self.registry.recorder.close(key);
        }
    }

    /// Stop every recording of this room (its task is ending).
    pub(super) fn untap_all(&mut self) {
        let keys: Vec<TrackKey> = self.taps.iter().copied().collect();
        for key in keys {
            self.untap(key);
        }
        self.recorded.clear();
    }
}
