//! `gymfleet gate`: checks the last measurements against the budgets in
//! `.config/budgets.toml` and fails when one is broken.
//!
//! Three kinds of measurement are budgeted:
//!
//! * `bench."<id>"`: criterion's estimate in
//!   `target/criterion/<dir>/new/estimates.json`, where `<dir>` is the
//!   directory whose `new/benchmark.json` names the id. An absolute `max` fails
//!   only when the lower bound of the estimate's confidence interval is
//!   above it; an allowed `regression` fails only when the lower bound of
//!   the relative change is above it. The change is criterion's own
//!   (`change/estimates.json`) or, with `--baseline NAME`, the change from
//!   a saved baseline, bounded conservatively from both intervals.
//! * `instructions."<id>"`: instruction counts from
//!   `cargo bench --bench instructions`, exact and repeatable, so compared
//!   as they are.
//! * `scenario."<name>"`: a scenario's last results under
//!   `target/gymfleet/sla/`. Every threshold of the scenario must have
//!   held, and named statistics may be held to a baseline.
//!
//! A budget whose measurement is missing is an error, never a pass.

use std::collections::BTreeMap;
use std::fmt;
use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};
use toml::Spanned;

use crate::sla::scenario::{Results, line_column};
use crate::sla::units::{format_micros, format_nanos, parse_duration};

/// The sections of a budgets file, which `--only` selects among.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum Section {
    /// Criterion wall-clock estimates.
    Bench,
    /// Instruction counts.
    Instructions,
    /// Scenario results.
    Scenario,
}

impl fmt::Display for Section {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Section::Bench => "bench",
            Section::Instructions => "instructions",
            Section::Scenario => "scenario",
        })
    }
}

/// A budgets file that cannot be used, or a measurement it names that
/// cannot be read.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{}:{line}:{column}: {message}", path.display())]
pub struct BudgetError {
    /// The budgets file.
    pub path: PathBuf,
    /// From 1.
    pub line: usize,
    /// From 1.
    pub column: usize,
    /// What is wrong.
    pub message: String,
}

/// Everything a budgets file asks for.
#[derive(Debug, Clone, PartialEq)]
pub struct Budgets {
    /// The file.
    pub path: PathBuf,
    /// Every budget, in section order, then by name.
    pub budgets: Vec<Budget>,
}

/// One budgeted measurement.
#[derive(Debug, Clone, PartialEq)]
pub struct Budget {
    /// Its section.
    pub section: Section,
    /// The benchmark, instruction case or scenario it names.
    pub id: String,
    /// The most it may be: nanoseconds for a bench, instructions for a
    /// case. Scenarios carry their thresholds in their own file.
    pub max: Option<f64>,
    /// The relative regression allowed against a baseline (0.1 is 10%).
    pub regression: Option<f64>,
    /// Which of criterion's estimates a bench budget reads.
    pub statistic: Estimate,
    /// Scenario statistics (`"propagation.p99"`) and the regression
    /// allowed for each.
    pub scenario_regressions: BTreeMap<String, f64>,
    /// Where the budget is in the file, for messages.
    pub line: usize,
}

/// One of criterion's estimates.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Deserialize, Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum Estimate {
    /// The mean time per iteration.
    #[default]
    Mean,
    /// The median time per iteration.
    Median,
}

