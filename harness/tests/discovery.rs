//! Discovery and the nextest contract, on a healthy suite: what is listed,
//! what `--exact` runs, files added with no other edit, property tests,
//! scenario files, and partitioned runs.

mod support;

use std::collections::BTreeSet;

use support::{Invocation, cargo, copy_fixture, harness_binary, list};

fn names(expected: &[&str]) -> BTreeSet<String> {
    expected.iter().map(|name| (*name).to_owned()).collect()
}

#[test]
fn every_file_and_scenario_is_listed_by_its_path() {
    let (_, listed) = list(&support::fixtures(), &[]);
    assert_eq!(
        listed,
        names(&[
            "[parse-only] scenario::nested::pair",
            "[parse-only] scenario::smoke",
            "basics::ignored_on_purpose",
            "basics::needs_a_server",
            "basics::passes",
            "basics::returns_ok",
            "basics::waits_an_hour_on_a_paused_clock",
            "nested::deeper::counts",
            "props::max_is_commutative",
        ])
    );

    let (_, ignored) = list(&support::fixtures(), &["--ignored"]);
    assert_eq!(
        ignored,
        names(&["basics::ignored_on_purpose", "basics::needs_a_server"])
    );
}

#[test]
fn an_environment_gated_trial_is_listed_as_ignored_until_its_variable_is_set() {
    let run = Invocation::cargo(
        &support::fixtures(),
        &[
            "test",
            "-q",
            "-p",
            "harness-suite",
            "--test",
            "it",
            "--",
            "--list",
            "--format",
            "terse",
            "--ignored",
        ],
    )
    .env("HARNESS_SUITE_SERVER", "http://127.0.0.1:1")
    .run();
    run.assert_success();
    assert_eq!(run.stdout.trim(), "basics::ignored_on_purpose: test");

    Invocation::cargo(
        &support::fixtures(),
        &[
            "test",
            "-p",
            "harness-suite",
            "--test",
            "it",
            "--",
            "--exact",
            "basics::needs_a_server",
        ],
    )
    .env("HARNESS_SUITE_SERVER", "http://127.0.0.1:1")
    .run()
    .assert_success()
    .assert_output_contains("1 passed");
}

#[test]
fn exact_runs_exactly_one_trial() {
    cargo(&[
        "test",
        "-p",
        "harness-suite",
        "--test",
        "it",
        "--",
        "--exact",
        "basics::passes",
        "--nocapture",
    ])
    .assert_success()
    .assert_output_contains("running 1 test")
    .assert_output_contains("test basics::passes ... ok")
    // The harness builds only the selected trial, so libtest-mimic sees
    // nothing to filter out.
    .assert_output_contains(
        "test result: ok. 1 passed; 0 failed; 0 ignored; 0 measured; 0 filtered out",
    );
}

#[test]
fn the_healthy_suite_passes_under_nextest_and_cargo_test() {
    cargo(&["nextest", "run", "-p", "harness-suite"])
        .assert_success()
        .assert_output_contains("7 tests run: 7 passed, 2 skipped");
    cargo(&["test", "-p", "harness-suite"])
        .assert_success()
        .assert_output_contains("7 passed; 0 failed; 2 ignored");
}

#[test]
fn a_new_file_with_one_test_runs_with_no_other_edit() {
    let (workspace, package) = copy_fixture("harness-suite", "added-file");
    std::fs::write(
        workspace.join("harness-suite/tests/it/added.rs"),
        "#[gymfleet_harness::test]\nfn was_added() {}\n",
    )
    .expect("the new test file can be written");

    Invocation::cargo(&workspace, &["nextest", "run", "-p", &package])
        .run()
        .assert_success()
        .assert_output_contains("added::was_added")
        .assert_output_contains("8 tests run: 8 passed");
}

