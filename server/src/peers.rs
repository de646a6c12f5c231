//! Who is connected from where: connection caps in all and per address, and the message
//! budget all WebSockets of one address share. The listener asks [`Peers::admit`] before it
//! serves a connection; a WebSocket asks [`Peers::budget`] for its address's budget.

use std::collections::HashMap;
use std::net::IpAddr;
use std::sync::{Arc, Mutex, Weak};

use axum::http::HeaderMap;
use signaling::limits::TokenBucket;
use tokio::time::Instant;

use crate::limits::Limits;

/// Descriptors kept out of the connection cap: the store's pool, the media socket, the
/// listener, logs, and connections being refused.
pub const RESERVED_FDS: u64 = 256;

/// Why a connection was refused.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Refusal {
    /// The server holds its cap of connections.
    TooManyConnections,
    /// This address holds its cap.
    TooManyFromAddress,
}

impl Refusal {
    /// The stable code in the refusal's body.
    pub fn code(self) -> &'static str {
        match self {
            Refusal::TooManyConnections => "too_many_connections",
            Refusal::TooManyFromAddress => "too_many_connections_from_address",
        }
    }
}

/// The connection table.
pub struct Peers {
    max_total: usize,
    max_per_ip: usize,
    trusted: Vec<IpAddr>,
    rate: f64,
    burst: f64,
    // A std Mutex is fine: each is held for a map lookup or a bucket update, never across an
    // await.
    conns: Mutex<Table>,
    budgets: Mutex<HashMap<IpAddr, Weak<Budget>>>,
}

#[derive(Default)]
struct Table {
    total: usize,
    per_ip: HashMap<IpAddr, usize>,
}

/// An admitted connection; dropping it frees its place.
pub struct Admitted {
    peers: Arc<Peers>,
    /// `None` for a trusted proxy, which counts only in the total.
    ip: Option<IpAddr>,
}

/// The message budget of one address, shared by its WebSockets.
pub struct Budget {
    bucket: Mutex<TokenBucket>,
}

impl Budget {
    /// Whether one more message from this address fits.
    pub fn take(&self, now: Instant) -> bool {
        let mut bucket = self.bucket.lock().unwrap_or_else(|p| p.into_inner());
        bucket.take(now.into_std())
    }
}

impl Peers {
    /// A table with `limits`' caps; the total is capped below `open_files` too.
    pub fn new(limits: &Limits, open_files: Option<u64>) -> Arc<Self> {
        Arc::new(Peers {
            max_total: connection_cap(limits.max_connections, open_files),
            max_per_ip: limits.max_connections_per_ip,
            trusted: limits.trusted_proxies.clone(),
            rate: limits.ip_messages_per_second,
            burst: limits.ip_message_burst(),
            conns: Mutex::default(),
            budgets: Mutex::default(),
        })
    }

    /// The cap on connections in all.
    pub fn max_total(&self) -> usize {
        self.max_total
    }

    /// Open connections now.
    pub fn open(&self) -> usize {
        self.table().total
    }

    /// Take a place for a connection from `ip`, or say why not.
    pub fn admit(self: &Arc<Self>, ip: IpAddr) -> Result<Admitted, Refusal> {
        let ip = ip.to_canonical();
        let mut table = self.table();
        if table.total >= self.max_total {
            return Err(Refusal::TooManyConnections);
        }
        let counted = (!self.trusted.contains(&ip)).then_some(ip);
        if let Some(ip) = counted {
            let n = table.per_ip.entry(ip).or_default();
            if *n >= self.max_per_ip {
                return Err(Refusal::TooManyFromAddress);
            }
            *n += 1;
        }
        table.total += 1;
        Ok(Admitted {
            peers: self.clone(),
            ip: counted,
        })
    }

    /// The address a request is from: the connection's, or for a trusted proxy the last
    /// address it added to `X-Forwarded-For`.
    pub fn client_ip(&self, peer: IpAddr, headers: &HeaderMap) -> IpAddr {
        let peer = peer.to_canonical();
        if !self.trusted.contains(&peer) {
            return peer;
        }
        let forwarded = headers
            .get_all("x-forwarded-for")
            .iter()
            .filter_map(|v| v.to_str().ok())
            .flat_map(|v| v.split(','))
            .filter_map(|a| a.trim().parse::<IpAddr>().ok())
            .next_back();
        forwarded.map_or(peer, |ip| ip.to_canonical())
    }

    /// The message budget of `ip`, shared with its other WebSockets.
    pub fn budget(&self, ip: IpAddr) -> Arc<Budget> {
        let mut budgets = self.budgets.lock().unwrap_or_else(|p| p.into_inner());
        if let Some(budget) = budgets.get(&ip).and_then(Weak::upgrade) {
            return budget;
        }
        // Forget the addresses nobody uses any more, now and then: at most as many dead
        // entries as live ones.
        if budgets.len() >= 64 && budgets.len().is_power_of_two() {
            budgets.retain(|_, b| b.strong_count() > 0);
        }
        let now = Instant::now().into_std();
        let budget = Arc::new(Budget {
            bucket: Mutex::new(TokenBucket::new(now, self.rate, self.burst)),
        });
        budgets.insert(ip, Arc::downgrade(&budget));
        budget
    }

