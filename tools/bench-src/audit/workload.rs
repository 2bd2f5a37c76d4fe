//! The audit suite's workload: realistic events of a few workspaces, built with the real
//! domain types and decided by the real aggregates (`Connection::decide`,
//! `AuthConfig::decide`), so every event is one production could have written and the
//! projector flattens it like production events.
//!
//! Mix (of the events after the prelude; see `next_burst`): ~94 % `connection.*` (connect
//! flows, refresh rounds with retries and failures, expiry, revocation), ~4 %
//! `access.denied`, ~2 % `audit.queried`, ~0.02 % `auth_config.*` updates, secret
//! rotations, disables and re-enables. (The shares below are of bursts: a connection burst
//! is one to three events, about two on average.) The prelude creates every workspace (through
//! `ops::bootstrap`, with its admin key), two more API keys and 12 auth configs each.
//!
//! Time: a [`BenchClock`] hands out `occurred_at` values that advance by a fixed step per
//! event, so the log spans `--span-days` days whatever the wall-clock duration of the fill.

use std::collections::BTreeMap;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;

use anyhow::{anyhow, Context as _};
use base64::engine::general_purpose::STANDARD as B64;
use base64::Engine as _;
use rand::rngs::StdRng;
use rand::{Rng as _, RngCore as _, SeedableRng as _};
use time::OffsetDateTime;

use authledger::clock::Clock;
use authledger::domain::access::DENIAL_AGGREGATE;
use authledger::domain::api_key::{ApiKey, ApiKeyCommand, NewApiKey};
use authledger::domain::audit::AUDIT_QUERY_AGGREGATE;
use authledger::domain::auth_config::{
    ApiKeySettings, AuthConfig, AuthConfigCommand, AuthSettings, ClientAuthMethod, KeyLocation,
    OAuth2Settings, SealedSecret,
};
use authledger::domain::connection::{
    Connection, ConnectionCommand, OAuthTokens, ProviderRevocation, RefreshTrigger,
};
use authledger::domain::{
    AccessDenied, Aggregate, ApiKeyCreated, AuditQueried, AuthConfigCreated,
    ConnectionAuthorizationFailed, ConnectionAuthorized, ConnectionCreated, ConnectionExpired,
    ConnectionInitiated, ConnectionRefreshed, ConnectionRevoked, DenialReason, Event,
    RefreshFailed, RefreshStarted, Role,
};
use authledger::ledger::{Actor, ActorType, AggregateKey, Ledger};

/// Share of bursts that are one `access.denied`.
const DENIED: f64 = 0.08;
/// Share of bursts that are one `audit.queried`.
const AUDIT_QUERIES: f64 = 0.04;
/// Share of bursts that are one `auth_config.*` change.
const AUTH_CONFIG_CHANGES: f64 = 0.0005;
/// Mean refresh rounds of an OAuth connection (uniform 0..=2x).
const MEAN_ROUNDS: u32 = 10;

/// `occurred_at` = start + n * step for the n-th call: time that advances per event.
pub struct BenchClock {
    start: OffsetDateTime,
    step_ns: i64,
    n: AtomicU64,
}

impl BenchClock {
    /// A clock whose `events` calls span `span` and end about now.
    pub fn spanning(span: time::Duration, events: u64) -> BenchClock {
        let now = OffsetDateTime::now_utc();
        let now = now.replace_nanosecond(0).unwrap_or(now);
        let nanos = span.whole_nanoseconds() / i128::from(events.max(1));
        BenchClock {
            start: now - span,
            step_ns: i64::try_from(nanos).unwrap_or(i64::MAX),
            n: AtomicU64::new(0),
        }
    }

    fn at(&self, n: u64) -> OffsetDateTime {
        let n = i64::try_from(n).unwrap_or(i64::MAX);
        self.start + time::Duration::nanoseconds(self.step_ns.saturating_mul(n))
    }

    /// The time the next event will get (without taking it).
    pub fn peek(&self) -> OffsetDateTime {
        self.at(self.n.load(Ordering::Relaxed))
    }
}

