//! The DynamoDB lease store against moto: table creation, contention between
//! workers, fencing of a lost lease, release, and a lease table written by the
//! Java KCL 2.x read back with its checkpoints (and its other attributes kept).

mod common {
    pub mod aws;
}

use std::collections::HashMap;

use aws_sdk_dynamodb::types::{
    AttributeDefinition, AttributeValue, BillingMode, KeySchemaElement, KeyType,
    ScalarAttributeType,
};
use common::aws;
use kinesis_collector::lease::dynamodb::{with_timeout, DynamoDbLeaseStore};
use kinesis_collector::lease::{Checkpoint, DeleteIf, Lease, LeaseError, LeaseStore};

/// A store on a new table (created through the store itself).
async fn new_store() -> (aws_sdk_dynamodb::Client, DynamoDbLeaseStore) {
    let client = aws::dynamodb().await;
    let store = DynamoDbLeaseStore::from_config(
        &aws::config().await,
        aws::unique_name("leases"),
        &Default::default(),
    );
    store.ensure_table().await.expect("create the lease table");
    (client, store)
}

/// The lease item `key` as stored (every attribute, ours or not).
async fn raw_item(
    client: &aws_sdk_dynamodb::Client,
    store: &DynamoDbLeaseStore,
    key: &str,
) -> HashMap<String, AttributeValue> {
    client
        .get_item()
        .table_name(store.table())
        .key("leaseKey", AttributeValue::S(key.to_owned()))
        .consistent_read(true)
        .send()
        .await
        .unwrap()
        .item
        .expect("the lease item")
}

fn assert_lost(result: Result<Lease, LeaseError>, reason: &str) {
    match result {
        Err(LeaseError::Lost { reason: got, .. }) => assert!(
            got.contains(reason),
            "lost because {got:?}, want {reason:?}"
        ),
        other => panic!("want a lost lease ({reason}), got {other:?}"),
    }
}

#[tokio::test]
async fn table_is_created_once_and_checked() {
    let (client, store) = new_store().await;
    store
        .ensure_table()
        .await
        .expect("an existing table is fine");
    let existing = DynamoDbLeaseStore::new(client.clone(), store.table()).create_table(false);
    existing
        .ensure_table()
        .await
        .expect("existing table without create rights");

    let missing = aws::unique_name("missing");
    let err = DynamoDbLeaseStore::new(client.clone(), &missing)
        .create_table(false)
        .ensure_table()
        .await
        .unwrap_err();
    assert!(matches!(err, LeaseError::TableMissing { .. }), "{err:?}");
    let text = err.to_string();
    assert!(
        text.contains(&missing) && text.contains("lease.create_table"),
        "{text}"
    );

    // Another application's table is never taken for a lease table.
    let other = aws::unique_name("orders");
    client
        .create_table()
        .table_name(&other)
        .billing_mode(BillingMode::PayPerRequest)
        .key_schema(
            KeySchemaElement::builder()
                .attribute_name("id")
                .key_type(KeyType::Hash)
                .build()
                .unwrap(),
        )
        .attribute_definitions(
            AttributeDefinition::builder()
                .attribute_name("id")
                .attribute_type(ScalarAttributeType::S)
                .build()
                .unwrap(),
        )
        .send()
        .await
        .unwrap();
    let err = DynamoDbLeaseStore::new(client.clone(), &other)
        .ensure_table()
        .await
        .unwrap_err();
    assert!(matches!(err, LeaseError::BadTable { .. }), "{err:?}");
    assert!(err.to_string().contains("id (HASH)"), "{err}");

    aws::delete_table(&client, store.table()).await;
    aws::delete_table(&client, &other).await;
}

#[tokio::test]
async fn workers_contend_exactly_one_wins() {
    let (client, store) = new_store().await;
    // Many rounds of four workers at once: an emulator whose conditional writes
    // are not atomic (moto's own threaded server) fails this.
    for i in 0..10 {
        let lease = Lease::new(format!("shardId-{i:012}"), Checkpoint::TrimHorizon);
        assert!(store.create(&lease).await.unwrap());
        assert!(
            !store.create(&lease).await.unwrap(),
            "a second create is a no-op"
        );
        // All saw the same free lease; all try to take it at once.
        let mut takes = tokio::task::JoinSet::new();
        for w in 0..4 {
            let (store, lease) = (store.clone(), lease.clone());
            takes.spawn(async move { store.take(&lease, &format!("worker-{w}")).await });
        }
        let results = takes.join_all().await;
        let winners: Vec<&Lease> = results.iter().filter_map(|r| r.as_ref().ok()).collect();
        assert_eq!(winners.len(), 1, "exactly one take must win: {results:?}");
        let winner = winners[0];
        let owner = winner.owner.clone().unwrap();
        assert_eq!(
            (winner.counter, winner.owner_switches_since_checkpoint),
            (1, 0)
        );
        for loser in results.iter().filter_map(|r| r.as_ref().err()) {
            assert!(
                matches!(loser, LeaseError::Lost { reason, .. } if reason == &format!("held by {owner} (counter 1)")),
                "{loser:?}"
            );
        }
        assert_eq!(store.get(&lease.key).await.unwrap().as_ref(), Some(winner));
    }
    assert_eq!(store.list().await.unwrap().len(), 10);
    aws::delete_table(&client, store.table()).await;
}

