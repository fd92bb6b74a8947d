//! Fan-out: one source delivers batches of discoveries to many
//! subscribers, each through its own bounded queue, and measures how long
//! the last subscriber took to apply each batch.
//!
//! The source never waits for a subscriber. A subscriber whose queue is
//! full misses the batch and is marked lagging; its next delivery is a
//! snapshot of the whole knowledge instead of the backlog. A subscriber
//! that dropped its end is forgotten. Subscribers acknowledge what they
//! applied; when every subscriber a batch was sent to has acknowledged it,
//! the time from the batch's origin (when its discoveries were accepted)
//! is recorded.

use std::collections::{BTreeMap, HashMap, VecDeque};
use std::sync::Arc;
use std::time::Duration;

use hdrhistogram::Histogram;
use tokio::sync::mpsc;
use tokio::time::Instant;

use crate::learning::discovery::Discovery;
use crate::learning::knowledge::Knowledge;

/// A subscriber's id, unique within one fan-out.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct SubscriberId(pub u64);

/// What a subscriber receives.
#[derive(Debug, Clone)]
pub enum Delivery {
    /// New discoveries, to apply in order.
    Batch {
        /// The batch's sequence number, to acknowledge.
        sequence: u64,
        /// The discoveries.
        discoveries: Arc<[Discovery]>,
    },
    /// Everything known, replacing what the subscriber missed while it
    /// lagged.
    Snapshot {
        /// The snapshot's sequence number, to acknowledge.
        sequence: u64,
        /// The knowledge.
        knowledge: Arc<Knowledge>,
    },
}

impl Delivery {
    /// The sequence number to acknowledge.
    pub fn sequence(&self) -> u64 {
        match self {
            Delivery::Batch { sequence, .. } | Delivery::Snapshot { sequence, .. } => *sequence,
        }
    }
}

/// A subscriber's end: receives deliveries and acknowledges them.
#[derive(Debug)]
pub struct Subscription {
    id: SubscriberId,
    deliveries: mpsc::Receiver<Delivery>,
    acks: mpsc::UnboundedSender<(SubscriberId, u64)>,
}

impl Subscription {
    /// This subscriber's id.
    pub fn id(&self) -> SubscriberId {
        self.id
    }

    /// The next delivery; `None` once the fan-out is gone.
    pub async fn recv(&mut self) -> Option<Delivery> {
        self.deliveries.recv().await
    }

    /// The next delivery if one is waiting.
    pub fn try_recv(&mut self) -> Option<Delivery> {
        self.deliveries.try_recv().ok()
    }

    /// Says that the delivery `sequence` has been applied.
    pub fn ack(&self, sequence: u64) {
        // A fan-out that is gone measures nothing more; nothing to do.
        let _ = self.acks.send((self.id, sequence));
    }
}

/// What one `publish` did.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct Published {
    /// Subscribers that received the batch.
    pub delivered: usize,
    /// Lagging subscribers that received a snapshot instead.
    pub snapshots: usize,
    /// Subscribers whose queue was full, now lagging.
    pub lagging: usize,
    /// Subscribers that had gone and were forgotten.
    pub gone: usize,
}

/// The source side.
#[derive(Debug)]
pub struct FanOut {
    capacity: usize,
    subscribers: BTreeMap<SubscriberId, Slot>,
    next_subscriber: u64,
    next_sequence: u64,
    acks_tx: mpsc::UnboundedSender<(SubscriberId, u64)>,
    acks_rx: mpsc::UnboundedReceiver<(SubscriberId, u64)>,
    /// Per batch: the subscribers still to acknowledge, and its origin.
    outstanding: HashMap<u64, (usize, Instant)>,
    /// Discovery accepted to last subscriber applied, in microseconds.
    latency: Histogram<u64>,
}

#[derive(Debug)]
struct Slot {
    sender: mpsc::Sender<Delivery>,
    lagging: bool,
    /// Deliveries sent and not yet acknowledged, oldest first; if the
    /// subscriber goes, they stop waiting for it.
    unacked: VecDeque<u64>,
}

impl FanOut {
    /// A fan-out whose subscribers each queue at most `capacity`
    /// deliveries.
    pub fn new(capacity: usize) -> FanOut {
        let (acks_tx, acks_rx) = mpsc::unbounded_channel();
        FanOut {
            capacity: capacity.max(1),
            subscribers: BTreeMap::new(),
            next_subscriber: 0,
            next_sequence: 0,
            acks_tx,
            acks_rx,
            outstanding: HashMap::new(),
            latency: Histogram::new_with_bounds(1, 3_600_000_000, 3)
                .expect("constant bounds that hdrhistogram accepts"),
        }
    }

