//! A crash while recording (#21): `kill -9` mid-session. What the recorder flushed (it does
//! every second) reads back, up to about the kill: the audio as whole Ogg pages, the video
//! as a WebM file never finished, whose elements are whole and sized. The next start marks
//! the session cut off, ended at its files' last write, and leaves the files as they were,
//! also while it records again.
//!
//! "About the kill" is counted in packets and in the senders' own time stamps, never in how
//! fast anything ran: the speaker's packets carry a counter and their send time.

use std::path::{Path, PathBuf};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use anyhow::{Context, bail, ensure};
use ogg::reading::{BasePacketReader, PageParser};
use roundtable_loadgen::client::{Client, JoinOptions, Keyframes, PublishPlan, TrackPlan};
use roundtable_loadgen::stats::now_ns;
use signaling::wire::{ClientMsg, MediaKind, RecordingView, ServerMsg};
use sqlx::{Connection, SqliteConnection};

use crate::bin::{Server, create_room_for_facilitator, serve};
use crate::changes;
use crate::webm;

/// What a crash may lose at most (issue #21: "a crash loses at most the last second"). The
/// recorder flushes its pages that often.
const AT_MOST_LOST: Duration = Duration::from_secs(1);

/// One audio packet every 20 ms.
const PERIOD: Duration = Duration::from_millis(20);

/// Audio packets each speaker sends: a minute, more than the test needs.
const PACKETS: u64 = 3000;

/// One video frame every 33 ms.
const FRAME_PERIOD: Duration = Duration::from_millis(33);

/// Audio packets on disk before the kill: three seconds.
const ON_DISK: usize = 150;

/// Packets of slack beyond [`AT_MOST_LOST`]: the listener and the recorder get each packet
/// by different paths, and the recorder's thread may run a little late on loaded cores.
const MARGIN: u64 = 25;

/// Packets of slack at the start of the recording: the room's messages and the media race
/// by a few milliseconds (as in `tests/it/record.rs`).
const EDGE: u64 = 5;

/// Milliseconds of slack between a send time and a file's modification time: the kernel
/// stamps files from a coarse clock, up to a tick behind.
const CLOCK_SLACK_MS: i64 = 20;

/// The audio packets of [`AT_MOST_LOST`].
fn at_most_lost() -> u64 {
    (AT_MOST_LOST.as_millis() / PERIOD.as_millis()) as u64
}

