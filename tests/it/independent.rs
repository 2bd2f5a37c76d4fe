//! Invariant 7: an auditor verifies the log without trusting authledger. The independent
//! Python verifier (written from schemas/README.md alone) checks a real log, across a key
//! rotation, holding only the first public key; and rejects a tampered dump. It also checks
//! a log from the running service with refused (anonymous) requests, a rotation and
//! checkpoints, and catches what only §7a can: swapped or removed covered events and a
//! wrong checkpoint root re-signed with the real key.

use std::process::Command;

use serde_json::Value;

use std::time::Duration;

use authledger::ledger::envelope::open_envelope;
use authledger::ledger::{EventBody, KeyDir};

use crate::harness::{args, run_cli, Service};

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
    // Per bootstrap: workspace, admin key, console invite; the rotation between them.
    assert_eq!(String::from_utf8_lossy(&dump).lines().count(), 7);

    let ok = python_verify(&path, &first_key);
    assert!(
        ok.status.success(),
        "independent verifier refused a real log: {}{}",
        String::from_utf8_lossy(&ok.stdout),
        String::from_utf8_lossy(&ok.stderr)
    );
    assert!(String::from_utf8_lossy(&ok.stdout).contains("ok: 7 events"));

    // Drop the rotation event: everything the new key signed becomes untrusted.
    let tampered: Vec<&str> = std::str::from_utf8(&dump).expect("utf8").lines().collect();
    let without_rotation = [
        tampered[0],
        tampered[1],
        tampered[2],
        tampered[4],
        tampered[5],
        tampered[6],
    ]
    .join("\n")
        + "\n";
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

fn body_of_line(line: &Value) -> EventBody {
    open_envelope(line["envelope"].as_str().expect("envelope").as_bytes())
        .expect("opens")
        .body
}

fn write_lines(path: &std::path::Path, lines: &[Value]) {
    let text: String = lines.iter().map(|l| l.to_string() + "\n").collect();
    std::fs::write(path, text).expect("write dump");
}

async fn refused_requests(svc: &Service, n: usize) {
    let http = reqwest::Client::new();
    for i in 0..n {
        let r = http
            .get(svc.url("/v1/audit/events"))
            .bearer_auth(format!("alk_notakey{i}"))
            .send()
            .await
            .expect("request");
        assert_eq!(r.status(), reqwest::StatusCode::UNAUTHORIZED);
    }
}

