//! API keys: who calls, with which role. The key itself is shown once at creation; the
//! ledger keeps only its SHA-256 (the key has 256 bits of entropy, so the hash cannot be
//! reversed by search).

use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use base64::Engine as _;
use rand::RngCore;
use secrecy::{ExposeSecret, SecretString};
use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};

use super::{check_name, Aggregate, DomainError, Event};

/// The visible prefix of every API key.
pub const KEY_PREFIX: &str = "alk_";

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Role {
    Admin,
    Developer,
    Viewer,
    Auditor,
    Agent,
}

impl Role {
    /// The name used in events, projections and the API (its serde form).
    pub fn as_str(self) -> &'static str {
        match self {
            Role::Admin => "admin",
            Role::Developer => "developer",
            Role::Viewer => "viewer",
            Role::Auditor => "auditor",
            Role::Agent => "agent",
        }
    }

    pub fn parse(name: &str) -> Option<Role> {
        serde_json::from_value(serde_json::Value::String(name.to_string())).ok()
    }
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ApiKeyCreated {
    pub name: String,
    pub role: Role,
    /// First characters of the key, to recognise it in listings.
    pub key_prefix: String,
    /// `sha256:<hex>` of the full key.
    pub key_hash: String,
    #[serde(with = "time::serde::rfc3339::option", default)]
    pub expires_at: Option<time::OffsetDateTime>,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ApiKeyRevoked {
    pub reason: Option<String>,
}

/// A freshly generated key: the secret (shown once) and what the ledger stores.
pub struct NewApiKey {
    pub secret: SecretString,
    pub key_prefix: String,
    pub key_hash: String,
}

impl NewApiKey {
    pub fn generate(rng: &mut impl RngCore) -> Self {
        let mut raw = zeroize::Zeroizing::new([0u8; 32]);
        rng.fill_bytes(raw.as_mut());
        let secret = format!("{KEY_PREFIX}{}", URL_SAFE_NO_PAD.encode(raw.as_ref()));
        let key_prefix = secret.chars().take(KEY_PREFIX.len() + 8).collect();
        let key_hash = hash_key(&secret);
        NewApiKey {
            secret: SecretString::from(secret),
            key_prefix,
            key_hash,
        }
    }

    pub fn expose(&self) -> &str {
        self.secret.expose_secret()
    }
}

pub fn hash_key(secret: &str) -> String {
    format!("sha256:{}", hex::encode(Sha256::digest(secret.as_bytes())))
}

#[derive(Debug, Default, Clone)]
pub struct ApiKey {
    pub created: Option<ApiKeyCreated>,
    pub revoked: bool,
}

pub enum ApiKeyCommand {
    Create(ApiKeyCreated),
    Revoke { reason: Option<String> },
}

impl Aggregate for ApiKey {
    const TYPE: &'static str = "api_key";
    type Command = ApiKeyCommand;

    fn apply(&mut self, event: &Event) {
        match event {
            Event::ApiKeyCreated(e) => self.created = Some(e.clone()),
            Event::ApiKeyRevoked(_) => self.revoked = true,
            _ => {}
        }
    }

    fn decide(&self, command: &ApiKeyCommand) -> Result<Event, DomainError> {
        match command {
            ApiKeyCommand::Create(c) => {
                if self.created.is_some() {
                    return Err(DomainError::AlreadyExists("api key"));
                }
                check_name("name", &c.name, 100)?;
                if !c.key_hash.starts_with("sha256:") || c.key_hash.len() != 71 {
                    return Err(DomainError::Invalid {
                        field: "key_hash",
                        reason: "not sha256:<hex>".into(),
                    });
                }
                Ok(Event::ApiKeyCreated(c.clone()))
            }
            ApiKeyCommand::Revoke { reason } => {
                if self.created.is_none() {
                    return Err(DomainError::NotFound("api key"));
                }
                if self.revoked {
                    return Err(DomainError::Rejected("api key is already revoked".into()));
                }
                Ok(Event::ApiKeyRevoked(ApiKeyRevoked {
                    reason: reason.clone(),
                }))
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use rand::SeedableRng;

    #[test]
    fn generated_keys_are_prefixed_hashed_and_distinct() {
        let mut rng = rand::rngs::StdRng::seed_from_u64(1);
        let a = NewApiKey::generate(&mut rng);
        let b = NewApiKey::generate(&mut rng);
        assert!(a.expose().starts_with("alk_") && a.expose().len() == 4 + 43);
        assert_ne!(a.expose(), b.expose());
        assert_eq!(a.key_hash, hash_key(a.expose()));
        assert!(!a.key_hash.contains(a.expose()));
        assert!(a.expose().starts_with(&a.key_prefix));
    }

    #[test]
    fn role_names_are_their_serde_form() {
        for r in [
            Role::Admin,
            Role::Developer,
            Role::Viewer,
            Role::Auditor,
            Role::Agent,
        ] {
            assert_eq!(
                serde_json::to_value(r).ok(),
                Some(serde_json::Value::String(r.as_str().into()))
            );
            assert_eq!(Role::parse(r.as_str()), Some(r));
        }
        assert_eq!(Role::parse("root"), None);
    }

    #[test]
    fn revoke_needs_a_live_key() {
        let mut k = ApiKey::default();
        assert_eq!(
            k.decide(&ApiKeyCommand::Revoke { reason: None }),
            Err(DomainError::NotFound("api key"))
        );
        let mut rng = rand::rngs::StdRng::seed_from_u64(2);
        let n = NewApiKey::generate(&mut rng);
        let created = ApiKeyCreated {
            name: "x".into(),
            role: Role::Viewer,
            key_prefix: n.key_prefix,
            key_hash: n.key_hash,
            expires_at: None,
        };
        let ev = k
            .decide(&ApiKeyCommand::Create(created))
            .unwrap_or_else(|e| unreachable!("{e}"));
        k.apply(&ev);
        let rev = k
            .decide(&ApiKeyCommand::Revoke { reason: None })
            .unwrap_or_else(|e| unreachable!("{e}"));
        k.apply(&rev);
        assert!(k.decide(&ApiKeyCommand::Revoke { reason: None }).is_err());
    }
}
