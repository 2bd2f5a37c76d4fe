//! The floor of issue 19's peers run: what a token issuance, a credential write and a
//! gateway call must do on this machine, and nothing else, with authledger's requests:
//!
//! - the HTTP/1 exchange (hyper, keep-alive), the bearer key checked by its SHA-256;
//! - the request's JSON read into types and checked against the one connection, auth
//!   config and tool the floor knows;
//! - one ed25519-signed event (a DSSE envelope around a JSON body), appended durably to a
//!   SQLite WAL file with `synchronous=FULL` (the embedded log's settings), committed in
//!   groups by whichever request gets the file first (no writer thread, no hand-off);
//! - a token: its JWS signed (a second ed25519 signature) after the event is durable;
//! - a credential write: a fresh data key seals the credential (AES-256-GCM-SIV), the
//!   master key wraps the data key, and both the event and the wrapped key are committed in
//!   the same transaction (one flush);
//! - a gateway call: `tool.requested` durable before the upstream call, the credential
//!   unsealed and sent as `X-Api-Key`, the answer checked for the credential, and
//!   `tool.completed` committed with the next group (nobody waits on it).
//!
//! What authledger does beyond this (projections, the read side, audit rows, rate limits,
//! scopes and policies, idempotency, metrics, tracing) is what the floor leaves out.
//!
//! Environment: FLOOR_LISTEN (127.0.0.1:port), FLOOR_DB (the SQLite file),
//! FLOOR_AGENT_KEY, FLOOR_ADMIN_KEY, FLOOR_CONNECTION, FLOOR_AUTH_CONFIG, FLOOR_TOOL,
//! FLOOR_UPSTREAM (the tool's URL), FLOOR_UPSTREAM_KEY (the connection's credential).

use std::convert::Infallible;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use aes_gcm_siv::aead::{Aead, KeyInit, Payload};
use aes_gcm_siv::{Aes256GcmSiv, Nonce};
use base64::engine::general_purpose::{STANDARD, URL_SAFE_NO_PAD};
use base64::Engine;
use bytes::Bytes;
use ed25519_dalek::{Signer, SigningKey};
use http_body_util::{BodyExt, Empty, Full, Limited};
use hyper::body::Incoming;
use hyper::{Method, Request, Response, StatusCode, Uri};
use hyper_util::client::legacy::{connect::HttpConnector, Client};
use hyper_util::rt::{TokioExecutor, TokioIo};
use rand::RngCore;
use serde::Deserialize;
use serde_json::{json, Value};
use sha2::{Digest, Sha256};
use tokio::sync::oneshot;

#[global_allocator]
static GLOBAL: mimalloc::MiMalloc = mimalloc::MiMalloc;

const PAYLOAD_TYPE: &str = "application/vnd.authledger.event+json";
const KEY_ID: &str = "floor-signing-key";
const WORKSPACE: &str = "ws_floor";
const BODY_LIMIT: usize = 1 << 20;

type Answer = Response<Full<Bytes>>;

// ------------------------------------------------------------------------------------
// The log: one SQLite file, group commit by whichever request holds the connection
// ------------------------------------------------------------------------------------

struct Row {
    event_id: String,
    envelope: Vec<u8>,
    /// A credential write's wrapped data key, committed with its event.
    data_key: Option<(String, Vec<u8>)>,
    /// Who waits for the row to be durable (none for `tool.completed`).
    done: Option<oneshot::Sender<i64>>,
}

impl Row {
    fn event(event_id: String, envelope: Vec<u8>) -> Row {
        Row {
            event_id,
            envelope,
            data_key: None,
            done: None,
        }
    }
}

struct Log {
    queue: Mutex<Vec<Row>>,
    db: Mutex<rusqlite::Connection>,
}

impl Log {
    fn open(path: &str) -> rusqlite::Result<Log> {
        let db = rusqlite::Connection::open(path)?;
        let mode: String = db.query_row("PRAGMA journal_mode = WAL", [], |r| r.get(0))?;
        assert_eq!(mode, "wal", "the floor's log needs WAL");
        db.pragma_update(None, "synchronous", "FULL")?;
        db.execute_batch(
            "CREATE TABLE IF NOT EXISTS events (position INTEGER PRIMARY KEY, \
               event_id TEXT NOT NULL UNIQUE, envelope BLOB NOT NULL);
             CREATE TABLE IF NOT EXISTS data_keys (resource_id TEXT PRIMARY KEY, \
               wrapped BLOB NOT NULL);",
        )?;
        Ok(Log {
            queue: Mutex::new(Vec::new()),
            db: Mutex::new(db),
        })
    }

