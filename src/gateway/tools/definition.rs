//! A tool as data ([`ToolDefinition`]) and as a checked, compiled [`Tool`].

use std::collections::{BTreeMap, BTreeSet};
use std::fmt;

use serde::{Deserialize, Serialize};
use serde_json::{Map, Value};
use url::{Host, Url};

use super::{cut, looks_secret, ToolError};

/// How much harm a call can do; the gateway decides on step-up and approval from it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Risk {
    Read,
    Write,
    Destructive,
}

impl Risk {
    pub fn as_str(self) -> &'static str {
        match self {
            Risk::Read => "read",
            Risk::Write => "write",
            Risk::Destructive => "destructive",
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "UPPERCASE")]
pub enum HttpMethod {
    Get,
    Post,
    Put,
    Patch,
    Delete,
}

impl HttpMethod {
    pub fn as_str(self) -> &'static str {
        match self {
            HttpMethod::Get => "GET",
            HttpMethod::Post => "POST",
            HttpMethod::Put => "PUT",
            HttpMethod::Patch => "PATCH",
            HttpMethod::Delete => "DELETE",
        }
    }

    /// GET, PUT and DELETE (RFC 9110 §9.2.2): repeating the request has the effect of one.
    pub fn is_idempotent(self) -> bool {
        matches!(self, HttpMethod::Get | HttpMethod::Put | HttpMethod::Delete)
    }

    /// POST, PUT and PATCH send the remaining arguments as a JSON body; GET and DELETE send
    /// them in the query string.
    pub fn has_body(self) -> bool {
        matches!(self, HttpMethod::Post | HttpMethod::Put | HttpMethod::Patch)
    }
}

impl fmt::Display for HttpMethod {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// One tool, as stored and as shipped (`src/gateway/tools/builtin/*.json`,
/// `schemas/tool-definition.schema.json`). Only [`Tool::new`] says whether it is valid.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ToolDefinition {
    /// `<namespace>.<action>`, each `[a-z0-9_]` (1..=40 and 1..=60 characters).
    pub name: String,
    /// A catalog provider id (`google`, `slack`, `github`, ...) or, for workspace tools, any
    /// `[a-z0-9_-]{1,64}` id.
    pub provider: String,
    /// What the tool does, for the model choosing it: 1..=500 characters.
    pub description: String,
    pub method: HttpMethod,
    /// `https://host[:port]` with no path, query, fragment or user info; `http` only for a
    /// loopback host (tests).
    pub base_url: String,
    /// `/`-separated, each `{param}` filled from the argument of that name as one
    /// percent-encoded path segment.
    pub path: String,
    /// Arguments sent in the query string even on POST, PUT and PATCH.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub query: Vec<String>,
    /// Static request headers (for example `Notion-Version`). Never credentials: names such
    /// as `authorization`, `cookie` or `x-api-key` are refused, as are hop-by-hop and framing
    /// headers.
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub headers: BTreeMap<String, String>,
    /// JSON Schema (2020-12) of the arguments object: `{"type": "object", ...}`. Path
    /// parameters must be required properties of type string or integer. Only local `$ref`s
    /// (`#...`).
    pub parameters: Value,
    /// OAuth scopes the connection must have been granted, all of them.
    #[serde(default)]
    pub required_scopes: Vec<String>,
    pub risk: Risk,
    /// How a call is undone, if it can be (`super::undo`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub undo: Option<super::undo::UndoDefinition>,
}

/// A validated [`ToolDefinition`] with its compiled argument schema.
pub struct Tool {
    pub(super) def: ToolDefinition,
    validator: jsonschema::Validator,
    /// The path template split into segments, each a run of literal text and placeholders.
    pub(super) segments: Vec<Vec<Piece>>,
    pub(super) path_params: Vec<String>,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub(super) enum Piece {
    Literal(String),
    Param(String),
}

impl fmt::Debug for Tool {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Tool")
            .field("name", &self.def.name)
            .field("method", &self.def.method)
            .field("base_url", &self.def.base_url)
            .field("path", &self.def.path)
            .field("risk", &self.def.risk)
            .finish_non_exhaustive()
    }
}

