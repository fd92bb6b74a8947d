//! A circuit breaker for one server, as a state machine on plain data.
//!
//! Closed, it admits every call and watches outcomes; it opens after
//! `consecutive_failures` failures in a row, or when the failure rate over
//! the last `window` calls reaches `failure_rate` (once `min_calls` have
//! been seen). Open, it refuses calls until `cool_down` has passed; then it
//! is half-open and admits exactly one probe, whose outcome closes it or
//! opens it again. Time is passed in, so the machine runs on a paused tokio
//! clock in tests and performs no IO.

use std::collections::VecDeque;
use std::fmt;
use std::time::Duration;

use tokio::time::Instant;

/// When a breaker opens and for how long.
#[derive(Debug, Clone, PartialEq)]
pub struct BreakerConfig {
    /// Failures in a row that open the breaker.
    pub consecutive_failures: u32,
    /// The failure rate over the window that opens the breaker, in (0, 1].
    pub failure_rate: f64,
    /// How many recent calls the failure rate is computed over.
    pub window: usize,
    /// Calls in the window before the failure rate counts.
    pub min_calls: usize,
    /// How long the breaker stays open before it admits a probe.
    pub cool_down: Duration,
}

impl Default for BreakerConfig {
    fn default() -> BreakerConfig {
        BreakerConfig {
            consecutive_failures: 5,
            failure_rate: 0.5,
            window: 20,
            min_calls: 10,
            cool_down: Duration::from_secs(5),
        }
    }
}

/// Why a breaker configuration is refused.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
pub enum BreakerConfigError {
    /// `consecutive_failures` is zero.
    #[error("`consecutive_failures` must be at least 1")]
    ZeroConsecutiveFailures,
    /// `failure_rate` is NaN or outside (0, 1].
    #[error("`failure_rate` must be in (0, 1], not {0}")]
    FailureRate(f64),
    /// `window` is zero, or `min_calls` is zero or larger than `window`.
    #[error("`min_calls` must be in 1..=`window`, not {min_calls} with a window of {window}")]
    MinCalls {
        /// The configured minimum.
        min_calls: usize,
        /// The configured window.
        window: usize,
    },
    /// `cool_down` is zero.
    #[error("`cool_down` must be longer than zero")]
    ZeroCoolDown,
}

/// Where a breaker is.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum BreakerState {
    /// Calls flow.
    Closed,
    /// Calls are refused until the instant.
    Open {
        /// When a probe will be admitted.
        until: Instant,
    },
    /// One probe is admitted; its outcome decides.
    HalfOpen,
}

impl fmt::Display for BreakerState {
    fn fmt(&self, formatter: &mut fmt::Formatter<'_>) -> fmt::Result {
        formatter.write_str(match self {
            BreakerState::Closed => "closed",
            BreakerState::Open { .. } => "open",
            BreakerState::HalfOpen => "half-open",
        })
    }
}

/// Permission to make one call, to be handed back with its outcome.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[must_use = "a ticket must be returned to `record` with the call's outcome"]
pub struct Ticket {
    generation: u64,
    is_probe: bool,
}

/// A call refused because the breaker is open.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Rejected {
    /// How long until a probe may be admitted (zero while a probe is in
    /// flight).
    pub retry_after: Duration,
}

/// The outcome of a call, as the breaker counts it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Outcome {
    /// The server answered as a healthy server does (including answers
    /// that refuse a bad request).
    Success,
    /// The server failed: unreachable, timed out, broken answer.
    Failure,
}

/// A change of state, for observers.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Transition {
    /// The state before.
    pub from: BreakerState,
    /// The state after.
    pub to: BreakerState,
}

/// The breaker of one server.
#[derive(Debug, Clone)]
pub struct CircuitBreaker {
    config: BreakerConfig,
    state: BreakerState,
    /// Bumped at every transition, so that outcomes of calls admitted
    /// before it are ignored.
    generation: u64,
    consecutive_failures: u32,
    /// Recent outcomes, `true` for a failure, newest last.
    recent: VecDeque<bool>,
    probe_in_flight: bool,
}

