//! The `kinesis-collector run` binary reading kinesis-local through a fault-injecting
//! proxy (tests/common/fault_proxy.rs), with moto's DynamoDB for leases: GetRecords
//! throttled in bursts (with and without the SDK's own retries) or by a low read
//! limit, an iterator that expires after a batch was handed on, and a stream
//! that is briefly not ACTIVE.
//! kinesis-local has no setting for either (it never throttles GetRecords; its
//! iterators live a fixed 300 s), so the proxy answers those calls itself, with the
//! errors Kinesis sends. Every event must still arrive exactly once.
//!
//! The poison-record case runs against the emulators in tests/run_collector.rs.

mod common {
    pub mod aws;
    pub mod collector;
    pub mod collector_process;
    pub mod fault_proxy;
}

use std::collections::{BTreeMap, BTreeSet};
use std::net::SocketAddr;
use std::process::ExitStatus;
use std::time::Duration;

use common::aws;
use common::collector::{assert_each_once, payload, publish, Receiver, HASH_KEYS};
use common::collector_process::{config_with, free_address, shard_counter, CollectorProcess};
use common::fault_proxy::{Fault, FaultProxy, Rule, Trigger};
use kinesis_collector::lease::dynamodb::DynamoDbLeaseStore;
use kinesis_collector::lease::{Checkpoint, LeaseStore};

const SHARD_0: &str = "shardId-000000000000";

/// The collector binary as a child process, with its `/metrics` endpoint.
struct Collector {
    process: CollectorProcess,
    http: SocketAddr,
}

impl Collector {
    /// Runs `kinesis-collector run` on `stream` into the line receiver on
    /// `sink_port`, reading Kinesis at `kinesis_url`, with `env` added.
    fn start(
        application: &str,
        stream: &str,
        sink_port: u16,
        checkpoint_interval: &str,
        kinesis_url: &str,
        env: &[(&str, &str)],
    ) -> Collector {
        let http = free_address();
        let config = config_with(
            application,
            &format!("worker_id = \"faults-1\"\n[[streams]]\nname = \"{stream}\""),
            sink_port,
            checkpoint_interval,
            &format!("[http]\nlisten = \"{http}\"\n"),
        );
        let mut all = vec![
            ("AWS_ENDPOINT_URL_KINESIS", kinesis_url),
            ("RUST_LOG", "kinesis_collector=debug"),
        ];
        all.extend_from_slice(env);
        Collector {
            process: CollectorProcess::start(&config, &all),
            http,
        }
    }

    /// [`Collector::start`] with an application of its own and checkpoints every
    /// 200 ms.
    fn reading(
        stream: &str,
        sink_port: u16,
        proxy: &FaultProxy,
        env: &[(&str, &str)],
    ) -> Collector {
        let application = aws::unique_name("faults-app");
        Collector::start(&application, stream, sink_port, "200ms", &proxy.url(), env)
    }

    /// Panics with its log if the collector has exited.
    fn assert_running(&self) {
        self.process.assert_running();
    }

    /// `kinesis_collector_<name>_total` of `shard_id`, from `/metrics`.
    async fn counter(&self, name: &str, shard_id: &str) -> Option<u64> {
        shard_counter(self.http, name, shard_id).await
    }

    /// SIGINT, then waits (bounded) for the exit; returns it and the log.
    async fn stop(self) -> (ExitStatus, String) {
        self.process.stop().await
    }
}

