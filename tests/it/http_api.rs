//! The HTTP API through `http::app(state).oneshot(..)`: no socket, the real store.

use axum::body::Body;
use axum::http::{Request, StatusCode, header};
use http_body_util::BodyExt;
use serde_json::{Value, json};
use tower::ServiceExt;

use crate::common::{ADMIN_TOKEN, TestServer};

async fn call(server: &TestServer, req: Request<Body>) -> anyhow::Result<(StatusCode, Value)> {
    let resp = roundtable::http::app(server.state.clone())
        .oneshot(req)
        .await?;
    let status = resp.status();
    let bytes = resp.into_body().collect().await?.to_bytes();
    let body = serde_json::from_slice(&bytes)
        .unwrap_or(Value::String(String::from_utf8_lossy(&bytes).into()));
    Ok((status, body))
}

fn create(token: Option<&str>, body: &str) -> Request<Body> {
    let mut req = Request::post("/api/rooms").header(header::CONTENT_TYPE, "application/json");
    if let Some(t) = token {
        req = req.header(header::AUTHORIZATION, format!("Bearer {t}"));
    }
    req.body(Body::from(body.to_string())).unwrap()
}

#[tokio::test]
async fn admin_creates_and_lists_rooms() -> anyhow::Result<()> {
    let server = TestServer::sqlite().await?;
    let (status, body) = call(
        &server,
        create(
            Some(ADMIN_TOKEN),
            r#"{"title":"Data for advocacy","capacity":12}"#,
        ),
    )
    .await?;
    assert_eq!(status, StatusCode::CREATED);
    let id = body["id"].as_str().unwrap().to_string();
    assert_eq!(body["capacity"], 12);
    assert_eq!(body["join_url"], format!("http://{}/r/{id}", server.addr));
    let (status, info) = call(
        &server,
        Request::get(format!("/api/rooms/{id}")).body(Body::empty())?,
    )
    .await?;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(
        info,
        json!({"id": id, "title": "Data for advocacy", "capacity": 12, "participants": 0})
    );
    let list = Request::get("/api/rooms")
        .header(header::AUTHORIZATION, format!("Bearer {ADMIN_TOKEN}"))
        .body(Body::empty())?;
    let (status, rooms) = call(&server, list).await?;
    assert_eq!(status, StatusCode::OK);
    let titles: Vec<&str> = rooms["rooms"]
        .as_array()
        .unwrap()
        .iter()
        .filter_map(|r| r["title"].as_str())
        .collect();
    assert!(
        titles.contains(&"Data for advocacy") && titles.contains(&"Demo room"),
        "{titles:?}"
    );
    Ok(())
}

#[tokio::test]
async fn unauthorised_admin_calls_are_refused() -> anyhow::Result<()> {
    let server = TestServer::sqlite().await?;
    for token in [None, Some("wrong"), Some("")] {
        let (status, body) = call(&server, create(token, r#"{"title":"x"}"#)).await?;
        assert_eq!(status, StatusCode::UNAUTHORIZED, "token {token:?}");
        assert_eq!(body["error"]["code"], "unauthorized");
    }
    let (status, body) = call(&server, Request::get("/api/rooms").body(Body::empty())?).await?;
    assert_eq!(
        (status, body["error"]["code"].as_str()),
        (StatusCode::UNAUTHORIZED, Some("unauthorized"))
    );
    let rooms = server.state.store().list_rooms().await?;
    assert_eq!(
        rooms.len(),
        1,
        "only the demo room exists: nothing was created"
    );
    Ok(())
}

#[tokio::test]
async fn bad_room_requests_get_codes() -> anyhow::Result<()> {
    let server = TestServer::sqlite().await?;
    for body in [
        r#"{"title":""}"#,
        r#"{"title":"x","capacity":0}"#,
        r#"{"title":"x","capacity":5000}"#,
        "{",
        r#"{"name":"x"}"#,
    ] {
        let (status, resp) = call(&server, create(Some(ADMIN_TOKEN), body)).await?;
        assert_eq!(status, StatusCode::BAD_REQUEST, "for {body}");
        assert_eq!(resp["error"]["code"], "bad_request", "for {body}");
    }
    let (status, body) = call(
        &server,
        Request::get("/api/rooms/nope").body(Body::empty())?,
    )
    .await?;
    assert_eq!(
        (status, body["error"]["code"].as_str()),
        (StatusCode::NOT_FOUND, Some("room_not_found"))
    );
    Ok(())
}

#[tokio::test]
async fn the_web_client_is_served_from_the_binary() -> anyhow::Result<()> {
    let server = TestServer::sqlite().await?;
    for (path, needle) in [
        ("/r/anything", "<html"),
        ("/assets/app.js", "import"),
        ("/assets/style.css", "{"),
    ] {
        let (status, body) = call(&server, Request::get(path).body(Body::empty())?).await?;
        assert_eq!(status, StatusCode::OK, "{path}");
        assert!(
            body.as_str().is_some_and(|b| b.contains(needle)),
            "{path} lacks {needle}"
        );
    }
    let (status, _) = call(
        &server,
        Request::get("/assets/../Cargo.toml").body(Body::empty())?,
    )
    .await?;
    assert_eq!(status, StatusCode::NOT_FOUND);
    Ok(())
}
