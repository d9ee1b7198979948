//! The Kinesis API wrappers against kinesis-local: listing, iterators of every
//! type, reading back what was put, typed errors, and a split shard's end.

mod common {
    pub mod aws;
}

use std::time::{Duration, SystemTime};

use common::aws;
use kinesis_collector::kinesis::api::{
    describe_stream_summary, get_records, get_shard_iterator, list_shards, ApiError,
    GetRecordsError, RecordBatch, ShardFilter, StartingPosition,
};
use kinesis_collector::kinesis::StreamId;

/// The first hash key of the upper half of the hash key space (2^127).
use aws::MID_HASH_KEY;

fn data(batch: &RecordBatch) -> Vec<String> {
    batch
        .records
        .iter()
        .map(|r| String::from_utf8(r.data().as_ref().to_vec()).unwrap())
        .collect()
}

/// Reads from `position` until an empty answer (or the shard's end), at most 20 calls.
async fn read_all(
    client: &aws_sdk_kinesis::Client,
    stream: &StreamId,
    shard: &str,
    position: StartingPosition,
) -> (Vec<String>, RecordBatch) {
    let mut iterator = get_shard_iterator(client, stream, shard, &position)
        .await
        .unwrap();
    let mut seen = Vec::new();
    for _ in 0..20 {
        let batch = get_records(client, &iterator, 100).await.unwrap();
        seen.extend(data(&batch));
        match &batch.next_iterator {
            Some(next) if !batch.records.is_empty() => iterator = next.clone(),
            _ => return (seen, batch),
        }
    }
    panic!("shard {shard} did not run dry in 20 reads");
}

#[tokio::test]
async fn put_records_read_back_from_every_iterator_type() {
    let client = aws::kinesis().await;
    let name = aws::create_stream(&client, 2).await;
    let stream = StreamId::Name(name.clone());

    let summary = describe_stream_summary(&client, &stream).await.unwrap();
    assert_eq!(
        (summary.name.as_str(), summary.status.as_str()),
        (name.as_str(), "ACTIVE")
    );
    assert_eq!(summary.open_shard_count, 2);
    assert!(
        summary.arn.ends_with(&format!(":stream/{name}")),
        "{}",
        summary.arn
    );
    assert!(summary.creation_time > SystemTime::UNIX_EPOCH);

    // Addressing the stream by ARN works as well as by name.
    let by_arn = StreamId::parse(&summary.arn);
    let shards = list_shards(&client, &by_arn, None).await.unwrap();
    assert_eq!(shards.len(), 2, "{shards:?}");
    assert!(shards
        .iter()
        .all(|s| !s.is_closed() && s.parent_shard_ids.is_empty()));
    assert_eq!(shards[0].starting_hash_key, "0");
    let first = shards[0].shard_id.clone();

    let before = SystemTime::now() - Duration::from_secs(1);
    let mut seqs = Vec::new();
    for i in 0..5 {
        seqs.push(aws::put(&client, &name, "0", format!("r{i}").as_bytes()).await);
    }

    let (all, last) = read_all(&client, &stream, &first, StartingPosition::TrimHorizon).await;
    assert_eq!(all, ["r0", "r1", "r2", "r3", "r4"]);
    assert_eq!(last.millis_behind_latest, Some(0));
    assert!(
        last.next_iterator.is_some(),
        "an open shard always has a next iterator"
    );

    let (from_third, _) = read_all(
        &client,
        &stream,
        &first,
        StartingPosition::AtSequenceNumber(seqs[2].clone()),
    )
    .await;
    assert_eq!(from_third, ["r2", "r3", "r4"]);
    let (after_third, _) = read_all(
        &client,
        &stream,
        &first,
        StartingPosition::AfterSequenceNumber(seqs[2].clone()),
    )
    .await;
    assert_eq!(after_third, ["r3", "r4"]);
    let (since, _) = read_all(
        &client,
        &stream,
        &first,
        StartingPosition::AtTimestamp(before),
    )
    .await;
    assert_eq!(since, all);

    let latest = get_shard_iterator(&client, &stream, &first, &StartingPosition::Latest)
        .await
        .unwrap();
    assert!(get_records(&client, &latest, 100)
        .await
        .unwrap()
        .records
        .is_empty());
    aws::put(&client, &name, "0", b"r5").await;
    let batch = get_records(&client, &latest, 100).await.unwrap();
    assert_eq!(data(&batch), ["r5"]);
    // Sequence numbers are the 56-digit kind and grow.
    assert!(seqs
        .iter()
        .all(|s| s.len() > 20 && s.bytes().all(|b| b.is_ascii_digit())));
    assert!(seqs
        .windows(2)
        .all(|w| (w[0].len(), &w[0]) < (w[1].len(), &w[1])));

    aws::delete_stream(&client, &name).await;
}

