//! Reading a recorded WebM file in the process tests: its frames with `matroska-demuxer`,
//! and its layout, checked by walking the element sizes.

use std::path::Path;

use anyhow::{Context, ensure};
use matroska_demuxer::{Frame, MatroskaFile};

const SEGMENT: u64 = 0x1853_8067;
const CLUSTER: u64 = 0x1f43_b675;

/// (keyframe, counter) of each frame of a WebM file, read with `matroska-demuxer`. The
/// counter follows the VP8 header: 10 bytes in a keyframe, 3 in a delta frame.
pub fn frames(path: &Path) -> anyhow::Result<Vec<(bool, u64)>> {
    let mut mkv = MatroskaFile::open(std::fs::File::open(path)?)?;
    ensure!(mkv.ebml_header().doc_type() == "webm", "not a WebM file");
    let mut frames = Vec::new();
    let mut frame = Frame::default();
    while mkv.next_frame(&mut frame)? {
        let key = frame.is_keyframe == Some(true);
        let at = if key { 10 } else { 3 };
        let counter = frame
            .data
            .get(at..at + 8)
            .context("a frame shorter than its stamp")?;
        frames.push((key, u64::from_be_bytes(counter.try_into()?)));
    }
    ensure!(!frames.is_empty(), "no frames");
    Ok(frames)
}

/// The Clusters in `bytes`, a WebM file, after checking that its elements end where the
/// file does: each of the Segment's children has a known size, and the last ends at the
/// file's last byte (no torn block, no Cluster of "unknown" size). The Segment's own size
/// may be unknown.
pub fn whole_clusters(bytes: &[u8]) -> anyhow::Result<usize> {
    let mut clusters = 0;
    let mut at = 0;
    while at < bytes.len() {
        let (id, n) = vint(bytes, at, true)?;
        let (size, m) = vint(bytes, at + n, false)?;
        let id = id.context("an ID of all ones")?;
        at += n + m;
        if id == SEGMENT {
            continue;
        }
        let size = size.with_context(|| format!("element {id:x} of unknown size at {at}"))?;
        clusters += usize::from(id == CLUSTER);
        at = at.saturating_add(usize::try_from(size)?);
        ensure!(at <= bytes.len(), "element {id:x} runs past the end");
    }
    Ok(clusters)
}

/// An EBML variable-size integer at `at`: (value, length). An ID keeps its marker bit; a
/// size loses it, and all ones is "unknown" (None).
fn vint(bytes: &[u8], at: usize, id: bool) -> anyhow::Result<(Option<u64>, usize)> {
    let first = *bytes.get(at).context("the file ends inside an element")?;
    let len = first.leading_zeros() as usize + 1;
    ensure!(len <= 8, "no EBML integer at {at}");
    let rest = bytes
        .get(at + 1..at + len)
        .context("the file ends inside an element")?;
    let mask: u64 = if id { 0xff } else { 0xff >> len };
    let mut v = u64::from(first) & mask;
    for b in rest {
        v = v << 8 | u64::from(*b);
    }
    let unknown = !id && v == (1 << (7 * len)) - 1;
    Ok((if unknown { None } else { Some(v) }, len))
}
