//! `authledger export --follow`: a workspace's events as they are appended, for a SIEM.
//! Each line is an export event line (`{"type":"event","position":N,"envelope":"…"}`,
//! `schemas/README.md` §7b): the envelope exactly as signed and stored, so a receiver checks
//! it like any export line. Read from the log itself (not the projections), from a position
//! on, so a feed that stopped resumes with `--from-position` after its last line.

use futures::stream::{BoxStream, StreamExt};
use serde_json::json;

use crate::app::AppState;
use crate::ledger::envelope::open_envelope;
use crate::ledger::{LogError, RecordedEvent};

/// Which events a feed sends.
#[derive(Debug, Clone)]
pub struct FollowFilter {
    pub workspace_id: String,
    /// An event kind, or a prefix ending in '.'; `None`: every kind.
    pub kind: Option<String>,
}

impl FollowFilter {
    fn wants(&self, workspace_id: &str, kind: &str) -> bool {
        workspace_id == self.workspace_id
            && match self.kind.as_deref() {
                None => true,
                Some(k) if k.ends_with('.') => kind.starts_with(k),
                Some(k) => kind == k,
            }
    }
}

/// Why a feed stopped.
#[derive(Debug, thiserror::Error)]
pub enum FollowError {
    #[error(transparent)]
    Log(#[from] LogError),
    /// An envelope in the log does not parse: `authledger verify` says more.
    #[error("the event at position {position} cannot be read: {reason} (run authledger verify)")]
    Unreadable { position: u64, reason: String },
}

/// The feed's line for one logged event, or `None` when the filter leaves it out.
fn line(filter: &FollowFilter, event: &RecordedEvent) -> Result<Option<String>, FollowError> {
    let opened = open_envelope(&event.envelope).map_err(|e| FollowError::Unreadable {
        position: event.position,
        reason: e.to_string(),
    })?;
    if !filter.wants(&opened.body.workspace_id, &opened.body.kind) {
        return Ok(None);
    }
    let envelope = String::from_utf8_lossy(&event.envelope);
    let line = json!({ "type": "event", "position": event.position, "envelope": envelope });
    Ok(Some(format!("{line}\n")))
}

/// The lines of the events from `from` on (those already written, then new ones as they
/// come), until the log fails or the caller stops reading.
pub async fn follow(
    state: &AppState,
    filter: FollowFilter,
    from: u64,
) -> Result<BoxStream<'static, Result<String, FollowError>>, LogError> {
    let events = state.log.subscribe(from.max(1)).await?;
    Ok(events
        .filter_map(move |event| {
            let out = match event {
                Ok(e) => line(&filter, &e).transpose(),
                Err(e) => Some(Err(FollowError::Log(e))),
            };
            std::future::ready(out)
        })
        .boxed())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn kinds_and_prefixes_of_one_workspace() {
        let f = FollowFilter {
            workspace_id: "w1".into(),
            kind: Some("connection.".into()),
        };
        assert!(f.wants("w1", "connection.created"));
        assert!(!f.wants("w1", "api_key.created"));
        assert!(!f.wants("w2", "connection.created"));
        let exact = FollowFilter {
            workspace_id: "w1".into(),
            kind: Some("connection.expired".into()),
        };
        assert!(exact.wants("w1", "connection.expired"));
        assert!(!exact.wants("w1", "connection.expired_soon"));
        let all = FollowFilter {
            workspace_id: "w1".into(),
            kind: None,
        };
        assert!(all.wants("w1", "tool.completed"));
    }
}
