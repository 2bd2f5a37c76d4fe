//! The `s3` driver against `moto` in server mode (PyPI `moto[server]`, pinned by
//! `tools/test`) with authentication on (`INITIAL_NO_AUTH_ACTION_COUNT`: the setup's few
//! calls go unauthenticated, every later request's SigV4 signature is checked), on a free
//! port: an IAM user with S3 rights and one without, one bucket. A signed `HeadBucket`
//! passes; a wrong secret (`SignatureDoesNotMatch`) and an unknown key id are invalid
//! credentials; the user without rights is denied; an unknown bucket is not found; a
//! closed port, a silent listener. Over HTTP, on both stacks.

use std::io::{BufRead, BufReader};
use std::process::{Child, ChildStdin, Command, Stdio};

use serde_json::{json, Value};

use crate::connectors_support::{Lab, STACKS};
use crate::harness::free_port;

/// Starts moto with authentication, makes the users, keys and bucket, prints them as one
/// JSON line, and serves until its standard input closes.
const MOTO: &str = r#"
import json, os, sys
os.environ["INITIAL_NO_AUTH_ACTION_COUNT"] = "6"
from moto.server import ThreadedMotoServer
import boto3
port = int(sys.argv[1])
server = ThreadedMotoServer(ip_address="127.0.0.1", port=port)
server.start()
url = f"http://127.0.0.1:{port}"
anon = dict(endpoint_url=url, region_name="us-east-1", aws_access_key_id="setup", aws_secret_access_key="setup")
iam = boto3.client("iam", **anon)
iam.create_user(UserName="tester")
iam.put_user_policy(UserName="tester", PolicyName="s3", PolicyDocument=json.dumps(
    {"Version": "2012-10-17", "Statement": [{"Effect": "Allow", "Action": "s3:*", "Resource": "*"}]}))
tester = iam.create_access_key(UserName="tester")["AccessKey"]
iam.create_user(UserName="nobody")
nobody = iam.create_access_key(UserName="nobody")["AccessKey"]
boto3.client("s3", **anon).create_bucket(Bucket="appbucket")
print(json.dumps({"tester": [tester["AccessKeyId"], tester["SecretAccessKey"]],
                  "nobody": [nobody["AccessKeyId"], nobody["SecretAccessKey"]]}), flush=True)
sys.stdin.read()
server.stop()
"#;

struct Moto {
    child: Child,
    _stdin: ChildStdin,
    port: u16,
    keys: Value,
}

impl Drop for Moto {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn moto() -> Moto {
    let ok = Command::new("python3")
        .args(["-c", "import moto.server, boto3"])
        .output()
        .is_ok_and(|o| o.status.success());
    assert!(
        ok,
        "moto[server] is not installed: tools/test installs it (pip install moto[server])"
    );
    let port = free_port();
    let mut child = Command::new("python3")
        .args(["-c", MOTO, &port.to_string()])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .expect("python3 moto");
    let stdin = child.stdin.take().expect("stdin");
    // moto announces itself on stdout first: the keys are the line that is JSON.
    let mut out = BufReader::new(child.stdout.take().expect("stdout"));
    let mut line = String::new();
    while !line.starts_with('{') {
        line.clear();
        let n = out.read_line(&mut line).expect("moto's keys");
        assert!(n > 0, "moto exited before printing its keys");
    }
    let keys: Value = serde_json::from_str(&line).unwrap_or_else(|e| panic!("moto: {e}: {line}"));
    Moto {
        child,
        _stdin: stdin,
        port,
        keys,
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn s3_driver_signs_head_bucket_and_classifies_failures() {
    let server = tokio::task::spawn_blocking(moto).await.expect("moto");
    let endpoint = format!("http://127.0.0.1:{}", server.port);
    let key = |who: &str, i: usize| server.keys[who][i].as_str().expect("key").to_string();
    let secret = key("tester", 1);
    let good = json!({ "access_key_id": key("tester", 0), "secret_access_key": secret });
    let wrong =
        json!({ "access_key_id": key("tester", 0), "secret_access_key": "Not-The-Secret-46" });
    let nobody =
        json!({ "access_key_id": key("nobody", 0), "secret_access_key": key("nobody", 1) });
    let settings = |bucket: &str| json!({ "endpoint": endpoint, "region": "us-east-1", "bucket": bucket, "path_style": true });
    for stack in STACKS {
        let lab = Lab::start(stack).await;
        // The common cases move the port: here the endpoint carries it.
        let id = lab.config("s3_compatible", settings("appbucket")).await;
        Lab::passed(&lab.test(&id, good.clone()).await);
        let r = lab.connect(&id, "owner-1", good.clone()).await;
        assert_eq!(r.status, reqwest::StatusCode::CREATED, "{}", r.text);
        let said = lab.fails(&id, wrong.clone(), "invalid_credentials").await;
        assert!(said.contains("SignatureDoesNotMatch"), "{said}");
        let unknown_key =
            json!({ "access_key_id": "AKIAUNKNOWN0000000", "secret_access_key": secret });
        let said = lab.fails(&id, unknown_key, "invalid_credentials").await;
        assert!(said.contains("InvalidAccessKeyId"), "{said}");
        lab.fails(&id, nobody.clone(), "permission_denied").await;
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
        r.expect(
            reqwest::StatusCode::UNPROCESSABLE_ENTITY,
            "validation-failed",
        );
        assert!(r.text.contains("path_style"), "{}", r.text);
        lab.assert_nowhere(&[&secret, "Not-The-Secret-46"]).await;
    }
}
