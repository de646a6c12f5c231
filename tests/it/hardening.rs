//! Web hardening: security headers on every route, the WebSocket's `Origin` rule, display
//! names that hide or reorder text, and an admin token compared exactly.

use axum::body::Body;
use axum::http::{HeaderMap, Request, StatusCode, header};
use http_body_util::BodyExt;
use roundtable_loadgen::client::{Ws, connect};
use signaling::wire::{ErrorCode, ServerMsg};
use tokio_tungstenite::tungstenite;
use tokio_tungstenite::tungstenite::client::IntoClientRequest;
use tower::ServiceExt;

use crate::bad_input::{code_of, join};
use crate::common::{ADMIN_TOKEN, TestServer};

async fn get(server: &TestServer, req: Request<Body>) -> anyhow::Result<(StatusCode, HeaderMap)> {
    let resp = roundtable::http::app(server.state.clone())
        .oneshot(req)
        .await?;
    Ok((resp.status(), resp.headers().clone()))
}

#[tokio::test]
async fn every_route_sends_the_security_headers() -> anyhow::Result<()> {
    let server = TestServer::sqlite().await?;
    let routes = [
        ("/", StatusCode::OK),
        ("/r/x", StatusCode::OK),
        ("/admin", StatusCode::OK),
        ("/api/admin/recordings", StatusCode::UNAUTHORIZED),
        ("/assets/app.js", StatusCode::OK),
        ("/api/rooms", StatusCode::UNAUTHORIZED),
        ("/healthz", StatusCode::OK),
        ("/readyz", StatusCode::OK),
        ("/metrics", StatusCode::UNAUTHORIZED),
        ("/no/such/page", StatusCode::NOT_FOUND),
    ];
    for (path, want) in routes {
        let (status, headers) = get(&server, Request::get(path).body(Body::empty())?).await?;
        assert_eq!(status, want, "{path}");
        let value = |name: header::HeaderName| {
            headers
                .get(&name)
                .and_then(|v| v.to_str().ok())
                .unwrap_or_default()
                .to_string()
        };
        assert_eq!(value(header::X_CONTENT_TYPE_OPTIONS), "nosniff", "{path}");
        assert_eq!(value(header::REFERRER_POLICY), "no-referrer", "{path}");
        let csp = value(header::CONTENT_SECURITY_POLICY);
        let own_ws = format!("connect-src 'self' ws://{}", server.addr);
        for directive in [
            "default-src 'none'",
            "script-src 'self'",
            "style-src 'self'",
            own_ws.as_str(),
            "frame-ancestors 'none'",
            "media-src 'self'",
        ] {
            let found = csp.split(';').any(|d| d.trim() == directive);
            assert!(found, "{path}: `{directive}` missing from `{csp}`");
        }
    }
    Ok(())
}

/// Open `/ws` with this `Origin` header (none when `None`).
async fn open(server: &TestServer, origin: Option<&str>) -> Result<Ws, tungstenite::Error> {
    let mut req = format!("ws://{}/ws", server.addr).into_client_request()?;
    if let Some(origin) = origin {
        let value = origin.parse().expect("a valid header value");
        req.headers_mut().insert(header::ORIGIN, value);
    }
    let (socket, _) = tokio_tungstenite::connect_async(req).await?;
    Ok(Ws { socket })
}

/// The connection answers a ping.
async fn answers(mut ws: Ws) -> anyhow::Result<()> {
    ws.send(&signaling::wire::ClientMsg::Ping { id: Some(7) })
        .await?;
    let pong = ws.recv().await?;
    assert!(
        matches!(pong, ServerMsg::Pong { id: Some(x), .. } if x == 7),
        "{pong:?}"
    );
    Ok(())
}

/// The upgrade was refused with 403 and `origin_not_allowed`.
fn refused(result: Result<Ws, tungstenite::Error>, origin: &str) {
    let Err(tungstenite::Error::Http(resp)) = result else {
        panic!("`{origin}` was not refused with an HTTP error");
    };
    assert_eq!(resp.status(), StatusCode::FORBIDDEN, "{origin}");
    let body: serde_json::Value =
        serde_json::from_slice(resp.body().as_deref().unwrap_or_default()).expect("JSON");
    assert_eq!(body["error"]["code"], "origin_not_allowed", "{origin}");
}

