//! Conflict resolution: every strategy's merge is a join-semilattice, so
//! replicas converge whatever the delivery order.

use gymfleet::learning::{Discovery, Knowledge, Strategy as Resolution};
use gymfleet_harness::prop::{self, PropertyFailure};
use proptest::prelude::*;
use proptest::strategy::Strategy;

use crate::learning::support::{discoveries, knowledge, merged, strategy};

/// Splits one list of discoveries (ids are unique within it) into `n`
/// overlapping parts, as replicas that saw some of the same discoveries.
fn parts(n: usize, max_len: usize) -> impl Strategy<Value = Vec<Vec<Discovery>>> {
    discoveries(max_len).prop_flat_map(move |list| {
        let masks = proptest::collection::vec(0u8..(1 << n), list.len());
        (Just(list), masks).prop_map(move |(list, masks)| {
            (0..n)
                .map(|part| {
                    list.iter()
                        .zip(&masks)
                        .filter(|(_, mask)| *mask & (1 << part) != 0)
                        .map(|(discovery, _)| discovery.clone())
                        .collect()
                })
                .collect()
        })
    })
}

#[gymfleet_harness::test]
fn merge_is_commutative_for_every_strategy() -> Result<(), PropertyFailure> {
    prop::check((strategy(), parts(2, 48)), |(strategy, parts)| {
        let (a, b) = (knowledge(strategy, &parts[0]), knowledge(strategy, &parts[1]));
        prop_assert_eq!(merged(&a, &b), merged(&b, &a));
        Ok(())
    })
}

#[gymfleet_harness::test]
fn merge_is_associative_for_every_strategy() -> Result<(), PropertyFailure> {
    prop::check((strategy(), parts(3, 48)), |(strategy, parts)| {
        let [a, b, c] = [0, 1, 2].map(|part| knowledge(strategy, &parts[part]));
        prop_assert_eq!(merged(&merged(&a, &b), &c), merged(&a, &merged(&b, &c)));
        Ok(())
    })
}

#[gymfleet_harness::test]
fn merge_is_idempotent_for_every_strategy() -> Result<(), PropertyFailure> {
    prop::check((strategy(), discoveries(24)), |(strategy, list)| {
        let a = knowledge(strategy, &list);
        prop_assert_eq!(merged(&a, &a), a.clone());
        // Delivering every discovery again changes nothing either.
        let mut again = a.clone();
        for discovery in &list {
            prop_assert!(!again.insert(discovery.clone()).changed);
        }
        prop_assert_eq!(again, a);
        Ok(())
    })
}

/// The same multiset delivered three ways: shuffled, duplicated and
/// reversed, and as partial replicas merged in a shuffled order.
#[gymfleet_harness::test]
fn replicas_converge_whatever_the_delivery_order() -> Result<(), PropertyFailure> {
    let case = (strategy(), discoveries(32)).prop_flat_map(|(strategy, list)| {
        let shuffled = Just(list.clone()).prop_shuffle();
        let chunk_order = Just((0..4usize).collect::<Vec<_>>()).prop_shuffle();
        (Just(strategy), Just(list), shuffled, chunk_order)
    });
    prop::check(case, |(strategy, list, shuffled, chunk_order)| {
        let in_order = knowledge(strategy, &list);
        let from_shuffled = knowledge(strategy, &shuffled);

        let mut duplicated: Vec<Discovery> = list.iter().rev().cloned().collect();
        duplicated.extend(shuffled.iter().step_by(2).cloned());
        let from_duplicates = knowledge(strategy, &duplicated);

        let chunks: Vec<Knowledge> = (0..4)
            .map(|chunk_idx| {
                let part: Vec<Discovery> = shuffled.iter().skip(chunk_idx).step_by(4).cloned().collect();
                knowledge(strategy, &part)
            })
            .collect();
        let mut from_replicas = Knowledge::new(strategy);
        for chunk_idx in chunk_order {
            from_replicas.merge(&chunks[chunk_idx]).expect("the same strategy");
        }

        for other in [&from_shuffled, &from_duplicates, &from_replicas] {
            prop_assert_eq!(&in_order, other);
            let beliefs: Vec<_> = in_order.beliefs().collect();
            let other_beliefs: Vec<_> = other.beliefs().collect();
            prop_assert_eq!(beliefs, other_beliefs);
        }
        Ok(())
    })
}

