//! End-user identity: JWTs from the workspace's own identity provider, verified against
//! its JWKS (RS256, ES256 or EdDSA only; `none` and HMAC are refused). The JWKS is cached
//! per URL and re-fetched on an unknown key id (at most every 10 s), so the provider can
//! rotate keys. Fetches of one URL are single-flight and a failure is remembered (5 s,
//! doubling to 2 min), so end-user requests never become a stream of outbound fetches.

use std::collections::HashMap;
use std::sync::Arc;
use std::time::{Duration, Instant};

use jsonwebtoken::jwk::{AlgorithmParameters, Jwk, JwkSet};
use jsonwebtoken::{decode, decode_header, Algorithm, DecodingKey, Validation};
use serde::Deserialize;
use tokio::sync::Mutex;

/// Algorithms an end-user token may use.
pub const ALLOWED_ALGORITHMS: [Algorithm; 3] =
    [Algorithm::RS256, Algorithm::ES256, Algorithm::EdDSA];
/// Clock skew tolerated on `exp` and `nbf`.
pub const LEEWAY_SECS: i64 = 30;
const JWKS_TTL: Duration = Duration::from_secs(300);
/// Least time between two fetches of one JWKS (an unknown `kid` cannot make us hammer it).
const MIN_REFETCH: Duration = Duration::from_secs(10);
const MAX_JWKS_BYTES: usize = 1024 * 1024;
/// How long a failed fetch is the answer before the next try (doubling per consecutive
/// failure, up to `MAX_NEGATIVE_TTL`): end-user requests cannot turn into fetches.
pub const NEGATIVE_TTL: Duration = Duration::from_secs(5);
pub const MAX_NEGATIVE_TTL: Duration = Duration::from_secs(120);
/// Cached JWKS URLs kept (one per configured identity provider).
const MAX_ENTRIES: usize = 10_000;

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct IdentityProvider {
    pub issuer: String,
    pub audience: String,
    pub jwks_url: String,
}

#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum TokenError {
    #[error("invalid token: {0}")]
    Invalid(&'static str),
    #[error("token expired or not yet valid")]
    Expired,
    #[error("identity provider unavailable: {0}")]
    ProviderUnavailable(String),
}

#[derive(Debug, Deserialize)]
struct Claims {
    sub: String,
    exp: i64,
    #[serde(default)]
    nbf: Option<i64>,
    /// The client the token was issued to (OpenID Connect `azp`; RFC 9068 `client_id`).
    #[serde(default)]
    azp: Option<String>,
    #[serde(default)]
    client_id: Option<String>,
}

/// Who a verified end-user token names.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Verified {
    /// The end user (`sub`).
    pub user_id: String,
    /// The client the provider issued the token to (`azp`, else `client_id`), if it says.
    pub client: Option<String>,
}

/// One JWKS URL's cache entry. The map of entries is locked only to find or add an entry;
/// an entry's state only to read or swap it. No lock is held across a fetch except the
/// entry's own `gate`, which makes fetches of one URL single-flight: a slow provider stalls
/// its own workspace's end users (for at most the fetch timeout), never anyone else's.
#[derive(Default)]
struct Entry {
    state: std::sync::Mutex<EntryState>,
    gate: Mutex<()>,
}

#[derive(Default)]
struct EntryState {
    /// The last set fetched, and when.
    set: Option<(Instant, Arc<JwkSet>)>,
    /// The last fetch failed: its error is the answer until `until`.
    failure: Option<Failure>,
}

#[derive(Clone)]
struct Failure {
    until: Instant,
    /// Consecutive failures; the back-off doubles with each.
    streak: u32,
    error: String,
}

/// Pure: how long a failed fetch is remembered after `streak` consecutive failures
/// (`NEGATIVE_TTL`, doubling, at most `MAX_NEGATIVE_TTL`).
pub fn backoff(streak: u32) -> Duration {
    let doubled = NEGATIVE_TTL.saturating_mul(1u32 << streak.saturating_sub(1).min(16));
    doubled.min(MAX_NEGATIVE_TTL)
}

/// What the cache holds for a URL at a moment: what to do next.
enum Cached {
    /// A set fetched within `JWKS_TTL`, and whether it may be refetched (for an unknown kid).
    Fresh(Arc<JwkSet>, bool),
    /// A recent failure: answer it without fetching.
    Failed(String),
    /// Nothing usable: fetch.
    Missing,
}