impl Estimate {
    fn key(self) -> &'static str {
        match self {
            Estimate::Mean => "mean",
            Estimate::Median => "median",
        }
    }
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct BudgetsFile {
    #[serde(default)]
    bench: BTreeMap<String, Spanned<BenchFile>>,
    #[serde(default)]
    instructions: BTreeMap<String, Spanned<InstructionsFile>>,
    #[serde(default)]
    scenario: BTreeMap<String, Spanned<ScenarioFile>>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct BenchFile {
    max: Option<DurationText>,
    regression: Option<Percent>,
    #[serde(default)]
    statistic: Estimate,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct InstructionsFile {
    max: Option<u64>,
    regression: Option<Percent>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct ScenarioFile {
    #[serde(default)]
    regression: BTreeMap<String, Percent>,
}

struct DurationText(f64);

impl<'de> Deserialize<'de> for DurationText {
    fn deserialize<D: serde::Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        let text = String::deserialize(deserializer)?;
        parse_duration(&text)
            .map(|duration| DurationText(duration.as_nanos() as f64))
            .map_err(serde::de::Error::custom)
    }
}

/// An allowed regression: `"10%"`.
struct Percent(f64);

impl<'de> Deserialize<'de> for Percent {
    fn deserialize<D: serde::Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        let text = String::deserialize(deserializer)?;
        let number = text.trim().strip_suffix('%').ok_or_else(|| {
            serde::de::Error::custom(format!("`{text}` is not a percentage such as `10%`"))
        })?;
        match number.trim().parse::<f64>() {
            Ok(value) if value.is_finite() && value >= 0.0 => Ok(Percent(value / 100.0)),
            _ => Err(serde::de::Error::custom(format!(
                "`{text}` is not a percentage of zero or more, such as `10%`"
            ))),
        }
    }
}

impl Budgets {
    /// Reads and parses a budgets file.
    pub fn read(path: &Path) -> Result<Budgets, BudgetError> {
        let text = std::fs::read_to_string(path).map_err(|error| BudgetError {
            path: path.to_owned(),
            line: 1,
            column: 1,
            message: format!("cannot read the budgets file: {error}"),
        })?;
        Budgets::parse(path, &text)
    }

    /// Parses a budgets file's `text`, read from `path`.
    pub fn parse(path: &Path, text: &str) -> Result<Budgets, BudgetError> {
        let at = |offset: usize, message: String| {
            let (line, column) = line_column(text, offset);
            BudgetError {
                path: path.to_owned(),
                line,
                column,
                message,
            }
        };
        let file: BudgetsFile = toml::from_str(text).map_err(|error| {
            at(
                error.span().map_or(0, |span| span.start),
                error.message().trim_end().to_owned(),
            )
        })?;
        let line_of = |offset: usize| line_column(text, offset).0;
        let mut budgets = Vec::new();
        for (id, entry) in file.bench {
            let offset = entry.span().start;
            let entry = entry.into_inner();
            if entry.max.is_none() && entry.regression.is_none() {
                return Err(at(
                    offset,
                    format!("bench `{id}` sets neither `max` nor `regression`"),
                ));
            }
            budgets.push(Budget {
                section: Section::Bench,
                id,
                max: entry.max.map(|max| max.0),
                regression: entry.regression.map(|percent| percent.0),
                statistic: entry.statistic,
                scenario_regressions: BTreeMap::new(),
                line: line_of(offset),
            });
        }
        for (id, entry) in file.instructions {
            let offset = entry.span().start;
            let entry = entry.into_inner();
            if entry.max.is_none() && entry.regression.is_none() {
                return Err(at(
                    offset,
                    format!("instructions `{id}` sets neither `max` nor `regression`"),
                ));
            }
            budgets.push(Budget {
                section: Section::Instructions,
                id,
                max: entry.max.map(|max| max as f64),
                regression: entry.regression.map(|percent| percent.0),
                statistic: Estimate::Mean,
                scenario_regressions: BTreeMap::new(),
                line: line_of(offset),
            });
        }
        for (id, entry) in file.scenario {
            let offset = entry.span().start;
            let entry = entry.into_inner();
            for statistic in entry.regression.keys() {
                if statistic.rsplit_once('.').is_none() {
                    return Err(at(
                        offset,
                        format!(
                            "scenario `{id}`: `{statistic}` is not `<metric>.<statistic>`, \
                             such as `propagation.p99`"
                        ),
                    ));
                }
            }
            budgets.push(Budget {
                section: Section::Scenario,
                id,
                max: None,
                regression: None,
                statistic: Estimate::Mean,
                scenario_regressions: entry
                    .regression
                    .into_iter()
                    .map(|(statistic, percent)| (statistic, percent.0))
                    .collect(),
                line: line_of(offset),
            });
        }
        Ok(Budgets {
            path: path.to_owned(),
            budgets,
        })
    }
}

/// A point estimate with its confidence interval.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub struct Interval {
    /// The estimate.
    pub point: f64,
    /// The interval's lower bound.
    pub lower: f64,
    /// The interval's upper bound.
    pub upper: f64,
}

