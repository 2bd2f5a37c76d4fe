//! Where master keys come from: the environment, or files in the key dir.
//!
//! - `AUTHLEDGER_MASTER_KEY`: base64 of 32 bytes, the current master (wraps new data keys).
//!   When set, `master.key` is not read.
//! - `AUTHLEDGER_MASTER_KEYS_ACCEPTED`: optional, comma-separated base64 keys that may
//!   unwrap but never wrap (rotation across several instances).
//! - `<key-dir>/master.key`: base64 of 32 bytes, mode 0600; generated on first run when
//!   `create` (the embedded default only: instances sharing a PostgreSQL store must share
//!   one master key, so they never generate their own).
//! - `<key-dir>/master.next.key`: a staged rotation target; loaded as accepted, so an
//!   instance restarted mid-rotation still opens everything.
//!
//! Files are written 0600 from creation via a temp file; a new key never replaces an
//! existing file (hard link, which fails if the target exists), so two processes starting
//! at once end up with the same key.

use std::io::Write as _;
use std::path::{Path, PathBuf};

use super::primitives::MasterKey;
use super::CryptoError;

pub const MASTER_KEY_ENV: &str = "AUTHLEDGER_MASTER_KEY";
pub const MASTER_KEYS_ACCEPTED_ENV: &str = "AUTHLEDGER_MASTER_KEYS_ACCEPTED";
pub const MASTER_KEY_FILE: &str = "master.key";
pub const NEXT_MASTER_KEY_FILE: &str = "master.next.key";

/// The master keys an instance holds. `Debug` shows only ids.
#[derive(Debug, Clone)]
pub struct MasterKeys {
    /// Wraps new data keys; also unwraps.
    pub current: MasterKey,
    /// Unwrap only (previous or staged keys during a rotation).
    pub accepted: Vec<MasterKey>,
}

/// Master keys from the environment, else from `key_dir` (see the module doc).
pub fn load_master_keys(key_dir: &Path, create: bool) -> Result<MasterKeys, CryptoError> {
    let current = std::env::var(MASTER_KEY_ENV).ok();
    let accepted = std::env::var(MASTER_KEYS_ACCEPTED_ENV).ok();
    master_keys_from(current.as_deref(), accepted.as_deref(), key_dir, create)
}

/// [`load_master_keys`] with the environment values passed in (testable). Empty values
/// count as unset.
pub fn master_keys_from(
    env_current: Option<&str>,
    env_accepted: Option<&str>,
    key_dir: &Path,
    create: bool,
) -> Result<MasterKeys, CryptoError> {
    let mut accepted = Vec::new();
    for (i, text) in env_accepted
        .unwrap_or("")
        .split(',')
        .map(str::trim)
        .filter(|t| !t.is_empty())
        .enumerate()
    {
        accepted.push(MasterKey::from_base64(
            text,
            &format!("{MASTER_KEYS_ACCEPTED_ENV} (entry {})", i + 1),
        )?);
    }
    let current = match env_current.map(str::trim).filter(|t| !t.is_empty()) {
        Some(text) => MasterKey::from_base64(text, MASTER_KEY_ENV)?,
        None => {
            if let Some(next) = read_master_file(&key_dir.join(NEXT_MASTER_KEY_FILE))? {
                accepted.push(next);
            }
            load_master_file(key_dir, create)?
        }
    };
    accepted.retain(|k| k.id() != current.id());
    Ok(MasterKeys { current, accepted })
}

/// `<key_dir>/master.key`; generated (0600) when missing and `create`.
pub fn load_master_file(key_dir: &Path, create: bool) -> Result<MasterKey, CryptoError> {
    let path = key_dir.join(MASTER_KEY_FILE);
    match read_master_file(&path)? {
        Some(key) => Ok(key),
        None if create => create_master_file(&path),
        None => Err(CryptoError::invalid(
            path.display().to_string(),
            format!("missing; set {MASTER_KEY_ENV} (base64 of 32 bytes, shared by every instance) or create the file"),
        )),
    }
}

/// Reads a master key file; `None` when it does not exist.
pub fn read_master_file(path: &Path) -> Result<Option<MasterKey>, CryptoError> {
    match std::fs::read(path) {
        Ok(bytes) => {
            let text = zeroize::Zeroizing::new(String::from_utf8(bytes).map_err(|e| {
                // Do not keep (or print) the invalid bytes.
                let mut bytes = e.into_bytes();
                zeroize::Zeroize::zeroize(&mut bytes);
                CryptoError::invalid(path.display().to_string(), "not base64 of 32 bytes")
            })?);
            MasterKey::from_base64(&text, &path.display().to_string()).map(Some)
        }
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(None),
        Err(source) => Err(CryptoError::Io {
            path: path.to_path_buf(),
            source,
        }),
    }
}

/// Generates a key into `path` unless one is already there, and returns the key the file
/// holds afterwards (ours, or the one a concurrent process wrote first).
fn create_master_file(path: &Path) -> Result<MasterKey, CryptoError> {
    let key = MasterKey::generate()?;
    if write_new_private(path, key.to_base64().as_bytes())? {
        return Ok(key);
    }
    read_master_file(path)?.ok_or_else(|| {
        CryptoError::invalid(path.display().to_string(), "vanished while being created")
    })
}

/// Stages the rotation target in `<key_dir>/master.next.key` (or returns the one already
/// staged, so a crashed rotation resumes with the same key).
pub fn stage_next_master(key_dir: &Path) -> Result<MasterKey, CryptoError> {
    create_master_file(&key_dir.join(NEXT_MASTER_KEY_FILE))
}

