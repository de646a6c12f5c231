//! Everything that touches RTP: one media engine on webrtc-rs's sans-IO `rtc` core, behind
//! one UDP socket, driven by one loop on its own thread.
//!
//! Room tasks and WebSocket tasks talk to it in ids and values: a [`SessionHandle`] per
//! participant, a [`TrackKey`] per published track, and [`Cmd`] values down one channel. What
//! the engine has to say comes back as values too: [`MediaEvent`]s to the room, messages to
//! the client. Nothing here holds a media object another task can touch.
//!
//! Architecture invariant: nothing here waits on the database, the disk, the room task or a
//! slow subscriber.

pub mod delay;
mod driver;
pub mod engine;
pub mod socket;
mod values;

use std::net::SocketAddr;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};

use roundtable_peer::PeerNet;
use signaling::wire::{ErrorCode, Reject, ServerMsg};
use tokio::sync::mpsc;

pub use delay::DelaySnapshot;
pub use driver::RecordTap;
pub use engine::{Cmd, SessionId};
pub use values::{Codec, MediaEvent, MediaStats, RecordedPacket, Signal, TrackKey};

use driver::{LoopCmd, SharedStats};

/// Negotiation messages a client may have queued before it is told to slow down: one client
/// cannot fill the engine's command channel.
const SESSION_QUEUE: usize = 256;

/// The media engine's loop, as the rest of the server sees it. Every method returns at once.
pub struct Media {
    cmds: mpsc::UnboundedSender<LoopCmd>,
    next_session: AtomicU64,
    local_addr: SocketAddr,
    delay: delay::DelayReader,
    stats: Arc<SharedStats>,
}

impl Media {
    /// Bind the media socket on `net.bind_ip:port` and start the loop's thread. Host
    /// candidates advertise `net.advertise_ip` (1:1 NAT) with the bound port. Packets of
    /// recorded tracks go to `tap`, and are dropped when it is full.
    pub async fn start(net: PeerNet, port: u16, tap: RecordTap) -> std::io::Result<Self> {
        let started = driver::start(net, port, tap).await?;
        tracing::info!(local_addr = %started.local_addr, "media: one UDP socket");
        Ok(Media {
            cmds: started.cmds,
            next_session: AtomicU64::new(1),
            local_addr: started.local_addr,
            delay: started.delay,
            stats: started.stats,
        })
    }

    /// Open a session for a participant who just joined. The engine's messages for the
    /// client go to `to_client`, its events for the room to `to_room`. A client whose queue
    /// is full when a message comes is told to go with `kicked`: a lost offer or answer
    /// would leave its negotiation stuck.
    pub fn open_session(
        &self,
        participant: String,
        to_client: mpsc::Sender<ServerMsg>,
        kicked: Arc<tokio::sync::Notify>,
        to_room: mpsc::UnboundedSender<MediaEvent>,
    ) -> SessionHandle {
        let id = self.next_session.fetch_add(1, Ordering::Relaxed);
        let in_flight = Arc::new(AtomicUsize::new(0));
        let _ = self.cmds.send(LoopCmd::Open {
            id,
            participant,
            to_client,
            kicked,
            to_room,
            in_flight: in_flight.clone(),
        });
        SessionHandle {
            id,
            cmds: self.cmds.clone(),
            in_flight,
        }
    }

    /// Open or close the forwarding of one published track.
    pub fn gate(&self, track: TrackKey, open: bool) {
        let _ = self.cmds.send(LoopCmd::Engine(Cmd::Gate { track, open }));
    }

    /// Start or stop handing one published track's packets to the recorder.
    pub fn record(&self, track: TrackKey, on: bool) {
        let _ = self.cmds.send(LoopCmd::Engine(Cmd::Record { track, on }));
    }

    /// What the engine holds and has done (as of its last turn).
    pub fn stats(&self) -> MediaStats {
        self.stats.read()
    }

    /// The one UDP address every connection shares.
    pub fn media_addr(&self) -> SocketAddr {
        self.local_addr
    }

    /// How long forwarded packets stayed in the server, since it started (see [`delay`]).
    pub fn forward_delay(&self) -> DelaySnapshot {
        self.delay.snapshot()
    }
}

/// A participant's media session, for its room and its WebSocket (shared in an `Arc`). The
/// last drop closes the session, if [`SessionHandle::close`] did not.
pub struct SessionHandle {
    id: SessionId,
    cmds: mpsc::UnboundedSender<LoopCmd>,
    in_flight: Arc<AtomicUsize>,
}

impl SessionHandle {
    /// Hand the engine a negotiation message from the client. Errors come back to the client
    /// as `error` messages on its socket; a full queue is refused here.
    pub fn signal(&self, signal: Signal) -> Result<(), Reject> {
        if self.in_flight.fetch_add(1, Ordering::Relaxed) >= SESSION_QUEUE {
            self.in_flight.fetch_sub(1, Ordering::Relaxed);
            return Err(queue_full());
        }
        self.cmds
            .send(LoopCmd::Signal(self.id, signal))
            .map_err(|_| queue_full())
    }

    /// Start forwarding `add` to this participant and stop forwarding `remove`, in one offer.
    pub fn subscriptions(&self, add: Vec<TrackKey>, remove: Vec<TrackKey>) {
        let _ = self.cmds.send(LoopCmd::Engine(Cmd::Subscriptions {
            session: self.id,
            add,
            remove,
        }));
    }
}

impl SessionHandle {
    /// Tear the session down: connections and published tracks.
    pub fn close(&self) {
        let _ = self.cmds.send(LoopCmd::Engine(Cmd::Close(self.id)));
    }
}

impl Drop for SessionHandle {
    fn drop(&mut self) {
        let _ = self.cmds.send(LoopCmd::Engine(Cmd::Close(self.id)));
    }
}

fn queue_full() -> Reject {
    Reject::new(
        ErrorCode::RateLimited,
        "too many negotiation messages in flight",
    )
}
