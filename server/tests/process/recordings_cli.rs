//! `roundtable recordings list|show|purge|delete` on a data directory: the same answers and
//! refusals as the admin API, since both go through `roundtable::recordings`.

use std::path::Path;

use anyhow::ensure;
use roundtable::recorder::OpusFile;
use roundtable::store::{ConsentEntry, RecordingSession};
use tokio::process::Command;

use crate::bin::{BIN, create_room};

/// `roundtable recordings ARGS` on `data`: whether it succeeded, its stdout and stderr.
async fn recordings(data: &Path, args: &[&str]) -> anyhow::Result<(bool, String, String)> {
    let out = Command::new(BIN)
        .arg("--data-dir")
        .arg(data)
        .env_remove("ROUNDTABLE_CONFIG")
        .env_remove("ROUNDTABLE_DATABASE_URL")
        .env_remove("ROUNDTABLE_RECORDINGS_DIR")
        .arg("recordings")
        .args(args)
        .output()
        .await?;
    let text = |b: &[u8]| String::from_utf8_lossy(b).into_owned();
    Ok((out.status.success(), text(&out.stdout), text(&out.stderr)))
}

#[tokio::test]
async fn the_recordings_commands_list_show_purge_and_delete() -> anyhow::Result<()> {
    let data = tempfile::tempdir()?;
    let room = create_room(data.path(), "Recorded").await?;
    let session = format!("{room}-1000-1");
    let url = format!("sqlite:{}", data.path().join("roundtable.db").display());
    let store = roundtable::store::open(&url).await?;
    store
        .create_recording_session(&RecordingSession {
            id: session.clone(),
            room: room.clone(),
            started_at: 1_699_999_999_000,
            presentation_only: false,
        })
        .await?;
    store
        .end_recording_session(&session, 1_700_000_009_000)
        .await?;
    store
        .append_consent(&ConsentEntry {
            room: room.clone(),
            session: None,
            participant: "ann1".into(),
            name: "Ann".into(),
            invite: None,
            granted: true,
            ts: 1_699_999_998_000,
        })
        .await?;
    let folder = data.path().join("recordings").join(&session);
    std::fs::create_dir_all(folder.join("ann1"))?;
    let mut file = OpusFile::create(&folder.join("ann1/a1-1.opus"), 1)?;
    for n in 0..100 {
        file.write(1_700_000_000_000, n * 960, &[0xf8, 0xff, 0xfe])?;
    }
    file.finish()?;

    let (ok, out, err) = recordings(data.path(), &["list", "--json"]).await?;
    ensure!(ok, "list: {err}");
    let list: serde_json::Value = serde_json::from_str(&out)?;
    assert_eq!(list[0]["id"], session.as_str());
    assert_eq!(list[0]["totals"]["files"], 1);

    let (ok, out, err) = recordings(data.path(), &["show", &session]).await?;
    ensure!(ok, "show: {err}");
    assert!(out.contains("audio\tAnn (ann1)\t2.0 s"), "{out}");
    assert!(out.contains("granted"), "{out}");

    let (ok, _, err) = recordings(data.path(), &["show", "../etc"]).await?;
    assert!(!ok && err.contains("not an id"), "{err}");
    let (ok, _, err) = recordings(data.path(), &["purge", &session, "zed9"]).await?;
    assert!(!ok && err.contains("not a speaker"), "{err}");

    let (ok, out, err) = recordings(data.path(), &["purge", &session, "ann1"]).await?;
    ensure!(ok, "purge: {err}");
    assert!(out.contains("1 files deleted"), "{out}");
    assert!(!folder.join("ann1").exists());
    let last = store.consent_ledger(&room).await?.pop().unwrap();
    assert_eq!(
        (last.granted, last.session.as_deref()),
        (false, Some(session.as_str()))
    );

    let (ok, out, err) = recordings(data.path(), &["delete", &session]).await?;
    ensure!(ok, "delete: {err}");
    assert!(out.contains(&format!("deleted session {session}")), "{out}");
    assert!(!folder.exists());
    assert!(store.recording_session(&session).await?.is_none());
    let (ok, _, err) = recordings(data.path(), &["delete", &session]).await?;
    assert!(!ok && err.contains("no recording session"), "{err}");
    Ok(())
}