#[test]
fn a_file_without_a_trial_is_refused_when_listed() {
    let (workspace, package) = copy_fixture("harness-suite", "forgotten-file");
    std::fs::write(
        workspace.join("harness-suite/tests/it/forgotten.rs"),
        "#[allow(dead_code)]\nfn looks_like_a_test() {}\n",
    )
    .expect("the new file can be written");

    Invocation::cargo(&workspace, &["nextest", "list", "-p", &package])
        .run()
        .assert_failure()
        .assert_output_contains("`tests/it/forgotten.rs` contributes no trial");
}

#[test]
fn a_failing_property_reports_its_minimal_input_and_persists_the_seed() {
    let (workspace, package) = copy_fixture("harness-suite", "failing-property");
    let test_file = workspace.join("harness-suite/tests/it/failing_props.rs");
    std::fs::write(
        &test_file,
        r#"use gymfleet_harness::prop::{self, PropertyFailure};
use proptest::prelude::*;

#[gymfleet_harness::test]
fn small_numbers_only() -> Result<(), PropertyFailure> {
    prop::check(0u32..1000, |n| {
        prop_assert!(n < 500, "{n} is not small");
        Ok(())
    })
}
"#,
    )
    .expect("the property file can be written");

    let exact = [
        "nextest",
        "run",
        "-p",
        &package,
        "-E",
        "test(small_numbers_only)",
    ];
    Invocation::cargo(&workspace, &exact)
        .run()
        .assert_failure()
        .assert_output_contains("property failed: 500 is not small")
        .assert_output_contains("minimal failing input: 500");

    let regressions = test_file.with_extension("proptest-regressions");
    let persisted = std::fs::read_to_string(&regressions).unwrap_or_else(|error| {
        panic!("no regressions file at {}: {error}", regressions.display())
    });
    assert!(
        persisted.lines().any(|line| line.starts_with("cc ")),
        "no seed in:\n{persisted}"
    );
}

#[test]
fn partitioned_runs_from_one_archive_cover_every_trial_exactly_once() {
    let (workspace, package) = copy_fixture("harness-suite", "partitioned");
    let archive = workspace.join("suite.tar.zst");
    let archive = archive.to_str().expect("the path is UTF-8");
    Invocation::cargo(
        &workspace,
        &[
            "nextest",
            "archive",
            "-p",
            &package,
            "--archive-file",
            archive,
        ],
    )
    .run()
    .assert_success();

    let list = Invocation::cargo(
        &workspace,
        &[
            "nextest",
            "list",
            "--archive-file",
            archive,
            "--workspace-remap",
            ".",
            "--message-format",
            "json",
        ],
    )
    .run();
    list.assert_success();
    let list_path = workspace.join("list.json");
    std::fs::write(&list_path, &list.stdout).expect("the list can be written");

    let mut reports = Vec::new();
    for partition in ["hash:1/2", "hash:2/2"] {
        Invocation::cargo(
            &workspace,
            &[
                "nextest",
                "run",
                "--archive-file",
                archive,
                "--workspace-remap",
                ".",
                "--profile",
                "ci",
                "--partition",
                partition,
            ],
        )
        .run()
        .assert_success();
        let report = workspace.join(format!("junit-{}.xml", partition.replace(['/', ':'], "-")));
        std::fs::copy(workspace.join("target/nextest/ci/junit.xml"), &report)
            .expect("the partition wrote a JUnit report");
        reports.push(report.to_str().expect("the path is UTF-8").to_owned());
    }

    let cross_check = |reports: &[String]| {
        let mut args = vec!["cross-check", "--list", list_path.to_str().expect("UTF-8")];
        for report in reports {
            args.extend(["--junit", report]);
        }
        Invocation::program(&harness_binary(), &args, &workspace).run()
    };
    cross_check(&reports)
        .assert_success()
        .assert_output_contains("7 discovered, 7 executed");

    // One partition alone leaves trials unexecuted, and the same report
    // twice executes trials twice.
    cross_check(&reports[..1])
        .assert_failure()
        .assert_output_contains("was discovered but never executed");
    let twice = [reports[0].clone(), reports[0].clone(), reports[1].clone()];
    cross_check(&twice)
        .assert_failure()
        .assert_output_contains("executed 2 times");
}
