//! The simulated server: its world, its rules, and its wire format checked
//! against the real server's captured answers.

use std::collections::{HashSet, VecDeque};
use std::net::SocketAddr;
use std::path::Path;
use std::time::Duration;

use anyhow::{Context as _, ensure};
use gymfleet::gym::sim::world::{Tile, World};
use gymfleet::gym::sim::{
    Faults, Jitter, LatencyModel, Scheduled, ScheduledFault, SimConfig, SimError, SimServer, Trigger,
};
use gymfleet::gym::wire::{
    Action, DecodeError, Direction, InitializeRequest, Key, Position, ServerError, Status,
    StopResponse,
};
use gymfleet::gym::breaker::BreakerConfig;
use gymfleet::gym::{ClientConfig, Deadlines, ErrorKind, GymClient, RetryPolicy};
use gymfleet_harness::prop::{self, PropertyFailure};
use proptest::prelude::*;
use serde_json::Value;

const LOOPBACK: &str = "127.0.0.1:0";

async fn start(config: SimConfig) -> anyhow::Result<(SimServer, GymClient)> {
    let server = SimServer::start(LOOPBACK.parse()?, config).await?;
    let config = ClientConfig {
        retry: RetryPolicy { max_attempts: 1, ..RetryPolicy::default() },
        ..ClientConfig::default()
    };
    let client = GymClient::new(&server.url(), config)?;
    Ok((server, client))
}

fn zero_latency(seed: u64) -> SimConfig {
    SimConfig { seed, latency: LatencyModel::ZERO, faults: Faults::default(), schedule: Vec::new() }
}

/// The fewest moves from the start to the goal, walking through doors, or
/// `None` if the goal cannot be reached.
fn moves_to_goal(world: &World) -> Option<usize> {
    let start = (0, world.start);
    let mut seen = HashSet::from([start]);
    let mut queue = VecDeque::from([(start, 0)]);
    while let Some(((map_idx, position), n_moves)) = queue.pop_front() {
        for direction in [Direction::Up, Direction::Down, Direction::Left, Direction::Right] {
            let target = position.step(direction);
            let next = match world.maps[map_idx].tile(target) {
                Tile::Wall => continue,
                Tile::Goal => return Some(n_moves + 1),
                Tile::Door { to_map, to } => (to_map, to),
                Tile::Floor | Tile::Grass => (map_idx, target),
            };
            if seen.insert(next) {
                queue.push_back((next, n_moves + 1));
            }
        }
    }
    None
}

#[gymfleet_harness::test]
fn every_world_has_a_reachable_goal_on_its_last_map() -> Result<(), PropertyFailure> {
    prop::check(any::<u64>(), |seed| {
        let world = World::generate(seed);
        prop_assert!(world.maps.len() >= 3, "too few maps");
        prop_assert!(moves_to_goal(&world).is_some(), "seed {seed}: the goal is unreachable");
        Ok(())
    })
}

#[gymfleet_harness::test]
fn the_same_seed_gives_the_same_world() {
    assert_eq!(World::generate(7), World::generate(7));
    assert_ne!(World::generate(7), World::generate(8));
}

#[gymfleet_harness::test]
async fn a_fresh_game_reports_the_real_servers_state_shape() -> anyhow::Result<()> {
    let (server, client) = start(zero_latency(3)).await?;
    let state = client.initialize(&InitializeRequest::default()).await?;
    ensure!(state.location == "PALLET TOWN" && state.step_number == 0, "{state:?}");

    let map = state.collision_map.as_deref().context("no collision map")?;
    let rows: Vec<&str> = map.lines().take(11).collect();
    ensure!(rows[0] == "+----------+" && rows[10] == "+----------+", "{map}");
    for row in &rows[1..10] {
        ensure!(row.chars().count() == 12, "a row is not 10 tiles wide: {row:?}");
    }
    ensure!(rows[5].chars().nth(5) == Some('↓'), "the player is not at the centre: {map}");
    ensure!(map.contains("Legend:"));

    // valid_moves agrees with the map around the player.
    let around = |dx: usize, dy: usize| rows[1 + dy].chars().nth(1 + dx);
    for (direction, (dx, dy)) in
        [(Direction::Up, (4, 3)), (Direction::Down, (4, 5)), (Direction::Left, (3, 4)), (Direction::Right, (5, 4))]
    {
        let walkable = around(dx, dy) == Some('·');
        ensure!(
            walkable == state.valid_moves.contains(&direction),
            "{direction:?}: map says walkable={walkable}, valid_moves {:?}",
            state.valid_moves
        );
    }
    server.shutdown().await?;
    Ok(())
}

