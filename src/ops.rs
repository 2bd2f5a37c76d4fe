//! Operator commands the CLI runs against a data dir or a shared log: bootstrap, signing-
//! and master-key rotation, verify, dump, replay (rebuild the projections, optionally as of
//! a position or time).

use secrecy::ExposeSecret;
use serde::Serialize;
use uuid::Uuid;

use crate::app::{open_log, open_vault, Access, AppError};
use crate::config::StorageArgs;
use crate::domain::api_key::{ApiKey, ApiKeyCommand, NewApiKey};
use crate::domain::signing_key::{Rotate, SigningKeyRing, RING_ID};
use crate::domain::workspace::{Workspace, WorkspaceCommand};
use crate::domain::{ApiKeyCreated, Role, SigningKeyRotated, SYSTEM_WORKSPACE};
use crate::ledger::{Actor, EventLog, KeyDir, Ledger};
use crate::projector::swap::rebuild_embedded_projections;
use crate::projector::{PgProjections, ProjectionWriter as _};

/// Re-wraps every data key under a new master key (staged in the key dir first, so a
/// crash resumes with the same key), then makes it the key dir's master key.
pub async fn rotate_master_key(args: &StorageArgs) -> Result<(String, usize), AppError> {
    use crate::crypto::master::{promote_next_master, stage_next_master};
    if std::env::var(crate::crypto::MASTER_KEY_ENV).is_ok_and(|v| !v.trim().is_empty()) {
        return Err(AppError::Io(format!(
            "the master key comes from {}; rotate it with the multi-instance procedure (accept, rotate, promote)",
            crate::crypto::MASTER_KEY_ENV
        )));
    }
    let vault = open_vault(args).await?;
    let next = stage_next_master(&args.key_dir())?;
    let id = next.id().to_string();
    let n = vault.rotate_master(next).await?;
    promote_next_master(&args.key_dir())?;
    Ok((id, n))
}

#[derive(Debug, Serialize)]
pub struct Bootstrapped {
    pub workspace_id: String,
    pub api_key_id: String,
    /// Shown once; only its hash is stored.
    pub admin_api_key: String,
    /// The first admin's console sign-up token (`commands::members`): shown once.
    pub console_invite: String,
    pub position: u64,
}

impl Bootstrapped {
    /// Where the first admin sets their password, below the service's public URL.
    pub fn console_sign_up_path(&self) -> String {
        format!("/console/sign-up?invite={}", self.console_invite)
    }
}

/// Creates a workspace and its first admin API key.
pub async fn bootstrap(
    ledger: &Ledger,
    name: &str,
    admin_email: &str,
) -> Result<Bootstrapped, AppError> {
    let actor = Actor::system("bootstrap");
    let workspace_id = Uuid::now_v7().to_string();
    ledger
        .execute::<Workspace>(
            &workspace_id,
            &workspace_id,
            &actor,
            &WorkspaceCommand::Create {
                name: name.to_string(),
            },
        )
        .await?;
    let key = NewApiKey::generate(&mut rand::rngs::OsRng);
    let api_key_id = Uuid::now_v7().to_string();
    let created = ApiKeyCreated {
        name: "bootstrap admin".into(),
        role: Role::Admin,
        key_prefix: key.key_prefix.clone(),
        key_hash: key.key_hash.clone(),
        expires_at: None,
    };
    let committed = ledger
        .execute::<ApiKey>(
            &workspace_id,
            &api_key_id,
            &actor,
            &ApiKeyCommand::Create(created),
        )
        .await?;
    let (invite, position) = crate::commands::members::invite(
        ledger,
        &workspace_id,
        &actor,
        (admin_email, Role::Admin),
        ledger.now(),
    )
    .await
    .map_err(|e| AppError::Io(format!("cannot invite the first console admin: {e}")))?;
    Ok(Bootstrapped {
        workspace_id,
        api_key_id,
        admin_api_key: key.secret.expose_secret().to_string(),
        console_invite: invite.expose(),
        position: position.max(committed.position),
    })
}

/// Rotates the signing key: the rotation event is signed by the outgoing key, then the
/// staged key becomes active. Key-dir keys only (an env key is rotated by the operator).
pub async fn rotate_signing_key(
    args: &StorageArgs,
    ledger: &Ledger,
) -> Result<SigningKeyRotated, AppError> {
    if std::env::var("AUTHLEDGER_SIGNING_KEY").is_ok() {
        return Err(AppError::Io(
            "the signing key comes from AUTHLEDGER_SIGNING_KEY; rotate with a key dir instead"
                .into(),
        ));
    }
    let dir = KeyDir::new(args.key_dir());
    let current = ledger.signer();
    let next = dir.stage_next()?;
    use base64::Engine as _;
    let rotated = SigningKeyRotated {
        previous_key_id: current.key_id().to_string(),
        new_key_id: next.key_id().to_string(),
        new_public_key: base64::engine::general_purpose::STANDARD
            .encode(next.public_key().as_bytes()),
    };
    ledger
        .execute::<SigningKeyRing>(
            SYSTEM_WORKSPACE,
            RING_ID,
            &Actor::system("keys-rotate"),
            &Rotate(rotated.clone()),
        )
        .await?;
    dir.promote_next(&next)?;
    ledger.replace_signer(next);
    Ok(rotated)
}

