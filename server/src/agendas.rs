//! A room's agenda as the admin sees it. The CLI and the admin API both go through here:
//! they read and replace a stored agenda the same way, parse plans the same way, and report
//! planned against actual in the same shape.
//!
//! Only a room that is not running is edited in the store. A running room keeps the live
//! copy in its task, and the API asks the task instead (`http/agenda.rs`).

mod text;

use serde::Serialize;
use signaling::agenda::{Agenda, Phase, Plan, SegmentRecord, Transition};
use signaling::room::TEMPLATE_TACTICS;

use crate::store::{Store, StoreError};

pub use text::{AdvocateNames, render};

/// Why an agenda could not be read or changed.
#[derive(Debug, thiserror::Error)]
pub enum AgendaError {
    /// No such room.
    #[error("no room `{0}`")]
    RoomNotFound(String),
    /// The plan does not parse, or fails [`Plan::check`].
    #[error("bad agenda: {0}")]
    BadPlan(String),
    /// The agenda under way refuses the change.
    #[error("{0}")]
    State(String),
    /// The store failed.
    #[error(transparent)]
    Store(#[from] StoreError),
}

/// What a room that never ran starts with: the Skill Share template.
pub fn template() -> Agenda {
    Agenda::new(Plan::skill_share(TEMPLATE_TACTICS))
}

/// A room's stored agenda, or the template if it has none yet.
pub async fn stored(store: &dyn Store, room: &str) -> Result<Agenda, AgendaError> {
    if store.get_room(room).await?.is_none() {
        return Err(AgendaError::RoomNotFound(room.to_string()));
    }
    Ok(store.load_agenda(room).await?.unwrap_or_else(template))
}

/// Replace the plan of `agenda`, a room's stored agenda, at `now_ms`, and store it. An
/// agenda under way keeps its clock (see [`Agenda::set_plan`]).
pub async fn replace_plan(
    store: &dyn Store,
    room: &str,
    agenda: &mut Agenda,
    plan: Plan,
    now_ms: i64,
) -> Result<(), AgendaError> {
    let plan = checked(Ok(plan))?;
    agenda
        .set_plan(now_ms, plan)
        .map_err(|refusal| AgendaError::State(refusal.0))?;
    store.save_agenda(room, agenda, now_ms).await?;
    Ok(())
}

/// A plan from a JSON document (a file), checked.
pub fn parse_plan(json: &str) -> Result<Plan, AgendaError> {
    checked(serde_json::from_str(json))
}

/// A plan from a JSON value (a request body's `plan`), checked.
pub fn plan_from_value(value: serde_json::Value) -> Result<Plan, AgendaError> {
    checked(serde_json::from_value(value))
}

fn checked(plan: serde_json::Result<Plan>) -> Result<Plan, AgendaError> {
    let plan = plan.map_err(|e| AgendaError::BadPlan(e.to_string()))?;
    plan.check().map_err(AgendaError::BadPlan)?;
    Ok(plan)
}

/// An agenda, planned against actual: the plan, where it stands, and each run with the
/// actual length of every segment. The admin API's reply and the CLI's `--json`.
#[derive(Debug, Serialize)]
pub struct AgendaReport<'a> {
    /// The plan.
    pub plan: &'a Plan,
    /// The plan's length, seconds.
    pub planned_s: u64,
    /// Not started, running, paused or ended.
    pub phase: Phase,
    /// While running or paused: the current tactic's index.
    pub tactic: Option<usize>,
    /// While running or paused: the current segment's index in its tactic.
    pub segment: Option<usize>,
    /// While running or paused: when the current segment started, Unix ms.
    pub started_at: Option<i64>,
    /// While running: when the current segment's time is up, Unix ms.
    pub deadline: Option<i64>,
    /// While running or paused: milliseconds left at `server_time` (negative once over).
    pub remaining_ms: Option<i64>,
    /// While running or paused: seconds added to the current segment.
    pub extended_s: Option<u32>,
    /// When this report was made, Unix ms.
    pub server_time: i64,
    /// The runs, oldest first.
    pub runs: Vec<RunReport<'a>>,
}

/// One run of the agenda, from `start` to its end.
#[derive(Debug, Serialize)]
pub struct RunReport<'a> {
    /// Unix ms.
    pub started_at: i64,
    /// Unix ms; `None` while it runs.
    pub ended_at: Option<i64>,
    /// Its length so far, seconds.
    pub actual_s: i64,
    /// Every segment as it happened, in order.
    pub segments: Vec<SegmentReport<'a>>,
    /// Every command and timer signal, in order.
    pub transitions: &'a [Transition],
}

/// One segment as it happened, with its actual length.
#[derive(Debug, Serialize)]
pub struct SegmentReport<'a> {
    /// Tactic, title, kind, planned and added seconds, start, end, who held the floor.
    #[serde(flatten)]
    pub record: &'a SegmentRecord,
    /// From its start to its end (or to now, while it runs), seconds.
    pub actual_s: i64,
}

