#![cfg_attr(test, allow(clippy::unwrap_used, clippy::expect_used, clippy::panic))]
//! authledger: an event-sourced, audit-first credential ledger for AI agents.
//!
//! Read `ARCHITECTURE.md` first (its "Layers" are checked by `tools/check-layers`). In short:
//!
//! ```text
//! faces (main, server, api, mcp) ──▶ commands / gateway ──▶ domain (pure decide/apply)
//!     ──▶ ledger::Ledger: sign (DSSE, ed25519) + chain (sha256 of the previous envelope)
//!     ──▶ EventLog (ledger::sqlite_log embedded | ledger::jetstream_log) ──▶ projector ──▶ SQL
//! ```
//!
//! - `ledger`: envelope, keys, `EventLog` and its backends, the write path, `verify`.
//! - `domain`: event kinds and aggregates; no I/O, no clock.
//! - `projector`: applies the log to SQL projections (SQLite or PostgreSQL), once per event.
//! - `commands`, `gateway`: what a caller can do, HTTP-free; `app`: the services they run on;
//!   `ops`: operator commands; `server`, `api`, `mcp`, `console`, `portal` (end users' pages):
//!   the faces.

pub mod api;
pub mod app;
pub mod audit;
pub mod clock;
pub mod commands;
pub mod config;
pub mod connectors;
pub mod console;
pub mod crypto;
pub mod domain;
pub mod gateway;
pub mod identity;
pub mod ledger;
pub mod mcp;
pub mod memory;
pub mod metrics;
pub mod net;
pub mod oauth;
pub mod ops;
pub mod portal;
pub mod projector;
pub mod providers;
pub mod scheduler;
pub mod scoped_token;
pub mod server;
pub mod siem;
pub mod sqlite;
pub mod telemetry;
/// Test-only: a clock the end-to-end tests move (absent from release builds).
#[cfg(debug_assertions)]
pub mod test_clock;
pub mod wal;
pub mod web;
pub mod webhooks;
pub mod witness;