/// Every insert, new or repeated, in any order, says exactly what it did:
/// whether the state changed, whether the discovery disagreed with the
/// belief before it, and whether the believed payload changed.
#[gymfleet_harness::test]
fn an_insertion_reports_exactly_what_it_changed() -> Result<(), PropertyFailure> {
    prop::check((strategy(), discoveries(32)), |(strategy, list)| {
        let mut knowledge = Knowledge::new(strategy);
        for discovery in list.iter().chain(list.iter().step_by(3)) {
            let before = knowledge.clone();
            let believed_before = before.belief(discovery.topic()).map(|belief| belief.payload);
            let insertion = knowledge.insert(discovery.clone());
            let believed_after = knowledge.belief(discovery.topic()).map(|belief| belief.payload);

            prop_assert_eq!(insertion.changed, knowledge != before);
            let disagrees = believed_before.as_ref().is_some_and(|payload| payload != discovery.payload());
            prop_assert_eq!(insertion.conflicts, disagrees);
            prop_assert_eq!(insertion.belief_changed, believed_before != believed_after);
        }
        Ok(())
    })
}

/// Knowledge read back from its serialized form is equal to it, and files
/// every discovery it knew under the topic it had.
#[gymfleet_harness::test]
fn knowledge_read_back_from_json_is_the_same_knowledge() -> Result<(), PropertyFailure> {
    prop::check((strategy(), discoveries(24)), |(strategy, mut list)| {
        // serde_json may read a float back one unit in the last place off;
        // that is about JSON, not knowledge, so keep exact numbers only.
        list.retain(|discovery| {
            let json = serde_json::to_string(discovery).expect("a discovery serializes");
            serde_json::from_str::<Discovery>(&json).is_ok_and(|read_back| read_back == *discovery)
        });
        let original = knowledge(strategy, &list);
        let json = serde_json::to_string(&original).expect("knowledge serializes");
        let mut read_back: Knowledge = serde_json::from_str(&json).expect("and reads back");
        prop_assert_eq!(&read_back, &original);
        for discovery in &list {
            prop_assert!(!read_back.insert(discovery.clone()).changed);
        }
        prop_assert_eq!(read_back.len(), original.len());
        Ok(())
    })
}

#[gymfleet_harness::test]
fn serialized_knowledge_that_lists_a_topic_twice_is_refused() -> anyhow::Result<()> {
    use anyhow::Context;

    let discovery = crate::learning::support::draft()
        .finish(gymfleet::learning::DiscoveryId { wall_ms: 0, worker: gymfleet::learning::WorkerId(0), sequence: 0 })?;
    let mut json = serde_json::to_value(knowledge(Resolution::Consensus, &[discovery]))?;
    let topics = json["topics"].as_array_mut().context("a list of topics")?;
    topics.push(topics[0].clone());

    let refused = serde_json::from_value::<Knowledge>(json).expect_err("a topic listed twice");
    anyhow::ensure!(refused.to_string().contains("is listed twice"), "{refused}");
    Ok(())
}

#[gymfleet_harness::test]
fn beliefs_come_from_the_inputs_and_merged_confidence_stays_in_their_range() -> Result<(), PropertyFailure> {
    prop::check((strategy(), discoveries(24)), |(strategy, list)| {
        let knowledge = knowledge(strategy, &list);
        for (topic, belief) in knowledge.beliefs() {
            let inputs: Vec<&Discovery> = list.iter().filter(|d| d.topic() == topic).collect();
            prop_assert!(inputs.iter().any(|d| *d.payload() == belief.payload), "an invented payload");
            let supporters: Vec<&&Discovery> = inputs.iter().filter(|d| *d.payload() == belief.payload).collect();
            let low = supporters.iter().map(|d| d.confidence()).fold(f64::INFINITY, f64::min);
            let high = supporters.iter().map(|d| d.confidence()).fold(f64::NEG_INFINITY, f64::max);
            prop_assert!(
                (low..=high).contains(&belief.confidence),
                "{strategy:?}: confidence {} outside [{low}, {high}]",
                belief.confidence
            );
        }
        Ok(())
    })
}

#[gymfleet_harness::test]
fn each_strategy_picks_by_its_own_rule() -> anyhow::Result<()> {
    use gymfleet::learning::{DiscoveryDraft, DiscoveryId, Payload, WorkerId};

    let make = |sequence: u64, wall_ms: u64, script: &str, confidence: f64, samples: u32| {
        let draft = DiscoveryDraft {
            payload: Payload::Route { script: script.into(), frames: 10 },
            confidence,
            samples,
            ..crate::learning::support::draft()
        };
        draft.finish(DiscoveryId { wall_ms, worker: WorkerId(1), sequence })
    };
    // "a": one very confident sample; "b": the newest; "c": most samples.
    let list = [
        make(1, 10, "a", 0.99, 1)?,
        make(2, 30, "b", 0.40, 2)?,
        make(3, 20, "c", 0.60, 5)?,
        make(4, 15, "c", 0.70, 4)?,
    ];
    let topic = list[0].topic().clone();
    let believed = |strategy| {
        let belief = knowledge(strategy, &list).belief(&topic).expect("a belief");
        match belief.payload {
            Payload::Route { script, .. } => (script, belief.confidence, belief.samples),
            other => panic!("unexpected payload {other:?}"),
        }
    };
    anyhow::ensure!(believed(Resolution::HighestConfidence).0 == "a");
    anyhow::ensure!(believed(Resolution::LatestWins).0 == "b");
    let (script, confidence, votes) = believed(Resolution::Consensus);
    anyhow::ensure!(script == "c" && votes == 9 && confidence == 0.7, "{script} {confidence} {votes}");
    let (script, confidence, _) = believed(Resolution::WeightedMerge);
    let expected = (0.6 * 5.0 + 0.7 * 4.0) / 9.0;
    anyhow::ensure!(script == "c" && (confidence - expected).abs() < 1e-12, "{script} {confidence}");
    Ok(())
}

