//! SQLite backend for [`Store`]: the embedded default, one file next to the server.

use std::path::Path;
use std::str::FromStr;
use std::time::Duration;

use signaling::wire::ChatMessage;
use sqlx::Row;
use sqlx::sqlite::{
    SqliteConnectOptions, SqliteJournalMode, SqlitePool, SqlitePoolOptions, SqliteRow,
    SqliteSynchronous,
};

use super::{RoomRecord, Store, StoreError, StoreResult};

/// How long a writer waits for another connection's lock before failing with `SQLITE_BUSY`.
const BUSY_TIMEOUT: Duration = Duration::from_secs(5);

/// A [`Store`] on one SQLite database file.
#[derive(Debug, Clone)]
pub struct SqliteStore {
    pool: SqlitePool,
}

impl SqliteStore {
    /// Open (creating if needed, along with its directory) the database named by a
    /// `sqlite:PATH` / `sqlite://PATH` URL, bring its schema up to date and check that it
    /// takes writes.
    ///
    /// # Errors
    /// A bad URL, a directory that cannot be created or written ([`StoreError::Unusable`]),
    /// a file that cannot be opened or written, or a failed migration.
    pub async fn open(url: &str) -> StoreResult<Self> {
        let options = SqliteConnectOptions::from_str(url)?
            .create_if_missing(true)
            .journal_mode(SqliteJournalMode::Wal)
            // FULL syncs the WAL at every commit, so an acknowledged chat message survives a
            // power cut too (a kill -9 alone would not need it). The room's writer commits
            // in batches, so a burst costs one sync per batch, not per message.
            .synchronous(SqliteSynchronous::Full)
            .busy_timeout(BUSY_TIMEOUT)
            .foreign_keys(true);

        let in_memory = is_in_memory(url);
        let file = options.get_filename().to_path_buf();
        if !in_memory {
            check_data_dir(&file).await?;
        }

        let mut pool_options = SqlitePoolOptions::new();
        if in_memory {
            // An in-memory database vanishes with its last connection, so the pool must never
            // let every connection idle out or expire.
            pool_options = pool_options
                .min_connections(1)
                .idle_timeout(None)
                .max_lifetime(None);
        }
        let pool = pool_options.connect_with(options).await?;

        sqlx::migrate!("../migrations/sqlite").run(&pool).await?;
        check_writable(&pool, &file).await?;
        Ok(Self { pool })
    }
}

/// Whether the URL asks for SQLite's in-memory mode rather than a file.
fn is_in_memory(url: &str) -> bool {
    let rest = url
        .trim_start_matches("sqlite://")
        .trim_start_matches("sqlite:");
    let (path, params) = rest.split_once('?').unwrap_or((rest, ""));
    path == ":memory:" || params.split('&').any(|p| p == "mode=memory")
}

/// Create the database's directory if missing (a fresh checkout has no `data/`; SQLite creates
/// the file but not directories), and check that it takes new files: SQLite needs them for
/// its journal. A bad directory stops start-up here, named, with the OS's reason.
async fn check_data_dir(file: &Path) -> StoreResult<()> {
    let dir = match file.parent() {
        Some(dir) if !dir.as_os_str().is_empty() => dir,
        _ => Path::new("."),
    };
    let unusable = |what: &str, e: std::io::Error| StoreError::Unusable {
        path: dir.display().to_string(),
        cause: format!("{what}: {e}"),
    };
    tokio::fs::create_dir_all(dir)
        .await
        .map_err(|e| unusable("cannot create the data directory", e))?;
    let probe = dir.join(format!(".roundtable-probe-{}", std::process::id()));
    tokio::fs::write(&probe, b"")
        .await
        .map_err(|e| unusable("cannot write in the data directory", e))?;
    let _ = tokio::fs::remove_file(&probe).await;
    Ok(())
}

/// SQLite opens a file it may not write read-only, without a word, and fails at the first
/// write. A write that changes nothing finds out at start-up instead.
async fn check_writable(pool: &SqlitePool, file: &Path) -> StoreResult<()> {
    sqlx::query("UPDATE settings SET value = value WHERE 0")
        .execute(pool)
        .await
        .map_err(|e| StoreError::Unusable {
            path: file.display().to_string(),
            cause: format!("cannot write to the database: {e}"),
        })?;
    Ok(())
}

/// Turn a unique-key violation into [`StoreError::Conflict`]; pass anything else through.
fn conflict_or_db(err: sqlx::Error, what: impl FnOnce() -> String) -> StoreError {
    match &err {
        sqlx::Error::Database(db) if db.is_unique_violation() => StoreError::Conflict(what()),
        _ => StoreError::Db(err),
    }
}

