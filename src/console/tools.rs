//! The tool catalog screen: every tool an agent of the workspace can be given (the built-in
//! ones and the workspace's own), filtered by provider and risk with a plain GET form; one
//! tool's definition; define a workspace tool (the fields of `POST /v1/tools`, the
//! command's validation errors shown beside what was typed) and remove one. Reads and
//! writes are `gateway::list_tools`, `define_tool` and `remove_tool`, the API's own, under
//! the same route permissions.

use std::collections::BTreeMap;

use askama::Template;
use axum::extract::{Path, Query, State};
use axum::http::{HeaderMap, StatusCode};
use axum::response::Response;
use axum::routing::{get, post};
use axum::{Form, Router};
use serde::Deserialize;

use super::auth_configs::{may, not_found};
use super::pages::unavailable;
use super::session::Signed;
use super::{refused, render, Me};
use crate::api::routes::RouteId;
use crate::app::AppState;
use crate::commands::agents::{refused as agent_refused, AgentError, At};
use crate::gateway::tools::{HttpMethod, Risk, ToolDefinition};
use crate::gateway::Authority;

/// The tools screens' routes.
pub fn routes(router: Router<AppState>) -> Router<AppState> {
    router
        .route("/console/tools", get(list).post(define))
        .route("/console/tools/new", get(new_page))
        .route("/console/tools/{name}", get(detail))
        .route("/console/tools/{name}/remove", post(remove))
}

const RISKS: [Risk; 3] = [Risk::Read, Risk::Write, Risk::Destructive];
const METHODS: [HttpMethod; 5] = [
    HttpMethod::Get,
    HttpMethod::Post,
    HttpMethod::Put,
    HttpMethod::Patch,
    HttpMethod::Delete,
];

/// One tool as listed: its definition and where it comes from (`builtin`, `workspace`).
struct Listed {
    def: ToolDefinition,
    source: &'static str,
}

impl Listed {
    fn scopes(&self) -> String {
        self.def.required_scopes.join(" ")
    }
}

/// The catalog as the member's caller sees it (the API's read), or the page to answer.
async fn catalog(state: &AppState, signed: &Signed) -> Result<Vec<Listed>, Response> {
    match crate::gateway::list_tools(state, &signed.member.caller, &Authority::ApiKey).await {
        Ok(list) => Ok(list
            .into_iter()
            .map(|(def, source)| Listed { def, source })
            .collect()),
        Err(AgentError::Command(c)) => Err(unavailable(signed, state, &c)),
        Err(other) => {
            let problem = crate::commands::problem::Problem::from(&other);
            let said = problem.detail.unwrap_or(problem.title);
            let me = Some(signed.me(state));
            Err(refused(
                StatusCode::SERVICE_UNAVAILABLE,
                me,
                "Unavailable",
                &said,
            ))
        }
    }
}

// ---------------------------------------------------------------------------------------
// The catalog
// ---------------------------------------------------------------------------------------

#[derive(Deserialize, Default)]
pub struct CatalogQuery {
    #[serde(default)]
    provider: String,
    #[serde(default)]
    risk: String,
}

#[derive(Template)]
#[template(path = "tools.html")]
struct ToolsPage<'a> {
    me: Option<Me>,
    section: &'a str,
    tab: &'a str,
    catalog_tab: bool,
    q: CatalogQuery,
    providers: Vec<String>,
    risks: [Risk; 3],
    rows: Vec<Listed>,
    total: usize,
    can_define: bool,
    notice: Option<String>,
}

async fn list_page(
    state: &AppState,
    signed: &Signed,
    q: CatalogQuery,
    (status, notice): (StatusCode, Option<String>),
) -> Response {
    let all = match catalog(state, signed).await {
        Ok(all) => all,
        Err(answer) => return answer,
    };
    let mut providers: Vec<String> = all.iter().map(|t| t.def.provider.clone()).collect();
    providers.sort();
    providers.dedup();
    let total = all.len();
    let rows = all
        .into_iter()
        .filter(|t| q.provider.is_empty() || t.def.provider == q.provider)
        .filter(|t| q.risk.is_empty() || t.def.risk.as_str() == q.risk)
        .collect();
    let page = ToolsPage {
        me: Some(signed.me(state)),
        section: "gateways",
        tab: "tools",
        catalog_tab: true,
        q,
        providers,
        risks: RISKS,
        rows,
        total,
        can_define: may(signed, RouteId::DefineTool),
        notice,
    };
    signed.respond(state, render(status, &page))
}

