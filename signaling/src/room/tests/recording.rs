//! Consent and recording in the room: the default, the ledger, who is recorded as consent,
//! the session and the agenda change, and who may start it.

use super::admission::invite;
use super::floor::control;
use super::*;
use crate::agenda::Command;
use crate::wire::RecordingView;

/// A facilitator (conn 1, p1, invite `f`), Ann (2, p2, invite `a`) and Bo (3, p3, open
/// link); nobody consents yet.
fn room() -> Harness {
    let mut h = Harness::new(10);
    h.join_as(1, "Fay", invite("f", Role::Facilitator));
    h.join_as(2, "Ann", invite("a", Role::Participant));
    h.join(3, "Bo");
    h
}

/// The `Record` outputs, as (participant, on).
fn records(outputs: &[Output]) -> Vec<(String, bool)> {
    outputs
        .iter()
        .filter_map(|o| match o {
            Output::Record {
                participant, on, ..
            } => Some((participant.clone(), *on)),
            _ => None,
        })
        .collect()
}

/// The consent ledger entries these outputs append.
fn ledger(outputs: &[Output]) -> Vec<ConsentEntry> {
    outputs
        .iter()
        .filter_map(|o| match o {
            Output::Consent(entry) => Some(entry.clone()),
            _ => None,
        })
        .collect()
}

/// The `recording` messages sent to `to`.
fn recording_to(outputs: &[Output], to: ConnId) -> Vec<RecordingView> {
    Harness::sent_to(outputs, to)
        .into_iter()
        .filter_map(|m| match m {
            ServerMsg::Recording { recording } => Some(recording),
            _ => None,
        })
        .collect()
}

fn consent(h: &mut Harness, conn: ConnId, granted: bool) -> Vec<Output> {
    h.room.handle_consent(h.now, conn, granted);
    h.drain()
}

fn record(h: &mut Harness, conn: ConnId, on: bool, presentation_only: bool) -> Vec<Output> {
    h.room.handle_recording(h.now, conn, on, presentation_only);
    h.drain()
}

fn session_of(outputs: &[Output]) -> RecordingSession {
    outputs
        .iter()
        .find_map(|o| match o {
            Output::RecordingStarted(s) => Some(s.clone()),
            _ => None,
        })
        .expect("a session started")
}

#[test]
fn nobody_consents_by_default_and_everyone_sees_each_ones_consent() {
    let mut h = room();
    let out = h.join(4, "Cy");
    let Some(ServerMsg::Joined { participants, .. }) = Harness::sent_to(&out, 4).pop() else {
        panic!("Cy is not seated");
    };
    assert!(participants.iter().all(|p| !p.consent), "{participants:?}");
    assert!(ledger(&out).is_empty(), "no ledger entry for a no");

    let out = consent(&mut h, 2, true);
    for conn in 1..=4 {
        assert!(
            Harness::sent_to(&out, conn).iter().any(|m| matches!(
                m,
                ServerMsg::ParticipantUpdated { participant } if participant.id == "p2" && participant.consent
            )),
            "conn {conn} sees Ann's consent"
        );
    }
    assert!(
        records(&out).is_empty(),
        "nothing is recorded while recording is off"
    );
    // Her current state again changes nothing.
    assert!(consent(&mut h, 2, true).is_empty());
}

#[test]
fn every_change_of_consent_is_a_ledger_entry() {
    let mut h = room();
    h.advance(Duration::from_secs(1));
    let out = h.join_consenting(4, "Cy");
    let at_join = ledger(&out);
    assert_eq!(at_join.len(), 1, "a yes at join is an entry");
    assert_eq!(
        at_join[0],
        ConsentEntry {
            room: "r1".into(),
            session: None,
            participant: "p4".into(),
            name: "Cy".into(),
            invite: None,
            granted: true,
            ts: h.now.unix_ms,
        }
    );
    let session = session_of(&record(&mut h, 1, true, false));
    h.advance(Duration::from_secs(1));
    let out = consent(&mut h, 2, true);
    let out = [out, consent(&mut h, 2, false), consent(&mut h, 4, false)].concat();
    let entries: Vec<_> = ledger(&out)
        .into_iter()
        .map(|e| (e.participant, e.invite, e.session, e.granted, e.ts))
        .collect();
    let s = Some(session.id);
    let ts = h.now.unix_ms;
    assert_eq!(
        entries,
        [
            ("p2".into(), Some("a".into()), s.clone(), true, ts),
            ("p2".into(), Some("a".into()), s.clone(), false, ts),
            ("p4".into(), None, s, false, ts),
        ]
    );
}

