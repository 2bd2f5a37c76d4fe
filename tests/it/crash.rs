//! Nothing acknowledged is lost: kill the NATS server (SIGKILL) or the service process
//! mid-stream; every append that returned Ok is in the log exactly once afterwards.

use std::collections::{HashMap, HashSet};
use std::process::{Command, Stdio};
use std::sync::Arc;
use std::time::Duration;

use authledger::domain::{Event, WorkspaceCreated};
use authledger::ledger::envelope::open_envelope;
use authledger::ledger::jetstream_log::JetStreamEventLog;
use authledger::ledger::sqlite_log::SqliteEventLog;
use authledger::ledger::verify::verify_log;
use authledger::ledger::{Actor, AggregateKey, EventLog, KeyRing, LedgerError, LogError, Signer};
use tokio::io::AsyncBufReadExt;

use crate::harness::{bin, ledger, NatsServer};

/// Every event id in the log, with how often it occurs.
async fn ids_in_log(log: &dyn EventLog) -> HashMap<String, usize> {
    let mut counts = HashMap::new();
    let mut next = 1;
    loop {
        let page = log.read_from(next, 1000).await.expect("read log");
        let Some(last) = page.last().map(|e| e.position) else {
            break;
        };
        for rec in &page {
            let id = open_envelope(&rec.envelope)
                .expect("envelope")
                .body
                .event_id
                .to_string();
            *counts.entry(id).or_insert(0) += 1;
        }
        next = last + 1;
    }
    counts
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn jetstream_sigkill_mid_stream_loses_no_acknowledged_append() {
    let mut nats = NatsServer::start();
    let seed = [5u8; 32];
    let log: Arc<dyn EventLog> = Arc::new(
        JetStreamEventLog::open(nats.options("LEDGER"))
            .await
            .expect("open"),
    );
    let l = Arc::new(ledger(log.clone(), Signer::from_seed(&seed)));
    let stop = Arc::new(std::sync::atomic::AtomicBool::new(false));
    let mut writers = Vec::new();
    for w in 0..4 {
        let l = l.clone();
        let stop = stop.clone();
        writers.push(tokio::spawn(async move {
            let mut acked = Vec::new();
            let mut errors = Vec::new();
            let mut i = 0u64;
            while !stop.load(std::sync::atomic::Ordering::Relaxed) {
                let key = AggregateKey::new("crash", "workspace", format!("w{w}-{}", i % 16))
                    .expect("key");
                let ev = Event::WorkspaceCreated(WorkspaceCreated {
                    name: format!("{w}/{i}"),
                });
                match tokio::time::timeout(
                    Duration::from_secs(30),
                    l.append_next(&key, &Actor::system("t"), &ev),
                )
                .await
                {
                    Ok(Ok(c)) => acked.push(c.event_id.to_string()),
                    Ok(Err(e)) => errors.push(e),
                    Err(_) => panic!("an append hung for 30s instead of failing clearly"),
                }
                i += 1;
            }
            (acked, errors)
        }));
    }
    tokio::time::sleep(Duration::from_millis(700)).await;
    nats.kill();
    tokio::time::sleep(Duration::from_millis(1500)).await;
    nats.restart();
    tokio::time::sleep(Duration::from_millis(1500)).await;
    stop.store(true, std::sync::atomic::Ordering::Relaxed);
    let mut acked = Vec::new();
    let mut errors = Vec::new();
    for w in writers {
        let (a, e) = w.await.expect("writer");
        acked.extend(a);
        errors.extend(e);
    }
    eprintln!("acknowledged {}, failed {}", acked.len(), errors.len());
    assert!(
        acked.len() > 50,
        "too few appends to mean anything: {}",
        acked.len()
    );
    // Appends during the outage either succeeded after the writer's bounded retry (then
    // they are in `acked`) or failed with a clear, typed error; none silently vanish.
    for e in &errors {
        assert!(
            matches!(e, LedgerError::Log(LogError::Unavailable(_))),
            "unexpected error kind during outage: {e}"
        );
    }
    let fresh: Arc<dyn EventLog> = Arc::new(
        JetStreamEventLog::open(nats.options("LEDGER"))
            .await
            .expect("reopen"),
    );
    let in_log = ids_in_log(fresh.as_ref()).await;
    for id in &acked {
        assert_eq!(
            in_log.get(id),
            Some(&1),
            "acknowledged event {id} not present exactly once"
        );
    }
    assert!(in_log.values().all(|&n| n == 1), "some event is duplicated");
    let mut ring = KeyRing::default();
    ring.insert(Signer::from_seed(&seed).public_key());
    let report = verify_log(fresh, ring, vec![]).await.expect("verify");
    assert!(
        report.ok,
        "log does not verify after the crash: {:?}",
        report.failure
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn embedded_service_sigkill_mid_stream_loses_no_acknowledged_append() {
    let dir = tempfile::tempdir().expect("dir");
    let data = dir.path().to_path_buf();
    let mut child = tokio::process::Command::new(bin())
        .args([
            "--data-dir",
            &data.display().to_string(),
            "debug-append",
            "--count",
            "1000000",
            "--writers",
            "4",
        ])
        .env_remove("AUTHLEDGER_SIGNING_KEY")
        .env_remove("AUTHLEDGER_NATS_URL")
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .expect("spawn debug-append");
    let stdout = child.stdout.take().expect("stdout");
    let mut lines = tokio::io::BufReader::new(stdout).lines();
    let mut acked = Vec::new();
    // Let it get going, then SIGKILL it with appends in flight.
    while acked.len() < 300 {
        let line = tokio::time::timeout(Duration::from_secs(30), lines.next_line())
            .await
            .expect("debug-append is slow")
            .expect("read")
            .expect("debug-append ended early");
        if let Some(rest) = line.strip_prefix("ok ") {
            acked.push(rest.split(' ').next().expect("id").to_string());
        }
    }
    child.start_kill().expect("kill");
    // Lines already written before the kill were acknowledged too.
    while let Ok(Some(line)) = lines.next_line().await {
        if let Some(rest) = line.strip_prefix("ok ") {
            acked.push(rest.split(' ').next().expect("id").to_string());
        }
    }
    let _ = child.wait().await;
    let log = SqliteEventLog::open(&data.join("ledger.db"))
        .await
        .expect("reopen");
    let in_log = ids_in_log(&log).await;
    let acked_set: HashSet<_> = acked.iter().collect();
    assert_eq!(acked_set.len(), acked.len(), "an id was acknowledged twice");
    for id in &acked {
        assert_eq!(
            in_log.get(id),
            Some(&1),
            "acknowledged event {id} lost or duplicated"
        );
    }
    // The whole log still verifies with the generated key.
    let out = Command::new(bin())
        .args([
            "--data-dir",
            &data.display().to_string(),
            "verify",
            "--json",
        ])
        .output()
        .expect("verify");
    let report: serde_json::Value = serde_json::from_slice(&out.stdout).expect("json report");
    assert_eq!(report["ok"], true, "{report}");
    assert!(report["events"].as_u64().expect("events") >= acked.len() as u64);
}

/// The service itself, killed while clients create API keys over HTTP: every `201` it
/// answered is in the log exactly once and served again after a restart.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn embedded_serve_sigkill_keeps_every_acknowledged_http_write() {
    let dir = tempfile::tempdir().expect("dir");
    let data = dir.path().join("data");
    let storage = crate::harness::args(&["--data-dir", &data.display().to_string()]);
    let envs = [
        ("AUTHLEDGER_RATE_LIMIT_PER_SEC", "100000"),
        ("AUTHLEDGER_RATE_LIMIT_BURST", "100000"),
    ];
    let svc = crate::harness::Service::start(&storage, &envs, dir.path()).await;
    let printed: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(&svc.stdout_path).expect("stdout"))
            .expect("json");
    let admin = printed["admin_api_key"].as_str().expect("key").to_string();
    let url = svc.url("/v1/api-keys");
    let acked = Arc::new(std::sync::Mutex::new(Vec::<String>::new()));
    let mut clients = Vec::new();
    for c in 0..4 {
        let (url, admin, acked) = (url.clone(), admin.clone(), acked.clone());
        clients.push(tokio::spawn(async move {
            let http = reqwest::Client::new();
            for i in 0.. {
                let body = serde_json::json!({ "name": format!("c{c} k{i}"), "role": "viewer" });
                match http.post(&url).bearer_auth(&admin).json(&body).send().await {
                    Ok(r) if r.status() == 201 => {
                        let v: serde_json::Value = match r.json().await {
                            Ok(v) => v,
                            Err(_) => return,
                        };
                        acked
                            .lock()
                            .expect("lock")
                            .push(v["id"].as_str().expect("id").to_string());
                    }
                    Ok(r) => panic!("unexpected status {}", r.status()),
                    Err(_) => return, // the service is gone
                }
            }
        }));
    }
    tokio::time::sleep(Duration::from_millis(1500)).await;
    let mut svc = svc;
    svc.signal(nix::sys::signal::Signal::SIGKILL);
    let _ = svc.child.wait();
    for c in clients {
        c.await.expect("client");
    }
    let acked = acked.lock().expect("lock").clone();
    eprintln!("acknowledged {} HTTP writes before SIGKILL", acked.len());
    assert!(
        acked.len() > 20,
        "too few writes to mean anything: {}",
        acked.len()
    );

    let log = SqliteEventLog::open(&data.join("ledger.db"))
        .await
        .expect("reopen");
    let mut created = HashMap::new();
    for rec in log.read_from(1, 1_000_000).await.expect("read") {
        let body = open_envelope(&rec.envelope).expect("envelope").body;
        if body.kind == "api_key.created" {
            *created.entry(body.aggregate_id).or_insert(0) += 1;
        }
    }
    log.close().await;
    for id in &acked {
        assert_eq!(
            created.get(id),
            Some(&1),
            "acknowledged key {id} lost or duplicated"
        );
    }
    // After a restart the projections (rebuilt from wherever they were) serve every one.
    drop(svc);
    let svc = crate::harness::Service::start(&storage, &envs, dir.path()).await;
    let http = reqwest::Client::new();
    crate::harness::eventually(
        Duration::from_secs(20),
        "projections to catch up after the crash",
        || {
            let (http, url, admin, n) = (
                http.clone(),
                svc.url("/v1/api-keys"),
                admin.clone(),
                acked.len(),
            );
            async move {
                let v: serde_json::Value = match http.get(url).bearer_auth(admin).send().await {
                    Ok(r) => r.json().await.unwrap_or_default(),
                    Err(_) => return false,
                };
                v["items"].as_array().map(|a| a.len() > n).unwrap_or(false)
            }
        },
    )
    .await;
    let v: serde_json::Value = http
        .get(svc.url("/v1/api-keys"))
        .bearer_auth(&admin)
        .send()
        .await
        .expect("list")
        .json()
        .await
        .expect("json");
    let listed: HashSet<String> = v["items"]
        .as_array()
        .expect("items")
        .iter()
        .map(|k| k["id"].as_str().expect("id").to_string())
        .collect();
    for id in &acked {
        assert!(
            listed.contains(id),
            "acknowledged key {id} missing from the projections after restart"
        );
    }
}
