//! The five ways a Rust test suite reports success while running nothing,
//! and the `Trial::bench` listing break: each is reproduced with a plain
//! libtest layout (the door is open: the run passes) and then shown closed
//! by gymfleet-harness (the run fails or the listing is refused, with the
//! message a user needs).

mod support;

use support::{Invocation, cargo, fixtures, harness_binary, list, scratch_dir};

#[test]
fn door_1_a_listed_name_that_no_trial_answers_to_fails_the_run() {
    // Open: the listed name is not the executing process's name, so the
    // failing body never runs and nextest reports a pass.
    cargo(&[
        "nextest",
        "run",
        "-p",
        "plain-libtest",
        "-E",
        "binary(renamed)",
    ])
    .assert_success()
    .assert_output_contains("1 passed");

    // Closed: a name the suite does not answer to fails, naming the filter,
    // whether nextest or a person passed it.
    cargo(&[
        "test",
        "-p",
        "harness-suite",
        "--test",
        "it",
        "--",
        "--exact",
        "renamed::case_1",
    ])
    .assert_failure()
    .assert_output_contains("no trial executed for the filter `renamed::case_1` (exact)");
}

#[test]
fn door_2_a_plain_test_attribute_in_a_harness_target_is_refused_at_build() {
    // Open: `#[test]` and `proptest!` are compiled out; their panics never
    // happen and only the registered trial runs.
    cargo(&[
        "nextest",
        "run",
        "-p",
        "plain-libtest",
        "-E",
        "binary(stray_attr)",
    ])
    .assert_success()
    .assert_output_contains("1 passed");

    // Closed: the build names the file and line of each.
    for runner in [&["nextest", "run"][..], &["test"][..]] {
        let mut args = runner.to_vec();
        args.extend(["-p", "harness-stray-attr"]);
        cargo(&args)
            .assert_failure()
            .assert_output_contains("tests/it/stray.rs:4: `#[test]` never runs")
            .assert_output_contains("tests/it/stray.rs:9: `proptest!` never runs");
    }
}

#[test]
fn door_3_a_test_binary_that_lists_no_trial_fails_the_cross_check() {
    // Open: a plain `main` runs while nextest lists it, lists nothing, and
    // the run passes on the other binaries' tests.
    let scratch = scratch_dir("door-3");
    let marker = scratch.join("marker");
    Invocation::cargo(
        &fixtures(),
        &["nextest", "run", "-p", "plain-libtest", "--profile", "ci"],
    )
    .env("PLAIN_MAIN_MARKER", &marker)
    .run()
    .assert_success();
    let arguments = std::fs::read_to_string(&marker).expect("the plain main ran");
    assert!(
        arguments.contains("--list"),
        "the plain main ran with {arguments:?}"
    );

    // Closed: the cross-check refuses an integration-test binary that
    // listed no trial.
    let list = cargo(&[
        "nextest",
        "list",
        "-p",
        "plain-libtest",
        "--message-format",
        "json",
    ]);
    list.assert_success();
    let list_path = scratch.join("list.json");
    std::fs::write(&list_path, &list.stdout).expect("the list can be written");
    // nextest keeps its store under the workspace, not under the target
    // directory that CARGO_TARGET_DIR moved.
    let junit = fixtures().join("target/nextest/ci/junit.xml");
    let junit = junit.to_str().expect("the target path is UTF-8");
    Invocation::program(
        &harness_binary(),
        &[
            "cross-check",
            "--list",
            list_path.to_str().expect("UTF-8"),
            "--junit",
            junit,
        ],
        &fixtures(),
    )
    .run()
    .assert_failure()
    .assert_output_contains("the test binary `plain-libtest::plain_main` lists no trial");
}

#[test]
fn door_4_a_trial_that_ignores_itself_at_run_time_fails() {
    // Open: the runtime ignore reads as PASS.
    cargo(&[
        "nextest",
        "run",
        "-p",
        "plain-libtest",
        "-E",
        "binary(self_ignore)",
    ])
    .assert_success()
    .assert_output_contains("1 passed");

    // Closed: it counts as not executed, which fails the trial.
    cargo(&[
        "nextest",
        "run",
        "-p",
        "harness-doors",
        "-E",
        "test(self_ignore)",
    ])
    .assert_failure()
    .assert_output_contains(
        "`self_ignore::needs_a_server` ignored itself at run time (no server configured), \
             which counts as not executed",
    );
}

#[test]
fn door_5_a_test_file_nobody_declared_is_compiled_and_run() {
    // Open: `orphan.rs` is never compiled; its failing test is not even
    // listed.
    cargo(&[
        "nextest",
        "run",
        "-p",
        "plain-libtest",
        "-E",
        "binary(undeclared)",
    ])
    .assert_success()
    .assert_output_lacks("never_compiled");

    // Closed: the same file under the harness is compiled in and its test
    // runs (and fails, on purpose).
    cargo(&[
        "nextest",
        "run",
        "-p",
        "harness-doors",
        "-E",
        "test(orphan)",
    ])
    .assert_failure()
    .assert_output_contains("orphan::fails_on_purpose")
    .assert_output_contains("the file nobody declared with mod ran its test");
}

#[test]
fn a_bench_trial_breaks_nextest_listing_and_the_harness_lists_only_tests() {
    cargo(&["nextest", "list", "-p", "plain-bench"])
        .assert_failure()
        .assert_output_contains("a_bench: bench");

    // `list` refuses any line that is not `NAME: test`.
    let (_, names) = list(&fixtures(), &[]);
    assert!(!names.is_empty(), "the suite listed nothing");
}
