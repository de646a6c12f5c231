//! Published tracks and their forwarding. RTP read from a publisher's connection is
//! rewritten for each subscriber (SSRC, payload type, sequence number, timestamp) and written
//! straight into the subscriber's connection. Nothing is queued per consumer and nothing
//! waits.
//!
//! The gate: a closed track forwards nothing and asks its publisher for no keyframe. Each
//! consumer numbers its packets itself ([`Rewrite`]), so when the gate reopens its sequence
//! numbers go on from the last one it sent, and its timestamps from the last one plus the
//! time that passed, as LiveKit's forwarder does on unmute. A receiver sees no gap to repair
//! and no jump in its clock. A video track asks for a keyframe when it reopens.
//!
//! Recording: a recorded track also hands each packet that passes the gate to the driver,
//! as [`Output::Record`], before any rewrite. The recorder hears what the room hears. A
//! track not recorded pays one flag check per packet.

use std::time::Instant;

use rtc::peer_connection::message::{RTCMessage, TaggedRTCMessage};
use rtc::rtcp::sender_report::SenderReport;
use rtc::rtp::header::Header;
use rtc::rtp_transceiver::RTCRtpReceiverId;
use rtc::rtp_transceiver::rtp_sender::{RTCRtpCodec, RtpCodecKind};
use rtc::sansio::Protocol;
use signaling::wire::{MediaKind, TrackInfo};

use super::{Engine, Output, PcId, SessionId};
use crate::media::values::{Codec, MediaEvent, RecordedPacket, TrackKey};

/// Sequence numbers a published track remembers having forwarded: 4 s of 1.2 Mbit/s video.
/// A copy that comes later than that is dropped as too late to be of use, as SRTP drops one
/// more than 64 packets late on the track's own stream.
const SEEN_WINDOW: usize = 512;

/// The packets of a published track that came lately, so that none is forwarded twice.
///
/// SRTP drops a packet that comes again on the same stream. A copy unwrapped from the track's
/// retransmission stream (RTX) is left to us: a retransmission asked for after the packet
/// itself came, or recent media that a publisher sends again to probe its bandwidth, as
/// Chrome does. Forwarded, it would cost the server and every subscriber's link, and then be
/// dropped by the subscriber's SRTP.
pub(super) struct Seen(rtc::shared::replay_detector::WrappedSlidingWindowDetector);

impl Default for Seen {
    fn default() -> Self {
        Seen(
            rtc::shared::replay_detector::WrappedSlidingWindowDetector::new(
                SEEN_WINDOW,
                u64::from(u16::MAX),
            ),
        )
    }
}

impl Seen {
    /// Whether packet `seq` is new (recorded as seen now), rather than a copy of one that
    /// came lately or one too old to forward.
    fn is_new(&mut self, seq: u16) -> bool {
        use rtc::shared::replay_detector::ReplayDetector;
        let new = self.0.check(u64::from(seq));
        if new {
            self.0.accept();
        }
        new
    }
}

/// One published track as the engine forwards it.
pub(super) struct Published {
    pub(super) info: TrackInfo,
    /// The codec the publisher negotiated, and its payload type there.
    pub(super) codec: RTCRtpCodec,
    payload_type: u8,
    /// The codec as the recorder knows it.
    recorded_codec: Codec,
    pub(super) publisher: SessionId,
    pub(super) publisher_pc: PcId,
    pub(super) receiver: RTCRtpReceiverId,
    pub(super) media_ssrc: u32,
    pub(super) consumers: Vec<ConsumerRef>,
    /// Packets and payload octets forwarded from this track so far (each packet once,
    /// whatever the number of subscribers), for the subscribers' sender reports.
    pub(super) sent: Sent,
    /// The publisher's last sender report: its clock mapping, sent to each new subscriber.
    pub(super) report: Option<ClockMapping>,
    seen: Seen,
    /// Packets that came from the publisher, each copy counted.
    pub(super) received: u64,
    /// The gate: whether packets reach the subscribers.
    pub(super) open: bool,
    /// Whether packets that pass the gate also go to the recorder.
    recorded: bool,
    /// When the publisher was last asked for a keyframe.
    pub(super) last_keyframe_request: Option<Instant>,
}

impl Published {
    /// Stop forwarding to the subscriber connection `pc`; how many consumers that removed.
    pub(super) fn remove_consumer(&mut self, pc: PcId) -> usize {
        let before = self.consumers.len();
        self.consumers.retain(|c| c.pc != pc);
        before - self.consumers.len()
    }
}

