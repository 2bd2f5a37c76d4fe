//! Projections on both SQL backends: auth config history applied once, secrets reduced to
//! fingerprints, rebuildable from the log.

use std::sync::Arc;

use authledger::domain::auth_config::{
    AuthConfig, AuthConfigCommand, AuthSettings, ClientAuthMethod, OAuth2Settings, SealedSecret,
};
use authledger::domain::AuthConfigCreated;
use authledger::ledger::sqlite_log::SqliteEventLog;
use authledger::ledger::{Actor, EventLog, Ledger, Signer};
use authledger::metrics::Metrics;
use authledger::projector::{PgProjections, ProjectionStore, Projector, SqliteProjections};

use crate::harness::{fresh_pg_database, ledger};

pub(crate) fn secret(fp: char) -> SealedSecret {
    SealedSecret {
        data_key_id: "dk_1".into(),
        nonce: "bm9uY2U=".into(),
        ciphertext: "Q0lQSEVSVEVYVA==".into(),
        fingerprint: format!("hmac-sha256:{}", fp.to_string().repeat(64)),
    }
}

pub(crate) fn oauth(scopes: &[&str], fp: char) -> AuthSettings {
    AuthSettings::Oauth2(OAuth2Settings {
        authorization_url: "https://accounts.google.com/o/oauth2/v2/auth".into(),
        token_url: "https://oauth2.googleapis.com/token".into(),
        revocation_url: None,
        client_id: "client-1".into(),
        client_secret: secret(fp),
        scopes: scopes.iter().map(|s| s.to_string()).collect(),
        client_auth_method: ClientAuthMethod::ClientSecretBasic,
        pkce: true,
        scope_separator: " ".into(),
        extra_authorize_params: Default::default(),
        redirect_urls: vec!["https://app.example.com/done".into()],
    })
}

/// An embedded log in `dir`, a ledger on it and an admin key's actor.
pub(crate) async fn embedded_ledger(dir: &std::path::Path) -> (Arc<dyn EventLog>, Ledger, Actor) {
    let log: Arc<dyn EventLog> =
        Arc::new(SqliteEventLog::open(&dir.join("l.db")).await.expect("log"));
    let l = ledger(log.clone(), Signer::generate());
    let admin = Actor {
        actor_type: authledger::ledger::ActorType::ApiKey,
        id: "key-1".into(),
    };
    (log, l, admin)
}

async fn auth_config_history_is_projected(store: Arc<dyn ProjectionStore>, query: impl AsyncQuery) {
    let dir = tempfile::tempdir().expect("dir");
    let (log, l, admin) = embedded_ledger(dir.path()).await;
    let create = AuthConfigCommand::Create(AuthConfigCreated {
        name: "Gmail".into(),
        provider: "google".into(),
        settings: oauth(&["a", "b"], 'a'),
        token_release: false,
        offered: true,
    });
    l.execute::<AuthConfig>("ws1", "ac1", &admin, &create)
        .await
        .expect("create");
    let update = AuthConfigCommand::Update {
        name: "Gmail send".into(),
        settings: oauth(&["a"], 'b'),
        token_release: false,
        offered: true,
    };
    l.execute::<AuthConfig>("ws1", "ac1", &admin, &update)
        .await
        .expect("update");
    l.execute::<AuthConfig>(
        "ws1",
        "ac1",
        &admin,
        &AuthConfigCommand::Disable {
            reason: Some("x".into()),
        },
    )
    .await
    .expect("disable");
    let projector = Projector::new(store.clone(), log.clone(), Metrics::new());
    assert_eq!(projector.catch_up().await.expect("catch up"), 3);

    let (name, status, version, settings) = query.auth_config("ws1", "ac1").await;
    assert_eq!(
        (name.as_str(), status.as_str(), version),
        ("Gmail send", "disabled", 3)
    );
    let settings: serde_json::Value = serde_json::from_str(&settings).expect("json");
    assert_eq!(
        settings["client_secret"],
        serde_json::json!({ "fingerprint": format!("hmac-sha256:{}", "b".repeat(64)) })
    );
    assert!(
        !settings.to_string().contains("Q0lQSEVSVEVYVA"),
        "ciphertext leaked into the projection"
    );
    let versions = query.versions("ws1", "ac1").await;
    assert_eq!(
        versions,
        vec![
            (
                1,
                "auth_config.created".to_string(),
                "[\"created\"]".to_string()
            ),
            (
                2,
                "auth_config.updated".to_string(),
                "[\"name\",\"client_secret\",\"scopes\"]".to_string()
            ),
            (
                3,
                "auth_config.disabled".to_string(),
                "[\"status\"]".to_string()
            ),
        ]
    );
    // Disposable: reset and replay gives the same answers.
    store.reset().await.expect("reset");
    assert_eq!(projector.catch_up().await.expect("replay"), 3);
    assert_eq!(query.versions("ws1", "ac1").await, versions);
}

