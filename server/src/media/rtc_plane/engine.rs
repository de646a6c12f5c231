//! The single-socket plane's state machine: every peer connection of every session, the
//! demultiplexer in front of them, and the forwarding table between them. No IO and no clock:
//! the loop in `mod.rs` feeds it datagrams, commands and the time, and drains what it sends.
//!
//! Demultiplexing: a datagram from an address already seen goes to that address's
//! connection. A STUN message carries `USERNAME = <our ufrag>:<their ufrag>`; every connection
//! has its own ufrag, so a STUN message is routed by it (and teaches us its address). Anything
//! else from an unknown address is dropped.
//!
//! Forwarding: RTP read from a publisher's connection is rewritten (SSRC, payload type) and
//! written straight into each subscriber's connection, whose encrypted output joins the send
//! queue. Nothing is queued per consumer and nothing waits: a full socket buffer drops. A
//! publisher's sender reports go the same way, each subscriber's with its SSRC and counts;
//! subscribers' connections make none of their own (`peer::Flow::Relay`).

use std::collections::{HashMap, VecDeque};
use std::net::SocketAddr;
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Instant;

use bytes::BytesMut;
use rtc::peer_connection::RTCPeerConnection;
use rtc::peer_connection::event::{RTCPeerConnectionEvent, RTCTrackEvent};
use rtc::peer_connection::message::{RTCMessage, TaggedRTCMessage};
use rtc::peer_connection::sdp::{RTCSdpType, RTCSessionDescription};
use rtc::peer_connection::state::{RTCIceConnectionState, RTCPeerConnectionState};
use rtc::rtcp::payload_feedbacks::picture_loss_indication::PictureLossIndication;
use rtc::rtcp::sender_report::SenderReport;
use rtc::rtp_transceiver::rtp_sender::{
    RTCRtpCodingParameters, RTCRtpEncodingParameters, RtpCodecKind,
};
use rtc::rtp_transceiver::{
    RTCRtpReceiverId, RTCRtpSenderId, RTCRtpTransceiverDirection, RTCRtpTransceiverId,
};
use rtc::sansio::Protocol;
use rtc::shared::{TaggedBytesMut, TransportContext, TransportProtocol};
use signaling::wire::{ErrorCode, IceCandidate, MediaKind, PcRole, Reject, ServerMsg, TrackInfo};
use tokio::sync::mpsc::UnboundedSender;

use super::super::fanout::Producer;
use super::super::peer;
use super::super::{
    MediaEvent, Negotiation, Seen, SessionCtx, Signal, pick_payload_type, rtp_kind,
    strip_extensions,
};
use super::{Counters, PcFactory};

/// A session's id in the engine.
pub type SessionId = u64;
type PcId = u64;
/// A producer's key: its `serial`. Track ids will not do: they are unique only in their room.
type ProducerKey = u64;

/// Remote addresses remembered per connection: ICE tries a few (a candidate per interface and
/// family, reflexive and relayed ones); the map must not grow without bound.
const MAX_ADDRS_PER_PC: usize = 16;

/// What the loop hands the engine.
pub enum Cmd {
    /// A participant joined: build its two connections.
    Open {
        /// Its id.
        id: SessionId,
        /// Where to talk back.
        ctx: SessionCtx,
        /// Negotiation messages queued for it, decremented as they are handled.
        in_flight: Arc<AtomicUsize>,
    },
    /// A negotiation message from the client.
    Signal(SessionId, Signal),
    /// Forward this producer to the session.
    Subscribe(SessionId, Arc<Producer>),
    /// Stop forwarding the producer with this track id.
    Unsubscribe(SessionId, String),
    /// Tear the session down.
    Close(SessionId),
}

/// A datagram to send.
pub struct Transmit {
    /// Destination.
    pub to: SocketAddr,
    /// Bytes.
    pub bytes: BytesMut,
}

struct Pc {
    rtc: RTCPeerConnection,
    session: SessionId,
    role: PcRole,
    ufrag: String,
    addrs: Vec<SocketAddr>,
    deadline: Option<Instant>,
    /// Listed in `stale_timers`: its timer is re-read at the end of the turn.
    timer_stale: bool,
    /// Listed in `to_flush`: its datagrams are collected at the end of the turn.
    flush_pending: bool,
    /// Packets written into its pipeline since it was last flushed.
    unflushed: u8,
    /// ICE has connected: webrtc-rs passes DTLS on from then on.
    ice_connected: bool,
    /// DTLS datagrams that arrived before that, replayed when it happens (see
    /// [`MAX_EARLY_DTLS`]).
    early_dtls: Vec<TaggedBytesMut>,
    /// A remote description has been applied: webrtc-rs knows the client's ICE credentials.
    remote_known: bool,
    /// ICE checks that arrived before that, replayed when it happens (see
    /// [`MAX_EARLY_STUN`]).
    early_stun: Vec<TaggedBytesMut>,
}

impl Pc {
    /// A remote description has just been applied: hand webrtc-rs the checks that came early.
    fn remote_applied(&mut self) {
        self.remote_known = true;
        for msg in std::mem::take(&mut self.early_stun) {
            if let Err(e) = self.rtc.handle_read(msg) {
                tracing::trace!(%e, "early ICE check refused");
            }
        }
    }
}

/// DTLS datagrams kept per connection until its ICE connects. On `subscribe` the client is
/// ICE's controlled side: it connects when our nominating check reaches it, before its answer
/// reaches us, and sends its ClientHello at once. webrtc-rs drops DTLS that arrives before its
/// own side has connected, and the client resends only after its retransmission timer
/// (Chrome's starts at 50 ms, webrtc-rs's at 1 s). A hello fits in a datagram or two; a few
/// more allow for retransmissions.
const MAX_EARLY_DTLS: usize = 4;

/// ICE checks kept per connection until its remote description is applied. On `subscribe`
/// the client checks as soon as it has made its answer, and the checks race the answer here:
/// webrtc-rs drops a check that comes before it knows the client's credentials. A browser
/// whose candidates are mDNS names (Chrome's default) can be reached only at the address its
/// checks come from, so a dropped check cost a join the client's next one (Chrome paces them
/// about 50 ms apart). Answered late, the kept check gives that address at once.
const MAX_EARLY_STUN: usize = 4;

