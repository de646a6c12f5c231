//! One speaker's audio as an Ogg Opus file (RFC 7845), written from the RTP payloads as
//! they came: one Ogg packet per RTP packet, nothing decoded or re-encoded.
//!
//! Granule positions come from the RTP timestamps (Opus's RTP clock is 48 kHz, as Ogg
//! Opus's granule is): a packet's granule is its timestamp less the first packet's, plus
//! the samples its TOC byte says it holds. A gap in the timestamps (silence sent as
//! nothing, a closed gate) is a gap in the granule, and players keep the time.
//!
//! Durability: pages go to the file whenever [`OpusFile::flush`] is called (the recorder
//! calls it every second), so a crash loses at most that much. The `ogg` crate ends a page
//! only with a packet, so the newest packet is held back until the next one or the flush.

use std::fs::File;
use std::io::{self, BufWriter, Write};
use std::path::Path;

use ogg::writing::{PacketWriteEndInfo, PacketWriter};

/// What OpusHead and OpusTags say of the stream. WebRTC signals Opus as two channels; a
/// decoder plays mono packets in both.
const CHANNELS: u8 = 2;
/// Opus's RTP clock and Ogg Opus's granule rate.
const RATE: u32 = 48_000;

/// An Ogg Opus file being written.
pub struct OpusFile {
    writer: PacketWriter<'static, BufWriter<File>>,
    serial: u32,
    /// RTP time: the last timestamp seen, and how far it is from the first.
    last_ts: Option<u32>,
    since_first: i64,
    /// The granule position written last; they never go back.
    granule: u64,
    /// The newest packet and its granule, not yet handed to the writer.
    held: Option<(Vec<u8>, u64)>,
    /// Audio packets taken so far.
    packets: u64,
}

impl OpusFile {
    /// Create `path` (it must not exist) and write the two header pages. `serial` names the
    /// Ogg stream.
    pub fn create(path: &Path, serial: u32) -> io::Result<Self> {
        let file = File::create_new(path)?;
        let mut writer = PacketWriter::new(BufWriter::new(file));
        // Each header is alone on its page, as RFC 7845 asks.
        writer.write_packet(opus_head(), serial, PacketWriteEndInfo::EndPage, 0)?;
        writer.write_packet(opus_tags(), serial, PacketWriteEndInfo::EndPage, 0)?;
        writer.inner_mut().flush()?;
        Ok(OpusFile {
            writer,
            serial,
            last_ts: None,
            since_first: 0,
            granule: 0,
            held: None,
            packets: 0,
        })
    }

    /// Take one RTP packet's payload, with its RTP timestamp.
    pub fn write(&mut self, timestamp: u32, payload: &[u8]) -> io::Result<()> {
        let granule = self.granule_of(timestamp, payload);
        self.packets += 1;
        if let Some((data, granule)) = self.held.replace((payload.to_vec(), granule)) {
            self.writer.write_packet(
                data,
                self.serial,
                PacketWriteEndInfo::NormalPacket,
                granule,
            )?;
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
    /// Returns the audio packets the file holds.
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
        file.sync_data()?;
        Ok(self.packets)
    }

    /// The granule position of a packet: its end, in samples from the first packet's start.
    fn granule_of(&mut self, timestamp: u32, payload: &[u8]) -> u64 {
        let last = *self.last_ts.get_or_insert(timestamp);
        // RTP time wraps at 2^32, and a reordered packet comes after a later one.
        self.since_first += i64::from(timestamp.wrapping_sub(last) as i32);
        self.last_ts = Some(timestamp);
        let start = u64::try_from(self.since_first).unwrap_or(0);
        self.granule = self.granule.max(start + u64::from(samples(payload)));
        self.granule
    }
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

/// The comment header (RFC 7845, section 5.2): our name, and no comments. Nothing a
/// participant chose (their name) goes into a file.
fn opus_tags() -> Vec<u8> {
    const VENDOR: &[u8] = b"roundtable";
    let mut tags = b"OpusTags".to_vec();
    tags.extend_from_slice(&(VENDOR.len() as u32).to_le_bytes());
    tags.extend_from_slice(VENDOR);
    tags.extend_from_slice(&0u32.to_le_bytes());
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

    /// A file reads back with the `ogg` crate: the two headers, then every packet, with
    /// granules from the RTP time, across a wrap of the RTP clock and a reordered packet.
    #[test]
    fn a_file_reads_back_packet_for_packet() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("a.opus");
        let mut file = OpusFile::create(&path, 7).unwrap();
        let start = u32::MAX - 960;
        let ts = [
            start,
            start.wrapping_add(960),
            start.wrapping_add(2880),
            start.wrapping_add(1920),
        ];
        for (n, t) in ts.into_iter().enumerate() {
            file.write(t, &[0x78, n as u8]).unwrap();
            if n == 1 {
                file.flush().unwrap();
            }
        }
        assert_eq!(file.finish().unwrap(), 4);
        assert!(OpusFile::create(&path, 7).is_err(), "never overwritten");

        let mut reader = ogg::reading::PacketReader::new(std::fs::File::open(&path).unwrap());
        let head = reader.read_packet_expected().unwrap();
        assert_eq!(&head.data[..8], b"OpusHead");
        assert!(head.first_in_stream());
        assert_eq!(
            &reader.read_packet_expected().unwrap().data[..8],
            b"OpusTags"
        );
        let mut got = Vec::new();
        while let Some(p) = reader.read_packet().unwrap() {
            got.push((p.data[1], p.absgp_page(), p.last_in_stream()));
        }
        let payloads: Vec<u8> = got.iter().map(|g| g.0).collect();
        assert_eq!(payloads, [0, 1, 2, 3]);
        // Pages: [0, 1] (flushed), then [2, 3] ending the stream. A page's granule is its
        // last packet's; the reordered packet does not move it back.
        assert_eq!(got[1].1, 1920);
        assert_eq!(got[3].1, 3840);
        assert!(got[3].2, "the last packet ends the stream");
    }
}
