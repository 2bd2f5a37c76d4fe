//! Revocation at the provider (RFC 7009) and in the ledger, deletion with crypto-shredding,
//! and re-consent after an auth config narrowed its scopes.

use super::provider::open_client;
use super::*;
use crate::commands::agents::At;
use crate::commands::{record_denial, EndUser};
use crate::domain::access::{sanitize, AccessDenied, DenialReason};
use crate::ledger::ActorType;

/// Revokes a connection: first at the provider (RFC 7009, when it has an endpoint and a
/// token was issued; its answer is recorded), then in the ledger.
pub async fn revoke(
    state: &AppState,
    workspace_id: &str,
    id: &str,
    actor: &Actor,
    reason: Option<String>,
) -> Result<u64, CommandError> {
    let conn = load::<Connection>(state, workspace_id, id)
        .await?
        .filter(Connection::exists)
        .ok_or(CommandError::Domain(DomainError::NotFound("connection")))?;
    if conn.status == Some(ConnectionStatus::Revoked) {
        return Err(DomainError::Rejected("already revoked".into()).into());
    }
    let provider = revoke_at_provider(state, workspace_id, id, &conn).await;
    let c = state
        .ledger
        .execute::<Connection>(
            workspace_id,
            id,
            actor,
            &ConnectionCommand::Revoke(ConnectionRevoked { reason, provider }),
        )
        .await?;
    wait_for_write(state, c.position).await?;
    crate::commands::dynamic_credentials::drop_all_of_connection(state, workspace_id, id, actor)
        .await;
    Ok(c.position)
}

async fn revoke_at_provider(
    state: &AppState,
    ws: &str,
    id: &str,
    conn: &Connection,
) -> ProviderRevocation {
    let answer = |outcome: &str, detail: Option<String>| ProviderRevocation {
        outcome: outcome.into(),
        http_status: None,
        detail,
    };
    let Some(tokens) = &conn.tokens else {
        return answer("nothing_to_revoke", None);
    };
    let config = match load::<AuthConfig>(state, ws, &conn.auth_config_id).await {
        Ok(Some(c)) => c,
        _ => return answer("failed", Some("auth config unavailable".into())),
    };
    let revocation_url = match &config.settings {
        Some(AuthSettings::Oauth2(o)) => o.revocation_url.clone(),
        _ => None,
    };
    let Some(url) = revocation_url else {
        return answer("not_supported", None);
    };
    let client = match open_client(state, ws, &conn.auth_config_id, &config).await {
        Ok(c) => c,
        Err(e) => return answer("failed", Some(e.to_string())),
    };
    // The refresh token revokes the whole grant (RFC 7009 §2.1); else the access token.
    let (sealed, field, hint) = match &tokens.refresh_token {
        Some(rt) => (rt, "refresh_token", "refresh_token"),
        None => (&tokens.access_token, "access_token", "access_token"),
    };
    let token = match sealing::open_text(state, slot(ws, id, field), sealed).await {
        Ok(t) => t,
        Err(e) => return answer("failed", Some(e.to_string())),
    };
    let a = state
        .oauth
        .revoke(&url, &client.credentials(), token.expose_secret(), hint)
        .await;
    ProviderRevocation {
        outcome: a.outcome.as_str().to_string(),
        http_status: a.http_status,
        detail: a.detail,
    }
}

/// Deletes a connection: revoked first if still live, then the deletion event, then its
/// data key is destroyed (its sealed tokens in the log become unrecoverable).
pub async fn delete(
    state: &AppState,
    workspace_id: &str,
    id: &str,
    actor: &Actor,
) -> Result<u64, CommandError> {
    let conn = load::<Connection>(state, workspace_id, id)
        .await?
        .filter(Connection::exists)
        .ok_or(CommandError::Domain(DomainError::NotFound("connection")))?;
    if conn.status != Some(ConnectionStatus::Revoked) {
        match revoke(state, workspace_id, id, actor, Some("deleted".into())).await {
            Ok(_) | Err(CommandError::Domain(DomainError::Rejected(_))) => {}
            Err(e) => return Err(e),
        }
    } else {
        // Users a revocation could not drop then go before the credential that drops them.
        crate::commands::dynamic_credentials::drop_all_of_connection(
            state,
            workspace_id,
            id,
            actor,
        )
        .await;
    }
    let c = state
        .ledger
        .execute::<Connection>(workspace_id, id, actor, &ConnectionCommand::Delete)
        .await?;
    state.vault.shred(&conn.data_key_id).await?;
    wait_for_write(state, c.position).await?;
    Ok(c.position)
}

/// After an auth config narrowed its scopes: every active connection that holds a removed
/// scope needs the user's consent again.
pub async fn mark_needs_reconsent(
    state: &AppState,
    workspace_id: &str,
    auth_config_id: &str,
    auth_config_version: u64,
    removed_scopes: &[String],
    actor: &Actor,
) -> Result<u64, CommandError> {
    let mut marked = 0;
    for row in state
        .projections
        .live_connections_of(workspace_id, auth_config_id)
        .await?
    {
        let command = ConnectionCommand::MarkNeedsReconsent(crate::domain::NeedsReconsent {
            auth_config_version,
            removed_scopes: removed_scopes.to_vec(),
        });
        match state
            .ledger
            .execute::<Connection>(workspace_id, &row.id, actor, &command)
            .await
        {
            Ok(c) => {
                marked += 1;
                wait_for_write(state, c.position).await?;
            }
            Err(LedgerError::Domain(_)) => {}
            Err(e) => return Err(e.into()),
        }
    }
    Ok(marked)
}

/// An end user revokes one of their own connections. Another user's (or another
/// workspace's) connection is not found, exactly like an unknown id, and the attempt is
/// recorded as `access.denied` (404) under `at`.
pub async fn revoke_own(
    state: &AppState,
    user: &EndUser,
    id: &str,
    reason: Option<String>,
    at: At<'_>,
) -> Result<u64, CommandError> {
    let actor = Actor {
        actor_type: ActorType::User,
        id: user.user_id.clone(),
    };
    let row = state.projections.connection(&user.workspace_id, id).await?;
    let mine = row.as_ref().is_some_and(|r| {
        r.user_id == user.user_id && r.status != ConnectionStatus::Deleted.as_str()
    });
    if !mine {
        let reason = if row.is_some() {
            Some(DenialReason::OtherUser)
        } else if state
            .projections
            .connection_elsewhere(&user.workspace_id, id)
            .await?
        {
            Some(DenialReason::OtherWorkspace)
        } else {
            None
        };
        if let Some(reason) = reason {
            let denial = AccessDenied {
                method: at.method.to_string(),
                route: at.route.to_string(),
                status: 404,
                reason,
                target_id: at.target.map(|t| sanitize(t, 128)),
            };
            record_denial(state, Some(&user.workspace_id), actor, denial).await;
        }
        return Err(DomainError::NotFound("connection").into());
    }
    revoke(state, &user.workspace_id, id, &actor, reason).await
}
