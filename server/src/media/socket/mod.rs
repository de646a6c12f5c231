//! The media engine's one UDP socket. Its Linux system calls are in `linux.rs`.
//!
//! Every WebRTC peer connection shares one [`MediaSocket`]: ICE, DTLS, SRTP and SRTCP for all
//! participants arrive on and leave from the same port, and the engine demultiplexes by source
//! address. One socket means one file descriptor, one readiness registration and one port to
//! open in a firewall, whatever the number of participants.
//!
//! Packets move in batches: [`MediaSocket::try_recv_batch`] reads up to [`BATCH`] datagrams
//! with one `recvmmsg(2)` and [`MediaSocket::send_batch`] sends a [`SendQueue`] with one
//! `sendmmsg(2)` per [`BATCH`] datagrams. Per-packet `sendmsg` was ~21% of CPU in an early
//! profile; batching pays the syscall cost once per batch instead.
//!
//! Sending never waits: a datagram the kernel refuses because its buffer is full is dropped and
//! counted ([`SendOutcome::dropped`]), as the rest of the media path drops for a slow subscriber
//! rather than stall a producer.
//!
//! Linux uses `recvmmsg`/`sendmmsg`; other platforms fall back to one syscall per datagram with
//! the same semantics.

use std::io;
use std::net::{Ipv4Addr, SocketAddr, SocketAddrV6};
use std::time::SystemTime;

use bytes::BytesMut;
use socket2::{Domain, Protocol, Socket, Type};
use tokio::io::Interest;
use tokio::net::UdpSocket;
use tracing::{debug, trace};

/// The receive and send buffer size [`MediaSocket::bind`] asks the kernel for. The kernel may
/// clamp it (on Linux to `net.core.rmem_max` / `net.core.wmem_max`).
pub const SOCKET_BUFFER: usize = 4 << 20;

/// How many datagrams one `recvmmsg`/`sendmmsg` moves at most.
pub const BATCH: usize = 64;

/// Bytes per receive slot. Larger than any datagram a WebRTC peer sends (they stay under the
/// path MTU); a longer datagram is truncated by the kernel and discarded here.
const SLOT: usize = 2048;

/// How many consecutive `EINTR`s one syscall is retried before the attempt counts as failed.
const MAX_INTERRUPTS: usize = 8;

/// How many `recvmmsg` rounds one [`MediaSocket::try_recv_batch`] makes at most when every
/// datagram of a round had to be discarded (truncated, or from a non-IP address), and how many
/// ICMP-induced socket errors it skips.
const MAX_RECV_ROUNDS: usize = 8;

/// The one UDP socket shared by every peer connection of the media engine.
#[derive(Debug)]
pub struct MediaSocket {
    socket: UdpSocket,
    /// Bound to an IPv6 address: IPv4 destinations are sent as IPv4-mapped IPv6 addresses.
    ipv6: bool,
}

impl MediaSocket {
    /// Binds a nonblocking UDP socket to `addr`, with `SO_RCVBUF` and `SO_SNDBUF` raised to
    /// [`SOCKET_BUFFER`] on a best-effort basis: the kernel may clamp them, and the effective
    /// values are logged at debug level.
    ///
    /// Must be called inside a tokio runtime; outside one it returns an error.
    ///
    /// # Panics
    ///
    /// Panics if the current tokio runtime was built without IO enabled (tokio's own rule for
    /// registering a socket).
    pub fn bind(addr: SocketAddr) -> io::Result<Self> {
        // `UdpSocket::from_std` panics outside a runtime; refuse politely instead.
        tokio::runtime::Handle::try_current().map_err(io::Error::other)?;

        let socket = Socket::new(Domain::for_address(addr), Type::DGRAM, Some(Protocol::UDP))?;
        if let Err(e) = socket.set_recv_buffer_size(SOCKET_BUFFER) {
            debug!(error = %e, "media socket: could not set SO_RCVBUF");
        }
        if let Err(e) = socket.set_send_buffer_size(SOCKET_BUFFER) {
            debug!(error = %e, "media socket: could not set SO_SNDBUF");
        }
        socket.set_nonblocking(true)?;
        socket.bind(&addr.into())?;
        #[cfg(target_os = "linux")]
        if let Err(e) = linux::enable_receive_timestamps(&socket) {
            debug!(error = %e, "media socket: no kernel receive timestamps");
        }
        debug!(
            %addr,
            requested = SOCKET_BUFFER,
            // Linux reports twice the usable size (it accounts for bookkeeping overhead).
            rcvbuf = ?socket.recv_buffer_size().ok(),
            sndbuf = ?socket.send_buffer_size().ok(),
            "media socket bound",
        );

        let socket = UdpSocket::from_std(socket.into())?;
        Ok(Self {
            socket,
            ipv6: addr.is_ipv6(),
        })
    }

