//! The server's address from `--server`, and the two admin calls the generator makes
//! (`POST /api/rooms`, `GET /api/admin/media`). HTTP/1.1 by hand over one short-lived
//! connection each: two plain-text requests do not justify an HTTP client crate and its build
//! time on 2 cores.

use std::net::SocketAddr;

use anyhow::{Context, bail};
use serde::Deserialize;
use signaling::stats::DelaySnapshot;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

/// The socket address of `http://HOST:PORT[/]`.
pub async fn resolve(server: &str) -> anyhow::Result<SocketAddr> {
    let Some(rest) = server.strip_prefix("http://") else {
        bail!("--server must be an http:// URL (no TLS), got {server}")
    };
    let host_port = rest.trim_end_matches('/');
    tokio::net::lookup_host(host_port)
        .await
        .with_context(|| format!("resolving {host_port}"))?
        .next()
        .with_context(|| format!("{host_port} has no address"))
}

#[derive(Deserialize)]
struct Created {
    id: String,
    #[serde(default)]
    facilitator_url: Option<String>,
}

/// A room the admin API made.
pub struct Room {
    /// Its id.
    pub id: String,
    /// The secret of its facilitator's invite, if the reply had one.
    pub facilitator: Option<String>,
}

/// Create a room with the admin API.
pub async fn create_room(
    addr: SocketAddr,
    admin_token: &str,
    title: &str,
    capacity: usize,
) -> anyhow::Result<Room> {
    // One seat more: the server reserves one for the facilitator's link it makes with the
    // room, and the generator joins through the open link.
    let body = serde_json::json!({ "title": title, "capacity": capacity + 1 }).to_string();
    let (status, body) = request(addr, admin_token, "POST", "/api/rooms", Some(&body)).await?;
    if status != "201" {
        bail!("creating a room: HTTP {status}: {body}");
    }
    let created: Created =
        serde_json::from_str(&body).with_context(|| format!("unexpected reply: {body}"))?;
    let facilitator = created
        .facilitator_url
        .as_deref()
        .and_then(|url| url.split_once("#invite="))
        .map(|(_, secret)| secret.to_string());
    Ok(Room {
        id: created.id,
        facilitator,
    })
}

#[derive(Deserialize)]
struct MediaReport {
    forward_delay: Option<DelaySnapshot>,
}

/// The server's forwarding delays since it started (`GET /api/admin/media`); `None` if its
/// media plane does not measure them.
pub async fn forward_delay(
    addr: SocketAddr,
    admin_token: &str,
) -> anyhow::Result<Option<DelaySnapshot>> {
    let (status, body) = request(addr, admin_token, "GET", "/api/admin/media", None).await?;
    if status != "200" {
        bail!("reading media statistics: HTTP {status}: {body}");
    }
    let report: MediaReport =
        serde_json::from_str(&body).with_context(|| format!("unexpected reply: {body}"))?;
    Ok(report.forward_delay)
}

/// One request with the admin token; the response's status code and body.
async fn request(
    addr: SocketAddr,
    admin_token: &str,
    method: &str,
    path: &str,
    body: Option<&str>,
) -> anyhow::Result<(String, String)> {
    // The rest of the head, the blank line, and the body if there is one.
    let rest = match body {
        Some(body) => format!(
            "Content-Type: application/json\r\nContent-Length: {}\r\n\r\n{body}",
            body.len()
        ),
        None => "\r\n".to_string(),
    };
    let request = format!(
        "{method} {path} HTTP/1.1\r\nHost: {addr}\r\nAuthorization: Bearer {admin_token}\r\n\
         Connection: close\r\n{rest}"
    );
    let mut stream = TcpStream::connect(addr)
        .await
        .with_context(|| format!("connecting to {addr}"))?;
    stream.write_all(request.as_bytes()).await?;
    // `Connection: close`: the server ends the stream after its response.
    let mut response = Vec::new();
    stream.read_to_end(&mut response).await?;
    let response = String::from_utf8_lossy(&response);
    let (head, body) = response
        .split_once("\r\n\r\n")
        .context("truncated HTTP response")?;
    let status = head.split_whitespace().nth(1).unwrap_or("?").to_string();
    Ok((status, body.to_string()))
}
