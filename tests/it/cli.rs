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