/// [`room`], Ann consents, and Fay starts recording: the room, the start's outputs and the
/// session.
fn ann_recorded() -> (Harness, Vec<Output>, RecordingSession) {
    let mut h = room();
    consent(&mut h, 2, true);
    let out = record(&mut h, 1, true, false);
    let session = session_of(&out);
    (h, out, session)
}

#[test]
fn only_those_who_consent_are_recorded_and_a_withdrawal_stops_at_once() {
    let (mut h, out, session) = ann_recorded();
    assert_eq!(session.id, format!("r1-{}-1", h.now.unix_ms));
    assert!(!session.presentation_only);
    assert_eq!(records(&out), [("p2".into(), true)]);
    assert!(out.iter().any(|o| matches!(
        o,
        Output::Record { session: s, .. } if *s == session.id
    )));

    let out = consent(&mut h, 3, true);
    assert_eq!(records(&out), [("p3".into(), true)]);
    let out = consent(&mut h, 2, false);
    assert_eq!(records(&out), [("p2".into(), false)], "the withdrawal");
    assert_eq!(
        recording_to(&out, 3)[0].recorded,
        ["p3"],
        "everyone sees who is recorded"
    );
    let out = consent(&mut h, 2, true);
    assert_eq!(records(&out), [("p2".into(), true)], "consent again");

    let out = record(&mut h, 1, false, false);
    assert_eq!(records(&out), [("p2".into(), false), ("p3".into(), false)]);
    assert!(out.iter().any(|o| matches!(
        o,
        Output::RecordingEnded { session: s, ended_at } if *s == session.id && *ended_at == h.now.unix_ms
    )));
    assert_eq!(recording_to(&out, 2), [RecordingView::default()]);
    assert!(
        records(&consent(&mut h, 3, false)).is_empty(),
        "nothing to stop once off"
    );
}

#[test]
fn a_later_session_has_another_id_and_takes_up_standing_consent() {
    let mut h = room();
    consent(&mut h, 3, true);
    let first = session_of(&record(&mut h, 1, true, false));
    record(&mut h, 1, false, false);
    let out = record(&mut h, 1, true, false);
    let second = session_of(&out);
    assert_ne!(first.id, second.id);
    assert_eq!(records(&out), [("p3".into(), true)]);
}

#[test]
fn presentation_only_records_during_presentations_alone() {
    let mut h = room();
    consent(&mut h, 2, true);
    consent(&mut h, 3, true);
    let out = record(&mut h, 1, true, true);
    assert!(
        records(&out).is_empty(),
        "before the agenda starts, no presentation"
    );
    let started = &recording_to(&out, 2)[0];
    assert!(started.on && started.presentation_only && started.recorded.is_empty());
    let out = control(&mut h, Command::Start);
    assert_eq!(
        records(&out),
        [("p2".into(), true), ("p3".into(), true)],
        "the organisation's presentation"
    );
    assert!(
        records(&control(&mut h, Command::Next)).is_empty(),
        "the tactic's presentation goes on recording"
    );
    let out = control(&mut h, Command::Next);
    assert_eq!(
        records(&out),
        [("p2".into(), false), ("p3".into(), false)],
        "the conversation is not recorded"
    );
    assert_eq!(recording_to(&out, 1)[0].recorded, Vec::<String>::new());
    let out = control(&mut h, Command::Next);
    assert_eq!(records(&out).len(), 2, "the next tactic's organisation");
    let out = control(&mut h, Command::End);
    assert_eq!(
        records(&out),
        [("p2".into(), false), ("p3".into(), false)],
        "after the end, no presentation"
    );
}

#[test]
fn a_participant_may_not_start_or_stop_recording() {
    let mut h = room();
    consent(&mut h, 2, true);
    let out = record(&mut h, 2, true, false);
    assert_eq!(Harness::error_code(&out, 2), Some(ErrorCode::Forbidden));
    assert_eq!(out.len(), 1, "nothing but the refusal: {out:?}");
    record(&mut h, 1, true, false);
    let out = record(&mut h, 3, false, false);
    assert_eq!(Harness::error_code(&out, 3), Some(ErrorCode::Forbidden));
    assert_eq!(out.len(), 1, "still recording: {out:?}");
    assert!(h.room.recording_view().on);
}

