//! Consent and recording in the room. Each participant says whether they agree to be
//! recorded (no, until they say yes). Facilitators start and stop a recording session. Who
//! is recorded at any moment is worked out here, after every change, and only here:
//!
//! recorded = a session runs && they consent && they may publish
//!            && (the session is not `presentation_only` || a presentation runs).
//!
//! A presentation is an organisation's or a tactic's segment of the agenda, while the agenda
//! runs or is paused. After every change the room emits [`Output::Record`] for each
//! participant whose state changed (diffs only, as the audio gates do), and everyone gets a
//! `recording` message if the picture changed. Every change of consent, the `true` of a join
//! included, is an [`Output::Consent`] for the ledger.

use super::moderation::SERVER;
use super::{ConnId, Output, Reject, Room};
use crate::Now;
use crate::agenda::SegmentKind;
use crate::roles::{Action, allows};
use crate::wire::{ErrorCode, RecordingView, ServerMsg};

/// One change of someone's consent, for the room's consent ledger.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ConsentEntry {
    /// The room.
    pub room: String,
    /// The recording session running then, if one was.
    pub session: Option<String>,
    /// Their participant id.
    pub participant: String,
    /// Their display name then.
    pub name: String,
    /// The invite they joined with, if any: it names the person across rejoins.
    pub invite: Option<String>,
    /// `true` for consent given, `false` for consent withdrawn.
    pub granted: bool,
    /// Unix ms.
    pub ts: i64,
}

/// A recording session, as the store keeps it.
///
/// Its id is made here: `{room}-{unix ms}-{n}`, `n` counting the sessions of this room's
/// task. The room id is the server's own random id, so the id is safe as a file name, and
/// two tasks of one room never start a session in the same millisecond.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RecordingSession {
    /// The session's id.
    pub id: String,
    /// The room.
    pub room: String,
    /// Unix ms.
    pub started_at: i64,
    /// Whether it records only during presentations.
    pub presentation_only: bool,
}

impl Room {
    /// Call when a connection sends `consent`. Sending one's current state changes nothing.
    pub fn handle_consent(&mut self, now: Now, conn: ConnId, granted: bool) {
        let Some(p) = self.seated_mut(conn) else {
            return;
        };
        if p.info.consent == granted {
            return;
        }
        p.info.consent = granted;
        let participant = p.info.clone();
        self.note_consent(now, &participant.id);
        self.broadcast(None, ServerMsg::ParticipantUpdated { participant });
        self.refresh_recording(None);
    }

    /// Call when a connection sends `recording`: a facilitator starts or stops it.
    pub fn handle_recording(&mut self, now: Now, conn: ConnId, on: bool, presentation_only: bool) {
        let Some(me) = self.require(conn, Action::Record) else {
            return;
        };
        let refused = |why| Reject::new(ErrorCode::RecordingState, why);
        let (action, detail) = match (on, self.recording.is_some()) {
            (true, false) => {
                self.start_recording(now, presentation_only);
                let id = self.recording.as_ref().map_or("", |s| s.id.as_str());
                let only = if presentation_only {
                    ", presentations only"
                } else {
                    ""
                };
                ("record_start", format!("session {id}{only}"))
            }
            (false, true) => {
                let id = self
                    .recording
                    .as_ref()
                    .map_or(String::new(), |s| s.id.clone());
                self.end_recording(now);
                ("record_stop", format!("session {id}"))
            }
            (true, true) => return self.reject(conn, refused("already recording; stop first")),
            (false, false) => return self.reject(conn, refused("not recording")),
        };
        self.audit(now, &me, action, None, Some(detail));
    }

    /// The recording now, as clients see it.
    pub fn recording_view(&self) -> RecordingView {
        match &self.recording {
            Some(session) => RecordingView {
                on: true,
                presentation_only: session.presentation_only,
                session: Some(session.id.clone()),
                recorded: self.recorded.clone(),
            },
            None => RecordingView::default(),
        }
    }

