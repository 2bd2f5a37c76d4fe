//! The binary end to end: serve on an empty dir, health/readiness/metrics, graceful
//! shutdown, bootstrap, key rotation, replay, and clear one-line configuration errors.

use std::time::{Duration, Instant};

use serde_json::Value;

use crate::harness::{args, run_cli, NatsServer, Service};

fn cli(dir: &std::path::Path, rest: &[&str]) -> std::process::Output {
    let mut a = args(&["--data-dir", &dir.display().to_string()]);
    a.extend(args(rest));
    run_cli(&a)
}

fn assert_clear_error(out: &std::process::Output, needle: &str) {
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(
        out.status.code(),
        Some(2),
        "expected exit 2, stderr: {stderr}"
    );
    assert!(
        !stderr.contains("panicked") && !stderr.contains("backtrace"),
        "not a clean error: {stderr}"
    );
    let lines: Vec<&str> = stderr.lines().filter(|l| l.contains("error")).collect();
    assert_eq!(lines.len(), 1, "want one clear error line, got: {stderr}");
    assert!(
        lines[0].contains(needle),
        "error line {:?} should mention {needle:?}",
        lines[0]
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn serve_on_an_empty_dir_bootstraps_once_and_serves_health_readiness_metrics() {
    let dir = tempfile::tempdir().expect("dir");
    let data = dir.path().join("data");
    let storage = args(&["--data-dir", &data.display().to_string()]);
    let svc = Service::start(&storage, &[], dir.path()).await;
    let client = reqwest::Client::new();

    // First run: the default workspace and its admin key, printed once as JSON.
    let printed: Value =
        serde_json::from_str(&std::fs::read_to_string(&svc.stdout_path).expect("stdout"))
            .expect("json");
    assert!(printed["admin_api_key"]
        .as_str()
        .expect("key")
        .starts_with("alk_"));
    assert!(printed["workspace_id"].is_string());

    let r = client
        .get(svc.url("/healthz"))
        .send()
        .await
        .expect("healthz");
    assert_eq!(r.status(), 200);
    crate::harness::eventually(
        Duration::from_secs(10),
        "projections to catch up",
        || async {
            let r: Value = client
                .get(svc.url("/readyz"))
                .send()
                .await
                .expect("readyz")
                .json()
                .await
                .expect("json");
            // workspace.created, api_key.created, member.invited (the console's first admin)
            r["projection_offset"] == 3
        },
    )
    .await;
    let ready: Value = client
        .get(svc.url("/readyz"))
        .send()
        .await
        .expect("readyz")
        .json()
        .await
        .expect("json");
    assert_eq!(
        (ready["status"].as_str(), ready["log_head"].as_u64()),
        (Some("ready"), Some(3))
    );
    let metrics = client
        .get(svc.url("/metrics"))
        .send()
        .await
        .expect("metrics")
        .text()
        .await
        .expect("text");
    for name in [
        "authledger_ledger_appends_total{result=\"ok\"} 3",
        "authledger_ledger_conflicts_total",
        "authledger_ledger_append_seconds_bucket",
        "authledger_projection_lag_events",
    ] {
        assert!(metrics.contains(name), "metrics lack {name}:\n{metrics}");
    }
    assert!(!metrics.contains(printed["admin_api_key"].as_str().expect("key")));
    // The service runs without transparent huge pages (src/memory.rs says why).
    if cfg!(target_os = "linux") {
        let status = std::fs::read_to_string(format!("/proc/{}/status", svc.child.id()))
            .expect("the service's status");
        assert!(
            status
                .lines()
                .any(|l| l.split_whitespace().eq(["THP_enabled:", "0"])),
            "{status}"
        );
    }
    let missing = client.get(svc.url("/v1/nope")).send().await.expect("404");
    assert_eq!(missing.status(), 404);
    assert_eq!(
        missing.headers()["content-type"],
        "application/problem+json"
    );
    let problem: Value = missing.json().await.expect("problem json");
    assert_eq!(
        problem["type"],
        "https://authledger.dev/problems/no-such-route"
    );

    // Graceful shutdown on SIGTERM.
    let mut svc = svc;
    svc.signal(nix::sys::signal::Signal::SIGTERM);
    let deadline = Instant::now() + Duration::from_secs(15);
    let status = loop {
        if let Some(s) = svc.child.try_wait().expect("wait") {
            break s;
        }
        assert!(Instant::now() < deadline, "serve did not stop on SIGTERM");
        tokio::time::sleep(Duration::from_millis(50)).await;
    };
    assert!(status.success(), "serve exited with {status}");

    // Second run on the same dir: no new workspace, no key printed again.
    let svc2 = Service::start(&storage, &[], dir.path()).await;
    let out2 = std::fs::read_to_string(&svc2.stdout_path).expect("stdout");
    assert!(!out2.contains("admin_api_key"), "key printed again: {out2}");
    drop(svc2);
    // The key is stored only as a hash: it appears nowhere in the data dir.
    let key = printed["admin_api_key"].as_str().expect("key");
    for entry in walk(&data) {
        let bytes = std::fs::read(&entry).expect("read");
        assert!(
            !bytes.windows(key.len()).any(|w| w == key.as_bytes()),
            "API key found in {}",
            entry.display()
        );
    }
}

fn walk(dir: &std::path::Path) -> Vec<std::path::PathBuf> {
    let mut out = Vec::new();
    for e in std::fs::read_dir(dir).expect("dir").flatten() {
        let p = e.path();
        if p.is_dir() {
            out.extend(walk(&p));
        } else {
            out.push(p);
        }
    }
    out
}

#[tokio::test]
async fn readyz_reports_503_with_the_reason_when_the_log_is_gone() {
    let mut nats = NatsServer::start();
    let dir = tempfile::tempdir().expect("dir");
    let keys = dir.path().join("keys");
    assert!(cli(
        dir.path(),
        &["--key-dir", &keys.display().to_string(), "keys", "init"]
    )
    .status
    .success());
    let storage = args(&[
        "--data-dir",
        &dir.path().display().to_string(),
        "--key-dir",
        &keys.display().to_string(),
        "--nats-url",
        &nats.url(),
    ]);
    let svc = Service::start(&storage, &[], dir.path()).await;
    let client = reqwest::Client::new();
    assert_eq!(
        client
            .get(svc.url("/readyz"))
            .send()
            .await
            .expect("readyz")
            .status(),
        200
    );
    nats.kill();
    let r = client.get(svc.url("/readyz")).send().await.expect("readyz");
    assert_eq!(r.status(), 503);
    assert_eq!(r.headers()["content-type"], "application/problem+json");
    let problem: Value = r.json().await.expect("json");
    assert!(
        problem["detail"]
            .as_str()
            .expect("detail")
            .contains("event log"),
        "{problem}"
    );
    assert_eq!(
        client
            .get(svc.url("/healthz"))
            .send()
            .await
            .expect("healthz")
            .status(),
        200
    );
}

#[test]
fn bootstrap_prints_the_workspace_and_admin_key_once_as_json() {
    let dir = tempfile::tempdir().expect("dir");
    let out = cli(dir.path(), &["bootstrap", "--workspace", "Acme"]);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let v: Value = serde_json::from_slice(&out.stdout).expect("stdout is JSON");
    assert!(v["admin_api_key"]
        .as_str()
        .expect("key")
        .starts_with("alk_"));
    assert!(v["workspace_id"].as_str().expect("ws").len() >= 32);
    let report = cli(dir.path(), &["verify", "--json"]);
    let r: Value = serde_json::from_slice(&report.stdout).expect("report");
    assert_eq!(
        (r["ok"].as_bool(), r["events"].as_u64()),
        // workspace, admin key, first console admin's invite
        (Some(true), Some(3))
    );

    let bad = cli(dir.path(), &["bootstrap", "--workspace", ""]);
    assert_clear_error(&bad, "invalid name");
    let r: Value =
        serde_json::from_slice(&cli(dir.path(), &["verify", "--json"]).stdout).expect("report");
    assert_eq!(r["events"], 3, "a refused command must write nothing");
}

#[test]
fn key_rotation_is_an_event_signed_by_the_outgoing_key() {
    let dir = tempfile::tempdir().expect("dir");
    assert!(cli(dir.path(), &["bootstrap", "--workspace", "Acme"])
        .status
        .success());
    let ring_before: Value =
        serde_json::from_slice(&cli(dir.path(), &["keys", "show"]).stdout).expect("ring");
    let first_key = ring_before["keys"][0]["public_key"]
        .as_str()
        .expect("pk")
        .to_string();
    let rotated = cli(dir.path(), &["keys", "rotate"]);
    assert!(
        rotated.status.success(),
        "{}",
        String::from_utf8_lossy(&rotated.stderr)
    );
    assert!(cli(dir.path(), &["bootstrap", "--workspace", "Beta"])
        .status
        .success());

    let r: Value =
        serde_json::from_slice(&cli(dir.path(), &["verify", "--json"]).stdout).expect("report");
    assert_eq!(
        (r["ok"].as_bool(), r["events"].as_u64(), r["keys"].as_u64()),
        // 3 per bootstrap (workspace, admin key, console invite) and the rotation
        (Some(true), Some(7), Some(2)),
        "{r}"
    );
    let ring: Value =
        serde_json::from_slice(&cli(dir.path(), &["keys", "show"]).stdout).expect("ring");
    let statuses: Vec<&str> = ring["keys"]
        .as_array()
        .expect("keys")
        .iter()
        .map(|k| k["status"].as_str().expect("s"))
        .collect();
    assert_eq!(statuses, ["retired", "active"]);
    let new_key = ring["keys"][1]["public_key"]
        .as_str()
        .expect("pk")
        .to_string();

    // An auditor holding only the first public key follows the rotation.
    let empty = tempfile::tempdir().expect("empty key dir");
    let only_first = cli(
        dir.path(),
        &[
            "--key-dir",
            &empty.path().display().to_string(),
            "verify",
            "--json",
            "--trusted-key",
            &first_key,
        ],
    );
    let r: Value = serde_json::from_slice(&only_first.stdout).expect("report");
    assert_eq!(r["ok"], true, "{r}");
    // Holding only the new key, the events before the rotation are unverifiable.
    let only_new = cli(
        dir.path(),
        &[
            "--key-dir",
            &empty.path().display().to_string(),
            "verify",
            "--json",
            "--trusted-key",
            &new_key,
        ],
    );
    assert_eq!(only_new.status.code(), Some(1));
    let r: Value = serde_json::from_slice(&only_new.stdout).expect("report");
    assert_eq!(r["failure"]["position"], 1);
    assert!(r["failure"]["problem"]
        .as_str()
        .expect("p")
        .contains("unknown key"));
    // The retired private key is gone from disk.
    let files: Vec<String> = std::fs::read_dir(dir.path().join("keys"))
        .expect("keys")
        .flatten()
        .map(|e| e.file_name().to_string_lossy().to_string())
        .collect();
    let signing_keys = files
        .iter()
        .filter(|f| f.ends_with(".key") && !f.starts_with("master"))
        .count();
    assert_eq!(signing_keys, 1, "{files:?}");
}

#[test]
fn replay_rebuilds_the_projections_from_the_log() {
    let dir = tempfile::tempdir().expect("dir");
    for ws in ["A", "B", "C"] {
        assert!(cli(dir.path(), &["bootstrap", "--workspace", ws])
            .status
            .success());
    }
    let out = cli(dir.path(), &["replay"]);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(
        String::from_utf8_lossy(&out.stdout)
            .trim()
            .starts_with("replayed 9 events in "),
        "{}",
        String::from_utf8_lossy(&out.stdout)
    );
    // Replaying again gives the same answer (projections are disposable).
    let again = cli(dir.path(), &["replay"]);
    assert!(
        String::from_utf8_lossy(&again.stdout)
            .trim()
            .starts_with("replayed 9 events in "),
        "{}",
        String::from_utf8_lossy(&again.stdout)
    );
}

#[test]
fn configuration_errors_exit_non_zero_with_one_clear_line() {
    let dir = tempfile::tempdir().expect("dir");
    let unreachable = cli(dir.path(), &["--nats-url", "nats://127.0.0.1:1", "serve"]);
    assert_clear_error(&unreachable, "no signing key");
    let keys = dir.path().join("k");
    assert!(cli(
        dir.path(),
        &["--key-dir", &keys.display().to_string(), "keys", "init"]
    )
    .status
    .success());
    let unreachable = cli(
        dir.path(),
        &[
            "--key-dir",
            &keys.display().to_string(),
            "--nats-url",
            "nats://127.0.0.1:1",
            "serve",
        ],
    );
    assert_clear_error(&unreachable, "cannot connect to NATS");
    let bad_url = cli(
        dir.path(),
        &[
            "--key-dir",
            &keys.display().to_string(),
            "--nats-url",
            "::not a url::",
            "verify",
        ],
    );
    assert_eq!(bad_url.status.code(), Some(2));

    let corrupt = tempfile::tempdir().expect("dir");
    std::fs::create_dir_all(corrupt.path().join("keys")).expect("mkdir");
    std::fs::write(corrupt.path().join("keys/active.key"), "not base64 !!").expect("write");
    assert_clear_error(
        &cli(corrupt.path(), &["serve", "--listen", "127.0.0.1:0"]),
        "not base64",
    );

    let unreadable = tempfile::tempdir().expect("dir");
    std::fs::create_dir_all(unreadable.path().join("keys/active.key"))
        .expect("a dir where the key file should be");
    assert_clear_error(
        &cli(unreadable.path(), &["serve", "--listen", "127.0.0.1:0"]),
        "cannot read",
    );

    let out = std::process::Command::new(crate::harness::bin())
        .args([
            "--data-dir",
            &dir.path().join("e").display().to_string(),
            "serve",
            "--listen",
            "127.0.0.1:0",
        ])
        .env("AUTHLEDGER_SIGNING_KEY", "c2hvcnQ=")
        .output()
        .expect("run");
    assert_clear_error(&out, "AUTHLEDGER_SIGNING_KEY");

    let taken = std::net::TcpListener::bind("127.0.0.1:0").expect("bind");
    let port = taken.local_addr().expect("addr").port().to_string();
    assert_clear_error(
        &cli(
            &dir.path().join("d"),
            &["serve", "--listen", &format!("127.0.0.1:{port}")],
        ),
        "cannot listen",
    );
    assert_clear_error(
        &cli(&dir.path().join("nothing"), &["verify"]),
        "no event log",
    );
}

#[tokio::test]
async fn serve_refuses_a_stream_without_the_ledger_protections() {
    let nats = NatsServer::start();
    let client = async_nats::connect(nats.url()).await.expect("connect");
    let js = async_nats::jetstream::new(client);
    js.create_stream(async_nats::jetstream::stream::Config {
        name: "AUTHLEDGER".into(),
        subjects: vec!["ledger.>".into()],
        ..Default::default()
    })
    .await
    .expect("create stream");
    let dir = tempfile::tempdir().expect("dir");
    let keys = dir.path().join("k");
    assert!(cli(
        dir.path(),
        &["--key-dir", &keys.display().to_string(), "keys", "init"]
    )
    .status
    .success());
    let out = cli(
        dir.path(),
        &[
            "--key-dir",
            &keys.display().to_string(),
            "--nats-url",
            &nats.url(),
            "serve",
        ],
    );
    assert_clear_error(&out, "not fit for a ledger");
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        stderr.contains("deny_delete") && stderr.contains("deny_purge"),
        "{stderr}"
    );
}

#[test]
fn master_key_rotation_rewraps_every_data_key_and_replaces_the_master() {
    let dir = tempfile::tempdir().expect("dir");
    assert!(cli(dir.path(), &["bootstrap", "--workspace", "Acme"])
        .status
        .success());
    let master = dir.path().join("keys/master.key");
    let before = std::fs::read(&master).expect("master.key created on first run");
    use std::os::unix::fs::PermissionsExt;
    assert_eq!(
        std::fs::metadata(&master)
            .expect("meta")
            .permissions()
            .mode()
            & 0o777,
        0o600
    );
    let out = cli(dir.path(), &["keys", "rotate-master"]);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let said = String::from_utf8_lossy(&out.stdout).to_string();
    // The fingerprint key is a data key too: at least it was re-wrapped.
    assert!(
        said.starts_with("re-wrapped ") && !said.starts_with("re-wrapped 0 "),
        "{said}"
    );
    let after = std::fs::read(&master).expect("master.key");
    assert_ne!(before, after, "the master key must change");
    assert!(!dir.path().join("keys/master.next.key").exists());
    // A second rotation finds everything under the current key and moves it again.
    let again = cli(dir.path(), &["keys", "rotate-master"]);
    assert!(
        again.status.success(),
        "{}",
        String::from_utf8_lossy(&again.stderr)
    );
    // The service opens its vault on the rotated master (bootstrap opens it too), and
    // the log still verifies.
    let b = cli(dir.path(), &["bootstrap", "--workspace", "Beta"]);
    assert!(b.status.success(), "{}", String::from_utf8_lossy(&b.stderr));
    let report: Value =
        serde_json::from_slice(&cli(dir.path(), &["verify", "--json"]).stdout).expect("report");
    assert_eq!(report["ok"], true);
}

/// `verify` says what it trusted: the data dir's ring (not independent) by default; keys
/// pinned from outside with `--ring FILE` / `--trusted-key`, which then replace that ring.
#[test]
fn verify_says_what_it_trusted_and_pins_keys_from_outside() {
    let dir = tempfile::tempdir().expect("dir");
    let data = dir.path().join("data");
    let out = cli(&data, &["bootstrap", "--workspace", "Acme"]);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );

    let text = cli(&data, &["verify"]);
    assert!(text.status.success());
    let text = String::from_utf8_lossy(&text.stdout).to_string();
    assert!(
        text.contains("trust: ring.json in the data dir") && text.contains("not independent"),
        "{text}"
    );
    let json: Value =
        serde_json::from_slice(&cli(&data, &["verify", "--json"]).stdout).expect("report");
    assert!(
        json["trust"]
            .as_str()
            .expect("trust")
            .contains("not independent"),
        "{json}"
    );

    // The auditor's own copy of the ring, kept elsewhere.
    let pinned = dir.path().join("auditor-ring.json");
    std::fs::copy(data.join("keys/ring.json"), &pinned).expect("copy ring");
    let out = cli(&data, &["verify", "--ring", &pinned.display().to_string()]);
    let text = String::from_utf8_lossy(&out.stdout).to_string();
    assert!(out.status.success(), "{text}");
    assert!(
        text.contains(&format!("trust: pinned ring {} (1 keys)", pinned.display())),
        "{text}"
    );
    // A pinned key that did not sign the log: the data dir's ring is not consulted.
    let stranger = authledger::ledger::Signer::generate();
    let b64 = base64::Engine::encode(
        &base64::engine::general_purpose::STANDARD,
        stranger.public_key().as_bytes(),
    );
    let out = cli(&data, &["verify", "--json", "--trusted-key", &b64]);
    assert_eq!(out.status.code(), Some(1));
    let r: Value = serde_json::from_slice(&out.stdout).expect("report");
    assert_eq!(r["failure"]["position"], 1, "{r}");
    assert_eq!(
        r["trust"],
        Value::from(format!("pinned key {}", stranger.key_id()))
    );
}
