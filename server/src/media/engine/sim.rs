//! The engine and sans-IO clients, joined by a network and a clock simulated here: the
//! order of events is the same on every run, and no wall-clock time is measured. Engine
//! tests drive it through [`Net`]; every output of the engine is taken from
//! [`Engine::poll_output`], in order, as the driver takes it.

use std::collections::VecDeque;
use std::net::SocketAddr;
use std::time::{Duration, Instant};

use roundtable_peer::{Flow, PeerNet, Side};
use rtc::media_stream::MediaStreamTrack;
use rtc::peer_connection::RTCPeerConnection;
use rtc::peer_connection::event::RTCPeerConnectionEvent;
use rtc::peer_connection::message::{RTCMessage, TaggedRTCMessage};
use rtc::peer_connection::sdp::RTCSessionDescription;
use rtc::peer_connection::state::{RTCIceConnectionState, RTCPeerConnectionState};
use rtc::rtcp::sender_report::SenderReport;
use rtc::rtp_transceiver::rtp_sender::RtpCodecKind;
use rtc::rtp_transceiver::rtp_sender::{
    RTCRtpCodec, RTCRtpCodingParameters, RTCRtpEncodingParameters,
};
use rtc::rtp_transceiver::{RTCRtpSenderId, RTCRtpTransceiverDirection, RTCRtpTransceiverInit};
use rtc::sansio::Protocol;
use rtc::shared::{TaggedBytesMut, TransportContext, TransportProtocol};
use signaling::wire::{PcRole, ServerMsg};

use super::{Cmd, Engine, Output, PcFactory, SessionId, Transmit};
use crate::media::values::{MediaEvent, RecordedPacket, Signal, TrackKey};

pub(crate) const SERVER: SocketAddr =
    SocketAddr::new(std::net::IpAddr::V4(std::net::Ipv4Addr::LOCALHOST), 7882);

pub(crate) struct Client {
    pub(crate) addr: SocketAddr,
    pub(crate) pc: RTCPeerConnection,
    /// What the server sent it, oldest first.
    pub(crate) from_server: VecDeque<ServerMsg>,
    pub(crate) connected_at: Option<Instant>,
    /// The track it publishes, if it does.
    sender: Option<RTCRtpSenderId>,
    /// Its codec: `(SSRC, payload type, clock ticks per packet)`.
    track: (u32, u8, u32),
    /// RTP packets it has sent on it.
    sent: u16,
}

/// What a client publishes.
#[derive(Clone, Copy)]
pub(crate) enum Media {
    /// Opus, SSRC 1111: no retransmissions.
    Opus,
    /// VP8, SSRC 2222, with an RTX stream (NACK answered by retransmission).
    Vp8,
}

/// Sees every datagram a client sends the server (the client's index, the bytes);
/// the datagram is delivered only if it returns true.
pub(crate) type Tap = Box<dyn FnMut(usize, &[u8]) -> bool>;

pub(crate) struct Net {
    pub(crate) now: Instant,
    pub(crate) engine: Engine,
    pub(crate) clients: Vec<Client>,
    /// What the engine told the rooms, oldest first.
    pub(crate) room: VecDeque<MediaEvent>,
    /// Datagrams the engine sent, not yet delivered.
    pub(crate) wire: VecDeque<Transmit>,
    /// Packets the engine handed to the recorder, oldest first.
    pub(crate) recorded: VecDeque<RecordedPacket>,
    pub(crate) tap: Option<Tap>,
}

/// A track a client published, as the server knows it.
#[derive(Debug, Clone)]
pub(crate) struct Track {
    /// Its key, for subscriptions and the gate.
    pub(crate) key: TrackKey,
}

/// The SDP of an offer.
pub(crate) fn offer(msg: ServerMsg) -> Option<String> {
    match msg {
        ServerMsg::Offer { sdp, .. } => Some(sdp),
        _ => None,
    }
}

/// Whether client `i`'s connection is up (DTLS done).
pub(crate) fn connected(i: usize) -> impl Fn(&Net) -> bool {
    move |n: &Net| n.clients[i].connected_at.is_some()
}

