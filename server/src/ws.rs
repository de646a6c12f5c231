//! One task per WebSocket connection: decode frames, route them to the room task or the
//! participant's media session, and queue what comes back for the connection's writer
//! ([`Outbox`]). A failure here ends this connection only.
//!
//! Over-limit messages are dropped here, before they reach a room: each connection has a
//! budget, its address has one shared by all its connections, and the messages that go to
//! the room from everyone (chat, media state, hands) have a smaller one.

use std::net::IpAddr;
use std::sync::Arc;

use axum::extract::ws::{CloseFrame, Message, Utf8Bytes, WebSocket};
use futures_util::StreamExt;
use signaling::limits::TokenBucket;
use signaling::policy::Ticket;
use signaling::roles::{Action, Role, allows};
use signaling::room::ConnId;
use signaling::wire::{self, ClientMsg, ErrorCode, LeaveReason, PcRole, Reject, ServerMsg};
use tokio::sync::{Notify, mpsc, oneshot};
use tokio::time::Instant;

use crate::media::{SessionHandle, Signal};
use crate::metrics::ConnState;
use crate::outbox::{Ended, Outbox};
use crate::peers::Budget;
use crate::room::{
    ClientLink, JoinOutcome, Joined, OpenError, RoomCmd, RoomHandle, sleep_until_opt,
};
use crate::state::AppState;

/// Frames larger than this are refused by the WebSocket layer (close 1009).
pub const MAX_FRAME_BYTES: usize = 1024 * 1024;

/// Bytes the WebSocket reads at a time; larger frames are assembled over several reads.
/// tungstenite's default (128 KiB) was the largest allocation per participant after media.
/// Its buffer grows to the largest message (an SDP answer with a section per forwarded track)
/// and never shrinks, and each growth at least doubles it, so a smaller start leaves it
/// smaller: 4 KiB instead of 16 saved about 18 KiB per participant in a room of 40.
pub const READ_BUFFER_BYTES: usize = 4 * 1024;
/// Messages queued for one connection; a client this far behind is disconnected.
const OUTBOUND_QUEUE: usize = 1024;
/// Messages for the room (chat, media state) per second, and at once. The room's own chat
/// rule (5 in 10 s) is stricter; this drops a flood before it reaches the room's queue.
const ROOM_MESSAGES_PER_SECOND: f64 = 1.0;
const ROOM_MESSAGE_BURST: f64 = 10.0;

/// The room a connection joined: seated, or in its waiting room.
struct Membership {
    room: RoomHandle,
    /// The seat; `None` while in the waiting room.
    seat: Option<Seat>,
    /// The invite whose use this join took, given back if it is never seated.
    invite: Option<String>,
}

struct Seat {
    session: Arc<SessionHandle>,
    role: Role,
}

struct Conn {
    id: ConnId,
    state: AppState,
    out_tx: mpsc::Sender<ServerMsg>,
    /// Taken by the connection's loop.
    out_rx: Option<mpsc::Receiver<ServerMsg>>,
    kicked: Arc<Notify>,
    bucket: TokenBucket,
    /// The budget this connection's address shares with its other connections.
    budget: Option<Arc<Budget>>,
    /// Whether the last message was refused by the rate limit (one error per episode).
    limited: bool,
    /// When the client was last heard from (a message, a ping or a pong).
    last_heard: Instant,
    /// Over its budget, the socket is not read until then.
    paused_until: Option<Instant>,
    /// The time one token of the connection's budget takes to come back.
    token_time: std::time::Duration,
    /// The budget of messages for the room, and whether its last one was refused.
    room_bucket: TokenBucket,
    room_limited: bool,
    member: Option<Membership>,
    /// Set by a join that went to the waiting room; the loop waits on it for the seat.
    admission: Option<oneshot::Receiver<Joined>>,
    /// The client sent `leave`. From then on `left` is the only message it gets, and what it
    /// sends is ignored (docs/protocol.md, "Leaving").
    leaving: bool,
    /// This connection in `roundtable_connections`.
    counted: ConnState,
}

