//! What an operator scrapes and probes: `/metrics` in Prometheus's text format, `/healthz`
//! (the process lives) and `/readyz` (the database answers).

use std::collections::HashMap;
use std::time::Duration;

use axum::body::Body;
use axum::http::{Request, StatusCode, header};
use http_body_util::BodyExt;
use roundtable_loadgen::client::{WAIT, connect};
use signaling::wire::{ClientMsg, ServerMsg};
use tower::ServiceExt;

use crate::bad_input::join;
use crate::common::{ADMIN_TOKEN, TestServer};

/// Samples of one scrape: `name{labels}` as written → value.
pub(crate) type Samples = HashMap<String, f64>;

/// `GET path` through the router, as the admin: the status, the content type and the body.
async fn get(server: &TestServer, path: &str) -> anyhow::Result<(StatusCode, String, String)> {
    let req = Request::get(path)
        .header(header::AUTHORIZATION, format!("Bearer {ADMIN_TOKEN}"))
        .body(Body::empty())?;
    let resp = roundtable::http::app(server.state.clone())
        .oneshot(req)
        .await?;
    let status = resp.status();
    let kind = resp
        .headers()
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .unwrap_or_default()
        .to_string();
    let body = resp.into_body().collect().await?.to_bytes();
    Ok((status, kind, String::from_utf8(body.to_vec())?))
}

/// Scrape `/metrics` and parse it; panics on anything that is not Prometheus text.
pub(crate) async fn scrape(server: &TestServer) -> anyhow::Result<Samples> {
    let (status, kind, body) = get(server, "/metrics").await?;
    assert_eq!(status, StatusCode::OK, "{body}");
    assert!(kind.starts_with("text/plain"), "content type {kind}");
    Ok(parse(&body))
}

/// Parse the Prometheus text format strictly: `# HELP`/`# TYPE` comments, and samples
/// `name{label="value",...} value` with a legal name and a number.
fn parse(text: &str) -> Samples {
    let mut samples = Samples::new();
    for line in text.lines().filter(|l| !l.is_empty()) {
        if let Some(comment) = line.strip_prefix("# ") {
            let mut words = comment.splitn(3, ' ');
            let (kind, name, rest) = (words.next(), words.next(), words.next());
            assert!(matches!(kind, Some("HELP" | "TYPE")), "comment `{line}`");
            assert!(name.is_some_and(legal_name), "comment `{line}`");
            if kind == Some("TYPE") {
                let types = ["counter", "gauge", "histogram", "summary", "untyped"];
                assert!(rest.is_some_and(|t| types.contains(&t)), "`{line}`");
            }
            continue;
        }
        let (series, value) = line.rsplit_once(' ').unwrap_or_else(|| panic!("`{line}`"));
        let name = series.split_once('{').map_or(series, |(n, labels)| {
            let labels = labels
                .strip_suffix('}')
                .unwrap_or_else(|| panic!("`{line}`"));
            for pair in split_labels(labels) {
                let (key, value) = pair.split_once('=').unwrap_or_else(|| panic!("`{line}`"));
                assert!(legal_name(key) && !key.contains(':'), "label in `{line}`");
                assert!(value.len() >= 2 && value.starts_with('"') && value.ends_with('"'));
            }
            n
        });
        assert!(legal_name(name), "name in `{line}`");
        let value = match value {
            "+Inf" => f64::INFINITY,
            "-Inf" => f64::NEG_INFINITY,
            v => v.parse().unwrap_or_else(|_| panic!("value in `{line}`")),
        };
        assert!(
            samples.insert(series.to_string(), value).is_none(),
            "twice: `{line}`"
        );
    }
    samples
}

fn legal_name(name: &str) -> bool {
    let mut chars = name.chars();
    chars
        .next()
        .is_some_and(|c| c.is_ascii_alphabetic() || c == '_' || c == ':')
        && chars.all(|c| c.is_ascii_alphanumeric() || c == '_' || c == ':')
}

/// `a="x",b="y,z"` → `a="x"`, `b="y,z"`: commas inside quotes (escapes included) stay.
fn split_labels(labels: &str) -> Vec<&str> {
    let (mut parts, mut start, mut quoted, mut escaped) = (vec![], 0, false, false);
    for (i, c) in labels.char_indices() {
        match c {
            _ if escaped => escaped = false,
            '\\' => escaped = true,
            '"' => quoted = !quoted,
            ',' if !quoted => {
                parts.push(&labels[start..i]);
                start = i + 1;
            }
            _ => {}
        }
    }
    parts.push(&labels[start..]);
    parts.retain(|p| !p.is_empty());
    parts
}

/// A sample's value, 0 if it is absent.
pub(crate) fn value(samples: &Samples, series: &str) -> f64 {
    samples.get(series).copied().unwrap_or(0.0)
}

