//! Instructions per call of the hot pure functions, counted by valgrind's
//! callgrind: unlike wall time on a shared machine, the count repeats from
//! run to run.
//!
//! For each case the bench runs its own executable under callgrind twice,
//! once making `ITERATIONS` calls and once making none. Both runs build the
//! same inputs, so process start-up and set-up cost the same in each, and
//! the difference divided by `ITERATIONS` is the cost of one call. Inputs a
//! run does not consume are leaked rather than dropped, so that freeing them
//! is not counted in one run only.
//!
//! Case ids are those of the criterion benches that time the same work
//! (`benches/learning.rs`, `benches/gym.rs`), with the same inputs, so that
//! a budget can name either. One difference: a created discovery gets a
//! fixed id instead of one read from the wall clock, so that the count
//! covers the draft's clone and `finish` alone.
//!
//! `GYMFLEET_BENCH_SLOWDOWN=<case id>` makes that case do its work twice per
//! call, to show that a gate on these counts catches a regression.
//!
//! The table goes to stdout and the counts to
//! `<target dir>/gymfleet/instructions/results.json`. Without `--bench` (as
//! under `cargo test --benches`) each case runs once, natively, as a check.

use std::hint::black_box;
use std::path::{Path, PathBuf};
use std::process::{Command, ExitCode};

use anyhow::{Context as _, bail};
use gymfleet::gym::wire::{self, Endpoint, GameState};
#[path = "inputs/discoveries.rs"]
mod discoveries;
#[path = "inputs/game_state.rs"]
mod game_state;

use discoveries::{discovery, draft};
use game_state::largest_state;
use gymfleet::learning::{Discovery, DiscoveryId, Knowledge, Strategy, WorkerId};

/// Calls per measured run; large enough that rounding the difference to a
/// whole number of instructions per call does not matter.
const ITERATIONS: u64 = 1_000;

/// Set in a child process: the id of the case to run.
const CHILD_CASE: &str = "GYMFLEET_INSTRUCTIONS_CASE";

/// Set in a child process: how many of the prepared calls to make.
const CHILD_ITERATIONS: &str = "GYMFLEET_INSTRUCTIONS_ITERATIONS";

/// A case id whose work is done twice per call.
const SLOWDOWN: &str = "GYMFLEET_BENCH_SLOWDOWN";

fn main() -> ExitCode {
    if let Ok(case_id) = std::env::var(CHILD_CASE) {
        return match run_child(&case_id) {
            Ok(()) => ExitCode::SUCCESS,
            Err(error) => {
                eprintln!("error: {error:#}");
                ExitCode::FAILURE
            }
        };
    }

    let (flags, filters) = split_arguments(std::env::args().skip(1));
    let cases: Vec<Case> = Case::all()
        .into_iter()
        .filter(|case| filters.is_empty() || filters.iter().any(|f| case.id().contains(f)))
        .collect();
    let has_flag = |flag: &str| flags.iter().any(|given| given == flag);

    if has_flag("--list") {
        for case in &cases {
            println!("{}: benchmark", case.id());
        }
        return ExitCode::SUCCESS;
    }
    if !has_flag("--bench") {
        for case in &cases {
            case.run(1, 1);
            println!("{}: ok", case.id());
        }
        return ExitCode::SUCCESS;
    }
    match measure(&cases) {
        Ok(()) => ExitCode::SUCCESS,
        Err(error) => {
            eprintln!("error: {error:#}");
            ExitCode::FAILURE
        }
    }
}

/// A measured function with its inputs.
#[derive(Debug, Clone, Copy)]
enum Case {
    /// `DiscoveryDraft::finish` on a clone of one draft.
    CreateDiscovery,
    /// Eight discoveries on one topic, three distinct payloads, inserted
    /// into empty knowledge, then the topic's belief.
    Resolve(Strategy),
    /// `wire::decode` of the largest game state.
    Decode,
}

impl Case {
    fn all() -> Vec<Case> {
        let resolve = Strategy::ALL.into_iter().map(Case::Resolve);
        [Case::CreateDiscovery]
            .into_iter()
            .chain(resolve)
            .chain([Case::Decode])
            .collect()
    }

    fn id(self) -> String {
        match self {
            Case::CreateDiscovery => "learning/create_discovery".to_owned(),
            Case::Resolve(strategy) => format!("learning/resolve_8_conflicting/{strategy:?}"),
            Case::Decode => "decode/largest_game_state".to_owned(),
        }
    }