/// Packets a connection takes into its pipeline before they are pumped through, even in the
/// middle of a turn: forwarded media and the sender reports written on a subscriber's behalf.
/// webrtc-rs's handlers keep a queue each and never shrink it, so a burst left every
/// subscriber with seven queues sized for it: a keyframe (20 packets in one read batch), or
/// the reports a newcomer gets for every track at once (39 in a room of 40, which held 27 KB
/// per queue). Pumping every 8 packets keeps them small, and costs nothing in a turn of fewer.
const MAX_UNFLUSHED: u8 = 8;

/// One published track as the engine forwards it.
struct Published {
    producer: Arc<Producer>,
    publisher_pc: PcId,
    receiver: RTCRtpReceiverId,
    media_ssrc: u32,
    consumers: Vec<ConsumerRef>,
    /// Packets and payload octets forwarded from this track so far (each packet once,
    /// whatever the number of subscribers), for the subscribers' sender reports.
    sent: Sent,
    /// The publisher's last sender report: its clock mapping, sent to each new subscriber.
    report: Option<ClockMapping>,
    /// The packets that came lately, so that none is forwarded twice.
    seen: Seen,
}

impl Published {
    /// Into `into` (cleared first): the consumers that receive the track now, their answer
    /// applied.
    fn active_consumers(&self, into: &mut Vec<ConsumerRef>) {
        into.clear();
        into.extend(
            self.consumers
                .iter()
                .filter(|c| c.payload_type != 0)
                .copied(),
        );
    }
}

/// RTP packets and payload octets, wrapping as RTCP's 32-bit counts do.
#[derive(Clone, Copy, Default)]
struct Sent {
    packets: u32,
    octets: u32,
}

/// A sender report's mapping of the publisher's wall clock to its RTP clock.
#[derive(Clone, Copy)]
struct ClockMapping {
    ntp_time: u64,
    rtp_time: u32,
}

#[derive(Clone, Copy)]
struct ConsumerRef {
    pc: PcId,
    ssrc: u32,
    /// 0 until the subscriber's answer (and connection) make the payload type known.
    payload_type: u8,
    /// The track's [`Sent`] when this subscriber started to receive it: its own counts are
    /// what came since.
    base: Sent,
}

impl ConsumerRef {
    /// The sender report this subscriber gets for `mapping`: the publisher's clock, in this
    /// subscriber's SSRC, with what was sent to it.
    fn report(&self, sent: Sent, mapping: ClockMapping) -> SenderReport {
        SenderReport {
            ssrc: self.ssrc,
            ntp_time: mapping.ntp_time,
            rtp_time: mapping.rtp_time,
            packet_count: sent.packets.wrapping_sub(self.base.packets),
            octet_count: sent.octets.wrapping_sub(self.base.octets),
            reports: Vec::new(),
            profile_extensions: Default::default(),
        }
    }
}

/// A producer forwarded to this session.
struct Down {
    producer: ProducerKey,
    sender: RTCRtpSenderId,
    active: bool,
}

struct Session {
    ctx: SessionCtx,
    in_flight: Arc<AtomicUsize>,
    publish: PcId,
    subscribe: PcId,
    /// The publisher's tracks as webrtc names them, once opened: receiver and SSRC.
    opened: HashMap<String, (RTCRtpReceiverId, u32)>,
    /// Webrtc's track id → the producer it feeds.
    published: HashMap<String, ProducerKey>,
    /// Our track id (unique within the room) → what this session receives of it.
    downstream: HashMap<String, Down>,
    next_track: u32,
    negotiating: bool,
    dirty: bool,
    subscribe_connected: bool,
}

/// See the module docs.
pub struct Engine {
    factory: PcFactory,
    local_addr: SocketAddr,
    counters: Arc<Counters>,
    sessions: HashMap<SessionId, Session>,
    /// Boxed: a connection is about 9 KB, and a map of them by value kept that for every
    /// empty slot and moved them all each time it grew.
    pcs: HashMap<PcId, Box<Pc>>,
    by_ufrag: HashMap<String, PcId>,
    by_addr: HashMap<SocketAddr, PcId>,
    producers: HashMap<ProducerKey, Published>,
    next_pc: PcId,
    transmits: VecDeque<Transmit>,
    /// Connections whose timer may have moved since it was last read.
    stale_timers: Vec<PcId>,
    /// Sessions whose subscribe side changed and may need an offer, oldest first.
    to_negotiate: VecDeque<SessionId>,
    /// Scratch for forwarding, reused.
    scratch: Vec<ConsumerRef>,
    /// Scratch for timers, reused.
    due: Vec<PcId>,
    /// Connections with writes to collect at the end of the turn.
    to_flush: Vec<PcId>,
    /// RTP packets written to subscribers since the engine started.
    forwarded: u64,
}

impl Engine {
    /// An engine whose connections all advertise `local_addr`.
    pub fn new(factory: PcFactory, local_addr: SocketAddr, counters: Arc<Counters>) -> Self {
        Engine {
            factory,
            local_addr,
            counters,
            sessions: HashMap::new(),
            pcs: HashMap::new(),
            by_ufrag: HashMap::new(),
            by_addr: HashMap::new(),
            producers: HashMap::new(),
            next_pc: 1,
            transmits: VecDeque::new(),
            stale_timers: Vec::new(),
            to_negotiate: VecDeque::new(),
            scratch: Vec::new(),
            due: Vec::new(),
            to_flush: Vec::new(),
            forwarded: 0,
        }
    }

    /// RTP packets written to subscribers so far (one per copy). Each goes out with the
    /// loop's next send, once [`Engine::flush`] has collected it.
    pub fn forwarded(&self) -> u64 {
        self.forwarded
    }

