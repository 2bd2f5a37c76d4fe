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
        // the auth config documentation names Facebook
        "facebook",
        "zoom",
        "dropbox",
        "box",
        "asana",
        "linear",
        "gitlab",
        "bitbucket",
        "intercom",
        "linkedin",
        "discord",
        "figma",
        "airtable",
        "pipedrive",
        "xero",
        "quickbooks",
        "docusign",
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

/// An endpoint as the catalog may hold it: an absolute https URL with a real host (no
/// `{tenant}` placeholder: the auth config would use it as it stands).
fn check_endpoint(id: &str, field: &str, value: &str) {
    let url = url::Url::parse(value).unwrap_or_else(|e| panic!("{id}.{field}: {e}"));
    assert_eq!(url.scheme(), "https", "{id}.{field}: {value}");
    let host = url.host_str().unwrap_or_default();
    assert!(
        host.contains('.') && !value.contains('{') && !value.contains('}'),
        "{id}.{field}: no real host in {value}"
    );
    assert!(
        url.username().is_empty() && url.password().is_none() && url.fragment().is_none(),
        "{id}.{field}: {value}"
    );
}

#[test]
fn every_catalog_entry_is_sound() {
    use authledger::providers::{providers, FILES};
    assert!(
        providers().len() >= 30,
        "the catalog has {} providers",
        providers().len()
    );
    assert_eq!(providers().len(), FILES.len(), "an entry does not parse");
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("src/providers/catalog");
    for entry in std::fs::read_dir(dir).expect("dir") {
        let file = entry.expect("entry").file_name();
        let file = file.to_string_lossy();
        let stem = file
            .strip_suffix(".json")
            .unwrap_or_else(|| panic!("{file}"));
        assert!(
            FILES.iter().any(|(name, _)| *name == stem),
            "{file} is not listed in FILES"
        );
    }
    let mut ids = std::collections::BTreeSet::new();
    for (name, p) in FILES.iter().map(|(n, _)| n).zip(providers()) {
        assert_eq!(*name, p.id, "the file is named after its id");
        assert!(ids.insert(p.id.as_str()), "{}: duplicate id", p.id);
        assert!(!p.name.trim().is_empty(), "{}: no name", p.id);
        check_endpoint(&p.id, "docs_url", &p.docs_url);
        let o = &p.oauth2;
        check_endpoint(&p.id, "authorization_url", &o.authorization_url);
        check_endpoint(&p.id, "token_url", &o.token_url);
        if let Some(r) = &o.revocation_url {
            check_endpoint(&p.id, "revocation_url", r);
        }
        assert!(
            o.scope_separator == " " || o.scope_separator == ",",
            "{}: separator {:?}",
            p.id,
            o.scope_separator
        );
        let mut scopes = std::collections::BTreeSet::new();
        for s in &o.scopes {
            assert!(
                scopes.insert(s.scope.as_str()),
                "{}: scope {} listed twice",
                p.id,
                s.scope
            );
            assert!(
                !s.scope.contains(' ') && !s.scope.contains(o.scope_separator.as_str()),
                "{}: scope {:?} holds a separator",
                p.id,
                s.scope
            );
            assert!(
                !s.description.trim().is_empty(),
                "{}: scope {} is not described",
                p.id,
                s.scope
            );
        }
        for d in &o.default_scopes {
            assert!(
                scopes.contains(d.as_str()),
                "{}: default scope {d} is not among the scopes",
                p.id
            );
        }
    }
}

#[test]
fn the_catalog_says_how_each_provider_treats_refresh_tokens() {
    use authledger::providers::{provider, RefreshTokens};
    for (id, expected) in [
        ("google", RefreshTokens::Reused),
        ("atlassian", RefreshTokens::Rotating),
        ("xero", RefreshTokens::Rotating),
        ("airtable", RefreshTokens::Rotating),
        ("github", RefreshTokens::NotIssued),
        ("slack", RefreshTokens::Unknown),
    ] {
        assert_eq!(
            provider(id).map(|p| p.oauth2.refresh_tokens),
            Some(expected),
            "{id}"
        );
    }
    // Comma-separated scopes are the exception, and the entries say so.
    for id in ["slack", "linear", "facebook"] {
        assert_eq!(
            provider(id).map(|p| p.oauth2.scope_separator.as_str()),
            Some(","),
            "{id}"
        );
    }
}
