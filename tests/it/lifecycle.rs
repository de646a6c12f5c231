//! Server life: stopping it closes every WebSocket with 1001 instead of waiting forever.

use roundtable_loadgen::client::{Client, connect};
use signaling::wire::{self, ClientMsg, MediaKind, ServerMsg};
use tokio_tungstenite::tungstenite::Message;
use tokio_tungstenite::tungstenite::protocol::frame::coding::CloseCode;

use crate::common::TestServer;

#[tokio::test]
async fn stopping_the_server_closes_websockets_with_going_away() -> anyhow::Result<()> {
    let server = TestServer::sqlite().await?;
    let room = server.room("Closing time", 5).await?;
    let mut ws = connect(server.addr).await?;
    let join = ClientMsg::Join {
        v: wire::PROTOCOL_VERSION,
        room,
        name: "Ann".into(),
        invite: None,
        consent: false,
    };
    ws.send(&join).await?;
    ws.recv_until(|m| matches!(m, ServerMsg::Joined { .. }))
        .await?;
    drop(server);
    let close = loop {
        let next = tokio::time::timeout(std::time::Duration::from_secs(30), ws.socket.next()).await;
        match next.expect("the server must close the socket when it stops") {
            Some(Ok(Message::Close(frame))) => break frame,
            Some(Ok(_)) => continue,
            other => anyhow::bail!("expected a close frame, got {other:?}"),
        }
    };
    let frame = close.expect("a close frame with a code");
    assert_eq!(
        (frame.code, frame.reason.as_str()),
        (CloseCode::Away, "server_shutdown")
    );
    Ok(())
}

use futures_util::StreamExt;

/// Leaving, cleanly or by a closed tab, frees everything the participant had: the media
/// engine ends up holding no peer connection and no track, and the room no participant.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn leaving_frees_every_task_socket_and_track() -> anyhow::Result<()> {
    let server = TestServer::sqlite().await?;
    let room = server.room("Cleanup", 5).await?;
    let mut ann = Client::join(server.addr, &room, "Ann").await?;
    let mut bo = Client::join(server.addr, &room, "Bo").await?;
    ann.publish(200).await?;
    bo.publish(200).await?;
    let (ann_id, bo_id) = (ann.id.clone(), bo.id.clone());
    // A packet on a consumer means it was activated.
    let both = |from: &str| {
        let from = from.to_string();
        move |l: &roundtable_loadgen::client::MediaLog| {
            !l.from(&from, MediaKind::Video).is_empty()
                && !l.from(&from, MediaKind::Audio).is_empty()
        }
    };
    ann.media
        .wait_for("Bo's audio and video", both(&bo_id))
        .await?;
    bo.media
        .wait_for("Ann's audio and video", both(&ann_id))
        .await?;
    let busy = server.state.media_stats();
    assert_eq!(busy.connections, 4, "two per participant: {busy:?}");
    assert_eq!(
        busy.producers, 4,
        "each publishes audio and video: {busy:?}"
    );
    assert_eq!(busy.consumers, 4, "each receives the other's two: {busy:?}");

    ann.send(ClientMsg::Leave {});
    ann.expect("left", |m| matches!(m, ServerMsg::Left {}))
        .await?;
    ann.drop_connection().await;
    bo.drop_connection().await; // a closed tab: no `leave`

    let settled = tokio::time::timeout(std::time::Duration::from_secs(30), async {
        let mut every = tokio::time::interval(std::time::Duration::from_millis(50));
        while !server.state.media_stats().is_idle() || server.state.registry_occupancy(&room) > 0 {
            every.tick().await;
        }
    })
    .await;
    assert!(
        settled.is_ok(),
        "still held: {:?}; occupancy {}",
        server.state.media_stats(),
        server.state.registry_occupancy(&room)
    );
    Ok(())
}

