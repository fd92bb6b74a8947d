//! Knowledge: discoveries by topic, and what to believe when they disagree.
//!
//! Each strategy keeps, per topic, a state whose merge is a join: it is
//! commutative, associative and idempotent. Strategies that pick one
//! discovery keep the maximum under a total order; strategies that weigh
//! several keep the set of contributors, merged by union. Either way two
//! replicas that have seen the same discoveries hold equal state, whatever
//! the order or repetition of delivery, and so believe the same thing.
//!
//! Topic states are shared and copied on write, and each content of a
//! state carries a stamp no other content has. A change made once, by the
//! fan-out's copy of what it published, is recorded as a `Transition` (the
//! stamp it started from and the state it ended with); a replica holding
//! the state with that stamp takes the result instead of redoing the work,
//! which is exact, as an insert depends on nothing but the state and the
//! discovery. Replicas kept in step this way hold one copy of each state
//! between them.
use std::cmp::Ordering;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering as AtomicOrdering};

use hashbrown::HashTable;
use serde::ser::SerializeStruct;
use serde::{Deserialize, Serialize, Serializer};

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
#[derive(Debug, Clone, Deserialize)]
#[serde(try_from = "KnowledgeRecord")]
pub struct Knowledge {
    strategy: Strategy,
    /// Every topic's state, in the order topics were first seen.
    states: Vec<Entry>,
    /// Where each topic's state is, in topic order, for whatever reads
    /// topics in order or by name. A persistent map: replicas in step with
    /// the fan-out's copy share it (they file topics at the same places),
    /// so a new topic is filed in order once, not once per replica.
    topics: TopicIndex,
    /// Where each topic's state is, by the topic's hash, with the hash. A
    /// discovery carries its topic's hash, so filing it costs a probe and
    /// one comparison of topics, not a walk of comparisons; and growing
    /// the table reads no state.
    ///
    /// Replicas in step each keep their own table and state vector, and
    /// all regrow them in the same publish when knowledge crosses their
    /// size; `reserve` (which `FanOut::make_room` calls between publishes)
    /// moves that out of the publish.
    ///
    /// FIXME: owning them costs each replica 40 to 90 bytes per topic on
    /// top of the shared states (a 24-byte entry and a 16-byte slot, with
    /// their tables' slack), so 40 to 90 MB per replica at a million
    /// topics. Persistent maps would let replicas share these too, but
    /// make inserts into knowledge that shares nothing slower.
    by_hash: HashTable<(u64, usize)>,
    /// Bumped by every change of state, so that views derived from the
    /// knowledge can tell when to recompute.
    revision: u64,
}

impl PartialEq for Knowledge {
    fn eq(&self, other: &Knowledge) -> bool {
        let same_topics = || {
            self.topics.iter().zip(&other.topics).all(
                |((topic, &state_idx), (other_topic, &other_state_idx))| {
                    topic == other_topic && self.states[state_idx] == other.states[other_state_idx]
                },
            )
        };
        self.strategy == other.strategy && self.topics.len() == other.topics.len() && same_topics()
    }
}

/// Knowledge serializes as its strategy, a list of topics with their
/// states in topic order (a list, not a map, as topics are not strings),
/// and its revision.
impl Serialize for Knowledge {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        let mut record = serializer.serialize_struct("Knowledge", 3)?;
        record.serialize_field("strategy", &self.strategy)?;
        record.serialize_field("topics", &StatesInTopicOrder(self))?;
        record.serialize_field("revision", &self.revision)?;
        record.end()
    }
}

/// A topic's state as knowledge holds it.
#[derive(Debug, Clone)]
struct Entry {
    /// Unique to this content of the state, across every knowledge: a
    /// change takes a fresh stamp, a copy keeps it.
    stamp: Stamp,
    /// The topic, shared by every knowledge that took this entry, so that
    /// filing it under its name copies no string.
    topic: Arc<Topic>,
    state: Arc<TopicState>,
}

impl Entry {
    fn new(state: TopicState) -> Entry {
        Entry {
            stamp: Stamp::fresh(),
            topic: Arc::clone(state.latest().shared_topic()),
            state: Arc::new(state),
        }
    }
}

