//! The recorder: writes recorded tracks to files, on its own thread, never on the media
//! loop's. It is a consumer of the engine like any subscriber, whose target is a file.
//!
//! Two inputs. Room tasks say which track goes to which file ([`Recorder::open`],
//! [`Recorder::close`]), on an unbounded control channel: a few messages per consent change.
//! The media loop hands it the packets of recorded tracks ([`RecordedPacket`]) on a bounded
//! queue with `try_send`: a full queue drops and counts in the loop, never waits.
//!
//! A room calls `open` before it tells the engine to record, and `close` after it tells it to
//! stop. A packet of a track with no open file is dropped; so is one that the engine took
//! before its file was opened (a late packet of an earlier consent). Nothing of a track
//! reaches the disk outside an interval its room opened.
//!
//! Files: `{dir}/{session}/{participant}/{track}-{n}.opus` for audio (Ogg Opus, [`ogg`]) and
//! `{track}-{n}.webm` for video (WebM of VP8, [`webm`]), all ids the server made; `n` counts
//! the intervals of one track in one session (a withdrawal and a new consent make a second
//! file). A video file is created at its first keyframe, so an interval with none leaves no
//! file.

pub mod catalog;
pub mod chapters;
mod cut_off;
pub mod finalize;
pub mod mixdown;
pub mod ogg;
mod track_file;
mod vp8;
mod webm;

pub use cut_off::finish_cut_off;
pub use finalize::finalize_session;

use std::collections::HashMap;
use std::io;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use signaling::wire::MediaKind;
use tokio::sync::{mpsc, oneshot, watch};

use crate::media::{RecordTap, RecordedPacket, TrackKey};

pub use self::ogg::OpusFile;
use self::track_file::TrackFile;

/// Recorded packets the queue from the media loop holds: two seconds of 40 speakers' audio
/// (50 packets a second each). A recorder that falls further behind than that loses packets,
/// counted as `record_queue_full`, and forwarding never notices.
pub const QUEUE: usize = 4096;

/// How often every open file's pages go to the OS: what a crash may lose.
pub const FLUSH_EVERY: Duration = Duration::from_secs(1);

/// Where one track is written: ids only, each made by the server.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FileSpec {
    /// The recording session.
    pub session: String,
    /// The publisher.
    pub participant: String,
    /// The track.
    pub track: String,
    /// Its kind: audio goes to Ogg Opus, video to WebM.
    pub kind: MediaKind,
}

enum Control {
    Open {
        key: TrackKey,
        spec: FileSpec,
        /// Packets the engine took before this are not written.
        from: Instant,
    },
    Close {
        key: TrackKey,
    },
    /// Answered once everything sent before it is done.
    Sync(oneshot::Sender<()>),
}

/// The recorder, as room tasks see it. Every method but [`Recorder::sync`] returns at once.
#[derive(Clone)]
pub struct Recorder {
    control: mpsc::UnboundedSender<Control>,
    finished: watch::Receiver<u64>,
    dir: PathBuf,
}

impl Recorder {
    /// Create `dir` if needed and start the recorder's thread. The media loop hands it
    /// packets through the returned tap.
    pub fn start(dir: PathBuf) -> io::Result<(Recorder, RecordTap)> {
        std::fs::create_dir_all(&dir)?;
        let (tap, packets) = mpsc::channel(QUEUE);
        let (control, control_rx) = mpsc::unbounded_channel();
        let (finished_tx, finished) = watch::channel(0);
        let files = Files {
            dir: dir.clone(),
            open: HashMap::new(),
            clock: Clock::new(),
            next_serial: 1,
            finished: finished_tx,
        };
        std::thread::Builder::new()
            .name("rt-recorder".into())
            .spawn(move || {
                let runtime = tokio::runtime::Builder::new_current_thread()
                    .enable_time()
                    .build();
                match runtime {
                    Ok(rt) => rt.block_on(files.run(control_rx, packets)),
                    Err(e) => tracing::error!(%e, "recorder: no runtime; nothing is recorded"),
                }
            })?;
        Ok((
            Recorder {
                control,
                finished,
                dir,
            },
            tap,
        ))
    }

    /// Write `key`'s packets from now on to a new file named by `spec`. Call before the
    /// engine is told to record the track.
    pub fn open(&self, key: TrackKey, spec: FileSpec) {
        let from = Instant::now();
        let _ = self.control.send(Control::Open { key, spec, from });
    }

    /// Finish `key`'s file. Call after the engine is told to stop recording the track.
    pub fn close(&self, key: TrackKey) {
        let _ = self.control.send(Control::Close { key });
    }

    /// Wait until every `open` and `close` sent before is carried out: the files closed
    /// by then are finished on disk.
    pub async fn sync(&self) {
        let (done, wait) = oneshot::channel();
        if self.control.send(Control::Sync(done)).is_ok() {
            let _ = wait.await;
        }
    }

    /// The recordings folder.
    pub fn dir(&self) -> &Path {
        &self.dir
    }

    /// Wait until `n` files have been finished since start (for tests and shutdown).
    pub async fn finished(&self, n: u64) {
        let mut finished = self.finished.clone();
        let _ = finished.wait_for(|done| *done >= n).await;
    }
}

/// The recorder thread's state: the open files.
struct Files {
    dir: PathBuf,
    open: HashMap<TrackKey, Open>,
    clock: Clock,
    next_serial: u32,
    finished: watch::Sender<u64>,
}