    /// Returns true if and only if `GYMFLEET_BENCH_SLOWDOWN` names this case.
    fn slowed_down(self) -> bool {
        std::env::var(SLOWDOWN).is_ok_and(|id| id == self.id())
    }

    /// Builds the inputs for `n_prepared` calls and makes the first
    /// `n_calls` of them.
    fn run(self, n_prepared: u64, n_calls: u64) {
        let n_repeats = if self.slowed_down() { 2 } else { 1 };
        let (n_prepared, n_calls) = (n_prepared * n_repeats, n_calls * n_repeats);
        match self {
            Case::CreateDiscovery => {
                let template = draft(1, 2);
                for sequence in 0..n_calls {
                    let id = DiscoveryId {
                        wall_ms: 1_750_000_000_000,
                        worker: WorkerId(1),
                        sequence,
                    };
                    let draft = black_box(&template).clone();
                    black_box(draft.finish(black_box(id)).expect("a valid discovery"));
                }
            }
            Case::Resolve(strategy) => {
                let conflicting: Vec<Discovery> =
                    (0..8).map(|index| discovery(index, 0, index % 3)).collect();
                let topic = conflicting[0].topic().clone();
                let mut inputs: Vec<Vec<Discovery>> =
                    (0..n_prepared).map(|_| conflicting.clone()).collect();
                for _ in 0..n_calls {
                    let discoveries = inputs.pop().expect("an input per call");
                    let mut knowledge = Knowledge::new(strategy);
                    for discovery in black_box(discoveries) {
                        knowledge.insert(discovery);
                    }
                    black_box(knowledge.belief(black_box(&topic)));
                }
                std::mem::forget(inputs);
            }
            Case::Decode => {
                let body = largest_state();
                for _ in 0..n_calls {
                    let state = wire::decode::<GameState>(Endpoint::Action, 200, black_box(&body));
                    black_box(state.expect("the fixture decodes"));
                }
            }
        }
    }
}

/// One case's counts, from two callgrind runs.
#[derive(Debug)]
struct Measurement {
    /// Instructions of the run making `ITERATIONS` calls.
    total: u64,
    /// Instructions of the run making none.
    setup: u64,
}

impl Measurement {
    /// The difference per call, or `None` if the run making calls counted
    /// fewer instructions than the one making none.
    fn per_call(&self) -> Option<u64> {
        Some(self.total.checked_sub(self.setup)? / ITERATIONS)
    }
}

/// Measures every case under callgrind, prints the table and writes the
/// results file.
fn measure(cases: &[Case]) -> anyhow::Result<()> {
    let valgrind = match Command::new("valgrind").arg("--version").output() {
        Ok(output) if output.status.success() => {
            String::from_utf8_lossy(&output.stdout).trim().to_owned()
        }
        _ => bail!(
            "`valgrind --version` failed: this bench counts instructions with valgrind's \
             callgrind; install valgrind (for example `apt-get install valgrind`)"
        ),
    };
    if let Ok(id) = std::env::var(SLOWDOWN) {
        let known = Case::all().iter().any(|case| case.id() == id);
        let effect = match known {
            true => "does its work twice per call",
            false => "is not a case; nothing is slowed down",
        };
        eprintln!("warning: {SLOWDOWN} is set: `{id}` {effect}");
    }
    let exe = std::env::current_exe().context("finding this bench's executable")?;

    println!("instructions per call ({valgrind} callgrind, {ITERATIONS} calls less 0 calls)");
    println!("  {:<48} {:>12}", "case", "instructions");
    let mut results = serde_json::Map::new();
    for case in cases {
        let measurement = Measurement {
            total: count_instructions(&exe, *case, ITERATIONS)?,
            setup: count_instructions(&exe, *case, 0)?,
        };
        let Some(per_call) = measurement.per_call() else {
            bail!(
                "case `{}`: {ITERATIONS} calls counted fewer instructions ({}) than none ({})",
                case.id(),
                measurement.total,
                measurement.setup
            );
        };
        println!("  {:<48} {:>12}", case.id(), per_call);
        results.insert(
            case.id(),
            serde_json::json!({
                "instructions": per_call,
                "iterations": ITERATIONS,
                "total": measurement.total,
                "setup": measurement.setup,
            }),
        );
    }

    let document = serde_json::json!({
        "tool": "callgrind",
        "valgrind": valgrind,
        "cases": results,
    });
    let path = results_path();
    std::fs::create_dir_all(path.parent().expect("the results file is in a directory"))
        .with_context(|| format!("creating the directory of `{}`", path.display()))?;
    let text = serde_json::to_string_pretty(&document).expect("a JSON value serializes");
    std::fs::write(&path, text + "\n").with_context(|| format!("writing `{}`", path.display()))?;
    println!("wrote {}", path.display());
    Ok(())
}