#[tokio::test]
async fn split_shard_ends_its_parent_with_children() {
    let client = aws::kinesis().await;
    let name = aws::create_stream(&client, 1).await;
    let stream = StreamId::Name(name.clone());
    let parent = list_shards(&client, &stream, None)
        .await
        .unwrap()
        .remove(0)
        .shard_id;
    aws::put(&client, &name, "0", b"before-1").await;
    aws::put(&client, &name, MID_HASH_KEY, b"before-2").await;

    aws::split_in_half(&client, &name, &parent).await;

    let shards = list_shards(&client, &stream, None).await.unwrap();
    assert_eq!(shards.len(), 3, "{shards:?}");
    let closed: Vec<_> = shards.iter().filter(|s| s.is_closed()).collect();
    assert_eq!(closed.len(), 1);
    assert_eq!(closed[0].shard_id, parent);
    let open = list_shards(&client, &stream, Some(&ShardFilter::AtLatest))
        .await
        .unwrap();
    assert_eq!(open.len(), 2, "{open:?}");
    assert!(open.iter().all(|s| s.parent_shard_ids == [parent.clone()]));
    let after = list_shards(
        &client,
        &stream,
        Some(&ShardFilter::AfterShardId(parent.clone())),
    )
    .await
    .unwrap();
    assert_eq!(after.len(), 2, "{after:?}");

    // Reading the parent to its end: its records, then no next iterator and the
    // children named.
    let (records, end) = read_all(&client, &stream, &parent, StartingPosition::TrimHorizon).await;
    assert_eq!(records, ["before-1", "before-2"]);
    assert!(end.is_shard_end(), "{end:?}");
    let mut children: Vec<_> = end
        .child_shards
        .iter()
        .map(|c| c.shard_id.clone())
        .collect();
    children.sort();
    let mut want: Vec<_> = open.iter().map(|s| s.shard_id.clone()).collect();
    want.sort();
    assert_eq!(children, want);
    assert!(end
        .child_shards
        .iter()
        .all(|c| c.parent_shard_ids == [parent.clone()]));

    // New records go to the children.
    aws::put(&client, &name, "0", b"after").await;
    let low_child = open.iter().find(|s| s.starting_hash_key == "0").unwrap();
    let (records, _) = read_all(
        &client,
        &stream,
        &low_child.shard_id,
        StartingPosition::TrimHorizon,
    )
    .await;
    assert_eq!(records, ["after"]);

    aws::delete_stream(&client, &name).await;
}

#[tokio::test]
async fn errors_are_typed() {
    let client = aws::kinesis().await;
    let missing = StreamId::Name(aws::unique_name("missing"));
    let err = describe_stream_summary(&client, &missing)
        .await
        .unwrap_err();
    assert!(matches!(err, ApiError::ResourceNotFound(_)), "{err:?}");
    assert!(err.to_string().contains("DescribeStreamSummary"), "{err}");
    let err = list_shards(&client, &missing, None).await.unwrap_err();
    assert!(matches!(err, ApiError::ResourceNotFound(_)), "{err:?}");

    let name = aws::create_stream(&client, 1).await;
    let stream = StreamId::Name(name.clone());
    let err = get_shard_iterator(
        &client,
        &stream,
        "shardId-000000000099",
        &StartingPosition::TrimHorizon,
    )
    .await
    .unwrap_err();
    assert!(matches!(err, ApiError::ResourceNotFound(_)), "{err:?}");
    // AWS answers InvalidArgumentException (fatal); kinesis-local an empty 500,
    // which is transient. Either way it is no batch.
    // (No SDK retries of that 500, to keep the test quick.)
    let no_retry = aws_sdk_kinesis::Client::from_conf(
        aws_sdk_kinesis::config::Builder::from(&aws::config().await)
            .retry_config(aws_config::retry::RetryConfig::disabled())
            .build(),
    );
    let err = get_records(&no_retry, "not-an-iterator", 10)
        .await
        .unwrap_err();
    assert!(
        matches!(
            err,
            GetRecordsError::Fatal(_) | GetRecordsError::Transient(_)
        ),
        "{err:?}"
    );
    aws::delete_stream(&client, &name).await;
}
