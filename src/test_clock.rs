//! Test-only: the service's clock, moved by the test that runs it. Compiled only with debug
//! assertions (`lib.rs` gates the module), so a release build has no way to set its time.
//!
//! `AUTHLEDGER_TEST_CLOCK_FILE` names a file holding a whole number of seconds; the clock
//! reads the system time plus that offset, re-reading the file on every call, so an
//! end-to-end test expires a scoped token, an API key or a point in time by writing a
//! larger number instead of sleeping. A missing or unreadable file means no offset.

use std::path::PathBuf;
use std::sync::Arc;

use time::OffsetDateTime;

use crate::clock::Clock;

/// The variable that names the clock file.
pub const CLOCK_FILE_ENV: &str = "AUTHLEDGER_TEST_CLOCK_FILE";

/// The system clock shifted by the seconds written in `path`.
#[derive(Debug, Clone)]
pub struct FileClock {
    path: PathBuf,
}

impl FileClock {
    pub fn new(path: PathBuf) -> FileClock {
        FileClock { path }
    }

    fn offset(&self) -> time::Duration {
        std::fs::read_to_string(&self.path)
            .ok()
            .and_then(|s| s.trim().parse::<i64>().ok())
            .map(time::Duration::seconds)
            .unwrap_or(time::Duration::ZERO)
    }
}

impl Clock for FileClock {
    fn now(&self) -> OffsetDateTime {
        OffsetDateTime::now_utc() + self.offset()
    }
}

/// The clock `AUTHLEDGER_TEST_CLOCK_FILE` names, when it is set.
pub fn from_env() -> Option<Arc<dyn Clock>> {
    let path = std::env::var_os(CLOCK_FILE_ENV)?;
    tracing::warn!(file = ?path, "test clock: the service's time follows a file (debug build)");
    Some(Arc::new(FileClock::new(PathBuf::from(path))))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_clock_moves_by_the_seconds_in_its_file() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("clock");
        let clock = FileClock::new(path.clone());
        let before = OffsetDateTime::now_utc();
        assert!(
            clock.now() - before < time::Duration::seconds(5),
            "no file: no offset"
        );
        std::fs::write(&path, "3600\n").unwrap();
        let moved = clock.now() - OffsetDateTime::now_utc();
        assert!(
            (time::Duration::seconds(3595)..=time::Duration::seconds(3600)).contains(&moved),
            "{moved}"
        );
        std::fs::write(&path, "not a number").unwrap();
        assert!(clock.now() - OffsetDateTime::now_utc() < time::Duration::seconds(5));
    }
}
