//! Test harness: a test-owned `nats-server` per test (free port, temp store,
//! `sync_interval: always`, killed on drop, by PID), a fresh PostgreSQL database per test,
//! and helpers to run the built binary.

use std::net::TcpListener;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Output, Stdio};
use std::sync::Arc;
use std::time::{Duration, Instant};

use authledger::clock::SystemClock;
use authledger::ledger::jetstream_log::{JetStreamEventLog, JetStreamOptions};
use authledger::ledger::sqlite_log::SqliteEventLog;
use authledger::ledger::{EventLog, Ledger, Signer};
use authledger::metrics::Metrics;

pub fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .map(|a| a.port())
        .expect("free port")
}

fn nats_server_bin() -> PathBuf {
    if let Ok(p) = std::env::var("AUTHLEDGER_TEST_NATS_SERVER") {
        return PathBuf::from(p);
    }
    let found = std::env::var_os("PATH").and_then(|paths| {
        std::env::split_paths(&paths)
            .map(|d| d.join("nats-server"))
            .find(|p| p.is_file())
    });
    found.expect(
        "nats-server not found: run the suite with tools/test (it installs nats-server-bin 2.15.1)",
    )
}

/// A nats-server child owned by one test.
pub struct NatsServer {
    pub port: u16,
    /// Its `server_name`: the port is ours only while the server there says this name.
    name: String,
    /// Kept for the server's lifetime (dropped = deleted).
    store: tempfile::TempDir,
    config: PathBuf,
    child: Option<Child>,
    /// Its route port in a cluster.
    cluster_port: Option<u16>,
    /// Its ports held by this test between `kill` and `restart`, so no other test's server
    /// takes one meanwhile.
    held: Vec<socket2::Socket>,
}

impl NatsServer {
    /// A nats-server on a free port. The port is only free when picked: another test's
    /// server may take it first, and then this one fails to bind while the port answers.
    /// So the server is named, and it is ours only when the port's `INFO` says that name;
    /// otherwise another port is tried.
    pub fn start() -> NatsServer {
        for _ in 0..5 {
            let store = tempfile::tempdir().expect("temp store");
            let port = free_port();
            let name = format!("authledger-test-{}", uuid::Uuid::now_v7().simple());
            let config = store.path().join("nats.conf");
            std::fs::write(
                &config,
                format!(
                    "server_name: {name}\nlisten: 127.0.0.1:{port}\njetstream {{\n  store_dir: \"{}\"\n  sync_interval: always\n}}\n",
                    store.path().join("js").display()
                ),
            )
            .expect("write nats config");
            let mut s = NatsServer {
                port,
                name,
                store,
                config,
                child: None,
                cluster_port: None,
                held: Vec::new(),
            };
            if s.spawn() && s.answers_as(&s.name) {
                return s;
            }
            s.stop();
        }
        panic!("no nats-server of this test's own came up on a free port in 5 tries");
    }

    /// Whether the server on `port` introduces itself (its `INFO` line) as `name`.
    fn answers_as(&self, name: &str) -> bool {
        use std::io::BufRead as _;
        let Ok(stream) = std::net::TcpStream::connect(("127.0.0.1", self.port)) else {
            return false;
        };
        let _ = stream.set_read_timeout(Some(Duration::from_secs(5)));
        let mut info = String::new();
        let _ = std::io::BufReader::new(stream).read_line(&mut info);
        info.contains(&format!("\"server_name\":\"{name}\""))
    }

