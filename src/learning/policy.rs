//! Propagation policies: when an accepted discovery is sent to the workers.
//!
//! A `Propagation` is a sans-IO queue. The owner `accept`s discoveries,
//! calls `poll` with the time and the fleet's load whenever something
//! happens or `next_deadline` passes, and sends what `poll` returns. Every
//! policy drains: each bounds how long a discovery may wait, and `drain`
//! hands over everything at shutdown.

use std::collections::HashMap;
use std::time::Duration;

use tokio::time::Instant;

use crate::learning::discovery::{Discovery, Priority, Topic};

/// When discoveries are sent.
#[derive(Debug, Clone, PartialEq)]
pub enum Policy {
    /// As soon as they are accepted.
    Immediate,
    /// In batches: when `max_batch` are waiting, or when the oldest has
    /// waited `max_wait`.
    Batched {
        /// Discoveries that make a batch.
        max_batch: usize,
        /// The longest a discovery waits for its batch.
        max_wait: Duration,
    },
    /// Only with enough evidence: a discovery goes once its topic's
    /// accepted discoveries reach `min_confidence` (the highest) and
    /// `min_samples` (the sum); otherwise it is held for more evidence, at
    /// most `max_hold`.
    Threshold {
        /// The confidence the topic's best discovery must reach.
        min_confidence: f64,
        /// The samples the topic's discoveries must add up to.
        min_samples: u64,
        /// The longest a discovery is held.
        max_hold: Duration,
    },
    /// Highest priority first, at most `max_per_poll` at a time; a
    /// discovery that has waited `max_wait` counts as critical, so none
    /// starves.
    Priority {
        /// Discoveries sent per poll.
        max_per_poll: usize,
        /// The wait after which any discovery counts as critical.
        max_wait: Duration,
    },
    /// Immediate while the fleet is calm; batched while the send queue is
    /// at least `busy_queue_depth` deep or at least `unhealthy_fraction` of
    /// the workers are unhealthy.
    Adaptive {
        /// The queue depth that counts as busy.
        busy_queue_depth: usize,
        /// The fraction of unhealthy workers that counts as degraded.
        unhealthy_fraction: f64,
        /// Discoveries that make a batch when busy.
        max_batch: usize,
        /// The longest a discovery waits when busy.
        max_wait: Duration,
    },
}

/// The fleet's load, as the adaptive policy sees it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct Load {
    /// Deliveries waiting to be sent.
    pub queue_depth: usize,
    /// Workers in the fleet.
    pub workers: usize,
    /// Workers parked or with an open breaker.
    pub unhealthy_workers: usize,
}

