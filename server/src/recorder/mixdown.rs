//! The mixdown: one Ogg Opus file of a session, mixed from the speakers' audio files that
//! are on disk. Only consenting speakers have files, and a purge removes a speaker's, so the
//! mixdown holds nobody else. Each file is decoded (`opus`), placed at its start (its
//! OpusTags say when), summed, and encoded again as mono Opus.
//!
//! It streams: a 20 ms frame at a time, whatever the session's length, so memory stays small.

use std::fs::File;
use std::io::{self, BufReader};
use std::path::{Path, PathBuf};

use ogg::reading::PacketReader;
use opus::{Application, Bitrate, Channels, Decoder, Encoder};

use super::ogg::{OpusFile, RATE, start_of};

/// The mixdown's name in a session's folder.
pub const FILE: &str = "mixdown.opus";
/// Samples in one frame: 20 ms.
const FRAME: usize = 960;
/// The most one Opus packet decodes to: 120 ms.
const MAX_PACKET: usize = 5760;
/// The mixdown's bit rate: speech and music, mono.
const BITRATE: i32 = 48_000;

/// What a mixdown holds.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Mixed {
    /// Files mixed.
    pub files: usize,
    /// Its length, in samples at 48 kHz.
    pub samples: u64,
}

/// Mix the speakers' audio files in `session_dir` (those in its sub-folders) into
/// `session_dir/mixdown.opus`, with time 0 at `start_ms` and the end at `end_ms` (Unix ms,
/// the session's). With no audio file, the old mixdown is removed and `None` returned. The
/// new file replaces the old at once (a rename): a reader sees one or the other, never half.
///
/// A file is placed by the start its tags name, within the session: one that names a time
/// after the session's end (a clock that jumped) is left out, with a warning, rather than
/// make the mixdown hours of silence.
pub fn mixdown(session_dir: &Path, start_ms: i64, end_ms: i64) -> io::Result<Option<Mixed>> {
    let target = session_dir.join(FILE);
    let mut sources = Vec::new();
    for path in speaker_files(session_dir)? {
        match Source::open(&path, start_ms, end_ms) {
            Ok(Some(source)) => sources.push(source),
            Ok(None) => {}
            Err(e) => tracing::warn!(path = %path.display(), %e, "mixdown: file skipped"),
        }
    }
    if sources.is_empty() {
        match std::fs::remove_file(&target) {
            Err(e) if e.kind() != io::ErrorKind::NotFound => return Err(e),
            _ => return Ok(None),
        }
    }
    let files = sources.len();
    let partial = session_dir.join(format!("{FILE}.partial"));
    let _ = std::fs::remove_file(&partial);
    let mut out = OpusFile::create(&partial, 1)?;
    let mut encoder = Encoder::new(RATE, Channels::Mono, Application::Audio).map_err(codec)?;
    encoder.set_bitrate(Bitrate::Bits(BITRATE)).map_err(codec)?;
    let mut mix = vec![0f32; FRAME];
    let mut packet = vec![0u8; 4000];
    let mut frame = 0u64;
    loop {
        let from = frame * FRAME as u64;
        mix.fill(0.0);
        let mut live = false;
        for source in &mut sources {
            live |= source.add_to(&mut mix, from);
        }
        if !live {
            break;
        }
        for s in &mut mix {
            *s = s.clamp(-1.0, 1.0);
        }
        let len = encoder.encode_float(&mix, &mut packet).map_err(codec)?;
        out.write(start_ms, from as u32, &packet[..len])?;
        frame += 1;
    }
    out.finish()?;
    std::fs::rename(&partial, &target)?;
    Ok(Some(Mixed {
        files,
        samples: frame * FRAME as u64,
    }))
}

/// The `.opus` files one level down: `{participant}/{track}-{n}.opus`, in name order.
pub fn speaker_files(session_dir: &Path) -> io::Result<Vec<PathBuf>> {
    let mut found = Vec::new();
    for entry in std::fs::read_dir(session_dir)? {
        let entry = entry?;
        if !entry.file_type()?.is_dir() {
            continue;
        }
        for file in std::fs::read_dir(entry.path())? {
            let path = file?.path();
            if path.extension().is_some_and(|e| e == "opus") && path.is_file() {
                found.push(path);
            }
        }
    }
    found.sort();
    Ok(found)
}