const DRAFT_2020_12: &str = "https://json-schema.org/draft/2020-12/schema";
const MAX_SCHEMA_BYTES: usize = 64 * 1024;
const MAX_PATH_CHARS: usize = 1024;
const MAX_LIST: usize = 64;
const MAX_HEADERS: usize = 16;
/// At most this many argument problems are reported, each at most this many characters.
const MAX_PROBLEMS: usize = 5;
const MAX_PROBLEM_CHARS: usize = 200;

impl Tool {
    /// Checks every rule of [`ToolDefinition`] and compiles the argument schema (draft
    /// 2020-12, formats asserted, patterns on the linear-time `regex` engine, nothing fetched).
    pub fn new(def: ToolDefinition) -> Result<Tool, ToolError> {
        check_name(&def.name)?;
        check_provider(&def.provider)?;
        let description_chars = def.description.chars().count();
        if description_chars == 0 || description_chars > 500 {
            return Err(ToolError::definition(
                "description",
                "must be 1 to 500 characters",
            ));
        }
        parse_base_url(&def.base_url).map_err(|r| ToolError::definition("base_url", r))?;
        let segments = parse_path(&def.path)?;
        let path_params: Vec<String> = segments
            .iter()
            .flatten()
            .filter_map(|p| match p {
                Piece::Param(name) => Some(name.clone()),
                Piece::Literal(_) => None,
            })
            .collect();
        check_headers(&def.headers)?;
        check_scopes(&def.required_scopes)?;
        check_parameters(&def, &path_params)?;
        if let Some(undo) = &def.undo {
            let properties: Vec<&str> = def
                .parameters
                .get("properties")
                .and_then(Value::as_object)
                .map(|p| p.keys().map(String::as_str).collect())
                .unwrap_or_default();
            super::undo::check(undo, &properties)?;
        }
        let validator = compile(&def.parameters)?;
        Ok(Tool {
            def,
            validator,
            segments,
            path_params,
        })
    }

    /// Parses and validates a definition given as JSON (what the API receives); an unknown
    /// field is an error.
    pub fn from_value(value: Value) -> Result<Tool, ToolError> {
        let def: ToolDefinition = serde_json::from_value(value)
            .map_err(|e| ToolError::definition("(document)", cut(&e.to_string(), 300)))?;
        Tool::new(def)
    }

    pub fn definition(&self) -> &ToolDefinition {
        &self.def
    }

    pub fn name(&self) -> &str {
        &self.def.name
    }

    /// Names of the path placeholders, in order.
    pub fn path_params(&self) -> &[String] {
        &self.path_params
    }

    /// Validates `args` against the tool's schema. The error lists the first few problems as
    /// `<JSON pointer>: <message>`, with the offending values masked.
    pub fn check_arguments(&self, args: &Value) -> Result<(), ToolError> {
        let mut problems = Vec::new();
        for error in self.validator.iter_errors(args) {
            if problems.len() == MAX_PROBLEMS {
                problems.push("(more problems not shown)".to_string());
                break;
            }
            let at = match error.instance_path.as_str() {
                "" => "(root)",
                pointer => pointer,
            };
            problems.push(cut(&format!("{at}: {}", error.masked()), MAX_PROBLEM_CHARS));
        }
        if problems.is_empty() {
            Ok(())
        } else {
            Err(ToolError::InvalidArguments(problems))
        }
    }
}

fn check_name(name: &str) -> Result<(), ToolError> {
    let part_ok = |s: &str, max: usize| {
        !s.is_empty()
            && s.len() <= max
            && s.bytes()
                .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'_')
    };
    match name.split_once('.') {
        Some((ns, action)) if part_ok(ns, 40) && part_ok(action, 60) => Ok(()),
        _ => Err(ToolError::definition(
            "name",
            "must be <namespace>.<action>, [a-z0-9_]{1,40} and [a-z0-9_]{1,60}",
        )),
    }
}

