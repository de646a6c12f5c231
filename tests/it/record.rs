//! Recording with per-speaker consent, end to end: real WebRTC publishers, the real recorder,
//! the files on disk read back with the `ogg` crate, and the ledger in the store. Also the
//! store's recording sessions and consent ledger on both backends.

use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use roundtable::store::{ConsentEntry, RecordingSession, Store, StoreError};
use roundtable_loadgen::client::{Client, JoinOptions, PublishPlan, TrackPlan};
use signaling::roles::Role;
use signaling::wire::{ClientMsg, MediaKind, RecordingView, ServerMsg};

use crate::both_backends;
use crate::common::TestServer;
use crate::store::room;

/// Audio packets each speaker sends, 20 ms apart: 12 s, more than the test needs.
const PACKETS: u64 = 600;

/// Packets of slack at each edge of an interval: the room's messages and the media race by a
/// few milliseconds; a packet is 20 ms.
const EDGE: u64 = 5;

/// Publish one Opus track of counted packets. `set` makes its SSRC `0x1000_0001 + 16 * set`,
/// so each speaker's differs.
async fn speak(client: &mut Client, set: u32) -> anyhow::Result<()> {
    let plan = PublishPlan {
        audio: Some(TrackPlan {
            period: Duration::from_millis(20),
            min_bytes: 80,
            max_bytes: 80,
            keyframes: None,
            packets: Some(PACKETS),
            vp8_framing: false,
        }),
        video: None,
        set,
        ..PublishPlan::default()
    };
    client.publish_plan(plan).await
}

fn ssrc_of(set: u32) -> u32 {
    0x1000_0001 + 16 * set
}

/// The counters of `who`'s audio that `fay` received so far.
pub(crate) fn heard(fay: &Client, who: &str) -> Vec<u64> {
    fay.media
        .from(who, MediaKind::Audio)
        .iter()
        .map(|r| r.counter)
        .collect()
}

/// Wait until `fay` has heard `n` more of `who`'s audio packets: the test's clock.
pub(crate) async fn hear_more(fay: &Client, who: &str, n: usize) -> anyhow::Result<()> {
    let start = heard(fay, who).len();
    fay.media
        .wait_for("more audio", |log| {
            log.from(who, MediaKind::Audio).len() >= start + n
        })
        .await
}

/// Wait for a `recording` message that `want` accepts.
pub(crate) async fn recording(
    client: &mut Client,
    want: impl Fn(&RecordingView) -> bool,
) -> anyhow::Result<RecordingView> {
    let msg = client
        .expect(
            "a recording message",
            |m| matches!(m, ServerMsg::Recording { recording } if want(recording)),
        )
        .await?;
    let ServerMsg::Recording { recording } = msg else {
        unreachable!("matched above")
    };
    Ok(recording)
}

/// A facilitator starts recording; returns the session once `recorded` is `want`.
pub(crate) async fn start_recording(
    facilitator: &mut Client,
    want: &[String],
) -> anyhow::Result<String> {
    facilitator.send(ClientMsg::Recording {
        on: true,
        presentation_only: false,
    });
    let started = recording(facilitator, |r| r.on && r.recorded == want).await?;
    Ok(started.session.expect("a session id"))
}

/// A facilitator stops recording, and hears that it stopped.
pub(crate) async fn stop_recording(facilitator: &mut Client) -> anyhow::Result<()> {
    facilitator.send(ClientMsg::Recording {
        on: false,
        presentation_only: false,
    });
    recording(facilitator, |r| !r.on).await?;
    Ok(())
}

/// Every file under `dir`.
pub(crate) fn files_under(dir: &Path) -> Vec<PathBuf> {
    let mut found = Vec::new();
    let mut folders = vec![dir.to_path_buf()];
    while let Some(folder) = folders.pop() {
        for entry in std::fs::read_dir(&folder).unwrap() {
            let path = entry.unwrap().path();
            if path.is_dir() {
                folders.push(path);
            } else {
                found.push(path);
            }
        }
    }
    found.sort();
    found
}

