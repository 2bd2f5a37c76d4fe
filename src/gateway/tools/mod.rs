//! The tool catalog and the pure half of a tool call: tools as data, argument checks, the
//! upstream request an agent's call becomes, and credential injection. No I/O and no clock
//! here; the gateway (lookup, scope check, the HTTP call itself) builds on these.
//!
//! A tool is a [`ToolDefinition`] (provider, name, HTTP method, URL template, JSON Schema of
//! its arguments, the OAuth scopes it needs, a [`Risk`] class). [`Tool::new`] validates one
//! and compiles its schema; the built-in tools ship as data in `src/gateway/tools/builtin/` (one
//! file per provider, each an array of definitions, described by
//! `schemas/tool-definition.schema.json`) and are loaded once by [`builtin`]. A workspace
//! adds its own through the API, validated by the same [`Tool::new`].
//!
//! # From arguments to a request ([`Tool::build_request`])
//!
//! The arguments are one JSON object, first checked against the tool's `parameters` schema.
//! Then:
//!
//! 1. Each `{name}` placeholder of `path` takes the argument `name` (a string, or an integer
//!    written in decimal), percent-encoded as exactly one path segment: every byte outside
//!    `A-Z a-z 0-9 - . _ ~` is encoded, so `/`, `?`, `#`, `%` or `..` inside an argument
//!    cannot change the path. A segment that would be empty, `.` or `..` is refused.
//! 2. The arguments named in `query` go to the query string, whatever the method.
//! 3. Every other argument goes to the query string for GET and DELETE, and into a JSON
//!    object body (`content-type: application/json`) for POST, PUT and PATCH. Those three
//!    always send a body: `{}` when no argument is left.
//!
//! Query values: strings as they are, numbers and booleans as their JSON text (an integral
//! number as an integer: `10.0` is sent as `10`), arrays as the key repeated once per item;
//! `null` leaves the parameter out; objects (and arrays holding arrays or objects) cannot be
//! sent in a query string and are refused. Keys and values are form-encoded.
//!
//! The request carries `accept: application/json` unless the definition sets its own
//! `accept`, then the definition's static `headers` (lower-cased names). Nothing from the
//! agent becomes a header. [`UpstreamRequest::inject`] then adds the connection's
//! credential, replacing any header of the same name.
//!
//! # Not secrets, not echoes
//!
//! Argument errors name JSON pointers and never quote the offending values. The `Debug` of
//! [`UpstreamRequest`] and [`Credential`] never prints a credential. [`redact`] prepares an
//! argument or response body for storage; [`argument_fingerprint`] identifies the exact
//! arguments of a call without keeping them.

mod definition;
mod inject;
mod request;
mod undo;

use std::collections::HashMap;
use std::sync::{Arc, Mutex, OnceLock};

use serde_json::Value;
use sha2::{Digest, Sha256};

pub use definition::{HttpMethod, Risk, Tool, ToolDefinition};
pub use inject::Credential;
pub use request::UpstreamRequest;
pub use undo::{UndoDefinition, DEFAULT_UNDO_WINDOW_SECONDS};

/// Workspace tools compiled once per distinct stored definition. The definition's text is
/// the key, so a redefined tool is simply another entry: nothing to invalidate. (Compiling
/// checks every rule and builds the schema validator; it used to run on every call.)
#[derive(Default)]
pub struct CompiledTools {
    tools: Mutex<HashMap<String, Arc<Tool>>>,
}

/// Bound on distinct definitions kept (a miss only costs one compilation).
const COMPILED_TOOLS: usize = 1_000;

impl CompiledTools {
    /// The tool a stored definition (JSON text) describes.
    pub fn get(&self, stored: &str) -> Result<Arc<Tool>, String> {
        if let Some(tool) = self.tools.lock().ok().and_then(|t| t.get(stored).cloned()) {
            return Ok(tool);
        }
        let def: ToolDefinition = serde_json::from_str(stored)
            .map_err(|e| format!("stored definition unreadable: {e}"))?;
        let tool = Arc::new(Tool::new(def).map_err(|e| e.to_string())?);
        if let Ok(mut tools) = self.tools.lock() {
            if tools.len() >= COMPILED_TOOLS {
                tools.clear();
            }
            tools.insert(stored.to_string(), tool.clone());
        }
        Ok(tool)
    }
}

