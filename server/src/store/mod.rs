//! Persistence behind one [`Store`] trait: SQLite (the embedded default) and PostgreSQL.
//! Nothing on the media path calls into here; rooms write chat through their own writer task.

mod postgres;
mod rows;
mod sql;
mod sqlite;

use std::sync::Arc;

use signaling::agenda::Agenda;
use signaling::policy::{RoomPolicy, Snapshot};
use signaling::roles::Role;
use signaling::wire::ChatMessage;

/// A stored room.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
pub struct RoomRecord {
    /// URL-safe random id, as in the join link.
    pub id: String,
    /// Title shown to participants.
    pub title: String,
    /// Unix milliseconds.
    pub created_at: i64,
    /// Capacity, role caps, what happens when full, the open link.
    #[serde(flatten)]
    pub policy: RoomPolicy,
}

/// A stored invite. Its secret is not here: the store keeps only the secret's SHA-256.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
pub struct InviteRecord {
    /// Random id, for listing and revoking; not a secret.
    pub id: String,
    /// The room it admits to.
    pub room_id: String,
    /// The role it gives.
    pub role: Role,
    /// A display name it fixes, if any.
    pub name: Option<String>,
    /// Whether it holds a seat that nobody else takes.
    pub reserve: bool,
    /// How many seatings it allows; `None` is unlimited.
    pub max_uses: Option<u32>,
    /// Seatings so far.
    pub uses: u32,
    /// Unix ms after which it admits nobody.
    pub expires_at: i64,
    /// Unix ms.
    pub created_at: i64,
    /// Unix ms of its revocation, if revoked.
    pub revoked_at: Option<i64>,
}

impl InviteRecord {
    /// Why this invite admits nobody to `room_id` at `now_ms`, the first of
    /// [`InviteRefusal`]'s order that applies; `None` if it admits.
    pub fn refusal(&self, room_id: &str, now_ms: i64) -> Option<InviteRefusal> {
        if self.room_id != room_id {
            Some(InviteRefusal::WrongRoom)
        } else if self.revoked_at.is_some() {
            Some(InviteRefusal::Revoked)
        } else if self.expires_at <= now_ms {
            Some(InviteRefusal::Expired)
        } else if self.max_uses.is_some_and(|m| self.uses >= m) {
            Some(InviteRefusal::UsedUp)
        } else {
            None
        }
    }
}

/// Why an invite secret admits nobody, most specific first.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum InviteRefusal {
    /// No invite has this secret.
    Invalid,
    /// It is another room's.
    WrongRoom,
    /// Revoked.
    Revoked,
    /// Past its expiry.
    Expired,
    /// Its uses are spent.
    UsedUp,
}

/// One moderation action, for a room's audit log: the room core makes them.
pub use signaling::room::AuditEntry;
/// One change of consent, and a recording session as it starts: the room core makes them.
pub use signaling::room::{ConsentEntry, RecordingSession};

/// A stored recording session.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
pub struct SessionRecord {
    /// The session's id (see [`RecordingSession`]).
    pub id: String,
    /// Its room.
    pub room_id: String,
    /// Unix ms.
    pub started_at: i64,
    /// Unix ms; `None` while it runs, or if it was cut off.
    pub ended_at: Option<i64>,
    /// Whether it recorded only during presentations.
    pub presentation_only: bool,
    /// Whether it was found unfinished after a crash.
    pub cut_off: bool,
}

