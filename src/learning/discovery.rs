//! One discovery: what a worker found, about which question, how sure it
//! is, and where it came from. A `Discovery` is valid by construction: a
//! draft becomes one only if every number is in range and the topic is not
//! empty.

use std::borrow::Cow;
use std::fmt;
use std::hash::{DefaultHasher, Hash, Hasher};
use std::sync::Arc;
use std::time::{SystemTime, UNIX_EPOCH};

use serde::{Deserialize, Serialize};

/// A worker of the fleet.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
pub struct WorkerId(pub u32);

impl fmt::Display for WorkerId {
    fn fmt(&self, formatter: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(formatter, "worker-{}", self.0)
    }
}

/// A discovery's unique id, ordered by wall-clock time, then worker, then
/// the worker's sequence number.
///
/// A worker never reuses a sequence number, so ids are unique across the
/// fleet without coordination, and sorting them sorts discoveries by time.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
pub struct DiscoveryId {
    /// Milliseconds since the Unix epoch when the discovery was made.
    pub wall_ms: u64,
    /// The discovering worker.
    pub worker: WorkerId,
    /// The worker's monotonic sequence number.
    pub sequence: u64,
}

impl DiscoveryId {
    /// The next id for `worker`, at the current wall-clock time.
    pub fn now(worker: WorkerId, sequence: u64) -> DiscoveryId {
        let wall_ms = SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .map_or(0, |since| {
                u64::try_from(since.as_millis()).unwrap_or(u64::MAX)
            });
        DiscoveryId {
            wall_ms,
            worker,
            sequence,
        }
    }
}

impl fmt::Display for DiscoveryId {
    fn fmt(&self, formatter: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            formatter,
            "{:013}-{:05}-{:08}",
            self.wall_ms, self.worker.0, self.sequence
        )
    }
}

/// What kind of question a discovery answers. An open set: the common kinds
/// are constants, and any non-empty name is allowed.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
pub struct Kind(Cow<'static, str>);

impl Kind {
    /// A way between two points, with its cost.
    pub const ROUTE: Kind = Kind(Cow::Borrowed("route"));
    /// Whether a tile can be walked on.
    pub const TILE: Kind = Kind(Cow::Borrowed("tile"));
    /// A battle tactic.
    pub const BATTLE: Kind = Kind(Cow::Borrowed("battle"));
    /// What wild encounters cost somewhere.
    pub const ENCOUNTER: Kind = Kind(Cow::Borrowed("encounter"));
    /// Where the run's goal is.
    pub const GOAL: Kind = Kind(Cow::Borrowed("goal"));

    /// A kind by name; `None` if the name is empty.
    pub fn new(name: impl Into<String>) -> Option<Kind> {
        let name = name.into();
        (!name.trim().is_empty()).then_some(Kind(Cow::Owned(name)))
    }

    /// The kind's name.
    pub fn name(&self) -> &str {
        &self.0
    }
}

impl fmt::Display for Kind {
    fn fmt(&self, formatter: &mut fmt::Formatter<'_>) -> fmt::Result {
        formatter.write_str(&self.0)
    }
}

/// The question a discovery answers: a kind and a key within it. Two
/// discoveries conflict when they share a topic and differ in payload.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
pub struct Topic {
    /// The kind of question.
    pub kind: Kind,
    /// Which question of that kind, such as `PALLET TOWN@3,4`.
    pub key: String,
}

impl Topic {
    /// Whether the tile at `(x, y)` on `map` can be walked on.
    pub fn tile(map: &str, x: i32, y: i32) -> Topic {
        Topic {
            kind: Kind::TILE,
            key: format!("{map}@{x},{y}"),
        }
    }

    /// Where the run's goal was reached.
    pub fn goal() -> Topic {
        Topic {
            kind: Kind::GOAL,
            key: "badge".to_owned(),
        }
    }

    /// How to get from one point to another.
    pub fn route(from: (&str, i32, i32), to: (&str, i32, i32)) -> Topic {
        let key = format!(
            "{}@{},{}->{}@{},{}",
            from.0, from.1, from.2, to.0, to.1, to.2
        );
        Topic {
            kind: Kind::ROUTE,
            key,
        }
    }
}

impl fmt::Display for Topic {
    fn fmt(&self, formatter: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(formatter, "{}:{}", self.kind, self.key)
    }
}

/// What was found. Typed where the coordinator needs it; anything else is
/// JSON, kept in canonical form (sorted keys, no spaces) so that equal
/// values compare equal.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
pub enum Payload {
    /// A way to walk: the script that walks it and the frames it costs.
    Route {
        /// The input script.
        script: String,
        /// Frames the route takes.
        frames: u64,
    },
    /// A tile is walkable or not.
    Tile {
        /// Whether it blocks.
        blocked: bool,
    },
    /// A place: a map and a tile on it.
    Place {
        /// The map.
        map: String,
        /// Column.
        x: i32,
        /// Row.
        y: i32,
    },
    /// Walking onto a tile warps to another map.
    Door {
        /// The map it leads to.
        to: String,
    },
    /// What encounters cost in an area, in frames.
    Encounter {
        /// Frames per encounter.
        frames: u64,
    },
    /// Anything else, as canonical JSON text.
    Json(String),
}

impl Payload {
    /// A free-form payload.
    pub fn json(value: &serde_json::Value) -> Payload {
        // serde_json's map is ordered by key, so the text is canonical.
        Payload::Json(value.to_string())
    }
}

/// How urgently a discovery should spread; ordered, `Critical` highest.
#[derive(
    Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Default, Serialize, Deserialize,
)]
pub enum Priority {
    /// Nice to know.
    Low,
    /// The default.
    #[default]
    Normal,
    /// Changes what workers do next.
    High,
    /// Stops workers from wasting effort (a wall, a dead end).
    Critical,
}

