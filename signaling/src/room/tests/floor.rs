//! The floor in the room: who may speak in each segment, the gates that follow, the floor a
//! facilitator gives, and how it sits with a mute.

use super::admission::invite;
use super::*;
use crate::agenda::{Advocate, Command, Plan, TimeUp};
use crate::wire::FloorMode;

/// A facilitator (conn 1, p1), the advocate of tactic 1 by invite `a` (2, p2), and a
/// participant (3, p3); the plan's first tactic is Ada's.
fn room() -> Harness {
    let mut h = Harness::new(10);
    h.join_as(1, "Fay", invite("f", Role::Facilitator));
    h.join_as(2, "Ada", invite("a", Role::Advocate));
    h.join(3, "Pat");
    let mut plan = Plan::skill_share(2);
    plan.tactics[0].advocate = Some(Advocate::Invite { id: "a".into() });
    plan.tactics[1].advocate = Some(Advocate::Participant { id: "p3".into() });
    plan.time_up = TimeUp::Mute;
    plan.grace_s = 5;
    h.room.handle_agenda_set(h.now, 1, plan);
    h.drain();
    h
}

/// The audio gates these outputs set, as (participant, open).
fn gates(outputs: &[Output]) -> Vec<(String, bool)> {
    outputs
        .iter()
        .filter_map(|o| match o {
            Output::Gate {
                participant,
                kind: MediaKind::Audio,
                open,
            } => Some((participant.clone(), *open)),
            _ => None,
        })
        .collect()
}

/// The facilitator (conn 1) drives the agenda.
pub(super) fn control(h: &mut Harness, c: Command) -> Vec<Output> {
    h.room.handle_agenda_control(h.now, 1, c, None);
    h.drain()
}

fn speakers(h: &Harness) -> Vec<String> {
    h.room.agenda_view(h.now).floor.speakers
}

#[test]
fn each_segment_has_its_speakers_and_the_gates_follow() {
    let mut h = room();
    assert_eq!(
        speakers(&h),
        ["p1", "p2", "p3"],
        "before the start: everyone"
    );
    let out = control(&mut h, Command::Start);
    assert_eq!(
        gates(&out),
        [("p2".into(), false), ("p3".into(), false)],
        "the organisation's presentation: the facilitators"
    );
    assert!(out.iter().any(|o| matches!(o, Output::SaveAgenda(_))));
    let out = control(&mut h, Command::Next);
    assert_eq!(gates(&out), [("p2".into(), true)], "Ada presents");
    assert_eq!(speakers(&h), ["p1", "p2"]);
    let out = control(&mut h, Command::Next);
    assert_eq!(
        gates(&out),
        [("p3".into(), true)],
        "the conversation is open"
    );
    assert_eq!(h.room.agenda_view(h.now).floor.mode, FloorMode::Open);
    // Tactic 2 is Pat's, by participant id.
    control(&mut h, Command::Next);
    control(&mut h, Command::Next);
    assert_eq!(speakers(&h), ["p1", "p3"]);
    let out = control(&mut h, Command::End);
    assert_eq!(
        gates(&out),
        [("p2".into(), true)],
        "after the end: everyone"
    );
}

#[test]
fn time_up_under_mute_closes_the_presenters_floor() {
    let mut h = room();
    control(&mut h, Command::Start);
    control(&mut h, Command::Next);
    h.advance(Duration::from_secs(300 + 5));
    let due = h.room.poll_timeout(h.now).expect("a timer");
    assert!(due <= h.now.instant);
    h.room.handle_timeout(h.now);
    let out = h.drain();
    assert_eq!(gates(&out), [("p2".into(), false)]);
    assert_eq!(h.room.agenda_view(h.now).floor.mode, FloorMode::Closed);
    assert!(Harness::sent_to(&out, 3).iter().any(|m| matches!(
        m,
        ServerMsg::Agenda {
            event: Some(crate::agenda::Event::FloorClosed),
            ..
        }
    )));
    // A facilitator's override: more time reopens it.
    h.room
        .handle_agenda_control(h.now, 1, Command::Extend, Some(120));
    assert_eq!(gates(&h.drain()), [("p2".into(), true)]);
}