pub struct JwksCache {
    /// `None` only if no HTTP client could be built (then every fetch fails).
    http: Option<crate::net::HttpClient>,
    entries: std::sync::Mutex<HashMap<String, Arc<Entry>>>,
}

impl Default for JwksCache {
    fn default() -> Self {
        Self::new()
    }
}

impl JwksCache {
    pub fn new() -> Self {
        let http = jwks_client(&std::sync::Arc::default());
        JwksCache {
            http,
            entries: std::sync::Mutex::new(HashMap::new()),
        }
    }

    /// The same cache fetching only from what `destinations` allows.
    pub fn with_destinations(mut self, destinations: &std::sync::Arc<crate::net::Policy>) -> Self {
        self.http = jwks_client(destinations);
        self
    }

    /// Verifies `token` for `idp` at time `now`; returns the end user's id (`sub`).
    pub async fn verify(
        &self,
        token: &str,
        idp: &IdentityProvider,
        now: time::OffsetDateTime,
    ) -> Result<String, TokenError> {
        Ok(self.verify_person(token, idp, now).await?.user_id)
    }

    /// [`JwksCache::verify`], also naming the client the token was issued to.
    pub async fn verify_person(
        &self,
        token: &str,
        idp: &IdentityProvider,
        now: time::OffsetDateTime,
    ) -> Result<Verified, TokenError> {
        let (alg, key) = self.key(token, &idp.jwks_url).await?;
        let mut validation = Validation::new(alg);
        validation.set_issuer(&[&idp.issuer]);
        validation.set_audience(&[&idp.audience]);
        validation.set_required_spec_claims(&["exp", "iss", "aud", "sub"]);
        // Time is checked below against our clock, not the library's.
        validation.validate_exp = false;
        validation.validate_nbf = false;
        let data = decode::<Claims>(token, &key, &validation).map_err(|e| {
            use jsonwebtoken::errors::ErrorKind;
            TokenError::Invalid(match e.kind() {
                ErrorKind::InvalidIssuer => "wrong issuer",
                ErrorKind::InvalidAudience => "wrong audience",
                ErrorKind::InvalidSignature => "signature does not verify",
                ErrorKind::MissingRequiredClaim(_) => "missing required claim",
                ErrorKind::InvalidAlgorithm => "algorithm does not match the key",
                _ => "token does not verify",
            })
        })?;
        check_times(data.claims.exp, data.claims.nbf, now.unix_timestamp())?;
        let sub = data.claims.sub;
        if sub.is_empty() || sub.len() > 256 || sub.chars().any(char::is_control) {
            return Err(TokenError::Invalid("unusable subject"));
        }
        let client = [data.claims.azp, data.claims.client_id]
            .into_iter()
            .flatten()
            .find(|c| !c.is_empty() && c.len() <= 256 && !c.chars().any(char::is_control));
        Ok(Verified {
            user_id: sub,
            client,
        })
    }

    /// The algorithm `token` names (one of [`ALLOWED_ALGORITHMS`]: `none` and HMAC never)
    /// and the key of the JWKS at `jwks_url` it names, for a caller that checks claims of
    /// its own (an OpenID Connect `id_token`: `oauth::oidc`).
    pub async fn key(
        &self,
        token: &str,
        jwks_url: &str,
    ) -> Result<(Algorithm, DecodingKey), TokenError> {
        // `alg: none` and unknown algorithms fail to parse here.
        let header = decode_header(token)
            .map_err(|_| TokenError::Invalid("malformed token or unsupported algorithm"))?;
        if !ALLOWED_ALGORITHMS.contains(&header.alg) {
            return Err(TokenError::Invalid("algorithm not allowed"));
        }
        let jwk = self
            .key_for(jwks_url, header.kid.as_deref(), header.alg)
            .await?;
        let key = DecodingKey::from_jwk(&jwk)
            .map_err(|_| TokenError::Invalid("unusable key in the JWKS"))?;
        Ok((header.alg, key))
    }

