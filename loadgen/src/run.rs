//! One run of a scenario against a running server: create the rooms, join everyone, wait until
//! everyone receives everyone, measure for the scenario's duration, and collect a report.

use std::net::{IpAddr, SocketAddr};
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use anyhow::Context;
use roundtable_peer::PeerNet;
use signaling::stats::DelaySnapshot;
use tokio::task::JoinSet;
use tokio::time::{Instant, MissedTickBehavior};

use crate::admin;
use crate::client::{Client, JoinOptions, MediaLog};
use crate::janus;
use crate::process::{self, Sample};
use crate::report::{ClientKind, Collected, Report, StreamId};
use crate::sansio::SansioClient;
use crate::scenario::{Joins, Scenario};
use crate::stats::StreamStats;

/// The server under load.
#[derive(Debug, Clone)]
pub struct Target {
    /// Which SFU, and how to reach it.
    pub sfu: Sfu,
    /// Its process, to read CPU and memory from `/proc` (same host only).
    pub server_pid: Option<u32>,
}

/// The SFUs the generator can load.
#[derive(Debug, Clone)]
pub enum Sfu {
    /// Ours, over our protocol; media on loopback.
    Roundtable {
        /// Its HTTP and WebSocket address.
        addr: SocketAddr,
        /// Its admin token, to create rooms.
        admin_token: String,
    },
    /// Janus's videoroom plugin, through [`crate::janus`].
    Janus {
        /// Its WebSocket API, e.g. `ws://10.77.0.1:8188`.
        url: String,
        /// The address our peers bind and advertise (one Janus can reach).
        media_ip: IpAddr,
    },
}

/// How a run behaves, apart from the scenario.
#[derive(Debug, Clone)]
pub struct RunOptions {
    /// Print a progress line to stderr every second.
    pub progress: bool,
    /// How long to wait for everyone to receive everyone before measuring anyway.
    pub join_timeout: Duration,
    /// The client the participants run on.
    pub client: ClientKind,
    /// Record: everyone consents, and each room's first participant joins as its
    /// facilitator and starts recording (our server, the webrtc client only).
    pub record: bool,
}

/// A joined participant, whichever the SFU.
struct Participant {
    room: usize,
    /// Its publisher id, as receivers' statistics name it.
    id: String,
    media: Arc<MediaLog>,
    opened_at_ns: u64,
    answered_at_ns: Option<u64>,
    sent: Arc<AtomicU64>,
    connection: Connection,
}

enum Connection {
    /// Boxed: a client keeps its whole `joined` message.
    Roundtable(Box<Client>),
    Sansio(SansioClient),
    Janus(janus::Participant),
}

/// A [`Participant`] in `$room` from any client kind: each has the same public `id`, `media`,
/// `opened_at_ns`, `answered_at_ns` and `sent`, read before it moves into
/// `Connection::$kind`.
macro_rules! participant {
    ($room:expr, $kind:ident($client:expr)) => {{
        let c = $client;
        Participant {
            room: $room,
            id: c.id.clone(),
            media: c.media.clone(),
            opened_at_ns: c.opened_at_ns,
            answered_at_ns: c.answered_at_ns,
            sent: c.sent.clone(),
            connection: Connection::$kind(c),
        }
    }};
}

impl Participant {
    fn sent_packets(&self) -> u64 {
        self.sent.load(Ordering::Relaxed)
    }

    async fn drop_connection(self) {
        match self.connection {
            Connection::Roundtable(c) => c.drop_connection().await,
            Connection::Sansio(c) => {
                if let Err(e) = c.drop_connection().await {
                    eprintln!("a participant stopped early: {e:#}");
                }
            }
            Connection::Janus(p) => p.drop_connection().await,
        }
    }
}

/// Run `scenario` against `target`.
pub async fn run(
    target: &Target,
    scenario: &Scenario,
    options: &RunOptions,
) -> anyhow::Result<Report> {
    let server_base = sample_server(target)?;
    let loadgen_base = process::sample(None)?;
    let (rooms, facilitators) = create_rooms(target, scenario).await?;
    let delay_joining = server_delay(target).await;
    let (participants, failed_joins) =
        join_everyone(&target.sfu, options, scenario, &rooms, &facilitators).await;
    wait_for_media(&participants, options).await;
    let JoinTimes {
        all: join_ms,
        present: join_present_ms,
        incomplete,
    } = join_times(&participants);

    for p in &participants {
        p.media.start_window();
    }
    let sent_before: u64 = participants.iter().map(|p| p.sent_packets()).sum();
    let server_start = sample_server(target)?;
    let loadgen_start = process::sample(None)?;
    let delay_start = server_delay(target).await;
    let started = Instant::now();
    measure(&participants, target, scenario, options).await;
    let window_s = started.elapsed().as_secs_f64();
    let server_end = sample_server(target)?;
    let loadgen_end = process::sample(None)?;
    let delay_end = server_delay(target).await;
    let since = |start: &Option<DelaySnapshot>, end: &Option<DelaySnapshot>| {
        start
            .as_ref()
            .zip(end.as_ref())
            .map(|(start, end)| end.since(start))
    };
    let server_delay = since(&delay_start, &delay_end);
    let server_delay_joining = since(&delay_joining, &delay_start);
    let sent_after: u64 = participants.iter().map(|p| p.sent_packets()).sum();

    let collected = Collected {
        scenario: scenario.clone(),
        joined: participants.len(),
        failed_joins,
        incomplete,
        join_ms,
        join_present_ms,
        publish_answer_ms: publish_answer_times(&participants),
        window_s,
        sent_packets: sent_after - sent_before,
        streams: collect_streams(&participants, &rooms),
        server_delay,
        server_delay_joining,
        server: zip3(server_base, server_start, server_end),
        loadgen: [loadgen_base, loadgen_start, loadgen_end],
        client: options.client,
        record: options.record,
    };
    for p in participants {
        p.drop_connection().await;
    }
    Ok(collected.report())
}

