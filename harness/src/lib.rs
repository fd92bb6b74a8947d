//! A nextest-compatible test harness that discovers every test by structure
//! and never reports success for a run that executed nothing.
//!
//! A suite is one `harness = false` integration-test target. Its build
//! script calls [`build::Layout::generate`], which compiles every `.rs` file
//! of the test directory into the target without anyone writing `mod`, and
//! turns every file of the scenario directory into a trial. Test functions
//! register themselves with [`test`]; the target's `main` is one call to
//! [`run`].
//!
//! The runner speaks the libtest command line that cargo-nextest drives
//! (`--list --format terse`, `--exact NAME`, `--ignored`, `--nocapture`),
//! builds only the trials a filter selects, and fails loudly when:
//!
//! - a test file contributes no trial (named in the error);
//! - a filter was given and no trial executed, including a trial that
//!   ignored itself at run time;
//! - a run without filter executed nothing.
//!
//! After a nextest run, the `gymfleet-harness cross-check` command compares
//! what was discovered with the JUnit reports and fails unless every
//! discovered, non-ignored trial executed and passed exactly once.

#![forbid(unsafe_code)]

#[cfg(feature = "build")]
pub mod build;
#[cfg(feature = "runtime")]
pub mod cross_check;
#[cfg(feature = "gym-mock")]
pub mod gym_mock;
#[cfg(feature = "proptest")]
pub mod prop;
#[cfg(feature = "runtime")]
mod registry;
#[cfg(feature = "runtime")]
mod runner;
#[cfg(feature = "runtime")]
mod verdict;

#[cfg(feature = "runtime")]
pub use gymfleet_harness_macros::{scenarios, test};
#[cfg(feature = "runtime")]
pub use registry::{ModuleFile, ScenarioFile, Suite};
#[cfg(feature = "runtime")]
pub use runner::run;
#[cfg(feature = "runtime")]
pub use verdict::{Completion, TestResult};

/// Declares that the current test file holds shared helpers and no trials.
///
/// Without this, a file under the test directory that registers no trial is
/// refused when the suite is listed, because a file that contributes
/// nothing is usually a file whose tests silently stopped running.
#[cfg(feature = "runtime")]
#[macro_export]
macro_rules! support_module {
    () => {
        #[$crate::__private::linkme::distributed_slice($crate::__private::SUPPORT_MODULES)]
        #[linkme(crate = $crate::__private::linkme)]
        #[doc(hidden)]
        static __GYMFLEET_HARNESS_SUPPORT_MODULE: $crate::__private::SupportModule =
            $crate::__private::SupportModule {
                module_path: ::core::module_path!(),
            };
    };
}

/// What the macros expand to; not a stable interface.
#[cfg(feature = "runtime")]
#[doc(hidden)]
pub mod __private {
    pub use crate::registry::{
        Body, Ignore, SCENARIO_RUNNERS, SUPPORT_MODULES, ScenarioRunner, SupportModule, TESTS, Test,
    };
    pub use crate::verdict::{TestResult, Verdict};
    pub use linkme;
}
