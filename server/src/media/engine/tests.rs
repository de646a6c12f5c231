//! Engine tests: the simulation harness (`sim`) drives real sans-IO clients against the
//! engine, and every check reads what the engine output or what a client received.

use std::net::SocketAddr;
use std::time::{Duration, Instant};

use roundtable_peer::{Flow, PeerNet, Side};
use rtc::rtcp::sender_report::SenderReport;
use rtc::rtp_transceiver::rtp_sender::RtpCodecKind;
use signaling::wire::{ErrorCode, PcRole, ServerMsg};

use super::PcFactory;
use super::sim::{self, Net};

mod record;

/// The codec names in an SDP's `a=rtpmap` lines, sorted, once each.
fn rtpmap_names(sdp: &str) -> Vec<String> {
    let mut names: Vec<String> = sdp
        .lines()
        .filter_map(|l| l.strip_prefix("a=rtpmap:"))
        .filter_map(|l| l.split_whitespace().nth(1))
        .filter_map(|codec| codec.split('/').next())
        .map(str::to_owned)
        .collect();
    names.sort();
    names.dedup();
    names
}

#[test]
fn a_subscribe_offer_lists_only_the_codecs_browsers_publish() {
    let factory = PcFactory::new(PeerNet::loopback());
    let local = SocketAddr::from(([127, 0, 0, 1], 7882));
    let mut pc = factory
        .build(Instant::now(), PcRole::Subscribe, "abcdefgh", local)
        .unwrap();
    for kind in [RtpCodecKind::Audio, RtpCodecKind::Video] {
        pc.add_transceiver_from_kind(kind, None).unwrap();
    }
    let offer = pc.create_offer(None).unwrap();
    assert_eq!(
        rtpmap_names(&offer.sdp),
        ["H264", "VP8", "VP9", "opus", "rtx"],
        "{}",
        offer.sdp
    );
    // One RTX per video codec, and H.264 only in packetization mode 1.
    assert_eq!(offer.sdp.matches(" rtx/90000").count(), 4, "{}", offer.sdp);
    assert!(!offer.sdp.contains("packetization-mode=0"), "{}", offer.sdp);
    // The server's one host candidate, on the shared port.
    assert!(
        offer.sdp.contains("127.0.0.1 7882 typ host"),
        "{}",
        offer.sdp
    );
    // Forwarded packets carry no header extension, so none is negotiated.
    assert!(!offer.sdp.contains("a=extmap:"), "{}", offer.sdp);
    assert!(!offer.sdp.contains("transport-cc"), "{}", offer.sdp);
}

/// What a publisher's connection negotiates is unchanged: TWCC feedback (browsers
/// estimate their upload bandwidth by it), and the header extensions of simulcast.
#[test]
fn a_publish_answer_keeps_twcc_and_the_simulcast_extensions() {
    let now = Instant::now();
    let net = PeerNet::loopback();
    let mut client = roundtable_peer::build_sansio(
        now,
        &net,
        Side::Client,
        Flow::Send,
        SocketAddr::from(([127, 0, 0, 1], 40000)),
        None,
    )
    .unwrap();
    for kind in [RtpCodecKind::Audio, RtpCodecKind::Video] {
        client.add_transceiver_from_kind(kind, None).unwrap();
    }
    let offer = client.create_offer(None).unwrap();
    let factory = PcFactory::new(net);
    let local = SocketAddr::from(([127, 0, 0, 1], 7882));
    let mut server = factory
        .build(now, PcRole::Publish, "abcdefgh", local)
        .unwrap();
    server.set_remote_description(now, offer).unwrap();
    let answer = server.create_answer(None).unwrap();
    for needed in [
        "transport-cc",
        "transport-wide-cc-extensions",
        "urn:ietf:params:rtp-hdrext:sdes:mid",
        "urn:ietf:params:rtp-hdrext:sdes:rtp-stream-id",
    ] {
        assert!(answer.sdp.contains(needed), "{needed}: {}", answer.sdp);
    }
}

