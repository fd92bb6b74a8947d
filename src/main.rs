//! The `gymfleet` command line.

use std::process::ExitCode;

use clap::{CommandFactory, Parser};

/// Coordinates experiments on a fleet of Pokemon Gym servers.
#[derive(Debug, Parser)]
#[command(name = "gymfleet", version, about)]
struct Cli {}

fn main() -> ExitCode {
    let _cli = Cli::parse();
    // No subcommand exists yet, so a bare invocation shows what the
    // command line offers instead of failing.
    match Cli::command().print_help() {
        Ok(()) => ExitCode::SUCCESS,
        Err(error) => {
            eprintln!("error: cannot print help: {error}");
            ExitCode::FAILURE
        }
    }
}
