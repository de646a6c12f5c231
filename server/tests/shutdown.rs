//! The real binary under a service manager: SIGTERM or SIGINT closes every WebSocket with
//! 1001 `server_shutdown`, keeps the chat it acknowledged, and exits within its shutdown
//! timeout although a request is half-sent (its header timeout is far longer).

use std::process::Stdio;
use std::time::Duration;

use futures_util::{SinkExt, StreamExt};
use signaling::wire::{self, ClientMsg, ServerMsg};
use tokio::io::{AsyncBufReadExt, AsyncReadExt, AsyncWriteExt, BufReader};
use tokio::net::TcpStream;
use tokio::process::{Child, Command};
use tokio_tungstenite::tungstenite::Message;
use tokio_tungstenite::tungstenite::protocol::frame::coding::CloseCode;
use tokio_tungstenite::{MaybeTlsStream, WebSocketStream};

/// Longest wait for anything here; the server's own bounds are far shorter.
const WAIT: Duration = Duration::from_secs(30);

type Ws = WebSocketStream<MaybeTlsStream<TcpStream>>;

struct Running {
    child: Child,
    addr: String,
    room: String,
}

/// Start `roundtable serve` on `data`; its address and demo room come from stdout.
async fn start(data: &std::path::Path) -> Running {
    let mut child = Command::new(env!("CARGO_BIN_EXE_roundtable"))
        .env("ROUNDTABLE_BIND", "127.0.0.1:0")
        .env("ROUNDTABLE_DATA_DIR", data)
        .env("ROUNDTABLE_MEDIA_PORT", "0")
        .env("ROUNDTABLE_SHUTDOWN_TIMEOUT", "1")
        .env("ROUNDTABLE_HEADER_TIMEOUT", "600")
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .kill_on_drop(true)
        .spawn()
        .expect("the binary starts");
    let mut lines = BufReader::new(child.stdout.take().unwrap()).lines();
    let mut addr = None;
    let room = loop {
        let line = tokio::time::timeout(WAIT, lines.next_line()).await;
        let line = line.expect("start-up output").unwrap().expect("a line");
        if let Some(a) = line.strip_prefix("listening on http://") {
            addr = Some(a.to_string());
        }
        if let Some(link) = line.strip_prefix("demo room: ") {
            break link.rsplit('/').next().unwrap().to_string();
        }
    };
    Running {
        child,
        addr: addr.expect("the address line"),
        room,
    }
}

async fn ws(addr: &str) -> Ws {
    tokio_tungstenite::connect_async(format!("ws://{addr}/ws"))
        .await
        .expect("the WebSocket opens")
        .0
}

async fn send(ws: &mut Ws, msg: &ClientMsg) {
    ws.send(Message::text(wire::encode_client(msg)))
        .await
        .unwrap();
}

async fn recv_until(ws: &mut Ws, want: impl Fn(&ServerMsg) -> bool) -> ServerMsg {
    loop {
        let frame = tokio::time::timeout(WAIT, ws.next())
            .await
            .expect("a message");
        if let Some(Ok(Message::Text(t))) = frame {
            let msg = wire::decode_server(t.as_str()).unwrap();
            if want(&msg) {
                return msg;
            }
        }
    }
}

async fn join(addr: &str, room: &str, name: &str) -> (Ws, ServerMsg) {
    let mut ws = ws(addr).await;
    let join = ClientMsg::Join {
        v: wire::PROTOCOL_VERSION,
        room: room.into(),
        name: name.into(),
        invite: None,
        consent: false,
    };
    send(&mut ws, &join).await;
    let joined = recv_until(&mut ws, |m| matches!(m, ServerMsg::Joined { .. })).await;
    (ws, joined)
}

async fn close_of(ws: &mut Ws) -> Option<(CloseCode, String)> {
    loop {
        let frame = tokio::time::timeout(WAIT, ws.next()).await;
        match frame.expect("the server closes the socket") {
            Some(Ok(Message::Close(f))) => return f.map(|f| (f.code, f.reason.to_string())),
            Some(Ok(_)) => continue,
            other => panic!("no close frame: {other:?}"),
        }
    }
}

async fn stops_cleanly_on(signal: libc::c_int) {
    let data = tempfile::tempdir().unwrap();
    let mut server = start(data.path()).await;
    let (addr, room) = (server.addr.clone(), server.room.clone());
    let (mut ann, _) = join(&addr, &room, "Ann").await;
    let (mut bo, _) = join(&addr, &room, "Bo").await;
    let mut lurker = ws(&addr).await;
    let text = "Notes are in the shared folder".to_string();
    send(&mut ann, &ClientMsg::Chat { text: text.clone() }).await;
    recv_until(&mut ann, |m| matches!(m, ServerMsg::Chat { .. })).await;
    let mut half_sent = TcpStream::connect(&addr).await.unwrap();
    half_sent
        .write_all(b"GET / HTTP/1.1\r\nHost: slow\r\n")
        .await
        .unwrap();

    let pid = server.child.id().expect("running") as libc::pid_t;
    // SAFETY: kill only sends a signal to the child we started.
    assert_eq!(unsafe { libc::kill(pid, signal) }, 0);

    let going_away = Some((CloseCode::Away, "server_shutdown".to_string()));
    for ws in [&mut ann, &mut bo, &mut lurker] {
        assert_eq!(close_of(ws).await, going_away);
    }
    let status = tokio::time::timeout(WAIT, server.child.wait()).await;
    let status = status.expect("the process exits").unwrap();
    assert!(
        status.success(),
        "it exits by itself, not by the signal: {status}"
    );
    let mut rest = Vec::new();
    let ended = tokio::time::timeout(WAIT, half_sent.read_to_end(&mut rest)).await;
    assert!(
        ended.is_ok(),
        "the half-sent request did not hold the process"
    );

    // The acknowledged chat was stored before the process went.
    let mut again = start(data.path()).await;
    let (_, joined) = join(&again.addr, &room, "Cy").await;
    let ServerMsg::Joined { chat, .. } = joined else {
        unreachable!()
    };
    assert!(chat.iter().any(|m| m.text == text), "history: {chat:?}");
    again.child.kill().await.unwrap();
}

#[tokio::test]
async fn sigterm_closes_websockets_with_1001_and_exits_within_the_bound() {
    stops_cleanly_on(libc::SIGTERM).await;
}

#[tokio::test]
async fn sigint_does_the_same() {
    stops_cleanly_on(libc::SIGINT).await;
}
