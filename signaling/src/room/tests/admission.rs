//! Seats: exact capacity with reserved seats and role caps, the ordered waiting room, admit,
//! decline, auto-admit and the lock.

use super::*;
use crate::policy::{Reservation, RoleCaps, RoomPolicy, WhenFull};

impl Harness {
    /// A room of `capacity` with these rules and reserved invites.
    fn with_policy(
        capacity: u32,
        adjust: impl FnOnce(&mut RoomPolicy),
        reservations: Vec<Reservation>,
    ) -> Self {
        let mut h = Harness::new(capacity);
        let mut policy = RoomPolicy::new(capacity);
        adjust(&mut policy);
        h.room.handle_snapshot(
            h.now,
            Snapshot {
                rev: 1,
                policy,
                reservations,
            },
        );
        h.drain();
        h
    }

    /// Whether `conn` was seated by these outputs.
    fn seated(outputs: &[Output], conn: ConnId) -> bool {
        outputs
            .iter()
            .any(|o| matches!(o, Output::Admitted { conn: c, .. } if *c == conn))
    }

    /// The last waiting position sent to `conn`.
    fn position(outputs: &[Output], conn: ConnId) -> Option<u32> {
        Self::sent_to(outputs, conn)
            .into_iter()
            .filter_map(|m| match m {
                ServerMsg::Waiting { position } => Some(position),
                _ => None,
            })
            .next_back()
    }

    /// The waiting ids in the last `queue` sent to `conn`.
    fn queue_seen(outputs: &[Output], conn: ConnId) -> Option<Vec<String>> {
        Self::sent_to(outputs, conn)
            .into_iter()
            .filter_map(|m| match m {
                ServerMsg::Queue { waiting } => Some(waiting.into_iter().map(|w| w.name).collect()),
                _ => None,
            })
            .next_back()
    }
}

pub(super) fn invite(id: &str, role: Role) -> Ticket {
    Ticket {
        role,
        invite: Some(id.into()),
        name: None,
    }
}

fn reserved(id: &str, role: Role) -> Reservation {
    Reservation {
        invite: id.into(),
        role,
        expires_at: i64::MAX,
    }
}

fn wait(p: &mut RoomPolicy) {
    p.when_full = WhenFull::Wait;
}

#[test]
fn a_reserved_seat_is_taken_by_nobody_else() {
    let mut h = Harness::with_policy(3, |_| {}, vec![reserved("adv1", Role::Advocate)]);
    assert!(Harness::seated(&h.join(1, "A"), 1));
    assert!(Harness::seated(&h.join(2, "B"), 2));
    // Two seats taken, one reserved: the room is full for anyone but the holder.
    let out = h.join(3, "C");
    assert_eq!(Harness::error_code(&out, 3), Some(ErrorCode::RoomFull));
    let out = h.join_as(4, "Other advocate", invite("adv9", Role::Advocate));
    assert_eq!(Harness::error_code(&out, 4), Some(ErrorCode::RoomFull));
    let out = h.join_as(5, "Dee", invite("adv1", Role::Advocate));
    assert!(Harness::seated(&out, 5), "{out:?}");
    // A second person with the same invite is not its holder: no seat is left.
    let out = h.join_as(6, "Dee's friend", invite("adv1", Role::Advocate));
    assert_eq!(Harness::error_code(&out, 6), Some(ErrorCode::RoomFull));
    // When the holder leaves, the seat is theirs again.
    h.room.handle_leave(h.now, 5, LeaveReason::Disconnected);
    h.drain();
    assert_eq!(
        Harness::error_code(&h.join(7, "E"), 7),
        Some(ErrorCode::RoomFull)
    );
    assert!(Harness::seated(
        &h.join_as(8, "Dee", invite("adv1", Role::Advocate)),
        8
    ));
}

#[test]
fn an_expired_or_barred_reservation_frees_its_seat() {
    let mut r = reserved("adv1", Role::Advocate);
    r.expires_at = 1_700_000_000_000 + 60_000;
    let mut h = Harness::with_policy(2, |_| {}, vec![r]);
    h.join(1, "A");
    assert_eq!(
        Harness::error_code(&h.join(2, "B"), 2),
        Some(ErrorCode::RoomFull)
    );
    h.advance(Duration::from_secs(61));
    assert!(
        Harness::seated(&h.join(2, "B"), 2),
        "expired: the seat is free"
    );
}

