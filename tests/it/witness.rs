//! Trust from outside the data dir (`schemas/README.md` §7c): checkpoint notes in the C2SP
//! format, `authledger witness` as its own process against a real service, and history
//! rewritten with the real signing key, which `verify` alone cannot see but the witness and
//! `verify --trust-checkpoint` catch.

use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::Arc;
use std::time::Duration;

use base64::engine::general_purpose::STANDARD as B64;
use base64::Engine as _;
use ed25519_dalek::SigningKey;
use reqwest::{Client, Method, StatusCode};
use serde_json::{json, Value};
use sha2::{Digest, Sha256};

use authledger::audit::merkle;
use authledger::domain::{Event, WorkspaceCreated};
use authledger::ledger::note::{self, Checkpoint, Note, WitnessKey};
use authledger::ledger::sqlite_log::SqliteEventLog;
use authledger::ledger::{Actor, AggregateKey, KeyDir, Signer};

use crate::harness::{args, bin, eventually, ledger, run_cli, Service};
use crate::support::{data_dir, Deployment, Stack, NO_RATE_LIMIT};

// ---------- the golden vector ----------

fn vector() -> Value {
    let path = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/data/checkpoint-note.json");
    serde_json::from_str(&std::fs::read_to_string(path).expect("vector")).expect("json")
}

fn seed(v: &Value) -> [u8; 32] {
    hex::decode(v.as_str().expect("seed"))
        .expect("hex")
        .try_into()
        .expect("32 bytes")
}

#[test]
fn the_checkpoint_note_vector_is_reproduced_byte_for_byte() {
    let v = vector();
    let log = Signer::from_seed(&seed(&v["log_key"]["seed_hex"]));
    assert_eq!(
        B64.encode(log.public_key().as_bytes()),
        v["log_key"]["public_key"]
    );
    let cp = Checkpoint {
        origin: v["checkpoint"]["origin"].as_str().expect("origin").into(),
        tree_size: v["checkpoint"]["tree_size"].as_u64().expect("size"),
        root: merkle::from_hex(v["checkpoint"]["root_hex"].as_str().expect("root")).expect("hex"),
    };
    assert_eq!(cp.body(), v["checkpoint"]["body"]);
    assert_eq!(
        hex::encode(note::note_key_id(&cp.origin, &log.public_key())),
        v["log_key"]["key_id_hex"]
    );
    let signed = note::signed_checkpoint(&cp, &log.public_key(), log.sign_note(&cp.body()));
    assert_eq!(signed.text(), v["note"]);
    let parsed = Note::parse(v["note"].as_str().expect("note")).expect("parse");
    assert_eq!(parsed.checkpoint().expect("checkpoint"), cp);
    let public = log.public_key();
    assert!(parsed.verify_log_signature(&cp.origin, [&public]).is_ok());

    let w = &v["witness"];
    let wkey = SigningKey::from_bytes(&seed(&w["seed_hex"]));
    let witness = WitnessKey::parse(w["vkey"].as_str().expect("vkey")).expect("vkey");
    assert_eq!(witness.public, wkey.verifying_key());
    assert_eq!(witness.name, w["name"]);
    assert_eq!(witness.vkey(), w["vkey"]);
    let ts = w["timestamp"].as_u64().expect("ts");
    assert_eq!(
        note::cosignature_message(&cp.body(), ts),
        w["signed_message"].as_str().expect("msg").as_bytes()
    );
    let line = note::cosign(&cp.body(), &witness.name, &wkey, ts);
    let mut cosigned = signed.clone();
    cosigned.signatures.push(line);
    assert_eq!(cosigned.text(), w["cosigned_note"]);
    let parsed = Note::parse(w["cosigned_note"].as_str().expect("note")).expect("parse");
    assert_eq!(parsed.verify_cosignature(&witness), Ok(ts));
    assert!(parsed.verify_log_signature(&cp.origin, [&public]).is_ok());

    for bad in v["invalid_notes"].as_array().expect("invalid") {
        let text = bad["note"].as_str().expect("note");
        let accepted = Note::parse(text)
            .ok()
            .filter(|n| n.checkpoint().is_ok())
            .is_some_and(|n| n.verify_log_signature(&cp.origin, [&public]).is_ok());
        assert!(!accepted, "accepted: {}", bad["why"]);
    }
}

