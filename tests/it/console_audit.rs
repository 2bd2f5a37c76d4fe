//! The console's audit explorer in a real browser (the browser plumbing of `console`), on
//! both stacks, with a checkpoint every second: events found by filter (a shareable GET
//! URL), one opened and verified by the page's own script (WebCrypto Ed25519 and SHA-256:
//! signature, the checkpoint's signature, the inclusion proof up to its signed root), the
//! proof of another event and a flipped signature shown as not verified, the export
//! downloaded with the session (JSONL and CSV, the same filters), the checkpoints and the
//! access report; viewing and exporting recorded as `audit.queried` by the member; an
//! auditor reads, a viewer is refused (and the refusal recorded). axe-core on every page at
//! desktop and 360 px; screenshots on the embedded stack.

use std::time::Duration;

use fantoccini::Locator;
use reqwest::StatusCode;
use serde_json::{json, Value};

use crate::console::browser::{screenshots_dir, Console, Driver, PASSWORD};
use crate::harness::eventually;
use crate::support::{Deployment, Stack};

async fn api(dep: &Deployment, path: &str, body: Value) -> Value {
    let r = reqwest::Client::new()
        .post(dep.svc.url(path))
        .bearer_auth(&dep.admin)
        .json(&body)
        .send()
        .await
        .expect("post");
    assert_eq!(r.status(), StatusCode::CREATED, "{path}");
    r.json().await.expect("json")
}

async fn auth_config(dep: &Deployment, name: &str) -> String {
    let body = json!({"name": name, "provider": "custom", "auth_type": "api_key",
                      "api_key": {"key_name": "X-Api-Key", "location": "header", "prefix": null}});
    let v = api(dep, "/v1/auth-configs", body).await;
    v["id"].as_str().expect("id").to_string()
}

/// A GET with the browser's session cookie: (status, content type, content disposition, body).
async fn fetch(dep: &Deployment, cookie: &str, href: &str) -> (StatusCode, String, String, String) {
    let r = reqwest::Client::new()
        .get(dep.svc.url(href))
        .header("cookie", cookie)
        .send()
        .await
        .expect("get");
    let header = |name: &str| {
        r.headers()
            .get(name)
            .and_then(|v| v.to_str().ok())
            .unwrap_or_default()
            .to_string()
    };
    let (kind, disposition) = (header("content-type"), header("content-disposition"));
    (r.status(), kind, disposition, r.text().await.expect("body"))
}

impl Console {
    async fn attr(&self, css: &str, name: &str) -> String {
        let e = self.find(css).await;
        e.attr(name).await.expect("attr").unwrap_or_default()
    }

    async fn texts(&self, css: &str) -> Vec<String> {
        let mut out = Vec::new();
        for e in self.c.find_all(Locator::Css(css)).await.expect(css) {
            out.push(e.text().await.expect("text"));
        }
        out
    }

    /// Waits for the page's verification script to finish; returns the verdict and checks.
    async fn verified(&self) -> (String, Vec<String>) {
        eventually(Duration::from_secs(10), "the browser's checks", || async {
            self.attr("#verify", "data-state").await == "done"
        })
        .await;
        let verdict = self
            .c
            .find(Locator::Css("#browser-verdict"))
            .await
            .expect("verdict")
            .text()
            .await
            .expect("text");
        (verdict, self.texts("#checks li").await)
    }

    /// Screenshots (embedded stack) at desktop and 360 px with `css` scrolled to the top,
    /// for what lies below the first screen (the events table, the checks).
    async fn shot_at(&self, name: &str, css: &str) {
        if !self.shots {
            return;
        }
        for (suffix, width, height) in [("desktop", 1280, 900), ("360", 360, 800)] {
            self.c.set_window_size(width, height).await.expect("size");
            self.c
                .execute(
                    "document.querySelector(arguments[0]).scrollIntoView(); return true;",
                    vec![json!(css)],
                )
                .await
                .expect("scroll");
            let png = self.c.screenshot().await.expect("screenshot");
            let path = screenshots_dir().join(format!("{name}-{suffix}.png"));
            std::fs::write(path, png).expect("write png");
        }
        self.c.set_window_size(1280, 900).await.expect("size");
    }

