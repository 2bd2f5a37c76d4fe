//! Golden vectors for the signed form (`tests/data/vectors.json`), documented in
//! `schemas/README.md`. Deterministic: fixed seed, ids and times. Regenerate with
//! `AUTHLEDGER_BLESS=1 cargo test --test it vectors` only when the format changes on purpose
//! (it is versioned: a change means a new payload type).

use std::sync::Arc;

use base64::Engine as _;
use serde_json::json;

use authledger::ledger::envelope::{encode_envelope, event_hash, pae, EventBody};
use authledger::ledger::signature::{self, SignatureError};
use authledger::ledger::sqlite_log::SqliteEventLog;
use authledger::ledger::verify::{verify_log, verify_log_with, VerifyOptions};
use authledger::ledger::{Actor, EventLog, KeyRing, RecordedEvent, Signer, PAYLOAD_TYPE};

const SEED: [u8; 32] = [0x42; 32];

/// The trace id version 2 carries (the optional `trace_id` of §1).
const TRACE_ID: &str = "4bf92f3577b34da6a3ce929d0e0e4736";

/// Version 1 is `api_key.created`, version 2 `api_key.revoked` (with `reason`, and appended
/// by a traced request: with `trace_id`).
fn body(
    id: &str,
    version: u64,
    prev_hash: Option<String>,
    reason: &str,
    signer: &Signer,
) -> Vec<u8> {
    let (kind, payload) = if version == 1 {
        (
            "api_key.created",
            json!({
                "name": "ci", "role": "developer", "key_prefix": "alk_Vectors1",
                "key_hash": format!("sha256:{}", "5e".repeat(32)), "expires_at": null
            }),
        )
    } else {
        ("api_key.revoked", json!({ "reason": reason }))
    };
    let b = EventBody {
        event_id: id.parse().expect("uuid"),
        workspace_id: "ws-vectors".into(),
        aggregate_type: "api_key".into(),
        aggregate_id: "key-1".into(),
        aggregate_version: version,
        kind: kind.into(),
        schema_version: 1,
        occurred_at: time::macros::datetime!(2026-01-02 03:04:05 UTC),
        actor: Actor::system("vectors"),
        payload,
        prev_hash,
        key_id: signer.key_id().to_string(),
        trace_id: (version == 2).then(|| TRACE_ID.to_string()),
    };
    serde_json::to_vec(&b).expect("body")
}

/// Signs `message` for the key with `seed` but with a chosen nonce point: `R` is encoded as
/// `r_bytes` and stands for `[r]B` (plus whatever else the encoding adds), `S = r + k·a`.
/// `public` overrides the public key bytes hashed into `k` (then `a` is the caller's say).
pub(crate) mod craft {
    use curve25519_dalek::constants::{ED25519_BASEPOINT_POINT, EIGHT_TORSION};
    use curve25519_dalek::scalar::Scalar;
    use sha2::{Digest, Sha512};

    pub fn secret(seed: &[u8; 32]) -> Scalar {
        let h = Sha512::digest(seed);
        let mut a = [0u8; 32];
        a.copy_from_slice(&h[..32]);
        a[0] &= 248;
        a[31] &= 127;
        a[31] |= 64;
        Scalar::from_bytes_mod_order(a)
    }

    pub fn nonce(i: u8) -> Scalar {
        let mut wide = [0u8; 64];
        wide.copy_from_slice(&Sha512::digest(
            [b"authledger vector nonce ".as_slice(), &[i]].concat(),
        ));
        Scalar::from_bytes_mod_order_wide(&wide)
    }

    pub fn challenge(r: &[u8; 32], public: &[u8; 32], message: &[u8]) -> Scalar {
        let mut wide = [0u8; 64];
        wide.copy_from_slice(&Sha512::digest([r.as_slice(), public, message].concat()));
        Scalar::from_bytes_mod_order_wide(&wide)
    }

    /// `(R bytes, S)` with `S = r + k·a`.
    pub fn sign(
        r_bytes: [u8; 32],
        r: Scalar,
        a: Scalar,
        public: &[u8; 32],
        message: &[u8],
    ) -> [u8; 64] {
        let k = challenge(&r_bytes, public, message);
        let s = r + k * a;
        let mut sig = [0u8; 64];
        sig[..32].copy_from_slice(&r_bytes);
        sig[32..].copy_from_slice(s.as_bytes());
        sig
    }

