//! Invariant 7: an auditor verifies the log without trusting authledger. The independent
//! Python verifier (written from schemas/README.md alone) checks a real log, across a key
//! rotation, holding only the first public key; and rejects a tampered dump.

use std::process::Command;

use serde_json::Value;

use crate::harness::{args, run_cli};

fn verifier() -> std::path::PathBuf {
    std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("tools/verifier/verify.py")
}

fn python_verify(dump: &std::path::Path, trusted: &str) -> std::process::Output {
    Command::new("python3")
        .arg(verifier())
        .arg("--log")
        .arg(dump)
        .args(["--trusted-key", trusted])
        .output()
        .expect("python3 tools/verifier/verify.py")
}

#[test]
fn the_independent_verifier_accepts_a_real_log_and_rejects_a_tampered_one() {
    let dir = tempfile::tempdir().expect("dir");
    let d = dir.path().display().to_string();
    let run = |cmd: &[&str]| {
        let out = run_cli(&[args(&["--data-dir", &d]), args(cmd)].concat());
        assert!(
            out.status.success(),
            "{cmd:?}: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        out
    };
    run(&["bootstrap", "--workspace", "Acme"]);
    let ring: Value = serde_json::from_slice(&run(&["keys", "show"]).stdout).expect("ring");
    let first_key = ring["keys"][0]["public_key"]
        .as_str()
        .expect("pk")
        .to_string();
    run(&["keys", "rotate"]);
    run(&["bootstrap", "--workspace", "Beta"]);
    let dump = run(&["dump-log"]).stdout;
    let path = dir.path().join("log.jsonl");
    std::fs::write(&path, &dump).expect("write dump");
    assert_eq!(String::from_utf8_lossy(&dump).lines().count(), 5);

    let ok = python_verify(&path, &first_key);
    assert!(
        ok.status.success(),
        "independent verifier refused a real log: {}{}",
        String::from_utf8_lossy(&ok.stdout),
        String::from_utf8_lossy(&ok.stderr)
    );
    assert!(String::from_utf8_lossy(&ok.stdout).contains("ok: 5 events"));

    // Drop the rotation event: everything the new key signed becomes untrusted.
    let tampered: Vec<&str> = std::str::from_utf8(&dump).expect("utf8").lines().collect();
    let without_rotation = [tampered[0], tampered[1], tampered[3], tampered[4]].join("\n") + "\n";
    let bad = dir.path().join("bad.jsonl");
    std::fs::write(&bad, without_rotation).expect("write");
    let refused = python_verify(&bad, &first_key);
    assert_eq!(
        refused.status.code(),
        Some(1),
        "{}",
        String::from_utf8_lossy(&refused.stdout)
    );
}
