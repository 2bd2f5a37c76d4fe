//! The `amqp` driver against a RabbitMQ node of the test's own (`rabbitmq-server` with its
//! own node name, ports, epmd, `RABBITMQ_MNESIA_BASE` and `RABBITMQ_LOG_BASE` under a temp
//! dir; users, a vhost and permissions loaded from a definitions file at boot): a connection
//! and a channel on the vhost; wrong password, unknown vhost, a vhost the user has no
//! permission on, a closed port, a silent listener; over TLS (an AMQPS listener with a
//! certificate from the test's own CA): the CA given, another CA, TLS to the plain port; and
//! compatible services' definitions. One node per test run (it takes seconds to start),
//! over HTTP on both stacks.

use std::process::{Child, Command, Stdio};
use std::time::Duration;

use base64::Engine as _;
use serde_json::json;
use sha2::{Digest, Sha256};

use crate::connectors_postgres::{openssl_ca, openssl_server_cert};
use crate::connectors_support::{binary, Lab, STACKS};
use crate::harness::free_port;

struct RabbitMq {
    node: Child,
    epmd: Child,
    port: u16,
    /// The AMQPS listener (a certificate for 127.0.0.1 from the CA `ca`).
    tls_port: u16,
    ca: String,
    other_ca: String,
    dir: tempfile::TempDir,
}

impl Drop for RabbitMq {
    fn drop(&mut self) {
        // SIGTERM to the start script stops the node it started (its trap), then the node's
        // own pid for certain, then epmd.
        let term = |pid: i32| {
            let _ = nix::sys::signal::kill(
                nix::unistd::Pid::from_raw(pid),
                nix::sys::signal::Signal::SIGTERM,
            );
        };
        if let Ok(pid) = i32::try_from(self.node.id()) {
            term(pid);
        }
        let _ = self.node.wait();
        if let Some(pid) = std::fs::read_to_string(self.dir.path().join("pid"))
            .ok()
            .and_then(|p| p.trim().parse::<i32>().ok())
        {
            let _ = nix::sys::signal::kill(
                nix::unistd::Pid::from_raw(pid),
                nix::sys::signal::Signal::SIGKILL,
            );
        }
        let _ = self.epmd.kill();
        let _ = self.epmd.wait();
    }
}

/// RabbitMQ's `rabbit_password_hashing_sha256`: base64(salt ‖ sha256(salt ‖ password)).
fn password_hash(password: &str) -> String {
    let salt: [u8; 4] = rand::random();
    let digest = Sha256::new()
        .chain_update(salt)
        .chain_update(password.as_bytes())
        .finalize();
    base64::engine::general_purpose::STANDARD.encode([&salt[..], &digest[..]].concat())
}