    pub fn base(r: Scalar) -> [u8; 32] {
        (ED25519_BASEPOINT_POINT * r).compress().to_bytes()
    }

    pub fn torsion(i: usize) -> [u8; 32] {
        EIGHT_TORSION[i].compress().to_bytes()
    }

    pub fn base_plus_torsion(r: Scalar, i: usize) -> [u8; 32] {
        (ED25519_BASEPOINT_POINT * r + EIGHT_TORSION[i])
            .compress()
            .to_bytes()
    }

    /// Little-endian `x + y` over 32 bytes (no reduction).
    pub fn add_le(x: &[u8], y: &[u8]) -> [u8; 32] {
        let mut out = [0u8; 32];
        let mut carry = 0u16;
        for i in 0..32 {
            let v = x[i] as u16 + y[i] as u16 + carry;
            out[i] = v as u8;
            carry = v >> 8;
        }
        out
    }
}

/// The group order L, little-endian.
const L_BYTES: [u8; 32] = [
    0xed, 0xd3, 0xf5, 0x5c, 0x1a, 0x63, 0x12, 0x58, 0xd6, 0x9c, 0xf7, 0xa2, 0xde, 0xf9, 0xde, 0x14,
    0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0x10,
];

fn rule_name(e: Option<SignatureError>) -> &'static str {
    match e {
        None => "valid",
        Some(SignatureError::ScalarNotReduced) => "S >= L",
        Some(SignatureError::NonCanonicalKey) => "non-canonical public key",
        Some(SignatureError::SmallOrderKey) => "small-order public key",
        Some(SignatureError::NonCanonicalR) => "non-canonical R",
        Some(SignatureError::SmallOrderR) => "small-order R",
        Some(SignatureError::Mismatch) => "equation",
    }
}

/// §3's rule case by case: every one is a signature some lenient Ed25519 check accepts
/// (cofactored, or decoding leniently, or reducing S), except the `equation` ones.
fn signature_cases(signer: &Signer, message: &[u8]) -> Vec<serde_json::Value> {
    use base64::engine::general_purpose::STANDARD as B64;
    let a = craft::secret(&SEED);
    let public = signer.public_key().to_bytes();
    let zero = curve25519_dalek::scalar::Scalar::ZERO;
    let r = craft::nonce(1);
    let valid = craft::sign(craft::base(r), r, a, &public, message);
    let mut p_plus_1 = [0xffu8; 32];
    p_plus_1[0] = 0xee;
    p_plus_1[31] = 0x7f;
    let mut one_signed = [0u8; 32];
    one_signed[0] = 1;
    one_signed[31] = 0x80;
    let mut minus_one_signed = [0xffu8; 32];
    minus_one_signed[0] = 0xec;
    let mut cases: Vec<(String, [u8; 32], [u8; 64], &str)> = vec![
        ("valid signature".into(), public, valid, "valid"),
        (
            "non-canonical R: y = p + 1 (the identity)".into(),
            public,
            craft::sign(p_plus_1, zero, a, &public, message),
            "non-canonical R",
        ),
        (
            "non-canonical R: x = 0 with the sign bit set (y = 1)".into(),
            public,
            craft::sign(one_signed, zero, a, &public, message),
            "non-canonical R",
        ),
        (
            "non-canonical R: x = 0 with the sign bit set (y = p - 1)".into(),
            public,
            craft::sign(minus_one_signed, zero, a, &public, message),
            "non-canonical R",
        ),
    ];
    for i in 0..8 {
        cases.push((
            format!("small-order R #{i}: {}", hex::encode(craft::torsion(i))),
            public,
            craft::sign(craft::torsion(i), zero, a, &public, message),
            "small-order R",
        ));
    }
    cases.push((
        "R with a small-order component (cofactored checks accept it)".into(),
        public,
        craft::sign(craft::base_plus_torsion(r, 1), r, a, &public, message),
        "equation",
    ));
    // Keys whose discrete log is 0 (the identity): S = r satisfies the equation.
    let identity = craft::torsion(0);
    cases.push((
        "non-canonical public key: y = p + 1 (the identity)".into(),
        p_plus_1,
        craft::sign(craft::base(r), r, zero, &p_plus_1, message),
        "non-canonical public key",
    ));
    cases.push((
        "small-order public key: the identity".into(),
        identity,
        craft::sign(craft::base(r), r, zero, &identity, message),
        "small-order public key",
    ));
    cases.push((
        "small-order public key: a point of order 8".into(),
        craft::torsion(1),
        craft::sign(craft::base(r), r, zero, &craft::torsion(1), message),
        "small-order public key",
    ));
    let mut s_plus_l = valid;
    s_plus_l[32..].copy_from_slice(&craft::add_le(&valid[32..], &L_BYTES));
    cases.push((
        "S >= L: S + L of a valid signature".into(),
        public,
        s_plus_l,
        "S >= L",
    ));
    let mut s_is_l = valid;
    s_is_l[32..].copy_from_slice(&L_BYTES);
    cases.push(("S = L".into(), public, s_is_l, "S >= L"));
    let mut s_l_minus_1 = valid;
    let mut l_minus_1 = L_BYTES;
    l_minus_1[0] -= 1;
    s_l_minus_1[32..].copy_from_slice(&l_minus_1);
    cases.push((
        "S = L - 1 is in range (only the equation decides)".into(),
        public,
        s_l_minus_1,
        "equation",
    ));
    cases
        .into_iter()
        .map(|(case, key, sig, rule)| {
            json!({
                "case": case,
                "public_key": B64.encode(key),
                "message_hex": hex::encode(message),
                "signature": B64.encode(sig),
                "valid": rule == "valid",
                "rule": rule,
            })
        })
        .collect()
}

