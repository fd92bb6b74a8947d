//! The cross-check of a nextest run: every discovered trial must have
//! executed and passed exactly once.
//!
//! Inputs are the JSON list that `cargo nextest list --message-format json`
//! prints (what was discovered) and one or more JUnit reports that
//! `cargo nextest run` wrote (what executed). Several reports are the runs
//! of `--partition hash:k/n`, which together must cover every trial once.
//! Everything here is sans-IO: plain functions on strings.

use std::collections::{BTreeMap, BTreeSet};
use std::fmt;

use quick_xml::events::{BytesStart, Event};
use serde::Deserialize;

/// A test identified the way nextest reports it.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord)]
pub struct TestId {
    /// The binary, such as `gymfleet::it`.
    pub binary_id: String,
    /// The trial name within the binary.
    pub name: String,
}

impl fmt::Display for TestId {
    fn fmt(&self, formatter: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(formatter, "{} {}", self.binary_id, self.name)
    }
}

/// What `cargo nextest list` discovered.
#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub struct Discovery {
    /// Trials that must execute: listed, not ignored, matched by the filter.
    pub expected: BTreeSet<TestId>,
    /// Trials listed as ignored, which may or may not execute.
    pub ignored: BTreeSet<TestId>,
    /// Integration-test binaries that listed no trial at all.
    pub empty_binaries: Vec<String>,
}

/// How one testcase of a JUnit report ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Status {
    /// Passed on its only attempt.
    Passed,
    /// Passed after failed attempts, which is more than one execution.
    PassedAfterRetry,
    /// Failed, or errored (a timeout, a crash).
    Failed,
    /// Reported as skipped.
    Skipped,
}

/// One testcase of a JUnit report.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Execution {
    /// The trial.
    pub test: TestId,
    /// How it ended.
    pub status: Status,
}