/// Everything that can be wrong with a tool definition or a call's arguments.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ToolError {
    /// The definition breaks a rule; `field` names the definition's field.
    #[error("invalid tool definition: {field}: {reason}")]
    InvalidDefinition { field: String, reason: String },
    /// The arguments do not fit the tool: the first few problems, each `<JSON pointer>: <what>`,
    /// never quoting the offending value.
    #[error("invalid arguments: {}", .0.join("; "))]
    InvalidArguments(Vec<String>),
    /// A base URL given to [`Tool::build_request`] is not usable (the URL itself is not echoed).
    #[error("invalid base URL: {0}")]
    InvalidBaseUrl(String),
}

impl ToolError {
    pub(crate) fn definition(field: &str, reason: impl Into<String>) -> ToolError {
        ToolError::InvalidDefinition {
            field: field.to_string(),
            reason: reason.into(),
        }
    }
}

/// The built-in tool files, by provider (also read by the schema test).
pub const FILES: &[(&str, &str)] = &[
    ("github", include_str!("builtin/github.json")),
    ("google", include_str!("builtin/google.json")),
    ("hubspot", include_str!("builtin/hubspot.json")),
    ("notion", include_str!("builtin/notion.json")),
    ("slack", include_str!("builtin/slack.json")),
];

/// Every built-in tool, parsed and validated once. A file or definition that does not
/// validate is logged and left out (the unit tests fail on it, so a release never ships one).
pub fn builtin() -> &'static [Tool] {
    static TOOLS: OnceLock<Vec<Tool>> = OnceLock::new();
    TOOLS.get_or_init(|| {
        let mut tools = Vec::new();
        for (file, text) in FILES {
            let defs = match serde_json::from_str::<Vec<ToolDefinition>>(text) {
                Ok(defs) => defs,
                Err(e) => {
                    tracing::error!(file, error = %e, "built-in tool file does not parse");
                    continue;
                }
            };
            for def in defs {
                let name = def.name.clone();
                match Tool::new(def) {
                    Ok(tool) => tools.push(tool),
                    Err(e) => {
                        tracing::error!(file, tool = %name, error = %e, "built-in tool is invalid")
                    }
                }
            }
        }
        tools
    })
}

/// A built-in tool by its name (`gmail.send_message`).
pub fn builtin_tool(name: &str) -> Option<&'static Tool> {
    builtin().iter().find(|t| t.definition().name == name)
}

/// `sha256:<hex>` of the canonical JSON of `args`: object keys sorted (by their UTF-8
/// bytes), no whitespace, strings escaped as serde_json escapes them. The same arguments give
/// the same fingerprint whatever the order of their keys.
pub fn argument_fingerprint(args: &Value) -> String {
    let mut canonical = String::new();
    write_canonical(args, &mut canonical);
    format!(
        "sha256:{}",
        hex::encode(Sha256::digest(canonical.as_bytes()))
    )
}

fn write_canonical(value: &Value, out: &mut String) {
    match value {
        Value::Object(map) => {
            // Sorted explicitly: serde_json's map keeps insertion order when a crate in the
            // build enables its `preserve_order` feature.
            let mut entries: Vec<(&String, &Value)> = map.iter().collect();
            entries.sort_by(|a, b| a.0.cmp(b.0));
            out.push('{');
            for (i, (key, item)) in entries.into_iter().enumerate() {
                if i > 0 {
                    out.push(',');
                }
                out.push_str(&Value::String(key.clone()).to_string());
                out.push(':');
                write_canonical(item, out);
            }
            out.push('}');
        }
        Value::Array(items) => {
            out.push('[');
            for (i, item) in items.iter().enumerate() {
                if i > 0 {
                    out.push(',');
                }
                write_canonical(item, out);
            }
            out.push(']');
        }
        scalar => out.push_str(&scalar.to_string()),
    }
}

