//! Invites over HTTP: the admin mints, lists and revokes them and reads the audit log; the
//! lobby checks an invite, without using it, to show its role and fixed name.

use std::time::Duration;

use axum::Json;
use axum::extract::rejection::JsonRejection;
use axum::extract::{Path, State};
use axum::http::{HeaderMap, StatusCode};
use axum::response::IntoResponse;
use serde::Deserialize;
use serde_json::json;
use signaling::roles::Role;

use super::{AppError, existing_room, json_body, refresh, require_admin};
use crate::invites::{self, INVITE_TTL, InviteSpec, InviteView, mint};
use crate::state::AppState;
use crate::store::InviteRefusal;

/// The body of `POST /api/admin/rooms/{room}/invites`.
#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct NewInvite {
    role: Role,
    name: Option<String>,
    expires_in_s: Option<u64>,
    reserve: Option<bool>,
    uses: Option<u32>,
}

/// `POST /api/admin/rooms/{room}/invites`: 201 with the invite and its link.
pub(super) async fn create(
    State(state): State<AppState>,
    Path(room): Path<String>,
    headers: HeaderMap,
    body: Result<Json<NewInvite>, JsonRejection>,
) -> Result<impl IntoResponse, AppError> {
    require_admin(&state, &headers)?;
    let body = json_body(body)?;
    let spec = InviteSpec {
        role: body.role,
        name: body.name,
        ttl: body.expires_in_s.map_or(INVITE_TTL, Duration::from_secs),
        reserve: body.reserve,
        max_uses: body.uses,
    };
    let now = crate::room::now().unix_ms;
    let minted = mint(state.store.as_ref(), &state.public_url, &room, &spec, now).await?;
    refresh(&state, &room).await;
    let invite = InviteView::at(&minted.invite, now);
    Ok((
        StatusCode::CREATED,
        Json(json!({ "invite": invite, "url": minted.url })),
    ))
}

/// `GET /api/admin/rooms/{room}/invites`: newest first, with their states; no secrets.
pub(super) async fn list(
    State(state): State<AppState>,
    Path(room): Path<String>,
    headers: HeaderMap,
) -> Result<impl IntoResponse, AppError> {
    require_admin(&state, &headers)?;
    existing_room(&state, &room).await?;
    let now = crate::room::now().unix_ms;
    let invites = state.store.list_invites(&room).await?;
    Ok(Json(json!({ "invites": InviteView::all(&invites, now) })))
}

/// `DELETE /api/admin/rooms/{room}/invites/{invite}`: 204; it admits nobody from now on.
pub(super) async fn revoke(
    State(state): State<AppState>,
    Path((room, invite)): Path<(String, String)>,
    headers: HeaderMap,
) -> Result<impl IntoResponse, AppError> {
    require_admin(&state, &headers)?;
    existing_room(&state, &room).await?;
    let now = crate::room::now().unix_ms;
    if !state.store.revoke_invite(&room, &invite, now).await? {
        return Err(AppError::NotFound(
            "invite_not_found",
            format!("room `{room}` has no invite `{invite}`"),
        ));
    }
    refresh(&state, &room).await;
    Ok(StatusCode::NO_CONTENT)
}

/// The body of `POST /api/rooms/{room}/invite-check`.
#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct InviteCheck {
    invite: String,
}

/// `POST /api/rooms/{room}/invite-check`: public. What an invite would give, without taking
/// one of its uses, or why it admits nobody. The secret comes in a body, not the path, so
/// that it stays out of access logs.
pub(super) async fn check(
    State(state): State<AppState>,
    Path(room): Path<String>,
    body: Result<Json<InviteCheck>, JsonRejection>,
) -> Result<impl IntoResponse, AppError> {
    let body = json_body(body)?;
    existing_room(&state, &room).await?;
    let now = crate::room::now().unix_ms;
    let hash = invites::secret_hash(&body.invite);
    match state.store.check_invite(&room, &hash, now).await? {
        Ok(invite) => Ok(Json(json!({
            "role": invite.role, "name": invite.name, "expires_at": invite.expires_at,
        }))),
        Err(refusal) => Err(refused(refusal)),
    }
}

/// 404 for an invite that is not this room's, 410 for one that was.
fn refused(refusal: InviteRefusal) -> AppError {
    let reject = invites::refused(refusal);
    let code = reject.code.as_str();
    match refusal {
        InviteRefusal::Invalid | InviteRefusal::WrongRoom => {
            AppError::NotFound(code, reject.message)
        }
        InviteRefusal::Revoked | InviteRefusal::Expired | InviteRefusal::UsedUp => {
            AppError::Gone(code, reject.message)
        }
    }
}

/// `GET /api/admin/rooms/{room}/audit`: the room's moderation actions, oldest first.
pub(super) async fn audit(
    State(state): State<AppState>,
    Path(room): Path<String>,
    headers: HeaderMap,
) -> Result<impl IntoResponse, AppError> {
    require_admin(&state, &headers)?;
    existing_room(&state, &room).await?;
    let entries = state.store.audit_log(&room).await?;
    Ok(Json(json!({ "entries": entries })))
}
