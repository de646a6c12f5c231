//! The result of a run: per-stream counts, their totals, percentiles, and the server's and the
//! generator's CPU and memory. Serialised as JSON for scripts, printed as a table for people.

mod table;

use hdrhistogram::Histogram;
use serde::{Deserialize, Serialize};
use signaling::stats::DelaySnapshot;
use signaling::wire::MediaKind;

use crate::process::Sample;
use crate::scenario::Scenario;
use crate::stats::{StreamStats, latency_histogram};

/// Everything a run measured.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Report {
    /// What ran.
    pub scenario: Scenario,
    /// Participants that joined and published.
    pub joined: usize,
    /// Participants whose join or publish failed.
    pub failed_joins: usize,
    /// Joined participants that never received media from some other publisher in their room.
    pub incomplete: usize,
    /// Per participant: WebSocket open to the first media from every other publisher, in ms
    /// (for a publisher that joined later, from that publisher's WebSocket open).
    pub join_ms: Option<Percentiles>,
    /// Per participant: WebSocket open to the first media from every publisher that was in
    /// the room before it, in ms: what a newcomer waits. `join_ms` also waits for those who
    /// come later, so in a room that fills one by one it is set by the last joins, made while
    /// the room is at its busiest.
    pub join_present_ms: Option<Percentiles>,
    /// Per participant: WebSocket open to its publish answer, in ms. Signaling alone; the rest
    /// of `join_ms` is ICE, DTLS and the first packets.
    pub publish_answer_ms: Option<Percentiles>,
    /// Length of the measurement window, seconds.
    pub window_s: f64,
    /// RTP packets all publishers sent in the window.
    pub sent_packets: u64,
    /// Sums over `streams`.
    pub totals: Counts,
    /// Packets received by all subscribers per second of the window.
    pub forwarded_per_s: f64,
    /// One-way latency, publisher to subscriber through the server, over the window, in ms.
    pub latency_ms: Option<Percentiles>,
    /// What the server itself added, as it measures it (`GET /api/admin/media`: from the
    /// kernel's receive timestamp of a publisher's packet to the send of its copies), over the
    /// window to the nearest 100 ms, in ms. `None` for a server that does not measure it
    /// (Janus, our webrtc-rs plane).
    #[serde(default)]
    pub server_delay_ms: Option<Percentiles>,
    /// The same, from the first join until everyone received everyone: what people already in
    /// a room hear while others join (offers and answers run in the server's media loop).
    #[serde(default)]
    pub server_delay_joining_ms: Option<Percentiles>,
    /// The server process, if its pid was given.
    pub server: Option<ProcessUse>,
    /// The generator itself.
    pub loadgen: ProcessUse,
    /// The generator's client: its CPU per packet depends on it.
    #[serde(default)]
    pub client: ClientKind,
    /// Whether the server recorded everyone (`--record`).
    #[serde(default)]
    pub record: bool,
    /// Every (receiver, publisher, kind) stream.
    pub streams: Vec<StreamCounts>,
}

/// Percentiles of a distribution, in milliseconds.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub struct Percentiles {
    /// How many values.
    pub count: u64,
    /// Median.
    pub p50: f64,
    /// 99th percentile.
    pub p99: f64,
    /// 99.9th percentile.
    pub p999: f64,
    /// Largest.
    pub max: f64,
}

/// Packet counts of one stream, or of all of them.
#[derive(Debug, Clone, Copy, Default, PartialEq, Serialize, Deserialize)]
pub struct Counts {
    /// Unique packets received.
    pub received: u64,
    /// Packets sent from the first received one to the highest received one.
    pub expected: u64,
    /// `expected - received`.
    pub lost: u64,
    /// Packets received twice.
    pub duplicates: u64,
    /// Packets that arrived after their time (see [`StreamStats::too_late`]).
    pub too_late: u64,
}

/// Which stream: a receiver in a room, and a publisher's track of one kind.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct StreamId {
    /// The room's id (participant ids are unique only within a room).
    pub room: String,
    /// The subscriber's participant id.
    pub receiver: String,
    /// The publisher's participant id.
    pub publisher: String,
    /// Audio or video.
    pub kind: MediaKind,
}