/// Every measurement the gate compares, as a baseline keeps them.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct Measurements {
    /// Criterion estimates per bench id and estimate (`mean`, `median`),
    /// in nanoseconds.
    #[serde(default)]
    pub bench: BTreeMap<String, BTreeMap<String, Interval>>,
    /// Instructions per call per case.
    #[serde(default)]
    pub instructions: BTreeMap<String, u64>,
    /// Scenario statistics per scenario (`"propagation.p99"`).
    #[serde(default)]
    pub scenario: BTreeMap<String, BTreeMap<String, f64>>,
}

/// Where the gate reads measurements and writes its report.
#[derive(Debug, Clone)]
pub struct Paths {
    /// The build's target directory.
    pub target: PathBuf,
}

impl Paths {
    /// Criterion's output.
    pub fn criterion(&self) -> PathBuf {
        self.target.join("criterion")
    }

    /// The instruction counts' results file.
    pub fn instructions(&self) -> PathBuf {
        self.target.join("gymfleet/instructions/results.json")
    }

    /// Scenario results.
    pub fn sla(&self) -> PathBuf {
        self.target.join("gymfleet/sla")
    }

    /// A saved baseline.
    pub fn baseline(&self, name: &str) -> PathBuf {
        self.target
            .join("gymfleet/baselines")
            .join(format!("{name}.json"))
    }

    /// The gate's own output.
    pub fn gate(&self) -> PathBuf {
        self.target.join("gymfleet/gate")
    }
}

/// What the gate was asked to do.
#[derive(Debug, Clone, Default)]
pub struct Options {
    /// Check only these sections; all when empty.
    pub only: Vec<Section>,
    /// Compare with this saved baseline instead of criterion's last run.
    pub baseline: Option<String>,
}

/// One line of the gate's verdict.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Row {
    /// The section.
    pub section: Section,
    /// The benchmark, case or scenario.
    pub id: String,
    /// What was checked: `max`, `regression`, `thresholds`, or a scenario
    /// statistic's regression.
    pub check: String,
    /// The measurement, formatted.
    pub measured: String,
    /// The limit, formatted.
    pub limit: String,
    /// Whether it held.
    pub passed: bool,
    /// Why it passed or failed, when the numbers alone do not say.
    pub note: String,
    /// The current value relative to the baseline, when there is one.
    pub ratio: Option<f64>,
    /// The relative regression allowed, for a regression check.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub allowed: Option<f64>,
}

/// The gate's verdict.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Verdict {
    /// The budgets file.
    pub budgets: String,
    /// The baseline compared with, if any.
    pub baseline: Option<String>,
    /// Every check.
    pub rows: Vec<Row>,
}

impl Verdict {
    /// Whether every check held.
    pub fn passed(&self) -> bool {
        self.rows.iter().all(|row| row.passed)
    }

    /// The checks that failed.
    pub fn failures(&self) -> impl Iterator<Item = &Row> {
        self.rows.iter().filter(|row| !row.passed)
    }

    /// The verdict as an aligned table.
    pub fn render(&self) -> String {
        let rows: Vec<[String; 6]> = self
            .rows
            .iter()
            .map(|row| {
                [
                    format!("{} {}", row.section, row.id),
                    row.check.clone(),
                    row.measured.clone(),
                    row.limit.clone(),
                    match row.passed {
                        true => "pass".to_owned(),
                        false => "FAIL".to_owned(),
                    },
                    row.note.clone(),
                ]
            })
            .collect();
        crate::sla::table(
            &["budget", "check", "measured", "limit", "verdict", "note"],
            &rows,
        )
    }

    /// The verdict as Markdown, for a CI job summary.
    pub fn markdown(&self) -> String {
        let mut out = String::new();
        let n_failed = self.failures().count();
        out.push_str(&match n_failed {
            0 => format!("### Latency gate: all {} checks hold\n\n", self.rows.len()),
            n => format!(
                "### Latency gate: {n} of {} checks failed\n\n",
                self.rows.len()
            ),
        });
        if let Some(baseline) = &self.baseline {
            out.push_str(&format!("Compared with baseline `{baseline}`.\n\n"));
        }
        out.push_str("| budget | check | measured | limit | verdict | note |\n");
        out.push_str("|---|---|---|---|---|---|\n");
        for row in &self.rows {
            out.push_str(&format!(
                "| {} `{}` | {} | {} | {} | {} | {} |\n",
                row.section,
                row.id,
                row.check,
                row.measured,
                row.limit,
                match row.passed {
                    true => "pass",
                    false => "**FAIL**",
                },
                row.note.replace('|', "\\|"),
            ));
        }
        out
    }
}

