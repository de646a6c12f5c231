//! The tactic agenda: a plan ([`plan`]) and a sans-IO engine that runs it on the server's
//! clock. Facilitators drive it with [`Command`]s; timers come from [`Agenda::poll_timeout`]
//! and [`Agenda::handle_timeout`]. Every time is Unix milliseconds: a deadline must mean the
//! same after a restart, so the engine keeps absolute times, never durations from a boot.
//!
//! The engine emits [`Event`]s and keeps, beside the plan, what actually happened: each run
//! (one per `start`) with the actual start and end of every segment and each transition.

pub mod plan;

use serde::{Deserialize, Serialize};

pub use plan::{Advocate, Plan, Segment, SegmentKind, Tactic, TimeUp};

/// Runs kept in the record; older ones are dropped.
pub const MAX_RUNS: usize = 20;
/// Transitions kept per run; later ones are not recorded (the segments still are).
pub const MAX_TRANSITIONS: usize = 1000;
/// Most seconds one `extend` adds.
pub const MAX_EXTEND_S: u32 = 3600;

/// Where the agenda is.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Phase {
    /// Not started.
    #[default]
    Ready,
    /// A segment's clock runs.
    Running,
    /// A segment's clock is stopped.
    Paused,
    /// The last segment ended, or a facilitator ended it.
    Ended,
}

/// What a facilitator asks of the agenda.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Command {
    /// Start at the first segment of the first tactic (again, after an end).
    Start,
    /// Stop the clock.
    Pause,
    /// Start the clock again.
    Resume,
    /// Add seconds to the current segment.
    Extend,
    /// End the current segment; the next starts (or the agenda ends).
    Next,
    /// Go back to the previous segment; it starts afresh.
    Previous,
    /// Go to the next tactic's first segment (or end).
    SkipTactic,
    /// End the agenda.
    End,
}

/// What the agenda tells the room.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "kind", rename_all = "snake_case")]
pub enum Event {
    /// A segment started (after start, next, previous, skip, or an advance at time up).
    SegmentStarted,
    /// `left_s` seconds are left in the segment.
    Warning {
        /// Seconds left.
        left_s: u32,
    },
    /// The segment's time is up.
    TimeUp,
    /// The grace period after time up is over too.
    Overrun,
    /// The `mute` policy closed the presenter's floor.
    FloorClosed,
    /// The clock stopped.
    Paused,
    /// The clock runs again.
    Resumed,
    /// The segment got more time.
    Extended,
    /// The agenda ended.
    Ended,
}

/// One segment as it happened.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct SegmentRecord {
    /// The tactic's index and title then.
    pub tactic: usize,
    /// The tactic's title then.
    pub title: String,
    /// The segment's index in its tactic.
    pub segment: usize,
    /// Its kind.
    pub kind: SegmentKind,
    /// Planned length, seconds.
    pub planned_s: u32,
    /// Seconds added by `extend`.
    pub extended_s: u32,
    /// Actual start, Unix ms.
    pub started_at: i64,
    /// Actual end, Unix ms; `None` while it runs.
    pub ended_at: Option<i64>,
    /// Who held the floor during it, by name, in the order they got it (facilitators aside).
    pub floor: Vec<String>,
}

/// One transition, for the record.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Transition {
    /// Unix ms.
    pub ts: i64,
    /// What: a [`Command`] or an [`Event`] name (`start`, `pause`, `time_up`, ...).
    pub what: String,
    /// Where the agenda was after it.
    pub tactic: usize,
    /// The segment index.
    pub segment: usize,
}

/// One run of the agenda, from `start` to its end.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Run {
    /// Unix ms.
    pub started_at: i64,
    /// Unix ms; `None` while it runs.
    pub ended_at: Option<i64>,
    /// Every segment as it happened, in order.
    pub segments: Vec<SegmentRecord>,
    /// Every transition, in order.
    pub transitions: Vec<Transition>,
}

/// The engine's state: what it needs to go on after a restart, and the record.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct State {
    /// Where the agenda is.
    pub phase: Phase,
    /// The current tactic's index (while running or paused).
    pub tactic: usize,
    /// The current segment's index in its tactic.
    pub segment: usize,
    /// When the current segment started, Unix ms.
    pub started_at: i64,
    /// While running: when the current segment's time is up, Unix ms.
    pub deadline: Option<i64>,
    /// While paused: milliseconds that were left (negative once over time).
    pub remaining_ms: Option<i64>,
    /// Seconds added to the current segment.
    pub extended_s: u32,
    /// Warnings (seconds before the end) already given in this segment.
    pub warned: Vec<u32>,
    /// Time up was signalled for this segment.
    pub time_up: bool,
    /// The grace period is over for this segment.
    pub overrun: bool,
    /// The `mute` policy closed the presenter's floor in this segment.
    pub floor_closed: bool,
    /// The runs, oldest first, at most [`MAX_RUNS`].
    pub runs: Vec<Run>,
}