/// One (receiver, publisher, kind) stream's counts.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct StreamCounts {
    /// Which stream.
    #[serde(flatten)]
    pub id: StreamId,
    /// Its counts over the window.
    #[serde(flatten)]
    pub counts: Counts,
}

/// CPU and memory of one process over the window.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub struct ProcessUse {
    /// CPU seconds (user + system) spent in the window.
    pub cpu_s: f64,
    /// Of one core: 100 is one core busy all the time, 200 both of a 2-core machine.
    pub cpu_percent: f64,
    /// CPU time per packet received by all subscribers, in microseconds.
    pub cpu_us_per_packet: Option<f64>,
    /// Resident memory before the first join, KiB.
    pub rss_base_kib: u64,
    /// Resident memory at the end of the window, KiB.
    pub rss_end_kib: u64,
    /// Growth above the base per joined participant, KiB.
    pub rss_per_participant_kib: f64,
    /// Anonymous resident memory (`RssAnon`) before the first join, KiB.
    pub anon_base_kib: u64,
    /// Anonymous resident memory at the end of the window, KiB.
    pub anon_end_kib: u64,
    /// Growth of the anonymous part per joined participant, KiB: the figure for "memory per
    /// participant". `VmRSS` also counts the pages of the executable that the first joins
    /// touch (several MiB of the WebRTC stack's code), which are shared, file-backed, and
    /// paid once, not per participant.
    pub anon_per_participant_kib: f64,
}

/// What a run collected, before it is summarised.
pub struct Collected {
    /// What ran.
    pub scenario: Scenario,
    /// Participants that joined and published.
    pub joined: usize,
    /// Participants whose join failed.
    pub failed_joins: usize,
    /// Participants missing some publisher's media.
    pub incomplete: usize,
    /// One join time per complete participant, ms.
    pub join_ms: Vec<f64>,
    /// One newcomer's wait per complete participant with someone before it, ms.
    pub join_present_ms: Vec<f64>,
    /// One publish answer time per participant, ms.
    pub publish_answer_ms: Vec<f64>,
    /// Window length, seconds.
    pub window_s: f64,
    /// Packets sent in the window.
    pub sent_packets: u64,
    /// Every stream's identity and statistics.
    pub streams: Vec<(StreamId, StreamStats)>,
    /// The server's own forwarding delays over the window, if it measures them.
    pub server_delay: Option<DelaySnapshot>,
    /// The same, from the first join to the window's start.
    pub server_delay_joining: Option<DelaySnapshot>,
    /// The server before joins, at the window's start and at its end.
    pub server: Option<[Sample; 3]>,
    /// The generator, likewise.
    pub loadgen: [Sample; 3],
    /// The generator's client.
    pub client: ClientKind,
    /// Whether the server recorded everyone.
    pub record: bool,
}

/// Which client the generator runs its participants on.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize, clap::ValueEnum)]
#[serde(rename_all = "lowercase")]
pub enum ClientKind {
    /// [`crate::client`]: webrtc-rs's async peer connections, tasks per connection and
    /// track. Speaks our protocol and (through the adapter) Janus's.
    #[default]
    Webrtc,
    /// [`crate::sansio`]: one task per participant on webrtc-rs's sans-IO core; 0.70 to 0.80
    /// of the other's CPU per packet in BENCHMARKS.md's run. Our protocol only.
    Sansio,
}

impl Collected {
    /// Summarise into a report.
    pub fn report(self) -> Report {
        let (streams, totals, latency) = count_streams(self.streams);
        let use_of = |s: [Sample; 3]| process_use(s, self.window_s, totals.received, self.joined);
        Report {
            join_ms: percentiles_ms(&self.join_ms),
            join_present_ms: percentiles_ms(&self.join_present_ms),
            publish_answer_ms: percentiles_ms(&self.publish_answer_ms),
            latency_ms: latency_percentiles_ms(&latency),
            server_delay_ms: self.server_delay.as_ref().and_then(delay_percentiles_ms),
            server_delay_joining_ms: self
                .server_delay_joining
                .as_ref()
                .and_then(delay_percentiles_ms),
            forwarded_per_s: per_s(totals.received as f64, self.window_s),
            server: self.server.map(use_of),
            loadgen: use_of(self.loadgen),
            client: self.client,
            record: self.record,
            scenario: self.scenario,
            joined: self.joined,
            failed_joins: self.failed_joins,
            incomplete: self.incomplete,
            window_s: self.window_s,
            sent_packets: self.sent_packets,
            totals,
            streams,
        }
    }
}