impl Clock for BenchClock {
    fn now(&self) -> OffsetDateTime {
        self.at(self.n.fetch_add(1, Ordering::Relaxed))
    }
}

/// One auth config as connections see it.
#[derive(Debug, Clone)]
pub struct AuthConfigRef {
    pub id: String,
    pub oauth: bool,
    pub scopes: Vec<String>,
    /// Typical token sizes of the provider (plaintext bytes): access, refresh.
    pub token_bytes: (usize, usize),
    pub settings: AuthSettings,
    pub name: String,
}

/// One workspace of the workload.
#[derive(Debug, Clone)]
pub struct WorkspaceInfo {
    pub id: String,
    pub name: String,
    /// Relative share of the events.
    pub weight: u32,
    pub users: Vec<String>,
    pub api_keys: Vec<String>,
    pub auth_configs: Vec<AuthConfigRef>,
}

struct Provider {
    id: &'static str,
    name: &'static str,
    authorize: &'static str,
    token: &'static str,
    revoke: Option<&'static str>,
    scopes: &'static [&'static str],
    tokens: (usize, usize),
}

const PROVIDERS: &[Provider] = &[
    Provider {
        id: "google",
        name: "Gmail send-only",
        authorize: "https://accounts.google.com/o/oauth2/v2/auth",
        token: "https://oauth2.googleapis.com/token",
        revoke: Some("https://oauth2.googleapis.com/revoke"),
        scopes: &[
            "https://www.googleapis.com/auth/gmail.send",
            "https://www.googleapis.com/auth/calendar.readonly",
        ],
        tokens: (220, 103),
    },
    Provider {
        id: "github",
        name: "GitHub repos",
        authorize: "https://github.com/login/oauth/authorize",
        token: "https://github.com/login/oauth/access_token",
        revoke: None,
        scopes: &["repo", "read:user"],
        tokens: (40, 82),
    },
    Provider {
        id: "slack",
        name: "Slack bot",
        authorize: "https://slack.com/oauth/v2/authorize",
        token: "https://slack.com/api/oauth.v2.access",
        revoke: Some("https://slack.com/api/auth.revoke"),
        scopes: &["chat:write", "channels:read"],
        tokens: (77, 77),
    },
    Provider {
        id: "microsoft",
        name: "Outlook mail",
        authorize: "https://login.microsoftonline.com/common/oauth2/v2.0/authorize",
        token: "https://login.microsoftonline.com/common/oauth2/v2.0/token",
        revoke: None,
        scopes: &["offline_access", "Mail.Send", "User.Read"],
        tokens: (1400, 600),
    },
    Provider {
        id: "notion",
        name: "Notion workspace",
        authorize: "https://api.notion.com/v1/oauth/authorize",
        token: "https://api.notion.com/v1/oauth/token",
        revoke: None,
        scopes: &["read_content"],
        tokens: (50, 50),
    },
    Provider {
        id: "salesforce",
        name: "Salesforce CRM",
        authorize: "https://login.salesforce.com/services/oauth2/authorize",
        token: "https://login.salesforce.com/services/oauth2/token",
        revoke: Some("https://login.salesforce.com/services/oauth2/revoke"),
        scopes: &["api", "refresh_token"],
        tokens: (112, 87),
    },
    Provider {
        id: "hubspot",
        name: "HubSpot contacts",
        authorize: "https://app.hubspot.com/oauth/authorize",
        token: "https://api.hubapi.com/oauth/v1/token",
        revoke: None,
        scopes: &["crm.objects.contacts.read", "crm.objects.contacts.write"],
        tokens: (300, 36),
    },
    Provider {
        id: "linear",
        name: "Linear issues",
        authorize: "https://linear.app/oauth/authorize",
        token: "https://api.linear.app/oauth/token",
        revoke: Some("https://api.linear.app/oauth/revoke"),
        scopes: &["read", "write"],
        tokens: (64, 64),
    },
    Provider {
        id: "zoom",
        name: "Zoom meetings",
        authorize: "https://zoom.us/oauth/authorize",
        token: "https://zoom.us/oauth/token",
        revoke: Some("https://zoom.us/oauth/revoke"),
        scopes: &["meeting:write"],
        tokens: (600, 600),
    },
    Provider {
        id: "dropbox",
        name: "Dropbox files",
        authorize: "https://www.dropbox.com/oauth2/authorize",
        token: "https://api.dropboxapi.com/oauth2/token",
        revoke: Some("https://api.dropboxapi.com/2/auth/token/revoke"),
        scopes: &["files.content.read", "account_info.read"],
        tokens: (140, 64),
    },
];

