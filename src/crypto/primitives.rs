//! The pure part: keys, AES-256-GCM-SIV seal/open and wrap/unwrap, AAD framing,
//! fingerprints. No I/O except the OS random number generator.

use aes_gcm_siv::aead::{AeadInPlace, KeyInit};
use aes_gcm_siv::Aes256GcmSiv;
use base64::engine::general_purpose::STANDARD as B64;
use base64::Engine as _;
use hmac::{Hmac, Mac};
use rand::RngCore as _;
use secrecy::SecretSlice;
use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};
use zeroize::Zeroizing;

use super::CryptoError;

pub(crate) const KEY_LEN: usize = 32;
pub(crate) const NONCE_LEN: usize = 12;

const SEAL_LABEL: &[u8] = b"authledger.seal.v1";
const WRAP_LABEL: &[u8] = b"authledger.data-key.v1";
const AAD_LABEL: &[u8] = b"authledger.aad.v1";
const MASTER_ID_LABEL: &[u8] = b"authledger.master-key-id.v1";

/// Fills a fresh array from the OS random number generator.
pub(crate) fn random<const N: usize>() -> Result<Zeroizing<[u8; N]>, CryptoError> {
    let mut out = Zeroizing::new([0u8; N]);
    rand::rngs::OsRng
        .try_fill_bytes(out.as_mut_slice())
        .map_err(|_| CryptoError::Entropy)?;
    Ok(out)
}

/// Length-prefixed concatenation (u64 big-endian length, then bytes): unambiguous for
/// any parts, like DSSE's PAE.
pub(crate) fn frame(parts: &[&[u8]]) -> Vec<u8> {
    let mut out = Vec::with_capacity(parts.iter().map(|p| p.len() + 8).sum());
    for p in parts {
        out.extend_from_slice(&(p.len() as u64).to_be_bytes());
        out.extend_from_slice(p);
    }
    out
}

/// The recommended AAD of a sealed field: binds it to one workspace, resource and field.
pub fn resource_aad(
    workspace_id: &str,
    resource_type: &str,
    resource_id: &str,
    field: &str,
) -> Vec<u8> {
    frame(&[
        AAD_LABEL,
        workspace_id.as_bytes(),
        resource_type.as_bytes(),
        resource_id.as_bytes(),
        field.as_bytes(),
    ])
}

/// `hmac-sha256:<64 hex>` of `secret` under `fp_key`: lets auditors correlate secrets
/// (same token in two events) without seeing them.
pub fn fingerprint(fp_key: &[u8; 32], secret: &[u8]) -> String {
    // HMAC zero-pads keys shorter than its 64-byte block, so this equals HMAC(fp_key, ..)
    // and needs no fallible constructor.
    let mut block = Zeroizing::new([0u8; 64]);
    block[..KEY_LEN].copy_from_slice(fp_key);
    let mut mac = <Hmac<Sha256> as KeyInit>::new(&(*block).into());
    mac.update(secret);
    format!("hmac-sha256:{}", hex::encode(mac.finalize().into_bytes()))
}

/// A key-encryption key. `Debug` shows only its id.
#[derive(Clone)]
pub struct MasterKey {
    id: String,
    key: Zeroizing<[u8; KEY_LEN]>,
}

impl std::fmt::Debug for MasterKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("MasterKey")
            .field("id", &self.id)
            .finish_non_exhaustive()
    }
}

impl MasterKey {
    /// `mk:<first 16 hex of sha256("authledger.master-key-id.v1" framed with the key)>`
    /// (domain-separated, so the id is not a plain hash of the key).
    pub fn from_bytes(key: Zeroizing<[u8; KEY_LEN]>) -> Self {
        let digest = Sha256::digest(Zeroizing::new(frame(&[MASTER_ID_LABEL, key.as_slice()])));
        let id = format!("mk:{}", &hex::encode(digest)[..16]);
        MasterKey { id, key }
    }

