//! The engine on a fake clock: every command at every point, time up under each policy,
//! restarts, and the record. No sleeps: time is a number we move.

use super::plan::{MAX_SEGMENT_S, MAX_TACTICS, MAX_WARNINGS};
use super::*;

const T0: i64 = 1_700_000_000_000;
const S: i64 = 1000;

/// Two tactics: org 60 s, tactic 60 s, conversation 120 s; warnings at 30 s; grace 10 s.
fn agenda(time_up: TimeUp) -> Agenda {
    let mut plan = Plan::skill_share(2);
    for t in &mut plan.tactics {
        t.segments[0].duration_s = 60;
        t.segments[1].duration_s = 60;
        t.segments[2].duration_s = 120;
    }
    plan.warn_at_s = vec![30];
    plan.grace_s = 10;
    plan.time_up = time_up;
    Agenda::new(plan)
}

fn at(a: &Agenda) -> (Phase, usize, usize) {
    (a.state.phase, a.state.tactic, a.state.segment)
}

fn cmd(a: &mut Agenda, now: i64, c: Command) -> Vec<Event> {
    a.handle_command(now, c, None).expect("allowed")
}

/// Run the timers from `from` to `to` as a driver would: fire each due time in turn.
fn run_until(a: &mut Agenda, to: i64) -> Vec<(i64, Event)> {
    let mut seen = Vec::new();
    while let Some(due) = a.poll_timeout() {
        if due > to {
            break;
        }
        for e in a.handle_timeout(due) {
            seen.push((due, e));
        }
    }
    seen
}

#[test]
fn the_default_template_is_the_skill_share_shape() {
    let plan = Plan::skill_share(3);
    assert_eq!(plan.tactics.len(), 3);
    let shape: Vec<(SegmentKind, u32)> = plan.tactics[0]
        .segments
        .iter()
        .map(|s| (s.kind, s.duration_s))
        .collect();
    assert_eq!(
        shape,
        [
            (SegmentKind::Organisation, 300),
            (SegmentKind::Tactic, 300),
            (SegmentKind::Conversation, 900)
        ]
    );
    assert_eq!(plan.planned_s(), 3 * 25 * 60);
    assert_eq!(plan.warn_at_s, [60]);
    assert!(plan.check().is_ok());
}

#[test]
fn start_runs_the_first_segment_with_its_deadline() {
    let mut a = agenda(TimeUp::Warn);
    assert_eq!(a.poll_timeout(), None, "no timer before the start");
    assert_eq!(cmd(&mut a, T0, Command::Start), [Event::SegmentStarted]);
    assert_eq!(at(&a), (Phase::Running, 0, 0));
    assert_eq!(a.state.deadline, Some(T0 + 60 * S));
    assert_eq!(a.remaining_ms(T0 + 20 * S), Some(40 * S));
    assert_eq!(
        a.poll_timeout(),
        Some(T0 + 30 * S),
        "the 30 s warning first"
    );
    assert!(a.handle_command(T0, Command::Start, None).is_err());
}

#[test]
fn warning_time_up_and_overrun_under_warn() {
    let mut a = agenda(TimeUp::Warn);
    cmd(&mut a, T0, Command::Start);
    let seen = run_until(&mut a, T0 + 200 * S);
    assert_eq!(
        seen,
        [
            (T0 + 30 * S, Event::Warning { left_s: 30 }),
            (T0 + 60 * S, Event::TimeUp),
            (T0 + 70 * S, Event::Overrun),
        ]
    );
    assert_eq!(at(&a), (Phase::Running, 0, 0), "warn only signals");
    assert_eq!(a.poll_timeout(), None, "nothing more is due");
    assert_eq!(a.remaining_ms(T0 + 80 * S), Some(-20 * S));
}

#[test]
fn advance_starts_the_next_segment_after_the_grace() {
    let mut a = agenda(TimeUp::Advance);
    cmd(&mut a, T0, Command::Start);
    let seen = run_until(&mut a, T0 + 70 * S);
    assert_eq!(seen.last(), Some(&(T0 + 70 * S, Event::SegmentStarted)));
    assert_eq!(at(&a), (Phase::Running, 0, 1));
    assert_eq!(a.state.started_at, T0 + 70 * S);
    assert_eq!(a.state.deadline, Some(T0 + 130 * S));
    // All the way to the end: 6 segments, each advanced after its grace.
    let seen = run_until(&mut a, T0 + 10_000 * S);
    assert_eq!(seen.last().map(|(_, e)| *e), Some(Event::Ended));
    assert_eq!(a.state.phase, Phase::Ended);
    let run = &a.state.runs[0];
    assert_eq!(run.segments.len(), 6);
    assert!(run.ended_at.is_some());
    assert!(run.segments.iter().all(|s| s.ended_at.is_some()));
}