    fn entry(&self, url: &str) -> Result<Arc<Entry>, TokenError> {
        let mut entries = self.entries.lock().map_err(|_| poisoned())?;
        if entries.len() >= MAX_ENTRIES && !entries.contains_key(url) {
            // Entries are per configured identity provider; past the bound, drop the ones
            // nobody is fetching (a dropped entry only costs a fetch).
            entries.retain(|_, e| Arc::strong_count(e) > 1);
        }
        Ok(entries.entry(url.to_string()).or_default().clone())
    }

    fn cached(entry: &Entry, want_refetch: bool) -> Result<Cached, TokenError> {
        let state = entry.state.lock().map_err(|_| poisoned())?;
        let now = Instant::now();
        let failed = state.failure.as_ref().filter(|f| now < f.until);
        if let Some((at, set)) = &state.set {
            let age = now.duration_since(*at);
            if age < JWKS_TTL {
                let may_refetch = want_refetch && age >= MIN_REFETCH && failed.is_none();
                return Ok(Cached::Fresh(set.clone(), may_refetch));
            }
        }
        Ok(match failed {
            Some(f) => Cached::Failed(f.error.clone()),
            None => Cached::Missing,
        })
    }

    /// The set for `url`: cached, or fetched by one caller while the others for this URL
    /// wait for its answer (`refetch`: the cached set lacks the key, look again if allowed).
    async fn set_for(&self, url: &str, refetch: bool) -> Result<Arc<JwkSet>, TokenError> {
        let entry = self.entry(url)?;
        let answer = |cached| match cached {
            Cached::Fresh(set, false) => Some(Ok(set)),
            Cached::Failed(e) => Some(Err(TokenError::ProviderUnavailable(e))),
            Cached::Fresh(_, true) | Cached::Missing => None,
        };
        if let Some(answer) = answer(Self::cached(&entry, refetch)?) {
            return answer;
        }
        let _gate = entry.gate.lock().await;
        // The fetch we waited for answers for us too (its set, or its failure).
        if let Some(answer) = answer(Self::cached(&entry, refetch)?) {
            return answer;
        }
        let fetched = self.fetch(url).await;
        let mut state = entry.state.lock().map_err(|_| poisoned())?;
        match fetched {
            Ok(set) => {
                let set = Arc::new(set);
                state.set = Some((Instant::now(), set.clone()));
                state.failure = None;
                Ok(set)
            }
            Err(e) => {
                let error = match &e {
                    TokenError::ProviderUnavailable(m) => m.clone(),
                    other => other.to_string(),
                };
                let streak = state.failure.as_ref().map_or(0, |f| f.streak) + 1;
                state.failure = Some(Failure {
                    until: Instant::now() + backoff(streak),
                    streak,
                    error,
                });
                Err(e)
            }
        }
    }

    async fn key_for(
        &self,
        url: &str,
        kid: Option<&str>,
        alg: Algorithm,
    ) -> Result<Jwk, TokenError> {
        let set = self.set_for(url, false).await?;
        if let Some(jwk) = select(&set, kid, alg) {
            return Ok(jwk);
        }
        // Unknown key id: the provider may have rotated; look again, but not too often.
        let set = self.set_for(url, true).await?;
        select(&set, kid, alg).ok_or(TokenError::Invalid(
            "no matching key in the provider's JWKS",
        ))
    }

    async fn fetch(&self, url: &str) -> Result<JwkSet, TokenError> {
        let http = self.http.as_ref().ok_or_else(|| {
            TokenError::ProviderUnavailable("no HTTP client for JWKS fetches".into())
        })?;
        fetch_jwks(http, url).await
    }
}

/// The JWKS client: the destination policy's, 5 s per fetch.
fn jwks_client(
    destinations: &std::sync::Arc<crate::net::Policy>,
) -> Option<crate::net::HttpClient> {
    crate::net::HttpClient::new(destinations, |b| b.timeout(Duration::from_secs(5))).ok()
}

