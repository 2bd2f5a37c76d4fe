//! The gateways screen: the workspace's gateways (named bundles of tools per auth config,
//! with the agent keys bound to them and each one's MCP URL); create and edit (pick an auth
//! config's tools from the catalog for its provider, bind agent keys), detail, delete
//! (confirmed, checked by the server). Every write is `gateway_configs::define` or
//! `::delete`, the commands behind `/v1/gateways`, under the same route permissions; their
//! refusals (who may bind a key, tools of another provider) are the form's errors.

use std::collections::{BTreeMap, BTreeSet};

use askama::Template;
use axum::extract::{Path, State};
use axum::http::{HeaderMap, StatusCode};
use axum::response::Response;
use axum::routing::{get, post};
use axum::{Form, Router};

use super::auth_configs::{may, visible, when, Outcome};
use super::pages::unavailable;
use super::session::Signed;
use super::{render, Me};
use crate::api::routes::{path_to, RouteId};
use crate::app::AppState;
use crate::commands::agents::gateway_configs::{self as gateways, GatewayInput};
use crate::commands::agents::{refused, AgentError, At};
use crate::domain::gateway::GatewayServer;
use crate::gateway::tools::ToolDefinition;
use crate::gateway::Authority;
use crate::projector::store::{ApiKeyRow, AuthConfigRow, GatewayRow};

/// The gateways screens' routes.
pub fn routes(router: Router<AppState>) -> Router<AppState> {
    router
        .route("/console/gateways", get(list).post(create))
        .route("/console/gateways/new", get(new_page))
        .route("/console/gateways/{id}", get(detail))
        .route("/console/gateways/{id}/edit", get(edit_page).post(edit))
        .route("/console/gateways/{id}/delete", post(delete))
}

/// A gateway as the pages show it: its auth configs by name, its tools, its keys.
struct Shown {
    row: GatewayRow,
    mcp_url: String,
    servers: Vec<ShownServer>,
    keys: Vec<String>,
    tools: usize,
}

struct ShownServer {
    auth_config_id: String,
    auth_config: String,
    /// (name, risk when the member may read the catalog, description)
    tools: Vec<(String, Option<&'static str>, String)>,
}

/// What the pages need besides the gateways: auth configs by id, the catalog by name (when
/// the member may read it), agent keys by id.
struct Names {
    configs: BTreeMap<String, AuthConfigRow>,
    catalog: Option<BTreeMap<String, (ToolDefinition, &'static str)>>,
    keys: BTreeMap<String, ApiKeyRow>,
    /// Whether keys are shown by name (the member may list API keys) or by id only.
    key_names: bool,
}

impl Names {
    fn config(&self, id: &str) -> String {
        self.configs
            .get(id)
            .map_or_else(|| id.to_string(), |c| c.name.clone())
    }

    fn key(&self, id: &str) -> String {
        match self.keys.get(id) {
            Some(k) if self.key_names => format!("{} ({id})", k.name),
            _ => id.to_string(),
        }
    }