/// Where `replay --until` stops: after a log position, or after the last event whose
/// `occurred_at` is at or before a time.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ReplayUntil {
    Position(u64),
    Time(time::OffsetDateTime),
}

impl ReplayUntil {
    /// A log position (an integer) or an RFC 3339 time.
    pub fn parse(s: &str) -> Result<ReplayUntil, AppError> {
        let s = s.trim();
        if let Ok(p) = s.parse::<u64>() {
            return Ok(ReplayUntil::Position(p));
        }
        time::OffsetDateTime::parse(s, &time::format_description::well_known::Rfc3339)
            .map(ReplayUntil::Time)
            .map_err(|_| {
                AppError::Io(format!(
                    "--until {s:?} is neither a log position (an integer) nor an RFC 3339 time"
                ))
            })
    }
}

/// What a replay did.
#[derive(Debug, Clone, Serialize)]
pub struct ReplayReport {
    /// Events applied to the rebuilt projections.
    pub events: u64,
    /// The log position the projections now end at (the state "as of" this position).
    pub position: u64,
    /// The log head when the replay started.
    pub head: u64,
    pub seconds: f64,
    pub events_per_sec: f64,
}

/// Rebuilds `projection` from the log into fresh tables and swaps them in, so readers never
/// see a half-built projection: embedded, a new `projections.db` is built next to the old
/// one and renamed over it (refused while another process, such as `serve`, has the old one
/// open); PostgreSQL, the tables are emptied and refilled in one transaction (readers see
/// the old rows until it commits). `until` stops the rebuild early; a later `serve` catches
/// up from there again. The progress bar is drawn on stderr when `show_progress`.
pub async fn replay(
    args: &StorageArgs,
    projection: &str,
    until: Option<ReplayUntil>,
    show_progress: bool,
) -> Result<ReplayReport, AppError> {
    use crate::projector::store::PROJECTIONS;
    if !PROJECTIONS.contains(&projection) {
        return Err(AppError::Io(format!(
            "unknown projection {projection:?} (valid: {})",
            PROJECTIONS.join(", ")
        )));
    }
    let started = std::time::Instant::now();
    let (log, _) = open_log(args, Access::Read).await?;
    let head = log.head().await?;
    let bar = replay_progress_bar(show_progress);
    let target = match until {
        None => head,
        Some(ReplayUntil::Position(p)) => p.min(head),
        Some(ReplayUntil::Time(t)) => {
            bar.set_length(head);
            bar.set_message("finding the last event at or before --until");
            last_position_at_or_before(log.as_ref(), head, t, &bar).await?
        }
    };
    bar.set_length(target);
    bar.set_position(0);
    bar.set_message(format!("replaying {projection}"));
    let progress = |n: u64| bar.set_position(n);
    let rebuilt = match &args.database_url {
        Some(url) => {
            let store = PgProjections::open_for_rebuild(url).await?;
            let n = store.rebuild(log.as_ref(), target, &progress).await;
            store.pool().close().await;
            n?
        }
        None => {
            rebuild_embedded_projections(&args.data_dir, log.as_ref(), target, &progress).await?
        }
    };
    bar.finish_and_clear();
    let seconds = started.elapsed().as_secs_f64();
    Ok(ReplayReport {
        events: rebuilt,
        position: target,
        head,
        seconds,
        events_per_sec: if seconds > 0.0 {
            rebuilt as f64 / seconds
        } else {
            0.0
        },
    })
}

/// A progress bar on stderr; hidden unless asked for and stderr is a terminal.
fn replay_progress_bar(show: bool) -> indicatif::ProgressBar {
    use std::io::IsTerminal as _;
    if !show || !std::io::stderr().is_terminal() {
        return indicatif::ProgressBar::hidden();
    }
    let bar =
        indicatif::ProgressBar::with_draw_target(Some(0), indicatif::ProgressDrawTarget::stderr());
    if let Ok(style) = indicatif::ProgressStyle::with_template(
        "{msg} [{bar:40}] {human_pos}/{human_len} events (eta {eta})",
    ) {
        bar.set_style(style.progress_chars("=> "));
    }
    bar.set_message("reading the log");
    bar
}

/// The position of the last event (highest position up to `head`) whose body's
/// `occurred_at` is at or before `t`; 0 if none.
async fn last_position_at_or_before(
    log: &dyn EventLog,
    head: u64,
    t: time::OffsetDateTime,
    bar: &indicatif::ProgressBar,
) -> Result<u64, AppError> {
    let mut next = 1;
    let mut found = 0;
    while next <= head {
        let page = log.read_from(next, 4096).await?;
        let Some(last) = page.last().map(|e| e.position) else {
            break;
        };
        for e in page.iter().take_while(|e| e.position <= head) {
            let opened = crate::ledger::envelope::open_envelope(&e.envelope).map_err(|err| {
                AppError::Io(format!(
                    "event at position {} cannot be read: {err}",
                    e.position
                ))
            })?;
            if opened.body.occurred_at <= t {
                found = e.position;
            }
        }
        bar.set_position(last.min(head));
        next = last + 1;
    }
    Ok(found)
}
