//! The auth configs screens: the list (name, type, provider, status, last used, live
//! connections), create with a type chooser (an OAuth2 provider from the catalog, whose
//! endpoints and scopes pre-fill the form; the PostgreSQL connector; a custom type), the
//! detail (settings with secrets only as fingerprints, dependent connections, versions with
//! what changed and who changed it), edit (a new version), the connector test, disable,
//! enable, delete (refused while connections depend on it, unless the cascade is confirmed).
//! Every write is the same command as `/v1/auth-configs`, under the same route permission.

use std::collections::BTreeMap;

use askama::Template;
use axum::extract::{Path, Query, State};
use axum::http::{HeaderMap, StatusCode};
use axum::response::Response;
use axum::routing::{get, post};
use axum::{Form, Router};
use secrecy::SecretString;
use serde::Deserialize;
use serde_json::Value;

use super::pages::unavailable;
use super::session::Signed;
use super::{form_error, refused, render, Me};
use crate::api::routes::{role_allows, RouteId, ROUTES};
use crate::app::AppState;
use crate::commands::auth_configs::{
    self, AuthTypeInput, CreateAuthConfigInput, Deleted, EmptyInput, OAuth2Input,
    UpdateAuthConfigInput,
};
use crate::commands::CommandError;
use crate::domain::auth_config::{
    ApiKeySettings, AuthConfigCommand, ClientAuthMethod, KeyLocation, PostgresSettings,
};
use crate::projector::store::{AuthConfigRow, AuthConfigVersionRow, ConnectionRow};

/// The auth configs screens' routes.
pub fn routes(router: Router<AppState>) -> Router<AppState> {
    router
        .route("/console/auth-configs", get(list).post(create))
        .route("/console/auth-configs/new", get(new_page))
        .route("/console/auth-configs/{id}", get(detail))
        .route("/console/auth-configs/{id}/edit", get(edit_page).post(edit))
        .route("/console/auth-configs/{id}/disable", post(disable))
        .route("/console/auth-configs/{id}/enable", post(enable))
        .route("/console/auth-configs/{id}/delete", post(delete))
        .route("/console/auth-configs/{id}/test", post(test))
}

/// Whether the member's role holds the permission of `route` (to show or hide a control;
/// the handler behind it checks again and records a refusal).
pub(super) fn may(signed: &Signed, route: RouteId) -> bool {
    ROUTES
        .iter()
        .find(|r| r.id == route)
        .is_some_and(|r| role_allows(signed.member.caller.role, r.permission))
}

/// An RFC 3339 time as the console shows it: `2026-12-04 11:51:18 UTC`.
pub(super) fn when(t: &str) -> String {
    t.get(..19)
        .map_or(t.to_string(), |s| format!("{} UTC", s.replace('T', " ")))
}

/// A page's notice or error after a form.
#[derive(Default)]
pub(super) struct Outcome {
    pub notice: Option<String>,
    pub error: Option<String>,
}

impl Outcome {
    pub fn done(notice: impl Into<String>) -> (StatusCode, Outcome) {
        let o = Outcome {
            notice: Some(notice.into()),
            error: None,
        };
        (StatusCode::OK, o)
    }

    pub fn failed(status: StatusCode, error: impl Into<String>) -> (StatusCode, Outcome) {
        let o = Outcome {
            notice: None,
            error: Some(error.into()),
        };
        (status, o)
    }
}

/// A 404 page for an id this workspace does not have (another workspace's id is recorded
/// as a probe, as the API does).
pub(super) async fn not_found(
    state: &AppState,
    signed: &Signed,
    at: (&str, &str),
    id: &str,
    elsewhere: bool,
) -> Response {
    crate::commands::probe_of_other_workspace(state, &signed.member.caller, at, id, elsewhere);
    let page = refused(
        StatusCode::NOT_FOUND,
        Some(signed.me(state)),
        "Not found",
        "There is no such item in this workspace.",
    );
    signed.respond(state, page)
}

// ---------------------------------------------------------------------------------------
// The list and the create forms
// ---------------------------------------------------------------------------------------

#[derive(Template)]
#[template(path = "auth_configs.html")]
struct AuthConfigs<'a> {
    me: Option<Me>,
    csrf: String,
    section: &'a str,
    rows: Vec<AuthConfigRow>,
    can_create: bool,
    notice: Option<String>,
    error: Option<String>,
    /// The create card's type: the list page shows the custom form.
    kind: &'a str,
    form: AuthConfigForm,
}

