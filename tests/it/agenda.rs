//! The agenda and its floor through the real server and real WebRTC clients: who is heard
//! follows the segment, events reach everyone, and a restart resumes from the stored
//! deadline.

use roundtable_loadgen::client::{Client, MediaLog};
use signaling::agenda::{Advocate, Command, Event, Phase, Plan, SegmentKind};
use signaling::roles::Role;
use signaling::wire::{AgendaView, ClientMsg, ErrorCode, FloorMode, MediaKind, ServerMsg};

use crate::common::TestServer;
use crate::gate::video_goes_on;
use crate::moderation::{code, expect, try_join};

/// Audio packets `from` has sent `to` so far.
fn audio(to: &MediaLog, from: &str) -> usize {
    to.from(from, MediaKind::Audio).len()
}

/// Whether Bo hears each of `speakers` (true) or not (false) over the next second: what
/// was in flight when the floor changed has arrived after 200 ms of video; then, over a
/// second more, the counts of those not heard stay flat and those heard grow.
async fn heard(bo: &Client, clock: &str, speakers: &[(&str, bool)]) -> anyhow::Result<()> {
    video_goes_on(bo, clock, 20).await?;
    let before: Vec<usize> = speakers.iter().map(|(s, _)| audio(&bo.media, s)).collect();
    video_goes_on(bo, clock, 100).await?;
    for ((speaker, want), before) in speakers.iter().zip(before) {
        let now = audio(&bo.media, speaker);
        assert_eq!(
            now > before,
            *want,
            "{speaker}: {before} then {now} packets"
        );
    }
    Ok(())
}

/// Wait for an `agenda` message with `event`; returns its view.
async fn agenda_event(client: &mut Client, event: Event) -> anyhow::Result<AgendaView> {
    let msg = client
        .expect(
            "an agenda event",
            |m| matches!(m, ServerMsg::Agenda { event: Some(e), .. } if *e == event),
        )
        .await?;
    let ServerMsg::Agenda { agenda, .. } = msg else {
        unreachable!()
    };
    Ok(*agenda)
}

fn control(action: Command) -> ClientMsg {
    ClientMsg::AgendaControl {
        action,
        seconds: None,
    }
}

