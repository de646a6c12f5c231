//! One task per room. It owns the sans-IO [`signaling::room::Room`] and carries out its
//! outputs: messages to connections, media subscriptions, chat persistence. Callers hold a
//! cheap [`RoomHandle`]; the only shared lock is the [`Registry`] of handles.
//!
//! Of media, the task holds ids and values: each participant's [`SessionHandle`] and each
//! published track's [`TrackKey`]. A room event's subscription changes go to the engine in
//! one command per subscriber, after the event's messages to clients: a client hears of a
//! track before an offer adds or removes it, and gets one offer per event.
//!
//! Chat is committed before anyone sees it: the room's [`chat`] writer commits in batches and
//! reports back on a channel the task `select!`s on, and only then does the room send.

pub mod chat;
mod record;
mod registry;
mod writer;

use std::collections::{HashMap, HashSet};
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::time::Duration;

use signaling::Now;
use signaling::policy::{Snapshot, Ticket};
use signaling::roles::Role;
use signaling::room::{ConnId, Join, Output, Room};
use signaling::wire::{ChatMessage, ClientMsg, LeaveReason, MediaKind, Reject, ServerMsg};
use tokio::sync::{mpsc, oneshot};

use self::chat::ChatReport;
pub use self::registry::{OpenError, Registry};
use crate::media::{MediaEvent, SessionHandle, TrackKey};

/// How long an empty room's task lingers before it exits, by default.
pub const IDLE_GRACE: Duration = Duration::from_secs(30);

/// Commands a room task takes.
pub enum RoomCmd {
    /// A connection asks to join, with what its invite gives it and the room's policy as
    /// the store has it now.
    Join {
        /// The connection.
        conn: ConnId,
        /// Protocol version it speaks.
        version: u32,
        /// Display name.
        name: String,
        /// Whether the joiner agrees to be recorded.
        consent: bool,
        /// Its role and invite.
        ticket: Box<Ticket>,
        /// The room's policy and reserved invites, read just before.
        snapshot: Box<Snapshot>,
        /// Where the room sends this connection's messages.
        to_client: ClientLink,
        /// The outcome.
        reply: oneshot::Sender<JoinOutcome>,
    },
    /// The connection left or closed.
    Leave {
        /// The connection.
        conn: ConnId,
        /// Why.
        reason: LeaveReason,
    },
    /// A message for the room from a joined (or waiting) connection: chat, media state,
    /// hands and moderation. Others are not sent here.
    Message {
        /// The connection.
        conn: ConnId,
        /// The message.
        msg: ClientMsg,
    },
    /// The admin API reads the agenda, or replaces its plan (then the reply is the agenda
    /// after the change, or why it was refused).
    Agenda {
        /// The new plan; `None` only reads.
        plan: Option<Box<signaling::agenda::Plan>>,
        /// The agenda.
        reply: oneshot::Sender<Result<Box<signaling::agenda::Agenda>, Reject>>,
    },
    /// The admin API mutes or unmutes a participant's audio or video (the gate). The reply
    /// is how many of their tracks it applies to now, or why it was refused.
    Forwarding {
        /// The publisher.
        participant: String,
        /// Audio or video.
        kind: MediaKind,
        /// Whether their packets reach the others.
        open: bool,
        /// Tracks it applies to now.
        reply: oneshot::Sender<Result<usize, Reject>>,
    },
    /// The room's policy or invites changed in the store: the fresh snapshot. The room
    /// keeps it if its revision is newer than the one it has.
    Refresh {
        /// Policy, reserved invites and revision.
        snapshot: signaling::policy::Snapshot,
    },
}

/// What became of a join.
pub enum JoinOutcome {
    /// Seated.
    Seated(Joined),
    /// In the waiting room: the receiver resolves when a facilitator (or auto-admit) seats
    /// it, and fails when it is declined or the room stops.
    Waiting(oneshot::Receiver<Joined>),
    /// Refused; the refusal was already sent to the connection.
    Refused,
}

/// How the room reaches one connection.
pub struct ClientLink {
    /// Messages for the socket writer.
    pub tx: mpsc::Sender<ServerMsg>,
    /// Notified when the room gives up on the connection (its queue overflowed).
    pub kicked: Arc<tokio::sync::Notify>,
}

/// A successful join.
pub struct Joined {
    /// The participant id.
    pub participant: String,
    /// Its media session, for negotiation messages.
    pub session: Arc<SessionHandle>,
    /// Its role.
    pub role: Role,
}