/// API-key auth configs: (provider, name, header, prefix).
const KEY_PROVIDERS: &[(&str, &str, &str, Option<&str>)] = &[
    ("openai", "OpenAI", "Authorization", Some("Bearer")),
    ("sendgrid", "SendGrid mail", "Authorization", Some("Bearer")),
];

fn hex_of(rng: &mut StdRng, bytes: usize) -> String {
    let mut b = vec![0u8; bytes];
    rng.fill_bytes(&mut b);
    hex::encode(b)
}

fn b64_of(rng: &mut StdRng, bytes: usize) -> String {
    let mut b = vec![0u8; bytes];
    rng.fill_bytes(&mut b);
    B64.encode(b)
}

fn data_key_id(rng: &mut StdRng) -> String {
    format!("dk:{}", hex_of(rng, 16))
}

/// A sealed secret of a `plaintext`-byte value (AES-GCM-SIV: + 16-byte tag), as the vault
/// would put it in an event.
fn sealed(rng: &mut StdRng, dk: &str, plaintext: usize) -> SealedSecret {
    SealedSecret {
        data_key_id: dk.to_string(),
        nonce: b64_of(rng, 12),
        ciphertext: b64_of(rng, plaintext + 16),
        fingerprint: format!("hmac-sha256:{}", hex_of(rng, 32)),
    }
}

fn decided<A: Aggregate>(state: &mut A, command: &A::Command, what: &str) -> anyhow::Result<Event> {
    let event = state
        .decide(command)
        .map_err(|e| anyhow!("workload bug: {what} refused by the domain: {e}"))?;
    state.apply(&event);
    Ok(event)
}

