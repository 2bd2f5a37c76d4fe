//! How a tool's call is undone: the compensating request a definition declares
//! ([`UndoDefinition`]) and the request one call's undo becomes ([`Tool::plan_undo`]). Pure.
//!
//! The undo goes to the tool's own `base_url` with the tool's static headers. Its `path` is
//! a template like the tool's: `{name}` takes the call's argument `name`, `{response.a.b}`
//! the value at `a.b` of the upstream's JSON answer (a numeric step indexes an array); each
//! is one percent-encoded path segment (a string, or an integer). Its `body` (POST, PUT and
//! PATCH only; `{}` when absent) is JSON in which a string that is exactly one placeholder is
//! replaced by that value, whatever its type. There is no query string. The call can be
//! undone for `window_seconds` after it completed (default 24 h, 1 minute to 30 days).
//!
//! Placeholders never name a secret-looking argument or answer field (`token`, `secret`,
//! ...): the compensating request is kept in `tool.completed` as it will be sent, without
//! its credential, which is injected only when the undo is sent.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};
use serde_json::Value;
use time::OffsetDateTime;

use super::definition::{parse_path_with, Piece, Tool};
use super::request::encode_segment;
use super::{cut, looks_secret, HttpMethod, ToolError};
use crate::domain::tool_call::PlannedUndo;

/// The default window to undo a call.
pub const DEFAULT_UNDO_WINDOW_SECONDS: u64 = 24 * 60 * 60;
const MIN_UNDO_WINDOW_SECONDS: u64 = 60;
const MAX_UNDO_WINDOW_SECONDS: u64 = 30 * 24 * 60 * 60;
const MAX_BODY_BYTES: usize = 16 * 1024;
const MAX_RESPONSE_STEPS: usize = 8;

/// How to undo a call of the tool (see the module's documentation).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct UndoDefinition {
    pub method: HttpMethod,
    pub path: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub body: Option<Value>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub window_seconds: Option<u64>,
}

impl UndoDefinition {
    /// The window to undo a call, in seconds.
    pub fn window(&self) -> u64 {
        self.window_seconds.unwrap_or(DEFAULT_UNDO_WINDOW_SECONDS)
    }
}

/// Where a placeholder's value comes from.
#[derive(Debug, Clone, PartialEq, Eq)]
enum Source {
    Argument(String),
    Response(Vec<String>),
}

/// A placeholder's name: an argument name, or `response.` and 1 to 8 steps.
fn source_of(name: &str) -> Option<Source> {
    if let Some(rest) = name.strip_prefix("response.") {
        let steps: Vec<String> = rest.split('.').map(str::to_string).collect();
        let ok = steps.len() <= MAX_RESPONSE_STEPS
            && steps.iter().all(|s| {
                !s.is_empty()
                    && s.len() <= 64
                    && s.bytes()
                        .all(|b| b.is_ascii_alphanumeric() || b == b'_' || b == b'-')
            });
        return ok.then_some(Source::Response(steps));
    }
    super::definition::is_param_name(name).then(|| Source::Argument(name.to_string()))
}

fn is_placeholder_name(name: &str) -> bool {
    source_of(name).is_some()
}

/// The placeholder a whole JSON string is, if it is exactly one (`"{response.ts}"`).
fn placeholder_in(text: &str) -> Option<Source> {
    text.strip_prefix('{')
        .and_then(|t| t.strip_suffix('}'))
        .and_then(source_of)
}

/// Checks the undo of `def` against the tool's argument names.
pub(super) fn check(undo: &UndoDefinition, properties: &[&str]) -> Result<(), ToolError> {
    let bad = |reason: String| ToolError::definition("undo", reason);
    let window = undo.window();
    if !(MIN_UNDO_WINDOW_SECONDS..=MAX_UNDO_WINDOW_SECONDS).contains(&window) {
        return Err(bad(format!(
            "window_seconds must be {MIN_UNDO_WINDOW_SECONDS} to {MAX_UNDO_WINDOW_SECONDS}"
        )));
    }
    let segments = parse_path_with(&undo.path, is_placeholder_name)
        .map_err(|e| bad(format!("path: {}", reason_of(&e))))?;
    let mut sources = Vec::new();
    for piece in segments.iter().flatten() {
        if let Piece::Param(name) = piece {
            sources.extend(source_of(name));
        }
    }
    match &undo.body {
        None => {}
        Some(body) if undo.method.has_body() => {
            if !body.is_object() {
                return Err(bad("body must be a JSON object".into()));
            }
            let size = serde_json::to_vec(body).map_or(usize::MAX, |v| v.len());
            if size > MAX_BODY_BYTES {
                return Err(bad("body is larger than 16 KiB".into()));
            }
            collect_body_sources(body, &mut sources);
        }
        Some(_) => {
            return Err(bad(format!(
                "a {} undo sends no body",
                undo.method.as_str()
            )))
        }
    }
    for source in &sources {
        match source {
            Source::Argument(name) => {
                if !properties.contains(&name.as_str()) {
                    return Err(bad(format!(
                        "{{{}}} is not a property of parameters",
                        cut(name, 64)
                    )));
                }
                if looks_secret(name) {
                    return Err(bad(format!("{{{name}}} looks like a secret")));
                }
            }
            Source::Response(steps) => {
                if steps.iter().any(|s| looks_secret(s)) {
                    return Err(bad(format!(
                        "{{response.{}}} looks like a secret",
                        steps.join(".")
                    )));
                }
            }
        }
    }
    Ok(())
}

