//! The coordinator on the in-memory store with paused time: workers started
//! together, a late joiner, a killed worker, a clean stop, fencing, and children
//! after their parent's end.

use std::collections::BTreeMap;

use super::*;
use crate::lease::memory::MemoryLeaseStore;

const FAILOVER: Duration = Duration::from_secs(2);

fn config() -> LeaseConfig {
    LeaseConfig {
        failover: FAILOVER,
        ..LeaseConfig::default()
    }
}

async fn store_with(n: usize) -> MemoryLeaseStore {
    let store = MemoryLeaseStore::new();
    for i in 0..n {
        store
            .create(&Lease::new(
                format!("shardId-{i:012}"),
                Checkpoint::TrimHorizon,
            ))
            .await
            .unwrap();
    }
    store
}

/// A running worker: its coordinator, its event receiver and the tokens of its
/// two loops.
struct Worker {
    coordinator: LeaseCoordinator<MemoryLeaseStore>,
    events: mpsc::UnboundedReceiver<LeaseEvent>,
    taker: CancellationToken,
    renewer: CancellationToken,
    tasks: JoinSet<()>,
}

impl Worker {
    fn start(store: &MemoryLeaseStore, id: &str) -> Worker {
        let (coordinator, events) = LeaseCoordinator::new(store.clone(), id, config());
        let (taker, renewer) = (CancellationToken::new(), CancellationToken::new());
        let mut tasks = JoinSet::new();
        let (c, t) = (coordinator.clone(), taker.clone());
        tasks.spawn(async move { c.run_taker(t).await.unwrap() });
        let (c, r) = (coordinator.clone(), renewer.clone());
        tasks.spawn(async move { c.run_renewer(r).await });
        Worker {
            coordinator,
            events,
            taker,
            renewer,
            tasks,
        }
    }

    fn count(&self) -> usize {
        self.coordinator.held_keys().len()
    }

    /// Stops both loops without releasing (a crash, as far as the table sees).
    async fn kill(mut self) {
        self.taker.cancel();
        self.renewer.cancel();
        while self.tasks.join_next().await.is_some() {}
    }

    /// A clean stop: no more takes, release, then stop renewing.
    async fn stop(mut self) -> usize {
        self.taker.cancel();
        let released = self.coordinator.release_all().await;
        self.renewer.cancel();
        while self.tasks.join_next().await.is_some() {}
        released
    }
}

/// Owner of every lease in the table.
fn owners(store: &MemoryLeaseStore) -> BTreeMap<String, usize> {
    let mut counts = BTreeMap::new();
    for lease in store.snapshot().values() {
        *counts
            .entry(lease.owner.clone().unwrap_or_else(|| "-".into()))
            .or_insert(0) += 1;
    }
    counts
}

