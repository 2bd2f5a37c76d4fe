//! Idempotent retries, HTTP-free. A request with an `Idempotency-Key` first claims the key
//! in the log (`idempotency.claimed` on the aggregate of its caller and key: the expected
//! version makes one claim win, whatever the instances), runs, and records its outcome
//! (`idempotency.completed`): the answer sealed under the record's own data key, replayed
//! to a retry for 24 hours and shredded after; or the key released when the request wrote
//! nothing, so a retry runs afresh. See ARCHITECTURE.md ("Idempotent retries").

use std::time::Duration;

use secrecy::ExposeSecret as _;
use sha2::{Digest, Sha256};

use super::sealing::{self, SecretSlot};
use super::CommandError;
use crate::app::AppState;
use crate::domain::idempotency::{
    IdempotencyCommand, IdempotencyOutcome, IdempotencyRecord, Judgement,
};
use crate::domain::{DomainError, IdempotencyClaimed, IdempotencyCompleted};
use crate::ledger::{Actor, LedgerError};

/// Longest key accepted (bytes).
pub const MAX_KEY_LEN: usize = 255;
/// The data keys of recorded answers: `<workspace>/idempotency/<record>`.
const OWNER_KIND: &str = "idempotency";
/// Data keys shredded per sweep page.
const SWEEP_PAGE: u32 = 256;

#[derive(Debug, Clone, Copy)]
pub struct IdempotencySettings {
    /// How long a claim holds its key while its request runs. The request is cut off at
    /// this bound (its answer is then recorded as a 504 whose outcome is unknown), so a
    /// claim whose instance died frees the key after at most this long.
    pub lease: Duration,
    /// How long a key answers with its recorded outcome; the sealed answer is shredded
    /// after it.
    pub retention: Duration,
}

impl Default for IdempotencySettings {
    fn default() -> Self {
        IdempotencySettings {
            lease: Duration::from_secs(120),
            retention: Duration::from_secs(24 * 3600),
        }
    }
}

/// A checked `Idempotency-Key`: 1 to 255 visible ASCII characters.
#[derive(Clone)]
pub struct IdempotencyKey(String);

impl IdempotencyKey {
    pub fn parse(raw: &[u8]) -> Result<IdempotencyKey, String> {
        let visible = raw.iter().all(|b| (0x21..=0x7e).contains(b));
        if raw.is_empty() || raw.len() > MAX_KEY_LEN || !visible {
            return Err(format!(
                "Idempotency-Key must be 1 to {MAX_KEY_LEN} visible ASCII characters (no spaces)"
            ));
        }
        Ok(IdempotencyKey(String::from_utf8_lossy(raw).into_owned()))
    }

    /// A key the service derives itself (an MCP call's session and request id:
    /// `mcp_session::call_key`), visible ASCII by construction.
    pub(crate) fn derived(key: String) -> IdempotencyKey {
        IdempotencyKey(key)
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }
}

/// Whose keys these are: the workspace and the principal that called (`api_key:<id>`,
/// `token:<jti>`, `end_user:<id>`). Another principal's equal key is another record.
#[derive(Debug, Clone)]
pub struct Scope {
    pub workspace_id: String,
    pub principal: String,
    pub actor: Actor,
}

/// The request as the key binds it.
#[derive(Debug, Clone, Copy)]
pub struct RequestShape<'a> {
    pub method: &'a str,
    /// The route as in the route table (recorded).
    pub route: &'a str,
    /// The path with its ids and the query (fingerprinted).
    pub path_and_query: &'a str,
    pub body: &'a [u8],
}

impl RequestShape<'_> {
    /// `sha256:<hex>` over method, path, query and body, each length-prefixed.
    pub fn fingerprint(&self) -> String {
        let mut h = Sha256::new();
        for part in [
            self.method.as_bytes(),
            self.path_and_query.as_bytes(),
            self.body,
        ] {
            h.update((part.len() as u64).to_be_bytes());
            h.update(part);
        }
        format!("sha256:{}", hex::encode(h.finalize()))
    }
}

/// An answer as recorded and replayed. `Debug` leaves out the body (it may hold a secret).
#[derive(Clone, serde::Serialize, serde::Deserialize)]
pub struct Answer {
    pub status: u16,
    pub content_type: Option<String>,
    #[serde(with = "body_b64")]
    pub body: Vec<u8>,
    /// The log position the request's writes reached (0: none), answered again on replay
    /// so a retry can read its write too.
    #[serde(default)]
    pub position: u64,
}

