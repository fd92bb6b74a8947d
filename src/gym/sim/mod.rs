//! A simulated Pokemon Gym server: the embedded default for the main job
//! and the backbone of tests.
//!
//! `world` generates the maps from a seed, `game` applies the rules and
//! reports the state in the real server's shape, `server` serves it over
//! HTTP with a latency model, random faults and scheduled ones.

pub mod game;
pub mod server;
pub mod world;

pub use server::{
    Faults, Jitter, JitterDelays, LatencyModel, Scheduled, ScheduledFault, SimConfig, SimError,
    SimServer, Trigger,
};