    pub fn generate() -> Result<Self, CryptoError> {
        Ok(MasterKey::from_bytes(random::<KEY_LEN>()?))
    }

    /// Parses base64 of 32 bytes (the `master.key` / `AUTHLEDGER_MASTER_KEY` form).
    /// Errors name `what`, never the value.
    pub fn from_base64(text: &str, what: &str) -> Result<Self, CryptoError> {
        let raw = Zeroizing::new(
            B64.decode(text.trim().as_bytes())
                .map_err(|_| CryptoError::invalid(what, "not base64"))?,
        );
        let bytes: [u8; KEY_LEN] = raw
            .as_slice()
            .try_into()
            .map_err(|_| CryptoError::invalid(what, "not base64 of 32 bytes"))?;
        Ok(MasterKey::from_bytes(Zeroizing::new(bytes)))
    }

    pub fn id(&self) -> &str {
        &self.id
    }

    pub(crate) fn to_base64(&self) -> Zeroizing<String> {
        Zeroizing::new(B64.encode(self.key.as_slice()))
    }

    /// Wraps a data key (AAD binds it to its id and owner, so rows cannot be swapped).
    pub(crate) fn wrap(
        &self,
        data_key: &DataKey,
        owner: &str,
    ) -> Result<(Vec<u8>, Vec<u8>), CryptoError> {
        let nonce = random::<NONCE_LEN>()?;
        let aad = frame(&[WRAP_LABEL, data_key.id.as_bytes(), owner.as_bytes()]);
        let mut buf = Zeroizing::new(Vec::with_capacity(KEY_LEN + 16));
        buf.extend_from_slice(data_key.key.as_slice());
        cipher(&self.key)
            .encrypt_in_place((&*nonce).into(), &aad, &mut *buf)
            .map_err(|_| CryptoError::invalid("data key", "cannot be wrapped"))?;
        Ok((nonce.to_vec(), buf.to_vec()))
    }

    /// Unwraps a data key wrapped by [`MasterKey::wrap`].
    pub(crate) fn unwrap_key(
        &self,
        id: &str,
        owner: &str,
        nonce: &[u8],
        wrapped: &[u8],
    ) -> Result<DataKey, CryptoError> {
        let nonce: [u8; NONCE_LEN] = nonce.try_into().map_err(|_| CryptoError::Tampered)?;
        let aad = frame(&[WRAP_LABEL, id.as_bytes(), owner.as_bytes()]);
        let mut buf = Zeroizing::new(wrapped.to_vec());
        cipher(&self.key)
            .decrypt_in_place((&nonce).into(), &aad, &mut *buf)
            .map_err(|_| CryptoError::Tampered)?;
        let key: [u8; KEY_LEN] = buf
            .as_slice()
            .try_into()
            .map_err(|_| CryptoError::Tampered)?;
        Ok(DataKey {
            id: id.to_string(),
            key: Zeroizing::new(key),
        })
    }
}

fn cipher(key: &[u8; KEY_LEN]) -> Aes256GcmSiv {
    Aes256GcmSiv::new(key.into())
}

/// An unwrapped data key (in memory only, zeroized on drop). `Debug` shows only its id.
pub(crate) struct DataKey {
    pub(crate) id: String,
    pub(crate) key: Zeroizing<[u8; KEY_LEN]>,
}

impl std::fmt::Debug for DataKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("DataKey")
            .field("id", &self.id)
            .finish_non_exhaustive()
    }
}

impl DataKey {
    pub(crate) fn generate(id: String) -> Result<Self, CryptoError> {
        Ok(DataKey {
            id,
            key: random::<KEY_LEN>()?,
        })
    }

    fn aad(&self, aad: &[u8]) -> Vec<u8> {
        frame(&[SEAL_LABEL, self.id.as_bytes(), aad])
    }

