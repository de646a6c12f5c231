//! A session's chapters: the agenda's segments as they actually ran, cut to the session and
//! timed from its start. Written as JSON (for programs) and WebVTT (for players: a `<track
//! kind="chapters">`).

use serde::Serialize;
use signaling::agenda::Agenda;
use signaling::agenda::plan::SegmentKind;

/// One chapter, in ms from the session's start.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Chapter {
    /// "Tactic title: Organisation" and the like.
    pub title: String,
    /// The tactic's index (from 0).
    pub tactic: usize,
    /// The segment's kind.
    pub kind: SegmentKind,
    /// Start, ms from the session's start.
    pub start_ms: i64,
    /// End, ms from the session's start.
    pub end_ms: i64,
}

/// The chapters file's JSON.
#[derive(Debug, Serialize)]
pub struct Chapters<'a> {
    /// The session.
    pub session: &'a str,
    /// Its start, Unix ms: time 0 of every chapter.
    pub started_at: i64,
    /// In time order.
    pub chapters: &'a [Chapter],
}

/// The segments of every run of `agenda` that overlap the session `[start, end]` (Unix ms),
/// cut to it. A segment still running ends at `end`.
pub fn of(agenda: &Agenda, start: i64, end: i64) -> Vec<Chapter> {
    let mut chapters = Vec::new();
    for run in &agenda.state.runs {
        for seg in &run.segments {
            let from = seg.started_at.max(start);
            let to = seg.ended_at.unwrap_or(end).min(end);
            if to <= from {
                continue;
            }
            chapters.push(Chapter {
                title: format!("{}: {}", seg.title, kind_name(seg.kind)),
                tactic: seg.tactic,
                kind: seg.kind,
                start_ms: from - start,
                end_ms: to - start,
            });
        }
    }
    chapters.sort_by_key(|c| (c.start_ms, c.end_ms));
    chapters
}

fn kind_name(kind: SegmentKind) -> &'static str {
    match kind {
        SegmentKind::Organisation => "Organisation",
        SegmentKind::Tactic => "Tactic",
        SegmentKind::Conversation => "Conversation",
    }
}

/// The chapters as WebVTT cues. A cue's text may not hold "-->" or a blank line; titles are
/// one line, and "-->" is written "->".
pub fn to_vtt(chapters: &[Chapter]) -> String {
    let mut vtt = String::from("WEBVTT\n");
    for (n, c) in chapters.iter().enumerate() {
        let title = c.title.replace("-->", "->").replace(['\r', '\n'], " ");
        vtt.push_str(&format!(
            "\n{}\n{} --> {}\n{}\n",
            n + 1,
            timestamp(c.start_ms),
            timestamp(c.end_ms),
            title
        ));
    }
    vtt
}

/// `hh:mm:ss.ttt`.
fn timestamp(ms: i64) -> String {
    let ms = ms.max(0);
    format!(
        "{:02}:{:02}:{:02}.{:03}",
        ms / 3_600_000,
        ms / 60_000 % 60,
        ms / 1000 % 60,
        ms % 1000
    )
}

#[cfg(test)]
mod tests {
    use super::*;
    use signaling::agenda::plan::Plan;
    use signaling::agenda::{Run, SegmentRecord};

    fn seg(tactic: usize, kind: SegmentKind, from: i64, to: Option<i64>) -> SegmentRecord {
        SegmentRecord {
            tactic,
            title: format!("T{tactic}"),
            segment: 0,
            kind,
            planned_s: 300,
            extended_s: 0,
            started_at: from,
            ended_at: to,
            floor: vec![],
        }
    }

    #[test]
    fn segments_are_cut_to_the_session_and_timed_from_its_start() {
        let mut agenda = Agenda::new(Plan::skill_share(1));
        agenda.state.runs.push(Run {
            started_at: 1_000,
            ended_at: None,
            segments: vec![
                seg(0, SegmentKind::Organisation, 1_000, Some(5_000)),
                seg(0, SegmentKind::Tactic, 5_000, Some(9_000)),
                seg(0, SegmentKind::Conversation, 9_000, None),
            ],
            transitions: vec![],
        });
        let chapters = of(&agenda, 3_000, 10_000);
        let got: Vec<(&str, i64, i64)> = chapters
            .iter()
            .map(|c| (c.title.as_str(), c.start_ms, c.end_ms))
            .collect();
        assert_eq!(
            got,
            [
                ("T0: Organisation", 0, 2_000),
                ("T0: Tactic", 2_000, 6_000),
                ("T0: Conversation", 6_000, 7_000),
            ]
        );
        assert!(
            of(&agenda, 20_000, 30_000).len() == 1,
            "the running one only"
        );
        assert!(of(&agenda, 0, 500).is_empty(), "before the agenda");
    }

    #[test]
    fn webvtt_has_a_cue_per_chapter() {
        let c = |title: &str, start_ms, end_ms| Chapter {
            title: title.into(),
            tactic: 0,
            kind: SegmentKind::Tactic,
            start_ms,
            end_ms,
        };
        let vtt = to_vtt(&[c("A --> B", 0, 61_500), c("C", 3_600_000, 3_723_004)]);
        assert_eq!(
            vtt,
            "WEBVTT\n\n1\n00:00:00.000 --> 00:01:01.500\nA -> B\n\n\
             2\n01:00:00.000 --> 01:02:03.004\nC\n"
        );
    }
}
