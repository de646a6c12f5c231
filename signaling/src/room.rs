//! The room state machine: who is in the room, which tracks they publish, who consumes what,
//! and the chat. Sans-IO: every `handle_*` takes `now`, results come out of [`Room::poll_output`].
//!
//! Connections are named by a caller-chosen [`ConnId`] before they join, and by participant id
//! after. The core never talks to sockets, the media plane or the database; it asks the caller to
//! through [`Output`].
//!
//! Chat takes two steps. [`Room::handle_chat`] numbers an accepted message and asks for it to
//! be stored ([`Output::StoreChat`]); nobody sees it yet. When the caller reports the commit
//! ([`Room::handle_chat_stored`]), it goes to everyone, in `seq` order; when the write failed
//! ([`Room::handle_chat_failed`]), its sender gets `storage_unavailable` and nobody else
//! hears of it.

mod admission;
mod chat;
mod floor;
mod moderation;
mod recording;

use std::collections::{BTreeMap, HashMap, HashSet, VecDeque};

use crate::Now;
use crate::agenda::{Agenda, Plan};
use crate::policy::{Snapshot, Ticket};
use crate::roles::{Action, Role, allows};
use crate::wire::{
    ChatMessage, ErrorCode, IceServer, LeaveReason, MAX_CHAT_CHARS, MAX_TRACKS_PER_PARTICIPANT,
    MediaKind, PROTOCOL_VERSION, ParticipantInfo, Reject, RoomInfo, ServerMsg, TrackInfo,
    WaiterInfo, check_version,
};
use chat::ChatLog;

pub use moderation::AuditEntry;
pub use recording::{ConsentEntry, RecordingSession};

/// The caller's name for a connection (a WebSocket), unique per room for the room's life.
pub type ConnId = u64;

/// Most people in one room's waiting room; a join beyond it is refused with `room_full`.
pub const MAX_WAITING: usize = 100;

/// Static facts a room starts with.
#[derive(Debug, Clone)]
pub struct RoomConfig {
    /// Room id, title and capacity.
    pub info: RoomInfo,
    /// ICE servers handed to every joiner.
    pub ice_servers: Vec<IceServer>,
    /// Chat history loaded from the store, oldest first.
    pub history: Vec<ChatMessage>,
    /// Chat messages allowed per participant in any 10 s window.
    pub chat_burst: usize,
    /// The room's policy and reserved invites, as the store had them.
    pub snapshot: Snapshot,
    /// The agenda as stored; `None` for a room that has none yet (it gets the Skill Share
    /// template).
    pub agenda: Option<Agenda>,
}

/// What a `join` asks for, besides its invite.
#[derive(Debug, Clone, Copy)]
pub struct Join<'a> {
    /// The protocol version it speaks.
    pub version: u32,
    /// The display name it asks for (an invite may fix another).
    pub name: &'a str,
    /// Whether the joiner agrees to be recorded.
    pub consent: bool,
}

impl<'a> Join<'a> {
    /// A join of the current protocol version, as `name`, not consenting.
    pub fn named(name: &'a str) -> Self {
        Join {
            version: PROTOCOL_VERSION,
            name,
            consent: false,
        }
    }
}

/// Tactics in a new room's agenda.
pub const TEMPLATE_TACTICS: usize = 3;

