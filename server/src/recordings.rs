//! Recording sessions for the admin: list them, show one (files, speakers, durations, its
//! consent ledger), delete one, purge a speaker, rebuild a mixdown. The CLI
//! (`roundtable recordings ...`) and the admin API both go through here, so they take and
//! refuse the same things.
//!
//! Every id is checked before the disk is touched: a session or participant id is one of
//! the server's ids, a file id is 32 hex digits ([`catalog::is_file_id`]).

use std::collections::HashSet;
use std::path::{Path, PathBuf};

use serde::Serialize;

use crate::recorder::catalog::{self, Kind, Recording};
use crate::recorder::{finalize, is_id};
use crate::store::{AuditEntry, ConsentEntry, SessionRecord, Store, StoreError};

/// The name the admin acts under in the audit log, as in the room's own entries.
const ADMIN: &str = "admin";

/// Why a request about recordings is refused. [`RecordingsError::code`] is its stable code.
#[derive(Debug, thiserror::Error)]
pub enum RecordingsError {
    /// An id that is not one of ours (a path, `..`).
    #[error("`{0}` is not an id: ids are letters, digits, `-` and `_`, and a file's 32 hex digits")]
    InvalidId(String),
    /// No such room.
    #[error("no room `{0}`")]
    RoomNotFound(String),
    /// No such session.
    #[error("no recording session `{0}`")]
    SessionNotFound(String),
    /// No such file in the session.
    #[error("no file `{0}` in this session")]
    FileNotFound(String),
    /// Neither files nor ledger entries of this participant in the session.
    #[error("`{0}` is not a speaker of this session")]
    SpeakerNotFound(String),
    /// The session still records.
    #[error("session `{0}` is still recording; stop it first")]
    Running(String),
    /// The mixdown could not be rebuilt.
    #[error("rebuilding the mixdown of `{0}`: {1}")]
    MixdownFailed(String, String),
    /// The disk failed.
    #[error("{0}")]
    Io(String),
    /// The store failed.
    #[error(transparent)]
    Store(#[from] StoreError),
}

impl RecordingsError {
    /// The stable code the API answers with.
    pub fn code(&self) -> &'static str {
        match self {
            RecordingsError::InvalidId(_) => "invalid_id",
            RecordingsError::RoomNotFound(_) => "room_not_found",
            RecordingsError::SessionNotFound(_) => "session_not_found",
            RecordingsError::FileNotFound(_) => "file_not_found",
            RecordingsError::SpeakerNotFound(_) => "speaker_not_found",
            RecordingsError::Running(_) => "session_running",
            RecordingsError::MixdownFailed(..) => "mixdown_failed",
            RecordingsError::Io(_) | RecordingsError::Store(_) => "internal",
        }
    }
}

type Result<T> = std::result::Result<T, RecordingsError>;

/// `id`, if it is one of the server's ids.
pub fn checked_id(id: &str) -> Result<&str> {
    if is_id(id) {
        Ok(id)
    } else {
        Err(RecordingsError::InvalidId(id.to_string()))
    }
}

/// `id`, if it has a file id's shape.
pub fn checked_file_id(id: &str) -> Result<&str> {
    if catalog::is_file_id(id) {
        Ok(id)
    } else {
        Err(RecordingsError::InvalidId(id.to_string()))
    }
}

/// The stored session `id`.
pub async fn session(store: &dyn Store, id: &str) -> Result<SessionRecord> {
    let id = checked_id(id)?;
    store
        .recording_session(id)
        .await?
        .ok_or_else(|| RecordingsError::SessionNotFound(id.to_string()))
}

/// The files of `session` under `dir`, read off the async runtime; with their durations if
/// `timed`.
pub async fn files(
    dir: &Path,
    session: &str,
    timed: bool,
) -> Result<Vec<(Recording, Option<u64>)>> {
    let (dir, owned) = (dir.to_path_buf(), session.to_string());
    tokio::task::spawn_blocking(move || {
        let files = catalog::scan(&dir, &owned)?;
        let timed = files.into_iter().map(|f| {
            let duration = if timed {
                catalog::duration_ms(&f)
            } else {
                None
            };
            (f, duration)
        });
        Ok::<_, std::io::Error>(timed.collect())
    })
    .await
    .map_err(|e| RecordingsError::Io(e.to_string()))?
    .map_err(|e| RecordingsError::Io(format!("reading the recordings of `{session}`: {e}")))
}

/// The file `id` of `session` (both checked here).
pub async fn file(store: &dyn Store, dir: &Path, session_id: &str, id: &str) -> Result<Recording> {
    checked_id(session_id)?;
    let id = checked_file_id(id)?;
    let session = session(store, session_id).await?;
    files(dir, &session.id, false)
        .await?
        .into_iter()
        .map(|(f, _)| f)
        .find(|f| f.id == id)
        .ok_or_else(|| RecordingsError::FileNotFound(id.to_string()))
}

/// A session as the list shows it.
#[derive(Debug, Serialize)]
pub struct SessionSummary {
    pub id: String,
    pub room: String,
    pub started_at: i64,
    pub ended_at: Option<i64>,
    pub presentation_only: bool,
    pub cut_off: bool,
    pub totals: Totals,
}

