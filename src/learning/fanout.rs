//! Fan-out: one source delivers batches of discoveries to many
//! subscribers, each through its own bounded queue, and measures how long
//! the last subscriber took to apply each batch.
//!
//! The source never waits for a subscriber. A subscriber whose queue is
//! full misses the batch and is marked lagging; its next delivery is a
//! snapshot of the whole knowledge instead of the backlog. A subscriber
//! that dropped its end is forgotten.
//!
//! Acknowledgement is by ownership: each delivery carries a share of its
//! batch's receipt, and `Delivery::ack` (after applying it) gives the share
//! back. The last share back stamps the receipt and wakes the source, so a
//! batch to 64 subscribers costs the source one wake-up, not 64. A
//! delivery dropped without `ack` (its subscriber went away) also gives its
//! share back, marking the batch abandoned: it no longer waits for that
//! subscriber, and its latency is not recorded.

use std::collections::{BTreeMap, VecDeque};
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::{Arc, OnceLock};
use std::time::Duration;

use hdrhistogram::Histogram;
use tokio::sync::{Notify, mpsc};
use tokio::time::Instant;

use crate::learning::discovery::Discovery;
use crate::learning::knowledge::Knowledge;

/// A subscriber's id, unique within one fan-out.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct SubscriberId(pub u64);

/// What a delivery carries.
#[derive(Debug, Clone)]
pub enum Content {
    /// New discoveries, to apply in order.
    Batch(Arc<[Arc<Discovery>]>),
    /// Everything known, replacing what the subscriber missed while it
    /// lagged.
    Snapshot(Arc<Knowledge>),
}

/// One delivery to one subscriber; `ack` it once applied.
#[derive(Debug)]
pub struct Delivery {
    sequence: u64,
    content: Content,
    share: Share,
}

impl Delivery {
    /// The batch's sequence number.
    pub fn sequence(&self) -> u64 {
        self.sequence
    }

    /// What to apply.
    pub fn content(&self) -> &Content {
        &self.content
    }

    /// Says the delivery has been applied.
    pub fn ack(mut self) {
        self.share.applied = true;
    }
}

/// A subscriber's end.
#[derive(Debug)]
pub struct Subscription {
    id: SubscriberId,
    deliveries: mpsc::Receiver<Delivery>,
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
    /// Receipts of batches not yet collected, oldest first.
    in_flight: VecDeque<Arc<Receipt>>,
    /// Discovery accepted to last subscriber applied, in microseconds.
    latency: Histogram<u64>,
    /// Batches that a departed subscriber never applied.
    abandoned: u64,
}

#[derive(Debug)]
struct Slot {
    sender: mpsc::Sender<Delivery>,
    lagging: bool,
}

/// The shared record of one batch's acknowledgements.
#[derive(Debug)]
struct Receipt {
    origin: Instant,
    /// Shares not yet given back.
    remaining: AtomicUsize,
    /// A share came back without `ack`.
    abandoned: AtomicBool,
    /// When the last share came back.
    completed_at: OnceLock<Instant>,
    /// Woken when the last share comes back.
    done: Notify,
}

impl Receipt {
    /// Gives back `n_shares`; the last one stamps the receipt and wakes
    /// the source.
    fn give_back(&self, n_shares: usize) {
        if n_shares > 0 && self.remaining.fetch_sub(n_shares, Ordering::AcqRel) == n_shares {
            let _ = self.completed_at.set(Instant::now());
            self.done.notify_one();
        }
    }
}

/// One subscriber's share of a receipt, given back when dropped.
#[derive(Debug)]
struct Share {
    receipt: Arc<Receipt>,
    applied: bool,
}

impl Drop for Share {
    fn drop(&mut self) {
        if !self.applied {
            self.receipt.abandoned.store(true, Ordering::Release);
        }
        self.receipt.give_back(1);
    }
}

