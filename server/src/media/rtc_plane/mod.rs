//! The single-socket media plane on webrtc-rs's sans-IO `rtc` core: one UDP socket for every
//! peer connection, and one loop on its own thread that owns them all (`engine.rs`). RTP from
//! a publisher is forwarded to its subscribers inside that loop, without a task, a channel or
//! a lock per packet, and the datagrams of one turn of the loop go out in batched syscalls.
//!
//! Sessions talk to the loop through one unbounded command channel. A client's negotiation
//! messages are counted per session, and refused past `SESSION_QUEUE`, so one client cannot
//! fill the channel; subscriptions come from room tasks, whose size is capped.

mod engine;

use std::net::SocketAddr;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::time::{Duration, Instant, SystemTime};

use rtc::peer_connection::RTCPeerConnection;
use signaling::wire::{PcRole, Reject};
use tokio::sync::{mpsc, oneshot};

use self::engine::{Cmd, Engine, SessionId};
use super::delay::{self, DelayReader, DelayRecorder, DelaySnapshot};
use super::fanout::Producer;
use super::gauge::PlaneStats;
use super::peer::{self, PeerNet};
use super::udp::{self, MediaSocket, RecvBatch, SendQueue};
use super::{MediaPlane, MediaSession, SessionCtx, Signal, queue_full};

/// Negotiation messages a client may have queued before it is told to slow down.
const SESSION_QUEUE: usize = 256;

/// Commands handled per turn of the loop before it looks at the socket again.
const COMMANDS_PER_TURN: usize = 64;

/// How long a turn may spend on commands, and then on offers, before it reads the socket
/// again (at least one of each is done per turn). Applying an answer or making an offer in a
/// room of 40 costs about a millisecond, and when someone joins, every other subscriber needs
/// both: done at once, they held every packet for tens of milliseconds.
const CONTROL_BUDGET: Duration = Duration::from_millis(1);

/// What the loop holds and has done, readable from outside.
#[derive(Debug, Default)]
pub struct Counters {
    /// Open peer connections.
    pub connections: AtomicUsize,
    /// Published tracks being forwarded.
    pub producers: AtomicUsize,
    /// Forwarded (producer, subscriber) pairs.
    pub consumers: AtomicUsize,
    /// Datagrams from an address and ufrag no connection knows.
    pub unrouted: AtomicU64,
    /// Datagrams dropped because the socket's send buffer was full.
    pub send_dropped: AtomicU64,
    /// Datagrams the kernel refused for another reason (e.g. an unreachable peer).
    pub send_failed: AtomicU64,
}

/// Builds the loop's peer connections: the same codecs, interceptors and ICE settings as the
/// webrtc-rs plane, with a ufrag chosen by the engine (its demultiplexing key) and one host
/// candidate, the shared socket.
pub struct PcFactory {
    net: PeerNet,
}

impl PcFactory {
    fn build(
        &self,
        now: Instant,
        role: PcRole,
        ufrag: &str,
        local: SocketAddr,
    ) -> rtc::shared::error::Result<RTCPeerConnection> {
        let flow = match role {
            PcRole::Publish => peer::Flow::Ingest,
            PcRole::Subscribe => peer::Flow::Relay,
        };
        let password = format!("{ufrag}{:032x}", rand::random::<u128>());
        peer::build_sansio(
            now,
            &self.net,
            peer::Side::Server,
            flow,
            local,
            Some((ufrag.to_string(), password)),
        )
    }
}

/// See the module docs.
pub struct RtcPlane {
    cmds: mpsc::UnboundedSender<Cmd>,
    counters: Arc<Counters>,
    next_session: AtomicU64,
    local_addr: SocketAddr,
    delay: DelayReader,
}

impl RtcPlane {
    /// Bind the media socket on `net.bind_ip:port` and start the loop's thread. Host
    /// candidates advertise `net.advertise_ip` (1:1 NAT) with the bound port.
    pub async fn start(net: PeerNet, port: u16) -> std::io::Result<Self> {
        let (cmds, rx) = mpsc::unbounded_channel();
        let counters = Arc::new(Counters::default());
        let (ready_tx, ready_rx) = oneshot::channel();
        let bind = SocketAddr::new(net.bind_ip, port);
        let thread_counters = counters.clone();
        let (recorder, delay) = delay::forward_delay();
        std::thread::Builder::new()
            .name("rt-media".into())
            .spawn(move || {
                let runtime = match tokio::runtime::Builder::new_current_thread()
                    .enable_all()
                    .build()
                {
                    Ok(rt) => rt,
                    Err(e) => {
                        let _ = ready_tx.send(Err(e));
                        return;
                    }
                };
                runtime.block_on(async move {
                    let socket = match MediaSocket::bind(bind) {
                        Ok(s) => s,
                        Err(e) => {
                            let _ = ready_tx.send(Err(e));
                            return;
                        }
                    };
                    let bound = match socket.local_addr() {
                        Ok(a) => a,
                        Err(e) => {
                            let _ = ready_tx.send(Err(e));
                            return;
                        }
                    };
                    let advertised =
                        SocketAddr::new(net.advertise_ip.unwrap_or(bound.ip()), bound.port());
                    let engine =
                        Engine::new(PcFactory { net }, advertised, thread_counters.clone());
                    let _ = ready_tx.send(Ok(advertised));
                    run(engine, socket, rx, thread_counters, recorder).await;
                });
            })?;
        let local_addr = ready_rx
            .await
            .map_err(|_| std::io::Error::other("media thread ended"))??;
        tracing::info!(%local_addr, "media plane: one UDP socket");
        Ok(RtcPlane {
            cmds,
            counters,
            next_session: AtomicU64::new(1),
            local_addr,
            delay,
        })
    }
}