#[tokio::test]
async fn a_lost_lease_can_neither_renew_nor_checkpoint() {
    let (client, a) = new_store().await;
    let b = DynamoDbLeaseStore::new(client.clone(), a.table());
    let lease = Lease::new("shardId-000000000000", Checkpoint::TrimHorizon);
    a.create(&lease).await.unwrap();
    let held_a = a.take(&lease, "worker-a").await.unwrap();
    let held_a = a.renew(&held_a).await.unwrap();
    let held_a = a
        .checkpoint(&held_a, &Checkpoint::at("100"), &[])
        .await
        .unwrap();
    assert_eq!((held_a.counter, held_a.checkpoint.as_str()), (3, "100"));

    // b steals it (seeing the current counter); a's next writes fail.
    let seen_by_b = b.get(&lease.key).await.unwrap().unwrap();
    let held_b = b.take(&seen_by_b, "worker-b").await.unwrap();
    assert_eq!(held_b.owner_switches_since_checkpoint, 1);
    assert_lost(a.renew(&held_a).await, "held by worker-b (counter 4)");
    assert_lost(
        a.checkpoint(&held_a, &Checkpoint::at("200"), &[]).await,
        "held by worker-b",
    );
    assert_lost(a.release(&held_a).await, "held by worker-b");
    assert_eq!(
        b.get(&lease.key).await.unwrap().unwrap().checkpoint,
        Checkpoint::at("100")
    );

    // A stale counter fails even for the owner itself.
    let renewed_b = b.renew(&held_b).await.unwrap();
    assert_lost(
        b.checkpoint(&held_b, &Checkpoint::at("300"), &[]).await,
        "held by worker-b (counter 5)",
    );
    let checkpointed = b
        .checkpoint(
            &renewed_b,
            &Checkpoint::ShardEnd,
            &["shardId-000000000002".into(), "shardId-000000000001".into()],
        )
        .await
        .unwrap();
    assert_eq!(checkpointed.checkpoint, Checkpoint::ShardEnd);
    assert_eq!(checkpointed.owner_switches_since_checkpoint, 0);
    assert_eq!(
        checkpointed.child_shard_ids,
        ["shardId-000000000001", "shardId-000000000002"]
    );

    // Release lets the other worker take it at once (no switch: it was free).
    let released = b.release(&checkpointed).await.unwrap();
    assert_eq!(released.owner, None);
    let seen_by_a = a.list().await.unwrap().remove(0);
    assert_eq!(seen_by_a, released);
    let retaken = a.take(&seen_by_a, "worker-a").await.unwrap();
    assert_eq!(
        (
            retaken.owner.as_deref(),
            retaken.owner_switches_since_checkpoint
        ),
        (Some("worker-a"), 0)
    );

    a.delete(&lease.key).await.unwrap();
    assert_eq!(a.get(&lease.key).await.unwrap(), None);
    assert_lost(a.renew(&retaken).await, "deleted");
    aws::delete_table(&client, a.table()).await;
}

