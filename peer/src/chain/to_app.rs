//! An interceptor that hands the application the inbound RTCP an SFU relays.
//!
//! webrtc-rs ends inbound RTCP at the end of the interceptor chain; a packet reaches the
//! application only if an interceptor marks it. Two kinds are about streams we relay, so only
//! the application (the SFU) can act on them:
//! - a subscriber's keyframe request (PLI, FIR), answered by asking the publisher;
//! - a publisher's sender report, passed on to each subscriber of the stream (the
//!   media engine writes its subscribers' reports itself, see `Flow::Relay`).
//!
//! Everything else (receiver reports, NACK, TWCC) is the interceptors' business: it never
//! reaches the application.
//!
//! On a connection that sends media, the same stage bounds the NACKs the responder reads
//! ([`NackGuard`]), so that this connection's RTCP is read by one stage of ours, not two.

use std::collections::VecDeque;
use std::time::Instant;

use rtc::interceptor::{Attribute, Interceptor, Packet, StreamInfo, TaggedPacket};
use rtc::rtcp::payload_feedbacks::full_intra_request::FullIntraRequest;
use rtc::rtcp::payload_feedbacks::picture_loss_indication::PictureLossIndication;
use rtc::rtcp::sender_report::SenderReport;
use rtc::sansio::Protocol;
use rtc::shared::error::Error;

use super::nack_guard::NackGuard;

#[derive(Clone, Copy, PartialEq, Eq)]
enum Wanted {
    KeyframeRequests,
    SenderReports,
}

/// See the module docs.
pub struct ToApplication {
    wanted: Wanted,
    /// On a connection that sends media.
    guard: Option<NackGuard>,
    read: VecDeque<TaggedPacket>,
    write: VecDeque<TaggedPacket>,
}

impl ToApplication {
    /// For connections that send media: PLI and FIR reach the application, and NACKs are
    /// bounded ([`NackGuard`]) for a responder that keeps `history` packets per stream.
    /// Goes below the NACK responder, which reads the NACKs it has bounded.
    pub fn keyframe_requests(history: u16) -> Self {
        ToApplication {
            guard: Some(NackGuard::new(history)),
            ..Self::new(Wanted::KeyframeRequests)
        }
    }

    /// For connections that receive media: each sender report reaches the application alone,
    /// without its reception report blocks (they are about what the publisher receives), so
    /// webrtc-rs names it by the stream it describes. Goes last, so every other stage saw all
    /// RTCP first (the receiver-report stage needs the sender reports too).
    pub fn sender_reports() -> Self {
        Self::new(Wanted::SenderReports)
    }

    fn new(wanted: Wanted) -> Self {
        ToApplication {
            wanted,
            guard: None,
            read: VecDeque::new(),
            write: VecDeque::new(),
        }
    }

    fn deliver(&mut self, template: &TaggedPacket, packets: Vec<Box<dyn rtc::rtcp::Packet>>) {
        let mut message: rtc::interceptor::AttributedPacket = Packet::Rtcp(packets).into();
        message.add(Attribute::DeliverToApplication);
        self.read.push_back(TaggedPacket {
            now: template.now,
            transport: template.transport,
            message,
        });
    }
}

fn is_keyframe_request(packet: &dyn rtc::rtcp::Packet) -> bool {
    let any = packet.as_any();
    any.is::<PictureLossIndication>() || any.is::<FullIntraRequest>()
}

impl Protocol<TaggedPacket, TaggedPacket, ()> for ToApplication {
    type Rout = TaggedPacket;
    type Wout = TaggedPacket;
    type Eout = ();
    type Error = Error;
    type Time = Instant;

    fn handle_read(&mut self, mut msg: TaggedPacket) -> Result<(), Error> {
        let Packet::Rtcp(packets) = &mut msg.message.packet else {
            self.read.push_back(msg);
            return Ok(());
        };
        if let Some(guard) = &mut self.guard {
            *packets = guard.filter(msg.now, std::mem::take(packets));
            if packets.is_empty() {
                return Ok(()); // NACKs for nothing that may be sent again
            }
        }
        let packets = &*packets;
        match self.wanted {
            Wanted::KeyframeRequests => {
                let wanted: Vec<Box<dyn rtc::rtcp::Packet>> = packets
                    .iter()
                    .filter(|p| is_keyframe_request(p.as_ref()))
                    .cloned()
                    .collect();
                if !wanted.is_empty() {
                    self.deliver(&msg, wanted);
                }
                // On to the stages above: the NACK responder reads what the guard left.
                self.read.push_back(msg);
            }
            Wanted::SenderReports => {
                let reports: Vec<SenderReport> = packets
                    .iter()
                    .filter_map(|p| p.as_any().downcast_ref::<SenderReport>())
                    .map(|sr| SenderReport {
                        reports: Vec::new(),
                        profile_extensions: Default::default(),
                        ..sr.clone()
                    })
                    .collect();
                for sr in reports {
                    self.deliver(&msg, vec![Box::new(sr)]);
                }
            }
        }
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

impl Interceptor for ToApplication {
    fn bind_local_stream(&mut self, info: &StreamInfo) {
        if let Some(guard) = &mut self.guard {
            guard.bind(info.ssrc);
        }
    }
    fn unbind_local_stream(&mut self, info: &StreamInfo) {
        if let Some(guard) = &mut self.guard {
            guard.unbind(info.ssrc);
        }
    }
    fn bind_remote_stream(&mut self, _info: &StreamInfo) {}
    fn unbind_remote_stream(&mut self, _info: &StreamInfo) {}
}
