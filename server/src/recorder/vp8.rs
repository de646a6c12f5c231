//! VP8 frames from RTP packets (RFC 7741), for the WebM writer.
//!
//! Packets come in the order the engine took them: mostly in sequence, with a late
//! retransmission now and then. A small buffer puts them back in order. A frame is the
//! packets from one that starts a frame (S=1, partition 0) to one with the marker bit, all
//! with one timestamp and no sequence number missing.
//!
//! A frame lost (to the network, or to the recorder's full queue) breaks every delta frame
//! after it, so after a loss nothing comes out until the next keyframe. The same holds at
//! the start: the first frame out is a keyframe. The engine asks the publisher for one when
//! recording starts; after a loss, the next keyframe is the one the publisher sends anyway
//! (on a subscriber's request, or its own schedule).

use std::collections::BTreeMap;
use std::time::{Duration, Instant};

use bytes::Bytes;
use rtc::rtp::codec::vp8::Vp8Packet;
use rtc::rtp::packetizer::Depacketizer;

/// Packets held back waiting for a missing one, at most; then it counts as lost.
const REORDER_PACKETS: usize = 64;
/// How long a missing packet is waited for, at most, in the arrival times of the packets
/// behind it.
const REORDER_TIME: Duration = Duration::from_millis(500);
/// A frame's bytes, at most. A 4K keyframe is far less; a publisher that never sends the
/// marker bit must not fill the memory.
const MAX_FRAME: usize = 8 << 20;

/// One VP8 frame, ready for the muxer.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Frame {
    /// Its RTP timestamp (90 kHz).
    pub timestamp: u32,
    /// The VP8 bitstream of the frame, payload descriptors removed.
    pub data: Vec<u8>,
    /// Width and height, for a keyframe; `None` for a delta frame.
    pub keyframe: Option<(u16, u16)>,
    /// When its first packet reached the engine.
    pub arrived: Instant,
}

/// One RTP packet of a VP8 track, as the assembler needs it.
struct Packet {
    timestamp: u32,
    marker: bool,
    payload: Bytes,
    arrived: Instant,
}

/// The frame being put together.
struct Partial {
    timestamp: u32,
    data: Vec<u8>,
    arrived: Instant,
}

/// Puts VP8 frames together from RTP packets, and keeps only frames a decoder can use.
pub struct Assembler {
    /// Packets that came before the one expected next, by extended sequence number.
    pending: BTreeMap<u64, Packet>,
    /// The extended sequence number expected next.
    next: Option<u64>,
    /// The highest sequence number seen, and its extension.
    highest: Option<(u16, u64)>,
    current: Option<Partial>,
    /// Something was lost since the last frame that came out: wait for a keyframe.
    wait_for_keyframe: bool,
    /// Frames dropped while waiting for a keyframe.
    pub dropped: u64,
}

impl Default for Assembler {
    fn default() -> Self {
        Assembler {
            pending: BTreeMap::new(),
            next: None,
            highest: None,
            current: None,
            wait_for_keyframe: true,
            dropped: 0,
        }
    }
}

impl Assembler {
    /// Take one RTP packet; the frames it completes go to `out`.
    pub fn push(
        &mut self,
        seq: u16,
        timestamp: u32,
        marker: bool,
        payload: Bytes,
        arrived: Instant,
        out: &mut Vec<Frame>,
    ) {
        let ext = self.extend(seq);
        let next = *self.next.get_or_insert(ext);
        if ext < next {
            return; // too late, or a copy
        }
        let packet = Packet {
            timestamp,
            marker,
            payload,
            arrived,
        };
        self.pending.insert(ext, packet);
        self.drain_in_order(out);
        let waited_too_long = self.pending.first_key_value().is_some_and(|(_, oldest)| {
            arrived.saturating_duration_since(oldest.arrived) >= REORDER_TIME
        });
        if self.pending.len() > REORDER_PACKETS || waited_too_long {
            self.skip_gap();
            self.drain_in_order(out);
        }
    }

