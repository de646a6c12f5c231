//! The `roundtable-loadgen` binary: parse the command line, run one scenario, print the table
//! to stdout and write the JSON report.

use std::path::PathBuf;
use std::time::Duration;

use anyhow::Context;
use clap::Parser;
use roundtable_loadgen::admin;
use roundtable_loadgen::run::{RunOptions, Target, run};
use roundtable_loadgen::scenario::{NAMES, Scenario};

/// Load a running Roundtable server with real WebRTC participants and report how it copes.
#[derive(Debug, Parser)]
#[command(name = "roundtable-loadgen", version)]
struct Cli {
    /// The server's base URL (http only).
    #[arg(long, default_value = "http://127.0.0.1:8080")]
    server: String,
    /// The server's admin token, to create rooms.
    #[arg(long, env = "ROUNDTABLE_ADMIN_TOKEN", hide_env_values = true)]
    admin_token: String,
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
    /// The server's pid, to read its CPU and memory from /proc (same host only).
    #[arg(long)]
    server_pid: Option<u32>,
    /// Write the JSON report here.
    #[arg(long)]
    json: Option<PathBuf>,
    /// Longest wait for everyone to receive everyone before measuring anyway.
    #[arg(long, value_parser = parse_duration, default_value = "60s")]
    join_timeout: Duration,
    /// No progress lines on stderr.
    #[arg(long)]
    quiet: bool,
}

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let cli = Cli::parse();
    let mut scenario = Scenario::named(&cli.scenario).context("unknown scenario")?;
    if let Some(d) = cli.duration {
        scenario.duration_s = d.as_secs_f64();
    }
    if let Some(kbps) = cli.video_kbps {
        scenario.video.bitrate_bps = kbps * 1000;
    }
    let target = Target {
        addr: admin::resolve(&cli.server).await?,
        admin_token: cli.admin_token,
        server_pid: cli.server_pid,
    };
    let options = RunOptions {
        progress: !cli.quiet,
        join_timeout: cli.join_timeout,
    };
    let report = run(&target, &scenario, &options).await?;
    print!("{}", report.table());
    if let Some(path) = &cli.json {
        let json = serde_json::to_string_pretty(&report)?;
        std::fs::write(path, json).with_context(|| format!("writing {}", path.display()))?;
    }
    Ok(())
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
        assert!(Cli::try_parse_from(["x", "--admin-token", "T", "--scenario", "nope"]).is_err());
    }
}