/// Creates the workspaces (bootstrap: workspace + admin key), two more API keys each and
/// 12 auth configs each, through `Ledger::execute` (load, decide, append). Returns them and
/// the number of events written.
pub async fn prelude(
    ledger: &Ledger,
    workspaces: u32,
    users_per_weight: u32,
    seed: u64,
) -> anyhow::Result<(Vec<WorkspaceInfo>, u64)> {
    let mut rng = StdRng::seed_from_u64(seed);
    let mut out = Vec::new();
    let mut events = 0u64;
    let names = [
        "Acme Corp",
        "Globex",
        "Initech",
        "Umbrella",
        "Hooli",
        "Stark Industries",
    ];
    for w in 0..workspaces {
        let name = format!(
            "{} {}",
            names[usize::try_from(w).unwrap_or(0) % names.len()],
            w + 1
        );
        let boot = authledger::ops::bootstrap(ledger, &name, "admin@example.com")
            .await
            .with_context(|| format!("bootstrap workspace {name}"))?;
        events += 3;
        let ws = boot.workspace_id.clone();
        let admin = Actor {
            actor_type: ActorType::ApiKey,
            id: boot.api_key_id.clone(),
        };
        let mut api_keys = vec![boot.api_key_id.clone()];
        for (kname, role) in [("backend", Role::Developer), ("compliance", Role::Auditor)] {
            let key = NewApiKey::generate(&mut rand::rngs::OsRng);
            let id = uuid::Uuid::now_v7().to_string();
            ledger
                .execute::<ApiKey>(
                    &ws,
                    &id,
                    &admin,
                    &ApiKeyCommand::Create(ApiKeyCreated {
                        name: kname.into(),
                        role,
                        key_prefix: key.key_prefix.clone(),
                        key_hash: key.key_hash.clone(),
                        expires_at: None,
                    }),
                )
                .await
                .context("create API key")?;
            events += 1;
            api_keys.push(id);
        }
        let mut auth_configs = Vec::new();
        for p in PROVIDERS {
            let id = uuid::Uuid::now_v7().to_string();
            let dk = data_key_id(&mut rng);
            let settings = AuthSettings::Oauth2(OAuth2Settings {
                authorization_url: p.authorize.into(),
                token_url: p.token.into(),
                revocation_url: p.revoke.map(str::to_string),
                client_id: format!("{}.apps.example.com", hex_of(&mut rng, 12)),
                client_secret: sealed(&mut rng, &dk, 40),
                scopes: p.scopes.iter().map(|s| s.to_string()).collect(),
                client_auth_method: ClientAuthMethod::ClientSecretPost,
                pkce: true,
                scope_separator: " ".into(),
                extra_authorize_params: [("access_type".to_string(), "offline".to_string())]
                    .into_iter()
                    .collect(),
                redirect_urls: vec![format!("https://app{w}.example.com/connected")],
            });
            let created = AuthConfigCreated {
                name: p.name.into(),
                provider: p.id.into(),
                settings: settings.clone(),
                token_release: false,
                offered: true,
            };
            ledger
                .execute::<AuthConfig>(&ws, &id, &admin, &AuthConfigCommand::Create(created))
                .await
                .context("create auth config")?;
            events += 1;
            auth_configs.push(AuthConfigRef {
                id,
                oauth: true,
                scopes: p.scopes.iter().map(|s| s.to_string()).collect(),
                token_bytes: p.tokens,
                settings,
                name: p.name.into(),
            });
        }
        for (provider, kname, header, prefix) in KEY_PROVIDERS {
            let id = uuid::Uuid::now_v7().to_string();
            let settings = AuthSettings::ApiKey(ApiKeySettings {
                key_name: (*header).into(),
                location: KeyLocation::Header,
                prefix: prefix.map(str::to_string),
            });
            let created = AuthConfigCreated {
                name: (*kname).into(),
                provider: (*provider).into(),
                settings: settings.clone(),
                token_release: false,
                offered: true,
            };
            ledger
                .execute::<AuthConfig>(&ws, &id, &admin, &AuthConfigCommand::Create(created))
                .await
                .context("create auth config")?;
            events += 1;
            auth_configs.push(AuthConfigRef {
                id,
                oauth: false,
                scopes: Vec::new(),
                token_bytes: (51, 0),
                settings,
                name: (*kname).into(),
            });
        }
        let weight = workspaces - w;
        let users = (0..users_per_weight * weight)
            .map(|_| format!("auth0|{}", hex_of(&mut rng, 12)))
            .collect();
        out.push(WorkspaceInfo {
            id: ws,
            name,
            weight,
            users,
            api_keys,
            auth_configs,
        });
    }
    Ok((out, events))
}

/// One append: what the fill task passes to `Ledger::append_next`.
pub struct Append {
    pub key: AggregateKey,
    pub actor: Actor,
    pub event: Event,
}

struct Slot {
    ws: usize,
    key: AggregateKey,
    user: String,
    config: usize,
    state: Connection,
    rounds_left: u32,
}

struct OwnedConfig {
    ws: usize,
    key: AggregateKey,
    state: AuthConfig,
}

/// The event source of one fill task: its own connections (`slots` live at a time) and
/// the auth configs it owns, so no two tasks write one aggregate.
pub struct TaskGen {
    rng: StdRng,
    clock: Arc<BenchClock>,
    ws: Arc<Vec<WorkspaceInfo>>,
    total_weight: u32,
    slots: Vec<Option<Slot>>,
    owned: Vec<OwnedConfig>,
    /// Probability that a burst is an auth config change (only for tasks owning some).
    p_config: f64,
}

