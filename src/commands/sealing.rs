//! Sealing and opening a resource's secrets: AES-256-GCM-SIV under the resource's own data
//! key, bound (AAD) to workspace, resource and field, plus an HMAC fingerprint for events.

use secrecy::{ExposeSecret, SecretSlice};

use super::CommandError;
use crate::app::AppState;
use crate::crypto::{resource_aad, Sealed, SealingKey};
use crate::domain::auth_config::SealedSecret;

/// Which secret of which resource: the AAD every seal and open must agree on.
#[derive(Debug, Clone, Copy)]
pub struct SecretSlot<'a> {
    pub workspace_id: &'a str,
    pub resource_type: &'a str,
    pub resource_id: &'a str,
    pub field: &'a str,
}

impl SecretSlot<'_> {
    fn aad(&self) -> Vec<u8> {
        resource_aad(
            self.workspace_id,
            self.resource_type,
            self.resource_id,
            self.field,
        )
    }
}

pub async fn seal(
    state: &AppState,
    slot: SecretSlot<'_>,
    key: impl Into<SealingKey<'_>>,
    plaintext: &[u8],
) -> Result<SealedSecret, CommandError> {
    let sealed = state.vault.seal(key, plaintext, &slot.aad()).await?;
    Ok(SealedSecret {
        data_key_id: sealed.data_key_id,
        nonce: sealed.nonce,
        ciphertext: sealed.ciphertext,
        fingerprint: state.vault.fingerprint(plaintext),
    })
}

pub async fn open(
    state: &AppState,
    slot: SecretSlot<'_>,
    sealed: &SealedSecret,
) -> Result<SecretSlice<u8>, CommandError> {
    let s = Sealed {
        data_key_id: sealed.data_key_id.clone(),
        nonce: sealed.nonce.clone(),
        ciphertext: sealed.ciphertext.clone(),
    };
    Ok(state.vault.open(&s, &slot.aad()).await?)
}

/// Opens a secret that is UTF-8 text (tokens, client secrets).
pub async fn open_text(
    state: &AppState,
    slot: SecretSlot<'_>,
    sealed: &SealedSecret,
) -> Result<secrecy::SecretString, CommandError> {
    let bytes = open(state, slot, sealed).await?;
    let text = String::from_utf8(bytes.expose_secret().to_vec()).map_err(|_| {
        CommandError::Crypto(crate::crypto::CryptoError::invalid(
            slot.field,
            "sealed value is not text",
        ))
    })?;
    Ok(text.into())
}

/// Destroys the data key made for a create that was then refused: nothing references it.
/// A failure is logged, not returned: the refusal is what the caller must see.
pub async fn shred_unused(state: &AppState, data_key_id: &str, resource_type: &str) {
    if let Err(e) = state.vault.shred(data_key_id).await {
        tracing::warn!(error = %e, resource_type, "could not destroy the data key of a refused create");
    }
}
