//! Moderation through the room: the role table checked on every action, mutes as gates,
//! removal with and without a bar, raised hands in order, and the audit entries.

use super::admission::invite;
use super::*;

/// A facilitator (conn 1, p1), an advocate (2, p2), a participant (3, p3) and an observer
/// (4, p4).
fn everyone() -> Harness {
    let mut h = Harness::new(10);
    h.join_as(1, "Fay", invite("f", Role::Facilitator));
    h.join_as(2, "Ada", invite("a", Role::Advocate));
    h.join(3, "Pat");
    h.join_as(4, "Obi", invite("o", Role::Observer));
    h.drain();
    h
}

fn audits(outputs: &[Output]) -> Vec<AuditEntry> {
    outputs
        .iter()
        .filter_map(|o| match o {
            Output::Audit(e) => Some(e.clone()),
            _ => None,
        })
        .collect()
}

/// Every role tries every action through the room; the room allows exactly what the table
/// says, and a refusal changes nothing.
#[test]
fn every_role_tries_every_action() {
    let conns = [
        (1, Role::Facilitator),
        (2, Role::Advocate),
        (3, Role::Participant),
        (4, Role::Observer),
    ];
    for (conn, role) in conns {
        for action in Action::ALL {
            let mut h = everyone();
            // Whom a targeted action is aimed at: someone else, with a hand up.
            let target = if conn == 3 { "p2" } else { "p3" };
            let target_conn = if conn == 3 { 2 } else { 3 };
            h.room.handle_raise_hand(h.now, target_conn);
            h.drain();
            match action {
                Action::Publish => {
                    let p = format!("p{conn}");
                    h.room
                        .handle_track_published(h.now, &p, "t1", MediaKind::Audio)
                }
                Action::Chat => h.room.handle_chat(h.now, conn, "hello"),
                Action::RaiseHand => h.room.handle_raise_hand(h.now, conn),
                Action::LowerAnyHand => h.room.handle_lower_hand(h.now, conn, Some(target)),
                Action::Mute => h
                    .room
                    .handle_mute(h.now, conn, target, MediaKind::Audio, true),
                Action::Remove => h.room.handle_remove(h.now, conn, target, false),
                Action::Lock => h.room.handle_lock(h.now, conn, true),
                Action::Admit => h.room.handle_decline(h.now, conn, "w1"),
                Action::RunAgenda => {
                    h.room
                        .handle_agenda_control(h.now, conn, crate::agenda::Command::Start, None)
                }
                Action::Record => h.room.handle_recording(h.now, conn, true, false),
            }
            let out = h.drain();
            let refused = Harness::error_code(&out, conn) == Some(ErrorCode::Forbidden);
            assert_eq!(refused, !allows(role, action), "{role} {action:?}: {out:?}");
            if refused {
                // Nothing else happened: no effect, no message to anyone else.
                assert!(
                    out.iter()
                        .all(|o| matches!(o, Output::Send { conn: c, .. } if *c == conn)
                            || matches!(o, Output::RefuseTrack { .. })),
                    "{role} {action:?}: {out:?}"
                );
            }
        }
    }
}

