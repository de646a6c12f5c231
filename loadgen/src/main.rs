//! The `roundtable-loadgen` binary: parse the command line, run one scenario, print the table
//! to stdout and write the JSON report.

use std::net::IpAddr;
use std::path::PathBuf;
use std::time::Duration;

use anyhow::Context;
use clap::Parser;
use roundtable_loadgen::admin;
use roundtable_loadgen::report::ClientKind;
use roundtable_loadgen::run::{RunOptions, Sfu, Target, run};
use roundtable_loadgen::scenario::{NAMES, Scenario};

/// Load a running Roundtable server (or Janus's videoroom, to compare) with real WebRTC
/// participants and report how it copes.
#[derive(Debug, Parser)]
#[command(name = "roundtable-loadgen", version)]
struct Cli {
    /// Which SFU: roundtable, or janus (its videoroom plugin, at --janus-url).
    #[arg(long, default_value = "roundtable", value_parser = ["roundtable", "janus"])]
    target: String,
    /// The server's base URL (http only).
    #[arg(long, default_value = "http://127.0.0.1:8080")]
    server: String,
    /// The server's admin token, to create rooms (roundtable only).
    #[arg(long, env = "ROUNDTABLE_ADMIN_TOKEN", hide_env_values = true)]
    admin_token: Option<String>,
    /// Janus's WebSocket API (janus only).
    #[arg(long, default_value = "ws://10.77.0.1:8188")]
    janus_url: String,
    /// The address our peers bind and advertise to Janus [default: the local address that
    /// routes to --janus-url's host].
    #[arg(long)]
    media_ip: Option<IpAddr>,
    /// room10, rooms, skillshare40 or joinstorm.
    #[arg(long, value_parser = clap::builder::PossibleValuesParser::new(NAMES))]
    scenario: String,
    /// Measurement time once everyone receives everyone, e.g. 20s, 500ms, 2m [default: the
    /// scenario's].
    #[arg(long, value_parser = parse_duration)]
    duration: Option<Duration>,
    /// Video bitrate in kbit/s [default: 1200].
    #[arg(long)]
    video_kbps: Option<u64>,
    /// Extra packets a keyframe adds in one tick, back to back [default: 20]. 0: no bursts,
    /// as a browser's pacer would spread a keyframe's packets out.
    #[arg(long)]
    keyframe_packets: Option<u64>,
    /// The server's pid, to read its CPU and memory from /proc (same host only).
    #[arg(long)]
    server_pid: Option<u32>,
    /// Write the JSON report here.
    #[arg(long)]
    json: Option<PathBuf>,
    /// Longest wait for everyone to receive everyone before measuring anyway.
    #[arg(long, value_parser = parse_duration, default_value = "60s")]
    join_timeout: Duration,
    /// The generator's client: webrtc (webrtc-rs's async peers; the one that also speaks to
    /// Janus) or sansio (one task per participant on the sans-IO core; our server only).
    #[arg(long, value_enum, default_value_t = ClientKind::Webrtc)]
    client: ClientKind,
    /// Record: every participant consents, and each room's first participant joins as its
    /// facilitator and starts recording (our server, --client webrtc only).
    #[arg(long)]
    record: bool,
    /// No progress lines on stderr.
    #[arg(long)]
    quiet: bool,
}

impl Cli {
    /// What the parser cannot check alone.
    fn check(&self) -> anyhow::Result<()> {
        if self.target == "janus" && self.client == ClientKind::Sansio {
            anyhow::bail!("--client sansio speaks only Roundtable's protocol; use --client webrtc");
        }
        if self.record && (self.target == "janus" || self.client == ClientKind::Sansio) {
            anyhow::bail!("--record needs our server and --client webrtc");
        }
        Ok(())
    }
}

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let cli = Cli::parse();
    cli.check()?;
    let mut scenario = Scenario::named(&cli.scenario).context("unknown scenario")?;
    if let Some(d) = cli.duration {
        scenario.duration_s = d.as_secs_f64();
    }
    if let Some(kbps) = cli.video_kbps {
        scenario.video.bitrate_bps = kbps * 1000;
    }
    if let Some(packets) = cli.keyframe_packets {
        scenario.video.keyframe_extra_packets = packets;
    }
    let sfu = if cli.target == "janus" {
        let media_ip = match cli.media_ip {
            Some(ip) => ip,
            None => local_ip_towards(&cli.janus_url).await?,
        };
        Sfu::Janus {
            url: cli.janus_url,
            media_ip,
        }
    } else {
        Sfu::Roundtable {
            addr: admin::resolve(&cli.server).await?,
            admin_token: cli.admin_token.context("--admin-token is required")?,
        }
    };
    let target = Target {
        sfu,
        server_pid: cli.server_pid,
    };
    let options = RunOptions {
        progress: !cli.quiet,
        join_timeout: cli.join_timeout,
        client: cli.client,
        record: cli.record,
    };
    let report = run(&target, &scenario, &options).await?;
    print!("{}", report.table());
    if let Some(path) = &cli.json {
        let json = serde_json::to_string_pretty(&report)?;
        std::fs::write(path, json).with_context(|| format!("writing {}", path.display()))?;
    }
    Ok(())
}

