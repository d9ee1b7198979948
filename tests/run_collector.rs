//! The whole collector (`App`, in process) on kinesis-local and moto's DynamoDB,
//! delivering into a TCP line receiver of the test's own: draining a stream,
//! poison records, restarts, a clean-stop handover, a crashed worker's failover
//! and resharding. A 2 s lease failover keeps the timing tests short; every wait
//! is bounded and on a condition.

mod common {
    pub mod aws;
}

use std::collections::{BTreeMap, BTreeSet};
use std::io::Write;
use std::path::Path;
use std::sync::atomic::Ordering;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use common::aws;
use kinesis_collector::app::App;
use kinesis_collector::config::Config;
use kinesis_collector::lease::dynamodb::DynamoDbLeaseStore;
use kinesis_collector::lease::{Checkpoint, Lease, LeaseStore};
use tokio::io::AsyncBufReadExt;
use tokio::task::JoinHandle;
use tokio_util::sync::CancellationToken;

/// A TCP receiver that keeps every line it gets.
#[derive(Clone, Default)]
struct Receiver {
    lines: Arc<Mutex<Vec<String>>>,
}

impl Receiver {
    async fn start() -> (Receiver, u16) {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let port = listener.local_addr().unwrap().port();
        let receiver = Receiver::default();
        let lines = receiver.lines.clone();
        tokio::spawn(async move {
            while let Ok((socket, _)) = listener.accept().await {
                let lines = lines.clone();
                tokio::spawn(async move {
                    let mut reader = tokio::io::BufReader::new(socket).lines();
                    while let Ok(Some(line)) = reader.next_line().await {
                        lines.lock().unwrap().push(line);
                    }
                });
            }
        });
        (receiver, port)
    }

    fn lines(&self) -> Vec<String> {
        self.lines.lock().unwrap().clone()
    }

    /// The `seq=` numbers received, in arrival order.
    fn seqs(&self) -> Vec<u64> {
        self.lines().iter().filter_map(|l| seq_of(l)).collect()
    }

    async fn wait_for_all(&self, want: &BTreeSet<u64>, timeout: Duration) {
        aws::wait_for("every event delivered", timeout, || async {
            let got: BTreeSet<u64> = self.seqs().into_iter().collect();
            want.is_subset(&got).then_some(())
        })
        .await;
    }
}

fn seq_of(line: &str) -> Option<u64> {
    let i = line.find("seq=")?;
    line.get(i + 4..i + 12)?.parse().ok()
}

/// A gzip CloudWatch Logs payload with one event per number.
fn payload(seqs: impl Iterator<Item = u64>) -> Vec<u8> {
    let events: Vec<serde_json::Value> = seqs
        .map(|n| {
            serde_json::json!({
                "id": n.to_string(),
                "timestamp": 1_619_538_050_000i64 + n as i64,
                "message": format!("seq={n:08} 2 311111777194 eni-054c755e644dcf32d 10.0.0.1 10.0.0.2 443 49152 6 10 840 1619538050 1619538102 ACCEPT OK"),
            })
        })
        .collect();
    let envelope = serde_json::json!({
        "messageType": "DATA_MESSAGE",
        "owner": "311111777194",
        "logGroup": "vpc-flow-logs",
        "logStream": "eni-054c755e644dcf32d-all",
        "subscriptionFilters": ["f"],
        "logEvents": events,
    });
    let mut gz = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::fast());
    gz.write_all(envelope.to_string().as_bytes()).unwrap();
    gz.finish().unwrap()
}

/// Hash keys that land in each quarter of the key space (shards of a 4-shard
/// stream); for fewer shards they still spread evenly.
const HASH_KEYS: [&str; 4] = [
    "1",
    "85070591730234615865843651857942052865",
    "170141183460469231731687303715884105729",
    "255211775190703847597530955573826158593",
];

/// Puts `records` records of `per_record` events each, numbered from `first`,
/// round robin over the four quarters; returns the numbers.
async fn publish(
    kinesis: &aws_sdk_kinesis::Client,
    stream: &str,
    first: u64,
    records: u64,
    per_record: u64,
) -> BTreeSet<u64> {
    let mut all = BTreeSet::new();
    for r in 0..records {
        let from = first + r * per_record;
        let seqs = from..from + per_record;
        all.extend(seqs.clone());
        aws::put(kinesis, stream, HASH_KEYS[(r % 4) as usize], &payload(seqs)).await;
    }
    all
}

struct Setup {
    application: String,
    stream: String,
    port: u16,
    dead_letter_dir: Option<String>,
}