/// A subscriber's client, ICE's controlled side there, connects first and sends its DTLS
/// ClientHello at once, as browsers do; webrtc-rs drops DTLS that comes before its own
/// side has connected. The server keeps the hello until then, so the handshake does not
/// wait for the client's retransmission (1 s in webrtc-rs).
#[test]
fn a_dtls_hello_that_comes_before_ice_connects_is_kept() {
    let mut net = Net::new();
    let producer = net.publish_opus();

    // A subscriber: the server offers, the client answers and is ICE's controlled side.
    let subscriber = net.join(Flow::Receive);
    let began = net.now;
    net.subscribe(subscriber, &producer);
    net.answer_offer(subscriber);
    net.run_until(sim::connected(subscriber), Duration::from_secs(5));
    let took = net.clients[subscriber]
        .connected_at
        .expect("DTLS connected")
        - began;
    // Simulated time: without the kept hello, the client's 1 s retransmission decides it.
    assert!(
        took < Duration::from_millis(500),
        "connected after {took:?}"
    );
}

/// A subscriber's ICE checks can reach the server before its answer does, and a browser
/// whose candidates are mDNS names can be reached only at the address they come from.
/// webrtc-rs drops a check that comes before it knows the client's credentials; the
/// server keeps it, and answers it the moment the answer is applied, without waiting for
/// the client's next check.
#[test]
fn an_ice_check_that_comes_before_the_answer_is_answered_with_it() {
    use rtc::sansio::Protocol;

    let mut net = Net::new();
    let producer = net.publish_opus();
    let subscriber = net.join(Flow::Receive);
    net.subscribe(subscriber, &producer);

    // The client makes its answer, with no candidate in it (a browser trickles its
    // candidates, and may name them by mDNS), and checks before the answer is sent.
    let answer = net.make_answer(subscriber);
    let no_candidates: String = answer
        .split_inclusive("\r\n")
        .filter(|l| !l.starts_with("a=candidate") && !l.starts_with("a=end-of-candidates"))
        .collect();
    let client = &mut net.clients[subscriber];
    let mut checks = 0;
    let mut tries = 0;
    while checks == 0 && tries < 100 {
        tries += 1;
        let at = client.pc.poll_timeout().unwrap_or(net.now).max(net.now);
        net.now = at;
        client.pc.handle_timeout(at).unwrap();
        while let Some(out) = client.pc.poll_write() {
            // RFC 7983: a first byte of 0 to 3 is STUN.
            if out.message.first().is_some_and(|b| *b <= 3) {
                checks += 1;
            }
            net.engine.handle_datagram(at, client.addr, &out.message);
        }
    }
    assert!(checks > 0, "the client checked");
    net.turn();
    let mut before = Vec::new();
    while let Some(t) = net.wire.pop_front() {
        before.push(t.bytes);
    }
    assert!(before.is_empty(), "nothing answered before the answer");

    net.send_answer(subscriber, no_candidates);
    // No time passes: a binding success response (type 0x0101) goes out at once.
    let mut responses = 0;
    while let Some(t) = net.wire.pop_front() {
        assert_eq!(t.to, net.clients[subscriber].addr);
        if t.bytes.starts_with(&[0x01, 0x01]) {
            responses += 1;
        }
    }
    assert!(responses > 0, "the kept check was answered");
}