/// One subscriber of a track.
pub(super) struct ConsumerRef {
    pub(super) pc: PcId,
    pub(super) ssrc: u32,
    /// 0 until the subscriber's answer (and connection) make the payload type known.
    pub(super) payload_type: u8,
    /// The track's [`Sent`] when this subscriber started to receive it: its own counts are
    /// what came since.
    pub(super) base: Sent,
    pub(super) rewrite: Rewrite,
}

/// How one consumer numbers its packets: the offsets from the publisher's numbers to its
/// own, and the last packet it was sent.
#[derive(Debug, Clone, Copy, Default)]
pub(super) struct Rewrite {
    seq_offset: u16,
    ts_offset: u32,
    last: Option<Last>,
    /// The next packet follows a closed interval: pick new offsets for it.
    resync: bool,
}

#[derive(Debug, Clone, Copy)]
struct Last {
    seq: u16,
    ts: u32,
    at: Instant,
}

impl Rewrite {
    /// The gate reopened: the next packet continues from the last one sent.
    pub(super) fn resync(&mut self) {
        self.resync = self.last.is_some();
    }

    /// Renumber `header` (the publisher's numbers), received at `now`, in this consumer's
    /// terms. `clock_rate` is the track's RTP clock.
    pub(super) fn apply(&mut self, header: &mut Header, now: Instant, clock_rate: u32) {
        if std::mem::take(&mut self.resync)
            && let Some(last) = self.last
        {
            let elapsed = now.saturating_duration_since(last.at);
            let ticks = (elapsed.as_secs_f64() * f64::from(clock_rate)) as u64;
            let ticks = u32::try_from(ticks.max(1)).unwrap_or(u32::MAX);
            self.seq_offset = header
                .sequence_number
                .wrapping_sub(last.seq.wrapping_add(1));
            self.ts_offset = header.timestamp.wrapping_sub(last.ts.wrapping_add(ticks));
        }
        header.sequence_number = header.sequence_number.wrapping_sub(self.seq_offset);
        header.timestamp = header.timestamp.wrapping_sub(self.ts_offset);
        let newer = self
            .last
            .is_none_or(|l| header.sequence_number.wrapping_sub(l.seq) < 0x8000);
        if newer {
            self.last = Some(Last {
                seq: header.sequence_number,
                ts: header.timestamp,
                at: now,
            });
        }
    }

    /// A publisher's RTP time in this consumer's terms.
    pub(super) fn rtp_time(&self, publisher: u32) -> u32 {
        publisher.wrapping_sub(self.ts_offset)
    }
}

/// RTP packets and payload octets, wrapping as RTCP's 32-bit counts do.
#[derive(Debug, Clone, Copy, Default)]
pub(super) struct Sent {
    pub(super) packets: u32,
    pub(super) octets: u32,
}

/// A sender report's mapping of the publisher's wall clock to its RTP clock.
#[derive(Debug, Clone, Copy)]
pub(super) struct ClockMapping {
    pub(super) ntp_time: u64,
    pub(super) rtp_time: u32,
}

impl ConsumerRef {
    /// The sender report this subscriber gets for `mapping`: the publisher's clock, in this
    /// subscriber's SSRC and RTP clock, with what was sent to it.
    pub(super) fn report(&self, sent: Sent, mapping: ClockMapping) -> SenderReport {
        SenderReport {
            ssrc: self.ssrc,
            ntp_time: mapping.ntp_time,
            rtp_time: self.rewrite.rtp_time(mapping.rtp_time),
            packet_count: sent.packets.wrapping_sub(self.base.packets),
            octet_count: sent.octets.wrapping_sub(self.base.octets),
            reports: Vec::new(),
            profile_extensions: Default::default(),
        }
    }
}

impl Engine {
    /// Open or close a track's forwarding.
    pub(super) fn gate(&mut self, now: Instant, key: TrackKey, open: bool) {
        let Some(published) = self.producers.get_mut(&key) else {
            return;
        };
        if published.open == open {
            return;
        }
        published.open = open;
        tracing::debug!(track = %published.info.id, open, "gate");
        if open {
            for c in &mut published.consumers {
                c.rewrite.resync();
            }
            if published.info.kind == MediaKind::Video {
                published.last_keyframe_request = None;
                self.request_keyframe(now, key);
            }
        }
    }