#[gymfleet_harness::test]
async fn walking_moves_the_player_and_walls_block() -> anyhow::Result<()> {
    let (server, client) = start(zero_latency(11)).await?;
    let mut state = client.initialize(&InitializeRequest::default()).await?;
    for step in 0..40u64 {
        let direction = [Direction::Right, Direction::Down, Direction::Left, Direction::Up][(step % 4) as usize];
        let before = state.coordinates;
        let can_move = state.valid_moves.contains(&direction);
        state = client.act(&Action::press([direction.key()])?).await?;
        if state.location != "PALLET TOWN" {
            break;
        }
        let expected = if can_move { before.step(direction) } else { before };
        ensure!(state.coordinates == expected, "step {step}: {before} {direction:?} went to {}", state.coordinates);
        ensure!(state.step_number == step + 1);
    }
    server.shutdown().await?;
    Ok(())
}

#[gymfleet_harness::test]
async fn before_initialize_and_after_stop_the_server_answers_as_the_real_one() -> anyhow::Result<()> {
    let (server, client) = start(zero_latency(1)).await?;
    let press = Action::press([Key::A])?;

    let error = client.act(&press).await.expect_err("no game yet");
    ensure!(error.server_error() == Some(&ServerError::SessionTimeout), "{error:#}");
    ensure!(client.status().await? == Status::NotInitialized);
    ensure!(client.stop().await? == StopResponse::NotInitialized);

    client.initialize(&InitializeRequest::default()).await?;
    ensure!(matches!(client.status().await?, Status::Running(_)));
    ensure!(matches!(client.stop().await?, StopResponse::Stopped(_)));
    let error = client.act(&press).await.expect_err("the game was stopped");
    ensure!(matches!(error.server_error(), Some(ServerError::NotInitialized(_))), "{error:#}");
    server.shutdown().await?;
    Ok(())
}

#[gymfleet_harness::test]
async fn a_saved_state_loads_back_and_names_cannot_escape_the_session() -> anyhow::Result<()> {
    let (server, client) = start(zero_latency(5)).await?;
    let saved_at = client.initialize(&InitializeRequest::default()).await?;
    let saved = client.save_state(Some("../../etc/checkpoint")).await?;
    ensure!(!saved.state_file.contains(".."), "a path escapes: {}", saved.state_file);
    ensure!(saved.state_file.ends_with("/checkpoint.state"), "{}", saved.state_file);

    for _ in 0..5 {
        client.act(&Action::press([Key::Right, Key::Down])?).await?;
    }
    let load = InitializeRequest { load_state_file: Some(saved.state_file.clone()), ..Default::default() };
    let loaded = client.initialize(&load).await?;
    ensure!(loaded.coordinates == saved_at.coordinates && loaded.location == saved_at.location);

    let missing = InitializeRequest { load_state_file: Some("nope.state".into()), ..Default::default() };
    let error = client.initialize(&missing).await.expect_err("no such state");
    ensure!(matches!(error.server_error(), Some(ServerError::InitializeFailed(_))), "{error:#}");
    server.shutdown().await?;
    Ok(())
}

#[gymfleet_harness::test]
async fn injected_faults_reach_the_client_as_typed_errors() -> anyhow::Result<()> {
    let faults = [
        Faults { error_rate: 1.0, ..Faults::default() },
        Faults { drop_rate: 1.0, ..Faults::default() },
        Faults { malformed_rate: 1.0, ..Faults::default() },
    ];
    for faults in faults {
        let (server, client) = start(SimConfig { faults, ..zero_latency(1) }).await?;
        let error = client.status().await.expect_err("every answer is faulty");
        let expected = match &error.kind {
            ErrorKind::Decode(DecodeError::Server(ServerError::Http { status: 500, .. })) => faults.error_rate == 1.0,
            ErrorKind::Transport(_) => faults.drop_rate == 1.0,
            ErrorKind::Decode(DecodeError::Malformed { .. }) => faults.malformed_rate == 1.0,
            _ => false,
        };
        ensure!(expected, "{faults:?} gave {error:#}");
        server.shutdown().await?;
    }

    let invalid = SimConfig { faults: Faults { drop_rate: 1.5, ..Faults::default() }, ..zero_latency(1) };
    match SimServer::start(LOOPBACK.parse()?, invalid).await {
        Err(SimError::Rate { name: "drop_rate", value: 1.5 }) => Ok(()),
        other => anyhow::bail!("an invalid rate was not refused by name: {other:?}"),
    }
}

