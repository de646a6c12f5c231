//! Persistence behind one [`Store`] trait: SQLite (the embedded default) and PostgreSQL.
//! Nothing on the media path calls into here; rooms write chat through their own writer task.

mod postgres;
mod sqlite;

use std::sync::Arc;

use signaling::wire::ChatMessage;

/// A stored room.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
pub struct RoomRecord {
    /// URL-safe random id, as in the join link.
    pub id: String,
    /// Title shown to participants.
    pub title: String,
    /// Most participants at once.
    pub capacity: u32,
    /// Unix milliseconds.
    pub created_at: i64,
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
