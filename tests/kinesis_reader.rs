//! The shard reader against kinesis-local: reading from the start, resuming from a
//! checkpoint (plain and inside a KPL aggregate), and a split shard read to its end.

mod common {
    pub mod aws;
}

use std::time::Duration;

use common::aws;
use kinesis_collector::kinesis::reader::{
    read_shard, ReadEnd, ReaderConfig, ShardMessage, Start, StreamShards,
};
use kinesis_collector::kinesis::{api::list_shards, StreamId};
use kinesis_collector::lease::Checkpoint;
use tokio::sync::mpsc;
use tokio_util::sync::CancellationToken;

fn config() -> ReaderConfig {
    ReaderConfig {
        poll_interval: Duration::from_millis(200),
        ..ReaderConfig::default()
    }
}

/// Runs a reader until `want` records arrived (then cancels it) or the shard
/// ends; returns the records' data, their sequence numbers, the messages'
/// skip hints and how it ended.
async fn read(
    api: &StreamShards,
    shard: &str,
    start: Start,
    want: usize,
) -> (
    Vec<String>,
    Vec<String>,
    Vec<Option<(String, u64)>>,
    ReadEnd,
) {
    let (tx, mut rx) = mpsc::channel(16);
    let cancel = CancellationToken::new();
    let config = config();
    let budget = config.byte_budget();
    let reader = read_shard(api, shard, start, &config, Some(&budget), &tx, &cancel);
    let collect = async {
        let (mut data, mut seqs, mut hints) = (Vec::new(), Vec::new(), Vec::new());
        while let Some(message) = rx.recv().await {
            match message {
                ShardMessage::Records(batch) => {
                    hints.push(batch.done_sub_records.clone());
                    for r in &batch.records {
                        data.push(String::from_utf8(r.data().as_ref().to_vec()).unwrap());
                        seqs.push(r.sequence_number().to_owned());
                    }
                }
                ShardMessage::End { .. } => break,
            }
            if data.len() >= want {
                cancel.cancel();
                break;
            }
        }
        (data, seqs, hints)
    };
    let (end, (data, seqs, hints)) = tokio::time::timeout(Duration::from_secs(20), async {
        tokio::join!(reader, collect)
    })
    .await
    .expect("reader timed out");
    (data, seqs, hints, end.unwrap())
}

#[tokio::test]
async fn reads_and_resumes_from_checkpoints() {
    let client = aws::kinesis().await;
    let name = aws::create_stream(&client, 1).await;
    let stream = StreamId::Name(name.clone());
    let shard = list_shards(&client, &stream, None)
        .await
        .unwrap()
        .remove(0)
        .shard_id;
    for i in 0..12 {
        aws::put(&client, &name, "0", format!("r{i}").as_bytes()).await;
    }
    let api = StreamShards {
        client: client.clone(),
        stream,
    };

    let start = Start::from_checkpoint(&Checkpoint::TrimHorizon, None).unwrap();
    let (data, seqs, _, end) = read(&api, &shard, start, 12).await;
    assert_eq!(end, ReadEnd::Stopped);
    assert_eq!(data, (0..12).map(|i| format!("r{i}")).collect::<Vec<_>>());

    // After a checkpoint at r5: r6 on.
    let start = Start::from_checkpoint(&Checkpoint::at(seqs[5].clone()), None).unwrap();
    let (data, _, hints, _) = read(&api, &shard, start, 6).await;
    assert_eq!(data[0], "r6");
    assert_eq!(data.len(), 6);
    assert_eq!(hints[0], None);

    // Inside a KPL aggregate at r3 (sub-records 0..=2 done): r3 again, with the hint.
    let start = Start::from_checkpoint(&Checkpoint::parse(&seqs[3], 2).unwrap(), None).unwrap();
    let (data, _, hints, _) = read(&api, &shard, start, 1).await;
    assert_eq!(data[0], "r3");
    assert_eq!(hints[0], Some((seqs[3].clone(), 2)));

    aws::delete_stream(&client, &name).await;
}

#[tokio::test]
async fn a_split_parent_is_read_to_its_end() {
    let client = aws::kinesis().await;
    let name = aws::create_stream(&client, 1).await;
    let stream = StreamId::Name(name.clone());
    let parent = list_shards(&client, &stream, None)
        .await
        .unwrap()
        .remove(0)
        .shard_id;
    for i in 0..3 {
        aws::put(&client, &name, "0", format!("p{i}").as_bytes()).await;
    }
    aws::split_in_half(&client, &name, &parent).await;

    let api = StreamShards {
        client: client.clone(),
        stream,
    };
    let (tx, mut rx) = mpsc::channel(16);
    let cancel = CancellationToken::new();
    let start = Start::from_checkpoint(&Checkpoint::TrimHorizon, None).unwrap();
    let end = tokio::time::timeout(
        Duration::from_secs(20),
        read_shard(&api, &parent, start, &config(), None, &tx, &cancel),
    )
    .await
    .expect("parent read to its end")
    .unwrap();
    assert_eq!(end, ReadEnd::ShardEnd);
    drop(tx);
    let mut data = Vec::new();
    let mut children = Vec::new();
    while let Some(message) = rx.recv().await {
        match message {
            ShardMessage::Records(batch) => data.extend(
                batch
                    .records
                    .iter()
                    .map(|r| String::from_utf8(r.data().as_ref().to_vec()).unwrap()),
            ),
            ShardMessage::End { children: c, .. } => children = c,
        }
    }
    assert_eq!(data, ["p0", "p1", "p2"]);
    assert_eq!(children.len(), 2, "{children:?}");
    assert!(children
        .iter()
        .all(|c| c.parent_shard_ids == [parent.clone()]));

    // The reader of a lease already at SHARD_END reads nothing.
    let (tx, _rx) = mpsc::channel(1);
    let ended = read_shard(&api, &parent, Start::Ended, &config(), None, &tx, &cancel)
        .await
        .unwrap();
    assert_eq!(ended, ReadEnd::ShardEnd);
    aws::delete_stream(&client, &name).await;
}