pub async fn list(
    State(state): State<AppState>,
    headers: HeaderMap,
    Query(q): Query<CatalogQuery>,
) -> Response {
    let at = ("GET", "/console/tools");
    let signed = signed_for!(state, headers, RouteId::ListTools, at);
    list_page(&state, &signed, q, (StatusCode::OK, None)).await
}

// ---------------------------------------------------------------------------------------
// One tool
// ---------------------------------------------------------------------------------------

#[derive(Template)]
#[template(path = "tool.html")]
struct ToolPage<'a> {
    me: Option<Me>,
    csrf: String,
    section: &'a str,
    t: Listed,
    parameters: String,
    headers: Vec<(String, String)>,
    can_manage: bool,
    error: Option<String>,
}

/// The tool of this catalog named `name`, or the 404 page.
async fn found(
    state: &AppState,
    signed: &Signed,
    at: (&str, &str),
    name: &str,
) -> Result<Listed, Response> {
    let all = catalog(state, signed).await?;
    match all.into_iter().find(|t| t.def.name == name) {
        Some(t) => Ok(t),
        None => Err(not_found(state, signed, at, name, false).await),
    }
}

async fn tool_page(
    state: &AppState,
    signed: &Signed,
    t: Listed,
    (status, error): (StatusCode, Option<String>),
) -> Response {
    let me = signed.me(state);
    let page = ToolPage {
        csrf: me.csrf.clone(),
        me: Some(me),
        section: "gateways",
        parameters: serde_json::to_string_pretty(&t.def.parameters).unwrap_or_default(),
        headers: t
            .def
            .headers
            .iter()
            .map(|(k, v)| (k.clone(), v.clone()))
            .collect(),
        can_manage: t.source == "workspace" && may(signed, RouteId::DefineTool),
        t,
        error,
    };
    signed.respond(state, render(status, &page))
}

pub async fn detail(
    State(state): State<AppState>,
    headers: HeaderMap,
    Path(name): Path<String>,
) -> Response {
    let at = ("GET", "/console/tools/{name}");
    let signed = signed_for!(state, headers, RouteId::ListTools, at);
    match found(&state, &signed, at, &name).await {
        Ok(t) => tool_page(&state, &signed, t, (StatusCode::OK, None)).await,
        Err(answer) => answer,
    }
}

// ---------------------------------------------------------------------------------------
// Define
// ---------------------------------------------------------------------------------------

/// The define form as typed (kept whole when the definition is refused).
#[derive(Deserialize, Default, Debug, Clone, PartialEq, Eq)]
pub struct ToolForm {
    #[serde(default)]
    csrf: String,
    #[serde(default)]
    name: String,
    #[serde(default)]
    provider: String,
    #[serde(default)]
    description: String,
    #[serde(default)]
    method: String,
    #[serde(default)]
    base_url: String,
    #[serde(default)]
    path: String,
    /// Argument names sent in the query string, separated by spaces or commas.
    #[serde(default)]
    query: String,
    /// Static headers, one `Name: value` a line.
    #[serde(default)]
    headers: String,
    /// Space-separated.
    #[serde(default)]
    required_scopes: String,
    #[serde(default)]
    risk: String,
    /// The arguments' JSON Schema, as JSON text.
    #[serde(default)]
    parameters: String,
}

const BLANK_PARAMETERS: &str =
    "{\n  \"type\": \"object\",\n  \"additionalProperties\": false,\n  \"properties\": {}\n}";

impl ToolForm {
    fn blank() -> ToolForm {
        ToolForm {
            method: "GET".into(),
            risk: "read".into(),
            parameters: BLANK_PARAMETERS.into(),
            ..ToolForm::default()
        }
    }

