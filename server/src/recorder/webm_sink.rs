//! The file under libwebm. What libwebm writes waits in memory and reaches the file only at
//! [`Inner::store`], which the recorder calls between frames: the OS only ever holds whole
//! elements, and a crash cannot tear a block.
//!
//! libwebm writes the size of each Cluster when the next one starts, going back to it. Until
//! then the size is "unknown" in its 8-byte form (`01 FF FF FF FF FF FF FF`), which some
//! readers (`matroska-demuxer`) take for a real size. So at each store the open Cluster
//! gets the size it has once the store is done: a crash between any two writes of a store
//! leaves a file that reads.

use std::fs::File;
use std::io::{self, Seek, SeekFrom, Write};
use std::os::unix::fs::FileExt;
use std::sync::{Arc, Mutex, MutexGuard};

/// A Cluster's ID and its "unknown" size, as libwebm writes them.
const CLUSTER_HEAD: [u8; 12] = [
    0x1f, 0x43, 0xb6, 0x75, 0x01, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff,
];
/// How far into the file libwebm's Info is written, at most: where Duration is looked for.
const HEADER_SPAN: usize = 4096;

/// The file, shared by libwebm's writer and the recorder. Only the recorder's thread
/// touches it: the lock is never contended.
#[derive(Clone)]
pub(super) struct Sink(Arc<Mutex<Inner>>);

pub(super) struct Inner {
    file: File,
    /// The bytes on disk: the file's length.
    stored: u64,
    /// What libwebm wrote after them, not yet on disk.
    pending: Vec<u8>,
    /// libwebm's writes to bytes already on disk (a finished Cluster's size), in order.
    patches: Vec<(u64, Vec<u8>)>,
    /// Where libwebm writes next.
    pos: u64,
    /// Where the size of the open Cluster is, once it is known.
    open_cluster: Option<u64>,
}

impl Sink {
    pub(super) fn new(file: File) -> Sink {
        Sink(Arc::new(Mutex::new(Inner {
            file,
            stored: 0,
            pending: Vec::new(),
            patches: Vec::new(),
            pos: 0,
            open_cluster: None,
        })))
    }

    pub(super) fn lock(&self) -> MutexGuard<'_, Inner> {
        self.0
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
    }
}

impl Inner {
    /// Where the file ends, with what is not on disk yet.
    pub(super) fn end(&self) -> u64 {
        self.stored + self.pending.len() as u64
    }

    /// The bytes waiting for the next store.
    pub(super) fn pending(&self) -> usize {
        self.pending.len()
    }

    /// libwebm added one frame of `frame_len` bytes, from `from`, the end before it. If it
    /// started a Cluster to hold it, that Cluster is the open one. Only what libwebm wrote
    /// before the frame's data is searched: a frame's bytes are the publisher's.
    pub(super) fn added_frame(&mut self, from: u64, frame_len: usize) {
        let start = from.saturating_sub(self.stored) as usize;
        let stop = self.pending.len().saturating_sub(frame_len);
        let found = self.pending.get(start..stop).and_then(|made| {
            made.windows(CLUSTER_HEAD.len())
                .position(|w| w == CLUSTER_HEAD)
        });
        if let Some(at) = found {
            self.open_cluster = Some(self.stored + (start + at + 4) as u64);
        }
    }

    /// Where the header's Duration value is: libwebm writes a placeholder of 1.0, a 4-byte
    /// float, in file mode (element 0x4489, size 4). Asked after the first frame, before
    /// anything is on disk.
    pub(super) fn find_duration(&self) -> Option<u64> {
        const PLACEHOLDER: [u8; 7] = [0x44, 0x89, 0x84, 0x3f, 0x80, 0x00, 0x00];
        if self.stored > 0 {
            return None;
        }
        let head = &self.pending[..self.pending.len().min(HEADER_SPAN)];
        let found = head
            .windows(PLACEHOLDER.len())
            .position(|w| w == PLACEHOLDER);
        found.map(|at| at as u64 + 3)
    }

    /// Hand what libwebm wrote to the OS. With `open`, the file is still being written: its
    /// open Cluster gets the size it will have on disk. Without, libwebm finished the file
    /// and wrote every size.
    ///
    /// Sizes go first, then the bytes they cover, in one write: between two writes the file
    /// is whole, or cut short inside a Cluster of known size (as a download in progress),
    /// which readers take.
    pub(super) fn store(&mut self, open: bool) -> io::Result<()> {
        // libwebm's writes to what is on disk: a finished Cluster's size.
        for (at, bytes) in self.patches.drain(..) {
            self.file.write_all_at(&bytes, at)?;
        }
        let end = self.end();
        match self.open_cluster.filter(|_| open) {
            Some(at) if at < self.stored => {
                self.file.write_all_at(&size_field(end - (at + 8)), at)?;
            }
            Some(at) => {
                let i = (at - self.stored) as usize;
                if let Some(field) = self.pending.get_mut(i..i + 8) {
                    field.copy_from_slice(&size_field(end - (at + 8)));
                }
            }
            None => {}
        }
        if !open {
            self.open_cluster = None;
        }
        self.file.write_all_at(&self.pending, self.stored)?;
        self.stored = end;
        self.pending.clear();
        Ok(())
    }

    /// Write `bytes` at `at`, a place on disk, now: the recorder's own fields (Duration).
    pub(super) fn write_stored(&self, bytes: &[u8], at: u64) -> io::Result<()> {
        if at + bytes.len() as u64 > self.stored {
            return Err(io::Error::other("a write past what is on disk"));
        }
        self.file.write_all_at(bytes, at)
    }

    /// Sync the file to disk.
    pub(super) fn sync(&self) -> io::Result<()> {
        self.file.sync_data()
    }
}

/// `size` as an EBML size in 8 bytes.
fn size_field(size: u64) -> [u8; 8] {
    let mut field = size.to_be_bytes();
    field[0] = 0x01;
    field
}

impl Write for Sink {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        let mut inner = self.lock();
        let mut at = inner.pos;
        let mut rest = buf;
        if at < inner.stored {
            let n = rest.len().min((inner.stored - at) as usize);
            inner.patches.push((at, rest[..n].to_vec()));
            at += n as u64;
            rest = &rest[n..];
        }
        if !rest.is_empty() {
            let i = (at - inner.stored) as usize;
            if i > inner.pending.len() {
                inner.pending.resize(i, 0);
            }
            let over = rest.len().min(inner.pending.len() - i);
            inner.pending[i..i + over].copy_from_slice(&rest[..over]);
            inner.pending.extend_from_slice(&rest[over..]);
        }
        inner.pos += buf.len() as u64;
        Ok(buf.len())
    }

    /// Nothing: the recorder stores at its flushes, between frames.
    fn flush(&mut self) -> io::Result<()> {
        Ok(())
    }
}

impl Seek for Sink {
    fn seek(&mut self, to: SeekFrom) -> io::Result<u64> {
        let mut inner = self.lock();
        let pos = match to {
            SeekFrom::Start(at) => Some(at),
            SeekFrom::Current(by) => inner.pos.checked_add_signed(by),
            SeekFrom::End(by) => inner.end().checked_add_signed(by),
        };
        inner.pos = pos.ok_or_else(|| io::Error::from(io::ErrorKind::InvalidInput))?;
        Ok(inner.pos)
    }
}
