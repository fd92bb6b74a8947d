//! The simulated Pokemon Gym server: an axum app that speaks the real
//! server's wire format over one simulated game, with a latency model and
//! fault injection.
//!
//! Like the real server it holds one game and serves one request at a time:
//! a request holds the game's lock from its first byte to its last, latency
//! included, so a status poll sent during a long action waits for it.
//!
//! Besides faults drawn at random per request, a server can follow a
//! schedule: from a point in time or from the n-th request on, answers get
//! slower, a run of them fail, or the server dies. Every random draw comes
//! from a generator seeded by the configuration, one stream per purpose, so
//! a run replays exactly and turning on one kind of draw never shifts
//! another.

use std::collections::HashMap;
use std::net::SocketAddr;
use std::pin::{Pin, pin};
use std::sync::Arc;
use std::task::{Context, Poll};
use std::time::Duration;

use axum::Router;
use axum::body::{Body, Bytes};
use axum::extract::State;
use axum::http::{HeaderMap, StatusCode, header};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use hyper_util::rt::TokioIo;
use hyper_util::service::TowerToHyperService;
use rand::rngs::ChaCha8Rng;
use rand::{Rng, RngExt as _, SeedableRng as _};
use serde_json::{Value, json};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::{Mutex, Notify, oneshot, watch};
use tokio::task::{JoinHandle, JoinSet};
use tokio::time::Instant;

use crate::gym::sim::game::Game;
use crate::gym::sim::world::World;
use crate::gym::wire::{Action, Key, SESSION_TIMEOUT_LOCATION};

/// How long the simulated server takes to answer.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct LatencyModel {
    /// Added to every answer.
    pub fixed: Duration,
    /// Added for every frame an action emulates (130 per key, or the frames
    /// waited).
    pub per_frame: Duration,
    /// Added to every `/initialize`.
    pub initialize: Duration,
    /// Added to every answer, drawn afresh each time; `None` adds nothing.
    pub jitter: Option<Jitter>,
}

impl LatencyModel {
    /// Answers at once: for tests and throughput, never the bottleneck.
    pub const ZERO: LatencyModel = LatencyModel {
        fixed: Duration::ZERO,
        per_frame: Duration::ZERO,
        initialize: Duration::ZERO,
        jitter: None,
    };

    /// The real server headless, as measured: a key press about 53 ms, a
    /// one-frame wait about 29 ms, `/initialize` about 2.6 s.
    pub const HEADLESS: LatencyModel = LatencyModel {
        fixed: Duration::from_millis(28),
        per_frame: Duration::from_micros(190),
        initialize: Duration::from_millis(2600),
        jitter: None,
    };

    /// The real server with a window, capped at 5× speed: a key press about
    /// 450 ms.
    pub const WINDOWED: LatencyModel = LatencyModel {
        fixed: Duration::from_millis(10),
        per_frame: Duration::from_micros(3_400),
        initialize: Duration::from_millis(2600),
        jitter: None,
    };
}

/// A random extra delay with a long right tail, as real servers show: a
/// log-normal distribution whose median is `p50` and whose 99th percentile
/// is `p99`.
///
/// A server started with jitter draws its delays from
/// [`Jitter::delays`]`(seed)`, seeded with the server's own seed.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Jitter {
    /// The median delay; must be above zero.
    pub p50: Duration,
    /// The delay that 99 answers in 100 stay under; must be at least `p50`.
    pub p99: Duration,
}

impl Jitter {
    /// Draws one delay from the distribution with `rng`.
    ///
    /// The distribution is `exp(mu + sigma * z)` for a standard normal `z`,
    /// with `mu = ln p50` and `sigma = (ln p99 - ln p50) / z99`, where `z99`
    /// is the standard normal's 99th percentile. A delay too long for a
    /// `Duration` saturates.
    pub fn sample<R: Rng + ?Sized>(&self, rng: &mut R) -> Duration {
        let mu = self.p50.as_secs_f64().ln();
        let sigma = (self.p99.as_secs_f64().ln() - mu) / STANDARD_NORMAL_P99;
        let seconds = (mu + sigma * standard_normal(rng)).exp();
        Duration::try_from_secs_f64(seconds).unwrap_or(Duration::MAX)
    }