#[test]
fn role_caps_hold_and_count_reserved_seats_of_the_role() {
    let mut h = Harness::with_policy(
        10,
        |p| {
            p.caps = RoleCaps {
                advocate: Some(2),
                participant: Some(1),
                ..RoleCaps::default()
            }
        },
        vec![reserved("adv1", Role::Advocate)],
    );
    assert!(Harness::seated(&h.join(1, "P"), 1));
    let out = h.join(2, "P2");
    assert_eq!(Harness::error_code(&out, 2), Some(ErrorCode::RoleFull));
    assert!(Harness::seated(
        &h.join_as(3, "A1", invite("adv7", Role::Advocate)),
        3
    ));
    // One advocate seated and one advocate seat reserved: the cap of 2 is reached.
    let out = h.join_as(4, "A2", invite("adv8", Role::Advocate));
    assert_eq!(Harness::error_code(&out, 4), Some(ErrorCode::RoleFull));
    assert!(Harness::seated(
        &h.join_as(5, "Holder", invite("adv1", Role::Advocate)),
        5
    ));
    let observer = invite("obs", Role::Observer);
    assert!(Harness::seated(&h.join_as(6, "O", observer), 6), "no cap");
}

#[test]
fn the_waiting_room_is_an_ordered_queue() {
    let mut h = Harness::with_policy(2, wait, vec![]);
    h.join_as(1, "Fac", invite("f", Role::Facilitator));
    h.join(2, "A");
    let out = h.join(3, "B");
    assert!(!Harness::seated(&out, 3));
    assert_eq!(Harness::position(&out, 3), Some(1));
    assert_eq!(
        Harness::queue_seen(&out, 1),
        Some(vec!["B".to_string()]),
        "the facilitator sees the queue"
    );
    assert!(Harness::queue_seen(&out, 2).is_none(), "others do not");
    let out = h.join(4, "C");
    assert_eq!(Harness::position(&out, 4), Some(2));
    let out = h.join(5, "D");
    assert_eq!(Harness::position(&out, 5), Some(3));
    assert!(h.room.is_waiting(4));
    // Someone waiting is not in the room: chat is refused, and no media is opened.
    h.room.handle_chat(h.now, 4, "let me in");
    assert_eq!(
        Harness::error_code(&h.drain(), 4),
        Some(ErrorCode::NotJoined)
    );
    // B leaves the queue: C and D move up and are told.
    h.room.handle_leave(h.now, 3, LeaveReason::Disconnected);
    let out = h.drain();
    assert_eq!(Harness::position(&out, 4), Some(1));
    assert_eq!(Harness::position(&out, 5), Some(2));
    assert_eq!(
        Harness::queue_seen(&out, 1),
        Some(vec!["C".to_string(), "D".to_string()])
    );
    // A late facilitator gets the queue in `joined`.
    h.room.handle_snapshot(
        h.now,
        Snapshot {
            rev: 2,
            policy: RoomPolicy {
                when_full: WhenFull::Wait,
                ..RoomPolicy::new(3)
            },
            reservations: vec![],
        },
    );
    let out = h.join_as(6, "Fac2", invite("f", Role::Facilitator));
    match &Harness::sent_to(&out, 6)[..] {
        [ServerMsg::Joined { waiting, role, .. }] => {
            assert_eq!(*role, Role::Facilitator);
            let names: Vec<_> = waiting.iter().map(|w| w.name.as_str()).collect();
            assert_eq!(names, ["C", "D"]);
        }
        other => panic!("{other:?}"),
    }
}