impl Counts {
    fn of(stats: &StreamStats) -> Self {
        Counts {
            received: stats.received,
            expected: stats.expected(),
            lost: stats.lost(),
            duplicates: stats.duplicates,
            too_late: stats.too_late,
        }
    }

    fn add(&mut self, other: &Counts) {
        self.received += other.received;
        self.expected += other.expected;
        self.lost += other.lost;
        self.duplicates += other.duplicates;
        self.too_late += other.too_late;
    }
}

/// Per-stream counts in a stable order, their totals, and all latencies merged.
fn count_streams(
    collected: Vec<(StreamId, StreamStats)>,
) -> (Vec<StreamCounts>, Counts, Histogram<u64>) {
    let mut latency = latency_histogram::<u64>();
    let mut totals = Counts::default();
    let mut streams = Vec::with_capacity(collected.len());
    for (id, stats) in collected {
        for v in stats.latency_us.iter_recorded() {
            latency.saturating_record_n(v.value_iterated_to(), u64::from(v.count_at_value()));
        }
        let counts = Counts::of(&stats);
        totals.add(&counts);
        streams.push(StreamCounts { id, counts });
    }
    streams.sort_by_cached_key(|s| {
        let id = &s.id;
        let video = id.kind == MediaKind::Video;
        (
            id.room.clone(),
            id.receiver.clone(),
            id.publisher.clone(),
            video,
        )
    });
    (streams, totals, latency)
}

fn latency_percentiles_ms(latency_us: &Histogram<u64>) -> Option<Percentiles> {
    let ms = |us: u64| us as f64 / 1000.0;
    (!latency_us.is_empty()).then(|| Percentiles {
        count: latency_us.len(),
        p50: ms(latency_us.value_at_quantile(0.5)),
        p99: ms(latency_us.value_at_quantile(0.99)),
        p999: ms(latency_us.value_at_quantile(0.999)),
        max: ms(latency_us.max()),
    })
}

fn delay_percentiles_ms(delay_us: &DelaySnapshot) -> Option<Percentiles> {
    let ms = |us: u64| us as f64 / 1000.0;
    (delay_us.count > 0).then(|| Percentiles {
        count: delay_us.count,
        p50: ms(delay_us.p50_us),
        p99: ms(delay_us.p99_us),
        p999: ms(delay_us.p999_us),
        max: ms(delay_us.max_us),
    })
}

fn per_s(amount: f64, window_s: f64) -> f64 {
    if window_s > 0.0 {
        amount / window_s
    } else {
        0.0
    }
}

fn process_use(
    [base, start, end]: [Sample; 3],
    window_s: f64,
    packets: u64,
    participants: usize,
) -> ProcessUse {
    let cpu_s = (end.cpu_s - start.cpu_s).max(0.0);
    ProcessUse {
        cpu_s,
        cpu_percent: 100.0 * per_s(cpu_s, window_s),
        cpu_us_per_packet: (packets > 0).then(|| cpu_s * 1e6 / packets as f64),
        rss_base_kib: base.rss_kib,
        rss_end_kib: end.rss_kib,
        rss_per_participant_kib: end.rss_kib.saturating_sub(base.rss_kib) as f64
            / participants.max(1) as f64,
        anon_base_kib: base.anon_kib,
        anon_end_kib: end.anon_kib,
        anon_per_participant_kib: end.anon_kib.saturating_sub(base.anon_kib) as f64
            / participants.max(1) as f64,
    }
}

