//! The wire protocol: every JSON message that crosses the WebSocket, and the only module that
//! (de)serializes. `web-client/protocol.js` mirrors these types; `docs/protocol.md` documents them.

use serde::{Deserialize, Serialize};

pub use crate::roles::Role;

/// The protocol version this build speaks. A client sends it in `join`.
pub const PROTOCOL_VERSION: u32 = 1;

/// Refuse a `join` whose `v` is not [`PROTOCOL_VERSION`]. Call it on `join` after the
/// already-joined check and before looking the room up, so that a wrong version gets
/// `unsupported_version` whether or not the room exists.
pub fn check_version(v: u32) -> Result<(), Reject> {
    if v == PROTOCOL_VERSION {
        return Ok(());
    }
    Err(Reject::new(
        ErrorCode::UnsupportedVersion,
        format!("this server speaks protocol version {PROTOCOL_VERSION}, not {v}"),
    ))
}

/// Largest text frame the server reads as a message, in bytes. Larger frames get
/// [`ErrorCode::MessageTooLarge`] and are dropped; the connection stays open.
pub const MAX_MESSAGE_BYTES: usize = 64 * 1024;

/// Tracks one participant may publish at once: a microphone and a camera, and a screen's
/// video and audio. Each track adds a section to every other participant's `subscribe`
/// SDP, so one client must not be able to make everyone's grow without bound.
pub const MAX_TRACKS_PER_PARTICIPANT: usize = 4;

/// Longest chat message, in Unicode scalar values.
pub const MAX_CHAT_CHARS: usize = 2000;

/// Longest display name, in Unicode scalar values.
pub const MAX_NAME_CHARS: usize = 64;

/// How many chat messages a joiner receives as history.
pub const CHAT_HISTORY_LEN: usize = 200;

/// Longest piece of a client's input an error quotes back, in Unicode scalar values.
pub const MAX_QUOTED_CHARS: usize = 64;

/// Longest error `message`, in Unicode scalar values. An error costs the server no more than
/// this to send, whatever the input that caused it.
pub const MAX_ERROR_CHARS: usize = 256;

/// A client's input as an error may quote it: at most [`MAX_QUOTED_CHARS`], then `…`.
pub fn quote(input: &str) -> String {
    clip(input, MAX_QUOTED_CHARS)
}

fn clip(text: &str, max_chars: usize) -> String {
    match text.char_indices().nth(max_chars) {
        Some((end, _)) => format!("{}…", &text[..end]),
        None => text.to_string(),
    }
}

/// Which of a participant's two peer connections a negotiation message is about.
///
/// `publish` carries the participant's own media up; the client offers on it.
/// `subscribe` carries everyone else's media down; the server offers on it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum PcRole {
    /// Client to server media; the client is the offerer.
    Publish,
    /// Server to client media; the server is the offerer.
    Subscribe,
}

/// A media kind.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum MediaKind {
    /// Audio (Opus).
    Audio,
    /// Video (VP8, or H.264 where offered).
    Video,
}

/// A trickle ICE candidate, in the browser's `RTCIceCandidateInit` shape.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct IceCandidate {
    /// The `candidate:` attribute line; empty means end of candidates.
    pub candidate: String,
    /// The media section's mid.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub sdp_mid: Option<String>,
    /// The media section's index.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub sdp_m_line_index: Option<u16>,
    /// The ICE username fragment.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub username_fragment: Option<String>,
}

