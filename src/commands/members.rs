//! Team members and their console sessions, HTTP-free: invites (the first admin's at
//! bootstrap, then an admin's), sign-up through an invite, sign-in with email and password,
//! sessions decided from the member's events in the log (so every instance agrees), sign-out.
//!
//! Tokens handed out are `<workspace id>.<member id>.<secret>` (secret: 256 random bits,
//! base64url); the log keeps only `sha256:` of the secret.

use std::time::Duration;

use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use base64::Engine as _;
use rand::RngCore;
use secrecy::{ExposeSecret, SecretString};

use super::sealing::{self, SecretSlot};
use super::{record_denial, wait_for_write, Caller, CommandError};
use crate::app::AppState;
use crate::crypto::password;
use crate::domain::api_key::hash_key;
use crate::domain::member::{member_id, normalize_email, Member, MemberCommand};
use crate::domain::{AccessDenied, DenialReason, DomainError, MemberInvited, MemberSignedIn, Role};
use crate::ledger::{Actor, ActorType, Ledger};
use crate::projector::store::MemberRow;

/// How long an invite (a sign-up link) stays usable.
pub const INVITE_TTL: Duration = Duration::from_secs(7 * 24 * 3600);
/// A session's absolute lifetime, whatever its activity.
pub const SESSION_ABSOLUTE: Duration = Duration::from_secs(12 * 3600);
/// A session unused this long ends (the console's cookie carries when it was last used).
pub const SESSION_IDLE: Duration = Duration::from_secs(30 * 60);

/// A token as handed out (invite link or session cookie), parsed.
#[derive(Debug, Clone)]
pub struct MemberToken {
    pub workspace_id: String,
    pub member_id: String,
    secret: SecretString,
}

impl MemberToken {
    pub(crate) fn generate(workspace_id: &str, member_id: &str) -> Self {
        let mut raw = zeroize::Zeroizing::new([0u8; 32]);
        rand::rngs::OsRng.fill_bytes(raw.as_mut());
        MemberToken {
            workspace_id: workspace_id.to_string(),
            member_id: member_id.to_string(),
            secret: URL_SAFE_NO_PAD.encode(raw.as_ref()).into(),
        }
    }

    pub fn parse(token: &str) -> Option<Self> {
        let mut parts = token.splitn(3, '.');
        let (ws, member, secret) = (parts.next()?, parts.next()?, parts.next()?);
        let token_like = |s: &str| {
            !s.is_empty()
                && s.len() <= 64
                && s.chars()
                    .all(|c| c.is_ascii_alphanumeric() || c == '-' || c == '_')
        };
        (token_like(ws) && token_like(member) && token_like(secret)).then(|| MemberToken {
            workspace_id: ws.to_string(),
            member_id: member.to_string(),
            secret: secret.to_string().into(),
        })
    }

    /// The whole token, for a link or a cookie (a secret: never log it).
    pub fn expose(&self) -> String {
        format!(
            "{}.{}.{}",
            self.workspace_id,
            self.member_id,
            self.secret.expose_secret()
        )
    }

    /// What the log keeps of it.
    pub fn hash(&self) -> String {
        hash_key(self.secret.expose_secret())
    }
}

/// Invites `email` with `role`: the sign-up token, shown once. `actor` is the inviting
/// admin, or the service itself for the first admin.
pub async fn invite(
    ledger: &Ledger,
    workspace_id: &str,
    actor: &Actor,
    (email, role): (&str, Role),
    now: time::OffsetDateTime,
) -> Result<(MemberToken, u64), CommandError> {
    let email = normalize_email(email);
    let token = MemberToken::generate(workspace_id, &member_id(&email));
    let committed = ledger
        .execute::<Member>(
            workspace_id,
            &token.member_id,
            actor,
            &MemberCommand::Invite(MemberInvited {
                email,
                role,
                invite_hash: token.hash(),
                expires_at: now + INVITE_TTL,
            }),
        )
        .await?;
    Ok((token, committed.position))
}