    /// Handle one command.
    pub fn handle_cmd(&mut self, now: Instant, cmd: Cmd) {
        let session = match &cmd {
            Cmd::Open { id, .. }
            | Cmd::Signal(id, _)
            | Cmd::Subscribe(id, _)
            | Cmd::Unsubscribe(id, _)
            | Cmd::Close(id) => *id,
        };
        self.guarded(session, |engine| engine.handle_cmd_inner(now, cmd));
    }

    fn handle_cmd_inner(&mut self, now: Instant, cmd: Cmd) {
        match cmd {
            Cmd::Open { id, ctx, in_flight } => self.open(now, id, ctx, in_flight),
            Cmd::Signal(id, signal) => {
                let Some(session) = self.sessions.get(&id) else {
                    return;
                };
                session.in_flight.fetch_sub(1, Ordering::Relaxed);
                if let Err(reject) = self.signal(now, id, signal) {
                    self.send(id, reject.into());
                }
            }
            Cmd::Subscribe(id, producer) => {
                if let Err(reject) = self.subscribe(id, producer) {
                    self.send(id, reject.into());
                }
            }
            Cmd::Unsubscribe(id, track) => self.unsubscribe(id, &track),
            Cmd::Close(id) => self.close(id),
        }
    }

    /// Handle one datagram from `from`.
    pub fn handle_datagram(&mut self, now: Instant, from: SocketAddr, bytes: &[u8]) {
        let Some(pc_id) = self.route(from, bytes) else {
            self.counters.unrouted.fetch_add(1, Ordering::Relaxed);
            return;
        };
        let Some(pc) = self.pcs.get(&pc_id) else {
            return;
        };
        let session = pc.session;
        self.guarded(session, |engine| {
            engine.read_datagram(now, pc_id, from, bytes)
        });
    }

    fn read_datagram(&mut self, now: Instant, pc_id: PcId, from: SocketAddr, bytes: &[u8]) {
        let Some(pc) = self.pcs.get_mut(&pc_id) else {
            return;
        };
        let msg = TaggedBytesMut {
            now,
            transport: TransportContext {
                local_addr: self.local_addr,
                peer_addr: from,
                transport_protocol: TransportProtocol::UDP,
                ecn: None,
            },
            message: BytesMut::from(bytes),
        };
        // RFC 7983: a first byte of 20 to 63 is DTLS, of 0 to 3 STUN.
        let first = bytes.first().copied().unwrap_or_default();
        if !pc.ice_connected && (20..=63).contains(&first) {
            if pc.early_dtls.len() < MAX_EARLY_DTLS {
                pc.early_dtls.push(msg);
            }
            return;
        }
        if !pc.remote_known && first <= 3 {
            if pc.early_stun.len() < MAX_EARLY_STUN {
                pc.early_stun.push(msg);
            }
            return;
        }
        if let Err(e) = pc.rtc.handle_read(msg) {
            tracing::trace!(%e, %from, "datagram refused");
        }
        self.drain(now, pc_id);
    }

    /// Run every connection's timers that are due.
    pub fn handle_timeout(&mut self, now: Instant) {
        let mut due = std::mem::take(&mut self.due);
        due.extend(
            self.pcs
                .iter()
                .filter(|(_, pc)| pc.deadline.is_some_and(|d| d <= now))
                .map(|(id, _)| *id),
        );
        for &id in &due {
            let Some(session) = self.pcs.get(&id).map(|pc| pc.session) else {
                continue;
            };
            self.guarded(session, |engine| {
                if let Some(pc) = engine.pcs.get_mut(&id) {
                    if let Err(e) = pc.rtc.handle_timeout(now) {
                        tracing::debug!(%e, "peer connection timer");
                    }
                    pc.deadline = None;
                }
                engine.mark_stale(id);
                engine.drain(now, id);
            });
        }
        due.clear();
        self.due = due;
    }