/// Messages from a client to the server.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "type", rename_all = "snake_case", deny_unknown_fields)]
pub enum ClientMsg {
    /// Enter a room. Must be the first message on a connection.
    Join {
        /// Protocol version; must equal [`PROTOCOL_VERSION`].
        v: u32,
        /// The room id from the join link.
        room: String,
        /// Display name. Ignored (and may be empty) when the invite fixes the name.
        name: String,
        /// The secret of an invite link; without it, the room's open link is used.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        invite: Option<String>,
        /// Whether they agree to be recorded; `false` when omitted. They can change it at
        /// any time with `consent`. Someone who joins with `true` gets a consent ledger
        /// entry at once.
        #[serde(default, skip_serializing_if = "is_false")]
        consent: bool,
    },
    /// Leave the room; the server closes the connection after `left`.
    Leave {},
    /// An SDP offer; only on the `publish` connection.
    Offer {
        /// Which peer connection.
        pc: PcRole,
        /// The SDP.
        sdp: String,
    },
    /// An SDP answer; only on the `subscribe` connection.
    Answer {
        /// Which peer connection.
        pc: PcRole,
        /// The SDP.
        sdp: String,
    },
    /// A trickle ICE candidate for one of the two connections.
    Candidate {
        /// Which peer connection.
        pc: PcRole,
        /// The candidate.
        candidate: IceCandidate,
    },
    /// Tell the room whether the microphone and camera are on (for everyone's UI).
    MediaState {
        /// Microphone on.
        audio: bool,
        /// Camera on.
        video: bool,
    },
    /// Send a chat message to the room.
    Chat {
        /// The text, 1 to [`MAX_CHAT_CHARS`] characters.
        text: String,
    },
    /// Raise one's hand: join the end of the raise-hand queue.
    RaiseHand {},
    /// Lower a hand: one's own, or (facilitators) `participant`'s.
    LowerHand {
        /// Whose hand; one's own when omitted.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        participant: Option<String>,
    },
    /// Facilitators: stop or allow the forwarding of someone's audio or video.
    Mute {
        /// Whom.
        participant: String,
        /// Audio (mute) or video (camera).
        kind: MediaKind,
        /// `true` stops it; `false` allows it again.
        muted: bool,
    },
    /// Facilitators: remove someone from the room.
    Remove {
        /// Whom.
        participant: String,
        /// Also revoke the invite they joined with, so it lets nobody in again.
        #[serde(default)]
        bar: bool,
    },
    /// Facilitators: lock or unlock the room. A locked room seats no new joins; they wait.
    Lock {
        /// `true` locks.
        locked: bool,
    },
    /// Facilitators: seat someone from the waiting room.
    Admit {
        /// Their waiting id.
        waiter: String,
    },
    /// Facilitators: turn someone in the waiting room away.
    Decline {
        /// Their waiting id.
        waiter: String,
    },
    /// Facilitators: drive the agenda.
    AgendaControl {
        /// What to do.
        action: crate::agenda::Command,
        /// For `extend`: seconds to add (default 60).
        #[serde(default, skip_serializing_if = "Option::is_none")]
        seconds: Option<u32>,
    },
    /// Facilitators: replace the agenda's plan.
    AgendaSet {
        /// The new plan.
        plan: crate::agenda::Plan,
    },
    /// Facilitators: give someone the floor (they may speak whatever the segment).
    GiveFloor {
        /// Whom.
        participant: String,
    },
    /// Facilitators: take the floor back from someone it was given to.
    TakeFloor {
        /// Whom.
        participant: String,
    },
    /// Give back the floor one was given.
    YieldFloor {},
    /// Agree to be recorded, or withdraw. Anyone seated may send it, at any time. Each
    /// change goes to the room's consent ledger and to everyone (`participant_updated`,
    /// and `recording` if it changes who is recorded). Sending one's current state again
    /// changes nothing. A withdrawal stops the recording of one's media before the next
    /// packet.
    Consent {
        /// `true` agrees; `false` withdraws.
        granted: bool,
    },
    /// Facilitators: start or stop recording the room (others get `forbidden`). Only
    /// those who consent, and may publish, are recorded; in this version, their audio only.
    /// Everyone gets `recording`. Starting while recording, or stopping while not, is
    /// refused with `recording_state`. The session also ends when the room empties.
    Recording {
        /// `true` starts a recording session; `false` ends it.
        on: bool,
        /// Record only while the agenda is in a presentation (an organisation's or a
        /// tactic's). Ignored when `on` is `false`.
        #[serde(default)]
        presentation_only: bool,
    },
    /// Keepalive; answered with `pong`.
    Ping {
        /// Echoed back in `pong`.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        id: Option<u64>,
    },
}

