//! Fan-out to subscribers: nobody blocks the source, a subscriber that
//! falls behind gets a snapshot, and propagation latency is measured from
//! acknowledgements.

use std::sync::Arc;
use std::time::Duration;

use gymfleet::learning::fanout::{Content, FanOut, Published};
use gymfleet::learning::{Discovery, DiscoveryId, Knowledge, Strategy, WorkerId};
use gymfleet_harness::prop::{self, PropertyFailure};
use proptest::prelude::*;
use tokio::time::Instant;

use crate::learning::support::{discoveries, draft, knowledge, strategy};

fn batch(sequence: u64) -> Arc<[Arc<Discovery>]> {
    let discovery = draft()
        .finish(DiscoveryId { wall_ms: 0, worker: WorkerId(0), sequence })
        .expect("a valid discovery");
    Arc::from(vec![Arc::new(discovery)])
}

fn snapshot() -> Arc<Knowledge> {
    Arc::new(Knowledge::new(Strategy::Consensus))
}

#[gymfleet_harness::test(start_paused)]
async fn every_subscriber_gets_the_batch_and_latency_is_recorded_on_the_last_ack() {
    let mut fanout = FanOut::new(4);
    let mut subscriptions: Vec<_> = (0..3).map(|_| fanout.subscribe()).collect();
    let origin = Instant::now();
    let published = fanout.publish(batch(0), origin, snapshot);
    assert_eq!(published, Published { delivered: 3, ..Published::default() });

    tokio::time::advance(Duration::from_millis(2)).await;
    for subscription in &mut subscriptions[..2] {
        subscription.try_recv().expect("a delivery is waiting").ack();
    }
    assert_eq!(fanout.collect_acks(), 0, "one subscriber has not applied it yet");
    tokio::time::advance(Duration::from_millis(3)).await;
    subscriptions[2].try_recv().expect("a delivery is waiting").ack();
    assert_eq!(fanout.collect_acks(), 1);
    assert_eq!(fanout.latency().len(), 1);
    let latency = fanout.latency();
    assert!(
        latency.equivalent(latency.max(), 5_000),
        "origin to the last ack is 5 ms, not {} us",
        latency.max()
    );
}

#[gymfleet_harness::test(start_paused)]
async fn a_full_subscriber_never_blocks_the_others_and_then_gets_a_snapshot() {
    let mut fanout = FanOut::new(1);
    let mut slow = fanout.subscribe();
    let mut fast = fanout.subscribe();

    let first = fanout.publish(batch(0), Instant::now(), snapshot);
    assert_eq!(first.delivered, 2);
    fast.try_recv().expect("delivered").ack();
    // `slow` has not read its first delivery: its queue of one is full.
    let second = fanout.publish(batch(1), Instant::now(), snapshot);
    assert_eq!((second.delivered, second.lagging), (1, 1));
    assert!(fast.try_recv().is_some(), "the fast subscriber got the batch at once");

    // `slow` catches up on its backlog; the next publish sends it a
    // snapshot instead of what it missed.
    let backlog = slow.try_recv().expect("the first batch is queued");
    assert!(matches!(backlog.content(), Content::Batch(_)) && backlog.sequence() == 0);
    let mut snapshots_taken = 0;
    let third = fanout.publish(batch(2), Instant::now(), || {
        snapshots_taken += 1;
        snapshot()
    });
    assert_eq!((third.delivered, third.snapshots, third.lagging), (1, 1, 0));
    assert_eq!(snapshots_taken, 1);
    let caught_up = slow.try_recv().expect("the snapshot is queued");
    assert!(matches!(caught_up.content(), Content::Snapshot(_)) && caught_up.sequence() == 2);
}