impl<'a> AgendaReport<'a> {
    /// The report of `agenda` at `now_ms`.
    pub fn new(agenda: &'a Agenda, now_ms: i64) -> Self {
        let state = &agenda.state;
        let live = agenda.is_live();
        AgendaReport {
            plan: &agenda.plan,
            planned_s: agenda.plan.planned_s(),
            phase: state.phase,
            tactic: live.then_some(state.tactic),
            segment: live.then_some(state.segment),
            started_at: live.then_some(state.started_at),
            deadline: state.deadline.filter(|_| state.phase == Phase::Running),
            remaining_ms: agenda.remaining_ms(now_ms),
            extended_s: live.then_some(state.extended_s),
            server_time: now_ms,
            runs: state
                .runs
                .iter()
                .map(|run| RunReport {
                    started_at: run.started_at,
                    ended_at: run.ended_at,
                    actual_s: seconds(run.ended_at.unwrap_or(now_ms) - run.started_at),
                    segments: run
                        .segments
                        .iter()
                        .map(|record| SegmentReport {
                            record,
                            actual_s: seconds(
                                record.ended_at.unwrap_or(now_ms) - record.started_at,
                            ),
                        })
                        .collect(),
                    transitions: &run.transitions,
                })
                .collect(),
        }
    }
}

/// Milliseconds to whole seconds, to the nearest; a clock that stepped back gives 0.
fn seconds(ms: i64) -> i64 {
    (ms.max(0) + 500) / 1000
}

#[cfg(test)]
mod tests {
    use serde_json::json;
    use signaling::agenda::Command;

    use super::*;

    const T0: i64 = 1_700_000_000_000;

    #[test]
    fn a_report_sets_planned_against_actual() {
        let mut agenda = Agenda::new(Plan::skill_share(2));
        let ready = serde_json::to_value(AgendaReport::new(&agenda, T0)).unwrap();
        assert_eq!(ready["phase"], "ready");
        assert_eq!(ready["planned_s"], 2 * (300 + 300 + 900));
        for field in [
            "tactic",
            "segment",
            "started_at",
            "deadline",
            "remaining_ms",
        ] {
            assert_eq!(ready[field], json!(null), "{field} before a start");
        }
        agenda.handle_command(T0, Command::Start, None).unwrap();
        agenda.note_floor("Fay");
        agenda
            .handle_command(T0 + 20_000, Command::Extend, Some(60))
            .unwrap();
        agenda
            .handle_command(T0 + 342_400, Command::Next, None)
            .unwrap();
        agenda
            .handle_command(T0 + 400_000, Command::Pause, None)
            .unwrap();
        let report = serde_json::to_value(AgendaReport::new(&agenda, T0 + 410_000)).unwrap();
        assert_eq!(report["phase"], "paused");
        assert_eq!(
            (&report["tactic"], &report["segment"]),
            (&json!(0), &json!(1))
        );
        assert_eq!(report["started_at"], T0 + 342_400);
        assert_eq!(report["deadline"], json!(null), "paused: no deadline");
        assert_eq!(report["remaining_ms"], 300_000 - (400_000 - 342_400));
        let run = &report["runs"][0];
        assert_eq!(run["ended_at"], json!(null));
        assert_eq!(run["actual_s"], 410);
        assert_eq!(
            run["segments"][0],
            json!({"tactic": 0, "title": "Tactic 1", "segment": 0, "kind": "organisation",
                   "planned_s": 300, "extended_s": 60, "started_at": T0,
                   "ended_at": T0 + 342_400, "floor": ["Fay"], "actual_s": 342})
        );
        assert_eq!(
            run["segments"][1]["actual_s"], 68,
            "up to now while it runs"
        );
        let whats: Vec<&str> = run["transitions"]
            .as_array()
            .unwrap()
            .iter()
            .map(|t| t["what"].as_str().unwrap())
            .collect();
        assert_eq!(whats, ["start", "extend", "next", "pause"]);
    }

    #[test]
    fn plans_parse_then_pass_the_check() {
        let plan = Plan::skill_share(1);
        let text = serde_json::to_string(&plan).unwrap();
        assert_eq!(parse_plan(&text).unwrap(), plan);
        let value = serde_json::to_value(&plan).unwrap();
        assert_eq!(plan_from_value(value).unwrap(), plan);
        let bad = [
            r#"{"tactics":[{"title":"T","segments":[{"kind":"tactic","duration":60}]}]}"#,
            r#"{"tactics":[{"title":"T","segments":[{"kind":"talk","duration_s":60}]}]}"#,
            r#"{"tactics":[{"title":"T","segments":[]}]}"#,
            r#"{"tactics":[{"title":" ","segments":[{"kind":"tactic","duration_s":60}]}]}"#,
            r#"{"tactics":[{"title":"T","segments":[{"kind":"tactic","duration_s":0}]}]}"#,
            r#"{"tactics":[],"time_up":"shout"}"#,
            r#"{"tactics":[]"#,
        ];
        for text in bad {
            assert!(
                matches!(parse_plan(text), Err(AgendaError::BadPlan(_))),
                "{text} passed"
            );
        }
        let many = Plan::skill_share(signaling::agenda::plan::MAX_TACTICS + 1);
        let err = plan_from_value(serde_json::to_value(many).unwrap()).unwrap_err();
        assert!(err.to_string().contains("at most"), "{err}");
    }
}
