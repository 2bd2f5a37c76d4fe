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

/// What the provider does with refresh tokens, from its documentation.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum RefreshTokens {
    /// A refresh may answer a new refresh token that replaces the stored one (the old one
    /// may stop working at once or after a grace period): always keep the latest.
    Rotating,
    /// The refresh token stays valid across refreshes and is not replaced.
    Reused,
    /// No refresh tokens: access tokens last until revoked (or the user reconnects).
    NotIssued,
    /// The documentation does not say, or it depends on the provider app's settings.
    Unknown,
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
    pub refresh_tokens: RefreshTokens,
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
    ("airtable", include_str!("catalog/airtable.json")),
    ("asana", include_str!("catalog/asana.json")),
    ("atlassian", include_str!("catalog/atlassian.json")),
    ("bitbucket", include_str!("catalog/bitbucket.json")),
    ("box", include_str!("catalog/box.json")),
    ("calendly", include_str!("catalog/calendly.json")),
    ("clickup", include_str!("catalog/clickup.json")),
    ("discord", include_str!("catalog/discord.json")),
    ("docusign", include_str!("catalog/docusign.json")),
    ("dropbox", include_str!("catalog/dropbox.json")),
    ("facebook", include_str!("catalog/facebook.json")),
    ("figma", include_str!("catalog/figma.json")),
    ("github", include_str!("catalog/github.json")),
    ("gitlab", include_str!("catalog/gitlab.json")),
    ("google", include_str!("catalog/google.json")),
    ("hubspot", include_str!("catalog/hubspot.json")),
    ("intercom", include_str!("catalog/intercom.json")),
    ("linear", include_str!("catalog/linear.json")),
    ("linkedin", include_str!("catalog/linkedin.json")),
    ("mailchimp", include_str!("catalog/mailchimp.json")),
    ("microsoft", include_str!("catalog/microsoft.json")),
    ("miro", include_str!("catalog/miro.json")),
    ("monday", include_str!("catalog/monday.json")),
    ("notion", include_str!("catalog/notion.json")),
    ("pipedrive", include_str!("catalog/pipedrive.json")),
    ("quickbooks", include_str!("catalog/quickbooks.json")),
    ("salesforce", include_str!("catalog/salesforce.json")),
    ("slack", include_str!("catalog/slack.json")),
    ("spotify", include_str!("catalog/spotify.json")),
    ("stripe", include_str!("catalog/stripe.json")),
    ("twitter", include_str!("catalog/twitter.json")),
    ("webflow", include_str!("catalog/webflow.json")),
    ("xero", include_str!("catalog/xero.json")),
    ("zoom", include_str!("catalog/zoom.json")),
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
