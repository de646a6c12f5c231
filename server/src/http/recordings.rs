//! The recordings API, for the admin token only: sessions, their files and consent ledger,
//! deleting a session, purging a speaker, rebuilding a mixdown. Files are served by
//! [`super::recording_files`].
//!
//! Every id in a path is checked before the disk is touched: a session or participant id
//! is one of the server's ids, a file id is 32 hex digits ([`catalog::is_file_id`]).
//! Anything else is `400 invalid_id`.

use std::collections::HashSet;
use std::path::PathBuf;

use axum::Json;
use axum::extract::{Path, Query, State};
use axum::http::HeaderMap;
use axum::response::IntoResponse;
use serde::{Deserialize, Serialize};
use serde_json::json;

use super::{AppError, existing_room, require_admin};
use crate::recorder::catalog::{self, Kind, Recording};
use crate::recorder::{finalize, is_id};
use crate::state::AppState;
use crate::store::{AuditEntry, ConsentEntry, SessionRecord};

/// The name the admin token acts under in the audit log, as in the room's own entries.
const ADMIN: &str = "admin";

/// `400 invalid_id` unless `id` is one of the server's ids.
pub(super) fn checked_id(id: &str) -> Result<&str, AppError> {
    if is_id(id) {
        Ok(id)
    } else {
        Err(AppError::Invalid(
            "invalid_id",
            "ids are letters, digits, `-` and `_`; never a path".into(),
        ))
    }
}

/// The stored session `id`, or `404 session_not_found`.
pub(super) async fn existing_session(
    state: &AppState,
    id: &str,
) -> Result<SessionRecord, AppError> {
    let id = checked_id(id)?;
    state
        .store
        .recording_session(id)
        .await?
        .ok_or_else(|| AppError::NotFound("session_not_found", format!("no session `{id}`")))
}

/// The recordings folder.
fn folder(state: &AppState) -> PathBuf {
    state.recorder().dir().to_path_buf()
}

/// The files of `session`, read off the async runtime; with their durations if `timed`.
pub(super) async fn files_of(
    state: &AppState,
    session: &str,
    timed: bool,
) -> Result<Vec<(Recording, Option<u64>)>, AppError> {
    let (dir, owned) = (folder(state), session.to_string());
    tokio::task::spawn_blocking(move || {
        let files = catalog::scan(&dir, &owned)?;
        Ok::<_, std::io::Error>(
            files
                .into_iter()
                .map(|f| {
                    let duration = if timed {
                        catalog::duration_ms(&f)
                    } else {
                        None
                    };
                    (f, duration)
                })
                .collect(),
        )
    })
    .await
    .map_err(|e| AppError::Internal(e.to_string()))?
    .map_err(|e| AppError::Internal(format!("reading the recordings of `{session}`: {e}")))
}

/// A session as the list shows it.
#[derive(Serialize)]
struct SessionSummary {
    id: String,
    room: String,
    started_at: i64,
    ended_at: Option<i64>,
    presentation_only: bool,
    cut_off: bool,
    totals: Totals,
}

