//! The agenda in words, for `roundtable room agenda`: the plan, where it stands, and the
//! last run planned against actual, one line per segment.

use std::collections::HashMap;
use std::fmt::Write;

use signaling::agenda::{Advocate, Phase, Plan, SegmentKind, TimeUp};

use super::{AgendaReport, RunReport};

/// A room's invites by id, with the name each fixes: advocates are shown by name.
pub type AdvocateNames = HashMap<String, Option<String>>;

/// The agenda of `room` in words. `invites` names the advocates.
pub fn render(room: &str, report: &AgendaReport, invites: &AdvocateNames) -> String {
    let plan = report.plan;
    let mut out = format!(
        "Agenda of room {room}: {} tactics, {} planned.\n{}\n",
        plan.tactics.len(),
        clock(i64::try_from(plan.planned_s()).unwrap_or(i64::MAX)),
        rules(plan)
    );
    for (n, tactic) in plan.tactics.iter().enumerate() {
        let organisation = match tactic.organisation.as_str() {
            "" => String::new(),
            o => format!(" ({o})"),
        };
        let segments: Vec<String> = tactic
            .segments
            .iter()
            .map(|s| format!("{} {}", kind(s.kind), minutes(s.duration_s)))
            .collect();
        // Writing to a String cannot fail.
        let _ = write!(
            out,
            "{}. {}{organisation}\n   advocate: {}\n   {}\n",
            n + 1,
            tactic.title,
            advocate(tactic.advocate.as_ref(), invites),
            segments.join(", ")
        );
    }
    let _ = writeln!(out, "Now: {}.", now(report));
    match report.runs.last() {
        None => out += "No run yet.\n",
        Some(run) => out += &last_run(run),
    }
    out
}

fn rules(plan: &Plan) -> String {
    let policy = match plan.time_up {
        TimeUp::Warn => "warn",
        TimeUp::Advance => "advance",
        TimeUp::Mute => "mute",
    };
    let marks: Vec<String> = plan
        .warn_at_s
        .iter()
        .map(|m| clock(i64::from(*m)))
        .collect();
    let marks = match marks.as_slice() {
        [] => "no warnings".to_string(),
        _ => format!("warnings at {} left", marks.join(", ")),
    };
    let hands = if plan.hand_raise { "on" } else { "off" };
    format!(
        "Time up: {policy}, after {} s of grace; {marks}; hand raise {hands}.",
        plan.grace_s
    )
}

fn advocate(advocate: Option<&Advocate>, invites: &AdvocateNames) -> String {
    match advocate {
        None => "not assigned".into(),
        Some(Advocate::Invite { id }) => match invites.get(id) {
            Some(Some(name)) => format!("{name} (invite {id})"),
            Some(None) => format!("whoever joins with invite {id}"),
            None => format!("invite {id}, which is not an invite of this room"),
        },
        Some(Advocate::Participant { id }) => format!("participant {id}, while in the room"),
    }
}

fn now(report: &AgendaReport) -> String {
    let (Some(t), Some(s)) = (report.tactic, report.segment) else {
        return match report.phase {
            Phase::Ended => "ended".into(),
            _ => "not started".into(),
        };
    };
    let phase = if report.phase == Phase::Paused {
        "paused"
    } else {
        "running"
    };
    let tactic = &report.plan.tactics[t];
    let left = report.remaining_ms.unwrap_or(0).div_euclid(1000);
    let left = if left < 0 {
        format!("{} over", clock(-left))
    } else {
        format!("{} left", clock(left))
    };
    format!(
        "{phase}, tactic {} ({}), segment {} of {} ({}), {left}",
        t + 1,
        tactic.title,
        s + 1,
        tactic.segments.len(),
        kind(tactic.segments[s].kind)
    )
}

fn last_run(run: &RunReport) -> String {
    let ended = run
        .ended_at
        .map_or("still under way".into(), |at| format!("ended {}", utc(at)));
    let mut out = format!(
        "Last run: started {}, {ended}; {} in all.\n",
        utc(run.started_at),
        clock(run.actual_s)
    );
    for s in &run.segments {
        let r = s.record;
        let extended = match r.extended_s {
            0 => String::new(),
            e => format!(" +{}", clock(i64::from(e))),
        };
        let floor = match r.floor.as_slice() {
            [] => "-".to_string(),
            names => names.join(", "),
        };
        let _ = writeln!(
            out,
            "  {}.{}\t{}\t{}\tplanned {}{extended}\tactual {}{}\tfloor: {floor}",
            r.tactic + 1,
            r.segment + 1,
            r.title,
            kind(r.kind),
            clock(i64::from(r.planned_s)),
            clock(s.actual_s),
            if r.ended_at.is_none() { " so far" } else { "" }
        );
    }
    out
}

