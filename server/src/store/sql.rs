//! The one [`Store`] implementation, generic over the database: SQLite reads `$1` as
//! PostgreSQL does, so both run the same statements. What differs (opening, the chat batch,
//! collation) is each backend's [`Dialect`].
//!
//! Every change to a room's rules or invites bumps `rooms.rev` in the same transaction. A
//! snapshot is one statement, so it is consistent under PostgreSQL's READ COMMITTED too.

use signaling::agenda::Agenda;
use signaling::policy::{RoomPolicy, Snapshot};
use signaling::wire::ChatMessage;
use sqlx::query::Query;
use sqlx::{AssertSqlSafe, Database, Encode, Executor, FromRow, IntoArguments, Pool, Type};

use super::rows::{
    AuditRow, ChatRow, ConsentRow, InviteRow, RoomRow, SessionRow, SnapshotRow, caps_json,
    conflict_or_db, when_full_str,
};
use super::{
    AuditEntry, ConsentEntry, InviteRecord, InviteRefusal, RecordingSession, RoomRecord,
    SessionRecord, Store, StoreError, StoreResult,
};

/// What one backend does its own way.
#[async_trait::async_trait]
pub(super) trait Dialect: Database {
    /// `id` in byte order, for the ties of `list_rooms`.
    const BYTEWISE_ID: &'static str;

    /// [`Store::append_chat_batch`] for a batch that is not empty.
    async fn append_chat_batch(
        pool: &Pool<Self>,
        room_id: &str,
        msgs: &[ChatMessage],
    ) -> StoreResult<()>;
}

/// A [`Store`] on one database's pool.
#[derive(Debug, Clone)]
pub struct SqlStore<DB: Database> {
    pub(super) pool: Pool<DB>,
}

/// The columns of a room, in [`RoomRow`]'s order.
macro_rules! room_cols {
    () => {
        "id, title, created_at, capacity, role_caps, when_full, auto_admit, open_link"
    };
}

/// The columns of a recording session, in [`SessionRow`]'s order.
macro_rules! session_cols {
    () => {
        "id, room_id, started_at, ended_at, presentation_only, cut_off"
    };
}

/// The columns of an invite, in [`InviteRow`]'s order.
macro_rules! invite_cols {
    () => {
        "id, room_id, role, name, reserve, max_uses, uses, expires_at, created_at, revoked_at"
    };
}

/// Bind a policy's capacity, caps, when_full, auto_admit and open_link, in that order.
fn bind_policy<'q, DB>(
    query: Query<'q, DB, DB::Arguments>,
    policy: &RoomPolicy,
) -> Query<'q, DB, DB::Arguments>
where
    DB: Database,
    for<'a> &'a str: Encode<'a, DB> + Type<DB>,
    for<'a> String: Encode<'a, DB> + Type<DB>,
    for<'a> i64: Encode<'a, DB> + Type<DB>,
    for<'a> bool: Encode<'a, DB> + Type<DB>,
{
    query
        .bind(i64::from(policy.capacity))
        .bind(caps_json(&policy.caps))
        .bind(when_full_str(policy.when_full))
        .bind(policy.auto_admit)
        .bind(policy.open_link)
}

