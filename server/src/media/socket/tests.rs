//! Tests of the media socket: batches, timestamps, drops, and the addresses its system calls
//! read and write.

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

/// The socket addresses the system calls read and write.
#[cfg(target_os = "linux")]
mod names {
    use std::net::{Ipv4Addr, Ipv6Addr, SocketAddr, SocketAddrV4, SocketAddrV6};

    use super::super::linux::{NAME_LEN, ZERO_NAME, read_name, write_name};

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