fn kind(kind: SegmentKind) -> &'static str {
    match kind {
        SegmentKind::Organisation => "organisation",
        SegmentKind::Tactic => "tactic",
        SegmentKind::Conversation => "conversation",
    }
}

/// Seconds as `m:ss` (minutes may pass 59).
fn clock(s: i64) -> String {
    format!("{}:{:02}", s / 60, s % 60)
}

/// A planned length in minutes, with seconds only when there are some.
fn minutes(s: u32) -> String {
    match (s / 60, s % 60) {
        (m, 0) => format!("{m} min"),
        (0, s) => format!("{s} s"),
        (m, s) => format!("{m} min {s} s"),
    }
}

fn utc(ms: i64) -> String {
    crate::invites::utc(ms)
}

#[cfg(test)]
mod tests {
    use signaling::agenda::{Agenda, Command};

    use super::*;

    const T0: i64 = 1_765_000_000_000;

    #[test]
    fn the_plan_and_the_last_run_read_in_words() {
        let mut plan = Plan::skill_share(2);
        plan.tactics[0].title = "Data for advocacy".into();
        plan.tactics[0].organisation = "Open Streets".into();
        plan.tactics[0].advocate = Some(Advocate::Invite { id: "inv1".into() });
        plan.tactics[1].advocate = Some(Advocate::Invite { id: "gone".into() });
        plan.tactics[1].segments[1].duration_s = 270;
        let mut agenda = Agenda::new(plan);
        let invites = AdvocateNames::from([("inv1".to_string(), Some("Amina".to_string()))]);
        let text = render("r1", &AgendaReport::new(&agenda, T0), &invites);
        assert_eq!(
            text,
            "Agenda of room r1: 2 tactics, 49:30 planned.\n\
             Time up: warn, after 30 s of grace; warnings at 1:00 left; hand raise off.\n\
             1. Data for advocacy (Open Streets)\n   advocate: Amina (invite inv1)\n\
             \x20  organisation 5 min, tactic 5 min, conversation 15 min\n\
             2. Tactic 2\n   advocate: invite gone, which is not an invite of this room\n\
             \x20  organisation 5 min, tactic 4 min 30 s, conversation 15 min\n\
             Now: not started.\nNo run yet.\n"
        );
        agenda.handle_command(T0, Command::Start, None).unwrap();
        agenda.note_floor("Fay");
        agenda
            .handle_command(T0 + 1_000, Command::Extend, Some(90))
            .unwrap();
        agenda
            .handle_command(T0 + 400_000, Command::Next, None)
            .unwrap();
        agenda.note_floor("Amina");
        let text = render("r1", &AgendaReport::new(&agenda, T0 + 640_000), &invites);
        let tail: Vec<&str> = text.lines().skip(8).collect();
        assert_eq!(
            tail,
            [
                "Now: running, tactic 1 (Data for advocacy), segment 2 of 3 (tactic), 1:00 left.",
                "Last run: started 2025-12-06 05:46 UTC, still under way; 10:40 in all.",
                "  1.1\tData for advocacy\torganisation\tplanned 5:00 +1:30\tactual 6:40\tfloor: Fay",
                "  1.2\tData for advocacy\ttactic\tplanned 5:00\tactual 4:00 so far\tfloor: Amina",
            ]
        );
        agenda
            .handle_command(T0 + 700_000, Command::End, None)
            .unwrap();
        let text = render("r1", &AgendaReport::new(&agenda, T0 + 800_000), &invites);
        assert!(text.contains("Now: ended.\n"), "{text}");
        assert!(
            text.contains("ended 2025-12-06 05:58 UTC; 11:40 in all"),
            "{text}"
        );
        assert!(text.contains("actual 5:00\tfloor: Amina"), "{text}");
    }
}
