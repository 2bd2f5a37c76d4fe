//! Signed checkpoints: periodically the ledger commits to everything it holds with an RFC 6962
//! Merkle root over the hashes of every envelope at positions `1..=tree_size`. Checkpoints
//! form one chain (`system/checkpoint/ledger`); each names the range it newly covers and the
//! previous root, and its envelope's `prev` is the previous checkpoint's hash.

use serde::{Deserialize, Serialize};

use super::{Aggregate, DomainError, Event};

pub const CHECKPOINT_AGGREGATE: &str = "checkpoint";
pub const CHECKPOINT_ID: &str = "ledger";

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct CheckpointCreated {
    /// 1, 2, 3, … (equals the aggregate version).
    pub sequence: u64,
    /// First and last global position newly covered (`from = previous tree_size + 1`).
    pub from_position: u64,
    pub to_position: u64,
    /// Events newly covered (`to - from + 1`).
    pub count: u64,
    /// Leaves of the tree: positions `1..=tree_size` (= `to_position`).
    pub tree_size: u64,
    /// Hex RFC 6962 Merkle tree hash over `sha256(envelope)` of each position, in order.
    pub merkle_root: String,
    /// The previous checkpoint's tree (absent for the first).
    pub previous_tree_size: Option<u64>,
    pub previous_root: Option<String>,
    /// The same commitment as a C2SP signed note (`schemas/README.md` §7c), signed by the
    /// log's key. Absent in checkpoints written before notes existed.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub note: Option<String>,
}

#[derive(Debug, Default, Clone)]
pub struct CheckpointChain {
    pub sequence: u64,
    pub tree_size: u64,
    pub root: Option<String>,
}

/// Commit to the log up to `tree_size` with this root.
pub struct Commit {
    pub tree_size: u64,
    pub merkle_root: String,
    /// The signed note of this commitment (made by the caller, which holds the key).
    pub note: Option<String>,
}

impl Aggregate for CheckpointChain {
    const TYPE: &'static str = CHECKPOINT_AGGREGATE;
    type Command = Commit;

    fn apply(&mut self, event: &Event) {
        if let Event::CheckpointCreated(c) = event {
            self.sequence = c.sequence;
            self.tree_size = c.tree_size;
            self.root = Some(c.merkle_root.clone());
        }
    }

    fn decide(&self, c: &Commit) -> Result<Event, DomainError> {
        if c.tree_size <= self.tree_size {
            return Err(DomainError::Rejected(format!(
                "positions up to {} are already covered",
                self.tree_size
            )));
        }
        if c.merkle_root.len() != 64
            || !c
                .merkle_root
                .chars()
                .all(|ch| ch.is_ascii_digit() || ('a'..='f').contains(&ch))
        {
            return Err(DomainError::Invalid {
                field: "merkle_root",
                reason: "64 lowercase hex digits".into(),
            });
        }
        Ok(Event::CheckpointCreated(CheckpointCreated {
            sequence: self.sequence + 1,
            from_position: self.tree_size + 1,
            to_position: c.tree_size,
            count: c.tree_size - self.tree_size,
            tree_size: c.tree_size,
            merkle_root: c.merkle_root.clone(),
            previous_tree_size: (self.sequence > 0).then_some(self.tree_size),
            previous_root: self.root.clone(),
            note: c.note.clone(),
        }))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn checkpoints_only_move_forward_and_link_to_the_previous_root() {
        let mut chain = CheckpointChain::default();
        let first = chain
            .decide(&Commit {
                tree_size: 10,
                merkle_root: "ab".repeat(32),
                note: None,
            })
            .unwrap_or_else(|e| unreachable!("{e}"));
        chain.apply(&first);
        let Event::CheckpointCreated(c1) = &first else {
            unreachable!()
        };
        assert_eq!((c1.sequence, c1.from_position, c1.count), (1, 1, 10));
        assert_eq!(c1.previous_root, None);
        assert!(chain
            .decide(&Commit {
                tree_size: 10,
                merkle_root: "cd".repeat(32),
                note: None,
            })
            .is_err());
        let second = chain
            .decide(&Commit {
                tree_size: 15,
                merkle_root: "cd".repeat(32),
                note: None,
            })
            .unwrap_or_else(|e| unreachable!("{e}"));
        let Event::CheckpointCreated(c2) = second else {
            unreachable!()
        };
        assert_eq!((c2.sequence, c2.from_position, c2.count), (2, 11, 5));
        assert_eq!(c2.previous_tree_size, Some(10));
        assert_eq!(c2.previous_root, Some("ab".repeat(32)));
    }
}
