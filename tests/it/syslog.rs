//! The SIEM feed's syslog sink (issue 18) against a real syslog daemon: Debian's `rsyslogd`
//! (packages `rsyslog`, `rsyslog-gnutls`; `tools/test` installs them), started by the test
//! on a free port with its own configuration, writing what it receives to a file with the
//! fields it parsed (MSGID, STRUCTURED-DATA) beside the raw message.
//!
//! - Over TCP, on both stacks: every event of the audit view arrives once, in log order, as
//!   an RFC 5424 message (PRI from the event, version 1, the event's time, the configured
//!   host and app name, MSGID = the kind, the `authledger@32473` element with event id,
//!   position, kind, workspace and actor, the audit view as JSON after a BOM); no secret
//!   (the admin key, a new API key, an upstream credential) in any message.
//! - The daemon stopped while events are made: nothing is lost, the order is kept, the
//!   failures show in `/metrics` (`syslog_failures`, `syslog_lag_events`).
//! - `serve` stopped, `authledger replay` run, `serve` started again: it resumes at its
//!   cursor (which the replay keeps), sending nothing twice.
//! - Two instances on JetStream + PostgreSQL: one sends (each event once, in order); killed,
//!   its lease runs out on the service's clock and the other goes on from the cursor.
//! - Over TLS: with the CA that signed the daemon's certificate the feed arrives; with
//!   another CA nothing is sent and the failure is in `/metrics` and in the log. A daemon
//!   that wants a client certificate gets nothing without one (its refusal after the
//!   TLS 1.3 handshake is noticed) and the feed with `--syslog-client-cert`.
//! - A `--syslog-*` setting that cannot work stops `serve` before it writes anything.

use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::Duration;

use reqwest::{Client, Method, StatusCode};
use serde_json::{json, Value};

use crate::harness::{eventually, free_port, Service};
use crate::support::{request, Deployment, Reply, Stack, TestClock, BASE_ENV, NO_RATE_LIMIT};

const WAIT: Duration = Duration::from_secs(60);
const HOSTNAME: &str = "siem-test-host";

fn rsyslogd() -> &'static str {
    for path in ["/usr/sbin/rsyslogd", "/sbin/rsyslogd"] {
        if Path::new(path).exists() {
            return path;
        }
    }
    panic!(
        "rsyslogd is missing: the syslog sink is tested against Debian's rsyslog \
         (apt-get install rsyslog rsyslog-gnutls; tools/test installs them)"
    );
}

/// The TLS files of a daemon: its CA, its certificate (for 127.0.0.1) and key.
struct Pki {
    ca: PathBuf,
    cert: PathBuf,
    key: PathBuf,
}

