//! The `recvmmsg`/`sendmmsg` calls. Every buffer the kernel sees lives on the stack of the
//! calling function or in the `RecvBatch`/`SendQueue`, so nothing is allocated per call and the
//! public types hold no raw pointers (they stay `Send`).

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
pub(super) union Name {
    v4: libc::sockaddr_in,
    v6: libc::sockaddr_in6,
}

pub(super) const NAME_LEN: libc::socklen_t = mem::size_of::<Name>() as libc::socklen_t;

pub(super) const ZERO_NAME: Name = Name {
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
pub(super) fn write_name(addr: SocketAddr, name: &mut Name) -> libc::socklen_t {
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
pub(super) fn read_name(name: &Name, len: libc::socklen_t) -> Option<SocketAddr> {
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
                return SystemTime::UNIX_EPOCH.checked_add(std::time::Duration::new(secs, nanos));
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
