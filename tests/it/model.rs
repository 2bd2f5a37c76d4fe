//! Model-based test of the read side (issue 22): random sequences of valid commands over
//! every aggregate and every workspace setting, sent through the real service on both
//! storage stacks, with restarts and signing-key rotations among them. At the end the
//! projector must have reached the log head, the projections must equal a fresh `replay`
//! of the log, and every event kind of `ALL_KINDS` must have been produced (a kind the
//! generator cannot produce fails the test: add an action for it).
//!
//! The seed is printed; `AUTHLEDGER_MODEL_SEED=<n>` replays one sequence.

use std::collections::{BTreeMap, BTreeSet};
use std::time::Duration;

use base64::engine::general_purpose::URL_SAFE_NO_PAD as B64URL;
use base64::Engine as _;
use jsonwebtoken::{Algorithm, EncodingKey};
use rand::rngs::StdRng;
use rand::seq::SliceRandom as _;
use rand::{Rng as _, SeedableRng as _};
use reqwest::{Client, Method, StatusCode};
use serde_json::{json, Value};

use authledger::domain::ALL_KINDS;

use crate::end_user;
use crate::fixtures::oauth_provider::{
    no_redirect_client, ClientAuthMethod, ClientConfig, Consent, OAuthProvider, TokenFault,
};
use crate::harness::eventually;
use crate::support::{
    bootstrap_workspace, cli, follow_connect_url, request, Deployment, Hit, Reply, Stack, Upstream,
    BASE_ENV, NO_RATE_LIMIT, RETURN_TO,
};

/// The projection tables `replay` rebuilds (data keys are not projections).
const TABLES: &[&str] = &[
    "projection_offsets",
    "audit_events",
    "workspaces",
    "api_keys",
    "auth_configs",
    "auth_config_versions",
    "connections",
    "workspace_tools",
    "gateways",
    "gateway_keys",
    "approvals",
    "members",
    "webhooks",
    "dynamic_credentials",
];
/// Every sequence is at least this long, and stops once every kind was produced.
const MIN_STEPS: usize = 150;
const MAX_STEPS: usize = 600;
const TIMEOUT: Duration = Duration::from_secs(60);
const USERS: &[&str] = &["alice", "bob", "carol"];
const IDP_KID: &str = "model-idp";

fn envs(checkpoints: bool) -> Vec<(&'static str, &'static str)> {
    let mut envs = [BASE_ENV, NO_RATE_LIMIT].concat();
    envs.push(("AUTHLEDGER_REFRESH_ATTEMPTS", "2"));
    envs.push(("AUTHLEDGER_REFRESH_RETRY_MS", "10"));
    envs.push((
        "AUTHLEDGER_CHECKPOINT_SCHEDULE",
        if checkpoints { "* * * * * *" } else { "off" },
    ));
    envs
}

// ---------------------------------------------------------------------------------------------
// The model: what exists, as far as the test's own commands made it
// ---------------------------------------------------------------------------------------------

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum AuthKind {
    OAuth,
    Bearer,
}

#[derive(Debug)]
struct Config {
    id: String,
    kind: AuthKind,
    /// The OAuth client registered at the test provider for this config.
    client_id: String,
    enabled: bool,
    narrowed: bool,
    token_release: bool,
}

#[derive(Debug, Clone, PartialEq, Eq)]
enum ConnStatus {
    /// Connect flow started: the URL the user's browser follows.
    Initiated(String),
    Active,
    /// Needs the user again (needs_reconsent, expired, error): deletable only.
    Stale,
}

#[derive(Debug)]
struct Connection {
    id: String,
    config: String,
    user: String,
    status: ConnStatus,
}

#[derive(Debug)]
struct Token {
    id: String,
    token: String,
}

#[derive(Debug, Default)]
struct Model {
    /// Whether the first admin has set a console password (through `serve`'s link).
    console_joined: bool,
    store_responses: bool,
    idp: bool,
    /// Non-admin keys that can be revoked: (id, role).
    keys: Vec<(String, String)>,
    configs: Vec<Config>,
    connections: Vec<Connection>,
    tokens: Vec<Token>,
    /// Workspace tools defined: (name, destructive).
    tools: Vec<(String, bool)>,
    gateways: Vec<String>,
    /// Pending approvals: (id, user).
    approvals: Vec<(String, String)>,
    next: usize,
}

impl Model {
    fn fresh(&mut self, prefix: &str) -> String {
        self.next += 1;
        format!("{prefix}{}", self.next)
    }

    fn live_configs(&self) -> impl Iterator<Item = &Config> {
        self.configs.iter()
    }

    fn config(&self, id: &str) -> Option<&Config> {
        self.configs.iter().find(|c| c.id == id)
    }

    /// Active connections whose config is enabled, of `kind`.
    fn usable(&self, kind: AuthKind) -> Vec<&Connection> {
        self.connections
            .iter()
            .filter(|c| c.status == ConnStatus::Active)
            .filter(|c| {
                self.config(&c.config)
                    .is_some_and(|cfg| cfg.enabled && cfg.kind == kind)
            })
            .collect()
    }
}

#[derive(Debug, Clone, Copy)]
enum Action {
    ToggleToolResponseStorage,
    ConfigureIdentityProvider,
    NewWorkspace,
    CreateApiKey,
    RevokeApiKey,
    Refused,
    CreateOAuthConfig,
    CreateBearerConfig,
    RenameConfig,
    RotateClientSecret,
    DisableConfig,
    EnableConfig,
    NarrowScopes,
    DeleteConfig,
    StartConnect,
    FinishConnect,
    DenyConnect,
    CredentialConnection,
    Refresh,
    RefreshFails,
    RefreshGrantDead,
    RevokeConnection,
    DeleteConnection,
    QueryAudit,
    DefineTool,
    RemoveTool,
    CallTool,
    IssueToken,
    UseToken,
    RevokeToken,
    AskApproval,
    Approve,
    DenyApproval,
    DefineGateway,
    DeleteGateway,
    ReleaseToken,
    Restart,
    RotateSigningKey,
    Witness,
    ConsoleSession,
    Webhook,
    TestConnector,
    DynamicCredential,
}

impl Action {
    /// Whether the model holds what this action needs.
    fn possible(self, m: &Model) -> bool {
        let oauth_configs = || {
            m.configs
                .iter()
                .any(|c| c.kind == AuthKind::OAuth && c.enabled)
        };
        let has_tool = |destructive: bool| m.tools.iter().any(|t| t.1 == destructive);
        match self {
            Action::RevokeApiKey => !m.keys.is_empty(),
            Action::RenameConfig | Action::DeleteConfig => !m.configs.is_empty(),
            Action::RotateClientSecret => m.configs.iter().any(|c| c.kind == AuthKind::OAuth),
            Action::DisableConfig => m.configs.iter().any(|c| c.enabled),
            Action::EnableConfig => m.configs.iter().any(|c| !c.enabled),
            Action::NarrowScopes => m.configs.iter().any(|c| {
                c.kind == AuthKind::OAuth
                    && !c.narrowed
                    && m.connections
                        .iter()
                        .any(|x| x.config == c.id && x.status == ConnStatus::Active)
            }),
            Action::StartConnect => oauth_configs(),
            Action::FinishConnect | Action::DenyConnect => m
                .connections
                .iter()
                .any(|c| matches!(c.status, ConnStatus::Initiated(_))),
            Action::CredentialConnection => m
                .configs
                .iter()
                .any(|c| c.kind == AuthKind::Bearer && c.enabled),
            Action::Refresh | Action::RefreshFails | Action::RefreshGrantDead => {
                !m.usable(AuthKind::OAuth).is_empty()
            }
            Action::RevokeConnection => {
                m.connections.iter().any(|c| c.status == ConnStatus::Active)
            }
            Action::DeleteConnection => !m.connections.is_empty(),
            Action::RemoveTool => !m.tools.is_empty(),
            Action::CallTool | Action::IssueToken => {
                has_tool(false) && !m.usable(AuthKind::Bearer).is_empty()
            }
            Action::AskApproval => has_tool(true) && !m.usable(AuthKind::Bearer).is_empty(),
            Action::UseToken | Action::RevokeToken => !m.tokens.is_empty(),
            Action::Approve | Action::DenyApproval => !m.approvals.is_empty() && m.idp,
            Action::DefineGateway => has_tool(false) && !m.configs.is_empty(),
            Action::DeleteGateway => !m.gateways.is_empty(),
            Action::ReleaseToken => m
                .usable(AuthKind::OAuth)
                .iter()
                .any(|c| m.config(&c.config).is_some_and(|cfg| cfg.token_release)),
            _ => true,
        }
    }