    /// Appends the row and waits until it is durable; answers its position.
    async fn append(&self, mut row: Row) -> Option<i64> {
        let (tx, rx) = oneshot::channel();
        row.done = Some(tx);
        self.queue.lock().expect("queue").push(row);
        self.lead();
        rx.await.ok()
    }

    /// Appends the row with the next group; nobody waits for it.
    fn append_later(&self, row: Row) {
        self.queue.lock().expect("queue").push(row);
    }

    /// Commits what is queued if no one else is committing. A row queued while another
    /// request commits is taken by that request's next round, or by this one's after it
    /// lets go (the queue is looked at again after the file is let go).
    fn lead(&self) {
        loop {
            let Ok(mut db) = self.db.try_lock() else {
                return;
            };
            loop {
                let group = std::mem::take(&mut *self.queue.lock().expect("queue"));
                if group.is_empty() {
                    break;
                }
                commit(&mut db, group);
            }
            drop(db);
            if self.queue.lock().expect("queue").is_empty() {
                return;
            }
        }
    }
}

/// One transaction for the group, then every waiter is answered. On an error the waiters'
/// senders are dropped, and their requests answer 503.
fn commit(db: &mut rusqlite::Connection, group: Vec<Row>) {
    let mut positions = Vec::with_capacity(group.len());
    let written = (|| -> rusqlite::Result<()> {
        let tx = db.transaction()?;
        {
            let mut event =
                tx.prepare_cached("INSERT INTO events (event_id, envelope) VALUES (?1, ?2)")?;
            let mut key =
                tx.prepare_cached("INSERT INTO data_keys (resource_id, wrapped) VALUES (?1, ?2)")?;
            for row in &group {
                event.execute(rusqlite::params![row.event_id, row.envelope])?;
                positions.push(tx.last_insert_rowid());
                if let Some((id, wrapped)) = &row.data_key {
                    key.execute(rusqlite::params![id, wrapped])?;
                }
            }
        }
        tx.commit()
    })();
    if let Err(e) = written {
        eprintln!("floor: commit failed: {e}");
        return;
    }
    for (row, position) in group.into_iter().zip(positions) {
        if let Some(done) = row.done {
            let _ = done.send(position);
        }
    }
}

// ------------------------------------------------------------------------------------
// The floor's state and its three requests
// ------------------------------------------------------------------------------------

