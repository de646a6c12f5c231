//! `roundtable-flood`: one address floods the server while clients from another address
//! measure their chat and ping round trips (issue 20, "Fairness"). Run `flood` and `measure`
//! as two processes, so that the flood's own CPU is not the measurer's; see BENCHMARKS.md.

use std::net::{IpAddr, SocketAddr};
use std::time::{Duration, Instant};

use anyhow::Context;
use clap::{Parser, Subcommand, ValueEnum};
use futures_util::{SinkExt, StreamExt};
use roundtable_loadgen::admin;
use signaling::wire::{self, ClientMsg, ServerMsg};
use tokio::net::{TcpSocket, TcpStream};
use tokio_tungstenite::WebSocketStream;
use tokio_tungstenite::tungstenite::Message;

#[derive(Parser)]
#[command(name = "roundtable-flood")]
struct Cli {
    /// The server's base URL.
    #[arg(long, default_value = "http://127.0.0.1:8080", global = true)]
    server: String,
    #[command(subcommand)]
    command: Cmd,
}

#[derive(Subcommand)]
enum Cmd {
    /// Create a room for the run and print its id.
    Room {
        #[arg(long, env = "ROUNDTABLE_ADMIN_TOKEN")]
        admin_token: String,
    },
    /// Flood from one address until killed.
    Flood {
        #[arg(long)]
        room: String,
        /// chat: joined connections send chat; ping: connections that never join send pings.
        #[arg(long, value_enum)]
        kind: Kind,
        #[arg(long, default_value_t = 50)]
        connections: usize,
        /// The address the flood comes from.
        #[arg(long, default_value = "127.0.0.2")]
        from: IpAddr,
        /// Messages per second per connection; 0: as fast as the socket takes them.
        #[arg(long, default_value_t = 0)]
        rate: u64,
    },
    /// Join clients from another address and report their round trips.
    Measure {
        #[arg(long)]
        room: String,
        #[arg(long, default_value = "127.0.0.3")]
        from: IpAddr,
        /// Clients that chat (each every 2.1 s: the room allows 5 in 10 s).
        #[arg(long, default_value_t = 10)]
        chatters: usize,
        #[arg(long, default_value_t = 20)]
        seconds: u64,
    },
}

#[derive(Clone, Copy, PartialEq, Eq, ValueEnum)]
enum Kind {
    Chat,
    Ping,
}

type Ws = WebSocketStream<TcpStream>;

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let cli = Cli::parse();
    let server = admin::resolve(&cli.server).await?;
    match cli.command {
        Cmd::Room { admin_token } => {
            let id = admin::create_room(server, &admin_token, "Flood", 500)
                .await?
                .id;
            println!("{id}");
        }
        Cmd::Flood {
            room,
            kind,
            connections,
            from,
            rate,
        } => flood(server, &room, kind, connections, from, rate).await,
        Cmd::Measure {
            room,
            from,
            chatters,
            seconds,
        } => measure(server, &room, from, chatters, Duration::from_secs(seconds)).await?,
    }
    Ok(())
}

async fn open(server: SocketAddr, from: IpAddr) -> anyhow::Result<Ws> {
    let socket = TcpSocket::new_v4()?;
    socket.bind(SocketAddr::new(from, 0))?;
    let tcp = socket.connect(server).await?;
    tcp.set_nodelay(true)?;
    let url = format!("ws://{server}/ws");
    Ok(tokio_tungstenite::client_async(url, tcp).await?.0)
}

async fn join(server: SocketAddr, from: IpAddr, room: &str, name: &str) -> anyhow::Result<Ws> {
    let mut ws = open(server, from).await?;
    let join = ClientMsg::Join {
        v: wire::PROTOCOL_VERSION,
        room: room.into(),
        name: name.into(),
        invite: None,
        consent: false,
    };
    ws.send(Message::text(wire::encode_client(&join))).await?;
    loop {
        let frame = ws.next().await.context("closed before joining")??;
        if let Message::Text(t) = frame {
            match wire::decode_server(t.as_str())? {
                ServerMsg::Joined { .. } => return Ok(ws),
                ServerMsg::Error { code, .. } => anyhow::bail!("join refused: {code:?}"),
                _ => {}
            }
        }
    }
}

async fn flood(server: SocketAddr, room: &str, kind: Kind, n: usize, from: IpAddr, rate: u64) {
    let mut tasks = tokio::task::JoinSet::new();
    for i in 0..n {
        let room = room.to_string();
        tasks.spawn(async move {
            let ws = match kind {
                Kind::Chat => join(server, from, &room, &format!("Flood {i}")).await,
                Kind::Ping => open(server, from).await,
            };
            match ws {
                Ok(ws) => flood_one(ws, kind, rate).await,
                Err(e) => eprintln!("flood connection {i}: {e:#}"),
            }
        });
    }
    eprintln!("flooding with {n} connections");
    while tasks.join_next().await.is_some() {}
}

