//! Bounds (issue 20): slow or silent clients are closed on small configured timeouts, one
//! address cannot take every connection or the rooms' attention, and a client that stops
//! reading pins no more than its queue's bound.

use std::net::{IpAddr, SocketAddr};
use std::time::Duration;

use futures_util::{SinkExt, StreamExt};
use roundtable::config::Config;
use roundtable_loadgen::client::WAIT;
use signaling::wire::{self, ClientMsg, ErrorCode, ServerMsg};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpSocket, TcpStream};
use tokio_tungstenite::WebSocketStream;
use tokio_tungstenite::tungstenite::Message;
use tokio_tungstenite::tungstenite::protocol::frame::coding::CloseCode;

use crate::common::TestServer;

const SHORT: Duration = Duration::from_millis(200);

/// A TCP connection to the server from `from` (any loopback address works inside the test's
/// namespace), with a small receive buffer if asked.
async fn tcp_from(server: SocketAddr, from: &str, recv_buffer: Option<u32>) -> TcpStream {
    let socket = TcpSocket::new_v4().unwrap();
    if let Some(bytes) = recv_buffer {
        socket.set_recv_buffer_size(bytes).unwrap();
    }
    let from: IpAddr = from.parse().unwrap();
    socket.bind(SocketAddr::new(from, 0)).unwrap();
    socket.connect(server).await.unwrap()
}

async fn ws_over(server: SocketAddr, tcp: TcpStream) -> anyhow::Result<WebSocketStream<TcpStream>> {
    let url = format!("ws://{server}/ws");
    Ok(tokio_tungstenite::client_async(url, tcp).await?.0)
}

/// `GET /healthz` from `from`; the status line and body.
async fn get_from(server: SocketAddr, from: &str) -> String {
    let mut tcp = tcp_from(server, from, None).await;
    let req = "GET /healthz HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n";
    tcp.write_all(req.as_bytes()).await.unwrap();
    let mut reply = Vec::new();
    let read = tokio::time::timeout(WAIT, tcp.read_to_end(&mut reply)).await;
    read.expect("a reply").unwrap();
    String::from_utf8_lossy(&reply).into_owned()
}

/// Wait, checking every few milliseconds, until `done` holds.
async fn until(what: &str, mut done: impl FnMut() -> bool) {
    let waited = tokio::time::timeout(WAIT, async {
        let mut every = tokio::time::interval(Duration::from_millis(10));
        while !done() {
            every.tick().await;
        }
    });
    waited.await.unwrap_or_else(|_| panic!("never: {what}"));
}

async fn next_close(ws: &mut WebSocketStream<TcpStream>) -> Option<(CloseCode, String)> {
    loop {
        let next = tokio::time::timeout(WAIT, ws.next()).await;
        match next.expect("the server closes the socket") {
            Some(Ok(Message::Close(frame))) => {
                return frame.map(|f| (f.code, f.reason.to_string()));
            }
            Some(Ok(_)) => continue,
            other => panic!("expected a close frame, got {other:?}"),
        }
    }
}

#[tokio::test]
async fn a_half_sent_request_is_closed_at_the_header_timeout() -> anyhow::Result<()> {
    let server = TestServer::sqlite_with(|c| c.limits.header_timeout = SHORT).await?;
    let mut tcp = TcpStream::connect(server.addr).await?;
    tcp.write_all(b"GET / HTTP/1.1\r\nHost: slow\r\n").await?;
    let mut reply = Vec::new();
    let read = tokio::time::timeout(WAIT, tcp.read_to_end(&mut reply)).await;
    read.expect("the server closes a connection whose headers never end")?;
    assert!(
        reply.is_empty(),
        "no reply: {}",
        String::from_utf8_lossy(&reply)
    );
    until("its place is freed", || {
        server.state.open_connections() == 0
    })
    .await;
    Ok(())
}

