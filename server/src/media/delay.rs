//! How long the server holds the packets it forwards: from the kernel's receive timestamp of a
//! publisher's datagram (`SO_TIMESTAMPNS`) to the return of the `sendmmsg` that hands its
//! copies for the subscribers back to the kernel. That is the latency the SFU adds, queueing in
//! its socket included, measured where it happens rather than inferred by a client.
//!
//! The media loop records into its own histogram ([`DelayRecorder`]) and folds it into the
//! shared one at most every 100 ms, with `try_lock`: the loop never waits for a reader. Readers
//! ([`DelayReader`]) see counts since the plane started, so a window is the difference of two
//! snapshots ([`DelaySnapshot::since`]).

use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant, SystemTime};

use hdrhistogram::Histogram;
pub use signaling::stats::DelaySnapshot;

/// The largest delay the histogram tells apart, in microseconds (10 s); longer counts as this.
const MAX_US: u64 = 10_000_000;

/// How often the loop folds its counts into the shared histogram: a pass over a few thousand
/// counters, ten times a second. Readers' windows are this precise (a second was too coarse
/// for a join storm that takes under one).
const PUBLISH_EVERY: Duration = Duration::from_millis(100);

fn histogram() -> Histogram<u64> {
    // Two significant digits: each bucket is within 1 % of its values.
    Histogram::new_with_bounds(1, MAX_US, 2).expect("static bounds are valid")
}

/// The media loop's side. Not `Sync`; one per loop.
pub struct DelayRecorder {
    local: Histogram<u64>,
    shared: Arc<Mutex<Histogram<u64>>>,
    next_publish: Instant,
}

/// Readers' side; cheap to clone.
#[derive(Clone)]
pub struct DelayReader {
    shared: Arc<Mutex<Histogram<u64>>>,
}

/// A recorder and a reader of the same counts.
pub fn forward_delay() -> (DelayRecorder, DelayReader) {
    let shared = Arc::new(Mutex::new(histogram()));
    (
        DelayRecorder {
            local: histogram(),
            shared: shared.clone(),
            next_publish: Instant::now() + PUBLISH_EVERY,
        },
        DelayReader { shared },
    )
}

impl DelayRecorder {
    /// `copies` packets were received at `received` and handed to the kernel at `sent`. A
    /// `sent` before `received` (the system clock stepped back) counts as 0.
    pub fn record(&mut self, received: SystemTime, sent: SystemTime, copies: u64) {
        if copies == 0 {
            return;
        }
        let us = sent
            .duration_since(received)
            .map_or(0, |d| u64::try_from(d.as_micros()).unwrap_or(MAX_US))
            .min(MAX_US);
        // Within the bounds by construction; the histogram cannot overflow a u64 count here.
        let _ = self.local.record_n(us, copies);
    }

    /// Fold what was recorded into what readers see, if `PUBLISH_EVERY` has passed and no reader
    /// holds the lock (then it is tried again on a later turn).
    pub fn publish(&mut self, now: Instant) {
        if now < self.next_publish || self.local.is_empty() {
            return;
        }
        if let Ok(mut shared) = self.shared.try_lock() {
            let _ = shared.add(&self.local);
            self.local.reset();
            self.next_publish = now + PUBLISH_EVERY;
        }
    }
}

impl DelayReader {
    /// The counts since the plane started (up to 100 ms behind).
    pub fn snapshot(&self) -> DelaySnapshot {
        let shared = match self.shared.lock() {
            Ok(h) => h.clone(),
            // A panic while holding the lock cannot leave a histogram half-added in a way that
            // matters for a statistic; keep serving it.
            Err(poisoned) => poisoned.into_inner().clone(),
        };
        snapshot_of(&shared)
    }
}

/// A snapshot of `h`.
fn snapshot_of(h: &Histogram<u64>) -> DelaySnapshot {
    let buckets = h
        .iter_recorded()
        .map(|v| {
            (
                h.highest_equivalent(v.value_iterated_to()),
                v.count_at_value(),
            )
        })
        .collect();
    DelaySnapshot::from_buckets(buckets)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn at(ms: u64) -> SystemTime {
        SystemTime::UNIX_EPOCH + Duration::from_millis(1_700_000_000_000 + ms)
    }

    /// Publish now, as if [`PUBLISH_EVERY`] had passed since the last publish.
    fn flush(recorder: &mut DelayRecorder) {
        let now = Instant::now();
        recorder.next_publish = now;
        recorder.publish(now);
    }

    #[test]
    fn quantiles_are_of_the_copies_forwarded() {
        let (mut recorder, reader) = forward_delay();
        // 990 copies held 1 ms, 9 held 5 ms, 1 held 40 ms.
        recorder.record(at(0), at(1), 990);
        recorder.record(at(0), at(5), 9);
        recorder.record(at(10), at(50), 1);
        assert_eq!(
            reader.snapshot().count,
            0,
            "nothing is seen before a publish"
        );
        flush(&mut recorder);
        let s = reader.snapshot();
        assert_eq!(s.count, 1000);
        let within = |got: u64, want: u64| got.abs_diff(want) * 100 <= want;
        assert!(within(s.p50_us, 1000), "{s:?}");
        assert!(within(s.p99_us, 1000), "{s:?}");
        assert!(within(s.p999_us, 5000), "{s:?}");
        assert!(within(s.max_us, 40_000), "{s:?}");
    }

    #[test]
    fn a_window_is_the_difference_of_two_snapshots() {
        let (mut recorder, reader) = forward_delay();
        recorder.record(at(0), at(30), 100);
        flush(&mut recorder);
        let start = reader.snapshot();
        recorder.record(at(0), at(2), 50);
        recorder.record(at(0), at(30), 50);
        flush(&mut recorder);
        let window = reader.snapshot().since(&start);
        assert_eq!(window.count, 100);
        assert_eq!(
            window.buckets.iter().map(|(_, n)| n).collect::<Vec<_>>(),
            [&50, &50]
        );
        assert_eq!(reader.snapshot().since(&reader.snapshot()).count, 0);
    }

    #[test]
    fn a_clock_step_backwards_or_a_huge_delay_stays_in_bounds() {
        let (mut recorder, reader) = forward_delay();
        recorder.record(at(10), at(0), 1);
        recorder.record(at(0), at(3_600_000), 1);
        recorder.record(at(0), at(1), 0); // no copies: nothing
        flush(&mut recorder);
        let s = reader.snapshot();
        assert_eq!(s.count, 2);
        assert!(s.buckets[0].0 <= 1, "{s:?}");
        assert!(
            s.max_us >= MAX_US && s.max_us <= MAX_US * 101 / 100,
            "{s:?}"
        );
    }

    #[test]
    fn the_loop_never_waits_for_a_reader() {
        let (mut recorder, reader) = forward_delay();
        recorder.record(at(0), at(1), 3);
        let held = reader.shared.lock().expect("lock");
        flush(&mut recorder); // must return although the lock is held
        drop(held);
        assert_eq!(reader.snapshot().count, 0);
        flush(&mut recorder);
        assert_eq!(reader.snapshot().count, 3);
    }
}