/// Waits (in paused time) until `done`, at most `limit`; returns the time it took.
async fn within(limit: Duration, mut done: impl FnMut() -> bool) -> Duration {
    let start = Instant::now();
    while !done() {
        assert!(start.elapsed() <= limit, "not done within {limit:?}");
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    start.elapsed()
}

#[tokio::test(start_paused = true)]
async fn workers_started_together_split_the_leases_evenly() {
    let store = store_with(8).await;
    let a = Worker::start(&store, "a");
    let b = Worker::start(&store, "b");
    let take = config().take_interval();
    within(take * 2, || a.count() == 4 && b.count() == 4).await;
    // And it stays so: no thrashing.
    tokio::time::sleep(take * 5).await;
    assert_eq!((a.count(), b.count()), (4, 4));
    assert!(store
        .snapshot()
        .values()
        .all(|l| l.owner_switches_since_checkpoint == 0));
}

#[tokio::test(start_paused = true)]
async fn a_late_worker_steals_one_lease_per_take_up_to_its_share() {
    let store = store_with(8).await;
    let mut a = Worker::start(&store, "a");
    // Alone and starting: half of what is free per round, rounds a renew interval apart.
    within(FAILOVER * 2, || a.count() == 8).await;
    let b = Worker::start(&store, "b");
    let take = config().take_interval();
    let mut last = 0;
    // One steal per take round: at most one more lease per take interval.
    let elapsed = within(take * 5, || {
        let now = b.count();
        assert!(
            now <= last + 1,
            "b went from {last} to {now} leases at once"
        );
        last = now;
        now == 4
    })
    .await;
    assert!(
        elapsed >= take * 3,
        "four steals need four take rounds, took {elapsed:?}"
    );
    within(FAILOVER, || a.count() == 4).await;
    tokio::time::sleep(take * 5).await;
    assert_eq!(
        owners(&store),
        BTreeMap::from([("a".into(), 4), ("b".into(), 4)])
    );
    // a's readers were told to stop for exactly the stolen leases.
    let mut lost = 0;
    while let Ok(event) = a.events.try_recv() {
        if let LeaseEvent::Lost { reason, .. } = event {
            assert!(reason.contains("held by b"), "{reason}");
            lost += 1;
        }
    }
    assert_eq!(lost, 4);
}

#[tokio::test(start_paused = true)]
async fn a_killed_workers_leases_are_taken_after_the_failover_time() {
    let store = store_with(8).await;
    let a = Worker::start(&store, "a");
    let b = Worker::start(&store, "b");
    within(config().take_interval() * 2, || {
        a.count() == 4 && b.count() == 4
    })
    .await;
    b.kill().await;
    let elapsed = within(FAILOVER + config().take_interval() * 2, || a.count() == 8).await;
    assert!(
        elapsed >= FAILOVER,
        "taken before expiry, after {elapsed:?}"
    );
    assert_eq!(owners(&store), BTreeMap::from([("a".into(), 8)]));
}

#[tokio::test(start_paused = true)]
async fn a_clean_stop_hands_over_within_one_take_interval() {
    let store = store_with(8).await;
    let a = Worker::start(&store, "a");
    let b = Worker::start(&store, "b");
    within(config().take_interval() * 2, || {
        a.count() == 4 && b.count() == 4
    })
    .await;
    assert_eq!(b.stop().await, 4);
    assert_eq!(owners(&store).get("-"), Some(&4));
    within(
        config().take_interval() + Duration::from_millis(100),
        || a.count() == 8,
    )
    .await;
}

#[tokio::test(start_paused = true)]
async fn a_lost_lease_stops_its_reader_and_fences_its_checkpoint() {
    let store = store_with(1).await;
    let (coordinator, mut events) = LeaseCoordinator::new(store.clone(), "a", config());
    coordinator.take_round(false).await.unwrap();
    let Some(LeaseEvent::Acquired(held)) = events.recv().await else {
        panic!("no lease acquired")
    };
    coordinator
        .checkpoint(&held, &Checkpoint::at("10"), &[])
        .await
        .unwrap();
    // Renewals and checkpoints interleave without a false "lost".
    for i in 0..20 {
        coordinator.renew_round().await;
        coordinator
            .checkpoint(&held, &Checkpoint::at(format!("{}", 11 + i)), &[])
            .await
            .unwrap();
    }
    assert!(!held.lost().is_cancelled());

    // Another worker takes it behind a's back.
    let current = store.get(held.key()).await.unwrap().unwrap();
    store.take(&current, "b").await.unwrap();
    let err = coordinator
        .checkpoint(&held, &Checkpoint::at("99"), &[])
        .await
        .unwrap_err();
    assert!(
        matches!(&err, LeaseError::Lost { reason, .. } if reason.contains("held by b")),
        "{err}"
    );
    assert!(held.lost().is_cancelled());
    assert!(coordinator.held_keys().is_empty());
    assert!(matches!(events.recv().await, Some(LeaseEvent::Lost { .. })));
    assert_eq!(
        store.get(held.key()).await.unwrap().unwrap().checkpoint,
        Checkpoint::at("30")
    );
    // Later writes are refused without asking the table.
    assert!(coordinator
        .checkpoint(&held, &Checkpoint::at("100"), &[])
        .await
        .is_err());
}

#[tokio::test(start_paused = true)]
async fn renewals_failing_for_the_failover_time_lose_the_lease() {
    let store = store_with(2).await;
    let mut a = Worker::start(&store, "a");
    within(FAILOVER, || a.count() == 2).await;
    store.fail_next(usize::MAX);
    within(FAILOVER * 2, || a.count() == 0).await;
    let mut reasons = Vec::new();
    while let Ok(event) = a.events.try_recv() {
        if let LeaseEvent::Lost { reason, .. } = event {
            reasons.push(reason);
        }
    }
    assert_eq!(reasons.len(), 2, "{reasons:?}");
    assert!(reasons[0].contains("not renewed for"), "{reasons:?}");
    store.fail_next(0);
    a.kill().await;
}

#[tokio::test(start_paused = true)]
async fn children_are_taken_as_soon_as_their_parent_ends() {
    let store = store_with(1).await;
    for child in ["shardId-000000000001", "shardId-000000000002"] {
        let mut lease = Lease::new(child, Checkpoint::TrimHorizon);
        lease.parent_shard_ids = vec!["shardId-000000000000".into()];
        store.create(&lease).await.unwrap();
    }
    let a = Worker::start(&store, "a");
    within(FAILOVER, || a.count() == 1).await;
    // The children wait for their parent...
    tokio::time::sleep(config().take_interval() * 2).await;
    assert_eq!(a.coordinator.held_keys(), ["shardId-000000000000"]);
    // ...and are taken right after its end, not a take interval later.
    let parent = a.coordinator.held().remove(0);
    let children = [
        "shardId-000000000001".to_string(),
        "shardId-000000000002".to_string(),
    ];
    a.coordinator
        .checkpoint(&parent, &Checkpoint::ShardEnd, &children)
        .await
        .unwrap();
    within(Duration::from_millis(100), || a.count() == 2).await;
    assert_eq!(
        a.coordinator.held_keys(),
        children,
        "the finished parent is not held"
    );
    assert!(parent.lost().is_cancelled());
    let ended = store.get("shardId-000000000000").await.unwrap().unwrap();
    assert_eq!(ended.child_shard_ids, children);
    // No longer renewed: its counter stays still for the shard sync's cleanup.
    tokio::time::sleep(config().failover * 2).await;
    let later = store.get("shardId-000000000000").await.unwrap().unwrap();
    assert_eq!(
        (later.counter, later.owner.as_deref()),
        (ended.counter, Some("a"))
    );
}

#[test]
fn default_worker_ids_name_the_host_and_differ() {
    let (a, b) = (default_worker_id(), default_worker_id());
    assert_ne!(a, b);
    let (host, suffix) = a.rsplit_once('-').unwrap();
    assert!(!host.is_empty());
    assert_eq!(suffix.len(), 6, "{a}");
}

#[tokio::test(start_paused = true)]
async fn every_answer_of_the_table_is_reported_for_readiness() {
    let store = store_with(2).await;
    let (coordinator, _events) = LeaseCoordinator::new(store.clone(), "a", config());
    let metrics = Arc::new(crate::telemetry::LeaseMetrics::default());
    coordinator.take_round(false).await.unwrap();
    assert_eq!(
        metrics
            .last_table_success_ms
            .load(std::sync::atomic::Ordering::Relaxed),
        0
    );
    coordinator.report_to(Arc::clone(&metrics));
    coordinator.take_round(false).await.unwrap();
    let listed = metrics
        .last_table_success_ms
        .load(std::sync::atomic::Ordering::Relaxed);
    assert!(listed > 0, "a listing is an answer");
    metrics
        .last_table_success_ms
        .store(0, std::sync::atomic::Ordering::Relaxed);
    coordinator.renew_round().await;
    assert!(
        metrics
            .last_table_success_ms
            .load(std::sync::atomic::Ordering::Relaxed)
            > 0,
        "a renewal is an answer"
    );
}

#[tokio::test(start_paused = true)]
async fn the_reported_lag_is_written_with_renewals_and_checkpoints() {
    let store = store_with(1).await;
    let (coordinator, mut events) = LeaseCoordinator::new(store.clone(), "a", config());
    coordinator.take_round(false).await.unwrap();
    let Some(LeaseEvent::Acquired(held)) = events.recv().await else {
        panic!("no lease acquired")
    };
    let key = held.key().to_owned();
    coordinator.renew_round().await;
    let lag = |store: &MemoryLeaseStore| {
        let store = store.clone();
        let key = key.clone();
        async move { store.get(&key).await.unwrap().unwrap().millis_behind_latest }
    };
    assert_eq!(lag(&store).await, None, "nothing reported yet");
    held.report_lag(4_000);
    coordinator.renew_round().await;
    assert_eq!(lag(&store).await, Some(4_000));
    held.report_lag(0);
    coordinator
        .checkpoint(&held, &Checkpoint::at("7"), &[])
        .await
        .unwrap();
    assert_eq!(lag(&store).await, Some(0));
}