fn reason_of(e: &ToolError) -> String {
    match e {
        ToolError::InvalidDefinition { reason, .. } => reason.clone(),
        other => other.to_string(),
    }
}

fn collect_body_sources(value: &Value, out: &mut Vec<Source>) {
    match value {
        Value::String(s) => out.extend(placeholder_in(s)),
        Value::Array(items) => items.iter().for_each(|v| collect_body_sources(v, out)),
        Value::Object(map) => map.values().for_each(|v| collect_body_sources(v, out)),
        _ => {}
    }
}

/// The value a placeholder names in this call, if the call has it.
fn lookup<'a>(
    source: &Source,
    args: &'a serde_json::Map<String, Value>,
    response: Option<&'a Value>,
) -> Option<&'a Value> {
    match source {
        Source::Argument(name) => args.get(name).filter(|v| !v.is_null()),
        Source::Response(steps) => {
            let mut at = response?;
            for step in steps {
                at = match at {
                    Value::Object(map) => map.get(step)?,
                    Value::Array(items) => items.get(step.parse::<usize>().ok()?)?,
                    _ => return None,
                };
            }
            (!at.is_null()).then_some(at)
        }
    }
}

fn fill_body(
    template: &Value,
    args: &serde_json::Map<String, Value>,
    response: Option<&Value>,
) -> Result<Value, String> {
    Ok(match template {
        Value::String(s) => match placeholder_in(s) {
            Some(source) => lookup(&source, args, response)
                .cloned()
                .ok_or_else(|| format!("the call has no value for {}", cut(s, 80)))?,
            None => template.clone(),
        },
        Value::Array(items) => Value::Array(
            items
                .iter()
                .map(|v| fill_body(v, args, response))
                .collect::<Result<_, _>>()?,
        ),
        Value::Object(map) => Value::Object(
            map.iter()
                .map(|(k, v)| Ok((k.clone(), fill_body(v, args, response)?)))
                .collect::<Result<_, String>>()?,
        ),
        other => other.clone(),
    })
}

impl Tool {
    /// The compensating request of a call of this tool with `args` that the upstream
    /// answered with `response` (its scrubbed body), to be sent before `completed_at` + the
    /// window. `Ok(None)`: the tool declares no undo. `Err`: the call lacks a value the undo
    /// needs (it cannot be undone).
    pub fn plan_undo(
        &self,
        args: &Value,
        response: &[u8],
        completed_at: OffsetDateTime,
    ) -> Result<Option<PlannedUndo>, String> {
        let Some(undo) = &self.def.undo else {
            return Ok(None);
        };
        let empty = serde_json::Map::new();
        let args = args.as_object().unwrap_or(&empty);
        let answer: Option<Value> = serde_json::from_slice(response).ok();
        let segments =
            parse_path_with(&undo.path, is_placeholder_name).map_err(|e| reason_of(&e))?;
        let mut url = super::definition::parse_base_url(&self.def.base_url)?;
        let mut path = String::new();
        for pieces in &segments {
            let mut raw = String::new();
            let mut encoded = String::new();
            for piece in pieces {
                match piece {
                    Piece::Literal(text) => {
                        raw.push_str(text);
                        encoded.push_str(text);
                    }
                    Piece::Param(name) => {
                        let source = source_of(name).ok_or("unknown placeholder")?;
                        let text = match lookup(&source, args, answer.as_ref()) {
                            Some(Value::String(s)) => s.clone(),
                            Some(Value::Number(n)) if n.is_i64() || n.is_u64() => n.to_string(),
                            _ => {
                                return Err(format!(
                                    "the call has no string or integer for {{{}}}",
                                    cut(name, 80)
                                ))
                            }
                        };
                        encoded.push_str(&encode_segment(&text));
                        raw.push_str(&text);
                    }
                }
            }
            if raw.is_empty() || raw == "." || raw == ".." {
                return Err("a path segment of the undo would be empty, '.' or '..'".into());
            }
            path.push('/');
            path.push_str(&encoded);
        }
        if path.is_empty() {
            path.push('/');
        }
        url.set_path(&path);
        if url.path() != path {
            return Err("the undo's path could not be built as given".into());
        }
        let body = if undo.method.has_body() {
            let template = undo
                .body
                .clone()
                .unwrap_or(Value::Object(serde_json::Map::new()));
            Some(fill_body(&template, args, answer.as_ref())?)
        } else {
            None
        };
        let mut headers = BTreeMap::new();
        headers.insert("accept".to_string(), "application/json".to_string());
        for (name, value) in &self.def.headers {
            headers.insert(name.to_ascii_lowercase(), value.clone());
        }
        if body.is_some() {
            headers.insert("content-type".to_string(), "application/json".to_string());
        }
        let window = time::Duration::seconds(i64::try_from(undo.window()).unwrap_or(i64::MAX));
        Ok(Some(PlannedUndo {
            method: undo.method,
            url: url.to_string(),
            headers,
            body,
            until: completed_at + window,
        }))
    }
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::super::{builtin_tool, ToolDefinition};
    use super::*;

