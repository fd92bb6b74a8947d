//! The static registrations that make up a suite: trials registered by the
//! macros into distributed slices, and the file lists the build script
//! generated.
//!
//! Everything here is `'static` data known at link time, so listing a suite
//! reads memory and builds nothing.

use std::future::Future;
use std::pin::Pin;

use linkme::distributed_slice;

use crate::verdict::Verdict;

/// Every `#[gymfleet_harness::test]` function linked into the binary.
#[distributed_slice]
pub static TESTS: [Test];

/// Every `#[gymfleet_harness::scenarios]` function linked into the binary.
#[distributed_slice]
pub static SCENARIO_RUNNERS: [ScenarioRunner];

/// Every module that declared itself with `support_module!()`.
#[distributed_slice]
pub static SUPPORT_MODULES: [SupportModule];

/// One registered test function.
#[derive(Debug)]
pub struct Test {
    /// The function's name, the last segment of the trial's name.
    pub function: &'static str,
    /// `module_path!()` where the function was registered.
    pub module_path: &'static str,
    /// `file!()` where the function was registered.
    pub file: &'static str,
    /// `line!()` where the function was registered.
    pub line: u32,
    /// Whether the trial is listed as ignored.
    pub ignore: Ignore,
    /// What runs when the trial executes.
    pub body: Body,
}

/// When a trial is listed as ignored.
#[derive(Debug, Clone, Copy)]
pub enum Ignore {
    /// Never: the trial always runs.
    Never,
    /// Always, with an optional reason.
    Always(Option<&'static str>),
    /// Unless this environment variable is set and not empty.
    UnlessEnv(&'static str),
}

impl Ignore {
    /// Returns true if and only if the trial is ignored in this environment.
    pub fn is_ignored(self) -> bool {
        match self {
            Ignore::Never => false,
            Ignore::Always(_) => true,
            Ignore::UnlessEnv(variable) => {
                std::env::var_os(variable).is_none_or(|value| value.is_empty())
            }
        }
    }
}

/// A boxed future that yields a verdict.
pub type VerdictFuture = Pin<Box<dyn Future<Output = Verdict>>>;

/// The body of a test function.
pub enum Body {
    /// A plain function.
    Sync(fn() -> Verdict),
    /// An `async fn`, run on a fresh current-thread tokio runtime.
    Async {
        /// Whether the runtime's clock starts paused.
        start_paused: bool,
        /// Makes the trial's future.
        future: fn() -> VerdictFuture,
    },
}

impl std::fmt::Debug for Body {
    fn fmt(&self, formatter: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Body::Sync(_) => formatter.write_str("Sync"),
            Body::Async { start_paused, .. } => formatter
                .debug_struct("Async")
                .field("start_paused", start_paused)
                .finish(),
        }
    }
}

/// The function that runs every scenario file.
#[derive(Debug)]
pub struct ScenarioRunner {
    /// `module_path!()` where the runner was registered.
    pub module_path: &'static str,
    /// A word shown in each scenario trial's listed name, such as
    /// `parse-only`.
    pub kind: Option<&'static str>,
    /// Runs one scenario file.
    pub run: fn(&std::path::Path) -> Verdict,
}

/// A module that holds helpers and no trials.
#[derive(Debug)]
pub struct SupportModule {
    /// `module_path!()` of the module.
    pub module_path: &'static str,
}

/// What the build script discovered for one test target.
///
/// The build script writes this as a `static` next to the module tree; the
/// target's `main` hands it to [`run`](crate::run).
#[derive(Debug)]
pub struct Suite {
    /// The name of the test target's crate (`it`).
    pub crate_name: &'static str,
    /// The test directory, relative to the package root (`tests/it`).
    pub test_dir: &'static str,
    /// Every module file under the test directory except the target's root.
    pub modules: &'static [ModuleFile],
    /// The scenario directory, relative to the package root.
    pub scenario_dir: &'static str,
    /// Every file under the scenario directory.
    pub scenarios: &'static [ScenarioFile],
}

/// A `.rs` file that the build script compiled into the target.
#[derive(Debug)]
pub struct ModuleFile {
    /// Its module path below the crate root (`gym::wire`).
    pub module_path: &'static str,
    /// Its path relative to the package root.
    pub path: &'static str,
}

/// A file under the scenario directory.
#[derive(Debug)]
pub struct ScenarioFile {
    /// Its path below the scenario directory, without extension, with `/`
    /// separators (`fleet/healthy`).
    pub name: &'static str,
    /// Its path relative to the package root.
    pub path: &'static str,
}