fn codec(e: opus::Error) -> io::Error {
    io::Error::other(format!("opus: {e}"))
}

/// One speaker's file, decoded as the mix needs it.
struct Source {
    reader: PacketReader<BufReader<File>>,
    decoder: Decoder,
    /// The mix's sample of `decoded[0]`.
    at: u64,
    decoded: Vec<f32>,
    /// The file has no more packets.
    ended: bool,
    scratch: Vec<f32>,
}

impl Source {
    /// Open a file and read its headers; `None` if it is empty.
    fn open(path: &Path, start_ms: i64, end_ms: i64) -> io::Result<Option<Source>> {
        let file = File::open(path)?;
        if file.metadata()?.len() == 0 {
            return Ok(None);
        }
        let mut reader = PacketReader::new(BufReader::new(file));
        let head = reader.read_packet().map_err(io::Error::other)?;
        let tags = reader.read_packet().map_err(io::Error::other)?;
        let (Some(head), Some(tags)) = (head, tags) else {
            return Ok(None);
        };
        if !head.data.starts_with(b"OpusHead") {
            return Err(io::Error::other("not an Ogg Opus file"));
        }
        let begins = start_of(&tags.data).unwrap_or(start_ms);
        if begins > end_ms {
            return Err(io::Error::other(format!(
                "it starts at {begins}, after the session's end at {end_ms}"
            )));
        }
        let offset_ms = u64::try_from(begins - start_ms).unwrap_or(0);
        Ok(Some(Source {
            reader,
            decoder: Decoder::new(RATE, Channels::Mono).map_err(codec)?,
            at: offset_ms * u64::from(RATE) / 1000,
            decoded: Vec::new(),
            ended: false,
            scratch: vec![0.0; MAX_PACKET],
        }))
    }

    /// Add this source's samples of the frame starting at `from` to `mix`. `false` once it
    /// has nothing more to give.
    fn add_to(&mut self, mix: &mut [f32], from: u64) -> bool {
        let until = from + mix.len() as u64;
        while !self.ended && self.at + (self.decoded.len() as u64) < until {
            self.decode_next();
        }
        for (i, slot) in mix.iter_mut().enumerate() {
            let t = from + i as u64;
            if t >= self.at
                && let Some(s) = self.decoded.get((t - self.at) as usize)
            {
                *slot += s;
            }
        }
        let used = (until.saturating_sub(self.at) as usize).min(self.decoded.len());
        self.decoded.drain(..used);
        self.at += used as u64;
        !(self.ended && self.decoded.is_empty())
    }

