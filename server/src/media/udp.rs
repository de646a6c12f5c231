//! The single UDP socket of the single-socket media plane.
//!
//! Every WebRTC peer connection shares one [`MediaSocket`]: ICE, DTLS, SRTP and SRTCP for all
//! participants arrive on and leave from the same port, and the plane demultiplexes by source
//! address. One socket means one file descriptor, one readiness registration and one port to
//! open in a firewall, whatever the number of participants.
//!
//! Packets move in batches: [`MediaSocket::try_recv_batch`] reads up to [`BATCH`] datagrams
//! with one `recvmmsg(2)` and [`MediaSocket::send_batch`] sends a [`SendQueue`] with one
//! `sendmmsg(2)` per [`BATCH`] datagrams. Per-packet `sendmsg` was ~21% of CPU in our profile of
//! the webrtc-rs plane; batching pays the syscall cost once per batch instead.
//!
//! Sending never waits: a datagram the kernel refuses because its buffer is full is dropped and
//! counted ([`SendOutcome::dropped`]), as the rest of the media plane drops for a slow consumer
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

/// The one UDP socket shared by every peer connection of the media plane.
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

/// A received address as the plane should see it: IPv4-mapped IPv6 addresses (what a
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

/// The `recvmmsg`/`sendmmsg` calls. Every buffer the kernel sees lives on the stack of the
/// calling function or in the `RecvBatch`/`SendQueue`, so nothing is allocated per call and the
/// public types hold no raw pointers (they stay `Send`).
#[cfg(target_os = "linux")]
mod linux {
    use std::io;
    use std::mem;
    use std::net::{Ipv4Addr, Ipv6Addr, SocketAddr, SocketAddrV4, SocketAddrV6};
    use std::os::fd::RawFd;
    use std::time::SystemTime;

    use bytes::BytesMut;

    use super::{BATCH, RecvBatch, SLOT, canonical};

    /// Room for an IPv4 or an IPv6 socket address. Writing a field is safe; the kernel fills it
    /// on receive.
    #[repr(C)]
    #[derive(Clone, Copy)]
    union Name {
        v4: libc::sockaddr_in,
        v6: libc::sockaddr_in6,
    }

    const NAME_LEN: libc::socklen_t = mem::size_of::<Name>() as libc::socklen_t;

    const ZERO_NAME: Name = Name {
        v6: libc::sockaddr_in6 {
            sin6_family: 0,
            sin6_port: 0,
            sin6_flowinfo: 0,
            sin6_addr: libc::in6_addr { s6_addr: [0; 16] },
            sin6_scope_id: 0,
        },
    };

    const ZERO_IOVEC: libc::iovec = libc::iovec {
        iov_base: std::ptr::null_mut(),
        iov_len: 0,
    };

    fn zeroed_headers() -> [libc::mmsghdr; BATCH] {
        // SAFETY: `mmsghdr` is a C struct of integers and raw pointers (some private padding on
        // some libcs, which is why it is not built with a literal); all-zero bytes are a valid
        // value of it: null pointers, zero lengths, no flags.
        unsafe { mem::zeroed() }
    }

    /// Fills `name` with `addr`; its length for `msg_namelen`.
    fn write_name(addr: SocketAddr, name: &mut Name) -> libc::socklen_t {
        match addr {
            SocketAddr::V4(a) => {
                name.v4 = libc::sockaddr_in {
                    sin_family: libc::AF_INET as libc::sa_family_t,
                    sin_port: a.port().to_be(),
                    // `s_addr` is in network byte order: the octets as they are.
                    sin_addr: libc::in_addr {
                        s_addr: u32::from_ne_bytes(a.ip().octets()),
                    },
                    sin_zero: [0; 8],
                };
                mem::size_of::<libc::sockaddr_in>() as libc::socklen_t
            }
            SocketAddr::V6(a) => {
                name.v6 = libc::sockaddr_in6 {
                    sin6_family: libc::AF_INET6 as libc::sa_family_t,
                    sin6_port: a.port().to_be(),
                    sin6_flowinfo: a.flowinfo(),
                    sin6_addr: libc::in6_addr {
                        s6_addr: a.ip().octets(),
                    },
                    sin6_scope_id: a.scope_id(),
                };
                mem::size_of::<libc::sockaddr_in6>() as libc::socklen_t
            }
        }
    }

