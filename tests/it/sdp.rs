//! The SDP the server writes is what docs/protocol.md promises a client that is not a browser:
//! every section BUNDLEd, one candidate in the first section only, sections reused with a new
//! msid and new SSRCs, and a publish answer that keeps only the documented header extensions.

use std::collections::BTreeSet;

use roundtable_loadgen::client::{Client, connect};
use signaling::wire::{self, ClientMsg, PcRole, ServerMsg};

use crate::common::TestServer;

const TWCC: &str = "http://www.ietf.org/id/draft-holmer-rmcat-transport-wide-cc-extensions-01";
const MID: &str = "urn:ietf:params:rtp-hdrext:sdes:mid";
const RID: &str = "urn:ietf:params:rtp-hdrext:sdes:rtp-stream-id";
const RRID: &str = "urn:ietf:params:rtp-hdrext:sdes:repaired-rtp-stream-id";

/// One media section: its lines, the `m=` line first.
type Section<'a> = Vec<&'a str>;

fn sections(sdp: &str) -> Vec<Section<'_>> {
    let mut out: Vec<Section<'_>> = Vec::new();
    for line in sdp.split("\r\n").filter(|l| !l.is_empty()) {
        if line.starts_with("m=") {
            out.push(vec![line]);
        } else if let Some(section) = out.last_mut() {
            section.push(line);
        }
    }
    out
}

/// The values of `a={key}:` lines.
fn values<'a>(section: &[&'a str], key: &str) -> Vec<&'a str> {
    let prefix = format!("a={key}:");
    section
        .iter()
        .filter_map(|l| l.strip_prefix(prefix.as_str()))
        .collect()
}

/// The port of the section's `m=` line.
fn port<'a>(section: &[&'a str]) -> &'a str {
    section[0].split(' ').nth(1).unwrap_or_default()
}

fn has(section: &[&str], line: &str) -> bool {
    section.contains(&line)
}

fn mid<'a>(section: &[&'a str]) -> &'a str {
    values(section, "mid")[0]
}

fn ssrcs(section: &[&str]) -> BTreeSet<u32> {
    values(section, "ssrc")
        .iter()
        .filter_map(|v| v.split(' ').next()?.parse().ok())
        .collect()
}

/// The header extension URIs of a section, with their ids.
fn extmaps<'a>(section: &[&'a str]) -> BTreeSet<(&'a str, &'a str)> {
    values(section, "extmap")
        .iter()
        .filter_map(|v| v.split_once(' '))
        .collect()
}

/// One transport: a BUNDLE group of every mid, RTP and RTCP on one port, and the server's
/// candidate in the first section only.
fn check_bundled(sdp: &str) {
    let all = sections(sdp);
    let mids: Vec<&str> = all.iter().map(|s| mid(s)).collect();
    let group = format!("a=group:BUNDLE {}", mids.join(" "));
    assert!(sdp.contains(&format!("{group}\r\n")), "{group} in\n{sdp}");
    for (i, section) in all.iter().enumerate() {
        assert_eq!(port(section), "9", "{section:?}");
        assert!(has(section, "a=rtcp-mux"), "{section:?}");
        let candidates = values(section, "candidate");
        if i == 0 {
            assert!(
                !candidates.is_empty(),
                "the first section has the candidate"
            );
            assert!(candidates.iter().all(|c| c.contains(" typ host")));
        } else {
            assert!(candidates.is_empty(), "only the first section: {section:?}");
        }
    }
}

/// The client's next subscribe offer for which `want` holds (the client answers every offer;
/// the others are skipped).
async fn offer_where(
    client: &mut Client,
    what: &str,
    want: impl Fn(&str) -> bool,
) -> anyhow::Result<String> {
    loop {
        let offer = client
            .expect(what, |m| matches!(m, ServerMsg::Offer { .. }))
            .await?;
        if let ServerMsg::Offer { sdp, .. } = offer
            && want(&sdp)
        {
            return Ok(sdp);
        }
    }
}

