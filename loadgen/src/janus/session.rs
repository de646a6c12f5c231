//! One Janus session over one WebSocket: requests matched to replies by transaction, news
//! routed to the handle it is about, and a keep-alive every 25 s (Janus drops sessions idle for
//! 60 s).

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use anyhow::{Context, bail};
use futures_util::{SinkExt, StreamExt};
use serde_json::Value;
use tokio::sync::mpsc;
use tokio::task::JoinHandle;
use tokio_tungstenite::tungstenite::Message;
use tokio_tungstenite::tungstenite::client::IntoClientRequest;
use tokio_tungstenite::tungstenite::http::HeaderValue;

use super::proto::{Incoming, Jsep, Request, SUBPROTOCOL, Transactions, VIDEOROOM};
use crate::client::{WAIT, ws};

const KEEPALIVE: Duration = Duration::from_secs(25);

type Routes = Arc<Mutex<HashMap<u64, mpsc::UnboundedSender<Incoming>>>>;

/// A live session. Dropping it stops its tasks and closes the socket.
pub struct Session {
    requester: Requester,
    routes: Routes,
    tasks: Vec<JoinHandle<()>>,
}

/// Sends requests on a session and awaits their replies; cheap to clone into tasks and event
/// handlers.
#[derive(Clone)]
pub struct Requester {
    session: u64,
    out: mpsc::UnboundedSender<String>,
    transactions: Arc<Mutex<Transactions>>,
}

/// A handle attached to the videoroom plugin.
pub struct Handle {
    /// Janus's id for it.
    pub id: u64,
    /// Events about it that answer no request of ours.
    pub news: mpsc::UnboundedReceiver<Incoming>,
}

impl Session {
    /// Open a WebSocket to `url` and create a session on it.
    pub async fn connect(url: &str) -> anyhow::Result<Session> {
        let mut request = url.into_client_request()?;
        request.headers_mut().insert(
            "Sec-WebSocket-Protocol",
            HeaderValue::from_static(SUBPROTOCOL),
        );
        let (socket, _) = tokio::time::timeout(
            WAIT,
            tokio_tungstenite::connect_async_with_config(request, Some(ws::config()), false),
        )
        .await
        .context("connecting to Janus timed out")?
        .with_context(|| format!("connecting to {url}"))?;
        let (mut sink, mut stream) = socket.split();
        let (out, mut out_rx) = mpsc::unbounded_channel::<String>();
        let transactions = Arc::new(Mutex::new(Transactions::default()));
        let routes: Routes = Arc::default();
        let writer = tokio::spawn(async move {
            while let Some(text) = out_rx.recv().await {
                if sink.send(Message::text(text)).await.is_err() {
                    break;
                }
            }
            let _ = sink.close().await;
        });
        let (t, r) = (transactions.clone(), routes.clone());
        let reader = tokio::spawn(async move {
            while let Some(Ok(frame)) = stream.next().await {
                let Message::Text(text) = frame else { continue };
                let Ok(incoming) = super::proto::parse(text.as_str()) else {
                    continue;
                };
                let Some(news) = t.lock().unwrap().deliver(incoming) else {
                    continue;
                };
                if let Some(route) = news
                    .sender()
                    .and_then(|s| r.lock().unwrap().get(&s).cloned())
                {
                    let _ = route.send(news);
                }
            }
            // Nobody will answer now: fail every waiting request at once.
            t.lock().unwrap().abandon();
        });
        let mut session = Session {
            requester: Requester {
                session: 0,
                out,
                transactions,
            },
            routes,
            tasks: vec![writer, reader],
        };
        let created = session.requester.request(Request::Create).await?;
        let Incoming::Success { id: Some(id), .. } = created else {
            bail!("create: unexpected reply {created:?}")
        };
        session.requester.session = id;
        let requester = session.requester();
        session.tasks.push(tokio::spawn(async move {
            let mut tick = tokio::time::interval(KEEPALIVE);
            tick.tick().await;
            while !requester.out.is_closed() {
                tick.tick().await;
                requester.send(Request::Keepalive { session: id });
            }
        }));
        Ok(session)
    }

    /// Janus's id for this session.
    pub fn id(&self) -> u64 {
        self.requester.session
    }

    /// A requester on this session.
    pub fn requester(&self) -> Requester {
        self.requester.clone()
    }

    /// Attach a videoroom handle.
    pub async fn attach(&self) -> anyhow::Result<Handle> {
        let reply = self
            .requester
            .request(Request::Attach {
                session: self.id(),
                plugin: VIDEOROOM,
            })
            .await?;
        let Incoming::Success { id: Some(id), .. } = reply else {
            bail!("attach: unexpected reply {reply:?}")
        };
        let (tx, news) = mpsc::unbounded_channel();
        self.routes.lock().unwrap().insert(id, tx);
        Ok(Handle { id, news })
    }

    /// Destroy the session on Janus (best effort) and stop its tasks.
    pub async fn close(self) {
        let _ = tokio::time::timeout(
            Duration::from_secs(2),
            self.requester
                .request(Request::Destroy { session: self.id() }),
        )
        .await;
    }
}

impl Drop for Session {
    fn drop(&mut self) {
        for task in &self.tasks {
            task.abort();
        }
    }
}

impl Requester {
    /// Send `request` and wait for its final reply (errors, including the videoroom's, are
    /// `Err`).
    pub async fn request(&self, request: Request) -> anyhow::Result<Incoming> {
        let (transaction, reply) = self.transactions.lock().unwrap().open(&request);
        self.out
            .send(request.to_json(&transaction))
            .map_err(|_| anyhow::anyhow!("the Janus socket is closed"))?;
        tokio::time::timeout(WAIT, reply)
            .await
            .with_context(|| format!("no reply from Janus to {request:?}"))?
            .context("the Janus socket closed")?
            .into_result()
    }

    /// Send `request`; its reply is dropped (trickled candidates, keep-alives).
    pub fn send(&self, request: Request) {
        let (transaction, _reply) = self.transactions.lock().unwrap().open(&request);
        let _ = self.out.send(request.to_json(&transaction));
    }

    /// A videoroom request on `handle`; returns the plugin's data and Janus's SDP, if any.
    pub async fn message(
        &self,
        handle: u64,
        body: Value,
        jsep: Option<Jsep>,
    ) -> anyhow::Result<(Value, Option<Jsep>)> {
        let reply = self
            .request(Request::Message {
                session: self.session,
                handle,
                body,
                jsep,
            })
            .await?;
        match reply {
            Incoming::Event { data, jsep, .. } => Ok((data, jsep)),
            Incoming::Success {
                plugin: Some(data), ..
            } => Ok((data, None)),
            other => bail!("unexpected reply {other:?}"),
        }
    }

    /// Janus's id for the session.
    pub fn session(&self) -> u64 {
        self.session
    }
}
