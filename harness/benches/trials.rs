//! What the harness costs a process: listing a suite of 1,000 trials and
//! running one of them with `--exact`, beside a plain libtest binary with
//! the same 1,000 tests. Both binaries come from the `harness-thousand`
//! fixture crate, built in release mode before measuring.

use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};

use criterion::{Criterion, criterion_group, criterion_main};

fn trials(criterion: &mut Criterion) {
    let binaries = build_fixture();
    let mut group = criterion.benchmark_group("trials_1000");
    let cases: [(&str, &Path, &[&str]); 4] = [
        (
            "harness_list",
            &binaries.harness,
            &["--list", "--format", "terse"],
        ),
        (
            "plain_list",
            &binaries.plain,
            &["--list", "--format", "terse"],
        ),
        (
            "harness_exact_one",
            &binaries.harness,
            &["--exact", "many::trial_0500"],
        ),
        (
            "plain_exact_one",
            &binaries.plain,
            &["--exact", "trial_0500"],
        ),
    ];
    for (name, binary, args) in cases {
        group.bench_function(name, |bencher| bencher.iter(|| run(binary, args)));
    }
    group.finish();
}

struct Binaries {
    harness: PathBuf,
    plain: PathBuf,
}

/// Builds the fixture's two test binaries and returns their paths.
fn build_fixture() -> Binaries {
    let fixtures = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures");
    let output = Command::new(std::env::var_os("CARGO").unwrap_or_else(|| "cargo".into()))
        .args([
            "build",
            "--release",
            "--tests",
            "-p",
            "harness-thousand",
            "--message-format=json",
        ])
        .current_dir(&fixtures)
        .env(
            "CARGO_TARGET_DIR",
            Path::new(env!("CARGO_MANIFEST_DIR")).join("../target/fixtures-bench"),
        )
        .stderr(Stdio::inherit())
        .output()
        .expect("cargo starts");
    assert!(output.status.success(), "the fixture crate did not build");

    let mut harness = None;
    let mut plain = None;
    for line in String::from_utf8_lossy(&output.stdout).lines() {
        let Ok(message) = serde_json::from_str::<serde_json::Value>(line) else {
            continue;
        };
        let target_name = message["target"]["name"].as_str();
        let executable = message["executable"].as_str().map(PathBuf::from);
        match target_name {
            Some("it") => harness = executable.or(harness),
            Some("plain") => plain = executable.or(plain),
            _ => {}
        }
    }
    Binaries {
        harness: harness.expect("cargo reported the harness binary"),
        plain: plain.expect("cargo reported the plain binary"),
    }
}

fn run(binary: &Path, args: &[&str]) {
    let status = Command::new(binary)
        .args(args)
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .status()
        .expect("the test binary starts");
    assert!(
        status.success(),
        "`{} {}` failed",
        binary.display(),
        args.join(" ")
    );
}

criterion_group!(benches, trials);
criterion_main!(benches);