#[test]
fn mute_closes_a_presenters_floor_but_not_a_conversation() {
    let mut a = agenda(TimeUp::Mute);
    cmd(&mut a, T0, Command::Start);
    // The organisation's presenters are the facilitators, who keep the floor.
    let seen = run_until(&mut a, T0 + 70 * S);
    assert_eq!(seen.last(), Some(&(T0 + 70 * S, Event::Overrun)));
    assert!(!a.state.floor_closed);
    cmd(&mut a, T0 + 70 * S, Command::Next);
    let seen = run_until(&mut a, T0 + 140 * S);
    assert_eq!(seen.last(), Some(&(T0 + 140 * S, Event::FloorClosed)));
    assert!(a.state.floor_closed);
    assert_eq!(at(&a), (Phase::Running, 0, 1), "mute does not advance");
    // Extending reopens it.
    a.handle_command(T0 + 145 * S, Command::Extend, Some(60))
        .unwrap();
    assert!(!a.state.floor_closed && !a.state.time_up && !a.state.overrun);
    assert_eq!(a.state.deadline, Some(T0 + 190 * S));
    // In a conversation, time up mutes nobody.
    cmd(&mut a, T0 + 150 * S, Command::Next);
    assert_eq!(a.current().unwrap().1.kind, SegmentKind::Conversation);
    let seen = run_until(&mut a, T0 + 1000 * S);
    assert!(
        seen.iter().all(|(_, e)| *e != Event::FloorClosed),
        "{seen:?}"
    );
    assert!(!a.state.floor_closed);
}

#[test]
fn pause_and_resume_keep_the_time_left() {
    let mut a = agenda(TimeUp::Warn);
    cmd(&mut a, T0, Command::Start);
    assert_eq!(cmd(&mut a, T0 + 20 * S, Command::Pause), [Event::Paused]);
    assert_eq!(a.poll_timeout(), None, "no timer while paused");
    assert_eq!(a.remaining_ms(T0 + 500 * S), Some(40 * S));
    assert!(a.handle_command(T0, Command::Pause, None).is_err());
    assert_eq!(cmd(&mut a, T0 + 500 * S, Command::Resume), [Event::Resumed]);
    assert_eq!(a.state.deadline, Some(T0 + 540 * S));
    assert!(a.handle_command(T0, Command::Resume, None).is_err());
    // Paused after time up: the time left is negative and stays so.
    run_until(&mut a, T0 + 545 * S);
    cmd(&mut a, T0 + 545 * S, Command::Pause);
    assert_eq!(a.remaining_ms(T0 + 900 * S), Some(-5 * S));
}

#[test]
fn extend_while_running_and_while_paused() {
    let mut a = agenda(TimeUp::Warn);
    cmd(&mut a, T0, Command::Start);
    run_until(&mut a, T0 + 40 * S); // the 30 s warning was given
    assert_eq!(
        a.handle_command(T0 + 40 * S, Command::Extend, Some(30)),
        Ok(vec![Event::Extended])
    );
    assert_eq!(a.state.deadline, Some(T0 + 90 * S));
    assert_eq!(a.state.extended_s, 30);
    // 50 s are left again: the 30 s warning comes again.
    assert_eq!(a.poll_timeout(), Some(T0 + 60 * S));
    cmd(&mut a, T0 + 50 * S, Command::Pause);
    a.handle_command(T0 + 50 * S, Command::Extend, Some(10))
        .unwrap();
    assert_eq!(a.remaining_ms(T0 + 50 * S), Some(50 * S));
    assert!(a.handle_command(T0, Command::Extend, Some(0)).is_err());
    assert!(
        a.handle_command(T0, Command::Extend, Some(MAX_EXTEND_S + 1))
            .is_err()
    );
    assert_eq!(a.state.runs[0].segments[0].extended_s, 40);
}

