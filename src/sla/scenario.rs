//! Scenario files: a fleet, a workload and thresholds, as TOML.
//!
//! ```toml
//! description = "Four healthy servers; propagation stays fast."
//!
//! [fleet]
//! servers = 4
//! latency = { fixed = "1ms", jitter = { p50 = "100us", p99 = "1ms" } }
//!
//! [[fleet.fault]]
//! server = 2
//! at = "1s"
//! slow = "20ms"
//!
//! [workload]
//! kind = "run"
//! duration = "3s"
//! seed = 7
//!
//! [thresholds]
//! "propagation" = ["p99 < 1ms"]
//! "gym.action.overhead" = ["p99 < 2ms"]
//! "errors" = ["rate < 1%"]
//! "discoveries.lost" = ["== 0"]
//! ```
//!
//! Parsing checks everything it can before anything runs: unknown keys,
//! bad durations, unknown metrics, thresholds that do not fit their
//! metric. Every error names the file, line and column.

use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::ops::Range;
use std::path::{Path, PathBuf};
use std::time::Duration;

use serde::{Deserialize, Serialize};
use toml::Spanned;

use crate::coordinator::{Explorer, RunConfig};
use crate::gym::sim::{
    Jitter, LatencyModel, Scheduled, ScheduledFault, SimConfig, SimServer, Trigger,
};
use crate::gym::wire::Endpoint;
use crate::gym::{ClientConfig, GymClient};
use crate::learning::Strategy;
use crate::sla::metrics::{Check, Metric, Metrics, Summary, render_checks};
use crate::sla::propagation;
use crate::sla::threshold::{MetricKind, Threshold};
use crate::sla::units::parse_duration;

/// A parsed scenario file.
#[derive(Debug, Clone)]
pub struct Scenario {
    /// The name results are filed under: the file's path below the
    /// scenario directory, without extension.
    pub name: String,
    /// The file it was read from.
    pub path: PathBuf,
    /// What the scenario is about.
    pub description: String,
    /// The servers, for a workload that needs them.
    pub fleet: Option<Fleet>,
    /// What runs.
    pub workload: Workload,
    /// `(metric, threshold)` in file order.
    pub thresholds: Vec<(String, Threshold)>,
}

/// The servers a scenario starts.
#[derive(Debug, Clone, PartialEq)]
pub struct Fleet {
    /// How many.
    pub servers: usize,
    /// Simulated servers, or canned wiremock ones started by the caller.
    pub kind: FleetKind,
    /// How long simulated servers take to answer.
    pub latency: LatencyModel,
    /// Faults scheduled per server, by index from 0.
    pub faults: Vec<(usize, Scheduled)>,
}

/// What kind of server a fleet is made of.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum FleetKind {
    /// `gymfleet`'s simulated server, which the scenario starts itself.
    #[default]
    Sim,
    /// Canned answers from wiremock servers, which whoever runs the
    /// scenario starts and hands to [`Scenario::run_on`].
    Wiremock,
}

/// What a scenario runs.
#[derive(Debug, Clone, PartialEq)]
pub enum Workload {
    /// The coordinator, one worker per server, for `duration`.
    Run {
        /// How long.
        duration: Duration,
        /// Seeds the simulated world.
        seed: u64,
        /// How conflicts are resolved.
        strategy: Strategy,
        /// Whether the run ends once the goal is reached.
        stop_at_goal: bool,
    },
    /// The in-process propagation path alone.
    Propagation(propagation::Workload),
}

/// A scenario file that cannot be used.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{}:{line}:{column}: {message}", path.display())]
pub struct ScenarioError {
    /// The file.
    pub path: PathBuf,
    /// From 1.
    pub line: usize,
    /// From 1, in characters.
    pub column: usize,
    /// What was wrong and what was expected.
    pub message: String,
}

/// Why a scenario could not run to its verdict.
#[derive(Debug, thiserror::Error)]
pub enum RunError {
    /// The scenario needs servers it was not given.
    #[error("scenario `{name}`: {message}")]
    Fleet {
        /// The scenario.
        name: String,
        /// What is missing.
        message: String,
    },
    /// Something failed while it ran.
    #[error("scenario `{name}` failed to run")]
    Failed {
        /// The scenario.
        name: String,
        /// The cause.
        #[source]
        source: anyhow::Error,
    },
}