    fn table(&self) -> std::sync::MutexGuard<'_, Table> {
        self.conns.lock().unwrap_or_else(|p| p.into_inner())
    }
}

impl Drop for Admitted {
    fn drop(&mut self) {
        let mut table = self.peers.table();
        table.total -= 1;
        if let Some(ip) = self.ip
            && let Some(n) = table.per_ip.get_mut(&ip)
        {
            *n -= 1;
            if *n == 0 {
                table.per_ip.remove(&ip);
            }
        }
    }
}

/// The cap on connections: the configured one, and below the open-file limit by
/// [`RESERVED_FDS`], so that new connections are refused before descriptors run out.
pub fn connection_cap(configured: usize, open_files: Option<u64>) -> usize {
    let by_files = open_files.map_or(u64::MAX, |n| n.saturating_sub(RESERVED_FDS));
    configured.min(usize::try_from(by_files).unwrap_or(usize::MAX))
}

/// Raise this process's open-file limit to its hard limit; returns the limit in force.
pub fn raise_open_file_limit() -> Option<u64> {
    let mut lim = libc::rlimit {
        rlim_cur: 0,
        rlim_max: 0,
    };
    // SAFETY: getrlimit and setrlimit only read and write the struct we pass.
    unsafe {
        if libc::getrlimit(libc::RLIMIT_NOFILE, &mut lim) != 0 {
            return None;
        }
        if lim.rlim_cur < lim.rlim_max {
            let raised = libc::rlimit {
                rlim_cur: lim.rlim_max,
                rlim_max: lim.rlim_max,
            };
            if libc::setrlimit(libc::RLIMIT_NOFILE, &raised) == 0 {
                lim = raised;
            }
        }
    }
    (lim.rlim_cur != libc::RLIM_INFINITY).then_some(lim.rlim_cur)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn peers(max_total: usize, max_per_ip: usize) -> Arc<Peers> {
        let limits = Limits {
            max_connections: max_total,
            max_connections_per_ip: max_per_ip,
            ..Limits::default()
        };
        Peers::new(&limits, None)
    }

    #[test]
    fn caps_per_address_and_in_all() {
        let p = peers(3, 2);
        let a: IpAddr = "192.0.2.1".parse().unwrap();
        let b: IpAddr = "192.0.2.2".parse().unwrap();
        let a1 = p.admit(a).unwrap();
        let _a2 = p.admit(a).unwrap();
        assert_eq!(p.admit(a).err(), Some(Refusal::TooManyFromAddress));
        let _b1 = p.admit(b).unwrap();
        assert_eq!(p.admit(b).err(), Some(Refusal::TooManyConnections));
        drop(a1);
        assert_eq!(p.open(), 2);
        assert!(p.admit(a).is_ok(), "a freed place is taken again");
        let local: IpAddr = "127.0.0.1".parse().unwrap();
        let q = peers(10, 1);
        let _l = (q.admit(local).unwrap(), q.admit(local).unwrap());
        assert_eq!(q.open(), 2, "a trusted proxy counts only in the total");
    }

    #[test]
    fn the_cap_stays_below_the_open_file_limit() {
        assert_eq!(
            connection_cap(10_000, Some(1024)),
            1024 - RESERVED_FDS as usize
        );
        assert_eq!(connection_cap(500, Some(1024)), 500);
        assert_eq!(connection_cap(500, None), 500);
        assert_eq!(connection_cap(500, Some(10)), 0);
    }

    #[test]
    fn a_proxy_names_the_client() {
        let p = peers(10, 10);
        let mut h = HeaderMap::new();
        h.insert(
            "x-forwarded-for",
            "203.0.113.9, 198.51.100.7".parse().unwrap(),
        );
        let proxy: IpAddr = "127.0.0.1".parse().unwrap();
        let stranger: IpAddr = "192.0.2.5".parse().unwrap();
        assert_eq!(p.client_ip(proxy, &h).to_string(), "198.51.100.7");
        assert_eq!(
            p.client_ip(stranger, &h),
            stranger,
            "only a proxy is believed"
        );
        assert_eq!(p.client_ip(proxy, &HeaderMap::new()), proxy);
    }

    #[test]
    fn an_address_shares_one_budget() {
        let p = peers(10, 10);
        let ip: IpAddr = "192.0.2.1".parse().unwrap();
        let (one, two) = (p.budget(ip), p.budget(ip));
        assert!(Arc::ptr_eq(&one, &two));
        let now = Instant::now();
        let burst = Limits::default().ip_message_burst() as usize;
        assert_eq!((0..burst * 2).filter(|_| one.take(now)).count(), burst);
        assert!(!two.take(now), "the other socket finds it empty too");
    }
}
