//! Dynamic credential: a database user the ledger created for an agent from a connection's
//! administrative credential, with a random password, the auth config's grants and an
//! expiry. Each is its own aggregate: `credential.issued` (recorded before the user is
//! created), then one drop: `credential.drop_started` claims it (at the aggregate's
//! version, so of several instances one drops) with a lease, and `credential.expired` or
//! `credential.revoked` records that the user is gone. A claim whose lease ran out without
//! an outcome (the instance died) may be claimed again. The password never enters an event.

use serde::{Deserialize, Serialize};
use time::OffsetDateTime;

use super::{Aggregate, DomainError, Event};

/// What an auth config lets agents obtain as dynamic credentials (PostgreSQL and MySQL
/// connectors): the longest TTL and named grant templates, each a list of privileges on a
/// schema (all its tables, or the ones named). Agents name templates, never SQL.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct DynamicCredentialsPolicy {
    pub max_ttl_seconds: u64,
    pub grants: std::collections::BTreeMap<String, Vec<GrantRule>>,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct GrantRule {
    pub privileges: Vec<Privilege>,
    /// PostgreSQL: the schema (default `public`); MySQL: the database (default the
    /// connector's).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub schema: Option<String>,
    /// Only these tables; every table of the schema when empty.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub tables: Vec<String>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "UPPERCASE")]
pub enum Privilege {
    Select,
    Insert,
    Update,
    Delete,
}

impl Privilege {
    pub fn as_sql(self) -> &'static str {
        match self {
            Privilege::Select => "SELECT",
            Privilege::Insert => "INSERT",
            Privilege::Update => "UPDATE",
            Privilege::Delete => "DELETE",
        }
    }
}

/// The longest TTL an auth config may allow (a week).
pub const MAX_TTL_SECONDS: u64 = 7 * 24 * 3600;

/// Whether a grant template's name is well formed (`read`, `write_orders`).
pub fn grant_name_ok(name: &str) -> bool {
    let mut chars = name.chars();
    name.len() <= 40
        && chars.next().is_some_and(|c| c.is_ascii_lowercase())
        && chars.all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '_')
}

impl DynamicCredentialsPolicy {
    pub fn check(&self) -> Result<(), DomainError> {
        let invalid = |reason: &str| DomainError::Invalid {
            field: "dynamic_credentials",
            reason: reason.to_string(),
        };
        if self.max_ttl_seconds == 0 || self.max_ttl_seconds > MAX_TTL_SECONDS {
            return Err(invalid("max_ttl_seconds is 1 to 604800 (a week)"));
        }
        if self.grants.is_empty() || self.grants.len() > 16 {
            return Err(invalid("1 to 16 named grants"));
        }
        for (name, rules) in &self.grants {
            if !grant_name_ok(name) {
                return Err(invalid(
                    "a grant's name is 1-40 of a-z, 0-9 and _, starting with a letter",
                ));
            }
            if rules.is_empty() || rules.len() > 32 {
                return Err(invalid("each grant has 1 to 32 rules"));
            }
            for rule in rules {
                if rule.privileges.is_empty() {
                    return Err(invalid("each rule names at least one privilege"));
                }
                if rule.tables.len() > 64 {
                    return Err(invalid("a rule names at most 64 tables"));
                }
                for identifier in rule.schema.iter().chain(&rule.tables) {
                    if identifier.is_empty()
                        || identifier.chars().count() > 63
                        || identifier.chars().any(char::is_control)
                    {
                        return Err(invalid(
                            "schema and table names are 1-63 characters, no control characters",
                        ));
                    }
                }
            }
        }
        Ok(())
    }
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct CredentialIssued {
    pub connection_id: String,
    pub auth_config_id: String,
    pub user_id: String,
    /// The connector's driver (`postgres`, `mysql`).
    pub driver: String,
    /// The database user's name (made by the ledger, never by the agent).
    pub username: String,
    /// The auth config's grant names the user holds.
    pub grants: Vec<String>,
    pub ttl_seconds: u64,
    #[serde(with = "time::serde::rfc3339")]
    pub expires_at: OffsetDateTime,
    /// HMAC fingerprint of the password (correlation only, never the password).
    pub password_fingerprint: String,
}

/// Why a dynamic user is dropped.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum DropReason {
    /// Its TTL ran out (the scheduler).
    Expired,
    /// Its connection was revoked.
    ConnectionRevoked,
    /// Creating it failed part way: whatever was made is dropped.
    NotCreated,
}