/// What one scenario run measured and whether its thresholds held.
#[derive(Debug, Clone)]
pub struct Outcome {
    /// The scenario's name.
    pub name: String,
    /// Its file.
    pub path: PathBuf,
    /// Every metric recorded.
    pub metrics: Metrics,
    /// Every threshold, checked.
    pub checks: Vec<Check>,
    /// How long the workload ran.
    pub elapsed: Duration,
}

/// A scenario's results, as written beside its plot.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Results {
    /// The scenario's name.
    pub scenario: String,
    /// Its file.
    pub file: String,
    /// Whether every threshold held.
    pub passed: bool,
    /// Whether the code measured was built with optimizations; timings
    /// from a debug build say little.
    pub optimized: bool,
    /// How long the workload ran, in seconds.
    pub elapsed_s: f64,
    /// Every threshold, checked.
    pub checks: Vec<Check>,
    /// Every metric, by name.
    pub metrics: BTreeMap<String, Summary>,
}

impl Outcome {
    /// Whether every enforced threshold held.
    pub fn passed(&self) -> bool {
        self.checks
            .iter()
            .all(|check| check.passed || !check.enforced)
    }

    /// The table of thresholds and verdicts.
    pub fn render(&self) -> String {
        render_checks(&self.checks)
    }

    /// The outcome as its results file holds it.
    pub fn results(&self) -> Results {
        Results {
            scenario: self.name.clone(),
            file: self.path.display().to_string(),
            passed: self.passed(),
            optimized: !cfg!(debug_assertions),
            elapsed_s: self.elapsed.as_secs_f64(),
            checks: self.checks.clone(),
            metrics: self
                .metrics
                .iter()
                .map(|(name, metric)| (name.to_owned(), metric.summary()))
                .collect(),
        }
    }

    /// Writes `<dir>/<name>.json` and `<dir>/<name>.svg`; returns the
    /// JSON file's path.
    pub fn write(&self, dir: &Path) -> std::io::Result<PathBuf> {
        std::fs::create_dir_all(dir)?;
        let stem = self.name.replace('/', "--");
        let json = dir.join(format!("{stem}.json"));
        let results = self.results();
        let text = serde_json::to_string_pretty(&results).map_err(std::io::Error::other)?;
        std::fs::write(&json, text)?;
        crate::sla::plot::scenario(&results, &dir.join(format!("{stem}.svg")))?;
        Ok(json)
    }
}

impl Scenario {
    /// Reads and parses `path`; `name` is what its results are filed
    /// under.
    pub fn read(path: &Path, name: &str) -> Result<Scenario, ScenarioError> {
        let text = std::fs::read_to_string(path).map_err(|error| ScenarioError {
            path: path.to_owned(),
            line: 1,
            column: 1,
            message: format!("cannot read the file: {error}"),
        })?;
        Scenario::parse(path, name, &text)
    }

