//! Synthetic publishing: what each track sends ([`TrackPlan`]) and the paced task that sends
//! it. Payloads are zeros behind a counter and a send time, so nothing is encoded and the
//! generator stays light; the server never decodes media, so it cannot tell.

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::time::Duration;

use anyhow::Context;
use bytes::Bytes;
use rtc::rtp;
use rtc::rtp_transceiver::rtp_sender::{
    RTCRtpCodec, RTCRtpCodingParameters, RTCRtpEncodingParameters, RtpCodecKind,
};
use rtc::rtp_transceiver::{RTCRtpTransceiverDirection, RTCRtpTransceiverInit};
use signaling::wire::MediaKind;
use tokio::task::JoinHandle;
use tokio::time::{Instant, MissedTickBehavior};
use webrtc::media_stream::MediaStreamTrack;
use webrtc::media_stream::track_local::static_rtp::TrackLocalStaticRTP;
use webrtc::media_stream::track_local::{TrackLocal, TrackLocalEvent};
use webrtc::peer_connection::PeerConnection;
use webrtc::rtp_transceiver::RtpSender;

use super::media_log::MediaLog;
use crate::stats::{encode_payload, now_ns, vp8_prefix};

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
    /// Frame video payloads as VP8 ([`crate::stats::vp8_prefix`]): each tick is a frame, the
    /// first tick's and a keyframe burst's a keyframe. For the recorder, which reads frames.
    pub vp8_framing: bool,
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

/// The video codec a client publishes with.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub enum VideoCodec {
    /// VP8, what browsers offer first.
    #[default]
    Vp8,
    /// H.264 constrained baseline, packetization mode 1 (what Safari prefers).
    H264,
}

impl VideoCodec {
    fn mime_and_fmtp(self) -> (&'static str, &'static str) {
        match self {
            VideoCodec::Vp8 => ("video/VP8", ""),
            VideoCodec::H264 => (
                "video/H264",
                "level-asymmetry-allowed=1;packetization-mode=1;profile-level-id=42e01f",
            ),
        }
    }
}

/// What a client publishes: an audio track, a video track, or both.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct PublishPlan {
    /// The Opus track, if any.
    pub audio: Option<TrackPlan>,
    /// The video track, if any.
    pub video: Option<TrackPlan>,
    /// The video track's codec.
    pub video_codec: VideoCodec,
    /// Tells this plan's tracks from an earlier plan's on the same connection: added to
    /// their SSRCs and written into their track ids (0 for a client's first plan).
    pub set: u32,
    /// Opus packets for the audio track to send in turn, instead of synthetic payloads: a
    /// real encoder's output, for tests that decode what the server recorded. The counter is
    /// then only in the sequence number.
    pub audio_payloads: Option<Arc<Vec<Vec<u8>>>>,
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
            vp8_framing: false,
        };
        PublishPlan {
            audio: Some(fixed(20, 80, u64::from(video_packets / 2))),
            video: Some(fixed(10, 1000, u64::from(video_packets))),
            video_codec: VideoCodec::Vp8,
            set: 0,
            audio_payloads: None,
        }
    }
}

/// One track added to a publishing peer connection, waiting for its negotiation.
struct Added {
    plan: TrackPlan,
    payloads: Option<Arc<Vec<Vec<u8>>>>,
    kind: MediaKind,
    mime: &'static str,
    ssrc: u32,
    track: Arc<TrackLocalStaticRTP>,
    sender: Arc<dyn RtpSender>,
}

/// The tracks of a [`PublishPlan`], added to a peer connection but not yet negotiated. Whatever
/// the signaling (ours or another SFU's), a publisher adds them, makes and sends its offer,
/// applies the answer, then calls [`Tracks::start`]: every target is loaded identically.
pub struct Tracks {
    added: Vec<Added>,
}

