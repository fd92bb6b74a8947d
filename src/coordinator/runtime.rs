//! The runtime a coordinator runs best on.
//!
//! The coordinator loop is where propagation latency is spent: from a
//! batch's acceptance to its publish, it does nothing but work on the
//! batch. Everything else in the process (the workers' requests,
//! simulated servers, the store writer) is throughput work. On a machine
//! with few cores the kernel shares them out evenly, so a loop in the
//! middle of a publish is as likely to be preempted as any other thread,
//! and a preempted publish waits a whole time slice: with sixteen
//! zero-latency servers on two cores, that set the p99.
//!
//! So the runtime's own threads run at the lowest priority of normal
//! threads, and the loop runs on the thread that calls
//! `Runtime::block_on`, which keeps the priority it had. A lower priority
//! needs no privileges; where the platform refuses it anyway, the thread
//! runs as it was, and the runtime says so once at debug level.

use std::sync::Once;

use thread_priority::{ThreadPriority, set_current_thread_priority};

/// A multi-thread runtime, with every thread it starts (workers and the
/// blocking pool) at the lowest normal priority. Drive the coordinator
/// with `block_on` from a thread of normal priority, and spawn the rest.
pub fn runtime() -> std::io::Result<tokio::runtime::Runtime> {
    tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .on_thread_start(lower_priority)
        .build()
}

fn lower_priority() {
    static REFUSED: Once = Once::new();
    if let Err(error) = set_current_thread_priority(ThreadPriority::Min) {
        REFUSED.call_once(|| {
            tracing::debug!(%error, "runtime threads keep their priority");
        });
    }
}
