//! Scoped tokens: issue (`token.issued`, the token carries that event's id), revoke, and
//! use (`token.used`, decided against the token's version so `max_uses` holds exactly).

use secrecy::SecretString;
use uuid::Uuid;

use super::{invalid, missing_scopes, resolve_connection, AgentError};
use crate::app::AppState;
use crate::commands::connections::UsableConnection;
use crate::commands::{wait_for_write, Caller};
use crate::domain::auth_config::AuthSettings;
use crate::domain::token::{
    check_scopes, ScopedToken, TokenCommand, TokenIssued, DEFAULT_TTL_SECS, MAX_TTL_SECS,
};
use crate::gateway::tools::Tool;
use crate::scoped_token::{self, TokenClaims, AUDIENCE};

#[derive(Debug, Default, serde::Deserialize)]
#[serde(deny_unknown_fields)]
pub struct IssueTokenInput {
    pub connection_id: Option<String>,
    pub user_id: Option<String>,
    pub auth_config_id: Option<String>,
    /// A subset of the connection's scopes; default: the tool's required scopes.
    pub scopes: Option<Vec<String>>,
    pub tool: Option<String>,
    pub ttl_seconds: Option<u32>,
    pub max_uses: Option<u32>,
}

pub struct IssuedToken {
    pub id: String,
    pub token: SecretString,
    pub expires_at: time::OffsetDateTime,
    pub issued: TokenIssued,
    pub issued_event_id: String,
}

pub async fn issue(
    state: &AppState,
    caller: &Caller,
    input: IssueTokenInput,
) -> Result<IssuedToken, AgentError> {
    let ws = &caller.workspace_id;
    let actor = caller.actor();
    let ttl = input.ttl_seconds.unwrap_or(DEFAULT_TTL_SECS);
    if ttl == 0 || ttl > MAX_TTL_SECS {
        return Err(invalid("ttl_seconds", format!("must be 1-{MAX_TTL_SECS}")));
    }
    if input.max_uses == Some(0) {
        return Err(invalid("max_uses", "must be at least 1"));
    }
    let tool = match &input.tool {
        Some(name) => Some(crate::gateway::find_tool(state, ws, name).await?.ok_or(
            AgentError::NotFound {
                what: "tool",
                elsewhere: false,
            },
        )?),
        None => None,
    };
    let scope = super::gateway_configs::scope_of(state, caller, None).await?;
    if input.tool.as_deref().is_some_and(|t| !scope.allows_tool(t)) {
        return Err(AgentError::OutsideGateway);
    }
    let user = match (&input.user_id, &input.auth_config_id) {
        (Some(u), Some(a)) => Some((u.as_str(), a.as_str())),
        (None, None) => None,
        _ => return Err(invalid("user_id", "user_id and auth_config_id go together")),
    };
    let named = input.connection_id.as_deref();
    super::check_scope_first(state, ws, &scope, input.tool.as_deref(), named, user).await?;
    let asker = super::Asker::key(caller);
    let connection_id = resolve_connection(state, ws, asker, named, user).await?;
    let usable = super::usable_or_connect(state, ws, asker, &connection_id).await?;
    let conn = &usable.connection;
    let in_scope = match &input.tool {
        Some(t) => scope.allows(&conn.auth_config_id, t),
        None => scope.allows_auth_config(&conn.auth_config_id),
    };
    if !in_scope {
        return Err(AgentError::OutsideGateway);
    }
    let scopes = scopes_to_grant(input.scopes.as_ref(), tool.as_deref(), &usable)?;
    let now = state.clock.now();
    let expires_at = now + time::Duration::seconds(i64::from(ttl));
    let id = Uuid::now_v7().to_string();
    let event_id = Uuid::now_v7();
    let signer = state.ledger.signer();
    let claims = TokenClaims {
        iss: state.connections.public_url.clone(),
        sub: conn.user_id.clone(),
        aud: AUDIENCE.into(),
        jti: id.clone(),
        iat: now.unix_timestamp(),
        exp: expires_at.unix_timestamp(),
        client_id: caller.api_key_id.clone(),
        scope: scopes.join(" "),
        workspace_id: ws.clone(),
        connection_id: connection_id.clone(),
        auth_config_id: conn.auth_config_id.clone(),
        tool: input.tool.clone(),
        max_uses: input.max_uses,
        issued_event_id: event_id.to_string(),
    };
    let token = scoped_token::sign(&signer, &claims).map_err(|e| {
        AgentError::Command(crate::domain::DomainError::Rejected(e.to_string()).into())
    })?;
    let issued = TokenIssued {
        connection_id,
        auth_config_id: conn.auth_config_id.clone(),
        user_id: conn.user_id.clone(),
        scopes,
        tool: input.tool,
        // The JWT's `exp` is whole seconds: record the same instant.
        expires_at: time::OffsetDateTime::from_unix_timestamp(claims.exp).unwrap_or(expires_at),
        max_uses: input.max_uses,
        fingerprint: scoped_token::fingerprint(&token),
        key_id: signer.key_id().to_string(),
    };
    let committed = state
        .ledger
        .create_with_id::<ScopedToken>(
            ws,
            &id,
            &actor,
            &TokenCommand::Issue(issued.clone()),
            event_id,
        )
        .await?;
    // Answered once durable, not once projected: a token's state is read from the ledger
    // (`get`, the gateway), and its projection is one audit row, which a reader sees with
    // `?min_position=` (README states the contract).
    crate::commands::written::reached(committed.position);
    Ok(IssuedToken {
        id,
        token: SecretString::from(token),
        expires_at: issued.expires_at,
        issued,
        issued_event_id: event_id.to_string(),
    })
}