    /// Everything still held back, in order, the gaps counted as losses (the file ends).
    pub fn finish(&mut self, out: &mut Vec<Frame>) {
        while !self.pending.is_empty() {
            self.skip_gap();
            self.drain_in_order(out);
        }
    }

    /// The extended (never wrapping) sequence number of `seq`.
    fn extend(&mut self, seq: u16) -> u64 {
        let Some((high, high_ext)) = self.highest else {
            // Far from 0, so that an earlier packet does not go below it.
            let ext = 1 << 32;
            self.highest = Some((seq, ext));
            return ext;
        };
        let delta = i64::from(seq.wrapping_sub(high) as i16);
        let ext = high_ext.saturating_add_signed(delta);
        if delta > 0 {
            self.highest = Some((seq, ext));
        }
        ext
    }

    /// The packet expected next is lost: go on from the oldest one held.
    fn skip_gap(&mut self) {
        if let Some((&first, _)) = self.pending.first_key_value() {
            self.next = Some(first);
            self.lost();
        }
    }

    fn drain_in_order(&mut self, out: &mut Vec<Frame>) {
        while let Some(next) = self.next
            && let Some(packet) = self.pending.remove(&next)
        {
            self.next = Some(next + 1);
            self.take(packet, out);
        }
    }

    /// The next packet in sequence.
    fn take(&mut self, packet: Packet, out: &mut Vec<Frame>) {
        // A fresh descriptor each time: the crate's keeps fields of the last packet.
        let mut descriptor = Vp8Packet::default();
        let Ok(data) = descriptor.depacketize(&packet.payload) else {
            self.lost();
            return;
        };
        let starts_frame = descriptor.s == 1 && descriptor.pid == 0;
        if starts_frame {
            if self.current.is_some() {
                self.lost(); // the last frame's end never came
            }
            self.current = Some(Partial {
                timestamp: packet.timestamp,
                data: data.to_vec(),
                arrived: packet.arrived,
            });
        } else {
            match &mut self.current {
                Some(frame) if frame.timestamp == packet.timestamp => {
                    if frame.data.len() + data.len() > MAX_FRAME {
                        self.lost();
                        return;
                    }
                    frame.data.extend_from_slice(&data);
                }
                _ => {
                    self.lost(); // the frame's start is missing
                    return;
                }
            }
        }
        if packet.marker
            && let Some(frame) = self.current.take()
        {
            self.complete(frame, out);
        }
    }

    fn complete(&mut self, frame: Partial, out: &mut Vec<Frame>) {
        let keyframe = keyframe_size(&frame.data);
        if keyframe.is_some() {
            self.wait_for_keyframe = false;
        } else if self.wait_for_keyframe {
            self.dropped += 1;
            return;
        }
        out.push(Frame {
            timestamp: frame.timestamp,
            data: frame.data,
            keyframe,
            arrived: frame.arrived,
        });
    }

    fn lost(&mut self) {
        self.current = None;
        self.wait_for_keyframe = true;
    }
}

/// The width and height of a VP8 keyframe (RFC 6386, sections 9.1 and 19.1), or `None` for
/// a delta frame or something too short or malformed to be a keyframe.
pub fn keyframe_size(frame: &[u8]) -> Option<(u16, u16)> {
    let tag = frame.first()?;
    // The frame tag's lowest bit is 0 for a keyframe; a keyframe's tag is followed by the
    // start code and two 14-bit sizes, each with 2 bits of scaling above it.
    if tag & 1 != 0 || frame.get(3..6)? != [0x9d, 0x01, 0x2a] {
        return None;
    }
    let sizes = frame.get(6..10)?;
    let width = u16::from_le_bytes([sizes[0], sizes[1]]) & 0x3fff;
    let height = u16::from_le_bytes([sizes[2], sizes[3]]) & 0x3fff;
    (width > 0 && height > 0).then_some((width, height))
}

