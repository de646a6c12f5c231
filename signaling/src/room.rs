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

mod chat;

use std::collections::{BTreeMap, HashMap, VecDeque};

use crate::Now;
use crate::wire::{
    ChatMessage, ErrorCode, IceServer, LeaveReason, MAX_CHAT_CHARS, MAX_TRACKS_PER_PARTICIPANT,
    MediaKind, PROTOCOL_VERSION, ParticipantInfo, Reject, RoomInfo, ServerMsg, TrackInfo,
    check_version,
};
use chat::ChatLog;

/// The caller's name for a connection (a WebSocket), unique per room for the room's life.
pub type ConnId = u64;

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
}

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
    /// The join of `conn` succeeded; it is now participant `participant`.
    /// Open its media session.
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
    /// Never forward the track `track_id` (its publisher has too many): close its gate for
    /// good. No `Subscribe` for it comes.
    RefuseTrack {
        /// The track.
        track_id: String,
    },
    /// Tear down `participant`'s media session; it has left.
    CloseMedia {
        /// Who left.
        participant: String,
    },
    /// Commit a chat message (append-only, in `seq` order), then report the outcome with
    /// [`Room::handle_chat_stored`] or [`Room::handle_chat_failed`]. Nobody sees it before.
    StoreChat(ChatMessage),
}

#[derive(Debug)]
struct Participant {
    conn: ConnId,
    info: ParticipantInfo,
    /// Timestamps of recent chat messages, for the rate limit.
    recent_chat: VecDeque<std::time::Instant>,
}

/// One room's authoritative state.
#[derive(Debug)]
pub struct Room {
    config: RoomConfig,
    /// Join order; participant id → state. Ids are `p1`, `p2`, ... so BTreeMap order is not
    /// join order; `order` keeps that.
    participants: HashMap<String, Participant>,
    order: Vec<String>,
    by_conn: HashMap<ConnId, String>,
    tracks: BTreeMap<String, TrackInfo>,
    chat: ChatLog,
    next_participant: u64,
    outputs: VecDeque<Output>,
}

const CHAT_WINDOW: std::time::Duration = std::time::Duration::from_secs(10);

impl Room {
    /// Create a room from its stored facts; call once when the room's task starts.
    pub fn new(config: RoomConfig) -> Self {
        let chat = ChatLog::new(&config.history);
        Room {
            config,
            participants: HashMap::new(),
            order: Vec::new(),
            by_conn: HashMap::new(),
            tracks: BTreeMap::new(),
            chat,
            next_participant: 1,
            outputs: VecDeque::new(),
        }
    }

    /// The room's public facts.
    pub fn info(&self) -> &RoomInfo {
        &self.config.info
    }

    /// How many participants are in the room now.
    pub fn len(&self) -> usize {
        self.order.len()
    }

    /// Whether nobody is in the room; the caller may then stop the room's task.
    pub fn is_empty(&self) -> bool {
        self.order.is_empty()
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

    /// Call when connection `conn` sends `join`.
    pub fn handle_join(&mut self, _now: Now, conn: ConnId, version: u32, name: &str) {
        if let Err(reject) = self.admit(conn, version, name) {
            self.reject(conn, reject);
        }
    }

    /// The checks run in the order docs/protocol.md gives: already joined, version, name,
    /// capacity. (The server checks the first two before the room lookup too.)
    fn admit(&mut self, conn: ConnId, version: u32, name: &str) -> Result<(), Reject> {
        if self.by_conn.contains_key(&conn) {
            return Err(Reject::new(
                ErrorCode::AlreadyJoined,
                "this connection already joined",
            ));
        }
        check_version(version)?;
        let name = crate::name::display_name(name)?;
        if self.order.len() >= self.config.info.capacity as usize {
            return Err(Reject::new(
                ErrorCode::RoomFull,
                format!(
                    "the room is full ({} of {})",
                    self.order.len(),
                    self.config.info.capacity
                ),
            ));
        }
        let id = format!("p{}", self.next_participant);
        self.next_participant += 1;
        let info = ParticipantInfo {
            id: id.clone(),
            name: name.to_string(),
            audio: false,
            video: false,
        };
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
                recent_chat: VecDeque::new(),
            },
        );
        self.order.push(id.clone());
        self.by_conn.insert(conn, id.clone());
        self.outputs.push_back(Output::Admitted {
            conn,
            participant: id.clone(),
        });
        let joined = ServerMsg::Joined {
            v: PROTOCOL_VERSION,
            you: id.clone(),
            room: self.config.info.clone(),
            participants: self
                .order
                .iter()
                .map(|p| self.participants[p].info.clone())
                .collect(),
            tracks: self.tracks.values().cloned().collect(),
            chat: self.chat.history().cloned().collect(),
            ice_servers: self.config.ice_servers.clone(),
        };
        self.outputs.push_back(Output::Send { conn, msg: joined });
        for track in self.tracks.values().cloned().collect::<Vec<_>>() {
            self.outputs.push_back(Output::Subscribe {
                subscriber: id.clone(),
                track,
            });
        }
        Ok(())
    }

    /// Call when a joined connection sends `leave` or closes. Unknown connections are ignored:
    /// a close can race a failed join.
    pub fn handle_leave(&mut self, _now: Now, conn: ConnId, reason: LeaveReason) {
        let Some(id) = self.by_conn.remove(&conn) else {
            return;
        };
        self.participants.remove(&id);
        self.order.retain(|p| p != &id);
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
            participant: id.clone(),
        });
        if reason == LeaveReason::Left {
            self.outputs.push_back(Output::Send {
                conn,
                msg: ServerMsg::Left {},
            });
        }
        self.broadcast(None, ServerMsg::ParticipantLeft { id, reason });
    }

    /// Call when a joined connection sends `chat`. An accepted message comes out as
    /// [`Output::StoreChat`] only; it is sent to the room once the store has it.
    pub fn handle_chat(&mut self, now: Now, conn: ConnId, text: &str) {
        let Some(id) = self.require_joined(conn) else {
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
        let Some(id) = self.require_joined(conn) else {
            return;
        };
        let p = self
            .participants
            .get_mut(&id)
            .expect("joined participant exists");
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

    /// When the room next needs [`Room::handle_timeout`]; `None` while nothing is scheduled.
    /// (The agenda timers will live here.)
    pub fn poll_timeout(&self) -> Option<std::time::Instant> {
        None
    }

    /// Call when the time from [`Room::poll_timeout`] has come.
    pub fn handle_timeout(&mut self, _now: Now) {}

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
            self.reject(conn, Reject::new(ErrorCode::NotJoined, "send `join` first"));
        }
        id
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