// ---------- a witness against a real service ----------

const ENVS: &[(&str, &str)] = &[
    ("AUTHLEDGER_CHECKPOINT_SCHEDULE", "* * * * * *"),
    ("AUTHLEDGER_REFRESH_SCHEDULE", "off"),
];

fn envs() -> Vec<(&'static str, &'static str)> {
    [ENVS, NO_RATE_LIMIT].concat()
}

/// Runs `authledger witness --once` as its own process: (exit code, stderr).
fn witness_once(svc: &Service, dir: &Path, api_key: &str) -> (i32, String) {
    witness_once_at(&svc.url(""), dir, api_key)
}

/// `witness_once` against the service at `url`.
pub(crate) fn witness_once_at(url: &str, dir: &Path, api_key: &str) -> (i32, String) {
    let out = Command::new(bin())
        .args(["witness", "--key-dir"])
        .arg(dir)
        .args(["--log-url", url, "--once"])
        .env("AUTHLEDGER_WITNESS_API_KEY", api_key)
        .env("RUST_LOG", "info")
        .output()
        .expect("run witness");
    (
        out.status.code().unwrap_or(-1),
        String::from_utf8_lossy(&out.stderr).to_string(),
    )
}

fn status(dir: &Path) -> Value {
    serde_json::from_str(&std::fs::read_to_string(dir.join("status.json")).expect("status"))
        .expect("json")
}

fn cosigned_size(dir: &Path) -> u64 {
    let text = std::fs::read_to_string(dir.join("checkpoint")).expect("checkpoint file");
    Note::parse(&text)
        .expect("note")
        .checkpoint()
        .expect("checkpoint")
        .tree_size
}

/// `verify --json` with extra arguments: (exit code, report).
fn verify(storage: &[String], extra: &[&str]) -> (i32, Value) {
    let mut a = storage.to_vec();
    a.extend(args(&["verify", "--json"]));
    a.extend(args(extra));
    let out = run_cli(&a);
    let report = serde_json::from_slice(&out.stdout).unwrap_or_else(|_| {
        panic!(
            "no JSON report; stderr: {}",
            String::from_utf8_lossy(&out.stderr)
        )
    });
    (out.status.code().unwrap_or(-1), report)
}

fn verify_export(path: &Path, extra: &[&str]) -> (i32, String) {
    let script = Path::new(env!("CARGO_MANIFEST_DIR")).join("tools/verify-export");
    let out = Command::new("python3")
        .arg(script)
        .arg("--self-certified")
        .args(extra)
        .arg(path)
        .output()
        .expect("run tools/verify-export");
    (
        out.status.code().unwrap_or(-1),
        String::from_utf8_lossy(&out.stdout).to_string() + &String::from_utf8_lossy(&out.stderr),
    )
}

async fn call(
    http: &Client,
    svc: &Service,
    key: &str,
    method: Method,
    path: &str,
    body: Option<Value>,
) -> (StatusCode, Value) {
    let mut req = http.request(method, svc.url(path)).bearer_auth(key);
    if let Some(b) = body {
        req = req.json(&b);
    }
    let r = req.send().await.expect("request");
    let s = r.status();
    (s, r.json().await.unwrap_or(Value::Null))
}

async fn some_events(http: &Client, svc: &Service, admin: &str, n: usize) {
    for i in 0..n {
        let (s, v) = call(
            http,
            svc,
            admin,
            Method::POST,
            "/v1/api-keys",
            Some(json!({"name": format!("k{i}"), "role": "viewer"})),
        )
        .await;
        assert_eq!(s, StatusCode::CREATED, "{v}");
    }
}

