//! The recordings admin API (#21): list, detail, delete and purge here; ranges, content
//! types, signed links, and every credential but the admin token refused in `access`. The files are
//! written into the recordings folder and the rows through the store, as a finished
//! session leaves them. The store's own part runs on both backends at the end.

use std::path::{Path, PathBuf};
use std::sync::Arc;

use axum::http::StatusCode;
use roundtable::recorder::OpusFile;
use roundtable::store::{ConsentEntry, RecordingSession, Store};
use serde_json::{Value, json};

use super::{admin, call, code};
use crate::both_backends;
use crate::common::TestServer;
use crate::store::room;

/// When the fixture's session started (Unix ms); its files start a second later.
const T0: i64 = 1_699_999_999_000;

/// The three-byte Opus packet browsers send for 20 ms of silence.
const SILENCE: [u8; 3] = [0xf8, 0xff, 0xfe];

/// A finished session of two speakers, Ann (5 s of audio) and Bo (2 s of audio and a
/// video), with a mixdown and chapters; Cy consented and withdrew, and has no files.
struct Fixture {
    server: TestServer,
    room: String,
    session: String,
    /// The session's folder.
    dir: PathBuf,
}

mod access;

fn opus(path: &Path, packets: u32) {
    std::fs::create_dir_all(path.parent().unwrap()).unwrap();
    let mut file = OpusFile::create(path, 1).unwrap();
    for n in 0..packets {
        file.write(T0 + 1000, n * 960, &SILENCE).unwrap();
    }
    file.finish().unwrap();
}

fn consent(room: &str, who: &str, session: Option<&str>, granted: bool, ts: i64) -> ConsentEntry {
    ConsentEntry {
        room: room.into(),
        session: session.map(String::from),
        participant: who.into(),
        name: match who {
            "ann1" => "Ann",
            "bo2" => "Bo",
            _ => "Cy",
        }
        .into(),
        invite: None,
        granted,
        ts,
    }
}