impl MediaPlane for RtcPlane {
    fn open_session(&self, ctx: SessionCtx) -> Arc<dyn MediaSession> {
        let id = self.next_session.fetch_add(1, Ordering::Relaxed);
        let in_flight = Arc::new(AtomicUsize::new(0));
        let _ = self.cmds.send(Cmd::Open {
            id,
            ctx,
            in_flight: in_flight.clone(),
        });
        Arc::new(RtcSession {
            id,
            cmds: self.cmds.clone(),
            in_flight,
        })
    }

    fn stats(&self) -> PlaneStats {
        PlaneStats {
            connections: self.counters.connections.load(Ordering::Relaxed),
            tasks: 0,
            producers: self.counters.producers.load(Ordering::Relaxed),
            consumers: self.counters.consumers.load(Ordering::Relaxed),
            unrouted: self.counters.unrouted.load(Ordering::Relaxed),
            send_dropped: self.counters.send_dropped.load(Ordering::Relaxed),
            send_failed: self.counters.send_failed.load(Ordering::Relaxed),
        }
    }

    fn media_addr(&self) -> Option<SocketAddr> {
        Some(self.local_addr)
    }

    fn forward_delay(&self) -> Option<DelaySnapshot> {
        Some(self.delay.snapshot())
    }
}

struct RtcSession {
    id: SessionId,
    cmds: mpsc::UnboundedSender<Cmd>,
    in_flight: Arc<AtomicUsize>,
}

impl MediaSession for RtcSession {
    fn signal(&self, signal: Signal) -> Result<(), Reject> {
        if self.in_flight.fetch_add(1, Ordering::Relaxed) >= SESSION_QUEUE {
            self.in_flight.fetch_sub(1, Ordering::Relaxed);
            return Err(queue_full());
        }
        self.cmds
            .send(Cmd::Signal(self.id, signal))
            .map_err(|_| queue_full())
    }

    fn subscribe(&self, producer: Arc<Producer>) {
        let _ = self.cmds.send(Cmd::Subscribe(self.id, producer));
    }

    fn unsubscribe(&self, track_id: &str) {
        let _ = self
            .cmds
            .send(Cmd::Unsubscribe(self.id, track_id.to_string()));
    }

    fn close(&self) {
        let _ = self.cmds.send(Cmd::Close(self.id));
    }
}

impl Drop for RtcSession {
    fn drop(&mut self) {
        // A session whose handle is gone is over, whether or not `close` was called.
        let _ = self.cmds.send(Cmd::Close(self.id));
    }
}

/// Forwarded copies after which the loop sends what it has, even in the middle of a turn: a
/// turn can carry 64 datagrams from publishers with 40 subscribers each, and its first
/// packets' copies should not wait for the last ones' (that was the server's p99 latency).
/// One `sendmmsg` moves this many, so syscall batching stays whole.
const SEND_EVERY: u64 = udp::BATCH as u64;

/// What the loop has to send, and when what it forwards arrived.
struct Outbox {
    queue: SendQueue,
    /// (kernel receive time, copies forwarded) of the datagrams forwarded since the last send.
    held: Vec<(SystemTime, u64)>,
    delay: DelayRecorder,
    counters: Arc<Counters>,
    /// `Engine::forwarded` at the last send.
    sent_mark: u64,
}

impl Outbox {
    /// Note that the datagram received at `received` was forwarded as `copies` packets.
    fn hold(&mut self, received: Option<SystemTime>, copies: u64) {
        if let Some(received) = received.filter(|_| copies > 0) {
            self.held.push((received, copies));
        }
    }

    /// Send everything the engine has queued, without waiting, and record how long the
    /// forwarded packets among it were held (dropped ones are counted apart, in
    /// `send_dropped`).
    fn send(&mut self, engine: &mut Engine, socket: &MediaSocket) {
        while let Some(t) = engine.poll_transmit() {
            self.queue.push(t.to, t.bytes);
        }
        self.sent_mark = engine.forwarded();
        if self.queue.is_empty() {
            // Written but nothing to send (the pipeline dropped them): nothing was held.
            self.held.clear();
            return;
        }
        let sent = socket.send_batch(&mut self.queue);
        if sent.dropped > 0 {
            self.counters
                .send_dropped
                .fetch_add(sent.dropped as u64, Ordering::Relaxed);
        }
        if sent.failed > 0 {
            self.counters
                .send_failed
                .fetch_add(sent.failed as u64, Ordering::Relaxed);
        }
        if !self.held.is_empty() {
            let sent_at = SystemTime::now();
            for (received, copies) in self.held.drain(..) {
                self.delay.record(received, sent_at, copies);
            }
        }
    }
}