/// Store failures. Callers log them and answer `internal` (chat: `storage_unavailable`); they
/// never reach the media path.
#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    /// The database refused or failed.
    #[error("database: {0}")]
    Db(#[from] sqlx::Error),
    /// Migrations failed at start-up.
    #[error("migration: {0}")]
    Migrate(#[from] sqlx::migrate::MigrateError),
    /// The URL names no backend we have.
    #[error("unsupported database url `{0}`: use sqlite:PATH or postgres://...")]
    UnsupportedUrl(String),
    /// A duplicate key.
    #[error("conflict: {0}")]
    Conflict(String),
    /// The data directory or the database file cannot be used: which, and why.
    #[error("{path}: {cause}")]
    Unusable {
        /// The directory or file.
        path: String,
        /// What failed, with the OS's or the database's reason.
        cause: String,
    },
}

/// Result alias for the store.
pub type StoreResult<T> = Result<T, StoreError>;

/// Everything the server persists. One implementation per backend; both pass the same tests.
#[async_trait::async_trait]
pub trait Store: Send + Sync + 'static {
    /// Insert a room. Fails with `Conflict` if the id exists.
    async fn create_room(&self, room: &RoomRecord) -> StoreResult<()>;
    /// Look a room up by id.
    async fn get_room(&self, id: &str) -> StoreResult<Option<RoomRecord>>;
    /// All rooms, newest first.
    async fn list_rooms(&self) -> StoreResult<Vec<RoomRecord>>;
    /// Append chat messages in one transaction: all are committed, or none. `(room_id, seq)`
    /// is unique. `Ok` means committed (durable as the backend's sync setting makes it).
    async fn append_chat_batch(&self, room_id: &str, msgs: &[ChatMessage]) -> StoreResult<()>;
    /// Append one chat message.
    async fn append_chat(&self, room_id: &str, msg: &ChatMessage) -> StoreResult<()> {
        self.append_chat_batch(room_id, std::slice::from_ref(msg))
            .await
    }
    /// The last `limit` chat messages of a room, oldest first.
    async fn recent_chat(&self, room_id: &str, limit: usize) -> StoreResult<Vec<ChatMessage>>;
    /// Replace a room's title and policy, and bump its revision.
    /// Fails with `Db(RowNotFound)` if there is no such room.
    async fn update_room(&self, room: &RoomRecord) -> StoreResult<()>;
    /// A room's policy and live reserved invites at `now_ms`, with its revision, read in one
    /// transaction. `None` if no such room.
    async fn room_snapshot(&self, room_id: &str, now_ms: i64) -> StoreResult<Option<Snapshot>>;
    /// Insert an invite with the SHA-256 (hex) of its secret, and bump the room's revision.
    async fn create_invite(&self, invite: &InviteRecord, secret_hash: &str) -> StoreResult<()>;
    /// [`Store::create_invite`], but only if the room's revision is still `rev` (when
    /// given): `Ok(false)`, and nothing written, if it moved. A check made on a
    /// [`Store::room_snapshot`] of revision `rev` then still holds when the invite lands.
    async fn create_invite_at(
        &self,
        invite: &InviteRecord,
        secret_hash: &str,
        rev: Option<i64>,
    ) -> StoreResult<bool>;
    /// A room's invites, newest first, revoked and expired ones included.
    async fn list_invites(&self, room_id: &str) -> StoreResult<Vec<InviteRecord>>;
    /// Revoke an invite of `room_id` at `now_ms` and bump the room's revision. `false` if
    /// the room has no such invite. Revoking twice keeps the first time.
    async fn revoke_invite(&self, room_id: &str, invite_id: &str, now_ms: i64)
    -> StoreResult<bool>;
    /// Take one use of the invite whose secret hashes to `secret_hash`, for a join to
    /// `room_id` at `now_ms`, atomically: of two joins racing for the last use, one wins.
    /// `Ok(Err(_))` says why it admits nobody.
    async fn use_invite(
        &self,
        room_id: &str,
        secret_hash: &str,
        now_ms: i64,
    ) -> StoreResult<Result<InviteRecord, InviteRefusal>>;
    /// What [`Store::use_invite`] would answer, without taking a use: for a page that shows
    /// the role and fixed name before joining.
    async fn check_invite(
        &self,
        room_id: &str,
        secret_hash: &str,
        now_ms: i64,
    ) -> StoreResult<Result<InviteRecord, InviteRefusal>>;
    /// Give back a use taken by [`Store::use_invite`] (the join was not seated).
    async fn release_invite(&self, invite_id: &str) -> StoreResult<()>;
    /// A room's agenda, if it has one stored.
    async fn load_agenda(&self, room_id: &str) -> StoreResult<Option<Agenda>>;
    /// Store a room's agenda in place of the one stored, at `now_ms`.
    async fn save_agenda(&self, room_id: &str, agenda: &Agenda, now_ms: i64) -> StoreResult<()>;
    /// Append to a room's audit log.
    async fn append_audit(&self, room_id: &str, entry: &AuditEntry) -> StoreResult<()>;
    /// A room's audit log, oldest first.
    async fn audit_log(&self, room_id: &str) -> StoreResult<Vec<AuditEntry>>;
    /// Store a recording session as it starts. Fails with `Conflict` if the id exists.
    async fn create_recording_session(&self, session: &RecordingSession) -> StoreResult<()>;
    /// Mark a running recording session ended at `ended_at`, and `cut_off` if a crash ended
    /// it. `false` if no running session has that id (an ended one keeps its first end).
    async fn finish_session(&self, id: &str, ended_at: i64, cut_off: bool) -> StoreResult<bool>;
    /// A facilitator's stop, or the room's end: [`Store::finish_session`], not cut off.
    async fn end_recording_session(&self, id: &str, ended_at: i64) -> StoreResult<bool> {
        self.finish_session(id, ended_at, false).await
    }
    /// Every recording session of every room that has no end: at start-up, those a crash cut
    /// off.
    async fn unfinished_sessions(&self) -> StoreResult<Vec<SessionRecord>>;
    /// Mark an unfinished session cut off, ended at `ended_at`. `false` if it has an end.
    async fn mark_cut_off(&self, id: &str, ended_at: i64) -> StoreResult<bool> {
        self.finish_session(id, ended_at, true).await
    }
    /// One recording session, if it exists.
    async fn recording_session(&self, id: &str) -> StoreResult<Option<SessionRecord>>;
    /// A room's recording sessions, oldest first.
    async fn recording_sessions(&self, room_id: &str) -> StoreResult<Vec<SessionRecord>>;
    /// Every recording session, or one room's, newest first: for the admin.
    async fn list_recording_sessions(
        &self,
        room_id: Option<&str>,
    ) -> StoreResult<Vec<SessionRecord>>;
    /// Delete a recording session's row (its files are the caller's). The consent ledger
    /// keeps its entries. `false` if there was no such session.
    async fn delete_recording_session(&self, id: &str) -> StoreResult<bool>;
    /// Append to a room's consent ledger (the entry names its room).
    async fn append_consent(&self, entry: &ConsentEntry) -> StoreResult<()>;
    /// A room's consent ledger, oldest first.
    async fn consent_ledger(&self, room_id: &str) -> StoreResult<Vec<ConsentEntry>>;
    /// Read a server setting (admin token hash, demo room id, ...).
    async fn get_setting(&self, key: &str) -> StoreResult<Option<String>>;
    /// Write a server setting, replacing any old value.
    async fn set_setting(&self, key: &str, value: &str) -> StoreResult<()>;
    /// Read one row of a table: the database answers, with our schema. For readiness probes.
    async fn ping(&self) -> StoreResult<()>;
}

