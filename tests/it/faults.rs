//! The faults of issue 21 that are about the service process and its disk: one `serve`
//! instance SIGKILLed mid-write while the other keeps serving (fault 4), `SIGTERM` under
//! load, and the disk under the embedded log filling up, then freed (fault 6). Each test
//! starts and stops only its own processes (by PID), on loopback, in well under 40 s.

use std::time::{Duration, Instant};

use reqwest::{Client, StatusCode};

use crate::failover::{check_answers, check_exactly_once_and_converged, Answer, Writers};
use crate::harness::eventually;
use crate::support::{Api as _, Deployment, Reply, Stack, BASE_ENV, NO_RATE_LIMIT};

fn envs() -> Vec<(&'static str, &'static str)> {
    [BASE_ENV, NO_RATE_LIMIT].concat()
}

/// The answers of writers through an instance that died under them: a transport error
/// (the connection refused or cut) says nothing either way; every answer that arrived is
/// checked like any other. Returns what `check_answers` does and how many were cut.
fn check_answers_of_the_killed(
    answers: Vec<(Answer, Duration)>,
    during: &str,
) -> (Vec<String>, Vec<u64>, usize) {
    let (answered, cut): (Vec<_>, Vec<_>) =
        answers.into_iter().partition(|(a, _)| a.status.is_some());
    let (acknowledged, recorded) = check_answers(&answered, during);
    (acknowledged, recorded, cut.len())
}

/// Fault 4: two `serve` instances on one JetStream log (one server, or a 3-node cluster
/// with 3 replicas) and one PostgreSQL; writers on both; instance 1 is SIGKILLed
/// mid-write. Instance 0 keeps answering (and stays ready) throughout; every acknowledged
/// write is in the log once, nothing acknowledged is missing, `verify` passes and the
/// projections equal a fresh replay.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_killed_instance_loses_no_acknowledged_write_and_the_other_keeps_serving() {
    killed_instance(Stack::JetStreamPg).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_killed_instance_on_a_3_node_cluster_loses_no_acknowledged_write() {
    killed_instance(Stack::JetStreamClusterPg).await;
}

async fn killed_instance(stack: Stack) {
    let started = Instant::now();
    let mut d = Deployment::start_instances(stack, 2, &envs()).await;
    let survivor = d.svc.url("");
    let doomed = d.instance(1).url("");
    let survivors = Writers::start(&d.admin, std::slice::from_ref(&survivor));
    let victims = Writers::start(&d.admin, std::slice::from_ref(&doomed));

    // The survivor's readiness, sampled from before the kill to well after it.
    let probe = {
        let readyz = d.svc.url("/readyz");
        tokio::spawn(async move {
            let http = Client::new();
            let until = Instant::now() + Duration::from_secs(7);
            let mut seen = Vec::new();
            while Instant::now() < until {
                let r = Reply::of(http.get(&readyz)).await;
                seen.push((r.status, r.text));
                tokio::time::sleep(Duration::from_millis(100)).await;
            }
            seen
        })
    };
    tokio::time::sleep(Duration::from_secs(3)).await;
    let _ = d.more[0].child.kill(); // SIGKILL, by PID: no chance to finish anything
    let _ = d.more[0].child.wait();
    let victim_answers = victims.stop().await;
    let victim_writes = victim_answers.len();
    let (victim_ack, victim_recorded, cut) =
        check_answers_of_the_killed(victim_answers, "an instance's death");
    // The survivor still takes writes after the kill.
    tokio::time::sleep(Duration::from_secs(4)).await;
    let after = create_key(&d.svc.url(""), &d.admin, "after the kill").await;
    assert_eq!(after.status, StatusCode::CREATED, "{}", after.text);
    let answers = survivors.stop().await;
    let (mut acknowledged, mut recorded) = check_answers(&answers, "the other instance's death");
    acknowledged.push(after.str("id"));
    let readiness = probe.await.expect("probe");
    let not_ready: Vec<_> = readiness
        .iter()
        .filter(|(s, _)| *s != StatusCode::OK)
        .collect();
    assert!(
        not_ready.is_empty(),
        "the surviving instance was not ready: {not_ready:#?}"
    );
    eventually(
        Duration::from_secs(20),
        "the survivor caught up",
        || async {
            let r = Reply::of(Client::new().get(d.svc.url("/readyz"))).await;
            r.status == StatusCode::OK && r.body["log_head"] == r.body["projection_offset"]
        },
    )
    .await;
    let survivor_ack = acknowledged.len();
    acknowledged.extend(victim_ack.iter().cloned());
    recorded.extend(victim_recorded.iter().copied());
    assert!(
        survivor_ack > 20 && !victim_ack.is_empty(),
        "too few writes went through: {survivor_ack} and {}",
        victim_ack.len()
    );
    let _ = d.svc.child.kill();
    let _ = d.svc.child.wait();
    let pg = d.database_url.clone().expect("PostgreSQL");
    let in_log =
        check_exactly_once_and_converged(&d.storage, Some(&pg), &acknowledged, &recorded).await;
    // Beyond what was acknowledged or said recorded, the log holds at most the bootstrap
    // key and the writes the kill cut off mid-request (written or not: nobody was told).
    let unanswered = in_log.len() - acknowledged.len() - recorded.len();
    assert!(
        unanswered <= 1 + cut,
        "{unanswered} unexplained keys in the log"
    );
    eprintln!(
        "killed instance ({stack:?}): {} writes through the survivor ({survivor_ack} acknowledged), {} \
         through the killed one ({} acknowledged, {cut} without an answer: cut mid-request or refused); {} keys in the log, \
         readiness sampled {} times (all 200) until {:?} after the kill; took {:?}",
        answers.len() + 1,
        victim_writes,
        victim_ack.len(),
        in_log.len(),
        readiness.len(),
        Duration::from_secs(4),
        started.elapsed()
    );
}