async fn list_page(
    state: &AppState,
    signed: &Signed,
    (status, outcome): (StatusCode, Outcome),
    form: AuthConfigForm,
) -> Response {
    let ws = &signed.member.caller.workspace_id;
    let mut rows = match state.projections.auth_configs(ws).await {
        Ok(rows) => rows,
        Err(e) => return unavailable(signed, state, &e.into()),
    };
    for r in &mut rows {
        r.last_used_at = r.last_used_at.as_deref().map(when);
    }
    let me = signed.me(state);
    let page = AuthConfigs {
        kind: "custom",
        csrf: me.csrf.clone(),
        me: Some(me),
        section: "auth-configs",
        rows,
        can_create: may(signed, RouteId::CreateAuthConfig),
        notice: outcome.notice,
        error: outcome.error,
        form,
    };
    signed.respond(state, render(status, &page))
}

pub async fn list(State(state): State<AppState>, headers: HeaderMap) -> Response {
    let at = ("GET", "/console/auth-configs");
    let signed = signed_for!(state, headers, RouteId::ListAuthConfigs, at);
    let form = AuthConfigForm::default();
    list_page(&state, &signed, (StatusCode::OK, Outcome::default()), form).await
}

/// One catalog provider as the picker shows it.
struct Choice {
    id: String,
    name: String,
    authorization_url: String,
    token_url: String,
    revocation_url: String,
    default_scopes: String,
    all_scopes: String,
    client_auth_method: &'static str,
}

fn choices(q: &str) -> Vec<Choice> {
    let q = q.trim().to_lowercase();
    crate::providers::providers()
        .iter()
        .filter(|p| q.is_empty() || p.name.to_lowercase().contains(&q) || p.id.contains(&q))
        .map(|p| Choice {
            id: p.id.clone(),
            name: p.name.clone(),
            authorization_url: p.oauth2.authorization_url.clone(),
            token_url: p.oauth2.token_url.clone(),
            revocation_url: p.oauth2.revocation_url.clone().unwrap_or_default(),
            default_scopes: p.oauth2.default_scopes.join(" "),
            all_scopes: p
                .oauth2
                .scopes
                .iter()
                .map(|s| s.scope.as_str())
                .collect::<Vec<_>>()
                .join(" "),
            client_auth_method: match p.oauth2.client_auth_method {
                crate::providers::ClientAuthMethod::ClientSecretBasic => "client_secret_basic",
                crate::providers::ClientAuthMethod::ClientSecretPost => "client_secret_post",
            },
        })
        .collect()
}

#[derive(Template)]
#[template(path = "auth_config_new.html")]
struct NewAuthConfig<'a> {
    me: Option<Me>,
    csrf: String,
    section: &'a str,
    kind: String,
    q: String,
    choices: Vec<Choice>,
    /// The redirect URI to register at the provider.
    callback: String,
    error: Option<String>,
    form: AuthConfigForm,
}

#[derive(Deserialize, Default)]
pub struct NewQuery {
    #[serde(default, rename = "type")]
    kind: String,
    #[serde(default)]
    q: String,
    #[serde(default)]
    provider: String,
}

fn new_form(state: &AppState, kind: &str, provider: &str) -> AuthConfigForm {
    let mut form = AuthConfigForm {
        auth_type: kind.to_string(),
        pkce: "on".into(),
        ssl_mode: "require".into(),
        port: "5432".into(),
        client_auth_method: "client_secret_basic".into(),
        provider: "custom".into(),
        origin: "new".into(),
        ..AuthConfigForm::default()
    };
    // Connections started from the console come back to it.
    let base = state.connections.public_url.trim_end_matches('/');
    form.redirect_urls = format!("{base}/console/connections/returned");
    if let Some(p) = crate::providers::provider(provider) {
        let o = &p.oauth2;
        form.provider = p.id.clone();
        form.name = p.name.clone();
        form.authorization_url = o.authorization_url.clone();
        form.token_url = o.token_url.clone();
        form.revocation_url = o.revocation_url.clone().unwrap_or_default();
        form.scopes = o.default_scopes.join(" ");
        form.client_auth_method = match o.client_auth_method {
            crate::providers::ClientAuthMethod::ClientSecretBasic => "client_secret_basic",
            crate::providers::ClientAuthMethod::ClientSecretPost => "client_secret_post",
        }
        .into();
    }
    form
}

