//! What a receiver keeps about one incoming stream, in O(1) memory however long it runs, and
//! the payload format that makes it possible: every synthetic packet carries its publisher's
//! counter and its send time on a clock shared by the whole process.

use std::sync::OnceLock;
use std::time::Instant;

use hdrhistogram::{Counter, Histogram};

/// Bytes at the start of every payload: the counter, then the send time.
pub const HEADER_BYTES: usize = 16;

/// Latencies are recorded in microseconds up to this (10 s); later ones count as 10 s.
const LATENCY_MAX_US: u64 = 10_000_000;
/// Two significant digits: 1% resolution is plenty for percentiles, and a histogram stays
/// about 9 KB, which matters at 1,700 streams (skillshare40).
const LATENCY_SIGFIG: u8 = 2;

/// How far behind the highest counter a packet may arrive and still be told apart from a
/// duplicate: 1,024 packets, 8 s of 1.2 Mbit/s video, for 128 bytes per stream. Anything older
/// is useless to a real-time receiver and counts as `too_late`.
const WINDOW: u64 = 1024;
const WINDOW_WORDS: usize = (WINDOW / 64) as usize;

static EPOCH: OnceLock<Instant> = OnceLock::new();

/// Nanoseconds since this process's monotonic epoch. Senders and receivers live in the same
/// process, so the difference of two readings is a one-way latency with no clock skew.
pub fn now_ns() -> u64 {
    let epoch = *EPOCH.get_or_init(Instant::now);
    u64::try_from(epoch.elapsed().as_nanos()).unwrap_or(u64::MAX)
}

/// A payload of `size` bytes (at least [`HEADER_BYTES`]):
/// `[u64 counter BE][u64 send time ns BE][zero padding]`.
pub fn encode_payload(counter: u64, sent_ns: u64, size: usize) -> Vec<u8> {
    let mut payload = vec![0u8; size.max(HEADER_BYTES)];
    payload[..8].copy_from_slice(&counter.to_be_bytes());
    payload[8..16].copy_from_slice(&sent_ns.to_be_bytes());
    payload
}

/// Width and height a framed synthetic keyframe says it has.
pub const VP8_SIZE: (u16, u16) = (320, 240);

/// What goes before a synthetic payload (counter and all) when a plan asks for VP8 framing,
/// so that a reader of VP8 (the recorder) sees frames: an extended payload descriptor
/// (RFC 7741: X set, S on a frame's first packet), then on a frame's first packet the VP8
/// frame header (RFC 6386), a keyframe's with its size. The X bit tells it from an unframed
/// payload, whose first byte is a counter's top byte, 0.
pub fn vp8_prefix(first: bool, keyframe: bool) -> Vec<u8> {
    if !first {
        return vec![0x80, 0x00];
    }
    let mut p = vec![0x90, 0x00];
    if keyframe {
        p.extend_from_slice(&[0x10, 0x00, 0x00, 0x9d, 0x01, 0x2a]);
        p.extend_from_slice(&VP8_SIZE.0.to_le_bytes());
        p.extend_from_slice(&VP8_SIZE.1.to_le_bytes());
    } else {
        p.extend_from_slice(&[0x11, 0x00, 0x00]);
    }
    p
}

/// The counter and send time of a payload, if it is one of ours (framed as VP8 or not).
pub fn decode_payload(payload: &[u8]) -> Option<(u64, u64)> {
    let payload = match payload.first() {
        Some(b) if b & 0x80 != 0 => {
            let header = match (b & 0x10 != 0, payload.get(2)? & 1 == 0) {
                (false, _) => 0,
                (true, true) => 10,
                (true, false) => 3,
            };
            payload.get(2 + header..)?
        }
        _ => payload,
    };
    let counter = u64::from_be_bytes(payload.get(..8)?.try_into().ok()?);
    let sent_ns = u64::from_be_bytes(payload.get(8..16)?.try_into().ok()?);
    Some((counter, sent_ns))
}

/// A new, empty latency histogram (microseconds): `u32` counts per stream, `u64` for merging
/// many of them.
pub fn latency_histogram<T: Counter>() -> Histogram<T> {
    Histogram::new_with_bounds(1, LATENCY_MAX_US, LATENCY_SIGFIG)
        .expect("constant histogram bounds are valid")
}

/// Running statistics of one (receiver, publisher, kind) stream.
#[derive(Debug, Clone)]
pub struct StreamStats {
    /// When the first packet of this stream ever arrived (kept across windows: join time).
    pub first_at_ns: Option<u64>,
    /// Unique packets received in the current window.
    pub received: u64,
    /// Packets seen twice (retransmissions that raced the original) in the window.
    pub duplicates: u64,
    /// Packets older than the window's first one, or more than [`WINDOW`] behind the highest:
    /// neither received nor lost.
    pub too_late: u64,
    first_counter: Option<u64>,
    highest: u64,
    // Bit `c % WINDOW` is set when counter c, within WINDOW of `highest`, arrived.
    seen: [u64; WINDOW_WORDS],
    /// One-way latency of every unique packet in the window, in microseconds.
    pub latency_us: Histogram<u32>,
}

impl Default for StreamStats {
    fn default() -> Self {
        StreamStats {
            first_at_ns: None,
            received: 0,
            duplicates: 0,
            too_late: 0,
            first_counter: None,
            highest: 0,
            seen: [0; WINDOW_WORDS],
            latency_us: latency_histogram(),
        }
    }
}