/// A cheap handle on a running room task.
#[derive(Clone)]
pub struct RoomHandle {
    tx: mpsc::Sender<RoomCmd>,
    occupancy: Arc<AtomicUsize>,
    commands: Arc<AtomicU64>,
}

impl RoomHandle {
    /// Send a command; `Err` means the task has exited (the caller may restart it).
    pub async fn send(&self, cmd: RoomCmd) -> Result<(), RoomCmd> {
        self.tx.send(cmd).await.map_err(|e| e.0)
    }

    /// Send a command if the room's queue has room: a busy room sheds a flooding
    /// connection's messages instead of queueing them.
    pub fn try_send(&self, cmd: RoomCmd) -> Result<(), mpsc::error::TrySendError<RoomCmd>> {
        self.tx.try_send(cmd)
    }

    /// Whether the task has stopped.
    pub fn is_closed(&self) -> bool {
        self.tx.is_closed()
    }

    /// Commands the task has taken.
    pub fn commands(&self) -> u64 {
        self.commands.load(Ordering::Relaxed)
    }

    /// Participants in the room now.
    pub fn occupancy(&self) -> usize {
        self.occupancy.load(Ordering::Relaxed)
    }
}

/// The time as the core wants it.
pub fn now() -> Now {
    let unix_ms = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_millis() as i64);
    Now {
        instant: tokio::time::Instant::now().into_std(),
        unix_ms,
    }
}

struct RoomTask {
    room: Room,
    registry: Arc<Registry>,
    occupancy: Arc<AtomicUsize>,
    commands: Arc<AtomicU64>,
    conns: HashMap<ConnId, ClientLink>,
    sessions: HashMap<String, Arc<SessionHandle>>,
    /// Published tracks: track id → key, publisher and kind.
    tracks: HashMap<String, (TrackKey, String, MediaKind)>,
    /// Subscription changes of the outputs being drained: subscriber → (add, remove).
    changes: HashMap<String, (Vec<TrackKey>, Vec<TrackKey>)>,
    /// Gated media: (participant, kind) whose tracks, those to come included, are not
    /// forwarded.
    gated: HashSet<(String, MediaKind)>,
    /// Recorded participants, with their recording session: their audio tracks, those to
    /// come included, go to the recorder.
    recorded: HashMap<String, String>,
    /// Tracks the engine hands to the recorder now.
    taps: HashSet<TrackKey>,
    media_tx: mpsc::UnboundedSender<MediaEvent>,
    media_rx: mpsc::UnboundedReceiver<MediaEvent>,
    /// To the chat writer, and its reports back.
    chat_tx: mpsc::UnboundedSender<ChatMessage>,
    chat_reports: mpsc::UnboundedReceiver<ChatReport>,
    /// To the writer of audit entries and revocations.
    writes: mpsc::UnboundedSender<writer::Job>,
    /// Waiting connections: where their seat goes when they are admitted.
    admissions: HashMap<ConnId, oneshot::Sender<Joined>>,
}

impl RoomTask {
    fn new(room: Room, registry: Arc<Registry>, handle: RoomHandle) -> Self {
        let (media_tx, media_rx) = mpsc::unbounded_channel();
        let (reports_tx, chat_reports) = mpsc::unbounded_channel();
        let chat_tx = chat::start(
            &registry.tasks,
            registry.store.clone(),
            room.info().id.clone(),
            registry.storage.clone(),
            registry.metrics.clone(),
            reports_tx,
        );
        let writes = writer::start(
            &registry.tasks,
            registry.store.clone(),
            registry.recorder.clone(),
            room.info().id.clone(),
        );
        RoomTask {
            room,
            registry,
            occupancy: handle.occupancy,
            commands: handle.commands,
            conns: HashMap::new(),
            sessions: HashMap::new(),
            tracks: HashMap::new(),
            changes: HashMap::new(),
            gated: HashSet::new(),
            recorded: HashMap::new(),
            taps: HashSet::new(),
            media_tx,
            media_rx,
            chat_tx,
            chat_reports,
            writes,
            admissions: HashMap::new(),
        }
    }