/// A section whose track was unsubscribed carries the next track of its kind: the SDP does
/// not grow with every leave and rejoin of a long session. Media flows on the reused
/// section, in its new SSRC.
#[test]
fn a_section_given_up_carries_the_next_track_of_its_kind() {
    let sections = |sdp: &str| sdp.matches("\r\nm=").count();
    let mut net = Net::new();
    let first = net.publish_opus();
    let subscriber = net.join(Flow::Receive);
    net.subscribe(subscriber, &first);
    net.answer_offer(subscriber);
    net.run_until(sim::connected(subscriber), Duration::from_secs(5));
    let _ = net.received(subscriber);
    net.send_rtp(0);
    net.run_until(|_| false, Duration::from_millis(100));
    let (rtp, _) = net.received(subscriber);
    let [old] = rtp.as_slice() else {
        panic!("one packet of the first publisher, got {}", rtp.len());
    };
    let old_ssrc = old.header.ssrc;

    // The first publisher goes; its section is offered without a track.
    net.subscriptions(subscriber, vec![], vec![first.key]);
    net.answer_offer(subscriber);

    // The next publisher of audio takes that section.
    let second = net.publish_opus();
    let publisher = net.clients.len() - 1;
    net.subscribe(subscriber, &second);
    let sdp = net.make_answer(subscriber);
    assert_eq!(sections(&sdp), 1, "{sdp}");
    net.send_answer(subscriber, sdp);
    net.run_until(|_| false, Duration::from_millis(100));
    let _ = net.received(subscriber);
    for _ in 0..3 {
        net.send_rtp(publisher);
    }
    net.run_until(|_| false, Duration::from_millis(100));
    let (rtp, _) = net.received(subscriber);
    assert_eq!(rtp.len(), 3, "the second publisher's packets arrive");
    let ssrc = rtp[0].header.ssrc;
    assert!(rtp.iter().all(|p| p.header.ssrc == ssrc));
    assert_ne!(ssrc, old_ssrc, "the reused section has a new SSRC");
}

/// When someone publishes, every subscriber needs an offer, and each costs the loop about a
/// millisecond in a big room. The engine sends them one at a time, oldest first, so the
/// loop can read the socket between two.
#[test]
fn offers_go_out_one_at_a_time_oldest_first() {
    let mut net = Net::new();
    let producer = net.publish_opus();
    let subscribers: Vec<usize> = (0..3).map(|_| net.join(Flow::Receive)).collect();
    let now = net.now;
    let subscribe = |session, add: Vec<_>, remove: Vec<_>| super::Cmd::Subscriptions {
        session,
        add,
        remove,
    };
    // Sessions 4, 2, 3 (clients 3, 1, 2) are subscribed, in that order.
    for session in [4, 2, 3] {
        net.engine
            .handle_cmd(now, subscribe(session, vec![producer.key], vec![]));
    }
    assert!(net.engine.negotiations_pending());
    let mut order = Vec::new();
    while net.engine.negotiate_one(now) {
        net.deliver();
        let offered: Vec<usize> = subscribers
            .iter()
            .copied()
            .filter(|&i| net.has_offer(i))
            .collect();
        assert_eq!(offered.len(), 1, "one offer per call, got {offered:?}");
        order.push(offered[0]);
    }
    assert_eq!(order, [3, 1, 2]);
    assert!(!net.engine.negotiations_pending());
    // A change for a session whose offer is still unanswered waits for its answer.
    net.engine
        .handle_cmd(now, subscribe(2, vec![], vec![producer.key]));
    assert!(!net.engine.negotiate_one(now));
}

