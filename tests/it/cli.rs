//! The `gymfleet` command line, run as a user runs it.

use std::process::{Command, Output};

use anyhow::{Context as _, ensure};

fn gymfleet(args: &[&str]) -> anyhow::Result<Output> {
    Command::new(env!("CARGO_BIN_EXE_gymfleet"))
        .args(args)
        .output()
        .context("cannot start the gymfleet binary")
}

/// A fresh working directory for one test, so that the default data
/// directory never lands in the repository.
fn scratch(name: &str) -> std::path::PathBuf {
    let directory = std::path::PathBuf::from(env!("CARGO_TARGET_TMPDIR"))
        .join("cli")
        .join(format!("{name}-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&directory);
    std::fs::create_dir_all(&directory).expect("the scratch directory can be created");
    directory
}

#[gymfleet_harness::test]
fn bare_invocation_runs_the_main_job_to_the_goal() -> anyhow::Result<()> {
    let directory = scratch("bare");
    let output = Command::new(env!("CARGO_BIN_EXE_gymfleet"))
        .current_dir(&directory)
        .output()
        .context("cannot start the gymfleet binary")?;
    let stdout = String::from_utf8_lossy(&output.stdout);
    ensure!(output.status.success(), "exit status {}: {}", output.status, String::from_utf8_lossy(&output.stderr));
    ensure!(stdout.starts_with("run ended: goal reached"), "{stdout}");
    for line in ["experiments", "discoveries", "propagation", "server 127.0.0.1:", "  action"] {
        ensure!(stdout.contains(line), "the report has no {line:?} line: {stdout}");
    }
    ensure!(directory.join("gymfleet-data/gymfleet.redb").is_file(), "no store in the default data directory");
    Ok(())
}

#[gymfleet_harness::test]
fn run_prints_its_report_as_json() -> anyhow::Result<()> {
    let directory = scratch("json");
    let output = Command::new(env!("CARGO_BIN_EXE_gymfleet"))
        .current_dir(&directory)
        .args(["run", "--workers", "2", "--json", "--strategy", "consensus"])
        .output()?;
    ensure!(output.status.success(), "exit status {}", output.status);
    let report: serde_json::Value = serde_json::from_slice(&output.stdout).context("the report is not JSON")?;
    ensure!(report["goal_reached"] == true, "{report}");
    ensure!(report["servers"].as_array().map(Vec::len) == Some(2), "{report}");
    ensure!(report["propagation_us"]["p99"].is_u64(), "{report}");
    Ok(())
}

#[gymfleet_harness::test]
fn run_refuses_invalid_options_by_name() -> anyhow::Result<()> {
    for (args, needle, code) in [
        (&["run", "--gym", "ftp://127.0.0.1:1"][..], "`--gym`", 1),
        (&["run", "--gym", "http://127.0.0.1:0"][..], "port 0", 1),
        (&["run", "--duration", "0s"][..], "longer than zero", 2),
        (&["run", "--duration", "ten"][..], "--duration", 2),
        (&["run", "--workers", "0"][..], "--workers", 2),
        (&["run", "--strategy", "coin-flip"][..], "--strategy", 2),
        (&["run", "--lockstep", "maybe"][..], "--lockstep", 2),
    ] {
        let output = gymfleet(args)?;
        let stderr = String::from_utf8_lossy(&output.stderr);
        ensure!(output.status.code() == Some(code), "{args:?}: exit status {}: {stderr}", output.status);
        ensure!(stderr.contains(needle), "{args:?}: the error does not say {needle:?}: {stderr}");
    }
    Ok(())
}

#[gymfleet_harness::test]
async fn ctrl_c_stops_a_run_cleanly_and_still_prints_the_report() -> anyhow::Result<()> {
    use tokio::io::AsyncReadExt as _;

    let directory = scratch("ctrl-c");
    // Windowed latency makes the run far longer than the test.
    let mut child = tokio::process::Command::new(env!("CARGO_BIN_EXE_gymfleet"))
        .current_dir(&directory)
        .args(["run", "--latency", "windowed", "--duration", "10m"])
        .env("RUST_LOG", "info")
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .kill_on_drop(true)
        .spawn()?;
    // The run listens for Ctrl-C once it says so on stderr.
    let mut stderr = child.stderr.take().context("no stderr")?;
    let mut seen = Vec::new();
    let mut buffer = [0u8; 1024];
    while !String::from_utf8_lossy(&seen).contains("press Ctrl-C to stop") {
        let n_read = stderr.read(&mut buffer).await?;
        ensure!(n_read > 0, "the run ended before it started: {}", String::from_utf8_lossy(&seen));
        seen.extend_from_slice(&buffer[..n_read]);
    }
    let pid = child.id().context("the run already exited")?;
    ensure!(std::process::Command::new("kill").args(["-INT", &pid.to_string()]).status()?.success());
    let output = child.wait_with_output().await?;
    let stdout = String::from_utf8_lossy(&output.stdout);
    ensure!(output.status.success(), "exit status {}", output.status);
    ensure!(stdout.starts_with("run ended: stopped by the user"), "{stdout}");
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

#[gymfleet_harness::test]
fn serve_refuses_invalid_options_by_name() -> anyhow::Result<()> {
    for (args, needle, code) in [
        (&["serve", "--port", "0"][..], "--port", 2),
        (&["serve", "--servers", "0"][..], "--servers", 2),
        (&["serve", "--error-rate", "2"][..], "not a probability", 2),
        (&["serve", "--bind", "localhost:80"][..], "--bind", 2),
        (&["serve", "--port", "65535", "--servers", "2"][..], "past 65535", 1),
    ] {
        let output = gymfleet(args)?;
        let stderr = String::from_utf8_lossy(&output.stderr);
        ensure!(output.status.code() == Some(code), "{args:?}: exit status {}", output.status);
        ensure!(stderr.contains(needle), "{args:?}: the error does not say {needle:?}: {stderr}");
    }
    Ok(())
}

#[gymfleet_harness::test]
async fn serve_answers_as_a_gym_server_and_stops_cleanly_on_ctrl_c() -> anyhow::Result<()> {
    use gymfleet::gym::wire::Status;
    use gymfleet::gym::{ClientConfig, GymClient};
    use tokio::io::{AsyncBufReadExt as _, BufReader};

    // Port 0 is refused by `serve`, so ask the OS for a free port first.
    let port = std::net::TcpListener::bind("127.0.0.1:0")?.local_addr()?.port();
    let mut child = tokio::process::Command::new(env!("CARGO_BIN_EXE_gymfleet"))
        .args(["serve", "--servers", "1", "--port", &port.to_string()])
        .stdout(std::process::Stdio::piped())
        .kill_on_drop(true)
        .spawn()
        .context("cannot start `gymfleet serve`")?;
    let mut lines = BufReader::new(child.stdout.take().context("no stdout")?).lines();
    let first = lines.next_line().await?.context("`serve` printed nothing")?;
    let url = format!("http://127.0.0.1:{port}");
    ensure!(first.ends_with(&url), "unexpected first line: {first}");

    let client = GymClient::new(&url, ClientConfig::default())?;
    ensure!(client.status().await? == Status::NotInitialized);

    let pid = child.id().context("the server already exited")?;
    let kill = std::process::Command::new("kill").args(["-INT", &pid.to_string()]).status()?;
    ensure!(kill.success(), "cannot send SIGINT");
    let status = child.wait().await?;
    ensure!(status.success(), "`serve` exited with {status} after Ctrl-C");
    let mut rest = Vec::new();
    while let Some(line) = lines.next_line().await? {
        rest.push(line);
    }
    ensure!(rest.last().map(String::as_str) == Some("stopped"), "{rest:?}");
    Ok(())
}

#[gymfleet_harness::test]
async fn sigkill_loses_no_accepted_discovery() -> anyhow::Result<()> {
    use gymfleet::coordinator::Store;
    use tokio::io::{AsyncBufReadExt as _, BufReader};

    let directory = scratch("sigkill");
    let mut child = tokio::process::Command::new(env!("CARGO_BIN_EXE_gymfleet"))
        .current_dir(&directory)
        .args(["run", "--latency", "headless", "--duration", "10m", "--workers", "2"])
        .env("RUST_LOG", "gymfleet::coordinator=debug")
        .env("NO_COLOR", "1")
        .stderr(std::process::Stdio::piped())
        .kill_on_drop(true)
        .spawn()?;
    let mut lines = BufReader::new(child.stderr.take().context("no stderr")?).lines();

    // Wait until the run says it has accepted (made durable) at least one
    // discovery, and remember how many.
    let accepted = loop {
        let line = lines.next_line().await?.context("the run ended before accepting anything")?;
        if !line.contains("discoveries accepted") {
            continue;
        }
        let total = line
            .split_whitespace()
            .find_map(|field| field.strip_prefix("total="))
            .context("no total in the log line")?;
        break total.parse::<usize>()?;
    };
    child.start_kill()?;
    child.wait().await?;

    let stored = Store::open(&directory.join("gymfleet-data"))?.discoveries()?.len();
    ensure!(stored >= accepted, "{accepted} accepted before SIGKILL, {stored} in the store after");
    Ok(())
}
