//! The metrics a scenario records and what its results file keeps of them.

use std::collections::BTreeMap;
use std::time::Duration;

use hdrhistogram::Histogram;
use serde::{Deserialize, Serialize};

use crate::sla::threshold::{MetricKind, Statistic, Threshold, format_value};

/// One recorded metric.
#[derive(Debug, Clone)]
pub enum Metric {
    /// Latencies, in microseconds.
    Trend(Histogram<u64>),
    /// Events counted over `elapsed`.
    Counter {
        /// How many.
        count: u64,
        /// Over how long.
        elapsed: Duration,
    },
    /// `hits` out of `total` events, such as failed calls out of calls.
    Rate {
        /// The events counted.
        hits: u64,
        /// All events.
        total: u64,
    },
}

impl Metric {
    /// A histogram for microsecond latencies up to an hour, 3 significant
    /// digits.
    pub fn trend() -> Histogram<u64> {
        Histogram::new_with_bounds(1, 3_600_000_000, 3).expect("the bounds are valid")
    }

    /// The metric's kind.
    pub fn kind(&self) -> MetricKind {
        match self {
            Metric::Trend(_) => MetricKind::Trend,
            Metric::Counter { .. } => MetricKind::Counter,
            Metric::Rate { .. } => MetricKind::Rate,
        }
    }

    /// The value of `statistic`, or `None` when there is nothing to
    /// measure (an empty histogram).
    pub fn statistic(&self, statistic: Statistic) -> Option<f64> {
        match (self, statistic) {
            (Metric::Trend(histogram), _) if histogram.is_empty() => None,
            (Metric::Trend(histogram), Statistic::Avg) => Some(histogram.mean()),
            (Metric::Trend(histogram), Statistic::Min) => Some(histogram.min() as f64),
            (Metric::Trend(histogram), Statistic::Max) => Some(histogram.max() as f64),
            (Metric::Trend(histogram), Statistic::Percentile(p)) => {
                Some(histogram.value_at_percentile(p) as f64)
            }
            (Metric::Counter { count, .. }, Statistic::Count) => Some(*count as f64),
            (Metric::Counter { count, elapsed }, Statistic::Rate) => {
                Some(*count as f64 / elapsed.as_secs_f64().max(1e-9))
            }
            (Metric::Rate { total: 0, .. }, _) => Some(0.0),
            (Metric::Rate { hits, total }, Statistic::Rate) => Some(*hits as f64 / *total as f64),
            _ => None,
        }
    }

    /// What the results file keeps of the metric.
    pub fn summary(&self) -> Summary {
        match self {
            Metric::Trend(histogram) => Summary::Trend {
                unit: "us".to_owned(),
                count: histogram.len(),
                min: histogram.min(),
                max: histogram.max(),
                mean: histogram.mean(),
                p50: histogram.value_at_quantile(0.50),
                p90: histogram.value_at_quantile(0.90),
                p95: histogram.value_at_quantile(0.95),
                p99: histogram.value_at_quantile(0.99),
                p999: histogram.value_at_quantile(0.999),
                histogram: histogram
                    .iter_recorded()
                    .map(|bucket| [bucket.value_iterated_to(), bucket.count_at_value()])
                    .collect(),
            },
            Metric::Counter { count, elapsed } => Summary::Counter {
                count: *count,
                per_second: *count as f64 / elapsed.as_secs_f64().max(1e-9),
            },
            Metric::Rate { hits, total } => Summary::Rate {
                hits: *hits,
                total: *total,
                rate: match total {
                    0 => 0.0,
                    total => *hits as f64 / *total as f64,
                },
            },
        }
    }
}

/// A metric as written in a results file.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "kind", rename_all = "snake_case")]
pub enum Summary {
    /// A latency histogram.
    Trend {
        /// The unit of every value (`us`).
        unit: String,
        /// Samples.
        count: u64,
        /// Smallest.
        min: u64,
        /// Largest.
        max: u64,
        /// Mean.
        mean: f64,
        /// Median.
        p50: u64,
        /// 90th percentile.
        p90: u64,
        /// 95th percentile.
        p95: u64,
        /// 99th percentile.
        p99: u64,
        /// 99.9th percentile.
        p999: u64,
        /// `[value, count]` for every recorded bucket.
        histogram: Vec<[u64; 2]>,
    },
    /// A count.
    Counter {
        /// How many.
        count: u64,
        /// Per second of the run.
        per_second: f64,
    },
    /// A fraction.
    Rate {
        /// The events counted.
        hits: u64,
        /// All events.
        total: u64,
        /// `hits / total`.
        rate: f64,
    },
}

