//! Serving a recording's file: to the admin token, or through a signed link.
//!
//! A media element cannot send an `Authorization` header, and the admin token must never
//! sit in a URL (it would reach logs and history). So the admin page asks for a signed
//! link (`POST /api/admin/recordings/{session}/links`, admin token) and plays that: a
//! link names one file and an expiry, signed with HMAC-SHA256 under a key the server
//! draws at random when it starts. Nothing stored (not even the database) can forge one,
//! a link dies with its expiry or a restart, and it opens that one file only.
//!
//! Files are served by tower-http's `ServeFile`: ranges (`206`, `416`), `HEAD`,
//! `Last-Modified`, with the content type the catalog gives.

use axum::Json;
use axum::body::Body;
use axum::extract::rejection::{JsonRejection, QueryRejection};
use axum::extract::{Path, Query, Request, State};
use axum::http::{HeaderMap, HeaderValue, header};
use axum::response::{IntoResponse, Response};
use hmac::{Hmac, Mac};
use serde::Deserialize;
use serde_json::json;
use sha2::Sha256;
use tower::ServiceExt;
use tower_http::services::ServeFile;

use super::recordings::folder;
use super::{AppError, json_body, require_admin};
use crate::recorder::catalog::Recording;
use crate::recordings::{self, checked_file_id, checked_id};
use crate::state::AppState;

/// How long a signed link opens its file: longer than the longest Skill Share, so a
/// recording plays to its end; the page asks for a fresh one at each play.
pub const LINK_TTL_MS: i64 = 2 * 60 * 60 * 1000;

impl AppState {
    /// The signed link to `file` of `session`, valid until `expires_at` (Unix ms): a path
    /// and query on this server.
    pub fn recording_link(&self, session: &str, file: &str, expires_at: i64) -> String {
        let sig = hex::encode(
            self.link_mac(session, file, expires_at)
                .finalize()
                .into_bytes(),
        );
        format!("/api/recordings/{session}/files/{file}?expires={expires_at}&sig={sig}")
    }

    fn link_mac(&self, session: &str, file: &str, expires_at: i64) -> Hmac<Sha256> {
        let mut mac =
            Hmac::<Sha256>::new_from_slice(&self.link_key).expect("HMAC takes any key length");
        mac.update(format!("{session}/{file}/{expires_at}").as_bytes());
        mac
    }
}

/// The file `id` of `session`: both checked, then found by scanning the session's folder.
async fn existing_file(state: &AppState, session: &str, id: &str) -> Result<Recording, AppError> {
    Ok(recordings::file(state.store.as_ref(), &folder(state), session, id).await?)
}

#[derive(Deserialize)]
pub(super) struct FileQuery {
    /// `1`: as an attachment, to save.
    download: Option<String>,
}

/// `GET /api/admin/recordings/{session}/files/{file}` (admin token). The file segment is
/// a catch-all, so that a path in its place is refused as `invalid_id`, not routed away.
pub(super) async fn serve(
    State(state): State<AppState>,
    Path((session, file)): Path<(String, String)>,
    query: Result<Query<FileQuery>, QueryRejection>,
    headers: HeaderMap,
    request: Request,
) -> Result<Response, AppError> {
    require_admin(&state, &headers)?;
    let Query(query) = query.map_err(|e| AppError::BadRequest(e.body_text()))?;
    let found = existing_file(&state, &session, &file).await?;
    send(found, query.download.as_deref() == Some("1"), request).await
}

#[derive(Deserialize)]
pub(super) struct SignedQuery {
    expires: Option<i64>,
    sig: Option<String>,
    download: Option<String>,
}

