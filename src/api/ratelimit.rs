//! The request budgets the edge enforces (per instance), on `governor`'s keyed GCRA
//! limiters. A key's state is dropped only once it is indistinguishable from a fresh one
//! (`retain_recent`), so many new keys (addresses) can never reset anyone's budget.

use std::net::IpAddr;
use std::num::NonZeroU32;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::OnceLock;
use std::time::Duration;

use governor::clock::{Clock, DefaultClock};
use governor::{DefaultKeyedRateLimiter, Quota};

/// The request budgets the edge enforces, per instance.
pub struct Limits {
    /// Per API key (or end user, or scoped token's key): every authorized request.
    pub requests: RateLimiter,
    /// Per workspace: every authorized request of all its keys and end users together.
    pub workspaces: RateLimiter,
    /// Per client address: refused requests (each an `access.denied` event, whether the
    /// refusal comes from authentication or from a handler), so refusals cannot flood the
    /// ledger.
    pub denials: RateLimiter,
    /// Per client address: refused OAuth callbacks (bad `state`). Valid callbacks are never
    /// charged, so users behind one proxy address cannot be locked out of connect flows.
    pub callbacks: RateLimiter,
}

impl Limits {
    /// Counts each budget's refusals in `metrics` (`authledger_rate_limit_refusals_total`).
    pub fn count_refusals_in(&self, metrics: &crate::metrics::Metrics) {
        for (budget, limiter) in [
            ("requests", &self.requests),
            ("workspaces", &self.workspaces),
            ("denials", &self.denials),
            ("callbacks", &self.callbacks),
        ] {
            let _ = limiter.refusals.set(metrics.rate_limit_refusals_of(budget));
        }
    }
}

impl Default for Limits {
    fn default() -> Self {
        Limits {
            requests: RateLimiter::new(50.0, 100.0),
            workspaces: RateLimiter::new(500.0, 1000.0),
            denials: RateLimiter::new(10.0, 100.0),
            callbacks: RateLimiter::new(10.0, 100.0),
        }
    }
}

/// Checks between two evictions of keys back at a full budget.
const EVICT_EVERY: u64 = 4096;

pub struct RateLimiter {
    limiter: DefaultKeyedRateLimiter<String>,
    clock: DefaultClock,
    checks: AtomicU64,
    /// Where refusals are counted, once the server has said (`Limits::count_refusals_in`).
    refusals: OnceLock<prometheus_client::metrics::counter::Counter>,
}

impl RateLimiter {
    /// `rate_per_sec` sustained (0: only the burst, refilled once an hour), `burst` at once.
    pub fn new(rate_per_sec: f64, burst: f64) -> Self {
        let period = if rate_per_sec > 0.0 && rate_per_sec.is_finite() {
            Duration::from_secs_f64(1.0 / rate_per_sec).max(Duration::from_nanos(1))
        } else {
            Duration::from_secs(3600)
        };
        let burst = NonZeroU32::new(burst.clamp(1.0, f64::from(u32::MAX)) as u32)
            .unwrap_or(NonZeroU32::MIN);
        let quota = Quota::with_period(period)
            .unwrap_or_else(|| Quota::per_second(NonZeroU32::MIN))
            .allow_burst(burst);
        RateLimiter {
            limiter: DefaultKeyedRateLimiter::dashmap(quota),
            clock: DefaultClock::default(),
            checks: AtomicU64::new(0),
            refusals: OnceLock::new(),
        }
    }

    /// Takes one unit of `key`'s budget; on refusal, how long until one is available.
    pub fn check(&self, key: &str) -> Result<(), Duration> {
        if self.checks.fetch_add(1, Ordering::Relaxed) % EVICT_EVERY == EVICT_EVERY - 1 {
            self.limiter.retain_recent();
        }
        self.limiter
            .check_key(&key.to_string())
            .map_err(|not_until| {
                if let Some(refusals) = self.refusals.get() {
                    refusals.inc();
                }
                not_until.wait_time_from(self.clock.now())
            })
    }

    /// Keys with state (for tests: eviction keeps only the ones not back at a full budget).
    pub fn len(&self) -> usize {
        self.limiter.retain_recent();
        self.limiter.len()
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }
}

/// The budget key of a client address: the address for IPv4, its /64 for IPv6 (one host
/// commonly holds a whole /64, so per-address keys would be free to multiply).
pub fn client_key(ip: IpAddr) -> String {
    match ip {
        IpAddr::V4(v4) => format!("ip:{v4}"),
        IpAddr::V6(v6) => match v6.to_ipv4_mapped() {
            Some(v4) => format!("ip:{v4}"),
            None => {
                let s = v6.segments();
                format!("ip:{:x}:{:x}:{:x}:{:x}::/64", s[0], s[1], s[2], s[3])
            }
        },
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn burst_then_refused_with_a_wait() {
        let l = RateLimiter::new(1.0, 3.0);
        for _ in 0..3 {
            assert!(l.check("a").is_ok());
        }
        let wait = l.check("a").expect_err("over the burst");
        assert!(wait <= Duration::from_secs(1));
        // Another key has its own budget.
        assert!(l.check("b").is_ok());
    }

    #[test]
    fn many_new_keys_never_reset_a_spent_budget() {
        let l = RateLimiter::new(0.0, 2.0);
        assert!(l.check("victim").is_ok());
        assert!(l.check("victim").is_ok());
        assert!(l.check("victim").is_err());
        for i in 0..(3 * EVICT_EVERY) {
            let _ = l.check(&format!("spray-{i}"));
        }
        assert!(l.check("victim").is_err(), "the spent budget stays spent");
    }

    #[test]
    fn keys_back_at_a_full_budget_are_evicted() {
        let l = RateLimiter::new(1_000_000_000.0, 1.0);
        for i in 0..100 {
            let _ = l.check(&format!("k{i}"));
        }
        std::thread::sleep(Duration::from_millis(5));
        assert_eq!(l.len(), 0);
    }

    #[test]
    fn ipv6_clients_share_their_64() {
        let a: IpAddr = "2001:db8:1:2:aaaa::1".parse().expect("ip");
        let b: IpAddr = "2001:db8:1:2:bbbb::2".parse().expect("ip");
        assert_eq!(client_key(a), client_key(b));
        let m: IpAddr = "::ffff:10.0.0.1".parse().expect("ip");
        assert_eq!(client_key(m), "ip:10.0.0.1");
    }
}
