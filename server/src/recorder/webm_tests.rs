//! The WebM writer, read back with `matroska-demuxer`: frames, sizes, keyframe flags and
//! times; the start time; a file never finished; a track that is not VP8.

use std::fs::File;
use std::time::{Duration, Instant};

use matroska_demuxer::{Frame as MkvFrame, MatroskaFile, TrackType};

use super::*;
use crate::media::TrackKey;
use crate::recorder::vp8::synthetic::{frame, payload};

/// The RTP packets of `frames` frames at 30 fps from RTP time `ts0`: a keyframe of 320x240
/// every 10th frame, each frame in two packets.
fn packets(frames: u32, ts0: u32, t0: Instant) -> Vec<RecordedPacket> {
    let mut out = Vec::new();
    for k in 0..frames {
        let key = (k % 10 == 0).then_some((320, 240));
        let data = frame(key, &[k as u8; 300]);
        let (a, b) = data.split_at(data.len() / 2);
        for (part, bytes) in [a, b].into_iter().enumerate() {
            out.push(RecordedPacket {
                track: TrackKey::for_test(1),
                ssrc: 2222,
                payload_type: 96,
                codec: Codec::Vp8,
                seq: (2 * k + part as u32) as u16,
                timestamp: ts0.wrapping_add(3000 * k),
                marker: part == 1,
                payload: payload(part == 0, k as u16, bytes),
                arrived: t0 + Duration::from_millis(33 * u64::from(k)),
            });
        }
    }
    out
}

fn read_back(path: &Path) -> (MatroskaFile<File>, Vec<MkvFrame>) {
    let mut mkv = MatroskaFile::open(File::open(path).unwrap()).unwrap();
    let mut frames = Vec::new();
    let mut f = MkvFrame::default();
    while mkv.next_frame(&mut f).unwrap() {
        frames.push(f.clone());
    }
    (mkv, frames)
}

#[test]
fn a_finished_file_reads_back_frame_for_frame() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("v-1.webm");
    let mut file = WebmFile::create(&path).unwrap();
    // The RTP clock wraps a third of the way in.
    let t0 = Instant::now();
    let packets = packets(30, u32::MAX - 30_000, t0);
    for (k, p) in packets.iter().enumerate() {
        file.write(p).unwrap();
        if k == 20 {
            file.flush().unwrap();
        }
    }
    assert_eq!(file.finish().unwrap(), 30);
    assert!(WebmFile::create(&path).is_err(), "never overwritten");

    let (mkv, frames) = read_back(&path);
    assert_eq!(mkv.ebml_header().doc_type(), "webm");
    let track = &mkv.tracks()[0];
    assert_eq!(track.track_type(), TrackType::Video);
    assert_eq!(track.codec_id(), "V_VP8");
    let video = track.video().unwrap();
    assert_eq!(
        (video.pixel_width().get(), video.pixel_height().get()),
        (320, 240)
    );
    assert_eq!(frames.len(), 30);
    for (k, f) in frames.iter().enumerate() {
        assert_eq!(f.timestamp, 100 * k as u64 / 3, "ms from the first frame");
        assert_eq!(f.is_keyframe, Some(k % 10 == 0));
        let key = (k % 10 == 0).then_some((320, 240));
        assert_eq!(f.data, frame(key, &[k as u8; 300]), "the VP8 bitstream");
    }
    let duration = mkv.info().duration().unwrap();
    assert!((duration - 1000.0).abs() < 2.0, "30 frames: {duration} ms");
    let start: u128 = mkv
        .info()
        .writing_app()
        .strip_prefix("roundtable ROUNDTABLE_START_MS=")
        .unwrap()
        .parse()
        .unwrap();
    let now = SystemTime::now().duration_since(UNIX_EPOCH).unwrap();
    let age = now.as_millis() - start;
    assert!(
        age < 60_000,
        "the first frame's wall-clock time: {age} ms ago"
    );
    let bytes = std::fs::read(&path).unwrap();
    let cues = [0x1c, 0x53, 0xbb, 0x6b];
    assert!(bytes.windows(4).any(|w| w == cues), "the file has cues");
}

/// A crash: the file was flushed but never finished. It reads back up to the flush, and
/// says how long it is.
#[test]
fn a_file_never_finished_reads_up_to_its_last_flush() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("v-1.webm");
    let mut file = WebmFile::create(&path).unwrap();
    let packets = packets(45, 0, Instant::now());
    for p in &packets[..60] {
        file.write(p).unwrap();
    }
    file.flush().unwrap();
    for p in &packets[60..] {
        file.write(p).unwrap();
    }
    // Copy the file as it is on disk now, as a crash would leave it.
    let crashed = dir.path().join("crashed.webm");
    std::fs::copy(&path, &crashed).unwrap();
    drop(file);

    let (mkv, frames) = read_back(&crashed);
    // libwebm also wrote out the buffer when it went back to size a cluster (at the
    // keyframe of frame 40): more than was flushed may be there, never less.
    assert!(
        (30..45).contains(&frames.len()),
        "every frame up to the flush: {}",
        frames.len()
    );
    for (k, f) in frames.iter().enumerate() {
        let key = (k % 10 == 0).then_some((320, 240));
        assert_eq!(f.data, frame(key, &[k as u8; 300]), "frame {k} whole");
        assert_eq!(f.timestamp, 100 * k as u64 / 3);
    }
    assert_eq!(
        mkv.info().duration(),
        Some(1000.0),
        "the duration as of the flush"
    );
}

#[test]
fn no_keyframe_no_file() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("v-1.webm");
    let mut file = WebmFile::create(&path).unwrap();
    // Delta frames only: the recording started after the keyframe.
    for p in packets(9, 0, Instant::now()).iter().skip(2) {
        file.write(p).unwrap();
    }
    file.flush().unwrap();
    assert!(!path.exists());
    assert_eq!(file.finish().unwrap(), 0);
    assert!(!path.exists());
}

#[test]
fn h264_is_not_recorded() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("v-1.webm");
    let mut file = WebmFile::create(&path).unwrap();
    for mut p in packets(10, 0, Instant::now()) {
        p.codec = Codec::H264;
        file.write(&p).unwrap();
    }
    assert_eq!(file.finish().unwrap(), 0);
    assert!(!path.exists(), "no file for a codec WebM cannot hold");
}
