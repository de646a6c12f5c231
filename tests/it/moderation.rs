//! Roles, invites, exact caps, the waiting room and moderation, through the real server and
//! real WebRTC clients.

use std::sync::Arc;

use roundtable_loadgen::client::{Client, Ws, connect};
use signaling::policy::WhenFull;
use signaling::roles::Role;
use signaling::wire::{self, ClientMsg, ErrorCode, MediaKind, PcRole, ServerMsg};

use crate::common::TestServer;
use crate::gate::{audio_from, held_back_once, video_goes_on};

/// Send `join` on a fresh socket and return it with the first answer that is not a
/// candidate: `joined`, `waiting` or `error`.
pub(crate) async fn try_join(
    server: &TestServer,
    room: &str,
    name: &str,
    invite: Option<&str>,
) -> anyhow::Result<(Ws, ServerMsg)> {
    let mut ws = connect(server.addr).await?;
    let answer = join_on(&mut ws, room, name, invite).await?;
    Ok((ws, answer))
}

pub(crate) async fn join_on(
    ws: &mut Ws,
    room: &str,
    name: &str,
    invite: Option<&str>,
) -> anyhow::Result<ServerMsg> {
    ws.send(&ClientMsg::Join {
        v: wire::PROTOCOL_VERSION,
        room: room.into(),
        name: name.into(),
        invite: invite.map(str::to_string),
        consent: false,
    })
    .await?;
    ws.recv_until(|m| !matches!(m, ServerMsg::Candidate { .. }))
        .await
}

pub(crate) fn code(msg: &ServerMsg) -> Option<ErrorCode> {
    match msg {
        ServerMsg::Error { code, .. } => Some(*code),
        _ => None,
    }
}

/// Wait on a raw socket for a message matching `want`.
pub(crate) async fn expect(
    ws: &mut Ws,
    want: impl FnMut(&ServerMsg) -> bool,
) -> anyhow::Result<ServerMsg> {
    ws.recv_until(want).await
}

/// 50 clients join a 30-seat room at the same instant: exactly 30 are seated, and the other
/// 20 are refused with `room_full`. With a waiting room, the 20 wait, in positions 1 to 20.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn fifty_joins_into_thirty_seats_seat_exactly_thirty() -> anyhow::Result<()> {
    for when_full in [WhenFull::Refuse, WhenFull::Wait] {
        let server = TestServer::sqlite().await?;
        let room = server.room("Race", 30).await?;
        server
            .set_policy(&room, |p| p.when_full = when_full)
            .await?;
        let start = Arc::new(tokio::sync::Barrier::new(50));
        let mut joins = Vec::new();
        for n in 0..50 {
            let mut ws = connect(server.addr).await?;
            let (start, room) = (start.clone(), room.clone());
            joins.push(tokio::spawn(async move {
                start.wait().await;
                let answer = join_on(&mut ws, &room, &format!("P{n}"), None).await;
                (ws, answer)
            }));
        }
        let mut seated = 0;
        let mut positions = Vec::new();
        let mut sockets = Vec::new();
        for join in joins {
            let (ws, answer) = join.await?;
            match answer? {
                ServerMsg::Joined { .. } => seated += 1,
                ServerMsg::Waiting { position } => positions.push(position),
                other => assert_eq!(code(&other), Some(ErrorCode::RoomFull), "{other:?}"),
            }
            sockets.push(ws);
        }
        assert_eq!(seated, 30, "{when_full:?}");
        assert_eq!(server.state.registry_occupancy(&room), 30);
        positions.sort_unstable();
        let expected: Vec<u32> = match when_full {
            WhenFull::Refuse => vec![],
            WhenFull::Wait => (1..=20).collect(),
        };
        assert_eq!(positions, expected);
    }
    Ok(())
}

