//! The server's address from `--server`, and the one admin call the generator makes
//! (`POST /api/rooms`). HTTP/1.1 by hand over one short-lived connection: a single plain-text
//! request does not justify an HTTP client crate and its build time on 2 cores.

use std::net::SocketAddr;

use anyhow::{Context, bail};
use serde::Deserialize;
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
}

/// Create a room with the admin API; returns its id.
pub async fn create_room(
    addr: SocketAddr,
    admin_token: &str,
    title: &str,
    capacity: usize,
) -> anyhow::Result<String> {
    let body = serde_json::json!({ "title": title, "capacity": capacity }).to_string();
    let request = format!(
        "POST /api/rooms HTTP/1.1\r\nHost: {addr}\r\nAuthorization: Bearer {admin_token}\r\n\
         Content-Type: application/json\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{body}",
        body.len()
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
    let status = head.split_whitespace().nth(1).unwrap_or("?");
    if status != "201" {
        bail!("creating a room: HTTP {status}: {body}");
    }
    let created: Created =
        serde_json::from_str(body).with_context(|| format!("unexpected reply: {body}"))?;
    Ok(created.id)
}
