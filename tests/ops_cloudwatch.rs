//! CloudWatch PutMetricData against moto: the publisher's statistic sets read back
//! with GetMetricStatistics, with the dimensions of each level; the `once` test
//! datum; data kept through a failed send.

mod common {
    pub mod aws;
}

use std::sync::atomic::Ordering::Relaxed;
use std::time::{Duration, SystemTime};

use aws_sdk_cloudwatch::types::{Dimension, Statistic};
use common::aws;
use kinesis_collector::telemetry::cloudwatch::{put_test_datum, Publisher};
use kinesis_collector::telemetry::{
    Level, MetricsConfig, ShardKey, ShardMetrics, Sources, Telemetry,
};
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;

async fn client() -> aws_sdk_cloudwatch::Client {
    aws_sdk_cloudwatch::Client::new(&aws::config().await)
}

fn dims(pairs: &[(&str, &str)]) -> Vec<Dimension> {
    pairs
        .iter()
        .map(|(n, v)| Dimension::builder().name(*n).value(*v).build())
        .collect()
}

/// Sum and maximum of a metric over the last hour.
async fn read_back(
    client: &aws_sdk_cloudwatch::Client,
    namespace: &str,
    name: &str,
    dimensions: Vec<Dimension>,
) -> Option<(f64, f64)> {
    let now = SystemTime::now();
    let out = client
        .get_metric_statistics()
        .namespace(namespace)
        .metric_name(name)
        .set_dimensions(Some(dimensions))
        .start_time((now - Duration::from_secs(3600)).into())
        .end_time((now + Duration::from_secs(60)).into())
        .period(60)
        .statistics(Statistic::Sum)
        .statistics(Statistic::Maximum)
        .send()
        .await
        .expect("GetMetricStatistics");
    let points = out.datapoints();
    if points.is_empty() {
        return None;
    }
    let sum = points.iter().filter_map(|p| p.sum()).sum();
    let max = points
        .iter()
        .filter_map(|p| p.maximum())
        .fold(f64::MIN, f64::max);
    Some((sum, max))
}

/// A running publisher of worker `worker-1` into its own namespace.
struct Running {
    namespace: String,
    telemetry: Telemetry,
    tracker: TaskTracker,
    cancel: CancellationToken,
}

impl Running {
    /// Starts a publisher at `level`, flushing every `interval`, through `client`.
    fn start(client: aws_sdk_cloudwatch::Client, level: Level, interval: Duration) -> Running {
        let namespace = aws::unique_name("KinesisCollectorTest");
        let telemetry = Telemetry::new();
        let sources = Sources {
            telemetry: telemetry.clone(),
            sink: None,
            worker_id: "worker-1".into(),
            failover: Duration::from_secs(10),
        };
        let config = MetricsConfig {
            level,
            namespace: namespace.clone(),
            interval,
            ..MetricsConfig::default()
        };
        let tracker = TaskTracker::new();
        let cancel = CancellationToken::new();
        Publisher::spawn(
            &config,
            sources,
            vec![("us-east-1".into(), client)],
            &tracker,
            cancel.clone(),
        );
        Running {
            namespace,
            telemetry,
            tracker,
            cancel,
        }
    }

    /// Shard `shard_id` of stream `logs`.
    fn shard(&self, shard_id: &str) -> std::sync::Arc<ShardMetrics> {
        self.telemetry.shard(ShardKey {
            stream: "logs".into(),
            region: "us-east-1".into(),
            shard_id: shard_id.into(),
        })
    }

    /// Stops the publisher after its final flush; returns the namespace.
    async fn stop(self) -> String {
        self.cancel.cancel();
        self.tracker.close();
        tokio::time::timeout(Duration::from_secs(20), self.tracker.wait())
            .await
            .expect("the publisher stops after its final flush");
        self.namespace
    }
}