    /// The kinds (or kind prefixes) this action writes or is a step towards.
    fn leads_to(self) -> &'static [&'static str] {
        match self {
            Action::ToggleToolResponseStorage => &[
                "workspace.tool_response_storage_set",
                "workspace.agent_connect_flows_set",
            ],
            Action::ConfigureIdentityProvider => {
                &["workspace.identity_provider_configured", "approval."]
            }
            Action::NewWorkspace => &["workspace.created"],
            Action::CreateApiKey => &["api_key.created", "api_key.revoked", "idempotency."],
            Action::RevokeApiKey => &["api_key.revoked"],
            Action::Refused => &["access.denied"],
            Action::CreateOAuthConfig => &["auth_config.", "connection.", "credential.released"],
            Action::CreateBearerConfig => &[
                "auth_config.",
                "connection.",
                "tool.",
                "token.",
                "approval.",
                "gateway.",
            ],
            Action::RenameConfig => &["auth_config.updated"],
            Action::RotateClientSecret => &["auth_config.client_secret_rotated"],
            Action::DisableConfig => &["auth_config.disabled", "auth_config.enabled"],
            Action::EnableConfig => &["auth_config.enabled"],
            Action::NarrowScopes => &["connection.needs_reconsent"],
            Action::DeleteConfig => &["auth_config.deleted"],
            Action::StartConnect => &["connection.", "credential.released"],
            Action::FinishConnect => &[
                "connection.authorization_started",
                "connection.authorized",
                "connection.refresh",
                "connection.expired",
                "connection.needs_reconsent",
                "credential.released",
            ],
            Action::DenyConnect => &["connection.authorization_failed"],
            Action::CredentialConnection => &["connection.", "tool.", "token.", "approval."],
            Action::Refresh => &["connection.refresh_started", "connection.refreshed"],
            Action::RefreshFails => &["connection.refresh_failed"],
            Action::RefreshGrantDead => &["connection.expired"],
            Action::RevokeConnection => &["connection.revoked"],
            Action::DeleteConnection => &["connection.deleted"],
            Action::QueryAudit => &["audit.queried"],
            Action::DefineTool => &["tool.", "token.", "approval.", "gateway."],
            Action::RemoveTool => &["tool.removed"],
            Action::CallTool => &[
                "tool.requested",
                "tool.completed",
                "tool.undo_requested",
                "tool.undone",
            ],
            Action::IssueToken => &["token."],
            Action::UseToken => &["token.used"],
            Action::RevokeToken => &["token.revoked"],
            Action::AskApproval | Action::Approve | Action::DenyApproval => &["approval."],
            Action::DefineGateway => &["gateway."],
            Action::DeleteGateway => &["gateway.deleted"],
            Action::ReleaseToken => &["credential.released"],
            Action::Restart => &[],
            Action::RotateSigningKey => &["signing_key.rotated"],
            Action::Witness => &["checkpoint.cosigned", "ledger.checkpoint"],
            Action::ConsoleSession => &["member."],
            Action::Webhook => &["webhook."],
            Action::TestConnector => &["auth_config.tested"],
            Action::DynamicCredential => &[
                "credential.issued",
                "credential.drop_started",
                "credential.expired",
                "credential.revoked",
            ],
        }
    }

    /// How often it is picked among the possible ones.
    fn weight(self) -> u32 {
        match self {
            Action::Restart
            | Action::RotateSigningKey
            | Action::NewWorkspace
            | Action::DynamicCredential => 1,
            Action::Witness => 2,
            Action::DeleteConfig | Action::RefreshGrantDead | Action::NarrowScopes => 2,
            Action::CreateOAuthConfig
            | Action::CreateBearerConfig
            | Action::StartConnect
            | Action::FinishConnect
            | Action::CredentialConnection
            | Action::DefineTool
            | Action::CallTool
            | Action::IssueToken
            | Action::UseToken => 6,
            _ => 3,
        }
    }
}

const ACTIONS: &[Action] = &[
    Action::ToggleToolResponseStorage,
    Action::ConfigureIdentityProvider,
    Action::NewWorkspace,
    Action::CreateApiKey,
    Action::RevokeApiKey,
    Action::Refused,
    Action::CreateOAuthConfig,
    Action::CreateBearerConfig,
    Action::RenameConfig,
    Action::RotateClientSecret,
    Action::DisableConfig,
    Action::EnableConfig,
    Action::NarrowScopes,
    Action::DeleteConfig,
    Action::StartConnect,
    Action::FinishConnect,
    Action::DenyConnect,
    Action::CredentialConnection,
    Action::Refresh,
    Action::RefreshFails,
    Action::RefreshGrantDead,
    Action::RevokeConnection,
    Action::DeleteConnection,
    Action::QueryAudit,
    Action::DefineTool,
    Action::RemoveTool,
    Action::CallTool,
    Action::IssueToken,
    Action::UseToken,
    Action::RevokeToken,
    Action::AskApproval,
    Action::Approve,
    Action::DenyApproval,
    Action::DefineGateway,
    Action::DeleteGateway,
    Action::ReleaseToken,
    Action::Restart,
    Action::RotateSigningKey,
    Action::Witness,
    Action::ConsoleSession,
    Action::Webhook,
    Action::TestConnector,
    Action::DynamicCredential,
];

// ---------------------------------------------------------------------------------------------
// The world: the service and the real peers it talks to
// ---------------------------------------------------------------------------------------------

struct World {
    d: Deployment,
    http: Client,
    provider: OAuthProvider,
    upstream: Upstream,
    idp_key: EncodingKey,
    jwks_url: String,
    /// The organisation's OIDC provider for team SSO (started at the first console session).
    sso: Option<crate::fixtures::oidc_provider::OidcProvider>,
    agent: String,
    auditor: String,
    m: Model,
    rng: StdRng,
    seed: u64,
}

impl World {
    async fn start(stack: Stack, seed: u64) -> World {
        let d = Deployment::start(stack, &envs(true)).await;
        let provider = OAuthProvider::start(Default::default()).await;
        let upstream = Upstream::start(|hit: Hit| async move {
            axum::response::IntoResponse::into_response(axum::Json(
                json!({ "ok": true, "method": hit.method, "path": hit.path }),
            ))
        })
        .await;
        let idp = ed25519_dalek::SigningKey::generate(&mut rand::rngs::OsRng);
        let jwk = json!({ "kty": "OKP", "kid": IDP_KID, "crv": "Ed25519", "alg": "EdDSA",
            "x": B64URL.encode(idp.verifying_key().as_bytes()) });
        let jwks_url = end_user::serve_jwks(json!({ "keys": [jwk] })).await;
        let idp_key = {
            use ed25519_dalek::pkcs8::EncodePrivateKey as _;
            EncodingKey::from_ed_der(idp.to_pkcs8_der().expect("der").as_bytes())
        };
        let mut w = World {
            d,
            http: Client::new(),
            provider,
            upstream,
            idp_key,
            jwks_url,
            sso: None,
            agent: String::new(),
            auditor: String::new(),
            m: Model::default(),
            rng: StdRng::seed_from_u64(seed),
            seed,
        };
        let r = w
            .admin(
                Method::POST,
                "/v1/api-keys",
                Some(json!({ "name": "agent", "role": "agent" })),
            )
            .await;
        w.agent = w.ok(r, StatusCode::CREATED, "agent key").str("key");
        let r = w
            .admin(
                Method::POST,
                "/v1/api-keys",
                Some(json!({ "name": "witness", "role": "auditor" })),
            )
            .await;
        w.auditor = w.ok(r, StatusCode::CREATED, "auditor key").str("key");
        w
    }

    async fn call(&self, bearer: &str, method: Method, path: &str, body: Option<Value>) -> Reply {
        Reply::of(request(&self.http, &self.d.svc, bearer, method, path, body)).await
    }

    async fn admin(&self, method: Method, path: &str, body: Option<Value>) -> Reply {
        self.call(&self.d.admin, method, path, body).await
    }

    #[track_caller]
    fn ok(&self, r: Reply, status: StatusCode, what: &str) -> Reply {
        assert_eq!(r.status, status, "seed {}: {what}: {}", self.seed, r.text);
        r
    }