/// Each way an invite can fail has its own code; a join the room refuses gives its use back.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn invites_are_refused_with_their_own_codes() -> anyhow::Result<()> {
    let server = TestServer::sqlite().await?;
    let room = server.room("Invites", 1).await?;
    let other = server.room("Elsewhere", 5).await?;
    let now = roundtable::room::now().unix_ms;
    let (expired, _) = server
        .invite(&room, Role::Participant, |i| i.expires_at = now - 1)
        .await?;
    let (once, _) = server
        .invite(&room, Role::Advocate, |i| i.max_uses = Some(1))
        .await?;
    let (revoked, revoked_id) = server.invite(&room, Role::Participant, |_| {}).await?;
    server
        .state
        .store()
        .revoke_invite(&room, &revoked_id, now)
        .await?;
    let (elsewhere, _) = server.invite(&other, Role::Participant, |_| {}).await?;
    let mut forged = once.clone();
    forged.replace_range(0..1, if forged.starts_with('a') { "b" } else { "a" });

    for (secret, want) in [
        (forged.as_str(), ErrorCode::InviteInvalid),
        ("", ErrorCode::InviteInvalid),
        (expired.as_str(), ErrorCode::InviteExpired),
        (revoked.as_str(), ErrorCode::InviteRevoked),
        (elsewhere.as_str(), ErrorCode::InviteWrongRoom),
    ] {
        let (_ws, answer) = try_join(&server, &room, "Ann", Some(secret)).await?;
        assert_eq!(code(&answer), Some(want), "{secret}: {answer:?}");
    }
    // The room is full: the single-use invite is refused with room_full, and keeps its use.
    let (mut seated, answer) = try_join(&server, &room, "First", None).await?;
    assert!(matches!(answer, ServerMsg::Joined { .. }), "{answer:?}");
    let (_ws, answer) = try_join(&server, &room, "Ada", Some(&once)).await?;
    assert_eq!(code(&answer), Some(ErrorCode::RoomFull), "{answer:?}");
    // `left` comes once the room has taken First out.
    seated.send(&ClientMsg::Leave {}).await?;
    expect(&mut seated, |m| matches!(m, ServerMsg::Left {})).await?;
    let (_ada, answer) = try_join(&server, &room, "Ada", Some(&once)).await?;
    assert!(
        matches!(
            answer,
            ServerMsg::Joined {
                role: Role::Advocate,
                ..
            }
        ),
        "the single-use invite seats Ada once the seat is free: {answer:?}"
    );
    // Its one use is spent now.
    server.set_policy(&room, |p| p.capacity = 5).await?;
    let (_ws, answer) = try_join(&server, &room, "Ada again", Some(&once)).await?;
    assert_eq!(code(&answer), Some(ErrorCode::InviteUsedUp), "{answer:?}");
    // Without the open link, a join needs an invite.
    server.set_policy(&room, |p| p.open_link = false).await?;
    let (_ws, answer) = try_join(&server, &room, "Bo", None).await?;
    assert_eq!(code(&answer), Some(ErrorCode::InviteRequired), "{answer:?}");
    Ok(())
}

/// A participant sending facilitator commands gets `forbidden` for each, and nothing
/// changes: nobody is muted, removed or told anything, the room stays unlocked, and the
/// audit log stays empty.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_participants_facilitator_commands_are_forbidden_and_change_nothing() -> anyhow::Result<()>
{
    let server = TestServer::sqlite().await?;
    let room = server.room("Forbidden", 5).await?;
    server
        .set_policy(&room, |p| p.when_full = WhenFull::Wait)
        .await?;
    let (fay_secret, _) = server.invite(&room, Role::Facilitator, |_| {}).await?;
    let (mut fay, _) = try_join(&server, &room, "Fay", Some(&fay_secret)).await?;
    let (mut pat, answer) = try_join(&server, &room, "Pat", None).await?;
    let ServerMsg::Joined { you: pat_id, .. } = answer else {
        panic!("{answer:?}")
    };
    let (mut bo, answer) = try_join(&server, &room, "Bo", None).await?;
    let ServerMsg::Joined { you: bo_id, .. } = answer else {
        panic!("{answer:?}")
    };
    bo.send(&ClientMsg::RaiseHand {}).await?;
    expect(
        &mut pat,
        |m| matches!(m, ServerMsg::Hands { queue } if queue.len() == 1),
    )
    .await?;
    let commands = [
        ClientMsg::Mute {
            participant: bo_id.clone(),
            kind: MediaKind::Audio,
            muted: true,
        },
        ClientMsg::Mute {
            participant: bo_id.clone(),
            kind: MediaKind::Video,
            muted: true,
        },
        ClientMsg::Remove {
            participant: bo_id.clone(),
            bar: false,
        },
        ClientMsg::Lock { locked: true },
        ClientMsg::Admit {
            waiter: "w1".into(),
        },
        ClientMsg::Decline {
            waiter: "w1".into(),
        },
        ClientMsg::LowerHand {
            participant: Some(bo_id.clone()),
        },
    ];
    for command in commands {
        pat.send(&command).await?;
        let answer = expect(&mut pat, |m| matches!(m, ServerMsg::Error { .. })).await?;
        assert_eq!(code(&answer), Some(ErrorCode::Forbidden), "{command:?}");
    }
    // A ping after the commands: everything before it was handled. Bo heard nothing.
    bo.send(&ClientMsg::Ping { id: Some(7) }).await?;
    let mut heard = Vec::new();
    loop {
        match bo.recv().await? {
            ServerMsg::Pong { id: Some(7), .. } => break,
            other => heard.push(other),
        }
    }
    assert!(
        heard.iter().all(|m| matches!(
            m,
            ServerMsg::Hands { .. } | ServerMsg::ParticipantJoined { .. }
        )),
        "{heard:?}"
    );
    // The room is not locked: a new join is seated; Bo's hand is still up.
    let (_cy, answer) = try_join(&server, &room, "Cy", None).await?;
    match answer {
        ServerMsg::Joined {
            locked,
            hands,
            participants,
            ..
        } => {
            assert!(!locked);
            assert_eq!(hands, std::slice::from_ref(&bo_id));
            assert!(
                participants
                    .iter()
                    .any(|p| p.id == bo_id && p.audio_allowed)
            );
            assert!(participants.iter().any(|p| p.id == pat_id));
        }
        other => panic!("{other:?}"),
    }
    fay.send(&ClientMsg::Ping { id: Some(1) }).await?;
    expect(&mut fay, |m| matches!(m, ServerMsg::Pong { .. })).await?;
    assert!(server.state.store().audit_log(&room).await?.is_empty());
    Ok(())
}

