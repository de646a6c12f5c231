//! A lighter client of our protocol, for load runs: the same negotiation and the same synthetic
//! media as [`crate::client`], on webrtc-rs's sans-IO `rtc` core. Each participant is one task
//! that owns its WebSocket, its two peer connections and their two UDP sockets, and runs them
//! in one loop: no task, channel or lock per connection or track, as in the server's
//! single-socket plane. The generator shares the server's 2 cores, so every microsecond it
//! spends per packet is one the server waits for a core.
//!
//! [`crate::client`] stays the client of the integration tests (it can also send NACKs and
//! keyframe requests on demand) and of the Janus adapter; both load a server the same way, from
//! the same [`Schedule`].

use std::collections::HashMap;
use std::net::SocketAddr;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use anyhow::{Context, bail};
use bytes::BytesMut;
use futures_util::StreamExt;
use roundtable_peer::{self as peer, PeerNet};
use rtc::peer_connection::RTCPeerConnection;
use rtc::peer_connection::event::{RTCPeerConnectionEvent, RTCTrackEvent};
use rtc::peer_connection::message::{RTCMessage, TaggedRTCMessage};
use rtc::peer_connection::sdp::RTCSessionDescription;
use rtc::peer_connection::state::RTCIceConnectionState;
use rtc::rtp_transceiver::RTCRtpSenderId;
use rtc::rtp_transceiver::rtp_sender::RtpCodecKind;
use rtc::sansio::Protocol;
use rtc::shared::{TaggedBytesMut, TransportContext, TransportProtocol};
use signaling::wire::{self, ClientMsg, MediaKind, PcRole, ServerMsg};
use tokio::net::UdpSocket;
use tokio::sync::oneshot;
use tokio::task::JoinHandle;
use tokio_tungstenite::tungstenite::Message;

use crate::client::media_log::Stream;
use crate::client::publisher::{Schedule, TrackSpec, clock_rate, rtp_packet};
use crate::client::{MediaLog, PublishPlan, WAIT, Ws, ws};
use crate::stats::now_ns;

/// Largest datagram read: more than any MTU.
const MAX_DATAGRAM: usize = 2048;

/// A joined participant on the sans-IO client.
pub struct SansioClient {
    /// Its participant id.
    pub id: String,
    /// What it received.
    pub media: Arc<MediaLog>,
    /// When it started to open its WebSocket ([`now_ns`] clock).
    pub opened_at_ns: u64,
    /// When its publish answer arrived.
    pub answered_at_ns: Option<u64>,
    /// RTP packets it has sent, over all its tracks.
    pub sent: Arc<AtomicU64>,
    stop: oneshot::Sender<()>,
    task: JoinHandle<anyhow::Result<()>>,
}

impl SansioClient {
    /// Join `room` as `name`, publish what `plan` says, and return once the publish answer is
    /// applied; the participant then runs on its own task until [`SansioClient::drop_connection`].
    pub async fn join(
        addr: SocketAddr,
        room: &str,
        name: &str,
        plan: PublishPlan,
    ) -> anyhow::Result<Self> {
        let opened_at_ns = now_ns();
        let (ws, id, _) = ws::join(addr, room, name).await?;
        let now = Instant::now();
        let mut p = Participant {
            ws,
            publish: Conn::new(now, peer::Flow::Send).await?,
            subscribe: Conn::new(now, peer::Flow::Receive).await?,
            media: Arc::new(MediaLog::new(false)),
            sent: Arc::default(),
            tracks: Vec::new(),
            incoming: HashMap::new(),
            answered_at_ns: None,
            buf: vec![0; MAX_DATAGRAM],
        };
        p.offer(&id, plan).await?;
        tokio::time::timeout(WAIT, p.run(None))
            .await
            .context("timed out waiting for the publish answer")??;
        let (media, sent, answered_at_ns) = (p.media.clone(), p.sent.clone(), p.answered_at_ns);
        let (stop, stopped) = oneshot::channel();
        let task = tokio::spawn(async move { p.run(Some(stopped)).await });
        Ok(SansioClient {
            id,
            media,
            opened_at_ns,
            answered_at_ns,
            sent,
            stop,
            task,
        })
    }

    /// Close everything without a `leave` (like a closed tab). Returns what ended the
    /// participant's loop early, if something did.
    pub async fn drop_connection(self) -> anyhow::Result<()> {
        let _ = self.stop.send(());
        self.task.await?
    }
}

/// One peer connection and its socket.
struct Conn {
    pc: RTCPeerConnection,
    socket: UdpSocket,
    local: SocketAddr,
}

impl Conn {
    async fn new(now: Instant, flow: peer::Flow) -> anyhow::Result<Self> {
        let net = PeerNet::loopback();
        let socket = UdpSocket::bind(SocketAddr::new(net.bind_ip, 0)).await?;
        let local = socket.local_addr()?;
        let pc = peer::build_sansio(now, &net, peer::Side::Client, flow, local, None)?;
        Ok(Conn { pc, socket, local })
    }

