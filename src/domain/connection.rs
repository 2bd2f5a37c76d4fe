//! Connection: one end user's account from one auth config. Its credentials (OAuth tokens or
//! the user's key) arrive sealed; the domain never sees plaintext.
//!
//! Status: `initiated → active → expired | revoked | error`, plus `needs_reconsent`.
//! Refresh is single-flight through the aggregate version: `refresh_started` takes a lease
//! (only one can append at a given version), the holder calls the provider, and
//! `refreshed` / a final `refresh_failed` / `expired` ends the round. Anyone who saw the
//! round in flight adopts its outcome instead of calling the provider again.

use serde::{Deserialize, Serialize};
use time::OffsetDateTime;

use super::auth_config::SealedSecret;
use super::{check_name, Aggregate, DomainError, Event};

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum ConnectionStatus {
    Initiated,
    Active,
    NeedsReconsent,
    Expired,
    Revoked,
    Error,
    Deleted,
}

impl ConnectionStatus {
    pub fn as_str(self) -> &'static str {
        match self {
            ConnectionStatus::Initiated => "initiated",
            ConnectionStatus::Active => "active",
            ConnectionStatus::NeedsReconsent => "needs_reconsent",
            ConnectionStatus::Expired => "expired",
            ConnectionStatus::Revoked => "revoked",
            ConnectionStatus::Error => "error",
            ConnectionStatus::Deleted => "deleted",
        }
    }

    pub fn parse(s: &str) -> Option<ConnectionStatus> {
        [
            ConnectionStatus::Initiated,
            ConnectionStatus::Active,
            ConnectionStatus::NeedsReconsent,
            ConnectionStatus::Expired,
            ConnectionStatus::Revoked,
            ConnectionStatus::Error,
            ConnectionStatus::Deleted,
        ]
        .into_iter()
        .find(|v| v.as_str() == s)
    }

    /// Whether the connection still holds a grant worth revoking and refreshing.
    pub fn is_live(self) -> bool {
        matches!(
            self,
            ConnectionStatus::Initiated
                | ConnectionStatus::Active
                | ConnectionStatus::NeedsReconsent
        )
    }
}

/// OAuth tokens as events carry them: sealed, with the access token's expiry.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct OAuthTokens {
    pub access_token: SealedSecret,
    pub refresh_token: Option<SealedSecret>,
    pub token_type: String,
    #[serde(with = "time::serde::rfc3339::option", default)]
    pub expires_at: Option<OffsetDateTime>,
}

/// OAuth connect flow started: the end user is sent to the provider.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ConnectionInitiated {
    pub auth_config_id: String,
    pub auth_config_version: u64,
    pub user_id: String,
    /// Where the end user is sent back to when the flow ends (on the config's allow-list).
    pub redirect_url: String,
    pub requested_scopes: Vec<String>,
    /// `sha256:<hex>` of the `state` parameter; the state itself is never stored.
    pub state_hash: String,
    #[serde(with = "time::serde::rfc3339")]
    pub state_expires_at: OffsetDateTime,
    /// The PKCE code verifier, sealed (absent when the config turned PKCE off).
    pub pkce_verifier: Option<SealedSecret>,
    /// The data key every secret of this connection is sealed under (shredded on delete).
    pub data_key_id: String,
}

/// A connection made from credentials the end user gave (API key, token, password).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ConnectionCreated {
    pub auth_config_id: String,
    pub auth_config_version: u64,
    pub user_id: String,
    /// The credentials as a sealed JSON object (absent for `no_auth`).
    pub credentials: Option<SealedSecret>,
    pub data_key_id: String,
}

