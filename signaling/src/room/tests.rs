//! Scenario tests of the room core. Every test drives the room through [`Harness`], so an API
//! change touches one place.

use std::time::{Duration, Instant};

use super::*;

mod admission;
mod chat;
mod floor;
mod moderation;
mod recording;

struct Harness {
    room: Room,
    now: Now,
}

impl Harness {
    fn new(capacity: u32) -> Self {
        Self::with_history(capacity, vec![])
    }

    fn with_history(capacity: u32, history: Vec<ChatMessage>) -> Self {
        let info = RoomInfo {
            id: "r1".into(),
            title: "Skill Share".into(),
            capacity,
        };
        let room = Room::new(RoomConfig {
            info,
            ice_servers: vec![],
            history,
            chat_burst: 5,
            snapshot: Snapshot {
                rev: 0,
                policy: crate::policy::RoomPolicy::new(capacity),
                reservations: vec![],
            },
            agenda: None,
        });
        Harness {
            room,
            now: Now {
                instant: Instant::now(),
                unix_ms: 1_700_000_000_000,
            },
        }
    }

    fn advance(&mut self, d: Duration) {
        self.now.instant += d;
        self.now.unix_ms += d.as_millis() as i64;
    }

    fn drain(&mut self) -> Vec<Output> {
        std::iter::from_fn(|| self.room.poll_output()).collect()
    }

    fn join(&mut self, conn: ConnId, name: &str) -> Vec<Output> {
        self.join_as(conn, name, Ticket::open_link())
    }

    fn join_as(&mut self, conn: ConnId, name: &str, ticket: Ticket) -> Vec<Output> {
        self.room
            .handle_join(self.now, conn, Join::named(name), ticket);
        self.drain()
    }

    /// Join through the open link, agreeing to be recorded.
    fn join_consenting(&mut self, conn: ConnId, name: &str) -> Vec<Output> {
        let join = Join {
            consent: true,
            ..Join::named(name)
        };
        self.room
            .handle_join(self.now, conn, join, Ticket::open_link());
        self.drain()
    }

    fn chat(&mut self, conn: ConnId, text: &str) -> Vec<Output> {
        self.room.handle_chat(self.now, conn, text);
        self.drain()
    }

    fn chat_stored(&mut self, seq: i64) -> Vec<Output> {
        self.room.handle_chat_stored(self.now, seq);
        self.drain()
    }

    fn chat_failed(&mut self, seq: i64) -> Vec<Output> {
        self.room.handle_chat_failed(self.now, seq);
        self.drain()
    }

    /// The messages the room asked to store.
    fn to_store(outputs: &[Output]) -> Vec<ChatMessage> {
        outputs
            .iter()
            .filter_map(|o| match o {
                Output::StoreChat(m) => Some(m.clone()),
                _ => None,
            })
            .collect()
    }

    /// The `(seq, text)` of each chat message sent to `to`.
    fn chats_to(outputs: &[Output], to: ConnId) -> Vec<(i64, String)> {
        Self::sent_to(outputs, to)
            .into_iter()
            .filter_map(|m| match m {
                ServerMsg::Chat { message } => Some((message.seq, message.text)),
                _ => None,
            })
            .collect()
    }

    fn sent_to(outputs: &[Output], to: ConnId) -> Vec<ServerMsg> {
        outputs
            .iter()
            .filter_map(|o| match o {
                Output::Send { conn, msg } if *conn == to => Some(msg.clone()),
                _ => None,
            })
            .collect()
    }

    fn error_code(outputs: &[Output], to: ConnId) -> Option<ErrorCode> {
        Self::sent_to(outputs, to)
            .into_iter()
            .find_map(|m| match m {
                ServerMsg::Error { code, .. } => Some(code),
                _ => None,
            })
    }
}

#[test]
fn join_admits_and_tells_everyone() {
    let mut h = Harness::new(10);
    let out = h.join(1, "Ann");
    assert!(out.contains(&Output::Admitted {
        conn: 1,
        participant: "p1".into()
    }));
    let out = h.join(2, "  Bo  ");
    let to_ann = Harness::sent_to(&out, 1);
    assert!(
        matches!(&to_ann[..], [ServerMsg::ParticipantJoined { participant }] if participant.name == "Bo")
    );
    match &Harness::sent_to(&out, 2)[..] {
        [
            ServerMsg::Joined {
                you, participants, ..
            },
        ] => {
            assert_eq!(you, "p2");
            let names: Vec<_> = participants.iter().map(|p| p.name.as_str()).collect();
            assert_eq!(names, ["Ann", "Bo"]);
        }
        other => panic!("Bo got {other:?}"),
    }
    assert_eq!(h.room.len(), 2);
}