    /// Parses a scenario from `text`, which was read from `path`.
    pub fn parse(path: &Path, name: &str, text: &str) -> Result<Scenario, ScenarioError> {
        let at = |span: Range<usize>, message: String| {
            let (line, column) = line_column(text, span.start);
            ScenarioError {
                path: path.to_owned(),
                line,
                column,
                message,
            }
        };
        let file: File = toml::from_str(text).map_err(|error| {
            at(
                error.span().unwrap_or(0..0),
                error.message().trim_end().to_owned(),
            )
        })?;

        let workload_span = file.workload.span();
        let workload = workload_of(file.workload.into_inner(), workload_span, &at)?;

        let fleet = match (file.fleet, &workload) {
            (None, Workload::Run { .. }) => {
                return Err(at(
                    0..0,
                    "a `run` workload needs a `[fleet]` table with `servers`".to_owned(),
                ));
            }
            (Some(fleet), Workload::Propagation(_)) => {
                return Err(at(
                    fleet.span(),
                    "a `propagation` workload runs in-process and takes no `[fleet]`".to_owned(),
                ));
            }
            (None, _) => None,
            (Some(fleet), _) => Some(fleet_of(fleet.into_inner(), &at)?),
        };

        let known = match &workload {
            Workload::Run { .. } => run_metric_kind,
            Workload::Propagation(_) => propagation_metric_kind,
        };
        let mut thresholds = Vec::new();
        for (metric, list) in file.thresholds {
            let Some(kind) = known(&metric) else {
                return Err(at(
                    list.span(),
                    format!(
                        "unknown metric `{metric}` for this workload; it records {}",
                        match &workload {
                            Workload::Run { .. } => RUN_METRICS_HELP,
                            Workload::Propagation(_) => PROPAGATION_METRICS_HELP,
                        }
                    ),
                ));
            };
            for entry in list.into_inner() {
                // The span covers the quotes; columns count inside them.
                let start = entry.span().start + 1;
                let threshold = Threshold::parse(entry.get_ref(), kind).map_err(|error| {
                    let (line, column) = line_column(text, start);
                    ScenarioError {
                        path: path.to_owned(),
                        line,
                        column: column + error.column,
                        message: format!("threshold on `{metric}`: {}", error.message),
                    }
                })?;
                thresholds.push((metric.clone(), threshold));
            }
        }
        if thresholds.is_empty() {
            return Err(at(
                0..0,
                "a scenario needs a `[thresholds]` table: a scenario that checks nothing \
                 cannot fail"
                    .to_owned(),
            ));
        }

        Ok(Scenario {
            name: name.to_owned(),
            path: path.to_owned(),
            description: file.description.unwrap_or_default(),
            fleet,
            workload,
            thresholds,
        })
    }

    /// Runs the scenario, starting its simulated fleet if it has one.
    pub async fn run(&self) -> Result<Outcome, RunError> {
        let Some(fleet) = &self.fleet else {
            return self.run_on(Vec::new()).await;
        };
        if fleet.kind == FleetKind::Wiremock {
            return Err(RunError::Fleet {
                name: self.name.clone(),
                message: format!(
                    "its fleet is {} wiremock servers, which whoever runs it must start \
                     and pass to `run_on`",
                    fleet.servers
                ),
            });
        }
        let seed = match &self.workload {
            Workload::Run { seed, .. } => *seed,
            Workload::Propagation(workload) => workload.seed,
        };
        let failed = |source: anyhow::Error| RunError::Failed {
            name: self.name.clone(),
            source,
        };
        let mut servers = Vec::with_capacity(fleet.servers);
        for server_idx in 0..fleet.servers {
            let config = SimConfig {
                seed,
                latency: fleet.latency,
                schedule: fleet
                    .faults
                    .iter()
                    .filter(|(idx, _)| *idx == server_idx)
                    .map(|(_, scheduled)| *scheduled)
                    .collect(),
                ..SimConfig::default()
            };
            let server = SimServer::start(SocketAddr::from(([127, 0, 0, 1], 0)), config)
                .await
                .map_err(|error| failed(error.into()))?;
            servers.push(server);
        }
        let urls = servers.iter().map(SimServer::url).collect();
        let outcome = self.run_on(urls).await;
        for server in servers {
            let _ = server.shutdown().await;
        }
        outcome
    }

