//! Standard Webhooks, pure: the `webhook-signature` header (`v1,<base64 HMAC-SHA256 of
//! "{id}.{timestamp}.{body}">` under the base64-decoded secret after `whsec_`, one per
//! secret, space-separated) and the retry schedule (exponential backoff with jitter).

use std::time::Duration;

use base64::engine::general_purpose::STANDARD as B64;
use base64::Engine as _;
use hmac::{Hmac, Mac as _};
use sha2::Sha256;

/// The key bytes of a `whsec_…` secret.
pub fn secret_key(secret: &str) -> Option<Vec<u8>> {
    let encoded = secret.strip_prefix("whsec_")?;
    B64.decode(encoded).ok().filter(|k| !k.is_empty())
}

/// `v1,<signature>` of one message under one key.
pub fn sign(key: &[u8], id: &str, timestamp: i64, body: &[u8]) -> String {
    // HMAC takes keys of any length: `new_from_slice` cannot fail for it.
    let Ok(mut mac) = Hmac::<Sha256>::new_from_slice(key) else {
        return String::new();
    };
    mac.update(id.as_bytes());
    mac.update(b".");
    mac.update(timestamp.to_string().as_bytes());
    mac.update(b".");
    mac.update(body);
    format!("v1,{}", B64.encode(mac.finalize().into_bytes()))
}

/// The header's value: one signature per key (the current secret first), space-separated.
pub fn signature_header(keys: &[Vec<u8>], id: &str, timestamp: i64, body: &[u8]) -> String {
    keys.iter()
        .map(|k| sign(k, id, timestamp, body))
        .collect::<Vec<_>>()
        .join(" ")
}

/// First retry after this long; each later one waits twice as long, up to [`MAX_DELAY`].
pub const FIRST_DELAY: Duration = Duration::from_secs(5);
pub const MAX_DELAY: Duration = Duration::from_secs(3600);
/// Failing for this long gives up and disables the endpoint: the schedule lasts a day.
pub const GIVE_UP_AFTER: Duration = Duration::from_secs(24 * 3600);

/// The wait before attempt `failed + 1` after `failed` failures (1-based), with jitter:
/// `jitter` in `[0, 1)` takes off up to half the exponential delay ("equal jitter"), so
/// endpoints failing together do not retry together.
pub fn backoff(failed: u32, jitter: f64) -> Duration {
    let exponent = failed.saturating_sub(1).min(20);
    let full = FIRST_DELAY
        .saturating_mul(1u32 << exponent)
        .min(MAX_DELAY)
        .as_secs_f64();
    let jitter = jitter.clamp(0.0, 1.0);
    Duration::from_secs_f64((full * (1.0 - jitter / 2.0)).max(1.0))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn signs_the_standard_webhooks_example() {
        // The example of the Standard Webhooks specification (spec/standard-webhooks.md).
        let key = secret_key("whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw").unwrap();
        let body = br#"{"test": 2432232314}"#;
        assert_eq!(
            sign(&key, "msg_p5jXN8AQM9LWM0D4loKWxJek", 1614265330, body),
            "v1,g0hM9SsE+OTPJTGt/tmIKtSyZlE3uFJELVlNIOLJ1OE="
        );
    }

    #[test]
    fn one_signature_per_secret() {
        let keys = vec![vec![1u8; 32], vec![2u8; 32]];
        let header = signature_header(&keys, "id", 1, b"{}");
        let parts: Vec<&str> = header.split(' ').collect();
        assert_eq!(parts.len(), 2);
        assert!(parts.iter().all(|p| p.starts_with("v1,")));
        assert_ne!(parts[0], parts[1]);
        assert!(secret_key("nope").is_none());
        assert!(secret_key("whsec_").is_none());
    }

    #[test]
    fn the_schedule_grows_to_an_hour_and_jitters_down_only() {
        assert_eq!(backoff(1, 0.0), Duration::from_secs(5));
        assert_eq!(backoff(2, 0.0), Duration::from_secs(10));
        assert_eq!(backoff(30, 0.0), MAX_DELAY);
        assert_eq!(backoff(3, 0.999_999).as_secs(), 10);
        assert!(backoff(1, 0.5) < backoff(1, 0.0));
        // Waiting the longest delays, a day of failures takes more than 24 attempts.
        let mut waited = Duration::ZERO;
        let mut n = 0;
        while waited < GIVE_UP_AFTER {
            n += 1;
            waited += backoff(n, 0.0);
        }
        assert!(n > 24, "{n}");
    }
}
