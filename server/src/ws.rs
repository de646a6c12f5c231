//! One task per WebSocket connection: decode frames, route them to the room task or the
//! participant's media session, and write what comes back. A failure here ends this
//! connection only.

use std::sync::Arc;

use axum::extract::ws::{CloseFrame, Message, Utf8Bytes, WebSocket};
use futures_util::{SinkExt, StreamExt};
use signaling::limits::TokenBucket;
use signaling::room::ConnId;
use signaling::wire::{self, ClientMsg, ErrorCode, LeaveReason, Reject, ServerMsg};
use tokio::sync::{Notify, mpsc, oneshot};
use tokio::time::Instant;

use crate::media::{SessionHandle, Signal};
use crate::metrics::ConnState;
use crate::room::{ClientLink, OpenError, RoomCmd, RoomHandle};
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
/// Sustained client messages per second (trickle ICE bursts fit in the burst).
const MESSAGES_PER_SECOND: f64 = 50.0;
/// Client messages allowed at once.
const MESSAGE_BURST: f64 = 200.0;

struct Membership {
    room: RoomHandle,
    session: Arc<SessionHandle>,
}

struct Conn {
    id: ConnId,
    state: AppState,
    out_tx: mpsc::Sender<ServerMsg>,
    kicked: Arc<Notify>,
    bucket: TokenBucket,
    /// Whether the last message was refused by the rate limit (one error per episode).
    limited: bool,
    member: Option<Membership>,
    /// The client sent `leave`. From then on `left` is the only message it gets, and what it
    /// sends is ignored (docs/protocol.md, "Leaving").
    leaving: bool,
    /// This connection in `roundtable_connections`.
    counted: ConnState,
}

/// Serve one upgraded WebSocket until it closes.
pub async fn serve(socket: WebSocket, state: AppState) {
    let (mut sink, mut stream) = socket.split();
    let (out_tx, mut out_rx) = mpsc::channel(OUTBOUND_QUEUE);
    let id = state.next_conn_id();
    let kicked = Arc::new(Notify::new());
    let bucket = TokenBucket::new(
        Instant::now().into_std(),
        MESSAGES_PER_SECOND,
        MESSAGE_BURST,
    );
    let counted = state.metrics.connection();
    let mut conn = Conn {
        id,
        state,
        out_tx,
        kicked: kicked.clone(),
        bucket,
        limited: false,
        member: None,
        leaving: false,
        counted,
    };
    let keepalive = conn.state.keepalive;
    let mut ping = tokio::time::interval(keepalive.ping_every);
    ping.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    let mut last_heard = Instant::now();
    let mut stopping = conn.state.stopping();
    let close: Option<(u16, &str)> = loop {
        tokio::select! {
            frame = stream.next() => match frame {
                Some(Ok(Message::Text(text))) => {
                    last_heard = Instant::now();
                    if conn.accepts(last_heard) {
                        conn.handle_text(text.as_str()).await;
                    }
                }
                Some(Ok(Message::Binary(_))) => {
                    last_heard = Instant::now();
                    // Counted like text: each refusal is a reply, so unmetered it would let a
                    // client make the server write as fast as it can send.
                    if conn.accepts(last_heard) {
                        conn.reply(Reject::new(ErrorCode::BinaryFrame, "the protocol is JSON text frames"));
                    }
                }
                Some(Ok(Message::Ping(_) | Message::Pong(_))) => last_heard = Instant::now(),
                Some(Ok(Message::Close(_))) | None => break None,
                Some(Err(e)) => {
                    tracing::debug!(conn = id, err = %e, "websocket read error");
                    break close_for(e);
                }
            },
            Some(msg) = out_rx.recv() => {
                let left = matches!(msg, ServerMsg::Left {});
                if conn.leaving && !left {
                    continue; // an event or reply that was on its way when `leave` came
                }
                if sink.send(Message::Text(wire::encode_server(&msg).into())).await.is_err() {
                    break None;
                }
                if left {
                    break Some((1000, "left"));
                }
            }
            _ = stopping.changed() => break Some((1001, "server_shutdown")),
            _ = kicked.notified() => break Some((1008, "too_slow")),
            _ = ping.tick() => {
                if last_heard.elapsed() >= keepalive.close_after {
                    break Some((1001, "keepalive_timeout"));
                }
                if sink.send(Message::Ping(Default::default())).await.is_err() {
                    break None;
                }
            }
        }
    };
    if let Some((code, reason)) = close {
        let frame = CloseFrame {
            code,
            reason: Utf8Bytes::from_static(reason),
        };
        let _ = sink.send(Message::Close(Some(frame))).await;
    }
    conn.leave(LeaveReason::Disconnected).await;
}