/// Reads every measurement the budgets name. A budget whose measurement
/// is missing or unreadable is an error that names the budget's line.
pub fn measure(
    budgets: &Budgets,
    paths: &Paths,
    only: &[Section],
) -> Result<Measurements, Vec<BudgetError>> {
    let mut measurements = Measurements::default();
    let mut errors = Vec::new();
    let error = |budget: &Budget, message: String| BudgetError {
        path: budgets.path.clone(),
        line: budget.line,
        column: 1,
        message,
    };
    let selected = |budget: &&Budget| only.is_empty() || only.contains(&budget.section);

    let mut instructions: Option<Result<BTreeMap<String, u64>, String>> = None;
    for budget in budgets.budgets.iter().filter(selected) {
        match budget.section {
            Section::Bench => {
                let found = criterion_dir(&paths.criterion(), &budget.id)
                    .map(|dir| dir.join("new/estimates.json"))
                    .ok_or_else(|| {
                        format!(
                            "criterion has no benchmark with this id under {}; run the \
                             bench that defines it",
                            paths.criterion().display()
                        )
                    });
                match found.and_then(|file| read_estimates(&file)) {
                    Ok(estimates) => {
                        measurements.bench.insert(budget.id.clone(), estimates);
                    }
                    Err(message) => errors.push(error(
                        budget,
                        format!("bench `{}` has no result: {message}", budget.id),
                    )),
                }
            }
            Section::Instructions => {
                let counts =
                    instructions.get_or_insert_with(|| read_instructions(&paths.instructions()));
                match counts {
                    Ok(counts) => match counts.get(&budget.id) {
                        Some(count) => {
                            measurements.instructions.insert(budget.id.clone(), *count);
                        }
                        None => errors.push(error(
                            budget,
                            format!(
                                "instructions `{}` has no result in {}; the cases measured \
                                 are: {}",
                                budget.id,
                                paths.instructions().display(),
                                counts.keys().cloned().collect::<Vec<_>>().join(", ")
                            ),
                        )),
                    },
                    Err(message) => errors.push(error(
                        budget,
                        format!("instructions `{}` has no result: {message}", budget.id),
                    )),
                }
            }
            Section::Scenario => match read_scenario(&paths.sla(), &budget.id) {
                Ok(results) => {
                    let mut statistics = BTreeMap::new();
                    for (metric, summary) in &results.metrics {
                        for statistic in [
                            "p50", "p90", "p95", "p99", "p999", "max", "avg", "count", "rate",
                        ] {
                            if let Some(value) = summary.get(statistic) {
                                statistics.insert(format!("{metric}.{statistic}"), value);
                            }
                        }
                    }
                    for statistic in budget.scenario_regressions.keys() {
                        if !statistics.contains_key(statistic) {
                            errors.push(error(
                                budget,
                                format!("scenario `{}` recorded no `{statistic}`", budget.id),
                            ));
                        }
                    }
                    if !results.optimized {
                        errors.push(error(
                            budget,
                            format!(
                                "scenario `{}` was last run from a debug build, whose \
                                     timings say nothing; run it with `--cargo-profile release`",
                                budget.id
                            ),
                        ));
                    }
                    let failed = results.checks.iter().filter(|check| !check.passed).count();
                    statistics.insert("thresholds.failed".to_owned(), failed as f64);
                    statistics.insert("thresholds.count".to_owned(), results.checks.len() as f64);
                    measurements.scenario.insert(budget.id.clone(), statistics);
                }
                Err(message) => errors.push(error(
                    budget,
                    format!("scenario `{}` has no result: {message}", budget.id),
                )),
            },
        }
    }
    match errors.is_empty() {
        true => Ok(measurements),
        false => Err(errors),
    }
}

