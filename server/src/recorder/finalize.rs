//! After a session: its chapters and its mixdown, made from what is on disk. Run when a
//! session ends, after a crash cut one off (at start-up), after a purge, and on an admin's
//! demand. Each run makes both anew, so running it twice is harmless.

use std::path::Path;

use anyhow::Context;

use super::{chapters, is_id, mixdown};
use crate::store::Store;

/// The chapters files' names in a session's folder.
pub const CHAPTERS_JSON: &str = "chapters.json";
/// WebVTT chapters.
pub const CHAPTERS_VTT: &str = "chapters.vtt";

static ONE_AT_A_TIME: tokio::sync::Mutex<()> = tokio::sync::Mutex::const_new(());

/// Held while a session's files are removed (a purge, a delete): no finalize runs then, so
/// none that listed the files before can write a mixdown after they went.
pub async fn exclusive() -> tokio::sync::MutexGuard<'static, ()> {
    ONE_AT_A_TIME.lock().await
}

/// Write `session`'s chapters (JSON and WebVTT) and its mixdown into its folder under
/// `dir`. A session that wrote no file gets none of them.
pub async fn finalize_session(store: &dyn Store, dir: &Path, session: &str) -> anyhow::Result<()> {
    anyhow::ensure!(is_id(session), "not a session id: {session:?}");
    // One at a time: a run that listed a speaker's files before a purge removed them must
    // not rename its mixdown over the purge's. It is CPU work: running two at once gains
    // nothing.
    let _one = exclusive().await;
    let record = store
        .recording_session(session)
        .await?
        .with_context(|| format!("no recording session {session}"))?;
    let folder = dir.join(session);
    if !tokio::fs::try_exists(&folder).await? {
        return Ok(());
    }
    let start = record.started_at;
    let end = record
        .ended_at
        .unwrap_or_else(|| crate::room::now().unix_ms);
    let list = match store.load_agenda(&record.room_id).await? {
        Some(agenda) => chapters::of(&agenda, start, end),
        None => Vec::new(),
    };
    let json = serde_json::to_vec_pretty(&chapters::Chapters {
        session,
        started_at: start,
        chapters: &list,
    })?;
    let vtt = chapters::to_vtt(&list);
    let mixed = tokio::task::spawn_blocking(move || -> std::io::Result<_> {
        replace(&folder.join(CHAPTERS_JSON), &json)?;
        replace(&folder.join(CHAPTERS_VTT), vtt.as_bytes())?;
        mixdown::mixdown(&folder, start, end)
    })
    .await?
    .with_context(|| format!("finalizing recording session {session}"))?;
    tracing::info!(
        session,
        chapters = list.len(),
        ?mixed,
        "recording session finalized"
    );
    Ok(())
}

/// Write `path` whole or not at all: a temporary file, then a rename.
fn replace(path: &Path, bytes: &[u8]) -> std::io::Result<()> {
    let partial = path.with_extension("partial");
    std::fs::write(&partial, bytes)?;
    std::fs::rename(&partial, path)
}