/// Runs `case` with `n_calls` calls in a child process under callgrind and
/// returns the instructions the child executed.
fn count_instructions(exe: &Path, case: Case, n_calls: u64) -> anyhow::Result<u64> {
    let out_file = std::env::temp_dir().join(format!(
        "gymfleet-instructions-{}-{n_calls}.out",
        std::process::id()
    ));
    let output = Command::new("valgrind")
        .arg("--tool=callgrind")
        .arg(format!("--callgrind-out-file={}", out_file.display()))
        .arg("--dump-instr=no")
        .arg(exe)
        .env(CHILD_CASE, case.id())
        .env(CHILD_ITERATIONS, n_calls.to_string())
        .output()
        .context("starting valgrind")?;
    if !output.status.success() {
        bail!(
            "case `{}` with {n_calls} calls failed under callgrind ({}):\n{}",
            case.id(),
            output.status,
            String::from_utf8_lossy(&output.stderr)
        );
    }

    let profile = std::fs::read_to_string(&out_file)
        .with_context(|| format!("reading callgrind's output `{}`", out_file.display()))?;
    // Only a run that was read is cleaned up; a failed one stays to look at.
    let _ = std::fs::remove_file(&out_file);
    // With one event (`Ir`, instructions executed), both lines hold one
    // number.
    let total = profile
        .lines()
        .find_map(|line| {
            let rest = line
                .strip_prefix("totals:")
                .or(line.strip_prefix("summary:"))?;
            rest.trim().parse::<u64>().ok()
        })
        .with_context(|| format!("no `totals:` line in `{}`", out_file.display()))?;
    Ok(total)
}

/// What a child process does: builds the inputs for `ITERATIONS` calls of
/// the named case and makes as many of them as it is told.
fn run_child(case_id: &str) -> anyhow::Result<()> {
    let case = Case::all()
        .into_iter()
        .find(|case| case.id() == case_id)
        .with_context(|| format!("no case `{case_id}`"))?;
    let n_calls: u64 = std::env::var(CHILD_ITERATIONS)
        .context(CHILD_ITERATIONS)?
        .parse()
        .with_context(|| format!("{CHILD_ITERATIONS} is not a count"))?;
    if n_calls > ITERATIONS {
        bail!("{CHILD_ITERATIONS} is {n_calls}, above the {ITERATIONS} prepared calls");
    }
    case.run(ITERATIONS, n_calls);
    Ok(())
}

/// Splits the command line into flags and filters. Flags are cargo's,
/// libtest's and criterion's (`--bench`, `--list`, `--format terse`); only
/// `--bench` and `--list` mean something here. Any other argument is a
/// filter: a case runs if its id contains one.
fn split_arguments(mut arguments: impl Iterator<Item = String>) -> (Vec<String>, Vec<String>) {
    const TAKE_A_VALUE: [&str; 7] = [
        "--format",
        "--color",
        "--logfile",
        "--skip",
        "--test-threads",
        "--save-baseline",
        "--baseline",
    ];
    let (mut flags, mut filters) = (Vec::new(), Vec::new());
    while let Some(argument) = arguments.next() {
        match argument.starts_with('-') {
            true => {
                if TAKE_A_VALUE.contains(&argument.as_str()) {
                    arguments.next();
                }
                flags.push(argument);
            }
            false => filters.push(argument),
        }
    }
    (flags, filters)
}

/// `<target dir>/gymfleet/instructions/results.json`, where the target
/// directory is `CARGO_TARGET_DIR` (relative to the workspace root if
/// relative) or the workspace's `target`.
fn results_path() -> PathBuf {
    let root = Path::new(env!("CARGO_MANIFEST_DIR"));
    let target = match std::env::var_os("CARGO_TARGET_DIR") {
        Some(dir) => root.join(dir),
        None => root.join("target"),
    };
    target
        .join("gymfleet")
        .join("instructions")
        .join("results.json")
}