/// Why a command was refused.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Refusal(pub String);

/// The agenda: a plan and where it stands.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Agenda {
    /// The plan.
    pub plan: Plan,
    /// Where it stands, and the record.
    pub state: State,
}

impl Agenda {
    /// A fresh agenda of `plan`, not started.
    pub fn new(plan: Plan) -> Self {
        Agenda {
            plan,
            state: State::default(),
        }
    }

    /// The current tactic and segment, while running or paused.
    pub fn current(&self) -> Option<(&Tactic, &Segment)> {
        if !matches!(self.state.phase, Phase::Running | Phase::Paused) {
            return None;
        }
        let tactic = self.plan.tactics.get(self.state.tactic)?;
        Some((tactic, tactic.segments.get(self.state.segment)?))
    }

    /// Whether the agenda runs or is paused (then the floor follows it).
    pub fn is_live(&self) -> bool {
        matches!(self.state.phase, Phase::Running | Phase::Paused)
    }

    /// Milliseconds left in the current segment at `now` (negative once over time).
    pub fn remaining_ms(&self, now: i64) -> Option<i64> {
        match self.state.phase {
            Phase::Running => self.state.deadline.map(|d| d - now),
            Phase::Paused => self.state.remaining_ms,
            _ => None,
        }
    }

    /// Note that `name` got the floor in the current segment (for the record).
    pub fn note_floor(&mut self, name: &str) {
        if let Some(record) = self.current_record()
            && !record.floor.iter().any(|n| n == name)
        {
            record.floor.push(name.to_string());
        }
    }

    /// Record a change of the floor (`give_floor`, `take_floor`, `yield_floor`) among the
    /// transitions of the run under way; outside a run there is nothing to record it in.
    pub fn note_transition(&mut self, now: i64, what: &str) {
        if self.is_live() {
            self.transition(now, what);
        }
    }

    /// Carry out a facilitator's command at `now`. `seconds` is for `extend`.
    pub fn handle_command(
        &mut self,
        now: i64,
        command: Command,
        seconds: Option<u32>,
    ) -> Result<Vec<Event>, Refusal> {
        use Phase::*;
        let phase = self.state.phase;
        let mut events = Vec::new();
        match (command, phase) {
            (Command::Start, Ready | Ended) => {
                if self.plan.tactics.is_empty() {
                    return Err(refuse("the agenda has no tactic"));
                }
                self.state.runs.push(Run {
                    started_at: now,
                    ended_at: None,
                    segments: Vec::new(),
                    transitions: Vec::new(),
                });
                let excess = self.state.runs.len().saturating_sub(MAX_RUNS);
                self.state.runs.drain(..excess);
                self.begin(now, 0, 0, &mut events);
            }
            (Command::Start, _) => return Err(refuse("the agenda is already under way")),
            (Command::Pause, Running) => {
                self.state.remaining_ms = self.state.deadline.map(|d| d - now);
                self.state.deadline = None;
                self.state.phase = Paused;
                events.push(Event::Paused);
            }
            (Command::Resume, Paused) => {
                let left = self.state.remaining_ms.take().unwrap_or(0);
                self.state.deadline = Some(now + left);
                self.state.phase = Running;
                events.push(Event::Resumed);
            }
            (Command::Pause, _) => return Err(refuse("the agenda's clock is not running")),
            (Command::Resume, _) => return Err(refuse("the agenda is not paused")),
            (Command::Extend, Running | Paused) => {
                let s = seconds.unwrap_or(60);
                if s == 0 || s > MAX_EXTEND_S {
                    return Err(refuse(format!("extend by 1 to {MAX_EXTEND_S} seconds")));
                }
                let add = i64::from(s) * 1000;
                if let Some(d) = &mut self.state.deadline {
                    *d += add;
                }
                if let Some(r) = &mut self.state.remaining_ms {
                    *r += add;
                }
                self.state.extended_s += s;
                if let Some(record) = self.current_record() {
                    record.extended_s += s;
                }
                self.rearm(now);
                events.push(Event::Extended);
            }
            (Command::Next, Running | Paused) => self.advance(now, &mut events),
            (Command::Previous, Running | Paused) => {
                let (t, s) = (self.state.tactic, self.state.segment);
                let back = if s > 0 {
                    (t, s - 1)
                } else if t > 0 {
                    let prev = t - 1;
                    (prev, self.plan.tactics[prev].segments.len() - 1)
                } else {
                    return Err(refuse("this is the first segment"));
                };
                self.finish_segment(now);
                self.begin(now, back.0, back.1, &mut events);
            }
            (Command::SkipTactic, Running | Paused) => {
                self.finish_segment(now);
                let next = self.state.tactic + 1;
                if next < self.plan.tactics.len() {
                    self.begin(now, next, 0, &mut events);
                } else {
                    self.end(now, &mut events);
                }
            }
            (Command::End, Running | Paused) => {
                self.finish_segment(now);
                self.end(now, &mut events);
            }
            (_, Ready) => return Err(refuse("the agenda has not started")),
            (_, Ended) => return Err(refuse("the agenda has ended")),
        }
        let what = command_name(command);
        self.transition(now, what);
        Ok(events)
    }

