//! The `s3` driver against `s3rver` (npm; it checks SigV4 signatures, header and
//! query-string, against its account `S3RVER`/`S3RVER`) of the test's own on a free port,
//! with one bucket: a signed `HeadBucket` passes; a wrong secret (`SignatureDoesNotMatch`)
//! and an unknown key id are invalid credentials; an unknown bucket is not found; a closed
//! port, a silent listener. Over HTTP, on both stacks. (moto's server checks signatures
//! only in the `Authorization` header and not on bucket requests signed in the query
//! string, so it could not tell a wrong secret here.)

use std::process::{Child, Command, Stdio};
use std::time::Duration;

use serde_json::json;

use crate::connectors_support::{wait_for_port, Lab, STACKS};
use crate::harness::free_port;

/// Where `tools/test` installs s3rver (`AUTHLEDGER_TEST_S3RVER` overrides).
const S3RVER: &str = "/opt/authledger-s3rver/node_modules/s3rver/bin/s3rver.js";

struct S3rver {
    child: Child,
    port: u16,
    _dir: tempfile::TempDir,
}

impl Drop for S3rver {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

async fn s3rver() -> S3rver {
    let script = std::env::var("AUTHLEDGER_TEST_S3RVER").unwrap_or_else(|_| S3RVER.into());
    assert!(
        std::path::Path::new(&script).is_file(),
        "s3rver is not installed at {script}: tools/test installs it \
         (npm install --prefix /opt/authledger-s3rver s3rver@3.7.1)"
    );
    let dir = tempfile::tempdir().expect("dir");
    let port = free_port();
    let child = Command::new("node")
        .arg(&script)
        .args(["-d", &dir.path().display().to_string()])
        .args(["-a", "127.0.0.1", "-p", &port.to_string(), "--silent"])
        .args(["--configure-bucket", "appbucket"])
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .expect("node s3rver (tools/test installs nodejs)");
    let server = S3rver {
        child,
        port,
        _dir: dir,
    };
    wait_for_port(port, "s3rver", Duration::from_secs(60)).await;
    server
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn s3_driver_signs_head_bucket_and_classifies_failures() {
    let server = s3rver().await;
    let endpoint = format!("http://127.0.0.1:{}", server.port);
    let good = json!({ "access_key_id": "S3RVER", "secret_access_key": "S3RVER" });
    let wrong = json!({ "access_key_id": "S3RVER", "secret_access_key": "Not-The-Secret-46" });
    let settings = |bucket: &str| {
        json!({ "endpoint": endpoint, "region": "us-east-1", "bucket": bucket, "path_style": true })
    };
    for stack in STACKS {
        let lab = Lab::start(stack).await;
        // The common cases move the port: here the endpoint carries it.
        let id = lab.config("s3_compatible", settings("appbucket")).await;
        Lab::passed(&lab.test(&id, good.clone()).await);
        let r = lab.connect(&id, "owner-1", good.clone()).await;
        assert_eq!(r.status, reqwest::StatusCode::CREATED, "{}", r.text);
        let said = lab.fails(&id, wrong.clone(), "invalid_credentials").await;
        assert!(said.contains("SignatureDoesNotMatch"), "{said}");
        let unknown_key = json!({ "access_key_id": "NOBODY", "secret_access_key": "S3RVER" });
        let said = lab.fails(&id, unknown_key, "invalid_credentials").await;
        assert!(said.contains("InvalidAccessKeyId"), "{said}");
        let r = lab.connect(&id, "owner-2", wrong.clone()).await;
        r.expect(reqwest::StatusCode::CONFLICT, "conflict");

        let id = lab.config("minio", settings("no-such-bucket")).await;
        lab.fails(&id, good.clone(), "not_found").await;

        let closed = free_port();
        let mut s = settings("appbucket");
        s["endpoint"] = json!(format!("http://127.0.0.1:{closed}"));
        let id = lab.config("s3_compatible", s).await;
        lab.fails(&id, good.clone(), "unreachable").await;
        let silent = crate::connectors_support::Silent::start().await;
        let mut s = settings("appbucket");
        s["endpoint"] = json!(format!("http://127.0.0.1:{}", silent.port));
        let id = lab.config("ceph_object_gateway", s).await;
        lab.fails(&id, good.clone(), "timeout").await;

        let mut s = settings("appbucket");
        s["path_style"] = json!("yes");
        let r = lab.try_config("s3_compatible", s).await;
        r.expect(reqwest::StatusCode::UNPROCESSABLE_ENTITY, "validation-failed");
        assert!(r.text.contains("path_style"), "{}", r.text);
        lab.assert_nowhere(&["Not-The-Secret-46"]).await;
    }
}