    /// Changes the page's bytes with `script` (as a tamperer would), then verifies again.
    async fn tamper(&self, script: &str, args: Vec<Value>) -> (String, Vec<String>) {
        let script =
            format!("{script}\ndocument.getElementById('verify-again').click(); return true;");
        self.c.execute(&script, args).await.expect("tamper");
        self.verified().await
    }

    /// Opens an event's page, reloading until the latest checkpoint covers it.
    async fn event_with_proof(&self, href: &str) {
        self.go(href).await;
        eventually(
            Duration::from_secs(20),
            "a checkpoint covering the event",
            || async {
                if self.c.find(Locator::Css("#inclusion")).await.is_ok() {
                    return true;
                }
                tokio::time::sleep(Duration::from_millis(300)).await;
                self.go(href).await;
                false
            },
        )
        .await;
    }

    /// The admin member's `audit.queried` events as (route, filters).
    async fn queried(&self) -> Vec<(String, Value)> {
        let admin = authledger::domain::member::member_id("admin@example.com");
        let http = reqwest::Client::new();
        let list: Value = http
            .get(self.dep.svc.url(&format!(
                "/v1/audit/events?kind=audit.queried&actor={admin}&limit=1000"
            )))
            .bearer_auth(&self.dep.admin)
            .send()
            .await
            .expect("list")
            .json()
            .await
            .expect("json");
        let mut out = Vec::new();
        for e in list["items"].as_array().expect("items") {
            assert_eq!(e["actor"]["type"], "member");
            let id = e["event_id"].as_str().expect("id");
            let detail: Value = http
                .get(self.dep.svc.url(&format!("/v1/audit/events/{id}")))
                .bearer_auth(&self.dep.admin)
                .send()
                .await
                .expect("event")
                .json()
                .await
                .expect("json");
            let payload = &detail["body"]["payload"];
            let route = payload["route"].as_str().expect("route").to_string();
            out.push((route, payload["filters"].clone()));
        }
        out
    }
}

/// The page's signature check gives every golden signature case its verdict (schemas/README.md
/// §3: WebCrypto's Ed25519 with the strict rule's encoding and small-order checks).
async fn signature_rule_as_the_vectors(ui: &Console) {
    let path = concat!(env!("CARGO_MANIFEST_DIR"), "/tests/data/vectors.json");
    let vectors: Value =
        serde_json::from_str(&std::fs::read_to_string(path).expect("vectors")).expect("json");
    let cases = vectors["signature_cases"]
        .as_array()
        .expect("cases")
        .clone();
    let verdicts =
        ui.c.execute_async(
            "const [cases, done] = [arguments[0], arguments[arguments.length - 1]];
             const b64 = s => Uint8Array.from(atob(s), c => c.charCodeAt(0));
             const unhex = h => Uint8Array.from(h.match(/../g) || [], x => parseInt(x, 16));
             Promise.all(cases.map(c => window.authledgerVerifier
               .verifyStrict(b64(c.public_key), unhex(c.message_hex), b64(c.signature))
               .then(ok => ok, e => 'refused: ' + e.message)))
               .then(done, e => done('failed: ' + e));",
            vec![json!(cases)],
        )
        .await
        .expect("run the vectors");
    let verdicts = verdicts.as_array().expect("verdicts").clone();
    assert_eq!(verdicts.len(), cases.len());
    for (case, verdict) in cases.iter().zip(&verdicts) {
        let valid = verdict == &json!(true);
        assert_eq!(
            valid,
            case["valid"] == true,
            "{} ({}): {verdict}",
            case["case"],
            case["rule"]
        );
    }
}

