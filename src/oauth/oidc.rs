//! An OpenID Connect relying party (OIDC Core 1.0, Discovery 1.0): the code flow with PKCE
//! for a browser sign-in, shared by every face that signs people in with an organisation's
//! own provider (team SSO in the console; end users' browser sign-in later).
//!
//! - Discovery: `<issuer>/.well-known/openid-configuration`, whose `issuer` must be exactly
//!   the configured one (Discovery §4.3), with the endpoints the code flow needs.
//! - The authorization request ([`authorization_url`]): `response_type=code`, scope
//!   `openid email`, `state`, `nonce`, PKCE `S256` ([`Flow`] makes the three secrets).
//! - The code exchange at the token endpoint with the client secret (`client_secret_basic`
//!   unless the provider only advertises `client_secret_post`), through the destination
//!   policy's client ([`OAuthClient`]); the answer must carry an `id_token`.
//! - The `id_token` ([`verify_id_token`]): signature by a key of the provider's JWKS
//!   (`jwks_uri`) through [`JwksCache`] (RS256, ES256, EdDSA only: never `none`, never
//!   HMAC), then the claims ([`check_claims`], pure): `iss`, `aud` containing the client id,
//!   `azp` (the client id, if present, and required when `aud` names others), `exp`/`nbf`
//!   with leeway, `iat`, `nonce`, `sub`, `email`, `email_verified`.
//!
//! The discovery fetch, the parsing and the checks are separate so the pure parts are
//! unit-tested without I/O. Nothing here logs or returns a secret: errors describe what
//! failed, never a token, code or client secret.

use std::time::Duration;

use jsonwebtoken::{decode, Validation};
use secrecy::ExposeSecret as _;
use serde::Deserialize;
use serde_json::Value;

use super::{ClientAuthMethod, ClientCredentials, OAuthClient, OAuthError};
use crate::identity::{check_times, JwksCache, TokenError, LEEWAY_SECS};
use crate::net::HttpClient;

/// Largest discovery document read (bytes).
const MAX_DISCOVERY_BYTES: usize = 256 * 1024;
/// How long a discovery fetch may take.
const DISCOVERY_TIMEOUT: Duration = Duration::from_secs(5);
/// The scopes asked for: the identity and the email address, nothing more.
pub const SCOPES: [&str; 2] = ["openid", "email"];

/// Why an OpenID Connect step failed. Never carries a secret.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum OidcError {
    /// The discovery document could not be fetched, or does not fit (issuer, endpoints).
    #[error("the provider's discovery document: {0}")]
    Discovery(String),
    /// The token endpoint refused or failed.
    #[error("the code exchange failed: {0}")]
    Exchange(#[from] OAuthError),
    /// The `id_token` is missing or does not verify.
    #[error("the id_token does not verify: {0}")]
    IdToken(String),
    /// The `id_token`'s nonce is not the flow's (a replayed or injected token).
    #[error("the id_token's nonce is not this sign-in's")]
    Nonce,
    /// The provider's JWKS cannot be reached.
    #[error("the provider's keys cannot be fetched: {0}")]
    Unavailable(String),
}

/// What the code flow needs of a provider's discovery document.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Discovery {
    pub issuer: String,
    pub authorization_endpoint: String,
    pub token_endpoint: String,
    pub jwks_uri: String,
    /// How the client authenticates at the token endpoint.
    pub client_auth: ClientAuthMethod,
}

/// The discovery document's URL for `issuer` (Discovery §4.1: a trailing `/` is not doubled).
pub fn discovery_url(issuer: &str) -> String {
    format!(
        "{}/.well-known/openid-configuration",
        issuer.trim_end_matches('/')
    )
}

#[derive(Deserialize)]
struct RawDiscovery {
    issuer: Option<Value>,
    authorization_endpoint: Option<Value>,
    token_endpoint: Option<Value>,
    jwks_uri: Option<Value>,
    #[serde(default)]
    response_types_supported: Option<Value>,
    #[serde(default)]
    code_challenge_methods_supported: Option<Value>,
    #[serde(default)]
    token_endpoint_auth_methods_supported: Option<Value>,
}

fn strings(v: &Option<Value>) -> Option<Vec<&str>> {
    match v {
        Some(Value::Array(items)) => Some(items.iter().filter_map(Value::as_str).collect()),
        _ => None,
    }
}

