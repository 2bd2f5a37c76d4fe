//! Workspace: one customer's isolated space.

use serde::{Deserialize, Serialize};

use super::auth_config::SealedSecret;
use super::{check_name, Aggregate, DomainError, Event};

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct WorkspaceCreated {
    pub name: String,
}

/// The organisation's identity provider, whose JWTs identify end users of this workspace.
/// With a client id and a (sealed) client secret, end users also sign in to their own pages
/// (`/me/`) through it in the browser (OpenID Connect code flow + PKCE); events written
/// before browser sign-in existed carry neither.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct IdentityProviderConfigured {
    pub issuer: String,
    pub audience: String,
    pub jwks_url: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub client_id: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub client_secret: Option<SealedSecret>,
}

impl IdentityProviderConfigured {
    /// Client id and sealed secret, when end users may sign in in the browser.
    pub fn browser_client(&self) -> Option<(&str, &SealedSecret)> {
        Some((self.client_id.as_deref()?, self.client_secret.as_ref()?))
    }
}

/// Whether the gateway keeps (redacted) upstream response bodies in `tool.completed`.
/// Off unless the workspace opts in.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ToolResponseStorageSet {
    pub store_tool_responses: bool,
}

/// Whether every team member must sign in to the console with a second factor (members
/// without one set it up at their next sign-in).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct SecondFactorRequirementSet {
    pub required: bool,
}

/// Whether agent keys may start connect flows (connect on demand) for any user of the
/// workspace. Off unless the workspace opts in: an agent otherwise starts one only through a
/// scoped token of that user.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct AgentConnectFlowsSet {
    pub any_user: bool,
}

/// Team SSO: console members sign in with the organisation's own OpenID Connect provider
/// (authorization code + PKCE). The client secret only sealed; `enabled: false` keeps the
/// settings but turns SSO sign-in off.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct TeamSsoConfigured {
    /// The provider's issuer identifier (its discovery document must name the same).
    pub issuer: String,
    pub client_id: String,
    pub client_secret: SealedSecret,
    pub enabled: bool,
}

#[derive(Debug, Default, Clone)]
pub struct Workspace {
    pub name: Option<String>,
    pub identity_provider: Option<IdentityProviderConfigured>,
    pub store_tool_responses: bool,
    pub second_factor_required: bool,
    /// `workspace.agent_connect_flows_set`: agent keys start connect flows for any user.
    pub agents_connect_any_user: bool,
    pub team_sso: Option<TeamSsoConfigured>,
}

impl Workspace {
    /// The team SSO settings while SSO sign-in is on.
    pub fn team_sso_enabled(&self) -> Option<&TeamSsoConfigured> {
        self.team_sso.as_ref().filter(|s| s.enabled)
    }
}

pub enum WorkspaceCommand {
    Create { name: String },
    ConfigureIdentityProvider(IdentityProviderConfigured),
    SetToolResponseStorage(bool),
    SetSecondFactorRequirement(bool),
    SetAgentConnectFlows(bool),
    ConfigureTeamSso(TeamSsoConfigured),
}

impl WorkspaceCommand {
    /// Whether this setting is already in force on `ws`: a repeated `PUT` is answered
    /// without an event (the decision itself still refuses a change that changes nothing).
    pub fn already_in_force(&self, ws: &Workspace) -> bool {
        if ws.name.is_none() {
            return false;
        }
        match self {
            WorkspaceCommand::SetToolResponseStorage(on) => ws.store_tool_responses == *on,
            WorkspaceCommand::SetSecondFactorRequirement(on) => ws.second_factor_required == *on,
            WorkspaceCommand::SetAgentConnectFlows(on) => ws.agents_connect_any_user == *on,
            WorkspaceCommand::Create { .. }
            | WorkspaceCommand::ConfigureIdentityProvider(_)
            | WorkspaceCommand::ConfigureTeamSso(_) => false,
        }
    }
}

