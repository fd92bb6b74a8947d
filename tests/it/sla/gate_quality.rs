//! The gate's own quality, measured for real: on unchanged code it passes
//! run after run (no false alarm), and a 2× slowdown injected into one
//! benchmarked function (`GYMFLEET_BENCH_SLOWDOWN`) is caught every time,
//! both by instruction counts and by criterion's wall-clock estimates.
//!
//! It runs the benches themselves, a few minutes of work, so it is opt-in:
//! set `GYMFLEET_GATE_QUALITY=1` (the README shows its measured results).

use std::path::Path;
use std::process::{Command, Output};

use anyhow::{Context as _, ensure};

const ROUNDS: usize = 5;
const SLOWED: &str = "decode/largest_game_state";

fn root() -> &'static Path {
    Path::new(env!("CARGO_MANIFEST_DIR"))
}

fn run(command: &mut Command) -> anyhow::Result<Output> {
    let output = command.current_dir(root()).output().with_context(|| format!("cannot run {command:?}"))?;
    Ok(output)
}

/// Runs the benchmarks the gate reads, `slowed` naming the one to slow
/// down, if any.
fn measure(slowed: Option<&str>) -> anyhow::Result<()> {
    let mut benches = [
        vec!["bench", "--bench", "instructions", "--", "decode"],
        vec!["bench", "--bench", "gym", "--", "--quick", "decode/"],
    ];
    for args in &mut benches {
        let mut command = Command::new(env!("CARGO"));
        command.args(args.iter()).env("GYMFLEET_BENCH_REPORTS", "0");
        match slowed {
            Some(id) => command.env("GYMFLEET_BENCH_SLOWDOWN", id),
            None => command.env_remove("GYMFLEET_BENCH_SLOWDOWN"),
        };
        let output = run(&mut command)?;
        ensure!(output.status.success(), "{args:?} failed: {}", String::from_utf8_lossy(&output.stderr));
    }
    Ok(())
}

/// Runs the gate on the decode budgets against baseline `quality`.
fn gate(budgets: &Path, extra: &[&str]) -> anyhow::Result<Output> {
    run(Command::new(env!("CARGO_BIN_EXE_gymfleet"))
        .arg("gate")
        .arg("--budgets")
        .arg(budgets)
        .args(["--only", "bench", "--only", "instructions"])
        .args(extra)
        .env_remove("GITHUB_STEP_SUMMARY"))
}

#[gymfleet_harness::test(requires_env = "GYMFLEET_GATE_QUALITY")]
fn the_gate_passes_unchanged_code_and_catches_a_doubled_cost_every_time() -> anyhow::Result<()> {
    // The shipped budgets for the decode function only: absolute limits
    // and allowed regressions, both for wall clock and for instructions.
    let budgets = Path::new(env!("CARGO_TARGET_TMPDIR")).join("gate-quality-budgets.toml");
    std::fs::write(
        &budgets,
        format!(
            "[bench.\"{SLOWED}\"]\nmax = \"10us\"\nregression = \"50%\"\n\n\
             [instructions.\"{SLOWED}\"]\nmax = 72000\nregression = \"2%\"\n"
        ),
    )?;

    measure(None)?;
    let saved = gate(&budgets, &["--save-baseline", "quality"])?;
    ensure!(saved.status.success(), "{}", String::from_utf8_lossy(&saved.stderr));

    let mut false_alarms = 0;
    let mut missed = 0;
    for round in 1..=ROUNDS {
        measure(None)?;
        let unchanged = gate(&budgets, &["--baseline", "quality"])?;
        println!("round {round}, unchanged:\n{}", String::from_utf8_lossy(&unchanged.stdout));
        false_alarms += usize::from(!unchanged.status.success());

        measure(Some(SLOWED))?;
        let slowed = gate(&budgets, &["--baseline", "quality"])?;
        let stderr = String::from_utf8_lossy(&slowed.stderr);
        println!("round {round}, decode doubled:\n{}", String::from_utf8_lossy(&slowed.stdout));
        // Caught means: exit 1, and both the wall-clock regression and the
        // instruction count flagged.
        let caught = slowed.status.code() == Some(1)
            && stderr.contains(&format!("error: bench `{SLOWED}` regression"))
            && stderr.contains(&format!("error: instructions `{SLOWED}`"));
        missed += usize::from(!caught);
    }
    // Leave the results of unchanged code behind.
    measure(None)?;
    println!("{ROUNDS} rounds: {false_alarms} false alarms, {missed} missed slowdowns");
    ensure!(false_alarms == 0 && missed == 0, "{false_alarms} false alarms, {missed} missed slowdowns in {ROUNDS} rounds");
    Ok(())
}
