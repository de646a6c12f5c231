//! RTCP the engine writes on its own: each publisher's sender reports passed on to its
//! subscribers in their terms, and keyframe requests to publishers.
//!
//! A subscriber's connection makes no sender reports of its own (`Flow::Relay`): the engine
//! writes them from the publisher's, with the publisher's clock mapping (what a receiver
//! plays audio and video in sync by), in the subscriber's SSRC and RTP clock, with the counts
//! of what was sent to that subscriber.

use std::time::{Duration, Instant};

use rtc::peer_connection::message::{RTCMessage, TaggedRTCMessage};
use rtc::rtcp::payload_feedbacks::picture_loss_indication::PictureLossIndication;
use rtc::rtcp::sender_report::SenderReport;
use rtc::sansio::Protocol;

use super::forward::ClockMapping;
use super::{Engine, PcId, SessionId};
use crate::media::values::TrackKey;

/// Keyframe requests to one publisher's track are at most this frequent: every subscriber
/// that joins or loses a packet asks, and each keyframe costs the publisher's uplink.
pub(super) const KEYFRAME_INTERVAL: Duration = Duration::from_millis(300);

impl Engine {
    /// A publisher's sender report about `track` (webrtc's id on its `publish`): keep its
    /// clock mapping, and pass it on to every subscriber of the track in its own terms.
    pub(super) fn relay_report(
        &mut self,
        now: Instant,
        session_id: SessionId,
        track: &str,
        sr: &SenderReport,
    ) {
        let Some(key) = self
            .sessions
            .get(&session_id)
            .and_then(|s| s.published.get(track))
        else {
            return; // no packet of the track yet: nobody receives it
        };
        let Some(published) = self.producers.get_mut(key) else {
            return;
        };
        if sr.ssrc != published.media_ssrc {
            return; // about the track's retransmission stream, which we do not forward
        }
        let mapping = ClockMapping {
            ntp_time: sr.ntp_time,
            rtp_time: sr.rtp_time,
        };
        published.report = Some(mapping);
        if !published.open {
            return; // the track sends nothing now
        }
        let sent = published.sent;
        let reports: Vec<(PcId, SenderReport)> = published
            .consumers
            .iter()
            .filter(|c| c.payload_type != 0)
            .map(|c| (c.pc, c.report(sent, mapping)))
            .collect();
        for (pc_id, report) in reports {
            self.write_report(now, pc_id, report);
        }
    }

    pub(super) fn write_report(&mut self, now: Instant, pc_id: PcId, report: SenderReport) {
        let Some(pc) = self.pcs.get_mut(&pc_id) else {
            return;
        };
        let msg = TaggedRTCMessage {
            now,
            message: RTCMessage::RtcpPacket(String::new(), vec![Box::new(report)]),
        };
        if let Err(e) = pc.rtc.handle_write(msg) {
            tracing::trace!(%e, "sender report");
            return;
        }
        self.wrote(pc_id);
    }

    /// A subscriber asked for a keyframe of `track` (our track id).
    pub(super) fn keyframe_requested(&mut self, now: Instant, session_id: SessionId, track: &str) {
        let key = self.sessions.get(&session_id).and_then(|s| {
            s.downstream
                .iter()
                .find(|(_, d)| d.track_id == track)
                .map(|(key, _)| *key)
        });
        if let Some(key) = key {
            self.request_keyframe(now, key);
        }
    }

    /// Ask a track's publisher for a keyframe, unless its gate is closed or it was asked
    /// less than [`KEYFRAME_INTERVAL`] ago.
    pub(super) fn request_keyframe(&mut self, now: Instant, key: TrackKey) {
        let Some(published) = self.producers.get_mut(&key) else {
            return;
        };
        if !published.open
            || published
                .last_keyframe_request
                .is_some_and(|t| now.saturating_duration_since(t) < KEYFRAME_INTERVAL)
        {
            return;
        }
        published.last_keyframe_request = Some(now);
        let (pc_id, receiver, media_ssrc) = (
            published.publisher_pc,
            published.receiver,
            published.media_ssrc,
        );
        if let Some(pc) = self.pcs.get_mut(&pc_id)
            && let Some(mut r) = pc.rtc.rtp_receiver(receiver)
        {
            let pli = PictureLossIndication {
                sender_ssrc: 0,
                media_ssrc,
            };
            if let Err(e) = r.write_rtcp(now, vec![Box::new(pli)]) {
                tracing::debug!(%e, "PLI to publisher");
            }
            self.mark_flush(pc_id);
        }
    }
}
