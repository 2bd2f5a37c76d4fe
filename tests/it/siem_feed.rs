//! `authledger export --follow` (issue 18, the SIEM feed), as a process of its own beside a
//! running `serve`, on both stacks: it streams the workspace's events of the asked kinds as
//! they are appended, each line the envelope exactly as stored (what `dump-log` shows at
//! that position), never another workspace's; it stops cleanly on SIGTERM; started again
//! with `--from-position` it resumes with the same bytes.

use std::time::Duration;

use reqwest::StatusCode;
use serde_json::{json, Value};
use tokio::io::{AsyncBufReadExt, BufReader, Lines};
use tokio::process::{Child, ChildStdout};

use authledger::ledger::envelope::open_envelope;

use crate::harness::{bin, eventually};
use crate::support::{cli, Deployment, Stack, BASE_ENV, NO_RATE_LIMIT};

struct Feed {
    child: Child,
    lines: Lines<BufReader<ChildStdout>>,
}

impl Feed {
    fn start(dep: &Deployment, extra: &[&str]) -> Feed {
        let mut child = tokio::process::Command::new(bin())
            .args(&dep.storage)
            .args(["export", "--workspace", &dep.workspace, "--follow"])
            .args(extra)
            .env_remove("AUTHLEDGER_SIGNING_KEY")
            .env_remove("AUTHLEDGER_NATS_URL")
            .env_remove("AUTHLEDGER_DATABASE_URL")
            .env("RUST_LOG", "warn")
            .stdout(std::process::Stdio::piped())
            .kill_on_drop(true)
            .spawn()
            .expect("start export --follow");
        let lines = BufReader::new(child.stdout.take().expect("stdout")).lines();
        Feed { child, lines }
    }

    async fn next(&mut self) -> Value {
        let line = tokio::time::timeout(Duration::from_secs(20), self.lines.next_line())
            .await
            .expect("a line within 20 s")
            .expect("read")
            .expect("the feed ended");
        serde_json::from_str(&line).expect("a JSON line")
    }

    async fn stop(mut self) {
        let pid = self.child.id().expect("pid");
        nix::sys::signal::kill(
            nix::unistd::Pid::from_raw(i32::try_from(pid).expect("pid")),
            nix::sys::signal::Signal::SIGTERM,
        )
        .expect("SIGTERM");
        let status = tokio::time::timeout(Duration::from_secs(10), self.child.wait())
            .await
            .expect("exits within 10 s")
            .expect("wait");
        assert!(status.success(), "{status:?}");
    }
}

async fn create_key(dep: &Deployment, admin: &str, name: &str) {
    let r = reqwest::Client::new()
        .post(dep.svc.url("/v1/api-keys"))
        .bearer_auth(admin)
        .json(&json!({ "name": name, "role": "viewer" }))
        .send()
        .await
        .expect("create key");
    assert_eq!(r.status(), StatusCode::CREATED);
}

/// The envelope `dump-log` shows at `position`.
async fn dumped(dep: &Deployment, position: u64) -> String {
    let out = cli(&dep.storage, &["dump-log"]).await;
    String::from_utf8_lossy(&out.stdout)
        .lines()
        .filter_map(|l| serde_json::from_str::<Value>(l).ok())
        .find(|v| v["position"] == position)
        .and_then(|v| v["envelope"].as_str().map(str::to_string))
        .expect("the position in dump-log")
}

async fn feed(stack: Stack) {
    let dep = Deployment::start(stack, &[BASE_ENV, NO_RATE_LIMIT].concat()).await;
    let other = dep.other_workspace("Other").await;
    let mut feed = Feed::start(&dep, &["--kind", "api_key."]);
    // The feed records its query first: then it is reading.
    eventually(
        Duration::from_secs(20),
        "the feed's audit.queried",
        || async {
            let r = reqwest::Client::new()
                .get(dep.svc.url("/v1/audit/events?kind=audit.queried&limit=50"))
                .bearer_auth(&dep.admin)
                .send()
                .await
                .expect("audit");
            let body: Value = r.json().await.expect("json");
            body["items"]
                .as_array()
                .is_some_and(|items| items.iter().any(|e| e["actor"]["id"] == "cli-export"))
        },
    )
    .await;

    create_key(&dep, &dep.admin, "first").await;
    create_key(&dep, &other, "another workspace's").await;
    create_key(&dep, &dep.admin, "second").await;
    let mut seen = Vec::new();
    for name in ["first", "second"] {
        let line = feed.next().await;
        assert_eq!(line["type"], "event", "{line}");
        let position = line["position"].as_u64().expect("position");
        let envelope = line["envelope"].as_str().expect("envelope");
        let body = open_envelope(envelope.as_bytes()).expect("envelope").body;
        assert_eq!(body.kind, "api_key.created");
        assert_eq!(body.workspace_id, dep.workspace);
        assert_eq!(body.payload["name"], name, "never the other workspace's");
        assert_eq!(envelope, dumped(&dep, position).await, "as stored");
        seen.push((position, envelope.to_string()));
    }
    assert!(seen[0].0 < seen[1].0);
    feed.stop().await;

    // Resumed from the second line's position: the same bytes first.
    let from = seen[1].0.to_string();
    let mut resumed = Feed::start(&dep, &["--kind", "api_key.", "--from-position", &from]);
    let line = resumed.next().await;
    assert_eq!(line["position"], seen[1].0);
    assert_eq!(line["envelope"], seen[1].1.as_str());
    create_key(&dep, &dep.admin, "third").await;
    let line = resumed.next().await;
    let body = open_envelope(line["envelope"].as_str().expect("envelope").as_bytes())
        .expect("envelope")
        .body;
    assert_eq!(body.payload["name"], "third");
    resumed.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn export_follow_streams_the_workspaces_events_as_signed_embedded() {
    feed(Stack::Embedded).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn export_follow_streams_the_workspaces_events_as_signed_on_jetstream_and_postgres() {
    feed(Stack::JetStreamPg).await;
}