async fn fixture() -> anyhow::Result<Fixture> {
    let server = TestServer::sqlite().await?;
    let room = server.room("Recorded", 6).await?;
    let session = format!("{room}-1000-1");
    let store = server.state.store();
    store
        .create_recording_session(&RecordingSession {
            id: session.clone(),
            room: room.clone(),
            started_at: T0,
            presentation_only: false,
        })
        .await?;
    store.end_recording_session(&session, T0 + 61_000).await?;
    for entry in [
        consent(&room, "ann1", None, true, T0 - 500),
        consent(&room, "cy3", None, true, T0 - 400),
        consent(&room, "bo2", Some(&session), true, T0 + 2000),
        consent(&room, "cy3", Some(&session), false, T0 + 3000),
    ] {
        store.append_consent(&entry).await?;
    }
    let dir = server.state.recorder().dir().join(&session);
    opus(&dir.join("ann1/a1-1.opus"), 250);
    opus(&dir.join("bo2/b1-1.opus"), 100);
    std::fs::write(
        dir.join("bo2/v1-1.webm"),
        b"\x1a\x45\xdf\xa3 not a whole webm",
    )?;
    std::fs::write(dir.join("mixdown.opus"), b"OggS the old mixdown")?;
    std::fs::write(dir.join("chapters.json"), br#"{"chapters":[]}"#)?;
    std::fs::write(dir.join("chapters.vtt"), b"WEBVTT\n")?;
    Ok(Fixture {
        server,
        room,
        session,
        dir,
    })
}

impl Fixture {
    /// The session's detail, as the admin sees it.
    async fn detail(&self) -> anyhow::Result<Value> {
        let path = format!("/api/admin/recordings/{}", self.session);
        let (status, body) = call(&self.server, admin("GET", &path, None)).await?;
        assert_eq!(status, StatusCode::OK, "{body}");
        Ok(body)
    }

    /// The mixdown's length, as the session's detail says it.
    async fn mixdown_ms(&self) -> anyhow::Result<Option<u64>> {
        let detail = self.detail().await?;
        let files = detail["files"].as_array().unwrap();
        Ok(files
            .iter()
            .find(|f| f["kind"] == "mixdown")
            .and_then(|f| f["duration_ms"].as_u64()))
    }

    /// The id of the file whose download name ends with `suffix`.
    async fn file(&self, suffix: &str) -> anyhow::Result<String> {
        let detail = self.detail().await?;
        let file = detail["files"]
            .as_array()
            .unwrap()
            .iter()
            .find(|f| f["file_name"].as_str().unwrap().ends_with(suffix))
            .unwrap_or_else(|| panic!("no {suffix} in {detail}"));
        Ok(file["id"].as_str().unwrap().to_string())
    }

    fn file_path(&self, file: &str) -> String {
        format!("/api/admin/recordings/{}/files/{file}", self.session)
    }
}

#[tokio::test]
async fn sessions_list_and_one_session_shows_files_speakers_and_ledger() -> anyhow::Result<()> {
    let f = fixture().await?;
    // Another room's session: in the full list, not in the room's.
    let other = f.server.room("Other", 4).await?;
    f.server
        .state
        .store()
        .create_recording_session(&RecordingSession {
            id: format!("{other}-5000-1"),
            room: other.clone(),
            started_at: T0 + 5000,
            presentation_only: true,
        })
        .await?;
    let (status, all) = call(&f.server, admin("GET", "/api/admin/recordings", None)).await?;
    assert_eq!(status, StatusCode::OK, "{all}");
    let ids: Vec<&str> = all["sessions"]
        .as_array()
        .unwrap()
        .iter()
        .map(|s| s["id"].as_str().unwrap())
        .collect();
    let other_session = format!("{other}-5000-1");
    assert_eq!(
        ids,
        [other_session.as_str(), f.session.as_str()],
        "newest first"
    );
    let path = format!("/api/admin/recordings?room={}", f.room);
    let (_, mine) = call(&f.server, admin("GET", &path, None)).await?;
    let bytes: u64 = walk(&f.dir)
        .iter()
        .map(|p| p.metadata().unwrap().len())
        .sum();
    assert_eq!(
        mine["sessions"],
        json!([{
            "id": f.session, "room": f.room, "started_at": T0, "ended_at": T0 + 61_000,
            "presentation_only": false, "cut_off": false,
            "totals": { "files": 6, "bytes": bytes, "speakers": 2 },
        }])
    );
    let (status, body) = call(
        &f.server,
        admin("GET", "/api/admin/recordings?room=nope", None),
    )
    .await?;
    assert_eq!(
        (status, code(&body)),
        (StatusCode::NOT_FOUND, Some("room_not_found"))
    );

    let detail = f.detail().await?;
    let files: Vec<Value> = detail["files"]
        .as_array()
        .unwrap()
        .iter()
        .map(|f| {
            json!([
                f["kind"],
                f["speaker"],
                f["speaker_name"],
                f["duration_ms"],
                f["content_type"]
            ])
        })
        .collect();
    assert_eq!(
        files,
        [
            json!(["audio", "ann1", "Ann", 5000, "audio/ogg"]),
            json!(["audio", "bo2", "Bo", 2000, "audio/ogg"]),
            json!(["video", "bo2", "Bo", null, "video/webm"]),
            json!(["chapters", null, null, null, "application/json"]),
            json!(["chapters", null, null, null, "text/vtt; charset=utf-8"]),
            json!(["mixdown", null, null, null, "audio/ogg"]),
        ],
        "a WebM that does not parse has no duration; nor does the old mixdown"
    );
    for file in detail["files"].as_array().unwrap() {
        let id = file["id"].as_str().unwrap();
        assert!(
            id.len() == 32 && !id.contains('/'),
            "an id, not a path: {id}"
        );
    }
    assert_eq!(
        detail["files"][0]["size"],
        file_len(&f.dir.join("ann1/a1-1.opus"))
    );
    let ledger: Vec<Value> = detail["ledger"]
        .as_array()
        .unwrap()
        .iter()
        .map(|e| json!([e["participant"], e["granted"], e["session"]]))
        .collect();
    assert_eq!(
        ledger,
        [
            json!(["ann1", true, null]),
            json!(["cy3", true, null]),
            json!(["bo2", true, f.session]),
            json!(["cy3", false, f.session]),
        ],
        "what each carried in, and every change during it"
    );
    Ok(())
}

fn file_len(path: &Path) -> u64 {
    path.metadata().unwrap().len()
}

/// Every file under `dir`.
fn walk(dir: &Path) -> Vec<PathBuf> {
    let mut found = Vec::new();
    let mut folders = vec![dir.to_path_buf()];
    while let Some(folder) = folders.pop() {
        let Ok(entries) = std::fs::read_dir(&folder) else {
            continue;
        };
        for entry in entries {
            let path = entry.unwrap().path();
            if path.is_dir() {
                folders.push(path);
            } else {
                found.push(path);
            }
        }
    }
    found
}

#[tokio::test]
async fn deleting_a_session_removes_its_files_and_row_and_keeps_the_ledger() -> anyhow::Result<()> {
    let f = fixture().await?;
    let store = f.server.state.store().clone();
    // A session still recording cannot be deleted.
    let running = format!("{}-90000-2", f.room);
    store
        .create_recording_session(&RecordingSession {
            id: running.clone(),
            room: f.room.clone(),
            started_at: 90_000,
            presentation_only: false,
        })
        .await?;
    let path = format!("/api/admin/recordings/{running}");
    let (status, body) = call(&f.server, admin("DELETE", &path, None)).await?;
    assert_eq!(
        (status, code(&body)),
        (StatusCode::CONFLICT, Some("session_running"))
    );

    let ledger_before = store.consent_ledger(&f.room).await?;
    let path = format!("/api/admin/recordings/{}", f.session);
    let (status, body) = call(&f.server, admin("DELETE", &path, None)).await?;
    assert_eq!(status, StatusCode::OK, "{body}");
    assert_eq!(body, json!({ "deleted": f.session, "files": 6 }));
    assert!(!f.dir.exists(), "the session's folder is gone");
    assert!(store.recording_session(&f.session).await?.is_none());
    assert!(
        store.recording_session(&running).await?.is_some(),
        "only that one"
    );
    assert_eq!(
        store.consent_ledger(&f.room).await?,
        ledger_before,
        "the ledger stays"
    );
    let audit = store.audit_log(&f.room).await?;
    let last = audit.last().unwrap();
    assert_eq!(
        (
            last.actor.as_str(),
            last.action.as_str(),
            last.detail.as_deref()
        ),
        ("admin", "recording_delete", Some(f.session.as_str()))
    );
    let (status, body) = call(&f.server, admin("GET", &path, None)).await?;
    assert_eq!(
        (status, code(&body)),
        (StatusCode::NOT_FOUND, Some("session_not_found"))
    );
    let (status, body) = call(&f.server, admin("DELETE", &path, None)).await?;
    assert_eq!(
        (status, code(&body)),
        (StatusCode::NOT_FOUND, Some("session_not_found"))
    );
    Ok(())
}

#[tokio::test]
async fn purging_a_speaker_removes_their_files_and_keeps_their_withdrawal() -> anyhow::Result<()> {
    let f = fixture().await?;
    let store = f.server.state.store().clone();
    // The mixdown as the session left it: Ann's 5 s and Bo's 2 s, from a second in.
    let rebuild = format!("/api/admin/recordings/{}/mixdown", f.session);
    let (status, body) = call(&f.server, admin("POST", &rebuild, None)).await?;
    assert_eq!(
        (status, body),
        (StatusCode::OK, json!({ "rebuilt": f.session }))
    );
    assert_eq!(f.mixdown_ms().await?, Some(6000), "Ann's 5 s, from 1 s in");
    let path = format!("/api/admin/recordings/{}/speakers/ann1", f.session);
    let (status, body) = call(&f.server, admin("DELETE", &path, None)).await?;
    assert_eq!(status, StatusCode::OK, "{body}");
    assert_eq!(
        body,
        json!({ "session": f.session, "participant": "ann1", "files": 1,
                "withdrawal_recorded": true })
    );
    assert!(!f.dir.join("ann1").exists(), "Ann's files are gone");
    assert!(f.dir.join("bo2/b1-1.opus").exists(), "Bo's stay");
    assert_eq!(
        f.mixdown_ms().await?,
        Some(3000),
        "rebuilt without Ann: Bo's 2 s, from 1 s in"
    );
    let ledger = store.consent_ledger(&f.room).await?;
    let last = ledger.last().unwrap();
    assert_eq!(
        (
            last.participant.as_str(),
            last.session.as_deref(),
            last.granted,
            last.name.as_str()
        ),
        ("ann1", Some(f.session.as_str()), false, "Ann")
    );
    let audit = store.audit_log(&f.room).await?;
    let entry = audit.last().unwrap();
    assert_eq!(
        (
            entry.action.as_str(),
            entry.target.as_deref(),
            entry.target_name.as_deref()
        ),
        ("recording_purge", Some("ann1"), Some("Ann"))
    );
    let detail = f.detail().await?;
    let speakers: Vec<&str> = detail["files"]
        .as_array()
        .unwrap()
        .iter()
        .filter_map(|f| f["speaker"].as_str())
        .collect();
    assert_eq!(speakers, ["bo2", "bo2"]);

    // Cy withdrew during the session: purged, with no second withdrawal.
    let entries = ledger.len();
    let path = format!("/api/admin/recordings/{}/speakers/cy3", f.session);
    let (status, body) = call(&f.server, admin("DELETE", &path, None)).await?;
    assert_eq!(
        (status, &body["withdrawal_recorded"]),
        (StatusCode::OK, &json!(false)),
        "{body}"
    );
    assert_eq!(store.consent_ledger(&f.room).await?.len(), entries);
    let path = format!("/api/admin/recordings/{}/speakers/zed9", f.session);
    let (status, body) = call(&f.server, admin("DELETE", &path, None)).await?;
    assert_eq!(
        (status, code(&body)),
        (StatusCode::NOT_FOUND, Some("speaker_not_found"))
    );

    let path = "/api/admin/recordings/nope-1-1/mixdown";
    let (status, body) = call(&f.server, admin("POST", path, None)).await?;
    assert_eq!(
        (status, code(&body)),
        (StatusCode::NOT_FOUND, Some("session_not_found"))
    );
    Ok(())
}

both_backends!(check_session_admin => session_admin_sqlite, session_admin_postgres);

/// The store's part: every session or one room's, newest first; one by id; a delete that
/// leaves the ledger.
async fn check_session_admin(store: Arc<dyn Store>) {
    let store = store.as_ref();
    store.create_room(&room("a", "A", 10, 1)).await.unwrap();
    store.create_room(&room("b", "B", 10, 1)).await.unwrap();
    for (id, room_id, started_at) in [("s1", "a", 10), ("s2", "b", 30), ("s3", "a", 20)] {
        store
            .create_recording_session(&RecordingSession {
                id: id.into(),
                room: room_id.into(),
                started_at,
                presentation_only: false,
            })
            .await
            .unwrap();
    }
    store.end_recording_session("s1", 15).await.unwrap();
    let ids = |sessions: Vec<roundtable::store::SessionRecord>| -> Vec<String> {
        sessions.into_iter().map(|s| s.id).collect()
    };
    assert_eq!(
        ids(store.list_recording_sessions(None).await.unwrap()),
        ["s2", "s3", "s1"]
    );
    assert_eq!(
        ids(store.list_recording_sessions(Some("a")).await.unwrap()),
        ["s3", "s1"]
    );
    assert!(
        store
            .list_recording_sessions(Some("zz"))
            .await
            .unwrap()
            .is_empty()
    );
    let s1 = store.recording_session("s1").await.unwrap().unwrap();
    assert_eq!(
        (s1.room_id.as_str(), s1.started_at, s1.ended_at),
        ("a", 10, Some(15))
    );
    assert!(store.recording_session("nope").await.unwrap().is_none());

    store
        .append_consent(&consent("a", "ann1", Some("s1"), true, 11))
        .await
        .unwrap();
    assert!(store.delete_recording_session("s1").await.unwrap());
    assert!(!store.delete_recording_session("s1").await.unwrap(), "once");
    assert!(store.recording_session("s1").await.unwrap().is_none());
    assert_eq!(
        ids(store.list_recording_sessions(Some("a")).await.unwrap()),
        ["s3"]
    );
    assert_eq!(
        store.consent_ledger("a").await.unwrap().len(),
        1,
        "the ledger stays"
    );
}