/// What the caller must do after a `handle_*` call.
#[derive(Debug, Clone, PartialEq)]
pub enum Output {
    /// Send a message to one connection.
    Send {
        /// The connection.
        conn: ConnId,
        /// The message.
        msg: ServerMsg,
    },
    /// `conn` is seated as participant `participant` (at its join, or later from the waiting
    /// room). Open its media session.
    Admitted {
        /// The connection.
        conn: ConnId,
        /// Its new participant id.
        participant: String,
    },
    /// Forward `track` to `subscriber` (add a consumer on its subscribe connection).
    Subscribe {
        /// The receiving participant.
        subscriber: String,
        /// The producer track.
        track: TrackInfo,
    },
    /// Stop forwarding `track_id` to `subscriber`.
    Unsubscribe {
        /// The receiving participant.
        subscriber: String,
        /// The producer track id.
        track_id: String,
    },
    /// Never forward the track `track_id` (its publisher has too many, or may not publish):
    /// close its gate for good. No `Subscribe` for it comes.
    RefuseTrack {
        /// The track.
        track_id: String,
    },
    /// Open or close the forwarding of `participant`'s tracks of `kind`, those to come
    /// included (a facilitator's mute).
    Gate {
        /// The publisher.
        participant: String,
        /// Audio or video.
        kind: MediaKind,
        /// Whether their packets reach the others.
        open: bool,
    },
    /// Tear down `participant`'s media session; it has left.
    CloseMedia {
        /// Who left.
        participant: String,
    },
    /// `conn` is out of the room (removed, or declined from the waiting room). Send what is
    /// queued for it, then forget it; its socket closes.
    Release {
        /// The connection.
        conn: ConnId,
    },
    /// Revoke the invite `invite` in the store: a facilitator barred its holder.
    RevokeInvite {
        /// The invite's id.
        invite: String,
    },
    /// Append to the room's audit log.
    Audit(AuditEntry),
    /// Store the agenda (plan, state and record) in place of what is stored.
    SaveAgenda(Box<Agenda>),
    /// Start or stop recording `participant`'s media (their tracks to come included) in the
    /// recording session `session`: they consent and the session records now, or no longer.
    Record {
        /// The publisher.
        participant: String,
        /// The recording session.
        session: String,
        /// Whether their packets go to the recorder from now on.
        on: bool,
    },
    /// Append to the consent ledger.
    Consent(ConsentEntry),
    /// Store a new recording session.
    RecordingStarted(RecordingSession),
    /// Mark a recording session ended.
    RecordingEnded {
        /// The session.
        session: String,
        /// Unix ms.
        ended_at: i64,
    },
    /// Commit a chat message (append-only, in `seq` order), then report the outcome with
    /// [`Room::handle_chat_stored`] or [`Room::handle_chat_failed`]. Nobody sees it before.
    StoreChat(ChatMessage),
}

#[derive(Debug)]
struct Participant {
    conn: ConnId,
    info: ParticipantInfo,
    /// The invite they joined with, if any.
    invite: Option<String>,
    /// Timestamps of recent chat messages, for the rate limit.
    recent_chat: VecDeque<std::time::Instant>,
}

/// Someone in the waiting room.
#[derive(Debug)]
struct Waiter {
    conn: ConnId,
    info: WaiterInfo,
    ticket: Ticket,
    /// The consent they joined with.
    consent: bool,
}

/// One room's authoritative state.
#[derive(Debug)]
pub struct Room {
    config: RoomConfig,
    /// Participant id → state. Ids are `p1`, `p2`, ... so map order is not join order;
    /// `order` keeps that.
    participants: HashMap<String, Participant>,
    order: Vec<String>,
    by_conn: HashMap<ConnId, String>,
    tracks: BTreeMap<String, TrackInfo>,
    chat: ChatLog,
    next_participant: u64,
    /// The waiting room, first first.
    waiting: VecDeque<Waiter>,
    next_waiter: u64,
    /// Raised hands, in the order they went up.
    hands: Vec<String>,
    locked: bool,
    /// Invites barred in this room's life, before the store has revoked them.
    barred: HashSet<String>,
    /// What facilitators stopped of the holders of these invites: (audio allowed, video
    /// allowed). A mute outlives a rejoin with the same invite.
    moderated: HashMap<String, (bool, bool)>,
    agenda: Agenda,
    /// Participants a facilitator gave the floor to, until the segment changes.
    floor_given: Vec<String>,
    /// Whether each publisher's audio gate is open now, as last told to the caller.
    audio_open: HashMap<String, bool>,
    /// The recording session running, if one is.
    recording: Option<RecordingSession>,
    /// Who is recorded, as last told to the caller, in join order.
    recorded: Vec<String>,
    /// Recording sessions this room's task started, for their ids.
    recordings_started: u64,
    outputs: VecDeque<Output>,
}