/// Pure: a discovery document checked against the configured issuer. The issuer must be
/// exactly the configured one (a provider cannot speak for another); the endpoints must be
/// there; `code` must be a supported response type and `S256` a supported PKCE method where
/// the document lists them; the client authenticates with `client_secret_basic` (the
/// default when the document is silent, Discovery §3) unless only `client_secret_post` is
/// offered. The endpoints' URLs are judged again by the destination policy when called.
pub fn parse_discovery(configured_issuer: &str, body: &[u8]) -> Result<Discovery, OidcError> {
    let bad = |m: &str| OidcError::Discovery(m.to_string());
    let raw: RawDiscovery = serde_json::from_slice(body).map_err(|_| bad("not a JSON object"))?;
    let text = |v: Option<Value>, name: &str| match v {
        Some(Value::String(s)) if !s.is_empty() && s.len() <= 2048 => Ok(s),
        _ => Err(bad(&format!("no {name}"))),
    };
    let issuer = text(raw.issuer.clone(), "issuer")?;
    if issuer != configured_issuer {
        return Err(bad("its issuer is not the configured issuer"));
    }
    if strings(&raw.response_types_supported).is_some_and(|t| !t.contains(&"code")) {
        return Err(bad(
            "the provider does not support the authorization code flow",
        ));
    }
    if strings(&raw.code_challenge_methods_supported).is_some_and(|m| !m.contains(&"S256")) {
        return Err(bad("the provider does not support PKCE with S256"));
    }
    let client_auth = match strings(&raw.token_endpoint_auth_methods_supported) {
        None => ClientAuthMethod::ClientSecretBasic,
        Some(m) if m.contains(&"client_secret_basic") => ClientAuthMethod::ClientSecretBasic,
        Some(m) if m.contains(&"client_secret_post") => ClientAuthMethod::ClientSecretPost,
        Some(_) => {
            return Err(bad(
                "the provider offers neither client_secret_basic nor client_secret_post",
            ))
        }
    };
    Ok(Discovery {
        issuer,
        authorization_endpoint: text(raw.authorization_endpoint, "authorization_endpoint")?,
        token_endpoint: text(raw.token_endpoint, "token_endpoint")?,
        jwks_uri: text(raw.jwks_uri, "jwks_uri")?,
        client_auth,
    })
}

/// Fetches and checks the discovery document of `issuer` through the destination policy
/// (bounded: 5 s, 256 KiB, no redirects).
pub async fn discover(
    destinations: &std::sync::Arc<crate::net::Policy>,
    issuer: &str,
) -> Result<Discovery, OidcError> {
    let unavailable = |m: String| OidcError::Discovery(m);
    let http = HttpClient::new(destinations, |b| {
        b.timeout(DISCOVERY_TIMEOUT)
            .user_agent(concat!("authledger/", env!("CARGO_PKG_VERSION")))
    })
    .map_err(|_| unavailable("no HTTP client".into()))?;
    let mut resp = http
        .request(reqwest::Method::GET, &discovery_url(issuer))
        .map_err(|refused| unavailable(refused.to_string()))?
        .send()
        .await
        .map_err(|e| unavailable(crate::net::client::failure(&e)))?;
    if !resp.status().is_success() {
        return Err(unavailable(format!("answered {}", resp.status().as_u16())));
    }
    let mut body = Vec::new();
    while let Some(chunk) = resp
        .chunk()
        .await
        .map_err(|e| unavailable(crate::net::client::failure(&e)))?
    {
        if body.len() + chunk.len() > MAX_DISCOVERY_BYTES {
            return Err(unavailable("larger than 256 KiB".into()));
        }
        body.extend_from_slice(&chunk);
    }
    parse_discovery(issuer, &body)
}

/// The three single-use secrets of one sign-in: `state` (binds the callback to the
/// browser that started it), `nonce` (binds the `id_token` to it), the PKCE verifier
/// (binds the code to it). Each 256 random bits, base64url.
#[derive(Clone)]
pub struct Flow {
    pub state: String,
    pub nonce: String,
    pub code_verifier: String,
}

impl std::fmt::Debug for Flow {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Flow([redacted])")
    }
}

impl Flow {
    pub fn new() -> Flow {
        Flow {
            state: super::random_token(),
            nonce: super::random_token(),
            code_verifier: super::random_token(),
        }
    }
}

impl Default for Flow {
    fn default() -> Self {
        Self::new()
    }
}

