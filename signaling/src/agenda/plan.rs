//! The agenda's plan: ordered tactics, each with its segments and their durations, and the
//! rules for time up. A new room starts with the Skill Share shape: three tactics, each an
//! organisation's presentation (5 min, by a facilitator), the tactic's (5 min, by its
//! advocate) and an open conversation (15 min).

use serde::{Deserialize, Serialize};

/// Most tactics in a plan.
pub const MAX_TACTICS: usize = 12;
/// Most segments in a tactic.
pub const MAX_SEGMENTS: usize = 6;
/// Longest segment, in seconds (2 hours).
pub const MAX_SEGMENT_S: u32 = 7200;
/// Longest title or organisation name, in characters.
pub const MAX_TITLE_CHARS: usize = 200;
/// Most warning marks.
pub const MAX_WARNINGS: usize = 4;

/// What a segment is for, and so who holds the floor during it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum SegmentKind {
    /// A facilitator presents the organisation or project.
    Organisation,
    /// The advocate presents the tactic.
    Tactic,
    /// Open conversation.
    Conversation,
}

/// One timed part of a tactic.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Segment {
    /// What it is.
    pub kind: SegmentKind,
    /// Planned length, in seconds.
    pub duration_s: u32,
}

/// Who presents a tactic: someone in the room, or whoever joins with an invite.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "by", rename_all = "snake_case", deny_unknown_fields)]
pub enum Advocate {
    /// The holder of this invite (whoever joins with it).
    Invite {
        /// The invite's id.
        id: String,
    },
    /// This participant, while they are in the room.
    Participant {
        /// The participant's id.
        id: String,
    },
}

/// One tactic of the agenda.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Tactic {
    /// The tactic's title.
    pub title: String,
    /// The organisation or project behind it.
    #[serde(default)]
    pub organisation: String,
    /// Who presents it; `None` until assigned.
    #[serde(default)]
    pub advocate: Option<Advocate>,
    /// Its segments, in order.
    pub segments: Vec<Segment>,
}

/// What happens when a segment's time is up.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum TimeUp {
    /// Signals only: `time_up`, then `overrun` after the grace period.
    #[default]
    Warn,
    /// After the grace period, the next segment starts.
    Advance,
    /// After the grace period, the presenter's floor closes (facilitators keep theirs).
    Mute,
}

/// The whole plan.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Plan {
    /// The tactics, in order.
    pub tactics: Vec<Tactic>,
    /// What time up does.
    #[serde(default)]
    pub time_up: TimeUp,
    /// Seconds between time up and the policy's action (and `overrun`).
    #[serde(default = "default_grace")]
    pub grace_s: u32,
    /// Warnings, in seconds before the end of each segment.
    #[serde(default = "default_warnings")]
    pub warn_at_s: Vec<u32>,
    /// In open conversation, the floor goes only to whom a facilitator gives it.
    #[serde(default)]
    pub hand_raise: bool,
}

fn default_grace() -> u32 {
    30
}

fn default_warnings() -> Vec<u32> {
    vec![60]
}

impl Plan {
    /// The Skill Share shape with `tactics` tactics to fill in.
    pub fn skill_share(tactics: usize) -> Self {
        Plan {
            tactics: (1..=tactics)
                .map(|n| Tactic {
                    title: format!("Tactic {n}"),
                    organisation: String::new(),
                    advocate: None,
                    segments: vec![
                        Segment {
                            kind: SegmentKind::Organisation,
                            duration_s: 300,
                        },
                        Segment {
                            kind: SegmentKind::Tactic,
                            duration_s: 300,
                        },
                        Segment {
                            kind: SegmentKind::Conversation,
                            duration_s: 900,
                        },
                    ],
                })
                .collect(),
            time_up: TimeUp::Warn,
            grace_s: default_grace(),
            warn_at_s: default_warnings(),
            hand_raise: false,
        }
    }

    /// Check the plan's sizes; the message says what is wrong.
    pub fn check(&self) -> Result<(), String> {
        if self.tactics.len() > MAX_TACTICS {
            return Err(format!("at most {MAX_TACTICS} tactics"));
        }
        if self.warn_at_s.len() > MAX_WARNINGS {
            return Err(format!("at most {MAX_WARNINGS} warnings"));
        }
        let mut marks = self.warn_at_s.clone();
        marks.sort_unstable();
        marks.dedup();
        if marks.len() != self.warn_at_s.len() || marks.first() == Some(&0) {
            return Err("warnings are distinct numbers of seconds, at least 1".into());
        }
        if self.grace_s > MAX_SEGMENT_S {
            return Err(format!("the grace period is at most {MAX_SEGMENT_S} s"));
        }
        for (n, t) in self.tactics.iter().enumerate() {
            let n = n + 1;
            if t.title.trim().is_empty() || t.title.chars().count() > MAX_TITLE_CHARS {
                return Err(format!(
                    "tactic {n}: a title of 1 to {MAX_TITLE_CHARS} characters"
                ));
            }
            if t.organisation.chars().count() > MAX_TITLE_CHARS {
                return Err(format!(
                    "tactic {n}: an organisation of at most {MAX_TITLE_CHARS} characters"
                ));
            }
            if t.segments.is_empty() || t.segments.len() > MAX_SEGMENTS {
                return Err(format!("tactic {n}: 1 to {MAX_SEGMENTS} segments"));
            }
            if t.segments
                .iter()
                .any(|s| s.duration_s == 0 || s.duration_s > MAX_SEGMENT_S)
            {
                return Err(format!(
                    "tactic {n}: each segment lasts 1 to {MAX_SEGMENT_S} seconds"
                ));
            }
        }
        Ok(())
    }

    /// Planned length of the whole agenda, in seconds.
    pub fn planned_s(&self) -> u64 {
        self.tactics
            .iter()
            .flat_map(|t| &t.segments)
            .map(|s| u64::from(s.duration_s))
            .sum()
    }
}