impl CircuitBreaker {
    /// A closed breaker.
    pub fn new(config: BreakerConfig) -> Result<CircuitBreaker, BreakerConfigError> {
        if config.consecutive_failures == 0 {
            return Err(BreakerConfigError::ZeroConsecutiveFailures);
        }
        if !(config.failure_rate > 0.0 && config.failure_rate <= 1.0) {
            return Err(BreakerConfigError::FailureRate(config.failure_rate));
        }
        if config.min_calls == 0 || config.min_calls > config.window {
            return Err(BreakerConfigError::MinCalls {
                min_calls: config.min_calls,
                window: config.window,
            });
        }
        if config.cool_down.is_zero() {
            return Err(BreakerConfigError::ZeroCoolDown);
        }
        Ok(CircuitBreaker {
            recent: VecDeque::with_capacity(config.window),
            config,
            state: BreakerState::Closed,
            generation: 0,
            consecutive_failures: 0,
            probe_in_flight: false,
        })
    }

    /// The current state, as of the last call to `admit` or `record`.
    pub fn state(&self) -> BreakerState {
        self.state
    }

    /// Asks to make a call at `now`. An open breaker whose cool-down has
    /// passed becomes half-open and admits this call as its probe.
    pub fn admit(&mut self, now: Instant) -> (Result<Ticket, Rejected>, Option<Transition>) {
        let mut transition = None;
        if let BreakerState::Open { until } = self.state {
            if now < until {
                return (
                    Err(Rejected {
                        retry_after: until - now,
                    }),
                    None,
                );
            }
            transition = Some(self.enter(BreakerState::HalfOpen));
        }
        match self.state {
            BreakerState::Closed => (
                Ok(Ticket {
                    generation: self.generation,
                    is_probe: false,
                }),
                transition,
            ),
            BreakerState::HalfOpen if !self.probe_in_flight => {
                self.probe_in_flight = true;
                (
                    Ok(Ticket {
                        generation: self.generation,
                        is_probe: true,
                    }),
                    transition,
                )
            }
            BreakerState::HalfOpen | BreakerState::Open { .. } => (
                Err(Rejected {
                    retry_after: Duration::ZERO,
                }),
                transition,
            ),
        }
    }

    /// Records the outcome of an admitted call at `now`.
    pub fn record(&mut self, ticket: Ticket, outcome: Outcome, now: Instant) -> Option<Transition> {
        if ticket.generation != self.generation {
            return None;
        }
        let failed = outcome == Outcome::Failure;
        match self.state {
            BreakerState::HalfOpen if ticket.is_probe => {
                self.probe_in_flight = false;
                Some(match failed {
                    true => self.open(now),
                    false => self.enter(BreakerState::Closed),
                })
            }
            BreakerState::Closed => {
                if self.recent.len() == self.config.window {
                    self.recent.pop_front();
                }
                self.recent.push_back(failed);
                self.consecutive_failures = match failed {
                    true => self.consecutive_failures + 1,
                    false => 0,
                };
                let n_failures = self.recent.iter().filter(|failed| **failed).count();
                let rate_reached = self.recent.len() >= self.config.min_calls
                    && n_failures as f64 >= self.config.failure_rate * self.recent.len() as f64;
                let trips = failed
                    && (self.consecutive_failures >= self.config.consecutive_failures
                        || rate_reached);
                trips.then(|| self.open(now))
            }
            BreakerState::HalfOpen | BreakerState::Open { .. } => None,
        }
    }

    fn open(&mut self, now: Instant) -> Transition {
        self.enter(BreakerState::Open {
            until: now + self.config.cool_down,
        })
    }

    fn enter(&mut self, to: BreakerState) -> Transition {
        let from = self.state;
        self.state = to;
        self.generation += 1;
        self.probe_in_flight = false;
        if to == BreakerState::Closed {
            self.consecutive_failures = 0;
            self.recent.clear();
        }
        Transition { from, to }
    }
}