    async fn run(mut self, mut rx: mpsc::Receiver<RoomCmd>, own_tx: mpsc::Sender<RoomCmd>) {
        let id = self.room.info().id.clone();
        tracing::info!(room = %id, "room started");
        // However the task ends (a panic included), its handle leaves the registry: a dead
        // handle would refuse every later join to the room.
        let _unregister = Unregister {
            registry: self.registry.clone(),
            id: id.clone(),
            tx: own_tx.clone(),
        };
        let mut stopping = self.registry.stopping.subscribe();
        let mut stopped = false;
        loop {
            // A task that stopped with chat pending would drop its outcome, and a fresh one
            // would load history without it.
            let idle = self.room.is_empty() && self.room.pending_chat() == 0;
            let timeout = self
                .room
                .poll_timeout(now())
                .map(tokio::time::Instant::from_std);
            tokio::select! {
                cmd = rx.recv() => match cmd {
                    Some(cmd) => {
                        self.commands.fetch_add(1, Ordering::Relaxed);
                        self.handle_cmd(cmd);
                    }
                    None => break,
                },
                // Shutdown: take what is queued (`recv` then ends the loop), and leave the
                // chat writer to finish.
                _ = stopping.wait_for(|s| *s), if !stopped => {
                    stopped = true;
                    rx.close();
                }
                Some(event) = self.media_rx.recv() => self.handle_media(event),
                Some(report) = self.chat_reports.recv() => self.handle_chat_report(report),
                _ = sleep_until_opt(timeout) => {
                    self.room.handle_timeout(now());
                    self.drain();
                }
                _ = tokio::time::sleep(self.registry.idle_grace), if idle => {
                    // Unregister, so new joins start a fresh task. A join that raced in gets
                    // no reply (its sender is dropped) and the WebSocket retries it there;
                    // anything else that raced in is about nobody, the room being empty.
                    self.registry.remove_if_same(&id, &own_tx);
                    rx.close();
                    while rx.try_recv().is_ok() {}
                    break;
                }
            }
        }
        // A recording under way ends with the room: its session is stored as ended.
        self.room.handle_shutdown(now());
        self.drain();
        self.untap_all();
        for session in self.sessions.values() {
            session.close();
        }
        tracing::info!(room = %id, "room stopped");
    }

    fn handle_cmd(&mut self, cmd: RoomCmd) {
        let now = now();
        match cmd {
            RoomCmd::Join {
                conn,
                version,
                name,
                consent,
                ticket,
                snapshot,
                to_client,
                reply,
            } => {
                self.conns.insert(conn, to_client);
                self.room.handle_snapshot(now, *snapshot);
                let join = Join {
                    version,
                    name: &name,
                    consent,
                };
                self.room.handle_join(now, conn, join, *ticket);
                self.drain();
                let outcome = if let Some(joined) = self.joined(conn) {
                    JoinOutcome::Seated(joined)
                } else if self.room.is_waiting(conn) {
                    let (tx, rx) = oneshot::channel();
                    self.admissions.insert(conn, tx);
                    JoinOutcome::Waiting(rx)
                } else {
                    self.conns.remove(&conn);
                    JoinOutcome::Refused
                };
                let _ = reply.send(outcome);
            }
            RoomCmd::Leave { conn, reason } => {
                self.room.handle_leave(now, conn, reason);
                self.drain();
                self.conns.remove(&conn);
                self.admissions.remove(&conn);
            }
            RoomCmd::Message { conn, msg } => {
                self.handle_message(now, conn, msg);
                self.drain();
            }
            RoomCmd::Agenda { plan, reply } => {
                let result = match plan {
                    Some(plan) => self.room.handle_admin_agenda(now, *plan),
                    None => Ok(()),
                };
                self.drain();
                let _ = reply.send(result.map(|()| Box::new(self.room.agenda().clone())));
            }
            RoomCmd::Forwarding {
                participant,
                kind,
                open,
                reply,
            } => {
                let result = self.room.handle_admin_mute(now, &participant, kind, !open);
                self.drain();
                let applied = self
                    .tracks
                    .values()
                    .filter(|(_, p, k)| *p == participant && *k == kind)
                    .count();
                let _ = reply.send(result.map(|()| applied));
            }
            RoomCmd::Refresh { snapshot } => {
                self.room.handle_snapshot(now, snapshot);
                self.drain();
            }
        }
    }

