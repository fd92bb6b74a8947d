//! Knowledge: discoveries by topic, and what to believe when they disagree.
//!
//! Each strategy keeps, per topic, a state whose merge is a join: it is
//! commutative, associative and idempotent. Strategies that pick one
//! discovery keep the maximum under a total order; strategies that weigh
//! several keep the set of contributors, merged by union. Either way two
//! replicas that have seen the same discoveries hold equal state, whatever
//! the order or repetition of delivery, and so believe the same thing.

use std::cmp::Ordering;
use std::collections::BTreeMap;
use std::collections::btree_map::Entry as MapEntry;
use std::sync::Arc;

use serde::{Deserialize, Serialize};

use crate::learning::discovery::{Discovery, DiscoveryId, Kind, Payload, Topic};

/// How conflicting discoveries on one topic are resolved.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum Strategy {
    /// The most confident discovery wins; ties go to more samples, then to
    /// the larger id.
    HighestConfidence,
    /// The newest discovery wins, by time, then id.
    LatestWins,
    /// A vote: each distinct payload gets the samples of its supporters;
    /// the most supported payload wins (ties to the payload whose newest
    /// supporter is newer).
    Consensus,
    /// The consensus payload, with confidence and success rate the
    /// sample-weighted means over its supporters.
    WeightedMerge,
}

impl Strategy {
    /// Every strategy.
    pub const ALL: [Strategy; 4] = [
        Strategy::HighestConfidence,
        Strategy::LatestWins,
        Strategy::Consensus,
        Strategy::WeightedMerge,
    ];

    fn keeps_all(self) -> bool {
        matches!(self, Strategy::Consensus | Strategy::WeightedMerge)
    }
}

/// What a topic's discoveries add up to.
#[derive(Debug, Clone, PartialEq)]
pub struct Belief {
    /// The answer believed.
    pub payload: Payload,
    /// How sure, in [0, 1].
    pub confidence: f64,
    /// How often it worked, in [0, 1].
    pub success_rate: f64,
    /// Samples behind the answer believed.
    pub samples: u64,
    /// Discoveries that support the answer believed.
    pub supporters: usize,
    /// The discovery that stands for the belief.
    pub representative: DiscoveryId,
}

/// What inserting a discovery did.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Insertion {
    /// The topic's state changed: the discovery had not been seen and was
    /// kept (a repeat, or a discovery a picking strategy ranks below the one
    /// it keeps, changes nothing).
    pub changed: bool,
    /// Its payload differs from what was believed before it.
    pub conflicts: bool,
    /// The belief's payload changed.
    pub belief_changed: bool,
}

/// Discoveries by topic, under one strategy.
///
/// Two knowledges are equal when they hold the same state; how many
/// changes led there (`revision`) does not count.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Knowledge {
    strategy: Strategy,
    topics: BTreeMap<Topic, TopicState>,
    /// Bumped by every change of state, so that views derived from the
    /// knowledge can tell when to recompute.
    #[serde(default)]
    revision: u64,
}

impl PartialEq for Knowledge {
    fn eq(&self, other: &Knowledge) -> bool {
        self.strategy == other.strategy && self.topics == other.topics
    }
}

/// A topic's state: the one discovery kept, or every contributor with the
/// vote they add up to.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
enum TopicState {
    Best(Arc<Discovery>),
    All(Votes),
}

/// Every contributor of a topic, and per distinct payload its tally, kept
/// up to date on insert so that finding the winner does not rescan the
/// contributors. Tallies are integer sums and maxima, so they depend only
/// on the set of contributors, never on the order they arrived in.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
struct Votes {
    discoveries: BTreeMap<DiscoveryId, Arc<Discovery>>,
    /// Sorted by payload; a topic has few distinct payloads.
    tallies: Vec<(Payload, Tally)>,
}

#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
struct Tally {
    /// Samples of the payload's supporters.
    votes: u64,
    /// The newest supporter, which breaks ties between payloads.
    newest: DiscoveryId,
    /// The most confident supporter, which stands for the payload.
    best: DiscoveryId,
}

impl Votes {
    fn new(discovery: Arc<Discovery>) -> Votes {
        let mut votes = Votes {
            discoveries: BTreeMap::new(),
            tallies: Vec::new(),
        };
        votes.insert(discovery);
        votes
    }

