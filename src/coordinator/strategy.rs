//! Strategies: what to try next, from what is known.
//!
//! A `Strategy` proposes the next experiment for a worker from the current
//! knowledge and the checkpoints (save states) the fleet has made. Users
//! plug in their own planner by implementing it; `Explorer` is the built-in
//! one. Strategies are sans-IO.

use std::collections::{BTreeMap, BTreeSet, HashMap, VecDeque};

use crate::coordinator::experiment::{Experiment, ExperimentId, StartState};
use crate::coordinator::script::Script;
use crate::gym::wire::{Direction, Position};
use crate::learning::{Kind, Knowledge, Payload, WorkerId};

/// A save state the fleet made, and where it stands.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Checkpoint {
    /// The state's name on the server, for `StartState::Saved`.
    pub state_file: String,
    /// The map it stands on.
    pub location: String,
    /// The tile it stands on.
    pub position: Position,
    /// Maps visited before reaching it, counting its own.
    pub depth: usize,
}

/// What a strategy sees when asked for an experiment.
#[derive(Debug, Clone, Copy)]
pub struct Situation<'a> {
    /// The worker asking.
    pub worker: WorkerId,
    /// The id to give the experiment.
    pub experiment: ExperimentId,
    /// What the fleet believes.
    pub knowledge: &'a Knowledge,
    /// Save states to start from, newest last.
    pub checkpoints: &'a [Checkpoint],
    /// Tiles other workers are heading for, to spread the fleet out.
    pub claimed: &'a BTreeSet<(String, Position)>,
}

/// A proposal: the experiment, and the tile it means to learn about.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Proposal {
    /// What to run.
    pub experiment: Experiment,
    /// The unknown tile it heads for, to claim against other workers.
    pub target: Option<(String, Position)>,
}

/// Proposes experiments.
pub trait Strategy: Send {
    /// The next experiment for the worker in `situation`.
    fn propose(&mut self, situation: Situation<'_>) -> Proposal;
}

/// The built-in strategy: heads for the nearest tile nobody knows yet.
///
/// From the deepest checkpoint (the one furthest into the world), it walks
/// known-walkable tiles to the nearest unclaimed unknown tile and steps into
/// it, so every experiment teaches something. Known walls are never walked
/// into; tiles other workers head for are left to them. With nothing left
/// to learn from a checkpoint it tries the next one, and with nothing
/// anywhere it wanders.
#[derive(Debug, Clone)]
pub struct Explorer {
    /// The longest walk an experiment makes.
    pub max_steps: usize,
    /// Varies wandering between proposals.
    wander_turn: usize,
}

impl Default for Explorer {
    fn default() -> Explorer {
        Explorer {
            max_steps: 24,
            wander_turn: 0,
        }
    }
}

impl Strategy for Explorer {
    fn propose(&mut self, situation: Situation<'_>) -> Proposal {
        let tiles = known_tiles(situation.knowledge);
        let mut starts: Vec<&Checkpoint> = situation.checkpoints.iter().collect();
        // Deepest first, newest first among equals.
        starts.reverse();
        starts.sort_by_key(|checkpoint| std::cmp::Reverse(checkpoint.depth));

        for checkpoint in starts {
            let plan = plan_to_frontier(
                &tiles,
                &checkpoint.location,
                checkpoint.position,
                situation.claimed,
                self.max_steps,
            );
            if let Some((directions, target)) = plan {
                let script = script_of(&directions);
                return Proposal {
                    experiment: Experiment {
                        id: situation.experiment,
                        start: StartState::Saved(checkpoint.state_file.clone()),
                        script,
                    },
                    target: Some((checkpoint.location.clone(), target)),
                };
            }
        }

        // Nothing left to learn within reach: wander from the start, a
        // different way each time.
        self.wander_turn += 1;
        let directions = [
            Direction::Right,
            Direction::Down,
            Direction::Left,
            Direction::Up,
        ];
        let wander: Vec<Direction> = (0..self.max_steps.min(8))
            .map(|step| directions[(self.wander_turn + step / 2) % directions.len()])
            .collect();
        let start = match situation.checkpoints.last() {
            Some(checkpoint) => StartState::Saved(checkpoint.state_file.clone()),
            None => StartState::Fresh,
        };
        Proposal {
            experiment: Experiment {
                id: situation.experiment,
                start,
                script: script_of(&wander),
            },
            target: None,
        }
    }
}

/// Per map, the tiles believed blocked (`true`) or walkable (`false`).
type Tiles = HashMap<String, HashMap<Position, bool>>;

fn known_tiles(knowledge: &Knowledge) -> Tiles {
    let mut tiles: Tiles = HashMap::new();
    for (topic, belief) in knowledge.beliefs() {
        if topic.kind != Kind::TILE {
            continue;
        }
        let Payload::Tile { blocked } = belief.payload else {
            continue;
        };
        let Some((map, position)) = parse_tile_key(&topic.key) else {
            continue;
        };
        tiles
            .entry(map.to_owned())
            .or_default()
            .insert(position, blocked);
    }
    tiles
}

/// Reads `MAP@x,y`.
fn parse_tile_key(key: &str) -> Option<(&str, Position)> {
    let (map, coordinates) = key.rsplit_once('@')?;
    let (x, y) = coordinates.split_once(',')?;
    Some((
        map,
        Position {
            x: x.parse().ok()?,
            y: y.parse().ok()?,
        },
    ))
}

/// The shortest walk over known-walkable tiles from `from` to a tile next
/// to an unknown, unclaimed one, ending with the step into it.
fn plan_to_frontier(
    tiles: &Tiles,
    map: &str,
    from: Position,
    claimed: &BTreeSet<(String, Position)>,
    max_steps: usize,
) -> Option<(Vec<Direction>, Position)> {
    let empty = HashMap::new();
    let known = tiles.get(map).unwrap_or(&empty);
    let mut previous: BTreeMap<Position, (Position, Direction)> = BTreeMap::new();
    let mut queue = VecDeque::from([(from, 0usize)]);
    let mut seen = BTreeSet::from([from]);
    while let Some((position, distance)) = queue.pop_front() {
        if distance >= max_steps {
            continue;
        }
        for direction in [
            Direction::Up,
            Direction::Down,
            Direction::Left,
            Direction::Right,
        ] {
            let next = position.step(direction);
            if !seen.insert(next) {
                continue;
            }
            match known.get(&next) {
                None if !claimed.contains(&(map.to_owned(), next)) => {
                    let mut walk = vec![direction];
                    let mut cursor = position;
                    while let Some((before, step)) = previous.get(&cursor) {
                        walk.push(*step);
                        cursor = *before;
                    }
                    walk.reverse();
                    return Some((walk, next));
                }
                Some(false) => {
                    previous.insert(next, (position, direction));
                    queue.push_back((next, distance + 1));
                }
                // Known walls, and unknown tiles another worker claimed.
                _ => {}
            }
        }
    }
    None
}

fn script_of(directions: &[Direction]) -> Script {
    let words: Vec<String> = directions
        .iter()
        .map(|direction| direction.key().to_string())
        .collect();
    Script::parse(&words.join(" ")).expect("direction names form a valid script")
}
