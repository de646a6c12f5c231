//! The accept loop. Each connection takes a place in [`Peers`] or is refused with a 503;
//! hyper serves it with a header-read timeout, and a WebSocket upgrade keeps the place until
//! the socket closes. On shutdown the loop stops accepting and asks each connection to end.

use std::net::{IpAddr, SocketAddr};
use std::pin::{Pin, pin};
use std::sync::Arc;
use std::task::{Context, Poll};
use std::time::Duration;

use axum::Router;
use axum::http::{Request, StatusCode, header};
use axum::response::{IntoResponse, Response};
use hyper::body::Incoming;
use hyper::server::conn::http1;
use hyper::service::service_fn;
use hyper_util::rt::{TokioIo, TokioTimer};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::watch;
use tokio::task::JoinSet;
use tower::ServiceExt;

use crate::peers::{Admitted, Peers, Refusal};
use crate::tasks::Tasks;

/// The address a request is from (see [`Peers::client_ip`]), in every request's extensions.
#[derive(Debug, Clone, Copy)]
pub struct ClientAddr(pub IpAddr);

/// Refusals being answered at once; past this a refused connection is just closed.
const MAX_REFUSING: usize = 64;
/// Time a refused client has to send its request and read the 503.
const REFUSAL_TIMEOUT: Duration = Duration::from_secs(1);
/// Pause after a failed accept (out of descriptors), so the loop does not spin.
const ACCEPT_BACKOFF: Duration = Duration::from_millis(50);

/// The listening socket and what it needs to admit and serve connections.
pub struct Listener {
    tcp: TcpListener,
    peers: Arc<Peers>,
    header_timeout: Duration,
    refusing: Tasks,
}

/// Connections still open when the loop stopped; each has been asked to end.
pub struct Open(JoinSet<()>);

impl Open {
    /// Wait until every connection has ended (a WebSocket counts as ended once upgraded).
    pub async fn closed(&mut self) {
        while self.0.join_next().await.is_some() {}
    }
}

impl Listener {
    /// Serve on `tcp`, admitting through `peers`.
    pub fn new(tcp: TcpListener, peers: Arc<Peers>, header_timeout: Duration) -> Self {
        Listener {
            tcp,
            peers,
            header_timeout,
            refusing: Tasks::default(),
        }
    }

    /// Accept and serve until `shutdown` resolves. Dropping the result aborts what is left.
    pub async fn serve(self, app: Router, shutdown: impl Future<Output = ()>) -> Open {
        let (stop, stopped) = watch::channel(false);
        let mut conns = JoinSet::new();
        let mut shutdown = pin!(shutdown);
        loop {
            tokio::select! {
                _ = &mut shutdown => break,
                Some(_) = conns.join_next(), if !conns.is_empty() => {}
                accepted = self.tcp.accept() => match accepted {
                    Ok((stream, addr)) => {
                        self.handle(stream, addr, &app, &mut conns, stopped.clone());
                    }
                    Err(e) => {
                        tracing::warn!(err = %e, "accept failed");
                        tokio::time::sleep(ACCEPT_BACKOFF).await;
                    }
                },
            }
        }
        stop.send_replace(true);
        Open(conns)
    }

    fn handle(
        &self,
        stream: TcpStream,
        addr: SocketAddr,
        app: &Router,
        conns: &mut JoinSet<()>,
        stopped: watch::Receiver<bool>,
    ) {
        let admitted = match self.peers.admit(addr.ip()) {
            Ok(admitted) => admitted,
            Err(why) => {
                tracing::debug!(%addr, code = why.code(), "connection refused");
                if self.refusing.running() < MAX_REFUSING {
                    conns.spawn(refuse(stream, why, self.refusing.enter()));
                }
                return;
            }
        };
        let _ = stream.set_nodelay(true);
        let peers = self.peers.clone();
        let app = app.clone();
        let service = service_fn(move |mut req: Request<Incoming>| {
            let client = peers.client_ip(addr.ip(), req.headers());
            req.extensions_mut().insert(ClientAddr(client));
            app.clone().oneshot(req)
        });
        let io = Counted {
            io: TokioIo::new(stream),
            _admitted: admitted,
        };
        let mut builder = http1::Builder::new();
        builder
            .timer(TokioTimer::new())
            .header_read_timeout(self.header_timeout);
        conns.spawn(async move {
            let conn = builder.serve_connection(io, service).with_upgrades();
            let mut conn = pin!(conn);
            let mut stopped = stopped;
            tokio::select! {
                _ = conn.as_mut() => return,
                _ = stopped.wait_for(|s| *s) => {}
            }
            conn.as_mut().graceful_shutdown();
            let _ = conn.await;
        });
    }
}

/// Answer a refused connection with 503 and a stable code, then close it.
async fn refuse(stream: TcpStream, why: Refusal, _refusing: crate::tasks::Running) {
    let service = service_fn(move |_req: Request<Incoming>| async move {
        Ok::<_, std::convert::Infallible>(refusal(why))
    });
    let mut builder = http1::Builder::new();
    builder
        .keep_alive(false)
        .timer(TokioTimer::new())
        .header_read_timeout(REFUSAL_TIMEOUT);
    let conn = builder.serve_connection(TokioIo::new(stream), service);
    let _ = tokio::time::timeout(REFUSAL_TIMEOUT * 2, conn).await;
}

fn refusal(why: Refusal) -> Response {
    let body = serde_json::json!({
        "error": { "code": why.code(), "message": "too many connections; try again later" }
    });
    let mut resp = (StatusCode::SERVICE_UNAVAILABLE, axum::Json(body)).into_response();
    resp.headers_mut()
        .insert(header::RETRY_AFTER, header::HeaderValue::from_static("5"));
    resp
}

/// A connection's socket with its place in [`Peers`]: the place is freed when the socket
/// closes, after an upgrade too.
struct Counted {
    io: TokioIo<TcpStream>,
    _admitted: Admitted,
}

impl hyper::rt::Read for Counted {
    fn poll_read(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: hyper::rt::ReadBufCursor<'_>,
    ) -> Poll<std::io::Result<()>> {
        Pin::new(&mut self.get_mut().io).poll_read(cx, buf)
    }
}

impl hyper::rt::Write for Counted {
    fn poll_write(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<std::io::Result<usize>> {
        Pin::new(&mut self.get_mut().io).poll_write(cx, buf)
    }

    fn poll_flush(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<std::io::Result<()>> {
        Pin::new(&mut self.get_mut().io).poll_flush(cx)
    }

    fn poll_shutdown(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<std::io::Result<()>> {
        Pin::new(&mut self.get_mut().io).poll_shutdown(cx)
    }

    fn is_write_vectored(&self) -> bool {
        self.io.is_write_vectored()
    }

    fn poll_write_vectored(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        bufs: &[std::io::IoSlice<'_>],
    ) -> Poll<std::io::Result<usize>> {
        Pin::new(&mut self.get_mut().io).poll_write_vectored(cx, bufs)
    }
}