const CHAT_WINDOW: std::time::Duration = std::time::Duration::from_secs(10);

impl Room {
    /// Create a room from its stored facts; call once when the room's task starts.
    pub fn new(mut config: RoomConfig) -> Self {
        let chat = ChatLog::new(&config.history);
        let agenda = config
            .agenda
            .take()
            .unwrap_or_else(|| Agenda::new(Plan::skill_share(TEMPLATE_TACTICS)));
        config.info.capacity = config.snapshot.policy.capacity;
        Room {
            config,
            participants: HashMap::new(),
            order: Vec::new(),
            by_conn: HashMap::new(),
            tracks: BTreeMap::new(),
            chat,
            next_participant: 1,
            waiting: VecDeque::new(),
            next_waiter: 1,
            hands: Vec::new(),
            locked: false,
            barred: HashSet::new(),
            moderated: HashMap::new(),
            agenda,
            floor_given: Vec::new(),
            audio_open: HashMap::new(),
            recording: None,
            recorded: Vec::new(),
            recordings_started: 0,
            outputs: VecDeque::new(),
        }
    }

    /// The room's public facts.
    pub fn info(&self) -> &RoomInfo {
        &self.config.info
    }

    /// How many participants are in the room now (the waiting room not counted).
    pub fn len(&self) -> usize {
        self.order.len()
    }

    /// Whether nobody is in the room or its waiting room; the caller may then stop the
    /// room's task.
    pub fn is_empty(&self) -> bool {
        self.order.is_empty() && self.waiting.is_empty()
    }

    /// How many accepted chat messages wait for the store. The caller keeps the room's task
    /// alive until none do.
    pub fn pending_chat(&self) -> usize {
        self.chat.pending()
    }

    /// The participant id of a joined connection.
    pub fn participant_of(&self, conn: ConnId) -> Option<&str> {
        self.by_conn.get(&conn).map(String::as_str)
    }

    /// A participant's role.
    pub fn role_of(&self, participant: &str) -> Option<Role> {
        self.participants.get(participant).map(|p| p.info.role)
    }

    /// Whether `conn` is in the waiting room.
    pub fn is_waiting(&self, conn: ConnId) -> bool {
        self.waiting.iter().any(|w| w.conn == conn)
    }

    /// The store has a newer view of the room's policy and reserved invites (or as new: the
    /// same revision read later knows of more uses). Seats that it frees are filled.
    pub fn handle_snapshot(&mut self, now: Now, snapshot: Snapshot) {
        if snapshot.rev < self.config.snapshot.rev {
            return;
        }
        self.config.info.capacity = snapshot.policy.capacity;
        self.config.snapshot = snapshot;
        self.auto_admit(now);
    }

    /// Call when connection `conn` sends `join`, with what the server learnt of its invite
    /// (`ticket`) and whether the joiner agrees to be recorded. It is seated, put in the
    /// waiting room, or refused.
    pub fn handle_join(&mut self, now: Now, conn: ConnId, join: Join<'_>, ticket: Ticket) {
        if let Err(reject) = self.check_join(now, conn, join, ticket) {
            self.reject(conn, reject);
        }
    }