impl PartialEq for Entry {
    fn eq(&self, other: &Entry) -> bool {
        self.stamp == other.stamp || self.state == other.state
    }
}

/// Names one content of a topic state.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct Stamp(u64);

impl Stamp {
    fn fresh() -> Stamp {
        static NEXT: AtomicU64 = AtomicU64::new(0);
        Stamp(NEXT.fetch_add(1, AtomicOrdering::Relaxed))
    }
}

/// What inserting one discovery did to its topic's state, for knowledge
/// that holds the state the insert started from: see the module's
/// documentation.
#[derive(Debug, Clone)]
pub(crate) struct Transition {
    strategy: Strategy,
    /// The state it started from; none if the topic was new.
    before: Option<Stamp>,
    /// Where the state is in the knowledge that recorded the transition.
    /// Knowledge kept in step files its topics in the same order, so it
    /// finds the state there without a probe.
    state_idx: usize,
    after: Entry,
    insertion: Insertion,
    /// For a new topic, the index of topics before and after it was filed.
    topics: Option<(TopicIndex, TopicIndex)>,
}

type TopicIndex = imbl::OrdMap<Arc<Topic>, usize>;

/// A topic's state: the one discovery kept, or every contributor with the
/// vote they add up to.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
enum TopicState {
    Best(Arc<Discovery>),
    All(Votes),
}

impl TopicState {
    /// A discovery the state holds, as every state holds one: the kept
    /// one, or the contributor with the largest id, which is usually the
    /// last to arrive and so still in cache.
    fn latest(&self) -> &Discovery {
        match self {
            TopicState::Best(discovery) => discovery,
            TopicState::All(votes) => votes.latest(),
        }
    }
}

/// Every contributor of a topic, and per distinct payload its tally, kept
/// up to date on insert so that finding the winner does not rescan the
/// contributors, nor look any of them up. Tallies are integer sums and
/// maxima, so they depend only on the set of contributors, never on the
/// order they arrived in.
///
/// Votes serialize as their contributors alone; the tallies are counted
/// again as they are read back, so that they always agree.
#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(from = "VotesRecord")]
struct Votes {
    /// Sorted by id. Discoveries mostly arrive in id order, so a newcomer
    /// is usually appended, with no search.
    contributors: Contributors,
    /// One per distinct payload, sorted by the payload's hash, then the
    /// payload: an order as canonical as the payload's own, in which a
    /// newcomer's payload is found by comparing numbers.
    tallies: Vec<Tally>,
    /// Where the winning tally is. Votes and newest supporters only grow, so
    /// only the tally just counted can overtake it.
    winner: usize,
}

/// Where a new contributor goes in a vote.
#[derive(Debug, Clone, Copy)]
struct VotePlan {
    /// Its payload's tally, or where a new one goes.
    position: Result<usize, usize>,
    /// Its place among the contributors.
    slot: usize,
    conflicts: bool,
    was_empty: bool,
}

/// A vote's contributors in id order: a plain vector while they are few, a
/// persistent one once they are many, so that copying a vote shared
/// between replicas costs at most `FEW` reference counts, however many
/// contributors it has, while small votes stay as cheap as a vector.
#[derive(Debug, Clone)]
enum Contributors {
    Few(Vec<Arc<Discovery>>),
    Many(imbl::Vector<Arc<Discovery>>),
}

/// The most contributors kept in a plain vector.
const FEW: usize = 32;

/// How close to the end of a persistent vector a newcomer goes by moving
/// the contributors after it instead of inserting.
const NEAR_END: usize = 16;

impl Contributors {
    fn len(&self) -> usize {
        match self {
            Contributors::Few(few) => few.len(),
            Contributors::Many(many) => many.len(),
        }
    }

    fn is_empty(&self) -> bool {
        self.len() == 0
    }

    fn last(&self) -> Option<&Arc<Discovery>> {
        match self {
            Contributors::Few(few) => few.last(),
            Contributors::Many(many) => many.last(),
        }
    }

    fn get(&self, contributor_idx: usize) -> &Arc<Discovery> {
        match self {
            Contributors::Few(few) => &few[contributor_idx],
            Contributors::Many(many) => &many[contributor_idx],
        }
    }