/// Serve one upgraded WebSocket until it closes. `client` is its address, when known.
pub async fn serve(socket: WebSocket, state: AppState, client: Option<IpAddr>) {
    let _running = state.websockets.enter();
    let (sink, mut stream) = socket.split();
    let limits = state.limits.clone();
    let mut outbox = Outbox::start(
        sink,
        limits.send_queue_bytes,
        limits.write_timeout,
        state.queued.clone(),
    );
    let mut conn = Conn::new(state, client);
    let mut out_rx = conn.out_rx.take().expect("a fresh connection");
    let keepalive = conn.state.keepalive;
    let mut ping = tokio::time::interval(keepalive.ping_every);
    ping.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    let mut stopping = conn.state.stopping();
    let kicked = conn.kicked.clone();
    let join_by = tokio::time::sleep(limits.join_timeout);
    tokio::pin!(join_by);
    // A join in the waiting room: resolves with the seat.
    let mut admission: Option<oneshot::Receiver<Joined>> = None;
    let close: Option<(u16, &str)> = loop {
        // Someone waiting has joined as far as the timeout is concerned.
        let unjoined = conn.member.is_none() && !conn.leaving;
        tokio::select! {
            frame = stream.next(), if conn.paused_until.is_none() => {
                let result = conn.handle_frame(frame).await;
                if let Some(rx) = conn.admission.take() {
                    admission = Some(rx);
                }
                if let Err(close) = result {
                    break close;
                }
            }
            seat = async { admission.as_mut().expect("guarded").await }, if admission.is_some() => {
                admission = None;
                // No seat: declined (its message, on its way, closes the socket), or the
                // room stopped.
                match seat {
                    Ok(joined) => conn.seated(joined),
                    Err(_) => conn.room_gone_while_waiting(),
                }
            }
            _ = sleep_until_opt(conn.paused_until) => conn.paused_until = None,
            Some(msg) = out_rx.recv() => {
                let left = matches!(msg, ServerMsg::Left {});
                if conn.leaving && !left {
                    continue; // an event or reply that was on its way when `leave` came
                }
                // Admitted from the waiting room: the seat was handed over before `joined`
                // was queued, so take it now, before the client can answer `joined`.
                if matches!(msg, ServerMsg::Joined { .. })
                    && let Some(seat) = admission.as_mut().and_then(|rx| rx.try_recv().ok())
                {
                    admission = None;
                    conn.seated(seat);
                }
                // The last message before the room lets go of the connection.
                let last = match msg {
                    ServerMsg::Left {} => Some("left"),
                    ServerMsg::Removed { .. } => Some("removed"),
                    ServerMsg::Declined {} => Some("declined"),
                    _ => None,
                };
                if outbox.push(Message::Text(wire::encode_server(&msg).into())).is_err() {
                    break Some((1008, "too_slow"));
                }
                if let Some(reason) = last {
                    if !left {
                        // Removed or declined: the room has forgotten this connection.
                        conn.released();
                    }
                    break Some((1000, reason));
                }
            }
            ended = outbox.ended() => break match ended {
                Ended::Stalled => Some((1008, "write_timeout")),
                Ended::Done | Ended::Broken => None,
            },
            _ = &mut join_by, if unjoined => break Some((1008, "join_timeout")),
            _ = stopping.changed() => break Some((1001, "server_shutdown")),
            _ = kicked.notified() => break Some((1008, "too_slow")),
            _ = ping.tick() => {
                if conn.last_heard.elapsed() >= keepalive.close_after {
                    break Some((1001, "keepalive_timeout"));
                }
                if outbox.push(Message::Ping(Default::default())).is_err() {
                    break Some((1008, "too_slow"));
                }
            }
        }
    };
    if let Some((code, reason)) = close {
        tracing::debug!(conn = conn.id, code, reason, "closing websocket");
    }
    let frame = close.map(|(code, reason)| CloseFrame {
        code,
        reason: Utf8Bytes::from_static(reason),
    });
    conn.leave(LeaveReason::Disconnected).await;
    outbox.close(frame).await;
}