fn new_page_of(
    state: &AppState,
    signed: &Signed,
    status: StatusCode,
    (q, error): (&str, Option<String>),
    form: AuthConfigForm,
) -> Response {
    let me = signed.me(state);
    let kind = match form.auth_type.as_str() {
        "oauth2" => "oauth2",
        "postgres" => "postgres",
        _ => "custom",
    };
    let page = NewAuthConfig {
        csrf: me.csrf.clone(),
        me: Some(me),
        section: "auth-configs",
        kind: kind.into(),
        q: q.to_string(),
        choices: choices(q),
        callback: state.connections.callback_url(),
        error,
        form,
    };
    signed.respond(state, render(status, &page))
}

/// The create page: the type chooser and the chosen type's form. Without script the
/// provider picker is a GET form (search, choose, the page comes back pre-filled); with
/// script, `console.js` filters and fills in place.
pub async fn new_page(
    State(state): State<AppState>,
    headers: HeaderMap,
    Query(q): Query<NewQuery>,
) -> Response {
    let at = ("GET", "/console/auth-configs/new");
    let signed = signed_for!(state, headers, RouteId::CreateAuthConfig, at);
    let kind = if q.kind.is_empty() { "oauth2" } else { &q.kind };
    let form = new_form(&state, kind, &q.provider);
    new_page_of(&state, &signed, StatusCode::OK, (&q.q, None), form)
}

/// Every field any auth config form has (create and edit; the type says which count).
#[derive(Deserialize, Default, Clone)]
#[serde(default)]
pub struct AuthConfigForm {
    csrf: String,
    name: String,
    auth_type: String,
    provider: String,
    client_id: String,
    /// Never shown again: re-rendered forms leave it empty.
    #[serde(skip_serializing)]
    client_secret: String,
    authorization_url: String,
    token_url: String,
    revocation_url: String,
    /// Space-separated.
    scopes: String,
    /// One per line.
    redirect_urls: String,
    client_auth_method: String,
    pkce: String,
    key_name: String,
    location: String,
    prefix: String,
    host: String,
    port: String,
    database: String,
    ssl_mode: String,
    token_release: String,
    /// The create form this came from (`custom` on the list page).
    origin: String,
}

fn given(s: &str) -> Option<String> {
    let s = s.trim();
    (!s.is_empty()).then(|| s.to_string())
}

fn words(s: &str) -> Vec<String> {
    s.split_whitespace().map(str::to_string).collect()
}

fn method(s: &str) -> Result<ClientAuthMethod, String> {
    match s {
        "client_secret_basic" => Ok(ClientAuthMethod::ClientSecretBasic),
        "client_secret_post" => Ok(ClientAuthMethod::ClientSecretPost),
        _ => Err("Choose how the client authenticates.".into()),
    }
}

fn api_key_settings(f: &AuthConfigForm) -> Result<ApiKeySettings, String> {
    let location = match f.location.as_str() {
        "" | "header" => KeyLocation::Header,
        "query" => KeyLocation::Query,
        "cookie" => KeyLocation::Cookie,
        _ => return Err("Choose where the key goes.".into()),
    };
    Ok(ApiKeySettings {
        key_name: given(&f.key_name).unwrap_or_else(|| "X-API-Key".into()),
        location,
        prefix: given(&f.prefix),
    })
}

fn postgres_settings(f: &AuthConfigForm) -> Result<PostgresSettings, String> {
    Ok(PostgresSettings {
        host: f.host.trim().to_string(),
        port: f
            .port
            .trim()
            .parse()
            .map_err(|_| "The port is a number from 1 to 65535.")?,
        database: f.database.trim().to_string(),
        ssl_mode: given(&f.ssl_mode).unwrap_or_else(|| "require".into()),
    })
}

