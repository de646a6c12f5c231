//! What `GET /metrics` shows, in Prometheus's text format, on the `metrics` crate.
//!
//! Each server has its own recorder, not the process-wide one: tests run many servers in
//! one process, and each must count only its own. Events are counted where they happen,
//! through handles registered at start ([`Metrics`]'s fields). What the server holds (rooms,
//! participants) and what the media loop counts are read when scraped: the loop has no
//! atomics or locks of its own to spare, and publishes its counts each turn anyway.
//!
//! The forwarding delay lives in the media loop's own histogram (`media::delay`). Feeding its
//! counts to a `metrics` histogram would record every forwarded packet a second time, so its
//! buckets are written out from a snapshot instead.

use std::fmt::Write;
use std::time::Duration;

use metrics::{Counter, Gauge, Histogram};
use metrics_exporter_prometheus::{Matcher, PrometheusBuilder, PrometheusHandle};

use crate::media::{DelaySnapshot, MediaStats};

/// Bucket bounds of the join latency (seconds): a join on loopback takes milliseconds; one
/// that waits on a cold room or a busy database, much longer.
const JOIN_BUCKETS: &[f64] = &[
    0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5,
];

/// Bucket bounds of the forwarding delay (seconds): most packets leave within a millisecond.
const DELAY_BUCKETS: &[f64] = &[
    0.0001, 0.00025, 0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 1.0,
];

const DELAY: &str = "roundtable_forward_delay_seconds";

/// The server's metrics: the recorder's handle and the handles of what it counts.
pub struct Metrics {
    handle: PrometheusHandle,
    /// Successful joins.
    joins: Counter,
    /// From `join` to `joined`, in seconds.
    join_seconds: Histogram,
    chat_committed: Counter,
    chat_failed: Counter,
    /// WebSockets before `join` and after.
    unjoined: Gauge,
    joined: Gauge,
    rooms: Gauge,
    participants: Gauge,
    peer_connections: Gauge,
    producers: Gauge,
    consumers: Gauge,
    forwarded_packets: Counter,
    forwarded_bytes: Counter,
    unrouted: Counter,
    send_buffer_full: Counter,
    send_failed: Counter,
    client_queue_full: Counter,
    record_queue_full: Counter,
}

/// What the server holds when scraped.
pub struct Scrape {
    /// Running rooms.
    pub rooms: usize,
    /// Participants in them.
    pub participants: usize,
    /// The media loop's counts.
    pub media: MediaStats,
    /// The forwarding delay since start.
    pub delay: DelaySnapshot,
}

impl Metrics {
    /// A fresh recorder with every metric registered (at 0, so that each is scraped from the
    /// start).
    pub fn new() -> Self {
        let recorder = PrometheusBuilder::new()
            .set_buckets_for_metric(
                Matcher::Full("roundtable_join_duration_seconds".into()),
                JOIN_BUCKETS,
            )
            .expect("static buckets are not empty")
            .build_recorder();
        let handle = recorder.handle();
        metrics::with_local_recorder(&recorder, || {
            describe();
            let dropped = |reason: &'static str| metrics::counter!("roundtable_media_dropped_total", "reason" => reason);
            let connections =
                |state: &'static str| metrics::gauge!("roundtable_connections", "state" => state);
            Metrics {
                handle,
                joins: metrics::counter!("roundtable_joins_total"),
                join_seconds: metrics::histogram!("roundtable_join_duration_seconds"),
                chat_committed: metrics::counter!("roundtable_chat_committed_total"),
                chat_failed: metrics::counter!("roundtable_chat_failed_total"),
                unjoined: connections("unjoined"),
                joined: connections("joined"),
                rooms: metrics::gauge!("roundtable_rooms"),
                participants: metrics::gauge!("roundtable_participants"),
                peer_connections: metrics::gauge!("roundtable_media_peer_connections"),
                producers: metrics::gauge!("roundtable_media_producers"),
                consumers: metrics::gauge!("roundtable_media_consumers"),
                forwarded_packets: metrics::counter!("roundtable_forwarded_packets_total"),
                forwarded_bytes: metrics::counter!("roundtable_forwarded_bytes_total"),
                unrouted: dropped("unrouted"),
                send_buffer_full: dropped("send_buffer_full"),
                send_failed: dropped("send_failed"),
                client_queue_full: dropped("client_queue_full"),
                record_queue_full: dropped("record_queue_full"),
            }
        })
    }

