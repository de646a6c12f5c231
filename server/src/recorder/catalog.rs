//! What a recording session's folder holds, as the admin API shows it: one entry per file,
//! with its kind, its speaker, its size, and an opaque id.
//!
//! The layout is the recorder's: `{session}/{participant}/{track}-{n}.opus` (audio),
//! `{session}/{participant}/{track}-{n}.webm` (video), and per session `mixdown.opus`,
//! `chapters.json` and `chapters.vtt`. Anything else in the folder (a file being rebuilt,
//! a stray file) is not listed and cannot be fetched.
//!
//! A file's id is the first 16 bytes of SHA-256 over `{session}/{relative path}`, in hex.
//! It is found again by scanning the session's folder, so no path ever comes from a
//! request, and no table has to follow the files.

use std::fs::File;
use std::io::{self, BufReader, Seek, SeekFrom};
use std::path::{Path, PathBuf};

use serde::Serialize;
use sha2::{Digest, Sha256};

use super::is_id;

/// What a file is.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Kind {
    /// One speaker's audio track, Ogg Opus.
    Audio,
    /// One speaker's video track, WebM.
    Video,
    /// The whole conversation, Ogg Opus.
    Mixdown,
    /// The agenda's segments, JSON or WebVTT.
    Chapters,
}

/// One file of a session.
#[derive(Debug, Clone, Serialize)]
pub struct Recording {
    /// Opaque; see the module's header.
    pub id: String,
    /// What it is.
    pub kind: Kind,
    /// The speaker's participant id (audio and video only).
    pub speaker: Option<String>,
    /// The track's id (audio and video only).
    pub track: Option<String>,
    /// A file name for a download: ids only.
    pub file_name: String,
    /// Its `Content-Type`.
    pub content_type: &'static str,
    /// Bytes.
    pub size: u64,
    /// Where it is. Never shown.
    #[serde(skip)]
    pub path: PathBuf,
}

/// A file id's length in hex digits.
const ID_HEX: usize = 32;

/// The id of the file at `relative` (with `/` between parts) in `session`.
pub fn file_id(session: &str, relative: &str) -> String {
    let digest = Sha256::digest(format!("{session}/{relative}").as_bytes());
    hex::encode(&digest[..ID_HEX / 2])
}

/// Whether `id` has the shape of a file id: 32 lowercase hex digits. Anything else (a
/// path, `..`, a percent-escape) is refused before any file is looked at.
pub fn is_file_id(id: &str) -> bool {
    id.len() == ID_HEX && id.bytes().all(|b| matches!(b, b'0'..=b'9' | b'a'..=b'f'))
}

/// Every file of `session` under `dir`, speakers' files first (by speaker, then name), then
/// the session's own. An absent folder is an empty list. `session` must be an id.
pub fn scan(dir: &Path, session: &str) -> io::Result<Vec<Recording>> {
    if !is_id(session) {
        return Err(io::Error::new(io::ErrorKind::InvalidInput, "not an id"));
    }
    let folder = dir.join(session);
    let entries = match std::fs::read_dir(&folder) {
        Ok(entries) => entries,
        Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(Vec::new()),
        Err(e) => return Err(e),
    };
    let mut speakers = Vec::new();
    let mut own = Vec::new();
    for entry in entries {
        let entry = entry?;
        let Ok(name) = entry.file_name().into_string() else {
            continue;
        };
        let kind = entry.file_type()?;
        if kind.is_dir() && is_id(&name) {
            speakers.extend(scan_speaker(session, &name, &entry.path())?);
        } else if kind.is_file()
            && let Some(recording) = session_file(session, &name, entry.path())?
        {
            own.push(recording);
        }
    }
    speakers.sort_by(|a, b| (&a.speaker, &a.file_name).cmp(&(&b.speaker, &b.file_name)));
    own.sort_by(|a, b| a.file_name.cmp(&b.file_name));
    speakers.extend(own);
    Ok(speakers)
}

/// The file of `session` whose id is `id`, if there is one.
pub fn find(dir: &Path, session: &str, id: &str) -> io::Result<Option<Recording>> {
    Ok(scan(dir, session)?.into_iter().find(|r| r.id == id))
}

/// `None` for what was removed while a scan looked (a purge, a mixdown's rename): the scan
/// goes on without it, rather than fail for everyone.
fn unless_gone<T>(result: io::Result<T>) -> io::Result<Option<T>> {
    match result {
        Ok(value) => Ok(Some(value)),
        Err(e) if e.kind() == io::ErrorKind::NotFound => Ok(None),
        Err(e) => Err(e),
    }
}

