//! What a client received, per (publisher, kind) stream: running statistics always, and every
//! packet only when asked for (integration tests check sequence numbers one by one; the load
//! generator must not grow with the length of a run).

use std::collections::HashMap;
use std::sync::{Arc, Mutex};

use anyhow::{Context, bail};
use rtc::rtcp::payload_feedbacks::picture_loss_indication::PictureLossIndication;
use rtc::rtcp::transport_feedbacks::transport_layer_nack::{
    TransportLayerNack, nack_pairs_from_sequence_numbers,
};
use rtc::rtp_transceiver::rtp_sender::RtpCodecKind;
use signaling::wire::MediaKind;
use tokio::sync::Notify;
use webrtc::media_stream::track_remote::{TrackRemote, TrackRemoteEvent};

use super::WAIT;
use crate::stats::{StreamStats, decode_payload, now_ns};

/// One received packet, as the opt-in packet log keeps it.
#[derive(Debug, Clone, Copy)]
pub struct Received {
    /// RTP sequence number.
    pub seq: u16,
    /// The counter the publisher wrote into the payload (`u64::MAX` if it wrote none).
    pub counter: u64,
    /// The send time the publisher wrote into the payload (0 if it wrote none): with the
    /// counter, the payload's first 16 bytes, unique to the packet.
    pub sent_ns: u64,
}

/// Everything about one incoming stream. Each stream has its own lock, taken by its one
/// receiving task per packet and by readers about once a second, so it is never contended.
#[derive(Default)]
pub(crate) struct Stream {
    stats: Mutex<StreamStats>,
    log: Option<Mutex<Vec<Received>>>,
}

/// Every stream a client received, by (publisher participant id, kind).
#[derive(Default)]
pub struct MediaLog {
    packet_log: bool,
    streams: Mutex<HashMap<(String, MediaKind), Arc<Stream>>>,
    /// Keyframe requests (PLI/FIR) this client received as a publisher, per kind.
    pub(super) keyframe_requests: Mutex<HashMap<MediaKind, usize>>,
    /// Remote video tracks, to send keyframe requests on as a subscriber would.
    remote_video: Mutex<Vec<Arc<dyn TrackRemote>>>,
    pub(super) changed: Notify,
}

impl MediaLog {
    /// An empty log; with `packet_log`, every packet is kept as well as the statistics.
    pub fn new(packet_log: bool) -> Self {
        MediaLog {
            packet_log,
            ..Default::default()
        }
    }

    pub(crate) fn stream(&self, publisher: &str, kind: MediaKind) -> Arc<Stream> {
        let mut streams = self.streams.lock().unwrap();
        let stream = streams
            .entry((publisher.to_string(), kind))
            .or_insert_with(|| {
                Arc::new(Stream {
                    stats: Mutex::default(),
                    log: self.packet_log.then(Mutex::default),
                })
            });
        stream.clone()
    }

    /// Received packets from one publisher's track of one kind (empty without a packet log).
    pub fn from(&self, publisher: &str, kind: MediaKind) -> Vec<Received> {
        let streams = self.streams.lock().unwrap();
        streams
            .get(&(publisher.to_string(), kind))
            .and_then(|s| s.log.as_ref())
            .map(|log| log.lock().unwrap().clone())
            .unwrap_or_default()
    }

    /// A copy of every stream's statistics.
    pub fn streams(&self) -> Vec<(String, MediaKind, StreamStats)> {
        let streams: Vec<_> = self
            .streams
            .lock()
            .unwrap()
            .iter()
            .map(|((p, k), s)| (p.clone(), *k, s.clone()))
            .collect();
        streams
            .into_iter()
            .map(|(p, k, s)| (p, k, s.stats.lock().unwrap().clone()))
            .collect()
    }

    /// (received, lost) in the current window, over all streams. Cheap: nothing is copied.
    pub fn totals(&self) -> (u64, u64) {
        let streams: Vec<_> = self.streams.lock().unwrap().values().cloned().collect();
        streams.iter().fold((0, 0), |(received, lost), s| {
            let stats = s.stats.lock().unwrap();
            (received + stats.received, lost + stats.lost())
        })
    }

    /// When the first packet of any kind from `publisher` arrived ([`now_ns`] clock).
    pub fn first_media_ns(&self, publisher: &str) -> Option<u64> {
        let streams = self.streams.lock().unwrap();
        [MediaKind::Audio, MediaKind::Video]
            .iter()
            .filter_map(|k| streams.get(&(publisher.to_string(), *k)))
            .filter_map(|s| s.stats.lock().unwrap().first_at_ns)
            .min()
    }