/// The loop: commands, datagrams and timers in, datagrams out, until every handle is gone.
async fn run(
    mut engine: Engine,
    socket: MediaSocket,
    mut cmds: mpsc::UnboundedReceiver<Cmd>,
    counters: Arc<Counters>,
    delay: DelayRecorder,
) {
    let mut batch = RecvBatch::new();
    let mut outbox = Outbox {
        queue: SendQueue::default(),
        held: Vec::with_capacity(udp::BATCH),
        delay,
        counters,
        sent_mark: 0,
    };
    let far = || Instant::now() + Duration::from_secs(3600);
    let sleep = tokio::time::sleep_until(far().into());
    tokio::pin!(sleep);
    let mut open = true;
    while open {
        let now = Instant::now();
        let mut busy = false;
        for _ in 0..COMMANDS_PER_TURN {
            if busy && now.elapsed() >= CONTROL_BUDGET {
                break;
            }
            match cmds.try_recv() {
                Ok(cmd) => {
                    engine.handle_cmd(now, cmd);
                    busy = true;
                }
                Err(mpsc::error::TryRecvError::Empty) => break,
                Err(mpsc::error::TryRecvError::Disconnected) => {
                    open = false;
                    break;
                }
            }
        }
        match socket.try_recv_batch(&mut batch) {
            Ok(n) => {
                let now = Instant::now();
                for i in 0..n {
                    let (bytes, from) = batch.get(i);
                    let before = engine.forwarded();
                    engine.handle_datagram(now, from, bytes);
                    outbox.hold(batch.received_at(i), engine.forwarded() - before);
                    if engine.forwarded() - outbox.sent_mark >= SEND_EVERY {
                        engine.flush();
                        outbox.send(&mut engine, &socket);
                    }
                }
                busy |= n > 0;
            }
            Err(e) => tracing::debug!(%e, "media socket receive"),
        }
        engine.handle_timeout(Instant::now());
        let offers = Instant::now();
        while engine.negotiate_one(offers) && offers.elapsed() < CONTROL_BUDGET {}
        engine.end_turn();
        outbox.send(&mut engine, &socket);
        outbox.delay.publish(Instant::now());
        if busy || engine.negotiations_pending() {
            // More may be waiting; look again before sleeping, but let the runtime's other
            // work (timers) in.
            tokio::task::yield_now().await;
            continue;
        }
        let deadline = engine.poll_timeout().unwrap_or_else(far);
        sleep.as_mut().reset(deadline.into());
        tokio::select! {
            cmd = cmds.recv() => match cmd {
                Some(cmd) => engine.handle_cmd(Instant::now(), cmd),
                None => open = false,
            },
            ready = socket.readable() => {
                if let Err(e) = ready {
                    tracing::warn!(%e, "media socket");
                }
            }
            () = &mut sleep => {}
        }
    }
    engine.shutdown();
    outbox.send(&mut engine, &socket);
    tracing::debug!("media loop stopped");
}

#[cfg(test)]
mod tests {
    use rtc::rtcp::sender_report::SenderReport;
    use rtc::rtp_transceiver::rtp_sender::RtpCodecKind;
    use signaling::wire::{ErrorCode, ServerMsg};

    use super::*;

    /// The codec names in an SDP's `a=rtpmap` lines, sorted, once each.
    fn rtpmap_names(sdp: &str) -> Vec<String> {
        let mut names: Vec<String> = sdp
            .lines()
            .filter_map(|l| l.strip_prefix("a=rtpmap:"))
            .filter_map(|l| l.split_whitespace().nth(1))
            .filter_map(|codec| codec.split('/').next())
            .map(str::to_owned)
            .collect();
        names.sort();
        names.dedup();
        names
    }

    #[test]
    fn a_subscribe_offer_lists_only_the_codecs_browsers_publish() {
        let factory = PcFactory {
            net: PeerNet::loopback(),
        };
        let local = SocketAddr::from(([127, 0, 0, 1], 7882));
        let mut pc = factory
            .build(Instant::now(), PcRole::Subscribe, "abcdefgh", local)
            .unwrap();
        for kind in [RtpCodecKind::Audio, RtpCodecKind::Video] {
            pc.add_transceiver_from_kind(kind, None).unwrap();
        }
        let offer = pc.create_offer(None).unwrap();
        assert_eq!(
            rtpmap_names(&offer.sdp),
            ["H264", "VP8", "VP9", "opus", "rtx"],
            "{}",
            offer.sdp
        );
        // One RTX per video codec, and H.264 only in packetization mode 1.
        assert_eq!(offer.sdp.matches(" rtx/90000").count(), 4, "{}", offer.sdp);
        assert!(!offer.sdp.contains("packetization-mode=0"), "{}", offer.sdp);
        // The server's one host candidate, on the shared port.
        assert!(
            offer.sdp.contains("127.0.0.1 7882 typ host"),
            "{}",
            offer.sdp
        );
        // Forwarded packets carry no header extension, so none is negotiated.
        assert!(!offer.sdp.contains("a=extmap:"), "{}", offer.sdp);
        assert!(!offer.sdp.contains("transport-cc"), "{}", offer.sdp);
    }

    /// What a publisher's connection negotiates is unchanged: TWCC feedback (browsers
    /// estimate their upload bandwidth by it), and the header extensions of simulcast.
    #[test]
    fn a_publish_answer_keeps_twcc_and_the_simulcast_extensions() {
        let now = Instant::now();
        let net = PeerNet::loopback();
        let mut client = peer::build_sansio(
            now,
            &net,
            peer::Side::Client,
            peer::Flow::Send,
            SocketAddr::from(([127, 0, 0, 1], 40000)),
            None,
        )
        .unwrap();
        for kind in [RtpCodecKind::Audio, RtpCodecKind::Video] {
            client.add_transceiver_from_kind(kind, None).unwrap();
        }
        let offer = client.create_offer(None).unwrap();
        let factory = PcFactory { net };
        let local = SocketAddr::from(([127, 0, 0, 1], 7882));
        let mut server = factory
            .build(now, PcRole::Publish, "abcdefgh", local)
            .unwrap();
        server.set_remote_description(now, offer).unwrap();
        let answer = server.create_answer(None).unwrap();
        for needed in [
            "transport-cc",
            "transport-wide-cc-extensions",
            "urn:ietf:params:rtp-hdrext:sdes:mid",
            "urn:ietf:params:rtp-hdrext:sdes:rtp-stream-id",
        ] {
            assert!(answer.sdp.contains(needed), "{needed}: {}", answer.sdp);
        }
    }