/// The video frames of [`AT_MOST_LOST`].
fn frames_at_most_lost() -> u64 {
    (AT_MOST_LOST.as_millis() / FRAME_PERIOD.as_millis()) as u64
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn kill_9_while_recording_keeps_the_flushed_audio_and_video_and_marks_the_session_cut_off()
-> anyhow::Result<()> {
    let dir = tempfile::tempdir()?;
    let data = dir.path().join("data");
    let recordings = data.join("recordings");
    let db = data.join("roundtable.db");
    let (room, fay_secret) = create_room_for_facilitator(&data, "Recorded").await?;
    let server = Server::start(serve(&data), &dir.path().join("first.log")).await?;

    // Ann consents at join, Pat never; both speak. Fay (the facilitator) listens and records.
    let mut fay = Client::join_invited(server.addr, &room, "Fay", &fay_secret).await?;
    let consenting = JoinOptions {
        packet_log: true,
        consent: true,
    };
    let mut ann = Client::join_full(server.addr, &room, "Ann", None, consenting).await?;
    let mut pat = Client::join(server.addr, &room, "Pat").await?;
    let (ann_id, pat_id) = (ann.id.clone(), pat.id.clone());
    speak(&mut ann, 0).await?;
    speak(&mut pat, 1).await?;
    for who in [&ann_id, &pat_id] {
        hear_more(&fay, who, 20).await?;
    }
    fay.send(ClientMsg::Recording {
        on: true,
        presentation_only: false,
    });
    let on = recording(&mut fay, |r| r.on && r.recorded == [ann_id.clone()]).await?;
    let session = on.session.context("a recording without a session id")?;
    let ann_from = last_heard(&fay, &ann_id).0;

    // Three seconds of Ann on disk, and the session in the database. The file grew just
    // now: a flush. Let 1.6 flush intervals pass, so that the next flush is due, and the kill
    // falls between two: a recorder that flushed less often would lose more than one.
    let file = wait_for_file(&recordings.join(&session).join(&ann_id), ON_DISK).await?;
    wait_for_session(&db, &session).await?;
    hear_more(&fay, &ann_id, (at_most_lost() * 8 / 5) as usize).await?;
    let (heard_last, heard_sent_ns) = last_heard(&fay, &ann_id);
    let video_heard_last = fay
        .media
        .from(&ann_id, MediaKind::Video)
        .last()
        .map(|r| r.counter);
    server.kill().await?;
    let killed_ms = unix_ms();
    let to_unix_ms = clock_pair();

    // The file as the crash left it: whole pages, Ann's packets in order, up to about the kill.
    let bytes = std::fs::read(&file)?;
    let pages = read_pages(&bytes)?;
    assert_eq!(pages.tail, 0, "the file ends in a torn page");
    let audio = audio_of(&pages)?;
    let counters: Vec<u64> = audio.iter().map(|a| a.0).collect();
    let (first, last) = (counters[0], counters[counters.len() - 1]);
    assert!(
        counters.windows(2).all(|w| w[1] == w[0] + 1),
        "a gap or a reordering in {counters:?}"
    );
    assert!(
        first.abs_diff(ann_from) <= EDGE,
        "the file starts at {first}, the recording at {ann_from}"
    );
    assert!(
        last + at_most_lost() + MARGIN >= heard_last,
        "the file ends at packet {last}, but Fay heard up to {heard_last} before the kill: \
         more than a flush interval lost"
    );
    assert!(
        last <= heard_last + MARGIN,
        "the file ends at packet {last}, after what was sent before the kill ({heard_last})"
    );
    // Ann's video: a WebM file never finished, which reads up to about the kill.
    let ann_folder = file.parent().context("a folder")?;
    let webm = files_under(ann_folder)?
        .into_iter()
        .find(|f| f.extension().is_some_and(|e| e == "webm"))
        .context("Ann has no WebM file")?;
    let webm_bytes = std::fs::read(&webm)?;
    let clusters = webm::whole_clusters(&webm_bytes)?;
    assert!(clusters >= 1, "no Cluster in the WebM");
    let frames = webm::frames(&webm)?;
    assert!(frames[0].0, "the WebM starts with a keyframe");
    let video: Vec<u64> = frames.iter().map(|f| f.1).collect();
    // A keyframe is three packets, a delta frame one: each frame's counter follows.
    let follows = frames
        .windows(2)
        .all(|w| w[1].1 == w[0].1 + if w[0].0 { 3 } else { 1 });
    assert!(follows, "a gap or a reordering in the WebM: {frames:?}");
    let video_heard_last = video_heard_last.context("Fay heard no video")?;
    let video_last = video[video.len() - 1];
    assert!(
        video_last + frames_at_most_lost() + MARGIN >= video_heard_last,
        "the WebM ends at frame {video_last}, but Fay heard up to {video_heard_last} before \
         the kill: more than a flush interval lost"
    );
    assert!(
        video_last <= video_heard_last + MARGIN,
        "the WebM ends at frame {video_last}, after what was sent before the kill \
         ({video_heard_last})"
    );
    // Pat never consented: nothing of hers, nor anything else, is there.
    let anns = sorted([file.clone(), webm.clone()]);
    assert_eq!(files_under(&recordings)?, anns, "only Ann's files");
    for client in [fay, ann, pat] {
        client.drop_connection().await;
    }

    // A new start marks the session cut off, ended at the last write: after the last packet
    // in the file was sent, before the kill, and so within about a flush of the kill.
    let server = Server::start(serve(&data), &dir.path().join("second.log")).await?;
    let row = session_row(&db, &session).await?;
    let (started_at, ended_at, cut_off) = row.context("the session is gone")?;
    assert!(cut_off, "the session is not marked cut off");
    let ended_at = ended_at.context("the cut-off session has no end")?;
    let last_sent_ms = to_unix_ms(audio[audio.len() - 1].1);
    let heard_sent_ms = to_unix_ms(heard_sent_ns);
    let flush_ms = (AT_MOST_LOST + PERIOD * MARGIN as u32).as_millis() as i64;
    assert!(
        ended_at <= killed_ms,
        "ended at {ended_at}, after the kill at {killed_ms}"
    );
    assert!(
        ended_at + CLOCK_SLACK_MS >= last_sent_ms,
        "ended at {ended_at}, before its last packet was sent at {last_sent_ms}"
    );
    assert!(
        ended_at + flush_ms >= heard_sent_ms,
        "ended at {ended_at}, more than a flush before the last packet heard ({heard_sent_ms})"
    );
    assert!(
        started_at < ended_at,
        "started at {started_at}, ended at {ended_at}"
    );
    assert_eq!(std::fs::read(&file)?, bytes, "the restart changed the file");
    assert_eq!(
        std::fs::read(&webm)?,
        webm_bytes,
        "the restart changed the WebM"
    );
    // Files of the whole session (a mixdown, chapters) may come; speakers' files may not.
    assert_eq!(files_under(file.parent().context("a folder")?)?, anns);
    assert_eq!(folders_in(&recordings.join(&session))?, [ann_id.as_str()]);
    let first_ann = ann_id;

    // Recording again in the same room touches nothing of the old session.
    let mut fay = Client::join_invited(server.addr, &room, "Fay", &fay_secret).await?;
    let mut ann = Client::join_full(server.addr, &room, "Ann", None, consenting).await?;
    let ann_id = ann.id.clone();
    speak(&mut ann, 2).await?;
    hear_more(&fay, &ann_id, 20).await?;
    fay.send(ClientMsg::Recording {
        on: true,
        presentation_only: false,
    });
    let again = recording(&mut fay, |r| r.on && r.recorded == [ann_id.clone()]).await?;
    let new_session = again.session.context("a recording without a session id")?;
    assert_ne!(new_session, session);
    wait_for_file(&recordings.join(&new_session).join(&ann_id), 10).await?;
    assert_eq!(
        std::fs::read(&file)?,
        bytes,
        "recording again changed the old file"
    );
    assert_eq!(
        std::fs::read(&webm)?,
        webm_bytes,
        "recording again changed the WebM"
    );
    assert_eq!(files_under(file.parent().context("a folder")?)?, anns);
    assert_eq!(
        folders_in(&recordings.join(&session))?,
        [first_ann.as_str()]
    );
    let row = session_row(&db, &session).await?;
    assert_eq!(
        row,
        Some((started_at, Some(ended_at), true)),
        "the old session changed"
    );
    server.kill().await?;
    Ok(())
}

/// Publish an Opus track of counted packets and a VP8-framed video track of counted frames,
/// with their own SSRCs per `set`. The video sends a keyframe when asked (the recorder asks
/// as it starts), and otherwise not.
async fn speak(client: &mut Client, set: u32) -> anyhow::Result<()> {
    let plan = PublishPlan {
        audio: Some(TrackPlan {
            period: PERIOD,
            min_bytes: 80,
            max_bytes: 80,
            keyframes: None,
            packets: Some(PACKETS),
            vp8_framing: false,
        }),
        video: Some(TrackPlan {
            period: FRAME_PERIOD,
            min_bytes: 600,
            max_bytes: 600,
            keyframes: Some(Keyframes {
                every: Duration::from_secs(3600),
                extra_packets: 2,
            }),
            packets: Some(PACKETS),
            vp8_framing: true,
        }),
        set,
        ..PublishPlan::default()
    };
    client.publish_plan(plan).await
}

/// The counter and send time of the last of `who`'s audio packets that `fay` heard.
fn last_heard(fay: &Client, who: &str) -> (u64, u64) {
    let heard = fay.media.from(who, MediaKind::Audio);
    heard.last().map_or((0, 0), |r| (r.counter, r.sent_ns))
}

/// Wait until `fay` has heard `n` more of `who`'s audio packets.
async fn hear_more(fay: &Client, who: &str, n: usize) -> anyhow::Result<()> {
    let start = fay.media.from(who, MediaKind::Audio).len();
    fay.media
        .wait_for("more audio", |log| {
            log.from(who, MediaKind::Audio).len() >= start + n
        })
        .await
}

/// Wait for a `recording` message that `want` accepts.
async fn recording(
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
        bail!("not a recording message: {msg:?}")
    };
    Ok(recording)
}