impl Summary {
    /// A named statistic of the summary (`p99`, `max`, `count`, `rate`…),
    /// for comparing runs with a baseline.
    pub fn get(&self, name: &str) -> Option<f64> {
        match self {
            Summary::Trend {
                count,
                min,
                max,
                mean,
                p50,
                p90,
                p95,
                p99,
                p999,
                ..
            } => match name {
                "count" => Some(*count as f64),
                "min" => Some(*min as f64),
                "max" => Some(*max as f64),
                "avg" | "mean" => Some(*mean),
                "med" | "p50" => Some(*p50 as f64),
                "p90" => Some(*p90 as f64),
                "p95" => Some(*p95 as f64),
                "p99" => Some(*p99 as f64),
                "p999" => Some(*p999 as f64),
                _ => None,
            },
            Summary::Counter { count, per_second } => match name {
                "count" => Some(*count as f64),
                "rate" => Some(*per_second),
                _ => None,
            },
            Summary::Rate { rate, .. } => (name == "rate").then_some(*rate),
        }
    }
}

/// Every metric of one run, by name.
#[derive(Debug, Clone, Default)]
pub struct Metrics {
    metrics: BTreeMap<String, Metric>,
}

impl Metrics {
    /// Records `metric` as `name`, replacing an earlier one.
    pub fn insert(&mut self, name: impl Into<String>, metric: Metric) {
        self.metrics.insert(name.into(), metric);
    }

    /// The metric called `name`.
    pub fn get(&self, name: &str) -> Option<&Metric> {
        self.metrics.get(name)
    }

    /// Every metric, by name.
    pub fn iter(&self) -> impl Iterator<Item = (&str, &Metric)> {
        self.metrics
            .iter()
            .map(|(name, metric)| (name.as_str(), metric))
    }

    /// Checks `threshold` on the metric `name`.
    pub fn check(&self, name: &str, threshold: &Threshold) -> Check {
        let (measured, passed, note) = match self.metrics.get(name) {
            None => (None, false, Some("the run did not record this metric")),
            Some(metric) => match metric.statistic(threshold.statistic) {
                None => (None, false, Some("no samples")),
                Some(value) => (Some(value), threshold.holds(value), None),
            },
        };
        let kind = self.metrics.get(name).map(Metric::kind);
        // Latencies and per-second rates measure speed; fractions and
        // counts do not.
        let speed = match kind {
            Some(MetricKind::Trend) => true,
            Some(MetricKind::Counter) => threshold.statistic == Statistic::Rate,
            Some(MetricKind::Rate) | None => false,
        };
        let enforced = !(cfg!(debug_assertions) && speed);
        Check {
            metric: name.to_owned(),
            threshold: threshold.source.clone(),
            measured: measured
                .zip(kind)
                .map(|(value, kind)| format_value(kind, threshold.statistic, value)),
            value: measured,
            passed,
            enforced,
            note: note.map(str::to_owned),
        }
    }
}

/// One threshold checked against one run.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Check {
    /// The metric's name.
    pub metric: String,
    /// The threshold as written.
    pub threshold: String,
    /// The measured statistic, formatted in its unit.
    pub measured: Option<String>,
    /// The measured statistic in the threshold's unit.
    pub value: Option<f64>,
    /// Whether the threshold held.
    pub passed: bool,
    /// Whether a failure fails the scenario. Speed thresholds (latencies,
    /// and counts per second) are not enforced on code built without
    /// optimizations, whose timings say nothing about a release build.
    #[serde(default = "enforced")]
    pub enforced: bool,
    /// Why there is no measurement, when there is none.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub note: Option<String>,
}

fn enforced() -> bool {
    true
}

/// The checks as a table: metric, threshold, measured value, verdict.
pub fn render_checks(checks: &[Check]) -> String {
    let rows: Vec<[String; 4]> = checks
        .iter()
        .map(|check| {
            [
                check.metric.clone(),
                check.threshold.clone(),
                check
                    .measured
                    .clone()
                    .or_else(|| check.note.clone())
                    .unwrap_or_default(),
                match (check.passed, check.enforced) {
                    (true, _) => "pass".to_owned(),
                    (false, true) => "FAIL".to_owned(),
                    (false, false) => "over (not enforced: debug build)".to_owned(),
                },
            ]
        })
        .collect();
    crate::sla::table(&["metric", "threshold", "measured", "verdict"], &rows)
}
