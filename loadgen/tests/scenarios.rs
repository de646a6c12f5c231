//! Small scenarios against the real server, started in this process as the integration tests
//! start it. They assert counts — everyone received everyone, nothing lost, totals add up —
//! and never times: timings belong to BENCHMARKS.md, not to a test on 2 shared cores.

use std::time::Duration;

use roundtable::Server;
use roundtable::config::Config;
use roundtable_loadgen::report::{ClientKind, Report};
use roundtable_loadgen::run::{RunOptions, Sfu, Target, run};
use roundtable_loadgen::scenario::{Joins, Scenario, VideoProfile};
use signaling::wire::MediaKind;
use tokio::sync::oneshot;

const ADMIN_TOKEN: &str = "loadgen-test-token";

/// A server on a temporary SQLite, stopped when dropped.
struct TestServer {
    target: Target,
    _stop: oneshot::Sender<()>,
    _dir: tempfile::TempDir,
}

async fn start_server() -> anyhow::Result<TestServer> {
    let dir = tempfile::tempdir()?;
    let mut config = Config::for_tests(format!("sqlite:{}", dir.path().join("rt.db").display()));
    config.admin_token = Some(ADMIN_TOKEN.into());
    let server = Server::bind(&config).await?;
    let addr = server.started.addr;
    let (stop, stopped) = oneshot::channel::<()>();
    tokio::spawn(server.run(async {
        let _ = stopped.await;
    }));
    // The server shares this process, so its CPU and memory readings include the generator's;
    // reading them still exercises the /proc path end to end.
    let target = Target {
        sfu: Sfu::Roundtable {
            addr,
            admin_token: ADMIN_TOKEN.into(),
        },
        server_pid: Some(std::process::id()),
    };
    Ok(TestServer {
        target,
        _stop: stop,
        _dir: dir,
    })
}

/// A two-second scenario with light video, so two of them fit on 2 shared cores at once.
fn small(rooms: usize, participants: usize, video: usize, joins: Joins) -> Scenario {
    Scenario {
        joins,
        duration_s: 2.0,
        video: VideoProfile {
            bitrate_bps: 300_000,
            ..VideoProfile::VP8_1200K
        },
        ..Scenario::new("small", rooms, participants, video)
    }
}

async fn run_small(scenario: &Scenario, client: ClientKind) -> anyhow::Result<Report> {
    let server = start_server().await?;
    let options = RunOptions {
        progress: false,
        join_timeout: Duration::from_secs(30),
        client,
        record: false,
    };
    run(&server.target, scenario, &options).await
}

/// Everyone joined and received every other publisher; nothing was lost; the totals are the
/// sums of the streams; the JSON says the same as the report.
fn check_counts(report: &Report, streams: usize) -> anyhow::Result<()> {
    let s = &report.scenario;
    assert_eq!(report.joined, s.total_participants());
    assert_eq!((report.failed_joins, report.incomplete), (0, 0));
    assert_eq!(report.streams.len(), streams, "{:#?}", report.streams);
    for stream in &report.streams {
        assert!(
            stream.counts.received > 0,
            "nothing in the window: {stream:?}"
        );
        assert_eq!(stream.counts.lost, 0, "{stream:?}");
    }
    let sum = |f: fn(&roundtable_loadgen::report::Counts) -> u64| -> u64 {
        report.streams.iter().map(|s| f(&s.counts)).sum()
    };
    assert_eq!(report.totals.received, sum(|c| c.received));
    assert_eq!(report.totals.expected, sum(|c| c.expected));
    assert_eq!(report.totals.lost, sum(|c| c.lost));
    assert_eq!(report.totals.duplicates, sum(|c| c.duplicates));
    assert_eq!(report.totals.too_late, sum(|c| c.too_late));
    // Every participant has a join time and a signaling time; every packet has a latency.
    let joins = report.join_ms.map(|p| p.count);
    assert_eq!(joins, Some(report.joined as u64));
    assert_eq!(report.publish_answer_ms.map(|p| p.count), joins);
    // A newcomer's wait: everyone but the first in each room had someone before it.
    let newcomers = report.join_present_ms.map(|p| p.count);
    assert_eq!(newcomers, Some((report.joined - s.rooms) as u64));
    let latencies = report.latency_ms.map(|p| p.count);
    assert_eq!(latencies, Some(report.totals.received));
    assert!(report.server.is_some());
    // The server's own measure of what it added: present, and over packets it forwarded.
    let delay = report
        .server_delay_ms
        .expect("the server's forwarding delay");
    assert!(delay.count > 0, "{delay:?}");
    assert!(delay.p50 <= delay.p99 && delay.p99 <= delay.p999 && delay.p999 <= delay.max);
    assert!(report.sent_packets > 0);
    let json = serde_json::to_string(report)?;
    assert_eq!(&serde_json::from_str::<Report>(&json)?, report);
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn one_room_of_three_with_video_receives_everything() -> anyhow::Result<()> {
    let scenario = small(1, 3, 3, Joins::Staggered { gap_ms: 100 });
    for client in [ClientKind::Webrtc, ClientKind::Sansio] {
        let report = run_small(&scenario, client).await?;
        assert_eq!(report.client, client);
        // Each of 3 receives audio and video from 2 others.
        check_counts(&report, 3 * 2 * 2)?;
    }
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn two_rooms_of_two_joining_at_once_stay_apart() -> anyhow::Result<()> {
    for client in [ClientKind::Webrtc, ClientKind::Sansio] {
        two_rooms_of_two(client).await?;
    }
    Ok(())
}

async fn two_rooms_of_two(client: ClientKind) -> anyhow::Result<()> {
    let report = run_small(&small(2, 2, 1, Joins::AllAtOnce), client).await?;
    // Per room: the video publisher gets the other's audio; the other gets audio and video.
    check_counts(&report, 2 * 3)?;
    let mut audio_streams = std::collections::BTreeMap::new();
    for s in report
        .streams
        .iter()
        .filter(|s| s.id.kind == MediaKind::Audio)
    {
        *audio_streams
            .entry((&s.id.room, &s.id.receiver))
            .or_insert(0) += 1;
    }
    // Four receivers, each hearing only its room-mate: a second publisher would be a leak.
    assert_eq!(audio_streams.len(), 4, "{audio_streams:?}");
    assert!(audio_streams.values().all(|n| *n == 1), "{audio_streams:?}");
    Ok(())
}