    /// `n` nats-servers clustered on loopback (JetStream on each, fsync always), each
    /// with its own store and its log in `nats.log` there; they elect a JetStream leader
    /// among themselves. The servers are named `n0-<id>`, `n1-<id>`, … and the cluster
    /// `authledger-test-<id>`, `<id>` new for each start: another test's cluster never
    /// answers for this one, nor joins it. As with `start`, a port is
    /// only free when picked (a client or cluster port taken meanwhile leaves a node dead
    /// or a stranger answering): the whole cluster is started again on other ports then.
    pub fn start_cluster(n: usize) -> Vec<NatsServer> {
        for _ in 0..5 {
            let cluster = Self::spawn_cluster(n);
            if cluster
                .iter()
                .all(|s| s.child.is_some() && s.answers_as(&s.name))
            {
                return cluster;
            }
        }
        panic!("no {n}-node nats-server cluster of this test's own came up in 5 tries");
    }

    fn spawn_cluster(n: usize) -> Vec<NatsServer> {
        let id = uuid::Uuid::now_v7().simple().to_string();
        let ports: Vec<(u16, u16)> = (0..n).map(|_| (free_port(), free_port())).collect();
        let routes = ports
            .iter()
            .map(|(_, c)| format!("\"nats-route://127.0.0.1:{c}\""))
            .collect::<Vec<_>>()
            .join(", ");
        let mut cluster: Vec<NatsServer> = ports
            .iter()
            .enumerate()
            .map(|(i, (port, cluster_port))| {
                let store = tempfile::tempdir().expect("temp store");
                let config = store.path().join("nats.conf");
                std::fs::write(
                    &config,
                    format!(
                        "server_name: n{i}-{id}\nlisten: 127.0.0.1:{port}\nlog_file: \"{}\"\n\
                         jetstream {{\n  store_dir: \"{}\"\n  sync_interval: always\n}}\n\
                         cluster {{\n  name: authledger-test-{id}\n  listen: 127.0.0.1:{cluster_port}\n  routes: [{routes}]\n}}\n",
                        store.path().join("nats.log").display(),
                        store.path().join("js").display()
                    ),
                )
                .expect("write nats config");
                NatsServer {
                    port: *port,
                    name: format!("n{i}-{id}"),
                    store,
                    config,
                    child: None,
                    cluster_port: Some(*cluster_port),
                    held: Vec::new(),
                }
            })
            .collect();
        for s in &mut cluster {
            if !s.spawn() {
                s.stop();
            }
        }
        cluster
    }

    /// The end of this server's log (`nats.log` in its store; clustered servers only),
    /// for a failing test to show why the cluster did not do what it waited for.
    pub fn log_tail(&self, lines: usize) -> String {
        let log = std::fs::read_to_string(self.store.path().join("nats.log")).unwrap_or_default();
        let all: Vec<&str> = log.lines().collect();
        all[all.len().saturating_sub(lines)..].join("\n")
    }

    /// SIGSTOP / SIGCONT: the process stays, the others see it as gone.
    pub fn pause(&self, paused: bool) {
        if let Some(c) = &self.child {
            let pid = nix::unistd::Pid::from_raw(c.id() as i32);
            let sig = if paused {
                nix::sys::signal::Signal::SIGSTOP
            } else {
                nix::sys::signal::Signal::SIGCONT
            };
            let _ = nix::sys::signal::kill(pid, sig);
        }
    }

    /// Starts the server and waits until its port answers; false when the process ended
    /// first (its port or cluster port was taken).
    fn spawn(&mut self) -> bool {
        let child = Command::new(nats_server_bin())
            .arg("-c")
            .arg(&self.config)
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("spawn nats-server");
        let child = self.child.insert(child);
        let deadline = Instant::now() + Duration::from_secs(15);
        while std::net::TcpStream::connect(("127.0.0.1", self.port)).is_err() {
            if matches!(child.try_wait(), Ok(Some(_))) {
                return false;
            }
            assert!(
                Instant::now() < deadline,
                "nats-server did not start on port {}",
                self.port
            );
            std::thread::sleep(Duration::from_millis(20));
        }
        true
    }

    pub fn url(&self) -> String {
        format!("nats://127.0.0.1:{}", self.port)
    }

