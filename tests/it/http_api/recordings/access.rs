//! Reaching a recording: ranges and content types for the admin token, signed links for a
//! media element, and every other credential, and every id that is a path, refused.

use axum::body::Body;
use axum::http::{HeaderMap, Request, StatusCode, header};
use http_body_util::BodyExt;
use serde_json::json;
use signaling::roles::Role;
use tower::ServiceExt;

use super::super::{admin, call, code, request};
use super::{fixture, walk};
use crate::common::{ADMIN_TOKEN, TestServer};

/// A request's status, headers and body bytes.
async fn raw(
    server: &TestServer,
    req: Request<Body>,
) -> anyhow::Result<(StatusCode, HeaderMap, Vec<u8>)> {
    let resp = roundtable::http::app(server.state.clone())
        .oneshot(req)
        .await?;
    let (parts, body) = resp.into_parts();
    let bytes = body.collect().await?.to_bytes().to_vec();
    Ok((parts.status, parts.headers, bytes))
}

/// A GET with the admin token and a header.
fn admin_get(path: &str, extra: Option<(header::HeaderName, &str)>) -> Request<Body> {
    let mut req = admin("GET", path, None);
    if let Some((name, value)) = extra {
        req.headers_mut().insert(name, value.parse().unwrap());
    }
    req
}

fn header_of(headers: &HeaderMap, name: header::HeaderName) -> &str {
    headers.get(name).map_or("", |v| v.to_str().unwrap())
}

