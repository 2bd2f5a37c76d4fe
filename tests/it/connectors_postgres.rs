//! The `postgres` driver against a PostgreSQL cluster of the test's own with TLS on
//! (`ssl=on`, a server certificate from a CA the test generates with the `openssl` CLI,
//! naming `db.test.invalid` only) and SCRAM passwords: every SSL mode, wrong password,
//! unknown database, a user allowed only over TLS, a closed port, a silent listener; and
//! compatible services' definitions on the same driver. Over HTTP, on both stacks.

use std::path::Path;
use std::process::Command;

use reqwest::StatusCode;
use serde_json::json;

use crate::connectors_support::{Lab, STACKS};
use crate::fixtures::postgres::PrivatePostgres;

/// `openssl args` in `dir`, which must succeed.
fn openssl(dir: &Path, args: &[&str]) {
    let out = Command::new("openssl")
        .args(args)
        .current_dir(dir)
        .output()
        .expect("openssl (tools/test installs it)");
    assert!(
        out.status.success(),
        "openssl {args:?}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
}

/// A CA named `name` (files `{name}.key`, `{name}.pem` in `dir`): its PEM.
pub fn openssl_ca(dir: &Path, name: &str) -> String {
    openssl(
        dir,
        &[
            "req",
            "-x509",
            "-newkey",
            "ec",
            "-pkeyopt",
            "ec_paramgen_curve:prime256v1",
            "-nodes",
            "-keyout",
            &format!("{name}.key"),
            "-out",
            &format!("{name}.pem"),
            "-days",
            "2",
            "-subj",
            &format!("/CN=authledger test {name}"),
            "-addext",
            "basicConstraints=critical,CA:TRUE",
            "-addext",
            "keyUsage=critical,keyCertSign,cRLSign",
        ],
    );
    std::fs::read_to_string(dir.join(format!("{name}.pem"))).expect("ca pem")
}

/// A server key and certificate for `dns` and 127.0.0.1 signed by the CA `ca` (files
/// `server.key`, `server.pem` in `dir`).
pub fn openssl_server_cert(dir: &Path, ca: &str, dns: &str) {
    openssl(
        dir,
        &[
            "req",
            "-newkey",
            "ec",
            "-pkeyopt",
            "ec_paramgen_curve:prime256v1",
            "-nodes",
            "-keyout",
            "server.key",
            "-out",
            "server.csr",
            "-subj",
            &format!("/CN={dns}"),
        ],
    );
    std::fs::write(
        dir.join("ext.cnf"),
        format!(
            "subjectAltName=DNS:{dns},IP:127.0.0.1\nbasicConstraints=CA:FALSE\n\
             keyUsage=critical,digitalSignature\nextendedKeyUsage=serverAuth\n"
        ),
    )
    .expect("ext");
    openssl(
        dir,
        &[
            "x509",
            "-req",
            "-in",
            "server.csr",
            "-CA",
            &format!("{ca}.pem"),
            "-CAkey",
            &format!("{ca}.key"),
            "-CAcreateserial",
            "-out",
            "server.pem",
            "-days",
            "2",
            "-extfile",
            "ext.cnf",
        ],
    );
}

struct TlsPostgres {
    pg: PrivatePostgres,
    ca: String,
    other_ca: String,
    password: String,
    _certs: tempfile::TempDir,
}

async fn tls_postgres() -> TlsPostgres {
    let pg = PrivatePostgres::start();
    let certs = tempfile::tempdir().expect("dir");
    let ca = openssl_ca(certs.path(), "ca");
    let other_ca = openssl_ca(certs.path(), "other");
    openssl_server_cert(certs.path(), "ca", "db.test.invalid");
    let data = pg.data_dir();
    for f in ["server.pem", "server.key"] {
        std::fs::copy(certs.path().join(f), data.join(f)).expect("copy cert");
        let ok = Command::new("chown")
            .arg("postgres")
            .arg(data.join(f))
            .status();
        assert!(ok.is_ok_and(|s| s.success()) || !is_root(), "chown {f}");
        std::fs::set_permissions(
            data.join(f),
            std::os::unix::fs::PermissionsExt::from_mode(0o600),
        )
        .expect("chmod");
    }
    let password = format!("Pg-{}", uuid::Uuid::now_v7().simple());
    let pool = sqlx::PgPool::connect(&pg.url()).await.expect("superuser");
    for sql in [
        format!("CREATE ROLE tester LOGIN PASSWORD '{password}'"),
        format!("CREATE ROLE tls_only LOGIN PASSWORD '{password}'"),
        "CREATE DATABASE appdb".to_string(),
        "ALTER SYSTEM SET ssl = on".to_string(),
        "ALTER SYSTEM SET ssl_cert_file = 'server.pem'".to_string(),
        "ALTER SYSTEM SET ssl_key_file = 'server.key'".to_string(),
        "ALTER SYSTEM SET password_encryption = 'scram-sha-256'".to_string(),
    ] {
        sqlx::query(&sql).execute(&pool).await.expect(&sql);
    }
    // The superuser keeps trust over the socket; everyone else needs a password, and
    // `tls_only` needs TLS as well.
    std::fs::write(
        data.join("pg_hba.conf"),
        "local all postgres trust\n\
         host all postgres 127.0.0.1/32 trust\n\
         hostssl all tls_only 127.0.0.1/32 scram-sha-256\n\
         host all tester 127.0.0.1/32 scram-sha-256\n",
    )
    .expect("pg_hba");
    sqlx::query("SELECT pg_reload_conf()")
        .execute(&pool)
        .await
        .expect("reload");
    pool.close().await;
    TlsPostgres {
        pg,
        ca,
        other_ca,
        password,
        _certs: certs,
    }
}

fn is_root() -> bool {
    use std::os::unix::fs::MetadataExt;
    std::fs::metadata("/proc/self").is_ok_and(|m| m.uid() == 0)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn postgres_driver_every_ssl_mode_and_failure_class_against_a_real_tls_cluster() {
    let db = tls_postgres().await;
    let good = json!({ "user": "tester", "password": db.password });
    let wrong = json!({ "user": "tester", "password": "Not-The-Password-42" });
    let port = db.pg.port();
    for stack in STACKS {
        let lab = Lab::start(stack).await;
        let settings = |ssl: &str| json!({ "host": "127.0.0.1", "port": port, "database": "appdb", "ssl_mode": ssl });
        let with_ca = |ssl: &str, ca: &str| {
            let mut s = settings(ssl);
            s["ca_certificate"] = json!(ca);
            s
        };
        lab.common_cases("postgres", &settings("require"), &good, &wrong)
            .await;

        // Every SSL mode: disable and require log in; verify-ca and verify-full with the CA
        // that signed the server's certificate log in, with another CA (or the public
        // roots) it is a TLS failure; verify-full checks the name too (the certificate
        // names db.test.invalid and 127.0.0.1, not localhost).
        let mut by_name = with_ca("verify-full", &db.ca);
        by_name["host"] = json!("localhost");
        for s in [
            settings("disable"),
            settings("require"),
            with_ca("verify-ca", &db.ca),
            with_ca("verify-full", &db.ca),
        ] {
            let id = lab.config("postgres", s).await;
            Lab::passed(&lab.test(&id, good.clone()).await);
        }
        for s in [
            with_ca("verify-ca", &db.other_ca),
            settings("verify-ca"),
            by_name,
        ] {
            let id = lab.config("postgres", s).await;
            lab.fails(&id, good.clone(), "tls_failure").await;
        }
        // A user pg_hba allows only over TLS: in with require, refused without.
        let tls_only = json!({ "user": "tls_only", "password": db.password });
        let id = lab.config("postgres", settings("require")).await;
        Lab::passed(&lab.test(&id, tls_only.clone()).await);
        let id = lab.config("postgres", settings("disable")).await;
        let said = lab.fails(&id, tls_only, "permission_denied").await;
        assert!(said.contains("pg_hba.conf"), "{said}");

        // Wrong password, unknown database: classified, the server's words, no secret.
        let id = lab.config("postgres", settings("require")).await;
        let said = lab.fails(&id, wrong.clone(), "invalid_credentials").await;
        assert!(said.contains("password authentication failed"), "{said}");
        let mut s = settings("require");
        s["database"] = json!("no_such_db");
        let id = lab.config("postgres", s).await;
        let said = lab.fails(&id, good.clone(), "not_found").await;
        assert!(said.contains("no_such_db"), "{said}");

        // Compatible services are definitions on the same driver.
        for connector in [
            "cockroachdb",
            "supabase",
            "neon",
            "amazon_redshift",
            "timescaledb",
        ] {
            let id = lab.config(connector, settings("require")).await;
            Lab::passed(&lab.test(&id, good.clone()).await);
        }
        // Bad input is a 422 naming the field.
        let r = lab.try_config("postgres", settings("sometimes")).await;
        r.expect(StatusCode::UNPROCESSABLE_ENTITY, "validation-failed");
        assert!(r.text.contains("ssl_mode"), "{}", r.text);
        let r = lab
            .call(
                reqwest::Method::POST,
                &format!("/v1/auth-configs/{id}/test"),
                Some(json!({ "credentials": { "user": "tester" } })),
            )
            .await;
        r.expect(StatusCode::UNPROCESSABLE_ENTITY, "validation-failed");
        assert!(r.text.contains("password"), "{}", r.text);
        lab.assert_nowhere(&[&db.password, "Not-The-Password-42"])
            .await;
    }
}