    /// Runs the scenario on the servers at `urls`.
    pub async fn run_on(&self, urls: Vec<String>) -> Result<Outcome, RunError> {
        let failed = |source: anyhow::Error| RunError::Failed {
            name: self.name.clone(),
            source,
        };
        let (metrics, elapsed) = match &self.workload {
            Workload::Propagation(workload) => {
                let measured = propagation::measure(workload).await;
                let mut metrics = Metrics::default();
                let counter = |count| Metric::Counter {
                    count,
                    elapsed: measured.elapsed,
                };
                metrics.insert("propagation", Metric::Trend(measured.latency.clone()));
                metrics.insert("batches", counter(measured.batches));
                metrics.insert("discoveries", counter(measured.discoveries));
                metrics.insert("snapshots", counter(measured.snapshots));
                metrics.insert("replicas.diverged", counter(measured.diverged));
                (metrics, measured.elapsed)
            }
            Workload::Run {
                duration,
                seed: _,
                strategy,
                stop_at_goal,
            } => {
                if urls.is_empty() {
                    return Err(RunError::Fleet {
                        name: self.name.clone(),
                        message: "a `run` workload needs at least one server".to_owned(),
                    });
                }
                let mut clients = Vec::with_capacity(urls.len());
                for url in &urls {
                    let client = GymClient::new(url, ClientConfig::default())
                        .map_err(|error| failed(error.into()))?;
                    clients.push(client);
                }
                let data_dir = scratch_dir(&self.name);
                let _ = std::fs::remove_dir_all(&data_dir);
                let config = RunConfig {
                    duration: *duration,
                    data_dir: data_dir.clone(),
                    resolution: *strategy,
                    stop_at_goal: *stop_at_goal,
                    ..RunConfig::default()
                };
                let started = tokio::time::Instant::now();
                let report = crate::coordinator::run(
                    clients.clone(),
                    config,
                    Box::new(Explorer::default()),
                    std::future::pending(),
                )
                .await
                .map_err(|error| failed(error.into()))?;
                let elapsed = started.elapsed();
                let stored = tokio::task::spawn_blocking({
                    let data_dir = data_dir.clone();
                    move || crate::coordinator::Store::open(&data_dir)?.discoveries()
                })
                .await
                .map_err(|error| failed(error.into()))?
                .map_err(|error| failed(error.into()))?;
                let _ = std::fs::remove_dir_all(&data_dir);
                let fixed = self.fleet.as_ref().map(|fleet| fleet.latency);
                let metrics = run_metrics(&report, &clients, stored.len() as u64, fixed, elapsed);
                (metrics, elapsed)
            }
        };
        let checks = self
            .thresholds
            .iter()
            .map(|(metric, threshold)| metrics.check(metric, threshold))
            .collect();
        Ok(Outcome {
            name: self.name.clone(),
            path: self.path.clone(),
            metrics,
            checks,
            elapsed,
        })
    }
}

/// A directory for a run's store that nothing else uses.
fn scratch_dir(name: &str) -> PathBuf {
    std::env::temp_dir().join(format!(
        "gymfleet-scenario-{}-{}",
        name.replace('/', "-"),
        std::process::id()
    ))
}

const RUN_METRICS_HELP: &str = "`propagation`, `gym.<endpoint>`, `gym.<endpoint>.overhead`, \
     `requests`, `errors`, `experiments`, `actions`, `discoveries`, `discoveries.lost`, \
     `conflicts`, `breaker.events`";
const PROPAGATION_METRICS_HELP: &str =
    "`propagation`, `batches`, `discoveries`, `snapshots`, `replicas.diverged`";

fn run_metric_kind(name: &str) -> Option<MetricKind> {
    match name {
        "propagation" => Some(MetricKind::Trend),
        "errors" => Some(MetricKind::Rate),
        "requests" | "experiments" | "actions" | "discoveries" | "discoveries.lost"
        | "conflicts" | "breaker.events" => Some(MetricKind::Counter),
        gym => {
            let endpoint = gym.strip_prefix("gym.")?;
            let endpoint = endpoint.strip_suffix(".overhead").unwrap_or(endpoint);
            Endpoint::ALL
                .iter()
                .any(|known| known.name() == endpoint)
                .then_some(MetricKind::Trend)
        }
    }
}

fn propagation_metric_kind(name: &str) -> Option<MetricKind> {
    match name {
        "propagation" => Some(MetricKind::Trend),
        "batches" | "discoveries" | "snapshots" | "replicas.diverged" => Some(MetricKind::Counter),
        _ => None,
    }
}