    /// Adds a contributor; returns true if and only if it was not there.
    fn insert(&mut self, discovery: Arc<Discovery>) -> bool {
        let id = discovery.id();
        if self.discoveries.contains_key(&id) {
            return false;
        }
        let samples = u64::from(discovery.samples());
        match self
            .tallies
            .binary_search_by(|(payload, _)| payload.cmp(discovery.payload()))
        {
            Ok(index) => {
                let tally = &mut self.tallies[index].1;
                tally.votes += samples;
                tally.newest = tally.newest.max(id);
                let best = &self.discoveries[&tally.best];
                if precedence(Strategy::HighestConfidence, &discovery, best) == Ordering::Greater {
                    tally.best = id;
                }
            }
            Err(index) => {
                let tally = Tally {
                    votes: samples,
                    newest: id,
                    best: id,
                };
                self.tallies
                    .insert(index, (discovery.payload().clone(), tally));
            }
        }
        self.discoveries.insert(id, discovery);
        true
    }

    /// The winning payload's tally: most votes, then newest supporter.
    fn winner(&self) -> &Tally {
        self.tallies
            .iter()
            .map(|(_, tally)| tally)
            .max_by(|a, b| a.votes.cmp(&b.votes).then(a.newest.cmp(&b.newest)))
            .expect("a topic's state holds at least one discovery")
    }
}

impl Knowledge {
    /// Empty knowledge under `strategy`.
    pub fn new(strategy: Strategy) -> Knowledge {
        Knowledge {
            strategy,
            topics: BTreeMap::new(),
            revision: 0,
        }
    }

    /// A number that grows with every change of state; equal revisions of
    /// one knowledge mean nothing changed in between.
    pub fn revision(&self) -> u64 {
        self.revision
    }

    /// The strategy.
    pub fn strategy(&self) -> Strategy {
        self.strategy
    }

    /// How many topics have a belief.
    pub fn len(&self) -> usize {
        self.topics.len()
    }

    /// Returns true if and only if nothing is known.
    pub fn is_empty(&self) -> bool {
        self.topics.is_empty()
    }

    /// Adds one discovery. Knowledge shares discoveries: passing an
    /// `Arc<Discovery>` that others hold costs no copy.
    pub fn insert(&mut self, discovery: impl Into<Arc<Discovery>>) -> Insertion {
        let discovery = discovery.into();
        let strategy = self.strategy;
        let Some(state) = self.topics.get_mut(discovery.topic()) else {
            let state = match strategy.keeps_all() {
                true => TopicState::All(Votes::new(Arc::clone(&discovery))),
                false => TopicState::Best(Arc::clone(&discovery)),
            };
            self.topics.insert(discovery.topic().clone(), state);
            self.revision += 1;
            return Insertion {
                changed: true,
                conflicts: false,
                belief_changed: true,
            };
        };

        // Compared by reference: cloning the shared discoveries would make
        // every replica touch the same reference counts.
        let conflicts = discovery.payload() != believed(state).payload();
        let before = believed(state).id();
        let changed = join_one(strategy, state, discovery);
        self.revision += u64::from(changed);
        let belief_changed = match &*state {
            // The kept discovery is the new one; its payload differs from
            // the one it replaced if and only if it conflicted.
            TopicState::Best(_) => changed && conflicts,
            TopicState::All(votes) => {
                let after = votes.winner().best;
                let payload = |id: DiscoveryId| votes.discoveries[&id].payload();
                after != before && payload(after) != payload(before)
            }
        };
        Insertion {
            changed,
            conflicts,
            belief_changed,
        }
    }

    /// Merges everything `other` knows into this; both must use the same
    /// strategy, or `other` is refused and nothing changes.
    pub fn merge(&mut self, other: &Knowledge) -> Result<(), StrategyMismatch> {
        if other.strategy != self.strategy {
            return Err(StrategyMismatch {
                ours: self.strategy,
                theirs: other.strategy,
            });
        }
        for (topic, state) in &other.topics {
            match self.topics.entry(topic.clone()) {
                MapEntry::Vacant(vacant) => {
                    vacant.insert(state.clone());
                }
                MapEntry::Occupied(mut occupied) => match state {
                    TopicState::Best(discovery) => {
                        join_one(self.strategy, occupied.get_mut(), Arc::clone(discovery));
                    }
                    TopicState::All(votes) => {
                        for discovery in votes.discoveries.values() {
                            join_one(self.strategy, occupied.get_mut(), Arc::clone(discovery));
                        }
                    }
                },
            }
        }
        // Conservatively a change: views recompute once per merge.
        self.revision += 1;
        Ok(())
    }

    /// The belief on one topic.
    pub fn belief(&self, topic: &Topic) -> Option<Belief> {
        self.topics
            .get(topic)
            .map(|state| resolve(self.strategy, state))
    }

