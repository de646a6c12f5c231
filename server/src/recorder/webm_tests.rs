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
    packets_keyed(frames, ts0, t0, 10)
}

/// A frame's VP8 bitstream: `k` in its 300 bytes, a keyframe of 320x240 every `every`.
fn frame_k(k: usize, every: usize) -> Vec<u8> {
    let key = k.is_multiple_of(every).then_some((320, 240));
    frame(key, &[k as u8; 300])
}

/// As [`packets`], with a keyframe every `every` frames.
fn packets_keyed(frames: u32, ts0: u32, t0: Instant, every: u32) -> Vec<RecordedPacket> {
    let mut out = Vec::new();
    for k in 0..frames {
        let data = frame_k(k as usize, every as usize);
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

/// An EBML variable-size integer at `at`: (value, length). An ID keeps its marker bit; a size
/// loses it, and all ones is "unknown" (None).
fn vint(bytes: &[u8], at: usize, id: bool) -> (Option<u64>, usize) {
    let len = bytes[at].leading_zeros() as usize + 1;
    assert!(len <= 8, "a vint at {at}");
    let mut v = u64::from(bytes[at]);
    if !id {
        v &= 0xff >> len;
    }
    for b in &bytes[at + 1..at + len] {
        v = v << 8 | u64::from(*b);
    }
    let unknown = !id && v == (1 << (7 * len)) - 1;
    (if unknown { None } else { Some(v) }, len)
}

/// The Segment's children of a WebM file, walked from the top, as (ID, size): checked here
/// to have known sizes that tile the file to its end, so that a reader that trusts sizes
/// finds every Cluster whole.
fn top_level(bytes: &[u8]) -> Vec<(u64, u64)> {
    let mut children = Vec::new();
    let mut at = 0;
    while at < bytes.len() {
        let (id, n) = vint(bytes, at, true);
        let (size, m) = vint(bytes, at + n, false);
        let id = id.unwrap();
        at += n + m;
        if id == 0x1853_8067 {
            continue; // the Segment: its children follow, its size may be unknown.
        }
        let size = size.unwrap_or_else(|| panic!("element {id:x} of unknown size at {at}"));
        at += size as usize;
        assert!(at <= bytes.len(), "element {id:x} runs past the end");
        if id != 0x1a45_dfa3 {
            children.push((id, size));
        }
    }
    children
}

const CLUSTER: u64 = 0x1f43_b675;

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
        if k % 7 == 0 {
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
    let children = top_level(&std::fs::read(&path).unwrap());
    let clusters = children.iter().filter(|c| c.0 == CLUSTER).count();
    assert_eq!(clusters, 3, "a Cluster at each keyframe: {children:x?}");
    assert!(
        children.iter().any(|c| c.0 == 0x1c53_bb6b),
        "the file has cues"
    );
}

/// A crash: the file was flushed but never finished. A copy taken after each flush, with
/// more frames written since, reads back exactly the frames up to the flush, each whole, and
/// says how long it is: in one long Cluster (a keyframe only at the start, as the recorder
/// asks), or in several.
#[test]
fn a_file_never_finished_reads_up_to_its_last_flush() {
    for every in [1000, 10] {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("v-1.webm");
        let mut file = WebmFile::create(&path).unwrap();
        let packets = packets_keyed(150, 0, Instant::now(), every);
        // Frames 0..30, 30..75, 75..150; each part's 13 KB or more is past the 8 KB a
        // buffered writer would have let out between flushes.
        let mut copies = Vec::new();
        for (n, part) in [(30, 0..60), (75, 60..150), (150, 150..300)] {
            for p in &packets[part] {
                file.write(p).unwrap();
            }
            let copy = dir.path().join(format!("after-{n}.webm"));
            // Before the flush: the frames since the last one are not on disk.
            std::fs::copy(&path, &copy).unwrap();
            copies.push((copy, n, copies.last().map_or(0, |c: &(_, usize, _)| c.1)));
            file.flush().unwrap();
            let copy = dir.path().join(format!("flushed-{n}.webm"));
            std::fs::copy(&path, &copy).unwrap();
            copies.push((copy, n, n));
        }
        drop(file);

        for (copy, _, on_disk) in copies.iter().filter(|c| c.2 > 0) {
            let (mkv, frames) = read_back(copy);
            let name = copy.display();
            let children = top_level(&std::fs::read(copy).unwrap());
            let clusters = children.iter().filter(|c| c.0 == CLUSTER).count();
            let keyframes = on_disk.div_ceil(every as usize);
            assert_eq!(clusters, keyframes, "{name}: a Cluster at each keyframe");
            assert_eq!(
                frames.len(),
                *on_disk,
                "{name}: every frame up to the flush"
            );
            for (k, f) in frames.iter().enumerate() {
                assert_eq!(
                    f.data,
                    frame_k(k, every as usize),
                    "{name}: frame {k} whole"
                );
                assert_eq!(f.is_keyframe, Some(k % every as usize == 0));
                assert_eq!(f.timestamp, 100 * k as u64 / 3);
            }
            let duration = mkv.info().duration().unwrap();
            let expected = 100.0 * *on_disk as f64 / 3.0;
            assert!(
                (duration - expected).abs() < 1.0,
                "{name}: the duration as of the flush: {duration} ms, not {expected}"
            );
        }
        // Before the first flush, nothing is on disk: no header, no torn frame.
        assert_eq!(std::fs::metadata(&copies[0].0).unwrap().len(), 0);
    }
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

#[test]
fn timestamps_that_leap_hours_each_frame_do_not_overflow() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("v-1.webm");
    let mut file = WebmFile::create(&path).unwrap();
    // A publisher's RTP clock leaping forward by half its range at every frame: the time
    // in the file would pass u64 nanoseconds after a few frames.
    let mut packets = packets_keyed(12, 0, Instant::now(), 1);
    for p in &mut packets {
        p.timestamp = (u32::from(p.seq) / 2).wrapping_mul(0x7fff_ffff);
    }
    for p in &packets {
        let _ = file.write(p);
    }
    let frames = file.finish().unwrap();
    assert!(frames >= 1, "the first frames are kept");
    assert!(
        frames < 12,
        "frames past the file's time range are left out"
    );
    let (_, read) = read_back(&path);
    assert_eq!(read.len() as u64, frames);
}
