//! Dynamic database credentials (issue 17) over HTTP against real servers, on both stacks:
//! a PostgreSQL cluster of the test's own (passwords checked: SCRAM for everyone but the
//! local superuser) and a MariaDB server (as `connectors_mysql` starts it). The issued user
//! logs in and does what it was granted and no more; it is gone after its TTL (the test
//! clock moved, then the expiry sweep's run), and when its connection is revoked; limits
//! beyond the auth config's are 422, another workspace's connection 404; the password is
//! in no event, audit answer or server log. With two instances on one log, one drops and
//! records each expiry.

use std::time::Duration;

use reqwest::{Client, Method, StatusCode};
use serde_json::{json, Value};
use sqlx::Connection;

use crate::connectors_mysql::mariadb;
use crate::connectors_support::STACKS;
use crate::fixtures::postgres::PrivatePostgres;
use crate::harness::{eventually, Service};
use crate::support::{cli, request, Deployment, Reply, Stack, TestClock, BASE_ENV};

/// Which server a scenario runs against.
#[derive(Clone, Copy, PartialEq, Eq, Debug)]
enum Db {
    Postgres,
    MySql,
}

impl Db {
    fn connector(self) -> &'static str {
        match self {
            Db::Postgres => "postgres",
            Db::MySql => "mysql",
        }
    }

    /// Logs in as `user` and runs `sql`: whether the server let it.
    async fn run_as(self, port: u16, user: &str, password: &str, sql: &str) -> Result<(), String> {
        match self {
            Db::Postgres => {
                let options = sqlx::postgres::PgConnectOptions::new()
                    .host("127.0.0.1")
                    .port(port)
                    .database("appdb")
                    .username(user)
                    .password(password)
                    .ssl_mode(sqlx::postgres::PgSslMode::Disable);
                let mut conn = sqlx::PgConnection::connect_with(&options)
                    .await
                    .map_err(|e| format!("login: {e}"))?;
                let r = sqlx::raw_sql(sql).execute(&mut conn).await;
                let _ = conn.close().await;
                r.map(|_| ()).map_err(|e| e.to_string())
            }
            Db::MySql => {
                let options = sqlx::mysql::MySqlConnectOptions::new()
                    .host("127.0.0.1")
                    .port(port)
                    .database("appdb")
                    .username(user)
                    .password(password)
                    .ssl_mode(sqlx::mysql::MySqlSslMode::Disabled);
                let mut conn = sqlx::MySqlConnection::connect_with(&options)
                    .await
                    .map_err(|e| format!("login: {e}"))?;
                let r = sqlx::query(sql).execute(&mut conn).await;
                let _ = conn.close().await;
                r.map(|_| ()).map_err(|e| e.to_string())
            }
        }
    }
}

/// A PostgreSQL cluster: `dbadmin` (a superuser with a password) and the database `appdb`
/// with the tables `orders` and `secrets`; every login but the local `postgres` needs its
/// password.
async fn postgres_server(admin_password: &str) -> PrivatePostgres {
    let pg = PrivatePostgres::start();
    let pool = sqlx::PgPool::connect(&pg.url()).await.expect("superuser");
    for sql in [
        format!("CREATE ROLE dbadmin LOGIN SUPERUSER PASSWORD '{admin_password}'"),
        "CREATE DATABASE appdb OWNER dbadmin".to_string(),
    ] {
        sqlx::query(&sql).execute(&pool).await.expect(&sql);
    }
    std::fs::write(
        pg.data_dir().join("pg_hba.conf"),
        "local all postgres trust\n\
         host all postgres 127.0.0.1/32 trust\n\
         host all all 127.0.0.1/32 scram-sha-256\n",
    )
    .expect("pg_hba");
    sqlx::query("SELECT pg_reload_conf()")
        .execute(&pool)
        .await
        .expect("reload");
    pool.close().await;
    let url = format!("postgres://postgres@127.0.0.1:{}/appdb", pg.port());
    let pool = sqlx::PgPool::connect(&url).await.expect("appdb");
    for sql in [
        "CREATE TABLE orders (id int)",
        "INSERT INTO orders VALUES (1)",
        "CREATE TABLE secrets (id int)",
    ] {
        sqlx::query(sql).execute(&pool).await.expect(sql);
    }
    pool.close().await;
    pg
}