    /// Read every datagram waiting in the socket into the connection.
    fn read_all(&mut self, buf: &mut [u8]) -> anyhow::Result<()> {
        loop {
            match self.socket.try_recv_from(buf) {
                Ok((n, from)) => {
                    let msg = TaggedBytesMut {
                        now: Instant::now(),
                        transport: TransportContext {
                            local_addr: self.local,
                            peer_addr: from,
                            transport_protocol: TransportProtocol::UDP,
                            ecn: None,
                        },
                        message: BytesMut::from(&buf[..n]),
                    };
                    // A datagram the connection refuses (a stray, a replay) is not an error of
                    // the run; the loss statistics show what it cost.
                    let _ = self.pc.handle_read(msg);
                }
                Err(e) if e.kind() == std::io::ErrorKind::WouldBlock => return Ok(()),
                Err(e) => return Err(e.into()),
            }
        }
    }

    fn on_event(&mut self, now: Instant, event: &RTCPeerConnectionEvent) {
        if let RTCPeerConnectionEvent::OnIceConnectionStateChangeEvent(
            RTCIceConnectionState::Connected,
        ) = event
        {
            // As the DTLS client, webrtc-rs queues its ClientHello when ICE connects but sends
            // it only from its next timer, which is the next connectivity check (25 ms). Run
            // the timer now: browsers send their hello at once, and the server keeps a hello
            // that arrives before its own side of ICE has connected.
            let _ = self.pc.handle_timeout(now);
        }
    }

    /// Send what the connection has to send. A full socket buffer drops, as on the server.
    fn write_all(&mut self) {
        while let Some(out) = self.pc.poll_write() {
            let _ = self
                .socket
                .try_send_to(&out.message, out.transport.peer_addr);
        }
    }
}

/// One of the participant's published tracks.
struct OutTrack {
    sender: RTCRtpSenderId,
    track_id: String,
    kind: MediaKind,
    mime: &'static str,
    ssrc: u32,
    schedule: Schedule,
    /// Known once the answer is applied; nothing is sent before.
    payload_type: Option<u8>,
    next_at: Option<Instant>,
    keyframe_wanted: bool,
}

/// A participant's state, owned by its task.
struct Participant {
    ws: Ws,
    publish: Conn,
    subscribe: Conn,
    media: Arc<MediaLog>,
    sent: Arc<AtomicU64>,
    tracks: Vec<OutTrack>,
    /// Received tracks by webrtc-rs's track id.
    incoming: HashMap<String, Arc<Stream>>,
    answered_at_ns: Option<u64>,
    buf: Vec<u8>,
}

impl Participant {
    /// Add `plan`'s tracks to the publish connection and send its offer.
    async fn offer(&mut self, stream_id: &str, plan: PublishPlan) -> anyhow::Result<()> {
        let start = Instant::now();
        for spec in TrackSpec::all(stream_id, plan) {
            let track_id = spec.track.track_id().clone();
            let transceiver = self
                .publish
                .pc
                .add_transceiver_from_track(spec.track, Some(spec.init))?;
            self.tracks.push(OutTrack {
                sender: RTCRtpSenderId::from(transceiver),
                track_id,
                kind: spec.kind,
                mime: spec.mime,
                ssrc: spec.ssrc,
                schedule: Schedule::new(spec.plan, clock_rate(spec.kind), start),
                payload_type: None,
                next_at: None,
                keyframe_wanted: false,
            });
        }
        let offer = self.publish.pc.create_offer(None)?;
        self.publish
            .pc
            .set_local_description(Instant::now(), offer.clone())?;
        self.ws
            .send(&ClientMsg::Offer {
                pc: PcRole::Publish,
                sdp: offer.sdp,
            })
            .await
    }

    /// The participant's loop. Without `stop`, it returns once the publish answer is applied.
    async fn run(&mut self, mut stop: Option<oneshot::Receiver<()>>) -> anyhow::Result<()> {
        loop {
            if stop.is_none() && self.answered_at_ns.is_some() {
                return Ok(());
            }
            let deadline = self.deadline();
            tokio::select! {
                frame = self.ws.socket.next() => match frame {
                    Some(Ok(Message::Text(text))) => {
                        let msg = wire::decode_server(text.as_str())?;
                        self.on_signal(msg).await?;
                    }
                    Some(Ok(Message::Close(_))) | None => bail!("the server closed the WebSocket"),
                    Some(Ok(_)) => {}
                    Some(Err(e)) => bail!("WebSocket: {e}"),
                },
                ready = self.publish.socket.readable() => {
                    ready?;
                    self.publish.read_all(&mut self.buf)?;
                }
                ready = self.subscribe.socket.readable() => {
                    ready?;
                    self.subscribe.read_all(&mut self.buf)?;
                }
                () = tokio::time::sleep_until(deadline.into()) => self.on_timer(Instant::now()),
                _ = async { stop.as_mut().unwrap().await }, if stop.is_some() => return Ok(()),
            }
            self.drain();
        }
    }

    /// The earliest of the connections' timers and the tracks' next ticks.
    fn deadline(&mut self) -> Instant {
        let far = Instant::now() + Duration::from_secs(1);
        [
            self.publish.pc.poll_timeout(),
            self.subscribe.pc.poll_timeout(),
        ]
        .into_iter()
        .chain(self.tracks.iter().map(|t| t.next_at))
        .flatten()
        .fold(far, Instant::min)
    }