fn room_from_row(row: &SqliteRow) -> Result<RoomRecord, sqlx::Error> {
    let capacity: i64 = row.try_get("capacity")?;
    // A value outside u32 can only come from a hand-edited database; report it, don't wrap it.
    let capacity = u32::try_from(capacity).map_err(|e| sqlx::Error::ColumnDecode {
        index: "capacity".to_string(),
        source: Box::new(e),
    })?;
    Ok(RoomRecord {
        id: row.try_get("id")?,
        title: row.try_get("title")?,
        capacity,
        created_at: row.try_get("created_at")?,
    })
}

fn chat_from_row(row: &SqliteRow) -> Result<ChatMessage, sqlx::Error> {
    Ok(ChatMessage {
        seq: row.try_get("seq")?,
        from: row.try_get("sender_id")?,
        name: row.try_get("sender_name")?,
        text: row.try_get("text")?,
        ts: row.try_get("ts")?,
    })
}

#[async_trait::async_trait]
impl Store for SqliteStore {
    async fn create_room(&self, room: &RoomRecord) -> StoreResult<()> {
        sqlx::query("INSERT INTO rooms (id, title, capacity, created_at) VALUES (?, ?, ?, ?)")
            .bind(&room.id)
            .bind(&room.title)
            .bind(i64::from(room.capacity))
            .bind(room.created_at)
            .execute(&self.pool)
            .await
            .map_err(|e| conflict_or_db(e, || format!("room `{}` already exists", room.id)))?;
        Ok(())
    }

    async fn get_room(&self, id: &str) -> StoreResult<Option<RoomRecord>> {
        let row = sqlx::query("SELECT id, title, capacity, created_at FROM rooms WHERE id = ?")
            .bind(id)
            .fetch_optional(&self.pool)
            .await?;
        Ok(row.as_ref().map(room_from_row).transpose()?)
    }

    async fn list_rooms(&self) -> StoreResult<Vec<RoomRecord>> {
        let rows = sqlx::query(
            "SELECT id, title, capacity, created_at FROM rooms ORDER BY created_at DESC, id ASC",
        )
        .fetch_all(&self.pool)
        .await?;
        Ok(rows
            .iter()
            .map(room_from_row)
            .collect::<Result<Vec<_>, _>>()?)
    }

    async fn append_chat_batch(&self, room_id: &str, msgs: &[ChatMessage]) -> StoreResult<()> {
        if msgs.is_empty() {
            return Ok(());
        }
        let conflict = || super::batch_conflict(room_id, msgs);
        let mut tx = self.pool.begin().await?;
        for msg in msgs {
            sqlx::query(
                "INSERT INTO chat_messages (room_id, seq, sender_id, sender_name, text, ts) \
                 VALUES (?, ?, ?, ?, ?, ?)",
            )
            .bind(room_id)
            .bind(msg.seq)
            .bind(&msg.from)
            .bind(&msg.name)
            .bind(&msg.text)
            .bind(msg.ts)
            .execute(&mut *tx)
            .await
            .map_err(|e| conflict_or_db(e, conflict))?;
        }
        tx.commit().await?;
        Ok(())
    }

    async fn recent_chat(&self, room_id: &str, limit: usize) -> StoreResult<Vec<ChatMessage>> {
        // Saturate rather than fail: "more than i64::MAX" means "all of them".
        let limit = i64::try_from(limit).unwrap_or(i64::MAX);
        // Newest first so LIMIT keeps the tail; flipped below to the oldest-first contract.
        let rows = sqlx::query(
            "SELECT seq, sender_id, sender_name, text, ts FROM chat_messages \
             WHERE room_id = ? ORDER BY seq DESC LIMIT ?",
        )
        .bind(room_id)
        .bind(limit)
        .fetch_all(&self.pool)
        .await?;
        let mut messages = rows
            .iter()
            .map(chat_from_row)
            .collect::<Result<Vec<_>, _>>()?;
        messages.reverse();
        Ok(messages)
    }

    async fn get_setting(&self, key: &str) -> StoreResult<Option<String>> {
        let row = sqlx::query("SELECT value FROM settings WHERE key = ?")
            .bind(key)
            .fetch_optional(&self.pool)
            .await?;
        Ok(row.map(|r| r.try_get("value")).transpose()?)
    }

    async fn set_setting(&self, key: &str, value: &str) -> StoreResult<()> {
        sqlx::query(
            "INSERT INTO settings (key, value) VALUES (?, ?) \
             ON CONFLICT (key) DO UPDATE SET value = excluded.value",
        )
        .bind(key)
        .bind(value)
        .execute(&self.pool)
        .await?;
        Ok(())
    }

    async fn ping(&self) -> StoreResult<()> {
        sqlx::query("SELECT 1 FROM settings LIMIT 1")
            .execute(&self.pool)
            .await?;
        Ok(())
    }
}
