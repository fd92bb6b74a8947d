//! Everything that speaks to Pokemon Gym servers.
//!
//! `wire` is the protocol as the real server speaks it, `client` the only
//! code that sends it over HTTP, `breaker` and `latency` the client's
//! resilience and measurement parts.

pub mod breaker;
pub mod client;
pub mod latency;
pub mod sim;
pub mod wire;

pub use client::{ClientConfig, Deadlines, Error, ErrorKind, GymClient, RetryPolicy};
