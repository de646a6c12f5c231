//! The `roundtable` server: HTTP, WebSocket signaling, the media engine, the store and the
//! CLI. Every IO edge lives here; the rules live in the `signaling` crate.

mod admin_token;
pub mod agendas;
pub mod config;
pub mod http;
pub mod ids;
pub mod invites;
pub mod limits;
pub mod listener;
pub mod media;
pub mod metrics;
pub mod origin;
pub mod outbox;
pub mod peers;
pub mod recorder;
pub mod recordings;
pub mod room;
pub mod rooms;
pub mod state;
pub mod store;
pub mod tasks;
pub mod ws;

use std::net::SocketAddr;
use std::sync::Arc;
use std::sync::atomic::AtomicU64;
use std::time::Duration;

use anyhow::Context;
use roundtable_peer::PeerNet;
use tokio::net::TcpListener;

use crate::config::Config;
use crate::listener::{Listener, Open};
use crate::media::Media;
use crate::room::Registry;
use crate::state::Inner;

pub use rooms::new_room;
pub use state::AppState;

/// What start-up prints for people.
#[derive(Debug, Clone)]
pub struct Started {
    /// The bound address.
    pub addr: SocketAddr,
    /// The admin token, if it was generated just now (first start).
    pub new_admin_token: Option<String>,
    /// The demo room's join link.
    pub demo_link: String,
    /// The demo room's id.
    pub demo_room: String,
}

/// A running server, for `main` and the tests.
pub struct Server {
    /// What start-up found.
    pub started: Started,
    state: AppState,
    listener: TcpListener,
}

impl Server {
    /// Open the store, bind the listener and prepare the first-start data.
    pub async fn bind(config: &Config) -> anyhow::Result<Server> {
        let open_files = peers::raise_open_file_limit();
        let store = store::open(&config.database_url).await.with_context(|| {
            format!("opening database {}", store::redacted(&config.database_url))
        })?;
        let listener = TcpListener::bind(config.bind)
            .await
            .with_context(|| format!("binding {}", config.bind))?;
        let addr = listener.local_addr()?;
        let public_url = config
            .public_url
            .clone()
            .unwrap_or_else(|| format!("http://{addr}"));
        let public_url = public_url.trim_end_matches('/').to_string();
        let origins = origin::AllowedOrigins::new(&public_url, &config.allowed_origins)?;
        let (admin_token_hash, new_admin_token) =
            admin_token::admin_token(store.as_ref(), config).await?;
        let demo_room = rooms::demo_room(store.as_ref()).await?;
        let net = PeerNet {
            bind_ip: config.media_bind_ip,
            advertise_ip: Some(config.media_ip),
            ice_servers: config
                .ice_servers
                .iter()
                .map(|s| rtc::peer_connection::configuration::RTCIceServer {
                    urls: s.urls.clone(),
                    username: s.username.clone().unwrap_or_default(),
                    credential: s.credential.clone().unwrap_or_default(),
                })
                .collect(),
        };
        let (recorder, tap) = recorder::Recorder::start(config.recordings_dir.clone())
            .with_context(|| {
                format!(
                    "creating the recordings folder {}",
                    config.recordings_dir.display()
                )
            })?;
        // Before any room runs: sessions left without an end were cut off by a crash.
        let cut_off = recorder::finish_cut_off(store.as_ref(), &config.recordings_dir).await?;
        let media = Media::start(net, config.media_port, tap)
            .await
            .with_context(|| {
                format!(
                    "binding the media socket {}:{}",
                    config.media_bind_ip, config.media_port
                )
            })?;
        let metrics = Arc::new(metrics::Metrics::new());
        let registry = Registry::new(
            store.clone(),
            Arc::new(media),
            Arc::new(recorder),
            config.ice_servers.clone(),
            config.room_idle_grace,
            config.chat_burst,
            metrics.clone(),
        );
        registry.finalize_sessions(cut_off);
        let inner = Inner {
            store,
            registry,
            admin_token_hash,
            link_key: rand::random(),
            public_url,
            origins,
            metrics,
            next_conn: AtomicU64::new(1),
            stopping: tokio::sync::watch::channel(false).0,
            keepalive: config.keepalive,
            limits: config.limits.clone(),
            peers: peers::Peers::new(&config.limits, open_files),
            websockets: tasks::Tasks::default(),
            queued: Default::default(),
        };
        tracing::info!(
            open_files,
            max_connections = inner.peers.max_total(),
            "connection cap"
        );
        let state = AppState {
            inner: Arc::new(inner),
        };
        let demo_link = state.join_url(&demo_room);
        Ok(Server {
            started: Started {
                addr,
                new_admin_token,
                demo_link,
                demo_room,
            },
            state,
            listener,
        })
    }

    /// The shared state (the store, for tests that seed data).
    pub fn state(&self) -> AppState {
        self.state.clone()
    }

    /// Serve until `shutdown` resolves, then close everything within the shutdown timeout.
    pub async fn run(
        self,
        shutdown: impl Future<Output = ()> + Send + 'static,
    ) -> anyhow::Result<()> {
        let state = self.state;
        let limits = &state.limits;
        let listener = Listener::new(self.listener, state.peers.clone(), limits.header_timeout);
        let open = listener.serve(http::app(state.clone()), shutdown).await;
        wind_down(&state, open, limits.shutdown_timeout).await;
        Ok(())
    }
}

/// Close every WebSocket (1001 `server_shutdown`), let each room take what it has queued and
/// store its chat, and wait for all of it, but no longer than `bound`: a half-sent request
/// or a stalled client does not hold the process.
async fn wind_down(state: &AppState, mut open: Open, bound: Duration) {
    tracing::info!("stopping");
    state.stopping.send_replace(true);
    state.registry.stop();
    let all = async {
        open.closed().await;
        state.websockets.idle().await;
        state.registry.stopped().await;
    };
    if tokio::time::timeout(bound, all).await.is_err() {
        tracing::warn!(
            ?bound,
            "stopping: gave up waiting for connections and rooms"
        );
    }
}
