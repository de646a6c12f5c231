//! The forwarding gate, through the admin API and real WebRTC clients: a gated track's
//! packets stop reaching the others, and when it reopens each receiver's sequence numbers go
//! on without a gap.

use axum::body::Body;
use axum::http::{Request, StatusCode, header};
use http_body_util::BodyExt;
use roundtable_loadgen::client::Client;
use serde_json::{Value, json};
use signaling::wire::MediaKind;
use tower::ServiceExt;

use crate::common::{ADMIN_TOKEN, TestServer};

/// `POST .../forwarding` with `body`, as `token`.
async fn forwarding(
    server: &TestServer,
    room: &str,
    participant: &str,
    token: Option<&str>,
    body: &str,
) -> anyhow::Result<(StatusCode, Value)> {
    let mut req = Request::post(format!(
        "/api/admin/rooms/{room}/participants/{participant}/forwarding"
    ))
    .header(header::CONTENT_TYPE, "application/json");
    if let Some(t) = token {
        req = req.header(header::AUTHORIZATION, format!("Bearer {t}"));
    }
    let resp = roundtable::http::app(server.state.clone())
        .oneshot(req.body(Body::from(body.to_string()))?)
        .await?;
    let status = resp.status();
    let bytes = resp.into_body().collect().await?.to_bytes();
    let body = serde_json::from_slice(&bytes).unwrap_or(Value::Null);
    Ok((status, body))
}

/// Audio packets Bo received from Ann so far.
pub(crate) fn audio_from(bo: &Client, ann: &str) -> usize {
    bo.media.from(ann, MediaKind::Audio).len()
}

/// Wait until Bo has `n` more of Ann's video packets (10 ms apart): the test's clock.
pub(crate) async fn video_goes_on(bo: &Client, ann: &str, n: usize) -> anyhow::Result<()> {
    let start = bo.media.from(ann, MediaKind::Video).len();
    bo.media
        .wait_for("more video", |log| {
            log.from(ann, MediaKind::Video).len() >= start + n
        })
        .await
}