/// A speaker's files: `{track}-{n}.opus` and `{track}-{n}.webm`.
fn scan_speaker(session: &str, speaker: &str, folder: &Path) -> io::Result<Vec<Recording>> {
    let mut found = Vec::new();
    let Some(entries) = unless_gone(std::fs::read_dir(folder))? else {
        return Ok(found); // purged while we looked
    };
    for entry in entries {
        let entry = entry?;
        let Ok(name) = entry.file_name().into_string() else {
            continue;
        };
        let Some((stem, ext)) = name.rsplit_once('.') else {
            continue;
        };
        let (kind, content_type) = match ext {
            "opus" => (Kind::Audio, "audio/ogg"),
            "webm" => (Kind::Video, "video/webm"),
            _ => continue,
        };
        let Some((track, n)) = stem.rsplit_once('-') else {
            continue;
        };
        if !is_id(track) || n.is_empty() || !n.bytes().all(|b| b.is_ascii_digit()) {
            continue;
        }
        let Some(meta) = unless_gone(entry.metadata())? else {
            continue;
        };
        if !meta.is_file() {
            continue;
        }
        found.push(Recording {
            id: file_id(session, &format!("{speaker}/{name}")),
            kind,
            speaker: Some(speaker.to_string()),
            track: Some(track.to_string()),
            file_name: format!("{session}_{speaker}_{name}"),
            content_type,
            size: meta.len(),
            path: entry.path(),
        });
    }
    Ok(found)
}

/// One of the session's own files, if `name` is one.
fn session_file(session: &str, name: &str, path: PathBuf) -> io::Result<Option<Recording>> {
    let (kind, content_type) = match name {
        "mixdown.opus" => (Kind::Mixdown, "audio/ogg"),
        "chapters.json" => (Kind::Chapters, "application/json"),
        "chapters.vtt" => (Kind::Chapters, "text/vtt; charset=utf-8"),
        _ => return Ok(None),
    };
    let Some(meta) = unless_gone(std::fs::metadata(&path))? else {
        return Ok(None); // replaced or removed while we looked
    };
    let size = meta.len();
    Ok(Some(Recording {
        id: file_id(session, name),
        kind,
        speaker: None,
        track: None,
        file_name: format!("{session}_{name}"),
        content_type,
        size,
        path,
    }))
}

/// How long a media file plays, in ms; `None` for chapters, or if the file does not say.
/// Reads the file: call off the async runtime.
pub fn duration_ms(recording: &Recording) -> Option<u64> {
    match recording.kind {
        Kind::Audio | Kind::Mixdown => ogg_duration_ms(&recording.path),
        Kind::Video => webm_duration_ms(&recording.path),
        Kind::Chapters => None,
    }
}

/// How far back from the end the last granule is looked for: an Ogg page is at most 65,307
/// bytes, so two pages' worth holds the last whole one.
const OGG_TAIL: u64 = 128 * 1024;

/// An Ogg Opus file's last granule position less its pre-skip, at 48 kHz, in ms.
fn ogg_duration_ms(path: &Path) -> Option<u64> {
    let file = File::open(path).ok()?;
    let len = file.metadata().ok()?.len();
    let mut reader = ogg::reading::PacketReader::new(BufReader::new(file));
    let head = reader.read_packet().ok()??;
    if head.data.len() < 12 || &head.data[..8] != b"OpusHead" {
        return None;
    }
    let pre_skip = u64::from(u16::from_le_bytes([head.data[10], head.data[11]]));
    let tail = len.saturating_sub(OGG_TAIL);
    if tail > 0 {
        reader.seek_bytes(SeekFrom::Start(tail)).ok()?;
    }
    let granule = last_granule(&mut reader).or_else(|| {
        // The tail did not parse (a page cut by a crash): read from the start.
        reader.seek_bytes(SeekFrom::Start(0)).ok()?;
        last_granule(&mut reader)
    })?;
    Some(granule.saturating_sub(pre_skip) / 48)
}

/// The largest granule position of the pages read from here on; reading stops at the
/// first error (a cut page at the end is what a crash leaves).
fn last_granule<R: io::Read + Seek>(reader: &mut ogg::reading::PacketReader<R>) -> Option<u64> {
    let mut last = None;
    while let Ok(Some(packet)) = reader.read_packet() {
        let granule = packet.absgp_page();
        // All ones: no packet ends on this page.
        if granule != u64::MAX && packet.last_in_page() {
            last = Some(last.map_or(granule, |l: u64| l.max(granule)));
        }
    }
    last
}

/// A WebM file's Segment duration; without one (a file a crash cut short), the time of its
/// last block. In ms.
fn webm_duration_ms(path: &Path) -> Option<u64> {
    let file = BufReader::new(File::open(path).ok()?);
    let mut webm = matroska_demuxer::MatroskaFile::open(file).ok()?;
    let scale = webm.info().timestamp_scale().get();
    if let Some(duration) = webm.info().duration() {
        return Some((duration * scale as f64 / 1e6).round() as u64);
    }
    let mut frame = matroska_demuxer::Frame::default();
    let mut last = None;
    while let Ok(true) = webm.next_frame(&mut frame) {
        last = Some(last.map_or(frame.timestamp, |l: u64| l.max(frame.timestamp)));
    }
    last.map(|ts| ts.saturating_mul(scale) / 1_000_000)
}

#[cfg(test)]
#[path = "catalog_tests.rs"]
mod tests;