impl Tracks {
    /// Add a send-only Opus and/or VP8 track to `pc`, as `plan` says, in media stream
    /// `stream_id`.
    pub async fn add(
        pc: &Arc<dyn PeerConnection>,
        stream_id: &str,
        plan: PublishPlan,
    ) -> anyhow::Result<Tracks> {
        let mut added = Vec::new();
        for spec in TrackSpec::all(stream_id, plan) {
            let track = Arc::new(TrackLocalStaticRTP::new(spec.track));
            let transceiver = pc
                .add_transceiver_from_track(track.clone() as Arc<dyn TrackLocal>, Some(spec.init))
                .await?;
            let sender = transceiver
                .sender()
                .await?
                .context("transceiver without sender")?;
            added.push(Added {
                plan: spec.plan,
                payloads: spec.payloads,
                kind: spec.kind,
                mime: spec.mime,
                ssrc: spec.ssrc,
                track,
                sender,
            });
        }
        Ok(Tracks { added })
    }

    /// Once the answer is applied (only then are payload types final): spawn each track's
    /// paced sender and the task that hears its keyframe requests.
    pub async fn start(
        self,
        media: &Arc<MediaLog>,
        sent: &Arc<AtomicU64>,
    ) -> anyhow::Result<Vec<JoinHandle<()>>> {
        let mut tasks = Vec::new();
        for a in self.added {
            let payload_type = payload_type(&a.sender, a.mime).await?;
            let keyframe_wanted = Arc::new(AtomicBool::new(false));
            let out = Output {
                track: a.track.clone(),
                ssrc: a.ssrc,
                payload_type,
                clock_rate: clock_rate(a.kind),
                sent: sent.clone(),
                keyframe_wanted: keyframe_wanted.clone(),
                payloads: a.payloads,
            };
            let requests =
                answer_keyframe_requests(a.track, a.kind, media.clone(), keyframe_wanted);
            tasks.push(tokio::spawn(requests));
            tasks.push(tokio::spawn(send_paced(out, a.plan)));
        }
        Ok(tasks)
    }
}

/// One send-only track of a [`PublishPlan`], before it is added to a peer connection.
pub(crate) struct TrackSpec {
    pub(crate) plan: TrackPlan,
    pub(crate) payloads: Option<Arc<Vec<Vec<u8>>>>,
    pub(crate) kind: MediaKind,
    pub(crate) mime: &'static str,
    pub(crate) ssrc: u32,
    pub(crate) track: MediaStreamTrack,
    pub(crate) init: RTCRtpTransceiverInit,
}

impl TrackSpec {
    /// The Opus and/or video track `plan` names, in media stream `stream_id`.
    pub(crate) fn all(stream_id: &str, plan: PublishPlan) -> Vec<TrackSpec> {
        let (video_mime, video_fmtp) = plan.video_codec.mime_and_fmtp();
        let set = plan.set;
        let audio_payloads = plan.audio_payloads;
        let tracks = [
            (plan.audio, MediaKind::Audio, "audio/opus", "", 0x1000_0001),
            (
                plan.video,
                MediaKind::Video,
                video_mime,
                video_fmtp,
                0x2000_0002,
            ),
        ];
        tracks
            .into_iter()
            .filter_map(|(track_plan, kind, mime, fmtp, ssrc)| {
                let plan = track_plan?;
                let ssrc = ssrc + set * 16;
                let (track, init) = track_and_init(stream_id, kind, (mime, fmtp), ssrc, set);
                let payloads = match kind {
                    MediaKind::Audio => audio_payloads.clone(),
                    MediaKind::Video => None,
                };
                Some(TrackSpec {
                    plan,
                    payloads,
                    kind,
                    mime,
                    ssrc,
                    track,
                    init,
                })
            })
            .collect()
    }
}

fn track_and_init(
    stream_id: &str,
    kind: MediaKind,
    (mime, fmtp): (&str, &str),
    ssrc: u32,
    set: u32,
) -> (MediaStreamTrack, RTCRtpTransceiverInit) {
    let codec = RTCRtpCodec {
        mime_type: mime.into(),
        sdp_fmtp_line: fmtp.into(),
        clock_rate: clock_rate(kind),
        channels: if kind == MediaKind::Audio { 2 } else { 0 },
        ..Default::default()
    };
    let coding = RTCRtpEncodingParameters {
        rtp_coding_parameters: RTCRtpCodingParameters {
            ssrc: Some(ssrc),
            ..Default::default()
        },
        codec,
        ..Default::default()
    };
    let rtp_kind = match kind {
        MediaKind::Audio => RtpCodecKind::Audio,
        MediaKind::Video => RtpCodecKind::Video,
    };
    let track = MediaStreamTrack::new(
        stream_id.into(),
        if set == 0 {
            format!("{stream_id}-{mime}")
        } else {
            format!("{stream_id}-{mime}-{set}")
        },
        mime.into(),
        rtp_kind,
        vec![coding],
    );
    let init = RTCRtpTransceiverInit {
        direction: RTCRtpTransceiverDirection::Sendonly,
        streams: vec![stream_id.into()],
        send_encodings: vec![],
    };
    (track, init)
}