    /// The address the kernel wrote into `name` (`len` bytes), if it is IPv4 or IPv6.
    fn read_name(name: &Name, len: libc::socklen_t) -> Option<SocketAddr> {
        let len = usize::try_from(len).ok()?;
        // SAFETY: `name` was fully initialised (ZERO_NAME) before the kernel wrote into it, and
        // both variants are plain integers, so reading either reads initialised bytes of a type
        // for which every bit pattern is valid. The family field is at offset 0 in both.
        let family = i32::from(unsafe { name.v4.sin_family });
        match family {
            libc::AF_INET if len >= mem::size_of::<libc::sockaddr_in>() => {
                // SAFETY: as above.
                let sin = unsafe { name.v4 };
                let ip = Ipv4Addr::from(sin.sin_addr.s_addr.to_ne_bytes());
                Some(SocketAddr::V4(SocketAddrV4::new(
                    ip,
                    u16::from_be(sin.sin_port),
                )))
            }
            libc::AF_INET6 if len >= mem::size_of::<libc::sockaddr_in6>() => {
                // SAFETY: as above.
                let sin6 = unsafe { name.v6 };
                let ip = Ipv6Addr::from(sin6.sin6_addr.s6_addr);
                Some(canonical(SocketAddr::V6(SocketAddrV6::new(
                    ip,
                    u16::from_be(sin6.sin6_port),
                    sin6.sin6_flowinfo,
                    sin6.sin6_scope_id,
                ))))
            }
            _ => None,
        }
    }

    /// Room for the control messages of one received datagram: a `SCM_TIMESTAMPNS` (a
    /// `timespec`, 32 bytes with its header) and slack, aligned as `cmsghdr` must be.
    #[repr(C, align(8))]
    #[derive(Clone, Copy)]
    struct Control([u8; 64]);

    /// Asks the kernel to stamp every datagram it receives on `socket` with the system clock
    /// (`SO_TIMESTAMPNS`); `recv_mmsg` reads the stamp.
    pub(super) fn enable_receive_timestamps(socket: &socket2::Socket) -> io::Result<()> {
        use std::os::fd::AsRawFd;
        let on: libc::c_int = 1;
        // SAFETY: a valid socket, and a pointer to a live `c_int` with its exact size.
        let rc = unsafe {
            libc::setsockopt(
                socket.as_raw_fd(),
                libc::SOL_SOCKET,
                libc::SO_TIMESTAMPNS,
                std::ptr::from_ref(&on).cast(),
                mem::size_of::<libc::c_int>() as libc::socklen_t,
            )
        };
        if rc == 0 {
            Ok(())
        } else {
            Err(io::Error::last_os_error())
        }
    }

    /// The `SCM_TIMESTAMPNS` among the control messages of `header`, if any.
    fn receive_timestamp(header: &libc::msghdr) -> Option<SystemTime> {
        if header.msg_flags & libc::MSG_CTRUNC != 0 {
            return None;
        }
        // SAFETY: `header` is what `recvmmsg` filled: `msg_control` points at a live `Control`
        // and `msg_controllen` is the length the kernel wrote, so the CMSG_* walk stays inside
        // initialised bytes. The timestamp is read unaligned, as CMSG_DATA need not be aligned
        // for `timespec`.
        unsafe {
            let mut cmsg = libc::CMSG_FIRSTHDR(header);
            while !cmsg.is_null() {
                let c = &*cmsg;
                if c.cmsg_level == libc::SOL_SOCKET && c.cmsg_type == libc::SCM_TIMESTAMPNS {
                    let ts: libc::timespec =
                        std::ptr::read_unaligned(libc::CMSG_DATA(cmsg).cast::<libc::timespec>());
                    let secs = u64::try_from(ts.tv_sec).ok()?;
                    let nanos = u32::try_from(ts.tv_nsec).ok()?;
                    return SystemTime::UNIX_EPOCH
                        .checked_add(std::time::Duration::new(secs, nanos));
                }
                cmsg = libc::CMSG_NXTHDR(header, cmsg);
            }
        }
        None
    }

