//! A client for one Pokemon Gym server: pooled keep-alive connections,
//! deadlines that follow the work asked for, at-most-once actions, retries
//! for idempotent calls only, a circuit breaker and latency histograms.
//!
//! Only this module speaks HTTP to game servers.
//!
//! Every call goes through the same steps: the breaker admits it, it waits
//! (within its deadline) for an in-flight slot, the request is sent and the
//! body read under the deadline and a size cap, and the answer is decoded
//! by `wire`. A call that fails is retried only if its request cannot have
//! changed the game: it never reached the server (connection refused), or
//! the endpoint is idempotent (`status`, `evaluate`). Nothing below this
//! module retries: hyper's own retry of canceled requests is turned off.

use std::sync::{Arc, Mutex};
use std::time::Duration;

use backon::{BackoffBuilder as _, ExponentialBuilder};
use bytes::Bytes;
use http::header::CONTENT_TYPE;
use http::{Method, Request, Uri};
use http_body_util::{BodyExt as _, Full, LengthLimitError, Limited};
use hyper_util::client::legacy::Client as HttpClient;
use hyper_util::client::legacy::connect::HttpConnector;
use hyper_util::rt::TokioExecutor;
use tokio::sync::{Semaphore, watch};
use tokio::time::Instant;
use tracing::Instrument as _;

use crate::gym::breaker::{
    BreakerConfig, BreakerConfigError, BreakerState, CircuitBreaker, Outcome, Transition,
};
use crate::gym::latency::Latencies;
use crate::gym::wire::{
    self, Action, DecodeError, Endpoint, Evaluation, GameState, InitializeRequest, Response,
    SaveStateRequest, SavedState, ServerError, Status, StopResponse,
};

/// How long each kind of call may take before it fails.
///
/// The defaults come from the real server's measured latency (median of 20
/// calls on a 2-core machine, headless): a key press 53 ms, a 300-frame
/// wait 130 ms, `/status` 2 ms, `/initialize` 2.6 s (3.2 s worst). With a
/// window the server caps emulation at 5× speed, about 3.4 ms a frame: a
/// key press takes 450 ms. The action allowance covers the windowed server
/// with a margin of two, so only a stuck server hits it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Deadlines {
    /// The part of an action's deadline that does not depend on frames.
    pub action_base: Duration,
    /// Added to an action's deadline for every frame it emulates (130 per
    /// key pressed, or the frames waited).
    pub action_per_frame: Duration,
    /// `POST /initialize`.
    pub initialize: Duration,
    /// `GET /status`.
    pub status: Duration,
    /// `GET /evaluate`.
    pub evaluate: Duration,
    /// `POST /stop`.
    pub stop: Duration,
    /// `POST /save_state`.
    pub save_state: Duration,
}

impl Default for Deadlines {
    fn default() -> Deadlines {
        Deadlines {
            action_base: Duration::from_millis(500),
            action_per_frame: Duration::from_micros(7_000),
            initialize: Duration::from_secs(20),
            status: Duration::from_millis(500),
            evaluate: Duration::from_millis(500),
            stop: Duration::from_secs(5),
            save_state: Duration::from_secs(5),
        }
    }
}

impl Deadlines {
    /// The deadline of one action: the base plus the per-frame allowance
    /// for every frame it emulates.
    pub fn for_action(&self, action: &Action) -> Duration {
        let frames = u32::try_from(action.emulated_frames()).unwrap_or(u32::MAX);
        self.action_base
            .saturating_add(self.action_per_frame.saturating_mul(frames))
    }
}

/// How idempotent calls, and calls that never reached the server, are
/// retried.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RetryPolicy {
    /// Attempts in all, the first included; 1 turns retries off.
    pub max_attempts: u32,
    /// The delay before the first retry; each later one doubles, with
    /// jitter.
    pub initial_backoff: Duration,
    /// The longest delay between attempts.
    pub max_backoff: Duration,
}

impl Default for RetryPolicy {
    fn default() -> RetryPolicy {
        RetryPolicy {
            max_attempts: 3,
            initial_backoff: Duration::from_millis(20),
            max_backoff: Duration::from_millis(500),
        }
    }
}

