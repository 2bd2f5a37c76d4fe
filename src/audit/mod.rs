//! Compliance audit: Merkle tree commitments over the event log (RFC 6962 / RFC 9162).

pub mod checkpoints;
pub mod export;
pub mod follow;
pub mod merkle;
