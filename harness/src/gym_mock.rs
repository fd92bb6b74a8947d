//! A fleet of wiremock servers that answer in the Pokemon Gym server's
//! shapes, with one helper per fault, for tests of gym clients.
//!
//! The bodies are the shapes captured from the real server: a game state
//! for `/initialize` and `/action`, the `running` status, the 500 `detail`
//! strings, the 422 list, the `200 OK` placeholder state. wiremock's delays
//! are real time, so tests using them must not pause the tokio clock.

use std::time::Duration;

use serde_json::{Value, json};
use wiremock::matchers::{method, path};
use wiremock::{Mock, MockServer, ResponseTemplate};

/// A game state as the server returns it, at `(x, y)` in `location`.
pub fn game_state(location: &str, x: i64, y: i64, step_number: u64) -> Value {
    json!({
        "player_name": "RED",
        "rival_name": "BLUE",
        "money": 3000,
        "location": location,
        "coordinates": [x, y],
        "badges": ["BOULDER"],
        "valid_moves": ["down", "left"],
        "inventory": [{"item": "POTION", "quantity": 3}],
        "dialog": null,
        "pokemons": [],
        "screenshot_base64": "",
        "collision_map": null,
        "step_number": step_number,
        "execution_time": 0.0,
        "score": 1.0
    })
}

/// The `200 OK` state the server answers when no game is running.
pub fn placeholder_state() -> Value {
    json!({
        "player_name": "", "rival_name": "", "money": 0,
        "location": "SESSION_TIMEOUT", "coordinates": [0, 0],
        "badges": [], "valid_moves": [], "inventory": [],
        "dialog": "Session has timed out after 30 minutes. Please initialize a new session.",
        "pokemons": [], "screenshot_base64": "", "collision_map": null,
        "step_number": 0, "execution_time": 0.0, "score": 0.0
    })
}

/// The `running` status.
pub fn running_status(steps_taken: u64) -> Value {
    json!({
        "status": "running", "steps_taken": steps_taken,
        "session_dir": "gameplay_sessions/session_mock",
        "remaining_time_seconds": 14398.0, "remaining_time_minutes": 239.9,
        "score": 1.0, "pokemon_count": 0, "badges_count": 1, "locations_count": 1
    })
}

/// The 500 answer to an unknown key.
pub fn invalid_key_error(key: &str) -> Value {
    json!({"detail": format!(
        "Failed to take action: Invalid key: {key}. Valid keys are: \
         ['a', 'b', 'start', 'select', 'up', 'down', 'left', 'right']"
    )})
}

/// One mock Pokemon Gym server.
#[derive(Debug)]
pub struct MockGym {
    server: MockServer,
}

impl MockGym {
    /// Starts a server on `127.0.0.1:0` with no routes.
    pub async fn start() -> MockGym {
        MockGym {
            server: MockServer::start().await,
        }
    }

    /// `http://127.0.0.1:PORT`.
    pub fn url(&self) -> String {
        self.server.uri()
    }

    /// The underlying wiremock server, for custom mocks and verification.
    pub fn server(&self) -> &MockServer {
        &self.server
    }

    /// Answers every endpoint as a healthy server with a running game does.
    pub async fn healthy(&self) -> &MockGym {
        self.answer(
            "POST",
            "/initialize",
            200,
            game_state("OAKS LAB", 5, 6, 0),
            None,
        )
        .await;
        self.answer(
            "POST",
            "/action",
            200,
            game_state("OAKS LAB", 5, 7, 1),
            None,
        )
        .await;
        self.answer("GET", "/status", 200, running_status(1), None)
            .await;
        let evaluation = json!({"score": 1.0, "pokemon": {"count": 0, "items": []},
            "badges": {"count": 1, "items": ["BOULDER"]},
            "locations": {"count": 1, "items": ["OAKS_LAB"]}});
        self.answer("GET", "/evaluate", 200, evaluation, None).await;
        let saved = json!({"status": "success", "state_file": "gameplay_sessions/s/mock.state"});
        self.answer("POST", "/save_state", 200, saved, None).await;
        self
    }