struct Floor {
    signer: SigningKey,
    master: Aes256GcmSiv,
    agent_key: [u8; 32],
    admin_key: [u8; 32],
    connection_id: String,
    auth_config_id: String,
    tool: String,
    /// The connection's credential as it rests: (wrapped data key, sealed credential).
    sealed_credential: (Vec<u8>, Vec<u8>),
    upstream: Uri,
    client: Client<HttpConnector, Empty<Bytes>>,
    log: Log,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct TokenRequest {
    connection_id: String,
    ttl_seconds: u32,
    tool: String,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct ConnectionRequest {
    auth_config_id: String,
    user_id: String,
    credentials: Credentials,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct Credentials {
    api_key: String,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct ExecuteRequest {
    tool: String,
    connection_id: String,
    arguments: serde_json::Map<String, Value>,
}

fn now() -> time::OffsetDateTime {
    time::OffsetDateTime::now_utc()
}

fn rfc3339(t: time::OffsetDateTime) -> String {
    t.format(&time::format_description::well_known::Rfc3339)
        .expect("a UTC time formats")
}

fn answer(status: StatusCode, body: &Value) -> Answer {
    Response::builder()
        .status(status)
        .header("content-type", "application/json")
        .body(Full::new(Bytes::from(
            serde_json::to_vec(body).expect("JSON"),
        )))
        .expect("response")
}

fn refused(status: StatusCode, detail: &str) -> Answer {
    answer(
        status,
        &json!({"status": status.as_u16(), "detail": detail}),
    )
}

fn not_logged() -> Answer {
    refused(
        StatusCode::SERVICE_UNAVAILABLE,
        "the log did not take the event",
    )
}

fn seal(key: &[u8; 32], plaintext: &[u8], aad: &[u8]) -> Vec<u8> {
    let mut nonce = [0u8; 12];
    rand::thread_rng().fill_bytes(&mut nonce);
    let mut out = nonce.to_vec();
    let cipher = Aes256GcmSiv::new(key.into());
    let sealed = cipher
        .encrypt(
            Nonce::from_slice(&nonce),
            Payload {
                msg: plaintext,
                aad,
            },
        )
        .expect("seal");
    out.extend_from_slice(&sealed);
    out
}

fn open(cipher: &Aes256GcmSiv, sealed: &[u8], aad: &[u8]) -> Option<Vec<u8>> {
    let (nonce, body) = sealed.split_at_checked(12)?;
    cipher
        .decrypt(Nonce::from_slice(nonce), Payload { msg: body, aad })
        .ok()
}

impl Floor {
    /// A signed event as the log keeps it: a DSSE envelope around the JSON body.
    fn event(
        &self,
        kind: &str,
        aggregate: (&str, &str),
        actor: &str,
        payload: Value,
    ) -> (String, Vec<u8>) {
        let event_id = uuid::Uuid::now_v7().to_string();
        let body = json!({
            "event_id": event_id, "workspace_id": WORKSPACE,
            "aggregate_type": aggregate.0, "aggregate_id": aggregate.1, "aggregate_version": 1,
            "kind": kind, "schema_version": 1, "occurred_at": rfc3339(now()),
            "actor": {"type": "api_key", "id": actor}, "payload": payload,
            "prev_hash": null, "key_id": KEY_ID,
        });
        let body = serde_json::to_vec(&body).expect("JSON");
        let mut pae = format!(
            "DSSEv1 {} {} {} ",
            PAYLOAD_TYPE.len(),
            PAYLOAD_TYPE,
            body.len()
        )
        .into_bytes();
        pae.extend_from_slice(&body);
        let signature = self.signer.sign(&pae);
        let envelope = json!({
            "payloadType": PAYLOAD_TYPE, "payload": STANDARD.encode(&body),
            "signatures": [{"keyid": KEY_ID, "sig": STANDARD.encode(signature.to_bytes())}],
        });
        (event_id, serde_json::to_vec(&envelope).expect("JSON"))
    }

    async fn token(&self, caller: &str, body: &[u8]) -> Answer {
        let Ok(r) = serde_json::from_slice::<TokenRequest>(body) else {
            return refused(StatusCode::BAD_REQUEST, "not a token request");
        };
        if r.connection_id != self.connection_id || r.tool != self.tool {
            return refused(StatusCode::NOT_FOUND, "no such connection or tool");
        }
        if !(60..=86_400).contains(&r.ttl_seconds) {
            return refused(StatusCode::UNPROCESSABLE_ENTITY, "ttl_seconds out of range");
        }
        let token_id = uuid::Uuid::now_v7().to_string();
        let issued = now();
        let expires = issued + time::Duration::seconds(i64::from(r.ttl_seconds));
        let (event_id, envelope) = self.event(
            "scoped_token.issued",
            ("scoped_token", &token_id),
            caller,
            json!({"connection_id": r.connection_id, "tool": r.tool, "scopes": ["items:read"],
                   "expires_at": rfc3339(expires)}),
        );
        let Some(position) = self.log.append(Row::event(event_id, envelope)).await else {
            return not_logged();
        };
        let header =
            URL_SAFE_NO_PAD.encode(format!(r#"{{"alg":"EdDSA","typ":"JWT","kid":"{KEY_ID}"}}"#));
        let claims = json!({
            "iss": "authledger-floor", "sub": r.connection_id, "aud": "authledger", "jti": token_id,
            "iat": issued.unix_timestamp(), "exp": expires.unix_timestamp(),
            "scope": "items:read", "tool": r.tool, "wid": WORKSPACE,
        });
        let input = format!(
            "{header}.{}",
            URL_SAFE_NO_PAD.encode(serde_json::to_vec(&claims).expect("JSON"))
        );
        let signature = self.signer.sign(input.as_bytes());
        let token = format!("{input}.{}", URL_SAFE_NO_PAD.encode(signature.to_bytes()));
        let mut a = answer(
            StatusCode::CREATED,
            &json!({"token": token, "token_type": "Bearer", "tool": r.tool, "scopes": ["items:read"],
                    "expires_at": rfc3339(expires), "connection_id": r.connection_id}),
        );
        a.headers_mut()
            .insert("authledger-position", position.into());
        a
    }

    async fn create_connection(&self, caller: &str, body: &[u8]) -> Answer {
        let Ok(r) = serde_json::from_slice::<ConnectionRequest>(body) else {
            return refused(StatusCode::BAD_REQUEST, "not a connection request");
        };
        if r.auth_config_id != self.auth_config_id {
            return refused(StatusCode::NOT_FOUND, "no such auth config");
        }
        if r.user_id.is_empty()
            || r.user_id.len() > 255
            || r.credentials.api_key.is_empty()
            || r.credentials.api_key.len() > 8192
        {
            return refused(
                StatusCode::UNPROCESSABLE_ENTITY,
                "user_id or api_key out of range",
            );
        }
        let id = uuid::Uuid::now_v7().to_string();
        let mut data_key = [0u8; 32];
        rand::thread_rng().fill_bytes(&mut data_key);
        let sealed = seal(&data_key, r.credentials.api_key.as_bytes(), id.as_bytes());
        let mut nonce = [0u8; 12];
        rand::thread_rng().fill_bytes(&mut nonce);
        let mut wrapped = nonce.to_vec();
        wrapped.extend(
            self.master
                .encrypt(
                    Nonce::from_slice(&nonce),
                    Payload {
                        msg: &data_key,
                        aad: id.as_bytes(),
                    },
                )
                .expect("wrap"),
        );
        let created = rfc3339(now());
        let (event_id, envelope) = self.event(
            "connection.created",
            ("connection", &id),
            caller,
            json!({"auth_config_id": r.auth_config_id, "user_id": r.user_id, "auth_type": "api_key",
                   "sealed_credentials": STANDARD.encode(&sealed), "status": "active"}),
        );
        let row = Row {
            event_id,
            envelope,
            data_key: Some((id.clone(), wrapped)),
            done: None,
        };
        let Some(position) = self.log.append(row).await else {
            return not_logged();
        };
        let mut a = answer(
            StatusCode::CREATED,
            &json!({"id": id, "auth_config_id": r.auth_config_id, "user_id": r.user_id,
                    "status": "active", "created_at": created}),
        );
        a.headers_mut()
            .insert("authledger-position", position.into());
        a
    }

    async fn execute(self: Arc<Self>, caller: &'static str, body: &[u8]) -> Answer {
        let Ok(r) = serde_json::from_slice::<ExecuteRequest>(body) else {
            return refused(StatusCode::BAD_REQUEST, "not a tool call");
        };
        if r.connection_id != self.connection_id || r.tool != self.tool {
            return refused(StatusCode::NOT_FOUND, "no such connection or tool");
        }
        let call_id = uuid::Uuid::now_v7().to_string();
        let fingerprint = hex(&Sha256::digest(
            serde_json::to_vec(&r.arguments).expect("JSON"),
        ));
        let (event_id, envelope) = self.event(
            "tool.requested",
            ("tool_call", &call_id),
            caller,
            json!({"tool": r.tool, "connection_id": r.connection_id, "arguments": format!("sha256:{fingerprint}")}),
        );
        let Some(position) = self.log.append(Row::event(event_id, envelope)).await else {
            return not_logged();
        };
        let (status, upstream) = match self.call_upstream(&call_id).await {
            Some(got) => got,
            None => return refused(StatusCode::BAD_GATEWAY, "the upstream did not answer"),
        };
        // Signed and queued after the answer is handed to hyper (the spawned task runs when
        // this one yields, once the answer is written): nobody waits on `tool.completed`.
        let completed = json!({"outcome": "succeeded", "status": status, "bytes": upstream.len()});
        let (floor, call) = (Arc::clone(&self), call_id.clone());
        tokio::spawn(async move {
            let (event_id, envelope) =
                floor.event("tool.completed", ("tool_call", &call), caller, completed);
            floor.log.append_later(Row::event(event_id, envelope));
        });
        let data = serde_json::from_slice::<Value>(&upstream).unwrap_or(Value::Null);
        let mut a = answer(
            StatusCode::OK,
            &json!({"call_id": call_id, "status": status, "data": data}),
        );
        a.headers_mut()
            .insert("authledger-position", position.into());
        a
    }

    /// The upstream call with the connection's credential, unsealed for it; `None` when the
    /// upstream failed or its answer carried the credential back.
    async fn call_upstream(&self, call_id: &str) -> Option<(u16, Bytes)> {
        let aad = self.connection_id.as_bytes();
        let data_key = open(&self.master, &self.sealed_credential.0, aad)?;
        let data_key: [u8; 32] = data_key.try_into().ok()?;
        let credential = open(
            &Aes256GcmSiv::new((&data_key).into()),
            &self.sealed_credential.1,
            aad,
        )?;
        let request = Request::get(self.upstream.clone())
            .header("x-api-key", credential.as_slice())
            .header("x-request-id", call_id)
            .body(Empty::new())
            .ok()?;
        let response = self.client.request(request).await.ok()?;
        let status = response.status().as_u16();
        let body = Limited::new(response.into_body(), BODY_LIMIT)
            .collect()
            .await
            .ok()?
            .to_bytes();
        if body
            .windows(credential.len())
            .any(|w| w == credential.as_slice())
        {
            return None;
        }
        Some((status, body))
    }

    fn caller(&self, req: &Request<Incoming>, admin: bool) -> Option<&'static str> {
        let key = req
            .headers()
            .get("authorization")?
            .to_str()
            .ok()?
            .strip_prefix("Bearer ")?;
        let hash: [u8; 32] = Sha256::digest(key.as_bytes()).into();
        match (admin, hash) {
            (false, h) if h == self.agent_key => Some("agent"),
            (true, h) if h == self.admin_key => Some("admin"),
            _ => None,
        }
    }

    async fn handle(self: Arc<Self>, req: Request<Incoming>) -> Answer {
        let route = match (req.method(), req.uri().path()) {
            (&Method::GET, "/healthz") => return answer(StatusCode::OK, &json!({"status": "ok"})),
            (&Method::POST, "/v1/tokens") => 0,
            (&Method::POST, "/v1/connections") => 1,
            (&Method::POST, "/v1/tools/execute") => 2,
            _ => return refused(StatusCode::NOT_FOUND, "no such route"),
        };
        let Some(caller) = self.caller(&req, route == 1) else {
            return refused(StatusCode::UNAUTHORIZED, "no valid key");
        };
        let body = match Limited::new(req.into_body(), BODY_LIMIT).collect().await {
            Ok(b) => b.to_bytes(),
            Err(_) => return refused(StatusCode::PAYLOAD_TOO_LARGE, "body too large or cut off"),
        };
        match route {
            0 => self.token(caller, &body).await,
            1 => self.create_connection(caller, &body).await,
            _ => self.execute(caller, &body).await,
        }
    }
}

fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

fn env(name: &str) -> String {
    std::env::var(name).unwrap_or_else(|_| panic!("{name} is not set"))
}

fn floor_from_env() -> Floor {
    let mut seed = [0u8; 32];
    rand::thread_rng().fill_bytes(&mut seed);
    let mut master = [0u8; 32];
    rand::thread_rng().fill_bytes(&mut master);
    let connection_id = env("FLOOR_CONNECTION");
    let mut data_key = [0u8; 32];
    rand::thread_rng().fill_bytes(&mut data_key);
    let credential = seal(
        &data_key,
        env("FLOOR_UPSTREAM_KEY").as_bytes(),
        connection_id.as_bytes(),
    );
    let wrapped = seal(&master, &data_key, connection_id.as_bytes());
    let mut http = HttpConnector::new();
    http.set_nodelay(true);
    Floor {
        signer: SigningKey::from_bytes(&seed),
        master: Aes256GcmSiv::new((&master).into()),
        agent_key: Sha256::digest(env("FLOOR_AGENT_KEY")).into(),
        admin_key: Sha256::digest(env("FLOOR_ADMIN_KEY")).into(),
        connection_id,
        auth_config_id: env("FLOOR_AUTH_CONFIG"),
        tool: env("FLOOR_TOOL"),
        sealed_credential: (wrapped, credential),
        upstream: env("FLOOR_UPSTREAM")
            .parse()
            .expect("FLOOR_UPSTREAM is a URL"),
        client: Client::builder(TokioExecutor::new()).build(http),
        log: Log::open(&env("FLOOR_DB")).expect("the floor's log opens"),
    }
}

#[tokio::main]
async fn main() {
    let floor = Arc::new(floor_from_env());
    // Completions nobody waits on are committed within 5 ms when no request comes.
    let ticking = floor.clone();
    tokio::spawn(async move {
        let mut tick = tokio::time::interval(Duration::from_millis(5));
        loop {
            tick.tick().await;
            ticking.log.lead();
        }
    });
    let listener = tokio::net::TcpListener::bind(env("FLOOR_LISTEN"))
        .await
        .expect("bind");
    eprintln!(
        "floor: listening on {}",
        listener.local_addr().expect("address")
    );
    loop {
        let Ok((stream, _)) = listener.accept().await else {
            continue;
        };
        let _ = stream.set_nodelay(true);
        let floor = floor.clone();
        tokio::spawn(async move {
            let service = hyper::service::service_fn(move |req| {
                let floor = floor.clone();
                async move { Ok::<_, Infallible>(floor.handle(req).await) }
            });
            let _ = hyper::server::conn::http1::Builder::new()
                .serve_connection(TokioIo::new(stream), service)
                .await;
        });
    }
}
