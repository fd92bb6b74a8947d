//! Everything that speaks to Pokemon Gym servers.
//!
//! `wire` is the protocol as the real server speaks it; wire types never
//! leave this module tree.

pub mod wire;