/// Checks `current` against the budgets, and against `baseline` when
/// given (else against criterion's own last comparison, read from
/// `paths`).
pub fn judge(
    budgets: &Budgets,
    current: &Measurements,
    baseline: Option<(&str, &Measurements)>,
    paths: &Paths,
    only: &[Section],
) -> Verdict {
    let mut rows = Vec::new();
    let selected = |budget: &&Budget| only.is_empty() || only.contains(&budget.section);
    for budget in budgets.budgets.iter().filter(selected) {
        let row = |check: &str| Row {
            section: budget.section,
            id: budget.id.clone(),
            check: check.to_owned(),
            measured: String::new(),
            limit: String::new(),
            passed: true,
            note: String::new(),
            ratio: None,
            allowed: None,
        };
        match budget.section {
            Section::Bench => {
                let Some(estimate) = current
                    .bench
                    .get(&budget.id)
                    .and_then(|estimates| estimates.get(budget.statistic.key()))
                else {
                    let mut missing = row(budget.statistic.key());
                    missing.passed = false;
                    missing.note = "no estimate".to_owned();
                    rows.push(missing);
                    continue;
                };
                if let Some(max) = budget.max {
                    let mut check = row(&format!("{} max", budget.statistic.key()));
                    check.measured = format!(
                        "{} [{}, {}]",
                        format_nanos(estimate.point),
                        format_nanos(estimate.lower),
                        format_nanos(estimate.upper)
                    );
                    check.limit = format_nanos(max);
                    check.passed = estimate.lower <= max;
                    check.note = match (check.passed, estimate.point > max) {
                        (false, _) => "the whole confidence interval is over budget".to_owned(),
                        (true, true) => "estimate over budget, within noise".to_owned(),
                        (true, false) => String::new(),
                    };
                    rows.push(check);
                }
                if let Some(allowed) = budget.regression {
                    let change = match baseline {
                        Some((_, saved)) => saved
                            .bench
                            .get(&budget.id)
                            .and_then(|estimates| estimates.get(budget.statistic.key()))
                            .map(|base| Interval {
                                point: estimate.point / base.point - 1.0,
                                lower: estimate.lower / base.upper - 1.0,
                                upper: estimate.upper / base.lower - 1.0,
                            }),
                        None => criterion_dir(&paths.criterion(), &budget.id).and_then(|dir| {
                            read_change(&dir.join("change/estimates.json"), budget.statistic)
                        }),
                    };
                    rows.push(regression_row(row("regression"), change, allowed, baseline));
                }
            }
            Section::Instructions => {
                let Some(count) = current.instructions.get(&budget.id).copied() else {
                    let mut missing = row("max");
                    missing.passed = false;
                    missing.note = "no count".to_owned();
                    rows.push(missing);
                    continue;
                };
                if let Some(max) = budget.max {
                    let mut check = row("max");
                    check.measured = format!("{count}");
                    check.limit = format!("{max}");
                    check.passed = count as f64 <= max;
                    rows.push(check);
                }
                if let Some(allowed) = budget.regression {
                    let change = baseline
                        .and_then(|(_, saved)| saved.instructions.get(&budget.id))
                        .map(|base| {
                            let change = count as f64 / (*base).max(1) as f64 - 1.0;
                            Interval {
                                point: change,
                                lower: change,
                                upper: change,
                            }
                        });
                    rows.push(regression_row(row("regression"), change, allowed, baseline));
                }
            }
            Section::Scenario => {
                let statistics = current.scenario.get(&budget.id);
                let failed = statistics
                    .and_then(|statistics| statistics.get("thresholds.failed"))
                    .copied()
                    .unwrap_or(f64::NAN);
                let count = statistics
                    .and_then(|statistics| statistics.get("thresholds.count"))
                    .copied()
                    .unwrap_or(0.0);
                let mut check = row("thresholds");
                check.measured = format!("{} of {count} hold", count - failed);
                check.limit = "all".to_owned();
                check.passed = failed == 0.0;
                if !check.passed {
                    check.note = format!(
                        "see {}",
                        paths
                            .sla()
                            .join(format!("{}.json", budget.id.replace('/', "--")))
                            .display()
                    );
                }
                rows.push(check);
                for (statistic, allowed) in &budget.scenario_regressions {
                    let value = statistics.and_then(|statistics| statistics.get(statistic));
                    let change = baseline
                        .and_then(|(_, saved)| saved.scenario.get(&budget.id))
                        .and_then(|saved| saved.get(statistic))
                        .zip(value)
                        .map(|(base, value)| {
                            let change = value / base.max(f64::MIN_POSITIVE) - 1.0;
                            Interval {
                                point: change,
                                lower: change,
                                upper: change,
                            }
                        });
                    let mut judged = regression_row(
                        row(&format!("{statistic} regression")),
                        change,
                        *allowed,
                        baseline,
                    );
                    if let Some(value) = value
                        && judged.note.is_empty()
                    {
                        judged.note =
                            match statistic.ends_with(".rate") || statistic.ends_with(".count") {
                                true => format!("now {value:.1}"),
                                false => format!("now {}", format_micros(*value)),
                            };
                    }
                    rows.push(judged);
                }
            }
        }
    }
    Verdict {
        budgets: budgets.path.display().to_string(),
        baseline: baseline.map(|(name, _)| name.to_owned()),
        rows,
    }
}