    /// A PostgreSQL connector auth config at a closed port (not in the model: no other
    /// action uses it), tested: `auth_config.tested`, failed as `unreachable`.
    async fn test_connector(&mut self) {
        let port = crate::harness::free_port();
        let body = json!({
            "name": self.m.fresh("db-"), "provider": "postgres", "auth_type": "connector",
            "connector": { "id": "postgres",
                           "settings": { "host": "127.0.0.1", "port": port, "ssl_mode": "disable" } },
        });
        let r = self
            .admin(Method::POST, "/v1/auth-configs", Some(body))
            .await;
        let id = self
            .ok(r, StatusCode::CREATED, "connector config")
            .str("id");
        let credentials = json!({ "credentials": { "user": "u", "password": "p" } });
        let r = self
            .admin(
                Method::POST,
                &format!("/v1/auth-configs/{id}/test"),
                Some(credentials),
            )
            .await;
        let r = self.ok(r, StatusCode::OK, "connector test");
        assert_eq!(
            r.body["class"], "unreachable",
            "seed {}: {}",
            self.seed, r.text
        );
    }

    fn pick<'a, T>(&mut self, items: &'a [T]) -> &'a T {
        items
            .choose(&mut self.rng)
            .expect("the action was possible")
    }

    fn user(&mut self) -> String {
        (*self.pick(USERS)).to_string()
    }

    /// An end user's JWT from the workspace's identity provider.
    fn jwt(&self, user: &str) -> String {
        end_user::token(
            Algorithm::EdDSA,
            IDP_KID,
            &self.idp_key,
            &end_user::claims(user, end_user::ISSUER, end_user::AUDIENCE, 300),
        )
    }

    fn register_client(&self, client_id: &str, secret: &str) {
        self.provider.register_client(
            ClientConfig::new(client_id, secret, ClientAuthMethod::ClientSecretBasic)
                .redirect_uri(&self.d.svc.url("/v1/oauth/callback"))
                .scopes(&["read", "write"]),
        );
    }

    /// A possible action, by weight; once kinds are known to be missing, the actions on
    /// the way to them weigh far more (so coverage does not depend on luck).
    fn choose(&mut self, missing: &[&str]) -> Action {
        let possible: Vec<Action> = ACTIONS
            .iter()
            .copied()
            .filter(|a| a.possible(&self.m))
            .collect();
        let boost = |a: &Action| {
            let serves = a
                .leads_to()
                .iter()
                .any(|k| missing.iter().any(|m| m.starts_with(k)));
            a.weight() * if serves { 25 } else { 1 }
        };
        *possible
            .choose_weighted(&mut self.rng, boost)
            .expect("some action is always possible")
    }
}

impl World {
    /// The first admin in the console: signs up through `serve`'s link once, later signs
    /// in; invites a member, changes its role, removes it; then signs out, each form with
    /// the page's CSRF token (`member.*` events).
    async fn console_session(&mut self) {
        let http = Client::builder()
            .redirect(reqwest::redirect::Policy::none())
            .build()
            .expect("client");
        let origin = self.d.svc.url("").trim_end_matches('/').to_string();
        let (cookie, csrf) = self.console_entry(&http, &origin).await;
        let post = |path: &str, form: Vec<(&str, &str)>, cookie: &str| {
            http.post(format!("{origin}{path}"))
                .header("cookie", cookie)
                .header("origin", &origin)
                .form(&form)
                .send()
        };
        // A member invited, given another role, removed (each ends the member's sessions).
        let email = format!("member{}@example.com", self.rng.gen::<u32>());
        let id = authledger::domain::member::member_id(&email);
        let team_forms: [(&str, Vec<(&str, &str)>); 3] = [
            (
                "/console/team/invites",
                vec![("email", email.as_str()), ("role", "viewer")],
            ),
            (
                "/console/team/role",
                vec![("member", id.as_str()), ("role", "developer")],
            ),
            ("/console/team/remove", vec![("member", id.as_str())]),
        ];
        for (path, mut form) in team_forms {
            form.push(("csrf", csrf.as_str()));
            let r = post(path, form, &cookie).await.expect("team form");
            assert_eq!(r.status(), StatusCode::OK, "seed {}: {path}", self.seed);
        }
        // The admin sets up a second factor and resets it (which ends the session).
        let account = self.console_page(&http, &cookie, "/console/account").await;
        let (key, end, proof) = (
            form_value(&account, "key"),
            form_value(&account, "end"),
            form_value(&account, "proof"),
        );
        let code = totp_code(&key);
        let setup = vec![
            ("csrf", csrf.as_str()),
            ("key", key.as_str()),
            ("end", end.as_str()),
            ("proof", proof.as_str()),
            ("code", code.as_str()),
        ];
        let r = post("/console/account/second-factor", setup, &cookie)
            .await
            .expect("set up");
        assert_eq!(
            r.status(),
            StatusCode::OK,
            "seed {}: second factor",
            self.seed
        );
        // The workspace requires it of everyone, then leaves it to each member again.
        for required in ["true", "false"] {
            let form = vec![("csrf", csrf.as_str()), ("required", required)];
            let r = post("/console/team/second-factor/requirement", form, &cookie)
                .await
                .expect("requirement");
            assert_eq!(
                r.status(),
                StatusCode::OK,
                "seed {}: requirement",
                self.seed
            );
        }
        let admin = authledger::domain::member::member_id("admin@example.com");
        let reset = vec![("csrf", csrf.as_str()), ("member", admin.as_str())];
        let r = post("/console/team/second-factor/reset", reset, &cookie)
            .await
            .expect("reset");
        assert_eq!(r.status(), StatusCode::OK, "seed {}: reset", self.seed);
        let (cookie, csrf) = self.console_entry(&http, &origin).await;
        // Team SSO set up (a new client secret each time), then the admin signs in with it.
        let (cookie, csrf) = self.team_sso(&http, &origin, (&cookie, &csrf)).await;
        // End users' browser sign-in on the same provider; one signs in at /me/ and out.
        self.end_user_sign_in(&http, &origin, (&cookie, &csrf))
            .await;
        let out = post("/console/sign-out", vec![("csrf", csrf.as_str())], &cookie)
            .await
            .expect("sign out");
        assert_eq!(
            out.status(),
            StatusCode::SEE_OTHER,
            "seed {}: sign out",
            self.seed
        );
    }

    /// Gives the end users' identity provider a browser client on the Identity provider
    /// screen (`workspace.identity_provider_configured`), then an end user signs in at
    /// `/me/` through the provider (`end_user.signed_in`) and signs out
    /// (`end_user.signed_out`).
    async fn end_user_sign_in(
        &mut self,
        http: &Client,
        origin: &str,
        (cookie, csrf): (&str, &str),
    ) {
        use crate::fixtures::oidc_provider::OidcClient;
        let provider = self.sso.as_ref().expect("the team SSO provider");
        provider.register(OidcClient {
            client_id: "model-me".into(),
            client_secret: "model-me-secret".into(),
            redirect_uris: vec![format!("{origin}/me/callback")],
        });
        let issuer = provider.issuer.clone();
        let jwks = format!("{issuer}/jwks");
        let form = [
            ("csrf", csrf),
            ("issuer", issuer.as_str()),
            ("audience", "model-end-users"),
            ("jwks_url", jwks.as_str()),
            ("client_id", "model-me"),
            ("client_secret", "model-me-secret"),
        ];
        let r = http
            .post(format!("{origin}/console/identity-provider/end-users"))
            .header("cookie", cookie)
            .header("origin", origin)
            .form(&form)
            .send()
            .await
            .expect("end users' provider");
        assert_eq!(
            r.status(),
            StatusCode::OK,
            "seed {}: end users' provider",
            self.seed
        );
        let location = |r: &reqwest::Response| {
            r.headers()
                .get("location")
                .and_then(|v| v.to_str().ok())
                .expect("a redirect")
                .to_string()
        };
        let cookie_of = |r: &reqwest::Response, name: &str| {
            r.headers()
                .get_all("set-cookie")
                .iter()
                .filter_map(|v| v.to_str().ok())
                .find(|v| v.starts_with(&format!("{name}=")))
                .and_then(|v| v.split(';').next())
                .unwrap_or_else(|| panic!("no {name} cookie"))
                .to_string()
        };
        let ws = self.d.workspace.clone();
        let started = http
            .get(format!("{origin}/me/sign-in/start?workspace={ws}"))
            .send()
            .await
            .expect("/me/ sign-in start");
        assert_eq!(
            started.status(),
            StatusCode::SEE_OTHER,
            "seed {}: /me/ start",
            self.seed
        );
        let flow_cookie = cookie_of(&started, "authledger_me_flow");
        let authorize = reqwest::Url::parse(&location(&started)).expect("authorize URL");
        let mut login: Vec<(String, String)> = authorize.query_pairs().into_owned().collect();
        login.push(("email".into(), "admin@example.com".into()));
        login.push(("action".into(), "login".into()));
        let back = http
            .post(format!("{issuer}/authorize"))
            .form(&login)
            .send()
            .await
            .expect("provider login");
        assert_eq!(
            back.status(),
            StatusCode::SEE_OTHER,
            "seed {}: login",
            self.seed
        );
        let callback = http
            .get(location(&back))
            .header("cookie", &flow_cookie)
            .send()
            .await
            .expect("callback");
        assert_eq!(
            callback.status(),
            StatusCode::SEE_OTHER,
            "seed {}: /me/ callback",
            self.seed
        );
        let session = cookie_of(&callback, "authledger_me");
        let page = http
            .get(format!("{origin}/me/"))
            .header("cookie", &session)
            .send()
            .await
            .expect("/me/");
        assert_eq!(page.status(), StatusCode::OK, "seed {}: /me/", self.seed);
        let page = page.text().await.expect("page");
        let me_csrf = form_value(&page, "csrf");
        let out = http
            .post(format!("{origin}/me/sign-out"))
            .header("cookie", &session)
            .header("origin", origin)
            .form(&[("csrf", me_csrf.as_str())])
            .send()
            .await
            .expect("/me/ sign out");
        assert_eq!(
            out.status(),
            StatusCode::SEE_OTHER,
            "seed {}: /me/ sign out",
            self.seed
        );
        // The model's own end users' provider (its JWTs, no browser client): connect links
        // stay bearer capabilities the model opens without signing in (bound links have
        // their own test, `bound_links`). `client_id: null` turns browser sign-in off (left
        // out, it would stay).
        let body = json!({ "issuer": end_user::ISSUER, "audience": end_user::AUDIENCE,
            "jwks_url": self.jwks_url, "client_id": null });
        let r = self
            .admin(Method::PUT, "/v1/workspace/identity-provider", Some(body))
            .await;
        self.ok(r, StatusCode::OK, "identity provider again");
        self.m.idp = true;
    }

