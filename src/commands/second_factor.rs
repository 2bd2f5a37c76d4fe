//! Members' second factor (TOTP, RFC 6238): setting it up, completing a sign-in with a
//! code, and an admin's reset. The shared secret is sealed under the member's own data key
//! (the one that seals the password hash, shredded when the member is removed); a code is
//! accepted once, since the member's events record the newest accepted time step.

use secrecy::ExposeSecret;

use super::members::{self, MemberSession, SignInError};
use super::sealing::{self, SecretSlot};
use super::{wait_for_write, Caller, CommandError};
use crate::app::AppState;
use crate::crypto::totp;
use crate::domain::member::{Member, MemberCommand};
use crate::domain::workspace::{Workspace, WorkspaceCommand};
use crate::domain::{DenialReason, DomainError, MemberSecondFactorEnrolled};
use crate::ledger::{Actor, ActorType};

const SIGN_IN_ROUTE: &str = "/console/sign-in/second-factor";

fn slot<'a>(workspace_id: &'a str, member_id: &'a str) -> SecretSlot<'a> {
    SecretSlot {
        workspace_id,
        resource_type: "member",
        resource_id: member_id,
        field: "second_factor",
    }
}

fn unix_now(state: &AppState) -> u64 {
    u64::try_from(state.clock.now().unix_timestamp()).unwrap_or(0)
}

/// Sets up the signed-in member's second factor from the secret they were shown (base32)
/// and a code their authenticator made from it (`member.second_factor_enrolled`).
pub async fn enrol(
    state: &AppState,
    session: &MemberSession,
    encoded_secret: &str,
    code: &str,
) -> Result<(), CommandError> {
    let (workspace_id, member_id) = (&session.session.workspace_id, &session.session.member_id);
    enrol_member(state, workspace_id, member_id, encoded_secret, code).await
}

/// Sets up the second factor of a member whose password was just right (the caller holds
/// proof of that) in a workspace that requires one, and opens the session.
pub async fn set_up_at_sign_in(
    state: &AppState,
    workspace_id: &str,
    member_id: &str,
    encoded_secret: &str,
    code: &str,
) -> Result<MemberSession, CommandError> {
    enrol_member(state, workspace_id, member_id, encoded_secret, code).await?;
    members::open_session(state, workspace_id, member_id, None).await
}

async fn enrol_member(
    state: &AppState,
    workspace_id: &str,
    member_id: &str,
    encoded_secret: &str,
    code: &str,
) -> Result<(), CommandError> {
    let secret = totp::decode_secret(encoded_secret)?;
    let step = totp::matching_step(&secret, code, unix_now(state)).ok_or_else(|| {
        DomainError::Invalid {
            field: "code",
            reason: "the code does not match this key; check that your device's clock is right"
                .into(),
        }
    })?;
    let member: Member = state.ledger.load(workspace_id, member_id).await?;
    let data_key_id = member
        .password
        .as_ref()
        .map(|p| p.data_key_id.clone())
        .ok_or(DomainError::NotFound("member"))?;
    let sealed = sealing::seal(state, slot(workspace_id, member_id), &data_key_id, &secret).await?;
    let actor = Actor {
        actor_type: ActorType::Member,
        id: member_id.to_string(),
    };
    let command = MemberCommand::EnrolSecondFactor(MemberSecondFactorEnrolled {
        secret: sealed,
        step,
    });
    let committed = state
        .ledger
        .execute::<Member>(workspace_id, member_id, &actor, &command)
        .await?;
    wait_for_write(state, committed.position).await?;
    Ok(())
}

/// Completes a sign-in whose password was right (the caller holds proof of that) with a
/// code: a session on a code of a step not used before; otherwise `access.denied`
/// (`wrong_second_factor` or `second_factor_reused`).
pub async fn complete_sign_in(
    state: &AppState,
    workspace_id: &str,
    member_id: &str,
    code: &str,
    throttled: bool,
) -> Result<MemberSession, SignInError> {
    let target = Actor {
        actor_type: ActorType::Member,
        id: member_id.to_string(),
    };
    let deny = |reason, status| {
        members::deny_at(
            state,
            workspace_id,
            target.clone(),
            reason,
            status,
            SIGN_IN_ROUTE,
        )
    };
    if throttled {
        deny(DenialReason::SignInThrottled, 429).await;
        return Err(SignInError::Throttled);
    }
    let member: Member = state
        .ledger
        .load(workspace_id, member_id)
        .await
        .map_err(CommandError::from)?;
    let Some(sealed) = member.second_factor.as_ref() else {
        return Err(SignInError::Refused);
    };
    let secret = sealing::open(state, slot(workspace_id, member_id), sealed).await?;
    match totp::matching_step(secret.expose_secret(), code, unix_now(state)) {
        None => {
            deny(DenialReason::WrongSecondFactor, 401).await;
            Err(SignInError::WrongCode)
        }
        Some(step) if step <= member.last_second_factor_step => {
            deny(DenialReason::SecondFactorReused, 401).await;
            Err(SignInError::WrongCode)
        }
        Some(step) => match members::open_session(state, workspace_id, member_id, Some(step)).await
        {
            Ok(session) => Ok(session),
            // Another request used the same code first (the log decided between them).
            Err(CommandError::Domain(DomainError::Rejected(_))) => {
                deny(DenialReason::SecondFactorReused, 401).await;
                Err(SignInError::WrongCode)
            }
            Err(e) => Err(e.into()),
        },
    }
}

/// Whether the workspace requires every member to sign in with a second factor.
pub async fn required(state: &AppState, workspace_id: &str) -> Result<bool, CommandError> {
    let workspace: Workspace = state.ledger.load(workspace_id, workspace_id).await?;
    Ok(workspace.second_factor_required)
}

/// An admin requires (or stops requiring) a second factor of every member
/// (`workspace.second_factor_requirement_set`); members without one set it up at their
/// next sign-in, open sessions go on. Asking for the rule already in force writes nothing
/// (a repeated `PUT`, a form sent twice).
pub async fn set_requirement(
    state: &AppState,
    caller: &Caller,
    required: bool,
) -> Result<(), CommandError> {
    super::change_workspace(
        state,
        caller,
        WorkspaceCommand::SetSecondFactorRequirement(required),
    )
    .await
}

/// An admin removes a member's second factor (a lost authenticator); their sessions end.
pub async fn reset(state: &AppState, caller: &Caller, member_id: &str) -> Result<(), CommandError> {
    members::change(state, caller, member_id, MemberCommand::ResetSecondFactor).await
}