    /// Start or stop recording a track's packets. A video file starts at a keyframe, so a
    /// video track that starts being recorded asks its publisher for one at once.
    pub(super) fn record(&mut self, now: Instant, key: TrackKey, on: bool) {
        let Some(published) = self.producers.get_mut(&key) else {
            return;
        };
        tracing::debug!(track = %published.info.id, on, "record");
        let start = on && !published.recorded;
        published.recorded = on;
        if start && published.info.kind == MediaKind::Video {
            published.last_keyframe_request = None;
            self.request_keyframe(now, key);
        }
    }

    pub(super) fn on_rtp(
        &mut self,
        now: Instant,
        session_id: SessionId,
        pc_id: PcId,
        track: &str,
        mut packet: rtc::rtp::Packet,
    ) {
        let Some(session) = self.sessions.get(&session_id) else {
            return;
        };
        let key = match session.published.get(track) {
            Some(key) => *key,
            None => {
                match self.publish_track(session_id, pc_id, track, packet.header.payload_type) {
                    Some(ours) => ours,
                    None => return,
                }
            }
        };
        // Disjoint borrows of the engine's fields: each copy goes straight into its
        // subscriber's connection, with no list of copies in between.
        let Engine {
            producers,
            pcs,
            to_flush,
            to_pump,
            stats,
            out,
            ..
        } = self;
        let Some(published) = producers.get_mut(&key) else {
            return;
        };
        published.received += 1;
        // Subscribers negotiated the track's first codec only: a packet in another (a
        // publisher that switched codec, or bandwidth-probing padding left on the RTX
        // stream) would reach them as garbage.
        if packet.header.payload_type != published.payload_type {
            return;
        }
        if !published.seen.is_new(packet.header.sequence_number) || !published.open {
            return;
        }
        if published.recorded {
            out.push_back(Output::Record(Box::new(RecordedPacket {
                track: key,
                ssrc: packet.header.ssrc,
                payload_type: packet.header.payload_type,
                codec: published.recorded_codec,
                seq: packet.header.sequence_number,
                timestamp: packet.header.timestamp,
                marker: packet.header.marker,
                payload: packet.payload.clone(),
                arrived: now,
            })));
        }
        published.sent.packets = published.sent.packets.wrapping_add(1);
        published.sent.octets = published
            .sent
            .octets
            .wrapping_add(packet.payload.len() as u32);
        // Extension ids are per connection; the publisher's would mean something else to a
        // subscriber.
        strip_extensions(&mut packet.header);
        let clock_rate = published.codec.clock_rate;
        let octets = packet.payload.len() as u64;
        for c in published
            .consumers
            .iter_mut()
            .filter(|c| c.payload_type != 0)
        {
            let Some(pc) = pcs.get_mut(&c.pc) else {
                continue;
            };
            let mut out = packet.clone();
            out.header.ssrc = c.ssrc;
            out.header.payload_type = c.payload_type;
            c.rewrite.apply(&mut out.header, now, clock_rate);
            // Straight into the pipeline: the sender's checks (SSRC, payload type, extension
            // ids) were made once, when the consumer was activated.
            let msg = TaggedRTCMessage {
                now,
                message: RTCMessage::RtpPacket(String::new(), out),
            };
            if let Err(e) = pc.rtc.handle_write(msg) {
                tracing::trace!(%e, "forward");
                continue;
            }
            stats.forwarded += 1;
            stats.forwarded_bytes += octets;
            let (list, pump) = pc.took_one();
            if list {
                to_flush.push(c.pc);
            }
            if pump {
                to_pump.push(c.pc);
            }
        }
        self.pump_due();
    }

