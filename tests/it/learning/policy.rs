//! Propagation policies: every policy eventually delivers every accepted
//! discovery exactly once, checked against a model on a paused clock.

use std::collections::BTreeMap;
use std::time::Duration;

use gymfleet::learning::{
    Discovery, DiscoveryDraft, DiscoveryId, InvalidPolicy, Load, Policy, Priority, Propagation,
    WorkerId,
};
use gymfleet_harness::prop::{self, PropertyFailure};
use proptest::prelude::*;
use tokio::time::Instant;

use crate::learning::support::draft;

fn discovery(sequence: u64, priority: Priority, confidence: f64, samples: u32) -> Discovery {
    DiscoveryDraft { priority, confidence, samples, ..draft() }
        .finish(DiscoveryId { wall_ms: 0, worker: WorkerId(0), sequence })
        .expect("a valid discovery")
}

fn policies() -> impl Strategy<Value = Policy> {
    let millis = |range: std::ops::Range<u64>| range.prop_map(Duration::from_millis);
    prop_oneof![
        Just(Policy::Immediate),
        (1..8usize, millis(1..200)).prop_map(|(max_batch, max_wait)| Policy::Batched { max_batch, max_wait }),
        (0.0..=1.0f64, 1..30u64, millis(1..300)).prop_map(|(min_confidence, min_samples, max_hold)| {
            Policy::Threshold { min_confidence, min_samples, max_hold }
        }),
        (1..4usize, millis(1..200)).prop_map(|(max_per_poll, max_wait)| Policy::Priority { max_per_poll, max_wait }),
        (1..6usize, 0.0..=1.0f64, 1..8usize, millis(1..200)).prop_map(
            |(busy_queue_depth, unhealthy_fraction, max_batch, max_wait)| Policy::Adaptive {
                busy_queue_depth,
                unhealthy_fraction,
                max_batch,
                max_wait,
            }
        ),
    ]
}

#[derive(Debug, Clone)]
enum Op {
    Accept { priority: Priority, confidence: f64, samples: u32 },
    Advance(u64),
    Poll(Load),
}

fn ops() -> impl Strategy<Value = Vec<Op>> {
    let priority = proptest::sample::select(vec![Priority::Low, Priority::Normal, Priority::High, Priority::Critical]);
    let load = (0..10usize, 1..8usize, 0..8usize).prop_map(|(queue_depth, workers, unhealthy)| Load {
        queue_depth,
        workers,
        unhealthy_workers: unhealthy.min(workers),
    });
    let op = prop_oneof![
        3 => (priority, 0.0..=1.0f64, 1..10u32)
            .prop_map(|(priority, confidence, samples)| Op::Accept { priority, confidence, samples }),
        2 => (0..150u64).prop_map(Op::Advance),
        2 => load.prop_map(Op::Poll),
    ];
    proptest::collection::vec(op, 0..80)
}

/// Runs the ops, then polls at each deadline until nothing waits; returns
/// how often each accepted discovery was delivered.
async fn run_model(policy: Policy, ops: Vec<Op>) -> Result<BTreeMap<u64, usize>, TestCaseError> {
    let mut propagation = Propagation::new(policy).map_err(|error| TestCaseError::fail(error.to_string()))?;
    let mut delivered: BTreeMap<u64, usize> = BTreeMap::new();
    let mut n_accepted = 0u64;
    let record = |sent: Vec<Discovery>, delivered: &mut BTreeMap<u64, usize>| {
        for discovery in sent {
            *delivered.entry(discovery.id().sequence).or_default() += 1;
        }
    };
    for op in ops {
        match op {
            Op::Accept { priority, confidence, samples } => {
                propagation.accept(discovery(n_accepted, priority, confidence, samples), Instant::now());
                delivered.entry(n_accepted).or_default();
                n_accepted += 1;
            }
            Op::Advance(millis) => tokio::time::advance(Duration::from_millis(millis)).await,
            Op::Poll(load) => record(propagation.poll(Instant::now(), load), &mut delivered),
        }
    }

    // Under the heaviest load: batching and holding are at their slowest.
    let load = Load { queue_depth: usize::MAX, workers: 1, unhealthy_workers: 1 };
    let mut n_polls = 0;
    while propagation.pending() > 0 {
        n_polls += 1;
        prop_assert!(n_polls <= 10_000, "{} discoveries never left", propagation.pending());
        let deadline = propagation.next_deadline().expect("something waits");
        let now = Instant::now();
        if deadline > now {
            tokio::time::advance(deadline - now).await;
        }
        record(propagation.poll(Instant::now(), load), &mut delivered);
    }
    Ok(delivered)
}