    fn at() -> OffsetDateTime {
        time::macros::datetime!(2026-01-01 12:00 UTC)
    }

    fn plan(name: &str, args: Value, response: Value) -> PlannedUndo {
        builtin_tool(name)
            .unwrap_or_else(|| panic!("{name}"))
            .plan_undo(&args, response.to_string().as_bytes(), at())
            .unwrap_or_else(|e| panic!("{name}: {e}"))
            .unwrap_or_else(|| panic!("{name} has no undo"))
    }

    #[test]
    fn builtin_write_tools_undo_with_the_upstreams_own_requests() {
        let p = plan(
            "calendar.create_event",
            json!({"calendarId": "team@example.com", "summary": "Sync"}),
            json!({"id": "ev 1", "status": "confirmed"}),
        );
        assert_eq!(p.method, HttpMethod::Delete);
        assert_eq!(
            p.url,
            "https://www.googleapis.com/calendar/v3/calendars/team%40example.com/events/ev%201"
        );
        assert_eq!((p.body, p.until), (None, at() + time::Duration::hours(24)));

        let p = plan(
            "slack.post_message",
            json!({"channel": "C012", "text": "hi"}),
            json!({"ok": true, "channel": "C012AB", "ts": "1700000000.000100"}),
        );
        assert_eq!(
            (p.method, p.url.as_str()),
            (HttpMethod::Post, "https://slack.com/api/chat.delete")
        );
        assert_eq!(
            p.body,
            Some(json!({"channel": "C012AB", "ts": "1700000000.000100"}))
        );
        assert_eq!(
            p.headers.get("content-type").map(String::as_str),
            Some("application/json")
        );

        let p = plan(
            "github.create_issue",
            json!({"owner": "octo", "repo": "hello", "title": "Bug"}),
            json!({"id": 1, "number": 42}),
        );
        assert_eq!(
            (p.method, p.url.as_str()),
            (
                HttpMethod::Patch,
                "https://api.github.com/repos/octo/hello/issues/42"
            )
        );
        assert_eq!(
            p.body,
            Some(json!({"state": "closed", "state_reason": "not_planned"}))
        );
        assert_eq!(
            p.headers.get("x-github-api-version").map(String::as_str),
            Some("2022-11-28")
        );

        let p = plan(
            "github.create_issue_comment",
            json!({"owner": "octo", "repo": "hello", "issue_number": 7, "body": "x"}),
            json!({"id": 99}),
        );
        assert_eq!(
            p.url,
            "https://api.github.com/repos/octo/hello/issues/comments/99"
        );
        let p = plan("gmail.trash_message", json!({"id": "18c2f"}), json!({}));
        assert_eq!(
            (p.method, p.url.as_str()),
            (
                HttpMethod::Post,
                "https://gmail.googleapis.com/gmail/v1/users/me/messages/18c2f/untrash"
            )
        );
        let p = plan(
            "gmail.create_draft",
            json!({"message": {"raw": "eA"}}),
            json!({"id": "r-1"}),
        );
        assert_eq!(
            p.url,
            "https://gmail.googleapis.com/gmail/v1/users/me/drafts/r-1"
        );
        let p = plan(
            "hubspot.create_contact",
            json!({"properties": {"email": "a@example.com"}}),
            json!({"id": "512"}),
        );
        assert_eq!(
            (p.method, p.url.as_str()),
            (
                HttpMethod::Delete,
                "https://api.hubapi.com/crm/v3/objects/contacts/512"
            )
        );
        // Read tools and what cannot be taken back have none.
        for name in [
            "gmail.send_message",
            "gmail.list_messages",
            "github.delete_repository",
            "github.update_issue",
        ] {
            assert!(
                builtin_tool(name).unwrap().definition().undo.is_none(),
                "{name}"
            );
        }
    }