    /// Seals under a fresh random nonce (GCM-SIV also tolerates a repeated nonce: it then
    /// only reveals that two identical plaintexts were sealed).
    pub(crate) fn seal(&self, plaintext: &[u8], aad: &[u8]) -> Result<Sealed, CryptoError> {
        let nonce = random::<NONCE_LEN>()?;
        let mut buf = Zeroizing::new(Vec::with_capacity(plaintext.len() + 16));
        buf.extend_from_slice(plaintext);
        cipher(&self.key)
            .encrypt_in_place((&*nonce).into(), &self.aad(aad), &mut *buf)
            .map_err(|_| CryptoError::invalid("plaintext", "too long to seal"))?;
        Ok(Sealed {
            data_key_id: self.id.clone(),
            nonce: B64.encode(*nonce),
            ciphertext: B64.encode(&*buf),
        })
    }

    /// Opens a value sealed by [`DataKey::seal`]. Any malformed or altered part, another
    /// key or another AAD gives [`CryptoError::Tampered`].
    pub(crate) fn open(&self, sealed: &Sealed, aad: &[u8]) -> Result<SecretSlice<u8>, CryptoError> {
        if sealed.data_key_id != self.id {
            return Err(CryptoError::Tampered);
        }
        let nonce = B64
            .decode(sealed.nonce.as_bytes())
            .map_err(|_| CryptoError::Tampered)?;
        let nonce: [u8; NONCE_LEN] = nonce
            .as_slice()
            .try_into()
            .map_err(|_| CryptoError::Tampered)?;
        let mut buf = Zeroizing::new(
            B64.decode(sealed.ciphertext.as_bytes())
                .map_err(|_| CryptoError::Tampered)?,
        );
        cipher(&self.key)
            .decrypt_in_place((&nonce).into(), &self.aad(aad), &mut *buf)
            .map_err(|_| CryptoError::Tampered)?;
        // Copy into an exact-size box: converting the Vec would reallocate and leave an
        // un-zeroized copy behind; `buf` (whole capacity) is zeroized on drop.
        let exact: Box<[u8]> = buf.as_slice().into();
        Ok(SecretSlice::from(exact))
    }
}

/// A sealed secret as it appears in event payloads: no plaintext, no key material.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Sealed {
    pub data_key_id: String,
    /// base64 (standard, padded) of the 12-byte nonce.
    pub nonce: String,
    /// base64 (standard, padded) of ciphertext || 16-byte tag.
    pub ciphertext: String,
}

#[cfg(test)]
#[allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]
mod tests {
    use secrecy::ExposeSecret;

    use super::*;

    fn key(id: &str) -> DataKey {
        DataKey::generate(id.to_string()).expect("data key")
    }

    fn flip_b64(text: &str, index: usize) -> String {
        let mut raw = B64.decode(text).expect("base64");
        raw[index] ^= 0x01;
        B64.encode(raw)
    }

    #[test]
    fn round_trip() {
        let k = key("dk:1");
        for plaintext in [
            &b""[..],
            b"x",
            b"ya29.a0AfH6SMB-access-token",
            &[0u8; 4096][..],
        ] {
            let sealed = k.seal(plaintext, b"aad").expect("seal");
            assert_eq!(sealed.data_key_id, "dk:1");
            assert_eq!(
                k.open(&sealed, b"aad").expect("open").expose_secret(),
                plaintext
            );
        }
    }

