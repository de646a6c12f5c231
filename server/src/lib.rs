//! The `roundtable` server: HTTP, WebSocket signaling, the media plane, the store and the CLI.
//! Every IO edge lives here; the rules live in the `signaling` crate.

pub mod config;
pub mod http;
pub mod media;
pub mod room;
pub mod store;
pub mod ws;

use std::net::SocketAddr;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};

use anyhow::Context;
use rand::Rng;
use sha2::{Digest, Sha256};
use tokio::net::TcpListener;

use crate::config::Config;
use crate::config::MediaPlaneKind;
use crate::media::MediaPlane;
use crate::media::peer::PeerNet;
use crate::media::rtc_plane::RtcPlane;
use crate::media::webrtc_plane::WebrtcPlane;
use crate::room::Registry;
use crate::store::{RoomRecord, Store};

/// Capacity of a room when none is given.
pub const DEFAULT_CAPACITY: u32 = 50;
/// The largest capacity a room may have.
pub const MAX_CAPACITY: u32 = 1000;

const ADMIN_TOKEN_KEY: &str = "admin_token_sha256";
const DEMO_ROOM_KEY: &str = "demo_room_id";

/// Shared, cheap-to-clone server state.
#[derive(Clone)]
pub struct AppState {
    inner: Arc<Inner>,
}

/// What [`AppState`] shares; fields are the crate's own.
pub struct Inner {
    pub(crate) store: Arc<dyn Store>,
    pub(crate) registry: Arc<Registry>,
    admin_token_hash: [u8; 32],
    public_url: String,
    next_conn: AtomicU64,
    pub(crate) keepalive: ws::Keepalive,
    /// Flips to `true` when the server stops; every WebSocket task watches it.
    stopping: tokio::sync::watch::Sender<bool>,
}

impl std::ops::Deref for AppState {
    type Target = Inner;
    fn deref(&self) -> &Inner {
        &self.inner
    }
}

impl AppState {
    fn stopping(&self) -> tokio::sync::watch::Receiver<bool> {
        self.stopping.subscribe()
    }

    fn next_conn_id(&self) -> u64 {
        self.next_conn.fetch_add(1, Ordering::Relaxed)
    }

    /// The store, for tests that seed data.
    pub fn store(&self) -> &Arc<dyn Store> {
        &self.store
    }

    /// Participants in a room right now (0 if it is not running).
    pub fn registry_occupancy(&self, room_id: &str) -> usize {
        self.registry.running(room_id).map_or(0, |h| h.occupancy())
    }

    /// Whether a room's task is running on this node.
    pub fn room_is_running(&self, room_id: &str) -> bool {
        self.registry.running(room_id).is_some()
    }

    /// Peer connections and tasks the media plane holds now.
    pub fn media_stats(&self) -> media::PlaneStats {
        self.registry.plane().stats()
    }

    /// The media plane's one UDP address, if it has one.
    pub fn media_addr(&self) -> Option<std::net::SocketAddr> {
        self.registry.plane().media_addr()
    }

    /// The join link of a room.
    pub fn join_url(&self, room_id: &str) -> String {
        format!("{}/r/{room_id}", self.public_url)
    }

    fn is_admin(&self, token: &str) -> bool {
        let hash: [u8; 32] = Sha256::digest(token.as_bytes()).into();
        // Compare without an early exit, so timing says nothing about the stored hash.
        hash.iter()
            .zip(self.admin_token_hash.iter())
            .fold(0u8, |acc, (a, b)| acc | (a ^ b))
            == 0
    }
}

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
        let (admin_token_hash, new_admin_token) = admin_token(store.as_ref(), config).await?;
        let demo_room = demo_room(store.as_ref()).await?;
        let net = PeerNet {
            bind_ip: config.media_bind_ip,
            advertise_ip: Some(config.media_ip),
            ice_servers: config
                .ice_servers
                .iter()
                .map(|s| webrtc::peer_connection::RTCIceServer {
                    urls: s.urls.clone(),
                    username: s.username.clone().unwrap_or_default(),
                    credential: s.credential.clone().unwrap_or_default(),
                })
                .collect(),
        };
        let plane: Arc<dyn MediaPlane> = match config.media_plane {
            MediaPlaneKind::Rtc => Arc::new(
                RtcPlane::start(net, config.media_port)
                    .await
                    .with_context(|| {
                        format!(
                            "binding the media socket {}:{}",
                            config.media_bind_ip, config.media_port
                        )
                    })?,
            ),
            MediaPlaneKind::Webrtc => Arc::new(WebrtcPlane::new(net)),
        };
        let registry = Registry::new(
            store.clone(),
            plane,
            config.ice_servers.clone(),
            config.room_idle_grace,
        );
        let inner = Inner {
            store,
            registry,
            admin_token_hash,
            public_url,
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
        axum::serve(self.listener, app)
            .with_graceful_shutdown(shutdown)
            .await?;
        Ok(())
    }
}

async fn admin_token(
    store: &dyn Store,
    config: &Config,
) -> anyhow::Result<([u8; 32], Option<String>)> {
    if let Some(token) = &config.admin_token {
        return Ok((Sha256::digest(token.as_bytes()).into(), None));
    }
    if let Some(stored) = store.get_setting(ADMIN_TOKEN_KEY).await? {
        let bytes = hex::decode(stored.trim()).context("stored admin token hash is not hex")?;
        let hash: [u8; 32] = bytes
            .try_into()
            .map_err(|_| anyhow::anyhow!("stored admin token hash has the wrong length"))?;
        return Ok((hash, None));
    }
    let token = random_id(32);
    let hash: [u8; 32] = Sha256::digest(token.as_bytes()).into();
    store
        .set_setting(ADMIN_TOKEN_KEY, &hex::encode(hash))
        .await?;
    Ok((hash, Some(token)))
}

async fn demo_room(store: &dyn Store) -> anyhow::Result<String> {
    if let Some(id) = store.get_setting(DEMO_ROOM_KEY).await?
        && store.get_room(&id).await?.is_some()
    {
        return Ok(id);
    }
    let room = new_room("Demo room".into(), DEFAULT_CAPACITY);
    store.create_room(&room).await?;
    store.set_setting(DEMO_ROOM_KEY, &room.id).await?;
    Ok(room.id)
}

/// A fresh room record with a random id.
pub fn new_room(title: String, capacity: u32) -> RoomRecord {
    let created_at = room::now().unix_ms;
    RoomRecord {
        id: random_id(10),
        title,
        capacity,
        created_at,
    }
}

/// A random id of URL-safe letters and digits.
pub fn random_id(len: usize) -> String {
    const ALPHABET: &[u8] = b"abcdefghijkmnopqrstuvwxyzABCDEFGHJKLMNPQRSTUVWXYZ23456789";
    let mut rng = rand::rng();
    (0..len)
        .map(|_| ALPHABET[rng.random_range(0..ALPHABET.len())] as char)
        .collect()
}