/// What [`redact`] puts in place of a secret.
pub const REDACTED: &str = "[redacted]";
/// Strings longer than this many characters are cut by [`redact`].
pub const MAX_KEPT_STRING: usize = 2048;

/// A copy of `body` fit for storage: the value of every object key that looks secret (it
/// contains, ignoring case, `-` and `_`: token, secret, password, authorization, apikey,
/// cookie, credential or privatekey) becomes `"[redacted]"` (a `null` stays `null`), at
/// any depth; strings longer than 2048 characters are cut to 2048 followed by
/// `…[<n> more chars]`.
pub fn redact(body: &Value) -> Value {
    match body {
        Value::Object(map) => Value::Object(
            map.iter()
                .map(|(key, value)| {
                    let value = if looks_secret(key) && !value.is_null() {
                        Value::String(REDACTED.to_string())
                    } else {
                        redact(value)
                    };
                    (key.clone(), value)
                })
                .collect(),
        ),
        Value::Array(items) => Value::Array(items.iter().map(redact).collect()),
        Value::String(s) => Value::String(cut(s, MAX_KEPT_STRING)),
        other => other.clone(),
    }
}

/// Whether a key or header name looks like it holds a secret (see [`redact`]).
pub fn looks_secret(name: &str) -> bool {
    const MARKERS: &[&str] = &[
        "token",
        "secret",
        "password",
        "authorization",
        "apikey",
        "cookie",
        "credential",
        "privatekey",
    ];
    let squeezed: String = name
        .chars()
        .filter(|c| *c != '_' && *c != '-')
        .flat_map(char::to_lowercase)
        .collect();
    MARKERS.iter().any(|m| squeezed.contains(m))
}

/// `s` cut to at most `max` characters, followed by how many were cut.
pub(crate) fn cut(s: &str, max: usize) -> String {
    match s.char_indices().nth(max) {
        None => s.to_string(),
        Some((at, _)) => {
            let rest = s[at..].chars().count();
            format!("{}…[{rest} more chars]", &s[..at])
        }
    }
}

#[cfg(test)]
mod tests {
    use std::collections::BTreeSet;

    use serde_json::json;

    use super::*;

    #[test]
    fn a_stored_definition_is_compiled_once_and_a_changed_one_again() {
        let tools = CompiledTools::default();
        let mut def = builtin_tool("github.create_issue")
            .expect("builtin")
            .definition()
            .clone();
        def.name = "custom.create_issue".into();
        def.provider = "custom".into();
        let stored = serde_json::to_string(&def).expect("json");
        let first = tools.get(&stored).expect("compiles");
        assert!(Arc::ptr_eq(&first, &tools.get(&stored).expect("cached")));
        def.description = "Another description".into();
        let changed = tools
            .get(&serde_json::to_string(&def).expect("json"))
            .expect("compiles");
        assert_eq!(changed.definition().description, "Another description");
        assert!(!Arc::ptr_eq(&first, &changed));
        assert!(tools.get("{\"name\": 1}").is_err());
    }

    #[test]
    fn every_builtin_is_valid_named_uniquely_and_enough() {
        let raw: usize = FILES
            .iter()
            .map(|(file, text)| {
                serde_json::from_str::<Vec<Value>>(text)
                    .unwrap_or_else(|e| panic!("{file}: {e}"))
                    .len()
            })
            .sum();
        for (file, text) in FILES {
            for def in serde_json::from_str::<Vec<ToolDefinition>>(text).unwrap() {
                let name = def.name.clone();
                Tool::new(def).unwrap_or_else(|e| panic!("{file}: {name}: {e}"));
            }
        }
        let tools = builtin();
        assert_eq!(tools.len(), raw, "every built-in definition loads");
        let names: BTreeSet<&str> = tools.iter().map(|t| t.definition().name.as_str()).collect();
        assert_eq!(names.len(), tools.len(), "names are unique");
        let providers: BTreeSet<&str> = tools
            .iter()
            .map(|t| t.definition().provider.as_str())
            .collect();
        assert!(tools.len() >= 12, "{}", tools.len());
        assert!(providers.len() >= 3, "{providers:?}");
        for p in ["google", "slack", "github"] {
            assert!(providers.contains(p), "{p}");
        }
    }

