//! One speaker's video as a WebM file, from the VP8 RTP payloads as they came: frames are
//! put together ([`super::vp8`]) and muxed by libwebm (the `webm` crate), nothing decoded or
//! re-encoded.
//!
//! The file starts at the first keyframe: it is created then, with that keyframe's width
//! and height (a later keyframe may change the size; VP8 decoders follow it). A track that
//! never sends a keyframe leaves no file. Timestamps come from the 90 kHz RTP clock,
//! relative to the first frame.
//!
//! The file's start, the Unix time in milliseconds when its first frame reached the server,
//! is in the Segment Info's WritingApp: `roundtable ROUNDTABLE_START_MS=<ms>`, as each Ogg
//! file's comment says it. (The crate sets no DateUTC, and WritingApp is the one string of
//! the Info it lets us write.)
//!
//! H.264 and other video codecs are not recorded in this version: a WebM holds VP8, VP9 or
//! AV1 only, and remuxing H.264 to Matroska needs its own depacketizer. Such a track is
//! logged once and leaves no file.
//!
//! Durability: libwebm writes in file mode, so [`WebmFile::finish`] makes a complete file
//! (cues, duration, sizes). Until then, libwebm's bytes wait in memory ([`sink`]) and reach
//! the file every second ([`WebmFile::flush`]), after whole frames, never a torn block. At
//! each flush the open Cluster's size is written as it is on disk, and the Info's Duration
//! (libwebm's placeholder until it finishes) is set to the time written so far. The Segment
//! keeps its "unknown" size. A crash leaves a file that plays up to its last flush.
//!
//! Clusters: libwebm starts one at each keyframe, and after 30 s without one (its default;
//! the `webm` crate does not let us change it). The recorder asks for a keyframe only at
//! its start, so a Cluster is often long; its size, written at each flush, makes it whole.

use std::fs::File;
use std::io;
use std::path::{Path, PathBuf};
use std::time::{Instant, SystemTime, UNIX_EPOCH};

use webm::mux::{Segment, SegmentBuilder, SegmentMode, VideoCodecId, VideoTrack, Writer};

use self::sink::Sink;
use super::vp8::{Assembler, Frame};
use crate::media::{Codec, RecordedPacket};

/// VP8's RTP clock.
const CLOCK: u64 = 90_000;
/// Bytes held in memory before a flush comes, at most: then they go to the file early,
/// still after a whole frame. A second of video is far less.
const MAX_PENDING: usize = 32 << 20;

/// A WebM file being written, or waiting for its first keyframe.
pub struct WebmFile {
    path: PathBuf,
    frames: Assembler,
    muxer: Option<Muxer>,
    /// A packet of a codec that is not recorded came (logged once).
    refused: bool,
    /// Scratch for the frames one packet completes.
    out: Vec<Frame>,
}

impl WebmFile {
    /// A file to be created at `path`, which must not exist, with the first keyframe.
    pub fn create(path: &Path) -> io::Result<Self> {
        if path.try_exists()? {
            return Err(io::ErrorKind::AlreadyExists.into());
        }
        Ok(WebmFile {
            path: path.to_path_buf(),
            frames: Assembler::default(),
            muxer: None,
            refused: false,
            out: Vec::new(),
        })
    }

    /// Take one RTP packet of the track.
    pub fn write(&mut self, packet: &RecordedPacket) -> io::Result<()> {
        if packet.codec != Codec::Vp8 {
            if !std::mem::replace(&mut self.refused, true) {
                tracing::warn!(codec = ?packet.codec, path = %self.path.display(),
                    "only VP8 video is recorded; this track's video is not");
            }
            return Ok(());
        }
        let mut out = std::mem::take(&mut self.out);
        let p = packet;
        let payload = p.payload.clone();
        self.frames
            .push(p.seq, p.timestamp, p.marker, payload, p.arrived, &mut out);
        let written = self.mux(&mut out);
        self.out = out;
        written
    }

    /// Hand what was written to the OS, and say in the file how long it is so far.
    pub fn flush(&mut self) -> io::Result<()> {
        match &mut self.muxer {
            Some(muxer) => muxer.flush(),
            None => Ok(()),
        }
    }

    /// Write what is left, finish the file (cues, duration) and sync it to disk. Returns
    /// the frames the file holds: 0 if it was never created.
    pub fn finish(mut self) -> io::Result<u64> {
        let mut out = std::mem::take(&mut self.out);
        self.frames.finish(&mut out);
        self.mux(&mut out)?;
        match self.muxer.take() {
            Some(muxer) => muxer.finish(),
            None => Ok(0),
        }
    }

