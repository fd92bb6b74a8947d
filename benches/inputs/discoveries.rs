//! The discoveries the learning benchmarks work on, shared so that the
//! wall-clock and the instruction-count benches measure the same inputs.

use gymfleet::learning::{
    Discovery, DiscoveryDraft, DiscoveryId, Payload, Priority, Topic, WorkerId,
};

/// A route discovery: `topic_idx` picks the question, `payload_idx` the
/// answer and its confidence and samples.
pub fn draft(topic_idx: u64, payload_idx: u64) -> DiscoveryDraft {
    DiscoveryDraft {
        topic: Topic::route(("PALLET TOWN", 1, 1), ("ROUTE 1", topic_idx as i32, 2)),
        payload: Payload::Route {
            script: format!("up*{payload_idx} right"),
            frames: 130 * payload_idx,
        },
        confidence: 0.5 + (payload_idx % 5) as f64 / 10.0,
        success_rate: 0.9,
        samples: 1 + (payload_idx % 7) as u32,
        priority: Priority::Normal,
        checkpoint: None,
    }
}

/// The draft finished with an id made from `sequence`.
pub fn discovery(sequence: u64, topic_idx: u64, payload_idx: u64) -> Discovery {
    draft(topic_idx, payload_idx)
        .finish(DiscoveryId {
            wall_ms: sequence / 3,
            worker: WorkerId((sequence % 4) as u32),
            sequence,
        })
        .expect("a valid discovery")
}