impl TaskGen {
    pub fn new(
        task: u64,
        tasks: u64,
        slots: usize,
        clock: Arc<BenchClock>,
        ws: Arc<Vec<WorkspaceInfo>>,
        seed: u64,
    ) -> anyhow::Result<TaskGen> {
        let mut owned = Vec::new();
        let mut all = 0u64;
        for (wi, w) in ws.iter().enumerate() {
            for c in &w.auth_configs {
                if all % tasks == task {
                    let mut state = AuthConfig::default();
                    state.apply(&Event::AuthConfigCreated(AuthConfigCreated {
                        name: c.name.clone(),
                        provider: "x".into(),
                        settings: c.settings.clone(),
                        token_release: false,
                        offered: true,
                    }));
                    owned.push(OwnedConfig {
                        ws: wi,
                        key: AggregateKey::new(&w.id, "auth_config", &c.id)?,
                        state,
                    });
                }
                all += 1;
            }
        }
        let owners = all.min(tasks).max(1);
        let p_config = if owned.is_empty() {
            0.0
        } else {
            (AUTH_CONFIG_CHANGES * tasks as f64 / owners as f64).min(0.5)
        };
        Ok(TaskGen {
            rng: StdRng::seed_from_u64(seed ^ task.wrapping_mul(0x9E37_79B9_7F4A_7C15)),
            clock,
            total_weight: ws.iter().map(|w| w.weight).sum::<u32>().max(1),
            ws,
            slots: (0..slots.max(1)).map(|_| None).collect(),
            owned,
            p_config,
        })
    }

    fn pick_ws(&mut self) -> usize {
        let mut r = self.rng.gen_range(0..self.total_weight);
        for (i, w) in self.ws.iter().enumerate() {
            if r < w.weight {
                return i;
            }
            r -= w.weight;
        }
        0
    }

    fn api_key_actor(&mut self, ws: usize) -> Actor {
        let keys = &self.ws[ws].api_keys;
        let id = keys[self.rng.gen_range(0..keys.len())].clone();
        Actor {
            actor_type: ActorType::ApiKey,
            id,
        }
    }

    /// The next few events, in the order they must be appended (a connect flow's
    /// `initiated` and callback, a refresh round's `refresh_started` and outcome, ...).
    pub fn next_burst(&mut self) -> anyhow::Result<Vec<Append>> {
        let r: f64 = self.rng.gen();
        if r < DENIED {
            return self.denial().map(|a| vec![a]);
        }
        if r < DENIED + AUDIT_QUERIES {
            return self.audit_query().map(|a| vec![a]);
        }
        if r < DENIED + AUDIT_QUERIES + self.p_config {
            return self.config_change().map(|a| vec![a]);
        }
        let i = self.rng.gen_range(0..self.slots.len());
        loop {
            let burst = match self.slots[i].take() {
                None => self.new_connection(i)?,
                Some(slot) => self.advance(i, slot)?,
            };
            if !burst.is_empty() {
                return Ok(burst);
            }
        }
    }

    fn denial(&mut self) -> anyhow::Result<Append> {
        let ws = self.pick_ws();
        let target = Some(uuid::Uuid::now_v7().to_string());
        let anonymous = Actor {
            actor_type: ActorType::Anonymous,
            id: format!(
                "10.{}.{}.{}",
                self.rng.gen_range(0..255),
                self.rng.gen_range(0..255),
                self.rng.gen_range(1..255)
            ),
        };
        let (method, route, status, reason, target_id, actor) = match self.rng.gen_range(0..6) {
            0 => (
                "GET",
                "/v1/connections/{id}",
                404,
                DenialReason::OtherWorkspace,
                target,
                self.api_key_actor(ws),
            ),
            1 => (
                "POST",
                "/v1/auth-configs",
                403,
                DenialReason::RoleNotPermitted,
                None,
                self.api_key_actor(ws),
            ),
            2 => (
                "GET",
                "/v1/connections",
                401,
                DenialReason::UnknownKey,
                None,
                anonymous,
            ),
            3 => (
                "GET",
                "/v1/oauth/callback",
                400,
                DenialReason::InvalidOauthState,
                target,
                anonymous,
            ),
            4 => (
                "GET",
                "/v1/me/connections",
                401,
                DenialReason::ExpiredToken,
                None,
                anonymous,
            ),
            _ => (
                "DELETE",
                "/v1/api-keys/{id}",
                403,
                DenialReason::RoleNotPermitted,
                target,
                self.api_key_actor(ws),
            ),
        };
        Ok(Append {
            key: AggregateKey::new(
                &self.ws[ws].id,
                DENIAL_AGGREGATE,
                uuid::Uuid::now_v7().to_string(),
            )?,
            actor,
            event: Event::AccessDenied(AccessDenied {
                method: method.into(),
                route: route.into(),
                status,
                reason,
                target_id,
            }),
        })
    }