fn check_provider(provider: &str) -> Result<(), ToolError> {
    let ok = !provider.is_empty()
        && provider.len() <= 64
        && provider
            .bytes()
            .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'_' || b == b'-');
    if ok {
        Ok(())
    } else {
        Err(ToolError::definition(
            "provider",
            "must be [a-z0-9_-]{1,64}",
        ))
    }
}

/// A base URL as tools use it: `https://host[:port]`, or `http` to a loopback host.
/// The reasons never quote the URL (it may carry credentials).
pub(super) fn parse_base_url(s: &str) -> Result<Url, String> {
    if s.chars().any(|c| c.is_whitespace() || c.is_control()) {
        return Err("must not contain whitespace or control characters".into());
    }
    let url = Url::parse(s).map_err(|e| format!("not an absolute URL ({e})"))?;
    if !url.username().is_empty() || url.password().is_some() {
        return Err("must not contain user info".into());
    }
    if url.query().is_some() || url.fragment().is_some() {
        return Err("must not have a query or fragment".into());
    }
    if url.path() != "/" {
        return Err("must not have a path (the path belongs to the tool)".into());
    }
    let loopback = match url.host() {
        None => return Err("must have a host".into()),
        Some(Host::Domain(d)) => d.eq_ignore_ascii_case("localhost"),
        Some(Host::Ipv4(ip)) => ip.is_loopback(),
        Some(Host::Ipv6(ip)) => ip.is_loopback(),
    };
    match url.scheme() {
        "https" => Ok(url),
        "http" if loopback => Ok(url),
        "http" => Err("must use https (http only for a loopback host)".into()),
        _ => Err("must be an https URL".into()),
    }
}

pub(super) fn is_param_name(s: &str) -> bool {
    let mut bytes = s.bytes();
    matches!(bytes.next(), Some(b) if b.is_ascii_alphabetic() || b == b'_')
        && s.len() <= 64
        && bytes.all(|b| b.is_ascii_alphanumeric() || b == b'_')
}

/// Characters a path template may hold outside placeholders: RFC 3986 `pchar` without `%`.
fn is_literal_path_char(c: char) -> bool {
    c.is_ascii_alphanumeric() || "-._~!$&'()*+,;=:@".contains(c)
}

fn parse_path(path: &str) -> Result<Vec<Vec<Piece>>, ToolError> {
    parse_path_with(path, is_param_name)
}

/// A path template whose placeholder names `is_name` accepts.
pub(super) fn parse_path_with(
    path: &str,
    is_name: fn(&str) -> bool,
) -> Result<Vec<Vec<Piece>>, ToolError> {
    let bad = |reason: &str| ToolError::definition("path", reason);
    if path.chars().count() > MAX_PATH_CHARS {
        return Err(bad("is longer than 1024 characters"));
    }
    let Some(rest) = path.strip_prefix('/') else {
        return Err(bad("must start with /"));
    };
    if rest.is_empty() {
        return Ok(Vec::new());
    }
    let mut seen = BTreeSet::new();
    let mut segments = Vec::new();
    for raw in rest.split('/') {
        if raw.is_empty() || raw == "." || raw == ".." {
            return Err(bad("must not have empty, '.' or '..' segments"));
        }
        let mut pieces = Vec::new();
        let mut literal = String::new();
        let mut chars = raw.chars();
        while let Some(c) = chars.next() {
            match c {
                '{' => {
                    let mut name = String::new();
                    let mut closed = false;
                    for c in chars.by_ref() {
                        if c == '}' {
                            closed = true;
                            break;
                        }
                        name.push(c);
                    }
                    if !closed || !is_name(&name) {
                        return Err(bad(
                            "placeholders are {name} with name [A-Za-z_][A-Za-z0-9_]{0,63}",
                        ));
                    }
                    if !seen.insert(name.clone()) {
                        return Err(bad("a placeholder appears twice"));
                    }
                    if !literal.is_empty() {
                        pieces.push(Piece::Literal(std::mem::take(&mut literal)));
                    }
                    pieces.push(Piece::Param(name));
                }
                c if is_literal_path_char(c) => literal.push(c),
                _ => {
                    return Err(bad(
                        "may hold only unreserved characters, sub-delimiters, ':', '@' and {placeholders}",
                    ))
                }
            }
        }
        if !literal.is_empty() {
            pieces.push(Piece::Literal(literal));
        }
        segments.push(pieces);
    }
    Ok(segments)
}