/// A publisher's sender report reaches each subscriber in the subscriber's own terms: the
/// publisher's clock mapping (what a receiver plays audio and video in sync by), in the
/// subscriber's SSRC, with the counts of what was sent to that subscriber. The server's
/// `subscribe` connections make no reports of their own. A subscriber that comes later gets
/// the last mapping as soon as it receives the track.
#[test]
fn a_publishers_sender_report_reaches_each_subscriber_in_its_own_terms() {
    let mut net = Net::new();
    // A publisher without a report stage of its own: it sends only the test's report.
    let producer = net.publish_opus_from(Flow::Relay);
    let publisher = 0;
    let first = net.join(Flow::Ingest);
    net.subscribe(first, &producer);
    net.answer_offer(first);
    net.run_until(sim::connected(first), Duration::from_secs(5));
    for _ in 0..3 {
        net.send_rtp(publisher);
    }
    let report = SenderReport {
        ssrc: 1111,
        ntp_time: 0xDEAD_BEEF_0000_0001,
        rtp_time: 123_456,
        packet_count: 1_000,
        octet_count: 80_000,
        ..Default::default()
    };
    net.send_report(publisher, report.clone());
    // Two seconds of simulated time: a report stage on the server's side (1 s interval)
    // would have reported twice by then.
    net.run_until(|_| false, Duration::from_secs(2));
    let (rtp, reports) = net.received(first);
    assert_eq!(rtp.len(), 3, "the packets sent after the subscription");
    let ssrc = rtp[0].header.ssrc;
    assert_ne!(ssrc, 1111, "forwarded in the subscriber's SSRC");
    // The publisher's clock mapping, with the subscriber's SSRC and counts.
    let want = |ssrc, packets, octets| SenderReport {
        ssrc,
        packet_count: packets,
        octet_count: octets,
        ..report.clone()
    };
    assert_eq!(reports, [want(ssrc, 3, 240)]);

    let second = net.join(Flow::Ingest);
    net.subscribe(second, &producer);
    net.answer_offer(second);
    net.run_until(sim::connected(second), Duration::from_secs(5));
    net.run_until(|_| false, Duration::from_millis(100));
    let (rtp, reports) = net.received(second);
    assert!(rtp.is_empty(), "nothing was published since");
    assert_eq!(reports.len(), 1, "{reports:?}");
    let second_ssrc = reports[0].ssrc;
    assert!(
        second_ssrc != 1111 && second_ssrc != ssrc,
        "each subscriber's own SSRC"
    );
    assert_eq!(reports, [want(second_ssrc, 0, 0)]);
}

/// A newcomer gets every stream's last sender report as soon as it receives the streams,
/// more of them at once than the engine writes into a connection between two pumps
/// (`MAX_UNFLUSHED`): none is lost to the pumping in between.
#[test]
fn a_newcomer_gets_the_last_report_of_every_stream_at_once() {
    const PUBLISHERS: usize = 12;
    let mut net = Net::new();
    let mut producers = Vec::new();
    for i in 0..PUBLISHERS {
        producers.push(net.publish_opus_from(Flow::Relay));
        let report = SenderReport {
            ssrc: 1111,
            ntp_time: 0x1000_0000_0000_0000 + i as u64,
            rtp_time: 1_000 + i as u32,
            ..Default::default()
        };
        net.send_report(i, report);
    }
    net.run_until(|_| false, Duration::from_millis(100));

    let newcomer = net.join(Flow::Ingest);
    let keys = producers.iter().map(|p| p.key).collect();
    net.subscriptions(newcomer, keys, vec![]);
    net.answer_offer(newcomer);
    net.run_until(sim::connected(newcomer), Duration::from_secs(5));
    net.run_until(|_| false, Duration::from_millis(100));
    let (_, reports) = net.received(newcomer);
    let mut rtp_times: Vec<u32> = reports.iter().map(|r| r.rtp_time).collect();
    rtp_times.sort_unstable();
    let want: Vec<u32> = (0..PUBLISHERS as u32).map(|i| 1_000 + i).collect();
    assert_eq!(rtp_times, want, "one report per publisher: {reports:?}");
    let ssrcs: std::collections::HashSet<u32> = reports.iter().map(|r| r.ssrc).collect();
    assert_eq!(ssrcs.len(), PUBLISHERS, "each in its own stream's SSRC");
}

/// RTP datagrams a tap saw, as (payload type, sequence number): RTCP and everything
/// that is not RTP are left out. SRTP leaves the header in the clear.
fn rtp_header(datagram: &[u8]) -> Option<(u8, u16)> {
    let rtp = datagram.len() >= 12 && datagram[0] >> 6 == 2;
    let rtcp = (192..=223).contains(&datagram.get(1).copied().unwrap_or(0));
    (rtp && !rtcp).then(|| {
        (
            datagram[1] & 0x7f,
            u16::from_be_bytes([datagram[2], datagram[3]]),
        )
    })
}