    /// One nonblocking `recvmmsg` into the slots of `batch`, recording in it every datagram that
    /// fit its slot and came from an IP address, with the kernel's receive timestamp if the
    /// socket has them on. Returns how many datagrams the kernel delivered (recorded or not).
    pub(super) fn recv_mmsg(fd: RawFd, batch: &mut RecvBatch) -> io::Result<usize> {
        let mut names = [ZERO_NAME; BATCH];
        let mut iovecs = [ZERO_IOVEC; BATCH];
        let mut controls = [Control([0; 64]); BATCH];
        let mut headers = zeroed_headers();
        let slots = batch.buf.chunks_exact_mut(SLOT);
        for ((((slot, iovec), name), control), header) in slots
            .zip(iovecs.iter_mut())
            .zip(names.iter_mut())
            .zip(controls.iter_mut())
            .zip(headers.iter_mut())
        {
            iovec.iov_base = slot.as_mut_ptr().cast();
            iovec.iov_len = slot.len();
            header.msg_hdr.msg_name = std::ptr::from_mut(name).cast();
            header.msg_hdr.msg_namelen = NAME_LEN;
            header.msg_hdr.msg_iov = iovec;
            header.msg_hdr.msg_iovlen = 1;
            header.msg_hdr.msg_control = std::ptr::from_mut(control).cast();
            header.msg_hdr.msg_controllen = mem::size_of::<Control>() as _;
        }
        // Only the headers that point at a slot (all of them: `buf` holds BATCH slots).
        let vlen = batch.buf.len() / SLOT;
        let vlen = vlen.min(BATCH);

        // SAFETY: `headers[..vlen]` are valid `mmsghdr`s, each pointing at one `iovec` of
        // `iovecs` (which points at a distinct SLOT-byte slot of `batch.buf`, borrowed mutably
        // here), at one `Name` of `names` with `msg_namelen` its size and at one `Control` of
        // `controls` with `msg_controllen` its size. All of these outlive the call, and nothing
        // else accesses them during it. The kernel writes at most `iov_len` bytes per slot,
        // `msg_namelen` bytes per name and `msg_controllen` bytes per control buffer.
        // MSG_DONTWAIT and a null timeout: it never blocks.
        let n = unsafe {
            libc::recvmmsg(
                fd,
                headers.as_mut_ptr(),
                vlen as libc::c_uint,
                libc::MSG_DONTWAIT as _,
                std::ptr::null_mut(),
            )
        };
        if n < 0 {
            return Err(io::Error::last_os_error());
        }
        let n = usize::try_from(n).unwrap_or(0).min(vlen);

        for (slot, (header, name)) in headers.iter().zip(names.iter()).take(n).enumerate() {
            if header.msg_hdr.msg_flags & libc::MSG_TRUNC != 0 {
                continue; // longer than a slot: not a datagram of ours.
            }
            let Some(from) = read_name(name, header.msg_hdr.msg_namelen) else {
                continue;
            };
            let len = usize::try_from(header.msg_len).unwrap_or(SLOT).min(SLOT);
            batch.push(slot, len, from, receive_timestamp(&header.msg_hdr));
        }
        Ok(n)
    }

