//! The gym client against mock servers: deadlines, at-most-once actions,
//! retries of idempotent calls, the breaker, size caps and typed errors.
//! wiremock's delays are real time, so nothing here pauses the clock.

use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;

use gymfleet::gym::breaker::{BreakerConfig, BreakerState};
use gymfleet::gym::client::ConfigError;
use gymfleet::gym::wire::{Action, DecodeError, Endpoint, Key, ServerError, Status};
use gymfleet::gym::{ClientConfig, Deadlines, ErrorKind, GymClient, RetryPolicy};
use gymfleet_harness::gym_mock::{MockGym, invalid_key_error};
use tokio::io::{AsyncReadExt as _, AsyncWriteExt as _};

/// A client with fast retries and short deadlines, for tests.
fn client(url: &str, change: impl FnOnce(&mut ClientConfig)) -> GymClient {
    let mut config = ClientConfig {
        deadlines: Deadlines {
            action_base: Duration::from_millis(200),
            action_per_frame: Duration::ZERO,
            status: Duration::from_millis(200),
            ..Deadlines::default()
        },
        retry: RetryPolicy {
            max_attempts: 3,
            initial_backoff: Duration::from_millis(1),
            max_backoff: Duration::from_millis(5),
        },
        ..ClientConfig::default()
    };
    change(&mut config);
    GymClient::new(url, config).expect("a valid test configuration")
}

fn press_a() -> Action {
    Action::press([Key::A]).expect("one key")
}

#[gymfleet_harness::test]
async fn a_healthy_server_answers_every_call_and_latency_is_recorded() -> anyhow::Result<()> {
    let gym = MockGym::start().await;
    gym.healthy().await;
    let client = client(&gym.url(), |_| {});

    let state = client.initialize(&Default::default()).await?;
    anyhow::ensure!(state.location == "OAKS LAB", "{state:?}");
    client.act(&press_a()).await?;
    anyhow::ensure!(matches!(client.status().await?, Status::Running(_)));
    client.evaluate().await?;
    client.save_state(Some("checkpoint")).await?;

    for endpoint in [Endpoint::Initialize, Endpoint::Action, Endpoint::Status] {
        let histogram = client.latencies().snapshot(endpoint);
        anyhow::ensure!(histogram.len() == 1, "{endpoint}: {} samples", histogram.len());
        anyhow::ensure!(client.latencies().errors(endpoint) == 0);
    }
    Ok(())
}

#[gymfleet_harness::test]
async fn an_action_that_times_out_is_sent_exactly_once() -> anyhow::Result<()> {
    let gym = MockGym::start().await;
    gym.slow("POST", "/action", Duration::from_millis(600), 1).await;
    let client = client(&gym.url(), |_| {});

    let error = client.act(&press_a()).await.expect_err("the deadline is 200 ms");
    anyhow::ensure!(matches!(error.kind, ErrorKind::Timeout(_)), "{error:#}");
    anyhow::ensure!(error.may_have_reached_server() && error.attempts == 1);
    let message = error.to_string();
    anyhow::ensure!(
        message.contains(client.server()) && message.contains("/action") && message.contains("timed out"),
        "the message does not name server, endpoint and cause: {message}"
    );
    gym.server().verify().await;
    Ok(())
}

#[gymfleet_harness::test]
async fn server_errors_on_actions_are_typed_and_never_retried() -> anyhow::Result<()> {
    let gym = MockGym::start().await;
    gym.answer("POST", "/action", 500, invalid_key_error("z"), Some(1)).await;
    let client = client(&gym.url(), |_| {});

    let error = client.act(&press_a()).await.expect_err("the server refuses");
    anyhow::ensure!(matches!(error.server_error(), Some(ServerError::InvalidKey(_))), "{error:#}");
    gym.server().verify().await;
    Ok(())
}

#[gymfleet_harness::test]
async fn a_schema_error_names_the_field_the_server_refused() -> anyhow::Result<()> {
    let gym = MockGym::start().await;
    let detail = serde_json::json!({"detail": [{
        "type": "list_type", "loc": ["body", "keys"],
        "msg": "Input should be a valid list", "input": "a"
    }]});
    gym.answer("POST", "/action", 422, detail, Some(1)).await;
    let client = client(&gym.url(), |_| {});

    let error = client.act(&press_a()).await.expect_err("the server refuses the shape");
    match error.server_error() {
        Some(ServerError::Validation(issues)) => {
            anyhow::ensure!(issues.len() == 1 && issues[0].loc == "body.keys", "{issues:?}");
        }
        other => anyhow::bail!("expected a validation error, got {other:?}"),
    }
    anyhow::ensure!(error.to_string().contains("`body.keys` Input should be a valid list"), "{error}");
    gym.server().verify().await;
    Ok(())
}

