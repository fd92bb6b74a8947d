//! Generators of discoveries for the learning tests.

use gymfleet::learning::{
    Discovery, DiscoveryDraft, DiscoveryId, Knowledge, Payload, Priority, Strategy as Resolution,
    Topic, WorkerId,
};
use proptest::prelude::*;

gymfleet_harness::support_module!();

/// A draft with sensible values, to change one field at a time.
pub fn draft() -> DiscoveryDraft {
    DiscoveryDraft {
        topic: Topic::tile("PALLET TOWN", 3, 4),
        payload: Payload::Tile { blocked: true },
        confidence: 0.9,
        success_rate: 1.0,
        samples: 3,
        priority: Priority::Normal,
        checkpoint: None,
    }
}

fn topic() -> impl Strategy<Value = Topic> {
    (0..3i32).prop_map(|index| Topic::route(("PALLET TOWN", 1, 1), ("ROUTE 1", index, 2)))
}

fn payload() -> impl Strategy<Value = Payload> {
    prop_oneof![
        Just(Payload::Route { script: "up*3 right".into(), frames: 520 }),
        Just(Payload::Route { script: "right up*3".into(), frames: 520 }),
        Just(Payload::Route { script: "up*5".into(), frames: 650 }),
    ]
}

/// Discoveries on three topics with three competing payloads each, with
/// many ties in confidence and time, and unique ids.
pub fn discoveries(max_len: usize) -> impl Strategy<Value = Vec<Discovery>> {
    let one = (
        topic(),
        payload(),
        prop_oneof![Just(0.5), Just(0.9), 0.0..=1.0f64],
        0.0..=1.0f64,
        1..20u32,
        0..4u64,
        0..3u32,
    );
    proptest::collection::vec(one, 1..max_len).prop_map(|parts| {
        parts
            .into_iter()
            .enumerate()
            .map(|(sequence, (topic, payload, confidence, success_rate, samples, wall_ms, worker))| {
                let draft = DiscoveryDraft { topic, payload, confidence, success_rate, samples, ..draft() };
                let id = DiscoveryId { wall_ms, worker: WorkerId(worker), sequence: sequence as u64 };
                draft.finish(id).expect("generated values are valid")
            })
            .collect()
    })
}

/// Any strategy.
pub fn strategy() -> impl Strategy<Value = Resolution> {
    proptest::sample::select(Resolution::ALL.to_vec())
}

/// Knowledge holding `discoveries`, inserted in order.
pub fn knowledge(strategy: Resolution, discoveries: &[Discovery]) -> Knowledge {
    let mut knowledge = Knowledge::new(strategy);
    for discovery in discoveries {
        knowledge.insert(discovery.clone());
    }
    knowledge
}

/// `a` merged with `b`, as a new value.
pub fn merged(a: &Knowledge, b: &Knowledge) -> Knowledge {
    let mut merged = a.clone();
    merged.merge(b).expect("the same strategy");
    merged
}