    fn audit_query(&mut self) -> anyhow::Result<Append> {
        let ws = self.pick_ws();
        let mut filters = BTreeMap::new();
        match self.rng.gen_range(0..4) {
            0 => {
                filters.insert("kind".to_string(), "connection.".to_string());
            }
            1 => {
                let users = &self.ws[ws].users;
                let u = users[self.rng.gen_range(0..users.len())].clone();
                filters.insert("user_id".to_string(), u);
            }
            2 => {
                filters.insert("outcome".to_string(), "failure".to_string());
                filters.insert("limit".to_string(), "50".to_string());
            }
            _ => {
                let from = self.clock.peek() - time::Duration::days(1);
                filters.insert(
                    "from".to_string(),
                    authledger::projector::plan::rfc3339(from),
                );
            }
        }
        let actor = self.api_key_actor(ws);
        Ok(Append {
            key: AggregateKey::new(
                &self.ws[ws].id,
                AUDIT_QUERY_AGGREGATE,
                uuid::Uuid::now_v7().to_string(),
            )?,
            actor,
            event: Event::AuditQueried(AuditQueried {
                route: "/v1/audit/events".into(),
                filters,
            }),
        })
    }

    fn config_change(&mut self) -> anyhow::Result<Append> {
        let i = self.rng.gen_range(0..self.owned.len());
        let ws = self.owned[i].ws;
        let actor = self.api_key_actor(ws);
        let roll = self.rng.gen_range(0..10);
        let dk = data_key_id(&mut self.rng);
        let secret = sealed(&mut self.rng, &dk, 40);
        let o = &mut self.owned[i];
        let disabled = o.state.lifecycle == authledger::domain::auth_config::Lifecycle::Disabled;
        let command = if disabled {
            AuthConfigCommand::Enable
        } else {
            match (roll, o.state.settings.clone()) {
                (0..=4, Some(AuthSettings::Oauth2(mut s))) => {
                    let extra = "offline_access".to_string();
                    if s.scopes.contains(&extra) {
                        s.scopes.retain(|x| x != &extra);
                    } else {
                        s.scopes.push(extra);
                    }
                    AuthConfigCommand::Update {
                        name: o.state.name.clone(),
                        settings: AuthSettings::Oauth2(s),
                        token_release: false,
                        offered: true,
                    }
                }
                (0..=4, Some(AuthSettings::ApiKey(mut s))) => {
                    s.prefix = if s.prefix.is_some() {
                        None
                    } else {
                        Some("Bearer".into())
                    };
                    AuthConfigCommand::Update {
                        name: o.state.name.clone(),
                        settings: AuthSettings::ApiKey(s),
                        token_release: false,
                        offered: true,
                    }
                }
                (5..=7, Some(AuthSettings::Oauth2(_))) => {
                    AuthConfigCommand::RotateClientSecret(secret)
                }
                _ => AuthConfigCommand::Disable {
                    reason: Some("incident review".into()),
                },
            }
        };
        let event = decided(&mut o.state, &command, "auth config change")?;
        Ok(Append {
            key: o.key.clone(),
            actor,
            event,
        })
    }

    fn tokens(&mut self, dk: &str, sizes: (usize, usize)) -> OAuthTokens {
        OAuthTokens {
            access_token: sealed(&mut self.rng, dk, sizes.0),
            refresh_token: Some(sealed(&mut self.rng, dk, sizes.1)),
            token_type: "Bearer".into(),
            expires_at: Some(self.clock.peek() + time::Duration::hours(1)),
        }
    }

