//! The learning layer's costs: creating a discovery, resolving conflicts,
//! propagating to in-process subscribers, and how both scale.
//!
//! Before criterion's measurements, the bench prints propagation latency
//! percentiles (discovery accepted to last subscriber applied, from the
//! fan-out's own histogram) for one discovery and for a batch of ten, to
//! 1 to 256 subscribers.

use std::sync::Arc;
use std::time::{Duration, Instant};

use criterion::{BatchSize, BenchmarkId, Criterion, criterion_group};
use gymfleet::learning::fanout::{FanOut, Replica};
use gymfleet::learning::{Discovery, DiscoveryId, Knowledge, Strategy, WorkerId};

#[path = "inputs/discoveries.rs"]
mod discoveries;
use discoveries::{discovery, draft};

/// Adds `n_subscribers` replicas, which the fan-out applies each batch to.
fn replicate(fanout: &mut FanOut, n_subscribers: usize) -> Vec<Replica> {
    (0..n_subscribers)
        .map(|_| fanout.replicate(Knowledge::new(Strategy::Consensus)))
        .collect()
}

/// Publishes one batch and waits until every subscriber applied it;
/// returns the wall time.
async fn propagate_once(fanout: &mut FanOut, batch: Arc<[Arc<Discovery>]>) -> Duration {
    let started = Instant::now();
    fanout.publish(batch, tokio::time::Instant::now(), || {
        Arc::new(Knowledge::new(Strategy::Consensus))
    });
    while fanout.outstanding() > 0 {
        fanout.wait_for_acks(Duration::from_secs(5)).await;
    }
    started.elapsed()
}

fn propagation_report() {
    println!("propagation latency, accepted to last subscriber applied (microseconds, 2,000 runs)");
    println!("  subscribers  batch    p50    p99    max");
    for n_subscribers in [1, 4, 16, 64, 256] {
        for batch_len in [1u64, 10] {
            let runtime = tokio::runtime::Builder::new_multi_thread()
                .enable_all()
                .build()
                .expect("a runtime");
            // The source runs as a task on the runtime, as the coordinator
            // does.
            let fanout = runtime.block_on(async move {
                let source = tokio::spawn(async move {
                    let mut fanout = FanOut::new(64);
                    let mut replicas = replicate(&mut fanout, n_subscribers);
                    for run in 0..2_200u64 {
                        let batch: Arc<[Arc<Discovery>]> = (0..batch_len)
                            .map(|index| Arc::new(discovery(run * 10 + index, index, run % 3)))
                            .collect();
                        if run == 200 {
                            // The first runs warm up threads and allocations.
                            fanout = FanOut::new(64);
                            replicas = replicate(&mut fanout, n_subscribers);
                        }
                        propagate_once(&mut fanout, batch).await;
                    }
                    drop(replicas);
                    fanout
                });
                source.await.expect("the source task ends")
            });
            let latency = fanout.latency();
            println!(
                "  {n_subscribers:>11}  {batch_len:>5}  {:>5}  {:>5}  {:>5}",
                latency.value_at_quantile(0.5),
                latency.value_at_quantile(0.99),
                latency.max()
            );
        }
    }
}

fn benches(criterion: &mut Criterion) {
    let template = draft(1, 2);
    let mut sequence = 0;
    // A test-only switch: `GYMFLEET_BENCH_SLOWDOWN=learning/create_discovery`
    // creates two discoveries per iteration, a 2x regression for checking
    // the gate.
    let doubled = slowed_down("learning/create_discovery");
    criterion.bench_function("learning/create_discovery", |bencher| {
        bencher.iter(|| {
            if doubled {
                sequence += 1;
                let _ = std::hint::black_box(
                    template
                        .clone()
                        .finish(DiscoveryId::now(WorkerId(1), sequence)),
                );
            }
            sequence += 1;
            template
                .clone()
                .finish(DiscoveryId::now(WorkerId(1), sequence))
                .expect("valid")
        })
    });

    let conflicting: Vec<Discovery> = (0..8).map(|index| discovery(index, 0, index % 3)).collect();
    let topic = conflicting[0].topic().clone();
    let mut group = criterion.benchmark_group("learning/resolve_8_conflicting");
    for strategy in Strategy::ALL {
        group.bench_function(format!("{strategy:?}"), |bencher| {
            bencher.iter_batched(
                || conflicting.clone(),
                |discoveries| {
                    let mut knowledge = Knowledge::new(strategy);
                    for discovery in discoveries {
                        knowledge.insert(discovery);
                    }
                    knowledge.belief(&topic)
                },
                BatchSize::SmallInput,
            )
        });
    }
    group.finish();

    let mut group = criterion.benchmark_group("learning/insert_into_knowledge");
    for n_topics in [10u64, 1_000, 100_000] {
        let mut knowledge = Knowledge::new(Strategy::HighestConfidence);
        for index in 0..n_topics {
            knowledge.insert(discovery(index, index, index % 3));
        }
        let mut next = n_topics;
        group.bench_with_input(
            BenchmarkId::from_parameter(n_topics),
            &n_topics,
            |bencher, n_topics| {
                bencher.iter(|| {
                    next += 1;
                    knowledge.insert(discovery(next, next % n_topics, next % 3))
                })
            },
        );
    }
    group.finish();

    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .expect("a runtime");
    let mut group = criterion.benchmark_group("learning/propagate");
    for (n_subscribers, batch_len) in [(64usize, 1u64), (64, 10), (1, 1), (256, 1)] {
        let mut fanout = FanOut::new(64);
        let _replicas = replicate(&mut fanout, n_subscribers);
        let mut fanout = Some(fanout);
        let mut run = 0u64;
        let name = format!("{n_subscribers}_subscribers_batch_{batch_len}");
        group.bench_function(name, |bencher| {
            bencher.iter_custom(|iterations| {
                let mut moved = fanout
                    .take()
                    .expect("the fan-out is returned after each sample");
                let first_run = run;
                run += iterations;
                let (returned, total) = runtime.block_on(async move {
                    tokio::spawn(async move {
                        let mut total = Duration::ZERO;
                        for run in first_run..first_run + iterations {
                            let batch: Arc<[Arc<Discovery>]> = (0..batch_len)
                                .map(|index| Arc::new(discovery(run * 10 + index, index, run % 3)))
                                .collect();
                            total += propagate_once(&mut moved, batch).await;
                        }
                        (moved, total)
                    })
                    .await
                    .expect("the source task ends")
                });
                fanout = Some(returned);
                total
            })
        });
    }
    group.finish();
}

criterion_group!(learning, benches);

/// Whether `GYMFLEET_BENCH_SLOWDOWN` names benchmark `id`; says so on
/// stderr when it does.
fn slowed_down(id: &str) -> bool {
    let slowed = std::env::var("GYMFLEET_BENCH_SLOWDOWN").is_ok_and(|named| named == id);
    if slowed {
        eprintln!("warning: GYMFLEET_BENCH_SLOWDOWN is set: `{id}` does its work twice");
    }
    slowed
}

fn main() {
    // `--list` prints names only; `GYMFLEET_BENCH_REPORTS=0` skips the
    // printed report, for a short run of criterion's measurements alone.
    let reports = std::env::var_os("GYMFLEET_BENCH_REPORTS").is_none_or(|value| value != "0");
    if reports && !std::env::args().any(|argument| argument == "--list") {
        propagation_report();
    }
    learning();
    Criterion::default().configure_from_args().final_summary();
}
