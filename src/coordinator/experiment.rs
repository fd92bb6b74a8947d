//! Experiments and what they show: a start state plus a script, run by a
//! worker on one server, and the outcome turned into discoveries.

use std::fmt;

use crate::coordinator::script::{Script, Step};
use crate::gym::wire::{Direction, GameState, Position};
use crate::learning::{DiscoveryDraft, Payload, Priority, Topic};

/// An experiment's id, unique within a run.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct ExperimentId(pub u64);

impl fmt::Display for ExperimentId {
    fn fmt(&self, formatter: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(formatter, "experiment-{}", self.0)
    }
}

/// Where an experiment starts.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum StartState {
    /// A fresh game.
    Fresh,
    /// A save state, by the name the server returned for it.
    Saved(String),
}

/// A start state and the inputs to try from it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Experiment {
    /// Its id.
    pub id: ExperimentId,
    /// Where it starts.
    pub start: StartState,
    /// What it presses.
    pub script: Script,
}

/// Where the player was and what the screen said, after one action.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Observation {
    /// The map's name.
    pub location: String,
    /// The player's tile.
    pub position: Position,
    /// The directions the player could walk in.
    pub valid_moves: Vec<Direction>,
    /// The text on screen.
    pub dialog: Option<String>,
    /// Badges earned so far; earning one is the run's goal.
    pub badges: usize,
}

impl From<&GameState> for Observation {
    fn from(state: &GameState) -> Observation {
        Observation {
            location: state.location.clone(),
            position: state.coordinates,
            valid_moves: state.valid_moves.clone(),
            dialog: state.dialog.clone(),
            badges: state.badges.len(),
        }
    }
}

impl Observation {
    /// Returns true if and only if the screen shows a wild encounter.
    pub fn is_encounter(&self) -> bool {
        self.dialog
            .as_deref()
            .is_some_and(|dialog| dialog.starts_with("Wild "))
    }
}

/// What running an experiment showed.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Outcome {
    /// The experiment.
    pub experiment: ExperimentId,
    /// Where it started.
    pub start: Observation,
    /// One observation per step taken, in order.
    pub observations: Vec<Observation>,
    /// The steps taken (a prefix of the script's if it failed).
    pub steps: Vec<Step>,
    /// Frames the server emulated for the steps taken.
    pub frames: u64,
    /// Why it stopped early, if it did.
    pub error: Option<String>,
}

impl Outcome {
    /// Where the experiment ended.
    pub fn end(&self) -> &Observation {
        self.observations.last().unwrap_or(&self.start)
    }

    /// How many steps it took to earn a new badge, if one was earned.
    pub fn steps_to_goal(&self) -> Option<usize> {
        self.observations
            .iter()
            .position(|observation| observation.badges > self.start.badges)
            .map(|index| index + 1)
    }

    /// Wild encounters met.
    pub fn encounters(&self) -> usize {
        self.observations
            .iter()
            .filter(|observation| observation.is_encounter())
            .count()
    }

    /// Turns what the experiment showed into discovery drafts: each tile
    /// walked onto is walkable, each tile bumped into is blocked, and the
    /// whole walk is a route from start to end with its frame cost. A step
    /// that lands on another map shows a door.
    pub fn discoveries(&self) -> Vec<DiscoveryDraft> {
        let mut drafts = Vec::new();
        let mut before = &self.start;
        for (step, after) in self.steps.iter().zip(&self.observations) {
            let direction = match step {
                Step::Press(key) => key.direction(),
                Step::Wait(_) => None,
            };
            if let Some(direction) = direction {
                let target = before.position.step(direction);
                let topic = Topic::tile(&before.location, target.x, target.y);
                let payload = match before.location == after.location {
                    // A step that changed maps found a door; every worker
                    // should know where it leads.
                    false => Some(Payload::Door {
                        to: after.location.clone(),
                    }),
                    true if after.position == target => Some(Payload::Tile { blocked: false }),
                    true if after.position == before.position && after.dialog.is_none() => {
                        Some(Payload::Tile { blocked: true })
                    }
                    true => None,
                };
                if let Some(payload) = payload {
                    let priority = match payload {
                        Payload::Door { .. } => Priority::High,
                        _ => Priority::Normal,
                    };
                    drafts.push(observation_draft(topic, payload, priority));
                }
            }
            before = after;
        }

        if let Some(steps) = self.steps_to_goal() {
            let goal = &self.observations[steps - 1];
            let place = Payload::Place {
                map: goal.location.clone(),
                x: goal.position.x,
                y: goal.position.y,
            };
            drafts.push(observation_draft(Topic::goal(), place, Priority::Critical));
        }

        let end = self.end();
        let moved_at_all =
            end.location != self.start.location || end.position != self.start.position;
        if self.error.is_none() && moved_at_all {
            let topic = Topic::route(
                (
                    &self.start.location,
                    self.start.position.x,
                    self.start.position.y,
                ),
                (&end.location, end.position.x, end.position.y),
            );
            let payload = Payload::Route {
                script: steps_text(&self.steps),
                frames: self.frames,
            };
            // A new map is worth telling every worker about first.
            let priority = match end.location != self.start.location {
                true => Priority::High,
                false => Priority::Normal,
            };
            drafts.push(observation_draft(topic, payload, priority));
        }
        drafts
    }
}

/// A draft for something seen once: sure of what was seen, one sample.
fn observation_draft(topic: Topic, payload: Payload, priority: Priority) -> DiscoveryDraft {
    DiscoveryDraft {
        topic,
        payload,
        confidence: 0.9,
        success_rate: 1.0,
        samples: 1,
        priority,
        checkpoint: None,
    }
}

/// The steps as script text, one item per step.
fn steps_text(steps: &[Step]) -> String {
    let words: Vec<String> = steps.iter().map(Step::to_string).collect();
    words.join(" ")
}