#[gymfleet_harness::test]
async fn the_session_timeout_placeholder_is_an_error_not_a_state() -> anyhow::Result<()> {
    let gym = MockGym::start().await;
    gym.session_timeout(1).await;
    let client = client(&gym.url(), |_| {});

    let error = client.act(&press_a()).await.expect_err("a placeholder is no game state");
    anyhow::ensure!(error.server_error() == Some(&ServerError::SessionTimeout), "{error:#}");
    gym.server().verify().await;
    Ok(())
}

#[gymfleet_harness::test]
async fn a_failing_status_poll_is_retried_until_attempts_run_out() -> anyhow::Result<()> {
    let gym = MockGym::start().await;
    gym.fail("GET", "/status", 503, "overloaded", 3).await;
    let client = client(&gym.url(), |_| {});

    let error = client.status().await.expect_err("every attempt fails");
    anyhow::ensure!(error.attempts == 3, "{} attempts", error.attempts);
    gym.server().verify().await;
    Ok(())
}

#[gymfleet_harness::test]
async fn a_status_poll_recovers_when_the_server_does() -> anyhow::Result<()> {
    let gym = MockGym::start().await;
    gym.fail_first("GET", "/status", 2).await;
    gym.healthy().await;
    let client = client(&gym.url(), |_| {});

    anyhow::ensure!(matches!(client.status().await?, Status::Running(_)));
    gym.server().verify().await;
    Ok(())
}

#[gymfleet_harness::test]
async fn a_refused_connection_never_reached_the_server_and_is_retried() -> anyhow::Result<()> {
    let listener = std::net::TcpListener::bind("127.0.0.1:0")?;
    let url = format!("http://{}", listener.local_addr()?);
    drop(listener);
    let client = client(&url, |_| {});

    let error = client.act(&press_a()).await.expect_err("nothing listens");
    anyhow::ensure!(matches!(error.kind, ErrorKind::Connect(_)), "{error:#}");
    anyhow::ensure!(!error.may_have_reached_server());
    anyhow::ensure!(error.attempts == 3, "a refused connection is safe to retry: {}", error.attempts);
    Ok(())
}

#[gymfleet_harness::test]
async fn a_connection_reset_mid_response_fails_the_action_once() -> anyhow::Result<()> {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await?;
    let url = format!("http://{}", listener.local_addr()?);
    let n_requests = Arc::new(AtomicUsize::new(0));
    let counter = Arc::clone(&n_requests);
    let server = tokio::spawn(async move {
        while let Ok((mut socket, _)) = listener.accept().await {
            let mut request = vec![0u8; 4096];
            if socket.read(&mut request).await.unwrap_or(0) == 0 {
                continue;
            }
            counter.fetch_add(1, Ordering::SeqCst);
            let partial = "HTTP/1.1 200 OK\r\ncontent-type: application/json\r\n\
                           content-length: 500\r\n\r\n{\"player_name\": \"RE";
            let _ = socket.write_all(partial.as_bytes()).await;
        }
    });
    let client = client(&url, |_| {});

    let error = client.act(&press_a()).await.expect_err("the body is cut");
    server.abort();
    anyhow::ensure!(matches!(error.kind, ErrorKind::Transport(_)), "{error:#}");
    anyhow::ensure!(error.may_have_reached_server());
    anyhow::ensure!(n_requests.load(Ordering::SeqCst) == 1, "the action was sent again");
    Ok(())
}

