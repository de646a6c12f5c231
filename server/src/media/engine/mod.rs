//! The media engine: every peer connection of every session, the demultiplexer in front of
//! them and the forwarding table between them, as one state machine. No IO, no clock, no
//! channel, lock or atomic: the driver (`driver.rs`) hands it commands, datagrams and the
//! time, and delivers what [`Engine::poll_output`] returns, in order.
//!
//! By job:
//! - `demux`: which connection a datagram is for;
//! - `connection`: one peer connection, what came early, and pumping its output;
//! - `session`: a participant's two connections, negotiation and subscriptions;
//! - `forward`: published tracks, the gate, and the rewrite of each copy;
//! - `reports`: sender reports and keyframe requests.
//!
//! A panic while handling one session's input closes that session, not the engine.

mod connection;
mod demux;
mod forward;
mod reports;
mod session;

#[cfg(test)]
pub(crate) mod sim;
#[cfg(test)]
mod tests;

use std::collections::{HashMap, VecDeque};
use std::net::SocketAddr;
use std::time::Instant;

use bytes::BytesMut;
use rtc::sansio::Protocol;
use signaling::wire::{ErrorCode, Reject, ServerMsg};

use super::values::{MediaEvent, RecordedPacket, Signal, TrackKey};
use connection::Pc;
use demux::Demux;
use forward::Published;
use session::Session;

pub use connection::PcFactory;

/// A session's id in the engine (one per participant).
pub type SessionId = u64;
/// A peer connection's id in the engine.
type PcId = u64;

/// What the driver hands the engine.
#[derive(Debug)]
pub enum Cmd {
    /// A participant joined: build its two connections.
    Open {
        /// Its id.
        id: SessionId,
        /// Its participant id, for logs and track ids.
        participant: String,
    },
    /// A negotiation message from the client.
    Signal(SessionId, Signal),
    /// Start and stop forwarding tracks to the session. The changes of one room event come in
    /// one command, so that they go to the client in one offer.
    Subscriptions {
        /// The subscriber.
        session: SessionId,
        /// Tracks to forward to it.
        add: Vec<TrackKey>,
        /// Tracks to stop forwarding to it.
        remove: Vec<TrackKey>,
    },
    /// Open or close the forwarding of one published track (the gate).
    Gate {
        /// The track.
        track: TrackKey,
        /// Whether its packets reach its subscribers.
        open: bool,
    },
    /// Start or stop handing one published track's packets to the recorder
    /// ([`Output::Record`]). Only packets that pass the gate are recorded.
    Record {
        /// The track.
        track: TrackKey,
        /// Whether its packets are recorded from the next one on.
        on: bool,
    },
    /// Tear the session down.
    Close(SessionId),
}

impl Cmd {
    /// The session the command is about, if one.
    fn session(&self) -> Option<SessionId> {
        match self {
            Cmd::Open { id, .. } | Cmd::Signal(id, _) | Cmd::Close(id) => Some(*id),
            Cmd::Subscriptions { session, .. } => Some(*session),
            Cmd::Gate { .. } | Cmd::Record { .. } => None,
        }
    }
}

/// A datagram to send.
#[derive(Debug)]
pub struct Transmit {
    /// Destination.
    pub to: SocketAddr,
    /// Bytes.
    pub bytes: BytesMut,
}

/// What the engine asks its driver to do, in the order it must be done.
#[derive(Debug)]
pub enum Output {
    /// Send a datagram.
    Transmit(Transmit),
    /// Send a message to one session's client (answers, offers, errors).
    Client {
        /// The session.
        session: SessionId,
        /// The message, boxed: it is rare and large, and every datagram passes through this
        /// enum (unboxed, a `ServerMsg` made each one 192 bytes rather than 72).
        msg: Box<ServerMsg>,
    },
    /// Tell the room of a session what happened to its media.
    Room {
        /// The session whose room it is.
        session: SessionId,
        /// What happened.
        event: MediaEvent,
    },
    /// A packet of a recorded track, for the recorder. Boxed, like `Client`: only recorded
    /// packets pay for it.
    Record(Box<RecordedPacket>),
}

/// What the engine holds and has done.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Stats {
    /// Open peer connections.
    pub connections: usize,
    /// Published tracks being forwarded.
    pub producers: usize,
    /// Forwarded (track, subscriber) pairs.
    pub consumers: usize,
    /// Datagrams from an address and ufrag no connection knows.
    pub unrouted: u64,
    /// RTP packets written to subscribers (one per copy).
    pub forwarded: u64,
    /// Their payload octets (headers and SRTP overhead excluded).
    pub forwarded_bytes: u64,
}

/// See the module docs.
pub struct Engine {
    factory: PcFactory,
    local_addr: SocketAddr,
    sessions: HashMap<SessionId, Session>,
    /// Boxed: a connection is about 9 KB, and a map of them by value kept that for every
    /// empty slot and moved them all each time it grew.
    pcs: HashMap<PcId, Box<Pc>>,
    demux: Demux,
    producers: HashMap<TrackKey, Published>,
    next_pc: PcId,
    next_track: u64,
    out: VecDeque<Output>,
    /// Connections whose timer may have moved since it was last read.
    stale_timers: Vec<PcId>,
    /// Sessions whose subscribe side changed and may need an offer, oldest first.
    to_negotiate: VecDeque<SessionId>,
    /// Connections with writes to collect before the next output is polled.
    to_flush: Vec<PcId>,
    /// Connections that hold enough packets to be pumped at once (see `connection`).
    to_pump: Vec<PcId>,
    /// Scratch, reused: the connections whose timer is due.
    due: Vec<PcId>,
    stats: Stats,
}