/// A participant as others see it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ParticipantInfo {
    /// Room-unique id.
    pub id: String,
    /// Display name.
    pub name: String,
    /// Their role.
    pub role: Role,
    /// Microphone on (as they report it).
    pub audio: bool,
    /// Camera on (as they report it).
    pub video: bool,
    /// Whether their audio may be forwarded; `false` once a facilitator muted them.
    pub audio_allowed: bool,
    /// Whether their video may be forwarded; `false` once a facilitator stopped it.
    pub video_allowed: bool,
    /// The id of the invite they joined with (not its secret), if any: how the agenda names
    /// an advocate so that it holds across reconnects and restarts.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub invite: Option<String>,
    /// Whether they agree to be recorded (`false` until they say so).
    #[serde(default)]
    pub consent: bool,
}

/// The room's recording, as everyone sees it.
#[derive(Debug, Clone, PartialEq, Eq, Default, Serialize, Deserialize)]
pub struct RecordingView {
    /// Whether a recording session runs.
    pub on: bool,
    /// Whether it records only while the agenda is in a presentation.
    pub presentation_only: bool,
    /// The session's id, while one runs.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub session: Option<String>,
    /// Participant ids whose media is recorded now, in join order: those who consent and
    /// whose role may publish, while recording is on and, with `presentation_only`, while a
    /// presentation runs. Only what the room hears is written: nothing of someone muted or
    /// off the floor, or who publishes nothing. Empty when off.
    pub recorded: Vec<String>,
}

/// Who may speak now.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum FloorMode {
    /// Everyone (no agenda under way, or an open conversation).
    Open,
    /// A presentation: its presenter and the facilitators.
    Presentation,
    /// A conversation in hand-raise mode: the facilitators and whom they gave the floor.
    HandRaise,
    /// The presenter's time is up under the `mute` policy: the facilitators only.
    Closed,
}

/// The floor: who may speak now. Facilitators always may.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct FloorView {
    /// Why it is as it is.
    pub mode: FloorMode,
    /// Participant ids who may speak, facilitators included; every one when `open`.
    pub speakers: Vec<String>,
    /// Of them, those a facilitator gave the floor to.
    pub given: Vec<String>,
}

/// The agenda as clients see it: the plan, where it stands on the server's clock, and the
/// floor.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct AgendaView {
    /// The plan.
    pub plan: crate::agenda::Plan,
    /// Not started, running, paused or ended.
    pub phase: crate::agenda::Phase,
    /// The current tactic's index (while running or paused).
    pub tactic: usize,
    /// The current segment's index in it.
    pub segment: usize,
    /// When the current segment started, server Unix ms.
    pub started_at: i64,
    /// While running: when its time is up, server Unix ms.
    pub deadline: Option<i64>,
    /// While paused: milliseconds that were left (negative once over time).
    pub remaining_ms: Option<i64>,
    /// Seconds added to the current segment.
    pub extended_s: u32,
    /// Time is up in the current segment.
    pub time_up: bool,
    /// The grace period after time up is over too.
    pub overrun: bool,
    /// Who may speak.
    pub floor: FloorView,
    /// The server's clock when this was sent, Unix ms.
    pub server_time: i64,
}

/// Someone in the waiting room, as facilitators see them.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct WaiterInfo {
    /// Waiting id (`w1`, `w2`, ...), for `admit` and `decline`.
    pub id: String,
    /// Display name.
    pub name: String,
    /// The role they would be seated as.
    pub role: Role,
    /// When they started waiting, Unix ms.
    pub since: i64,
}

