//! The `redis` driver against a `redis-server` of the test's own (its own config, on a free
//! port, the `default` user off): an ACL user logs in and `PING`s; wrong password, a user
//! not allowed `PING`, a database number the server does not have, a closed port, a silent
//! listener; and compatible services' definitions on the same driver. Over HTTP, on both
//! stacks.

use std::process::{Child, Command, Stdio};
use std::time::Duration;

use serde_json::json;

use crate::connectors_support::{binary, wait_for_port, Lab, STACKS};
use crate::harness::free_port;

struct Redis {
    child: Child,
    port: u16,
    _dir: tempfile::TempDir,
}

impl Drop for Redis {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

async fn redis(password: &str) -> Redis {
    let server = binary("redis-server", "redis-server");
    let dir = tempfile::tempdir().expect("dir");
    let port = free_port();
    let conf = dir.path().join("redis.conf");
    std::fs::write(
        &conf,
        format!(
            "port {port}\nbind 127.0.0.1\nsave \"\"\nappendonly no\ndir {}\ndatabases 16\n\
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
        _dir: dir,
    };
    wait_for_port(port, "redis-server", Duration::from_secs(30)).await;
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
        for connector in ["valkey", "keydb", "dragonfly", "amazon_elasticache"] {
            let id = lab.config(connector, settings(0)).await;
            Lab::passed(&lab.test(&id, good.clone()).await);
        }
        lab.assert_nowhere(&[&password, "Not-The-Password-44"]).await;
    }
}
