//! End users with JWTs from the organisation's identity provider, against a JWKS served by
//! the test: RS256, ES256 and EdDSA accepted; wrong issuer, wrong audience, expired, wrong
//! key, `alg: none`, HMAC confusion, missing or wrong workspace all refused and audited.

use std::time::Duration;

use base64::engine::general_purpose::URL_SAFE_NO_PAD as B64URL;
use base64::Engine as _;
use jsonwebtoken::{encode, Algorithm, EncodingKey, Header};
use reqwest::StatusCode;
use serde_json::{json, Value};

use authledger::ledger::envelope::open_envelope;
use authledger::ledger::sqlite_log::SqliteEventLog;
use authledger::ledger::EventLog;

use crate::harness::{args, run_cli, Service};

pub(crate) const ISSUER: &str = "https://idp.test/";
pub(crate) const AUDIENCE: &str = "authledger-test";

pub(crate) struct Keys {
    pub(crate) rsa: (EncodingKey, Value),
    pub(crate) ec: (EncodingKey, Value),
    pub(crate) ed: (EncodingKey, Value),
    /// An RSA key the JWKS does not hold, presented under the listed RSA key's kid.
    pub(crate) rogue_rsa: EncodingKey,
}

pub(crate) fn keys() -> Keys {
    use rsa::pkcs1::EncodeRsaPrivateKey;
    use rsa::traits::PublicKeyParts;
    let mut rng = rand::rngs::OsRng;
    let rsa_key = |rng: &mut rand::rngs::OsRng| rsa::RsaPrivateKey::new(rng, 2048).expect("rsa");
    let r = rsa_key(&mut rng);
    let rsa_jwk = json!({
        "kty": "RSA", "kid": "rsa-1", "alg": "RS256", "use": "sig",
        "n": B64URL.encode(r.n().to_bytes_be()), "e": B64URL.encode(r.e().to_bytes_be()),
    });
    let rsa_enc = EncodingKey::from_rsa_der(r.to_pkcs1_der().expect("der").as_bytes());
    let rogue =
        EncodingKey::from_rsa_der(rsa_key(&mut rng).to_pkcs1_der().expect("der").as_bytes());

    use p256::elliptic_curve::sec1::ToEncodedPoint;
    use p256::pkcs8::EncodePrivateKey as _;
    let ec = p256::SecretKey::random(&mut rng);
    let point = ec.public_key().to_encoded_point(false);
    let ec_jwk = json!({
        "kty": "EC", "kid": "ec-1", "crv": "P-256", "alg": "ES256",
        "x": B64URL.encode(point.x().expect("x")), "y": B64URL.encode(point.y().expect("y")),
    });
    let ec_enc = EncodingKey::from_ec_der(ec.to_pkcs8_der().expect("der").as_bytes());

    let ed = ed25519_dalek::SigningKey::generate(&mut rng);
    let ed_jwk = json!({
        "kty": "OKP", "kid": "ed-1", "crv": "Ed25519", "alg": "EdDSA",
        "x": B64URL.encode(ed.verifying_key().as_bytes()),
    });
    let ed_enc = EncodingKey::from_ed_der(ed.to_pkcs8_der().expect("der").as_bytes());
    Keys {
        rsa: (rsa_enc, rsa_jwk),
        ec: (ec_enc, ec_jwk),
        ed: (ed_enc, ed_jwk),
        rogue_rsa: rogue,
    }
}

/// Serves `jwks` at `http://127.0.0.1:<port>/jwks` for the life of the test.
pub(crate) async fn serve_jwks(jwks: Value) -> String {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
        .await
        .expect("bind");
    let addr = listener.local_addr().expect("addr");
    let app = axum::Router::new().route(
        "/jwks",
        axum::routing::get(move || async move { axum::Json(jwks) }),
    );
    tokio::spawn(async move {
        let _ = axum::serve(listener, app).await;
    });
    format!("http://{addr}/jwks")
}

pub(crate) fn claims(sub: &str, iss: &str, aud: &str, exp_in: i64) -> Value {
    let now = time::OffsetDateTime::now_utc().unix_timestamp();
    json!({ "sub": sub, "iss": iss, "aud": aud, "exp": now + exp_in, "iat": now })
}

