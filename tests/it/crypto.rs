//! Secret sealing against both data key stores: SQLite (temp dir) and PostgreSQL (a
//! fresh database per test): persistence across vault instances, crypto-shredding,
//! master rotation, master key file.

use std::path::PathBuf;
use std::sync::Arc;

use authledger::crypto::master::{master_keys_from, promote_next_master, stage_next_master};
use authledger::crypto::{
    resource_aad, CryptoError, DataKeyStore, MasterKey, PgDataKeys, Sealed, SqliteDataKeys, Stored,
    Vault, WrappedKey, FINGERPRINT_KEY_ID, MASTER_KEY_FILE,
};
use secrecy::ExposeSecret;

use crate::harness::fresh_pg_database;

/// Where a test's data keys live; every `store()` opens a new connection pool on it.
enum Place {
    Sqlite(tempfile::TempDir),
    Pg(String),
}

impl Place {
    fn sqlite() -> Place {
        Place::Sqlite(tempfile::tempdir().expect("tempdir"))
    }

    async fn pg() -> Place {
        Place::Pg(fresh_pg_database().await)
    }

    fn sqlite_path(dir: &tempfile::TempDir) -> PathBuf {
        dir.path().join("data_keys.db")
    }

    async fn store(&self) -> Arc<dyn DataKeyStore> {
        match self {
            Place::Sqlite(dir) => Arc::new(
                SqliteDataKeys::open(&Self::sqlite_path(dir))
                    .await
                    .expect("open SQLite store"),
            ),
            Place::Pg(url) => Arc::new(PgDataKeys::open(url).await.expect("open PostgreSQL store")),
        }
    }

    /// `SELECT COUNT(*) FROM <table> WHERE <column> = $1`, through a separate raw connection.
    async fn count(&self, table: &str, column: &str, value: &str) -> i64 {
        let sql = format!("SELECT COUNT(*) FROM {table} WHERE {column} = $1");
        match self {
            Place::Sqlite(dir) => {
                let url = format!("sqlite://{}", Self::sqlite_path(dir).display());
                let pool = sqlx::SqlitePool::connect(&url).await.expect("raw SQLite");
                let n = sqlx::query_scalar(&sql)
                    .bind(value)
                    .fetch_one(&pool)
                    .await
                    .expect("count");
                pool.close().await;
                n
            }
            Place::Pg(url) => {
                let pool = sqlx::PgPool::connect(url).await.expect("raw PostgreSQL");
                let n = sqlx::query_scalar(&sql)
                    .bind(value)
                    .fetch_one(&pool)
                    .await
                    .expect("count");
                pool.close().await;
                n
            }
        }
    }

    /// The raw `wrapped` column of one row.
    async fn wrapped_bytes(&self, id: &str) -> Vec<u8> {
        let sql = "SELECT wrapped FROM data_keys WHERE id = $1";
        match self {
            Place::Sqlite(dir) => {
                let url = format!("sqlite://{}", Self::sqlite_path(dir).display());
                let pool = sqlx::SqlitePool::connect(&url).await.expect("raw SQLite");
                let b = sqlx::query_scalar(sql)
                    .bind(id)
                    .fetch_one(&pool)
                    .await
                    .expect("wrapped");
                pool.close().await;
                b
            }
            Place::Pg(url) => {
                let pool = sqlx::PgPool::connect(url).await.expect("raw PostgreSQL");
                let b = sqlx::query_scalar(sql)
                    .bind(id)
                    .fetch_one(&pool)
                    .await
                    .expect("wrapped");
                pool.close().await;
                b
            }
        }
    }
}

/// Whether any file in `dir` contains `needle`.
fn on_disk(dir: &std::path::Path, needle: &[u8]) -> bool {
    // Files may come and go meanwhile (SQLite's -wal, -shm, -journal).
    std::fs::read_dir(dir).expect("dir").flatten().any(|entry| {
        std::fs::read(entry.path())
            .is_ok_and(|bytes| bytes.windows(needle.len()).any(|w| w == needle))
    })
}