/// What a unique-key violation in a chat batch says.
fn batch_conflict(room_id: &str, msgs: &[ChatMessage]) -> String {
    let seqs = |m: Option<&ChatMessage>| m.map_or(0, |m| m.seq);
    format!(
        "a chat message of {}..={} is already stored in room `{room_id}`",
        seqs(msgs.first()),
        seqs(msgs.last())
    )
}

/// Open a store from a URL (`sqlite:PATH` / `sqlite://PATH`, or `postgres://...`), creating the
/// SQLite file if needed, and run that backend's migrations.
pub async fn open(url: &str) -> StoreResult<Arc<dyn Store>> {
    if url.starts_with("sqlite:") {
        Ok(Arc::new(sqlite::SqliteStore::open(url).await?))
    } else if url.starts_with("postgres://") || url.starts_with("postgresql://") {
        Ok(Arc::new(postgres::PgStore::open(url).await?))
    } else {
        Err(StoreError::UnsupportedUrl(url.to_string()))
    }
}

/// `url` as it may be logged or shown: without its password, if it has one.
pub fn redacted(url: &str) -> String {
    match url::Url::parse(url) {
        Ok(mut parsed) if parsed.password().is_some() => {
            let _ = parsed.set_password(Some("***"));
            parsed.to_string()
        }
        _ => url.to_string(),
    }
}

#[cfg(test)]
mod redaction_tests {
    use super::redacted;

    #[test]
    fn a_password_never_shows() {
        let url = "postgres://rt:s3cret@db.example.org/rt";
        assert_eq!(redacted(url), "postgres://rt:***@db.example.org/rt");
        assert_eq!(
            redacted("sqlite:./data/roundtable.db"),
            "sqlite:./data/roundtable.db"
        );
        assert_eq!(redacted("postgres://rt@db/rt"), "postgres://rt@db/rt");
    }
}
