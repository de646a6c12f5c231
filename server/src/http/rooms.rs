//! The room API: a room's public face, and the admin's create, list and change.

use axum::Json;
use axum::extract::rejection::JsonRejection;
use axum::extract::{Path, State};
use axum::http::{HeaderMap, StatusCode};
use axum::response::IntoResponse;
use serde_json::json;

use super::{AppError, existing_room, json_body, refresh, require_admin};
use crate::rooms::{RoomChanges, create_room};
use crate::state::AppState;

/// `GET /api/rooms/{room}`: public; what the lobby shows before joining.
pub(super) async fn room_info(
    State(state): State<AppState>,
    Path(id): Path<String>,
) -> Result<impl IntoResponse, AppError> {
    let room = existing_room(&state, &id).await?;
    Ok(Json(json!({
        "id": room.id, "title": room.title, "capacity": room.policy.capacity,
        "participants": state.registry_occupancy(&id), "open_link": room.policy.open_link,
    })))
}

/// `POST /api/rooms`: a room and its facilitator's invite.
pub(super) async fn create(
    State(state): State<AppState>,
    headers: HeaderMap,
    body: Result<Json<RoomChanges>, JsonRejection>,
) -> Result<impl IntoResponse, AppError> {
    require_admin(&state, &headers)?;
    let room = json_body(body)?.new_room().map_err(AppError::BadRequest)?;
    let created = create_room(state.store.as_ref(), &state.public_url, &room).await?;
    let body = json!({
        "id": created.id, "title": created.title, "capacity": created.capacity,
        "join_url": created.join_url, "facilitator_url": created.facilitator_url,
        "open_url": created.open_url,
    });
    Ok((StatusCode::CREATED, Json(body)))
}

/// `GET /api/rooms`: every room, newest first.
pub(super) async fn list(
    State(state): State<AppState>,
    headers: HeaderMap,
) -> Result<impl IntoResponse, AppError> {
    require_admin(&state, &headers)?;
    let rooms: Vec<_> = state
        .store
        .list_rooms()
        .await?
        .into_iter()
        .map(|r| {
            json!({
                "id": r.id, "title": r.title, "capacity": r.policy.capacity,
                "created_at": r.created_at, "participants": state.registry_occupancy(&r.id),
                "join_url": state.join_url(&r.id),
            })
        })
        .collect();
    Ok(Json(json!({ "rooms": rooms })))
}

/// `PATCH /api/admin/rooms/{room}`: change a room's title or rules; a running room gets
/// them at once.
pub(super) async fn update(
    State(state): State<AppState>,
    Path(id): Path<String>,
    headers: HeaderMap,
    body: Result<Json<RoomChanges>, JsonRejection>,
) -> Result<impl IntoResponse, AppError> {
    require_admin(&state, &headers)?;
    let changes = json_body(body)?;
    let mut room = existing_room(&state, &id).await?;
    changes.apply(&mut room).map_err(AppError::BadRequest)?;
    state.store.update_room(&room).await?;
    refresh(&state, &id).await;
    Ok(Json(room))
}
