//! The recordings API, for the admin token only: sessions, their files and consent ledger,
//! deleting a session, purging a speaker, rebuilding a mixdown. What each does is in
//! [`crate::recordings`], which the CLI shares; files are served by
//! [`super::recording_files`].

use std::path::PathBuf;

use axum::Json;
use axum::extract::rejection::QueryRejection;
use axum::extract::{Path, Query, State};
use axum::http::HeaderMap;
use axum::response::IntoResponse;
use serde::Deserialize;
use serde_json::json;

use super::{AppError, require_admin};
use crate::recordings::{self, RecordingsError};
use crate::state::AppState;

impl From<RecordingsError> for AppError {
    fn from(e: RecordingsError) -> Self {
        let code = e.code();
        let message = e.to_string();
        match e {
            RecordingsError::InvalidId(_) => AppError::Invalid(code, message),
            RecordingsError::RoomNotFound(_)
            | RecordingsError::SessionNotFound(_)
            | RecordingsError::FileNotFound(_)
            | RecordingsError::SpeakerNotFound(_) => AppError::NotFound(code, message),
            RecordingsError::Running(_) => AppError::Conflict(code, message),
            RecordingsError::MixdownFailed(..) => AppError::Failed(code, message),
            RecordingsError::Io(detail) => AppError::Internal(detail),
            RecordingsError::Store(e) => e.into(),
        }
    }
}

/// The recordings folder.
pub(super) fn folder(state: &AppState) -> PathBuf {
    state.recorder().dir().to_path_buf()
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
    query: Result<Query<ListQuery>, QueryRejection>,
) -> Result<impl IntoResponse, AppError> {
    require_admin(&state, &headers)?;
    let Query(query) = query.map_err(|e| AppError::BadRequest(e.body_text()))?;
    let sessions =
        recordings::list(state.store.as_ref(), &folder(&state), query.room.as_deref()).await?;
    Ok(Json(json!({ "sessions": sessions })))
}

/// `GET /api/admin/recordings/{session}`: the session, its files with speakers, durations
/// and sizes, and its consent ledger.
pub(super) async fn detail(
    State(state): State<AppState>,
    Path(id): Path<String>,
    headers: HeaderMap,
) -> Result<impl IntoResponse, AppError> {
    require_admin(&state, &headers)?;
    let detail = recordings::detail(state.store.as_ref(), &folder(&state), &id).await?;
    Ok(Json(detail))
}

/// `DELETE /api/admin/recordings/{session}`: its files and its row; the ledger stays.
pub(super) async fn delete(
    State(state): State<AppState>,
    Path(id): Path<String>,
    headers: HeaderMap,
) -> Result<impl IntoResponse, AppError> {
    require_admin(&state, &headers)?;
    let deleted = recordings::delete(state.store.as_ref(), &folder(&state), &id).await?;
    Ok(Json(deleted))
}

/// `DELETE /api/admin/recordings/{session}/speakers/{participant}`: purge a speaker.
pub(super) async fn purge(
    State(state): State<AppState>,
    Path((id, participant)): Path<(String, String)>,
    headers: HeaderMap,
) -> Result<impl IntoResponse, AppError> {
    require_admin(&state, &headers)?;
    let store = state.store.as_ref();
    let purged = recordings::purge(store, &folder(&state), &id, &participant).await?;
    Ok(Json(purged))
}

/// `POST /api/admin/recordings/{session}/mixdown`: rebuild the mixdown and chapters.
pub(super) async fn mixdown(
    State(state): State<AppState>,
    Path(id): Path<String>,
    headers: HeaderMap,
) -> Result<impl IntoResponse, AppError> {
    require_admin(&state, &headers)?;
    recordings::rebuild(state.store.as_ref(), &folder(&state), &id).await?;
    Ok(Json(json!({ "rebuilt": id })))
}