#[test]
fn next_previous_and_skip_at_every_point() {
    let mut a = agenda(TimeUp::Warn);
    // Before the start and after the end, only start is allowed.
    for c in [
        Command::Pause,
        Command::Resume,
        Command::Extend,
        Command::Next,
        Command::Previous,
        Command::SkipTactic,
        Command::End,
    ] {
        assert!(a.handle_command(T0, c, None).is_err(), "{c:?} before start");
    }
    cmd(&mut a, T0, Command::Start);
    assert!(
        a.handle_command(T0, Command::Previous, None).is_err(),
        "previous at the very first segment"
    );
    let mut now = T0;
    let mut visited = vec![(a.state.tactic, a.state.segment)];
    for _ in 0..5 {
        now += S;
        cmd(&mut a, now, Command::Next);
        visited.push((a.state.tactic, a.state.segment));
    }
    assert_eq!(visited, [(0, 0), (0, 1), (0, 2), (1, 0), (1, 1), (1, 2)]);
    // Previous crosses back into the earlier tactic's last segment.
    cmd(&mut a, now, Command::Previous);
    cmd(&mut a, now, Command::Previous);
    cmd(&mut a, now, Command::Previous);
    assert_eq!(at(&a), (Phase::Running, 0, 2));
    // Paused, next and previous start the segment running.
    cmd(&mut a, now, Command::Pause);
    cmd(&mut a, now, Command::Next);
    assert_eq!(at(&a), (Phase::Running, 1, 0));
    // Skip from the middle of a tactic goes to the next one; from the last one, it ends.
    cmd(&mut a, now, Command::Previous);
    cmd(&mut a, now, Command::Previous);
    assert_eq!(at(&a), (Phase::Running, 0, 1));
    cmd(&mut a, now, Command::SkipTactic);
    assert_eq!(at(&a), (Phase::Running, 1, 0));
    assert_eq!(cmd(&mut a, now, Command::SkipTactic), [Event::Ended]);
    assert_eq!(a.state.phase, Phase::Ended);
    for c in [Command::Next, Command::Pause, Command::End] {
        assert!(a.handle_command(now, c, None).is_err(), "{c:?} after end");
    }
    // Next at the last segment ends too; and a new start opens a second run.
    cmd(&mut a, now, Command::Start);
    assert_eq!(a.state.runs.len(), 2);
    for _ in 0..5 {
        cmd(&mut a, now, Command::Next);
    }
    assert_eq!(cmd(&mut a, now, Command::Next), [Event::Ended]);
}

#[test]
fn end_at_any_point_closes_the_record() {
    let mut a = agenda(TimeUp::Warn);
    cmd(&mut a, T0, Command::Start);
    cmd(&mut a, T0 + 61 * S, Command::Next);
    cmd(&mut a, T0 + 70 * S, Command::Pause);
    assert_eq!(cmd(&mut a, T0 + 80 * S, Command::End), [Event::Ended]);
    let run = &a.state.runs[0];
    assert_eq!(run.ended_at, Some(T0 + 80 * S));
    let actual: Vec<(i64, Option<i64>, u32)> = run
        .segments
        .iter()
        .map(|s| (s.started_at, s.ended_at, s.planned_s))
        .collect();
    assert_eq!(
        actual,
        [
            (T0, Some(T0 + 61 * S), 60),
            (T0 + 61 * S, Some(T0 + 80 * S), 60)
        ]
    );
    let whats: Vec<&str> = run.transitions.iter().map(|t| t.what.as_str()).collect();
    assert_eq!(whats, ["start", "next", "pause", "end"]);
}

#[test]
fn after_a_restart_the_deadline_counts_from_the_stored_time() {
    let mut a = agenda(TimeUp::Warn);
    cmd(&mut a, T0, Command::Start);
    cmd(&mut a, T0 + 10 * S, Command::Next); // tactic segment: deadline T0 + 70 s
    // The state goes to the store as JSON and comes back in a new process, 25 s later.
    let stored = serde_json::to_string(&a).unwrap();
    let mut b: Agenda = serde_json::from_str(&stored).unwrap();
    assert_eq!(b, a);
    let now = T0 + 35 * S;
    assert_eq!(b.remaining_ms(now), Some(35 * S), "not a fresh 60 s");
    assert!(run_until(&mut b, now).is_empty(), "nothing was due yet");
    assert_eq!(
        b.poll_timeout(),
        Some(T0 + 40 * S),
        "the warning, at its stored time"
    );
    // Back after the warning's time but before the deadline: it is given at once.
    assert_eq!(
        b.handle_timeout(T0 + 65 * S),
        [Event::Warning { left_s: 30 }]
    );
    // Down past the deadline and the grace: time up and overrun come at once, no warning.
    let mut c: Agenda = serde_json::from_str(&stored).unwrap();
    assert_eq!(
        c.handle_timeout(T0 + 500 * S),
        [Event::TimeUp, Event::Overrun]
    );
}

