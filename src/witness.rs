//! `authledger witness`: an independent cosigner of the log's checkpoints (C2SP
//! tlog-cosignature `cosignature/v1`), run as its own process, typically on another machine
//! by another team, with its own Ed25519 key.
//!
//! Each round it fetches the latest signed checkpoint over the service's HTTP API (an
//! auditor API key), checks the log's note signature, and checks that it extends the last
//! checkpoint it cosigned: same origin, not smaller, and an RFC 9162 consistency proof from
//! the old tree to the new one that verifies against the root *it* stored (never the
//! service's copy). Only then does it cosign, store the cosigned note in its key dir and
//! post the cosignature back (`checkpoint.cosigned`). When the new checkpoint does not extend
//! the old one it refuses: a log line, `status.json` (`"outcome": "refused"`) and, with
//! `--once`, exit code 1.
//!
//! Key dir (`--key-dir`):
//! - `witness.key`: base64 of the 32-byte Ed25519 seed (0600); `witness.vkey`: its verifier
//!   key `<name>+<hex key id>+<base64(0x04 || key)>`, what verifiers are given;
//! - `checkpoint`: the last cosigned checkpoint note (log signature and this cosignature),
//!   what `authledger verify --trust-checkpoint` takes; `state.json`: its sequence number;
//! - `status.json`: the last round's outcome, for monitoring.

use std::io::Write as _;
use std::os::unix::fs::OpenOptionsExt as _;
use std::path::{Path, PathBuf};
use std::time::Duration;

use base64::engine::general_purpose::{STANDARD as B64, URL_SAFE_NO_PAD as B64URL};
use base64::Engine as _;
use ed25519_dalek::{SigningKey, VerifyingKey};
use secrecy::{ExposeSecret as _, SecretString};
use serde::{Deserialize, Serialize};
use serde_json::Value;

use crate::audit::merkle;
use crate::ledger::keys::parse_public;
use crate::ledger::note::{self, Checkpoint, Note, NoteError, WitnessKey};

#[derive(Debug, thiserror::Error)]
pub enum WitnessError {
    #[error("{path}: {source}")]
    Io {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("{0}")]
    Key(String),
    #[error("the log answered {status} to {what}: {body}")]
    Status {
        what: String,
        status: u16,
        body: String,
    },
    #[error("cannot reach the log ({what}): {source}")]
    Http {
        what: String,
        source: reqwest::Error,
    },
    #[error("unexpected answer to {what}: {reason}")]
    Answer { what: String, reason: String },
    #[error(transparent)]
    Note(#[from] NoteError),
}

/// Settings of one witness.
#[derive(Debug, Clone)]
pub struct WitnessConfig {
    pub key_dir: PathBuf,
    /// The service's base URL (`https://ledger.example`).
    pub log_url: String,
    /// An API key of role auditor (or admin) of any workspace.
    pub api_key: SecretString,
    /// The witness's name (fixed when its key is created; later runs must agree).
    pub name: Option<String>,
    /// Log public keys (base64 of 32 bytes) to check note signatures with; when empty, the
    /// keys the log publishes at `/.well-known/jwks.json`.
    pub log_keys: Vec<String>,
}

/// What one round did.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Outcome {
    /// Cosigned a new checkpoint (sequence, tree size).
    Cosigned { sequence: u64, tree_size: u64 },
    /// The latest checkpoint is the one already cosigned.
    Unchanged { tree_size: u64 },
    /// The log has no signed checkpoint note yet.
    NothingYet,
    /// The new checkpoint does not extend the cosigned one (or is not validly signed).
    Refused(String),
}

#[derive(Debug, Serialize, Deserialize)]
struct State {
    origin: String,
    sequence: u64,
    tree_size: u64,
    /// base64 of the root.
    root: String,
    timestamp: u64,
}

fn io(path: &Path) -> impl FnOnce(std::io::Error) -> WitnessError + '_ {
    move |source| WitnessError::Io {
        path: path.to_path_buf(),
        source,
    }
}

fn write_atomic(path: &Path, bytes: &[u8], private: bool) -> Result<(), WitnessError> {
    let tmp = path.with_extension("tmp");
    let mut opts = std::fs::OpenOptions::new();
    opts.write(true).create(true).truncate(true);
    if private {
        opts.mode(0o600);
    }
    let mut f = opts.open(&tmp).map_err(io(&tmp))?;
    f.write_all(bytes).map_err(io(&tmp))?;
    f.sync_all().map_err(io(&tmp))?;
    std::fs::rename(&tmp, path).map_err(io(path))
}

/// The witness's key and name: loaded from the key dir, or generated there on first run.
pub struct Identity {
    key: SigningKey,
    pub public: WitnessKey,
}

