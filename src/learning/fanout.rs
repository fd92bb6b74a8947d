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
//! A subscriber can also be a `Replica`: a copy of the knowledge that the
//! source applies each batch to itself, during `publish`, when nobody is
//! reading the copy. An in-process worker's copy then reflects a batch as
//! soon as `publish` returns, with no task to wake and no queue in
//! between; propagation to 64 replicas costs the source 64 uncontended
//! locks and inserts, not 64 wake-ups spread over threads that may be
//! busy elsewhere. A replica that is being read when a batch comes gets
//! it queued in a bounded backlog instead, which the reader applies as it
//! lets go (or the next publish does, whichever comes first), so a reader
//! never blocks the source. A replica whose backlog is full lags and gets
//! a snapshot, as a queue subscriber does.
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
use std::ops::Deref;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering, fence};
use std::sync::{Arc, Mutex, MutexGuard, OnceLock, TryLockError};
use std::task::{Poll, Waker};
use std::time::Duration;

use hdrhistogram::Histogram;
use tokio::sync::Notify;
use tokio::time::Instant;

use crate::learning::discovery::Discovery;
use crate::learning::knowledge::{Knowledge, Transition};

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
        match &self.snapshot {
            Some(snapshot) => snapshot.apply_to(replica),
            None => self.parcel.apply_batch_to(replica),
        }
        self.ack();
    }
}

impl Content {
    fn apply_to(&self, replica: &mut Knowledge) {
        match self {
            Content::Batch(discoveries) => {
                for discovery in discoveries.iter() {
                    replica.insert(Arc::clone(discovery));
                }
            }
            Content::Snapshot(snapshot) => *replica = (**snapshot).clone(),
        }
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

/// A subscriber that is a copy of the knowledge, which the source keeps
/// up to date itself; see the module's documentation.
#[derive(Debug)]
pub struct Replica {
    id: SubscriberId,
    cell: Arc<ReplicaCell>,
}

/// A replica as the source and its owner share it.
#[derive(Debug)]
struct ReplicaCell {
    knowledge: Mutex<Knowledge>,
    /// Deliveries that came while the knowledge was being read, oldest
    /// first; whoever next holds the knowledge applies them.
    backlog: Mutex<VecDeque<Delivery>>,
    /// The backlog's length, read without its lock.
    backlog_len: AtomicUsize,
    /// The owner dropped its `Replica`.
    owner_gone: AtomicBool,
}

/// Read access to a replica; deliveries that come meanwhile are applied as
/// it is dropped.
#[derive(Debug)]
pub struct ReplicaRead<'a> {
    knowledge: Option<MutexGuard<'a, Knowledge>>,
    cell: &'a ReplicaCell,
}

impl Replica {
    /// This subscriber's id.
    pub fn id(&self) -> SubscriberId {
        self.id
    }

    /// The replica's knowledge, with every batch published so far applied
    /// (unless it lagged and its snapshot has not come yet). The source
    /// applies nothing while this is held; keep it short.
    pub fn read(&self) -> ReplicaRead<'_> {
        let mut knowledge = self.cell.lock_knowledge();
        self.cell.apply_backlog(&mut knowledge);
        ReplicaRead {
            knowledge: Some(knowledge),
            cell: &self.cell,
        }
    }

    /// A copy of the replica's knowledge.
    pub fn knowledge(&self) -> Knowledge {
        self.read().clone()
    }
}

impl Drop for Replica {
    fn drop(&mut self) {
        self.cell.owner_gone.store(true, Ordering::Release);
        // Deliveries in the backlog are dropped unapplied, outside the lock.
        let unapplied = self.cell.take_backlog();
        drop(unapplied);
    }
}

impl Deref for ReplicaRead<'_> {
    type Target = Knowledge;

    fn deref(&self) -> &Knowledge {
        self.knowledge
            .as_ref()
            .expect("the guard is held until the read is dropped")
    }
}

impl Drop for ReplicaRead<'_> {
    fn drop(&mut self) {
        drop(self.knowledge.take());
        self.cell.catch_up();
    }
}

impl ReplicaCell {
    fn new(knowledge: Knowledge) -> ReplicaCell {
        ReplicaCell {
            knowledge: Mutex::new(knowledge),
            backlog: Mutex::new(VecDeque::new()),
            backlog_len: AtomicUsize::new(0),
            owner_gone: AtomicBool::new(false),
        }
    }

