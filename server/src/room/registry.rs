//! The running rooms of this node: a handle per room, and the shared parts every room task
//! uses (the store, the media engine, the chat writers' health, the tasks shutdown waits for).

use std::collections::HashMap;
use std::sync::atomic::{AtomicU64, AtomicUsize};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use signaling::room::{Room, RoomConfig};
use signaling::wire::{CHAT_HISTORY_LEN, IceServer, RoomInfo};
use tokio::sync::{mpsc, watch};

use super::chat::StorageHealth;
use super::{RoomCmd, RoomHandle, RoomTask};
use crate::media::Media;
use crate::metrics::Metrics;
use crate::recorder::Recorder;
use crate::store::{Store, StoreError};
use crate::tasks::Tasks;

/// Why a room could not be started.
#[derive(Debug, thiserror::Error)]
pub enum OpenError {
    /// No such room.
    #[error("no room with that id")]
    NotFound,
    /// The store failed.
    #[error(transparent)]
    Store(#[from] StoreError),
}

/// The running rooms of this node.
pub struct Registry {
    // A std Mutex is fine: it guards a HashMap of handles, held for a lookup or an insert,
    // never across an await.
    pub(super) rooms: Mutex<HashMap<String, RoomHandle>>,
    pub(super) store: Arc<dyn Store>,
    pub(super) media: Arc<Media>,
    pub(super) recorder: Arc<Recorder>,
    pub(super) ice_servers: Vec<IceServer>,
    pub(super) idle_grace: Duration,
    pub(super) chat_burst: usize,
    pub(super) storage: Arc<StorageHealth>,
    pub(super) metrics: Arc<Metrics>,
    /// Flips to `true` at shutdown: each room finishes what it holds, chat included, and
    /// stops.
    pub(super) stopping: watch::Sender<bool>,
    /// Room tasks and their chat writers.
    pub(super) tasks: Tasks,
}

impl Registry {
    /// A registry that starts rooms from `store` with media from `plane`.
    pub fn new(
        store: Arc<dyn Store>,
        media: Arc<Media>,
        recorder: Arc<Recorder>,
        ice_servers: Vec<IceServer>,
        idle_grace: Duration,
        chat_burst: usize,
        metrics: Arc<Metrics>,
    ) -> Arc<Self> {
        Arc::new(Registry {
            rooms: Mutex::new(HashMap::new()),
            store,
            media,
            recorder,
            ice_servers,
            idle_grace,
            chat_burst,
            storage: Arc::default(),
            metrics,
            stopping: watch::channel(false).0,
            tasks: Tasks::default(),
        })
    }

    /// Stop every room: each takes the commands already queued, then ends; its chat writer
    /// ends once it has stored what it was given.
    pub fn stop(&self) {
        self.stopping.send_replace(true);
    }

    /// Resolves when every room task and chat writer has ended.
    pub async fn stopped(&self) {
        self.tasks.idle().await;
    }

    /// Running rooms, and the participants in them.
    pub fn load(&self) -> (usize, usize) {
        let rooms = self.lock();
        (rooms.len(), rooms.values().map(RoomHandle::occupancy).sum())
    }

    /// The media engine rooms use.
    pub fn media(&self) -> &Media {
        &self.media
    }

    /// Finalize recording sessions (chapters, mixdown) in the background; shutdown waits
    /// for them.
    pub fn finalize_sessions(&self, sessions: Vec<String>) {
        let (store, recorder) = (self.store.clone(), self.recorder.clone());
        self.tasks.spawn(async move {
            for session in sessions {
                let done =
                    crate::recorder::finalize_session(store.as_ref(), recorder.dir(), &session);
                if let Err(e) = done.await {
                    tracing::error!(%session, err = %e, "could not finalize a recording session");
                }
            }
        });
    }

    /// The recorder.
    pub fn recorder(&self) -> &Recorder {
        &self.recorder
    }

    /// The handle of a running room, if it is running.
    pub fn running(&self, id: &str) -> Option<RoomHandle> {
        self.lock().get(id).cloned()
    }

    /// The handle of a room, starting its task if needed.
    pub async fn get_or_start(self: &Arc<Self>, id: &str) -> Result<RoomHandle, OpenError> {
        if let Some(handle) = self.running(id) {
            return Ok(handle);
        }
        let record = self.store.get_room(id).await?.ok_or(OpenError::NotFound)?;
        let snapshot = self
            .store
            .room_snapshot(id, super::now().unix_ms)
            .await?
            .ok_or(OpenError::NotFound)?;
        let agenda = self.store.load_agenda(id).await?;
        let history = self.store.recent_chat(id, CHAT_HISTORY_LEN).await?;
        let mut rooms = self.lock();
        if let Some(handle) = rooms.get(id) {
            return Ok(handle.clone()); // started by someone else meanwhile
        }
        let info = RoomInfo {
            id: record.id.clone(),
            title: record.title,
            capacity: record.policy.capacity,
        };
        let config = RoomConfig {
            info,
            ice_servers: self.ice_servers.clone(),
            history,
            chat_burst: self.chat_burst,
            snapshot,
            agenda,
        };
        let (tx, rx) = mpsc::channel(1024);
        let handle = RoomHandle {
            tx,
            occupancy: Arc::new(AtomicUsize::new(0)),
            commands: Arc::new(AtomicU64::new(0)),
        };
        rooms.insert(record.id.clone(), handle.clone());
        let task = RoomTask::new(Room::new(config), self.clone(), handle.clone());
        self.tasks.spawn(task.run(rx, handle.tx.clone()));
        Ok(handle)
    }

    pub(super) fn remove_if_same(&self, id: &str, tx: &mpsc::Sender<RoomCmd>) {
        let mut rooms = self.lock();
        if rooms.get(id).is_some_and(|h| h.tx.same_channel(tx)) {
            rooms.remove(id);
        }
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, HashMap<String, RoomHandle>> {
        self.rooms.lock().unwrap_or_else(|p| p.into_inner())
    }
}
