//! A worker running experiments on one server.

use gymfleet::coordinator::{Experiment, ExperimentId, Script, StartState, Step, Worker};
use gymfleet::gym::sim::{LatencyModel, SimConfig, SimServer};
use gymfleet::gym::{ClientConfig, GymClient};
use gymfleet::learning::{Payload, WorkerId};
use gymfleet_harness::gym_mock::{MockGym, game_state, placeholder_state};
use wiremock::matchers::{method, path};
use wiremock::{Mock, ResponseTemplate};

fn experiment(script: &str) -> Experiment {
    Experiment {
        id: ExperimentId(7),
        start: StartState::Fresh,
        script: Script::parse(script).expect("a valid script"),
    }
}

fn worker(url: &str) -> Worker {
    Worker::new(WorkerId(3), GymClient::new(url, ClientConfig::default()).expect("a valid URL"))
}

#[gymfleet_harness::test]
async fn an_experiment_observes_every_step_and_shows_tiles_and_a_route() -> anyhow::Result<()> {
    let config = SimConfig { seed: 11, latency: LatencyModel::ZERO, ..SimConfig::default() };
    let server = SimServer::start("127.0.0.1:0".parse()?, config).await?;
    let outcome = worker(&server.url()).run(&experiment("right*3 down*2 wait:10")).await?;

    anyhow::ensure!(outcome.error.is_none(), "{:?}", outcome.error);
    anyhow::ensure!(outcome.observations.len() == 6 && outcome.steps.len() == 6);
    anyhow::ensure!(outcome.frames == 5 * 130 + 10, "{} frames", outcome.frames);

    // Each press moved the player exactly when the previous state said the
    // direction was open.
    let mut before = &outcome.start;
    for (step, after) in outcome.steps.iter().zip(&outcome.observations) {
        if let Step::Press(key) = step
            && let Some(direction) = key.direction()
            && after.location == before.location
        {
            let open = before.valid_moves.contains(&direction);
            let expected = if open { before.position.step(direction) } else { before.position };
            anyhow::ensure!(after.position == expected, "{key} from {} went to {}", before.position, after.position);
        }
        before = after;
    }

    let drafts = outcome.discoveries();
    let n_tiles = drafts.iter().filter(|draft| matches!(draft.payload, Payload::Tile { .. })).count();
    anyhow::ensure!(n_tiles == 5, "one tile per press on the same map, not {n_tiles}");
    let route = drafts.iter().find(|draft| matches!(draft.payload, Payload::Route { .. }));
    let moved = outcome.end().position != outcome.start.position;
    anyhow::ensure!(route.is_some() == moved, "a route exactly when the player moved");
    if let Some(route) = route {
        anyhow::ensure!(
            route.payload == Payload::Route { script: "right right right down down wait:10".into(), frames: 660 },
            "{:?}",
            route.payload
        );
    }
    server.shutdown().await?;
    Ok(())
}

#[gymfleet_harness::test]
async fn a_failing_action_ends_the_outcome_and_is_not_sent_again() -> anyhow::Result<()> {
    let gym = MockGym::start().await;
    gym.answer("POST", "/initialize", 200, game_state("OAKS LAB", 5, 6, 0), Some(1)).await;
    gym.fail("POST", "/action", 503, "boom", 1).await;
    let outcome = worker(&gym.url()).run(&experiment("up up")).await?;

    anyhow::ensure!(outcome.observations.is_empty() && outcome.steps.is_empty());
    let error = outcome.error.as_deref().unwrap_or_default();
    anyhow::ensure!(error.contains("/action") && error.contains("503"), "{error}");
    anyhow::ensure!(outcome.discoveries().is_empty(), "a failed experiment shows no route");
    gym.server().verify().await;
    Ok(())
}

#[gymfleet_harness::test]
async fn a_lost_session_is_started_again_and_the_experiment_rerun_once() -> anyhow::Result<()> {
    let gym = MockGym::start().await;
    gym.answer("POST", "/initialize", 200, game_state("OAKS LAB", 5, 6, 0), Some(2)).await;
    Mock::given(method("POST"))
        .and(path("/action"))
        .respond_with(ResponseTemplate::new(200).set_body_json(placeholder_state()))
        .up_to_n_times(1)
        .expect(1)
        .mount(gym.server())
        .await;
    gym.answer("POST", "/action", 200, game_state("OAKS LAB", 5, 7, 1), Some(2)).await;

    let outcome = worker(&gym.url()).run(&experiment("down a")).await?;
    anyhow::ensure!(outcome.error.is_none(), "{:?}", outcome.error);
    anyhow::ensure!(outcome.observations.len() == 2);
    gym.server().verify().await;
    Ok(())
}

#[gymfleet_harness::test]
async fn a_start_that_fails_presses_nothing_and_names_worker_and_experiment() -> anyhow::Result<()> {
    let gym = MockGym::start().await;
    gym.fail("POST", "/initialize", 500, "ROM file not found: /roms/red.gb", 1).await;
    gym.fail("POST", "/action", 500, "must not be called", 0).await;

    let error = worker(&gym.url()).run(&experiment("up")).await.expect_err("no ROM");
    let message = format!("{:#}", anyhow::Error::from(error));
    anyhow::ensure!(message.starts_with("worker-3 could not start experiment-7"), "{message}");
    anyhow::ensure!(message.contains("no ROM"), "the cause is in the chain: {message}");
    gym.server().verify().await;
    Ok(())
}
