//! The runner: parses the libtest command line, checks the suite, builds the
//! selected trials, runs them and applies the zero-executed guard.

use std::collections::HashSet;
use std::path::Path;
use std::process::ExitCode;
use std::sync::Mutex;

use libtest_mimic::{Arguments, Completion, Failed, Trial};

use crate::registry::{
    Body, SCENARIO_RUNNERS, SUPPORT_MODULES, ScenarioFile, ScenarioRunner, Suite, TESTS, Test,
};
use crate::verdict::Verdict;

/// Runs a suite with the process's command line and returns its exit code.
///
/// This is the whole `main` of a harness target:
///
/// ```ignore
/// include!(concat!(env!("OUT_DIR"), "/gymfleet-harness/it.rs"));
///
/// fn main() -> std::process::ExitCode {
///     gymfleet_harness::run(&SUITE)
/// }
/// ```
///
/// Exit codes: 0 when every selected trial passed and at least one
/// executed; 101 when a trial failed or nothing executed; 2 when the suite
/// itself is wrong (a test file with no trial, a duplicate name, scenario
/// files without a runner).
pub fn run(suite: &'static Suite) -> ExitCode {
    let args = Arguments::from_args();

    let catalog = match Catalog::new(suite) {
        Ok(catalog) => catalog,
        Err(problems) => {
            for problem in &problems {
                eprintln!("error: {problem}");
            }
            eprintln!(
                "error: the test suite in `{}` is not valid ({} problem{})",
                suite.test_dir,
                problems.len(),
                if problems.len() == 1 { "" } else { "s" },
            );
            return ExitCode::from(2);
        }
    };

    let mut args = args;
    let trials: Vec<Trial> = catalog
        .entries
        .iter()
        .filter(|entry| is_selected(&args, entry))
        .map(Entry::to_trial)
        .collect();
    if trials.len() == 1 && args.test_threads.is_none() {
        // One trial (every nextest execution) needs no thread pool;
        // starting one costs more than the typical trial.
        args.test_threads = Some(1);
    }
    let conclusion = libtest_mimic::run(&args, trials);
    if args.list {
        return ExitCode::SUCCESS;
    }
    if conclusion.has_failed() {
        return ExitCode::from(101);
    }

    let skipped = std::mem::take(&mut *lock_skipped());
    if conclusion.num_passed > 0 {
        for (name, reason) in &skipped {
            eprintln!(
                "warning: `{name}` ignored itself at run time ({reason}) and did not execute"
            );
        }
        return ExitCode::SUCCESS;
    }

    match &args.filter {
        Some(filter) => eprintln!(
            "error: no trial executed for the filter `{filter}`{}",
            if args.exact { " (exact)" } else { "" },
        ),
        None => eprintln!("error: the run executed no trial"),
    }
    for (name, reason) in &skipped {
        eprintln!(
            "  `{name}` ignored itself at run time ({reason}), which counts as not executed; \
             to skip it by design, declare the condition with \
             `#[gymfleet_harness::test(requires_env = \"VAR\")]` so that it is listed as ignored"
        );
    }
    if skipped.is_empty() {
        eprintln!(
            "  no trial of the {} listed by `--list` matches it; a filter that runs nothing is \
             an error, not a pass",
            catalog.entries.len(),
        );
        if args.filter.is_some() && !args.exact {
            eprintln!(
                "  under `cargo test FILTER`, add `--test {}` to run this binary only when it \
                 holds the tests you mean",
                suite.crate_name,
            );
        }
    }
    ExitCode::from(101)
}

/// The trials that returned `Completion::Skipped` in this process, with
/// their reasons.
static SKIPPED_AT_RUN_TIME: Mutex<Vec<(String, String)>> = Mutex::new(Vec::new());

fn lock_skipped() -> std::sync::MutexGuard<'static, Vec<(String, String)>> {
    // A trial that panicked while holding the lock cannot leave the list
    // half-written: pushing one element either happened or did not.
    SKIPPED_AT_RUN_TIME
        .lock()
        .unwrap_or_else(std::sync::PoisonError::into_inner)
}

/// Every trial of the suite, by name, before any is built.
struct Catalog {
    entries: Vec<Entry>,
}

struct Entry {
    name: String,
    kind: Option<&'static str>,
    ignored: bool,
    source: Source,
}