pub(crate) fn clock_rate(kind: MediaKind) -> u32 {
    match kind {
        MediaKind::Audio => 48_000,
        MediaKind::Video => 90_000,
    }
}

/// Where a paced sender writes, and what it reports back.
struct Output {
    pub track: Arc<TrackLocalStaticRTP>,
    pub ssrc: u32,
    pub payload_type: u8,
    pub clock_rate: u32,
    /// Packets written, over all of the client's tracks.
    pub sent: Arc<AtomicU64>,
    /// Set when a keyframe request arrived; the next tick sends a keyframe.
    pub keyframe_wanted: Arc<AtomicBool>,
    /// Payloads to send in turn instead of synthetic ones.
    pub payloads: Option<Arc<Vec<Vec<u8>>>>,
}

/// Send `plan` on `out`, paced by a tokio interval. A late tick is skipped rather than caught
/// up, so a saturated generator shows as fewer packets sent, never as bursts.
async fn send_paced(out: Output, plan: TrackPlan) {
    let start = Instant::now().into_std();
    let mut schedule = Schedule::new(plan, out.clock_rate, start);
    let mut tick = tokio::time::interval_at(schedule.first_tick(start).into(), schedule.period());
    tick.set_missed_tick_behavior(MissedTickBehavior::Skip);
    while !schedule.done() {
        let now = tick.tick().await.into_std();
        let wanted = out.keyframe_wanted.swap(false, Ordering::Relaxed);
        for planned in schedule.tick(now, wanted) {
            let counter = planned.counter;
            let mut packet = rtp_packet(out.ssrc, out.payload_type, planned);
            if let Some(payloads) = out.payloads.as_ref().filter(|p| !p.is_empty()) {
                let at = usize::try_from(counter).unwrap_or(0) % payloads.len();
                packet.payload = Bytes::from(payloads[at].clone());
            }
            // A write fails only once the connection is closing; the run is ending then.
            if out.track.write_rtp(packet).await.is_err() {
                return;
            }
            out.sent.fetch_add(1, Ordering::Relaxed);
        }
    }
}

/// What one track sends at each tick of its period, with no clock of its own: both clients
/// (this one's tasks and [`crate::sansio`]'s loop) drive it, so they load a server alike.
pub(crate) struct Schedule {
    plan: TrackPlan,
    clock_rate: u32,
    start: std::time::Instant,
    next_keyframe: Option<std::time::Instant>,
    counter: u64,
}

impl Schedule {
    pub(crate) fn new(plan: TrackPlan, clock_rate: u32, start: std::time::Instant) -> Self {
        let next_keyframe = plan.keyframes.map(|k| start + k.every);
        Schedule {
            plan,
            clock_rate,
            start,
            next_keyframe,
            counter: 0,
        }
    }

    /// The time between ticks.
    pub(crate) fn period(&self) -> Duration {
        self.plan.period
    }

    /// When the first tick is due, for a track that may start sending at `now`: a random
    /// point within its first period. Each real publisher's capture clock starts when it
    /// starts, so packets reach the server spread over the period. Without this, the
    /// scenarios' staggered joins (200 ms apart, a multiple of both periods) had every
    /// publisher of a room tick within a few milliseconds of the others, and each tick was a
    /// burst at the server: 40 audio packets at once, 1,560 copies, in skillshare40.
    pub(crate) fn first_tick(&self, now: std::time::Instant) -> std::time::Instant {
        now + self.plan.period.mul_f64(rand::random::<f64>())
    }

    /// Whether the plan's packet count has been sent.
    pub(crate) fn done(&self) -> bool {
        self.plan.packets.is_some_and(|limit| self.counter >= limit)
    }

