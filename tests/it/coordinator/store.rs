//! The durable store: what is appended survives reopening, and a broken
//! store is an error that names its file.

use std::path::PathBuf;

use gymfleet::coordinator::Store;
use gymfleet::learning::{Discovery, DiscoveryDraft, DiscoveryId, Payload, Priority, Topic, WorkerId};

/// A fresh directory for one test.
fn data_dir(name: &str) -> PathBuf {
    let directory = PathBuf::from(env!("CARGO_TARGET_TMPDIR"))
        .join("store")
        .join(format!("{name}-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&directory);
    directory
}

fn discovery(sequence: u64) -> Discovery {
    DiscoveryDraft {
        topic: Topic::tile("PALLET TOWN", sequence as i32, 2),
        payload: Payload::Tile { blocked: sequence.is_multiple_of(2) },
        confidence: 0.9,
        success_rate: 1.0,
        samples: 1,
        priority: Priority::Normal,
        checkpoint: Some("start".into()),
    }
    .finish(DiscoveryId { wall_ms: 1_700_000_000_000, worker: WorkerId(2), sequence })
    .expect("a valid discovery")
}

#[gymfleet_harness::test]
fn appended_discoveries_and_progress_survive_reopening() -> anyhow::Result<()> {
    let directory = data_dir("reopen");
    {
        let store = Store::open(&directory)?;
        store.append(&[discovery(2), discovery(1)])?;
        // The same id again is kept once.
        store.append(&[discovery(1), discovery(3)])?;
        store.set_progress("experiments", 42)?;
    }
    let store = Store::open(&directory)?;
    let ids: Vec<u64> = store.discoveries()?.iter().map(|d| d.id().sequence).collect();
    anyhow::ensure!(ids == [1, 2, 3], "stored in id order, once each: {ids:?}");
    anyhow::ensure!(store.discoveries()?[0] == discovery(1), "a discovery reads back equal");
    anyhow::ensure!(store.progress("experiments")? == Some(42));
    anyhow::ensure!(store.progress("never set")?.is_none());
    Ok(())
}

#[gymfleet_harness::test]
fn a_corrupt_store_is_an_error_naming_its_file() -> anyhow::Result<()> {
    let directory = data_dir("corrupt");
    std::fs::create_dir_all(&directory)?;
    std::fs::write(directory.join("gymfleet.redb"), b"this is not a database at all, just text")?;
    let error = Store::open(&directory).expect_err("garbage is not a store");
    let message = error.to_string();
    anyhow::ensure!(message.contains("gymfleet.redb") && message.contains("cannot open"), "{message}");

    let file_in_the_way = data_dir("file-in-the-way");
    std::fs::create_dir_all(file_in_the_way.parent().expect("a parent"))?;
    std::fs::write(&file_in_the_way, b"")?;
    let error = Store::open(&file_in_the_way).expect_err("a file is not a directory");
    anyhow::ensure!(error.to_string().contains("cannot create the data directory"), "{error}");
    Ok(())
}