/// Wait until the one Ogg file in `folder` (`RECORDINGS/SESSION/PARTICIPANT`) holds `n`
/// audio packets in whole pages; its path. It looks again at each write the file system
/// reports under the recordings folder, so it returns at the flush that made the file long
/// enough.
async fn wait_for_file(folder: &Path, n: usize) -> anyhow::Result<PathBuf> {
    let recordings = folder.ancestors().nth(2).context("no recordings folder")?;
    let look = async || -> anyhow::Result<Option<PathBuf>> {
        if !folder.exists() {
            return Ok(None);
        }
        let mut files = files_under(folder)?;
        files.retain(|f| f.extension().is_some_and(|e| e == "opus"));
        ensure!(files.len() <= 1, "more than one Ogg file: {files:?}");
        let Some(file) = files.first() else {
            return Ok(None);
        };
        // A file may be empty until its first packet: what does not read as Ogg Opus yet
        // is not long enough. The reading after the kill is strict.
        let pages = read_pages(&std::fs::read(file)?)?;
        Ok(audio_of(&pages)
            .is_ok_and(|audio| audio.len() >= n)
            .then(|| file.clone()))
    };
    changes::when(recordings, |_| true, look)
        .await
        .with_context(|| format!("no file of {n} packets in {}", folder.display()))
}