/// What a session's folder holds.
#[derive(Debug, Serialize)]
pub struct Totals {
    /// Files of every kind.
    pub files: usize,
    /// Their bytes.
    pub bytes: u64,
    /// Speakers with at least one file.
    pub speakers: usize,
}

fn summary(session: SessionRecord, files: &[(Recording, Option<u64>)]) -> SessionSummary {
    let speakers: HashSet<&str> = files
        .iter()
        .filter_map(|(f, _)| f.speaker.as_deref())
        .collect();
    SessionSummary {
        totals: Totals {
            files: files.len(),
            bytes: files.iter().map(|(f, _)| f.size).sum(),
            speakers: speakers.len(),
        },
        id: session.id,
        room: session.room_id,
        started_at: session.started_at,
        ended_at: session.ended_at,
        presentation_only: session.presentation_only,
        cut_off: session.cut_off,
    }
}

/// Every session, or `room`'s, newest first, with their totals.
pub async fn list(
    store: &dyn Store,
    dir: &Path,
    room: Option<&str>,
) -> Result<Vec<SessionSummary>> {
    if let Some(room) = room {
        let room = checked_id(room)?;
        if store.get_room(room).await?.is_none() {
            return Err(RecordingsError::RoomNotFound(room.to_string()));
        }
    }
    let mut sessions = Vec::new();
    for session in store.list_recording_sessions(room).await? {
        let files = files(dir, &session.id, false).await?;
        sessions.push(summary(session, &files));
    }
    Ok(sessions)
}

/// One file as a session's detail shows it.
#[derive(Debug, Serialize)]
pub struct FileView {
    pub id: String,
    pub kind: Kind,
    /// The speaker's participant id, and their name from the consent ledger.
    pub speaker: Option<String>,
    pub speaker_name: Option<String>,
    pub track: Option<String>,
    pub duration_ms: Option<u64>,
    pub size: u64,
    pub content_type: &'static str,
    pub file_name: String,
}

/// One consent ledger entry, as a session's detail shows it.
#[derive(Debug, Serialize)]
pub struct LedgerView {
    pub participant: String,
    pub name: String,
    pub invite: Option<String>,
    pub granted: bool,
    pub ts: i64,
    /// The session it was made in; `None` for a change made while nothing was recorded.
    pub session: Option<String>,
}

/// A session, its files and its consent ledger.
#[derive(Debug, Serialize)]
pub struct SessionDetail {
    pub session: SessionSummary,
    pub files: Vec<FileView>,
    pub ledger: Vec<LedgerView>,
}

/// The part of a room's ledger that concerns `session`: each person's last entry before it
/// started (what they carried in) and every entry made during it, in the ledger's order.
fn session_ledger(room_ledger: Vec<ConsentEntry>, session: &SessionRecord) -> Vec<ConsentEntry> {
    let during = |e: &ConsentEntry| e.session.as_deref() == Some(session.id.as_str());
    let mut carried: Vec<usize> = Vec::new();
    for (i, e) in room_ledger.iter().enumerate() {
        if !during(e) && e.ts <= session.started_at {
            carried.retain(|&j| room_ledger[j].participant != e.participant);
            carried.push(i);
        }
    }
    room_ledger
        .into_iter()
        .enumerate()
        .filter(|(i, e)| during(e) || carried.contains(i))
        .map(|(_, e)| e)
        .collect()
}

/// The name someone last had in `ledger`.
fn name_in(ledger: &[ConsentEntry], participant: &str) -> Option<String> {
    ledger
        .iter()
        .rev()
        .find(|e| e.participant == participant)
        .map(|e| e.name.clone())
}

/// The session `id`: its files with speakers, durations and sizes, and its ledger.
pub async fn detail(store: &dyn Store, dir: &Path, id: &str) -> Result<SessionDetail> {
    let session = session(store, id).await?;
    let room_ledger = store.consent_ledger(&session.room_id).await?;
    let files = files(dir, &session.id, true).await?;
    let views = files
        .iter()
        .map(|(f, duration_ms)| FileView {
            id: f.id.clone(),
            kind: f.kind,
            speaker_name: f.speaker.as_deref().and_then(|p| name_in(&room_ledger, p)),
            speaker: f.speaker.clone(),
            track: f.track.clone(),
            duration_ms: *duration_ms,
            size: f.size,
            content_type: f.content_type,
            file_name: f.file_name.clone(),
        })
        .collect();
    let ledger = session_ledger(room_ledger, &session)
        .into_iter()
        .map(|e| LedgerView {
            participant: e.participant,
            name: e.name,
            invite: e.invite,
            granted: e.granted,
            ts: e.ts,
            session: e.session,
        })
        .collect();
    Ok(SessionDetail {
        session: summary(session, &files),
        files: views,
        ledger,
    })
}

/// `Running` if the recorder may still write to `session`.
fn ended(session: &SessionRecord) -> Result<()> {
    match session.ended_at {
        Some(_) => Ok(()),
        None => Err(RecordingsError::Running(session.id.clone())),
    }
}

