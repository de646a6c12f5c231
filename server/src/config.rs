//! Configuration: command-line flags, then `ROUNDTABLE_*` environment variables, then a TOML
//! file (`--config`), then defaults — the first that sets a value wins.

use std::net::{IpAddr, SocketAddr};
use std::path::{Path, PathBuf};
use std::time::Duration;

use anyhow::Context;
use clap::{Args, Parser, Subcommand};
use serde::Deserialize;
use signaling::wire::IceServer;

use crate::limits::{LimitFile, LimitOpts, Limits};

mod recordings;
mod room;

pub use recordings::RecordingsCommand;
pub use room::{AgendaArgs, CreateArgs, InviteArgs, NewPlan, RoomCommand, UpdateArgs};

/// The `roundtable` command line.
#[derive(Debug, Parser)]
#[command(
    name = "roundtable",
    version,
    about = "Roundtable: video rooms for Skill Shares"
)]
pub struct Cli {
    /// Settings shared by every command.
    #[command(flatten)]
    pub opts: Opts,
    /// What to do; `serve` when omitted.
    #[command(subcommand)]
    pub command: Option<Command>,
}

/// Flags shared by every command; each has an environment variable.
#[derive(Debug, Default, Clone, Args)]
pub struct Opts {
    /// TOML config file.
    #[arg(long, env = "ROUNDTABLE_CONFIG", global = true)]
    pub config: Option<PathBuf>,
    /// HTTP and WebSocket listen address [default: 127.0.0.1:8080].
    #[arg(long, env = "ROUNDTABLE_BIND", global = true)]
    pub bind: Option<SocketAddr>,
    /// Directory for the embedded SQLite database [default: ./data].
    #[arg(long, env = "ROUNDTABLE_DATA_DIR", global = true)]
    pub data_dir: Option<PathBuf>,
    /// `sqlite:PATH` or `postgres://...` [default: sqlite:DATA_DIR/roundtable.db].
    #[arg(long, env = "ROUNDTABLE_DATABASE_URL", global = true)]
    pub database_url: Option<String>,
    /// Folder for recordings, created at start [default: DATA_DIR/recordings].
    #[arg(long, env = "ROUNDTABLE_RECORDINGS_DIR", global = true)]
    pub recordings_dir: Option<PathBuf>,
    /// IP that media candidates advertise to clients [default: 127.0.0.1]. Set it to the
    /// LAN or public address for real deployments.
    #[arg(long, env = "ROUNDTABLE_MEDIA_IP", global = true)]
    pub media_ip: Option<IpAddr>,
    /// IP the media sockets bind to, when it differs from --media-ip (behind 1:1 NAT).
    #[arg(long, env = "ROUNDTABLE_MEDIA_BIND_IP", global = true)]
    pub media_bind_ip: Option<IpAddr>,
    /// UDP port of the media socket that every connection shares [default: 7882].
    #[arg(long, env = "ROUNDTABLE_MEDIA_PORT", global = true)]
    pub media_port: Option<u16>,
    /// Base URL for join links [default: http://BIND]. Its origin may open the WebSocket.
    #[arg(long, env = "ROUNDTABLE_PUBLIC_URL", global = true)]
    pub public_url: Option<String>,
    /// Other origins whose pages may open the WebSocket (comma-separated), besides the
    /// public URL's.
    #[arg(
        long,
        env = "ROUNDTABLE_ALLOWED_ORIGINS",
        global = true,
        value_delimiter = ','
    )]
    pub allowed_origins: Vec<String>,
    /// Fix the admin token instead of generating one on first start.
    #[arg(
        long,
        env = "ROUNDTABLE_ADMIN_TOKEN",
        global = true,
        hide_env_values = true
    )]
    pub admin_token: Option<String>,
    /// Timeouts, connection caps and rates (`limits`).
    #[command(flatten)]
    pub limits: LimitOpts,
}