/// An admin's invite from the console (or any caller the route table lets invite).
pub async fn invite_member(
    state: &AppState,
    caller: &Caller,
    email: &str,
    role: Role,
) -> Result<MemberToken, CommandError> {
    let (token, position) = invite(
        &state.ledger,
        &caller.workspace_id,
        &caller.actor(),
        (email, role),
        state.clock.now(),
    )
    .await?;
    wait_for_write(state, position).await?;
    Ok(token)
}

/// A signed-in member, as the console's pages see them.
#[derive(Debug, Clone)]
pub struct MemberSession {
    pub caller: Caller,
    pub email: String,
    pub session: MemberToken,
}

impl MemberSession {
    fn of(member: &Member, session: MemberToken, role: Role) -> Self {
        MemberSession {
            caller: Caller {
                workspace_id: session.workspace_id.clone(),
                api_key_id: session.member_id.clone(),
                role,
                actor_type: ActorType::Member,
            },
            email: member.email.clone().unwrap_or_default(),
            session,
        }
    }
}

fn member_actor(token: &MemberToken) -> Actor {
    Actor {
        actor_type: ActorType::Member,
        id: token.member_id.clone(),
    }
}

/// Sets the password through an invite and opens the member's first session.
pub async fn join(
    state: &AppState,
    invite_token: &str,
    new_password: SecretString,
) -> Result<MemberSession, CommandError> {
    let refused = || DomainError::Rejected("this sign-up link is unknown, used or expired".into());
    let invite = MemberToken::parse(invite_token).ok_or_else(refused)?;
    let member: Member = state
        .ledger
        .load(&invite.workspace_id, &invite.member_id)
        .await
        .map_err(|_| refused())?;
    if member.invite.as_ref().map(|i| i.invite_hash.as_str()) != Some(invite.hash().as_str()) {
        return Err(refused().into());
    }
    let phc =
        tokio::task::spawn_blocking(move || password::hash_password(new_password.expose_secret()))
            .await
            .map_err(|e| {
                CommandError::Crypto(crate::crypto::CryptoError::invalid(
                    "password",
                    e.to_string(),
                ))
            })?
            .map_err(|e| DomainError::Invalid {
                field: "password",
                reason: e.to_string(),
            })?;
    let owner = format!("member:{}/{}", invite.workspace_id, invite.member_id);
    let data_key = state.vault.create_data_key(&owner).await?;
    let sealed = sealing::seal(state, slot(&invite), &data_key, phc.as_bytes()).await?;
    state
        .ledger
        .execute::<Member>(
            &invite.workspace_id,
            &invite.member_id,
            &member_actor(&invite),
            &MemberCommand::Join {
                invite_hash: invite.hash(),
                password: sealed,
                now: state.clock.now(),
            },
        )
        .await?;
    open_session(state, &invite.workspace_id, &invite.member_id, None).await
}

fn slot(token: &MemberToken) -> SecretSlot<'_> {
    SecretSlot {
        workspace_id: &token.workspace_id,
        resource_type: "member",
        resource_id: &token.member_id,
        field: "password",
    }
}

/// Opens a session (`member.signed_in`), with the time step of the second-factor code
/// that was accepted for it, if any.
pub(super) async fn open_session(
    state: &AppState,
    workspace_id: &str,
    member_id: &str,
    second_factor_step: Option<u64>,
) -> Result<MemberSession, CommandError> {
    open_session_by(state, workspace_id, member_id, second_factor_step, None).await
}

/// Opens a session; `sso_issuer` names the team SSO provider a sign-in went through.
pub(super) async fn open_session_by(
    state: &AppState,
    workspace_id: &str,
    member_id: &str,
    second_factor_step: Option<u64>,
    sso_issuer: Option<String>,
) -> Result<MemberSession, CommandError> {
    let session = MemberToken::generate(workspace_id, member_id);
    let committed = state
        .ledger
        .execute::<Member>(
            workspace_id,
            member_id,
            &member_actor(&session),
            &MemberCommand::SignIn(MemberSignedIn {
                session_hash: session.hash(),
                expires_at: state.clock.now() + SESSION_ABSOLUTE,
                second_factor_step,
                sso_issuer,
            }),
        )
        .await?;
    let member: Member = state.ledger.load(workspace_id, member_id).await?;
    wait_for_write(state, committed.position).await?;
    let role = member.role.ok_or(DomainError::NotFound("member"))?;
    Ok(MemberSession::of(&member, session, role))
}

