//! The HTTP API through `http::app(state).oneshot(..)`: no socket, the real store.

use axum::body::Body;
use axum::http::{Request, StatusCode, header};
use http_body_util::BodyExt;
use serde_json::{Value, json};
use tower::ServiceExt;

use crate::common::{ADMIN_TOKEN, TestServer};

mod agenda;
mod invites;
mod recordings;

pub(crate) async fn call(
    server: &TestServer,
    req: Request<Body>,
) -> anyhow::Result<(StatusCode, Value)> {
    let resp = roundtable::http::app(server.state.clone())
        .oneshot(req)
        .await?;
    let status = resp.status();
    let bytes = resp.into_body().collect().await?.to_bytes();
    let body = serde_json::from_slice(&bytes)
        .unwrap_or(Value::String(String::from_utf8_lossy(&bytes).into()));
    Ok((status, body))
}

/// A request with a JSON body (when given) and a bearer token (when given).
pub(crate) fn request(
    method: &str,
    path: &str,
    token: Option<&str>,
    body: Option<&str>,
) -> Request<Body> {
    let mut req = Request::builder().method(method).uri(path);
    if let Some(t) = token {
        req = req.header(header::AUTHORIZATION, format!("Bearer {t}"));
    }
    match body {
        Some(body) => req
            .header(header::CONTENT_TYPE, "application/json")
            .body(Body::from(body.to_string())),
        None => req.body(Body::empty()),
    }
    .unwrap()
}

/// `request` with the admin token.
pub(crate) fn admin(method: &str, path: &str, body: Option<&str>) -> Request<Body> {
    request(method, path, Some(ADMIN_TOKEN), body)
}

fn create(token: Option<&str>, body: &str) -> Request<Body> {
    request("POST", "/api/rooms", token, Some(body))
}