    /// The engine and sans-IO clients, joined by a network and a clock simulated here: the
    /// order of events is the same on every run, and no wall-clock time is measured.
    mod sim {
        use rtc::media_stream::MediaStreamTrack;
        use rtc::peer_connection::event::RTCPeerConnectionEvent;
        use rtc::peer_connection::message::{RTCMessage, TaggedRTCMessage};
        use rtc::peer_connection::sdp::RTCSessionDescription;
        use rtc::peer_connection::state::{RTCIceConnectionState, RTCPeerConnectionState};
        use rtc::rtp_transceiver::rtp_sender::{
            RTCRtpCodec, RTCRtpCodingParameters, RTCRtpEncodingParameters,
        };
        use rtc::rtp_transceiver::{
            RTCRtpSenderId, RTCRtpTransceiverDirection, RTCRtpTransceiverInit,
        };
        use rtc::sansio::Protocol;
        use rtc::shared::{TaggedBytesMut, TransportContext, TransportProtocol};
        use signaling::wire::ServerMsg;

        use super::super::engine::{Cmd, Engine};
        use super::super::{PcFactory, Signal};
        use super::*;
        use crate::media::{MediaEvent, SessionCtx};

        pub(super) const SERVER: SocketAddr =
            SocketAddr::new(std::net::IpAddr::V4(std::net::Ipv4Addr::LOCALHOST), 7882);

        pub(super) struct Client {
            pub(super) addr: SocketAddr,
            pub(super) pc: RTCPeerConnection,
            pub(super) from_server: mpsc::Receiver<ServerMsg>,
            pub(super) connected_at: Option<Instant>,
            /// The track it publishes, if it does.
            sender: Option<RTCRtpSenderId>,
            /// Its codec: `(SSRC, payload type, clock ticks per packet)`.
            track: (u32, u8, u32),
            /// RTP packets it has sent on it.
            sent: u16,
        }

        /// What a client publishes.
        #[derive(Clone, Copy)]
        pub(super) enum Track {
            /// Opus, SSRC 1111: no retransmissions.
            Opus,
            /// VP8, SSRC 2222, with an RTX stream (NACK answered by retransmission).
            Vp8,
        }

        /// Sees every datagram a client sends the server (the client's index, the bytes);
        /// the datagram is delivered only if it returns true.
        pub(super) type Tap = Box<dyn FnMut(usize, &[u8]) -> bool>;

        pub(super) struct Net {
            pub(super) now: Instant,
            pub(super) engine: Engine,
            pub(super) clients: Vec<Client>,
            pub(super) room: mpsc::UnboundedReceiver<MediaEvent>,
            to_room: mpsc::UnboundedSender<MediaEvent>,
            pub(super) tap: Option<Tap>,
        }

        /// The SDP of an offer.
        pub(super) fn offer(msg: ServerMsg) -> Option<String> {
            match msg {
                ServerMsg::Offer { sdp, .. } => Some(sdp),
                _ => None,
            }
        }

        /// Whether client `i`'s connection is up (DTLS done).
        pub(super) fn connected(i: usize) -> impl Fn(&Net) -> bool {
            move |n: &Net| n.clients[i].connected_at.is_some()
        }

        /// What the loop does at the end of a turn, with no budget: every offer due, then
        /// every connection's output.
        pub(super) fn turn(engine: &mut Engine, now: Instant) {
            while engine.negotiate_one(now) {}
            engine.end_turn();
        }

        impl Net {
            pub(super) fn new() -> Self {
                let now = Instant::now();
                let factory = PcFactory {
                    net: PeerNet::loopback(),
                };
                let (to_room, room) = mpsc::unbounded_channel();
                Net {
                    now,
                    engine: Engine::new(factory, SERVER, Arc::default()),
                    clients: Vec::new(),
                    room,
                    to_room,
                    tap: None,
                }
            }

            /// A participant (session `i + 1`) whose client connection has `flow`.
            pub(super) fn join(&mut self, flow: peer::Flow) -> usize {
                let i = self.clients.len();
                let addr = SocketAddr::from(([127, 0, 0, 1], 40000 + i as u16));
                let (to_client, from_server) = mpsc::channel(64);
                let ctx = SessionCtx {
                    participant: format!("p{}", i + 1),
                    to_client,
                    to_room: self.to_room.clone(),
                };
                let in_flight = Arc::new(AtomicUsize::new(0));
                let id = i as u64 + 1;
                self.engine
                    .handle_cmd(self.now, Cmd::Open { id, ctx, in_flight });
                let net = PeerNet::loopback();
                let pc = peer::build_sansio(self.now, &net, peer::Side::Client, flow, addr, None)
                    .unwrap();
                self.clients.push(Client {
                    addr,
                    pc,
                    from_server,
                    connected_at: None,
                    sender: None,
                    track: (0, 0, 0),
                    sent: 0,
                });
                i
            }

            /// A new client publishes one Opus track (SSRC 1111) and sends one packet; returns
            /// the server's producer of it.
            pub(super) fn publish_opus(&mut self) -> Arc<Producer> {
                self.publish_opus_from(peer::Flow::Send)
            }

            /// [`Net::publish_opus`] from a client whose connection has `flow`.
            pub(super) fn publish_opus_from(&mut self, flow: peer::Flow) -> Arc<Producer> {
                self.publish(flow, Track::Opus)
            }