    fn mux(&mut self, frames: &mut Vec<Frame>) -> io::Result<()> {
        for frame in frames.drain(..) {
            let muxer = match &mut self.muxer {
                Some(muxer) => muxer,
                None => self.muxer.insert(Muxer::create(&self.path, &frame)?),
            };
            muxer.add(&frame)?;
            if muxer.sink.lock().pending() > MAX_PENDING {
                muxer.flush()?;
            }
        }
        Ok(())
    }
}

/// libwebm's segment over the file, once the first keyframe came.
struct Muxer {
    segment: Segment<Sink>,
    track: VideoTrack,
    sink: Sink,
    /// Where the Info's Duration value is in the file, if found.
    duration_at: Option<u64>,
    /// RTP time: the last frame's timestamp, and how far it is from the first.
    last_ts: u32,
    since_first: i64,
    /// The last frame's time in the file (ns), and the gap before it.
    last_ns: u64,
    last_gap_ns: u64,
    frames: u64,
}

impl Muxer {
    /// Create the file, its header made from `first`, a keyframe.
    fn create(path: &Path, first: &Frame) -> io::Result<Muxer> {
        let Some((width, height)) = first.keyframe else {
            return Err(io::Error::other("a WebM file starts with a keyframe"));
        };
        let sink = Sink::new(File::create_new(path)?);
        let app = format!("roundtable ROUNDTABLE_START_MS={}", unix_ms(first.arrived));
        let (builder, track) = SegmentBuilder::new(Writer::new(sink.clone()))
            .and_then(|b| b.set_mode(SegmentMode::File))
            .and_then(|b| b.set_writing_app(&app))
            .and_then(|b| b.add_video_track(width.into(), height.into(), VideoCodecId::VP8, None))
            .map_err(mux_error)?;
        Ok(Muxer {
            segment: builder.build(),
            track,
            sink,
            duration_at: None,
            last_ts: first.timestamp,
            since_first: 0,
            last_ns: 0,
            last_gap_ns: 0,
            frames: 0,
        })
    }

    fn add(&mut self, frame: &Frame) -> io::Result<()> {
        // RTP time wraps at 2^32.
        let since_first =
            self.since_first + i64::from(frame.timestamp.wrapping_sub(self.last_ts) as i32);
        let ticks = u64::try_from(since_first).unwrap_or(0);
        // Past u64 nanoseconds (a publisher's clock leaping hours a frame): left out.
        let Some(ns) = ticks.checked_mul(1_000_000_000).map(|t| t / CLOCK) else {
            return Ok(());
        };
        if self.frames > 0 && ns < self.last_ns {
            // Timestamps going back: not a stream a player can follow. Leave the frame out.
            return Ok(());
        }
        let keyframe = frame.keyframe.is_some();
        let end = self.sink.lock().end();
        self.segment
            .add_frame(self.track, &frame.data, ns, keyframe)
            .map_err(mux_error)?;
        let mut sink = self.sink.lock();
        sink.added_frame(end, frame.data.len());
        if self.frames == 0 {
            // libwebm wrote the header with the first frame.
            self.duration_at = sink.find_duration();
        }
        drop(sink);
        self.frames += 1;
        self.last_gap_ns = ns - self.last_ns;
        self.last_ns = ns;
        self.last_ts = frame.timestamp;
        self.since_first = since_first;
        Ok(())
    }

    /// The file's length in ms: the last frame's start, plus one frame's time.
    fn duration_ms(&self) -> u64 {
        ((self.last_ns + self.last_gap_ns + 500_000) / 1_000_000).max(1)
    }

    fn flush(&mut self) -> io::Result<()> {
        let duration = self.duration_ms() as f32;
        let mut sink = self.sink.lock();
        sink.store(true)?;
        if let Some(at) = self.duration_at {
            sink.write_stored(&duration.to_be_bytes(), at)?;
        }
        Ok(())
    }

    fn finish(self) -> io::Result<u64> {
        let duration = self.duration_ms();
        let frames = self.frames;
        let sink = self.sink.clone();
        drop(
            self.segment
                .finalize(Some(duration))
                .map_err(|_| io::Error::other("libwebm could not finish the file"))?,
        );
        let mut sink = sink.lock();
        sink.store(false)?;
        sink.sync()?;
        Ok(frames)
    }
}

fn mux_error(e: webm::mux::Error) -> io::Error {
    io::Error::other(format!("libwebm: {e:?}"))
}

/// The Unix time of `at`, in milliseconds.
fn unix_ms(at: Instant) -> u128 {
    let ago = Instant::now().saturating_duration_since(at);
    let wall = SystemTime::now()
        .checked_sub(ago)
        .unwrap_or(SystemTime::now());
    wall.duration_since(UNIX_EPOCH).map_or(0, |d| d.as_millis())
}

#[path = "webm_sink.rs"]
mod sink;

#[cfg(test)]
#[path = "webm_tests.rs"]
mod tests;
