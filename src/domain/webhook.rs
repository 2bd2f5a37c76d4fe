//! A webhook endpoint (Standard Webhooks): where the workspace's events are sent, which
//! kinds, whether it is on, and its signing secret (only ever sealed here: the plaintext
//! `whsec_…` is shown once by the command that made it). A rotation keeps the previous
//! secret signing until `previous_valid_until`; delivery that failed for the whole retry
//! schedule disables the endpoint (`webhook.disabled`), which a change turning it on again
//! undoes.

use serde::{Deserialize, Serialize};
use time::OffsetDateTime;

use super::auth_config::SealedSecret;
use super::{Aggregate, DomainError, Event};

/// Most event filters one endpoint may hold.
pub const MAX_FILTERS: usize = 50;

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct WebhookCreated {
    pub url: String,
    /// Event kinds (`connection.expired`) or prefixes ending in `.` (`connection.`).
    pub events: Vec<String>,
    pub enabled: bool,
    pub secret: SealedSecret,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct WebhookUpdated {
    pub url: String,
    pub events: Vec<String>,
    pub enabled: bool,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct WebhookSecretRotated {
    pub secret: SealedSecret,
    /// The replaced secret still signs (beside the new one) until then.
    #[serde(with = "time::serde::rfc3339")]
    pub previous_valid_until: OffsetDateTime,
}

/// Delivery gave up: the event at `position` failed for the whole retry schedule.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct WebhookDisabled {
    pub position: u64,
    pub attempts: u32,
    #[serde(with = "time::serde::rfc3339")]
    pub failing_since: OffsetDateTime,
    pub reason: String,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct WebhookReplayRequested {
    pub from_position: u64,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct WebhookDeleted {
    /// The data key of its secrets, shredded with it.
    pub data_key_id: String,
}

/// What delivery needs: the endpoint's settings and the secrets that sign now.
#[derive(Debug, Default, Clone)]
pub struct Webhook {
    pub created: bool,
    pub deleted: bool,
    pub url: String,
    pub events: Vec<String>,
    pub enabled: bool,
    pub secret: Option<SealedSecret>,
    pub previous: Option<(SealedSecret, OffsetDateTime)>,
}

impl Webhook {
    fn live(&self) -> Result<(), DomainError> {
        if self.created && !self.deleted {
            Ok(())
        } else {
            Err(DomainError::NotFound("webhook"))
        }
    }

    /// Whether an event of `kind` goes to this endpoint: a filter is a kind or a prefix
    /// ending in `.`; no filter at all sends every kind.
    pub fn wants(events: &[String], kind: &str) -> bool {
        events.is_empty()
            || events.iter().any(|f| match f.strip_suffix('.') {
                Some(_) => kind.starts_with(f.as_str()),
                None => f == kind,
            })
    }

    /// The secrets that sign a delivery at `now`: the current one, then the previous one
    /// while its grace period lasts.
    pub fn signing_secrets(&self, now: OffsetDateTime) -> Vec<&SealedSecret> {
        let mut out: Vec<&SealedSecret> = self.secret.iter().collect();
        if let Some((previous, until)) = &self.previous {
            if now < *until {
                out.push(previous);
            }
        }
        out
    }
}

/// Checks an endpoint's event filters: kinds or prefixes ending in `.`, of lowercase
/// letters, digits, `_` and `.`.
pub fn check_filters(events: &[String]) -> Result<(), DomainError> {
    let invalid = |reason: String| DomainError::Invalid {
        field: "events",
        reason,
    };
    if events.len() > MAX_FILTERS {
        return Err(invalid(format!("at most {MAX_FILTERS} filters")));
    }
    for f in events {
        let fits = !f.is_empty()
            && f.len() <= 100
            && !f.starts_with('.')
            && f.chars()
                .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '_' || c == '.');
        if !fits {
            return Err(invalid(format!(
                "{f:?} is not an event kind (connection.expired) or a prefix ending in . (connection.)"
            )));
        }
    }
    Ok(())
}

pub enum WebhookCommand {
    Create(WebhookCreated),
    Update(WebhookUpdated),
    RotateSecret {
        secret: SealedSecret,
        now: OffsetDateTime,
        grace: time::Duration,
    },
    Disable(WebhookDisabled),
    Replay {
        from_position: u64,
    },
    Delete,
}

impl Aggregate for Webhook {
    const TYPE: &'static str = "webhook";
    type Command = WebhookCommand;

    fn apply(&mut self, event: &Event) {
        match event {
            Event::WebhookCreated(e) => {
                self.created = true;
                self.url = e.url.clone();
                self.events = e.events.clone();
                self.enabled = e.enabled;
                self.secret = Some(e.secret.clone());
            }
            Event::WebhookUpdated(e) => {
                self.url = e.url.clone();
                self.events = e.events.clone();
                self.enabled = e.enabled;
            }
            Event::WebhookSecretRotated(e) => {
                self.previous = self
                    .secret
                    .replace(e.secret.clone())
                    .map(|old| (old, e.previous_valid_until));
            }
            Event::WebhookDisabled(_) => self.enabled = false,
            Event::WebhookDeleted(_) => self.deleted = true,
            _ => {}
        }
    }

    fn decide(&self, command: &WebhookCommand) -> Result<Event, DomainError> {
        match command {
            WebhookCommand::Create(c) => {
                if self.created {
                    return Err(DomainError::AlreadyExists("webhook"));
                }
                check_filters(&c.events)?;
                Ok(Event::WebhookCreated(c.clone()))
            }
            WebhookCommand::Update(u) => {
                self.live()?;
                check_filters(&u.events)?;
                Ok(Event::WebhookUpdated(u.clone()))
            }
            WebhookCommand::RotateSecret { secret, now, grace } => {
                self.live()?;
                Ok(Event::WebhookSecretRotated(WebhookSecretRotated {
                    secret: secret.clone(),
                    previous_valid_until: *now + *grace,
                }))
            }
            WebhookCommand::Disable(d) => {
                self.live()?;
                if !self.enabled {
                    return Err(DomainError::Rejected("the webhook is already off".into()));
                }
                Ok(Event::WebhookDisabled(d.clone()))
            }
            WebhookCommand::Replay { from_position } => {
                self.live()?;
                if *from_position == 0 {
                    return Err(DomainError::Invalid {
                        field: "from_position",
                        reason: "log positions start at 1".into(),
                    });
                }
                Ok(Event::WebhookReplayRequested(WebhookReplayRequested {
                    from_position: *from_position,
                }))
            }
            WebhookCommand::Delete => {
                self.live()?;
                let data_key_id = self
                    .secret
                    .as_ref()
                    .map(|s| s.data_key_id.clone())
                    .unwrap_or_default();
                Ok(Event::WebhookDeleted(WebhookDeleted { data_key_id }))
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn sealed(n: u8) -> SealedSecret {
        SealedSecret {
            data_key_id: "dk_1".into(),
            nonce: "n".into(),
            ciphertext: format!("c{n}"),
            fingerprint: format!("hmac-sha256:{}", "ab".repeat(32)),
        }
    }

    fn created() -> Webhook {
        let mut w = Webhook::default();
        let ev = w
            .decide(&WebhookCommand::Create(WebhookCreated {
                url: "https://hooks.example.com/in".into(),
                events: vec!["connection.".into()],
                enabled: true,
                secret: sealed(1),
            }))
            .unwrap();
        w.apply(&ev);
        w
    }

    #[test]
    fn filters_are_kinds_or_prefixes() {
        let f = |v: &[&str]| v.iter().map(|s| s.to_string()).collect::<Vec<_>>();
        assert!(Webhook::wants(&f(&["connection."]), "connection.expired"));
        assert!(!Webhook::wants(&f(&["connection."]), "connections.x"));
        assert!(Webhook::wants(
            &f(&["connection.expired"]),
            "connection.expired"
        ));
        assert!(!Webhook::wants(
            &f(&["connection.expired"]),
            "connection.expired_x"
        ));
        assert!(Webhook::wants(&[], "tool.completed"));
        assert!(check_filters(&f(&["Connection."])).is_err());
        assert!(check_filters(&f(&[""])).is_err());
        assert!(check_filters(&f(&[".x"])).is_err());
        assert!(check_filters(&f(&["tool.", "connection.expired"])).is_ok());
    }

    #[test]
    fn a_rotation_keeps_the_old_secret_signing_for_its_grace_period() {
        let mut w = created();
        let now = time::macros::datetime!(2026-01-02 03:04:05 UTC);
        let ev = w
            .decide(&WebhookCommand::RotateSecret {
                secret: sealed(2),
                now,
                grace: time::Duration::hours(24),
            })
            .unwrap();
        w.apply(&ev);
        let at = |t| {
            w.signing_secrets(t)
                .iter()
                .map(|s| s.ciphertext.clone())
                .collect::<Vec<_>>()
        };
        assert_eq!(at(now), ["c2", "c1"]);
        assert_eq!(at(now + time::Duration::hours(24)), ["c2"]);
    }

    #[test]
    fn disabling_twice_and_changing_a_deleted_webhook_are_refused() {
        let mut w = created();
        let off = WebhookCommand::Disable(WebhookDisabled {
            position: 7,
            attempts: 20,
            failing_since: time::macros::datetime!(2026-01-02 03:04:05 UTC),
            reason: "HTTP 500".into(),
        });
        let ev = w.decide(&off).unwrap();
        w.apply(&ev);
        assert!(!w.enabled);
        assert!(w.decide(&off).is_err());
        let ev = w.decide(&WebhookCommand::Delete).unwrap();
        w.apply(&ev);
        assert!(matches!(&ev, Event::WebhookDeleted(d) if d.data_key_id == "dk_1"));
        assert!(w.decide(&WebhookCommand::Delete).is_err());
        assert!(w
            .decide(&WebhookCommand::Replay { from_position: 1 })
            .is_err());
    }
}