    /// Start a measurement window: counters and latencies restart on every stream.
    pub fn start_window(&self) {
        for stream in self.streams.lock().unwrap().values() {
            stream.stats.lock().unwrap().start_window();
        }
    }

    /// Count a keyframe request (PLI/FIR) received for this client's track of `kind`.
    pub(crate) fn keyframe_requested(&self, kind: MediaKind) {
        *self
            .keyframe_requests
            .lock()
            .unwrap()
            .entry(kind)
            .or_default() += 1;
        self.changed.notify_waiters();
    }

    /// Keyframe requests received for this client's track of `kind`.
    pub fn keyframe_requests(&self, kind: MediaKind) -> usize {
        self.keyframe_requests
            .lock()
            .unwrap()
            .get(&kind)
            .copied()
            .unwrap_or(0)
    }

    /// Send a PLI on every received video track, as a browser does when it cannot decode.
    pub async fn request_keyframes(&self) -> anyhow::Result<()> {
        let tracks = self.remote_video.lock().unwrap().clone();
        for track in tracks {
            let ssrc = track.ssrcs().await.first().copied().context("no ssrc")?;
            let pli = PictureLossIndication {
                sender_ssrc: 0,
                media_ssrc: ssrc,
            };
            track.write_rtcp(vec![Box::new(pli)]).await?;
        }
        Ok(())
    }

    /// Send a NACK for `seqs` on the received video track from `publisher`, as a receiver
    /// that lost them would.
    pub async fn nack(&self, publisher: &str, seqs: &[u16]) -> anyhow::Result<()> {
        let tracks = self.remote_video.lock().unwrap().clone();
        for track in tracks {
            if track.stream_id().await != publisher {
                continue;
            }
            let ssrc = track.ssrcs().await.first().copied().context("no ssrc")?;
            let nack = TransportLayerNack {
                sender_ssrc: 0,
                media_ssrc: ssrc,
                nacks: nack_pairs_from_sequence_numbers(seqs),
            };
            track.write_rtcp(vec![Box::new(nack)]).await?;
            return Ok(());
        }
        bail!("no video track from {publisher}")
    }

    /// The MIME type of the video this client receives from `publisher`, as negotiated.
    pub async fn video_codec(&self, publisher: &str) -> Option<String> {
        let tracks = self.remote_video.lock().unwrap().clone();
        for track in tracks {
            if track.stream_id().await == publisher {
                let ssrc = track.ssrcs().await.first().copied()?;
                return track.codec(ssrc).await.map(|c| c.mime_type);
            }
        }
        None
    }

    /// Wait until `done` holds over the log. Without a packet log, only a stream's first
    /// packet wakes waiters, so `done` should then be about arrivals, not counts.
    pub async fn wait_for(&self, what: &str, done: impl Fn(&Self) -> bool) -> anyhow::Result<()> {
        tokio::time::timeout(WAIT, async {
            loop {
                let changed = self.changed.notified();
                if done(self) {
                    return;
                }
                changed.await;
            }
        })
        .await
        .with_context(|| format!("timed out waiting for {what}"))
    }
}

/// Read one remote track from `publisher` to its end, accounting for every packet.
pub(crate) async fn receive(media: Arc<MediaLog>, track: Arc<dyn TrackRemote>, publisher: String) {
    let kind = match track.kind().await {
        RtpCodecKind::Audio => MediaKind::Audio,
        _ => MediaKind::Video,
    };
    if kind == MediaKind::Video {
        media.remote_video.lock().unwrap().push(track.clone());
    }
    let stream = media.stream(&publisher, kind);
    while let Some(event) = track.poll().await {
        let TrackRemoteEvent::OnRtpPacket(p) = event else {
            continue;
        };
        stream.record(&media, p.header.sequence_number, &p.payload);
    }
}

impl Stream {
    /// Account for one packet of this stream, received now.
    pub(crate) fn record(&self, media: &MediaLog, seq: u16, payload: &[u8]) {
        let now = now_ns();
        let decoded = decode_payload(payload);
        let first = {
            let mut stats = self.stats.lock().unwrap();
            let first = stats.first_at_ns.is_none();
            if let Some((counter, sent_ns)) = decoded {
                stats.record(counter, sent_ns, now);
            }
            first
        };
        if let Some(log) = &self.log {
            log.lock().unwrap().push(Received {
                seq,
                counter: decoded.map_or(u64::MAX, |(c, _)| c),
                sent_ns: decoded.map_or(0, |(_, t)| t),
            });
        }
        // Waking waiters costs a lock; the load generator only waits for first arrivals.
        if first || self.log.is_some() {
            media.changed.notify_waiters();
        }
    }
}
