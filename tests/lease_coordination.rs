//! Shard sync and lease coordination on the emulators: leases made from
//! kinesis-local's shard list (before and after a split) in a moto table, and two
//! coordinators sharing that table with a short failover.

mod common {
    pub mod aws;
}

use std::time::Duration;

use common::aws;
use kinesis_collector::kinesis::StreamId;
use kinesis_collector::lease::coordinator::LeaseCoordinator;
use kinesis_collector::lease::dynamodb::DynamoDbLeaseStore;
use kinesis_collector::lease::shard_sync::{multi_stream_keys, sync_shards, LeaseKeys};
use kinesis_collector::lease::{Checkpoint, LeaseConfig, LeaseStore};
use tokio_util::sync::CancellationToken;

async fn new_store() -> DynamoDbLeaseStore {
    let store = DynamoDbLeaseStore::new(aws::dynamodb().await, aws::unique_name("leases"));
    store.ensure_table().await.unwrap();
    store
}

#[tokio::test]
async fn shard_sync_makes_leases_before_and_after_a_split() {
    let _one_at_a_time = aws::one_at_a_time().await;
    let kinesis = aws::kinesis().await;
    let name = aws::create_stream(&kinesis, 1).await;
    let stream = StreamId::Name(name.clone());
    let store = new_store().await;
    let keys = LeaseKeys::ShardId;

    let created = sync_shards(&kinesis, &store, &stream, &keys, &Checkpoint::Latest)
        .await
        .unwrap();
    assert_eq!(created.len(), 1);
    let parent = created[0].key.clone();
    assert_eq!(created[0].checkpoint, Checkpoint::Latest);
    assert!(
        sync_shards(&kinesis, &store, &stream, &keys, &Checkpoint::Latest)
            .await
            .unwrap()
            .is_empty()
    );

    aws::split_in_half(&kinesis, &name, &parent).await;
    let children = sync_shards(&kinesis, &store, &stream, &keys, &Checkpoint::Latest)
        .await
        .unwrap();
    assert_eq!(children.len(), 2, "{children:?}");
    for child in &children {
        assert_eq!(
            child.checkpoint,
            Checkpoint::TrimHorizon,
            "children are read from their start"
        );
        assert_eq!(child.parent_shard_ids, std::slice::from_ref(&parent));
        assert!(child.hash_key_range.is_some());
    }
    assert_eq!(store.list().await.unwrap().len(), 3);

    // Multi-stream keys name the account, the stream and its creation time.
    let multi = multi_stream_keys(&kinesis, &stream).await.unwrap();
    let LeaseKeys::MultiStream { stream_identifier } = &multi else {
        panic!("{multi:?}")
    };
    let parts: Vec<&str> = stream_identifier.split(':').collect();
    assert_eq!(parts.len(), 3, "{stream_identifier}");
    assert!(
        parts[0].len() == 12 && parts[0].bytes().all(|b| b.is_ascii_digit()),
        "{stream_identifier}"
    );
    assert_eq!(parts[1], name);
    assert!(
        parts[2].parse::<u64>().unwrap() > 1_600_000_000,
        "{stream_identifier}"
    );
    let created = sync_shards(&kinesis, &store, &stream, &multi, &Checkpoint::TrimHorizon)
        .await
        .unwrap();
    assert_eq!(
        created.len(),
        3,
        "another key scheme is another set of leases"
    );
    assert!(created
        .iter()
        .all(|l| l.key.starts_with(stream_identifier.as_str())));

    aws::delete_stream(&kinesis, &name).await;
}

#[tokio::test]
async fn two_coordinators_share_a_dynamodb_table() {
    let _one_at_a_time = aws::one_at_a_time().await;
    let store = new_store().await;
    for i in 0..4 {
        let lease = kinesis_collector::lease::Lease::new(
            format!("shardId-{i:012}"),
            Checkpoint::TrimHorizon,
        );
        store.create(&lease).await.unwrap();
    }
    // The short failover for tests; 1s thrashes when a loaded machine
    // slows moto down past a third of it.
    let config = LeaseConfig {
        failover: Duration::from_secs(2),
        ..LeaseConfig::default()
    };
    let mut tasks = tokio::task::JoinSet::new();
    let mut workers = Vec::new();
    for id in ["worker-a", "worker-b"] {
        let (coordinator, events) = LeaseCoordinator::new(store.clone(), id, config.clone());
        let (taker, renewer) = (CancellationToken::new(), CancellationToken::new());
        let (c, t) = (coordinator.clone(), taker.clone());
        tasks.spawn(async move { c.run_taker(t).await.unwrap() });
        let (c, r) = (coordinator.clone(), renewer.clone());
        tasks.spawn(async move { c.run_renewer(r).await });
        workers.push((coordinator, taker, renewer, events));
    }
    let (a, b) = (workers[0].0.clone(), workers[1].0.clone());
    aws::wait_for("a 2/2 split", config.take_interval() * 2, || async {
        (a.held_keys().len() == 2 && b.held_keys().len() == 2).then_some(())
    })
    .await;

    // A clean stop of b: a owns everything within one take interval.
    let (_, b_taker, b_renewer, _) = workers.pop().unwrap();
    b_taker.cancel();
    assert_eq!(b.release_all().await, 2);
    b_renewer.cancel();
    let started = tokio::time::Instant::now();
    aws::wait_for(
        "a takes b's leases",
        config.take_interval() + Duration::from_secs(1),
        || async { (a.held_keys().len() == 4).then_some(()) },
    )
    .await;
    eprintln!("handover took {:?}", started.elapsed());
    let leases = store.list().await.unwrap();
    assert!(
        leases
            .iter()
            .all(|l| l.owner.as_deref() == Some("worker-a")),
        "{leases:?}"
    );
    let (_, a_taker, a_renewer, _) = workers.pop().unwrap();
    a_taker.cancel();
    a_renewer.cancel();
    while let Some(result) = tasks.join_next().await {
        result.unwrap();
    }
}