/// A tactic presented by Ada (by her invite): the organisation's presentation is the
/// facilitators', the tactic's is Ada's, the conversation everyone's; in hand-raise mode the
/// conversation is the facilitators' and whom they give the floor.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_floor_follows_the_agenda_in_the_media_plane() -> anyhow::Result<()> {
    let server = TestServer::sqlite().await?;
    let room = server.room("Floor", 10).await?;
    let (fay_secret, _) = server.invite(&room, Role::Facilitator, |_| {}).await?;
    let (ada_secret, ada_invite) = server.invite(&room, Role::Advocate, |_| {}).await?;
    let fay = Client::join_invited(server.addr, &room, "Fay", &fay_secret).await?;
    let mut ada = Client::join_invited(server.addr, &room, "Ada", &ada_secret).await?;
    let mut pat = Client::join(server.addr, &room, "Pat").await?;
    let mut bo = Client::join(server.addr, &room, "Bo").await?;
    // 30 s of media each: video 10 ms apart (Bo's clock), audio 20 ms apart.
    ada.publish(3000).await?;
    pat.publish(3000).await?;
    let (ada_id, pat_id) = (ada.id.clone(), pat.id.clone());
    bo.media
        .wait_for("both voices", |log| {
            audio(log, &ada_id) >= 10 && audio(log, &pat_id) >= 10
        })
        .await?;
    // Before the start, everyone is heard.
    heard(&bo, &ada_id, &[(&ada_id, true), (&pat_id, true)]).await?;

    let mut plan = Plan::skill_share(2);
    plan.tactics[0].advocate = Some(Advocate::Invite { id: ada_invite });
    fay.send(ClientMsg::AgendaSet { plan: plan.clone() });
    fay.send(control(Command::Start));
    let view = agenda_event(&mut bo, Event::SegmentStarted).await?;
    assert_eq!(
        (view.phase, view.tactic, view.segment),
        (Phase::Running, 0, 0)
    );
    assert_eq!(view.floor.mode, FloorMode::Presentation);
    assert_eq!(view.floor.speakers, std::slice::from_ref(&fay.id));
    heard(&bo, &ada_id, &[(&ada_id, false), (&pat_id, false)]).await?;

    // The tactic's presentation: Ada's.
    fay.send(control(Command::Next));
    let view = agenda_event(&mut bo, Event::SegmentStarted).await?;
    assert_eq!(
        view.plan.tactics[0].segments[view.segment].kind,
        SegmentKind::Tactic
    );
    assert_eq!(view.floor.speakers, [fay.id.clone(), ada_id.clone()]);
    heard(&bo, &ada_id, &[(&ada_id, true), (&pat_id, false)]).await?;
    // Pat's page is told why: she is not among the speakers.
    let pat_view = agenda_event(&mut pat, Event::SegmentStarted).await?;
    assert!(!pat_view.floor.speakers.contains(&pat_id));

    // The conversation: open.
    fay.send(control(Command::Next));
    let view = agenda_event(&mut bo, Event::SegmentStarted).await?;
    assert_eq!(view.floor.mode, FloorMode::Open);
    heard(&bo, &ada_id, &[(&ada_id, true), (&pat_id, true)]).await?;

    // Hand-raise mode: only whom a facilitator gives the floor, until it is taken back.
    plan.hand_raise = true;
    fay.send(ClientMsg::AgendaSet { plan });
    let view = expect_floor(&mut bo, FloorMode::HandRaise).await?;
    assert_eq!(view.floor.speakers, std::slice::from_ref(&fay.id));
    heard(&bo, &ada_id, &[(&ada_id, false), (&pat_id, false)]).await?;
    pat.send(ClientMsg::RaiseHand {});
    pat.send(ClientMsg::GiveFloor {
        participant: pat_id.clone(),
    });
    let refused = pat
        .expect("a refusal", |m| matches!(m, ServerMsg::Error { .. }))
        .await?;
    assert_eq!(
        code(&refused),
        Some(ErrorCode::Forbidden),
        "Pat cannot give herself the floor"
    );
    fay.send(ClientMsg::GiveFloor {
        participant: pat_id.clone(),
    });
    let hands = bo
        .expect(
            "Pat's hand comes down",
            |m| matches!(m, ServerMsg::Hands { queue } if queue.is_empty()),
        )
        .await?;
    assert_eq!(hands, ServerMsg::Hands { queue: vec![] });
    heard(&bo, &ada_id, &[(&ada_id, false), (&pat_id, true)]).await?;
    fay.send(ClientMsg::TakeFloor {
        participant: pat_id.clone(),
    });
    heard(&bo, &ada_id, &[(&ada_id, false), (&pat_id, false)]).await?;
    // Given again, Pat yields it herself.
    fay.send(ClientMsg::GiveFloor {
        participant: pat_id.clone(),
    });
    heard(&bo, &ada_id, &[(&pat_id, true)]).await?;
    pat.send(ClientMsg::YieldFloor {});
    heard(&bo, &ada_id, &[(&pat_id, false)]).await?;

    // The end: everyone again.
    fay.send(control(Command::End));
    agenda_event(&mut bo, Event::Ended).await?;
    heard(&bo, &ada_id, &[(&ada_id, true), (&pat_id, true)]).await?;
    Ok(())
}

/// Wait for an `agenda` message whose floor is in `mode`.
async fn expect_floor(client: &mut Client, mode: FloorMode) -> anyhow::Result<AgendaView> {
    let msg = client
        .expect(
            "the floor's mode",
            |m| matches!(m, ServerMsg::Agenda { agenda, .. } if agenda.floor.mode == mode),
        )
        .await?;
    let ServerMsg::Agenda { agenda, .. } = msg else {
        unreachable!()
    };
    Ok(*agenda)
}