impl Identity {
    pub fn load_or_create(dir: &Path, name: Option<&str>) -> Result<Identity, WitnessError> {
        let key_path = dir.join("witness.key");
        let vkey_path = dir.join("witness.vkey");
        if key_path.exists() {
            let seed = std::fs::read_to_string(&key_path).map_err(io(&key_path))?;
            let seed: [u8; 32] = zeroize::Zeroizing::new(
                B64.decode(seed.trim())
                    .map_err(|_| WitnessError::Key("witness.key is not base64".into()))?,
            )
            .as_slice()
            .try_into()
            .map_err(|_| WitnessError::Key("witness.key is not a 32-byte seed".into()))?;
            let key = SigningKey::from_bytes(&seed);
            let vkey = std::fs::read_to_string(&vkey_path).map_err(io(&vkey_path))?;
            let public = WitnessKey::parse(&vkey)?;
            if public.public != key.verifying_key() {
                return Err(WitnessError::Key(
                    "witness.vkey does not belong to witness.key".into(),
                ));
            }
            if name.is_some_and(|n| n != public.name) {
                return Err(WitnessError::Key(format!(
                    "this key dir's witness is named {}; its name is fixed with its key",
                    public.name
                )));
            }
            return Ok(Identity { key, public });
        }
        std::fs::create_dir_all(dir).map_err(io(dir))?;
        let key = SigningKey::generate(&mut rand::rngs::OsRng);
        let name = match name {
            Some(n) => n.to_string(),
            None => format!(
                "authledger-witness/{}",
                &hex::encode(key.verifying_key().as_bytes())[..16]
            ),
        };
        let public = WitnessKey {
            name,
            public: key.verifying_key(),
        };
        // Validates the name (no spaces, no '+').
        WitnessKey::parse(&public.vkey())?;
        let seed = zeroize::Zeroizing::new(B64.encode(key.to_bytes()));
        write_atomic(&key_path, seed.as_bytes(), true)?;
        write_atomic(&vkey_path, format!("{}\n", public.vkey()).as_bytes(), false)?;
        Ok(Identity { key, public })
    }
}

/// One witness: its identity, its settings, an HTTP client.
pub struct Witness {
    cfg: WitnessConfig,
    id: Identity,
    http: reqwest::Client,
}

impl Witness {
    pub fn new(cfg: WitnessConfig) -> Result<Witness, WitnessError> {
        let id = Identity::load_or_create(&cfg.key_dir, cfg.name.as_deref())?;
        let http = reqwest::Client::builder()
            .timeout(Duration::from_secs(30))
            .build()
            .map_err(|source| WitnessError::Http {
                what: "client".into(),
                source,
            })?;
        Ok(Witness { cfg, id, http })
    }

    pub fn vkey(&self) -> String {
        self.id.public.vkey()
    }

    fn url(&self, path: &str) -> String {
        format!("{}{path}", self.cfg.log_url.trim_end_matches('/'))
    }

    async fn call(
        &self,
        method: reqwest::Method,
        path: &str,
        body: Option<Value>,
    ) -> Result<(u16, Value), WitnessError> {
        let what = format!("{method} {path}");
        let mut req = self
            .http
            .request(method, self.url(path))
            .bearer_auth(self.cfg.api_key.expose_secret());
        if let Some(b) = body {
            req = req.json(&b);
        }
        let resp = req.send().await.map_err(|source| WitnessError::Http {
            what: what.clone(),
            source,
        })?;
        let status = resp.status().as_u16();
        let text = resp.text().await.map_err(|source| WitnessError::Http {
            what: what.clone(),
            source,
        })?;
        let v = serde_json::from_str(&text).unwrap_or(Value::Null);
        if status >= 400 && status != 404 {
            return Err(WitnessError::Status {
                what,
                status,
                body: text.chars().take(500).collect(),
            });
        }
        Ok((status, v))
    }

    async fn log_keys(&self) -> Result<Vec<VerifyingKey>, WitnessError> {
        if !self.cfg.log_keys.is_empty() {
            return self
                .cfg
                .log_keys
                .iter()
                .map(|k| parse_public(k, "--log-key").map_err(|e| WitnessError::Key(e.to_string())))
                .collect();
        }
        let (_, jwks) = self
            .call(reqwest::Method::GET, "/.well-known/jwks.json", None)
            .await?;
        Ok(jwks["keys"]
            .as_array()
            .into_iter()
            .flatten()
            .filter(|k| k["kty"] == "OKP" && k["crv"] == "Ed25519")
            .filter_map(|k| k["x"].as_str())
            .filter_map(|x| B64URL.decode(x).ok())
            .filter_map(|b| <[u8; 32]>::try_from(b.as_slice()).ok())
            .filter_map(|b| VerifyingKey::from_bytes(&b).ok())
            .collect())
    }

    fn state_path(&self) -> PathBuf {
        self.cfg.key_dir.join("state.json")
    }

