//! `gymfleet-harness`: checks after a nextest run that every discovered
//! trial executed and passed exactly once.

use std::path::{Path, PathBuf};
use std::process::ExitCode;

use anyhow::Context as _;
use clap::{Parser, Subcommand};
use gymfleet_harness::cross_check;

#[derive(Debug, Parser)]
#[command(version, about)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Debug, Subcommand)]
enum Command {
    /// Compares a nextest test list with the JUnit reports of the run.
    ///
    /// Fails unless every discovered, non-ignored trial executed and passed
    /// exactly once across all reports (one report per `--partition` run),
    /// and every integration-test binary listed at least one trial.
    CrossCheck {
        /// The output of `cargo nextest list --message-format json`.
        #[arg(long, value_name = "FILE")]
        list: PathBuf,
        /// A JUnit report written by `cargo nextest run`; repeat for the
        /// reports of a partitioned run.
        #[arg(long, value_name = "FILE", required = true)]
        junit: Vec<PathBuf>,
    },
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    match run(cli.command) {
        Ok(true) => ExitCode::SUCCESS,
        Ok(false) => ExitCode::FAILURE,
        Err(error) => {
            eprintln!("error: {error:#}");
            ExitCode::from(2)
        }
    }
}

fn run(command: Command) -> anyhow::Result<bool> {
    match command {
        Command::CrossCheck { list, junit } => {
            let discovery = cross_check::parse_list(&read(&list)?)
                .with_context(|| format!("reading `{}`", list.display()))?;
            let mut executions = Vec::new();
            for report in &junit {
                let parsed = cross_check::parse_junit(&read(report)?)
                    .with_context(|| format!("reading `{}`", report.display()))?;
                executions.extend(parsed);
            }
            let report = cross_check::compare(&discovery, &executions);
            println!("{report}");
            Ok(report.is_clean())
        }
    }
}

fn read(path: &Path) -> anyhow::Result<String> {
    std::fs::read_to_string(path).with_context(|| format!("cannot read `{}`", path.display()))
}