/// The page's inclusion check leads every leaf of trees of 1 to 17 leaves to the root the
/// service's Merkle code computes, and the proof of one leaf given as another's nowhere.
async fn inclusion_rule_as_the_service(ui: &Console) {
    use authledger::audit::merkle;
    use sha2::{Digest, Sha256};
    let mut cases = Vec::new();
    for size in 1..=17usize {
        let entries: Vec<merkle::Hash> = (0..size)
            .map(|i| Sha256::digest(format!("{size}/{i}")).into())
            .collect();
        let leaves: Vec<merkle::Hash> = entries.iter().map(|d| merkle::leaf_hash(d)).collect();
        let root = merkle::to_hex(&merkle::root(&leaves));
        for (index, entry) in entries.iter().enumerate() {
            let proof = merkle::inclusion_proof(&leaves, index).expect("a proof");
            let proof: Vec<String> = proof.iter().map(merkle::to_hex).collect();
            cases.push(
                json!({"entry": merkle::to_hex(entry), "index": index, "size": size,
                              "proof": proof, "root": root}),
            );
        }
    }
    let wrong =
        ui.c.execute_async(
            "const [cases, done] = [arguments[0], arguments[arguments.length - 1]];
             const unhex = h => Uint8Array.from(h.match(/../g) || [], x => parseInt(x, 16));
             const hex = b => Array.from(b, x => x.toString(16).padStart(2, '0')).join('');
             const root = (c, index) => window.authledgerVerifier
               .inclusionRoot(unhex(c.entry), index, c.size, c.proof.map(unhex))
               .then(hex, e => 'refused: ' + e.message);
             (async () => {
               const wrong = [];
               for (const c of cases) {
                 const right = await root(c, c.index);
                 if (right !== c.root) wrong.push(`${c.index} of ${c.size}: ${right}`);
                 if (c.size > 1 && await root(c, c.index ^ 1) === c.root) {
                   wrong.push(`${c.index} of ${c.size} accepted as ${c.index ^ 1}`);
                 }
               }
               return wrong;
             })().then(done, e => done(['failed: ' + e]));",
            vec![json!(cases)],
        )
        .await
        .expect("run the proofs");
    assert_eq!(wrong, json!([]));
}

