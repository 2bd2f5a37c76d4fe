//! Step-up approvals: the connection's user (with an end-user JWT) or an admin key approves
//! or denies a pending destructive call. An end user sees only their own approvals.

use super::AgentError;
use crate::app::AppState;
use crate::commands::{wait_for_write, EndUser};
use crate::domain::approval::{Approval, ApprovalCommand};
use crate::ledger::{Actor, ActorType};

/// Who decides: an admin API key, or an end user (only for their own connections).
#[derive(Debug, Clone)]
pub enum Approver {
    Admin { workspace_id: String, actor: Actor },
    User(EndUser),
}

impl Approver {
    fn workspace_id(&self) -> &str {
        match self {
            Approver::Admin { workspace_id, .. } => workspace_id,
            Approver::User(u) => &u.workspace_id,
        }
    }

    fn actor(&self) -> Actor {
        match self {
            Approver::Admin { actor, .. } => actor.clone(),
            Approver::User(u) => Actor {
                actor_type: ActorType::User,
                id: u.user_id.clone(),
            },
        }
    }
}

pub async fn load(state: &AppState, ws: &str, id: &str) -> Result<Approval, AgentError> {
    match state.ledger.load::<Approval>(ws, id).await {
        Ok(a) => Ok(a),
        Err(crate::ledger::LedgerError::Envelope(_)) => Ok(Approval::default()),
        Err(e) => Err(e.into()),
    }
}

/// The approval if the approver may see it: in the workspace, and the end user's own.
pub async fn visible(
    state: &AppState,
    approver: &Approver,
    id: &str,
) -> Result<Approval, AgentError> {
    let ws = approver.workspace_id();
    let approval = load(state, ws, id).await?;
    let Some(requested) = &approval.requested else {
        let elsewhere = state
            .projections
            .aggregate_elsewhere(ws, "approval", id)
            .await
            .unwrap_or(false);
        return Err(AgentError::NotFound {
            what: "approval",
            elsewhere,
        });
    };
    if let Approver::User(u) = approver {
        if requested.user_id != u.user_id {
            return Err(AgentError::OtherUser);
        }
    }
    Ok(approval)
}

pub async fn decide(
    state: &AppState,
    approver: &Approver,
    id: &str,
    approve: bool,
    note: Option<String>,
) -> Result<Approval, AgentError> {
    visible(state, approver, id).await?;
    if let Some(n) = &note {
        crate::domain::check_name("note", n, 1000)?;
    }
    let now = state.clock.now();
    let command = if approve {
        ApprovalCommand::Approve { now, note }
    } else {
        ApprovalCommand::Deny { now, note }
    };
    let committed = state
        .ledger
        .execute::<Approval>(approver.workspace_id(), id, &approver.actor(), &command)
        .await?;
    wait_for_write(state, committed.position).await?;
    visible(state, approver, id).await
}