/// A facilitator mutes Ann: her audio stops reaching Bo (his count stays flat while her
/// video goes on), she is told, and when she is unmuted it resumes with contiguous sequence
/// numbers.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_muted_participants_audio_stops_and_resumes_without_a_gap() -> anyhow::Result<()> {
    let server = TestServer::sqlite().await?;
    let room = server.room("Mute", 5).await?;
    let (fay_secret, _) = server.invite(&room, Role::Facilitator, |_| {}).await?;
    let fay = Client::join_invited(server.addr, &room, "Fay", &fay_secret).await?;
    let mut ann = Client::join(server.addr, &room, "Ann").await?;
    let bo = Client::join(server.addr, &room, "Bo").await?;
    ann.publish(800).await?;
    let ann_id = ann.id.clone();
    bo.media
        .wait_for("Ann's first audio", |log| {
            log.from(&ann_id, MediaKind::Audio).len() >= 20
        })
        .await?;
    fay.send(ClientMsg::Mute {
        participant: ann_id.clone(),
        kind: MediaKind::Audio,
        muted: true,
    });
    let told = ann
        .expect("Ann told of her mute", |m| {
            matches!(m, ServerMsg::Moderated { .. })
        })
        .await?;
    assert_eq!(
        told,
        ServerMsg::Moderated {
            kind: MediaKind::Audio,
            allowed: false,
            by: fay.id.clone()
        }
    );
    // She cannot unmute herself.
    ann.send(ClientMsg::Mute {
        participant: ann_id.clone(),
        kind: MediaKind::Audio,
        muted: false,
    });
    let refused = ann
        .expect("a refusal", |m| matches!(m, ServerMsg::Error { .. }))
        .await?;
    assert_eq!(code(&refused), Some(ErrorCode::Forbidden));
    video_goes_on(&bo, &ann_id, 20).await?;
    let muted_at = audio_from(&bo, &ann_id);
    video_goes_on(&bo, &ann_id, 100).await?;
    assert_eq!(
        audio_from(&bo, &ann_id),
        muted_at,
        "Ann's audio reached Bo while muted"
    );
    fay.send(ClientMsg::Mute {
        participant: ann_id.clone(),
        kind: MediaKind::Audio,
        muted: false,
    });
    held_back_once(&bo, &ann_id).await
}