fn openssl(dir: &Path, args: &[&str]) {
    let out = Command::new("openssl")
        .args(args)
        .current_dir(dir)
        .output()
        .expect("openssl");
    assert!(
        out.status.success(),
        "openssl {args:?}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
}

/// A CA named `name` in `dir` (`name.pem`, `name.key`).
fn make_ca(dir: &Path, name: &str) -> PathBuf {
    openssl(
        dir,
        &[
            "req",
            "-x509",
            "-newkey",
            "rsa:2048",
            "-nodes",
            "-days",
            "2",
            "-keyout",
            &format!("{name}.key"),
            "-out",
            &format!("{name}.pem"),
            "-subj",
            &format!("/CN={name}"),
            "-addext",
            "basicConstraints=critical,CA:TRUE",
            "-addext",
            "keyUsage=critical,keyCertSign,cRLSign",
        ],
    );
    dir.join(format!("{name}.pem"))
}

/// A certificate `name` (`name.pem`, `name.key`) signed by the CA `ca` with the
/// extensions `ext` (an `openssl x509 -extfile`).
fn make_cert(dir: &Path, ca: &str, name: &str, ext: &str) -> (PathBuf, PathBuf) {
    let (key, csr, pem) = (
        format!("{name}.key"),
        format!("{name}.csr"),
        format!("{name}.pem"),
    );
    openssl(
        dir,
        &[
            "req",
            "-newkey",
            "rsa:2048",
            "-nodes",
            "-keyout",
            &key,
            "-out",
            &csr,
            "-subj",
            &format!("/CN={name}"),
        ],
    );
    let ext_file = format!("{name}.ext");
    std::fs::write(dir.join(&ext_file), ext).expect("ext");
    openssl(
        dir,
        &[
            "x509",
            "-req",
            "-in",
            &csr,
            "-CA",
            &format!("{ca}.pem"),
            "-CAkey",
            &format!("{ca}.key"),
            "-CAcreateserial",
            "-days",
            "2",
            "-out",
            &pem,
            "-extfile",
            &ext_file,
        ],
    );
    (dir.join(pem), dir.join(key))
}

/// A CA and a server certificate it signed for 127.0.0.1 and localhost.
fn make_pki(dir: &Path) -> Pki {
    let ca = make_ca(dir, "ca");
    let (cert, key) = make_cert(
        dir,
        "ca",
        "server",
        "basicConstraints=CA:FALSE\nkeyUsage=critical,digitalSignature,keyEncipherment\n\
         extendedKeyUsage=serverAuth\nsubjectAltName=IP:127.0.0.1,DNS:localhost\n",
    );
    Pki { ca, cert, key }
}

/// One line the daemon wrote: the fields it parsed and the message as received.
#[derive(Debug, Clone)]
struct Received {
    msgid: String,
    sd: String,
    raw: String,
}

impl Received {
    /// The header fields of the raw message: PRI+version, timestamp, host, app, procid, msgid.
    fn header(&self) -> Vec<&str> {
        self.raw.splitn(7, ' ').take(6).collect()
    }

    /// The MSG: the audit view as JSON after the BOM.
    fn json(&self) -> Value {
        let at = self.raw.find("] \u{feff}").expect("SD, then a BOM") + 5;
        serde_json::from_str(&self.raw[at..]).expect("the MSG is JSON")
    }

    fn position(&self) -> i64 {
        self.json()["position"].as_i64().expect("position")
    }
}

/// `rsyslogd` on a port of its own, in a directory of its own; killed on drop.
struct Syslogd {
    dir: tempfile::TempDir,
    port: u16,
    child: Option<Child>,
}

impl Syslogd {
    /// A daemon over plain TCP (`None`) or TLS with `pki` and rsyslog's `authMode`
    /// (`anon`: any client; `x509/certvalid`: a client certificate from the CA).
    async fn start(tls: Option<(&Pki, &str)>) -> Syslogd {
        let dir = tempfile::tempdir().expect("dir");
        let port = free_port();
        let d = dir.path().display();
        let (global_tls, module) = match tls {
            None => (String::new(), "module(load=\"imtcp\")".to_string()),
            Some((p, auth_mode)) => (
                format!(
                    " defaultNetstreamDriver=\"gtls\" defaultNetstreamDriverCAFile=\"{}\" \
                     defaultNetstreamDriverCertFile=\"{}\" defaultNetstreamDriverKeyFile=\"{}\"",
                    p.ca.display(),
                    p.cert.display(),
                    p.key.display()
                ),
                format!(
                    "module(load=\"imtcp\" streamDriver.name=\"gtls\" streamDriver.mode=\"1\" \
                     streamDriver.authMode=\"{auth_mode}\")"
                ),
            ),
        };
        let conf = format!(
            "global(workDirectory=\"{d}\" maxMessageSize=\"64k\"{global_tls})\n\
             {module}\n\
             template(name=\"received\" type=\"string\" string=\"%msgid%\\t%structured-data%\\t%rawmsg%\\n\")\n\
             input(type=\"imtcp\" port=\"{port}\")\n\
             action(type=\"omfile\" file=\"{d}/received.log\" template=\"received\")\n"
        );
        std::fs::write(dir.path().join("rsyslog.conf"), conf).expect("conf");
        let check = Command::new(rsyslogd())
            .args(["-N1", "-f"])
            .arg(dir.path().join("rsyslog.conf"))
            .output()
            .expect("rsyslogd -N1");
        assert!(
            check.status.success(),
            "rsyslog.conf: {}",
            String::from_utf8_lossy(&check.stderr)
        );
        let mut s = Syslogd {
            dir,
            port,
            child: None,
        };
        s.up().await;
        s
    }

    /// Starts the daemon (again) on its port.
    async fn up(&mut self) {
        let dir = self.dir.path();
        let _ = std::fs::remove_file(dir.join("rsyslogd.pid"));
        let log = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(dir.join("rsyslogd.err"))
            .expect("log");
        let child = Command::new(rsyslogd())
            .arg("-n")
            .arg("-f")
            .arg(dir.join("rsyslog.conf"))
            .arg("-i")
            .arg(dir.join("rsyslogd.pid"))
            .stdout(Stdio::null())
            .stderr(log)
            .spawn()
            .expect("rsyslogd");
        self.child = Some(child);
        let port = self.port;
        eventually(WAIT, "rsyslogd listens", || async move {
            tokio::net::TcpStream::connect(("127.0.0.1", port))
                .await
                .is_ok()
        })
        .await;
    }

    /// Stops the daemon (SIGTERM: it writes what it has, then exits).
    async fn down(&mut self) {
        if let Some(mut c) = self.child.take() {
            let pid = nix::unistd::Pid::from_raw(c.id() as i32);
            let _ = nix::sys::signal::kill(pid, nix::sys::signal::Signal::SIGTERM);
            let deadline = std::time::Instant::now() + Duration::from_secs(20);
            while c.try_wait().ok().flatten().is_none() {
                if std::time::Instant::now() > deadline {
                    let _ = c.kill();
                    let _ = c.wait();
                    break;
                }
                tokio::time::sleep(Duration::from_millis(50)).await;
            }
        }
    }

    fn url(&self, scheme: &str) -> String {
        format!("{scheme}://127.0.0.1:{}", self.port)
    }

    fn text(&self) -> String {
        std::fs::read_to_string(self.dir.path().join("received.log")).unwrap_or_default()
    }

    fn received(&self) -> Vec<Received> {
        self.text()
            .lines()
            .map(|l| {
                let mut parts = l.splitn(3, '\t');
                Received {
                    msgid: parts.next().unwrap_or_default().into(),
                    sd: parts.next().unwrap_or_default().into(),
                    raw: parts.next().unwrap_or_default().into(),
                }
            })
            .collect()
    }

    /// The messages received, once they include every event id of `ids`.
    async fn received_with(&self, what: &str, ids: &[String]) -> Vec<Received> {
        eventually(WAIT, what, || async {
            let got: Vec<String> = self
                .received()
                .iter()
                .map(|r| {
                    r.json()["event_id"]
                        .as_str()
                        .unwrap_or_default()
                        .to_string()
                })
                .collect();
            ids.iter().all(|id| got.contains(id))
        })
        .await;
        self.received()
    }
}

impl Drop for Syslogd {
    fn drop(&mut self) {
        if let Some(mut c) = self.child.take() {
            let _ = c.kill();
            let _ = c.wait();
        }
    }
}

/// A deployment sending its feed to `url`.
struct Env {
    d: Deployment,
    http: Client,
    envs: Vec<(String, String)>,
}

impl Env {
    async fn start(stack: Stack, syslog: &[(&str, String)]) -> Env {
        Env::start_instances(stack, 1, syslog).await
    }

    /// `instances` `serve` processes on one log and projections, each with the sink.
    async fn start_instances(stack: Stack, instances: usize, syslog: &[(&str, String)]) -> Env {
        let mut envs: Vec<(String, String)> = [BASE_ENV, NO_RATE_LIMIT]
            .concat()
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect();
        envs.push(("AUTHLEDGER_SYSLOG_HOSTNAME".into(), HOSTNAME.into()));
        envs.extend(syslog.iter().map(|(k, v)| (k.to_string(), v.clone())));
        let borrowed: Vec<(&str, &str)> =
            envs.iter().map(|(k, v)| (k.as_str(), v.as_str())).collect();
        let d = Deployment::start_instances(stack, instances, &borrowed).await;
        Env {
            d,
            http: Client::new(),
            envs,
        }
    }

    fn svc(&self) -> &Service {
        &self.d.svc
    }

    async fn call(&self, method: Method, path: &str, body: Option<Value>) -> Reply {
        Reply::of(request(
            &self.http,
            self.svc(),
            &self.d.admin,
            method,
            path,
            body,
        ))
        .await
    }

    /// An auth config: its id.
    async fn auth_config(&self, name: &str) -> String {
        let r = self
            .call(
                Method::POST,
                "/v1/auth-configs",
                Some(
                    json!({ "name": name, "provider": "custom", "auth_type": "api_key",
                    "api_key": { "key_name": "X-Api-Key", "location": "header", "prefix": null } }),
                ),
            )
            .await;
        assert_eq!(r.status, StatusCode::CREATED, "{}", r.text);
        r.str("id")
    }

    /// Every event of the workspace's audit view, oldest first.
    async fn audit(&self) -> Vec<Value> {
        let r = self
            .call(Method::GET, "/v1/audit/events?order=asc&limit=1000", None)
            .await;
        assert_eq!(r.status, StatusCode::OK, "{}", r.text);
        r.body["items"].as_array().expect("items").clone()
    }

    /// A sample of `/metrics` (its full name with labels), 0 when absent.
    async fn metric(&self, sample: &str) -> f64 {
        self.metric_of(0, sample).await
    }

    /// `metric` of instance `i`.
    async fn metric_of(&self, i: usize, sample: &str) -> f64 {
        let r = Reply::of(request(
            &self.http,
            self.d.instance(i),
            &self.d.admin,
            Method::GET,
            "/metrics",
            None,
        ))
        .await;
        r.text
            .lines()
            .find_map(|l| l.strip_prefix(sample)?.trim().parse().ok())
            .unwrap_or(0.0)
    }

    /// Until the sink has sent everything due and moved its cursor.
    async fn settled(&self) {
        eventually(WAIT, "the feed's cursor at the log head", || async {
            self.metric("authledger_syslog_lag_events").await == 0.0
        })
        .await;
    }

    /// `serve` stopped (SIGTERM: it lets its lease go), the projections rebuilt by
    /// `authledger replay`, and `serve` started again on its port.
    async fn restart_after_replay(&mut self) {
        self.svc().signal(nix::sys::signal::Signal::SIGTERM);
        let child = &mut self.d.svc.child;
        let deadline = std::time::Instant::now() + Duration::from_secs(30);
        while child.try_wait().ok().flatten().is_none() {
            assert!(std::time::Instant::now() < deadline, "serve did not stop");
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
        let out = crate::support::cli(&self.d.storage, &["replay"]).await;
        assert!(
            out.status.success(),
            "replay: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        let port: u16 = self
            .svc()
            .addr
            .rsplit(':')
            .next()
            .and_then(|p| p.parse().ok())
            .expect("port");
        let borrowed: Vec<(&str, &str)> = self
            .envs
            .iter()
            .map(|(k, v)| (k.as_str(), v.as_str()))
            .collect();
        self.d.svc = Service::start_on(port, &self.d.storage, &borrowed, self.d.dir.path()).await;
    }

    fn serve_log(&self) -> String {
        let mut all = String::new();
        for entry in std::fs::read_dir(self.d.dir.path()).expect("dir").flatten() {
            if entry.file_name().to_string_lossy().ends_with(".err") {
                all.push_str(&std::fs::read_to_string(entry.path()).unwrap_or_default());
            }
        }
        all
    }
}

fn ids(events: &[Value]) -> Vec<String> {
    events
        .iter()
        .map(|e| e["event_id"].as_str().expect("event_id").to_string())
        .collect()
}

/// Each message as RFC 5424 says and as the daemon parsed it, for the event it carries.
fn check_message(r: &Received, event: &Value) {
    assert_eq!(&r.json(), event, "the MSG is the event's audit view");
    let kind = event["kind"].as_str().expect("kind");
    let header = r.header();
    let severity = match kind {
        "access.denied" => 4,
        k if k.starts_with("workspace.") || k.ends_with(".revoked") => 5,
        _ => 6,
    };
    // authpriv (10) × 8 + the severity.
    assert_eq!(header[0], format!("<{}>1", 80 + severity), "{}", r.raw);
    let at = time::OffsetDateTime::parse(header[1], &time::format_description::well_known::Rfc3339)
        .expect("an RFC 3339 timestamp");
    let occurred = time::OffsetDateTime::parse(
        event["occurred_at"].as_str().expect("occurred_at"),
        &time::format_description::well_known::Rfc3339,
    )
    .expect("occurred_at");
    assert!(
        (at - occurred).abs() < time::Duration::microseconds(1),
        "{}",
        r.raw
    );
    assert!(
        header[1].ends_with('Z') && header[1].len() == 27,
        "{}",
        header[1]
    );
    assert_eq!(header[2], HOSTNAME);
    assert_eq!(header[3], "authledger");
    assert!(header[4].parse::<u32>().is_ok(), "PROCID {}", header[4]);
    let msgid: String = kind.chars().take(32).collect();
    assert_eq!(header[5], msgid);
    assert_eq!(r.msgid, msgid, "rsyslog parsed the MSGID");
    // rsyslog parsed the structured data: the element and its params.
    assert!(r.sd.starts_with("[authledger@32473 "), "{}", r.sd);
    for (name, value) in [
        (
            "event_id",
            event["event_id"].as_str().expect("id").to_string(),
        ),
        ("position", event["position"].to_string()),
        ("kind", kind.to_string()),
        (
            "workspace",
            event["workspace_id"].as_str().expect("ws").to_string(),
        ),
        (
            "actor_type",
            event["actor"]["type"].as_str().expect("actor").to_string(),
        ),
        (
            "actor_id",
            event["actor"]["id"].as_str().expect("actor").to_string(),
        ),
    ] {
        assert!(
            r.sd.contains(&format!(" {name}=\"{value}\"")),
            "{name}={value} in {}",
            r.sd
        );
    }
}

/// The workspace's messages are exactly its audit view, in log order, each once.
fn same_as_audit(received: &[Received], workspace: &str, audit: &[Value]) {
    let ours: Vec<&Received> = received
        .iter()
        .filter(|r| r.json()["workspace_id"] == workspace)
        .collect();
    let positions: Vec<i64> = received.iter().map(Received::position).collect();
    assert!(
        positions.windows(2).all(|w| w[0] < w[1]),
        "log order, each once: {positions:?}"
    );
    assert!(
        ours.len() >= audit.len(),
        "{} < {}",
        ours.len(),
        audit.len()
    );
    for (r, event) in ours.iter().zip(audit) {
        check_message(r, event);
    }
}

async fn feed_over_tcp(stack: Stack) {
    let mut daemon = Syslogd::start(None).await;
    let mut env = Env::start(
        stack,
        &[
            ("AUTHLEDGER_SYSLOG_URL", daemon.url("tcp")),
            ("AUTHLEDGER_SYSLOG_BACKFILL", "true".into()),
        ],
    )
    .await;
    let ws = env.d.workspace.clone();

    // Events of several kinds: a config, an API key (its secret shown once), a connection
    // holding an upstream credential, a refusal.
    let config = env.auth_config("mail").await;
    let r = env
        .call(
            Method::POST,
            "/v1/api-keys",
            Some(json!({ "name": "ci", "role": "developer" })),
        )
        .await;
    assert_eq!(r.status, StatusCode::CREATED, "{}", r.text);
    let new_key = r.str("key");
    let upstream_secret = "sk-live-Upstream-Credential-4242";
    let r = env
        .call(
            Method::POST,
            "/v1/connections",
            Some(json!({ "auth_config_id": config, "user_id": "u1",
                "credentials": { "api_key": upstream_secret } })),
        )
        .await;
    assert_eq!(r.status, StatusCode::CREATED, "{}", r.text);
    // A developer may not make API keys: refused and recorded (a warning).
    let denied = env
        .http
        .post(env.svc().url("/v1/api-keys"))
        .bearer_auth(&new_key)
        .json(&json!({ "name": "escalate", "role": "admin" }))
        .send()
        .await
        .expect("request");
    assert_eq!(denied.status(), StatusCode::FORBIDDEN);

    eventually(WAIT, "the refusal in the audit view", || async {
        env.audit()
            .await
            .iter()
            .any(|e| e["kind"] == "access.denied")
    })
    .await;
    let audit = env.audit().await;
    let received = daemon
        .received_with("the audit view at the daemon", &ids(&audit))
        .await;
    same_as_audit(&received, &ws, &audit);
    // The whole log from its first event (backfill), every workspace's.
    assert_eq!(received[0].position(), 1);

    // No secret in any message.
    let text = daemon.text();
    for secret in [env.d.admin.as_str(), upstream_secret, new_key.as_str()] {
        assert!(!text.contains(secret), "a secret reached the daemon");
    }
    // The daemon down while events are made: they wait; the failures show. (Stopped once
    // the sink has moved its cursor: a daemon that closes the connection right after a
    // new connection's first batch gets that batch again, at least once.)
    env.settled().await;
    daemon.down().await;
    let mut made = Vec::new();
    for i in 0..3 {
        made.push(env.auth_config(&format!("while-down-{i}")).await);
    }
    eventually(WAIT, "a failed connect counted", || async {
        env.metric("authledger_syslog_failures_total{stage=\"connect\"}")
            .await
            >= 1.0
    })
    .await;
    eventually(WAIT, "the waiting events in the lag", || async {
        env.metric("authledger_syslog_lag_events").await >= 3.0
    })
    .await;
    let metrics = env.call(Method::GET, "/metrics", None).await;
    crate::observability::promtool_accepts(&metrics.text);
    daemon.up().await;
    let audit = env.audit().await;
    let received = daemon
        .received_with("the events made while the daemon was down", &ids(&audit))
        .await;
    same_as_audit(&received, &ws, &audit);
    for id in &made {
        assert!(
            received
                .iter()
                .any(|r| r.json()["aggregate"]["id"] == id.as_str()
                    && r.json()["kind"] == "auth_config.created"),
            "{id} arrived"
        );
    }
    eventually(WAIT, "no lag once delivered", || async {
        env.metric("authledger_syslog_lag_events").await == 0.0
    })
    .await;
    assert!(env.metric("authledger_syslog_messages_total").await >= audit.len() as f64);

    // `serve` stopped, the projections replayed, `serve` started: it resumes at its cursor
    // (nothing sent twice: the replay keeps it).
    let before = daemon.received().len();
    env.settled().await;
    env.restart_after_replay().await;
    env.auth_config("after-restart").await;
    let audit = env.audit().await;
    let received = daemon
        .received_with("the events after serve's restart", &ids(&audit))
        .await;
    assert!(received.len() > before);
    same_as_audit(&received, &ws, &audit);
}

#[tokio::test]
async fn the_audit_feed_reaches_rsyslog_over_tcp_in_order_through_outages_embedded() {
    feed_over_tcp(Stack::Embedded).await;
}

#[tokio::test]
async fn the_audit_feed_reaches_rsyslog_over_tcp_in_order_through_outages_jetstream_pg() {
    feed_over_tcp(Stack::JetStreamPg).await;
}

/// Two instances on one log: one holds the sink's lease and sends, each event once, in
/// order. Killed (no chance to let the lease go), its lease runs out on the service's
/// clock and the other instance goes on from the cursor.
#[tokio::test]
async fn two_instances_send_each_event_once_and_a_crashed_senders_lease_runs_out_jetstream_pg() {
    let daemon = Syslogd::start(None).await;
    let clock = TestClock::new();
    let (clock_var, clock_file) = clock.env();
    let mut env = Env::start_instances(
        Stack::JetStreamPg,
        2,
        &[
            ("AUTHLEDGER_SYSLOG_URL", daemon.url("tcp")),
            ("AUTHLEDGER_SYSLOG_BACKFILL", "true".into()),
            (clock_var, clock_file.to_string()),
        ],
    )
    .await;
    let ws = env.d.workspace.clone();
    for i in 0..5 {
        env.auth_config(&format!("two-{i}")).await;
    }
    let audit = env.audit().await;
    let received = daemon
        .received_with("the audit view from two instances", &ids(&audit))
        .await;
    same_as_audit(&received, &ws, &audit);
    // Every message counted (after it is sent), by one instance.
    let counted = || async {
        [
            env.metric_of(0, "authledger_syslog_messages_total").await,
            env.metric_of(1, "authledger_syslog_messages_total").await,
        ]
    };
    let n = received.len() as f64;
    eventually(WAIT, "the messages counted", || async {
        counted().await.iter().sum::<f64>() >= n
    })
    .await;
    let sent = counted().await;
    assert!(
        sent.iter().filter(|n| **n > 0.0).count() == 1,
        "one instance sends: {sent:?}"
    );
    let sender = usize::from(sent[1] > 0.0);
    // Its cursor moved: a round after the batch found nothing due.
    eventually(WAIT, "the sender's cursor at the log head", || async {
        env.metric_of(sender, "authledger_syslog_lag_events").await == 0.0
    })
    .await;
    let other = 1 - sender;

    // The sender killed: the other instance waits for its lease to run out, then sends.
    let victim = if sender == 0 {
        &mut env.d.svc.child
    } else {
        &mut env.d.more[0].child
    };
    let _ = victim.kill();
    let _ = victim.wait();
    let mut made = Vec::new();
    for i in 0..3 {
        let r = Reply::of(request(
            &env.http,
            env.d.instance(other),
            &env.d.admin,
            Method::POST,
            "/v1/auth-configs",
            Some(
                json!({ "name": format!("after-crash-{i}"), "provider": "custom",
                "auth_type": "api_key",
                "api_key": { "key_name": "X-Api-Key", "location": "header", "prefix": null } }),
            ),
        ))
        .await;
        assert_eq!(r.status, StatusCode::CREATED, "{}", r.text);
        made.push(r.str("id"));
    }
    eventually(
        WAIT,
        "the events wait while the dead sender's lease lasts",
        || async { env.metric_of(other, "authledger_syslog_lag_events").await >= 3.0 },
    )
    .await;
    let arrived = |r: &Received| {
        made.iter()
            .any(|id| r.json()["aggregate"]["id"] == id.as_str())
    };
    assert!(
        !daemon.received().iter().any(arrived),
        "sent while the dead sender's lease lasts"
    );
    clock.advance(Duration::from_secs(31));
    eventually(WAIT, "the events made after the crash", || async {
        let got: Vec<String> = daemon
            .received()
            .iter()
            .map(|r| {
                r.json()["aggregate"]["id"]
                    .as_str()
                    .unwrap_or_default()
                    .to_string()
            })
            .collect();
        made.iter().all(|id| got.contains(id))
    })
    .await;
    let positions: Vec<i64> = daemon.received().iter().map(Received::position).collect();
    assert!(
        positions.windows(2).all(|w| w[0] < w[1]),
        "log order, each once: {positions:?}"
    );
}

async fn feed_over_tls(stack: Stack) {
    let pki_dir = tempfile::tempdir().expect("dir");
    let pki = make_pki(pki_dir.path());
    let other_ca = make_ca(pki_dir.path(), "other-ca");
    let daemon = Syslogd::start(Some((&pki, "anon"))).await;

    // Another CA: the daemon's certificate is refused, nothing is sent, the failure shows.
    let wrong = Env::start(
        Stack::Embedded,
        &[
            ("AUTHLEDGER_SYSLOG_URL", daemon.url("tls")),
            ("AUTHLEDGER_SYSLOG_BACKFILL", "true".into()),
            ("AUTHLEDGER_SYSLOG_CA", other_ca.display().to_string()),
        ],
    )
    .await;
    wrong.auth_config("refused").await;
    eventually(WAIT, "a refused TLS handshake counted", || async {
        wrong
            .metric("authledger_syslog_failures_total{stage=\"tls\"}")
            .await
            >= 1.0
    })
    .await;
    assert!(wrong.metric("authledger_syslog_lag_events").await >= 1.0);
    assert!(daemon.received().is_empty(), "{:?}", daemon.received());
    let log = wrong.serve_log();
    assert!(
        log.contains("SIEM feed: cannot send to the syslog daemon") && log.contains("tls"),
        "{log}"
    );
    drop(wrong);

    // The right CA: the feed arrives.
    let env = Env::start(
        stack,
        &[
            ("AUTHLEDGER_SYSLOG_URL", daemon.url("tls")),
            ("AUTHLEDGER_SYSLOG_BACKFILL", "true".into()),
            ("AUTHLEDGER_SYSLOG_CA", pki.ca.display().to_string()),
        ],
    )
    .await;
    env.auth_config("over-tls").await;
    let audit = env.audit().await;
    let received = daemon
        .received_with("the audit view over TLS", &ids(&audit))
        .await;
    same_as_audit(&received, &env.d.workspace, &audit);
    assert!(!daemon.text().contains(&env.d.admin));
}

#[tokio::test]
async fn the_audit_feed_reaches_rsyslog_over_tls_only_with_the_right_ca_embedded() {
    feed_over_tls(Stack::Embedded).await;
}

#[tokio::test]
async fn the_audit_feed_reaches_rsyslog_over_tls_only_with_the_right_ca_jetstream_pg() {
    feed_over_tls(Stack::JetStreamPg).await;
}

/// A daemon that takes only clients with a certificate from its CA: without one nothing
/// counts as sent (the daemon closes the connection after the TLS 1.3 handshake, and the
/// first batch on a connection counts only if it stays open), the failure shows; with
/// `--syslog-client-cert`/`--syslog-client-key` the feed arrives.
#[tokio::test]
async fn a_daemon_that_wants_a_client_certificate_gets_the_feed_only_with_one_embedded() {
    let pki_dir = tempfile::tempdir().expect("dir");
    let pki = make_pki(pki_dir.path());
    let (client_cert, client_key) = make_cert(
        pki_dir.path(),
        "ca",
        "authledger-client",
        "basicConstraints=CA:FALSE\nkeyUsage=critical,digitalSignature\nextendedKeyUsage=clientAuth\n",
    );
    let daemon = Syslogd::start(Some((&pki, "x509/certvalid"))).await;
    let tls = [
        ("AUTHLEDGER_SYSLOG_URL", daemon.url("tls")),
        ("AUTHLEDGER_SYSLOG_BACKFILL", "true".into()),
        ("AUTHLEDGER_SYSLOG_CA", pki.ca.display().to_string()),
    ];

    let anonymous = Env::start(Stack::Embedded, &tls).await;
    anonymous.auth_config("no-client-cert").await;
    eventually(WAIT, "a refused client counted", || async {
        anonymous
            .metric("authledger_syslog_failures_total{stage=\"send\"}")
            .await
            + anonymous
                .metric("authledger_syslog_failures_total{stage=\"tls\"}")
                .await
            >= 2.0
    })
    .await;
    assert!(anonymous.metric("authledger_syslog_messages_total").await == 0.0);
    assert!(anonymous.metric("authledger_syslog_lag_events").await >= 1.0);
    assert!(daemon.received().is_empty(), "{:?}", daemon.received());
    drop(anonymous);

    let with_cert = [
        tls.to_vec(),
        vec![
            (
                "AUTHLEDGER_SYSLOG_CLIENT_CERT",
                client_cert.display().to_string(),
            ),
            (
                "AUTHLEDGER_SYSLOG_CLIENT_KEY",
                client_key.display().to_string(),
            ),
        ],
    ]
    .concat();
    let env = Env::start(Stack::Embedded, &with_cert).await;
    env.auth_config("client-cert").await;
    let audit = env.audit().await;
    let received = daemon
        .received_with("the audit view with a client certificate", &ids(&audit))
        .await;
    same_as_audit(&received, &env.d.workspace, &audit);
}

/// A setting that cannot work stops `serve` before it starts, naming the flag.
#[tokio::test]
async fn serve_refuses_a_syslog_setting_that_cannot_work() {
    let dir = tempfile::tempdir().expect("dir");
    for (url, extra, said) in [
        ("tcp://10.1.2.3:514", None, "destination refused"),
        ("udp://127.0.0.1:514", None, "tcp:// or tls://"),
        (
            "tcp://127.0.0.1:514",
            Some(("AUTHLEDGER_SYSLOG_CA", "/nonexistent.pem")),
            "--syslog-ca",
        ),
        (
            "tls://127.0.0.1:6514",
            Some(("AUTHLEDGER_SYSLOG_FACILITY", "kern")),
            "facility",
        ),
    ] {
        let mut cmd = Command::new(crate::harness::bin());
        cmd.args(["--data-dir"])
            .arg(dir.path())
            .args(["serve", "--listen", &format!("127.0.0.1:{}", free_port())])
            .env_remove("AUTHLEDGER_SIGNING_KEY")
            .env("AUTHLEDGER_ALLOW_LOOPBACK_URLS", "true")
            .env("AUTHLEDGER_SYSLOG_URL", url);
        if let Some((k, v)) = extra {
            cmd.env(k, v);
        }
        let out = cmd.output().expect("serve");
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert!(!out.status.success(), "{url}: serve started");
        assert!(stderr.contains(said), "{url}: {stderr}");
    }
    let written: Vec<_> = std::fs::read_dir(dir.path()).expect("dir").collect();
    assert!(
        written.is_empty(),
        "nothing written before the settings are checked: {written:?}"
    );
}
