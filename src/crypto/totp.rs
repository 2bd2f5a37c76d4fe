//! Members' second factor: TOTP (RFC 6238) with the parameters every authenticator app
//! supports (HMAC-SHA-1, 6 digits, 30 s steps). Pure: the caller passes the time and the
//! secret; the accepted code's time step is returned so the caller can refuse it the
//! second time (§5.2).

use totp_rs::{Algorithm, Secret, TOTP};

use super::CryptoError;

/// 160 bits, the HMAC-SHA-1 block-size recommendation of RFC 4226 §4.
pub const SECRET_BYTES: usize = 20;
pub const STEP_SECONDS: u64 = 30;
const DIGITS: usize = 6;
/// Codes of the step before and after are accepted too (clock drift, typing time).
const SKEW_STEPS: u64 = 1;

/// A new random shared secret.
pub fn new_secret() -> Vec<u8> {
    let mut secret = vec![0u8; SECRET_BYTES];
    rand::RngCore::fill_bytes(&mut rand::rngs::OsRng, &mut secret);
    secret
}

/// The secret as authenticator apps take it typed in: base32 without padding.
pub fn encode_secret(secret: &[u8]) -> String {
    match Secret::Raw(secret.to_vec()).to_encoded() {
        Secret::Encoded(s) => s,
        Secret::Raw(_) => String::new(),
    }
}

/// The secret back from its base32 form.
pub fn decode_secret(encoded: &str) -> Result<Vec<u8>, CryptoError> {
    Secret::Encoded(encoded.trim().to_uppercase())
        .to_bytes()
        .ok()
        .filter(|s| s.len() == SECRET_BYTES)
        .ok_or_else(|| CryptoError::invalid("second-factor secret", "not a base32 secret"))
}

fn totp(secret: &[u8]) -> Result<TOTP, CryptoError> {
    TOTP::new(Algorithm::SHA1, DIGITS, 1, STEP_SECONDS, secret.to_vec())
        .map_err(|e| CryptoError::invalid("second-factor secret", e.to_string()))
}

/// The code of time step `step`.
pub fn code_at_step(secret: &[u8], step: u64) -> Result<String, CryptoError> {
    Ok(totp(secret)?.generate(step * STEP_SECONDS))
}

/// The time step whose code `given` is, among the steps around `unix_seconds`, if any
/// (each candidate compared in constant time).
pub fn matching_step(secret: &[u8], given: &str, unix_seconds: u64) -> Option<u64> {
    let given = given.trim().replace(' ', "");
    if given.len() != DIGITS || !given.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    let now = unix_seconds / STEP_SECONDS;
    let mut found = None;
    for step in now.saturating_sub(SKEW_STEPS)..=now + SKEW_STEPS {
        let Ok(code) = code_at_step(secret, step) else {
            return None;
        };
        if bool::from(subtle::ConstantTimeEq::ct_eq(
            code.as_bytes(),
            given.as_bytes(),
        )) {
            found = Some(step);
        }
    }
    found
}

/// The `otpauth://` URI an authenticator app reads from a QR code (Key Uri Format).
pub fn otpauth_uri(secret: &[u8], issuer: &str, account: &str) -> String {
    let enc = |s: &str| url::form_urlencoded::byte_serialize(s.as_bytes()).collect::<String>();
    let label = format!("{}:{}", enc(issuer), enc(account)).replace('+', "%20");
    format!(
        "otpauth://totp/{label}?secret={}&issuer={}&algorithm=SHA1&digits={DIGITS}&period={STEP_SECONDS}",
        encode_secret(secret),
        enc(issuer).replace('+', "%20"),
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    /// RFC 6238 Appendix B, SHA-1 (the test vectors use 8 digits; their last 6 are the
    /// 6-digit codes, since both are the same number modulo 10^6 and 10^8).
    #[test]
    fn the_rfc_6238_vectors_hold() {
        let secret = b"12345678901234567890";
        for (time, eight) in [
            (59u64, "94287082"),
            (1_111_111_109, "07081804"),
            (1_111_111_111, "14050471"),
            (1_234_567_890, "89005924"),
            (2_000_000_000, "69279037"),
            (20_000_000_000, "65353130"),
        ] {
            let code = code_at_step(secret, time / STEP_SECONDS).unwrap();
            assert_eq!(code, &eight[2..], "at {time}");
            assert_eq!(
                matching_step(secret, &code, time),
                Some(time / STEP_SECONDS)
            );
        }
    }

    #[test]
    fn only_codes_of_the_neighbouring_steps_match() {
        let secret = new_secret();
        let now = 1_767_000_000u64;
        let step = now / STEP_SECONDS;
        for (delta, ok) in [(0i64, true), (-1, true), (1, true), (-2, false), (2, false)] {
            let s = step.checked_add_signed(delta).unwrap();
            let code = code_at_step(&secret, s).unwrap();
            assert_eq!(matching_step(&secret, &code, now) == Some(s), ok, "{delta}");
        }
        for bad in ["", "12345", "1234567", "12345a", "１２３４５６"] {
            assert_eq!(matching_step(&secret, bad, now), None, "{bad}");
        }
    }

    #[test]
    fn the_secret_round_trips_through_base32_and_the_uri_names_it() {
        let secret = new_secret();
        let encoded = encode_secret(&secret);
        assert_eq!(encoded.len(), 32);
        assert_eq!(decode_secret(&encoded.to_lowercase()).unwrap(), secret);
        assert!(decode_secret("not base32!").is_err());
        let uri = otpauth_uri(&secret, "authledger ws_1", "ada@example.com");
        assert!(uri.starts_with("otpauth://totp/authledger%20ws_1:ada%40example.com?secret="));
        assert!(uri.contains(&format!("secret={encoded}&")));
    }
}
