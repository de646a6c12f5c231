//! A room's writer of records: audit entries, the revocation of a barred invite, the
//! agenda, recording sessions and the consent ledger. Its own task, so the room task never
//! awaits the database. Once a recording session's end is written, it has the session
//! finalized (chapters, mixdown) on a task of its own. It writes in the order
//! the room acted; of several agendas queued at once, only the last is written. A failure is
//! logged and the room goes on (the room itself already refuses a barred invite, and keeps
//! the agenda in memory).

use std::sync::Arc;

use signaling::agenda::Agenda;
use signaling::room::{AuditEntry, ConsentEntry, RecordingSession};
use tokio::sync::mpsc;

use crate::recorder::{Recorder, finalize_session};
use crate::store::Store;
use crate::tasks::Tasks;

/// One write.
#[derive(Debug)]
pub enum Job {
    /// Append to the audit log.
    Audit(AuditEntry),
    /// Revoke the invite with this id.
    Revoke(String),
    /// Store the agenda.
    Agenda(Box<Agenda>),
    /// Store a recording session as it starts.
    SessionStarted(RecordingSession),
    /// Mark a recording session ended.
    SessionEnded {
        /// The session.
        id: String,
        /// Unix ms.
        ended_at: i64,
    },
    /// Append to the consent ledger.
    Consent(ConsentEntry),
}

/// Jobs taken from the queue at once.
const BATCH: usize = 64;

/// Start a room's writer. It ends once the sender is dropped and its queue is written.
pub fn start(
    tasks: &Tasks,
    store: Arc<dyn Store>,
    recorder: Arc<Recorder>,
    room: String,
) -> mpsc::UnboundedSender<Job> {
    let (tx, mut rx) = mpsc::unbounded_channel::<Job>();
    let finalizers = tasks.clone();
    tasks.spawn(async move {
        let mut batch = Vec::with_capacity(BATCH);
        while rx.recv_many(&mut batch, BATCH).await > 0 {
            let last_agenda = batch.iter().rposition(|j| matches!(j, Job::Agenda(_)));
            for (n, job) in batch.drain(..).enumerate() {
                let now = super::now().unix_ms;
                let done = match &job {
                    Job::Audit(entry) => store.append_audit(&room, entry).await,
                    Job::Revoke(invite) => {
                        store.revoke_invite(&room, invite, now).await.map(|_| ())
                    }
                    // A later agenda in this batch replaces this one.
                    Job::Agenda(_) if Some(n) != last_agenda => Ok(()),
                    Job::Agenda(agenda) => store.save_agenda(&room, agenda, now).await,
                    Job::SessionStarted(session) => store.create_recording_session(session).await,
                    Job::SessionEnded { id, ended_at } => {
                        let done = store.end_recording_session(id, *ended_at).await;
                        if done.is_ok() {
                            finalize(&finalizers, &store, &recorder, id.clone());
                        }
                        done.map(|_| ())
                    }
                    Job::Consent(entry) => store.append_consent(entry).await,
                };
                if let Err(e) = done {
                    tracing::error!(%room, ?job, err = %e, "could not write a room record");
                }
            }
        }
    });
    tx
}

/// Finalize `session` once the recorder has finished its files (the room closed them before
/// it ended the session).
fn finalize(tasks: &Tasks, store: &Arc<dyn Store>, recorder: &Arc<Recorder>, session: String) {
    let (store, recorder) = (store.clone(), recorder.clone());
    tasks.spawn(async move {
        recorder.sync().await;
        if let Err(e) = finalize_session(store.as_ref(), recorder.dir(), &session).await {
            tracing::error!(%session, err = %e, "could not finalize a recording session");
        }
    });
}
