//! One recorded track's file, whatever its kind: audio to Ogg Opus ([`OpusFile`]), video to
//! WebM ([`WebmFile`]). Both take RTP packets, flush every second and finish.

use std::io;
use std::path::Path;

use signaling::wire::MediaKind;

use super::ogg::OpusFile;
use super::webm::WebmFile;
use crate::media::RecordedPacket;

/// An open track file.
pub(super) enum TrackFile {
    Audio(OpusFile),
    Video(WebmFile),
}

impl TrackFile {
    /// The file name extension of a track of `kind`.
    pub(super) fn extension(kind: MediaKind) -> &'static str {
        match kind {
            MediaKind::Audio => "opus",
            MediaKind::Video => "webm",
        }
    }

    /// Create the file of a track of `kind` at `path`, which must not exist. `serial`
    /// names an Ogg stream.
    pub(super) fn create(kind: MediaKind, path: &Path, serial: u32) -> io::Result<Self> {
        Ok(match kind {
            MediaKind::Audio => TrackFile::Audio(OpusFile::create(path, serial)?),
            MediaKind::Video => TrackFile::Video(WebmFile::create(path)?),
        })
    }

    /// Take one RTP packet of the track, which arrived at `at_ms` (Unix ms).
    pub(super) fn write(&mut self, packet: &RecordedPacket, at_ms: i64) -> io::Result<()> {
        match self {
            TrackFile::Audio(file) => file.write(at_ms, packet.timestamp, &packet.payload),
            TrackFile::Video(file) => file.write(packet),
        }
    }

    /// Hand what was written to the OS.
    pub(super) fn flush(&mut self) -> io::Result<()> {
        match self {
            TrackFile::Audio(file) => file.flush(),
            TrackFile::Video(file) => file.flush(),
        }
    }

    /// Finish the file and sync it; returns the packets (audio) or frames (video) it holds.
    pub(super) fn finish(self) -> io::Result<u64> {
        match self {
            TrackFile::Audio(file) => file.finish(),
            TrackFile::Video(file) => file.finish(),
        }
    }
}
