//! Workspace: one customer's isolated space.

use serde::{Deserialize, Serialize};

use super::{check_name, Aggregate, DomainError, Event};

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct WorkspaceCreated {
    pub name: String,
}

#[derive(Debug, Default)]
pub struct Workspace {
    pub name: Option<String>,
}

pub enum WorkspaceCommand {
    Create { name: String },
}

impl Aggregate for Workspace {
    const TYPE: &'static str = "workspace";
    type Command = WorkspaceCommand;

    fn apply(&mut self, event: &Event) {
        if let Event::WorkspaceCreated(e) = event {
            self.name = Some(e.name.clone());
        }
    }

    fn decide(&self, command: &WorkspaceCommand) -> Result<Event, DomainError> {
        match command {
            WorkspaceCommand::Create { name } => {
                if self.name.is_some() {
                    return Err(DomainError::AlreadyExists("workspace"));
                }
                check_name("name", name, 100)?;
                Ok(Event::WorkspaceCreated(WorkspaceCreated { name: name.clone() }))
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
        let ev = ws.decide(&WorkspaceCommand::Create { name: "Acme".into() });
        assert_eq!(ev, Ok(Event::WorkspaceCreated(WorkspaceCreated { name: "Acme".into() })));
        let mut ws = ws;
        if let Ok(ev) = ev {
            ws.apply(&ev);
        }
        assert_eq!(
            ws.decide(&WorkspaceCommand::Create { name: "Acme".into() }),
            Err(DomainError::AlreadyExists("workspace"))
        );
    }

    #[test]
    fn bad_names_are_refused() {
        for bad in ["", " x", "a\nb", &"x".repeat(101)] {
            assert!(Workspace::default().decide(&WorkspaceCommand::Create { name: bad.into() }).is_err());
        }
    }
}