/// A timer's events reach every client, with the server's time and the deadline; commands
/// from a participant are refused and change nothing.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn timer_events_reach_everyone() -> anyhow::Result<()> {
    let server = TestServer::sqlite().await?;
    let room = server.room("Timers", 10).await?;
    let (fay_secret, _) = server.invite(&room, Role::Facilitator, |_| {}).await?;
    let (mut fay, _) = try_join(&server, &room, "Fay", Some(&fay_secret)).await?;
    let (mut ann, _) = try_join(&server, &room, "Ann", None).await?;
    let (mut bo, _) = try_join(&server, &room, "Bo", None).await?;
    ann.send(&control(Command::Start)).await?;
    let refused = expect(&mut ann, |m| matches!(m, ServerMsg::Error { .. })).await?;
    assert_eq!(code(&refused), Some(ErrorCode::Forbidden));
    // One tactic of a 2 s organisation segment, a warning at 1 s and a grace of 1 s.
    let mut plan = Plan::skill_share(1);
    plan.tactics[0].segments[0].duration_s = 2;
    plan.warn_at_s = vec![1];
    plan.grace_s = 1;
    fay.send(&ClientMsg::AgendaSet { plan }).await?;
    fay.send(&control(Command::Start)).await?;
    for ws in [&mut fay, &mut ann, &mut bo] {
        let mut seen = Vec::new();
        let mut deadline = None;
        while seen.last() != Some(&Event::Overrun) {
            if let ServerMsg::Agenda {
                agenda,
                event: Some(e),
            } = ws.recv().await?
            {
                assert!(agenda.server_time > 0);
                if e == Event::SegmentStarted {
                    let d = agenda.deadline.expect("a running segment has a deadline");
                    assert_eq!(d - agenda.started_at, 2000);
                    deadline = Some(d);
                }
                if e == Event::TimeUp {
                    assert!(
                        agenda.server_time >= deadline.unwrap(),
                        "not before the deadline"
                    );
                }
                seen.push(e);
            }
        }
        assert_eq!(
            seen,
            [
                Event::SegmentStarted,
                Event::Warning { left_s: 1 },
                Event::TimeUp,
                Event::Overrun
            ]
        );
    }
    // A command that does not fit the state is refused with agenda_state.
    fay.send(&control(Command::Resume)).await?;
    let refused = expect(&mut fay, |m| matches!(m, ServerMsg::Error { .. })).await?;
    assert_eq!(code(&refused), Some(ErrorCode::AgendaState));
    Ok(())
}

/// After a restart in the middle of a segment, the agenda resumes where it was, with the
/// deadline it had: the time left counts from the stored deadline, not from the restart.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_restart_mid_segment_resumes_with_the_stored_deadline() -> anyhow::Result<()> {
    let dir = tempfile::tempdir()?;
    let url = format!("sqlite:{}", dir.path().join("rt.db").display());
    let mut server = TestServer::with_database(url.clone()).await?;
    let room = server.room("Restart", 10).await?;
    let (fay_secret, _) = server.invite(&room, Role::Facilitator, |_| {}).await?;
    let (mut fay, _) = try_join(&server, &room, "Fay", Some(&fay_secret)).await?;
    fay.send(&control(Command::Start)).await?;
    fay.send(&control(Command::Next)).await?;
    let view = loop {
        if let ServerMsg::Agenda { agenda, .. } = fay.recv().await?
            && agenda.segment == 1
        {
            break agenda;
        }
    };
    let deadline = view.deadline.expect("running");
    // Stopping waits for the room's writer: the agenda as it stands is stored.
    drop(fay);
    server.stop().await?;

    let server = TestServer::with_database(url).await?;
    let (_fay, joined) = try_join(&server, &room, "Fay", Some(&fay_secret)).await?;
    let ServerMsg::Joined { agenda, .. } = joined else {
        panic!("{joined:?}")
    };
    assert_eq!(
        (agenda.phase, agenda.tactic, agenda.segment),
        (Phase::Running, 0, 1)
    );
    assert_eq!(
        agenda.deadline,
        Some(deadline),
        "the stored deadline, not a fresh one"
    );
    assert!(agenda.server_time - agenda.started_at >= 0);
    let runs = server
        .state
        .store()
        .load_agenda(&room)
        .await?
        .expect("stored")
        .state
        .runs;
    assert_eq!(runs.len(), 1);
    assert_eq!(runs[0].segments.len(), 2, "both segments are on record");
    assert!(runs[0].segments[0].ended_at.is_some());
    Ok(())
}