/// Why an input could not be read.
#[derive(Debug, thiserror::Error)]
pub enum InputError {
    /// The nextest list is not the JSON that nextest prints.
    #[error("not a nextest test list (`cargo nextest list --message-format json`)")]
    List(#[source] serde_json::Error),
    /// The JUnit report is not well-formed XML.
    #[error("not a well-formed JUnit report")]
    Junit(#[source] quick_xml::Error),
    /// A `testcase` outside any `testsuite`, or without a name.
    #[error("malformed JUnit report: {0}")]
    JunitShape(&'static str),
}

/// The outcome of comparing a discovery with executions.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Report {
    /// How many trials had to execute.
    pub n_discovered: usize,
    /// How many of them executed exactly once and passed.
    pub n_executed: usize,
    /// How many ignored trials were listed.
    pub n_ignored: usize,
    /// Everything that breaks the rule, one line each.
    pub problems: Vec<String>,
}

impl Report {
    /// Returns true if and only if every discovered trial executed and
    /// passed exactly once, and nothing else is wrong.
    pub fn is_clean(&self) -> bool {
        self.problems.is_empty() && self.n_discovered == self.n_executed
    }
}

impl fmt::Display for Report {
    fn fmt(&self, formatter: &mut fmt::Formatter<'_>) -> fmt::Result {
        for problem in &self.problems {
            writeln!(formatter, "error: {problem}")?;
        }
        write!(
            formatter,
            "{} discovered, {} executed ({} ignored)",
            self.n_discovered, self.n_executed, self.n_ignored
        )
    }
}

#[derive(Deserialize)]
#[serde(rename_all = "kebab-case")]
struct ListJson {
    rust_suites: BTreeMap<String, SuiteJson>,
}

#[derive(Deserialize)]
#[serde(rename_all = "kebab-case")]
struct SuiteJson {
    binary_id: String,
    kind: String,
    #[serde(default)]
    testcases: BTreeMap<String, TestcaseJson>,
}

#[derive(Deserialize)]
#[serde(rename_all = "kebab-case")]
struct TestcaseJson {
    ignored: bool,
    filter_match: FilterMatchJson,
}

#[derive(Deserialize)]
struct FilterMatchJson {
    status: String,
}

/// Reads the output of `cargo nextest list --message-format json`.
pub fn parse_list(json: &str) -> Result<Discovery, InputError> {
    let list: ListJson = serde_json::from_str(json).map_err(InputError::List)?;
    let mut discovery = Discovery::default();
    for suite in list.rust_suites.into_values() {
        if suite.kind == "test" && suite.testcases.is_empty() {
            discovery.empty_binaries.push(suite.binary_id.clone());
        }
        for (name, testcase) in suite.testcases {
            let test = TestId {
                binary_id: suite.binary_id.clone(),
                name,
            };
            match (testcase.ignored, testcase.filter_match.status == "matches") {
                (_, false) => {}
                (true, true) => {
                    discovery.ignored.insert(test);
                }
                (false, true) => {
                    discovery.expected.insert(test);
                }
            }
        }
    }
    Ok(discovery)
}

/// Reads the testcases of a JUnit report as nextest writes it: one
/// `testsuite` per binary, named by its binary id.
pub fn parse_junit(xml: &str) -> Result<Vec<Execution>, InputError> {
    let mut reader = quick_xml::Reader::from_str(xml);
    let mut executions = Vec::new();
    let mut suite: Option<String> = None;
    let mut open_case: Option<Execution> = None;

    loop {
        let event = reader.read_event().map_err(InputError::Junit)?;
        match event {
            Event::Start(element) | Event::Empty(element)
                if local_name(&element) == "testsuite" =>
            {
                suite = Some(
                    attribute(&element, "name")?
                        .ok_or(InputError::JunitShape("a `testsuite` has no `name`"))?,
                );
            }
            Event::Start(element) if local_name(&element) == "testcase" => {
                open_case = Some(testcase(&element, suite.as_deref())?);
            }
            Event::Empty(element) if local_name(&element) == "testcase" => {
                executions.push(testcase(&element, suite.as_deref())?);
            }
            Event::Start(element) | Event::Empty(element) => {
                if let Some(case) = open_case.as_mut() {
                    case.status = match (local_name(&element), case.status) {
                        ("failure" | "error", _) => Status::Failed,
                        ("skipped", Status::Passed) => Status::Skipped,
                        ("flakyFailure" | "flakyError", Status::Passed) => Status::PassedAfterRetry,
                        (_, status) => status,
                    };
                }
            }
            Event::End(element) if element.local_name().into_inner() == "testcase" => {
                executions.extend(open_case.take());
            }
            Event::Eof => break,
            _ => {}
        }
    }
    Ok(executions)
}

/// Compares what was discovered with what executed.
pub fn compare(discovery: &Discovery, executions: &[Execution]) -> Report {
    let mut problems = Vec::new();
    for binary in &discovery.empty_binaries {
        problems.push(format!(
            "the test binary `{binary}` lists no trial: a `harness = false` target whose `main` \
             does not go through the harness runs nothing under nextest"
        ));
    }

    let mut by_test: BTreeMap<&TestId, Vec<Status>> = BTreeMap::new();
    for execution in executions {
        by_test
            .entry(&execution.test)
            .or_default()
            .push(execution.status);
    }

    let mut n_executed = 0;
    for test in &discovery.expected {
        match by_test.get(test).map(Vec::as_slice) {
            None | Some([]) => problems.push(format!("`{test}` was discovered but never executed")),
            Some([Status::Passed]) => n_executed += 1,
            Some([Status::PassedAfterRetry]) => problems.push(format!(
                "`{test}` passed only after a retry: it executed more than once"
            )),
            Some([Status::Failed]) => problems.push(format!("`{test}` failed")),
            Some([Status::Skipped]) => {
                problems.push(format!("`{test}` was skipped, which is not executing it"));
            }
            Some(statuses) => problems.push(format!(
                "`{test}` executed {} times; each trial must execute exactly once",
                statuses.len()
            )),
        }
    }
    for (test, statuses) in &by_test {
        let known = discovery.expected.contains(*test) || discovery.ignored.contains(*test);
        if !known {
            problems.push(format!(
                "`{test}` executed {} time(s) but was not discovered: the report and the list \
                 come from different builds",
                statuses.len()
            ));
        }
    }

    Report {
        n_discovered: discovery.expected.len(),
        n_executed,
        n_ignored: discovery.ignored.len(),
        problems,
    }
}

fn testcase(element: &BytesStart<'_>, suite: Option<&str>) -> Result<Execution, InputError> {
    let binary_id = suite
        .ok_or(InputError::JunitShape(
            "a `testcase` is outside any `testsuite`",
        ))?
        .to_owned();
    let name =
        attribute(element, "name")?.ok_or(InputError::JunitShape("a `testcase` has no `name`"))?;
    Ok(Execution {
        test: TestId { binary_id, name },
        status: Status::Passed,
    })
}

fn attribute(element: &BytesStart<'_>, key: &str) -> Result<Option<String>, InputError> {
    for attribute in element.attributes() {
        let attribute =
            attribute.map_err(|error| InputError::Junit(quick_xml::Error::InvalidAttr(error)))?;
        if attribute.key.local_name().into_inner() == key {
            let value = attribute
                .normalized_value(quick_xml::XmlVersion::Implicit1_0)
                .map_err(InputError::Junit)?;
            return Ok(Some(value.into_owned()));
        }
    }
    Ok(None)
}

fn local_name<'a>(element: &'a BytesStart<'_>) -> &'a str {
    element.local_name().into_inner()
}
