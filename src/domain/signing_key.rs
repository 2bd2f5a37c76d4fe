//! The signing key ring of the whole ledger (workspace `system`, aggregate
//! `signing_key/ring`). A rotation is signed by the outgoing key, so a verifier holding
//! only the first public key can follow every rotation.

use serde::{Deserialize, Serialize};

use super::{Aggregate, DomainError, Event};

pub const RING_ID: &str = "ring";

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct SigningKeyRotated {
    pub previous_key_id: String,
    pub new_key_id: String,
    /// base64 of the new 32-byte ed25519 public key.
    pub new_public_key: String,
}

#[derive(Debug, Default, Clone)]
pub struct SigningKeyRing {
    /// The key the last rotation made active (None before any rotation).
    pub active: Option<String>,
}

pub struct Rotate(pub SigningKeyRotated);

impl Aggregate for SigningKeyRing {
    const TYPE: &'static str = "signing_key";
    type Command = Rotate;

    fn apply(&mut self, event: &Event) {
        if let Event::SigningKeyRotated(e) = event {
            self.active = Some(e.new_key_id.clone());
        }
    }

    fn decide(&self, Rotate(r): &Rotate) -> Result<Event, DomainError> {
        if let Some(active) = &self.active {
            if *active != r.previous_key_id {
                return Err(DomainError::Rejected(format!(
                    "the ring's active key is {active}, not {}",
                    r.previous_key_id
                )));
            }
        }
        if r.previous_key_id == r.new_key_id {
            return Err(DomainError::Rejected(
                "the new key is the current key".into(),
            ));
        }
        Ok(Event::SigningKeyRotated(r.clone()))
    }
}