#[test]
fn a_given_floor_lasts_until_taken_yielded_or_the_segment_changes() {
    let mut h = room();
    control(&mut h, Command::Start);
    h.room.handle_raise_hand(h.now, 3);
    h.drain();
    h.room.handle_give_floor(h.now, 1, "p3");
    let out = h.drain();
    assert_eq!(gates(&out), [("p3".into(), true)]);
    assert!(Harness::sent_to(&out, 2).contains(&ServerMsg::Hands { queue: vec![] }));
    assert_eq!(h.room.agenda_view(h.now).floor.given, ["p3"]);
    h.room.handle_take_floor(h.now, 1, "p3");
    assert_eq!(gates(&h.drain()), [("p3".into(), false)]);
    h.room.handle_give_floor(h.now, 1, "p3");
    h.drain();
    h.room.handle_yield_floor(h.now, 3);
    assert_eq!(gates(&h.drain()), [("p3".into(), false)]);
    h.room.handle_give_floor(h.now, 1, "p3");
    h.drain();
    let out = control(&mut h, Command::Next);
    assert!(
        !gates(&out).contains(&("p3".into(), true)),
        "a new segment takes it back: {out:?}"
    );
    assert!(h.room.agenda_view(h.now).floor.given.is_empty());
    // Only facilitators give it.
    h.room.handle_give_floor(h.now, 3, "p3");
    assert_eq!(
        Harness::error_code(&h.drain(), 3),
        Some(ErrorCode::Forbidden)
    );
    h.room.handle_give_floor(h.now, 1, "p9");
    assert_eq!(
        Harness::error_code(&h.drain(), 1),
        Some(ErrorCode::ParticipantNotFound)
    );
}

#[test]
fn a_mute_wins_over_the_floor() {
    let mut h = room();
    h.room.handle_mute(h.now, 1, "p2", MediaKind::Audio, true);
    assert_eq!(gates(&h.drain()), [("p2".into(), false)]);
    control(&mut h, Command::Start);
    let out = control(&mut h, Command::Next);
    assert!(gates(&out).is_empty(), "Ada presents, but she is muted");
    h.room.handle_mute(h.now, 1, "p2", MediaKind::Audio, false);
    assert_eq!(gates(&h.drain()), [("p2".into(), true)]);
}

#[test]
fn a_late_joiner_gets_the_agenda_and_the_gate_of_the_segment() {
    let mut h = room();
    control(&mut h, Command::Start);
    let out = h.join(4, "Late");
    assert_eq!(gates(&out), [("p4".into(), false)]);
    match Harness::sent_to(&out, 4).last() {
        Some(ServerMsg::Joined { agenda, .. }) => {
            assert_eq!(agenda.phase, crate::agenda::Phase::Running);
            assert_eq!(agenda.deadline, Some(h.now.unix_ms + 300_000));
            assert_eq!(agenda.server_time, h.now.unix_ms);
        }
        other => panic!("{other:?}"),
    }
}

#[test]
fn agenda_commands_and_plans_are_checked() {
    let mut h = room();
    h.room.handle_agenda_control(h.now, 1, Command::Next, None);
    assert_eq!(
        Harness::error_code(&h.drain(), 1),
        Some(ErrorCode::AgendaState)
    );
    let mut bad = Plan::skill_share(1);
    bad.tactics[0].segments[0].duration_s = 0;
    h.room.handle_agenda_set(h.now, 1, bad);
    assert_eq!(
        Harness::error_code(&h.drain(), 1),
        Some(ErrorCode::BadAgenda)
    );
    control(&mut h, Command::Start);
    h.room
        .handle_agenda_control(h.now, 1, Command::Extend, Some(0));
    assert_eq!(
        Harness::error_code(&h.drain(), 1),
        Some(ErrorCode::BadAgenda)
    );
    h.room.handle_agenda_set(h.now, 1, Plan::skill_share(0));
    assert_eq!(
        Harness::error_code(&h.drain(), 1),
        Some(ErrorCode::AgendaState),
        "the tactic under way cannot go"
    );
}

