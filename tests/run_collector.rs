//! The whole collector (`App`, in process) on kinesis-local and moto's DynamoDB,
//! delivering into a TCP line receiver of the test's own: draining a stream,
//! poison records, restarts, a clean-stop handover, a crashed worker's failover
//! and resharding. A 2 s lease failover keeps the timing tests short; every wait
//! is bounded and on a condition.

mod common {
    pub mod aws;
    pub mod collector;
}

use std::collections::BTreeSet;
use std::path::Path;
use std::sync::atomic::Ordering;
use std::time::Duration;

use common::aws;
use common::collector::*;
use kinesis_collector::lease::{Checkpoint, LeaseStore};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn one_worker_drains_a_four_shard_stream_each_event_once() {
    let _one_at_a_time = aws::one_at_a_time().await;
    let (kinesis, setup, receiver, store) = setup(4).await;
    let want = publish(&kinesis, &setup.stream, 0, 20, 10).await;
    let worker = Worker::start(&setup, "w1");
    tokio::time::timeout(Duration::from_secs(20), worker.app.ready().cancelled())
        .await
        .expect("ready");
    receiver.wait_for_all(&want, Duration::from_secs(30)).await;
    let status = worker.app.sink_status().expect("sink started");
    assert!(status.connected, "{status:?}");
    let telemetry = worker.app.telemetry().clone();
    worker.stop().await;
    assert_each_once(&receiver, &want);
    // Every line is an FSM line.
    assert!(receiver
        .lines()
        .iter()
        .all(|l| l.contains("[FSM-AWSKinesis]")));
    // Checkpointed at each shard's last record, leases released.
    let leases = store.list().await.unwrap();
    assert_eq!(leases.len(), 4);
    for lease in &leases {
        assert_eq!(lease.owner, None, "released: {lease:?}");
        assert!(
            matches!(lease.checkpoint, Checkpoint::Sequence { .. }),
            "{lease:?}"
        );
    }
    let events: u64 = telemetry
        .shards()
        .iter()
        .map(|(_, m)| {
            m.events
                .iter()
                .map(|e| e.load(Ordering::Relaxed))
                .sum::<u64>()
        })
        .sum();
    assert_eq!(events, 200);
    aws::delete_stream(&kinesis, &setup.stream).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_poison_record_is_counted_dead_lettered_and_skipped() {
    let _one_at_a_time = aws::one_at_a_time().await;
    let (kinesis, mut setup, receiver, store) = setup(1).await;
    let dir = tempfile::tempdir().unwrap();
    setup.dead_letter_dir = Some(dir.path().display().to_string());
    let mut want = publish(&kinesis, &setup.stream, 0, 1, 3).await;
    // A truncated gzip stream: fails to decode.
    let mut poison = payload(100..103);
    poison.truncate(poison.len() - 12);
    let poison_seq = aws::put(&kinesis, &setup.stream, HASH_KEYS[0], &poison).await;
    want.extend(publish(&kinesis, &setup.stream, 200, 1, 3).await);
    let worker = Worker::start(&setup, "w1");
    receiver.wait_for_all(&want, Duration::from_secs(30)).await;
    let telemetry = worker.app.telemetry().clone();
    worker.stop().await;
    assert_each_once(&receiver, &want);
    let errors: u64 = telemetry
        .shards()
        .iter()
        .map(|(_, m)| m.decode_errors.load(Ordering::Relaxed))
        .sum();
    assert_eq!(errors, 1);
    let files: Vec<String> = std::fs::read_dir(dir.path())
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .collect();
    assert_eq!(
        files,
        [format!(
            "{}_shardId-000000000000_{poison_seq}.bin",
            setup.stream
        )]
    );
    assert_eq!(
        std::fs::read(dir.path().join(&files[0])).unwrap(),
        poison,
        "written raw"
    );
    // The shard went on past it: checkpointed at the last record.
    let lease = &store.list().await.unwrap()[0];
    assert!(
        matches!(&lease.checkpoint, Checkpoint::Sequence { sequence_number, .. } if sequence_number.as_str() > poison_seq.as_str()),
        "{lease:?}"
    );
    aws::delete_stream(&kinesis, &setup.stream).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_restart_resumes_from_the_checkpoints() {
    let _one_at_a_time = aws::one_at_a_time().await;
    let (kinesis, setup, receiver, _store) = setup(2).await;
    let first = publish(&kinesis, &setup.stream, 0, 6, 5).await;
    let worker = Worker::start(&setup, "w1");
    receiver.wait_for_all(&first, Duration::from_secs(30)).await;
    worker.stop().await;
    let before = receiver.seqs().len();
    let second = publish(&kinesis, &setup.stream, 1000, 6, 5).await;
    let worker = Worker::start(&setup, "w2");
    receiver
        .wait_for_all(&second, Duration::from_secs(30))
        .await;
    worker.stop().await;
    // After a clean stop everything was checkpointed: only new events follow.
    let after: BTreeSet<u64> = receiver.seqs()[before..].iter().copied().collect();
    assert_eq!(after, second);
    let all: BTreeSet<u64> = first.union(&second).copied().collect();
    assert_each_once(&receiver, &all);
    aws::delete_stream(&kinesis, &setup.stream).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_clean_stop_hands_the_shards_over_within_one_take_interval() {
    let _one_at_a_time = aws::one_at_a_time().await;
    let (kinesis, setup, receiver, store) = setup(4).await;
    let first = publish(&kinesis, &setup.stream, 0, 8, 5).await;
    let (a, b) = start_pair(&setup, &receiver, &first).await;
    b.stop().await;
    let stopped = tokio::time::Instant::now();
    aws::wait_for(
        "a owns every shard",
        Duration::from_secs(4) + Duration::from_secs(2),
        || async { (a.leases() == 4).then_some(()) },
    )
    .await;
    eprintln!("handover took {:?}", stopped.elapsed());
    let second = publish(&kinesis, &setup.stream, 1000, 8, 5).await;
    receiver
        .wait_for_all(&second, Duration::from_secs(30))
        .await;
    a.stop().await;
    let leases = store.list().await.unwrap();
    assert!(owners(&leases).values().all(Option::is_none), "{leases:?}");
    let all: BTreeSet<u64> = first.union(&second).copied().collect();
    assert_each_once(&receiver, &all);
    aws::delete_stream(&kinesis, &setup.stream).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_killed_worker_s_shards_are_taken_after_the_failover_time() {
    let _one_at_a_time = aws::one_at_a_time().await;
    let (kinesis, setup, receiver, store) = setup(4).await;
    let first = publish(&kinesis, &setup.stream, 0, 8, 5).await;
    let (a, b) = start_pair(&setup, &receiver, &first).await;
    // Killed: no drain, no final checkpoint, no release.
    b.task.abort();
    let killed = tokio::time::Instant::now();
    let second = publish(&kinesis, &setup.stream, 1000, 8, 5).await;
    // failover (2 s) + two take intervals (8 s).
    aws::wait_for(
        "a owns every shard",
        Duration::from_secs(10) + Duration::from_secs(2),
        || async { (a.leases() == 4).then_some(()) },
    )
    .await;
    eprintln!("failover took {:?}", killed.elapsed());
    receiver
        .wait_for_all(&second, Duration::from_secs(30))
        .await;
    a.stop().await;
    let leases = store.list().await.unwrap();
    assert_eq!(leases.len(), 4);
    // Nothing lost (duplicates allowed after b's last checkpoint).
    let got: BTreeSet<u64> = receiver.seqs().into_iter().collect();
    let all: BTreeSet<u64> = first.union(&second).copied().collect();
    assert!(all.is_subset(&got));
    aws::delete_stream(&kinesis, &setup.stream).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn after_a_split_and_a_merge_children_follow_their_parents() {
    let _one_at_a_time = aws::one_at_a_time().await;
    let (kinesis, setup, receiver, _store) = setup(1).await;
    let parent_events = publish(&kinesis, &setup.stream, 0, 4, 5).await;
    let worker = Worker::start(&setup, "w1");
    receiver
        .wait_for_all(&parent_events, Duration::from_secs(30))
        .await;
    aws::split_in_half(&kinesis, &setup.stream, "shardId-000000000000").await;
    let children_events = publish(&kinesis, &setup.stream, 1000, 4, 5).await;
    receiver
        .wait_for_all(&children_events, Duration::from_secs(30))
        .await;
    // Merge the two children back into one.
    kinesis
        .merge_shards()
        .stream_name(&setup.stream)
        .shard_to_merge("shardId-000000000001")
        .adjacent_shard_to_merge("shardId-000000000002")
        .send()
        .await
        .unwrap();
    aws::wait_stream_active(&kinesis, &setup.stream).await;
    let merged_events = publish(&kinesis, &setup.stream, 2000, 4, 5).await;
    receiver
        .wait_for_all(&merged_events, Duration::from_secs(30))
        .await;
    worker.stop().await;
    let seqs = receiver.seqs();
    let all: BTreeSet<u64> = parent_events
        .iter()
        .chain(&children_events)
        .chain(&merged_events)
        .copied()
        .collect();
    assert_each_once(&receiver, &all);
    // Each generation's events come after the previous one's.
    let position = |n: u64| seqs.iter().position(|&s| s == n).unwrap();
    let last_parent = parent_events.iter().map(|&n| position(n)).max().unwrap();
    let first_child = children_events.iter().map(|&n| position(n)).min().unwrap();
    let last_child = children_events.iter().map(|&n| position(n)).max().unwrap();
    let first_merged = merged_events.iter().map(|&n| position(n)).min().unwrap();
    assert!(
        last_parent < first_child && last_child < first_merged,
        "{seqs:?}"
    );
    aws::delete_stream(&kinesis, &setup.stream).await;
}

#[test]
fn run_refuses_a_config_without_streams_with_exit_1() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("c.toml");
    std::fs::write(&path, "[collector]\napplication = \"x-app\"\n").unwrap();
    let out = std::process::Command::new(env!("CARGO_BIN_EXE_kinesis-collector"))
        .args(["run", "--config"])
        .arg(Path::new(&path))
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(1));
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(stderr.contains("streams"), "{stderr}");
}

/// Starts workers `a` and `b`, waits until they split the 4 shards between them
/// (within one take interval, 2 × failover = 4 s, plus slack) and until `first`
/// was delivered.
async fn start_pair(setup: &Setup, receiver: &Receiver, first: &BTreeSet<u64>) -> (Worker, Worker) {
    let a = Worker::start(setup, "a");
    let b = Worker::start(setup, "b");
    aws::wait_for(
        "both workers hold leases",
        Duration::from_secs(20),
        || async {
            (a.leases() > 0 && b.leases() > 0 && a.leases() + b.leases() == 4).then_some(())
        },
    )
    .await;
    receiver.wait_for_all(first, Duration::from_secs(30)).await;
    (a, b)
}