    /// The checks run in the order docs/protocol.md gives: already joined, version, name,
    /// the open link, then the seats. (The server checks the first two before the room
    /// lookup too, and the invite between the room and the name.)
    fn check_join(
        &mut self,
        now: Now,
        conn: ConnId,
        join: Join<'_>,
        ticket: Ticket,
    ) -> Result<(), Reject> {
        let Join {
            version,
            name,
            consent,
        } = join;
        if self.by_conn.contains_key(&conn) || self.is_waiting(conn) {
            return Err(Reject::new(
                ErrorCode::AlreadyJoined,
                "this connection already joined",
            ));
        }
        check_version(version)?;
        let name = crate::name::display_name(ticket.name.as_deref().unwrap_or(name))?.to_string();
        match &ticket.invite {
            None if !self.config.snapshot.policy.open_link => {
                return Err(Reject::new(
                    ErrorCode::InviteRequired,
                    "this room is by invitation only",
                ));
            }
            Some(invite) if self.barred.contains(invite) => {
                return Err(Reject::new(
                    ErrorCode::InviteRevoked,
                    "this invitation was revoked",
                ));
            }
            _ => {}
        }
        let waits = self.config.snapshot.policy.when_full == crate::policy::WhenFull::Wait;
        let seat = if self.locked && ticket.role != Role::Facilitator {
            Err(Reject::new(ErrorCode::RoomLocked, "the room is locked"))
        } else if waits && !self.waiting.is_empty() && !self.may_pass_the_queue(now, &ticket) {
            // Nobody passes those already waiting for a seat that freed while they waited.
            Err(Reject::new(ErrorCode::RoomFull, "others are waiting"))
        } else {
            self.seat_for(now, &ticket)
        };
        match seat {
            Ok(()) => {
                self.seat(now, conn, name, ticket, consent);
                Ok(())
            }
            Err(_) if waits => {
                if self.waiting.len() >= MAX_WAITING {
                    return Err(Reject::new(
                        ErrorCode::RoomFull,
                        format!("the room and its waiting room ({MAX_WAITING}) are full"),
                    ));
                }
                self.enqueue(now, conn, name, ticket, consent);
                Ok(())
            }
            Err(full) => Err(full),
        }
    }

    /// Seat `conn` as a new participant: tell everyone, and subscribe it to every track.
    fn seat(&mut self, now: Now, conn: ConnId, name: String, ticket: Ticket, consent: bool) {
        let id = format!("p{}", self.next_participant);
        self.next_participant += 1;
        let can_publish = allows(ticket.role, Action::Publish);
        let (audio_allowed, video_allowed) = ticket
            .invite
            .as_ref()
            .and_then(|i| self.moderated.get(i))
            .map_or((can_publish, can_publish), |(a, v)| {
                (can_publish && *a, can_publish && *v)
            });
        let info = ParticipantInfo {
            id: id.clone(),
            name,
            role: ticket.role,
            audio: false,
            video: false,
            audio_allowed,
            video_allowed,
            invite: ticket.invite.clone(),
            consent,
        };
        // Their camera stopped before they left: their video to come is gated before anyone
        // gets it. Audio follows the floor too; `refresh_audio_gates` sees to it below.
        if can_publish && !video_allowed {
            self.outputs.push_back(Output::Gate {
                participant: id.clone(),
                kind: MediaKind::Video,
                open: false,
            });
        }
        self.broadcast(
            None,
            ServerMsg::ParticipantJoined {
                participant: info.clone(),
            },
        );
        self.participants.insert(
            id.clone(),
            Participant {
                conn,
                info,
                invite: ticket.invite,
                recent_chat: VecDeque::new(),
            },
        );
        self.order.push(id.clone());
        self.by_conn.insert(conn, id.clone());
        self.outputs.push_back(Output::Admitted {
            conn,
            participant: id.clone(),
        });
        // A gate starts open: close it now if they may not speak.
        if can_publish {
            self.audio_open.insert(id.clone(), true);
        }
        self.refresh_audio_gates();
        // A presenter who arrives after their segment started goes on its record.
        self.note_floor_holders();
        if consent {
            self.note_consent(now, &id);
        }
        self.refresh_recording(Some(&id));
        let waiting = if ticket.role == Role::Facilitator {
            self.waiter_infos()
        } else {
            Vec::new()
        };
        let joined = ServerMsg::Joined {
            v: PROTOCOL_VERSION,
            you: id.clone(),
            role: ticket.role,
            room: self.config.info.clone(),
            participants: self
                .order
                .iter()
                .map(|p| self.participants[p].info.clone())
                .collect(),
            tracks: self.tracks.values().cloned().collect(),
            chat: self.chat.history().cloned().collect(),
            ice_servers: self.config.ice_servers.clone(),
            hands: self.hands.clone(),
            locked: self.locked,
            waiting,
            agenda: Box::new(self.agenda_view(now)),
            recording: Box::new(self.recording_view()),
        };
        self.outputs.push_back(Output::Send { conn, msg: joined });
        for track in self.tracks.values().cloned().collect::<Vec<_>>() {
            self.outputs.push_back(Output::Subscribe {
                subscriber: id.clone(),
                track,
            });
        }
        self.presence_changed(now, Some(&id));
    }