    /// Hand a room message to the core.
    fn handle_message(&mut self, now: Now, conn: ConnId, msg: ClientMsg) {
        let room = &mut self.room;
        match msg {
            ClientMsg::Chat { text } => room.handle_chat(now, conn, &text),
            ClientMsg::MediaState { audio, video } => {
                room.handle_media_state(now, conn, audio, video)
            }
            ClientMsg::RaiseHand {} => room.handle_raise_hand(now, conn),
            ClientMsg::LowerHand { participant } => {
                room.handle_lower_hand(now, conn, participant.as_deref())
            }
            ClientMsg::Mute {
                participant,
                kind,
                muted,
            } => room.handle_mute(now, conn, &participant, kind, muted),
            ClientMsg::Remove { participant, bar } => {
                room.handle_remove(now, conn, &participant, bar)
            }
            ClientMsg::Lock { locked } => room.handle_lock(now, conn, locked),
            ClientMsg::Admit { waiter } => room.handle_admit(now, conn, &waiter),
            ClientMsg::Decline { waiter } => room.handle_decline(now, conn, &waiter),
            ClientMsg::AgendaControl { action, seconds } => {
                room.handle_agenda_control(now, conn, action, seconds)
            }
            ClientMsg::AgendaSet { plan } => room.handle_agenda_set(now, conn, plan),
            ClientMsg::GiveFloor { participant } => room.handle_give_floor(now, conn, &participant),
            ClientMsg::TakeFloor { participant } => room.handle_take_floor(now, conn, &participant),
            ClientMsg::YieldFloor {} => room.handle_yield_floor(now, conn),
            ClientMsg::Consent { granted } => room.handle_consent(now, conn, granted),
            ClientMsg::Recording {
                on,
                presentation_only,
            } => room.handle_recording(now, conn, on, presentation_only),
            // The connection's own task handles the rest; it never sends them here.
            ClientMsg::Join { .. }
            | ClientMsg::Leave {}
            | ClientMsg::Offer { .. }
            | ClientMsg::Answer { .. }
            | ClientMsg::Candidate { .. }
            | ClientMsg::Ping { .. } => {
                tracing::warn!(conn, "a connection message reached the room");
            }
        }
    }

    /// The seat of `conn`, if it is seated and its media session is open.
    fn joined(&self, conn: ConnId) -> Option<Joined> {
        let participant = self.room.participant_of(conn)?.to_string();
        Some(Joined {
            session: self.sessions.get(&participant)?.clone(),
            role: self.room.role_of(&participant)?,
            participant,
        })
    }

    fn handle_chat_report(&mut self, report: ChatReport) {
        match report {
            ChatReport::Stored { seq } => self.room.handle_chat_stored(now(), seq),
            ChatReport::Failed { seq } => self.room.handle_chat_failed(now(), seq),
        }
        self.drain();
    }

    fn handle_media(&mut self, event: MediaEvent) {
        let now = now();
        match event {
            MediaEvent::TrackPublished { key, info } => {
                if !self.sessions.contains_key(&info.participant) {
                    return; // gone meanwhile; its session is closing
                }
                if self.gated.contains(&(info.participant.clone(), info.kind)) {
                    // Sent before the subscriptions: no packet of it is forwarded.
                    self.registry.media.gate(key, false);
                }
                // Someone recorded publishes a new track: it is recorded from its first packet
                // that the engine forwards from now on.
                if let Some(session) = self.recorded.get(&info.participant).cloned() {
                    self.tap(key, &info, session);
                }
                self.tracks
                    .insert(info.id.clone(), (key, info.participant.clone(), info.kind));
                self.room
                    .handle_track_published(now, &info.participant, &info.id, info.kind);
            }
            MediaEvent::TrackEnded { key, track_id } => {
                if self
                    .tracks
                    .get(&track_id)
                    .is_some_and(|(k, _, _)| *k == key)
                {
                    self.untap(key);
                    self.tracks.remove(&track_id);
                    self.room.handle_track_unpublished(now, &track_id);
                }
            }
        }
        self.drain();
    }