fn check_headers(headers: &BTreeMap<String, String>) -> Result<(), ToolError> {
    const RESERVED: &[&str] = &[
        "authorization",
        "proxy-authorization",
        "cookie",
        "host",
        "content-length",
        "content-type",
        "transfer-encoding",
        "connection",
        "keep-alive",
        "te",
        "trailer",
        "upgrade",
        "expect",
        "forwarded",
        "x-forwarded-for",
        "x-forwarded-host",
    ];
    if headers.len() > MAX_HEADERS {
        return Err(ToolError::definition("headers", "at most 16 headers"));
    }
    let mut lower = BTreeSet::new();
    for (name, value) in headers {
        let field = |reason: String| ToolError::definition("headers", reason);
        let name_ok = !name.is_empty()
            && name.len() <= 64
            && name.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'-');
        if !name_ok {
            return Err(field("header names are [A-Za-z0-9-]{1,64}".into()));
        }
        let l = name.to_ascii_lowercase();
        if RESERVED.contains(&l.as_str()) || looks_secret(&l) || l.ends_with("key") {
            return Err(field(format!(
                "{name} is reserved: credentials are injected from the connection, framing by the gateway"
            )));
        }
        if !lower.insert(l) {
            return Err(field(format!("{name} appears twice")));
        }
        let value_ok = !value.is_empty()
            && value.len() <= 1024
            && value.bytes().all(|b| (0x20..0x7f).contains(&b))
            && value.trim() == value;
        if !value_ok {
            return Err(field(format!(
                "the value of {name} must be 1 to 1024 printable ASCII characters, not padded"
            )));
        }
    }
    Ok(())
}

fn check_scopes(scopes: &[String]) -> Result<(), ToolError> {
    if scopes.len() > MAX_LIST {
        return Err(ToolError::definition(
            "required_scopes",
            "at most 64 scopes",
        ));
    }
    let mut seen = BTreeSet::new();
    for scope in scopes {
        let ok = !scope.is_empty()
            && scope.len() <= 512
            && scope
                .bytes()
                .all(|b| b.is_ascii_graphic() && b != b'"' && b != b'\\');
        if !ok {
            return Err(ToolError::definition(
                "required_scopes",
                "scopes are 1 to 512 visible ASCII characters, no quote or backslash (RFC 6749 §3.3)",
            ));
        }
        if !seen.insert(scope.as_str()) {
            return Err(ToolError::definition(
                "required_scopes",
                format!("{scope} appears twice"),
            ));
        }
    }
    Ok(())
}

/// The JSON types a property schema allows through its `type` keyword (empty: unconstrained).
fn declared_types(schema: &Value) -> Vec<&str> {
    match schema.get("type") {
        Some(Value::String(t)) => vec![t.as_str()],
        Some(Value::Array(ts)) => ts.iter().filter_map(Value::as_str).collect(),
        _ => Vec::new(),
    }
}

