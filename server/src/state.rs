//! The state every HTTP handler and WebSocket task shares: the store, the running rooms and
//! the media engine (through the registry), the admin token's hash, the origins allowed to
//! open the WebSocket, and the metrics.

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};

use sha2::{Digest, Sha256};

use crate::media::{DelaySnapshot, MediaStats};
use crate::metrics::{Metrics, Scrape};
use crate::origin::AllowedOrigins;
use crate::room::Registry;
use crate::store::Store;

/// Shared, cheap-to-clone server state.
#[derive(Clone)]
pub struct AppState {
    pub(crate) inner: Arc<Inner>,
}

/// What [`AppState`] shares; fields are the crate's own.
pub struct Inner {
    pub(crate) store: Arc<dyn Store>,
    pub(crate) registry: Arc<Registry>,
    pub(crate) admin_token_hash: [u8; 32],
    /// Signs links to recordings; drawn at start, so a restart ends every link.
    pub(crate) link_key: [u8; 32],
    pub(crate) public_url: String,
    pub(crate) origins: AllowedOrigins,
    pub(crate) metrics: Arc<Metrics>,
    pub(crate) next_conn: AtomicU64,
    pub(crate) keepalive: crate::config::Keepalive,
    /// Flips to `true` when the server stops; every WebSocket task watches it.
    pub(crate) stopping: tokio::sync::watch::Sender<bool>,
    pub(crate) limits: crate::limits::Limits,
    /// Open connections, by address.
    pub(crate) peers: Arc<crate::peers::Peers>,
    /// Running WebSocket tasks.
    pub(crate) websockets: crate::tasks::Tasks,
    /// Bytes queued for every WebSocket.
    pub(crate) queued: Arc<crate::outbox::Gauge>,
}

impl std::ops::Deref for AppState {
    type Target = Inner;
    fn deref(&self) -> &Inner {
        &self.inner
    }
}

impl AppState {
    pub(crate) fn stopping(&self) -> tokio::sync::watch::Receiver<bool> {
        self.stopping.subscribe()
    }

    pub(crate) fn next_conn_id(&self) -> u64 {
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

    /// What the media engine holds now and has done.
    pub fn media_stats(&self) -> MediaStats {
        self.registry.media().stats()
    }

    /// How long forwarded packets stayed in the server, since it started.
    pub fn forward_delay(&self) -> DelaySnapshot {
        self.registry.media().forward_delay()
    }

    /// The recorder (its folder, and the files it finished).
    pub fn recorder(&self) -> &crate::recorder::Recorder {
        self.registry.recorder()
    }

    /// The media engine's one UDP address.
    pub fn media_addr(&self) -> std::net::SocketAddr {
        self.registry.media().media_addr()
    }

    /// Open connections (HTTP and WebSocket) now.
    pub fn open_connections(&self) -> usize {
        self.peers.open()
    }

    /// Running WebSocket tasks now.
    pub fn open_websockets(&self) -> usize {
        self.websockets.running()
    }

    /// Bytes queued for every WebSocket together: now, and the most at once since start.
    pub fn queued_bytes(&self) -> (usize, usize) {
        (self.queued.now(), self.queued.peak())
    }

    /// Commands a running room's task has taken (0 if it is not running).
    pub fn room_commands(&self, room_id: &str) -> u64 {
        self.registry.running(room_id).map_or(0, |h| h.commands())
    }

    /// The join link of a room.
    pub fn join_url(&self, room_id: &str) -> String {
        format!("{}/r/{room_id}", self.public_url)
    }

    /// The metrics' text, with what the server holds now.
    pub(crate) fn render_metrics(&self) -> String {
        let (rooms, participants) = self.registry.load();
        self.metrics.render(&Scrape {
            rooms,
            participants,
            media: self.media_stats(),
            delay: self.forward_delay(),
        })
    }

    /// Whether `token` is the admin token, byte for byte.
    pub(crate) fn is_admin(&self, token: &str) -> bool {
        let hash: [u8; 32] = Sha256::digest(token.as_bytes()).into();
        // Compare without an early exit, so timing says nothing about the stored hash.
        hash.iter()
            .zip(self.admin_token_hash.iter())
            .fold(0u8, |acc, (a, b)| acc | (a ^ b))
            == 0
    }
}