#[test]
fn starting_twice_or_stopping_when_off_is_refused() {
    let mut h = room();
    let out = record(&mut h, 1, false, false);
    assert_eq!(
        Harness::error_code(&out, 1),
        Some(ErrorCode::RecordingState)
    );
    record(&mut h, 1, true, false);
    let out = record(&mut h, 1, true, true);
    assert_eq!(
        Harness::error_code(&out, 1),
        Some(ErrorCode::RecordingState)
    );
    assert!(!h.room.recording_view().presentation_only);
}

#[test]
fn the_recording_message_reaches_everyone_and_joined_carries_it() {
    let (mut h, out, session) = ann_recorded();
    let want = RecordingView {
        on: true,
        presentation_only: false,
        session: Some(session.id.clone()),
        recorded: vec!["p2".into()],
    };
    for conn in 1..=3 {
        assert_eq!(
            recording_to(&out, conn),
            std::slice::from_ref(&want),
            "conn {conn}"
        );
    }
    // Starting and stopping are audited, as moderation is.
    assert!(out.iter().any(|o| matches!(
        o,
        Output::Audit(e) if e.action == "record_start" && e.actor == "p1"
    )));

    // A joiner who consents: the others hear of it; the joiner reads it in `joined`.
    let out = h.join_consenting(4, "Cy");
    assert_eq!(records(&out), [("p4".into(), true)]);
    assert_eq!(recording_to(&out, 2)[0].recorded, ["p2", "p4"]);
    assert!(recording_to(&out, 4).is_empty());
    let Some(ServerMsg::Joined { recording, .. }) = Harness::sent_to(&out, 4)
        .into_iter()
        .find(|m| matches!(m, ServerMsg::Joined { .. }))
    else {
        panic!("Cy is not seated");
    };
    assert_eq!(recording.recorded, ["p2", "p4"]);
    assert_eq!(recording.session, Some(session.id));
}

#[test]
fn observers_are_not_recorded_and_leavers_stop_being_recorded() {
    let mut h = room();
    record(&mut h, 1, true, false);
    h.join_as(4, "Obi", invite("o", Role::Observer));
    let out = consent(&mut h, 4, true);
    assert_eq!(ledger(&out).len(), 1, "their consent is in the ledger");
    assert!(records(&out).is_empty(), "but they publish nothing");

    consent(&mut h, 2, true);
    h.room.handle_leave(h.now, 2, LeaveReason::Left);
    let out = h.drain();
    assert_eq!(records(&out), [("p2".into(), false)]);
    let stop = out
        .iter()
        .position(|o| matches!(o, Output::Record { .. }))
        .unwrap();
    let close = out
        .iter()
        .position(|o| matches!(o, Output::CloseMedia { .. }))
        .unwrap();
    assert!(stop < close, "the recording stops before the media goes");
}

#[test]
fn the_session_ends_when_the_room_empties() {
    let mut h = room();
    consent(&mut h, 3, true);
    record(&mut h, 1, true, false);
    for conn in 1..=3 {
        h.room.handle_leave(h.now, conn, LeaveReason::Disconnected);
    }
    let out = h.drain();
    assert!(
        out.iter()
            .any(|o| matches!(o, Output::RecordingEnded { .. }))
    );
    assert!(!h.room.recording_view().on);
    let stops: Vec<(&str, Option<&str>)> = out
        .iter()
        .filter_map(|o| match o {
            Output::Audit(e) if e.action == "record_stop" => {
                Some((e.actor.as_str(), e.detail.as_deref()))
            }
            _ => None,
        })
        .collect();
    assert_eq!(stops.len(), 1, "{stops:?}");
    assert_eq!(stops[0].0, "server");
    assert!(
        stops[0]
            .1
            .is_some_and(|d| d.ends_with(": the room emptied"))
    );
}

#[test]
fn a_shutdown_ends_the_session_in_the_audit_log() {
    let mut h = room();
    record(&mut h, 1, true, false);
    h.room.handle_shutdown(h.now);
    let out = h.drain();
    let stop = out.iter().find_map(|o| match o {
        Output::Audit(e) if e.action == "record_stop" => Some(e.clone()),
        _ => None,
    });
    let stop = stop.expect("a record_stop entry");
    assert_eq!(stop.actor, "server");
    assert!(
        stop.detail
            .is_some_and(|d| d.ends_with(": the server stopped"))
    );
    h.room.handle_shutdown(h.now);
    assert!(
        !h.drain().iter().any(|o| matches!(o, Output::Audit(_))),
        "nothing to end twice"
    );
}
