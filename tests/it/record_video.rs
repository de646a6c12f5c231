//! Recording video, end to end: real WebRTC publishers whose synthetic video is framed as
//! VP8, the real recorder, the WebM read back with `matroska-demuxer`. A consenting speaker's
//! video is a WebM file that starts at the keyframe the engine asked for; nothing of a
//! speaker who did not consent is on disk.

use std::fs::File;
use std::path::Path;
use std::time::Duration;

use matroska_demuxer::{Frame, MatroskaFile, TrackType};
use roundtable_loadgen::client::{Client, JoinOptions, Keyframes, PublishPlan, TrackPlan};
use roundtable_loadgen::stats::VP8_SIZE;
use signaling::roles::Role;
use signaling::wire::{ClientMsg, MediaKind, ServerMsg};

use crate::common::TestServer;

/// Frames each speaker sends, 30 a second: 20 s, more than the test needs.
const FRAMES: u64 = 600;

/// Publish counted audio and VP8-framed video, one packet a frame and a three-packet
/// keyframe whenever one is asked for. `set` tells the speakers' SSRCs apart.
async fn publish(client: &mut Client, set: u32) -> anyhow::Result<()> {
    let track = |period_ms, bytes, keyframes, vp8_framing| TrackPlan {
        period: Duration::from_millis(period_ms),
        min_bytes: bytes,
        max_bytes: bytes,
        keyframes,
        packets: Some(FRAMES),
        vp8_framing,
    };
    let keyframes = Keyframes {
        every: Duration::from_secs(3600),
        extra_packets: 2,
    };
    let plan = PublishPlan {
        audio: Some(track(20, 80, None, false)),
        video: Some(track(33, 600, Some(keyframes), true)),
        set,
        ..PublishPlan::default()
    };
    client.publish_plan(plan).await
}

/// The video packets of `who` that `fay` received: (counter, payload's first 16 bytes).
fn heard_video(fay: &Client, who: &str) -> Vec<(u64, [u8; 16])> {
    fay.media
        .from(who, MediaKind::Video)
        .iter()
        .map(|r| {
            let mut id = [0; 16];
            id[..8].copy_from_slice(&r.counter.to_be_bytes());
            id[8..].copy_from_slice(&r.sent_ns.to_be_bytes());
            (r.counter, id)
        })
        .collect()
}

async fn hear_video(fay: &Client, who: &str, n: usize) -> anyhow::Result<()> {
    let start = heard_video(fay, who).len();
    fay.media
        .wait_for("more video", |log| {
            log.from(who, MediaKind::Video).len() >= start + n
        })
        .await
}

fn holds(hay: &[u8], needle: &[u8]) -> bool {
    hay.windows(needle.len()).any(|w| w == needle)
}

/// The frames of a WebM file, after checking its one track: VP8 at the synthetic size.
fn webm_frames(path: &Path) -> anyhow::Result<(MatroskaFile<File>, Vec<Frame>)> {
    let mut mkv = MatroskaFile::open(File::open(path)?)?;
    assert_eq!(mkv.ebml_header().doc_type(), "webm");
    let track = &mkv.tracks()[0];
    assert_eq!(track.track_type(), TrackType::Video);
    assert_eq!(track.codec_id(), "V_VP8");
    let video = track.video().expect("video settings");
    let size = (video.pixel_width().get(), video.pixel_height().get());
    assert_eq!(size, (u64::from(VP8_SIZE.0), u64::from(VP8_SIZE.1)));
    let mut frames = Vec::new();
    let mut frame = Frame::default();
    while mkv.next_frame(&mut frame)? {
        frames.push(frame.clone());
    }
    Ok((mkv, frames))
}

/// The counter in a frame of the synthetic stream: after the VP8 header (10 bytes for a
/// keyframe, 3 for a delta frame).
fn counter_of(frame: &Frame) -> u64 {
    let at = if frame.is_keyframe == Some(true) {
        10
    } else {
        3
    };
    u64::from_be_bytes(frame.data[at..at + 8].try_into().unwrap())
}