#[gymfleet_harness::test]
async fn malformed_and_oversized_bodies_are_typed_errors() -> anyhow::Result<()> {
    let gym = MockGym::start().await;
    gym.malformed("POST", "/action", 1).await;
    gym.oversized("POST", "/initialize", 64 * 1024, 1).await;
    let client = client(&gym.url(), |config| config.max_body_bytes = 16 * 1024);

    let malformed = client.act(&press_a()).await.expect_err("not JSON");
    anyhow::ensure!(
        matches!(malformed.kind, ErrorKind::Decode(DecodeError::Malformed { .. })),
        "{malformed:#}"
    );
    let oversized = client.initialize(&Default::default()).await.expect_err("too large");
    anyhow::ensure!(
        matches!(oversized.kind, ErrorKind::BodyTooLarge { limit: 16384 }),
        "{oversized:#}"
    );
    gym.server().verify().await;
    Ok(())
}

#[gymfleet_harness::test]
async fn a_status_poll_behind_a_long_action_fails_as_busy_instead_of_queueing() -> anyhow::Result<()> {
    let gym = MockGym::start().await;
    gym.slow("POST", "/action", Duration::from_millis(400), 1).await;
    gym.fail("GET", "/status", 500, "must not be called", 0).await;
    let client = client(&gym.url(), |config| {
        config.deadlines.action_base = Duration::from_secs(2);
        config.deadlines.status = Duration::from_millis(50);
    });

    let action = tokio::spawn({
        let client = client.clone();
        async move { client.act(&press_a()).await }
    });
    // Wait until the action holds the only in-flight slot: its request has
    // reached the mock.
    while gym.server().received_requests().await.unwrap_or_default().is_empty() {
        tokio::task::yield_now().await;
    }
    let error = client.status().await.expect_err("the slot is taken");
    anyhow::ensure!(matches!(error.kind, ErrorKind::Busy(_)), "{error:#}");
    action.await??;
    gym.server().verify().await;
    Ok(())
}

#[gymfleet_harness::test]
async fn consecutive_failures_open_the_breaker_and_stop_sending() -> anyhow::Result<()> {
    let gym = MockGym::start().await;
    gym.fail("GET", "/status", 500, "boom", 2).await;
    let client = client(&gym.url(), |config| {
        config.retry.max_attempts = 1;
        config.breaker = BreakerConfig { consecutive_failures: 2, ..BreakerConfig::default() };
    });
    let mut state = client.breaker_state();

    for _ in 0..2 {
        client.status().await.expect_err("the server fails");
    }
    anyhow::ensure!(state.has_changed()?, "no breaker transition was published");
    anyhow::ensure!(matches!(*state.borrow_and_update(), BreakerState::Open { .. }));
    let error = client.status().await.expect_err("the breaker is open");
    anyhow::ensure!(matches!(error.kind, ErrorKind::BreakerOpen { .. }), "{error:#}");
    anyhow::ensure!(!error.may_have_reached_server());
    gym.server().verify().await;
    Ok(())
}

#[gymfleet_harness::test]
fn action_deadlines_grow_with_the_frames_emulated() {
    let deadlines = Deadlines {
        action_base: Duration::from_millis(100),
        action_per_frame: Duration::from_millis(2),
        ..Deadlines::default()
    };
    let three_keys = Action::press([Key::Up, Key::Up, Key::Left]).expect("three keys");
    assert_eq!(deadlines.for_action(&three_keys), Duration::from_millis(100 + 2 * 390));
    let wait = Action::wait(60).expect("a valid wait");
    assert_eq!(deadlines.for_action(&wait), Duration::from_millis(100 + 2 * 60));
}

#[gymfleet_harness::test]
fn server_urls_other_than_http_host_port_are_refused() {
    for (url, reason) in [
        ("https://127.0.0.1:8081", "plain `http`"),
        ("ftp://127.0.0.1:8081", "scheme must be `http`"),
        ("127.0.0.1:8081", "expected `http://host:port`"),
        ("http://127.0.0.1:0", "port 0"),
        ("http://127.0.0.1:8081/api", "no path"),
        ("http://", "not a URL"),
    ] {
        match GymClient::new(url, ClientConfig::default()) {
            Err(ConfigError::Url { url: named, reason: said }) => {
                assert_eq!(named, url);
                assert!(said.contains(reason), "`{url}`: {said:?} does not say {reason:?}");
            }
            other => panic!("`{url}` was not refused as a URL: {other:?}"),
        }
    }
    let zero = ClientConfig { max_in_flight: 0, ..ClientConfig::default() };
    assert!(matches!(GymClient::new("http://127.0.0.1:1", zero), Err(ConfigError::ZeroInFlight)));
}