    /// Configures team SSO on the Identity provider screen (`workspace.team_sso_configured`)
    /// and signs the admin in through the provider (`member.sso_linked` the first time,
    /// `member.signed_in`): the new session's cookie and CSRF token.
    async fn team_sso(
        &mut self,
        http: &Client,
        origin: &str,
        (cookie, csrf): (&str, &str),
    ) -> (String, String) {
        use crate::fixtures::oidc_provider::{OidcClient, OidcConfig, OidcProvider, OidcUser};
        let page = self
            .console_page(http, cookie, "/console/identity-provider")
            .await;
        let redirect_uri = page
            .split("id=\"redirect-uri\" readonly value=\"")
            .nth(1)
            .and_then(|rest| rest.split('"').next())
            .expect("the redirect URI")
            .replace("&#x2f;", "/")
            .replace("&#47;", "/")
            .replace("&#38;", "&")
            .replace("&amp;", "&");
        if self.sso.is_none() {
            self.sso = Some(
                OidcProvider::start(OidcConfig {
                    clients: vec![OidcClient {
                        client_id: "model-console".into(),
                        client_secret: "model-sso-secret".into(),
                        redirect_uris: vec![redirect_uri],
                    }],
                    users: vec![OidcUser::new("admin@example.com", "model-admin")],
                    ..OidcConfig::default()
                })
                .await,
            );
        }
        let issuer = self.sso.as_ref().expect("provider").issuer.clone();
        let form = [
            ("csrf", csrf),
            ("issuer", issuer.as_str()),
            ("client_id", "model-console"),
            ("client_secret", "model-sso-secret"),
            ("enabled", "on"),
        ];
        let r = http
            .post(format!("{origin}/console/identity-provider/team-sso"))
            .header("cookie", cookie)
            .header("origin", origin)
            .form(&form)
            .send()
            .await
            .expect("team sso");
        assert_eq!(r.status(), StatusCode::OK, "seed {}: team SSO", self.seed);
        let location = |r: &reqwest::Response| {
            r.headers()
                .get("location")
                .and_then(|v| v.to_str().ok())
                .expect("a redirect")
                .to_string()
        };
        let ws = self.d.workspace.clone();
        let started = http
            .post(format!("{origin}/console/sso/start"))
            .header("origin", origin)
            .form(&[("workspace", ws.as_str())])
            .send()
            .await
            .expect("sso start");
        assert_eq!(
            started.status(),
            StatusCode::OK,
            "seed {}: sso start",
            self.seed
        );
        let flow_cookie = started
            .headers()
            .get("set-cookie")
            .and_then(|v| v.to_str().ok())
            .and_then(|v| v.split(';').next())
            .expect("the flow cookie")
            .to_string();
        // The page moves on to the provider by itself; its link is where it goes.
        let page = started.text().await.expect("the continue page");
        let href = page
            .split("id=\"continue\" href=\"")
            .nth(1)
            .and_then(|rest| rest.split('"').next())
            .expect("the provider's URL")
            .replace("&#x2f;", "/")
            .replace("&#47;", "/")
            .replace("&#38;", "&")
            .replace("&amp;", "&");
        let authorize = reqwest::Url::parse(&href).expect("authorize URL");
        let mut login: Vec<(String, String)> = authorize.query_pairs().into_owned().collect();
        login.push(("email".into(), "admin@example.com".into()));
        login.push(("action".into(), "login".into()));
        let back = http
            .post(format!("{issuer}/authorize"))
            .form(&login)
            .send()
            .await
            .expect("provider login");
        assert_eq!(
            back.status(),
            StatusCode::SEE_OTHER,
            "seed {}: provider login for {login:?}",
            self.seed
        );
        let callback = http
            .get(location(&back))
            .header("cookie", &flow_cookie)
            .send()
            .await
            .expect("callback");
        assert_eq!(
            callback.status(),
            StatusCode::SEE_OTHER,
            "seed {}: sso callback",
            self.seed
        );
        let session = callback
            .headers()
            .get_all("set-cookie")
            .iter()
            .filter_map(|v| v.to_str().ok())
            .find(|v| v.starts_with("authledger_session="))
            .and_then(|v| v.split(';').next())
            .expect("a session")
            .to_string();
        let page = self.console_page(http, &session, "/console/").await;
        let csrf = form_value(&page, "csrf");
        (session, csrf)
    }

    /// The first admin enters the console: signs up through `serve`'s link the first time,
    /// signs in later. The session cookie and the pages' CSRF token.
    async fn console_entry(&mut self, http: &Client, origin: &str) -> (String, String) {
        const PASSWORD: &str = "model password 1234";
        let ws = self.d.workspace.clone();
        let entered = if self.m.console_joined {
            let form = [
                ("workspace", ws.as_str()),
                ("email", "admin@example.com"),
                ("password", PASSWORD),
            ];
            http.post(self.d.svc.url("/console/sign-in")).form(&form)
        } else {
            let invite = self
                .d
                .console_sign_up
                .split("invite=")
                .nth(1)
                .expect("invite");
            http.post(self.d.svc.url("/console/sign-up"))
                .form(&[("invite", invite), ("password", PASSWORD)])
        }
        .header("origin", origin)
        .send()
        .await
        .expect("console");
        assert_eq!(
            entered.status(),
            StatusCode::SEE_OTHER,
            "seed {}: console entry",
            self.seed
        );
        self.m.console_joined = true;
        let cookie = entered
            .headers()
            .get("set-cookie")
            .and_then(|v| v.to_str().ok())
            .and_then(|v| v.split(';').next())
            .expect("session cookie")
            .to_string();
        let page = self.console_page(http, &cookie, "/console/").await;
        let csrf = form_value(&page, "csrf");
        (cookie, csrf)
    }

    async fn console_page(&self, http: &Client, cookie: &str, path: &str) -> String {
        http.get(self.d.svc.url(path))
            .header("cookie", cookie)
            .send()
            .await
            .expect(path)
            .text()
            .await
            .expect("html")
    }
}

/// The value of the first hidden form field `name` in a console page.
fn form_value(page: &str, name: &str) -> String {
    page.split(&format!("name=\"{name}\" value=\""))
        .nth(1)
        .and_then(|rest| rest.split('"').next())
        .unwrap_or_else(|| panic!("no {name} field in the page"))
        .to_string()
}

/// The current code of a TOTP authenticator for the base32 `key` (as an app computes it).
fn totp_code(key: &str) -> String {
    let secret = totp_rs::Secret::Encoded(key.to_string())
        .to_bytes()
        .expect("a base32 key");
    totp_rs::TOTP::new(totp_rs::Algorithm::SHA1, 6, 1, 30, secret)
        .expect("totp")
        .generate_current()
        .expect("the time")
}