/// The test's own `POST /v1/api-keys` beside the writers, which may hold the workspace at
/// its rate limit: a 429 is answered before anything is written, and a client tries again
/// (for up to 5 s); any other answer is returned.
async fn create_key(base: &str, admin: &str, name: &str) -> Reply {
    let url = format!("{}/v1/api-keys", base.trim_end_matches('/'));
    for _ in 0..50 {
        let r = Reply::of(
            Client::new()
                .post(&url)
                .bearer_auth(admin)
                .json(&serde_json::json!({ "name": name, "role": "viewer" })),
        )
        .await;
        if r.status != StatusCode::TOO_MANY_REQUESTS {
            return r;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    panic!("{name}: rate-limited for 5 s");
}

/// How long a stopping `serve` lets running requests finish in the SIGTERM test.
const GRACE: Duration = Duration::from_secs(10);

/// `SIGTERM` under load: writers keep creating API keys while an agent's tool call waits
/// on a slow upstream (`SLOW`); the service gets SIGTERM in the middle of it. The tool call
/// finishes (200, the upstream's answer); new requests (`/readyz` among them) are answered
/// `503 unavailable` with `Retry-After` while it runs; then the listener closes (new
/// connections are refused) and the process exits 0 well within `--shutdown-grace-secs`.
/// No accepted write is lost and nothing was written that nobody was told about: the log
/// holds exactly the acknowledged keys (and the bootstrap's); it verifies and the
/// projections equal a fresh replay.
async fn sigterm_under_load(stack: Stack) {
    let started = Instant::now();
    let grace = GRACE.as_secs().to_string();
    let envs = [
        &envs()[..],
        &[("AUTHLEDGER_SHUTDOWN_GRACE_SECS", grace.as_str())],
    ]
    .concat();
    let mut env = crate::idempotency::Env::start_with(stack, false, &envs).await;
    let upstream = crate::idempotency::slow_upstream().await;
    let conn = env.tool_connection(&upstream.base_url).await;
    let (_, agent) = env.key_of(&env.d.admin, "agent").await;
    let svc = env.d.svc.url("");
    let writers = Writers::start(&env.d.admin, std::slice::from_ref(&svc));
    tokio::time::sleep(Duration::from_millis(1500)).await;
    let http = Client::new();
    let call = {
        let req = http
            .post(env.d.svc.url("/v1/tools/execute"))
            .bearer_auth(&agent)
            .json(
                &serde_json::json!({ "tool": "custom.send_email", "connection_id": conn,
                "arguments": { "to": "bob@example.com" } }),
            );
        tokio::spawn(Reply::of(req))
    };
    eventually(
        Duration::from_secs(10),
        "the tool call at the upstream",
        || async { upstream.hits_to("/send").len() == 1 },
    )
    .await;
    env.d.svc.signal(nix::sys::signal::Signal::SIGTERM);
    let termed = Instant::now();

    // While the tool call runs: new requests are refused, saying so (a fresh connection
    // each, so they are new requests and not a kept-alive connection's).
    let fresh = Client::builder()
        .pool_max_idle_per_host(0)
        .build()
        .expect("client");
    tokio::time::sleep(Duration::from_millis(200)).await;
    let ready = Reply::of(fresh.get(env.d.svc.url("/readyz"))).await;
    ready.expect(StatusCode::SERVICE_UNAVAILABLE, "unavailable");
    assert!(ready.text.contains("shutting down"), "{}", ready.text);
    assert_eq!(
        ready.headers.get("retry-after").map(|v| v.as_bytes()),
        Some(&b"1"[..])
    );
    let refused = Reply::of(
        fresh
            .post(env.d.svc.url("/v1/api-keys"))
            .bearer_auth(&env.d.admin)
            .json(&serde_json::json!({ "name": "after SIGTERM", "role": "viewer" })),
    )
    .await;
    refused.expect(StatusCode::SERVICE_UNAVAILABLE, "unavailable");
    assert!(
        termed.elapsed() < crate::idempotency::SLOW,
        "the checks above must run while the tool call does"
    );

    // The running tool call finishes with the upstream's answer.
    let answered = call.await.expect("tool call");
    let call_id = answered.str("tool_call_id");
    assert_eq!(answered.status, StatusCode::OK, "{}", answered.text);
    assert_eq!(answered.body["body"], serde_json::json!({ "sent": true }));

    // Then the process exits, 0, within the grace period; new connections are refused.
    let exit = loop {
        if let Some(status) = env.d.svc.child.try_wait().expect("wait") {
            break status;
        }
        assert!(
            termed.elapsed() < GRACE,
            "serve still running {:?} after SIGTERM",
            termed.elapsed()
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    };
    let exited_after = termed.elapsed();
    assert!(exit.success(), "serve exited with {exit:?}");
    let answers = writers.stop().await;
    let after = fresh.get(env.d.svc.url("/readyz")).send().await;
    assert!(
        after.as_ref().is_err_and(reqwest::Error::is_connect),
        "{after:?}"
    );

    // Writes: answered 201 or 503 (nothing written), or refused at connect once the
    // listener closed; none cut off mid-request, so the log holds exactly the acknowledged.
    let (answered, unanswered): (Vec<_>, Vec<_>) =
        answers.into_iter().partition(|(a, _)| a.status.is_some());
    let (acknowledged, recorded) = check_answers(&answered, "SIGTERM");
    let refused_503 = answered.len() - acknowledged.len() - recorded.len();
    let in_log = check_exactly_once_and_converged(
        &env.d.storage,
        env.d.database_url.as_deref(),
        &acknowledged,
        &recorded,
    )
    .await;
    // The log's keys: the bootstrap's, the agent's, and the writers' acknowledged ones.
    assert_eq!(
        in_log.len(),
        2 + acknowledged.len() + recorded.len(),
        "a write reached the log without its client being told"
    );
    assert!(
        acknowledged.len() > 10,
        "too few writes: {}",
        acknowledged.len()
    );
    assert_eq!(upstream.hits_to("/send").len(), 1);
    // The call's `tool.completed` follows its answer: the stopping server waited for it, so
    // the call has both its events (`tool.requested`, `tool.completed`) in the log.
    let dump = crate::support::cli(&env.d.storage, &["dump-log"]).await;
    let of_call = String::from_utf8_lossy(&dump.stdout)
        .lines()
        .filter(|l| l.contains(&format!(".tool_call.{call_id}\"")))
        .count();
    assert_eq!(of_call, 2, "the tool call's events in the log");
    eprintln!(
        "SIGTERM ({stack:?}): {} writes, {} acknowledged, {refused_503} answered 503 while \
         stopping, {} refused at connect after the listener closed; {} keys in the log; the \
         tool call running at SIGTERM answered 200; exit 0 {exited_after:?} after SIGTERM \
         (grace {GRACE:?}); took {:?}",
        answered.len() + unanswered.len(),
        acknowledged.len(),
        unanswered.len(),
        in_log.len(),
        started.elapsed()
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sigterm_under_load_finishes_running_requests_embedded() {
    sigterm_under_load(Stack::Embedded).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sigterm_under_load_finishes_running_requests_on_jetstream_and_postgres() {
    sigterm_under_load(Stack::JetStreamPg).await;
}

/// A tmpfs of `size` mounted on `dir` for one test (needs root), unmounted on drop.
struct SmallDisk(std::path::PathBuf);

impl SmallDisk {
    fn mount(dir: &std::path::Path, size: &str) -> Result<SmallDisk, String> {
        std::fs::create_dir_all(dir).map_err(|e| e.to_string())?;
        let out = std::process::Command::new("mount")
            .args(["-t", "tmpfs", "-o", &format!("size={size}"), "tmpfs"])
            .arg(dir)
            .output()
            .map_err(|e| e.to_string())?;
        match out.status.success() {
            true => Ok(SmallDisk(dir.to_path_buf())),
            false => Err(String::from_utf8_lossy(&out.stderr).into_owned()),
        }
    }
}

impl Drop for SmallDisk {
    fn drop(&mut self) {
        let _ = std::process::Command::new("umount")
            .arg("-l")
            .arg(&self.0)
            .status();
    }
}

/// Fills the filesystem under `file` (appending 1 MiB at a time, until it refuses): the
/// bytes it took.
fn fill(file: &std::path::Path) -> u64 {
    use std::io::Write as _;
    let mut f = std::fs::OpenOptions::new()
        .create(true)
        .append(true)
        .open(file)
        .expect("ballast");
    let chunk = vec![0xa5u8; 1 << 20];
    let mut written = 0;
    while let Ok(n) = f.write(&chunk) {
        if n == 0 {
            break;
        }
        written += n as u64;
    }
    let _ = f.sync_all();
    written
}

/// Fault 6: the disk under the embedded log fills up under writes (a 96 MiB tmpfs, filled
/// by a ballast file), then the ballast is deleted. While it is full, writes are `503
/// disk-full` (a problem of its own; never a 2xx for an event not written, never a 500)
/// or `503 unavailable`, and `/readyz` is 503
/// saying the disk is full; once space is freed the service is ready again by itself and
/// takes writes; every acknowledged write is in the log once, `verify` passes (no torn or
/// corrupted log) and the projections equal a fresh replay.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_full_disk_under_the_embedded_log_refuses_writes_and_recovers() {
    let started = Instant::now();
    let dir = tempfile::tempdir().expect("dir");
    let mnt = dir.path().join("small-disk");
    // Room for what the files may hold after the ballast is gone and the log's 16 MiB
    // readiness margin: each WAL may reach 16 MiB before it is started over (`src/wal.rs`),
    // and on a loaded machine both do within the first seconds.
    let disk = match SmallDisk::mount(&mnt, "96m") {
        Ok(disk) => disk,
        Err(e) => {
            eprintln!(
                "SKIPPED: a full disk needs a small tmpfs and it cannot be mounted here: {e}"
            );
            return;
        }
    };
    let storage = crate::harness::args(&["--data-dir", &mnt.join("data").display().to_string()]);
    // The service's own output goes outside the small disk.
    let svc = crate::harness::Service::start(&storage, &envs(), dir.path()).await;
    let printed: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(&svc.stdout_path).expect("stdout"))
            .expect("the first serve prints its admin key");
    let admin = printed["admin_api_key"].as_str().expect("key").to_string();
    let http = Client::new();
    let writers = Writers::start(&admin, &[svc.url("")]);
    tokio::time::sleep(Duration::from_millis(1500)).await;

    let ballast = mnt.join("ballast");
    let filled = fill(&ballast);
    let full_at = Instant::now();
    let not_ready = std::sync::Mutex::new(String::new());
    eventually(
        Duration::from_secs(15),
        "readiness to say the disk is full",
        || async {
            let r = Reply::of(http.get(svc.url("/readyz"))).await;
            let full =
                r.status == StatusCode::SERVICE_UNAVAILABLE && r.text.contains("disk is full");
            if full {
                *not_ready.lock().expect("lock") = r.text;
            }
            full
        },
    )
    .await;
    let noticed_after = full_at.elapsed();
    // A write while the disk is full: refused, saying nothing was written, even when its
    // own pages would still fit in the log's reused WAL (the projections on the same disk
    // could not follow it). Should a write get through all the same it is checked like
    // the others; the ballast takes what was freed and the write is tried again.
    let (mut through_full, mut recorded_while_full) = (Vec::new(), Vec::new());
    let mut refused_for_space = 0;
    for n in 0..5 {
        fill(&ballast);
        let r = create_key(&svc.url(""), &admin, &format!("on a full disk {n}")).await;
        if r.status == StatusCode::CREATED {
            through_full.push(r.str("id"));
            continue;
        }
        // Written, but the projections (on the same full disk) cannot show it yet.
        if r.problem() == "projection-lagging" {
            recorded_while_full.push(r.body["position"].as_u64().expect("position"));
            continue;
        }
        // A problem of its own (not the general `unavailable`): the operator must free space.
        r.expect(StatusCode::SERVICE_UNAVAILABLE, "disk-full");
        assert!(
            r.body["title"]
                .as_str()
                .is_some_and(|t| t.contains("disk is full") && t.contains("nothing was written")),
            "the refusal names the full disk: {}",
            r.text
        );
        refused_for_space += 1;
        break;
    }
    assert!(
        through_full.len() < 5,
        "the disk never filled: {through_full:?}"
    );
    assert_eq!(refused_for_space, 1, "a write refused for the full disk");
    tokio::time::sleep(Duration::from_secs(1)).await;

    std::fs::remove_file(&ballast).expect("free the disk");
    let freed_at = Instant::now();
    let last = std::sync::Mutex::new(String::new());
    let waited = tokio::time::timeout(Duration::from_secs(20), async {
        loop {
            let r = Reply::of(http.get(svc.url("/readyz"))).await;
            if r.status == StatusCode::OK {
                break;
            }
            *last.lock().expect("lock") = r.text;
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    })
    .await;
    assert!(
        waited.is_ok(),
        "not ready again 20 s after space was freed: {}",
        last.lock().expect("lock")
    );
    let ready_after = freed_at.elapsed();
    let after = create_key(&svc.url(""), &admin, "after space is freed").await;
    assert_eq!(after.status, StatusCode::CREATED, "{}", after.text);
    tokio::time::sleep(Duration::from_secs(1)).await;
    let answers = writers.stop().await;
    let writes = answers.len() + 1;
    // The writers' refusals for space: `503 disk-full`, nothing written (checked below by
    // the log's count). The ledger retries an append refused for space, so a writer may
    // never see one.
    let (for_space, answers): (Vec<_>, Vec<_>) = answers
        .into_iter()
        .partition(|(a, _)| a.problem.ends_with("/disk-full"));
    for (a, took) in &for_space {
        assert_eq!(
            a.status,
            Some(StatusCode::SERVICE_UNAVAILABLE),
            "{a:?} after {took:?}"
        );
    }
    let (mut acknowledged, mut recorded) = check_answers(&answers, "a full disk");
    acknowledged.push(after.str("id"));
    // The writers' other refusals (the test's own refused write is not among the answers).
    let unavailable = writes - acknowledged.len() - recorded.len() - for_space.len();
    acknowledged.extend(through_full);
    recorded.extend(recorded_while_full);
    eventually(
        Duration::from_secs(20),
        "the projections caught up",
        || async {
            let r = Reply::of(http.get(svc.url("/readyz"))).await;
            r.status == StatusCode::OK && r.body["log_head"] == r.body["projection_offset"]
        },
    )
    .await;
    drop(svc);
    let in_log = check_exactly_once_and_converged(&storage, None, &acknowledged, &recorded).await;
    assert_eq!(
        in_log.len(),
        1 + acknowledged.len() + recorded.len(),
        "a refused write is in the log"
    );
    drop(disk);
    eprintln!(
        "full disk: {writes} writes, {} acknowledged, {} recorded but not yet visible, {} \
         refused with 503 disk-full and {unavailable} with 503 unavailable (nothing written) \
         besides the test's own; {} keys in the log; \
         ballast {filled} bytes; \
         readiness said so {noticed_after:?} after the disk filled ({}); ready again \
         {ready_after:?} after space was freed; took {:?}",
        acknowledged.len(),
        recorded.len(),
        for_space.len(),
        in_log.len(),
        not_ready.lock().expect("lock"),
        started.elapsed()
    );
}