/// Sends one raw request and returns the status and the JSON body.
async fn send_raw(
    addr: SocketAddr,
    method: &str,
    path: &str,
    content_type: Option<&str>,
    body: Option<&str>,
) -> anyhow::Result<(u16, Value)> {
    use tokio::io::{AsyncReadExt as _, AsyncWriteExt as _};

    let mut stream = tokio::net::TcpStream::connect(addr).await?;
    let body = body.unwrap_or_default();
    let mut request = format!("{method} {path} HTTP/1.1\r\nhost: {addr}\r\nconnection: close\r\n");
    if let Some(content_type) = content_type {
        request.push_str(&format!("content-type: {content_type}\r\n"));
    }
    request.push_str(&format!("content-length: {}\r\n\r\n{body}", body.len()));
    stream.write_all(request.as_bytes()).await?;
    let mut response = String::new();
    stream.read_to_string(&mut response).await?;
    let status = response.get(9..12).context("no status line")?.parse()?;
    let json = response.split_once("\r\n\r\n").map(|(_, body)| body).unwrap_or_default();
    Ok((status, serde_json::from_str(json).unwrap_or(Value::Null)))
}

#[gymfleet_harness::test]
async fn bad_requests_get_the_real_servers_status_and_error() -> anyhow::Result<()> {
    let fixtures = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/gym");
    let prefixes = [
        "B03", "B04", "B05", "B06", "B14", "B15", "B16", "B17", "B18", "B19", "B20", "B21", "B22",
        "B23", "B24", "B25", "B26", "B27", "B42", "B45", "B47",
    ];
    let (server, client) = start(zero_latency(1)).await?;
    client.initialize(&InitializeRequest::default()).await?;

    let mut mismatches = Vec::new();
    for entry in std::fs::read_dir(&fixtures)? {
        let path = entry?.path();
        let name = path.file_name().and_then(|name| name.to_str()).unwrap_or_default().to_owned();
        if !prefixes.iter().any(|prefix| name.starts_with(prefix)) {
            continue;
        }
        let fixture: Value = serde_json::from_str(&std::fs::read_to_string(&path)?)?;
        let request = &fixture["request"];
        let (status, body) = send_raw(
            server.addr(),
            request["method"].as_str().unwrap_or("GET"),
            request["path"].as_str().unwrap_or("/"),
            request["content_type"].as_str(),
            request["body_raw"].as_str(),
        )
        .await?;
        let expected_status = fixture["response"]["status"].as_u64().unwrap_or_default() as u16;
        let expected_body = &fixture["response"]["body"];
        let classify = |status: u16, body: &Value| {
            let error = gymfleet::gym::wire::server_error(status, body.to_string().as_bytes());
            std::mem::discriminant(&error)
        };
        let same = status == expected_status
            && (status == 200 || classify(status, &body) == classify(expected_status, expected_body));
        if !same {
            mismatches.push(format!("{name}: answered {status} {body}, the real server {expected_status} {expected_body}"));
        }
    }
    ensure!(mismatches.is_empty(), "{}", mismatches.join("\n"));
    server.shutdown().await?;
    Ok(())
}

#[gymfleet_harness::test]
fn a_step_in_any_direction_is_one_tile() {
    let origin = Position { x: 3, y: 3 };
    assert_eq!(origin.step(Direction::Up), Position { x: 3, y: 2 });
    assert_eq!(origin.step(Direction::Right), Position { x: 4, y: 3 });
}

/// How one status poll of a server with faults ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Ended {
    Answered,
    /// A `500` with the body of an injected fault.
    InjectedError,
    /// Refused, reset or closed before the answer.
    ConnectionFailed,
}