    /// One nonblocking `sendmmsg` of the first (up to) BATCH datagrams of `items`, each to
    /// `destination(to)`. How many the kernel took; the error of the first if it took none.
    pub(super) fn send_mmsg(
        fd: RawFd,
        items: &mut [(SocketAddr, BytesMut)],
        destination: impl Fn(SocketAddr) -> SocketAddr,
    ) -> io::Result<usize> {
        let mut names = [ZERO_NAME; BATCH];
        let mut iovecs = [ZERO_IOVEC; BATCH];
        let mut headers = zeroed_headers();
        let mut vlen = 0;
        for (((item, iovec), name), header) in items
            .iter_mut()
            .zip(iovecs.iter_mut())
            .zip(names.iter_mut())
            .zip(headers.iter_mut())
        {
            let (to, datagram) = item;
            header.msg_hdr.msg_namelen = write_name(destination(*to), name);
            header.msg_hdr.msg_name = std::ptr::from_mut(name).cast();
            iovec.iov_base = datagram.as_mut_ptr().cast();
            iovec.iov_len = datagram.len();
            header.msg_hdr.msg_iov = iovec;
            header.msg_hdr.msg_iovlen = 1;
            vlen += 1;
        }
        if vlen == 0 {
            return Ok(0);
        }

        // SAFETY: `headers[..vlen]` are valid `mmsghdr`s, each pointing at one initialised
        // `Name` of `names` (`msg_namelen` bytes of it are a socket address) and at one `iovec`
        // that covers exactly the initialised bytes of one queued `BytesMut` (borrowed mutably
        // through `items`). All of these outlive the call and nothing else accesses them during
        // it; the kernel only reads them (and writes `msg_len`). MSG_DONTWAIT: never blocks.
        let n = unsafe {
            libc::sendmmsg(
                fd,
                headers.as_mut_ptr(),
                vlen as libc::c_uint,
                libc::MSG_DONTWAIT as _,
            )
        };
        if n < 0 {
            return Err(io::Error::last_os_error());
        }
        Ok(usize::try_from(n).unwrap_or(0).min(vlen))
    }

    #[cfg(test)]
    mod tests {
        use super::*;

        #[test]
        fn socket_addresses_survive_the_round_trip_through_c() {
            let cases: [SocketAddr; 4] = [
                "127.0.0.1:5004".parse().expect("addr"),
                "203.0.113.7:65535".parse().expect("addr"),
                SocketAddr::V6(SocketAddrV6::new(
                    "2001:db8::1".parse().expect("addr"),
                    443,
                    7,
                    3,
                )),
                SocketAddr::V6(SocketAddrV6::new(Ipv6Addr::LOCALHOST, 1, 0, 0)),
            ];
            for addr in cases {
                let mut name = ZERO_NAME;
                let len = write_name(addr, &mut name);
                assert_eq!(read_name(&name, len), Some(addr));
            }
        }

        #[test]
        fn an_ipv4_mapped_source_reads_as_ipv4() {
            let mapped = SocketAddr::V6(SocketAddrV6::new(
                Ipv4Addr::new(192, 0, 2, 9).to_ipv6_mapped(),
                3478,
                0,
                0,
            ));
            let mut name = ZERO_NAME;
            let len = write_name(mapped, &mut name);
            assert_eq!(
                read_name(&name, len),
                Some(SocketAddr::V4(SocketAddrV4::new(
                    Ipv4Addr::new(192, 0, 2, 9),
                    3478
                )))
            );
        }

        #[test]
        fn a_short_or_foreign_name_is_no_address() {
            let mut name = ZERO_NAME;
            let len = write_name("127.0.0.1:9".parse().expect("addr"), &mut name);
            assert_eq!(read_name(&name, len - 1), None);
            assert_eq!(read_name(&ZERO_NAME, NAME_LEN), None); // AF_UNSPEC
        }
    }
}

#[cfg(test)]
mod tests {
    use std::collections::HashMap;

    use futures_util::FutureExt;

    use super::*;

    fn localhost() -> SocketAddr {
        SocketAddr::from((Ipv4Addr::LOCALHOST, 0))
    }

    /// Datagram `i` of a test burst: distinct length and content, with its index up front.
    fn datagram(i: usize) -> Vec<u8> {
        let len = 4 + (i * 37) % 1200;
        let mut bytes = Vec::with_capacity(len);
        bytes.extend_from_slice(&u32::try_from(i).expect("small index").to_be_bytes());
        bytes.extend((4..len).map(|j| (i * 31 + j * 7) as u8));
        bytes
    }

    /// Reads from `socket` until `want` datagrams are in; `(source, bytes)` in arrival order.
    async fn receive(socket: &MediaSocket, want: usize) -> Vec<(SocketAddr, Vec<u8>)> {
        let mut batch = RecvBatch::new();
        let mut got = Vec::new();
        while got.len() < want {
            socket.readable().await.expect("readable");
            loop {
                let n = socket.try_recv_batch(&mut batch).expect("recv");
                assert!(n <= BATCH);
                if n == 0 {
                    break;
                }
                for i in 0..n {
                    let (bytes, from) = batch.get(i);
                    got.push((from, bytes.to_vec()));
                }
            }
        }
        got
    }

