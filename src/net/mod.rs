//! Outbound connections: the one destination policy every outbound call goes through
//! (OAuth endpoints, JWKS, tool base URLs, revocation, native connectors;
//! [`destination`]) and the HTTP client bound to it ([`client`]).

pub mod client;
pub mod destination;

pub use client::HttpClient;
pub use destination::{classify, AddressClass, Allowed, DestinationError, Lookup, Policy, Refused};
