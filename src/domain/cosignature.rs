//! Witness cosignatures of checkpoints (C2SP tlog-cosignature `cosignature/v1`): an
//! independent witness, holding its own key, states that a checkpoint extends every one it
//! cosigned before. The service checks the signature before recording it; each witness has
//! its own chain (`system/checkpoint_cosignature/<storage id of its key>`), which only
//! moves forward.

use serde::{Deserialize, Serialize};

use super::{Aggregate, DomainError, Event};

pub const COSIGNATURE_AGGREGATE: &str = "checkpoint_cosignature";

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct CheckpointCosigned {
    /// The cosigned checkpoint (`ledger.checkpoint` sequence) and its tree size.
    pub checkpoint_sequence: u64,
    pub tree_size: u64,
    /// The witness's verifier key: `<name>+<hex key id>+<base64(0x04 || public key)>`.
    pub witness_key: String,
    pub witness_name: String,
    /// POSIX seconds, as signed.
    pub timestamp: u64,
    /// base64(key id (4) || timestamp (8, big-endian) || Ed25519 signature (64)): with
    /// `witness_name`, the note signature line `— <witness_name> <cosignature>`.
    pub cosignature: String,
}

/// What a witness has cosigned so far.
#[derive(Debug, Default, Clone)]
pub struct WitnessCosignatures {
    pub tree_size: u64,
    pub timestamp: u64,
    pub count: u64,
}

/// Record a cosignature (already verified by the caller against the checkpoint's note).
pub struct Record(pub CheckpointCosigned);

impl Aggregate for WitnessCosignatures {
    const TYPE: &'static str = COSIGNATURE_AGGREGATE;
    type Command = Record;

    fn apply(&mut self, event: &Event) {
        if let Event::CheckpointCosigned(c) = event {
            self.tree_size = c.tree_size;
            self.timestamp = c.timestamp;
            self.count += 1;
        }
    }

    fn decide(&self, Record(c): &Record) -> Result<Event, DomainError> {
        if self.count > 0 && (c.tree_size < self.tree_size || c.timestamp <= self.timestamp) {
            return Err(DomainError::Rejected(format!(
                "this witness already cosigned tree size {} at {}; a cosignature must not go back",
                self.tree_size, self.timestamp
            )));
        }
        Ok(Event::CheckpointCosigned(c.clone()))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn cosigned(tree_size: u64, timestamp: u64) -> Record {
        Record(CheckpointCosigned {
            checkpoint_sequence: 1,
            tree_size,
            witness_key: "w+00000000+AA==".into(),
            witness_name: "w".into(),
            timestamp,
            cosignature: String::new(),
        })
    }

    #[test]
    fn a_witness_chain_only_moves_forward() {
        let mut chain = WitnessCosignatures::default();
        let first = chain
            .decide(&cosigned(10, 100))
            .unwrap_or_else(|e| unreachable!("{e}"));
        chain.apply(&first);
        assert!(chain.decide(&cosigned(9, 200)).is_err());
        assert!(chain.decide(&cosigned(10, 100)).is_err());
        assert!(chain.decide(&cosigned(10, 101)).is_ok());
        assert!(chain.decide(&cosigned(20, 300)).is_ok());
    }
}
