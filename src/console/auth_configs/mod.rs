//! The auth configs screens: the list (name, type, provider, status, last used, live
//! connections), create with a type chooser (an OAuth2 provider from the catalog, whose
//! endpoints and scopes pre-fill the form; the PostgreSQL connector; a custom type), the
//! detail (settings with secrets only as fingerprints, dependent connections, versions with
//! what changed and who changed it), edit (a new version), the connector test, disable,
//! enable, delete (refused while connections depend on it, unless the cascade is confirmed).
//! Every write is the same command as `/v1/auth-configs`, under the same route permission.

use std::collections::{BTreeMap, HashMap};

mod form;

use std::future::Future;

use askama::Template;
use axum::extract::{Path, State};
use axum::http::{HeaderMap, StatusCode};
use axum::response::Response;
use axum::routing::{get, post};
use axum::{Form, Router};
use serde::Deserialize;
use serde_json::Value;

use self::form::{create, edit, edit_page, given, new_page, AuthConfigForm};
use super::pages::unavailable;
use super::session::Signed;
use super::{form_error, refused, render, Me};
use crate::api::routes::{role_allows, RouteId, ROUTES};
use crate::app::AppState;
use crate::commands::auth_configs::{self, Deleted};
use crate::connectors::definition::{form_fields, from_form, FormField};
use crate::connectors::Part;
use crate::domain::auth_config::AuthConfigCommand;
use crate::projector::store::{
    AuthConfigRow, AuthConfigVersionRow, ConnectionRow, ProjectionError,
};

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

pub(super) use crate::web::when;

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

/// The row a projection read found if it is this workspace's and not deleted; otherwise the
/// 404 page (an id that exists in another workspace is recorded as a probe).
pub(super) async fn visible<T>(
    state: &AppState,
    signed: &Signed,
    (at, id): ((&str, &str), &str),
    read: Result<Option<T>, ProjectionError>,
    (deleted, elsewhere): (
        impl Fn(&T) -> bool,
        impl Future<Output = Result<bool, ProjectionError>>,
    ),
) -> Result<T, Response> {
    match read {
        Ok(Some(row)) if !deleted(&row) => Ok(row),
        Ok(_) => {
            let elsewhere = elsewhere.await.unwrap_or(false);
            Err(not_found(state, signed, at, id, elsewhere).await)
        }
        Err(e) => Err(unavailable(signed, state, &e.into())),
    }
}

// ---------------------------------------------------------------------------------------
// The list
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
    /// A native connector's credential fields for its test (empty for the legacy
    /// `postgres` type, whose form is its own), and what its test does.
    test_fields: Vec<FormField>,
    test_operation: String,
    /// The connector test's result.
    tested: Option<Tested>,
    notice: Option<String>,
    error: Option<String>,
}

/// A connector test's result as the detail page shows it.
pub(super) struct Tested {
    pub passed: bool,
    /// The failure's class (`invalid_credentials`, …), empty when it passed.
    pub class: String,
    /// The class in words.
    pub meaning: &'static str,
    /// What the server said (secrets taken out by the connector), or the round trip.
    pub said: String,
}

impl Tested {
    /// The test command's report as shown.
    fn of(report: &Value, operation: &str) -> Tested {
        if report["ok"] == Value::Bool(true) {
            let ms = report["latency_ms"].as_u64().unwrap_or_default();
            return Tested {
                passed: true,
                class: String::new(),
                meaning: "",
                said: format!("The service accepted them ({operation}: {ms} ms)."),
            };
        }
        let class = report["class"].as_str().unwrap_or("failed").to_string();
        let error = report["error"].as_str().unwrap_or("the test failed");
        let said = error
            .strip_prefix(&format!("{class}: "))
            .unwrap_or(error)
            .to_string();
        Tested {
            meaning: meaning_of(&class),
            class,
            passed: false,
            said,
        }
    }
}

/// What a failure class means, for the person reading the result.
fn meaning_of(class: &str) -> &'static str {
    match class {
        "unreachable" => "Nothing accepted the connection at that host and port.",
        "timeout" => "The service did not answer in time.",
        "tls_failure" => "The TLS handshake or the server's certificate failed.",
        "invalid_credentials" => "The service refused the user name or password.",
        "permission_denied" => "Logged in, but not allowed to do the test's operation.",
        "not_found" => "The database, bucket or virtual host does not exist.",
        _ => "The service refused the test.",
    }
}

/// The non-secret credential values given (a form shows them again; never a secret).
pub(super) fn non_secret_credentials(
    d: &crate::connectors::Definition,
    given: &Value,
) -> BTreeMap<String, Value> {
    d.fields_of(Part::Credentials)
        .filter(|f| !f.secret)
        .filter_map(|f| Some((f.name.clone(), given.get(&f.name)?.clone())))
        .collect()
}

/// A connector auth config's definition and its stored `config` values (none for another
/// type, or a connector this build does not know).
pub(super) fn connector_of(
    row: &AuthConfigRow,
) -> Option<(
    &'static crate::connectors::Definition,
    BTreeMap<String, Value>,
)> {
    if row.auth_type != "connector" {
        return None;
    }
    let v: Value = serde_json::from_str(&row.settings).ok()?;
    let definition = crate::connectors::definition(v["connector"].as_str()?)?;
    let values = v["settings"]
        .as_object()
        .map(|m| m.clone().into_iter().collect())
        .unwrap_or_default();
    Some((definition, values))
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
    let read = state.projections.auth_config(ws, id).await;
    let deleted = |row: &AuthConfigRow| row.status == "deleted";
    let elsewhere = state.projections.auth_config_elsewhere(ws, id);
    visible(state, signed, (at, id), read, (deleted, elsewhere)).await
}