#[test]
fn capacity_is_exact() {
    let mut h = Harness::new(2);
    h.join(1, "A");
    h.join(2, "B");
    let out = h.join(3, "C");
    assert_eq!(Harness::error_code(&out, 3), Some(ErrorCode::RoomFull));
    assert!(!out.iter().any(|o| matches!(o, Output::Admitted { .. })));
    assert_eq!(h.room.len(), 2);
    h.room.handle_leave(h.now, 2, LeaveReason::Disconnected);
    h.drain();
    let out = h.join(3, "C");
    assert!(out.contains(&Output::Admitted {
        conn: 3,
        participant: "p3".into()
    }));
}

#[test]
fn bad_joins_are_refused_with_codes() {
    let mut h = Harness::new(5);
    h.room.handle_join(
        h.now,
        1,
        Join {
            version: 99,
            ..Join::named("Ann")
        },
        Ticket::open_link(),
    );
    assert_eq!(
        Harness::error_code(&h.drain(), 1),
        Some(ErrorCode::UnsupportedVersion)
    );
    assert_eq!(
        Harness::error_code(&h.join(1, "   "), 1),
        Some(ErrorCode::BadName)
    );
    assert_eq!(
        Harness::error_code(&h.join(1, &"x".repeat(65)), 1),
        Some(ErrorCode::BadName)
    );
    assert_eq!(
        Harness::error_code(&h.join(1, "\u{202E}Ann"), 1),
        Some(ErrorCode::BadName)
    );
    h.join(1, "Ann");
    assert_eq!(
        Harness::error_code(&h.join(1, "Ann again"), 1),
        Some(ErrorCode::AlreadyJoined)
    );
    assert_eq!(h.room.len(), 1);
}

/// The order docs/protocol.md gives: already joined, then version, then name and capacity.
#[test]
fn join_checks_run_in_the_documented_order() {
    let mut h = Harness::new(1);
    h.room.handle_join(
        h.now,
        1,
        Join {
            version: 99,
            ..Join::named("")
        },
        Ticket::open_link(),
    );
    assert_eq!(
        Harness::error_code(&h.drain(), 1),
        Some(ErrorCode::UnsupportedVersion),
        "the version before the name"
    );
    h.join(1, "Ann");
    h.room.handle_join(
        h.now,
        1,
        Join {
            version: 99,
            ..Join::named("Ann again")
        },
        Ticket::open_link(),
    );
    assert_eq!(
        Harness::error_code(&h.drain(), 1),
        Some(ErrorCode::AlreadyJoined),
        "already joined before the version"
    );
    h.room.handle_join(
        h.now,
        2,
        Join {
            version: 99,
            ..Join::named("Bo")
        },
        Ticket::open_link(),
    );
    assert_eq!(
        Harness::error_code(&h.drain(), 2),
        Some(ErrorCode::UnsupportedVersion),
        "the version before the capacity"
    );
    assert_eq!(h.room.len(), 1);
}

#[test]
fn messages_before_join_are_refused() {
    let mut h = Harness::new(5);
    h.room.handle_chat(h.now, 7, "hello");
    assert_eq!(
        Harness::error_code(&h.drain(), 7),
        Some(ErrorCode::NotJoined)
    );
    h.room.handle_media_state(h.now, 7, true, true);
    assert_eq!(
        Harness::error_code(&h.drain(), 7),
        Some(ErrorCode::NotJoined)
    );
    // A close from a never-joined connection is a no-op, not a crash.
    h.room.handle_leave(h.now, 7, LeaveReason::Disconnected);
    assert!(h.drain().is_empty());
}

