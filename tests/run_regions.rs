//! Several regions in one process: the `kinesis-collector run` binary reads a
//! stream of the same name in us-east-1 and us-west-2 (kinesis-local keeps
//! streams per region, by the region of the request's signature) plus a second
//! stream in us-west-2 only, and keeps one lease table per region in that
//! region (moto keeps DynamoDB tables per region): us-east-1's holds its one
//! stream's shards keyed by shard id, us-west-2's its two streams' shards in
//! KCL multi-stream form.

mod common {
    pub mod aws;
    pub mod collector;
    pub mod collector_process;
}

use std::collections::{BTreeMap, BTreeSet};
use std::time::Duration;

use common::aws;
use common::collector::{assert_each_once, payload, Receiver, HASH_KEYS};
use common::collector_process::{config_text, CollectorProcess};
use kinesis_collector::aws::{sdk_config, AwsTarget};
use kinesis_collector::lease::dynamodb::DynamoDbLeaseStore;
use kinesis_collector::lease::{Checkpoint, Lease, LeaseStore};

const EAST: &str = "us-east-1";
const WEST: &str = "us-west-2";

async fn region_config(region: &str) -> aws_config::SdkConfig {
    aws::ensure_emulators();
    let target = AwsTarget {
        region: Some(region.into()),
        ..AwsTarget::default()
    };
    sdk_config(&target, "run-regions").await.unwrap()
}

/// Puts `records` records of 5 events each, numbered from `first`, round robin
/// over the key space; returns the event numbers and the records' sequence
/// numbers.
async fn publish(
    kinesis: &aws_sdk_kinesis::Client,
    stream: &str,
    first: u64,
    records: u64,
) -> (BTreeSet<u64>, BTreeSet<String>) {
    let (mut events, mut sequences) = (BTreeSet::new(), BTreeSet::new());
    for r in 0..records {
        let numbers = first + r * 5..first + r * 5 + 5;
        events.extend(numbers.clone());
        let key = HASH_KEYS[(r % 4) as usize];
        sequences.insert(aws::put(kinesis, stream, key, &payload(numbers)).await);
    }
    (events, sequences)
}

/// The stream's ARN and creation time (seconds), as the multi-stream lease key
/// names it: `account:stream:creationEpoch`.
async fn multi_stream_name(kinesis: &aws_sdk_kinesis::Client, stream: &str) -> String {
    let summary = kinesis
        .describe_stream_summary()
        .stream_name(stream)
        .send()
        .await
        .unwrap();
    let summary = summary.stream_description_summary().unwrap();
    let account = summary.stream_arn().split(':').nth(4).unwrap().to_owned();
    let epoch = summary.stream_creation_timestamp().secs();
    format!("{account}:{stream}:{epoch}")
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn one_process_reads_a_stream_in_two_regions_with_a_lease_table_in_each() {
    let (east, west) = (region_config(EAST).await, region_config(WEST).await);
    let (east_kinesis, west_kinesis) = (
        aws_sdk_kinesis::Client::new(&east),
        aws_sdk_kinesis::Client::new(&west),
    );
    // The same name in both regions, different shard counts and events; another
    // stream in us-west-2 only.
    let name = aws::unique_name("regions");
    let other = aws::unique_name("regions-west-only");
    aws::create_stream_named(&east_kinesis, &name, 2).await;
    aws::create_stream_named(&west_kinesis, &name, 3).await;
    aws::create_stream_named(&west_kinesis, &other, 1).await;
    let (east_events, east_sequences) = publish(&east_kinesis, &name, 0, 6).await;
    let (west_events, mut west_sequences) = publish(&west_kinesis, &name, 1000, 6).await;
    let (other_events, other_sequences) = publish(&west_kinesis, &other, 2000, 3).await;
    west_sequences.extend(other_sequences);

    let (receiver, port) = Receiver::start().await;
    let application = aws::unique_name("regions-app");
    let streams = format!(
        "[[streams]]\nname = \"{name}\"\nregions = [\"{EAST}\", \"{WEST}\"]\n\
         [[streams]]\nname = \"{other}\"\nregions = [\"{WEST}\"]\n"
    );
    let collector = CollectorProcess::start(&config_text(&application, &streams, port), &[]);
    let want: BTreeSet<u64> = east_events
        .iter()
        .chain(&west_events)
        .chain(&other_events)
        .copied()
        .collect();
    collector
        .deliver_and_stop(&receiver, &want, Duration::from_secs(45))
        .await;
    assert_each_once(&receiver, &want);

    // One table per region, in that region, each with that region's shards only,
    // released and checkpointed at a record written in that region.
    let leases = |config: &aws_config::SdkConfig| {
        let store =
            DynamoDbLeaseStore::new(aws_sdk_dynamodb::Client::new(config), application.clone());
        async move { store.list().await.expect("lease table in the region") }
    };
    let checkpoint_of = |lease: &Lease| match &lease.checkpoint {
        Checkpoint::Sequence {
            sequence_number, ..
        } => sequence_number.clone(),
        other => panic!("not checkpointed at a record: {lease:?} ({other:?})"),
    };
    let east_leases = leases(&east).await;
    let keys: BTreeSet<&str> = east_leases.iter().map(|l| l.key.as_str()).collect();
    assert_eq!(
        keys,
        BTreeSet::from(["shardId-000000000000", "shardId-000000000001"]),
        "one stream in us-east-1: leases keyed by shard id"
    );
    for lease in &east_leases {
        assert_eq!(lease.owner, None, "released: {lease:?}");
        assert!(
            east_sequences.contains(&checkpoint_of(lease)),
            "{lease:?} is not at a us-east-1 record"
        );
    }

    let west_leases = leases(&west).await;
    let mut per_stream: BTreeMap<String, BTreeSet<String>> = BTreeMap::new();
    for lease in &west_leases {
        assert_eq!(lease.owner, None, "released: {lease:?}");
        assert!(
            west_sequences.contains(&checkpoint_of(lease)),
            "{lease:?} is not at a us-west-2 record"
        );
        let stream = lease.stream_name.clone().expect("multi-stream lease");
        assert_eq!(lease.key, format!("{stream}:{}", lease.shard_id()));
        per_stream
            .entry(stream)
            .or_default()
            .insert(lease.shard_id().to_owned());
    }
    let shards =
        |n: usize| -> BTreeSet<String> { (0..n).map(|i| format!("shardId-{i:012}")).collect() };
    assert_eq!(
        per_stream,
        BTreeMap::from([
            (multi_stream_name(&west_kinesis, &name).await, shards(3)),
            (multi_stream_name(&west_kinesis, &other).await, shards(1)),
        ]),
        "two streams in us-west-2: multi-stream keys"
    );

    for (kinesis, stream) in [
        (&east_kinesis, &name),
        (&west_kinesis, &name),
        (&west_kinesis, &other),
    ] {
        aws::delete_stream(kinesis, stream).await;
    }
    for config in [&east, &west] {
        aws::delete_table(&aws_sdk_dynamodb::Client::new(config), &application).await;
    }
}
