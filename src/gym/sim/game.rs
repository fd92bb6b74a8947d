//! One simulated game: the rules of moving through the world, and the game
//! state in the real server's wire shape.

use std::collections::BTreeSet;
use std::sync::Arc;

use rand::rngs::ChaCha8Rng;
use rand::{RngExt as _, SeedableRng as _};

use crate::gym::sim::world::{Tile, World};
use crate::gym::wire::{Action, Direction, GameState, HitPoints, Key, Move, Pokemon, Position};

/// Frames a wild encounter adds to the step that started it.
pub const ENCOUNTER_FRAMES: u64 = 600;

/// The chance that a step on grass starts an encounter.
pub const ENCOUNTER_RATE: f64 = 0.15;

const WILD_SPECIES: [&str; 4] = ["PIDGEY", "RATTATA", "CATERPIE", "WEEDLE"];

/// A running game. Cloning it is how save states are taken.
#[derive(Debug, Clone)]
pub struct Game {
    world: Arc<World>,
    map_idx: usize,
    position: Position,
    facing: Direction,
    step_number: u64,
    frames: u64,
    encounters: u64,
    visited: BTreeSet<usize>,
    dialog: Option<String>,
    reached_goal: bool,
    /// Steps taken on grass; with the world's seed it decides each
    /// encounter, so the same inputs always give the same game.
    grass_steps: u64,
}

impl Game {
    /// A fresh game at the world's start.
    pub fn new(world: Arc<World>) -> Game {
        Game {
            position: world.start,
            world,
            map_idx: 0,
            facing: Direction::Down,
            step_number: 0,
            frames: 0,
            encounters: 0,
            visited: BTreeSet::from([0]),
            dialog: None,
            reached_goal: false,
            grass_steps: 0,
        }
    }

    /// Takes one action: each key in turn, or a wait.
    pub fn act(&mut self, action: &Action) {
        self.step_number += 1;
        self.dialog = None;
        match action {
            Action::PressKeys(keys) => {
                for key in keys {
                    self.press(*key);
                }
            }
            Action::Wait(frames) => self.frames += u64::from(frames.get()),
        }
    }

    /// Frames emulated since the game started.
    pub fn frames(&self) -> u64 {
        self.frames
    }

    /// Wild encounters so far.
    pub fn encounters(&self) -> u64 {
        self.encounters
    }

    /// Returns true if and only if the player has stood on the goal.
    pub fn reached_goal(&self) -> bool {
        self.reached_goal
    }

    /// Actions taken.
    pub fn step_number(&self) -> u64 {
        self.step_number
    }

    /// The score the server reports: one point per map visited, ten for the
    /// goal.
    pub fn score(&self) -> f64 {
        self.visited.len() as f64 + if self.reached_goal { 10.0 } else { 0.0 }
    }

    /// The names of the maps visited, with underscores as `/evaluate` and
    /// `/stop` report them.
    pub fn locations_visited(&self) -> Vec<String> {
        self.visited
            .iter()
            .map(|map_idx| self.world.maps[*map_idx].name.replace(' ', "_"))
            .collect()
    }

    /// The badges earned: reaching the goal earns one.
    pub fn badges(&self) -> Vec<String> {
        match self.reached_goal {
            true => vec!["BOULDER".to_owned()],
            false => Vec::new(),
        }
    }

    /// The game as the server reports it.
    pub fn state(&self) -> GameState {
        let map = &self.world.maps[self.map_idx];
        let valid_moves = [
            Direction::Up,
            Direction::Down,
            Direction::Left,
            Direction::Right,
        ]
        .into_iter()
        .filter(|direction| map.tile(self.position.step(*direction)).is_walkable())
        .collect();
        GameState {
            player_name: "RED".to_owned(),
            rival_name: "BLUE".to_owned(),
            money: 3000,
            location: map.name.to_owned(),
            coordinates: self.position,
            badges: self.badges(),
            valid_moves,
            inventory: Vec::new(),
            dialog: self.dialog.clone(),
            pokemons: vec![starter()],
            screenshot_base64: String::new(),
            collision_map: Some(self.collision_map()),
            step_number: self.step_number,
            execution_time: 0.0,
            score: self.score(),
        }
    }

    fn press(&mut self, key: Key) {
        self.frames += crate::gym::wire::FRAMES_PER_KEY_PRESS;
        let Some(direction) = key.direction() else {
            return;
        };
        self.facing = direction;
        let target = self.position.step(direction);
        match self.world.maps[self.map_idx].tile(target) {
            Tile::Wall => {}
            Tile::Floor => self.position = target,
            Tile::Grass => {
                self.position = target;
                self.grass_steps += 1;
                let seed = self.world.seed ^ self.grass_steps.wrapping_mul(0x9e37_79b9_7f4a_7c15);
                let mut rng = ChaCha8Rng::seed_from_u64(seed);
                if rng.random_bool(ENCOUNTER_RATE) {
                    let species = WILD_SPECIES[rng.random_range(0..WILD_SPECIES.len())];
                    self.encounters += 1;
                    self.frames += ENCOUNTER_FRAMES;
                    self.dialog = Some(format!("Wild {species} appeared!\nGot away safely!"));
                }
            }
            Tile::Door { to_map, to } => {
                self.map_idx = to_map;
                self.position = to;
                self.visited.insert(to_map);
            }
            Tile::Goal => {
                self.position = target;
                if !self.reached_goal {
                    self.reached_goal = true;
                    self.dialog = Some("You found the goal!".to_owned());
                }
            }
        }
    }

    /// The 9×10 text map around the player, in the real server's format:
    /// four rows above and below, four columns left and five right.
    fn collision_map(&self) -> String {
        let map = &self.world.maps[self.map_idx];
        let mut text = String::with_capacity(512);
        text.push_str("+----------+\n");
        for dy in -4..=4 {
            text.push('|');
            for dx in -4..=5 {
                let position = Position {
                    x: self.position.x + dx,
                    y: self.position.y + dy,
                };
                let symbol = match (dx, dy, map.tile(position)) {
                    (0, 0, _) => match self.facing {
                        Direction::Up => '↑',
                        Direction::Down => '↓',
                        Direction::Left => '←',
                        Direction::Right => '→',
                    },
                    (_, _, Tile::Wall) => '█',
                    _ => '·',
                };
                text.push(symbol);
            }
            text.push_str("|\n");
        }
        text.push_str(
            "+----------+\n\nLegend:\n█ - Wall/Obstacle\n· - Path/Walkable\nS - Sprite\n\
             ↑/↓/←/→ - Player (facing direction)",
        );
        text
    }
}

fn starter() -> Pokemon {
    Pokemon {
        nickname: "CHARMANDER".to_owned(),
        species: "CHARMANDER".to_owned(),
        level: 6,
        hp: HitPoints {
            current: 22,
            max: 22,
        },
        types: vec!["FIRE".to_owned()],
        moves: vec![
            Move {
                name: "SCRATCH".to_owned(),
                pp: 35,
            },
            Move {
                name: "GROWL".to_owned(),
                pp: 40,
            },
        ],
        status: None,
    }
}