impl Engine {
    /// An engine whose connections all advertise `local_addr`.
    pub fn new(factory: PcFactory, local_addr: SocketAddr) -> Self {
        Engine {
            factory,
            local_addr,
            sessions: HashMap::new(),
            pcs: HashMap::new(),
            demux: Demux::default(),
            producers: HashMap::new(),
            next_pc: 1,
            next_track: 1,
            out: VecDeque::new(),
            stale_timers: Vec::new(),
            to_negotiate: VecDeque::new(),
            to_flush: Vec::new(),
            to_pump: Vec::new(),
            due: Vec::new(),
            stats: Stats::default(),
        }
    }

    /// What the engine holds and has done so far.
    pub fn stats(&self) -> Stats {
        Stats {
            connections: self.pcs.len(),
            producers: self.producers.len(),
            ..self.stats
        }
    }

    /// RTP packets written to subscribers so far (one per copy). Each goes out as a
    /// [`Output::Transmit`] once its connection's output is collected.
    pub fn forwarded(&self) -> u64 {
        self.stats.forwarded
    }

    /// Handle one command.
    pub fn handle_cmd(&mut self, now: Instant, cmd: Cmd) {
        match cmd.session() {
            Some(session) => self.guarded(session, |engine| engine.route_cmd(now, cmd)),
            None => self.route_cmd(now, cmd),
        }
    }

    fn route_cmd(&mut self, now: Instant, cmd: Cmd) {
        match cmd {
            Cmd::Open { id, participant } => self.open(now, id, participant),
            Cmd::Signal(id, signal) => {
                if let Err(reject) = self.signal(now, id, signal) {
                    self.tell_client(id, reject.into());
                }
            }
            Cmd::Subscriptions {
                session,
                add,
                remove,
            } => self.subscriptions(session, &add, &remove),
            Cmd::Gate { track, open } => self.gate(now, track, open),
            Cmd::Record { track, on } => self.record(now, track, on),
            Cmd::Close(id) => self.close(id),
        }
    }

    /// Handle one datagram from `from`.
    pub fn handle_datagram(&mut self, now: Instant, from: SocketAddr, bytes: &[u8]) {
        let Some(pc_id) = self.demux.route(from, bytes) else {
            self.stats.unrouted += 1;
            return;
        };
        let Some(session) = self.pcs.get(&pc_id).map(|pc| pc.session) else {
            return;
        };
        self.guarded(session, |engine| {
            engine.read_datagram(now, pc_id, from, bytes);
        });
    }

    /// Run every connection's timers that are due.
    pub fn handle_timeout(&mut self, now: Instant) {
        self.refresh_timers();
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
            self.guarded(session, |engine| engine.run_timer(now, id));
        }
        due.clear();
        self.due = due;
    }

    /// Send the oldest offer on `subscribe` that changes call for; false if none was due. An
    /// offer in a room of 40 costs about a millisecond, so the driver sends them a few at a
    /// time between reads of the socket rather than all at once.
    pub fn negotiate_one(&mut self, now: Instant) -> bool {
        while let Some(id) = self.to_negotiate.pop_front() {
            let mut offered = false;
            self.guarded(id, |engine| match engine.renegotiate(now, id) {
                Ok(sent) => offered = sent,
                Err(reject) => engine.tell_client(id, reject.into()),
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

    /// The next thing to do. Collects the output of every connection written to since the
    /// last call first, so a forwarded packet goes out without waiting for the rest of a turn.
    pub fn poll_output(&mut self) -> Option<Output> {
        if self.out.is_empty() && !self.to_flush.is_empty() {
            self.flush();
        }
        self.out.pop_front()
    }

    /// The earliest timer of any connection.
    pub fn poll_timeout(&mut self) -> Option<Instant> {
        self.refresh_timers();
        self.pcs.values().filter_map(|pc| pc.deadline).min()
    }

    /// Re-read the timers of the connections that had input since they were last read.
    fn refresh_timers(&mut self) {
        for id in self.stale_timers.drain(..) {
            if let Some(pc) = self.pcs.get_mut(&id) {
                pc.deadline = pc.rtc.poll_timeout();
                pc.timer_stale = false;
            }
        }
    }

    /// Close everything (the engine is going away).
    pub fn shutdown(&mut self) {
        let ids: Vec<SessionId> = self.sessions.keys().copied().collect();
        for id in ids {
            self.close(id);
        }
    }

    /// Run `f` for `session`; if it panics (a bug, ours or webrtc-rs's, met by some input),
    /// close that session and carry on, so that one participant's bad packet or SDP cannot
    /// stop everyone's media.
    fn guarded(&mut self, session: SessionId, f: impl FnOnce(&mut Self)) {
        let outcome = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| f(self)));
        if outcome.is_err() {
            tracing::error!(session, "media session panicked; closing it");
            self.tell_client(
                session,
                Reject::new(ErrorCode::Internal, "media failed; rejoin to continue").into(),
            );
            let _ = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| self.close(session)));
        }
    }

    fn tell_client(&mut self, session: SessionId, msg: ServerMsg) {
        self.out.push_back(Output::Client {
            session,
            msg: Box::new(msg),
        });
    }

    fn tell_room(&mut self, session: SessionId, event: MediaEvent) {
        self.out.push_back(Output::Room { session, event });
    }
}