impl StreamStats {
    /// Account for one packet with the publisher's `counter`, sent at `sent_ns` and received
    /// at `now_ns`.
    pub fn record(&mut self, counter: u64, sent_ns: u64, now_ns: u64) {
        self.first_at_ns.get_or_insert(now_ns);
        if !self.count(counter) {
            return;
        }
        let latency_us = now_ns.saturating_sub(sent_ns) / 1000;
        self.latency_us.saturating_record(latency_us.max(1));
    }

    /// Update the counters; false if the packet is a duplicate or too late.
    fn count(&mut self, counter: u64) -> bool {
        let first = *self.first_counter.get_or_insert(counter);
        if self.received == 0 {
            self.highest = counter;
        } else if counter > self.highest {
            // Forget the slots the window slides over; they now stand for newer counters.
            if counter - self.highest >= WINDOW {
                self.seen = [0; WINDOW_WORDS];
            } else {
                for c in self.highest + 1..counter {
                    self.set_seen(c, false);
                }
            }
            self.highest = counter;
        } else if counter < first || self.highest - counter >= WINDOW {
            self.too_late += 1;
            return false;
        } else if self.is_seen(counter) {
            self.duplicates += 1;
            return false;
        }
        self.set_seen(counter, true);
        self.received += 1;
        true
    }

    fn is_seen(&self, counter: u64) -> bool {
        let slot = counter % WINDOW;
        self.seen[(slot / 64) as usize] & (1 << (slot % 64)) != 0
    }

    fn set_seen(&mut self, counter: u64, seen: bool) {
        let slot = counter % WINDOW;
        let (word, bit) = ((slot / 64) as usize, 1u64 << (slot % 64));
        if seen {
            self.seen[word] |= bit;
        } else {
            self.seen[word] &= !bit;
        }
    }

    /// Packets the publisher sent from this window's first received one to the highest.
    pub fn expected(&self) -> u64 {
        self.first_counter
            .map_or(0, |first| self.highest - first + 1)
    }

    /// Expected but never received (tail packets still in flight are not counted).
    pub fn lost(&self) -> u64 {
        self.expected().saturating_sub(self.received)
    }

    /// Forget the window's counters and latencies, keeping when the stream first arrived.
    pub fn start_window(&mut self) {
        *self = StreamStats {
            first_at_ns: self.first_at_ns,
            ..StreamStats::default()
        };
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn stats_of(counters: &[u64]) -> StreamStats {
        let mut s = StreamStats::default();
        for &c in counters {
            s.record(c, 0, 1_000_000);
        }
        s
    }

    #[test]
    fn payload_round_trips_and_rejects_short_ones() {
        let p = encode_payload(7, 123_456_789, 100);
        assert_eq!(p.len(), 100);
        assert_eq!(decode_payload(&p), Some((7, 123_456_789)));
        assert_eq!(decode_payload(&p[..15]), None);
        assert_eq!(encode_payload(1, 2, 4).len(), HEADER_BYTES);
    }

    #[test]
    fn a_vp8_framed_payload_keeps_its_counter() {
        for (first, keyframe) in [(true, true), (true, false), (false, false)] {
            let mut p = vp8_prefix(first, keyframe);
            p.extend(encode_payload(9, 42, 20));
            assert_eq!(decode_payload(&p), Some((9, 42)), "{first} {keyframe}");
        }
        let key = vp8_prefix(true, true);
        assert_eq!(&key[5..8], [0x9d, 0x01, 0x2a], "a keyframe's start code");
        assert_eq!(decode_payload(&[0x90]), None);
    }

    #[test]
    fn loss_counts_holes_from_the_first_packet_received() {
        let s = stats_of(&[10, 11, 13, 14, 17]);
        assert_eq!((s.expected(), s.received, s.lost()), (8, 5, 3));
        assert_eq!(s.latency_us.len(), 5);
    }

    #[test]
    fn duplicates_and_late_packets_are_told_apart() {
        let s = stats_of(&[5, 6, 8, 7, 6, 9]);
        assert_eq!((s.received, s.duplicates, s.lost()), (5, 1, 0));
        let s = stats_of(&[100, 99, 101]);
        assert_eq!((s.received, s.too_late, s.lost()), (2, 1, 0));
        // A duplicate far behind, but within the window, is still a duplicate.
        let mut counters: Vec<u64> = (0..1000).collect();
        counters.push(3);
        let s = stats_of(&counters);
        assert_eq!((s.received, s.duplicates, s.lost()), (1000, 1, 0));
        // Beyond the window it is too late, whether it is a duplicate or not.
        let s = stats_of(&[0, 1, 3, 2000, 2]);
        assert_eq!((s.received, s.too_late, s.expected()), (4, 1, 2001));
        // Slots the window slid over are free for the counters they now stand for.
        let s = stats_of(&[5, 1000, 1030, 1029]);
        assert_eq!((s.received, s.duplicates, s.too_late), (4, 0, 0));
    }

    #[test]
    fn a_new_window_keeps_only_the_first_arrival() {
        let mut s = stats_of(&[1, 3]);
        let first = s.first_at_ns;
        s.start_window();
        assert_eq!((s.received, s.lost(), s.first_at_ns), (0, 0, first));
        s.record(40, 0, 5);
        assert_eq!((s.expected(), s.received), (1, 1));
    }
}
