//! What a trial's body returns, and how it becomes a verdict.

use std::fmt::Debug;

/// How a trial that did not fail ended.
///
/// Return `Completion::Skipped` from a trial that finds at run time that it
/// cannot do its work. The harness counts it as not executed: under
/// nextest, where each process runs one trial, that fails the trial. A test
/// that depends on the environment should say so when it is listed, with
/// `#[gymfleet_harness::test(requires_env = "VAR")]`, instead.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Completion {
    /// The trial did its work.
    Executed,
    /// The trial decided at run time not to do its work, for this reason.
    Skipped(String),
}

/// The verdict on one execution of a trial's body.
#[doc(hidden)]
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Verdict {
    Passed,
    Skipped(String),
    Failed(String),
}

/// A value a trial may return: `()`, [`Completion`], or a `Result` of
/// either whose error is `Debug` (an `anyhow::Error` prints its chain).
pub trait TestResult {
    #[doc(hidden)]
    fn into_verdict(self) -> Verdict;
}

impl TestResult for () {
    fn into_verdict(self) -> Verdict {
        Verdict::Passed
    }
}

impl TestResult for Completion {
    fn into_verdict(self) -> Verdict {
        match self {
            Completion::Executed => Verdict::Passed,
            Completion::Skipped(reason) => Verdict::Skipped(reason),
        }
    }
}

impl<T: TestResult, E: Debug> TestResult for Result<T, E> {
    fn into_verdict(self) -> Verdict {
        match self {
            Ok(value) => value.into_verdict(),
            Err(error) => Verdict::Failed(format!("{error:?}")),
        }
    }
}