    /// The endless sequence of delays that a server seeded with `seed`
    /// adds, in the order it adds them. The same seed gives the same
    /// sequence.
    pub fn delays(self, seed: u64) -> JitterDelays {
        let mut rng = ChaCha8Rng::seed_from_u64(seed);
        // The world is generated from stream 0 of the same seed.
        rng.set_stream(JITTER_STREAM);
        JitterDelays { jitter: self, rng }
    }

    fn validate(&self) -> Result<(), SimError> {
        if self.p50.is_zero() {
            return Err(SimError::Jitter {
                name: "p50",
                requirement: "above zero",
                value: self.p50,
            });
        }
        if self.p99 < self.p50 {
            return Err(SimError::Jitter {
                name: "p99",
                requirement: "at least `p50`",
                value: self.p99,
            });
        }
        Ok(())
    }
}

/// The seeded sequence of delays of one [`Jitter`]; see [`Jitter::delays`].
#[derive(Debug)]
pub struct JitterDelays {
    jitter: Jitter,
    rng: ChaCha8Rng,
}

impl Iterator for JitterDelays {
    type Item = Duration;

    fn next(&mut self) -> Option<Duration> {
        Some(self.jitter.sample(&mut self.rng))
    }
}

/// Faults injected into answers, each drawn per request from a seeded
/// generator.
#[derive(Debug, Clone, Copy, PartialEq, Default)]
pub struct Faults {
    /// The chance of a `500` answer instead of the real one.
    pub error_rate: f64,
    /// The chance that the answer stalls for `stall` first.
    pub stall_rate: f64,
    /// How long a stall lasts.
    pub stall: Duration,
    /// The chance that the connection is dropped mid-answer.
    pub drop_rate: f64,
    /// The chance of a `200` answer whose body is cut short.
    pub malformed_rate: f64,
}

/// A fault that strikes once its trigger is reached and, for `Slow` and
/// `Die`, lasts for the rest of the server's life.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Scheduled {
    /// When the fault strikes.
    pub at: Trigger,
    /// What happens then.
    pub fault: ScheduledFault,
}

/// When a scheduled fault strikes. Triggers are checked as each request
/// begins; a `Die` after a time also strikes with no request at all.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Trigger {
    /// Once this long has passed since the server started, on tokio's
    /// clock.
    After(Duration),
    /// From the request with this index on, counting from 0 across every
    /// endpoint in the order the server takes them up.
    Request(u64),
}

/// What a scheduled fault does. Faults that have struck add up: two `Slow`
/// faults add both delays, and a slow answer can also be an error.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ScheduledFault {
    /// Every answer from then on takes `extra` longer.
    Slow {
        /// The delay added to each answer.
        extra: Duration,
    },
    /// The next `count` answers, the striking request's included, are `500`
    /// answers, with the same body as a random error fault. As with the
    /// random fault, the request's work is done all the same.
    Errors {
        /// How many answers fail.
        count: u32,
    },
    /// The server stops at once: it closes its listener and every open
    /// connection, so the request in flight gets no answer and later ones
    /// cannot connect.
    Die,
}

/// Why a simulated server cannot start.
#[derive(Debug, thiserror::Error)]
pub enum SimError {
    /// A fault rate is not a probability.
    #[error("fault rate `{name}` must be in [0, 1], not {value}")]
    Rate {
        /// The field.
        name: &'static str,
        /// The value given.
        value: f64,
    },
    /// A percentile of the latency jitter is out of range.
    #[error("latency jitter `{name}` must be {requirement}, not {value:?}")]
    Jitter {
        /// The field.
        name: &'static str,
        /// What the field must be.
        requirement: &'static str,
        /// The value given.
        value: Duration,
    },
    /// The address could not be bound.
    #[error("cannot listen on `{addr}`")]
    Bind {
        /// The address.
        addr: SocketAddr,
        /// The cause.
        #[source]
        source: std::io::Error,
    },
}

/// Everything a simulated server is configured with.
#[derive(Debug, Clone, PartialEq, Default)]
pub struct SimConfig {
    /// Seeds the world, encounters, fault draws and jitter.
    pub seed: u64,
    /// How long answers take.
    pub latency: LatencyModel,
    /// Faults to inject at random.
    pub faults: Faults,
    /// Faults to inject at set points, in any order.
    pub schedule: Vec<Scheduled>,
}

