//! The run's durable store: accepted discoveries and run progress, in an
//! embedded redb database under the data directory.
//!
//! Every write is one transaction committed with immediate durability: when
//! `append` returns, the discoveries survive a crash or a SIGKILL. That is
//! the moment a discovery counts as accepted. The store is synchronous;
//! async callers run it on a blocking thread.

use std::path::{Path, PathBuf};

use redb::{Database, ReadableDatabase as _, ReadableTable as _, TableDefinition};

use crate::learning::{Discovery, DiscoveryId};

/// The database file inside the data directory.
pub const FILE_NAME: &str = "gymfleet.redb";

/// Discoveries by id (20 bytes: wall-clock ms, worker, sequence, all
/// big-endian, so that keys sort as ids do), as JSON.
const DISCOVERIES: TableDefinition<&[u8], &[u8]> = TableDefinition::new("discoveries");

/// Run progress counters by name.
const PROGRESS: TableDefinition<&str, u64> = TableDefinition::new("progress");

/// A store that could not be used, naming its file.
#[derive(Debug, thiserror::Error)]
#[error("store `{path}`: {action}")]
pub struct StoreError {
    /// The database file.
    pub path: PathBuf,
    /// What was being done.
    pub action: &'static str,
    /// Why it failed.
    #[source]
    pub source: Box<dyn std::error::Error + Send + Sync>,
}

/// The durable store of one data directory.
#[derive(Debug)]
pub struct Store {
    db: Database,
    path: PathBuf,
}

impl Store {
    /// Opens (creating if needed) the store in `data_dir`.
    pub fn open(data_dir: &Path) -> Result<Store, StoreError> {
        let path = data_dir.join(FILE_NAME);
        let failed = |action, source: Box<dyn std::error::Error + Send + Sync>| StoreError {
            path: path.clone(),
            action,
            source,
        };
        std::fs::create_dir_all(data_dir)
            .map_err(|error| failed("cannot create the data directory", Box::new(error)))?;
        let db = Database::create(&path)
            .map_err(|error| failed("cannot open the database", Box::new(error)))?;

        // Create both tables, so that readers never meet a missing one.
        let store = Store { db, path };
        store.write("cannot initialize the tables", |transaction| {
            transaction.open_table(DISCOVERIES)?;
            transaction.open_table(PROGRESS)?;
            Ok(())
        })?;
        Ok(store)
    }

    /// The database file.
    pub fn path(&self) -> &Path {
        &self.path
    }

    /// Makes `discoveries` durable in one transaction; an id already stored
    /// is left as it is.
    pub fn append(&self, discoveries: &[Discovery]) -> Result<(), StoreError> {
        let encoded: Vec<(Vec<u8>, Vec<u8>)> = discoveries
            .iter()
            .map(|discovery| {
                let value = serde_json::to_vec(discovery)
                    .expect("discoveries serialize to JSON infallibly");
                (key(discovery.id()).to_vec(), value)
            })
            .collect();
        self.write("cannot store discoveries", |transaction| {
            let mut table = transaction.open_table(DISCOVERIES)?;
            for (key, value) in &encoded {
                if table.get(key.as_slice())?.is_none() {
                    table.insert(key.as_slice(), value.as_slice())?;
                }
            }
            Ok(())
        })
    }

    /// Every stored discovery, in id order.
    pub fn discoveries(&self) -> Result<Vec<Discovery>, StoreError> {
        let failed = |source: Box<dyn std::error::Error + Send + Sync>| StoreError {
            path: self.path.clone(),
            action: "cannot read discoveries",
            source,
        };
        let read = || -> Result<Vec<Discovery>, Box<dyn std::error::Error + Send + Sync>> {
            let transaction = self.db.begin_read()?;
            let table = transaction.open_table(DISCOVERIES)?;
            let mut discoveries = Vec::new();
            for entry in table.iter()? {
                let (_, value) = entry?;
                discoveries.push(serde_json::from_slice(value.value())?);
            }
            Ok(discoveries)
        };
        read().map_err(failed)
    }

    /// Sets a progress counter durably.
    pub fn set_progress(&self, name: &str, value: u64) -> Result<(), StoreError> {
        self.write("cannot store progress", |transaction| {
            transaction.open_table(PROGRESS)?.insert(name, value)?;
            Ok(())
        })
    }

    /// A progress counter, if it was ever set.
    pub fn progress(&self, name: &str) -> Result<Option<u64>, StoreError> {
        let read = || -> Result<Option<u64>, Box<dyn std::error::Error + Send + Sync>> {
            let transaction = self.db.begin_read()?;
            let table = transaction.open_table(PROGRESS)?;
            Ok(table.get(name)?.map(|value| value.value()))
        };
        read().map_err(|source| StoreError {
            path: self.path.clone(),
            action: "cannot read progress",
            source,
        })
    }

    fn write(
        &self,
        action: &'static str,
        body: impl FnOnce(&redb::WriteTransaction) -> Result<(), redb::Error>,
    ) -> Result<(), StoreError> {
        let run = || -> Result<(), redb::Error> {
            let transaction = self.db.begin_write()?;
            body(&transaction)?;
            // Immediate durability is redb's default: commit returns once
            // the data is on disk.
            transaction.commit()?;
            Ok(())
        };
        run().map_err(|error| StoreError {
            path: self.path.clone(),
            action,
            source: Box::new(error),
        })
    }
}

fn key(id: DiscoveryId) -> [u8; 20] {
    let mut key = [0u8; 20];
    key[..8].copy_from_slice(&id.wall_ms.to_be_bytes());
    key[8..12].copy_from_slice(&id.worker.0.to_be_bytes());
    key[12..].copy_from_slice(&id.sequence.to_be_bytes());
    key
}