/// The end user completed a hosted connect link (`connection.initiated` for an auth config
/// that is not OAuth): their credentials, sealed, end `initiated` and consume the link.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct CredentialsSubmitted {
    /// The credentials as a sealed JSON object (absent for `no_auth`).
    pub credentials: Option<SealedSecret>,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ConnectionAuthorized {
    /// Scopes the connection holds: those granted that were also requested (may be narrower
    /// than requested, never wider).
    pub scopes: Vec<String>,
    pub tokens: OAuthTokens,
    /// What the provider granted, when it granted more than was requested (the extra scopes
    /// are not kept). Absent from the signed form otherwise.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub granted_scopes: Option<Vec<String>>,
}

/// The callback's code is about to be sent to the provider: the state is claimed (used up
/// for every other callback) before the exchange, so the code goes out once.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct AuthorizationStarted {}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ConnectionAuthorizationFailed {
    /// The provider's `error` code (e.g. `access_denied`) or the exchange failure.
    pub error: String,
    pub error_description: Option<String>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum RefreshTrigger {
    Scheduled,
    OnDemand,
    BeforeUse,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct RefreshStarted {
    pub trigger: RefreshTrigger,
    /// Another instance may take over the refresh after this time (the holder crashed).
    #[serde(with = "time::serde::rfc3339")]
    pub lease_expires_at: OffsetDateTime,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ConnectionRefreshed {
    pub scopes: Vec<String>,
    pub tokens: OAuthTokens,
    /// Whether the provider rotated the refresh token (the old one is then dead).
    pub refresh_token_rotated: bool,
    pub attempts: u32,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct RefreshFailed {
    pub attempt: u32,
    pub error: String,
    /// Transient (5xx, timeout): retried with backoff while attempts remain.
    pub retryable: bool,
    /// The last attempt of this round: the lease ends.
    #[serde(rename = "final")]
    pub is_final: bool,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ConnectionExpired {
    pub reason: String,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct NeedsReconsent {
    pub auth_config_version: u64,
    /// Granted scopes the auth config no longer allows.
    pub removed_scopes: Vec<String>,
}

/// What the provider answered to an RFC 7009 revocation request.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ProviderRevocation {
    /// `revoked` (2xx), `failed` (error or no answer), `not_supported` (no endpoint),
    /// `nothing_to_revoke` (no token was ever issued).
    pub outcome: String,
    pub http_status: Option<u16>,
    pub detail: Option<String>,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ConnectionRevoked {
    pub reason: Option<String>,
    pub provider: ProviderRevocation,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ConnectionDeleted {
    /// The data key destroyed with it (its sealed history becomes unreadable).
    pub data_key_id: String,
}

#[derive(Debug, Default, Clone)]
pub struct Connection {
    pub status: Option<ConnectionStatus>,
    pub auth_config_id: String,
    pub auth_config_version: u64,
    pub user_id: String,
    pub redirect_url: Option<String>,
    pub requested_scopes: Vec<String>,
    pub scopes: Vec<String>,
    pub state_hash: Option<String>,
    pub state_expires_at: Option<OffsetDateTime>,
    /// A callback claimed the state and is exchanging the code (`authorization_started`).
    pub authorization_started: bool,
    pub pkce_verifier: Option<SealedSecret>,
    pub credentials: Option<SealedSecret>,
    pub tokens: Option<OAuthTokens>,
    pub data_key_id: String,
    /// Set while a refresh round holds the lease.
    pub refresh_lease: Option<OffsetDateTime>,
    /// Refresh rounds concluded (success or final failure); waiters compare it.
    pub refresh_rounds: u64,
    pub last_error: Option<String>,
}

impl Connection {
    pub fn exists(&self) -> bool {
        !matches!(self.status, None | Some(ConnectionStatus::Deleted))
    }

    /// Whether a refresh round holds an unexpired lease at `now`.
    pub fn refresh_in_flight(&self, now: OffsetDateTime) -> bool {
        self.refresh_lease.is_some_and(|until| until > now)
    }
}

pub enum ConnectionCommand {
    Initiate(ConnectionInitiated),
    Create(ConnectionCreated),
    /// A callback with a code claims the state before the exchange.
    StartAuthorization {
        state_hash: String,
        now: OffsetDateTime,
    },
    /// The provider redirected back with a code that was exchanged for tokens.
    Authorize {
        state_hash: String,
        now: OffsetDateTime,
        authorized: ConnectionAuthorized,
    },
    /// The end user submitted credentials through the hosted connect link (`state_hash` is
    /// the link's hash): single use, bound to this connection, unexpired.
    SubmitCredentials {
        state_hash: String,
        now: OffsetDateTime,
        submitted: CredentialsSubmitted,
    },
    /// The provider redirected back with an error, or the code exchange failed.
    FailAuthorization {
        state_hash: String,
        now: OffsetDateTime,
        failed: ConnectionAuthorizationFailed,
    },
    /// Take the refresh lease. `seen_rounds` is `refresh_rounds` as the caller saw it: if a
    /// round concluded since, the caller adopts that one instead.
    StartRefresh {
        now: OffsetDateTime,
        seen_rounds: u64,
        started: RefreshStarted,
    },
    CompleteRefresh(ConnectionRefreshed),
    FailRefresh(RefreshFailed),
    Expire(ConnectionExpired),
    MarkNeedsReconsent(NeedsReconsent),
    Revoke(ConnectionRevoked),
    Delete,
}

/// Why the state parameter of a callback was refused (answered 400, no state change).
pub const STATE_REJECTED: &str = "state is unknown, expired or already used";

/// The state is good: this connection's, still initiated, and either claimed by the caller
/// (`authorization_started`: the exchange may outlast the state's lifetime) or unexpired.
fn check_state(c: &Connection, state_hash: &str, now: OffsetDateTime) -> Result<(), DomainError> {
    let valid = c.status == Some(ConnectionStatus::Initiated)
        && c.state_hash.as_deref() == Some(state_hash)
        && (c.authorization_started || c.state_expires_at.is_some_and(|exp| now < exp));
    if valid {
        Ok(())
    } else {
        Err(DomainError::Rejected(STATE_REJECTED.into()))
    }
}

/// The scopes of `granted` that were `requested`, in the provider's order: a provider that
/// grants more than it was asked for does not widen a connection.
fn within(granted: &[String], requested: &[String]) -> Vec<String> {
    granted
        .iter()
        .filter(|s| requested.contains(s))
        .cloned()
        .collect()
}

fn check_user_id(user_id: &str) -> Result<(), DomainError> {
    check_name("user_id", user_id, 256)
}

impl Connection {
    fn initiate(&self, e: &ConnectionInitiated) -> Result<Event, DomainError> {
        if self.status.is_some() {
            return Err(DomainError::AlreadyExists("connection"));
        }
        check_user_id(&e.user_id)?;
        if !e.state_hash.starts_with("sha256:") {
            return Err(DomainError::Invalid {
                field: "state_hash",
                reason: "must be sha256:<hex>".into(),
            });
        }
        Ok(Event::ConnectionInitiated(e.clone()))
    }

    /// The refresh lease: only for a usable connection with a refresh token, when no round
    /// concluded since the caller looked and none is in flight.
    fn start_refresh(
        &self,
        now: OffsetDateTime,
        seen_rounds: u64,
        started: &RefreshStarted,
    ) -> Result<Event, DomainError> {
        use ConnectionStatus as S;
        let not_found = || DomainError::NotFound("connection");
        match self.status {
            Some(S::Active | S::NeedsReconsent) => {}
            None | Some(S::Deleted) => return Err(not_found()),
            Some(s) => {
                return Err(DomainError::Rejected(format!(
                    "connection is {}; only active connections are refreshed",
                    s.as_str()
                )))
            }
        }
        if self
            .tokens
            .as_ref()
            .is_none_or(|t| t.refresh_token.is_none())
        {
            return Err(DomainError::Rejected(
                "connection has no refresh token (reconnect to renew it)".into(),
            ));
        }
        if self.refresh_rounds != seen_rounds {
            return Err(DomainError::Rejected(
                "a refresh concluded meanwhile".into(),
            ));
        }
        if self.refresh_in_flight(now) {
            return Err(DomainError::Rejected("a refresh is in flight".into()));
        }
        Ok(Event::ConnectionRefreshStarted(started.clone()))
    }
}

impl Aggregate for Connection {
    const TYPE: &'static str = "connection";
    type Command = ConnectionCommand;

    fn apply(&mut self, event: &Event) {
        match event {
            Event::ConnectionInitiated(e) => {
                self.status = Some(ConnectionStatus::Initiated);
                self.auth_config_id = e.auth_config_id.clone();
                self.auth_config_version = e.auth_config_version;
                self.user_id = e.user_id.clone();
                self.redirect_url = Some(e.redirect_url.clone());
                self.requested_scopes = e.requested_scopes.clone();
                self.state_hash = Some(e.state_hash.clone());
                self.state_expires_at = Some(e.state_expires_at);
                self.pkce_verifier = e.pkce_verifier.clone();
                self.data_key_id = e.data_key_id.clone();
            }
            Event::ConnectionAuthorizationStarted(_) => {
                self.authorization_started = true;
            }
            Event::ConnectionCreated(e) => {
                self.status = Some(ConnectionStatus::Active);
                self.auth_config_id = e.auth_config_id.clone();
                self.auth_config_version = e.auth_config_version;
                self.user_id = e.user_id.clone();
                self.credentials = e.credentials.clone();
                self.data_key_id = e.data_key_id.clone();
            }
            Event::ConnectionAuthorized(e) => {
                self.status = Some(ConnectionStatus::Active);
                self.scopes = e.scopes.clone();
                self.tokens = Some(e.tokens.clone());
                // The state is single-use and the verifier done with.
                self.state_hash = None;
                self.pkce_verifier = None;
            }
            Event::ConnectionCredentialsSubmitted(e) => {
                self.status = Some(ConnectionStatus::Active);
                self.credentials = e.credentials.clone();
                // The link is single-use.
                self.state_hash = None;
            }
            Event::ConnectionAuthorizationFailed(e) => {
                self.status = Some(ConnectionStatus::Error);
                self.last_error = Some(e.error.clone());
                self.state_hash = None;
                self.pkce_verifier = None;
            }
            Event::ConnectionRefreshStarted(e) => {
                self.refresh_lease = Some(e.lease_expires_at);
            }
            Event::ConnectionRefreshed(e) => {
                self.scopes = e.scopes.clone();
                self.tokens = Some(e.tokens.clone());
                self.refresh_lease = None;
                self.refresh_rounds += 1;
                self.last_error = None;
            }
            Event::ConnectionRefreshFailed(e) => {
                self.last_error = Some(e.error.clone());
                if e.is_final {
                    self.refresh_lease = None;
                    self.refresh_rounds += 1;
                }
            }
            Event::ConnectionExpired(e) => {
                self.status = Some(ConnectionStatus::Expired);
                self.last_error = Some(e.reason.clone());
                if self.refresh_lease.take().is_some() {
                    self.refresh_rounds += 1;
                }
            }
            Event::ConnectionNeedsReconsent(_) => {
                self.status = Some(ConnectionStatus::NeedsReconsent);
            }
            Event::ConnectionRevoked(_) => {
                self.status = Some(ConnectionStatus::Revoked);
                self.state_hash = None;
                if self.refresh_lease.take().is_some() {
                    self.refresh_rounds += 1;
                }
            }
            Event::ConnectionDeleted(_) => {
                self.status = Some(ConnectionStatus::Deleted);
            }
            _ => {}
        }
    }

    fn decide(&self, command: &ConnectionCommand) -> Result<Event, DomainError> {
        use ConnectionCommand::*;
        use ConnectionStatus as S;
        let not_found = || DomainError::NotFound("connection");
        match command {
            Initiate(e) => self.initiate(e),
            Create(e) => {
                if self.status.is_some() {
                    return Err(DomainError::AlreadyExists("connection"));
                }
                check_user_id(&e.user_id)?;
                Ok(Event::ConnectionCreated(e.clone()))
            }
            StartAuthorization { state_hash, now } => {
                check_state(self, state_hash, *now)?;
                if self.authorization_started {
                    return Err(DomainError::Rejected(STATE_REJECTED.into()));
                }
                Ok(Event::ConnectionAuthorizationStarted(
                    AuthorizationStarted {},
                ))
            }
            Authorize {
                state_hash,
                now,
                authorized,
            } => {
                check_state(self, state_hash, *now)?;
                let mut authorized = authorized.clone();
                let kept = within(&authorized.scopes, &self.requested_scopes);
                if kept.len() != authorized.scopes.len() {
                    authorized.granted_scopes =
                        Some(std::mem::replace(&mut authorized.scopes, kept));
                }
                Ok(Event::ConnectionAuthorized(authorized))
            }
            SubmitCredentials {
                state_hash,
                now,
                submitted,
            } => {
                // A hosted link is never claimed by an OAuth callback: only unexpired.
                if self.authorization_started {
                    return Err(DomainError::Rejected(STATE_REJECTED.into()));
                }
                check_state(self, state_hash, *now)?;
                Ok(Event::ConnectionCredentialsSubmitted(submitted.clone()))
            }
            FailAuthorization {
                state_hash,
                now,
                failed,
            } => {
                check_state(self, state_hash, *now)?;
                Ok(Event::ConnectionAuthorizationFailed(failed.clone()))
            }
            StartRefresh {
                now,
                seen_rounds,
                started,
            } => self.start_refresh(*now, *seen_rounds, started),
            CompleteRefresh(e) => {
                if self.refresh_lease.is_none() || !self.exists() {
                    return Err(DomainError::Rejected("no refresh in flight".into()));
                }
                // A refresh never widens the connection beyond what was requested.
                let mut e = e.clone();
                e.scopes = within(&e.scopes, &self.requested_scopes);
                Ok(Event::ConnectionRefreshed(e))
            }
            FailRefresh(e) => {
                if self.refresh_lease.is_none() || !self.exists() {
                    return Err(DomainError::Rejected("no refresh in flight".into()));
                }
                Ok(Event::ConnectionRefreshFailed(e.clone()))
            }
            Expire(e) => match self.status {
                Some(S::Active | S::NeedsReconsent) => Ok(Event::ConnectionExpired(e.clone())),
                None | Some(S::Deleted) => Err(not_found()),
                Some(s) => Err(DomainError::Rejected(format!(
                    "connection is already {}",
                    s.as_str()
                ))),
            },
            MarkNeedsReconsent(e) => {
                if self.status != Some(S::Active) {
                    return Err(DomainError::Rejected("only active connections".into()));
                }
                if !e.removed_scopes.iter().any(|s| self.scopes.contains(s)) {
                    return Err(DomainError::Rejected("no granted scope was removed".into()));
                }
                Ok(Event::ConnectionNeedsReconsent(e.clone()))
            }
            Revoke(e) => match self.status {
                None | Some(S::Deleted) => Err(not_found()),
                Some(S::Revoked) => Err(DomainError::Rejected("already revoked".into())),
                Some(_) => Ok(Event::ConnectionRevoked(e.clone())),
            },
            Delete => {
                if !self.exists() {
                    return Err(not_found());
                }
                Ok(Event::ConnectionDeleted(ConnectionDeleted {
                    data_key_id: self.data_key_id.clone(),
                }))
            }
        }
    }
}

#[cfg(test)]
#[path = "connection_tests.rs"]
mod tests;