async fn detail_page(
    state: &AppState,
    signed: &Signed,
    row: AuthConfigRow,
    (status, outcome): (StatusCode, Outcome),
    (tested, kept): (Option<Tested>, BTreeMap<String, Value>),
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
    let connector = connector_of(&row);
    let (test_fields, test_operation) = match &connector {
        Some((d, _)) => (
            form_fields(d, Part::Credentials, &kept),
            d.test.operation.clone(),
        ),
        None => (Vec::new(), "SELECT 1".to_string()),
    };
    let testable = row.auth_type == "postgres" || connector.is_some();
    let me = signed.me(state);
    let page = Detail {
        csrf: me.csrf.clone(),
        me: Some(me),
        section: "auth-configs",
        settings: settings_map(&row.settings).into_iter().collect(),
        can_test: testable && may(signed, RouteId::TestAuthConfig),
        test_fields,
        test_operation,
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
            detail_page(&state, &signed, row, ok, (None, BTreeMap::new())).await
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
        Ok(row) => detail_page(state, signed, row, outcome, (None, BTreeMap::new())).await,
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
            detail_page(&state, &signed, row, refused, (None, BTreeMap::new())).await
        }
        Err(e) => {
            let failed = Outcome::failed(StatusCode::UNPROCESSABLE_ENTITY, form_error(&e));
            detail_page(&state, &signed, row, failed, (None, BTreeMap::new())).await
        }
    }
}

#[derive(Deserialize)]
pub struct TestForm {
    csrf: String,
    /// The legacy `postgres` type's inputs.
    #[serde(default)]
    user: String,
    #[serde(default)]
    password: String,
    /// A connector's `f_<field>` inputs (its definition's credential fields).
    #[serde(flatten)]
    fields: HashMap<String, String>,
}

/// The connector test: connect with the given credentials (never kept, never shown again;
/// non-secret ones are filled in again). The run is recorded by the command.
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
    let (credentials, kept, operation) = match connector_of(&row) {
        Some((d, _)) => {
            let given = from_form(d, Part::Credentials, &form.fields);
            let kept = non_secret_credentials(d, &given);
            (given, kept, d.test.operation.clone())
        }
        None => {
            let given = serde_json::json!({ "user": form.user.trim(), "password": form.password });
            (given, BTreeMap::new(), "SELECT 1".to_string())
        }
    };
    let caller = &signed.member.caller;
    let ok = (StatusCode::OK, Outcome::default());
    match auth_configs::test(&state, caller, &id, Some(credentials)).await {
        Ok(report) => {
            let tested = Tested::of(&report, &operation);
            detail_page(&state, &signed, row, ok, (Some(tested), kept)).await
        }
        Err(e) => {
            let failed = Outcome::failed(StatusCode::UNPROCESSABLE_ENTITY, form_error(&e));
            detail_page(&state, &signed, row, failed, (None, kept)).await
        }
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]
mod tests {
    use super::*;

    fn version(
        n: i64,
        name: &str,
        settings: &str,
        changed: &str,
        actor: &str,
    ) -> AuthConfigVersionRow {
        AuthConfigVersionRow {
            version: n,
            kind: "auth_config.updated".into(),
            name: name.into(),
            settings: settings.into(),
            changed: changed.into(),
            at: "2026-12-04T11:51:18.123Z".into(),
            actor_id: actor.into(),
        }
    }

    #[test]
    fn each_version_shows_what_changed_from_the_one_before_and_who_changed_it() {
        let rows = [
            version(
                1,
                "Gmail",
                r#"{"scopes":["a","b"],"client_secret":{"fingerprint":"hmac-sha256:1"},"pkce":true}"#,
                r#"["created"]"#,
                "m1",
            ),
            version(
                2,
                "Gmail (team)",
                r#"{"scopes":["a"],"client_secret":{"fingerprint":"hmac-sha256:2"},"pkce":true}"#,
                r#"["name","scopes","client_secret"]"#,
                "key1",
            ),
        ];
        let names = BTreeMap::from([("m1".to_string(), "admin@example.com".to_string())]);
        let v = versions_of(&rows, &names);
        let diff = |d: &[(String, String, String)]| -> Vec<(String, String, String)> { d.to_vec() };
        let t = |a: &str, b: &str, c: &str| (a.to_string(), b.to_string(), c.to_string());
        assert_eq!(
            (v[0].version, v[0].who.as_str()),
            (2, "key1"),
            "newest first"
        );
        assert_eq!(v[0].changed, "name, scopes, client_secret");
        assert_eq!(v[0].at, "2026-12-04 11:51:18 UTC");
        assert_eq!(
            diff(&v[0].diff),
            [
                t(
                    "client_secret.fingerprint",
                    "hmac-sha256:1",
                    "hmac-sha256:2"
                ),
                t("name", "Gmail", "Gmail (team)"),
                t("scopes", "a b", "a"),
            ]
        );
        assert_eq!(v[1].who, "admin@example.com");
        assert_eq!(
            v[1].diff.len(),
            4,
            "the first version: every setting is new"
        );
    }
}
