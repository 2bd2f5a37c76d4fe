//! The scoped token format: a JWS (RFC 7515, compact) signed `EdDSA` (RFC 8037, Ed25519) by
//! the ledger's signing key, `typ: at+jwt`, with RFC 9068-style claims plus the ledger's
//! own (workspace, connection, auth config, tool, uses, and the `token.issued` event id).
//! Anyone can verify it offline with the keys at `/.well-known/jwks.json`; the ledger also
//! checks the token's aggregate (revoked, uses left) whenever it is presented.

use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use base64::Engine as _;
use jsonwebtoken::{decode, decode_header, Algorithm, DecodingKey, Validation};
use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};

use crate::ledger::{KeyRing, Signer};

/// The `typ` header of a scoped token (RFC 9068 access token).
pub const TOKEN_TYPE: &str = "at+jwt";
/// The `aud` of every scoped token: this ledger's gateway.
pub const AUDIENCE: &str = "authledger";

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct TokenClaims {
    /// The public URL of the issuing service.
    pub iss: String,
    /// The end user the token acts for.
    pub sub: String,
    pub aud: String,
    /// The token id (its aggregate id in the ledger).
    pub jti: String,
    pub iat: i64,
    pub exp: i64,
    /// The API key (agent) the token was issued to.
    pub client_id: String,
    /// Space-separated provider scopes (RFC 9068 `scope`).
    pub scope: String,
    pub workspace_id: String,
    pub connection_id: String,
    pub auth_config_id: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub tool: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub max_uses: Option<u32>,
    /// The id of the `token.issued` event that authorised this token.
    pub issued_event_id: String,
}

