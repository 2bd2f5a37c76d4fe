//! Workspace: one customer's isolated space.

use serde::{Deserialize, Serialize};

use super::{check_name, Aggregate, DomainError, Event};

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct WorkspaceCreated {
    pub name: String,
}

/// The organisation's identity provider, whose JWTs identify end users of this workspace.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct IdentityProviderConfigured {
    pub issuer: String,
    pub audience: String,
    pub jwks_url: String,
}

/// Whether the gateway keeps (redacted) upstream response bodies in `tool.completed`.
/// Off unless the workspace opts in.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ToolResponseStorageSet {
    pub store_tool_responses: bool,
}

#[derive(Debug, Default, Clone)]
pub struct Workspace {
    pub name: Option<String>,
    pub identity_provider: Option<IdentityProviderConfigured>,
    pub store_tool_responses: bool,
}

pub enum WorkspaceCommand {
    Create { name: String },
    ConfigureIdentityProvider(IdentityProviderConfigured),
    SetToolResponseStorage(bool),
}

/// JWKS must be fetched over TLS, except from this machine (development and tests).
pub fn check_jwks_url(url: &str) -> Result<(), DomainError> {
    let loopback = [
        "http://127.0.0.1:",
        "http://127.0.0.1/",
        "http://localhost:",
        "http://localhost/",
        "http://[::1]:",
    ];
    let ok = url.len() <= 2048
        && !url.chars().any(|c| c.is_whitespace() || c.is_control())
        && (url
            .strip_prefix("https://")
            .is_some_and(|rest| !rest.is_empty() && !rest.starts_with('/'))
            || loopback.iter().any(|p| url.starts_with(p)));
    if ok {
        Ok(())
    } else {
        Err(DomainError::Invalid {
            field: "jwks_url",
            reason: "must be an https:// URL (http:// only on the loopback interface)".into(),
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
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

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
        ] {
            assert_eq!(check_jwks_url(ok), Ok(()), "{ok}");
        }
        for bad in [
            "http://idp.example.com/jwks",
            "http://127.0.0.1.evil.com/jwks",
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
