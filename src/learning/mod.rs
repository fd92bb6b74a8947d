//! What workers learn, and how it spreads.
//!
//! `discovery` is one finding, validated at construction; `knowledge` holds
//! findings by topic and resolves conflicts with a strategy whose merge is a
//! join-semilattice, so replicas that have seen the same discoveries agree
//! whatever the order or repetition of delivery; `policy` decides when an
//! accepted discovery goes out. These three are sans-IO. `fanout` delivers
//! batches to subscribers through bounded queues and measures propagation
//! latency, `events` broadcasts what happens to observers, and `cache` is a
//! bounded LRU with a time to live.

pub mod cache;
pub mod discovery;
pub mod events;
pub mod fanout;
pub mod knowledge;
pub mod policy;

pub use discovery::{
    Discovery, DiscoveryDraft, DiscoveryId, InvalidDiscovery, Kind, Payload, Priority, Topic,
    WorkerId,
};
pub use knowledge::{Belief, Insertion, Knowledge, Strategy, StrategyMismatch};
pub use policy::{InvalidPolicy, Load, Policy, Propagation, Released};