#[gymfleet_harness::test]
fn every_policy_delivers_every_accepted_discovery_exactly_once() -> Result<(), PropertyFailure> {
    prop::check((policies(), ops()), |(policy, ops)| {
        let runtime = tokio::runtime::Builder::new_current_thread()
            .enable_time()
            .start_paused(true)
            .build()
            .map_err(|error| TestCaseError::fail(error.to_string()))?;
        let delivered = runtime.block_on(run_model(policy.clone(), ops))?;
        for (sequence, times) in delivered {
            prop_assert_eq!(times, 1, "{:?}: discovery {} delivered {} times", policy, sequence, times);
        }
        Ok(())
    })
}

#[gymfleet_harness::test(start_paused)]
async fn a_batch_goes_when_full_or_when_its_oldest_has_waited() {
    let policy = Policy::Batched { max_batch: 3, max_wait: Duration::from_millis(100) };
    let mut propagation = Propagation::new(policy).expect("a valid policy");
    let load = Load::default();
    propagation.accept(discovery(0, Priority::Normal, 0.9, 1), Instant::now());
    propagation.accept(discovery(1, Priority::Normal, 0.9, 1), Instant::now());
    assert!(propagation.poll(Instant::now(), load).is_empty());
    propagation.accept(discovery(2, Priority::Normal, 0.9, 1), Instant::now());
    assert_eq!(propagation.poll(Instant::now(), load).len(), 3, "a full batch goes");

    propagation.accept(discovery(3, Priority::Normal, 0.9, 1), Instant::now());
    assert_eq!(propagation.next_deadline(), Some(Instant::now() + Duration::from_millis(100)));
    tokio::time::advance(Duration::from_millis(99)).await;
    assert!(propagation.poll(Instant::now(), load).is_empty());
    tokio::time::advance(Duration::from_millis(1)).await;
    assert_eq!(propagation.poll(Instant::now(), load).len(), 1, "a waited-out batch goes");
}

#[gymfleet_harness::test(start_paused)]
async fn weak_evidence_is_held_until_more_arrives_or_the_hold_ends() {
    let policy = Policy::Threshold { min_confidence: 0.8, min_samples: 5, max_hold: Duration::from_secs(1) };
    let mut propagation = Propagation::new(policy).expect("a valid policy");
    let load = Load::default();
    propagation.accept(discovery(0, Priority::Normal, 0.9, 2), Instant::now());
    assert!(propagation.poll(Instant::now(), load).is_empty(), "two samples are not enough");
    propagation.accept(discovery(1, Priority::Normal, 0.5, 3), Instant::now());
    assert_eq!(propagation.poll(Instant::now(), load).len(), 2, "together they reach the threshold");

    let policy = Policy::Threshold { min_confidence: 0.8, min_samples: 100, max_hold: Duration::from_secs(1) };
    let mut propagation = Propagation::new(policy).expect("a valid policy");
    propagation.accept(discovery(2, Priority::Normal, 0.1, 1), Instant::now());
    tokio::time::advance(Duration::from_secs(1)).await;
    assert_eq!(propagation.poll(Instant::now(), load).len(), 1, "nothing is held forever");
}

