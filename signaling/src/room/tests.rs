//! Scenario tests of the room core. Every test drives the room through [`Harness`], so an API
//! change touches one place.

use std::time::{Duration, Instant};

use super::*;

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
        self.room
            .handle_join(self.now, conn, PROTOCOL_VERSION, name);
        self.drain()
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
    h.room.handle_join(h.now, 1, 99, "Ann");
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
fn chat_is_broadcast_stored_and_limited() {
    let mut h = Harness::new(5);
    h.join(1, "Ann");
    h.join(2, "Bo");
    h.room.handle_chat(h.now, 1, "hi all");
    let out = h.drain();
    let stored: Vec<_> = out
        .iter()
        .filter_map(|o| match o {
            Output::StoreChat(m) => Some(m),
            _ => None,
        })
        .collect();
    assert_eq!(stored.len(), 1);
    assert_eq!(
        (
            stored[0].seq,
            stored[0].from.as_str(),
            stored[0].text.as_str()
        ),
        (1, "p1", "hi all")
    );
    for conn in [1, 2] {
        assert!(
            matches!(&Harness::sent_to(&out, conn)[..], [ServerMsg::Chat { message }] if message.text == "hi all")
        );
    }
    h.room.handle_chat(h.now, 1, &"é".repeat(MAX_CHAT_CHARS));
    assert!(
        Harness::error_code(&h.drain(), 1).is_none(),
        "the limit counts characters, not bytes"
    );
    h.room
        .handle_chat(h.now, 1, &"a".repeat(MAX_CHAT_CHARS + 1));
    assert_eq!(
        Harness::error_code(&h.drain(), 1),
        Some(ErrorCode::ChatTooLong)
    );
    h.room.handle_chat(h.now, 1, " \n ");
    assert_eq!(
        Harness::error_code(&h.drain(), 1),
        Some(ErrorCode::ChatEmpty)
    );
}

#[test]
fn chat_rate_limit_recovers_with_time() {
    let mut h = Harness::new(5);
    h.join(1, "Ann");
    for i in 0..5 {
        h.room.handle_chat(h.now, 1, &format!("m{i}"));
        assert_eq!(Harness::error_code(&h.drain(), 1), None);
    }
    h.room.handle_chat(h.now, 1, "one too many");
    assert_eq!(
        Harness::error_code(&h.drain(), 1),
        Some(ErrorCode::RateLimited)
    );
    h.advance(CHAT_WINDOW);
    h.room.handle_chat(h.now, 1, "later");
    assert_eq!(Harness::error_code(&h.drain(), 1), None);
}

#[test]
fn late_joiner_gets_last_200_messages_and_seq_continues() {
    let history: Vec<ChatMessage> = (1..=250)
        .map(|seq| ChatMessage {
            seq,
            from: "p9".into(),
            name: "Old".into(),
            text: format!("m{seq}"),
            ts: seq,
        })
        .collect();
    let mut h = Harness::with_history(5, history);
    let out = h.join(1, "Ann");
    match &Harness::sent_to(&out, 1)[..] {
        [ServerMsg::Joined { chat, .. }] => {
            assert_eq!(chat.len(), CHAT_HISTORY_LEN);
            assert_eq!((chat[0].seq, chat[199].seq), (51, 250));
        }
        other => panic!("{other:?}"),
    }
    h.room.handle_chat(h.now, 1, "new");
    let out = h.drain();
    assert!(
        out.iter()
            .any(|o| matches!(o, Output::StoreChat(m) if m.seq == 251))
    );
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
