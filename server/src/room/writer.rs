//! A room's writer of moderation records: audit entries and the revocation of a barred
//! invite. Its own task, so the room task never awaits the database. It writes in the order
//! the room acted; a failure is logged and the room goes on (the room itself already refuses
//! a barred invite).

use std::sync::Arc;

use signaling::room::AuditEntry;
use tokio::sync::mpsc;

use crate::store::Store;
use crate::tasks::Tasks;

/// One write.
#[derive(Debug)]
pub enum Job {
    /// Append to the audit log.
    Audit(AuditEntry),
    /// Revoke the invite with this id.
    Revoke(String),
}

/// Start a room's writer. It ends once the sender is dropped and its queue is written.
pub fn start(tasks: &Tasks, store: Arc<dyn Store>, room: String) -> mpsc::UnboundedSender<Job> {
    let (tx, mut rx) = mpsc::unbounded_channel::<Job>();
    tasks.spawn(async move {
        while let Some(job) = rx.recv().await {
            let done = match &job {
                Job::Audit(entry) => store.append_audit(&room, entry).await,
                Job::Revoke(invite) => {
                    let now = super::now().unix_ms;
                    store.revoke_invite(&room, invite, now).await.map(|_| ())
                }
            };
            if let Err(e) = done {
                tracing::error!(%room, ?job, err = %e, "could not write a moderation record");
            }
        }
    });
    tx
}