/// The speakers' files among `files` (under `dir`): `{session}/{participant}/{file}`, not a
/// session's mixdown or chapters.
pub(crate) fn speaker_files(dir: &Path, files: &[PathBuf]) -> Vec<PathBuf> {
    files
        .iter()
        .filter(|f| f.strip_prefix(dir).unwrap().components().count() == 3)
        .cloned()
        .collect()
}

/// The audio packets' counters of an Ogg Opus file, after checking its two headers. The
/// empty frames that fill the gaps between packets (one byte each) are left out.
fn counters_in(path: &Path) -> Vec<u64> {
    let file = std::fs::File::open(path).unwrap();
    let mut reader = ogg::reading::PacketReader::new(file);
    let head = reader.read_packet_expected().unwrap();
    assert_eq!(&head.data[..8], b"OpusHead", "{}", path.display());
    let tags = reader.read_packet_expected().unwrap();
    assert_eq!(&tags.data[..8], b"OpusTags", "{}", path.display());
    let mut counters = Vec::new();
    while let Some(packet) = reader.read_packet().unwrap() {
        if packet.data.len() == 1 {
            continue;
        }
        counters.push(u64::from_be_bytes(packet.data[..8].try_into().unwrap()));
    }
    counters
}

/// Whether `needle` occurs in `hay`.
pub(crate) fn holds(hay: &[u8], needle: &[u8]) -> bool {
    hay.windows(needle.len()).any(|w| w == needle)
}