impl SimConfig {
    fn validate(&self) -> Result<(), SimError> {
        let rates = [
            ("error_rate", self.faults.error_rate),
            ("stall_rate", self.faults.stall_rate),
            ("drop_rate", self.faults.drop_rate),
            ("malformed_rate", self.faults.malformed_rate),
        ];
        for (name, value) in rates {
            if !(0.0..=1.0).contains(&value) {
                return Err(SimError::Rate { name, value });
            }
        }
        if let Some(jitter) = &self.latency.jitter {
            jitter.validate()?;
        }
        Ok(())
    }
}

/// A running simulated server. Dropping it stops the server.
#[derive(Debug)]
pub struct SimServer {
    addr: SocketAddr,
    shutdown: Option<oneshot::Sender<()>>,
    task: Option<JoinHandle<()>>,
}

impl SimServer {
    /// Starts a server on `bind` (port 0 picks a free port).
    pub async fn start(bind: SocketAddr, config: SimConfig) -> Result<SimServer, SimError> {
        config.validate()?;
        let listener = TcpListener::bind(bind)
            .await
            .map_err(|source| SimError::Bind { addr: bind, source })?;
        let addr = listener
            .local_addr()
            .map_err(|source| SimError::Bind { addr: bind, source })?;

        let shared = Arc::new(Shared {
            fault_rng: Mutex::new(ChaCha8Rng::seed_from_u64(config.seed.rotate_left(17))),
            jitter: config
                .latency
                .jitter
                .map(|jitter| Mutex::new(jitter.delays(config.seed))),
            timeline: Mutex::new(Timeline::new(config.schedule.clone())),
            started: Instant::now(),
            death: Notify::new(),
            world: Arc::new(World::generate(config.seed)),
            game: Mutex::new(Session::default()),
            config,
        });
        let router = Router::new()
            .route("/initialize", post(initialize))
            .route("/action", post(action))
            .route("/status", get(status))
            .route("/stop", post(stop))
            .route("/evaluate", get(evaluate))
            .route("/save_state", post(save_state))
            .with_state(Arc::clone(&shared));

        let (shutdown, stop_signal) = oneshot::channel::<()>();
        let task = tokio::spawn(serve(listener, router, shared, stop_signal));
        tracing::info!(%addr, "simulated gym server listening");
        Ok(SimServer {
            addr,
            shutdown: Some(shutdown),
            task: Some(task),
        })
    }

    /// The address the server listens on.
    pub fn addr(&self) -> SocketAddr {
        self.addr
    }

    /// `http://ADDR`.
    pub fn url(&self) -> String {
        format!("http://{}", self.addr)
    }

    /// Stops accepting connections, lets in-flight requests finish, and
    /// waits for the server to end. A server that died as scheduled has
    /// ended already.
    pub async fn shutdown(mut self) -> std::io::Result<()> {
        if let Some(shutdown) = self.shutdown.take() {
            let _ = shutdown.send(());
        }
        match self.task.take() {
            Some(task) => task.await.map_err(std::io::Error::other),
            None => Ok(()),
        }
    }
}

impl Drop for SimServer {
    fn drop(&mut self) {
        if let Some(shutdown) = self.shutdown.take() {
            let _ = shutdown.send(());
        }
    }
}

struct Shared {
    config: SimConfig,
    world: Arc<World>,
    /// The one game; held for the whole of every request.
    game: Mutex<Session>,
    fault_rng: Mutex<ChaCha8Rng>,
    /// The delays still to be drawn, if the latency model has jitter.
    jitter: Option<Mutex<JitterDelays>>,
    /// The scheduled faults, counted off as requests begin.
    timeline: Mutex<Timeline>,
    /// When the server started, on tokio's clock: `Trigger::After` counts
    /// from here.
    started: Instant,
    /// Wakes the serve task when a request finds that the server must die.
    death: Notify,
}

/// The server's one game and its save states.
#[derive(Default)]
struct Session {
    game: Option<Game>,
    /// Whether `/initialize` ever succeeded: before it, `/action` answers
    /// the placeholder state; after `/stop`, a 400.
    ever_initialized: bool,
    n_sessions: u64,
    session_dir: String,
    saves: HashMap<String, Game>,
}

#[derive(Debug, Clone, Copy, PartialEq)]
enum Fault {
    None,
    Error,
    Drop,
    Malformed,
}

/// How one request is to be answered, decided as it begins.
#[derive(Debug, Clone, Copy, PartialEq)]
struct Plan {
    fault: Fault,
    /// Added to the latency model's delay: scheduled slowness and jitter.
    extra_delay: Duration,
}

