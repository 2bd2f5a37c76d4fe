//! Native connectors: auth types the ledger can test by really talking to the service.

pub mod postgres;