/// The two backends' pools differ; this reads the rows the test checks.
trait AsyncQuery {
    async fn auth_config(&self, ws: &str, id: &str) -> (String, String, i64, String);
    async fn versions(&self, ws: &str, id: &str) -> Vec<(i64, String, String)>;
}

pub(crate) struct Sqlite(pub(crate) sqlx::SqlitePool);
pub(crate) struct Pg(pub(crate) sqlx::PgPool);

const CURRENT: &str =
    "SELECT name, status, version, settings FROM auth_configs WHERE workspace_id = $1 AND id = $2";
const VERSIONS: &str = "SELECT version, kind, changed FROM auth_config_versions WHERE workspace_id = $1 AND id = $2 ORDER BY version";

impl AsyncQuery for Sqlite {
    async fn auth_config(&self, ws: &str, id: &str) -> (String, String, i64, String) {
        sqlx::query_as(CURRENT)
            .bind(ws)
            .bind(id)
            .fetch_one(&self.0)
            .await
            .expect("row")
    }
    async fn versions(&self, ws: &str, id: &str) -> Vec<(i64, String, String)> {
        sqlx::query_as(VERSIONS)
            .bind(ws)
            .bind(id)
            .fetch_all(&self.0)
            .await
            .expect("rows")
    }
}

impl AsyncQuery for Pg {
    async fn auth_config(&self, ws: &str, id: &str) -> (String, String, i64, String) {
        sqlx::query_as(CURRENT)
            .bind(ws)
            .bind(id)
            .fetch_one(&self.0)
            .await
            .expect("row")
    }
    async fn versions(&self, ws: &str, id: &str) -> Vec<(i64, String, String)> {
        sqlx::query_as(VERSIONS)
            .bind(ws)
            .bind(id)
            .fetch_all(&self.0)
            .await
            .expect("rows")
    }
}

#[tokio::test]
async fn sqlite_auth_config_history_is_projected() {
    let dir = tempfile::tempdir().expect("dir");
    let store = SqliteProjections::open(&dir.path().join("p.db"))
        .await
        .expect("open");
    let pool = store.pool().clone();
    auth_config_history_is_projected(Arc::new(store), Sqlite(pool)).await;
}

#[tokio::test]
async fn postgres_auth_config_history_is_projected() {
    let url = fresh_pg_database().await;
    let store = PgProjections::open(&url).await.expect("open");
    let pool = store.pool().clone();
    auth_config_history_is_projected(Arc::new(store), Pg(pool)).await;
}

// Connections: every event kind projected on both backends, the read queries, and each
// event applied once.

use authledger::domain::connection::{
    Connection, ConnectionCommand, ConnectionInitiated, OAuthTokens, ProviderRevocation,
    RefreshTrigger,
};
use authledger::domain::{
    ConnectionAuthorizationFailed, ConnectionAuthorized, ConnectionCreated, ConnectionExpired,
    ConnectionRefreshed, ConnectionRevoked, NeedsReconsent, RefreshFailed, RefreshStarted,
};
use authledger::projector::plan::rfc3339;
use authledger::projector::store::{ConnectionFilter, ConnectionRow};
use time::{Duration as TimeDelta, OffsetDateTime};

fn state_hash(n: u8) -> String {
    format!("sha256:{}", format!("{n:02x}").repeat(32))
}

fn tokens(expires_at: OffsetDateTime, refresh: bool) -> OAuthTokens {
    OAuthTokens {
        access_token: secret('1'),
        refresh_token: refresh.then(|| secret('2')),
        token_type: "Bearer".into(),
        expires_at: Some(expires_at),
    }
}