    /// A WebSocket opened; it counts as unjoined until [`ConnState::set_joined`].
    pub fn connection(&self) -> ConnState {
        self.unjoined.increment(1);
        ConnState {
            unjoined: self.unjoined.clone(),
            joined: self.joined.clone(),
            is_joined: false,
        }
    }

    /// A join succeeded, `took` after its `join` message arrived.
    pub fn joined(&self, took: Duration) {
        self.joins.increment(1);
        self.join_seconds.record(took);
    }

    /// The chat writer finished with a batch of `messages`: committed, or refused.
    pub fn chat_written(&self, committed: bool, messages: usize) {
        let n = messages as u64;
        if committed {
            self.chat_committed.increment(n);
        } else {
            self.chat_failed.increment(n);
        }
    }

    /// The text exposition, with `now`'s state and counts.
    pub fn render(&self, now: &Scrape) -> String {
        self.rooms.set(now.rooms as f64);
        self.participants.set(now.participants as f64);
        let m = &now.media;
        self.peer_connections.set(m.connections as f64);
        self.producers.set(m.producers as f64);
        self.consumers.set(m.consumers as f64);
        self.forwarded_packets.absolute(m.forwarded);
        self.forwarded_bytes.absolute(m.forwarded_bytes);
        self.unrouted.absolute(m.unrouted);
        self.send_buffer_full.absolute(m.send_dropped);
        self.send_failed.absolute(m.send_failed);
        self.client_queue_full.absolute(m.client_queue_full);
        self.record_queue_full.absolute(m.record_queue_full);
        let mut text = self.handle.render();
        write_delay(&mut text, &now.delay);
        text
    }
}

impl Default for Metrics {
    fn default() -> Self {
        Self::new()
    }
}

fn describe() {
    use metrics::{describe_counter, describe_gauge, describe_histogram};
    describe_gauge!("roundtable_rooms", "Rooms running on this server.");
    describe_gauge!(
        "roundtable_participants",
        "Participants in the running rooms."
    );
    describe_gauge!(
        "roundtable_connections",
        "Open WebSockets, before and after `join`."
    );
    describe_counter!("roundtable_joins_total", "Successful joins.");
    describe_histogram!(
        "roundtable_join_duration_seconds",
        "From a `join` message to its `joined` reply."
    );
    describe_counter!("roundtable_chat_committed_total", "Chat messages stored.");
    describe_counter!(
        "roundtable_chat_failed_total",
        "Chat messages the store refused or failed (their senders got storage_unavailable)."
    );
    describe_gauge!(
        "roundtable_media_peer_connections",
        "Open peer connections."
    );
    describe_gauge!("roundtable_media_producers", "Published tracks.");
    describe_gauge!(
        "roundtable_media_consumers",
        "Forwarded (track, subscriber) pairs."
    );
    describe_counter!(
        "roundtable_forwarded_packets_total",
        "RTP packets forwarded to subscribers, one per copy."
    );
    describe_counter!(
        "roundtable_forwarded_bytes_total",
        "RTP payload bytes forwarded to subscribers (headers and SRTP excluded)."
    );
    describe_counter!(
        "roundtable_media_dropped_total",
        "What the media loop dropped: datagrams from no known connection (unrouted), datagrams \
         the socket could not take (send_buffer_full) or the kernel refused (send_failed), \
         messages for a client whose queue was full (client_queue_full), and recorded packets \
         the recorder's full queue could not take (record_queue_full)."
    );
}