/// The metrics of a coordinator run.
///
/// `gym.<endpoint>.overhead` is the client's latency less the fixed part
/// of the servers' latency model (the injected delay every answer waits);
/// per-frame delays and jitter stay in it, so thresholds on overhead are
/// meant for fleets whose latency is fixed.
fn run_metrics(
    report: &crate::coordinator::Report,
    clients: &[GymClient],
    stored: u64,
    latency: Option<LatencyModel>,
    elapsed: Duration,
) -> Metrics {
    let mut metrics = Metrics::default();
    let counter = |count| Metric::Counter { count, elapsed };
    let mut requests = 0;
    let mut errors = 0;
    for endpoint in Endpoint::ALL {
        let mut merged = Metric::trend();
        for client in clients {
            let _ = merged.add(client.latencies().snapshot(endpoint));
            errors += client.latencies().errors(endpoint);
        }
        requests += merged.len();
        let injected = latency.map_or(0, |latency| {
            let fixed = latency.fixed
                + match endpoint {
                    Endpoint::Initialize => latency.initialize,
                    _ => Duration::ZERO,
                };
            u64::try_from(fixed.as_micros()).unwrap_or(u64::MAX)
        });
        let mut overhead = Metric::trend();
        for bucket in merged.iter_recorded() {
            let value = bucket.value_iterated_to().saturating_sub(injected).max(1);
            let _ = overhead.record_n(value, bucket.count_at_value());
        }
        metrics.insert(format!("gym.{}", endpoint.name()), Metric::Trend(merged));
        metrics.insert(
            format!("gym.{}.overhead", endpoint.name()),
            Metric::Trend(overhead),
        );
    }
    let propagation = report
        .propagation_histogram
        .clone()
        .unwrap_or_else(Metric::trend);
    metrics.insert("propagation", Metric::Trend(propagation));
    metrics.insert("requests", counter(requests + errors));
    metrics.insert(
        "errors",
        Metric::Rate {
            hits: errors,
            total: requests + errors,
        },
    );
    metrics.insert("experiments", counter(report.experiments));
    metrics.insert("actions", counter(report.actions));
    metrics.insert("discoveries", counter(report.discoveries));
    metrics.insert(
        "discoveries.lost",
        counter((report.discoveries + report.resumed_discoveries).saturating_sub(stored)),
    );
    metrics.insert("conflicts", counter(report.conflicts));
    metrics.insert(
        "breaker.events",
        counter(
            report
                .servers
                .iter()
                .map(|server| server.breaker_events)
                .sum(),
        ),
    );
    metrics
}

