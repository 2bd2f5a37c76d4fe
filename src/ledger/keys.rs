//! Signing keys: the active signer and the ring of trusted public keys.
//!
//! On disk (the key dir, `<data-dir>/keys` by default):
//! - `active.key`: base64 of the 32-byte ed25519 seed, mode 0600, never logged;
//! - `ring.json`: every public key ever active (retired ones stay, so old events verify).

use std::collections::BTreeMap;
use std::io::Write as _;
use std::path::{Path, PathBuf};

use base64::engine::general_purpose::STANDARD as B64;
use base64::Engine as _;
use bytes::Bytes;
use ed25519_dalek::{Signer as _, SigningKey, VerifyingKey};
use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};

use super::envelope::{encode_envelope, pae, EnvelopeError, PAYLOAD_TYPE};

#[derive(Debug, thiserror::Error)]
pub enum KeyError {
    #[error("cannot read {path}: {source}")]
    Read {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("cannot write {path}: {source}")]
    Write {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("{what} is not valid: {reason}")]
    Invalid { what: String, reason: String },
    #[error("no signing key in {0}; create one with `authledger keys init --key-dir {0}` (share it with every instance) or set AUTHLEDGER_SIGNING_KEY")]
    Missing(PathBuf),
    #[error("no trusted public keys: give --key-dir with a ring.json or --trusted-key")]
    NoTrust,
    #[error(transparent)]
    Envelope(#[from] EnvelopeError),
}

/// `ed25519:<first 16 hex of sha256(public key)>`.
pub fn key_id(public: &VerifyingKey) -> String {
    let digest = Sha256::digest(public.as_bytes());
    format!("ed25519:{}", &hex::encode(digest)[..16])
}

/// The key that signs new events. `Debug` shows only its id.
pub struct Signer {
    key: SigningKey,
    key_id: String,
}

impl std::fmt::Debug for Signer {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Signer")
            .field("key_id", &self.key_id)
            .finish_non_exhaustive()
    }
}

impl Signer {
    pub fn from_seed(seed: &[u8; 32]) -> Self {
        let key = SigningKey::from_bytes(seed);
        let key_id = key_id(&key.verifying_key());
        Signer { key, key_id }
    }

    pub fn generate() -> Self {
        let key = SigningKey::generate(&mut rand::rngs::OsRng);
        let key_id = key_id(&key.verifying_key());
        Signer { key, key_id }
    }

    /// Parses base64 of a 32-byte seed (the `active.key` / `AUTHLEDGER_SIGNING_KEY` form).
    pub fn from_base64_seed(text: &str, what: &str) -> Result<Self, KeyError> {
        let raw = zeroize::Zeroizing::new(B64.decode(text.trim().as_bytes()).map_err(|_| {
            KeyError::Invalid {
                what: what.into(),
                reason: "not base64".into(),
            }
        })?);
        let seed: &[u8; 32] = raw.as_slice().try_into().map_err(|_| KeyError::Invalid {
            what: what.into(),
            reason: "not a 32-byte ed25519 seed".into(),
        })?;
        Ok(Signer::from_seed(seed))
    }

    pub fn key_id(&self) -> &str {
        &self.key_id
    }

    pub fn public_key(&self) -> VerifyingKey {
        self.key.verifying_key()
    }

    /// Signs body bytes and returns the DSSE envelope bytes to store.
    pub fn seal(&self, body: &[u8]) -> Result<Bytes, EnvelopeError> {
        let sig = self.key.sign(&pae(PAYLOAD_TYPE, body));
        encode_envelope(body, &self.key_id, &sig.to_bytes())
    }

    /// Signs a C2SP signed-note body (a checkpoint, `ledger::note`). A note body is text
    /// whose lines end in newlines and whose first line is the log's origin, so it never
    /// equals a DSSE PAE (`DSSEv1 …`) nor a JWS signing input (base64url, no newline).
    pub fn sign_note(&self, body: &str) -> [u8; 64] {
        self.key.sign(body.as_bytes()).to_bytes()
    }

    /// Signs a JWS in compact form (`alg: EdDSA`, RFC 8037) over `header` and `claims`.
    /// The signing input is base64url text joined by a dot, which never contains the space
    /// every DSSE PAE starts with ("DSSEv1 "), so a token signature is never an event
    /// signature and vice versa.
    pub fn sign_jws(
        &self,
        header: &serde_json::Value,
        claims: &serde_json::Value,
    ) -> Result<String, EnvelopeError> {
        use base64::engine::general_purpose::URL_SAFE_NO_PAD;
        let part = |v: &serde_json::Value| {
            serde_json::to_vec(v)
                .map(|b| URL_SAFE_NO_PAD.encode(b))
                .map_err(|e| EnvelopeError::Malformed(e.to_string()))
        };
        let input = format!("{}.{}", part(header)?, part(claims)?);
        let sig = self.key.sign(input.as_bytes());
        Ok(format!(
            "{input}.{}",
            URL_SAFE_NO_PAD.encode(sig.to_bytes())
        ))
    }

