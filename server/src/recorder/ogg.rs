//! One speaker's audio as an Ogg Opus file (RFC 7845), written from the RTP payloads as
//! they came: one Ogg packet per RTP packet, nothing decoded or re-encoded.
//!
//! The file's time is continuous, as RFC 7845 wants: a packet's place is its RTP timestamp
//! (Opus's RTP clock is 48 kHz, as Ogg Opus's granule is). A gap in the timestamps (a closed
//! gate, silence sent as nothing, lost packets) is filled with empty Opus frames, which a
//! decoder plays as silence (packet loss concealment). A packet later than its place is
//! dropped: the gap it would fill is filled already. So a file's decoded length is the time
//! from its first packet to its last.
//!
//! The headers are written with the first packet. OpusTags carry its arrival time,
//! `ROUNDTABLE_START_MS=<unix ms>`, so a mixdown can line files up. A file that never got a
//! packet is empty, and [`OpusFile::finish`] removes it.
//!
//! Durability: pages go to the file whenever [`OpusFile::flush`] is called (the recorder
//! calls it every second), so a crash loses at most that much. The `ogg` crate ends a page
//! only with a packet, so the newest packet is held back until the next one or the flush.

use std::fs::File;
use std::io::{self, BufWriter, Write};
use std::path::{Path, PathBuf};

use ogg::writing::{PacketWriteEndInfo, PacketWriter};

/// What OpusHead and OpusTags say of the stream. WebRTC signals Opus as two channels; a
/// decoder plays mono packets in both.
const CHANNELS: u8 = 2;
/// Opus's RTP clock and Ogg Opus's granule rate.
pub const RATE: u32 = 48_000;
/// The OpusTags comment that holds a file's start.
pub const START_TAG: &str = "ROUNDTABLE_START_MS=";
/// A gap longer than this (in samples: six hours) is a new RTP clock, not silence: the file
/// goes on without filling it.
const MAX_GAP: u32 = 6 * 3600 * RATE;
/// A packet this much before its place (ten seconds) is a new RTP clock, not a late packet.
const MAX_LATE: u32 = 10 * RATE;

/// An Ogg Opus file being written.
pub struct OpusFile {
    writer: PacketWriter<'static, BufWriter<File>>,
    path: PathBuf,
    serial: u32,
    /// The RTP timestamp where the next packet belongs; `None` before the first.
    next_ts: Option<u32>,
    /// The samples written so far: the granule position of the newest packet's end.
    granule: u64,
    /// The newest packet and its granule, not yet handed to the writer.
    held: Option<(Vec<u8>, u64)>,
    /// Audio packets taken so far (not counting the fillers).
    packets: u64,
}

impl OpusFile {
    /// Create `path` (it must not exist), empty until the first packet. `serial` names the
    /// Ogg stream.
    pub fn create(path: &Path, serial: u32) -> io::Result<Self> {
        let file = File::create_new(path)?;
        Ok(OpusFile {
            writer: PacketWriter::new(BufWriter::new(file)),
            path: path.to_path_buf(),
            serial,
            next_ts: None,
            granule: 0,
            held: None,
            packets: 0,
        })
    }

    /// Take one RTP packet's payload, with its RTP timestamp. `at_ms` is when it arrived
    /// (Unix ms); the first packet's is the file's start.
    pub fn write(&mut self, at_ms: i64, timestamp: u32, payload: &[u8]) -> io::Result<()> {
        let next = match self.next_ts {
            None => {
                // Each header is alone on its page, as RFC 7845 asks.
                let serial = self.serial;
                self.writer
                    .write_packet(opus_head(), serial, PacketWriteEndInfo::EndPage, 0)?;
                self.writer.write_packet(
                    opus_tags(at_ms),
                    serial,
                    PacketWriteEndInfo::EndPage,
                    0,
                )?;
                timestamp
            }
            Some(next) => next,
        };
        let ahead = timestamp.wrapping_sub(next);
        if ahead > u32::MAX - MAX_LATE {
            return Ok(()); // late: its time is filled already
        }
        if ahead <= MAX_GAP {
            let mut gap = ahead;
            for (samples, toc) in FILLERS {
                while gap >= samples {
                    self.push(vec![toc], samples)?;
                    gap -= samples;
                }
            }
        }
        let samples = samples(payload);
        self.push(payload.to_vec(), samples)?;
        self.packets += 1;
        self.next_ts = Some(timestamp.wrapping_add(samples));
        Ok(())
    }

