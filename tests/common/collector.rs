//! The collector in process for the `run_*` tests: a TCP line receiver, numbered
//! CloudWatch Logs payloads, a test config (2 s failover, fast checkpoints) and
//! workers (`App`s) started and stopped cleanly or killed.
#![allow(dead_code)] // each test binary uses a different part of it

use std::collections::{BTreeMap, BTreeSet};
use std::io::Write;
use std::sync::atomic::Ordering;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use kinesis_collector::app::App;
use kinesis_collector::config::Config;
use kinesis_collector::lease::dynamodb::DynamoDbLeaseStore;
use kinesis_collector::lease::Lease;
use tokio::io::AsyncBufReadExt;
use tokio::task::JoinHandle;
use tokio_util::sync::CancellationToken;

use super::aws;

/// A TCP receiver that keeps every line it gets.
#[derive(Clone, Default)]
pub struct Receiver {
    pub lines: Arc<Mutex<Vec<String>>>,
}

impl Receiver {
    pub async fn start() -> (Receiver, u16) {
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

    pub fn lines(&self) -> Vec<String> {
        self.lines.lock().unwrap().clone()
    }

    /// The `seq=` numbers received, in arrival order.
    pub fn seqs(&self) -> Vec<u64> {
        self.lines().iter().filter_map(|l| seq_of(l)).collect()
    }

    pub async fn wait_for_all(&self, want: &BTreeSet<u64>, timeout: Duration) {
        aws::wait_for("every event delivered", timeout, || async {
            let got: BTreeSet<u64> = self.seqs().into_iter().collect();
            want.is_subset(&got).then_some(())
        })
        .await;
    }
}

pub fn seq_of(line: &str) -> Option<u64> {
    let i = line.find("seq=")?;
    line.get(i + 4..i + 12)?.parse().ok()
}

/// A gzip CloudWatch Logs payload with one event per number.
pub fn payload(seqs: impl Iterator<Item = u64>) -> Vec<u8> {
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
pub const HASH_KEYS: [&str; 4] = [
    "1",
    "85070591730234615865843651857942052865",
    "170141183460469231731687303715884105729",
    "255211775190703847597530955573826158593",
];

/// Puts `records` records of `per_record` events each, numbered from `first`,
/// round robin over the four quarters; returns the numbers.
pub async fn publish(
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

pub struct Setup {
    pub application: String,
    pub stream: String,
    pub port: u16,
    pub dead_letter_dir: Option<String>,
    /// More streams read by the same workers (one lease table: multi-stream keys).
    pub more_streams: Vec<String>,
}

/// The sections every collector test shares after `[collector]` and its
/// `[[streams]]`: fast polls (`reader_extra` added to `[reader]`), short failover,
/// checkpoints every `checkpoint_interval`, a TCP sink to `port` without a syslog
/// header.
pub fn test_sections(reader_extra: &str, checkpoint_interval: &str, port: u16) -> String {
    format!(
        r#"
[reader]
poll_interval = "200ms"
{reader_extra}
[lease]
failover = "2s"
shard_sync_interval = "1s"
[checkpoint]
interval = "{checkpoint_interval}"
[shutdown]
drain_timeout = "5s"
[sink]
transport = "tcp"
addresses = ["127.0.0.1:{port}"]
header = "none"
"#
    )
}

pub fn config(setup: &Setup, worker: &str) -> Config {
    let dead = setup
        .dead_letter_dir
        .as_ref()
        .map(|d| format!("dead_letter_dir = {d:?}"))
        .unwrap_or_default();
    let text = format!(
        "[collector]\napplication = \"{app}\"\nworker_id = \"{worker}\"\n\
         [[streams]]\nname = \"{stream}\"\n{more}{sections}",
        app = setup.application,
        more = setup
            .more_streams
            .iter()
            .map(|s| format!("[[streams]]\nname = {s:?}\n"))
            .collect::<String>(),
        stream = setup.stream,
        sections = test_sections(&dead, "200ms", setup.port),
    );
    Config::from_toml(&text).unwrap_or_else(|p| panic!("test config:\n{p}"))
}

/// A running worker.
pub struct Worker {
    pub app: Arc<App>,
    pub stop: CancellationToken,
    pub task: JoinHandle<Result<(), String>>,
}

impl Worker {
    pub fn start(setup: &Setup, id: &str) -> Worker {
        let app = Arc::new(App::new(config(setup, id)).unwrap());
        let stop = CancellationToken::new();
        let (a, s) = (app.clone(), stop.clone());
        let task =
            tokio::spawn(async move { a.run(s).await.map(|_| ()).map_err(|e| e.to_string()) });
        Worker { app, stop, task }
    }

    pub fn leases(&self) -> i64 {
        self.app.telemetry().leases.current.load(Ordering::Relaxed)
    }

    /// A clean stop; panics unless it returns Ok.
    pub async fn stop(self) {
        self.stop.cancel();
        let result = tokio::time::timeout(Duration::from_secs(20), self.task)
            .await
            .expect("worker stops within 20 s")
            .expect("worker task");
        result.expect("clean stop returns Ok");
    }
}

pub async fn setup(shards: i32) -> (aws_sdk_kinesis::Client, Setup, Receiver, DynamoDbLeaseStore) {
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
        more_streams: Vec::new(),
    };
    (kinesis, setup, receiver, store)
}

pub fn owners(leases: &[Lease]) -> BTreeMap<String, Option<String>> {
    leases
        .iter()
        .map(|l| (l.key.clone(), l.owner.clone()))
        .collect()
}

pub fn assert_each_once(receiver: &Receiver, want: &BTreeSet<u64>) {
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