    /// The address the socket is bound to (with the port the kernel chose if it was 0).
    pub fn local_addr(&self) -> io::Result<SocketAddr> {
        self.socket.local_addr()
    }

    /// Waits until the socket may have datagrams to read. May wake spuriously; a
    /// [`try_recv_batch`](Self::try_recv_batch) that finds nothing re-arms it.
    pub async fn readable(&self) -> io::Result<()> {
        self.socket.readable().await
    }

    /// Reads as many datagrams as are waiting, up to the batch's capacity ([`BATCH`]), without
    /// waiting; [`RecvBatch::get`] then gives datagram `0..n`. `Ok(0)` when none are waiting
    /// (call [`readable`](Self::readable) first: before tokio has seen the socket become
    /// readable this returns `Ok(0)` without asking the kernel).
    ///
    /// Datagrams longer than a slot (2048 bytes) are discarded. ICMP-induced errors
    /// (`ECONNREFUSED` and the like, which a dead peer can cause) are skipped, since they say
    /// nothing about the shared socket.
    pub fn try_recv_batch(&self, batch: &mut RecvBatch) -> io::Result<usize> {
        batch.count = 0;
        let mut interrupts = 0;
        for _ in 0..MAX_RECV_ROUNDS {
            // Inside `try_io`, so that a WouldBlock clears tokio's readiness and `readable()`
            // waits for the next datagram instead of returning at once forever.
            match self
                .socket
                .try_io(Interest::READABLE, || self.recv_round(batch))
            {
                // Datagrams arrived but all were discarded: look again.
                Ok(read) if read > 0 && batch.count == 0 => {}
                Ok(_) => return Ok(batch.count),
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => return Ok(0),
                Err(e) if e.kind() == io::ErrorKind::Interrupted && interrupts < MAX_INTERRUPTS => {
                    interrupts += 1;
                }
                Err(e) if is_icmp_error(&e) => {
                    trace!(error = %e, "media socket: skipped an ICMP-induced error");
                }
                Err(e) => return Err(e),
            }
        }
        Ok(batch.count)
    }

    /// Sends every datagram in `queue` without waiting, in as few syscalls as possible
    /// (`sendmmsg`, up to [`BATCH`] per call), then clears the queue.
    ///
    /// Datagrams the kernel refuses because its buffer is full (`EAGAIN`/`EWOULDBLOCK`, or
    /// `ENOBUFS` on Linux) are dropped and counted in [`SendOutcome::dropped`]: the first such
    /// refusal drops the rest of the queue, never retried and never awaited. A datagram refused
    /// with another error (`EHOSTUNREACH`, `EMSGSIZE`, `ECONNREFUSED`, an address of the wrong
    /// family...) is dropped and counted in [`SendOutcome::failed`], and the rest of the queue is
    /// still sent.
    pub fn send_batch(&self, queue: &mut SendQueue) -> SendOutcome {
        let items = &mut queue.items;
        let outcome = drive_send(items.len(), |from| match items.get_mut(from..) {
            Some(rest) => self.send_some(rest),
            None => Ok(0),
        });
        queue.items.clear();
        outcome
    }

    /// Where to send `to` from this socket: IPv4-mapped when the socket is IPv6.
    fn destination(&self, to: SocketAddr) -> SocketAddr {
        match to {
            SocketAddr::V4(v4) if self.ipv6 => {
                SocketAddr::V6(SocketAddrV6::new(v4.ip().to_ipv6_mapped(), v4.port(), 0, 0))
            }
            other => other,
        }
    }
}

#[cfg(target_os = "linux")]
impl MediaSocket {
    /// One `recvmmsg` into `batch`; the number of datagrams the kernel delivered.
    fn recv_round(&self, batch: &mut RecvBatch) -> io::Result<usize> {
        use std::os::fd::AsRawFd;
        linux::recv_mmsg(self.socket.as_raw_fd(), batch)
    }