fn regression_row(
    mut row: Row,
    change: Option<Interval>,
    allowed: f64,
    baseline: Option<(&str, &Measurements)>,
) -> Row {
    row.limit = format!("+{:.0}%", allowed * 100.0);
    row.allowed = Some(allowed);
    match change {
        None => {
            row.measured = "-".to_owned();
            row.note = match baseline {
                Some((name, _)) => format!("baseline `{name}` has no value for this budget"),
                None => "no baseline to compare with".to_owned(),
            };
        }
        Some(change) => {
            row.measured = match change.lower == change.upper {
                true => format!("{:+.1}%", change.point * 100.0),
                false => format!(
                    "{:+.1}% [{:+.1}%, {:+.1}%]",
                    change.point * 100.0,
                    change.lower * 100.0,
                    change.upper * 100.0
                ),
            };
            row.ratio = Some(1.0 + change.point);
            row.passed = change.lower <= allowed;
            if !row.passed {
                row.note = "slower than the baseline beyond noise".to_owned();
            } else if change.point > allowed {
                row.note = "change over the limit, within noise".to_owned();
            }
        }
    }
    row
}

/// Reads a saved baseline.
pub fn read_baseline(paths: &Paths, name: &str) -> Result<Measurements, String> {
    let path = paths.baseline(name);
    let text = std::fs::read_to_string(&path).map_err(|error| {
        format!(
            "cannot read baseline `{name}` at {}: {error}; save one with `--save-baseline {name}`",
            path.display()
        )
    })?;
    serde_json::from_str(&text).map_err(|error| {
        format!(
            "baseline `{name}` at {} is not valid: {error}",
            path.display()
        )
    })
}

/// Saves `measurements` as baseline `name`; returns where.
pub fn save_baseline(
    paths: &Paths,
    name: &str,
    measurements: &Measurements,
) -> std::io::Result<PathBuf> {
    let path = paths.baseline(name);
    if let Some(dir) = path.parent() {
        std::fs::create_dir_all(dir)?;
    }
    let text = serde_json::to_string_pretty(measurements).map_err(std::io::Error::other)?;
    std::fs::write(&path, text)?;
    Ok(path)
}

/// Writes the verdict as `report.json`, `summary.md` and `trend.svg`
/// under the gate's directory; returns the directory.
pub fn write(verdict: &Verdict, paths: &Paths) -> std::io::Result<PathBuf> {
    let dir = paths.gate();
    std::fs::create_dir_all(&dir)?;
    let json = serde_json::to_string_pretty(verdict).map_err(std::io::Error::other)?;
    std::fs::write(dir.join("report.json"), json)?;
    std::fs::write(dir.join("summary.md"), verdict.markdown())?;
    let trend: Vec<(String, f64, Option<f64>)> = verdict
        .rows
        .iter()
        .filter_map(|row| {
            row.ratio
                .map(|ratio| (format!("{} {}", row.section, row.id), ratio, row.allowed))
        })
        .collect();
    crate::sla::plot::trend(&trend, &dir.join("trend.svg"))?;
    Ok(dir)
}