    #[test]
    fn every_flipped_ciphertext_or_nonce_byte_is_tampered() {
        let k = key("dk:1");
        let sealed = k.seal(b"refresh-token-value", b"aad").expect("seal");
        let ct_len = B64.decode(&sealed.ciphertext).expect("b64").len();
        assert_eq!(ct_len, b"refresh-token-value".len() + 16);
        for i in 0..ct_len {
            let bad = Sealed {
                ciphertext: flip_b64(&sealed.ciphertext, i),
                ..sealed.clone()
            };
            assert!(
                matches!(k.open(&bad, b"aad"), Err(CryptoError::Tampered)),
                "ciphertext byte {i}"
            );
        }
        for i in 0..NONCE_LEN {
            let bad = Sealed {
                nonce: flip_b64(&sealed.nonce, i),
                ..sealed.clone()
            };
            assert!(
                matches!(k.open(&bad, b"aad"), Err(CryptoError::Tampered)),
                "nonce byte {i}"
            );
        }
        // Malformed parts are tampering too, not a panic.
        for bad in [
            Sealed {
                nonce: "!!".into(),
                ..sealed.clone()
            },
            Sealed {
                nonce: B64.encode([0u8; 11]),
                ..sealed.clone()
            },
            Sealed {
                ciphertext: B64.encode([0u8; 3]),
                ..sealed.clone()
            },
            Sealed {
                ciphertext: String::new(),
                ..sealed.clone()
            },
            Sealed {
                data_key_id: "dk:2".into(),
                ..sealed.clone()
            },
        ] {
            assert!(matches!(k.open(&bad, b"aad"), Err(CryptoError::Tampered)));
        }
        assert!(k.open(&sealed, b"aad").is_ok());
    }

    #[test]
    fn wrong_aad_or_wrong_key_fails() {
        let k = key("dk:1");
        let aad = resource_aad("ws1", "connection", "c1", "access_token");
        let sealed = k.seal(b"secret", &aad).expect("seal");
        for other in [
            resource_aad("ws2", "connection", "c1", "access_token"),
            resource_aad("ws1", "connection", "c2", "access_token"),
            resource_aad("ws1", "connection", "c1", "refresh_token"),
            resource_aad("ws1", "auth_config", "c1", "access_token"),
            Vec::new(),
        ] {
            assert!(matches!(
                k.open(&sealed, &other),
                Err(CryptoError::Tampered)
            ));
        }
        // Same id, different key material.
        let impostor = key("dk:1");
        assert!(matches!(
            impostor.open(&sealed, &aad),
            Err(CryptoError::Tampered)
        ));
    }

    #[test]
    fn aad_framing_is_unambiguous() {
        assert_ne!(
            resource_aad("a", "bc", "d", "e"),
            resource_aad("ab", "c", "d", "e")
        );
        assert_ne!(
            resource_aad("a", "", "d", "e"),
            resource_aad("", "a", "d", "e")
        );
    }

    #[test]
    fn every_seal_uses_a_distinct_nonce() {
        let k = key("dk:1");
        let sealed: Vec<Sealed> = (0..200)
            .map(|_| k.seal(b"same", b"aad").expect("seal"))
            .collect();
        let nonces: std::collections::BTreeSet<&str> =
            sealed.iter().map(|s| s.nonce.as_str()).collect();
        assert_eq!(nonces.len(), sealed.len());
        let cts: std::collections::BTreeSet<&str> =
            sealed.iter().map(|s| s.ciphertext.as_str()).collect();
        assert_eq!(
            cts.len(),
            sealed.len(),
            "same plaintext, different ciphertexts"
        );
    }

    #[test]
    fn wrap_round_trip_binds_id_and_owner() {
        let mk = MasterKey::generate().expect("master");
        let dk = key("dk:1");
        let (nonce, wrapped) = mk.wrap(&dk, "ws1/connection/c1").expect("wrap");
        assert!(!wrapped.windows(KEY_LEN).any(|w| w == dk.key.as_slice()));
        let back = mk
            .unwrap_key("dk:1", "ws1/connection/c1", &nonce, &wrapped)
            .expect("unwrap");
        assert_eq!(*back.key, *dk.key);
        assert!(matches!(
            mk.unwrap_key("dk:2", "ws1/connection/c1", &nonce, &wrapped),
            Err(CryptoError::Tampered)
        ));
        assert!(matches!(
            mk.unwrap_key("dk:1", "ws1/connection/c2", &nonce, &wrapped),
            Err(CryptoError::Tampered)
        ));
        let other = MasterKey::generate().expect("master");
        assert!(matches!(
            other.unwrap_key("dk:1", "ws1/connection/c1", &nonce, &wrapped),
            Err(CryptoError::Tampered)
        ));
        let mut bad = wrapped.clone();
        bad[0] ^= 1;
        assert!(matches!(
            mk.unwrap_key("dk:1", "ws1/connection/c1", &nonce, &bad),
            Err(CryptoError::Tampered)
        ));
    }