    fn show(&self, state: &AppState, row: GatewayRow) -> Shown {
        let servers: Vec<GatewayServer> = serde_json::from_str(&row.servers).unwrap_or_default();
        let keys: Vec<String> = serde_json::from_str(&row.agent_key_ids).unwrap_or_default();
        let servers: Vec<ShownServer> = servers
            .into_iter()
            .map(|s| ShownServer {
                auth_config: self.config(&s.auth_config_id),
                tools: s
                    .tools
                    .into_iter()
                    .map(|t| {
                        let found = self.catalog.as_ref().and_then(|c| c.get(&t));
                        let risk = found.map(|(d, _)| d.risk.as_str());
                        let about = found.map(|(d, _)| d.description.clone());
                        (t, risk, about.unwrap_or_default())
                    })
                    .collect(),
                auth_config_id: s.auth_config_id,
            })
            .collect();
        let mut row = row;
        row.created_at = when(&row.created_at);
        row.updated_at = when(&row.updated_at);
        Shown {
            mcp_url: mcp_url(state, &row.id),
            tools: servers.iter().map(|s| s.tools.len()).sum(),
            keys: keys.iter().map(|k| self.key(k)).collect(),
            servers,
            row,
        }
    }
}

/// The gateway's MCP endpoint as an agent reaches it (the API's `mcp_path` on the public URL).
fn mcp_url(state: &AppState, id: &str) -> String {
    let base = state.connections.public_url.trim_end_matches('/');
    format!("{base}{}", path_to(RouteId::McpGateway, id))
}

/// The workspace's live, unexpired agent keys: the ones a gateway can bind.
fn agent_keys(state: &AppState, keys: &BTreeMap<String, ApiKeyRow>) -> Vec<ApiKeyRow> {
    let now = state.clock.now();
    keys.values()
        .filter(|k| {
            k.role == "agent"
                && k.revoked_at.is_none()
                && k.expires_at.as_deref().is_none_or(|e| {
                    time::OffsetDateTime::parse(e, &time::format_description::well_known::Rfc3339)
                        .is_ok_and(|at| at > now)
                })
        })
        .cloned()
        .collect()
}

async fn names(state: &AppState, signed: &Signed) -> Result<Names, Response> {
    let caller = &signed.member.caller;
    let ws = &caller.workspace_id;
    let reads = async {
        let configs = state.projections.auth_configs(ws).await?;
        let keys = state.projections.api_keys(ws).await?;
        Ok::<_, crate::projector::store::ProjectionError>((configs, keys))
    };
    let (configs, keys) = match reads.await {
        Ok(r) => r,
        Err(e) => return Err(unavailable(signed, state, &e.into())),
    };
    let catalog = if may(signed, RouteId::ListTools) {
        match crate::gateway::list_tools(state, caller, &Authority::ApiKey).await {
            Ok(list) => Some(
                list.into_iter()
                    .map(|(d, source)| (d.name.clone(), (d, source)))
                    .collect(),
            ),
            Err(e) => return Err(agent_unavailable(state, signed, e)),
        }
    } else {
        None
    };
    Ok(Names {
        configs: configs
            .into_iter()
            .filter(|c| c.status != "deleted")
            .map(|c| (c.id.clone(), c))
            .collect(),
        catalog,
        keys: keys.into_iter().map(|k| (k.id.clone(), k)).collect(),
        key_names: may(signed, RouteId::ListApiKeys),
    })
}

/// The catalog could not be read: the page says so (internals logged, never shown).
fn agent_unavailable(state: &AppState, signed: &Signed, e: AgentError) -> Response {
    match e {
        AgentError::Command(c) => unavailable(signed, state, &c),
        other => {
            let problem = crate::commands::problem::Problem::from(&other);
            let said = problem.detail.unwrap_or(problem.title);
            let me = Some(signed.me(state));
            super::refused(StatusCode::SERVICE_UNAVAILABLE, me, "Unavailable", &said)
        }
    }
}

// ---------------------------------------------------------------------------------------
// The list
// ---------------------------------------------------------------------------------------

#[derive(Template)]
#[template(path = "gateways.html")]
struct GatewaysPage<'a> {
    me: Option<Me>,
    section: &'a str,
    tab: &'a str,
    catalog_tab: bool,
    gateways: Vec<Shown>,
    can_create: bool,
    notice: Option<String>,
    error: Option<String>,
}

async fn list_page(
    state: &AppState,
    signed: &Signed,
    (status, outcome): (StatusCode, Outcome),
) -> Response {
    let ws = &signed.member.caller.workspace_id;
    let rows = match state.projections.gateways(ws).await {
        Ok(rows) => rows,
        Err(e) => return unavailable(signed, state, &e.into()),
    };
    let names = match names(state, signed).await {
        Ok(n) => n,
        Err(answer) => return answer,
    };
    let page = GatewaysPage {
        me: Some(signed.me(state)),
        section: "gateways",
        tab: "gateways",
        catalog_tab: may(signed, RouteId::ListTools),
        gateways: rows
            .into_iter()
            .filter(|r| r.status != "deleted")
            .map(|r| names.show(state, r))
            .collect(),
        can_create: may(signed, RouteId::CreateGateway),
        notice: outcome.notice,
        error: outcome.error,
    };
    signed.respond(state, render(status, &page))
}

pub async fn list(State(state): State<AppState>, headers: HeaderMap) -> Response {
    let at = ("GET", "/console/gateways");
    let signed = signed_for!(state, headers, RouteId::ListGateways, at);
    list_page(&state, &signed, (StatusCode::OK, Outcome::default())).await
}

// ---------------------------------------------------------------------------------------
// The detail page
// ---------------------------------------------------------------------------------------

#[derive(Template)]
#[template(path = "gateway.html")]
struct DetailPage<'a> {
    me: Option<Me>,
    csrf: String,
    section: &'a str,
    g: Shown,
    can_edit: bool,
    can_delete: bool,
    notice: Option<String>,
    error: Option<String>,
}