impl FanOut {
    /// A fan-out whose subscribers each queue at most `capacity`
    /// deliveries.
    pub fn new(capacity: usize) -> FanOut {
        FanOut {
            capacity: capacity.max(1),
            subscribers: BTreeMap::new(),
            next_subscriber: 0,
            next_sequence: 0,
            in_flight: VecDeque::new(),
            latency: Histogram::new_with_bounds(1, 3_600_000_000, 3)
                .expect("constant bounds that hdrhistogram accepts"),
            abandoned: 0,
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
            },
        );
        Subscription { id, deliveries }
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
        discoveries: Arc<[Arc<Discovery>]>,
        origin: Instant,
        snapshot: impl FnOnce() -> Arc<Knowledge>,
    ) -> Published {
        let sequence = self.next_sequence;
        self.next_sequence += 1;
        // Every subscriber holds a share until it is known not to get one,
        // so that fast acknowledgements cannot finish the batch early.
        let n_subscribers = self.subscribers.len();
        let receipt = Arc::new(Receipt {
            origin,
            remaining: AtomicUsize::new(n_subscribers),
            abandoned: AtomicBool::new(false),
            completed_at: OnceLock::new(),
            done: Notify::new(),
        });
        let mut published = Published::default();
        let mut snapshot = Some(snapshot);
        let mut taken: Option<Arc<Knowledge>> = None;
        let mut gone = Vec::new();
        let mut n_skipped = 0;

        for (id, slot) in &mut self.subscribers {
            let content = match slot.lagging {
                false => Content::Batch(Arc::clone(&discoveries)),
                true if slot.sender.capacity() == 0 => {
                    if slot.sender.is_closed() {
                        gone.push(*id);
                    }
                    n_skipped += 1;
                    continue;
                }
                true => {
                    let knowledge = taken.get_or_insert_with(|| {
                        (snapshot.take().expect("the snapshot is taken once"))()
                    });
                    Content::Snapshot(Arc::clone(knowledge))
                }
            };
            let is_snapshot = matches!(content, Content::Snapshot(_));
            // The share travels with the delivery. A failed send hands the
            // delivery back; dropping it returns the share, as not owed.
            let share = Share {
                receipt: Arc::clone(&receipt),
                applied: false,
            };
            match slot.sender.try_send(Delivery {
                sequence,
                content,
                share,
            }) {
                Ok(()) => {
                    slot.lagging = false;
                    match is_snapshot {
                        true => published.snapshots += 1,
                        false => published.delivered += 1,
                    }
                }
                Err(mpsc::error::TrySendError::Full(mut unsent)) => {
                    unsent.share.applied = true;
                    slot.lagging = true;
                    published.lagging += 1;
                }
                Err(mpsc::error::TrySendError::Closed(mut unsent)) => {
                    unsent.share.applied = true;
                    gone.push(*id);
                }
            }
        }
        published.gone = gone.len();
        for id in gone {
            self.subscribers.remove(&id);
        }

        // Slots skipped without a send still hold a share: return them.
        receipt.give_back(n_skipped);
        if published.delivered + published.snapshots > 0 {
            self.in_flight.push_back(receipt);
        }
        published
    }

    /// Records the latency of every batch whose recipients have all
    /// applied it; returns how many completed.
    pub fn collect_acks(&mut self) -> usize {
        let mut n_completed = 0;
        let mut still_in_flight = VecDeque::with_capacity(self.in_flight.len());
        for receipt in self.in_flight.drain(..) {
            match receipt.completed_at.get() {
                None => still_in_flight.push_back(receipt),
                Some(completed_at) => {
                    n_completed += 1;
                    if receipt.abandoned.load(Ordering::Acquire) {
                        self.abandoned += 1;
                        continue;
                    }
                    let micros = completed_at.duration_since(receipt.origin).as_micros();
                    let micros = u64::try_from(micros).unwrap_or(u64::MAX).max(1);
                    self.latency.saturating_record(micros);
                }
            }
        }
        self.in_flight = still_in_flight;
        n_completed
    }

    /// Waits until the oldest batch in flight completes or `timeout`
    /// passes, then collects as `collect_acks` does.
    pub async fn wait_for_acks(&mut self, timeout: Duration) -> usize {
        if let Some(oldest) = self.in_flight.front().cloned()
            && oldest.completed_at.get().is_none()
        {
            let _ = tokio::time::timeout(timeout, oldest.done.notified()).await;
        }
        self.collect_acks()
    }

    /// Batches sent but not yet applied by every recipient.
    pub fn outstanding(&self) -> usize {
        self.in_flight
            .iter()
            .filter(|receipt| receipt.completed_at.get().is_none())
            .count()
    }

    /// Batches that a subscriber dropped without applying, as it went away.
    pub fn abandoned(&self) -> u64 {
        self.abandoned
    }

    /// Propagation latency so far, in microseconds: from a batch's origin
    /// to its last acknowledgement.
    pub fn latency(&self) -> &Histogram<u64> {
        &self.latency
    }
}
