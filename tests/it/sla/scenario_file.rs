//! Scenario files: what a valid one means, and how an invalid one is
//! refused before anything runs, with its file, line and column.

use std::path::Path;
use std::time::Duration;

use anyhow::{bail, ensure};
use gymfleet::gym::sim::{Scheduled, ScheduledFault, Trigger};
use gymfleet::sla::Scenario;
use gymfleet::sla::scenario::{FleetKind, Workload};

fn parse(text: &str) -> Result<Scenario, gymfleet::sla::ScenarioError> {
    Scenario::parse(Path::new("tests/scenarios/example.toml"), "example", text)
}

/// Asserts that `text` is refused at `line`:`column` with a message
/// containing `needle`.
fn refused(text: &str, line: usize, column: usize, needle: &str) -> anyhow::Result<()> {
    let error = match parse(text) {
        Ok(scenario) => bail!("accepted: {scenario:?}"),
        Err(error) => error,
    };
    let shown = error.to_string();
    ensure!(shown.starts_with("tests/scenarios/example.toml:"), "{shown}");
    ensure!(error.message.contains(needle), "{shown} does not say {needle:?}");
    ensure!((error.line, error.column) == (line, column), "{shown}: expected {line}:{column}");
    Ok(())
}

const RUN: &str = r#"
description = "two servers, one dies"

[fleet]
servers = 2
latency = { fixed = "1ms", per_frame = "10us", jitter = { p50 = "100us", p99 = "1ms" } }

[[fleet.fault]]
server = 2
at = "1.5s"
die = true

[[fleet.fault]]
server = 1
after_requests = 10
errors = 5

[workload]
kind = "run"
duration = "2s"
seed = 9
strategy = "consensus"

[thresholds]
"propagation" = ["p99 < 1ms", "max < 250ms"]
"errors" = ["rate < 1%"]
"discoveries.lost" = ["== 0"]
"#;

#[gymfleet_harness::test]
fn a_run_scenario_parses_into_its_fleet_workload_and_thresholds() -> anyhow::Result<()> {
    let scenario = parse(RUN)?;
    ensure!(scenario.description == "two servers, one dies");
    let Some(fleet) = &scenario.fleet else { bail!("no fleet") };
    ensure!(fleet.servers == 2 && fleet.kind == FleetKind::Sim);
    ensure!(fleet.latency.fixed == Duration::from_millis(1));
    ensure!(fleet.latency.per_frame == Duration::from_micros(10));
    let jitter = fleet.latency.jitter.as_ref().map(|jitter| (jitter.p50, jitter.p99));
    ensure!(jitter == Some((Duration::from_micros(100), Duration::from_millis(1))), "{jitter:?}");
    ensure!(
        fleet.faults
            == vec![
                (1, Scheduled { at: Trigger::After(Duration::from_millis(1500)), fault: ScheduledFault::Die }),
                (0, Scheduled { at: Trigger::Request(10), fault: ScheduledFault::Errors { count: 5 } }),
            ],
        "{:?}",
        fleet.faults
    );
    let Workload::Run { duration, seed, strategy, stop_at_goal } = &scenario.workload else {
        bail!("{:?}", scenario.workload)
    };
    ensure!(*duration == Duration::from_secs(2) && *seed == 9 && !stop_at_goal);
    ensure!(*strategy == gymfleet::learning::Strategy::Consensus);
    let thresholds: Vec<(&str, &str)> =
        scenario.thresholds.iter().map(|(metric, threshold)| (metric.as_str(), threshold.source.as_str())).collect();
    ensure!(
        thresholds
            == [
                ("discoveries.lost", "== 0"),
                ("errors", "rate < 1%"),
                ("propagation", "p99 < 1ms"),
                ("propagation", "max < 250ms"),
            ],
        "{thresholds:?}"
    );
    Ok(())
}

#[gymfleet_harness::test]
fn a_propagation_scenario_needs_no_fleet() -> anyhow::Result<()> {
    let scenario = parse(
        r#"
[workload]
kind = "propagation"
subscribers = 64
batch = 10
publishes = 100
conflict_rate = 0.25

[thresholds]
"propagation" = ["p99 < 200us"]
"#,
    )?;
    let Workload::Propagation(workload) = &scenario.workload else { bail!("{:?}", scenario.workload) };
    ensure!(workload.subscribers == 64 && workload.batch == 10 && workload.publishes == 100);
    ensure!(workload.conflict_rate == 0.25 && workload.capacity == 64);
    ensure!(scenario.fleet.is_none());
    Ok(())
}