    /// Replace the plan. While the agenda is under way, the current tactic must still be
    /// there, with its title: at its old place if it is still there, else the first tactic of
    /// that title. Its segment's clock keeps running, with the new duration if it changed.
    pub fn set_plan(&mut self, now: i64, plan: Plan) -> Result<(), Refusal> {
        plan.check().map_err(Refusal)?;
        if self.is_live() {
            let (t, s) = (self.state.tactic, self.state.segment);
            let old = &self.plan.tactics[t];
            let same_place = plan.tactics.get(t).is_some_and(|n| n.title == old.title);
            let found = same_place
                .then_some(t)
                .or_else(|| plan.tactics.iter().position(|n| n.title == old.title));
            let Some(new) = found else {
                return Err(refuse(
                    "the tactic under way cannot be removed or renamed; skip it first",
                ));
            };
            let Some(segment) = plan.tactics[new].segments.get(s) else {
                return Err(refuse("the segment under way cannot be removed"));
            };
            let old_s = self.plan.tactics[t].segments[s].duration_s;
            let delta = (i64::from(segment.duration_s) - i64::from(old_s)) * 1000;
            if let Some(d) = &mut self.state.deadline {
                *d += delta;
            }
            if let Some(r) = &mut self.state.remaining_ms {
                *r += delta;
            }
            // The segment under way keeps its record: it moves with its tactic.
            if let Some(record) = self.current_record() {
                record.tactic = new;
            }
            self.state.tactic = new;
            self.plan = plan;
            self.rearm(now);
            self.transition(now, "edit");
        } else {
            // Not under way: no place to keep, no run to record it in.
            self.plan = plan;
            self.state.tactic = 0;
            self.state.segment = 0;
        }
        Ok(())
    }

    /// When [`Agenda::handle_timeout`] is next due, Unix ms.
    pub fn poll_timeout(&self) -> Option<i64> {
        if self.state.phase != Phase::Running {
            return None;
        }
        let deadline = self.state.deadline?;
        let warnings = self
            .plan
            .warn_at_s
            .iter()
            .filter(|m| !self.state.warned.contains(m))
            .map(|m| deadline - i64::from(*m) * 1000);
        let time_up = (!self.state.time_up).then_some(deadline);
        let overrun = (!self.state.overrun).then(|| deadline + i64::from(self.plan.grace_s) * 1000);
        warnings.chain(time_up).chain(overrun).min()
    }

    /// The time from [`Agenda::poll_timeout`] has come (or passed: after a restart, every
    /// signal that fell due meanwhile comes at once, in order).
    pub fn handle_timeout(&mut self, now: i64) -> Vec<Event> {
        let mut events = Vec::new();
        if self.state.phase != Phase::Running {
            return events;
        }
        let Some(deadline) = self.state.deadline else {
            return events;
        };
        let mut marks: Vec<u32> = self
            .plan
            .warn_at_s
            .iter()
            .copied()
            .filter(|m| !self.state.warned.contains(m))
            .filter(|m| deadline - i64::from(*m) * 1000 <= now)
            .collect();
        marks.sort_unstable_by(|a, b| b.cmp(a));
        for mark in marks {
            self.state.warned.push(mark);
            // A mark already past the deadline is not worth a warning.
            if now < deadline {
                events.push(Event::Warning { left_s: mark });
            }
        }
        if !self.state.time_up && now >= deadline {
            self.state.time_up = true;
            events.push(Event::TimeUp);
            self.transition(now, "time_up");
        }
        let grace_end = deadline + i64::from(self.plan.grace_s) * 1000;
        if !self.state.overrun && now >= grace_end {
            self.state.overrun = true;
            events.push(Event::Overrun);
            self.transition(now, "overrun");
            match self.plan.time_up {
                TimeUp::Warn => {}
                TimeUp::Advance => {
                    self.advance(now, &mut events);
                    self.transition(now, "advance");
                }
                TimeUp::Mute => {
                    // Facilitators present the organisation and always keep the floor: only
                    // a tactic's presenter has one to close.
                    let presenting = self
                        .current()
                        .is_some_and(|(_, s)| s.kind == SegmentKind::Tactic);
                    if presenting {
                        self.state.floor_closed = true;
                        events.push(Event::FloorClosed);
                    }
                }
            }
        }
        events
    }

