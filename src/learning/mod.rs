//! What workers learn, and how it spreads.
//!
//! `discovery` is one finding, validated at construction; `knowledge` holds
//! findings by topic and resolves conflicts with a strategy whose merge is a
//! join-semilattice, so replicas that have seen the same discoveries agree
//! whatever the order or repetition of delivery. All of it is sans-IO.

pub mod discovery;
pub mod knowledge;
pub mod policy;

pub use discovery::{
    Discovery, DiscoveryDraft, DiscoveryId, InvalidDiscovery, Kind, Payload, Priority, Topic,
    WorkerId,
};
pub use knowledge::{Belief, Insertion, Knowledge, Strategy, StrategyMismatch};
pub use policy::{InvalidPolicy, Load, Policy, Propagation};