    /// One `sendmmsg` of the first (up to) [`BATCH`] datagrams of `items`; how many were sent.
    ///
    /// Deliberately not inside `try_io(Interest::WRITABLE, ..)`: nothing ever awaits
    /// writability, and `try_io` returns `WouldBlock` without calling the kernel whenever tokio's
    /// writable flag is clear, which it is until the reactor first polls a new socket and again
    /// after every `EAGAIN` until the reactor sees the buffer drain. Through `try_io` we would
    /// drop datagrams the kernel would have taken.
    fn send_some(&self, items: &mut [(SocketAddr, BytesMut)]) -> io::Result<usize> {
        use std::os::fd::AsRawFd;
        let fd = self.socket.as_raw_fd();
        linux::send_mmsg(fd, items, |to| self.destination(to))
    }
}

#[cfg(not(target_os = "linux"))]
impl MediaSocket {
    /// Datagram-at-a-time fallback of `recvmmsg`.
    fn recv_round(&self, batch: &mut RecvBatch) -> io::Result<usize> {
        let mut read = 0;
        for slot in 0..BATCH {
            let buf = match batch.buf.get_mut(slot * SLOT..(slot + 1) * SLOT) {
                Some(buf) => buf,
                None => break,
            };
            match self.socket.try_recv_from(buf) {
                Ok((len, from)) => {
                    read += 1;
                    batch.push(slot, len, canonical(from), None);
                }
                // An error after some datagrams comes again on the next call.
                Err(e) => return if read > 0 { Ok(read) } else { Err(e) },
            }
        }
        Ok(read)
    }

    /// Datagram-at-a-time fallback of `sendmmsg`: sends `items[0]`.
    fn send_some(&self, items: &mut [(SocketAddr, BytesMut)]) -> io::Result<usize> {
        let Some((to, datagram)) = items.first() else {
            return Ok(0);
        };
        let to = socket2::SockAddr::from(self.destination(*to));
        socket2::SockRef::from(&self.socket)
            .send_to(datagram, &to)
            .map(|_| 1)
    }
}

/// Errors a UDP socket reports because of an ICMP message about some earlier datagram.
fn is_icmp_error(e: &io::Error) -> bool {
    matches!(
        e.kind(),
        io::ErrorKind::ConnectionRefused
            | io::ErrorKind::ConnectionReset
            | io::ErrorKind::HostUnreachable
            | io::ErrorKind::NetworkUnreachable
    )
}

/// Whether a send error means "the kernel's buffer is full" (drop) rather than "this datagram
/// cannot be sent" (fail).
fn is_buffer_full(e: &io::Error) -> bool {
    #[cfg(target_os = "linux")]
    if e.raw_os_error() == Some(libc::ENOBUFS) {
        return true;
    }
    e.kind() == io::ErrorKind::WouldBlock
}

/// The accounting of [`MediaSocket::send_batch`], apart from the syscall so it can be tested
/// with any sequence of kernel answers. `send_from(i)` sends datagrams from index `i` on and
/// returns how many it sent, or the error of datagram `i`.
fn drive_send(len: usize, mut send_from: impl FnMut(usize) -> io::Result<usize>) -> SendOutcome {
    let mut outcome = SendOutcome::default();
    let mut next = 0;
    let mut interrupts = 0;
    while next < len {
        match send_from(next) {
            // The kernel never takes none of a non-empty batch without an error; should it,
            // count that datagram as failed rather than loop.
            Ok(0) => {
                outcome.failed += 1;
                next += 1;
                interrupts = 0;
            }
            Ok(sent) => {
                let sent = sent.min(len - next);
                outcome.sent += sent;
                next += sent;
                interrupts = 0;
            }
            Err(e) if is_buffer_full(&e) => {
                outcome.dropped += len - next;
                break;
            }
            Err(e) if e.kind() == io::ErrorKind::Interrupted && interrupts < MAX_INTERRUPTS => {
                interrupts += 1;
            }
            Err(e) => {
                trace!(error = %e, "media socket: a datagram could not be sent");
                outcome.failed += 1;
                next += 1;
                interrupts = 0;
            }
        }
    }
    outcome
}

