//! Step-up approval: a destructive tool call waits for the connection's user (or an admin)
//! to approve it. The approval is bound to the exact call (tool, connection, argument
//! fingerprint), expires, and is consumed by exactly one execution.

use serde::{Deserialize, Serialize};
use time::OffsetDateTime;

use super::{Aggregate, DomainError, Event};

/// How long an approval request stays open.
pub const APPROVAL_TTL: time::Duration = time::Duration::minutes(15);

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ApprovalRequested {
    pub tool: String,
    pub connection_id: String,
    pub user_id: String,
    pub argument_fingerprint: String,
    #[serde(with = "time::serde::rfc3339")]
    pub expires_at: OffsetDateTime,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ApprovalDecided {
    pub tool: String,
    pub connection_id: String,
    pub note: Option<String>,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ApprovalConsumed {
    pub tool: String,
    pub connection_id: String,
    pub tool_call_id: String,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum ApprovalStatus {
    Pending,
    Approved,
    Denied,
    Consumed,
    Expired,
}

impl ApprovalStatus {
    pub fn as_str(self) -> &'static str {
        match self {
            ApprovalStatus::Pending => "pending",
            ApprovalStatus::Approved => "approved",
            ApprovalStatus::Denied => "denied",
            ApprovalStatus::Consumed => "consumed",
            ApprovalStatus::Expired => "expired",
        }
    }
}

/// Why an approval cannot be used or decided.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum ApprovalRefusal {
    #[error("the approval is still pending")]
    Pending,
    #[error("the approval was denied")]
    Denied,
    #[error("the approval was already used")]
    Consumed,
    #[error("the approval has expired")]
    Expired,
    #[error("the approval was already decided")]
    AlreadyDecided,
    #[error("the approval is for another call (tool, connection or arguments differ)")]
    OtherCall,
}

#[derive(Debug, Default, Clone)]
pub struct Approval {
    pub requested: Option<ApprovalRequested>,
    pub decision: Option<bool>,
    pub consumed_by: Option<String>,
}

/// The call an approval must match to be consumed.
pub struct CallBinding<'a> {
    pub tool: &'a str,
    pub connection_id: &'a str,
    pub argument_fingerprint: &'a str,
}

pub enum ApprovalCommand {
    Request(ApprovalRequested),
    Approve {
        now: OffsetDateTime,
        note: Option<String>,
    },
    Deny {
        now: OffsetDateTime,
        note: Option<String>,
    },
    Consume {
        now: OffsetDateTime,
        tool_call_id: String,
    },
}

impl Approval {
    pub fn status(&self, now: OffsetDateTime) -> Option<ApprovalStatus> {
        let r = self.requested.as_ref()?;
        Some(match (self.decision, &self.consumed_by) {
            (_, Some(_)) => ApprovalStatus::Consumed,
            (Some(false), _) => ApprovalStatus::Denied,
            _ if now >= r.expires_at => ApprovalStatus::Expired,
            (Some(true), _) => ApprovalStatus::Approved,
            (None, _) => ApprovalStatus::Pending,
        })
    }

    /// Whether this approval lets `call` run now.
    pub fn check_use(&self, now: OffsetDateTime, call: &CallBinding) -> Result<(), DomainError> {
        let r = self
            .requested
            .as_ref()
            .ok_or(DomainError::NotFound("approval"))?;
        if r.tool != call.tool
            || r.connection_id != call.connection_id
            || r.argument_fingerprint != call.argument_fingerprint
        {
            return Err(DomainError::Approval(ApprovalRefusal::OtherCall));
        }
        match self.status(now) {
            Some(ApprovalStatus::Approved) => Ok(()),
            Some(ApprovalStatus::Pending) => Err(DomainError::Approval(ApprovalRefusal::Pending)),
            Some(ApprovalStatus::Denied) => Err(DomainError::Approval(ApprovalRefusal::Denied)),
            Some(ApprovalStatus::Consumed) => Err(DomainError::Approval(ApprovalRefusal::Consumed)),
            Some(ApprovalStatus::Expired) => Err(DomainError::Approval(ApprovalRefusal::Expired)),
            None => Err(DomainError::NotFound("approval")),
        }
    }

    fn subject(&self) -> (String, String) {
        self.requested
            .as_ref()
            .map(|r| (r.tool.clone(), r.connection_id.clone()))
            .unwrap_or_default()
    }

    fn decided(&self, note: &Option<String>) -> ApprovalDecided {
        let (tool, connection_id) = self.subject();
        ApprovalDecided {
            tool,
            connection_id,
            note: note.clone(),
        }
    }

    fn decidable(&self, now: OffsetDateTime) -> Result<(), DomainError> {
        match self.status(now) {
            Some(ApprovalStatus::Pending) => Ok(()),
            Some(ApprovalStatus::Expired) => Err(DomainError::Approval(ApprovalRefusal::Expired)),
            Some(_) => Err(DomainError::Approval(ApprovalRefusal::AlreadyDecided)),
            None => Err(DomainError::NotFound("approval")),
        }
    }
}

impl Aggregate for Approval {
    const TYPE: &'static str = "approval";
    type Command = ApprovalCommand;