/// Ann consents at join, Pat never, Cy from just before the start; Fay (a facilitator)
/// records. Cy withdraws mid-way. Afterwards only Ann and Cy have files; each reads back as
/// Ogg Opus with the packets forwarded while they were recorded; Cy's ends at her
/// withdrawal; nothing of Pat is on disk; the ledger holds each change.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn only_consenting_speakers_reach_the_disk_and_a_withdrawal_ends_a_file() -> anyhow::Result<()>
{
    let mut server = TestServer::sqlite().await?;
    let room_id = server.room("Recorded", 6).await?;
    let (fay_secret, _) = server.invite(&room_id, Role::Facilitator, |_| {}).await?;
    let (ann_secret, ann_invite) = server.invite(&room_id, Role::Participant, |_| {}).await?;
    let mut fay = Client::join_invited(server.addr, &room_id, "Fay", &fay_secret).await?;
    let consenting = JoinOptions {
        packet_log: true,
        consent: true,
    };
    let mut ann =
        Client::join_full(server.addr, &room_id, "Ann", Some(&ann_secret), consenting).await?;
    let mut pat = Client::join(server.addr, &room_id, "Pat").await?;
    let mut cy = Client::join(server.addr, &room_id, "Cy").await?;
    let (ann_id, pat_id, cy_id) = (ann.id.clone(), pat.id.clone(), cy.id.clone());
    speak(&mut ann, 0).await?;
    speak(&mut pat, 1).await?;
    speak(&mut cy, 2).await?;
    for who in [&ann_id, &pat_id, &cy_id] {
        hear_more(&fay, who, 20).await?;
    }

    cy.send(ClientMsg::Consent { granted: true });
    fay.expect("Cy's consent", |m| {
        matches!(m, ServerMsg::ParticipantUpdated { participant } if participant.id == cy_id && participant.consent)
    })
    .await?;
    let session = start_recording(&mut fay, &[ann_id.clone(), cy_id.clone()]).await?;
    let ann_from = heard(&fay, &ann_id).len() as u64;
    let cy_from = heard(&fay, &cy_id).len() as u64;

    // A second of both, then Cy withdraws.
    hear_more(&fay, &cy_id, 50).await?;
    cy.send(ClientMsg::Consent { granted: false });
    recording(&mut fay, |r| r.recorded == [ann_id.clone()]).await?;
    let cy_until = heard(&fay, &cy_id).len() as u64;

    // Another second of Ann (Cy goes on speaking, unrecorded), then stop.
    hear_more(&fay, &ann_id, 50).await?;
    stop_recording(&mut fay).await?;
    let ann_until = heard(&fay, &ann_id).len() as u64;
    hear_more(&fay, &cy_id, 10).await?;

    // Stopping the server waits for the room's writer, and so for the session's mixdown.
    let store = server.state.store().clone();
    let dir = server.state.recorder().dir().to_path_buf();
    tokio::time::timeout(Duration::from_secs(30), server.state.recorder().finished(2)).await?;
    server.stop().await?;
    let all = files_under(&dir);
    let files = speaker_files(&dir, &all);
    for made in ["mixdown.opus", "chapters.json", "chapters.vtt"] {
        assert!(
            all.contains(&dir.join(&session).join(made)),
            "{made} in {all:?}"
        );
    }
    let recorder = &dir;
    let folders: Vec<String> = files
        .iter()
        .map(|f| {
            let rel = f.strip_prefix(recorder).unwrap();
            rel.parent().unwrap().display().to_string()
        })
        .collect();
    assert_eq!(
        folders,
        [format!("{session}/{ann_id}"), format!("{session}/{cy_id}")],
        "only Ann and Cy have files: {files:?}"
    );

    // Ann: every packet forwarded while she was recorded, within the edges.
    let ann_file = counters_in(&files[0]);
    let ann_heard = heard(&fay, &ann_id);
    let (first, last) = (ann_file[0], *ann_file.last().unwrap());
    assert!(
        first.abs_diff(ann_from) <= EDGE,
        "Ann's file starts at {first}, the start at {ann_from}"
    );
    assert!(
        last.abs_diff(ann_until) <= EDGE,
        "Ann's file ends at {last}, the stop at {ann_until}"
    );
    let forwarded: Vec<u64> = ann_heard
        .iter()
        .copied()
        .filter(|c| (first..=last).contains(c))
        .collect();
    assert_eq!(
        ann_file, forwarded,
        "Ann's file holds what was forwarded, in order"
    );
    assert!(
        ann_file.len() >= 90,
        "two seconds of Ann: {}",
        ann_file.len()
    );

    // Cy: from her consent to her withdrawal, while she went on speaking.
    let cy_file = counters_in(&files[1]);
    let (first, last) = (cy_file[0], *cy_file.last().unwrap());
    assert!(
        first.abs_diff(cy_from) <= EDGE,
        "Cy's file starts at {first}, the start at {cy_from}"
    );
    assert!(
        last <= cy_until + EDGE,
        "Cy's file goes on to {last} after her withdrawal at {cy_until}"
    );
    assert!(
        last + EDGE >= cy_until,
        "Cy's file ends early, at {last}, not {cy_until}"
    );
    assert!(
        heard(&fay, &cy_id).len() as u64 > cy_until + 50,
        "Cy spoke on after withdrawing"
    );

    // Nothing of Pat, anywhere under the folder: not her SSRC, not one of her payloads.
    let pat_heard = fay.media.from(&pat_id, MediaKind::Audio);
    assert!(
        pat_heard.len() > 150,
        "Pat spoke all along: {}",
        pat_heard.len()
    );
    let ssrc = ssrc_of(1);
    for file in &all {
        let bytes = std::fs::read(file)?;
        for needle in [ssrc.to_be_bytes(), ssrc.to_le_bytes()] {
            assert!(!holds(&bytes, &needle), "Pat's SSRC in {}", file.display());
        }
        for r in &pat_heard {
            let mut payload = r.counter.to_be_bytes().to_vec();
            payload.extend_from_slice(&r.sent_ns.to_be_bytes());
            assert!(
                !holds(&bytes, &payload),
                "Pat's packet {} in {}",
                r.counter,
                file.display()
            );
        }
    }
    // The same search finds Ann's payloads in her file: it would find Pat's.
    let ann_bytes = std::fs::read(&files[0])?;
    let r = fay.media.from(&ann_id, MediaKind::Audio)[ann_from as usize + 10];
    let mut payload = r.counter.to_be_bytes().to_vec();
    payload.extend_from_slice(&r.sent_ns.to_be_bytes());
    assert!(holds(&ann_bytes, &payload));

    // The ledger: Ann at join (with her invite), Cy's consent and withdrawal.
    let ledger = store.consent_ledger(&room_id).await?;
    let rows: Vec<(&str, Option<&str>, Option<&str>, bool)> = ledger
        .iter()
        .map(|e| {
            (
                e.participant.as_str(),
                e.invite.as_deref(),
                e.session.as_deref(),
                e.granted,
            )
        })
        .collect();
    assert_eq!(
        rows,
        [
            (ann_id.as_str(), Some(ann_invite.as_str()), None, true),
            (cy_id.as_str(), None, None, true),
            (cy_id.as_str(), None, Some(session.as_str()), false),
        ]
    );
    let sessions = store.recording_sessions(&room_id).await?;
    assert_eq!(sessions.len(), 1);
    assert_eq!(sessions[0].id, session);
    assert!(!sessions[0].cut_off);
    Ok(())
}

