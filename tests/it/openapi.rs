//! The OpenAPI document's promises that `tools/check-openapi` cannot see from the file alone:
//! its inline `ToolDefinition` is the tool-definition schema the service validates with, and
//! a refused body names its failing member as a JSON pointer, as the `Problem` schema says.

use std::path::Path;

use reqwest::{Client, StatusCode};
use serde_json::{json, Value};

use crate::support::{Deployment, Reply, Stack};

fn read_json(relative: &str) -> Value {
    let path = Path::new(env!("CARGO_MANIFEST_DIR")).join(relative);
    serde_json::from_str(&std::fs::read_to_string(&path).expect("read")).expect("json")
}

/// The document carries the tool-definition schema inline (generators and validators
/// resolve only local `$ref`s); it must stay the schema of `schemas/tool-definition.schema.json`.
#[test]
fn the_inline_tool_definition_is_the_tool_definition_schema() {
    let doc = read_json("schemas/openapi.json");
    let mut inline = doc["components"]["schemas"]["ToolDefinition"].clone();
    let mut file = read_json("schemas/tool-definition.schema.json");
    let file = file.as_object_mut().expect("object");
    file.remove("$schema");
    file.remove("$id");
    let inline = inline.as_object_mut().expect("object");
    let (ours, theirs) = (
        inline.remove("description").expect("description"),
        file.remove("description").expect("description"),
    );
    assert!(
        ours.as_str()
            .expect("text")
            .starts_with(theirs.as_str().expect("text")),
        "the descriptions differ"
    );
    assert_eq!(
        Value::Object(inline.clone()),
        Value::Object(file.clone()),
        "schemas/openapi.json's ToolDefinition differs from schemas/tool-definition.schema.json"
    );
}

/// Malformed JSON, a wrong type deep in the body, a missing member and an unknown one: each
/// refusal names the member in `errors[0].pointer`, beside `detail`.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn refused_bodies_point_at_the_failing_member() {
    let d = Deployment::start(Stack::Embedded, &[]).await;
    let http = Client::new();
    let cases: [(&str, String, StatusCode, &str, &str); 8] = [
        (
            "/v1/api-keys",
            "{not json".into(),
            StatusCode::BAD_REQUEST,
            "malformed-json",
            "",
        ),
        (
            "/v1/api-keys",
            r#"{"name": "x", "role": "#.into(),
            StatusCode::BAD_REQUEST,
            "malformed-json",
            // Where the JSON broke off.
            "/role",
        ),
        (
            "/v1/api-keys",
            r#"{"name": 5, "role": "viewer"}"#.into(),
            StatusCode::UNPROCESSABLE_ENTITY,
            "validation-failed",
            "/name",
        ),
        (
            "/v1/api-keys",
            r#"{"name": "x"}"#.into(),
            StatusCode::UNPROCESSABLE_ENTITY,
            "validation-failed",
            "/role",
        ),
        (
            "/v1/api-keys",
            r#"{"name": "x", "role": "viewer", "admin": true}"#.into(),
            StatusCode::UNPROCESSABLE_ENTITY,
            "validation-failed",
            "/admin",
        ),
        (
            "/v1/tokens",
            json!({ "connection_id": "c", "scopes": ["read", 5] }).to_string(),
            StatusCode::UNPROCESSABLE_ENTITY,
            "validation-failed",
            "/scopes/1",
        ),
        (
            "/v1/gateways",
            json!({ "name": "g", "servers": [{ "auth_config_id": "a", "tools": ["t"] },
                                              { "auth_config_id": "b", "tools": [7] }] })
            .to_string(),
            StatusCode::UNPROCESSABLE_ENTITY,
            "validation-failed",
            "/servers/1/tools/0",
        ),
        (
            "/v1/gateways",
            json!({ "name": "g", "servers": [{ "auth_config_id": "a", "tools": ["t"], "x": 1 }] })
                .to_string(),
            StatusCode::UNPROCESSABLE_ENTITY,
            "validation-failed",
            "/servers/0/x",
        ),
    ];
    for (path, body, status, kind, pointer) in cases {
        let r = Reply::of(
            http.post(d.svc.url(path))
                .bearer_auth(&d.admin)
                .header("content-type", "application/json")
                .body(body.clone()),
        )
        .await;
        r.expect(status, kind);
        let errors = r.body["errors"].as_array().expect("errors");
        assert_eq!(errors.len(), 1, "{body}: {}", r.text);
        assert_eq!(errors[0]["pointer"], pointer, "{body}: {}", r.text);
        assert!(
            errors[0]["detail"].as_str().is_some_and(|d| !d.is_empty()),
            "{body}: {}",
            r.text
        );
        assert!(r.body["detail"].is_string(), "{}", r.text);
    }
}