    /// Where the contributor with `id` is, or would go.
    fn search(&self, id: DiscoveryId) -> Result<usize, usize> {
        match self {
            Contributors::Few(few) => few.binary_search_by_key(&id, |kept| kept.id()),
            Contributors::Many(many) => many.binary_search_by_key(&id, |kept| kept.id()),
        }
    }

    /// Puts `discovery` at `slot`, found by `search`.
    fn insert(&mut self, slot: usize, discovery: Arc<Discovery>) {
        match self {
            Contributors::Few(few) if few.len() < FEW => few.insert(slot, discovery),
            Contributors::Few(few) => {
                let mut many: imbl::Vector<_> = std::mem::take(few).into_iter().collect();
                many.insert(slot, discovery);
                *self = Contributors::Many(many);
            }
            Contributors::Many(many) if slot == many.len() => many.push_back(discovery),
            // A newcomer a little out of order lands near the end: moving
            // the few after it is cheaper than splitting the tree, which a
            // persistent vector does to insert in the middle.
            Contributors::Many(many) if many.len() - slot <= NEAR_END => {
                let after: Vec<_> = (slot..many.len()).filter_map(|_| many.pop_back()).collect();
                many.push_back(discovery);
                many.extend(after.into_iter().rev());
            }
            Contributors::Many(many) => many.insert(slot, discovery),
        }
    }

    fn iter(&self) -> impl Iterator<Item = &Arc<Discovery>> {
        let (few, many) = match self {
            Contributors::Few(few) => (Some(few.iter()), None),
            Contributors::Many(many) => (None, Some(many.iter())),
        };
        few.into_iter().flatten().chain(many.into_iter().flatten())
    }
}

impl From<Vec<Arc<Discovery>>> for Contributors {
    fn from(contributors: Vec<Arc<Discovery>>) -> Contributors {
        match contributors.len() <= FEW {
            true => Contributors::Few(contributors),
            false => Contributors::Many(contributors.into_iter().collect()),
        }
    }
}

impl PartialEq for Contributors {
    fn eq(&self, other: &Contributors) -> bool {
        self.len() == other.len() && self.iter().eq(other.iter())
    }
}

/// Votes as they serialize.
#[derive(Serialize, Deserialize)]
struct VotesRecord {
    contributors: Vec<Arc<Discovery>>,
}

impl From<VotesRecord> for Votes {
    fn from(record: VotesRecord) -> Votes {
        let mut votes = Votes::empty();
        for discovery in record.contributors {
            votes.insert(discovery);
        }
        votes
    }
}

impl Serialize for Votes {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        let mut record = serializer.serialize_struct("Votes", 1)?;
        record.serialize_field("contributors", &self.contributors)?;
        record.end()
    }
}

impl Serialize for Contributors {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        serializer.collect_seq(self.iter())
    }
}

#[derive(Debug, Clone)]
struct Tally {
    /// The payload's hash, from its supporters' digest.
    payload_hash: u64,
    /// A supporter, which holds the payload: shared, not copied, so that
    /// copying a vote copies no payload.
    holder: Arc<Discovery>,
    /// Samples of the payload's supporters.
    votes: u64,
    /// The newest supporter, which breaks ties between payloads.
    newest: DiscoveryId,
    /// The most confident supporter, which stands for the payload. Its rank
    /// is copied here so that a newcomer is compared without a lookup.
    best: Rank,
}

/// What `HighestConfidence` orders discoveries by: confidence, then
/// samples, then id.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
struct Rank {
    confidence: f64,
    samples: u32,
    id: DiscoveryId,
}

impl Tally {
    /// What decides between payloads: most votes, then newest supporter.
    fn standing(&self) -> (u64, DiscoveryId) {
        (self.votes, self.newest)
    }
}

impl Rank {
    fn of(discovery: &Discovery) -> Rank {
        Rank {
            confidence: discovery.confidence(),
            samples: discovery.samples(),
            id: discovery.id(),
        }
    }

    fn cmp(&self, other: &Rank) -> Ordering {
        self.confidence
            .total_cmp(&other.confidence)
            .then(self.samples.cmp(&other.samples))
            .then(self.id.cmp(&other.id))
    }
}