    #[cfg(target_os = "linux")]
    #[tokio::test]
    async fn every_datagram_carries_the_kernels_receive_time() {
        let sender = MediaSocket::bind(localhost()).expect("bind sender");
        let receiver = MediaSocket::bind(localhost()).expect("bind receiver");
        let to = receiver.local_addr().expect("addr");
        let before = SystemTime::now();
        let mut queue = SendQueue::default();
        for i in 0..10 {
            queue.push(to, BytesMut::from(&datagram(i)[..]));
        }
        assert_eq!(sender.send_batch(&mut queue).sent, 10);
        let mut batch = RecvBatch::new();
        let mut stamps = Vec::new();
        while stamps.len() < 10 {
            receiver.readable().await.expect("readable");
            let n = receiver.try_recv_batch(&mut batch).expect("recv");
            stamps.extend((0..n).map(|i| batch.received_at(i)));
        }
        let after = SystemTime::now();
        for stamp in stamps {
            let stamp = stamp.expect("a kernel timestamp");
            assert!(
                before <= stamp && stamp <= after,
                "{stamp:?} outside the send"
            );
        }
        assert_eq!(batch.received_at(BATCH), None);
    }

    #[tokio::test]
    async fn a_burst_to_three_receivers_arrives_complete_and_exact() {
        let sender = MediaSocket::bind(localhost()).expect("bind sender");
        let receivers: Vec<MediaSocket> = (0..3)
            .map(|_| MediaSocket::bind(localhost()).expect("bind receiver"))
            .collect();
        let addrs: Vec<SocketAddr> = receivers
            .iter()
            .map(|r| r.local_addr().expect("addr"))
            .collect();

        let mut queue = SendQueue::default();
        for i in 0..100 {
            queue.push(addrs[i % 3], BytesMut::from(&datagram(i)[..]));
        }
        assert_eq!(queue.len(), 100);
        // Sent at once, before the reactor has ever polled the new socket.
        let outcome = sender.send_batch(&mut queue);
        assert_eq!(
            outcome,
            SendOutcome {
                sent: 100,
                dropped: 0,
                failed: 0
            }
        );
        assert!(queue.is_empty());

        let from = sender.local_addr().expect("addr");
        for (r, receiver) in receivers.iter().enumerate() {
            let expected: Vec<usize> = (0..100).filter(|i| i % 3 == r).collect();
            let got = receive(receiver, expected.len()).await;
            assert_eq!(got.len(), expected.len());
            // UDP over loopback keeps order, but do not depend on it: match by index.
            let by_index: HashMap<usize, Vec<u8>> = got
                .into_iter()
                .map(|(source, bytes)| {
                    assert_eq!(source, from);
                    let index = u32::from_be_bytes(bytes[..4].try_into().expect("4 bytes"));
                    (index as usize, bytes)
                })
                .collect();
            assert_eq!(by_index.len(), expected.len());
            for i in expected {
                assert_eq!(by_index.get(&i), Some(&datagram(i)), "datagram {i}");
            }
            // Nothing more is waiting.
            assert_eq!(
                receiver
                    .try_recv_batch(&mut RecvBatch::new())
                    .expect("recv"),
                0
            );
        }
    }

    #[tokio::test]
    async fn recv_reports_the_source_and_zero_when_nothing_waits() {
        let receiver = MediaSocket::bind(localhost()).expect("bind");
        let to = receiver.local_addr().expect("addr");
        let mut batch = RecvBatch::default();
        assert_eq!(receiver.try_recv_batch(&mut batch).expect("recv"), 0);

        let a = std::net::UdpSocket::bind(localhost()).expect("bind a");
        let b = std::net::UdpSocket::bind(localhost()).expect("bind b");
        a.send_to(b"from a", to).expect("send a");
        b.send_to(b"from b!", to).expect("send b");
        a.send_to(b"", to).expect("send empty");

        let got = receive(&receiver, 3).await;
        assert_eq!(
            got,
            vec![
                (a.local_addr().expect("a"), b"from a".to_vec()),
                (b.local_addr().expect("b"), b"from b!".to_vec()),
                (a.local_addr().expect("a"), Vec::new()),
            ]
        );

        // Drained: Ok(0), the batch is empty, and readiness is re-armed (no spinning).
        assert_eq!(receiver.try_recv_batch(&mut batch).expect("recv"), 0);
        assert_eq!(batch.get(0), (&[][..], UNSPECIFIED));
        assert_eq!(batch.get(usize::MAX), (&[][..], UNSPECIFIED));
        assert!(receiver.readable().now_or_never().is_none());

        // A datagram longer than a slot is discarded, the next one still read.
        a.send_to(&[7; SLOT + 1], to).expect("send long");
        a.send_to(b"after", to).expect("send after");
        let got = receive(&receiver, 1).await;
        assert_eq!(got, vec![(a.local_addr().expect("a"), b"after".to_vec())]);
    }