    /// Decode the next packet onto `decoded`. A packet that does not decode is silence of
    /// its length; a read error ends the file there (a crash may leave a partial page).
    fn decode_next(&mut self) {
        let packet = match self.reader.read_packet() {
            Ok(Some(p)) => p,
            Ok(None) | Err(_) => {
                self.ended = true;
                return;
            }
        };
        match self
            .decoder
            .decode_float(&packet.data, &mut self.scratch, false)
        {
            Ok(n) => self.decoded.extend_from_slice(&self.scratch[..n]),
            Err(_) => {
                let n = super::ogg::samples(&packet.data) as usize;
                self.decoded.extend(std::iter::repeat_n(0.0, n));
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Write `secs` seconds of a tone as a speaker's file starting at `start_ms`.
    fn tone_file(path: &Path, hz: f32, start_ms: i64, secs: usize) {
        let mut enc = Encoder::new(RATE, Channels::Mono, Application::Audio).unwrap();
        let mut file = OpusFile::create(path, 9).unwrap();
        let mut buf = vec![0u8; 4000];
        for f in 0..secs * 50 {
            let pcm: Vec<f32> = (0..FRAME)
                .map(|i| {
                    let t = (f * FRAME + i) as f32 / RATE as f32;
                    0.3 * (2.0 * std::f32::consts::PI * hz * t).sin()
                })
                .collect();
            let n = enc.encode_float(&pcm, &mut buf).unwrap();
            file.write(start_ms, 1000 + (f * FRAME) as u32, &buf[..n])
                .unwrap();
        }
        file.finish().unwrap();
    }

    /// Decode a whole file into mono samples.
    fn decode(path: &Path) -> Vec<f32> {
        let mut reader = PacketReader::new(File::open(path).unwrap());
        reader.read_packet_expected().unwrap();
        reader.read_packet_expected().unwrap();
        let mut dec = Decoder::new(RATE, Channels::Mono).unwrap();
        let mut out = Vec::new();
        let mut buf = vec![0f32; MAX_PACKET];
        while let Some(p) = reader.read_packet().unwrap() {
            let n = dec.decode_float(&p.data, &mut buf, false).unwrap();
            out.extend_from_slice(&buf[..n]);
        }
        out
    }

    /// The power of `pcm` at `hz`: one bin of a discrete Fourier transform.
    fn power_at(pcm: &[f32], hz: f32) -> f32 {
        let w = 2.0 * std::f32::consts::PI * hz / RATE as f32;
        let (mut re, mut im) = (0.0f32, 0.0f32);
        for (i, s) in pcm.iter().enumerate() {
            re += s * (w * i as f32).cos();
            im += s * (w * i as f32).sin();
        }
        (re * re + im * im) / pcm.len() as f32
    }

    /// A second file starting one second late is heard only in the second second.
    #[test]
    fn files_are_placed_by_their_start() {
        let dir = tempfile::tempdir().unwrap();
        for p in ["a", "b"] {
            std::fs::create_dir(dir.path().join(p)).unwrap();
        }
        tone_file(&dir.path().join("a/t-1.opus"), 440.0, 10_000, 1);
        tone_file(&dir.path().join("b/t-1.opus"), 880.0, 11_000, 1);
        let mixed = mixdown(dir.path(), 10_000, 12_000).unwrap().unwrap();
        assert_eq!(mixed.files, 2);
        assert_eq!(
            mixed.samples,
            2 * u64::from(RATE),
            "two seconds: 0-1 s and 1-2 s"
        );
        let pcm = decode(&dir.path().join(FILE));
        let first = &pcm[10_000..38_000];
        let second = &pcm[58_000..86_000];
        assert!(power_at(first, 440.0) > 100.0 * power_at(first, 880.0));
        assert!(power_at(second, 880.0) > 100.0 * power_at(second, 440.0));
        assert!(!dir.path().join(format!("{FILE}.partial")).exists());
    }

    /// A file whose start is after the session's end is left out, not placed hours away.
    #[test]
    fn a_file_after_the_end_is_left_out() {
        let dir = tempfile::tempdir().unwrap();
        std::fs::create_dir(dir.path().join("a")).unwrap();
        std::fs::create_dir(dir.path().join("b")).unwrap();
        tone_file(&dir.path().join("a/t-1.opus"), 440.0, 10_000, 1);
        tone_file(&dir.path().join("b/t-1.opus"), 880.0, 1_700_000_000_000, 1);
        let mixed = mixdown(dir.path(), 10_000, 11_000).unwrap().unwrap();
        assert_eq!(mixed.files, 1);
        assert_eq!(mixed.samples, u64::from(RATE));
    }

    #[test]
    fn no_files_no_mixdown() {
        let dir = tempfile::tempdir().unwrap();
        std::fs::write(dir.path().join(FILE), b"old").unwrap();
        std::fs::create_dir(dir.path().join("a")).unwrap();
        std::fs::write(dir.path().join("a/t-1.opus"), b"").unwrap();
        assert_eq!(mixdown(dir.path(), 0, 1_000).unwrap(), None);
        assert!(!dir.path().join(FILE).exists(), "an old mixdown goes");
    }
}
