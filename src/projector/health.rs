//! Whether the read side keeps up with the log: the projector reports the event it cannot
//! apply, and readiness judges the lag and the time since the projections last advanced.
//! A stuck projector must never look healthy: writes would succeed while every read of
//! them answers 404 or times out.

use std::sync::Mutex;
use std::time::{Duration, Instant};

/// When the read side counts as not ready (`serve --readiness-max-lag`,
/// `--readiness-max-stall-secs`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ReadinessBounds {
    /// Most events the projections may be behind the log.
    pub max_lag: u64,
    /// Longest time the projections may stand still while the log is ahead of them.
    pub max_stall: Duration,
}

impl Default for ReadinessBounds {
    fn default() -> Self {
        ReadinessBounds {
            max_lag: 10_000,
            max_stall: Duration::from_secs(30),
        }
    }
}

/// The event the projector cannot apply, and why.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Stuck {
    pub position: u64,
    /// The event's kind, when the log could be read.
    pub kind: Option<String>,
    pub error: String,
}

impl std::fmt::Display for Stuck {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "stuck at log position {}", self.position)?;
        if let Some(kind) = &self.kind {
            write!(f, " ({kind})")?;
        }
        write!(f, ": {}", self.error)
    }
}

#[derive(Debug)]
struct State {
    stuck: Option<Stuck>,
    offset: u64,
    /// When `offset` last changed (or the service started).
    offset_since: Instant,
}

/// Shared by the projector (which reports) and readiness (which judges).
#[derive(Debug)]
pub struct ProjectionHealth {
    bounds: ReadinessBounds,
    state: Mutex<State>,
}

impl ProjectionHealth {
    pub fn new(bounds: ReadinessBounds, now: Instant) -> Self {
        ProjectionHealth {
            bounds,
            state: Mutex::new(State {
                stuck: None,
                offset: 0,
                offset_since: now,
            }),
        }
    }

    pub fn bounds(&self) -> ReadinessBounds {
        self.bounds
    }

    fn with<T>(&self, f: impl FnOnce(&mut State) -> T) -> T {
        // A poisoned lock only means a panic elsewhere; the state itself stays usable.
        let mut guard = self
            .state
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        f(&mut guard)
    }

    /// The event the projector cannot apply, if any.
    pub fn stuck(&self) -> Option<Stuck> {
        self.with(|s| s.stuck.clone())
    }

    /// Reports the event the projector cannot apply; returns whether this is news (a
    /// different position or error than already reported), so it is logged once.
    pub fn report_stuck(&self, stuck: Stuck) -> bool {
        self.with(|s| {
            let news = s.stuck.as_ref() != Some(&stuck);
            s.stuck = Some(stuck);
            news
        })
    }

    /// The projections reached `offset`; returns what it was stuck on, if it was.
    pub fn advanced(&self, offset: u64, now: Instant) -> Option<Stuck> {
        self.with(|s| {
            s.observe(offset, now);
            s.stuck.take()
        })
    }

    /// Ready, or why not, given the log's head and the projections' offset now. The
    /// offset is also read here, not only reported by the projector: with several
    /// instances, another one's projector may be the one that advances it.
    pub fn judge(&self, head: u64, offset: u64, now: Instant) -> Result<(), String> {
        let bounds = self.bounds;
        self.with(|s| {
            s.observe(offset, now);
            if let Some(stuck) = &s.stuck {
                if stuck.position > offset {
                    return Err(format!("projections {stuck}"));
                }
            }
            let lag = head.saturating_sub(offset);
            if lag > bounds.max_lag {
                return Err(format!(
                    "projections lag the log by {lag} events (bound {}; offset {offset}, head {head})",
                    bounds.max_lag
                ));
            }
            let still = now.saturating_duration_since(s.offset_since);
            if lag > 0 && still > bounds.max_stall {
                return Err(format!(
                    "projections have not advanced for {}s while the log is {lag} events ahead \
                     (bound {}s; offset {offset}, head {head})",
                    still.as_secs(),
                    bounds.max_stall.as_secs()
                ));
            }
            Ok(())
        })
    }
}

impl State {
    fn observe(&mut self, offset: u64, now: Instant) {
        if offset != self.offset {
            self.offset = offset;
            self.offset_since = now;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn health(start: Instant) -> ProjectionHealth {
        ProjectionHealth::new(
            ReadinessBounds {
                max_lag: 100,
                max_stall: Duration::from_secs(10),
            },
            start,
        )
    }

    #[test]
    fn caught_up_is_ready_however_long_the_log_is_idle() {
        let t0 = Instant::now();
        let h = health(t0);
        assert_eq!(h.judge(50, 50, t0), Ok(()));
        assert_eq!(h.judge(50, 50, t0 + Duration::from_secs(3600)), Ok(()));
    }

    #[test]
    fn lag_past_the_bound_is_not_ready() {
        let t0 = Instant::now();
        let h = health(t0);
        assert_eq!(h.judge(150, 50, t0), Ok(()));
        let why = h.judge(151, 50, t0).err().unwrap_or_default();
        assert!(
            why.contains("lag the log by 101 events (bound 100"),
            "{why}"
        );
    }

    #[test]
    fn standing_still_behind_the_log_is_not_ready_until_it_moves() {
        let t0 = Instant::now();
        let h = health(t0);
        assert_eq!(h.judge(60, 50, t0), Ok(()));
        assert_eq!(h.judge(60, 50, t0 + Duration::from_secs(10)), Ok(()));
        let why = h
            .judge(60, 50, t0 + Duration::from_secs(11))
            .err()
            .unwrap_or_default();
        assert!(why.contains("not advanced for 11s"), "{why}");
        // It moved (this instance or another): the clock starts again.
        assert_eq!(h.judge(60, 51, t0 + Duration::from_secs(12)), Ok(()));
    }

    #[test]
    fn stuck_is_not_ready_with_position_and_kind_until_it_advances() {
        let t0 = Instant::now();
        let h = health(t0);
        let stuck = Stuck {
            position: 51,
            kind: Some("workspace.identity_provider_configured".into()),
            error: "workspace change out of order".into(),
        };
        assert!(h.report_stuck(stuck.clone()));
        assert!(!h.report_stuck(stuck.clone()), "reported once");
        let why = h.judge(52, 50, t0).err().unwrap_or_default();
        assert_eq!(
            why,
            "projections stuck at log position 51 (workspace.identity_provider_configured): \
             workspace change out of order"
        );
        // Another instance applied it: not stuck here any more.
        assert_eq!(h.judge(52, 52, t0), Ok(()));
        assert_eq!(h.advanced(52, t0), Some(stuck));
        assert_eq!(h.stuck(), None);
    }
}