    fn seed_base64(&self) -> zeroize::Zeroizing<String> {
        zeroize::Zeroizing::new(B64.encode(self.key.to_bytes()))
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum KeyStatus {
    Active,
    Retired,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct RingEntry {
    pub key_id: String,
    /// base64 of the 32-byte ed25519 public key.
    pub public_key: String,
    pub status: KeyStatus,
}

#[derive(Debug, Clone, Default, Serialize, Deserialize)]
pub struct RingFile {
    pub keys: Vec<RingEntry>,
}

/// Public keys trusted to have signed events, by key id.
#[derive(Debug, Clone, Default)]
pub struct KeyRing {
    keys: BTreeMap<String, VerifyingKey>,
}

impl KeyRing {
    pub fn insert(&mut self, public: VerifyingKey) -> String {
        let id = key_id(&public);
        self.keys.insert(id.clone(), public);
        id
    }

    pub fn get(&self, key_id: &str) -> Option<&VerifyingKey> {
        self.keys.get(key_id)
    }

    pub fn len(&self) -> usize {
        self.keys.len()
    }

    pub fn is_empty(&self) -> bool {
        self.keys.is_empty()
    }

    pub fn ids(&self) -> impl Iterator<Item = &String> {
        self.keys.keys()
    }

    /// Verifies `sig` over the PAE of `body` with the trusted key `key_id`, by the one
    /// signature rule (`signature::verify`, schemas/README.md §3).
    pub fn verify(
        &self,
        key_id: &str,
        body: &[u8],
        sig: &[u8; 64],
    ) -> Result<(), SignatureProblem> {
        let key = self.keys.get(key_id).ok_or(SignatureProblem::UnknownKey)?;
        super::signature::verify(key, &pae(PAYLOAD_TYPE, body), sig)
            .map_err(|_| SignatureProblem::BadSignature)
    }

    pub fn add_base64(&mut self, text: &str, what: &str) -> Result<String, KeyError> {
        let public = parse_public(text, what)?;
        Ok(self.insert(public))
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SignatureProblem {
    UnknownKey,
    BadSignature,
}

pub fn parse_public(text: &str, what: &str) -> Result<VerifyingKey, KeyError> {
    let raw = B64
        .decode(text.trim().as_bytes())
        .map_err(|_| KeyError::Invalid {
            what: what.into(),
            reason: "not base64".into(),
        })?;
    let bytes: [u8; 32] = raw.as_slice().try_into().map_err(|_| KeyError::Invalid {
        what: what.into(),
        reason: "not a 32-byte ed25519 public key".into(),
    })?;
    VerifyingKey::from_bytes(&bytes).map_err(|_| KeyError::Invalid {
        what: what.into(),
        reason: "not an ed25519 point".into(),
    })
}

/// The key dir on disk.
#[derive(Debug, Clone)]
pub struct KeyDir {
    dir: PathBuf,
}

impl KeyDir {
    pub fn new(dir: impl Into<PathBuf>) -> Self {
        KeyDir { dir: dir.into() }
    }

    pub fn path(&self) -> &Path {
        &self.dir
    }

    fn active_path(&self) -> PathBuf {
        self.dir.join("active.key")
    }

    fn ring_path(&self) -> PathBuf {
        self.dir.join("ring.json")
    }

    pub fn has_active(&self) -> bool {
        self.active_path().exists()
    }

    /// Loads the active signer; `create` generates one when the dir has none.
    pub fn load_signer(&self, create: bool) -> Result<Signer, KeyError> {
        let path = self.active_path();
        match std::fs::read_to_string(&path) {
            Ok(text) => {
                let signer = Signer::from_base64_seed(&text, &path.display().to_string())?;
                self.ensure_in_ring(&signer)?;
                Ok(signer)
            }
            Err(e) if e.kind() == std::io::ErrorKind::NotFound && create => self.init(),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
                Err(KeyError::Missing(self.dir.clone()))
            }
            Err(source) => Err(KeyError::Read { path, source }),
        }
    }

    /// Creates a new active key in an empty key dir.
    pub fn init(&self) -> Result<Signer, KeyError> {
        create_private_dir(&self.dir)?;
        let signer = Signer::generate();
        write_private(&self.active_path(), signer.seed_base64().as_bytes(), true)?;
        self.ensure_in_ring(&signer)?;
        Ok(signer)
    }

    pub fn read_ring(&self) -> Result<RingFile, KeyError> {
        let path = self.ring_path();
        match std::fs::read(&path) {
            Ok(bytes) => serde_json::from_slice(&bytes).map_err(|e| KeyError::Invalid {
                what: path.display().to_string(),
                reason: e.to_string(),
            }),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(RingFile::default()),
            Err(source) => Err(KeyError::Read { path, source }),
        }
    }

    /// Every public key in `ring.json`, active and retired.
    pub fn trusted(&self) -> Result<KeyRing, KeyError> {
        let mut ring = KeyRing::default();
        for entry in self.read_ring()?.keys {
            let id = ring.add_base64(&entry.public_key, "ring.json public_key")?;
            if id != entry.key_id {
                return Err(KeyError::Invalid {
                    what: "ring.json".into(),
                    reason: format!(
                        "key id {} does not match its public key ({id})",
                        entry.key_id
                    ),
                });
            }
        }
        Ok(ring)
    }

    fn write_ring(&self, ring: &RingFile) -> Result<(), KeyError> {
        let bytes = serde_json::to_vec_pretty(ring).map_err(|e| KeyError::Invalid {
            what: "ring.json".into(),
            reason: e.to_string(),
        })?;
        write_private(&self.ring_path(), &bytes, false)
    }

    fn ensure_in_ring(&self, signer: &Signer) -> Result<(), KeyError> {
        let mut ring = self.read_ring()?;
        if ring.keys.iter().any(|k| k.key_id == signer.key_id) {
            return Ok(());
        }
        ring.keys.push(RingEntry {
            key_id: signer.key_id.clone(),
            public_key: B64.encode(signer.public_key().as_bytes()),
            status: KeyStatus::Active,
        });
        self.write_ring(&ring)
    }

    /// Writes the next key beside the active one, before the rotation event is appended.
    pub fn stage_next(&self) -> Result<Signer, KeyError> {
        let signer = Signer::generate();
        write_private(
            &self.dir.join("next.key"),
            signer.seed_base64().as_bytes(),
            false,
        )?;
        Ok(signer)
    }

    /// After the rotation event is in the log: the staged key becomes active, the old one
    /// retired (its public half stays in the ring; its private half is deleted).
    pub fn promote_next(&self, next: &Signer) -> Result<(), KeyError> {
        let mut ring = self.read_ring()?;
        for k in ring.keys.iter_mut() {
            k.status = KeyStatus::Retired;
        }
        ring.keys.push(RingEntry {
            key_id: next.key_id.clone(),
            public_key: B64.encode(next.public_key().as_bytes()),
            status: KeyStatus::Active,
        });
        self.write_ring(&ring)?;
        let next_path = self.dir.join("next.key");
        std::fs::rename(&next_path, self.active_path()).map_err(|source| KeyError::Write {
            path: next_path,
            source,
        })
    }
}

fn create_private_dir(dir: &Path) -> Result<(), KeyError> {
    use std::os::unix::fs::DirBuilderExt;
    std::fs::DirBuilder::new()
        .recursive(true)
        .mode(0o700)
        .create(dir)
        .map_err(|source| KeyError::Write {
            path: dir.to_path_buf(),
            source,
        })
}

/// Writes via a temp file and rename, mode 0600 from creation (never world-readable).
fn write_private(path: &Path, bytes: &[u8], must_not_exist: bool) -> Result<(), KeyError> {
    use std::os::unix::fs::OpenOptionsExt;
    if must_not_exist && path.exists() {
        return Err(KeyError::Invalid {
            what: path.display().to_string(),
            reason: "already exists; refusing to overwrite a signing key".into(),
        });
    }
    if let Some(parent) = path.parent() {
        create_private_dir(parent)?;
    }
    let tmp = path.with_extension("tmp");
    let err = |source| KeyError::Write {
        path: path.to_path_buf(),
        source,
    };
    let _ = std::fs::remove_file(&tmp);
    let mut f = std::fs::OpenOptions::new()
        .write(true)
        .create_new(true)
        .mode(0o600)
        .open(&tmp)
        .map_err(err)?;
    f.write_all(bytes).map_err(err)?;
    f.sync_all().map_err(err)?;
    std::fs::rename(&tmp, path).map_err(err)?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn key_file_is_private_and_reloads_to_the_same_key() {
        use std::os::unix::fs::PermissionsExt;
        let dir = tempfile::tempdir().unwrap_or_else(|e| unreachable!("{e}"));
        let kd = KeyDir::new(dir.path().join("keys"));
        assert!(matches!(kd.load_signer(false), Err(KeyError::Missing(_))));
        let a = kd.load_signer(true).unwrap_or_else(|e| unreachable!("{e}"));
        let mode = std::fs::metadata(dir.path().join("keys/active.key"))
            .unwrap_or_else(|e| unreachable!("{e}"))
            .permissions()
            .mode();
        assert_eq!(mode & 0o777, 0o600);
        let b = kd
            .load_signer(false)
            .unwrap_or_else(|e| unreachable!("{e}"));
        assert_eq!(a.key_id(), b.key_id());
        assert!(kd
            .trusted()
            .unwrap_or_else(|e| unreachable!("{e}"))
            .get(a.key_id())
            .is_some());
        assert!(!format!("{a:?}").contains(&*a.seed_base64()));
    }

    #[test]
    fn signature_verifies_only_under_the_signing_key() {
        let s = Signer::from_seed(&[7u8; 32]);
        let mut ring = KeyRing::default();
        ring.insert(s.public_key());
        let sig = s.key.sign(&pae(PAYLOAD_TYPE, b"{}")).to_bytes();
        assert_eq!(ring.verify(s.key_id(), b"{}", &sig), Ok(()));
        assert_eq!(
            ring.verify(s.key_id(), b"{ }", &sig),
            Err(SignatureProblem::BadSignature)
        );
        assert_eq!(
            ring.verify("ed25519:00", b"{}", &sig),
            Err(SignatureProblem::UnknownKey)
        );
    }
}
