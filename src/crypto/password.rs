//! Members' console passwords: argon2id with OWASP's current minimum parameters (19 MiB of
//! memory, 2 iterations, 1 lane), as a PHC string with a random salt. The hash is sealed
//! by the caller before it enters an event; neither the password nor the hash is logged.

use argon2::password_hash::{PasswordHash, PasswordHasher, PasswordVerifier, SaltString};
use argon2::{Algorithm, Argon2, Params, Version};

use super::CryptoError;

/// Shortest password accepted (OWASP ASVS: at least 12 characters without other rules).
pub const MIN_PASSWORD_CHARS: usize = 12;
/// Longest accepted: argon2 takes any length, but a bound keeps hashing cost fixed.
pub const MAX_PASSWORD_CHARS: usize = 256;

fn argon2() -> Result<Argon2<'static>, CryptoError> {
    let params = Params::new(19 * 1024, 2, 1, None)
        .map_err(|e| CryptoError::invalid("argon2 parameters", e.to_string()))?;
    Ok(Argon2::new(Algorithm::Argon2id, Version::V0x13, params))
}

/// The PHC string of `password` (`$argon2id$v=19$m=19456,t=2,p=1$...`). CPU-bound (tens of
/// milliseconds): call it off the async threads.
pub fn hash_password(password: &str) -> Result<String, CryptoError> {
    let n = password.chars().count();
    if !(MIN_PASSWORD_CHARS..=MAX_PASSWORD_CHARS).contains(&n) {
        return Err(CryptoError::invalid(
            "password",
            format!("must be {MIN_PASSWORD_CHARS}-{MAX_PASSWORD_CHARS} characters"),
        ));
    }
    let salt = SaltString::generate(&mut rand::rngs::OsRng);
    argon2()?
        .hash_password(password.as_bytes(), &salt)
        .map(|h| h.to_string())
        .map_err(|e| CryptoError::invalid("password", e.to_string()))
}

/// Whether `password` matches the PHC string `phc` (parameters read from it).
pub fn verify_password(password: &str, phc: &str) -> bool {
    let Ok(parsed) = PasswordHash::new(phc) else {
        return false;
    };
    argon2().is_ok_and(|a| a.verify_password(password.as_bytes(), &parsed).is_ok())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_hash_is_argon2id_with_owasp_parameters_and_verifies_only_its_password() {
        let phc = hash_password("correct horse battery").unwrap_or_default();
        assert!(phc.starts_with("$argon2id$v=19$m=19456,t=2,p=1$"), "{phc}");
        assert!(verify_password("correct horse battery", &phc));
        assert!(!verify_password("correct horse batterY", &phc));
        assert!(!verify_password("correct horse battery", "not a hash"));
        assert!(hash_password("short").is_err());
    }
}
