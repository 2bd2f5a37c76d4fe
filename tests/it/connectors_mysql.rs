//! The `mysql` driver against a MariaDB server of the test's own (`mariadb-install-db` and
//! `mariadbd` under a temp dir, on a free port): a user and its database, wrong password,
//! unknown database, a database the user may not use, a closed port, a silent listener; and
//! compatible services' definitions on the same driver. Over HTTP, on both stacks.

use std::process::{Child, Command, Stdio};
use std::time::Duration;

use serde_json::json;

use crate::connectors_support::{binary, wait_for_port, Lab, STACKS};
use crate::harness::free_port;

pub(crate) struct MariaDb {
    child: Child,
    pub(crate) port: u16,
    _dir: tempfile::TempDir,
}

impl Drop for MariaDb {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// A MariaDB server of the test's own (root without a password on 127.0.0.1); stops on
/// drop.
pub(crate) async fn mariadb() -> MariaDb {
    let install = binary("mariadb-install-db", "mariadb-server");
    let server = binary("mariadbd", "mariadb-server");
    let dir = tempfile::tempdir().expect("dir");
    let data = dir.path().join("data");
    // As root the server runs as `mysql` (it refuses root): the directory is theirs.
    let user = if is_root() { "mysql" } else { "" };
    if is_root() {
        let ok = Command::new("chown").arg("mysql").arg(dir.path()).status();
        assert!(ok.is_ok_and(|s| s.success()), "chown mysql");
    }
    let mut install_cmd = Command::new(install);
    install_cmd
        .arg("--no-defaults")
        .arg(format!("--datadir={}", data.display()))
        .arg("--auth-root-authentication-method=normal")
        .arg("--skip-test-db");
    if !user.is_empty() {
        install_cmd.arg(format!("--user={user}"));
    }
    let out = install_cmd.output().expect("mariadb-install-db");
    assert!(
        out.status.success(),
        "mariadb-install-db: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    let port = free_port();
    let mut cmd = Command::new(server);
    cmd.arg("--no-defaults")
        .arg(format!("--datadir={}", data.display()))
        .arg(format!("--socket={}", dir.path().join("sock").display()))
        .arg(format!("--pid-file={}", dir.path().join("pid").display()))
        .arg(format!("--port={port}"))
        .arg("--bind-address=127.0.0.1")
        .arg("--skip-log-bin")
        .arg("--innodb-buffer-pool-size=16M")
        .stdout(Stdio::null())
        .stderr(Stdio::null());
    if !user.is_empty() {
        cmd.arg(format!("--user={user}"));
    }
    let child = cmd.spawn().expect("mariadbd");
    let db = MariaDb {
        child,
        port,
        _dir: dir,
    };
    wait_for_port(port, "mariadbd", Duration::from_secs(60)).await;
    db
}

fn is_root() -> bool {
    use std::os::unix::fs::MetadataExt;
    std::fs::metadata("/proc/self").is_ok_and(|m| m.uid() == 0)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn mysql_driver_logs_in_and_classifies_failures_against_a_real_mariadb() {
    let db = mariadb().await;
    let password = format!("My-{}", uuid::Uuid::now_v7().simple());
    let root = format!("mysql://root@127.0.0.1:{}/mysql", db.port);
    let pool = sqlx::MySqlPool::connect(&root).await.expect("root");
    for sql in [
        "CREATE DATABASE appdb".to_string(),
        "CREATE DATABASE private_db".to_string(),
        format!("CREATE USER 'tester'@'%' IDENTIFIED BY '{password}'"),
        "GRANT ALL ON appdb.* TO 'tester'@'%'".to_string(),
        // A reader of every database: for it an unknown database is "unknown", not "denied".
        format!("CREATE USER 'reader'@'%' IDENTIFIED BY '{password}'"),
        "GRANT SELECT ON *.* TO 'reader'@'%'".to_string(),
    ] {
        sqlx::query(&sql).execute(&pool).await.expect(&sql);
    }
    pool.close().await;
    let good = json!({ "user": "tester", "password": password });
    let wrong = json!({ "user": "tester", "password": "Not-The-Password-43" });
    let reader = json!({ "user": "reader", "password": password });
    let settings = |database: &str| json!({ "host": "127.0.0.1", "port": db.port, "database": database, "ssl_mode": "disable" });
    for stack in STACKS {
        let lab = Lab::start(stack).await;
        lab.common_cases("mariadb", &settings("appdb"), &good, &wrong)
            .await;
        let id = lab.config("mysql", settings("appdb")).await;
        Lab::passed(&lab.test(&id, good.clone()).await);
        let said = lab.fails(&id, wrong.clone(), "invalid_credentials").await;
        assert!(said.contains("Access denied"), "{said}");
        let id = lab.config("mysql", settings("private_db")).await;
        let said = lab.fails(&id, good.clone(), "permission_denied").await;
        assert!(said.contains("private_db"), "{said}");
        let id = lab.config("mysql", settings("no_such_db")).await;
        let said = lab.fails(&id, reader.clone(), "not_found").await;
        assert!(said.contains("no_such_db"), "{said}");
        // This server has no TLS: asking for it is a TLS failure, not a login.
        let mut s = settings("appdb");
        s["ssl_mode"] = json!("require");
        let id = lab.config("mysql", s).await;
        lab.fails(&id, good.clone(), "tls_failure").await;
        for connector in ["amazon_aurora_mysql", "planetscale", "tidb", "singlestore"] {
            let id = lab.config(connector, settings("appdb")).await;
            Lab::passed(&lab.test(&id, good.clone()).await);
        }
        lab.assert_nowhere(&[&password, "Not-The-Password-43"])
            .await;
    }
}