/// What an Ogg file holds, read page by page with the `ogg` crate's parser, which checks
/// each page's CRC.
struct Pages {
    /// The packets of the whole pages, in order.
    packets: Vec<Vec<u8>>,
    /// Bytes after the last whole page (a page being written while we read).
    tail: usize,
}

/// Read `bytes` as Ogg pages, one right after another from the first byte.
fn read_pages(bytes: &[u8]) -> anyhow::Result<Pages> {
    const HEADER: usize = 27;
    let mut reader = BasePacketReader::new();
    let mut packets = Vec::new();
    let mut at = 0;
    while let Some(header) = bytes.get(at..at + HEADER) {
        ensure!(header.starts_with(b"OggS"), "no Ogg page at byte {at}");
        let (mut parser, segments) = PageParser::new(header.try_into()?)?;
        let table_end = at + HEADER + segments;
        let Some(table) = bytes.get(at + HEADER..table_end) else {
            break;
        };
        let size = parser.parse_segments(table.to_vec());
        let Some(body) = bytes.get(table_end..table_end + size) else {
            break;
        };
        let page = parser
            .parse_packet_data(body.to_vec())
            .with_context(|| format!("the page at byte {at}"))?;
        reader.push_page(page)?;
        while let Some(packet) = reader.read_packet() {
            packets.push(packet.data);
        }
        at = table_end + size;
    }
    Ok(Pages {
        packets,
        tail: bytes.len() - at,
    })
}