/// A published (producer) track.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct TrackInfo {
    /// Room-unique track id; also the `track.id` of the browser's remote track.
    pub id: String,
    /// Who publishes it; also the `stream.id` of the browser's remote stream.
    pub participant: String,
    /// Audio or video.
    pub kind: MediaKind,
}

/// A stored chat message.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ChatMessage {
    /// Per-room sequence number, increasing; a message that could not be stored leaves a gap.
    pub seq: i64,
    /// Sender's participant id at the time.
    pub from: String,
    /// Sender's display name at the time.
    pub name: String,
    /// The text.
    pub text: String,
    /// Unix time in milliseconds.
    pub ts: i64,
}

/// Public facts about a room.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct RoomInfo {
    /// Room id.
    pub id: String,
    /// Title.
    pub title: String,
    /// Most participants at once.
    pub capacity: u32,
}

/// An ICE server the client should use (STUN/TURN).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct IceServer {
    /// URLs.
    pub urls: Vec<String>,
    /// TURN username.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub username: Option<String>,
    /// TURN credential.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub credential: Option<String>,
}

/// Why a participant left.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum LeaveReason {
    /// Sent `leave`.
    Left,
    /// The connection closed or timed out.
    Disconnected,
    /// A facilitator removed them.
    Removed,
}

/// Messages from the server to a client.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "type", rename_all = "snake_case")]
pub enum ServerMsg {
    /// The join succeeded. Everything the client needs to render the room.
    Joined {
        /// Protocol version.
        v: u32,
        /// The caller's own participant id.
        you: String,
        /// The caller's role.
        role: Role,
        /// The room.
        room: RoomInfo,
        /// Everyone in the room, the caller included, in join order.
        participants: Vec<ParticipantInfo>,
        /// Tracks already published by others.
        tracks: Vec<TrackInfo>,
        /// The last [`CHAT_HISTORY_LEN`] chat messages, oldest first.
        chat: Vec<ChatMessage>,
        /// ICE servers for both peer connections.
        ice_servers: Vec<IceServer>,
        /// Raised hands, in the order they went up.
        hands: Vec<String>,
        /// Whether the room is locked.
        locked: bool,
        /// The waiting room, in order; facilitators only (empty for others).
        waiting: Vec<WaiterInfo>,
        /// The agenda and the floor, now.
        agenda: Box<AgendaView>,
        /// The recording, now.
        #[serde(default)]
        recording: Box<RecordingView>,
    },
    /// The recording changed: it started or stopped, or who is recorded changed (consent,
    /// the agenda, a join or a leave). Sent to everyone, with the whole picture.
    Recording {
        /// The recording, now.
        recording: RecordingView,
    },
    /// The agenda or the floor changed; sent to everyone, with the whole picture.
    Agenda {
        /// The agenda and the floor, now.
        agenda: Box<AgendaView>,
        /// What happened, if a timer or a command did something (none for an edit or a
        /// change of floor).
        #[serde(default, skip_serializing_if = "Option::is_none")]
        event: Option<crate::agenda::Event>,
    },
    /// The join found no seat and waits; sent again whenever the position changes.
    Waiting {
        /// 1 is next in line.
        position: u32,
    },
    /// Facilitators: the waiting room changed; everyone in it, in order.
    Queue {
        /// Who waits, first first.
        waiting: Vec<WaiterInfo>,
    },
    /// The raise-hand queue changed.
    Hands {
        /// Participant ids, in the order hands went up.
        queue: Vec<String>,
    },
    /// The room was locked or unlocked.
    RoomLocked {
        /// Locked now.
        locked: bool,
        /// The facilitator who did it.
        by: String,
    },
    /// To the participant concerned: a facilitator stopped or allowed their audio or video.
    Moderated {
        /// Audio or video.
        kind: MediaKind,
        /// Whether it is forwarded again.
        allowed: bool,
        /// The facilitator (`admin` for the admin API).
        by: String,
    },
    /// To the participant concerned: a facilitator removed them. The server closes next.
    Removed {
        /// The facilitator.
        by: String,
        /// Whether their invite was revoked.
        barred: bool,
    },
    /// To someone waiting: a facilitator turned them away. The server closes next.
    Declined {},
    /// Someone joined.
    ParticipantJoined {
        /// Who.
        participant: ParticipantInfo,
    },
    /// Someone's media state changed.
    ParticipantUpdated {
        /// Who, with the new state.
        participant: ParticipantInfo,
    },
    /// Someone left; drop their tile.
    ParticipantLeft {
        /// Their id.
        id: String,
        /// Why.
        reason: LeaveReason,
    },
    /// A track became available; it arrives on the `subscribe` connection with the next offer.
    TrackPublished {
        /// The track.
        track: TrackInfo,
    },
    /// A track went away.
    TrackUnpublished {
        /// Its id.
        id: String,
        /// Its publisher.
        participant: String,
    },
    /// An SDP offer (on `subscribe`).
    Offer {
        /// Which peer connection.
        pc: PcRole,
        /// The SDP.
        sdp: String,
    },
    /// An SDP answer (on `publish`).
    Answer {
        /// Which peer connection.
        pc: PcRole,
        /// The SDP.
        sdp: String,
    },
    /// A server ICE candidate.
    Candidate {
        /// Which peer connection.
        pc: PcRole,
        /// The candidate.
        candidate: IceCandidate,
    },
    /// A chat message, once stored (also echoed to its sender: the echo is the acknowledgement).
    Chat {
        /// The message.
        message: ChatMessage,
    },
    /// Reply to `ping`.
    Pong {
        /// The ping's id.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        id: Option<u64>,
        /// The server's clock when it answered, Unix ms: clients estimate their offset
        /// from it (agenda countdowns use the server's clock).
        #[serde(default)]
        time: i64,
    },
    /// The `leave` was processed; the server closes next.
    Left {},
    /// A request was refused. The connection stays open unless a close frame follows.
    Error {
        /// Stable, machine-readable code.
        code: ErrorCode,
        /// Human-readable detail; may change between versions.
        message: String,
    },
}

