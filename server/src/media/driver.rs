//! The loop around the engine, on its own thread: commands, datagrams and timers in, and
//! what [`Engine::poll_output`] returns delivered (datagrams to the socket, messages to
//! clients, events to rooms). RTP from a publisher is forwarded inside one turn, without a
//! task, a channel or a lock per packet, and a turn's datagrams go out in batched syscalls.
//!
//! Every send is `try_send` or a non-blocking syscall: nothing here waits but the `select!`
//! on its three inputs. Recorded packets go to the recorder through a bounded queue: when it
//! is full, the packet is dropped and counted (`record_queue_full`), never waited for.

use std::collections::HashMap;
use std::net::SocketAddr;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::time::{Duration, Instant, SystemTime};

use roundtable_peer::PeerNet;
use signaling::wire::ServerMsg;
use tokio::sync::{Notify, mpsc, oneshot};

use super::delay::{self, DelayReader, DelayRecorder};
use super::engine::{Cmd, Engine, Output, PcFactory, SessionId};
use super::socket::{self, MediaSocket, RecvBatch, SendQueue};
use super::values::{MediaEvent, MediaStats, RecordedPacket, Signal};

/// Where the loop hands recorded packets: the recorder's bounded queue.
pub type RecordTap = mpsc::Sender<Box<RecordedPacket>>;

/// Commands handled per turn of the loop before it looks at the socket again.
const COMMANDS_PER_TURN: usize = 64;

/// How long a turn may spend on commands, and then on offers, before it reads the socket
/// again (at least one of each is done per turn). Applying an answer or making an offer in a
/// room of 40 costs about a millisecond, and when someone joins, every other subscriber needs
/// both: done at once, they held every packet for tens of milliseconds.
const CONTROL_BUDGET: Duration = Duration::from_millis(1);

/// Forwarded copies after which the loop sends what it has, even in the middle of a turn: a
/// turn can carry 64 datagrams from publishers with 40 subscribers each, and its first
/// packets' copies should not wait for the last ones' (that was the server's p99 latency).
/// One `sendmmsg` moves this many, so syscall batching stays whole.
const SEND_EVERY: u64 = socket::BATCH as u64;

/// What the loop takes from the rest of the server.
pub(super) enum LoopCmd {
    /// A participant joined.
    Open {
        id: SessionId,
        participant: String,
        to_client: mpsc::Sender<ServerMsg>,
        kicked: Arc<Notify>,
        to_room: mpsc::UnboundedSender<MediaEvent>,
        /// The session's negotiation messages in the channel (see `SESSION_QUEUE`).
        in_flight: Arc<AtomicUsize>,
    },
    /// A negotiation message, counted in its session's `in_flight`.
    Signal(SessionId, Signal),
    /// Anything else, for the engine as it is.
    Engine(Cmd),
}

/// Where the loop delivers a session's outputs.
struct Links {
    participant: String,
    to_client: mpsc::Sender<ServerMsg>,
    /// Ends the client's connection (see `Media::open_session`).
    kicked: Arc<Notify>,
    to_room: mpsc::UnboundedSender<MediaEvent>,
    in_flight: Arc<AtomicUsize>,
}

/// The engine's counts, as of the loop's last turn, for readers on other threads.
#[derive(Default)]
pub(super) struct SharedStats {
    connections: AtomicUsize,
    producers: AtomicUsize,
    consumers: AtomicUsize,
    forwarded: AtomicU64,
    forwarded_bytes: AtomicU64,
    unrouted: AtomicU64,
    send_dropped: AtomicU64,
    send_failed: AtomicU64,
    client_queue_full: AtomicU64,
    record_queue_full: AtomicU64,
}

impl SharedStats {
    pub(super) fn read(&self) -> MediaStats {
        MediaStats {
            connections: self.connections.load(Ordering::Relaxed),
            producers: self.producers.load(Ordering::Relaxed),
            consumers: self.consumers.load(Ordering::Relaxed),
            forwarded: self.forwarded.load(Ordering::Relaxed),
            forwarded_bytes: self.forwarded_bytes.load(Ordering::Relaxed),
            unrouted: self.unrouted.load(Ordering::Relaxed),
            send_dropped: self.send_dropped.load(Ordering::Relaxed),
            send_failed: self.send_failed.load(Ordering::Relaxed),
            client_queue_full: self.client_queue_full.load(Ordering::Relaxed),
            record_queue_full: self.record_queue_full.load(Ordering::Relaxed),
        }
    }
}

/// A started loop.
pub(super) struct Started {
    pub(super) cmds: mpsc::UnboundedSender<LoopCmd>,
    pub(super) local_addr: SocketAddr,
    pub(super) delay: DelayReader,
    pub(super) stats: Arc<SharedStats>,
}