/// `GET /api/recordings/{session}/files/{file}?expires=&sig=[&download=1]`: a signed link.
/// `403 link_invalid` for a missing or wrong signature, `403 link_expired` after its time.
pub(super) async fn serve_signed(
    State(state): State<AppState>,
    Path((session, file)): Path<(String, String)>,
    query: Result<Query<SignedQuery>, QueryRejection>,
    request: Request,
) -> Result<Response, AppError> {
    let session = checked_id(&session)?;
    let file = checked_file_id(file.as_str())?;
    let invalid = || AppError::Forbidden("link_invalid", "this link is not one we signed".into());
    let Ok(Query(query)) = query else {
        return Err(invalid());
    };
    let (Some(expires), Some(sig)) = (query.expires, query.sig.as_deref()) else {
        return Err(invalid());
    };
    let sig = hex::decode(sig).map_err(|_| invalid())?;
    state
        .link_mac(session, file, expires)
        .verify_slice(&sig)
        .map_err(|_| invalid())?;
    if expires <= crate::room::now().unix_ms {
        return Err(AppError::Forbidden(
            "link_expired",
            "this link has expired; ask for a new one".into(),
        ));
    }
    let found = existing_file(&state, session, file).await?;
    send(found, query.download.as_deref() == Some("1"), request).await
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct LinkRequest {
    file: String,
}

/// `POST /api/admin/recordings/{session}/links` `{"file": ID}`: signed links to play and
/// to download one file, valid for [`LINK_TTL_MS`].
pub(super) async fn link(
    State(state): State<AppState>,
    Path(session): Path<String>,
    headers: HeaderMap,
    body: Result<Json<LinkRequest>, JsonRejection>,
) -> Result<impl IntoResponse, AppError> {
    require_admin(&state, &headers)?;
    let body = json_body(body)?;
    let found = existing_file(&state, &session, &body.file).await?;
    let expires_at = crate::room::now().unix_ms + LINK_TTL_MS;
    let url = state.recording_link(&session, &found.id, expires_at);
    Ok(Json(json!({
        "download_url": format!("{url}&download=1"),
        "url": url,
        "expires_at": expires_at,
    })))
}

/// The file, with ranges, its content type, and `Content-Disposition`.
async fn send(found: Recording, download: bool, request: Request) -> Result<Response, AppError> {
    let mime: mime::Mime = found
        .content_type
        .parse()
        .map_err(|_| AppError::Internal(format!("bad content type {}", found.content_type)))?;
    let served = ServeFile::new_with_mime(&found.path, &mime)
        .oneshot(request)
        .await
        .map_err(|e| AppError::Internal(format!("{}: {e}", found.path.display())))?;
    if served.status() == axum::http::StatusCode::NOT_FOUND {
        // Removed since it was found (a purge, a delete): the documented answer, not
        // tower-http's bare 404.
        return Err(recordings::RecordingsError::FileNotFound(found.id).into());
    }
    let mut response = served.map(Body::new);
    let disposition = if download { "attachment" } else { "inline" };
    // The name is made of ids only, so it needs no quoting beyond the quotes.
    let value = format!("{disposition}; filename=\"{}\"", found.file_name);
    let headers = response.headers_mut();
    if let Ok(value) = HeaderValue::from_str(&value) {
        headers.insert(header::CONTENT_DISPOSITION, value);
    }
    headers.insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
    Ok(response)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::recorder::catalog::Kind;

    /// A file removed between the scan and the send is `404 file_not_found`, as documented.
    #[tokio::test]
    async fn a_file_gone_since_the_scan_is_file_not_found() {
        let dir = tempfile::tempdir().unwrap();
        let found = Recording {
            id: "0".repeat(32),
            kind: Kind::Audio,
            speaker: Some("p1".into()),
            track: Some("t1".into()),
            file_name: "s_p1_t1-1.opus".into(),
            content_type: "audio/ogg",
            size: 10,
            path: dir.path().join("gone.opus"),
        };
        let request = Request::new(Body::empty());
        let response = send(found, false, request)
            .await
            .unwrap_err()
            .into_response();
        assert_eq!(response.status(), axum::http::StatusCode::NOT_FOUND);
        let body = axum::body::to_bytes(response.into_body(), 1 << 16)
            .await
            .unwrap();
        let body: serde_json::Value = serde_json::from_slice(&body).unwrap();
        assert_eq!(body["error"]["code"], "file_not_found");
    }
}