/// Stable error codes. Clients branch on these; the text may change.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum ErrorCode {
    /// The frame was not valid JSON, or a field had the wrong type.
    BadJson,
    /// The `type` is not one this version knows.
    UnknownType,
    /// A binary frame; the protocol is text only.
    BinaryFrame,
    /// The frame exceeds [`MAX_MESSAGE_BYTES`].
    MessageTooLarge,
    /// The message needs a joined connection.
    NotJoined,
    /// `join` on a connection that already joined.
    AlreadyJoined,
    /// `join` with a different protocol version.
    UnsupportedVersion,
    /// No room with that id.
    RoomNotFound,
    /// The room is at capacity.
    RoomFull,
    /// The name is empty, too long, shows nothing, or holds a control or bidi character.
    BadName,
    /// The chat text is empty.
    ChatEmpty,
    /// The chat text exceeds [`MAX_CHAT_CHARS`].
    ChatTooLong,
    /// Too many messages too fast.
    RateLimited,
    /// The SDP could not be parsed or applied.
    BadSdp,
    /// An offer or answer on the wrong connection, or an answer with no offer outstanding.
    WrongNegotiationState,
    /// The ICE candidate could not be parsed or applied.
    BadCandidate,
    /// Media could not be set up on the server.
    MediaUnavailable,
    /// The server is shutting down or the room closed.
    Unavailable,
    /// A participant published more than [`MAX_TRACKS_PER_PARTICIPANT`] tracks; the extra
    /// one is not forwarded.
    TooManyTracks,
    /// The server could not store a chat message (its database is full, read-only or gone),
    /// so nobody got it.
    StorageUnavailable,
    /// The sender's role may not do that.
    Forbidden,
    /// The invite is not one this server made (mistyped or altered).
    InviteInvalid,
    /// The invite has expired.
    InviteExpired,
    /// The invite's uses are spent.
    InviteUsedUp,
    /// The invite was revoked.
    InviteRevoked,
    /// The invite is for another room.
    InviteWrongRoom,
    /// The room's open link is off: an invite is needed.
    InviteRequired,
    /// The room is locked and has no waiting room.
    RoomLocked,
    /// The seats of the joiner's role are taken.
    RoleFull,
    /// No participant with that id is in the room.
    ParticipantNotFound,
    /// Nobody with that waiting id is in the waiting room.
    WaiterNotFound,
    /// `remove` with `bar` of someone who joined through the open link: there is no invite
    /// to revoke. Nothing was done.
    NotBarrable,
    /// The agenda cannot do that now (not started, already ended, the first segment, ...).
    AgendaState,
    /// The plan or the value is not acceptable (too many tactics, a segment of 0 s, ...).
    BadAgenda,
    /// `recording` that asks for what already is: start while recording, stop while not.
    RecordingState,
    /// A bug or resource failure on the server.
    Internal,
}