    fn of(def: &ToolDefinition) -> ToolForm {
        ToolForm {
            csrf: String::new(),
            name: def.name.clone(),
            provider: def.provider.clone(),
            description: def.description.clone(),
            method: def.method.as_str().into(),
            base_url: def.base_url.clone(),
            path: def.path.clone(),
            query: def.query.join(" "),
            headers: def
                .headers
                .iter()
                .map(|(k, v)| format!("{k}: {v}"))
                .collect::<Vec<_>>()
                .join("\n"),
            required_scopes: def.required_scopes.join(" "),
            risk: def.risk.as_str().into(),
            parameters: serde_json::to_string_pretty(&def.parameters).unwrap_or_default(),
        }
    }

    /// The definition the command gets; a field the form itself cannot read is refused
    /// here, naming the field: `(field, what is wrong)`.
    fn definition(&self) -> Result<ToolDefinition, (&'static str, String)> {
        let method = METHODS
            .into_iter()
            .find(|m| m.as_str() == self.method)
            .ok_or(("method", "choose a method".to_string()))?;
        let risk = RISKS
            .into_iter()
            .find(|r| r.as_str() == self.risk)
            .ok_or(("risk", "choose a risk level".to_string()))?;
        let parameters = serde_json::from_str(&self.parameters).map_err(|e| {
            let why = format!("the parameters are not valid JSON: {e}");
            ("parameters", why)
        })?;
        let mut headers = BTreeMap::new();
        for line in self.headers.lines().filter(|l| !l.trim().is_empty()) {
            let Some((k, v)) = line.split_once(':') else {
                let why = format!("each header is one \"Name: value\" line (not \"{line}\")");
                return Err(("headers", why));
            };
            headers.insert(k.trim().to_string(), v.trim().to_string());
        }
        let words = |s: &str| -> Vec<String> {
            s.split(|c: char| c.is_whitespace() || c == ',')
                .filter(|w| !w.is_empty())
                .map(str::to_string)
                .collect()
        };
        Ok(ToolDefinition {
            name: self.name.trim().to_string(),
            provider: self.provider.trim().to_string(),
            description: self.description.trim().to_string(),
            method,
            base_url: self.base_url.trim().to_string(),
            path: self.path.trim().to_string(),
            query: words(&self.query),
            headers,
            parameters,
            required_scopes: words(&self.required_scopes),
            risk,
            undo: None,
        })
    }
}

/// The form field a refusal names: `invalid tool definition: <field>: …` from the
/// definition's checks, or `invalid <field>: …` from the command's own.
fn field_of(detail: &str) -> &'static str {
    const FIELDS: [&str; 11] = [
        "name",
        "provider",
        "description",
        "method",
        "base_url",
        "path",
        "query",
        "headers",
        "required_scopes",
        "risk",
        "parameters",
    ];
    let named = match detail.split_once("invalid tool definition: ") {
        Some((_, rest)) => rest.split(':').next(),
        None => detail
            .strip_prefix("invalid ")
            .and_then(|rest| rest.split(':').next()),
    };
    let named = named.map(|f| f.split(['.', '[', ' ']).next().unwrap_or(f));
    named
        .and_then(|f| FIELDS.into_iter().find(|known| *known == f))
        .unwrap_or("")
}

/// The words of a refusal about `field`: what follows `<field>: ` (the whole text otherwise).
fn reason_of(detail: &str, field: &str) -> String {
    let key = format!("{field}: ");
    match detail.find(&key) {
        Some(at) if !field.is_empty() => detail[at + key.len()..].to_string(),
        _ => detail.to_string(),
    }
}

#[derive(Template)]
#[template(path = "tool_form.html")]
struct DefinePage<'a> {
    me: Option<Me>,
    csrf: String,
    section: &'a str,
    form: ToolForm,
    methods: [HttpMethod; 5],
    risks: [Risk; 3],
    /// Redefining an existing workspace tool.
    redefining: bool,
    error: Option<String>,
    /// The field the error is about (`""` when none is named).
    bad: &'a str,
    /// What is wrong with that field, shown beside it.
    reason: String,
}

