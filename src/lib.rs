#![cfg_attr(test, allow(clippy::unwrap_used, clippy::expect_used, clippy::panic))]
//! authledger: an event-sourced, audit-first credential ledger for AI agents.
//!
//! Read `ARCHITECTURE.md` first. In short:
//!
//! ```text
//! api (axum, thin) ──commands──▶ domain (pure decide/apply) ──▶ ledger::Ledger
//!     sign (DSSE, ed25519) + chain (sha256 of the previous envelope) ──▶ EventLog
//!     (ledger::sqlite_log embedded | ledger::jetstream_log) ──▶ projector ──▶ SQL projections
//! ```
//!
//! - `ledger`: envelope, keys, `EventLog` and its backends, the write path, `verify`.
//! - `domain`: event kinds and aggregates; no I/O, no clock.
//! - `projector`: applies the log to SQL projections (SQLite or PostgreSQL), once per event.
//! - `app`: wiring of storage options into a running service; `api`: HTTP routes.

pub mod api;
pub mod app;
pub mod audit;
pub mod catalog;
pub mod clock;
pub mod commands;
pub mod config;
pub mod connectors;
pub mod crypto;
pub mod domain;
pub mod identity;
pub mod ledger;
pub mod mcp;
pub mod metrics;
pub mod oauth;
pub mod projector;
pub mod scheduler;
pub mod scoped_token;
pub mod tools;
pub mod wal;
pub mod witness;
