//! Step 3: step-up. A destructive call runs only with an approval bound to exactly this call
//! (tool, connection, argument fingerprint); without one, an approval is requested and the
//! call is refused with its id (`approval-required`). Other calls take no approval.

use super::record::Call;
use super::target::Target;
use super::tools::Risk;
use super::ExecuteInput;
use crate::app::AppState;
use crate::commands::agents::{approvals, invalid, AgentError};
use crate::commands::connections::UsableConnection;
use crate::commands::Caller;
use crate::domain::approval::{
    Approval, ApprovalCommand, ApprovalRequested, CallBinding, APPROVAL_TTL,
};

/// The approval this call runs under (`None` for a call that needs none).
pub(super) async fn check(
    state: &AppState,
    caller: &Caller,
    (target, usable): (&Target, &UsableConnection),
    call: &Call,
    input: &ExecuteInput,
) -> Result<Option<String>, AgentError> {
    if target.def.risk != Risk::Destructive {
        if input.approval_id.is_some() {
            return Err(invalid(
                "approval_id",
                "only destructive tools take an approval",
            ));
        }
        return Ok(None);
    }
    let Some(id) = &input.approval_id else {
        return Err(request_approval(state, caller, (target, usable), call).await?);
    };
    let approval = approvals::load(state, &caller.workspace_id, id).await?;
    if approval.requested.is_none() {
        return Err(AgentError::NotFound {
            what: "approval",
            elsewhere: false,
        });
    }
    let binding = CallBinding {
        tool: &target.def.name,
        connection_id: &target.connection_id,
        argument_fingerprint: &call.fingerprint,
    };
    approval.check_use(state.clock.now(), &binding)?;
    Ok(Some(id.clone()))
}

/// Requests the user's approval of this call; the refusal that carries its id.
async fn request_approval(
    state: &AppState,
    caller: &Caller,
    (target, usable): (&Target, &UsableConnection),
    call: &Call,
) -> Result<AgentError, AgentError> {
    let id = uuid::Uuid::now_v7().to_string();
    let expires_at = state.clock.now() + APPROVAL_TTL;
    let committed = state
        .ledger
        .create::<Approval>(
            &caller.workspace_id,
            &id,
            &caller.actor(),
            &ApprovalCommand::Request(ApprovalRequested {
                tool: target.def.name.clone(),
                connection_id: target.connection_id.clone(),
                user_id: usable.connection.user_id.clone(),
                argument_fingerprint: call.fingerprint.clone(),
                expires_at,
            }),
        )
        .await?;
    crate::commands::wait_for_write(state, committed.position).await?;
    Ok(AgentError::ApprovalRequired {
        approval_id: id,
        expires_at,
    })
}
