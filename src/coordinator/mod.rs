//! The coordinator: experiments on a fleet of gym servers.
//!
//! `script` is the input language experiments are written in;
//! `experiment` holds an experiment, its outcome, and the discoveries an
//! outcome shows; `worker` runs experiments on one server; `strategy`
//! proposes what to try next; `store` keeps what was accepted; `run` is
//! the coordinator loop, and `runtime` the runtime it is best driven on.

pub mod experiment;
pub mod run;
pub mod runtime;
pub mod script;
pub mod store;
pub mod strategy;
pub mod worker;

pub use experiment::{Experiment, ExperimentId, Observation, Outcome, StartState};
pub use run::{Progress, Report, RunConfig, RunError, run};
pub use runtime::runtime;
pub use script::{Script, ScriptError, Step};
pub use store::{Store, StoreError};
pub use strategy::{Checkpoint, Explorer, Proposal, Situation, Strategy};
pub use worker::{StartError, Worker};
