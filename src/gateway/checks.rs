//! Steps 2 and 4: what the call may do, and what it spends. The arguments must match the
//! tool's schema; the tool's scopes must be granted on the connection (OAuth) and held by
//! the scoped token; a token that can no longer be used (revoked, expired, used up) is
//! refused before anything is recorded on its behalf, approval requests included. Once the
//! call is decided, the token's use and the approval are recorded against their versions
//! (so `max_uses` and an approval's single execution hold with any number of instances).

use serde_json::Value;

use super::record::Call;
use super::target::Target;
use super::tools::ToolError;
use super::Authority;
use crate::app::AppState;
use crate::commands::agents::{invalid, missing_scopes, tokens, AgentError};
use crate::commands::connections::UsableConnection;
use crate::commands::Caller;
use crate::domain::approval::{Approval, ApprovalCommand};
use crate::domain::auth_config::AuthSettings;

/// Arguments, scopes, and the token's use as it stands (records nothing).
pub(super) async fn check_call(
    state: &AppState,
    authority: &Authority,
    target: &Target,
    usable: &UsableConnection,
    arguments: &Value,
) -> Result<(), AgentError> {
    target
        .tool
        .check_arguments(arguments)
        .map_err(|e| match e {
            ToolError::InvalidArguments(problems) => AgentError::InvalidArguments(problems),
            other => invalid("arguments", other.to_string()),
        })?;
    let required = &target.def.required_scopes;
    if matches!(usable.config.settings, Some(AuthSettings::Oauth2(_))) {
        held(required, &usable.connection.scopes)?;
    }
    if let Some(claims) = authority.token() {
        held(required, &claims.scopes())?;
        tokens::check_usable(state, claims, &target.def.name).await?;
    }
    Ok(())
}

/// Records the token's use and consumes the approval, before the call: each runs its call
/// at most once.
pub(super) async fn spend(
    state: &AppState,
    caller: &Caller,
    authority: &Authority,
    call: &Call,
    approval_id: Option<&str>,
    target: &Target,
) -> Result<(), AgentError> {
    let actor = caller.actor();
    if let Some(claims) = authority.token() {
        tokens::use_token(state, claims, &actor, &target.def.name, &call.id).await?;
    }
    if let Some(id) = approval_id {
        state
            .ledger
            .execute::<Approval>(
                &caller.workspace_id,
                id,
                &actor,
                &ApprovalCommand::Consume {
                    now: state.clock.now(),
                    tool_call_id: call.id.clone(),
                },
            )
            .await?;
    }
    Ok(())
}

/// Refuses scopes `required` beyond `granted`.
fn held(required: &[String], granted: &[String]) -> Result<(), AgentError> {
    let missing = missing_scopes(required, granted);
    if missing.is_empty() {
        Ok(())
    } else {
        Err(AgentError::ScopeEscalation(missing))
    }
}