#[test]
fn a_facilitator_admits_and_declines_anyone_in_the_queue() {
    let mut h = Harness::with_policy(2, wait, vec![]);
    h.join_as(1, "Fac", invite("f", Role::Facilitator));
    h.join(2, "A");
    h.join(3, "B");
    h.join(4, "C");
    h.join(5, "D");
    // No seat is free: admitting is refused, and nothing moves.
    h.room.handle_admit(h.now, 1, "w2");
    let out = h.drain();
    assert_eq!(Harness::error_code(&out, 1), Some(ErrorCode::RoomFull));
    assert!(h.room.is_waiting(4));
    h.room.handle_leave(h.now, 2, LeaveReason::Left);
    let out = h.drain();
    assert!(!Harness::seated(&out, 3), "auto-admit is off");
    // The facilitator picks the second in line.
    h.room.handle_admit(h.now, 1, "w2");
    let out = h.drain();
    assert!(Harness::seated(&out, 4));
    assert!(matches!(
        Harness::sent_to(&out, 4).last(),
        Some(ServerMsg::Joined { .. })
    ));
    assert_eq!(Harness::position(&out, 5), Some(2), "D moved up");
    assert!(out.iter().any(
        |o| matches!(o, Output::Audit(e) if e.action == "admit" && e.target_name.as_deref() == Some("C"))
    ));
    // Decline B: told, released, and D is first.
    h.room.handle_decline(h.now, 1, "w1");
    let out = h.drain();
    assert!(Harness::sent_to(&out, 3).contains(&ServerMsg::Declined {}));
    assert!(out.contains(&Output::Release { conn: 3 }));
    assert_eq!(Harness::position(&out, 5), Some(1));
    h.room.handle_decline(h.now, 1, "w1");
    assert_eq!(
        Harness::error_code(&h.drain(), 1),
        Some(ErrorCode::WaiterNotFound)
    );
    // A participant may not admit.
    h.room.handle_admit(h.now, 4, "w4");
    assert_eq!(
        Harness::error_code(&h.drain(), 4),
        Some(ErrorCode::Forbidden)
    );
    assert!(h.room.is_waiting(5));
}

#[test]
fn auto_admit_seats_the_first_who_fits_when_a_seat_frees() {
    let mut h = Harness::with_policy(
        2,
        |p| {
            wait(p);
            p.auto_admit = true;
            p.caps.observer = Some(1);
        },
        vec![],
    );
    h.join(1, "A");
    h.join_as(2, "Obs", invite("o", Role::Observer));
    h.join_as(3, "Obs2", invite("o", Role::Observer)); // w1: its role is full too
    h.join(4, "B"); // w2
    h.join(5, "C"); // w3
    h.room.handle_leave(h.now, 1, LeaveReason::Disconnected);
    let out = h.drain();
    assert!(
        Harness::seated(&out, 4),
        "B is the first who fits: the second observer would exceed the observer cap"
    );
    assert!(!Harness::seated(&out, 3) && !Harness::seated(&out, 5));
    assert_eq!(Harness::position(&out, 5), Some(2));
    h.room.handle_leave(h.now, 2, LeaveReason::Disconnected);
    assert!(
        Harness::seated(&h.drain(), 3),
        "the observer's seat freed: Obs2 is first"
    );
}

#[test]
fn a_locked_room_seats_only_facilitators_and_queues_the_rest() {
    let mut h = Harness::with_policy(5, |_| {}, vec![]);
    h.join_as(1, "Fac", invite("f", Role::Facilitator));
    h.join(2, "A");
    h.room.handle_lock(h.now, 2, true);
    assert_eq!(
        Harness::error_code(&h.drain(), 2),
        Some(ErrorCode::Forbidden)
    );
    h.room.handle_lock(h.now, 1, true);
    let out = h.drain();
    assert!(Harness::sent_to(&out, 2).contains(&ServerMsg::RoomLocked {
        locked: true,
        by: "p1".into()
    }));
    assert!(
        out.iter()
            .any(|o| matches!(o, Output::Audit(e) if e.action == "lock"))
    );
    // Without a waiting room, a join is refused.
    assert_eq!(
        Harness::error_code(&h.join(3, "B"), 3),
        Some(ErrorCode::RoomLocked)
    );
    assert!(Harness::seated(
        &h.join_as(4, "Fac2", invite("f", Role::Facilitator)),
        4
    ));
    // With one, it waits, even with seats free, until a facilitator admits it.
    let mut policy = RoomPolicy::new(5);
    policy.when_full = WhenFull::Wait;
    policy.auto_admit = true;
    h.room.handle_snapshot(
        h.now,
        Snapshot {
            rev: 2,
            policy,
            reservations: vec![],
        },
    );
    let out = h.join(5, "C");
    assert_eq!(Harness::position(&out, 5), Some(1));
    h.room.handle_admit(h.now, 1, "w1");
    assert!(Harness::seated(&h.drain(), 5), "admit works while locked");
    h.join(6, "D");
    // Unlocking lets auto-admit seat the queue.
    h.room.handle_lock(h.now, 1, false);
    assert!(Harness::seated(&h.drain(), 6));
}

