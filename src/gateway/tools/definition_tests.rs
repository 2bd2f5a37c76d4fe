//! Unit tests of `definition` (a separate file to keep the module readable).
use serde_json::json;

use super::*;

pub(crate) fn sample() -> Value {
    json!({
        "name": "demo.get_item",
        "provider": "demo",
        "description": "Get an item.",
        "method": "GET",
        "base_url": "https://api.example.com",
        "path": "/v1/items/{id}",
        "parameters": {
            "type": "object",
            "additionalProperties": false,
            "required": ["id"],
            "properties": {
                "id": {"type": "string", "description": "Item id."},
                "verbose": {"type": "boolean"}
            }
        },
        "required_scopes": ["items:read"],
        "risk": "read"
    })
}

/// `def` with the member at `pointer` set (created if missing).
fn with(mut def: Value, pointer: &str, value: Value) -> Value {
    let (parent, key) = pointer.rsplit_once('/').unwrap();
    def.pointer_mut(parent).unwrap()[key] = value;
    def
}

/// The field an invalid definition is blamed on.
fn refused(def: Value) -> String {
    match Tool::from_value(def) {
        Err(ToolError::InvalidDefinition { field, reason }) => format!("{field}: {reason}"),
        other => panic!("expected InvalidDefinition, got {other:?}"),
    }
}

#[test]
fn a_good_definition_builds() {
    let tool = Tool::from_value(sample()).unwrap();
    assert_eq!(tool.name(), "demo.get_item");
    assert_eq!(tool.path_params(), ["id".to_string()]);
    assert_eq!(tool.definition().risk, Risk::Read);
    assert!(format!("{tool:?}").contains("demo.get_item"));
}

#[test]
fn names_are_namespace_dot_action() {
    for bad in [
        "noDot",
        "Demo.get",
        "demo.get.more",
        ".get",
        "demo.",
        "demo.get-item",
        "démo.x",
    ] {
        let why = refused(with(sample(), "/name", json!(bad)));
        assert!(why.starts_with("name:"), "{bad}: {why}");
    }
    let long = format!("{}.x", "a".repeat(41));
    assert!(refused(with(sample(), "/name", json!(long))).starts_with("name:"));
    for bad in ["", "Google", "a b", &"p".repeat(65)] {
        assert!(refused(with(sample(), "/provider", json!(bad))).starts_with("provider:"));
    }
    for bad in [String::new(), "d".repeat(501)] {
        assert!(refused(with(sample(), "/description", json!(bad))).starts_with("description:"));
    }
}

#[test]
fn base_urls_are_https_or_loopback_http_and_bare() {
    for bad in [
        "http://api.example.com",
        "https://api.example.com/v1",
        "https://api.example.com/?x=1",
        "https://api.example.com/#f",
        "https://user:pw@api.example.com",
        "ftp://api.example.com",
        "api.example.com",
        "https://api.example.com /",
        "http://10.0.0.1",
    ] {
        let why = refused(with(sample(), "/base_url", json!(bad)));
        assert!(why.starts_with("base_url:"), "{bad}: {why}");
        assert!(!why.contains("pw@"), "never echoes the URL");
    }
    for good in [
        "https://api.example.com",
        "https://api.example.com/",
        "https://api.example.com:8443",
        "http://127.0.0.1:9000",
        "http://localhost:8080",
        "http://[::1]:1234",
    ] {
        Tool::from_value(with(sample(), "/base_url", json!(good))).unwrap();
    }
}

#[test]
fn path_templates_are_checked() {
    for bad in [
        "v1/items/{id}",
        "/v1//items/{id}",
        "/v1/../{id}",
        "/v1/items/{id}?x=1",
        "/v1/items/{id}#f",
        "/v1/items/{id}/{id}",
        "/v1/items/{}",
        "/v1/items/{i-d}",
        "/v1/items/{id",
        "/v1/%2e%2e/{id}",
        "/v1/it ems/{id}",
    ] {
        let why = refused(with(sample(), "/path", json!(bad)));
        assert!(
            why.starts_with("path:") || why.starts_with("parameters:"),
            "{bad}: {why}"
        );
    }
    // A placeholder that is not a property, or not required, or not a scalar.
    assert!(refused(with(sample(), "/path", json!("/v1/{other}"))).contains("not a property"));
    assert!(refused(with(sample(), "/parameters/required", json!([]))).contains("required"));
    let obj = with(
        sample(),
        "/parameters/properties/id",
        json!({"type": "object"}),
    );
    assert!(refused(obj).contains("string or integer"));
    let untyped = with(sample(), "/parameters/properties/id", json!({}));
    assert!(refused(untyped).contains("string or integer"));
    let int = with(
        sample(),
        "/parameters/properties/id",
        json!({"type": "integer"}),
    );
    Tool::from_value(int).unwrap();
    // Placeholders may share a segment with literal text.
    let mixed = with(sample(), "/path", json!("/v1/items/{id}:archive"));
    let tool = Tool::from_value(mixed).unwrap();
    assert_eq!(
        tool.segments[2],
        vec![Piece::Param("id".into()), Piece::Literal(":archive".into())]
    );
}