/// Everything a client can be tuned with.
#[derive(Debug, Clone, PartialEq)]
pub struct ClientConfig {
    /// How long to wait for a TCP connection.
    pub connect_timeout: Duration,
    /// The largest response body accepted; a broken server must not
    /// exhaust memory. Game states with a screenshot are about 10 KiB.
    pub max_body_bytes: usize,
    /// Requests in flight to this server at once. The real server serves
    /// one at a time, so a second request only queues behind the first.
    pub max_in_flight: usize,
    /// How long an idle pooled connection is kept. Below uvicorn's 5 s
    /// keep-alive, so that the client never reuses a connection the server
    /// is closing, which would fail an action that cannot be retried.
    pub pool_idle_timeout: Duration,
    /// Deadlines per call.
    pub deadlines: Deadlines,
    /// Retries of calls that may be repeated.
    pub retry: RetryPolicy,
    /// The circuit breaker.
    pub breaker: BreakerConfig,
}

impl Default for ClientConfig {
    fn default() -> ClientConfig {
        ClientConfig {
            connect_timeout: Duration::from_secs(1),
            max_body_bytes: 4 * 1024 * 1024,
            max_in_flight: 1,
            pool_idle_timeout: Duration::from_secs(4),
            deadlines: Deadlines::default(),
            retry: RetryPolicy::default(),
            breaker: BreakerConfig::default(),
        }
    }
}

