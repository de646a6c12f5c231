//! A bound on how often one packet is sent again, however often a receiver asks for it.
//!
//! webrtc-rs's NACK responder resends every packet a NACK names, every time it is named. A
//! receiver whose NACK generator does not see retransmissions arrive (pion's and webrtc-rs's,
//! see `rtx_unwrap`) asks for each lost packet up to its retry limit, and a faulty or hostile
//! one can name the whole history in every RTCP packet it sends: each NACK of a few dozen
//! bytes then costs the media loop up to 64 retransmissions, for every subscriber of the
//! loop. [`NackGuard`] takes out of each NACK the packets already sent again [`MAX_RESENDS`]
//! times, or less than [`MIN_RESEND_GAP`] ago (that retransmission is still on its way), before
//! the responder reads it. A packet is sent at most `1 + MAX_RESENDS` times, and the
//! responder's output can never exceed that multiple of the stream's own rate.
//!
//! It is not a stage of its own: every stage handles every forwarded packet, and one more
//! cost about 7 % of the server's CPU per packet in skillshare40 (medians of 6 alternating
//! pairs). The stage that already reads a sending connection's RTCP
//! (`to_app::ToApplication`) applies it, below the responder.

use std::collections::HashMap;
use std::time::{Duration, Instant};

use rtc::rtcp::transport_feedbacks::transport_layer_nack::{
    TransportLayerNack, nack_pairs_from_sequence_numbers,
};

/// Times one packet is sent again. Chrome asks for a lost packet up to 10 times, one round
/// trip apart; three retransmissions repair a packet unless the path loses most of them.
pub const MAX_RESENDS: u8 = 3;

/// Time after a retransmission before the same packet is sent again: a receiver that asks
/// sooner has not waited for the first. Shorter than any round trip a receiver waits.
pub const MIN_RESEND_GAP: Duration = Duration::from_millis(10);

/// One packet sent again lately.
#[derive(Clone, Copy)]
struct Resent {
    seq: u16,
    times: u8,
    at: Instant,
}

/// See the module docs.
pub struct NackGuard {
    /// Per stream the connection sends (by SSRC), the packets sent again, by sequence number
    /// modulo the responder's history: an older packet is gone from the history anyway.
    /// Empty until the stream's first NACK: most streams never get one (audio is not NACKed
    /// at all), and a subscriber in a room of 40 has 44 of them, so slots kept for each
    /// would cost 1.5 KiB a stream, 5 % of what a participant costs there.
    streams: HashMap<u32, Vec<Option<Resent>>>,
    /// Packets the responder keeps per stream: a packet older than that cannot be sent again.
    history: u16,
}

impl NackGuard {
    /// A guard that knows no stream yet, for a responder that keeps `history` packets per
    /// stream.
    pub fn new(history: u16) -> Self {
        NackGuard {
            streams: HashMap::new(),
            history: history.max(1),
        }
    }

    /// The connection sends a stream in `ssrc`.
    pub fn bind(&mut self, ssrc: u32) {
        self.streams.insert(ssrc, Vec::new());
    }

    /// The connection no longer sends `ssrc`.
    pub fn unbind(&mut self, ssrc: u32) {
        self.streams.remove(&ssrc);
    }

    /// `packets` (a compound RTCP packet read at `now`) with each NACK about a stream the
    /// connection sends narrowed to what may be sent again now, and dropped if nothing is left.
    /// Everything else passes unchanged; a NACK about another stream is left to the
    /// responder, which ignores it.
    pub fn filter(
        &mut self,
        now: Instant,
        packets: Vec<Box<dyn rtc::rtcp::Packet>>,
    ) -> Vec<Box<dyn rtc::rtcp::Packet>> {
        let mut kept: Vec<Box<dyn rtc::rtcp::Packet>> = Vec::with_capacity(packets.len());
        for packet in packets {
            let Some(nack) = packet.as_any().downcast_ref::<TransportLayerNack>() else {
                kept.push(packet);
                continue;
            };
            match self.allowed(now, nack) {
                None => kept.push(packet),
                Some(seqs) if seqs.is_empty() => {}
                Some(seqs) => kept.push(Box::new(TransportLayerNack {
                    sender_ssrc: nack.sender_ssrc,
                    media_ssrc: nack.media_ssrc,
                    nacks: nack_pairs_from_sequence_numbers(&seqs),
                })),
            }
        }
        kept
    }