    /// Call when a joined connection sends `leave` or closes, or a waiting one does.
    /// Unknown connections are ignored: a close can race a failed join.
    pub fn handle_leave(&mut self, now: Now, conn: ConnId, reason: LeaveReason) {
        if let Some(at) = self.waiting.iter().position(|w| w.conn == conn) {
            self.waiting.remove(at);
            if reason == LeaveReason::Left {
                self.send(conn, ServerMsg::Left {});
            }
            self.queue_moved(at);
            return;
        }
        let Some(id) = self.by_conn.get(&conn).cloned() else {
            return;
        };
        self.unseat(&id);
        if reason == LeaveReason::Left {
            self.send(conn, ServerMsg::Left {});
        }
        self.broadcast(None, ServerMsg::ParticipantLeft { id, reason });
        self.presence_changed(now, None);
        // Nobody left to record.
        if self.order.is_empty() {
            self.end_recording_by_server(now, "the room emptied");
        }
        self.auto_admit(now);
    }

    /// Take a participant out: their tracks, hand and media go; nobody is told yet.
    fn unseat(&mut self, id: &str) {
        let Some(p) = self.participants.remove(id) else {
            return;
        };
        self.by_conn.remove(&p.conn);
        self.order.retain(|o| o != id);
        // Their recording stops before their media goes.
        self.refresh_recording(None);
        self.audio_open.remove(id);
        self.floor_given.retain(|g| g != id);
        let gone: Vec<TrackInfo> = self
            .tracks
            .values()
            .filter(|t| t.participant == id)
            .cloned()
            .collect();
        for track in gone {
            self.unpublish(&track.id);
        }
        self.outputs.push_back(Output::CloseMedia {
            participant: id.to_string(),
        });
        if self.hands.iter().any(|h| h == id) {
            self.hands.retain(|h| h != id);
            self.broadcast_hands();
        }
    }

    /// Call when a joined connection sends `chat`. An accepted message comes out as
    /// [`Output::StoreChat`] only; it is sent to the room once the store has it.
    pub fn handle_chat(&mut self, now: Now, conn: ConnId, text: &str) {
        let Some(id) = self.require(conn, Action::Chat) else {
            return;
        };
        let chars = text.chars().count();
        if text.trim().is_empty() {
            return self.reject(
                conn,
                Reject::new(ErrorCode::ChatEmpty, "chat text is empty"),
            );
        }
        if chars > MAX_CHAT_CHARS {
            return self.reject(
                conn,
                Reject::new(
                    ErrorCode::ChatTooLong,
                    format!("chat text is {chars} characters; the limit is {MAX_CHAT_CHARS}"),
                ),
            );
        }
        let burst = self.config.chat_burst;
        let p = self
            .participants
            .get_mut(&id)
            .expect("joined participant exists");
        while p
            .recent_chat
            .front()
            .is_some_and(|t| now.instant.duration_since(*t) >= CHAT_WINDOW)
        {
            p.recent_chat.pop_front();
        }
        if p.recent_chat.len() >= burst {
            return self.reject(
                conn,
                Reject::new(
                    ErrorCode::RateLimited,
                    format!("at most {burst} messages per 10 s"),
                ),
            );
        }
        p.recent_chat.push_back(now.instant);
        let message = ChatMessage {
            seq: 0, // numbered by the log
            from: id,
            name: p.info.name.clone(),
            text: text.to_string(),
            ts: now.unix_ms,
        };
        let message = self.chat.accept(conn, message);
        self.outputs.push_back(Output::StoreChat(message));
    }

