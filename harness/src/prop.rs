//! Property tests as registered trials.
//!
//! `proptest!` expands to `#[test]` functions, which a `harness = false`
//! target never runs. Call [`check`] from a `#[gymfleet_harness::test]`
//! function instead: a failing property becomes a failing trial whose
//! message shows the minimal input, and the failing seed is persisted next
//! to the test file (`<file>.proptest-regressions`, meant to be committed)
//! and replayed first on every later run.
//!
//! ```ignore
//! #[gymfleet_harness::test]
//! fn merge_is_commutative() -> Result<(), gymfleet_harness::prop::PropertyFailure> {
//!     gymfleet_harness::prop::check((any::<u8>(), any::<u8>()), |(a, b)| {
//!         prop_assert_eq!(a.max(b), b.max(a));
//!         Ok(())
//!     })
//! }
//! ```
//!
//! The number of cases comes from `PROPTEST_CASES` when it is set, else
//! from the configuration passed to [`check_with`], else 256.

use std::fmt::Debug;
use std::panic::Location;

use proptest::strategy::Strategy;
pub use proptest::test_runner::{Config, TestCaseError};
use proptest::test_runner::{FileFailurePersistence, TestError, TestRunner};

/// A property that did not hold, or a run that could not find enough
/// inputs to test it.
///
/// Its `Debug` is its message, so that a trial returning it prints the
/// minimal input rather than a struct.
#[derive(thiserror::Error)]
pub enum PropertyFailure {
    /// The property failed; `input` is the smallest failing input found.
    #[error("property failed: {reason}\nminimal failing input: {input}")]
    Failed {
        /// Why the property failed.
        reason: String,
        /// The shrunk input, `Debug`-formatted.
        input: String,
    },
    /// The strategy rejected too many inputs.
    #[error("property aborted: {0}")]
    Aborted(String),
}

impl Debug for PropertyFailure {
    fn fmt(&self, formatter: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        std::fmt::Display::fmt(self, formatter)
    }
}

/// Checks a property for inputs from `strategy`, with the default
/// configuration.
#[track_caller]
pub fn check<S>(
    strategy: S,
    property: impl Fn(S::Value) -> Result<(), TestCaseError>,
) -> Result<(), PropertyFailure>
where
    S: Strategy,
    S::Value: Debug,
{
    check_with(Config::default(), strategy, property)
}

/// Checks a property with an explicit configuration; regressions are
/// persisted next to the calling file whatever the configuration says.
#[track_caller]
pub fn check_with<S>(
    config: Config,
    strategy: S,
    property: impl Fn(S::Value) -> Result<(), TestCaseError>,
) -> Result<(), PropertyFailure>
where
    S: Strategy,
    S::Value: Debug,
{
    let caller = Location::caller();
    let cases = match std::env::var("PROPTEST_CASES")
        .ok()
        .and_then(|cases| cases.parse().ok())
    {
        Some(cases) => cases,
        None => config.cases,
    };
    let config = Config {
        cases,
        // Without a source file proptest silently skips persistence.
        source_file: Some(caller.file()),
        failure_persistence: Some(Box::new(FileFailurePersistence::WithSource(
            "proptest-regressions",
        ))),
        ..config
    };

    let mut runner = TestRunner::new(config);
    match runner.run(&strategy, property) {
        Ok(()) => Ok(()),
        Err(TestError::Fail(reason, input)) => Err(PropertyFailure::Failed {
            reason: reason.to_string(),
            input: format!("{input:#?}"),
        }),
        Err(TestError::Abort(reason)) => Err(PropertyFailure::Aborted(reason.to_string())),
    }
}