async fn rabbitmq(password: &str) -> RabbitMq {
    let server = binary("rabbitmq-server", "rabbitmq-server");
    let epmd_bin = binary("epmd", "rabbitmq-server (erlang-base)");
    let dir = tempfile::tempdir().expect("dir");
    let root = dir.path();
    let (port, dist_port, epmd_port) = (free_port(), free_port(), free_port());
    let tls_port = free_port();
    let certs = root.join("certs");
    std::fs::create_dir(&certs).expect("certs");
    let ca = openssl_ca(&certs, "ca");
    let other_ca = openssl_ca(&certs, "other");
    openssl_server_cert(&certs, "ca", "broker.test.invalid");
    let user = |name: &str| {
        json!({ "name": name, "password_hash": password_hash(password),
                "hashing_algorithm": "rabbit_password_hashing_sha256", "tags": [] })
    };
    let definitions = json!({
        "users": [user("tester"), user("outsider")],
        "vhosts": [{ "name": "app" }, { "name": "/" }],
        "permissions": [
            { "user": "tester", "vhost": "app", "configure": ".*", "write": ".*", "read": ".*" },
            { "user": "outsider", "vhost": "/", "configure": ".*", "write": ".*", "read": ".*" },
        ],
    });
    std::fs::write(root.join("definitions.json"), definitions.to_string()).expect("defs");
    std::fs::write(
        root.join("rabbitmq.conf"),
        format!(
            "listeners.tcp.default = {port}\nloopback_users = none\n\
             load_definitions = {}\n\
             listeners.ssl.default = {tls_port}\n\
             ssl_options.cacertfile = {}\nssl_options.certfile = {}\n\
             ssl_options.keyfile = {}\nssl_options.verify = verify_none\n\
             ssl_options.fail_if_no_peer_cert = false\n",
            root.join("definitions.json").display(),
            certs.join("ca.pem").display(),
            certs.join("server.pem").display(),
            certs.join("server.key").display(),
        ),
    )
    .expect("conf");
    std::fs::write(root.join("enabled_plugins"), "[].\n").expect("plugins");
    let epmd = Command::new(epmd_bin)
        .args(["-port", &epmd_port.to_string()])
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .expect("epmd");
    let node = format!("authledger_test_{port}@localhost");
    let node = Command::new(server)
        .env("HOME", root)
        .env("ERL_EPMD_PORT", epmd_port.to_string())
        .env("RABBITMQ_NODENAME", &node)
        .env("RABBITMQ_NODE_PORT", port.to_string())
        .env("RABBITMQ_DIST_PORT", dist_port.to_string())
        .env("RABBITMQ_MNESIA_BASE", root.join("mnesia"))
        .env("RABBITMQ_LOG_BASE", root.join("log"))
        .env("RABBITMQ_CONFIG_FILE", root.join("rabbitmq"))
        .env(
            "RABBITMQ_ADVANCED_CONFIG_FILE",
            root.join("advanced.config"),
        )
        .env("RABBITMQ_CONF_ENV_FILE", root.join("rabbitmq-env.conf"))
        .env(
            "RABBITMQ_ENABLED_PLUGINS_FILE",
            root.join("enabled_plugins"),
        )
        .env("RABBITMQ_PID_FILE", root.join("pid"))
        .stdin(Stdio::null())
        .stdout(std::fs::File::create(root.join("server.out")).expect("out"))
        .stderr(std::fs::File::create(root.join("server.err")).expect("err"))
        .spawn()
        .expect("rabbitmq-server");
    let mut broker = RabbitMq {
        node,
        epmd,
        port,
        tls_port,
        ca,
        other_ca,
        dir,
    };
    let deadline = std::time::Instant::now() + Duration::from_secs(180);
    while tokio::net::TcpStream::connect(("127.0.0.1", port))
        .await
        .is_err()
    {
        let exited = broker.node.try_wait().ok().flatten().is_some();
        if exited || std::time::Instant::now() > deadline {
            let said =
                |f: &str| std::fs::read_to_string(broker.dir.path().join(f)).unwrap_or_default();
            panic!(
                "rabbitmq-server did not start on {port}:\n{}\n{}",
                said("server.out"),
                said("server.err")
            );
        }
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    broker
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn amqp_driver_opens_a_channel_on_the_vhost_and_classifies_failures() {
    let password = format!("Mq-{}", uuid::Uuid::now_v7().simple());
    let broker = rabbitmq(&password).await;
    let good = json!({ "username": "tester", "password": password });
    let wrong = json!({ "username": "tester", "password": "Not-The-Password-45" });
    let settings =
        |vhost: &str| json!({ "host": "127.0.0.1", "port": broker.port, "vhost": vhost });
    for stack in STACKS {
        // RabbitMQ delays its answer to a refused login by 3 s (`SILENT_CLOSE_DELAY`).
        let lab = Lab::with_timeout(stack, "6").await;
        lab.common_cases("rabbitmq", &settings("app"), &good, &wrong)
            .await;
        let id = lab.config("rabbitmq", settings("app")).await;
        Lab::passed(&lab.test(&id, good.clone()).await);
        lab.fails(&id, wrong.clone(), "invalid_credentials").await;
        let outsider = json!({ "username": "outsider", "password": password });
        let said = lab.fails(&id, outsider, "permission_denied").await;
        assert!(said.contains("app"), "{said}");
        let id = lab.config("rabbitmq", settings("no_such_vhost")).await;
        let said = lab.fails(&id, good.clone(), "not_found").await;
        assert!(said.contains("no_such_vhost"), "{said}");
        for connector in ["cloudamqp", "lavinmq"] {
            let id = lab.config(connector, settings("app")).await;
            Lab::passed(&lab.test(&id, good.clone()).await);
        }

        // AMQPS: the broker's certificate (for 127.0.0.1) from the CA given.
        let tls = |port: u16, ca: &str| {
            json!({ "host": "127.0.0.1", "port": port, "vhost": "app", "tls": true,
                    "ca_certificate": ca })
        };
        let id = lab
            .config("rabbitmq", tls(broker.tls_port, &broker.ca))
            .await;
        Lab::passed(&lab.test(&id, good.clone()).await);
        lab.fails(&id, wrong.clone(), "invalid_credentials").await;
        let id = lab
            .config("rabbitmq", tls(broker.tls_port, &broker.other_ca))
            .await;
        let said = lab.fails(&id, good.clone(), "tls_failure").await;
        assert!(said.contains("certificate"), "{said}");
        let id = lab.config("rabbitmq", tls(broker.port, &broker.ca)).await;
        lab.fails(&id, good.clone(), "tls_failure").await;
        // Amazon MQ: AMQPS by default.
        let settings = json!({ "host": "127.0.0.1", "port": broker.tls_port, "vhost": "app",
                               "ca_certificate": broker.ca });
        let id = lab.config("amazon_mq", settings).await;
        Lab::passed(&lab.test(&id, good.clone()).await);
        lab.assert_nowhere(&[&password, "Not-The-Password-45"])
            .await;
    }
    assert!(
        broker.dir.path().join("mnesia").exists(),
        "the node's own data dir"
    );
}