impl Net {
    pub(crate) fn new() -> Self {
        let now = Instant::now();
        let factory = PcFactory::new(PeerNet::loopback());
        Net {
            now,
            engine: Engine::new(factory, SERVER),
            clients: Vec::new(),
            room: VecDeque::new(),
            wire: VecDeque::new(),
            recorded: VecDeque::new(),
            tap: None,
        }
    }

    /// What the driver does at the end of a turn, with no budget: every offer due, then
    /// every output delivered (datagrams onto the simulated wire).
    pub(crate) fn turn(&mut self) {
        while self.engine.negotiate_one(self.now) {}
        self.deliver();
    }

    /// Every output of the engine delivered: datagrams onto the simulated wire, messages
    /// to their client, events to the room.
    pub(crate) fn deliver(&mut self) {
        while let Some(output) = self.engine.poll_output() {
            match output {
                Output::Transmit(t) => self.wire.push_back(t),
                Output::Client { session, msg } => {
                    self.clients[session as usize - 1]
                        .from_server
                        .push_back(*msg);
                }
                Output::Room { event, .. } => self.room.push_back(event),
                Output::Record(packet) => self.recorded.push_back(*packet),
            }
        }
    }

    /// The engine's command, then the rest of its turn.
    pub(crate) fn cmd(&mut self, cmd: Cmd) {
        self.engine.handle_cmd(self.now, cmd);
        self.turn();
    }

    /// Client `i`'s session.
    pub(crate) fn session(i: usize) -> SessionId {
        i as SessionId + 1
    }

    /// A participant (session `i + 1`) whose client connection has `flow`.
    pub(crate) fn join(&mut self, flow: Flow) -> usize {
        let i = self.clients.len();
        let addr = SocketAddr::from(([127, 0, 0, 1], 40000 + i as u16));
        let net = PeerNet::loopback();
        let pc =
            roundtable_peer::build_sansio(self.now, &net, Side::Client, flow, addr, None).unwrap();
        self.clients.push(Client {
            addr,
            pc,
            from_server: VecDeque::new(),
            connected_at: None,
            sender: None,
            track: (0, 0, 0),
            sent: 0,
        });
        self.cmd(Cmd::Open {
            id: Self::session(i),
            participant: format!("p{}", i + 1),
        });
        i
    }

    /// A new client publishes one Opus track (SSRC 1111) and sends one packet; returns
    /// the server's producer of it.
    pub(crate) fn publish_opus(&mut self) -> Track {
        self.publish_opus_from(Flow::Send)
    }

    /// [`Net::publish_opus`] from a client whose connection has `flow`.
    pub(crate) fn publish_opus_from(&mut self, flow: Flow) -> Track {
        self.publish(flow, Media::Opus)
    }

    /// A new client, whose connection has `flow`, publishes `what` and sends one
    /// packet; returns the server's producer of it.
    pub(crate) fn publish(&mut self, flow: Flow, what: Media) -> Track {
        let publisher = self.join(flow);
        let (codec, ssrc, payload_type, ticks, kind) = match what {
            Media::Opus => (
                RTCRtpCodec {
                    mime_type: "audio/opus".into(),
                    clock_rate: 48000,
                    channels: 2,
                    ..Default::default()
                },
                1111,
                111,
                960,
                RtpCodecKind::Audio,
            ),
            Media::Vp8 => (
                RTCRtpCodec {
                    mime_type: "video/VP8".into(),
                    clock_rate: 90000,
                    ..Default::default()
                },
                2222,
                96,
                3000,
                RtpCodecKind::Video,
            ),
        };
        let coding = RTCRtpEncodingParameters {
            rtp_coding_parameters: RTCRtpCodingParameters {
                ssrc: Some(ssrc),
                ..Default::default()
            },
            codec,
            ..Default::default()
        };
        let name = format!("p{}", publisher + 1);
        let track = MediaStreamTrack::new(
            name.clone(),
            format!("{name}-{kind}"),
            kind.to_string(),
            kind,
            vec![coding],
        );
        let init = RTCRtpTransceiverInit {
            direction: RTCRtpTransceiverDirection::Sendonly,
            streams: vec![name],
            send_encodings: vec![],
        };
        let now = self.now;
        let pc = &mut self.clients[publisher].pc;
        let sender =
            RTCRtpSenderId::from(pc.add_transceiver_from_track(track, Some(init)).unwrap());
        let offer = pc.create_offer(None).unwrap();
        pc.set_local_description(now, offer.clone()).unwrap();
        self.signal(
            publisher,
            Signal::Offer {
                pc: PcRole::Publish,
                sdp: offer.sdp,
            },
        );
        let answer = self.expect(publisher, |m| match m {
            ServerMsg::Answer { sdp, .. } => Some(sdp),
            _ => None,
        });
        let answer = RTCSessionDescription::answer(answer).unwrap();
        self.clients[publisher]
            .pc
            .set_remote_description(now, answer)
            .unwrap();
        self.run_until(connected(publisher), Duration::from_secs(5));
        self.clients[publisher].sender = Some(sender);
        self.clients[publisher].track = (ssrc, payload_type, ticks);
        self.send_rtp(publisher);
        self.run_until(|n| !n.room.is_empty(), Duration::from_secs(1));
        let Some(MediaEvent::TrackPublished { key, .. }) = self.room.pop_front() else {
            panic!("the track was not published");
        };
        Track { key }
    }