/// Append the forwarding-delay histogram. Its buckets come from the media loop's histogram,
/// whose buckets are within 1 % of their values, so a delay within 1 % of a bound may count
/// in the next bucket up; the sum is of the buckets' upper bounds.
fn write_delay(text: &mut String, delay: &DelaySnapshot) {
    let _ = writeln!(
        text,
        "# HELP {DELAY} How long forwarded packets stayed in the server: from the kernel's \
         receive timestamp to the send call that handed their copies back."
    );
    let _ = writeln!(text, "# TYPE {DELAY} histogram");
    for &le in DELAY_BUCKETS {
        let bound_us = (le * 1e6).round() as u64;
        let below: u64 = delay
            .buckets
            .iter()
            .filter(|(us, _)| *us <= bound_us)
            .map(|(_, n)| n)
            .sum();
        let _ = writeln!(text, "{DELAY}_bucket{{le=\"{le}\"}} {below}");
    }
    let _ = writeln!(text, "{DELAY}_bucket{{le=\"+Inf\"}} {}", delay.count);
    let sum_us: u64 = delay.buckets.iter().map(|(us, n)| us * n).sum();
    let _ = writeln!(text, "{DELAY}_sum {}", sum_us as f64 / 1e6);
    let _ = writeln!(text, "{DELAY}_count {}", delay.count);
}

/// A WebSocket's place in `roundtable_connections`; it leaves the count when dropped.
pub struct ConnState {
    unjoined: Gauge,
    joined: Gauge,
    is_joined: bool,
}

impl ConnState {
    /// The connection joined a room, or left it.
    pub fn set_joined(&mut self, joined: bool) {
        if joined != self.is_joined {
            self.current().decrement(1);
            self.is_joined = joined;
            self.current().increment(1);
        }
    }

    fn current(&self) -> &Gauge {
        if self.is_joined {
            &self.joined
        } else {
            &self.unjoined
        }
    }
}

impl Drop for ConnState {
    fn drop(&mut self) {
        self.current().decrement(1);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn scrape(metrics: &Metrics, delay: DelaySnapshot) -> String {
        metrics.render(&Scrape {
            rooms: 2,
            participants: 3,
            media: MediaStats {
                forwarded: 10,
                ..MediaStats::default()
            },
            delay,
        })
    }

    #[test]
    fn state_and_events_are_in_the_text() {
        let metrics = Metrics::new();
        let mut conn = metrics.connection();
        conn.set_joined(true);
        metrics.joined(Duration::from_millis(3));
        let text = scrape(&metrics, DelaySnapshot::default());
        for line in [
            "roundtable_rooms 2",
            "roundtable_participants 3",
            "roundtable_forwarded_packets_total 10",
            "roundtable_joins_total 1",
            "roundtable_join_duration_seconds_bucket{le=\"0.005\"} 1",
            "roundtable_connections{state=\"joined\"} 1",
            "roundtable_connections{state=\"unjoined\"} 0",
            "roundtable_chat_failed_total 0",
        ] {
            assert!(text.lines().any(|l| l == line), "no `{line}` in\n{text}");
        }
        drop(conn);
        let text = scrape(&metrics, DelaySnapshot::default());
        assert!(
            text.contains("roundtable_connections{state=\"joined\"} 0"),
            "{text}"
        );
    }

    #[test]
    fn the_delay_buckets_are_cumulative() {
        let delay = DelaySnapshot::from_buckets(vec![(90, 5), (800, 3), (30_000, 2)]);
        let text = scrape(&Metrics::new(), delay);
        for line in [
            "roundtable_forward_delay_seconds_bucket{le=\"0.0001\"} 5",
            "roundtable_forward_delay_seconds_bucket{le=\"0.001\"} 8",
            "roundtable_forward_delay_seconds_bucket{le=\"0.025\"} 8",
            "roundtable_forward_delay_seconds_bucket{le=\"0.05\"} 10",
            "roundtable_forward_delay_seconds_bucket{le=\"+Inf\"} 10",
            "roundtable_forward_delay_seconds_count 10",
            "roundtable_forward_delay_seconds_sum 0.06285",
        ] {
            assert!(text.lines().any(|l| l == line), "no `{line}` in\n{text}");
        }
    }
}