// ---------------------------------------------------------------------------------------------
// The actions
// ---------------------------------------------------------------------------------------------

impl World {
    async fn run(&mut self, action: Action) {
        match action {
            Action::ToggleToolResponseStorage => {
                let on = !self.m.store_responses;
                let r = self
                    .admin(
                        Method::PUT,
                        "/v1/workspace/tool-response-storage",
                        Some(json!({ "store_tool_responses": on })),
                    )
                    .await;
                self.ok(r, StatusCode::OK, "tool response storage");
                // Agents' connect flows for any user follow the same switch.
                let r = self
                    .admin(
                        Method::PUT,
                        "/v1/workspace/agent-connect-flows",
                        Some(json!({ "any_user": on })),
                    )
                    .await;
                self.ok(r, StatusCode::OK, "agent connect flows");
                self.m.store_responses = on;
            }
            Action::ConfigureIdentityProvider => {
                let body = json!({ "issuer": end_user::ISSUER, "audience": end_user::AUDIENCE,
                    "jwks_url": self.jwks_url });
                let r = self
                    .admin(Method::PUT, "/v1/workspace/identity-provider", Some(body))
                    .await;
                self.ok(r, StatusCode::OK, "identity provider");
                self.m.idp = true;
            }
            Action::NewWorkspace => {
                let name = self.m.fresh("Workspace ");
                bootstrap_workspace(&self.d.storage, &name).await;
            }
            Action::CreateApiKey => {
                let role = *self.pick(&["developer", "viewer", "auditor", "agent"]);
                let body = json!({ "name": format!("{role} key"), "role": role });
                // With an Idempotency-Key, sent twice: one key, the second answer replayed.
                let key = format!("model-{}", self.rng.gen::<u64>());
                let keyed = || {
                    let req = request(
                        &self.http,
                        &self.d.svc,
                        &self.d.admin,
                        Method::POST,
                        "/v1/api-keys",
                        Some(body.clone()),
                    );
                    Reply::of(req.header("Idempotency-Key", key.as_str()))
                };
                let r = keyed().await;
                let id = self.ok(r, StatusCode::CREATED, "api key").str("id");
                let again = self.ok(keyed().await, StatusCode::CREATED, "api key replayed");
                assert_eq!(
                    again.str("id"),
                    id,
                    "seed {}: the replay is the same key",
                    self.seed
                );
                self.m.keys.push((id, role.to_string()));
            }
            Action::RevokeApiKey => {
                let i = self.rng.gen_range(0..self.m.keys.len());
                let (id, _) = self.m.keys.remove(i);
                let r = self
                    .admin(Method::DELETE, &format!("/v1/api-keys/{id}"), None)
                    .await;
                assert!(
                    r.status.is_success(),
                    "seed {}: revoke key: {}",
                    self.seed,
                    r.text
                );
            }
            Action::Refused => {
                let r = self
                    .call("not-a-key", Method::GET, "/v1/auth-configs", None)
                    .await;
                self.ok(r, StatusCode::UNAUTHORIZED, "refused");
            }
            Action::CreateOAuthConfig => self.create_oauth_config().await,
            Action::CreateBearerConfig => {
                let body = json!({ "name": self.m.fresh("bearer "), "provider": "custom",
                    "auth_type": "bearer_token", "bearer_token": {} });
                let r = self
                    .admin(Method::POST, "/v1/auth-configs", Some(body))
                    .await;
                let id = self.ok(r, StatusCode::CREATED, "bearer config").str("id");
                self.m.configs.push(Config {
                    id,
                    kind: AuthKind::Bearer,
                    client_id: String::new(),
                    enabled: true,
                    narrowed: false,
                    token_release: false,
                });
            }
            Action::RenameConfig => {
                let id = self.m.configs[self.rng.gen_range(0..self.m.configs.len())]
                    .id
                    .clone();
                let name = self.m.fresh("renamed ");
                let r = self
                    .admin(
                        Method::PATCH,
                        &format!("/v1/auth-configs/{id}"),
                        Some(json!({ "name": name })),
                    )
                    .await;
                self.ok(r, StatusCode::OK, "rename config");
            }
            Action::RotateClientSecret => self.rotate_client_secret().await,
            Action::DisableConfig | Action::EnableConfig => {
                let enable = matches!(action, Action::EnableConfig);
                let ids: Vec<String> = self
                    .m
                    .configs
                    .iter()
                    .filter(|c| c.enabled != enable)
                    .map(|c| c.id.clone())
                    .collect();
                let id = self.pick(&ids).clone();
                let verb = if enable { "enable" } else { "disable" };
                let r = self
                    .admin(Method::POST, &format!("/v1/auth-configs/{id}/{verb}"), None)
                    .await;
                self.ok(r, StatusCode::OK, verb);
                if let Some(c) = self.m.configs.iter_mut().find(|c| c.id == id) {
                    c.enabled = enable;
                }
            }
            Action::NarrowScopes => self.narrow_scopes().await,
            Action::DeleteConfig => self.delete_config().await,
            Action::StartConnect => self.start_connect().await,
            Action::FinishConnect | Action::DenyConnect => {
                self.finish_connect(matches!(action, Action::FinishConnect))
                    .await
            }
            Action::CredentialConnection => self.credential_connection().await,
            Action::Refresh | Action::RefreshFails | Action::RefreshGrantDead => {
                self.refresh(action).await
            }
            Action::RevokeConnection => self.revoke_connection().await,
            Action::DeleteConnection => self.delete_connection().await,
            Action::QueryAudit => {
                let r = self
                    .admin(Method::GET, "/v1/audit/events?limit=5", None)
                    .await;
                self.ok(r, StatusCode::OK, "audit query");
            }
            Action::TestConnector => self.test_connector().await,
            Action::DefineTool => self.define_tool().await,
            Action::RemoveTool => {
                let i = self.rng.gen_range(0..self.m.tools.len());
                let (name, _) = self.m.tools.remove(i);
                let r = self
                    .admin(Method::DELETE, &format!("/v1/tools/{name}"), None)
                    .await;
                assert!(
                    r.status.is_success(),
                    "seed {}: remove tool: {}",
                    self.seed,
                    r.text
                );
            }
            Action::CallTool => self.call_tool().await,
            Action::IssueToken => self.issue_token().await,
            Action::UseToken => self.use_token().await,
            Action::RevokeToken => {
                let i = self.rng.gen_range(0..self.m.tokens.len());
                let t = self.m.tokens.remove(i);
                let r = self
                    .call(
                        &self.agent,
                        Method::POST,
                        &format!("/v1/tokens/{}/revoke", t.id),
                        Some(json!({})),
                    )
                    .await;
                assert!(
                    r.status.is_success(),
                    "seed {}: revoke token: {}",
                    self.seed,
                    r.text
                );
            }
            Action::AskApproval => self.ask_approval().await,
            Action::Approve | Action::DenyApproval => {
                let i = self.rng.gen_range(0..self.m.approvals.len());
                let (id, user) = self.m.approvals.remove(i);
                let verb = if matches!(action, Action::Approve) {
                    "approve"
                } else {
                    "deny"
                };
                let r = Reply::of(
                    self.http
                        .post(self.d.svc.url(&format!("/v1/approvals/{id}/{verb}")))
                        .bearer_auth(self.jwt(&user))
                        .header("Authledger-Workspace", self.d.workspace.as_str()),
                )
                .await;
                self.ok(r, StatusCode::OK, verb);
            }
            Action::DefineGateway => self.define_gateway().await,
            Action::DeleteGateway => {
                let i = self.rng.gen_range(0..self.m.gateways.len());
                let id = self.m.gateways.remove(i);
                let r = self
                    .admin(Method::DELETE, &format!("/v1/gateways/{id}"), None)
                    .await;
                assert!(
                    r.status.is_success(),
                    "seed {}: delete gateway: {}",
                    self.seed,
                    r.text
                );
            }
            Action::ReleaseToken => {
                let ids: Vec<String> = self
                    .m
                    .usable(AuthKind::OAuth)
                    .iter()
                    .filter(|c| {
                        self.m
                            .config(&c.config)
                            .is_some_and(|cfg| cfg.token_release)
                    })
                    .map(|c| c.id.clone())
                    .collect();
                let id = self.pick(&ids).clone();
                let r = self
                    .call(
                        &self.agent,
                        Method::POST,
                        &format!("/v1/connections/{id}/access-token"),
                        None,
                    )
                    .await;
                self.ok(r, StatusCode::OK, "token release");
            }
            Action::Restart => self.d.restart(&envs(true)).await,
            Action::RotateSigningKey => {
                let _ = self.d.svc.child.kill();
                let _ = self.d.svc.child.wait();
                cli(&self.d.storage, &["keys", "rotate"]).await;
                self.d.restart(&envs(true)).await;
            }
            Action::ConsoleSession => self.console_session().await,
            Action::Webhook => self.webhook().await,
            Action::DynamicCredential => self.dynamic_credential().await,
            Action::Witness => {
                // A witness on another machine: its own process and key, cosigning the
                // latest checkpoint (`checkpoint.cosigned`), or nothing new yet.
                let (svc_url, dir, key) = (
                    self.d.svc.url(""),
                    self.d.dir.path().join("witness"),
                    self.auditor.clone(),
                );
                let (code, stderr) = tokio::task::spawn_blocking(move || {
                    crate::witness::witness_once_at(&svc_url, &dir, &key)
                })
                .await
                .expect("join");
                assert_eq!(code, 0, "seed {}: witness: {stderr}", self.seed);
            }
        }
    }

