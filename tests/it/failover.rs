//! The ledger on a 3-node JetStream cluster (stream with 3 replicas) under a node failure
//! (issue 21): two `serve` instances given the whole server list, several clients writing
//! through both while the stream leader is SIGKILLed and later restarted, then another
//! node is paused (SIGSTOP) and resumed, then a follower is SIGKILLed and restarted. Every
//! acknowledged write is in the log exactly once, every other answer is a clear 503, no request hangs,
//! `verify` passes after the failover (a redelivered position is not tampering), both
//! instances become ready again by themselves, and the projections equal a fresh replay.

use std::collections::HashMap;
use std::sync::Arc;
use std::time::{Duration, Instant};

use reqwest::{Client, StatusCode};
use serde_json::{json, Value};

use crate::harness::{args, eventually, fresh_pg_database, run_cli, NatsServer, Service};
use crate::support::{cli, Reply, BASE_ENV, NO_RATE_LIMIT};

const STREAM: &str = "AUTHLEDGER";
const CLIENTS: usize = 6;
/// A client gives up on a request after this long: a request must never hang past it.
const REQUEST_TIMEOUT: Duration = Duration::from_secs(20);

/// The server that leads the stream's RAFT group now (its index in `cluster`).
async fn stream_leader(cluster: &[NatsServer]) -> usize {
    let urls: Vec<String> = cluster.iter().map(NatsServer::url).collect();
    let client = async_nats::connect(urls.as_slice()).await.expect("connect");
    let js = async_nats::jetstream::new(client);
    let mut stream = js.get_stream(STREAM).await.expect("stream");
    let leader = stream
        .info()
        .await
        .expect("info")
        .cluster
        .clone()
        .and_then(|c| c.leader)
        .expect("the stream has a leader");
    leader
        .trim_start_matches('n')
        .split('-')
        .next()
        .and_then(|i| i.parse().ok())
        .expect("servers are named n0-…, n1-…, n2-…")
}

/// One write: its answer, the API key id when it was acknowledged, and the log position
/// of a write recorded but not yet visible (`503 projection-lagging`).
#[derive(Debug)]
pub(crate) struct Answer {
    pub(crate) status: Option<StatusCode>,
    pub(crate) problem: String,
    id: Option<String>,
    recorded_at: Option<u64>,
}

async fn write(http: &Client, svc: &str, admin: &str, n: usize) -> Answer {
    let sent = http
        .post(format!("{svc}/v1/api-keys"))
        .bearer_auth(admin)
        .json(&json!({ "name": format!("failover {n}"), "role": "viewer" }))
        .send()
        .await;
    match sent {
        Ok(r) => {
            let status = r.status();
            let body: Value = r.json().await.unwrap_or(Value::Null);
            Answer {
                status: Some(status),
                problem: body["type"].as_str().unwrap_or("").to_string(),
                id: (status == StatusCode::CREATED)
                    .then(|| body["id"].as_str().map(str::to_string))
                    .flatten(),
                recorded_at: body["position"].as_u64(),
            }
        }
        Err(e) => Answer {
            status: None,
            problem: format!("no answer: {e}"),
            id: None,
            recorded_at: None,
        },
    }
}