impl DropReason {
    pub fn as_str(self) -> &'static str {
        match self {
            DropReason::Expired => "expired",
            DropReason::ConnectionRevoked => "connection_revoked",
            DropReason::NotCreated => "not_created",
        }
    }
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct CredentialDropStarted {
    pub connection_id: String,
    pub reason: DropReason,
    /// Until when this claim holds; after it, another instance may claim the drop again.
    #[serde(with = "time::serde::rfc3339")]
    pub lease_until: OffsetDateTime,
}

/// The user is gone (`credential.expired` for `expired`, `credential.revoked` otherwise).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct CredentialDropped {
    pub connection_id: String,
    pub username: String,
    pub reason: DropReason,
}

#[derive(Debug, Default, Clone)]
pub struct DynamicCredential {
    pub issued: Option<CredentialIssued>,
    /// The current drop claim: its reason and lease.
    pub dropping: Option<(DropReason, OffsetDateTime)>,
    /// Drops claimed so far (more than one: earlier ones did not finish).
    pub drop_attempts: u32,
    pub dropped: Option<DropReason>,
}

impl DynamicCredential {
    /// Issued and not yet dropped.
    pub fn live(&self) -> bool {
        self.issued.is_some() && self.dropped.is_none()
    }
}

pub enum DynamicCredentialCommand {
    Issue(CredentialIssued),
    /// Claim the drop at `now` until `lease_until`; an expiry before the TTL is refused.
    StartDrop {
        reason: DropReason,
        now: OffsetDateTime,
        lease_until: OffsetDateTime,
    },
    /// Record the user gone (after the drop succeeded under this claim).
    FinishDrop,
}

impl Aggregate for DynamicCredential {
    const TYPE: &'static str = "dynamic_credential";
    type Command = DynamicCredentialCommand;

    fn apply(&mut self, event: &Event) {
        match event {
            Event::CredentialIssued(e) => self.issued = Some(e.clone()),
            Event::CredentialDropStarted(e) => {
                self.dropping = Some((e.reason, e.lease_until));
                self.drop_attempts = self.drop_attempts.saturating_add(1);
            }
            Event::CredentialExpired(e) | Event::CredentialRevoked(e) => {
                self.dropped = Some(e.reason);
                self.dropping = None;
            }
            _ => {}
        }
    }