/// The record names who held the floor: the presenter, even one who arrives late, and whom
/// it was given; not the facilitators, and not everyone in an open conversation.
#[test]
fn the_record_names_who_held_the_floor() {
    let mut h = Harness::new(10);
    h.join_as(1, "Fay", invite("f", Role::Facilitator));
    h.join(2, "Pat");
    let mut plan = Plan::skill_share(1);
    plan.tactics[0].advocate = Some(Advocate::Invite { id: "a".into() });
    h.room.handle_agenda_set(h.now, 1, plan);
    control(&mut h, Command::Start);
    control(&mut h, Command::Next);
    h.join_as(3, "Ada", invite("a", Role::Advocate));
    control(&mut h, Command::Next);
    h.room.handle_give_floor(h.now, 1, "p2");
    h.drain();
    let run = &h.room.agenda().state.runs[0];
    let floors: Vec<&[String]> = run.segments.iter().map(|s| s.floor.as_slice()).collect();
    assert_eq!(
        floors,
        [&[][..], &["Ada".to_string()][..], &["Pat".to_string()][..]]
    );
}

/// While the agenda is under way, a join or a leave tells the others the new speakers; an
/// observer is never a speaker; an advocate named by participant id is kept by their invite.
#[test]
fn speakers_follow_who_is_in_the_room() {
    let mut h = Harness::new(10);
    h.join_as(1, "Fay", invite("f", Role::Facilitator));
    h.join_as(2, "Ada", invite("a", Role::Advocate));
    h.join_as(3, "Obi", invite("o", Role::Observer));
    let mut plan = Plan::skill_share(1);
    plan.tactics[0].advocate = Some(Advocate::Participant { id: "p2".into() });
    h.room.handle_agenda_set(h.now, 1, plan.clone());
    let out = h.drain();
    assert_eq!(
        h.room.agenda().plan.tactics[0].advocate,
        Some(Advocate::Invite { id: "a".into() }),
        "named by the invite she came with: {out:?}"
    );
    // The same plan again changes nothing and tells nobody.
    h.room.handle_agenda_set(h.now, 1, plan);
    assert!(h.drain().is_empty());
    assert_eq!(speakers(&h), ["p1", "p2"], "no observer among the speakers");
    control(&mut h, Command::Start);
    control(&mut h, Command::Next);
    // Ada drops out and comes back: Fay hears of each change, and Ada speaks again.
    h.room.handle_leave(h.now, 2, LeaveReason::Disconnected);
    let out = h.drain();
    let told = |out: &[Output], to| {
        Harness::sent_to(out, to).into_iter().find_map(|m| match m {
            ServerMsg::Agenda { agenda, .. } => Some(agenda.floor.speakers),
            _ => None,
        })
    };
    assert_eq!(told(&out, 1), Some(vec!["p1".to_string()]));
    let out = h.join_as(5, "Ada", invite("a", Role::Advocate));
    assert_eq!(
        told(&out, 1),
        Some(vec!["p1".to_string(), "p4".to_string()])
    );
    assert_eq!(told(&out, 5), None, "the joiner has it in `joined`");
    assert!(!gates(&out).contains(&("p4".into(), false)), "{out:?}");
}

/// Giving and taking back the floor are audited and on the run's transitions; yielding is
/// on the transitions only (nobody moderated anyone).
#[test]
fn floor_changes_are_on_record() {
    let mut h = room();
    control(&mut h, Command::Start);
    h.room.handle_give_floor(h.now, 1, "p3");
    h.room.handle_take_floor(h.now, 1, "p3");
    h.room.handle_give_floor(h.now, 1, "p3");
    h.room.handle_yield_floor(h.now, 3);
    let audits: Vec<(String, Option<String>)> = h
        .drain()
        .into_iter()
        .filter_map(|o| match o {
            Output::Audit(e) => Some((e.action, e.target_name)),
            _ => None,
        })
        .collect();
    let pat = Some("Pat".to_string());
    assert_eq!(
        audits,
        [
            ("give_floor".into(), pat.clone()),
            ("take_floor".into(), pat.clone()),
            ("give_floor".into(), pat),
        ]
    );
    let whats: Vec<&str> = h.room.agenda().state.runs[0]
        .transitions
        .iter()
        .map(|t| t.what.as_str())
        .collect();
    assert_eq!(
        whats,
        [
            "start",
            "give_floor",
            "take_floor",
            "give_floor",
            "yield_floor"
        ]
    );
}