fn strings(items: &[&str]) -> Vec<String> {
    items.iter().map(|s| s.to_string()).collect()
}

/// Runs connection commands for one workspace; returns each commit's log position.
struct Connections<'a> {
    ledger: &'a Ledger,
    ws: &'a str,
    actor: Actor,
}

impl Connections<'_> {
    async fn run(&self, id: &str, command: ConnectionCommand) -> u64 {
        self.ledger
            .execute::<Connection>(self.ws, id, &self.actor, &command)
            .await
            .unwrap_or_else(|e| panic!("{id}: {e}"))
            .position
    }

    async fn initiate(
        &self,
        id: &str,
        ac: &str,
        user: &str,
        state: u8,
        now: OffsetDateTime,
    ) -> u64 {
        self.run(
            id,
            ConnectionCommand::Initiate(ConnectionInitiated {
                auth_config_id: ac.into(),
                auth_config_version: 1,
                user_id: user.into(),
                redirect_url: "https://app.example.com/done".into(),
                requested_scopes: strings(&["a", "b"]),
                state_hash: state_hash(state),
                state_expires_at: now + TimeDelta::minutes(10),
                pkce_verifier: Some(secret('3')),
                data_key_id: format!("dk_{id}"),
            }),
        )
        .await
    }

    async fn create(&self, id: &str, ac: &str, user: &str) {
        self.run(
            id,
            ConnectionCommand::Create(ConnectionCreated {
                auth_config_id: ac.into(),
                auth_config_version: 1,
                user_id: user.into(),
                credentials: Some(secret('4')),
                data_key_id: format!("dk_{id}"),
            }),
        )
        .await;
    }

    async fn authorize(&self, id: &str, state: u8, scopes: &[&str], t: OAuthTokens) -> u64 {
        self.run(
            id,
            ConnectionCommand::Authorize {
                state_hash: state_hash(state),
                now: OffsetDateTime::now_utc(),
                authorized: ConnectionAuthorized {
                    scopes: strings(scopes),
                    tokens: t,
                    granted_scopes: None,
                },
            },
        )
        .await
    }

    async fn start_refresh(&self, id: &str, seen_rounds: u64) {
        let now = OffsetDateTime::now_utc();
        self.run(
            id,
            ConnectionCommand::StartRefresh {
                now,
                seen_rounds,
                started: RefreshStarted {
                    trigger: RefreshTrigger::Scheduled,
                    lease_expires_at: now + TimeDelta::seconds(60),
                },
            },
        )
        .await;
    }
}