    async fn create_oauth_config(&mut self) {
        let client_id = self.m.fresh("model-client-");
        let secret = format!("{client_id}-s3cret");
        self.register_client(&client_id, &secret);
        let token_release = self.rng.gen_bool(0.5);
        let body = json!({
            "name": self.m.fresh("oauth "), "provider": "custom", "auth_type": "oauth2",
            "token_release": token_release,
            "oauth2": {
                "client_id": client_id, "client_secret": secret,
                "authorization_url": self.provider.authorization_url(),
                "token_url": self.provider.token_url(),
                "revocation_url": self.provider.revocation_url(),
                "client_auth_method": "client_secret_basic",
                "scopes": ["read", "write"],
                "redirect_urls": [RETURN_TO],
            }
        });
        let r = self
            .admin(Method::POST, "/v1/auth-configs", Some(body))
            .await;
        let id = self.ok(r, StatusCode::CREATED, "oauth config").str("id");
        self.m.configs.push(Config {
            id,
            kind: AuthKind::OAuth,
            client_id,
            enabled: true,
            narrowed: false,
            token_release,
        });
    }

    async fn rotate_client_secret(&mut self) {
        let (id, client_id) = {
            let oauth: Vec<&Config> = self
                .m
                .configs
                .iter()
                .filter(|c| c.kind == AuthKind::OAuth)
                .collect();
            let c = oauth.choose(&mut self.rng).expect("possible");
            (c.id.clone(), c.client_id.clone())
        };
        let secret = self.m.fresh("rotated-s3cret-");
        // The provider takes the new secret when the config does (a real rotation).
        self.register_client(&client_id, &secret);
        let r = self
            .admin(
                Method::PATCH,
                &format!("/v1/auth-configs/{id}"),
                Some(json!({ "oauth2": { "client_secret": secret } })),
            )
            .await;
        self.ok(r, StatusCode::OK, "rotate client secret");
    }

    async fn narrow_scopes(&mut self) {
        let ids: Vec<String> = self
            .m
            .configs
            .iter()
            .filter(|c| {
                c.kind == AuthKind::OAuth
                    && !c.narrowed
                    && self
                        .m
                        .connections
                        .iter()
                        .any(|x| x.config == c.id && x.status == ConnStatus::Active)
            })
            .map(|c| c.id.clone())
            .collect();
        let id = self.pick(&ids).clone();
        let r = self
            .admin(
                Method::PATCH,
                &format!("/v1/auth-configs/{id}"),
                Some(json!({ "oauth2": { "scopes": ["read"] } })),
            )
            .await;
        self.ok(r, StatusCode::OK, "narrow scopes");
        for c in self.m.configs.iter_mut().filter(|c| c.id == id) {
            c.narrowed = true;
        }
        // Connections holding the removed scope need the user again.
        for c in self.m.connections.iter_mut().filter(|c| c.config == id) {
            if c.status == ConnStatus::Active {
                c.status = ConnStatus::Stale;
            }
        }
    }

    async fn delete_config(&mut self) {
        let i = self.rng.gen_range(0..self.m.configs.len());
        let c = self.m.configs.remove(i);
        let r = self
            .admin(
                Method::DELETE,
                &format!("/v1/auth-configs/{}?cascade=revoke", c.id),
                None,
            )
            .await;
        assert!(
            r.status.is_success(),
            "seed {}: delete config: {}",
            self.seed,
            r.text
        );
        self.m.connections.retain(|x| x.config != c.id);
        // Gateways naming it stay defined (a deleted config reaches nothing).
    }

    async fn start_connect(&mut self) {
        let ids: Vec<String> = self
            .m
            .live_configs()
            .filter(|c| c.kind == AuthKind::OAuth && c.enabled)
            .map(|c| c.id.clone())
            .collect();
        let config = self.pick(&ids).clone();
        let user = self.user();
        let body = json!({ "auth_config_id": config, "user_id": user, "redirect_url": RETURN_TO });
        let r = self
            .admin(Method::POST, "/v1/connections", Some(body))
            .await;
        let r = self.ok(r, StatusCode::CREATED, "start connect");
        self.m.connections.push(Connection {
            id: r.str("id"),
            config,
            user,
            status: ConnStatus::Initiated(r.str("connect_url")),
        });
    }

    async fn finish_connect(&mut self, grant: bool) {
        let i = {
            let initiated: Vec<usize> = (0..self.m.connections.len())
                .filter(|i| matches!(self.m.connections[*i].status, ConnStatus::Initiated(_)))
                .collect();
            *self.pick(&initiated)
        };
        let ConnStatus::Initiated(url) = self.m.connections[i].status.clone() else {
            unreachable!("filtered")
        };
        let usable = self
            .m
            .config(&self.m.connections[i].config)
            .is_some_and(|c| c.enabled);
        self.provider
            .set_consent(if grant { Consent::Grant } else { Consent::Deny });
        let location = follow_connect_url(&self.provider, &url).await;
        self.provider.set_consent(Consent::Grant);
        let status = location
            .query_pairs()
            .find(|(k, _)| k == "status")
            .map(|(_, v)| v.into_owned());
        let expected = if grant && usable { "active" } else { "error" };
        assert_eq!(
            status.as_deref(),
            Some(expected),
            "seed {}: connect came back to {location}",
            self.seed
        );
        self.m.connections[i].status = if expected == "active" {
            ConnStatus::Active
        } else {
            ConnStatus::Stale
        };
    }

    async fn credential_connection(&mut self) {
        let ids: Vec<String> = self
            .m
            .configs
            .iter()
            .filter(|c| c.kind == AuthKind::Bearer && c.enabled)
            .map(|c| c.id.clone())
            .collect();
        let config = self.pick(&ids).clone();
        let user = self.user();
        let token = self.m.fresh("upstream-bearer-");
        // Half the time through the hosted connect page, as the end user would.
        let hosted = self.rng.gen_bool(0.5);
        let body = if hosted {
            json!({ "auth_config_id": config, "user_id": user })
        } else {
            json!({ "auth_config_id": config, "user_id": user, "credentials": { "token": token } })
        };
        let r = self
            .admin(Method::POST, "/v1/connections", Some(body))
            .await;
        let r = self.ok(r, StatusCode::CREATED, "credential connection");
        let id = r.str("id");
        if hosted {
            self.hosted_connect(&r.str("connect_url"), &token).await;
        }
        self.m.connections.push(Connection {
            id,
            config,
            user,
            status: ConnStatus::Active,
        });
    }

    /// The end user's side of a hosted connect link for a bearer token: the page (its CSRF
    /// cookie and field), then the form, answered with the way back.
    async fn hosted_connect(&self, link: &str, token: &str) {
        let http = no_redirect_client();
        let page = http.get(link).send().await.expect("connect page");
        assert_eq!(
            page.status(),
            StatusCode::OK,
            "seed {}: connect page",
            self.seed
        );
        let cookie = page
            .headers()
            .get("set-cookie")
            .and_then(|v| v.to_str().ok())
            .and_then(|v| v.split(';').next())
            .expect("the page's CSRF cookie")
            .to_string();
        let html = page.text().await.expect("html");
        let csrf = form_value(&html, "csrf");
        let form = [
            ("csrf", csrf.as_str()),
            ("action", "connect"),
            ("token", token),
        ];
        let r = http
            .post(link)
            .header("cookie", cookie)
            .header("origin", self.d.svc.url("").trim_end_matches('/'))
            .form(&form)
            .send()
            .await
            .expect("connect form");
        assert_eq!(
            r.status(),
            StatusCode::SEE_OTHER,
            "seed {}: connect form",
            self.seed
        );
    }