/// Test helpers: a VP8 RTP payload as a browser would send it.
#[cfg(test)]
pub(crate) mod synthetic {
    /// A frame's VP8 bitstream: a keyframe of `width` x `height` or a delta frame, with
    /// `body` after the header.
    pub(crate) fn frame(keyframe: Option<(u16, u16)>, body: &[u8]) -> Vec<u8> {
        let mut data = match keyframe {
            // Frame tag: keyframe (bit 0 clear), version 0, shown, first partition size 0.
            Some((w, h)) => {
                let mut d = vec![0x10, 0x00, 0x00, 0x9d, 0x01, 0x2a];
                d.extend_from_slice(&w.to_le_bytes());
                d.extend_from_slice(&h.to_le_bytes());
                d
            }
            None => vec![0x11, 0x00, 0x00],
        };
        data.extend_from_slice(body);
        data
    }

    /// One RTP payload: the extended descriptor with a 15-bit picture id (as Chrome sends),
    /// S set on a frame's first packet, then the bytes.
    pub(crate) fn payload(start: bool, picture_id: u16, bytes: &[u8]) -> bytes::Bytes {
        let s = if start { 0x10 } else { 0x00 };
        let mut p = vec![0x80 | s, 0x80, 0x80 | (picture_id >> 8) as u8 & 0x7f];
        p.push(picture_id as u8);
        p.extend_from_slice(bytes);
        p.into()
    }
}

#[cfg(test)]
mod tests {
    use super::synthetic::{frame, payload};
    use super::*;

    /// Feed `packets` (seq, timestamp, marker, start, bytes) and collect the frames.
    fn run(packets: &[(u16, u32, bool, bool, Vec<u8>)]) -> (Vec<Frame>, Assembler) {
        let mut a = Assembler::default();
        let mut out = Vec::new();
        let t0 = Instant::now();
        for (k, (seq, ts, marker, start, bytes)) in packets.iter().enumerate() {
            let at = t0 + Duration::from_millis(k as u64);
            a.push(*seq, *ts, *marker, payload(*start, 1, bytes), at, &mut out);
        }
        a.finish(&mut out);
        (out, a)
    }

    #[test]
    fn the_keyframe_header_gives_the_size() {
        assert_eq!(
            keyframe_size(&frame(Some((640, 480)), b"x")),
            Some((640, 480))
        );
        // The two scaling bits are not part of the size.
        let mut scaled = frame(Some((320, 240)), b"");
        scaled[7] |= 0x40;
        assert_eq!(keyframe_size(&scaled), Some((320, 240)));
        assert_eq!(keyframe_size(&frame(None, b"0123456789")), None);
        assert_eq!(keyframe_size(&[0x10, 0, 0, 0x9d, 0x01]), None, "too short");
        // A start code and no sizes, or half of them: the publisher's bytes, not ours.
        for cut in 6..10 {
            let short = &frame(Some((64, 48)), b"")[..cut];
            assert_eq!(keyframe_size(short), None, "{cut} bytes");
        }
        assert_eq!(keyframe_size(&[0x10, 0, 0, 1, 2, 3, 4, 5, 6, 7]), None);
        assert_eq!(keyframe_size(&[]), None);
    }

    #[test]
    fn frames_span_packets_and_start_at_a_keyframe() {
        let key = frame(Some((64, 48)), b"KEY");
        let (k1, k2) = key.split_at(5);
        let packets = [
            // A delta frame before any keyframe: dropped.
            (65533, 0, true, true, frame(None, b"early")),
            // A keyframe in two packets, across the wrap of the sequence numbers.
            (65534, 3000, false, true, k1.to_vec()),
            (65535, 3000, true, false, k2.to_vec()),
            (0, 6000, true, true, frame(None, b"d1")),
        ];
        let (frames, a) = run(&packets);
        assert_eq!(a.dropped, 1);
        assert_eq!(frames.len(), 2);
        assert_eq!(frames[0].data, key, "descriptors stripped, packets joined");
        assert_eq!(frames[0].keyframe, Some((64, 48)));
        assert_eq!(frames[0].timestamp, 3000);
        assert_eq!(frames[1].keyframe, None);
        assert_eq!(frames[1].data, frame(None, b"d1"));
    }