fn vectors() -> serde_json::Value {
    let signer = Signer::from_seed(&SEED);
    let other = Signer::from_seed(&[0x07; 32]);
    let b1 = body("01900000-0000-7000-8000-000000000001", 1, None, "", &signer);
    let env1 = signer.seal(&b1).expect("seal");
    let h1 = event_hash(&env1);
    let b2 = body(
        "01900000-0000-7000-8000-000000000002",
        2,
        Some(h1.clone()),
        "leaked",
        &signer,
    );
    let env2 = signer.seal(&b2).expect("seal");
    // Invalid: one body byte altered after signing (signature stays).
    let mut altered: serde_json::Value = serde_json::from_slice(&env2).expect("json");
    let mut b2_alt = b2.clone();
    let pos = b2_alt
        .windows(6)
        .position(|w| w == b"leaked")
        .expect("reason in body");
    b2_alt[pos] = b'a';
    altered["payload"] = json!(base64::engine::general_purpose::STANDARD.encode(&b2_alt));
    // Invalid: signed by a key nobody trusts.
    let b2_other = body(
        "01900000-0000-7000-8000-000000000002",
        2,
        Some(h1.clone()),
        "leaked",
        &other,
    );
    let env_other = other.seal(&b2_other).expect("seal");
    // Invalid: chain broken (prev_hash of nothing in particular), validly signed.
    let b2_chain = body(
        "01900000-0000-7000-8000-000000000002",
        2,
        Some(format!("sha256:{}", "0".repeat(64))),
        "leaked",
        &signer,
    );
    let env_chain = signer.seal(&b2_chain).expect("seal");
    // Invalid (section 2): the payload's base64 without its padding, validly signed. The
    // reason is chosen so that the body's length needs padding.
    let (b2_pad, env2_pad) = ["leaked", "leakedx"]
        .iter()
        .map(|r| {
            let b = body(
                "01900000-0000-7000-8000-000000000002",
                2,
                Some(h1.clone()),
                r,
                &signer,
            );
            let e = signer.seal(&b).expect("seal");
            (b, e)
        })
        .find(|(b, _)| b.len() % 3 != 0)
        .expect("a padded body");
    let mut unpadded: serde_json::Value = serde_json::from_slice(&env2_pad).expect("json");
    unpadded["payload"] = json!(base64::engine::general_purpose::STANDARD_NO_PAD.encode(&b2_pad));
    // Invalid (section 2): a lone surrogate escape in the signed body.
    let b2_surrogate = String::from_utf8(b2.clone())
        .expect("utf8")
        .replace("\"reason\":\"leaked\"", "\"reason\":\"\\ud800\"");
    assert!(b2_surrogate.contains("ud800"));
    let env_surrogate = signer.seal(b2_surrogate.as_bytes()).expect("seal");
    // Invalid (section 1): a trace id not in lowercase hex, validly signed.
    let b2_trace = String::from_utf8(b2.clone())
        .expect("utf8")
        .replace(TRACE_ID, &TRACE_ID.to_uppercase());
    assert!(b2_trace.contains(&TRACE_ID.to_uppercase()));
    let env_trace = signer.seal(b2_trace.as_bytes()).expect("seal");
    let text = |b: &[u8]| String::from_utf8(b.to_vec()).expect("utf8");
    json!({
        "description": "authledger v1 signed event vectors; see schemas/README.md",
        "payload_type": PAYLOAD_TYPE,
        "trusted_keys": { signer.key_id(): base64::engine::general_purpose::STANDARD.encode(signer.public_key().as_bytes()) },
        "test_seed_hex": hex::encode(SEED),
        "pae_example": {
            "payload_type": PAYLOAD_TYPE,
            "body": text(&b1),
            "pae_hex": hex::encode(pae(PAYLOAD_TYPE, &b1)),
        },
        "valid_log": [
            { "position": 1, "subject": "ledger.ws-vectors.api_key.key-1", "envelope": text(&env1), "hash": h1 },
            { "position": 2, "subject": "ledger.ws-vectors.api_key.key-1", "envelope": text(&env2), "hash": event_hash(&env2) },
        ],
        "signature_cases": signature_cases(&signer, &pae(PAYLOAD_TYPE, &b1)),
        "invalid_second_event": [
            { "case": "altered body byte", "envelope": serde_json::to_string(&altered).expect("json"), "problem": "signature" },
            { "case": "signed by an unknown key", "envelope": text(&env_other), "problem": "unknown key" },
            { "case": "chain broken", "envelope": text(&env_chain), "problem": "chain" },
            { "case": "payload base64 without padding", "envelope": serde_json::to_string(&unpadded).expect("json"), "problem": "base64" },
            { "case": "byte-order mark before the envelope", "envelope": format!("\u{feff}{}", text(&env2)), "problem": "JSON" },
            { "case": "lone surrogate in the body", "envelope": text(&env_surrogate), "problem": "body" },
            { "case": "trace_id not lowercase hex", "envelope": text(&env_trace), "problem": "trace_id" },
        ],
    })
}

