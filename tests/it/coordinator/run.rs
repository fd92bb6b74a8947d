//! Whole runs of the coordinator on simulated and broken fleets.

use std::path::PathBuf;
use std::time::Duration;

use gymfleet::coordinator::{Explorer, Report, RunConfig, Store, run};
use gymfleet::gym::sim::{SimConfig, SimServer};
use gymfleet::gym::{ClientConfig, GymClient, RetryPolicy};

fn data_dir(name: &str) -> PathBuf {
    let directory = PathBuf::from(env!("CARGO_TARGET_TMPDIR"))
        .join("runs")
        .join(format!("{name}-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&directory);
    directory
}

async fn sim_fleet(n_servers: usize) -> anyhow::Result<(Vec<SimServer>, Vec<GymClient>)> {
    let mut servers = Vec::new();
    let mut clients = Vec::new();
    for _ in 0..n_servers {
        let server = SimServer::start("127.0.0.1:0".parse()?, SimConfig { seed: 1, ..SimConfig::default() }).await?;
        clients.push(GymClient::new(&server.url(), ClientConfig::default())?);
        servers.push(server);
    }
    Ok((servers, clients))
}

async fn run_until_done(clients: Vec<GymClient>, config: RunConfig) -> anyhow::Result<Report> {
    Ok(run(clients, config, Box::new(Explorer::default()), std::future::pending()).await?)
}

#[gymfleet_harness::test]
async fn a_run_on_simulated_servers_reaches_the_goal_and_keeps_what_it_accepted() -> anyhow::Result<()> {
    let (servers, clients) = sim_fleet(2).await?;
    let directory = data_dir("goal");
    let config = RunConfig { duration: Duration::from_secs(120), data_dir: directory.clone(), ..RunConfig::default() };
    let report = run_until_done(clients, config).await?;

    anyhow::ensure!(report.goal_reached && report.ended == "goal reached", "{}", report.ended);
    anyhow::ensure!(report.maps_visited.len() == 4, "{:?}", report.maps_visited);
    let route = report.best_route.as_ref().ok_or_else(|| anyhow::anyhow!("no best route"))?;
    anyhow::ensure!(route.frames > 0 && !route.script.is_empty());
    anyhow::ensure!(report.servers.len() == 2 && report.servers.iter().all(|server| server.errors == 0));
    anyhow::ensure!(report.propagation_us.count > 0, "nothing was propagated");

    // Every accepted discovery is in the store.
    let stored = Store::open(&directory)?.discoveries()?.len() as u64;
    anyhow::ensure!(stored == report.discoveries, "{stored} stored, {} accepted", report.discoveries);
    for server in servers {
        server.shutdown().await?;
    }
    Ok(())
}

#[gymfleet_harness::test]
async fn a_restarted_run_resumes_with_its_knowledge_and_walks_to_the_known_goal() -> anyhow::Result<()> {
    let directory = data_dir("resume");
    let config = RunConfig { duration: Duration::from_secs(60), data_dir: directory.clone(), ..RunConfig::default() };
    let (first_servers, clients) = sim_fleet(1).await?;
    let first = run_until_done(clients, config.clone()).await?;
    for server in first_servers {
        server.shutdown().await?;
    }
    let (servers, clients) = sim_fleet(1).await?;
    let second = run_until_done(clients, config).await?;
    anyhow::ensure!(
        second.resumed_discoveries == first.discoveries,
        "resumed {} of {}",
        second.resumed_discoveries,
        first.discoveries
    );
    anyhow::ensure!(first.goal_reached && second.goal_reached, "{} / {}", first.ended, second.ended);
    anyhow::ensure!(
        second.experiments < first.experiments,
        "knowing the way, the second run needs fewer experiments: {} then {}",
        first.experiments,
        second.experiments
    );
    for server in servers {
        server.shutdown().await?;
    }
    Ok(())
}

#[gymfleet_harness::test]
async fn a_fleet_of_dead_servers_ends_the_run_with_a_report() -> anyhow::Result<()> {
    let mut clients = Vec::new();
    for _ in 0..2 {
        let listener = std::net::TcpListener::bind("127.0.0.1:0")?;
        let url = format!("http://{}", listener.local_addr()?);
        drop(listener);
        let config = ClientConfig { retry: RetryPolicy { max_attempts: 1, ..RetryPolicy::default() }, ..ClientConfig::default() };
        clients.push(GymClient::new(&url, config)?);
    }
    let config = RunConfig {
        duration: Duration::from_secs(120),
        data_dir: data_dir("dead"),
        park: Duration::from_millis(5),
        max_failures: 3,
        ..RunConfig::default()
    };
    let report = run_until_done(clients, config).await?;
    anyhow::ensure!(report.ended == "every server failed 3 times in a row", "{}", report.ended);
    anyhow::ensure!(report.experiments == 0 && !report.goal_reached);
    anyhow::ensure!(report.servers.iter().all(|server| server.failed_experiments == 3), "{:?}", report.servers);
    Ok(())
}

#[gymfleet_harness::test]
async fn a_broken_server_is_parked_and_the_run_goes_on_with_the_rest() -> anyhow::Result<()> {
    use gymfleet::gym::sim::Faults;

    let healthy = SimServer::start("127.0.0.1:0".parse()?, SimConfig { seed: 1, ..SimConfig::default() }).await?;
    let broken_config = SimConfig { seed: 1, faults: Faults { drop_rate: 1.0, ..Faults::default() }, ..SimConfig::default() };
    let broken = SimServer::start("127.0.0.1:0".parse()?, broken_config).await?;
    let client_config = ClientConfig { retry: RetryPolicy { max_attempts: 1, ..RetryPolicy::default() }, ..ClientConfig::default() };
    let clients = vec![
        GymClient::new(&healthy.url(), client_config.clone())?,
        GymClient::new(&broken.url(), client_config)?,
    ];
    let config = RunConfig {
        duration: Duration::from_secs(120),
        data_dir: data_dir("broken"),
        park: Duration::from_millis(5),
        max_failures: 3,
        ..RunConfig::default()
    };
    let report = run_until_done(clients, config).await?;

    anyhow::ensure!(report.goal_reached, "{}", report.ended);
    let broken_report = &report.servers[1];
    // It was parked and probed again and again, and its breaker opened.
    anyhow::ensure!(broken_report.failed_experiments > 3, "{broken_report:?}");
    anyhow::ensure!(broken_report.breaker_events >= 1, "{broken_report:?}");
    anyhow::ensure!(report.servers[0].failed_experiments == 0, "{:?}", report.servers[0]);
    healthy.shutdown().await?;
    broken.shutdown().await?;
    Ok(())
}

#[gymfleet_harness::test]
async fn a_one_worker_run_on_the_same_seed_is_reproducible() -> anyhow::Result<()> {
    let mut outcomes = Vec::new();
    for attempt in 0..2 {
        let (servers, clients) = sim_fleet(1).await?;
        let config = RunConfig {
            duration: Duration::from_secs(120),
            data_dir: data_dir(&format!("reproducible-{attempt}")),
            ..RunConfig::default()
        };
        let report = run_until_done(clients, config).await?;
        anyhow::ensure!(report.goal_reached, "{}", report.ended);
        outcomes.push((report.experiments, report.actions, report.discoveries, report.best_route));
        for server in servers {
            server.shutdown().await?;
        }
    }
    anyhow::ensure!(outcomes[0] == outcomes[1], "{:?} != {:?}", outcomes[0], outcomes[1]);
    Ok(())
}

/// Four workers on two runtime threads finish their experiments in an
/// order that changes from run to run; in lockstep that order changes
/// nothing.
#[gymfleet_harness::test]
fn a_lockstep_run_of_four_workers_on_the_same_seed_is_reproducible() -> anyhow::Result<()> {
    let runtime = tokio::runtime::Builder::new_multi_thread().worker_threads(2).enable_all().build()?;
    let mut outcomes = Vec::new();
    for attempt in 0..2 {
        let outcome = runtime.block_on(async {
            let (servers, clients) = sim_fleet(4).await?;
            let config = RunConfig {
                duration: Duration::from_secs(120),
                data_dir: data_dir(&format!("lockstep-{attempt}")),
                lockstep: true,
                ..RunConfig::default()
            };
            let report = run_until_done(clients, config).await?;
            anyhow::ensure!(report.goal_reached, "{}", report.ended);
            for server in servers {
                server.shutdown().await?;
            }
            Ok((report.experiments, report.actions, report.discoveries, report.conflicts, report.best_route))
        })?;
        outcomes.push(outcome);
    }
    anyhow::ensure!(outcomes[0] == outcomes[1], "{:?} != {:?}", outcomes[0], outcomes[1]);
    Ok(())
}

#[gymfleet_harness::test]
async fn a_server_that_dies_mid_run_is_parked_and_nothing_accepted_is_lost() -> anyhow::Result<()> {
    use gymfleet::gym::sim::{Scheduled, ScheduledFault, Trigger};

    let healthy = SimServer::start("127.0.0.1:0".parse()?, SimConfig { seed: 1, ..SimConfig::default() }).await?;
    // Dies on its 40th request, a few experiments in.
    let dying_config = SimConfig {
        seed: 1,
        schedule: vec![Scheduled { at: Trigger::Request(40), fault: ScheduledFault::Die }],
        ..SimConfig::default()
    };
    let dying = SimServer::start("127.0.0.1:0".parse()?, dying_config).await?;
    let clients = vec![
        GymClient::new(&healthy.url(), ClientConfig::default())?,
        GymClient::new(&dying.url(), ClientConfig::default())?,
    ];
    let directory = data_dir("dies");
    let config = RunConfig {
        duration: Duration::from_secs(120),
        data_dir: directory.clone(),
        park: Duration::from_millis(5),
        max_failures: 3,
        ..RunConfig::default()
    };
    let report = run_until_done(clients, config).await?;

    anyhow::ensure!(report.goal_reached, "{}", report.ended);
    let dead = &report.servers[1];
    anyhow::ensure!(dead.failed_experiments >= 1 && dead.errors >= 1, "{dead:?}");
    anyhow::ensure!(report.servers[0].failed_experiments == 0, "{:?}", report.servers[0]);
    // Everything accepted, from both servers, is in the store.
    let stored = Store::open(&directory)?.discoveries()?.len() as u64;
    anyhow::ensure!(stored == report.discoveries, "{stored} stored, {} accepted", report.discoveries);
    healthy.shutdown().await?;
    dying.shutdown().await?;
    Ok(())
}

#[gymfleet_harness::test]
async fn a_server_that_loses_its_session_is_initialized_again_and_the_run_goes_on() -> anyhow::Result<()> {
    use gymfleet_harness::gym_mock::{MockGym, placeholder_state};
    use wiremock::matchers::{method, path};
    use wiremock::{Mock, ResponseTemplate};

    // The first action is answered with the `SESSION_TIMEOUT` placeholder,
    // every later call as a healthy server does.
    let gym = MockGym::start().await;
    Mock::given(method("POST"))
        .and(path("/action"))
        .respond_with(ResponseTemplate::new(200).set_body_json(placeholder_state()))
        .up_to_n_times(1)
        .expect(1)
        .with_priority(1)
        .mount(gym.server())
        .await;
    gym.healthy().await;

    let config = RunConfig { duration: Duration::from_secs(1), data_dir: data_dir("session-lost"), ..RunConfig::default() };
    let report = run_until_done(vec![GymClient::new(&gym.url(), ClientConfig::default())?], config).await?;

    // The experiment the placeholder cut short was started again, not
    // counted as failed, and the run went on.
    anyhow::ensure!(report.servers[0].failed_experiments == 0, "{:?}", report.servers[0]);
    anyhow::ensure!(report.experiments > 1, "{report:?}");
    gym.server().verify().await;
    let initializes = gym
        .server()
        .received_requests()
        .await
        .unwrap_or_default()
        .iter()
        .filter(|request| request.url.path() == "/initialize")
        .count() as u64;
    // One more start than experiments: the rerun of the lost one.
    anyhow::ensure!(initializes > report.experiments, "{initializes} starts for {} experiments", report.experiments);
    Ok(())
}