/// Ann publishes `packets` video packets 10 ms apart (and half as many audio, 20 ms apart) to
/// Bo in a fresh room; once Bo hears her, her audio is gated closed. Returns the server,
/// the room, Ann and Bo.
async fn ann_gated_for_bo(packets: u16) -> anyhow::Result<(TestServer, String, Client, Client)> {
    let server = TestServer::sqlite().await?;
    let room = server.room("Gate", 5).await?;
    let mut ann = Client::join(server.addr, &room, "Ann").await?;
    let bo = Client::join(server.addr, &room, "Bo").await?;
    ann.publish(packets).await?;
    let ann_id = ann.id.clone();
    bo.media
        .wait_for("Ann's first audio", |log| {
            log.from(&ann_id, MediaKind::Audio).len() >= 20
        })
        .await?;
    let close = r#"{"kind":"audio","open":false}"#;
    let (status, body) = forwarding(&server, &room, &ann_id, Some(ADMIN_TOKEN), close).await?;
    assert_eq!(status, StatusCode::OK, "{body}");
    assert_eq!(body["tracks"], 1, "{body}");
    Ok((server, room, ann, bo))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_gated_track_stops_reaching_the_others_and_resumes_without_a_gap() -> anyhow::Result<()> {
    // 8 s of each: 800 video packets 10 ms apart, 400 audio packets 20 ms apart.
    let (server, room, ann, bo) = ann_gated_for_bo(800).await?;
    let ann_id = ann.id.clone();
    // What was on its way when the gate closed has arrived after 200 ms of video; in the
    // next second, not one audio packet more.
    video_goes_on(&bo, &ann_id, 20).await?;
    let closed_at = audio_from(&bo, &ann_id);
    video_goes_on(&bo, &ann_id, 100).await?;
    assert_eq!(
        audio_from(&bo, &ann_id),
        closed_at,
        "audio reached Bo while gated"
    );

    let open = r#"{"kind":"audio","open":true}"#;
    let (status, body) = forwarding(&server, &room, &ann_id, Some(ADMIN_TOKEN), open).await?;
    assert_eq!(status, StatusCode::OK, "{body}");
    held_back_once(&bo, &ann_id).await
}

/// Once Bo has Ann's last audio packet (her 400th): his sequence numbers of her audio run on
/// without a gap, while her own counters show one stretch held back, of at least a second.
pub(crate) async fn held_back_once(bo: &Client, ann_id: &str) -> anyhow::Result<()> {
    bo.media
        .wait_for("Ann's audio to the end", |log| {
            log.from(ann_id, MediaKind::Audio)
                .last()
                .is_some_and(|r| r.counter == 399)
        })
        .await?;
    let got = bo.media.from(ann_id, MediaKind::Audio);
    let seqs: Vec<u16> = got.iter().map(|r| r.seq).collect();
    let want: Vec<u16> = (0..seqs.len() as u16)
        .map(|k| seqs[0].wrapping_add(k))
        .collect();
    assert_eq!(
        seqs, want,
        "Bo's sequence numbers run on across the held-back stretch"
    );
    let jumps: Vec<u64> = got
        .windows(2)
        .map(|w| w[1].counter - w[0].counter)
        .filter(|d| *d > 1)
        .collect();
    assert_eq!(jumps.len(), 1, "{jumps:?}");
    assert!(jumps[0] > 50, "{jumps:?}");
    Ok(())
}

/// The forwarding API refuses a missing or wrong token, a bad body, a room that is not
/// running and an unknown participant, each with its code; one who publishes nothing yet is
/// muted all the same.
#[tokio::test]
async fn the_forwarding_api_refuses_what_it_cannot_do() -> anyhow::Result<()> {
    let server = TestServer::sqlite().await?;
    let room = server.room("Gate", 5).await?;
    let body = r#"{"kind":"video","open":false}"#;
    for token in [None, Some("wrong")] {
        let (status, reply) = forwarding(&server, &room, "p1", token, body).await?;
        assert_eq!(
            (status, reply["error"]["code"].as_str()),
            (StatusCode::UNAUTHORIZED, Some("unauthorized")),
            "token {token:?}"
        );
    }
    for bad in [
        "",
        "{}",
        r#"{"kind":"screen","open":true}"#,
        r#"{"kind":"audio"}"#,
    ] {
        let (status, reply) = forwarding(&server, &room, "p1", Some(ADMIN_TOKEN), bad).await?;
        assert_eq!(
            (status, reply["error"]["code"].as_str()),
            (StatusCode::BAD_REQUEST, Some("bad_request")),
            "{bad}"
        );
    }
    let (status, reply) = forwarding(&server, &room, "p1", Some(ADMIN_TOKEN), body).await?;
    assert_eq!(
        (status, reply["error"]["code"].as_str()),
        (StatusCode::NOT_FOUND, Some("room_not_found"))
    );
    let ann = Client::join(server.addr, &room, "Ann").await?;
    let (status, reply) = forwarding(&server, &room, "p99", Some(ADMIN_TOKEN), body).await?;
    assert_eq!(
        (status, reply["error"]["code"].as_str()),
        (StatusCode::NOT_FOUND, Some("participant_not_found"))
    );
    // Ann publishes nothing yet: the mute holds for her tracks to come.
    let (status, reply) = forwarding(&server, &room, &ann.id, Some(ADMIN_TOKEN), body).await?;
    assert_eq!(
        (status, &reply["tracks"]),
        (StatusCode::OK, &json!(0)),
        "{reply}"
    );
    Ok(())
}

/// A participant whose audio is gated stays gated when they publish another audio track:
/// the new track is closed before anyone receives it.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_gated_participants_next_track_is_gated_too() -> anyhow::Result<()> {
    use roundtable_loadgen::client::{PublishPlan, TrackPlan};

    let (_server, _room, mut ann, bo) = ann_gated_for_bo(1000).await?;
    let ann_id = ann.id.clone();
    video_goes_on(&bo, &ann_id, 20).await?;
    let closed_at = audio_from(&bo, &ann_id);

    // A second microphone: 200 packets of Opus, 20 ms apart.
    let second = PublishPlan {
        audio: Some(TrackPlan {
            period: std::time::Duration::from_millis(20),
            min_bytes: 80,
            max_bytes: 80,
            keyframes: None,
            packets: Some(200),
            vp8_framing: false,
        }),
        video: None,
        set: 1,
        ..PublishPlan::default()
    };
    ann.publish_plan(second).await?;
    // Two seconds of Ann's video: her new track has long been offered to Bo by then.
    video_goes_on(&bo, &ann_id, 200).await?;
    assert_eq!(
        audio_from(&bo, &ann_id),
        closed_at,
        "the new audio track reached Bo although Ann's audio is gated"
    );
    Ok(())
}