fn path() -> std::path::PathBuf {
    std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/data/vectors.json")
}

#[test]
fn golden_vectors_match_the_code() {
    let generated = serde_json::to_string_pretty(&vectors()).expect("json") + "\n";
    if std::env::var("AUTHLEDGER_BLESS").is_ok() {
        std::fs::create_dir_all(path().parent().expect("parent")).expect("mkdir");
        std::fs::write(path(), &generated).expect("write vectors");
    }
    let stored =
        std::fs::read_to_string(path()).expect("tests/data/vectors.json (bless to create)");
    assert_eq!(stored, generated, "the signed form changed: vectors differ");
}

/// The vectors verify (and fail) through the real verifier, so the file documents
/// behaviour, not just bytes.
#[tokio::test]
async fn vectors_pass_and_fail_the_verifier_as_labelled() {
    let v: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(path()).expect("vectors")).expect("json");
    let mut ring = KeyRing::default();
    for (_, pk) in v["trusted_keys"].as_object().expect("keys") {
        ring.add_base64(pk.as_str().expect("str"), "vector key")
            .expect("key");
    }
    let key = authledger::ledger::AggregateKey::new("ws-vectors", "api_key", "key-1").expect("key");
    let rec = |pos: u64, env: &str| RecordedEvent {
        position: pos,
        key: key.clone(),
        version: None,
        envelope: bytes::Bytes::from(env.as_bytes().to_vec()),
        sealed: Default::default(),
    };
    let valid: Vec<RecordedEvent> = v["valid_log"]
        .as_array()
        .expect("valid")
        .iter()
        .map(|e| {
            rec(
                e["position"].as_u64().expect("pos"),
                e["envelope"].as_str().expect("env"),
            )
        })
        .collect();
    let mut verifier = authledger::ledger::verify::Verifier::new(ring.clone());
    assert_eq!(verifier.check_batch(&valid), Ok(()));
    for case in v["invalid_second_event"].as_array().expect("invalid") {
        let mut verifier = authledger::ledger::verify::Verifier::new(ring.clone());
        let log = vec![
            valid[0].clone(),
            rec(2, case["envelope"].as_str().expect("env")),
        ];
        let failure = verifier.check_batch(&log).expect_err("must fail");
        assert_eq!(failure.position, 2);
        let problem = case["problem"].as_str().expect("problem");
        assert!(
            failure.problem.contains(problem),
            "{}: {}",
            case["case"],
            failure.problem
        );
    }
    // And through an actual log file + verify_log.
    let dir = tempfile::tempdir().expect("dir");
    let log: Arc<dyn EventLog> = Arc::new(
        SqliteEventLog::open(&dir.path().join("l.db"))
            .await
            .expect("open"),
    );
    for (i, r) in valid.iter().enumerate() {
        let signed = authledger::ledger::SignedEvent {
            key: key.clone(),
            version: i as u64 + 1,
            event_id: authledger::ledger::envelope::open_envelope(&r.envelope)
                .expect("open")
                .body
                .event_id,
            envelope: r.envelope.clone(),
            sealed: Default::default(),
        };
        log.append(&signed, i as u64).await.expect("append");
    }
    let report = verify_log(log, ring, vec![]).await.expect("verify");
    assert!(report.ok && report.events == 2, "{report:?}");
}