/// `bootstrap` retried until the cluster takes it (60 s); the admin API key it printed.
/// On time out, what the last try said and the end of each server's log.
async fn bootstrap_on(cluster: &[NatsServer], ops: &[String]) -> String {
    let deadline = Instant::now() + Duration::from_secs(60);
    loop {
        let a = [ops.to_vec(), args(&["bootstrap", "--workspace", "acme"])].concat();
        let out = tokio::task::spawn_blocking(move || run_cli(&a))
            .await
            .expect("join");
        let printed: Option<Value> = serde_json::from_slice(&out.stdout).ok();
        if let Some(key) = printed.and_then(|p| p["admin_api_key"].as_str().map(str::to_string)) {
            if out.status.success() {
                return key;
            }
        }
        if Instant::now() > deadline {
            let logs: Vec<String> = cluster
                .iter()
                .enumerate()
                .map(|(i, s)| format!("--- node {i}:\n{}", s.log_tail(30)))
                .collect();
            panic!(
                "timed out waiting for bootstrap on the cluster; the last try said: {}\n{}",
                String::from_utf8_lossy(&out.stderr),
                logs.join("\n")
            );
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

#[tokio::test]
async fn acknowledged_writes_survive_the_stream_leader_dying() {
    let mut cluster = NatsServer::start_cluster(3);
    let urls = cluster
        .iter()
        .map(NatsServer::url)
        .collect::<Vec<_>>()
        .join(",");
    let pg = fresh_pg_database().await;
    let dir = tempfile::tempdir().expect("dir");
    let keys = dir.path().join("keys");
    let storage = |data: &str| {
        args(&[
            "--data-dir",
            &dir.path().join(data).display().to_string(),
            "--key-dir",
            &keys.display().to_string(),
            "--nats-url",
            &urls,
            "--nats-replicas",
            "3",
            "--database-url",
            &pg,
        ])
    };
    let ops = storage("cli");
    cli(&ops, &["keys", "init"]).await;
    // The cluster elects its JetStream leader first; until then the stream cannot be made.
    let admin = bootstrap_on(&cluster, &ops).await;
    let envs = [BASE_ENV, NO_RATE_LIMIT].concat();
    let services = [
        Service::start(&storage("instance0"), &envs, dir.path()).await,
        Service::start(&storage("instance1"), &envs, dir.path()).await,
    ];
    let urls_of: Vec<String> = services.iter().map(|s| s.url("")).collect();

    // Writers through both instances, while the leader dies and comes back.
    let writers = Writers::start(&admin, &urls_of);
    tokio::time::sleep(Duration::from_secs(4)).await;
    let leader = stream_leader(&cluster).await;
    cluster[leader].kill();
    tokio::time::sleep(Duration::from_secs(8)).await;
    cluster[leader].restart();
    tokio::time::sleep(Duration::from_secs(3)).await;
    // Then another node pauses (the others see it gone), and resumes.
    let paused = (leader + 1) % cluster.len();
    cluster[paused].pause(true);
    tokio::time::sleep(Duration::from_secs(5)).await;
    cluster[paused].pause(false);
    tokio::time::sleep(Duration::from_secs(4)).await;
    // Then a follower dies and comes back (it catches up from the others).
    let follower = (stream_leader(&cluster).await + 1) % cluster.len();
    cluster[follower].kill();
    tokio::time::sleep(Duration::from_secs(5)).await;
    cluster[follower].restart();
    tokio::time::sleep(Duration::from_secs(4)).await;
    let answers = writers.stop().await;
    let (acknowledged, recorded) = check_answers(&answers, "the failover");
    let refused = answers.len() - acknowledged.len() - recorded.len();
    assert!(
        acknowledged.len() > 50,
        "too few writes went through: {}",
        acknowledged.len()
    );

    // Both instances ready again by themselves, caught up.
    for svc in &services {
        eventually(
            Duration::from_secs(60),
            "ready after the failover",
            || async {
                let r = Reply::of(Client::new().get(svc.url("/readyz"))).await;
                r.status == StatusCode::OK && r.body["log_head"] == r.body["projection_offset"]
            },
        )
        .await;
    }

    let in_log = check_exactly_once_and_converged(&ops, Some(&pg), &acknowledged, &recorded).await;

    let mut took: Vec<Duration> = answers.iter().map(|(_, t)| *t).collect();
    took.sort();
    eprintln!(
        "failover: {} writes, {} acknowledged, {} recorded but not yet visible ({} keys in the \
         log), {refused} refused with 503 (nothing written), median {:?}, max {:?}",
        answers.len(),
        acknowledged.len(),
        recorded.len(),
        in_log.len(),
        took[took.len() / 2],
        took.last()
    );
}

/// Clients writing (API keys) round-robin through `services` until stopped, each
/// remembering every answer and how long it took.
pub(crate) struct Writers {
    stop: Arc<std::sync::atomic::AtomicBool>,
    tasks: Vec<tokio::task::JoinHandle<Vec<(Answer, Duration)>>>,
}

impl Writers {
    pub(crate) fn start(admin: &str, services: &[String]) -> Writers {
        let http = Client::builder()
            .timeout(REQUEST_TIMEOUT)
            .build()
            .expect("client");
        let stop = Arc::new(std::sync::atomic::AtomicBool::new(false));
        let tasks = (0..CLIENTS)
            .map(|c| {
                let (http, admin, stop) = (http.clone(), admin.to_string(), stop.clone());
                let svc = services[c % services.len()].clone();
                tokio::spawn(async move {
                    let mut answers = Vec::new();
                    let mut n = c * 100_000;
                    while !stop.load(std::sync::atomic::Ordering::Relaxed) {
                        let started = Instant::now();
                        let a = write(&http, &svc, &admin, n).await;
                        answers.push((a, started.elapsed()));
                        n += 1;
                    }
                    answers
                })
            })
            .collect();
        Writers { stop, tasks }
    }

    pub(crate) async fn stop(self) -> Vec<(Answer, Duration)> {
        self.stop.store(true, std::sync::atomic::Ordering::Relaxed);
        let mut answers = Vec::new();
        for task in self.tasks {
            answers.extend(task.await.expect("writer"));
        }
        answers
    }
}

/// Every answer: acknowledged; a 503 that says nothing was written; a 503 that says it
/// was recorded at a position but cannot be read back yet (the read side stalls during the
/// fault); or a 429 (writers looping on fast refusals reach the workspace's rate limit,
/// which answers before anything is written). None hung (the client's timeout would have answered "no answer"). Returns the
/// acknowledged key ids and the positions of writes recorded but not yet visible.
pub(crate) fn check_answers(
    answers: &[(Answer, Duration)],
    during: &str,
) -> (Vec<String>, Vec<u64>) {
    for (a, took) in answers {
        let unavailable = a.status == Some(StatusCode::SERVICE_UNAVAILABLE);
        assert!(
            a.status == Some(StatusCode::CREATED)
                || (unavailable && a.problem.ends_with("/unavailable"))
                || (unavailable
                    && a.problem.ends_with("/projection-lagging")
                    && a.recorded_at.is_some())
                || (a.status == Some(StatusCode::TOO_MANY_REQUESTS)
                    && a.problem.ends_with("/rate-limited")
                    && a.id.is_none()),
            "an answer during {during}: {a:?} after {took:?}"
        );
    }
    let acknowledged = answers.iter().filter_map(|(a, _)| a.id.clone()).collect();
    let recorded = answers.iter().filter_map(|(a, _)| a.recorded_at).collect();
    (acknowledged, recorded)
}

/// After a fault: every acknowledged write is in the log exactly once, every write said
/// recorded is at its position, the log verifies, and the projections (PostgreSQL at `pg`,
/// else the embedded ones in `ops`' data dir) equal a fresh replay. Returns how many times
/// each created key is in the log.
pub(crate) async fn check_exactly_once_and_converged(
    ops: &[String],
    pg: Option<&str>,
    acknowledged: &[String],
    recorded: &[u64],
) -> HashMap<String, usize> {
    let dump = cli(ops, &["dump-log"]).await;
    let mut in_log: HashMap<String, usize> = HashMap::new();
    let mut created_at = std::collections::HashSet::new();
    for line in String::from_utf8_lossy(&dump.stdout).lines() {
        let v: Value = serde_json::from_str(line).expect("dump line");
        let position = v["position"].as_u64().expect("position");
        let envelope: Value =
            serde_json::from_str(v["envelope"].as_str().expect("envelope")).expect("json");
        let body: Value = serde_json::from_slice(
            &base64::Engine::decode(
                &base64::engine::general_purpose::STANDARD,
                envelope["payload"].as_str().expect("payload"),
            )
            .expect("base64"),
        )
        .expect("body");
        if body["kind"] == "api_key.created" {
            created_at.insert(position);
            *in_log
                .entry(body["aggregate_id"].as_str().expect("id").to_string())
                .or_default() += 1;
        }
    }
    for id in acknowledged {
        assert_eq!(in_log.get(id), Some(&1), "acknowledged key {id} in the log");
    }
    assert!(in_log.values().all(|n| *n == 1), "a key created twice");
    for p in recorded {
        assert!(
            created_at.contains(p),
            "a write said recorded at {p} is not"
        );
    }
    let verify = cli(ops, &["verify"]).await;
    assert!(verify.status.success());

    // The projections converged: equal to a fresh replay of the log.
    let embedded = ops
        .iter()
        .position(|a| a == "--data-dir")
        .map(|at| std::path::Path::new(&ops[at + 1]).join("projections.db"));
    let snapshot = || async {
        match (pg, &embedded) {
            (Some(url), _) => crate::model::pg_projections(url).await,
            (None, Some(file)) => crate::model::sqlite_projections(file),
            (None, None) => panic!("no --data-dir for the embedded projections"),
        }
    };
    let before = snapshot().await;
    cli(ops, &["replay"]).await;
    let after = snapshot().await;
    // Only the rows that differ, counted (a row twice on one side is a difference too):
    // the whole projections would drown them.
    let differ = differing_rows(&before, &after);
    assert!(
        differ.is_empty() && before == after,
        "projections differ from a fresh replay (table, row, times before, times after): \
         {differ:#?}"
    );
    in_log
}

/// The rows whose number of copies differs between two snapshots of the projections: (table,
/// row, copies in `before`, copies in `after`).
fn differing_rows<'a>(
    before: &'a std::collections::BTreeMap<String, Vec<String>>,
    after: &'a std::collections::BTreeMap<String, Vec<String>>,
) -> Vec<(&'a str, &'a str, usize, usize)> {
    let count = |rows: Option<&'a Vec<String>>| {
        let mut copies = std::collections::BTreeMap::<&'a str, usize>::new();
        for row in rows.into_iter().flatten() {
            *copies.entry(row.as_str()).or_default() += 1;
        }
        copies
    };
    let tables: std::collections::BTreeSet<&String> = before.keys().chain(after.keys()).collect();
    let mut differ = Vec::new();
    for table in tables {
        let (was, is) = (count(before.get(table)), count(after.get(table)));
        for row in was
            .keys()
            .chain(is.keys())
            .collect::<std::collections::BTreeSet<_>>()
        {
            let (a, b) = (
                was.get(row).copied().unwrap_or(0),
                is.get(row).copied().unwrap_or(0),
            );
            if a != b {
                differ.push((table.as_str(), *row, a, b));
            }
        }
    }
    differ
}
