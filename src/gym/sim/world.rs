//! The simulated world: a few maps of walls, floor, grass and doors, and a
//! goal, generated from a seed. The same seed always gives the same world.

use std::collections::VecDeque;

use rand::rngs::ChaCha8Rng;
use rand::{RngExt as _, SeedableRng as _};

use crate::gym::wire::{Direction, Position};

/// One tile of a map.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Tile {
    /// Walkable ground.
    Floor,
    /// Blocks movement.
    Wall,
    /// Walkable; each step may start an encounter that costs frames.
    Grass,
    /// Walking onto it warps to another map.
    Door {
        /// The map warped to.
        to_map: usize,
        /// Where the player appears there.
        to: Position,
    },
    /// The end of the world: reaching it is the run's goal.
    Goal,
}

impl Tile {
    /// Returns true if and only if the player can stand on the tile.
    pub fn is_walkable(self) -> bool {
        !matches!(self, Tile::Wall)
    }
}

/// One map.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Map {
    /// Its name, as the server reports `location` (`PALLET TOWN`).
    pub name: &'static str,
    /// Columns.
    pub width: i32,
    /// Rows.
    pub height: i32,
    tiles: Vec<Tile>,
}

impl Map {
    /// The tile at `position`; outside the map is a wall.
    pub fn tile(&self, position: Position) -> Tile {
        match self.index(position) {
            Some(index) => self.tiles[index],
            None => Tile::Wall,
        }
    }

    fn set(&mut self, position: Position, tile: Tile) {
        if let Some(index) = self.index(position) {
            self.tiles[index] = tile;
        }
    }

    fn index(&self, position: Position) -> Option<usize> {
        let inside =
            (0..self.width).contains(&position.x) && (0..self.height).contains(&position.y);
        inside.then(|| (position.y * self.width + position.x) as usize)
    }

    fn is_border(&self, position: Position) -> bool {
        position.x == 0
            || position.y == 0
            || position.x == self.width - 1
            || position.y == self.height - 1
    }
}

/// The maps and where a fresh game starts.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct World {
    /// The maps; a fresh game starts on the first, the goal is on the last.
    pub maps: Vec<Map>,
    /// Where a fresh game starts on the first map.
    pub start: Position,
    /// The seed the world was generated from.
    pub seed: u64,
}

const MAP_NAMES: [&str; 4] = ["PALLET TOWN", "ROUTE 1", "VIRIDIAN CITY", "VIRIDIAN FOREST"];
const MAP_WIDTH: i32 = 20;
const MAP_HEIGHT: i32 = 16;

impl World {
    /// Generates the world for `seed`.
    ///
    /// Each map has a wall border, scattered walls and grass, a door on to
    /// the next map and one back; the last map holds the goal. A corridor is
    /// carved wherever scattering cut the arrival point off from a door or
    /// the goal (through the fewest walls), so every map is crossable.
    pub fn generate(seed: u64) -> World {
        let mut rng = ChaCha8Rng::seed_from_u64(seed);
        let mut maps: Vec<Map> = MAP_NAMES
            .iter()
            .enumerate()
            .map(|(map_idx, name)| scatter(name, map_idx, &mut rng))
            .collect();

        let interior = |rng: &mut ChaCha8Rng| Position {
            x: rng.random_range(2..MAP_WIDTH - 2),
            y: rng.random_range(2..MAP_HEIGHT - 2),
        };
        let start = interior(&mut rng);
        maps[0].set(start, Tile::Floor);

        // Doors: forward from each map, back from the next. `arrivals[i]`
        // is where the player appears on map i.
        let n_maps = maps.len();
        let mut arrivals = vec![start; n_maps];
        let mut targets: Vec<Vec<Position>> = vec![Vec::new(); n_maps];
        let mut forward_doors = Vec::with_capacity(n_maps - 1);
        for map_idx in 0..n_maps - 1 {
            let forward = distinct(&mut rng, &[arrivals[map_idx]], interior);
            let back = distinct(&mut rng, &[], interior);
            let arrival = next_to(&maps[map_idx + 1], back);
            arrivals[map_idx + 1] = arrival;
            forward_doors.push((forward, back));
            targets[map_idx].push(forward);
            targets[map_idx + 1].push(back);
        }
        let goal = distinct(&mut rng, &[arrivals[n_maps - 1]], interior);
        targets[n_maps - 1].push(goal);

        for (map_idx, (forward, back)) in forward_doors.into_iter().enumerate() {
            let back_arrival = next_to(&maps[map_idx], forward);
            maps[map_idx].set(
                forward,
                Tile::Door {
                    to_map: map_idx + 1,
                    to: arrivals[map_idx + 1],
                },
            );
            maps[map_idx + 1].set(
                back,
                Tile::Door {
                    to_map: map_idx,
                    to: back_arrival,
                },
            );
            for (map, arrival) in [
                (map_idx, back_arrival),
                (map_idx + 1, arrivals[map_idx + 1]),
            ] {
                if !matches!(maps[map].tile(arrival), Tile::Door { .. }) {
                    maps[map].set(arrival, Tile::Floor);
                }
            }
        }
        maps[n_maps - 1].set(goal, Tile::Goal);

        for (map, (arrival, targets)) in maps.iter_mut().zip(arrivals.iter().zip(&targets)) {
            for target in targets {
                if !reachable(map, *arrival, *target) {
                    carve(map, *arrival, *target);
                }
            }
        }

        World { maps, start, seed }
    }