/// Fetches a JWKS: only where the destination policy allows, at most [`MAX_JWKS_BYTES`]
/// read whatever the answer claims (a chunked body without a length is cut off at the
/// limit, never buffered whole).
async fn fetch_jwks(http: &crate::net::HttpClient, url: &str) -> Result<JwkSet, TokenError> {
    let unavailable = |e: String| TokenError::ProviderUnavailable(e);
    let mut resp = http
        .request(reqwest::Method::GET, url)
        .map_err(|refused| unavailable(refused.to_string()))?
        .send()
        .await
        .map_err(|e| unavailable(crate::net::client::failure(&e)))?;
    if !resp.status().is_success() {
        return Err(unavailable(format!("JWKS answered {}", resp.status())));
    }
    let too_large = || unavailable(format!("JWKS larger than {MAX_JWKS_BYTES} bytes"));
    if resp
        .content_length()
        .is_some_and(|n| n > MAX_JWKS_BYTES as u64)
    {
        return Err(too_large());
    }
    let mut body = Vec::new();
    while let Some(chunk) = resp
        .chunk()
        .await
        .map_err(|e| unavailable(crate::net::client::failure(&e)))?
    {
        if body.len() + chunk.len() > MAX_JWKS_BYTES {
            // Dropping the response closes the connection: nothing more is read.
            return Err(too_large());
        }
        body.extend_from_slice(&chunk);
    }
    serde_json::from_slice(&body).map_err(|e| unavailable(format!("unusable JWKS: {e}")))
}

fn poisoned() -> TokenError {
    TokenError::ProviderUnavailable("JWKS cache unavailable".into())
}

/// Pure: the `exp`/`nbf` check with leeway.
pub fn check_times(exp: i64, nbf: Option<i64>, now: i64) -> Result<(), TokenError> {
    if now > exp + LEEWAY_SECS || nbf.is_some_and(|nbf| now + LEEWAY_SECS < nbf) {
        return Err(TokenError::Expired);
    }
    Ok(())
}

/// Pure: the key a token names (by `kid`, else the only key of the right type), refusing
/// a key whose declared algorithm or type differs from the token's.
pub fn select(set: &JwkSet, kid: Option<&str>, alg: Algorithm) -> Option<Jwk> {
    let fits = |k: &Jwk| {
        let type_ok = matches!(
            (&k.algorithm, alg),
            (AlgorithmParameters::RSA(_), Algorithm::RS256)
                | (AlgorithmParameters::EllipticCurve(_), Algorithm::ES256)
                | (AlgorithmParameters::OctetKeyPair(_), Algorithm::EdDSA)
        );
        let declared_ok = k.common.key_algorithm.map(|a| {
            use jsonwebtoken::jwk::KeyAlgorithm as K;
            matches!(
                (a, alg),
                (K::RS256, Algorithm::RS256)
                    | (K::ES256, Algorithm::ES256)
                    | (K::EdDSA, Algorithm::EdDSA)
            )
        });
        let declared_ok = declared_ok.unwrap_or(true);
        type_ok && declared_ok
    };
    match kid {
        Some(kid) => set
            .keys
            .iter()
            .find(|k| k.common.key_id.as_deref() == Some(kid) && fits(k))
            .cloned(),
        None => {
            let mut candidates = set.keys.iter().filter(|k| fits(k));
            match (candidates.next(), candidates.next()) {
                (Some(k), None) => Some(k.clone()),
                _ => None,
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn times_with_leeway() {
        assert_eq!(check_times(1000, None, 1000), Ok(()));
        assert_eq!(check_times(1000, None, 1030), Ok(()));
        assert_eq!(check_times(1000, None, 1031), Err(TokenError::Expired));
        assert_eq!(
            check_times(5000, Some(2000), 1969),
            Err(TokenError::Expired)
        );
        assert_eq!(check_times(5000, Some(2000), 1970), Ok(()));
    }

    #[test]
    fn failures_back_off_doubling_to_a_bound() {
        assert_eq!(backoff(1), NEGATIVE_TTL);
        assert_eq!(backoff(2), NEGATIVE_TTL * 2);
        assert_eq!(backoff(3), NEGATIVE_TTL * 4);
        assert_eq!(backoff(40), MAX_NEGATIVE_TTL);
    }

    #[test]
    fn none_and_hmac_tokens_never_verify() {
        // {"alg":"none"} . {"sub":"x"} . (empty)
        assert!(decode_header("eyJhbGciOiJub25lIn0.eyJzdWIiOiJ4In0.").is_err());
        // {"alg":"HS256","typ":"JWT"}
        let h = decode_header("eyJhbGciOiJIUzI1NiIsInR5cCI6IkpXVCJ9.e30.x").map(|h| h.alg);
        assert_eq!(h.ok(), Some(Algorithm::HS256));
        assert!(!ALLOWED_ALGORITHMS.contains(&Algorithm::HS256));
    }
}