    fn lock_knowledge(&self) -> MutexGuard<'_, Knowledge> {
        // Knowledge is left consistent by every insert that returns, and a
        // panicking one leaves a replica a snapshot can replace; either way
        // a panic elsewhere need not spread here.
        self.knowledge
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
    }

    fn try_lock_knowledge(&self) -> Option<MutexGuard<'_, Knowledge>> {
        match self.knowledge.try_lock() {
            Ok(knowledge) => Some(knowledge),
            Err(TryLockError::Poisoned(poisoned)) => Some(poisoned.into_inner()),
            Err(TryLockError::WouldBlock) => None,
        }
    }

    fn lock_backlog(&self) -> MutexGuard<'_, VecDeque<Delivery>> {
        // Pushes and pops leave the queue consistent.
        self.backlog
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
    }

    fn take_backlog(&self) -> VecDeque<Delivery> {
        let mut backlog = self.lock_backlog();
        self.backlog_len.store(0, Ordering::SeqCst);
        std::mem::take(&mut *backlog)
    }

    /// Applies the backlog, oldest first, to `knowledge`, which the caller
    /// holds.
    fn apply_backlog(&self, knowledge: &mut Knowledge) {
        if self.backlog_len.load(Ordering::SeqCst) == 0 {
            return;
        }
        for delivery in self.take_backlog() {
            delivery.apply_to(knowledge);
        }
    }

    /// Applies the backlog if nobody holds the knowledge.
    ///
    /// Both sides call this after their own move: the source after queueing
    /// a delivery, a reader after letting go of the knowledge. Each first
    /// makes its move visible (a fence, ordered with the other side's), then
    /// looks at the other's: so either the source sees the knowledge free,
    /// or the reader sees the backlog not empty, and no delivery stays
    /// queued with nobody holding the knowledge.
    fn catch_up(&self) {
        loop {
            fence(Ordering::SeqCst);
            if self.backlog_len.load(Ordering::SeqCst) == 0 {
                return;
            }
            let Some(mut knowledge) = self.try_lock_knowledge() else {
                // Whoever holds it catches up as it lets go.
                return;
            };
            self.apply_backlog(&mut knowledge);
        }
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
    /// Of those that received the batch or a snapshot, replicas that
    /// `publish` applied it to before returning.
    pub applied: usize,
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
    /// Everything published, since the first replica, applied to a copy
    /// of that replica's knowledge: replicas in step with it share its
    /// topic states.
    published: Option<Knowledge>,
}

#[derive(Debug)]
struct Slot {
    end: End,
    lagging: bool,
}