/// 1-based line and column (in characters) of byte `offset` in `text`.
pub(crate) fn line_column(text: &str, offset: usize) -> (usize, usize) {
    let offset = offset.min(text.len());
    let before = &text[..offset];
    let line = before.matches('\n').count() + 1;
    let line_start = before.rfind('\n').map_or(0, |newline| newline + 1);
    (line, before[line_start..].chars().count() + 1)
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct File {
    description: Option<String>,
    fleet: Option<Spanned<FleetFile>>,
    workload: Spanned<WorkloadFile>,
    #[serde(default)]
    thresholds: BTreeMap<String, Spanned<Vec<Spanned<String>>>>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct FleetFile {
    servers: Spanned<usize>,
    #[serde(default)]
    kind: FleetKind,
    #[serde(default)]
    latency: LatencyFile,
    #[serde(default, rename = "fault")]
    faults: Vec<Spanned<FaultFile>>,
}

#[derive(Deserialize, Default)]
#[serde(deny_unknown_fields)]
struct LatencyFile {
    #[serde(default)]
    fixed: DurationText,
    #[serde(default)]
    per_frame: DurationText,
    #[serde(default)]
    initialize: DurationText,
    jitter: Option<Spanned<JitterFile>>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct JitterFile {
    p50: DurationText,
    p99: DurationText,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct FaultFile {
    server: usize,
    at: Option<DurationText>,
    after_requests: Option<u64>,
    slow: Option<DurationText>,
    errors: Option<u32>,
    die: Option<bool>,
}

#[derive(Deserialize, Clone, Copy, PartialEq, Eq)]
#[serde(rename_all = "kebab-case")]
enum WorkloadKind {
    Run,
    Propagation,
}

/// `[workload]` as written: one flat table whose `kind` decides which
/// fields it takes, so that every value keeps its position for errors.
#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct WorkloadFile {
    kind: WorkloadKind,
    seed: Option<u64>,
    strategy: Option<StrategyName>,
    // `run`
    duration: Option<Spanned<DurationText>>,
    stop_at_goal: Option<Spanned<bool>>,
    // `propagation`
    subscribers: Option<Spanned<usize>>,
    batch: Option<Spanned<usize>>,
    publishes: Option<Spanned<usize>>,
    conflict_rate: Option<Spanned<f64>>,
    payload_bytes: Option<Spanned<usize>>,
    topics: Option<Spanned<usize>>,
    capacity: Option<Spanned<usize>>,
}

fn workload_of(
    file: WorkloadFile,
    span: Range<usize>,
    at: &impl Fn(Range<usize>, String) -> ScenarioError,
) -> Result<Workload, ScenarioError> {
    let seed = file.seed.unwrap_or_else(default_seed);
    let strategy = file.strategy.unwrap_or_default().into();
    let not_for = |field: &str, value_span: Range<usize>, kind: &str| {
        at(
            value_span,
            format!("`{field}` does not apply to a `{kind}` workload"),
        )
    };
    match file.kind {
        WorkloadKind::Run => {
            for (field, value_span) in [
                ("subscribers", file.subscribers.as_ref().map(Spanned::span)),
                ("batch", file.batch.as_ref().map(Spanned::span)),
                ("publishes", file.publishes.as_ref().map(Spanned::span)),
                (
                    "conflict_rate",
                    file.conflict_rate.as_ref().map(Spanned::span),
                ),
                (
                    "payload_bytes",
                    file.payload_bytes.as_ref().map(Spanned::span),
                ),
                ("topics", file.topics.as_ref().map(Spanned::span)),
                ("capacity", file.capacity.as_ref().map(Spanned::span)),
            ] {
                if let Some(value_span) = value_span {
                    return Err(not_for(field, value_span, "run"));
                }
            }
            let Some(duration) = file.duration else {
                return Err(at(
                    span,
                    "a `run` workload needs a `duration`, such as `duration = \"5s\"`".to_owned(),
                ));
            };
            if duration.get_ref().0.is_zero() {
                return Err(at(
                    duration.span(),
                    "`duration` must be longer than zero".to_owned(),
                ));
            }
            Ok(Workload::Run {
                duration: duration.into_inner().0,
                seed,
                strategy,
                stop_at_goal: file.stop_at_goal.is_some_and(Spanned::into_inner),
            })
        }
        WorkloadKind::Propagation => {
            for (field, value_span) in [
                ("duration", file.duration.as_ref().map(Spanned::span)),
                (
                    "stop_at_goal",
                    file.stop_at_goal.as_ref().map(Spanned::span),
                ),
            ] {
                if let Some(value_span) = value_span {
                    return Err(not_for(field, value_span, "propagation"));
                }
            }
            let count = |field: &str, value: Option<Spanned<usize>>, default: Option<usize>| match (
                value, default,
            ) {
                (Some(value), _) if *value.get_ref() == 0 => {
                    Err(at(value.span(), format!("`{field}` must be at least 1")))
                }
                (Some(value), _) => Ok(value.into_inner()),
                (None, Some(default)) => Ok(default),
                (None, None) => Err(at(
                    span.clone(),
                    format!("a `propagation` workload needs `{field}`"),
                )),
            };
            let conflict_rate = match file.conflict_rate {
                None => 0.0,
                Some(rate) if (0.0..=1.0).contains(rate.get_ref()) => rate.into_inner(),
                Some(rate) => {
                    return Err(at(
                        rate.span(),
                        "`conflict_rate` must be in [0, 1]".to_owned(),
                    ));
                }
            };
            Ok(Workload::Propagation(propagation::Workload {
                subscribers: count("subscribers", file.subscribers, None)?,
                batch: count("batch", file.batch, Some(1))?,
                publishes: count("publishes", file.publishes, None)?,
                conflict_rate,
                payload_bytes: file.payload_bytes.map_or(32, Spanned::into_inner),
                topics: count("topics", file.topics, Some(1_000))?,
                capacity: count("capacity", file.capacity, Some(64))?,
                strategy,
                seed,
            }))
        }
    }
}

fn default_seed() -> u64 {
    1
}

#[derive(Deserialize, Default, Clone, Copy)]
#[serde(rename_all = "kebab-case")]
enum StrategyName {
    HighestConfidence,
    LatestWins,
    Consensus,
    #[default]
    WeightedMerge,
}

impl From<StrategyName> for Strategy {
    fn from(name: StrategyName) -> Strategy {
        match name {
            StrategyName::HighestConfidence => Strategy::HighestConfidence,
            StrategyName::LatestWins => Strategy::LatestWins,
            StrategyName::Consensus => Strategy::Consensus,
            StrategyName::WeightedMerge => Strategy::WeightedMerge,
        }
    }
}

/// A duration written as text (`"250us"`); a bad one is a parse error at
/// its position in the file.
#[derive(Debug, Clone, Copy, Default)]
struct DurationText(Duration);

impl<'de> Deserialize<'de> for DurationText {
    fn deserialize<D: serde::Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        let text = String::deserialize(deserializer)?;
        parse_duration(&text)
            .map(DurationText)
            .map_err(serde::de::Error::custom)
    }
}

fn fleet_of(
    fleet: FleetFile,
    at: &impl Fn(Range<usize>, String) -> ScenarioError,
) -> Result<Fleet, ScenarioError> {
    let servers = *fleet.servers.get_ref();
    if !(1..=256).contains(&servers) {
        return Err(at(
            fleet.servers.span(),
            "`servers` must be between 1 and 256".to_owned(),
        ));
    }
    let jitter = match fleet.latency.jitter {
        None => None,
        Some(jitter) => {
            let span = jitter.span();
            let JitterFile { p50, p99 } = jitter.into_inner();
            if p50.0.is_zero() || p99.0 < p50.0 {
                return Err(at(
                    span,
                    "`jitter` needs `p50` above zero and `p99` at least `p50`".to_owned(),
                ));
            }
            Some(Jitter {
                p50: p50.0,
                p99: p99.0,
            })
        }
    };
    let latency = LatencyModel {
        fixed: fleet.latency.fixed.0,
        per_frame: fleet.latency.per_frame.0,
        initialize: fleet.latency.initialize.0,
        jitter,
    };

    let mut faults = Vec::with_capacity(fleet.faults.len());
    for fault in fleet.faults {
        let span = fault.span();
        let fault = fault.into_inner();
        if fault.server == 0 || fault.server > servers {
            return Err(at(
                span,
                format!("`server` must be between 1 and {servers}, the fleet's size"),
            ));
        }
        if fleet.kind == FleetKind::Wiremock {
            return Err(at(
                span,
                "faults are scheduled on simulated servers only".to_owned(),
            ));
        }
        let trigger = match (fault.at, fault.after_requests) {
            (Some(at), None) => Trigger::After(at.0),
            (None, Some(n)) => Trigger::Request(n),
            (None, None) => Trigger::Request(0),
            (Some(_), Some(_)) => {
                return Err(at(
                    span,
                    "a fault starts either `at` a time or `after_requests`, not both".to_owned(),
                ));
            }
        };
        let what = match (fault.slow, fault.errors, fault.die) {
            (Some(slow), None, None) => ScheduledFault::Slow { extra: slow.0 },
            (None, Some(count), None) => ScheduledFault::Errors { count },
            (None, None, Some(true)) => ScheduledFault::Die,
            _ => {
                return Err(at(
                    span,
                    "a fault is exactly one of `slow = \"<duration>\"`, `errors = <count>` \
                     or `die = true`"
                        .to_owned(),
                ));
            }
        };
        faults.push((
            fault.server - 1,
            Scheduled {
                at: trigger,
                fault: what,
            },
        ));
    }
    Ok(Fleet {
        servers,
        kind: fleet.kind,
        latency,
        faults,
    })
}