fn mk() -> MasterKey {
    MasterKey::generate().expect("master key")
}

async fn vault(current: &MasterKey, accepted: &[MasterKey], place: &Place) -> Vault {
    Vault::load(current.clone(), accepted.to_vec(), place.store().await)
        .await
        .expect("vault")
}

async fn open_text(v: &Vault, sealed: &Sealed, aad: &[u8]) -> Result<Vec<u8>, CryptoError> {
    v.open(sealed, aad)
        .await
        .map(|s| s.expose_secret().to_vec())
}

/// Runs one scenario against both stores.
macro_rules! on_both_stores {
    ($scenario:ident) => {
        mod $scenario {
            #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
            async fn sqlite() {
                super::$scenario(super::Place::sqlite()).await;
            }

            #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
            async fn postgres() {
                super::$scenario(super::Place::pg().await).await;
            }
        }
    };
}

on_both_stores!(sealed_secrets_persist_across_vault_instances);
on_both_stores!(shredded_keys_are_gone_and_their_secrets_unrecoverable);
on_both_stores!(rotation_rewraps_everything_under_the_new_master);
on_both_stores!(master_key_file_rotation_end_to_end);
on_both_stores!(concurrent_new_keys_all_land_once);

/// New keys are committed in groups: each put still gets its own answer, an id taken
/// (live, or in the same group, or shredded) is refused, and what was put reads back.
async fn concurrent_new_keys_all_land_once(place: Place) {
    let store = place.store().await;
    let key = |id: &str| WrappedKey {
        id: id.into(),
        owner: format!("ws/connection/{id}"),
        master_key_id: "mk".into(),
        nonce: vec![1; 12],
        wrapped: id.as_bytes().to_vec(),
    };
    let puts: Vec<_> = (0..300)
        .map(|n| {
            let store = store.clone();
            // Ids ending in 1 repeat the one before: one of the two puts wins.
            let id = format!("dk:{}", if n % 10 == 1 { n - 1 } else { n });
            let wrapped = key(&id);
            tokio::spawn(async move { (wrapped.id.clone(), store.put(&wrapped).await) })
        })
        .collect();
    let mut inserted = std::collections::BTreeMap::<String, usize>::new();
    for put in puts {
        let (id, answer) = put.await.expect("task");
        *inserted.entry(id).or_default() += usize::from(answer.expect("put"));
    }
    assert_eq!(inserted.len(), 270);
    assert!(
        inserted.values().all(|&n| n == 1),
        "each id inserted once: {inserted:?}"
    );
    assert_eq!(store.list_ids().await.expect("ids").len(), 270);
    assert!(matches!(store.get("dk:120").await, Ok(Stored::Live(k)) if k == key("dk:120")));
    assert!(!store.put(&key("dk:5")).await.expect("put again"));
    store.destroy("dk:5").await.expect("shred");
    assert!(!store.put(&key("dk:5")).await.expect("a shredded id"));
    assert_eq!(store.get("dk:5").await.expect("get"), Stored::Shredded);
}