/// How a subscriber receives.
#[derive(Debug)]
enum End {
    /// Through a queue it reads with `Subscription::recv`.
    Queue(Arc<Inbox>),
    /// Applied to its knowledge by the source.
    Replica(Arc<ReplicaCell>),
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
struct Recipient {
    id: SubscriberId,
    inbox: Arc<Inbox>,
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
    /// What each discovery of the batch did to the fan-out's copy of what
    /// it published, for replicas in step with that copy.
    transitions: Option<Arc<[Transition]>>,
    receipt: Arc<Receipt>,
    /// The wakers of the subscribers that were waiting, in relay order:
    /// the source wakes the first `RELAY_FANOUT`, and the subscriber at
    /// position `i` the `RELAY_FANOUT` from `(i + 1) * RELAY_FANOUT`.
    relay: Vec<Waker>,
}

/// How many subscribers the source wakes first, and each woken one after.
const RELAY_FANOUT: usize = 2;

impl Parcel {
    /// Applies the batch to `replica`, taking the states the fan-out's copy
    /// reached wherever the replica held the states it started from.
    fn apply_batch_to(&self, replica: &mut Knowledge) {
        match (&self.batch, &self.transitions) {
            (Content::Batch(discoveries), Some(transitions)) => {
                for (discovery, transition) in discoveries.iter().zip(transitions.iter()) {
                    replica.insert_as(discovery, transition);
                }
            }
            (batch, _) => batch.apply_to(replica),
        }
    }

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
            published: None,
        }
    }

    /// Adds a subscriber; it receives batches published from now on.
    pub fn subscribe(&mut self) -> Subscription {
        let id = self.next_id();
        let inbox = Arc::new(Inbox::default());
        self.subscribers.insert(
            id,
            Slot {
                end: End::Queue(Arc::clone(&inbox)),
                lagging: false,
            },
        );
        Subscription { id, inbox }
    }

    /// Adds a replica that starts as `knowledge` (a copy of what the source
    /// knows, or nothing) and has every batch published from now on applied
    /// to it by the source.
    ///
    /// Replicas that start as copies of one knowledge (the first one's)
    /// stay in step and share their topic states; others get the same
    /// batches but keep states of their own.
    pub fn replicate(&mut self, knowledge: Knowledge) -> Replica {
        if self.published.is_none() {
            self.published = Some(knowledge.clone());
        }
        let id = self.next_id();
        let cell = Arc::new(ReplicaCell::new(knowledge));
        self.subscribers.insert(
            id,
            Slot {
                end: End::Replica(Arc::clone(&cell)),
                lagging: false,
            },
        );
        Replica { id, cell }
    }

    fn next_id(&mut self) -> SubscriberId {
        let id = SubscriberId(self.next_subscriber);
        self.next_subscriber += 1;
        id
    }

    /// Subscribers not yet known to be gone.
    pub fn subscribers(&self) -> usize {
        self.subscribers.len()
    }

    /// Sends a batch to every subscriber without waiting for any, and
    /// applies it to every replica nobody is reading. Lagging subscribers
    /// with room again get `snapshot()` instead (called at most once per
    /// publish).
    pub fn publish(
        &mut self,
        discoveries: Arc<[Arc<Discovery>]>,
        origin: Instant,
        snapshot: impl FnOnce() -> Arc<Knowledge>,
    ) -> Published {
        self.publish_traced(discoveries, origin, snapshot).0
    }

    /// Publishes as `publish` does, and returns what inserting each of the
    /// batch did to the fan-out's own copy of what it published (none
    /// before the first replica), so that other knowledge holding the same
    /// states can take the results with `Knowledge::insert_as`.
    pub(crate) fn publish_traced(
        &mut self,
        discoveries: Arc<[Arc<Discovery>]>,
        origin: Instant,
        snapshot: impl FnOnce() -> Arc<Knowledge>,
    ) -> (Published, Option<Arc<[Transition]>>) {
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
        let mut take_snapshot = || {
            let knowledge = taken
                .get_or_insert_with(|| (snapshot.take().expect("the snapshot is taken once"))());
            Content::Snapshot(Arc::clone(knowledge))
        };
        let mut gone = Vec::new();
        let transitions: Option<Arc<[Transition]>> = self.published.as_mut().map(|published| {
            discoveries
                .iter()
                .map(|discovery| published.insert_traced(Arc::clone(discovery)))
                .collect()
        });

        // Decide what each queue subscriber gets, and take the wakers of
        // those waiting, which become the relay.
        let mut recipients = Vec::with_capacity(self.subscribers.len());
        let mut replicas = Vec::new();
        let mut relay = Vec::with_capacity(self.subscribers.len());
        for (id, slot) in &mut self.subscribers {
            let inbox = match &slot.end {
                End::Queue(inbox) => inbox,
                End::Replica(cell) => {
                    replicas.push((*id, Arc::clone(cell), &mut slot.lagging));
                    continue;
                }
            };
            let mut queue = inbox.lock();
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
                (true, false) => Some(take_snapshot()),
            };
            slot.lagging = false;
            let relay_position = queue.waiting.take().map(|waker| {
                relay.push(waker);
                relay.len() - 1
            });
            drop(queue);
            recipients.push(Recipient {
                id: *id,
                inbox: Arc::clone(inbox),
                snapshot: content,
                relay_position,
            });
        }

        // Queue the deliveries. The source holds the parcel until all are
        // queued or applied, so that fast acknowledgements cannot complete
        // the batch early.
        let traced = transitions.clone();
        let parcel = Arc::new(Parcel {
            sequence,
            batch: Content::Batch(discoveries),
            transitions,
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
        parcel.wake_first();
        for waker in strays {
            waker.wake();
        }

        // Replicas, while the queue subscribers' relay runs. One that lagged
        // is sent everything published, which shares states with the
        // replicas in step.
        let published_so_far = self.published.as_ref();
        let mut replica_snapshot: Option<Arc<Knowledge>> = None;
        let mut take_replica_snapshot = || match published_so_far {
            Some(published) => Content::Snapshot(Arc::clone(
                replica_snapshot.get_or_insert_with(|| Arc::new(published.clone())),
            )),
            None => take_snapshot(),
        };
        for (id, cell, lagging) in replicas {
            if cell.owner_gone.load(Ordering::Acquire) {
                gone.push(id);
                continue;
            }
            if let Some(mut knowledge) = cell.try_lock_knowledge() {
                cell.apply_backlog(&mut knowledge);
                match *lagging {
                    true => {
                        take_replica_snapshot().apply_to(&mut knowledge);
                        published.snapshots += 1;
                    }
                    false => {
                        parcel.apply_batch_to(&mut knowledge);
                        published.delivered += 1;
                    }
                }
                *lagging = false;
                published.applied += 1;
                continue;
            }
            let mut backlog = cell.lock_backlog();
            let is_full = backlog.len() >= self.capacity;
            let content = match (*lagging, is_full) {
                (false, false) => None,
                (false, true) => {
                    *lagging = true;
                    published.lagging += 1;
                    continue;
                }
                (true, true) => continue,
                (true, false) => Some(take_replica_snapshot()),
            };
            *lagging = false;
            match content.is_some() {
                true => published.snapshots += 1,
                false => published.delivered += 1,
            }
            backlog.push_back(Delivery {
                parcel: Arc::clone(&parcel),
                snapshot: content,
                relay_position: None,
                applied: false,
            });
            cell.backlog_len.store(backlog.len(), Ordering::SeqCst);
            drop(backlog);
            cell.catch_up();
        }

        published.gone = gone.len();
        for id in gone {
            self.subscribers.remove(&id);
        }
        drop(parcel);
        if published.delivered + published.snapshots > 0 {
            // A batch every recipient applied already needs no collecting.
            match receipt.completed_at.get() {
                Some(&completed_at) => self.record(&receipt, completed_at),
                None => self.in_flight.push_back(receipt),
            }
        }
        (published, traced)
    }

    /// Makes room for at least `topics` more topics in the fan-out's copy
    /// of what it published and in every replica nobody is reading, so
    /// that the publishes filing them grow no table. A replica in step
    /// grows its tables in the same publish as every other, so the batch
    /// that crossed their size would otherwise wait for all of them to
    /// move their entries. Call it between publishes, where no batch
    /// waits on it; while there is room it only looks.
    pub fn make_room(&mut self, topics: usize) {
        if let Some(published) = &mut self.published {
            published.reserve(topics);
        }
        for slot in self.subscribers.values() {
            let End::Replica(cell) = &slot.end else {
                continue;
            };
            // A replica being read grows, if it must, as its backlog is
            // applied.
            if let Some(mut knowledge) = cell.try_lock_knowledge() {
                cell.apply_backlog(&mut knowledge);
                knowledge.reserve(topics);
            }
        }
    }

    /// Records the latency of every batch whose recipients have all
    /// applied it since `publish` returned; returns how many completed. (A
    /// batch that `publish` applied to every recipient is recorded then.)
    pub fn collect_acks(&mut self) -> usize {
        let mut n_completed = 0;
        let mut still_in_flight = VecDeque::with_capacity(self.in_flight.len());
        for receipt in std::mem::take(&mut self.in_flight) {
            match receipt.completed_at.get() {
                None => still_in_flight.push_back(receipt),
                Some(&completed_at) => {
                    n_completed += 1;
                    self.record(&receipt, completed_at);
                }
            }
        }
        self.in_flight = still_in_flight;
        n_completed
    }

    /// Records a completed batch's latency, or that it was abandoned.
    fn record(&mut self, receipt: &Receipt, completed_at: Instant) {
        if receipt.abandoned.load(Ordering::Acquire) {
            self.abandoned += 1;
            return;
        }
        let micros = completed_at.duration_since(receipt.origin).as_micros();
        let micros = u64::try_from(micros).unwrap_or(u64::MAX).max(1);
        self.latency.saturating_record(micros);
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
            let End::Queue(inbox) = &slot.end else {
                continue;
            };
            let waiting = {
                let mut queue = inbox.lock();
                queue.source_gone = true;
                queue.waiting.take()
            };
            if let Some(waker) = waiting {
                waker.wake();
            }
        }
    }
}
