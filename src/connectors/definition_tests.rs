use std::collections::BTreeSet;
use std::path::Path;

use serde_json::{json, Value};

use super::*;
use crate::connectors::DRIVERS;

#[test]
fn every_definition_matches_the_schema_and_is_named_after_its_file() {
    let path =
        Path::new(env!("CARGO_MANIFEST_DIR")).join("schemas/connector-definition.schema.json");
    let schema: Value =
        serde_json::from_str(&std::fs::read_to_string(path).expect("schema")).expect("json");
    let validator = jsonschema::options()
        .build(&schema)
        .expect("schema compiles");
    for (name, text) in FILES {
        let v: Value = serde_json::from_str(text).unwrap_or_else(|e| panic!("{name}: {e}"));
        let errors: Vec<String> = validator
            .iter_errors(&v)
            .map(|e| format!("{e} at {}", e.instance_path))
            .collect();
        assert!(errors.is_empty(), "{name}: {errors:?}");
        assert_eq!(definition(name).map(|d| d.id.as_str()), Some(*name));
    }
    assert_eq!(definitions().len(), FILES.len(), "a file does not parse");
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("src/connectors/definitions");
    let on_disk = std::fs::read_dir(dir).expect("dir").count();
    assert_eq!(on_disk, FILES.len(), "a data file is not compiled in");
    assert!(FILES.len() >= 40, "{} definitions", FILES.len());
}

#[test]
fn every_definition_names_a_driver_and_has_the_fields_it_reads() {
    for d in definitions() {
        let (_, reads) = DRIVERS
            .iter()
            .find(|(name, _)| *name == d.driver)
            .unwrap_or_else(|| panic!("{}: no driver {}", d.id, d.driver));
        let names: BTreeSet<&str> = d.fields.iter().map(|f| f.name.as_str()).collect();
        assert_eq!(names.len(), d.fields.len(), "{}: a field twice", d.id);
        let reads: BTreeSet<&str> = reads.iter().copied().collect();
        assert_eq!(names, reads, "{}: fields and what {} reads", d.id, d.driver);
        for u in &d.test.uses {
            assert!(names.contains(u.as_str()), "{}: test uses {u}", d.id);
        }
        for f in &d.fields {
            assert!(
                !f.secret || f.part == Part::Credentials,
                "{}.{}",
                d.id,
                f.name
            );
            if let Some(default) = &f.default {
                check_value(f, default).unwrap_or_else(|e| panic!("{}.{}: {e}", d.id, f.name));
            }
        }
    }
}

fn postgres() -> &'static Definition {
    definition("postgres").expect("postgres")
}

#[test]
fn defaults_fill_in_and_unknown_or_mistyped_fields_are_named() {
    let got = check(
        postgres(),
        Part::Config,
        &json!({ "host": "db.example.com", "database": "app" }),
    )
    .expect("valid");
    assert_eq!(got["port"], json!(5432));
    assert_eq!(got["ssl_mode"], json!("require"));
    assert!(!got.contains_key("ca_certificate"));

    let refused = |v: Value, part| check(postgres(), part, &v).expect_err("refused");
    let r = refused(
        json!({ "host": "h", "database": "d", "port": 70000 }),
        Part::Config,
    );
    assert_eq!(r.field, "port");
    let r = refused(
        json!({ "host": "h", "database": "d", "ssl_mode": "sometimes" }),
        Part::Config,
    );
    assert_eq!(r.field, "ssl_mode");
    assert!(r.reason.contains("verify-full"), "{}", r.reason);
    let r = refused(json!({ "database": "d" }), Part::Config);
    assert_eq!((r.field, r.reason.as_str()), ("host", "required"));
    let r = refused(
        json!({ "host": "h", "database": "d", "password": "x" }),
        Part::Config,
    );
    assert_eq!(r.field, "settings");
    assert!(
        r.reason.contains("unknown field `password`"),
        "{}",
        r.reason
    );
    // A credential of the wrong type is named, its value never quoted.
    let r = refused(
        json!({ "user": "u", "password": 98765432 }),
        Part::Credentials,
    );
    assert_eq!(r.field, "password");
    assert!(!r.reason.contains("98765432"), "{}", r.reason);
    let r = refused(json!("u:p"), Part::Credentials);
    assert_eq!(r.field, "credentials");
}