/// A video packet lost between a publisher and the server is asked for, and once its
/// retransmission has come, not again. webrtc-rs's NACK generator saw a retransmission as
/// a packet of another stream, and asked for the packet every 100 ms until its retry
/// limit: the publisher sent it 10 times, and the server forwarded it 10 times.
#[test]
fn a_lost_packet_is_asked_for_until_its_retransmission_comes() {
    use std::cell::RefCell;
    use std::rc::Rc;

    let mut net = Net::new();
    let producer = net.publish(Flow::Send, sim::Media::Vp8);
    let publisher = 0;
    let seen = Rc::new(RefCell::new(Vec::new()));
    let log = seen.clone();
    let mut dropped = false;
    net.tap = Some(Box::new(move |i, datagram| {
        let Some((payload_type, seq)) = rtp_header(datagram).filter(|_| i == publisher) else {
            return true;
        };
        log.borrow_mut().push((payload_type, seq));
        // The first time packet 3 is sent, it is lost.
        let lose = payload_type == 96 && seq == 3 && !dropped;
        dropped |= lose;
        !lose
    }));
    for _ in 1..=10 {
        net.send_rtp(publisher);
        net.run_until(|_| false, Duration::from_millis(30));
    }
    net.run_until(|_| false, Duration::from_secs(2));

    let seen = seen.borrow();
    let media: Vec<u16> = seen.iter().filter(|s| s.0 == 96).map(|s| s.1).collect();
    assert_eq!(
        media,
        (1..=10).collect::<Vec<u16>>(),
        "each packet sent once"
    );
    let retransmissions = seen.iter().filter(|s| s.0 == 97).count();
    assert_eq!(retransmissions, 1, "packet 3 asked for once: {seen:?}");
    // The retransmission reached the application: all 11 packets, 0 to 10, came.
    assert_eq!(net.engine.received(producer.key), Some(11));
}

/// A VP8 publisher (client 0) and a subscriber to it (client 1, its connection with
/// `flow`), connected.
fn video_and_subscriber(flow: Flow) -> (Net, sim::Track) {
    let mut net = Net::new();
    let producer = net.publish(Flow::Send, sim::Media::Vp8);
    let subscriber = net.join(flow);
    net.subscribe(subscriber, &producer);
    net.answer_offer(subscriber);
    net.run_until(sim::connected(subscriber), Duration::from_secs(5));
    net.run_until(|_| false, Duration::from_millis(100));
    (net, producer)
}

/// A packet that reaches the server twice (the second time as a retransmission: asked for
/// after a delay, or sent again by a publisher probing its bandwidth with recent media) is
/// forwarded once. A subscriber's SRTP would drop the second copy anyway, after it had
/// cost the server and the subscriber's link.
#[test]
fn a_packet_that_comes_twice_is_forwarded_once() {
    let (mut net, producer) = video_and_subscriber(Flow::Receive);
    let (publisher, subscriber) = (0, 1);
    let _ = net.received(subscriber);

    let before = net.engine.forwarded();
    for _ in 1..=5 {
        net.send_rtp(publisher);
    }
    net.send_rtx_copy(publisher, 3);
    net.send_rtx_copy(publisher, 4);
    net.run_until(|_| false, Duration::from_millis(100));
    let (rtp, _) = net.received(subscriber);
    let seqs: Vec<u16> = rtp.iter().map(|p| p.header.sequence_number).collect();
    assert_eq!(seqs.len(), 5, "{seqs:?}");
    assert_eq!(
        net.engine.forwarded() - before,
        5,
        "packets 3 and 4 forwarded once"
    );
    // The server did get the copies: they are repairs it had no need of.
    assert_eq!(net.engine.received(producer.key), Some(1 + 5 + 2));
}