    fn drain(&mut self) {
        // Before any message goes out, so whoever hears of a join or leave sees the new count.
        self.occupancy.store(self.room.len(), Ordering::Relaxed);
        while let Some(output) = self.room.poll_output() {
            match output {
                Output::Send { conn, msg } => self.send(conn, msg),
                Output::Admitted { conn, participant } => {
                    self.open_media(conn, participant);
                    // Seated from the waiting room: its connection learns of its seat.
                    if let Some(tx) = self.admissions.remove(&conn)
                        && let Some(joined) = self.joined(conn)
                    {
                        let _ = tx.send(joined);
                    }
                }
                Output::Subscribe { subscriber, track } => {
                    if let Some((key, _, _)) = self.tracks.get(&track.id) {
                        self.changes.entry(subscriber).or_default().0.push(*key);
                    }
                }
                Output::Unsubscribe {
                    subscriber,
                    track_id,
                } => {
                    if let Some((key, _, _)) = self.tracks.get(&track_id) {
                        self.changes.entry(subscriber).or_default().1.push(*key);
                    }
                }
                Output::RefuseTrack { track_id } => {
                    // Closed for good and forgotten: nobody subscribes to it.
                    if let Some((key, _, _)) = self.tracks.remove(&track_id) {
                        self.registry.media.gate(key, false);
                        self.untap(key);
                    }
                }
                Output::Gate {
                    participant,
                    kind,
                    open,
                } => self.gate(participant, kind, open),
                Output::Release { conn } => {
                    // What was sent to it stays queued; its socket closes after.
                    self.conns.remove(&conn);
                    self.admissions.remove(&conn);
                }
                Output::RevokeInvite { invite } => {
                    let _ = self.writes.send(writer::Job::Revoke(invite));
                }
                Output::Audit(entry) => {
                    let _ = self.writes.send(writer::Job::Audit(entry));
                }
                Output::SaveAgenda(agenda) => {
                    let _ = self.writes.send(writer::Job::Agenda(agenda));
                }
                Output::Record {
                    participant,
                    session,
                    on,
                } => self.record(participant, session, on),
                Output::Consent(entry) => {
                    let _ = self.writes.send(writer::Job::Consent(entry));
                }
                Output::RecordingStarted(session) => {
                    let _ = self.writes.send(writer::Job::SessionStarted(session));
                }
                Output::RecordingEnded { session, ended_at } => {
                    let _ = self.writes.send(writer::Job::SessionEnded {
                        id: session,
                        ended_at,
                    });
                }
                Output::CloseMedia { participant } => {
                    self.stop_recording(&participant);
                    if let Some(session) = self.sessions.remove(&participant) {
                        session.close();
                    }
                    self.gated.retain(|(p, _)| *p != participant);
                    self.changes.remove(&participant);
                    self.tracks
                        .retain(|_, (_, publisher, _)| *publisher != participant);
                }
                Output::StoreChat(message) => {
                    // The writer lives as long as this task holds its sender.
                    let _ = self.chat_tx.send(message);
                }
            }
        }
        // After the messages: a client hears of a track before an offer carries it or takes
        // it away, and the changes of one event go in one offer.
        for (subscriber, (add, remove)) in self.changes.drain() {
            if let Some(session) = self.sessions.get(&subscriber) {
                session.subscriptions(add, remove);
            }
        }
        // Again after: a connection dropped for being too slow left during the loop.
        self.occupancy.store(self.room.len(), Ordering::Relaxed);
    }

    /// Open or close the forwarding of `participant`'s tracks of `kind`; a track they
    /// publish later is gated too, before anyone receives it.
    fn gate(&mut self, participant: String, kind: MediaKind, open: bool) {
        for (key, publisher, k) in self.tracks.values() {
            if *publisher == participant && *k == kind {
                self.registry.media.gate(*key, open);
            }
        }
        if open {
            self.gated.remove(&(participant, kind));
        } else {
            self.gated.insert((participant, kind));
        }
    }

    fn open_media(&mut self, conn: ConnId, participant: String) {
        let Some(link) = self.conns.get(&conn) else {
            return;
        };
        let session = self.registry.media.open_session(
            participant.clone(),
            link.tx.clone(),
            link.kicked.clone(),
            self.media_tx.clone(),
        );
        self.sessions.insert(participant, Arc::new(session));
    }

    fn send(&mut self, conn: ConnId, msg: ServerMsg) {
        let Some(link) = self.conns.get(&conn) else {
            return;
        };
        match link.tx.try_send(msg) {
            Ok(()) => {}
            Err(mpsc::error::TrySendError::Full(_)) => {
                // A dropped message would leave the client with a wrong picture of the room,
                // and the room must not wait for it: disconnect it instead. It can rejoin.
                tracing::warn!(conn, "connection too far behind; disconnecting it");
                link.kicked.notify_one();
                self.conns.remove(&conn);
                self.room
                    .handle_leave(now(), conn, LeaveReason::Disconnected);
            }
            Err(mpsc::error::TrySendError::Closed(_)) => {
                self.conns.remove(&conn);
            }
        }
    }
}

/// Takes a room's handle out of the registry when it drops.
struct Unregister {
    registry: Arc<Registry>,
    id: String,
    tx: mpsc::Sender<RoomCmd>,
}

impl Drop for Unregister {
    fn drop(&mut self) {
        self.registry.remove_if_same(&self.id, &self.tx);
    }
}

/// Sleep until `deadline`, or for ever without one (a `select!` arm that never fires).
pub(crate) async fn sleep_until_opt(deadline: Option<tokio::time::Instant>) {
    match deadline {
        Some(d) => tokio::time::sleep_until(d).await,
        None => std::future::pending().await,
    }
}
