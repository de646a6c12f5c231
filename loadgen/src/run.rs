//! One run of a scenario against a running server: create the rooms, join everyone, wait until
//! everyone receives everyone, measure for the scenario's duration, and collect a report.

use std::net::SocketAddr;
use std::time::Duration;

use anyhow::Context;
use tokio::task::JoinSet;
use tokio::time::{Instant, MissedTickBehavior};

use crate::admin;
use crate::client::{Client, JoinOptions};
use crate::process::{self, Sample};
use crate::report::{Collected, Report, StreamId};
use crate::scenario::{Joins, Scenario};
use crate::stats::StreamStats;

/// The server under load.
#[derive(Debug, Clone)]
pub struct Target {
    /// Its HTTP and WebSocket address.
    pub addr: SocketAddr,
    /// Its admin token, to create rooms.
    pub admin_token: String,
    /// Its process, to read CPU and memory from `/proc` (same host only).
    pub server_pid: Option<u32>,
}

/// How a run behaves, apart from the scenario.
#[derive(Debug, Clone)]
pub struct RunOptions {
    /// Print a progress line to stderr every second.
    pub progress: bool,
    /// How long to wait for everyone to receive everyone before measuring anyway.
    pub join_timeout: Duration,
}

/// A joined participant.
struct Participant {
    room: usize,
    client: Client,
}

/// Run `scenario` against `target`.
pub async fn run(
    target: &Target,
    scenario: &Scenario,
    options: &RunOptions,
) -> anyhow::Result<Report> {
    let server_base = sample_server(target)?;
    let loadgen_base = process::sample(None)?;
    let rooms = create_rooms(target, scenario).await?;
    let (participants, failed_joins) = join_everyone(target.addr, scenario, &rooms).await;
    wait_for_media(&participants, options).await;
    let (join_ms, incomplete) = join_times(&participants);

    for p in &participants {
        p.client.media.start_window();
    }
    let sent_before: u64 = participants.iter().map(|p| p.client.sent_packets()).sum();
    let server_start = sample_server(target)?;
    let loadgen_start = process::sample(None)?;
    let started = Instant::now();
    measure(&participants, target, scenario, options).await;
    let window_s = started.elapsed().as_secs_f64();
    let server_end = sample_server(target)?;
    let loadgen_end = process::sample(None)?;
    let sent_after: u64 = participants.iter().map(|p| p.client.sent_packets()).sum();

    let collected = Collected {
        scenario: scenario.clone(),
        joined: participants.len(),
        failed_joins,
        incomplete,
        join_ms,
        publish_answer_ms: publish_answer_times(&participants),
        window_s,
        sent_packets: sent_after - sent_before,
        streams: collect_streams(&participants, &rooms),
        server: zip3(server_base, server_start, server_end),
        loadgen: [loadgen_base, loadgen_start, loadgen_end],
    };
    for p in participants {
        p.client.drop_connection().await;
    }
    Ok(collected.report())
}

async fn create_rooms(target: &Target, scenario: &Scenario) -> anyhow::Result<Vec<String>> {
    let mut rooms = Vec::with_capacity(scenario.rooms);
    for i in 0..scenario.rooms {
        let title = format!("loadgen {} {}", scenario.name, i + 1);
        let capacity = scenario.participants;
        let room = admin::create_room(target.addr, &target.admin_token, &title, capacity).await?;
        rooms.push(room);
    }
    Ok(rooms)
}

/// Every stream's statistics, named by room, receiver, publisher and kind.
fn collect_streams(participants: &[Participant], rooms: &[String]) -> Vec<(StreamId, StreamStats)> {
    let mut streams = Vec::new();
    for p in participants {
        for (publisher, kind, stats) in p.client.media.streams() {
            let id = StreamId {
                room: rooms[p.room].clone(),
                receiver: p.client.id.clone(),
                publisher,
                kind,
            };
            streams.push((id, stats));
        }
    }
    streams
}

/// Per participant, WebSocket open to publish answer, in ms.
fn publish_answer_times(participants: &[Participant]) -> Vec<f64> {
    let since_open = |p: &Participant, at: u64| (at - p.client.opened_at_ns) as f64 / 1e6;
    participants
        .iter()
        .filter_map(|p| p.client.answered_at_ns.map(|at| since_open(p, at)))
        .collect()
}

fn sample_server(target: &Target) -> anyhow::Result<Option<Sample>> {
    target
        .server_pid
        .map(|pid| process::sample(Some(pid)).with_context(|| format!("server pid {pid}")))
        .transpose()
}

fn zip3(a: Option<Sample>, b: Option<Sample>, c: Option<Sample>) -> Option<[Sample; 3]> {
    Some([a?, b?, c?])
}

