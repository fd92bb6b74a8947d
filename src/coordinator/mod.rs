//! The coordinator: experiments on a fleet of gym servers.
//!
//! For now it holds `script`, the input language experiments are written
//! in.

pub mod script;

pub use script::{Script, ScriptError, Step};