    fn load_state(&self) -> Result<Option<State>, WitnessError> {
        let path = self.state_path();
        match std::fs::read(&path) {
            Ok(b) => serde_json::from_slice(&b)
                .map(Some)
                .map_err(|e| WitnessError::Key(format!("{}: {e}", path.display()))),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(None),
            Err(e) => Err(io(&path)(e)),
        }
    }

    /// One round: fetch, check, cosign (or refuse). Errors are failures to reach or read
    /// the log, never a verdict on it.
    pub async fn round(&self) -> Result<Outcome, WitnessError> {
        let Some((sequence, text)) = self.latest_checkpoint().await? else {
            return Ok(Outcome::NothingYet);
        };
        let (signed, cp) = match self.signed_by_the_log(sequence, &text).await? {
            Ok(checked) => checked,
            Err(refusal) => return Ok(Outcome::Refused(refusal)),
        };
        let previous = self.load_state()?;
        if let Some(old) = &previous {
            if let Some(verdict) = self.against_cosigned(old, sequence, &cp).await? {
                return Ok(verdict);
            }
        }
        self.cosign(&signed, &cp, sequence, previous.as_ref()).await
    }

    /// The sequence and note of the newest checkpoint that has one.
    async fn latest_checkpoint(&self) -> Result<Option<(u64, String)>, WitnessError> {
        let (_, list) = self
            .call(reqwest::Method::GET, "/v1/audit/checkpoints", None)
            .await?;
        let Some(latest) = list["items"]
            .as_array()
            .and_then(|a| a.iter().rev().find(|c| c["note"].is_string()))
        else {
            return Ok(None);
        };
        let sequence = latest["sequence"]
            .as_u64()
            .ok_or_else(|| WitnessError::Answer {
                what: "GET /v1/audit/checkpoints".into(),
                reason: "no sequence".into(),
            })?;
        let text = latest["note"].as_str().unwrap_or_default().to_string();
        Ok(Some((sequence, text)))
    }

    /// The note parsed and its signature checked against the log's keys; `Err` is the
    /// refusal.
    async fn signed_by_the_log(
        &self,
        sequence: u64,
        text: &str,
    ) -> Result<Result<(Note, Checkpoint), String>, WitnessError> {
        let parsed = Note::parse(text).and_then(|signed| {
            let cp = signed.checkpoint()?;
            Ok((signed, cp))
        });
        let (signed, cp) = match parsed {
            Ok(parsed) => parsed,
            Err(e) => return Ok(Err(format!("checkpoint {sequence}: {e}"))),
        };
        let keys = self.log_keys().await?;
        if signed
            .verify_log_signature(&cp.origin, keys.iter())
            .is_err()
        {
            return Ok(Err(format!(
                "checkpoint {sequence} (tree size {}) has no valid signature by the log's key",
                cp.tree_size
            )));
        }
        Ok(Ok((signed, cp)))
    }

    /// What the checkpoint says against the one this witness cosigned last: a verdict
    /// (unchanged, or refused), or `None` when it extends it and may be cosigned.
    async fn against_cosigned(
        &self,
        old: &State,
        sequence: u64,
        cp: &Checkpoint,
    ) -> Result<Option<Outcome>, WitnessError> {
        if old.origin != cp.origin {
            return Ok(Some(Outcome::Refused(format!(
                "the log's origin changed from {} to {}",
                old.origin, cp.origin
            ))));
        }
        let old_root: [u8; 32] = B64
            .decode(&old.root)
            .ok()
            .and_then(|r| r.try_into().ok())
            .ok_or_else(|| WitnessError::Key("state.json: bad root".into()))?;
        if cp.tree_size < old.tree_size {
            return Ok(Some(Outcome::Refused(format!(
                "the log's latest checkpoint covers {} events, fewer than the {} this witness cosigned: the log was truncated or rolled back",
                cp.tree_size, old.tree_size
            ))));
        }
        if cp.tree_size == old.tree_size {
            return Ok(Some(if cp.root == old_root {
                Outcome::Unchanged {
                    tree_size: cp.tree_size,
                }
            } else {
                Outcome::Refused(format!(
                    "two different roots for tree size {}: the log forked",
                    cp.tree_size
                ))
            }));
        }
        self.consistency(old, &old_root, sequence, cp).await
    }

