//! The one signature rule of `schemas/README.md` §3, applied by every checker in the
//! service (`authledger verify`, the API's `verified` flag, the export checks).
//!
//! RFC 8032 §5.1.7 with strict encodings, i.e. ed25519-dalek's `verify_strict`: `S < L`;
//! `R` and the public key `A` are canonical encodings (`y < p`, and not `x = 0` with the
//! sign bit set) of points that are not of small order; and `[S]B = R + [k]A` holds
//! without the cofactor (the recomputed `R` must equal the signature's `R` bytes).
//!
//! There is no batch path: cofactored batch verification accepts an `R` that carries a
//! small-order component, which this rule rejects, and finding such an `R` costs as much as
//! verifying the signature, so a batch could only ever change the verdict.

use ed25519_dalek::{Signature, Verifier as _, VerifyingKey};

/// Why a signature is not valid under the rule.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum SignatureError {
    #[error("R is not a canonical point encoding")]
    NonCanonicalR,
    #[error("R is a point of small order")]
    SmallOrderR,
    #[error("the public key is not a canonical point encoding")]
    NonCanonicalKey,
    #[error("the public key is a point of small order")]
    SmallOrderKey,
    #[error("S is not reduced (S >= L)")]
    ScalarNotReduced,
    #[error("the signature does not verify")]
    Mismatch,
}

/// The canonical encodings of the eight points of small order (the 8-torsion subgroup),
/// as listed in `schemas/README.md` §3.
pub const SMALL_ORDER_POINTS: [[u8; 32]; 8] = [
    [
        0x01, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00,
        0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00,
        0x00, 0x00,
    ],
    [
        0xc7, 0x17, 0x6a, 0x70, 0x3d, 0x4d, 0xd8, 0x4f, 0xba, 0x3c, 0x0b, 0x76, 0x0d, 0x10, 0x67,
        0x0f, 0x2a, 0x20, 0x53, 0xfa, 0x2c, 0x39, 0xcc, 0xc6, 0x4e, 0xc7, 0xfd, 0x77, 0x92, 0xac,
        0x03, 0x7a,
    ],
    [
        0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00,
        0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00,
        0x00, 0x80,
    ],
    [
        0x26, 0xe8, 0x95, 0x8f, 0xc2, 0xb2, 0x27, 0xb0, 0x45, 0xc3, 0xf4, 0x89, 0xf2, 0xef, 0x98,
        0xf0, 0xd5, 0xdf, 0xac, 0x05, 0xd3, 0xc6, 0x33, 0x39, 0xb1, 0x38, 0x02, 0x88, 0x6d, 0x53,
        0xfc, 0x05,
    ],
    [
        0xec, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff,
        0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff,
        0xff, 0x7f,
    ],
    [
        0x26, 0xe8, 0x95, 0x8f, 0xc2, 0xb2, 0x27, 0xb0, 0x45, 0xc3, 0xf4, 0x89, 0xf2, 0xef, 0x98,
        0xf0, 0xd5, 0xdf, 0xac, 0x05, 0xd3, 0xc6, 0x33, 0x39, 0xb1, 0x38, 0x02, 0x88, 0x6d, 0x53,
        0xfc, 0x85,
    ],
    [
        0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00,
        0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00,
        0x00, 0x00,
    ],
    [
        0xc7, 0x17, 0x6a, 0x70, 0x3d, 0x4d, 0xd8, 0x4f, 0xba, 0x3c, 0x0b, 0x76, 0x0d, 0x10, 0x67,
        0x0f, 0x2a, 0x20, 0x53, 0xfa, 0x2c, 0x39, 0xcc, 0xc6, 0x4e, 0xc7, 0xfd, 0x77, 0x92, 0xac,
        0x03, 0xfa,
    ],
];

/// The group order L, little-endian.
const L: [u8; 32] = [
    0xed, 0xd3, 0xf5, 0x5c, 0x1a, 0x63, 0x12, 0x58, 0xd6, 0x9c, 0xf7, 0xa2, 0xde, 0xf9, 0xde, 0x14,
    0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x10,
];

