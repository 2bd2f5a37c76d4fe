//! What the browser tests share: chromedriver and a headless Chromium (`Driver`), one
//! signed-in browser session against a `Deployment` (`Console`: navigation, forms, axe-core
//! on each page, screenshots at desktop and 360 px), and plain HTTP with a session cookie.

use std::net::TcpListener;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::Duration;

use fantoccini::{Client, ClientBuilder, Locator};
use reqwest::StatusCode;
use serde_json::{json, Value};

use crate::harness::eventually;
use crate::support::Deployment;

const AXE: &str = include_str!("axe.min.js");
const CHROMIUM: &str = "/usr/bin/chromium";
const CHROMEDRIVER: &str = "/usr/bin/chromedriver";
pub const PASSWORD: &str = "correct horse battery staple";

/// chromedriver on a free port, stopped (by its PID) on drop. Its temp dir (and so the
/// browser's: Chromium leaves its process-singleton dir behind when it is killed) is the
/// driver's own, removed after it.
pub struct Driver {
    child: Child,
    port: u16,
    _tmp: tempfile::TempDir,
}

impl Driver {
    pub fn start() -> Driver {
        for (what, path) in [("chromium", CHROMIUM), ("chromedriver", CHROMEDRIVER)] {
            assert!(
                Path::new(path).exists(),
                "{what} is missing at {path}: the browser tests need Debian's `chromium` and \
                 `chromium-driver` (tools/test installs them: apt-get install chromium chromium-driver)"
            );
        }
        let port = TcpListener::bind("127.0.0.1:0")
            .and_then(|l| l.local_addr())
            .map(|a| a.port())
            .expect("a free port");
        let tmp = tempfile::tempdir().expect("a temp dir for the browser");
        let child = Command::new(CHROMEDRIVER)
            .arg(format!("--port={port}"))
            .env("TMPDIR", tmp.path())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("start chromedriver");
        Driver {
            child,
            port,
            _tmp: tmp,
        }
    }