/// MariaDB's `dbadmin` (every privilege, with grant option) and `appdb` with the tables
/// `orders` and `secrets`.
async fn mysql_accounts(port: u16, admin_password: &str) {
    let root = format!("mysql://root@127.0.0.1:{port}/mysql");
    let pool = sqlx::MySqlPool::connect(&root).await.expect("root");
    for sql in [
        "CREATE DATABASE appdb".to_string(),
        "CREATE TABLE appdb.orders (id int)".to_string(),
        "INSERT INTO appdb.orders VALUES (1)".to_string(),
        "CREATE TABLE appdb.secrets (id int)".to_string(),
        format!("CREATE USER 'dbadmin'@'%' IDENTIFIED BY '{admin_password}'"),
        "GRANT ALL PRIVILEGES ON *.* TO 'dbadmin'@'%' WITH GRANT OPTION".to_string(),
    ] {
        sqlx::query(&sql).execute(&pool).await.expect(&sql);
    }
    pool.close().await;
}

/// A deployment with the test clock, its admin and an agent key.
struct Lab {
    env: Deployment,
    clock: TestClock,
    http: Client,
    agent: String,
    /// Every answer's text, for the leak check.
    transcript: std::sync::Mutex<String>,
}

impl Lab {
    async fn start(stack: Stack) -> Lab {
        let clock = TestClock::new();
        let env = Deployment::start(stack, &Lab::envs(&clock)).await;
        let mut lab = Lab {
            env,
            clock,
            http: Client::new(),
            agent: String::new(),
            transcript: std::sync::Mutex::new(String::new()),
        };
        let admin = lab.env.admin.clone();
        let r = lab
            .call(
                &admin,
                Method::POST,
                "/v1/api-keys",
                Some(json!({ "name": "agent", "role": "agent" })),
            )
            .await;
        assert_eq!(r.status, StatusCode::CREATED, "{}", r.text);
        lab.agent = r.str("key");
        lab
    }

    fn envs(clock: &TestClock) -> Vec<(&'static str, &str)> {
        let mut envs = BASE_ENV.to_vec();
        envs.push(("AUTHLEDGER_PROVIDER_TIMEOUT_SECS", "5"));
        envs.push(clock.env());
        envs
    }

    async fn call_on(
        &self,
        svc: &Service,
        key: &str,
        method: Method,
        path: &str,
        body: Option<Value>,
    ) -> Reply {
        let r = Reply::of(request(&self.http, svc, key, method, path, body)).await;
        self.transcript
            .lock()
            .expect("transcript")
            .push_str(&r.text);
        r
    }

    async fn call(&self, key: &str, method: Method, path: &str, body: Option<Value>) -> Reply {
        self.call_on(&self.env.svc, key, method, path, body).await
    }

    /// An auth config of the connector with dynamic credentials (`read`: SELECT on orders;
    /// `write`: INSERT on orders; at most 600 s) and a connection holding the
    /// administrative credential: the connection's id.
    async fn connection(&self, db: Db, port: u16, admin_password: &str) -> String {
        let admin = &self.env.admin;
        let r = self
            .call(
                admin,
                Method::POST,
                "/v1/auth-configs",
                Some(json!({
                    "name": format!("{} with dynamic credentials", db.connector()),
                    "provider": db.connector(),
                    "auth_type": "connector",
                    "connector": {
                        "id": db.connector(),
                        "settings": { "host": "127.0.0.1", "port": port, "database": "appdb", "ssl_mode": "disable" },
                        "dynamic_credentials": {
                            "max_ttl_seconds": 600,
                            "grants": {
                                "read": [{ "privileges": ["SELECT"], "tables": ["orders"] }],
                                "write": [{ "privileges": ["INSERT"], "tables": ["orders"] }],
                            },
                        },
                    },
                })),
            )
            .await;
        assert_eq!(r.status, StatusCode::CREATED, "{}", r.text);
        let config = r.str("id");
        let r = self
            .call(
                admin,
                Method::POST,
                "/v1/connections",
                Some(json!({
                    "auth_config_id": config, "user_id": "dba",
                    "credentials": { "user": "dbadmin", "password": admin_password },
                })),
            )
            .await;
        assert_eq!(r.status, StatusCode::CREATED, "{}", r.text);
        r.str("id")
    }

