//! gymfleet coordinates experiments on a fleet of Pokemon Gym servers and
//! keeps the fleet's latency honest.
//!
//! The library is what the `gymfleet` binary is made of; see
//! `ARCHITECTURE.md` for a map of its modules.

#![forbid(unsafe_code)]

pub mod coordinator;
pub mod gym;
pub mod learning;
pub mod sla;
