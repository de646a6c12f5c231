//! Chat on a full disk: the data directory is a small tmpfs in the server's own mount
//! namespace (`unshare --mount`, so root), filled up under the running server through
//! `/proc/PID/root`. The sender gets `storage_unavailable`, never an echo; nobody else hears
//! of the message; media goes on; the log says why, once; and chat works again when space
//! comes back.

use std::io::Write;
use std::path::{Path, PathBuf};

use anyhow::Context;
use roundtable_loadgen::client::Client;
use signaling::wire::{ClientMsg, ErrorCode, MediaKind, ServerMsg};

use crate::bin::{Participant, Server, wrapped};

/// What the log says when chat cannot be stored (once per outage).
const OUTAGE: &str = "cannot store chat";

/// Start the server with `data` on a fresh 4 MiB tmpfs of its own.
fn on_tmpfs(data: &Path) -> anyhow::Result<tokio::process::Command> {
    let script = r#"mount -t tmpfs -o size=4m tmpfs "$1" && shift && exec "$@""#;
    let data_arg = data.to_str().context("a UTF-8 temporary path")?;
    let unshare = ["unshare", "--mount", "--propagation", "private"];
    let sh = ["sh", "-c", script, "sh", data_arg];
    Ok(wrapped(&[&unshare[..], &sh[..]].concat(), data))
}

/// Fill the server's data directory (seen through its mount namespace) to the last page.
fn fill(server: &Server, data: &Path) -> anyhow::Result<PathBuf> {
    let inside = Path::new("/proc")
        .join(server.pid().to_string())
        .join("root")
        .join(data.strip_prefix("/")?);
    let filler = inside.join("filler");
    let mut file = std::fs::File::create(&filler)?;
    let page = [0u8; 4096];
    loop {
        match file.write(&page) {
            Ok(0) => break,
            Ok(_) => continue,
            Err(e) if e.kind() == std::io::ErrorKind::StorageFull => break,
            Err(e) => return Err(e.into()),
        }
    }
    Ok(filler)
}

fn code_of(msg: &ServerMsg) -> Option<ErrorCode> {
    match msg {
        ServerMsg::Error { code, .. } => Some(*code),
        _ => None,
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_full_disk_refuses_chat_with_a_code_and_media_goes_on() -> anyhow::Result<()> {
    let dir = tempfile::tempdir()?;
    let data = dir.path().join("data");
    std::fs::create_dir(&data)?;
    let log = dir.path().join("server.log");
    let server = Server::start(on_tmpfs(&data)?, &log).await?;
    let (addr, room) = (server.addr, server.demo_room.clone());
    let mut ann = Client::join(addr, &room, "Ann").await?;
    let bo = Client::join(addr, &room, "Bo").await?;
    let mut cy = Participant::join(addr, &room, "Cy").await?;
    ann.publish(3000).await?;
    let ann_id = ann.id.clone();
    let video = |n: usize| {
        let ann_id = ann_id.clone();
        move |log: &roundtable_loadgen::client::MediaLog| {
            log.from(&ann_id, MediaKind::Video).len() >= n
        }
    };
    bo.media.wait_for("Ann's video", video(20)).await?;

    let filler = fill(&server, &data)?;
    for text in ["lost 1", "lost 2"] {
        ann.send(ClientMsg::Chat { text: text.into() });
        let got = ann
            .expect("the chat's outcome", |m| {
                matches!(m, ServerMsg::Chat { .. } | ServerMsg::Error { .. })
            })
            .await?;
        assert_eq!(
            code_of(&got),
            Some(ErrorCode::StorageUnavailable),
            "{got:?}"
        );
    }
    let seen = bo.media.from(&ann_id, MediaKind::Video).len();
    bo.media
        .wait_for("video after the failure", video(seen + 50))
        .await?;

    std::fs::remove_file(&filler)?;
    ann.send(ClientMsg::Chat {
        text: "kept".into(),
    });
    // Cy hears of the kept message and of nothing before it.
    let ServerMsg::Chat { message } = cy.next_outcome().await? else {
        panic!("Cy got an error");
    };
    assert_eq!(message.text, "kept");
    assert!(message.seq > 2, "seq {} reuses a refused one", message.seq);

    let log = server.kill().await?;
    assert_eq!(log.matches(OUTAGE).count(), 1, "{log}");
    let line = log.lines().find(|l| l.contains(OUTAGE)).unwrap_or_default();
    assert!(line.contains("full"), "the log does not say why: {line}");
    assert!(log.contains("chat storage works again"), "{log}");
    Ok(())
}
