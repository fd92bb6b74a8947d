//! A run: the coordinator loop over a fleet of servers.
//!
//! # Design
//!
//! One task, the coordinator, owns all run state: knowledge, the
//! propagation queue, the fan-out, the store, checkpoints, claims and the
//! report. Every worker has two tasks of its own: an executor that runs the
//! experiments the coordinator sends it (one at a time, through a channel
//! of one) and saves a checkpoint after each. It holds the worker's
//! replica of the knowledge, to which the fan-out applies each published
//! batch as it publishes it.
//!
//! The coordinator is one `select!` that yields a closed `Event`: a worker
//! finished an experiment, the store writer made a batch durable or
//! failed, a worker's breaker changed (forwarded from the client's watch
//! channel by a small watcher task), a published batch was applied by
//! every replica, the timer ticked (propagation deadlines, the time limit,
//! parked workers), or shutdown. Nothing it waits on is unbounded: sends
//! to workers and to the store writer are `try_send` on channels known to
//! have room, and shutdown waits for in-flight experiments and the last
//! write at most `drain_timeout`.
//!
//! A discovery is accepted once the store has made it durable; only then
//! does it enter the propagation queue and knowledge. The store writer
//! takes one batch at a time, so discoveries that arrive during a commit
//! form the next one. An accepted batch goes out to the replicas before
//! the coordinator files it into its own knowledge, taking the states the
//! fan-out worked out for them, so that filing adds nothing to
//! propagation latency and every discovery is inserted once.
//!
//! In lockstep, workers go in rounds: every idle worker gets an
//! experiment, proposed in worker order from the same knowledge; the
//! outcomes are held until the last one arrives and are then taken in
//! worker order, their discoveries stamped with one time for the round;
//! the next round starts once they are all durable. Which worker finishes
//! first then changes nothing, so on servers that answer the same way a
//! seed gives the same run.

use std::collections::{BTreeMap, BTreeSet, HashMap, VecDeque};
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use serde::Serialize;
use tokio::sync::mpsc;
use tokio::task::JoinSet;
use tokio::time::Instant;

use crate::coordinator::experiment::{Experiment, ExperimentId, Outcome, StartState};
use crate::coordinator::store::{Store, StoreError};
use crate::coordinator::strategy::{Checkpoint, Situation, Strategy};
use crate::coordinator::worker::{StartError, Worker};
use crate::gym::GymClient;
use crate::gym::breaker::BreakerState;
use crate::gym::wire::{Endpoint, Position};
use crate::learning::fanout::FanOut;
use crate::learning::knowledge::Transition;
use crate::learning::{
    Discovery, DiscoveryId, Knowledge, Load, Policy, Propagation, Released, WorkerId,
};

/// Checkpoints kept per worker; older ones are forgotten.
const MAX_CHECKPOINTS: usize = 32;

/// How a run is shaped.
#[derive(Debug, Clone)]
pub struct RunConfig {
    /// The longest the run goes on.
    pub duration: Duration,
    /// Where the store lives.
    pub data_dir: PathBuf,
    /// How conflicting discoveries are resolved.
    pub resolution: crate::learning::Strategy,
    /// When accepted discoveries go out to the workers.
    pub policy: Policy,
    /// How long a worker whose server failed waits before trying again.
    pub park: Duration,
    /// Failures in a row after which a server counts as dead: it is then
    /// probed ten times less often, and when every server is dead the run
    /// ends.
    pub max_failures: u32,
    /// How long shutdown waits for experiments in flight.
    pub drain_timeout: Duration,
    /// Where live progress is published, if anyone watches.
    pub progress: Option<tokio::sync::watch::Sender<Progress>>,
    /// Whether reaching the goal ends the run; benchmarks of throughput
    /// keep going until the time limit.
    pub stop_at_goal: bool,
    /// Whether workers go in rounds, so that the run depends only on what
    /// the servers answer, not on when (see the module's documentation).
    /// A round waits for its slowest worker.
    pub lockstep: bool,
}

/// The run so far, published as it goes for live displays.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Progress {
    /// Experiments completed.
    pub experiments: u64,
    /// Discoveries accepted.
    pub discoveries: u64,
    /// Maps seen.
    pub maps: usize,
    /// Frames of the best route to the goal, once there is one.
    pub best_route_frames: Option<u64>,
    /// Workers parked because their server failed.
    pub parked: usize,
}

impl Default for RunConfig {
    fn default() -> RunConfig {
        RunConfig {
            duration: Duration::from_secs(30),
            data_dir: PathBuf::from("gymfleet-data"),
            resolution: crate::learning::Strategy::WeightedMerge,
            policy: Policy::Immediate,
            park: Duration::from_millis(500),
            max_failures: 5,
            drain_timeout: Duration::from_secs(10),
            progress: None,
            stop_at_goal: true,
            lockstep: false,
        }
    }
}