    /// Adds a subscriber; it receives batches published from now on.
    pub fn subscribe(&mut self) -> Subscription {
        let id = SubscriberId(self.next_subscriber);
        self.next_subscriber += 1;
        let (sender, deliveries) = mpsc::channel(self.capacity);
        self.subscribers.insert(
            id,
            Slot {
                sender,
                lagging: false,
                unacked: VecDeque::new(),
            },
        );
        Subscription {
            id,
            deliveries,
            acks: self.acks_tx.clone(),
        }
    }

    /// Subscribers not yet known to be gone.
    pub fn subscribers(&self) -> usize {
        self.subscribers.len()
    }

    /// Sends a batch to every subscriber without waiting for any. Lagging
    /// subscribers with room again get `snapshot()` instead (called at most
    /// once per publish).
    pub fn publish(
        &mut self,
        discoveries: Arc<[Discovery]>,
        origin: Instant,
        snapshot: impl FnOnce() -> Arc<Knowledge>,
    ) -> Published {
        let sequence = self.next_sequence;
        self.next_sequence += 1;
        let mut published = Published::default();
        let mut snapshot = Some(snapshot);
        let mut taken: Option<Arc<Knowledge>> = None;

        let mut gone = Vec::new();
        for (id, slot) in &mut self.subscribers {
            let delivery = match slot.lagging {
                false => Delivery::Batch {
                    sequence,
                    discoveries: Arc::clone(&discoveries),
                },
                true if slot.sender.capacity() == 0 => {
                    if slot.sender.is_closed() {
                        gone.push(*id);
                    }
                    continue;
                }
                true => {
                    let knowledge = taken.get_or_insert_with(|| {
                        (snapshot.take().expect("the snapshot is taken once"))()
                    });
                    Delivery::Snapshot {
                        sequence,
                        knowledge: Arc::clone(knowledge),
                    }
                }
            };
            let is_snapshot = matches!(delivery, Delivery::Snapshot { .. });
            match slot.sender.try_send(delivery) {
                Ok(()) => {
                    slot.lagging = false;
                    slot.unacked.push_back(sequence);
                    match is_snapshot {
                        true => published.snapshots += 1,
                        false => published.delivered += 1,
                    }
                }
                Err(mpsc::error::TrySendError::Full(_)) => {
                    slot.lagging = true;
                    published.lagging += 1;
                }
                Err(mpsc::error::TrySendError::Closed(_)) => gone.push(*id),
            }
        }
        published.gone = gone.len();
        for id in gone {
            self.forget(id);
        }

        let expected = published.delivered + published.snapshots;
        if expected > 0 {
            self.outstanding.insert(sequence, (expected, origin));
        }
        published
    }

    /// Takes in every acknowledgement received so far and records the
    /// latency of each batch that every recipient has now applied; returns
    /// how many batches completed.
    pub fn collect_acks(&mut self) -> usize {
        let mut n_completed = 0;
        while let Ok((subscriber, sequence)) = self.acks_rx.try_recv() {
            n_completed += usize::from(self.apply_ack(subscriber, sequence));
        }
        n_completed
    }

    /// Waits until an acknowledgement arrives or `timeout` passes, then
    /// collects as `collect_acks` does.
    pub async fn wait_for_acks(&mut self, timeout: Duration) -> usize {
        let first = match tokio::time::timeout(timeout, self.acks_rx.recv()).await {
            Ok(Some((subscriber, sequence))) => usize::from(self.apply_ack(subscriber, sequence)),
            _ => 0,
        };
        first + self.collect_acks()
    }

    /// Batches sent but not yet applied by every recipient.
    pub fn outstanding(&self) -> usize {
        self.outstanding.len()
    }

    /// Propagation latency so far, in microseconds: from a batch's origin
    /// to its last acknowledgement.
    pub fn latency(&self) -> &Histogram<u64> {
        &self.latency
    }

    /// Counts one acknowledgement; returns true if and only if it completed
    /// its batch.
    fn apply_ack(&mut self, subscriber: SubscriberId, sequence: u64) -> bool {
        if let Some(slot) = self.subscribers.get_mut(&subscriber) {
            slot.unacked.retain(|unacked| *unacked != sequence);
        }
        self.count_down(sequence, Instant::now())
    }

    /// One fewer recipient to wait for; records the latency when none is
    /// left.
    fn count_down(&mut self, sequence: u64, now: Instant) -> bool {
        let Some((remaining, origin)) = self.outstanding.get_mut(&sequence) else {
            return false;
        };
        *remaining -= 1;
        if *remaining > 0 {
            return false;
        }
        let micros = u64::try_from(now.duration_since(*origin).as_micros()).unwrap_or(u64::MAX);
        self.latency.saturating_record(micros.max(1));
        self.outstanding.remove(&sequence);
        true
    }

    /// Forgets a subscriber that went away: its unacknowledged deliveries
    /// stop waiting for it.
    fn forget(&mut self, subscriber: SubscriberId) {
        if let Some(slot) = self.subscribers.remove(&subscriber) {
            let now = Instant::now();
            for sequence in slot.unacked {
                self.count_down(sequence, now);
            }
        }
    }
}