impl ErrorCode {
    /// The code as it appears on the wire.
    pub fn as_str(self) -> &'static str {
        match self {
            ErrorCode::BadJson => "bad_json",
            ErrorCode::UnknownType => "unknown_type",
            ErrorCode::BinaryFrame => "binary_frame",
            ErrorCode::MessageTooLarge => "message_too_large",
            ErrorCode::NotJoined => "not_joined",
            ErrorCode::AlreadyJoined => "already_joined",
            ErrorCode::UnsupportedVersion => "unsupported_version",
            ErrorCode::RoomNotFound => "room_not_found",
            ErrorCode::RoomFull => "room_full",
            ErrorCode::BadName => "bad_name",
            ErrorCode::ChatEmpty => "chat_empty",
            ErrorCode::ChatTooLong => "chat_too_long",
            ErrorCode::RateLimited => "rate_limited",
            ErrorCode::BadSdp => "bad_sdp",
            ErrorCode::WrongNegotiationState => "wrong_negotiation_state",
            ErrorCode::BadCandidate => "bad_candidate",
            ErrorCode::MediaUnavailable => "media_unavailable",
            ErrorCode::Unavailable => "unavailable",
            ErrorCode::TooManyTracks => "too_many_tracks",
            ErrorCode::StorageUnavailable => "storage_unavailable",
            ErrorCode::Forbidden => "forbidden",
            ErrorCode::InviteInvalid => "invite_invalid",
            ErrorCode::InviteExpired => "invite_expired",
            ErrorCode::InviteUsedUp => "invite_used_up",
            ErrorCode::InviteRevoked => "invite_revoked",
            ErrorCode::InviteWrongRoom => "invite_wrong_room",
            ErrorCode::InviteRequired => "invite_required",
            ErrorCode::RoomLocked => "room_locked",
            ErrorCode::RoleFull => "role_full",
            ErrorCode::ParticipantNotFound => "participant_not_found",
            ErrorCode::WaiterNotFound => "waiter_not_found",
            ErrorCode::NotBarrable => "not_barrable",
            ErrorCode::AgendaState => "agenda_state",
            ErrorCode::BadAgenda => "bad_agenda",
            ErrorCode::RecordingState => "recording_state",
            ErrorCode::Internal => "internal",
        }
    }
}

/// A refusal: what the core emits instead of panicking.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Reject {
    /// Stable code.
    pub code: ErrorCode,
    /// Detail for people.
    pub message: String,
}

impl Reject {
    /// Build a refusal. The message is clipped to [`MAX_ERROR_CHARS`]: whatever it quotes
    /// (a parser's error can quote the input), an error stays small.
    pub fn new(code: ErrorCode, message: impl Into<String>) -> Self {
        Self {
            code,
            message: clip(&message.into(), MAX_ERROR_CHARS),
        }
    }
}

