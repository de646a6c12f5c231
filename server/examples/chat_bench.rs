//! Chat throughput and acknowledgement latency, on a real store. Not a test: run it by hand.
//!
//! `--clients` participants in one room each send chat as fast as it is acknowledged: the
//! next message once the echo of the last is in. The room's chat limit is lifted; the
//! connection's message rate is not, so each client sends at most [`PER_CLIENT`] (within its
//! burst). Then the store alone commits the same kind of messages one per transaction and in
//! batches, to show what grouping saves.
//!
//! ```sh
//! cargo run -p roundtable --example chat_bench -- --clients 8 --messages 1520
//! cargo run -p roundtable --example chat_bench -- --database postgres://...
//! ```

use std::net::SocketAddr;
use std::time::{Duration, Instant};

use anyhow::bail;
use clap::Parser;
use futures_util::future::try_join_all;
use hdrhistogram::Histogram;
use roundtable::config::Config;
use roundtable::store::Store;
use roundtable::{Server, new_room};
use roundtable_loadgen::client::join;
use signaling::wire::{ChatMessage, ClientMsg, ServerMsg};

/// Messages one client may send at full speed: the connection's burst (200), less the join.
const PER_CLIENT: usize = 190;

#[derive(Debug, Parser)]
struct Args {
    /// Participants sending at once, in one room.
    #[arg(long, default_value_t = 8)]
    clients: usize,
    /// Messages in all; at most 190 per client.
    #[arg(long, default_value_t = 1520)]
    messages: usize,
    /// Characters per message.
    #[arg(long, default_value_t = 100)]
    chars: usize,
    /// Database URL [default: a fresh SQLite file in a temporary directory].
    #[arg(long)]
    database: Option<String>,
    /// Messages per batch in the store-alone part.
    #[arg(long, default_value_t = 64)]
    batch: usize,
}

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let args = Args::parse();
    let each = args.messages / args.clients.max(1);
    if each > PER_CLIENT {
        bail!("at most {PER_CLIENT} messages per client (its connection's burst); add clients");
    }
    let dir = tempfile::tempdir()?;
    let url = args
        .database
        .clone()
        .unwrap_or_else(|| format!("sqlite:{}", dir.path().join("rt.db").display()));
    let mut config = Config::for_tests(url.clone());
    config.admin_token = Some("bench".into());
    config.chat_burst = usize::MAX; // measure the store, not the rate limit
    let server = Server::bind(&config).await?;
    let addr = server.started.addr;
    let store = server.state().store().clone();
    let room = new_room("Bench".into(), args.clients as u32);
    store.create_room(&room).await?;
    tokio::spawn(server.run(std::future::pending()));
    println!(
        "{} clients, {} messages of {} chars, {url}",
        args.clients,
        each * args.clients,
        args.chars
    );

    let start = Instant::now();
    let sends = (0..args.clients).map(|i| client(addr, &room.id, i, each, args.chars));
    let latencies: Vec<Duration> = try_join_all(sends).await?.concat();
    let elapsed = start.elapsed();
    let mut hist = Histogram::<u64>::new(3)?;
    for l in &latencies {
        hist.record(l.as_micros() as u64)?;
    }
    println!(
        "through the server: {} acknowledged in {:.2} s, {:.0} msg/s; \
         ack latency p50 {:.2} ms, p99 {:.2} ms, max {:.2} ms",
        latencies.len(),
        elapsed.as_secs_f64(),
        latencies.len() as f64 / elapsed.as_secs_f64(),
        hist.value_at_quantile(0.5) as f64 / 1000.0,
        hist.value_at_quantile(0.99) as f64 / 1000.0,
        hist.max() as f64 / 1000.0,
    );
    store_alone(store.as_ref(), args.chars, args.batch).await
}

/// One participant: join, then send `n` messages, each once the last is acknowledged.
/// Returns each message's time from send to echo.
async fn client(
    addr: SocketAddr,
    room: &str,
    i: usize,
    n: usize,
    chars: usize,
) -> anyhow::Result<Vec<Duration>> {
    let (mut ws, you, _) = join(addr, room, &format!("Sender {i}")).await?;
    let text = "x".repeat(chars);
    let mut latencies = Vec::with_capacity(n);
    for _ in 0..n {
        let sent = Instant::now();
        ws.send(&ClientMsg::Chat { text: text.clone() }).await?;
        let answer = ws
            .recv_until(|m| match m {
                ServerMsg::Chat { message } => message.from == you,
                ServerMsg::Error { .. } => true,
                _ => false,
            })
            .await?;
        if let ServerMsg::Error { code, message } = answer {
            bail!("chat refused: {code:?} {message}");
        }
        latencies.push(sent.elapsed());
    }
    Ok(latencies)
}

/// The store alone, in a room of its own: one transaction per message, then batches.
async fn store_alone(store: &dyn Store, chars: usize, batch: usize) -> anyhow::Result<()> {
    let room = new_room("Store".into(), 1);
    store.create_room(&room).await?;
    let message = |seq| ChatMessage {
        seq,
        from: "p1".into(),
        name: "Sender".into(),
        text: "x".repeat(chars),
        ts: seq,
    };
    let singles = 500;
    let start = Instant::now();
    for seq in 1..=singles {
        store.append_chat(&room.id, &message(seq)).await?;
    }
    report("one transaction per message", singles, start.elapsed());
    let batches = 100;
    let start = Instant::now();
    for b in 0..batches {
        let first = singles + 1 + b * batch as i64;
        let msgs: Vec<_> = (first..first + batch as i64).map(message).collect();
        store.append_chat_batch(&room.id, &msgs).await?;
    }
    let what = format!("batches of {batch}");
    report(&what, batches * batch as i64, start.elapsed());
    Ok(())
}

fn report(what: &str, n: i64, took: Duration) {
    println!(
        "store alone, {what}: {n} in {:.2} s, {:.0} msg/s",
        took.as_secs_f64(),
        n as f64 / took.as_secs_f64()
    );
}