    fn decide(&self, command: &DynamicCredentialCommand) -> Result<Event, DomainError> {
        let issued = || {
            self.issued
                .as_ref()
                .ok_or(DomainError::NotFound("dynamic credential"))
        };
        match command {
            DynamicCredentialCommand::Issue(e) => {
                if self.issued.is_some() {
                    return Err(DomainError::AlreadyExists("dynamic credential"));
                }
                if e.grants.is_empty() || e.ttl_seconds == 0 {
                    return Err(DomainError::Invalid {
                        field: "grants",
                        reason: "a dynamic credential holds at least one grant and a TTL".into(),
                    });
                }
                Ok(Event::CredentialIssued(e.clone()))
            }
            DynamicCredentialCommand::StartDrop {
                reason,
                now,
                lease_until,
            } => {
                let issued = issued()?;
                if self.dropped.is_some() {
                    return Err(DomainError::Rejected("the user is already dropped".into()));
                }
                if let Some((_, lease)) = self.dropping {
                    if lease > *now {
                        return Err(DomainError::Rejected("a drop is in progress".into()));
                    }
                }
                if *reason == DropReason::Expired && issued.expires_at > *now {
                    return Err(DomainError::Rejected("not expired yet".into()));
                }
                Ok(Event::CredentialDropStarted(CredentialDropStarted {
                    connection_id: issued.connection_id.clone(),
                    reason: *reason,
                    lease_until: *lease_until,
                }))
            }
            DynamicCredentialCommand::FinishDrop => {
                let issued = issued()?;
                let Some((reason, _)) = self.dropping.filter(|_| self.dropped.is_none()) else {
                    return Err(DomainError::Rejected("no drop in progress".into()));
                };
                let dropped = CredentialDropped {
                    connection_id: issued.connection_id.clone(),
                    username: issued.username.clone(),
                    reason,
                };
                Ok(match reason {
                    DropReason::Expired => Event::CredentialExpired(dropped),
                    DropReason::ConnectionRevoked | DropReason::NotCreated => {
                        Event::CredentialRevoked(dropped)
                    }
                })
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use time::macros::datetime;

    fn issued() -> CredentialIssued {
        CredentialIssued {
            connection_id: "c1".into(),
            auth_config_id: "a1".into(),
            user_id: "u1".into(),
            driver: "postgres".into(),
            username: "al_dyn_0011223344556677".into(),
            grants: vec!["read".into()],
            ttl_seconds: 600,
            expires_at: datetime!(2026-01-01 00:10 UTC),
            password_fingerprint: format!("hmac-sha256:{}", "ab".repeat(32)),
        }
    }

    fn check(given: &[Event], when: DynamicCredentialCommand) -> Result<Event, DomainError> {
        let mut state = DynamicCredential::default();
        for e in given {
            state.apply(e);
        }
        state.decide(&when)
    }

    fn start(reason: DropReason, now: OffsetDateTime) -> DynamicCredentialCommand {
        DynamicCredentialCommand::StartDrop {
            reason,
            now,
            lease_until: now + time::Duration::seconds(60),
        }
    }

    #[test]
    fn expiry_waits_for_the_ttl_revocation_does_not() {
        let given = [Event::CredentialIssued(issued())];
        let early = datetime!(2026-01-01 00:05 UTC);
        assert!(check(&given, start(DropReason::Expired, early)).is_err());
        assert!(matches!(
            check(&given, start(DropReason::ConnectionRevoked, early)),
            Ok(Event::CredentialDropStarted(_))
        ));
        let late = datetime!(2026-01-01 00:10 UTC);
        assert!(check(&given, start(DropReason::Expired, late)).is_ok());
    }

    #[test]
    fn one_claim_at_a_time_and_one_outcome() {
        let now = datetime!(2026-01-01 00:11 UTC);
        let claim = match check(
            &[Event::CredentialIssued(issued())],
            start(DropReason::Expired, now),
        ) {
            Ok(e) => e,
            Err(e) => unreachable!("{e}"),
        };
        let given = [Event::CredentialIssued(issued()), claim];
        let mut state = DynamicCredential::default();
        given.iter().for_each(|e| state.apply(e));
        assert_eq!(state.drop_attempts, 1);
        // A second claim inside the lease is refused; after it, taken over.
        assert!(check(&given, start(DropReason::Expired, now)).is_err());
        let later = now + time::Duration::seconds(61);
        assert!(check(&given, start(DropReason::Expired, later)).is_ok());
        let done = check(&given, DynamicCredentialCommand::FinishDrop);
        let Ok(done @ Event::CredentialExpired(_)) = done else {
            unreachable!("{done:?}")
        };
        let given = [given[0].clone(), given[1].clone(), done];
        assert!(check(&given, DynamicCredentialCommand::FinishDrop).is_err());
        assert!(check(&given, start(DropReason::ConnectionRevoked, later)).is_err());
    }

    #[test]
    fn finishing_without_a_claim_is_refused() {
        assert!(check(
            &[Event::CredentialIssued(issued())],
            DynamicCredentialCommand::FinishDrop
        )
        .is_err());
        assert!(check(&[], DynamicCredentialCommand::FinishDrop).is_err());
    }
}
