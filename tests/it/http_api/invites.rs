//! The admin API for room rules, invites and the audit log, and the public invite check:
//! through `http::app(state).oneshot(..)`, on the real store.

use axum::http::StatusCode;
use roundtable::invites::secret_hash;
use roundtable::store::{AuditEntry, InviteRecord};
use roundtable_loadgen::client::Ws;
use serde_json::{Value, json};
use signaling::policy::WhenFull;
use signaling::roles::Role;
use signaling::wire::{ClientMsg, ServerMsg};

use super::{admin, call, code, request};
use crate::common::TestServer;

/// A week and a month, in ms.
const WEEK_MS: i64 = 7 * 86_400_000;
const MONTH_MS: i64 = 30 * 86_400_000;

fn now_ms() -> i64 {
    roundtable::room::now().unix_ms
}

/// The secret of an invite link.
fn secret_of(url: &str) -> &str {
    url.split_once("#invite=").expect("an invite link").1
}

/// Create a room through the API; its id and the reply.
async fn new_room(server: &TestServer, body: Value) -> anyhow::Result<(String, Value)> {
    let (status, reply) =
        call(server, admin("POST", "/api/rooms", Some(&body.to_string()))).await?;
    assert_eq!(status, StatusCode::CREATED, "{reply}");
    Ok((reply["id"].as_str().unwrap().to_string(), reply))
}

/// Mint an invite through the API: the status and the reply.
async fn mint(server: &TestServer, room: &str, body: Value) -> anyhow::Result<(StatusCode, Value)> {
    let path = format!("/api/admin/rooms/{room}/invites");
    call(server, admin("POST", &path, Some(&body.to_string()))).await
}

async fn check(
    server: &TestServer,
    room: &str,
    secret: &str,
) -> anyhow::Result<(StatusCode, Value)> {
    let body = json!({ "invite": secret }).to_string();
    let path = format!("/api/rooms/{room}/invite-check");
    call(server, request("POST", &path, None, Some(&body))).await
}

async fn invites(server: &TestServer, room: &str) -> anyhow::Result<Vec<Value>> {
    let path = format!("/api/admin/rooms/{room}/invites");
    let (status, body) = call(server, admin("GET", &path, None)).await?;
    assert_eq!(status, StatusCode::OK, "{body}");
    Ok(body["invites"].as_array().unwrap().clone())
}

#[tokio::test]
async fn a_room_is_created_with_its_rules_and_a_facilitator_link() -> anyhow::Result<()> {
    let server = TestServer::sqlite().await?;
    let before = now_ms();
    let (id, reply) = new_room(
        &server,
        json!({"title": "Skill Share", "capacity": 30, "caps": {"advocate": 5},
               "when_full": "wait", "auto_admit": true, "open_link": false}),
    )
    .await?;
    assert_eq!(reply["capacity"], 30);
    assert_eq!(reply["open_url"], Value::Null, "the open link is off");
    let room = server.state.store().get_room(&id).await?.unwrap();
    assert_eq!(room.policy.caps.advocate, Some(5));
    assert_eq!(room.policy.when_full, WhenFull::Wait);
    assert!(room.policy.auto_admit && !room.policy.open_link);
    let (_, info) = call(
        &server,
        request("GET", &format!("/api/rooms/{id}"), None, None),
    )
    .await?;
    assert_eq!(info["open_link"], false);

    // The facilitator's link: reserved, unlimited, a month long, and checkable.
    let secret = secret_of(reply["facilitator_url"].as_str().unwrap());
    let (status, checked) = check(&server, &id, secret).await?;
    assert_eq!(status, StatusCode::OK, "{checked}");
    assert_eq!(
        (&checked["role"], &checked["name"]),
        (&json!("facilitator"), &Value::Null)
    );
    let expires = checked["expires_at"].as_i64().unwrap();
    assert!((before + MONTH_MS..=now_ms() + MONTH_MS).contains(&expires));
    let listed = invites(&server, &id).await?;
    assert_eq!(listed.len(), 1);
    let f = &listed[0];
    assert_eq!(
        (&f["role"], &f["reserve"], &f["max_uses"]),
        (&json!("facilitator"), &json!(true), &Value::Null)
    );
    assert_eq!(f["state"], "live");
    Ok(())
}