/// Starts a server and a client that never retries, never opens its
/// breaker and waits a minute for a connection or an answer, so that only
/// the server decides how each call ends, on a paused clock too.
async fn start_patient(config: SimConfig) -> anyhow::Result<(SimServer, GymClient)> {
    let server = SimServer::start(LOOPBACK.parse()?, config).await?;
    let patient = Duration::from_secs(60);
    let deadlines = Deadlines {
        action_base: patient,
        initialize: patient,
        status: patient,
        evaluate: patient,
        stop: patient,
        save_state: patient,
        ..Deadlines::default()
    };
    let config = ClientConfig {
        connect_timeout: patient,
        deadlines,
        retry: RetryPolicy { max_attempts: 1, ..RetryPolicy::default() },
        breaker: BreakerConfig {
            consecutive_failures: u32::MAX,
            failure_rate: 1.0,
            window: 1000,
            min_calls: 1000,
            ..BreakerConfig::default()
        },
        ..ClientConfig::default()
    };
    let client = GymClient::new(&server.url(), config)?;
    Ok((server, client))
}

fn scheduled(schedule: Vec<Scheduled>) -> SimConfig {
    SimConfig { schedule, ..zero_latency(1) }
}

/// Polls the status `n_calls` times, one after another, and says how each
/// call ended and how long it took on tokio's clock.
async fn poll_status(client: &GymClient, n_calls: usize) -> anyhow::Result<Vec<(Ended, Duration)>> {
    let mut outcomes = Vec::with_capacity(n_calls);
    for call_idx in 0..n_calls {
        let started = tokio::time::Instant::now();
        let ended = match client.status().await {
            Ok(_) => Ended::Answered,
            Err(error) => match (&error.kind, error.server_error()) {
                (_, Some(ServerError::Http { status: 500, detail })) if detail.contains("injected fault") => {
                    Ended::InjectedError
                }
                (ErrorKind::Connect(_) | ErrorKind::Transport(_), _) => Ended::ConnectionFailed,
                _ => anyhow::bail!("call {call_idx} failed unexpectedly: {error:#}"),
            },
        };
        outcomes.push((ended, started.elapsed()));
    }
    Ok(outcomes)
}

fn endings(outcomes: &[(Ended, Duration)]) -> Vec<Ended> {
    outcomes.iter().map(|(ended, _)| *ended).collect()
}

#[gymfleet_harness::test]
async fn scheduled_errors_fail_exactly_the_next_count_answers() -> anyhow::Result<()> {
    let errors = Scheduled { at: Trigger::Request(2), fault: ScheduledFault::Errors { count: 3 } };
    let (server, client) = start_patient(scheduled(vec![errors])).await?;
    let outcomes = poll_status(&client, 6).await?;
    use Ended::{Answered, InjectedError};
    ensure!(
        endings(&outcomes) == [Answered, Answered, InjectedError, InjectedError, InjectedError, Answered],
        "{outcomes:?}"
    );
    server.shutdown().await?;
    Ok(())
}

#[gymfleet_harness::test(start_paused)]
async fn a_scheduled_slowdown_delays_every_later_answer_and_combines_with_errors() -> anyhow::Result<()> {
    let extra = Duration::from_secs(10);
    let schedule = vec![
        Scheduled { at: Trigger::Request(1), fault: ScheduledFault::Slow { extra } },
        Scheduled { at: Trigger::Request(2), fault: ScheduledFault::Errors { count: 1 } },
    ];
    let (server, client) = start_patient(scheduled(schedule)).await?;
    let outcomes = poll_status(&client, 4).await?;
    use Ended::{Answered, InjectedError};
    ensure!(endings(&outcomes) == [Answered, Answered, InjectedError, Answered], "{outcomes:?}");
    ensure!(outcomes[0].1 < extra, "the answer before the slowdown was slow: {outcomes:?}");
    for (ended, elapsed) in &outcomes[1..] {
        ensure!(*elapsed >= extra, "a {ended:?} answer after the slowdown took {elapsed:?}");
    }
    server.shutdown().await?;
    Ok(())
}

#[gymfleet_harness::test]
async fn a_server_scheduled_to_die_at_a_request_drops_it_and_refuses_the_rest() -> anyhow::Result<()> {
    let die = Scheduled { at: Trigger::Request(1), fault: ScheduledFault::Die };
    let (server, client) = start_patient(scheduled(vec![die])).await?;
    let outcomes = poll_status(&client, 4).await?;
    use Ended::{Answered, ConnectionFailed};
    ensure!(endings(&outcomes) == [Answered, ConnectionFailed, ConnectionFailed, ConnectionFailed], "{outcomes:?}");
    server.shutdown().await?;
    Ok(())
}

