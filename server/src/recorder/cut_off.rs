//! At start-up, before any room runs: every recording session without an end was cut off by
//! a crash (a stop ends its sessions). Each is marked so, ended at the last write to its files
//! (the recorder flushes every second, so that is within a second of the crash), or at its
//! start if it wrote nothing. The Ogg pages already on disk stay readable as they are.

use std::path::{Path, PathBuf};
use std::time::UNIX_EPOCH;

use crate::store::{Store, StoreResult};

/// Mark the sessions a crash cut off; returns their ids, to finalize.
pub async fn finish_cut_off(store: &dyn Store, dir: &Path) -> StoreResult<Vec<String>> {
    let mut marked = Vec::new();
    for session in store.unfinished_sessions().await? {
        // Session ids are ours, but a path is built from one: refuse anything odd.
        let safe = !session.id.is_empty()
            && session
                .id
                .chars()
                .all(|c| c.is_ascii_alphanumeric() || c == '-' || c == '_');
        let folder = dir.join(&session.id);
        let last = if safe {
            tokio::task::spawn_blocking(move || last_write_ms(&folder))
                .await
                .ok()
                .flatten()
        } else {
            None
        };
        let ended_at = last.unwrap_or(session.started_at).max(session.started_at);
        if store.mark_cut_off(&session.id, ended_at).await? {
            tracing::warn!(session = %session.id, ended_at, "recording session cut off by a crash");
            marked.push(session.id);
        }
    }
    Ok(marked)
}

/// The latest modification time under `folder`, in Unix ms.
fn last_write_ms(folder: &Path) -> Option<i64> {
    let mut stack: Vec<PathBuf> = vec![folder.to_path_buf()];
    let mut last = None;
    while let Some(dir) = stack.pop() {
        let Ok(entries) = std::fs::read_dir(&dir) else {
            continue;
        };
        for entry in entries.flatten() {
            let Ok(meta) = entry.metadata() else { continue };
            if meta.is_dir() {
                stack.push(entry.path());
            } else if let Ok(at) = meta.modified()
                && let Ok(since) = at.duration_since(UNIX_EPOCH)
            {
                let ms = i64::try_from(since.as_millis()).unwrap_or(i64::MAX);
                last = Some(last.map_or(ms, |l: i64| l.max(ms)));
            }
        }
    }
    last
}