impl Tally {
    fn payload(&self) -> &Payload {
        self.holder.payload()
    }
}

/// Tallies are equal when they count the same; which supporter holds the
/// payload depends on arrival order and does not count.
impl PartialEq for Tally {
    fn eq(&self, other: &Tally) -> bool {
        self.payload_hash == other.payload_hash
            && self.votes == other.votes
            && self.newest == other.newest
            && self.best == other.best
            && self.payload() == other.payload()
    }
}

impl Votes {
    fn empty() -> Votes {
        Votes {
            contributors: Contributors::Few(Vec::new()),
            tallies: Vec::new(),
            winner: 0,
        }
    }

    fn new(discovery: Arc<Discovery>) -> Votes {
        let mut votes = Votes::empty();
        votes.insert(discovery);
        votes
    }

    /// Adds a contributor, unless it is already there.
    #[inline]
    fn insert(&mut self, discovery: Arc<Discovery>) -> Insertion {
        match self.plan(&discovery) {
            Ok(plan) => self.commit(discovery, plan),
            Err(unchanged) => unchanged,
        }
    }

    /// Where a newcomer goes, or what inserting it says if it is already
    /// a contributor.
    ///
    /// The payload is searched once: its position says both whether the
    /// newcomer conflicts with the winner and which tally it joins.
    #[inline]
    fn plan(&self, discovery: &Discovery) -> Result<VotePlan, Insertion> {
        let was_empty = self.tallies.is_empty();
        let position = self.find_payload(discovery);
        let conflicts = !was_empty && position != Ok(self.winner);

        let id = discovery.id();
        let slot = match self.contributors.last() {
            Some(last) if last.id() >= id => match self.contributors.search(id) {
                Ok(_) => {
                    return Err(Insertion {
                        changed: false,
                        conflicts,
                        belief_changed: false,
                    });
                }
                Err(slot) => slot,
            },
            _ => self.contributors.len(),
        };
        Ok(VotePlan {
            position,
            slot,
            conflicts,
            was_empty,
        })
    }

    /// Adds a newcomer where `plan`, made on this state, says.
    #[inline]
    fn commit(&mut self, discovery: Arc<Discovery>, plan: VotePlan) -> Insertion {
        let overtaken = self.count(&discovery, plan.position);
        self.contributors.insert(plan.slot, discovery);
        Insertion {
            changed: true,
            conflicts: plan.conflicts,
            belief_changed: plan.was_empty || overtaken,
        }
    }

    /// Adds every contributor of `other` not already here, in one pass over
    /// both lists, whatever their order.
    fn merge(&mut self, other: &Votes) {
        let mut merged = Vec::with_capacity(self.contributors.len() + other.contributors.len());
        let ours: Vec<Arc<Discovery>> = self.contributors.iter().cloned().collect();
        let mut ours = ours.into_iter().peekable();
        for discovery in other.contributors.iter() {
            let id = discovery.id();
            while let Some(earlier) = ours.next_if(|ours| ours.id() < id) {
                merged.push(earlier);
            }
            if ours.peek().is_some_and(|ours| ours.id() == id) {
                continue;
            }
            self.count(discovery, self.find_payload(discovery));
            merged.push(Arc::clone(discovery));
        }
        merged.extend(ours);
        self.contributors = Contributors::from(merged);
    }

    /// Where the tally of `discovery`'s payload is, or would be inserted.
    #[inline]
    fn find_payload(&self, discovery: &Discovery) -> Result<usize, usize> {
        let payload_hash = discovery.digest().payload;
        // A topic has few distinct payloads: scanning their hashes is
        // cheaper than ordering payloads, and a new one is rare.
        let found = self.tallies.iter().position(|tally| {
            tally.payload_hash == payload_hash && tally.payload() == discovery.payload()
        });
        match found {
            Some(tally_idx) => Ok(tally_idx),
            None => Err(self.tallies.partition_point(|tally| {
                (tally.payload_hash, tally.payload()) < (payload_hash, discovery.payload())
            })),
        }
    }