#[tokio::test]
async fn an_unjoined_websocket_is_closed_at_the_join_timeout() -> anyhow::Result<()> {
    let server = TestServer::sqlite_with(|c| c.limits.join_timeout = SHORT).await?;
    let room = server.room("Waiting", 5).await?;
    let (mut member, _, _) = join_room(server.addr, &room, "Ann").await?;
    let tcp = TcpStream::connect(server.addr).await?;
    let mut idle = ws_over(server.addr, tcp).await?;
    // It answers pings (tungstenite does), and it asks for pongs: alive, but never joins.
    idle.send(Message::text(wire::encode_client(&ClientMsg::Ping {
        id: Some(1),
    })))
    .await?;
    let close = next_close(&mut idle).await;
    assert_eq!(close, Some((CloseCode::Policy, "join_timeout".into())));
    // The joined connection, older than the timeout, stays.
    member.send(&ClientMsg::Ping { id: Some(2) }).await?;
    let pong = member
        .recv_until(|m| matches!(m, ServerMsg::Pong { .. }))
        .await?;
    assert!(
        matches!(pong, ServerMsg::Pong { id: Some(2), .. }),
        "{pong:?}"
    );
    Ok(())
}

#[tokio::test]
async fn the_per_address_cap_refuses_the_next_connection_while_another_address_connects()
-> anyhow::Result<()> {
    let server = TestServer::sqlite_with(|c| c.limits.max_connections_per_ip = 2).await?;
    let addr = server.addr;
    // Two WebSockets from 127.0.0.2 hold its two places, upgraded as they are.
    let mut first = ws_over(addr, tcp_from(addr, "127.0.0.2", None).await).await?;
    let _second = ws_over(addr, tcp_from(addr, "127.0.0.2", None).await).await?;
    let refused = get_from(addr, "127.0.0.2").await;
    assert!(refused.starts_with("HTTP/1.1 503"), "{refused}");
    assert!(
        refused.contains(r#""code":"too_many_connections_from_address""#),
        "{refused}"
    );
    let refused_ws = ws_over(addr, tcp_from(addr, "127.0.0.2", None).await).await;
    assert!(refused_ws.is_err(), "the WebSocket upgrade is refused too");
    // Another address is served meanwhile.
    assert!(
        get_from(addr, "127.0.0.3")
            .await
            .starts_with("HTTP/1.1 200")
    );
    let mut other = ws_over(addr, tcp_from(addr, "127.0.0.3", None).await).await?;
    other
        .send(Message::text(wire::encode_client(&ClientMsg::Ping {
            id: Some(3),
        })))
        .await?;
    // A place freed is a place again.
    first.close(None).await?;
    drop(first);
    until("the closed socket frees its place", || {
        server.state.open_connections() == 2
    })
    .await;
    assert!(
        get_from(addr, "127.0.0.2")
            .await
            .starts_with("HTTP/1.1 200")
    );
    Ok(())
}

/// Connect and join through the generator's raw protocol client.
async fn join_room(
    server: SocketAddr,
    room: &str,
    name: &str,
) -> anyhow::Result<(roundtable_loadgen::client::Ws, String, ServerMsg)> {
    let mut ws = roundtable_loadgen::client::connect(server).await?;
    ws.send(&ClientMsg::Join {
        v: wire::PROTOCOL_VERSION,
        room: room.into(),
        name: name.into(),
        invite: None,
        consent: false,
    })
    .await?;
    let joined = ws
        .recv_until(|m| !matches!(m, ServerMsg::Candidate { .. }))
        .await?;
    let ServerMsg::Joined { you, .. } = &joined else {
        anyhow::bail!("join refused: {joined:?}")
    };
    Ok((ws, you.clone(), joined))
}

/// Unknown types with long names, which the server answers with an error each.
fn unknown_types(n: usize) -> Vec<Message> {
    let kind = "k".repeat(200);
    let text = format!(r#"{{"type":"{kind}"}}"#);
    vec![Message::text(text); n]
}

/// Generous message rates, so that the bound under test is the one that acts.
fn fast(c: &mut Config) {
    c.limits.messages_per_second = 100_000.0;
    c.limits.ip_messages_per_second = 100_000.0;
}

#[tokio::test]
async fn a_client_that_never_reads_is_closed_at_its_byte_bound() -> anyhow::Result<()> {
    const BOUND: usize = 16 * 1024;
    let server = TestServer::sqlite_with(|c| {
        fast(c);
        c.limits.send_queue_bytes = BOUND;
        c.limits.write_timeout = WAIT * 2;
    })
    .await?;
    let tcp = tcp_from(server.addr, "127.0.0.1", Some(4096)).await;
    let mut reader = ws_over(server.addr, tcp).await?;
    // It sends and never reads, until the server gives up on it.
    let sender = tokio::spawn(async move {
        for chunk in unknown_types(100_000).chunks(100) {
            for msg in chunk {
                if reader.feed(msg.clone()).await.is_err() {
                    return;
                }
            }
            if reader.flush().await.is_err() {
                return;
            }
        }
    });
    until("the server closes the client", || {
        server.state.open_websockets() == 0
    })
    .await;
    let (now, peak) = server.state.queued_bytes();
    assert_eq!(now, 0, "nothing stays queued");
    assert!(peak <= BOUND, "at most the bound was queued: {peak}");
    sender.abort();
    Ok(())
}

#[tokio::test]
async fn keepalive_closes_a_silent_client_while_its_writer_is_blocked() -> anyhow::Result<()> {
    let server = TestServer::sqlite_with(|c| {
        fast(c);
        c.keepalive = roundtable::config::Keepalive {
            ping_every: Duration::from_millis(50),
            close_after: Duration::from_millis(300),
        };
        c.limits.write_timeout = WAIT * 2;
        c.limits.join_timeout = WAIT * 2;
    })
    .await?;
    let tcp = tcp_from(server.addr, "127.0.0.1", Some(4096)).await;
    let mut ws = ws_over(server.addr, tcp).await?;
    // Send until replies wait behind a write the client does not read, then fall silent.
    let mut batches = 0;
    while server.state.queued_bytes().0 < 8 * 1024 {
        for msg in unknown_types(50) {
            ws.feed(msg).await?;
        }
        ws.flush().await?;
        batches += 1;
        assert!(batches < 2_000, "the writer never blocked");
        tokio::task::yield_now().await;
    }
    until("the keepalive closes it", || {
        server.state.open_websockets() == 0
    })
    .await;
    assert_eq!(server.state.queued_bytes().0, 0);
    Ok(())
}

#[tokio::test]
async fn a_flood_never_reaches_the_room_and_others_still_chat() -> anyhow::Result<()> {
    let server = TestServer::sqlite().await?;
    let room = server.room("Busy", 5).await?;
    let (mut victim, _, _) = join_room(server.addr, &room, "Victim").await?;
    let (mut flooder, _, _) = join_room(server.addr, &room, "Flooder").await?;
    let before = server.state.room_commands(&room);
    const FLOOD: usize = 150;
    for i in 0..FLOOD {
        let chat = ClientMsg::Chat {
            text: format!("flood {i}"),
        };
        flooder
            .socket
            .feed(Message::text(wire::encode_client(&chat)))
            .await?;
    }
    flooder.socket.flush().await?;
    // The pong says the flooder's connection has dealt with the whole flood.
    flooder.send(&ClientMsg::Ping { id: Some(7) }).await?;
    let mut refused = 0;
    flooder
        .recv_until(|m| {
            refused += matches!(
                m,
                ServerMsg::Error {
                    code: ErrorCode::RateLimited,
                    ..
                }
            ) as usize;
            matches!(m, ServerMsg::Pong { id: Some(7), .. })
        })
        .await?;
    assert!(refused >= 1, "the flood was told it is limited");
    // The victim's chat comes through, after everything the flooder sent the room.
    let text = "still here".to_string();
    victim.send(&ClientMsg::Chat { text: text.clone() }).await?;
    victim
        .recv_until(|m| matches!(m, ServerMsg::Chat { message } if message.text == text))
        .await?;
    let reached = server.state.room_commands(&room) - before - 1;
    // The room budget is 10 at once, then 1 a second: the whole flood (150) would reach it
    // without the budget; 40 leaves half a minute of refill for a slow machine.
    assert!(
        reached <= 40,
        "{reached} of {FLOOD} flood messages reached the room"
    );
    Ok(())
}

#[tokio::test]
async fn one_address_shares_one_budget_across_its_connections() -> anyhow::Result<()> {
    let server = TestServer::sqlite_with(|c| c.limits.ip_messages_per_second = 20.0).await?;
    let burst = 100; // five seconds' worth
    let mut flooders = Vec::new();
    for _ in 0..5 {
        let tcp = tcp_from(server.addr, "127.0.0.2", None).await;
        flooders.push(ws_over(server.addr, tcp).await?);
    }
    for ws in &mut flooders {
        for id in 0..300 {
            let ping = ClientMsg::Ping { id: Some(id) };
            ws.feed(Message::text(wire::encode_client(&ping))).await?;
        }
        ws.flush().await?;
    }
    let mut pongs = 0;
    for ws in &mut flooders {
        pongs += pongs_until_recovered(ws).await?;
    }
    // One connection alone may send 200 at once; five shared 100 and what refilled.
    assert!(pongs >= burst, "the shared burst was served: {pongs}");
    // Unshared, each of the five would have had its own burst of 200: 1,000 at least.
    // Shared, it takes 45 s of refill at 20 a second to come near that.
    assert!(pongs < 1000, "{pongs} pongs: the budget was not shared");
    // Another address has a budget of its own.
    let mut other = ws_over(server.addr, tcp_from(server.addr, "127.0.0.3", None).await).await?;
    other
        .send(Message::text(wire::encode_client(&ClientMsg::Ping {
            id: Some(1),
        })))
        .await?;
    // The first text frame is the pong (a keepalive ping frame may come first).
    let reply = tokio::time::timeout(WAIT, async {
        loop {
            match other.next().await {
                Some(Ok(Message::Text(t))) => break Some(t.to_string()),
                Some(Ok(Message::Ping(_) | Message::Pong(_))) => continue,
                other => break Some(format!("{other:?}")),
            }
        }
    })
    .await?;
    assert!(
        reply.as_deref().is_some_and(|t| t.contains("pong")),
        "another address's ping: {reply:?}"
    );
    Ok(())
}

/// Pongs a flooder gets for its flood: replies come in order, so once a later ping is
/// answered (the budget having refilled), every answer to the flood has come.
async fn pongs_until_recovered(ws: &mut WebSocketStream<TcpStream>) -> anyhow::Result<usize> {
    const LATER: u64 = 1_000_000;
    let mut every = tokio::time::interval(Duration::from_millis(100));
    let mut pongs = 0;
    let recovered = tokio::time::timeout(WAIT, async {
        loop {
            tokio::select! {
                _ = every.tick() => {
                    let ping = ClientMsg::Ping { id: Some(LATER) };
                    ws.send(Message::text(wire::encode_client(&ping))).await?;
                }
                msg = ws.next() => match msg {
                    Some(Ok(Message::Text(t))) => match wire::decode_server(t.as_str())? {
                        ServerMsg::Pong { id: Some(LATER), .. } => return anyhow::Ok(()),
                        ServerMsg::Pong { .. } => pongs += 1,
                        _ => {}
                    },
                    Some(Ok(_)) => {}
                    other => anyhow::bail!("the flooder's socket ended: {other:?}"),
                },
            }
        }
    });
    recovered.await??;
    Ok(pongs)
}