/// Pure: the authorization request URL (OIDC Core §3.1.2.1) for `flow`.
pub fn authorization_url(
    discovery: &Discovery,
    client_id: &str,
    redirect_uri: &str,
    flow: &Flow,
) -> Result<String, OidcError> {
    let scopes: Vec<String> = SCOPES.iter().map(|s| s.to_string()).collect();
    let extra = std::collections::BTreeMap::from([("nonce".to_string(), flow.nonce.clone())]);
    let challenge = super::pkce_challenge(&flow.code_verifier);
    super::authorize_url(&super::AuthorizeRequest {
        authorization_url: &discovery.authorization_endpoint,
        client_id,
        redirect_uri,
        scopes: &scopes,
        scope_separator: " ",
        state: &flow.state,
        code_challenge: Some(&challenge),
        extra_params: &extra,
    })
    .map_err(|e| OidcError::Discovery(e.to_string()))
}

/// Exchanges the code at the token endpoint (with the client secret and the PKCE verifier);
/// the `id_token` of the answer (the access token is not used and not kept).
pub async fn exchange_code(
    oauth: &OAuthClient,
    discovery: &Discovery,
    (client_id, client_secret): (&str, &str),
    code: &str,
    redirect_uri: &str,
    code_verifier: &str,
) -> Result<secrecy::SecretString, OidcError> {
    let creds = ClientCredentials::new(client_id, client_secret, discovery.client_auth);
    let tokens = oauth
        .exchange_code(
            &discovery.token_endpoint,
            &creds,
            code,
            redirect_uri,
            Some(code_verifier),
        )
        .await?;
    tokens
        .id_token
        .ok_or_else(|| OidcError::IdToken("the token response has no id_token".into()))
}

/// What the `id_token` must match.
#[derive(Debug, Clone, Copy)]
pub struct Expected<'a> {
    pub issuer: &'a str,
    pub client_id: &'a str,
    pub nonce: &'a str,
}

/// A verified identity at the provider.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Identity {
    pub issuer: String,
    pub subject: String,
    /// Lower-cased as members' emails are; `None` when the provider gave none.
    pub email: Option<String>,
    /// Whether the provider says it verified the email (absent means no).
    pub email_verified: bool,
}

/// `aud` is one string or an array of them (OIDC Core §2).
#[derive(Debug, Clone, Deserialize)]
#[serde(untagged)]
pub enum Audience {
    One(String),
    Many(Vec<String>),
}

/// The claims of an `id_token` this relying party reads.
#[derive(Debug, Clone, Deserialize)]
pub struct IdClaims {
    pub iss: Option<String>,
    pub sub: Option<String>,
    pub aud: Option<Audience>,
    pub exp: Option<i64>,
    pub iat: Option<i64>,
    #[serde(default)]
    pub nbf: Option<i64>,
    #[serde(default)]
    pub nonce: Option<String>,
    #[serde(default)]
    pub azp: Option<String>,
    #[serde(default)]
    pub email: Option<String>,
    /// A boolean; some providers send the string `"true"`.
    #[serde(default)]
    pub email_verified: Option<Value>,
}

/// Pure: the claims of a signature-checked `id_token` against what this sign-in expects,
/// at `now` (unix seconds). OIDC Core §3.1.3.7.
pub fn check_claims(
    claims: &IdClaims,
    expected: &Expected,
    now: i64,
) -> Result<Identity, OidcError> {
    let bad = |m: &str| OidcError::IdToken(m.to_string());
    if claims.iss.as_deref() != Some(expected.issuer) {
        return Err(bad("wrong issuer"));
    }
    let audiences: Vec<&str> = match &claims.aud {
        Some(Audience::One(a)) => vec![a.as_str()],
        Some(Audience::Many(a)) => a.iter().map(String::as_str).collect(),
        None => return Err(bad("no audience")),
    };
    if !audiences.contains(&expected.client_id) {
        return Err(bad("wrong audience"));
    }
    match claims.azp.as_deref() {
        Some(azp) if azp != expected.client_id => {
            return Err(bad("issued to another client (azp)"))
        }
        None if audiences.len() > 1 => return Err(bad("several audiences and no azp")),
        _ => {}
    }
    let exp = claims.exp.ok_or_else(|| bad("no exp"))?;
    check_times(exp, claims.nbf, now).map_err(|_| bad("expired or not yet valid"))?;
    let iat = claims.iat.ok_or_else(|| bad("no iat"))?;
    if iat > now + LEEWAY_SECS {
        return Err(bad("issued in the future"));
    }
    let nonce_ok = claims.nonce.as_deref().is_some_and(|n| {
        subtle::ConstantTimeEq::ct_eq(n.as_bytes(), expected.nonce.as_bytes()).into()
    });
    if !nonce_ok {
        return Err(OidcError::Nonce);
    }
    let subject = claims.sub.clone().unwrap_or_default();
    if subject.is_empty() || subject.len() > 255 || subject.chars().any(char::is_control) {
        return Err(bad("no usable subject"));
    }
    let email = claims
        .email
        .as_deref()
        .map(crate::domain::member::normalize_email)
        .filter(|e| !e.is_empty() && e.len() <= 254);
    let email_verified = match &claims.email_verified {
        Some(Value::Bool(b)) => *b,
        Some(Value::String(s)) => s == "true",
        _ => false,
    };
    Ok(Identity {
        issuer: expected.issuer.to_string(),
        subject,
        email,
        email_verified,
    })
}

