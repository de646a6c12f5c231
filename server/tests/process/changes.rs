//! Waiting for another process's writes without polling: a condition is checked once, then
//! again after each change the file system reports (inotify, through the `notify` crate).

use std::path::Path;

use anyhow::{Context, bail};
use notify::{RecursiveMode, Watcher};
use roundtable_loadgen::client::WAIT;

/// Wait, at most [`WAIT`], until `check` gives a value: it is called at once, then after
/// every change under `dir` (recursively) to a path that `relevant` accepts.
pub async fn when<T>(
    dir: &Path,
    relevant: impl Fn(&Path) -> bool + Send + 'static,
    mut check: impl AsyncFnMut() -> anyhow::Result<Option<T>>,
) -> anyhow::Result<T> {
    let (tx, mut changed) = tokio::sync::mpsc::unbounded_channel();
    let mut watcher = notify::recommended_watcher(move |event: notify::Result<notify::Event>| {
        if let Ok(event) = event
            && event.paths.iter().any(|p| relevant(p))
        {
            let _ = tx.send(());
        }
    })?;
    watcher.watch(dir, RecursiveMode::Recursive)?;
    let wait = async {
        loop {
            if let Some(value) = check().await? {
                return Ok(value);
            }
            if changed.recv().await.is_none() {
                bail!("the watch of {} ended", dir.display());
            }
            while changed.try_recv().is_ok() {}
        }
    };
    tokio::time::timeout(WAIT, wait)
        .await
        .with_context(|| format!("nothing under {} came to be within {WAIT:?}", dir.display()))?
}