enum Source {
    Test(&'static Test),
    Scenario(&'static ScenarioFile, &'static ScenarioRunner),
}

impl Catalog {
    /// Reads the registrations and checks them against what the build
    /// script discovered; returns every problem found, not just the first.
    fn new(suite: &'static Suite) -> Result<Catalog, Vec<String>> {
        let mut problems = Vec::new();
        let mut entries = Vec::with_capacity(TESTS.len() + suite.scenarios.len());

        for test in TESTS.iter() {
            match module_below_root(suite, test.module_path) {
                Some(module) => {
                    let name = match module {
                        "" => test.function.to_owned(),
                        module => format!("{module}::{}", test.function),
                    };
                    entries.push(Entry {
                        name,
                        kind: None,
                        ignored: test.ignore.is_ignored(),
                        source: Source::Test(test),
                    });
                }
                None => problems.push(format!(
                    "`{}` at {}:{} is registered in `{}`, outside the suite `{}`",
                    test.function, test.file, test.line, test.module_path, suite.crate_name,
                )),
            }
        }

        for module in suite.modules {
            let contributes = |module_path: &str| {
                module_below_root(suite, module_path).is_some_and(|below| {
                    below == module.module_path
                        || below
                            .strip_prefix(module.module_path)
                            .is_some_and(|rest| rest.starts_with("::"))
                })
            };
            let has_trial = TESTS.iter().any(|test| contributes(test.module_path))
                || SUPPORT_MODULES
                    .iter()
                    .any(|support| contributes(support.module_path))
                || SCENARIO_RUNNERS
                    .iter()
                    .any(|runner| contributes(runner.module_path));
            if !has_trial {
                problems.push(format!(
                    "`{}` contributes no trial: register its tests with \
                     `#[gymfleet_harness::test]` (a plain `#[test]` never runs in a \
                     `harness = false` target), or mark a helpers-only file with \
                     `gymfleet_harness::support_module!();`",
                    module.path,
                ));
            }
        }

        match (SCENARIO_RUNNERS.len(), suite.scenarios.is_empty()) {
            (0, false) => problems.push(format!(
                "{} scenario files under `{}` but no function registered with \
                 `#[gymfleet_harness::scenarios]` to run them",
                suite.scenarios.len(),
                suite.scenario_dir,
            )),
            (0, true) | (1, _) => {}
            (n_runners, _) => problems.push(format!(
                "{n_runners} functions are registered with `#[gymfleet_harness::scenarios]` \
                 ({}); a suite has one",
                SCENARIO_RUNNERS
                    .iter()
                    .map(|runner| runner.module_path)
                    .collect::<Vec<_>>()
                    .join(", "),
            )),
        }
        if let Some(runner) = SCENARIO_RUNNERS.first() {
            for scenario in suite.scenarios {
                entries.push(Entry {
                    name: format!("scenario::{}", scenario.name.replace('/', "::")),
                    kind: runner.kind,
                    ignored: false,
                    source: Source::Scenario(scenario, runner),
                });
            }
        }

        if entries.is_empty() && problems.is_empty() {
            problems.push(format!(
                "the suite has no trial: register tests under `{}` with \
                 `#[gymfleet_harness::test]`",
                suite.test_dir,
            ));
        }

        let mut seen = HashSet::with_capacity(entries.len());
        for entry in &entries {
            if !seen.insert(entry.name.as_str()) {
                problems.push(format!("two trials are named `{}`", entry.name));
            }
        }

        entries.sort_unstable_by(|a, b| a.name.cmp(&b.name));
        match problems.is_empty() {
            true => Ok(Catalog { entries }),
            false => Err(problems),
        }
    }
}

impl Entry {
    /// The name libtest-mimic lists and matches for this trial.
    fn listed_name(&self) -> String {
        match self.kind {
            Some(kind) => format!("[{kind}] {}", self.name),
            None => self.name.clone(),
        }
    }

    fn to_trial(&self) -> Trial {
        let name = self.name.clone();
        let trial = match self.source {
            Source::Test(test) => Trial::ignorable_test(self.name.clone(), move || {
                completion(&name, run_body(&test.body))
            }),
            Source::Scenario(scenario, runner) => {
                Trial::ignorable_test(self.name.clone(), move || {
                    completion(&name, (runner.run)(Path::new(scenario.path)))
                })
            }
        };
        let trial = match self.kind {
            Some(kind) => trial.with_kind(kind),
            None => trial,
        };
        trial.with_ignored_flag(self.ignored)
    }
}

/// Returns true if and only if libtest-mimic would keep this trial, so
/// that only the trials it runs or lists are built.
fn is_selected(args: &Arguments, entry: &Entry) -> bool {
    if args.ignored && !entry.ignored {
        return false;
    }
    let matches = |pattern: &str| {
        let listed = entry.listed_name();
        match args.exact {
            true => entry.name == pattern || listed == pattern,
            false => listed.contains(pattern),
        }
    };
    let kept = args.filter.as_deref().is_none_or(matches);
    kept && !args.skip.iter().any(|pattern| matches(pattern))
}

/// The module path of `module_path` below the suite's crate root, or `None`
/// if it is in another crate.
fn module_below_root<'a>(suite: &Suite, module_path: &'a str) -> Option<&'a str> {
    match module_path.split_once("::") {
        Some((crate_name, below)) if crate_name == suite.crate_name => Some(below),
        None if module_path == suite.crate_name => Some(""),
        _ => None,
    }
}

fn completion(name: &str, verdict: Verdict) -> Result<Completion, Failed> {
    match verdict {
        Verdict::Passed => Ok(Completion::Completed),
        Verdict::Skipped(reason) => {
            lock_skipped().push((name.to_owned(), reason.clone()));
            Ok(Completion::ignored_with(reason))
        }
        Verdict::Failed(message) => Err(message.into()),
    }
}

fn run_body(body: &Body) -> Verdict {
    match body {
        Body::Sync(function) => function(),
        Body::Async {
            start_paused,
            future,
        } => run_async(*start_paused, *future),
    }
}

#[cfg(feature = "tokio")]
fn run_async(start_paused: bool, future: fn() -> crate::registry::VerdictFuture) -> Verdict {
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .start_paused(start_paused)
        .build();
    match runtime {
        Ok(runtime) => runtime.block_on(future()),
        Err(error) => Verdict::Failed(format!("cannot start a tokio runtime: {error}")),
    }
}

#[cfg(not(feature = "tokio"))]
fn run_async(_start_paused: bool, _future: fn() -> crate::registry::VerdictFuture) -> Verdict {
    Verdict::Failed("async trials need the `tokio` feature of gymfleet-harness".to_owned())
}