#[tokio::test]
async fn kcl_2_lease_table_is_read_and_its_other_attributes_kept() {
    let (client, store) = new_store().await;
    let fixture: serde_json::Value =
        serde_json::from_str(include_str!("fixtures/lease/kcl2-scan.json")).unwrap();
    for item in fixture["Items"].as_array().unwrap() {
        client
            .put_item()
            .table_name(store.table())
            .set_item(Some(aws::item_from_json(item)))
            .send()
            .await
            .unwrap();
    }

    let leases: HashMap<String, Lease> = store
        .list()
        .await
        .unwrap()
        .into_iter()
        .map(|l| (l.key.clone(), l))
        .collect();
    assert_eq!(leases.len(), 5);
    let shard = |n: u32| &leases[&format!("shardId-{n:012}")];
    assert_eq!(shard(0).checkpoint, Checkpoint::ShardEnd);
    assert_eq!(
        shard(0).child_shard_ids,
        ["shardId-000000000002", "shardId-000000000003"]
    );
    assert_eq!(shard(0).counter, 1523);
    assert_eq!(
        shard(1).child_shard_ids,
        ["shardId-000000000004"],
        "early KCL 2.x childShardId"
    );
    assert_eq!(shard(1).owner, None);
    assert_eq!(
        shard(2).checkpoint,
        Checkpoint::at("49646893826466123380385740938469587433562356411592065058")
    );
    assert_eq!(shard(2).parent_shard_ids, ["shardId-000000000000"]);
    assert_eq!(shard(2).owner_switches_since_checkpoint, 1);
    assert_eq!(
        shard(2).hash_key_range,
        Some(("0".into(), "85070591730234615865843651857942052863".into()))
    );
    assert_eq!(
        shard(3).checkpoint,
        Checkpoint::Sequence {
            sequence_number: "49646893826488424125584271561611123151834970046125703218".into(),
            sub_sequence_number: 7,
        }
    );
    assert_eq!(shard(4).checkpoint, Checkpoint::TrimHorizon);

    // Take over the Java worker's lease and checkpoint: the KCL attributes move,
    // the others stay.
    let ours = store.take(shard(2), "collector-1").await.unwrap();
    assert_eq!(
        (ours.counter, ours.owner_switches_since_checkpoint),
        (89, 2)
    );
    let ours = store
        .checkpoint(
            &ours,
            &Checkpoint::at("49646893826466123380385740938469587433562356411592065999"),
            &[],
        )
        .await
        .unwrap();
    store.release(&ours).await.unwrap();
    let raw = raw_item(&client, &store, "shardId-000000000002").await;
    assert_eq!(raw["throughputKBps"], AttributeValue::N("12.5".into()));
    assert_eq!(raw["startingHashKey"], AttributeValue::S("0".into()));
    assert_eq!(
        raw["parentShardId"],
        AttributeValue::Ss(vec!["shardId-000000000000".into()])
    );
    assert_eq!(raw["leaseCounter"], AttributeValue::N("91".into()));
    assert_eq!(
        raw["ownerSwitchesSinceCheckpoint"],
        AttributeValue::N("0".into())
    );
    assert_eq!(
        raw["checkpoint"],
        AttributeValue::S("49646893826466123380385740938469587433562356411592065999".into())
    );
    assert!(!raw.contains_key("leaseOwner"));

    let free = store.take(shard(3), "collector-1").await.unwrap();
    store.renew(&free).await.unwrap();
    let raw = raw_item(&client, &store, "shardId-000000000003").await;
    assert_eq!(
        raw["operatorNote"],
        AttributeValue::S("migrated from the Java consumer".into())
    );
    assert_eq!(
        raw["checkpointSubSequenceNumber"],
        AttributeValue::N("7".into())
    );
    aws::delete_table(&client, store.table()).await;
}

#[tokio::test]
async fn a_hung_table_cannot_hold_a_renewal_past_the_renew_interval() {
    // A server that accepts connections and never answers.
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let port = listener.local_addr().unwrap().port();
    let hold = tokio::spawn(async move {
        let mut held = Vec::new();
        while let Ok((socket, _)) = listener.accept().await {
            held.push(socket);
        }
    });
    let hung = aws_sdk_dynamodb::Client::from_conf(
        aws_sdk_dynamodb::config::Builder::from(&aws::config().await)
            .endpoint_url(format!("http://127.0.0.1:{port}"))
            .build(),
    );
    let lease_config = kinesis_collector::lease::LeaseConfig {
        failover: std::time::Duration::from_secs(1),
        ..Default::default()
    };
    let store = DynamoDbLeaseStore::new(with_timeout(&hung, lease_config.renew_interval()), "hung");
    let mut lease = Lease::new("shardId-000000000000", Checkpoint::TrimHorizon);
    lease.owner = Some("worker-a".into());
    let started = std::time::Instant::now();
    let err = store.renew(&lease).await.unwrap_err();
    let took = started.elapsed();
    assert!(err.is_transient(), "{err:?}");
    assert!(
        took < lease_config.renew_interval() + std::time::Duration::from_millis(500),
        "took {took:?}"
    );
    hold.abort();
}

#[tokio::test]
async fn the_holders_lag_round_trips_through_renew_and_checkpoint() {
    let (_client, store) = new_store().await;
    let lease = Lease::new("shardId-000000000000", Checkpoint::TrimHorizon);
    store.create(&lease).await.unwrap();
    let mut held = store.take(&lease, "worker-a").await.unwrap();
    assert_eq!(held.millis_behind_latest, None);
    held.millis_behind_latest = Some(86_400_000);
    let renewed = store.renew(&held).await.unwrap();
    let read = store.get(&lease.key).await.unwrap().unwrap();
    assert_eq!(read.millis_behind_latest, Some(86_400_000));
    let mut next = renewed;
    next.millis_behind_latest = Some(0);
    store
        .checkpoint(&next, &Checkpoint::at("42"), &[])
        .await
        .unwrap();
    let read = store.get(&lease.key).await.unwrap().unwrap();
    assert_eq!(
        (read.millis_behind_latest, read.checkpoint.as_str()),
        (Some(0), "42")
    );
}