#[tokio::test]
async fn the_websocket_refuses_a_foreign_origin() -> anyhow::Result<()> {
    let extra = "https://app.example.org";
    let server = TestServer::sqlite_with(|c| c.allowed_origins = vec![extra.into()]).await?;
    for origin in [
        "http://evil.example",
        "null",
        "http://127.0.0.1.evil.example",
        "https://app.example.org:8443",
    ] {
        refused(open(&server, Some(origin)).await, origin);
    }
    // The page's own origin (the bound address here), a listed origin, and a client that is
    // not a browser (it sends no Origin) are let in.
    let own = format!("http://{}", server.addr);
    answers(open(&server, Some(&own)).await?).await?;
    answers(open(&server, Some(extra)).await?).await?;
    answers(open(&server, None).await?).await?;
    Ok(())
}

#[tokio::test]
async fn the_public_url_decides_the_own_origin() -> anyhow::Result<()> {
    let server =
        TestServer::sqlite_with(|c| c.public_url = Some("https://Meet.Example.org/".into()))
            .await?;
    answers(open(&server, Some("https://meet.example.org")).await?).await?;
    let bound = format!("http://{}", server.addr);
    refused(open(&server, Some(&bound)).await, &bound);
    Ok(())
}

#[tokio::test]
async fn hostile_names_are_refused_with_bad_name() -> anyhow::Result<()> {
    let server = TestServer::sqlite().await?;
    let room = server.room("Names", 5).await?;
    let mut ws = connect(server.addr).await?;
    let hostile = [
        "Ann\u{0}",
        "bell\u{7}",
        "two\nlines",
        "next\u{85}line",
        "csi\u{9b}31m",
        "del\u{7f}",
        "\u{202e}nalA",
        "a\u{2066}b\u{2069}",
        "\u{200f}Ann",
        "Ann\u{61c}",
        "\u{200b}",
        "\u{200b}\u{200c}\u{200d}\u{2060}\u{feff}",
        " \u{200b} ",
        "   ",
        "\u{3000}",
    ];
    for name in hostile {
        let reply = join(&mut ws, &room, name).await?;
        assert_eq!(code_of(&reply), Some(ErrorCode::BadName), "{name:?}");
    }
    // Names are trimmed, and a zero-width joiner inside an emoji is not
    // hidden text.
    let ServerMsg::Joined {
        you, participants, ..
    } = join(&mut ws, &room, "  Zoë 👩\u{200d}💻 ").await?
    else {
        panic!("a plain name was refused");
    };
    let me = participants.iter().find(|p| p.id == you).expect("me");
    assert_eq!(me.name, "Zoë 👩\u{200d}💻");
    Ok(())
}

#[tokio::test]
async fn a_padded_admin_token_is_refused() -> anyhow::Result<()> {
    let server = TestServer::sqlite().await?;
    let list = |auth: String| {
        Request::get("/api/rooms")
            .header(header::AUTHORIZATION, auth)
            .body(Body::empty())
    };
    for auth in [
        format!("Bearer  {ADMIN_TOKEN}"),
        format!("Bearer {ADMIN_TOKEN} "),
        format!("Bearer \t{ADMIN_TOKEN}"),
        format!("Bearer {ADMIN_TOKEN}\t"),
    ] {
        let resp = roundtable::http::app(server.state.clone())
            .oneshot(list(auth.clone())?)
            .await?;
        assert_eq!(resp.status(), StatusCode::UNAUTHORIZED, "{auth:?}");
        let body = resp.into_body().collect().await?.to_bytes();
        let body: serde_json::Value = serde_json::from_slice(&body)?;
        assert_eq!(body["error"]["code"], "unauthorized");
    }
    let (status, _) = get(&server, list(format!("Bearer {ADMIN_TOKEN}"))?).await?;
    assert_eq!(status, StatusCode::OK);
    Ok(())
}
