//! Retransmissions (RTX, RFC 4588) shown to the NACK generator as the packets they repair.
//!
//! webrtc-rs hands its interceptors an RTX packet as it arrived: in the retransmission
//! stream's SSRC and sequence numbers. Only the endpoint, after the chain, turns it back into
//! the packet it repairs. So the NACK generator never learns that a packet it asked for came,
//! and asks for it again every 100 ms up to its retry limit ([`super::NACK_RETRIES`]),
//! and a sender answers every time. pion's generator has the same flaw (pion/interceptor#320).
//!
//! This stage unwraps each RTX packet of a stream it knows (one declared with its RTX SSRC,
//! `a=ssrc-group:FID`) into the packet it carries, as the endpoint would. It sits just below
//! the NACK generator, which the chain ([`super`]) places above webrtc-rs's reception statistics
//! (TWCC feedback, receiver reports): those still see the retransmission stream as it is on the
//! wire, and only the NACK generator and the application see the repaired packet.

use std::collections::{HashMap, VecDeque};
use std::time::Instant;

use rtc::interceptor::{Interceptor, Packet, StreamInfo, TaggedPacket};
use rtc::sansio::Protocol;
use rtc::shared::error::Error;

/// A repaired stream, by its RTX SSRC.
#[derive(Debug, Clone, Copy)]
struct Repairs {
    ssrc: u32,
    payload_type: u8,
    rtx_payload_type: u8,
}

/// See the module docs.
#[derive(Default)]
pub struct RtxUnwrap {
    by_rtx_ssrc: HashMap<u32, Repairs>,
    read: VecDeque<TaggedPacket>,
    write: VecDeque<TaggedPacket>,
}

impl RtxUnwrap {
    /// A stage that knows no stream yet.
    pub fn new() -> Self {
        Self::default()
    }

    /// The packet an RTX packet of a known stream carries, in place. A packet without the two
    /// bytes of the original sequence number (padding, which senders use to probe bandwidth)
    /// repairs nothing and is left as it is.
    fn unwrap(&self, packet: &mut rtc::rtp::Packet) {
        let Some(r) = self.by_rtx_ssrc.get(&packet.header.ssrc) else {
            return;
        };
        if packet.header.payload_type != r.rtx_payload_type || packet.payload.len() < 2 {
            return;
        }
        let original = u16::from_be_bytes([packet.payload[0], packet.payload[1]]);
        packet.header.ssrc = r.ssrc;
        packet.header.payload_type = r.payload_type;
        packet.header.sequence_number = original;
        packet.header.padding = false;
        packet.payload = packet.payload.slice(2..);
    }
}

impl Protocol<TaggedPacket, TaggedPacket, ()> for RtxUnwrap {
    type Rout = TaggedPacket;
    type Wout = TaggedPacket;
    type Eout = ();
    type Error = Error;
    type Time = Instant;

    fn handle_read(&mut self, mut msg: TaggedPacket) -> Result<(), Error> {
        if let Packet::Rtp(packet) = &mut msg.message.packet {
            self.unwrap(packet);
        }
        self.read.push_back(msg);
        Ok(())
    }

    fn poll_read(&mut self) -> Option<TaggedPacket> {
        self.read.pop_front()
    }

    fn handle_write(&mut self, msg: TaggedPacket) -> Result<(), Error> {
        self.write.push_back(msg);
        Ok(())
    }

    fn poll_write(&mut self) -> Option<TaggedPacket> {
        self.write.pop_front()
    }
}

impl Interceptor for RtxUnwrap {
    fn bind_remote_stream(&mut self, info: &StreamInfo) {
        if let (Some(rtx), Some(rtx_payload_type)) = (info.ssrc_rtx, info.payload_type_rtx) {
            self.by_rtx_ssrc.insert(
                rtx,
                Repairs {
                    ssrc: info.ssrc,
                    payload_type: info.payload_type,
                    rtx_payload_type,
                },
            );
        }
    }

    fn unbind_remote_stream(&mut self, info: &StreamInfo) {
        if let Some(rtx) = info.ssrc_rtx {
            self.by_rtx_ssrc.remove(&rtx);
        }
    }

    fn bind_local_stream(&mut self, _info: &StreamInfo) {}
    fn unbind_local_stream(&mut self, _info: &StreamInfo) {}
}

#[cfg(test)]
mod tests {
    use super::*;
    use rtc::interceptor::AttributedPacket;

    fn stream() -> StreamInfo {
        StreamInfo {
            ssrc: 1000,
            ssrc_rtx: Some(2000),
            payload_type: 96,
            payload_type_rtx: Some(97),
            ..Default::default()
        }
    }

    fn rtp(ssrc: u32, payload_type: u8, seq: u16, payload: &[u8]) -> TaggedPacket {
        let mut packet = rtc::rtp::Packet::default();
        packet.header.version = 2;
        packet.header.ssrc = ssrc;
        packet.header.payload_type = payload_type;
        packet.header.sequence_number = seq;
        packet.header.timestamp = 90_000;
        packet.header.marker = true;
        packet.payload = payload.to_vec().into();
        TaggedPacket {
            now: Instant::now(),
            transport: Default::default(),
            message: AttributedPacket::new(Packet::Rtp(packet)),
        }
    }

    fn read(stage: &mut RtxUnwrap, msg: TaggedPacket) -> rtc::rtp::Packet {
        stage.handle_read(msg).unwrap();
        match stage.poll_read().expect("passed on").message.packet {
            Packet::Rtp(p) => p,
            other => panic!("not RTP: {other:?}"),
        }
    }

    #[test]
    fn an_rtx_packet_becomes_the_packet_it_repairs() {
        let mut stage = RtxUnwrap::new();
        stage.bind_remote_stream(&stream());
        // RTX sequence number 7 carries the original 0x1234.
        let p = read(&mut stage, rtp(2000, 97, 7, &[0x12, 0x34, 0xAA, 0xBB]));
        assert_eq!(
            (
                p.header.ssrc,
                p.header.payload_type,
                p.header.sequence_number
            ),
            (1000, 96, 0x1234)
        );
        assert_eq!(&p.payload[..], [0xAA, 0xBB]);
        assert_eq!((p.header.timestamp, p.header.marker), (90_000, true));
    }

    #[test]
    fn other_packets_pass_unchanged() {
        let mut stage = RtxUnwrap::new();
        stage.bind_remote_stream(&stream());
        // The primary stream itself.
        let p = read(&mut stage, rtp(1000, 96, 5, &[1, 2, 3]));
        assert_eq!((p.header.ssrc, p.header.sequence_number), (1000, 5));
        assert_eq!(&p.payload[..], [1, 2, 3]);
        // Padding on the RTX stream: no original sequence number.
        let p = read(&mut stage, rtp(2000, 97, 8, &[0]));
        assert_eq!((p.header.ssrc, p.header.sequence_number), (2000, 8));
        // The RTX SSRC with another payload type.
        let p = read(&mut stage, rtp(2000, 100, 9, &[0x12, 0x34, 0xAA]));
        assert_eq!((p.header.ssrc, p.header.payload_type), (2000, 100));
        // A stream never bound, and one bound then unbound.
        let p = read(&mut stage, rtp(3000, 97, 1, &[0x12, 0x34, 0xAA]));
        assert_eq!(p.header.ssrc, 3000);
        stage.unbind_remote_stream(&stream());
        let p = read(&mut stage, rtp(2000, 97, 10, &[0x12, 0x34, 0xAA]));
        assert_eq!((p.header.ssrc, p.header.sequence_number), (2000, 10));
    }
}