/// Someone in the waiting room has no media connection: an offer is refused and no offer
/// comes. Once admitted, they get `joined` and their media works.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_waiting_room_has_no_media_until_admitted() -> anyhow::Result<()> {
    let server = TestServer::sqlite().await?;
    let room = server.room("Waiting", 2).await?;
    server
        .set_policy(&room, |p| p.when_full = WhenFull::Wait)
        .await?;
    let (fay_secret, _) = server.invite(&room, Role::Facilitator, |_| {}).await?;
    let (mut fay, _) = try_join(&server, &room, "Fay", Some(&fay_secret)).await?;
    let (_ann, _) = try_join(&server, &room, "Ann", None).await?;
    let (mut wes, answer) = try_join(&server, &room, "Wes", None).await?;
    assert_eq!(answer, ServerMsg::Waiting { position: 1 });
    let queue = expect(&mut fay, |m| matches!(m, ServerMsg::Queue { .. })).await?;
    let ServerMsg::Queue { waiting } = queue else {
        unreachable!()
    };
    assert_eq!(waiting[0].name, "Wes");
    wes.send(&ClientMsg::Offer {
        pc: PcRole::Publish,
        sdp: "v=0".into(),
    })
    .await?;
    let answer = wes.recv().await?;
    assert_eq!(code(&answer), Some(ErrorCode::NotJoined), "{answer:?}");
    wes.send(&ClientMsg::Chat { text: "hi".into() }).await?;
    let answer = wes.recv().await?;
    assert_eq!(code(&answer), Some(ErrorCode::NotJoined), "{answer:?}");
    // Admitting needs a free seat.
    fay.send(&ClientMsg::Admit {
        waiter: waiting[0].id.clone(),
    })
    .await?;
    let answer = expect(&mut fay, |m| matches!(m, ServerMsg::Error { .. })).await?;
    assert_eq!(code(&answer), Some(ErrorCode::RoomFull));
    server.set_policy(&room, |p| p.capacity = 3).await?;
    // The running room learns of the new capacity with the next join's snapshot, or the
    // admin API's refresh; here, a join that is refused for its bad name carries it.
    let (_x, answer) = try_join(&server, &room, "\u{202e}", None).await?;
    assert_eq!(code(&answer), Some(ErrorCode::BadName));
    fay.send(&ClientMsg::Admit {
        waiter: waiting[0].id.clone(),
    })
    .await?;
    let joined = wes.recv().await?;
    assert!(
        matches!(
            &joined,
            ServerMsg::Joined {
                role: Role::Participant,
                ..
            }
        ),
        "{joined:?}"
    );
    // Now it has a media session: the same offer is parsed, and refused as SDP.
    wes.send(&ClientMsg::Offer {
        pc: PcRole::Publish,
        sdp: "v=0".into(),
    })
    .await?;
    let answer = expect(&mut wes, |m| matches!(m, ServerMsg::Error { .. })).await?;
    assert_eq!(code(&answer), Some(ErrorCode::BadSdp), "{answer:?}");
    Ok(())
}