#[test]
fn a_mute_closes_the_gate_tells_them_and_is_audited() {
    let mut h = everyone();
    h.room.handle_mute(h.now, 1, "p3", MediaKind::Audio, true);
    let out = h.drain();
    assert!(out.contains(&Output::Gate {
        participant: "p3".into(),
        kind: MediaKind::Audio,
        open: false
    }));
    assert!(Harness::sent_to(&out, 3).contains(&ServerMsg::Moderated {
        kind: MediaKind::Audio,
        allowed: false,
        by: "p1".into()
    }));
    assert!(Harness::sent_to(&out, 2).iter().any(
        |m| matches!(m, ServerMsg::ParticipantUpdated { participant } if participant.id == "p3" && !participant.audio_allowed)
    ));
    let entries = audits(&out);
    assert_eq!(entries.len(), 1);
    assert_eq!(
        (
            entries[0].actor.as_str(),
            entries[0].actor_name.as_str(),
            entries[0].action.as_str(),
            entries[0].target.as_deref(),
            entries[0].target_name.as_deref()
        ),
        ("p1", "Fay", "mute", Some("p3"), Some("Pat"))
    );
    // Muting again changes nothing; the participant cannot unmute themselves.
    h.room.handle_mute(h.now, 1, "p3", MediaKind::Audio, true);
    assert!(h.drain().is_empty());
    h.room.handle_mute(h.now, 3, "p3", MediaKind::Audio, false);
    assert_eq!(
        Harness::error_code(&h.drain(), 3),
        Some(ErrorCode::Forbidden)
    );
    // They can still raise their hand.
    h.room.handle_raise_hand(h.now, 3);
    assert!(Harness::sent_to(&h.drain(), 1).contains(&ServerMsg::Hands {
        queue: vec!["p3".into()]
    }));
    // Unmute and stop the camera.
    h.room.handle_mute(h.now, 1, "p3", MediaKind::Audio, false);
    h.room.handle_mute(h.now, 1, "p3", MediaKind::Video, true);
    let out = h.drain();
    let actions: Vec<_> = audits(&out).into_iter().map(|e| e.action).collect();
    assert_eq!(actions, ["unmute", "stop_camera"]);
    assert!(out.contains(&Output::Gate {
        participant: "p3".into(),
        kind: MediaKind::Video,
        open: false
    }));
    // An observer publishes nothing, so nothing can be allowed; an unknown id is named.
    h.room.handle_mute(h.now, 1, "p4", MediaKind::Audio, false);
    assert_eq!(
        Harness::error_code(&h.drain(), 1),
        Some(ErrorCode::Forbidden)
    );
    h.room.handle_mute(h.now, 1, "p99", MediaKind::Audio, true);
    assert_eq!(
        Harness::error_code(&h.drain(), 1),
        Some(ErrorCode::ParticipantNotFound)
    );
    // The admin API mutes under the name `admin`.
    h.room
        .handle_admin_mute(h.now, "p2", MediaKind::Audio, true)
        .unwrap();
    let out = h.drain();
    assert_eq!(audits(&out)[0].actor, "admin");
}

#[test]
fn removal_tells_them_releases_them_and_bars_only_an_invite() {
    let mut h = everyone();
    h.room.handle_remove(h.now, 1, "p3", true);
    let out = h.drain();
    assert_eq!(
        Harness::error_code(&out, 1),
        Some(ErrorCode::NotBarrable),
        "Pat came through the open link"
    );
    assert_eq!(h.room.len(), 4, "nothing was done");
    h.room.handle_remove(h.now, 1, "p2", true);
    let out = h.drain();
    assert!(Harness::sent_to(&out, 2).contains(&ServerMsg::Removed {
        by: "p1".into(),
        barred: true
    }));
    assert!(out.contains(&Output::RevokeInvite { invite: "a".into() }));
    assert!(out.contains(&Output::Release { conn: 2 }));
    assert!(out.contains(&Output::CloseMedia {
        participant: "p2".into()
    }));
    assert!(
        Harness::sent_to(&out, 3).contains(&ServerMsg::ParticipantLeft {
            id: "p2".into(),
            reason: LeaveReason::Removed
        })
    );
    assert_eq!(audits(&out)[0].detail.as_deref(), Some("barred"));
    assert_eq!(h.room.len(), 3);
    // The barred invite lets nobody in again, even before the store has revoked it.
    assert_eq!(
        Harness::error_code(&h.join_as(5, "Ada", invite("a", Role::Advocate)), 5),
        Some(ErrorCode::InviteRevoked)
    );
    // Removing oneself is refused; removing without a bar keeps the invite.
    h.room.handle_remove(h.now, 1, "p1", false);
    assert_eq!(
        Harness::error_code(&h.drain(), 1),
        Some(ErrorCode::Forbidden)
    );
    h.room.handle_remove(h.now, 1, "p4", false);
    let out = h.drain();
    assert!(!out.iter().any(|o| matches!(o, Output::RevokeInvite { .. })));
    assert!(Harness::seated_again(
        &mut h,
        6,
        invite("o", Role::Observer)
    ));
}