both_backends!(check_sessions_and_ledger => sessions_and_ledger_sqlite, sessions_and_ledger_postgres);

async fn check_sessions_and_ledger(store: Arc<dyn Store>) {
    let store = store.as_ref();
    store.create_room(&room("a", "A", 10, 1)).await.unwrap();
    store.create_room(&room("b", "B", 10, 1)).await.unwrap();
    let session =
        |id: &str, room: &str, started_at: i64, presentation_only: bool| RecordingSession {
            id: id.into(),
            room: room.into(),
            started_at,
            presentation_only,
        };
    assert!(store.recording_sessions("a").await.unwrap().is_empty());
    store
        .create_recording_session(&session("s2", "a", 20, true))
        .await
        .unwrap();
    store
        .create_recording_session(&session("s1", "a", 10, false))
        .await
        .unwrap();
    store
        .create_recording_session(&session("s3", "b", 5, false))
        .await
        .unwrap();
    let again = store
        .create_recording_session(&session("s1", "b", 30, false))
        .await;
    assert!(matches!(again, Err(StoreError::Conflict(_))), "{again:?}");
    assert!(store.end_recording_session("s1", 15).await.unwrap());
    assert!(
        !store.end_recording_session("s1", 99).await.unwrap(),
        "an end is kept"
    );
    assert!(!store.end_recording_session("nope", 1).await.unwrap());
    // Unfinished: s2 and s3, across rooms. Marking one cut off ends it, once.
    let unfinished: Vec<String> = store
        .unfinished_sessions()
        .await
        .unwrap()
        .into_iter()
        .map(|s| s.id)
        .collect();
    assert_eq!(unfinished, ["s3", "s2"]);
    assert!(store.mark_cut_off("s3", 7).await.unwrap());
    assert!(
        !store.mark_cut_off("s3", 8).await.unwrap(),
        "an end is kept"
    );
    assert!(
        !store.mark_cut_off("s1", 8).await.unwrap(),
        "s1 ended normally"
    );
    let s3 = store.recording_sessions("b").await.unwrap();
    assert_eq!((s3[0].ended_at, s3[0].cut_off), (Some(7), true));
    let listed: Vec<_> = store
        .recording_sessions("a")
        .await
        .unwrap()
        .into_iter()
        .map(|s| {
            (
                s.id,
                s.room_id,
                s.started_at,
                s.ended_at,
                s.presentation_only,
                s.cut_off,
            )
        })
        .collect();
    assert_eq!(
        listed,
        [
            ("s1".into(), "a".into(), 10, Some(15), false, false),
            ("s2".into(), "a".into(), 20, None, true, false),
        ],
        "oldest first"
    );

    assert!(store.consent_ledger("a").await.unwrap().is_empty());
    let entry =
        |room: &str, who: &str, session: Option<&str>, granted: bool, ts: i64| ConsentEntry {
            room: room.into(),
            session: session.map(String::from),
            participant: who.into(),
            name: format!("Person {who}"),
            invite: (who == "p1").then(|| "inv1".into()),
            granted,
            ts,
        };
    // Appended order, not time order.
    let entries = [
        entry("a", "p1", None, true, 30),
        entry("a", "p2", Some("s1"), true, 20),
        entry("a", "p1", Some("s1"), false, 20),
    ];
    for (i, e) in entries.iter().enumerate() {
        store.append_consent(e).await.unwrap();
        if i == 0 {
            store
                .append_consent(&entry("b", "p9", None, true, 1))
                .await
                .unwrap();
        }
    }
    assert_eq!(store.consent_ledger("a").await.unwrap(), entries);
    assert_eq!(
        store.consent_ledger("b").await.unwrap(),
        [entry("b", "p9", None, true, 1)]
    );
    let err = store
        .append_consent(&entry("ghost", "p1", None, true, 1))
        .await
        .unwrap_err();
    assert!(matches!(err, StoreError::Db(_)), "got {err:?}");
}

