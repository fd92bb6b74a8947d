//! The `it` suite: every file in this directory is a module of it, compiled
//! in by the build script, and every file under `tests/scenarios/` is a
//! trial. See the README for how to add a test.

include!(concat!(env!("OUT_DIR"), "/gymfleet-harness/it.rs"));

fn main() -> std::process::ExitCode {
    gymfleet_harness::run(&SUITE)
}