#[gymfleet_harness::test(start_paused)]
async fn a_subscriber_that_goes_away_is_forgotten_and_not_waited_for() {
    let mut fanout = FanOut::new(4);
    let mut staying = fanout.subscribe();
    let leaving = fanout.subscribe();
    fanout.publish(batch(0), Instant::now(), snapshot);
    // Dropping the subscription drops its queued delivery unapplied.
    drop(leaving);

    let published = fanout.publish(batch(1), Instant::now(), snapshot);
    assert_eq!((published.delivered, published.gone), (1, 1));
    assert_eq!(fanout.subscribers(), 1);
    while let Some(delivery) = staying.try_recv() {
        delivery.ack();
    }
    assert_eq!(fanout.collect_acks(), 2, "batch 0 no longer waits for the subscriber that left");
    assert_eq!(fanout.outstanding(), 0);
    assert_eq!(fanout.abandoned(), 1, "batch 0 was not applied everywhere");
    assert_eq!(fanout.latency().len(), 1, "only batch 1 has a propagation latency");
}

#[gymfleet_harness::test]
async fn waiting_for_acknowledgements_wakes_on_the_last_one() {
    let mut fanout = FanOut::new(4);
    let mut subscriptions: Vec<_> = (0..8).map(|_| fanout.subscribe()).collect();
    fanout.publish(batch(0), Instant::now(), snapshot);
    let appliers: Vec<_> = subscriptions
        .drain(..)
        .map(|mut subscription| {
            tokio::spawn(async move {
                if let Some(delivery) = subscription.recv().await {
                    delivery.ack();
                }
            })
        })
        .collect();
    let mut n_completed = 0;
    while n_completed == 0 {
        n_completed = fanout.wait_for_acks(Duration::from_secs(10)).await;
    }
    assert_eq!(fanout.latency().len(), 1);
    for applier in appliers {
        applier.await.expect("an applier ends");
    }
}

/// Subscribers are woken by one another, not all by the source: every one
/// that waits must still get the batch, even when one that should wake
/// others went away with its delivery unreceived.
#[gymfleet_harness::test(start_paused)]
async fn every_waiting_subscriber_is_woken_even_if_one_that_wakes_others_is_gone() {
    let mut fanout = FanOut::new(4);
    let applied = Arc::new(std::sync::atomic::AtomicUsize::new(0));
    let appliers: Vec<_> = (0..16)
        .map(|_| {
            let mut subscription = fanout.subscribe();
            let applied = Arc::clone(&applied);
            tokio::spawn(async move {
                while let Some(delivery) = subscription.recv().await {
                    applied.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
                    delivery.ack();
                }
            })
        })
        .collect();
    // Let every applier wait for its first delivery.
    tokio::time::sleep(Duration::from_millis(1)).await;

    fanout.publish(batch(0), Instant::now(), snapshot);
    // The first subscriber is woken by the source and wakes others; it
    // goes away before it runs, dropping its delivery unreceived.
    appliers[0].abort();
    settle(&mut fanout).await;
    assert_eq!(applied.load(std::sync::atomic::Ordering::Relaxed), 15);
    assert_eq!(fanout.abandoned(), 1, "the batch never reached the first subscriber");

    let published = fanout.publish(batch(1), Instant::now(), snapshot);
    assert_eq!((published.delivered, published.gone), (15, 1));
    settle(&mut fanout).await;
    assert_eq!(applied.load(std::sync::atomic::Ordering::Relaxed), 30);
    assert_eq!(fanout.latency().len(), 1);
}

/// Waits, a bounded time, until every batch in flight is applied.
async fn settle(fanout: &mut FanOut) {
    // A subscriber never woken would wait forever; ten seconds of paused
    // time pass at once.
    fanout.wait_for_acks(Duration::from_secs(10)).await;
    assert_eq!(fanout.outstanding(), 0, "a batch is still waiting for a subscriber");
}

/// The knowledge a replica should hold after `batches`, built without a
/// fan-out.
fn expected(batches: impl IntoIterator<Item = Arc<[Arc<Discovery>]>>) -> Knowledge {
    let mut knowledge = Knowledge::new(Strategy::Consensus);
    for batch in batches {
        for discovery in batch.iter() {
            knowledge.insert(Arc::clone(discovery));
        }
    }
    knowledge
}