fn define_page(
    state: &AppState,
    signed: &Signed,
    (form, redefining): (ToolForm, bool),
    (status, error, bad): (StatusCode, Option<String>, &str),
) -> Response {
    let me = signed.me(state);
    let page = DefinePage {
        csrf: me.csrf.clone(),
        me: Some(me),
        section: "gateways",
        form,
        methods: METHODS,
        risks: RISKS,
        redefining,
        reason: error
            .as_deref()
            .map(|e| reason_of(e, bad))
            .unwrap_or_default(),
        error,
        bad,
    };
    signed.respond(state, render(status, &page))
}

#[derive(Deserialize, Default)]
pub struct NewQuery {
    /// A workspace tool to redefine: the form starts from its definition.
    #[serde(default)]
    from: String,
}

pub async fn new_page(
    State(state): State<AppState>,
    headers: HeaderMap,
    Query(q): Query<NewQuery>,
) -> Response {
    let at = ("GET", "/console/tools/new");
    let signed = signed_for!(state, headers, RouteId::DefineTool, at);
    if q.from.is_empty() {
        return define_page(
            &state,
            &signed,
            (ToolForm::blank(), false),
            (StatusCode::OK, None, ""),
        );
    }
    match found(&state, &signed, at, &q.from).await {
        Ok(t) if t.source == "workspace" => {
            let form = (ToolForm::of(&t.def), true);
            define_page(&state, &signed, form, (StatusCode::OK, None, ""))
        }
        Ok(_) => not_found(&state, &signed, at, &q.from, false).await,
        Err(answer) => answer,
    }
}

pub async fn define(
    State(state): State<AppState>,
    headers: HeaderMap,
    Form(form): Form<ToolForm>,
) -> Response {
    let at = ("POST", "/console/tools");
    let signed = signed_for!(state, headers, RouteId::DefineTool, at);
    if let Err(answer) = signed.check_form(&state, &headers, &form.csrf, at.1).await {
        return answer;
    }
    let ws = &signed.member.caller.workspace_id;
    let existing = state.projections.workspace_tool(ws, form.name.trim()).await;
    let redefining = matches!(existing, Ok(Some(_)));
    let mut definition = match form.definition() {
        Ok(d) => d,
        Err((field, why)) => {
            let failed = (StatusCode::UNPROCESSABLE_ENTITY, Some(why), field);
            return define_page(&state, &signed, (form, redefining), failed);
        }
    };
    // The form has no undo field: a redefinition keeps the tool's undo (set over the API).
    if let Ok(Some(stored)) = &existing {
        definition.undo = serde_json::from_str::<ToolDefinition>(stored)
            .ok()
            .and_then(|d| d.undo);
    }
    let caller = &signed.member.caller;
    match crate::gateway::define_tool(&state, caller, definition).await {
        Ok((def, version)) => {
            let notice = format!(
                "{} workspace tool {} (version {version}).",
                if version > 1 { "Redefined" } else { "Defined" },
                def.name
            );
            let q = CatalogQuery {
                provider: def.provider,
                risk: String::new(),
            };
            list_page(&state, &signed, q, (StatusCode::OK, Some(notice))).await
        }
        Err(e) => {
            let target = At {
                method: at.0,
                route: at.1,
                target: None,
            };
            let problem =
                agent_refused(&state, caller.actor(), &caller.workspace_id, target, &e).await;
            let said = problem.detail.unwrap_or(problem.title);
            let bad = field_of(&said);
            let failed = (StatusCode::UNPROCESSABLE_ENTITY, Some(said), bad);
            define_page(&state, &signed, (form, redefining), failed)
        }
    }
}

// ---------------------------------------------------------------------------------------
// Remove
// ---------------------------------------------------------------------------------------

#[derive(Deserialize)]
pub struct RemoveForm {
    csrf: String,
    #[serde(default)]
    confirm: String,
}