/// Why a run could not go on.
#[derive(Debug, thiserror::Error)]
pub enum RunError {
    /// The store failed; accepted discoveries could not be made durable.
    #[error(transparent)]
    Store(#[from] StoreError),
    /// The fleet is empty.
    #[error("the fleet has no server")]
    NoServers,
    /// The task that writes the store ended early (it panicked).
    #[error("the store writer stopped; accepted discoveries can no longer be made durable")]
    WriterStopped,
}

/// What a run did, for people and for JSON.
#[derive(Debug, Clone, Default, Serialize)]
pub struct Report {
    /// Why the run ended.
    pub ended: String,
    /// Experiments completed.
    pub experiments: u64,
    /// Actions taken.
    pub actions: u64,
    /// Discoveries accepted (durable).
    pub discoveries: u64,
    /// Discoveries loaded from the store at the start.
    pub resumed_discoveries: u64,
    /// Discoveries that disagreed with what their topic believed.
    pub conflicts: u64,
    /// Conflicts that changed a belief.
    pub resolved: u64,
    /// Maps seen by any worker.
    pub maps_visited: BTreeSet<String>,
    /// Whether a badge was earned.
    pub goal_reached: bool,
    /// The shortest known way from a fresh game to the goal.
    pub best_route: Option<BestRoute>,
    /// Propagation latency (accepted to last replica applied), in µs.
    pub propagation_us: Percentiles,
    /// The histogram behind `propagation_us`, for callers that need more
    /// than two percentiles.
    #[serde(skip)]
    pub propagation_histogram: Option<hdrhistogram::Histogram<u64>>,
    /// Per server.
    pub servers: Vec<ServerReport>,
}

/// A way to the goal.
#[derive(Debug, Clone, Serialize, PartialEq, Eq)]
pub struct BestRoute {
    /// The script from a fresh game.
    pub script: String,
    /// Frames it takes.
    pub frames: u64,
}

/// Median and 99th percentile.
#[derive(Debug, Clone, Copy, Default, Serialize)]
pub struct Percentiles {
    /// Samples.
    pub count: u64,
    /// Median.
    pub p50: u64,
    /// 99th percentile.
    pub p99: u64,
}

/// What one server saw.
#[derive(Debug, Clone, Default, Serialize)]
pub struct ServerReport {
    /// `host:port`.
    pub server: String,
    /// Latency per endpoint, in µs.
    pub latency_us: BTreeMap<String, Percentiles>,
    /// Failed calls.
    pub errors: u64,
    /// Experiments that could not start or ended on an error.
    pub failed_experiments: u64,
    /// Breaker state changes seen.
    pub breaker_events: u64,
}

/// What a worker's executor reports.
#[derive(Debug)]
enum Event {
    /// A worker finished (or could not start) an experiment.
    Finished {
        worker: usize,
        result: Box<Result<(Outcome, Option<Checkpoint>), StartError>>,
        lineage: Lineage,
    },
    /// The store made a batch of discoveries durable: they are accepted.
    Durable(Vec<Discovery>),
    /// The store failed; the run cannot accept anything more.
    StoreFailed(StoreError),
    /// A worker's circuit breaker changed state.
    BreakerChanged { worker: usize, state: BreakerState },
    /// Batches in flight were applied by every replica.
    Propagated,
    /// The periodic tick: parked workers may be due, policies may flush.
    Tick,
}

/// Where an experiment's start checkpoint came from, so the route to the
/// goal can be spelled from a fresh game.
#[derive(Debug, Clone, Default)]
struct Lineage {
    /// Script items from a fresh game to the checkpoint.
    path: Vec<String>,
    /// Frames they take.
    frames: u64,
    /// Distinct maps visited along the way.
    maps: BTreeSet<String>,
}

#[derive(Debug)]
struct WorkerSlot {
    client: GymClient,
    commands: mpsc::Sender<(Experiment, Lineage)>,
    busy: Option<Experiment>,
    parked_until: Option<Instant>,
    failures_in_a_row: u32,
    failed_experiments: u64,
    breaker_events: u64,
    next_sequence: u64,
    /// The store batch holding this worker's last discoveries; the worker
    /// gets its next experiment once that batch is durable, so that every
    /// proposal sees the knowledge its own last experiment produced.
    awaiting_batch: Option<u64>,
}

impl WorkerSlot {
    /// Turns what an outcome showed into discoveries with this worker's
    /// next ids, at `wall_ms` (a lockstep round's time) or now.
    fn stamp(
        &mut self,
        worker: WorkerId,
        outcome: &Outcome,
        wall_ms: Option<u64>,
    ) -> Vec<Discovery> {
        let mut discoveries = Vec::new();
        for draft in outcome.discoveries() {
            self.next_sequence += 1;
            let id = match wall_ms {
                Some(wall_ms) => DiscoveryId {
                    wall_ms,
                    worker,
                    sequence: self.next_sequence,
                },
                None => DiscoveryId::now(worker, self.next_sequence),
            };
            match draft.finish(id) {
                Ok(discovery) => discoveries.push(discovery),
                Err(error) => {
                    tracing::warn!(%error, %worker, "an outcome made an invalid discovery")
                }
            }
        }
        discoveries
    }
}

/// Runs the coordinator over `fleet` until the goal is reached, the time
/// limit passes, every server is dead, or `shutdown` completes.
pub async fn run(
    fleet: Vec<GymClient>,
    config: RunConfig,
    mut strategy: Box<dyn Strategy>,
    shutdown: impl std::future::Future<Output = ()>,
) -> Result<Report, RunError> {
    if fleet.is_empty() {
        return Err(RunError::NoServers);
    }
    let started = Instant::now();
    let deadline = started + config.duration;

    // Set-up: the store, what it already knows, the fan-out and the
    // workers' tasks.
    let store = Arc::new(open_store(config.data_dir.clone()).await?);
    let mut knowledge = Knowledge::new(config.resolution);
    let mut report = Report::default();
    for discovery in read_all(&store).await? {
        knowledge.insert(discovery);
        report.resumed_discoveries += 1;
    }
    let mut propagation = Propagation::new(config.policy.clone())
        .unwrap_or_else(|_| Propagation::new(Policy::Immediate).expect("immediate is valid"));
    let mut fanout = FanOut::new(64);
    let (events_tx, mut events) = mpsc::channel::<Event>(fleet.len() + 1);
    let mut tasks = JoinSet::new();

    // The store writer: one batch at a time, so that discoveries found
    // while a batch is being made durable gather into the next one (group
    // commit), and workers never wait for the disk.
    let (writes, mut write_inbox) = mpsc::channel::<Vec<Discovery>>(1);
    {
        let store = Arc::clone(&store);
        let events_tx = events_tx.clone();
        tasks.spawn(async move {
            while let Some(batch) = write_inbox.recv().await {
                let event = match append(&store, batch.clone()).await {
                    Ok(()) => Event::Durable(batch),
                    Err(error) => Event::StoreFailed(error),
                };
                if events_tx.send(event).await.is_err() {
                    return;
                }
            }
        });
    }
    let mut staged: Vec<Discovery> = Vec::new();
    // Accepted, queued for propagation, not yet in the coordinator's
    // knowledge: filed after this iteration's publish (see `file`).
    let mut unfiled: Vec<Discovery> = Vec::new();
    let mut write_in_flight = false;
    // Batches handed to the writer, and batches it made durable.
    let mut batches_sent = 0u64;
    let mut batches_durable = 0u64;

    let mut workers = Vec::with_capacity(fleet.len());
    for (worker_idx, client) in fleet.into_iter().enumerate() {
        let (commands, mut inbox) = mpsc::channel::<(Experiment, Lineage)>(1);
        let worker = Worker::new(WorkerId(worker_idx as u32), client.clone());
        let events_tx = events_tx.clone();
        // The worker's copy of the knowledge, which the fan-out keeps up to
        // date; the executor holds it for as long as the worker runs.
        let replica = fanout.replicate(knowledge.clone());
        tasks.spawn(async move {
            let _replica = replica;
            while let Some((experiment, lineage)) = inbox.recv().await {
                let result = execute(&worker, &experiment).await;
                let finished = Event::Finished {
                    worker: worker_idx,
                    result: Box::new(result),
                    lineage,
                };
                if events_tx.send(finished).await.is_err() {
                    return;
                }
            }
        });
        workers.push(WorkerSlot {
            client,
            commands,
            busy: None,
            parked_until: None,
            failures_in_a_row: 0,
            failed_experiments: 0,
            breaker_events: 0,
            next_sequence: 0,
            awaiting_batch: None,
        });
    }
    // Breaker changes arrive as events. The watchers wait on channels the
    // clients own, which may outlive the run, so they are aborted at the
    // end rather than joined.
    let mut watchers = JoinSet::new();
    for (worker_idx, slot) in workers.iter().enumerate() {
        let mut breaker = slot.client.breaker_state();
        let events_tx = events_tx.clone();
        watchers.spawn(async move {
            while breaker.changed().await.is_ok() {
                let state = *breaker.borrow_and_update();
                let changed = Event::BreakerChanged {
                    worker: worker_idx,
                    state,
                };
                if events_tx.send(changed).await.is_err() {
                    return;
                }
            }
        });
    }
    drop(events_tx);

    // Save states live on the server that made them: one list per worker.
    let mut checkpoints: Vec<VecDeque<Checkpoint>> = vec![VecDeque::new(); workers.len()];
    let mut lineages: BTreeMap<String, Lineage> = BTreeMap::new();
    let mut claims: BTreeMap<usize, (String, Position)> = BTreeMap::new();
    let mut next_experiment = 0u64;
    let mut requeued: Vec<Experiment> = Vec::new();
    let mut ticker = tokio::time::interval(Duration::from_millis(20));
    ticker.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    tokio::pin!(shutdown);

    // The loop: dispatch to idle workers, then wait for the next event.
    let mut round = Round::new(config.lockstep);
    let mut largest_batch = 0;
    let ended = loop {
        let now = Instant::now();
        // In lockstep a round's outcomes are all taken before the goal
        // ends the run, so that the best route is the round's best.
        if report.goal_reached && config.stop_at_goal && round.ready.is_empty() {
            break "goal reached".to_owned();
        }
        if now >= deadline {
            break format!("time limit of {:?} reached", config.duration);
        }
        let all_dead = workers
            .iter()
            .all(|slot| slot.failures_in_a_row >= config.max_failures);
        if all_dead {
            break format!("every server failed {} times in a row", config.max_failures);
        }

        let may_dispatch = !round.lockstep
            || (round.is_over()
                && staged.is_empty()
                && !write_in_flight
                && workers
                    .iter()
                    .all(|slot| slot.busy.is_none() && slot.awaiting_batch.is_none()));
        for (worker_idx, slot) in workers.iter_mut().enumerate() {
            let parked = slot.parked_until.is_some_and(|until| until > now);
            if !may_dispatch || slot.busy.is_some() || parked || slot.awaiting_batch.is_some() {
                continue;
            }
            let experiment = match requeued.pop() {
                Some(experiment) => experiment,
                None => {
                    let claimed: BTreeSet<(String, Position)> = claims
                        .iter()
                        .filter(|(claimer, _)| **claimer != worker_idx)
                        .map(|(_, target)| target.clone())
                        .collect();
                    let proposal = strategy.propose(Situation {
                        worker: WorkerId(worker_idx as u32),
                        experiment: ExperimentId(next_experiment),
                        knowledge: &knowledge,
                        checkpoints: checkpoints[worker_idx].make_contiguous(),
                        claimed: &claimed,
                    });
                    next_experiment += 1;
                    match proposal.target {
                        Some(target) => claims.insert(worker_idx, target),
                        None => claims.remove(&worker_idx),
                    };
                    proposal.experiment
                }
            };
            let lineage = match &experiment.start {
                StartState::Fresh => Lineage::default(),
                StartState::Saved(state_file) => {
                    lineages.get(state_file).cloned().unwrap_or_default()
                }
            };
            // The channel holds one and an idle worker's is empty.
            if slot
                .commands
                .try_send((experiment.clone(), lineage))
                .is_ok()
            {
                slot.busy = Some(experiment);
                round.dispatched();
            }
        }

        let in_flight = fanout.outstanding() > 0;
        let event = match round.ready.pop_front() {
            Some(event) => Some(event),
            None => {
                let received = tokio::select! {
                    event = events.recv() => event,
                    _ = fanout.wait_for_acks(Duration::MAX), if in_flight => Some(Event::Propagated),
                    _ = ticker.tick() => Some(Event::Tick),
                    () = &mut shutdown => break "stopped by the user".to_owned(),
                };
                match received {
                    Some(finished @ Event::Finished { worker, .. }) if round.lockstep => {
                        round.hold(worker, finished);
                        continue;
                    }
                    received => received,
                }
            }
        };

        match event {
            Some(Event::BreakerChanged { worker, state }) => {
                let slot = &mut workers[worker];
                slot.breaker_events += 1;
                tracing::info!(server = %slot.client.server(), ?state, "breaker changed");
            }
            // Completed batches were collected by the wait; the tick only
            // wakes the loop.
            Some(Event::Propagated | Event::Tick) => {}
            Some(Event::StoreFailed(error)) => return Err(error.into()),
            Some(Event::Durable(batch)) => {
                write_in_flight = false;
                batches_durable += 1;
                for slot in &mut workers {
                    if slot
                        .awaiting_batch
                        .is_some_and(|batch| batch <= batches_durable)
                    {
                        slot.awaiting_batch = None;
                    }
                }
                accept(&mut propagation, &mut report, &mut unfiled, batch);
            }
            Some(Event::Finished {
                worker,
                result,
                lineage,
            }) => {
                let workers_len = workers.len();
                let slot = &mut workers[worker];
                let experiment = slot.busy.take();
                let accepted = match *result {
                    Err(error) => {
                        tracing::warn!(server = %slot.client.server(), error = %error, "experiment could not start");
                        slot.failures_in_a_row += 1;
                        slot.failed_experiments += 1;
                        slot.parked_until =
                            Some(Instant::now() + park_for(&config, slot.failures_in_a_row));
                        // Nothing was pressed, so another worker may run it, if
                        // it starts fresh (a save state lives on its server
                        // only) and it is the experiment the server's first
                        // failure cut short: later ones are probes of a server
                        // known to be failing, and requeueing every one would
                        // flood the healthy workers.
                        let runnable_anywhere = experiment
                            .as_ref()
                            .is_some_and(|experiment| experiment.start == StartState::Fresh);
                        let first_failure = slot.failures_in_a_row == 1;
                        if runnable_anywhere && first_failure && requeued.len() < workers_len {
                            requeued.extend(experiment);
                        }
                        Vec::new()
                    }
                    Ok((outcome, checkpoint)) => {
                        report.experiments += 1;
                        report.actions += outcome.steps.len() as u64;
                        report.maps_visited.insert(outcome.start.location.clone());
                        for observation in &outcome.observations {
                            if !report.maps_visited.contains(&observation.location) {
                                report.maps_visited.insert(observation.location.clone());
                            }
                        }
                        if outcome.error.is_some() {
                            slot.failures_in_a_row += 1;
                            slot.failed_experiments += 1;
                            slot.parked_until =
                                Some(Instant::now() + park_for(&config, slot.failures_in_a_row));
                        } else {
                            slot.failures_in_a_row = 0;
                        }
                        let path_frames = lineage.frames;
                        let mut full_path = lineage.path;
                        full_path.extend(outcome.steps.iter().map(ToString::to_string));
                        if let Some(steps) = outcome.steps_to_goal() {
                            report.goal_reached = true;
                            let mut route = full_path.clone();
                            route.truncate(full_path.len() - outcome.steps.len() + steps);
                            let frames = path_frames
                                + outcome.steps[..steps]
                                    .iter()
                                    .map(|step| step.frames())
                                    .sum::<u64>();
                            let better = report
                                .best_route
                                .as_ref()
                                .is_none_or(|best| frames < best.frames);
                            if better {
                                report.best_route = Some(BestRoute {
                                    script: route.join(" "),
                                    frames,
                                });
                            }
                        }
                        if let Some(mut checkpoint) = checkpoint {
                            let mut maps = lineage.maps;
                            maps.insert(outcome.start.location.clone());
                            maps.extend(outcome.observations.iter().map(|o| o.location.clone()));
                            checkpoint.depth = maps.len();
                            lineages.insert(
                                checkpoint.state_file.clone(),
                                Lineage {
                                    path: full_path,
                                    frames: path_frames + outcome.frames,
                                    maps,
                                },
                            );
                            let own = &mut checkpoints[worker];
                            if own.len() == MAX_CHECKPOINTS
                                && let Some(oldest) = own.pop_front()
                            {
                                lineages.remove(&oldest.state_file);
                            }
                            own.push_back(checkpoint);
                        }
                        slot.stamp(WorkerId(worker as u32), &outcome, round.wall_ms())
                    }
                };
                claims.remove(&worker);

                // Accepted means durable: staged until the writer says so.
                if !accepted.is_empty() {
                    // Staged discoveries go out in the next batch sent.
                    workers[worker].awaiting_batch = Some(batches_sent + 1);
                }
                staged.extend(accepted);
            }
            None => {}
        }
        if !write_in_flight && !staged.is_empty() {
            match writes.try_send(std::mem::take(&mut staged)) {
                Ok(()) => {
                    write_in_flight = true;
                    batches_sent += 1;
                }
                Err(mpsc::error::TrySendError::Full(batch)) => staged = batch,
                Err(mpsc::error::TrySendError::Closed(_)) => return Err(RunError::WriterStopped),
            }
        }

        // Propagation: whatever the policy releases goes to every replica.
        let load = Load {
            queue_depth: propagation.pending(),
            workers: workers.len(),
            unhealthy_workers: workers
                .iter()
                .filter(|slot| {
                    slot.parked_until
                        .is_some_and(|until| until > Instant::now())
                })
                .count(),
        };
        let published = publish(
            &mut fanout,
            &knowledge,
            propagation.poll_timed(Instant::now(), load),
        );
        let published_len = published.as_ref().map(|published| published.batch.len());
        file(&mut knowledge, &mut report, &mut unfiled, published);
        fanout.collect_acks();
        // Replicas grow here, after a batch, rather than in the publish of
        // the batch that crosses their tables' size.
        if let Some(published_len) = published_len {
            largest_batch = largest_batch.max(published_len);
            fanout.make_room(2 * largest_batch);
        }
    };

    // Shutdown: stop dispatching, let experiments in flight finish (within
    // the drain timeout), accept their discoveries, send what is queued.
    let drain_until = Instant::now() + config.drain_timeout;
    let mut taken = round.take_all();
    while workers.iter().any(|slot| slot.busy.is_some()) || write_in_flight || !taken.is_empty() {
        let event = match taken.pop_front() {
            Some(event) => event,
            None => match tokio::time::timeout_at(drain_until, events.recv()).await {
                Ok(Some(event)) => event,
                _ => break,
            },
        };
        match event {
            Event::Finished { worker, result, .. } => {
                workers[worker].busy = None;
                let Ok((outcome, _)) = *result else { continue };
                report.experiments += 1;
                report.actions += outcome.steps.len() as u64;
                staged.extend(workers[worker].stamp(
                    WorkerId(worker as u32),
                    &outcome,
                    round.wall_ms(),
                ));
            }
            Event::Durable(batch) => {
                write_in_flight = false;
                accept(&mut propagation, &mut report, &mut unfiled, batch);
                // Out at once: nothing is dispatched any more, so holding
                // the batch for the last experiments would only delay it.
                let published = publish(&mut fanout, &knowledge, propagation.drain_timed());
                file(&mut knowledge, &mut report, &mut unfiled, published);
            }
            Event::StoreFailed(error) => return Err(error.into()),
            Event::BreakerChanged { worker, .. } => workers[worker].breaker_events += 1,
            Event::Propagated | Event::Tick => {}
        }
    }
    if !staged.is_empty() && !write_in_flight {
        let batch = std::mem::take(&mut staged);
        append(&store, batch.clone()).await?;
        accept(&mut propagation, &mut report, &mut unfiled, batch);
    }
    drop(writes);
    let published = publish(&mut fanout, &knowledge, propagation.drain_timed());
    file(&mut knowledge, &mut report, &mut unfiled, published);
    while fanout.outstanding() > 0 && Instant::now() < drain_until {
        fanout.wait_for_acks(Duration::from_millis(100)).await;
    }
    let experiments_before = store_progress(&store).await.unwrap_or(0);
    set_progress(&store, experiments_before + report.experiments).await?;

    report.ended = ended;
    // Batches applied since the last wait are completed but not recorded.
    fanout.collect_acks();
    let latency = fanout.latency();
    report.propagation_us = percentiles(latency);
    report.propagation_histogram = Some(latency.clone());
    report.servers = workers
        .iter()
        .map(|slot| ServerReport {
            server: slot.client.server().to_owned(),
            latency_us: Endpoint::ALL
                .iter()
                .map(|endpoint| {
                    (
                        endpoint.name().to_owned(),
                        percentiles(&slot.client.latencies().snapshot(*endpoint)),
                    )
                })
                .filter(|(_, percentiles)| percentiles.count > 0)
                .collect(),
            errors: Endpoint::ALL
                .iter()
                .map(|endpoint| slot.client.latencies().errors(*endpoint))
                .sum(),
            failed_experiments: slot.failed_experiments,
            breaker_events: slot.breaker_events,
        })
        .collect();

    // Every task ends once its channel closes: the executors when their
    // command senders drop.
    drop(workers);
    drop(fanout);
    drop(events);
    watchers.abort_all();
    while tasks.join_next().await.is_some() {}
    while watchers.join_next().await.is_some() {}
    Ok(report)
}

/// The current lockstep round: outcomes held until the round's last one
/// arrives, then taken in worker order.
#[derive(Debug)]
struct Round {
    lockstep: bool,
    /// Experiments sent out this round.
    size: usize,
    /// Outcomes that arrived, by worker.
    held: BTreeMap<usize, Event>,
    /// Outcomes of a complete round, in worker order, to take.
    ready: VecDeque<Event>,
    /// The round's time, in wall-clock milliseconds, which its discoveries
    /// carry: one per round, always later than the last.
    wall_ms: u64,
}

impl Round {
    fn new(lockstep: bool) -> Round {
        Round {
            lockstep,
            size: 0,
            held: BTreeMap::new(),
            ready: VecDeque::new(),
            wall_ms: 0,
        }
    }