#[gymfleet_harness::test]
fn every_mistake_is_refused_where_it_is() -> anyhow::Result<()> {
    let workload = "[workload]\nkind = \"run\"\nduration = \"1s\"\n";
    let fleet = "[fleet]\nservers = 2\n";
    let thresholds = "[thresholds]\n\"errors\" = [\"rate < 1%\"]\n";

    // An unknown key, at the key.
    refused(&format!("{fleet}colour = \"red\"\n{workload}{thresholds}"), 3, 1, "unknown field `colour`")?;
    // A bad duration, at the value.
    refused(&format!("{fleet}[workload]\nkind = \"run\"\nduration = \"2 fortnights\"\n{thresholds}"), 5, 12, "unknown unit")?;
    // A duration with no unit.
    refused(&format!("{fleet}[workload]\nkind = \"run\"\nduration = \"2\"\n{thresholds}"), 5, 12, "has no unit")?;
    // An unknown workload kind.
    refused(&format!("{fleet}[workload]\nkind = \"soak\"\n{thresholds}"), 4, 8, "unknown variant `soak`")?;
    // An unknown metric, at its thresholds.
    refused(&format!("{fleet}{workload}[thresholds]\n\"latency\" = [\"p99 < 1ms\"]\n"), 7, 13, "unknown metric `latency`")?;
    // A bad threshold, at the exact character inside the string.
    refused(&format!("{fleet}{workload}[thresholds]\n\"propagation\" = [\"p99 < 1ms\", \"p99 < 1\"]\n"), 7, 38, "has no unit")?;
    // A threshold that does not fit its metric.
    refused(&format!("{fleet}{workload}[thresholds]\n\"errors\" = [\"p99 < 1ms\"]\n"), 7, 14, "does not apply")?;
    // No thresholds: a scenario that checks nothing.
    refused(&format!("{fleet}{workload}"), 1, 1, "cannot fail")?;
    // A run without servers, and a propagation workload with some.
    refused(&format!("{workload}{thresholds}"), 1, 1, "needs a `[fleet]`")?;
    refused(
        &format!("{fleet}[workload]\nkind = \"propagation\"\nsubscribers = 4\npublishes = 1\n[thresholds]\n\"propagation\" = [\"p99 < 1ms\"]\n"),
        1,
        1,
        "takes no `[fleet]`",
    )?;
    // Faults: a server out of range, two kinds at once, two triggers.
    refused(&format!("{fleet}[[fleet.fault]]\nserver = 3\ndie = true\n{workload}{thresholds}"), 3, 1, "between 1 and 2")?;
    refused(&format!("{fleet}[[fleet.fault]]\nserver = 1\ndie = true\nerrors = 3\n{workload}{thresholds}"), 3, 1, "exactly one of")?;
    refused(
        &format!("{fleet}[[fleet.fault]]\nserver = 1\nat = \"1s\"\nafter_requests = 3\ndie = true\n{workload}{thresholds}"),
        3,
        1,
        "not both",
    )?;
    // Zero subscribers.
    refused(
        "[workload]\nkind = \"propagation\"\nsubscribers = 0\npublishes = 1\n[thresholds]\n\"propagation\" = [\"p99 < 1ms\"]\n",
        3,
        15,
        "at least 1",
    )?;
    // Jitter whose p99 is below its p50.
    refused(
        &format!("[fleet]\nservers = 1\nlatency = {{ jitter = {{ p50 = \"2ms\", p99 = \"1ms\" }} }}\n{workload}{thresholds}"),
        3,
        22,
        "`p99` at least `p50`",
    )?;
    Ok(())
}

#[gymfleet_harness::test]
fn every_shipped_scenario_parses() -> anyhow::Result<()> {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/scenarios");
    let mut n_files = 0;
    for entry in std::fs::read_dir(&dir)? {
        let path = entry?.path();
        let name = path.file_stem().map(|stem| stem.to_string_lossy().into_owned()).unwrap_or_default();
        let scenario = Scenario::read(&path, &name)?;
        ensure!(!scenario.description.is_empty(), "{} has no description", path.display());
        n_files += 1;
    }
    ensure!(n_files >= 6, "only {n_files} scenario files");
    Ok(())
}