/// Verifies an `id_token`: the signature by the provider's JWKS (through the cache: an
/// allowed algorithm only), then [`check_claims`].
pub async fn verify_id_token(
    jwks: &JwksCache,
    discovery: &Discovery,
    id_token: &secrecy::SecretString,
    expected: &Expected<'_>,
    now: i64,
) -> Result<Identity, OidcError> {
    let token = id_token.expose_secret();
    let (alg, key) = jwks
        .key(token, &discovery.jwks_uri)
        .await
        .map_err(|e| match e {
            TokenError::ProviderUnavailable(m) => OidcError::Unavailable(m),
            other => OidcError::IdToken(other.to_string()),
        })?;
    let mut validation = Validation::new(alg);
    // Every claim is checked by `check_claims`, against our clock.
    validation.validate_exp = false;
    validation.validate_nbf = false;
    validation.validate_aud = false;
    validation.required_spec_claims.clear();
    let data = decode::<IdClaims>(token, &key, &validation).map_err(|e| {
        use jsonwebtoken::errors::ErrorKind;
        OidcError::IdToken(
            match e.kind() {
                ErrorKind::InvalidSignature => "signature does not verify",
                ErrorKind::InvalidAlgorithm => "algorithm does not match the key",
                _ => "malformed token",
            }
            .to_string(),
        )
    })?;
    check_claims(&data.claims, expected, now)
}

#[cfg(test)]
mod tests {
    use super::*;

    const ISS: &str = "https://sso.example.com";