    /// The beliefs on topics of one kind, in topic order, without resolving
    /// any other topic.
    pub fn beliefs_of<'a>(
        &'a self,
        kind: &'a Kind,
    ) -> impl Iterator<Item = (&'a Topic, Belief)> + 'a {
        let start = Topic {
            kind: kind.clone(),
            key: String::new(),
        };
        self.topics
            .range(start..)
            .take_while(move |(topic, _)| topic.kind == *kind)
            .map(|(topic, state)| (topic, resolve(self.strategy, state)))
    }

    /// Every topic's belief, in topic order.
    pub fn beliefs(&self) -> impl Iterator<Item = (&Topic, Belief)> {
        self.topics
            .iter()
            .map(|(topic, state)| (topic, resolve(self.strategy, state)))
    }

    /// The discoveries kept for a topic: one for the strategies that pick,
    /// every contributor for those that weigh.
    pub fn discoveries(&self, topic: &Topic) -> Vec<&Discovery> {
        match self.topics.get(topic) {
            None => Vec::new(),
            Some(TopicState::Best(discovery)) => vec![discovery.as_ref()],
            Some(TopicState::All(votes)) => votes.discoveries.values().map(Arc::as_ref).collect(),
        }
    }
}

/// Knowledge under different strategies cannot be merged.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
#[error("cannot merge knowledge resolved by {theirs:?} into knowledge resolved by {ours:?}")]
pub struct StrategyMismatch {
    /// This knowledge's strategy.
    pub ours: Strategy,
    /// The other's.
    pub theirs: Strategy,
}

/// Joins one discovery into a topic's state; returns true if and only if the
/// state changed.
fn join_one(strategy: Strategy, state: &mut TopicState, discovery: Arc<Discovery>) -> bool {
    match state {
        TopicState::Best(best) => {
            let takes_over = precedence(strategy, &discovery, best) == Ordering::Greater;
            if takes_over {
                *best = discovery;
            }
            takes_over
        }
        TopicState::All(votes) => votes.insert(discovery),
    }
}

/// The total order under which a picking strategy keeps the maximum.
fn precedence(strategy: Strategy, a: &Discovery, b: &Discovery) -> Ordering {
    match strategy {
        Strategy::HighestConfidence => a
            .confidence()
            .total_cmp(&b.confidence())
            .then(a.samples().cmp(&b.samples()))
            .then(a.id().cmp(&b.id())),
        // Ids sort by wall-clock time first.
        Strategy::LatestWins | Strategy::Consensus | Strategy::WeightedMerge => a.id().cmp(&b.id()),
    }
}

/// The discovery that stands for the topic's belief.
fn believed(state: &TopicState) -> &Discovery {
    match state {
        TopicState::Best(discovery) => discovery,
        TopicState::All(votes) => &votes.discoveries[&votes.winner().best],
    }
}

fn resolve(strategy: Strategy, state: &TopicState) -> Belief {
    match state {
        TopicState::Best(discovery) => Belief {
            payload: discovery.payload().clone(),
            confidence: discovery.confidence(),
            success_rate: discovery.success_rate(),
            samples: u64::from(discovery.samples()),
            supporters: 1,
            representative: discovery.id(),
        },
        TopicState::All(votes) => {
            let tally = votes.winner();
            let discoveries = &votes.discoveries;
            let winner = &discoveries[&tally.best];
            let supporters: Vec<&Discovery> = discoveries
                .values()
                .map(Arc::as_ref)
                .filter(|d| d.payload() == winner.payload())
                .collect();
            let (confidence, success_rate) = match strategy {
                Strategy::WeightedMerge => {
                    let total = supporters
                        .iter()
                        .map(|d| f64::from(d.samples()))
                        .sum::<f64>();
                    let mean = |value: fn(&Discovery) -> f64| {
                        let weighted: f64 = supporters
                            .iter()
                            .map(|d| value(d) * f64::from(d.samples()))
                            .sum();
                        // A weighted mean can stray past its inputs by a
                        // rounding error; keep it within them.
                        let (low, high) = supporters
                            .iter()
                            .map(|d| value(d))
                            .fold((f64::INFINITY, f64::NEG_INFINITY), |(low, high), v| {
                                (low.min(v), high.max(v))
                            });
                        (weighted / total).clamp(low, high)
                    };
                    (mean(Discovery::confidence), mean(Discovery::success_rate))
                }
                _ => (winner.confidence(), winner.success_rate()),
            };
            Belief {
                payload: winner.payload().clone(),
                confidence,
                success_rate,
                samples: tally.votes,
                supporters: supporters.len(),
                representative: tally.best,
            }
        }
    }
}