    /// Publisher `i`'s next packet, of 80 bytes, in `payload_type` (its codec's if `None`).
    fn next_packet(&mut self, i: usize, payload_type: Option<u8>) -> rtc::rtp::Packet {
        let c = &mut self.clients[i];
        let (ssrc, own, ticks) = c.track;
        let mut packet = rtc::rtp::Packet::default();
        packet.header.version = 2;
        packet.header.ssrc = ssrc;
        packet.header.payload_type = payload_type.unwrap_or(own);
        packet.header.sequence_number = c.sent;
        packet.header.timestamp = u32::from(c.sent) * ticks;
        packet.payload = vec![0; 80].into();
        c.sent += 1;
        packet
    }

    /// Publisher `i` sends its next packet (Opus or VP8 as it publishes).
    pub(crate) fn send_rtp(&mut self, i: usize) {
        let now = self.now;
        let packet = self.next_packet(i, None);
        let c = &mut self.clients[i];
        let sender = c.sender.expect("a publisher");
        let mut s = c.pc.rtp_sender(sender).unwrap();
        s.write_rtp(now, packet).unwrap();
    }

    /// Publisher `i` sends its next packet with `payload_type` instead of its codec's,
    /// written past its sender's checks (as a publisher that switched codec would send it).
    pub(crate) fn send_rtp_as(&mut self, i: usize, payload_type: u8) {
        let now = self.now;
        let packet = self.next_packet(i, Some(payload_type));
        let c = &mut self.clients[i];
        let msg = TaggedRTCMessage {
            now,
            message: RTCMessage::RtpPacket(String::new(), packet),
        };
        c.pc.handle_write(msg).unwrap();
    }

    /// Publisher `i` sends packet `seq` again on its retransmission stream (RTX, RFC
    /// 4588), as a sender does when asked for it or when it probes bandwidth with
    /// recent media. The RTX sequence number is derived from `seq`: copy each packet
    /// once, or SRTP drops the second as a replay.
    pub(crate) fn send_rtx_copy(&mut self, i: usize, seq: u16) {
        let now = self.now;
        let c = &mut self.clients[i];
        let (_, _, ticks) = c.track;
        let mut s = c.pc.rtp_sender(c.sender.expect("a publisher")).unwrap();
        let rtx = s.get_parameters().encodings[0]
            .rtp_coding_parameters
            .rtx
            .as_ref()
            .expect("an RTX stream")
            .ssrc;
        let mut packet = rtc::rtp::Packet::default();
        packet.header.version = 2;
        packet.header.ssrc = rtx;
        packet.header.payload_type = 97;
        packet.header.sequence_number = 40_000 + seq;
        packet.header.timestamp = u32::from(seq) * ticks;
        let mut payload = seq.to_be_bytes().to_vec();
        payload.extend([0; 80]);
        packet.payload = payload.into();
        let msg = TaggedRTCMessage {
            now,
            message: RTCMessage::RtpPacket(String::new(), packet),
        };
        c.pc.handle_write(msg).unwrap();
    }

