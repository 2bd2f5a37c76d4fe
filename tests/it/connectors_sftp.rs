//! The `sftp` driver against an OpenSSH `sshd` of the test's own (its own config and host
//! key in a temp dir, on a free port, `UsePAM no`, the `authledger-sftp` system user that
//! `tools/test` creates, keys authorized by an `AuthorizedKeysFile` in the temp dir): a
//! password login, an OpenSSH key under a passphrase and a PEM key log in and `realpath .`;
//! a wrong password, a wrong passphrase, a key the server does not know; a host key other
//! than the pinned one refused before logging in; a closed port, a silent listener; the
//! compatible services' definitions on the same driver; no secret in any answer, the log or
//! the service's own log lines. Over HTTP, on both stacks.

use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::OnceLock;
use std::time::Duration;

use serde_json::{json, Value};

use crate::connectors_support::{binary, wait_for_port, Lab, STACKS};
use crate::harness::free_port;

/// The system user `tools/test` creates (sshd logs in real users only).
const USER: &str = "authledger-sftp";

pub struct Sshd {
    child: Child,
    pub port: u16,
    /// The host key's fingerprint as `ssh-keygen -lf` prints it.
    pub fingerprint: String,
    dir: tempfile::TempDir,
}

impl Drop for Sshd {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

impl Sshd {
    /// What sshd wrote to its log so far (`-e`: its stderr).
    fn log(&self) -> String {
        std::fs::read_to_string(self.dir.path().join("sshd.log")).unwrap_or_default()
    }
}

fn run(program: &str, args: &[&str]) -> String {
    let out = Command::new(program)
        .args(args)
        .output()
        .unwrap_or_else(|e| panic!("{program}: {e}"));
    assert!(
        out.status.success(),
        "{program} {args:?}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout).to_string()
}

/// The test user's password: a fresh random one set once per test process (`chpasswd`, as
/// root like the rest of `tools/test`). The account must have one even for key logins:
/// without PAM, sshd refuses a locked account whatever the method.
fn password() -> &'static str {
    static PASSWORD: OnceLock<String> = OnceLock::new();
    PASSWORD.get_or_init(|| {
        let known = Command::new("id")
            .arg(USER)
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .status()
            .is_ok_and(|s| s.success());
        assert!(
            known,
            "no user {USER}: tools/test creates it (useradd -m {USER})"
        );
        let password = format!("Sftp-{}", uuid::Uuid::now_v7().simple());
        let mut chpasswd = Command::new("chpasswd")
            .stdin(Stdio::piped())
            .spawn()
            .expect("chpasswd");
        use std::io::Write;
        chpasswd
            .stdin
            .take()
            .expect("stdin")
            .write_all(format!("{USER}:{password}\n").as_bytes())
            .expect("write");
        assert!(
            chpasswd.wait().expect("chpasswd").success(),
            "chpasswd {USER} (the tests run as root under tools/test)"
        );
        password
    })
}

/// A key pair made by `ssh-keygen` in `dir`: (private key file, public key line).
fn keygen(dir: &Path, name: &str, args: &[&str]) -> (PathBuf, String) {
    let path = dir.join(name);
    let path_s = path.to_str().expect("path").to_string();
    let mut all = vec!["-q", "-C", name, "-f", &path_s];
    all.extend_from_slice(args);
    run("ssh-keygen", &all);
    let public = std::fs::read_to_string(path.with_extension("pub")).expect("public key");
    (path, public)
}

fn fingerprint_of(public_key_file: &Path) -> String {
    let line = run(
        "ssh-keygen",
        &["-lf", public_key_file.to_str().expect("path")],
    );
    line.split_whitespace()
        .nth(1)
        .expect("ssh-keygen -lf: bits, fingerprint, comment")
        .to_string()
}

/// The test's keys: authorized ones (an OpenSSH ed25519 key under a passphrase, an RSA key
/// in PEM) and one the server does not know.
pub struct Keys {
    pub openssh: String,
    pub passphrase: String,
    pub pem: String,
    pub unknown: String,
}

pub async fn sshd() -> (Sshd, Keys) {
    let server = binary("sshd", "openssh-server");
    let _ = password();
    let dir = tempfile::tempdir().expect("dir");
    let d = dir.path();
    // sshd reads the AuthorizedKeysFile as the user: the directory must be open to it.
    std::fs::set_permissions(d, std::os::unix::fs::PermissionsExt::from_mode(0o755))
        .expect("chmod");
    // Privilege separation needs its empty directory (the packaged service makes it at start).
    std::fs::create_dir_all("/run/sshd").expect("/run/sshd");
    let (host_key, _) = keygen(d, "host_key", &["-t", "ed25519", "-N", ""]);
    let passphrase = format!("Pp-{}", uuid::Uuid::now_v7().simple());
    let (openssh, openssh_pub) = keygen(d, "user_ed25519", &["-t", "ed25519", "-N", &passphrase]);
    let (pem, pem_pub) = keygen(
        d,
        "user_rsa",
        &["-t", "rsa", "-b", "2048", "-m", "PEM", "-N", ""],
    );
    let (unknown, _) = keygen(d, "stranger", &["-t", "ed25519", "-N", ""]);
    let authorized = d.join("authorized_keys");
    std::fs::write(&authorized, format!("{openssh_pub}{pem_pub}")).expect("authorized_keys");
    let port = free_port();
    let conf = d.join("sshd_config");
    let config = |extra: &str| {
        format!(
            "Port {port}\nListenAddress 127.0.0.1\nHostKey {}\nPidFile {}\nUsePAM no\n\
             PasswordAuthentication yes\nKbdInteractiveAuthentication no\n\
             PubkeyAuthentication yes\nAuthorizedKeysFile {}\nStrictModes no\n\
             AllowUsers {USER}\nSubsystem sftp internal-sftp\nLogLevel VERBOSE\n{extra}",
            host_key.display(),
            d.join("sshd.pid").display(),
            authorized.display(),
        )
    };
    // Newer OpenSSH (9.8+) penalises addresses that fail logins; these tests fail on purpose.
    std::fs::write(&conf, config("PerSourcePenalties no\n")).expect("sshd_config");
    let check = Command::new(&server)
        .args(["-t", "-f"])
        .arg(&conf)
        .output()
        .expect("sshd -t");
    if !check.status.success() {
        std::fs::write(&conf, config("")).expect("sshd_config");
    }
    let log = std::fs::File::create(d.join("sshd.log")).expect("log");
    let child = Command::new(&server)
        .args(["-D", "-e", "-f"])
        .arg(&conf)
        .stdout(Stdio::null())
        .stderr(log)
        .spawn()
        .expect("sshd");
    let fingerprint = fingerprint_of(&host_key.with_extension("pub"));
    let read = |p: &Path| std::fs::read_to_string(p).expect("key");
    let keys = Keys {
        openssh: read(&openssh),
        passphrase,
        pem: read(&pem),
        unknown: read(&unknown),
    };
    let s = Sshd {
        child,
        port,
        fingerprint,
        dir,
    };
    wait_for_port(s.port, "sshd", Duration::from_secs(30)).await;
    (s, keys)
}

/// A line from the middle of a private key (what a leak would show).
fn body_line(pem: &str) -> String {
    let lines: Vec<&str> = pem.lines().collect();
    lines[lines.len() / 2].to_string()
}

/// No secret in the service's own log lines (stdout and stderr).
fn assert_not_logged(lab: &Lab, secrets: &[&str]) {
    let out = &lab.env.svc.stdout_path;
    let err = out.with_extension("err");
    let logged = format!(
        "{}{}",
        std::fs::read_to_string(out).unwrap_or_default(),
        std::fs::read_to_string(err).unwrap_or_default()
    );
    for s in secrets {
        assert!(!logged.contains(s), "a secret in the service's log");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sftp_driver_logs_in_with_a_password_or_a_key_and_pins_the_host_key() {
    let (server, keys) = sshd().await;
    let password = password();
    let wrong = "Not-The-Password-51";
    let good = json!({ "username": USER, "password": password });
    let wrong_password = json!({ "username": USER, "password": wrong });
    let settings = |fingerprint: &str| json!({ "host": "127.0.0.1", "port": server.port, "host_key_fingerprint": fingerprint });
    let pinned = settings(&server.fingerprint);
    // Another key's fingerprint: a server that is not the one pinned.
    let other_dir = tempfile::tempdir().expect("dir");
    let (other, _) = keygen(other_dir.path(), "other_host", &["-t", "ed25519", "-N", ""]);
    let other = fingerprint_of(&other.with_extension("pub"));
    for stack in STACKS {
        let lab = Lab::start(stack).await;
        lab.common_cases("sftp", &pinned, &good, &wrong_password)
            .await;
        let id = lab.config("sftp", pinned.clone()).await;
        Lab::passed(&lab.test(&id, good.clone()).await);
        let with_key = |key: &str, passphrase: Option<&str>| {
            let mut c = json!({ "username": USER, "private_key": key });
            if let Some(p) = passphrase {
                c["passphrase"] = json!(p);
            }
            c
        };
        Lab::passed(
            &lab.test(&id, with_key(&keys.openssh, Some(&keys.passphrase)))
                .await,
        );
        Lab::passed(&lab.test(&id, with_key(&keys.pem, None)).await);
        // A whole `ssh-keygen -lf` line pins as well as the fingerprint alone.
        let line = lab
            .config(
                "sftp",
                settings(&format!("256 {} root@host (ED25519)", server.fingerprint)),
            )
            .await;
        Lab::passed(&lab.test(&line, good.clone()).await);

        lab.fails(
            &id,
            with_key(&keys.openssh, Some("Wrong-Phrase-52")),
            "invalid_credentials",
        )
        .await;
        let said = lab
            .fails(&id, with_key(&keys.openssh, None), "invalid_credentials")
            .await;
        assert!(said.contains("passphrase"), "{said}");
        let said = lab
            .fails(&id, with_key(&keys.unknown, None), "invalid_credentials")
            .await;
        assert!(said.contains("refused the login"), "{said}");
        lab.fails(&id, json!({ "username": USER }), "invalid_credentials")
            .await;
        lab.fails(
            &id,
            json!({ "username": "nobody-here", "password": password }),
            "invalid_credentials",
        )
        .await;

        // The wrong host key is refused before any login is tried: sshd sees no password.
        let impostor = lab.config("sftp", settings(&other)).await;
        let failed_before = server.log().matches("Failed password").count();
        let said = lab
            .fails(&impostor, good.clone(), "host_key_mismatch")
            .await;
        assert!(said.contains(&server.fingerprint), "{said}");
        assert!(said.contains("refused"), "{said}");
        lab.fails(&impostor, wrong_password.clone(), "host_key_mismatch")
            .await;
        assert_eq!(
            server.log().matches("Failed password").count(),
            failed_before,
            "a login was tried with an unpinned host key"
        );
        let garbled = lab.config("sftp", settings("not a fingerprint")).await;
        lab.fails(&garbled, good.clone(), "host_key_mismatch").await;

        for connector in [
            "aws_transfer_family",
            "azure_blob_sftp",
            "hetzner_storage_box",
            "rsync_net",
        ] {
            let id = lab.config(connector, pinned.clone()).await;
            Lab::passed(&lab.test(&id, good.clone()).await);
        }

        let secrets = [
            password,
            wrong,
            keys.passphrase.as_str(),
            "Wrong-Phrase-52",
            &body_line(&keys.openssh),
            &body_line(&keys.pem),
            &body_line(&keys.unknown),
        ];
        lab.assert_nowhere(&secrets).await;
        assert_not_logged(&lab, &secrets);
    }
    assert!(
        server.log().contains("Accepted publickey") && server.log().contains("Accepted password"),
        "{}",
        server.log()
    );
}

/// The connector's form: the private key is a multi-line input (a one-line password input
/// would lose its lines), its value never shown back.
#[test]
fn the_private_key_is_a_textarea_and_never_shown() {
    let definition = authledger::connectors::definition("sftp").expect("sftp");
    let shown: std::collections::BTreeMap<String, Value> = [(
        "private_key".to_string(),
        json!("-----BEGIN OPENSSH PRIVATE KEY-----"),
    )]
    .into();
    let fields = authledger::connectors::definition::form_fields(
        definition,
        authledger::connectors::Part::Credentials,
        &shown,
    );
    let key = fields
        .iter()
        .find(|f| f.input == "f_private_key")
        .expect("f_private_key");
    assert_eq!((key.widget, key.value.as_str()), ("textarea", ""));
    let password = fields
        .iter()
        .find(|f| f.input == "f_password")
        .expect("f_password");
    assert_eq!(password.widget, "password");
}

/// The hosted connect page of the SFTP connector: the private key a multi-line input, the
/// password and passphrase password inputs; an OpenSSH key pasted with its lines, under its
/// passphrase, connects against the real sshd; nothing secret comes back.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_hosted_connect_page_takes_a_private_key_with_its_lines() {
    let (server, keys) = sshd().await;
    let lab = Lab::start(crate::support::Stack::Embedded).await;
    let id = lab
        .config(
            "sftp",
            json!({ "host": "127.0.0.1", "port": server.port,
                    "host_key_fingerprint": server.fingerprint }),
        )
        .await;
    let page = lab.open_hosted_page(&id, "uploader").await;
    let (html, connection) = (&page.html, &page.connection);
    for expected in [
        "<textarea id=\"f_private_key\" name=\"f_private_key\"",
        "name=\"f_password\" type=\"password\"",
        "name=\"f_passphrase\" type=\"password\"",
        "Private key passphrase",
    ] {
        assert!(
            html.contains(expected),
            "{expected} not in the page:\n{html}"
        );
    }
    let post = |action: &str, passphrase: &str| {
        page.post(vec![
            ("action", action.to_string()),
            ("f_username", USER.to_string()),
            ("f_private_key", keys.openssh.clone()),
            ("f_passphrase", passphrase.to_string()),
        ])
    };
    let html = post("test", "Wrong-Phrase-53")
        .await
        .text()
        .await
        .expect("html");
    assert!(
        html.contains("Test failed") && html.contains("invalid_credentials"),
        "{html}"
    );
    assert!(!html.contains(&body_line(&keys.openssh)), "{html}");
    let r = post("connect", &keys.passphrase).await;
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
    lab.assert_nowhere(&[
        &keys.passphrase,
        "Wrong-Phrase-53",
        &body_line(&keys.openssh),
    ])
    .await;
}