    /// Adds a new contributor's samples to its payload's tally at
    /// `position`, found by `find_payload`; returns true if and only if that
    /// tally overtook the winner.
    #[inline]
    fn count(&mut self, discovery: &Arc<Discovery>, position: Result<usize, usize>) -> bool {
        let rank = Rank::of(discovery);
        let samples = u64::from(discovery.samples());
        let tally_idx = match position {
            Ok(tally_idx) => {
                let tally = &mut self.tallies[tally_idx];
                tally.votes += samples;
                tally.newest = tally.newest.max(rank.id);
                if rank.cmp(&tally.best) == Ordering::Greater {
                    tally.best = rank;
                }
                tally_idx
            }
            Err(tally_idx) => {
                let tally = Tally {
                    payload_hash: discovery.digest().payload,
                    holder: Arc::clone(discovery),
                    votes: samples,
                    newest: rank.id,
                    best: rank,
                };
                self.tallies.insert(tally_idx, tally);
                // A payload sorted before the winner moves it along.
                if tally_idx <= self.winner && self.tallies.len() > 1 {
                    self.winner += 1;
                }
                tally_idx
            }
        };
        let overtakes = self.tallies[tally_idx].standing() > self.tallies[self.winner].standing();
        if overtakes {
            self.winner = tally_idx;
        }
        overtakes
    }

    /// The contributor with `id`, which must be one.
    fn contributor(&self, id: DiscoveryId) -> &Discovery {
        let contributor_idx = self
            .contributors
            .search(id)
            .expect("a tally's discoveries are contributors");
        self.contributors.get(contributor_idx)
    }

    /// The contributor with the largest id, which every vote has.
    fn latest(&self) -> &Discovery {
        self.contributors
            .last()
            .expect("a vote holds at least one discovery")
    }

    /// The contributors, in id order.
    fn discoveries(&self) -> impl Iterator<Item = &Arc<Discovery>> {
        self.contributors.iter()
    }

    /// The winning payload's tally.
    fn winner(&self) -> &Tally {
        &self.tallies[self.winner]
    }
}