async fn flow(stack: Stack, shots: bool) {
    let driver = Driver::start();
    let every_second = [("AUTHLEDGER_CHECKPOINT_SCHEDULE", "* * * * * *")];
    let dep = Deployment::start(stack, &every_second).await;
    let c = driver.browser().await;
    let ui = Console { c, dep, shots };
    ui.go(&ui.dep.console_sign_up.clone()).await;
    ui.fill("#password", PASSWORD).await;
    ui.submit("main button[type=submit]").await;
    assert_eq!(ui.path().await, "/console/");

    // Some events: two auth configs, a connection of an end user.
    let alpha = auth_config(&ui.dep, "Ledger Alpha").await;
    let beta = auth_config(&ui.dep, "Ledger Beta").await;
    let body = json!({"auth_config_id": alpha, "user_id": "alice",
                      "credentials": {"api_key": "alice-secret"}});
    let connection = api(&ui.dep, "/v1/connections", body).await;
    let connection = connection["id"].as_str().expect("id").to_string();

    // Found by filter, through the labelled form; the filtered view is a shareable URL.
    ui.find("nav a[href='/console/audit']")
        .await
        .click()
        .await
        .expect("click");
    ui.check_page("audit-events").await;
    ui.fill("#f-kind", "auth_config.created").await;
    ui.fill("#f-auth-config", &alpha).await;
    ui.submit("#audit-filters button").await;
    let url = ui.c.current_url().await.expect("url");
    assert!(
        url.query()
            .unwrap_or_default()
            .contains(&format!("auth_config_id={alpha}")),
        "{url}"
    );
    let rows = ui.texts("#audit-events tbody tr").await;
    assert_eq!(rows.len(), 1, "{rows:?}");
    assert!(rows[0].contains("auth_config.created") && rows[0].contains(&alpha));
    assert!(rows[0].contains("api_key"), "the actor column: {rows:?}");
    ui.shot_at("audit-events-found", "#audit-events").await;
    let alpha_href = ui.attr("#audit-events tbody a", "href").await;
    let export_jsonl = ui.attr("#export-jsonl", "href").await;
    let export_csv = ui.attr("#export-csv", "href").await;
    // Paged by cursor, newest first.
    ui.go("/console/audit?kind=auth_config.created&limit=1")
        .await;
    let first = ui.texts("#audit-events tbody tr").await;
    assert!(first[0].contains(&beta), "newest first: {first:?}");
    let next = ui.find("#next-page").await;
    ui.click_to_next_page(next).await;
    let second = ui.texts("#audit-events tbody tr").await;
    assert!(second[0].contains(&alpha), "{second:?}");
    ui.go("/console/audit?from=yesterday").await;
    assert!(ui.text().await.contains("from must be an RFC 3339 time"));

    // The other event's proof, kept to tamper with below.
    ui.go(&format!(
        "/console/audit?kind=auth_config.created&auth_config_id={beta}"
    ))
    .await;
    let beta_href = ui.attr("#audit-events tbody a", "href").await;
    ui.event_with_proof(&beta_href).await;
    let beta_proof = ui.texts("#proof code").await;

    // Opened and verified in the browser, each check shown.
    ui.event_with_proof(&alpha_href).await;
    let (verdict, checks) = ui.verified().await;
    assert!(
        verdict.starts_with("Verified in this browser"),
        "{verdict} {checks:?}"
    );
    let sequence = ui.attr("#inclusion", "data-sequence").await;
    let kid = ui.attr("#trusted-keys li", "data-key-id").await;
    let expect = [
        "event hash: verified".to_string(),
        format!("signature: verified — by key {kid}"),
        format!("checkpoint {sequence}'s signature: verified"),
        format!("included in checkpoint {sequence}: verified"),
    ];
    assert_eq!(checks.len(), expect.len(), "{checks:?}");
    for (check, want) in checks.iter().zip(&expect) {
        assert!(check.starts_with(want.as_str()), "{check} is not {want}");
    }
    let claim = ui.text().await;
    assert!(claim.contains("The server's claim"), "{claim}");
    let envelope = ui.find("#envelope").await.text().await.expect("text");
    ui.check_page("audit-event").await;
    signature_rule_as_the_vectors(&ui).await;
    inclusion_rule_as_the_service(&ui).await;
    ui.shot_at("audit-event-checks", "#browser-verdict").await;
    ui.shot_at("audit-event-proof", "#inclusion").await;

    // The proof of a different event: not verified.
    let alpha_proof = ui.texts("#proof code").await;
    assert_ne!(alpha_proof, beta_proof);
    let swap = "document.getElementById('proof').replaceChildren(...arguments[0].map(h => {
           const li = document.createElement('li'), code = document.createElement('code');
           code.textContent = h; li.append(code); return li; }));";
    let (verdict, checks) = ui.tamper(swap, vec![json!(beta_proof)]).await;
    assert!(verdict.starts_with("Not verified"), "{verdict}");
    assert!(
        checks
            .iter()
            .any(|c| c.starts_with(&format!("included in checkpoint {sequence}: not verified"))),
        "{checks:?}"
    );
    assert!(checks.iter().any(|c| c.starts_with("signature: verified")));
    ui.check_page("audit-event-tampered").await;
    ui.shot_at("audit-event-tampered-checks", "#browser-verdict")
        .await;

    // A flipped signature byte (the page reloaded): the signature is not verified.
    ui.go(&alpha_href).await;
    ui.verified().await;
    let flip = "const pre = document.getElementById('envelope');
         const env = JSON.parse(pre.textContent);
         const sig = env.signatures[0].sig;
         env.signatures[0].sig = (sig[0] === 'A' ? 'B' : 'A') + sig.slice(1);
         pre.textContent = JSON.stringify(env);";
    let (verdict, checks) = ui.tamper(flip, vec![]).await;
    assert!(verdict.starts_with("Not verified"), "{verdict}");
    assert!(
        checks
            .iter()
            .any(|c| c.starts_with(&format!("signature: not verified — key {kid}"))),
        "{checks:?}"
    );

    // The export, downloaded with the session: the same filters, the event as stored.
    let cookie = ui.cookie().await;
    let (status, kind, disposition, jsonl) = fetch(&ui.dep, &cookie, &export_jsonl).await;
    assert_eq!(status, StatusCode::OK, "{jsonl}");
    assert_eq!(kind, "application/x-ndjson");
    assert_eq!(disposition, "attachment; filename=\"audit.jsonl\"");
    let lines: Vec<Value> = jsonl
        .lines()
        .map(|l| serde_json::from_str(l).expect("a JSON line"))
        .collect();
    assert_eq!(lines[0]["type"], "header");
    assert_eq!(
        lines[0]["filters"],
        json!({"format": "jsonl", "kind": "auth_config.created", "auth_config_id": alpha})
    );
    let events: Vec<&Value> = lines.iter().filter(|l| l["type"] == "event").collect();
    assert_eq!(events.len(), 1, "{jsonl}");
    assert_eq!(events[0]["envelope"], envelope.as_str());
    assert_eq!(lines.last().expect("footer")["type"], "footer");
    let (status, kind, disposition, csv) = fetch(&ui.dep, &cookie, &export_csv).await;
    assert_eq!(status, StatusCode::OK);
    assert!(kind.starts_with("text/csv"), "{kind}");
    assert_eq!(disposition, "attachment; filename=\"audit.csv\"");
    // Without JavaScript the event's page shows the server's flag, labelled as its claim.
    let (status, _, _, html) = fetch(&ui.dep, &cookie, &alpha_href).await;
    assert_eq!(status, StatusCode::OK);
    assert!(
        html.contains("<strong>The server's claim</strong>"),
        "{html}"
    );
    assert!(
        html.contains("<span class=\"badge\">verified</span>"),
        "{html}"
    );
    assert!(html.contains("Not checked: your browser checks"), "{html}");
    assert_eq!(csv.lines().count(), 2, "{csv}");
    assert!(
        csv.lines().nth(1).is_some_and(|l| l.contains(&alpha)),
        "{csv}"
    );

    // Checkpoints and the access report.
    ui.find("nav.tabs a[href='/console/audit/checkpoints']")
        .await
        .click()
        .await
        .expect("click");
    let sequences = ui.texts("#checkpoints tbody td:first-child").await;
    assert!(sequences.contains(&sequence), "{sequences:?}");
    ui.check_page("audit-checkpoints").await;
    ui.go("/console/audit/access").await;
    ui.fill("#a-user", "alice").await;
    ui.submit("#access-form button").await;
    let report = ui.texts("#access-report tbody tr").await;
    assert_eq!(report.len(), 1, "{report:?}");
    assert!(
        report[0].contains(&connection) && report[0].contains("active"),
        "{report:?}"
    );
    ui.check_page("audit-access").await;

    // Viewing and exporting were recorded with the API's command, by the member.
    let queried = ui.queried().await;
    let asked = |route: &str, key: &str, value: &str| {
        queried.iter().any(|(r, f)| r == route && f[key] == value)
    };
    assert!(
        asked("/console/audit", "auth_config_id", &alpha),
        "{queried:?}"
    );
    assert!(asked(
        "/console/audit/events/{id}",
        "event_id",
        alpha_href.rsplit('/').next().expect("id")
    ));
    assert!(
        asked("/console/audit/export", "format", "csv"),
        "{queried:?}"
    );
    assert!(
        asked("/console/audit/export", "format", "jsonl"),
        "{queried:?}"
    );
    assert!(
        asked("/console/audit/access", "user_id", "alice"),
        "{queried:?}"
    );

    roles(&ui, &alpha_href).await;
    let _ = ui.c.close().await;
}