    #[test]
    fn a_late_packet_is_put_back_in_order() {
        let key = frame(Some((64, 48)), b"KEYFRAME");
        let (k1, k2) = key.split_at(4);
        let packets = [
            (10, 0, false, true, k1.to_vec()),
            (12, 3000, true, true, frame(None, b"d1")),
            (11, 0, true, false, k2.to_vec()),
            (11, 0, true, false, k2.to_vec()), // a copy: ignored
        ];
        let (frames, _) = run(&packets);
        let stamps: Vec<u32> = frames.iter().map(|f| f.timestamp).collect();
        assert_eq!(stamps, [0, 3000]);
        assert_eq!(frames[0].data, key);
    }

    #[test]
    fn after_a_loss_frames_wait_for_the_next_keyframe() {
        let mut packets = vec![(100, 0, true, true, frame(Some((64, 48)), b""))];
        // 101 is lost: the delta frames after it wait, then go, as they cannot be decoded.
        for k in 0..(REORDER_PACKETS as u16 + 2) {
            let ts = 3000 * u32::from(k + 2);
            packets.push((102 + k, ts, true, true, frame(None, b"d")));
        }
        let seq = 102 + REORDER_PACKETS as u16 + 2;
        packets.push((seq, 900_000, true, true, frame(Some((64, 48)), b"")));
        packets.push((seq + 1, 903_000, true, true, frame(None, b"d")));
        let (frames, a) = run(&packets);
        let stamps: Vec<u32> = frames.iter().map(|f| f.timestamp).collect();
        assert_eq!(stamps, [0, 900_000, 903_000]);
        assert_eq!(a.dropped, REORDER_PACKETS as u64 + 2);
    }

    #[test]
    fn a_frame_that_never_ends_is_dropped_at_its_bound() {
        let mut packets = vec![(0, 0, true, true, frame(Some((64, 48)), b""))];
        let chunk = vec![7u8; 1200];
        let n = (MAX_FRAME / chunk.len() + 2) as u16;
        packets.push((1, 3000, false, true, frame(Some((64, 48)), b"")));
        for k in 0..n {
            packets.push((2 + k, 3000, k == n - 1, false, chunk.clone()));
        }
        packets.push((2 + n, 6000, true, true, frame(None, b"d")));
        packets.push((3 + n, 9000, true, true, frame(Some((64, 48)), b"")));
        let (frames, a) = run(&packets);
        let stamps: Vec<u32> = frames.iter().map(|f| f.timestamp).collect();
        assert_eq!(
            stamps,
            [0, 9000],
            "the endless frame and the delta after it are left out"
        );
        assert_eq!(a.dropped, 1);
    }

    #[test]
    fn a_frame_whose_end_or_start_is_lost_is_dropped() {
        let packets = [
            (1, 0, true, true, frame(Some((64, 48)), b"")),
            // A frame without its marker packet, then the next frame's start.
            (2, 3000, false, true, frame(None, b"a")),
            (3, 6000, true, true, frame(None, b"b")),
            // A keyframe, then a packet that continues no frame.
            (4, 9000, true, true, frame(Some((64, 48)), b"")),
            (5, 12000, true, false, b"tail".to_vec()),
            (6, 15000, true, true, frame(None, b"c")),
            // Garbage that is no VP8 payload at all.
            (7, 18000, true, true, Vec::new()),
        ];
        let mut a = Assembler::default();
        let mut out = Vec::new();
        let t0 = Instant::now();
        for (seq, ts, marker, start, bytes) in packets {
            let p = if bytes.is_empty() {
                Bytes::from_static(&[0x90])
            } else {
                payload(start, 1, &bytes)
            };
            a.push(seq, ts, marker, p, t0, &mut out);
        }
        let stamps: Vec<u32> = out.iter().map(|f| f.timestamp).collect();
        assert_eq!(stamps, [0, 9000]);
    }
}