#[tokio::test]
async fn patch_changes_the_rules_and_refreshes_a_running_room() -> anyhow::Result<()> {
    let server = TestServer::sqlite().await?;
    let (id, _) = new_room(&server, json!({"title": "Before", "capacity": 10})).await?;
    let path = format!("/api/admin/rooms/{id}");
    let body = json!({"title": "After", "capacity": 8, "caps": {"participant": 6, "observer": 2},
                      "when_full": "wait", "auto_admit": true, "open_link": false});
    let (status, reply) = call(&server, admin("PATCH", &path, Some(&body.to_string()))).await?;
    assert_eq!(status, StatusCode::OK, "{reply}");
    let created_at = reply["created_at"].clone();
    assert_eq!(
        reply,
        json!({"id": id, "title": "After", "created_at": created_at, "capacity": 8,
               "caps": {"participant": 6, "observer": 2}, "when_full": "wait",
               "auto_admit": true, "open_link": false})
    );
    // What is not given stays; null lifts a cap.
    let body = r#"{"caps":{"observer":null},"open_link":true}"#;
    let (_, reply) = call(&server, admin("PATCH", &path, Some(body))).await?;
    assert_eq!(reply["caps"], json!({"participant": 6}));
    assert_eq!(
        (&reply["title"], &reply["capacity"]),
        (&json!("After"), &json!(8))
    );
    let stored = server.state.store().get_room(&id).await?.unwrap();
    assert_eq!(
        (stored.policy.capacity, stored.policy.caps.observer),
        (8, None)
    );

    // With someone in it, the room runs, and each change reaches it as one command.
    let mut ws = roundtable_loadgen::client::connect(server.addr).await?;
    let joined = crate::bad_input::join(&mut ws, &id, "Ann").await?;
    assert!(matches!(joined, ServerMsg::Joined { .. }), "{joined:?}");
    let body = r#"{"capacity":9}"#;
    let patch = admin("PATCH", &path, Some(body));
    let (reached, _) = commands_during(&server, &id, &mut ws, patch).await?;
    assert_eq!(reached, 1, "the refresh");
    let read = admin("GET", &format!("/api/admin/rooms/{id}/invites"), None);
    let (reached, _) = commands_during(&server, &id, &mut ws, read).await?;
    assert_eq!(reached, 0, "a read changes nothing");
    let body = Some(r#"{"role":"observer"}"#);
    let create = admin("POST", &format!("/api/admin/rooms/{id}/invites"), body);
    let (reached, minted) = commands_during(&server, &id, &mut ws, create).await?;
    assert_eq!(reached, 1, "the refresh");
    let invite = minted["invite"]["id"].as_str().unwrap();
    let revoke = admin(
        "DELETE",
        &format!("/api/admin/rooms/{id}/invites/{invite}"),
        None,
    );
    let (reached, _) = commands_during(&server, &id, &mut ws, revoke).await?;
    assert_eq!(reached, 1, "the refresh");
    Ok(())
}

/// How many commands `id`'s task took for `req`, and `req`'s reply. The room takes
/// commands in order: once a chat sent after `req` comes back, what `req` sent has been
/// taken. `ws` must be the room's only client, and idle.
async fn commands_during(
    server: &TestServer,
    id: &str,
    ws: &mut Ws,
    req: axum::http::Request<axum::body::Body>,
) -> anyhow::Result<(u64, Value)> {
    let before = server.state.room_commands(id);
    let (status, body) = call(server, req).await?;
    assert!(status.is_success(), "{status} {body}");
    let text = format!("marker {before}");
    ws.send(&ClientMsg::Chat { text: text.clone() }).await?;
    ws.recv_until(|m| matches!(m, ServerMsg::Chat { message } if message.text == text))
        .await?;
    Ok((server.state.room_commands(id) - before - 1, body))
}

#[tokio::test]
async fn invites_are_minted_listed_and_revoked() -> anyhow::Result<()> {
    let server = TestServer::sqlite().await?;
    let (id, _) = new_room(&server, json!({"title": "Invites", "capacity": 10})).await?;
    let before = now_ms();
    let (status, reply) = mint(
        &server,
        &id,
        json!({"role": "advocate", "name": " Zoë ", "expires_in_s": 3600, "uses": 2}),
    )
    .await?;
    assert_eq!(status, StatusCode::CREATED, "{reply}");
    let invite = &reply["invite"];
    let invite_id = invite["id"].as_str().unwrap().to_string();
    let created_at = invite["created_at"].as_i64().unwrap();
    assert!(created_at >= before);
    assert_eq!(
        invite,
        &json!({"id": invite_id, "room_id": id, "role": "advocate", "name": "Zoë",
                "reserve": true, "max_uses": 2, "uses": 0, "expires_at": created_at + 3_600_000,
                "created_at": created_at, "revoked_at": null, "state": "live"})
    );
    let url = reply["url"].as_str().unwrap();
    assert!(
        url.starts_with(&format!("http://{}/r/{id}#invite=", server.addr)),
        "{url}"
    );
    let (_, checked) = check(&server, &id, secret_of(url)).await?;
    assert_eq!(
        checked,
        json!({"role": "advocate", "name": "Zoë", "expires_at": created_at + 3_600_000})
    );

    // Defaults: a week, unlimited, the role's reserve.
    let (_, observer) = mint(&server, &id, json!({"role": "observer"})).await?;
    let o = &observer["invite"];
    assert_eq!(
        (&o["reserve"], &o["max_uses"], &o["name"]),
        (&json!(false), &Value::Null, &Value::Null)
    );
    let week = o["expires_at"].as_i64().unwrap() - o["created_at"].as_i64().unwrap();
    assert_eq!(week, WEEK_MS);

    let listed = invites(&server, &id).await?;
    let ids: Vec<_> = listed.iter().map(|i| i["role"].as_str().unwrap()).collect();
    assert_eq!(ids, ["observer", "advocate", "facilitator"], "newest first");
    let text = serde_json::to_string(&listed)?;
    assert!(
        !text.contains(secret_of(url)) && !text.contains("hash"),
        "{text}"
    );

    let path = format!("/api/admin/rooms/{id}/invites/{invite_id}");
    let (status, _) = call(&server, admin("DELETE", &path, None)).await?;
    assert_eq!(status, StatusCode::NO_CONTENT);
    let listed = invites(&server, &id).await?;
    let revoked = listed
        .iter()
        .find(|i| i["id"] == invite_id.as_str())
        .unwrap();
    assert_eq!(revoked["state"], "revoked");
    assert!(revoked["revoked_at"].as_i64().is_some());
    let (status, body) = check(&server, &id, secret_of(url)).await?;
    assert_eq!(
        (status, code(&body)),
        (StatusCode::GONE, Some("invite_revoked"))
    );

    // Another room's invite is not this room's to revoke.
    let (other, _) = new_room(&server, json!({"title": "Other"})).await?;
    let path = format!("/api/admin/rooms/{other}/invites/{invite_id}");
    let (status, body) = call(&server, admin("DELETE", &path, None)).await?;
    assert_eq!(
        (status, code(&body)),
        (StatusCode::NOT_FOUND, Some("invite_not_found"))
    );
    Ok(())
}

#[tokio::test]
async fn a_reserved_seat_needs_a_free_one() -> anyhow::Result<()> {
    let server = TestServer::sqlite().await?;
    // The facilitator's link holds one of the two seats.
    let (id, _) = new_room(&server, json!({"title": "Tiny", "capacity": 2})).await?;
    let (status, _) = mint(&server, &id, json!({"role": "advocate"})).await?;
    assert_eq!(status, StatusCode::CREATED);
    let (status, body) = mint(&server, &id, json!({"role": "observer", "reserve": true})).await?;
    assert_eq!(
        (status, code(&body)),
        (StatusCode::CONFLICT, Some("no_seat_to_reserve")),
        "{body}"
    );
    let (status, _) = mint(&server, &id, json!({"role": "advocate", "reserve": false})).await?;
    assert_eq!(
        status,
        StatusCode::CREATED,
        "an invite without a seat needs none"
    );

    let (capped, _) =
        new_room(&server, json!({"title": "Capped", "caps": {"advocate": 1}})).await?;
    let (status, _) = mint(&server, &capped, json!({"role": "advocate"})).await?;
    assert_eq!(status, StatusCode::CREATED);
    let (status, body) = mint(&server, &capped, json!({"role": "advocate"})).await?;
    assert_eq!(
        (status, code(&body)),
        (StatusCode::CONFLICT, Some("no_seat_to_reserve"))
    );
    let (status, _) = mint(&server, &capped, json!({"role": "facilitator"})).await?;
    assert_eq!(
        status,
        StatusCode::CREATED,
        "the cap is the advocates' alone"
    );
    assert_eq!(invites(&server, &capped).await?.len(), 3);
    Ok(())
}

/// Each refusal has its code; a check takes no use.
#[tokio::test]
async fn the_invite_check_names_each_refusal() -> anyhow::Result<()> {
    let server = TestServer::sqlite().await?;
    let store = server.state.store();
    let (id, _) = new_room(&server, json!({"title": "Checked"})).await?;
    let (other, _) = new_room(&server, json!({"title": "Other"})).await?;
    let now = now_ms();
    let stored = |name: &str, room: &str| InviteRecord {
        id: name.into(),
        room_id: room.into(),
        role: Role::Participant,
        name: None,
        reserve: false,
        max_uses: Some(1),
        uses: 0,
        expires_at: now + WEEK_MS,
        created_at: now,
        revoked_at: None,
    };
    let cases = [
        (stored("once", &id), StatusCode::OK, None),
        (
            stored("wrong", &other),
            StatusCode::NOT_FOUND,
            Some("invite_wrong_room"),
        ),
        (
            InviteRecord {
                revoked_at: Some(now),
                ..stored("revoked", &id)
            },
            StatusCode::GONE,
            Some("invite_revoked"),
        ),
        (
            InviteRecord {
                expires_at: now - 1,
                ..stored("expired", &id)
            },
            StatusCode::GONE,
            Some("invite_expired"),
        ),
        (
            InviteRecord {
                uses: 1,
                ..stored("spent", &id)
            },
            StatusCode::GONE,
            Some("invite_used_up"),
        ),
    ];
    for (invite, ..) in &cases {
        store
            .create_invite(invite, &secret_hash(&format!("secret-{}", invite.id)))
            .await?;
    }
    for (invite, status, expected) in &cases {
        // Three times: a check never uses the invite up.
        for _ in 0..3 {
            let (got, body) = check(&server, &id, &format!("secret-{}", invite.id)).await?;
            assert_eq!(
                (got, code(&body)),
                (*status, *expected),
                "{}: {body}",
                invite.id
            );
            assert!(
                got == StatusCode::OK
                    || body["error"]["message"]
                        .as_str()
                        .is_some_and(|m| m.starts_with("this invitation"))
            );
        }
    }
    let (status, body) = check(&server, &id, "not-a-secret-of-ours").await?;
    assert_eq!(
        (status, code(&body)),
        (StatusCode::NOT_FOUND, Some("invite_invalid"))
    );
    let listed = invites(&server, &id).await?;
    let once = listed.iter().find(|i| i["id"] == "once").unwrap();
    assert_eq!((&once["uses"], &once["state"]), (&json!(0), &json!("live")));
    Ok(())
}

#[tokio::test]
async fn the_audit_log_comes_oldest_first() -> anyhow::Result<()> {
    let server = TestServer::sqlite().await?;
    let (id, _) = new_room(&server, json!({"title": "Audited"})).await?;
    let path = format!("/api/admin/rooms/{id}/audit");
    let (status, body) = call(&server, admin("GET", &path, None)).await?;
    assert_eq!((status, body), (StatusCode::OK, json!({"entries": []})));
    let mute = AuditEntry {
        ts: 20,
        actor: "p1".into(),
        actor_name: "Fay".into(),
        action: "mute".into(),
        target: Some("p2".into()),
        target_name: Some("Bo".into()),
        detail: None,
    };
    let lock = AuditEntry {
        ts: 10,
        actor: "admin".into(),
        actor_name: "admin".into(),
        action: "lock".into(),
        target: None,
        target_name: None,
        detail: None,
    };
    server.state.store().append_audit(&id, &mute).await?;
    server.state.store().append_audit(&id, &lock).await?;
    let (status, body) = call(&server, admin("GET", &path, None)).await?;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(
        body,
        json!({"entries": [
            {"ts": 20, "actor": "p1", "actor_name": "Fay", "action": "mute", "target": "p2",
             "target_name": "Bo", "detail": null},
            {"ts": 10, "actor": "admin", "actor_name": "admin", "action": "lock",
             "target": null, "target_name": null, "detail": null},
        ]})
    );
    Ok(())
}

/// The database holds the hash of a secret, never the secret.
#[tokio::test]
async fn only_the_hash_of_a_secret_is_stored() -> anyhow::Result<()> {
    let dir = tempfile::tempdir()?;
    let file = dir.path().join("rt.db");
    let server = TestServer::with_database(format!("sqlite:{}", file.display())).await?;
    let (id, reply) = new_room(&server, json!({"title": "Secrets"})).await?;
    let (_, minted) = mint(&server, &id, json!({"role": "advocate"})).await?;
    let mut stored = Vec::new();
    for suffix in ["", "-wal"] {
        let mut path = file.clone().into_os_string();
        path.push(suffix);
        stored.extend(std::fs::read(path).unwrap_or_default());
    }
    let holds = |needle: &str| stored.windows(needle.len()).any(|w| w == needle.as_bytes());
    for url in [&reply["facilitator_url"], &minted["url"]] {
        let secret = secret_of(url.as_str().unwrap());
        assert!(!holds(secret), "the secret {secret} is in the database");
        assert!(holds(&secret_hash(secret)), "its hash is not");
    }
    Ok(())
}

/// Every admin endpoint: 401 without the token or with a wrong one, 404 for an unknown
/// room, 400 for a bad body. The invite check is public.
#[tokio::test]
async fn admin_endpoints_refuse_what_they_should() -> anyhow::Result<()> {
    let server = TestServer::sqlite().await?;
    let (id, _) = new_room(&server, json!({"title": "Guarded", "capacity": 10})).await?;
    let endpoints: [(&str, String, Option<&str>, &[&str]); 5] = [
        (
            "PATCH",
            "/api/admin/rooms/{room}".into(),
            Some(r#"{"capacity":5}"#),
            &[
                r#"{"capacity":0}"#,
                r#"{"capacity":1001}"#,
                r#"{"caps":{"advocate":11}}"#,
                r#"{"caps":{"admin":1}}"#,
                r#"{"when_full":"queue"}"#,
                r#"{"title":" "}"#,
                r#"{"nope":1}"#,
                "{",
            ],
        ),
        (
            "POST",
            "/api/admin/rooms/{room}/invites".into(),
            Some(r#"{"role":"observer"}"#),
            &[
                "{}",
                r#"{"role":"admin"}"#,
                r#"{"role":"observer","uses":0}"#,
                r#"{"role":"observer","expires_in_s":0}"#,
                r#"{"role":"observer","expires_in_s":31536001}"#,
                r#"{"role":"observer","name":"\u202eevil"}"#,
                r#"{"role":"observer","name":""}"#,
                r#"{"role":"observer","x":1}"#,
                "[",
            ],
        ),
        ("GET", "/api/admin/rooms/{room}/invites".into(), None, &[]),
        (
            "DELETE",
            "/api/admin/rooms/{room}/invites/nope".into(),
            None,
            &[],
        ),
        ("GET", "/api/admin/rooms/{room}/audit".into(), None, &[]),
    ];
    for (method, path, good, bad_bodies) in endpoints {
        let at = |room: &str| path.replace("{room}", room);
        for token in [None, Some("wrong"), Some("")] {
            let (status, body) = call(&server, request(method, &at(&id), token, good)).await?;
            assert_eq!(
                (status, code(&body)),
                (StatusCode::UNAUTHORIZED, Some("unauthorized")),
                "{method} {path} {token:?}"
            );
        }
        let (status, body) = call(&server, admin(method, &at("nope"), good)).await?;
        assert_eq!(
            (status, code(&body)),
            (StatusCode::NOT_FOUND, Some("room_not_found")),
            "{method} {path}"
        );
        for bad in bad_bodies {
            let (status, body) = call(&server, admin(method, &at(&id), Some(bad))).await?;
            assert_eq!(
                (status, code(&body)),
                (StatusCode::BAD_REQUEST, Some("bad_request")),
                "{method} {path} {bad}"
            );
        }
    }
    let (status, body) = call(
        &server,
        admin(
            "DELETE",
            &format!("/api/admin/rooms/{id}/invites/nope"),
            None,
        ),
    )
    .await?;
    assert_eq!(
        (status, code(&body)),
        (StatusCode::NOT_FOUND, Some("invite_not_found"))
    );
    // Nothing above changed the room or made an invite.
    let room = server.state.store().get_room(&id).await?.unwrap();
    assert_eq!(room.policy.capacity, 10);
    assert_eq!(
        invites(&server, &id).await?.len(),
        1,
        "the facilitator's alone"
    );

    let path = format!("/api/rooms/{id}/invite-check");
    for bad in [
        "{}",
        r#"{"invite":1}"#,
        r#"{"invite":"x","more":1}"#,
        "nope",
    ] {
        let (status, body) = call(&server, request("POST", &path, None, Some(bad))).await?;
        assert_eq!(
            (status, code(&body)),
            (StatusCode::BAD_REQUEST, Some("bad_request")),
            "{bad}"
        );
    }
    let (status, body) = check(&server, "nope", "x").await?;
    assert_eq!(
        (status, code(&body)),
        (StatusCode::NOT_FOUND, Some("room_not_found"))
    );
    Ok(())
}
