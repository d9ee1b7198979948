//! The collector (`App`, in process) and lease tables: two workers started
//! together share 8 shards evenly, and a lease table written by a Java KCL 2.x
//! worker is taken over with its checkpoints honoured and its other attributes
//! kept. Same set-up as `run_collector.rs`: kinesis-local, moto's DynamoDB, a TCP
//! line receiver, a 2 s failover.

mod common {
    pub mod aws;
    pub mod collector;
}

use std::collections::BTreeSet;
use std::time::Duration;

use common::aws;
use common::collector::*;
use kinesis_collector::lease::LeaseStore;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn two_workers_started_together_split_eight_shards_evenly() {
    let _one_at_a_time = aws::one_at_a_time().await;
    let (kinesis, setup, receiver, _store) = setup(8).await;
    let want = publish(&kinesis, &setup.stream, 0, 8, 2).await;
    let started = tokio::time::Instant::now();
    let a = Worker::start(&setup, "a");
    let b = Worker::start(&setup, "b");
    // Two take intervals (2 × 4 s), and a little for a loaded machine.
    aws::wait_for("a 4/4 split", Duration::from_secs(8 + 3), || async {
        (a.leases() == 4 && b.leases() == 4).then_some(())
    })
    .await;
    eprintln!("4/4 after {:?}", started.elapsed());
    receiver.wait_for_all(&want, Duration::from_secs(30)).await;
    a.stop().await;
    b.stop().await;
    assert_each_once(&receiver, &want);
    aws::delete_stream(&kinesis, &setup.stream).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_kcl_2_lease_table_is_taken_over_with_its_checkpoints() {
    let _one_at_a_time = aws::one_at_a_time().await;
    use aws_sdk_dynamodb::types::AttributeValue as A;
    let (kinesis, setup, receiver, store) = setup(2).await;
    // Three records on shard 0 (the lower half of the key space), one on shard 1.
    let mut seqs = Vec::new();
    for n in 0..3u64 {
        seqs.push(
            aws::put(
                &kinesis,
                &setup.stream,
                HASH_KEYS[0],
                &payload(n * 10..n * 10 + 2),
            )
            .await,
        );
    }
    aws::put(&kinesis, &setup.stream, HASH_KEYS[3], &payload(100..102)).await;
    // The table as a Java KCL 2.x worker left it: shard 0 held by that (dead)
    // worker and checkpointed after its second record; shard 1 free at
    // TRIM_HORIZON; an attribute of KCL 3.x's that must be kept.
    store.ensure_table().await.unwrap();
    let dynamodb = aws::dynamodb().await;
    let kcl_owner = "ip-10-0-1-17.ec2.internal:3f6c1f0e-9a4e-4a5b-8f0e-2d1c7b9a1e55";
    let item = |shard: &str, owner: Option<&str>, checkpoint: &str, start: &str, end: &str| {
        let mut put = dynamodb
            .put_item()
            .table_name(&setup.application)
            .item("leaseKey", A::S(shard.into()))
            .item("leaseCounter", A::N("1523".into()))
            .item("checkpoint", A::S(checkpoint.into()))
            .item("checkpointSubSequenceNumber", A::N("0".into()))
            .item("ownerSwitchesSinceCheckpoint", A::N("0".into()))
            .item("startingHashKey", A::S(start.into()))
            .item("endingHashKey", A::S(end.into()))
            .item("throughputKBps", A::N("12.5".into()));
        if let Some(owner) = owner {
            put = put.item("leaseOwner", A::S(owner.into()));
        }
        put
    };
    item(
        "shardId-000000000000",
        Some(kcl_owner),
        &seqs[1],
        "0",
        "170141183460469231731687303715884105727",
    )
    .send()
    .await
    .unwrap();
    item(
        "shardId-000000000001",
        None,
        "TRIM_HORIZON",
        "170141183460469231731687303715884105728",
        "340282366920938463463374607431768211455",
    )
    .send()
    .await
    .unwrap();
    let worker = Worker::start(&setup, "w1");
    let want: BTreeSet<u64> = [20, 21, 100, 101].into_iter().collect();
    // The KCL worker's lease expires after the failover time (2 s).
    receiver.wait_for_all(&want, Duration::from_secs(30)).await;
    worker.stop().await;
    assert_each_once(&receiver, &want);
    let kept = dynamodb
        .get_item()
        .table_name(&setup.application)
        .key("leaseKey", A::S("shardId-000000000000".into()))
        .consistent_read(true)
        .send()
        .await
        .unwrap();
    let kept = kept.item().unwrap();
    assert_eq!(kept.get("throughputKBps"), Some(&A::N("12.5".into())));
    assert_eq!(kept.get("checkpoint"), Some(&A::S(seqs[2].clone())));
    assert_eq!(kept.get("leaseOwner"), None, "released");
    // Adopted as this stream's: stamped with its creation time.
    let created = kinesis
        .describe_stream_summary()
        .stream_name(&setup.stream)
        .send()
        .await
        .unwrap()
        .stream_description_summary()
        .unwrap()
        .stream_creation_timestamp()
        .secs();
    assert_eq!(
        kept.get("streamCreationEpoch"),
        Some(&A::N(created.to_string()))
    );
    aws::delete_stream(&kinesis, &setup.stream).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn two_streams_share_one_lease_table_with_multi_stream_keys() {
    let _one_at_a_time = aws::one_at_a_time().await;
    let (kinesis, mut setup, receiver, store) = setup(2).await;
    let other = aws::create_stream(&kinesis, 1).await;
    setup.more_streams.push(other.clone());
    let mut want = publish(&kinesis, &setup.stream, 0, 4, 3).await;
    want.extend(publish(&kinesis, &other, 1000, 4, 3).await);
    let worker = Worker::start(&setup, "w1");
    receiver.wait_for_all(&want, Duration::from_secs(30)).await;
    worker.stop().await;
    assert_each_once(&receiver, &want);
    let leases = store.list().await.unwrap();
    assert_eq!(leases.len(), 3, "{leases:?}");
    for lease in &leases {
        // account:stream:creationEpoch:shardId
        let parts: Vec<&str> = lease.key.split(':').collect();
        assert_eq!(parts.len(), 4, "{lease:?}");
        assert!(parts[1] == setup.stream || parts[1] == other, "{lease:?}");
        assert_eq!(lease.shard_id.as_deref(), Some(parts[3]));
    }
    aws::delete_stream(&kinesis, &setup.stream).await;
    aws::delete_stream(&kinesis, &other).await;
}
