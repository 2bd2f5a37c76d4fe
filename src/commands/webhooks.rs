//! Webhook endpoints (Standard Webhooks), HTTP-free: register one (its URL judged by the
//! destination policy now; delivery judges it again), change it, rotate its signing secret,
//! replay from a log position, delete it, read its delivery attempts. The signing secret
//! `whsec_<base64 of 32 random bytes>` is returned once, when made; events carry it only
//! sealed under the webhook's own data key (shredded on delete). Delivery is
//! `crate::webhooks`.

use base64::engine::general_purpose::STANDARD as B64;
use base64::Engine as _;
use rand::RngCore as _;
use secrecy::{ExposeSecret as _, SecretString};
use uuid::Uuid;

use super::sealing::{self, SecretSlot};
use super::{check_destinations, wait_for_write, Caller, CommandError};
use crate::app::AppState;
use crate::crypto::SealingKey;
use crate::domain::auth_config::SealedSecret;
use crate::domain::webhook::{check_filters, Webhook, WebhookCommand};
use crate::domain::{DomainError, WebhookCreated, WebhookUpdated};
use crate::projector::store::reads::{DeliveryRow, WebhookRow};

/// How long a replaced secret keeps signing beside the new one.
pub const ROTATION_GRACE: time::Duration = time::Duration::hours(24);
/// Random bytes in a signing secret (Standard Webhooks asks for 24 to 64).
const SECRET_BYTES: usize = 32;
/// Attempts `deliveries` lists, newest first.
const DELIVERIES_SHOWN: i64 = 200;

#[derive(Debug, serde::Deserialize)]
#[serde(deny_unknown_fields)]
pub struct WebhookInput {
    pub url: String,
    /// Kinds or prefixes ending in `.`; none sends every kind.
    #[serde(default)]
    pub events: Vec<String>,
    #[serde(default = "on")]
    pub enabled: bool,
}

fn on() -> bool {
    true
}

/// A change: only the fields given.
#[derive(Debug, Default, serde::Deserialize)]
#[serde(deny_unknown_fields)]
pub struct WebhookPatch {
    pub url: Option<String>,
    pub events: Option<Vec<String>>,
    pub enabled: Option<bool>,
}

/// The endpoint as projected and, when just made, its signing secret (shown once).
pub struct WithSecret {
    pub row: WebhookRow,
    pub secret: SecretString,
}

fn slot<'a>(workspace_id: &'a str, id: &'a str) -> SecretSlot<'a> {
    SecretSlot {
        workspace_id,
        resource_type: "webhook",
        resource_id: id,
        field: "secret",
    }
}

/// A new signing secret, sealed under `key`.
async fn new_secret(
    state: &AppState,
    workspace_id: &str,
    id: &str,
    key: SealingKey<'_>,
) -> Result<(SecretString, SealedSecret), CommandError> {
    let mut bytes = [0u8; SECRET_BYTES];
    rand::rngs::OsRng.fill_bytes(&mut bytes);
    let secret = SecretString::from(format!("whsec_{}", B64.encode(bytes)));
    let sealed = sealing::seal(
        state,
        slot(workspace_id, id),
        key,
        secret.expose_secret().as_bytes(),
    )
    .await?;
    Ok((secret, sealed))
}

/// Opens a sealed signing secret (`whsec_…`), for delivery.
pub async fn open_secret(
    state: &AppState,
    workspace_id: &str,
    id: &str,
    sealed: &SealedSecret,
) -> Result<SecretString, CommandError> {
    sealing::open_text(state, slot(workspace_id, id), sealed).await
}

/// The URL's form (https; http only to loopback) and the destination policy (no private,
/// link-local or, unless allowed, loopback address): a clear 422 now.
async fn check_url(state: &AppState, url: &str) -> Result<(), CommandError> {
    crate::domain::workspace::check_endpoint_url("url", url)?;
    check_destinations(state, &[("url", url)]).await
}

async fn row(state: &AppState, caller: &Caller, id: &str) -> Result<WebhookRow, CommandError> {
    state
        .projections
        .webhook(&caller.workspace_id, id)
        .await?
        .filter(|r| r.status != "deleted")
        .ok_or(CommandError::Domain(DomainError::NotFound("webhook")))
}

async fn load(state: &AppState, caller: &Caller, id: &str) -> Result<Webhook, CommandError> {
    // An id that names no aggregate names no webhook.
    let webhook: Webhook = match state.ledger.load(&caller.workspace_id, id).await {
        Err(crate::ledger::LedgerError::Envelope(_)) => Webhook::default(),
        other => other?,
    };
    if webhook.created && !webhook.deleted {
        Ok(webhook)
    } else {
        Err(DomainError::NotFound("webhook").into())
    }
}

async fn change(
    state: &AppState,
    caller: &Caller,
    id: &str,
    command: WebhookCommand,
) -> Result<(), CommandError> {
    let committed = state
        .ledger
        .execute::<Webhook>(&caller.workspace_id, id, &caller.actor(), &command)
        .await?;
    wait_for_write(state, committed.position).await
}