/// The directory criterion keeps benchmark `id`'s results in: found by
/// the `full_id` in each `new/benchmark.json`, since criterion makes
/// directory names from ids by replacing characters.
fn criterion_dir(root: &Path, id: &str) -> Option<PathBuf> {
    #[derive(Deserialize)]
    struct Benchmark {
        full_id: String,
    }

    let mut pending = vec![(root.to_owned(), 0)];
    while let Some((dir, depth)) = pending.pop() {
        let described = std::fs::read_to_string(dir.join("new/benchmark.json"))
            .ok()
            .and_then(|text| serde_json::from_str::<Benchmark>(&text).ok());
        if described.is_some_and(|benchmark| benchmark.full_id == id) {
            return Some(dir);
        }
        if depth >= 4 {
            continue;
        }
        let Ok(entries) = std::fs::read_dir(&dir) else {
            continue;
        };
        for entry in entries.flatten() {
            let path = entry.path();
            let name = entry.file_name();
            let skipped = ["new", "base", "change", "report"]
                .iter()
                .any(|skipped| name == *skipped);
            if path.is_dir() && !skipped {
                pending.push((path, depth + 1));
            }
        }
    }
    None
}

#[derive(Deserialize)]
struct CriterionEstimate {
    point_estimate: f64,
    confidence_interval: CriterionInterval,
}

#[derive(Deserialize)]
struct CriterionInterval {
    lower_bound: f64,
    upper_bound: f64,
}

impl From<CriterionEstimate> for Interval {
    fn from(estimate: CriterionEstimate) -> Interval {
        Interval {
            point: estimate.point_estimate,
            lower: estimate.confidence_interval.lower_bound,
            upper: estimate.confidence_interval.upper_bound,
        }
    }
}

fn read_estimates(path: &Path) -> Result<BTreeMap<String, Interval>, String> {
    let text = std::fs::read_to_string(path)
        .map_err(|error| format!("cannot read {}: {error}", path.display()))?;
    let estimates: BTreeMap<String, Option<CriterionEstimate>> = serde_json::from_str(&text)
        .map_err(|error| format!("{} is not criterion's estimates: {error}", path.display()))?;
    let estimates: BTreeMap<String, Interval> = estimates
        .into_iter()
        .filter_map(|(name, estimate)| estimate.map(|estimate| (name, estimate.into())))
        .collect();
    match estimates.contains_key("mean") {
        true => Ok(estimates),
        false => Err(format!("{} has no mean estimate", path.display())),
    }
}

fn read_change(path: &Path, statistic: Estimate) -> Option<Interval> {
    let text = std::fs::read_to_string(path).ok()?;
    let mut changes: BTreeMap<String, CriterionEstimate> = serde_json::from_str(&text).ok()?;
    changes.remove(statistic.key()).map(Interval::from)
}

#[derive(Deserialize)]
struct InstructionResults {
    cases: BTreeMap<String, InstructionCase>,
}

#[derive(Deserialize)]
struct InstructionCase {
    instructions: u64,
}

fn read_instructions(path: &Path) -> Result<BTreeMap<String, u64>, String> {
    let text = std::fs::read_to_string(path).map_err(|error| {
        format!(
            "cannot read {}: {error}; run `cargo bench --bench instructions`",
            path.display()
        )
    })?;
    let results: InstructionResults = serde_json::from_str(&text).map_err(|error| {
        format!(
            "{} is not an instruction count file: {error}",
            path.display()
        )
    })?;
    Ok(results
        .cases
        .into_iter()
        .map(|(id, case)| (id, case.instructions))
        .collect())
}

fn read_scenario(dir: &Path, name: &str) -> Result<Results, String> {
    let path = dir.join(format!("{}.json", name.replace('/', "--")));
    let text = std::fs::read_to_string(&path).map_err(|error| {
        format!(
            "cannot read {}: {error}; run the scenario with `cargo nextest run -E \
             'test(/^scenario::/)'`",
            path.display()
        )
    })?;
    serde_json::from_str(&text)
        .map_err(|error| format!("{} is not a scenario's results: {error}", path.display()))
}
