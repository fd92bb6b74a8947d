//! The `gymfleet` command line, run as a user runs it.

use std::process::{Command, Output};

use anyhow::{Context as _, ensure};

fn gymfleet(args: &[&str]) -> anyhow::Result<Output> {
    Command::new(env!("CARGO_BIN_EXE_gymfleet"))
        .args(args)
        .output()
        .context("cannot start the gymfleet binary")
}

#[gymfleet_harness::test]
fn bare_invocation_prints_usage_and_succeeds() -> anyhow::Result<()> {
    let output = gymfleet(&[])?;
    let stdout = String::from_utf8_lossy(&output.stdout);
    ensure!(output.status.success(), "exit status {}", output.status);
    ensure!(stdout.contains("Usage: gymfleet"), "no usage line in stdout: {stdout}");
    Ok(())
}

#[gymfleet_harness::test]
fn unknown_option_is_refused_by_name() -> anyhow::Result<()> {
    let output = gymfleet(&["--frobnicate"])?;
    let stderr = String::from_utf8_lossy(&output.stderr);
    ensure!(output.status.code() == Some(2), "exit status {}", output.status);
    ensure!(stderr.contains("--frobnicate"), "the error does not name the option: {stderr}");
    Ok(())
}

#[gymfleet_harness::test]
fn version_names_the_package_version() -> anyhow::Result<()> {
    let output = gymfleet(&["--version"])?;
    let stdout = String::from_utf8_lossy(&output.stdout);
    ensure!(output.status.success(), "exit status {}", output.status);
    ensure!(
        stdout.trim() == format!("gymfleet {}", env!("CARGO_PKG_VERSION")),
        "unexpected version line: {stdout}"
    );
    Ok(())
}