/// Subcommands.
#[derive(Debug, Subcommand)]
pub enum Command {
    /// Run the server (the default).
    Serve,
    /// Manage rooms directly in the database.
    Room {
        /// What to do with rooms.
        #[command(subcommand)]
        command: RoomCommand,
    },
    /// List, show, delete recording sessions and purge speakers, directly on the database
    /// and the recordings folder.
    Recordings {
        /// What to do with recordings.
        #[command(subcommand)]
        command: RecordingsCommand,
    },
}

/// The TOML file: the same keys as the flags, plus ICE servers.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
struct FileConfig {
    bind: Option<SocketAddr>,
    data_dir: Option<PathBuf>,
    database_url: Option<String>,
    recordings_dir: Option<PathBuf>,
    media_ip: Option<IpAddr>,
    media_bind_ip: Option<IpAddr>,
    media_port: Option<u16>,
    public_url: Option<String>,
    allowed_origins: Option<Vec<String>>,
    admin_token: Option<String>,
    #[serde(default)]
    ice_servers: Vec<IceServer>,
    #[serde(default)]
    limits: LimitFile,
}

/// Resolved settings.
#[derive(Debug, Clone)]
pub struct Config {
    /// Listen address.
    pub bind: SocketAddr,
    /// Database URL.
    pub database_url: String,
    /// Where recordings go.
    pub recordings_dir: PathBuf,
    /// Advertised media IP.
    pub media_ip: IpAddr,
    /// Bound media IP.
    pub media_bind_ip: IpAddr,
    /// The shared media socket's port (0: any).
    pub media_port: u16,
    /// Join link base, if fixed; otherwise derived from the bound address.
    pub public_url: Option<String>,
    /// Origins allowed to open the WebSocket besides the public URL's.
    pub allowed_origins: Vec<String>,
    /// Fixed admin token, if any.
    pub admin_token: Option<String>,
    /// ICE servers for clients and the server's peers.
    pub ice_servers: Vec<IceServer>,
    /// How long an empty room keeps its task before it stops (state then reloads from the store).
    pub room_idle_grace: std::time::Duration,
    /// WebSocket keepalive: how often the server pings, and after how much silence it closes.
    pub keepalive: Keepalive,
    /// Chat messages a participant may send in any 10 s window. Not a flag: the chat
    /// benchmark raises it to measure the store rather than the limit.
    pub chat_burst: usize,
    /// Timeouts, connection caps and rates.
    pub limits: Limits,
}

impl Config {
    /// Defaults for tests: loopback, port 0, the given database, and recordings beside an
    /// SQLite file (in the system's temporary folder for PostgreSQL).
    pub fn for_tests(database_url: String) -> Self {
        let beside = database_url
            .strip_prefix("sqlite:")
            .and_then(|file| Path::new(file).parent())
            .map_or_else(std::env::temp_dir, Path::to_path_buf);
        Config {
            bind: SocketAddr::from(([127, 0, 0, 1], 0)),
            database_url,
            recordings_dir: beside.join("recordings"),
            media_ip: IpAddr::from([127, 0, 0, 1]),
            media_bind_ip: IpAddr::from([127, 0, 0, 1]),
            media_port: 0,
            public_url: None,
            allowed_origins: vec![],
            admin_token: None,
            ice_servers: vec![],
            room_idle_grace: crate::room::IDLE_GRACE,
            keepalive: Keepalive::default(),
            chat_burst: CHAT_BURST,
            limits: Limits::default(),
        }
    }