    #[test]
    fn builtins_sit_in_the_file_of_their_provider_and_are_closed() {
        for (file, text) in FILES {
            for def in serde_json::from_str::<Vec<ToolDefinition>>(text).unwrap() {
                assert_eq!(&def.provider, file, "{}", def.name);
                assert_eq!(
                    def.parameters.get("additionalProperties"),
                    Some(&json!(false)),
                    "{}: a built-in forwards no argument it does not describe",
                    def.name
                );
                assert!(def.base_url.starts_with("https://"), "{}", def.name);
            }
        }
    }

    #[test]
    fn builtin_scopes_are_in_the_provider_catalog() {
        for tool in builtin() {
            let def = tool.definition();
            let provider = crate::providers::provider(&def.provider).unwrap_or_else(|| {
                panic!("{}: provider {} not in catalog", def.name, def.provider)
            });
            for scope in &def.required_scopes {
                assert!(
                    provider.oauth2.scopes.iter().any(|s| &s.scope == scope),
                    "{}: {scope}",
                    def.name
                );
            }
        }
    }

    #[test]
    fn builtin_risks_and_scopes_of_note() {
        let tool = |n: &str| {
            builtin_tool(n)
                .unwrap_or_else(|| panic!("{n}"))
                .definition()
        };
        let d = tool("github.delete_repository");
        assert_eq!(d.risk, Risk::Destructive);
        assert_eq!(d.method, HttpMethod::Delete);
        assert_eq!(d.required_scopes, vec!["delete_repo".to_string()]);
        assert_eq!(
            tool("gmail.send_message").required_scopes,
            vec!["https://www.googleapis.com/auth/gmail.send".to_string()]
        );
        assert_eq!(
            tool("slack.post_message").required_scopes,
            vec!["chat:write".to_string()]
        );
        assert_eq!(tool("gmail.list_messages").risk, Risk::Read);
        assert_eq!(tool("gmail.trash_message").risk, Risk::Write);
        assert!(builtin_tool("gmail.nope").is_none());
        // Only destructive tools are destructive: nothing else deletes for good.
        let destructive: Vec<&str> = builtin()
            .iter()
            .filter(|t| t.definition().risk == Risk::Destructive)
            .map(|t| t.definition().name.as_str())
            .collect();
        assert_eq!(destructive, vec!["github.delete_repository"]);
    }

    #[test]
    fn every_builtin_matches_the_published_schema() {
        let schema: Value =
            serde_json::from_str(include_str!("../../../schemas/tool-definition.schema.json"))
                .unwrap();
        let validator = jsonschema::validator_for(&schema).unwrap();
        for (file, text) in FILES {
            let raw: Vec<Value> = serde_json::from_str(text).unwrap();
            for def in &raw {
                let errors: Vec<String> = validator
                    .iter_errors(def)
                    .map(|e| format!("{}: {e}", e.instance_path))
                    .collect();
                assert!(errors.is_empty(), "{file}: {}: {errors:?}", def["name"]);
            }
            // What the API would store (serialised back) validates too.
            for def in serde_json::from_str::<Vec<ToolDefinition>>(text).unwrap() {
                let value = serde_json::to_value(&def).unwrap();
                assert!(validator.is_valid(&value), "{}", def.name);
            }
        }
        // And the schema refuses what Tool::new refuses, for the simple rules.
        let good = serde_json::from_str::<Vec<Value>>(FILES[0].1).unwrap()[0].clone();
        for (field, bad) in [
            ("name", json!("NoDot")),
            ("base_url", json!("http://api.example.com")),
            ("base_url", json!("https://api.example.com/v1")),
            ("risk", json!("dangerous")),
            ("method", json!("get")),
            ("path", json!("relative/{x}")),
        ] {
            let mut def = good.clone();
            def[field] = bad;
            assert!(!validator.is_valid(&def), "{field}");
        }
        let mut def = good.clone();
        def["surprise"] = json!(1);
        assert!(!validator.is_valid(&def), "unknown field");
    }