    fn apply(&mut self, event: &Event) {
        match event {
            Event::ApprovalRequested(e) => self.requested = Some(e.clone()),
            Event::ApprovalApproved(_) => self.decision = Some(true),
            Event::ApprovalDenied(_) => self.decision = Some(false),
            Event::ApprovalConsumed(e) => self.consumed_by = Some(e.tool_call_id.clone()),
            _ => {}
        }
    }

    fn decide(&self, command: &ApprovalCommand) -> Result<Event, DomainError> {
        match command {
            ApprovalCommand::Request(r) => {
                if self.requested.is_some() {
                    return Err(DomainError::AlreadyExists("approval"));
                }
                Ok(Event::ApprovalRequested(r.clone()))
            }
            ApprovalCommand::Approve { now, note } => {
                self.decidable(*now)?;
                Ok(Event::ApprovalApproved(self.decided(note)))
            }
            ApprovalCommand::Deny { now, note } => {
                self.decidable(*now)?;
                Ok(Event::ApprovalDenied(self.decided(note)))
            }
            ApprovalCommand::Consume { now, tool_call_id } => {
                match self.status(*now) {
                    Some(ApprovalStatus::Approved) => {}
                    Some(ApprovalStatus::Pending) => {
                        return Err(DomainError::Approval(ApprovalRefusal::Pending))
                    }
                    Some(ApprovalStatus::Denied) => {
                        return Err(DomainError::Approval(ApprovalRefusal::Denied))
                    }
                    Some(ApprovalStatus::Consumed) => {
                        return Err(DomainError::Approval(ApprovalRefusal::Consumed))
                    }
                    Some(ApprovalStatus::Expired) => {
                        return Err(DomainError::Approval(ApprovalRefusal::Expired))
                    }
                    None => return Err(DomainError::NotFound("approval")),
                }
                let (tool, connection_id) = self.subject();
                Ok(Event::ApprovalConsumed(ApprovalConsumed {
                    tool,
                    connection_id,
                    tool_call_id: tool_call_id.clone(),
                }))
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use time::macros::datetime;

    fn requested() -> Approval {
        let mut a = Approval::default();
        let ev = a
            .decide(&ApprovalCommand::Request(ApprovalRequested {
                tool: "github.delete_repository".into(),
                connection_id: "c".into(),
                user_id: "u".into(),
                argument_fingerprint: "sha256:aa".into(),
                expires_at: datetime!(2026-01-01 00:15 UTC),
            }))
            .unwrap();
        a.apply(&ev);
        a
    }

    const NOW: OffsetDateTime = datetime!(2026-01-01 00:00 UTC);

    fn binding(fp: &str) -> CallBinding<'_> {
        CallBinding {
            tool: "github.delete_repository",
            connection_id: "c",
            argument_fingerprint: fp,
        }
    }

    #[test]
    fn an_approved_call_runs_exactly_once() {
        let mut a = requested();
        assert_eq!(
            a.check_use(NOW, &binding("sha256:aa")),
            Err(DomainError::Approval(ApprovalRefusal::Pending))
        );
        let ev = a
            .decide(&ApprovalCommand::Approve {
                now: NOW,
                note: None,
            })
            .unwrap();
        a.apply(&ev);
        assert_eq!(
            a.check_use(NOW, &binding("sha256:bb")),
            Err(DomainError::Approval(ApprovalRefusal::OtherCall))
        );
        assert_eq!(a.check_use(NOW, &binding("sha256:aa")), Ok(()));
        let consume = ApprovalCommand::Consume {
            now: NOW,
            tool_call_id: "call-1".into(),
        };
        let ev = a.decide(&consume).unwrap();
        a.apply(&ev);
        assert_eq!(
            a.decide(&consume),
            Err(DomainError::Approval(ApprovalRefusal::Consumed))
        );
        assert_eq!(a.status(NOW), Some(ApprovalStatus::Consumed));
    }

    #[test]
    fn denied_and_expired_approvals_never_run() {
        let mut d = requested();
        let ev = d
            .decide(&ApprovalCommand::Deny {
                now: NOW,
                note: None,
            })
            .unwrap();
        d.apply(&ev);
        assert_eq!(
            d.decide(&ApprovalCommand::Approve {
                now: NOW,
                note: None
            }),
            Err(DomainError::Approval(ApprovalRefusal::AlreadyDecided))
        );
        assert_eq!(
            d.check_use(NOW, &binding("sha256:aa")),
            Err(DomainError::Approval(ApprovalRefusal::Denied))
        );
        let late = datetime!(2026-01-01 00:15 UTC);
        let mut e = requested();
        assert_eq!(
            e.decide(&ApprovalCommand::Approve {
                now: late,
                note: None
            }),
            Err(DomainError::Approval(ApprovalRefusal::Expired))
        );
        let ev = e
            .decide(&ApprovalCommand::Approve {
                now: NOW,
                note: None,
            })
            .unwrap();
        e.apply(&ev);
        assert_eq!(
            e.decide(&ApprovalCommand::Consume {
                now: late,
                tool_call_id: "x".into()
            }),
            Err(DomainError::Approval(ApprovalRefusal::Expired))
        );
    }
}
