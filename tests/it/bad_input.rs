//! Every malformed, oversized, unauthorised or out-of-order input gets a stable error code,
//! and neither the connection (where it can continue) nor anyone else's is harmed.

use signaling::wire::{self, ClientMsg, ErrorCode, PcRole, ServerMsg};
use tokio_tungstenite::tungstenite::Message;
use tokio_tungstenite::tungstenite::protocol::frame::coding::CloseCode;

use crate::common::TestServer;
use roundtable_loadgen::client::{Ws, connect};

pub(crate) fn code_of(msg: &ServerMsg) -> Option<ErrorCode> {
    match msg {
        ServerMsg::Error { code, .. } => Some(*code),
        _ => None,
    }
}

/// The connection still answers: a ping gets its pong.
async fn still_alive(ws: &mut Ws, id: u64) -> anyhow::Result<()> {
    ws.send(&ClientMsg::Ping { id: Some(id) }).await?;
    let pong = ws
        .recv_until(|m| matches!(m, ServerMsg::Pong { .. }))
        .await?;
    assert!(
        matches!(pong, ServerMsg::Pong { id: Some(x), .. } if x == id),
        "{pong:?}"
    );
    Ok(())
}

pub(crate) async fn join(ws: &mut Ws, room: &str, name: &str) -> anyhow::Result<ServerMsg> {
    ws.send(&ClientMsg::Join {
        v: wire::PROTOCOL_VERSION,
        room: room.into(),
        name: name.into(),
        invite: None,
        consent: false,
    })
    .await?;
    ws.recv_until(|m| !matches!(m, ServerMsg::Candidate { .. }))
        .await
}