fn vectors_file() -> serde_json::Value {
    serde_json::from_str(&std::fs::read_to_string(path()).expect("vectors")).expect("json")
}

/// §3: the Rust rule gives each signature case its labelled verdict and reason, and both
/// Python verifiers give the same verdicts.
#[test]
fn signature_cases_agree_in_all_three_verifiers() {
    use base64::engine::general_purpose::STANDARD as B64;
    let v = vectors_file();
    let cases = v["signature_cases"].as_array().expect("signature_cases");
    assert!(cases.len() >= 17, "{}", cases.len());
    for case in cases {
        let key: [u8; 32] = B64
            .decode(case["public_key"].as_str().expect("key"))
            .expect("b64")
            .try_into()
            .expect("32");
        let sig: [u8; 64] = B64
            .decode(case["signature"].as_str().expect("sig"))
            .expect("b64")
            .try_into()
            .expect("64");
        let message = hex::decode(case["message_hex"].as_str().expect("msg")).expect("hex");
        let got = match ed25519_dalek::VerifyingKey::from_bytes(&key) {
            Ok(k) => signature::verify(&k, &message, &sig).err(),
            // A key that does not decode at all is refused before any signature.
            Err(_) => signature::check_encodings(&key, &sig)
                .err()
                .or(Some(SignatureError::Mismatch)),
        };
        assert_eq!(
            rule_name(got),
            case["rule"].as_str().expect("rule"),
            "{}",
            case["case"]
        );
    }
    let root = std::path::Path::new(env!("CARGO_MANIFEST_DIR"));
    for (what, out) in [
        (
            "verify.py",
            std::process::Command::new("python3")
                .arg(root.join("tools/verifier/verify.py"))
                .arg("--vectors")
                .arg(path())
                .output()
                .expect("python3"),
        ),
        (
            "verify-export",
            std::process::Command::new("python3")
                .arg(root.join("tools/verify-export"))
                .arg("--signature-vectors")
                .arg(path())
                .output()
                .expect("python3"),
        ),
    ] {
        let text = String::from_utf8_lossy(&out.stdout);
        assert!(
            out.status.success(),
            "{what}:\n{text}{}",
            String::from_utf8_lossy(&out.stderr)
        );
        for case in cases {
            let name = case["case"].as_str().expect("case");
            assert!(
                text.contains(&format!("PASS: signature case {name:?}").replace('"', "'")),
                "{what} did not pass {name}:\n{text}"
            );
        }
    }
}