/// An entry of the admin's in the room's audit log.
fn audit(action: &str, session: &str, target: Option<(&str, Option<String>)>) -> AuditEntry {
    AuditEntry {
        ts: crate::room::now().unix_ms,
        actor: ADMIN.into(),
        actor_name: ADMIN.into(),
        action: action.into(),
        target: target.as_ref().map(|(id, _)| id.to_string()),
        target_name: target.and_then(|(_, name)| name),
        detail: Some(session.to_string()),
    }
}

/// Remove `path` (a folder or a file) off the async runtime; absent is fine.
async fn remove(path: PathBuf) -> Result<()> {
    let shown = path.display().to_string();
    tokio::task::spawn_blocking(move || {
        let gone = if path.is_dir() {
            std::fs::remove_dir_all(&path)
        } else {
            std::fs::remove_file(&path)
        };
        match gone {
            Err(e) if e.kind() != std::io::ErrorKind::NotFound => Err(e),
            _ => Ok(()),
        }
    })
    .await
    .map_err(|e| RecordingsError::Io(e.to_string()))?
    .map_err(|e| RecordingsError::Io(format!("removing {shown}: {e}")))
}

/// What a delete did.
#[derive(Debug, Serialize)]
pub struct Deleted {
    /// The session.
    pub deleted: String,
    /// Its files that went.
    pub files: usize,
}

/// Delete session `id`: its files and its row. The consent ledger is append-only and keeps
/// its entries; the room's audit log gets `recording_delete`.
pub async fn delete(store: &dyn Store, dir: &Path, id: &str) -> Result<Deleted> {
    let session = session(store, id).await?;
    ended(&session)?;
    let files = files(dir, &session.id, false).await?.len();
    let finalizing = finalize::exclusive().await;
    remove(dir.join(&session.id)).await?;
    drop(finalizing);
    store.delete_recording_session(&session.id).await?;
    let entry = audit("recording_delete", &session.id, None);
    store.append_audit(&session.room_id, &entry).await?;
    tracing::info!(session = %session.id, files, "recording session deleted");
    Ok(Deleted {
        deleted: session.id,
        files,
    })
}

/// What a purge did.
#[derive(Debug, Serialize)]
pub struct Purged {
    pub session: String,
    pub participant: String,
    /// Their files that went.
    pub files: usize,
    /// Whether a withdrawal was appended to the ledger (not if it showed one already).
    pub withdrawal_recorded: bool,
}

/// Purge `participant` from session `id`, a speaker who withdraws after it: their files
/// go, the mixdown is removed and rebuilt without them, and if the ledger last shows them
/// consenting there, a withdrawal is appended. The room's audit log gets `recording_purge`.
pub async fn purge(store: &dyn Store, dir: &Path, id: &str, participant: &str) -> Result<Purged> {
    let session = session(store, id).await?;
    let participant = checked_id(participant)?.to_string();
    ended(&session)?;
    let ledger = session_ledger(store.consent_ledger(&session.room_id).await?, &session);
    let theirs = files(dir, &session.id, false)
        .await?
        .iter()
        .filter(|(f, _)| f.speaker.as_deref() == Some(participant.as_str()))
        .count();
    let last = ledger.iter().rev().find(|e| e.participant == participant);
    if theirs == 0 && last.is_none() {
        return Err(RecordingsError::SpeakerNotFound(participant));
    }
    let folder = dir.join(&session.id);
    // Never left holding their voice, even if the rebuild fails: no finalize that read
    // their files may rename its mixdown over the removal.
    let finalizing = finalize::exclusive().await;
    remove(folder.join(&participant)).await?;
    remove(folder.join("mixdown.opus")).await?;
    drop(finalizing);
    let withdrawn = match last {
        Some(last) if last.granted => {
            let entry = ConsentEntry {
                session: Some(session.id.clone()),
                granted: false,
                ts: crate::room::now().unix_ms,
                ..last.clone()
            };
            store.append_consent(&entry).await?;
            true
        }
        _ => false,
    };
    let target = Some((participant.as_str(), last.map(|e| e.name.clone())));
    let entry = audit("recording_purge", &session.id, target);
    store.append_audit(&session.room_id, &entry).await?;
    tracing::info!(session = %session.id, %participant, files = theirs, "speaker purged");
    rebuild_files(store, dir, &session.id).await?;
    Ok(Purged {
        session: session.id,
        participant,
        files: theirs,
        withdrawal_recorded: withdrawn,
    })
}

/// Rebuild session `id`'s mixdown and chapters from the files on disk.
pub async fn rebuild(store: &dyn Store, dir: &Path, id: &str) -> Result<()> {
    let session = session(store, id).await?;
    ended(&session)?;
    rebuild_files(store, dir, &session.id).await
}

async fn rebuild_files(store: &dyn Store, dir: &Path, session: &str) -> Result<()> {
    finalize::finalize_session(store, dir, session)
        .await
        .map_err(|e| RecordingsError::MixdownFailed(session.to_string(), format!("{e:#}")))
}