async fn sealed_secrets_persist_across_vault_instances(place: Place) {
    let master = mk();
    let aad = resource_aad("ws-1", "connection", "conn-1", "access_token");
    let (sealed, fp, key_id) = {
        let v = vault(&master, &[], &place).await;
        let key = v
            .create_data_key("ws-1/connection/conn-1")
            .await
            .expect("data key");
        let key_id = key.id().to_string();
        assert!(key_id.starts_with("dk:"));
        assert_eq!(
            format!("{key:?}"),
            format!("NewDataKey(DataKey {{ id: {key_id:?}, .. }})"),
            "Debug shows the id only"
        );
        // Sealed with the key in hand: opened below by a vault that reads it from the store.
        let sealed = v
            .seal(&key, b"ya29.secret-access-token", &aad)
            .await
            .expect("seal");
        let json = serde_json::to_string(&sealed).expect("json");
        assert!(!json.contains("secret-access-token"));
        assert_eq!(sealed.data_key_id, key_id);
        (
            serde_json::from_str::<Sealed>(&json).expect("parse"),
            v.fingerprint(b"ya29.secret-access-token"),
            key_id,
        )
    };

    // A new vault on a new pool over the same store: same data key, same fingerprint key.
    let v = vault(&master, &[], &place).await;
    assert_eq!(
        open_text(&v, &sealed, &aad).await.expect("open"),
        b"ya29.secret-access-token"
    );
    assert_eq!(v.fingerprint(b"ya29.secret-access-token"), fp);
    assert_ne!(v.fingerprint(b"another token"), fp);
    assert!(v.store().list_ids().await.expect("ids").contains(&key_id));
    assert!(
        !format!("{v:?}").contains("secret"),
        "Debug shows ids only: {v:?}"
    );

    // Bound to its place: another field, resource or workspace does not open.
    let elsewhere = resource_aad("ws-2", "connection", "conn-1", "access_token");
    assert!(matches!(
        v.open(&sealed, &elsewhere).await,
        Err(CryptoError::Tampered)
    ));
    let other_field = resource_aad("ws-1", "connection", "conn-1", "refresh_token");
    assert!(matches!(
        v.open(&sealed, &other_field).await,
        Err(CryptoError::Tampered)
    ));
    // Pointing the value at another existing data key does not open either.
    let other_key = v
        .create_data_key("ws-1/connection/conn-2")
        .await
        .expect("data key")
        .id()
        .to_string();
    let moved = Sealed {
        data_key_id: other_key,
        ..sealed.clone()
    };
    assert!(matches!(
        v.open(&moved, &aad).await,
        Err(CryptoError::Tampered)
    ));
    let unknown = Sealed {
        data_key_id: "dk:nope".into(),
        ..sealed.clone()
    };
    assert!(matches!(
        v.open(&unknown, &aad).await,
        Err(CryptoError::UnknownKey(_))
    ));
    // The fingerprint key is not a sealing key.
    assert!(matches!(
        v.seal(FINGERPRINT_KEY_ID, b"x", b"").await,
        Err(CryptoError::Invalid { .. })
    ));
    assert!(matches!(
        v.create_data_key("").await,
        Err(CryptoError::Invalid { .. })
    ));

    // A vault without the master that wrapped the keys cannot even start.
    let stranger = Vault::load(mk(), Vec::new(), place.store().await).await;
    assert!(
        matches!(&stranger, Err(CryptoError::UnknownMaster { data_key_id, master_key_id })
            if data_key_id == FINGERPRINT_KEY_ID && master_key_id == master.id()),
        "{stranger:?}"
    );
}