/// After [`super::Vault::rotate_master`] with the staged key: it replaces `master.key`
/// (the previous master's bytes leave the key dir).
pub fn promote_next_master(key_dir: &Path) -> Result<(), CryptoError> {
    let next = key_dir.join(NEXT_MASTER_KEY_FILE);
    let path = key_dir.join(MASTER_KEY_FILE);
    std::fs::rename(&next, &path).map_err(|source| CryptoError::Io { path: next, source })?;
    sync_dir(key_dir);
    Ok(())
}

fn create_private_dir(dir: &Path) -> Result<(), CryptoError> {
    use std::os::unix::fs::DirBuilderExt;
    std::fs::DirBuilder::new()
        .recursive(true)
        .mode(0o700)
        .create(dir)
        .map_err(|source| CryptoError::Io {
            path: dir.to_path_buf(),
            source,
        })
}

fn sync_dir(dir: &Path) {
    if let Ok(d) = std::fs::File::open(dir) {
        let _ = d.sync_all();
    }
}

/// Writes `bytes` to `path` with mode 0600 from creation, through a temp file, only if
/// `path` does not exist. Returns false (and writes nothing) when it already exists.
fn write_new_private(path: &Path, bytes: &[u8]) -> Result<bool, CryptoError> {
    use std::os::unix::fs::OpenOptionsExt;
    let dir = path
        .parent()
        .map(Path::to_path_buf)
        .unwrap_or_else(|| PathBuf::from("."));
    create_private_dir(&dir)?;
    let name = path
        .file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_default();
    let tmp = dir.join(format!(".{name}.{}.tmp", uuid::Uuid::now_v7().simple()));
    let err = |source| CryptoError::Io {
        path: path.to_path_buf(),
        source,
    };
    let result = (|| {
        let mut f = std::fs::OpenOptions::new()
            .write(true)
            .create_new(true)
            .mode(0o600)
            .open(&tmp)
            .map_err(err)?;
        f.write_all(bytes).map_err(err)?;
        f.sync_all().map_err(err)?;
        drop(f);
        match std::fs::hard_link(&tmp, path) {
            Ok(()) => Ok(true),
            Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists => Ok(false),
            Err(e) => Err(err(e)),
        }
    })();
    let _ = std::fs::remove_file(&tmp);
    sync_dir(&dir);
    result
}

#[cfg(test)]
#[allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]
mod tests {
    use std::os::unix::fs::PermissionsExt;

    use base64::Engine as _;

    use super::*;

    fn mode(path: &Path) -> u32 {
        std::fs::metadata(path)
            .expect("metadata")
            .permissions()
            .mode()
            & 0o777
    }

    #[test]
    fn master_file_is_private_reloads_and_is_never_replaced() {
        let tmp = tempfile::tempdir().expect("tempdir");
        let dir = tmp.path().join("keys");
        assert!(matches!(
            master_keys_from(None, None, &dir, false),
            Err(CryptoError::Invalid { .. })
        ));
        let a = master_keys_from(None, None, &dir, true).expect("create");
        assert_eq!(mode(&dir.join(MASTER_KEY_FILE)), 0o600);
        assert_eq!(mode(&dir), 0o700);
        let b = master_keys_from(None, None, &dir, true).expect("reload");
        assert_eq!(a.current.id(), b.current.id());
        assert!(b.accepted.is_empty());
        // No temp files left behind.
        let names: Vec<_> = std::fs::read_dir(&dir)
            .expect("dir")
            .map(|e| e.expect("entry").file_name())
            .collect();
        assert_eq!(names, vec![std::ffi::OsString::from(MASTER_KEY_FILE)]);
    }

    #[test]
    fn env_wins_and_bad_values_are_not_echoed() {
        let tmp = tempfile::tempdir().expect("tempdir");
        let file_key = master_keys_from(None, None, tmp.path(), true)
            .expect("file")
            .current;
        let env = base64::engine::general_purpose::STANDARD.encode([5u8; 32]);
        let other = base64::engine::general_purpose::STANDARD.encode([6u8; 32]);
        let keys = master_keys_from(
            Some(&env),
            Some(&format!(" {other} ,{env}")),
            tmp.path(),
            false,
        )
        .expect("env");
        assert_ne!(keys.current.id(), file_key.id());
        assert_eq!(
            keys.accepted.len(),
            1,
            "the current key is not repeated as accepted"
        );
        assert!(
            master_keys_from(Some("  "), None, tmp.path(), false).is_ok(),
            "empty = unset"
        );
        let err = master_keys_from(Some("c2VjcmV0"), None, tmp.path(), false)
            .expect_err("short")
            .to_string();
        assert!(err.contains(MASTER_KEY_ENV) && !err.contains("c2VjcmV0"));
    }

    #[test]
    fn staged_key_is_accepted_until_promoted() {
        let tmp = tempfile::tempdir().expect("tempdir");
        let old = master_keys_from(None, None, tmp.path(), true)
            .expect("create")
            .current;
        let next = stage_next_master(tmp.path()).expect("stage");
        assert_eq!(
            stage_next_master(tmp.path()).expect("again").id(),
            next.id(),
            "staging resumes"
        );
        assert_eq!(mode(&tmp.path().join(NEXT_MASTER_KEY_FILE)), 0o600);
        let mid = master_keys_from(None, None, tmp.path(), false).expect("mid-rotation");
        assert_eq!(mid.current.id(), old.id());
        assert_eq!(
            mid.accepted.iter().map(|k| k.id()).collect::<Vec<_>>(),
            vec![next.id()]
        );
        promote_next_master(tmp.path()).expect("promote");
        let after = master_keys_from(None, None, tmp.path(), false).expect("after");
        assert_eq!(after.current.id(), next.id());
        assert!(after.accepted.is_empty());
        assert_eq!(mode(&tmp.path().join(MASTER_KEY_FILE)), 0o600);
    }
}