/// The error code of a reply.
pub(crate) fn code(body: &Value) -> Option<&str> {
    body["error"]["code"].as_str()
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
    let room_url = format!("http://{}/r/{id}", server.addr);
    assert_eq!(body["join_url"], room_url);
    assert_eq!(body["open_url"], room_url, "the open link is on by default");
    let facilitator = body["facilitator_url"].as_str().unwrap();
    assert!(
        facilitator.starts_with(&format!("{room_url}#invite=")),
        "{facilitator}"
    );
    let (status, info) = call(
        &server,
        Request::get(format!("/api/rooms/{id}")).body(Body::empty())?,
    )
    .await?;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(
        info,
        json!({"id": id, "title": "Data for advocacy", "capacity": 12, "participants": 0,
               "open_link": true})
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
        r#"{"capacity":5}"#,
        r#"{"title":"x","caps":{"advocate":51}}"#,
        r#"{"title":"x","caps":{"facilitator":0}}"#,
        r#"{"title":"x","caps":{"admin":1}}"#,
        r#"{"title":"x","when_full":"queue"}"#,
        r#"{"title":"x","open_link":"no"}"#,
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
        ("/admin", "Admin token"),
        ("/assets/recordings.js", "sessionStorage"),
        ("/assets/admin.css", "{"),
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

/// `GET /api/admin/media` is admin-only, counts the connections and consumers of a room with
/// media flowing, and reports how long the server held the packets it forwarded.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_media_report_shows_what_is_forwarded() -> anyhow::Result<()> {
    use roundtable_loadgen::client::Client;
    use signaling::wire::MediaKind;

    let server = TestServer::sqlite().await?;
    let report = |token: Option<&str>| {
        let mut req = Request::get("/api/admin/media");
        if let Some(t) = token {
            req = req.header(header::AUTHORIZATION, format!("Bearer {t}"));
        }
        req.body(Body::empty()).unwrap()
    };
    for token in [None, Some("wrong")] {
        let (status, body) = call(&server, report(token)).await?;
        assert_eq!(
            (status, body["error"]["code"].as_str()),
            (StatusCode::UNAUTHORIZED, Some("unauthorized")),
            "token {token:?}"
        );
    }

    let room = server.room("Report", 5).await?;
    let mut ann = Client::join(server.addr, &room, "Ann").await?;
    let mut bo = Client::join(server.addr, &room, "Bo").await?;
    ann.publish(crate::room_flow::VIDEO_PACKETS).await?;
    bo.publish(crate::room_flow::VIDEO_PACKETS).await?;
    // Media flows both ways (then every connection and consumer exists).
    for (receiver, publisher) in [(&ann, &bo.id), (&bo, &ann.id)] {
        receiver
            .media
            .wait_for("10 audio packets", |log| {
                log.from(publisher, MediaKind::Audio).len() >= 10
            })
            .await?;
    }
    let (status, body) = call(&server, report(Some(ADMIN_TOKEN))).await?;
    assert_eq!(status, StatusCode::OK, "{body}");
    // Two participants, a publish and a subscribe connection each; each forwards its audio
    // and video to the other.
    assert_eq!(
        (body["connections"].as_u64(), body["consumers"].as_u64()),
        (Some(4), Some(4)),
        "{body}"
    );
    assert_eq!(body["producers"].as_u64(), Some(4), "{body}");

    // The loop publishes its counts every 100 ms: wait for them while media flows.
    let delay = tokio::time::timeout(roundtable_loadgen::client::WAIT, async {
        let mut every = tokio::time::interval(std::time::Duration::from_millis(100));
        loop {
            every.tick().await;
            let (_, body) = call(&server, report(Some(ADMIN_TOKEN))).await?;
            if body["forward_delay"]["count"].as_u64().unwrap_or(0) > 0 {
                return anyhow::Ok(body["forward_delay"].clone());
            }
        }
    })
    .await??;
    let field = |name: &str| delay[name].as_u64().unwrap_or(u64::MAX);
    assert!(field("p50_us") <= field("p99_us"), "{delay}");
    assert!(field("p99_us") <= field("p999_us"), "{delay}");
    assert!(field("p999_us") <= field("max_us"), "{delay}");
    let buckets = delay["buckets"].as_array().expect("buckets");
    let counted: u64 = buckets.iter().filter_map(|b| b[1].as_u64()).sum();
    assert_eq!(counted, field("count"), "{delay}");
    // Every forwarded copy was counted once: never more than the two clients received, once
    // all of it has arrived.
    for (receiver, publisher) in [(&ann, &bo.id), (&bo, &ann.id)] {
        for (kind, last) in crate::room_flow::LAST_PACKETS {
            crate::room_flow::wait_to_end(receiver, publisher, kind, last).await?;
        }
    }
    let received: u64 = [(&ann, &bo.id), (&bo, &ann.id)]
        .iter()
        .flat_map(|(r, p)| [MediaKind::Audio, MediaKind::Video].map(|k| r.media.from(p, k).len()))
        .map(|n| n as u64)
        .sum();
    assert!(field("count") <= received, "{delay}, {received} received");

    // `/metrics` shows the same counts.
    let samples = crate::observability::scrape(&server).await?;
    let metric = |series: &str| crate::observability::value(&samples, series);
    assert_eq!(metric("roundtable_media_peer_connections"), 4.0);
    assert_eq!(metric("roundtable_media_consumers"), 4.0);
    assert!(metric("roundtable_forwarded_packets_total") > 0.0);
    // Every forwarded packet carries a payload.
    let packets = metric("roundtable_forwarded_packets_total");
    assert!(metric("roundtable_forwarded_bytes_total") >= packets);
    let delays = metric("roundtable_forward_delay_seconds_count");
    assert!(delays >= field("count") as f64, "{delays}");
    let inf = "roundtable_forward_delay_seconds_bucket{le=\"+Inf\"}";
    assert_eq!(metric(inf), delays);
    Ok(())
}