    /// Starts a connection in slot `i`: an OAuth connect flow (`initiated` + the callback's
    /// `authorized` or `authorization_failed`) or one created from a user's API key.
    fn new_connection(&mut self, i: usize) -> anyhow::Result<Vec<Append>> {
        let ws = self.pick_ws();
        let w = &self.ws[ws];
        let user = w.users[self.rng.gen_range(0..w.users.len())].clone();
        let config = self.rng.gen_range(0..w.auth_configs.len());
        let c = w.auth_configs[config].clone();
        let key = AggregateKey::new(&w.id, "connection", uuid::Uuid::now_v7().to_string())?;
        let api_key = self.api_key_actor(ws);
        let user_actor = Actor {
            actor_type: ActorType::User,
            id: user.clone(),
        };
        let mut state = Connection::default();
        let dk = data_key_id(&mut self.rng);
        let mut out = Vec::new();
        let mut rounds_left = 0;
        if c.oauth {
            let now = self.clock.peek();
            let state_hash = format!("sha256:{}", hex_of(&mut self.rng, 32));
            let initiate = ConnectionCommand::Initiate(ConnectionInitiated {
                auth_config_id: c.id.clone(),
                auth_config_version: 1,
                user_id: user.clone(),
                redirect_url: format!("https://app{ws}.example.com/connected"),
                requested_scopes: c.scopes.clone(),
                state_hash: state_hash.clone(),
                state_expires_at: now + time::Duration::minutes(10),
                pkce_verifier: Some(sealed(&mut self.rng, &dk, 43)),
                data_key_id: dk.clone(),
            });
            out.push(Append {
                key: key.clone(),
                actor: api_key,
                event: decided(&mut state, &initiate, "connection.initiated")?,
            });
            let roll = self.rng.gen_range(0..100);
            let callback_at = now + time::Duration::seconds(20);
            if roll < 93 {
                let authorized = ConnectionAuthorized {
                    scopes: c.scopes.clone(),
                    tokens: self.tokens(&dk, c.token_bytes),
                    granted_scopes: None,
                };
                let cmd = ConnectionCommand::Authorize {
                    state_hash,
                    now: callback_at,
                    authorized,
                };
                out.push(Append {
                    key: key.clone(),
                    actor: user_actor,
                    event: decided(&mut state, &cmd, "connection.authorized")?,
                });
                rounds_left = self.rng.gen_range(0..=2 * MEAN_ROUNDS);
            } else if roll < 98 {
                let cmd = ConnectionCommand::FailAuthorization {
                    state_hash,
                    now: callback_at,
                    failed: ConnectionAuthorizationFailed {
                        error: "access_denied".into(),
                        error_description: Some("The user denied the request".into()),
                    },
                };
                out.push(Append {
                    key: key.clone(),
                    actor: user_actor,
                    event: decided(&mut state, &cmd, "connection.authorization_failed")?,
                });
                return Ok(out);
            } else {
                // Abandoned: the user never came back; the connection stays `initiated`.
                return Ok(out);
            }
        } else {
            let cmd = ConnectionCommand::Create(ConnectionCreated {
                auth_config_id: c.id.clone(),
                auth_config_version: 1,
                user_id: user.clone(),
                credentials: Some(sealed(&mut self.rng, &dk, c.token_bytes.0)),
                data_key_id: dk,
            });
            out.push(Append {
                key: key.clone(),
                actor: api_key,
                event: decided(&mut state, &cmd, "connection.created")?,
            });
        }
        self.slots[i] = Some(Slot {
            ws,
            key,
            user,
            config,
            state,
            rounds_left,
        });
        Ok(out)
    }