#[tokio::test]
async fn malformed_and_unknown_messages_get_codes_and_the_connection_lives() -> anyhow::Result<()> {
    let server = TestServer::sqlite().await?;
    let mut ws = connect(server.addr).await?;
    let cases: &[(&str, ErrorCode)] = &[
        ("{not json", ErrorCode::BadJson),
        ("42", ErrorCode::BadJson),
        (r#"{"no_type":1}"#, ErrorCode::BadJson),
        (r#"{"type":"teleport"}"#, ErrorCode::UnknownType),
        (r#"{"type":"chat","text":5}"#, ErrorCode::BadJson),
        (
            r#"{"type":"join","v":1,"room":"x","name":"a","extra":true}"#,
            ErrorCode::BadJson,
        ),
    ];
    for (i, (text, code)) in cases.iter().enumerate() {
        ws.send_text(*text).await?;
        assert_eq!(code_of(&ws.recv().await?), Some(*code), "for {text}");
        still_alive(&mut ws, i as u64).await?;
    }
    ws.socket.send(Message::binary(vec![1u8, 2, 3])).await?;
    assert_eq!(code_of(&ws.recv().await?), Some(ErrorCode::BinaryFrame));
    still_alive(&mut ws, 99).await
}

/// Before `join`, `ping` is served and every other message but `join` gets `not_joined`,
/// `leave` included.
#[tokio::test]
async fn messages_before_join_are_refused() -> anyhow::Result<()> {
    let server = TestServer::sqlite().await?;
    let mut ws = connect(server.addr).await?;
    still_alive(&mut ws, 0).await?;
    let before_join = [
        ClientMsg::Chat { text: "hi".into() },
        ClientMsg::MediaState {
            audio: true,
            video: true,
        },
        ClientMsg::Offer {
            pc: PcRole::Publish,
            sdp: "v=0".into(),
        },
        ClientMsg::Answer {
            pc: PcRole::Subscribe,
            sdp: "v=0".into(),
        },
        ClientMsg::Leave {},
    ];
    for msg in &before_join {
        ws.send(msg).await?;
        assert_eq!(
            code_of(&ws.recv().await?),
            Some(ErrorCode::NotJoined),
            "for {msg:?}"
        );
    }
    still_alive(&mut ws, 1).await
}

#[tokio::test]
async fn oversized_frames_are_refused_without_harming_others() -> anyhow::Result<()> {
    let server = TestServer::sqlite().await?;
    let room = server.room("Limits", 5).await?;
    let mut bystander = connect(server.addr).await?;
    assert!(matches!(
        join(&mut bystander, &room, "Bystander").await?,
        ServerMsg::Joined { .. }
    ));

    // Over the protocol limit: an error, and the connection carries on.
    let mut ws = connect(server.addr).await?;
    let big = format!(
        r#"{{"type":"chat","text":"{}"}}"#,
        "a".repeat(wire::MAX_MESSAGE_BYTES)
    );
    ws.send_text(big).await?;
    assert_eq!(code_of(&ws.recv().await?), Some(ErrorCode::MessageTooLarge));
    still_alive(&mut ws, 1).await?;

    // Over the WebSocket limit: the server closes that connection with 1009.
    let mut huge = connect(server.addr).await?;
    huge.send_text("x".repeat(roundtable::ws::MAX_FRAME_BYTES + 1))
        .await?;
    // The server ends that connection: a close frame with 1009, or, when the unread rest of
    // the frame is still in the server's socket buffer, a TCP reset that overtakes it.
    let ended = loop {
        let next = tokio::time::timeout(roundtable_loadgen::client::WAIT, huge.socket.next()).await;
        match next.expect("the server must end an oversized connection") {
            Some(Ok(Message::Close(frame))) => break frame.map(|f| (f.code, f.reason.to_string())),
            Some(Ok(_)) => continue,
            Some(Err(tokio_tungstenite::tungstenite::Error::Io(e)))
                if e.kind() == std::io::ErrorKind::ConnectionReset =>
            {
                break Some((CloseCode::Size, "message_too_large".to_string()));
            }
            other => panic!("the oversized connection ended with {other:?}"),
        }
    };
    assert_eq!(
        ended,
        Some((CloseCode::Size, "message_too_large".to_string()))
    );

    // Nobody else noticed; the server still accepts connections.
    still_alive(&mut bystander, 2).await?;
    still_alive(&mut ws, 3).await?;
    let mut fresh = connect(server.addr).await?;
    still_alive(&mut fresh, 4).await
}

#[tokio::test]
async fn join_refusals_have_codes_and_allow_a_retry() -> anyhow::Result<()> {
    let server = TestServer::sqlite().await?;
    let room = server.room("Small", 1).await?;
    let mut ws = connect(server.addr).await?;
    assert_eq!(
        code_of(&join(&mut ws, "no-such-room", "Ann").await?),
        Some(ErrorCode::RoomNotFound)
    );
    ws.send(&ClientMsg::Join {
        v: 2,
        room: room.clone(),
        name: "Ann".into(),
        invite: None,
        consent: false,
    })
    .await?;
    assert_eq!(
        code_of(&ws.recv().await?),
        Some(ErrorCode::UnsupportedVersion)
    );
    assert_eq!(
        code_of(&join(&mut ws, &room, "").await?),
        Some(ErrorCode::BadName)
    );
    assert!(matches!(
        join(&mut ws, &room, "Ann").await?,
        ServerMsg::Joined { .. }
    ));
    assert_eq!(
        code_of(&join(&mut ws, &room, "Ann").await?),
        Some(ErrorCode::AlreadyJoined)
    );

    let mut second = connect(server.addr).await?;
    assert_eq!(
        code_of(&join(&mut second, &room, "Bo").await?),
        Some(ErrorCode::RoomFull)
    );
    // When Ann leaves, Bo's retry on the same connection succeeds.
    ws.send(&ClientMsg::Leave {}).await?;
    ws.recv_until(|m| matches!(m, ServerMsg::Left {})).await?;
    assert!(matches!(
        join(&mut second, &room, "Bo").await?,
        ServerMsg::Joined { .. }
    ));
    Ok(())
}

/// `join` is checked in the documented order: already joined, then the version, then the
/// room, then the name.
#[tokio::test]
async fn join_checks_already_joined_then_version_then_room() -> anyhow::Result<()> {
    let server = TestServer::sqlite().await?;
    let room = server.room("In order", 5).await?;
    let join_as = |v: u32, room: &str, name: &str| ClientMsg::Join {
        v,
        room: room.into(),
        name: name.into(),
        invite: None,
        consent: false,
    };
    let mut ws = connect(server.addr).await?;
    let refusals = [
        (
            join_as(2, "no-such-room", "Ann"),
            ErrorCode::UnsupportedVersion,
        ),
        (join_as(2, &room, ""), ErrorCode::UnsupportedVersion),
        (
            join_as(wire::PROTOCOL_VERSION, "no-such-room", ""),
            ErrorCode::RoomNotFound,
        ),
    ];
    for (msg, code) in &refusals {
        ws.send(msg).await?;
        assert_eq!(code_of(&ws.recv().await?), Some(*code), "for {msg:?}");
    }
    assert!(matches!(
        join(&mut ws, &room, "Ann").await?,
        ServerMsg::Joined { .. }
    ));
    for msg in [
        join_as(2, &room, "Ann"),
        join_as(2, "no-such-room", ""),
        join_as(wire::PROTOCOL_VERSION, "no-such-room", "Ann"),
    ] {
        ws.send(&msg).await?;
        let reply = ws
            .recv_until(|m| matches!(m, ServerMsg::Error { .. }))
            .await?;
        assert_eq!(
            code_of(&reply),
            Some(ErrorCode::AlreadyJoined),
            "for {msg:?}"
        );
    }
    still_alive(&mut ws, 1).await
}

/// After `leave`, `left` is the only message: what the client sends next (an answer, a ping,
/// even another join or garbage) is ignored, not refused, and the close follows with reason
/// `left`.
#[tokio::test]
async fn after_leave_only_left_comes_then_the_close() -> anyhow::Result<()> {
    let server = TestServer::sqlite().await?;
    let room = server.room("Exit", 5).await?;
    let mut ws = connect(server.addr).await?;
    assert!(matches!(
        join(&mut ws, &room, "Ann").await?,
        ServerMsg::Joined { .. }
    ));
    let after_leave = [
        ClientMsg::Answer {
            pc: PcRole::Subscribe,
            sdp: "v=0".into(),
        },
        ClientMsg::Ping { id: Some(1) },
        ClientMsg::Chat { text: "bye".into() },
        ClientMsg::Join {
            v: wire::PROTOCOL_VERSION,
            room: room.clone(),
            name: "Ann".into(),
            invite: None,
            consent: false,
        },
    ];
    // In one write, so that the server has read everything before it closes (unread bytes
    // would make its kernel answer with a reset).
    ws.socket
        .feed(Message::text(wire::encode_client(&ClientMsg::Leave {})))
        .await?;
    for msg in &after_leave {
        ws.socket
            .feed(Message::text(wire::encode_client(msg)))
            .await?;
    }
    ws.socket.feed(Message::text("{not json")).await?;
    ws.socket.feed(Message::binary(vec![1u8, 2, 3])).await?;
    ws.socket.flush().await?;

    let mut received = Vec::new();
    let close = loop {
        let next = tokio::time::timeout(roundtable_loadgen::client::WAIT, ws.socket.next()).await;
        match next.expect("the server closes after `left`") {
            Some(Ok(Message::Text(text))) => received.push(wire::decode_server(text.as_str())?),
            Some(Ok(Message::Close(frame))) => break frame.map(|f| (f.code, f.reason.to_string())),
            Some(Ok(_)) => continue,
            other => anyhow::bail!("the connection ended with {other:?}"),
        }
    };
    assert_eq!(received, [ServerMsg::Left {}]);
    assert_eq!(close, Some((CloseCode::Normal, "left".to_string())));
    Ok(())
}

#[tokio::test]
async fn chat_limits_have_codes() -> anyhow::Result<()> {
    let server = TestServer::sqlite().await?;
    let room = server.room("Chatty", 5).await?;
    let mut ws = connect(server.addr).await?;
    join(&mut ws, &room, "Ann").await?;
    ws.send(&ClientMsg::Chat {
        text: "x".repeat(wire::MAX_CHAT_CHARS + 1),
    })
    .await?;
    assert_eq!(
        code_of(
            &ws.recv_until(|m| !matches!(m, ServerMsg::Candidate { .. }))
                .await?
        ),
        Some(ErrorCode::ChatTooLong)
    );
    ws.send(&ClientMsg::Chat { text: "  ".into() }).await?;
    assert_eq!(
        code_of(
            &ws.recv_until(|m| !matches!(m, ServerMsg::Candidate { .. }))
                .await?
        ),
        Some(ErrorCode::ChatEmpty)
    );
    for i in 0..5 {
        ws.send(&ClientMsg::Chat {
            text: format!("m{i}"),
        })
        .await?;
        let msg = ws
            .recv_until(|m| !matches!(m, ServerMsg::Candidate { .. }))
            .await?;
        assert!(matches!(msg, ServerMsg::Chat { .. }), "{msg:?}");
    }
    ws.send(&ClientMsg::Chat {
        text: "flood".into(),
    })
    .await?;
    assert_eq!(
        code_of(
            &ws.recv_until(|m| !matches!(m, ServerMsg::Candidate { .. }))
                .await?
        ),
        Some(ErrorCode::RateLimited)
    );
    still_alive(&mut ws, 1).await
}

#[tokio::test]
async fn garbage_sdp_and_out_of_order_negotiation_get_codes() -> anyhow::Result<()> {
    let server = TestServer::sqlite().await?;
    let room = server.room("Negotiation", 5).await?;
    let mut ws = connect(server.addr).await?;
    join(&mut ws, &room, "Ann").await?;
    let sdp = |s: &str| s.to_string();
    let bad_candidate = signaling::wire::IceCandidate {
        candidate: "candidate:garbage".into(),
        sdp_mid: Some("0".into()),
        sdp_m_line_index: Some(0),
        username_fragment: None,
    };
    let cases = [
        (
            ClientMsg::Offer {
                pc: PcRole::Publish,
                sdp: sdp("this is not sdp"),
            },
            ErrorCode::BadSdp,
        ),
        (
            ClientMsg::Offer {
                pc: PcRole::Subscribe,
                sdp: sdp("v=0"),
            },
            ErrorCode::WrongNegotiationState,
        ),
        (
            ClientMsg::Answer {
                pc: PcRole::Subscribe,
                sdp: sdp("v=0"),
            },
            ErrorCode::WrongNegotiationState,
        ),
        (
            ClientMsg::Answer {
                pc: PcRole::Publish,
                sdp: sdp("v=0"),
            },
            ErrorCode::WrongNegotiationState,
        ),
        (
            ClientMsg::Candidate {
                pc: PcRole::Publish,
                candidate: bad_candidate,
            },
            ErrorCode::BadCandidate,
        ),
    ];
    for (msg, code) in cases {
        ws.send(&msg).await?;
        let reply = ws
            .recv_until(|m| matches!(m, ServerMsg::Error { .. }))
            .await?;
        assert_eq!(code_of(&reply), Some(code), "for {msg:?}");
    }
    still_alive(&mut ws, 1).await
}

use futures_util::{SinkExt, StreamExt};

#[tokio::test]
async fn a_flood_of_messages_is_rate_limited_and_the_connection_recovers() -> anyhow::Result<()> {
    let server = TestServer::sqlite().await?;
    let mut ws = connect(server.addr).await?;
    for id in 0..400 {
        ws.send(&ClientMsg::Ping { id: Some(id) }).await?;
    }
    // Once the bucket refills, a ping is answered again; everything before it is in order.
    let (mut pongs, mut limited) = (0, 0);
    let mut every = tokio::time::interval(std::time::Duration::from_millis(100));
    let recovered = tokio::time::timeout(std::time::Duration::from_secs(30), async {
        loop {
            tokio::select! {
                _ = every.tick() => ws.send(&ClientMsg::Ping { id: Some(10_000) }).await?,
                msg = ws.recv() => match msg? {
                    ServerMsg::Pong { id: Some(10_000), .. } => return anyhow::Ok(()),
                    ServerMsg::Pong { .. } => pongs += 1,
                    ServerMsg::Error { code: ErrorCode::RateLimited, .. } => limited += 1,
                    other => anyhow::bail!("unexpected {other:?}"),
                },
            }
        }
    });
    recovered.await??;
    assert!(limited >= 1, "the flood was refused with rate_limited");
    assert!(
        (200..400).contains(&pongs),
        "the burst was served, the excess dropped: {pongs} pongs"
    );
    Ok(())
}

#[tokio::test]
async fn a_flood_of_binary_frames_is_rate_limited_too() -> anyhow::Result<()> {
    let server = TestServer::sqlite().await?;
    let mut ws = connect(server.addr).await?;
    for _ in 0..400 {
        ws.socket.send(Message::binary(vec![0u8; 8])).await?;
    }
    ws.send(&ClientMsg::Ping { id: Some(1) }).await?;
    // Everything up to the ping was answered or dropped; the ping itself may be dropped too,
    // so read until the server has had time to refill and a later ping gets through.
    let (mut refused, mut limited) = (0, 0);
    let mut every = tokio::time::interval(std::time::Duration::from_millis(100));
    let done = tokio::time::timeout(std::time::Duration::from_secs(30), async {
        loop {
            tokio::select! {
                _ = every.tick() => ws.send(&ClientMsg::Ping { id: Some(2) }).await?,
                msg = ws.recv() => match msg? {
                    ServerMsg::Pong { id: Some(2), .. } => return anyhow::Ok(()),
                    ServerMsg::Pong { .. } => {}
                    ServerMsg::Error { code: ErrorCode::BinaryFrame, .. } => refused += 1,
                    ServerMsg::Error { code: ErrorCode::RateLimited, .. } => limited += 1,
                    other => anyhow::bail!("unexpected {other:?}"),
                },
            }
        }
    });
    done.await??;
    assert!(limited >= 1, "the binary flood was rate limited");
    assert!(
        (200..400).contains(&refused),
        "only the burst got replies: {refused}"
    );
    Ok(())
}

/// The shared media port takes datagrams from anyone. Garbage, STUN for a connection that does
/// not exist, truncated and oversized datagrams are dropped and counted, and the media of the
/// room using that port meanwhile arrives complete.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn garbage_on_the_media_port_harms_no_one() -> anyhow::Result<()> {
    use roundtable_loadgen::client::Client;
    use signaling::wire::MediaKind;

    use crate::room_flow::{VIDEO_PACKETS, check_contiguous, wait_to_end};

    let server = TestServer::sqlite().await?;
    let media = server.state.media_addr();
    let room = server.room("Noise", 5).await?;
    let mut ann = Client::join(server.addr, &room, "Ann").await?;
    let bo = Client::join(server.addr, &room, "Bo").await?;
    ann.publish(VIDEO_PACKETS).await?;
    bo.media
        .wait_for("the first video", |log| {
            log.from(&ann.id, MediaKind::Video).len() >= 20
        })
        .await?;

    let noise = tokio::net::UdpSocket::bind("127.0.0.1:0").await?;
    let mut datagrams: Vec<Vec<u8>> = Vec::new();
    // Bytes of every kind the demultiplexer looks at: STUN (0-3), DTLS (20-63), RTP (128-191).
    for first in [0u8, 1, 3, 22, 63, 128, 144, 191, 200, 255] {
        for len in [1usize, 12, 20, 100, 1200] {
            let mut d: Vec<u8> = (0..len).map(|i| (i * 31 + len) as u8).collect();
            d[0] = first;
            datagrams.push(d);
        }
    }
    datagrams.push(Vec::new());
    datagrams.push(stun_binding_request("nosuchufrag:client"));
    datagrams.push(stun_binding_request("")); // USERNAME present, empty
    let mut truncated = stun_binding_request("nosuchufrag:client");
    truncated.truncate(24); // claims attributes it does not carry
    datagrams.push(truncated);
    let sent_small = datagrams.len() as u64;
    datagrams.push(vec![0x80; 4000]); // larger than any datagram the engine reads
    let before = server.state.media_stats().unrouted;
    for d in &datagrams {
        noise.send_to(d, media).await?;
    }

    wait_to_end(&bo, &ann.id, MediaKind::Video, VIDEO_PACKETS - 1).await?;
    check_contiguous(&bo.media, &ann.id, MediaKind::Video, VIDEO_PACKETS - 1)?;
    // Every datagram the engine read went nowhere. The empty and the oversized ones may never
    // reach it (the socket layer discards them), so count the rest.
    let counted = server.state.media_stats().unrouted - before;
    assert!(
        counted >= sent_small - 1,
        "{counted} of {sent_small} garbage datagrams counted as unrouted"
    );
    Ok(())
}

/// A STUN binding request with a USERNAME attribute and nothing else (no integrity: nobody
/// could answer it anyway).
fn stun_binding_request(username: &str) -> Vec<u8> {
    let name = username.as_bytes();
    let padded = name.len().div_ceil(4) * 4;
    let mut m = Vec::with_capacity(20 + 4 + padded);
    m.extend_from_slice(&0x0001u16.to_be_bytes()); // binding request
    m.extend_from_slice(&((4 + padded) as u16).to_be_bytes());
    m.extend_from_slice(&0x2112_A442u32.to_be_bytes()); // magic cookie
    m.extend_from_slice(&[7u8; 12]); // transaction id
    m.extend_from_slice(&0x0006u16.to_be_bytes()); // USERNAME
    m.extend_from_slice(&(name.len() as u16).to_be_bytes());
    m.extend_from_slice(name);
    m.resize(20 + 4 + padded, 0);
    m
}

/// A participant who publishes more than four tracks is told `too_many_tracks` for each
/// extra one, and nobody else hears of it or receives it.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_fifth_track_is_refused() -> anyhow::Result<()> {
    use roundtable_loadgen::client::{Client, PublishPlan};

    let server = TestServer::sqlite().await?;
    let room = server.room("Tracks", 5).await?;
    let mut ann = Client::join(server.addr, &room, "Ann").await?;
    let mut bo = Client::join(server.addr, &room, "Bo").await?;
    // Three sets of a microphone and a camera: six tracks.
    for set in 0..3 {
        let plan = PublishPlan {
            set,
            ..PublishPlan::counted(2000)
        };
        ann.publish_plan(plan).await?;
    }
    for extra in 1..=2 {
        ann.expect(&format!("too_many_tracks {extra}"), |m| {
            matches!(
                m,
                ServerMsg::Error {
                    code: ErrorCode::TooManyTracks,
                    ..
                }
            )
        })
        .await?;
    }
    let mut announced = 0;
    bo.expect("four tracks announced", |m| {
        announced += usize::from(matches!(m, ServerMsg::TrackPublished { .. }));
        announced == 4
    })
    .await?;
    // The engine has all six, and forwards four of them to Bo.
    let deadline = tokio::time::Instant::now() + roundtable_loadgen::client::WAIT;
    let mut every = tokio::time::interval(std::time::Duration::from_millis(50));
    loop {
        every.tick().await;
        let stats = server.state.media_stats();
        if stats.producers == 6 && stats.consumers == 4 {
            break;
        }
        anyhow::ensure!(
            tokio::time::Instant::now() < deadline,
            "media holds {stats:?}"
        );
    }
    // No fifth announcement follows: a ping's pong comes after anything already on its way.
    bo.send(ClientMsg::Ping { id: Some(9) });
    bo.expect("the pong", |m| {
        assert!(
            !matches!(m, ServerMsg::TrackPublished { .. }),
            "a fifth track was announced"
        );
        matches!(m, ServerMsg::Pong { id: Some(9), .. })
    })
    .await?;
    Ok(())
}