/// Scrape until `done` holds, for counts that move after the call that moves them returned.
async fn scrape_until(
    server: &TestServer,
    done: impl Fn(&Samples) -> bool,
) -> anyhow::Result<Samples> {
    tokio::time::timeout(WAIT, async {
        let mut every = tokio::time::interval(Duration::from_millis(20));
        loop {
            every.tick().await;
            let samples = scrape(server).await?;
            if done(&samples) {
                return anyhow::Ok(samples);
            }
        }
    })
    .await?
}

#[tokio::test]
async fn metrics_parse_and_move_with_a_join_and_a_chat() -> anyhow::Result<()> {
    let server = TestServer::sqlite().await?;
    let room = server.room("Counted", 5).await?;
    let before = scrape(&server).await?;
    for series in [
        "roundtable_rooms",
        "roundtable_participants",
        "roundtable_connections{state=\"unjoined\"}",
        "roundtable_connections{state=\"joined\"}",
        "roundtable_media_peer_connections",
        "roundtable_joins_total",
        "roundtable_forwarded_packets_total",
        "roundtable_forwarded_bytes_total",
        "roundtable_media_dropped_total{reason=\"unrouted\"}",
        "roundtable_media_dropped_total{reason=\"send_buffer_full\"}",
        "roundtable_media_dropped_total{reason=\"send_failed\"}",
        "roundtable_media_dropped_total{reason=\"client_queue_full\"}",
        "roundtable_media_dropped_total{reason=\"record_queue_full\"}",
        "roundtable_chat_committed_total",
        "roundtable_chat_failed_total",
        "roundtable_forward_delay_seconds_count",
        "roundtable_forward_delay_seconds_bucket{le=\"+Inf\"}",
    ] {
        assert!(before.contains_key(series), "no `{series}` in {before:?}");
    }
    let joins = value(&before, "roundtable_joins_total");
    let latencies = value(&before, "roundtable_join_duration_seconds_count");
    let committed = value(&before, "roundtable_chat_committed_total");

    let mut ws = connect(server.addr).await?;
    // Answered once the connection's task runs (the handshake's reply may come before).
    ws.send(&ClientMsg::Ping { id: Some(1) }).await?;
    ws.recv_until(|m| matches!(m, ServerMsg::Pong { .. }))
        .await?;
    let unjoined = scrape(&server).await?;
    assert_eq!(
        value(&unjoined, "roundtable_connections{state=\"unjoined\"}"),
        1.0
    );
    assert!(matches!(
        join(&mut ws, &room, "Ann").await?,
        ServerMsg::Joined { .. }
    ));
    ws.send(&ClientMsg::Chat {
        text: "counted".into(),
    })
    .await?;
    ws.recv_until(|m| matches!(m, ServerMsg::Chat { .. }))
        .await?;
    let after = scrape_until(&server, |s| {
        value(s, "roundtable_chat_committed_total") > committed
    })
    .await?;
    assert_eq!(
        value(&after, "roundtable_chat_committed_total"),
        committed + 1.0
    );
    assert_eq!(value(&after, "roundtable_joins_total"), joins + 1.0);
    assert_eq!(
        value(&after, "roundtable_join_duration_seconds_count"),
        latencies + 1.0
    );
    assert_eq!(value(&after, "roundtable_rooms"), 1.0);
    assert_eq!(value(&after, "roundtable_participants"), 1.0);
    assert_eq!(
        value(&after, "roundtable_connections{state=\"joined\"}"),
        1.0
    );
    assert_eq!(
        value(&after, "roundtable_connections{state=\"unjoined\"}"),
        0.0
    );

    drop(ws);
    scrape_until(&server, |s| {
        value(s, "roundtable_participants") == 0.0
            && value(s, "roundtable_connections{state=\"joined\"}") == 0.0
    })
    .await?;
    Ok(())
}

#[tokio::test]
async fn readiness_follows_the_database() -> anyhow::Result<()> {
    let pg = crate::pg::fresh_database().await?;
    let server = TestServer::with_database(pg.url.clone()).await?;
    let (status, _, body) = get(&server, "/readyz").await?;
    assert_eq!(status, StatusCode::OK, "{body}");
    pg.drop().await?;
    let (status, _, body) = get(&server, "/readyz").await?;
    assert_eq!(status, StatusCode::SERVICE_UNAVAILABLE, "{body}");
    let body: serde_json::Value = serde_json::from_str(&body)?;
    assert_eq!(body["error"]["code"], "database_unavailable");
    // Liveness does not depend on the database.
    let (status, _, body) = get(&server, "/healthz").await?;
    assert_eq!((status, body.as_str()), (StatusCode::OK, "ok"));
    Ok(())
}