/// Whether `encoding` is the canonical encoding of its point: `y < p = 2^255 - 19`, and the
/// sign bit is clear when `x = 0` (`y = 1` or `y = p - 1`). Says nothing about whether the
/// point exists.
pub fn is_canonical_point(encoding: &[u8; 32]) -> bool {
    let sign = encoding[31] >> 7;
    let top = encoding[31] & 0x7f;
    let middle_all_ff = encoding[1..31].iter().all(|&b| b == 0xff);
    // y >= p: y = p + k for k in 0..19, i.e. bytes ed..ff, ff * 30, 7f.
    if top == 0x7f && middle_all_ff && encoding[0] >= 0xed {
        return false;
    }
    let y_is_one = encoding[0] == 1 && encoding[1..31].iter().all(|&b| b == 0) && top == 0;
    let y_is_minus_one = encoding[0] == 0xec && middle_all_ff && top == 0x7f;
    !(sign == 1 && (y_is_one || y_is_minus_one))
}

/// Whether `encoding` is one of the eight canonical encodings of a small-order point.
pub fn is_small_order(encoding: &[u8; 32]) -> bool {
    SMALL_ORDER_POINTS.iter().any(|p| p == encoding)
}

/// `S < L` for the little-endian scalar `s`.
fn is_reduced(s: &[u8]) -> bool {
    for i in (0..32).rev() {
        match s[i].cmp(&L[i]) {
            std::cmp::Ordering::Less => return true,
            std::cmp::Ordering::Greater => return false,
            std::cmp::Ordering::Equal => {}
        }
    }
    false
}

/// The encoding checks of the rule (everything but the group equation), cheapest first.
pub fn check_encodings(public: &[u8; 32], signature: &[u8; 64]) -> Result<(), SignatureError> {
    let mut r = [0u8; 32];
    r.copy_from_slice(&signature[..32]);
    if !is_reduced(&signature[32..]) {
        return Err(SignatureError::ScalarNotReduced);
    }
    if !is_canonical_point(public) {
        return Err(SignatureError::NonCanonicalKey);
    }
    if is_small_order(public) {
        return Err(SignatureError::SmallOrderKey);
    }
    if !is_canonical_point(&r) {
        return Err(SignatureError::NonCanonicalR);
    }
    if is_small_order(&r) {
        return Err(SignatureError::SmallOrderR);
    }
    Ok(())
}

/// Verifies `signature` over `message` under `public` by the rule of §3.
pub fn verify(
    public: &VerifyingKey,
    message: &[u8],
    signature: &[u8; 64],
) -> Result<(), SignatureError> {
    check_encodings(public.as_bytes(), signature)?;
    // With the encodings checked, this is `verify_strict` without decoding R again:
    // dalek's `verify` recomputes `R' = [S]B - [k]A` (cofactorless), compresses it and
    // compares the bytes with R, which fails for any R that does not decode.
    public
        .verify(message, &Signature::from_bytes(signature))
        .map_err(|_| SignatureError::Mismatch)
}

#[cfg(test)]
mod tests {
    use super::*;
    use curve25519_dalek::constants::EIGHT_TORSION;

    #[test]
    fn the_small_order_list_is_the_eight_torsion_subgroup() {
        for p in EIGHT_TORSION.iter() {
            assert!(is_small_order(&p.compress().to_bytes()));
        }
        let mut listed = SMALL_ORDER_POINTS.to_vec();
        listed.sort();
        listed.dedup();
        assert_eq!(listed.len(), 8);
    }

    #[test]
    fn canonical_encodings() {
        let mut p_plus_1 = [0xffu8; 32];
        p_plus_1[0] = 0xee;
        p_plus_1[31] = 0x7f;
        assert!(!is_canonical_point(&p_plus_1));
        let mut one_signed = [0u8; 32];
        one_signed[0] = 1;
        one_signed[31] = 0x80;
        assert!(!is_canonical_point(&one_signed));
        for p in SMALL_ORDER_POINTS {
            assert!(is_canonical_point(&p));
        }
        let mut l_minus_1 = L;
        l_minus_1[0] -= 1;
        assert!(is_reduced(&l_minus_1));
        assert!(!is_reduced(&L));
    }
}