/// The scheduled faults of one server: those still waiting for their
/// trigger, and what those that struck have left behind.
#[derive(Debug)]
struct Timeline {
    /// Entries whose trigger has not been reached yet.
    waiting: Vec<Scheduled>,
    /// Requests begun so far.
    n_requests: u64,
    /// The sum of the `Slow` faults that struck.
    slowdown: Duration,
    /// Error answers still owed to `Errors` faults that struck.
    errors_owed: u64,
}

/// What the schedule asks of one request.
#[derive(Debug, Clone, Copy, PartialEq)]
struct Due {
    slowdown: Duration,
    error: bool,
    die: bool,
}

impl Timeline {
    fn new(schedule: Vec<Scheduled>) -> Timeline {
        Timeline {
            waiting: schedule,
            n_requests: 0,
            slowdown: Duration::ZERO,
            errors_owed: 0,
        }
    }

    /// Counts a request that begins `since_start` after the server started,
    /// strikes every fault whose trigger it reaches, and says what the
    /// request must suffer.
    fn begin_request(&mut self, since_start: Duration) -> Due {
        let request_idx = self.n_requests;
        self.n_requests += 1;

        let mut die = false;
        let reached = |entry: &mut Scheduled| match entry.at {
            Trigger::After(delay) => since_start >= delay,
            Trigger::Request(first_idx) => request_idx >= first_idx,
        };
        for entry in self.waiting.extract_if(.., reached) {
            tracing::debug!(request_idx, ?since_start, fault = ?entry.fault, "scheduled fault struck");
            match entry.fault {
                ScheduledFault::Slow { extra } => {
                    self.slowdown = self.slowdown.saturating_add(extra)
                }
                ScheduledFault::Errors { count } => self.errors_owed += u64::from(count),
                ScheduledFault::Die => die = true,
            }
        }

        let error = self.errors_owed > 0;
        if error {
            self.errors_owed -= 1;
        }
        Due {
            slowdown: self.slowdown,
            error,
            die,
        }
    }
}

async fn initialize(
    State(shared): State<Arc<Shared>>,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    let mut session = shared.game.lock().await;
    let plan = shared.begin().await;
    let request = match json_body(&headers, &body) {
        Ok(request) => request,
        Err(refusal) => return shared.finish(plan, 0, refusal.into_response()).await,
    };
    for (field, expected) in [
        ("headless", "bool"),
        ("sound", "bool"),
        ("load_autosave", "bool"),
    ] {
        if let Some(value) = request.get(field)
            && !value.is_boolean()
        {
            let issue = issue(
                "bool_parsing",
                &["body", field],
                "Input should be a valid boolean",
                value,
            );
            let _ = expected;
            return shared
                .finish(plan, 0, validation(vec![issue]).into_response())
                .await;
        }
    }

    let game = match request.get("load_state_file").and_then(Value::as_str) {
        Some(file) => match session.saves.get(&save_name(file)) {
            Some(game) => game.clone(),
            None => {
                let detail =
                    format!("Failed to initialize environment: 400: State file not found: {file}");
                return shared
                    .finish(plan, 0, detail_response(500, &detail).into_response())
                    .await;
            }
        },
        None => Game::new(Arc::clone(&shared.world)),
    };
    session.n_sessions += 1;
    session.session_dir = match request.get("session_id").and_then(Value::as_str) {
        Some(id) => format!("gameplay_sessions/{}", save_name(id)),
        None => format!("gameplay_sessions/session_{:04}", session.n_sessions),
    };
    let state = game.state();
    session.game = Some(game);
    session.ever_initialized = true;

    pause(shared.config.latency.initialize).await;
    let response = (StatusCode::OK, axum::Json(state)).into_response();
    shared.finish(plan, 0, response).await
}

async fn action(State(shared): State<Arc<Shared>>, headers: HeaderMap, body: Bytes) -> Response {
    let mut session = shared.game.lock().await;
    let plan = shared.begin().await;
    let request = match json_body(&headers, &body) {
        Ok(request) => request,
        Err(refusal) => return shared.finish(plan, 0, refusal.into_response()).await,
    };
    let action = match parse_action(&request) {
        Ok(action) => action,
        Err(refusal) => return shared.finish(plan, 0, refusal.into_response()).await,
    };

    let ever_initialized = session.ever_initialized;
    let response = match session.game.as_mut() {
        Some(game) => {
            game.act(&action);
            (StatusCode::OK, axum::Json(game.state())).into_response()
        }
        None if !ever_initialized => {
            (StatusCode::OK, axum::Json(placeholder_state())).into_response()
        }
        None => not_initialized("Environment").into_response(),
    };
    shared
        .finish(plan, action.emulated_frames(), response)
        .await
}

