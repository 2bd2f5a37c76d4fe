//! The compliance audit view over HTTP: filtered queries with a cursor that stays correct
//! while events arrive, one event exactly as signed with its signature checked and its
//! inclusion proof to a signed checkpoint, checkpoint consistency proofs, the auditors
//! audited, and `verify` recomputing every checkpoint root from the log.

use std::time::Duration;

use reqwest::{Client, Method, StatusCode};
use serde_json::{json, Value};
use sha2::{Digest, Sha256};

use authledger::audit::merkle;

use crate::harness::{args, eventually, run_cli};
use crate::support::{data_dir, Deployment, Stack, TestClock};

struct Env {
    d: Deployment,
    /// The data dir, for CLI commands.
    data: String,
    http: Client,
    other_admin: String,
}

impl std::ops::Deref for Env {
    type Target = Deployment;
    fn deref(&self) -> &Deployment {
        &self.d
    }
}

impl Env {
    async fn call(
        &self,
        key: &str,
        method: Method,
        path: &str,
        body: Option<Value>,
    ) -> (StatusCode, Value) {
        let mut req = self
            .http
            .request(method, self.svc.url(path))
            .bearer_auth(key);
        if let Some(b) = body {
            req = req.json(&b);
        }
        let r = req.send().await.expect("request");
        let s = r.status();
        (s, r.json().await.unwrap_or(Value::Null))
    }

    async fn key(&self, role: &str) -> String {
        let (s, v) = self
            .call(
                &self.admin,
                Method::POST,
                "/v1/api-keys",
                Some(json!({"name": role, "role": role})),
            )
            .await;
        assert_eq!(s, StatusCode::CREATED, "{v}");
        v["key"].as_str().expect("key").to_string()
    }

    async fn auth_config(&self, key: &str, name: &str) -> String {
        let (s, v) = self
            .call(
                key,
                Method::POST,
                "/v1/auth-configs",
                Some(
                    json!({"name": name, "provider": "custom", "auth_type": "api_key",
                    "api_key": {"key_name": "X-Api-Key", "location": "header", "prefix": null}}),
                ),
            )
            .await;
        assert_eq!(s, StatusCode::CREATED, "{v}");
        v["id"].as_str().expect("id").to_string()
    }

    /// Every envelope of the log by position, as stored (for hashes computed here).
    fn envelopes(&self) -> Vec<Vec<u8>> {
        let out = run_cli(&args(&["--data-dir", &self.data, "dump-log"]));
        assert!(out.status.success());
        String::from_utf8_lossy(&out.stdout)
            .lines()
            .map(|l| {
                let v: Value = serde_json::from_str(l).expect("line");
                v["envelope"]
                    .as_str()
                    .expect("envelope")
                    .as_bytes()
                    .to_vec()
            })
            .collect()
    }
}

async fn start() -> Env {
    start_with(&[]).await
}

