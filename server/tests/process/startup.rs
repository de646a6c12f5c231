//! Start-up on an unusable data directory stops at once, and says which path and why.
//! "Read-only" is made with the immutable attribute (`chattr +i`, ext4 and root): a mode bit
//! does not stop root.

use std::path::Path;
use std::process::Command as StdCommand;

use anyhow::ensure;

use crate::bin::{Server, run_to_exit, serve};

/// Sets or clears the immutable attribute of a path, and clears it again on drop so the
/// temporary directory can go.
struct Immutable<'a>(&'a Path);

impl<'a> Immutable<'a> {
    fn set(path: &'a Path) -> anyhow::Result<Self> {
        chattr("+i", path)?;
        Ok(Immutable(path))
    }
}

impl Drop for Immutable<'_> {
    fn drop(&mut self) {
        let _ = chattr("-i", self.0);
    }
}

fn chattr(flag: &str, path: &Path) -> anyhow::Result<()> {
    let status = StdCommand::new("chattr").arg(flag).arg(path).status()?;
    ensure!(status.success(), "chattr {flag} {} failed", path.display());
    Ok(())
}

/// Start on `data` and expect a prompt failure whose message names `names` and says `cause`.
async fn refused(data: &Path, log: &Path, names: &Path, cause: &str) -> anyhow::Result<()> {
    let (status, said) = run_to_exit(serve(data), log).await?;
    assert!(!status.success(), "exit status {status}");
    let name = names.display().to_string();
    assert!(said.contains(&name), "does not name {name}: {said}");
    assert!(said.contains(cause), "does not say {cause:?}: {said}");
    Ok(())
}

/// Three ways a data directory is unusable: it cannot be created, it takes no new files, or
/// its database cannot be written. Each stops start-up, naming the path and the reason.
#[tokio::test]
async fn an_unusable_data_dir_stops_start_up_naming_path_and_cause() -> anyhow::Result<()> {
    let dir = tempfile::tempdir()?;
    let log = dir.path().join("server.log");

    let file = dir.path().join("a-file");
    std::fs::write(&file, "not a directory")?;
    let under_file = file.join("data");
    refused(&under_file, &log, &under_file, "Not a directory").await?;

    let frozen_dir = dir.path().join("frozen");
    std::fs::create_dir(&frozen_dir)?;
    let _frozen = Immutable::set(&frozen_dir)?;
    refused(&frozen_dir, &log, &frozen_dir, "Operation not permitted").await?;

    let data = dir.path().join("data");
    Server::start(serve(&data), &log).await?.kill().await?;
    let db = data.join("roundtable.db");
    let _read_only = Immutable::set(&db)?;
    refused(&data, &log, &db, "readonly").await
}