#[test]
fn tracks_are_routed_to_everyone_else_and_cleaned_up() {
    let mut h = Harness::new(5);
    h.join(1, "Ann");
    h.join(2, "Bo");
    h.room
        .handle_track_published(h.now, "p1", "p1-a", MediaKind::Audio);
    let out = h.drain();
    let subs: Vec<_> = out
        .iter()
        .filter(|o| matches!(o, Output::Subscribe { .. }))
        .collect();
    assert_eq!(subs.len(), 1);
    assert!(
        matches!(subs[0], Output::Subscribe { subscriber, track } if subscriber == "p2" && track.id == "p1-a")
    );
    // A late joiner is subscribed to what already exists and told about it in `joined`.
    let out = h.join(3, "Cy");
    assert!(
        out.iter()
            .any(|o| matches!(o, Output::Subscribe { subscriber, .. } if subscriber == "p3"))
    );
    assert!(
        matches!(&Harness::sent_to(&out, 3)[..], [ServerMsg::Joined { tracks, .. }] if tracks.len() == 1)
    );
    // When the publisher leaves, every consumer is removed and the others are told.
    h.room.handle_leave(h.now, 1, LeaveReason::Disconnected);
    let out = h.drain();
    let unsubs: Vec<_> = out
        .iter()
        .filter_map(|o| match o {
            Output::Unsubscribe { subscriber, .. } => Some(subscriber.as_str()),
            _ => None,
        })
        .collect();
    assert_eq!(unsubs, ["p2", "p3"]);
    assert!(out.contains(&Output::CloseMedia {
        participant: "p1".into()
    }));
    assert!(
        Harness::sent_to(&out, 2).contains(&ServerMsg::ParticipantLeft {
            id: "p1".into(),
            reason: LeaveReason::Disconnected
        })
    );
    assert_eq!(h.room.len(), 2, "Bo and Cy remain");
}

/// A participant's fifth track is refused: never forwarded, its publisher told, and nobody
/// else hears of it. One that ends frees its place.
#[test]
fn a_participant_publishes_at_most_four_tracks() {
    let mut h = Harness::new(5);
    h.join(1, "Ann");
    h.join(2, "Bo");
    h.drain();
    for n in 1..=MAX_TRACKS_PER_PARTICIPANT {
        h.room
            .handle_track_published(h.now, "p1", &format!("p1-t{n}"), MediaKind::Audio);
    }
    let out = h.drain();
    let subscribed = out
        .iter()
        .filter(|o| matches!(o, Output::Subscribe { .. }))
        .count();
    assert_eq!(subscribed, MAX_TRACKS_PER_PARTICIPANT);
    h.room
        .handle_track_published(h.now, "p1", "p1-t5", MediaKind::Video);
    let out = h.drain();
    assert!(
        matches!(&out[..], [Output::RefuseTrack { track_id }, Output::Send { conn: 1, .. }] if track_id == "p1-t5"),
        "{out:?}"
    );
    assert_eq!(Harness::error_code(&out, 1), Some(ErrorCode::TooManyTracks));
    assert!(
        Harness::sent_to(&out, 2).is_empty(),
        "Bo hears nothing of it"
    );
    // Another participant has places of their own, and an ended track frees one.
    h.room
        .handle_track_published(h.now, "p2", "p2-t1", MediaKind::Audio);
    assert!(
        h.drain()
            .iter()
            .any(|o| matches!(o, Output::Subscribe { subscriber, .. } if subscriber == "p1"))
    );
    h.room.handle_track_unpublished(h.now, "p1-t1");
    h.drain();
    h.room
        .handle_track_published(h.now, "p1", "p1-t6", MediaKind::Audio);
    assert!(
        h.drain()
            .iter()
            .any(|o| matches!(o, Output::Subscribe { track, .. } if track.id == "p1-t6"))
    );
}

#[test]
fn tracks_from_departed_participants_are_ignored() {
    let mut h = Harness::new(5);
    h.join(1, "Ann");
    h.room.handle_leave(h.now, 1, LeaveReason::Left);
    let out = h.drain();
    assert!(Harness::sent_to(&out, 1).contains(&ServerMsg::Left {}));
    h.room
        .handle_track_published(h.now, "p1", "p1-a", MediaKind::Audio);
    assert!(h.drain().is_empty());
    assert!(h.room.is_empty());
}

#[test]
fn media_state_is_broadcast_only_on_change() {
    let mut h = Harness::new(5);
    h.join(1, "Ann");
    h.join(2, "Bo");
    h.room.handle_media_state(h.now, 1, true, false);
    let out = h.drain();
    assert!(
        matches!(&Harness::sent_to(&out, 2)[..], [ServerMsg::ParticipantUpdated { participant }] if participant.audio && !participant.video)
    );
    h.room.handle_media_state(h.now, 1, true, false);
    assert!(h.drain().is_empty());
}
