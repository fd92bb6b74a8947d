//! Runs every file under `tests/scenarios/` as a trial: starts its fleet,
//! runs its workload, checks its thresholds, prints the table and writes
//! the results under `target/gymfleet/sla/` for `gymfleet gate`.
//!
//! Speed thresholds (latencies, counts per second) are enforced only when
//! the suite is built with optimizations (`cargo nextest run
//! --cargo-profile release`); a debug build still runs every scenario and
//! enforces its other thresholds.

use std::path::{Path, PathBuf};

use anyhow::{Context as _, bail};
use gymfleet::sla::Scenario;
use gymfleet::sla::scenario::FleetKind;
use gymfleet_harness::gym_mock::MockGym;

const SCENARIO_DIR: &str = "tests/scenarios";

#[gymfleet_harness::scenarios]
fn sla(path: &Path) -> anyhow::Result<()> {
    let root = Path::new(env!("CARGO_MANIFEST_DIR"));
    let relative = path.strip_prefix(SCENARIO_DIR).unwrap_or(path);
    let name = relative.with_extension("").to_string_lossy().replace('\\', "/");
    let scenario = Scenario::read(&root.join(path), &name)?;

    // The runtime `gymfleet run` and `gymfleet scenario` drive the
    // coordinator on.
    let runtime = gymfleet::coordinator::runtime().context("cannot start a runtime")?;
    let outcome = runtime.block_on(async {
        match scenario.fleet.as_ref().map(|fleet| (fleet.kind, fleet.servers)) {
            Some((FleetKind::Wiremock, n_servers)) => {
                let mut fleet = Vec::with_capacity(n_servers);
                for _ in 0..n_servers {
                    let server = MockGym::start().await;
                    server.healthy().await;
                    fleet.push(server);
                }
                scenario.run_on(fleet.iter().map(MockGym::url).collect()).await
            }
            _ => scenario.run().await,
        }
    })?;

    let dir = results_dir(root);
    let written = outcome.write(&dir).with_context(|| format!("cannot write results under {}", dir.display()))?;
    println!("scenario {name}: {}", scenario.description);
    print!("{}", outcome.render());
    println!("results: {}", written.display());
    if !outcome.passed() {
        bail!("scenario {name}: thresholds failed\n{}", outcome.render());
    }
    Ok(())
}

fn results_dir(root: &Path) -> PathBuf {
    gymfleet::sla::target_dir(root).join("gymfleet/sla")
}