/// What the create form asks for, as the command's input (the same as the API's body).
fn create_input(f: &AuthConfigForm) -> Result<CreateAuthConfigInput, String> {
    let mut input = CreateAuthConfigInput {
        name: f.name.trim().to_string(),
        provider: given(&f.provider).unwrap_or_else(|| "custom".into()),
        auth_type: AuthTypeInput::ApiKey,
        oauth2: None,
        api_key: None,
        postgres: None,
        bearer_token: None,
        basic: None,
        no_auth: None,
        token_release: f.token_release == "on",
    };
    match f.auth_type.as_str() {
        "oauth2" => {
            input.auth_type = AuthTypeInput::Oauth2;
            input.oauth2 = Some(OAuth2Input {
                client_id: given(&f.client_id),
                client_secret: given(&f.client_secret).map(SecretString::from),
                scopes: given(&f.scopes).map(|s| words(&s)),
                redirect_urls: Some(words(&f.redirect_urls)),
                authorization_url: given(&f.authorization_url),
                token_url: given(&f.token_url),
                revocation_url: given(&f.revocation_url),
                client_auth_method: Some(method(&f.client_auth_method)?),
                pkce: Some(f.pkce == "on"),
                extra_authorize_params: None,
            });
        }
        "postgres" => {
            input.auth_type = AuthTypeInput::Postgres;
            input.postgres = Some(postgres_settings(f)?);
        }
        "bearer_token" => {
            input.auth_type = AuthTypeInput::BearerToken;
            input.bearer_token = Some(EmptyInput {});
        }
        "basic" => {
            input.auth_type = AuthTypeInput::Basic;
            input.basic = Some(EmptyInput {});
        }
        "no_auth" => {
            input.auth_type = AuthTypeInput::NoAuth;
            input.no_auth = Some(EmptyInput {});
        }
        _ => input.api_key = Some(api_key_settings(f)?),
    }
    Ok(input)
}

pub async fn create(
    State(state): State<AppState>,
    headers: HeaderMap,
    Form(form): Form<AuthConfigForm>,
) -> Response {
    let at = ("POST", "/console/auth-configs");
    let signed = signed_for!(state, headers, RouteId::CreateAuthConfig, at);
    if let Err(answer) = signed.check_form(&state, &headers, &form.csrf, at.1).await {
        return answer;
    }
    let outcome = match create_input(&form) {
        Err(message) => Err(message),
        Ok(input) => auth_configs::create(&state, &signed.member.caller, input)
            .await
            .map_err(|e| form_error(&e)),
    };
    let shown = AuthConfigForm {
        client_secret: String::new(),
        ..form.clone()
    };
    match outcome {
        Ok(_) => {
            let notice = format!("Created \"{}\".", form.name.trim());
            let blank = AuthConfigForm::default();
            list_page(&state, &signed, Outcome::done(notice), blank).await
        }
        Err(message) if form.origin == "new" => new_page_of(
            &state,
            &signed,
            StatusCode::UNPROCESSABLE_ENTITY,
            ("", Some(message)),
            shown,
        ),
        Err(message) => {
            let failed = Outcome::failed(StatusCode::UNPROCESSABLE_ENTITY, message);
            list_page(&state, &signed, failed, shown).await
        }
    }
}

// ---------------------------------------------------------------------------------------
// The detail page
// ---------------------------------------------------------------------------------------

/// One setting as shown: its path (`scopes`, `client_secret.fingerprint`) and value.
pub(super) type Setting = (String, String);

/// Settings flattened to `path = value` (arrays of words joined by spaces).
fn flatten(v: &Value, prefix: &str, out: &mut BTreeMap<String, String>) {
    match v {
        Value::Object(map) => {
            for (k, v) in map {
                let path = if prefix.is_empty() {
                    k.clone()
                } else {
                    format!("{prefix}.{k}")
                };
                flatten(v, &path, out);
            }
        }
        Value::Array(items) => {
            let text: Vec<String> = items
                .iter()
                .map(|i| i.as_str().map_or_else(|| i.to_string(), str::to_string))
                .collect();
            out.insert(prefix.to_string(), text.join(" "));
        }
        Value::String(s) => {
            out.insert(prefix.to_string(), s.clone());
        }
        Value::Null => {
            out.insert(prefix.to_string(), String::new());
        }
        other => {
            out.insert(prefix.to_string(), other.to_string());
        }
    }
}

pub(super) fn settings_map(json: &str) -> BTreeMap<String, String> {
    let mut out = BTreeMap::new();
    if let Ok(v) = serde_json::from_str::<Value>(json) {
        flatten(&v, "", &mut out);
    }
    out
}

