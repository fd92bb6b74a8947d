//! Strategies: what to try next, from what is known.
//!
//! A `Strategy` proposes the next experiment for a worker from the current
//! knowledge and the checkpoints (save states) the fleet has made. Users
//! plug in their own planner by implementing it; `Explorer` is the built-in
//! one. Strategies are sans-IO.

use std::collections::{BTreeMap, BTreeSet, VecDeque};

use crate::coordinator::experiment::{Experiment, ExperimentId, StartState};
use crate::coordinator::script::Script;
use crate::gym::wire::{Direction, Position};
use crate::learning::{Kind, Knowledge, Payload, WorkerId};

/// A save state a worker made, and where it stands. Save states live on
/// the server that made them, so only that worker can start from one.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Checkpoint {
    /// The state's name on the server, for `StartState::Saved`.
    pub state_file: String,
    /// The map it stands on.
    pub location: String,
    /// The tile it stands on.
    pub position: Position,
    /// Distinct maps visited on the way from a fresh game, its own
    /// included: how far into the world it is.
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
    /// The worker's save states to start from, newest last.
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
    /// The tile map derived from knowledge, and the knowledge revision it
    /// was derived from.
    tiles: Option<(u64, Tiles)>,
}

impl Default for Explorer {
    fn default() -> Explorer {
        Explorer {
            max_steps: 24,
            wander_turn: 0,
            tiles: None,
        }
    }
}

impl Strategy for Explorer {
    fn propose(&mut self, situation: Situation<'_>) -> Proposal {
        let revision = situation.knowledge.revision();
        let stale = self
            .tiles
            .as_ref()
            .is_none_or(|(seen, _)| *seen != revision);
        if stale {
            self.tiles = Some((revision, known_tiles(situation.knowledge)));
        }
        let tiles = self
            .tiles
            .take()
            .map(|(_, tiles)| tiles)
            .unwrap_or_default();
        let proposal = self.plan(situation, &tiles);
        self.tiles = Some((revision, tiles));
        proposal
    }
}