#[gymfleet_harness::test(start_paused)]
async fn a_server_scheduled_to_die_after_a_time_dies_with_no_request() -> anyhow::Result<()> {
    let lifetime = Duration::from_secs(30);
    let die = Scheduled { at: Trigger::After(lifetime), fault: ScheduledFault::Die };
    let (server, client) = start_patient(scheduled(vec![die])).await?;
    let before = poll_status(&client, 1).await?;
    ensure!(endings(&before) == [Ended::Answered], "{before:?}");

    // The paused clock moves only when every task is idle, so the server
    // has done all it does at its death before this returns.
    tokio::time::sleep(lifetime + Duration::from_secs(1)).await;
    let connected = tokio::net::TcpStream::connect(server.addr()).await;
    ensure!(
        connected.as_ref().is_err_and(|error| error.kind() == std::io::ErrorKind::ConnectionRefused),
        "the listener outlived the server: {connected:?}"
    );
    let after = poll_status(&client, 2).await?;
    ensure!(endings(&after) == [Ended::ConnectionFailed; 2], "{after:?}");
    server.shutdown().await?;
    Ok(())
}

/// The delay at percentile `percent` of `sorted` (nearest rank).
fn percentile(sorted: &[Duration], percent: usize) -> Duration {
    sorted[(sorted.len() * percent).div_ceil(100) - 1]
}

#[gymfleet_harness::test]
fn jitter_delays_replay_from_the_seed() {
    let jitter = Jitter { p50: Duration::from_millis(20), p99: Duration::from_millis(200) };
    let first: Vec<Duration> = jitter.delays(7).take(100).collect();
    assert_eq!(first, jitter.delays(7).take(100).collect::<Vec<_>>());
    assert_ne!(first, jitter.delays(8).take(100).collect::<Vec<_>>());
}

#[gymfleet_harness::test]
fn jitter_delays_have_the_configured_median_and_99th_percentile() {
    let jitter = Jitter { p50: Duration::from_millis(20), p99: Duration::from_millis(200) };
    let mut delays: Vec<Duration> = jitter.delays(3).take(10_000).collect();
    delays.sort_unstable();
    for (percent, expected) in [(50, jitter.p50), (99, jitter.p99)] {
        let measured = percentile(&delays, percent);
        let error = measured.abs_diff(expected);
        assert!(error <= expected / 10, "p{percent} is {measured:?}, configured {expected:?}");
    }
}

#[gymfleet_harness::test]
async fn invalid_jitter_is_refused_by_field() -> anyhow::Result<()> {
    let zero_median = Jitter { p50: Duration::ZERO, p99: Duration::from_millis(5) };
    let tail_below_median = Jitter { p50: Duration::from_millis(5), p99: Duration::from_millis(4) };
    for (jitter, field) in [(zero_median, "p50"), (tail_below_median, "p99")] {
        let latency = LatencyModel { jitter: Some(jitter), ..LatencyModel::ZERO };
        match SimServer::start(LOOPBACK.parse()?, SimConfig { latency, ..zero_latency(1) }).await {
            Err(error @ SimError::Jitter { name, .. }) if name == field => {
                ensure!(error.to_string().contains(&format!("`{field}`")), "{error}");
            }
            other => anyhow::bail!("{jitter:?} was not refused by `{field}`: {other:?}"),
        }
    }
    Ok(())
}

#[gymfleet_harness::test(start_paused)]
async fn jitter_and_a_schedule_leave_the_random_faults_as_they_were() -> anyhow::Result<()> {
    let faults = Faults { error_rate: 0.5, ..Faults::default() };
    let plain = SimConfig { faults, ..zero_latency(9) };
    let jitter = Jitter { p50: Duration::from_millis(20), p99: Duration::from_millis(200) };
    let busy = SimConfig {
        latency: LatencyModel { jitter: Some(jitter), ..LatencyModel::ZERO },
        schedule: vec![Scheduled { at: Trigger::Request(5), fault: ScheduledFault::Slow { extra: Duration::from_secs(1) } }],
        ..plain.clone()
    };
    let mut endings_by_config = Vec::new();
    for config in [plain, busy] {
        let (server, client) = start_patient(config).await?;
        endings_by_config.push(endings(&poll_status(&client, 20).await?));
        server.shutdown().await?;
    }
    ensure!(endings_by_config[0].contains(&Ended::InjectedError), "{endings_by_config:?}");
    ensure!(endings_by_config[0] == endings_by_config[1], "{endings_by_config:?}");
    Ok(())
}
