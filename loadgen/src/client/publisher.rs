//! Synthetic publishing: what each track sends ([`TrackPlan`]) and the paced task that sends
//! it. Payloads are zeros behind a counter and a send time, so nothing is encoded and the
//! generator stays light; the server never decodes media, so it cannot tell.

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::time::Duration;

use anyhow::Context;
use bytes::Bytes;
use rtc::rtp;
use signaling::wire::MediaKind;
use tokio::time::{Instant, MissedTickBehavior};
use webrtc::media_stream::track_local::static_rtp::TrackLocalStaticRTP;
use webrtc::media_stream::track_local::{TrackLocal, TrackLocalEvent};
use webrtc::rtp_transceiver::RtpSender;

use super::media_log::MediaLog;
use crate::stats::{encode_payload, now_ns};

/// How one synthetic track sends.
#[derive(Debug, Clone, PartialEq)]
pub struct TrackPlan {
    /// Time between packets (20 ms for Opus; 8 ms is 125 packets/s of video).
    pub period: Duration,
    /// Smallest payload. Sizes cycle between this and `max_bytes`, as real audio's do.
    pub min_bytes: usize,
    /// Largest payload.
    pub max_bytes: usize,
    /// Keyframe bursts, for video.
    pub keyframes: Option<Keyframes>,
    /// Stop after this many packets (tests); send until stopped when `None`.
    pub packets: Option<u64>,
}

/// A keyframe is a burst of extra packets in one tick: periodically, and after a keyframe
/// request (PLI/FIR), as a real encoder answers one.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Keyframes {
    /// Time between periodic keyframes.
    pub every: Duration,
    /// Extra packets in a keyframe's tick.
    pub extra_packets: u64,
}

/// What a client publishes: an audio track, a video track, or both.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct PublishPlan {
    /// The Opus track, if any.
    pub audio: Option<TrackPlan>,
    /// The VP8 track, if any.
    pub video: Option<TrackPlan>,
}

impl PublishPlan {
    /// The integration tests' plan: `video_packets` VP8 packets of 1000 bytes every 10 ms and
    /// half as many Opus packets of 80 bytes every 20 ms, so counters equal sequence numbers.
    pub fn counted(video_packets: u16) -> Self {
        let fixed = |period_ms, bytes, packets| TrackPlan {
            period: Duration::from_millis(period_ms),
            min_bytes: bytes,
            max_bytes: bytes,
            keyframes: None,
            packets: Some(packets),
        };
        PublishPlan {
            audio: Some(fixed(20, 80, u64::from(video_packets / 2))),
            video: Some(fixed(10, 1000, u64::from(video_packets))),
        }
    }
}

/// Where a paced sender writes, and what it reports back.
pub(super) struct Output {
    pub track: Arc<TrackLocalStaticRTP>,
    pub ssrc: u32,
    pub payload_type: u8,
    pub clock_rate: u32,
    /// Packets written, over all of the client's tracks.
    pub sent: Arc<AtomicU64>,
    /// Set when a keyframe request arrived; the next tick sends a keyframe.
    pub keyframe_wanted: Arc<AtomicBool>,
}

/// Send `plan` on `out`, paced by a tokio interval. A late tick is skipped rather than caught
/// up, so a saturated generator shows as fewer packets sent, never as bursts.
pub(super) async fn send_paced(out: Output, plan: TrackPlan) {
    let mut tick = tokio::time::interval(plan.period);
    tick.set_missed_tick_behavior(MissedTickBehavior::Skip);
    let start = Instant::now();
    let mut next_keyframe = plan.keyframes.map(|k| start + k.every);
    let mut counter = 0u64;
    let limit = plan.packets.unwrap_or(u64::MAX);
    while counter < limit {
        let now = tick.tick().await;
        let mut burst = 1;
        if let Some(k) = plan.keyframes {
            let due = next_keyframe.is_some_and(|at| now >= at);
            if due || out.keyframe_wanted.swap(false, Ordering::Relaxed) {
                burst += k.extra_packets;
                next_keyframe = Some(now + k.every);
            }
        }
        let media_time = now.duration_since(start).as_micros() as u64;
        let timestamp = (media_time * u64::from(out.clock_rate) / 1_000_000) as u32;
        for _ in 0..burst.min(limit - counter) {
            let size =
                plan.min_bytes + (counter as usize * 37) % (plan.max_bytes - plan.min_bytes + 1);
            let packet = packet(&out, counter, timestamp, size);
            // A write fails only once the connection is closing; the run is ending then.
            if out.track.write_rtp(packet).await.is_err() {
                return;
            }
            out.sent.fetch_add(1, Ordering::Relaxed);
            counter += 1;
        }
    }
}

fn packet(out: &Output, counter: u64, timestamp: u32, size: usize) -> rtp::Packet {
    let mut p = rtp::Packet::default();
    p.header.version = 2;
    p.header.ssrc = out.ssrc;
    p.header.payload_type = out.payload_type;
    // The low bits of the counter, so tests can check one against the other.
    p.header.sequence_number = counter as u16;
    p.header.timestamp = timestamp;
    p.header.marker = true;
    p.payload = Bytes::from(encode_payload(counter, now_ns(), size));
    p
}

/// Count keyframe requests arriving on a published track and ask its sender for a keyframe.
pub(super) async fn answer_keyframe_requests(
    track: Arc<TrackLocalStaticRTP>,
    kind: MediaKind,
    media: Arc<MediaLog>,
    keyframe_wanted: Arc<AtomicBool>,
) {
    while let Some(event) = track.poll().await {
        if let TrackLocalEvent::OnRtcpPacket(_) = event {
            *media
                .keyframe_requests
                .lock()
                .unwrap()
                .entry(kind)
                .or_default() += 1;
            keyframe_wanted.store(true, Ordering::Relaxed);
            media.changed.notify_waiters();
        }
    }
}

/// The payload type negotiated for `mime` on `sender` (final only once the answer is applied).
pub(super) async fn payload_type(sender: &Arc<dyn RtpSender>, mime: &str) -> anyhow::Result<u8> {
    let params = sender.get_parameters().await?;
    let codec = params
        .rtp_parameters
        .codecs
        .iter()
        .find(|c| c.rtp_codec.mime_type.eq_ignore_ascii_case(mime));
    Ok(codec
        .with_context(|| format!("{mime} not negotiated"))?
        .payload_type)
}
