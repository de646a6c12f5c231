//! The bounds that keep one client from taking the server from the others: timeouts,
//! connection caps, the send queue and message rates. Each is a flag, a `ROUNDTABLE_*`
//! variable and a key of the config file's `[limits]` table. The defaults and their reasons
//! sit beside [`Limits::default`].

use std::net::{IpAddr, Ipv6Addr};
use std::time::Duration;

use clap::Args;
use serde::Deserialize;

/// Resolved bounds.
#[derive(Debug, Clone, PartialEq)]
pub struct Limits {
    /// After SIGTERM or SIGINT, the longest the server waits for connections to close and
    /// rooms to store their chat before it exits.
    pub shutdown_timeout: Duration,
    /// Time a client has to send a request's headers; an idle keep-alive connection is
    /// closed after it too.
    pub header_timeout: Duration,
    /// Time a WebSocket has to `join` after it opens.
    pub join_timeout: Duration,
    /// Open connections in all (capped further by the open-file limit).
    pub max_connections: usize,
    /// Open connections from one address. Trusted proxies are exempt.
    pub max_connections_per_ip: usize,
    /// Addresses of reverse proxies: their connections are not capped per address, and their
    /// WebSockets are rate-limited by the client address in `X-Forwarded-For`.
    pub trusted_proxies: Vec<IpAddr>,
    /// Bytes queued for one WebSocket, beyond the frame being written; past it the
    /// connection is closed (1008 `too_slow`).
    pub send_queue_bytes: usize,
    /// Longest a single write to a WebSocket may take before it is closed (1008
    /// `write_timeout`).
    pub write_timeout: Duration,
    /// Messages per second one WebSocket may send; four seconds' worth at once.
    pub messages_per_second: f64,
    /// Messages per second all WebSockets of one address may send together; five seconds'
    /// worth at once.
    pub ip_messages_per_second: f64,
}

impl Default for Limits {
    fn default() -> Self {
        Limits {
            // systemd waits 90 s before SIGKILL, Kubernetes 30 s: a few seconds fits both.
            shutdown_timeout: Duration::from_secs(5),
            // A browser sends its headers at once; 10 s covers a slow mobile link.
            header_timeout: Duration::from_secs(10),
            // The web client joins as soon as its socket opens; 30 s leaves room for a
            // refused join (a full room, a bad name) to be retried on the same socket.
            join_timeout: Duration::from_secs(30),
            max_connections: 10_000,
            // A Skill Share of 50 behind one office NAT: a WebSocket each, and the page's
            // few short-lived HTTP connections.
            max_connections_per_ip: 100,
            // A reverse proxy on the same host, as README suggests.
            trusted_proxies: vec![
                IpAddr::from([127, 0, 0, 1]),
                IpAddr::V6(Ipv6Addr::LOCALHOST),
            ],
            // The largest message is the first, `joined` with its chat history, and it is
            // never refused (only what waits behind the frame being written counts).
            // 512 KiB is a few large offers and a burst of room events.
            send_queue_bytes: 512 * 1024,
            // A 1 MiB offer at 1 Mbit/s takes 8 s.
            write_timeout: Duration::from_secs(30),
            // A join sends a few dozen messages (trickle ICE) in a burst; then a ping every
            // 15 s, chat and media state.
            messages_per_second: 50.0,
            // The joins of a room of 50 behind one NAT fit in the burst (1,000).
            ip_messages_per_second: 200.0,
        }
    }
}

impl Limits {
    /// Messages one WebSocket may send at once.
    pub fn message_burst(&self) -> f64 {
        self.messages_per_second * 4.0
    }

    /// Messages one address may send at once.
    pub fn ip_message_burst(&self) -> f64 {
        self.ip_messages_per_second * 5.0
    }

    /// Flags and variables win over the file, the file over the defaults.
    ///
    /// # Errors
    /// A time or a rate that is not a positive number, or a cap of 0.
    pub(crate) fn resolve(opts: &LimitOpts, file: LimitFile) -> anyhow::Result<Self> {
        let d = Limits::default();
        let secs = |flag: Option<f64>, file: Option<f64>, default: Duration| {
            flag.or(file).map_or(default, |s| {
                // Checked below; a bad value must not panic here.
                Duration::try_from_secs_f64(s).unwrap_or(Duration::ZERO)
            })
        };
        let positive = |name: &str, v: Option<f64>| match v {
            Some(v) if !(v.is_finite() && v > 0.0) => {
                anyhow::bail!("`{name}` must be a positive number, not {v}")
            }
            _ => Ok(()),
        };
        for (name, flag, in_file) in [
            (
                "shutdown_timeout",
                opts.shutdown_timeout,
                file.shutdown_timeout,
            ),
            ("header_timeout", opts.header_timeout, file.header_timeout),
            ("join_timeout", opts.join_timeout, file.join_timeout),
            ("write_timeout", opts.write_timeout, file.write_timeout),
            (
                "messages_per_second",
                opts.messages_per_second,
                file.messages_per_second,
            ),
            (
                "ip_messages_per_second",
                opts.ip_messages_per_second,
                file.ip_messages_per_second,
            ),
        ] {
            positive(name, flag.or(in_file))?;
        }
        let limits = Limits {
            shutdown_timeout: secs(
                opts.shutdown_timeout,
                file.shutdown_timeout,
                d.shutdown_timeout,
            ),
            header_timeout: secs(opts.header_timeout, file.header_timeout, d.header_timeout),
            join_timeout: secs(opts.join_timeout, file.join_timeout, d.join_timeout),
            max_connections: opts
                .max_connections
                .or(file.max_connections)
                .unwrap_or(d.max_connections),
            max_connections_per_ip: opts
                .max_connections_per_ip
                .or(file.max_connections_per_ip)
                .unwrap_or(d.max_connections_per_ip),
            trusted_proxies: opts
                .trusted_proxies
                .clone()
                .or(file.trusted_proxies)
                .unwrap_or(d.trusted_proxies),
            send_queue_bytes: opts
                .send_queue_bytes
                .or(file.send_queue_bytes)
                .unwrap_or(d.send_queue_bytes),
            write_timeout: secs(opts.write_timeout, file.write_timeout, d.write_timeout),
            messages_per_second: opts
                .messages_per_second
                .or(file.messages_per_second)
                .unwrap_or(d.messages_per_second),
            ip_messages_per_second: opts
                .ip_messages_per_second
                .or(file.ip_messages_per_second)
                .unwrap_or(d.ip_messages_per_second),
        };
        for (name, cap) in [
            ("max_connections", limits.max_connections),
            ("max_connections_per_ip", limits.max_connections_per_ip),
            ("send_queue_bytes", limits.send_queue_bytes),
        ] {
            anyhow::ensure!(cap > 0, "`{name}` must be at least 1");
        }
        Ok(limits)
    }
}