    async fn issue(&self, key: &str, connection: &str, body: Value) -> Reply {
        self.call(
            key,
            Method::POST,
            &format!("/v1/connections/{connection}/dynamic-credentials"),
            Some(body),
        )
        .await
    }

    /// The signed bodies in the log (`dump-log`), opened.
    async fn log(&self) -> (String, Vec<authledger::ledger::EventBody>) {
        let dump = cli(&self.env.storage, &["dump-log"]).await;
        let raw = String::from_utf8_lossy(&dump.stdout).to_string();
        let bodies: Vec<_> = raw
            .lines()
            .map(|line| {
                let rec: Value = serde_json::from_str(line).expect("dump-log line");
                authledger::ledger::envelope::open_envelope(
                    rec["envelope"].as_str().expect("envelope").as_bytes(),
                )
                .expect("open envelope")
                .body
            })
            .collect();
        (raw, bodies)
    }

    /// The kinds recorded for the credential `id`, in order.
    async fn kinds_of(&self, id: &str) -> Vec<String> {
        self.log()
            .await
            .1
            .into_iter()
            .filter(|b| b.aggregate_id == id)
            .map(|b| b.kind)
            .collect()
    }

    /// No password in any event, audit answer, API answer or server log line; and every
    /// credential and auth config event as recorded matches its schema.
    async fn assert_nowhere(&self, passwords: &[&str]) {
        let (raw, bodies) = self.log().await;
        let dir = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("schemas/events/v1");
        let mut checked = 0;
        for b in bodies
            .iter()
            .filter(|b| b.kind.starts_with("credential.") || b.kind.starts_with("auth_config."))
        {
            let text = std::fs::read_to_string(dir.join(format!("{}.json", b.kind)))
                .expect("a schema of the kind");
            let schema: Value = serde_json::from_str(&text).expect("schema");
            let validator = jsonschema::options()
                .should_validate_formats(true)
                .build(&schema)
                .expect("schema compiles");
            let errors: Vec<String> = validator
                .iter_errors(&b.payload)
                .map(|e| format!("{e} at {}", e.instance_path))
                .collect();
            assert!(errors.is_empty(), "{}: {errors:?}\n{}", b.kind, b.payload);
            checked += 1;
        }
        assert!(
            checked >= 8,
            "{checked} events checked against their schemas"
        );
        let mut log = raw;
        for b in &bodies {
            log.push_str(&serde_json::to_string(b).expect("body"));
        }
        assert!(log.contains("credential.issued"), "the log was read");
        let audit = self
            .call(
                &self.env.admin,
                Method::GET,
                "/v1/audit/events?kind=credential.&limit=200",
                None,
            )
            .await;
        assert_eq!(audit.status, StatusCode::OK, "{}", audit.text);
        assert!(audit.text.contains("credential.issued"), "{}", audit.text);
        let mut server_logs = String::new();
        for entry in std::fs::read_dir(self.env.dir.path())
            .expect("dir")
            .flatten()
        {
            let name = entry.file_name().to_string_lossy().to_string();
            if name.starts_with("serve-") {
                server_logs.push_str(&std::fs::read_to_string(entry.path()).unwrap_or_default());
            }
        }
        assert!(!server_logs.is_empty(), "the server logs were read");
        let answers = self.transcript.lock().expect("transcript").clone();
        for p in passwords {
            assert!(!log.contains(p), "a password in the log");
            assert!(!audit.text.contains(p), "a password in the audit view");
            assert!(!server_logs.contains(p), "a password in the server log");
            // Only the one answer that issued it (and then only once).
            assert_eq!(
                answers.matches(p).count(),
                1,
                "a password in another answer"
            );
        }
    }
}