    fn doc(extra: &str) -> Vec<u8> {
        format!(
            r#"{{"issuer":"{ISS}","authorization_endpoint":"{ISS}/authorize",
                "token_endpoint":"{ISS}/token","jwks_uri":"{ISS}/jwks"{extra}}}"#
        )
        .into_bytes()
    }

    #[test]
    fn discovery_needs_the_configured_issuer_and_the_endpoints() {
        let d = parse_discovery(ISS, &doc("")).unwrap();
        assert_eq!(d.token_endpoint, format!("{ISS}/token"));
        assert_eq!(d.client_auth, ClientAuthMethod::ClientSecretBasic);
        assert!(parse_discovery("https://other.example.com", &doc("")).is_err());
        assert!(parse_discovery(&format!("{ISS}/"), &doc("")).is_err());
        let no_jwks =
            format!(r#"{{"issuer":"{ISS}","authorization_endpoint":"a","token_endpoint":"t"}}"#);
        assert!(parse_discovery(ISS, no_jwks.as_bytes()).is_err());
        assert!(parse_discovery(ISS, b"[]").is_err());
        assert_eq!(
            discovery_url("https://sso.example.com/"),
            "https://sso.example.com/.well-known/openid-configuration"
        );
    }

    #[test]
    fn discovery_chooses_the_client_authentication_and_needs_code_and_s256() {
        let post = r#","token_endpoint_auth_methods_supported":["client_secret_post"]"#;
        assert_eq!(
            parse_discovery(ISS, &doc(post)).unwrap().client_auth,
            ClientAuthMethod::ClientSecretPost
        );
        let both = r#","token_endpoint_auth_methods_supported":["client_secret_post","client_secret_basic"]"#;
        assert_eq!(
            parse_discovery(ISS, &doc(both)).unwrap().client_auth,
            ClientAuthMethod::ClientSecretBasic
        );
        let jwt_only = r#","token_endpoint_auth_methods_supported":["private_key_jwt"]"#;
        assert!(parse_discovery(ISS, &doc(jwt_only)).is_err());
        assert!(parse_discovery(ISS, &doc(r#","response_types_supported":["id_token"]"#)).is_err());
        assert!(parse_discovery(
            ISS,
            &doc(r#","code_challenge_methods_supported":["plain"]"#)
        )
        .is_err());
        assert!(
            parse_discovery(ISS, &doc(r#","code_challenge_methods_supported":["S256"]"#)).is_ok()
        );
    }

    #[test]
    fn the_authorization_url_carries_code_pkce_state_nonce_and_openid_email() {
        let d = parse_discovery(ISS, &doc("")).unwrap();
        let flow = Flow::new();
        let url = authorization_url(&d, "console", "https://al.example.com/cb", &flow).unwrap();
        let u = url::Url::parse(&url).unwrap();
        let q: std::collections::BTreeMap<String, String> = u.query_pairs().into_owned().collect();
        assert_eq!(q["response_type"], "code");
        assert_eq!(q["client_id"], "console");
        assert_eq!(q["redirect_uri"], "https://al.example.com/cb");
        assert_eq!(q["scope"], "openid email");
        assert_eq!(q["state"], flow.state);
        assert_eq!(q["nonce"], flow.nonce);
        assert_eq!(q["code_challenge_method"], "S256");
        assert_eq!(
            q["code_challenge"],
            super::super::pkce_challenge(&flow.code_verifier)
        );
        assert!(!url.contains(&flow.code_verifier));
        let other = Flow::new();
        assert_ne!(flow.state, other.state);
        assert_ne!(flow.nonce, other.nonce);
        assert_eq!(format!("{flow:?}"), "Flow([redacted])");
    }

    fn claims() -> IdClaims {
        serde_json::from_value(serde_json::json!({
            "iss": ISS, "sub": "00u1", "aud": "console", "exp": 2000, "iat": 1000,
            "nonce": "n-1", "email": "Ada@Example.com", "email_verified": true
        }))
        .unwrap()
    }

    const WANT: Expected<'static> = Expected {
        issuer: ISS,
        client_id: "console",
        nonce: "n-1",
    };

    #[test]
    fn good_claims_give_the_identity() {
        let id = check_claims(&claims(), &WANT, 1500).unwrap();
        assert_eq!(id.subject, "00u1");
        assert_eq!(id.email.as_deref(), Some("ada@example.com"));
        assert!(id.email_verified);
        let mut c = claims();
        c.email_verified = Some(Value::String("true".into()));
        assert!(check_claims(&c, &WANT, 1500).unwrap().email_verified);
        c.email_verified = Some(Value::Bool(false));
        assert!(!check_claims(&c, &WANT, 1500).unwrap().email_verified);
        c.email_verified = None;
        assert!(!check_claims(&c, &WANT, 1500).unwrap().email_verified);
        c.aud = Some(Audience::Many(vec!["console".into(), "other".into()]));
        c.azp = Some("console".into());
        assert!(check_claims(&c, &WANT, 1500).is_ok());
    }

    #[test]
    fn each_claim_that_does_not_fit_is_refused() {
        type Bend = fn(&mut IdClaims);
        let cases: [(&str, Bend); 11] = [
            ("issuer", |c| {
                c.iss = Some("https://evil.example.com".into())
            }),
            ("no issuer", |c| c.iss = None),
            ("audience", |c| c.aud = Some(Audience::One("other".into()))),
            ("no audience", |c| c.aud = None),
            ("azp", |c| c.azp = Some("other".into())),
            ("several audiences without azp", |c| {
                c.aud = Some(Audience::Many(vec!["console".into(), "other".into()]))
            }),
            ("expired", |c| c.exp = Some(1500 - LEEWAY_SECS - 1)),
            ("not yet valid", |c| c.nbf = Some(1500 + LEEWAY_SECS + 1)),
            ("issued in the future", |c| {
                c.iat = Some(1500 + LEEWAY_SECS + 1)
            }),
            ("no subject", |c| c.sub = Some(String::new())),
            ("no iat", |c| c.iat = None),
        ];
        for (what, bend) in cases {
            let mut c = claims();
            bend(&mut c);
            assert!(
                matches!(check_claims(&c, &WANT, 1500), Err(OidcError::IdToken(_))),
                "{what}"
            );
        }
        for nonce in [None, Some("n-2".to_string()), Some(String::new())] {
            let mut c = claims();
            c.nonce = nonce;
            assert_eq!(check_claims(&c, &WANT, 1500), Err(OidcError::Nonce));
        }
    }
}