/// One version as the history shows it: what changed from the one before, and who.
struct Version {
    version: i64,
    kind: String,
    at: String,
    who: String,
    changed: String,
    /// (setting, before, after)
    diff: Vec<(String, String, String)>,
}

fn versions_of(rows: &[AuthConfigVersionRow], names: &BTreeMap<String, String>) -> Vec<Version> {
    let mut before = BTreeMap::new();
    let mut before_name = String::new();
    let mut out = Vec::new();
    for r in rows {
        let mut after = settings_map(&r.settings);
        after.insert("name".into(), r.name.clone());
        let mut keys: Vec<&String> = before.keys().chain(after.keys()).collect();
        keys.sort();
        keys.dedup();
        let diff = keys
            .into_iter()
            .filter_map(|k| {
                let (a, b) = (before.get(k), after.get(k));
                (a != b).then(|| {
                    let show = |v: Option<&String>| v.cloned().unwrap_or_default();
                    (k.clone(), show(a), show(b))
                })
            })
            .collect();
        let changed: Vec<String> = serde_json::from_str(&r.changed).unwrap_or_default();
        out.push(Version {
            version: r.version,
            kind: r.kind.clone(),
            at: when(&r.at),
            who: names
                .get(&r.actor_id)
                .cloned()
                .unwrap_or_else(|| r.actor_id.clone()),
            changed: changed.join(", "),
            diff,
        });
        before_name.clone_from(&r.name);
        before = after;
    }
    out.reverse();
    out
}

#[derive(Template)]
#[template(path = "auth_config.html")]
struct Detail<'a> {
    me: Option<Me>,
    csrf: String,
    section: &'a str,
    row: AuthConfigRow,
    settings: Vec<Setting>,
    dependants: Vec<ConnectionRow>,
    versions: Vec<Version>,
    can_manage: bool,
    can_test: bool,
    /// The connector test's result: (passed, what it said).
    tested: Option<(bool, String)>,
    notice: Option<String>,
    error: Option<String>,
}

/// Who the actors in a history are: members by email (ids otherwise).
pub(super) async fn actor_names(state: &AppState, signed: &Signed) -> BTreeMap<String, String> {
    match crate::commands::members::list(state, &signed.member.caller).await {
        Ok(members) => members.into_iter().map(|m| (m.id, m.email)).collect(),
        Err(e) => {
            tracing::warn!(error = %e, "members unavailable for the console's history");
            BTreeMap::new()
        }
    }
}

/// The auth config of this workspace, or the page to answer instead.
async fn found(
    state: &AppState,
    signed: &Signed,
    at: (&str, &str),
    id: &str,
) -> Result<AuthConfigRow, Response> {
    let ws = &signed.member.caller.workspace_id;
    match state.projections.auth_config(ws, id).await {
        Ok(Some(row)) if row.status != "deleted" => Ok(row),
        Ok(_) => {
            let elsewhere = state
                .projections
                .auth_config_elsewhere(ws, id)
                .await
                .unwrap_or(false);
            Err(not_found(state, signed, at, id, elsewhere).await)
        }
        Err(e) => Err(unavailable(signed, state, &e.into())),
    }
}

async fn detail_page(
    state: &AppState,
    signed: &Signed,
    row: AuthConfigRow,
    (status, outcome): (StatusCode, Outcome),
    tested: Option<(bool, String)>,
) -> Response {
    let ws = &signed.member.caller.workspace_id;
    let reads = async {
        let dependants = state.projections.live_connections_of(ws, &row.id).await?;
        let versions = state.projections.auth_config_versions(ws, &row.id).await?;
        Ok::<_, crate::projector::store::ProjectionError>((dependants, versions))
    };
    let (dependants, versions) = match reads.await {
        Ok(r) => r,
        Err(e) => return unavailable(signed, state, &e.into()),
    };
    let names = actor_names(state, signed).await;
    let mut row = row;
    row.created_at = when(&row.created_at);
    row.updated_at = when(&row.updated_at);
    row.last_used_at = row.last_used_at.as_deref().map(when);
    let me = signed.me(state);
    let page = Detail {
        csrf: me.csrf.clone(),
        me: Some(me),
        section: "auth-configs",
        settings: settings_map(&row.settings).into_iter().collect(),
        can_test: row.auth_type == "postgres" && may(signed, RouteId::TestAuthConfig),
        can_manage: may(signed, RouteId::UpdateAuthConfig),
        row,
        dependants,
        versions: versions_of(&versions, &names),
        tested,
        notice: outcome.notice,
        error: outcome.error,
    };
    signed.respond(state, render(status, &page))
}

