//! The circuit breaker's state machine, on a paused tokio clock.

use std::time::Duration;

use gymfleet::gym::breaker::{
    BreakerConfig, BreakerConfigError, BreakerState, CircuitBreaker, Outcome, Rejected,
};
use gymfleet_harness::prop::{self, PropertyFailure};
use proptest::prelude::*;
use tokio::time::Instant;

fn config() -> BreakerConfig {
    BreakerConfig {
        consecutive_failures: 3,
        failure_rate: 0.5,
        window: 10,
        min_calls: 6,
        cool_down: Duration::from_secs(5),
    }
}

/// Admits a call and records its outcome at the current tokio time.
fn call(breaker: &mut CircuitBreaker, outcome: Outcome) -> Result<(), Rejected> {
    let (ticket, _) = breaker.admit(Instant::now());
    let ticket = ticket?;
    breaker.record(ticket, outcome, Instant::now());
    Ok(())
}

#[gymfleet_harness::test(start_paused)]
async fn consecutive_failures_open_it_and_a_successful_probe_after_the_cool_down_closes_it() {
    let mut breaker = CircuitBreaker::new(config()).expect("a valid configuration");
    for _ in 0..2 {
        call(&mut breaker, Outcome::Failure).expect("closed");
    }
    assert_eq!(breaker.state(), BreakerState::Closed);
    call(&mut breaker, Outcome::Failure).expect("closed");
    let opened_at = Instant::now();
    assert_eq!(breaker.state(), BreakerState::Open { until: opened_at + Duration::from_secs(5) });

    tokio::time::advance(Duration::from_secs(2)).await;
    assert_eq!(
        call(&mut breaker, Outcome::Success),
        Err(Rejected { retry_after: Duration::from_secs(3) })
    );

    tokio::time::advance(Duration::from_secs(3)).await;
    let (probe, transition) = breaker.admit(Instant::now());
    let probe = probe.expect("the cool-down has passed");
    assert_eq!(transition.map(|transition| transition.to), Some(BreakerState::HalfOpen));
    // While the probe is out, nothing else is admitted.
    assert_eq!(breaker.admit(Instant::now()).0, Err(Rejected { retry_after: Duration::ZERO }));
    breaker.record(probe, Outcome::Success, Instant::now());
    assert_eq!(breaker.state(), BreakerState::Closed);
}

#[gymfleet_harness::test(start_paused)]
async fn a_failed_probe_opens_it_for_another_cool_down() {
    let mut breaker = CircuitBreaker::new(config()).expect("a valid configuration");
    for _ in 0..3 {
        call(&mut breaker, Outcome::Failure).expect("closed");
    }
    tokio::time::advance(Duration::from_secs(5)).await;
    call(&mut breaker, Outcome::Failure).expect("the probe is admitted");
    assert_eq!(
        breaker.state(),
        BreakerState::Open { until: Instant::now() + Duration::from_secs(5) }
    );
}

#[gymfleet_harness::test(start_paused)]
async fn a_failure_rate_over_the_window_opens_it_without_consecutive_failures() {
    let mut breaker = CircuitBreaker::new(config()).expect("a valid configuration");
    // Alternating failures never make three in a row, but half of six calls
    // failing reaches the rate.
    for outcome in [Outcome::Failure, Outcome::Success].repeat(2) {
        call(&mut breaker, outcome).expect("closed");
    }
    assert_eq!(breaker.state(), BreakerState::Closed, "four calls are under `min_calls`");
    call(&mut breaker, Outcome::Failure).expect("closed");
    assert_eq!(breaker.state(), BreakerState::Closed, "two failures in five calls");
    call(&mut breaker, Outcome::Failure).expect("closed");
    assert!(matches!(breaker.state(), BreakerState::Open { .. }), "{:?}", breaker.state());
}

#[gymfleet_harness::test(start_paused)]
async fn outcomes_of_calls_admitted_before_a_transition_are_ignored() {
    let mut breaker = CircuitBreaker::new(config()).expect("a valid configuration");
    let (late, _) = breaker.admit(Instant::now());
    let late = late.expect("closed");
    for _ in 0..3 {
        call(&mut breaker, Outcome::Failure).expect("closed");
    }
    tokio::time::advance(Duration::from_secs(5)).await;
    let (probe, _) = breaker.admit(Instant::now());
    let probe = probe.expect("half-open");
    // A slow call from before the breaker opened must not decide the probe.
    assert_eq!(breaker.record(late, Outcome::Success, Instant::now()), None);
    assert_eq!(breaker.state(), BreakerState::HalfOpen);
    breaker.record(probe, Outcome::Failure, Instant::now());
    assert!(matches!(breaker.state(), BreakerState::Open { .. }));
}

#[gymfleet_harness::test]
fn invalid_configurations_are_refused_by_field() {
    let refused = |change: fn(&mut BreakerConfig)| {
        let mut config = config();
        change(&mut config);
        CircuitBreaker::new(config).map(drop)
    };
    assert_eq!(
        refused(|config| config.consecutive_failures = 0),
        Err(BreakerConfigError::ZeroConsecutiveFailures)
    );
    assert!(matches!(
        refused(|config| config.failure_rate = f64::NAN),
        Err(BreakerConfigError::FailureRate(_))
    ));
    assert_eq!(
        refused(|config| config.failure_rate = 1.5),
        Err(BreakerConfigError::FailureRate(1.5))
    );
    assert_eq!(
        refused(|config| config.min_calls = 11),
        Err(BreakerConfigError::MinCalls { min_calls: 11, window: 10 })
    );
    assert_eq!(refused(|config| config.cool_down = Duration::ZERO), Err(BreakerConfigError::ZeroCoolDown));
}

/// One step of a random schedule: let time pass, then try a call.
#[derive(Debug, Clone)]
struct Step {
    advance_ms: u64,
    fails: bool,
}

#[gymfleet_harness::test]
fn an_open_breaker_admits_nothing_before_its_cool_down_and_one_probe_after() -> Result<(), PropertyFailure> {
    let step = (0u64..3_000, any::<bool>()).prop_map(|(advance_ms, fails)| Step { advance_ms, fails });
    prop::check(proptest::collection::vec(step, 1..200), |steps| {
        let start = std::time::Instant::now();
        let base = Instant::from_std(start);
        let mut now = base;
        let mut breaker = CircuitBreaker::new(config()).expect("a valid configuration");
        for step in steps {
            now += Duration::from_millis(step.advance_ms);
            let before = breaker.state();
            let (admission, _) = breaker.admit(now);
            match (before, &admission) {
                (BreakerState::Open { until }, Ok(_)) => prop_assert!(now >= until, "admitted while open"),
                (BreakerState::Open { until }, Err(_)) => prop_assert!(now < until),
                (BreakerState::Closed, Err(_)) => prop_assert!(false, "a closed breaker refused a call"),
                _ => {}
            }
            if let Ok(ticket) = admission {
                if breaker.state() == BreakerState::HalfOpen {
                    prop_assert!(breaker.admit(now).0.is_err(), "two probes in flight");
                }
                let outcome = if step.fails { Outcome::Failure } else { Outcome::Success };
                breaker.record(ticket, outcome, now);
                prop_assert_ne!(breaker.state(), BreakerState::HalfOpen, "a recorded probe decides");
            }
        }
        Ok(())
    })
}
