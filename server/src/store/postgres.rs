//! PostgreSQL backend for [`Store`], for deployments that already run a database server.

use std::str::FromStr;
use std::time::Duration;

use signaling::wire::ChatMessage;
use sqlx::postgres::{PgConnectOptions, PgPoolOptions};
use sqlx::{Pool, Postgres};

use super::StoreResult;
use super::rows::conflict_or_db;
use super::sql::{Dialect, SqlStore};

/// How long a query waits for a connection. sqlx retries a refused connect until then, and a
/// chat sender waits that long for `storage_unavailable` when the database is gone.
const ACQUIRE_TIMEOUT: Duration = Duration::from_secs(5);

/// A [`Store`](super::Store) on one PostgreSQL database.
pub type PgStore = SqlStore<Postgres>;

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

#[async_trait::async_trait]
impl Dialect for Postgres {
    // The "C" collation compares bytes, as SQLite does, whatever the database's locale.
    const BYTEWISE_ID: &'static str = "id COLLATE \"C\"";

    async fn append_chat_batch(
        pool: &Pool<Postgres>,
        room_id: &str,
        msgs: &[ChatMessage],
    ) -> StoreResult<()> {
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
        .execute(pool)
        .await
        .map_err(|e| conflict_or_db(e, conflict))?;
        Ok(())
    }
}