impl From<Reject> for ServerMsg {
    fn from(r: Reject) -> Self {
        ServerMsg::Error {
            code: r.code,
            message: r.message,
        }
    }
}

/// Decode one text frame. Oversized, malformed and unknown messages become a [`Reject`].
pub fn decode_client(text: &str) -> Result<ClientMsg, Reject> {
    if text.len() > MAX_MESSAGE_BYTES {
        return Err(Reject::new(
            ErrorCode::MessageTooLarge,
            format!(
                "message is {} bytes; the limit is {MAX_MESSAGE_BYTES}",
                text.len()
            ),
        ));
    }
    let value: serde_json::Value = serde_json::from_str(text)
        .map_err(|e| Reject::new(ErrorCode::BadJson, format!("not JSON: {e}")))?;
    let Some(kind) = value
        .get("type")
        .and_then(|t| t.as_str())
        .map(str::to_owned)
    else {
        return Err(Reject::new(
            ErrorCode::BadJson,
            "missing string field `type`",
        ));
    };
    if !KNOWN_CLIENT_TYPES.contains(&kind.as_str()) {
        return Err(Reject::new(
            ErrorCode::UnknownType,
            format!("unknown message type `{}`", quote(&kind)),
        ));
    }
    serde_json::from_value(value)
        .map_err(|e| Reject::new(ErrorCode::BadJson, format!("bad `{kind}` message: {e}")))
}

const KNOWN_CLIENT_TYPES: &[&str] = &[
    "join",
    "leave",
    "offer",
    "answer",
    "candidate",
    "media_state",
    "chat",
    "raise_hand",
    "lower_hand",
    "mute",
    "remove",
    "lock",
    "admit",
    "decline",
    "agenda_control",
    "agenda_set",
    "give_floor",
    "take_floor",
    "yield_floor",
    "consent",
    "recording",
    "ping",
];

fn is_false(b: &bool) -> bool {
    !*b
}

/// Encode one server message as a text frame.
pub fn encode_server(msg: &ServerMsg) -> String {
    // Serialising these plain data types cannot fail: no maps with non-string keys, no floats.
    serde_json::to_string(msg).unwrap_or_else(|_| {
        r#"{"type":"error","code":"internal","message":"encode failed"}"#.to_string()
    })
}

/// Decode a server message; for clients and tests.
pub fn decode_server(text: &str) -> Result<ServerMsg, serde_json::Error> {
    serde_json::from_str(text)
}