    /// Client `i` sends `report` (RTCP) on its connection.
    pub(crate) fn send_report(&mut self, i: usize, report: SenderReport) {
        let msg = TaggedRTCMessage {
            now: self.now,
            message: RTCMessage::RtcpPacket(String::new(), vec![Box::new(report)]),
        };
        self.clients[i].pc.handle_write(msg).unwrap();
    }

    /// Client `i` asks for packets `seqs` of the stream it receives in `ssrc` (a NACK).
    pub(crate) fn send_nack(&mut self, i: usize, ssrc: u32, seqs: &[u16]) {
        use rtc::rtcp::transport_feedbacks::transport_layer_nack::{
            TransportLayerNack, nack_pairs_from_sequence_numbers,
        };
        let nack = TransportLayerNack {
            sender_ssrc: 0,
            media_ssrc: ssrc,
            nacks: nack_pairs_from_sequence_numbers(seqs),
        };
        let msg = TaggedRTCMessage {
            now: self.now,
            message: RTCMessage::RtcpPacket(String::new(), vec![Box::new(nack)]),
        };
        self.clients[i].pc.handle_write(msg).unwrap();
    }

    /// Client `i` asks for a keyframe of the stream it receives in `ssrc` (a PLI).
    pub(crate) fn send_pli(&mut self, i: usize, ssrc: u32) {
        use rtc::rtcp::payload_feedbacks::picture_loss_indication::PictureLossIndication;
        let pli = PictureLossIndication {
            sender_ssrc: 0,
            media_ssrc: ssrc,
        };
        let msg = TaggedRTCMessage {
            now: self.now,
            message: RTCMessage::RtcpPacket(String::new(), vec![Box::new(pli)]),
        };
        self.clients[i].pc.handle_write(msg).unwrap();
    }

    /// The keyframe requests (PLI) publisher `i` has read since last asked; anything else it
    /// read is dropped.
    pub(crate) fn keyframe_requests(&mut self, i: usize) -> usize {
        use rtc::rtcp::payload_feedbacks::picture_loss_indication::PictureLossIndication;
        let mut n = 0;
        while let Some(msg) = self.clients[i].pc.poll_read() {
            if let RTCMessage::RtcpPacket(_, packets) = msg.message {
                n += packets
                    .iter()
                    .filter(|p| p.as_any().is::<PictureLossIndication>())
                    .count();
            }
        }
        n
    }

    /// The RTP packets and sender reports client `i` has received since last asked.
    pub(crate) fn received(&mut self, i: usize) -> (Vec<rtc::rtp::Packet>, Vec<SenderReport>) {
        let (mut rtp, mut reports) = (Vec::new(), Vec::new());
        while let Some(msg) = self.clients[i].pc.poll_read() {
            match msg.message {
                RTCMessage::RtpPacket(_, packet) => rtp.push(packet),
                RTCMessage::RtcpPacket(_, packets) => reports.extend(
                    packets
                        .iter()
                        .filter_map(|p| p.as_any().downcast_ref::<SenderReport>())
                        .cloned(),
                ),
                _ => {}
            }
        }
        (rtp, reports)
    }

    /// Whether the server has sent client `i` an offer it has not read yet (the
    /// messages before it are dropped).
    pub(crate) fn has_offer(&mut self, i: usize) -> bool {
        while let Some(msg) = self.clients[i].from_server.pop_front() {
            if offer(msg).is_some() {
                return true;
            }
        }
        false
    }

    /// Client `i` is subscribed to `track`, and the turn ends: the server offers on its
    /// `subscribe`.
    pub(crate) fn subscribe(&mut self, i: usize, track: &Track) {
        self.subscriptions(i, vec![track.key], vec![]);
    }

    /// Client `i` is subscribed to `add` and unsubscribed from `remove`, and the turn ends.
    pub(crate) fn subscriptions(&mut self, i: usize, add: Vec<TrackKey>, remove: Vec<TrackKey>) {
        self.cmd(Cmd::Subscriptions {
            session: Self::session(i),
            add,
            remove,
        });
    }

    /// Open or close `track`'s gate, and the turn ends.
    pub(crate) fn gate(&mut self, track: &Track, open: bool) {
        self.cmd(Cmd::Gate {
            track: track.key,
            open,
        });
    }

