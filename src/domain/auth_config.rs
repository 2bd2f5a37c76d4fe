//! Auth Config: the blueprint end users' connections are made from (provider, auth type,
//! scopes, client credentials). Versioned: every change is an event and bumps `version`.
//! Secrets arrive already sealed (`SealedSecret`): the domain never sees plaintext.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

use super::{check_name, Aggregate, DomainError, Event};

/// A secret as events carry it: ciphertext under a per-resource data key, plus an HMAC
/// fingerprint so auditors can correlate without seeing it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct SealedSecret {
    pub data_key_id: String,
    pub nonce: String,
    pub ciphertext: String,
    /// `hmac-sha256:<hex>`
    pub fingerprint: String,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum ClientAuthMethod {
    ClientSecretPost,
    ClientSecretBasic,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct OAuth2Settings {
    pub authorization_url: String,
    pub token_url: String,
    pub revocation_url: Option<String>,
    pub client_id: String,
    pub client_secret: SealedSecret,
    pub scopes: Vec<String>,
    pub client_auth_method: ClientAuthMethod,
    pub pkce: bool,
    pub scope_separator: String,
    pub extra_authorize_params: BTreeMap<String, String>,
    /// Where a finished connect flow may send the end user back to (exact match).
    pub redirect_urls: Vec<String>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum KeyLocation {
    Header,
    Query,
    Cookie,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ApiKeySettings {
    pub key_name: String,
    pub location: KeyLocation,
    pub prefix: Option<String>,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct PostgresSettings {
    pub host: String,
    pub port: u16,
    pub database: String,
    pub ssl_mode: String,
}

/// A native connector's auth config: the connector definition's id (`src/connectors`) and
/// the values of its `config` fields, checked against the definition by the command (the
/// domain knows no definitions). Credentials are each connection's, sealed.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ConnectorSettings {
    pub connector: String,
    pub settings: BTreeMap<String, serde_json::Value>,
    /// Dynamic database credentials for agents (PostgreSQL and MySQL drivers); absent from
    /// the signed form when off.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub dynamic_credentials: Option<super::dynamic_credential::DynamicCredentialsPolicy>,
}

/// Settings by auth type; the tag is the auth type's name. (Built once per command and
/// event, so the size difference between variants does not matter.)
#[allow(clippy::large_enum_variant)]
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "auth_type", rename_all = "snake_case")]
pub enum AuthSettings {
    Oauth2(OAuth2Settings),
    ApiKey(ApiKeySettings),
    BearerToken,
    Basic,
    NoAuth,
    Postgres(PostgresSettings),
    Connector(ConnectorSettings),
}

impl AuthSettings {
    pub fn auth_type(&self) -> &'static str {
        match self {
            AuthSettings::Oauth2(_) => "oauth2",
            AuthSettings::ApiKey(_) => "api_key",
            AuthSettings::BearerToken => "bearer_token",
            AuthSettings::Basic => "basic",
            AuthSettings::NoAuth => "no_auth",
            AuthSettings::Postgres(_) => "postgres",
            AuthSettings::Connector(_) => "connector",
        }
    }
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct AuthConfigCreated {
    pub name: String,
    /// A catalog provider id, or `custom`.
    pub provider: String,
    pub settings: AuthSettings,
    /// Whether agents may obtain the upstream access token itself (token release); off
    /// unless the organisation opts in. Absent from the signed form when off.
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub token_release: bool,
    /// Whether the workspace offers it to its end users (listed on their My connections).
    /// Offered unless the organisation says otherwise; present in the signed form only
    /// when not offered.
    #[serde(default = "offered", skip_serializing_if = "is_offered")]
    pub offered: bool,
}

fn offered() -> bool {
    true
}

fn is_offered(offered: &bool) -> bool {
    *offered
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct AuthConfigUpdated {
    pub version: u64,
    /// Names of the fields that changed (a secret appears as changed, its value only sealed).
    pub changed: Vec<String>,
    pub name: String,
    pub settings: AuthSettings,
    /// Scopes removed by this change: dependent connections need the user's consent again.
    pub removed_scopes: Vec<String>,
    /// Token release after this change (absent from the signed form when off).
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub token_release: bool,
    /// Offered to end users after this change (present in the signed form only when not).
    #[serde(default = "offered", skip_serializing_if = "is_offered")]
    pub offered: bool,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct AuthConfigStatusChanged {
    pub version: u64,
    pub reason: Option<String>,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ClientSecretRotated {
    pub version: u64,
    pub client_secret: SealedSecret,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct AuthConfigDeleted {
    pub version: u64,
    /// Connections revoked first because the caller asked for `cascade=revoke`.
    pub revoked_connections: u64,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum Lifecycle {
    #[default]
    Absent,
    Enabled,
    Disabled,
    Deleted,
}

#[derive(Debug, Default, Clone)]
pub struct AuthConfig {
    pub lifecycle: Lifecycle,
    pub version: u64,
    pub name: String,
    pub provider: String,
    pub settings: Option<AuthSettings>,
    pub token_release: bool,
    pub offered: bool,
}

pub enum AuthConfigCommand {
    Create(AuthConfigCreated),
    Update {
        name: String,
        settings: AuthSettings,
        token_release: bool,
        offered: bool,
    },
    RotateClientSecret(SealedSecret),
    Disable {
        reason: Option<String>,
    },
    Enable,
    /// `dependants` are the live connections (counted by the caller); without `cascade`
    /// deletion is refused while there are any.
    Delete {
        dependants: u64,
        cascade: bool,
    },
}

/// Checks an endpoint URL: https, or plain http on the loopback interface, no user info
/// (whether loopback is allowed at all is the deployment's destination policy, applied
/// before the command).
pub use super::workspace::check_endpoint_url;

fn check_settings(s: &AuthSettings) -> Result<(), DomainError> {
    match s {
        AuthSettings::Oauth2(o) => {
            check_endpoint_url("authorization_url", &o.authorization_url)?;
            check_endpoint_url("token_url", &o.token_url)?;
            if let Some(r) = &o.revocation_url {
                check_endpoint_url("revocation_url", r)?;
            }
            check_name("client_id", &o.client_id, 512)?;
            if o.redirect_urls.is_empty() {
                return Err(DomainError::Invalid {
                    field: "redirect_urls",
                    reason: "at least one is required".into(),
                });
            }
            for u in &o.redirect_urls {
                check_endpoint_url("redirect_urls", u)?;
            }
            if o.scopes
                .iter()
                .any(|s| s.is_empty() || s.chars().any(|c| c.is_whitespace() || c.is_control()))
            {
                return Err(DomainError::Invalid {
                    field: "scopes",
                    reason: "scopes are non-empty and without spaces".into(),
                });
            }
            let reserved = [
                "client_id",
                "redirect_uri",
                "state",
                "scope",
                "response_type",
                "code_challenge",
                "code_challenge_method",
            ];
            if let Some(k) = o
                .extra_authorize_params
                .keys()
                .find(|k| reserved.contains(&k.as_str()))
            {
                return Err(DomainError::Invalid {
                    field: "extra_authorize_params",
                    reason: format!("{k} is set by the ledger"),
                });
            }
            Ok(())
        }
        AuthSettings::ApiKey(k) => check_name("key_name", &k.key_name, 200),
        AuthSettings::Postgres(p) => {
            check_name("host", &p.host, 255)?;
            // A name or an address: never a unix-socket directory.
            if p.host.contains(['/', '\\']) {
                return Err(DomainError::Invalid {
                    field: "host",
                    reason: "a host name or an address, not a socket path".into(),
                });
            }
            check_name("database", &p.database, 63)?;
            if !["disable", "prefer", "require", "verify-ca", "verify-full"]
                .contains(&p.ssl_mode.as_str())
            {
                return Err(DomainError::Invalid {
                    field: "ssl_mode",
                    reason: "disable|prefer|require|verify-ca|verify-full".into(),
                });
            }
            Ok(())
        }
        AuthSettings::Connector(c) => {
            check_name("connector", &c.connector, 64)?;
            if c.settings.len() > 64 || c.settings.keys().any(|k| k.is_empty() || k.len() > 64) {
                return Err(DomainError::Invalid {
                    field: "settings",
                    reason: "at most 64 fields, each named in 1-64 characters".into(),
                });
            }
            if let Some(p) = &c.dynamic_credentials {
                p.check()?;
            }
            Ok(())
        }
        AuthSettings::BearerToken | AuthSettings::Basic | AuthSettings::NoAuth => Ok(()),
    }
}

/// Field names that differ between two settings (for `changed`), and scopes removed.
pub fn diff(
    old_name: &str,
    old: &AuthSettings,
    new_name: &str,
    new: &AuthSettings,
) -> (Vec<String>, Vec<String>) {
    let mut changed = Vec::new();
    if old_name != new_name {
        changed.push("name".to_string());
    }
    let mut removed = Vec::new();
    match (old, new) {
        (AuthSettings::Oauth2(a), AuthSettings::Oauth2(b)) => {
            let fields: [(&str, bool); 10] = [
                (
                    "authorization_url",
                    a.authorization_url != b.authorization_url,
                ),
                ("token_url", a.token_url != b.token_url),
                ("revocation_url", a.revocation_url != b.revocation_url),
                ("client_id", a.client_id != b.client_id),
                (
                    "client_secret",
                    a.client_secret.fingerprint != b.client_secret.fingerprint,
                ),
                ("scopes", a.scopes != b.scopes),
                (
                    "client_auth_method",
                    a.client_auth_method != b.client_auth_method,
                ),
                ("pkce", a.pkce != b.pkce),
                (
                    "extra_authorize_params",
                    a.extra_authorize_params != b.extra_authorize_params,
                ),
                ("redirect_urls", a.redirect_urls != b.redirect_urls),
            ];
            changed.extend(
                fields
                    .iter()
                    .filter(|(_, c)| *c)
                    .map(|(f, _)| f.to_string()),
            );
            removed = a
                .scopes
                .iter()
                .filter(|s| !b.scopes.contains(s))
                .cloned()
                .collect();
        }
        (a, b) if a != b => changed.push("settings".to_string()),
        _ => {}
    }
    (changed, removed)
}

impl Aggregate for AuthConfig {
    const TYPE: &'static str = "auth_config";
    type Command = AuthConfigCommand;

    fn apply(&mut self, event: &Event) {
        match event {
            Event::AuthConfigCreated(e) => {
                self.lifecycle = Lifecycle::Enabled;
                self.version = 1;
                self.name = e.name.clone();
                self.provider = e.provider.clone();
                self.settings = Some(e.settings.clone());
                self.token_release = e.token_release;
                self.offered = e.offered;
            }
            Event::AuthConfigUpdated(e) => {
                self.version = e.version;
                self.name = e.name.clone();
                self.settings = Some(e.settings.clone());
                self.token_release = e.token_release;
                self.offered = e.offered;
            }
            Event::ClientSecretRotated(e) => {
                self.version = e.version;
                if let Some(AuthSettings::Oauth2(o)) = self.settings.as_mut() {
                    o.client_secret = e.client_secret.clone();
                }
            }
            Event::AuthConfigDisabled(e) => {
                self.version = e.version;
                self.lifecycle = Lifecycle::Disabled;
            }
            Event::AuthConfigEnabled(e) => {
                self.version = e.version;
                self.lifecycle = Lifecycle::Enabled;
            }
            Event::AuthConfigDeleted(e) => {
                self.version = e.version;
                self.lifecycle = Lifecycle::Deleted;
            }
            _ => {}
        }
    }

    fn decide(&self, command: &AuthConfigCommand) -> Result<Event, DomainError> {
        use AuthConfigCommand::*;
        let live = || match self.lifecycle {
            Lifecycle::Absent | Lifecycle::Deleted => Err(DomainError::NotFound("auth config")),
            _ => Ok(()),
        };
        let next = self.version + 1;
        match command {
            Create(c) => {
                if self.lifecycle != Lifecycle::Absent {
                    return Err(DomainError::AlreadyExists("auth config"));
                }
                check_name("name", &c.name, 200)?;
                check_name("provider", &c.provider, 64)?;
                check_settings(&c.settings)?;
                Ok(Event::AuthConfigCreated(c.clone()))
            }
            Update {
                name,
                settings,
                token_release,
                offered,
            } => {
                live()?;
                check_name("name", name, 200)?;
                check_settings(settings)?;
                let old = self
                    .settings
                    .as_ref()
                    .ok_or(DomainError::NotFound("auth config"))?;
                if old.auth_type() != settings.auth_type() {
                    return Err(DomainError::Invalid {
                        field: "auth_type",
                        reason: "cannot change; create a new auth config".into(),
                    });
                }
                let (mut changed, removed_scopes) = diff(&self.name, old, name, settings);
                if self.token_release != *token_release {
                    changed.push("token_release".into());
                }
                if self.offered != *offered {
                    changed.push("offered".into());
                }
                if changed.is_empty() {
                    return Err(DomainError::Rejected("nothing changed".into()));
                }
                Ok(Event::AuthConfigUpdated(AuthConfigUpdated {
                    version: next,
                    changed,
                    name: name.clone(),
                    settings: settings.clone(),
                    removed_scopes,
                    token_release: *token_release,
                    offered: *offered,
                }))
            }
            RotateClientSecret(secret) => {
                live()?;
                match &self.settings {
                    Some(AuthSettings::Oauth2(_)) => {
                        Ok(Event::ClientSecretRotated(ClientSecretRotated {
                            version: next,
                            client_secret: secret.clone(),
                        }))
                    }
                    _ => Err(DomainError::Rejected(
                        "only oauth2 auth configs have a client secret".into(),
                    )),
                }
            }
            Disable { reason } => {
                live()?;
                if self.lifecycle == Lifecycle::Disabled {
                    return Err(DomainError::Rejected("already disabled".into()));
                }
                Ok(Event::AuthConfigDisabled(AuthConfigStatusChanged {
                    version: next,
                    reason: reason.clone(),
                }))
            }
            Enable => {
                live()?;
                if self.lifecycle == Lifecycle::Enabled {
                    return Err(DomainError::Rejected("already enabled".into()));
                }
                Ok(Event::AuthConfigEnabled(AuthConfigStatusChanged {
                    version: next,
                    reason: None,
                }))
            }
            Delete {
                dependants,
                cascade,
            } => {
                live()?;
                if *dependants > 0 && !cascade {
                    return Err(DomainError::Rejected(format!(
                        "{dependants} connections depend on this auth config; revoke them or delete with cascade=revoke"
                    )));
                }
                Ok(Event::AuthConfigDeleted(AuthConfigDeleted {
                    version: next,
                    revoked_connections: if *cascade { *dependants } else { 0 },
                }))
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn sealed(fp: &str) -> SealedSecret {
        SealedSecret {
            data_key_id: "dk1".into(),
            nonce: "n".into(),
            ciphertext: "c".into(),
            fingerprint: fp.into(),
        }
    }

    fn oauth(scopes: &[&str]) -> AuthSettings {
        AuthSettings::Oauth2(OAuth2Settings {
            authorization_url: "https://accounts.google.com/o/oauth2/v2/auth".into(),
            token_url: "https://oauth2.googleapis.com/token".into(),
            revocation_url: None,
            client_id: "client".into(),
            client_secret: sealed("hmac-sha256:aa"),
            scopes: scopes.iter().map(|s| s.to_string()).collect(),
            client_auth_method: ClientAuthMethod::ClientSecretPost,
            pkce: true,
            scope_separator: " ".into(),
            extra_authorize_params: BTreeMap::new(),
            redirect_urls: vec!["https://app.example.com/connected".into()],
        })
    }

    /// Given `events`, when `command`, then the result.
    fn check(given: &[Event], when: AuthConfigCommand) -> Result<Event, DomainError> {
        let mut state = AuthConfig::default();
        for e in given {
            state.apply(e);
        }
        state.decide(&when)
    }

    fn created(scopes: &[&str]) -> Event {
        Event::AuthConfigCreated(AuthConfigCreated {
            name: "Gmail".into(),
            provider: "google".into(),
            settings: oauth(scopes),
            token_release: false,
            offered: true,
        })
    }

    #[test]
    fn create_validates_and_only_once() {
        let c = AuthConfigCreated {
            name: "Gmail".into(),
            provider: "google".into(),
            settings: oauth(&["a"]),
            token_release: false,
            offered: true,
        };
        assert_eq!(
            check(&[], AuthConfigCommand::Create(c.clone())),
            Ok(created(&["a"]))
        );
        assert_eq!(
            check(&[created(&["a"])], AuthConfigCommand::Create(c)),
            Err(DomainError::AlreadyExists("auth config"))
        );
        let mut bad = oauth(&["a"]);
        if let AuthSettings::Oauth2(o) = &mut bad {
            o.token_url = "http://evil.example.com/token".into();
        }
        let c = AuthConfigCreated {
            name: "x".into(),
            provider: "custom".into(),
            settings: bad,
            token_release: false,
            offered: true,
        };
        assert!(matches!(
            check(&[], AuthConfigCommand::Create(c)),
            Err(DomainError::Invalid {
                field: "token_url",
                ..
            })
        ));
    }

    #[test]
    fn narrowing_scopes_lists_what_was_removed_and_secrets_show_only_as_changed() {
        let mut new = oauth(&["a"]);
        if let AuthSettings::Oauth2(o) = &mut new {
            o.client_secret = sealed("hmac-sha256:bb");
        }
        let ev = check(
            &[created(&["a", "b"])],
            AuthConfigCommand::Update {
                name: "Gmail".into(),
                settings: new,
                token_release: false,
                offered: true,
            },
        );
        match ev {
            Ok(Event::AuthConfigUpdated(u)) => {
                assert_eq!(u.version, 2);
                assert_eq!(u.changed, ["client_secret", "scopes"]);
                assert_eq!(u.removed_scopes, ["b"]);
            }
            other => panic!("{other:?}"),
        }
        let same = check(
            &[created(&["a"])],
            AuthConfigCommand::Update {
                name: "Gmail".into(),
                settings: oauth(&["a"]),
                token_release: false,
                offered: true,
            },
        );
        assert_eq!(same, Err(DomainError::Rejected("nothing changed".into())));
    }

    #[test]
    fn delete_is_refused_while_connections_depend_unless_cascading() {
        let given = [created(&["a"])];
        assert!(matches!(
            check(
                &given,
                AuthConfigCommand::Delete {
                    dependants: 2,
                    cascade: false
                }
            ),
            Err(DomainError::Rejected(_))
        ));
        assert_eq!(
            check(
                &given,
                AuthConfigCommand::Delete {
                    dependants: 2,
                    cascade: true
                }
            ),
            Ok(Event::AuthConfigDeleted(AuthConfigDeleted {
                version: 2,
                revoked_connections: 2
            }))
        );
        let deleted = [
            created(&["a"]),
            Event::AuthConfigDeleted(AuthConfigDeleted {
                version: 2,
                revoked_connections: 0,
            }),
        ];
        assert_eq!(
            check(&deleted, AuthConfigCommand::Enable),
            Err(DomainError::NotFound("auth config"))
        );
    }

    #[test]
    fn disable_enable_toggle_and_versions_count() {
        let d = Event::AuthConfigDisabled(AuthConfigStatusChanged {
            version: 2,
            reason: Some("incident".into()),
        });
        assert_eq!(
            check(
                &[created(&["a"])],
                AuthConfigCommand::Disable {
                    reason: Some("incident".into())
                }
            ),
            Ok(d.clone())
        );
        assert!(check(
            &[created(&["a"]), d.clone()],
            AuthConfigCommand::Disable { reason: None }
        )
        .is_err());
        assert_eq!(
            check(&[created(&["a"]), d], AuthConfigCommand::Enable),
            Ok(Event::AuthConfigEnabled(AuthConfigStatusChanged {
                version: 3,
                reason: None
            }))
        );
    }

    #[test]
    fn reserved_authorize_parameters_cannot_be_overridden() {
        let mut s = oauth(&["a"]);
        if let AuthSettings::Oauth2(o) = &mut s {
            o.extra_authorize_params
                .insert("redirect_uri".into(), "https://evil.example.com".into());
        }
        let c = AuthConfigCreated {
            name: "x".into(),
            provider: "custom".into(),
            settings: s,
            token_release: false,
            offered: true,
        };
        assert!(matches!(
            check(&[], AuthConfigCommand::Create(c)),
            Err(DomainError::Invalid {
                field: "extra_authorize_params",
                ..
            })
        ));
    }
}
