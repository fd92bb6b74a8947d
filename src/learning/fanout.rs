//! Fan-out: one source delivers batches of discoveries to many
//! subscribers, each through its own bounded queue, and measures how long
//! the last subscriber took to apply each batch.
//!
//! The source never waits for a subscriber. A subscriber whose queue is
//! full misses the batch and is marked lagging; its next delivery is a
//! snapshot of the whole knowledge instead of the backlog. A subscriber
//! that dropped its end is forgotten.
//!
//! Subscribers wake each other. A publish queues every delivery, then
//! wakes the first two waiting subscribers; each subscriber, on taking its
//! delivery, wakes the next two, so wake-ups spread as a binary tree over
//! whichever worker threads run subscribers. When the source woke all 64
//! itself, another worker thread could take each subscriber as it was
//! woken, run out of work and park before the next, so that every wake-up
//! paid for waking a thread: on two cores a publish took a third of a
//! millisecond. A worker that runs a subscriber now finds its successors
//! queued behind it.
//!
//! Acknowledgement is by ownership: the deliveries of one batch share one
//! parcel, and the source lets go of its own hold once every delivery is
//! queued. `Delivery::ack` (after applying it) lets go of a subscriber's;
//! whoever lets go last stamps the batch's receipt and wakes the source,
//! so a batch to 64 subscribers costs each subscriber one reference count
//! and the source one wake-up. A delivery dropped without `ack` (its
//! subscriber went away) lets go too, marking the batch abandoned: it no
//! longer waits for that subscriber, and its latency is not recorded.

use std::collections::{BTreeMap, VecDeque};
use std::future::poll_fn;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex, MutexGuard, OnceLock};
use std::task::{Poll, Waker};
use std::time::Duration;

use hdrhistogram::Histogram;
use tokio::sync::Notify;
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
    parcel: Arc<Parcel>,
    /// What a lagging subscriber gets instead of the batch.
    snapshot: Option<Content>,
    /// Where the subscriber is in the batch's relay of wake-ups, until it
    /// has passed them on.
    relay_position: Option<usize>,
    applied: bool,
}

impl Delivery {
    /// The batch's sequence number.
    pub fn sequence(&self) -> u64 {
        self.parcel.sequence
    }

    /// What to apply.
    pub fn content(&self) -> &Content {
        match &self.snapshot {
            Some(snapshot) => snapshot,
            None => &self.parcel.batch,
        }
    }

    /// Says the delivery has been applied.
    pub fn ack(mut self) {
        self.applied = true;
    }

    /// Applies the delivery to `replica` (every discovery of a batch, or
    /// the whole snapshot) and acknowledges it.
    pub fn apply_to(self, replica: &mut Knowledge) {
        match self.content() {
            Content::Batch(discoveries) => {
                for discovery in discoveries.iter() {
                    replica.insert(Arc::clone(discovery));
                }
            }
            Content::Snapshot(snapshot) => *replica = (**snapshot).clone(),
        }
        self.ack();
    }
}

impl Delivery {
    /// Wakes the subscribers that come after this one in the relay.
    fn pass_on(&mut self) {
        if let Some(position) = self.relay_position.take() {
            self.parcel.wake_after(position);
        }
    }
}

impl Drop for Delivery {
    fn drop(&mut self) {
        // Dropped unreceived, its subscriber gone: the relay goes on.
        self.pass_on();
        if !self.applied {
            self.parcel.receipt.abandoned.store(true, Ordering::Release);
        }
    }
}

/// A subscriber's end.
#[derive(Debug)]
pub struct Subscription {
    id: SubscriberId,
    inbox: Arc<Inbox>,
}

impl Subscription {
    /// This subscriber's id.
    pub fn id(&self) -> SubscriberId {
        self.id
    }

    /// The next delivery; `None` once the fan-out is gone and every
    /// delivery queued before has been received.
    pub async fn recv(&mut self) -> Option<Delivery> {
        poll_fn(|context| {
            let mut queue = self.inbox.lock();
            if let Some(mut delivery) = queue.deliveries.pop_front() {
                drop(queue);
                delivery.pass_on();
                return Poll::Ready(Some(delivery));
            }
            if queue.source_gone {
                return Poll::Ready(None);
            }
            match &queue.waiting {
                Some(waiting) if waiting.will_wake(context.waker()) => {}
                _ => queue.waiting = Some(context.waker().clone()),
            }
            Poll::Pending
        })
        .await
    }

    /// The next delivery if one is waiting.
    pub fn try_recv(&mut self) -> Option<Delivery> {
        let mut delivery = self.inbox.lock().deliveries.pop_front()?;
        delivery.pass_on();
        Some(delivery)
    }
}

impl Drop for Subscription {
    fn drop(&mut self) {
        // Deliveries still queued are dropped unapplied, outside the lock.
        let unapplied = {
            let mut queue = self.inbox.lock();
            queue.subscriber_gone = true;
            std::mem::take(&mut queue.deliveries)
        };
        drop(unapplied);
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
    inbox: Arc<Inbox>,
    lagging: bool,
}

/// One subscriber's queue, shared by the source, which pushes, and the
/// subscription, which pops.
#[derive(Debug, Default)]
struct Inbox {
    queue: Mutex<Queue>,
}

#[derive(Debug, Default)]
struct Queue {
    deliveries: VecDeque<Delivery>,
    /// The subscription's waker while it waits for a delivery.
    waiting: Option<Waker>,
    /// The subscription was dropped.
    subscriber_gone: bool,
    /// The fan-out was dropped: no delivery will come after those queued.
    source_gone: bool,
}

impl Inbox {
    fn lock(&self) -> MutexGuard<'_, Queue> {
        // A queue is left consistent at every point where its lock could
        // have been poisoned, so a panic elsewhere need not spread here.
        self.queue
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
    }
}