/// A received address as the engine should see it: IPv4-mapped IPv6 addresses (what a
/// dual-stack socket reports for IPv4 peers) become plain IPv4.
fn canonical(addr: SocketAddr) -> SocketAddr {
    match addr {
        SocketAddr::V6(v6) => match v6.ip().to_ipv4_mapped() {
            Some(v4) => SocketAddr::new(v4.into(), v6.port()),
            None => addr,
        },
        v4 => v4,
    }
}

/// Reusable receive buffers: [`BATCH`] slots of 2048 bytes each, allocated once.
pub struct RecvBatch {
    /// `BATCH` slots of `SLOT` bytes, back to back.
    buf: Box<[u8]>,
    /// The datagrams of the last read, in arrival order.
    entries: [Entry; BATCH],
    /// How many of `entries` are valid.
    count: usize,
}

/// Where datagram `i` of a [`RecvBatch`] lies.
#[derive(Debug, Clone, Copy)]
struct Entry {
    slot: usize,
    len: usize,
    from: SocketAddr,
    /// When the kernel received it (`SO_TIMESTAMPNS`, the system clock), if it said.
    received: Option<SystemTime>,
}

const UNSPECIFIED: SocketAddr = SocketAddr::new(std::net::IpAddr::V4(Ipv4Addr::UNSPECIFIED), 0);

impl RecvBatch {
    /// Allocates the slots.
    pub fn new() -> Self {
        Self {
            buf: vec![0; BATCH * SLOT].into_boxed_slice(),
            entries: [Entry {
                slot: 0,
                len: 0,
                from: UNSPECIFIED,
                received: None,
            }; BATCH],
            count: 0,
        }
    }

    /// Datagram `i` of the last [`MediaSocket::try_recv_batch`]: its bytes and source. For an
    /// `i` past what was read, an empty datagram from `0.0.0.0:0`.
    pub fn get(&self, i: usize) -> (&[u8], SocketAddr) {
        let datagram = self
            .entries
            .get(..self.count)
            .and_then(|entries| entries.get(i));
        match datagram {
            Some(e) => {
                let start = e.slot * SLOT;
                let bytes = self.buf.get(start..start + e.len.min(SLOT)).unwrap_or(&[]);
                (bytes, e.from)
            }
            None => (&[], UNSPECIFIED),
        }
    }

    /// When the kernel received datagram `i` of the last read, by the system clock: what the
    /// forwarding delay is measured from. `None` where the platform or kernel gave no
    /// timestamp, and for an `i` past what was read.
    pub fn received_at(&self, i: usize) -> Option<SystemTime> {
        self.entries.get(..self.count)?.get(i)?.received
    }

    /// Records that slot `slot` holds a datagram of `len` bytes from `from`.
    fn push(&mut self, slot: usize, len: usize, from: SocketAddr, received: Option<SystemTime>) {
        if let Some(entry) = self.entries.get_mut(self.count) {
            *entry = Entry {
                slot,
                len,
                from,
                received,
            };
            self.count += 1;
        }
    }
}

impl Default for RecvBatch {
    fn default() -> Self {
        Self::new()
    }
}

impl std::fmt::Debug for RecvBatch {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("RecvBatch")
            .field("count", &self.count)
            .finish_non_exhaustive()
    }
}

/// Datagrams waiting to be sent.
#[derive(Debug, Default)]
pub struct SendQueue {
    items: Vec<(SocketAddr, BytesMut)>,
}

impl SendQueue {
    /// Queues `datagram` for `to`.
    pub fn push(&mut self, to: SocketAddr, datagram: BytesMut) {
        self.items.push((to, datagram));
    }

    /// How many datagrams are queued.
    pub fn len(&self) -> usize {
        self.items.len()
    }

    /// Whether nothing is queued.
    pub fn is_empty(&self) -> bool {
        self.items.is_empty()
    }
}

/// What became of the datagrams of one [`MediaSocket::send_batch`]; the three add up to the
/// queue's length.
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
pub struct SendOutcome {
    /// Handed to the kernel.
    pub sent: usize,
    /// Dropped because the kernel's send buffer was full.
    pub dropped: usize,
    /// Refused by the kernel for another reason (unreachable, too large, wrong family...).
    pub failed: usize,
}

#[cfg(target_os = "linux")]
mod linux;
#[cfg(test)]
mod tests;
