//! What a client may rely on about `subscribe` offers and room events (docs/protocol.md, "The
//! subscribe connection"): a track is announced before an offer carries it, the first offer
//! after `joined` carries every track `joined` lists, and a leaver's tracks are announced gone
//! before the one offer that takes them all away.

use roundtable_loadgen::client::Client;
use signaling::wire::{ClientMsg, ServerMsg};

use crate::common::TestServer;

/// The `a=msid` track ids of an SDP's sections that send (`sendonly`).
fn sending_tracks(sdp: &str) -> Vec<String> {
    let mut tracks = Vec::new();
    for section in sdp.split("\r\nm=").skip(1) {
        if !section.contains("a=sendonly") {
            continue;
        }
        if let Some(msid) = section.lines().find_map(|l| l.strip_prefix("a=msid:")) {
            tracks.extend(msid.split_whitespace().nth(1).map(str::to_owned));
        }
    }
    tracks
}

/// The server's messages to `client`, in order, until `done` says the last one is enough.
async fn messages_until(
    client: &mut Client,
    what: &str,
    done: impl Fn(&ServerMsg) -> bool,
) -> anyhow::Result<Vec<ServerMsg>> {
    let mut seen = Vec::new();
    client
        .expect(what, |m| {
            seen.push(m.clone());
            done(m)
        })
        .await?;
    Ok(seen)
}

fn offer_sdp(m: &ServerMsg) -> Option<&str> {
    match m {
        ServerMsg::Offer { sdp, .. } => Some(sdp),
        _ => None,
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn offers_follow_the_room_events_they_carry() -> anyhow::Result<()> {
    let server = TestServer::sqlite().await?;
    let room = server.room("Order", 5).await?;
    let mut cy = Client::join(server.addr, &room, "Cy").await?;
    let mut ann = Client::join(server.addr, &room, "Ann").await?;
    ann.publish(3000).await?;

    // Cy hears of each of Ann's tracks before an offer carries it.
    let seen = messages_until(&mut cy, "an offer with Ann's two tracks", |m| {
        offer_sdp(m).is_some_and(|sdp| sending_tracks(sdp).len() == 2)
    })
    .await?;
    let announced: Vec<(usize, String)> = seen
        .iter()
        .enumerate()
        .filter_map(|(i, m)| match m {
            ServerMsg::TrackPublished { track } => Some((i, track.id.clone())),
            _ => None,
        })
        .collect();
    assert_eq!(announced.len(), 2, "{seen:?}");
    for (i, m) in seen.iter().enumerate() {
        for track in offer_sdp(m).map(sending_tracks).unwrap_or_default() {
            let at = announced
                .iter()
                .find(|(_, id)| *id == track)
                .map(|(at, _)| *at);
            assert!(
                at.is_some_and(|at| at < i),
                "offer {i} carries {track} before its track_published: {seen:?}"
            );
        }
    }

    // Bo joins: his first offer carries every track `joined` lists.
    let mut bo = Client::join(server.addr, &room, "Bo").await?;
    let ServerMsg::Joined { tracks, .. } = &bo.joined else {
        anyhow::bail!("no joined message");
    };
    let mut listed: Vec<String> = tracks.iter().map(|t| t.id.clone()).collect();
    listed.sort();
    assert_eq!(listed.len(), 2, "{listed:?}");
    let first = bo
        .expect("Bo's first offer", |m| offer_sdp(m).is_some())
        .await?;
    let mut offered = sending_tracks(offer_sdp(&first).unwrap_or_default());
    offered.sort();
    assert_eq!(offered, listed, "the first offer carries joined.tracks");

    // Ann leaves: both tracks are announced gone before the one offer that takes both away.
    ann.send(ClientMsg::Leave {});
    let seen = messages_until(&mut cy, "an offer without Ann's tracks", |m| {
        offer_sdp(m).is_some_and(|sdp| sending_tracks(sdp).is_empty())
    })
    .await?;
    let gone: Vec<usize> = seen
        .iter()
        .enumerate()
        .filter(|(_, m)| matches!(m, ServerMsg::TrackUnpublished { .. }))
        .map(|(i, _)| i)
        .collect();
    assert_eq!(gone.len(), 2, "{seen:?}");
    let offers: Vec<(usize, Vec<String>)> = seen
        .iter()
        .enumerate()
        .filter_map(|(i, m)| offer_sdp(m).map(|sdp| (i, sending_tracks(sdp))))
        .collect();
    let (last, left) = offers.last().expect("an offer");
    assert!(left.is_empty() && gone.iter().all(|g| g < last), "{seen:?}");
    for (i, tracks) in &offers[..offers.len() - 1] {
        assert_eq!(
            tracks.len(),
            2,
            "offer {i} took one of the two away alone: {seen:?}"
        );
    }
    Ok(())
}