pub async fn create(
    state: &AppState,
    caller: &Caller,
    input: WebhookInput,
) -> Result<WithSecret, CommandError> {
    let url = input.url.trim().to_string();
    check_url(state, &url).await?;
    check_filters(&input.events)?;
    let id = Uuid::now_v7().to_string();
    let data_key = state
        .vault
        .create_data_key(&format!("webhook:{}/{id}", caller.workspace_id))
        .await?;
    let created = async {
        let (secret, sealed) =
            new_secret(state, &caller.workspace_id, &id, (&data_key).into()).await?;
        let command = WebhookCommand::Create(WebhookCreated {
            url,
            events: input.events,
            enabled: input.enabled,
            secret: sealed,
        });
        let committed = state
            .ledger
            .create::<Webhook>(&caller.workspace_id, &id, &caller.actor(), &command)
            .await?;
        Ok::<_, CommandError>((secret, committed))
    };
    let (secret, committed) = match created.await {
        Ok(c) => c,
        Err(e) => {
            super::sealing::shred_unused(state, data_key.id(), "webhook").await;
            return Err(e);
        }
    };
    wait_for_write(state, committed.position).await?;
    Ok(WithSecret {
        row: row(state, caller, &id).await?,
        secret,
    })
}

pub async fn list(state: &AppState, caller: &Caller) -> Result<Vec<WebhookRow>, CommandError> {
    Ok(state.projections.webhooks(&caller.workspace_id).await?)
}

/// One endpoint of the caller's workspace (`NotFound` for deleted, unknown and other
/// workspaces' ids).
pub async fn get(state: &AppState, caller: &Caller, id: &str) -> Result<WebhookRow, CommandError> {
    row(state, caller, id).await
}

/// Changes the fields given. Turning an endpoint on again (after delivery gave up) starts
/// its retry schedule afresh at the event it stopped at.
pub async fn update(
    state: &AppState,
    caller: &Caller,
    id: &str,
    patch: WebhookPatch,
) -> Result<WebhookRow, CommandError> {
    let current = load(state, caller, id).await?;
    let url = match patch.url {
        Some(url) => {
            let url = url.trim().to_string();
            check_url(state, &url).await?;
            url
        }
        None => current.url.clone(),
    };
    let enabled = patch.enabled.unwrap_or(current.enabled);
    let updated = WebhookUpdated {
        url,
        events: patch.events.unwrap_or_else(|| current.events.clone()),
        enabled,
    };
    change(state, caller, id, WebhookCommand::Update(updated)).await?;
    if enabled && !current.enabled {
        state
            .projections
            .clear_failures(&caller.workspace_id, id)
            .await?;
    }
    row(state, caller, id).await
}

/// A new signing secret, shown once; the replaced one signs beside it for
/// [`ROTATION_GRACE`], so receivers can switch without losing a delivery.
pub async fn rotate_secret(
    state: &AppState,
    caller: &Caller,
    id: &str,
) -> Result<WithSecret, CommandError> {
    let current = load(state, caller, id).await?;
    let data_key_id = match &current.secret {
        Some(s) => s.data_key_id.clone(),
        None => return Err(DomainError::NotFound("webhook").into()),
    };
    let (secret, sealed) =
        new_secret(state, &caller.workspace_id, id, (&data_key_id).into()).await?;
    let command = WebhookCommand::RotateSecret {
        secret: sealed,
        now: state.clock.now(),
        grace: ROTATION_GRACE,
    };
    change(state, caller, id, command).await?;
    Ok(WithSecret {
        row: row(state, caller, id).await?,
        secret,
    })
}

/// Sends again every wanted event from `from_position` on (recorded first as
/// `webhook.replay_requested`); a delivery running now cannot move the cursor past it.
pub async fn replay(
    state: &AppState,
    caller: &Caller,
    id: &str,
    from_position: u64,
) -> Result<WebhookRow, CommandError> {
    load(state, caller, id).await?;
    change(state, caller, id, WebhookCommand::Replay { from_position }).await?;
    let after = i64::try_from(from_position.saturating_sub(1)).unwrap_or(i64::MAX);
    state
        .projections
        .rewind_cursor(&caller.workspace_id, id, after)
        .await?;
    row(state, caller, id).await
}

/// Deletes the endpoint: nothing more is sent, and its secrets' data key is shredded.
pub async fn delete(state: &AppState, caller: &Caller, id: &str) -> Result<(), CommandError> {
    let current = load(state, caller, id).await?;
    change(state, caller, id, WebhookCommand::Delete).await?;
    if let Some(secret) = current.secret {
        state.vault.shred(&secret.data_key_id).await?;
    }
    Ok(())
}

/// The endpoint's delivery attempts, newest first.
pub async fn deliveries(
    state: &AppState,
    caller: &Caller,
    id: &str,
) -> Result<Vec<DeliveryRow>, CommandError> {
    row(state, caller, id).await?;
    Ok(state
        .projections
        .deliveries(&caller.workspace_id, id, DELIVERIES_SHOWN)
        .await?)
}