/// Encode a client message; for clients and tests.
pub fn encode_client(msg: &ClientMsg) -> String {
    serde_json::to_string(msg).unwrap_or_default()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn join_round_trips() {
        let m = ClientMsg::Join {
            v: 1,
            room: "r".into(),
            name: "Ann".into(),
            invite: None,
            consent: false,
        };
        let text = encode_client(&m);
        assert_eq!(text, r#"{"type":"join","v":1,"room":"r","name":"Ann"}"#);
        assert_eq!(decode_client(&text).unwrap(), m);
        let consenting = r#"{"type":"join","v":1,"room":"r","name":"Ann","consent":true}"#;
        assert!(matches!(
            decode_client(consenting).unwrap(),
            ClientMsg::Join { consent: true, .. }
        ));
    }

    #[test]
    fn consent_and_recording_decode() {
        assert_eq!(
            decode_client(r#"{"type":"consent","granted":true}"#).unwrap(),
            ClientMsg::Consent { granted: true }
        );
        assert_eq!(
            decode_client(r#"{"type":"recording","on":true}"#).unwrap(),
            ClientMsg::Recording {
                on: true,
                presentation_only: false
            }
        );
        assert_eq!(
            decode_client(r#"{"type":"consent"}"#).unwrap_err().code,
            ErrorCode::BadJson
        );
        let view = RecordingView {
            on: true,
            presentation_only: false,
            session: Some("s1".into()),
            recorded: vec!["p1".into()],
        };
        let text = encode_server(&ServerMsg::Recording { recording: view });
        assert_eq!(
            text,
            r#"{"type":"recording","recording":{"on":true,"presentation_only":false,"session":"s1","recorded":["p1"]}}"#
        );
    }

    #[test]
    fn candidate_uses_browser_field_names() {
        let text = r#"{"type":"candidate","pc":"publish","candidate":{"candidate":"candidate:1 1 udp 1 127.0.0.1 5000 typ host","sdpMid":"0","sdpMLineIndex":0}}"#;
        match decode_client(text).unwrap() {
            ClientMsg::Candidate { pc, candidate } => {
                assert_eq!(pc, PcRole::Publish);
                assert_eq!(candidate.sdp_mid.as_deref(), Some("0"));
                assert_eq!(candidate.sdp_m_line_index, Some(0));
            }
            other => panic!("decoded as {other:?}"),
        }
    }

    #[test]
    fn malformed_input_gets_stable_codes() {
        assert_eq!(decode_client("{").unwrap_err().code, ErrorCode::BadJson);
        assert_eq!(decode_client("[1,2]").unwrap_err().code, ErrorCode::BadJson);
        assert_eq!(
            decode_client(r#"{"type":7}"#).unwrap_err().code,
            ErrorCode::BadJson
        );
        assert_eq!(
            decode_client(r#"{"type":"dance"}"#).unwrap_err().code,
            ErrorCode::UnknownType
        );
        assert_eq!(
            decode_client(r#"{"type":"chat"}"#).unwrap_err().code,
            ErrorCode::BadJson
        );
        assert_eq!(
            decode_client(r#"{"type":"offer","pc":"sideways","sdp":""}"#)
                .unwrap_err()
                .code,
            ErrorCode::BadJson
        );
        let big = format!(
            r#"{{"type":"chat","text":"{}"}}"#,
            "a".repeat(MAX_MESSAGE_BYTES)
        );
        assert_eq!(
            decode_client(&big).unwrap_err().code,
            ErrorCode::MessageTooLarge
        );
    }

    #[test]
    fn errors_quote_little_of_the_input() {
        let kind = "x".repeat(MAX_MESSAGE_BYTES - 20);
        let e = decode_client(&format!(r#"{{"type":"{kind}"}}"#)).unwrap_err();
        assert_eq!(e.code, ErrorCode::UnknownType);
        assert!(
            e.message
                .contains(&format!("`{}…`", "x".repeat(MAX_QUOTED_CHARS)))
        );
        assert!(
            e.message.chars().count() < 2 * MAX_QUOTED_CHARS,
            "{}",
            e.message
        );
        // serde quotes a wrongly typed value whole; the message is clipped all the same.
        let long = "y".repeat(10_000);
        let e = decode_client(&format!(r#"{{"type":"ping","id":"{long}"}}"#)).unwrap_err();
        assert_eq!(e.code, ErrorCode::BadJson);
        assert_eq!(
            e.message.chars().count(),
            MAX_ERROR_CHARS + 1,
            "clipped, then `…`"
        );
        assert_eq!(quote("é".repeat(3).as_str()), "ééé");
    }

    #[test]
    fn error_codes_serialise_as_their_names() {
        for code in [
            ErrorCode::BadJson,
            ErrorCode::RoomFull,
            ErrorCode::WrongNegotiationState,
            ErrorCode::StorageUnavailable,
        ] {
            let json = serde_json::to_string(&code).unwrap();
            assert_eq!(json, format!("\"{}\"", code.as_str()));
        }
        let e = encode_server(&Reject::new(ErrorCode::NotJoined, "join first").into());
        assert_eq!(
            e,
            r#"{"type":"error","code":"not_joined","message":"join first"}"#
        );
    }
}
