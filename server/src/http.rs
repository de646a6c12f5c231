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
use axum::routing::{get, post};
use axum::{Extension, Json, Router};
use serde::{Deserialize, Serialize};
use serde_json::json;
use signaling::wire::MediaKind;
use tower_http::set_header::SetResponseHeaderLayer;

use crate::listener::ClientAddr;
use crate::media::{DelaySnapshot, MediaStats};
use crate::room::RoomCmd;
use crate::rooms::{DEFAULT_CAPACITY, MAX_CAPACITY, new_room};
use crate::state::AppState;
use crate::store::StoreError;
use crate::ws;

/// The web client, embedded so that one binary runs the product.
const ASSETS: &[(&str, &str, &str)] = &[
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
        "devices.js",
        "text/javascript; charset=utf-8",
        include_str!("../../web-client/devices.js"),
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
        "style.css",
        "text/css; charset=utf-8",
        include_str!("../../web-client/style.css"),
    ),
];
const INDEX_HTML: &str = include_str!("../../web-client/index.html");

/// The router.
pub fn app(state: AppState) -> Router {
    let [csp, nosniff, referrer] = security_headers(&state);
    Router::new()
        .route("/", get(index))
        .route("/r/{room}", get(index))
        .route("/assets/{file}", get(asset))
        .route("/healthz", get(|| async { "ok" }))
        .route("/readyz", get(ready))
        .route("/metrics", get(metrics))
        .route("/ws", get(websocket))
        .route("/api/rooms", get(list_rooms).post(create_room))
        .route("/api/rooms/{room}", get(room_info))
        .route("/api/admin/media", get(media_report))
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
         connect-src 'self' {}; base-uri 'none'; form-action 'self'; frame-ancestors 'none'",
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
    /// 400.
    BadRequest(String),
    /// 503 with a code; the detail is logged, not shown.
    Unavailable(&'static str, String),
    /// 500; the detail is logged, not shown.
    Internal(String),
}

impl From<StoreError> for AppError {
    fn from(e: StoreError) -> Self {
        AppError::Internal(e.to_string())
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
            AppError::Unavailable(code, detail) => {
                tracing::warn!(code, %detail, "not ready");
                (
                    StatusCode::SERVICE_UNAVAILABLE,
                    code,
                    "not ready; try again".to_string(),
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

async fn room_info(
    State(state): State<AppState>,
    Path(id): Path<String>,
) -> Result<impl IntoResponse, AppError> {
    let room = state
        .store
        .get_room(&id)
        .await?
        .ok_or_else(|| AppError::NotFound("room_not_found", format!("no room `{id}`")))?;
    let participants = state.registry.running(&id).map_or(0, |h| h.occupancy());
    Ok(Json(json!({
        "id": room.id, "title": room.title, "capacity": room.policy.capacity, "participants": participants,
    })))
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

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct CreateRoom {
    title: String,
    capacity: Option<u32>,
}

/// Validate a title and capacity from the CLI or the API.
pub fn check_room(title: &str, capacity: u32) -> Result<(), String> {
    let len = title.trim().chars().count();
    if len == 0 || len > 200 {
        return Err("title must be 1 to 200 characters".into());
    }
    if capacity == 0 || capacity > MAX_CAPACITY {
        return Err(format!("capacity must be 1 to {MAX_CAPACITY}"));
    }
    Ok(())
}

async fn create_room(
    State(state): State<AppState>,
    headers: HeaderMap,
    body: Result<Json<CreateRoom>, JsonRejection>,
) -> Result<impl IntoResponse, AppError> {
    require_admin(&state, &headers)?;
    let Json(body) = body.map_err(|e| AppError::BadRequest(e.body_text()))?;
    let capacity = body.capacity.unwrap_or(DEFAULT_CAPACITY);
    check_room(&body.title, capacity).map_err(AppError::BadRequest)?;
    let room = new_room(body.title.trim().to_string(), capacity);
    state.store.create_room(&room).await?;
    let join_url = state.join_url(&room.id);
    let body = json!({ "id": room.id, "title": room.title, "capacity": room.policy.capacity, "join_url": join_url });
    Ok((StatusCode::CREATED, Json(body)))
}

async fn list_rooms(
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
            let participants = state.registry.running(&r.id).map_or(0, |h| h.occupancy());
            json!({
                "id": r.id, "title": r.title, "capacity": r.policy.capacity, "created_at": r.created_at,
                "participants": participants, "join_url": state.join_url(&r.id),
            })
        })
        .collect();
    Ok(Json(json!({ "rooms": rooms })))
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

/// `POST /api/admin/rooms/{room}/participants/{participant}/forwarding`: open or close the
/// forwarding of a participant's audio or video (the gate). An operator's override, and the
/// mechanism moderation will use.
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
    let tracks = applied.await.map_err(|_| not_running())?;
    if tracks == 0 {
        return Err(AppError::NotFound(
            "track_not_found",
            format!("`{participant}` publishes no such track in `{room}`"),
        ));
    }
    Ok(Json(json!({ "tracks": tracks, "open": body.open })))
}