#[tokio::test]
async fn files_are_served_with_ranges_and_their_content_types() -> anyhow::Result<()> {
    let f = fixture().await?;
    let ann = f.file("ann1_a1-1.opus").await?;
    let on_disk = std::fs::read(f.dir.join("ann1/a1-1.opus"))?;
    let len = on_disk.len();

    let (status, headers, body) = raw(&f.server, admin_get(&f.file_path(&ann), None)).await?;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(body, on_disk);
    assert_eq!(header_of(&headers, header::CONTENT_TYPE), "audio/ogg");
    assert_eq!(header_of(&headers, header::ACCEPT_RANGES), "bytes");
    let name = format!("{}_ann1_a1-1.opus", f.session);
    assert_eq!(
        header_of(&headers, header::CONTENT_DISPOSITION),
        format!("inline; filename=\"{name}\"")
    );

    let range = Some((header::RANGE, "bytes=10-29"));
    let (status, headers, body) = raw(&f.server, admin_get(&f.file_path(&ann), range)).await?;
    assert_eq!(status, StatusCode::PARTIAL_CONTENT);
    assert_eq!(
        header_of(&headers, header::CONTENT_RANGE),
        format!("bytes 10-29/{len}")
    );
    assert_eq!(body, on_disk[10..30]);
    let (status, _, body) = raw(
        &f.server,
        admin_get(&f.file_path(&ann), Some((header::RANGE, "bytes=-5"))),
    )
    .await?;
    assert_eq!(
        (status, body.as_slice()),
        (StatusCode::PARTIAL_CONTENT, &on_disk[len - 5..])
    );
    let past = format!("bytes={len}-");
    let (status, headers, _) = raw(
        &f.server,
        admin_get(&f.file_path(&ann), Some((header::RANGE, &past))),
    )
    .await?;
    assert_eq!(status, StatusCode::RANGE_NOT_SATISFIABLE);
    assert_eq!(
        header_of(&headers, header::CONTENT_RANGE),
        format!("bytes */{len}")
    );

    let download = format!("{}?download=1", f.file_path(&ann));
    let (status, headers, _) = raw(&f.server, admin_get(&download, None)).await?;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(
        header_of(&headers, header::CONTENT_DISPOSITION),
        format!("attachment; filename=\"{name}\"")
    );

    for (suffix, kind, content) in [
        (
            "bo2_v1-1.webm",
            "video/webm",
            &b"\x1a\x45\xdf\xa3 not a whole webm"[..],
        ),
        ("chapters.json", "application/json", br#"{"chapters":[]}"#),
        ("chapters.vtt", "text/vtt; charset=utf-8", b"WEBVTT\n"),
        ("mixdown.opus", "audio/ogg", b"OggS the old mixdown"),
    ] {
        let id = f.file(suffix).await?;
        let (status, headers, body) = raw(&f.server, admin_get(&f.file_path(&id), None)).await?;
        assert_eq!(status, StatusCode::OK, "{suffix}");
        assert_eq!(header_of(&headers, header::CONTENT_TYPE), kind, "{suffix}");
        assert_eq!(body, content, "{suffix}");
    }
    let (status, body) = call(&f.server, admin("GET", &f.file_path(&"0".repeat(32)), None)).await?;
    assert_eq!(
        (status, code(&body)),
        (StatusCode::NOT_FOUND, Some("file_not_found"))
    );
    Ok(())
}

fn now_ms() -> i64 {
    roundtable::room::now().unix_ms
}

#[tokio::test]
async fn signed_links_play_one_file_until_they_expire() -> anyhow::Result<()> {
    let f = fixture().await?;
    let ann = f.file("ann1_a1-1.opus").await?;
    let bo = f.file("bo2_b1-1.opus").await?;
    let links = format!("/api/admin/recordings/{}/links", f.session);
    let body = json!({ "file": ann }).to_string();
    let (status, link) = call(&f.server, admin("POST", &links, Some(&body))).await?;
    assert_eq!(status, StatusCode::OK, "{link}");
    let url = link["url"].as_str().unwrap();
    assert!(!url.contains(ADMIN_TOKEN), "{url}");
    assert!(link["expires_at"].as_i64().unwrap() > now_ms());
    let on_disk = std::fs::read(f.dir.join("ann1/a1-1.opus"))?;

    // No credential but the link: the file, with ranges.
    let get = |url: &str, range: Option<&str>| {
        let mut req = Request::get(url);
        if let Some(r) = range {
            req = req.header(header::RANGE, r);
        }
        req.body(Body::empty()).unwrap()
    };
    let (status, headers, body) = raw(&f.server, get(url, None)).await?;
    assert_eq!(
        (status, body.as_slice()),
        (StatusCode::OK, on_disk.as_slice())
    );
    assert_eq!(header_of(&headers, header::CONTENT_TYPE), "audio/ogg");
    let (status, _, body) = raw(&f.server, get(url, Some("bytes=0-3"))).await?;
    assert_eq!(
        (status, body.as_slice()),
        (StatusCode::PARTIAL_CONTENT, &b"OggS"[..])
    );
    let download = link["download_url"].as_str().unwrap();
    let (status, headers, _) = raw(&f.server, get(download, None)).await?;
    assert_eq!(status, StatusCode::OK);
    assert!(header_of(&headers, header::CONTENT_DISPOSITION).starts_with("attachment;"));

    // Forged, cut, moved to another file, expired: refused with codes.
    let (path, query) = url.split_once('?').unwrap();
    let sig = query.split_once("&sig=").unwrap().1;
    let flipped = format!(
        "{}{}",
        &sig[..63],
        if sig.ends_with('0') { '1' } else { '0' }
    );
    let expires = link["expires_at"].as_i64().unwrap();
    let refused = [
        (
            format!("{path}?expires={expires}&sig={flipped}"),
            "link_invalid",
        ),
        (
            format!("{path}?expires={}&sig={sig}", expires + 1),
            "link_invalid",
        ),
        (format!("{path}?expires={expires}"), "link_invalid"),
        (path.to_string(), "link_invalid"),
        (format!("{path}?expires=soon&sig={sig}"), "link_invalid"),
        (format!("{path}?expires={expires}&sig=zz"), "link_invalid"),
        (url.replace(&ann, &bo), "link_invalid"),
        (
            f.server
                .state
                .recording_link(&f.session, &ann, now_ms() - 1),
            "link_expired",
        ),
    ];
    for (url, want) in refused {
        let (status, body) = call(&f.server, get(&url, None)).await?;
        assert_eq!(
            (status, code(&body)),
            (StatusCode::FORBIDDEN, Some(want)),
            "{url}"
        );
    }
    // The admin token is no signature.
    let mut req = get(path, None);
    req.headers_mut().insert(
        header::AUTHORIZATION,
        format!("Bearer {}", ADMIN_TOKEN).parse()?,
    );
    let (status, body) = call(&f.server, req).await?;
    assert_eq!(
        (status, code(&body)),
        (StatusCode::FORBIDDEN, Some("link_invalid"))
    );
    // A well-signed link to a file that is not there.
    let ghost = f
        .server
        .state
        .recording_link(&f.session, &"a".repeat(32), now_ms() + 60_000);
    let (status, body) = call(&f.server, get(&ghost, None)).await?;
    assert_eq!(
        (status, code(&body)),
        (StatusCode::NOT_FOUND, Some("file_not_found"))
    );
    for bad in [
        json!({ "file": "../mixdown.opus" }),
        json!({ "file": "0".repeat(32) }),
    ] {
        let (status, body) = call(&f.server, admin("POST", &links, Some(&bad.to_string()))).await?;
        assert!(
            matches!(
                (status, code(&body)),
                (StatusCode::BAD_REQUEST, Some("invalid_id"))
                    | (StatusCode::NOT_FOUND, Some("file_not_found"))
            ),
            "{bad}: {status} {body}"
        );
    }
    Ok(())
}

#[tokio::test]
async fn only_the_admin_token_reaches_a_recording() -> anyhow::Result<()> {
    let f = fixture().await?;
    let ann = f.file("ann1_a1-1.opus").await?;
    let (participant, _) = f.server.invite(&f.room, Role::Participant, |_| {}).await?;
    let (facilitator, _) = f.server.invite(&f.room, Role::Facilitator, |_| {}).await?;
    let s = &f.session;
    let calls = [
        ("GET", "/api/admin/recordings".to_string(), None),
        ("GET", format!("/api/admin/recordings/{s}"), None),
        ("GET", f.file_path(&ann), None),
        ("GET", format!("{}?download=1", f.file_path(&ann)), None),
        (
            "POST",
            format!("/api/admin/recordings/{s}/links"),
            Some(json!({ "file": ann }).to_string()),
        ),
        ("POST", format!("/api/admin/recordings/{s}/mixdown"), None),
        (
            "DELETE",
            format!("/api/admin/recordings/{s}/speakers/ann1"),
            None,
        ),
        ("DELETE", format!("/api/admin/recordings/{s}"), None),
    ];
    let tokens = [
        Some(participant.as_str()),
        Some(facilitator.as_str()),
        Some("forged-token"),
        Some(""),
        None,
    ];
    for (method, path, body) in &calls {
        for token in tokens {
            let (status, reply) =
                call(&f.server, request(method, path, token, body.as_deref())).await?;
            assert_eq!(
                (status, code(&reply)),
                (StatusCode::UNAUTHORIZED, Some("unauthorized")),
                "{method} {path} with {token:?}"
            );
        }
        // A secret in the query, as a room link carries it, is no credential either.
        for query in [
            format!("invite={facilitator}"),
            format!("token={}", ADMIN_TOKEN),
        ] {
            let sep = if path.contains('?') { '&' } else { '?' };
            let with = format!("{path}{sep}{query}");
            let (status, reply) =
                call(&f.server, request(method, &with, None, body.as_deref())).await?;
            assert_eq!(
                (status, code(&reply)),
                (StatusCode::UNAUTHORIZED, Some("unauthorized")),
                "{method} {with}"
            );
        }
    }
    // The signed route takes no bearer of any kind in place of a signature.
    let signed = format!("/api/recordings/{s}/files/{ann}");
    for token in [Some(participant.as_str()), Some(facilitator.as_str()), None] {
        let (status, reply) = call(&f.server, request("GET", &signed, token, None)).await?;
        assert_eq!(
            (status, code(&reply)),
            (StatusCode::FORBIDDEN, Some("link_invalid"))
        );
    }
    assert_eq!(walk(&f.dir).len(), 6, "nothing was deleted");
    assert!(f.server.state.store().recording_session(s).await?.is_some());
    Ok(())
}

#[tokio::test]
async fn an_id_that_is_a_path_is_refused() -> anyhow::Result<()> {
    let f = fixture().await?;
    let s = &f.session;
    let ann = f.file("ann1_a1-1.opus").await?;
    let paths = [
        format!("/api/admin/recordings/{s}/files/.."),
        format!("/api/admin/recordings/{s}/files/..%2F..%2Frt.db"),
        format!("/api/admin/recordings/{s}/files/ann1%2Fa1-1.opus"),
        format!("/api/admin/recordings/{s}/files/ann1/a1-1.opus"),
        format!("/api/admin/recordings/{s}/files/../../rt.db"),
        format!("/api/admin/recordings/{s}/files/{}", ann.to_uppercase()),
        format!("/api/admin/recordings/%2e%2e/files/{ann}"),
        format!("/api/admin/recordings/..%2F{s}/files/{ann}"),
        "/api/admin/recordings/..".to_string(),
        format!("/api/admin/recordings/{s}%2F..%2F.."),
        "/api/admin/recordings?room=..%2F".to_string(),
    ];
    for path in &paths {
        let (status, body) = call(&f.server, admin("GET", path, None)).await?;
        assert_eq!(
            (status, code(&body)),
            (StatusCode::BAD_REQUEST, Some("invalid_id")),
            "{path}"
        );
    }
    for (method, path) in [
        ("DELETE", format!("/api/admin/recordings/{s}/speakers/..")),
        (
            "DELETE",
            format!("/api/admin/recordings/{s}/speakers/ann1%2F.."),
        ),
        ("DELETE", "/api/admin/recordings/%2E%2E".to_string()),
        ("POST", "/api/admin/recordings/..%2F/mixdown".to_string()),
        (
            "GET",
            format!("/api/recordings/{s}/files/..%2Fmixdown.opus?expires=1&sig=00"),
        ),
        (
            "GET",
            format!("/api/recordings/..%2F/files/{ann}?expires=1&sig=00"),
        ),
    ] {
        let (status, body) = call(&f.server, admin(method, &path, None)).await?;
        assert_eq!(
            (status, code(&body)),
            (StatusCode::BAD_REQUEST, Some("invalid_id")),
            "{path}"
        );
    }
    assert_eq!(walk(&f.dir).len(), 6, "nothing was deleted");
    Ok(())
}
