//! The propagation budgets as a property: for generated workloads
//! (subscribers 1 to 64, batches of 1 to 10, conflict rates, payload
//! sizes) every replica converges, none falls behind, and the p99 from
//! publish to last acknowledgement stays within budget: the same limits
//! as the shipped propagation scenarios, for one discovery and for a
//! batch of up to ten.
//!
//! The latency budget is enforced when the suite is built with
//! optimizations (`cargo nextest run --cargo-profile release`, as CI
//! does); the number of cases is bounded (16, or `PROPTEST_CASES`).

use gymfleet::learning::Strategy as Resolution;
use gymfleet::sla::propagation::{Workload, measure};
use gymfleet_harness::prop::{self, Config, PropertyFailure};
use proptest::prelude::*;

fn workloads() -> impl Strategy<Value = Workload> {
    (
        1usize..=64,
        1usize..=10,
        0.0f64..=0.5,
        8usize..=4096,
        prop_oneof![Just(Resolution::HighestConfidence), Just(Resolution::Consensus), Just(Resolution::WeightedMerge)],
        any::<u64>(),
    )
        .prop_map(|(subscribers, batch, conflict_rate, payload_bytes, strategy, seed)| Workload {
            subscribers,
            batch,
            publishes: 2_000,
            conflict_rate,
            payload_bytes,
            topics: 1_000,
            capacity: 64,
            strategy,
            seed,
        })
}

#[gymfleet_harness::test]
fn propagation_stays_within_budget_for_any_workload() -> Result<(), PropertyFailure> {
    let config = Config { cases: 16, ..Config::default() };
    prop::check_with(config, workloads(), |workload| {
        let runtime = tokio::runtime::Builder::new_multi_thread().enable_all().build().expect("a runtime");
        let measured = runtime.block_on(measure(&workload));
        prop_assert_eq!(measured.diverged, 0, "replicas diverged");
        prop_assert_eq!(measured.snapshots, 0, "a subscriber fell behind");
        prop_assert_eq!(measured.latency.len(), workload.publishes as u64, "a batch was never acknowledged");
        if !cfg!(debug_assertions) {
            let budget_us = match workload.batch {
                1 => 100,
                _ => 200,
            };
            let p99 = measured.latency.value_at_quantile(0.99);
            prop_assert!(p99 <= budget_us, "p99 {} us over the {} us budget", p99, budget_us);
        }
        Ok(())
    })
}