/// Waits for a signed checkpoint note covering more than `size` events.
async fn checkpoint_beyond(http: &Client, svc: &Service, auditor: &str, size: u64) {
    eventually(
        Duration::from_secs(30),
        "a checkpoint note beyond the last",
        || {
            let (http, url, key) = (
                http.clone(),
                svc.url("/v1/audit/checkpoints"),
                auditor.to_string(),
            );
            async move {
                let v: Value = match http.get(url).bearer_auth(key).send().await {
                    Ok(r) => r.json().await.unwrap_or(Value::Null),
                    Err(_) => return false,
                };
                v["items"]
                    .as_array()
                    .and_then(|a| a.last())
                    .filter(|c| c["note"].is_string())
                    .and_then(|c| c["tree_size"].as_u64())
                    .is_some_and(|n| n > size)
            }
        },
    )
    .await;
}

/// A service whose checkpoints a witness (its own process, its own key) cosigned twice,
/// the second time through a consistency proof from the first.
struct Cosigned {
    svc: Service,
    storage: Vec<String>,
    dir: tempfile::TempDir,
    wdir: PathBuf,
    auditor: String,
    http: Client,
}

async fn cosigned() -> Cosigned {
    let env = Deployment::start(Stack::Embedded, &envs()).await;
    let http = Client::new();
    let (s, v) = call(
        &http,
        &env.svc,
        &env.admin,
        Method::POST,
        "/v1/api-keys",
        Some(json!({"name": "witness", "role": "auditor"})),
    )
    .await;
    assert_eq!(s, StatusCode::CREATED, "{v}");
    let auditor = v["key"].as_str().expect("key").to_string();
    let wdir = env.dir.path().join("witness");

    some_events(&http, &env.svc, &env.admin, 3).await;
    checkpoint_beyond(&http, &env.svc, &auditor, 4).await;
    let (code, stderr) = witness_once(&env.svc, &wdir, &auditor);
    assert_eq!(code, 0, "{stderr}");
    assert_eq!(status(&wdir)["outcome"], "cosigned", "{stderr}");
    let first = cosigned_size(&wdir);
    let vkey = std::fs::read_to_string(wdir.join("witness.vkey")).expect("vkey");
    let witness = WitnessKey::parse(&vkey).expect("vkey");
    let text = std::fs::read_to_string(wdir.join("checkpoint")).expect("checkpoint");
    let note = Note::parse(&text).expect("note");
    assert_eq!(
        note.signatures.len(),
        2,
        "log signature and cosignature: {text}"
    );
    assert!(note.verify_cosignature(&witness).is_ok());
    assert!(note.body.starts_with(note::ORIGIN_PREFIX), "{text}");

    // More events: the second cosignature goes through a consistency proof.
    some_events(&http, &env.svc, &env.admin, 3).await;
    checkpoint_beyond(&http, &env.svc, &auditor, first).await;
    let (code, stderr) = witness_once(&env.svc, &wdir, &auditor);
    assert_eq!(code, 0, "{stderr}");
    assert_eq!(status(&wdir)["outcome"], "cosigned", "{stderr}");
    assert!(cosigned_size(&wdir) > first);

    // Both cosignatures are in the ledger; `verify` with the anchors accepts the log.
    let wkey = wdir.join("witness.vkey").display().to_string();
    let trusted = wdir.join("checkpoint").display().to_string();
    let (code, report) = verify(
        &env.storage,
        &["--witness-key", &wkey, "--trust-checkpoint", &trusted],
    );
    assert_eq!(code, 0, "{report}");
    assert_eq!(report["anchors"]["ok"], true, "{report}");
    assert_eq!(
        report["anchors"]["witnesses"][0]["cosignatures"], 2,
        "{report}"
    );
    assert_eq!(
        report["anchors"]["trusted_tree_size"].as_u64(),
        Some(cosigned_size(&wdir))
    );
    assert!(
        report["anchors"]["checkpoint_notes"]
            .as_u64()
            .expect("notes")
            >= 2
    );

    // The export carries both cosignatures; the independent export verifier checks them
    // against the exported checkpoint notes, and notices one left out.
    let text = http
        .get(env.svc.url("/v1/audit/export?format=jsonl"))
        .bearer_auth(&auditor)
        .send()
        .await
        .expect("export")
        .text()
        .await
        .expect("body");
    let export = env.dir.path().join("export.jsonl");
    std::fs::write(&export, &text).expect("write");
    let (code, out) = verify_export(&export, &["--trust-checkpoint", &trusted]);
    assert_eq!(code, 0, "{out}");
    assert!(out.contains("2 witness cosignatures"), "{out}");
    assert!(out.contains("extends the trusted checkpoint"), "{out}");
    let without: Vec<&str> = text
        .lines()
        .filter(|l| !l.contains("\"type\":\"cosignature\""))
        .collect();
    std::fs::write(&export, without.join("\n") + "\n").expect("write");
    let (code, out) = verify_export(&export, &[]);
    assert_eq!(code, 1, "{out}");
    assert!(out.contains("cosignatures"), "{out}");

    // A cosignature that does not verify is refused, not recorded.
    let seq = {
        let (_, v) = call(
            &http,
            &env.svc,
            &auditor,
            Method::GET,
            "/v1/audit/checkpoints",
            None,
        )
        .await;
        v["items"].as_array().and_then(|a| a.last()).expect("one")["sequence"]
            .as_u64()
            .expect("seq")
    };
    let (s, v) = call(
        &http,
        &env.svc,
        &auditor,
        Method::POST,
        &format!("/v1/audit/checkpoints/{seq}/cosignatures"),
        Some(json!({"witness_key": vkey.trim(), "cosignature": B64.encode([7u8; 76])})),
    )
    .await;
    assert_eq!(s, StatusCode::UNPROCESSABLE_ENTITY, "{v}");

    let Deployment {
        svc, storage, dir, ..
    } = env;
    Cosigned {
        svc,
        storage,
        dir,
        wdir,
        auditor,
        http,
    }
}