async fn shredded_keys_are_gone_and_their_secrets_unrecoverable(place: Place) {
    let master = mk();
    let v = vault(&master, &[], &place).await;
    let doomed = v
        .create_data_key("ws-1/connection/doomed")
        .await
        .expect("data key")
        .id()
        .to_string();
    let kept = v
        .create_data_key("ws-1/connection/kept")
        .await
        .expect("data key")
        .id()
        .to_string();
    let aad_d = resource_aad("ws-1", "connection", "doomed", "refresh_token");
    let aad_k = resource_aad("ws-1", "connection", "kept", "refresh_token");
    let sealed_d = v
        .seal(&doomed, b"refresh-doomed", &aad_d)
        .await
        .expect("seal");
    let sealed_k = v.seal(&kept, b"refresh-kept", &aad_k).await.expect("seal");
    assert_eq!(place.count("data_keys", "id", &doomed).await, 1);
    let wrapped = place.wrapped_bytes(&doomed).await;
    if let Place::Sqlite(dir) = &place {
        assert!(
            on_disk(dir.path(), &wrapped),
            "the check below is not vacuous"
        );
    }

    v.shred(&doomed).await.expect("shred");

    assert!(
        matches!(v.open(&sealed_d, &aad_d).await, Err(CryptoError::Shredded(id)) if id == doomed)
    );
    assert!(matches!(
        v.seal(&doomed, b"again", &aad_d).await,
        Err(CryptoError::Shredded(_))
    ));
    assert_eq!(
        open_text(&v, &sealed_k, &aad_k).await.expect("kept opens"),
        b"refresh-kept"
    );
    // The raw tables: the wrapped key row is gone, a tombstone without key material remains.
    assert_eq!(place.count("data_keys", "id", &doomed).await, 0);
    assert_eq!(place.count("shredded_data_keys", "id", &doomed).await, 1);
    assert_eq!(place.count("data_keys", "id", &kept).await, 1);
    assert!(!v.store().list_ids().await.expect("ids").contains(&doomed));

    // Idempotent; unknown ids and the fingerprint key are refused.
    v.shred(&doomed).await.expect("shred again");
    assert!(matches!(
        v.shred("dk:never").await,
        Err(CryptoError::UnknownKey(_))
    ));
    assert!(matches!(
        v.shred(FINGERPRINT_KEY_ID).await,
        Err(CryptoError::Invalid { .. })
    ));
    assert_eq!(place.count("data_keys", "id", FINGERPRINT_KEY_ID).await, 1);

    // Also for a fresh instance.
    let v2 = vault(&master, &[], &place).await;
    assert!(matches!(
        v2.open(&sealed_d, &aad_d).await,
        Err(CryptoError::Shredded(_))
    ));
    // A shredded id can never be reused for a new key.
    let reuse = authledger::crypto::WrappedKey {
        id: doomed.clone(),
        owner: "ws-1/connection/doomed".into(),
        master_key_id: master.id().into(),
        nonce: vec![0; 12],
        wrapped: wrapped.clone(),
    };
    assert!(!v2.store().put(&reuse).await.expect("put"));
    assert_eq!(place.count("data_keys", "id", &doomed).await, 0);

    // SQLite: secure_delete + WAL truncation leave no copy of the wrapped key on disk.
    if let Place::Sqlite(dir) = &place {
        drop(v);
        drop(v2);
        assert!(
            !on_disk(dir.path(), &wrapped),
            "wrapped key still on disk after the shred"
        );
    }
}

async fn rotation_rewraps_everything_under_the_new_master(place: Place) {
    let old = mk();
    let new = mk();
    let v = vault(&old, &[], &place).await;
    let mut sealed = Vec::new();
    for i in 0..5 {
        let id = v
            .create_data_key(&format!("ws-1/connection/c{i}"))
            .await
            .expect("data key")
            .id()
            .to_string();
        let aad = resource_aad("ws-1", "connection", &format!("c{i}"), "api_key");
        let s = v
            .seal(&id, format!("secret-{i}").as_bytes(), &aad)
            .await
            .expect("seal");
        sealed.push((s, aad, format!("secret-{i}").into_bytes()));
    }
    let shredded = v
        .create_data_key("ws-1/connection/gone")
        .await
        .expect("data key")
        .id()
        .to_string();
    v.shred(&shredded).await.expect("shred");
    let fp = v.fingerprint(b"secret-0");
    assert_eq!(
        place.count("data_keys", "master_key_id", old.id()).await,
        6,
        "5 data keys + fingerprint key"
    );

    // An instance that already accepts the new key (step 1 of a multi-instance rotation).
    let lagging = vault(&old, std::slice::from_ref(&new), &place).await;

    assert_eq!(v.rotate_master(new.clone()).await.expect("rotate"), 6);
    assert_eq!(v.current_master_id(), new.id());
    assert_eq!(place.count("data_keys", "master_key_id", new.id()).await, 6);
    assert_eq!(place.count("data_keys", "master_key_id", old.id()).await, 0);
    assert_eq!(
        v.rotate_master(new.clone()).await.expect("rotate again"),
        0,
        "idempotent"
    );

    // The lagging instance still wraps with the old key, and both can open everything.
    let late = lagging
        .create_data_key("ws-1/connection/late")
        .await
        .expect("data key")
        .id()
        .to_string();
    let late_aad = resource_aad("ws-1", "connection", "late", "api_key");
    let late_sealed = lagging
        .seal(&late, b"late-secret", &late_aad)
        .await
        .expect("seal");
    assert_eq!(
        open_text(&v, &late_sealed, &late_aad).await.expect("open"),
        b"late-secret"
    );
    for (s, aad, plain) in &sealed {
        assert_eq!(
            &open_text(&lagging, s, aad).await.expect("lagging opens"),
            plain
        );
    }
    // The old key cannot be retired while it still wraps a key; a re-run catches it.
    assert!(matches!(
        v.retire_master(old.id()).await,
        Err(CryptoError::Invalid { .. })
    ));
    assert!(
        matches!(
            v.retire_master(new.id()).await,
            Err(CryptoError::Invalid { .. })
        ),
        "current"
    );
    assert_eq!(v.rotate_master(new.clone()).await.expect("rotate again"), 1);
    v.retire_master(old.id()).await.expect("retire");
    assert_eq!(v.master_ids(), vec![new.id().to_string()]);

    // A vault holding only the new master opens everything sealed before the rotation,
    // and fingerprints are unchanged.
    let only_new = vault(&new, &[], &place).await;
    for (s, aad, plain) in &sealed {
        assert_eq!(&open_text(&only_new, s, aad).await.expect("open"), plain);
    }
    assert_eq!(
        open_text(&only_new, &late_sealed, &late_aad)
            .await
            .expect("open"),
        b"late-secret"
    );
    assert_eq!(only_new.fingerprint(b"secret-0"), fp);
    assert_eq!(v.fingerprint(b"secret-0"), fp);
    // The shredded key stayed shredded; the old master alone is now useless.
    assert_eq!(place.count("data_keys", "id", &shredded).await, 0);
    assert!(matches!(
        Vault::load(old.clone(), Vec::new(), place.store().await).await,
        Err(CryptoError::UnknownMaster { .. })
    ));
}

