//! The `redis` driver against a `redis-server` of the test's own (its own config, on a free
//! port, the `default` user off): an ACL user logs in and `PING`s; wrong password, a user
//! not allowed `PING`, a database number the server does not have, a closed port, a silent
//! listener; over TLS (a `tls-port` with a certificate from the test's own CA): the CA given,
//! another CA, the public roots, TLS to a plain port (no answer: a timeout); and compatible
//! services' definitions on the same driver. Over HTTP, on both stacks.

use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::time::Duration;

use serde_json::json;

use crate::connectors_postgres::{openssl_ca, openssl_server_cert};
use crate::connectors_support::{binary, wait_for_port, Lab, STACKS};
use crate::harness::free_port;

pub struct Redis {
    child: Child,
    pub port: u16,
    /// The TLS port, when the server was started with one.
    pub tls_port: u16,
    _dir: tempfile::TempDir,
}

impl Drop for Redis {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

pub async fn redis(password: &str) -> Redis {
    redis_with(password, None).await
}

/// A server with ACL users; with `certs` (a directory holding `server.pem`, `server.key`
/// and the CA `ca.pem`) also a TLS port.
async fn redis_with(password: &str, certs: Option<&Path>) -> Redis {
    let server = binary("redis-server", "redis-server");
    let dir = tempfile::tempdir().expect("dir");
    let port = free_port();
    let (tls_port, tls) = match certs {
        None => (0, String::new()),
        Some(c) => {
            let tls_port = free_port();
            (
                tls_port,
                format!(
                    "tls-port {tls_port}\ntls-cert-file {}\ntls-key-file {}\n\
                     tls-ca-cert-file {}\ntls-auth-clients no\n",
                    c.join("server.pem").display(),
                    c.join("server.key").display(),
                    c.join("ca.pem").display(),
                ),
            )
        }
    };
    let conf = dir.path().join("redis.conf");
    std::fs::write(
        &conf,
        format!(
            "port {port}\nbind 127.0.0.1\nsave \"\"\nappendonly no\ndir {}\ndatabases 16\n{tls}\
             user default off\n\
             user app on >{password} ~* &* +@all\n\
             user no_ping on >{password} ~* -@all +auth +hello +select\n",
            dir.path().display()
        ),
    )
    .expect("redis.conf");
    let child = Command::new(server)
        .arg(&conf)
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .expect("redis-server");
    let r = Redis {
        child,
        port,
        tls_port,
        _dir: dir,
    };
    wait_for_port(port, "redis-server", Duration::from_secs(30)).await;
    if certs.is_some() {
        wait_for_port(tls_port, "redis-server (TLS)", Duration::from_secs(30)).await;
    }
    r
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn redis_driver_authenticates_an_acl_user_and_classifies_failures() {
    let password = format!("Rd-{}", uuid::Uuid::now_v7().simple());
    let server = redis(&password).await;
    let good = json!({ "username": "app", "password": password });
    let wrong = json!({ "username": "app", "password": "Not-The-Password-44" });
    let settings = |db: u32| json!({ "host": "127.0.0.1", "port": server.port, "database": db });
    for stack in STACKS {
        let lab = Lab::start(stack).await;
        lab.common_cases("redis", &settings(0), &good, &wrong).await;
        let id = lab.config("redis", settings(3)).await;
        Lab::passed(&lab.test(&id, good.clone()).await);
        lab.fails(&id, wrong.clone(), "invalid_credentials").await;
        // The `default` user is off: no username means no login.
        lab.fails(&id, json!({ "password": password }), "invalid_credentials")
            .await;
        let said = lab
            .fails(
                &id,
                json!({ "username": "no_ping", "password": password }),
                "permission_denied",
            )
            .await;
        assert!(said.contains("ping"), "{said}");
        let id = lab.config("redis", settings(99)).await;
        lab.fails(&id, good.clone(), "not_found").await;
        for connector in ["valkey", "keydb", "dragonfly", "memorystore_redis"] {
            let id = lab.config(connector, settings(0)).await;
            Lab::passed(&lab.test(&id, good.clone()).await);
        }
        lab.assert_nowhere(&[&password, "Not-The-Password-44"])
            .await;
    }
}

/// TLS: the server's certificate (for 127.0.0.1, from the test's CA) accepted with that CA
/// given, refused with another CA or the public roots (`tls_failure`, before any password
/// is sent); TLS to a plain port unanswered; the definitions that default to TLS (Upstash,
/// ElastiCache) on the same server.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn redis_driver_speaks_tls_with_the_ca_given() {
    let password = format!("Rd-{}", uuid::Uuid::now_v7().simple());
    let certs = tempfile::tempdir().expect("certs");
    let ca = openssl_ca(certs.path(), "ca");
    let other_ca = openssl_ca(certs.path(), "other");
    openssl_server_cert(certs.path(), "ca", "redis.test.invalid");
    let server = redis_with(&password, Some(certs.path())).await;
    let good = json!({ "username": "app", "password": password });
    let wrong = json!({ "username": "app", "password": "Not-The-Password-45" });
    let tls = |port: u16, ca: Option<&str>| {
        let mut s = json!({ "host": "127.0.0.1", "port": port, "tls": true });
        if let Some(ca) = ca {
            s["ca_certificate"] = json!(ca);
        }
        s
    };
    for stack in STACKS {
        let lab = Lab::start(stack).await;
        lab.common_cases("redis", &tls(server.tls_port, Some(&ca)), &good, &wrong)
            .await;
        let id = lab.config("redis", tls(server.tls_port, Some(&ca))).await;
        Lab::passed(&lab.test(&id, good.clone()).await);
        lab.fails(&id, wrong.clone(), "invalid_credentials").await;

        let id = lab
            .config("redis", tls(server.tls_port, Some(&other_ca)))
            .await;
        let said = lab.fails(&id, good.clone(), "tls_failure").await;
        assert!(said.contains("certificate"), "{said}");
        let id = lab.config("redis", tls(server.tls_port, None)).await;
        lab.fails(&id, good.clone(), "tls_failure").await;
        // A plain port never answers a TLS client hello: the same as a silent listener.
        let id = lab.config("redis", tls(server.port, Some(&ca))).await;
        lab.fails(&id, good.clone(), "timeout").await;
        let id = lab
            .config("redis", tls(server.tls_port, Some("not a certificate")))
            .await;
        let said = lab.fails(&id, good.clone(), "tls_failure").await;
        assert!(said.contains("CA certificate"), "{said}");
        // TLS off against the TLS port: nothing there speaks plain Redis.
        let mut plain = tls(server.tls_port, Some(&ca));
        plain["tls"] = json!(false);
        let id = lab.config("redis", plain).await;
        let report = lab.test(&id, good.clone()).await;
        assert_eq!(report["ok"], false, "{report}");

        for connector in ["upstash", "amazon_elasticache"] {
            let settings = json!({
                "host": "127.0.0.1", "port": server.tls_port, "ca_certificate": ca,
            });
            let id = lab.config(connector, settings).await;
            Lab::passed(&lab.test(&id, good.clone()).await);
            // TLS by default, against the public roots: the test's CA is not one of them.
            let id = lab
                .config(
                    connector,
                    json!({ "host": "127.0.0.1", "port": server.tls_port }),
                )
                .await;
            lab.fails(&id, good.clone(), "tls_failure").await;
        }
        lab.assert_nowhere(&[&password, "Not-The-Password-45"])
            .await;
    }
}

/// The value of `name="{name}" value="…"` in a page.
pub fn input_value(html: &str, name: &str) -> String {
    let at = html
        .find(&format!("name=\"{name}\" value=\""))
        .unwrap_or_else(|| panic!("no input {name}"));
    let rest = &html[at + name.len() + 15..];
    rest[..rest.find('"').expect("quote")].to_string()
}

/// The hosted connect page renders a connector's credential fields from its definition
/// (labels, help, the secret as a password input) and its Test and Connect run the driver
/// against the real server: a wrong password is shown as failed and nothing is saved, the
/// right one connects.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_hosted_connect_page_renders_a_connector_form_from_its_definition() {
    let password = format!("Rd-{}", uuid::Uuid::now_v7().simple());
    let server = redis(&password).await;
    let lab = Lab::start(crate::support::Stack::Embedded).await;
    let id = lab
        .config(
            "valkey",
            json!({ "host": "127.0.0.1", "port": server.port }),
        )
        .await;
    let page = lab.open_hosted_page(&id, "analyst").await;
    let (html, connection) = (&page.html, &page.connection);
    for expected in [
        "<label for=\"f_username\">Username</label>",
        "name=\"f_username\" type=\"text\"",
        "value=\"default\"",
        "<label for=\"f_password\">Password</label>",
        "name=\"f_password\" type=\"password\"",
        "The ACL user",
        "id=\"test\"",
    ] {
        assert!(
            html.contains(expected),
            "{expected} not in the page:\n{html}"
        );
    }
    let r = page
        .post(vec![
            ("action", "test".into()),
            ("f_username", "app".into()),
            ("f_password", "Not-The-Password-47".into()),
        ])
        .await;
    let html = r.text().await.expect("html");
    assert!(
        html.contains("Test failed") && html.contains("invalid_credentials"),
        "{html}"
    );
    assert!(
        html.contains("value=\"app\""),
        "the user name is kept: {html}"
    );
    assert!(!html.contains("Not-The-Password-47"), "{html}");
    let r = page
        .post(vec![
            ("action", "connect".into()),
            ("f_username", "app".into()),
            ("f_password", password.clone()),
        ])
        .await;
    assert!(
        r.status().is_success() || r.status().is_redirection(),
        "{}",
        r.status()
    );
    let r = lab
        .call(
            reqwest::Method::GET,
            &format!("/v1/connections/{connection}"),
            None,
        )
        .await;
    assert_eq!(r.body["status"], "active", "{}", r.text);
    lab.assert_nowhere(&[&password, "Not-The-Password-47"])
        .await;
}