#[gymfleet_harness::test(start_paused)]
async fn a_replica_nobody_reads_has_the_batch_applied_before_publish_returns() {
    let mut fanout = FanOut::new(4);
    let replicas: Vec<_> = (0..3)
        .map(|_| fanout.replicate(Knowledge::new(Strategy::Consensus)))
        .collect();
    let origin = Instant::now();
    tokio::time::advance(Duration::from_millis(3)).await;
    let published = fanout.publish(batch(0), origin, snapshot);
    assert_eq!(published, Published { delivered: 3, applied: 3, ..Published::default() });

    // Nothing to wait for: the batch completed inside `publish`, which
    // recorded its latency.
    assert_eq!(fanout.outstanding(), 0);
    assert_eq!(fanout.collect_acks(), 0, "nothing was left to collect");
    let latency = fanout.latency();
    assert!(
        latency.equivalent(latency.max(), 3_000),
        "origin to publish is 3 ms, not {} us",
        latency.max()
    );
    for replica in &replicas {
        assert_eq!(*replica.read(), expected([batch(0)]));
    }
}

#[gymfleet_harness::test(start_paused)]
async fn a_replica_being_read_gets_the_batch_when_the_read_ends_and_blocks_nobody() {
    let mut fanout = FanOut::new(4);
    let busy = fanout.replicate(Knowledge::new(Strategy::Consensus));
    let free = fanout.replicate(Knowledge::new(Strategy::Consensus));

    let reading = busy.read();
    let published = fanout.publish(batch(0), Instant::now(), snapshot);
    assert_eq!((published.delivered, published.applied), (2, 1));
    assert_eq!(*free.read(), expected([batch(0)]), "the free replica did not wait");
    assert!(reading.is_empty(), "a read sees no change while it lasts");
    assert_eq!(fanout.collect_acks(), 0, "the busy replica has not applied it");

    drop(reading);
    assert_eq!(fanout.collect_acks(), 1, "letting go of the read applied the backlog");
    assert_eq!(fanout.latency().len(), 1);
    assert_eq!(*busy.read(), expected([batch(0)]));
}

#[gymfleet_harness::test(start_paused)]
async fn a_replica_read_through_a_full_backlog_lags_and_then_gets_a_snapshot() {
    let mut fanout = FanOut::new(1);
    let slow = fanout.replicate(Knowledge::new(Strategy::Consensus));

    let reading = slow.read();
    for sequence in 0..3 {
        let published = fanout.publish(batch(sequence), Instant::now(), snapshot);
        let want = match sequence {
            // Queued in the backlog of one.
            0 => Published { delivered: 1, ..Published::default() },
            // The backlog is full: the replica lags.
            1 => Published { lagging: 1, ..Published::default() },
            // Still lagging, still full: nothing is sent.
            _ => Published::default(),
        };
        assert_eq!(published, want, "publish {sequence}");
    }
    drop(reading);
    assert_eq!(*slow.read(), expected([batch(0)]), "the backlog was applied, no more");

    // A replica's snapshot is everything the fan-out published, so the
    // source's own snapshot is not needed.
    let published = fanout.publish(batch(3), Instant::now(), || {
        panic!("a replica's snapshot comes from the fan-out")
    });
    assert_eq!(published, Published { snapshots: 1, applied: 1, ..Published::default() });
    assert_eq!(slow.knowledge(), expected((0..=3).map(batch)), "the snapshot replaced what it missed");
}

#[gymfleet_harness::test(start_paused)]
async fn a_replica_that_goes_away_is_forgotten() {
    let mut fanout = FanOut::new(4);
    let staying = fanout.replicate(Knowledge::new(Strategy::Consensus));
    let leaving = fanout.replicate(Knowledge::new(Strategy::Consensus));
    fanout.publish(batch(0), Instant::now(), snapshot);
    drop(leaving);
    let published = fanout.publish(batch(1), Instant::now(), snapshot);
    assert_eq!((published.applied, published.gone), (1, 1));
    assert_eq!(fanout.subscribers(), 1);
    assert_eq!(fanout.outstanding(), 0);
    assert_eq!((fanout.latency().len(), fanout.abandoned()), (2, 0));
    assert_eq!(*staying.read(), expected([batch(0), batch(1)]));
}

