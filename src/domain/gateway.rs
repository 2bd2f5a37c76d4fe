//! Gateway: a named, least-privilege bundle of tools, each server being one auth config and
//! the tools allowed through it (e.g. "support agent": Gmail read tools through one auth
//! config, Slack post through another). Agent keys bound to gateways see nothing else; each
//! gateway also has its own MCP endpoint.

use serde::{Deserialize, Serialize};

use super::{check_name, Aggregate, DomainError, Event};

pub const MAX_SERVERS: usize = 20;
pub const MAX_TOOLS_PER_SERVER: usize = 100;
pub const MAX_BOUND_KEYS: usize = 100;

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct GatewayServer {
    pub auth_config_id: String,
    pub tools: Vec<String>,
}

/// The whole definition, as created or replaced.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct GatewayDefined {
    /// 1 when created, +1 per replacement.
    pub revision: u64,
    pub name: String,
    pub servers: Vec<GatewayServer>,
    /// API keys (agents) bound to this gateway: they may use only what their gateways allow.
    pub agent_key_ids: Vec<String>,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct GatewayDeleted {
    pub name: String,
}

#[derive(Debug, Default, Clone)]
pub struct Gateway {
    pub definition: Option<GatewayDefined>,
    pub deleted: bool,
}

impl Gateway {
    /// Whether this gateway lets `tool` run through a connection of `auth_config_id`.
    pub fn allows(&self, auth_config_id: &str, tool: &str) -> bool {
        self.definition.as_ref().is_some_and(|d| {
            !self.deleted
                && d.servers.iter().any(|s| {
                    s.auth_config_id == auth_config_id && s.tools.iter().any(|t| t == tool)
                })
        })
    }
}

pub enum GatewayCommand {
    /// Create (`create: true`) or replace the definition (references checked by the caller).
    Define {
        create: bool,
        name: String,
        servers: Vec<GatewayServer>,
        agent_key_ids: Vec<String>,
    },
    Delete,
}

fn check_shape(servers: &[GatewayServer], keys: &[String]) -> Result<(), DomainError> {
    let invalid = |field, reason: String| Err(DomainError::Invalid { field, reason });
    if servers.is_empty() || servers.len() > MAX_SERVERS {
        return invalid("servers", format!("1-{MAX_SERVERS} servers"));
    }
    let mut seen = std::collections::BTreeSet::new();
    for s in servers {
        if !seen.insert(s.auth_config_id.as_str()) {
            return invalid(
                "servers",
                format!("auth config {} appears twice", s.auth_config_id),
            );
        }
        if s.tools.is_empty() || s.tools.len() > MAX_TOOLS_PER_SERVER {
            return invalid(
                "servers.tools",
                format!("1-{MAX_TOOLS_PER_SERVER} tools per server"),
            );
        }
    }
    if keys.len() > MAX_BOUND_KEYS {
        return invalid("agent_key_ids", format!("at most {MAX_BOUND_KEYS}"));
    }
    Ok(())
}

impl Aggregate for Gateway {
    const TYPE: &'static str = "gateway";
    type Command = GatewayCommand;

    fn apply(&mut self, event: &Event) {
        match event {
            Event::GatewayDefined(e) => self.definition = Some(e.clone()),
            Event::GatewayDeleted(_) => self.deleted = true,
            _ => {}
        }
    }

    fn decide(&self, command: &GatewayCommand) -> Result<Event, DomainError> {
        match command {
            GatewayCommand::Define {
                create,
                name,
                servers,
                agent_key_ids,
            } => {
                match (&self.definition, create, self.deleted) {
                    (Some(_), true, _) => return Err(DomainError::AlreadyExists("gateway")),
                    (None, false, _) | (_, false, true) => {
                        return Err(DomainError::NotFound("gateway"))
                    }
                    _ => {}
                }
                check_name("name", name, 100)?;
                check_shape(servers, agent_key_ids)?;
                let revision = self.definition.as_ref().map_or(0, |d| d.revision) + 1;
                Ok(Event::GatewayDefined(GatewayDefined {
                    revision,
                    name: name.clone(),
                    servers: servers.clone(),
                    agent_key_ids: agent_key_ids.clone(),
                }))
            }
            GatewayCommand::Delete => match &self.definition {
                Some(d) if !self.deleted => Ok(Event::GatewayDeleted(GatewayDeleted {
                    name: d.name.clone(),
                })),
                _ => Err(DomainError::NotFound("gateway")),
            },
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn define(create: bool) -> GatewayCommand {
        GatewayCommand::Define {
            create,
            name: "support agent".into(),
            servers: vec![GatewayServer {
                auth_config_id: "gmail".into(),
                tools: vec!["gmail.list_messages".into()],
            }],
            agent_key_ids: vec!["key-1".into()],
        }
    }

    #[test]
    fn a_gateway_allows_exactly_its_tools_through_its_auth_configs() {
        let mut g = Gateway::default();
        assert!(g.decide(&define(false)).is_err());
        let ev = g.decide(&define(true)).unwrap();
        g.apply(&ev);
        assert!(g.allows("gmail", "gmail.list_messages"));
        assert!(!g.allows("gmail", "gmail.send_message"));
        assert!(!g.allows("slack", "gmail.list_messages"));
        assert!(g.decide(&define(true)).is_err());
        let ev = g.decide(&define(false)).unwrap();
        assert!(matches!(&ev, Event::GatewayDefined(d) if d.revision == 2));
        let ev = g.decide(&GatewayCommand::Delete).unwrap();
        g.apply(&ev);
        assert!(!g.allows("gmail", "gmail.list_messages"));
        assert!(g.decide(&GatewayCommand::Delete).is_err());
        assert!(g.decide(&define(false)).is_err());
    }

    #[test]
    fn shapes_are_checked() {
        let g = Gateway::default();
        let dup = GatewayCommand::Define {
            create: true,
            name: "x".into(),
            servers: vec![
                GatewayServer {
                    auth_config_id: "a".into(),
                    tools: vec!["t.x".into()],
                },
                GatewayServer {
                    auth_config_id: "a".into(),
                    tools: vec!["t.y".into()],
                },
            ],
            agent_key_ids: vec![],
        };
        assert!(g.decide(&dup).is_err());
        let empty = GatewayCommand::Define {
            create: true,
            name: "x".into(),
            servers: vec![],
            agent_key_ids: vec![],
        };
        assert!(g.decide(&empty).is_err());
    }
}