/// The flags of [`Limits`]; times are in seconds and may have a fraction.
#[derive(Debug, Default, Clone, Args)]
pub struct LimitOpts {
    /// Longest wait for connections and rooms to close on SIGTERM/SIGINT [default: 5].
    #[arg(long, env = "ROUNDTABLE_SHUTDOWN_TIMEOUT", global = true)]
    pub shutdown_timeout: Option<f64>,
    /// Time to send a request's headers [default: 10].
    #[arg(long, env = "ROUNDTABLE_HEADER_TIMEOUT", global = true)]
    pub header_timeout: Option<f64>,
    /// Time for a WebSocket to `join` after it opens [default: 30].
    #[arg(long, env = "ROUNDTABLE_JOIN_TIMEOUT", global = true)]
    pub join_timeout: Option<f64>,
    /// Open connections in all, capped by the open-file limit [default: 10000].
    #[arg(long, env = "ROUNDTABLE_MAX_CONNECTIONS", global = true)]
    pub max_connections: Option<usize>,
    /// Open connections from one address [default: 100].
    #[arg(long, env = "ROUNDTABLE_MAX_CONNECTIONS_PER_IP", global = true)]
    pub max_connections_per_ip: Option<usize>,
    /// Reverse proxies, comma-separated [default: 127.0.0.1,::1].
    #[arg(
        long,
        env = "ROUNDTABLE_TRUSTED_PROXIES",
        global = true,
        value_delimiter = ','
    )]
    pub trusted_proxies: Option<Vec<IpAddr>>,
    /// Bytes queued for one WebSocket before it is closed [default: 524288].
    #[arg(long, env = "ROUNDTABLE_SEND_QUEUE_BYTES", global = true)]
    pub send_queue_bytes: Option<usize>,
    /// Longest write to a WebSocket [default: 30].
    #[arg(long, env = "ROUNDTABLE_WRITE_TIMEOUT", global = true)]
    pub write_timeout: Option<f64>,
    /// Messages per second from one WebSocket [default: 50].
    #[arg(long, env = "ROUNDTABLE_MESSAGES_PER_SECOND", global = true)]
    pub messages_per_second: Option<f64>,
    /// Messages per second from all WebSockets of one address [default: 200].
    #[arg(long, env = "ROUNDTABLE_IP_MESSAGES_PER_SECOND", global = true)]
    pub ip_messages_per_second: Option<f64>,
}

/// The config file's `[limits]` table: the flags' names with underscores.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct LimitFile {
    shutdown_timeout: Option<f64>,
    header_timeout: Option<f64>,
    join_timeout: Option<f64>,
    max_connections: Option<usize>,
    max_connections_per_ip: Option<usize>,
    trusted_proxies: Option<Vec<IpAddr>>,
    send_queue_bytes: Option<usize>,
    write_timeout: Option<f64>,
    messages_per_second: Option<f64>,
    ip_messages_per_second: Option<f64>,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn flags_beat_the_file_and_the_file_beats_defaults() {
        let file: LimitFile =
            toml::from_str("header_timeout = 2\njoin_timeout = 0.5\nmax_connections = 7\n")
                .unwrap();
        let opts = LimitOpts {
            header_timeout: Some(1.5),
            trusted_proxies: Some(vec![]),
            ..Default::default()
        };
        let l = Limits::resolve(&opts, file).unwrap();
        assert_eq!(l.header_timeout, Duration::from_millis(1500));
        assert_eq!(l.join_timeout, Duration::from_millis(500));
        assert_eq!(l.max_connections, 7);
        assert!(l.trusted_proxies.is_empty());
        assert_eq!(l.shutdown_timeout, Limits::default().shutdown_timeout);
    }

    #[test]
    fn a_time_or_rate_that_is_not_positive_and_a_zero_cap_are_refused() {
        let bad = [
            "join_timeout = -1",
            "header_timeout = 0",
            "messages_per_second = 0",
            "ip_messages_per_second = nan",
            "write_timeout = inf",
            "max_connections_per_ip = 0",
            "send_queue_bytes = 0",
        ];
        for text in bad {
            let file: LimitFile = toml::from_str(text).unwrap();
            let err = Limits::resolve(&LimitOpts::default(), file).unwrap_err();
            let key = text.split(' ').next().unwrap();
            assert!(format!("{err}").contains(key), "{text}: {err}");
        }
    }
}
