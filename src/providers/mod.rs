//! The built-in provider catalog: endpoints and scope lists that pre-fill an auth config
//! (`"provider": "google"`). Data files live in `src/providers/catalog/`, one per provider,
//! validated against `schemas/provider-catalog.schema.json` by the test suite; any other
//! provider is configured with explicit URLs (`"provider": "custom"`).

use std::collections::BTreeMap;
use std::sync::OnceLock;

use serde::Deserialize;

#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum ClientAuthMethod {
    ClientSecretPost,
    ClientSecretBasic,
}

#[derive(Debug, Clone, Deserialize)]
pub struct ScopeInfo {
    pub scope: String,
    pub description: String,
}

#[derive(Debug, Clone, Deserialize)]
pub struct OAuth2Endpoints {
    pub authorization_url: String,
    pub token_url: String,
    pub revocation_url: Option<String>,
    pub client_auth_method: ClientAuthMethod,
    pub pkce: bool,
    /// How the provider joins scopes in the authorize request (`" "` per RFC 6749; Slack `","`).
    pub scope_separator: String,
    pub extra_authorize_params: BTreeMap<String, String>,
    pub scopes: Vec<ScopeInfo>,
    pub default_scopes: Vec<String>,
}

#[derive(Debug, Clone, Deserialize)]
pub struct Provider {
    pub id: String,
    pub name: String,
    pub docs_url: String,
    pub auth_type: String,
    pub oauth2: OAuth2Endpoints,
}

/// The raw data files, by name (also read by the schema test).
pub const FILES: &[(&str, &str)] = &[
    ("atlassian", include_str!("catalog/atlassian.json")),
    ("github", include_str!("catalog/github.json")),
    ("google", include_str!("catalog/google.json")),
    ("hubspot", include_str!("catalog/hubspot.json")),
    ("microsoft", include_str!("catalog/microsoft.json")),
    ("notion", include_str!("catalog/notion.json")),
    ("salesforce", include_str!("catalog/salesforce.json")),
    ("slack", include_str!("catalog/slack.json")),
];

/// Every provider in the catalog. Files that do not parse are left out (the test suite
/// fails on them, so a release never ships one).
pub fn providers() -> &'static [Provider] {
    static CATALOG: OnceLock<Vec<Provider>> = OnceLock::new();
    CATALOG.get_or_init(|| {
        FILES
            .iter()
            .filter_map(|(name, text)| match serde_json::from_str::<Provider>(text) {
                Ok(p) => Some(p),
                Err(e) => {
                    tracing::error!(provider = name, error = %e, "catalog entry does not parse");
                    None
                }
            })
            .collect()
    })
}

pub fn provider(id: &str) -> Option<&'static Provider> {
    providers().iter().find(|p| p.id == id)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_file_parses_and_is_named_after_its_id() {
        assert_eq!(providers().len(), FILES.len());
        for (name, _) in FILES {
            assert_eq!(provider(name).map(|p| p.id.as_str()), Some(*name));
        }
    }

    #[test]
    fn default_scopes_are_listed_scopes() {
        for p in providers() {
            for s in &p.oauth2.default_scopes {
                assert!(
                    p.oauth2.scopes.iter().any(|i| &i.scope == s),
                    "{}: {s}",
                    p.id
                );
            }
        }
    }
}
