//! Per-key token buckets (per instance). `take` is pure so it is tested without a clock.

use std::collections::HashMap;
use std::sync::Mutex;
use std::time::{Duration, Instant};

#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Bucket {
    tokens: f64,
    at: Instant,
}

/// Takes one token at `now` from a bucket refilled at `rate`/s up to `burst`; on refusal,
/// how long until a token is available.
pub fn take(
    bucket: Option<Bucket>,
    now: Instant,
    rate: f64,
    burst: f64,
) -> (Bucket, Result<(), Duration>) {
    let b = bucket.unwrap_or(Bucket {
        tokens: burst,
        at: now,
    });
    let elapsed = now.saturating_duration_since(b.at).as_secs_f64();
    let tokens = (b.tokens + elapsed * rate).min(burst);
    if tokens >= 1.0 {
        (
            Bucket {
                tokens: tokens - 1.0,
                at: now,
            },
            Ok(()),
        )
    } else {
        let wait = if rate > 0.0 {
            (1.0 - tokens) / rate
        } else {
            3600.0
        };
        (
            Bucket { tokens, at: now },
            Err(Duration::from_secs_f64(wait)),
        )
    }
}

/// The request budgets the edge enforces, per instance.
pub struct Limits {
    /// Per API key (or end user): every authorized request.
    pub requests: RateLimiter,
    /// Per client address: refused requests (each an `access.denied` event) and OAuth
    /// callbacks, so refusals cannot flood the ledger.
    pub denials: RateLimiter,
}

impl Default for Limits {
    fn default() -> Self {
        Limits {
            requests: RateLimiter::new(50.0, 100.0),
            denials: RateLimiter::new(10.0, 100.0),
        }
    }
}

pub struct RateLimiter {
    rate: f64,
    burst: f64,
    buckets: Mutex<HashMap<String, Bucket>>,
}

impl RateLimiter {
    pub fn new(rate_per_sec: f64, burst: f64) -> Self {
        RateLimiter {
            rate: rate_per_sec.max(0.0),
            burst: burst.max(1.0),
            buckets: Mutex::new(HashMap::new()),
        }
    }

    pub fn check(&self, key: &str) -> Result<(), Duration> {
        let Ok(mut buckets) = self.buckets.lock() else {
            return Ok(());
        };
        if buckets.len() > 100_000 {
            buckets.clear();
        }
        let (bucket, verdict) = take(
            buckets.get(key).copied(),
            Instant::now(),
            self.rate,
            self.burst,
        );
        buckets.insert(key.to_string(), bucket);
        verdict
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn burst_then_refill() {
        let t0 = Instant::now();
        let mut b = None;
        for _ in 0..3 {
            let (nb, v) = take(b, t0, 2.0, 3.0);
            assert!(v.is_ok());
            b = Some(nb);
        }
        let (nb, v) = take(b, t0, 2.0, 3.0);
        assert_eq!(v, Err(Duration::from_secs_f64(0.5)));
        let (_, v) = take(Some(nb), t0 + Duration::from_millis(500), 2.0, 3.0);
        assert!(v.is_ok());
    }
}