    #[test]
    fn debug_never_prints_key_material() {
        let mk = MasterKey::generate().expect("master");
        let shown = format!("{mk:?} {mk:#?}");
        assert!(shown.contains(mk.id()));
        assert!(!shown.contains(mk.to_base64().as_str()));
        assert!(!shown.contains(&hex::encode(mk.key.as_slice())));
        assert!(!shown.contains(&format!("{:?}", mk.key.as_slice())));

        let dk = key("dk:debug");
        let shown = format!("{dk:?} {dk:#?}");
        assert!(shown.contains("dk:debug"));
        assert!(!shown.contains(&hex::encode(dk.key.as_slice())));
        assert!(!shown.contains(&format!("{:?}", dk.key.as_slice())));

        let opened = dk
            .open(&dk.seal(b"hunter2-secret", b"").expect("seal"), b"")
            .expect("open");
        let shown = format!("{opened:?}");
        assert!(!shown.contains("hunter2"));
        assert!(!shown.contains(&format!("{:?}", b"hunter2-secret")));
    }

    #[test]
    fn master_key_ids_are_stable_and_parsing_never_echoes_the_value() {
        let mk = MasterKey::from_bytes(Zeroizing::new([9u8; 32]));
        let again = MasterKey::from_base64(&B64.encode([9u8; 32]), "test").expect("parse");
        assert_eq!(mk.id(), again.id());
        assert!(mk.id().starts_with("mk:") && mk.id().len() == 3 + 16);
        assert_ne!(
            mk.id(),
            MasterKey::from_bytes(Zeroizing::new([8u8; 32])).id()
        );
        assert_ne!(
            &mk.id()[3..],
            &hex::encode(Sha256::digest([9u8; 32]))[..16],
            "domain-separated"
        );
        let short = B64.encode([7u8; 31]);
        let err = MasterKey::from_base64(&short, "AUTHLEDGER_MASTER_KEY")
            .expect_err("31 bytes")
            .to_string();
        assert!(err.contains("AUTHLEDGER_MASTER_KEY") && !err.contains(&short));
        let err = MasterKey::from_base64("not base64 at all!", "x")
            .expect_err("garbage")
            .to_string();
        assert!(!err.contains("not base64 at all!"));
    }

    #[test]
    fn fingerprint_is_stable_and_keyed() {
        let k1 = [1u8; 32];
        let k2 = [2u8; 32];
        let a = fingerprint(&k1, b"token-a");
        assert_eq!(a, fingerprint(&k1, b"token-a"));
        assert!(a.starts_with("hmac-sha256:") && a.len() == "hmac-sha256:".len() + 64);
        assert_ne!(a, fingerprint(&k1, b"token-b"));
        assert_ne!(a, fingerprint(&k2, b"token-a"), "keyed");
        assert_ne!(
            &a["hmac-sha256:".len()..],
            hex::encode(Sha256::digest(b"token-a")),
            "not a plain hash"
        );
        // Equals standard HMAC-SHA256 with the 32-byte key (the zero-padding shortcut).
        let mut mac = <Hmac<Sha256> as Mac>::new_from_slice(&k1).expect("hmac");
        mac.update(b"token-a");
        assert_eq!(
            a,
            format!("hmac-sha256:{}", hex::encode(mac.finalize().into_bytes()))
        );
        // RFC 4231 test case 2 (key "Jefe"): checks the construction against a known vector.
        let mut jefe = [0u8; 32];
        jefe[..4].copy_from_slice(b"Jefe");
        assert_eq!(
            fingerprint(&jefe, b"what do ya want for nothing?"),
            "hmac-sha256:5bdcc146bf60754e6a042426089575c75a003f089d2739839dec58b964ec3843"
        );
    }
}