pub async fn detail(
    State(state): State<AppState>,
    headers: HeaderMap,
    Path(id): Path<String>,
) -> Response {
    let at = ("GET", "/console/auth-configs/{id}");
    let signed = signed_for!(state, headers, RouteId::GetAuthConfig, at);
    match found(&state, &signed, at, &id).await {
        Ok(row) => {
            let ok = (StatusCode::OK, Outcome::default());
            detail_page(&state, &signed, row, ok, None).await
        }
        Err(answer) => answer,
    }
}

/// After a write: the detail page again, fresh, with what the write did.
async fn after(
    state: &AppState,
    signed: &Signed,
    at: (&str, &str),
    id: &str,
    outcome: (StatusCode, Outcome),
) -> Response {
    match found(state, signed, at, id).await {
        Ok(row) => detail_page(state, signed, row, outcome, None).await,
        Err(answer) => answer,
    }
}

#[derive(Deserialize)]
pub struct PlainForm {
    csrf: String,
    #[serde(default)]
    cascade: String,
    #[serde(default)]
    reason: String,
}

async fn lifecycle(
    state: AppState,
    headers: HeaderMap,
    (id, form): (String, PlainForm),
    (route, at): (RouteId, (&str, &str)),
) -> Response {
    let signed = signed_for!(state, headers, route, at);
    if let Err(answer) = signed.check_form(&state, &headers, &form.csrf, at.1).await {
        return answer;
    }
    if let Err(answer) = found(&state, &signed, at, &id).await {
        return answer;
    }
    let (command, done) = if route == RouteId::DisableAuthConfig {
        let reason = given(&form.reason);
        let command = AuthConfigCommand::Disable { reason };
        (command, "Disabled: no new connections or token use.")
    } else {
        (AuthConfigCommand::Enable, "Enabled.")
    };
    let caller = &signed.member.caller;
    let outcome = match auth_configs::lifecycle(&state, caller, &id, command).await {
        Ok(_) => Outcome::done(done),
        Err(e) => Outcome::failed(StatusCode::UNPROCESSABLE_ENTITY, form_error(&e)),
    };
    after(&state, &signed, at, &id, outcome).await
}

pub async fn disable(
    State(state): State<AppState>,
    headers: HeaderMap,
    Path(id): Path<String>,
    Form(form): Form<PlainForm>,
) -> Response {
    let at = ("POST", "/console/auth-configs/{id}/disable");
    lifecycle(state, headers, (id, form), (RouteId::DisableAuthConfig, at)).await
}

pub async fn enable(
    State(state): State<AppState>,
    headers: HeaderMap,
    Path(id): Path<String>,
    Form(form): Form<PlainForm>,
) -> Response {
    let at = ("POST", "/console/auth-configs/{id}/enable");
    lifecycle(state, headers, (id, form), (RouteId::EnableAuthConfig, at)).await
}

/// Deletes; live connections refuse it unless the form confirms revoking them too.
pub async fn delete(
    State(state): State<AppState>,
    headers: HeaderMap,
    Path(id): Path<String>,
    Form(form): Form<PlainForm>,
) -> Response {
    let at = ("POST", "/console/auth-configs/{id}/delete");
    let signed = signed_for!(state, headers, RouteId::DeleteAuthConfig, at);
    if let Err(answer) = signed.check_form(&state, &headers, &form.csrf, at.1).await {
        return answer;
    }
    let row = match found(&state, &signed, at, &id).await {
        Ok(row) => row,
        Err(answer) => return answer,
    };
    let cascade = form.cascade == "revoke";
    match auth_configs::delete(&state, &signed.member.caller, &id, cascade).await {
        Ok(Deleted::Done {
            revoked_connections,
        }) => {
            let notice = format!(
                "Deleted \"{}\"; {revoked_connections} connection(s) revoked.",
                row.name
            );
            let blank = AuthConfigForm::default();
            list_page(&state, &signed, Outcome::done(notice), blank).await
        }
        Ok(Deleted::HasDependants(ids)) => {
            let message = format!(
                "{} live connection(s) depend on it. Revoke them first, or tick \"Also revoke\" to revoke them with it.",
                ids.len()
            );
            let refused = Outcome::failed(StatusCode::CONFLICT, message);
            detail_page(&state, &signed, row, refused, None).await
        }
        Err(e) => {
            let failed = Outcome::failed(StatusCode::UNPROCESSABLE_ENTITY, form_error(&e));
            detail_page(&state, &signed, row, failed, None).await
        }
    }
}