    /// SIGKILL, and its ports held until `restart`: bound without `SO_REUSEADDR` and not
    /// listening, so no other socket binds them (nor gets them from port 0) and a client
    /// that connects is refused, as with no server at all.
    pub fn kill(&mut self) {
        self.stop();
        self.held = [Some(self.port), self.cluster_port]
            .into_iter()
            .flatten()
            .filter_map(|p| {
                let s = socket2::Socket::new(socket2::Domain::IPV4, socket2::Type::STREAM, None)
                    .ok()?;
                let at = std::net::SocketAddr::from(([127, 0, 0, 1], p));
                s.bind(&at.into()).ok().map(|()| s)
            })
            .collect();
    }

    /// SIGKILL: no chance to flush anything.
    fn stop(&mut self) {
        if let Some(mut c) = self.child.take() {
            let _ = c.kill();
            let _ = c.wait();
        }
    }

    /// Starts again on the same port and store.
    pub fn restart(&mut self) {
        self.stop();
        self.held.clear();
        let started = self.spawn();
        assert!(
            started && self.answers_as(&self.name),
            "nats-server {} did not start again on port {} ({}); its log ends:\n{}",
            self.name,
            self.port,
            if started {
                "another server answers there"
            } else {
                "it exited"
            },
            self.log_tail(30)
        );
    }

    pub fn options(&self, stream: &str) -> JetStreamOptions {
        let mut o = JetStreamOptions::new(self.url());
        o.stream = stream.to_string();
        o.ack_timeout = Duration::from_secs(2);
        o
    }
}

impl Drop for NatsServer {
    fn drop(&mut self) {
        self.stop();
    }
}

/// One of the two event-log backends, with what it needs to live.
pub enum Backend {
    Sqlite(tempfile::TempDir),
    JetStream(NatsServer),
}

impl Backend {
    pub fn sqlite() -> Backend {
        Backend::Sqlite(tempfile::tempdir().expect("tempdir"))
    }

    pub fn jetstream() -> Backend {
        Backend::JetStream(NatsServer::start())
    }

    pub fn name(&self) -> &'static str {
        match self {
            Backend::Sqlite(_) => "sqlite",
            Backend::JetStream(_) => "jetstream",
        }
    }

    pub async fn open(&self) -> Arc<dyn EventLog> {
        match self {
            Backend::Sqlite(dir) => Arc::new(
                SqliteEventLog::open(&dir.path().join("ledger.db"))
                    .await
                    .expect("open sqlite log"),
            ),
            Backend::JetStream(nats) => Arc::new(
                JetStreamEventLog::open(nats.options("LEDGER"))
                    .await
                    .expect("open jetstream log"),
            ),
        }
    }

    /// Makes the log go away and come back: reopen the file / restart the server.
    pub fn restart(&mut self) {
        if let Backend::JetStream(nats) = self {
            nats.restart();
        }
    }
}

pub fn ledger(log: Arc<dyn EventLog>, signer: Signer) -> Ledger {
    Ledger::new(log, signer, Arc::new(SystemClock), Metrics::new())
}

pub fn bin() -> &'static str {
    env!("CARGO_BIN_EXE_authledger")
}

/// Runs the binary to completion.
pub fn run_cli(args: &[String]) -> Output {
    Command::new(bin())
        .args(args)
        .env_remove("AUTHLEDGER_SIGNING_KEY")
        .env_remove("AUTHLEDGER_NATS_URL")
        .env_remove("AUTHLEDGER_DATABASE_URL")
        .env("RUST_LOG", "warn")
        .output()
        .expect("run authledger")
}

pub fn args(parts: &[&str]) -> Vec<String> {
    parts.iter().map(|s| s.to_string()).collect()
}

