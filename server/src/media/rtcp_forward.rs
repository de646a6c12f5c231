//! An interceptor that hands the application the inbound RTCP an SFU relays.
//!
//! webrtc-rs ends inbound RTCP at the end of the interceptor chain; a packet reaches the
//! application only if an interceptor marks it. Two kinds are about streams we relay, so only
//! the application (the SFU) can act on them:
//! - a subscriber's keyframe request (PLI, FIR), answered by asking the publisher;
//! - a publisher's sender report, passed on to each subscriber of the stream (the
//!   single-socket plane writes its subscribers' reports itself, see `peer::Flow::Relay`).
//!
//! Everything else (receiver reports, NACK, TWCC) is the interceptors' business and stops here.

use std::collections::VecDeque;
use std::time::Instant;

use rtc::interceptor::{Attribute, Interceptor, Packet, StreamInfo, TaggedPacket};
use rtc::rtcp::payload_feedbacks::full_intra_request::FullIntraRequest;
use rtc::rtcp::payload_feedbacks::picture_loss_indication::PictureLossIndication;
use rtc::rtcp::sender_report::SenderReport;
use rtc::sansio::Protocol;
use rtc::shared::error::Error;

/// Where the interceptor sits in the chain: last, so every other interceptor saw all RTCP
/// first (the receiver-report stage needs the sender reports too).
pub const SLOT: usize = 14_000;

#[derive(Clone, Copy, PartialEq, Eq)]
enum Wanted {
    KeyframeRequests,
    SenderReports,
}

/// See the module docs.
pub struct ToApplication {
    wanted: Wanted,
    read: VecDeque<TaggedPacket>,
    write: VecDeque<TaggedPacket>,
}

impl ToApplication {
    /// For connections that send media: PLI and FIR reach the application.
    pub fn keyframe_requests() -> Self {
        Self::new(Wanted::KeyframeRequests)
    }

    /// For connections that receive media: each sender report reaches the application alone,
    /// without its reception report blocks (they are about what the publisher receives), so
    /// webrtc-rs names it by the stream it describes.
    pub fn sender_reports() -> Self {
        Self::new(Wanted::SenderReports)
    }

    fn new(wanted: Wanted) -> Self {
        ToApplication {
            wanted,
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

    fn handle_read(&mut self, msg: TaggedPacket) -> Result<(), Error> {
        let Packet::Rtcp(packets) = &msg.message.packet else {
            self.read.push_back(msg);
            return Ok(());
        };
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
    fn bind_local_stream(&mut self, _info: &StreamInfo) {}
    fn unbind_local_stream(&mut self, _info: &StreamInfo) {}
    fn bind_remote_stream(&mut self, _info: &StreamInfo) {}
    fn unbind_remote_stream(&mut self, _info: &StreamInfo) {}
}