#[async_trait::async_trait]
impl<DB> Store for SqlStore<DB>
where
    DB: Dialect,
    for<'c> &'c mut DB::Connection: Executor<'c, Database = DB>,
    DB::Arguments: IntoArguments<DB>,
    for<'a> &'a str: Encode<'a, DB> + Type<DB>,
    for<'a> Option<&'a str>: Encode<'a, DB>,
    for<'a> String: Encode<'a, DB> + Type<DB>,
    for<'a> i64: Encode<'a, DB> + Type<DB>,
    for<'a> Option<i64>: Encode<'a, DB>,
    for<'a> bool: Encode<'a, DB> + Type<DB>,
    (i64,): for<'r> FromRow<'r, DB::Row>,
    (String,): for<'r> FromRow<'r, DB::Row>,
    RoomRow: for<'r> FromRow<'r, DB::Row>,
    InviteRow: for<'r> FromRow<'r, DB::Row>,
    SnapshotRow: for<'r> FromRow<'r, DB::Row>,
    ChatRow: for<'r> FromRow<'r, DB::Row>,
    AuditRow: for<'r> FromRow<'r, DB::Row>,
    SessionRow: for<'r> FromRow<'r, DB::Row>,
    ConsentRow: for<'r> FromRow<'r, DB::Row>,
{
    async fn create_room(&self, room: &RoomRecord) -> StoreResult<()> {
        let insert = sqlx::query(concat!(
            "INSERT INTO rooms (",
            room_cols!(),
            ") VALUES ($1, $2, $3, $4, $5, $6, $7, $8)"
        ))
        .bind(room.id.as_str())
        .bind(room.title.as_str())
        .bind(room.created_at);
        bind_policy(insert, &room.policy)
            .execute(&self.pool)
            .await
            .map_err(|e| conflict_or_db(e, || format!("room `{}` already exists", room.id)))?;
        Ok(())
    }

    async fn get_room(&self, id: &str) -> StoreResult<Option<RoomRecord>> {
        let row: Option<RoomRow> = sqlx::query_as(concat!(
            "SELECT ",
            room_cols!(),
            " FROM rooms WHERE id = $1"
        ))
        .bind(id)
        .fetch_optional(&self.pool)
        .await?;
        row.map(RoomRow::decode).transpose()
    }

    async fn list_rooms(&self) -> StoreResult<Vec<RoomRecord>> {
        // Both pieces are our own constants.
        let sql = format!(
            concat!(
                "SELECT ",
                room_cols!(),
                " FROM rooms ORDER BY created_at DESC, {} ASC"
            ),
            DB::BYTEWISE_ID
        );
        let rows: Vec<RoomRow> = sqlx::query_as(AssertSqlSafe(sql))
            .fetch_all(&self.pool)
            .await?;
        rows.into_iter().map(RoomRow::decode).collect()
    }

    async fn append_chat_batch(&self, room_id: &str, msgs: &[ChatMessage]) -> StoreResult<()> {
        if msgs.is_empty() {
            return Ok(());
        }
        DB::append_chat_batch(&self.pool, room_id, msgs).await
    }

    async fn recent_chat(&self, room_id: &str, limit: usize) -> StoreResult<Vec<ChatMessage>> {
        // Saturate rather than fail: "more than i64::MAX" means "all of them".
        let limit = i64::try_from(limit).unwrap_or(i64::MAX);
        // Newest first so LIMIT keeps the tail; flipped below to the oldest-first contract.
        let rows: Vec<ChatRow> = sqlx::query_as(
            "SELECT seq, sender_id, sender_name, text, ts FROM chat_messages \
             WHERE room_id = $1 ORDER BY seq DESC LIMIT $2",
        )
        .bind(room_id)
        .bind(limit)
        .fetch_all(&self.pool)
        .await?;
        Ok(rows.into_iter().rev().map(ChatMessage::from).collect())
    }

    async fn update_room(&self, room: &RoomRecord) -> StoreResult<()> {
        // One statement: the rules and the revision change together.
        let update = sqlx::query(
            "UPDATE rooms SET title = $2, capacity = $3, role_caps = $4, when_full = $5, \
             auto_admit = $6, open_link = $7, rev = rev + 1 WHERE id = $1 RETURNING id",
        )
        .bind(room.id.as_str())
        .bind(room.title.as_str());
        let updated = bind_policy(update, &room.policy)
            .fetch_optional(&self.pool)
            .await?;
        updated
            .map(|_| ())
            .ok_or(StoreError::Db(sqlx::Error::RowNotFound))
    }

    async fn room_snapshot(&self, room_id: &str, now_ms: i64) -> StoreResult<Option<Snapshot>> {
        // One statement, one consistent view: the room's row once per live reserved invite,
        // or once with NULLs when it has none.
        let rows: Vec<SnapshotRow> = sqlx::query_as(
            "SELECT r.capacity, r.role_caps, r.when_full, r.auto_admit, r.open_link, r.rev, \
             i.id AS invite_id, i.role AS invite_role, i.expires_at AS invite_expires_at \
             FROM rooms r LEFT JOIN invites i ON i.room_id = r.id AND i.reserve \
             AND i.revoked_at IS NULL AND i.expires_at > $2 \
             WHERE r.id = $1 ORDER BY i.created_at, i.id",
        )
        .bind(room_id)
        .bind(now_ms)
        .fetch_all(&self.pool)
        .await?;
        let reservations = rows
            .iter()
            .filter_map(|row| row.reservation().transpose())
            .collect::<StoreResult<Vec<_>>>()?;
        let Some(first) = rows.into_iter().next() else {
            return Ok(None);
        };
        Ok(Some(Snapshot {
            rev: first.rev,
            policy: first.policy.decode()?,
            reservations,
        }))
    }

    async fn create_invite(&self, invite: &InviteRecord, secret_hash: &str) -> StoreResult<()> {
        // The foreign key refuses an invite to no room; `false` is only a room deleted
        // between the two statements.
        match self.create_invite_at(invite, secret_hash, None).await? {
            true => Ok(()),
            false => Err(StoreError::Db(sqlx::Error::RowNotFound)),
        }
    }

    async fn create_invite_at(
        &self,
        invite: &InviteRecord,
        secret_hash: &str,
        rev: Option<i64>,
    ) -> StoreResult<bool> {
        let mut tx = self.pool.begin().await?;
        sqlx::query(concat!(
            "INSERT INTO invites (",
            invite_cols!(),
            ", secret_hash) VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11)"
        ))
        .bind(invite.id.as_str())
        .bind(invite.room_id.as_str())
        .bind(invite.role.as_str())
        .bind(invite.name.as_deref())
        .bind(invite.reserve)
        .bind(invite.max_uses.map(i64::from))
        .bind(i64::from(invite.uses))
        .bind(invite.expires_at)
        .bind(invite.created_at)
        .bind(invite.revoked_at)
        .bind(secret_hash)
        .execute(&mut *tx)
        .await
        .map_err(|e| conflict_or_db(e, || format!("invite `{}` already exists", invite.id)))?;
        // The row lock this takes orders two minters of one room: the second sees the
        // first's revision, and its expectation fails.
        let bumped: Option<i64> = sqlx::query_scalar(
            "UPDATE rooms SET rev = rev + 1 WHERE id = $1 AND ($2 IS NULL OR rev = $2) \
             RETURNING rev",
        )
        .bind(invite.room_id.as_str())
        .bind(rev)
        .fetch_optional(&mut *tx)
        .await?;
        if bumped.is_none() {
            tx.rollback().await?;
            return Ok(false);
        }
        tx.commit().await?;
        Ok(true)
    }

    async fn list_invites(&self, room_id: &str) -> StoreResult<Vec<InviteRecord>> {
        let rows: Vec<InviteRow> = sqlx::query_as(concat!(
            "SELECT ",
            invite_cols!(),
            " FROM invites WHERE room_id = $1 ORDER BY created_at DESC, id DESC"
        ))
        .bind(room_id)
        .fetch_all(&self.pool)
        .await?;
        rows.into_iter().map(InviteRow::decode).collect()
    }

    async fn revoke_invite(
        &self,
        room_id: &str,
        invite_id: &str,
        now_ms: i64,
    ) -> StoreResult<bool> {
        let mut tx = self.pool.begin().await?;
        let found: Option<String> = sqlx::query_scalar(
            "UPDATE invites SET revoked_at = COALESCE(revoked_at, $3) \
             WHERE room_id = $1 AND id = $2 RETURNING id",
        )
        .bind(room_id)
        .bind(invite_id)
        .bind(now_ms)
        .fetch_optional(&mut *tx)
        .await?;
        if found.is_none() {
            tx.rollback().await?;
            return Ok(false);
        }
        sqlx::query("UPDATE rooms SET rev = rev + 1 WHERE id = $1")
            .bind(room_id)
            .execute(&mut *tx)
            .await?;
        tx.commit().await?;
        Ok(true)
    }

    async fn check_invite(
        &self,
        room_id: &str,
        secret_hash: &str,
        now_ms: i64,
    ) -> StoreResult<Result<InviteRecord, InviteRefusal>> {
        let row: Option<InviteRow> = sqlx::query_as(concat!(
            "SELECT ",
            invite_cols!(),
            " FROM invites WHERE secret_hash = $1"
        ))
        .bind(secret_hash)
        .fetch_optional(&self.pool)
        .await?;
        let Some(invite) = row.map(InviteRow::decode).transpose()? else {
            return Ok(Err(InviteRefusal::Invalid));
        };
        Ok(match invite.refusal(room_id, now_ms) {
            Some(why) => Err(why),
            None => Ok(invite),
        })
    }

    async fn use_invite(
        &self,
        room_id: &str,
        secret_hash: &str,
        now_ms: i64,
    ) -> StoreResult<Result<InviteRecord, InviteRefusal>> {
        // One conditional statement: of two joins racing for the last use, one matches.
        let taken: Option<InviteRow> = sqlx::query_as(concat!(
            "UPDATE invites SET uses = uses + 1 WHERE secret_hash = $1 AND room_id = $2 \
             AND revoked_at IS NULL AND expires_at > $3 \
             AND (max_uses IS NULL OR uses < max_uses) RETURNING ",
            invite_cols!()
        ))
        .bind(secret_hash)
        .bind(room_id)
        .bind(now_ms)
        .fetch_optional(&self.pool)
        .await?;
        if let Some(row) = taken {
            return Ok(Ok(row.decode()?));
        }
        // Revocation and expiry never undo themselves: when the check finds nothing wrong,
        // the uses were spent at the update (a release has given one back since).
        Ok(Err(self
            .check_invite(room_id, secret_hash, now_ms)
            .await?
            .err()
            .unwrap_or(InviteRefusal::UsedUp)))
    }

    async fn release_invite(&self, invite_id: &str) -> StoreResult<()> {
        sqlx::query("UPDATE invites SET uses = uses - 1 WHERE id = $1 AND uses > 0")
            .bind(invite_id)
            .execute(&self.pool)
            .await?;
        Ok(())
    }

    async fn load_agenda(&self, room_id: &str) -> StoreResult<Option<Agenda>> {
        let row: Option<(String,)> =
            sqlx::query_as("SELECT agenda FROM agendas WHERE room_id = $1")
                .bind(room_id)
                .fetch_optional(&self.pool)
                .await?;
        let Some((json,)) = row else {
            return Ok(None);
        };
        // Only a hand-edited database holds an agenda we cannot read: report it.
        let agenda = serde_json::from_str(&json).map_err(|e| sqlx::Error::ColumnDecode {
            index: "agenda".into(),
            source: Box::new(e),
        })?;
        Ok(Some(agenda))
    }

    async fn save_agenda(&self, room_id: &str, agenda: &Agenda, now_ms: i64) -> StoreResult<()> {
        // Plain data with string keys: serialising it cannot fail.
        let json = serde_json::to_string(agenda).unwrap_or_default();
        sqlx::query(
            "INSERT INTO agendas (room_id, agenda, updated_at) VALUES ($1, $2, $3) \
             ON CONFLICT (room_id) DO UPDATE SET agenda = excluded.agenda, \
             updated_at = excluded.updated_at",
        )
        .bind(room_id)
        .bind(json)
        .bind(now_ms)
        .execute(&self.pool)
        .await?;
        Ok(())
    }

    async fn append_audit(&self, room_id: &str, entry: &AuditEntry) -> StoreResult<()> {
        sqlx::query(
            "INSERT INTO audit_log (room_id, ts, actor, actor_name, action, target, \
             target_name, detail) VALUES ($1, $2, $3, $4, $5, $6, $7, $8)",
        )
        .bind(room_id)
        .bind(entry.ts)
        .bind(entry.actor.as_str())
        .bind(entry.actor_name.as_str())
        .bind(entry.action.as_str())
        .bind(entry.target.as_deref())
        .bind(entry.target_name.as_deref())
        .bind(entry.detail.as_deref())
        .execute(&self.pool)
        .await?;
        Ok(())
    }

    async fn audit_log(&self, room_id: &str) -> StoreResult<Vec<AuditEntry>> {
        let rows: Vec<AuditRow> = sqlx::query_as(
            "SELECT ts, actor, actor_name, action, target, target_name, detail \
             FROM audit_log WHERE room_id = $1 ORDER BY id",
        )
        .bind(room_id)
        .fetch_all(&self.pool)
        .await?;
        Ok(rows.into_iter().map(AuditEntry::from).collect())
    }

    async fn create_recording_session(&self, session: &RecordingSession) -> StoreResult<()> {
        sqlx::query(
            "INSERT INTO recording_sessions (id, room_id, started_at, presentation_only) \
             VALUES ($1, $2, $3, $4)",
        )
        .bind(session.id.as_str())
        .bind(session.room.as_str())
        .bind(session.started_at)
        .bind(session.presentation_only)
        .execute(&self.pool)
        .await
        .map_err(|e| conflict_or_db(e, || format!("session `{}` already exists", session.id)))?;
        Ok(())
    }

    async fn finish_session(&self, id: &str, ended_at: i64, cut_off: bool) -> StoreResult<bool> {
        let found: Option<String> = sqlx::query_scalar(
            "UPDATE recording_sessions SET ended_at = $1, cut_off = $3 \
             WHERE id = $2 AND ended_at IS NULL RETURNING id",
        )
        .bind(ended_at)
        .bind(id)
        .bind(cut_off)
        .fetch_optional(&self.pool)
        .await?;
        Ok(found.is_some())
    }

    async fn unfinished_sessions(&self) -> StoreResult<Vec<SessionRecord>> {
        let rows: Vec<SessionRow> = sqlx::query_as(concat!(
            "SELECT ",
            session_cols!(),
            " FROM recording_sessions WHERE ended_at IS NULL ORDER BY started_at, id"
        ))
        .fetch_all(&self.pool)
        .await?;
        Ok(rows.into_iter().map(SessionRecord::from).collect())
    }

    async fn recording_sessions(&self, room_id: &str) -> StoreResult<Vec<SessionRecord>> {
        let rows: Vec<SessionRow> = sqlx::query_as(concat!(
            "SELECT ",
            session_cols!(),
            " FROM recording_sessions WHERE room_id = $1 ORDER BY started_at, id"
        ))
        .bind(room_id)
        .fetch_all(&self.pool)
        .await?;
        Ok(rows.into_iter().map(SessionRecord::from).collect())
    }

    async fn recording_session(&self, id: &str) -> StoreResult<Option<SessionRecord>> {
        let row: Option<SessionRow> = sqlx::query_as(concat!(
            "SELECT ",
            session_cols!(),
            " FROM recording_sessions WHERE id = $1"
        ))
        .bind(id)
        .fetch_optional(&self.pool)
        .await?;
        Ok(row.map(SessionRecord::from))
    }

    async fn append_consent(&self, entry: &ConsentEntry) -> StoreResult<()> {
        sqlx::query(
            "INSERT INTO consent_ledger (room_id, session_id, participant, name, invite, \
             granted, ts) VALUES ($1, $2, $3, $4, $5, $6, $7)",
        )
        .bind(entry.room.as_str())
        .bind(entry.session.as_deref())
        .bind(entry.participant.as_str())
        .bind(entry.name.as_str())
        .bind(entry.invite.as_deref())
        .bind(entry.granted)
        .bind(entry.ts)
        .execute(&self.pool)
        .await?;
        Ok(())
    }

    async fn consent_ledger(&self, room_id: &str) -> StoreResult<Vec<ConsentEntry>> {
        let rows: Vec<ConsentRow> = sqlx::query_as(
            "SELECT room_id, session_id, participant, name, invite, granted, ts \
             FROM consent_ledger WHERE room_id = $1 ORDER BY id",
        )
        .bind(room_id)
        .fetch_all(&self.pool)
        .await?;
        Ok(rows.into_iter().map(ConsentEntry::from).collect())
    }

    async fn get_setting(&self, key: &str) -> StoreResult<Option<String>> {
        Ok(
            sqlx::query_scalar("SELECT value FROM settings WHERE key = $1")
                .bind(key)
                .fetch_optional(&self.pool)
                .await?,
        )
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