/// An auditor reads the explorer; a viewer sees no link and is refused (and recorded).
async fn roles(ui: &Console, event_href: &str) {
    let mut invites = Vec::new();
    for (email, role) in [
        ("auditor@example.com", "auditor"),
        ("viewer@example.com", "viewer"),
    ] {
        ui.go("/console/team").await;
        ui.fill("#email", email).await;
        let select = ui.find("#role").await;
        select.select_by_value(role).await.expect(role);
        ui.submit("#invite button").await;
        let link = ui.find("#invite-link").await;
        invites.push(link.prop("value").await.expect("value").expect("a link"));
    }
    for (invite, reads) in invites.iter().zip([true, false]) {
        ui.submit("form.signout button").await;
        ui.go(invite).await;
        ui.fill("#password", PASSWORD).await;
        ui.submit("main button[type=submit]").await;
        assert_eq!(ui.path().await, "/console/");
        let link =
            ui.c.find(Locator::Css("nav a[href='/console/audit']"))
                .await;
        assert_eq!(link.is_ok(), reads);
        ui.go(event_href).await;
        if reads {
            let (verdict, _) = ui.verified().await;
            assert!(verdict.starts_with("Verified in this browser"), "{verdict}");
        } else {
            assert!(ui.text().await.contains("Not allowed"));
            let cookie = ui.cookie().await;
            let (status, _, _, _) =
                fetch(&ui.dep, &cookie, "/console/audit/export?format=csv").await;
            assert_eq!(status, StatusCode::FORBIDDEN);
            ui.denied("role_not_permitted", "member").await;
        }
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn console_audit_explorer_verifies_in_the_browser_and_exports_embedded() {
    flow(Stack::Embedded, true).await;
}

#[tokio::test(flavor = "multi_thread")]
async fn console_audit_explorer_verifies_in_the_browser_and_exports_jetstream_pg() {
    flow(Stack::JetStreamPg, false).await;
}