    #[tokio::test]
    async fn refused_datagrams_fail_alone_and_the_rest_is_sent() {
        let sender = MediaSocket::bind(localhost()).expect("bind sender");
        let receiver = MediaSocket::bind(localhost()).expect("bind receiver");
        let live = receiver.local_addr().expect("addr");
        let closed = {
            let gone = std::net::UdpSocket::bind(localhost()).expect("bind");
            gone.local_addr().expect("addr")
        };
        let v6: SocketAddr = "[::1]:9".parse().expect("v6"); // wrong family: EAFNOSUPPORT

        let mut queue = SendQueue::default();
        let mut expected = Vec::new();
        for i in 0..150 {
            match i % 10 {
                3 => queue.push(closed, BytesMut::from(&b"to nobody"[..])),
                // Larger than any UDP datagram can be: EMSGSIZE.
                5 if i < 100 => queue.push(live, BytesMut::zeroed(70_000)),
                7 if i < 100 => queue.push(v6, BytesMut::from(&b"wrong family"[..])),
                _ => {
                    queue.push(live, BytesMut::from(&datagram(i)[..]));
                    expected.push(datagram(i));
                }
            }
        }
        let oversized = 10;
        let wrong_family = 10;
        let to_closed = 15;
        let outcome = sender.send_batch(&mut queue);
        assert!(queue.is_empty());
        assert_eq!(outcome.dropped, 0);
        assert_eq!(outcome.sent + outcome.failed, 150);
        if cfg!(target_os = "linux") {
            // Linux reports no ICMP error to an unconnected socket (without IP_RECVERR): the
            // datagrams to the closed port count as sent.
            assert_eq!(outcome.failed, oversized + wrong_family);
        } else {
            assert!(outcome.failed >= oversized + wrong_family);
            assert!(outcome.failed <= oversized + wrong_family + to_closed);
        }
        assert_eq!(outcome.sent, 150 - outcome.failed);

        let got = receive(&receiver, expected.len()).await;
        let got: Vec<Vec<u8>> = got.into_iter().map(|(_, bytes)| bytes).collect();
        assert_eq!(got, expected);

        // The ICMP port-unreachables that came back do not break the sender's reads.
        let mut batch = RecvBatch::new();
        assert_eq!(sender.try_recv_batch(&mut batch).expect("recv"), 0);
    }

    #[tokio::test]
    async fn a_full_buffer_drops_without_blocking() {
        let sender = MediaSocket::bind(localhost()).expect("bind sender");
        socket2::SockRef::from(&sender.socket)
            .set_send_buffer_size(1)
            .expect("shrink sndbuf");
        // A receiver that never reads, with the smallest receive buffer the kernel allows.
        let sink = Socket::new(Domain::IPV4, Type::DGRAM, None).expect("socket");
        sink.set_recv_buffer_size(1).expect("shrink rcvbuf");
        sink.bind(&localhost().into()).expect("bind sink");
        let sink: std::net::UdpSocket = sink.into();
        let to = sink.local_addr().expect("addr");

        let queued = 5_000;
        let mut queue = SendQueue::default();
        for _ in 0..queued {
            queue.push(to, BytesMut::zeroed(1200));
        }
        // Returns (the socket is nonblocking and every call passes MSG_DONTWAIT) with every
        // datagram accounted for. Over loopback Linux orphans each datagram from the sender's
        // buffer as it hands it to the receiver, so the sender's buffer never fills and all
        // count as `sent` here; the drop accounting is tested with scripted kernel answers.
        let outcome = sender.send_batch(&mut queue);
        assert!(queue.is_empty());
        assert_eq!(outcome.failed, 0);
        assert_eq!(outcome.sent + outcome.dropped, queued);

        // Whatever got through overflowed the sink: it holds only a few.
        sink.set_nonblocking(true).expect("nonblocking");
        let mut held = 0;
        let mut buf = [0; SLOT];
        while sink.recv_from(&mut buf).is_ok() {
            held += 1;
        }
        assert!(held < outcome.sent.max(1), "held {held} of {outcome:?}");
    }

