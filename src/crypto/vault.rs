//! The vault: seals and opens secrets under per-resource data keys, shreds them, rotates
//! the master key, and computes fingerprints.

use std::collections::BTreeMap;
use std::sync::{Arc, RwLock};

use secrecy::SecretSlice;
use zeroize::Zeroizing;

use super::primitives::{fingerprint, DataKey, MasterKey, Sealed, KEY_LEN};
use super::store::{DataKeyStore, DestroyOutcome, Stored, WrappedKey};
use super::CryptoError;

/// The reserved store id of the fingerprint key (see the module doc).
pub const FINGERPRINT_KEY_ID: &str = "fp:v1";
const FINGERPRINT_KEY_OWNER: &str = "authledger/fingerprint";
/// Rows re-wrapped per page during a rotation.
const ROTATION_PAGE: u32 = 256;
const MAX_OWNER_LEN: usize = 512;

/// A data key just created and stored (zeroized on drop; `Debug` shows its id only). Its
/// creator seals with it right away: no event names its id yet, so nothing can have
/// shredded it meanwhile.
#[derive(Debug)]
pub struct NewDataKey(DataKey);

impl NewDataKey {
    pub fn id(&self) -> &str {
        &self.0.id
    }
}

/// The data key a seal uses: one in hand from [`Vault::create_data_key`], or a stored one
/// by id (read from the store, unwrapped).
#[derive(Debug, Clone, Copy)]
pub enum SealingKey<'a> {
    New(&'a NewDataKey),
    Stored(&'a str),
}

impl<'a> From<&'a NewDataKey> for SealingKey<'a> {
    fn from(key: &'a NewDataKey) -> Self {
        SealingKey::New(key)
    }
}

impl<'a> From<&'a str> for SealingKey<'a> {
    fn from(id: &'a str) -> Self {
        SealingKey::Stored(id)
    }
}

impl<'a> From<&'a String> for SealingKey<'a> {
    fn from(id: &'a String) -> Self {
        SealingKey::Stored(id)
    }
}

struct MasterRing {
    current: String,
    keys: BTreeMap<String, MasterKey>,
}

/// Seals secrets; one per service, shared (`Arc`). `Debug` shows master ids and the store.
pub struct Vault {
    masters: RwLock<MasterRing>,
    store: Arc<dyn DataKeyStore>,
    fingerprint_key: Zeroizing<[u8; KEY_LEN]>,
}

impl std::fmt::Debug for Vault {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Vault")
            .field("current_master", &self.current_master_id())
            .field("masters", &self.master_ids())
            .field("store", &self.store.describe())
            .finish_non_exhaustive()
    }
}

impl Vault {
    /// A vault over `store` whose new data keys are wrapped by `current`; `accepted` keys
    /// only unwrap. Loads the fingerprint key, creating it on first use.
    pub async fn load(
        current: MasterKey,
        accepted: Vec<MasterKey>,
        store: Arc<dyn DataKeyStore>,
    ) -> Result<Vault, CryptoError> {
        let current_id = current.id().to_string();
        let mut keys: BTreeMap<String, MasterKey> = accepted
            .into_iter()
            .map(|k| (k.id().to_string(), k))
            .collect();
        keys.insert(current_id.clone(), current);
        let masters = RwLock::new(MasterRing {
            current: current_id,
            keys,
        });
        let mut vault = Vault {
            masters,
            store,
            fingerprint_key: Zeroizing::new([0u8; KEY_LEN]),
        };
        vault.fingerprint_key = vault.load_fingerprint_key().await?;
        Ok(vault)
    }

    /// [`Vault::load`] with keys from [`super::load_master_keys`].
    pub async fn with_keys(
        keys: super::MasterKeys,
        store: Arc<dyn DataKeyStore>,
    ) -> Result<Vault, CryptoError> {
        Vault::load(keys.current, keys.accepted, store).await
    }