    async fn refresh(&mut self, action: Action) {
        let id = {
            let usable = self.m.usable(AuthKind::OAuth);
            usable.choose(&mut self.rng).expect("possible").id.clone()
        };
        match action {
            Action::RefreshFails => self
                .provider
                .fail_next_token_requests(2, TokenFault::ServerError),
            Action::RefreshGrantDead => self
                .provider
                .fail_next_token_requests(1, TokenFault::InvalidGrant),
            _ => {}
        }
        let r = self
            .admin(Method::POST, &format!("/v1/connections/{id}/refresh"), None)
            .await;
        match action {
            Action::Refresh => {
                self.ok(r, StatusCode::OK, "refresh");
            }
            _ => {
                assert!(
                    r.status.is_client_error() || r.status.is_server_error(),
                    "seed {}: a failing refresh: {}",
                    self.seed,
                    r.text
                );
                if matches!(action, Action::RefreshGrantDead) {
                    for c in self.m.connections.iter_mut().filter(|c| c.id == id) {
                        c.status = ConnStatus::Stale;
                    }
                }
            }
        }
    }

    async fn revoke_connection(&mut self) {
        let i = {
            let active: Vec<usize> = (0..self.m.connections.len())
                .filter(|i| self.m.connections[*i].status == ConnStatus::Active)
                .collect();
            *self.pick(&active)
        };
        let id = self.m.connections[i].id.clone();
        let r = self
            .admin(
                Method::POST,
                &format!("/v1/connections/{id}/revoke"),
                Some(json!({ "reason": "model" })),
            )
            .await;
        self.ok(r, StatusCode::OK, "revoke connection");
        self.m.connections[i].status = ConnStatus::Stale;
    }

    async fn delete_connection(&mut self) {
        let i = self.rng.gen_range(0..self.m.connections.len());
        let c = self.m.connections.remove(i);
        let r = self
            .admin(Method::DELETE, &format!("/v1/connections/{}", c.id), None)
            .await;
        assert!(
            r.status.is_success(),
            "seed {}: delete connection: {}",
            self.seed,
            r.text
        );
    }

    async fn define_tool(&mut self) {
        let destructive = self.rng.gen_bool(0.3);
        let name = format!("custom.{}", self.m.fresh("model_tool_"));
        let (method, risk) = if destructive {
            ("DELETE", "destructive")
        } else {
            ("GET", "read")
        };
        let mut body = json!({
            "name": name, "provider": "custom", "description": "A tool of the model test.",
            "method": method, "base_url": self.upstream.base_url, "path": "/items",
            "parameters": { "type": "object" }, "required_scopes": [], "risk": risk,
        });
        if !destructive {
            body["undo"] = json!({ "method": "DELETE", "path": "/items" });
        }
        let r = self.admin(Method::POST, "/v1/tools", Some(body)).await;
        self.ok(r, StatusCode::CREATED, "define tool");
        self.m.tools.push((name, destructive));
    }

    /// A defined tool of the given risk and a usable bearer connection.
    fn tool_and_connection(&mut self, destructive: bool) -> (String, String, String) {
        let tools: Vec<String> = self
            .m
            .tools
            .iter()
            .filter(|t| t.1 == destructive)
            .map(|t| t.0.clone())
            .collect();
        let tool = self.pick(&tools).clone();
        let conns: Vec<(String, String)> = self
            .m
            .usable(AuthKind::Bearer)
            .iter()
            .map(|c| (c.id.clone(), c.user.clone()))
            .collect();
        let (conn, user) = self.pick(&conns).clone();
        (tool, conn, user)
    }

    async fn call_tool(&mut self) {
        let (tool, conn, _) = self.tool_and_connection(false);
        let body = json!({ "tool": tool, "connection_id": conn, "arguments": {} });
        let r = self
            .call(&self.agent, Method::POST, "/v1/tools/execute", Some(body))
            .await;
        let r = self.ok(r, StatusCode::OK, "tool call");
        // Some calls are undone (their tools declare an undo).
        if self.rng.gen_bool(0.3) {
            let path = format!("/v1/tool-calls/{}/undo", r.str("tool_call_id"));
            let r = self.admin(Method::POST, &path, None).await;
            self.ok(r, StatusCode::OK, "undo");
        }
    }

    async fn issue_token(&mut self) {
        let (tool, conn, _) = self.tool_and_connection(false);
        let body = json!({ "connection_id": conn, "tool": tool, "ttl_seconds": 600 });
        let r = self
            .call(&self.agent, Method::POST, "/v1/tokens", Some(body))
            .await;
        let r = self.ok(r, StatusCode::CREATED, "issue token");
        self.m.tokens.push(Token {
            id: r.str("id"),
            token: r.str("token"),
        });
    }

    async fn use_token(&mut self) {
        let i = self.rng.gen_range(0..self.m.tokens.len());
        let token = self.m.tokens[i].token.clone();
        let r = self.call(&token, Method::GET, "/v1/tools", None).await;
        let tool = r.body["items"]
            .as_array()
            .and_then(|items| items.first())
            .and_then(|t| t["name"].as_str())
            .map(str::to_string);
        let Some(tool) = tool else {
            // Its tool or connection is gone: the token is of no further use here.
            self.m.tokens.remove(i);
            return;
        };
        let r = self
            .call(
                &token,
                Method::POST,
                "/v1/tools/execute",
                Some(json!({ "tool": tool, "arguments": {} })),
            )
            .await;
        // The connection may have ended or the tool gone since the token was issued:
        // the token is used either way, or refused (an `access.denied`).
        assert!(
            r.status == StatusCode::OK || r.status.is_client_error(),
            "seed {}: use token: {}",
            self.seed,
            r.text
        );
        if r.status != StatusCode::OK {
            self.m.tokens.remove(i);
        }
    }

    async fn ask_approval(&mut self) {
        let (tool, conn, user) = self.tool_and_connection(true);
        let body = json!({ "tool": tool, "connection_id": conn, "arguments": {} });
        let r = self
            .call(
                &self.agent,
                Method::POST,
                "/v1/tools/execute",
                Some(body.clone()),
            )
            .await;
        r.expect(StatusCode::FORBIDDEN, "approval-required");
        let approval = r.str("approval_id");
        let choice = self.m.idp.then(|| self.rng.gen_range(0..3));
        let decide = |verb: &str| {
            self.http
                .post(self.d.svc.url(&format!("/v1/approvals/{approval}/{verb}")))
                .bearer_auth(self.jwt(&user))
                .header("Authledger-Workspace", self.d.workspace.as_str())
        };
        match choice {
            Some(0) => {
                // Approved at once and run with it (approval.approved, approval.consumed).
                let r = Reply::of(decide("approve")).await;
                self.ok(r, StatusCode::OK, "approve");
                let mut body = body;
                body["approval_id"] = json!(approval);
                let r = self
                    .call(&self.agent, Method::POST, "/v1/tools/execute", Some(body))
                    .await;
                self.ok(r, StatusCode::OK, "approved tool call");
            }
            Some(1) => {
                let r = Reply::of(decide("deny")).await;
                self.ok(r, StatusCode::OK, "deny");
            }
            _ => self.m.approvals.push((approval, user)),
        }
    }

    /// A webhook's life: made (off: nothing is sent from the model), changed, its secret
    /// rotated, replayed, sometimes deleted (`webhook.*` but `webhook.disabled`, which only
    /// a day of failed deliveries writes: `webhooks::an_endpoint_failing_...`).
    async fn webhook(&mut self) {
        let body = json!({ "url": "http://127.0.0.1:9/in", "events": ["connection."],
            "enabled": false });
        let r = self.admin(Method::POST, "/v1/webhooks", Some(body)).await;
        let id = self.ok(r, StatusCode::CREATED, "webhook").str("id");
        let path = format!("/v1/webhooks/{id}");
        let r = self
            .admin(Method::PATCH, &path, Some(json!({ "events": ["tool."] })))
            .await;
        self.ok(r, StatusCode::OK, "webhook change");
        let r = self
            .admin(Method::POST, &format!("{path}/rotate-secret"), None)
            .await;
        self.ok(r, StatusCode::OK, "webhook secret");
        let r = self
            .admin(
                Method::POST,
                &format!("{path}/replay"),
                Some(json!({ "from_position": 1 })),
            )
            .await;
        self.ok(r, StatusCode::ACCEPTED, "webhook replay");
        if self.rng.gen_bool(0.5) {
            let r = self.admin(Method::DELETE, &path, None).await;
            self.ok(r, StatusCode::NO_CONTENT, "webhook delete");
        }
    }

