//! Scoped token: a short-lived capability an agent holds instead of a user's credential.
//! The token itself (a signed JWS) is never stored; its `token.issued` event records its
//! fingerprint and everything it allows. Each use is a `token.used` event, decided against
//! the aggregate version, so `max_uses` holds exactly even under concurrent use.

use serde::{Deserialize, Serialize};
use time::OffsetDateTime;

use super::{Aggregate, DomainError, Event};

/// Longest lifetime a scoped token may have.
pub const MAX_TTL_SECS: u32 = 900;
/// Lifetime when the request names none.
pub const DEFAULT_TTL_SECS: u32 = 300;

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct TokenIssued {
    pub connection_id: String,
    pub auth_config_id: String,
    pub user_id: String,
    pub scopes: Vec<String>,
    /// The one tool the token may call, if it is bound to one.
    pub tool: Option<String>,
    #[serde(with = "time::serde::rfc3339")]
    pub expires_at: OffsetDateTime,
    pub max_uses: Option<u32>,
    /// `sha256:<hex>` of the token string (never the token).
    pub fingerprint: String,
    /// The signing key (JWKS `kid`) that signed the token.
    pub key_id: String,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct TokenUsed {
    /// The connection the token is for (so each event reads on its own in an export).
    pub connection_id: String,
    /// 1 for the first use.
    pub use_number: u32,
    pub tool: String,
    /// The tool call this use authorised.
    pub tool_call_id: String,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct TokenRevoked {
    pub reason: Option<String>,
}

/// Why a token may not be used (each is its own problem type at the API).
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum TokenRefusal {
    #[error("the token has expired")]
    Expired,
    #[error("the token has been revoked")]
    Revoked,
    #[error("the token has no uses left")]
    UsedUp,
    #[error("the token is bound to another tool")]
    OtherTool,
}

#[derive(Debug, Default, Clone)]
pub struct ScopedToken {
    pub issued: Option<TokenIssued>,
    pub uses: u32,
    pub revoked: bool,
}

pub enum TokenCommand {
    Issue(TokenIssued),
    Use {
        now: OffsetDateTime,
        tool: String,
        tool_call_id: String,
    },
    Revoke {
        reason: Option<String>,
    },
}

impl ScopedToken {
    /// Whether the token may be used now for `tool` (pure; `decide` asks the same).
    pub fn check_use(&self, now: OffsetDateTime, tool: &str) -> Result<(), DomainError> {
        self.check_live(now)?;
        let bound_elsewhere = self
            .issued
            .as_ref()
            .and_then(|i| i.tool.as_deref())
            .is_some_and(|t| t != tool);
        if bound_elsewhere {
            return Err(DomainError::Token(TokenRefusal::OtherTool));
        }
        Ok(())
    }

    /// Whether the token can still be used at all now: issued, not revoked, not expired,
    /// uses left (what listing the tools it covers asks).
    pub fn check_live(&self, now: OffsetDateTime) -> Result<(), DomainError> {
        let issued = self.issued.as_ref().ok_or(DomainError::NotFound("token"))?;
        let refusal = if self.revoked {
            Some(TokenRefusal::Revoked)
        } else if now >= issued.expires_at {
            Some(TokenRefusal::Expired)
        } else if issued.max_uses.is_some_and(|m| self.uses >= m) {
            Some(TokenRefusal::UsedUp)
        } else {
            None
        };
        refusal.map_or(Ok(()), |r| Err(DomainError::Token(r)))
    }
}

/// `scopes` checked as a set of provider scope strings: at most 50, each 1..=256 printable.
/// (None at all is a token for a tool that needs no scope, or a credential without scopes.)
pub fn check_scopes(scopes: &[String]) -> Result<(), DomainError> {
    let bad = scopes.len() > 50
        || scopes.iter().any(|s| {
            s.is_empty() || s.len() > 256 || s.chars().any(|c| c.is_control() || c == ' ')
        });
    if bad {
        return Err(DomainError::Invalid {
            field: "scopes",
            reason: "at most 50 scopes, each 1-256 characters without spaces".into(),
        });
    }
    Ok(())
}

impl Aggregate for ScopedToken {
    const TYPE: &'static str = "token";
    type Command = TokenCommand;

    fn apply(&mut self, event: &Event) {
        match event {
            Event::TokenIssued(e) => self.issued = Some(e.clone()),
            Event::TokenUsed(e) => self.uses = e.use_number,
            Event::TokenRevoked(_) => self.revoked = true,
            _ => {}
        }
    }

    fn decide(&self, command: &TokenCommand) -> Result<Event, DomainError> {
        match command {
            TokenCommand::Issue(issued) => {
                if self.issued.is_some() {
                    return Err(DomainError::AlreadyExists("token"));
                }
                check_scopes(&issued.scopes)?;
                if issued.max_uses == Some(0) {
                    return Err(DomainError::Invalid {
                        field: "max_uses",
                        reason: "must be at least 1".into(),
                    });
                }
                Ok(Event::TokenIssued(issued.clone()))
            }
            TokenCommand::Use {
                now,
                tool,
                tool_call_id,
            } => {
                self.check_use(*now, tool)?;
                let connection_id = self
                    .issued
                    .as_ref()
                    .map(|i| i.connection_id.clone())
                    .unwrap_or_default();
                Ok(Event::TokenUsed(TokenUsed {
                    connection_id,
                    use_number: self.uses + 1,
                    tool: tool.clone(),
                    tool_call_id: tool_call_id.clone(),
                }))
            }
            TokenCommand::Revoke { reason } => {
                if self.issued.is_none() {
                    return Err(DomainError::NotFound("token"));
                }
                if self.revoked {
                    return Err(DomainError::Token(TokenRefusal::Revoked));
                }
                Ok(Event::TokenRevoked(TokenRevoked {
                    reason: reason.clone(),
                }))
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use time::macros::datetime;

    fn issued(max_uses: Option<u32>, tool: Option<&str>) -> ScopedToken {
        let mut t = ScopedToken::default();
        let ev = t
            .decide(&TokenCommand::Issue(TokenIssued {
                connection_id: "c".into(),
                auth_config_id: "a".into(),
                user_id: "u".into(),
                scopes: vec!["chat:write".into()],
                tool: tool.map(str::to_string),
                expires_at: datetime!(2026-01-01 00:05 UTC),
                max_uses,
                fingerprint: "sha256:00".into(),
                key_id: "ed25519:00".into(),
            }))
            .unwrap();
        t.apply(&ev);
        t
    }

    fn use_at(t: &ScopedToken, at: OffsetDateTime, tool: &str) -> Result<Event, DomainError> {
        t.decide(&TokenCommand::Use {
            now: at,
            tool: tool.into(),
            tool_call_id: "call".into(),
        })
    }

    #[test]
    fn uses_are_counted_up_to_max_uses() {
        let mut t = issued(Some(2), None);
        let now = datetime!(2026-01-01 00:00 UTC);
        for n in 1..=2 {
            let ev = use_at(&t, now, "slack.post_message").unwrap();
            assert!(matches!(&ev, Event::TokenUsed(u) if u.use_number == n));
            t.apply(&ev);
        }
        assert_eq!(
            use_at(&t, now, "slack.post_message"),
            Err(DomainError::Token(TokenRefusal::UsedUp))
        );
    }

    #[test]
    fn expired_revoked_and_other_tool_are_refused() {
        let t = issued(None, Some("slack.post_message"));
        let late = datetime!(2026-01-01 00:05 UTC);
        assert_eq!(
            use_at(&t, late, "slack.post_message"),
            Err(DomainError::Token(TokenRefusal::Expired))
        );
        let now = datetime!(2026-01-01 00:00 UTC);
        assert_eq!(
            use_at(&t, now, "github.delete_repository"),
            Err(DomainError::Token(TokenRefusal::OtherTool))
        );
        let mut r = t.clone();
        let ev = r.decide(&TokenCommand::Revoke { reason: None }).unwrap();
        r.apply(&ev);
        assert_eq!(
            use_at(&r, now, "slack.post_message"),
            Err(DomainError::Token(TokenRefusal::Revoked))
        );
        assert!(r.decide(&TokenCommand::Revoke { reason: None }).is_err());
    }

    #[test]
    fn unknown_tokens_and_bad_scopes_are_refused() {
        let t = ScopedToken::default();
        assert_eq!(
            use_at(&t, datetime!(2026-01-01 00:00 UTC), "x.y"),
            Err(DomainError::NotFound("token"))
        );
        assert!(check_scopes(&[]).is_ok());
        assert!(check_scopes(&["".into()]).is_err());
        assert!(check_scopes(&["a b".into()]).is_err());
        assert!(check_scopes(&["repo".into()]).is_ok());
    }
}