/// A discovery before validation, with public fields.
#[derive(Debug, Clone, PartialEq)]
pub struct DiscoveryDraft {
    /// The question answered.
    pub topic: Topic,
    /// The answer.
    pub payload: Payload,
    /// How sure the worker is, in [0, 1].
    pub confidence: f64,
    /// How often the answer worked when tried, in [0, 1].
    pub success_rate: f64,
    /// How many observations back it, at least 1.
    pub samples: u32,
    /// How urgently it should spread.
    pub priority: Priority,
    /// The save state the experiment started from, if any.
    pub checkpoint: Option<String>,
}

/// A draft refused, naming the field.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
pub enum InvalidDiscovery {
    /// A number is NaN.
    #[error("`{field}` is not a number")]
    NotANumber {
        /// The field.
        field: &'static str,
    },
    /// A number is outside [0, 1].
    #[error("`{field}` must be in [0, 1], not {value}")]
    OutOfRange {
        /// The field.
        field: &'static str,
        /// The value given.
        value: f64,
    },
    /// No observation backs it.
    #[error("`samples` must be at least 1")]
    NoSamples,
    /// The topic's key is empty.
    #[error("`topic.key` is empty")]
    EmptyKey,
}

/// A validated discovery.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(from = "DiscoveryFields")]
pub struct Discovery {
    id: DiscoveryId,
    /// Shared, so that knowledge files the discovery under its topic
    /// without copying the topic's strings.
    topic: Arc<Topic>,
    payload: Payload,
    confidence: f64,
    success_rate: f64,
    samples: u32,
    priority: Priority,
    checkpoint: Option<String>,
    /// Taken once, here, so that every replica a discovery reaches files it
    /// without hashing or comparing strings. Derived from the fields above,
    /// so never stored.
    #[serde(skip_serializing)]
    digest: Digest,
}

/// Hashes of a discovery's topic and payload. Equal topics (payloads) have
/// equal hashes within one build of the program.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Digest {
    pub(crate) topic: u64,
    pub(crate) payload: u64,
}

