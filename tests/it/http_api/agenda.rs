//! The agenda's admin API: read and replace a room's plan, from the store when the room is
//! not running and from its task when it is; planned against actual after a run starts.

use axum::http::StatusCode;
use roundtable_loadgen::client::{Ws, join_invited};
use serde_json::{Value, json};
use signaling::agenda::{Agenda, Command, Phase, Plan};
use signaling::roles::Role;
use signaling::wire::ServerMsg;

use super::{admin, call, code, request};
use crate::common::TestServer;

fn path(room: &str) -> String {
    format!("/api/admin/rooms/{room}/agenda")
}

async fn get(server: &TestServer, room: &str) -> anyhow::Result<(StatusCode, Value)> {
    call(server, admin("GET", &path(room), None)).await
}

async fn put(server: &TestServer, room: &str, body: &str) -> anyhow::Result<(StatusCode, Value)> {
    call(server, admin("PUT", &path(room), Some(body))).await
}

/// `{"plan": plan}`.
fn body(plan: &Plan) -> String {
    json!({ "plan": plan }).to_string()
}

/// Assert that `reply` is a refusal with this status and code.
#[track_caller]
fn refused(reply: &(StatusCode, Value), status: StatusCode, want: &str) {
    let (got, body) = reply;
    assert_eq!((*got, code(body)), (status, Some(want)), "{body}");
}

/// Two tactics; the first's advocate comes with an invite.
fn two_tactics(invite: &str) -> Plan {
    let mut plan = Plan::skill_share(2);
    plan.tactics[0].title = "Data for advocacy".into();
    plan.tactics[0].organisation = "Open Streets".into();
    plan.tactics[0].advocate = Some(signaling::agenda::Advocate::Invite { id: invite.into() });
    plan.tactics[1].segments[2].duration_s = 600;
    plan
}

#[tokio::test]
async fn a_room_that_never_ran_has_the_template_and_takes_a_plan() -> anyhow::Result<()> {
    let server = TestServer::sqlite().await?;
    let room = server.room("Skill Share", 20).await?;
    let (status, template) = get(&server, &room).await?;
    assert_eq!(status, StatusCode::OK, "{template}");
    assert_eq!(template["plan"], json!(Plan::skill_share(3)));
    assert_eq!(template["planned_s"], 3 * 1500);
    assert_eq!(template["room_running"], false);
    assert_eq!(template["phase"], "ready");
    assert_eq!(template["runs"], json!([]));
    assert_eq!(template["tactic"], Value::Null, "no tactic under way");
    let store = server.state.store();
    assert_eq!(
        store.load_agenda(&room).await?,
        None,
        "a read stores nothing"
    );

    let plan = two_tactics("inv1");
    let (status, reply) = put(&server, &room, &body(&plan)).await?;
    assert_eq!(status, StatusCode::OK, "{reply}");
    assert_eq!(reply["plan"], json!(plan));
    assert_eq!(reply["planned_s"], 1500 + 1200);
    let (_, read) = get(&server, &room).await?;
    assert_eq!(read["plan"], json!(plan));
    assert_eq!(read["room_running"], false);
    let stored = store.load_agenda(&room).await?.expect("stored");
    assert_eq!((stored.plan, stored.state.phase), (plan, Phase::Ready));
    assert!(
        !server.state.room_is_running(&room),
        "the edit started no room"
    );
    Ok(())
}