fn msid_count(sdp: &str) -> usize {
    sections(sdp)
        .iter()
        .filter(|s| !values(s, "msid").is_empty())
        .count()
}

/// A section whose track went away stays, inactive and without msid or SSRC lines; the next
/// track of its kind takes it with the same mid, a new msid and new SSRCs, sendonly again.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn subscribe_offers_are_bundled_and_reuse_sections_with_new_ssrcs() -> anyhow::Result<()> {
    let server = TestServer::sqlite().await?;
    let room = server.room("Sections", 5).await?;
    let mut bo = Client::join(server.addr, &room, "Bo").await?;
    let mut ann = Client::join(server.addr, &room, "Ann").await?;
    ann.publish(50).await?;
    let first = offer_where(&mut bo, "Ann's two tracks", |s| msid_count(s) == 2).await?;
    check_bundled(&first);
    assert!(!first.contains("a=extmap:"), "no header extension: {first}");
    let before = sections(&first);

    ann.send(ClientMsg::Leave {});
    ann.expect("left", |m| matches!(m, ServerMsg::Left {}))
        .await?;
    let gone = offer_where(&mut bo, "Ann's tracks gone", |s| msid_count(s) == 0).await?;
    check_bundled(&gone);
    let inactive = sections(&gone);
    assert_eq!(inactive.len(), before.len(), "no section is removed");
    for (old, now) in before.iter().zip(&inactive) {
        assert_eq!((mid(old), old[0]), (mid(now), now[0]), "same mid and kind");
        assert!(has(now, "a=inactive"), "{now:?}");
        assert!(ssrcs(now).is_empty() && values(now, "ssrc-group").is_empty());
    }

    let mut cy = Client::join(server.addr, &room, "Cy").await?;
    cy.publish(50).await?;
    let reused = offer_where(&mut bo, "Cy's two tracks", |s| msid_count(s) == 2).await?;
    check_bundled(&reused);
    let after = sections(&reused);
    assert_eq!(
        after.len(),
        before.len(),
        "the sections are reused: {reused}"
    );
    for (old, now) in before.iter().zip(&after) {
        assert_eq!(mid(old), mid(now), "same mid");
        assert_eq!(
            old[0].split(' ').next(),
            now[0].split(' ').next(),
            "same kind"
        );
        assert!(has(now, "a=sendonly"), "{now:?}");
        let msid = values(now, "msid")[0];
        assert!(msid.starts_with(&format!("{} ", cy.id)), "{msid}");
        assert_ne!(values(old, "msid")[0], msid);
        assert!(ssrcs(now).is_disjoint(&ssrcs(old)), "new SSRCs: {now:?}");
        if now[0].starts_with("m=video") {
            assert_eq!(values(now, "ssrc-group").len(), 1, "FID group: {now:?}");
        }
    }
    Ok(())
}

/// A browser's offer lists many header extensions. The answer keeps TWCC in audio, and TWCC,
/// mid, rid and repaired-rid in video, each with the offer's id; an audio section keeps no mid.
/// An offer without a BUNDLE group gets every section rejected.
#[tokio::test]
async fn a_publish_answer_keeps_the_documented_extensions_and_needs_bundle() -> anyhow::Result<()> {
    let server = TestServer::sqlite().await?;
    let room = server.room("Publish", 5).await?;
    for (name, bundle) in [("Ann", true), ("Bo", false)] {
        let mut ws = connect(server.addr).await?;
        ws.send(&ClientMsg::Join {
            v: wire::PROTOCOL_VERSION,
            room: room.clone(),
            name: name.into(),
            invite: None,
            consent: false,
        })
        .await?;
        ws.recv_until(|m| matches!(m, ServerMsg::Joined { .. }))
            .await?;
        ws.send(&ClientMsg::Offer {
            pc: PcRole::Publish,
            sdp: browser_offer(bundle),
        })
        .await?;
        let reply = ws
            .recv_until(|m| matches!(m, ServerMsg::Answer { .. } | ServerMsg::Error { .. }))
            .await?;
        let ServerMsg::Answer { sdp, .. } = reply else {
            anyhow::bail!("no answer: {reply:?}");
        };
        let all = sections(&sdp);
        assert_eq!(all.len(), 2, "{sdp}");
        if !bundle {
            assert!(all.iter().all(|s| port(s) == "0"), "rejected: {sdp}");
            continue;
        }
        check_bundled(&sdp);
        let (audio, video) = (&all[0], &all[1]);
        assert!(has(audio, "a=setup:passive") && has(video, "a=setup:passive"));
        assert_eq!(extmaps(audio), BTreeSet::from([("3", TWCC)]), "{sdp}");
        let video_extensions = BTreeSet::from([("3", TWCC), ("4", MID), ("10", RID), ("11", RRID)]);
        assert_eq!(extmaps(video), video_extensions, "{sdp}");
        assert!(has(audio, "a=rtcp-fb:111 transport-cc"), "{sdp}");
    }
    Ok(())
}