#[derive(Deserialize)]
pub struct TestForm {
    csrf: String,
    #[serde(default)]
    user: String,
    #[serde(default)]
    password: String,
}

/// The connector test: connect with the given credentials (never kept, never shown again).
pub async fn test(
    State(state): State<AppState>,
    headers: HeaderMap,
    Path(id): Path<String>,
    Form(form): Form<TestForm>,
) -> Response {
    let at = ("POST", "/console/auth-configs/{id}/test");
    let signed = signed_for!(state, headers, RouteId::TestAuthConfig, at);
    if let Err(answer) = signed.check_form(&state, &headers, &form.csrf, at.1).await {
        return answer;
    }
    let row = match found(&state, &signed, at, &id).await {
        Ok(row) => row,
        Err(answer) => return answer,
    };
    let credentials = serde_json::json!({ "user": form.user.trim(), "password": form.password });
    let caller = &signed.member.caller;
    let ok = (StatusCode::OK, Outcome::default());
    match auth_configs::test(&state, caller, &id, Some(credentials)).await {
        Ok(report) => {
            let tested = if report["ok"] == Value::Bool(true) {
                let ms = report["latency_ms"].as_u64().unwrap_or_default();
                (true, format!("Connected and ran SELECT 1 in {ms} ms."))
            } else {
                let error = report["error"].as_str().unwrap_or("the test failed");
                (false, format!("Could not connect: {error}"))
            };
            detail_page(&state, &signed, row, ok, Some(tested)).await
        }
        Err(e) => {
            let failed = Outcome::failed(StatusCode::UNPROCESSABLE_ENTITY, form_error(&e));
            detail_page(&state, &signed, row, failed, None).await
        }
    }
}

// ---------------------------------------------------------------------------------------
// Edit: a new version
// ---------------------------------------------------------------------------------------

#[derive(Template)]
#[template(path = "auth_config_edit.html")]
struct Edit<'a> {
    me: Option<Me>,
    csrf: String,
    section: &'a str,
    row: AuthConfigRow,
    form: AuthConfigForm,
    fingerprint: String,
    error: Option<String>,
}

/// The form as the auth config is now (secrets left out).
fn form_of(row: &AuthConfigRow) -> AuthConfigForm {
    let s = settings_map(&row.settings);
    let get = |k: &str| s.get(k).cloned().unwrap_or_default();
    let on = |k: &str| if get(k) == "true" { "on" } else { "" }.to_string();
    AuthConfigForm {
        name: row.name.clone(),
        auth_type: row.auth_type.clone(),
        provider: row.provider.clone(),
        client_id: get("client_id"),
        authorization_url: get("authorization_url"),
        token_url: get("token_url"),
        revocation_url: get("revocation_url"),
        scopes: get("scopes"),
        redirect_urls: get("redirect_urls").replace(' ', "\n"),
        client_auth_method: get("client_auth_method"),
        pkce: on("pkce"),
        key_name: get("key_name"),
        location: get("location"),
        prefix: get("prefix"),
        host: get("host"),
        port: get("port"),
        database: get("database"),
        ssl_mode: get("ssl_mode"),
        token_release: on("token_release"),
        ..AuthConfigForm::default()
    }
}

fn edit_page_of(
    state: &AppState,
    signed: &Signed,
    row: AuthConfigRow,
    (status, error): (StatusCode, Option<String>),
    form: AuthConfigForm,
) -> Response {
    let me = signed.me(state);
    let fingerprint = settings_map(&row.settings)
        .remove("client_secret.fingerprint")
        .unwrap_or_default();
    let page = Edit {
        csrf: me.csrf.clone(),
        me: Some(me),
        section: "auth-configs",
        row,
        form,
        fingerprint,
        error,
    };
    signed.respond(state, render(status, &page))
}

