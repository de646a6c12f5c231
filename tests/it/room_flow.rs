//! Three webrtc-rs clients in one room through the real server: media both ways with every
//! sequence number accounted for, chat history for a late joiner, and clean departures.

use signaling::wire::{ClientMsg, LeaveReason, MediaKind, ServerMsg};

use crate::common::TestServer;
use roundtable_loadgen::client::{Client, MediaLog, PublishPlan, VideoCodec};

/// Packets each publisher sends: 1 s of paced media per 100 (video) / 50 (audio).
pub(crate) const VIDEO_PACKETS: u16 = 300;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn three_clients_exchange_media_and_chat_on_sqlite() -> anyhow::Result<()> {
    let server = TestServer::sqlite().await?;
    room_flow(&server).await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn three_clients_exchange_media_and_chat_on_postgres() -> anyhow::Result<()> {
    let pg = crate::pg::fresh_database().await?;
    let server = TestServer::with_database(pg.url.clone()).await?;
    let result = room_flow(&server).await;
    drop(server);
    pg.drop().await?;
    result
}

pub async fn room_flow(server: &TestServer) -> anyhow::Result<()> {
    let room = server.room("Mentorship tactics", 10).await?;
    let mut clients = Vec::new();
    for name in ["Ann", "Bo", "Cy"] {
        clients.push(Client::join(server.addr, &room, name).await?);
    }
    for c in clients.iter_mut() {
        c.publish(VIDEO_PACKETS).await?;
    }
    let ids: Vec<String> = clients.iter().map(|c| c.id.clone()).collect();

    // Everyone receives both tracks of both others, and every packet sent after the
    // subscription went live arrives, in order, intact.
    for receiver in &clients {
        for publisher in ids.iter().filter(|p| **p != receiver.id) {
            for (kind, last) in LAST_PACKETS {
                wait_to_end(receiver, publisher, kind, last).await?;
                check_contiguous(&receiver.media, publisher, kind, last)?;
            }
        }
    }

    // Keyframes: the server asked each publisher for one when its subscribers' answers arrived,
    // and a subscriber's own picture-loss request reaches the publisher.
    for c in &clients {
        assert!(
            c.media.keyframe_requests(MediaKind::Video) >= 1,
            "{} got no PLI on subscribe",
            c.id
        );
        assert_eq!(
            c.media.keyframe_requests(MediaKind::Audio),
            0,
            "audio needs no keyframes"
        );
    }
    let before = clients[0].media.keyframe_requests(MediaKind::Video);
    let relayed = tokio::time::timeout(roundtable_loadgen::client::WAIT, async {
        // Repeated like a browser repeats them: the server throttles requests per publisher.
        let mut every = tokio::time::interval(std::time::Duration::from_millis(100));
        while clients[0].media.keyframe_requests(MediaKind::Video) == before {
            every.tick().await;
            clients[1].media.request_keyframes().await?;
        }
        anyhow::Ok(())
    });
    relayed.await??;

    // Chat reaches everyone, and a late joiner gets it as history.
    clients[0].send(ClientMsg::Chat {
        text: "Weekly calls kept partners engaged".into(),
    });
    for c in clients.iter_mut() {
        c.expect(
            "the chat message",
            |m| matches!(m, ServerMsg::Chat { message } if message.text.starts_with("Weekly")),
        )
        .await?;
    }
    let late = Client::join(server.addr, &room, "Dee").await?;
    let ServerMsg::Joined {
        chat,
        participants,
        tracks,
        ..
    } = &late.joined
    else {
        unreachable!()
    };
    assert_eq!(chat.len(), 1);
    assert_eq!(
        (chat[0].name.as_str(), chat[0].text.as_str()),
        ("Ann", "Weekly calls kept partners engaged")
    );
    assert_eq!(participants.len(), 4);
    assert_eq!(
        tracks.len(),
        6,
        "three publishers, audio and video each: {tracks:?}"
    );

    // A closed tab (no `leave`) frees the participant and its tracks for everyone else.
    let gone = clients.pop().unwrap();
    let gone_id = gone.id.clone();
    gone.drop_connection().await;
    for c in clients.iter_mut() {
        // The core announces the departed tracks, then the departure.
        let mut unpublished = 0;
        c.expect("participant_left", |m| match m {
            ServerMsg::TrackUnpublished { participant, .. } if *participant == gone_id => {
                unpublished += 1;
                false
            }
            ServerMsg::ParticipantLeft { id, reason } => {
                *id == gone_id && *reason == LeaveReason::Disconnected
            }
            _ => false,
        })
        .await?;
        assert_eq!(
            unpublished, 2,
            "audio and video of the departed were unpublished"
        );
    }
    // A clean leave is acknowledged.
    clients[1].send(ClientMsg::Leave {});
    clients[1]
        .expect("left", |m| matches!(m, ServerMsg::Left {}))
        .await?;
    clients[0]
        .expect("Bo left", |m| {
            matches!(
                m,
                ServerMsg::ParticipantLeft {
                    reason: LeaveReason::Left,
                    ..
                }
            )
        })
        .await?;
    let occupancy = server.state.registry_occupancy(&room);
    assert_eq!(occupancy, 2, "Ann and Dee remain");
    Ok(())
}

/// The last sequence number of each kind that [`VIDEO_PACKETS`] sends.
pub(crate) const LAST_PACKETS: [(MediaKind, u16); 2] = [
    (MediaKind::Video, VIDEO_PACKETS - 1),
    (MediaKind::Audio, VIDEO_PACKETS / 2 - 1),
];

/// Wait until `receiver` has `publisher`'s packet `last` of `kind`.
pub(crate) async fn wait_to_end(
    receiver: &Client,
    publisher: &str,
    kind: MediaKind,
    last: u16,
) -> anyhow::Result<()> {
    let what = format!(
        "{} receiving {publisher}'s {kind:?} to the end",
        receiver.id
    );
    receiver
        .media
        .wait_for(&what, |log| {
            log.from(publisher, kind)
                .last()
                .is_some_and(|r| r.seq == last)
        })
        .await
}

/// From the first packet received to `last`, every sequence number arrived exactly once, in
/// order, and its payload carries the counter the publisher wrote for it.
pub(crate) fn check_contiguous(
    log: &MediaLog,
    publisher: &str,
    kind: MediaKind,
    last: u16,
) -> anyhow::Result<()> {
    let got = log.from(publisher, kind);
    let first = got.first().map(|r| r.seq).unwrap_or(0);
    let expected: Vec<u16> = (first..=last).collect();
    let seqs: Vec<u16> = got.iter().map(|r| r.seq).collect();
    anyhow::ensure!(
        seqs == expected,
        "{publisher} {kind:?}: got {} packets {first}..={last} with gaps or repeats",
        seqs.len()
    );
    anyhow::ensure!(
        got.iter().all(|r| r.counter == u64::from(r.seq)),
        "{publisher} {kind:?}: payload does not match its sequence number"
    );
    anyhow::ensure!(
        expected.len() > usize::from(last) / 2,
        "{publisher} {kind:?}: only {} of {last} packets arrived",
        expected.len()
    );
    Ok(())
}

/// NACK works downstream: when a subscriber reports a packet lost, the server's sender
/// retransmits it from its history, and the subscriber receives that sequence number again.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_subscriber_nack_is_answered_with_a_retransmission() -> anyhow::Result<()> {
    let server = TestServer::sqlite().await?;
    let room = server.room("Loss", 5).await?;
    let mut ann = Client::join(server.addr, &room, "Ann").await?;
    let bo = Client::join(server.addr, &room, "Bo").await?;
    ann.publish(VIDEO_PACKETS).await?;
    bo.media
        .wait_for("40 video packets", |log| {
            log.from(&ann.id, MediaKind::Video).len() >= 40
        })
        .await?;
    let lost = bo.media.from(&ann.id, MediaKind::Video)[20].seq;
    let count = |log: &MediaLog| {
        log.from(&ann.id, MediaKind::Video)
            .iter()
            .filter(|r| r.seq == lost)
            .count()
    };
    assert_eq!(count(&bo.media), 1);
    bo.media.nack(&ann.id, &[lost]).await?;
    bo.media
        .wait_for("the retransmission", |log| count(log) == 2)
        .await?;
    let again = bo
        .media
        .from(&ann.id, MediaKind::Video)
        .into_iter()
        .filter(|r| r.seq == lost)
        .collect::<Vec<_>>();
    assert!(
        again.iter().all(|r| r.counter == u64::from(lost)),
        "the retransmitted payload is the original"
    );
    Ok(())
}

