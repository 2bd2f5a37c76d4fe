//! From checked arguments to the upstream HTTP request (see the module docs of `tools` for
//! the mapping). Pure: nothing is sent from here.

use std::fmt;

use serde_json::{Map, Number, Value};

use super::definition::{parse_base_url, Piece, Tool};
use super::{cut, looks_secret, HttpMethod, ToolError};

/// The request a tool call becomes. Built by [`Tool::build_request`]; the credential is
/// added by [`UpstreamRequest::inject`]. `Debug` hides credentials and the body.
#[derive(Clone, PartialEq, Eq)]
pub struct UpstreamRequest {
    pub method: HttpMethod,
    /// Full URL, query string included.
    pub url: String,
    /// Lower-case names (as built; `inject` keeps the credential's own spelling).
    pub headers: Vec<(String, String)>,
    /// JSON, for POST, PUT and PATCH.
    pub body: Option<Vec<u8>>,
    /// Names of the query parameters and headers that carry a credential (filled by
    /// `inject`); `Debug` prints `[redacted]` for them.
    pub secret_params: Vec<String>,
}

impl UpstreamRequest {
    /// The value of the first header of that name (case-insensitive).
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers
            .iter()
            .find(|(n, _)| n.eq_ignore_ascii_case(name))
            .map(|(_, v)| v.as_str())
    }

    pub(super) fn is_secret_name(&self, name: &str) -> bool {
        const ALWAYS: &[&str] = &[
            "authorization",
            "proxy-authorization",
            "cookie",
            "set-cookie",
            "key",
        ];
        looks_secret(name)
            || ALWAYS.iter().any(|a| a.eq_ignore_ascii_case(name))
            || self
                .secret_params
                .iter()
                .any(|s| s.eq_ignore_ascii_case(name))
    }

    /// The URL with the value of every secret query parameter replaced by `[redacted]`.
    pub fn redacted_url(&self) -> String {
        let (base, rest) = match self.url.split_once('?') {
            Some((base, rest)) => (base, rest),
            None => return self.url.clone(),
        };
        let (query, fragment) = match rest.split_once('#') {
            Some((q, f)) => (q, Some(f)),
            None => (rest, None),
        };
        let pairs: Vec<String> = query
            .split('&')
            .map(|pair| {
                let raw_key = pair.split_once('=').map_or(pair, |(k, _)| k);
                let key: String = url::form_urlencoded::parse(raw_key.as_bytes())
                    .next()
                    .map(|(k, _)| k.into_owned())
                    .unwrap_or_default();
                if self.is_secret_name(&key) {
                    format!("{raw_key}=[redacted]")
                } else {
                    pair.to_string()
                }
            })
            .collect();
        let mut out = format!("{base}?{}", pairs.join("&"));
        if let Some(f) = fragment {
            out.push('#');
            out.push_str(f);
        }
        out
    }
}

impl fmt::Debug for UpstreamRequest {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let headers: Vec<(&str, &str)> = self
            .headers
            .iter()
            .map(|(n, v)| {
                let v = if self.is_secret_name(n) {
                    "[redacted]"
                } else {
                    v.as_str()
                };
                (n.as_str(), v)
            })
            .collect();
        f.debug_struct("UpstreamRequest")
            .field("method", &self.method)
            .field("url", &self.redacted_url())
            .field("headers", &headers)
            .field(
                "body",
                &self.body.as_ref().map(|b| format!("<{} bytes>", b.len())),
            )
            .finish()
    }
}

/// Every byte outside RFC 3986 `unreserved` is percent-encoded, so the result is one segment.
pub(super) fn encode_segment(raw: &str) -> String {
    let mut out = String::with_capacity(raw.len());
    for b in raw.bytes() {
        if b.is_ascii_alphanumeric() || matches!(b, b'-' | b'.' | b'_' | b'~') {
            out.push(char::from(b));
        } else {
            out.push_str(&format!("%{b:02X}"));
        }
    }
    out
}