async fn connections_are_projected(store: Arc<dyn ProjectionStore>, db: impl SetOffset) {
    let dir = tempfile::tempdir().expect("dir");
    let log: Arc<dyn EventLog> = Arc::new(
        SqliteEventLog::open(&dir.path().join("l.db"))
            .await
            .expect("log"),
    );
    let l = ledger(log.clone(), Signer::generate());
    let actor = Actor {
        actor_type: authledger::ledger::ActorType::User,
        id: "user-1".into(),
    };
    l.execute::<AuthConfig>(
        "ws1",
        "ac1",
        &actor,
        &AuthConfigCommand::Create(AuthConfigCreated {
            name: "Gmail".into(),
            provider: "google".into(),
            settings: oauth(&["a", "b"], 'a'),
            token_release: false,
            offered: true,
        }),
    )
    .await
    .expect("auth config");
    let ws1 = Connections {
        ledger: &l,
        ws: "ws1",
        actor: actor.clone(),
    };
    let now = OffsetDateTime::now_utc();
    // c1: authorized, then refreshed (expiry with a fraction, to check the ordering).
    let c1_expiry = now + TimeDelta::hours(2) + TimeDelta::milliseconds(500);
    let c1_initiated = ws1.initiate("c1", "ac1", "u1", 1, now).await;
    ws1.authorize("c1", 1, &["a"], tokens(now + TimeDelta::hours(1), true))
        .await;
    ws1.start_refresh("c1", 0).await;
    let c1_refreshed = ws1
        .run(
            "c1",
            ConnectionCommand::CompleteRefresh(ConnectionRefreshed {
                scopes: strings(&["a"]),
                tokens: tokens(c1_expiry, true),
                refresh_token_rotated: true,
                attempts: 1,
            }),
        )
        .await;
    // c2: waits for its callback.
    ws1.initiate("c2", "ac1", "u2", 2, now).await;
    // c3: made from credentials the user gave.
    ws1.create("c3", "ac2", "u1").await;
    // c4: the user said no.
    ws1.initiate("c4", "ac1", "u2", 4, now).await;
    ws1.run(
        "c4",
        ConnectionCommand::FailAuthorization {
            state_hash: state_hash(4),
            now: OffsetDateTime::now_utc(),
            failed: ConnectionAuthorizationFailed {
                error: "access_denied".into(),
                error_description: Some("The user denied the request".into()),
            },
        },
    )
    .await;
    // c5: expires soon, then a granted scope was removed from the config.
    let c5_expiry = now + TimeDelta::minutes(5);
    ws1.initiate("c5", "ac1", "u1", 5, now).await;
    ws1.authorize("c5", 5, &["a", "b"], tokens(c5_expiry, true))
        .await;
    ws1.run(
        "c5",
        ConnectionCommand::MarkNeedsReconsent(NeedsReconsent {
            auth_config_version: 2,
            removed_scopes: strings(&["b"]),
        }),
    )
    .await;
    // c6: expires soonest but holds no refresh token.
    ws1.initiate("c6", "ac1", "u3", 6, now).await;
    ws1.authorize("c6", 6, &["a"], tokens(now + TimeDelta::minutes(1), false))
        .await;
    // c7: revoked, then deleted.
    ws1.create("c7", "ac1", "u1").await;
    ws1.run(
        "c7",
        ConnectionCommand::Revoke(ConnectionRevoked {
            reason: None,
            provider: ProviderRevocation {
                outcome: "nothing_to_revoke".into(),
                http_status: None,
                detail: None,
            },
        }),
    )
    .await;
    ws1.run("c7", ConnectionCommand::Delete).await;
    // c8: the refresh failed for good and the connection expired.
    ws1.initiate("c8", "ac1", "u1", 8, now).await;
    ws1.authorize("c8", 8, &["a"], tokens(now + TimeDelta::minutes(2), true))
        .await;
    ws1.start_refresh("c8", 0).await;
    ws1.run(
        "c8",
        ConnectionCommand::FailRefresh(RefreshFailed {
            attempt: 1,
            error: "invalid_grant".into(),
            retryable: false,
            is_final: true,
        }),
    )
    .await;
    ws1.run(
        "c8",
        ConnectionCommand::Expire(ConnectionExpired {
            reason: "invalid_grant: refresh token revoked".into(),
        }),
    )
    .await;
    // c9 lives in another workspace.
    let ws2 = Connections {
        ledger: &l,
        ws: "ws2",
        actor,
    };
    ws2.create("c9", "ac9", "u1").await;

    let head = log.head().await.expect("head");
    let projector = Projector::new(store.clone(), log.clone(), Metrics::new());
    assert_eq!(projector.catch_up().await.expect("catch up"), head);

    // Rows: every status and reason, no token material.
    let row = |id: &'static str| {
        let store = store.clone();
        async move {
            store
                .connection("ws1", id)
                .await
                .expect("connection")
                .unwrap_or_else(|| panic!("{id} missing"))
        }
    };
    let c1 = row("c1").await;
    assert_eq!(
        (
            c1.workspace_id.as_str(),
            c1.auth_config_id.as_str(),
            c1.user_id.as_str()
        ),
        ("ws1", "ac1", "u1")
    );
    assert_eq!((c1.status.as_str(), c1.version), ("active", 4));
    assert_eq!(c1.scopes, r#"["a"]"#);
    assert_eq!(c1.requested_scopes, r#"["a","b"]"#);
    assert_eq!(
        c1.redirect_url.as_deref(),
        Some("https://app.example.com/done")
    );
    assert_eq!(c1.expires_at, Some(rfc3339(c1_expiry)));
    assert!(c1.has_refresh_token);
    assert_eq!(c1.status_reason, None);
    assert_eq!(c1.last_refreshed_at.as_ref(), Some(&c1.updated_at));
    assert_eq!(c1.last_used_at, None);
    assert!(
        !format!("{c1:?}").contains("hmac-sha256"),
        "token material projected"
    );

    let c3 = row("c3").await;
    assert_eq!(
        (
            c3.status.as_str(),
            c3.scopes.as_str(),
            c3.requested_scopes.as_str()
        ),
        ("active", "[]", "[]")
    );
    assert_eq!(
        (c3.redirect_url, c3.expires_at, c3.has_refresh_token),
        (None, None, false)
    );
    assert_eq!(c3.created_at, c3.updated_at);

    let c4 = row("c4").await;
    assert_eq!(c4.status, "error");
    assert_eq!(
        c4.status_reason.as_deref(),
        Some("access_denied: The user denied the request")
    );
    let c5 = row("c5").await;
    assert_eq!(
        (c5.status.as_str(), c5.status_reason.as_deref()),
        ("needs_reconsent", Some("scopes removed: b"))
    );
    assert_eq!(c5.scopes, r#"["a","b"]"#);
    let c7 = row("c7").await;
    assert_eq!(
        (c7.status.as_str(), c7.status_reason.as_deref(), c7.version),
        ("deleted", Some("provider revocation: nothing_to_revoke"), 3)
    );
    let c8 = row("c8").await;
    assert_eq!(
        (c8.status.as_str(), c8.status_reason.as_deref()),
        ("expired", Some("invalid_grant: refresh token revoked"))
    );
    assert_eq!(c8.last_refreshed_at, None);

    // Listing: deleted ones excluded, filters combine, the cursor pages in id order.
    let list = |f: ConnectionFilter| {
        let store = store.clone();
        async move {
            store
                .connections("ws1", &f)
                .await
                .expect("list")
                .into_iter()
                .map(|r| r.id)
                .collect::<Vec<_>>()
        }
    };
    let filter = |user: Option<&str>, ac: Option<&str>, status: Option<&str>| ConnectionFilter {
        user_id: user.map(str::to_string),
        auth_config_id: ac.map(str::to_string),
        status: status.map(str::to_string),
        after_id: None,
        limit: 100,
    };
    assert_eq!(
        list(filter(None, None, None)).await,
        ["c1", "c2", "c3", "c4", "c5", "c6", "c8"]
    );
    assert_eq!(
        list(filter(Some("u1"), None, None)).await,
        ["c1", "c3", "c5", "c8"]
    );
    assert_eq!(list(filter(None, Some("ac2"), None)).await, ["c3"]);
    assert_eq!(
        list(filter(None, None, Some("active"))).await,
        ["c1", "c3", "c6"]
    );
    assert_eq!(
        list(filter(Some("u1"), Some("ac1"), Some("active"))).await,
        ["c1"]
    );
    assert!(list(filter(None, None, Some("deleted"))).await.is_empty());
    assert!(list(filter(Some("nobody"), None, None)).await.is_empty());
    let page = |after: Option<&str>| ConnectionFilter {
        after_id: after.map(str::to_string),
        limit: 3,
        ..Default::default()
    };
    assert_eq!(list(page(None)).await, ["c1", "c2", "c3"]);
    assert_eq!(list(page(Some("c3"))).await, ["c4", "c5", "c6"]);
    assert_eq!(list(page(Some("c6"))).await, ["c8"]);
    assert!(list(page(Some("c8"))).await.is_empty());
    assert!(store
        .connections("ws2", &filter(None, None, None))
        .await
        .expect("ws2")
        .iter()
        .all(|r| r.workspace_id == "ws2" && r.id == "c9"));

    // Another workspace's ids: not found here, known elsewhere (for the audit only).
    assert_eq!(store.connection("ws1", "c9").await.expect("c9"), None);
    assert!(store
        .connection_elsewhere("ws1", "c9")
        .await
        .expect("elsewhere"));
    assert!(!store
        .connection_elsewhere("ws2", "c9")
        .await
        .expect("elsewhere"));
    assert!(!store
        .connection_elsewhere("ws1", "c1")
        .await
        .expect("elsewhere"));

    // The state hash finds a connection only while it waits for its callback.
    let by_state = |n: u8| {
        let store = store.clone();
        async move {
            store
                .connection_by_state_hash(&state_hash(n))
                .await
                .expect("by state")
                .map(|r| (r.workspace_id, r.id))
        }
    };
    assert_eq!(by_state(2).await, Some(("ws1".into(), "c2".into())));
    for used in [1, 4, 5, 99] {
        assert_eq!(by_state(used).await, None, "state {used}");
    }

    // Due for refresh: live, holding a refresh token, soonest expiry first (by the Unix
    // time, not the text).
    let due = |before: OffsetDateTime, limit: i64| {
        let store = store.clone();
        async move {
            store
                .connections_due_for_refresh(before.unix_timestamp(), limit)
                .await
                .expect("due")
                .into_iter()
                .map(|r| r.id)
                .collect::<Vec<_>>()
        }
    };
    assert_eq!(due(now + TimeDelta::minutes(30), 10).await, ["c5"]);
    assert_eq!(due(now + TimeDelta::hours(3), 10).await, ["c5", "c1"]);
    assert_eq!(due(now + TimeDelta::hours(3), 1).await, ["c5"]);
    assert!(due(now - TimeDelta::hours(1), 10).await.is_empty());

    let live: Vec<String> = store
        .live_connections_of("ws1", "ac1")
        .await
        .expect("live")
        .into_iter()
        .map(|r| r.id)
        .collect();
    assert_eq!(live, ["c1", "c2", "c5", "c6"]);
    assert!(store
        .live_connections_of("ws2", "ac1")
        .await
        .expect("live")
        .is_empty());

    // The auth config shows its live connections.
    let ac1 = store
        .auth_config("ws1", "ac1")
        .await
        .expect("auth config")
        .expect("ac1");
    assert_eq!((ac1.connections, ac1.last_used_at), (4, None));
    let listed = store.auth_configs("ws1").await.expect("auth configs");
    assert_eq!(listed.len(), 1);
    assert_eq!(listed[0].connections, 4);

    // Each event is applied once: replaying an update or an insert fails and changes nothing.
    let all: Vec<ConnectionRow> = {
        let mut rows = store
            .connections("ws1", &filter(None, None, None))
            .await
            .expect("all");
        rows.push(row("c7").await);
        rows
    };
    for position in [c1_refreshed, c1_initiated] {
        db.set_offset(position - 1).await;
        let err = projector.catch_up().await.expect_err("applied twice");
        assert!(
            matches!(err, authledger::projector::ProjectionError::Undecodable { position: p, .. } if p == position),
            "{err}"
        );
        assert_eq!(store.offset().await.expect("offset"), position - 1);
        assert_eq!(row("c1").await, c1);
    }
    db.set_offset(head).await;
    assert_eq!(projector.catch_up().await.expect("caught up"), 0);

    // Disposable: reset and replay gives the same rows.
    store.reset().await.expect("reset");
    assert_eq!(store.connection("ws1", "c1").await.expect("c1"), None);
    assert_eq!(projector.catch_up().await.expect("replay"), head);
    let mut again = store
        .connections("ws1", &filter(None, None, None))
        .await
        .expect("again");
    again.push(row("c7").await);
    assert_eq!(again, all);
}

/// Moves the projection offset (to replay events that were already applied).
trait SetOffset {
    async fn set_offset(&self, position: u64);
}

const SET_OFFSET: &str = "UPDATE projection_offsets SET position = $1";

impl SetOffset for Sqlite {
    async fn set_offset(&self, position: u64) {
        sqlx::query(SET_OFFSET)
            .bind(position as i64)
            .execute(&self.0)
            .await
            .expect("set offset");
    }
}

impl SetOffset for Pg {
    async fn set_offset(&self, position: u64) {
        sqlx::query(SET_OFFSET)
            .bind(position as i64)
            .execute(&self.0)
            .await
            .expect("set offset");
    }
}

#[tokio::test]
async fn sqlite_connections_are_projected() {
    let dir = tempfile::tempdir().expect("dir");
    let store = SqliteProjections::open(&dir.path().join("p.db"))
        .await
        .expect("open");
    let pool = store.pool().clone();
    connections_are_projected(Arc::new(store), Sqlite(pool)).await;
}

#[tokio::test]
async fn postgres_connections_are_projected() {
    let url = fresh_pg_database().await;
    let store = PgProjections::open(&url).await.expect("open");
    let pool = store.pool().clone();
    connections_are_projected(Arc::new(store), Pg(pool)).await;
}
