//! Recording with real Opus: three speakers send tones of 440, 660 and 880 Hz; the first and
//! third consent, the second does not. The files are decoded with `opus`, and the mixdown is
//! checked by its spectrum: it holds 440 and 880 Hz and nothing above the noise at 660 Hz.
//! A withdrawal's file lasts, decoded, as long as the consent did.

use std::path::Path;
use std::sync::Arc;
use std::time::Duration;

use opus::{Application, Channels, Decoder, Encoder};
use roundtable_loadgen::client::{Client, JoinOptions, PublishPlan, TrackPlan};
use signaling::roles::Role;
use signaling::wire::{ClientMsg, MediaKind};

use crate::common::TestServer;
use crate::record::{
    files_under, hear_more, heard, holds, recording, speaker_files, start_recording, stop_recording,
};

/// Opus's clock.
const RATE: usize = 48_000;
/// One 20 ms frame.
const FRAME: usize = 960;
/// Packets of slack at each edge of an interval (20 ms each).
const EDGE: i64 = 5;

/// One second of a tone as 50 Opus packets: sent in a loop, it plays on without a break
/// (each tone is a whole number of periods in a second).
pub(crate) fn tone(hz: f32) -> Arc<Vec<Vec<u8>>> {
    let mut encoder = Encoder::new(RATE as u32, Channels::Mono, Application::Audio).unwrap();
    let mut out = vec![0u8; 4000];
    let packets = (0..50)
        .map(|f| {
            let pcm: Vec<f32> = (0..FRAME)
                .map(|i| {
                    let t = (f * FRAME + i) as f32 / RATE as f32;
                    0.25 * (2.0 * std::f32::consts::PI * hz * t).sin()
                })
                .collect();
            let n = encoder.encode_float(&pcm, &mut out).unwrap();
            out[..n].to_vec()
        })
        .collect();
    Arc::new(packets)
}

/// Publish a tone as this client's microphone, for 30 s at most.
pub(crate) async fn sing(client: &mut Client, set: u32, hz: f32) -> anyhow::Result<()> {
    let plan = PublishPlan {
        audio: Some(TrackPlan {
            period: Duration::from_millis(20),
            min_bytes: 80,
            max_bytes: 80,
            keyframes: None,
            packets: Some(1500),
            vp8_framing: false,
        }),
        video: None,
        set,
        audio_payloads: Some(tone(hz)),
        ..PublishPlan::default()
    };
    client.publish_plan(plan).await
}

/// Decode an Ogg Opus file to mono samples.
pub(crate) fn decode(path: &Path) -> Vec<f32> {
    let mut reader = ogg::reading::PacketReader::new(std::fs::File::open(path).unwrap());
    let head = reader.read_packet_expected().unwrap();
    assert_eq!(&head.data[..8], b"OpusHead", "{}", path.display());
    reader.read_packet_expected().unwrap();
    let mut decoder = Decoder::new(RATE as u32, Channels::Mono).unwrap();
    let mut pcm = Vec::new();
    let mut buf = vec![0f32; 5760];
    while let Some(packet) = reader.read_packet().unwrap() {
        let n = decoder.decode_float(&packet.data, &mut buf, false).unwrap();
        pcm.extend_from_slice(&buf[..n]);
    }
    pcm
}

/// The power of `pcm` at `hz`: one bin of a discrete Fourier transform over all of it.
pub(crate) fn power_at(pcm: &[f32], hz: f32) -> f64 {
    let w = 2.0 * std::f64::consts::PI * f64::from(hz) / RATE as f64;
    let (mut re, mut im) = (0.0f64, 0.0f64);
    for (i, s) in pcm.iter().enumerate() {
        let (sin, cos) = (w * i as f64).sin_cos();
        re += f64::from(*s) * cos;
        im += f64::from(*s) * sin;
    }
    (re * re + im * im) / pcm.len() as f64
}