    /// Call when the store has committed every chat message up to `seq`. They go to everyone
    /// in the room now, the sender included, in `seq` order.
    pub fn handle_chat_stored(&mut self, _now: Now, seq: i64) {
        for message in self.chat.stored(seq) {
            self.broadcast(None, ServerMsg::Chat { message });
        }
    }

    /// Call when the store failed to commit the chat messages up to `seq`. Each sender still
    /// here gets `storage_unavailable`; nobody else hears of them, and their numbers are not
    /// used again.
    pub fn handle_chat_failed(&mut self, _now: Now, seq: i64) {
        for conn in self.chat.failed(seq) {
            if self.by_conn.contains_key(&conn) {
                let reject = Reject::new(
                    ErrorCode::StorageUnavailable,
                    "your message was not saved, so nobody got it: \
                     the server cannot write to its database; try again later",
                );
                self.reject(conn, reject);
            }
        }
    }

    /// Call when a joined connection sends `media_state`.
    pub fn handle_media_state(&mut self, _now: Now, conn: ConnId, audio: bool, video: bool) {
        let Some(p) = self.seated_mut(conn) else {
            return;
        };
        if p.info.audio == audio && p.info.video == video {
            return;
        }
        p.info.audio = audio;
        p.info.video = video;
        let participant = p.info.clone();
        self.broadcast(None, ServerMsg::ParticipantUpdated { participant });
    }

    /// Call when the media plane reports a new producer track from `participant`.
    /// Tracks of participants who already left are ignored (the media plane races the leave).
    pub fn handle_track_published(
        &mut self,
        _now: Now,
        participant: &str,
        id: &str,
        kind: MediaKind,
    ) {
        let Some(publisher) = self.participants.get(participant) else {
            return;
        };
        if self.tracks.contains_key(id) {
            return;
        }
        if !allows(publisher.info.role, Action::Publish) {
            let conn = publisher.conn;
            self.outputs.push_back(Output::RefuseTrack {
                track_id: id.to_string(),
            });
            let why = format!("a {} does not publish media", publisher.info.role);
            self.reject(conn, Reject::new(ErrorCode::Forbidden, why));
            return;
        }
        let published = self
            .tracks
            .values()
            .filter(|t| t.participant == participant)
            .count();
        if published >= MAX_TRACKS_PER_PARTICIPANT {
            let conn = publisher.conn;
            self.outputs.push_back(Output::RefuseTrack {
                track_id: id.to_string(),
            });
            let why =
                format!("at most {MAX_TRACKS_PER_PARTICIPANT} tracks; this one is not sent on");
            self.reject(conn, Reject::new(ErrorCode::TooManyTracks, why));
            return;
        }
        let track = TrackInfo {
            id: id.to_string(),
            participant: participant.to_string(),
            kind,
        };
        self.tracks.insert(id.to_string(), track.clone());
        for other in self.order.clone() {
            if other != participant {
                self.outputs.push_back(Output::Subscribe {
                    subscriber: other,
                    track: track.clone(),
                });
            }
        }
        self.broadcast(Some(participant), ServerMsg::TrackPublished { track });
    }

    /// Call when the media plane reports a producer track ended.
    pub fn handle_track_unpublished(&mut self, _now: Now, id: &str) {
        self.unpublish(id);
    }

