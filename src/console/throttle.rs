//! Failed console sign-ins per account and per client address: past a few failures in a
//! window, sign-in is refused before the password is looked at. Per instance (a restart
//! forgets it); every refusal is still an `access.denied` event in the log.

use std::collections::HashMap;
use std::sync::Mutex;
use std::time::{Duration, Instant};

const WINDOW: Duration = Duration::from_secs(15 * 60);
/// Failures of one account within the window before it is throttled.
const PER_ACCOUNT: usize = 5;
/// Failures from one address (any accounts) within the window before it is throttled.
const PER_ADDRESS: usize = 20;
/// Keys kept at most; past it the oldest failures are forgotten first.
const MAX_KEYS: usize = 100_000;

#[derive(Default)]
pub struct Throttle {
    failures: Mutex<HashMap<String, Vec<Instant>>>,
}

impl Throttle {
    /// Whether sign-in for `account` from `address` is refused now.
    pub fn throttled(&self, account: &str, address: &str, now: Instant) -> bool {
        let Ok(mut map) = self.failures.lock() else {
            return true;
        };
        let mut recent = |key: String| {
            let list = map.entry(key).or_default();
            list.retain(|t| now.duration_since(*t) < WINDOW);
            list.len()
        };
        recent(format!("account:{account}")) >= PER_ACCOUNT
            || recent(format!("address:{address}")) >= PER_ADDRESS
    }

    pub fn failed(&self, account: &str, address: &str, now: Instant) {
        let Ok(mut map) = self.failures.lock() else {
            return;
        };
        if map.len() >= MAX_KEYS {
            map.retain(|_, list| list.last().is_some_and(|t| now.duration_since(*t) < WINDOW));
        }
        for key in [format!("account:{account}"), format!("address:{address}")] {
            map.entry(key).or_default().push(now);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn five_failures_throttle_the_account_not_others_and_the_window_ends_it() {
        let t = Throttle::default();
        let now = Instant::now();
        for _ in 0..PER_ACCOUNT {
            assert!(!t.throttled("a", "ip:1", now));
            t.failed("a", "ip:1", now);
        }
        assert!(t.throttled("a", "ip:2", now));
        assert!(!t.throttled("b", "ip:1", now));
        assert!(!t.throttled("a", "ip:1", now + WINDOW));
    }
}