fn percentiles_ms(values: &[f64]) -> Option<Percentiles> {
    if values.is_empty() {
        return None;
    }
    let mut sorted = values.to_vec();
    sorted.sort_by(f64::total_cmp);
    // Nearest rank: the smallest value with at least q of the values at or below it.
    let at =
        |q: f64| sorted[((q * sorted.len() as f64).ceil() as usize).clamp(1, sorted.len()) - 1];
    Some(Percentiles {
        count: sorted.len() as u64,
        p50: at(0.5),
        p99: at(0.99),
        p999: at(0.999),
        max: sorted[sorted.len() - 1],
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::scenario::Scenario;

    fn close(a: f64, b: f64) -> bool {
        (a - b).abs() <= b * 0.01
    }

    /// A histogram of `count` delays whose p50 and p99 (and p99.9 and max) are as given, µs.
    fn delay(count: u64, p50_us: u64, p99_us: u64) -> DelaySnapshot {
        DelaySnapshot {
            count,
            p50_us,
            p99_us,
            p999_us: p99_us,
            max_us: p99_us,
            buckets: vec![(p50_us, count - 1), (p99_us, 1)],
        }
    }

    #[test]
    fn totals_and_latencies_come_from_the_streams() {
        let mut a = StreamStats::default();
        for c in 0..100 {
            a.record(c, 0, (c + 1) * 1_000_000); // 1 to 100 ms
        }
        let mut b = StreamStats::default();
        for c in [0, 2] {
            b.record(c, 0, 500_000); // 0.5 ms, and counter 1 lost
        }
        let id = |receiver: &str| StreamId {
            room: "r".into(),
            receiver: receiver.into(),
            publisher: "p".into(),
            kind: MediaKind::Audio,
        };
        let sample = Sample {
            cpu_s: 1.0,
            rss_kib: 1000,
            anon_kib: 400,
        };
        let end = Sample {
            cpu_s: 1.5,
            rss_kib: 1600,
            anon_kib: 500,
        };
        let report = Collected {
            scenario: Scenario::new("t", 1, 2, 0),
            client: ClientKind::Sansio,
            record: false,
            joined: 2,
            failed_joins: 0,
            incomplete: 0,
            join_ms: vec![10.0, 20.0],
            join_present_ms: vec![5.0],
            publish_answer_ms: vec![],
            window_s: 2.0,
            sent_packets: 103,
            streams: vec![(id("b"), b), (id("a"), a)],
            server_delay: Some(delay(102, 1_500, 4_000)),
            server_delay_joining: Some(delay(7, 2_000, 40_000)),
            server: None,
            loadgen: [sample, sample, end],
        }
        .report();
        let totals = Counts {
            received: 102,
            expected: 103,
            lost: 1,
            ..Counts::default()
        };
        assert_eq!(report.totals, totals);
        assert_eq!(report.streams[0].id.receiver, "a", "sorted");
        let l = report.latency_ms.unwrap();
        // 102 values: 0.5, 0.5, then 1 to 100 ms.
        assert!(
            close(l.p50, 49.0) && close(l.p99, 99.0) && close(l.max, 100.0),
            "{l:?}"
        );
        assert_eq!(report.join_ms.unwrap().p50, 10.0);
        assert_eq!(report.join_present_ms.unwrap().max, 5.0);
        // The server's own histograms: the window's, and the joins' apart.
        let window = report.server_delay_ms.unwrap();
        assert_eq!((window.count, window.p50, window.p99), (102, 1.5, 4.0));
        let joining = report.server_delay_joining_ms.unwrap();
        assert_eq!((joining.count, joining.p50, joining.p99), (7, 2.0, 40.0));
        assert_eq!(report.forwarded_per_s, 51.0);
        assert_eq!(report.loadgen.cpu_percent, 25.0);
        // 600 KiB more resident, 100 of it anonymous, over 2 participants.
        assert_eq!(report.loadgen.rss_per_participant_kib, 300.0);
        assert_eq!(report.loadgen.anon_per_participant_kib, 50.0);
    }

    #[test]
    fn nearest_rank_percentiles() {
        let values: Vec<f64> = (1..=100).map(f64::from).collect();
        let p = percentiles_ms(&values).unwrap();
        assert_eq!((p.p50, p.p99, p.p999, p.max), (50.0, 99.0, 100.0, 100.0));
        assert_eq!(percentiles_ms(&[7.0]).unwrap().p50, 7.0);
        assert!(percentiles_ms(&[]).is_none());
        // A histogram with nothing in it (a window with no forwarded packet) has none.
        assert!(delay_percentiles_ms(&DelaySnapshot::default()).is_none());
    }
}
