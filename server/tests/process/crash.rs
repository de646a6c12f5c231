//! Acknowledged chat survives `kill -9`: the echo is the acknowledgement, and the server sends
//! it only once the message is committed.
//!
//! The test holds the database's write lock while the chat arrives, so no commit can happen
//! then. It kills the server the moment it has every acknowledgement: a server that
//! acknowledged before committing is killed with the lock still held and its messages
//! unwritten. One that waits is let through, and killed after its last echo.

use std::collections::BTreeMap;
use std::path::Path;

use futures_util::future::{join_all, try_join_all};
use signaling::wire::ServerMsg;
use sqlx::{Connection, Executor, SqliteConnection};

use crate::bin::{Participant, Server, create_room, serve};

/// Rooms chatting at once (each has its own writer), and messages each (the per-participant
/// chat limit).
const ROOMS: usize = 4;
const EACH: usize = 5;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn acknowledged_chat_survives_kill_9_with_its_number() -> anyhow::Result<()> {
    let dir = tempfile::tempdir()?;
    let data = dir.path().join("data");
    let log = dir.path().join("server.log");
    let mut rooms = Vec::new();
    for i in 0..ROOMS {
        rooms.push(create_room(&data, &format!("Room {i}")).await?);
    }
    let server = Server::start(serve(&data), &log).await?;
    let mut people = Vec::new();
    for room in &rooms {
        people.push(Participant::join(server.addr, room, "Ann").await?);
    }

    let mut lock = write_lock(&data.join("roundtable.db")).await?;
    let sends = people.iter_mut().map(|p| async move {
        for k in 0..EACH {
            p.chat(&format!("message {k}")).await?;
        }
        p.barrier().await
    });
    let early: usize = try_join_all(sends).await?.into_iter().sum();
    if early < ROOMS * EACH {
        lock.execute("ROLLBACK").await?;
    }
    let outcomes = try_join_all(people.iter_mut().map(|p| p.own_outcomes(EACH))).await?;
    server.kill().await?;
    lock.close().await?;

    let server = Server::start(serve(&data), &log).await?;
    let checks = rooms
        .iter()
        .zip(outcomes)
        .map(|(room, outcomes)| check_room(&server, room, acknowledged(outcomes)));
    for result in join_all(checks).await {
        result?;
    }
    server.kill().await?;
    Ok(())
}

/// A connection of the test's own that holds the database's write lock until rolled back.
async fn write_lock(db: &Path) -> anyhow::Result<SqliteConnection> {
    let mut conn = SqliteConnection::connect(&format!("sqlite:{}", db.display())).await?;
    conn.execute("BEGIN IMMEDIATE").await?;
    Ok(conn)
}

/// The `(seq, text)` of each echo.
fn acknowledged(outcomes: Vec<ServerMsg>) -> BTreeMap<i64, String> {
    let acked: BTreeMap<_, _> = outcomes
        .into_iter()
        .map(|msg| match msg {
            ServerMsg::Chat { message } => (message.seq, message.text),
            other => panic!("a chat was refused: {other:?}"),
        })
        .collect();
    assert_eq!(acked.len(), EACH, "every echo has its own seq");
    acked
}

/// After the restart, `room`'s history holds every acknowledged message under its number,
/// and the next message takes a new one.
async fn check_room(
    server: &Server,
    room: &str,
    acked: BTreeMap<i64, String>,
) -> anyhow::Result<()> {
    let mut late = Participant::join(server.addr, room, "Late").await?;
    let stored: BTreeMap<i64, String> = late
        .history
        .iter()
        .map(|m| (m.seq, m.text.clone()))
        .collect();
    for (seq, text) in &acked {
        assert_eq!(
            stored.get(seq),
            Some(text),
            "acknowledged message {seq} ({text:?}) of room {room} lost or renumbered"
        );
    }
    late.chat("after the crash").await?;
    let ServerMsg::Chat { message } = late.next_outcome().await? else {
        panic!("the chat after the restart was refused");
    };
    let last = acked.keys().last().copied().unwrap_or_default();
    assert!(message.seq > last, "seq {} reused", message.seq);
    Ok(())
}
