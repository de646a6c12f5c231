//! The agenda over HTTP: the admin reads it, planned against actual, and replaces its plan.
//! A running room answers from its task, which holds the live copy and stores it on every
//! change. A room that is not running is read and changed in the store.

use axum::Json;
use axum::extract::rejection::JsonRejection;
use axum::extract::{Path, State};
use axum::http::HeaderMap;
use axum::response::{IntoResponse, Response};
use serde::{Deserialize, Serialize};
use signaling::agenda::{Agenda, Plan};
use signaling::wire::{ErrorCode, Reject};
use tokio::sync::oneshot;

use super::{AppError, json_body, require_admin};
use crate::agendas::{self, AgendaError, AgendaReport};
use crate::room::RoomCmd;
use crate::state::AppState;

/// The body of `PUT /api/admin/rooms/{room}/agenda`. The plan is parsed apart from the
/// envelope, so that a bad plan gets `bad_agenda` and a bad envelope `bad_request`.
#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct PlanBody {
    plan: serde_json::Value,
}

/// The reply of both endpoints: the report, and whether it comes from the room's task.
#[derive(Serialize)]
struct Reply<'a> {
    /// Whether the room runs now: then its task enforces the deadlines, and this is its
    /// live copy. Otherwise this is what the store holds.
    room_running: bool,
    #[serde(flatten)]
    report: AgendaReport<'a>,
}

/// `GET /api/admin/rooms/{room}/agenda`: the live agenda if the room runs, else the stored
/// one, else the template a new room starts with.
pub(super) async fn read(
    State(state): State<AppState>,
    Path(room): Path<String>,
    headers: HeaderMap,
) -> Result<impl IntoResponse, AppError> {
    require_admin(&state, &headers)?;
    if let Some(live) = ask_room(&state, &room, None).await {
        return Ok(reply(&*live?, true));
    }
    let agenda = agendas::stored(state.store.as_ref(), &room).await?;
    Ok(reply(&agenda, false))
}

/// `PUT /api/admin/rooms/{room}/agenda`: replace the plan, through the room's task if it
/// runs, else in the store. The reply is the agenda after the change.
pub(super) async fn replace(
    State(state): State<AppState>,
    Path(room): Path<String>,
    headers: HeaderMap,
    body: Result<Json<PlanBody>, JsonRejection>,
) -> Result<impl IntoResponse, AppError> {
    require_admin(&state, &headers)?;
    let plan = agendas::plan_from_value(json_body(body)?.plan)?;
    if let Some(live) = ask_room(&state, &room, Some(plan.clone())).await {
        return Ok(reply(&*live?, true));
    }
    let store = state.store.as_ref();
    let mut agenda = agendas::stored(store, &room).await?;
    agendas::replace_plan(store, &room, &mut agenda, plan, crate::room::now().unix_ms).await?;
    Ok(reply(&agenda, false))
}

/// Ask the room's task for its agenda, after replacing its plan if `plan` is given. `None`
/// if the room does not run, or stopped before it took the command (then nothing changed).
async fn ask_room(
    state: &AppState,
    room: &str,
    plan: Option<Plan>,
) -> Option<Result<Box<Agenda>, AppError>> {
    let handle = state.registry.running(room)?;
    let (reply, answer) = oneshot::channel();
    let cmd = RoomCmd::Agenda {
        plan: plan.map(Box::new),
        reply,
    };
    handle.send(cmd).await.ok()?;
    Some(answer.await.ok()?.map_err(refused))
}

fn reply(agenda: &Agenda, room_running: bool) -> Response {
    let report = AgendaReport::new(agenda, crate::room::now().unix_ms);
    Json(Reply {
        room_running,
        report,
    })
    .into_response()
}

/// A running room's refusal: a bad plan is the request's fault, anything else conflicts
/// with where the agenda stands.
fn refused(reject: Reject) -> AppError {
    match reject.code {
        ErrorCode::BadAgenda => AppError::Invalid(reject.code.as_str(), reject.message),
        code => AppError::Conflict(code.as_str(), reject.message),
    }
}

impl From<AgendaError> for AppError {
    fn from(e: AgendaError) -> Self {
        let message = e.to_string();
        match e {
            AgendaError::RoomNotFound(_) => AppError::NotFound("room_not_found", message),
            AgendaError::BadPlan(_) => AppError::Invalid(ErrorCode::BadAgenda.as_str(), message),
            AgendaError::State(_) => AppError::Conflict(ErrorCode::AgendaState.as_str(), message),
            AgendaError::Store(e) => e.into(),
        }
    }
}