impl Explorer {
    fn plan(&mut self, situation: Situation<'_>, tiles: &Tiles) -> Proposal {
        // A known goal is walked to, through the doors that lead to its
        // map: this is how known routes are reused.
        let goal = known_goal(situation.knowledge);
        if let (Some(goal), Some(checkpoint)) = (goal, situation.checkpoints.last())
            && let Some(directions) =
                plan_towards_goal(tiles, checkpoint, &goal, self.max_steps * 4)
        {
            return Proposal {
                experiment: Experiment {
                    id: situation.experiment,
                    start: StartState::Saved(checkpoint.state_file.clone()),
                    script: script_of(&directions),
                },
                target: None,
            };
        }

        let mut starts: Vec<&Checkpoint> = situation.checkpoints.iter().collect();
        // Deepest first, newest first among equals.
        starts.reverse();
        starts.sort_by_key(|checkpoint| std::cmp::Reverse(checkpoint.depth));

        for checkpoint in starts {
            let plan = plan_to_frontier(
                tiles,
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

        // Nothing left to learn on these maps: go through the door to the
        // map least known, from the newest checkpoint.
        if let Some(checkpoint) = situation.checkpoints.last() {
            let through_door = plan_to_door(
                tiles,
                &checkpoint.location,
                checkpoint.position,
                self.max_steps * 2,
            );
            if let Some(directions) = through_door {
                return Proposal {
                    experiment: Experiment {
                        id: situation.experiment,
                        start: StartState::Saved(checkpoint.state_file.clone()),
                        script: script_of(&directions),
                    },
                    target: None,
                };
            }
        }

        // Nothing known to go to: wander, a different way each time.
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

/// Per map, the tiles whose nature is known; ordered maps, so that plans
/// do not depend on hash order and runs are reproducible.
type Tiles = BTreeMap<String, BTreeMap<Position, Known>>;

#[derive(Debug, Clone, PartialEq, Eq)]
enum Known {
    Walkable,
    Blocked,
    /// Walking onto it leaves the map, for the named one; walks never pass
    /// through it.
    Door(String),
}

fn known_tiles(knowledge: &Knowledge) -> Tiles {
    let mut tiles: Tiles = BTreeMap::new();
    for (topic, belief) in knowledge.beliefs_of(&Kind::TILE) {
        let known = match belief.payload {
            Payload::Tile { blocked: false } => Known::Walkable,
            Payload::Tile { blocked: true } => Known::Blocked,
            Payload::Door { to } => Known::Door(to),
            _ => continue,
        };
        let Some((map, position)) = parse_tile_key(&topic.key) else {
            continue;
        };
        // Look up before inserting: most tiles are on a map already seen,
        // and `entry` would allocate its name every time.
        match tiles.get_mut(map) {
            Some(on_map) => {
                on_map.insert(position, known);
            }
            None => {
                tiles.insert(map.to_owned(), BTreeMap::from([(position, known)]));
            }
        }
    }
    tiles
}

/// The goal's map and tile, if any worker has reached it.
fn known_goal(knowledge: &Knowledge) -> Option<(String, Position)> {
    match knowledge.belief(&crate::learning::Topic::goal())?.payload {
        Payload::Place { map, x, y } => Some((map, Position { x, y })),
        _ => None,
    }
}

/// A walk from `checkpoint` onto the goal if it is on the same map, or
/// through the door that starts the shortest chain of known doors to the
/// goal's map.
fn plan_towards_goal(
    tiles: &Tiles,
    checkpoint: &Checkpoint,
    goal: &(String, Position),
    max_steps: usize,
) -> Option<Vec<Direction>> {
    let (goal_map, goal_position) = goal;
    if checkpoint.location == *goal_map {
        return walk(
            tiles,
            goal_map,
            checkpoint.position,
            max_steps,
            |position, known| {
                position == *goal_position && matches!(known, Some(Known::Walkable) | None)
            },
        );
    }

    // The next map on the shortest chain of known doors to the goal's map.
    let mut previous: BTreeMap<&str, &str> = BTreeMap::new();
    let mut queue = VecDeque::from([checkpoint.location.as_str()]);
    while let Some(map) = queue.pop_front() {
        if map == goal_map {
            break;
        }
        for known in tiles.get(map).into_iter().flat_map(BTreeMap::values) {
            if let Known::Door(to) = known
                && to != &checkpoint.location
                && !previous.contains_key(to.as_str())
            {
                previous.insert(to, map);
                queue.push_back(to);
            }
        }
    }
    let mut next = goal_map.as_str();
    while let Some(before) = previous.get(next) {
        if *before == checkpoint.location {
            return walk(
                tiles,
                &checkpoint.location,
                checkpoint.position,
                max_steps,
                |_, known| matches!(known, Some(Known::Door(to)) if to == next),
            );
        }
        next = before;
    }
    None
}

/// The shortest walk over known-walkable tiles from `from` whose last step
/// enters a tile `is_target` accepts.
fn walk(
    tiles: &Tiles,
    map: &str,
    from: Position,
    max_steps: usize,
    is_target: impl Fn(Position, Option<&Known>) -> bool,
) -> Option<Vec<Direction>> {
    let empty = BTreeMap::new();
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
            if is_target(next, known.get(&next)) {
                let mut directions = vec![direction];
                let mut cursor = position;
                while let Some((before, step)) = previous.get(&cursor) {
                    directions.push(*step);
                    cursor = *before;
                }
                directions.reverse();
                return Some(directions);
            }
            if known.get(&next) == Some(&Known::Walkable) {
                previous.insert(next, (position, direction));
                queue.push_back((next, distance + 1));
            }
        }
    }
    None
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

/// The shortest walk over known-walkable tiles from `from` through a door
/// to another map, preferring the map with the fewest known tiles (and,
/// among those, the nearest door).
fn plan_to_door(
    tiles: &Tiles,
    map: &str,
    from: Position,
    max_steps: usize,
) -> Option<Vec<Direction>> {
    let mut by_known: BTreeMap<usize, BTreeSet<&str>> = BTreeMap::new();
    for known in tiles.get(map)?.values() {
        if let Known::Door(to) = known
            && to != map
        {
            let n_known = tiles.get(to).map_or(0, BTreeMap::len);
            by_known.entry(n_known).or_default().insert(to);
        }
    }
    by_known.values().find_map(|destinations| {
        walk(
            tiles,
            map,
            from,
            max_steps,
            |_, known| matches!(known, Some(Known::Door(to)) if destinations.contains(to.as_str())),
        )
    })
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
    let directions = walk(tiles, map, from, max_steps, |position, known| {
        known.is_none() && !claimed.contains(&(map.to_owned(), position))
    })?;
    let target = directions
        .iter()
        .fold(from, |position, direction| position.step(*direction));
    Some((directions, target))
}

fn script_of(directions: &[Direction]) -> Script {
    let words: Vec<String> = directions
        .iter()
        .map(|direction| direction.key().to_string())
        .collect();
    Script::parse(&words.join(" ")).expect("direction names form a valid script")
}