    fn err(kind: io::ErrorKind) -> io::Error {
        io::Error::from(kind)
    }

    /// Plays the kernel's answers to `drive_send`, checking where each call starts.
    fn scripted(len: usize, script: Vec<(usize, io::Result<usize>)>) -> (SendOutcome, usize) {
        let mut script = script.into_iter();
        let mut calls = 0;
        let outcome = drive_send(len, |from| {
            calls += 1;
            let (at, answer) = script.next().expect("an unexpected call");
            assert_eq!(from, at, "call {calls}");
            answer
        });
        assert!(script.next().is_none(), "calls left over");
        (outcome, calls)
    }

    #[test]
    fn a_kernel_that_takes_nothing_does_not_loop() {
        let (outcome, _) = scripted(3, vec![(0, Ok(0)), (1, Ok(2))]);
        assert_eq!(
            outcome,
            SendOutcome {
                sent: 2,
                dropped: 0,
                failed: 1
            }
        );
    }

    #[test]
    fn the_first_full_buffer_drops_the_rest_of_the_queue() {
        let (outcome, calls) = scripted(
            200,
            vec![
                (0, Ok(64)),
                (64, Ok(10)),
                (74, Err(err(io::ErrorKind::WouldBlock))),
            ],
        );
        assert_eq!(
            outcome,
            SendOutcome {
                sent: 74,
                dropped: 126,
                failed: 0
            }
        );
        assert_eq!(calls, 3);

        #[cfg(target_os = "linux")]
        {
            let (outcome, _) = scripted(
                5,
                vec![
                    (0, Ok(2)),
                    (2, Err(io::Error::from_raw_os_error(libc::ENOBUFS))),
                ],
            );
            assert_eq!(
                outcome,
                SendOutcome {
                    sent: 2,
                    dropped: 3,
                    failed: 0
                }
            );
        }
    }

    #[test]
    fn a_refused_datagram_is_skipped_and_interrupts_are_retried() {
        let (outcome, _) = scripted(
            130,
            vec![
                (0, Ok(64)),
                (64, Ok(3)),
                (67, Err(err(io::ErrorKind::HostUnreachable))),
                (68, Err(err(io::ErrorKind::Interrupted))),
                (68, Err(err(io::ErrorKind::ConnectionRefused))),
                (69, Ok(60)),
                (129, Ok(7)), // more than asked for: clamped
            ],
        );
        assert_eq!(
            outcome,
            SendOutcome {
                sent: 128,
                dropped: 0,
                failed: 2
            }
        );
        // A kernel that keeps interrupting does not hold the sender forever.
        let mut script: Vec<(usize, io::Result<usize>)> = (0..=MAX_INTERRUPTS)
            .map(|_| (0, Err(err(io::ErrorKind::Interrupted))))
            .collect();
        script.push((1, Ok(1)));
        let (outcome, _) = scripted(2, script);
        assert_eq!(
            outcome,
            SendOutcome {
                sent: 1,
                dropped: 0,
                failed: 1
            }
        );
        assert_eq!(scripted(0, vec![]).0, SendOutcome::default());
    }

    #[test]
    fn the_types_can_move_between_tasks() {
        fn send_sync<T: Send + Sync>() {}
        send_sync::<MediaSocket>();
        send_sync::<RecvBatch>();
        send_sync::<SendQueue>();
    }

    #[test]
    fn bind_outside_a_runtime_is_an_error() {
        assert!(MediaSocket::bind(localhost()).is_err());
    }
}