async fn status(State(shared): State<Arc<Shared>>) -> Response {
    let session = shared.game.lock().await;
    let plan = shared.begin().await;
    let body = match &session.game {
        Some(game) => json!({
            "status": "running",
            "steps_taken": game.step_number(),
            "session_dir": session.session_dir,
            "remaining_time_seconds": 14400.0,
            "remaining_time_minutes": 240.0,
            "score": game.score(),
            "pokemon_count": 1,
            "badges_count": game.badges().len(),
            "locations_count": game.locations_visited().len(),
        }),
        None => json!({"status": "not_initialized"}),
    };
    shared
        .finish(plan, 0, (StatusCode::OK, axum::Json(body)).into_response())
        .await
}

async fn stop(State(shared): State<Arc<Shared>>) -> Response {
    let mut session = shared.game.lock().await;
    let plan = shared.begin().await;
    let body = match session.game.take() {
        Some(game) => json!({
            "status": "stopped",
            "session_dir": session.session_dir,
            "final_score": game.score(),
            "pokemon_collected": ["CHARMANDER"],
            "badges_earned": game.badges(),
            "locations_visited": game.locations_visited(),
            "pokemon_count": 1,
            "badges_count": game.badges().len(),
            "locations_count": game.locations_visited().len(),
        }),
        None => json!({"status": "not_initialized"}),
    };
    shared
        .finish(plan, 0, (StatusCode::OK, axum::Json(body)).into_response())
        .await
}

async fn evaluate(State(shared): State<Arc<Shared>>) -> Response {
    let session = shared.game.lock().await;
    let plan = shared.begin().await;
    let response = match &session.game {
        Some(game) => {
            let badges = game.badges();
            let locations = game.locations_visited();
            let body = json!({
                "score": game.score(),
                "pokemon": {"count": 1, "items": ["CHARMANDER"]},
                "badges": {"count": badges.len(), "items": badges},
                "locations": {"count": locations.len(), "items": locations},
            });
            (StatusCode::OK, axum::Json(body)).into_response()
        }
        None => not_initialized("Evaluator").into_response(),
    };
    shared.finish(plan, 0, response).await
}

async fn save_state(
    State(shared): State<Arc<Shared>>,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    let mut session = shared.game.lock().await;
    let plan = shared.begin().await;
    let request = match json_body(&headers, &body) {
        Ok(request) => request,
        Err(refusal) => return shared.finish(plan, 0, refusal.into_response()).await,
    };
    let Some(game) = session.game.clone() else {
        return shared
            .finish(plan, 0, not_initialized("Environment").into_response())
            .await;
    };
    let name = match request
        .get("filename")
        .and_then(Value::as_str)
        .map(save_name)
    {
        Some(name) if !name.is_empty() => name,
        _ => format!("game_state_{:06}", game.step_number()),
    };
    let state_file = format!("{}/{name}.state", session.session_dir);
    session.saves.insert(name, game);
    let body = json!({"status": "success", "state_file": state_file});
    shared
        .finish(plan, 0, (StatusCode::OK, axum::Json(body)).into_response())
        .await
}

impl Shared {
    /// Begins a request: counts it against the schedule, draws its fault
    /// and jitter, and stalls here if a stall is drawn. If the request
    /// brings the server's death, this never returns: the serve task drops
    /// the connection, and this request with it.
    async fn begin(&self) -> Plan {
        let due = self
            .timeline
            .lock()
            .await
            .begin_request(self.started.elapsed());
        if due.die {
            self.death.notify_one();
            std::future::pending::<()>().await;
        }

        let jitter = match &self.jitter {
            Some(delays) => delays.lock().await.next().unwrap_or_default(),
            None => Duration::ZERO,
        };
        let faults = self.config.faults;
        let (stall, drawn) = {
            let mut rng = self.fault_rng.lock().await;
            let stall = faults.stall_rate > 0.0 && rng.random_bool(faults.stall_rate);
            let fault = match () {
                () if faults.drop_rate > 0.0 && rng.random_bool(faults.drop_rate) => Fault::Drop,
                () if faults.error_rate > 0.0 && rng.random_bool(faults.error_rate) => Fault::Error,
                () if faults.malformed_rate > 0.0 && rng.random_bool(faults.malformed_rate) => {
                    Fault::Malformed
                }
                () => Fault::None,
            };
            (stall, fault)
        };
        if stall {
            pause(faults.stall).await;
        }

        // The random draws above happen whatever the schedule says, so that
        // a schedule never shifts the faults of the requests after it.
        let fault = match due.error {
            true => Fault::Error,
            false => drawn,
        };
        Plan {
            fault,
            extra_delay: due.slowdown.saturating_add(jitter),
        }
    }