/// A number's text for a URL: integral values as integers (`10.0` → `10`).
fn number_text(n: &Number) -> String {
    if n.is_i64() || n.is_u64() {
        return n.to_string();
    }
    match n.as_f64() {
        Some(f) if f.fract() == 0.0 && f.abs() < 9_007_199_254_740_992.0 => {
            // Exactly representable, so the cast is lossless.
            #[allow(clippy::cast_possible_truncation)]
            let i = f as i64;
            i.to_string()
        }
        _ => n.to_string(),
    }
}

/// `/name` as a JSON pointer token (RFC 6901), cut for error messages.
fn pointer(name: &str) -> String {
    cut(
        &format!("/{}", name.replace('~', "~0").replace('/', "~1")),
        80,
    )
}

fn push_query(pairs: &mut Vec<(String, String)>, name: &str, value: &Value) -> Result<(), String> {
    let scalar = |v: &Value| -> Result<Option<String>, String> {
        match v {
            Value::Null => Ok(None),
            Value::String(s) => Ok(Some(s.clone())),
            Value::Number(n) => Ok(Some(number_text(n))),
            Value::Bool(b) => Ok(Some(b.to_string())),
            Value::Array(_) | Value::Object(_) => Err(format!(
                "{}: objects and nested arrays cannot be sent in a query string",
                pointer(name)
            )),
        }
    };
    let items: Vec<&Value> = match value {
        Value::Array(items) => items.iter().collect(),
        other => vec![other],
    };
    for item in items {
        if let Some(text) = scalar(item)? {
            pairs.push((name.to_string(), text));
        }
    }
    Ok(())
}

impl Tool {
    /// Builds the upstream request for `args` (checked against the schema here too, so no
    /// request is ever built from unchecked arguments). `base_url_override` replaces the
    /// definition's base URL (same rules: https, or http to loopback; no path).
    pub fn build_request(
        &self,
        base_url_override: Option<&str>,
        args: &Value,
    ) -> Result<UpstreamRequest, ToolError> {
        self.check_arguments(args)?;
        let Some(args) = args.as_object() else {
            return Err(ToolError::InvalidArguments(vec![
                "(root): arguments must be a JSON object".into(),
            ]));
        };
        let def = self.definition();
        let base = base_url_override.unwrap_or(&def.base_url);
        let mut url = parse_base_url(base).map_err(ToolError::InvalidBaseUrl)?;

        let mut path = String::new();
        for pieces in &self.segments {
            // `raw` is the segment as the upstream will decode it; `encoded` as it is sent.
            // Literal text is already valid `pchar` (checked by `Tool::new`).
            let mut raw = String::new();
            let mut encoded = String::new();
            let mut first_param = None;
            for piece in pieces {
                match piece {
                    Piece::Literal(text) => {
                        raw.push_str(text);
                        encoded.push_str(text);
                    }
                    Piece::Param(name) => {
                        let value = path_value(name, args.get(name))?;
                        encoded.push_str(&encode_segment(&value));
                        raw.push_str(&value);
                        first_param.get_or_insert(name.as_str());
                    }
                }
            }
            if raw.is_empty() || raw == "." || raw == ".." {
                return Err(ToolError::InvalidArguments(vec![format!(
                    "{}: a path segment cannot be empty, '.' or '..'",
                    first_param.map_or_else(|| "(path)".to_string(), pointer)
                )]));
            }
            path.push('/');
            path.push_str(&encoded);
        }
        if path.is_empty() {
            path.push('/');
        }
        url.set_path(&path);
        if url.path() != path {
            // Never send a path other than the one built (defence in depth).
            return Err(ToolError::InvalidArguments(vec![
                "(path): the path could not be built as given".into(),
            ]));
        }

        let mut query = Vec::new();
        let mut problems = Vec::new();
        for name in &def.query {
            if let Some(value) = args.get(name) {
                if let Err(p) = push_query(&mut query, name, value) {
                    problems.push(p);
                }
            }
        }
        let mut rest: Vec<(&String, &Value)> = args
            .iter()
            .filter(|(k, _)| !self.path_params.contains(k) && !def.query.contains(k))
            .collect();
        rest.sort_by(|a, b| a.0.cmp(b.0));
        let body = if def.method.has_body() {
            let object: Map<String, Value> = rest
                .into_iter()
                .map(|(k, v)| (k.clone(), v.clone()))
                .collect();
            let bytes = serde_json::to_vec(&Value::Object(object)).map_err(|e| {
                ToolError::InvalidArguments(vec![format!("(root): not serialisable: {e}")])
            })?;
            Some(bytes)
        } else {
            for (name, value) in rest {
                if let Err(p) = push_query(&mut query, name, value) {
                    problems.push(p);
                }
            }
            None
        };
        if !problems.is_empty() {
            return Err(ToolError::InvalidArguments(problems));
        }
        if !query.is_empty() {
            let mut pairs = url.query_pairs_mut();
            for (k, v) in &query {
                pairs.append_pair(k, v);
            }
        }

        let mut headers = Vec::new();
        if !def.headers.keys().any(|k| k.eq_ignore_ascii_case("accept")) {
            headers.push(("accept".to_string(), "application/json".to_string()));
        }
        for (name, value) in &def.headers {
            headers.push((name.to_ascii_lowercase(), value.clone()));
        }
        if body.is_some() {
            headers.push(("content-type".to_string(), "application/json".to_string()));
        }
        Ok(UpstreamRequest {
            method: def.method,
            url: url.to_string(),
            headers,
            body,
            secret_params: Vec::new(),
        })
    }
}