    /// Queue one packet of `samples` samples.
    fn push(&mut self, data: Vec<u8>, samples: u32) -> io::Result<()> {
        self.granule += u64::from(samples);
        if let Some((data, granule)) = self.held.replace((data, self.granule)) {
            let end = PacketWriteEndInfo::NormalPacket;
            self.writer.write_packet(data, self.serial, end, granule)?;
        }
        Ok(())
    }

    /// End the page under way and hand it to the OS: whatever was taken so far survives
    /// the process.
    pub fn flush(&mut self) -> io::Result<()> {
        if let Some((data, granule)) = self.held.take() {
            let end = PacketWriteEndInfo::EndPage;
            self.writer.write_packet(data, self.serial, end, granule)?;
        }
        self.writer.inner_mut().flush()
    }

    /// Write what is left, the last packet ending the stream, and sync the file to disk.
    /// Returns the audio packets the file holds; a file with none is removed.
    pub fn finish(mut self) -> io::Result<u64> {
        if let Some((data, granule)) = self.held.take() {
            let end = PacketWriteEndInfo::EndStream;
            self.writer.write_packet(data, self.serial, end, granule)?;
        }
        let file = self
            .writer
            .into_inner()
            .into_inner()
            .map_err(|e| e.into_error())?;
        if self.packets == 0 && self.next_ts.is_none() {
            drop(file);
            std::fs::remove_file(&self.path)?;
            return Ok(0);
        }
        file.sync_data()?;
        Ok(self.packets)
    }
}

/// Empty CELT frames that fill a gap, longest first, as (samples, TOC byte): a TOC byte
/// alone is one frame of no bytes, which a decoder conceals as lost (RFC 6716, 3.2.1).
const FILLERS: [(u32, u8); 4] = [
    (960, 31 << 3),
    (480, 30 << 3),
    (240, 29 << 3),
    (120, 28 << 3),
];

/// The start a file's OpusTags packet names, in Unix ms.
pub fn start_of(tags: &[u8]) -> Option<i64> {
    let rest = tags.strip_prefix(b"OpusTags")?;
    let u32_at = |b: &[u8], at: usize| -> Option<usize> {
        Some(u32::from_le_bytes(b.get(at..at + 4)?.try_into().ok()?) as usize)
    };
    let vendor = u32_at(rest, 0)?;
    let mut at = 4 + vendor;
    let count = u32_at(rest, at)?;
    at += 4;
    for _ in 0..count {
        let len = u32_at(rest, at)?;
        let comment = rest.get(at + 4..at + 4 + len)?;
        at += 4 + len;
        if let Some(value) = comment.strip_prefix(START_TAG.as_bytes()) {
            return std::str::from_utf8(value).ok()?.parse().ok();
        }
    }
    None
}

/// The identification header (RFC 7845, section 5.1). Pre-skip 0: the stream starts
/// where the speaker's recording starts, mid-way through their encoder's stream.
fn opus_head() -> Vec<u8> {
    let mut head = b"OpusHead".to_vec();
    head.push(1); // version
    head.push(CHANNELS);
    head.extend_from_slice(&0u16.to_le_bytes()); // pre-skip
    head.extend_from_slice(&RATE.to_le_bytes()); // the input's rate, for information
    head.extend_from_slice(&0i16.to_le_bytes()); // output gain
    head.push(0); // channel mapping family 0: mono or stereo
    head
}

/// The comment header (RFC 7845, section 5.2): our name, and the start. Nothing a
/// participant chose (their name) goes into a file.
fn opus_tags(start_ms: i64) -> Vec<u8> {
    const VENDOR: &[u8] = b"roundtable";
    let start = format!("{START_TAG}{start_ms}");
    let mut tags = b"OpusTags".to_vec();
    tags.extend_from_slice(&(VENDOR.len() as u32).to_le_bytes());
    tags.extend_from_slice(VENDOR);
    tags.extend_from_slice(&1u32.to_le_bytes());
    tags.extend_from_slice(&(start.len() as u32).to_le_bytes());
    tags.extend_from_slice(start.as_bytes());
    tags
}