/// What a right password leads to: a session, or the second-factor step first.
#[derive(Debug)]
pub enum SignInOutcome {
    Session(MemberSession),
    /// The member has a second factor: the sign-in completes only with a code
    /// (`second_factor::complete_sign_in`).
    SecondFactorNeeded {
        workspace_id: String,
        member_id: String,
    },
    /// The workspace requires a second factor and the member has none: they set one up
    /// before the session opens (`second_factor::set_up_at_sign_in`).
    SecondFactorSetUpNeeded {
        workspace_id: String,
        member_id: String,
    },
}

/// Why a sign-in was refused (all answered alike to the browser).
#[derive(Debug, thiserror::Error)]
pub enum SignInError {
    #[error("wrong email or password")]
    Refused,
    #[error("wrong or already used code")]
    WrongCode,
    #[error("too many failed sign-ins; try again later")]
    Throttled,
    #[error(transparent)]
    Command(#[from] CommandError),
}

/// Checks email and password; on success opens a session (`member.signed_in`) or, for a
/// member with a second factor, asks for the code; on failure records `access.denied`
/// with the reason. `throttled` is the edge's verdict on this account and address,
/// decided before the password is looked at.
pub async fn sign_in(
    state: &AppState,
    workspace_id: &str,
    email: &str,
    given: SecretString,
    throttled: bool,
) -> Result<SignInOutcome, SignInError> {
    let id = member_id(email);
    let target = Actor {
        actor_type: ActorType::Member,
        id: id.clone(),
    };
    if throttled {
        deny(
            state,
            workspace_id,
            target,
            DenialReason::SignInThrottled,
            429,
        )
        .await;
        return Err(SignInError::Throttled);
    }
    let member: Member = state
        .ledger
        .load(workspace_id, &id)
        .await
        .unwrap_or_default();
    let token = MemberToken::generate(workspace_id, &id);
    let phc = match &member.password {
        Some(sealed) => sealing::open_text(state, slot(&token), sealed)
            .await?
            .expose_secret()
            .to_string(),
        None => String::new(),
    };
    // The hash is computed whether or not the member exists, so the time taken does not
    // tell which emails are members.
    let known = member.joined();
    let ok = tokio::task::spawn_blocking(move || {
        let phc = if phc.is_empty() { DUMMY_PHC } else { &phc };
        password::verify_password(given.expose_secret(), phc)
    })
    .await
    .unwrap_or(false);
    if !(known && ok) {
        let reason = if known {
            DenialReason::WrongPassword
        } else {
            DenialReason::UnknownMember
        };
        deny(state, workspace_id, target, reason, 401).await;
        return Err(SignInError::Refused);
    }
    if member.second_factor.is_some() {
        return Ok(SignInOutcome::SecondFactorNeeded {
            workspace_id: workspace_id.to_string(),
            member_id: id,
        });
    }
    if super::second_factor::required(state, workspace_id).await? {
        return Ok(SignInOutcome::SecondFactorSetUpNeeded {
            workspace_id: workspace_id.to_string(),
            member_id: id,
        });
    }
    Ok(SignInOutcome::Session(
        open_session(state, workspace_id, &id, None).await?,
    ))
}

/// A valid argon2id hash of a random string: what an unknown email is checked against.
const DUMMY_PHC: &str =
    "$argon2id$v=19$m=19456,t=2,p=1$c29tZXNhbHRzb21lc2FsdA$ZfGbX6ByQ8lIqr5l1cYv1U2Cz7Gp3lJbJ8Y5y7b4pQk";

pub(super) async fn deny(
    state: &AppState,
    workspace_id: &str,
    actor: Actor,
    reason: DenialReason,
    status: u16,
) {
    deny_at(
        state,
        workspace_id,
        actor,
        reason,
        status,
        "/console/sign-in",
    )
    .await
}

/// Records a refused sign-in step at `route` (in the system workspace if `workspace_id`
/// names none).
pub(super) async fn deny_at(
    state: &AppState,
    workspace_id: &str,
    actor: Actor,
    reason: DenialReason,
    status: u16,
    route: &str,
) {
    let denial = AccessDenied {
        method: "POST".into(),
        route: route.into(),
        status,
        reason,
        target_id: None,
    };
    // An unknown workspace still gets its refusal recorded, in the system workspace.
    let ws = state
        .projections
        .workspace(workspace_id)
        .await
        .ok()
        .flatten()
        .map(|w| w.id);
    record_denial(state, ws.as_deref(), actor, denial).await;
}

/// The member and role behind a session token, if the session is open now (from the
/// member's events in the log: a session signed out on any instance is closed here too).
pub async fn session(state: &AppState, token: &str) -> Result<Option<MemberSession>, CommandError> {
    let Some(session) = MemberToken::parse(token) else {
        return Ok(None);
    };
    let Ok(member) = state
        .ledger
        .load::<Member>(&session.workspace_id, &session.member_id)
        .await
    else {
        return Ok(None);
    };
    let role = member.session_role(&session.hash(), state.clock.now());
    Ok(role.map(|role| MemberSession::of(&member, session, role)))
}

/// Ends the session (`member.signed_out`).
pub async fn sign_out(state: &AppState, session: &MemberSession) -> Result<(), CommandError> {
    let committed = state
        .ledger
        .execute::<Member>(
            &session.session.workspace_id,
            &session.session.member_id,
            &member_actor(&session.session),
            &MemberCommand::SignOut {
                session_hash: session.session.hash(),
            },
        )
        .await?;
    wait_for_write(state, committed.position).await?;
    Ok(())
}

/// The workspace's members and pending invitees (not removed), oldest invite first.
pub async fn list(state: &AppState, caller: &Caller) -> Result<Vec<MemberRow>, CommandError> {
    Ok(state.projections.members(&caller.workspace_id).await?)
}

/// One member of the caller's workspace, removed ones too (`None`: not theirs or unknown).
pub async fn get(
    state: &AppState,
    caller: &Caller,
    member_id: &str,
) -> Result<Option<MemberRow>, CommandError> {
    Ok(state
        .projections
        .member(&caller.workspace_id, member_id)
        .await?)
}

/// Where an invitee sets their password: the console's sign-up page with the invite
/// token, below the service's public URL (a secret: shown once, never logged).
pub fn sign_up_url(state: &AppState, invite: &MemberToken) -> String {
    let base = state.connections.public_url.trim_end_matches('/');
    format!("{base}/console/sign-up?invite={}", invite.expose())
}

/// Gives a member another role: their open sessions end at once (every instance decides
/// sessions from the member's events).
pub async fn change_role(
    state: &AppState,
    caller: &Caller,
    member_id: &str,
    role: Role,
) -> Result<(), CommandError> {
    change(state, caller, member_id, MemberCommand::ChangeRole(role)).await
}

/// Removes a member: no sign-in any more, open sessions end at once, the sealed
/// password's data key is destroyed. Removing oneself is refused (an admin could lock the
/// workspace out of its console).
pub async fn remove(
    state: &AppState,
    caller: &Caller,
    member_id: &str,
) -> Result<(), CommandError> {
    if member_id == caller.api_key_id {
        return Err(DomainError::Rejected("you cannot remove yourself".into()).into());
    }
    let member: Member = state.ledger.load(&caller.workspace_id, member_id).await?;
    change(state, caller, member_id, MemberCommand::Remove).await?;
    if let Some(sealed) = member.password {
        state.vault.shred(&sealed.data_key_id).await?;
    }
    Ok(())
}

pub(super) async fn change(
    state: &AppState,
    caller: &Caller,
    member_id: &str,
    command: MemberCommand,
) -> Result<(), CommandError> {
    if crate::ledger::AggregateKey::new(&caller.workspace_id, "member", member_id).is_err() {
        return Err(DomainError::NotFound("member").into());
    }
    let committed = state
        .ledger
        .execute::<Member>(&caller.workspace_id, member_id, &caller.actor(), &command)
        .await?;
    wait_for_write(state, committed.position).await?;
    Ok(())
}