/// Send `rate` messages a second in batches every 50 ms (or batches of 100 back to back, at
/// 0), and read whatever comes back.
async fn flood_one(ws: Ws, kind: Kind, rate: u64) {
    let (mut sink, mut stream) = ws.split();
    let text = match kind {
        Kind::Chat => wire::encode_client(&ClientMsg::Chat { text: "x".into() }),
        Kind::Ping => wire::encode_client(&ClientMsg::Ping { id: Some(1) }),
    };
    let drain = async { while let Some(Ok(_)) = stream.next().await {} };
    let send = async {
        let mut every = tokio::time::interval(Duration::from_millis(50));
        let batch = if rate == 0 { 100 } else { rate.div_ceil(20) };
        loop {
            if rate > 0 {
                every.tick().await;
            }
            for _ in 0..batch {
                if sink.feed(Message::text(text.clone())).await.is_err() {
                    return;
                }
            }
            if sink.flush().await.is_err() {
                return;
            }
        }
    };
    tokio::select! { _ = drain => {}, _ = send => {} }
}

async fn measure(
    server: SocketAddr,
    room: &str,
    from: IpAddr,
    chatters: usize,
    time: Duration,
) -> anyhow::Result<()> {
    let mut tasks = tokio::task::JoinSet::new();
    for i in 0..chatters {
        let ws = join(server, from, room, &format!("Victim {i}")).await?;
        tasks.spawn(chat_round_trips(ws, i, time));
    }
    let pinger = join(server, from, room, "Pinger").await?;
    let pings = ping_round_trips(pinger, time).await?;
    let mut chats = Vec::new();
    while let Some(done) = tasks.join_next().await {
        chats.extend(done??);
    }
    report("chat", chats);
    report("ping", pings);
    Ok(())
}

/// Chat every 2.1 s; the time from sending to the echo of each message.
async fn chat_round_trips(mut ws: Ws, who: usize, time: Duration) -> anyhow::Result<Vec<f64>> {
    let end = Instant::now() + time;
    let mut samples = Vec::new();
    let mut n = 0;
    while Instant::now() < end {
        let text = format!("victim {who} message {n}");
        n += 1;
        let sent = Instant::now();
        ws.send(Message::text(wire::encode_client(&ClientMsg::Chat {
            text: text.clone(),
        })))
        .await?;
        let echoed = until(
            &mut ws,
            |m| matches!(m, ServerMsg::Chat { message } if message.text == text),
        );
        if !answered(echoed, &mut samples, sent).await? {
            break;
        }
        tokio::time::sleep_until((sent + Duration::from_millis(2100)).into()).await;
    }
    Ok(samples)
}

/// Ping every 50 ms; the time to each pong.
async fn ping_round_trips(mut ws: Ws, time: Duration) -> anyhow::Result<Vec<f64>> {
    let end = Instant::now() + time;
    let mut samples = Vec::new();
    let mut id = 0;
    while Instant::now() < end {
        id += 1;
        let sent = Instant::now();
        let ping = ClientMsg::Ping { id: Some(id) };
        ws.send(Message::text(wire::encode_client(&ping))).await?;
        let pong = until(
            &mut ws,
            |m| matches!(m, ServerMsg::Pong { id: Some(i), .. } if *i == id),
        );
        if !answered(pong, &mut samples, sent).await? {
            break;
        }
        tokio::time::sleep_until((sent + Duration::from_millis(50)).into()).await;
    }
    Ok(samples)
}

/// Wait for an answer and count its time; `false` if it took over [`GIVE_UP`] (counted as
/// that long).
async fn answered(
    answer: impl Future<Output = anyhow::Result<()>>,
    samples: &mut Vec<f64>,
    sent: Instant,
) -> anyhow::Result<bool> {
    let in_time = match tokio::time::timeout(GIVE_UP, answer).await {
        Ok(result) => result.map(|()| true)?,
        Err(_) => {
            eprintln!("no answer in {GIVE_UP:?}; counted as {GIVE_UP:?}");
            false
        }
    };
    samples.push(sent.elapsed().min(GIVE_UP).as_secs_f64() * 1e3);
    Ok(in_time)
}

/// The longest a measurement waits for one answer.
const GIVE_UP: Duration = Duration::from_secs(30);

async fn until(ws: &mut Ws, want: impl Fn(&ServerMsg) -> bool) -> anyhow::Result<()> {
    loop {
        let frame = ws.next().await.context("closed")??;
        if let Message::Text(t) = frame
            && want(&wire::decode_server(t.as_str())?)
        {
            return Ok(());
        }
    }
}

fn report(what: &str, mut ms: Vec<f64>) {
    ms.sort_by(f64::total_cmp);
    let at = |q: f64| {
        ms.get(((ms.len() as f64 - 1.0) * q).round() as usize)
            .copied()
    };
    let (p50, p95) = (at(0.5).unwrap_or(f64::NAN), at(0.95).unwrap_or(f64::NAN));
    println!(
        "{what} round trip: p50 {p50:.2} ms, p95 {p95:.2} ms, {} samples",
        ms.len()
    );
}