/// JWKS must be fetched over TLS, except from this machine (development and tests).
pub fn check_jwks_url(url: &str) -> Result<(), DomainError> {
    check_endpoint_url("jwks_url", url)
}

/// An endpoint URL as an event may carry it, read by a real URL parser (so `HTTP://`,
/// `http:host` and `http:\\host` are plain http): at most 2048 bytes, no whitespace or
/// control characters, no user info (`http://127.0.0.1:1@evil/` names `evil`), a host,
/// and https, or plain http to a loopback host. Whether the deployment allows loopback at
/// all, and what a name resolves to, is the destination policy's decision
/// (`net::destination`), made before the command.
pub fn check_endpoint_url(field: &'static str, url: &str) -> Result<(), DomainError> {
    use url::Host;
    let fits = url.len() <= 2048 && !url.chars().any(|c| c.is_whitespace() || c.is_control());
    let ok = fits
        && url::Url::parse(url).is_ok_and(|u| {
            let loopback = match u.host() {
                Some(Host::Domain(d)) => d == "localhost",
                Some(Host::Ipv4(ip)) => ip.is_loopback(),
                Some(Host::Ipv6(ip)) => ip.is_loopback(),
                None => return false,
            };
            u.username().is_empty()
                && u.password().is_none()
                && (u.scheme() == "https" || (u.scheme() == "http" && loopback))
        });
    if ok {
        Ok(())
    } else {
        Err(DomainError::Invalid {
            field,
            reason: "must be an https:// URL without user info (http:// only on the loopback \
                     interface)"
                .into(),
        })
    }
}

impl Aggregate for Workspace {
    const TYPE: &'static str = "workspace";
    type Command = WorkspaceCommand;

    fn apply(&mut self, event: &Event) {
        match event {
            Event::WorkspaceCreated(e) => self.name = Some(e.name.clone()),
            Event::IdentityProviderConfigured(e) => self.identity_provider = Some(e.clone()),
            Event::ToolResponseStorageSet(e) => self.store_tool_responses = e.store_tool_responses,
            Event::SecondFactorRequirementSet(e) => self.second_factor_required = e.required,
            Event::AgentConnectFlowsSet(e) => self.agents_connect_any_user = e.any_user,
            Event::TeamSsoConfigured(e) => self.team_sso = Some(e.clone()),
            _ => {}
        }
    }

    fn decide(&self, command: &WorkspaceCommand) -> Result<Event, DomainError> {
        match command {
            WorkspaceCommand::Create { name } => {
                if self.name.is_some() {
                    return Err(DomainError::AlreadyExists("workspace"));
                }
                check_name("name", name, 100)?;
                Ok(Event::WorkspaceCreated(WorkspaceCreated {
                    name: name.clone(),
                }))
            }
            WorkspaceCommand::ConfigureIdentityProvider(idp) => {
                if self.name.is_none() {
                    return Err(DomainError::NotFound("workspace"));
                }
                check_name("issuer", &idp.issuer, 512)?;
                check_name("audience", &idp.audience, 512)?;
                check_jwks_url(&idp.jwks_url)?;
                if let Some(client_id) = &idp.client_id {
                    check_name("client_id", client_id, 255)?;
                }
                if idp.client_id.is_some() != idp.client_secret.is_some() {
                    return Err(DomainError::Invalid {
                        field: "client_secret",
                        reason: "a client id and its client secret go together".into(),
                    });
                }
                Ok(Event::IdentityProviderConfigured(idp.clone()))
            }
            WorkspaceCommand::SetToolResponseStorage(store) => {
                if self.name.is_none() {
                    return Err(DomainError::NotFound("workspace"));
                }
                if self.store_tool_responses == *store {
                    return Err(DomainError::Rejected("already set so".into()));
                }
                Ok(Event::ToolResponseStorageSet(ToolResponseStorageSet {
                    store_tool_responses: *store,
                }))
            }
            WorkspaceCommand::SetSecondFactorRequirement(required) => {
                if self.name.is_none() {
                    return Err(DomainError::NotFound("workspace"));
                }
                if self.second_factor_required == *required {
                    return Err(DomainError::Rejected("already set so".into()));
                }
                Ok(Event::SecondFactorRequirementSet(
                    SecondFactorRequirementSet {
                        required: *required,
                    },
                ))
            }
            WorkspaceCommand::SetAgentConnectFlows(any_user) => {
                if self.name.is_none() {
                    return Err(DomainError::NotFound("workspace"));
                }
                if self.agents_connect_any_user == *any_user {
                    return Err(DomainError::Rejected("already set so".into()));
                }
                Ok(Event::AgentConnectFlowsSet(AgentConnectFlowsSet {
                    any_user: *any_user,
                }))
            }
            WorkspaceCommand::ConfigureTeamSso(sso) => decide_team_sso(self, sso),
        }
    }
}