    /// The packets of the tick at `now`: one, or a keyframe's burst when one is due or
    /// `keyframe_wanted` (a request arrived).
    pub(crate) fn tick(
        &mut self,
        now: std::time::Instant,
        keyframe_wanted: bool,
    ) -> impl Iterator<Item = Planned> + use<> {
        let mut burst = 1;
        let mut keyframe = self.counter == 0;
        if let Some(k) = self.plan.keyframes {
            let due = self.next_keyframe.is_some_and(|at| now >= at);
            if due || keyframe_wanted {
                burst += k.extra_packets;
                keyframe = true;
                self.next_keyframe = Some(now + k.every);
            }
        }
        let media_time = now.duration_since(self.start).as_micros() as u64;
        let timestamp = (media_time * u64::from(self.clock_rate) / 1_000_000) as u32;
        let limit = self.plan.packets.unwrap_or(u64::MAX);
        let first = self.counter;
        let last = first.saturating_add(burst).min(limit);
        self.counter = last;
        let (min, max) = (self.plan.min_bytes, self.plan.max_bytes);
        let vp8 = self.plan.vp8_framing;
        (first..last).map(move |counter| Planned {
            counter,
            timestamp,
            size: min + (counter as usize * 37) % (max - min + 1),
            vp8: vp8.then_some((counter == first, counter + 1 == last, keyframe)),
        })
    }
}

/// One packet of a tick.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Planned {
    pub(crate) counter: u64,
    pub(crate) timestamp: u32,
    /// The payload's size, before any VP8 framing.
    pub(crate) size: usize,
    /// With VP8 framing: whether it is the first and the last packet of its frame, and
    /// whether the frame is a keyframe.
    pub(crate) vp8: Option<(bool, bool, bool)>,
}

/// A synthetic RTP packet: the payload carries the counter and the send time.
pub(crate) fn rtp_packet(ssrc: u32, payload_type: u8, planned: Planned) -> rtp::Packet {
    let mut p = rtp::Packet::default();
    p.header.version = 2;
    p.header.ssrc = ssrc;
    p.header.payload_type = payload_type;
    // The low bits of the counter, so tests can check one against the other.
    p.header.sequence_number = planned.counter as u16;
    p.header.timestamp = planned.timestamp;
    let payload = encode_payload(planned.counter, now_ns(), planned.size);
    match planned.vp8 {
        Some((first, last, keyframe)) => {
            p.header.marker = last;
            let mut framed = vp8_prefix(first, keyframe);
            framed.extend(payload);
            p.payload = Bytes::from(framed);
        }
        None => {
            p.header.marker = true;
            p.payload = Bytes::from(payload);
        }
    }
    p
}

/// Count keyframe requests arriving on a published track and ask its sender for a keyframe.
async fn answer_keyframe_requests(
    track: Arc<TrackLocalStaticRTP>,
    kind: MediaKind,
    media: Arc<MediaLog>,
    keyframe_wanted: Arc<AtomicBool>,
) {
    while let Some(event) = track.poll().await {
        if let TrackLocalEvent::OnRtcpPacket(_) = event {
            keyframe_wanted.store(true, Ordering::Relaxed);
            media.keyframe_requested(kind);
        }
    }
}

/// The payload type negotiated for `mime` on `sender` (final only once the answer is applied).
async fn payload_type(sender: &Arc<dyn RtpSender>, mime: &str) -> anyhow::Result<u8> {
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

#[cfg(test)]
mod tests {
    use super::*;

    /// Tracks start at random points of their first period, so publishers that start together
    /// do not send together.
    #[test]
    fn first_ticks_fall_anywhere_in_the_first_period() {
        let plan = TrackPlan {
            period: Duration::from_millis(20),
            min_bytes: 100,
            max_bytes: 100,
            keyframes: None,
            packets: None,
            vp8_framing: false,
        };
        let period = plan.period;
        let now = std::time::Instant::now();
        let schedule = Schedule::new(plan, 48_000, now);
        let offsets: Vec<Duration> = (0..200).map(|_| schedule.first_tick(now) - now).collect();
        assert!(offsets.iter().all(|o| *o < period), "{offsets:?}");
        let (min, max) = (offsets.iter().min(), offsets.iter().max());
        // 200 uniform draws all within half the period: about 2^-199.
        assert!(
            *max.unwrap() - *min.unwrap() > period / 2,
            "{min:?} to {max:?}"
        );
    }
}
