//! The report as people read it at the end of a run: one labelled line per measure.

use std::fmt::Write as _;

use super::{ClientKind, Percentiles, ProcessUse, Report};
use crate::scenario::Joins;

impl Report {
    /// The human-readable summary printed at the end of a run.
    pub fn table(&self) -> String {
        let mut t = String::new();
        for (name, value) in self.media_rows().into_iter().chain(self.process_rows()) {
            let _ = writeln!(t, "{name:<24}{value}");
        }
        t
    }

    fn media_rows(&self) -> Vec<(&'static str, String)> {
        let s = &self.scenario;
        let joins = match s.joins {
            Joins::Staggered { gap_ms } => format!("joins {gap_ms} ms apart"),
            Joins::AllAtOnce => "all joins at once".into(),
        };
        let (totals, total) = (&self.totals, s.total_participants());
        let loss_pct = 100.0 * totals.lost as f64 / totals.expected.max(1) as f64;
        vec![
            (
                "scenario",
                format!(
                    "{}: {} room(s) x {}, {} with video per room, {joins}",
                    s.name, s.rooms, s.participants, s.video_publishers
                ),
            ),
            (
                "joined",
                format!(
                    "{} of {total} ({} failed, {} missing some media)",
                    self.joined, self.failed_joins, self.incomplete
                ),
            ),
            ("join to all media (ms)", percentiles(self.join_ms)),
            ("  from those already in", percentiles(self.join_present_ms)),
            ("  of which signaling", percentiles(self.publish_answer_ms)),
            (
                "window",
                format!("{:.1} s, {} packets sent", self.window_s, self.sent_packets),
            ),
            (
                "forwarded",
                format!(
                    "{:.0} packets/s ({} received)",
                    self.forwarded_per_s, totals.received
                ),
            ),
            (
                "lost",
                format!(
                    "{} of {} ({loss_pct:.3}%), {} duplicates, {} too late",
                    totals.lost, totals.expected, totals.duplicates, totals.too_late
                ),
            ),
            ("latency (ms)", percentiles(self.latency_ms)),
            ("  added by the server", percentiles(self.server_delay_ms)),
            (
                "  added while joining",
                percentiles(self.server_delay_joining_ms),
            ),
        ]
    }

    fn process_rows(&self) -> Vec<(&'static str, String)> {
        let mut rows = match &self.server {
            Some(server) => vec![
                ("server CPU", cpu(server)),
                ("server memory", memory(server)),
            ],
            None => vec![("server", "not measured (no --server-pid)".into())],
        };
        let client = match self.client {
            ClientKind::Webrtc => "webrtc-rs peers, tasks per connection",
            ClientKind::Sansio => "sans-IO peers, one task per participant",
        };
        rows.push(("loadgen client", client.into()));
        if self.record {
            rows.push((
                "recording",
                "every participant consents; recording on".into(),
            ));
        }
        rows.push(("loadgen CPU", cpu(&self.loadgen)));
        rows.push(("loadgen memory", memory(&self.loadgen)));
        rows
    }
}

fn percentiles(p: Option<Percentiles>) -> String {
    p.map_or("-".into(), |p| {
        format!(
            "p50 {:.2}  p99 {:.2}  p99.9 {:.2}  max {:.2}",
            p.p50, p.p99, p.p999, p.max
        )
    })
}

fn cpu(p: &ProcessUse) -> String {
    let per_packet = p
        .cpu_us_per_packet
        .map_or("-".into(), |us| format!("{us:.2} us"));
    format!(
        "{:.0}% of a core, {per_packet} per forwarded packet",
        p.cpu_percent
    )
}

fn memory(p: &ProcessUse) -> String {
    format!(
        "{:.0} KiB anonymous per participant ({:.1} to {:.1} MiB); \
         resident {:.1} to {:.1} MiB, {:.0} KiB per participant",
        p.anon_per_participant_kib,
        p.anon_base_kib as f64 / 1024.0,
        p.anon_end_kib as f64 / 1024.0,
        p.rss_base_kib as f64 / 1024.0,
        p.rss_end_kib as f64 / 1024.0,
        p.rss_per_participant_kib
    )
}

#[cfg(test)]
mod tests {
    use crate::report::{ClientKind, Collected};
    use crate::scenario::Scenario;

    #[test]
    fn an_empty_run_still_prints_every_line() {
        let sample = crate::process::Sample {
            cpu_s: 0.0,
            rss_kib: 0,
            anon_kib: 0,
        };
        let report = Collected {
            scenario: Scenario::new("empty", 1, 1, 0),
            client: ClientKind::Webrtc,
            record: false,
            joined: 0,
            failed_joins: 1,
            incomplete: 0,
            join_ms: vec![],
            join_present_ms: vec![],
            publish_answer_ms: vec![],
            window_s: 0.0,
            sent_packets: 0,
            streams: vec![],
            server_delay: None,
            server_delay_joining: None,
            server: None,
            loadgen: [sample; 3],
        }
        .report();
        let table = report.table();
        assert_eq!(table.lines().count(), 15, "{table}");
        assert!(
            table.contains("loadgen client          webrtc-rs peers"),
            "{table}"
        );
        assert!(table.contains("0 of 1 (1 failed"), "{table}");
        assert!(table.contains("not measured"), "{table}");
    }
}
