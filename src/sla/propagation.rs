//! The in-process propagation path under a synthetic workload: one source
//! publishes batches of discoveries to subscriber replicas, copies of the
//! knowledge that the fan-out applies each batch to.
//!
//! Used by propagation scenarios and by the property-based SLA, which
//! generates workloads and checks each one against the budgets.

use std::sync::Arc;
use std::time::Duration;

use hdrhistogram::Histogram;
use rand::rngs::ChaCha8Rng;
use rand::{RngExt as _, SeedableRng as _};
use tokio::time::Instant;

use crate::learning::fanout::FanOut;
use crate::learning::{
    DiscoveryDraft, DiscoveryId, Knowledge, Payload, Priority, Strategy, Topic, WorkerId,
};

/// What to propagate.
#[derive(Debug, Clone, PartialEq)]
pub struct Workload {
    /// Subscriber replicas.
    pub subscribers: usize,
    /// Discoveries per published batch.
    pub batch: usize,
    /// Batches published, one after the other: each is published once the
    /// previous one was applied everywhere.
    pub publishes: usize,
    /// The chance that a discovery answers a question already answered,
    /// with a different payload: a conflict every replica must resolve.
    pub conflict_rate: f64,
    /// The length of each discovery's route script.
    pub payload_bytes: usize,
    /// Distinct questions discoveries answer: once each has an answer,
    /// new discoveries answer them again, so knowledge stops growing.
    pub topics: usize,
    /// Each subscriber's backlog, in batches.
    pub capacity: usize,
    /// How conflicts are resolved.
    pub strategy: Strategy,
    /// Seeds topics, payloads and conflicts.
    pub seed: u64,
}

impl Default for Workload {
    fn default() -> Workload {
        Workload {
            subscribers: 64,
            batch: 1,
            publishes: 1_000,
            conflict_rate: 0.1,
            payload_bytes: 32,
            topics: 1_000,
            capacity: 64,
            strategy: Strategy::WeightedMerge,
            seed: 1,
        }
    }
}

/// What one workload measured.
#[derive(Debug, Clone)]
pub struct Measured {
    /// Publish to last acknowledgement, per batch, in microseconds.
    pub latency: Histogram<u64>,
    /// Batches published.
    pub batches: u64,
    /// Discoveries published.
    pub discoveries: u64,
    /// Snapshots sent to subscribers that fell behind.
    pub snapshots: u64,
    /// Replicas whose knowledge differs from the source's at the end.
    pub diverged: u64,
    /// Wall time of the whole workload.
    pub elapsed: Duration,
}

/// Runs `workload` on the current runtime and measures it.
///
/// The source runs as a task of its own, as the coordinator does.
///
/// # Panics
///
/// If `subscribers`, `batch`, `topics` or `capacity` is zero.
pub async fn measure(workload: &Workload) -> Measured {
    let workload = workload.clone();
    tokio::spawn(async move { measure_here(&workload).await })
        .await
        .expect("the propagation source does not panic")
}

async fn measure_here(workload: &Workload) -> Measured {
    assert!(
        workload.subscribers > 0
            && workload.batch > 0
            && workload.topics > 0
            && workload.capacity > 0
    );
    let mut rng = ChaCha8Rng::seed_from_u64(workload.seed);
    let mut fanout = FanOut::new(workload.capacity);
    let replicas: Vec<_> = (0..workload.subscribers)
        .map(|_| fanout.replicate(Knowledge::new(workload.strategy)))
        .collect();

    let mut source = Knowledge::new(workload.strategy);
    let mut n_topics = 0u32;
    let mut n_fresh = 0u32;
    let mut sequence = 0u64;
    let mut snapshots = 0u64;
    let script: String = "up ".repeat(workload.payload_bytes.div_ceil(3));
    let started = Instant::now();
    for _ in 0..workload.publishes {
        let mut batch = Vec::with_capacity(workload.batch);
        for _ in 0..workload.batch {
            let conflict = n_topics > 0 && rng.random_bool(workload.conflict_rate.clamp(0.0, 1.0));
            let topic = match conflict {
                true => rng.random_range(0..n_topics),
                false => {
                    n_fresh += 1;
                    n_topics = n_topics.max(n_fresh.min(workload.topics as u32));
                    (n_fresh - 1) % workload.topics as u32
                }
            };
            sequence += 1;
            let discovery = Arc::new(
                draft(topic, sequence, &script, &mut rng)
                    .finish(DiscoveryId {
                        wall_ms: sequence,
                        worker: WorkerId((sequence % 16) as u32),
                        sequence,
                    })
                    .expect("generated discoveries are valid"),
            );
            source.insert(Arc::clone(&discovery));
            batch.push(discovery);
        }
        let published = fanout.publish(batch.into(), Instant::now(), || Arc::new(source.clone()));
        snapshots += published.snapshots as u64;
        while fanout.outstanding() > 0 {
            fanout.wait_for_acks(Duration::from_secs(5)).await;
        }
        // As the coordinator does: replicas grow between batches.
        fanout.make_room(2 * workload.batch);
    }
    let elapsed = started.elapsed();
    // A batch applied before the loop looked is completed but not yet
    // recorded.
    fanout.collect_acks();
    let latency = fanout.latency().clone();
    drop(fanout);
    let diverged = replicas
        .iter()
        .filter(|replica| *replica.read() != source)
        .count() as u64;
    Measured {
        latency,
        batches: workload.publishes as u64,
        discoveries: sequence,
        snapshots,
        diverged,
        elapsed,
    }
}

fn draft(topic: u32, sequence: u64, script: &str, rng: &mut ChaCha8Rng) -> DiscoveryDraft {
    let topic = topic as i32;
    DiscoveryDraft {
        topic: Topic::route(
            ("PALLET TOWN", 1, 1),
            ("ROUTE 1", topic % 1024, topic / 1024),
        ),
        payload: Payload::Route {
            script: format!("{script}{}", sequence % 7),
            frames: 130 * (1 + sequence % 7),
        },
        confidence: rng.random_range(0.1..=1.0),
        success_rate: rng.random_range(0.5..=1.0),
        samples: rng.random_range(1..=8),
        priority: Priority::Normal,
        checkpoint: None,
    }
}
