//! The raw WebSocket side of the protocol: one text frame per message, pings skipped. Bad-input
//! tests use it directly to send what a well-behaved client never would.

use std::net::SocketAddr;

use anyhow::{Context, bail};
use futures_util::{SinkExt, StreamExt};
use signaling::wire::{self, ClientMsg, ServerMsg};
use tokio_tungstenite::tungstenite::Message;
use tokio_tungstenite::tungstenite::protocol::WebSocketConfig;

use super::WAIT;

/// Bytes a WebSocket of the generator reads at a time. tungstenite zero-fills this much of its
/// buffer on every read attempt, even one that finds nothing; a participant's loop polls its
/// WebSocket each time a datagram wakes it, so the default (128 KiB) cost the generator 6 % of
/// its CPU in skillshare40. Larger messages (a 40-track SDP) take several reads.
pub const READ_BUFFER_BYTES: usize = 4 * 1024;

/// The generator's WebSocket settings (ours and Janus's alike).
pub fn config() -> WebSocketConfig {
    WebSocketConfig::default().read_buffer_size(READ_BUFFER_BYTES)
}

/// Open a WebSocket to the server and return raw frame channels (for bad-input tests too).
pub async fn connect(addr: SocketAddr) -> anyhow::Result<Ws> {
    let (socket, _) = tokio_tungstenite::connect_async_with_config(
        format!("ws://{addr}/ws"),
        Some(config()),
        false,
    )
    .await?;
    Ok(Ws { socket })
}

/// Connect and join `room` as `name`: the socket, this participant's id, and the `joined`
/// message.
pub async fn join(
    addr: SocketAddr,
    room: &str,
    name: &str,
) -> anyhow::Result<(Ws, String, ServerMsg)> {
    join_invited(addr, room, name, None).await
}

/// [`join`] with an invite's secret.
pub async fn join_invited(
    addr: SocketAddr,
    room: &str,
    name: &str,
    invite: Option<&str>,
) -> anyhow::Result<(Ws, String, ServerMsg)> {
    join_consenting(addr, room, name, invite, false).await
}

/// [`join_invited`], saying whether this participant agrees to be recorded.
pub async fn join_consenting(
    addr: SocketAddr,
    room: &str,
    name: &str,
    invite: Option<&str>,
    consent: bool,
) -> anyhow::Result<(Ws, String, ServerMsg)> {
    let mut ws = connect(addr).await?;
    let join = ClientMsg::Join {
        v: wire::PROTOCOL_VERSION,
        room: room.into(),
        name: name.into(),
        invite: invite.map(str::to_string),
        consent,
    };
    ws.send(&join).await?;
    let joined = ws
        .recv_until(|m| !matches!(m, ServerMsg::Candidate { .. }))
        .await?;
    let ServerMsg::Joined { you, .. } = &joined else {
        bail!("join refused: {joined:?}")
    };
    Ok((ws, you.clone(), joined))
}

/// A raw protocol connection.
pub struct Ws {
    /// The socket.
    pub socket: tokio_tungstenite::WebSocketStream<
        tokio_tungstenite::MaybeTlsStream<tokio::net::TcpStream>,
    >,
}

impl Ws {
    /// Send a text frame.
    pub async fn send_text(&mut self, text: impl Into<String>) -> anyhow::Result<()> {
        self.socket.send(Message::text(text.into())).await?;
        Ok(())
    }

    /// Send a protocol message.
    pub async fn send(&mut self, msg: &ClientMsg) -> anyhow::Result<()> {
        self.send_text(wire::encode_client(msg)).await
    }

    /// The next protocol message (skipping pings), or an error on close/timeout.
    pub async fn recv(&mut self) -> anyhow::Result<ServerMsg> {
        loop {
            let frame = tokio::time::timeout(WAIT, self.socket.next())
                .await
                .context("no message")?;
            match frame {
                Some(Ok(Message::Text(t))) => return Ok(wire::decode_server(t.as_str())?),
                Some(Ok(Message::Close(f))) => bail!("closed: {f:?}"),
                Some(Ok(_)) => continue,
                Some(Err(e)) => bail!("socket error: {e}"),
                None => bail!("socket ended"),
            }
        }
    }

    /// Skip messages until one matches.
    pub async fn recv_until(
        &mut self,
        mut want: impl FnMut(&ServerMsg) -> bool,
    ) -> anyhow::Result<ServerMsg> {
        loop {
            let msg = self.recv().await?;
            if want(&msg) {
                return Ok(msg);
            }
        }
    }
}
