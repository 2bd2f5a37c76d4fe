//! The generated client SDKs (`tools/sdk`, issue 18) end to end against a real `serve`: the
//! Python package (`sdk_e2e.py`, the SDK on `PYTHONPATH`) and the TypeScript package
//! (`sdk_e2e.mjs`, type-checked by tsc in strict mode, then run by node with
//! `authledger-client` resolving to the SDK) each create an auth config, a tool on this
//! test's upstream and a connection holding an end user's key, issue a scoped token bound
//! to both, call the tool with that token through the gateway (a second call is refused:
//! the token allows one use), and read the call's audit. The test checks their reports
//! against what the upstream received and what the API says, and that no report echoes the
//! end user's key.
//!
//! `tools/test` installs what they need (the SDK's npm dependencies with
//! `npm ci --prefix tools/sdk/typescript`); `tools/sdk/generate --check` keeps the SDKs what
//! `schemas/openapi.json` generates.

use std::path::{Path, PathBuf};
use std::time::Duration;

use reqwest::{Client, Method};
use serde_json::{json, Value};

use crate::support::{request, Api, Deployment, Reply, Stack, Upstream, BASE_ENV};

const USER_KEY: &str = "crm-key-of-user-42-SECRET-5d1";
const TOOL: &str = "crm.whoami";

struct Env {
    d: Deployment,
    http: Client,
    upstream: Upstream,
}

impl Api for Env {
    async fn call(&self, bearer: &str, method: Method, path: &str, body: Option<Value>) -> Reply {
        Reply::of(request(&self.http, &self.d.svc, bearer, method, path, body)).await
    }

    fn admin(&self) -> &str {
        &self.d.admin
    }
}

impl Env {
    async fn start() -> Env {
        let upstream = Upstream::start(|_hit| async {
            axum::response::IntoResponse::into_response(axum::Json(
                json!({ "hello": "from the CRM" }),
            ))
        })
        .await;
        Env {
            d: Deployment::start(Stack::Embedded, BASE_ENV).await,
            http: Client::new(),
            upstream,
        }
    }

    /// What every client script is given.
    fn script_args(&self) -> Vec<String> {
        [
            "--url",
            &self.d.svc.url(""),
            "--admin-key",
            &self.d.admin,
            "--upstream",
            &self.upstream.base_url,
            "--user-key",
            USER_KEY,
        ]
        .map(String::from)
        .to_vec()
    }

    /// A client's report, checked against the upstream and the API.
    async fn check(&self, report: &Value) {
        assert!(!report.to_string().contains(USER_KEY), "{report}");
        assert_eq!(report["connection_status"], "active", "{report}");
        assert_eq!(report["token_tool"], TOOL, "{report}");
        assert_eq!(
            (&report["upstream_status"], &report["upstream_body"]),
            (&json!(200), &json!({ "hello": "from the CRM" })),
            "{report}"
        );
        assert_eq!(
            report["refused_again"],
            json!({ "status": 403, "type": "https://authledger.dev/problems/token-used-up" })
        );

        // The upstream was called once, with the connection's key.
        let hits = self.upstream.hits();
        assert_eq!(hits.len(), 1, "{hits:?}");
        assert_eq!(
            (hits[0].path.as_str(), hits[0].header("x-api-key")),
            ("/api/me", vec![USER_KEY])
        );

        // The API agrees: the token is used up, the call is in the audit with its token.
        let token = report["token_id"].as_str().expect("token_id");
        let r = self.get(self.admin(), &format!("/v1/tokens/{token}")).await;
        assert_eq!(
            (
                r.body["status"].as_str(),
                r.body["uses"].as_u64(),
                &r.body["connection_id"]
            ),
            (Some("used_up"), Some(1), &report["connection_id"]),
            "{}",
            r.text
        );
        // The call as the audit shows it: requested with the token, completed with success.
        let audit = report["audit"].as_array().expect("audit");
        let of = |kind: &str| {
            audit
                .iter()
                .find(|e| e["kind"] == kind)
                .unwrap_or_else(|| panic!("no {kind} in {report}"))
        };
        let (requested, completed) = (of("tool.requested"), of("tool.completed"));
        assert_eq!(
            (&requested["tool"], requested["token_id"].as_str()),
            (&json!(TOOL), Some(token)),
            "{report}"
        );
        assert_eq!(
            (&completed["tool"], &completed["outcome"]),
            (&json!(TOOL), &json!("success")),
            "{report}"
        );
        let completed = self
            .audit_events(&format!(
                "kind=tool.completed&connection_id={}",
                report["connection_id"].as_str().expect("connection_id")
            ))
            .await;
        assert_eq!(completed.len(), 1, "{completed:#?}");
        assert_eq!(
            (&completed[0]["aggregate"]["id"], &completed[0]["outcome"]),
            (&report["tool_call_id"], &json!("success"))
        );
    }
}