pub(crate) fn token(alg: Algorithm, kid: &str, key: &EncodingKey, claims: &Value) -> String {
    let mut header = Header::new(alg);
    header.kid = Some(kid.to_string());
    encode(&header, claims, key).expect("encode")
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn end_users_are_identified_by_their_providers_jwts_and_nothing_else() {
    let keys = keys();
    let jwks_url = serve_jwks(json!({ "keys": [keys.rsa.1, keys.ec.1, keys.ed.1] })).await;
    let dir = tempfile::tempdir().expect("dir");
    let data = dir.path().join("data");
    let storage = args(&["--data-dir", &data.display().to_string()]);
    let svc = Service::start(&storage, &[], dir.path()).await;
    let printed0: Value =
        serde_json::from_str(&std::fs::read_to_string(&svc.stdout_path).expect("stdout"))
            .expect("json");
    // By default a loopback JWKS URL is refused (a workspace admin could otherwise make the
    // service call local endpoints).
    let r = reqwest::Client::new()
        .put(svc.url("/v1/workspace/identity-provider"))
        .bearer_auth(printed0["admin_api_key"].as_str().expect("key"))
        .json(&json!({ "issuer": ISSUER, "audience": AUDIENCE, "jwks_url": jwks_url }))
        .send()
        .await
        .expect("put");
    assert_eq!(r.status(), StatusCode::UNPROCESSABLE_ENTITY);
    drop(svc);
    let svc = Service::start(
        &storage,
        &[("AUTHLEDGER_ALLOW_LOOPBACK_URLS", "true")],
        dir.path(),
    )
    .await;
    let printed = printed0;
    let admin = printed["admin_api_key"].as_str().expect("key").to_string();
    let workspace = printed["workspace_id"].as_str().expect("ws").to_string();
    let http = reqwest::Client::new();

    // A JWKS URL without TLS off the loopback interface is refused.
    let r = http
        .put(svc.url("/v1/workspace/identity-provider"))
        .bearer_auth(&admin)
        .json(&json!({ "issuer": ISSUER, "audience": AUDIENCE, "jwks_url": "http://idp.example.com/jwks" }))
        .send()
        .await
        .expect("put");
    assert_eq!(r.status(), StatusCode::UNPROCESSABLE_ENTITY);
    let r = http
        .put(svc.url("/v1/workspace/identity-provider"))
        .bearer_auth(&admin)
        .json(&json!({ "issuer": ISSUER, "audience": AUDIENCE, "jwks_url": jwks_url }))
        .send()
        .await
        .expect("put");
    assert_eq!(
        r.status(),
        StatusCode::OK,
        "{}",
        r.text().await.unwrap_or_default()
    );

    // A second workspace with no identity provider.
    let out = run_cli(&args(&[
        "--data-dir",
        &data.display().to_string(),
        "bootstrap",
        "--workspace",
        "Other",
    ]));
    let other_ws = serde_json::from_slice::<Value>(&out.stdout).expect("json")["workspace_id"]
        .as_str()
        .expect("ws")
        .to_string();

    let me = |token: String, ws: Option<String>| {
        let http = http.clone();
        let url = svc.url("/v1/me");
        async move {
            let mut req = http.get(url).bearer_auth(token);
            if let Some(ws) = ws {
                req = req.header("Authledger-Workspace", ws);
            }
            let r = req.send().await.expect("me");
            let status = r.status();
            (status, r.json::<Value>().await.unwrap_or(Value::Null))
        }
    };
    let good = claims("user-42", ISSUER, AUDIENCE, 300);
    for (alg, kid, key) in [
        (Algorithm::RS256, "rsa-1", &keys.rsa.0),
        (Algorithm::ES256, "ec-1", &keys.ec.0),
        (Algorithm::EdDSA, "ed-1", &keys.ed.0),
    ] {
        let (s, v) = me(token(alg, kid, key, &good), Some(workspace.clone())).await;
        assert_eq!(s, StatusCode::OK, "{alg:?}: {v}");
        assert_eq!(
            (v["user_id"].as_str(), v["workspace_id"].as_str()),
            (Some("user-42"), Some(workspace.as_str()))
        );
    }

    let none_token = format!(
        "{}.{}.",
        B64URL.encode(br#"{"alg":"none","typ":"JWT"}"#),
        B64URL.encode(serde_json::to_vec(&good).expect("json"))
    );
    // HMAC with the RSA public key's bytes as the secret: the classic algorithm confusion.
    let hmac_token = encode(
        &Header {
            kid: Some("rsa-1".into()),
            ..Header::new(Algorithm::HS256)
        },
        &good,
        &EncodingKey::from_secret(keys.rsa.1["n"].as_str().expect("n").as_bytes()),
    )
    .expect("hs256");
    let refusals: Vec<(&str, String, Option<String>, &str)> = vec![
        (
            "wrong issuer",
            token(
                Algorithm::RS256,
                "rsa-1",
                &keys.rsa.0,
                &claims("u", "https://evil.test/", AUDIENCE, 300),
            ),
            Some(workspace.clone()),
            "invalid_token",
        ),
        (
            "wrong audience",
            token(
                Algorithm::ES256,
                "ec-1",
                &keys.ec.0,
                &claims("u", ISSUER, "someone-else", 300),
            ),
            Some(workspace.clone()),
            "invalid_token",
        ),
        (
            "expired",
            token(
                Algorithm::EdDSA,
                "ed-1",
                &keys.ed.0,
                &claims("u", ISSUER, AUDIENCE, -120),
            ),
            Some(workspace.clone()),
            "expired_token",
        ),
        (
            "wrong key",
            token(Algorithm::RS256, "rsa-1", &keys.rogue_rsa, &good),
            Some(workspace.clone()),
            "invalid_token",
        ),
        (
            "key of another type under a kid",
            token(Algorithm::ES256, "rsa-1", &keys.ec.0, &good),
            Some(workspace.clone()),
            "invalid_token",
        ),
        (
            "unknown kid",
            token(Algorithm::RS256, "nope", &keys.rsa.0, &good),
            Some(workspace.clone()),
            "invalid_token",
        ),
        (
            "alg none",
            none_token,
            Some(workspace.clone()),
            "invalid_token",
        ),
        (
            "HS256 confusion",
            hmac_token,
            Some(workspace.clone()),
            "invalid_token",
        ),
        (
            "not a JWT",
            "alk_abc".into(),
            Some(workspace.clone()),
            "invalid_token",
        ),
        (
            "no workspace header",
            token(Algorithm::RS256, "rsa-1", &keys.rsa.0, &good),
            None,
            "invalid_token",
        ),
        (
            "workspace without a provider",
            token(Algorithm::RS256, "rsa-1", &keys.rsa.0, &good),
            Some(other_ws.clone()),
            "invalid_token",
        ),
        (
            "unknown workspace",
            token(Algorithm::RS256, "rsa-1", &keys.rsa.0, &good),
            Some("no-such-ws".into()),
            "invalid_token",
        ),
    ];
    for (case, t, ws, _) in &refusals {
        let (s, v) = me(t.clone(), ws.clone()).await;
        assert_eq!(s, StatusCode::UNAUTHORIZED, "{case}: {v}");
        assert_eq!(
            v["type"], "https://authledger.dev/problems/unauthorized",
            "{case}"
        );
    }
    let (s, _) = {
        let r = http
            .get(svc.url("/v1/me"))
            .header("Authledger-Workspace", &workspace)
            .send()
            .await
            .expect("me");
        (r.status(), ())
    };
    assert_eq!(s, StatusCode::UNAUTHORIZED);

    // Every refusal is in the ledger, with its reason.
    tokio::time::sleep(Duration::from_millis(50)).await;
    let log = SqliteEventLog::open(&data.join("ledger.db"))
        .await
        .expect("log");
    let mut reasons: Vec<String> = Vec::new();
    for e in log.read_from(1, 100_000).await.expect("read") {
        let body = open_envelope(&e.envelope).expect("envelope").body;
        if body.kind == "access.denied" && body.payload["route"] == "/v1/me" {
            reasons.push(body.payload["reason"].as_str().expect("reason").to_string());
        }
    }
    let mut want: Vec<String> = refusals.iter().map(|r| r.3.to_string()).collect();
    want.push("missing_credentials".into());
    reasons.sort();
    want.sort();
    assert_eq!(reasons, want);
}