#[test]
fn editing_the_plan_under_way_keeps_the_clock() {
    let mut a = agenda(TimeUp::Warn);
    cmd(&mut a, T0, Command::Start);
    let mut plan = a.plan.clone();
    plan.tactics[0].segments[0].duration_s = 90;
    plan.tactics.insert(0, plan.tactics[1].clone());
    plan.tactics[0].title = "A new first tactic".into();
    a.set_plan(T0 + 10 * S, plan.clone()).unwrap();
    assert_eq!(at(&a), (Phase::Running, 1, 0), "the tactic under way moved");
    assert_eq!(a.state.deadline, Some(T0 + 90 * S), "its new duration");
    let mut gone = plan.clone();
    gone.tactics.remove(1);
    assert!(a.set_plan(T0, gone).is_err());
    let mut bad = plan;
    bad.tactics[0].segments.clear();
    assert!(a.set_plan(T0, bad).is_err());
    let mut empty = Agenda::new(Plan::skill_share(0));
    assert!(empty.handle_command(T0, Command::Start, None).is_err());
}

#[test]
fn plans_are_checked() {
    let mut p = Plan::skill_share(MAX_TACTICS + 1);
    assert!(p.check().is_err());
    p = Plan::skill_share(1);
    p.tactics[0].title = " ".into();
    assert!(p.check().is_err());
    p = Plan::skill_share(1);
    p.tactics[0].segments[0].duration_s = MAX_SEGMENT_S + 1;
    assert!(p.check().is_err());
    p = Plan::skill_share(1);
    p.warn_at_s = vec![1; MAX_WARNINGS + 1];
    assert!(p.check().is_err());
    let json = r#"{"tactics":[{"title":"T","segments":[{"kind":"tactic","duration_s":60}],
        "advocate":{"by":"invite","id":"abc"}}]}"#;
    let parsed: Plan = serde_json::from_str(json).unwrap();
    assert_eq!(parsed.grace_s, 30, "defaults fill the rest");
    assert_eq!(
        parsed.tactics[0].advocate,
        Some(Advocate::Invite { id: "abc".into() })
    );
}

/// Moving the tactic under way keeps its record open and in step; an unchanged plan with
/// two tactics of one title leaves the agenda where it is.
#[test]
fn reordering_under_way_keeps_the_record_and_the_place() {
    let mut a = agenda(TimeUp::Warn);
    cmd(&mut a, T0, Command::Start);
    let mut plan = a.plan.clone();
    plan.tactics.swap(0, 1);
    plan.tactics[0].title = "Moved first".into();
    a.set_plan(T0 + S, plan).unwrap();
    assert_eq!(at(&a), (Phase::Running, 1, 0));
    a.handle_command(T0 + 2 * S, Command::Extend, Some(10))
        .unwrap();
    cmd(&mut a, T0 + 3 * S, Command::Next);
    let first = &a.state.runs[0].segments[0];
    assert_eq!(
        (first.tactic, first.extended_s, first.ended_at),
        (1, 10, Some(T0 + 3 * S))
    );
    // Same titles: the second of two runs, and an unchanged plan does not move it.
    let mut twins = agenda(TimeUp::Warn);
    twins.plan.tactics[1].title = twins.plan.tactics[0].title.clone();
    cmd(&mut twins, T0, Command::Start);
    cmd(&mut twins, T0, Command::SkipTactic);
    let same = twins.plan.clone();
    twins.set_plan(T0 + S, same).unwrap();
    assert_eq!(at(&twins), (Phase::Running, 1, 0));
}

#[test]
fn warning_marks_are_distinct_and_positive() {
    let mut p = Plan::skill_share(1);
    p.warn_at_s = vec![60, 60];
    assert!(p.check().is_err());
    p.warn_at_s = vec![0];
    assert!(p.check().is_err());
    p.warn_at_s = vec![120, 60];
    assert!(p.check().is_ok());
}