#[test]
fn without_the_open_link_an_invite_is_needed() {
    let mut h = Harness::with_policy(5, |p| p.open_link = false, vec![]);
    assert_eq!(
        Harness::error_code(&h.join(1, "A"), 1),
        Some(ErrorCode::InviteRequired)
    );
    assert!(Harness::seated(
        &h.join_as(2, "B", invite("i", Role::Participant)),
        2
    ));
}

#[test]
fn an_invites_fixed_name_wins() {
    let mut h = Harness::new(5);
    let ticket = Ticket {
        role: Role::Advocate,
        invite: Some("i".into()),
        name: Some("Dee Advocate".into()),
    };
    let out = h.join_as(1, "", ticket);
    match &Harness::sent_to(&out, 1)[..] {
        [ServerMsg::Joined { participants, .. }] => {
            assert_eq!(participants[0].name, "Dee Advocate");
            assert_eq!(participants[0].role, Role::Advocate);
        }
        other => panic!("{other:?}"),
    }
}

#[test]
fn the_waiting_room_is_bounded() {
    let mut h = Harness::with_policy(1, wait, vec![]);
    h.join(1, "A");
    for c in 0..MAX_WAITING as u64 {
        h.join(100 + c, "W");
    }
    assert_eq!(
        Harness::error_code(&h.join(99, "One too many"), 99),
        Some(ErrorCode::RoomFull)
    );
}

/// While people wait, a newcomer does not pass them for a seat that freed: they queue
/// behind. A facilitator and the holder of a free reserved seat do pass.
#[test]
fn nobody_jumps_the_queue() {
    let mut h = Harness::with_policy(3, wait, vec![reserved("adv1", Role::Advocate)]);
    h.join(1, "A");
    h.join(2, "B");
    h.join(3, "C"); // w1
    h.room.handle_leave(h.now, 1, LeaveReason::Disconnected);
    h.drain();
    let out = h.join(4, "D");
    assert!(!Harness::seated(&out, 4));
    assert_eq!(Harness::position(&out, 4), Some(2));
    assert!(Harness::seated(
        &h.join_as(5, "Fay", invite("f", Role::Facilitator)),
        5
    ));
    assert!(Harness::seated(
        &h.join_as(6, "Ada", invite("adv1", Role::Advocate)),
        6
    ));
}

/// With auto-admit on, a reserved seat that expires seats the first in line at its expiry:
/// the room asks for a timer, and nobody needs to join or leave.
#[test]
fn an_expiring_reservation_seats_the_queue_on_time() {
    let mut r = reserved("adv1", Role::Advocate);
    r.expires_at = 1_700_000_000_000 + 60_000;
    let mut h = Harness::with_policy(
        2,
        |p| {
            wait(p);
            p.auto_admit = true;
        },
        vec![r],
    );
    h.join(1, "A");
    h.join(2, "B");
    assert!(h.room.is_waiting(2));
    let due = h
        .room
        .poll_timeout(h.now)
        .expect("the reservation's expiry");
    assert_eq!(due, h.now.instant + Duration::from_secs(60));
    h.advance(Duration::from_secs(60));
    h.room.handle_timeout(h.now);
    assert!(Harness::seated(&h.drain(), 2));
    assert_eq!(h.room.poll_timeout(h.now), None);
}