/// A subscriber that asks for the same packet again and again (a NACK generator that does
/// not see retransmissions arrive, or a hostile client) gets it at most three more times.
#[test]
fn a_packet_asked_for_again_and_again_is_sent_again_three_times() {
    // A subscriber whose connection has no NACK generator: the test's NACKs are its only ones.
    let (mut net, _) = video_and_subscriber(Flow::Relay);
    let (publisher, subscriber) = (0, 1);
    for _ in 1..=5 {
        net.send_rtp(publisher);
    }
    net.run_until(|_| false, Duration::from_millis(20));
    let (rtp, _) = net.received(subscriber);
    assert_eq!(rtp.len(), 5);
    let (ssrc, seq) = (rtp[2].header.ssrc, rtp[2].header.sequence_number);

    for _ in 0..6 {
        net.send_nack(subscriber, ssrc, &[seq, seq]);
        net.run_until(|_| false, Duration::from_millis(20));
    }
    let (rtp, _) = net.received(subscriber);
    let got: Vec<(u32, u16)> = rtp
        .iter()
        .map(|p| (p.header.ssrc, p.header.sequence_number))
        .collect();
    assert_eq!(got, [(ssrc, seq); 3]);
}

/// An answer on `subscribe` that does not parse is refused with `bad_sdp`, and the server
/// offers again; the client's next answer connects.
#[test]
fn an_unparsable_subscribe_answer_is_refused_and_offered_again() {
    let mut net = Net::new();
    let producer = net.publish_opus();
    let subscriber = net.join(Flow::Receive);
    net.subscribe(subscriber, &producer);
    let _first = net.expect(subscriber, sim::offer);
    net.send_answer(subscriber, "this is not sdp".into());
    let code = net.expect(subscriber, |m| match m {
        ServerMsg::Error { code, .. } => Some(code),
        _ => None,
    });
    assert_eq!(code, ErrorCode::BadSdp);
    net.answer_offer(subscriber);
    net.run_until(sim::connected(subscriber), Duration::from_secs(5));
    assert!(net.clients[subscriber].connected_at.is_some());
}

/// A publisher and two subscribers of its track, connected, each having received a first
/// packet.
fn two_subscribers(what: sim::Media) -> (Net, sim::Track) {
    let mut net = Net::new();
    let track = net.publish(Flow::Send, what);
    for _ in 0..2 {
        let subscriber = net.join(Flow::Receive);
        net.subscribe(subscriber, &track);
        net.answer_offer(subscriber);
        net.run_until(sim::connected(subscriber), Duration::from_secs(5));
    }
    net.run_until(|_| false, Duration::from_millis(100));
    for i in [1, 2] {
        let _ = net.received(i);
    }
    (net, track)
}

/// The publisher (client 0) sends `n` packets, at least 20 ms apart (the simulated clock
/// moves from timer to timer); returns when it sent each.
fn send_for_a_while(net: &mut Net, n: usize) -> Vec<Instant> {
    let mut sent = Vec::new();
    for _ in 0..n {
        sent.push(net.now);
        net.send_rtp(0);
        net.run_until(|_| false, Duration::from_millis(20));
    }
    sent
}

/// A closed gate lets no packet of its track reach any subscriber. Reopened, each
/// subscriber's sequence numbers go on from the last one it got, with no gap for the packets
/// it never saw, and its timestamps from the last one plus the time that passed.
#[test]
fn a_gated_track_reaches_no_one_and_resumes_without_a_gap() {
    let (mut net, track) = two_subscribers(sim::Media::Opus);
    let last_before = send_for_a_while(&mut net, 5)[4];
    let before: Vec<Vec<rtc::rtp::Packet>> = [1, 2].map(|i| net.received(i).0).into();
    for rtp in &before {
        assert_eq!(rtp.len(), 5, "the packets before the gate closed");
    }

    net.gate(&track, false);
    let forwarded = net.engine.forwarded();
    send_for_a_while(&mut net, 25); // half a second
    assert_eq!(
        net.engine.forwarded(),
        forwarded,
        "nothing forwarded while closed"
    );
    for i in [1, 2] {
        assert!(net.received(i).0.is_empty(), "subscriber {i} got nothing");
    }

    net.gate(&track, true);
    let first_after = send_for_a_while(&mut net, 5)[0];
    // Opus's clock: 48,000 ticks a second.
    let closed = (first_after - last_before).as_secs_f64() * 48_000.0;
    for (i, before) in [1, 2].into_iter().zip(before) {
        let after = net.received(i).0;
        assert_eq!(
            after.len(),
            5,
            "subscriber {i} gets the packets after it reopened"
        );
        let seqs: Vec<u16> = before
            .iter()
            .chain(&after)
            .map(|p| p.header.sequence_number)
            .collect();
        let first = seqs[0];
        let want: Vec<u16> = (0..10).map(|k| first.wrapping_add(k)).collect();
        assert_eq!(
            seqs, want,
            "subscriber {i}: contiguous across the closed interval"
        );
        // The clock moved by the time that passed between the two packets, not by the
        // publisher's count of what it held back (its timestamps here are 960 per packet,
        // whatever the time).
        let (last, next) = (before[4].header.timestamp, after[0].header.timestamp);
        let ticks = f64::from(next.wrapping_sub(last));
        assert!(
            (ticks - closed).abs() <= 1.0,
            "subscriber {i}: {ticks} ticks across {closed} ticks of time"
        );
    }
}