impl std::fmt::Debug for Answer {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Answer")
            .field("status", &self.status)
            .field("content_type", &self.content_type)
            .finish_non_exhaustive()
    }
}

mod body_b64 {
    use base64::engine::general_purpose::STANDARD as B64;
    use base64::Engine as _;

    pub fn serialize<S: serde::Serializer>(body: &[u8], s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(&B64.encode(body))
    }

    pub fn deserialize<'de, D: serde::Deserializer<'de>>(d: D) -> Result<Vec<u8>, D::Error> {
        let text: String = serde::Deserialize::deserialize(d)?;
        B64.decode(text).map_err(serde::de::Error::custom)
    }
}

/// A claim this request holds: finish it with [`finish`].
#[derive(Debug, Clone)]
pub struct Claim {
    workspace_id: String,
    record_id: String,
    claim: u32,
    actor: Actor,
    lease_expires_at: time::OffsetDateTime,
}

impl Claim {
    /// How long the request may still run: until a second before its lease ends, so a
    /// live instance stops before another may take the key over.
    pub fn time_left(&self, now: time::OffsetDateTime) -> Duration {
        let left = self.lease_expires_at - now - time::Duration::SECOND;
        Duration::try_from(left).unwrap_or(Duration::ZERO)
    }
}

/// What a request with a key does.
#[derive(Debug)]
pub enum Begin {
    /// The key is this request's: run it, then [`finish`].
    Proceed(Claim),
    /// The same request ran: its answer.
    Replay(Answer),
    /// The key was used for another request.
    Mismatch,
    /// The same request is running; ask again after this many seconds.
    Running { retry_after_secs: u64 },
}

/// Judges the key for this request and, when it is free, claims it in the log.
pub async fn begin(
    state: &AppState,
    scope: &Scope,
    key: &IdempotencyKey,
    request: RequestShape<'_>,
) -> Result<Begin, CommandError> {
    let record_id = record_id(&scope.principal, key);
    let fingerprint = request.fingerprint();
    let ws = scope.workspace_id.as_str();
    // A lost claim race is judged again on the winner's claim: at most a few rounds.
    for _ in 0..4 {
        let now = state.clock.now();
        let record: IdempotencyRecord = state.ledger.load(ws, &record_id).await?;
        let next = match record.judge(&fingerprint, now) {
            Judgement::Free { next } => next,
            Judgement::Mismatch => return Ok(Begin::Mismatch),
            Judgement::Running { lease_expires_at } => {
                let left = (lease_expires_at - now).whole_seconds();
                let retry_after_secs = u64::try_from(left).unwrap_or(1).clamp(1, 5);
                return Ok(Begin::Running { retry_after_secs });
            }
            Judgement::Replay(done) => {
                return replay(state, ws, &record_id, &done)
                    .await
                    .map(Begin::Replay)
            }
        };
        let lease_expires_at = now + state.idempotency.lease;
        let claimed = IdempotencyClaimed {
            key_hash: format!("sha256:{}", hex::encode(Sha256::digest(key.0.as_bytes()))),
            request_fingerprint: fingerprint.clone(),
            method: request.method.to_string(),
            route: request.route.to_string(),
            claim: next,
            lease_expires_at,
            expires_at: now + state.idempotency.retention,
        };
        let command = IdempotencyCommand::Claim { claimed, now };
        match state
            .ledger
            .execute::<IdempotencyRecord>(ws, &record_id, &scope.actor, &command)
            .await
        {
            Ok(_) => {
                return Ok(Begin::Proceed(Claim {
                    workspace_id: ws.to_string(),
                    record_id,
                    claim: next,
                    actor: scope.actor.clone(),
                    lease_expires_at,
                }))
            }
            Err(LedgerError::Domain(DomainError::Rejected(_))) => continue,
            Err(e) => return Err(e.into()),
        }
    }
    Ok(Begin::Running {
        retry_after_secs: 1,
    })
}