/// The raw (not yet encoded) text of a path argument: a string, or an integral number.
fn path_value(name: &str, value: Option<&Value>) -> Result<String, ToolError> {
    let text = match value {
        Some(Value::String(s)) => Some(s.clone()),
        Some(Value::Number(n)) => {
            let t = number_text(n);
            t.bytes()
                .all(|b| b.is_ascii_digit() || b == b'-')
                .then_some(t)
        }
        _ => None,
    };
    text.ok_or_else(|| {
        ToolError::InvalidArguments(vec![format!(
            "{}: a path argument must be a string or an integer",
            pointer(name)
        )])
    })
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::super::ToolDefinition;
    use super::*;

    fn tool(
        method: &str,
        path: &str,
        query: &[&str],
        properties: Value,
        required: &[&str],
    ) -> Tool {
        let def: ToolDefinition = serde_json::from_value(json!({
            "name": "demo.call",
            "provider": "demo",
            "description": "A test tool.",
            "method": method,
            "base_url": "https://api.example.com",
            "path": path,
            "query": query,
            "parameters": {"type": "object", "required": required, "properties": properties},
            "risk": "read"
        }))
        .unwrap();
        Tool::new(def).unwrap()
    }

    fn get_item() -> Tool {
        tool(
            "GET",
            "/v1/repos/{owner}/{repo}",
            &[],
            json!({"owner": {"type": "string"}, "repo": {"type": "string"}, "q": {"type": "string"},
                   "n": {"type": "integer"}, "tags": {"type": "array"}, "on": {"type": "boolean"},
                   "f": {"type": "number"}}),
            &["owner", "repo"],
        )
    }

    fn body(req: &UpstreamRequest) -> Value {
        serde_json::from_slice(req.body.as_ref().unwrap()).unwrap()
    }

    #[test]
    fn path_arguments_stay_one_segment() {
        let t = get_item();
        let cases = [
            ("a/../b", "a%2F..%2Fb"),
            ("..%2F", "..%252F"),
            ("x?y#z", "x%3Fy%23z"),
            ("sp ace", "sp%20ace"),
            ("back\\slash", "back%5Cslash"),
            ("tab\tnl\n", "tab%09nl%0A"),
            ("é", "%C3%A9"),
            ("a.b-c_d~e", "a.b-c_d~e"),
            ("...", "..."),
        ];
        for (raw, encoded) in cases {
            let req = t
                .build_request(None, &json!({"owner": "o", "repo": raw}))
                .unwrap();
            assert_eq!(
                req.url,
                format!("https://api.example.com/v1/repos/o/{encoded}"),
                "{raw:?}"
            );
            let parsed = url::Url::parse(&req.url).unwrap();
            assert_eq!(parsed.path_segments().unwrap().count(), 4, "{raw:?}");
        }
        for raw in ["", ".", ".."] {
            let err = t
                .build_request(None, &json!({"owner": "o", "repo": raw}))
                .unwrap_err();
            assert!(
                matches!(&err, ToolError::InvalidArguments(p) if p[0].starts_with("/repo:")),
                "{raw:?}: {err:?}"
            );
        }
    }

    #[test]
    fn integer_path_arguments_and_mixed_segments() {
        let t = tool(
            "POST",
            "/v1/issues/{n}:close",
            &[],
            json!({"n": {"type": "integer"}}),
            &["n"],
        );
        let req = t.build_request(None, &json!({"n": 42})).unwrap();
        assert_eq!(req.url, "https://api.example.com/v1/issues/42:close");
        let req = t.build_request(None, &json!({"n": 42.0})).unwrap();
        assert_eq!(req.url, "https://api.example.com/v1/issues/42:close");
        assert!(t.build_request(None, &json!({"n": 4.5})).is_err());
        assert!(
            t.build_request(None, &json!({"n": "42"})).is_err(),
            "schema says integer"
        );
    }

    #[test]
    fn get_sends_remaining_arguments_in_the_query() {
        let t = get_item();
        let req = t
            .build_request(
                None,
                &json!({"owner": "o", "repo": "r", "q": "from:bob is:unread & more", "n": 10,
                        "tags": ["a", "b c", 3, null], "on": false, "f": 2.5}),
            )
            .unwrap();
        assert_eq!(req.method, HttpMethod::Get);
        assert_eq!(
            req.url,
            "https://api.example.com/v1/repos/o/r?f=2.5&n=10&on=false&q=from%3Abob+is%3Aunread+%26+more&tags=a&tags=b+c&tags=3"
        );
        assert!(req.body.is_none());
        assert_eq!(req.header("content-type"), None);
        assert_eq!(req.header("Accept"), Some("application/json"));
        // No arguments left: no query string at all.
        let req = t
            .build_request(None, &json!({"owner": "o", "repo": "r"}))
            .unwrap();
        assert_eq!(req.url, "https://api.example.com/v1/repos/o/r");
        // null leaves a parameter out.
        let t = tool("GET", "/x", &[], json!({"a": {}}), &[]);
        let req = t.build_request(None, &json!({"a": null})).unwrap();
        assert_eq!(req.url, "https://api.example.com/x");
    }

    #[test]
    fn objects_cannot_go_in_a_query_string() {
        let t = tool("DELETE", "/x", &[], json!({"a": {}}), &[]);
        for bad in [
            json!({"a": {"k": 1}}),
            json!({"a": [[1]]}),
            json!({"a": [{"k": 1}]}),
        ] {
            let err = t.build_request(None, &bad).unwrap_err();
            assert!(
                matches!(&err, ToolError::InvalidArguments(p) if p[0].starts_with("/a:")),
                "{err:?}"
            );
        }
        let req = t.build_request(None, &json!({"a": "1"})).unwrap();
        assert_eq!(
            (req.method, req.url.as_str()),
            (HttpMethod::Delete, "https://api.example.com/x?a=1")
        );
        assert!(req.body.is_none());
    }

    #[test]
    fn post_put_patch_send_a_json_body_and_query_names_stay_in_the_query() {
        for method in ["POST", "PUT", "PATCH"] {
            let t = tool(
                method,
                "/v1/{id}/events",
                &["sendUpdates"],
                json!({"id": {"type": "string"}, "sendUpdates": {"type": "string"},
                       "summary": {"type": "string"}, "attendees": {"type": "array"},
                       "milestone": {}}),
                &["id"],
            );
            let req = t
                .build_request(
                    None,
                    &json!({"id": "primary", "sendUpdates": "all", "summary": "Hi",
                            "attendees": [{"email": "a@example.com"}], "milestone": null}),
                )
                .unwrap();
            assert_eq!(req.method.as_str(), method);
            assert_eq!(
                req.url,
                "https://api.example.com/v1/primary/events?sendUpdates=all"
            );
            assert_eq!(
                body(&req),
                json!({"summary": "Hi", "attendees": [{"email": "a@example.com"}], "milestone": null})
            );
            assert_eq!(req.header("content-type"), Some("application/json"));
            // Nothing left for the body: an empty object.
            let req = t.build_request(None, &json!({"id": "x"})).unwrap();
            assert_eq!(req.body.as_deref(), Some(&b"{}"[..]));
            assert_eq!(req.url, "https://api.example.com/v1/x/events");
        }
    }

    #[test]
    fn arguments_are_checked_before_anything_is_built() {
        let t = get_item();
        let err = t.build_request(None, &json!({"owner": "o"})).unwrap_err();
        assert!(matches!(err, ToolError::InvalidArguments(_)));
        let err = t.build_request(None, &json!("o/r")).unwrap_err();
        assert!(matches!(err, ToolError::InvalidArguments(_)));
    }

    #[test]
    fn base_url_override_follows_the_same_rules() {
        let t = get_item();
        let args = json!({"owner": "o", "repo": "r"});
        let req = t
            .build_request(Some("http://127.0.0.1:8080"), &args)
            .unwrap();
        assert_eq!(req.url, "http://127.0.0.1:8080/v1/repos/o/r");
        let req = t
            .build_request(Some("https://ghe.example.com/"), &args)
            .unwrap();
        assert_eq!(req.url, "https://ghe.example.com/v1/repos/o/r");
        for bad in [
            "http://evil.example.com",
            "https://a.example.com/prefix",
            "https://u:secretpw@a.example.com",
            "not a url",
        ] {
            let err = t.build_request(Some(bad), &args).unwrap_err();
            assert!(matches!(err, ToolError::InvalidBaseUrl(_)), "{bad}");
            assert!(!err.to_string().contains("secretpw"));
        }
    }

    #[test]
    fn static_headers_are_sent_lower_cased_and_may_replace_accept() {
        let mut def: ToolDefinition = serde_json::from_value(json!({
            "name": "demo.call", "provider": "demo", "description": "d", "method": "POST",
            "base_url": "https://api.example.com", "path": "/v1/search",
            "headers": {"Notion-Version": "2022-06-28"},
            "parameters": {"type": "object"}, "risk": "read"
        }))
        .unwrap();
        let req = Tool::new(def.clone())
            .unwrap()
            .build_request(None, &json!({}))
            .unwrap();
        assert_eq!(
            req.headers,
            vec![
                ("accept".to_string(), "application/json".to_string()),
                ("notion-version".to_string(), "2022-06-28".to_string()),
                ("content-type".to_string(), "application/json".to_string()),
            ]
        );
        def.headers
            .insert("Accept".into(), "application/vnd.github+json".into());
        let req = Tool::new(def)
            .unwrap()
            .build_request(None, &json!({}))
            .unwrap();
        assert_eq!(req.header("accept"), Some("application/vnd.github+json"));
        assert_eq!(req.headers.iter().filter(|(n, _)| n == "accept").count(), 1);
    }

    #[test]
    fn builtins_build_the_real_requests() {
        let b = |name: &str, args: Value| {
            super::super::builtin_tool(name)
                .unwrap_or_else(|| panic!("{name}"))
                .build_request(None, &args)
                .unwrap_or_else(|e| panic!("{name}: {e}"))
        };
        let req = b(
            "gmail.send_message",
            json!({"raw": "VG86IGJvYkBleGFtcGxlLmNvbQ"}),
        );
        assert_eq!(req.method, HttpMethod::Post);
        assert_eq!(
            req.url,
            "https://gmail.googleapis.com/gmail/v1/users/me/messages/send"
        );
        assert_eq!(body(&req), json!({"raw": "VG86IGJvYkBleGFtcGxlLmNvbQ"}));

        let req = b(
            "gmail.list_messages",
            json!({"q": "is:unread", "maxResults": 5, "labelIds": ["INBOX", "UNREAD"]}),
        );
        assert_eq!(
            req.url,
            "https://gmail.googleapis.com/gmail/v1/users/me/messages?labelIds=INBOX&labelIds=UNREAD&maxResults=5&q=is%3Aunread"
        );
        let req = b("gmail.trash_message", json!({"id": "18c2f"}));
        assert_eq!(
            req.url,
            "https://gmail.googleapis.com/gmail/v1/users/me/messages/18c2f/trash"
        );
        assert_eq!(req.body.as_deref(), Some(&b"{}"[..]));

        let req = b(
            "calendar.create_event",
            json!({"calendarId": "primary", "sendUpdates": "all", "summary": "Sync",
                   "start": {"dateTime": "2025-02-03T10:00:00+01:00"},
                   "end": {"dateTime": "2025-02-03T10:30:00+01:00"}}),
        );
        assert_eq!(
            req.url,
            "https://www.googleapis.com/calendar/v3/calendars/primary/events?sendUpdates=all"
        );
        assert!(body(&req).get("sendUpdates").is_none());

        let req = b(
            "slack.post_message",
            json!({"channel": "C012", "text": "hi"}),
        );
        assert_eq!(req.url, "https://slack.com/api/chat.postMessage");
        assert_eq!(body(&req), json!({"channel": "C012", "text": "hi"}));

        let req = b(
            "github.create_issue",
            json!({"owner": "octo", "repo": "hello", "title": "Bug"}),
        );
        assert_eq!(req.url, "https://api.github.com/repos/octo/hello/issues");
        assert_eq!(body(&req), json!({"title": "Bug"}));
        assert_eq!(req.header("accept"), Some("application/vnd.github+json"));
        assert_eq!(req.header("x-github-api-version"), Some("2022-11-28"));

        let req = b(
            "github.create_issue_comment",
            json!({"owner": "octo", "repo": "hello", "issue_number": 7, "body": "Thanks"}),
        );
        assert_eq!(
            req.url,
            "https://api.github.com/repos/octo/hello/issues/7/comments"
        );

        let req = b(
            "github.delete_repository",
            json!({"owner": "octo", "repo": "hello"}),
        );
        assert_eq!(
            (req.method, req.url.as_str()),
            (
                HttpMethod::Delete,
                "https://api.github.com/repos/octo/hello"
            )
        );
        assert!(req.body.is_none());

        // The schema already refuses a traversal attempt before the encoder would.
        let err = super::super::builtin_tool("github.delete_repository")
            .unwrap()
            .build_request(None, &json!({"owner": "octo", "repo": ".."}))
            .unwrap_err();
        assert!(matches!(err, ToolError::InvalidArguments(_)));

        let req = b(
            "notion.search",
            json!({"query": "roadmap", "filter": {"property": "object", "value": "page"}}),
        );
        assert_eq!(req.header("notion-version"), Some("2022-06-28"));
        let req = b(
            "hubspot.create_contact",
            json!({"properties": {"email": "a@example.com"}}),
        );
        assert_eq!(
            body(&req),
            json!({"properties": {"email": "a@example.com"}})
        );
    }

    #[test]
    fn debug_hides_credentials_and_body() {
        let req = UpstreamRequest {
            method: HttpMethod::Post,
            url: "https://api.example.com/x?q=visible&api_key=K1&custom=K2&key=K3#frag".into(),
            headers: vec![
                ("authorization".into(), "Bearer T1".into()),
                ("X-Custom-Auth".into(), "T2".into()),
                ("accept".into(), "application/json".into()),
            ],
            body: Some(b"{\"password\":\"P\"}".to_vec()),
            secret_params: vec!["custom".into(), "x-custom-auth".into()],
        };
        let shown = format!("{req:?}");
        for secret in ["T1", "T2", "K1", "K2", "K3", "\"P\""] {
            assert!(!shown.contains(secret), "{secret} in {shown}");
        }
        assert!(
            shown.contains("q=visible") && shown.contains("application/json"),
            "{shown}"
        );
        assert!(shown.contains("<16 bytes>"), "{shown}");
        assert_eq!(
            req.redacted_url(),
            "https://api.example.com/x?q=visible&api_key=[redacted]&custom=[redacted]&key=[redacted]#frag"
        );
    }
}
