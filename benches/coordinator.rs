//! The coordinator's costs, printed as a table: experiments per second
//! with 1 to 16 workers on zero-latency simulated servers, where the time
//! of a run goes (gym calls against the rest), propagation latency during
//! a full run, and the memory of a million discoveries in knowledge.
//!
//! Run with `cargo bench --bench coordinator`.

use std::time::{Duration, Instant};

use gymfleet::coordinator::{
    Experiment, ExperimentId, Explorer, RunConfig, Script, StartState, Worker, run,
};
use gymfleet::gym::sim::{SimConfig, SimServer};
use gymfleet::gym::wire::{Action, Endpoint, InitializeRequest, Key};
use gymfleet::gym::{ClientConfig, GymClient};
use gymfleet::learning::{
    DiscoveryDraft, DiscoveryId, Knowledge, Payload, Priority, Strategy, Topic, WorkerId,
};

const RUN_SECONDS: u64 = 4;

fn main() {
    if std::env::args().any(|argument| argument == "--list") {
        return;
    }
    // The runtime `gymfleet run` drives the coordinator on.
    let runtime = gymfleet::coordinator::runtime().expect("a runtime");
    runtime.block_on(async {
        bare_client().await;
        worker_overhead().await;
        println!();
        println!("full runs, {RUN_SECONDS} s each, zero-latency simulated servers, not stopping at the goal");
        println!("  workers  experiments/s  actions/s  in gym calls  propagation p50/p99 (us)");
        for n_workers in [1, 2, 4, 8, 16] {
            full_run(n_workers, Pace::Free).await;
        }
        println!("the same, workers in lockstep rounds (the default on simulated servers)");
        for n_workers in [4, 16] {
            full_run(n_workers, Pace::Lockstep).await;
        }
    });
    println!();
    knowledge_memory();
}

/// One client pressing a key in a loop: the floor for a run's actions.
async fn bare_client() {
    let server = start_sim().await;
    let client = GymClient::new(&server.url(), ClientConfig::default()).expect("a client");
    client
        .initialize(&InitializeRequest::default())
        .await
        .expect("initialize");
    let press = Action::press([Key::A]).expect("one key");
    let n_actions = 20_000;
    let started = Instant::now();
    for _ in 0..n_actions {
        client.act(&press).await.expect("an action");
    }
    let per_action = started.elapsed() / n_actions;
    println!("bare client: {per_action:?} per action ({n_actions} actions, one connection)");
}

/// The coordinator's cost per action over the bare client: the same
/// fresh start and the same 100 key presses, through a `Worker` running
/// an experiment (which observes and checks every state) and through bare
/// client calls, interleaved on one zero-latency server.
async fn worker_overhead() {
    const ACTIONS: usize = 100;
    const ROUNDS: usize = 60;
    let server = start_sim().await;
    let client = GymClient::new(&server.url(), ClientConfig::default()).expect("a client");
    let worker = Worker::new(WorkerId(0), client.clone());
    let press = Action::press([Key::A]).expect("one key");
    let experiment = Experiment {
        id: ExperimentId(0),
        start: StartState::Fresh,
        script: Script::parse(&format!("a*{ACTIONS}")).expect("a script"),
    };
    let (mut bare, mut through_worker) = (Vec::new(), Vec::new());
    for _ in 0..ROUNDS {
        let started = Instant::now();
        client
            .initialize(&InitializeRequest::default())
            .await
            .expect("initialize");
        for _ in 0..ACTIONS {
            client.act(&press).await.expect("an action");
        }
        bare.push(started.elapsed());

        let started = Instant::now();
        let outcome = worker
            .run(&experiment)
            .await
            .expect("the experiment starts");
        assert!(outcome.error.is_none(), "{:?}", outcome.error);
        through_worker.push(started.elapsed());
    }
    bare.sort();
    through_worker.sort();
    let per_action = |samples: &[Duration]| samples[samples.len() / 2] / ACTIONS as u32;
    let (bare, through_worker) = (per_action(&bare), per_action(&through_worker));
    println!(
        "worker vs bare client, fresh start + {ACTIONS} presses, median of {ROUNDS}: \
         {through_worker:?} / {bare:?} per action = {:.3}",
        through_worker.as_secs_f64() / bare.as_secs_f64()
    );
    server.shutdown().await.expect("the sim stops");
}