    /// Merge flags/env with the config file and defaults.
    pub fn resolve(opts: &Opts) -> anyhow::Result<Self> {
        let file = match &opts.config {
            Some(path) => read_file(path)?,
            None => FileConfig::default(),
        };
        let data_dir = opts
            .data_dir
            .clone()
            .or(file.data_dir)
            .unwrap_or_else(|| PathBuf::from("./data"));
        let database_url = opts
            .database_url
            .clone()
            .or(file.database_url)
            .unwrap_or_else(|| format!("sqlite:{}", data_dir.join("roundtable.db").display()));
        let recordings_dir = opts
            .recordings_dir
            .clone()
            .or(file.recordings_dir)
            .unwrap_or_else(|| data_dir.join("recordings"));
        let media_ip = opts
            .media_ip
            .or(file.media_ip)
            .unwrap_or(IpAddr::from([127, 0, 0, 1]));
        Ok(Config {
            bind: opts
                .bind
                .or(file.bind)
                .unwrap_or(SocketAddr::from(([127, 0, 0, 1], 8080))),
            database_url,
            recordings_dir,
            media_ip,
            media_bind_ip: opts
                .media_bind_ip
                .or(file.media_bind_ip)
                .unwrap_or(media_ip),
            media_port: opts
                .media_port
                .or(file.media_port)
                .unwrap_or(DEFAULT_MEDIA_PORT),
            public_url: opts.public_url.clone().or(file.public_url),
            allowed_origins: Some(opts.allowed_origins.clone())
                .filter(|o| !o.is_empty())
                .or(file.allowed_origins)
                .unwrap_or_default(),
            admin_token: opts.admin_token.clone().or(file.admin_token),
            ice_servers: file.ice_servers,
            room_idle_grace: crate::room::IDLE_GRACE,
            keepalive: Keepalive::default(),
            chat_burst: CHAT_BURST,
            limits: Limits::resolve(&opts.limits, file.limits)?,
        })
    }
}

/// WebSocket keepalive (see `ws`).
/// Server WebSocket pings go out this often.
pub const PING_INTERVAL: Duration = Duration::from_secs(15);
/// A connection silent (no message, no pong) this long is closed.
pub const IDLE_TIMEOUT: Duration = Duration::from_secs(45);
/// WebSocket keepalive timing.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Keepalive {
    /// How often the server sends a ping frame.
    pub ping_every: Duration,
    /// Silence (no message, no pong) after which the connection is closed.
    pub close_after: Duration,
}

impl Default for Keepalive {
    fn default() -> Self {
        Keepalive {
            ping_every: PING_INTERVAL,
            close_after: IDLE_TIMEOUT,
        }
    }
}

/// Chat messages a participant may send in any 10 s window.
pub const CHAT_BURST: usize = 5;

/// The shared media socket's default port (LiveKit's single-port UDP default, too).
pub const DEFAULT_MEDIA_PORT: u16 = 7882;

/// What is logged when `ROUNDTABLE_LOG` is unset. rtc-dtls warns of every extension of a
/// browser's ClientHello that it does not implement (DTLS 1.3's `supported_versions`,
/// `key_share` and `psk_key_exchange_modes`): three harmless lines per peer connection.
pub const DEFAULT_LOG: &str =
    "info,webrtc=warn,rtc=warn,rtc_dtls::handshake::handshake_message_client_hello=error";

/// The log filter: `ROUNDTABLE_LOG`'s value when it is set and valid (tracing's `EnvFilter`
/// syntax, e.g. `debug` or `info,rtc_dtls=warn`), else [`DEFAULT_LOG`].
pub fn log_filter(roundtable_log: Option<&str>) -> tracing_subscriber::EnvFilter {
    roundtable_log
        .and_then(|v| tracing_subscriber::EnvFilter::try_new(v).ok())
        .unwrap_or_else(|| tracing_subscriber::EnvFilter::new(DEFAULT_LOG))
}