fn config(setup: &Setup, worker: &str) -> Config {
    let dead = setup
        .dead_letter_dir
        .as_ref()
        .map(|d| format!("dead_letter_dir = {d:?}"))
        .unwrap_or_default();
    let text = format!(
        r#"
[collector]
application = "{app}"
worker_id = "{worker}"
[[streams]]
name = "{stream}"
[reader]
poll_interval = "200ms"
{dead}
[lease]
failover = "2s"
shard_sync_interval = "1s"
[checkpoint]
interval = "200ms"
[shutdown]
drain_timeout = "5s"
[sink]
transport = "tcp"
addresses = ["127.0.0.1:{port}"]
header = "none"
"#,
        app = setup.application,
        stream = setup.stream,
        port = setup.port,
    );
    Config::from_toml(&text).unwrap_or_else(|p| panic!("test config:\n{p}"))
}

/// A running worker.
struct Worker {
    app: Arc<App>,
    stop: CancellationToken,
    task: JoinHandle<Result<(), String>>,
}

impl Worker {
    fn start(setup: &Setup, id: &str) -> Worker {
        let app = Arc::new(App::new(config(setup, id)).unwrap());
        let stop = CancellationToken::new();
        let (a, s) = (app.clone(), stop.clone());
        let task =
            tokio::spawn(async move { a.run(s).await.map(|_| ()).map_err(|e| e.to_string()) });
        Worker { app, stop, task }
    }

    fn leases(&self) -> i64 {
        self.app.telemetry().leases.current.load(Ordering::Relaxed)
    }

    /// A clean stop; panics unless it returns Ok.
    async fn stop(self) {
        self.stop.cancel();
        let result = tokio::time::timeout(Duration::from_secs(20), self.task)
            .await
            .expect("worker stops within 20 s")
            .expect("worker task");
        result.expect("clean stop returns Ok");
    }
}

async fn setup(shards: i32) -> (aws_sdk_kinesis::Client, Setup, Receiver, DynamoDbLeaseStore) {
    let kinesis = aws::kinesis().await;
    let stream = aws::create_stream(&kinesis, shards).await;
    let (receiver, port) = Receiver::start().await;
    let application = aws::unique_name("app");
    let store = DynamoDbLeaseStore::new(aws::dynamodb().await, application.clone());
    let setup = Setup {
        application,
        stream,
        port,
        dead_letter_dir: None,
    };
    (kinesis, setup, receiver, store)
}

fn owners(leases: &[Lease]) -> BTreeMap<String, Option<String>> {
    leases
        .iter()
        .map(|l| (l.key.clone(), l.owner.clone()))
        .collect()
}

fn assert_each_once(receiver: &Receiver, want: &BTreeSet<u64>) {
    let seqs = receiver.seqs();
    let mut counts: BTreeMap<u64, usize> = BTreeMap::new();
    for s in &seqs {
        *counts.entry(*s).or_default() += 1;
    }
    let got: BTreeSet<u64> = counts.keys().copied().collect();
    assert_eq!(&got, want, "delivered set differs");
    let dups: Vec<_> = counts.iter().filter(|(_, &n)| n > 1).collect();
    assert!(dups.is_empty(), "duplicates: {dups:?}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn one_worker_drains_a_four_shard_stream_each_event_once() {
    let (kinesis, setup, receiver, store) = setup(4).await;
    let want = publish(&kinesis, &setup.stream, 0, 20, 10).await;
    let worker = Worker::start(&setup, "w1");
    receiver.wait_for_all(&want, Duration::from_secs(30)).await;
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
    let (kinesis, setup, receiver, store) = setup(4).await;
    let first = publish(&kinesis, &setup.stream, 0, 8, 5).await;
    let a = Worker::start(&setup, "a");
    let b = Worker::start(&setup, "b");
    // Take interval = 2 × failover = 4 s.
    aws::wait_for(
        "both workers hold leases",
        Duration::from_secs(20),
        || async {
            (a.leases() > 0 && b.leases() > 0 && a.leases() + b.leases() == 4).then_some(())
        },
    )
    .await;
    receiver.wait_for_all(&first, Duration::from_secs(30)).await;
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
    let (kinesis, setup, receiver, store) = setup(4).await;
    let first = publish(&kinesis, &setup.stream, 0, 8, 5).await;
    let a = Worker::start(&setup, "a");
    let b = Worker::start(&setup, "b");
    aws::wait_for(
        "both workers hold leases",
        Duration::from_secs(20),
        || async {
            (a.leases() > 0 && b.leases() > 0 && a.leases() + b.leases() == 4).then_some(())
        },
    )
    .await;
    receiver.wait_for_all(&first, Duration::from_secs(30)).await;
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
    let (kinesis, setup, receiver, _store) = setup(1).await;
    let parent_events = publish(&kinesis, &setup.stream, 0, 4, 5).await;
    let worker = Worker::start(&setup, "w1");
    receiver
        .wait_for_all(&parent_events, Duration::from_secs(30))
        .await;
    kinesis
        .split_shard()
        .stream_name(&setup.stream)
        .shard_to_split("shardId-000000000000")
        .new_starting_hash_key("170141183460469231731687303715884105728")
        .send()
        .await
        .unwrap();
    aws::wait_stream_active(&kinesis, &setup.stream).await;
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