pub async fn edit_page(
    State(state): State<AppState>,
    headers: HeaderMap,
    Path(id): Path<String>,
) -> Response {
    let at = ("GET", "/console/auth-configs/{id}/edit");
    let signed = signed_for!(state, headers, RouteId::UpdateAuthConfig, at);
    match found(&state, &signed, at, &id).await {
        Ok(row) => {
            let form = form_of(&row);
            edit_page_of(&state, &signed, row, (StatusCode::OK, None), form)
        }
        Err(answer) => answer,
    }
}

/// `new` if it differs from `old` (only what changed goes into the update, so a new client
/// secret alone is a rotation, as in the API).
fn changed(old: &str, new: &str) -> Option<String> {
    (old.trim() != new.trim()).then(|| new.trim().to_string())
}

/// The update the edit form asks for: the fields that differ from the current version.
fn update_input(row: &AuthConfigRow, f: &AuthConfigForm) -> Result<UpdateAuthConfigInput, String> {
    let now = form_of(row);
    let mut input = UpdateAuthConfigInput {
        name: changed(&now.name, &f.name),
        oauth2: None,
        api_key: None,
        postgres: None,
        token_release: (now.token_release != f.token_release).then(|| f.token_release == "on"),
    };
    match row.auth_type.as_str() {
        "oauth2" => {
            let o = OAuth2Input {
                client_id: changed(&now.client_id, &f.client_id),
                client_secret: given(&f.client_secret).map(SecretString::from),
                scopes: (words(&now.scopes) != words(&f.scopes)).then(|| words(&f.scopes)),
                redirect_urls: (words(&now.redirect_urls) != words(&f.redirect_urls))
                    .then(|| words(&f.redirect_urls)),
                authorization_url: changed(&now.authorization_url, &f.authorization_url),
                token_url: changed(&now.token_url, &f.token_url),
                revocation_url: changed(&now.revocation_url, &f.revocation_url),
                client_auth_method: match changed(&now.client_auth_method, &f.client_auth_method) {
                    Some(m) => Some(method(&m)?),
                    None => None,
                },
                pkce: (now.pkce != f.pkce).then(|| f.pkce == "on"),
                extra_authorize_params: None,
            };
            let any = o.client_id.is_some()
                || o.client_secret.is_some()
                || o.scopes.is_some()
                || o.redirect_urls.is_some()
                || o.authorization_url.is_some()
                || o.token_url.is_some()
                || o.revocation_url.is_some()
                || o.client_auth_method.is_some()
                || o.pkce.is_some();
            input.oauth2 = any.then_some(o);
        }
        "api_key" => {
            let k = api_key_settings(f)?;
            let same = api_key_settings(&now).is_ok_and(|old| old == k);
            input.api_key = (!same).then_some(k);
        }
        "postgres" => {
            let p = postgres_settings(f)?;
            let same = postgres_settings(&now).is_ok_and(|old| old == p);
            input.postgres = (!same).then_some(p);
        }
        _ => {}
    }
    Ok(input)
}

pub async fn edit(
    State(state): State<AppState>,
    headers: HeaderMap,
    Path(id): Path<String>,
    Form(form): Form<AuthConfigForm>,
) -> Response {
    let at = ("POST", "/console/auth-configs/{id}/edit");
    let signed = signed_for!(state, headers, RouteId::UpdateAuthConfig, at);
    if let Err(answer) = signed.check_form(&state, &headers, &form.csrf, at.1).await {
        return answer;
    }
    let row = match found(&state, &signed, at, &id).await {
        Ok(row) => row,
        Err(answer) => return answer,
    };
    let outcome = match update_input(&row, &form) {
        Err(message) => Err(message),
        Ok(input) => auth_configs::update(&state, &signed.member.caller, &id, input)
            .await
            .map_err(|e: CommandError| form_error(&e)),
    };
    match outcome {
        Ok(_) => {
            let done = Outcome::done("Saved as a new version.");
            after(&state, &signed, at, &id, done).await
        }
        Err(message) => {
            let shown = AuthConfigForm {
                client_secret: String::new(),
                ..form
            };
            let status = (StatusCode::UNPROCESSABLE_ENTITY, Some(message));
            edit_page_of(&state, &signed, row, status, shown)
        }
    }
}