    /// Send a refusal to a connection (used by the caller for errors it finds itself).
    pub fn reject(&mut self, conn: ConnId, reject: Reject) {
        self.outputs.push_back(Output::Send {
            conn,
            msg: reject.into(),
        });
    }

    /// The next thing the caller must do, in order. Drain after every `handle_*`.
    pub fn poll_output(&mut self) -> Option<Output> {
        self.outputs.pop_front()
    }

    /// When the room next needs [`Room::handle_timeout`], given the time `now`; `None` while
    /// nothing is scheduled. The agenda keeps Unix times; this turns them into `now`'s
    /// monotonic clock.
    pub fn poll_timeout(&self, now: Now) -> Option<std::time::Instant> {
        let due = [self.agenda.poll_timeout(), self.next_seat_freed(now)]
            .into_iter()
            .flatten()
            .min()?;
        let wait = u64::try_from(due - now.unix_ms).unwrap_or(0);
        Some(now.instant + std::time::Duration::from_millis(wait))
    }

    /// Call when the time from [`Room::poll_timeout`] has come.
    pub fn handle_timeout(&mut self, now: Now) {
        self.agenda_timeout(now);
        // A reserved seat that expired may seat someone waiting.
        self.auto_admit(now);
    }

    fn unpublish(&mut self, id: &str) {
        let Some(track) = self.tracks.remove(id) else {
            return;
        };
        for other in self.order.clone() {
            if other != track.participant {
                self.outputs.push_back(Output::Unsubscribe {
                    subscriber: other,
                    track_id: track.id.clone(),
                });
            }
        }
        let except = track.participant.clone();
        let msg = ServerMsg::TrackUnpublished {
            id: track.id,
            participant: track.participant,
        };
        self.broadcast(Some(&except), msg);
    }

    fn require_joined(&mut self, conn: ConnId) -> Option<String> {
        let id = self.by_conn.get(&conn).cloned();
        if id.is_none() {
            let why = if self.is_waiting(conn) {
                "you are in the waiting room; wait to be admitted"
            } else {
                "send `join` first"
            };
            self.reject(conn, Reject::new(ErrorCode::NotJoined, why));
        }
        id
    }

    /// The participant seated on `conn`; if none, it is told `not_joined` and `None` comes
    /// back.
    fn seated_mut(&mut self, conn: ConnId) -> Option<&mut Participant> {
        let id = self.require_joined(conn)?;
        self.participants.get_mut(&id)
    }

    /// The participant id of `conn` if it is seated and its role may do `action`; otherwise
    /// it is told why (`not_joined`, `forbidden`) and `None` comes back.
    fn require(&mut self, conn: ConnId, action: Action) -> Option<String> {
        let id = self.require_joined(conn)?;
        let role = self.participants[&id].info.role;
        if allows(role, action) {
            return Some(id);
        }
        let why = format!("a {role} may not do that ({action:?})");
        self.reject(conn, Reject::new(ErrorCode::Forbidden, why));
        None
    }

    fn send(&mut self, conn: ConnId, msg: ServerMsg) {
        self.outputs.push_back(Output::Send { conn, msg });
    }

    /// Send to every seated facilitator.
    fn tell_facilitators(&mut self, msg: ServerMsg) {
        for id in &self.order {
            let p = &self.participants[id];
            if p.info.role == Role::Facilitator {
                self.outputs.push_back(Output::Send {
                    conn: p.conn,
                    msg: msg.clone(),
                });
            }
        }
    }

    fn broadcast(&mut self, except: Option<&str>, msg: ServerMsg) {
        for id in &self.order {
            if Some(id.as_str()) != except {
                let conn = self.participants[id].conn;
                self.outputs.push_back(Output::Send {
                    conn,
                    msg: msg.clone(),
                });
            }
        }
    }
}

#[cfg(test)]
mod tests;