/// The issuer is an endpoint URL (discovery is fetched from it); the client id a name; a
/// change that changes nothing is refused.
fn decide_team_sso(ws: &Workspace, sso: &TeamSsoConfigured) -> Result<Event, DomainError> {
    if ws.name.is_none() {
        return Err(DomainError::NotFound("workspace"));
    }
    check_endpoint_url("issuer", &sso.issuer)?;
    check_name("client_id", &sso.client_id, 255)?;
    if ws.team_sso.as_ref() == Some(sso) {
        return Err(DomainError::Rejected("already set so".into()));
    }
    Ok(Event::TeamSsoConfigured(sso.clone()))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn sso(issuer: &str, enabled: bool) -> TeamSsoConfigured {
        TeamSsoConfigured {
            issuer: issuer.into(),
            client_id: "console".into(),
            client_secret: SealedSecret {
                data_key_id: "dk_1".into(),
                nonce: "n".into(),
                ciphertext: "c".into(),
                fingerprint: "hmac-sha256:00".into(),
            },
            enabled,
        }
    }

    #[test]
    fn a_browser_client_of_the_end_users_provider_has_its_id_and_secret_together() {
        let mut ws = Workspace::default();
        ws.apply(&Event::WorkspaceCreated(WorkspaceCreated {
            name: "w".into(),
        }));
        let secret = sso("https://idp.example.com", true).client_secret;
        let idp = |client_id: Option<&str>, client_secret: Option<SealedSecret>| {
            WorkspaceCommand::ConfigureIdentityProvider(IdentityProviderConfigured {
                issuer: "https://idp.example.com".into(),
                audience: "end-users".into(),
                jwks_url: "https://idp.example.com/jwks".into(),
                client_id: client_id.map(str::to_string),
                client_secret,
            })
        };
        assert!(
            ws.decide(&idp(Some("me"), None)).is_err(),
            "an id without its secret"
        );
        assert!(
            ws.decide(&idp(None, Some(secret.clone()))).is_err(),
            "a secret alone"
        );
        assert!(ws.decide(&idp(Some(" me"), Some(secret.clone()))).is_err());
        let ev = ws.decide(&idp(Some("me"), Some(secret))).unwrap();
        ws.apply(&ev);
        let configured = ws.identity_provider.as_ref().unwrap();
        assert_eq!(configured.browser_client().map(|(id, _)| id), Some("me"));
        let ev = ws.decide(&idp(None, None)).unwrap();
        ws.apply(&ev);
        assert!(
            ws.identity_provider.unwrap().browser_client().is_none(),
            "turned off"
        );
    }

    #[test]
    fn team_sso_is_configured_turned_off_and_never_to_a_bad_issuer() {
        let mut ws = Workspace::default();
        let on = WorkspaceCommand::ConfigureTeamSso(sso("https://sso.example.com", true));
        assert!(ws.decide(&on).is_err(), "no workspace yet");
        ws.apply(&Event::WorkspaceCreated(WorkspaceCreated {
            name: "w".into(),
        }));
        for bad in [
            "http://sso.example.com",
            "sso.example.com",
            "https://u:p@sso.example.com",
        ] {
            let cmd = WorkspaceCommand::ConfigureTeamSso(sso(bad, true));
            assert!(ws.decide(&cmd).is_err(), "{bad}");
        }
        let ev = ws.decide(&on).unwrap();
        ws.apply(&ev);
        assert!(ws.team_sso_enabled().is_some());
        assert!(ws.decide(&on).is_err(), "the same settings again");
        let off = WorkspaceCommand::ConfigureTeamSso(sso("https://sso.example.com", false));
        let ev = ws.decide(&off).unwrap();
        ws.apply(&ev);
        assert!(ws.team_sso_enabled().is_none());
        assert!(ws.team_sso.is_some(), "the settings are kept while off");
    }

    #[test]
    fn the_second_factor_requirement_changes_only_when_it_differs() {
        let mut ws = Workspace::default();
        let set = WorkspaceCommand::SetSecondFactorRequirement;
        assert!(ws.decide(&set(true)).is_err(), "no workspace yet");
        ws.apply(&Event::WorkspaceCreated(WorkspaceCreated {
            name: "w".into(),
        }));
        assert!(ws.decide(&set(false)).is_err(), "already optional");
        let on = ws.decide(&set(true)).unwrap();
        ws.apply(&on);
        assert!(ws.second_factor_required);
        assert!(ws.decide(&set(true)).is_err());
        assert!(ws.decide(&set(false)).is_ok());
    }

    #[test]
    fn agents_start_connect_flows_for_any_user_only_once_allowed() {
        let mut ws = Workspace::default();
        let set = WorkspaceCommand::SetAgentConnectFlows;
        assert!(ws.decide(&set(true)).is_err(), "no workspace yet");
        ws.apply(&Event::WorkspaceCreated(WorkspaceCreated {
            name: "w".into(),
        }));
        assert!(!ws.agents_connect_any_user, "off for a new workspace");
        assert!(ws.decide(&set(false)).is_err(), "already off");
        let on = ws.decide(&set(true)).unwrap();
        ws.apply(&on);
        assert!(ws.agents_connect_any_user);
        assert!(ws.decide(&set(true)).is_err());
        assert!(ws.decide(&set(false)).is_ok());
    }

    #[test]
    fn given_nothing_when_create_then_created_and_not_twice() {
        let ws = Workspace::default();
        let ev = ws.decide(&WorkspaceCommand::Create {
            name: "Acme".into(),
        });
        assert_eq!(
            ev,
            Ok(Event::WorkspaceCreated(WorkspaceCreated {
                name: "Acme".into()
            }))
        );
        let mut ws = ws;
        if let Ok(ev) = ev {
            ws.apply(&ev);
        }
        assert_eq!(
            ws.decide(&WorkspaceCommand::Create {
                name: "Acme".into()
            }),
            Err(DomainError::AlreadyExists("workspace"))
        );
    }

    #[test]
    fn jwks_urls_need_tls_except_on_loopback() {
        for ok in [
            "https://idp.example.com/.well-known/jwks.json",
            "http://127.0.0.1:9000/jwks",
            "http://localhost/jwks",
            "HTTP://127.0.0.1:9000/jwks",
            "http:[::1]:9000/jwks",
        ] {
            assert_eq!(check_jwks_url(ok), Ok(()), "{ok}");
        }
        for bad in [
            "http://idp.example.com/jwks",
            "http://127.0.0.1.evil.com/jwks",
            "http://127.0.0.1:1@idp.example.com/jwks",
            "https://user:pw@idp.example.com/jwks",
            "HTTP://idp.example.com/jwks",
            "http:idp.example.com/jwks",
            "http:\\\\idp.example.com/jwks",
            "https://",
            "ftp://x",
            "https://a b",
            "file:///etc/passwd",
        ] {
            assert!(check_jwks_url(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn bad_names_are_refused() {
        for bad in ["", " x", "a\nb", &"x".repeat(101)] {
            assert!(Workspace::default()
                .decide(&WorkspaceCommand::Create { name: bad.into() })
                .is_err());
        }
    }
}
