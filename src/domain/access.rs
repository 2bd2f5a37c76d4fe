//! Denied access attempts. Each is its own aggregate (one event), so a flood of denials
//! never contends on a shared chain.

use serde::{Deserialize, Serialize};

/// A caller-supplied string made safe to keep in the ledger: at most `max` characters of
/// `[A-Za-z0-9_-]`.
pub fn sanitize(s: &str, max: usize) -> String {
    s.chars()
        .filter(|c| c.is_ascii_alphanumeric() || *c == '-' || *c == '_')
        .take(max)
        .collect()
}

/// Why a request was refused.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum DenialReason {
    MissingCredentials,
    UnknownKey,
    RevokedKey,
    ExpiredKey,
    /// Authenticated, but the role lacks the permission.
    RoleNotPermitted,
    /// The id exists, in another workspace (answered exactly like an unknown id).
    OtherWorkspace,
    /// An end-user JWT that does not verify (signature, issuer, audience, algorithm, ...).
    InvalidToken,
    /// An end-user JWT past its `exp` (or before its `nbf`).
    ExpiredToken,
    /// An OAuth callback whose `state` is unknown, expired or already used (answered 400).
    InvalidOauthState,
    /// An end user asked for another user's resource (answered like an unknown id), or an
    /// agent named a connection of another user than the one it acts for.
    OtherUser,
    /// An agent asked for scopes the connection (or its token) was not granted.
    ScopeEscalation,
    /// A scoped token presented for another connection or tool than it was issued for.
    TokenMismatch,
    /// A scoped token that was revoked.
    RevokedToken,
    /// A scoped token with no uses left.
    TokenUsedUp,
    /// An agent key bound to gateways asked for a tool or auth config outside them.
    OutsideGateway,
    /// An end-user JWT that cannot be checked: the workspace's identity provider (its
    /// JWKS) cannot be reached (answered 503).
    IdentityProviderUnavailable,
    /// A console sign-in with an email no member has, or that has not joined yet.
    UnknownMember,
    /// A console sign-in with the wrong password.
    WrongPassword,
    /// A console sign-in refused before the password was checked: too many failures for
    /// this account or from this address (answered 429).
    SignInThrottled,
    /// A console form sent without the session's CSRF token, or from another origin.
    InvalidCsrf,
    /// A console sign-up link that is unknown, used or expired.
    InvalidInvite,
    /// A console sign-in whose password was right but whose second-factor code was not.
    WrongSecondFactor,
    /// A second-factor code that was already accepted once (RFC 6238 §5.2).
    SecondFactorReused,
    /// A hosted connect link that is unknown, expired or already used (answered 400).
    InvalidConnectLink,
    /// An agent key asked to start a connect flow for a user it may not act for (the
    /// workspace does not let agents start connect flows for any user).
    ConnectNotAllowed,
    /// A team SSO callback whose state is missing, expired or already used, or whose
    /// `id_token` carries another nonce than the flow's.
    InvalidSsoState,
    /// A team SSO sign-in whose provider did not mark the email verified.
    SsoEmailUnverified,
    /// A team SSO sign-in for a member bound to another account (`sub`) at the provider.
    SsoSubjectMismatch,
    /// The team SSO provider refused or failed: an error at the callback, a failed code
    /// exchange, an `id_token` that does not verify, a discovery document that does not fit.
    SsoProviderError,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct AccessDenied {
    /// HTTP method and the route template (never the raw path, which the caller controls).
    pub method: String,
    pub route: String,
    pub status: u16,
    pub reason: DenialReason,
    /// The id the caller asked for, when the route names one.
    pub target_id: Option<String>,
}

pub const DENIAL_AGGREGATE: &str = "access_denial";