impl Conn {
    /// Whether to handle a frame that arrived at `now`: not once the client has sent `leave`,
    /// and not beyond the rate limit.
    fn accepts(&mut self, now: Instant) -> bool {
        !self.leaving && self.within_rate(now)
    }

    fn within_rate(&mut self, now: Instant) -> bool {
        let ok = self.bucket.take(now.into_std());
        if !ok && !self.limited {
            let msg = format!("more than {MESSAGES_PER_SECOND} messages per second; dropping");
            self.reply(Reject::new(ErrorCode::RateLimited, msg));
        }
        self.limited = !ok;
        ok
    }

    async fn handle_text(&mut self, text: &str) {
        let msg = match wire::decode_client(text) {
            Ok(msg) => msg,
            Err(reject) => return self.reply(reject),
        };
        match msg {
            ClientMsg::Ping { id } => self.send(ServerMsg::Pong { id }),
            ClientMsg::Join { v, room, name } => self.join(v, room, name).await,
            ClientMsg::Leave {} => self.leave(LeaveReason::Left).await,
            ClientMsg::Chat { text } => {
                self.send_to_room(|conn| RoomCmd::Chat { conn, text }).await
            }
            ClientMsg::MediaState { audio, video } => {
                self.send_to_room(|conn| RoomCmd::MediaState { conn, audio, video })
                    .await
            }
            ClientMsg::Offer { pc, sdp } => self.signal(Signal::Offer { pc, sdp }),
            ClientMsg::Answer { pc, sdp } => self.signal(Signal::Answer { pc, sdp }),
            ClientMsg::Candidate { pc, candidate } => {
                self.signal(Signal::Candidate { pc, candidate })
            }
        }
    }

    /// The checks run in the order docs/protocol.md gives: already joined, version, room,
    /// then the room's own (name, capacity).
    async fn join(&mut self, version: u32, room_id: String, name: String) {
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
        for _ in 0..2 {
            let room = match self.state.registry.get_or_start(&room_id).await {
                Ok(room) => room,
                Err(OpenError::NotFound) => {
                    return self.reply(Reject::new(
                        ErrorCode::RoomNotFound,
                        format!("no room `{room_id}`"),
                    ));
                }
                Err(OpenError::Store(e)) => {
                    tracing::error!(err = %e, "room lookup failed");
                    return self.reply(Reject::new(ErrorCode::Internal, "could not open the room"));
                }
            };
            let (reply, outcome) = oneshot::channel();
            let cmd = RoomCmd::Join {
                conn: self.id,
                version,
                name: name.clone(),
                to_client: ClientLink {
                    tx: self.out_tx.clone(),
                    kicked: self.kicked.clone(),
                },
                reply,
            };
            if room.send(cmd).await.is_err() {
                continue;
            }
            match outcome.await {
                Ok(Some(joined)) => {
                    tracing::info!(conn = self.id, room = %room_id, participant = %joined.participant, "joined");
                    self.state.metrics.joined(asked.elapsed());
                    self.counted.set_joined(true);
                    self.member = Some(Membership {
                        room,
                        session: joined.session,
                    });
                }
                Ok(None) => {}      // refused; the room already sent the error
                Err(_) => continue, // the room task stopped for idleness before answering
            }
            return;
        }
        self.reply(Reject::new(
            ErrorCode::Unavailable,
            "the room is restarting; try again",
        ));
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
        let cmd = RoomCmd::Leave {
            conn: self.id,
            reason,
        };
        if member.room.send(cmd).await.is_err() && self.leaving {
            // The room task is gone, so there is no one left to tell: the leave is done.
            self.send(ServerMsg::Left {});
        }
    }

    async fn send_to_room(&mut self, cmd: impl FnOnce(ConnId) -> RoomCmd) {
        let Some(member) = &self.member else {
            return self.reply(Reject::new(ErrorCode::NotJoined, "send `join` first"));
        };
        if member.room.send(cmd(self.id)).await.is_err() {
            self.reply(Reject::new(ErrorCode::Unavailable, "the room has closed"));
        }
    }

    fn signal(&mut self, signal: Signal) {
        let Some(member) = &self.member else {
            return self.reply(Reject::new(ErrorCode::NotJoined, "send `join` first"));
        };
        if let Err(reject) = member.session.signal(signal) {
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
