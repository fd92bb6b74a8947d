//! Observers and the cache.

use std::num::NonZeroUsize;
use std::time::Duration;

use gymfleet::learning::cache::TtlCache;
use gymfleet::learning::events::{LearningEvent, Observers};
use tokio::sync::broadcast::error::RecvError;

#[gymfleet_harness::test]
async fn a_lagging_observer_loses_events_and_is_told_how_many() {
    let observers = Observers::new(4);
    let mut slow = observers.subscribe();
    let mut fast = observers.subscribe();
    for sequence in 0..10 {
        // Emitting never waits, whoever is behind.
        observers.emit(LearningEvent::Propagated { sequence, recipients: 1 });
        assert_eq!(fast.recv().await, Ok(LearningEvent::Propagated { sequence, recipients: 1 }));
    }
    assert_eq!(slow.recv().await, Err(RecvError::Lagged(6)));
    assert_eq!(slow.recv().await, Ok(LearningEvent::Propagated { sequence: 6, recipients: 1 }));
}

#[gymfleet_harness::test(start_paused)]
async fn the_cache_evicts_the_least_recently_used_and_expires_on_tokio_time() {
    let capacity = NonZeroUsize::new(2).expect("not zero");
    let mut cache = TtlCache::new(capacity, Duration::from_secs(10));
    cache.insert("a", 1);
    cache.insert("b", 2);
    assert_eq!(cache.get(&"a"), Some(&1), "a use makes `a` the most recent");
    assert_eq!(cache.insert("c", 3), Some(("b", 2)), "`b` is the least recently used");

    tokio::time::advance(Duration::from_secs(9)).await;
    assert_eq!(cache.get(&"c"), Some(&3));
    tokio::time::advance(Duration::from_secs(1)).await;
    assert_eq!(cache.get(&"c"), None, "ten seconds is the time to live");
    assert_eq!(cache.len(), 1);
}
