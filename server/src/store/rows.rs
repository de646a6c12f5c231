//! Rows as both backends return them, and what they decode to. A value our types cannot
//! hold (a negative capacity, an unknown role) can only come from a hand-edited database:
//! it is reported as a decode error, never wrapped or guessed.

use signaling::policy::{Reservation, RoleCaps, RoomPolicy, WhenFull};
use signaling::roles::Role;
use signaling::wire::ChatMessage;
use sqlx::FromRow;

use super::{
    AuditEntry, ConsentEntry, InviteRecord, RoomRecord, SessionRecord, StoreError, StoreResult,
};

/// A room's rules as stored.
#[derive(FromRow)]
pub(super) struct PolicyRow {
    capacity: i64,
    role_caps: String,
    when_full: String,
    auto_admit: bool,
    open_link: bool,
}

/// A row of `rooms`.
#[derive(FromRow)]
pub(super) struct RoomRow {
    id: String,
    title: String,
    created_at: i64,
    #[sqlx(flatten)]
    policy: PolicyRow,
}

/// A row of `invites`, without the secret's hash.
#[derive(FromRow)]
pub(super) struct InviteRow {
    id: String,
    room_id: String,
    role: String,
    name: Option<String>,
    reserve: bool,
    max_uses: Option<i64>,
    uses: i64,
    expires_at: i64,
    created_at: i64,
    revoked_at: Option<i64>,
}

/// A room's rules and revision, with one of its live reserved invites (or none: a left join).
#[derive(FromRow)]
pub(super) struct SnapshotRow {
    #[sqlx(flatten)]
    pub(super) policy: PolicyRow,
    pub(super) rev: i64,
    invite_id: Option<String>,
    invite_role: Option<String>,
    invite_expires_at: Option<i64>,
}

/// A column that holds what our types cannot: only a hand-edited database has one.
fn bad_column(column: &str, e: impl Into<Box<dyn std::error::Error + Send + Sync>>) -> StoreError {
    StoreError::Db(sqlx::Error::ColumnDecode {
        index: column.to_string(),
        source: e.into(),
    })
}

fn to_u32(column: &str, value: i64) -> StoreResult<u32> {
    u32::try_from(value).map_err(|e| bad_column(column, e))
}

fn to_role(column: &str, value: &str) -> StoreResult<Role> {
    value.parse().map_err(|e: String| bad_column(column, e))
}

pub(super) fn when_full_str(when_full: WhenFull) -> &'static str {
    match when_full {
        WhenFull::Refuse => "refuse",
        WhenFull::Wait => "wait",
    }
}

impl PolicyRow {
    pub(super) fn decode(self) -> StoreResult<RoomPolicy> {
        let when_full = match self.when_full.as_str() {
            "refuse" => WhenFull::Refuse,
            "wait" => WhenFull::Wait,
            other => return Err(bad_column("when_full", format!("`{other}`"))),
        };
        Ok(RoomPolicy {
            capacity: to_u32("capacity", self.capacity)?,
            caps: serde_json::from_str(&self.role_caps).map_err(|e| bad_column("role_caps", e))?,
            when_full,
            auto_admit: self.auto_admit,
            open_link: self.open_link,
        })
    }
}

impl RoomRow {
    pub(super) fn decode(self) -> StoreResult<RoomRecord> {
        Ok(RoomRecord {
            id: self.id,
            title: self.title,
            created_at: self.created_at,
            policy: self.policy.decode()?,
        })
    }
}

impl InviteRow {
    pub(super) fn decode(self) -> StoreResult<InviteRecord> {
        Ok(InviteRecord {
            role: to_role("role", &self.role)?,
            max_uses: self.max_uses.map(|m| to_u32("max_uses", m)).transpose()?,
            uses: to_u32("uses", self.uses)?,
            id: self.id,
            room_id: self.room_id,
            name: self.name,
            reserve: self.reserve,
            expires_at: self.expires_at,
            created_at: self.created_at,
            revoked_at: self.revoked_at,
        })
    }
}

impl SnapshotRow {
    /// The reservation this row carries, if any.
    pub(super) fn reservation(&self) -> StoreResult<Option<Reservation>> {
        let (Some(invite), Some(role), Some(expires_at)) =
            (&self.invite_id, &self.invite_role, self.invite_expires_at)
        else {
            return Ok(None);
        };
        Ok(Some(Reservation {
            invite: invite.clone(),
            role: to_role("role", role)?,
            expires_at,
        }))
    }
}

pub(super) fn caps_json(caps: &RoleCaps) -> String {
    serde_json::to_string(caps).expect("role caps serialize")
}

/// Turn a unique-key violation into [`StoreError::Conflict`]; pass anything else through.
pub(super) fn conflict_or_db(err: sqlx::Error, what: impl FnOnce() -> String) -> StoreError {
    match &err {
        sqlx::Error::Database(db) if db.is_unique_violation() => StoreError::Conflict(what()),
        _ => StoreError::Db(err),
    }
}

/// A row of `chat_messages`.
#[derive(FromRow)]
pub(super) struct ChatRow {
    seq: i64,
    sender_id: String,
    sender_name: String,
    text: String,
    ts: i64,
}

impl From<ChatRow> for ChatMessage {
    fn from(row: ChatRow) -> Self {
        ChatMessage {
            seq: row.seq,
            from: row.sender_id,
            name: row.sender_name,
            text: row.text,
            ts: row.ts,
        }
    }
}

/// A row of `audit_log`.
#[derive(FromRow)]
pub(super) struct AuditRow {
    ts: i64,
    actor: String,
    actor_name: String,
    action: String,
    target: Option<String>,
    target_name: Option<String>,
    detail: Option<String>,
}

impl From<AuditRow> for AuditEntry {
    fn from(row: AuditRow) -> Self {
        AuditEntry {
            ts: row.ts,
            actor: row.actor,
            actor_name: row.actor_name,
            action: row.action,
            target: row.target,
            target_name: row.target_name,
            detail: row.detail,
        }
    }
}

/// A row of `recording_sessions`.
#[derive(FromRow)]
pub(super) struct SessionRow {
    id: String,
    room_id: String,
    started_at: i64,
    ended_at: Option<i64>,
    presentation_only: bool,
    cut_off: bool,
}

impl From<SessionRow> for SessionRecord {
    fn from(row: SessionRow) -> Self {
        SessionRecord {
            id: row.id,
            room_id: row.room_id,
            started_at: row.started_at,
            ended_at: row.ended_at,
            presentation_only: row.presentation_only,
            cut_off: row.cut_off,
        }
    }
}

/// A row of `consent_ledger`.
#[derive(FromRow)]
pub(super) struct ConsentRow {
    room_id: String,
    session_id: Option<String>,
    participant: String,
    name: String,
    invite: Option<String>,
    granted: bool,
    ts: i64,
}

impl From<ConsentRow> for ConsentEntry {
    fn from(row: ConsentRow) -> Self {
        ConsentEntry {
            room: row.room_id,
            session: row.session_id,
            participant: row.participant,
            name: row.name,
            invite: row.invite,
            granted: row.granted,
            ts: row.ts,
        }
    }
}