/// Closes the connection, with a close frame if the socket can take one.
type Close = Option<(u16, &'static str)>;

impl Conn {
    /// Handle one frame from the client; `Err` ends the connection.
    async fn handle_frame(
        &mut self,
        frame: Option<Result<Message, axum::Error>>,
    ) -> Result<(), Close> {
        let now = Instant::now();
        match frame {
            Some(Ok(Message::Text(text))) => {
                self.last_heard = now;
                if self.accepts(now) {
                    self.handle_text(text.as_str()).await;
                }
            }
            // Counted like text: each refusal is a reply, so unmetered it would let a client
            // make the server write as fast as it can send. So are pings, which the WebSocket
            // layer answers.
            Some(Ok(Message::Binary(_))) => {
                self.last_heard = now;
                if self.accepts(now) {
                    let msg = "the protocol is JSON text frames";
                    self.reply(Reject::new(ErrorCode::BinaryFrame, msg));
                }
            }
            Some(Ok(Message::Ping(_))) => {
                self.last_heard = now;
                self.accepts(now);
            }
            Some(Ok(Message::Pong(_))) => self.last_heard = now,
            Some(Ok(Message::Close(_))) | None => return Err(None),
            Some(Err(e)) => {
                tracing::debug!(conn = self.id, err = %e, "websocket read error");
                return Err(close_for(e));
            }
        }
        Ok(())
    }

    fn new(state: AppState, client: Option<IpAddr>) -> Self {
        let (out_tx, out_rx) = mpsc::channel(OUTBOUND_QUEUE);
        let now = Instant::now().into_std();
        let limits = &state.limits;
        let bucket = TokenBucket::new(now, limits.messages_per_second, limits.message_burst());
        let budget = client.map(|ip| state.peers.budget(ip));
        Conn {
            id: state.next_conn_id(),
            out_tx,
            out_rx: Some(out_rx),
            kicked: Arc::new(Notify::new()),
            bucket,
            budget,
            limited: false,
            last_heard: Instant::now(),
            paused_until: None,
            token_time: std::time::Duration::from_secs_f64(1.0 / limits.messages_per_second),
            room_bucket: TokenBucket::new(now, ROOM_MESSAGES_PER_SECOND, ROOM_MESSAGE_BURST),
            room_limited: false,
            member: None,
            admission: None,
            leaving: false,
            counted: state.metrics.connection(),
            state,
        }
    }

    /// Whether to handle a frame that arrived at `now`: not once the client has sent `leave`,
    /// and not beyond the rate limit.
    fn accepts(&mut self, now: Instant) -> bool {
        !self.leaving && self.within_rate(now)
    }

    /// The connection's budget, then its address's: a flood from many sockets of one
    /// address costs the others nothing. After a refusal the socket is not read for one
    /// token's time, so a flood costs the server about one read per token; the rest waits
    /// in the flooder's own socket.
    fn within_rate(&mut self, now: Instant) -> bool {
        let ok =
            self.bucket.take(now.into_std()) && self.budget.as_ref().is_none_or(|b| b.take(now));
        if !ok {
            self.paused_until = Some(now + self.token_time);
        }
        if !ok && !self.limited {
            let msg = "too many messages from this connection or address; dropping";
            self.reply(Reject::new(ErrorCode::RateLimited, msg));
        }
        self.limited = !ok;
        ok
    }

    /// The smaller budget of what goes to the room.
    fn within_room_rate(&mut self) -> bool {
        let ok = self.room_bucket.take(Instant::now().into_std());
        if !ok && !self.room_limited {
            let msg =
                "too many messages for the room (chat, media state, hands, agenda edits); dropping";
            self.reply(Reject::new(ErrorCode::RateLimited, msg));
        }
        self.room_limited = !ok;
        ok
    }

    async fn handle_text(&mut self, text: &str) {
        let msg = match wire::decode_client(text) {
            Ok(msg) => msg,
            Err(reject) => return self.reply(reject),
        };
        match msg {
            ClientMsg::Ping { id } => {
                let time = crate::room::now().unix_ms;
                self.send(ServerMsg::Pong { id, time })
            }
            ClientMsg::Join {
                v,
                room,
                name,
                invite,
                consent,
            } => self.join(v, room, name, invite, consent).await,
            ClientMsg::Leave {} => self.leave(LeaveReason::Left).await,
            ClientMsg::Offer { pc, sdp } => self.signal(Signal::Offer { pc, sdp }),
            ClientMsg::Answer { pc, sdp } => self.signal(Signal::Answer { pc, sdp }),
            ClientMsg::Candidate { pc, candidate } => {
                self.signal(Signal::Candidate { pc, candidate })
            }
            // Chat, media state, hands and moderation: the room decides. What everyone
            // may send, and what the room then tells everyone, takes from the room budget;
            // a facilitator's actions do not (the connection's budget still holds).
            msg => {
                let metered = matches!(
                    msg,
                    ClientMsg::Chat { .. }
                        | ClientMsg::MediaState { .. }
                        | ClientMsg::RaiseHand {}
                        | ClientMsg::LowerHand { participant: None }
                        | ClientMsg::YieldFloor {}
                        | ClientMsg::AgendaSet { .. }
                        | ClientMsg::Consent { .. }
                );
                self.send_to_room(metered, |conn| RoomCmd::Message { conn, msg })
            }
        }
    }

    /// The checks run in the order docs/protocol.md gives: already joined, version, room,
    /// invite, then the room's own (name, open link, seats).
    async fn join(
        &mut self,
        version: u32,
        room_id: String,
        name: String,
        invite: Option<String>,
        consent: bool,
    ) {
        if self.member.is_some() {
            return self.reply(Reject::new(
                ErrorCode::AlreadyJoined,
                "this connection already joined",
            ));
        }
        if let Err(reject) = wire::check_version(version) {
            return self.reply(reject);
        }
        let asked = Instant::now();
        // A room task may exit between lookup and send (idle shutdown); then start it anew.
        for attempt in 0..2 {
            let room = match self.state.registry.get_or_start(&room_id).await {
                Ok(room) => room,
                Err(OpenError::NotFound) => {
                    return self.reply(Reject::new(
                        ErrorCode::RoomNotFound,
                        format!("no room `{}`", wire::quote(&room_id)),
                    ));
                }
                Err(OpenError::Store(e)) => {
                    tracing::error!(err = %e, "room lookup failed");
                    return self.reply(Reject::new(ErrorCode::Internal, "could not open the room"));
                }
            };
            let (ticket, snapshot) = match self.admission_of(&room_id, invite.as_deref()).await {
                Ok(found) => found,
                Err(reject) => return self.reply(reject),
            };
            let used = ticket.invite.clone();
            let (reply, outcome) = oneshot::channel();
            let cmd = RoomCmd::Join {
                conn: self.id,
                version,
                name: name.clone(),
                consent,
                ticket: Box::new(ticket),
                snapshot: Box::new(snapshot),
                to_client: ClientLink {
                    tx: self.out_tx.clone(),
                    kicked: self.kicked.clone(),
                },
                reply,
            };
            let outcome = match room.send(cmd).await {
                Ok(()) => outcome.await.ok(),
                Err(_) => None,
            };
            let member = |seat| Membership {
                room: room.clone(),
                seat,
                invite: used.clone(),
            };
            match outcome {
                Some(JoinOutcome::Seated(joined)) => {
                    self.member = Some(member(None));
                    self.seated(joined);
                    self.state.metrics.joined(asked.elapsed());
                }
                Some(JoinOutcome::Waiting(rx)) => {
                    tracing::info!(conn = self.id, room = %room_id, "waiting");
                    self.member = Some(member(None));
                    self.admission = Some(rx);
                }
                // Given back before the refusal reaches the client (it waits in the queue
                // this task reads after `join`): a retry finds the use there.
                Some(JoinOutcome::Refused) => self.give_back_invite(used).await,
                // The room task stopped for idleness before answering: once more.
                None => {
                    self.give_back_invite(used).await;
                    if attempt == 0 {
                        continue;
                    }
                    self.reply(Reject::new(
                        ErrorCode::Unavailable,
                        "the room is restarting; try again",
                    ));
                }
            }
            return;
        }
    }

    /// What the join may be: its invite's role (taking one of its uses) or the open link's,
    /// and the room's policy as the store has it now.
    async fn admission_of(
        &self,
        room_id: &str,
        invite: Option<&str>,
    ) -> Result<(Ticket, signaling::policy::Snapshot), Reject> {
        let store = &self.state.store;
        let now = crate::room::now().unix_ms;
        let internal = |e: crate::store::StoreError| {
            tracing::error!(err = %e, "invite or room lookup failed");
            Reject::new(ErrorCode::Internal, "could not open the room")
        };
        let ticket = match invite {
            None => Ticket::open_link(),
            Some(secret) => {
                let hash = crate::invites::secret_hash(secret);
                match store
                    .use_invite(room_id, &hash, now)
                    .await
                    .map_err(internal)?
                {
                    Ok(record) => Ticket {
                        role: record.role,
                        invite: Some(record.id),
                        name: record.name,
                    },
                    Err(refusal) => return Err(crate::invites::refused(refusal)),
                }
            }
        };
        let snapshot = match store.room_snapshot(room_id, now).await {
            Ok(Some(snapshot)) => snapshot,
            Ok(None) => {
                self.give_back_invite(ticket.invite).await;
                return Err(Reject::new(ErrorCode::RoomNotFound, "the room was deleted"));
            }
            Err(e) => {
                self.give_back_invite(ticket.invite).await;
                return Err(internal(e));
            }
        };
        Ok((ticket, snapshot))
    }

    /// Give back an invite use that seated nobody, before anything else happens on this
    /// connection.
    async fn give_back_invite(&self, invite: Option<String>) {
        let Some(invite) = invite else { return };
        if let Err(e) = self.state.store.release_invite(&invite).await {
            tracing::warn!(%invite, err = %e, "could not give back an invite use");
        }
    }

    /// [`Conn::give_back_invite`] in the background, for a connection that is closing.
    fn release_invite(&self, invite: Option<String>) {
        let Some(invite) = invite else { return };
        let store = self.state.store.clone();
        tokio::spawn(async move {
            if let Err(e) = store.release_invite(&invite).await {
                tracing::warn!(%invite, err = %e, "could not give back an invite use");
            }
        });
    }

    /// The room seated this connection (at its join, or from the waiting room).
    fn seated(&mut self, joined: Joined) {
        let Some(member) = &mut self.member else {
            return;
        };
        tracing::info!(conn = self.id, participant = %joined.participant, role = %joined.role, "joined");
        self.counted.set_joined(true);
        member.invite = None; // the use is spent: it seated someone
        member.seat = Some(Seat {
            session: joined.session,
            role: joined.role,
        });
    }

    /// The room dropped this waiting connection's seat: if the room itself has stopped,
    /// say so and forget it (the client may join again).
    fn room_gone_while_waiting(&mut self) {
        if self.member.as_ref().is_some_and(|m| m.room.is_closed()) {
            if let Some(member) = self.member.take() {
                self.release_invite(member.invite);
            }
            let msg = "the room closed before you were admitted";
            self.reply(Reject::new(ErrorCode::Unavailable, msg));
        }
    }

    /// The room let go of this connection (removed, declined): there is nothing to leave.
    fn released(&mut self) {
        if let Some(member) = self.member.take() {
            self.release_invite(member.invite);
        }
        self.counted.set_joined(false);
    }

    async fn leave(&mut self, reason: LeaveReason) {
        let Some(member) = self.member.take() else {
            if reason == LeaveReason::Left {
                self.reply(Reject::new(ErrorCode::NotJoined, "send `join` first"));
            }
            return;
        };
        self.leaving = reason == LeaveReason::Left;
        self.counted.set_joined(false);
        self.release_invite(member.invite.clone());
        let cmd = RoomCmd::Leave {
            conn: self.id,
            reason,
        };
        if member.room.send(cmd).await.is_err() && self.leaving {
            // The room task is gone, so there is no one left to tell: the leave is done.
            self.send(ServerMsg::Left {});
        }
    }

    fn send_to_room(&mut self, metered: bool, cmd: impl FnOnce(ConnId) -> RoomCmd) {
        if self.member.is_none() {
            return self.reply(Reject::new(ErrorCode::NotJoined, "send `join` first"));
        }
        if metered && !self.within_room_rate() {
            return;
        }
        let Some(member) = &self.member else { return };
        match member.room.try_send(cmd(self.id)) {
            Ok(()) => {}
            Err(mpsc::error::TrySendError::Full(_)) => {
                self.reply(Reject::new(
                    ErrorCode::RateLimited,
                    "the room is busy; try again",
                ));
            }
            Err(mpsc::error::TrySendError::Closed(_)) => {
                self.reply(Reject::new(ErrorCode::Unavailable, "the room has closed"));
            }
        }
    }

    fn signal(&mut self, signal: Signal) {
        let Some(seat) = self.member.as_ref().and_then(|m| m.seat.as_ref()) else {
            return self.reply(Reject::new(ErrorCode::NotJoined, "send `join` first"));
        };
        if matches!(
            signal,
            Signal::Offer {
                pc: PcRole::Publish,
                ..
            }
        ) && !allows(seat.role, Action::Publish)
        {
            let why = format!("a {} does not publish media", seat.role);
            return self.reply(Reject::new(ErrorCode::Forbidden, why));
        }
        if let Err(reject) = seat.session.signal(signal) {
            self.reply(reject);
        }
    }

    fn reply(&self, reject: Reject) {
        self.send(reject.into());
    }

    fn send(&self, msg: ServerMsg) {
        if self.out_tx.try_send(msg).is_err() {
            tracing::warn!(conn = self.id, "outbound queue full; message dropped");
        }
    }
}

/// The close frame for a read error, if the socket can still take one: an oversized frame
/// gets 1009 with a stable reason; a broken socket gets nothing.
fn close_for(e: axum::Error) -> Option<(u16, &'static str)> {
    let inner = e.into_inner();
    match inner.downcast_ref::<tungstenite::Error>() {
        Some(tungstenite::Error::Capacity(_)) => Some((1009, "message_too_large")),
        Some(tungstenite::Error::Protocol(_)) => Some((1002, "protocol_error")),
        _ => None,
    }
}