    async fn load_fingerprint_key(&self) -> Result<Zeroizing<[u8; KEY_LEN]>, CryptoError> {
        if let Stored::Unknown = self.store.get(FINGERPRINT_KEY_ID).await? {
            let fresh = DataKey::generate(FINGERPRINT_KEY_ID.to_string())?;
            let wrapped = self.wrap_current(&fresh, FINGERPRINT_KEY_OWNER)?;
            if self.store.put(&wrapped).await? {
                return Ok(fresh.key);
            }
            // Another instance created it first: use theirs.
        }
        Ok(self.data_key(FINGERPRINT_KEY_ID).await?.key)
    }

    pub fn store(&self) -> &Arc<dyn DataKeyStore> {
        &self.store
    }

    fn ring(&self) -> std::sync::RwLockReadGuard<'_, MasterRing> {
        // The ring is never left half-updated, so a poisoned lock is still consistent.
        self.masters
            .read()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
    }

    fn ring_mut(&self) -> std::sync::RwLockWriteGuard<'_, MasterRing> {
        self.masters
            .write()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
    }

    /// The id of the master key that wraps new data keys.
    pub fn current_master_id(&self) -> String {
        self.ring().current.clone()
    }

    /// Ids of every master key held (current and accepted).
    pub fn master_ids(&self) -> Vec<String> {
        self.ring().keys.keys().cloned().collect()
    }

    /// Adds an unwrap-only master key (first step of a multi-instance rotation).
    pub fn accept_master(&self, key: MasterKey) {
        self.ring_mut()
            .keys
            .entry(key.id().to_string())
            .or_insert(key);
    }

    fn wrap_current(&self, key: &DataKey, owner: &str) -> Result<WrappedKey, CryptoError> {
        let ring = self.ring();
        let master = ring.keys.get(&ring.current).ok_or_else(|| {
            CryptoError::invalid("master key ring", "the current master key is missing")
        })?;
        wrap_with(master, key, owner)
    }

    fn unwrap(&self, w: &WrappedKey) -> Result<DataKey, CryptoError> {
        let ring = self.ring();
        let master = ring
            .keys
            .get(&w.master_key_id)
            .ok_or_else(|| CryptoError::UnknownMaster {
                data_key_id: w.id.clone(),
                master_key_id: w.master_key_id.clone(),
            })?;
        master.unwrap_key(&w.id, &w.owner, &w.nonce, &w.wrapped)
    }

    async fn data_key(&self, id: &str) -> Result<DataKey, CryptoError> {
        match self.store.get(id).await? {
            Stored::Live(w) => self.unwrap(&w),
            Stored::Shredded => Err(CryptoError::Shredded(id.to_string())),
            Stored::Unknown => Err(CryptoError::UnknownKey(id.to_string())),
        }
    }

    /// A data key that may seal and open (the fingerprint key may not).
    async fn sealing_key(&self, id: &str) -> Result<DataKey, CryptoError> {
        if id == FINGERPRINT_KEY_ID {
            return Err(CryptoError::invalid(
                "data key id",
                "reserved for the fingerprint key",
            ));
        }
        self.data_key(id).await
    }

    /// Creates a data key for one resource (`owner`, e.g. `<workspace>/connection/<id>`;
    /// bound into the wrapping), durably, and hands it over to seal the resource's first
    /// secrets with (its id: `dk:<uuid v7>`) without reading it back from the store.
    pub async fn create_data_key(&self, owner: &str) -> Result<NewDataKey, CryptoError> {
        if owner.is_empty() || owner.len() > MAX_OWNER_LEN || owner.chars().any(char::is_control) {
            return Err(CryptoError::invalid(
                "data key owner",
                format!("must be 1 to {MAX_OWNER_LEN} bytes without control characters"),
            ));
        }
        let key = DataKey::generate(format!("dk:{}", uuid::Uuid::now_v7().simple()))?;
        let wrapped = self.wrap_current(&key, owner)?;
        if !self.store.put(&wrapped).await? {
            return Err(CryptoError::Store(format!(
                "data key id {} already taken",
                key.id
            )));
        }
        Ok(NewDataKey(key))
    }

    /// Seals `plaintext` under the data key (one just created, or one stored, by id); `aad`
    /// (see [`super::resource_aad`]) must be given again to open it.
    pub async fn seal(
        &self,
        key: impl Into<SealingKey<'_>>,
        plaintext: &[u8],
        aad: &[u8],
    ) -> Result<Sealed, CryptoError> {
        match key.into() {
            SealingKey::New(new) => new.0.seal(plaintext, aad),
            SealingKey::Stored(id) => self.sealing_key(id).await?.seal(plaintext, aad),
        }
    }

    /// Opens a sealed value. Errors: `Shredded`, `UnknownKey`, `UnknownMaster`, `Tampered`.
    pub async fn open(&self, sealed: &Sealed, aad: &[u8]) -> Result<SecretSlice<u8>, CryptoError> {
        self.sealing_key(&sealed.data_key_id)
            .await?
            .open(sealed, aad)
    }

    /// Destroys the data key: everything sealed under it becomes unrecoverable. Idempotent
    /// (shredding a shredded key succeeds); an id never created is `UnknownKey`.
    pub async fn shred(&self, data_key_id: &str) -> Result<(), CryptoError> {
        if data_key_id == FINGERPRINT_KEY_ID {
            return Err(CryptoError::invalid(
                "data key id",
                "the fingerprint key cannot be shredded",
            ));
        }
        match self.store.destroy(data_key_id).await? {
            DestroyOutcome::Destroyed | DestroyOutcome::AlreadyShredded => Ok(()),
            DestroyOutcome::Unknown => Err(CryptoError::UnknownKey(data_key_id.to_string())),
        }
    }

    /// Makes `new` the current master key (the previous ones stay accepted) and re-wraps
    /// every data key (and the fingerprint key) not yet wrapped by it. Service continues
    /// meanwhile: any key held opens rows wrapped either way. Idempotent; returns how many
    /// rows this call re-wrapped. Fails (after partial, consistent progress) if a row is
    /// wrapped by a master key this vault does not hold.
    pub async fn rotate_master(&self, new: MasterKey) -> Result<usize, CryptoError> {
        let new_id = new.id().to_string();
        {
            let mut ring = self.ring_mut();
            ring.keys.insert(new_id.clone(), new.clone());
            ring.current = new_id.clone();
        }
        let mut after = String::new();
        let mut rewrapped = 0usize;
        loop {
            let page = self
                .store
                .not_wrapped_by(&new_id, &after, ROTATION_PAGE)
                .await?;
            let Some(last) = page.last() else { break };
            after = last.id.clone();
            for w in &page {
                let key = self.unwrap(w)?;
                let replacement = wrap_with(&new, &key, &w.owner)?;
                if self
                    .store
                    .replace_wrapped(&w.master_key_id, &replacement)
                    .await?
                {
                    rewrapped += 1;
                }
            }
        }
        Ok(rewrapped)
    }

    /// Drops an accepted master key from this vault once no data key is wrapped by it.
    pub async fn retire_master(&self, master_key_id: &str) -> Result<(), CryptoError> {
        if master_key_id == self.current_master_id() {
            return Err(CryptoError::invalid(
                master_key_id,
                "is the current master key",
            ));
        }
        let still = self.store.count_wrapped_by(master_key_id).await?;
        if still > 0 {
            return Err(CryptoError::invalid(
                master_key_id,
                format!("still wraps {still} data key(s); run rotate_master first"),
            ));
        }
        self.ring_mut().keys.remove(master_key_id);
        Ok(())
    }

    /// `hmac-sha256:<hex>` under the fingerprint key (stable across master rotations).
    pub fn fingerprint(&self, secret: &[u8]) -> String {
        fingerprint(&self.fingerprint_key, secret)
    }
}

fn wrap_with(master: &MasterKey, key: &DataKey, owner: &str) -> Result<WrappedKey, CryptoError> {
    let (nonce, wrapped) = master.wrap(key, owner)?;
    Ok(WrappedKey {
        id: key.id.clone(),
        owner: owner.to_string(),
        master_key_id: master.id().to_string(),
        nonce,
        wrapped,
    })
}