#[derive(Serialize)]
struct Totals {
    /// Files of every kind.
    files: usize,
    /// Their bytes.
    bytes: u64,
    /// Speakers with at least one file.
    speakers: usize,
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

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct ListQuery {
    room: Option<String>,
}

/// `GET /api/admin/recordings[?room=ID]`: every session, or one room's, newest first.
pub(super) async fn list(
    State(state): State<AppState>,
    headers: HeaderMap,
    query: Result<Query<ListQuery>, axum::extract::rejection::QueryRejection>,
) -> Result<impl IntoResponse, AppError> {
    require_admin(&state, &headers)?;
    let Query(query) = query.map_err(|e| AppError::BadRequest(e.body_text()))?;
    if let Some(room) = &query.room {
        existing_room(&state, checked_id(room)?).await?;
    }
    let mut sessions = Vec::new();
    for session in state
        .store
        .list_recording_sessions(query.room.as_deref())
        .await?
    {
        let files = files_of(&state, &session.id, false).await?;
        sessions.push(summary(session, &files));
    }
    Ok(Json(json!({ "sessions": sessions })))
}

/// One file as the session's detail shows it.
#[derive(Serialize)]
struct FileView {
    id: String,
    kind: Kind,
    /// The speaker's participant id, and their name from the consent ledger.
    speaker: Option<String>,
    speaker_name: Option<String>,
    track: Option<String>,
    duration_ms: Option<u64>,
    size: u64,
    content_type: &'static str,
    file_name: String,
}

/// One consent ledger entry, as the session's detail shows it.
#[derive(Serialize)]
struct LedgerView {
    participant: String,
    name: String,
    invite: Option<String>,
    granted: bool,
    ts: i64,
    /// The session it was made in; `None` for a change made while nothing was recorded.
    session: Option<String>,
}

/// The part of a room's ledger that concerns `session`: each person's last entry before it
/// started (what they carried in) and every entry made during it, in the ledger's order.
pub(super) fn session_ledger(
    room_ledger: Vec<ConsentEntry>,
    session: &SessionRecord,
) -> Vec<ConsentEntry> {
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

/// `GET /api/admin/recordings/{session}`: the session, its files with speakers, durations
/// and sizes, and its consent ledger.
pub(super) async fn detail(
    State(state): State<AppState>,
    Path(id): Path<String>,
    headers: HeaderMap,
) -> Result<impl IntoResponse, AppError> {
    require_admin(&state, &headers)?;
    let session = existing_session(&state, &id).await?;
    let room_ledger = state.store.consent_ledger(&session.room_id).await?;
    let files = files_of(&state, &session.id, true).await?;
    let views: Vec<FileView> = files
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
    let ledger: Vec<LedgerView> = session_ledger(room_ledger, &session)
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
    Ok(Json(json!({
        "session": summary(session, &files),
        "files": views,
        "ledger": ledger,
    })))
}

/// `409 session_running` if the recorder may still write to `session`.
fn ended(session: &SessionRecord) -> Result<(), AppError> {
    match session.ended_at {
        Some(_) => Ok(()),
        None => Err(AppError::Conflict(
            "session_running",
            format!("session `{}` is still recording; stop it first", session.id),
        )),
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
async fn remove(path: PathBuf) -> Result<(), AppError> {
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
    .map_err(|e| AppError::Internal(e.to_string()))?
    .map_err(|e| AppError::Internal(format!("removing {shown}: {e}")))
}

/// `DELETE /api/admin/recordings/{session}`: its files and its row. The consent ledger is
/// append-only and keeps its entries; the room's audit log gets `recording_delete`.
pub(super) async fn delete(
    State(state): State<AppState>,
    Path(id): Path<String>,
    headers: HeaderMap,
) -> Result<impl IntoResponse, AppError> {
    require_admin(&state, &headers)?;
    let session = existing_session(&state, &id).await?;
    ended(&session)?;
    let files = files_of(&state, &session.id, false).await?.len();
    remove(folder(&state).join(&session.id)).await?;
    state.store.delete_recording_session(&session.id).await?;
    let entry = audit("recording_delete", &session.id, None);
    state.store.append_audit(&session.room_id, &entry).await?;
    tracing::info!(session = %session.id, files, "recording session deleted");
    Ok(Json(json!({ "deleted": session.id, "files": files })))
}

/// `DELETE /api/admin/recordings/{session}/speakers/{participant}`: a speaker who withdraws
/// after the session. Their files go, the mixdown is removed and rebuilt without them, and
/// if the ledger last shows them consenting there, a withdrawal is appended. The room's
/// audit log gets `recording_purge`.
pub(super) async fn purge(
    State(state): State<AppState>,
    Path((id, participant)): Path<(String, String)>,
    headers: HeaderMap,
) -> Result<impl IntoResponse, AppError> {
    require_admin(&state, &headers)?;
    let session = existing_session(&state, &id).await?;
    let participant = checked_id(&participant)?.to_string();
    ended(&session)?;
    let ledger = session_ledger(
        state.store.consent_ledger(&session.room_id).await?,
        &session,
    );
    let files = files_of(&state, &session.id, false).await?;
    let theirs = files
        .iter()
        .filter(|(f, _)| f.speaker.as_deref() == Some(participant.as_str()))
        .count();
    let last = ledger.iter().rev().find(|e| e.participant == participant);
    if theirs == 0 && last.is_none() {
        return Err(AppError::NotFound(
            "speaker_not_found",
            format!(
                "`{participant}` is not a speaker of session `{}`",
                session.id
            ),
        ));
    }
    let dir = folder(&state).join(&session.id);
    remove(dir.join(&participant)).await?;
    // Never left holding their voice, even if the rebuild fails.
    remove(dir.join("mixdown.opus")).await?;
    let withdrawn = match last {
        Some(last) if last.granted => {
            let entry = ConsentEntry {
                session: Some(session.id.clone()),
                granted: false,
                ts: crate::room::now().unix_ms,
                ..last.clone()
            };
            state.store.append_consent(&entry).await?;
            true
        }
        _ => false,
    };
    let name = last.map(|e| e.name.clone());
    let entry = audit("recording_purge", &session.id, Some((&participant, name)));
    state.store.append_audit(&session.room_id, &entry).await?;
    tracing::info!(session = %session.id, %participant, files = theirs, "speaker purged");
    rebuild(&state, &session.id).await?;
    Ok(Json(json!({
        "session": session.id, "participant": participant, "files": theirs,
        "withdrawal_recorded": withdrawn,
    })))
}

/// `POST /api/admin/recordings/{session}/mixdown`: rebuild the mixdown and chapters from
/// the files on disk.
pub(super) async fn mixdown(
    State(state): State<AppState>,
    Path(id): Path<String>,
    headers: HeaderMap,
) -> Result<impl IntoResponse, AppError> {
    require_admin(&state, &headers)?;
    let session = existing_session(&state, &id).await?;
    ended(&session)?;
    rebuild(&state, &session.id).await?;
    Ok(Json(json!({ "rebuilt": session.id })))
}

/// The lead's finalize step; a failure is `500 mixdown_failed`.
async fn rebuild(state: &AppState, session: &str) -> Result<(), AppError> {
    finalize::finalize_session(state.store.as_ref(), &folder(state), session)
        .await
        .map_err(|e| AppError::Failed("mixdown_failed", format!("{session}: {e:#}")))
}
