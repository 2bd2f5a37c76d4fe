//! Golden vectors for the signed form (`tests/data/vectors.json`), documented in
//! `schemas/README.md`. Deterministic: fixed seed, ids and times. Regenerate with
//! `AUTHLEDGER_BLESS=1 cargo test --test it vectors` only when the format changes on purpose
//! (it is versioned: a change means a new payload type).

use std::sync::Arc;

use base64::Engine as _;
use serde_json::json;

use authledger::ledger::envelope::{event_hash, pae, EventBody};
use authledger::ledger::sqlite_log::SqliteEventLog;
use authledger::ledger::verify::verify_log;
use authledger::ledger::{Actor, EventLog, KeyRing, RecordedEvent, Signer, PAYLOAD_TYPE};

const SEED: [u8; 32] = [0x42; 32];

/// Version 1 is `api_key.created`, version 2 `api_key.revoked` (with `reason`).
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
    };
    serde_json::to_vec(&b).expect("body")
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
        "invalid_second_event": [
            { "case": "altered body byte", "envelope": serde_json::to_string(&altered).expect("json"), "problem": "signature" },
            { "case": "signed by an unknown key", "envelope": text(&env_other), "problem": "unknown key" },
            { "case": "chain broken", "envelope": text(&env_chain), "problem": "chain" },
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
        };
        log.append(&signed, i as u64).await.expect("append");
    }
    let report = verify_log(log, ring, vec![]).await.expect("verify");
    assert!(report.ok && report.events == 2, "{report:?}");
}