    /// Dynamic database credentials on the suite's PostgreSQL (its superuser as the
    /// connection's administrative credential): one issued for a second and dropped by the
    /// expiry sweep, one dropped by revoking its connection (not in the model: nothing
    /// else uses it).
    async fn dynamic_credential(&mut self) {
        let url = url::Url::parse(&crate::harness::fresh_pg_database().await).expect("url");
        let settings = json!({ "host": url.host_str().expect("host"),
            "port": url.port().unwrap_or(5432), "database": url.path().trim_start_matches('/'),
            "ssl_mode": "disable" });
        let body = json!({ "name": self.m.fresh("database "), "provider": "postgres",
            "auth_type": "connector", "connector": { "id": "postgres", "settings": settings,
            "dynamic_credentials": { "max_ttl_seconds": 600,
                "grants": { "read": [{ "privileges": ["SELECT"] }] } } } });
        let r = self
            .admin(Method::POST, "/v1/auth-configs", Some(body))
            .await;
        let config = self.ok(r, StatusCode::CREATED, "database config").str("id");
        let credentials = json!({ "user": url.username(),
            "password": url.password().unwrap_or("unused") });
        let body = json!({ "auth_config_id": config, "user_id": "alice",
            "credentials": credentials });
        let r = self
            .admin(Method::POST, "/v1/connections", Some(body))
            .await;
        let connection = self
            .ok(r, StatusCode::CREATED, "database connection")
            .str("id");
        let path = format!("/v1/connections/{connection}/dynamic-credentials");
        for ttl in [1, 600] {
            let agent = self.agent.clone();
            let body = json!({ "ttl_seconds": ttl, "grants": ["read"] });
            let r = self.call(&agent, Method::POST, &path, Some(body)).await;
            self.ok(r, StatusCode::CREATED, "dynamic credential");
        }
        let expired =
            format!("/v1/audit/events?kind=credential.expired&connection_id={connection}");
        eventually(TIMEOUT, "the expiry sweep", || async {
            let r = self.admin(Method::GET, &expired, None).await;
            r.body["items"].as_array().is_some_and(|a| !a.is_empty())
        })
        .await;
        let r = self
            .admin(
                Method::POST,
                &format!("/v1/connections/{connection}/revoke"),
                None,
            )
            .await;
        self.ok(r, StatusCode::OK, "revoke the database connection");
    }

    async fn define_gateway(&mut self) {
        let tools: Vec<String> = self
            .m
            .tools
            .iter()
            .filter(|t| !t.1)
            .map(|t| t.0.clone())
            .collect();
        let tool = self.pick(&tools).clone();
        let config = self.m.configs[self.rng.gen_range(0..self.m.configs.len())]
            .id
            .clone();
        let body = json!({ "name": self.m.fresh("gateway "),
            "servers": [{ "auth_config_id": config, "tools": [tool] }] });
        let r = self.admin(Method::POST, "/v1/gateways", Some(body)).await;
        let id = self.ok(r, StatusCode::CREATED, "gateway").str("id");
        self.m.gateways.push(id);
    }
}

// ---------------------------------------------------------------------------------------------
// The checks
// ---------------------------------------------------------------------------------------------

/// Every projection table, each row as text, rows sorted.
async fn projections(d: &Deployment) -> BTreeMap<String, Vec<String>> {
    match &d.database_url {
        Some(url) => pg_projections(url).await,
        None => sqlite_projections(&d.projections_db()),
    }
}

/// `projections` of a PostgreSQL database.
pub async fn pg_projections(url: &str) -> BTreeMap<String, Vec<String>> {
    let pool = sqlx::PgPool::connect(url).await.expect("connect");
    let mut out = BTreeMap::new();
    for t in TABLES {
        let mut rows: Vec<String> =
            sqlx::query_scalar(&format!("SELECT row_to_json(t)::text FROM {t} t"))
                .fetch_all(&pool)
                .await
                .expect("rows");
        rows.sort();
        out.insert(t.to_string(), rows);
    }
    pool.close().await;
    out
}

pub(crate) fn sqlite_projections(file: &std::path::Path) -> BTreeMap<String, Vec<String>> {
    let c = rusqlite::Connection::open(file).expect("open");
    let mut out = BTreeMap::new();
    for t in TABLES {
        let mut stmt = c.prepare(&format!("SELECT * FROM {t}")).expect("select");
        let n = stmt.column_count();
        let mut rows: Vec<String> = stmt
            .query_map([], |row| {
                (0..n)
                    .map(|i| row.get_ref(i).map(|v| format!("{v:?}")))
                    .collect::<Result<Vec<_>, _>>()
                    .map(|cols| cols.join(" | "))
            })
            .expect("query")
            .collect::<Result<_, _>>()
            .expect("rows");
        rows.sort();
        out.insert(t.to_string(), rows);
    }
    out
}

/// Kinds only a day of the service's time writes (the model does not move its clock),
/// each produced by its own test.
const PRODUCED_ELSEWHERE: &[&str] = &[
    // tests/it/webhooks.rs: an_endpoint_failing_for_the_whole_schedule_is_disabled
    "webhook.disabled",
    // tests/it/mcp_retries.rs: an MCP client's initialize (the model speaks the HTTP API)
    "mcp.session_started",
];

async fn model_run(stack: Stack) {
    let seed = std::env::var("AUTHLEDGER_MODEL_SEED")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or_else(rand::random);
    eprintln!("model test on {stack:?}: seed {seed} (AUTHLEDGER_MODEL_SEED={seed} replays it)");
    let mut w = World::start(stack, seed).await;
    let mut produced = BTreeSet::new();
    let mut missing: Vec<&str> = Vec::new();
    let mut steps = Vec::new();
    while steps.len() < MAX_STEPS {
        let action = w.choose(&missing);
        steps.push(action);
        w.run(action).await;
        if steps.len() >= MIN_STEPS && steps.len() % 20 == 0 {
            produced = kinds_in_log(&w).await;
            missing = ALL_KINDS
                .iter()
                .copied()
                .filter(|k| !produced.contains(*k) && !PRODUCED_ELSEWHERE.contains(k))
                .collect();
            if missing.is_empty() {
                break;
            }
        }
    }
    eprintln!("seed {seed}: {} steps: {steps:?}", steps.len());

    // No more scheduled checkpoints: the log stops growing, the projector must reach it.
    w.d.restart(&envs(false)).await;
    let http = Client::new();
    eventually(TIMEOUT, "the projector reaches the log head", || async {
        let r = Reply::of(http.get(w.d.svc.url("/readyz"))).await;
        r.status == StatusCode::OK && r.body["log_head"] == r.body["projection_offset"]
    })
    .await;
    let _ = w.d.svc.child.kill();
    let _ = w.d.svc.child.wait();
    let live = projections(&w.d).await;

    cli(&w.d.storage, &["replay"]).await;
    let replayed = projections(&w.d).await;
    for t in TABLES {
        assert_eq!(
            live.get(*t),
            replayed.get(*t),
            "seed {seed}: table {t} differs from a fresh replay of the log"
        );
    }

    let missing: Vec<&&str> = ALL_KINDS
        .iter()
        .filter(|k| !produced.contains(**k) && !PRODUCED_ELSEWHERE.contains(k))
        .collect();
    assert!(
        missing.is_empty(),
        "seed {seed}: the generator produced no {missing:?} in {} steps",
        steps.len()
    );
}

/// The kinds in the log so far (from its dump, not from a projection).
async fn kinds_in_log(w: &World) -> BTreeSet<String> {
    let out = cli(&w.d.storage, &["dump-log"]).await;
    String::from_utf8_lossy(&out.stdout)
        .lines()
        .filter_map(|line| {
            let v: Value = serde_json::from_str(line).ok()?;
            let envelope: Value = match &v["envelope"] {
                Value::String(s) => serde_json::from_str(s).ok()?,
                other => other.clone(),
            };
            let payload = base64::engine::general_purpose::STANDARD
                .decode(envelope["payload"].as_str()?)
                .ok()?;
            let body: Value = serde_json::from_slice(&payload).ok()?;
            body["kind"].as_str().map(str::to_string)
        })
        .collect()
}

#[tokio::test]
async fn random_commands_keep_the_projections_equal_to_a_replay_on_the_embedded_stack() {
    model_run(Stack::Embedded).await;
}

#[tokio::test]
async fn random_commands_keep_the_projections_equal_to_a_replay_on_jetstream_and_postgres() {
    model_run(Stack::JetStreamPg).await;
}