/// A server that stops while recording ends the session: it is stored as ended, not left
/// looking as if it still ran.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_shutdown_ends_the_recording_session() -> anyhow::Result<()> {
    let mut server = TestServer::sqlite().await?;
    let room_id = server.room("Shutdown", 5).await?;
    let (fay_secret, _) = server.invite(&room_id, Role::Facilitator, |_| {}).await?;
    let mut fay = Client::join_invited(server.addr, &room_id, "Fay", &fay_secret).await?;
    fay.send(ClientMsg::Recording {
        on: true,
        presentation_only: false,
    });
    let on = recording(&mut fay, |r| r.on).await?;
    let store = server.state.store().clone();
    server.stop().await?;
    let sessions = store.recording_sessions(&room_id).await?;
    assert_eq!(sessions.len(), 1);
    assert_eq!(Some(&sessions[0].id), on.session.as_ref());
    assert!(sessions[0].ended_at.is_some(), "{:?}", sessions[0]);
    assert!(!sessions[0].cut_off);
    Ok(())
}

/// A session that a crash left without an end is marked cut off when the server starts,
/// ended at the last write to its files.
#[tokio::test]
async fn a_session_cut_off_by_a_crash_is_marked_at_start() -> anyhow::Result<()> {
    let dir = tempfile::tempdir()?;
    let url = format!("sqlite:{}", dir.path().join("rt.db").display());
    let recordings = dir.path().join("recordings");
    // What a crashed server leaves: a session row with no end, and a file it was writing.
    {
        let store = roundtable::store::open(&url).await?;
        store.create_room(&room("r1", "Crashed", 5, 1)).await?;
        store
            .create_recording_session(&RecordingSession {
                id: "r1-1000-1".into(),
                room: "r1".into(),
                started_at: 1000,
                presentation_only: false,
            })
            .await?;
        store
            .create_recording_session(&RecordingSession {
                id: "r1-2000-2".into(),
                room: "r1".into(),
                started_at: 2000,
                presentation_only: false,
            })
            .await?;
        store.end_recording_session("r1-2000-2", 3000).await?;
        let folder = recordings.join("r1-1000-1").join("p1");
        std::fs::create_dir_all(&folder)?;
        std::fs::write(folder.join("t1-1.opus"), b"OggS")?;
    }
    let written = std::fs::metadata(recordings.join("r1-1000-1/p1/t1-1.opus"))?
        .modified()?
        .duration_since(std::time::UNIX_EPOCH)?
        .as_millis() as i64;
    let mut config = roundtable::config::Config::for_tests(url);
    config.recordings_dir = recordings;
    let server = TestServer::with_config(config).await?;
    let sessions = server.state.store().recording_sessions("r1").await?;
    let got: Vec<(&str, Option<i64>, bool)> = sessions
        .iter()
        .map(|s| (s.id.as_str(), s.ended_at, s.cut_off))
        .collect();
    assert_eq!(
        got,
        [
            ("r1-1000-1", Some(written), true),
            ("r1-2000-2", Some(3000), false)
        ]
    );
    Ok(())
}