#[test]
fn parameters_must_be_a_sound_local_object_schema() {
    let why = refused(with(sample(), "/parameters", json!({"type": "array"})));
    assert!(why.starts_with("parameters:"), "{why}");
    assert!(refused(with(sample(), "/parameters", json!(true))).starts_with("parameters:"));
    // Not a valid schema (meta-schema check).
    let invalid = with(
        sample(),
        "/parameters/properties/verbose",
        json!({"type": "boolish"}),
    );
    assert!(refused(invalid).contains("not a valid JSON Schema"));
    let invalid = with(
        sample(),
        "/parameters/properties/verbose",
        json!({"minLength": -1}),
    );
    assert!(refused(invalid).contains("not a valid JSON Schema"));
    // Remote references, in any spelling, are refused before anything could fetch them.
    for target in [
        "https://example.com/s.json",
        "other.json#/x",
        "file:///etc/passwd",
    ] {
        let remote = with(
            sample(),
            "/parameters/properties/verbose",
            json!({"$ref": target}),
        );
        assert!(refused(remote).contains("local $ref"), "{target}");
    }
    let local = with(
        with(
            sample(),
            "/parameters/$defs",
            json!({"flag": {"type": "boolean"}}),
        ),
        "/parameters/properties/verbose",
        json!({"$ref": "#/$defs/flag"}),
    );
    Tool::from_value(local).unwrap();
    // A dangling local reference does not compile.
    let dangling = with(
        sample(),
        "/parameters/properties/verbose",
        json!({"$ref": "#/$defs/nope"}),
    );
    assert!(refused(dangling).starts_with("parameters:"));
    // Another draft is not silently reinterpreted.
    let draft7 = with(
        sample(),
        "/parameters/$schema",
        json!("http://json-schema.org/draft-07/schema#"),
    );
    assert!(refused(draft7).contains("$schema"));
    // Look-around needs a backtracking engine: not offered to workspace schemas.
    let lookaround = with(
        sample(),
        "/parameters/properties/id/pattern",
        json!("^(?=a)a+$"),
    );
    assert!(refused(lookaround).starts_with("parameters:"));
}

#[test]
fn unknown_fields_are_refused() {
    let mut def = sample();
    def["headerz"] = json!({});
    let why = refused(def);
    assert!(
        why.starts_with("(document):") && why.contains("headerz"),
        "{why}"
    );
    let def = with(sample(), "/risk", json!("dangerous"));
    assert!(refused(def).starts_with("(document):"));
    let def = with(sample(), "/method", json!("get"));
    assert!(refused(def).starts_with("(document):"));
}

#[test]
fn query_names_must_be_scalar_properties_and_not_path_params() {
    let mut def = sample();
    def["query"] = json!(["nope"]);
    assert!(refused(def).contains("not a property"));
    let mut def = sample();
    def["query"] = json!(["id"]);
    assert!(refused(def).contains("path parameter"));
    let mut def = sample();
    def["query"] = json!(["verbose", "verbose"]);
    assert!(refused(def).contains("twice"));
    let mut def = with(
        sample(),
        "/parameters/properties/filter",
        json!({"type": "object"}),
    );
    def["method"] = json!("POST");
    def["query"] = json!(["filter"]);
    assert!(refused(def).contains("query string"));
    // On GET an object argument could never be sent.
    let def = with(
        sample(),
        "/parameters/properties/filter",
        json!({"type": "object"}),
    );
    assert!(refused(def).contains("GET request"));
}

#[test]
fn static_headers_cannot_carry_credentials_or_framing() {
    for name in [
        "Authorization",
        "cookie",
        "X-Api-Key",
        "X-Auth-Token",
        "Content-Type",
        "Host",
        "bad name",
        "x_underscore",
    ] {
        let mut def = sample();
        def["headers"] = json!({ name: "v" });
        assert!(refused(def).starts_with("headers:"), "{name}");
    }
    for value in ["", " padded", "line\r\nbreak", "é"] {
        let mut def = sample();
        def["headers"] = json!({ "Notion-Version": value });
        assert!(refused(def).starts_with("headers:"), "{value:?}");
    }
    let mut def = sample();
    def["headers"] = json!({"Accept": "a", "accept": "b"});
    assert!(refused(def).contains("twice"));
    let mut def = sample();
    def["headers"] = json!({"Notion-Version": "2022-06-28"});
    Tool::from_value(def).unwrap();
}