/// The (counter, send time) of each audio packet of an Ogg Opus file, after its headers.
/// Empty Opus frames that fill gaps in time (one byte each) are left out.
fn audio_of(pages: &Pages) -> anyhow::Result<Vec<(u64, u64)>> {
    let [head, tags, audio @ ..] = &pages.packets[..] else {
        bail!("no Opus headers");
    };
    ensure!(
        head.starts_with(b"OpusHead"),
        "the first packet is not OpusHead"
    );
    ensure!(
        tags.starts_with(b"OpusTags"),
        "the second packet is not OpusTags"
    );
    let stamped: Vec<(u64, u64)> = audio
        .iter()
        .filter(|p| p.len() > 1)
        .map(|p| {
            let stamp = p.get(..16).context("a packet shorter than its stamp")?;
            let counter = u64::from_be_bytes(stamp[..8].try_into()?);
            let sent_ns = u64::from_be_bytes(stamp[8..].try_into()?);
            Ok((counter, sent_ns))
        })
        .collect::<anyhow::Result<_>>()?;
    ensure!(!stamped.is_empty(), "no audio");
    Ok(stamped)
}

/// Every file under `dir`, sorted.
fn files_under(dir: &Path) -> anyhow::Result<Vec<PathBuf>> {
    let mut found = Vec::new();
    let mut folders = vec![dir.to_path_buf()];
    while let Some(folder) = folders.pop() {
        for entry in std::fs::read_dir(&folder)? {
            let path = entry?.path();
            if path.is_dir() {
                folders.push(path);
            } else {
                found.push(path);
            }
        }
    }
    Ok(sorted(found))
}

/// The names of the folders in `dir`, sorted: a session's speakers.
fn folders_in(dir: &Path) -> anyhow::Result<Vec<String>> {
    let mut names = Vec::new();
    for entry in std::fs::read_dir(dir)? {
        let entry = entry?;
        if entry.file_type()?.is_dir() {
            names.push(entry.file_name().to_string_lossy().into_owned());
        }
    }
    names.sort();
    Ok(names)
}

fn sorted(paths: impl IntoIterator<Item = PathBuf>) -> Vec<PathBuf> {
    let mut paths: Vec<PathBuf> = paths.into_iter().collect();
    paths.sort();
    paths
}

/// A session's (started_at, ended_at, cut_off), read from the server's SQLite file.
async fn session_row(db: &Path, id: &str) -> anyhow::Result<Option<(i64, Option<i64>, bool)>> {
    let mut conn = SqliteConnection::connect(&format!("sqlite:{}", db.display())).await?;
    let row =
        sqlx::query_as("SELECT started_at, ended_at, cut_off FROM recording_sessions WHERE id = ?")
            .bind(id)
            .fetch_optional(&mut conn)
            .await?;
    conn.close().await?;
    Ok(row)
}

/// Wait until the room's writer has stored the session (it does so behind the room's back):
/// the database is read again at each write to its files.
async fn wait_for_session(db: &Path, id: &str) -> anyhow::Result<()> {
    let data = db.parent().context("no data folder")?;
    let name = db.file_name().context("no database file")?.to_os_string();
    // Our own reads touch only the `-shm` file: the database and its `-wal` are the
    // server's writes.
    let written = move |p: &Path| {
        p.file_name().is_some_and(|f| {
            f == name.as_os_str()
                || f.to_string_lossy() == format!("{}-wal", name.to_string_lossy())
        })
    };
    changes::when(data, written, async || {
        Ok(session_row(db, id).await?.map(|_| ()))
    })
    .await
    .with_context(|| format!("session {id} never stored"))
}

fn unix_ms() -> i64 {
    let since = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap_or_default();
    i64::try_from(since.as_millis()).unwrap_or(i64::MAX)
}

/// Turns a send time ([`now_ns`], the load generator's monotonic clock) into Unix ms.
fn clock_pair() -> impl Fn(u64) -> i64 {
    let (mono_ns, wall_ms) = (now_ns(), unix_ms());
    move |ns| wall_ms - i64::try_from(mono_ns.saturating_sub(ns) / 1_000_000).unwrap_or(0)
}