    /// Run `f` for `session`; if it panics (a bug, ours or webrtc-rs's, met by some input),
    /// close that session and carry on, so that one participant's bad packet or SDP cannot
    /// stop everyone's media.
    fn guarded(&mut self, session: SessionId, f: impl FnOnce(&mut Self)) {
        let outcome = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| f(self)));
        if outcome.is_err() {
            tracing::error!(session, "media session panicked; closing it");
            self.send(
                session,
                Reject::new(ErrorCode::Internal, "media failed; rejoin to continue").into(),
            );
            let _ = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| self.close(session)));
        }
    }

    fn mark_stale(&mut self, id: PcId) {
        if let Some(pc) = self.pcs.get_mut(&id)
            && !pc.timer_stale
        {
            pc.timer_stale = true;
            self.stale_timers.push(id);
        }
    }

    /// Send the oldest offer on `subscribe` that changes call for; false if none was due. An
    /// offer in a room of 40 costs about a millisecond, so the loop sends them a few at a time
    /// between reads of the socket rather than all at once.
    pub fn negotiate_one(&mut self, now: Instant) -> bool {
        while let Some(id) = self.to_negotiate.pop_front() {
            let mut offered = false;
            self.guarded(id, |engine| match engine.renegotiate(now, id) {
                Ok(sent) => offered = sent,
                Err(reject) => engine.send(id, reject.into()),
            });
            if offered {
                return true;
            }
        }
        false
    }

    /// Whether [`Engine::negotiate_one`] may have an offer to send.
    pub fn negotiations_pending(&self) -> bool {
        !self.to_negotiate.is_empty()
    }

    /// Finish a turn of the loop: collect every connection's output, and re-read the timers
    /// that moved. Call before [`Engine::poll_timeout`].
    pub fn end_turn(&mut self) {
        self.flush();
        for id in self.stale_timers.drain(..) {
            if let Some(pc) = self.pcs.get_mut(&id) {
                pc.deadline = pc.rtc.poll_timeout();
                pc.timer_stale = false;
            }
        }
    }

    /// Collect what every connection written to since the last flush has to send, for
    /// [`Engine::poll_transmit`]. The loop calls it within a long turn too, so that forwarded
    /// packets go out without waiting for the rest of the turn's work.
    pub fn flush(&mut self) {
        let mut to_flush = std::mem::take(&mut self.to_flush);
        for &id in &to_flush {
            let Some(pc) = self.pcs.get_mut(&id) else {
                continue;
            };
            pc.flush_pending = false;
            let session = pc.session;
            self.guarded(session, |engine| engine.flush_writes(id));
        }
        to_flush.clear();
        self.to_flush = to_flush;
    }

    /// The earliest timer of any connection.
    pub fn poll_timeout(&self) -> Option<Instant> {
        self.pcs.values().filter_map(|pc| pc.deadline).min()
    }

    /// The next datagram to send.
    pub fn poll_transmit(&mut self) -> Option<Transmit> {
        self.transmits.pop_front()
    }

    /// Close everything (the plane is going away).
    pub fn shutdown(&mut self) {
        let ids: Vec<SessionId> = self.sessions.keys().copied().collect();
        for id in ids {
            self.close(id);
        }
    }

    fn route(&mut self, from: SocketAddr, bytes: &[u8]) -> Option<PcId> {
        if rtc::stun::message::is_stun_message(bytes)
            && let Some(ufrag) = stun_local_ufrag(bytes)
        {
            let id = *self.by_ufrag.get(&ufrag)?;
            self.learn_addr(id, from);
            return Some(id);
        }
        self.by_addr.get(&from).copied()
    }

    fn learn_addr(&mut self, id: PcId, addr: SocketAddr) {
        if self.by_addr.get(&addr) == Some(&id) {
            return;
        }
        let Some(pc) = self.pcs.get_mut(&id) else {
            return;
        };
        if pc.addrs.len() >= MAX_ADDRS_PER_PC {
            // The oldest goes: ICE tries candidates in turn, and the one that works is among
            // the last heard from.
            let oldest = pc.addrs.remove(0);
            if self.by_addr.get(&oldest) == Some(&id) {
                self.by_addr.remove(&oldest);
            }
        }
        pc.addrs.push(addr);
        if let Some(old) = self.by_addr.insert(addr, id)
            && let Some(old_pc) = self.pcs.get_mut(&old)
        {
            old_pc.addrs.retain(|a| *a != addr);
        }
    }

    fn open(&mut self, now: Instant, id: SessionId, ctx: SessionCtx, in_flight: Arc<AtomicUsize>) {
        let publish = self.new_pc(now, id, PcRole::Publish);
        let subscribe = self.new_pc(now, id, PcRole::Subscribe);
        let (publish, subscribe) = match (publish, subscribe) {
            (Ok(p), Ok(s)) => (p, s),
            (p, s) => {
                let mut err = String::new();
                for r in [p, s] {
                    match r {
                        Ok(pc) => self.drop_pc(pc),
                        Err(e) => err = e,
                    }
                }
                tracing::warn!(participant = %ctx.participant, %err, "media session failed to start");
                let msg = Reject::new(ErrorCode::MediaUnavailable, format!("media: {err}"));
                let _ = ctx.to_client.try_send(msg.into());
                return;
            }
        };
        self.sessions.insert(
            id,
            Session {
                ctx,
                in_flight,
                publish,
                subscribe,
                opened: HashMap::new(),
                published: HashMap::new(),
                downstream: HashMap::new(),
                next_track: 1,
                negotiating: false,
                dirty: false,
                subscribe_connected: false,
            },
        );
    }

    fn new_pc(&mut self, now: Instant, session: SessionId, role: PcRole) -> Result<PcId, String> {
        let ufrag = loop {
            let candidate = random_token(16);
            if !self.by_ufrag.contains_key(&candidate) {
                break candidate;
            }
        };
        let rtc = self
            .factory
            .build(now, role, &ufrag, self.local_addr)
            .map_err(|e| e.to_string())?;
        let id = self.next_pc;
        self.next_pc += 1;
        self.by_ufrag.insert(ufrag.clone(), id);
        self.pcs.insert(
            id,
            Box::new(Pc {
                rtc,
                session,
                role,
                ufrag,
                addrs: Vec::new(),
                deadline: None,
                timer_stale: true,
                flush_pending: false,
                unflushed: 0,
                ice_connected: false,
                early_dtls: Vec::new(),
                remote_known: false,
                early_stun: Vec::new(),
            }),
        );
        self.stale_timers.push(id);
        self.counters.connections.fetch_add(1, Ordering::Relaxed);
        Ok(id)
    }

    fn drop_pc(&mut self, id: PcId) {
        let Some(mut pc) = self.pcs.remove(&id) else {
            return;
        };
        let _ = pc.rtc.close();
        // close() queues DTLS close_notify for the peer: send it.
        while let Some(out) = pc.rtc.poll_write() {
            self.transmits.push_back(Transmit {
                to: out.transport.peer_addr,
                bytes: out.message,
            });
        }
        self.by_ufrag.remove(&pc.ufrag);
        for addr in pc.addrs {
            if self.by_addr.get(&addr) == Some(&id) {
                self.by_addr.remove(&addr);
            }
        }
        self.counters.connections.fetch_sub(1, Ordering::Relaxed);
    }

    fn close(&mut self, id: SessionId) {
        let Some(session) = self.sessions.remove(&id) else {
            return;
        };
        for down in session.downstream.values() {
            if let Some(p) = self.producers.get_mut(&down.producer) {
                p.consumers.retain(|c| c.pc != session.subscribe);
            }
            self.counters.consumers.fetch_sub(1, Ordering::Relaxed);
        }
        for key in session.published.values() {
            self.end_producer(&session.ctx.to_room, *key);
        }
        self.drop_pc(session.publish);
        self.drop_pc(session.subscribe);
        tracing::debug!(participant = %session.ctx.participant, "media session closed");
    }

    fn end_producer(&mut self, to_room: &UnboundedSender<MediaEvent>, key: ProducerKey) {
        let Some(published) = self.producers.remove(&key) else {
            return;
        };
        published.producer.close();
        self.counters.producers.fetch_sub(1, Ordering::Relaxed);
        let _ = to_room.send(MediaEvent::TrackEnded {
            track_id: published.producer.info.id.clone(),
        });
    }

    fn send(&self, id: SessionId, msg: ServerMsg) {
        if let Some(session) = self.sessions.get(&id)
            && session.ctx.to_client.try_send(msg).is_err()
        {
            tracing::warn!(participant = %session.ctx.participant, "client queue full; message dropped");
        }
    }

    fn pc_of(&mut self, id: SessionId, role: PcRole) -> Option<&mut Pc> {
        let session = self.sessions.get(&id)?;
        let pc = match role {
            PcRole::Publish => session.publish,
            PcRole::Subscribe => session.subscribe,
        };
        self.pcs.get_mut(&pc).map(|pc| &mut **pc)
    }

    fn signal(&mut self, now: Instant, id: SessionId, signal: Signal) -> Result<(), Reject> {
        match signal.validate()? {
            Negotiation::PublishOffer(sdp) => self.answer_publish(now, id, sdp),
            Negotiation::SubscribeAnswer(sdp) => self.apply_subscribe_answer(now, id, sdp),
            Negotiation::Candidate(pc, candidate) => self.add_candidate(id, pc, candidate),
        }
    }

    fn answer_publish(&mut self, now: Instant, id: SessionId, sdp: String) -> Result<(), Reject> {
        let bad =
            |e: rtc::shared::error::Error| Reject::new(ErrorCode::BadSdp, format!("offer: {e}"));
        let Some(pc) = self.pc_of(id, PcRole::Publish) else {
            return Ok(());
        };
        pc.rtc
            .set_remote_description(now, unparsed(RTCSdpType::Offer, sdp))
            .map_err(bad)?;
        pc.remote_applied();
        let answer = pc.rtc.create_answer(None).map_err(bad)?;
        pc.rtc
            .set_local_description(now, answer.clone())
            .map_err(bad)?;
        // The answer carries our one host candidate; there is nothing to trickle.
        self.send(
            id,
            ServerMsg::Answer {
                pc: PcRole::Publish,
                sdp: answer.sdp,
            },
        );
        let pc_id = self.sessions[&id].publish;
        self.drain(now, pc_id);
        Ok(())
    }

    fn apply_subscribe_answer(
        &mut self,
        now: Instant,
        id: SessionId,
        sdp: String,
    ) -> Result<(), Reject> {
        let Some(session) = self.sessions.get_mut(&id) else {
            return Ok(());
        };
        if !session.negotiating {
            return Err(Reject::new(
                ErrorCode::WrongNegotiationState,
                "no offer on `subscribe` is waiting for an answer",
            ));
        }
        session.negotiating = false;
        let pc_id = session.subscribe;
        let result = match self.pcs.get_mut(&pc_id) {
            Some(pc) => {
                let result = pc
                    .rtc
                    .set_remote_description(now, unparsed(RTCSdpType::Answer, sdp));
                if result.is_ok() {
                    pc.remote_applied();
                }
                result
            }
            None => return Ok(()),
        };
        self.drain(now, pc_id);
        if let Err(e) = result {
            // Offer again from scratch; the client may have sent a broken answer once.
            if let Some(session) = self.sessions.get_mut(&id) {
                session.dirty = true;
            }
            self.to_negotiate.push_back(id);
            return Err(Reject::new(ErrorCode::BadSdp, format!("answer: {e}")));
        }
        self.activate_consumers(now, id);
        self.to_negotiate.push_back(id);
        Ok(())
    }

    fn add_candidate(
        &mut self,
        id: SessionId,
        role: PcRole,
        c: IceCandidate,
    ) -> Result<(), Reject> {
        if c.candidate.is_empty() {
            return Ok(()); // end of candidates
        }
        let Some(pc) = self.pc_of(id, role) else {
            return Ok(());
        };
        let added = pc
            .rtc
            .add_remote_candidate(crate::media::peer::candidate_from_wire(c));
        // A new pair is checked on the connection's next timer, which has just moved.
        let pc_id = match role {
            PcRole::Publish => self.sessions[&id].publish,
            PcRole::Subscribe => self.sessions[&id].subscribe,
        };
        self.mark_stale(pc_id);
        self.mark_flush(pc_id);
        added.map_err(|e| Reject::new(ErrorCode::BadCandidate, format!("candidate: {e}")))
    }

    fn subscribe(&mut self, id: SessionId, producer: Arc<Producer>) -> Result<(), Reject> {
        let track_id = producer.info.id.clone();
        let Some(session) = self.sessions.get(&id) else {
            return Ok(());
        };
        let key = producer.serial;
        if session.downstream.contains_key(&track_id) || !self.producers.contains_key(&key) {
            return Ok(()); // already forwarded, or its publisher has gone meanwhile
        }
        let pc_id = session.subscribe;
        let Some(pc) = self.pcs.get_mut(&pc_id) else {
            return Ok(());
        };
        let ssrc = rand::random::<u32>();
        let coding = RTCRtpEncodingParameters {
            rtp_coding_parameters: RTCRtpCodingParameters {
                ssrc: Some(ssrc),
                ..Default::default()
            },
            codec: producer.codec.clone(),
            ..Default::default()
        };
        let track = rtc::media_stream::MediaStreamTrack::new(
            producer.info.participant.clone(),
            track_id.clone(),
            format!("{} {}", producer.info.participant, track_id),
            rtp_kind(producer.info.kind),
            vec![coding],
        );
        // `add_track` takes the first section of the same kind that no track uses any more
        // (its track was unsubscribed) before it makes a new one. A section is never removed
        // from a connection's SDP, so without reuse every leave and rejoin in a long session
        // would leave a dead section with every other subscriber, kept and parsed for good.
        let transceiver = pc
            .rtc
            .add_track(track)
            .map(RTCRtpTransceiverId::from)
            .map_err(|e| {
                Reject::new(
                    ErrorCode::MediaUnavailable,
                    format!("cannot forward {track_id}: {e}"),
                )
            })?;
        // A new section is `sendrecv`; the server only sends.
        if let Some(mut t) = pc.rtc.rtp_transceiver(transceiver) {
            t.set_direction(RTCRtpTransceiverDirection::Sendonly);
        }
        // Offer only the publisher's codec (webrtc-rs adds its RTX): the server forwards and
        // never transcodes, so the other codecs are of no use in this section, and each costs
        // SDP lines and state in the transceiver, for every subscriber of every track.
        if let Some(codec) = peer::registered_codec(&producer.codec)
            && let Some(mut t) = pc.rtc.rtp_transceiver(transceiver)
            && let Err(e) = t.set_codec_preferences(vec![codec])
        {
            tracing::debug!(%e, %track_id, "codec preferences; offering every codec");
        }
        if let Some(p) = self.producers.get_mut(&key) {
            p.consumers.push(ConsumerRef {
                pc: pc_id,
                ssrc,
                payload_type: 0,
                base: Sent::default(),
            });
        }
        self.counters.consumers.fetch_add(1, Ordering::Relaxed);
        if let Some(session) = self.sessions.get_mut(&id) {
            session.downstream.insert(
                track_id,
                Down {
                    producer: key,
                    sender: RTCRtpSenderId::from(transceiver),
                    active: false,
                },
            );
            session.dirty = true;
        }
        self.to_negotiate.push_back(id);
        Ok(())
    }

    fn unsubscribe(&mut self, id: SessionId, track_id: &str) {
        let Some(session) = self.sessions.get_mut(&id) else {
            return;
        };
        let Some(down) = session.downstream.remove(track_id) else {
            return;
        };
        session.dirty = true;
        let pc_id = session.subscribe;
        if let Some(p) = self.producers.get_mut(&down.producer) {
            p.consumers.retain(|c| c.pc != pc_id);
        }
        self.counters.consumers.fetch_sub(1, Ordering::Relaxed);
        if let Some(pc) = self.pcs.get_mut(&pc_id)
            && let Err(e) = pc.rtc.remove_track(down.sender)
        {
            tracing::debug!(%e, "remove_track");
        }
        self.to_negotiate.push_back(id);
    }

    /// Offer on `subscribe` if something changed and no offer is outstanding; whether it did.
    fn renegotiate(&mut self, now: Instant, id: SessionId) -> Result<bool, Reject> {
        let Some(session) = self.sessions.get_mut(&id) else {
            return Ok(false);
        };
        if session.negotiating || !session.dirty {
            return Ok(false);
        }
        let pc_id = session.subscribe;
        let Some(pc) = self.pcs.get_mut(&pc_id) else {
            return Ok(false);
        };
        let fail =
            |e: rtc::shared::error::Error| Reject::new(ErrorCode::Internal, format!("offer: {e}"));
        let offer = pc.rtc.create_offer(None).map_err(fail)?;
        pc.rtc
            .set_local_description(now, offer.clone())
            .map_err(fail)?;
        session.negotiating = true;
        session.dirty = false;
        self.send(
            id,
            ServerMsg::Offer {
                pc: PcRole::Subscribe,
                sdp: offer.sdp,
            },
        );
        self.drain(now, pc_id);
        Ok(true)
    }

    /// Once the subscribe connection is up and an answer applied: learn each new consumer's
    /// payload type and ask its publisher for a keyframe (a request sent earlier is wasted).
    fn activate_consumers(&mut self, now: Instant, id: SessionId) {
        let Some(session) = self.sessions.get_mut(&id) else {
            return;
        };
        if !session.subscribe_connected {
            return; // done again when it connects
        }
        let pc_id = session.subscribe;
        let Some(pc) = self.pcs.get_mut(&pc_id) else {
            return;
        };
        let mut keyframes = Vec::new();
        let mut reports = Vec::new();
        for (track_id, down) in session.downstream.iter_mut().filter(|(_, d)| !d.active) {
            let Some(published) = self.producers.get_mut(&down.producer) else {
                continue;
            };
            let Some(mut sender) = pc.rtc.rtp_sender(down.sender) else {
                continue;
            };
            let codecs = &sender.get_parameters().rtp_parameters.codecs;
            let Some(pt) = pick_payload_type(codecs, &published.producer.codec) else {
                tracing::warn!(track = %track_id, "subscriber did not accept the codec");
                continue;
            };
            down.active = true;
            for c in published.consumers.iter_mut().filter(|c| c.pc == pc_id) {
                c.payload_type = pt;
                c.base = published.sent;
                // The publisher's clock mapping now, rather than at its next report (every
                // 1 to 5 s): until it has one, a receiver cannot play the track in sync.
                if let Some(mapping) = published.report {
                    reports.push(c.report(published.sent, mapping));
                }
            }
            if published.producer.info.kind == MediaKind::Video {
                keyframes.push(down.producer);
            }
        }
        for report in reports {
            self.write_report(now, pc_id, report);
        }
        for key in keyframes {
            self.request_keyframe(now, key);
        }
    }

    /// A publisher's sender report about `track` (webrtc's id on its `publish`): keep its clock
    /// mapping, and pass it on to every subscriber of the track in the subscriber's terms.
    fn relay_report(
        &mut self,
        now: Instant,
        session_id: SessionId,
        track: &str,
        sr: &SenderReport,
    ) {
        let Some(key) = self
            .sessions
            .get(&session_id)
            .and_then(|s| s.published.get(track))
        else {
            return; // no packet of the track yet: nobody receives it
        };
        let Some(published) = self.producers.get_mut(key) else {
            return;
        };
        if sr.ssrc != published.media_ssrc {
            return; // about the track's retransmission stream, which we do not forward
        }
        let mapping = ClockMapping {
            ntp_time: sr.ntp_time,
            rtp_time: sr.rtp_time,
        };
        published.report = Some(mapping);
        let sent = published.sent;
        published.active_consumers(&mut self.scratch);
        let consumers = std::mem::take(&mut self.scratch);
        for c in &consumers {
            self.write_report(now, c.pc, c.report(sent, mapping));
        }
        self.scratch = consumers;
    }

    fn write_report(&mut self, now: Instant, pc_id: PcId, report: SenderReport) {
        let Some(pc) = self.pcs.get_mut(&pc_id) else {
            return;
        };
        let msg = TaggedRTCMessage {
            now,
            message: RTCMessage::RtcpPacket(String::new(), vec![Box::new(report)]),
        };
        if let Err(e) = pc.rtc.handle_write(msg) {
            tracing::trace!(%e, "sender report");
            return;
        }
        pc.unflushed += 1;
        let (session, unflushed) = (pc.session, pc.unflushed);
        self.wrote(pc_id, session, unflushed);
    }

    /// `pc_id` (of `session`) took a packet into its pipeline and holds `unflushed` unpumped:
    /// pump them through if that is [`MAX_UNFLUSHED`], and in any case at the end of the turn.
    fn wrote(&mut self, pc_id: PcId, session: SessionId, unflushed: u8) {
        if unflushed >= MAX_UNFLUSHED {
            self.guarded(session, |engine| engine.flush_writes(pc_id));
        }
        self.mark_flush(pc_id);
    }

    fn request_keyframe(&mut self, now: Instant, key: ProducerKey) {
        let Some(published) = self.producers.get(&key) else {
            return;
        };
        if !published.producer.request_keyframe(now) {
            return; // throttled
        }
        let (pc_id, receiver, media_ssrc) = (
            published.publisher_pc,
            published.receiver,
            published.media_ssrc,
        );
        if let Some(pc) = self.pcs.get_mut(&pc_id)
            && let Some(mut r) = pc.rtc.rtp_receiver(receiver)
        {
            let pli = PictureLossIndication {
                sender_ssrc: 0,
                media_ssrc,
            };
            if let Err(e) = r.write_rtcp(now, vec![Box::new(pli)]) {
                tracing::debug!(%e, "PLI to publisher");
            }
            self.mark_flush(pc_id);
        }
    }

    /// Everything a connection produced after an input: events, then packets read, then
    /// datagrams to send.
    fn drain(&mut self, now: Instant, pc_id: PcId) {
        loop {
            let Some(pc) = self.pcs.get_mut(&pc_id) else {
                return;
            };
            let (session_id, role) = (pc.session, pc.role);
            let mut progressed = false;
            while let Some(event) = self.pcs.get_mut(&pc_id).and_then(|pc| pc.rtc.poll_event()) {
                progressed = true;
                if let RTCPeerConnectionEvent::OnIceConnectionStateChangeEvent(
                    RTCIceConnectionState::Connected,
                ) = event
                {
                    self.ice_connected(pc_id);
                }
                self.handle_event(now, session_id, role, event);
            }
            while let Some(TaggedRTCMessage { message, now: at }) =
                self.pcs.get_mut(&pc_id).and_then(|pc| pc.rtc.poll_read())
            {
                progressed = true;
                match message {
                    RTCMessage::RtpPacket(track, packet) => {
                        self.on_rtp(at, session_id, pc_id, &track, packet);
                    }
                    RTCMessage::RtcpPacket(track, packets) if role == PcRole::Publish => {
                        // Only sender reports reach us here (see `rtcp_forward`), one each.
                        for sr in packets
                            .iter()
                            .filter_map(|p| p.as_any().downcast_ref::<SenderReport>())
                        {
                            self.relay_report(at, session_id, &track, sr);
                        }
                    }
                    RTCMessage::RtcpPacket(track, _) if role == PcRole::Subscribe => {
                        // Only keyframe requests reach us (see `rtcp_forward`), each about
                        // one of the tracks we forward, named by our own track id.
                        let key = self
                            .sessions
                            .get(&session_id)
                            .and_then(|s| s.downstream.get(&track))
                            .map(|d| d.producer);
                        if let Some(key) = key {
                            self.request_keyframe(at, key);
                        }
                    }
                    _ => {}
                }
            }
            self.mark_flush(pc_id);
            if !progressed {
                return;
            }
        }
    }

    /// From now on webrtc-rs takes DTLS on `pc_id`: hand it what came early.
    fn ice_connected(&mut self, pc_id: PcId) {
        let Some(pc) = self.pcs.get_mut(&pc_id) else {
            return;
        };
        pc.ice_connected = true;
        for msg in std::mem::take(&mut pc.early_dtls) {
            if let Err(e) = pc.rtc.handle_read(msg) {
                tracing::trace!(%e, "early DTLS refused");
            }
        }
    }

    /// Collect `pc_id`'s datagrams at the end of this turn: webrtc-rs pumps its whole pipeline on
    /// every `poll_write`, so one pump for a turn's packets costs much less than one each.
    fn mark_flush(&mut self, pc_id: PcId) {
        if let Some(pc) = self.pcs.get_mut(&pc_id)
            && !pc.flush_pending
        {
            pc.flush_pending = true;
            self.to_flush.push(pc_id);
        }
    }

    fn flush_writes(&mut self, pc_id: PcId) {
        let Some(pc) = self.pcs.get_mut(&pc_id) else {
            return;
        };
        pc.unflushed = 0;
        let mut learned = None;
        while let Some(out) = pc.rtc.poll_write() {
            let to = out.transport.peer_addr;
            // Our own connectivity checks go where this connection chose: answers come back
            // from there without a USERNAME, so remember the address.
            if out.message.first().is_some_and(|b| *b < 2) && !pc.addrs.contains(&to) {
                learned = Some(to);
            }
            self.transmits.push_back(Transmit {
                to,
                bytes: out.message,
            });
        }
        if !pc.timer_stale {
            pc.timer_stale = true;
            self.stale_timers.push(pc_id);
        }
        if let Some(addr) = learned {
            self.learn_addr(pc_id, addr);
        }
    }

    fn handle_event(
        &mut self,
        now: Instant,
        session_id: SessionId,
        role: PcRole,
        event: RTCPeerConnectionEvent,
    ) {
        match event {
            RTCPeerConnectionEvent::OnTrack(RTCTrackEvent::OnOpen(init))
                if role == PcRole::Publish =>
            {
                if let Some(session) = self.sessions.get_mut(&session_id) {
                    session
                        .opened
                        .insert(init.track_id, (init.receiver_id, init.ssrc));
                }
            }
            RTCPeerConnectionEvent::OnTrack(RTCTrackEvent::OnClose(track))
                if role == PcRole::Publish =>
            {
                let Some(session) = self.sessions.get_mut(&session_id) else {
                    return;
                };
                session.opened.remove(&track);
                if let Some(key) = session.published.remove(&track) {
                    let to_room = session.ctx.to_room.clone();
                    self.end_producer(&to_room, key);
                }
            }
            RTCPeerConnectionEvent::OnIceConnectionStateChangeEvent(state) => {
                if let Some(session) = self.sessions.get(&session_id) {
                    tracing::debug!(participant = %session.ctx.participant, pc = ?role, %state, "ICE");
                }
            }
            RTCPeerConnectionEvent::OnConnectionStateChangeEvent(state) => {
                if let Some(session) = self.sessions.get_mut(&session_id) {
                    tracing::debug!(participant = %session.ctx.participant, pc = ?role, %state, "peer connection");
                    if role == PcRole::Subscribe && state == RTCPeerConnectionState::Connected {
                        session.subscribe_connected = true;
                        self.activate_consumers(now, session_id);
                    }
                }
            }
            _ => {}
        }
    }

    fn on_rtp(
        &mut self,
        now: Instant,
        session_id: SessionId,
        pc_id: PcId,
        track: &str,
        mut packet: rtc::rtp::Packet,
    ) {
        let Some(session) = self.sessions.get(&session_id) else {
            return;
        };
        let key = match session.published.get(track) {
            Some(key) => *key,
            None => {
                match self.publish_track(session_id, pc_id, track, packet.header.payload_type) {
                    Some(ours) => ours,
                    None => return,
                }
            }
        };
        let Some(published) = self.producers.get_mut(&key) else {
            return;
        };
        published.producer.received.fetch_add(1, Ordering::Relaxed);
        if !published.seen.is_new(packet.header.sequence_number) {
            return;
        }
        published.sent.packets = published.sent.packets.wrapping_add(1);
        published.sent.octets = published
            .sent
            .octets
            .wrapping_add(packet.payload.len() as u32);
        // Extension ids are per connection; the publisher's would mean something else to a
        // subscriber.
        strip_extensions(&mut packet.header);
        published.active_consumers(&mut self.scratch);
        let consumers = std::mem::take(&mut self.scratch);
        for c in &consumers {
            let Some(pc) = self.pcs.get_mut(&c.pc) else {
                continue;
            };
            let mut out = packet.clone();
            out.header.ssrc = c.ssrc;
            out.header.payload_type = c.payload_type;
            // Straight into the pipeline: the sender's checks (SSRC, payload type, extension
            // ids) were made once, when the consumer was activated.
            let msg = TaggedRTCMessage {
                now,
                message: RTCMessage::RtpPacket(String::new(), out),
            };
            if let Err(e) = pc.rtc.handle_write(msg) {
                tracing::trace!(%e, "forward");
                continue;
            }
            self.forwarded += 1;
            pc.unflushed += 1;
            let (session, unflushed) = (pc.session, pc.unflushed);
            self.wrote(c.pc, session, unflushed);
        }
        self.scratch = consumers;
    }

    /// The first packet of a track the publisher opened: make it a producer and tell the
    /// room. Returns our track id.
    fn publish_track(
        &mut self,
        session_id: SessionId,
        pc_id: PcId,
        track: &str,
        payload_type: u8,
    ) -> Option<ProducerKey> {
        let session = self.sessions.get_mut(&session_id)?;
        let (receiver, media_ssrc) = *session.opened.get(track)?;
        let pc = self.pcs.get_mut(&pc_id)?;
        let mut r = pc.rtc.rtp_receiver(receiver)?;
        let kind = match r.track().kind() {
            RtpCodecKind::Audio => MediaKind::Audio,
            RtpCodecKind::Video => MediaKind::Video,
            _ => return None,
        };
        let codec = r
            .get_parameters()
            .rtp_parameters
            .codecs
            .iter()
            .find(|c| c.payload_type == payload_type)?
            .rtp_codec
            .clone();
        let letter = if kind == MediaKind::Audio { 'a' } else { 'v' };
        let id = format!("{}-{letter}{}", session.ctx.participant, session.next_track);
        session.next_track += 1;
        let info = TrackInfo {
            id,
            participant: session.ctx.participant.clone(),
            kind,
        };
        // The producer's own queue machinery is unused here: the engine forwards directly.
        let (producer, _keyframes) = Producer::new(info, codec);
        let producer = Arc::new(producer);
        let key = producer.serial;
        self.producers.insert(
            key,
            Published {
                producer: producer.clone(),
                publisher_pc: pc_id,
                receiver,
                media_ssrc,
                consumers: Vec::new(),
                sent: Sent::default(),
                report: None,
                seen: Seen::default(),
            },
        );
        self.counters.producers.fetch_add(1, Ordering::Relaxed);
        let _ = session.ctx.to_room.send(MediaEvent::TrackPublished {
            participant: session.ctx.participant.clone(),
            producer,
        });
        session.published.insert(track.to_string(), key);
        Some(key)
    }
}

/// A description to hand to `set_remote_description`, which parses it (and refuses what does
/// not parse). `RTCSessionDescription::offer` and `::answer` would parse it a first time, for
/// nothing: 4 % of the server's CPU while a room of 40 fills, in a profile.
fn unparsed(sdp_type: RTCSdpType, sdp: String) -> RTCSessionDescription {
    let mut description = RTCSessionDescription::default();
    description.sdp_type = sdp_type;
    description.sdp = sdp;
    description
}

/// The local ufrag of a STUN message's `USERNAME` (`<ours>:<theirs>`), if it has one.
fn stun_local_ufrag(bytes: &[u8]) -> Option<String> {
    let mut msg = rtc::stun::message::Message::new();
    msg.unmarshal_binary(bytes).ok()?;
    let username = msg.get(rtc::stun::attributes::ATTR_USERNAME).ok()?;
    let username = std::str::from_utf8(&username).ok()?;
    Some(username.split(':').next()?.to_string())
}

fn random_token(len: usize) -> String {
    use rand::Rng;
    const ALPHABET: &[u8] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789";
    let mut rng = rand::rng();
    (0..len)
        .map(|_| ALPHABET[rng.random_range(0..ALPHABET.len())] as char)
        .collect()
}
