//! The auth config forms: create (the type chooser, the provider picker pre-filled from
//! the catalog) and edit (a new version of only what changed), turned into the same
//! command inputs as the API's bodies.

use askama::Template;
use axum::extract::{Path, Query, State};
use axum::http::{HeaderMap, StatusCode};
use axum::response::Response;
use axum::Form;
use secrecy::SecretString;
use serde::Deserialize;

use std::collections::BTreeMap;

use super::{after, connector_of, found, list_page, settings_map, Outcome};
use crate::api::routes::RouteId;
use crate::app::AppState;
use crate::commands::auth_configs::{
    self, AuthTypeInput, CreateAuthConfigInput, EmptyInput, OAuth2Input, UpdateAuthConfigInput,
};
use crate::commands::CommandError;
use crate::connectors::definition::{form_fields, from_form, FormField};
use crate::connectors::Part;
use crate::console::session::Signed;
use crate::console::{form_error, render, Me};
use crate::domain::auth_config::{ApiKeySettings, ClientAuthMethod, KeyLocation, PostgresSettings};
use crate::projector::store::AuthConfigRow;

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
    /// Native connectors to choose from, and the chosen one's fields (its definition).
    connectors: Vec<(String, String)>,
    connector_fields: Vec<crate::connectors::definition::FormField>,
}

#[derive(Deserialize, Default)]
pub struct NewQuery {
    #[serde(default, rename = "type")]
    kind: String,
    #[serde(default)]
    q: String,
    #[serde(default)]
    provider: String,
    #[serde(default)]
    connector: String,
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
        "connector" => "connector",
        _ => "custom",
    };
    let connector_fields = crate::connectors::definition(&form.connector)
        .map(|d| {
            let given = crate::connectors::definition::from_form(
                d,
                crate::connectors::Part::Config,
                &form.fields,
            );
            let shown = given
                .as_object()
                .map(|m| m.clone().into_iter().collect())
                .unwrap_or_default();
            crate::connectors::definition::form_fields(d, crate::connectors::Part::Config, &shown)
        })
        .unwrap_or_default();
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
        connectors: crate::connectors::definitions()
            .iter()
            .map(|d| (d.id.clone(), d.name.clone()))
            .collect(),
        connector_fields,
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
    let mut form = new_form(&state, kind, &q.provider);
    if let Some(d) = crate::connectors::definition(&q.connector) {
        form.connector = d.id.clone();
        form.name = d.name.clone();
        form.provider = d.id.clone();
    }
    new_page_of(&state, &signed, StatusCode::OK, (&q.q, None), form)
}

/// Every field any auth config form has (create and edit; the type says which count).
#[derive(Deserialize, Default, Clone)]
#[serde(default)]
pub(super) struct AuthConfigForm {
    pub(super) csrf: String,
    pub(super) name: String,
    pub(super) auth_type: String,
    pub(super) provider: String,
    pub(super) client_id: String,
    /// Never shown again: re-rendered forms leave it empty.
    #[serde(skip_serializing)]
    pub(super) client_secret: String,
    pub(super) authorization_url: String,
    pub(super) token_url: String,
    pub(super) revocation_url: String,
    /// Space-separated.
    pub(super) scopes: String,
    /// One per line.
    pub(super) redirect_urls: String,
    pub(super) client_auth_method: String,
    pub(super) pkce: String,
    pub(super) key_name: String,
    pub(super) location: String,
    pub(super) prefix: String,
    pub(super) host: String,
    pub(super) port: String,
    pub(super) database: String,
    pub(super) ssl_mode: String,
    pub(super) token_release: String,
    /// "on": not offered to end users (a checkbox is sent only when ticked, and offering is
    /// the default).
    pub(super) not_offered: String,
    /// The create form this came from (`custom` on the list page).
    pub(super) origin: String,
    /// A native connector's id, and its `f_<field>` inputs (from its definition).
    pub(super) connector: String,
    #[serde(flatten)]
    pub(super) fields: std::collections::HashMap<String, String>,
}