    /// The next step of a live connection: a refresh round, or its end (revoked, or left
    /// active and forgotten by the workload). An empty burst frees the slot.
    fn advance(&mut self, i: usize, mut slot: Slot) -> anyhow::Result<Vec<Append>> {
        let mut out = Vec::new();
        let c = self.ws[slot.ws].auth_configs[slot.config].clone();
        let system = Actor::system("refresh-scheduler");
        if slot.rounds_left == 0 {
            if self.rng.gen_range(0..100) < 30 {
                let by_user = self.rng.gen_bool(0.5);
                let actor = if by_user {
                    Actor {
                        actor_type: ActorType::User,
                        id: slot.user.clone(),
                    }
                } else {
                    self.api_key_actor(slot.ws)
                };
                let outcome = match self.rng.gen_range(0..10) {
                    0..=6 => ("revoked", Some(200)),
                    7..=8 => ("not_supported", None),
                    _ => ("failed", Some(503)),
                };
                let cmd = ConnectionCommand::Revoke(ConnectionRevoked {
                    reason: by_user.then(|| "user request".to_string()),
                    provider: ProviderRevocation {
                        outcome: outcome.0.into(),
                        http_status: outcome.1,
                        detail: None,
                    },
                });
                out.push(Append {
                    key: slot.key.clone(),
                    actor,
                    event: decided(&mut slot.state, &cmd, "connection.revoked")?,
                });
            }
            return Ok(out);
        }
        slot.rounds_left -= 1;
        let now = self.clock.peek();
        let (trigger, actor) = if self.rng.gen_range(0..10) < 9 {
            (RefreshTrigger::Scheduled, system)
        } else {
            (RefreshTrigger::OnDemand, self.api_key_actor(slot.ws))
        };
        let start = ConnectionCommand::StartRefresh {
            now,
            seen_rounds: slot.state.refresh_rounds,
            started: RefreshStarted {
                trigger,
                lease_expires_at: now + time::Duration::seconds(60),
            },
        };
        out.push(Append {
            key: slot.key.clone(),
            actor: actor.clone(),
            event: decided(&mut slot.state, &start, "connection.refresh_started")?,
        });
        let dk = slot.state.data_key_id.clone();
        let roll = self.rng.gen_range(0..100);
        let fail = |attempt: u32, error: &str, retryable: bool, is_final: bool| {
            ConnectionCommand::FailRefresh(RefreshFailed {
                attempt,
                error: error.into(),
                retryable,
                is_final,
            })
        };
        let mut ended = false;
        if roll < 84 {
            let cmd = ConnectionCommand::CompleteRefresh(ConnectionRefreshed {
                scopes: c.scopes.clone(),
                tokens: self.tokens(&dk, c.token_bytes),
                refresh_token_rotated: self.rng.gen_bool(0.3),
                attempts: 1,
            });
            out.push(Append {
                key: slot.key.clone(),
                actor,
                event: decided(&mut slot.state, &cmd, "connection.refreshed")?,
            });
        } else if roll < 94 {
            let cmd = fail(1, "provider answered 503", true, false);
            out.push(Append {
                key: slot.key.clone(),
                actor: actor.clone(),
                event: decided(&mut slot.state, &cmd, "connection.refresh_failed")?,
            });
            let cmd = ConnectionCommand::CompleteRefresh(ConnectionRefreshed {
                scopes: c.scopes.clone(),
                tokens: self.tokens(&dk, c.token_bytes),
                refresh_token_rotated: false,
                attempts: 2,
            });
            out.push(Append {
                key: slot.key.clone(),
                actor,
                event: decided(&mut slot.state, &cmd, "connection.refreshed")?,
            });
        } else if roll < 98 {
            let cmd = fail(3, "provider timed out after 3 attempts", true, true);
            out.push(Append {
                key: slot.key.clone(),
                actor,
                event: decided(&mut slot.state, &cmd, "connection.refresh_failed")?,
            });
        } else {
            let cmd = fail(
                1,
                "invalid_grant: Token has been expired or revoked.",
                false,
                true,
            );
            out.push(Append {
                key: slot.key.clone(),
                actor: actor.clone(),
                event: decided(&mut slot.state, &cmd, "connection.refresh_failed")?,
            });
            let cmd = ConnectionCommand::Expire(ConnectionExpired {
                reason: "invalid_grant: refresh token revoked".into(),
            });
            out.push(Append {
                key: slot.key.clone(),
                actor,
                event: decided(&mut slot.state, &cmd, "connection.expired")?,
            });
            ended = true;
        }
        if !ended {
            self.slots[i] = Some(slot);
        }
        Ok(out)
    }
}