/// A publisher that sends H.264 (as Safari prefers) is forwarded as H.264, with the payload
/// type the subscriber negotiated for that profile, every packet intact.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn h264_is_forwarded_as_h264() -> anyhow::Result<()> {
    let server = TestServer::sqlite().await?;
    let room = server.room("Codecs", 5).await?;
    let mut ann = Client::join(server.addr, &room, "Ann").await?;
    let mut bo = Client::join(server.addr, &room, "Bo").await?;
    let mut plan = PublishPlan::counted(VIDEO_PACKETS);
    plan.video_codec = VideoCodec::H264;
    ann.publish_plan(plan).await?;
    // The engine offers each forwarded track in its publisher's codec only
    // (with its RTX): a video section with no VP8 or VP9 a subscriber could pick.
    let offer = bo
        .expect(
            "an offer with Ann's video",
            |m| matches!(m, ServerMsg::Offer { sdp, .. } if sdp.contains("m=video")),
        )
        .await?;
    let ServerMsg::Offer { sdp, .. } = offer else {
        unreachable!()
    };
    let video = &sdp[sdp.find("m=video").unwrap_or(0)..];
    let video = video[1..].find("\nm=").map_or(video, |end| &video[..=end]);
    let codecs: Vec<&str> = video
        .lines()
        .filter_map(|l| l.strip_prefix("a=rtpmap:"))
        .filter_map(|l| l.split_whitespace().nth(1))
        .collect();
    assert_eq!(codecs, ["H264/90000", "rtx/90000"], "{sdp}");
    let last = VIDEO_PACKETS - 1;
    bo.media
        .wait_for("Ann's H.264 to the end", |log| {
            log.from(&ann.id, MediaKind::Video)
                .last()
                .is_some_and(|r| r.seq == last)
        })
        .await?;
    check_contiguous(&bo.media, &ann.id, MediaKind::Video, last)?;
    let codec = bo.media.video_codec(&ann.id).await;
    assert!(
        codec
            .as_deref()
            .is_some_and(|m| m.eq_ignore_ascii_case("video/H264")),
        "received {codec:?}"
    );
    Ok(())
}