    #[test]
    fn a_call_without_the_values_the_undo_needs_cannot_be_undone() {
        let t = builtin_tool("calendar.create_event").unwrap();
        let args = json!({"calendarId": "primary"});
        for answer in [
            &b"not json"[..],
            b"{}",
            b"{\"id\": {\"x\": 1}}",
            b"{\"id\": \"..\"}",
        ] {
            assert!(t.plan_undo(&args, answer, at()).is_err());
        }
        assert!(builtin_tool("gmail.list_messages")
            .unwrap()
            .plan_undo(&json!({}), b"{}", at())
            .unwrap()
            .is_none());
    }

    fn with_undo(undo: Value) -> Result<Tool, ToolError> {
        let def: ToolDefinition = serde_json::from_value(json!({
            "name": "demo.create", "provider": "demo", "description": "d", "method": "POST",
            "base_url": "https://api.example.com", "path": "/v1/{space}/items",
            "parameters": {"type": "object", "required": ["space"],
                           "properties": {"space": {"type": "string"}, "api_token": {"type": "string"}}},
            "risk": "write", "undo": undo
        }))
        .unwrap();
        Tool::new(def)
    }

    #[test]
    fn undo_definitions_are_checked_like_the_rest() {
        with_undo(json!({"method": "DELETE", "path": "/v1/{space}/items/{response.item.id}"}))
            .unwrap();
        with_undo(json!({"method": "POST", "path": "/v1/undo", "body": {"id": "{response.id}", "n": [1, "{space}"]}, "window_seconds": 600}))
            .unwrap();
        for (bad, why) in [
            (
                json!({"method": "DELETE", "path": "/v1/{nope}"}),
                "not a property",
            ),
            (json!({"method": "DELETE", "path": "v1"}), "path"),
            (
                json!({"method": "DELETE", "path": "/v1/{response.}"}),
                "path",
            ),
            (
                json!({"method": "DELETE", "path": "/v1/{api_token}"}),
                "secret",
            ),
            (
                json!({"method": "DELETE", "path": "/v1/{response.access_token}"}),
                "secret",
            ),
            (
                json!({"method": "DELETE", "path": "/v1/x", "body": {}}),
                "no body",
            ),
            (
                json!({"method": "POST", "path": "/v1/x", "body": [1]}),
                "object",
            ),
            (
                json!({"method": "POST", "path": "/v1/x", "body": {"k": "{nope}"}}),
                "not a property",
            ),
            (
                json!({"method": "DELETE", "path": "/v1/x", "window_seconds": 5}),
                "window_seconds",
            ),
            (
                json!({"method": "DELETE", "path": "/v1/x", "window_seconds": 99_999_999u64}),
                "window_seconds",
            ),
            (json!({"method": "DELETE", "path": "/v1/x", "extra": 1}), ""),
        ] {
            let err = match serde_json::from_value::<UndoDefinition>(bad.clone()) {
                Err(e) => e.to_string(),
                Ok(_) => with_undo(bad.clone()).unwrap_err().to_string(),
            };
            assert!(err.contains(why), "{bad}: {err}");
        }
    }

    #[test]
    fn body_placeholders_keep_their_values_type_and_literals_stay() {
        let t = with_undo(json!({"method": "POST", "path": "/v1/{space}/undo/{response.n}",
            "body": {"ids": ["{response.items.1.id}"], "keep": "{not a placeholder}", "flag": true}}))
        .unwrap();
        let p = t
            .plan_undo(
                &json!({"space": "s/1"}),
                br#"{"n": 3, "items": [{"id": 1}, {"id": {"deep": [2]}}]}"#,
                at(),
            )
            .unwrap()
            .unwrap();
        assert_eq!(p.url, "https://api.example.com/v1/s%2F1/undo/3");
        assert_eq!(
            p.body,
            Some(json!({"ids": [{"deep": [2]}], "keep": "{not a placeholder}", "flag": true}))
        );
    }
}