    /// Mounts one route answering `status` with `body` (after `delay`),
    /// expected to be called exactly `times` times if given.
    pub async fn answer(
        &self,
        http_method: &str,
        route: &str,
        status: u16,
        body: Value,
        times: Option<u64>,
    ) {
        let mock = Mock::given(method(http_method))
            .and(path(route))
            .respond_with(ResponseTemplate::new(status).set_body_json(body));
        let mock = match times {
            Some(times) => mock.expect(times),
            None => mock,
        };
        mock.mount(&self.server).await;
    }

    /// `route` answers only after `delay`, exactly `times` times.
    pub async fn slow(&self, http_method: &str, route: &str, delay: Duration, times: u64) {
        let body = match route {
            "/status" => running_status(1),
            _ => game_state("OAKS LAB", 5, 7, 1),
        };
        Mock::given(method(http_method))
            .and(path(route))
            .respond_with(
                ResponseTemplate::new(200)
                    .set_body_json(body)
                    .set_delay(delay),
            )
            .expect(times)
            .mount(&self.server)
            .await;
    }

    /// `route` answers `status` with a `detail`, exactly `times` times.
    pub async fn fail(
        &self,
        http_method: &str,
        route: &str,
        status: u16,
        detail: &str,
        times: u64,
    ) {
        Mock::given(method(http_method))
            .and(path(route))
            .respond_with(ResponseTemplate::new(status).set_body_json(json!({"detail": detail})))
            .expect(times)
            .mount(&self.server)
            .await;
    }

    /// `route` fails with 503 for its first `n_failures` calls, then the
    /// next mounted mock (mount a healthy one after this) answers.
    pub async fn fail_first(&self, http_method: &str, route: &str, n_failures: u64) {
        Mock::given(method(http_method))
            .and(path(route))
            .respond_with(ResponseTemplate::new(503).set_body_json(json!({"detail": "overloaded"})))
            .up_to_n_times(n_failures)
            .expect(n_failures)
            .mount(&self.server)
            .await;
    }

    /// `/action` answers the `SESSION_TIMEOUT` placeholder, exactly `times`
    /// times.
    pub async fn session_timeout(&self, times: u64) {
        self.answer("POST", "/action", 200, placeholder_state(), Some(times))
            .await;
    }

    /// `route` answers 200 with a body that is not JSON, exactly `times`
    /// times.
    pub async fn malformed(&self, http_method: &str, route: &str, times: u64) {
        Mock::given(method(http_method))
            .and(path(route))
            .respond_with(ResponseTemplate::new(200).set_body_string("{\"player_name\": \"RED\""))
            .expect(times)
            .mount(&self.server)
            .await;
    }

    /// `route` answers 200 with `n_bytes` of JSON padding, exactly `times`
    /// times.
    pub async fn oversized(&self, http_method: &str, route: &str, n_bytes: usize, times: u64) {
        let mut state = game_state("OAKS LAB", 5, 7, 1);
        state["screenshot_base64"] = Value::String("A".repeat(n_bytes));
        self.answer(http_method, route, 200, state, Some(times))
            .await;
    }
}

/// Several mock servers, as a fleet.
#[derive(Debug)]
pub struct MockFleet {
    /// The servers, in start order.
    pub servers: Vec<MockGym>,
}

impl MockFleet {
    /// Starts `n_servers` healthy servers.
    pub async fn healthy(n_servers: usize) -> MockFleet {
        let mut servers = Vec::with_capacity(n_servers);
        for _ in 0..n_servers {
            let server = MockGym::start().await;
            server.healthy().await;
            servers.push(server);
        }
        MockFleet { servers }
    }

    /// Every server's URL.
    pub fn urls(&self) -> Vec<String> {
        self.servers.iter().map(MockGym::url).collect()
    }
}