    /// The sequence numbers of `nack` that may be sent again now, recorded as sent; `None` if
    /// its stream is not one the connection sends.
    fn allowed(&mut self, now: Instant, nack: &TransportLayerNack) -> Option<Vec<u16>> {
        let resent = self.streams.get_mut(&nack.media_ssrc)?;
        if resent.is_empty() {
            resent.resize(usize::from(self.history), None);
        }
        let slots = resent.len();
        let mut allowed = Vec::new();
        for seq in nack.nacks.iter().flat_map(|pair| pair.into_iter()) {
            let slot = &mut resent[usize::from(seq) % slots];
            let entry = match slot {
                Some(r) if r.seq == seq => r,
                _ => slot.insert(Resent {
                    seq,
                    times: 0,
                    at: now,
                }),
            };
            if entry.times >= MAX_RESENDS
                || (entry.times > 0 && now.duration_since(entry.at) < MIN_RESEND_GAP)
            {
                continue;
            }
            entry.times += 1;
            entry.at = now;
            allowed.push(seq);
        }
        Some(allowed)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use rtc::rtcp::receiver_report::ReceiverReport;

    const SSRC: u32 = 1000;
    const NACK_HISTORY: u16 = 64;

    fn guard() -> NackGuard {
        let mut guard = NackGuard::new(NACK_HISTORY);
        guard.bind(SSRC);
        guard
    }

    fn nack(media_ssrc: u32, seqs: &[u16]) -> Box<dyn rtc::rtcp::Packet> {
        Box::new(TransportLayerNack {
            sender_ssrc: 1,
            media_ssrc,
            nacks: nack_pairs_from_sequence_numbers(seqs),
        })
    }

    /// What the guard lets through of `packets` read at `now`: per RTCP packet, the sequence
    /// numbers of a NACK, or `None` for any other packet.
    fn read(
        guard: &mut NackGuard,
        now: Instant,
        packets: Vec<Box<dyn rtc::rtcp::Packet>>,
    ) -> Vec<Option<Vec<u16>>> {
        guard
            .filter(now, packets)
            .iter()
            .map(|p| {
                p.as_any()
                    .downcast_ref::<TransportLayerNack>()
                    .map(|n| n.nacks.iter().flat_map(|pair| pair.into_iter()).collect())
            })
            .collect()
    }

    #[test]
    fn a_packet_is_sent_again_at_most_three_times_and_not_twice_at_once() {
        let mut guard = guard();
        let t0 = Instant::now();
        assert_eq!(
            read(&mut guard, t0, vec![nack(SSRC, &[3, 4])]),
            [Some(vec![3, 4])]
        );
        // Asked again at once (the same NACK sent twice, or one naming 3 twice): nothing.
        assert!(read(&mut guard, t0, vec![nack(SSRC, &[3, 3])]).is_empty());
        // Later, twice more; then no more, however long after.
        let later = |ms| t0 + Duration::from_millis(ms);
        assert_eq!(
            read(&mut guard, later(20), vec![nack(SSRC, &[3])]),
            [Some(vec![3])]
        );
        assert_eq!(
            read(&mut guard, later(40), vec![nack(SSRC, &[3, 5])]),
            [Some(vec![3, 5])]
        );
        assert_eq!(
            read(&mut guard, later(60), vec![nack(SSRC, &[3, 4])]),
            [Some(vec![4])]
        );
        assert!(read(&mut guard, later(5_000), vec![nack(SSRC, &[3])]).is_empty());
        // Sequence number 3 + 64 takes 3's place: a new packet.
        assert_eq!(
            read(&mut guard, later(5_000), vec![nack(SSRC, &[67])]),
            [Some(vec![67])]
        );
    }

    #[test]
    fn a_stream_keeps_slots_only_once_it_is_asked_for() {
        let mut guard = guard();
        guard.bind(SSRC + 1);
        let slots = |guard: &NackGuard, ssrc| guard.streams[&ssrc].capacity();
        assert_eq!((slots(&guard, SSRC), slots(&guard, SSRC + 1)), (0, 0));
        let now = Instant::now();
        assert_eq!(
            read(&mut guard, now, vec![nack(SSRC, &[9])]),
            [Some(vec![9])]
        );
        assert_eq!(slots(&guard, SSRC), usize::from(NACK_HISTORY));
        assert_eq!(slots(&guard, SSRC + 1), 0);
        // The slots hold what they recorded before.
        assert!(read(&mut guard, now, vec![nack(SSRC, &[9])]).is_empty());
    }

    #[test]
    fn other_rtcp_and_other_streams_pass_unchanged() {
        let mut guard = guard();
        let now = Instant::now();
        let report: Box<dyn rtc::rtcp::Packet> = Box::new(ReceiverReport::default());
        assert_eq!(
            read(&mut guard, now, vec![report.clone(), nack(SSRC, &[1])]),
            [None, Some(vec![1])]
        );
        // The NACK is emptied and dropped; the report in the same compound still goes on.
        assert_eq!(
            read(&mut guard, now, vec![nack(SSRC, &[1]), report]),
            [None]
        );
        // A stream this connection does not send: left to the responder, which ignores it.
        for _ in 0..5 {
            assert_eq!(read(&mut guard, now, vec![nack(7, &[1])]), [Some(vec![1])]);
        }
        guard.unbind(SSRC);
        assert_eq!(
            read(&mut guard, now, vec![nack(SSRC, &[1])]),
            [Some(vec![1])]
        );
    }
}
