//! Shapes of the server's statistics that clients of the admin API read (`GET
//! /api/admin/media`): the load generator compares windows of them.

use serde::{Deserialize, Serialize};

/// Forwarding delays in microseconds: non-empty buckets and quantiles.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct DelaySnapshot {
    /// Forwarded packets counted.
    pub count: u64,
    /// Median (µs; 0 when empty).
    pub p50_us: u64,
    /// 99th percentile (µs).
    pub p99_us: u64,
    /// 99.9th percentile (µs).
    pub p999_us: u64,
    /// The largest bucket's upper bound (µs).
    pub max_us: u64,
    /// `[upper bound in µs, count]` of every non-empty bucket, ascending.
    pub buckets: Vec<(u64, u64)>,
}

impl DelaySnapshot {
    /// The snapshot of these `[upper bound in µs, count]` buckets, ascending.
    pub fn from_buckets(buckets: Vec<(u64, u64)>) -> Self {
        let count = buckets.iter().map(|(_, n)| n).sum();
        let quantile = |q: f64| {
            // The smallest bucket at or past q of the count, as hdrhistogram reports quantiles.
            let rank = ((q * count as f64).ceil() as u64).max(1);
            let mut seen = 0;
            buckets
                .iter()
                .find(|(_, n)| {
                    seen += n;
                    seen >= rank
                })
                .map_or(0, |(us, _)| *us)
        };
        DelaySnapshot {
            count,
            p50_us: quantile(0.5),
            p99_us: quantile(0.99),
            p999_us: quantile(0.999),
            max_us: buckets.last().map_or(0, |(us, _)| *us),
            buckets,
        }
    }

    /// The delays recorded after `earlier` (a snapshot of the same plane, taken before).
    /// Buckets that `earlier` has more of than `self` (another plane's snapshot) count as empty.
    pub fn since(&self, earlier: &DelaySnapshot) -> DelaySnapshot {
        let buckets = self
            .buckets
            .iter()
            .map(|&(us, n)| {
                let before = earlier
                    .buckets
                    .iter()
                    .find(|(b, _)| *b == us)
                    .map_or(0, |(_, n)| *n);
                (us, n.saturating_sub(before))
            })
            .filter(|(_, n)| *n > 0)
            .collect();
        Self::from_buckets(buckets)
    }
}
