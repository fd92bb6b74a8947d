//! Discoveries are valid by construction: bad numbers and empty keys are
//! refused by field, never clamped.

use gymfleet::learning::{DiscoveryId, InvalidDiscovery, Topic, WorkerId};
use gymfleet_harness::prop::{self, PropertyFailure};
use proptest::prelude::*;

use crate::learning::support::draft;

fn id() -> DiscoveryId {
    DiscoveryId { wall_ms: 1, worker: WorkerId(0), sequence: 0 }
}

#[gymfleet_harness::test]
fn each_invalid_field_is_refused_by_name() {
    let refused = |change: fn(&mut gymfleet::learning::DiscoveryDraft)| {
        let mut draft = draft();
        change(&mut draft);
        draft.finish(id()).expect_err("the draft is invalid")
    };
    assert_eq!(refused(|d| d.confidence = f64::NAN), InvalidDiscovery::NotANumber { field: "confidence" });
    assert_eq!(
        refused(|d| d.success_rate = -0.1),
        InvalidDiscovery::OutOfRange { field: "success_rate", value: -0.1 }
    );
    assert_eq!(refused(|d| d.samples = 0), InvalidDiscovery::NoSamples);
    assert_eq!(refused(|d| d.topic = Topic { key: " ".into(), ..Topic::tile("A", 0, 0) }), InvalidDiscovery::EmptyKey);
    assert_eq!(
        refused(|d| d.confidence = 1.5).to_string(),
        "`confidence` must be in [0, 1], not 1.5"
    );
}

#[gymfleet_harness::test]
fn any_number_outside_the_unit_interval_is_refused_never_clamped() -> Result<(), PropertyFailure> {
    let outside = prop_oneof![
        Just(f64::NAN),
        Just(f64::INFINITY),
        Just(f64::NEG_INFINITY),
        (1.0f64..1e12).prop_filter("above one", |value| *value > 1.0),
        (-1e12f64..0.0).prop_filter("below zero", |value| *value < 0.0),
    ];
    prop::check((outside, any::<bool>()), |(value, on_confidence)| {
        let mut draft = draft();
        match on_confidence {
            true => draft.confidence = value,
            false => draft.success_rate = value,
        }
        prop_assert!(draft.finish(id()).is_err(), "{value} was accepted");
        Ok(())
    })
}

#[gymfleet_harness::test]
fn quality_grows_with_samples_and_stays_in_the_unit_interval() -> anyhow::Result<()> {
    let mut previous = 0.0;
    for samples in [1, 2, 5, 25, 1000] {
        let quality = gymfleet::learning::DiscoveryDraft { samples, ..draft() }.finish(id())?.quality();
        anyhow::ensure!(quality > previous && quality <= 1.0, "{samples} samples: {quality}");
        previous = quality;
    }
    Ok(())
}

#[gymfleet_harness::test]
fn ids_sort_by_time_then_worker_then_sequence() {
    let id = |wall_ms, worker, sequence| DiscoveryId { wall_ms, worker: WorkerId(worker), sequence };
    let mut ids = vec![id(2, 0, 0), id(1, 1, 5), id(1, 0, 9), id(1, 1, 4)];
    ids.sort();
    assert_eq!(ids, vec![id(1, 0, 9), id(1, 1, 4), id(1, 1, 5), id(2, 0, 0)]);
}

/// What the store keeps is the discovery's own fields, and what it reads
/// back is the same discovery, filed under the same topic as the original.
#[gymfleet_harness::test]
fn a_discovery_read_back_from_its_stored_form_is_the_same_discovery() -> anyhow::Result<()> {
    use anyhow::Context;
    use gymfleet::learning::{Discovery, Knowledge, Strategy};

    let discovery = draft().finish(id())?;
    let stored = serde_json::to_value(&discovery)?;
    let fields: Vec<&str> = stored.as_object().context("an object")?.keys().map(String::as_str).collect();
    let expected = ["checkpoint", "confidence", "id", "payload", "priority", "samples", "success_rate", "topic"];
    anyhow::ensure!(fields == expected, "stored fields {fields:?}");

    let read_back: Discovery = serde_json::from_value(stored)?;
    anyhow::ensure!(read_back == discovery);
    for strategy in Strategy::ALL {
        let mut knowledge = Knowledge::new(strategy);
        knowledge.insert(discovery.clone());
        anyhow::ensure!(!knowledge.insert(read_back.clone()).changed, "{strategy:?} filed it twice");
        anyhow::ensure!(knowledge.len() == 1);
    }
    Ok(())
}
