//! One integration-test binary (fast to link), one module per area.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod agents;
mod api;
mod audit;
mod auth_configs;
mod catalog;
mod cli;
mod conformance;
mod connection_lifecycle;
mod connections;
mod crash;
mod crypto;
mod end_user;
mod gateways;
mod harness;
mod independent;
mod mcp;
mod oauth_client;
mod oauth_provider;
mod projections;
mod replay;
mod scale;
mod schemas;
mod support;
mod tamper;
mod token_release;
mod vectors;
mod wal;
mod witness;