fn root() -> &'static Path {
    Path::new(env!("CARGO_MANIFEST_DIR"))
}

/// Runs a client to its end: its JSON report (stdout), or the test fails with its output.
async fn report_of(what: &str, command: &mut tokio::process::Command) -> Value {
    let out = run(what, command).await;
    serde_json::from_slice(&out.stdout).unwrap_or_else(|e| {
        panic!(
            "{what}: the report is not JSON ({e}): {}",
            String::from_utf8_lossy(&out.stdout)
        )
    })
}

async fn run(what: &str, command: &mut tokio::process::Command) -> std::process::Output {
    let out = tokio::time::timeout(Duration::from_secs(120), command.output())
        .await
        .unwrap_or_else(|_| panic!("{what} finishes within 2 minutes"))
        .unwrap_or_else(|e| panic!("{what} starts: {e}"));
    assert!(
        out.status.success(),
        "{what}: {}\n{}\n{}",
        out.status,
        String::from_utf8_lossy(&out.stderr),
        String::from_utf8_lossy(&out.stdout)
    );
    out
}

#[tokio::test]
async fn the_python_sdk_drives_serve_end_to_end() {
    let env = Env::start().await;
    let report = report_of(
        "sdk_e2e.py",
        tokio::process::Command::new("python3")
            .arg(root().join("tests/it/sdk_e2e.py"))
            .args(env.script_args())
            .env("PYTHONPATH", root().join("tools/sdk/python"))
            .env("PYTHONDONTWRITEBYTECODE", "1"),
    )
    .await;
    env.check(&report).await;
}

#[tokio::test]
async fn the_typescript_sdk_type_checks_and_drives_serve_end_to_end() {
    let sdk = root().join("tools/sdk/typescript");
    let modules = sdk.join("node_modules");
    assert!(
        modules.join("openapi-fetch").is_dir(),
        "the TypeScript SDK's dependencies are not installed: npm ci --prefix tools/sdk/typescript \
         (tools/test does it)"
    );
    // The script beside a node_modules where "authledger-client" is the SDK, as an
    // application that installed it would have it.
    let dir = tempfile::tempdir().expect("dir");
    std::fs::create_dir(dir.path().join("node_modules")).expect("node_modules");
    std::os::unix::fs::symlink(&sdk, dir.path().join("node_modules/authledger-client"))
        .expect("link the SDK");
    let script: PathBuf = dir.path().join("sdk_e2e.mjs");
    std::fs::copy(root().join("tests/it/sdk_e2e.mjs"), &script).expect("copy the script");

    run(
        "tsc on sdk_e2e.mjs",
        tokio::process::Command::new(modules.join(".bin/tsc"))
            .current_dir(dir.path())
            .args([
                "--noEmit",
                "--strict",
                "--allowJs",
                "--checkJs",
                "--skipLibCheck",
                "--module",
                "nodenext",
                "--moduleResolution",
                "nodenext",
                "--target",
                "es2022",
                "--types",
                "node",
                "--typeRoots",
            ])
            .arg(modules.join("@types"))
            .arg("sdk_e2e.mjs"),
    )
    .await;

    let env = Env::start().await;
    let report = report_of(
        "sdk_e2e.mjs",
        tokio::process::Command::new("node")
            .arg(&script)
            .args(env.script_args()),
    )
    .await;
    env.check(&report).await;
}