#[tokio::test]
async fn bad_plans_and_bodies_are_refused() -> anyhow::Result<()> {
    let server = TestServer::sqlite().await?;
    let room = server.room("Skill Share", 20).await?;
    let segment = r#"{"kind":"tactic","duration_s":60}"#;
    let tactic = format!(r#"{{"title":"T","segments":[{segment}]}}"#);
    let thirteen = vec![tactic.as_str(); 13].join(",");
    let bad_plans = [
        format!(r#"{{"tactics":[{thirteen}]}}"#),
        r#"{"tactics":[{"title":"T","segments":[{"kind":"tactic","duration_s":0}]}]}"#.into(),
        r#"{"tactics":[{"title":"T","segments":[{"kind":"tactic","duration":60}]}]}"#.into(),
        r#"{"tactics":[{"title":"T","segments":[{"kind":"speech","duration_s":60}]}]}"#.into(),
        format!(r#"{{"tactics":[{{"title":"","segments":[{segment}]}}]}}"#),
        r#"{"tactics":[{"title":"T","segments":[]}]}"#.into(),
        format!(r#"{{"tactics":[{tactic}],"warn_at_s":[1,2,3,4,5]}}"#),
        format!(r#"{{"tactics":[{tactic}],"time_up":"shout"}}"#),
        r#"{"tactics":"none"}"#.into(),
        "[]".into(),
    ];
    for plan in &bad_plans {
        let reply = put(&server, &room, &format!(r#"{{"plan":{plan}}}"#)).await?;
        refused(&reply, StatusCode::BAD_REQUEST, "bad_agenda");
    }
    let good = body(&Plan::skill_share(1));
    let with_extra = good.replacen('{', r#"{"extra":1,"#, 1);
    for envelope in ["{", "{}", r#"{"tactics":[]}"#, with_extra.as_str()] {
        let reply = put(&server, &room, envelope).await?;
        refused(&reply, StatusCode::BAD_REQUEST, "bad_request");
    }
    let store = server.state.store();
    assert_eq!(store.load_agenda(&room).await?, None, "nothing was stored");
    Ok(())
}

#[tokio::test]
async fn both_endpoints_want_the_token_and_a_room() -> anyhow::Result<()> {
    let server = TestServer::sqlite().await?;
    let room = server.room("Skill Share", 20).await?;
    let good = body(&Plan::skill_share(1));
    for (method, good) in [("GET", None), ("PUT", Some(good.as_str()))] {
        for token in [None, Some("wrong"), Some("")] {
            let reply = call(&server, request(method, &path(&room), token, good)).await?;
            refused(&reply, StatusCode::UNAUTHORIZED, "unauthorized");
        }
        let reply = call(&server, admin(method, &path("nope"), good)).await?;
        refused(&reply, StatusCode::NOT_FOUND, "room_not_found");
    }
    let store = server.state.store();
    assert_eq!(store.load_agenda(&room).await?, None, "nothing was stored");
    Ok(())
}

/// A stored agenda under way (its room stopped, or the server restarted): an edit keeps
/// its clock, and may not remove the tactic under way.
#[tokio::test]
async fn a_stored_agenda_under_way_keeps_its_clock() -> anyhow::Result<()> {
    let server = TestServer::sqlite().await?;
    let room = server.room("Skill Share", 20).await?;
    let now = roundtable::room::now().unix_ms;
    let mut agenda = Agenda::new(Plan::skill_share(3));
    agenda.handle_command(now, Command::Start, None).unwrap();
    agenda
        .handle_command(now, Command::SkipTactic, None)
        .unwrap();
    let store = server.state.store();
    store.save_agenda(&room, &agenda, now).await?;

    let (_, read) = get(&server, &room).await?;
    assert_eq!(
        (&read["phase"], &read["tactic"]),
        (&json!("running"), &json!(1))
    );
    assert_eq!(read["deadline"], now + 300_000);
    let mut without = Plan::skill_share(3);
    without.tactics.remove(1);
    let reply = put(&server, &room, &body(&without)).await?;
    refused(&reply, StatusCode::CONFLICT, "agenda_state");
    let mut longer = Plan::skill_share(3);
    longer.tactics[1].segments[0].duration_s = 420;
    let (status, reply) = put(&server, &room, &body(&longer)).await?;
    assert_eq!(status, StatusCode::OK, "{reply}");
    assert_eq!(reply["deadline"], now + 420_000, "two more minutes");
    let stored = store.load_agenda(&room).await?.expect("stored");
    assert_eq!(stored.plan, longer);
    assert_eq!(stored.state.deadline, Some(now + 420_000));
    Ok(())
}

/// The next agenda message whose phase is `phase`.
async fn agenda_in(ws: &mut Ws, phase: Phase) -> anyhow::Result<signaling::wire::AgendaView> {
    let msg = ws
        .recv_until(|m| matches!(m, ServerMsg::Agenda { agenda, .. } if agenda.phase == phase))
        .await?;
    let ServerMsg::Agenda { agenda, .. } = msg else {
        unreachable!("recv_until matched an agenda")
    };
    Ok(*agenda)
}

#[tokio::test]
async fn a_running_room_answers_with_its_live_agenda() -> anyhow::Result<()> {
    let server = TestServer::sqlite().await?;
    let room = server.room("Skill Share", 20).await?;
    let (secret, _) = server.invite(&room, Role::Facilitator, |_| {}).await?;
    let (mut ws, _, _) = join_invited(server.addr, &room, "Fay", Some(&secret)).await?;
    let (_, before) = get(&server, &room).await?;
    assert_eq!(
        (&before["room_running"], &before["phase"]),
        (&json!(true), &json!("ready"))
    );

    ws.send_text(r#"{"type":"agenda_control","action":"start"}"#)
        .await?;
    let started = agenda_in(&mut ws, Phase::Running).await?;
    let (status, live) = get(&server, &room).await?;
    assert_eq!(status, StatusCode::OK, "{live}");
    assert_eq!(live["room_running"], true);
    assert_eq!(live["phase"], "running");
    assert_eq!((&live["tactic"], &live["segment"]), (&json!(0), &json!(0)));
    assert_eq!(live["started_at"], started.started_at);
    assert_eq!(live["deadline"], json!(started.deadline));
    let left = live["remaining_ms"].as_i64().unwrap();
    assert!((1..=300_000).contains(&left), "{left} ms left");
    let runs = live["runs"].as_array().unwrap();
    assert_eq!(runs.len(), 1);
    let segments = runs[0]["segments"].as_array().unwrap();
    assert_eq!(segments.len(), 1, "{segments:?}");
    let first = &segments[0];
    assert_eq!(
        (&first["title"], &first["kind"]),
        (&json!("Tactic 1"), &json!("organisation"))
    );
    assert_eq!(
        (&first["planned_s"], &first["ended_at"]),
        (&json!(300), &Value::Null)
    );
    assert!(first["actual_s"].as_i64().unwrap() < 300, "{first}");
    assert_eq!(runs[0]["transitions"][0]["what"], "start");

    // The tactic under way may not go; the room says why, and keeps its plan.
    let mut without = Plan::skill_share(3);
    without.tactics.remove(0);
    let reply = put(&server, &room, &body(&without)).await?;
    refused(&reply, StatusCode::CONFLICT, "agenda_state");
    let reply = put(&server, &room, r#"{"plan":{"tactics":[{"title":"x"}]}}"#).await?;
    refused(&reply, StatusCode::BAD_REQUEST, "bad_agenda");

    // An edit the room takes reaches everyone in it, clock and all.
    let mut longer = Plan::skill_share(3);
    longer.tactics[0].segments[0].duration_s = 600;
    longer.tactics[2].title = "Mentoring".into();
    let (status, reply) = put(&server, &room, &body(&longer)).await?;
    assert_eq!(status, StatusCode::OK, "{reply}");
    assert_eq!(reply["room_running"], true);
    let deadline = started.deadline.unwrap() + 300_000;
    assert_eq!(reply["deadline"], deadline);
    let seen = ws
        .recv_until(|m| matches!(m, ServerMsg::Agenda { agenda, .. } if agenda.plan == longer))
        .await?;
    let ServerMsg::Agenda { agenda, .. } = seen else {
        unreachable!("recv_until matched an agenda")
    };
    assert_eq!(agenda.deadline, Some(deadline));
    let (_, after) = get(&server, &room).await?;
    assert_eq!(after["plan"], json!(longer));
    Ok(())
}