/// Why a client cannot be built.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
pub enum ConfigError {
    /// The server URL is not `http://host:port`.
    #[error("invalid gym server URL `{url}`: {reason}")]
    Url {
        /// The URL as given.
        url: String,
        /// What is wrong with it.
        reason: &'static str,
    },
    /// `max_in_flight` is zero.
    #[error("`max_in_flight` must be at least 1")]
    ZeroInFlight,
    /// `max_attempts` is zero.
    #[error("`retry.max_attempts` must be at least 1")]
    ZeroAttempts,
    /// `max_body_bytes` is zero.
    #[error("`max_body_bytes` must be at least 1")]
    ZeroBodyLimit,
    /// The breaker configuration is invalid.
    #[error("invalid breaker configuration")]
    Breaker(#[from] BreakerConfigError),
}

/// A failed call, with the server and endpoint it was for.
#[derive(Debug, thiserror::Error)]
#[error("gym server `{server}`: {endpoint}: {kind}")]
pub struct Error {
    /// The server, as `host:port`.
    pub server: String,
    /// The endpoint called.
    pub endpoint: Endpoint,
    /// Attempts made, the first included.
    pub attempts: u32,
    /// What went wrong.
    #[source]
    pub kind: ErrorKind,
}

/// What went wrong with a call.
#[derive(Debug, thiserror::Error)]
pub enum ErrorKind {
    /// The connection could not be made: the request never reached the
    /// server.
    #[error("cannot connect")]
    Connect(#[source] hyper_util::client::legacy::Error),
    /// No answer within the deadline; the request may have reached the
    /// server.
    #[error("timed out after {0:?}")]
    Timeout(Duration),
    /// The connection failed after the request may have been written
    /// (reset, closed mid-response).
    #[error("the connection failed")]
    Transport(#[source] Box<dyn std::error::Error + Send + Sync>),
    /// The body was larger than the configured cap.
    #[error("the response body exceeds {limit} bytes")]
    BodyTooLarge {
        /// The cap.
        limit: usize,
    },
    /// The server answered with an error, or with a body that is not the
    /// endpoint's answer.
    #[error(transparent)]
    Decode(#[from] DecodeError),
    /// The breaker is open; the call was not sent.
    #[error("circuit breaker open, retry in {retry_after:?}")]
    BreakerOpen {
        /// How long until the breaker admits a probe.
        retry_after: Duration,
    },
    /// Another request held the server's in-flight slot for the whole
    /// deadline; the call was not sent.
    #[error("another request was in flight for the whole {0:?} deadline")]
    Busy(Duration),
}

impl Error {
    /// Returns true if and only if the request may have reached the server
    /// (so an action may have been taken).
    pub fn may_have_reached_server(&self) -> bool {
        !matches!(
            self.kind,
            ErrorKind::Connect(_) | ErrorKind::BreakerOpen { .. } | ErrorKind::Busy(_)
        )
    }

    /// The server's own error, if it answered with one.
    pub fn server_error(&self) -> Option<&ServerError> {
        match &self.kind {
            ErrorKind::Decode(DecodeError::Server(error)) => Some(error),
            _ => None,
        }
    }
}

/// A client for one server. Cloning is cheap and shares the connection
/// pool, the in-flight limit, the breaker and the histograms.
#[derive(Debug, Clone)]
pub struct GymClient {
    inner: Arc<Inner>,
}

#[derive(Debug)]
struct Inner {
    /// `host:port`, for messages and spans.
    server: String,
    /// Each endpoint's URI, in `Endpoint::ALL` order, parsed once.
    uris: Vec<Uri>,
    http: HttpClient<HttpConnector, Full<Bytes>>,
    /// One permit per request allowed in flight.
    in_flight: Semaphore,
    config: ClientConfig,
    breaker: Mutex<CircuitBreaker>,
    /// The breaker's state, for observers.
    breaker_state: watch::Sender<BreakerState>,
    latencies: Latencies,
}

impl GymClient {
    /// A client for the server at `url` (`http://host:port`).
    pub fn new(url: &str, config: ClientConfig) -> Result<GymClient, ConfigError> {
        let server = parse_server(url)?;
        if config.max_in_flight == 0 {
            return Err(ConfigError::ZeroInFlight);
        }
        if config.retry.max_attempts == 0 {
            return Err(ConfigError::ZeroAttempts);
        }
        if config.max_body_bytes == 0 {
            return Err(ConfigError::ZeroBodyLimit);
        }
        let breaker = CircuitBreaker::new(config.breaker.clone())?;

        let mut connector = HttpConnector::new();
        connector.set_nodelay(true);
        connector.set_connect_timeout(Some(config.connect_timeout));
        let http = HttpClient::builder(TokioExecutor::new())
            .pool_idle_timeout(config.pool_idle_timeout)
            .pool_max_idle_per_host(config.max_in_flight)
            .retry_canceled_requests(false)
            .build(connector);

        let (breaker_state, _) = watch::channel(BreakerState::Closed);
        Ok(GymClient {
            inner: Arc::new(Inner {
                uris: Endpoint::ALL
                    .iter()
                    .map(|endpoint| {
                        format!("http://{server}{}", endpoint.path())
                            .parse()
                            .expect("a validated authority and a constant path form a URI")
                    })
                    .collect(),
                server,
                http,
                in_flight: Semaphore::new(config.max_in_flight),
                config,
                breaker: Mutex::new(breaker),
                breaker_state,
                latencies: Latencies::default(),
            }),
        })
    }

    /// The server, as `host:port`.
    pub fn server(&self) -> &str {
        &self.inner.server
    }

    /// The configuration the client was built with.
    pub fn config(&self) -> &ClientConfig {
        &self.inner.config
    }

    /// Latency histograms and error counts of this client's calls.
    pub fn latencies(&self) -> &Latencies {
        &self.inner.latencies
    }

    /// Watches the breaker's state.
    pub fn breaker_state(&self) -> watch::Receiver<BreakerState> {
        self.inner.breaker_state.subscribe()
    }

    /// Starts or replaces the game. Never retried once sent.
    pub async fn initialize(&self, request: &InitializeRequest) -> Result<GameState, Error> {
        let deadline = self.inner.config.deadlines.initialize;
        self.call(Endpoint::Initialize, Some(encode(request)), deadline)
            .await
    }

    /// Takes one action. Never retried once sent: a retry of a timed-out
    /// key press could press the button twice.
    pub async fn act(&self, action: &Action) -> Result<GameState, Error> {
        let deadline = self.inner.config.deadlines.for_action(action);
        self.call(Endpoint::Action, Some(encode(action)), deadline)
            .await
    }

    /// The server's status; retried on failure.
    pub async fn status(&self) -> Result<Status, Error> {
        self.call(Endpoint::Status, None, self.inner.config.deadlines.status)
            .await
    }

    /// The session's score; retried on failure.
    pub async fn evaluate(&self) -> Result<Evaluation, Error> {
        self.call(
            Endpoint::Evaluate,
            None,
            self.inner.config.deadlines.evaluate,
        )
        .await
    }

    /// Stops the game. Never retried once sent.
    pub async fn stop(&self) -> Result<StopResponse, Error> {
        self.call(Endpoint::Stop, None, self.inner.config.deadlines.stop)
            .await
    }

    /// Saves the game under `filename`, or a name the server picks. Never
    /// retried once sent.
    pub async fn save_state(&self, filename: Option<&str>) -> Result<SavedState, Error> {
        let request = SaveStateRequest {
            filename: filename.map(str::to_owned),
        };
        let deadline = self.inner.config.deadlines.save_state;
        self.call(Endpoint::SaveState, Some(encode(&request)), deadline)
            .await
    }

    async fn call<T: Response>(
        &self,
        endpoint: Endpoint,
        body: Option<Bytes>,
        deadline: Duration,
    ) -> Result<T, Error> {
        // Built on the first failure only: most calls succeed at once.
        let mut backoff = None;
        let mut attempt = 1;
        loop {
            let span = tracing::debug_span!(
                "gym_call",
                server = %self.inner.server,
                endpoint = endpoint.name(),
                attempt
            );
            let result = self
                .attempt::<T>(endpoint, body.clone(), deadline)
                .instrument(span)
                .await;
            let kind = match result {
                Ok(value) => return Ok(value),
                Err(kind) => kind,
            };
            self.inner.latencies.record_error(endpoint);

            let error = Error {
                server: self.inner.server.clone(),
                endpoint,
                attempts: attempt,
                kind,
            };
            // An action is repeated only if it never reached the server; a
            // status poll whenever the server failed.
            let may_repeat = matches!(error.kind, ErrorKind::Connect(_))
                || endpoint.is_idempotent() && is_server_failure(&error.kind);
            let backoff = backoff.get_or_insert_with(|| self.backoff());
            match (may_repeat, backoff.next()) {
                (true, Some(delay)) => {
                    tracing::debug!(
                        server = %self.inner.server,
                        endpoint = endpoint.name(),
                        attempt,
                        ?delay,
                        error = %error.kind,
                        "gym call failed, retrying"
                    );
                    tokio::time::sleep(delay).await;
                    attempt += 1;
                }
                _ => return Err(error),
            }
        }
    }

    fn backoff(&self) -> impl Iterator<Item = Duration> {
        let retry = &self.inner.config.retry;
        ExponentialBuilder::default()
            .with_min_delay(retry.initial_backoff)
            .with_max_delay(retry.max_backoff)
            .with_max_times(usize::try_from(retry.max_attempts.saturating_sub(1)).unwrap_or(0))
            .with_jitter()
            .build()
    }

    /// One attempt: admission, the in-flight slot, the exchange, decoding.
    async fn attempt<T: Response>(
        &self,
        endpoint: Endpoint,
        body: Option<Bytes>,
        deadline: Duration,
    ) -> Result<T, ErrorKind> {
        let started = Instant::now();
        let ticket = {
            let (admission, transition) = self.lock_breaker().admit(started);
            self.publish(transition);
            admission.map_err(|rejected| ErrorKind::BreakerOpen {
                retry_after: rejected.retry_after,
            })?
        };

        let result = async {
            let _permit = tokio::time::timeout(deadline, self.inner.in_flight.acquire())
                .await
                .map_err(|_| ErrorKind::Busy(deadline))?
                .expect("the in-flight semaphore is never closed");
            let remaining = deadline.saturating_sub(started.elapsed());
            let (status, bytes) = tokio::time::timeout(remaining, self.exchange(endpoint, body))
                .await
                .map_err(|_| ErrorKind::Timeout(deadline))??;
            self.inner.latencies.record(endpoint, started.elapsed());
            tracing::trace!(status, bytes = bytes.len(), "gym call answered");
            Ok(wire::decode::<T>(endpoint, status, &bytes)?)
        }
        .await;

        let outcome = match &result {
            Ok(_) => Outcome::Success,
            Err(kind) if is_server_failure(kind) => Outcome::Failure,
            Err(_) => Outcome::Success,
        };
        let transition = self.lock_breaker().record(ticket, outcome, Instant::now());
        self.publish(transition);
        result
    }

    /// Sends the request and reads the whole body under the size cap.
    async fn exchange(
        &self,
        endpoint: Endpoint,
        body: Option<Bytes>,
    ) -> Result<(u16, Bytes), ErrorKind> {
        let uri = self.inner.uris[endpoint.index()].clone();
        let method = match endpoint.method() {
            "GET" => Method::GET,
            _ => Method::POST,
        };
        let mut request = Request::builder().method(method).uri(uri);
        if body.is_some() {
            request = request.header(CONTENT_TYPE, "application/json");
        }
        let request = request
            .body(Full::new(body.unwrap_or_default()))
            .expect("a method, a URI and a fixed header form a request");

        let response =
            self.inner
                .http
                .request(request)
                .await
                .map_err(|error| match error.is_connect() {
                    true => ErrorKind::Connect(error),
                    false => ErrorKind::Transport(Box::new(error)),
                })?;
        let status = response.status().as_u16();
        let limit = self.inner.config.max_body_bytes;
        let bytes = Limited::new(response.into_body(), limit)
            .collect()
            .await
            .map_err(|error| match error.downcast::<LengthLimitError>() {
                Ok(_) => ErrorKind::BodyTooLarge { limit },
                Err(error) => ErrorKind::Transport(error),
            })?
            .to_bytes();
        Ok((status, bytes))
    }

    fn lock_breaker(&self) -> std::sync::MutexGuard<'_, CircuitBreaker> {
        // Every update of the breaker is a few assignments that cannot
        // panic halfway, so a poisoned lock still holds a consistent state.
        self.inner
            .breaker
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
    }

    fn publish(&self, transition: Option<Transition>) {
        if let Some(transition) = transition {
            tracing::warn!(
                server = %self.inner.server,
                from = %transition.from,
                to = %transition.to,
                "gym circuit breaker changed state"
            );
            self.inner.breaker_state.send_replace(transition.to);
        }
    }
}

/// Returns true if and only if the failure says the server is unhealthy,
/// as opposed to the server refusing a bad request or having no session.
fn is_server_failure(kind: &ErrorKind) -> bool {
    match kind {
        ErrorKind::Connect(_)
        | ErrorKind::Timeout(_)
        | ErrorKind::Transport(_)
        | ErrorKind::BodyTooLarge { .. }
        | ErrorKind::Decode(DecodeError::Malformed { .. }) => true,
        ErrorKind::Decode(DecodeError::Server(ServerError::Http { status, .. })) => *status >= 500,
        ErrorKind::Decode(DecodeError::Server(_))
        | ErrorKind::BreakerOpen { .. }
        | ErrorKind::Busy(_) => false,
    }
}

fn encode<T: serde::Serialize>(value: &T) -> Bytes {
    Bytes::from(serde_json::to_vec(value).expect("request types serialize to JSON infallibly"))
}

/// Checks that `url` is `http://host:port` (a trailing `/` allowed) and
/// returns `host:port`.
fn parse_server(url: &str) -> Result<String, ConfigError> {
    let invalid = |reason| ConfigError::Url {
        url: url.to_owned(),
        reason,
    };
    let uri: Uri = url.parse().map_err(|_| invalid("not a URL"))?;
    match uri.scheme_str() {
        Some("http") => {}
        Some("https") => return Err(invalid("Pokemon Gym servers speak plain `http`")),
        Some(_) => return Err(invalid("the scheme must be `http`")),
        None => return Err(invalid("expected `http://host:port`")),
    }
    let authority = uri.authority().ok_or_else(|| invalid("no host"))?;
    if authority.host().is_empty() {
        return Err(invalid("no host"));
    }
    if authority.as_str().contains('@') {
        return Err(invalid("credentials are not supported"));
    }
    if authority.port_u16() == Some(0) {
        return Err(invalid("port 0 cannot be connected to"));
    }
    if !matches!(uri.path(), "" | "/") || uri.query().is_some() {
        return Err(invalid("the server URL takes no path or query"));
    }
    Ok(authority.as_str().to_owned())
}