    /// Waits out the latency model and the plan's extra delay, then sends
    /// `response` or the plan's fault.
    async fn finish(&self, plan: Plan, frames: u64, response: Response) -> Response {
        let latency = self.config.latency;
        let emulation = latency
            .per_frame
            .saturating_mul(u32::try_from(frames).unwrap_or(u32::MAX));
        pause(
            latency
                .fixed
                .saturating_add(emulation)
                .saturating_add(plan.extra_delay),
        )
        .await;
        match plan.fault {
            Fault::None => response,
            Fault::Error => {
                detail_response(500, "Internal Server Error (injected fault)").into_response()
            }
            Fault::Drop => Response::new(Body::new(DroppedBody)),
            Fault::Malformed => (
                StatusCode::OK,
                [(header::CONTENT_TYPE, "application/json")],
                "{\"player_name\": \"RED\", \"loc",
            )
                .into_response(),
        }
    }

    /// Completes once the server must die: a request brought its death, or
    /// the earliest `Die` after a time is due.
    async fn died(&self) {
        let die_at = self
            .config
            .schedule
            .iter()
            .filter_map(|entry| match entry {
                Scheduled {
                    at: Trigger::After(delay),
                    fault: ScheduledFault::Die,
                } => self.started.checked_add(*delay),
                _ => None,
            })
            .min();
        let timer = async {
            match die_at {
                Some(die_at) => tokio::time::sleep_until(die_at).await,
                None => std::future::pending().await,
            }
        };
        tokio::select! {
            () = self.death.notified() => {}
            () = timer => {}
        }
    }
}

/// Accepts connections and serves each in a task of its own, until `stop`
/// fires or the server dies.
///
/// Stopping is graceful: the listener closes, every connection finishes the
/// request in flight and closes, and this waits for them all. Dying is not:
/// returning drops the listener and the `JoinSet`, which aborts every
/// connection's task and so closes its socket, mid-request or not.
async fn serve(
    listener: TcpListener,
    router: Router,
    shared: Arc<Shared>,
    mut stop: oneshot::Receiver<()>,
) {
    let addr = listener.local_addr().ok();
    let mut connections = JoinSet::new();
    let (closing, closing_watch) = watch::channel(false);
    let mut died = pin!(shared.died());

    loop {
        tokio::select! {
            accepted = listener.accept() => match accepted {
                Ok((stream, _)) => {
                    connections.spawn(serve_connection(stream, router.clone(), closing_watch.clone()));
                }
                Err(error) => {
                    // Out of file descriptors, most likely: give the
                    // connections in flight a moment to free some.
                    tracing::warn!(?addr, %error, "simulated gym server cannot accept");
                    pause(ACCEPT_BACKOFF).await;
                }
            },
            Some(_) = connections.join_next() => {}
            _ = &mut stop => break,
            () = &mut died => {
                tracing::info!(?addr, "simulated gym server died as scheduled");
                return;
            }
        }
    }

    drop(listener);
    let _ = closing.send(true);
    loop {
        // A request may still bring the server's death while it drains;
        // its handler never ends, so only dying ends the wait then.
        tokio::select! {
            joined = connections.join_next() => if joined.is_none() {
                return;
            },
            () = &mut died => {
                tracing::info!(?addr, "simulated gym server died as scheduled");
                return;
            }
        }
    }
}