#[gymfleet_harness::test(start_paused)]
async fn critical_discoveries_go_first_and_old_ones_are_promoted() {
    let policy = Policy::Priority { max_per_poll: 1, max_wait: Duration::from_millis(50) };
    let mut propagation = Propagation::new(policy).expect("a valid policy");
    let load = Load::default();
    propagation.accept(discovery(0, Priority::Low, 0.9, 1), Instant::now());
    tokio::time::advance(Duration::from_millis(10)).await;
    propagation.accept(discovery(1, Priority::Critical, 0.9, 1), Instant::now());
    propagation.accept(discovery(2, Priority::High, 0.9, 1), Instant::now());
    let order = |sent: Vec<Discovery>| sent.iter().map(|d| d.id().sequence).collect::<Vec<_>>();
    assert_eq!(order(propagation.poll(Instant::now(), load)), vec![1]);
    tokio::time::advance(Duration::from_millis(40)).await;
    // The low-priority discovery has now waited 50 ms and counts as critical.
    assert_eq!(order(propagation.poll(Instant::now(), load)), vec![0]);
    assert_eq!(order(propagation.poll(Instant::now(), load)), vec![2]);
}

#[gymfleet_harness::test(start_paused)]
async fn the_adaptive_policy_batches_only_under_load() {
    let policy = Policy::Adaptive {
        busy_queue_depth: 4,
        unhealthy_fraction: 0.5,
        max_batch: 10,
        max_wait: Duration::from_millis(100),
    };
    let mut propagation = Propagation::new(policy).expect("a valid policy");
    let calm = Load { queue_depth: 0, workers: 4, unhealthy_workers: 0 };
    let degraded = Load { queue_depth: 0, workers: 4, unhealthy_workers: 2 };
    propagation.accept(discovery(0, Priority::Normal, 0.9, 1), Instant::now());
    assert!(propagation.poll(Instant::now(), degraded).is_empty(), "half the fleet is down: batch");
    assert_eq!(propagation.poll(Instant::now(), calm).len(), 1, "calm: send at once");
}

#[gymfleet_harness::test]
fn invalid_policies_are_refused_by_field() {
    let refused = |policy| Propagation::new(policy).map(drop).expect_err("an invalid policy");
    assert_eq!(
        refused(Policy::Batched { max_batch: 0, max_wait: Duration::from_millis(1) }),
        InvalidPolicy::Zero("max_batch")
    );
    assert_eq!(
        refused(Policy::Threshold { min_confidence: f64::NAN, min_samples: 1, max_hold: Duration::from_secs(1) })
            .to_string(),
        "`min_confidence` must be in [0, 1], not NaN"
    );
    assert_eq!(
        refused(Policy::Priority { max_per_poll: 1, max_wait: Duration::ZERO }),
        InvalidPolicy::ZeroDuration("max_wait")
    );
}

/// Propagation latency counts from acceptance: a release says when the
/// longest waiting of what it lets go was accepted.
#[gymfleet_harness::test(start_paused)]
async fn a_release_says_when_its_earliest_discovery_was_accepted() {
    let policy = Policy::Batched { max_batch: 2, max_wait: Duration::from_millis(50) };
    let mut propagation = Propagation::new(policy).expect("a valid policy");
    let load = Load { queue_depth: 0, workers: 1, unhealthy_workers: 0 };
    let first_accepted = Instant::now();
    propagation.accept(discovery(0, Priority::Normal, 0.5, 1), first_accepted);
    tokio::time::advance(Duration::from_millis(10)).await;
    let held = propagation.poll_timed(Instant::now(), load);
    assert!(held.discoveries.is_empty() && held.oldest.is_none(), "{held:?}");

    propagation.accept(discovery(1, Priority::Normal, 0.5, 1), Instant::now());
    let released = propagation.poll_timed(Instant::now(), load);
    assert_eq!(released.discoveries.len(), 2);
    assert_eq!(released.oldest, Some(first_accepted));

    propagation.accept(discovery(2, Priority::Normal, 0.5, 1), Instant::now());
    let drained = propagation.drain_timed();
    assert_eq!((drained.discoveries.len(), drained.oldest), (1, Some(Instant::now())));
}