/// PostgreSQL for tests: a fresh database per call on the server tools/test started.
pub async fn fresh_pg_database() -> String {
    let admin = std::env::var("AUTHLEDGER_TEST_DATABASE_URL")
        .expect("AUTHLEDGER_TEST_DATABASE_URL not set: run the suite with tools/test (it starts PostgreSQL)");
    let name = format!("t_{}", uuid::Uuid::now_v7().simple());
    let pool = sqlx::PgPool::connect(&admin)
        .await
        .expect("connect to test PostgreSQL");
    sqlx::query(&format!("CREATE DATABASE {name}"))
        .execute(&pool)
        .await
        .expect("create test database");
    pool.close().await;
    match admin.rfind('/') {
        Some(i) => format!("{}/{name}", &admin[..i]),
        None => panic!("AUTHLEDGER_TEST_DATABASE_URL has no database part: {admin}"),
    }
}

/// Waits until `f` returns true (polling), failing after `timeout`.
pub async fn eventually<F, Fut>(timeout: Duration, what: &str, mut f: F)
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = bool>,
{
    let deadline = Instant::now() + timeout;
    loop {
        if f().await {
            return;
        }
        assert!(Instant::now() < deadline, "timed out waiting for {what}");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

fn append(path: &Path) -> std::fs::File {
    std::fs::OpenOptions::new()
        .create(true)
        .append(true)
        .open(path)
        .expect("log file")
}

/// A `serve` process; killed on drop.
pub struct Service {
    pub child: Child,
    pub addr: String,
    pub stdout_path: PathBuf,
}

impl Service {
    /// Starts `authledger <storage args> serve --listen 127.0.0.1:<free>` and waits for /healthz.
    pub async fn start(storage: &[String], envs: &[(&str, &str)], log_dir: &Path) -> Service {
        Service::start_on(free_port(), storage, envs, log_dir).await
    }

    /// `start` on a given port (a restart keeps its address: OAuth clients registered its
    /// callback URL).
    pub async fn start_on(
        port: u16,
        storage: &[String],
        envs: &[(&str, &str)],
        log_dir: &Path,
    ) -> Service {
        let stdout_path = log_dir.join(format!("serve-{port}.out"));
        let stderr_path = log_dir.join(format!("serve-{port}.err"));
        let mut cmd = Command::new(bin());
        cmd.args(storage)
            .args(["serve", "--listen", &format!("127.0.0.1:{port}")])
            .env_remove("AUTHLEDGER_SIGNING_KEY")
            // Checkpoints append events every minute; tests that count events would race
            // them. Tests of checkpoints turn them on through `envs`.
            .env("AUTHLEDGER_CHECKPOINT_SCHEDULE", "off")
            // Tests refuse many requests on purpose; the flood limit has its own test.
            .env("AUTHLEDGER_DENIAL_RATE_LIMIT_PER_SEC", "100000")
            .env("AUTHLEDGER_DENIAL_RATE_LIMIT_BURST", "100000")
            .env("RUST_LOG", "info")
            // Appended: a restart on the same port keeps what the earlier run wrote.
            .stdout(append(&stdout_path))
            .stderr(append(&stderr_path));
        for (k, v) in envs {
            cmd.env(k, v);
        }
        let child = cmd.spawn().expect("spawn serve");
        let svc = Service {
            child,
            addr: format!("127.0.0.1:{port}"),
            stdout_path,
        };
        let url = format!("http://{}/healthz", svc.addr);
        let client = reqwest::Client::new();
        let deadline = Instant::now() + Duration::from_secs(30);
        loop {
            if let Ok(r) = client.get(&url).send().await {
                if r.status().is_success() {
                    break;
                }
            }
            assert!(
                Instant::now() < deadline,
                "serve did not become healthy: {}",
                std::fs::read_to_string(&stderr_path).unwrap_or_default()
            );
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
        svc
    }

    pub fn url(&self, path: &str) -> String {
        format!("http://{}{path}", self.addr)
    }

    pub fn signal(&self, sig: nix::sys::signal::Signal) {
        let pid = nix::unistd::Pid::from_raw(self.child.id() as i32);
        let _ = nix::sys::signal::kill(pid, sig);
    }
}

impl Drop for Service {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}