/// kinesis-local's address, as the emulator script exports it.
fn kinesis_local() -> String {
    aws::ensure_emulators();
    std::env::var("AWS_ENDPOINT_URL_KINESIS").unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn throttled_get_records_back_off_and_deliver_every_event_once() {
    let _one_at_a_time = aws::one_at_a_time().await;
    const THROTTLES: usize = 6;
    let proxy = FaultProxy::start(&kinesis_local()).await;
    let kinesis = aws::kinesis().await;
    let stream = aws::create_stream(&kinesis, 4).await;
    let want = publish(&kinesis, &stream, 0, 8, 5).await;
    let (receiver, port) = Receiver::start().await;
    let shards: Vec<String> = (0..4).map(|i| format!("shardId-00000000000{i}")).collect();
    for shard in &shards {
        proxy.add(Rule::throttle(shard, THROTTLES));
    }
    // The SDK would retry each throttle twice itself (standard mode, 3 attempts):
    // with one attempt, every throttle reaches the reader, so the gaps measured are
    // the reader's own back-off and the counter counts each one.
    let collector = Collector::reading(&stream, port, &proxy, &[("AWS_MAX_ATTEMPTS", "1")]);
    collector
        .process
        .wait_delivered(&receiver, &want, Duration::from_secs(60))
        .await;
    let mut counted = BTreeMap::new();
    for shard in &shards {
        let n = aws::wait_for("throttles counted", Duration::from_secs(10), || async {
            collector
                .counter("get_records_throttled", shard)
                .await
                .filter(|&n| n >= THROTTLES as u64)
        })
        .await;
        counted.insert(shard.clone(), n);
    }
    let (status, stderr) = collector.stop().await;
    assert_eq!(status.code(), Some(0), "{stderr}");
    assert_each_once(&receiver, &want);
    assert_eq!(proxy.faults(Fault::Throttled), 4 * THROTTLES);
    let (mut early, mut late) = (Duration::ZERO, Duration::ZERO);
    for shard in &shards {
        assert_eq!(counted[shard], THROTTLES as u64, "{shard}: {counted:?}");
        let calls = proxy.calls("GetRecords", shard);
        // The burst, then the first call that went through.
        let faults: Vec<_> = calls.iter().map(|c| c.fault).collect();
        assert!(
            faults[..THROTTLES]
                .iter()
                .all(|f| *f == Some(Fault::Throttled))
                && faults[THROTTLES].is_none(),
            "{shard}: {faults:?}"
        );
        assert!(
            calls.iter().all(|c| c.attempt == Some(1)),
            "the SDK retried"
        );
        let gaps: Vec<Duration> = calls[..=THROTTLES]
            .windows(2)
            .map(|w| w[1].at - w[0].at)
            .collect();
        eprintln!("{shard}: gaps after each throttle {gaps:?}");
        early += gaps[0] + gaps[1];
        late += gaps[THROTTLES - 2] + gaps[THROTTLES - 1];
    }
    // Full jitter makes single gaps random (each in [0, 100 ms × 2^n], at least the
    // 200 ms call gap); summed over four shards, the last two gaps of each burst
    // (ceilings 1.6 s and 3.2 s) stay well apart from the first two (200 ms each):
    // a reader without a growing back-off fails this, ours fails it with odds
    // under 1 in 100 000 (simulated).
    eprintln!("first two gaps {early:?}, last two gaps {late:?} (four shards)");
    assert!(
        late.as_secs_f64() >= 1.25 * early.as_secs_f64(),
        "no back-off: first two gaps {early:?}, last two {late:?}"
    );
    aws::delete_stream(&kinesis, &stream).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn with_the_sdk_s_retries_a_throttle_counts_once_it_outlasts_them() {
    let _one_at_a_time = aws::one_at_a_time().await;
    let proxy = FaultProxy::start(&kinesis_local()).await;
    let kinesis = aws::kinesis().await;
    let stream = aws::create_stream(&kinesis, 1).await;
    let want = publish(&kinesis, &stream, 0, 3, 5).await;
    let (receiver, port) = Receiver::start().await;
    // Standard retry mode, as deployed: three attempts per call. Four throttles:
    // one call fails after its three attempts (the reader backs off and counts
    // it), the next succeeds on its second attempt (the SDK hides it).
    proxy.add(Rule::throttle(SHARD_0, 4));
    let collector = Collector::reading(&stream, port, &proxy, &[]);
    collector
        .process
        .wait_delivered(&receiver, &want, Duration::from_secs(30))
        .await;
    let throttles = collector.counter("get_records_throttled", SHARD_0).await;
    let (status, stderr) = collector.stop().await;
    assert_eq!(status.code(), Some(0), "{stderr}");
    assert_each_once(&receiver, &want);
    let calls = proxy.calls("GetRecords", SHARD_0);
    let attempts: Vec<(Option<u32>, Option<Fault>)> =
        calls[..5].iter().map(|c| (c.attempt, c.fault)).collect();
    let t = Some(Fault::Throttled);
    assert_eq!(
        attempts,
        [
            (Some(1), t),
            (Some(2), t),
            (Some(3), t),
            (Some(1), t),
            (Some(2), None),
        ]
    );
    assert!(calls[5..].iter().all(|c| c.fault.is_none()));
    assert_eq!(calls[4].records, 3, "the records came with the retry");
    assert_eq!(throttles, Some(1));
    aws::delete_stream(&kinesis, &stream).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn under_a_low_read_limit_every_event_arrives_once() {
    let _one_at_a_time = aws::one_at_a_time().await;
    let proxy = FaultProxy::start(&kinesis_local()).await;
    let kinesis = aws::kinesis().await;
    let stream = aws::create_stream(&kinesis, 2).await;
    let shards = ["shardId-000000000000", "shardId-000000000001"];
    // One GetRecords per 500 ms and shard (Kinesis allows five per second): a
    // reader polling every 200 ms meets it at every second call.
    let min_gap = Duration::from_millis(500);
    for shard in shards {
        proxy.limit(shard, min_gap);
    }
    let (receiver, port) = Receiver::start().await;
    let collector = Collector::reading(&stream, port, &proxy, &[]);
    // Rounds of records while the shards are read, each once the last arrived.
    let mut want = BTreeSet::new();
    for round in 0..4 {
        want.extend(publish(&kinesis, &stream, round * 100, 4, 5).await);
        collector
            .process
            .wait_delivered(&receiver, &want, Duration::from_secs(30))
            .await;
    }
    let mut counted = 0;
    for shard in shards {
        counted += collector
            .counter("get_records_throttled", shard)
            .await
            .unwrap_or(0);
    }
    let (status, stderr) = collector.stop().await;
    assert_eq!(status.code(), Some(0), "{stderr}");
    assert_each_once(&receiver, &want);
    let throttled = proxy.faults(Fault::Throttled);
    eprintln!(
        "{throttled} GetRecords throttled by the proxy, {counted} outlasted the SDK's retries"
    );
    assert!(throttled > 0);
    assert!(counted <= throttled as u64 / 3, "{counted} of {throttled}");
    aws::delete_stream(&kinesis, &stream).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_expired_iterator_resumes_after_the_last_record_handed_on() {
    let _one_at_a_time = aws::one_at_a_time().await;
    let proxy = FaultProxy::start(&kinesis_local()).await;
    let kinesis = aws::kinesis().await;
    let stream = aws::create_stream(&kinesis, 2).await;
    // HASH_KEYS[0] lands in shard 0 of two, HASH_KEYS[2] in shard 1.
    let mut want = BTreeSet::new();
    let mut last_handed = String::new();
    for r in 0..3u64 {
        want.extend(r * 10..r * 10 + 5);
        last_handed = aws::put(
            &kinesis,
            &stream,
            HASH_KEYS[0],
            &payload(r * 10..r * 10 + 5),
        )
        .await;
    }
    want.extend(100..105);
    aws::put(&kinesis, &stream, HASH_KEYS[2], &payload(100..105)).await;
    proxy.add(Rule {
        shard_id: SHARD_0.into(),
        fault: Fault::ExpiredIterator,
        times: 1,
        trigger: Trigger::AfterRecords,
    });
    let (receiver, port) = Receiver::start().await;
    let application = aws::unique_name("faults-app");
    // No checkpoint before shutdown: the lease still says TRIM_HORIZON when the
    // iterator expires, so going back to it would read the first batch twice.
    let collector = Collector::start(&application, &stream, port, "10m", &proxy.url(), &[]);
    aws::wait_for("the iterator expired", Duration::from_secs(30), || async {
        collector.assert_running();
        (proxy.faults(Fault::ExpiredIterator) == 1).then_some(())
    })
    .await;
    let store = DynamoDbLeaseStore::new(aws::dynamodb().await, application.clone());
    let lease = store
        .list()
        .await
        .unwrap()
        .into_iter()
        .find(|l| l.key == SHARD_0)
        .expect("shard 0 has a lease");
    assert_eq!(lease.checkpoint, Checkpoint::TrimHorizon, "{lease:?}");
    let iterators = aws::wait_for("a new iterator", Duration::from_secs(10), || async {
        let calls = proxy.calls("GetShardIterator", SHARD_0);
        (calls.len() >= 2).then_some(calls)
    })
    .await;
    let records = proxy.calls("GetRecords", SHARD_0);
    let fault_at = records
        .iter()
        .find(|c| c.fault.is_some())
        .expect("the fault")
        .at;
    // The batch before the fault ended with the last record put so far.
    let handed: Vec<&String> = records
        .iter()
        .filter(|c| c.at < fault_at)
        .flat_map(|c| &c.sequence_numbers)
        .collect();
    assert_eq!(handed.len(), 3, "{records:?}");
    assert_eq!(handed.last().unwrap().as_str(), last_handed);
    let types: Vec<(&str, Option<&str>)> = iterators
        .iter()
        .map(|c| {
            (
                c.body["ShardIteratorType"].as_str().unwrap_or_default(),
                c.body["StartingSequenceNumber"].as_str(),
            )
        })
        .collect();
    assert_eq!(
        types,
        [
            ("TRIM_HORIZON", None),
            ("AFTER_SEQUENCE_NUMBER", Some(last_handed.as_str()))
        ],
        "{iterators:?}"
    );
    assert!(iterators[1].at > fault_at);
    // Records after the expiry arrive too.
    for r in 3..5u64 {
        want.extend(r * 10..r * 10 + 5);
        aws::put(
            &kinesis,
            &stream,
            HASH_KEYS[0],
            &payload(r * 10..r * 10 + 5),
        )
        .await;
    }
    collector
        .process
        .wait_delivered(&receiver, &want, Duration::from_secs(30))
        .await;
    let expired = collector.counter("expired_iterators", SHARD_0).await;
    let (status, stderr) = collector.stop().await;
    assert_eq!(status.code(), Some(0), "{stderr}");
    assert_eq!(expired, Some(1));
    assert_each_once(&receiver, &want);
    // Only the one fault, and only the two iterators (no restart of the shard).
    assert_eq!(proxy.calls("GetShardIterator", SHARD_0).len(), 2);
    aws::delete_stream(&kinesis, &stream).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_stream_briefly_not_active_is_waited_out() {
    let _one_at_a_time = aws::one_at_a_time().await;
    let proxy = FaultProxy::start(&kinesis_local()).await;
    let kinesis = aws::kinesis().await;
    let stream = aws::create_stream(&kinesis, 1).await;
    let first = publish(&kinesis, &stream, 0, 2, 5).await;
    let (receiver, port) = Receiver::start().await;
    // After the first batch, Kinesis says the stream is not ACTIVE (as while it is
    // being deleted, or updated on some emulators) for four calls: the reader must
    // back off and go on, not stop the collector.
    proxy.add(Rule {
        shard_id: SHARD_0.into(),
        fault: Fault::NotActive,
        times: 4,
        trigger: Trigger::AfterRecords,
    });
    let collector = Collector::reading(&stream, port, &proxy, &[]);
    collector
        .process
        .wait_delivered(&receiver, &first, Duration::from_secs(30))
        .await;
    aws::wait_for(
        "the stream not ACTIVE four times",
        Duration::from_secs(30),
        || async {
            collector.assert_running();
            (proxy.faults(Fault::NotActive) == 4).then_some(())
        },
    )
    .await;
    let second = publish(&kinesis, &stream, 100, 2, 5).await;
    collector
        .process
        .wait_delivered(&receiver, &second, Duration::from_secs(30))
        .await;
    let (status, stderr) = collector.stop().await;
    assert_eq!(status.code(), Some(0), "{stderr}");
    let want: BTreeSet<u64> = first.union(&second).copied().collect();
    assert_each_once(&receiver, &want);
    aws::delete_stream(&kinesis, &stream).await;
}
