//! `gymfleet gate` on results written here: noise-aware verdicts,
//! baselines, instruction counts, scenario results, and refusals of bad
//! budgets files and missing results.

use std::path::{Path, PathBuf};
use std::process::Command;

use anyhow::{Context as _, bail, ensure};
use gymfleet::sla::gate::{self, Budgets, Paths, Section, Verdict};
use serde_json::json;

/// A fresh directory standing in for a target directory.
fn scratch(name: &str) -> anyhow::Result<PathBuf> {
    let dir = Path::new(env!("CARGO_TARGET_TMPDIR")).join("gate").join(format!("{name}-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir)?;
    Ok(dir)
}

fn write(path: &Path, text: &str) -> anyhow::Result<()> {
    std::fs::create_dir_all(path.parent().context("a parent")?)?;
    std::fs::write(path, text)?;
    Ok(())
}

/// Writes criterion's `new/estimates.json` for `id`: a mean of `point`
/// nanoseconds with the interval `[lower, upper]`.
fn estimate(target: &Path, id: &str, point: f64, lower: f64, upper: f64) -> anyhow::Result<()> {
    let interval = json!({
        "confidence_interval": {"confidence_level": 0.95, "lower_bound": lower, "upper_bound": upper},
        "point_estimate": point,
        "standard_error": (upper - lower) / 4.0,
    });
    let estimates = json!({"mean": interval, "median": interval, "median_abs_dev": interval, "slope": null, "std_dev": interval});
    // Criterion names directories after ids with `/` replaced, and records
    // the id itself in `benchmark.json`.
    let dir = target.join("criterion").join(id.replace('/', "_"));
    write(&dir.join("new/benchmark.json"), &json!({"full_id": id}).to_string())?;
    write(&dir.join("new/estimates.json"), &estimates.to_string())
}

/// Writes criterion's `change/estimates.json` for `id`: a relative change
/// of the mean.
fn change(target: &Path, id: &str, point: f64, lower: f64, upper: f64) -> anyhow::Result<()> {
    let interval = json!({
        "confidence_interval": {"confidence_level": 0.95, "lower_bound": lower, "upper_bound": upper},
        "point_estimate": point,
        "standard_error": 0.01,
    });
    let dir = target.join("criterion").join(id.replace('/', "_"));
    write(&dir.join("change/estimates.json"), &json!({"mean": interval, "median": interval}).to_string())
}

fn instructions(target: &Path, counts: &[(&str, u64)]) -> anyhow::Result<()> {
    let cases: serde_json::Map<String, serde_json::Value> = counts
        .iter()
        .map(|(id, count)| (id.to_string(), json!({"instructions": count, "iterations": 1000, "total": count * 1000, "setup": 0})))
        .collect();
    write(
        &target.join("gymfleet/instructions/results.json"),
        &json!({"tool": "callgrind", "valgrind": "valgrind-3", "cases": cases}).to_string(),
    )
}

fn judge(budgets: &str, target: &Path, baseline: Option<&str>) -> anyhow::Result<Verdict> {
    let budgets = Budgets::parse(Path::new(".config/budgets.toml"), budgets)?;
    let paths = Paths { target: target.to_owned() };
    let current = gate::measure(&budgets, &paths, &[]).map_err(|errors| anyhow::anyhow!("{errors:?}"))?;
    let saved = match baseline {
        Some(name) => Some((name, gate::read_baseline(&paths, name).map_err(anyhow::Error::msg)?)),
        None => None,
    };
    Ok(gate::judge(&budgets, &current, saved.as_ref().map(|(name, saved)| (*name, saved)), &paths, &[]))
}

const DECODE: &str = "[bench.\"decode/largest_game_state\"]\nmax = \"5us\"\nregression = \"10%\"\n";

#[gymfleet_harness::test]
fn an_absolute_budget_fails_only_when_the_whole_interval_is_over_it() -> anyhow::Result<()> {
    let target = scratch("absolute")?;
    // Under the budget.
    estimate(&target, "decode/largest_game_state", 3_200.0, 3_100.0, 3_300.0)?;
    let verdict = judge(DECODE, &target, None)?;
    ensure!(verdict.passed(), "{}", verdict.render());

    // The estimate is over, but the interval reaches under: noise.
    estimate(&target, "decode/largest_game_state", 5_100.0, 4_900.0, 5_300.0)?;
    let verdict = judge(DECODE, &target, None)?;
    ensure!(verdict.passed(), "{}", verdict.render());
    ensure!(verdict.rows[0].note.contains("within noise"), "{}", verdict.render());

    // The whole interval is over: a failure.
    estimate(&target, "decode/largest_game_state", 6_400.0, 6_300.0, 6_500.0)?;
    let verdict = judge(DECODE, &target, None)?;
    ensure!(!verdict.passed(), "{}", verdict.render());
    let failure = verdict.failures().next().context("a failure")?;
    ensure!(failure.check == "mean max" && failure.measured.starts_with("6.40us"), "{failure:?}");
    Ok(())
}

#[gymfleet_harness::test]
fn a_regression_fails_only_when_the_lower_bound_of_the_change_is_over_the_allowance() -> anyhow::Result<()> {
    let target = scratch("regression")?;
    estimate(&target, "decode/largest_game_state", 3_200.0, 3_100.0, 3_300.0)?;

    // With no baseline and no change from criterion, a regression cannot
    // be judged; the absolute budget still is.
    let verdict = judge(DECODE, &target, None)?;
    let regression = verdict.rows.iter().find(|row| row.check == "regression").context("a regression row")?;
    ensure!(regression.passed && regression.note.contains("no baseline"), "{regression:?}");

    // +27% measured, but the interval reaches down to +2%: noise.
    change(&target, "decode/largest_game_state", 0.27, 0.02, 0.50)?;
    let verdict = judge(DECODE, &target, None)?;
    ensure!(verdict.passed(), "{}", verdict.render());

    // +100%, at least +90%: caught.
    change(&target, "decode/largest_game_state", 1.0, 0.9, 1.1)?;
    let verdict = judge(DECODE, &target, None)?;
    ensure!(!verdict.passed(), "{}", verdict.render());
    Ok(())
}

#[gymfleet_harness::test]
fn a_saved_baseline_is_compared_conservatively() -> anyhow::Result<()> {
    let target = scratch("baseline")?;
    let paths = Paths { target: target.clone() };
    let budgets_text = format!("{DECODE}[instructions.\"learning/create_discovery\"]\nmax = 5000\nregression = \"1%\"\n");
    let budgets = Budgets::parse(Path::new("budgets.toml"), &budgets_text)?;

    estimate(&target, "decode/largest_game_state", 3_200.0, 3_000.0, 3_400.0)?;
    instructions(&target, &[("learning/create_discovery", 1_000)])?;
    let saved = gate::measure(&budgets, &paths, &[]).map_err(|errors| anyhow::anyhow!("{errors:?}"))?;
    gate::save_baseline(&paths, "main", &saved)?;

    // Unchanged: passes, including the exact instruction count.
    let verdict = judge(&budgets_text, &target, Some("main"))?;
    ensure!(verdict.passed(), "{}", verdict.render());
    ensure!(verdict.baseline.as_deref() == Some("main"));

    // 15% slower on its point estimate, but the intervals overlap enough
    // that the change's lower bound is under 10%.
    estimate(&target, "decode/largest_game_state", 3_680.0, 3_500.0, 3_860.0)?;
    let verdict = judge(&budgets_text, &target, Some("main"))?;
    ensure!(verdict.passed(), "{}", verdict.render());

    // Twice as slow, and eleven more instructions in a thousand.
    estimate(&target, "decode/largest_game_state", 6_400.0, 6_300.0, 6_500.0)?;
    instructions(&target, &[("learning/create_discovery", 1_011)])?;
    let verdict = judge(&budgets_text, &target, Some("main"))?;
    let failed: Vec<(Section, &str)> = verdict.failures().map(|row| (row.section, row.check.as_str())).collect();
    ensure!(
        failed == [(Section::Bench, "mean max"), (Section::Bench, "regression"), (Section::Instructions, "regression")],
        "{}",
        verdict.render()
    );

    // A baseline that was never saved is an error that says how to save it.
    let missing = gate::read_baseline(&paths, "nightly").err().context("no such baseline")?;
    ensure!(missing.contains("--save-baseline nightly"), "{missing}");
    Ok(())
}

#[gymfleet_harness::test]
fn instruction_counts_are_compared_exactly() -> anyhow::Result<()> {
    let target = scratch("instructions")?;
    let budgets = "[instructions.\"decode/largest_game_state\"]\nmax = 20000\n";
    instructions(&target, &[("decode/largest_game_state", 20_000)])?;
    ensure!(judge(budgets, &target, None)?.passed());
    instructions(&target, &[("decode/largest_game_state", 20_001)])?;
    ensure!(!judge(budgets, &target, None)?.passed());
    Ok(())
}

#[gymfleet_harness::test]
fn a_scenario_budget_needs_every_threshold_to_have_held_in_an_optimized_build() -> anyhow::Result<()> {
    let target = scratch("scenario")?;
    let results = |passed: bool, optimized: bool| {
        json!({
            "scenario": "healthy", "file": "tests/scenarios/healthy.toml", "passed": passed,
            "optimized": optimized, "elapsed_s": 1.0,
            "checks": [{"metric": "propagation", "threshold": "p99 < 1ms", "measured": "2.00ms", "value": 2000.0, "passed": passed, "enforced": true}],
            "metrics": {"propagation": {"kind": "trend", "unit": "us", "count": 1, "min": 2000, "max": 2000, "mean": 2000.0,
                "p50": 2000, "p90": 2000, "p95": 2000, "p99": 2000, "p999": 2000, "histogram": [[2000, 1]]}}
        })
        .to_string()
    };
    let budgets = "[scenario.\"healthy\"]\nregression = { \"propagation.p99\" = \"50%\" }\n";
    let file = target.join("gymfleet/sla/healthy.json");

    write(&file, &results(true, true))?;
    ensure!(judge(budgets, &target, None)?.passed());
    write(&file, &results(false, true))?;
    let verdict = judge(budgets, &target, None)?;
    ensure!(!verdict.passed() && verdict.rows[0].measured == "0 of 1 hold", "{}", verdict.render());

    write(&file, &results(true, false))?;
    let error = judge(budgets, &target, None).err().context("debug results are refused")?;
    ensure!(error.to_string().contains("debug build"), "{error}");
    Ok(())
}

#[gymfleet_harness::test]
fn a_budgets_file_is_refused_with_its_line() -> anyhow::Result<()> {
    for (text, line, needle) in [
        ("[bench.\"a\"]\nmax = \"1us\"\nmaximum = \"2us\"\n", 3, "unknown field `maximum`"),
        ("[bench.\"a\"]\nmax = \"1 microsecond\"\n", 2, "unknown unit"),
        ("[bench.\"a\"]\nmax = \"1\"\n", 2, "has no unit"),
        ("[bench.\"a\"]\nregression = \"ten percent\"\n", 2, "not a percentage"),
        ("\n[bench.\"a\"]\nstatistic = \"median\"\n", 2, "neither `max` nor `regression`"),
        ("[benchmark.\"a\"]\nmax = \"1us\"\n", 1, "unknown field `benchmark`"),
        ("[instructions.\"a\"]\nmax = \"many\"\n", 2, "invalid type"),
        ("[scenario.\"a\"]\nregression = { \"p99\" = \"5%\" }\n", 1, "`<metric>.<statistic>`"),
    ] {
        let error = match Budgets::parse(Path::new(".config/budgets.toml"), text) {
            Ok(budgets) => bail!("accepted {text:?}: {budgets:?}"),
            Err(error) => error,
        };
        let shown = error.to_string();
        ensure!(shown.starts_with(".config/budgets.toml:"), "{shown}");
        ensure!(error.line == line && shown.contains(needle), "{text:?}: {shown}");
    }
    Ok(())
}

#[gymfleet_harness::test]
fn a_budget_with_no_result_is_an_error_naming_its_line() -> anyhow::Result<()> {
    let target = scratch("missing")?;
    instructions(&target, &[("decode/largest_game_state", 100)])?;
    let text = format!("{DECODE}\n[instructions.\"learning/create_discovery\"]\nmax = 10\n\n[scenario.\"gone\"]\n");
    let budgets = Budgets::parse(Path::new(".config/budgets.toml"), &text)?;
    let errors = match gate::measure(&budgets, &Paths { target }, &[]) {
        Ok(measured) => bail!("measured {measured:?}"),
        Err(errors) => errors,
    };
    let shown: Vec<String> = errors.iter().map(ToString::to_string).collect();
    ensure!(shown.len() == 3, "{shown:#?}");
    ensure!(shown[0].starts_with(".config/budgets.toml:1:") && shown[0].contains("bench `decode/largest_game_state` has no result"), "{shown:#?}");
    ensure!(shown[1].starts_with(".config/budgets.toml:5:") && shown[1].contains("the cases measured are: decode/largest_game_state"), "{shown:#?}");
    ensure!(shown[2].starts_with(".config/budgets.toml:8:") && shown[2].contains("scenario `gone` has no result"), "{shown:#?}");
    Ok(())
}

#[gymfleet_harness::test]
fn the_command_exits_by_verdict_and_writes_its_reports() -> anyhow::Result<()> {
    let target = scratch("command")?;
    let budgets = target.join("budgets.toml");
    write(&budgets, DECODE)?;
    let gate = |extra: &[&str]| {
        Command::new(env!("CARGO_BIN_EXE_gymfleet"))
            .arg("gate")
            .arg("--budgets")
            .arg(&budgets)
            .arg("--target-dir")
            .arg(&target)
            .args(extra)
            .env_remove("GITHUB_STEP_SUMMARY")
            .output()
            .context("cannot start gymfleet")
    };

    // No result yet: exit 2, the budget's line named.
    let output = gate(&[])?;
    let stderr = String::from_utf8_lossy(&output.stderr);
    ensure!(output.status.code() == Some(2), "{:?}: {stderr}", output.status);
    ensure!(stderr.contains("budgets.toml:1:1: bench `decode/largest_game_state` has no result"), "{stderr}");

    // Within budget: exit 0, a table, and the reports.
    estimate(&target, "decode/largest_game_state", 3_200.0, 3_100.0, 3_300.0)?;
    let output = gate(&["--save-baseline", "before"])?;
    let stdout = String::from_utf8_lossy(&output.stdout);
    ensure!(output.status.success(), "{stdout}{}", String::from_utf8_lossy(&output.stderr));
    ensure!(stdout.contains("bench decode/largest_game_state") && stdout.contains("pass"), "{stdout}");
    for file in ["report.json", "summary.md", "trend.svg"] {
        ensure!(target.join("gymfleet/gate").join(file).is_file(), "no {file}");
    }
    ensure!(target.join("gymfleet/baselines/before.json").is_file(), "the baseline was not saved");

    // Twice as slow: exit 1, one message per failure.
    estimate(&target, "decode/largest_game_state", 6_400.0, 6_300.0, 6_500.0)?;
    let output = gate(&["--baseline", "before", "--json"])?;
    let stderr = String::from_utf8_lossy(&output.stderr);
    ensure!(output.status.code() == Some(1), "{:?}: {stderr}", output.status);
    let verdict: Verdict = serde_json::from_slice(&output.stdout).context("--json prints the verdict")?;
    ensure!(verdict.failures().count() == 2, "{verdict:?}");
    ensure!(stderr.matches("error: bench `decode/largest_game_state`").count() == 2, "{stderr}");
    let summary = std::fs::read_to_string(target.join("gymfleet/gate/summary.md"))?;
    ensure!(summary.contains("2 of 2 checks failed") && summary.contains("**FAIL**"), "{summary}");
    let svg = std::fs::read_to_string(target.join("gymfleet/gate/trend.svg"))?;
    ensure!(svg.starts_with("<svg") && svg.contains("decode/largest_game_state"), "{svg}");

    // A bad option value is refused by name.
    let output = gate(&["--only", "everything"])?;
    ensure!(output.status.code() == Some(2), "{:?}", output.status);
    ensure!(String::from_utf8_lossy(&output.stderr).contains("--only"), "{}", String::from_utf8_lossy(&output.stderr));
    Ok(())
}

#[gymfleet_harness::test]
fn the_shipped_budgets_file_parses() -> anyhow::Result<()> {
    let path = Path::new(env!("CARGO_MANIFEST_DIR")).join(".config/budgets.toml");
    let budgets = Budgets::read(&path)?;
    for section in [Section::Bench, Section::Instructions, Section::Scenario] {
        ensure!(budgets.budgets.iter().any(|budget| budget.section == section), "no {section} budget");
    }
    Ok(())
}