    fn start_recording(&mut self, now: Now, presentation_only: bool) {
        self.recordings_started += 1;
        let room = self.config.info.id.clone();
        let session = RecordingSession {
            id: format!("{room}-{}-{}", now.unix_ms, self.recordings_started),
            room,
            started_at: now.unix_ms,
            presentation_only,
        };
        let id = session.id.clone();
        self.outputs
            .push_back(Output::RecordingStarted(session.clone()));
        self.recording = Some(session);
        // Everyone hears of the start, whoever it records.
        let next = self.recorded_now();
        self.set_recorded(next, &id);
        self.broadcast_recording(None);
    }

    /// Call when the room stops (the server shuts down): a recording session under way ends
    /// now, as a stop would end it, and everyone still connected is told.
    pub fn handle_shutdown(&mut self, now: Now) {
        self.end_recording_by_server(now, "the server stopped");
    }

    /// End a session under way that no facilitator stopped; the audit log says why, with
    /// `server` as the actor.
    pub(super) fn end_recording_by_server(&mut self, now: Now, why: &str) {
        if let Some(id) = self.end_recording(now) {
            let detail = format!("session {id}: {why}");
            self.audit(now, SERVER, "record_stop", None, Some(detail));
        }
    }

    /// End the session: nobody is recorded any more, then the store marks it ended.
    /// Returns its id, if one ran.
    pub(super) fn end_recording(&mut self, now: Now) -> Option<String> {
        let session = self.recording.take()?;
        let id = session.id.clone();
        self.set_recorded(Vec::new(), &session.id);
        self.outputs.push_back(Output::RecordingEnded {
            session: session.id,
            ended_at: now.unix_ms,
        });
        self.broadcast_recording(None);
        Some(id)
    }

    /// A ledger entry for `id`'s consent as it is now.
    pub(super) fn note_consent(&mut self, now: Now, id: &str) {
        let p = &self.participants[id];
        let entry = ConsentEntry {
            room: self.config.info.id.clone(),
            session: self.recording.as_ref().map(|s| s.id.clone()),
            participant: id.to_string(),
            name: p.info.name.clone(),
            invite: p.invite.clone(),
            granted: p.info.consent,
            ts: now.unix_ms,
        };
        self.outputs.push_back(Output::Consent(entry));
    }

    /// Work out who is recorded now; emit [`Output::Record`] for each change, and tell
    /// everyone but `except` (a joiner, who gets it in `joined`) if anything changed.
    pub(super) fn refresh_recording(&mut self, except: Option<&str>) {
        let Some(session) = self.recording.as_ref().map(|s| s.id.clone()) else {
            return;
        };
        let now_recorded = self.recorded_now();
        if now_recorded != self.recorded {
            self.set_recorded(now_recorded, &session);
            self.broadcast_recording(except);
        }
    }

    /// Participant ids to record now, in join order.
    fn recorded_now(&self) -> Vec<String> {
        let Some(session) = &self.recording else {
            return Vec::new();
        };
        if session.presentation_only && !self.in_presentation() {
            return Vec::new();
        }
        self.order
            .iter()
            .filter(|id| {
                let info = &self.participants[*id].info;
                info.consent && allows(info.role, Action::Publish)
            })
            .cloned()
            .collect()
    }

    /// Whether the agenda is in an organisation's or a tactic's presentation.
    fn in_presentation(&self) -> bool {
        self.agenda.current().is_some_and(|(_, segment)| {
            matches!(
                segment.kind,
                SegmentKind::Organisation | SegmentKind::Tactic
            )
        })
    }

    /// Replace the recorded set with `next`, emitting a `Record` per change: stops first,
    /// so a withdrawal is carried out before anything else.
    fn set_recorded(&mut self, next: Vec<String>, session: &str) {
        let stopped: Vec<String> = self
            .recorded
            .iter()
            .filter(|id| !next.contains(id))
            .cloned()
            .collect();
        let started: Vec<String> = next
            .iter()
            .filter(|id| !self.recorded.contains(id))
            .cloned()
            .collect();
        for (ids, on) in [(stopped, false), (started, true)] {
            for participant in ids {
                self.outputs.push_back(Output::Record {
                    participant,
                    session: session.to_string(),
                    on,
                });
            }
        }
        self.recorded = next;
    }

    fn broadcast_recording(&mut self, except: Option<&str>) {
        let recording = self.recording_view();
        self.broadcast(except, ServerMsg::Recording { recording });
    }
}