/// While a video track is gated closed its publisher is asked for no keyframe, even when a
/// subscriber asks for a keyframe; when it reopens, the publisher is asked for one.
#[test]
fn a_gated_video_track_asks_for_a_keyframe_only_when_it_reopens() {
    let (mut net, track) = two_subscribers(sim::Media::Vp8);
    send_for_a_while(&mut net, 3);
    let ssrc = net.received(1).0[0].header.ssrc;
    let _ = net.keyframe_requests(0);

    net.gate(&track, false);
    net.run_until(|_| false, Duration::from_secs(1));
    net.send_pli(1, ssrc);
    net.run_until(|_| false, Duration::from_secs(1));
    assert_eq!(net.keyframe_requests(0), 0, "nothing asked while closed");

    net.gate(&track, true);
    net.run_until(|_| false, Duration::from_millis(50));
    assert_eq!(
        net.keyframe_requests(0),
        1,
        "one keyframe asked on reopening"
    );
    // And a subscriber's request goes through again, past the throttle.
    net.run_until(|_| false, Duration::from_millis(400));
    net.send_pli(1, ssrc);
    net.run_until(|_| false, Duration::from_millis(50));
    assert_eq!(
        net.keyframe_requests(0),
        1,
        "the subscriber's request is relayed"
    );
}

/// The driver runs the timers every turn but reads the next deadline only before it sleeps,
/// and under constant load it never sleeps. Timers must go on firing all the same: here the
/// server's reports to a publisher, every second.
#[test]
fn timers_fire_in_a_loop_that_never_sleeps() {
    let (mut net, _) = video_and_subscriber(Flow::Receive);
    let publisher = net.clients[0].addr;
    let mut to_publisher = 0;
    for tick in 0..300 {
        // 3 s of turns 10 ms apart, none of them quiet enough to sleep.
        net.now += Duration::from_millis(10);
        net.engine.handle_timeout(net.now);
        while let Some(output) = net.engine.poll_output() {
            if let super::Output::Transmit(t) = output
                && t.to == publisher
                && tick >= 100
            {
                to_publisher += 1;
            }
        }
    }
    assert!(
        to_publisher >= 2,
        "{to_publisher} datagrams to the publisher in the last 2 s"
    );
}

/// A subscriber's section carries the track's first codec only: packets in another payload
/// type (a publisher that switched codec) are not forwarded as if they were of the first.
#[test]
fn a_packet_in_another_codec_is_not_forwarded() {
    let (mut net, producer) = video_and_subscriber(Flow::Receive);
    let (publisher, subscriber) = (0, 1);
    let _ = net.received(subscriber);
    for _ in 0..3 {
        net.send_rtp(publisher);
    }
    // VP9 (payload type 98), which the publish connection negotiated too.
    for _ in 0..2 {
        net.send_rtp_as(publisher, 98);
    }
    net.run_until(|_| false, Duration::from_millis(100));
    let (rtp, _) = net.received(subscriber);
    assert_eq!(rtp.len(), 3, "only the VP8 packets");
    assert_eq!(net.engine.received(producer.key), Some(1 + 5), "all came");
}
