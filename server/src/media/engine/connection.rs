//! One peer connection in the engine: how it is built, what it keeps of what came early, and
//! how its output is pumped. webrtc-rs pumps a connection's whole pipeline on every
//! `poll_write`, so the engine collects a connection's output once for many packets, but at
//! least every [`MAX_UNFLUSHED`] packets.

use std::net::SocketAddr;
use std::time::Instant;

use bytes::BytesMut;
use roundtable_peer::{Flow, PeerNet, Side};
use rtc::peer_connection::RTCPeerConnection;
use rtc::peer_connection::event::RTCPeerConnectionEvent;
use rtc::peer_connection::message::{RTCMessage, TaggedRTCMessage};
use rtc::peer_connection::state::RTCIceConnectionState;
use rtc::rtcp::sender_report::SenderReport;
use rtc::sansio::Protocol;
use rtc::shared::{TaggedBytesMut, TransportContext, TransportProtocol};
use signaling::wire::PcRole;

use super::{Engine, Output, PcId, SessionId, Transmit};

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

/// Builds the engine's peer connections: our codecs, interceptors and ICE settings, with a
/// ufrag chosen by the engine (its demultiplexing key) and one host candidate, the shared
/// socket.
pub struct PcFactory {
    net: PeerNet,
}

impl PcFactory {
    /// A factory for connections on `net`.
    pub fn new(net: PeerNet) -> Self {
        PcFactory { net }
    }

    pub(super) fn build(
        &self,
        now: Instant,
        role: PcRole,
        ufrag: &str,
        local: SocketAddr,
    ) -> rtc::shared::error::Result<RTCPeerConnection> {
        let flow = match role {
            PcRole::Publish => Flow::Ingest,
            PcRole::Subscribe => Flow::Relay,
        };
        let password = format!("{ufrag}{:032x}", rand::random::<u128>());
        roundtable_peer::build_sansio(
            now,
            &self.net,
            Side::Server,
            flow,
            local,
            Some((ufrag.to_string(), password)),
        )
    }
}

/// One peer connection.
pub(super) struct Pc {
    pub(super) rtc: RTCPeerConnection,
    pub(super) session: SessionId,
    pub(super) role: PcRole,
    pub(super) ufrag: String,
    pub(super) deadline: Option<Instant>,
    /// Listed in `stale_timers`: its timer is re-read before the next `poll_timeout`.
    pub(super) timer_stale: bool,
    /// Listed in `to_flush`: its datagrams are collected before the next output.
    flush_pending: bool,
    /// Packets written into its pipeline since it was last pumped.
    unflushed: u8,
    /// ICE has connected: webrtc-rs passes DTLS on from then on.
    ice_connected: bool,
    /// DTLS datagrams that arrived before that (see [`MAX_EARLY_DTLS`]).
    early_dtls: Vec<TaggedBytesMut>,
    /// A remote description has been applied: webrtc-rs knows the client's ICE credentials.
    remote_known: bool,
    /// ICE checks that arrived before that (see [`MAX_EARLY_STUN`]).
    early_stun: Vec<TaggedBytesMut>,
}

impl Pc {
    /// A remote description has just been applied: hand webrtc-rs the checks that came early.
    pub(super) fn remote_applied(&mut self) {
        self.remote_known = true;
        for msg in std::mem::take(&mut self.early_stun) {
            if let Err(e) = self.rtc.handle_read(msg) {
                tracing::trace!(%e, "early ICE check refused");
            }
        }
    }

    /// Take a datagram, or keep it if it came too early to be understood.
    fn read(&mut self, msg: TaggedBytesMut) {
        // RFC 7983: a first byte of 20 to 63 is DTLS, of 0 to 3 STUN.
        let first = msg.message.first().copied().unwrap_or_default();
        if !self.ice_connected && (20..=63).contains(&first) {
            if self.early_dtls.len() < MAX_EARLY_DTLS {
                self.early_dtls.push(msg);
            }
            return;
        }
        if !self.remote_known && first <= 3 {
            if self.early_stun.len() < MAX_EARLY_STUN {
                self.early_stun.push(msg);
            }
            return;
        }
        let from = msg.transport.peer_addr;
        if let Err(e) = self.rtc.handle_read(msg) {
            tracing::trace!(%e, %from, "datagram refused");
        }
    }

    /// It took a packet into its pipeline. Returns whether it must be listed for the next
    /// flush (it was not yet), and whether it holds [`MAX_UNFLUSHED`] and is due a pump now.
    pub(super) fn took_one(&mut self) -> (bool, bool) {
        self.unflushed += 1;
        let list = !std::mem::replace(&mut self.flush_pending, true);
        (list, self.unflushed >= MAX_UNFLUSHED)
    }

    /// From now on webrtc-rs takes DTLS: hand it what came early.
    fn ice_connected(&mut self) {
        self.ice_connected = true;
        for msg in std::mem::take(&mut self.early_dtls) {
            if let Err(e) = self.rtc.handle_read(msg) {
                tracing::trace!(%e, "early DTLS refused");
            }
        }
    }
}

