//! Secret sealing: envelope encryption with per-resource data keys, crypto-shredding,
//! master-key rotation and keyed fingerprints.
//!
//! ```text
//!  master key (32 B, env AUTHLEDGER_MASTER_KEY or <key-dir>/master.key, never in a store)
//!     │ wraps (AES-256-GCM-SIV, AAD = id + owner of the data key)
//!     ▼
//!  data keys (32 B random, one per resource)  ── mutable store: SQLite | PostgreSQL
//!     │ seal (AES-256-GCM-SIV, random 96-bit nonce, AAD = data key id + caller's AAD)
//!     ▼
//!  Sealed { data_key_id, nonce, ciphertext }  ── goes into event payloads
//! ```
//!
//! - **Events** carry only [`Sealed`] values, data key ids and [`fingerprint`]s
//!   (`hmac-sha256:<hex>`), never plaintext.
//! - **Crypto-shredding**: [`Vault::shred`] deletes the wrapped data key row and records a
//!   tombstone (id, owner, time; no key material). The audit trail stays; any later
//!   [`Vault::open`] fails with [`CryptoError::Shredded`]. The SQLite store runs with
//!   `secure_delete=ON` and truncates its WAL after a shred. Copies of the *wrapped* key
//!   may still exist in backups, PostgreSQL dead tuples or WAL archives; they are
//!   useless without the master key that wrapped them, so a shred is logically immediate
//!   and becomes physically complete once the next master rotation has retired that
//!   master key (rotate periodically, and destroy retired master keys).
//! - **No caching** of unwrapped data keys: every seal/open reads the store, so a shred
//!   on one instance takes effect on all instances at once.
//!
//! ## Fingerprint key
//!
//! Fingerprints must stay comparable across master rotations and across instances, so
//! the fingerprint key is **not derived from the master key** (a derived key would change
//! on every rotation). It is a separate random 32-byte key, created on first use, stored
//! in the data key store under the reserved id [`FINGERPRINT_KEY_ID`], wrapped by the
//! master key like any data key, and therefore re-wrapped (not changed) by
//! [`Vault::rotate_master`]. It lives outside the log (as Vault's audit-device HMAC
//! key does), is shared by every instance through the store, and can never be shredded.
//! Losing the store loses it together with every data key (back the store up).
//!
//! ## AAD convention
//!
//! The AAD binds a ciphertext to where it belongs, so a sealed value copied into another
//! resource, workspace or field does not open. Use [`resource_aad`]
//! `(workspace_id, resource_type, resource_id, field)`, e.g.
//! `resource_aad(ws, "connection", conn_id, "access_token")`: a length-prefixed
//! encoding (no separator ambiguity). Do not put versions or times in the AAD: the value
//! must open for as long as the resource exists. The vault additionally binds the data
//! key id itself.
//!
//! ## Master rotation without downtime
//!
//! A wrapped key records the id of the master key that wrapped it (`master_key_id`), and
//! a [`Vault`] holds a ring of master keys: one *current* (wraps new data keys) and any
//! number of *accepted* ones (unwrap only). [`Vault::rotate_master`] makes the new key
//! current, then re-wraps (compare-and-swap on `master_key_id`) every row not yet under
//! it; it is idempotent and can be re-run. [`Vault::retire_master`] drops a key from the
//! ring only once no row is wrapped by it any more.
//! - Embedded (one instance): [`master::stage_next_master`] writes `master.next.key`
//!   (loaded as accepted on restart), `rotate_master(next)`, then
//!   [`master::promote_next_master`] replaces `master.key`.
//! - Several instances: (1) give every instance the new key as accepted
//!   (`AUTHLEDGER_MASTER_KEYS_ACCEPTED`), rolling restart; (2) run `rotate_master` on one;
//!   (3) make the new key current everywhere (old one accepted), rolling restart;
//!   (4) re-run `rotate_master` (catches keys wrapped by instances still on the old key
//!   during step 3) and `retire_master(old)`, then remove the old key from the config.

mod key_queue;
mod key_writer;
pub mod master;
pub mod password;
mod pg_key_writer;
mod primitives;
mod store;
pub mod totp;
mod vault;

pub use master::{
    load_master_keys, MasterKeys, MASTER_KEYS_ACCEPTED_ENV, MASTER_KEY_ENV, MASTER_KEY_FILE,
    NEXT_MASTER_KEY_FILE,
};
pub use primitives::{fingerprint, resource_aad, MasterKey, Sealed};
pub use store::{DataKeyStore, DestroyOutcome, PgDataKeys, SqliteDataKeys, Stored, WrappedKey};
pub use vault::{NewDataKey, SealingKey, Vault, FINGERPRINT_KEY_ID};

/// Every failure of the sealing layer. No variant ever carries key material or plaintext.
#[derive(Debug, thiserror::Error)]
pub enum CryptoError {
    /// The data key was destroyed: its secrets are unrecoverable (by design).
    #[error("data key {0} was shredded; its secrets are unrecoverable")]
    Shredded(String),
    #[error("unknown data key {0}")]
    UnknownKey(String),
    #[error("data key {data_key_id} is wrapped by master key {master_key_id}, which this instance does not hold")]
    UnknownMaster {
        data_key_id: String,
        master_key_id: String,
    },
    /// Authentication failed: the value (or wrapped key) was altered, the AAD differs,
    /// or it was sealed under another key.
    #[error("sealed value does not authenticate (tampered, wrong AAD or wrong key)")]
    Tampered,
    #[error("data key store: {0}")]
    Store(String),
    #[error("{what} is not valid: {reason}")]
    Invalid { what: String, reason: String },
    #[error("cannot access {path}: {source}")]
    Io {
        path: std::path::PathBuf,
        source: std::io::Error,
    },
    #[error("the operating system's random number generator failed")]
    Entropy,
}

impl CryptoError {
    pub(crate) fn invalid(what: impl Into<String>, reason: impl Into<String>) -> Self {
        CryptoError::Invalid {
            what: what.into(),
            reason: reason.into(),
        }
    }
}