            /// A new client, whose connection has `flow`, publishes `what` and sends one
            /// packet; returns the server's producer of it.
            pub(super) fn publish(&mut self, flow: peer::Flow, what: Track) -> Arc<Producer> {
                let publisher = self.join(flow);
                let (codec, ssrc, payload_type, ticks, kind) = match what {
                    Track::Opus => (
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
                    Track::Vp8 => (
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
                let Ok(MediaEvent::TrackPublished { producer, .. }) = self.room.try_recv() else {
                    panic!("the track was not published");
                };
                producer
            }

            /// Publisher `i` sends its next packet, of 80 bytes (Opus or VP8 as it publishes).
            pub(super) fn send_rtp(&mut self, i: usize) {
                let now = self.now;
                let c = &mut self.clients[i];
                let (ssrc, payload_type, ticks) = c.track;
                let mut packet = rtc::rtp::Packet::default();
                packet.header.version = 2;
                packet.header.ssrc = ssrc;
                packet.header.payload_type = payload_type;
                packet.header.sequence_number = c.sent;
                packet.header.timestamp = u32::from(c.sent) * ticks;
                packet.payload = vec![0; 80].into();
                c.sent += 1;
                let sender = c.sender.expect("a publisher");
                let mut s = c.pc.rtp_sender(sender).unwrap();
                s.write_rtp(now, packet).unwrap();
            }

            /// Publisher `i` sends packet `seq` again on its retransmission stream (RTX, RFC
            /// 4588), as a sender does when asked for it or when it probes bandwidth with
            /// recent media. The RTX sequence number is derived from `seq`: copy each packet
            /// once, or SRTP drops the second as a replay.
            pub(super) fn send_rtx_copy(&mut self, i: usize, seq: u16) {
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
            pub(super) fn send_report(&mut self, i: usize, report: SenderReport) {
                let msg = TaggedRTCMessage {
                    now: self.now,
                    message: RTCMessage::RtcpPacket(String::new(), vec![Box::new(report)]),
                };
                self.clients[i].pc.handle_write(msg).unwrap();
            }

            /// Client `i` asks for packets `seqs` of the stream it receives in `ssrc` (a NACK).
            pub(super) fn send_nack(&mut self, i: usize, ssrc: u32, seqs: &[u16]) {
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

            /// The RTP packets and sender reports client `i` has received since last asked.
            pub(super) fn received(
                &mut self,
                i: usize,
            ) -> (Vec<rtc::rtp::Packet>, Vec<SenderReport>) {
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
            pub(super) fn has_offer(&mut self, i: usize) -> bool {
                while let Ok(msg) = self.clients[i].from_server.try_recv() {
                    if offer(msg).is_some() {
                        return true;
                    }
                }
                false
            }

            /// Session `i + 1` is subscribed to `producer`, and the turn ends: the server
            /// offers on client `i`'s `subscribe`.
            pub(super) fn subscribe(&mut self, i: usize, producer: Arc<Producer>) {
                let session = i as u64 + 1;
                self.engine
                    .handle_cmd(self.now, Cmd::Subscribe(session, producer));
                turn(&mut self.engine, self.now);
            }

            /// Client `i` answers the server's next offer on `subscribe`.
            pub(super) fn answer_offer(&mut self, i: usize) {
                let sdp = self.make_answer(i);
                self.send_answer(i, sdp);
            }

            /// Client `i` sends `sdp` as its answer on `subscribe`.
            pub(super) fn send_answer(&mut self, i: usize, sdp: String) {
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
            pub(super) fn make_answer(&mut self, i: usize) -> String {
                let now = self.now;
                let offer = self.expect(i, offer);
                let pc = &mut self.clients[i].pc;
                pc.set_remote_description(now, RTCSessionDescription::offer(offer).unwrap())
                    .unwrap();
                let answer = pc.create_answer(None).unwrap();
                pc.set_local_description(now, answer.clone()).unwrap();
                answer.sdp
            }

            pub(super) fn signal(&mut self, i: usize, signal: Signal) {
                self.engine
                    .handle_cmd(self.now, Cmd::Signal(i as u64 + 1, signal));
                turn(&mut self.engine, self.now);
            }

            /// The next message the server sent client `i` that `want` picks.
            pub(super) fn expect<T>(
                &mut self,
                i: usize,
                want: impl Fn(ServerMsg) -> Option<T>,
            ) -> T {
                loop {
                    let msg = self.clients[i].from_server.try_recv().expect("a message");
                    if let Some(t) = want(msg) {
                        return t;
                    }
                }
            }

            /// For at most `limit` of simulated time from now, until `done`: deliver datagrams
            /// one at a time, each answered before the next is delivered; when none is in
            /// flight, move the clock to the next timer. Clients send their DTLS ClientHello
            /// the moment their side of ICE connects, as browsers do.
            pub(super) fn run_until(&mut self, done: impl Fn(&Net) -> bool, limit: Duration) {
                let end = self.now + limit;
                while !done(self) && self.now < end {
                    let mut quiet = true;
                    for (i, c) in self.clients.iter_mut().enumerate() {
                        while let Some(out) = c.pc.poll_write() {
                            quiet = false;
                            if let Some(tap) = &mut self.tap
                                && !tap(i, &out.message)
                            {
                                continue;
                            }
                            self.engine.handle_datagram(self.now, c.addr, &out.message);
                            turn(&mut self.engine, self.now);
                        }
                    }
                    if let Some(t) = self.engine.poll_transmit() {
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
                        turn(&mut self.engine, now);
                    }
                }
            }
        }
    }

    /// A subscriber's client, ICE's controlled side there, connects first and sends its DTLS
    /// ClientHello at once, as browsers do; webrtc-rs drops DTLS that comes before its own
    /// side has connected. The server keeps the hello until then, so the handshake does not
    /// wait for the client's retransmission (1 s in webrtc-rs).
    #[test]
    fn a_dtls_hello_that_comes_before_ice_connects_is_kept() {
        let mut net = sim::Net::new();
        let producer = net.publish_opus();

        // A subscriber: the server offers, the client answers and is ICE's controlled side.
        let subscriber = net.join(peer::Flow::Receive);
        let began = net.now;
        net.subscribe(subscriber, producer);
        net.answer_offer(subscriber);
        net.run_until(sim::connected(subscriber), Duration::from_secs(5));
        let took = net.clients[subscriber]
            .connected_at
            .expect("DTLS connected")
            - began;
        // Simulated time: without the kept hello, the client's 1 s retransmission decides it.
        assert!(
            took < Duration::from_millis(500),
            "connected after {took:?}"
        );
    }

    /// A subscriber's ICE checks can reach the server before its answer does, and a browser
    /// whose candidates are mDNS names can be reached only at the address they come from.
    /// webrtc-rs drops a check that comes before it knows the client's credentials; the
    /// server keeps it, and answers it the moment the answer is applied, without waiting for
    /// the client's next check.
    #[test]
    fn an_ice_check_that_comes_before_the_answer_is_answered_with_it() {
        use rtc::sansio::Protocol;

        let mut net = sim::Net::new();
        let producer = net.publish_opus();
        let subscriber = net.join(peer::Flow::Receive);
        net.subscribe(subscriber, producer);

        // The client makes its answer, with no candidate in it (a browser trickles its
        // candidates, and may name them by mDNS), and checks before the answer is sent.
        let answer = net.make_answer(subscriber);
        let no_candidates: String = answer
            .split_inclusive("\r\n")
            .filter(|l| !l.starts_with("a=candidate") && !l.starts_with("a=end-of-candidates"))
            .collect();
        let client = &mut net.clients[subscriber];
        let mut checks = 0;
        let mut tries = 0;
        while checks == 0 && tries < 100 {
            tries += 1;
            let at = client.pc.poll_timeout().unwrap_or(net.now).max(net.now);
            net.now = at;
            client.pc.handle_timeout(at).unwrap();
            while let Some(out) = client.pc.poll_write() {
                // RFC 7983: a first byte of 0 to 3 is STUN.
                if out.message.first().is_some_and(|b| *b <= 3) {
                    checks += 1;
                }
                net.engine.handle_datagram(at, client.addr, &out.message);
            }
        }
        assert!(checks > 0, "the client checked");
        sim::turn(&mut net.engine, net.now);
        let mut before = Vec::new();
        while let Some(t) = net.engine.poll_transmit() {
            before.push(t.bytes);
        }
        assert!(before.is_empty(), "nothing answered before the answer");

        net.send_answer(subscriber, no_candidates);
        // No time passes: a binding success response (type 0x0101) goes out at once.
        let mut responses = 0;
        while let Some(t) = net.engine.poll_transmit() {
            assert_eq!(t.to, net.clients[subscriber].addr);
            if t.bytes.starts_with(&[0x01, 0x01]) {
                responses += 1;
            }
        }
        assert!(responses > 0, "the kept check was answered");
    }

    /// A section whose track was unsubscribed carries the next track of its kind: the SDP does
    /// not grow with every leave and rejoin of a long session. Media flows on the reused
    /// section, in its new SSRC.
    #[test]
    fn a_section_given_up_carries_the_next_track_of_its_kind() {
        let sections = |sdp: &str| sdp.matches("\r\nm=").count();
        let mut net = sim::Net::new();
        let first = net.publish_opus();
        let subscriber = net.join(peer::Flow::Receive);
        net.subscribe(subscriber, first.clone());
        net.answer_offer(subscriber);
        net.run_until(sim::connected(subscriber), Duration::from_secs(5));
        let _ = net.received(subscriber);
        net.send_rtp(0);
        net.run_until(|_| false, Duration::from_millis(100));
        let (rtp, _) = net.received(subscriber);
        let [old] = rtp.as_slice() else {
            panic!("one packet of the first publisher, got {}", rtp.len());
        };
        let old_ssrc = old.header.ssrc;

        // The first publisher goes; its section is offered without a track.
        let session = subscriber as u64 + 1;
        net.engine
            .handle_cmd(net.now, Cmd::Unsubscribe(session, first.info.id.clone()));
        sim::turn(&mut net.engine, net.now);
        net.answer_offer(subscriber);

        // The next publisher of audio takes that section.
        let second = net.publish_opus();
        let publisher = net.clients.len() - 1;
        net.subscribe(subscriber, second);
        let sdp = net.make_answer(subscriber);
        assert_eq!(sections(&sdp), 1, "{sdp}");
        net.send_answer(subscriber, sdp);
        net.run_until(|_| false, Duration::from_millis(100));
        let _ = net.received(subscriber);
        for _ in 0..3 {
            net.send_rtp(publisher);
        }
        net.run_until(|_| false, Duration::from_millis(100));
        let (rtp, _) = net.received(subscriber);
        assert_eq!(rtp.len(), 3, "the second publisher's packets arrive");
        let ssrc = rtp[0].header.ssrc;
        assert!(rtp.iter().all(|p| p.header.ssrc == ssrc));
        assert_ne!(ssrc, old_ssrc, "the reused section has a new SSRC");
    }

    /// When someone publishes, every subscriber needs an offer, and each costs the loop about a
    /// millisecond in a big room. The engine sends them one at a time, oldest first, so the
    /// loop can read the socket between two.
    #[test]
    fn offers_go_out_one_at_a_time_oldest_first() {
        let mut net = sim::Net::new();
        let producer = net.publish_opus();
        let track = producer.info.id.clone();
        let subscribers: Vec<usize> = (0..3).map(|_| net.join(peer::Flow::Receive)).collect();
        let now = net.now;
        // Sessions 4, 2, 3 (clients 3, 1, 2) are subscribed, in that order.
        for session in [4, 2, 3] {
            net.engine
                .handle_cmd(now, Cmd::Subscribe(session, producer.clone()));
        }
        assert!(net.engine.negotiations_pending());
        let mut order = Vec::new();
        while net.engine.negotiate_one(now) {
            let offered: Vec<usize> = subscribers
                .iter()
                .copied()
                .filter(|&i| net.has_offer(i))
                .collect();
            assert_eq!(offered.len(), 1, "one offer per call, got {offered:?}");
            order.push(offered[0]);
        }
        assert_eq!(order, [3, 1, 2]);
        assert!(!net.engine.negotiations_pending());
        // A change for a session whose offer is still unanswered waits for its answer.
        net.engine.handle_cmd(now, Cmd::Unsubscribe(2, track));
        assert!(!net.engine.negotiate_one(now));
    }

    /// A publisher's sender report reaches each subscriber in the subscriber's own terms: the
    /// publisher's clock mapping (what a receiver plays audio and video in sync by), in the
    /// subscriber's SSRC, with the counts of what was sent to that subscriber. The server's
    /// `subscribe` connections make no reports of their own. A subscriber that comes later gets
    /// the last mapping as soon as it receives the track.
    #[test]
    fn a_publishers_sender_report_reaches_each_subscriber_in_its_own_terms() {
        let mut net = sim::Net::new();
        // A publisher without a report stage of its own: it sends only the test's report.
        let producer = net.publish_opus_from(peer::Flow::Relay);
        let publisher = 0;
        let first = net.join(peer::Flow::Ingest);
        net.subscribe(first, producer.clone());
        net.answer_offer(first);
        net.run_until(sim::connected(first), Duration::from_secs(5));
        for _ in 0..3 {
            net.send_rtp(publisher);
        }
        let report = SenderReport {
            ssrc: 1111,
            ntp_time: 0xDEAD_BEEF_0000_0001,
            rtp_time: 123_456,
            packet_count: 1_000,
            octet_count: 80_000,
            ..Default::default()
        };
        net.send_report(publisher, report.clone());
        // Two seconds of simulated time: a report stage on the server's side (1 s interval)
        // would have reported twice by then.
        net.run_until(|_| false, Duration::from_secs(2));
        let (rtp, reports) = net.received(first);
        assert_eq!(rtp.len(), 3, "the packets sent after the subscription");
        let ssrc = rtp[0].header.ssrc;
        assert_ne!(ssrc, 1111, "forwarded in the subscriber's SSRC");
        // The publisher's clock mapping, with the subscriber's SSRC and counts.
        let want = |ssrc, packets, octets| SenderReport {
            ssrc,
            packet_count: packets,
            octet_count: octets,
            ..report.clone()
        };
        assert_eq!(reports, [want(ssrc, 3, 240)]);

        let second = net.join(peer::Flow::Ingest);
        net.subscribe(second, producer);
        net.answer_offer(second);
        net.run_until(sim::connected(second), Duration::from_secs(5));
        net.run_until(|_| false, Duration::from_millis(100));
        let (rtp, reports) = net.received(second);
        assert!(rtp.is_empty(), "nothing was published since");
        assert_eq!(reports.len(), 1, "{reports:?}");
        let second_ssrc = reports[0].ssrc;
        assert!(
            second_ssrc != 1111 && second_ssrc != ssrc,
            "each subscriber's own SSRC"
        );
        assert_eq!(reports, [want(second_ssrc, 0, 0)]);
    }

    /// A newcomer gets every stream's last sender report as soon as it receives the streams,
    /// more of them at once than the engine writes into a connection between two pumps
    /// (`MAX_UNFLUSHED`): none is lost to the pumping in between.
    #[test]
    fn a_newcomer_gets_the_last_report_of_every_stream_at_once() {
        const PUBLISHERS: usize = 12;
        let mut net = sim::Net::new();
        let mut producers = Vec::new();
        for i in 0..PUBLISHERS {
            producers.push(net.publish_opus_from(peer::Flow::Relay));
            let report = SenderReport {
                ssrc: 1111,
                ntp_time: 0x1000_0000_0000_0000 + i as u64,
                rtp_time: 1_000 + i as u32,
                ..Default::default()
            };
            net.send_report(i, report);
        }
        net.run_until(|_| false, Duration::from_millis(100));

        let newcomer = net.join(peer::Flow::Ingest);
        for producer in producers {
            net.engine
                .handle_cmd(net.now, Cmd::Subscribe(newcomer as u64 + 1, producer));
        }
        sim::turn(&mut net.engine, net.now);
        net.answer_offer(newcomer);
        net.run_until(sim::connected(newcomer), Duration::from_secs(5));
        net.run_until(|_| false, Duration::from_millis(100));
        let (_, reports) = net.received(newcomer);
        let mut rtp_times: Vec<u32> = reports.iter().map(|r| r.rtp_time).collect();
        rtp_times.sort_unstable();
        let want: Vec<u32> = (0..PUBLISHERS as u32).map(|i| 1_000 + i).collect();
        assert_eq!(rtp_times, want, "one report per publisher: {reports:?}");
        let ssrcs: std::collections::HashSet<u32> = reports.iter().map(|r| r.ssrc).collect();
        assert_eq!(ssrcs.len(), PUBLISHERS, "each in its own stream's SSRC");
    }

    /// RTP datagrams a tap saw, as (payload type, sequence number): RTCP and everything
    /// that is not RTP are left out. SRTP leaves the header in the clear.
    fn rtp_header(datagram: &[u8]) -> Option<(u8, u16)> {
        let rtp = datagram.len() >= 12 && datagram[0] >> 6 == 2;
        let rtcp = (192..=223).contains(&datagram.get(1).copied().unwrap_or(0));
        (rtp && !rtcp).then(|| {
            (
                datagram[1] & 0x7f,
                u16::from_be_bytes([datagram[2], datagram[3]]),
            )
        })
    }

    /// A video packet lost between a publisher and the server is asked for, and once its
    /// retransmission has come, not again. webrtc-rs's NACK generator saw a retransmission as
    /// a packet of another stream, and asked for the packet every 100 ms until its retry
    /// limit: the publisher sent it 10 times, and the server forwarded it 10 times.
    #[test]
    fn a_lost_packet_is_asked_for_until_its_retransmission_comes() {
        use std::cell::RefCell;
        use std::rc::Rc;

        let mut net = sim::Net::new();
        let producer = net.publish(peer::Flow::Send, sim::Track::Vp8);
        let publisher = 0;
        let seen = Rc::new(RefCell::new(Vec::new()));
        let log = seen.clone();
        let mut dropped = false;
        net.tap = Some(Box::new(move |i, datagram| {
            let Some((payload_type, seq)) = rtp_header(datagram).filter(|_| i == publisher) else {
                return true;
            };
            log.borrow_mut().push((payload_type, seq));
            // The first time packet 3 is sent, it is lost.
            let lose = payload_type == 96 && seq == 3 && !dropped;
            dropped |= lose;
            !lose
        }));
        for _ in 1..=10 {
            net.send_rtp(publisher);
            net.run_until(|_| false, Duration::from_millis(30));
        }
        net.run_until(|_| false, Duration::from_secs(2));

        let seen = seen.borrow();
        let media: Vec<u16> = seen.iter().filter(|s| s.0 == 96).map(|s| s.1).collect();
        assert_eq!(
            media,
            (1..=10).collect::<Vec<u16>>(),
            "each packet sent once"
        );
        let retransmissions = seen.iter().filter(|s| s.0 == 97).count();
        assert_eq!(retransmissions, 1, "packet 3 asked for once: {seen:?}");
        // The retransmission reached the application: all 11 packets, 0 to 10, came.
        assert_eq!(producer.received.load(Ordering::Relaxed), 11);
    }

    /// A VP8 publisher (client 0) and a subscriber to it (client 1, its connection with
    /// `flow`), connected.
    fn video_and_subscriber(flow: peer::Flow) -> (sim::Net, Arc<Producer>) {
        let mut net = sim::Net::new();
        let producer = net.publish(peer::Flow::Send, sim::Track::Vp8);
        let subscriber = net.join(flow);
        net.subscribe(subscriber, producer.clone());
        net.answer_offer(subscriber);
        net.run_until(sim::connected(subscriber), Duration::from_secs(5));
        net.run_until(|_| false, Duration::from_millis(100));
        (net, producer)
    }

    /// A packet that reaches the server twice (the second time as a retransmission: asked for
    /// after a delay, or sent again by a publisher probing its bandwidth with recent media) is
    /// forwarded once. A subscriber's SRTP would drop the second copy anyway, after it had
    /// cost the server and the subscriber's link.
    #[test]
    fn a_packet_that_comes_twice_is_forwarded_once() {
        let (mut net, producer) = video_and_subscriber(peer::Flow::Receive);
        let (publisher, subscriber) = (0, 1);
        let _ = net.received(subscriber);

        let before = net.engine.forwarded();
        for _ in 1..=5 {
            net.send_rtp(publisher);
        }
        net.send_rtx_copy(publisher, 3);
        net.send_rtx_copy(publisher, 4);
        net.run_until(|_| false, Duration::from_millis(100));
        let (rtp, _) = net.received(subscriber);
        let seqs: Vec<u16> = rtp.iter().map(|p| p.header.sequence_number).collect();
        assert_eq!(seqs.len(), 5, "{seqs:?}");
        assert_eq!(
            net.engine.forwarded() - before,
            5,
            "packets 3 and 4 forwarded once"
        );
        // The server did get the copies: they are repairs it had no need of.
        assert_eq!(producer.received.load(Ordering::Relaxed), 1 + 5 + 2);
    }

    /// A subscriber that asks for the same packet again and again (a NACK generator that does
    /// not see retransmissions arrive, or a hostile client) gets it at most three more times.
    #[test]
    fn a_packet_asked_for_again_and_again_is_sent_again_three_times() {
        // A subscriber whose connection has no NACK generator: the test's NACKs are its only ones.
        let (mut net, _) = video_and_subscriber(peer::Flow::Relay);
        let (publisher, subscriber) = (0, 1);
        for _ in 1..=5 {
            net.send_rtp(publisher);
        }
        net.run_until(|_| false, Duration::from_millis(20));
        let (rtp, _) = net.received(subscriber);
        assert_eq!(rtp.len(), 5);
        let (ssrc, seq) = (rtp[2].header.ssrc, rtp[2].header.sequence_number);

        for _ in 0..6 {
            net.send_nack(subscriber, ssrc, &[seq, seq]);
            net.run_until(|_| false, Duration::from_millis(20));
        }
        let (rtp, _) = net.received(subscriber);
        let got: Vec<(u32, u16)> = rtp
            .iter()
            .map(|p| (p.header.ssrc, p.header.sequence_number))
            .collect();
        assert_eq!(got, [(ssrc, seq); 3]);
    }

    /// An answer on `subscribe` that does not parse is refused with `bad_sdp`, and the server
    /// offers again; the client's next answer connects.
    #[test]
    fn an_unparsable_subscribe_answer_is_refused_and_offered_again() {
        let mut net = sim::Net::new();
        let producer = net.publish_opus();
        let subscriber = net.join(peer::Flow::Receive);
        net.subscribe(subscriber, producer);
        let _first = net.expect(subscriber, sim::offer);
        net.send_answer(subscriber, "this is not sdp".into());
        let code = net.expect(subscriber, |m| match m {
            ServerMsg::Error { code, .. } => Some(code),
            _ => None,
        });
        assert_eq!(code, ErrorCode::BadSdp);
        net.answer_offer(subscriber);
        net.run_until(sim::connected(subscriber), Duration::from_secs(5));
        assert!(net.clients[subscriber].connected_at.is_some());
    }
}
