//! The provider catalog: every data file matches its schema, and the providers the product
//! promises are there.

use std::path::Path;

use serde_json::Value;

#[test]
fn every_catalog_file_matches_the_schema() {
    let path = Path::new(env!("CARGO_MANIFEST_DIR")).join("schemas/provider-catalog.schema.json");
    let schema: Value =
        serde_json::from_str(&std::fs::read_to_string(path).expect("schema")).expect("json");
    let validator = jsonschema::options()
        .build(&schema)
        .expect("schema compiles");
    for (name, text) in authledger::providers::FILES {
        let v: Value = serde_json::from_str(text).unwrap_or_else(|e| panic!("{name}: {e}"));
        let errors: Vec<String> = validator
            .iter_errors(&v)
            .map(|e| format!("{e} at {}", e.instance_path))
            .collect();
        assert!(errors.is_empty(), "{name}: {errors:?}");
    }
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("src/providers/catalog");
    let on_disk = std::fs::read_dir(dir).expect("dir").count();
    assert_eq!(
        on_disk,
        authledger::providers::FILES.len(),
        "a data file is not compiled into the catalog"
    );
}

#[test]
fn the_promised_providers_are_in_the_catalog() {
    for id in [
        "google",
        "slack",
        "github",
        "atlassian",
        "hubspot",
        "notion",
        "microsoft",
        "salesforce",
    ] {
        assert!(
            authledger::providers::provider(id).is_some(),
            "{id} missing"
        );
    }
    let google = authledger::providers::provider("google").expect("google");
    for scope in [
        "https://www.googleapis.com/auth/gmail.send",
        "https://www.googleapis.com/auth/calendar.events",
    ] {
        assert!(
            google.oauth2.scopes.iter().any(|s| s.scope == scope),
            "{scope}"
        );
    }
}