fn check_parameters(def: &ToolDefinition, path_params: &[String]) -> Result<(), ToolError> {
    let bad = |reason: String| ToolError::definition("parameters", reason);
    let Some(schema) = def.parameters.as_object() else {
        return Err(bad("must be a JSON Schema object".into()));
    };
    if schema.get("type").and_then(Value::as_str) != Some("object") {
        return Err(bad(r#"must have "type": "object""#.into()));
    }
    match schema.get("$schema") {
        None => {}
        Some(Value::String(s)) if s == DRAFT_2020_12 => {}
        Some(_) => return Err(bad(format!("$schema, when given, must be {DRAFT_2020_12}"))),
    }
    let size = serde_json::to_vec(&def.parameters).map_or(usize::MAX, |v| v.len());
    if size > MAX_SCHEMA_BYTES {
        return Err(bad("is larger than 64 KiB".into()));
    }
    check_refs(&def.parameters)?;
    let empty = Map::new();
    let properties = match schema.get("properties") {
        None => &empty,
        Some(Value::Object(p)) => p,
        Some(_) => return Err(bad("properties must be an object".into())),
    };
    let required: Vec<&str> = match schema.get("required") {
        None => Vec::new(),
        Some(Value::Array(r)) => r.iter().filter_map(Value::as_str).collect(),
        Some(_) => return Err(bad("required must be an array".into())),
    };
    for param in path_params {
        let Some(prop) = properties.get(param) else {
            return Err(ToolError::definition(
                "path",
                format!("placeholder {{{param}}} is not a property of parameters"),
            ));
        };
        if !required.contains(&param.as_str()) {
            return Err(bad(format!("path parameter {param} must be required")));
        }
        let types = declared_types(prop);
        if types.is_empty() || types.iter().any(|t| *t != "string" && *t != "integer") {
            return Err(bad(format!(
                "path parameter {param} must be of type string or integer"
            )));
        }
    }
    if def.query.len() > MAX_LIST {
        return Err(ToolError::definition("query", "at most 64 names"));
    }
    let mut seen = BTreeSet::new();
    for name in &def.query {
        let field = |reason: String| ToolError::definition("query", reason);
        if !seen.insert(name.as_str()) {
            return Err(field(format!("{name} appears twice")));
        }
        if path_params.contains(name) {
            return Err(field(format!("{name} is already a path parameter")));
        }
        let Some(prop) = properties.get(name) else {
            return Err(field(format!("{name} is not a property of parameters")));
        };
        if declared_types(prop).contains(&"object") {
            return Err(field(format!(
                "{name} is an object, which a query string cannot carry"
            )));
        }
    }
    if !def.method.has_body() {
        for (name, prop) in properties {
            if !path_params.contains(name) && declared_types(prop).contains(&"object") {
                return Err(bad(format!(
                    "{name} is an object, which a {} request cannot send",
                    def.method
                )));
            }
        }
    }
    Ok(())
}

/// Only local references: every `$ref` / `$dynamicRef` string starts with `#`.
fn check_refs(schema: &Value) -> Result<(), ToolError> {
    match schema {
        Value::Object(map) => {
            for (key, value) in map {
                if key == "$ref" || key == "$dynamicRef" {
                    if let Value::String(target) = value {
                        if !target.starts_with('#') {
                            return Err(ToolError::definition(
                                "parameters",
                                "only local $ref (\"#...\") are allowed",
                            ));
                        }
                    }
                }
                check_refs(value)?;
            }
            Ok(())
        }
        Value::Array(items) => items.iter().try_for_each(check_refs),
        _ => Ok(()),
    }
}

/// Refuses every retrieval: a tool's schema is self-contained.
struct NoRemote;

impl jsonschema::Retrieve for NoRemote {
    fn retrieve(
        &self,
        _uri: &jsonschema::Uri<String>,
    ) -> Result<Value, Box<dyn std::error::Error + Send + Sync>> {
        Err("remote references are not allowed in tool schemas".into())
    }
}

fn compile(schema: &Value) -> Result<jsonschema::Validator, ToolError> {
    jsonschema::options()
        .with_draft(jsonschema::Draft::Draft202012)
        .with_retriever(NoRemote)
        .should_validate_formats(true)
        .with_pattern_options(jsonschema::PatternOptions::regex())
        .build(schema)
        .map_err(|e| {
            let at = match e.instance_path.as_str() {
                "" => "(root)",
                pointer => pointer,
            };
            ToolError::definition(
                "parameters",
                cut(
                    &format!("not a valid JSON Schema: {at}: {}", e.masked()),
                    300,
                ),
            )
        })
}

#[cfg(test)]
#[path = "definition_tests.rs"]
mod tests;