/// An empty room stops after its grace period; the next join starts it afresh from the store,
/// so chat history survives the room's task (and would survive a restart of the server).
#[tokio::test]
async fn an_idle_room_stops_and_comes_back_with_its_history() -> anyhow::Result<()> {
    let grace = std::time::Duration::from_millis(300);
    let server = TestServer::sqlite_with(|c| c.room_idle_grace = grace).await?;
    let room = server.room("Comes and goes", 5).await?;
    let join = |name: &str| ClientMsg::Join {
        v: wire::PROTOCOL_VERSION,
        room: room.clone(),
        name: name.into(),
        invite: None,
        consent: false,
    };

    let mut ann = connect(server.addr).await?;
    ann.send(&join("Ann")).await?;
    ann.recv_until(|m| matches!(m, ServerMsg::Joined { .. }))
        .await?;
    ann.send(&ClientMsg::Chat {
        text: "Notes are in the shared folder".into(),
    })
    .await?;
    ann.recv_until(|m| matches!(m, ServerMsg::Chat { .. }))
        .await?;
    ann.send(&ClientMsg::Leave {}).await?;
    ann.recv_until(|m| matches!(m, ServerMsg::Left {})).await?;

    let stopped = tokio::time::timeout(std::time::Duration::from_secs(30), async {
        let mut every = tokio::time::interval(std::time::Duration::from_millis(50));
        while server.state.room_is_running(&room) {
            every.tick().await;
        }
    });
    stopped
        .await
        .expect("the empty room's task stops after its grace period");

    let mut bo = connect(server.addr).await?;
    bo.send(&join("Bo")).await?;
    let joined = bo
        .recv_until(|m| matches!(m, ServerMsg::Joined { .. }))
        .await?;
    let ServerMsg::Joined { you, chat, .. } = joined else {
        unreachable!()
    };
    assert_eq!(
        you, "p1",
        "a fresh room task numbers participants from 1 again"
    );
    let texts: Vec<&str> = chat.iter().map(|m| m.text.as_str()).collect();
    assert_eq!(texts, ["Notes are in the shared folder"]);
    assert!(server.state.room_is_running(&room));
    Ok(())
}

/// A client that goes silent (no messages, no pongs: a frozen or vanished browser) is pinged,
/// then closed with 1001 `keepalive_timeout`. The client here speaks raw TCP after the upgrade,
/// so nothing answers the server's pings on its behalf.
#[tokio::test]
async fn a_silent_client_is_closed_after_the_keepalive_timeout() -> anyhow::Result<()> {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let keepalive = roundtable::config::Keepalive {
        ping_every: std::time::Duration::from_millis(50),
        close_after: std::time::Duration::from_millis(300),
    };
    let server = TestServer::sqlite_with(|c| c.keepalive = keepalive).await?;
    let mut tcp = tokio::net::TcpStream::connect(server.addr).await?;
    let upgrade = "GET /ws HTTP/1.1\r\nHost: localhost\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n\
                   Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\nSec-WebSocket-Version: 13\r\n\r\n";
    tcp.write_all(upgrade.as_bytes()).await?;
    let mut received = Vec::new();
    let read_all = tokio::time::timeout(
        std::time::Duration::from_secs(30),
        tcp.read_to_end(&mut received),
    );
    read_all
        .await
        .expect("the server closes a silent connection")?;
    let text = String::from_utf8_lossy(&received);
    assert!(text.starts_with("HTTP/1.1 101"), "upgraded: {text}");
    // The last frame is the close: opcode 0x88, then code 1001 and the reason.
    let close = received
        .iter()
        .rposition(|b| *b == 0x88)
        .expect("a close frame");
    let frame = &received[close..];
    let payload = &frame[2..];
    assert_eq!(u16::from_be_bytes([payload[0], payload[1]]), 1001);
    assert_eq!(&payload[2..], b"keepalive_timeout");
    assert!(
        received.windows(2).any(|w| w == [0x89, 0x00]),
        "it was pinged first"
    );
    Ok(())
}