/// A policy refused, naming the field.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
pub enum InvalidPolicy {
    /// A count is zero.
    #[error("`{0}` must be at least 1")]
    Zero(&'static str),
    /// A duration is zero where waiting is the point.
    #[error("`{0}` must be longer than zero")]
    ZeroDuration(&'static str),
    /// A fraction or confidence is NaN or outside [0, 1].
    #[error("`{field}` must be in [0, 1], not {value}")]
    Fraction {
        /// The field.
        field: &'static str,
        /// The value given.
        value: f64,
    },
}

/// A queue of accepted discoveries under one policy.
#[derive(Debug, Clone)]
pub struct Propagation {
    policy: Policy,
    /// Waiting discoveries, oldest first.
    pending: Vec<Pending>,
    /// Evidence per topic over every accepted discovery: the summed samples
    /// and the highest confidence. Kept only under the threshold policy,
    /// the one that reads it: it holds an entry per topic ever accepted,
    /// and regrowing it would hold up every other policy's releases.
    evidence: HashMap<Topic, (u64, f64)>,
}

#[derive(Debug, Clone)]
struct Pending {
    discovery: Discovery,
    accepted_at: Instant,
}

impl Propagation {
    /// An empty queue under `policy`.
    pub fn new(policy: Policy) -> Result<Propagation, InvalidPolicy> {
        validate(&policy)?;
        Ok(Propagation {
            policy,
            pending: Vec::new(),
            evidence: HashMap::new(),
        })
    }

    /// The policy.
    pub fn policy(&self) -> &Policy {
        &self.policy
    }

    /// Discoveries waiting.
    pub fn pending(&self) -> usize {
        self.pending.len()
    }

    /// Takes a discovery to send when the policy says.
    pub fn accept(&mut self, discovery: Discovery, now: Instant) {
        if matches!(self.policy, Policy::Threshold { .. }) {
            let evidence = self
                .evidence
                .entry(discovery.topic().clone())
                .or_insert((0, 0.0));
            evidence.0 += u64::from(discovery.samples());
            evidence.1 = evidence.1.max(discovery.confidence());
        }
        self.pending.push(Pending {
            discovery,
            accepted_at: now,
        });
    }

    /// What to send now.
    pub fn poll(&mut self, now: Instant, load: Load) -> Vec<Discovery> {
        self.poll_timed(now, load).discoveries
    }

    /// What to send now, with when the longest waiting of it was accepted.
    pub fn poll_timed(&mut self, now: Instant, load: Load) -> Released {
        Released::from(self.release(now, load))
    }

    fn release(&mut self, now: Instant, load: Load) -> Vec<Pending> {
        match self.policy.clone() {
            Policy::Immediate => self.take_all(),
            Policy::Batched {
                max_batch,
                max_wait,
            } => self.poll_batched(now, max_batch, max_wait),
            Policy::Threshold {
                min_confidence,
                min_samples,
                max_hold,
            } => {
                let evidence = &self.evidence;
                take_where(&mut self.pending, |pending| {
                    let (samples, confidence) = evidence[pending.discovery.topic()];
                    let enough = confidence >= min_confidence && samples >= min_samples;
                    enough || now.duration_since(pending.accepted_at) >= max_hold
                })
            }
            Policy::Priority {
                max_per_poll,
                max_wait,
            } => {
                let urgency = |pending: &Pending| match now.duration_since(pending.accepted_at) {
                    waited if waited >= max_wait => Priority::Critical,
                    _ => pending.discovery.priority(),
                };
                // Stable: equal urgency keeps acceptance order.
                self.pending
                    .sort_by_key(|pending| std::cmp::Reverse(urgency(pending)));
                let n_sent = max_per_poll.min(self.pending.len());
                let sent = self.pending.drain(..n_sent).collect();
                self.pending.sort_by_key(|pending| pending.accepted_at);
                sent
            }
            Policy::Adaptive {
                busy_queue_depth,
                unhealthy_fraction,
                max_batch,
                max_wait,
            } => {
                let degraded = load.workers > 0
                    && load.unhealthy_workers as f64 >= unhealthy_fraction * load.workers as f64;
                match load.queue_depth >= busy_queue_depth || degraded {
                    true => self.poll_batched(now, max_batch, max_wait),
                    false => self.take_all(),
                }
            }
        }
    }

    /// The latest time `poll` must be called again for every discovery to
    /// go out within its bound; `None` when nothing waits.
    pub fn next_deadline(&self) -> Option<Instant> {
        let oldest = self
            .pending
            .iter()
            .map(|pending| pending.accepted_at)
            .min()?;
        Some(match &self.policy {
            Policy::Immediate => oldest,
            Policy::Batched { max_wait, .. } | Policy::Adaptive { max_wait, .. } => {
                oldest + *max_wait
            }
            Policy::Threshold { max_hold, .. } => oldest + *max_hold,
            // While anything waits, the next poll sends more of it.
            Policy::Priority { .. } => oldest,
        })
    }

    /// Everything still waiting, for shutdown.
    pub fn drain(&mut self) -> Vec<Discovery> {
        self.drain_timed().discoveries
    }

    /// Everything still waiting, with when the longest waiting of it was
    /// accepted.
    pub fn drain_timed(&mut self) -> Released {
        Released::from(self.take_all())
    }

    fn poll_batched(&mut self, now: Instant, max_batch: usize, max_wait: Duration) -> Vec<Pending> {
        let oldest_waited = self
            .pending
            .first()
            .is_some_and(|oldest| now.duration_since(oldest.accepted_at) >= max_wait);
        match self.pending.len() >= max_batch || oldest_waited {
            true => self.take_all(),
            false => Vec::new(),
        }
    }

    fn take_all(&mut self) -> Vec<Pending> {
        std::mem::take(&mut self.pending)
    }
}

/// Discoveries a policy let go, in the order to send them.
#[derive(Debug, Clone, Default)]
pub struct Released {
    /// What to send.
    pub discoveries: Vec<Discovery>,
    /// When the earliest accepted of them was accepted; `None` if there are
    /// none.
    pub oldest: Option<Instant>,
}

impl From<Vec<Pending>> for Released {
    fn from(sent: Vec<Pending>) -> Released {
        let oldest = sent.iter().map(|pending| pending.accepted_at).min();
        Released {
            discoveries: sent.into_iter().map(|pending| pending.discovery).collect(),
            oldest,
        }
    }
}

/// Removes and returns, in order, the discoveries `ready` accepts.
fn take_where(pending: &mut Vec<Pending>, mut ready: impl FnMut(&Pending) -> bool) -> Vec<Pending> {
    let (sent, kept): (Vec<Pending>, Vec<Pending>) = std::mem::take(pending)
        .into_iter()
        .partition(|waiting| ready(waiting));
    *pending = kept;
    sent
}

fn validate(policy: &Policy) -> Result<(), InvalidPolicy> {
    let fraction = |field, value: f64| match (0.0..=1.0).contains(&value) {
        true => Ok(()),
        false => Err(InvalidPolicy::Fraction { field, value }),
    };
    let positive = |field, duration: &Duration| match duration.is_zero() {
        true => Err(InvalidPolicy::ZeroDuration(field)),
        false => Ok(()),
    };
    match policy {
        Policy::Immediate => Ok(()),
        Policy::Batched {
            max_batch,
            max_wait,
        } => {
            if *max_batch == 0 {
                return Err(InvalidPolicy::Zero("max_batch"));
            }
            positive("max_wait", max_wait)
        }
        Policy::Threshold {
            min_confidence,
            max_hold,
            ..
        } => {
            fraction("min_confidence", *min_confidence)?;
            positive("max_hold", max_hold)
        }
        Policy::Priority {
            max_per_poll,
            max_wait,
        } => {
            if *max_per_poll == 0 {
                return Err(InvalidPolicy::Zero("max_per_poll"));
            }
            positive("max_wait", max_wait)
        }
        Policy::Adaptive {
            busy_queue_depth,
            unhealthy_fraction,
            max_batch,
            max_wait,
        } => {
            if *busy_queue_depth == 0 {
                return Err(InvalidPolicy::Zero("busy_queue_depth"));
            }
            if *max_batch == 0 {
                return Err(InvalidPolicy::Zero("max_batch"));
            }
            fraction("unhealthy_fraction", *unhealthy_fraction)?;
            positive("max_wait", max_wait)
        }
    }
}