/// The local address the kernel would send from to the host of `ws://HOST:PORT[/...]`.
/// Connecting a UDP socket sends nothing.
async fn local_ip_towards(url: &str) -> anyhow::Result<IpAddr> {
    let rest = url
        .strip_prefix("ws://")
        .with_context(|| format!("--janus-url must be ws://HOST:PORT, got {url}"))?;
    let host_port = rest.split('/').next().unwrap_or(rest);
    let remote = tokio::net::lookup_host(host_port)
        .await
        .with_context(|| format!("resolving {host_port}"))?
        .next()
        .with_context(|| format!("{host_port} has no address"))?;
    let any: std::net::SocketAddr = if remote.is_ipv4() {
        "0.0.0.0:0".parse()?
    } else {
        "[::]:0".parse()?
    };
    let socket = tokio::net::UdpSocket::bind(any).await?;
    socket.connect(remote).await?;
    Ok(socket.local_addr()?.ip())
}

/// `20s`, `500ms`, `2m`, or plain seconds.
fn parse_duration(text: &str) -> Result<Duration, String> {
    let text = text.trim();
    let split = text
        .find(|c: char| !c.is_ascii_digit() && c != '.')
        .unwrap_or(text.len());
    let (number, unit) = text.split_at(split);
    let value: f64 = number
        .parse()
        .map_err(|_| format!("not a duration: {text}"))?;
    let secs = match unit {
        "" | "s" => value,
        "ms" => value / 1000.0,
        "m" => value * 60.0,
        _ => return Err(format!("unknown unit {unit:?} (use ms, s or m)")),
    };
    Duration::try_from_secs_f64(secs).map_err(|e| e.to_string())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn durations() {
        assert_eq!(parse_duration("20s"), Ok(Duration::from_secs(20)));
        assert_eq!(parse_duration("500ms"), Ok(Duration::from_millis(500)));
        assert_eq!(parse_duration("2m"), Ok(Duration::from_secs(120)));
        assert_eq!(parse_duration("1.5"), Ok(Duration::from_millis(1500)));
        assert!(parse_duration("5h").is_err());
        assert!(parse_duration("s").is_err());
    }

    #[test]
    fn the_command_line_parses() {
        let cli = Cli::try_parse_from([
            "roundtable-loadgen",
            "--admin-token",
            "T",
            "--scenario",
            "room10",
            "--duration",
            "2s",
        ])
        .unwrap();
        assert_eq!(cli.duration, Some(Duration::from_secs(2)));
        let bursts = Cli::try_parse_from(["x", "--scenario", "room10", "--keyframe-packets", "0"]);
        assert_eq!(bursts.unwrap().keyframe_packets, Some(0));
        assert!(Cli::try_parse_from(["x", "--admin-token", "T", "--scenario", "nope"]).is_err());
        // Our server needs the admin token (checked once the target is known); Janus does not.
        let janus = Cli::try_parse_from([
            "x",
            "--target",
            "janus",
            "--janus-url",
            "ws://10.77.0.1:8188",
            "--scenario",
            "room10",
        ])
        .unwrap();
        assert_eq!(
            (janus.target.as_str(), &janus.admin_token),
            ("janus", &None)
        );
        assert_eq!(janus.client, ClientKind::Webrtc);
        janus.check().unwrap();
        // The sans-IO client speaks only our protocol.
        let sansio = ["x", "--scenario", "room10", "--client", "sansio"];
        let ours = Cli::try_parse_from(sansio).unwrap();
        assert_eq!(ours.client, ClientKind::Sansio);
        ours.check().unwrap();
        let with_janus = Cli::try_parse_from(sansio.into_iter().chain(["--target", "janus"]));
        let refused = with_janus.unwrap().check().unwrap_err().to_string();
        assert!(refused.contains("--client webrtc"), "{refused}");
        assert!(
            Cli::try_parse_from(["x", "--target", "mediasoup", "--scenario", "room10"]).is_err()
        );
    }
}