    #[test]
    fn fingerprint_ignores_key_order_and_whitespace_but_not_values() {
        let a: Value =
            serde_json::from_str(r#"{"b": [1, {"y": 2, "x": "é"}], "a": null}"#).unwrap();
        let b: Value = serde_json::from_str(r#"{"a":null,"b":[1,{"x":"é","y":2}]}"#).unwrap();
        let c = json!({"a": null, "b": [{"x": "é", "y": 2}, 1]});
        let fa = argument_fingerprint(&a);
        assert_eq!(fa, argument_fingerprint(&b));
        assert_ne!(fa, argument_fingerprint(&c), "array order matters");
        assert!(fa.starts_with("sha256:") && fa.len() == 7 + 64, "{fa}");
        // Pinned: the canonical text is exactly this.
        let mut canonical = String::new();
        write_canonical(&a, &mut canonical);
        assert_eq!(canonical, r#"{"a":null,"b":[1,{"x":"é","y":2}]}"#);
        assert_eq!(
            argument_fingerprint(&json!({})),
            format!("sha256:{}", hex::encode(Sha256::digest(b"{}")))
        );
    }

    #[test]
    fn redact_hides_secret_keys_at_any_depth_and_cuts_long_strings() {
        let long = "x".repeat(MAX_KEPT_STRING + 10);
        let body = json!({
            "access_token": "ya29.abc",
            "Authorization": "Bearer abc",
            "nested": {"clientSecret": {"deep": 1}, "X-Api-Key": "k", "apikey": 5, "ok": "fine"},
            "list": [{"password": "hunter2"}, {"refresh_token": null}],
            "private_key": "-----BEGIN",
            "session_cookie": "c",
            "credentials": ["a"],
            "raw": long,
            "count": 3
        });
        let r = redact(&body);
        for pointer in [
            "/access_token",
            "/Authorization",
            "/nested/clientSecret",
            "/nested/X-Api-Key",
            "/nested/apikey",
            "/list/0/password",
            "/private_key",
            "/session_cookie",
            "/credentials",
        ] {
            assert_eq!(r.pointer(pointer), Some(&json!(REDACTED)), "{pointer}");
        }
        assert_eq!(r.pointer("/list/1/refresh_token"), Some(&Value::Null));
        assert_eq!(r.pointer("/nested/ok"), Some(&json!("fine")));
        assert_eq!(r.pointer("/count"), Some(&json!(3)));
        let raw = r["raw"].as_str().unwrap();
        assert!(raw.starts_with(&"x".repeat(MAX_KEPT_STRING)));
        assert!(
            raw.ends_with("…[10 more chars]"),
            "{}",
            &raw[MAX_KEPT_STRING..]
        );
        assert!(!r.to_string().contains("hunter2") && !r.to_string().contains("ya29"));
    }

    #[test]
    fn cut_counts_characters_not_bytes() {
        assert_eq!(cut("ééé", 3), "ééé");
        assert_eq!(cut("éééé", 2), "éé…[2 more chars]");
        assert_eq!(cut("", 0), "");
    }

    #[test]
    fn secret_looking_names() {
        for name in [
            "token",
            "pageToken",
            "X-API-KEY",
            "api_key",
            "Cookie",
            "PASSWORD",
            "client-secret",
            "private_key",
            "credentials",
            "Proxy-Authorization",
        ] {
            assert!(looks_secret(name), "{name}");
        }
        for name in ["q", "channel", "key_name", "accept", "owner"] {
            assert!(!looks_secret(name), "{name}");
        }
    }
}