/// A publish offer like Chrome's: audio and video with their SSRCs declared and Chrome's
/// header extensions, in one BUNDLE group or, without `bundle`, in none.
fn browser_offer(bundle: bool) -> String {
    let fingerprint = ["AB"; 32].join(":");
    let transport = format!(
        "c=IN IP4 0.0.0.0\r\na=ice-ufrag:abcd\r\na=ice-pwd:abcdefghijklmnopqrstuvwx\r\n\
         a=fingerprint:sha-256 {fingerprint}\r\na=setup:actpass\r\na=rtcp-mux\r\n"
    );
    let group = if bundle { "a=group:BUNDLE 0 1\r\n" } else { "" };
    let extmap = |id: u8, uri: &str| format!("a=extmap:{id} {uri}\r\n");
    let audio_extensions = [
        extmap(1, "urn:ietf:params:rtp-hdrext:ssrc-audio-level"),
        extmap(
            2,
            "http://www.webrtc.org/experiments/rtp-hdrext/abs-send-time",
        ),
        extmap(3, TWCC),
        extmap(4, MID),
    ]
    .concat();
    let video_extensions = [
        extmap(14, "urn:ietf:params:rtp-hdrext:toffset"),
        extmap(
            2,
            "http://www.webrtc.org/experiments/rtp-hdrext/abs-send-time",
        ),
        extmap(13, "urn:3gpp:video-orientation"),
        extmap(3, TWCC),
        extmap(4, MID),
        extmap(10, RID),
        extmap(11, RRID),
    ]
    .concat();
    format!(
        "v=0\r\no=- 4611731400430051336 2 IN IP4 127.0.0.1\r\ns=-\r\nt=0 0\r\n{group}\
         a=msid-semantic: WMS s\r\n\
         m=audio 9 UDP/TLS/RTP/SAVPF 111 9\r\n{transport}a=mid:0\r\n{audio_extensions}\
         a=sendonly\r\na=msid:s a\r\n\
         a=rtpmap:111 opus/48000/2\r\na=rtcp-fb:111 transport-cc\r\n\
         a=fmtp:111 minptime=10;useinbandfec=1\r\na=rtpmap:9 G722/8000\r\n\
         a=ssrc:1001 cname:c\r\na=ssrc:1001 msid:s a\r\n\
         m=video 9 UDP/TLS/RTP/SAVPF 96 97\r\n{transport}a=mid:1\r\n{video_extensions}\
         a=sendonly\r\na=msid:s v\r\na=rtcp-rsize\r\n\
         a=rtpmap:96 VP8/90000\r\na=rtcp-fb:96 transport-cc\r\na=rtcp-fb:96 nack\r\n\
         a=rtcp-fb:96 nack pli\r\na=rtpmap:97 rtx/90000\r\na=fmtp:97 apt=96\r\n\
         a=ssrc-group:FID 2001 2002\r\na=ssrc:2001 cname:c\r\na=ssrc:2002 cname:c\r\n"
    )
}