    /// Whether every outcome of the round has been taken.
    fn is_over(&self) -> bool {
        self.held.is_empty() && self.ready.is_empty()
    }

    /// Counts an experiment sent out; the first of a round starts it.
    fn dispatched(&mut self) {
        if !self.lockstep {
            return;
        }
        if self.size == 0 {
            let now_ms = DiscoveryId::now(WorkerId(0), 0).wall_ms;
            self.wall_ms = now_ms.max(self.wall_ms + 1);
        }
        self.size += 1;
    }

    /// Holds an outcome; the round's last releases them all, in worker
    /// order.
    fn hold(&mut self, worker: usize, finished: Event) {
        self.held.insert(worker, finished);
        if self.held.len() == self.size {
            self.ready
                .extend(std::mem::take(&mut self.held).into_values());
            self.size = 0;
        }
    }

    /// Everything held or ready, in worker order, ending the round.
    fn take_all(&mut self) -> VecDeque<Event> {
        let mut taken = std::mem::take(&mut self.ready);
        taken.extend(std::mem::take(&mut self.held).into_values());
        self.size = 0;
        taken
    }

    /// The time a round's discoveries carry, in lockstep.
    fn wall_ms(&self) -> Option<u64> {
        self.lockstep.then_some(self.wall_ms)
    }
}

/// Takes in a batch the store made durable: queued for propagation, and
/// to be filed into the coordinator's knowledge.
///
/// Propagation latency counts from here. Filing waits until the batch has
/// gone out, so that it is not on the way to the replicas, and so that it
/// can take the states the fan-out worked out for them.
fn accept(
    propagation: &mut Propagation,
    report: &mut Report,
    unfiled: &mut Vec<Discovery>,
    mut batch: Vec<Discovery>,
) {
    let now = Instant::now();
    // In id order, a topic's newcomers mostly go after its last
    // contributor, the cheapest place to put them; the order changes
    // nothing else, as knowledge converges whatever the order.
    batch.sort_unstable_by_key(Discovery::id);
    for discovery in &batch {
        propagation.accept(discovery.clone(), now);
    }
    report.discoveries += batch.len() as u64;
    tracing::debug!(
        accepted = batch.len(),
        total = report.discoveries,
        "discoveries accepted"
    );
    unfiled.extend(batch);
}

/// Files accepted discoveries into the coordinator's knowledge and counts
/// their conflicts. Those that just went out in `published` take the states the
/// fan-out's copy recorded when the coordinator's knowledge holds the
/// states that copy started from, as it does while the policy sends
/// everything at once; the rest are inserted.
fn file(
    knowledge: &mut Knowledge,
    report: &mut Report,
    unfiled: &mut Vec<Discovery>,
    published: Option<Published>,
) {
    let traced = published.as_ref().and_then(|published| {
        let transitions = published.transitions.as_ref()?;
        let by_id: HashMap<DiscoveryId, usize> = published
            .batch
            .iter()
            .enumerate()
            .map(|(discovery_idx, discovery)| (discovery.id(), discovery_idx))
            .collect();
        Some((&published.batch, transitions, by_id))
    });
    for discovery in unfiled.drain(..) {
        let went_out = traced.as_ref().and_then(|(batch, transitions, by_id)| {
            let &discovery_idx = by_id.get(&discovery.id())?;
            Some((&batch[discovery_idx], &transitions[discovery_idx]))
        });
        let insertion = match went_out {
            Some((shared, transition)) => knowledge.insert_as(shared, transition),
            None => knowledge.insert(discovery),
        };
        report.conflicts += u64::from(insertion.conflicts);
        report.resolved += u64::from(insertion.conflicts && insertion.belief_changed);
    }
}

/// How long a worker parks after `failures` failures in a row: `park`,
/// and ten times that once its server counts as dead, so that a dead
/// server is still probed now and then.
fn park_for(config: &RunConfig, failures: u32) -> Duration {
    match failures >= config.max_failures {
        true => config.park * 10,
        false => config.park,
    }
}

/// Runs an experiment, then saves a checkpoint where it ended.
async fn execute(
    worker: &Worker,
    experiment: &Experiment,
) -> Result<(Outcome, Option<Checkpoint>), StartError> {
    let outcome = worker.run(experiment).await?;
    if outcome.error.is_some() {
        return Ok((outcome, None));
    }
    let name = format!("w{}-{}", worker.id().0, experiment.id.0);
    let checkpoint = match worker.client().save_state(Some(&name)).await {
        Ok(saved) => Some(Checkpoint {
            state_file: saved.state_file,
            location: outcome.end().location.clone(),
            position: outcome.end().position,
            // The coordinator knows the lineage and sets the depth.
            depth: 0,
        }),
        Err(error) => {
            tracing::debug!(%error, "could not save a checkpoint");
            None
        }
    };
    Ok((outcome, checkpoint))
}

/// A batch as it went out, with what inserting each of it did to the
/// fan-out's copy of what it published.
#[derive(Debug)]
struct Published {
    batch: Arc<[Arc<Discovery>]>,
    transitions: Option<Arc<[Transition]>>,
}

/// Sends what the policy released to every replica; its propagation
/// latency counts from the acceptance of the earliest accepted of it.
fn publish(fanout: &mut FanOut, knowledge: &Knowledge, released: Released) -> Option<Published> {
    let origin = released.oldest?;
    let batch: Arc<[Arc<Discovery>]> = released.discoveries.into_iter().map(Arc::new).collect();
    // A lagging subscriber's snapshot must hold the batch, which the
    // coordinator's knowledge files only after publishing.
    let snapshot = || {
        let mut snapshot = knowledge.clone();
        for discovery in batch.iter() {
            snapshot.insert(Arc::clone(discovery));
        }
        Arc::new(snapshot)
    };
    let (_, transitions) = fanout.publish_traced(Arc::clone(&batch), origin, snapshot);
    Some(Published { batch, transitions })
}

fn percentiles(histogram: &hdrhistogram::Histogram<u64>) -> Percentiles {
    Percentiles {
        count: histogram.len(),
        p50: histogram.value_at_quantile(0.5),
        p99: histogram.value_at_quantile(0.99),
    }
}

async fn open_store(data_dir: PathBuf) -> Result<Store, StoreError> {
    tokio::task::spawn_blocking(move || Store::open(&data_dir))
        .await
        .expect("the store task does not panic")
}

async fn read_all(store: &Arc<Store>) -> Result<Vec<Discovery>, StoreError> {
    let store = Arc::clone(store);
    tokio::task::spawn_blocking(move || store.discoveries())
        .await
        .expect("the store task does not panic")
}

async fn append(store: &Arc<Store>, discoveries: Vec<Discovery>) -> Result<(), StoreError> {
    let store = Arc::clone(store);
    tokio::task::spawn_blocking(move || store.append(&discoveries))
        .await
        .expect("the store task does not panic")
}

async fn store_progress(store: &Arc<Store>) -> Result<u64, StoreError> {
    let store = Arc::clone(store);
    tokio::task::spawn_blocking(move || {
        store
            .progress("experiments")
            .map(|value| value.unwrap_or(0))
    })
    .await
    .expect("the store task does not panic")
}

async fn set_progress(store: &Arc<Store>, experiments: u64) -> Result<(), StoreError> {
    let store = Arc::clone(store);
    tokio::task::spawn_blocking(move || store.set_progress("experiments", experiments))
        .await
        .expect("the store task does not panic")
}

/// The report as a person reads it.
pub fn render(report: &Report) -> String {
    use std::fmt::Write as _;

    let mut text = String::new();
    let _ = writeln!(text, "run ended: {}", report.ended);
    let _ = writeln!(text, "experiments      {}", report.experiments);
    let _ = writeln!(text, "actions          {}", report.actions);
    let _ = writeln!(
        text,
        "discoveries      {} accepted ({} resumed from the store)",
        report.discoveries, report.resumed_discoveries
    );
    let _ = writeln!(
        text,
        "conflicts        {} ({} changed a belief)",
        report.conflicts, report.resolved
    );
    let maps: Vec<&str> = report.maps_visited.iter().map(String::as_str).collect();
    let _ = writeln!(text, "maps visited     {}", maps.join(", "));
    match &report.best_route {
        Some(route) => {
            let _ = writeln!(
                text,
                "goal             reached, best route {} frames: {}",
                route.frames, route.script
            );
        }
        None => {
            let _ = writeln!(text, "goal             not reached");
        }
    }
    let propagation = report.propagation_us;
    let _ = writeln!(
        text,
        "propagation      p50 {} us, p99 {} us ({} batches)",
        propagation.p50, propagation.p99, propagation.count
    );
    for server in &report.servers {
        let _ = writeln!(
            text,
            "server {}: {} errors, {} failed experiments, {} breaker changes",
            server.server, server.errors, server.failed_experiments, server.breaker_events
        );
        for (endpoint, latency) in &server.latency_us {
            let _ = writeln!(
                text,
                "  {endpoint:<11} p50 {:>6} us  p99 {:>6} us  ({} calls)",
                latency.p50, latency.p99, latency.count
            );
        }
    }
    text
}
