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
mod destinations;
mod end_user;
mod failover;
mod fixtures;
mod gateways;
mod hardening;
mod harness;
mod independent;
mod limits;
mod mcp;
mod model;
mod oauth_client;
mod projections;
mod readiness;
mod replay;
mod scale;
mod schemas;
mod scrubbing;
mod support;
mod tamper;
mod token_release;
mod vectors;
mod wal;
mod witness;
