//! The auditors are audited: every audit query and export is recorded with who asked and
//! which filters (never the results). Each is its own aggregate, like access denials.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct AuditQueried {
    /// The route template asked (e.g. `/v1/audit/events`).
    pub route: String,
    /// The filters as given (query parameter → value), cursor included.
    pub filters: BTreeMap<String, String>,
}

pub const AUDIT_QUERY_AGGREGATE: &str = "audit_query";