impl Harness {
    fn seated_again(h: &mut Harness, conn: ConnId, ticket: Ticket) -> bool {
        h.join_as(conn, "Again", ticket)
            .iter()
            .any(|o| matches!(o, Output::Admitted { conn: c, .. } if *c == conn))
    }
}

#[test]
fn hands_go_up_in_order_and_come_down() {
    let mut h = everyone();
    h.room.handle_raise_hand(h.now, 3);
    h.room.handle_raise_hand(h.now, 2);
    h.room.handle_raise_hand(h.now, 3); // already up: nothing changes
    let out = h.drain();
    let seen: Vec<_> = Harness::sent_to(&out, 4)
        .into_iter()
        .filter_map(|m| match m {
            ServerMsg::Hands { queue } => Some(queue),
            _ => None,
        })
        .collect();
    assert_eq!(
        seen,
        [vec!["p3".to_string()], vec!["p3".into(), "p2".into()]]
    );
    // A participant cannot lower another's hand; a facilitator can, and it is audited.
    h.room.handle_lower_hand(h.now, 2, Some("p3"));
    assert_eq!(
        Harness::error_code(&h.drain(), 2),
        Some(ErrorCode::Forbidden)
    );
    h.room.handle_lower_hand(h.now, 1, Some("p3"));
    let out = h.drain();
    assert!(Harness::sent_to(&out, 2).contains(&ServerMsg::Hands {
        queue: vec!["p2".into()]
    }));
    assert_eq!(audits(&out)[0].action, "lower_hand");
    // One's own hand, and a leaver's hand, come down without an audit entry.
    h.room.handle_lower_hand(h.now, 2, None);
    assert!(audits(&h.drain()).is_empty());
    h.room.handle_raise_hand(h.now, 3);
    h.drain();
    h.room.handle_leave(h.now, 3, LeaveReason::Disconnected);
    assert!(Harness::sent_to(&h.drain(), 1).contains(&ServerMsg::Hands { queue: vec![] }));
}

#[test]
fn an_observer_never_publishes() {
    let mut h = everyone();
    h.room
        .handle_track_published(h.now, "p4", "t-obs", MediaKind::Audio);
    let out = h.drain();
    assert!(out.contains(&Output::RefuseTrack {
        track_id: "t-obs".into()
    }));
    assert!(!out.iter().any(|o| matches!(o, Output::Subscribe { .. })));
    assert_eq!(Harness::error_code(&out, 4), Some(ErrorCode::Forbidden));
}

/// A mute follows the invite: the holder who leaves and comes back is still muted, and their
/// new tracks are gated before anyone gets them.
#[test]
fn a_mute_outlives_a_rejoin_with_the_same_invite() {
    let mut h = everyone();
    h.room.handle_mute(h.now, 1, "p2", MediaKind::Audio, true);
    h.drain();
    h.room.handle_leave(h.now, 2, LeaveReason::Disconnected);
    h.drain();
    let out = h.join_as(5, "Ada", invite("a", Role::Advocate));
    assert!(out.contains(&Output::Gate {
        participant: "p5".into(),
        kind: MediaKind::Audio,
        open: false
    }));
    assert!(!out.iter().any(|o| matches!(
        o,
        Output::Gate {
            kind: MediaKind::Video,
            ..
        }
    )));
    match Harness::sent_to(&out, 5).last() {
        Some(ServerMsg::Joined { participants, .. }) => {
            let ada = participants.iter().find(|p| p.id == "p5").unwrap();
            assert!(!ada.audio_allowed && ada.video_allowed);
        }
        other => panic!("{other:?}"),
    }
}