#[gymfleet_harness::test]
fn knowledge_under_another_strategy_is_refused_not_mixed() {
    let mut ours = Knowledge::new(Resolution::Consensus);
    let theirs = Knowledge::new(Resolution::LatestWins);
    assert!(ours.merge(&theirs).is_err());
}

#[gymfleet_harness::test]
fn beliefs_of_a_kind_are_exactly_those_topics() -> anyhow::Result<()> {
    use gymfleet::learning::{DiscoveryDraft, DiscoveryId, Kind, Payload, Topic, WorkerId};

    let mut knowledge = Knowledge::new(Resolution::Consensus);
    let topics = [
        Topic::tile("A", 1, 1),
        Topic::route(("A", 1, 1), ("B", 2, 2)),
        Topic::tile("B", 0, 0),
        Topic::goal(),
    ];
    for (sequence, topic) in topics.into_iter().enumerate() {
        let draft = DiscoveryDraft {
            topic,
            payload: Payload::Tile { blocked: false },
            ..crate::learning::support::draft()
        };
        knowledge.insert(draft.finish(DiscoveryId { wall_ms: 0, worker: WorkerId(0), sequence: sequence as u64 })?);
    }
    for kind in [Kind::TILE, Kind::ROUTE, Kind::GOAL, Kind::BATTLE] {
        let expected: Vec<_> = knowledge.beliefs().filter(|(topic, _)| topic.kind == kind).collect();
        let of_kind: Vec<_> = knowledge.beliefs_of(&kind).collect();
        anyhow::ensure!(of_kind == expected, "{kind}: {of_kind:?} != {expected:?}");
    }
    anyhow::ensure!(knowledge.beliefs_of(&Kind::TILE).count() == 2);
    Ok(())
}

/// A topic with many contributors (past what small votes keep in a plain
/// list) converges like a small one: inserted in id order, in reverse, or
/// nearly in order, merged from two halves, and read back from JSON.
#[gymfleet_harness::test]
fn a_vote_with_hundreds_of_contributors_converges_whatever_the_order() -> anyhow::Result<()> {
    use gymfleet::learning::{DiscoveryDraft, DiscoveryId, Payload, WorkerId};

    let list: Vec<Discovery> = (0..300u64)
        .map(|sequence| {
            let draft = DiscoveryDraft {
                payload: Payload::Route { script: format!("up*{}", sequence % 4 + 1), frames: 130 },
                samples: (sequence % 5) as u32 + 1,
                ..crate::learning::support::draft()
            };
            draft.finish(DiscoveryId { wall_ms: sequence / 7, worker: WorkerId((sequence % 3) as u32), sequence })
        })
        .collect::<Result<_, _>>()?;
    for strategy in [Resolution::Consensus, Resolution::WeightedMerge] {
        let in_order = knowledge(strategy, &list);
        let reversed: Vec<Discovery> = list.iter().rev().cloned().collect();
        // Blocks of ten reversed: each newcomer lands a few places before
        // the end, as discoveries from workers a moment apart do.
        let nearly_in_order: Vec<Discovery> =
            list.chunks(10).flat_map(|block| block.iter().rev().cloned()).collect();
        let (first, second) = list.split_at(137);
        let halves = merged(&knowledge(strategy, second), &knowledge(strategy, first));
        anyhow::ensure!(knowledge(strategy, &reversed) == in_order, "{strategy:?}: reversed");
        anyhow::ensure!(
            knowledge(strategy, &nearly_in_order) == in_order,
            "{strategy:?}: nearly in order"
        );
        anyhow::ensure!(halves == in_order, "{strategy:?}: merged halves");
        let topic = list[0].topic();
        anyhow::ensure!(in_order.discoveries(topic).len() == 300);
        anyhow::ensure!(halves.belief(topic) == in_order.belief(topic));
        let read_back: Knowledge = serde_json::from_str(&serde_json::to_string(&in_order)?)?;
        anyhow::ensure!(read_back == in_order, "{strategy:?}: read back from JSON");
    }
    Ok(())
}