    /// The position of the goal on the last map.
    pub fn goal(&self) -> Position {
        let last = self.maps.last().expect("a world has maps");
        (0..last.height)
            .flat_map(|y| (0..last.width).map(move |x| Position { x, y }))
            .find(|position| last.tile(*position) == Tile::Goal)
            .expect("the last map holds the goal")
    }
}

fn scatter(name: &'static str, map_idx: usize, rng: &mut ChaCha8Rng) -> Map {
    let mut map = Map {
        name,
        width: MAP_WIDTH,
        height: MAP_HEIGHT,
        tiles: vec![Tile::Floor; (MAP_WIDTH * MAP_HEIGHT) as usize],
    };
    // Towns have little grass; routes and the forest have more.
    let grass_rate = if map_idx % 2 == 1 { 0.25 } else { 0.05 };
    for y in 0..MAP_HEIGHT {
        for x in 0..MAP_WIDTH {
            let position = Position { x, y };
            let tile = match () {
                () if map.is_border(position) => Tile::Wall,
                () if rng.random_bool(0.2) => Tile::Wall,
                () if rng.random_bool(grass_rate) => Tile::Grass,
                () => Tile::Floor,
            };
            map.set(position, tile);
        }
    }
    map
}

/// Draws positions until one differs from every position in `taken`.
fn distinct(
    rng: &mut ChaCha8Rng,
    taken: &[Position],
    draw: impl Fn(&mut ChaCha8Rng) -> Position,
) -> Position {
    loop {
        let position = draw(rng);
        if !taken.contains(&position) {
            return position;
        }
    }
}

/// An interior neighbour of `door` to arrive on.
fn next_to(map: &Map, door: Position) -> Position {
    [
        Direction::Down,
        Direction::Right,
        Direction::Up,
        Direction::Left,
    ]
    .into_iter()
    .map(|direction| door.step(direction))
    .find(|position| !map.is_border(*position))
    .unwrap_or(door)
}

fn reachable(map: &Map, from: Position, to: Position) -> bool {
    let mut seen = vec![false; map.tiles.len()];
    let mut queue = VecDeque::from([from]);
    while let Some(position) = queue.pop_front() {
        if position == to {
            return true;
        }
        let Some(index) = map.index(position) else {
            continue;
        };
        if seen[index] {
            continue;
        }
        seen[index] = true;
        for direction in [
            Direction::Up,
            Direction::Down,
            Direction::Left,
            Direction::Right,
        ] {
            let next = position.step(direction);
            // Doors other than the target warp away, so they are not paths.
            let passable = next == to || matches!(map.tile(next), Tile::Floor | Tile::Grass);
            if passable {
                queue.push_back(next);
            }
        }
    }
    false
}

/// Opens a corridor from `from` to `to` through the fewest walls, never
/// through the border or another door.
fn carve(map: &mut Map, from: Position, to: Position) {
    // A 0-1 breadth-first search: entering a wall costs one, anything else
    // walkable costs nothing.
    let n_tiles = map.tiles.len();
    let mut cost = vec![usize::MAX; n_tiles];
    let mut previous: Vec<Option<Position>> = vec![None; n_tiles];
    let mut queue = VecDeque::from([from]);
    let Some(start) = map.index(from) else { return };
    cost[start] = 0;
    while let Some(position) = queue.pop_front() {
        let here = cost[map.index(position).expect("queued positions are inside")];
        for direction in [
            Direction::Up,
            Direction::Down,
            Direction::Left,
            Direction::Right,
        ] {
            let next = position.step(direction);
            let Some(index) = map.index(next) else {
                continue;
            };
            let step_cost = match map.tile(next) {
                _ if next == to => 0,
                _ if map.is_border(next) => continue,
                Tile::Door { .. } => continue,
                Tile::Wall => 1,
                Tile::Floor | Tile::Grass | Tile::Goal => 0,
            };
            if here + step_cost < cost[index] {
                cost[index] = here + step_cost;
                previous[index] = Some(position);
                match step_cost {
                    0 => queue.push_front(next),
                    _ => queue.push_back(next),
                }
            }
        }
    }

    let mut position = to;
    while let Some(before) = map.index(position).and_then(|index| previous[index]) {
        if map.tile(position) == Tile::Wall {
            map.set(position, Tile::Floor);
        }
        position = before;
    }
}