/// Removes a workspace tool once the confirmation is ticked (checked here): gateways that
/// bundle it no longer reach it. Built-in tools cannot be removed.
pub async fn remove(
    State(state): State<AppState>,
    headers: HeaderMap,
    Path(name): Path<String>,
    Form(form): Form<RemoveForm>,
) -> Response {
    let at = ("POST", "/console/tools/{name}/remove");
    let signed = signed_for!(state, headers, RouteId::RemoveTool, at);
    if let Err(answer) = signed.check_form(&state, &headers, &form.csrf, at.1).await {
        return answer;
    }
    let t = match found(&state, &signed, at, &name).await {
        Ok(t) if t.source == "workspace" => t,
        Ok(_) => return not_found(&state, &signed, at, &name, false).await,
        Err(answer) => return answer,
    };
    if form.confirm != "yes" {
        let unconfirmed = Some("Tick the confirmation first: nothing was removed.".to_string());
        return tool_page(
            &state,
            &signed,
            t,
            (StatusCode::UNPROCESSABLE_ENTITY, unconfirmed),
        )
        .await;
    }
    let caller = &signed.member.caller;
    match crate::gateway::remove_tool(&state, caller, &name).await {
        Ok(()) => {
            let notice = Some(format!("Removed workspace tool {name}."));
            let q = CatalogQuery::default();
            list_page(&state, &signed, q, (StatusCode::OK, notice)).await
        }
        Err(e) => {
            let target = At {
                method: at.0,
                route: at.1,
                target: Some(&name),
            };
            let problem =
                agent_refused(&state, caller.actor(), &caller.workspace_id, target, &e).await;
            let said = Some(problem.detail.unwrap_or(problem.title));
            tool_page(&state, &signed, t, (StatusCode::UNPROCESSABLE_ENTITY, said)).await
        }
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]
mod tests {
    use super::*;

    fn typed() -> ToolForm {
        ToolForm {
            name: " custom.get_item ".into(),
            provider: "custom".into(),
            description: "Gets one item.".into(),
            method: "GET".into(),
            base_url: "https://items.example".into(),
            path: "/items/{id}".into(),
            query: "fields, expand".into(),
            headers: "Accept: application/json\n\n".into(),
            required_scopes: "items.read  items.list".into(),
            risk: "read".into(),
            parameters: r#"{"type": "object", "required": ["id"], "properties": {
                "id": {"type": "string"}, "fields": {"type": "string"}, "expand": {"type": "string"}
            }}"#
            .into(),
            ..ToolForm::default()
        }
    }

    #[test]
    fn the_form_becomes_the_definition_the_api_would_get_and_back() {
        let def = typed().definition().unwrap();
        assert_eq!(def.name, "custom.get_item");
        assert_eq!(def.method, HttpMethod::Get);
        assert_eq!(def.query, ["fields", "expand"]);
        assert_eq!(def.required_scopes, ["items.read", "items.list"]);
        assert_eq!(def.headers["Accept"], "application/json");
        assert_eq!(def.risk, Risk::Read);
        let again = ToolForm::of(&def).definition().unwrap();
        assert_eq!(again, def);
        let checked = crate::gateway::tools::Tool::new(def)
            .err()
            .map(|e| e.to_string());
        assert_eq!(checked, None);
    }

    #[test]
    fn what_the_form_cannot_read_names_its_field() {
        let bad = |f: fn(&mut ToolForm)| {
            let mut form = typed();
            f(&mut form);
            form.definition().unwrap_err().0
        };
        assert_eq!(bad(|f| f.parameters = "{\"type\": ".into()), "parameters");
        assert_eq!(bad(|f| f.method = "TRACE".into()), "method");
        assert_eq!(bad(|f| f.risk = "harmless".into()), "risk");
        assert_eq!(bad(|f| f.headers = "no colon".into()), "headers");
    }

    #[test]
    fn a_refusal_names_the_field_it_is_about() {
        let def = ToolDefinition {
            parameters: serde_json::json!({ "type": "array" }),
            ..typed().definition().unwrap()
        };
        let e = crate::gateway::tools::Tool::new(def).unwrap_err();
        let detail = format!("invalid definition: {e}");
        assert_eq!(field_of(&detail), "parameters", "{detail}");
        assert_eq!(field_of("invalid base_url: must use https"), "base_url");
        assert_eq!(
            field_of("invalid name: a built-in tool has this name"),
            "name"
        );
        assert_eq!(field_of("the event log is unavailable"), "");
        assert_eq!(
            reason_of(&detail, "parameters"),
            r#"must have "type": "object""#
        );
        assert_eq!(
            reason_of("invalid base_url: must use https", "base_url"),
            "must use https"
        );
        assert_eq!(reason_of("unavailable", ""), "unavailable");
    }
}