/// Bind the socket and start the loop's thread; it runs until every command sender is gone.
/// Recorded packets go to `tap`.
pub(super) async fn start(net: PeerNet, port: u16, tap: RecordTap) -> std::io::Result<Started> {
    let (cmds, rx) = mpsc::unbounded_channel();
    let stats = Arc::new(SharedStats::default());
    let (ready_tx, ready_rx) = oneshot::channel();
    let bind = SocketAddr::new(net.bind_ip, port);
    let thread_stats = stats.clone();
    let (recorder, delay) = delay::forward_delay();
    std::thread::Builder::new()
        .name("rt-media".into())
        .spawn(move || {
            let runtime = match tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build()
            {
                Ok(rt) => rt,
                Err(e) => {
                    let _ = ready_tx.send(Err(e));
                    return;
                }
            };
            runtime.block_on(async move {
                let socket = match MediaSocket::bind(bind).and_then(|s| {
                    let bound = s.local_addr()?;
                    Ok((s, bound))
                }) {
                    Ok(s) => s,
                    Err(e) => {
                        let _ = ready_tx.send(Err(e));
                        return;
                    }
                };
                let (socket, bound) = socket;
                let advertised =
                    SocketAddr::new(net.advertise_ip.unwrap_or(bound.ip()), bound.port());
                let engine = Engine::new(PcFactory::new(net), advertised);
                let _ = ready_tx.send(Ok(advertised));
                Driver::new(engine, socket, thread_stats, recorder, tap)
                    .run(rx)
                    .await;
            });
        })?;
    let local_addr = ready_rx
        .await
        .map_err(|_| std::io::Error::other("media thread ended"))??;
    Ok(Started {
        cmds,
        local_addr,
        delay,
        stats,
    })
}

/// The loop's state around the engine.
struct Driver {
    engine: Engine,
    socket: MediaSocket,
    links: HashMap<SessionId, Links>,
    queue: SendQueue,
    /// (kernel receive time, copies forwarded) of the datagrams forwarded since the last send.
    held: Vec<(SystemTime, u64)>,
    delay: DelayRecorder,
    stats: Arc<SharedStats>,
    send_dropped: u64,
    send_failed: u64,
    /// Messages for clients dropped because their queue was full.
    client_queue_full: u64,
    /// `Engine::forwarded` at the last send.
    sent_mark: u64,
    tap: RecordTap,
    /// Recorded packets dropped because the recorder's queue was full.
    record_queue_full: u64,
    /// Whether the last recorded packet found the queue full (one log line per episode).
    tap_full: bool,
}

impl Driver {
    fn new(
        engine: Engine,
        socket: MediaSocket,
        stats: Arc<SharedStats>,
        delay: DelayRecorder,
        tap: RecordTap,
    ) -> Self {
        Driver {
            engine,
            socket,
            links: HashMap::new(),
            queue: SendQueue::default(),
            held: Vec::with_capacity(socket::BATCH),
            delay,
            stats,
            send_dropped: 0,
            send_failed: 0,
            client_queue_full: 0,
            sent_mark: 0,
            tap,
            record_queue_full: 0,
            tap_full: false,
        }
    }

    /// Commands, datagrams and timers in, outputs delivered, until every sender is gone.
    async fn run(mut self, mut cmds: mpsc::UnboundedReceiver<LoopCmd>) {
        let mut batch = RecvBatch::new();
        let far = || Instant::now() + Duration::from_secs(3600);
        let sleep = tokio::time::sleep_until(far().into());
        tokio::pin!(sleep);
        let mut open = true;
        while open {
            let now = Instant::now();
            let mut busy = false;
            for _ in 0..COMMANDS_PER_TURN {
                if busy && now.elapsed() >= CONTROL_BUDGET {
                    break;
                }
                match cmds.try_recv() {
                    Ok(cmd) => {
                        self.handle_cmd(now, cmd);
                        busy = true;
                    }
                    Err(mpsc::error::TryRecvError::Empty) => break,
                    Err(mpsc::error::TryRecvError::Disconnected) => {
                        open = false;
                        break;
                    }
                }
            }
            match self.socket.try_recv_batch(&mut batch) {
                Ok(n) => {
                    let now = Instant::now();
                    for i in 0..n {
                        let (bytes, from) = batch.get(i);
                        let before = self.engine.forwarded();
                        self.engine.handle_datagram(now, from, bytes);
                        self.hold(batch.received_at(i), self.engine.forwarded() - before);
                        if self.engine.forwarded() - self.sent_mark >= SEND_EVERY {
                            self.deliver();
                        }
                    }
                    busy |= n > 0;
                }
                Err(e) => tracing::debug!(%e, "media socket receive"),
            }
            self.engine.handle_timeout(Instant::now());
            let offers = Instant::now();
            while self.engine.negotiate_one(offers) && offers.elapsed() < CONTROL_BUDGET {}
            self.deliver();
            self.delay.publish(Instant::now());
            self.publish_stats();
            if busy || self.engine.negotiations_pending() {
                // More may be waiting; look again before sleeping, but let the runtime's other
                // work (timers) in.
                tokio::task::yield_now().await;
                continue;
            }
            let deadline = self.engine.poll_timeout().unwrap_or_else(far);
            sleep.as_mut().reset(deadline.into());
            tokio::select! {
                cmd = cmds.recv() => match cmd {
                    Some(cmd) => self.handle_cmd(Instant::now(), cmd),
                    None => open = false,
                },
                ready = self.socket.readable() => {
                    if let Err(e) = ready {
                        tracing::warn!(%e, "media socket");
                    }
                }
                () = &mut sleep => {}
            }
        }
        self.engine.shutdown();
        self.deliver();
        self.publish_stats();
        tracing::debug!("media loop stopped");
    }

