//! A producer track and its consumers' queues. Plane-independent: the producer is fed RTP by
//! whatever reads the publisher, and each consumer drains its own bounded queue.

use std::sync::Mutex;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use rtc::rtp;
use rtc::rtp_transceiver::rtp_sender::RTCRtpCodec;
use signaling::wire::TrackInfo;
use tokio::sync::mpsc;

/// Packets a consumer may have queued before new ones are dropped. About 2 s of video at
/// 1.2 Mbps; a subscriber further behind than that is better served by a keyframe.
pub const CONSUMER_QUEUE: usize = 256;

/// Keyframe requests to one publisher are at most this frequent.
pub const KEYFRAME_INTERVAL: Duration = Duration::from_millis(300);

/// Counters of one consumer, readable while it runs.
#[derive(Debug, Default)]
pub struct ConsumerStats {
    /// Packets handed to the consumer's queue.
    pub queued: AtomicU64,
    /// Packets dropped because the consumer's queue was full.
    pub dropped: AtomicU64,
}

struct Slot {
    id: u64,
    tx: mpsc::Sender<rtp::Packet>,
    stats: std::sync::Arc<ConsumerStats>,
}

/// The receiving end a consumer drains.
pub struct Consumer {
    /// Packets from the producer, in order.
    pub rx: mpsc::Receiver<rtp::Packet>,
    /// Shared counters.
    pub stats: std::sync::Arc<ConsumerStats>,
}

/// One published track, fanned out to every consumer.
pub struct Producer {
    /// The track as the room knows it.
    pub info: TrackInfo,
    /// The codec the publisher negotiated.
    pub codec: RTCRtpCodec,
    // A std Mutex is right here: it is held only to walk a short Vec with `try_send`, never
    // across an await, and the forwarding task must not yield while holding it.
    consumers: Mutex<Vec<Slot>>,
    next_consumer: AtomicU64,
    keyframe_tx: mpsc::Sender<()>,
    last_keyframe_request: Mutex<Option<Instant>>,
    /// Packets received from the publisher.
    pub received: AtomicU64,
    /// Unique among every producer this process makes (track ids are unique only in a room).
    pub serial: u64,
}

static NEXT_SERIAL: AtomicU64 = AtomicU64::new(1);

impl std::fmt::Debug for Producer {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Producer")
            .field("info", &self.info)
            .finish_non_exhaustive()
    }
}

impl Producer {
    /// A producer, and the receiver on which its publisher side hears keyframe requests.
    pub fn new(info: TrackInfo, codec: RTCRtpCodec) -> (Self, mpsc::Receiver<()>) {
        // Capacity 1: requests that arrive while one is pending coalesce into it.
        let (keyframe_tx, keyframe_rx) = mpsc::channel(1);
        let producer = Producer {
            info,
            codec,
            consumers: Mutex::new(Vec::new()),
            next_consumer: AtomicU64::new(1),
            keyframe_tx,
            last_keyframe_request: Mutex::new(None),
            received: AtomicU64::new(0),
            serial: NEXT_SERIAL.fetch_add(1, Ordering::Relaxed),
        };
        (producer, keyframe_rx)
    }

    /// Add a consumer with its own bounded queue. Returns its id (for [`Producer::remove`]).
    pub fn add_consumer(&self) -> (u64, Consumer) {
        let (tx, rx) = mpsc::channel(CONSUMER_QUEUE);
        let stats = std::sync::Arc::new(ConsumerStats::default());
        let id = self.next_consumer.fetch_add(1, Ordering::Relaxed);
        self.lock().push(Slot {
            id,
            tx,
            stats: stats.clone(),
        });
        (id, Consumer { rx, stats })
    }

    /// Remove a consumer; its queue's receiver then ends.
    pub fn remove(&self, id: u64) {
        self.lock().retain(|s| s.id != id);
    }

    /// Drop every consumer (the track ended).
    pub fn close(&self) {
        self.lock().clear();
    }

    /// How many consumers are attached.
    pub fn consumer_count(&self) -> usize {
        self.lock().len()
    }

    /// Hand a packet to every consumer without waiting. Full queues drop and count; closed
    /// ones are removed.
    pub fn forward(&self, packet: &rtp::Packet) {
        self.received.fetch_add(1, Ordering::Relaxed);
        let mut consumers = self.lock();
        consumers.retain(|slot| match slot.tx.try_send(packet.clone()) {
            Ok(()) => {
                slot.stats.queued.fetch_add(1, Ordering::Relaxed);
                true
            }
            Err(mpsc::error::TrySendError::Full(_)) => {
                slot.stats.dropped.fetch_add(1, Ordering::Relaxed);
                true
            }
            Err(mpsc::error::TrySendError::Closed(_)) => false,
        });
    }

    /// Ask the publisher for a keyframe, at most once per [`KEYFRAME_INTERVAL`].
    /// Returns whether a request went out.
    pub fn request_keyframe(&self, now: Instant) -> bool {
        let mut last = self
            .last_keyframe_request
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner());
        if last.is_some_and(|t| now.duration_since(t) < KEYFRAME_INTERVAL) {
            return false;
        }
        *last = Some(now);
        let _ = self.keyframe_tx.try_send(());
        true
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, Vec<Slot>> {
        // A panic elsewhere while holding this lock leaves a valid Vec; keep forwarding.
        self.consumers
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use signaling::wire::MediaKind;

    fn producer() -> (Producer, mpsc::Receiver<()>) {
        let info = TrackInfo {
            id: "t".into(),
            participant: "p1".into(),
            kind: MediaKind::Video,
        };
        Producer::new(info, RTCRtpCodec::default())
    }

    fn packet(seq: u16) -> rtp::Packet {
        let mut p = rtp::Packet::default();
        p.header.sequence_number = seq;
        p
    }

    #[test]
    fn a_slow_consumer_drops_only_its_own_packets() {
        let (p, _kf) = producer();
        let (_, mut fast) = p.add_consumer();
        let (_, slow) = p.add_consumer();
        let total = CONSUMER_QUEUE as u16 + 50;
        for seq in 0..total {
            p.forward(&packet(seq));
            // The fast consumer keeps up; the slow one never reads.
            assert_eq!(fast.rx.try_recv().unwrap().header.sequence_number, seq);
        }
        assert_eq!(fast.stats.dropped.load(Ordering::Relaxed), 0);
        assert_eq!(
            slow.stats.queued.load(Ordering::Relaxed),
            CONSUMER_QUEUE as u64
        );
        assert_eq!(slow.stats.dropped.load(Ordering::Relaxed), 50);
    }

    #[test]
    fn closed_consumers_are_removed() {
        let (p, _kf) = producer();
        let (_, a) = p.add_consumer();
        let (id_b, _b) = p.add_consumer();
        drop(a);
        p.forward(&packet(1));
        assert_eq!(p.consumer_count(), 1);
        p.remove(id_b);
        assert_eq!(p.consumer_count(), 0);
    }

    #[test]
    fn keyframe_requests_are_throttled_and_coalesced() {
        let (p, mut kf) = producer();
        let t0 = Instant::now();
        assert!(p.request_keyframe(t0));
        assert!(!p.request_keyframe(t0 + Duration::from_millis(100)));
        assert!(p.request_keyframe(t0 + KEYFRAME_INTERVAL));
        // Two requests went out but the publisher had not read the first: one is pending.
        assert!(kf.try_recv().is_ok());
        assert!(kf.try_recv().is_err());
    }
}