    /// Start or stop recording `track`, and the turn ends.
    pub(crate) fn record(&mut self, track: &Track, on: bool) {
        self.cmd(Cmd::Record {
            track: track.key,
            on,
        });
    }

    /// Client `i` answers the server's next offer on `subscribe`.
    pub(crate) fn answer_offer(&mut self, i: usize) {
        let sdp = self.make_answer(i);
        self.send_answer(i, sdp);
    }

    /// Client `i` sends `sdp` as its answer on `subscribe`.
    pub(crate) fn send_answer(&mut self, i: usize, sdp: String) {
        self.signal(
            i,
            Signal::Answer {
                pc: PcRole::Subscribe,
                sdp,
            },
        );
    }

    /// Client `i` takes the server's next offer on `subscribe` and makes its answer,
    /// which it has not sent yet.
    pub(crate) fn make_answer(&mut self, i: usize) -> String {
        let now = self.now;
        let offer = self.expect(i, offer);
        let pc = &mut self.clients[i].pc;
        pc.set_remote_description(now, RTCSessionDescription::offer(offer).unwrap())
            .unwrap();
        let answer = pc.create_answer(None).unwrap();
        pc.set_local_description(now, answer.clone()).unwrap();
        answer.sdp
    }

    /// Client `i` sends `signal`, and the turn ends.
    pub(crate) fn signal(&mut self, i: usize, signal: Signal) {
        self.cmd(Cmd::Signal(Self::session(i), signal));
    }

    /// The next message the server sent client `i` that `want` picks.
    pub(crate) fn expect<T>(&mut self, i: usize, want: impl Fn(ServerMsg) -> Option<T>) -> T {
        loop {
            let msg = self.clients[i].from_server.pop_front().expect("a message");
            if let Some(t) = want(msg) {
                return t;
            }
        }
    }

    /// For at most `limit` of simulated time from now, until `done`: deliver datagrams
    /// one at a time, each answered before the next is delivered; when none is in
    /// flight, move the clock to the next timer. Clients send their DTLS ClientHello
    /// the moment their side of ICE connects, as browsers do.
    pub(crate) fn run_until(&mut self, done: impl Fn(&Net) -> bool, limit: Duration) {
        let end = self.now + limit;
        while !done(self) && self.now < end {
            let mut quiet = true;
            for i in 0..self.clients.len() {
                while let Some(out) = self.clients[i].pc.poll_write() {
                    quiet = false;
                    if let Some(tap) = &mut self.tap
                        && !tap(i, &out.message)
                    {
                        continue;
                    }
                    let from = self.clients[i].addr;
                    self.engine.handle_datagram(self.now, from, &out.message);
                    self.turn();
                }
            }
            if let Some(t) = self.wire.pop_front() {
                quiet = false;
                let now = self.now;
                let c = self.clients.iter_mut().find(|c| c.addr == t.to).unwrap();
                let msg = TaggedBytesMut {
                    now,
                    transport: TransportContext {
                        local_addr: c.addr,
                        peer_addr: SERVER,
                        transport_protocol: TransportProtocol::UDP,
                        ecn: None,
                    },
                    message: t.bytes,
                };
                let _ = c.pc.handle_read(msg);
                while let Some(event) = c.pc.poll_event() {
                    match event {
                        RTCPeerConnectionEvent::OnIceConnectionStateChangeEvent(
                            RTCIceConnectionState::Connected,
                        ) => c.pc.handle_timeout(now).unwrap(),
                        RTCPeerConnectionEvent::OnConnectionStateChangeEvent(
                            RTCPeerConnectionState::Connected,
                        ) => c.connected_at = Some(now),
                        _ => {}
                    }
                }
            }
            if quiet {
                let next = self
                    .clients
                    .iter_mut()
                    .filter_map(|c| c.pc.poll_timeout())
                    .chain(self.engine.poll_timeout())
                    .min()
                    .expect("a timer");
                self.now = self.now.max(next);
                let now = self.now;
                for c in &mut self.clients {
                    if c.pc.poll_timeout().is_some_and(|t| t <= now) {
                        c.pc.handle_timeout(now).unwrap();
                    }
                }
                self.engine.handle_timeout(now);
                self.turn();
            }
        }
    }
}
