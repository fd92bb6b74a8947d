//! Observers of learning: anyone may watch discoveries, conflicts,
//! resolutions and propagations. Events go through a bounded broadcast, so
//! an observer that falls behind loses the oldest events and is told how
//! many; it never slows the learning it watches.

use tokio::sync::broadcast;

use crate::learning::discovery::{DiscoveryId, Topic};

/// Something that happened to knowledge.
#[derive(Debug, Clone, PartialEq)]
pub enum LearningEvent {
    /// A discovery was accepted.
    Discovered {
        /// The discovery.
        id: DiscoveryId,
        /// Its topic.
        topic: Topic,
    },
    /// A discovery's payload differed from what its topic believed.
    Conflict {
        /// The topic.
        topic: Topic,
        /// The discovery that disagreed.
        incoming: DiscoveryId,
    },
    /// A topic's belief changed.
    Resolved {
        /// The topic.
        topic: Topic,
        /// The discovery that now stands for the belief.
        representative: DiscoveryId,
    },
    /// A batch went out to subscribers.
    Propagated {
        /// The batch's sequence number.
        sequence: u64,
        /// Subscribers it (or a snapshot) reached.
        recipients: usize,
    },
}

/// The sending side of the observers' broadcast.
#[derive(Debug, Clone)]
pub struct Observers {
    sender: broadcast::Sender<LearningEvent>,
}

impl Observers {
    /// Observers that each buffer at most `capacity` events.
    pub fn new(capacity: usize) -> Observers {
        let (sender, _) = broadcast::channel(capacity.max(1));
        Observers { sender }
    }

    /// A new observer, which sees events emitted from now on. Its `recv`
    /// answers `Err(RecvError::Lagged(n))` when it missed `n` events.
    pub fn subscribe(&self) -> broadcast::Receiver<LearningEvent> {
        self.sender.subscribe()
    }

    /// Emits an event; never waits, and with no observer does nothing.
    pub fn emit(&self, event: LearningEvent) {
        let _ = self.sender.send(event);
    }
}