impl Knowledge {
    /// Empty knowledge under `strategy`.
    pub fn new(strategy: Strategy) -> Knowledge {
        Knowledge {
            strategy,
            states: Vec::new(),
            topics: imbl::OrdMap::new(),
            by_hash: HashTable::new(),
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

    /// Makes room for at least `additional` more topics, so that filing
    /// them grows no table. A table grows by moving every entry; calling
    /// this ahead of time moves that cost out of a later insert.
    pub fn reserve(&mut self, additional: usize) {
        self.states.reserve(additional);
        self.by_hash.reserve(additional, |&(hash, _)| hash);
    }

    /// Adds one discovery. Knowledge shares discoveries: passing an
    /// `Arc<Discovery>` that others hold costs no copy.
    pub fn insert(&mut self, discovery: impl Into<Arc<Discovery>>) -> Insertion {
        let discovery = discovery.into();
        let topic_hash = discovery.digest().topic;
        match self.find(topic_hash, discovery.topic()) {
            Some(state_idx) => {
                let entry = &mut self.states[state_idx];
                // Worked out on the state as it is, so that a state shared
                // with other knowledge is copied only if it changes.
                let insertion = match plan(self.strategy, &entry.state, &discovery) {
                    Err(unchanged) => unchanged,
                    Ok(plan) => {
                        entry.stamp = Stamp::fresh();
                        commit(Arc::make_mut(&mut entry.state), discovery, plan)
                    }
                };
                self.revision += u64::from(insertion.changed);
                insertion
            }
            None => {
                let state = match self.strategy.keeps_all() {
                    true => TopicState::All(Votes::new(discovery)),
                    false => TopicState::Best(discovery),
                };
                self.add_topic(topic_hash, Entry::new(state));
                self.revision += 1;
                Insertion {
                    changed: true,
                    conflicts: false,
                    belief_changed: true,
                }
            }
        }
    }

    /// Inserts as `insert` does, and records what the insert did to the
    /// topic's state.
    pub(crate) fn insert_traced(&mut self, discovery: Arc<Discovery>) -> Transition {
        let topic_hash = discovery.digest().topic;
        let topic_idx = self.find(topic_hash, discovery.topic());
        let before = topic_idx.map(|state_idx| self.states[state_idx].stamp);
        let topics_before = topic_idx.is_none().then(|| self.topics.clone());
        let insertion = self.insert(Arc::clone(&discovery));
        let state_idx = match topic_idx {
            Some(state_idx) => state_idx,
            None => self.states.len() - 1,
        };
        Transition {
            strategy: self.strategy,
            before,
            state_idx,
            after: self.states[state_idx].clone(),
            insertion,
            topics: topics_before.map(|topics_before| (topics_before, self.topics.clone())),
        }
    }

    /// Inserts `discovery`, taking the state `transition` (recorded when
    /// another knowledge inserted the same discovery) ended with if this
    /// knowledge holds the state it started from; inserts as `insert` does
    /// otherwise.
    pub(crate) fn insert_as(
        &mut self,
        discovery: &Arc<Discovery>,
        transition: &Transition,
    ) -> Insertion {
        if transition.strategy == self.strategy {
            let topic_hash = discovery.digest().topic;
            match transition.before {
                Some(before) => {
                    // A stamp is unique to one content of one topic's state,
                    // so a match at the recorded place is the topic.
                    let in_place = self
                        .states
                        .get(transition.state_idx)
                        .is_some_and(|entry| entry.stamp == before);
                    let states = &self.states;
                    let found = match in_place {
                        true => Some((topic_hash, transition.state_idx)),
                        false => self
                            .by_hash
                            .find(topic_hash, |&(_, state_idx)| {
                                states[state_idx].stamp == before
                            })
                            .copied(),
                    };
                    if let Some((_, state_idx)) = found {
                        if before != transition.after.stamp {
                            // Same topic: only the state changes hands.
                            let entry = &mut self.states[state_idx];
                            entry.stamp = transition.after.stamp;
                            entry.state = Arc::clone(&transition.after.state);
                        }
                        self.revision += u64::from(transition.insertion.changed);
                        return transition.insertion;
                    }
                }
                None => {
                    if self.find(topic_hash, discovery.topic()).is_none() {
                        match &transition.topics {
                            // Holding the same index, this knowledge files the
                            // topic at the same place.
                            Some((before, after)) if self.topics.ptr_eq(before) => {
                                self.topics = after.clone();
                                self.file_state(topic_hash, transition.after.clone());
                            }
                            _ => self.add_topic(topic_hash, transition.after.clone()),
                        }
                        self.revision += 1;
                        return transition.insertion;
                    }
                }
            }
        }
        self.insert(Arc::clone(discovery))
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
        for &theirs_idx in other.topics.values() {
            let theirs_entry = &other.states[theirs_idx];
            let theirs = &*theirs_entry.state;
            let topic_hash = theirs.latest().digest().topic;
            let Some(state_idx) = self.find(topic_hash, theirs.latest().topic()) else {
                self.add_topic(topic_hash, theirs_entry.clone());
                continue;
            };
            let ours = &mut self.states[state_idx];
            if ours.stamp == theirs_entry.stamp {
                continue;
            }
            ours.stamp = Stamp::fresh();
            match (Arc::make_mut(&mut ours.state), theirs) {
                (TopicState::All(ours), TopicState::All(theirs)) => ours.merge(theirs),
                (ours, TopicState::Best(discovery)) => {
                    join_one(self.strategy, ours, Arc::clone(discovery));
                }
                (ours, TopicState::All(theirs)) => {
                    for discovery in theirs.discoveries() {
                        join_one(self.strategy, ours, Arc::clone(discovery));
                    }
                }
            }
        }
        // Conservatively a change: views recompute once per merge.
        self.revision += 1;
        Ok(())
    }

    /// The belief on one topic.
    pub fn belief(&self, topic: &Topic) -> Option<Belief> {
        self.state(topic).map(|state| resolve(self.strategy, state))
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
            .map(|(topic, &state_idx)| {
                (
                    &**topic,
                    resolve(self.strategy, &self.states[state_idx].state),
                )
            })
    }

    /// Every topic's belief, in topic order.
    pub fn beliefs(&self) -> impl Iterator<Item = (&Topic, Belief)> {
        self.topics.iter().map(|(topic, &state_idx)| {
            (
                &**topic,
                resolve(self.strategy, &self.states[state_idx].state),
            )
        })
    }

    /// The discoveries kept for a topic: one for the strategies that pick,
    /// every contributor for those that weigh.
    pub fn discoveries(&self, topic: &Topic) -> Vec<&Discovery> {
        match self.state(topic) {
            None => Vec::new(),
            Some(TopicState::Best(discovery)) => vec![discovery.as_ref()],
            Some(TopicState::All(votes)) => votes.discoveries().map(Arc::as_ref).collect(),
        }
    }

    /// Where the state of the topic with `topic_hash` is.
    #[inline]
    fn find(&self, topic_hash: u64, topic: &Topic) -> Option<usize> {
        let states = &self.states;
        self.by_hash
            .find(topic_hash, |&(hash, state_idx)| {
                hash == topic_hash && *states[state_idx].topic == *topic
            })
            .map(|&(_, state_idx)| state_idx)
    }

    /// Files the state of a topic not yet known.
    fn add_topic(&mut self, topic_hash: u64, entry: Entry) {
        self.topics
            .insert(Arc::clone(&entry.topic), self.states.len());
        self.file_state(topic_hash, entry);
    }

    /// Files the state of a topic not yet known, except in topic order.
    fn file_state(&mut self, topic_hash: u64, entry: Entry) {
        let state_idx = self.states.len();
        self.by_hash
            .insert_unique(topic_hash, (topic_hash, state_idx), |&(hash, _)| hash);
        self.states.push(entry);
    }

    /// The state of `topic`, found by name.
    fn state(&self, topic: &Topic) -> Option<&TopicState> {
        self.topics
            .get(topic)
            .map(|&state_idx| &*self.states[state_idx].state)
    }
}

/// Knowledge as it deserializes.
#[derive(Deserialize)]
struct KnowledgeRecord {
    strategy: Strategy,
    topics: Vec<(Topic, TopicState)>,
    #[serde(default)]
    revision: u64,
}

impl TryFrom<KnowledgeRecord> for Knowledge {
    type Error = InvalidKnowledge;

    fn try_from(record: KnowledgeRecord) -> Result<Knowledge, InvalidKnowledge> {
        let mut knowledge = Knowledge::new(record.strategy);
        for (topic, state) in record.topics {
            let holds_one = match &state {
                TopicState::Best(_) => true,
                TopicState::All(votes) => !votes.contributors.is_empty(),
            };
            if !holds_one || state.latest().topic() != &topic {
                return Err(InvalidKnowledge::Inconsistent(topic));
            }
            let topic_hash = state.latest().digest().topic;
            if knowledge.find(topic_hash, &topic).is_some() {
                return Err(InvalidKnowledge::Repeated(topic));
            }
            knowledge.add_topic(topic_hash, Entry::new(state));
        }
        knowledge.revision = record.revision;
        Ok(knowledge)
    }
}

/// Serialized knowledge that cannot be read back.
#[derive(Debug, thiserror::Error)]
enum InvalidKnowledge {
    /// A topic's state holds no discovery, or one about another topic.
    #[error("topic `{0}` does not hold discoveries about itself")]
    Inconsistent(Topic),
    /// A topic is listed twice.
    #[error("topic `{0}` is listed twice")]
    Repeated(Topic),
}

/// A knowledge's topics and their states, in topic order.
struct StatesInTopicOrder<'a>(&'a Knowledge);

impl Serialize for StatesInTopicOrder<'_> {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        let Knowledge { topics, states, .. } = self.0;
        serializer.collect_seq(
            topics
                .iter()
                .map(|(topic, &state_idx)| (&**topic, &*states[state_idx].state)),
        )
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

/// Joins one discovery into a topic's state, and says what that did.
fn join_one(strategy: Strategy, state: &mut TopicState, discovery: Arc<Discovery>) -> Insertion {
    match plan(strategy, state, &discovery) {
        Ok(plan) => commit(state, discovery, plan),
        Err(unchanged) => unchanged,
    }
}

/// How joining a discovery changes a topic's state.
#[derive(Debug, Clone, Copy)]
enum Plan {
    /// The discovery becomes the one kept.
    TakeOver { conflicts: bool },
    /// The discovery joins the vote.
    Vote(VotePlan),
}

/// Works out what joining `discovery` does to `state` without changing it:
/// a plan to change it, or what the insert says if it changes nothing.
#[inline]
fn plan(strategy: Strategy, state: &TopicState, discovery: &Discovery) -> Result<Plan, Insertion> {
    match state {
        TopicState::Best(best) => {
            let conflicts = discovery.digest().payload != best.digest().payload
                || discovery.payload() != best.payload();
            match precedence(strategy, discovery, best) == Ordering::Greater {
                true => Ok(Plan::TakeOver { conflicts }),
                false => Err(Insertion {
                    changed: false,
                    conflicts,
                    belief_changed: false,
                }),
            }
        }
        TopicState::All(votes) => votes.plan(discovery).map(Plan::Vote),
    }
}

/// Carries out `plan`, made on this `state`.
#[inline]
fn commit(state: &mut TopicState, discovery: Arc<Discovery>, plan: Plan) -> Insertion {
    match (state, plan) {
        (TopicState::Best(best), Plan::TakeOver { conflicts }) => {
            *best = discovery;
            // The kept discovery is the new one; its payload differs from
            // the one it replaced if and only if it conflicted.
            Insertion {
                changed: true,
                conflicts,
                belief_changed: conflicts,
            }
        }
        (TopicState::All(votes), Plan::Vote(plan)) => votes.commit(discovery, plan),
        _ => unreachable!("a plan is carried out on the state it was made on"),
    }
}

/// The total order under which a picking strategy keeps the maximum.
fn precedence(strategy: Strategy, a: &Discovery, b: &Discovery) -> Ordering {
    match strategy {
        Strategy::HighestConfidence => Rank::of(a).cmp(&Rank::of(b)),
        // Ids sort by wall-clock time first.
        Strategy::LatestWins | Strategy::Consensus | Strategy::WeightedMerge => a.id().cmp(&b.id()),
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
            let winner = votes.contributor(tally.best.id);
            // One pass over the supporters, in id order, so that the sums
            // are added up in the same order on every replica.
            let mut sums = Sums::default();
            for supporter in votes.discoveries().filter(|d| {
                d.digest().payload == tally.payload_hash && d.payload() == winner.payload()
            }) {
                sums.add(supporter);
            }
            let (confidence, success_rate) = match strategy {
                Strategy::WeightedMerge => sums.weighted_means(),
                _ => (winner.confidence(), winner.success_rate()),
            };
            Belief {
                payload: winner.payload().clone(),
                confidence,
                success_rate,
                samples: tally.votes,
                supporters: sums.supporters,
                representative: tally.best.id,
            }
        }
    }
}