/// The noise floor near the tones: the most power at frequencies nobody sent.
pub(crate) fn noise_floor(pcm: &[f32]) -> f64 {
    [550.0, 610.0, 710.0, 770.0]
        .into_iter()
        .map(|hz| power_at(pcm, hz))
        .fold(0.0, f64::max)
}

/// A room where Ann (a facilitator, 440 Hz) and Cy (880 Hz) have joined, both consenting,
/// and sing.
async fn ann_and_cy(title: &str) -> anyhow::Result<(TestServer, String, Client, Client)> {
    let server = TestServer::sqlite().await?;
    let room_id = server.room(title, 6).await?;
    let (ann_secret, _) = server.invite(&room_id, Role::Facilitator, |_| {}).await?;
    let consenting = JoinOptions {
        packet_log: true,
        consent: true,
    };
    let mut ann =
        Client::join_full(server.addr, &room_id, "Ann", Some(&ann_secret), consenting).await?;
    let mut cy = Client::join_full(server.addr, &room_id, "Cy", None, consenting).await?;
    sing(&mut ann, 0, 440.0).await?;
    sing(&mut cy, 2, 880.0).await?;
    Ok((server, room_id, ann, cy))
}

/// Ann (440 Hz, a facilitator) and Cy (880 Hz) consent; Pat (660 Hz) does not. Cy withdraws
/// after about two seconds. Only Ann and Cy have files; Cy's lasts as long as her consent;
/// the mixdown holds 440 and 880 Hz and not 660 Hz; no file holds Pat's SSRC or a packet of
/// hers.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_mixdown_holds_only_consenting_voices() -> anyhow::Result<()> {
    let (mut server, room_id, mut ann, cy) = ann_and_cy("Tones").await?;
    let mut pat = Client::join(server.addr, &room_id, "Pat").await?;
    let (ann_id, pat_id, cy_id) = (ann.id.clone(), pat.id.clone(), cy.id.clone());
    sing(&mut pat, 1, 660.0).await?;
    // Pat hears Ann; Ann hears Pat and Cy.
    for who in [&pat_id, &cy_id] {
        hear_more(&ann, who, 20).await?;
    }
    hear_more(&pat, &ann_id, 20).await?;

    let session = start_recording(&mut ann, &[ann_id.clone(), cy_id.clone()]).await?;
    let cy_from = heard(&ann, &cy_id).len() as i64;

    hear_more(&ann, &cy_id, 100).await?;
    cy.send(ClientMsg::Consent { granted: false });
    recording(&mut ann, |r| r.recorded == [ann_id.clone()]).await?;
    let cy_until = heard(&ann, &cy_id).len() as i64;

    hear_more(&pat, &ann_id, 50).await?;
    stop_recording(&mut ann).await?;
    hear_more(&ann, &pat_id, 10).await?;

    let dir = server.state.recorder().dir().to_path_buf();
    server.stop().await?;
    let all = files_under(&dir);
    let files = speaker_files(&dir, &all);
    let owners: Vec<String> = files
        .iter()
        .map(|f| {
            f.parent()
                .unwrap()
                .file_name()
                .unwrap()
                .to_string_lossy()
                .into()
        })
        .collect();
    let mut want = vec![ann_id.clone(), cy_id.clone()];
    want.sort();
    let mut got = owners.clone();
    got.sort();
    assert_eq!(got, want, "only Ann and Cy have files: {files:?}");

    // Cy's file, decoded, lasts as long as her consent.
    let cy_file = &files[owners.iter().position(|o| *o == cy_id).unwrap()];
    let cy_ms = decode(cy_file).len() as i64 * 1000 / RATE as i64;
    let consented_ms = (cy_until - cy_from) * 20;
    assert!(
        (cy_ms - consented_ms).abs() <= 2 * EDGE * 20,
        "Cy's file lasts {cy_ms} ms; she consented for {consented_ms} ms"
    );

    // The mixdown: Ann and Cy, not Pat.
    let mix = decode(&dir.join(&session).join("mixdown.opus"));
    assert!(mix.len() > 2 * RATE, "{} samples", mix.len());
    let noise = noise_floor(&mix);
    let (p440, p660, p880) = (
        power_at(&mix, 440.0),
        power_at(&mix, 660.0),
        power_at(&mix, 880.0),
    );
    assert!(p440 > 1000.0 * noise, "440 Hz: {p440}, noise {noise}");
    assert!(p880 > 1000.0 * noise, "880 Hz: {p880}, noise {noise}");
    assert!(p660 < 10.0 * noise, "660 Hz: {p660}, noise {noise}");
    // The same check finds Pat's tone where it is: in what Ann received.
    let ann_file = &files[owners.iter().position(|o| *o == ann_id).unwrap()];
    let ann_pcm = decode(ann_file);
    assert!(power_at(&ann_pcm, 440.0) > 1000.0 * noise_floor(&ann_pcm));

    // No file holds Pat's SSRC or one of her packets.
    let pat_ssrc: u32 = 0x1000_0001 + 16;
    let pat_packets = tone(660.0);
    assert!(
        ann.media.from(&pat_id, MediaKind::Audio).len() > 100,
        "Pat spoke"
    );
    for file in &all {
        let bytes = std::fs::read(file)?;
        for needle in [pat_ssrc.to_be_bytes(), pat_ssrc.to_le_bytes()] {
            assert!(!holds(&bytes, &needle), "Pat's SSRC in {}", file.display());
        }
        for packet in pat_packets.iter() {
            assert!(!holds(&bytes, packet), "Pat's packet in {}", file.display());
        }
    }
    // The same search finds Ann's packets in her file.
    let ann_bytes = std::fs::read(ann_file)?;
    assert!(tone(440.0).iter().any(|p| holds(&ann_bytes, p)));
    Ok(())
}