/// The live gateway of this workspace, or the 404 page (another workspace's id recorded
/// as a probe, as the API does).
async fn found(
    state: &AppState,
    signed: &Signed,
    at: (&str, &str),
    id: &str,
) -> Result<GatewayRow, Response> {
    let ws = &signed.member.caller.workspace_id;
    let read = state.projections.gateway(ws, id).await;
    let deleted = |row: &GatewayRow| row.status == "deleted";
    let elsewhere = state.projections.aggregate_elsewhere(ws, "gateway", id);
    visible(state, signed, (at, id), read, (deleted, elsewhere)).await
}

async fn detail_page(
    state: &AppState,
    signed: &Signed,
    row: GatewayRow,
    (status, outcome): (StatusCode, Outcome),
) -> Response {
    let names = match names(state, signed).await {
        Ok(n) => n,
        Err(answer) => return answer,
    };
    let me = signed.me(state);
    let page = DetailPage {
        csrf: me.csrf.clone(),
        me: Some(me),
        section: "gateways",
        g: names.show(state, row),
        can_edit: may(signed, RouteId::ReplaceGateway),
        can_delete: may(signed, RouteId::DeleteGateway),
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
    let at = ("GET", "/console/gateways/{id}");
    let signed = signed_for!(state, headers, RouteId::GetGateway, at);
    match found(&state, &signed, at, &id).await {
        Ok(row) => detail_page(&state, &signed, row, (StatusCode::OK, Outcome::default())).await,
        Err(answer) => answer,
    }
}

// ---------------------------------------------------------------------------------------
// Create and edit
// ---------------------------------------------------------------------------------------

/// What the gateway form holds, as typed (kept when the command refuses it).
#[derive(Debug, Default, PartialEq, Eq)]
struct GatewayForm {
    csrf: String,
    name: String,
    /// (auth config id, tool name) pairs ticked.
    tools: BTreeSet<(String, String)>,
    keys: BTreeSet<String>,
    confirm: String,
}

impl GatewayForm {
    /// From the posted fields: `name`, `tool` = `<auth config id> <tool name>` (repeated),
    /// `key` = an API key id (repeated), `csrf`, `confirm`.
    fn parse(fields: Vec<(String, String)>) -> GatewayForm {
        let mut form = GatewayForm::default();
        for (k, v) in fields {
            match k.as_str() {
                "csrf" => form.csrf = v,
                "name" => form.name = v,
                "confirm" => form.confirm = v,
                "key" => {
                    form.keys.insert(v);
                }
                "tool" => {
                    if let Some((config, tool)) = v.split_once(' ') {
                        form.tools.insert((config.to_string(), tool.to_string()));
                    }
                }
                _ => {}
            }
        }
        form
    }

    fn of(row: &GatewayRow) -> GatewayForm {
        let servers: Vec<GatewayServer> = serde_json::from_str(&row.servers).unwrap_or_default();
        let keys: Vec<String> = serde_json::from_str(&row.agent_key_ids).unwrap_or_default();
        GatewayForm {
            name: row.name.clone(),
            tools: servers
                .into_iter()
                .flat_map(|s| {
                    let config = s.auth_config_id;
                    s.tools.into_iter().map(move |t| (config.clone(), t))
                })
                .collect(),
            keys: keys.into_iter().collect(),
            ..GatewayForm::default()
        }
    }

    /// The command's input: one server per auth config with a ticked tool.
    fn input(&self) -> GatewayInput {
        let mut servers: BTreeMap<&str, Vec<String>> = BTreeMap::new();
        for (config, tool) in &self.tools {
            servers.entry(config).or_default().push(tool.clone());
        }
        GatewayInput {
            name: self.name.trim().to_string(),
            servers: servers
                .into_iter()
                .map(|(config, tools)| GatewayServer {
                    auth_config_id: config.to_string(),
                    tools,
                })
                .collect(),
            agent_key_ids: self.keys.iter().cloned().collect(),
        }
    }

    fn picked(&self, config: &str, tool: &str) -> bool {
        self.tools.contains(&(config.to_string(), tool.to_string()))
    }
}

/// One auth config in the form, with the catalog's tools for its provider.
struct Choice {
    config: AuthConfigRow,
    /// (name, risk, description, ticked)
    tools: Vec<(String, &'static str, String, bool)>,
}

#[derive(Template)]
#[template(path = "gateway_form.html")]
struct FormPage<'a> {
    me: Option<Me>,
    csrf: String,
    section: &'a str,
    /// `None` when creating; the gateway's id and name when editing.
    editing: Option<(String, String)>,
    name: String,
    choices: Vec<Choice>,
    /// (id, label, ticked)
    keys: Vec<(String, String, bool)>,
    error: Option<String>,
}

async fn form_page(
    state: &AppState,
    signed: &Signed,
    editing: Option<(String, String)>,
    form: &GatewayForm,
    (status, error): (StatusCode, Option<String>),
) -> Response {
    let names = match names(state, signed).await {
        Ok(n) => n,
        Err(answer) => return answer,
    };
    let catalog = names.catalog.clone().unwrap_or_default();
    let choices = names
        .configs
        .values()
        .map(|c| Choice {
            tools: catalog
                .values()
                .filter(|(d, _)| d.provider == c.provider)
                .map(|(d, _)| {
                    let ticked = form.picked(&c.id, &d.name);
                    (
                        d.name.clone(),
                        d.risk.as_str(),
                        d.description.clone(),
                        ticked,
                    )
                })
                .collect(),
            config: c.clone(),
        })
        .collect();
    // Keys a gateway can bind, and any it binds already (kept on the form even if revoked).
    let mut keys: Vec<(String, String, bool)> = agent_keys(state, &names.keys)
        .into_iter()
        .map(|k| (k.id.clone(), names.key(&k.id), form.keys.contains(&k.id)))
        .collect();
    for k in &form.keys {
        if !keys.iter().any(|(id, _, _)| id == k) {
            keys.push((k.clone(), names.key(k), true));
        }
    }
    let me = signed.me(state);
    let page = FormPage {
        csrf: me.csrf.clone(),
        me: Some(me),
        section: "gateways",
        editing,
        name: form.name.clone(),
        choices,
        keys,
        error,
    };
    signed.respond(state, render(status, &page))
}

pub async fn new_page(State(state): State<AppState>, headers: HeaderMap) -> Response {
    let at = ("GET", "/console/gateways/new");
    let signed = signed_for!(state, headers, RouteId::CreateGateway, at);
    let blank = GatewayForm::default();
    form_page(&state, &signed, None, &blank, (StatusCode::OK, None)).await
}

/// A refusal of the command as the form's words (recorded as `access.denied` first when it
/// reaches beyond the member's grant, as every face does).
async fn refusal(
    state: &AppState,
    signed: &Signed,
    (method, route): (&'static str, &'static str),
    target: Option<&str>,
    e: &AgentError,
) -> String {
    let caller = &signed.member.caller;
    let at = At {
        method,
        route,
        target,
    };
    let problem = refused(state, caller.actor(), &caller.workspace_id, at, e).await;
    problem.detail.unwrap_or(problem.title)
}

pub async fn create(
    State(state): State<AppState>,
    headers: HeaderMap,
    Form(fields): Form<Vec<(String, String)>>,
) -> Response {
    let at = ("POST", "/console/gateways");
    let signed = signed_for!(state, headers, RouteId::CreateGateway, at);
    let form = GatewayForm::parse(fields);
    if let Err(answer) = signed.check_form(&state, &headers, &form.csrf, at.1).await {
        return answer;
    }
    match gateways::define(&state, &signed.member.caller, None, form.input()).await {
        Ok(id) => match found(&state, &signed, ("GET", "/console/gateways/{id}"), &id).await {
            Ok(row) => {
                let done = Outcome::done(format!(
                    "Created \"{}\". Agents reach it at its MCP URL.",
                    row.name
                ));
                detail_page(&state, &signed, row, done).await
            }
            Err(answer) => answer,
        },
        Err(e) => {
            let error = refusal(&state, &signed, at, None, &e).await;
            let failed = (StatusCode::UNPROCESSABLE_ENTITY, Some(error));
            form_page(&state, &signed, None, &form, failed).await
        }
    }
}

pub async fn edit_page(
    State(state): State<AppState>,
    headers: HeaderMap,
    Path(id): Path<String>,
) -> Response {
    let at = ("GET", "/console/gateways/{id}/edit");
    let signed = signed_for!(state, headers, RouteId::ReplaceGateway, at);
    let row = match found(&state, &signed, at, &id).await {
        Ok(row) => row,
        Err(answer) => return answer,
    };
    let editing = Some((row.id.clone(), row.name.clone()));
    let form = GatewayForm::of(&row);
    form_page(&state, &signed, editing, &form, (StatusCode::OK, None)).await
}

/// A form posted about gateway `id`: its fields read, its CSRF token checked, the gateway
/// found in this workspace; or the answer to give instead.
async fn posted(
    state: &AppState,
    signed: &Signed,
    headers: &HeaderMap,
    (id, fields): (&str, Vec<(String, String)>),
    at: (&str, &str),
) -> Result<(GatewayForm, GatewayRow), Response> {
    let form = GatewayForm::parse(fields);
    signed.check_form(state, headers, &form.csrf, at.1).await?;
    let row = found(state, signed, at, id).await?;
    Ok((form, row))
}

pub async fn edit(
    State(state): State<AppState>,
    headers: HeaderMap,
    Path(id): Path<String>,
    Form(fields): Form<Vec<(String, String)>>,
) -> Response {
    let at = ("POST", "/console/gateways/{id}/edit");
    let signed = signed_for!(state, headers, RouteId::ReplaceGateway, at);
    let (form, row) = match posted(&state, &signed, &headers, (&id, fields), at).await {
        Ok(posted) => posted,
        Err(answer) => return answer,
    };
    let caller = &signed.member.caller;
    match gateways::define(&state, caller, Some(&id), form.input()).await {
        Ok(_) => match found(&state, &signed, at, &id).await {
            Ok(row) => {
                let done =
                    Outcome::done(format!("Saved \"{}\" (version {}).", row.name, row.version));
                detail_page(&state, &signed, row, done).await
            }
            Err(answer) => answer,
        },
        Err(e) => {
            let error = refusal(&state, &signed, at, Some(&id), &e).await;
            let failed = (StatusCode::UNPROCESSABLE_ENTITY, Some(error));
            let editing = Some((row.id.clone(), row.name.clone()));
            form_page(&state, &signed, editing, &form, failed).await
        }
    }
}

// ---------------------------------------------------------------------------------------
// Delete
// ---------------------------------------------------------------------------------------

/// Deletes the gateway once the form's confirmation is ticked (checked here, not only by
/// the browser): its keys stay bound to nothing, never widened.
pub async fn delete(
    State(state): State<AppState>,
    headers: HeaderMap,
    Path(id): Path<String>,
    Form(fields): Form<Vec<(String, String)>>,
) -> Response {
    let at = ("POST", "/console/gateways/{id}/delete");
    let signed = signed_for!(state, headers, RouteId::DeleteGateway, at);
    let (form, row) = match posted(&state, &signed, &headers, (&id, fields), at).await {
        Ok(posted) => posted,
        Err(answer) => return answer,
    };
    if form.confirm != "yes" {
        let unconfirmed = Outcome::failed(
            StatusCode::UNPROCESSABLE_ENTITY,
            "Tick the confirmation first: nothing was deleted.",
        );
        return detail_page(&state, &signed, row, unconfirmed).await;
    }
    match gateways::delete(&state, &signed.member.caller, &id).await {
        Ok(()) => {
            let notice = format!(
                "Deleted \"{}\". Keys bound to it now reach nothing through it.",
                row.name
            );
            list_page(&state, &signed, Outcome::done(notice)).await
        }
        Err(e) => {
            let error = refusal(&state, &signed, at, Some(&id), &e).await;
            let failed = Outcome::failed(StatusCode::UNPROCESSABLE_ENTITY, error);
            detail_page(&state, &signed, row, failed).await
        }
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]
mod tests {
    use super::*;

    fn fields(pairs: &[(&str, &str)]) -> Vec<(String, String)> {
        pairs
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect()
    }

    #[test]
    fn ticked_tools_become_one_server_per_auth_config_and_keys_are_bound_once() {
        let form = GatewayForm::parse(fields(&[
            ("csrf", "c"),
            ("name", " support "),
            ("tool", "ac2 slack.post_message"),
            ("tool", "ac1 github.list_issues"),
            ("tool", "ac1 github.get_repository"),
            ("tool", "ac1 github.get_repository"),
            ("tool", "no-space-here"),
            ("key", "k1"),
            ("key", "k1"),
            ("other", "ignored"),
        ]));
        let input = form.input();
        assert_eq!(input.name, "support");
        assert_eq!(
            input.servers,
            [
                GatewayServer {
                    auth_config_id: "ac1".into(),
                    tools: vec!["github.get_repository".into(), "github.list_issues".into()],
                },
                GatewayServer {
                    auth_config_id: "ac2".into(),
                    tools: vec!["slack.post_message".into()],
                },
            ]
        );
        assert_eq!(input.agent_key_ids, ["k1"]);
        assert!(form.picked("ac2", "slack.post_message"));
        assert!(!form.picked("ac1", "slack.post_message"));
    }

    #[test]
    fn a_gateway_fills_the_form_it_was_defined_with() {
        let row = GatewayRow {
            id: "g".into(),
            name: "Support".into(),
            servers: r#"[{"auth_config_id":"ac1","tools":["a.b","a.c"]}]"#.into(),
            agent_key_ids: r#"["k1"]"#.into(),
            status: "active".into(),
            version: 1,
            created_at: String::new(),
            updated_at: String::new(),
        };
        let form = GatewayForm::of(&row);
        let input = form.input();
        assert_eq!(input.name, "Support");
        assert_eq!(input.servers.len(), 1);
        assert_eq!(input.servers[0].tools, ["a.b", "a.c"]);
        assert_eq!(input.agent_key_ids, ["k1"]);
    }
}