/// A reader on another thread takes and lets go of its replica as fast as
/// it can while the source publishes: every batch must end up applied,
/// with nothing left queued behind a read that ended. Whether the last
/// publish meets a read is down to timing, so the race is run many times.
#[gymfleet_harness::test]
fn batches_published_during_reads_on_another_thread_are_never_stranded() {
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_time()
        .build()
        .expect("a runtime");
    let _entered = runtime.enter();
    for round in 0..100 {
        let mut fanout = FanOut::new(1_000);
        let replica = fanout.replicate(Knowledge::new(Strategy::Consensus));
        let started = std::sync::Barrier::new(2);
        let done = std::sync::atomic::AtomicBool::new(false);
        let mut source = Knowledge::new(Strategy::Consensus);
        std::thread::scope(|scope| {
            let reader = scope.spawn(|| {
                started.wait();
                while !done.load(std::sync::atomic::Ordering::Acquire) {
                    std::hint::black_box(replica.read().len());
                }
            });
            started.wait();
            for sequence in 0..50 {
                let batch = batch(sequence);
                for discovery in batch.iter() {
                    source.insert(Arc::clone(discovery));
                }
                fanout.publish(batch, Instant::now(), || Arc::new(source.clone()));
            }
            done.store(true, std::sync::atomic::Ordering::Release);
            reader.join().expect("the reader does not panic");
        });
        // The reader has let go for good: nothing may still be queued.
        fanout.collect_acks();
        assert_eq!(fanout.outstanding(), 0, "round {round}: a batch was left in the backlog");
        assert_eq!(replica.knowledge(), source, "round {round}");
    }
}

/// Replicas in step share the states the fan-out reached instead of
/// inserting for themselves; that must give exactly what inserting gives.
/// The discoveries come in batches of up to four, some sent twice, out of
/// id order; one replica starts from knowledge of its own, so it is never
/// in step, and one is read through some publishes, so it catches up from
/// its backlog. Between publishes the fan-out makes room in the replicas,
/// some of it while one is read, which must change nothing they hold.
#[gymfleet_harness::test]
fn replicas_hold_what_inserting_every_published_discovery_gives() -> Result<(), PropertyFailure> {
    let cases = (
        strategy(),
        discoveries(40),
        discoveries(8),
        proptest::collection::vec(1..5usize, 40),
        0..16usize,
    );
    prop::check(cases, |(strategy, list, own, batch_lens, room)| {
        let runtime = tokio::runtime::Builder::new_current_thread()
            .enable_time()
            .build()
            .expect("a runtime");
        let _entered = runtime.enter();
        let mut fanout = FanOut::new(64);
        let in_step: Vec<_> = (0..2).map(|_| fanout.replicate(Knowledge::new(strategy))).collect();
        let read_at_times = fanout.replicate(Knowledge::new(strategy));
        let own = knowledge(strategy, &own);
        let apart = fanout.replicate(own.clone());

        // Every third discovery is published again, later.
        let sent: Vec<Discovery> = list.iter().chain(list.iter().step_by(3)).cloned().collect();
        let mut rest = &sent[..];
        for (publish_idx, &batch_len) in batch_lens.iter().cycle().enumerate() {
            if rest.is_empty() {
                break;
            }
            let (batch, after) = rest.split_at(batch_len.min(rest.len()));
            rest = after;
            let batch: Arc<[Arc<Discovery>]> = batch.iter().cloned().map(Arc::new).collect();
            let reading = (publish_idx % 3 == 0).then(|| read_at_times.read());
            fanout.publish(batch, Instant::now(), || panic!("no replica lags"));
            if publish_idx % 2 == 0 {
                fanout.make_room(room * publish_idx);
            }
            drop(reading);
        }

        let inserted = knowledge(strategy, &sent);
        for replica in in_step.iter().chain([&read_at_times]) {
            prop_assert_eq!(&*replica.read(), &inserted);
        }
        let mut apart_inserted = own;
        for discovery in &sent {
            apart_inserted.insert(discovery.clone());
        }
        prop_assert_eq!(&*apart.read(), &apart_inserted);
        prop_assert_eq!(fanout.outstanding(), 0);
        Ok(())
    })
}
