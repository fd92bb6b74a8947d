//! The built-in explorer: it heads for unknown tiles, walks around known
//! walls, leaves claimed tiles to others, and starts from the deepest
//! checkpoint.

use std::collections::BTreeSet;

use gymfleet::coordinator::{Checkpoint, Explorer, ExperimentId, Situation, StartState, Step, Strategy};
use gymfleet::gym::wire::{Direction, Key, Position};
use gymfleet::learning::{DiscoveryDraft, DiscoveryId, Knowledge, Payload, Priority, Strategy as Resolution, Topic, WorkerId};

const MAP: &str = "ROUTE 1";

fn checkpoint(name: &str, x: i32, y: i32, depth: usize) -> Checkpoint {
    Checkpoint { state_file: name.into(), location: MAP.into(), position: Position { x, y }, depth }
}

/// Knowledge of tiles on `MAP`: `#` blocked, `.` walkable, anything else
/// unknown; the top-left character is (0, 0).
fn knowledge(rows: &[&str]) -> Knowledge {
    let mut knowledge = Knowledge::new(Resolution::HighestConfidence);
    let mut sequence = 0;
    for (y, row) in rows.iter().enumerate() {
        for (x, tile) in row.chars().enumerate() {
            let blocked = match tile {
                '#' => true,
                '.' => false,
                _ => continue,
            };
            sequence += 1;
            let draft = DiscoveryDraft {
                topic: Topic::tile(MAP, x as i32, y as i32),
                payload: Payload::Tile { blocked },
                confidence: 0.9,
                success_rate: 1.0,
                samples: 1,
                priority: Priority::Normal,
                checkpoint: None,
            };
            knowledge.insert(draft.finish(DiscoveryId { wall_ms: 0, worker: WorkerId(0), sequence }).expect("valid"));
        }
    }
    knowledge
}

fn propose(knowledge: &Knowledge, checkpoints: &[Checkpoint], claimed: &BTreeSet<(String, Position)>) -> gymfleet::coordinator::Proposal {
    Explorer::default().propose(Situation {
        worker: WorkerId(1),
        experiment: ExperimentId(9),
        knowledge,
        checkpoints,
        claimed,
    })
}

fn directions(steps: &[Step]) -> Vec<Direction> {
    steps
        .iter()
        .map(|step| match step {
            Step::Press(key) => key.direction().expect("the explorer only walks"),
            Step::Wait(_) => panic!("the explorer does not wait"),
        })
        .collect()
}

#[gymfleet_harness::test]
fn with_nothing_known_it_steps_into_a_neighbouring_tile() {
    let proposal = propose(&Knowledge::new(Resolution::HighestConfidence), &[checkpoint("a", 5, 5, 1)], &BTreeSet::new());
    assert_eq!(proposal.experiment.start, StartState::Saved("a".into()));
    assert_eq!(proposal.experiment.script.steps(), [Step::Press(Key::Up)]);
    assert_eq!(proposal.target, Some((MAP.into(), Position { x: 5, y: 4 })));
}

#[gymfleet_harness::test]
fn it_walks_around_known_walls_to_the_nearest_unknown_tile() {
    // The worker stands at (1, 1), boxed in but for a corridor to the
    // right; the nearest unknown tile is past its end at (4, 2).
    let known = knowledge(&["#####", "#...#", "###.?", "  ###"]);
    let proposal = propose(&known, &[checkpoint("a", 1, 1, 1)], &BTreeSet::new());
    assert_eq!(
        directions(proposal.experiment.script.steps()),
        [Direction::Right, Direction::Right, Direction::Down, Direction::Right]
    );
    assert_eq!(proposal.target, Some((MAP.into(), Position { x: 4, y: 2 })));
}

#[gymfleet_harness::test]
fn a_tile_another_worker_claimed_is_left_to_it() {
    let known = knowledge(&["#####", "#...#", "#.#.#"]);
    let claimed = BTreeSet::from([(MAP.to_owned(), Position { x: 1, y: 3 })]);
    let proposal = propose(&known, &[checkpoint("a", 1, 1, 1)], &claimed);
    assert_eq!(proposal.target, Some((MAP.into(), Position { x: 3, y: 3 })));
}

#[gymfleet_harness::test]
fn the_deepest_checkpoint_is_explored_first_and_a_closed_region_makes_it_wander() {
    let enclosed = knowledge(&["###", "#.#", "###"]);
    let proposal = propose(&enclosed, &[checkpoint("deep", 1, 1, 3), checkpoint("shallow", 10, 10, 1)], &BTreeSet::new());
    // Nothing to learn from the deep one, so the shallow one is used.
    assert_eq!(proposal.experiment.start, StartState::Saved("shallow".into()));

    let proposal = propose(&enclosed, &[checkpoint("only", 1, 1, 1)], &BTreeSet::new());
    assert_eq!(proposal.target, None, "nothing reachable is unknown");
    assert!(!proposal.experiment.script.is_empty(), "it wanders rather than idling");
}
