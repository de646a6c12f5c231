//! PostgreSQL backend for [`Store`], for deployments that already run a database server.

use std::str::FromStr;
use std::time::Duration;

use signaling::wire::ChatMessage;
use sqlx::Row;
use sqlx::postgres::{PgConnectOptions, PgPool, PgPoolOptions, PgRow};

use super::{RoomRecord, Store, StoreError, StoreResult};

/// How long a query waits for a connection. sqlx retries a refused connect until then, and a
/// chat sender waits that long for `storage_unavailable` when the database is gone.
const ACQUIRE_TIMEOUT: Duration = Duration::from_secs(5);

/// A [`Store`] on one PostgreSQL database.
#[derive(Debug, Clone)]
pub struct PgStore {
    pool: PgPool,
}

impl PgStore {
    /// Connect to the database named by a `postgres://` URL and bring its schema up to date.
    /// The database itself must already exist.
    ///
    /// # Errors
    /// A bad URL, an unreachable or refusing database, or a failed migration.
    pub async fn open(url: &str) -> StoreResult<Self> {
        let options = PgConnectOptions::from_str(url)?;
        let pool = PgPoolOptions::new()
            .acquire_timeout(ACQUIRE_TIMEOUT)
            .connect_with(options)
            .await?;
        sqlx::migrate!("../migrations/postgres").run(&pool).await?;
        Ok(Self { pool })
    }
}

/// Turn a unique-key violation into [`StoreError::Conflict`]; pass anything else through.
fn conflict_or_db(err: sqlx::Error, what: impl FnOnce() -> String) -> StoreError {
    match &err {
        sqlx::Error::Database(db) if db.is_unique_violation() => StoreError::Conflict(what()),
        _ => StoreError::Db(err),
    }
}

fn room_from_row(row: &PgRow) -> Result<RoomRecord, sqlx::Error> {
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

fn chat_from_row(row: &PgRow) -> Result<ChatMessage, sqlx::Error> {
    Ok(ChatMessage {
        seq: row.try_get("seq")?,
        from: row.try_get("sender_id")?,
        name: row.try_get("sender_name")?,
        text: row.try_get("text")?,
        ts: row.try_get("ts")?,
    })
}

#[async_trait::async_trait]
impl Store for PgStore {
    async fn create_room(&self, room: &RoomRecord) -> StoreResult<()> {
        sqlx::query("INSERT INTO rooms (id, title, capacity, created_at) VALUES ($1, $2, $3, $4)")
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
        let row = sqlx::query("SELECT id, title, capacity, created_at FROM rooms WHERE id = $1")
            .bind(id)
            .fetch_optional(&self.pool)
            .await?;
        Ok(row.as_ref().map(room_from_row).transpose()?)
    }

    async fn list_rooms(&self) -> StoreResult<Vec<RoomRecord>> {
        // COLLATE "C" so ties break in byte order, as in SQLite, whatever the database locale.
        let rows = sqlx::query(
            "SELECT id, title, capacity, created_at FROM rooms \
             ORDER BY created_at DESC, id COLLATE \"C\" ASC",
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
        // One statement, so one round trip and one commit, however long the batch.
        sqlx::query(
            "INSERT INTO chat_messages (room_id, seq, sender_id, sender_name, text, ts) \
             SELECT $1, * FROM UNNEST($2::bigint[], $3::text[], $4::text[], $5::text[], \
             $6::bigint[])",
        )
        .bind(room_id)
        .bind(msgs.iter().map(|m| m.seq).collect::<Vec<_>>())
        .bind(msgs.iter().map(|m| m.from.as_str()).collect::<Vec<_>>())
        .bind(msgs.iter().map(|m| m.name.as_str()).collect::<Vec<_>>())
        .bind(msgs.iter().map(|m| m.text.as_str()).collect::<Vec<_>>())
        .bind(msgs.iter().map(|m| m.ts).collect::<Vec<_>>())
        .execute(&self.pool)
        .await
        .map_err(|e| conflict_or_db(e, conflict))?;
        Ok(())
    }

    async fn recent_chat(&self, room_id: &str, limit: usize) -> StoreResult<Vec<ChatMessage>> {
        // Saturate rather than fail: "more than i64::MAX" means "all of them".
        let limit = i64::try_from(limit).unwrap_or(i64::MAX);
        // Newest first so LIMIT keeps the tail; flipped below to the oldest-first contract.
        let rows = sqlx::query(
            "SELECT seq, sender_id, sender_name, text, ts FROM chat_messages \
             WHERE room_id = $1 ORDER BY seq DESC LIMIT $2",
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
        let row = sqlx::query("SELECT value FROM settings WHERE key = $1")
            .bind(key)
            .fetch_optional(&self.pool)
            .await?;
        Ok(row.map(|r| r.try_get("value")).transpose()?)
    }

    async fn set_setting(&self, key: &str, value: &str) -> StoreResult<()> {
        sqlx::query(
            "INSERT INTO settings (key, value) VALUES ($1, $2) \
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