/// The rooms' ids, and their facilitators' invite secrets (ours only).
async fn create_rooms(
    target: &Target,
    scenario: &Scenario,
) -> anyhow::Result<(Vec<String>, Vec<Option<String>>)> {
    let capacity = scenario.participants;
    match &target.sfu {
        Sfu::Roundtable { addr, admin_token } => {
            let (mut rooms, mut facilitators) = (Vec::new(), Vec::new());
            for i in 0..scenario.rooms {
                let title = format!("loadgen {} {}", scenario.name, i + 1);
                let room = admin::create_room(*addr, admin_token, &title, capacity).await?;
                rooms.push(room.id);
                facilitators.push(room.facilitator);
            }
            Ok((rooms, facilitators))
        }
        Sfu::Janus { url, .. } => {
            let rooms = janus::create_rooms(url, &scenario.name, scenario.rooms, capacity).await?;
            let ids: Vec<String> = rooms.iter().map(u64::to_string).collect();
            Ok((ids.clone(), vec![None; ids.len()]))
        }
    }
}

/// Every stream's statistics, named by room, receiver, publisher and kind.
fn collect_streams(participants: &[Participant], rooms: &[String]) -> Vec<(StreamId, StreamStats)> {
    let mut streams = Vec::new();
    for p in participants {
        for (publisher, kind, stats) in p.media.streams() {
            let id = StreamId {
                room: rooms[p.room].clone(),
                receiver: p.id.clone(),
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
    let since_open = |p: &Participant, at: u64| (at - p.opened_at_ns) as f64 / 1e6;
    participants
        .iter()
        .filter_map(|p| p.answered_at_ns.map(|at| since_open(p, at)))
        .collect()
}

/// The server's forwarding delays so far, if it is ours and measures them. A failure is
/// reported and leaves the figure out; it does not fail the run.
async fn server_delay(target: &Target) -> Option<DelaySnapshot> {
    let Sfu::Roundtable { addr, admin_token } = &target.sfu else {
        return None;
    };
    match admin::forward_delay(*addr, admin_token).await {
        Ok(delay) => delay,
        Err(e) => {
            eprintln!("server forwarding delay not read: {e:#}");
            None
        }
    }
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
    sfu: &Sfu,
    options: &RunOptions,
    scenario: &Scenario,
    rooms: &[String],
    facilitators: &[Option<String>],
) -> (Vec<Participant>, usize) {
    let (client, record) = (options.client, options.record);
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
            // With `record`, each room's first participant is its facilitator.
            let invite = facilitators[room].clone().filter(|_| record && index == 0);
            let name = format!("r{}p{}", room + 1, index + 1);
            let sfu = sfu.clone();
            joins.spawn(async move {
                match sfu {
                    Sfu::Roundtable { addr, .. } if client == ClientKind::Sansio => {
                        let c = SansioClient::join(addr, &room_id, &name, plan).await?;
                        anyhow::Ok(participant!(room, Sansio(c)))
                    }
                    Sfu::Roundtable { addr, .. } => {
                        let options = JoinOptions {
                            consent: record,
                            ..JoinOptions::default()
                        };
                        let mut client =
                            Client::join_full(addr, &room_id, &name, invite.as_deref(), options)
                                .await?;
                        client.publish_plan(plan).await?;
                        if invite.is_some() {
                            client.send(signaling::wire::ClientMsg::Recording {
                                on: true,
                                presentation_only: false,
                            });
                        }
                        client.ignore_events();
                        anyhow::Ok(participant!(room, Roundtable(Box::new(client))))
                    }
                    Sfu::Janus { url, media_ip } => {
                        let room_id: u64 = room_id.parse()?;
                        let net = PeerNet {
                            bind_ip: media_ip,
                            ..PeerNet::loopback()
                        };
                        let p = janus::Participant::join(&url, room_id, &name, plan, &net).await?;
                        anyhow::Ok(participant!(room, Janus(p)))
                    }
                }
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
        .filter(move |p| p.room == r.room && p.id != r.id)
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
            .filter(|(r, p)| r.media.first_media_ns(&p.id).is_some())
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

/// Join times in ms, one per participant that got media from everyone.
struct JoinTimes {
    /// From its WebSocket open (or the publisher's, if that came later) to the first media
    /// from its last publisher.
    all: Vec<f64>,
    /// From its WebSocket open to the first media from the last of the publishers that
    /// opened theirs before it (participants with none are left out).
    present: Vec<f64>,
    /// Participants that never got media from everyone.
    incomplete: usize,
}

fn join_times(participants: &[Participant]) -> JoinTimes {
    let mut times = JoinTimes {
        all: Vec::new(),
        present: Vec::new(),
        incomplete: 0,
    };
    for r in participants {
        // (wait, whether the publisher was there first) per publisher.
        let waits: Option<Vec<(u64, bool)>> = others(participants, r)
            .map(|p| {
                let first = r.media.first_media_ns(&p.id)?;
                let wait = first.saturating_sub(r.opened_at_ns.max(p.opened_at_ns));
                Some((wait, p.opened_at_ns < r.opened_at_ns))
            })
            .collect();
        let Some(waits) = waits else {
            times.incomplete += 1;
            continue;
        };
        let ms = |ns: u64| ns as f64 / 1e6;
        if let Some(all) = waits.iter().map(|w| w.0).max() {
            times.all.push(ms(all));
        }
        if let Some(present) = waits.iter().filter(|w| w.1).map(|w| w.0).max() {
            times.present.push(ms(present));
        }
    }
    times
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
            let (pr, pl) = p.media.totals();
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