async fn master_key_file_rotation_end_to_end(place: Place) {
    use std::os::unix::fs::PermissionsExt;
    let keys = tempfile::tempdir().expect("tempdir");
    let dir = keys.path().join("keys");

    let first = master_keys_from(None, None, &dir, true).expect("generated on first run");
    let mode = std::fs::metadata(dir.join(MASTER_KEY_FILE))
        .expect("master.key")
        .permissions()
        .mode();
    assert_eq!(mode & 0o777, 0o600);
    let reloaded = master_keys_from(None, None, &dir, false).expect("reload");
    assert_eq!(reloaded.current.id(), first.current.id());

    let v = Vault::load(first.current.clone(), first.accepted, place.store().await)
        .await
        .expect("vault");
    let id = v
        .create_data_key("ws-1/auth_config/a1")
        .await
        .expect("data key")
        .id()
        .to_string();
    let aad = resource_aad("ws-1", "auth_config", "a1", "client_secret");
    let sealed = v.seal(&id, b"client-secret", &aad).await.expect("seal");

    // Stage, rotate, promote; a restart mid-rotation holds both keys.
    let next = stage_next_master(&dir).expect("stage");
    let mid = master_keys_from(None, None, &dir, false).expect("mid-rotation");
    assert_eq!(mid.current.id(), first.current.id());
    assert_eq!(mid.accepted.len(), 1);
    assert_eq!(v.rotate_master(next.clone()).await.expect("rotate"), 2);
    promote_next_master(&dir).expect("promote");
    v.retire_master(first.current.id()).await.expect("retire");

    let after = master_keys_from(None, None, &dir, false).expect("after");
    assert_eq!(after.current.id(), next.id());
    assert!(after.accepted.is_empty());
    let mode = std::fs::metadata(dir.join(MASTER_KEY_FILE))
        .expect("master.key")
        .permissions()
        .mode();
    assert_eq!(mode & 0o777, 0o600);
    let file_text = std::fs::read_to_string(dir.join(MASTER_KEY_FILE)).expect("read");
    assert!(
        !format!("{after:?}").contains(file_text.trim()),
        "Debug shows ids only"
    );
    let restarted = Vault::load(after.current, after.accepted, place.store().await)
        .await
        .expect("vault");
    assert_eq!(
        open_text(&restarted, &sealed, &aad).await.expect("open"),
        b"client-secret"
    );
}
