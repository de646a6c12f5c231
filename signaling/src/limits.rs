//! Rate limits, as plain state machines that take the time as an argument.

use std::time::Instant;

/// A token bucket: `burst` messages at once, refilled at `per_second`.
#[derive(Debug, Clone)]
pub struct TokenBucket {
    per_second: f64,
    burst: f64,
    tokens: f64,
    last: Instant,
}

impl TokenBucket {
    /// A full bucket; call when the connection opens.
    pub fn new(now: Instant, per_second: f64, burst: f64) -> Self {
        TokenBucket {
            per_second,
            burst,
            tokens: burst,
            last: now,
        }
    }

    /// Call for every message; `false` means it exceeds the rate and must be refused.
    pub fn take(&mut self, now: Instant) -> bool {
        let elapsed = now.saturating_duration_since(self.last).as_secs_f64();
        self.last = now;
        self.tokens = (self.tokens + elapsed * self.per_second).min(self.burst);
        if self.tokens >= 1.0 {
            self.tokens -= 1.0;
            true
        } else {
            false
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Duration;

    #[test]
    fn allows_a_burst_then_the_rate() {
        let t0 = Instant::now();
        let mut b = TokenBucket::new(t0, 10.0, 5.0);
        assert_eq!((0..8).filter(|_| b.take(t0)).count(), 5, "the burst");
        assert!(!b.take(t0));
        assert!(
            b.take(t0 + Duration::from_millis(100)),
            "one token per 100 ms"
        );
        assert!(!b.take(t0 + Duration::from_millis(150)));
        let later = t0 + Duration::from_secs(60);
        assert_eq!(
            (0..8).filter(|_| b.take(later)).count(),
            5,
            "refills only up to the burst"
        );
    }
}