#[tokio::test]
async fn the_streams_creation_time_is_kept_by_every_write() {
    let (client, store) = new_store().await;
    let mut lease = Lease::new("shardId-000000000000", Checkpoint::TrimHorizon);
    lease.stream_creation_epoch = Some(1_700_000_000);
    store.create(&lease).await.unwrap();
    let held = store.take(&lease, "worker-a").await.unwrap();
    let held = store.renew(&held).await.unwrap();
    let held = store
        .checkpoint(&held, &Checkpoint::at("42"), &[])
        .await
        .unwrap();
    let free = store.release(&held).await.unwrap();
    assert_eq!(free.stream_creation_epoch, Some(1_700_000_000));
    let raw = raw_item(&client, &store, &lease.key).await;
    assert_eq!(
        raw["streamCreationEpoch"],
        AttributeValue::N("1700000000".into())
    );
    aws::delete_table(&client, store.table()).await;
}

#[tokio::test]
async fn finished_leases_are_deleted_only_as_listed() {
    let (client, store) = new_store().await;
    let lease = Lease::new("shardId-000000000000", Checkpoint::TrimHorizon);
    store.create(&lease).await.unwrap();
    let held = store.take(&lease, "worker-a").await.unwrap();
    assert!(!store.delete_if(&held, DeleteIf::Finished).await.unwrap());
    let ended = store
        .checkpoint(&held, &Checkpoint::ShardEnd, &[])
        .await
        .unwrap();
    // A view older than the last write, or another owner: kept.
    assert!(!store.delete_if(&held, DeleteIf::Finished).await.unwrap());
    let mut other = ended.clone();
    other.owner = Some("worker-b".into());
    assert!(!store.delete_if(&other, DeleteIf::Finished).await.unwrap());
    other.owner = None;
    assert!(!store.delete_if(&other, DeleteIf::Finished).await.unwrap());
    assert!(store.delete_if(&ended, DeleteIf::Finished).await.unwrap());
    assert_eq!(store.get(&lease.key).await.unwrap(), None);
    assert!(!store.delete_if(&ended, DeleteIf::Finished).await.unwrap());
    // The holder learns at its next write that the lease is gone.
    assert_lost(store.renew(&ended).await, "deleted");
    aws::delete_table(&client, store.table()).await;
}

#[tokio::test]
async fn leases_of_an_earlier_stream_are_deleted_only_as_listed() {
    let (client, store) = new_store().await;
    // Ours, made for the earlier stream, and renewed since it was listed.
    let mut ours = Lease::new("shardId-000000000000", Checkpoint::at("7"));
    ours.stream_creation_epoch = Some(1_600_000_000);
    store.create(&ours).await.unwrap();
    let listed = ours.clone();
    let held = store.take(&ours, "worker-a").await.unwrap();
    let mut newer = listed.clone();
    newer.stream_creation_epoch = Some(1_700_000_000);
    assert!(!store.delete_if(&newer, DeleteIf::Stale).await.unwrap());
    assert!(store.delete_if(&listed, DeleteIf::Stale).await.unwrap());
    assert_lost(store.renew(&held).await, "deleted");

    // A KCL lease without a creation time: deleted while still without one and
    // at the checkpoint listed; the stamp goes only on a lease without one.
    let kcl = Lease::new("shardId-000000000001", Checkpoint::at("5"));
    store.create(&kcl).await.unwrap();
    let mut moved = kcl.clone();
    moved.checkpoint = Checkpoint::at("6");
    assert!(!store.delete_if(&moved, DeleteIf::Stale).await.unwrap());
    assert!(store
        .stamp_creation_epoch(&kcl.key, 1_700_000_000)
        .await
        .unwrap());
    assert!(!store
        .stamp_creation_epoch(&kcl.key, 1_800_000_000)
        .await
        .unwrap());
    assert!(!store
        .stamp_creation_epoch("shardId-000000000009", 1_700_000_000)
        .await
        .unwrap());
    assert_eq!(
        store.get("shardId-000000000009").await.unwrap(),
        None,
        "the stamp creates nothing"
    );
    let stamped = store.get(&kcl.key).await.unwrap().unwrap();
    assert_eq!(
        (stamped.stream_creation_epoch, stamped.counter),
        (Some(1_700_000_000), 0)
    );
    assert!(!store.delete_if(&kcl, DeleteIf::Stale).await.unwrap());
    assert!(store.delete_if(&stamped, DeleteIf::Stale).await.unwrap());
    aws::delete_table(&client, store.table()).await;
}