/// A subscriber that gets a batch, between the two passes of a publish.
struct Recipient<'a> {
    id: SubscriberId,
    inbox: &'a Inbox,
    /// Set if it lagged: what it gets instead of the batch.
    snapshot: Option<Content>,
    relay_position: Option<usize>,
}

/// What the deliveries of one batch share; the last one let go completes
/// the receipt.
#[derive(Debug)]
struct Parcel {
    sequence: u64,
    batch: Content,
    receipt: Arc<Receipt>,
    /// The wakers of the subscribers that were waiting, in relay order:
    /// the source wakes the first `RELAY_FANOUT`, and the subscriber at
    /// position `i` the `RELAY_FANOUT` from `(i + 1) * RELAY_FANOUT`.
    relay: Vec<Waker>,
}

/// How many subscribers the source wakes first, and each woken one after.
const RELAY_FANOUT: usize = 2;

impl Parcel {
    /// Wakes the relay's first subscribers.
    fn wake_first(&self) {
        for waker in self.relay.iter().take(RELAY_FANOUT) {
            waker.wake_by_ref();
        }
    }

    /// Wakes the subscribers that the one at `position` passes the relay to.
    fn wake_after(&self, position: usize) {
        let first = (position + 1) * RELAY_FANOUT;
        for waker in self.relay.iter().skip(first).take(RELAY_FANOUT) {
            waker.wake_by_ref();
        }
    }
}

impl Drop for Parcel {
    fn drop(&mut self) {
        let _ = self.receipt.completed_at.set(Instant::now());
        self.receipt.done.notify_one();
    }
}

/// The record of one batch's acknowledgements, kept by the source.
#[derive(Debug)]
struct Receipt {
    origin: Instant,
    /// A delivery was dropped without `ack`.
    abandoned: AtomicBool,
    /// When the last delivery was let go.
    completed_at: OnceLock<Instant>,
    /// Woken when the last delivery is let go.
    done: Notify,
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
        let inbox = Arc::new(Inbox::default());
        self.subscribers.insert(
            id,
            Slot {
                inbox: Arc::clone(&inbox),
                lagging: false,
            },
        );
        Subscription { id, inbox }
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
        let receipt = Arc::new(Receipt {
            origin,
            abandoned: AtomicBool::new(false),
            completed_at: OnceLock::new(),
            done: Notify::new(),
        });
        let mut published = Published::default();
        let mut snapshot = Some(snapshot);
        let mut taken: Option<Arc<Knowledge>> = None;
        let mut gone = Vec::new();

        // Decide what each subscriber gets, and take the wakers of those
        // waiting, which become the relay.
        let mut recipients = Vec::with_capacity(self.subscribers.len());
        let mut relay = Vec::with_capacity(self.subscribers.len());
        for (id, slot) in &mut self.subscribers {
            let mut queue = slot.inbox.lock();
            if queue.subscriber_gone {
                gone.push(*id);
                continue;
            }
            let is_full = queue.deliveries.len() >= self.capacity;
            let content = match (slot.lagging, is_full) {
                (false, false) => None,
                (false, true) => {
                    slot.lagging = true;
                    published.lagging += 1;
                    continue;
                }
                (true, true) => continue,
                (true, false) => {
                    let knowledge = taken.get_or_insert_with(|| {
                        (snapshot.take().expect("the snapshot is taken once"))()
                    });
                    Some(Content::Snapshot(Arc::clone(knowledge)))
                }
            };
            slot.lagging = false;
            let relay_position = queue.waiting.take().map(|waker| {
                relay.push(waker);
                relay.len() - 1
            });
            drop(queue);
            let slot: &Slot = slot;
            recipients.push(Recipient {
                id: *id,
                inbox: &slot.inbox,
                snapshot: content,
                relay_position,
            });
        }

        // Queue the deliveries. The source holds the parcel until all are
        // queued, so that fast acknowledgements cannot complete the batch
        // early.
        let parcel = Arc::new(Parcel {
            sequence,
            batch: Content::Batch(discoveries),
            receipt: Arc::clone(&receipt),
            relay,
        });
        let mut strays = Vec::new();
        for recipient in recipients {
            let mut queue = recipient.inbox.lock();
            if queue.subscriber_gone {
                drop(queue);
                if let Some(position) = recipient.relay_position {
                    parcel.wake_after(position);
                }
                gone.push(recipient.id);
                continue;
            }
            match recipient.snapshot.is_some() {
                true => published.snapshots += 1,
                false => published.delivered += 1,
            }
            queue.deliveries.push_back(Delivery {
                parcel: Arc::clone(&parcel),
                snapshot: recipient.snapshot,
                relay_position: recipient.relay_position,
                applied: false,
            });
            // A subscriber that started waiting since the first pass left
            // a waker the relay does not have.
            strays.extend(queue.waiting.take());
        }
        published.gone = gone.len();
        for id in gone {
            self.subscribers.remove(&id);
        }

        parcel.wake_first();
        for waker in strays {
            waker.wake();
        }
        drop(parcel);
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

impl Drop for FanOut {
    /// Tells every subscriber that nothing more will come, once it has
    /// received what is queued.
    fn drop(&mut self) {
        for slot in self.subscribers.values() {
            let waiting = {
                let mut queue = slot.inbox.lock();
                queue.source_gone = true;
                queue.waiting.take()
            };
            if let Some(waker) = waiting {
                waker.wake();
            }
        }
    }
}