/// One event per aggregate: `api_key.revoked` of `key-<i>`, signed by `sig(pae)`.
fn single_event(
    i: u64,
    signer: &Signer,
    sig: impl Fn(&[u8]) -> [u8; 64],
) -> authledger::ledger::SignedEvent {
    let b = EventBody {
        event_id: format!("01900000-0000-7000-8000-{i:012x}")
            .parse()
            .expect("uuid"),
        workspace_id: "ws-vectors".into(),
        aggregate_type: "api_key".into(),
        aggregate_id: format!("key-{i}"),
        aggregate_version: 1,
        kind: "api_key.revoked".into(),
        schema_version: 1,
        occurred_at: time::macros::datetime!(2026-01-02 03:04:05 UTC),
        actor: Actor::system("vectors"),
        payload: json!({ "reason": "threads" }),
        prev_hash: None,
        key_id: signer.key_id().to_string(),
        trace_id: None,
    };
    let bytes = serde_json::to_vec(&b).expect("body");
    let envelope = encode_envelope(&bytes, signer.key_id(), &sig(&pae(PAYLOAD_TYPE, &bytes)))
        .expect("envelope");
    authledger::ledger::SignedEvent {
        key: authledger::ledger::AggregateKey::new("ws-vectors", "api_key", format!("key-{i}"))
            .expect("key"),
        version: 1,
        event_id: b.event_id,
        envelope,
        sealed: Default::default(),
    }
}

/// Defect 1: the verdict and the first bad position do not depend on how many threads
/// check signatures or how the log is paged. Positions 150 (R with a small-order
/// component) and 200 (small-order R) carry signatures a cofactored batch accepts.
#[tokio::test]
async fn the_verdict_does_not_depend_on_threads_or_chunking() {
    use ed25519_dalek::Signer as _;
    let signer = Signer::from_seed(&SEED);
    let signing = ed25519_dalek::SigningKey::from_bytes(&SEED);
    let a = craft::secret(&SEED);
    let public = signer.public_key().to_bytes();
    let dir = tempfile::tempdir().expect("dir");
    let log: Arc<dyn EventLog> = Arc::new(
        SqliteEventLog::open(&dir.path().join("l.db"))
            .await
            .expect("open"),
    );
    for i in 1..=300u64 {
        let event = single_event(i, &signer, |m| match i {
            150 => {
                let r = craft::nonce(2);
                craft::sign(craft::base_plus_torsion(r, 3), r, a, &public, m)
            }
            200 => craft::sign(
                craft::torsion(5),
                curve25519_dalek::scalar::Scalar::ZERO,
                a,
                &public,
                m,
            ),
            _ => signing.sign(m).to_bytes(),
        });
        log.append(&event, 0).await.expect("append");
    }
    let mut ring = KeyRing::default();
    ring.insert(signer.public_key());
    let mut verdicts = Vec::new();
    for (threads, page) in [(1, 4096), (1, 7), (2, 64), (4, 4096), (8, 1), (16, 150)] {
        let options = VerifyOptions {
            threads: Some(threads),
            page: Some(page),
            trust: None,
        };
        let report = verify_log_with(log.clone(), ring.clone(), vec![], &options)
            .await
            .expect("verify");
        let failure = report.failure.expect("must fail");
        verdicts.push((report.ok, failure.position, failure.problem));
    }
    assert_eq!(verdicts[0].1, 150, "{:?}", verdicts[0]);
    assert!(!verdicts[0].0);
    for v in &verdicts {
        assert_eq!(v, &verdicts[0]);
    }
}

/// The service's rule (`signature::verify`, the path `authledger verify` takes) and
/// ed25519-dalek's `verify_strict` give the same verdict for every canonical key: on valid
/// signatures, on any one bit flipped, on `R + T` for each 8-torsion point `T`, and under
/// mixed-order keys `[a]B + T` (which the rule does not refuse by themselves).
mod agrees_with_verify_strict {
    use super::craft;
    use authledger::ledger::signature;
    use curve25519_dalek::constants::{ED25519_BASEPOINT_POINT, EIGHT_TORSION};
    use curve25519_dalek::scalar::Scalar;
    use ed25519_dalek::{Signature, VerifyingKey};
    use proptest::prelude::*;

    /// Both verdicts for the canonical key `public` and `sig` over `message`: the rule's,
    /// then `verify_strict`'s.
    fn verdicts(public: &[u8; 32], message: &[u8], sig: &[u8; 64]) -> (bool, bool) {
        assert!(signature::is_canonical_point(public));
        let key = VerifyingKey::from_bytes(public).expect("a curve point");
        (
            signature::verify(&key, message, sig).is_ok(),
            key.verify_strict(message, &Signature::from_bytes(sig))
                .is_ok(),
        )
    }