struct Open {
    file: TrackFile,
    from: Instant,
    path: PathBuf,
}

impl Files {
    async fn run(
        mut self,
        mut control: mpsc::UnboundedReceiver<Control>,
        mut packets: mpsc::Receiver<Box<RecordedPacket>>,
    ) {
        let mut flush = tokio::time::interval(FLUSH_EVERY);
        flush.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        loop {
            tokio::select! {
                // Control first: a close is carried out before more packets are taken.
                biased;
                cmd = control.recv() => match cmd {
                    Some(cmd) => self.control(cmd),
                    None => break,
                },
                Some(packet) = packets.recv() => {
                    if !self.open.contains_key(&packet.track) {
                        // Its room sent `open` before the engine took the packet: it waits
                        // in the control channel.
                        while let Ok(cmd) = control.try_recv() {
                            self.control(cmd);
                        }
                    }
                    self.packet(&packet);
                }
                _ = flush.tick() => self.flush(),
            }
        }
        let keys: Vec<TrackKey> = self.open.keys().copied().collect();
        for key in keys {
            self.close(key);
        }
    }

    fn control(&mut self, cmd: Control) {
        match cmd {
            Control::Open { key, spec, from } => {
                // A second open of one track ends the first file.
                self.close(key);
                match self.create(&spec) {
                    Ok((file, path)) => {
                        tracing::info!(path = %path.display(), "recording a track");
                        self.open.insert(key, Open { file, from, path });
                    }
                    Err(e) => tracing::error!(?spec, %e, "cannot record a track"),
                }
            }
            Control::Close { key } => self.close(key),
            Control::Sync(done) => {
                let _ = done.send(());
            }
        }
    }

    /// A new file for `spec`: the first free `{track}-{n}.{opus,webm}` in its folder.
    fn create(&mut self, spec: &FileSpec) -> io::Result<(TrackFile, PathBuf)> {
        for id in [&spec.session, &spec.participant, &spec.track] {
            if !is_id(id) {
                return Err(io::Error::new(
                    io::ErrorKind::InvalidInput,
                    format!("not an id: {id:?}"),
                ));
            }
        }
        let folder = self.dir.join(&spec.session).join(&spec.participant);
        std::fs::create_dir_all(&folder)?;
        let serial = self.next_serial;
        self.next_serial = self.next_serial.wrapping_add(1);
        for n in 1u32.. {
            let ext = TrackFile::extension(spec.kind);
            let path = folder.join(format!("{}-{n}.{ext}", spec.track));
            match TrackFile::create(spec.kind, &path, serial) {
                Ok(file) => return Ok((file, path)),
                Err(e) if e.kind() == io::ErrorKind::AlreadyExists => continue,
                Err(e) => return Err(e),
            }
        }
        unreachable!("u32::MAX files of one track")
    }

    fn packet(&mut self, packet: &RecordedPacket) {
        let Some(open) = self.open.get_mut(&packet.track) else {
            return;
        };
        if packet.arrived < open.from {
            return;
        }
        let at = self.clock.unix_ms(packet.arrived);
        if let Err(e) = open.file.write(packet, at) {
            tracing::error!(path = %open.path.display(), %e, "recording: write failed; the file ends here");
            self.close(packet.track);
        }
    }

    fn flush(&mut self) {
        let mut failed = Vec::new();
        for (key, open) in &mut self.open {
            if let Err(e) = open.file.flush() {
                tracing::error!(path = %open.path.display(), %e, "recording: flush failed; the file ends here");
                failed.push(*key);
            }
        }
        for key in failed {
            self.close(key);
        }
    }

    fn close(&mut self, key: TrackKey) {
        let Some(open) = self.open.remove(&key) else {
            return;
        };
        match open.file.finish() {
            Ok(packets) => {
                tracing::info!(path = %open.path.display(), packets, "recorded a track");
            }
            Err(e) => tracing::error!(path = %open.path.display(), %e, "recording: finish failed"),
        }
        self.finished.send_modify(|n| *n += 1);
    }
}

/// Turns the engine's instants into Unix ms, from one reading of both clocks.
struct Clock {
    base: Instant,
    base_ms: i64,
}

impl Clock {
    fn new() -> Self {
        let base_ms = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map_or(0, |d| i64::try_from(d.as_millis()).unwrap_or(i64::MAX));
        Clock {
            base: Instant::now(),
            base_ms,
        }
    }

    fn unix_ms(&self, at: Instant) -> i64 {
        let ms = |d: Duration| i64::try_from(d.as_millis()).unwrap_or(i64::MAX);
        match at.checked_duration_since(self.base) {
            Some(after) => self.base_ms.saturating_add(ms(after)),
            None => self
                .base_ms
                .saturating_sub(ms(self.base.duration_since(at))),
        }
    }
}

/// Whether `id` is one of the server's ids, and so safe as a file name: ASCII letters,
/// digits, `-` and `_`, at most 128 of them.
pub fn is_id(id: &str) -> bool {
    (1..=128).contains(&id.len())
        && id
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_')
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_ids_name_files() {
        for id in ["p1", "p1-a1", "r1-1700000000000-1", "AbC_9"] {
            assert!(is_id(id), "{id}");
        }
        for bad in ["", "..", "a/b", "a\\b", ".hidden", "é", &"x".repeat(129)] {
            assert!(!is_id(bad), "{bad}");
        }
    }
}
