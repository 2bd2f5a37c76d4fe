//! Projections on both SQL backends: auth config history applied once, secrets reduced to
//! fingerprints, rebuildable from the log.

use std::sync::Arc;

use authledger::domain::auth_config::{
    AuthConfig, AuthConfigCommand, AuthSettings, ClientAuthMethod, OAuth2Settings, SealedSecret,
};
use authledger::domain::AuthConfigCreated;
use authledger::ledger::sqlite_log::SqliteEventLog;
use authledger::ledger::{Actor, EventLog, Signer};
use authledger::metrics::Metrics;
use authledger::projector::{PgProjections, ProjectionStore, Projector, SqliteProjections};

use crate::harness::{fresh_pg_database, ledger};

fn secret(fp: char) -> SealedSecret {
    SealedSecret {
        data_key_id: "dk_1".into(),
        nonce: "bm9uY2U=".into(),
        ciphertext: "Q0lQSEVSVEVYVA==".into(),
        fingerprint: format!("hmac-sha256:{}", fp.to_string().repeat(64)),
    }
}

fn oauth(scopes: &[&str], fp: char) -> AuthSettings {
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

async fn auth_config_history_is_projected(store: Arc<dyn ProjectionStore>, query: impl AsyncQuery) {
    let dir = tempfile::tempdir().expect("dir");
    let log: Arc<dyn EventLog> = Arc::new(
        SqliteEventLog::open(&dir.path().join("l.db"))
            .await
            .expect("log"),
    );
    let l = ledger(log.clone(), Signer::generate());
    let admin = Actor {
        actor_type: authledger::ledger::ActorType::ApiKey,
        id: "key-1".into(),
    };
    let create = AuthConfigCommand::Create(AuthConfigCreated {
        name: "Gmail".into(),
        provider: "google".into(),
        settings: oauth(&["a", "b"], 'a'),
    });
    l.execute::<AuthConfig>("ws1", "ac1", &admin, &create)
        .await
        .expect("create");
    let update = AuthConfigCommand::Update {
        name: "Gmail send".into(),
        settings: oauth(&["a"], 'b'),
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

struct Sqlite(sqlx::SqlitePool);
struct Pg(sqlx::PgPool);

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