impl TokenClaims {
    pub fn scopes(&self) -> Vec<String> {
        self.scope
            .split(' ')
            .filter(|s| !s.is_empty())
            .map(str::to_string)
            .collect()
    }
}

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum TokenFormatError {
    #[error("not a scoped token: {0}")]
    Invalid(&'static str),
    /// Signature and claims verified, but past `exp`: the workspace and key it names are
    /// known (so the refusal is recorded where that workspace's auditors see it).
    #[error("the token has expired")]
    Expired {
        workspace_id: String,
        client_id: String,
    },
    #[error("cannot sign the token: {0}")]
    Sign(String),
}

/// Signs `claims` with the ledger's key.
pub fn sign(signer: &Signer, claims: &TokenClaims) -> Result<String, TokenFormatError> {
    let header = serde_json::json!({ "alg": "EdDSA", "typ": TOKEN_TYPE, "kid": signer.key_id() });
    let claims = serde_json::to_value(claims).map_err(|e| TokenFormatError::Sign(e.to_string()))?;
    signer
        .sign_jws(&header, &claims)
        .map_err(|e| TokenFormatError::Sign(e.to_string()))
}

/// `sha256:<hex>` of the token string: what the ledger records instead of the token.
pub fn fingerprint(token: &str) -> String {
    format!("sha256:{}", hex::encode(Sha256::digest(token.as_bytes())))
}

/// Verifies signature (a key of `ring`, named by `kid`), `typ`, `alg`, issuer, audience and
/// expiry (no leeway: tokens live minutes). Returns the claims.
pub fn verify(
    token: &str,
    ring: &KeyRing,
    issuer: &str,
    now_unix: i64,
) -> Result<TokenClaims, TokenFormatError> {
    if token.len() > 8192 {
        return Err(TokenFormatError::Invalid("too long"));
    }
    let header = decode_header(token).map_err(|_| TokenFormatError::Invalid("malformed"))?;
    if header.alg != Algorithm::EdDSA || header.typ.as_deref() != Some(TOKEN_TYPE) {
        return Err(TokenFormatError::Invalid("wrong alg or typ"));
    }
    let kid = header.kid.ok_or(TokenFormatError::Invalid("no kid"))?;
    let public = ring
        .get(&kid)
        .ok_or(TokenFormatError::Invalid("unknown kid"))?;
    let key = DecodingKey::from_ed_components(&URL_SAFE_NO_PAD.encode(public.as_bytes()))
        .map_err(|_| TokenFormatError::Invalid("bad key"))?;
    let mut validation = Validation::new(Algorithm::EdDSA);
    validation.set_audience(&[AUDIENCE]);
    validation.set_issuer(&[issuer]);
    validation.set_required_spec_claims(&["exp", "aud", "iss", "sub"]);
    // Expiry is checked below against the service clock, not the system clock.
    validation.validate_exp = false;
    validation.leeway = 0;
    let data = decode::<TokenClaims>(token, &key, &validation)
        .map_err(|_| TokenFormatError::Invalid("signature or claims do not verify"))?;
    if now_unix >= data.claims.exp {
        return Err(TokenFormatError::Expired {
            workspace_id: data.claims.workspace_id,
            client_id: data.claims.client_id,
        });
    }
    Ok(data.claims)
}

/// The JWK set of `ring` (RFC 8037 OKP keys), for `/.well-known/jwks.json`.
pub fn jwks(ring: &KeyRing) -> serde_json::Value {
    let keys: Vec<serde_json::Value> = ring
        .ids()
        .filter_map(|id| ring.get(id).map(|k| (id, k)))
        .map(|(id, k)| {
            serde_json::json!({
                "kty": "OKP",
                "crv": "Ed25519",
                "x": URL_SAFE_NO_PAD.encode(k.as_bytes()),
                "kid": id,
                "use": "sig",
                "alg": "EdDSA",
            })
        })
        .collect();
    serde_json::json!({ "keys": keys })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn claims(exp: i64) -> TokenClaims {
        TokenClaims {
            iss: "https://ledger.example.com".into(),
            sub: "user-1".into(),
            aud: AUDIENCE.into(),
            jti: "tok-1".into(),
            iat: 1000,
            exp,
            client_id: "key-1".into(),
            scope: "chat:write channels:read".into(),
            workspace_id: "ws".into(),
            connection_id: "conn".into(),
            auth_config_id: "cfg".into(),
            tool: Some("slack.post_message".into()),
            max_uses: Some(3),
            issued_event_id: "evt".into(),
        }
    }

    fn ring_of(signer: &Signer) -> KeyRing {
        let mut ring = KeyRing::default();
        ring.insert(signer.public_key());
        ring
    }

    #[test]
    fn a_signed_token_verifies_and_round_trips_its_claims() {
        let signer = Signer::generate();
        let token = sign(&signer, &claims(2000)).unwrap();
        let got = verify(
            &token,
            &ring_of(&signer),
            "https://ledger.example.com",
            1500,
        )
        .unwrap();
        assert_eq!(got, claims(2000));
        assert_eq!(got.scopes(), vec!["chat:write", "channels:read"]);
        assert!(fingerprint(&token).starts_with("sha256:"));
        let jwks = jwks(&ring_of(&signer));
        assert_eq!(jwks["keys"][0]["kid"], signer.key_id());
        assert_eq!(jwks["keys"][0]["crv"], "Ed25519");
    }

    #[test]
    fn expired_forged_and_foreign_tokens_are_refused() {
        let signer = Signer::generate();
        let ring = ring_of(&signer);
        let iss = "https://ledger.example.com";
        let token = sign(&signer, &claims(2000)).unwrap();
        assert_eq!(
            verify(&token, &ring, iss, 2000),
            Err(TokenFormatError::Expired {
                workspace_id: "ws".into(),
                client_id: "key-1".into()
            })
        );
        assert!(verify(&token, &ring, "https://other.example.com", 1500).is_err());
        // Another key, even with the same kid in the header, does not verify.
        let other = Signer::generate();
        assert!(verify(&token, &ring_of(&other), iss, 1500).is_err());
        // A changed claim breaks the signature.
        let parts: Vec<&str> = token.split('.').collect();
        let mut c = claims(2000);
        c.scope = "admin".into();
        let forged_claims = URL_SAFE_NO_PAD.encode(serde_json::to_vec(&c).unwrap());
        let forged = format!("{}.{}.{}", parts[0], forged_claims, parts[2]);
        assert!(verify(&forged, &ring, iss, 1500).is_err());
        // alg: none is refused.
        let none_header = URL_SAFE_NO_PAD.encode(br#"{"alg":"none","typ":"at+jwt"}"#);
        let none = format!("{none_header}.{}.", parts[1]);
        assert!(verify(&none, &ring, iss, 1500).is_err());
        assert!(verify("garbage", &ring, iss, 1500).is_err());
    }
}
