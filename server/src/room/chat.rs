//! A room's chat writer: its own task, so the room task never awaits the database. It commits
//! what arrived while the last commit ran, in one transaction, and reports each batch back to
//! the room task, which only then lets the room send the messages.

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};

use signaling::wire::ChatMessage;
use tokio::sync::mpsc;

use crate::metrics::Metrics;
use crate::store::{Store, StoreError};
use crate::tasks::Tasks;

/// Most messages in one transaction. A burst larger than this takes several commits.
pub const MAX_CHAT_BATCH: usize = 256;

/// What became of a batch, every message up to `seq` included.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ChatReport {
    /// Committed.
    Stored {
        /// The batch's last seq.
        seq: i64,
    },
    /// Not committed; the senders get `storage_unavailable`.
    Failed {
        /// The batch's last seq.
        seq: i64,
    },
}

/// Whether chat storage is failing, shared by every room's writer, so the log says so once
/// per outage rather than once per message or per room.
#[derive(Debug, Default)]
pub struct StorageHealth {
    down: AtomicBool,
}

impl StorageHealth {
    fn failed(&self, room: &str, lost: usize, err: &StoreError) {
        if !self.down.swap(true, Ordering::Relaxed) {
            tracing::error!(
                %room,
                "cannot store chat: {err}. Chat messages are refused with storage_unavailable \
                 until the database takes writes again; media is not affected"
            );
        }
        tracing::debug!(%room, lost, err = %err, "chat batch not stored");
    }

    fn stored(&self) {
        if self.down.swap(false, Ordering::Relaxed) {
            tracing::info!("chat storage works again");
        }
    }
}

/// Start a room's writer. Messages go in on the returned sender, in seq order; a report per
/// batch comes out on `reports`. The writer ends once the sender is dropped and its queue is
/// committed. It runs among `tasks`, so that shutdown waits for it.
pub fn start(
    tasks: &Tasks,
    store: Arc<dyn Store>,
    room: String,
    health: Arc<StorageHealth>,
    metrics: Arc<Metrics>,
    reports: mpsc::UnboundedSender<ChatReport>,
) -> mpsc::UnboundedSender<ChatMessage> {
    let (tx, rx) = mpsc::unbounded_channel();
    tasks.spawn(write(store, room, health, metrics, rx, reports));
    tx
}

async fn write(
    store: Arc<dyn Store>,
    room: String,
    health: Arc<StorageHealth>,
    metrics: Arc<Metrics>,
    mut rx: mpsc::UnboundedReceiver<ChatMessage>,
    reports: mpsc::UnboundedSender<ChatReport>,
) {
    let mut batch = Vec::with_capacity(MAX_CHAT_BATCH);
    while rx.recv_many(&mut batch, MAX_CHAT_BATCH).await > 0 {
        let seq = batch.last().map_or(0, |m| m.seq);
        // No retry: the senders learn at once, and may send again.
        let report = match store.append_chat_batch(&room, &batch).await {
            Ok(()) => {
                health.stored();
                metrics.chat_written(true, batch.len());
                ChatReport::Stored { seq }
            }
            Err(e) => {
                health.failed(&room, batch.len(), &e);
                metrics.chat_written(false, batch.len());
                ChatReport::Failed { seq }
            }
        };
        batch.clear();
        // A room task that has gone (server shutdown) needs no report; keep committing.
        let _ = reports.send(report);
    }
}
