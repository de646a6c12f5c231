//! HTTP: the embedded web client, the room API, the admin API, the operator's probes and
//! metrics, and the WebSocket upgrade. [`AppError`] is the one place where errors become
//! HTTP statuses.
//!
//! Every response carries the security headers ([`security_headers`]): the pages may load
//! only their own scripts and styles, talk only to their own server, and never be framed.

use axum::extract::rejection::JsonRejection;
use axum::extract::{Path, State, WebSocketUpgrade};
use axum::http::{HeaderMap, HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use axum::routing::{delete, get, patch, post};
use axum::{Extension, Json, Router};
use serde::{Deserialize, Serialize};
use serde_json::json;
use signaling::wire::{ErrorCode, MediaKind};
use tower_http::set_header::SetResponseHeaderLayer;

use crate::invites::MintError;
use crate::listener::ClientAddr;
use crate::media::{DelaySnapshot, MediaStats};
use crate::room::RoomCmd;
use crate::state::AppState;
use crate::store::{RoomRecord, StoreError};
use crate::ws;

mod agenda;
mod invites;
mod recording_files;
mod recordings;
mod rooms;

/// The web client, embedded so that one binary runs the product.
const ASSETS: &[(&str, &str, &str)] = &[
    (
        "admin.css",
        "text/css; charset=utf-8",
        include_str!("../../web-client/admin.css"),
    ),
    (
        "agenda-editor.js",
        "text/javascript; charset=utf-8",
        include_str!("../../web-client/agenda-editor.js"),
    ),
    (
        "agenda.js",
        "text/javascript; charset=utf-8",
        include_str!("../../web-client/agenda.js"),
    ),
    (
        "api.js",
        "text/javascript; charset=utf-8",
        include_str!("../../web-client/api.js"),
    ),
    (
        "app.js",
        "text/javascript; charset=utf-8",
        include_str!("../../web-client/app.js"),
    ),
    (
        "call.js",
        "text/javascript; charset=utf-8",
        include_str!("../../web-client/call.js"),
    ),
    (
        "chat.js",
        "text/javascript; charset=utf-8",
        include_str!("../../web-client/chat.js"),
    ),
    (
        "clock.js",
        "text/javascript; charset=utf-8",
        include_str!("../../web-client/clock.js"),
    ),
    (
        "countdown.js",
        "text/javascript; charset=utf-8",
        include_str!("../../web-client/countdown.js"),
    ),
    (
        "devices.js",
        "text/javascript; charset=utf-8",
        include_str!("../../web-client/devices.js"),
    ),
    (
        "floor.js",
        "text/javascript; charset=utf-8",
        include_str!("../../web-client/floor.js"),
    ),
    (
        "lobby.js",
        "text/javascript; charset=utf-8",
        include_str!("../../web-client/lobby.js"),
    ),
    (
        "media.js",
        "text/javascript; charset=utf-8",
        include_str!("../../web-client/media.js"),
    ),
    (
        "moderation.js",
        "text/javascript; charset=utf-8",
        include_str!("../../web-client/moderation.js"),
    ),
    (
        "people.js",
        "text/javascript; charset=utf-8",
        include_str!("../../web-client/people.js"),
    ),
    (
        "recording.js",
        "text/javascript; charset=utf-8",
        include_str!("../../web-client/recording.js"),
    ),
    (
        "protocol.js",
        "text/javascript; charset=utf-8",
        include_str!("../../web-client/protocol.js"),
    ),
    (
        "state.js",
        "text/javascript; charset=utf-8",
        include_str!("../../web-client/state.js"),
    ),
    (
        "ui.js",
        "text/javascript; charset=utf-8",
        include_str!("../../web-client/ui.js"),
    ),
    (
        "waiting.js",
        "text/javascript; charset=utf-8",
        include_str!("../../web-client/waiting.js"),
    ),
    (
        "words.js",
        "text/javascript; charset=utf-8",
        include_str!("../../web-client/words.js"),
    ),
    (
        "recordings.js",
        "text/javascript; charset=utf-8",
        include_str!("../../web-client/recordings.js"),
    ),
    (
        "style.css",
        "text/css; charset=utf-8",
        include_str!("../../web-client/style.css"),
    ),
];
const INDEX_HTML: &str = include_str!("../../web-client/index.html");
const ADMIN_HTML: &str = include_str!("../../web-client/admin.html");

/// The router.
pub fn app(state: AppState) -> Router {
    let [csp, nosniff, referrer] = security_headers(&state);
    Router::new()
        .route("/", get(index))
        .route("/r/{room}", get(index))
        .route("/admin", get(admin_page))
        .route("/assets/{file}", get(asset))
        .route("/healthz", get(|| async { "ok" }))
        .route("/readyz", get(ready))
        .route("/metrics", get(metrics))
        .route("/ws", get(websocket))
        .route("/api/rooms", get(rooms::list).post(rooms::create))
        .route("/api/rooms/{room}", get(rooms::room_info))
        .route("/api/rooms/{room}/invite-check", post(invites::check))
        .route("/api/admin/rooms/{room}", patch(rooms::update))
        .route(
            "/api/admin/rooms/{room}/invites",
            get(invites::list).post(invites::create),
        )
        .route(
            "/api/admin/rooms/{room}/invites/{invite}",
            delete(invites::revoke),
        )
        .route("/api/admin/rooms/{room}/audit", get(invites::audit))
        .route(
            "/api/admin/rooms/{room}/agenda",
            get(agenda::read).put(agenda::replace),
        )
        .route("/api/admin/media", get(media_report))
        .route("/api/admin/recordings", get(recordings::list))
        .route(
            "/api/admin/recordings/{session}",
            get(recordings::detail).delete(recordings::delete),
        )
        .route(
            "/api/admin/recordings/{session}/files/{*file}",
            get(recording_files::serve),
        )
        .route(
            "/api/admin/recordings/{session}/links",
            post(recording_files::link),
        )
        .route(
            "/api/admin/recordings/{session}/speakers/{participant}",
            delete(recordings::purge),
        )
        .route(
            "/api/admin/recordings/{session}/mixdown",
            post(recordings::mixdown),
        )
        .route(
            "/api/recordings/{session}/files/{*file}",
            get(recording_files::serve_signed),
        )
        .route(
            "/api/admin/rooms/{room}/participants/{participant}/forwarding",
            post(forwarding),
        )
        .fallback(|| async { AppError::NotFound("not_found", "no such page".into()) })
        .layer(csp)
        .layer(nosniff)
        .layer(referrer)
        .with_state(state)
}

/// How long `/readyz` waits for the database before it answers 503.
const READY_TIMEOUT: std::time::Duration = std::time::Duration::from_secs(2);

/// The headers of every response. `Referrer-Policy: no-referrer` because join links will
/// carry secrets; `connect-src` names the WebSocket's origin as well as `'self'`, which
/// older browsers do not apply to `ws:`.
fn security_headers(state: &AppState) -> [SetResponseHeaderLayer<HeaderValue>; 3] {
    let csp = format!(
        "default-src 'none'; script-src 'self'; style-src 'self'; img-src 'self' data:; \
         media-src 'self'; connect-src 'self' {}; base-uri 'none'; form-action 'self'; frame-ancestors 'none'",
        crate::origin::websocket_origin(&state.public_url)
    );
    let csp = HeaderValue::from_str(&csp).expect("an origin is a valid header value");
    let set = SetResponseHeaderLayer::overriding;
    [
        set(header::CONTENT_SECURITY_POLICY, csp),
        set(
            header::X_CONTENT_TYPE_OPTIONS,
            HeaderValue::from_static("nosniff"),
        ),
        set(
            header::REFERRER_POLICY,
            HeaderValue::from_static("no-referrer"),
        ),
    ]
}

/// Every HTTP failure. JSON body `{"error":{"code","message"}}` with a stable code.
#[derive(Debug)]
pub enum AppError {
    /// 404 with a code.
    NotFound(&'static str, String),
    /// 401.
    Unauthorized,
    /// 403 with a code.
    Forbidden(&'static str, String),
    /// 400 `bad_request`: the request does not parse.
    BadRequest(String),
    /// 400 with a code: the request parses, but what it carries is refused.
    Invalid(&'static str, String),
    /// 409 with a code: the request conflicts with what is there.
    Conflict(&'static str, String),
    /// 410 with a code: it was there, and is no more.
    Gone(&'static str, String),
    /// 503 with a code; the detail is logged, not shown.
    Unavailable(&'static str, String),
    /// 500; the detail is logged, not shown.
    Internal(String),
    /// 500 with a code: a step that can fail on its own (a rebuild); the detail is logged.
    Failed(&'static str, String),
}

impl From<StoreError> for AppError {
    fn from(e: StoreError) -> Self {
        AppError::Internal(e.to_string())
    }
}

impl From<MintError> for AppError {
    fn from(e: MintError) -> Self {
        match e {
            MintError::RoomNotFound(_) => AppError::NotFound("room_not_found", e.to_string()),
            MintError::NoSeat(m) => AppError::Conflict("no_seat_to_reserve", m),
            MintError::Invalid(m) => AppError::BadRequest(m),
            MintError::Store(e) => e.into(),
        }
    }
}

impl IntoResponse for AppError {
    fn into_response(self) -> Response {
        let (status, code, message) = match self {
            AppError::NotFound(code, m) => (StatusCode::NOT_FOUND, code, m),
            AppError::Unauthorized => (
                StatusCode::UNAUTHORIZED,
                "unauthorized",
                "send `Authorization: Bearer <admin token>`".to_string(),
            ),
            AppError::Forbidden(code, m) => (StatusCode::FORBIDDEN, code, m),
            AppError::BadRequest(m) => (StatusCode::BAD_REQUEST, "bad_request", m),
            AppError::Invalid(code, m) => (StatusCode::BAD_REQUEST, code, m),
            AppError::Conflict(code, m) => (StatusCode::CONFLICT, code, m),
            AppError::Gone(code, m) => (StatusCode::GONE, code, m),
            AppError::Unavailable(code, detail) => {
                tracing::warn!(code, %detail, "not ready");
                (
                    StatusCode::SERVICE_UNAVAILABLE,
                    code,
                    "not ready; try again".to_string(),
                )
            }
            AppError::Failed(code, detail) => {
                tracing::error!(code, %detail, "request failed");
                (
                    StatusCode::INTERNAL_SERVER_ERROR,
                    code,
                    "the server could not finish this; see its log".to_string(),
                )
            }
            AppError::Internal(detail) => {
                tracing::error!(%detail, "request failed");
                (
                    StatusCode::INTERNAL_SERVER_ERROR,
                    "internal",
                    "internal error".to_string(),
                )
            }
        };
        (
            status,
            Json(json!({ "error": { "code": code, "message": message } })),
        )
            .into_response()
    }
}

async fn index() -> impl IntoResponse {
    (
        [
            (header::CONTENT_TYPE, "text/html; charset=utf-8"),
            (header::CACHE_CONTROL, "no-cache"),
        ],
        INDEX_HTML,
    )
}

/// `GET /admin`: the admin page. It asks for the admin token and keeps it in the tab's
/// `sessionStorage` only.
async fn admin_page() -> impl IntoResponse {
    (
        [
            (header::CONTENT_TYPE, "text/html; charset=utf-8"),
            (header::CACHE_CONTROL, "no-cache"),
        ],
        ADMIN_HTML,
    )
}

async fn asset(Path(file): Path<String>) -> Result<impl IntoResponse, AppError> {
    let (_, mime, body) = ASSETS
        .iter()
        .find(|(name, _, _)| *name == file)
        .ok_or_else(|| AppError::NotFound("not_found", format!("no asset `{file}`")))?;
    Ok((
        [
            (header::CONTENT_TYPE, *mime),
            (header::CACHE_CONTROL, "no-cache"),
        ],
        *body,
    ))
}

async fn websocket(
    upgrade: WebSocketUpgrade,
    State(state): State<AppState>,
    headers: HeaderMap,
    client: Option<Extension<ClientAddr>>,
) -> Result<Response, AppError> {
    let origin = headers.get(header::ORIGIN).map(HeaderValue::as_bytes);
    if !state.origins.allows(origin) {
        return Err(AppError::Forbidden(
            "origin_not_allowed",
            "pages of this origin may not open the WebSocket".into(),
        ));
    }
    let client = client.map(|Extension(ClientAddr(ip))| ip);
    Ok(upgrade
        .max_message_size(ws::MAX_FRAME_BYTES)
        .max_frame_size(ws::MAX_FRAME_BYTES)
        .read_buffer_size(ws::READ_BUFFER_BYTES)
        .on_upgrade(move |socket| ws::serve(socket, state, client)))
}

/// `GET /readyz`: 200 when the database answers, 503 `database_unavailable` when it fails
/// or takes longer than [`READY_TIMEOUT`]. `/healthz` says only that the process serves.
async fn ready(State(state): State<AppState>) -> Result<&'static str, AppError> {
    let unavailable = |detail: String| AppError::Unavailable("database_unavailable", detail);
    tokio::time::timeout(READY_TIMEOUT, state.store.ping())
        .await
        .map_err(|_| unavailable(format!("no answer within {READY_TIMEOUT:?}")))?
        .map_err(|e| unavailable(e.to_string()))?;
    Ok("ok")
}

/// `GET /metrics`: Prometheus's text format, for the admin token (it shows what
/// `/api/admin/media` shows).
async fn metrics(
    State(state): State<AppState>,
    headers: HeaderMap,
) -> Result<impl IntoResponse, AppError> {
    require_admin(&state, &headers)?;
    let kind = "text/plain; version=0.0.4; charset=utf-8";
    Ok(([(header::CONTENT_TYPE, kind)], state.render_metrics()))
}

fn require_admin(state: &AppState, headers: &HeaderMap) -> Result<(), AppError> {
    let token = headers
        .get(header::AUTHORIZATION)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.strip_prefix("Bearer "))
        .ok_or(AppError::Unauthorized)?;
    if state.is_admin(token) {
        Ok(())
    } else {
        Err(AppError::Unauthorized)
    }
}

/// A JSON body, or 400 `bad_request` saying what is wrong with it.
fn json_body<T>(body: Result<Json<T>, JsonRejection>) -> Result<T, AppError> {
    body.map(|Json(body)| body)
        .map_err(|e| AppError::BadRequest(e.body_text()))
}

/// The stored room `id`, or 404 `room_not_found`.
async fn existing_room(state: &AppState, id: &str) -> Result<RoomRecord, AppError> {
    state
        .store
        .get_room(id)
        .await?
        .ok_or_else(|| AppError::NotFound("room_not_found", format!("no room `{id}`")))
}

/// After a change to a room's rules or invites: if the room runs, hand it the store's
/// fresh snapshot. The change is stored either way. A room that misses this refresh gets a
/// fresh snapshot with its next join.
async fn refresh(state: &AppState, room: &str) {
    let Some(handle) = state.registry.running(room) else {
        return;
    };
    match state
        .store
        .room_snapshot(room, crate::room::now().unix_ms)
        .await
    {
        // A send error means the room stopped: it reads the store when it starts again.
        Ok(Some(snapshot)) => {
            let _ = handle.send(RoomCmd::Refresh { snapshot }).await;
        }
        Ok(None) => {}
        Err(e) => tracing::warn!(%room, err = %e, "could not refresh a running room"),
    }
}

/// `GET /api/admin/media`: what the media engine holds and has done since it started.
#[derive(Serialize)]
struct MediaReport {
    #[serde(flatten)]
    stats: MediaStats,
    /// How long forwarded packets stayed in the server (µs).
    forward_delay: DelaySnapshot,
}

async fn media_report(
    State(state): State<AppState>,
    headers: HeaderMap,
) -> Result<impl IntoResponse, AppError> {
    require_admin(&state, &headers)?;
    Ok(Json(MediaReport {
        stats: state.media_stats(),
        forward_delay: state.forward_delay(),
    }))
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct Forwarding {
    kind: MediaKind,
    open: bool,
}

/// `POST /api/admin/rooms/{room}/participants/{participant}/forwarding`: mute or unmute a
/// participant's audio or video, as a facilitator would, under the name `admin`. Their
/// tracks to come are covered too; the reply counts those they publish now.
async fn forwarding(
    State(state): State<AppState>,
    Path((room, participant)): Path<(String, String)>,
    headers: HeaderMap,
    body: Result<Json<Forwarding>, JsonRejection>,
) -> Result<impl IntoResponse, AppError> {
    require_admin(&state, &headers)?;
    let Json(body) = body.map_err(|e| AppError::BadRequest(e.body_text()))?;
    let not_running = || AppError::NotFound("room_not_found", format!("no running room `{room}`"));
    let handle = state.registry.running(&room).ok_or_else(not_running)?;
    let (reply, applied) = tokio::sync::oneshot::channel();
    let cmd = RoomCmd::Forwarding {
        participant: participant.clone(),
        kind: body.kind,
        open: body.open,
        reply,
    };
    handle.send(cmd).await.map_err(|_| not_running())?;
    let tracks = applied
        .await
        .map_err(|_| not_running())?
        .map_err(|reject| match reject.code {
            ErrorCode::ParticipantNotFound => {
                AppError::NotFound(reject.code.as_str(), reject.message)
            }
            _ => AppError::Forbidden(reject.code.as_str(), reject.message),
        })?;
    Ok(Json(json!({ "tracks": tracks, "open": body.open })))
}
