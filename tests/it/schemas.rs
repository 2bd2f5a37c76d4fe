//! Every event kind has a JSON Schema, and every event the code emits validates against
//! the body schema and its kind's payload schema.

use std::path::{Path, PathBuf};

use serde_json::Value;

use authledger::domain::{Event, ALL_KINDS};
use authledger::ledger::envelope::open_envelope;
use authledger::ledger::sqlite_log::SqliteEventLog;
use authledger::ledger::EventLog;

use crate::harness::{args, run_cli};

fn schema_dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("schemas/events/v1")
}

pub(crate) fn validator(name: &str) -> jsonschema::Validator {
    let path = schema_dir().join(format!("{name}.json"));
    let text =
        std::fs::read_to_string(&path).unwrap_or_else(|_| panic!("no schema {}", path.display()));
    let schema: Value = serde_json::from_str(&text).expect("schema is JSON");
    jsonschema::options()
        .should_validate_formats(true)
        .build(&schema)
        .expect("schema compiles")
}

fn check(v: &jsonschema::Validator, instance: &Value, what: &str) {
    let errors: Vec<String> = v
        .iter_errors(instance)
        .map(|e| format!("{} at {}", e, e.instance_path))
        .collect();
    assert!(
        errors.is_empty(),
        "{what} does not match its schema: {errors:?}\n{instance}"
    );
}

/// Validates a stored envelope: the body, then the payload against its kind.
pub(crate) fn check_envelope(envelope: &[u8]) {
    let opened = open_envelope(envelope).expect("envelope");
    let body: Value = serde_json::from_slice(&opened.body_bytes).expect("body");
    check(&validator("body"), &body, "body");
    let kind = body["kind"].as_str().expect("kind");
    assert!(
        ALL_KINDS.contains(&kind),
        "emitted kind {kind} is not in ALL_KINDS"
    );
    check(&validator(kind), &body["payload"], kind);
}

#[test]
fn every_kind_has_a_schema_and_every_schema_a_kind() {
    for kind in ALL_KINDS {
        assert!(
            schema_dir().join(format!("{kind}.json")).is_file(),
            "kind {kind} has no schema"
        );
    }
    for entry in std::fs::read_dir(schema_dir()).expect("schema dir") {
        let name = entry
            .expect("entry")
            .file_name()
            .to_string_lossy()
            .trim_end_matches(".json")
            .to_string();
        assert!(
            name == "body" || ALL_KINDS.contains(&name.as_str()),
            "schema {name} has no event kind"
        );
    }
}

#[test]
fn every_example_payload_matches_its_schema() {
    let examples = Event::examples();
    let kinds: Vec<&str> = examples.iter().map(Event::kind).collect();
    assert_eq!(
        kinds, ALL_KINDS,
        "Event::examples must cover every kind, in ALL_KINDS order"
    );
    for ev in examples.into_iter().chain(Event::variant_examples()) {
        let (kind, payload) = ev.to_parts().expect("parts");
        check(&validator(&kind), &payload, &kind);
    }
}

#[test]
fn schemas_reject_what_they_should() {
    check_negative("workspace.created", serde_json::json!({ "name": "" }));
    check_negative(
        "workspace.created",
        serde_json::json!({ "name": "x", "secret": "y" }),
    );
    check_negative(
        "api_key.created",
        serde_json::json!({ "name": "x", "role": "root", "key_prefix": "alk_x",
        "key_hash": format!("sha256:{}", "0".repeat(64)), "expires_at": null }),
    );
}

#[test]
fn only_a_recovered_completion_has_an_unknown_outcome() {
    let Some(Event::ToolCompleted(recovered)) = Event::variant_examples().into_iter().next() else {
        panic!("a recovered tool.completed example");
    };
    let recovered = serde_json::to_value(&recovered).expect("json");
    let mut not_recovered = recovered.clone();
    not_recovered
        .as_object_mut()
        .expect("object")
        .remove("recovered");
    check_negative("tool.completed", not_recovered);
    let mut with_status = recovered.clone();
    with_status["status"] = serde_json::json!(200);
    check_negative("tool.completed", with_status);
    let mut succeeded = recovered;
    succeeded["outcome"] = serde_json::json!("success");
    check_negative("tool.completed", succeeded);
}

fn check_negative(kind: &str, instance: Value) {
    assert!(
        !validator(kind).is_valid(&instance),
        "{kind} accepted {instance}"
    );
}

/// Drives the real CLI (bootstrap, key rotation, serve's first-run bootstrap) and
/// validates every event it wrote.
#[tokio::test]
async fn every_event_emitted_by_the_cli_matches_its_schemas() {
    let dir = tempfile::tempdir().expect("dir");
    let d = dir.path().display().to_string();
    for cmd in [
        vec!["bootstrap", "--workspace", "Acme"],
        vec!["keys", "rotate"],
        vec!["bootstrap", "--workspace", "Beta"],
    ] {
        let mut a = args(&["--data-dir", &d]);
        a.extend(args(&cmd));
        let out = run_cli(&a);
        assert!(
            out.status.success(),
            "{cmd:?}: {}",
            String::from_utf8_lossy(&out.stderr)
        );
    }
    let log = SqliteEventLog::open(&dir.path().join("ledger.db"))
        .await
        .expect("open");
    let events = log.read_from(1, 1000).await.expect("read");
    let kinds: Vec<String> = events
        .iter()
        .map(|e| open_envelope(&e.envelope).expect("env").body.kind)
        .collect();
    assert_eq!(
        kinds,
        [
            "workspace.created",
            "api_key.created",
            "member.invited",
            "signing_key.rotated",
            "workspace.created",
            "api_key.created",
            "member.invited"
        ]
    );
    for e in &events {
        check_envelope(&e.envelope);
    }
}