/// Publishes two shards' figures at `level` into a new namespace (the one flush
/// is the final one, at cancel); returns the namespace.
async fn publish(client: &aws_sdk_cloudwatch::Client, level: Level) -> String {
    let running = Running::start(client.clone(), level, Duration::from_secs(3600));
    let a = running.shard("shardId-000000000000");
    let b = running.shard("shardId-000000000001");
    ShardMetrics::add(&a.records, 30);
    ShardMetrics::add(&b.records, 12);
    a.millis_behind_latest.store(5_000, Relaxed);
    b.millis_behind_latest.store(250, Relaxed);
    running.telemetry.leases.current.store(2, Relaxed);
    running.stop().await
}

const STREAM: [(&str, &str); 2] = [("StreamName", "logs"), ("WorkerId", "worker-1")];

#[tokio::test]
async fn summary_statistic_sets_reach_cloudwatch_per_stream_and_worker() {
    let client = client().await;
    let namespace = publish(&client, Level::Summary).await;
    assert_eq!(
        read_back(&client, &namespace, "RecordsProcessed", dims(&STREAM)).await,
        Some((42.0, 42.0)),
        "both shards' records"
    );
    let (_, behind) = read_back(&client, &namespace, "MillisBehindLatest", dims(&STREAM))
        .await
        .expect("MillisBehindLatest");
    assert_eq!(behind, 5_000.0, "the maximum is the worst shard");
    let worker = [("WorkerId", "worker-1")];
    assert_eq!(
        read_back(&client, &namespace, "CurrentLeases", dims(&worker))
            .await
            .map(|(_, max)| max),
        Some(2.0)
    );
    let shard = [
        ("StreamName", "logs"),
        ("WorkerId", "worker-1"),
        ("ShardId", "shardId-000000000001"),
    ];
    assert_eq!(
        read_back(&client, &namespace, "RecordsProcessed", dims(&shard)).await,
        None,
        "no per-shard series at summary"
    );
}

#[tokio::test]
async fn detailed_adds_per_shard_statistic_sets() {
    let client = client().await;
    let namespace = publish(&client, Level::Detailed).await;
    let shard = [
        ("StreamName", "logs"),
        ("WorkerId", "worker-1"),
        ("ShardId", "shardId-000000000001"),
    ];
    assert_eq!(
        read_back(&client, &namespace, "RecordsProcessed", dims(&shard)).await,
        Some((12.0, 12.0))
    );
}