/// What a weighted merge adds up over a payload's supporters.
#[derive(Debug)]
struct Sums {
    supporters: usize,
    samples: f64,
    confidence: Sum,
    success_rate: Sum,
}

/// One value's sample-weighted sum and range.
#[derive(Debug)]
struct Sum {
    weighted: f64,
    low: f64,
    high: f64,
}

impl Default for Sums {
    fn default() -> Sums {
        let empty = || Sum {
            weighted: 0.0,
            low: f64::INFINITY,
            high: f64::NEG_INFINITY,
        };
        Sums {
            supporters: 0,
            samples: 0.0,
            confidence: empty(),
            success_rate: empty(),
        }
    }
}

impl Sums {
    fn add(&mut self, supporter: &Discovery) {
        let samples = f64::from(supporter.samples());
        self.supporters += 1;
        self.samples += samples;
        self.confidence.add(supporter.confidence(), samples);
        self.success_rate.add(supporter.success_rate(), samples);
    }

    /// Confidence and success rate, each the sample-weighted mean.
    fn weighted_means(&self) -> (f64, f64) {
        (
            self.confidence.mean(self.samples),
            self.success_rate.mean(self.samples),
        )
    }
}

impl Sum {
    fn add(&mut self, value: f64, samples: f64) {
        self.weighted += value * samples;
        self.low = self.low.min(value);
        self.high = self.high.max(value);
    }

    fn mean(&self, samples: f64) -> f64 {
        // A weighted mean can stray past its inputs by a rounding error;
        // keep it within them.
        (self.weighted / samples).clamp(self.low, self.high)
    }
}