impl Digest {
    fn of(topic: &Topic, payload: &Payload) -> Digest {
        Digest {
            topic: fixed_hash(topic),
            payload: fixed_hash(payload),
        }
    }
}

/// A discovery as stored: every field but the digest, which is recomputed.
#[derive(Deserialize)]
struct DiscoveryFields {
    id: DiscoveryId,
    topic: Topic,
    payload: Payload,
    confidence: f64,
    success_rate: f64,
    samples: u32,
    priority: Priority,
    checkpoint: Option<String>,
}

impl From<DiscoveryFields> for Discovery {
    fn from(fields: DiscoveryFields) -> Discovery {
        Discovery {
            digest: Digest::of(&fields.topic, &fields.payload),
            id: fields.id,
            topic: Arc::new(fields.topic),
            payload: fields.payload,
            confidence: fields.confidence,
            success_rate: fields.success_rate,
            samples: fields.samples,
            priority: fields.priority,
            checkpoint: fields.checkpoint,
        }
    }
}

impl DiscoveryDraft {
    /// Validates the draft and gives it `id`; refuses, never clamps.
    pub fn finish(self, id: DiscoveryId) -> Result<Discovery, InvalidDiscovery> {
        unit_interval("confidence", self.confidence)?;
        unit_interval("success_rate", self.success_rate)?;
        if self.samples == 0 {
            return Err(InvalidDiscovery::NoSamples);
        }
        if self.topic.key.trim().is_empty() {
            return Err(InvalidDiscovery::EmptyKey);
        }
        Ok(Discovery {
            digest: Digest::of(&self.topic, &self.payload),
            id,
            topic: Arc::new(self.topic),
            payload: self.payload,
            confidence: self.confidence,
            success_rate: self.success_rate,
            samples: self.samples,
            priority: self.priority,
            checkpoint: self.checkpoint,
        })
    }
}

impl Discovery {
    /// Its unique id.
    pub fn id(&self) -> DiscoveryId {
        self.id
    }

    /// The question it answers.
    pub fn topic(&self) -> &Topic {
        &self.topic
    }

    /// The question it answers, to share.
    pub(crate) fn shared_topic(&self) -> &Arc<Topic> {
        &self.topic
    }

    /// Its answer.
    pub fn payload(&self) -> &Payload {
        &self.payload
    }

    /// How sure the worker is, in [0, 1].
    pub fn confidence(&self) -> f64 {
        self.confidence
    }

    /// How often the answer worked, in [0, 1].
    pub fn success_rate(&self) -> f64 {
        self.success_rate
    }

    /// Observations behind it, at least 1.
    pub fn samples(&self) -> u32 {
        self.samples
    }

    /// How urgently it should spread.
    pub fn priority(&self) -> Priority {
        self.priority
    }

    /// The save state the experiment started from.
    pub fn checkpoint(&self) -> Option<&str> {
        self.checkpoint.as_deref()
    }

    /// Hashes of the topic and the payload.
    pub(crate) fn digest(&self) -> Digest {
        self.digest
    }

    /// One number for how much to trust it, in [0, 1]: confidence times
    /// success rate, discounted when few samples back it (one sample counts
    /// a sixth, twenty-five count five sixths).
    pub fn quality(&self) -> f64 {
        let samples = f64::from(self.samples);
        self.confidence * self.success_rate * samples / (samples + 5.0)
    }
}

fn unit_interval(field: &'static str, value: f64) -> Result<(), InvalidDiscovery> {
    match value {
        value if value.is_nan() => Err(InvalidDiscovery::NotANumber { field }),
        value if !(0.0..=1.0).contains(&value) => {
            Err(InvalidDiscovery::OutOfRange { field, value })
        }
        _ => Ok(()),
    }
}

/// A hash that is the same for equal values everywhere in the process: the
/// default hasher with its fixed keys, not a per-map random state.
fn fixed_hash(value: &impl Hash) -> u64 {
    let mut hasher = DefaultHasher::new();
    value.hash(&mut hasher);
    hasher.finish()
}