/// Samples at 48 kHz in one Opus packet, from its TOC byte (RFC 6716, section 3.1); 0 for
/// a packet too short to say.
pub fn samples(packet: &[u8]) -> u32 {
    let Some(&toc) = packet.first() else {
        return 0;
    };
    let config = toc >> 3;
    let frame = match config {
        0..=11 => [480, 960, 1920, 2880][usize::from(config % 4)], // SILK: 10, 20, 40, 60 ms
        12..=15 => [480, 960][usize::from(config % 2)],            // hybrid: 10, 20 ms
        _ => [120, 240, 480, 960][usize::from(config % 4)],        // CELT: 2.5 to 20 ms
    };
    let frames = match toc & 0b11 {
        0 => 1,
        1 | 2 => 2,
        _ => packet.get(1).map_or(0, |b| u32::from(b & 0x3f)),
    };
    frame * frames
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_toc_byte_gives_the_samples() {
        assert_eq!(samples(&[]), 0);
        assert_eq!(
            samples(&[0x78]),
            960,
            "CELT 20 ms, one frame (what browsers send)"
        );
        assert_eq!(samples(&[0x08]), 960, "SILK 20 ms");
        assert_eq!(samples(&[0x79]), 1920, "two frames");
        assert_eq!(samples(&[0x7b, 0x03]), 2880, "code 3: three frames");
        assert_eq!(samples(&[0x7b]), 0, "code 3 without its count");
    }

    /// A file reads back with the `ogg` crate: the two headers with the start, then every
    /// packet in its place, across a wrap of the RTP clock: a gap is filled with an empty
    /// frame and a late packet is dropped.
    #[test]
    fn a_file_reads_back_in_time() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("a.opus");
        let mut file = OpusFile::create(&path, 7).unwrap();
        let start = u32::MAX - 960;
        let ts = [0, 960, 2880, 1920, 3840].map(|t| start.wrapping_add(t));
        for (n, t) in ts.into_iter().enumerate() {
            file.write(1_700_000_000_123, t, &[0x78, n as u8]).unwrap();
            if n == 1 {
                file.flush().unwrap();
            }
        }
        assert_eq!(
            file.finish().unwrap(),
            4,
            "the late packet is not in the file"
        );
        assert!(OpusFile::create(&path, 7).is_err(), "never overwritten");

        let mut reader = ogg::reading::PacketReader::new(std::fs::File::open(&path).unwrap());
        let head = reader.read_packet_expected().unwrap();
        assert_eq!(&head.data[..8], b"OpusHead");
        assert!(head.first_in_stream());
        let tags = reader.read_packet_expected().unwrap();
        assert_eq!(start_of(&tags.data), Some(1_700_000_000_123));
        let mut got = Vec::new();
        while let Some(p) = reader.read_packet().unwrap() {
            got.push((p.data.clone(), p.absgp_page(), p.last_in_stream()));
        }
        let packets: Vec<Vec<u8>> = got.iter().map(|g| g.0.clone()).collect();
        let filler = vec![0xf8];
        assert_eq!(
            packets,
            [
                vec![0x78, 0],
                vec![0x78, 1],
                filler,
                vec![0x78, 2],
                vec![0x78, 4]
            ]
        );
        // Pages: [0, 1] (flushed), then the rest, ending the stream. A page's granule is
        // its last packet's end: five 20 ms packets, 4800 samples, 100 ms of sound.
        assert_eq!(got[1].1, 1920);
        assert_eq!(got[4].1, 4800);
        assert!(got[4].2, "the last packet ends the stream");
    }

    /// A file that never got a packet leaves nothing behind.
    #[test]
    fn an_unused_file_is_removed() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("a.opus");
        let file = OpusFile::create(&path, 1).unwrap();
        assert!(path.exists());
        assert_eq!(file.finish().unwrap(), 0);
        assert!(!path.exists());
    }

    #[test]
    fn tags_without_a_start_say_none() {
        assert_eq!(start_of(b"OpusTags"), None);
        assert_eq!(start_of(&opus_tags(-5)), Some(-5));
        let mut no_comment = b"OpusTags".to_vec();
        no_comment.extend_from_slice(&[0, 0, 0, 0, 0, 0, 0, 0]);
        assert_eq!(start_of(&no_comment), None);
        let mut truncated = opus_tags(42);
        truncated.truncate(truncated.len() - 1);
        assert_eq!(start_of(&truncated), None);
    }
}