#[tokio::test]
async fn the_connectivity_test_datum_is_stored() {
    let client = client().await;
    let namespace = aws::unique_name("KinesisCollectorTest");
    put_test_datum(&client, &namespace, "worker-9")
        .await
        .expect("PutMetricData");
    let got = read_back(
        &client,
        &namespace,
        "ConnectivityTest",
        dims(&[("WorkerId", "worker-9")]),
    )
    .await;
    assert_eq!(got, Some((1.0, 1.0)));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn exporters_read_the_retention_and_mark_a_shard_falling_behind() {
    use kinesis_collector::config::Config;
    use kinesis_collector::kinesis::StreamId;
    use kinesis_collector::telemetry::behind::StreamRetention;

    let kinesis = aws::kinesis().await;
    let stream = aws::create_stream(&kinesis, 1).await;
    let telemetry = Telemetry::new();
    let shard = telemetry.shard(ShardKey {
        stream: stream.clone(),
        region: "us-east-1".into(),
        shard_id: "shardId-000000000000".into(),
    });
    // 13 h behind a 24 h retention: past the default share of 0.5.
    shard.millis_behind_latest.store(13 * 3_600_000, Relaxed);
    let config = Config::from_toml("[metrics]\nlevel = \"none\"\n").unwrap();
    let sources = Sources {
        telemetry: telemetry.clone(),
        sink: None,
        worker_id: "worker-1".into(),
        failover: Duration::from_secs(10),
    };
    let streams = vec![StreamRetention {
        stream: StreamId::parse(&stream),
        region: "us-east-1".into(),
        client: kinesis.clone(),
    }];
    let tracker = TaskTracker::new();
    let cancel = CancellationToken::new();
    kinesis_collector::telemetry::start_exporters(
        &config,
        sources,
        &[],
        streams,
        &tracker,
        cancel.clone(),
    );
    aws::wait_for(
        "the shard marked falling behind",
        Duration::from_secs(30),
        || async { shard.falling_behind.load(Relaxed).then_some(()) },
    )
    .await;
    assert_eq!(
        telemetry.retention(&stream, "us-east-1"),
        Some(Duration::from_secs(24 * 3600))
    );
    cancel.cancel();
    tracker.close();
    tokio::time::timeout(Duration::from_secs(5), tracker.wait())
        .await
        .expect("every exporter task stops on cancel");
}

/// A TCP front for moto that drops every connection until `open` is set, then
/// passes connections through; counts the connections it dropped.
struct Gate {
    address: String,
    open: std::sync::Arc<std::sync::atomic::AtomicBool>,
    dropped: std::sync::Arc<std::sync::atomic::AtomicUsize>,
    task: tokio::task::JoinHandle<()>,
}

impl Gate {
    async fn start(upstream: String) -> Gate {
        use std::sync::atomic::{AtomicBool, AtomicUsize};
        use std::sync::Arc;
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let address = format!("http://{}", listener.local_addr().unwrap());
        let open = Arc::new(AtomicBool::new(false));
        let dropped = Arc::new(AtomicUsize::new(0));
        let (gate_open, gate_dropped) = (Arc::clone(&open), Arc::clone(&dropped));
        let task = tokio::spawn(async move {
            let mut passing = tokio::task::JoinSet::new();
            while let Ok((mut client, _)) = listener.accept().await {
                if !gate_open.load(Relaxed) {
                    gate_dropped.fetch_add(1, Relaxed);
                    drop(client);
                    continue;
                }
                let upstream = upstream.clone();
                passing.spawn(async move {
                    let mut server = tokio::net::TcpStream::connect(upstream).await.unwrap();
                    let _ = tokio::io::copy_bidirectional(&mut client, &mut server).await;
                });
            }
        });
        Gate {
            address,
            open,
            dropped,
            task,
        }
    }
}

impl Drop for Gate {
    fn drop(&mut self) {
        self.task.abort();
    }
}

#[tokio::test]
async fn metrics_that_could_not_be_sent_go_with_the_next_interval() {
    let reader = client().await;
    let moto = std::env::var("AWS_ENDPOINT_URL_CLOUDWATCH").expect("emulator env");
    let gate = Gate::start(moto.trim_start_matches("http://").to_owned()).await;
    // One attempt per call: a dropped connection fails the whole PutMetricData, so
    // only the publisher's own keeping can bring that interval's data through.
    let publisher_client = aws_sdk_cloudwatch::Client::from_conf(
        aws_sdk_cloudwatch::config::Builder::from(&aws::config().await)
            .endpoint_url(&gate.address)
            .retry_config(aws_config::retry::RetryConfig::disabled())
            .build(),
    );
    let running = Running::start(publisher_client, Level::Summary, Duration::from_secs(1));
    let shard = running.shard("shardId-000000000000");
    ShardMetrics::add(&shard.records, 30);
    aws::wait_for(
        "a failed PutMetricData",
        Duration::from_secs(20),
        || async { (gate.dropped.load(Relaxed) > 0).then_some(()) },
    )
    .await;
    gate.open.store(true, Relaxed);
    ShardMetrics::add(&shard.records, 12);
    let stream = dims(&STREAM);
    let got = aws::wait_for(
        "both intervals' records in CloudWatch",
        Duration::from_secs(20),
        || async {
            read_back(
                &reader,
                &running.namespace,
                "RecordsProcessed",
                stream.clone(),
            )
            .await
            .filter(|(sum, _)| *sum >= 42.0)
        },
    )
    .await;
    assert_eq!(
        got,
        (42.0, 30.0),
        "the failed interval's 30 records were kept and sent later, beside the next 12"
    );
    running.stop().await;
}
