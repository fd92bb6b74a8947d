//! The cross-check's reading of nextest lists and JUnit reports, and its
//! verdicts, on hand-written inputs in the shapes nextest produces.

use gymfleet_harness::cross_check::{
    Discovery, Execution, Status, TestId, compare, parse_junit, parse_list,
};

const LIST: &str = r#"{
  "rust-build-meta": {},
  "test-count": 4,
  "rust-suites": {
    "app": {
      "binary-id": "app", "kind": "lib", "testcases": {}
    },
    "app::it": {
      "binary-id": "app::it", "kind": "test",
      "testcases": {
        "a::one": { "ignored": false, "filter-match": { "status": "matches" } },
        "a::two": { "ignored": false, "filter-match": { "status": "matches" } },
        "a::slow": { "ignored": true, "filter-match": { "status": "matches" } },
        "b::other": { "ignored": false, "filter-match": { "status": "mismatch", "reason": "expression" } }
      }
    },
    "app::empty": { "binary-id": "app::empty", "kind": "test", "testcases": {} }
  }
}"#;

fn id(binary_id: &str, name: &str) -> TestId {
    TestId {
        binary_id: binary_id.to_owned(),
        name: name.to_owned(),
    }
}

fn executed(name: &str, status: Status) -> Execution {
    Execution {
        test: id("app::it", name),
        status,
    }
}

fn discovery(expected: &[&str]) -> Discovery {
    Discovery {
        expected: expected.iter().map(|name| id("app::it", name)).collect(),
        ..Discovery::default()
    }
}

#[test]
fn a_list_yields_matching_non_ignored_trials_and_flags_empty_test_binaries() {
    let discovery = parse_list(LIST).expect("the list parses");
    assert_eq!(
        discovery.expected.into_iter().collect::<Vec<_>>(),
        vec![id("app::it", "a::one"), id("app::it", "a::two")]
    );
    assert_eq!(
        discovery.ignored.into_iter().collect::<Vec<_>>(),
        vec![id("app::it", "a::slow")]
    );
    // A library with no unit tests is normal; an integration-test binary
    // with none is a door to a silent zero.
    assert_eq!(discovery.empty_binaries, vec!["app::empty".to_owned()]);
}

#[test]
fn a_junit_report_yields_each_testcase_with_its_status() {
    let xml = r#"<?xml version="1.0" encoding="UTF-8"?>
<testsuites name="nextest-run" tests="5">
  <testsuite name="app::it" tests="5">
    <testcase name="a::passed" classname="app::it"><system-out>ok</system-out></testcase>
    <testcase name="a::failed" classname="app::it"><failure type="test failure">boom</failure></testcase>
    <testcase name="a::timed_out" classname="app::it"><error type="timeout"/></testcase>
    <testcase name="a::flaky" classname="app::it"><flakyFailure type="test failure"/></testcase>
    <testcase name="a::&lt;escaped&gt;" classname="app::it"/>
  </testsuite>
</testsuites>"#;
    assert_eq!(
        parse_junit(xml).expect("the report parses"),
        vec![
            executed("a::passed", Status::Passed),
            executed("a::failed", Status::Failed),
            executed("a::timed_out", Status::Failed),
            executed("a::flaky", Status::PassedAfterRetry),
            executed("a::<escaped>", Status::Passed),
        ]
    );
}

#[test]
fn malformed_inputs_are_errors_not_empty_runs() {
    assert!(
        parse_list("{}").is_err(),
        "a list without suites must not read as empty"
    );
    assert!(parse_list("not json").is_err());
    assert!(parse_junit("<testsuites><testsuite name=\"x\"><testcase></testsuites>").is_err());
    let orphan = "<testsuites><testcase name=\"a\"/></testsuites>";
    assert!(
        parse_junit(orphan).is_err(),
        "a testcase outside a testsuite has no binary"
    );
}

#[test]
fn every_trial_once_and_passed_is_clean() {
    let report = compare(
        &discovery(&["a::one", "a::two"]),
        &[
            executed("a::one", Status::Passed),
            executed("a::two", Status::Passed),
        ],
    );
    assert!(report.is_clean(), "{report}");
    assert_eq!(report.to_string(), "2 discovered, 2 executed (0 ignored)");
}

#[test]
fn a_missing_repeated_failed_or_unknown_trial_is_a_problem() {
    let report = compare(
        &discovery(&[
            "a::missing",
            "a::twice",
            "a::failed",
            "a::flaky",
            "a::skipped",
        ]),
        &[
            executed("a::twice", Status::Passed),
            executed("a::twice", Status::Passed),
            executed("a::failed", Status::Failed),
            executed("a::flaky", Status::PassedAfterRetry),
            executed("a::skipped", Status::Skipped),
            executed("a::stranger", Status::Passed),
        ],
    );
    assert!(!report.is_clean());
    assert_eq!(report.n_executed, 0);
    let text = report.to_string();
    for expected in [
        "`app::it a::missing` was discovered but never executed",
        "`app::it a::twice` executed 2 times",
        "`app::it a::failed` failed",
        "`app::it a::flaky` passed only after a retry",
        "`app::it a::skipped` was skipped",
        "`app::it a::stranger` executed 1 time(s) but was not discovered",
        "5 discovered, 0 executed",
    ] {
        assert!(text.contains(expected), "missing {expected:?} in:\n{text}");
    }
}

#[test]
fn ignored_trials_may_run_or_not() {
    let mut with_ignored = discovery(&["a::one"]);
    with_ignored.ignored.insert(id("app::it", "a::slow"));
    let without = compare(&with_ignored, &[executed("a::one", Status::Passed)]);
    let with = compare(
        &with_ignored,
        &[
            executed("a::one", Status::Passed),
            executed("a::slow", Status::Passed),
        ],
    );
    assert!(without.is_clean(), "{without}");
    assert!(with.is_clean(), "{with}");
}