fn read_file(path: &Path) -> anyhow::Result<FileConfig> {
    let text =
        std::fs::read_to_string(path).with_context(|| format!("reading {}", path.display()))?;
    toml::from_str(&text).with_context(|| format!("parsing {}", path.display()))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn flags_beat_file_and_file_beats_defaults() {
        let dir = std::env::temp_dir().join(format!("rt-config-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let path = dir.join("roundtable.toml");
        std::fs::write(
            &path,
            "bind = \"127.0.0.1:9000\"\nmedia_ip = \"10.1.2.3\"\ndata_dir = \"/var/lib/rt\"\n\
             media_port = 40000\n\
             allowed_origins = [\"https://a.example\"]\n\
             [[ice_servers]]\nurls = [\"stun:127.0.0.1:3478\"]\n",
        )
        .unwrap();
        let opts = Opts {
            config: Some(path.clone()),
            bind: Some("127.0.0.1:9100".parse().unwrap()),
            ..Default::default()
        };
        let c = Config::resolve(&opts).unwrap();
        assert_eq!(c.bind.port(), 9100, "the flag wins");
        assert_eq!(
            c.media_ip.to_string(),
            "10.1.2.3",
            "the file beats the default"
        );
        assert_eq!(c.media_bind_ip, c.media_ip);
        assert_eq!(c.media_port, 40000);
        assert_eq!(c.database_url, "sqlite:/var/lib/rt/roundtable.db");
        assert_eq!(c.ice_servers[0].urls, ["stun:127.0.0.1:3478"]);
        assert_eq!(c.allowed_origins, ["https://a.example"]);
        let flagged = Opts {
            config: Some(path.clone()),
            allowed_origins: vec!["https://b.example".into()],
            ..Default::default()
        };
        let c = Config::resolve(&flagged).unwrap();
        assert_eq!(c.allowed_origins, ["https://b.example"], "the flag wins");
        let d = Config::resolve(&Opts::default()).unwrap();
        assert_eq!(d.bind.to_string(), "127.0.0.1:8080");
        assert_eq!(d.database_url, "sqlite:./data/roundtable.db");
        assert_eq!(d.media_port, DEFAULT_MEDIA_PORT);
        assert!(d.allowed_origins.is_empty());
        std::fs::write(&path, "bnid = \"oops\"\n").unwrap();
        let err = Config::resolve(&Opts {
            config: Some(path),
            ..Default::default()
        })
        .unwrap_err();
        assert!(format!("{err:#}").contains("bnid"), "{err:#}");
        std::fs::remove_dir_all(dir).unwrap();
    }

    #[test]
    fn subcommands_take_global_flags() {
        // clap reads env through the same path for every flag; check one end to end.
        let cli =
            Cli::try_parse_from(["roundtable", "--media-ip", "192.0.2.9", "room", "list"]).unwrap();
        assert_eq!(cli.opts.media_ip.unwrap().to_string(), "192.0.2.9");
        assert!(matches!(
            cli.command,
            Some(Command::Room {
                command: RoomCommand::List { json: false }
            })
        ));
        let list = "https://a.example,https://b.example";
        let cli = Cli::try_parse_from(["roundtable", "--allowed-origins", list]).unwrap();
        assert_eq!(
            cli.opts.allowed_origins,
            ["https://a.example", "https://b.example"]
        );
    }

    /// Whether a WARN (and an ERROR) event of this target passes the filter.
    fn passes(filter: tracing_subscriber::EnvFilter) -> (bool, bool) {
        use tracing::Level;
        use tracing_subscriber::layer::SubscriberExt;
        let subscriber = tracing_subscriber::registry().with(filter);
        tracing::subscriber::with_default(subscriber, || {
            const HELLO: &str = "rtc_dtls::handshake::handshake_message_client_hello";
            (
                tracing::enabled!(target: HELLO, Level::WARN),
                tracing::enabled!(target: HELLO, Level::ERROR),
            )
        })
    }

    #[test]
    fn dtls_client_hello_warnings_are_quiet_unless_asked_for() {
        assert_eq!(passes(log_filter(None)), (false, true));
        assert_eq!(passes(log_filter(Some("not a filter=!"))), (false, true));
        assert_eq!(passes(log_filter(Some("info,rtc_dtls=warn"))), (true, true));
    }
}