    fn scalar(bytes: &[u8; 64]) -> Scalar {
        Scalar::from_bytes_mod_order_wide(bytes)
    }

    fn key(a: Scalar, torsion: usize) -> [u8; 32] {
        (ED25519_BASEPOINT_POINT * a + EIGHT_TORSION[torsion])
            .compress()
            .to_bytes()
    }

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(256))]

        #[test]
        fn valid_and_bit_flipped(
            a in any::<[u8; 32]>(),
            r in prop::array::uniform32(any::<u8>()).prop_map(|h| {
                let mut w = [0u8; 64];
                w[..32].copy_from_slice(&h);
                w[32..].copy_from_slice(&h);
                w
            }),
            message in prop::collection::vec(any::<u8>(), 0..300),
            bit in 0usize..512,
        ) {
            let a = craft::secret(&a);
            let r = scalar(&r);
            let public = craft::base(a);
            let sig = craft::sign(craft::base(r), r, a, &public, &message);
            prop_assert_eq!(verdicts(&public, &message, &sig), (true, true));
            let mut flipped = sig;
            flipped[bit / 8] ^= 1 << (bit % 8);
            let (ours, strict) = verdicts(&public, &message, &flipped);
            prop_assert_eq!(ours, strict, "bit {}", bit);
            prop_assert!(!ours, "bit {} flipped and still accepted", bit);
        }

        #[test]
        fn r_plus_torsion_and_mixed_order_keys(
            seed in any::<[u8; 32]>(),
            nonce in any::<u8>(),
            message in prop::collection::vec(any::<u8>(), 0..300),
            key_torsion in 0usize..8,
        ) {
            let a = craft::secret(&seed);
            let r = craft::nonce(nonce);
            let public = key(a, key_torsion);
            for t in 0..8 {
                let sig = craft::sign(craft::base_plus_torsion(r, t), r, a, &public, &message);
                let (ours, strict) = verdicts(&public, &message, &sig);
                prop_assert_eq!(ours, strict, "key torsion {}, R torsion {}", key_torsion, t);
                if key_torsion == 0 {
                    // [S]B - [k]A = [r]B, which is R only without a torsion component.
                    prop_assert_eq!(ours, t == 0, "R torsion {}", t);
                }
            }
        }
    }

    /// Every small-order and non-canonical case of §3 under a canonical key, and `S + L`.
    #[test]
    fn small_order_and_non_canonical_cases() {
        let message = b"DSSEv1 small order";
        let a = craft::secret(&[9; 32]);
        let r = craft::nonce(9);
        let zero = Scalar::ZERO;
        let mut keys: Vec<[u8; 32]> = (0..8).map(|t| key(a, t)).collect();
        keys.extend((0..8).map(craft::torsion));
        let mut r_encodings: Vec<([u8; 32], Scalar)> =
            (0..8).map(|t| (craft::torsion(t), zero)).collect();
        let mut p_plus_1 = [0xffu8; 32];
        p_plus_1[0] = 0xee;
        p_plus_1[31] = 0x7f;
        let mut one_signed = [0u8; 32];
        one_signed[0] = 1;
        one_signed[31] = 0x80;
        let mut minus_one_signed = [0xffu8; 32];
        minus_one_signed[0] = 0xec;
        for e in [p_plus_1, one_signed, minus_one_signed] {
            r_encodings.push((e, zero));
        }
        r_encodings.push((craft::base(r), r));
        let mut checked = 0;
        for public in &keys {
            for (r_bytes, r) in &r_encodings {
                let sig = craft::sign(*r_bytes, *r, a, public, message);
                let mut unreduced = sig;
                unreduced[32..].copy_from_slice(&craft::add_le(&sig[32..], &super::L_BYTES));
                for s in [sig, unreduced] {
                    let (ours, strict) = verdicts(public, message, &s);
                    assert_eq!(
                        ours,
                        strict,
                        "key {} R {}",
                        hex::encode(public),
                        hex::encode(r_bytes)
                    );
                    checked += 1;
                }
            }
        }
        assert_eq!(checked, 16 * 12 * 2);
    }
}