/// `start` with `extra_env` on top.
async fn start_with(extra_env: &[(&str, &str)]) -> Env {
    // Queries come in bursts with one key: no request rate limit.
    let envs = [
        &[
            ("AUTHLEDGER_CHECKPOINT_SCHEDULE", "* * * * * *"),
            ("AUTHLEDGER_REFRESH_SCHEDULE", "off"),
        ][..],
        crate::support::NO_RATE_LIMIT,
        extra_env,
    ]
    .concat();
    let d = Deployment::start(Stack::Embedded, &envs).await;
    let other_admin = d.other_workspace("Other").await;
    Env {
        data: data_dir(d.dir.path()).display().to_string(),
        d,
        http: Client::new(),
        other_admin,
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn audit_queries_filter_page_and_are_themselves_audited() {
    let env = start().await;
    let auditor = env.key("auditor").await;
    let viewer = env.key("viewer").await;
    let mut configs = Vec::new();
    for i in 0..5 {
        configs.push(env.auth_config(&env.admin, &format!("config {i}")).await);
    }
    env.auth_config(&env.other_admin, "theirs").await;

    // Role check: viewers read state, not audit.
    let (s, _) = env
        .call(&viewer, Method::GET, "/v1/audit/events", None)
        .await;
    assert_eq!(s, StatusCode::FORBIDDEN);

    // Exact kind and prefix; only this workspace's events.
    let (s, v) = env
        .call(
            &auditor,
            Method::GET,
            "/v1/audit/events?kind=auth_config.created&order=asc",
            None,
        )
        .await;
    assert_eq!(s, StatusCode::OK, "{v}");
    let ids: Vec<&str> = v["items"]
        .as_array()
        .expect("items")
        .iter()
        .map(|e| e["auth_config_id"].as_str().expect("id"))
        .collect();
    assert_eq!(ids, configs.iter().map(String::as_str).collect::<Vec<_>>());
    let (_, v) = env
        .call(
            &auditor,
            Method::GET,
            "/v1/audit/events?kind=api_key.",
            None,
        )
        .await;
    let kinds: Vec<&str> = v["items"]
        .as_array()
        .expect("items")
        .iter()
        .map(|e| e["kind"].as_str().expect("kind"))
        .collect();
    assert!(
        !kinds.is_empty() && kinds.iter().all(|k| k.starts_with("api_key.")),
        "{kinds:?}"
    );
    // Newest first by default.
    let positions: Vec<i64> = v["items"]
        .as_array()
        .expect("items")
        .iter()
        .map(|e| e["position"].as_i64().expect("p"))
        .collect();
    assert!(positions.windows(2).all(|w| w[0] > w[1]), "{positions:?}");

    // A cursor stays correct while new events arrive: page 2 by 2 (ascending), creating an
    // auth config between pages; every original event comes exactly once, in order.
    let mut seen: Vec<i64> = Vec::new();
    let mut cursor: Option<String> = None;
    let mut pages = 0;
    loop {
        let path = match &cursor {
            Some(c) => {
                format!("/v1/audit/events?kind=auth_config.created&order=asc&limit=2&cursor={c}")
            }
            None => "/v1/audit/events?kind=auth_config.created&order=asc&limit=2".to_string(),
        };
        let (s, v) = env.call(&auditor, Method::GET, &path, None).await;
        assert_eq!(s, StatusCode::OK, "{v}");
        seen.extend(
            v["items"]
                .as_array()
                .expect("items")
                .iter()
                .map(|e| e["position"].as_i64().expect("p")),
        );
        pages += 1;
        if pages == 1 {
            env.auth_config(&env.admin, "arrived while paging").await;
        }
        match v["next_cursor"].as_str() {
            Some(c) => cursor = Some(c.to_string()),
            None => break,
        }
    }
    assert_eq!(seen.len(), 6, "five before paging, one while: {seen:?}");
    assert!(seen.windows(2).all(|w| w[0] < w[1]));

    // Bad filters are refused with a clear problem, and are not recorded as queries.
    for bad in [
        "limit=0",
        "limit=1001",
        "from=yesterday",
        "order=sideways",
        "kind=conn%25",
        "cursor=nope",
        "nope=1",
    ] {
        let (s, v) = env
            .call(
                &auditor,
                Method::GET,
                &format!("/v1/audit/events?{bad}"),
                None,
            )
            .await;
        assert_eq!(s, StatusCode::BAD_REQUEST, "{bad}: {v}");
    }

    // Time window: everything so far is before `to=now+1h` and after `from=now-1h`.
    let now = time::OffsetDateTime::now_utc();
    let fmt = |t: time::OffsetDateTime| {
        t.format(&time::format_description::well_known::Rfc3339)
            .expect("time")
    };
    let path = format!(
        "/v1/audit/events?kind=auth_config.created&from={}&to={}",
        fmt(now - time::Duration::hours(1)).replace('+', "%2B"),
        fmt(now + time::Duration::hours(1)).replace('+', "%2B")
    );
    let (_, v) = env.call(&auditor, Method::GET, &path, None).await;
    assert_eq!(v["items"].as_array().expect("items").len(), 6);
    let path = format!(
        "/v1/audit/events?kind=auth_config.created&to={}",
        fmt(now - time::Duration::hours(1)).replace('+', "%2B")
    );
    let (_, v) = env.call(&auditor, Method::GET, &path, None).await;
    assert_eq!(v["items"].as_array().expect("items").len(), 0);

    // The auditors are audited: each query above is an `audit.queried` event naming the
    // asker and the filters (not the results). A query answers once its event is durable,
    // not projected: wait for the five above to show.
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(10);
    let v = loop {
        let (_, v) = env
            .call(
                &auditor,
                Method::GET,
                "/v1/audit/events?kind=audit.queried&order=asc&limit=1000",
                None,
            )
            .await;
        if v["items"].as_array().expect("items").len() >= 5 || std::time::Instant::now() > deadline
        {
            break v;
        }
        tokio::time::sleep(std::time::Duration::from_millis(20)).await;
    };
    let items = v["items"].as_array().expect("items");
    assert!(items.len() >= 5, "{v}");
    let (_, mine) = env
        .call(&env.admin, Method::GET, "/v1/api-keys", None)
        .await;
    let auditor_id = mine["items"]
        .as_array()
        .expect("keys")
        .iter()
        .find(|k| k["role"] == "auditor")
        .expect("auditor")["id"]
        .clone();
    assert!(items.iter().all(|e| e["actor"]["id"] == auditor_id));
    let detail = env
        .call(
            &auditor,
            Method::GET,
            &format!(
                "/v1/audit/events/{}",
                items[0]["event_id"].as_str().expect("id")
            ),
            None,
        )
        .await
        .1;
    assert_eq!(detail["body"]["payload"]["route"], "/v1/audit/events");
    assert_eq!(
        detail["body"]["payload"]["filters"]["kind"],
        "auth_config.created"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn events_come_as_signed_with_inclusion_proofs_and_checkpoints_are_consistent() {
    let env = start().await;
    let auditor = env.key("auditor").await;
    let config = env.auth_config(&env.admin, "proved").await;
    let theirs = env.auth_config(&env.other_admin, "theirs").await;
    let (_, v) = env
        .call(
            &auditor,
            Method::GET,
            &format!("/v1/audit/events?auth_config_id={config}"),
            None,
        )
        .await;
    let event = v["items"][0].clone();
    let event_id = event["event_id"].as_str().expect("id").to_string();
    let position = event["position"].as_u64().expect("position");

    // Exactly as signed, signature checked; an inclusion proof once a checkpoint covers it.
    let mut detail = Value::Null;
    for _ in 0..100 {
        let (s, v) = env
            .call(
                &auditor,
                Method::GET,
                &format!("/v1/audit/events/{event_id}"),
                None,
            )
            .await;
        assert_eq!(s, StatusCode::OK, "{v}");
        if !v["inclusion"].is_null() {
            detail = v;
            break;
        }
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    assert!(
        !detail.is_null(),
        "no checkpoint covered the event within 20 s"
    );
    assert_eq!(detail["verified"], true);
    assert_eq!(detail["body"]["event_id"], event_id.as_str());
    let envelopes = env.envelopes();
    let raw = &envelopes[(position - 1) as usize];
    assert_eq!(
        serde_json::from_slice::<Value>(raw).expect("envelope"),
        detail["envelope"]
    );
    // The proof, checked here from the raw envelope bytes and the signed checkpoint.
    let leaf = merkle::leaf_hash(&Sha256::digest(raw));
    let inc = &detail["inclusion"];
    let proof: Vec<merkle::Hash> = inc["proof"]
        .as_array()
        .expect("proof")
        .iter()
        .map(|h| merkle::from_hex(h.as_str().expect("hex")).expect("hash"))
        .collect();
    let cp = &inc["checkpoint"];
    let tree_size = cp["tree_size"].as_u64().expect("size");
    let root = merkle::from_hex(cp["merkle_root"].as_str().expect("root")).expect("root");
    assert!(merkle::verify_inclusion(
        &leaf,
        position - 1,
        tree_size,
        &proof,
        &root
    ));
    // ... and the checkpoint's root is the tree of the raw log.
    let leaves: Vec<merkle::Hash> = envelopes[..tree_size as usize]
        .iter()
        .map(|e| merkle::leaf_hash(&Sha256::digest(e)))
        .collect();
    assert_eq!(merkle::root(&leaves), root);

    // Another workspace's event id looks exactly like an unknown one.
    let (_, v) = env
        .call(
            &env.other_admin,
            Method::GET,
            &format!("/v1/audit/events?auth_config_id={theirs}"),
            None,
        )
        .await;
    let their_event = v["items"][0]["event_id"].as_str().expect("id").to_string();
    let (s1, v1) = env
        .call(
            &auditor,
            Method::GET,
            &format!("/v1/audit/events/{their_event}"),
            None,
        )
        .await;
    let (s2, v2) = env
        .call(
            &auditor,
            Method::GET,
            "/v1/audit/events/01900000-0000-7000-8000-00000000beef",
            None,
        )
        .await;
    assert_eq!((s1, s2), (StatusCode::NOT_FOUND, StatusCode::NOT_FOUND));
    assert_eq!(v1, v2);

    // More events, another checkpoint; the first checkpoint's tree is a prefix of the last.
    env.auth_config(&env.admin, "after the first checkpoint")
        .await;
    let mut list = Value::Null;
    for _ in 0..100 {
        let (_, v) = env
            .call(&auditor, Method::GET, "/v1/audit/checkpoints", None)
            .await;
        if v["items"].as_array().is_some_and(|a| a.len() >= 2) {
            list = v;
            break;
        }
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    let items = list["items"]
        .as_array()
        .expect("two checkpoints within 20 s");
    let (first, last) = (&items[0], &items[items.len() - 1]);
    let n = last["sequence"].as_u64().expect("seq");
    let (s, c) = env
        .call(
            &auditor,
            Method::GET,
            &format!("/v1/audit/checkpoints/{n}/consistency?from=1"),
            None,
        )
        .await;
    assert_eq!(s, StatusCode::OK, "{c}");
    let proof: Vec<merkle::Hash> = c["proof"]
        .as_array()
        .expect("proof")
        .iter()
        .map(|h| merkle::from_hex(h.as_str().expect("hex")).expect("hash"))
        .collect();
    let r = |v: &Value| merkle::from_hex(v["merkle_root"].as_str().expect("root")).expect("root");
    assert!(merkle::verify_consistency(
        first["tree_size"].as_u64().expect("m"),
        last["tree_size"].as_u64().expect("n"),
        &r(first),
        &r(last),
        &proof
    ));
    assert_eq!(
        last["previous_tree_size"],
        items[items.len() - 2]["tree_size"]
    );
    let (s, _) = env
        .call(
            &auditor,
            Method::GET,
            &format!("/v1/audit/checkpoints/{n}/consistency?from={}", n + 5),
            None,
        )
        .await;
    assert_eq!(s, StatusCode::NOT_FOUND);

    // `verify` recomputes every checkpoint root from the log.
    drop(env.d.svc);
    let out = run_cli(&args(&["--data-dir", &env.data, "verify", "--json"]));
    let report: Value = serde_json::from_slice(&out.stdout).expect("report");
    assert_eq!(report["ok"], true, "{report}");
    assert!(
        report["checkpoints"].as_u64().expect("checkpoints") >= 2,
        "{report}"
    );
}

/// Runs tools/verify-export with the keys pinned from the data dir's ring.json.
fn verify_export(path: &std::path::Path, data: &str) -> (i32, String) {
    let script = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("tools/verify-export");
    let out = std::process::Command::new("python3")
        .arg(script)
        .arg("--ring")
        .arg(std::path::Path::new(data).join("keys/ring.json"))
        .arg(path)
        .output()
        .expect("run tools/verify-export");
    (
        out.status.code().unwrap_or(-1),
        String::from_utf8_lossy(&out.stdout).to_string() + &String::from_utf8_lossy(&out.stderr),
    )
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn exports_stream_and_pass_the_independent_verifier_until_tampered() {
    let env = start().await;
    let auditor = env.key("auditor").await;
    for i in 0..8 {
        env.auth_config(&env.admin, &format!("exported {i}")).await;
    }
    env.auth_config(&env.other_admin, "not exported").await;
    // Wait for a checkpoint to cover everything so far, then add events it does not cover.
    let head = env.envelopes().len() as u64;
    eventually(
        Duration::from_secs(20),
        "a checkpoint covering the setup",
        || {
            let (http, url, key) = (
                env.http.clone(),
                env.svc.url("/v1/audit/checkpoints"),
                auditor.clone(),
            );
            async move {
                let v: Value = match http.get(url).bearer_auth(key).send().await {
                    Ok(r) => r.json().await.unwrap_or(Value::Null),
                    Err(_) => return false,
                };
                v["items"]
                    .as_array()
                    .and_then(|a| a.last())
                    .and_then(|c| c["tree_size"].as_u64())
                    .is_some_and(|n| n >= head)
            }
        },
    )
    .await;

    let r = env
        .http
        .get(env.svc.url("/v1/audit/export?format=jsonl"))
        .bearer_auth(&auditor)
        .send()
        .await
        .expect("export");
    assert_eq!(r.status(), StatusCode::OK);
    assert_eq!(r.headers()["content-type"], "application/x-ndjson");
    let text = r.text().await.expect("body");
    let lines: Vec<Value> = text
        .lines()
        .map(|l| serde_json::from_str(l).expect("json line"))
        .collect();
    assert_eq!(lines[0]["type"], "header");
    assert_eq!(lines.last().expect("footer")["type"], "footer");
    let events = lines.iter().filter(|l| l["type"] == "event").count();
    let proofs = lines.iter().filter(|l| l["type"] == "inclusion").count();
    assert!(
        events >= 10 && proofs >= 9,
        "events {events}, proofs {proofs}"
    );
    // Only this workspace's events.
    assert!(!text.contains("not exported"));

    let dir = tempfile::tempdir().expect("dir");
    let clean = dir.path().join("clean.jsonl");
    std::fs::write(&clean, &text).expect("write");
    let (code, out) = verify_export(&clean, &env.data);
    assert_eq!(code, 0, "{out}");

    // Tampered copies fail, naming the line.
    let original: Vec<&str> = text.lines().collect();
    let first_event = original
        .iter()
        .position(|l| l.contains("\"type\":\"event\""))
        .expect("event line");
    let tamper = |name: &str, f: &dyn Fn(&mut Vec<String>)| {
        let mut copy: Vec<String> = original.iter().map(|s| s.to_string()).collect();
        f(&mut copy);
        let p = dir.path().join(name);
        std::fs::write(&p, copy.join("\n") + "\n").expect("write");
        verify_export(&p, &env.data)
    };
    // A flipped character inside an event's signed payload.
    let (code, out) = tamper("payload.jsonl", &|c| {
        let line = &mut c[first_event];
        let at = line.find("payload\\\":\\\"").expect("payload") + 20;
        let ch = line.as_bytes()[at];
        let replacement = if ch == b'A' { "B" } else { "A" };
        line.replace_range(at..at + 1, replacement);
    });
    assert_eq!(code, 1, "{out}");
    assert!(out.contains(&format!("line {}", first_event + 1)), "{out}");
    // An altered inclusion proof.
    let (code, out) = tamper("proof.jsonl", &|c| {
        let i = c
            .iter()
            .position(|l| l.contains("\"type\":\"inclusion\"") && l.contains("\"proof\":[\""))
            .expect("proof");
        let at = c[i].find("\"proof\":[\"").expect("proof") + 10;
        let ch = c[i].as_bytes()[at];
        let replacement = if ch == b'0' { "1" } else { "0" };
        c[i].replace_range(at..at + 1, replacement);
    });
    assert_eq!(code, 1, "{out}");
    // A dropped event line.
    let (code, out) = tamper("dropped.jsonl", &|c| {
        c.remove(first_event + 1);
    });
    assert_eq!(code, 1, "{out}");
    // No footer (a truncated export).
    let (code, out) = tamper("truncated.jsonl", &|c| {
        c.pop();
    });
    assert_eq!(code, 1, "{out}");

    // CSV: the flattened view, one row per event, formulas defused.
    let r = env
        .http
        .get(env.svc.url("/v1/audit/export?format=csv&kind=auth_config."))
        .bearer_auth(&auditor)
        .send()
        .await
        .expect("csv");
    assert_eq!(r.status(), StatusCode::OK);
    let csv = r.text().await.expect("csv");
    let rows: Vec<&str> = csv.lines().collect();
    assert!(rows[0].starts_with("position,event_id,occurred_at"));
    assert_eq!(rows.len(), 1 + 8);

    // The CLI writes the same document (plus what happened since), and it verifies too.
    let workspace = lines[0]["workspace_id"].as_str().expect("ws").to_string();
    let out = run_cli(&args(&[
        "--data-dir",
        &env.data,
        "export",
        "--workspace",
        &workspace,
    ]));
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let cli = dir.path().join("cli.jsonl");
    std::fs::write(&cli, &out.stdout).expect("write");
    let (code, report) = verify_export(&cli, &env.data);
    assert_eq!(code, 0, "{report}");

    // Every export was recorded with its filters.
    let (_, v) = env
        .call(
            &auditor,
            Method::GET,
            "/v1/audit/events?kind=audit.queried&limit=1000",
            None,
        )
        .await;
    let routes: Vec<&str> = v["items"]
        .as_array()
        .expect("items")
        .iter()
        .map(|e| e["kind"].as_str().unwrap_or(""))
        .collect();
    assert!(routes.len() >= 3, "{routes:?}");
    // Bad parameters are refused before anything is streamed.
    let (s, _) = env
        .call(&auditor, Method::GET, "/v1/audit/export?format=xml", None)
        .await;
    assert_eq!(s, StatusCode::BAD_REQUEST);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn point_in_time_reads_and_the_access_report_rebuild_the_past_from_the_log() {
    let clock = TestClock::new();
    let env = start_with(&[clock.env()]).await;
    let auditor = env.key("auditor").await;
    let config = env.auth_config(&env.admin, "before").await;
    let (s, conn) = env
        .call(
            &env.admin,
            Method::POST,
            "/v1/connections",
            Some(json!({"auth_config_id": config, "user_id": "alice", "credentials": {"api_key": "k-123"}})),
        )
        .await;
    assert_eq!(s, StatusCode::CREATED, "{conn}");
    let id = conn["id"].as_str().expect("id").to_string();
    // The service's time jumps ten seconds; "then" is halfway, after every event so far and
    // before every event from here on.
    clock.advance(Duration::from_secs(10));
    let then = (clock.now() - time::Duration::seconds(5))
        .format(&time::format_description::well_known::Rfc3339)
        .expect("time");
    let (s, _) = env
        .call(
            &env.admin,
            Method::PATCH,
            &format!("/v1/auth-configs/{config}"),
            Some(json!({"name": "after"})),
        )
        .await;
    assert_eq!(s, StatusCode::OK);
    let (s, _) = env
        .call(
            &env.admin,
            Method::POST,
            &format!("/v1/connections/{id}/revoke"),
            None,
        )
        .await;
    assert_eq!(s, StatusCode::OK);
    let (s, _) = env
        .call(
            &env.admin,
            Method::DELETE,
            &format!("/v1/connections/{id}"),
            None,
        )
        .await;
    assert_eq!(s, StatusCode::NO_CONTENT);

    // Now: deleted (404) and renamed; then: active and named "before".
    let (s, _) = env
        .call(
            &auditor,
            Method::GET,
            &format!("/v1/connections/{id}"),
            None,
        )
        .await;
    assert_eq!(s, StatusCode::NOT_FOUND);
    let (s, past) = env
        .call(
            &auditor,
            Method::GET,
            &format!("/v1/connections/{id}?as_of={then}"),
            None,
        )
        .await;
    assert_eq!(s, StatusCode::OK, "{past}");
    assert_eq!(past["status"], "active");
    assert_eq!(past["user_id"], "alice");
    assert!(!past.to_string().contains("k-123"));
    let (_, now) = env
        .call(
            &auditor,
            Method::GET,
            &format!("/v1/auth-configs/{config}"),
            None,
        )
        .await;
    assert_eq!(now["name"], "after");
    let (s, before) = env
        .call(
            &auditor,
            Method::GET,
            &format!("/v1/auth-configs/{config}?as_of={then}"),
            None,
        )
        .await;
    assert_eq!(s, StatusCode::OK, "{before}");
    assert_eq!(
        (before["name"].as_str(), before["version"].as_u64()),
        (Some("before"), Some(1))
    );
    // Before it existed: not found; a bad time: 400.
    let (s, _) = env
        .call(
            &auditor,
            Method::GET,
            &format!("/v1/auth-configs/{config}?as_of=2001-01-01T00:00:00Z"),
            None,
        )
        .await;
    assert_eq!(s, StatusCode::NOT_FOUND);
    let (s, _) = env
        .call(
            &auditor,
            Method::GET,
            &format!("/v1/connections/{id}?as_of=yesterday"),
            None,
        )
        .await;
    assert_eq!(s, StatusCode::BAD_REQUEST);

    // Who could act as alice then (her active connection), and who did; and now (nobody).
    let (s, report) = env
        .call(
            &auditor,
            Method::GET,
            &format!("/v1/audit/access?user_id=alice&as_of={then}"),
            None,
        )
        .await;
    assert_eq!(s, StatusCode::OK, "{report}");
    let c = &report["connections"][0];
    assert_eq!(
        (
            c["id"].as_str(),
            c["status"].as_str(),
            c["could_act"].as_bool()
        ),
        (Some(id.as_str()), Some("active"), Some(true))
    );
    assert_eq!(c["actors"][0]["actor"]["type"], "api_key");
    assert_eq!(c["actors"][0]["events"], 1);
    let (_, report) = env
        .call(
            &auditor,
            Method::GET,
            "/v1/audit/access?user_id=alice",
            None,
        )
        .await;
    let c = &report["connections"][0];
    assert_eq!(
        (c["status"].as_str(), c["could_act"].as_bool()),
        (Some("deleted"), Some(false))
    );
    assert!(
        c["actors"][0]["events"].as_u64().expect("events") >= 3,
        "{report}"
    );
    let (s, _) = env
        .call(&auditor, Method::GET, "/v1/audit/access", None)
        .await;
    assert_eq!(s, StatusCode::BAD_REQUEST);
}
