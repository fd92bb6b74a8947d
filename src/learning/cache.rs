//! A bounded cache with least-recently-used eviction and a time to live on
//! tokio's clock (so that tests can pause it).

use std::hash::Hash;
use std::num::NonZeroUsize;
use std::time::Duration;

use lru::LruCache;
use tokio::time::Instant;

/// At most `capacity` entries; an entry older than `ttl` is gone.
#[derive(Debug)]
pub struct TtlCache<K: Hash + Eq, V> {
    entries: LruCache<K, (V, Instant)>,
    ttl: Duration,
}

impl<K: Hash + Eq, V> TtlCache<K, V> {
    /// An empty cache.
    pub fn new(capacity: NonZeroUsize, ttl: Duration) -> TtlCache<K, V> {
        TtlCache {
            entries: LruCache::new(capacity),
            ttl,
        }
    }

    /// Stores `value`, evicting the least recently used entry when full;
    /// returns the evicted entry's key and value, if any.
    pub fn insert(&mut self, key: K, value: V) -> Option<(K, V)> {
        self.entries
            .push(key, (value, Instant::now()))
            .map(|(key, (value, _))| (key, value))
    }

    /// The value for `key` if it has not expired; a hit counts as a use.
    pub fn get(&mut self, key: &K) -> Option<&V> {
        let expired = match self.entries.peek(key) {
            Some((_, stored_at)) => stored_at.elapsed() >= self.ttl,
            None => return None,
        };
        if expired {
            self.entries.pop(key);
            return None;
        }
        self.entries.get(key).map(|(value, _)| value)
    }

    /// Entries held, expired ones included until they are looked up or
    /// evicted.
    pub fn len(&self) -> usize {
        self.entries.len()
    }

    /// Returns true if and only if the cache holds nothing.
    pub fn is_empty(&self) -> bool {
        self.entries.is_empty()
    }
}
