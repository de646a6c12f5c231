//! The `roundtable` server: HTTP, WebSocket signaling, the media engine, the store and the
//! CLI. Every IO edge lives here; the rules live in the `signaling` crate.

mod admin_token;
pub mod config;
pub mod http;
pub mod ids;
pub mod media;
pub mod metrics;
pub mod origin;
pub mod room;
pub mod rooms;
pub mod state;
pub mod store;
pub mod ws;

use std::net::SocketAddr;
use std::sync::Arc;
use std::sync::atomic::AtomicU64;

use anyhow::Context;
use axum::serve::ListenerExt;
use roundtable_peer::PeerNet;
use tokio::net::TcpListener;

use crate::config::Config;
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
        let store = store::open(&config.database_url)
            .await
            .with_context(|| format!("opening database {}", config.database_url))?;
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
        let media = Media::start(net, config.media_port)
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
            config.ice_servers.clone(),
            config.room_idle_grace,
            config.chat_burst,
            metrics.clone(),
        );
        let inner = Inner {
            store,
            registry,
            admin_token_hash,
            public_url,
            origins,
            metrics,
            next_conn: AtomicU64::new(1),
            stopping: tokio::sync::watch::channel(false).0,
            keepalive: config.keepalive,
        };
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

    /// Serve until `shutdown` resolves.
    pub async fn run(
        self,
        shutdown: impl Future<Output = ()> + Send + 'static,
    ) -> anyhow::Result<()> {
        let stopping = self.state.stopping.clone();
        let app = http::app(self.state);
        // Graceful shutdown waits for open connections, and a WebSocket never ends by itself:
        // tell every connection to close (1001) first, or Ctrl-C would wait for the last user.
        let shutdown = async move {
            shutdown.await;
            stopping.send_replace(true);
        };
        // Without TCP_NODELAY a second small frame to a client (a chat echo behind another)
        // waits for the client's delayed ACK, about 40 ms.
        let listener = self.listener.tap_io(|tcp| {
            if let Err(e) = tcp.set_nodelay(true) {
                tracing::debug!(err = %e, "TCP_NODELAY not set");
            }
        });
        axum::serve(listener, app)
            .with_graceful_shutdown(shutdown)
            .await?;
        Ok(())
    }
}