/// Ann consents, Pat does not; both publish audio and video. Fay records for a while. Ann's
/// folder holds an Ogg file and a WebM file; the WebM starts with a keyframe the engine
/// asked Ann for when recording started, and holds the frames Fay was forwarded, in order.
/// Pat has no folder, and no file holds her SSRCs or payloads.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_consenting_speakers_video_is_a_webm_file() -> anyhow::Result<()> {
    let mut server = TestServer::sqlite().await?;
    let room_id = server.room("Recorded video", 6).await?;
    let (fay_secret, _) = server.invite(&room_id, Role::Facilitator, |_| {}).await?;
    let mut fay = Client::join_invited(server.addr, &room_id, "Fay", &fay_secret).await?;
    let consenting = JoinOptions {
        packet_log: true,
        consent: true,
    };
    let mut ann = Client::join_full(server.addr, &room_id, "Ann", None, consenting).await?;
    let mut pat = Client::join(server.addr, &room_id, "Pat").await?;
    let (ann_id, pat_id) = (ann.id.clone(), pat.id.clone());
    publish(&mut ann, 0).await?;
    publish(&mut pat, 1).await?;
    hear_video(&fay, &ann_id, 30).await?;
    hear_video(&fay, &pat_id, 30).await?;
    let asked_before = ann.media.keyframe_requests(MediaKind::Video);

    fay.send(ClientMsg::Recording {
        on: true,
        presentation_only: false,
    });
    let started = fay
        .expect("recording Ann", |m| {
            matches!(m, ServerMsg::Recording { recording } if recording.on && recording.recorded == [ann_id.clone()])
        })
        .await?;
    let ServerMsg::Recording { recording } = started else {
        unreachable!("matched above")
    };
    let session = recording.session.expect("a session id");
    ann.media
        .wait_for("a keyframe request as recording starts", |m| {
            m.keyframe_requests(MediaKind::Video) > asked_before
        })
        .await?;
    let from = heard_video(&fay, &ann_id).len();
    hear_video(&fay, &ann_id, 60).await?;
    fay.send(ClientMsg::Recording {
        on: false,
        presentation_only: false,
    });
    fay.expect(
        "recording stopped",
        |m| matches!(m, ServerMsg::Recording { recording } if !recording.on),
    )
    .await?;
    let until = heard_video(&fay, &ann_id).len();

    let recorder = server.state.recorder();
    // Ann's two files: audio and video.
    tokio::time::timeout(Duration::from_secs(30), recorder.finished(2)).await?;
    let session_dir = recorder.dir().join(&session);
    let mut names: Vec<String> = std::fs::read_dir(session_dir.join(&ann_id))?
        .map(|e| e.map(|e| e.file_name().to_string_lossy().into_owned()))
        .collect::<Result<_, _>>()?;
    names.sort();
    assert_eq!(names.len(), 2, "{names:?}");
    assert!(names[0].ends_with("-1.opus") && names[1].ends_with("-1.webm"));
    let folders: Vec<_> = std::fs::read_dir(&session_dir)?
        .map(|e| e.map(|e| e.file_name()))
        .collect::<Result<_, _>>()?;
    assert_eq!(folders, [ann_id.as_str()], "only Ann has files");

    let webm = session_dir.join(&ann_id).join(&names[1]);
    let (mkv, frames) = webm_frames(&webm)?;
    assert_eq!(
        frames[0].is_keyframe,
        Some(true),
        "the file starts at a keyframe"
    );
    assert!(
        mkv.info()
            .writing_app()
            .starts_with("roundtable ROUNDTABLE_START_MS=")
    );
    assert!(mkv.info().duration().is_some_and(|d| d > 1000.0));
    // Each frame is a tick Fay was forwarded, in order, from the start to the stop.
    let ann_heard = heard_video(&fay, &ann_id);
    let counters: Vec<u64> = frames.iter().map(counter_of).collect();
    assert!(counters.windows(2).all(|w| w[0] < w[1]), "{counters:?}");
    assert!(
        counters.iter().all(|c| ann_heard.iter().any(|h| h.0 == *c)),
        "every frame was one Ann sent"
    );
    assert!(
        counters[0] >= ann_heard[from.saturating_sub(5)].0,
        "no frame from before the recording"
    );
    assert!(
        counters.len() + 10 >= (until - from) * 9 / 10,
        "the frames recorded: {} of {}",
        counters.len(),
        until - from
    );
    assert!(frames.windows(2).all(|w| w[0].timestamp < w[1].timestamp));
    let webm_bytes = std::fs::read(&webm)?;
    let ann_id_bytes = ann_heard.iter().find(|h| h.0 == counters[5]).unwrap().1;
    assert!(holds(&webm_bytes, &ann_id_bytes), "the search finds Ann");

    // Nothing of Pat anywhere: not her SSRCs, not one of her payloads.
    let pat_video = heard_video(&fay, &pat_id);
    assert!(pat_video.len() > 90, "Pat published all along");
    let pat_audio = fay.media.from(&pat_id, MediaKind::Audio);
    for name in &names {
        let bytes = std::fs::read(session_dir.join(&ann_id).join(name))?;
        for ssrc in [0x1000_0001u32 + 16, 0x2000_0002 + 16] {
            assert!(!holds(&bytes, &ssrc.to_be_bytes()), "Pat's SSRC in {name}");
            assert!(!holds(&bytes, &ssrc.to_le_bytes()), "Pat's SSRC in {name}");
        }
        for (counter, id) in &pat_video {
            assert!(!holds(&bytes, id), "Pat's video {counter} in {name}");
        }
        for r in &pat_audio {
            let mut id = r.counter.to_be_bytes().to_vec();
            id.extend_from_slice(&r.sent_ns.to_be_bytes());
            assert!(!holds(&bytes, &id), "Pat's audio {} in {name}", r.counter);
        }
    }
    server.stop().await?;
    Ok(())
}