/// Serves one connection's requests until the client closes it, or, once
/// `closing` turns true, until the request in flight is answered.
async fn serve_connection(stream: TcpStream, router: Router, mut closing: watch::Receiver<bool>) {
    // Nagle's algorithm would hold small answers back for tens of
    // milliseconds; the real server's uvicorn disables it too.
    let _ = stream.set_nodelay(true);
    let service = TowerToHyperService::new(router);
    let mut connection = pin!(
        hyper::server::conn::http1::Builder::new().serve_connection(TokioIo::new(stream), service)
    );

    let mut asked_to_close = false;
    let result = loop {
        tokio::select! {
            result = connection.as_mut() => break result,
            // An error means the serve task is gone, which aborts this task.
            _ = closing.wait_for(|closing| *closing), if !asked_to_close => {
                asked_to_close = true;
                connection.as_mut().graceful_shutdown();
            }
        }
    };
    if let Err(error) = result {
        tracing::trace!(%error, "simulated gym connection failed");
    }
}

/// The standard normal distribution's 99th percentile.
const STANDARD_NORMAL_P99: f64 = 2.326_347_874_040_841;

/// The ChaCha stream of the server's seed that jitter is drawn from.
const JITTER_STREAM: u64 = 1;

/// How long the server waits after a failed `accept` before the next.
const ACCEPT_BACKOFF: Duration = Duration::from_millis(100);

/// Draws from the standard normal distribution (Box-Muller).
fn standard_normal<R: Rng + ?Sized>(rng: &mut R) -> f64 {
    // `random` is in [0, 1); the logarithm needs (0, 1].
    let radius_draw = 1.0 - rng.random::<f64>();
    let angle_draw = rng.random::<f64>();
    (-2.0 * radius_draw.ln()).sqrt() * (std::f64::consts::TAU * angle_draw).cos()
}

/// Waits `duration`; a zero duration returns at once, where tokio's
/// `sleep` would wait for the timer's next millisecond tick.
async fn pause(duration: Duration) {
    if !duration.is_zero() {
        tokio::time::sleep(duration).await;
    }
}

/// A body that fails at once, which makes hyper drop the connection
/// mid-answer.
struct DroppedBody;

impl http_body::Body for DroppedBody {
    type Data = Bytes;
    type Error = std::io::Error;

    fn poll_frame(
        self: Pin<&mut Self>,
        _context: &mut Context<'_>,
    ) -> Poll<Option<Result<http_body::Frame<Bytes>, std::io::Error>>> {
        let error = std::io::Error::new(std::io::ErrorKind::ConnectionReset, "injected drop");
        Poll::Ready(Some(Err(error)))
    }
}

/// Reads a JSON object body as FastAPI does: a missing body, a body that is
/// not JSON, or one that is not an object is a 422.
fn json_body(headers: &HeaderMap, body: &Bytes) -> Result<serde_json::Map<String, Value>, Refusal> {
    if body.is_empty() {
        return Err(validation(vec![issue(
            "missing",
            &["body"],
            "Field required",
            &Value::Null,
        )]));
    }
    let is_json = headers
        .get(header::CONTENT_TYPE)
        .and_then(|value| value.to_str().ok())
        .is_some_and(|value| value.starts_with("application/json"));
    if !is_json {
        let text = Value::String(String::from_utf8_lossy(body).into_owned());
        let message = "Input should be a valid dictionary or object to extract fields from";
        return Err(validation(vec![issue(
            "model_attributes_type",
            &["body"],
            message,
            &text,
        )]));
    }
    match serde_json::from_slice::<Value>(body) {
        Ok(Value::Object(object)) => Ok(object),
        Ok(other) => {
            let message = "Input should be a valid dictionary or object to extract fields from";
            Err(validation(vec![issue(
                "model_attributes_type",
                &["body"],
                message,
                &other,
            )]))
        }
        Err(error) => {
            let mut decode = issue("json_invalid", &["body"], "JSON decode error", &json!({}));
            decode["loc"] = json!(["body", error.column().saturating_sub(1)]);
            Err(validation(vec![decode]))
        }
    }
}