    fn advance(&mut self, now: i64, events: &mut Vec<Event>) {
        self.finish_segment(now);
        let (t, s) = (self.state.tactic, self.state.segment);
        if s + 1 < self.plan.tactics[t].segments.len() {
            self.begin(now, t, s + 1, events);
        } else if t + 1 < self.plan.tactics.len() {
            self.begin(now, t + 1, 0, events);
        } else {
            self.end(now, events);
        }
    }

    fn begin(&mut self, now: i64, tactic: usize, segment: usize, events: &mut Vec<Event>) {
        let t = &self.plan.tactics[tactic];
        let planned_s = t.segments[segment].duration_s;
        let record = SegmentRecord {
            tactic,
            title: t.title.clone(),
            segment,
            kind: t.segments[segment].kind,
            planned_s,
            extended_s: 0,
            started_at: now,
            ended_at: None,
            floor: Vec::new(),
        };
        let deadline = now + i64::from(planned_s) * 1000;
        self.state = State {
            phase: Phase::Running,
            tactic,
            segment,
            started_at: now,
            deadline: Some(deadline),
            remaining_ms: None,
            extended_s: 0,
            // A mark as long as the segment, or longer, is no warning.
            warned: self
                .plan
                .warn_at_s
                .iter()
                .copied()
                .filter(|m| *m >= planned_s)
                .collect(),
            time_up: false,
            overrun: false,
            floor_closed: false,
            runs: std::mem::take(&mut self.state.runs),
        };
        if let Some(run) = self.state.runs.last_mut() {
            run.segments.push(record);
        }
        events.push(Event::SegmentStarted);
    }

    fn end(&mut self, now: i64, events: &mut Vec<Event>) {
        self.state.phase = Phase::Ended;
        self.state.deadline = None;
        self.state.remaining_ms = None;
        self.state.floor_closed = false;
        if let Some(run) = self.state.runs.last_mut() {
            run.ended_at = Some(now);
        }
        events.push(Event::Ended);
    }

    fn finish_segment(&mut self, now: i64) {
        if let Some(record) = self.current_record() {
            record.ended_at = Some(now);
        }
    }

    /// After more time: the signals still ahead can come again.
    fn rearm(&mut self, now: i64) {
        let left = self.remaining_ms(now).unwrap_or(0);
        if left > 0 {
            self.state.time_up = false;
            self.state.floor_closed = false;
        }
        if left + i64::from(self.plan.grace_s) * 1000 > 0 {
            self.state.overrun = false;
        }
        let planned = self
            .current()
            .map_or(0, |(_, s)| s.duration_s + self.state.extended_s);
        self.state
            .warned
            .retain(|m| i64::from(*m) * 1000 >= left || *m >= planned);
    }

    fn current_record(&mut self) -> Option<&mut SegmentRecord> {
        if !self.is_live() {
            return None;
        }
        let (t, s) = (self.state.tactic, self.state.segment);
        self.state
            .runs
            .last_mut()?
            .segments
            .iter_mut()
            .rev()
            .find(|r| r.tactic == t && r.segment == s && r.ended_at.is_none())
    }

    fn transition(&mut self, now: i64, what: &str) {
        let (tactic, segment) = (self.state.tactic, self.state.segment);
        if let Some(run) = self.state.runs.last_mut()
            && run.transitions.len() < MAX_TRANSITIONS
        {
            run.transitions.push(Transition {
                ts: now,
                what: what.to_string(),
                tactic,
                segment,
            });
        }
    }
}

fn refuse(why: impl Into<String>) -> Refusal {
    Refusal(why.into())
}

/// A command's name on the wire and in the record.
pub fn command_name(command: Command) -> &'static str {
    match command {
        Command::Start => "start",
        Command::Pause => "pause",
        Command::Resume => "resume",
        Command::Extend => "extend",
        Command::Next => "next",
        Command::Previous => "previous",
        Command::SkipTactic => "skip_tactic",
        Command::End => "end",
    }
}

#[cfg(test)]
mod tests;