/// Start every join as the scenario says; each joins, publishes, and stops keeping events.
/// Rooms fill in turn (one participant in each, then a second in each, ...).
async fn join_everyone(
    addr: SocketAddr,
    scenario: &Scenario,
    rooms: &[String],
) -> (Vec<Participant>, usize) {
    let mut joins = JoinSet::new();
    let mut gap = match scenario.joins {
        Joins::Staggered { gap_ms } => {
            Some(tokio::time::interval(Duration::from_millis(gap_ms.max(1))))
        }
        Joins::AllAtOnce => None,
    };
    for index in 0..scenario.participants {
        for (room, room_id) in rooms.iter().enumerate() {
            if let Some(gap) = gap.as_mut() {
                gap.tick().await;
            }
            let (room_id, plan) = (room_id.clone(), scenario.publish_plan(index));
            let name = format!("r{}p{}", room + 1, index + 1);
            joins.spawn(async move {
                let options = JoinOptions { packet_log: false };
                let mut client = Client::join_with(addr, &room_id, &name, options).await?;
                client.publish_plan(plan).await?;
                client.ignore_events();
                anyhow::Ok(Participant { room, client })
            });
        }
    }
    let mut participants = Vec::new();
    let mut failed = 0;
    while let Some(joined) = joins.join_next().await {
        match joined.map_err(anyhow::Error::from).and_then(|r| r) {
            Ok(p) => participants.push(p),
            Err(e) => {
                failed += 1;
                eprintln!("a join failed: {e:#}");
            }
        }
    }
    (participants, failed)
}

/// The publishers `r` should receive: everyone else in its room.
fn others<'a>(
    participants: &'a [Participant],
    r: &'a Participant,
) -> impl Iterator<Item = &'a Participant> {
    // Participant ids are unique only within a room.
    participants
        .iter()
        .filter(move |p| p.room == r.room && p.client.id != r.client.id)
}

/// (receiver, publisher) pairs in the same room.
fn pairs(participants: &[Participant]) -> impl Iterator<Item = (&Participant, &Participant)> {
    participants
        .iter()
        .flat_map(move |r| others(participants, r).map(move |p| (r, p)))
}

/// Wait, with progress, until every pair has media or the timeout passes.
async fn wait_for_media(participants: &[Participant], options: &RunOptions) {
    let deadline = Instant::now() + options.join_timeout;
    let mut tick = tokio::time::interval(Duration::from_millis(100));
    let mut next_line = Instant::now();
    loop {
        tick.tick().await;
        let total = pairs(participants).count();
        let done = pairs(participants)
            .filter(|(r, p)| r.client.media.first_media_ns(&p.client.id).is_some())
            .count();
        let now = Instant::now();
        if options.progress && (now >= next_line || done == total) {
            eprintln!(
                "joining: {} joined, media flowing on {done}/{total} pairs",
                participants.len()
            );
            next_line = now + Duration::from_secs(1);
        }
        if done == total || now >= deadline {
            return;
        }
    }
}

/// Per participant, the time from its WebSocket open (or the publisher's, if that came later)
/// to the first media from its last publisher; and how many never got media from everyone.
fn join_times(participants: &[Participant]) -> (Vec<f64>, usize) {
    let mut times = Vec::new();
    let mut incomplete = 0;
    for r in participants {
        let waits: Option<Vec<u64>> = others(participants, r)
            .map(|p| {
                let first = r.client.media.first_media_ns(&p.client.id)?;
                Some(first.saturating_sub(r.client.opened_at_ns.max(p.client.opened_at_ns)))
            })
            .collect();
        match waits {
            None => incomplete += 1,
            Some(w) if w.is_empty() => {}
            Some(w) => times.push(*w.iter().max().unwrap_or(&0) as f64 / 1e6),
        }
    }
    (times, incomplete)
}

/// The measurement window, with a progress line every second.
async fn measure(
    participants: &[Participant],
    target: &Target,
    scenario: &Scenario,
    options: &RunOptions,
) {
    let duration = Duration::from_secs_f64(scenario.duration_s.max(0.0));
    let end = Instant::now() + duration;
    let mut tick =
        tokio::time::interval(Duration::from_secs(1).min(duration.max(Duration::from_millis(10))));
    tick.set_missed_tick_behavior(MissedTickBehavior::Delay);
    tick.tick().await;
    let mut last = (
        Instant::now(),
        0u64,
        sample_server(target).ok().flatten(),
        process::sample(None).ok(),
    );
    let deadline = tokio::time::sleep_until(end);
    tokio::pin!(deadline);
    loop {
        tokio::select! {
            _ = tick.tick() => {}
            _ = &mut deadline => break,
        }
        if !options.progress {
            continue;
        }
        let (received, lost) = participants.iter().fold((0, 0), |(r, l), p| {
            let (pr, pl) = p.client.media.totals();
            (r + pr, l + pl)
        });
        let now = (
            Instant::now(),
            received,
            sample_server(target).ok().flatten(),
            process::sample(None).ok(),
        );
        let secs = now.0.duration_since(last.0).as_secs_f64().max(1e-3);
        let cpu = |a: Option<Sample>, b: Option<Sample>| match (a, b) {
            (Some(a), Some(b)) => format!(
                "{:.0}% CPU {:.0} MiB",
                100.0 * (b.cpu_s - a.cpu_s) / secs,
                b.rss_kib as f64 / 1024.0
            ),
            _ => "-".into(),
        };
        eprintln!(
            "[{:>3.0}/{:.0} s] {:.0} packets/s forwarded, {lost} lost | server {} | loadgen {}",
            duration
                .saturating_sub(end.saturating_duration_since(now.0))
                .as_secs_f64(),
            duration.as_secs_f64(),
            received.saturating_sub(last.1) as f64 / secs,
            cpu(last.2, now.2),
            cpu(last.3, now.3),
        );
        last = now;
    }
}