/// The scopes the token carries: those asked for (or the tool's), each held by the
/// connection and asked for by its auth config, and covering what the tool needs.
fn scopes_to_grant(
    requested: Option<&Vec<String>>,
    tool: Option<&Tool>,
    usable: &UsableConnection,
) -> Result<Vec<String>, AgentError> {
    let conn = &usable.connection;
    let scopes = match (requested, tool) {
        (Some(s), _) => s.clone(),
        (None, Some(t)) => t.definition().required_scopes.clone(),
        (None, None) => return Err(invalid("scopes", "give scopes, or a tool")),
    };
    check_scopes(&scopes)?;
    let missing = missing_scopes(&scopes, &conn.scopes);
    if !missing.is_empty() {
        return Err(AgentError::ScopeEscalation(missing));
    }
    // Never beyond what the auth config asks for either (a connection authorized before
    // extra grants were dropped may still hold some).
    if let Some(AuthSettings::Oauth2(o)) = &usable.config.settings {
        let beyond = missing_scopes(&scopes, &o.scopes);
        if !beyond.is_empty() {
            return Err(AgentError::ScopeEscalation(beyond));
        }
    }
    if let Some(t) = &tool {
        crate::gateway::check_tool_fits(t, &usable.config)?;
        let uncovered = missing_scopes(&t.definition().required_scopes, &scopes);
        if !uncovered.is_empty() {
            return Err(invalid(
                "scopes",
                format!("the tool needs {}", uncovered.join(" ")),
            ));
        }
    }
    Ok(scopes)
}

/// A token's state as the ledger holds it (never the token).
pub async fn get(state: &AppState, caller: &Caller, id: &str) -> Result<ScopedToken, AgentError> {
    let token = load(state, &caller.workspace_id, id).await?;
    if token.issued.is_none() {
        return Err(not_found_anywhere(state, &caller.workspace_id, id).await);
    }
    Ok(token)
}

pub async fn revoke(
    state: &AppState,
    caller: &Caller,
    id: &str,
    reason: Option<String>,
) -> Result<ScopedToken, AgentError> {
    get(state, caller, id).await?;
    if let Some(r) = &reason {
        crate::domain::check_name("reason", r, 500)?;
    }
    let committed = state
        .ledger
        .execute::<ScopedToken>(
            &caller.workspace_id,
            id,
            &caller.actor(),
            &TokenCommand::Revoke { reason },
        )
        .await?;
    wait_for_write(state, committed.position).await?;
    get(state, caller, id).await
}

async fn load(state: &AppState, ws: &str, id: &str) -> Result<ScopedToken, AgentError> {
    match state.ledger.load::<ScopedToken>(ws, id).await {
        Ok(t) => Ok(t),
        // An id that cannot name an aggregate names no token.
        Err(crate::ledger::LedgerError::Envelope(_)) => Ok(ScopedToken::default()),
        Err(e) => Err(e.into()),
    }
}

async fn not_found_anywhere(state: &AppState, ws: &str, id: &str) -> AgentError {
    // Tokens have no projection row: another workspace's token is found in the audit view.
    let elsewhere = state
        .projections
        .aggregate_elsewhere(ws, "token", id)
        .await
        .unwrap_or(false);
    AgentError::NotFound {
        what: "token",
        elsewhere,
    }
}

/// Whether the token could be used for `tool` now (records nothing; `use_token` decides).
pub async fn check_usable(
    state: &AppState,
    claims: &TokenClaims,
    tool: &str,
) -> Result<(), AgentError> {
    let token = load(state, &claims.workspace_id, &claims.jti).await?;
    token.check_use(state.clock.now(), tool)?;
    Ok(())
}

/// Whether the token can still be used at all (revoked, expired and used-up tokens list
/// no tools). Records nothing.
pub async fn check_live(state: &AppState, claims: &TokenClaims) -> Result<(), AgentError> {
    let token = load(state, &claims.workspace_id, &claims.jti).await?;
    token.check_live(state.clock.now())?;
    Ok(())
}

/// Records one use of a token for a tool call (refused when revoked, expired, used up or
/// bound to another tool).
pub async fn use_token(
    state: &AppState,
    claims: &TokenClaims,
    actor: &crate::ledger::Actor,
    tool: &str,
    tool_call_id: &str,
) -> Result<(), AgentError> {
    let command = TokenCommand::Use {
        now: state.clock.now(),
        tool: tool.to_string(),
        tool_call_id: tool_call_id.to_string(),
    };
    state
        .ledger
        .execute::<ScopedToken>(&claims.workspace_id, &claims.jti, actor, &command)
        .await?;
    Ok(())
}
