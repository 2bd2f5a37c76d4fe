//! Where a verification's trusted keys come from, and how it says so.
//!
//! Pinned keys (`--trusted-key`, `--ring FILE`) come from outside the data dir and replace
//! its `ring.json`: a verdict on them is independent of whoever can write the data dir.
//! Without pins, the data dir's own `ring.json` (and `AUTHLEDGER_SIGNING_KEY`) is used, and
//! the report says that this trust is not independent: whoever can copy the data dir holds
//! the signing key beside it and can re-sign history.

use std::path::{Path, PathBuf};

use super::keys::{KeyDir, KeyError, KeyRing, RingFile, Signer};

/// A key ring and a one-line account of where it came from.
#[derive(Debug, Clone)]
pub struct TrustedKeys {
    pub ring: KeyRing,
    /// For the summary line and `--json`, e.g. `ring.json in the data dir (not independent)`.
    pub description: String,
    /// Whether every key was pinned from outside the data dir.
    pub independent: bool,
}

/// Pinned keys when any are given, else the key dir's ring (see the module comment).
pub fn trusted_keys(
    key_dir: &Path,
    pinned_keys: &[String],
    ring_files: &[PathBuf],
) -> Result<TrustedKeys, KeyError> {
    let mut ring = KeyRing::default();
    if !pinned_keys.is_empty() || !ring_files.is_empty() {
        let mut parts = Vec::new();
        for k in pinned_keys {
            let id = ring.add_base64(k, "--trusted-key")?;
            parts.push(format!("pinned key {id}"));
        }
        for file in ring_files {
            let n = add_ring_file(&mut ring, file)?;
            parts.push(format!("pinned ring {} ({n} keys)", file.display()));
        }
        return Ok(TrustedKeys {
            ring,
            description: parts.join(", "),
            independent: true,
        });
    }
    let dir = KeyDir::new(key_dir);
    ring = dir.trusted()?;
    let mut description = format!(
        "ring.json in the data dir ({}; not independent: pin keys with --trusted-key or --ring)",
        dir.path().join("ring.json").display()
    );
    if let Ok(seed) = std::env::var("AUTHLEDGER_SIGNING_KEY") {
        ring.insert(Signer::from_base64_seed(&seed, "AUTHLEDGER_SIGNING_KEY")?.public_key());
        description.push_str(" and the key of AUTHLEDGER_SIGNING_KEY");
    }
    if ring.is_empty() {
        return Err(KeyError::NoTrust);
    }
    Ok(TrustedKeys {
        ring,
        description,
        independent: false,
    })
}

/// Adds every key of a `ring.json`-format file (schemas/README.md §4); returns how many.
fn add_ring_file(ring: &mut KeyRing, file: &Path) -> Result<usize, KeyError> {
    let bytes = std::fs::read(file).map_err(|source| KeyError::Read {
        path: file.to_path_buf(),
        source,
    })?;
    let what = file.display().to_string();
    let parsed: RingFile = serde_json::from_slice(&bytes).map_err(|e| KeyError::Invalid {
        what: what.clone(),
        reason: e.to_string(),
    })?;
    for entry in &parsed.keys {
        let id = ring.add_base64(&entry.public_key, &what)?;
        if id != entry.key_id {
            return Err(KeyError::Invalid {
                what,
                reason: format!(
                    "key id {} does not match its public key ({id})",
                    entry.key_id
                ),
            });
        }
    }
    Ok(parsed.keys.len())
}
