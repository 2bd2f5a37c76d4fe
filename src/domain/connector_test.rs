//! A connector test run (issue 17): who tested which auth config, with which connector, and
//! how it went (the failure's class, the time it took). Never the credentials given, nor
//! what the server said (it may name hosts or users). Each run is its own aggregate, like
//! an audit query: a test changes nothing about the auth config or its version.

use serde::{Deserialize, Serialize};

/// The aggregate type of test runs.
pub const AUTH_CONFIG_TEST_AGGREGATE: &str = "auth_config_test";

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum TestOutcome {
    Ok,
    Failed,
}

impl TestOutcome {
    pub fn as_str(self) -> &'static str {
        match self {
            TestOutcome::Ok => "ok",
            TestOutcome::Failed => "failed",
        }
    }
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct AuthConfigTested {
    pub auth_config_id: String,
    /// The connector definition's id (`postgres` for the legacy `postgres` auth type).
    pub connector: String,
    pub outcome: TestOutcome,
    /// Why it failed (`unreachable`, `timeout`, `tls_failure`, `invalid_credentials`,
    /// `permission_denied`, `not_found`, `failed`); `None` when it passed.
    pub class: Option<String>,
    pub duration_ms: u64,
}