/// Ends a claim: the answer recorded (sealed) for replay, or, when `recorded` is false
/// (the request wrote nothing), the key released.
pub async fn finish(
    state: &AppState,
    claim: &Claim,
    answer: &Answer,
    recorded: bool,
) -> Result<(), CommandError> {
    let sealed = if recorded {
        let owner = format!("{}/{OWNER_KIND}/{}", claim.workspace_id, claim.record_id);
        let data_key = state.vault.create_data_key(&owner).await?;
        let plain = serde_json::to_vec(answer).map_err(|e| {
            CommandError::Crypto(crate::crypto::CryptoError::invalid("answer", e.to_string()))
        })?;
        Some(sealing::seal(state, slot(claim), &data_key, &plain).await?)
    } else {
        None
    };
    let completed = IdempotencyCompleted {
        claim: claim.claim,
        outcome: if recorded {
            IdempotencyOutcome::Recorded
        } else {
            IdempotencyOutcome::Released
        },
        status: answer.status,
        answer: sealed,
    };
    state
        .ledger
        .execute::<IdempotencyRecord>(
            &claim.workspace_id,
            &claim.record_id,
            &claim.actor,
            &IdempotencyCommand::Complete(completed),
        )
        .await?;
    Ok(())
}

/// Shreds the data keys of answers recorded longer ago than the retention: their records
/// no longer replay, and their answers become unrecoverable. Returns how many.
pub async fn shred_expired(state: &AppState) -> Result<usize, CommandError> {
    let before = state.clock.now() - state.idempotency.retention;
    let before = crate::projector::plan::rfc3339(before);
    let pattern = format!("%/{OWNER_KIND}/%");
    let mut shredded = 0;
    loop {
        let page = state
            .vault
            .store()
            .owned_before(&pattern, &before, SWEEP_PAGE)
            .await?;
        if page.is_empty() {
            return Ok(shredded);
        }
        for id in &page {
            state.vault.shred(id).await?;
            shredded += 1;
        }
    }
}

async fn replay(
    state: &AppState,
    workspace_id: &str,
    record_id: &str,
    done: &IdempotencyCompleted,
) -> Result<Answer, CommandError> {
    let Some(sealed) = &done.answer else {
        return Err(DomainError::Rejected("a recorded idempotent answer is missing".into()).into());
    };
    let slot = SecretSlot {
        workspace_id,
        resource_type: OWNER_KIND,
        resource_id: record_id,
        field: "answer",
    };
    let plain = sealing::open(state, slot, sealed).await?;
    serde_json::from_slice(plain.expose_secret()).map_err(|e| {
        CommandError::Crypto(crate::crypto::CryptoError::invalid("answer", e.to_string()))
    })
}

fn slot(claim: &Claim) -> SecretSlot<'_> {
    SecretSlot {
        workspace_id: &claim.workspace_id,
        resource_type: OWNER_KIND,
        resource_id: &claim.record_id,
        field: "answer",
    }
}

/// The record's aggregate id: hex sha256 of the principal and the key (a subject token).
fn record_id(principal: &str, key: &IdempotencyKey) -> String {
    let mut h = Sha256::new();
    h.update((principal.len() as u64).to_be_bytes());
    h.update(principal.as_bytes());
    h.update(key.0.as_bytes());
    hex::encode(h.finalize())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn keys_are_visible_ascii_of_bounded_length() {
        assert!(IdempotencyKey::parse(b"retry-0001_AbC.~").is_ok());
        assert!(IdempotencyKey::parse(&[b'k'; MAX_KEY_LEN]).is_ok());
        for bad in [
            &b""[..],
            &[b'k'; MAX_KEY_LEN + 1][..],
            b"has space",
            b"tab\there",
            "caf\u{e9}".as_bytes(),
            b"nul\0",
        ] {
            assert!(IdempotencyKey::parse(bad).is_err(), "{bad:?}");
        }
    }

    #[test]
    fn the_fingerprint_binds_method_path_and_body() {
        let shape = |method, path, body| RequestShape {
            method,
            route: "/v1/x",
            path_and_query: path,
            body,
        };
        let a = shape("POST", "/v1/a", &b"{}"[..]).fingerprint();
        assert_eq!(a, shape("POST", "/v1/a", &b"{}"[..]).fingerprint());
        assert_ne!(a, shape("POST", "/v1/b", &b"{}"[..]).fingerprint());
        assert_ne!(a, shape("POST", "/v1/a", &b"{ }"[..]).fingerprint());
        // Length prefixes: moving bytes between parts is another request.
        assert_ne!(
            shape("POST", "/v1/a{", &b"}"[..]).fingerprint(),
            shape("POST", "/v1/a", &b"{}"[..]).fingerprint()
        );
    }

    #[test]
    fn records_are_scoped_to_their_principal() {
        let key = IdempotencyKey("k".into());
        assert_ne!(record_id("api_key:a", &key), record_id("api_key:b", &key));
        assert_eq!(record_id("api_key:a", &key).len(), 64);
    }
}