/// Rooms never share media: participant and track ids repeat from room to room (`p1`, `p1-v1`
/// in every room), and two rooms publishing at once must each hear only themselves. A leak
/// shows as repeated sequence numbers, since both rooms' `p1` send the same ones.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn rooms_never_share_media() -> anyhow::Result<()> {
    let server = TestServer::sqlite().await?;
    let mut pairs = Vec::new();
    for title in ["Room A", "Room B"] {
        let room = server.room(title, 5).await?;
        let ann = Client::join(server.addr, &room, "Ann").await?;
        let bo = Client::join(server.addr, &room, "Bo").await?;
        pairs.push((ann, bo));
    }
    assert_eq!(pairs[0].0.id, pairs[1].0.id, "ids repeat across rooms");
    for (ann, bo) in pairs.iter_mut() {
        ann.publish(VIDEO_PACKETS).await?;
        bo.publish(VIDEO_PACKETS).await?;
    }
    for (ann, bo) in &pairs {
        for (receiver, publisher) in [(bo, &ann.id), (ann, &bo.id)] {
            for (kind, last) in LAST_PACKETS {
                wait_to_end(receiver, publisher, kind, last).await?;
            }
        }
    }
    // Everything has arrived; now nothing may have come twice.
    for (ann, bo) in &pairs {
        for (receiver, publisher) in [(bo, &ann.id), (ann, &bo.id)] {
            for (kind, last) in LAST_PACKETS {
                check_contiguous(&receiver.media, publisher, kind, last)?;
            }
            let streams = receiver.media.streams();
            assert_eq!(
                streams.len(),
                2,
                "{}: only its peer's two tracks",
                receiver.id
            );
        }
    }
    Ok(())
}
