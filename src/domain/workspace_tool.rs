//! A tool a workspace defines for itself (next to the built-in catalog). The definition is
//! validated by `tools::Tool::new` before it is decided; the aggregate id is derived from
//! the tool name, so a name is defined at most once per workspace at a time.

use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};

use super::{Aggregate, DomainError, Event};
use crate::gateway::tools::ToolDefinition;

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ToolDefined {
    /// 1 on first definition, then +1 per redefinition.
    pub revision: u64,
    pub definition: ToolDefinition,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ToolRemoved {
    pub name: String,
}

/// The aggregate id of the workspace tool named `name` (names hold `.`, which a subject
/// token may not).
pub fn aggregate_id(name: &str) -> String {
    format!(
        "tool_{}",
        &hex::encode(Sha256::digest(name.as_bytes()))[..32]
    )
}

#[derive(Debug, Default, Clone)]
pub struct WorkspaceTool {
    pub definition: Option<ToolDefinition>,
    pub revision: u64,
}

pub enum WorkspaceToolCommand {
    /// Define or redefine (the definition was validated by the caller).
    Define(Box<ToolDefinition>),
    Remove,
}

impl Aggregate for WorkspaceTool {
    const TYPE: &'static str = "workspace_tool";
    type Command = WorkspaceToolCommand;

    fn apply(&mut self, event: &Event) {
        match event {
            Event::ToolDefined(e) => {
                self.definition = Some(e.definition.clone());
                self.revision = e.revision;
            }
            Event::ToolRemoved(_) => self.definition = None,
            _ => {}
        }
    }

    fn decide(&self, command: &WorkspaceToolCommand) -> Result<Event, DomainError> {
        match command {
            WorkspaceToolCommand::Define(def) => {
                if self.definition.as_ref() == Some(def.as_ref()) {
                    return Err(DomainError::Rejected(
                        "the tool is already defined so".into(),
                    ));
                }
                Ok(Event::ToolDefined(ToolDefined {
                    revision: self.revision + 1,
                    definition: def.as_ref().clone(),
                }))
            }
            WorkspaceToolCommand::Remove => match &self.definition {
                Some(d) => Ok(Event::ToolRemoved(ToolRemoved {
                    name: d.name.clone(),
                })),
                None => Err(DomainError::NotFound("tool")),
            },
        }
    }
}