/// Defect 5: the reference verifier on a real service log (refused anonymous requests, a
/// rotation, checkpoints), and §7a tampering that only checkpoints reveal.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_independent_verifier_checks_a_service_log_with_checkpoints() {
    let dir = tempfile::tempdir().expect("dir");
    let data = dir.path().join("data").display().to_string();
    let storage = args(&["--data-dir", &data]);
    let every_second = [("AUTHLEDGER_CHECKPOINT_SCHEDULE", "* * * * * *")];
    let cli = |cmd: &[&str]| {
        let out = run_cli(&[storage.clone(), args(cmd)].concat());
        assert!(
            out.status.success(),
            "{cmd:?}: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        out
    };
    let svc = Service::start(&storage, &every_second, dir.path()).await;
    let ring: Value = serde_json::from_slice(&cli(&["keys", "show"]).stdout).expect("ring");
    let first_key = ring["keys"][0]["public_key"]
        .as_str()
        .expect("pk")
        .to_string();
    refused_requests(&svc, 4).await;
    tokio::time::sleep(Duration::from_millis(2500)).await;
    drop(svc);
    cli(&["keys", "rotate"]);
    let svc = Service::start(&storage, &every_second, dir.path()).await;
    refused_requests(&svc, 3).await;
    tokio::time::sleep(Duration::from_millis(2500)).await;
    drop(svc);

    let dump = cli(&["dump-log"]).stdout;
    let lines: Vec<Value> = String::from_utf8_lossy(&dump)
        .lines()
        .map(|l| serde_json::from_str(l).expect("dump line"))
        .collect();
    let bodies: Vec<EventBody> = lines.iter().map(body_of_line).collect();
    let anonymous: Vec<usize> = (0..bodies.len())
        .filter(|&i| {
            bodies[i].actor.actor_type == authledger::ledger::ActorType::Anonymous
                && bodies[i].aggregate_version == 1
        })
        .collect();
    let checkpoints: Vec<usize> = (0..bodies.len())
        .filter(|&i| bodies[i].kind == "ledger.checkpoint")
        .collect();
    assert!(anonymous.len() >= 7, "{anonymous:?}");
    assert!(checkpoints.len() >= 2, "{checkpoints:?}");
    assert!(bodies.iter().any(|b| b.kind == "signing_key.rotated"));
    for (i, l) in lines.iter().enumerate() {
        assert_eq!(l["position"], i as u64 + 1);
        assert_eq!(l["aggregate_version"], bodies[i].aggregate_version);
        assert_eq!(l["event_id"], bodies[i].event_id.to_string());
    }

    let path = dir.path().join("log.jsonl");
    write_lines(&path, &lines);
    let ok = python_verify(&path, &first_key);
    let text = String::from_utf8_lossy(&ok.stdout).to_string();
    assert!(
        ok.status.success(),
        "refused a real service log: {text}{}",
        String::from_utf8_lossy(&ok.stderr)
    );
    assert!(
        text.contains(&format!("{} checkpoints verified", checkpoints.len())),
        "{text}"
    );

    // Covered by the first checkpoint: two refused requests (each the version 1 of its own
    // aggregate, so no chain links them).
    // (The first checkpoint may fire before the refusals are recorded: the first one that
    // covers two of them.)
    let covered_by = |cp: usize| {
        let size = bodies[cp].payload["tree_size"].as_u64().expect("size") as usize;
        let anon: Vec<usize> = anonymous.iter().copied().filter(|&i| i < size).collect();
        anon
    };
    let covered_anon = checkpoints
        .iter()
        .map(|&cp| covered_by(cp))
        .find(|anon| anon.len() >= 2)
        .unwrap_or_else(|| {
            panic!("no checkpoint covers two refusals: {checkpoints:?} {anonymous:?}")
        });
    let refuse = |name: &str, tampered: &[Value], words: &[&str]| {
        let p = dir.path().join(name);
        write_lines(&p, tampered);
        let out = python_verify(&p, &first_key);
        let text = String::from_utf8_lossy(&out.stdout).to_string();
        assert_eq!(out.status.code(), Some(1), "{name} accepted: {text}");
        assert!(words.iter().any(|w| text.contains(w)), "{name}: {text}");
    };
    // 1. Two covered events swapped (positions kept).
    let mut swapped = lines.clone();
    let (a, b) = (covered_anon[0], covered_anon[1]);
    for field in ["subject", "aggregate_version", "event_id", "envelope"] {
        let t = swapped[a][field].clone();
        swapped[a][field] = swapped[b][field].clone();
        swapped[b][field] = t;
    }
    refuse("swapped.jsonl", &swapped, &["merkle_root"]);
    // 2. A covered event removed and the rest renumbered.
    let mut removed = lines.clone();
    removed.remove(covered_anon[0]);
    for (i, l) in removed.iter_mut().enumerate() {
        l["position"] = Value::from(i as u64 + 1);
    }
    refuse("renumbered.jsonl", &removed, &["merkle_root", "tree_size"]);
    // 3. The last checkpoint's root replaced and re-signed with the real (active) key.
    let signer = KeyDir::new(dir.path().join("data/keys"))
        .load_signer(false)
        .expect("active key");
    let last = *checkpoints.last().expect("checkpoint");
    let mut body: Value = serde_json::to_value(&bodies[last]).expect("body");
    body["payload"]["merkle_root"] = Value::from("00".repeat(32));
    body["key_id"] = Value::from(signer.key_id());
    let sealed = signer
        .seal(&serde_json::to_vec(&body).expect("json"))
        .expect("seal");
    let mut wrong_root = lines.clone();
    wrong_root[last]["envelope"] = Value::from(String::from_utf8(sealed.to_vec()).expect("utf8"));
    refuse("wrong-root.jsonl", &wrong_root, &["merkle_root"]);
}