/// How a full run's workers go.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Pace {
    /// Each worker gets its next experiment as soon as it is free.
    Free,
    /// Workers go in rounds (`RunConfig::lockstep`).
    Lockstep,
}

async fn full_run(n_workers: usize, pace: Pace) {
    let mut servers = Vec::new();
    let mut clients = Vec::new();
    for _ in 0..n_workers {
        let server = start_sim().await;
        clients.push(GymClient::new(&server.url(), ClientConfig::default()).expect("a client"));
        servers.push(server);
    }
    let watched = clients.clone();
    let data_dir =
        std::env::temp_dir().join(format!("gymfleet-bench-{}-{n_workers}", std::process::id()));
    let _ = std::fs::remove_dir_all(&data_dir);
    let config = RunConfig {
        duration: Duration::from_secs(RUN_SECONDS),
        data_dir: data_dir.clone(),
        stop_at_goal: false,
        lockstep: pace == Pace::Lockstep,
        ..RunConfig::default()
    };
    let started = Instant::now();
    let report = run(
        clients,
        config,
        Box::new(Explorer::default()),
        std::future::pending(),
    )
    .await
    .expect("the run completes");
    let elapsed = started.elapsed();

    // Time spent inside gym calls, summed over workers, against the
    // workers' wall time: the rest is the coordinator and the store.
    let in_calls: f64 = watched
        .iter()
        .flat_map(|client| {
            Endpoint::ALL.iter().map(move |endpoint| {
                let histogram = client.latencies().snapshot(*endpoint);
                histogram.mean() * histogram.len() as f64 / 1e6
            })
        })
        .sum();
    let share = in_calls / (elapsed.as_secs_f64() * n_workers as f64);
    println!(
        "  {n_workers:>7}  {:>13.0}  {:>9.0}  {:>11.0}%  {}/{}",
        report.experiments as f64 / elapsed.as_secs_f64(),
        report.actions as f64 / elapsed.as_secs_f64(),
        share * 100.0,
        report.propagation_us.p50,
        report.propagation_us.p99
    );
    for server in servers {
        server.shutdown().await.expect("the sim stops");
    }
    let _ = std::fs::remove_dir_all(&data_dir);
}

/// Resident memory before and after a million discoveries on distinct
/// topics.
fn knowledge_memory() {
    let before = resident_bytes();
    let mut knowledge = Knowledge::new(Strategy::HighestConfidence);
    for sequence in 0..1_000_000u64 {
        let draft = DiscoveryDraft {
            topic: Topic::tile(
                "VIRIDIAN FOREST",
                (sequence % 1000) as i32,
                (sequence / 1000) as i32,
            ),
            payload: Payload::Tile {
                blocked: sequence % 3 == 0,
            },
            confidence: 0.9,
            success_rate: 1.0,
            samples: 1,
            priority: Priority::Normal,
            checkpoint: None,
        };
        let id = DiscoveryId {
            wall_ms: 1_700_000_000_000,
            worker: WorkerId(0),
            sequence,
        };
        knowledge.insert(draft.finish(id).expect("valid"));
    }
    let after = resident_bytes();
    println!(
        "knowledge of 1,000,000 discoveries (tiles, highest confidence): {} topics, {:.0} MiB resident, {:.0} bytes each",
        knowledge.len(),
        (after - before) as f64 / (1024.0 * 1024.0),
        (after - before) as f64 / 1e6
    );
}

fn resident_bytes() -> u64 {
    let statm = std::fs::read_to_string("/proc/self/statm").unwrap_or_default();
    let pages: u64 = statm
        .split_whitespace()
        .nth(1)
        .and_then(|pages| pages.parse().ok())
        .unwrap_or(0);
    pages * 4096
}

async fn start_sim() -> SimServer {
    SimServer::start(
        "127.0.0.1:0".parse().expect("an address"),
        SimConfig {
            seed: 1,
            ..SimConfig::default()
        },
    )
    .await
    .expect("the sim starts")
}