/// An observer's publish offer is refused with `forbidden`.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_observer_may_not_publish() -> anyhow::Result<()> {
    let server = TestServer::sqlite().await?;
    let room = server.room("Observe", 5).await?;
    let (secret, _) = server.invite(&room, Role::Observer, |_| {}).await?;
    let (mut obi, answer) = try_join(&server, &room, "Obi", Some(&secret)).await?;
    assert!(
        matches!(
            answer,
            ServerMsg::Joined {
                role: Role::Observer,
                ..
            }
        ),
        "{answer:?}"
    );
    obi.send(&ClientMsg::Offer {
        pc: PcRole::Publish,
        sdp: "v=0".into(),
    })
    .await?;
    let answer = expect(&mut obi, |m| matches!(m, ServerMsg::Error { .. })).await?;
    assert_eq!(code(&answer), Some(ErrorCode::Forbidden), "{answer:?}");
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_audit_log_holds_each_action_on_sqlite() -> anyhow::Result<()> {
    let server = TestServer::sqlite().await?;
    audit_flow(server).await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_audit_log_holds_each_action_on_postgres() -> anyhow::Result<()> {
    let pg = crate::pg::fresh_database().await?;
    let server = TestServer::with_database(pg.url.clone()).await?;
    let result = audit_flow(server).await;
    pg.drop().await?;
    result
}

/// A facilitator does one of each action; the store's audit log holds them in order, with
/// who, what, whom and when, and the barred invite is revoked.
async fn audit_flow(mut owned: TestServer) -> anyhow::Result<()> {
    let server = &owned;
    let room = server.room("Audit", 3).await?;
    server
        .set_policy(&room, |p| p.when_full = WhenFull::Wait)
        .await?;
    let (fay_secret, _) = server.invite(&room, Role::Facilitator, |_| {}).await?;
    let (ada_secret, ada_invite) = server.invite(&room, Role::Advocate, |_| {}).await?;
    let (mut fay, _) = try_join(server, &room, "Fay", Some(&fay_secret)).await?;
    let (mut ada, answer) = try_join(server, &room, "Ada", Some(&ada_secret)).await?;
    let ServerMsg::Joined { you: ada_id, .. } = answer else {
        panic!("{answer:?}")
    };
    let (mut pat, answer) = try_join(server, &room, "Pat", None).await?;
    let ServerMsg::Joined { you: pat_id, .. } = answer else {
        panic!("{answer:?}")
    };
    let (mut wes, answer) = try_join(server, &room, "Wes", None).await?;
    assert_eq!(answer, ServerMsg::Waiting { position: 1 });
    let (_wil, answer) = try_join(server, &room, "Wil", None).await?;
    assert_eq!(answer, ServerMsg::Waiting { position: 2 });
    pat.send(&ClientMsg::RaiseHand {}).await?;
    // Fay sees the hand go up before she acts: her `lower_hand` then lowers a raised hand.
    expect(
        &mut fay,
        |m| matches!(m, ServerMsg::Hands { queue } if queue.len() == 1),
    )
    .await?;
    let mute = |kind, muted| ClientMsg::Mute {
        participant: pat_id.clone(),
        kind,
        muted,
    };
    let started = roundtable::room::now().unix_ms;
    for command in [
        ClientMsg::Lock { locked: true },
        ClientMsg::Lock { locked: false },
        mute(MediaKind::Audio, true),
        mute(MediaKind::Audio, false),
        mute(MediaKind::Video, true),
        mute(MediaKind::Video, false),
        ClientMsg::LowerHand {
            participant: Some(pat_id.clone()),
        },
        ClientMsg::Decline {
            waiter: "w2".into(),
        },
        ClientMsg::Remove {
            participant: ada_id.clone(),
            bar: true,
        },
        ClientMsg::Admit {
            waiter: "w1".into(),
        },
    ] {
        fay.send(&command).await?;
    }
    let removed = ada
        .recv_until(|m| matches!(m, ServerMsg::Removed { .. }))
        .await?;
    assert_eq!(
        removed,
        ServerMsg::Removed {
            by: "p1".into(),
            barred: true
        }
    );
    // The admit was the last action: once Wes is seated, the room has taken every one.
    expect(&mut wes, |m| matches!(m, ServerMsg::Joined { .. })).await?;
    // The barred invite lets nobody in, at once.
    let (_again, answer) = try_join(server, &room, "Ada", Some(&ada_secret)).await?;
    assert_eq!(code(&answer), Some(ErrorCode::InviteRevoked));
    // Stopping the server waits for the room's writer: everything it was given is written.
    let store = server.state.store().clone();
    owned.stop().await?;
    let log = store.audit_log(&room).await?;
    let rows: Vec<(&str, &str, Option<&str>)> = log
        .iter()
        .map(|e| {
            (
                e.actor_name.as_str(),
                e.action.as_str(),
                e.target_name.as_deref(),
            )
        })
        .collect();
    assert_eq!(
        rows,
        [
            ("Fay", "lock", None),
            ("Fay", "unlock", None),
            ("Fay", "mute", Some("Pat")),
            ("Fay", "unmute", Some("Pat")),
            ("Fay", "stop_camera", Some("Pat")),
            ("Fay", "allow_camera", Some("Pat")),
            ("Fay", "lower_hand", Some("Pat")),
            ("Fay", "decline", Some("Wil")),
            ("Fay", "remove", Some("Ada")),
            ("Fay", "admit", Some("Wes")),
        ]
    );
    assert!(log.iter().all(|e| e.actor == "p1" && e.ts >= started));
    assert_eq!(log[8].detail.as_deref(), Some("barred"));
    assert_eq!(log[8].target.as_deref(), Some(ada_id.as_str()));
    let invites = store.list_invites(&room).await?;
    let barred = invites.iter().find(|i| i.id == ada_invite).expect("listed");
    assert!(barred.revoked_at.is_some(), "{barred:?}");
    Ok(())
}