    pub async fn browser(&self) -> Client {
        let url = format!("http://127.0.0.1:{}", self.port);
        let mut caps = serde_json::Map::new();
        caps.insert(
            "goog:chromeOptions".into(),
            json!({
                "binary": CHROMIUM,
                "args": ["--headless=new", "--no-sandbox", "--disable-gpu",
                         "--disable-dev-shm-usage", "--window-size=1280,900"],
            }),
        );
        let mut last = String::new();
        for _ in 0..100 {
            let connector = hyper_util::client::legacy::connect::HttpConnector::new();
            match ClientBuilder::new(connector)
                .capabilities(caps.clone())
                .connect(&url)
                .await
            {
                Ok(c) => return c,
                Err(e) => last = e.to_string(),
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
        panic!("chromedriver did not start a browser: {last}");
    }
}

impl Drop for Driver {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

pub fn screenshots_dir() -> PathBuf {
    let dir = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("target/console-screenshots");
    std::fs::create_dir_all(&dir).expect("screenshot dir");
    dir
}

/// One browser session and what the checks need.
pub struct Console {
    pub c: Client,
    pub dep: Deployment,
    pub shots: bool,
}

impl Console {
    pub async fn go(&self, path_or_url: &str) {
        let url = if path_or_url.starts_with("http") {
            path_or_url.to_string()
        } else {
            self.dep.svc.url(path_or_url)
        };
        self.c.goto(&url).await.expect("goto");
    }

    /// axe-core on the current page: no serious or critical violation.
    pub async fn axe(&self, page: &str) {
        self.c
            .execute(&format!("{AXE}\n;return true;"), vec![])
            .await
            .expect("inject axe");
        let found = self
            .c
            .execute_async(
                "const done = arguments[arguments.length - 1];
                 axe.run(document, {resultTypes: ['violations']}).then(r => done(JSON.stringify(
                   r.violations.filter(v => v.impact === 'serious' || v.impact === 'critical')
                     .map(v => ({id: v.id, impact: v.impact, help: v.help,
                                 nodes: v.nodes.map(n => n.target)})))))
                   .catch(e => done('axe failed: ' + e));",
                vec![],
            )
            .await
            .expect("run axe");
        let text = found.as_str().unwrap_or_default().to_string();
        assert_eq!(text, "[]", "axe on {page}: serious or critical violations");
    }

    /// axe, then screenshots at desktop and 360 px wide (embedded stack only).
    pub async fn check_page(&self, name: &str) {
        self.axe(name).await;
        if !self.shots {
            return;
        }
        let dir = screenshots_dir();
        for (suffix, width, height) in [("desktop", 1280, 900), ("360", 360, 800)] {
            self.c
                .set_window_size(width, height)
                .await
                .expect("window size");
            let png = self.c.screenshot().await.expect("screenshot");
            std::fs::write(dir.join(format!("{name}-{suffix}.png")), png).expect("write png");
            if width == 360 {
                // The page must not scroll sideways; if it does, name what reaches past.
                let overflow = self
                    .c
                    .execute(
                        "const root = document.documentElement, w = root.clientWidth;
                         if (root.scrollWidth <= w) return [];
                         const past = [...document.querySelectorAll('body *')]
                           .filter(e => e.getBoundingClientRect().right > w + 1)
                           .map(e => e.tagName + '.' + e.className + ' ' + Math.round(e.getBoundingClientRect().right));
                         return ['page ' + root.scrollWidth + ' px wide', ...past];",
                        vec![],
                    )
                    .await
                    .expect("overflow");
                assert_eq!(overflow, json!([]), "{name} scrolls sideways at 360 px");
                self.axe(&format!("{name} at 360 px")).await;
            }
        }
        self.c
            .set_window_size(1280, 900)
            .await
            .expect("window size");
    }

    pub async fn fill(&self, css: &str, text: &str) {
        let field = self.find(css).await;
        field.clear().await.expect("clear");
        field.send_keys(text).await.expect("type");
    }

    /// The element `css` names on the current page; when there is none, the failure says
    /// which page the browser was on and what it showed.
    pub async fn find(&self, css: &str) -> fantoccini::elements::Element {
        match self.c.find(Locator::Css(css)).await {
            Ok(element) => element,
            Err(e) => {
                let url = self.c.current_url().await.map(|u| u.to_string());
                let shown = self
                    .c
                    .execute("return document.documentElement.outerText;", vec![])
                    .await
                    .map(|v| {
                        v.as_str()
                            .unwrap_or_default()
                            .chars()
                            .take(800)
                            .collect::<String>()
                    });
                panic!("{css}: {e}\non {url:?}, showing {shown:?}")
            }
        }
    }

    /// Clicks a submit button and waits for the page it leads to (every form posts and
    /// answers with a new page): the old page's marker gone, the new one loaded.
    /// The `value` of the field `css` names ("" when it has none); a missing field fails as
    /// [`Console::find`] does.
    pub async fn value(&self, css: &str) -> String {
        self.find(css)
            .await
            .prop("value")
            .await
            .expect("value")
            .unwrap_or_default()
    }

    /// A time a page shows (`<time datetime>` found by `css`): the exact instant, after
    /// checking that its text is the same instant as people read it (`2026-12-04 11:51:18 UTC`).
    pub async fn time(&self, css: &str) -> time::OffsetDateTime {
        let element = self.find(css).await;
        let exact = element.attr("datetime").await.expect("datetime");
        let exact = exact.unwrap_or_else(|| panic!("{css} has no datetime"));
        let at =
            time::OffsetDateTime::parse(&exact, &time::format_description::well_known::Rfc3339)
                .unwrap_or_else(|e| panic!("{css}: {exact:?} is not RFC 3339: {e}"));
        let shown = element.text().await.expect("text");
        let words =
            time::macros::format_description!("[year]-[month]-[day] [hour]:[minute]:[second] UTC");
        let expected = at
            .to_offset(time::UtcOffset::UTC)
            .format(&words)
            .expect("format");
        assert_eq!(shown, expected, "{css} shows {exact} as {shown:?}");
        at
    }

    pub async fn submit(&self, css: &str) {
        let button = self.find(css).await;
        self.click_to_next_page(button).await;
    }

    pub async fn click_to_next_page(&self, button: fantoccini::elements::Element) {
        self.c
            .execute("window.__before_submit = true; return true;", vec![])
            .await
            .expect("mark the page");
        button.click().await.expect("click");
        eventually(Duration::from_secs(10), "the next page", || async {
            self.c
                .execute(
                    "return window.__before_submit === undefined && document.readyState === 'complete';",
                    vec![],
                )
                .await
                .is_ok_and(|v| v == json!(true))
        })
        .await;
    }

    pub async fn text(&self) -> String {
        self.c
            .find(Locator::Css("main"))
            .await
            .expect("main")
            .text()
            .await
            .expect("text")
    }

    pub async fn path(&self) -> String {
        self.c.current_url().await.expect("url").path().to_string()
    }

    pub async fn cookie(&self) -> String {
        let c = self
            .c
            .get_named_cookie("authledger_session")
            .await
            .expect("the session cookie");
        assert_eq!(c.http_only(), Some(true));
        assert_eq!(format!("{:?}", c.same_site()), "Some(Lax)");
        format!("authledger_session={}", c.value())
    }

    pub async fn sign_in(&self, email: &str, password: &str) {
        self.go(&format!(
            "/console/sign-in?workspace={}",
            self.dep.workspace
        ))
        .await;
        self.fill("#email", email).await;
        self.fill("#password", password).await;
        self.submit("main button[type=submit]").await;
    }

    pub async fn audit(&self, kind: &str) -> Vec<Value> {
        let r = reqwest::Client::new()
            .get(
                self.dep
                    .svc
                    .url(&format!("/v1/audit/events?kind={kind}&limit=200")),
            )
            .bearer_auth(&self.dep.admin)
            .send()
            .await
            .expect("audit");
        let body: Value = r.json().await.expect("json");
        body["items"].as_array().cloned().unwrap_or_default()
    }

    /// Waits until an `access.denied` with `reason` by `actor_type` is in the audit view.
    pub async fn denied(&self, reason: &str, actor_type: &str) {
        eventually(Duration::from_secs(10), reason, || async {
            self.audit("access.denied")
                .await
                .iter()
                .any(|e| e["reason"] == reason && e["actor"]["type"] == actor_type)
        })
        .await;
    }
}

pub async fn post_form(
    dep: &Deployment,
    cookie: &str,
    path: &str,
    form: &[(&str, &str)],
) -> StatusCode {
    reqwest::Client::builder()
        .redirect(reqwest::redirect::Policy::none())
        .build()
        .expect("client")
        .post(dep.svc.url(path))
        .header("cookie", cookie)
        .header("origin", dep.svc.url("").trim_end_matches('/'))
        .form(form)
        .send()
        .await
        .expect("post")
        .status()
}

pub async fn get_status(dep: &Deployment, cookie: &str, path: &str) -> StatusCode {
    reqwest::Client::builder()
        .redirect(reqwest::redirect::Policy::none())
        .build()
        .expect("client")
        .get(dep.svc.url(path))
        .header("cookie", cookie)
        .send()
        .await
        .expect("get")
        .status()
}