/// Validates an action as the real server does, with its status codes: 422
/// for schema errors, 500 with a `detail` for the rest.
fn parse_action(request: &serde_json::Map<String, Value>) -> Result<Action, Refusal> {
    let Some(action_type) = request.get("action_type") else {
        let input = Value::Object(request.clone());
        return Err(validation(vec![issue(
            "missing",
            &["body", "action_type"],
            "Field required",
            &input,
        )]));
    };
    let failed = |detail: String| detail_response(500, &format!("Failed to take action: {detail}"));
    match action_type.as_str() {
        Some("press_key") => {
            let keys = match request.get("keys") {
                None | Some(Value::Null) => Vec::new(),
                Some(Value::Array(keys)) => keys.clone(),
                Some(other) => {
                    let issue = issue(
                        "list_type",
                        &["body", "keys"],
                        "Input should be a valid list",
                        other,
                    );
                    return Err(validation(vec![issue]));
                }
            };
            if keys.is_empty() {
                return Err(failed(
                    "400: Keys parameter is required for press_key action.".into(),
                ));
            }
            let mut parsed = Vec::with_capacity(keys.len());
            for key in &keys {
                let name = key.as_str().unwrap_or_default();
                match name.parse::<Key>() {
                    Ok(key) => parsed.push(key),
                    Err(_) => {
                        return Err(failed(format!(
                            "Invalid key: {name}. Valid keys are: ['a', 'b', 'start', 'select', \
                             'up', 'down', 'left', 'right']"
                        )));
                    }
                }
            }
            Action::press(parsed).map_err(|error| detail_response(500, &error.to_string()))
        }
        Some("wait") => {
            let frames = match request.get("frames") {
                None | Some(Value::Null) => 0,
                Some(Value::Number(number)) => match number.as_i64() {
                    Some(frames) => frames,
                    None => {
                        let message =
                            "Input should be a valid integer, got a number with a fractional part";
                        let issue = issue(
                            "int_from_float",
                            &["body", "frames"],
                            message,
                            &Value::Number(number.clone()),
                        );
                        return Err(validation(vec![issue]));
                    }
                },
                Some(Value::String(text)) => text.parse().unwrap_or(0),
                Some(other) => {
                    let issue = issue(
                        "int_type",
                        &["body", "frames"],
                        "Input should be a valid integer",
                        other,
                    );
                    return Err(validation(vec![issue]));
                }
            };
            match frames {
                0 => Err(failed(
                    "400: Frames parameter is required for wait action.".into(),
                )),
                frames if frames < 0 => Err(failed("Frames must be a positive integer".into())),
                frames => Action::wait(frames as u64)
                    .map_err(|error| detail_response(500, &error.to_string())),
            }
        }
        Some(other) => Err(failed(format!("400: Unknown action type: {other}"))),
        None => {
            let issue = issue(
                "string_type",
                &["body", "action_type"],
                "Input should be a valid string",
                action_type,
            );
            Err(validation(vec![issue]))
        }
    }
}

/// A save-state name with every directory and the `.state` extension
/// removed and any character other than letters, digits, `_`, `-` and `.`
/// replaced, so that no name can escape the session's directory.
fn save_name(requested: &str) -> String {
    let base = requested.rsplit(['/', '\\']).next().unwrap_or_default();
    let base = base.strip_suffix(".state").unwrap_or(base);
    let cleaned: String = base
        .chars()
        .map(|c| {
            if c.is_ascii_alphanumeric() || matches!(c, '_' | '-' | '.') {
                c
            } else {
                '_'
            }
        })
        .collect();
    cleaned.trim_start_matches('.').to_owned()
}

fn placeholder_state() -> Value {
    json!({
        "player_name": "", "rival_name": "", "money": 0,
        "location": SESSION_TIMEOUT_LOCATION, "coordinates": [0, 0],
        "badges": [], "valid_moves": [], "inventory": [],
        "dialog": "Session has timed out after 30 minutes. Please initialize a new session.",
        "pokemons": [], "screenshot_base64": "", "collision_map": null,
        "step_number": 0, "execution_time": 0.0, "score": 0.0
    })
}

fn not_initialized(what: &str) -> Refusal {
    detail_response(
        400,
        &format!("{what} not initialized. Call /initialize first."),
    )
}

fn detail_response(status: u16, detail: &str) -> Refusal {
    let status = StatusCode::from_u16(status).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR);
    Refusal {
        status,
        body: json!({"detail": detail}),
    }
}

fn issue(kind: &str, loc: &[&str], msg: &str, input: &Value) -> Value {
    json!({"type": kind, "loc": loc, "msg": msg, "input": input})
}

fn validation(issues: Vec<Value>) -> Refusal {
    Refusal {
        status: StatusCode::UNPROCESSABLE_ENTITY,
        body: json!({"detail": issues}),
    }
}

/// An error answer: a status and a JSON body with `detail`.
#[derive(Debug)]
struct Refusal {
    status: StatusCode,
    body: Value,
}

impl IntoResponse for Refusal {
    fn into_response(self) -> Response {
        (self.status, axum::Json(self.body)).into_response()
    }
}