#[test]
fn scopes_are_distinct_visible_tokens() {
    for bad in [
        json!([""]),
        json!(["a b"]),
        json!(["x", "x"]),
        json!(["q\"uote"]),
    ] {
        let def = with(sample(), "/required_scopes", bad.clone());
        assert!(refused(def).starts_with("required_scopes:"), "{bad}");
    }
    let mut def = sample();
    def.as_object_mut().unwrap().remove("required_scopes");
    assert!(Tool::from_value(def)
        .unwrap()
        .definition()
        .required_scopes
        .is_empty());
}

#[test]
fn argument_errors_point_and_never_echo_values() {
    let tool = Tool::from_value(sample()).unwrap();
    tool.check_arguments(&json!({"id": "abc", "verbose": true}))
        .unwrap();
    let secret = "s3cr3t-value-".repeat(50);
    let Err(ToolError::InvalidArguments(problems)) =
        tool.check_arguments(&json!({"id": 7, "verbose": secret, "extra": 1}))
    else {
        panic!("expected InvalidArguments")
    };
    let all = problems.join("\n");
    assert!(all.contains("/id"), "{all}");
    assert!(all.contains("/verbose"), "{all}");
    assert!(!all.contains("s3cr3t"), "{all}");
    assert!(problems
        .iter()
        .all(|p| p.chars().count() <= MAX_PROBLEM_CHARS + 30));
    let Err(ToolError::InvalidArguments(problems)) = tool.check_arguments(&json!([1])) else {
        panic!("expected InvalidArguments")
    };
    assert!(problems[0].starts_with("(root):"), "{problems:?}");
    // Missing required: at the root.
    assert!(tool.check_arguments(&json!({})).is_err());
}

#[test]
fn only_a_few_problems_are_listed() {
    let mut def = sample();
    let mut props = serde_json::Map::new();
    for i in 0..20 {
        props.insert(format!("p{i}"), json!({"type": "integer"}));
    }
    props.insert("id".into(), json!({"type": "string"}));
    def["parameters"]["properties"] = Value::Object(props);
    let tool = Tool::from_value(def).unwrap();
    let args: Map<String, Value> = (0..20)
        .map(|i| (format!("p{i}"), json!("x")))
        .chain([("id".to_string(), json!("a"))])
        .collect();
    let Err(ToolError::InvalidArguments(problems)) = tool.check_arguments(&Value::Object(args))
    else {
        panic!("expected InvalidArguments")
    };
    assert_eq!(problems.len(), MAX_PROBLEMS + 1);
    assert_eq!(problems[MAX_PROBLEMS], "(more problems not shown)");
}

#[test]
fn formats_are_asserted() {
    let def = with(
        sample(),
        "/parameters/properties/verbose",
        json!({"type": "string", "format": "date-time"}),
    );
    let tool = Tool::from_value(def).unwrap();
    tool.check_arguments(&json!({"id": "a", "verbose": "2025-01-31T09:00:00Z"}))
        .unwrap();
    assert!(tool
        .check_arguments(&json!({"id": "a", "verbose": "tomorrow"}))
        .is_err());
}

#[test]
fn methods_and_risks_serialise_as_documented() {
    assert_eq!(
        serde_json::to_value(HttpMethod::Patch).unwrap(),
        json!("PATCH")
    );
    assert_eq!(
        serde_json::to_value(Risk::Destructive).unwrap(),
        json!("destructive")
    );
    for m in [
        HttpMethod::Get,
        HttpMethod::Post,
        HttpMethod::Put,
        HttpMethod::Patch,
        HttpMethod::Delete,
    ] {
        assert_eq!(serde_json::to_value(m).unwrap(), json!(m.as_str()));
        assert_eq!(m.to_string(), m.as_str());
    }
    assert!(HttpMethod::Get.is_idempotent());
    assert!(HttpMethod::Put.is_idempotent());
    assert!(HttpMethod::Delete.is_idempotent());
    assert!(!HttpMethod::Post.is_idempotent());
    assert!(!HttpMethod::Patch.is_idempotent());
    assert_eq!(Risk::Write.as_str(), "write");
    assert!(Risk::Read < Risk::Write && Risk::Write < Risk::Destructive);
}