impl Engine {
    pub(super) fn new_pc(
        &mut self,
        now: Instant,
        session: SessionId,
        role: PcRole,
    ) -> Result<PcId, String> {
        let ufrag = self.demux.new_ufrag();
        let rtc = self
            .factory
            .build(now, role, &ufrag, self.local_addr)
            .map_err(|e| e.to_string())?;
        let id = self.next_pc;
        self.next_pc += 1;
        self.demux.add(ufrag.clone(), id);
        self.pcs.insert(
            id,
            Box::new(Pc {
                rtc,
                session,
                role,
                ufrag,
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
        Ok(id)
    }

    pub(super) fn drop_pc(&mut self, id: PcId) {
        let Some(mut pc) = self.pcs.remove(&id) else {
            return;
        };
        let _ = pc.rtc.close();
        // close() queues DTLS close_notify for the peer: send it.
        while let Some(out) = pc.rtc.poll_write() {
            self.out.push_back(Output::Transmit(Transmit {
                to: out.transport.peer_addr,
                bytes: out.message,
            }));
        }
        self.demux.remove(id, &pc.ufrag);
    }

    pub(super) fn read_datagram(
        &mut self,
        now: Instant,
        pc_id: PcId,
        from: SocketAddr,
        bytes: &[u8],
    ) {
        let Some(pc) = self.pcs.get_mut(&pc_id) else {
            return;
        };
        pc.read(TaggedBytesMut {
            now,
            transport: TransportContext {
                local_addr: self.local_addr,
                peer_addr: from,
                transport_protocol: TransportProtocol::UDP,
                ecn: None,
            },
            message: BytesMut::from(bytes),
        });
        self.drain(now, pc_id);
    }

    pub(super) fn run_timer(&mut self, now: Instant, id: PcId) {
        if let Some(pc) = self.pcs.get_mut(&id) {
            if let Err(e) = pc.rtc.handle_timeout(now) {
                tracing::debug!(%e, "peer connection timer");
            }
            pc.deadline = None;
        }
        self.mark_stale(id);
        self.drain(now, id);
    }

    /// Everything a connection produced after an input: events, then packets read. Its
    /// datagrams are collected later (see [`Engine::mark_flush`]).
    pub(super) fn drain(&mut self, now: Instant, pc_id: PcId) {
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
                    && let Some(pc) = self.pcs.get_mut(&pc_id)
                {
                    pc.ice_connected();
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
                        // Only sender reports reach us here (the chain's `SenderReportsToApp`).
                        for sr in packets
                            .iter()
                            .filter_map(|p| p.as_any().downcast_ref::<SenderReport>())
                        {
                            self.relay_report(at, session_id, &track, sr);
                        }
                    }
                    RTCMessage::RtcpPacket(track, _) if role == PcRole::Subscribe => {
                        // Only keyframe requests reach us (the chain's `KeyframeRequests`),
                        // each about a track we forward, named by our own track id.
                        self.keyframe_requested(at, session_id, &track);
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

    /// `pc_id` took a packet into its pipeline: pump it now if that makes [`MAX_UNFLUSHED`],
    /// and in any case before the next output.
    pub(super) fn wrote(&mut self, pc_id: PcId) {
        let Some(pc) = self.pcs.get_mut(&pc_id) else {
            return;
        };
        let (list, pump) = pc.took_one();
        if list {
            self.to_flush.push(pc_id);
        }
        if pump {
            self.to_pump.push(pc_id);
        }
        self.pump_due();
    }

    /// Pump the connections that hold [`MAX_UNFLUSHED`] packets.
    pub(super) fn pump_due(&mut self) {
        let mut due = std::mem::take(&mut self.to_pump);
        for &pc_id in &due {
            if let Some(session) = self.pcs.get(&pc_id).map(|pc| pc.session) {
                self.guarded(session, |engine| engine.flush_writes(pc_id));
            }
        }
        due.clear();
        self.to_pump = due;
    }

    /// Collect `pc_id`'s datagrams before the next output: one pump for many packets costs
    /// much less than one each.
    pub(super) fn mark_flush(&mut self, pc_id: PcId) {
        if let Some(pc) = self.pcs.get_mut(&pc_id)
            && !pc.flush_pending
        {
            pc.flush_pending = true;
            self.to_flush.push(pc_id);
        }
    }

    pub(super) fn mark_stale(&mut self, id: PcId) {
        if let Some(pc) = self.pcs.get_mut(&id)
            && !pc.timer_stale
        {
            pc.timer_stale = true;
            self.stale_timers.push(id);
        }
    }

    /// Collect what every connection written to since the last flush has to send.
    pub(super) fn flush(&mut self) {
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
            if out.message.first().is_some_and(|b| *b < 2) {
                learned = Some(to);
            }
            self.out.push_back(Output::Transmit(Transmit {
                to,
                bytes: out.message,
            }));
        }
        if !pc.timer_stale {
            pc.timer_stale = true;
            self.stale_timers.push(pc_id);
        }
        if let Some(addr) = learned {
            self.demux.learn(pc_id, addr);
        }
    }
}