    fn on_timer(&mut self, now: Instant) {
        for conn in [&mut self.publish, &mut self.subscribe] {
            if conn.pc.poll_timeout().is_some_and(|at| at <= now) {
                let _ = conn.pc.handle_timeout(now);
            }
        }
        for t in &mut self.tracks {
            let (Some(at), Some(payload_type)) = (t.next_at, t.payload_type) else {
                continue;
            };
            if at > now {
                continue;
            }
            let wanted = std::mem::take(&mut t.keyframe_wanted);
            for planned in t.schedule.tick(now, wanted) {
                let packet = rtp_packet(t.ssrc, payload_type, planned);
                let Some(mut sender) = self.publish.pc.rtp_sender(t.sender) else {
                    break;
                };
                if sender.write_rtp(now, packet).is_ok() {
                    self.sent.fetch_add(1, Ordering::Relaxed);
                }
            }
            // A late tick is skipped, not caught up, as the other client's interval does: a
            // saturated generator shows as fewer packets sent, never as bursts.
            let period = t.schedule.period();
            let mut next = at + period;
            if next <= now {
                next = now + period;
            }
            t.next_at = (!t.schedule.done()).then_some(next);
        }
    }

    async fn on_signal(&mut self, msg: ServerMsg) -> anyhow::Result<()> {
        let now = Instant::now();
        match msg {
            ServerMsg::Answer {
                pc: PcRole::Publish,
                sdp,
            } => {
                let answer = RTCSessionDescription::answer(sdp)?;
                self.publish.pc.set_remote_description(now, answer)?;
                self.answered_at_ns = Some(now_ns());
                for t in &mut self.tracks {
                    let Some(mut sender) = self.publish.pc.rtp_sender(t.sender) else {
                        continue;
                    };
                    let codecs = &sender.get_parameters().rtp_parameters.codecs;
                    let codec = codecs
                        .iter()
                        .find(|c| c.rtp_codec.mime_type.eq_ignore_ascii_case(t.mime))
                        .with_context(|| format!("{} not negotiated", t.mime))?;
                    t.payload_type = Some(codec.payload_type);
                    t.next_at = Some(t.schedule.first_tick(now));
                }
            }
            ServerMsg::Offer {
                pc: PcRole::Subscribe,
                sdp,
            } => {
                let pc = &mut self.subscribe.pc;
                pc.set_remote_description(now, RTCSessionDescription::offer(sdp)?)?;
                let answer = pc.create_answer(None)?;
                pc.set_local_description(now, answer.clone())?;
                let msg = ClientMsg::Answer {
                    pc: PcRole::Subscribe,
                    sdp: answer.sdp,
                };
                self.ws.send(&msg).await?;
            }
            ServerMsg::Candidate { pc, candidate } if !candidate.candidate.is_empty() => {
                let conn = match pc {
                    PcRole::Publish => &mut self.publish,
                    PcRole::Subscribe => &mut self.subscribe,
                };
                conn.pc
                    .add_remote_candidate(peer::candidate_from_wire(candidate))?;
            }
            ServerMsg::Error { code, message } => bail!("server error {code:?}: {message}"),
            _ => {}
        }
        Ok(())
    }

    /// Everything the connections produced: events, packets read, datagrams to send.
    fn drain(&mut self) {
        let now = Instant::now();
        while let Some(event) = self.subscribe.pc.poll_event() {
            match event {
                RTCPeerConnectionEvent::OnTrack(RTCTrackEvent::OnOpen(init)) => {
                    let kind = match self.subscribe.pc.rtp_receiver(init.receiver_id) {
                        Some(r) if r.track().kind() == RtpCodecKind::Audio => MediaKind::Audio,
                        _ => MediaKind::Video,
                    };
                    // The server names each forwarded track's stream after its publisher.
                    let publisher = init.stream_ids.first().cloned().unwrap_or_default();
                    let stream = self.media.stream(&publisher, kind);
                    self.incoming.insert(init.track_id, stream);
                }
                event => self.subscribe.on_event(now, &event),
            }
        }
        while let Some(TaggedRTCMessage { message, .. }) = self.subscribe.pc.poll_read() {
            if let RTCMessage::RtpPacket(track, packet) = message
                && let Some(stream) = self.incoming.get(&track)
            {
                stream.record(&self.media, packet.header.sequence_number, &packet.payload);
            }
        }
        while let Some(event) = self.publish.pc.poll_event() {
            self.publish.on_event(now, &event);
        }
        while let Some(TaggedRTCMessage { message, .. }) = self.publish.pc.poll_read() {
            // Only keyframe requests reach us: answer each with a keyframe, as an encoder does.
            if let RTCMessage::RtcpPacket(track, _) = message
                && let Some(t) = self.tracks.iter_mut().find(|t| t.track_id == track)
            {
                t.keyframe_wanted = true;
                self.media.keyframe_requested(t.kind);
            }
        }
        self.publish.write_all();
        self.subscribe.write_all();
    }
}