    /// Fetches and checks the consistency proof from the cosigned checkpoint to this one.
    async fn consistency(
        &self,
        old: &State,
        old_root: &merkle::Hash,
        sequence: u64,
        cp: &Checkpoint,
    ) -> Result<Option<Outcome>, WitnessError> {
        let path = format!(
            "/v1/audit/checkpoints/{sequence}/consistency?from={}",
            old.sequence
        );
        let (status, proof) = self.call(reqwest::Method::GET, &path, None).await?;
        if status == 404 {
            return Ok(Some(Outcome::Refused(format!(
                "the log no longer has checkpoint {} (tree size {}) that this witness cosigned",
                old.sequence, old.tree_size
            ))));
        }
        if proof["from"]["tree_size"].as_u64() != Some(old.tree_size) {
            return Ok(Some(Outcome::Refused(format!(
                "the log's checkpoint {} now covers {} events; the one this witness cosigned covered {}: history was rewritten",
                old.sequence, proof["from"]["tree_size"], old.tree_size
            ))));
        }
        let hashes: Option<Vec<merkle::Hash>> = proof["proof"]
            .as_array()
            .map(|a| {
                a.iter()
                    .map(|h| h.as_str().and_then(merkle::from_hex))
                    .collect()
            })
            .unwrap_or(None);
        let Some(hashes) = hashes else {
            return Err(WitnessError::Answer {
                what: path,
                reason: "no proof".into(),
            });
        };
        if merkle::verify_consistency(old.tree_size, cp.tree_size, old_root, &cp.root, &hashes) {
            return Ok(None);
        }
        Ok(Some(Outcome::Refused(format!(
            "checkpoint {sequence} (tree size {}) does not extend the checkpoint this witness cosigned (tree size {}): the consistency proof fails, so history before it was rewritten or forked",
            cp.tree_size, old.tree_size
        ))))
    }

    /// Cosigns: stores what was cosigned first (the statement is made), then posts it.
    async fn cosign(
        &self,
        signed: &Note,
        cp: &Checkpoint,
        sequence: u64,
        previous: Option<&State>,
    ) -> Result<Outcome, WitnessError> {
        let now = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map(|d| d.as_secs())
            .unwrap_or(0);
        let timestamp = previous.map_or(now, |p| now.max(p.timestamp + 1));
        let line = note::cosign(&signed.body, &self.id.public.name, &self.id.key, timestamp);
        let mut cosigned = signed.clone();
        cosigned.signatures.push(line.clone());
        let state = State {
            origin: cp.origin.clone(),
            sequence,
            tree_size: cp.tree_size,
            root: B64.encode(cp.root),
            timestamp,
        };
        write_atomic(
            &self.cfg.key_dir.join("checkpoint"),
            cosigned.text().as_bytes(),
            false,
        )?;
        let state_bytes =
            serde_json::to_vec_pretty(&state).map_err(|e| WitnessError::Key(e.to_string()))?;
        write_atomic(&self.state_path(), &state_bytes, false)?;
        let mut raw = line.key_id.to_vec();
        raw.extend_from_slice(&line.bytes);
        let path = format!("/v1/audit/checkpoints/{sequence}/cosignatures");
        let (status, v) = self
            .call(
                reqwest::Method::POST,
                &path,
                Some(serde_json::json!({
                    "witness_key": self.vkey(),
                    "cosignature": B64.encode(raw),
                })),
            )
            .await?;
        if status != 201 {
            return Err(WitnessError::Status {
                what: format!("POST {path}"),
                status,
                body: v.to_string(),
            });
        }
        Ok(Outcome::Cosigned {
            sequence,
            tree_size: cp.tree_size,
        })
    }

    /// Runs one round and records its outcome in `status.json` and the log.
    pub async fn round_and_report(&self) -> Result<Outcome, WitnessError> {
        let result = self.round().await;
        let (outcome, detail) = match &result {
            Ok(Outcome::Cosigned {
                sequence,
                tree_size,
            }) => {
                tracing::info!(sequence, tree_size, "checkpoint cosigned");
                (
                    "cosigned",
                    format!("checkpoint {sequence}, tree size {tree_size}"),
                )
            }
            Ok(Outcome::Unchanged { tree_size }) => {
                tracing::info!(tree_size, "no new checkpoint");
                ("unchanged", format!("tree size {tree_size}"))
            }
            Ok(Outcome::NothingYet) => {
                tracing::info!("the log has no signed checkpoint note yet");
                ("nothing_yet", String::new())
            }
            Ok(Outcome::Refused(reason)) => {
                tracing::error!(reason = %reason, "REFUSED to cosign");
                ("refused", reason.clone())
            }
            Err(e) => {
                tracing::warn!(error = %e, "witness round failed");
                ("error", e.to_string())
            }
        };
        let at = time::OffsetDateTime::now_utc()
            .format(&time::format_description::well_known::Rfc3339)
            .unwrap_or_default();
        let status = serde_json::json!({
            "outcome": outcome,
            "detail": detail,
            "at": at,
            "log_url": self.cfg.log_url,
            "witness_key": self.vkey(),
        });
        write_atomic(
            &self.cfg.key_dir.join("status.json"),
            status.to_string().as_bytes(),
            false,
        )?;
        result
    }
}
