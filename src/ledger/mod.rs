//! The signed event ledger: envelope and signing, key ring, the `EventLog` trait and its
//! two backends, the write path (`Ledger`) and verification.

pub mod anchors;
pub mod dump;
pub mod envelope;
pub mod generations;
pub mod jetstream_log;
pub mod keys;
pub mod log;
pub mod note;
pub mod signature;
pub mod sqlite_intake;
pub mod sqlite_log;
pub mod trust;
pub mod verify;
pub mod writer;

pub use envelope::{Actor, ActorType, AggregateKey, EventBody, PAYLOAD_TYPE};
pub use keys::{KeyDir, KeyRing, Signer};
pub use log::{Appended, EventLog, Flush, LogError, RecordedEvent, SignedEvent};
pub use writer::{Committed, Ledger, LedgerError};