/// Waits (bounded) until `user` can no longer log in.
async fn gone(db: Db, port: u16, user: &str, password: &str, what: &str) {
    eventually(Duration::from_secs(30), what, || async {
        db.run_as(port, user, password, "SELECT 1")
            .await
            .is_err_and(|e| e.starts_with("login"))
    })
    .await;
}

/// The whole story on one server and one stack.
async fn scenario(db: Db, stack: Stack, port: u16, admin_password: &str) {
    let lab = Lab::start(stack).await;
    let connection = lab.connection(db, port, admin_password).await;

    // Issued within the limits: the user logs in, reads orders, and nothing more.
    let r = lab
        .issue(
            &lab.agent,
            &connection,
            json!({ "ttl_seconds": 300, "grants": ["read"] }),
        )
        .await;
    assert_eq!(r.status, StatusCode::CREATED, "{}", r.text);
    assert_eq!(
        r.headers.get("cache-control").and_then(|v| v.to_str().ok()),
        Some("no-store")
    );
    let (id, user, password) = (r.str("id"), r.str("username"), r.str("password"));
    assert_eq!(r.body["host"], "127.0.0.1", "{}", r.text);
    assert_eq!(r.body["port"], port, "{}", r.text);
    assert_eq!(r.body["database"], "appdb", "{}", r.text);
    assert_eq!(r.body["grants"], json!(["read"]), "{}", r.text);
    let expires_at = time::OffsetDateTime::parse(
        &r.str("expires_at"),
        &time::format_description::well_known::Rfc3339,
    )
    .expect("expires_at");
    let ttl = (expires_at - lab.clock.now()).whole_seconds();
    assert!((295..=300).contains(&ttl), "{ttl}");
    db.run_as(port, &user, &password, "SELECT id FROM orders")
        .await
        .expect("granted read");
    let refused = db
        .run_as(port, &user, &password, "INSERT INTO orders VALUES (2)")
        .await;
    assert!(refused.is_err(), "insert without the write grant");
    let refused = db
        .run_as(port, &user, &password, "SELECT id FROM secrets")
        .await;
    assert!(refused.is_err(), "a table outside the grant");
    let wrong = db.run_as(port, &user, "not-the-password", "SELECT 1").await;
    assert!(
        wrong.is_err_and(|e| e.starts_with("login")),
        "the password is checked"
    );

    // Beyond the auth config's limits, or no such grant: 422, nothing made.
    for body in [
        json!({ "ttl_seconds": 601, "grants": ["read"] }),
        json!({ "ttl_seconds": 0, "grants": ["read"] }),
        json!({ "ttl_seconds": 60, "grants": ["admin"] }),
        json!({ "ttl_seconds": 60, "grants": [] }),
        json!({ "ttl_seconds": 60, "grants": ["read"], "sql": "GRANT ALL" }),
    ] {
        let r = lab.issue(&lab.agent, &connection, body.clone()).await;
        assert_eq!(
            r.status,
            StatusCode::UNPROCESSABLE_ENTITY,
            "{body}: {}",
            r.text
        );
    }
    // A scoped token for this connection may ask too; one counted in uses may not.
    let r = lab
        .call(
            &lab.agent,
            Method::POST,
            "/v1/tokens",
            Some(json!({ "connection_id": connection, "scopes": [] })),
        )
        .await;
    assert_eq!(r.status, StatusCode::CREATED, "{}", r.text);
    let token = r.str("token");
    let r = lab
        .issue(
            &token,
            &connection,
            json!({ "ttl_seconds": 60, "grants": ["read"] }),
        )
        .await;
    assert_eq!(r.status, StatusCode::CREATED, "{}", r.text);
    let (by_token_id, by_token) = (r.str("id"), r.str("password"));
    let r = lab
        .call(
            &lab.agent,
            Method::POST,
            "/v1/tokens",
            Some(json!({ "connection_id": connection, "scopes": [], "max_uses": 1 })),
        )
        .await;
    assert_eq!(r.status, StatusCode::CREATED, "{}", r.text);
    let r = lab
        .issue(
            &r.str("token"),
            &connection,
            json!({ "ttl_seconds": 60, "grants": ["read"] }),
        )
        .await;
    r.expect(StatusCode::FORBIDDEN, "token-mismatch");
    // Another workspace's caller: the connection is unknown there.
    let other = lab.env.other_workspace("Other").await;
    let r = lab
        .issue(
            &other,
            &connection,
            json!({ "ttl_seconds": 60, "grants": ["read"] }),
        )
        .await;
    r.expect(StatusCode::NOT_FOUND, "not-found");
    // A viewer may not ask at all.
    let r = lab
        .call(
            &lab.env.admin,
            Method::POST,
            "/v1/api-keys",
            Some(json!({ "name": "viewer", "role": "viewer" })),
        )
        .await;
    let viewer = r.str("key");
    let r = lab
        .issue(
            &viewer,
            &connection,
            json!({ "ttl_seconds": 60, "grants": ["read"] }),
        )
        .await;
    assert_eq!(r.status, StatusCode::FORBIDDEN, "{}", r.text);

    // The expiry is the log's, not an instance's memory: a restart changes nothing.
    let mut lab = lab;
    let envs = Lab::envs(&lab.clock);
    lab.env.restart(&envs).await;
    // With a second instance on a shared log, both sweep: one drops and records.
    let second = if stack.shared_log() {
        Some(lab.env.second_instance(&Lab::envs(&lab.clock)).await)
    } else {
        None
    };

    // Past its TTL (the clock moved, then the sweep's run): the user is gone, recorded once.
    lab.clock.advance(Duration::from_secs(301));
    gone(db, port, &user, &password, "the expired user to be dropped").await;
    eventually(Duration::from_secs(15), "credential.expired", || async {
        lab.kinds_of(&id)
            .await
            .contains(&"credential.expired".to_string())
    })
    .await;
    assert_eq!(
        lab.kinds_of(&id).await,
        vec![
            "credential.issued",
            "credential.drop_started",
            "credential.expired"
        ]
    );
    drop(second);
    eventually(
        Duration::from_secs(15),
        "the token's credential expired",
        || async {
            lab.kinds_of(&by_token_id)
                .await
                .contains(&"credential.expired".to_string())
        },
    )
    .await;

    // Revoking the connection drops its live users at once (and records it).
    let r = lab
        .issue(
            &lab.agent,
            &connection,
            json!({ "ttl_seconds": 600, "grants": ["read", "write"] }),
        )
        .await;
    assert_eq!(r.status, StatusCode::CREATED, "{}", r.text);
    let (id2, user2, password2) = (r.str("id"), r.str("username"), r.str("password"));
    db.run_as(port, &user2, &password2, "INSERT INTO orders VALUES (3)")
        .await
        .expect("granted write");
    let r = lab
        .call(
            &lab.env.admin,
            Method::POST,
            &format!("/v1/connections/{connection}/revoke"),
            Some(json!({})),
        )
        .await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.text);
    let after = db.run_as(port, &user2, &password2, "SELECT 1").await;
    assert!(
        after.as_ref().is_err_and(|e| e.starts_with("login")),
        "{after:?}"
    );
    assert_eq!(
        lab.kinds_of(&id2).await,
        vec![
            "credential.issued",
            "credential.drop_started",
            "credential.revoked"
        ]
    );
    // A revoked connection makes no more users.
    let r = lab
        .issue(
            &lab.agent,
            &connection,
            json!({ "ttl_seconds": 60, "grants": ["read"] }),
        )
        .await;
    assert_eq!(r.status, StatusCode::CONFLICT, "{}", r.text);

    lab.assert_nowhere(&[&password, &password2, &by_token])
        .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn postgres_dynamic_users_are_granted_expired_and_revoked() {
    let admin_password = format!("Adm-{}", uuid::Uuid::now_v7().simple());
    let pg = postgres_server(&admin_password).await;
    for stack in STACKS {
        scenario(Db::Postgres, stack, pg.port(), &admin_password).await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn mysql_dynamic_users_are_granted_expired_and_revoked() {
    let admin_password = format!("Adm-{}", uuid::Uuid::now_v7().simple());
    let db = mariadb().await;
    mysql_accounts(db.port, &admin_password).await;
    for stack in STACKS {
        scenario(Db::MySql, stack, db.port, &admin_password).await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_drop_the_database_could_not_take_is_claimed_again_after_its_lease() {
    let admin_password = format!("Adm-{}", uuid::Uuid::now_v7().simple());
    let pg = postgres_server(&admin_password).await;
    let lab = Lab::start(Stack::Embedded).await;
    let connection = lab
        .connection(Db::Postgres, pg.port(), &admin_password)
        .await;
    let r = lab
        .issue(
            &lab.agent,
            &connection,
            json!({ "ttl_seconds": 60, "grants": ["read"] }),
        )
        .await;
    assert_eq!(r.status, StatusCode::CREATED, "{}", r.text);
    let (id, user, password) = (r.str("id"), r.str("username"), r.str("password"));

    // Due while the database is down: the drop is claimed, fails, and nothing more is
    // recorded while its lease (60 s) holds.
    pg.stop();
    lab.clock.advance(Duration::from_secs(61));
    eventually(Duration::from_secs(15), "the first claim", || async {
        lab.kinds_of(&id).await.len() == 2
    })
    .await;
    pg.start_again();
    tokio::time::sleep(Duration::from_secs(3)).await;
    assert_eq!(
        lab.kinds_of(&id).await,
        vec!["credential.issued", "credential.drop_started"]
    );
    // Not dropped yet (`VALID UNTIL` follows the database's own clock, which the test
    // does not move).
    Db::Postgres
        .run_as(pg.port(), &user, &password, "SELECT 1")
        .await
        .expect("still there");

    // After the lease, the next run claims it again (for twice as long) and drops it.
    lab.clock.advance(Duration::from_secs(61));
    eventually(
        Duration::from_secs(20),
        "the second claim's drop",
        || async {
            lab.kinds_of(&id)
                .await
                .contains(&"credential.expired".to_string())
        },
    )
    .await;
    let (_, bodies) = lab.log().await;
    let claims: Vec<&Value> = bodies
        .iter()
        .filter(|b| b.aggregate_id == id && b.kind == "credential.drop_started")
        .map(|b| &b.payload)
        .collect();
    assert_eq!(claims.len(), 2, "{claims:?}");
    let lease = |v: &Value| {
        time::OffsetDateTime::parse(
            v["lease_until"].as_str().expect("lease_until"),
            &time::format_description::well_known::Rfc3339,
        )
        .expect("time")
    };
    let second_lease = lease(claims[1]) - lab.clock.now();
    assert!(second_lease.whole_seconds() > 100, "{second_lease}");
    let url = format!("postgres://postgres@127.0.0.1:{}/appdb", pg.port());
    let pool = sqlx::PgPool::connect(&url).await.expect("appdb");
    let left: Option<i32> = sqlx::query_scalar("SELECT 1 FROM pg_roles WHERE rolname = $1")
        .bind(&user)
        .fetch_optional(&pool)
        .await
        .expect("roles");
    assert_eq!(left, None, "the role is gone");
}