fn ledger_db(dir: &Path) -> PathBuf {
    data_dir(dir).join("ledger.db")
}

async fn tamper_pool(dir: &Path) -> sqlx::SqlitePool {
    let pool = sqlx::SqlitePool::connect(&format!("sqlite://{}", ledger_db(dir).display()))
        .await
        .expect("open file");
    // Whoever holds the file ignores the append-only triggers.
    sqlx::raw_sql(
        "DROP TRIGGER events_are_append_only_update; DROP TRIGGER events_are_append_only_delete;",
    )
    .execute(&pool)
    .await
    .expect("drop triggers");
    pool
}

fn signer(dir: &Path) -> Signer {
    KeyDir::new(data_dir(dir).join("keys"))
        .load_signer(false)
        .expect("the real signing key")
}

/// After the rewrite: projections rebuilt, the service back on the rewritten log with new
/// checkpoints beyond what the witness cosigned; `verify` alone still accepts the log, the
/// witness refuses, and `verify --trust-checkpoint` with its checkpoint fails.
async fn rewritten_history_is_caught(mut c: Cosigned, witnessed: u64) {
    let out = run_cli(&[c.storage.clone(), args(&["replay"])].concat());
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    c.svc = Service::start(&c.storage, &envs(), c.dir.path()).await;
    // Polling for checkpoints is itself audited: new events, new checkpoints.
    checkpoint_beyond(&c.http, &c.svc, &c.auditor, witnessed).await;

    let (code, report) = verify(&c.storage, &[]);
    assert_eq!(
        code, 0,
        "the log alone cannot show a rewrite made with the real key: {report}"
    );

    let trusted = c.wdir.join("checkpoint").display().to_string();
    let (code, report) = verify(&c.storage, &["--trust-checkpoint", &trusted]);
    assert_eq!(code, 1, "{report}");
    assert_eq!(report["ok"], false);
    let failure = report["anchors"]["failure"].as_str().expect("failure");
    assert!(failure.contains("rewritten"), "{failure}");

    // The independent verifiers agree: the raw log (tools/verifier/verify.py) and an export
    // of it (tools/verify-export) do not extend the witness's checkpoint.
    let dump = run_cli(&[c.storage.clone(), args(&["dump-log"])].concat());
    assert!(dump.status.success());
    let dumped = c.dir.path().join("rewritten.jsonl");
    std::fs::write(&dumped, &dump.stdout).expect("write");
    let key = B64.encode(signer(c.dir.path()).public_key().as_bytes());
    let out = Command::new("python3")
        .arg(Path::new(env!("CARGO_MANIFEST_DIR")).join("tools/verifier/verify.py"))
        .arg("--log")
        .arg(&dumped)
        .args(["--trusted-key", &key, "--trust-checkpoint", &trusted])
        .output()
        .expect("run verify.py");
    let text = String::from_utf8_lossy(&out.stdout);
    assert_eq!(out.status.code(), Some(1), "{text}");
    assert!(text.contains("rewritten"), "{text}");
    let export = c
        .http
        .get(c.svc.url("/v1/audit/export?format=jsonl"))
        .bearer_auth(&c.auditor)
        .send()
        .await
        .expect("export")
        .text()
        .await
        .expect("body");
    let exported = c.dir.path().join("rewritten-export.jsonl");
    std::fs::write(&exported, export).expect("write");
    // (A re-signed checkpoint also orphans the witness's cosignature of it, which the
    // export verifier checks; a truncated log keeps only valid ones.)
    let (code, out) = verify_export(&exported, &["--trust-checkpoint", &trusted]);
    assert_eq!(code, 1, "{out}");
    assert!(
        ["rewritten", "truncated", "does not verify", "cannot show"]
            .iter()
            .any(|w| out.contains(w)),
        "{out}"
    );

    let before = std::fs::read_to_string(c.wdir.join("checkpoint")).expect("checkpoint");
    let (code, stderr) = witness_once(&c.svc, &c.wdir, &c.auditor);
    assert_eq!(code, 1, "the witness must refuse: {stderr}");
    assert!(stderr.contains("REFUSED"), "{stderr}");
    assert_eq!(status(&c.wdir)["outcome"], "refused");
    assert_eq!(
        std::fs::read_to_string(c.wdir.join("checkpoint")).expect("checkpoint"),
        before,
        "a refused checkpoint is not cosigned"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_truncated_and_reappended_log_is_refused_by_the_witness_and_the_trusted_checkpoint() {
    let mut c = cosigned().await;
    let witnessed = cosigned_size(&c.wdir);
    c.svc.signal(nix::sys::signal::Signal::SIGKILL);
    let _ = c.svc.child.wait();

    // Truncate below what the witness cosigned, then append other events with the real
    // key, past the witnessed size.
    let keep = witnessed / 2;
    let pool = tamper_pool(c.dir.path()).await;
    sqlx::query("DELETE FROM events WHERE position > ?")
        .bind(keep as i64)
        .execute(&pool)
        .await
        .expect("truncate");
    sqlx::query("UPDATE sqlite_sequence SET seq = ? WHERE name = 'events'")
        .bind(keep as i64)
        .execute(&pool)
        .await
        .expect("renumber");
    pool.close().await;
    let log = Arc::new(
        SqliteEventLog::open(&ledger_db(c.dir.path()))
            .await
            .expect("open"),
    );
    let l = ledger(log.clone(), signer(c.dir.path()));
    for i in 0..(witnessed - keep + 5) {
        l.append_next(
            &AggregateKey::new("rewritten", "workspace", format!("w{i}")).expect("key"),
            &Actor::system("operator"),
            &Event::WorkspaceCreated(WorkspaceCreated {
                name: format!("not what the witness saw {i}"),
            }),
        )
        .await
        .expect("append");
    }
    log.close().await;
    rewritten_history_is_caught(c, witnessed).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_middle_event_resigned_with_new_checkpoints_is_refused_by_the_witness_and_the_trusted_checkpoint(
) {
    let mut c = cosigned().await;
    let witnessed = cosigned_size(&c.wdir);
    c.svc.signal(nix::sys::signal::Signal::SIGKILL);
    let _ = c.svc.child.wait();

    let key = signer(c.dir.path());
    let pool = tamper_pool(c.dir.path()).await;
    let rows: Vec<(i64, Vec<u8>)> =
        sqlx::query_as("SELECT position, envelope FROM events ORDER BY position")
            .fetch_all(&pool)
            .await
            .expect("rows");
    let mut envelopes: Vec<Vec<u8>> = rows.iter().map(|(_, e)| e.clone()).collect();
    let body_of = |env: &[u8]| -> Value {
        let v: Value = serde_json::from_slice(env).expect("envelope");
        serde_json::from_slice(
            &B64.decode(v["payload"].as_str().expect("payload"))
                .expect("b64"),
        )
        .expect("body")
    };
    // An audit query in the middle of what the witness saw (its own aggregate: no later
    // event links to it), re-signed with a changed route.
    let middle = (witnessed as usize / 2..witnessed as usize)
        .find(|&i| body_of(&envelopes[i])["kind"] == "audit.queried")
        .expect("an audit query under the witnessed size");
    let mut body = body_of(&envelopes[middle]);
    body["payload"]["route"] = json!("/v1/audit/rewritten");
    envelopes[middle] = key
        .seal(&serde_json::to_vec(&body).expect("json"))
        .expect("seal")
        .to_vec();
    // Every later checkpoint re-made: root over the changed log, link, note, signature.
    let origin = note::origin_of(body_of(&envelopes[0])["event_id"].as_str().expect("id"));
    let mut previous: Option<(String, String)> = None; // (root hex, envelope hash)
    for i in 0..envelopes.len() {
        let mut body = body_of(&envelopes[i]);
        if body["kind"] != "ledger.checkpoint" {
            continue;
        }
        if i > middle {
            let size = body["payload"]["tree_size"].as_u64().expect("size") as usize;
            let leaves: Vec<merkle::Hash> = envelopes[..size]
                .iter()
                .map(|e| merkle::leaf_hash(&Sha256::digest(e)))
                .collect();
            let root = merkle::root(&leaves);
            let cp = Checkpoint {
                origin: origin.clone(),
                tree_size: size as u64,
                root,
            };
            let signed = note::signed_checkpoint(&cp, &key.public_key(), key.sign_note(&cp.body()));
            body["payload"]["merkle_root"] = json!(merkle::to_hex(&root));
            body["payload"]["note"] = json!(signed.text());
            if let Some((root, hash)) = &previous {
                body["payload"]["previous_root"] = json!(root);
                body["prev_hash"] = json!(hash);
            }
            envelopes[i] = key
                .seal(&serde_json::to_vec(&body).expect("json"))
                .expect("seal")
                .to_vec();
        }
        let hash = format!("sha256:{}", hex::encode(Sha256::digest(&envelopes[i])));
        previous = Some((
            body["payload"]["merkle_root"]
                .as_str()
                .expect("root")
                .to_string(),
            hash,
        ));
    }
    for (i, (position, old)) in rows.iter().enumerate() {
        if *old != envelopes[i] {
            sqlx::query("UPDATE events SET envelope = ? WHERE position = ?")
                .bind(&envelopes[i])
                .bind(position)
                .execute(&pool)
                .await
                .expect("update");
        }
    }
    pool.close().await;
    rewritten_history_is_caught(c, witnessed).await;
}
