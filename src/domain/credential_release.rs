//! Token release: an agent obtained a connection's upstream access token itself, for an API
//! the gateway does not cover. Off unless the auth config opts in; each release is one
//! event (its own aggregate), recorded before the token is handed out.

use serde::{Deserialize, Serialize};
use time::OffsetDateTime;

use super::{Aggregate, DomainError, Event};

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct CredentialReleased {
    pub connection_id: String,
    pub auth_config_id: String,
    pub user_id: String,
    /// The sealed access token's HMAC fingerprint (which token was released, never the token).
    pub fingerprint: String,
    #[serde(with = "time::serde::rfc3339::option")]
    pub expires_at: Option<OffsetDateTime>,
}

#[derive(Debug, Default, Clone)]
pub struct CredentialRelease {
    pub released: Option<CredentialReleased>,
}

impl Aggregate for CredentialRelease {
    const TYPE: &'static str = "credential_release";
    type Command = CredentialReleased;

    fn apply(&mut self, event: &Event) {
        if let Event::CredentialReleased(e) = event {
            self.released = Some(e.clone());
        }
    }

    fn decide(&self, command: &CredentialReleased) -> Result<Event, DomainError> {
        if self.released.is_some() {
            return Err(DomainError::AlreadyExists("credential release"));
        }
        Ok(Event::CredentialReleased(command.clone()))
    }
}