    fn handle_cmd(&mut self, now: Instant, cmd: LoopCmd) {
        let cmd = match cmd {
            LoopCmd::Open {
                id,
                participant,
                to_client,
                kicked,
                to_room,
                in_flight,
            } => {
                self.links.insert(
                    id,
                    Links {
                        participant: participant.clone(),
                        to_client,
                        kicked,
                        to_room,
                        in_flight,
                    },
                );
                Cmd::Open { id, participant }
            }
            LoopCmd::Signal(id, signal) => {
                if let Some(links) = self.links.get(&id) {
                    links.in_flight.fetch_sub(1, Ordering::Relaxed);
                }
                Cmd::Signal(id, signal)
            }
            LoopCmd::Engine(cmd) => cmd,
        };
        let closed = match &cmd {
            Cmd::Close(id) => Some(*id),
            _ => None,
        };
        self.engine.handle_cmd(now, cmd);
        if let Some(id) = closed {
            // What the engine says of a closed session (its tracks ended) goes out first.
            self.deliver();
            self.links.remove(&id);
        }
    }

    /// Note that the datagram received at `received` was forwarded as `copies` packets.
    fn hold(&mut self, received: Option<SystemTime>, copies: u64) {
        if let Some(received) = received.filter(|_| copies > 0) {
            self.held.push((received, copies));
        }
    }

    /// Carry out everything the engine has output, in order: datagrams are sent (without
    /// waiting), messages and events handed on. Records how long the forwarded packets among
    /// the datagrams were held.
    fn deliver(&mut self) {
        while let Some(output) = self.engine.poll_output() {
            match output {
                Output::Transmit(t) => self.queue.push(t.to, t.bytes),
                Output::Client { session, msg } => {
                    if let Some(links) = self.links.get(&session)
                        && let Err(mpsc::error::TrySendError::Full(_)) =
                            links.to_client.try_send(*msg)
                    {
                        // Its negotiation cannot go on without this message: it must rejoin.
                        self.client_queue_full += 1;
                        links.kicked.notify_one();
                        tracing::warn!(participant = %links.participant, "client queue full; disconnecting it");
                    }
                }
                Output::Room { session, event } => {
                    if let Some(links) = self.links.get(&session) {
                        let _ = links.to_room.send(event);
                    }
                }
                Output::Record(packet) => self.record(packet),
            }
        }
        self.sent_mark = self.engine.forwarded();
        if self.queue.is_empty() {
            // Written but nothing to send (the pipeline dropped them): nothing was held.
            self.held.clear();
            return;
        }
        let sent = self.socket.send_batch(&mut self.queue);
        self.send_dropped += sent.dropped as u64;
        self.send_failed += sent.failed as u64;
        if !self.held.is_empty() {
            let sent_at = SystemTime::now();
            for (received, copies) in self.held.drain(..) {
                self.delay.record(received, sent_at, copies);
            }
        }
    }

    /// Hand a recorded packet to the recorder without waiting. A full queue drops it and
    /// counts it; the first drop of an episode is logged, and its end.
    fn record(&mut self, packet: Box<RecordedPacket>) {
        match self.tap.try_send(packet) {
            Ok(()) => {
                if std::mem::take(&mut self.tap_full) {
                    let dropped = self.record_queue_full;
                    tracing::info!(dropped, "the recorder keeps up again");
                }
            }
            Err(mpsc::error::TrySendError::Full(_)) => {
                self.record_queue_full += 1;
                if !std::mem::replace(&mut self.tap_full, true) {
                    tracing::warn!("the recorder's queue is full; dropping recorded packets");
                }
            }
            Err(mpsc::error::TrySendError::Closed(_)) => {}
        }
    }

    fn publish_stats(&self) {
        let s = self.engine.stats();
        let shared = &self.stats;
        shared.connections.store(s.connections, Ordering::Relaxed);
        shared.producers.store(s.producers, Ordering::Relaxed);
        shared.consumers.store(s.consumers, Ordering::Relaxed);
        shared.forwarded.store(s.forwarded, Ordering::Relaxed);
        shared
            .forwarded_bytes
            .store(s.forwarded_bytes, Ordering::Relaxed);
        shared.unrouted.store(s.unrouted, Ordering::Relaxed);
        shared
            .send_dropped
            .store(self.send_dropped, Ordering::Relaxed);
        shared
            .send_failed
            .store(self.send_failed, Ordering::Relaxed);
        shared
            .client_queue_full
            .store(self.client_queue_full, Ordering::Relaxed);
        shared
            .record_queue_full
            .store(self.record_queue_full, Ordering::Relaxed);
    }
}