pub(super) fn given(s: &str) -> Option<String> {
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
        connector: None,
        bearer_token: None,
        basic: None,
        no_auth: None,
        token_release: f.token_release == "on",
        offered: Some(f.not_offered != "on"),
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
        "connector" => {
            let d = crate::connectors::definition(&f.connector).ok_or("Choose a connector.")?;
            input.auth_type = AuthTypeInput::Connector;
            input.connector = Some(auth_configs::ConnectorInput {
                id: Some(d.id.clone()),
                settings: crate::connectors::definition::from_form(
                    d,
                    crate::connectors::Part::Config,
                    &f.fields,
                ),
                dynamic_credentials: None,
            });
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
    /// A connector's `config` fields, filled with the stored values (or the ones posted).
    connector_fields: Vec<FormField>,
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
        not_offered: if get("offered") == "false" { "on" } else { "" }.to_string(),
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
    let connector_fields = connector_of(&row)
        .map(|(d, stored)| {
            // Shown: the values posted (after a refusal) or else the stored ones.
            let shown = if form.fields.is_empty() {
                stored
            } else {
                object_of(from_form(d, Part::Config, &form.fields))
            };
            let mut fields = form_fields(d, Part::Config, &shown);
            for (field, def) in fields.iter_mut().zip(d.fields_of(Part::Config)) {
                if def.secret {
                    field.required = false;
                    field.help = format!("Empty: keep the current one. {}", field.help);
                }
            }
            fields
        })
        .unwrap_or_default();
    let page = Edit {
        connector_fields,
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
        connector: None,
        token_release: (now.token_release != f.token_release).then(|| f.token_release == "on"),
        offered: (now.not_offered != f.not_offered).then(|| f.not_offered != "on"),
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
        "connector" => input.connector = connector_update(row, f),
        _ => {}
    }
    Ok(input)
}

/// A connector's `config` part as the edit form gives it, when it differs from the stored
/// one: a secret field left empty keeps its stored value, an emptied optional field goes
/// (its default applies). The command checks the values against the definition.
fn connector_update(
    row: &AuthConfigRow,
    f: &AuthConfigForm,
) -> Option<auth_configs::ConnectorInput> {
    let (d, stored) = connector_of(row)?;
    let given = connector_settings_of(d, &stored, &f.fields);
    let same = crate::connectors::definition::check(d, Part::Config, &given)
        .is_ok_and(|checked| checked == stored);
    (!same).then_some(auth_configs::ConnectorInput {
        id: None,
        settings: given,
        // The console does not edit the policy; the stored one stays.
        dynamic_credentials: None,
    })
}

/// The edit form's `config` values: a secret left empty keeps the stored one.
fn connector_settings_of(
    d: &crate::connectors::Definition,
    stored: &BTreeMap<String, serde_json::Value>,
    form: &std::collections::HashMap<String, String>,
) -> serde_json::Value {
    let mut given = object_of(from_form(d, Part::Config, form));
    for field in d.fields_of(Part::Config).filter(|x| x.secret) {
        if let (false, Some(v)) = (given.contains_key(&field.name), stored.get(&field.name)) {
            given.insert(field.name.clone(), v.clone());
        }
    }
    serde_json::Value::Object(given.into_iter().collect())
}

/// A JSON object's members (none for anything else).
fn object_of(v: serde_json::Value) -> BTreeMap<String, serde_json::Value> {
    match v {
        serde_json::Value::Object(m) => m.into_iter().collect(),
        _ => BTreeMap::new(),
    }
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

#[cfg(test)]
#[allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]
mod tests {
    use super::*;

    fn oauth_row() -> AuthConfigRow {
        AuthConfigRow {
            id: "ac1".into(),
            name: "Gmail".into(),
            provider: "google".into(),
            auth_type: "oauth2".into(),
            status: "enabled".into(),
            version: 1,
            settings: r#"{"auth_type":"oauth2","client_id":"cid","client_secret":{"fingerprint":"hmac-sha256:f"},
                "scopes":["a","b"],"redirect_urls":["https://app.example/back"],"pkce":true,
                "authorization_url":"https://p.example/auth","token_url":"https://p.example/token",
                "revocation_url":null,"client_auth_method":"client_secret_basic","token_release":false}"#
                .into(),
            created_at: String::new(),
            updated_at: String::new(),
            connections: 0,
            last_used_at: None,
        }
    }

    #[test]
    fn an_edit_sends_only_what_changed_so_a_new_secret_alone_is_a_rotation() {
        let row = oauth_row();
        let same = update_input(&row, &form_of(&row)).unwrap();
        assert!(same.name.is_none() && same.oauth2.is_none() && same.token_release.is_none());

        let mut f = form_of(&row);
        f.client_secret = "new secret".into();
        let input = update_input(&row, &f).unwrap();
        assert!(input.name.is_none() && input.token_release.is_none());
        let o = input.oauth2.unwrap();
        assert!(o.client_secret.is_some());
        assert!(o.client_id.is_none() && o.scopes.is_none() && o.redirect_urls.is_none());
        assert!(o.pkce.is_none() && o.client_auth_method.is_none() && o.revocation_url.is_none());

        let mut f = form_of(&row);
        f.scopes = "a  c".into();
        f.pkce = String::new();
        f.name = "Gmail (team)".into();
        let input = update_input(&row, &f).unwrap();
        assert_eq!(input.name.as_deref(), Some("Gmail (team)"));
        let o = input.oauth2.unwrap();
        assert_eq!(o.scopes, Some(vec!["a".to_string(), "c".to_string()]));
        assert_eq!(o.pkce, Some(false));
        assert!(o.client_secret.is_none() && o.client_id.is_none());
    }

    #[test]
    fn a_connector_edit_keeps_a_secret_left_empty_and_takes_a_new_one() {
        let mut d = crate::connectors::definition("postgres").unwrap().clone();
        // No shipped definition has a secret among its settings yet: make one.
        let mut token = d.fields[0].clone();
        (token.name, token.secret, token.required) = ("token".into(), true, false);
        token.kind = crate::connectors::definition::FieldType::String;
        d.fields.push(token);
        let stored: BTreeMap<String, serde_json::Value> = [
            ("host".to_string(), serde_json::json!("db.example")),
            ("token".to_string(), serde_json::json!("stored-secret")),
        ]
        .into();
        let form = |pairs: &[(&str, &str)]| {
            pairs
                .iter()
                .map(|(k, v)| (k.to_string(), v.to_string()))
                .collect()
        };
        let kept = connector_settings_of(
            &d,
            &stored,
            &form(&[("f_host", "db2.example"), ("f_token", "")]),
        );
        assert_eq!(kept["token"], "stored-secret");
        assert_eq!(kept["host"], "db2.example");
        let new = connector_settings_of(
            &d,
            &stored,
            &form(&[("f_host", "db.example"), ("f_token", "new")]),
        );
        assert_eq!(new["token"], "new");
        let shown = form_fields(&d, Part::Config, &stored);
        assert!(shown
            .iter()
            .any(|f| f.input == "f_token" && f.value.is_empty() && f.widget == "password"));
    }

    #[test]
    fn a_create_form_is_the_api_body_of_its_type() {
        let f = AuthConfigForm {
            name: " Acme ".into(),
            auth_type: "api_key".into(),
            location: "query".into(),
            ..AuthConfigForm::default()
        };
        let input = create_input(&f).unwrap();
        assert_eq!(
            (input.name.as_str(), input.provider.as_str()),
            ("Acme", "custom")
        );
        let key = input.api_key.unwrap();
        assert_eq!(
            (key.key_name.as_str(), key.location),
            ("X-API-Key", KeyLocation::Query)
        );
        let f = AuthConfigForm {
            auth_type: "postgres".into(),
            port: "not a port".into(),
            ..AuthConfigForm::default()
        };
        assert!(create_input(&f).is_err());
    }
}
