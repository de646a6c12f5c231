//! SQLite backend for [`Store`]: the embedded default, one file next to the server.

use std::path::Path;
use std::str::FromStr;
use std::time::Duration;

use signaling::wire::ChatMessage;
use sqlx::sqlite::{
    SqliteConnectOptions, SqliteJournalMode, SqlitePool, SqlitePoolOptions, SqliteSynchronous,
};
use sqlx::{Pool, Sqlite};

use super::rows::conflict_or_db;
use super::sql::{Dialect, SqlStore};
use super::{StoreError, StoreResult};

/// How long a writer waits for another connection's lock before failing with `SQLITE_BUSY`.
const BUSY_TIMEOUT: Duration = Duration::from_secs(5);

/// A [`Store`](super::Store) on one SQLite database file.
pub type SqliteStore = SqlStore<Sqlite>;

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

#[async_trait::async_trait]
impl Dialect for Sqlite {
    // SQLite's default collation, BINARY, compares bytes.
    const BYTEWISE_ID: &'static str = "id";

    async fn append_chat_batch(
        pool: &Pool<Sqlite>,
        room_id: &str,
        msgs: &[ChatMessage],
    ) -> StoreResult<()> {
        let conflict = || super::batch_conflict(room_id, msgs);
        let mut tx = pool.begin().await?;
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
}