    /// The first packet of a track the publisher opened: make it a published track and tell
    /// the room.
    fn publish_track(
        &mut self,
        session_id: SessionId,
        pc_id: PcId,
        track: &str,
        payload_type: u8,
    ) -> Option<TrackKey> {
        let session = self.sessions.get_mut(&session_id)?;
        let (receiver, media_ssrc) = *session.opened.get(track)?;
        let pc = self.pcs.get_mut(&pc_id)?;
        let mut r = pc.rtc.rtp_receiver(receiver)?;
        let kind = match r.track().kind() {
            RtpCodecKind::Audio => MediaKind::Audio,
            RtpCodecKind::Video => MediaKind::Video,
            _ => return None,
        };
        let codec = r
            .get_parameters()
            .rtp_parameters
            .codecs
            .iter()
            .find(|c| c.payload_type == payload_type)?
            .rtp_codec
            .clone();
        let letter = if kind == MediaKind::Audio { 'a' } else { 'v' };
        let id = format!("{}-{letter}{}", session.participant, session.next_track);
        session.next_track += 1;
        let info = TrackInfo {
            id,
            participant: session.participant.clone(),
            kind,
        };
        let key = TrackKey(self.next_track);
        self.next_track += 1;
        session.published.insert(track.to_string(), key);
        self.producers.insert(
            key,
            Published {
                info: info.clone(),
                recorded_codec: Codec::of_mime(&codec.mime_type),
                codec,
                payload_type,
                publisher: session_id,
                publisher_pc: pc_id,
                receiver,
                media_ssrc,
                consumers: Vec::new(),
                sent: Sent::default(),
                report: None,
                seen: Seen::default(),
                received: 0,
                open: true,
                recorded: false,
                last_keyframe_request: None,
            },
        );
        self.tell_room(session_id, MediaEvent::TrackPublished { key, info });
        Some(key)
    }

    /// A published track ended: forget it and tell the room.
    pub(super) fn end_track(&mut self, key: TrackKey) {
        let Some(published) = self.producers.remove(&key) else {
            return;
        };
        self.stats.consumers -= published.consumers.len();
        self.tell_room(
            published.publisher,
            MediaEvent::TrackEnded {
                key,
                track_id: published.info.id,
            },
        );
    }
}

#[cfg(test)]
impl Engine {
    /// Packets that came from a track's publisher, each copy counted.
    pub(crate) fn received(&self, key: TrackKey) -> Option<u64> {
        self.producers.get(&key).map(|p| p.received)
    }
}

/// Drop a packet's header extensions (their ids are per connection).
fn strip_extensions(header: &mut Header) {
    header.extension = false;
    header.extension_profile = 0;
    header.extensions = Vec::new();
    header.extensions_padding = 0;
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use super::*;

    fn header(seq: u16, ts: u32) -> Header {
        Header {
            sequence_number: seq,
            timestamp: ts,
            ..Default::default()
        }
    }

    #[test]
    fn numbers_pass_unchanged_until_a_resync() {
        let mut rewrite = Rewrite::default();
        let t0 = Instant::now();
        for (i, seq) in [65534u16, 65535, 0, 1].into_iter().enumerate() {
            let mut h = header(seq, 1000 + 960 * i as u32);
            rewrite.apply(&mut h, t0, 48000);
            assert_eq!(
                (h.sequence_number, h.timestamp),
                (seq, 1000 + 960 * i as u32)
            );
        }
        // A resync with nothing sent before changes nothing.
        let mut fresh = Rewrite::default();
        fresh.resync();
        let mut h = header(500, 7);
        fresh.apply(&mut h, t0, 48000);
        assert_eq!((h.sequence_number, h.timestamp), (500, 7));
    }

    #[test]
    fn after_a_closed_interval_numbers_go_on_from_the_last_sent() {
        let mut rewrite = Rewrite::default();
        let t0 = Instant::now();
        let mut h = header(100, 48_000);
        rewrite.apply(&mut h, t0, 48000);
        // Two seconds closed: the publisher went on to 200 and 48,000 + 96,000.
        rewrite.resync();
        let at = t0 + Duration::from_secs(2);
        let mut h = header(200, 144_000);
        rewrite.apply(&mut h, at, 48000);
        assert_eq!(h.sequence_number, 101, "no gap");
        assert_eq!(
            h.timestamp,
            48_000 + 96_000,
            "the clock moved by the time that passed"
        );
        let mut h = header(201, 144_960);
        rewrite.apply(&mut h, at + Duration::from_millis(20), 48000);
        assert_eq!((h.sequence_number, h.timestamp), (102, 144_960));
        // A report's RTP time in the same terms.
        assert_eq!(rewrite.rtp_time(144_000), 144_000);
    }

    #[test]
    fn an_older_packet_does_not_move_the_last_sent_back() {
        let mut rewrite = Rewrite::default();
        let t0 = Instant::now();
        for seq in [10u16, 12, 11] {
            let mut h = header(seq, u32::from(seq));
            rewrite.apply(&mut h, t0, 90000);
        }
        rewrite.resync();
        let mut h = header(50, 50);
        rewrite.apply(&mut h, t0, 90000);
        assert_eq!(h.sequence_number, 13);
    }
}