/// Ann (440 Hz) and Cy (880 Hz) both consent and are recorded. After the session, an admin
/// purges Cy: her files go, and the mixdown, made again, holds 440 Hz and not 880 Hz.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_purged_speaker_leaves_the_mixdown() -> anyhow::Result<()> {
    use crate::http_api::{admin, call};
    let (mut server, _, mut ann, cy) = ann_and_cy("Purge").await?;
    let (ann_id, cy_id) = (ann.id.clone(), cy.id.clone());
    hear_more(&ann, &cy_id, 20).await?;
    hear_more(&cy, &ann_id, 20).await?;

    let session = start_recording(&mut ann, &[ann_id.clone(), cy_id.clone()]).await?;
    hear_more(&ann, &cy_id, 75).await?;
    hear_more(&cy, &ann_id, 75).await?;
    stop_recording(&mut ann).await?;
    // Stopping the server waits for the room's writer: the session's end is stored and its
    // mixdown made. The admin API answers from the same state.
    server.stop().await?;

    let dir = server.state.recorder().dir().join(&session);
    let rebuild = format!("/api/admin/recordings/{session}/mixdown");
    let (status, body) = call(&server, admin("POST", &rebuild, None)).await?;
    assert_eq!(status, axum::http::StatusCode::OK, "{body}");
    let before = decode(&dir.join("mixdown.opus"));
    let noise = noise_floor(&before);
    assert!(
        power_at(&before, 440.0) > 1000.0 * noise,
        "Ann is in the mixdown"
    );
    assert!(
        power_at(&before, 880.0) > 1000.0 * noise,
        "so is Cy, before the purge"
    );

    let purge = format!("/api/admin/recordings/{session}/speakers/{cy_id}");
    let (status, body) = call(&server, admin("DELETE", &purge, None)).await?;
    assert_eq!(status, axum::http::StatusCode::OK, "{body}");
    assert!(!dir.join(&cy_id).exists(), "Cy's files are gone");
    let after = decode(&dir.join("mixdown.opus"));
    let noise = noise_floor(&after);
    let (p440, p880) = (power_at(&after, 440.0), power_at(&after, 880.0));
    assert!(p440 > 1000.0 * noise, "Ann stays: {p440}, noise {noise}");
    assert!(p880 < 10.0 * noise, "Cy is gone: {p880}, noise {noise}");
    Ok(())
}
