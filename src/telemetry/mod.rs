//! Telemetry: the figures the collector keeps about itself, shared by the pipeline
//! (which counts) and the exporters (Prometheus, CloudWatch, `once`, `status`),
//! which read them.
//!
//! Counting is lock-free on the hot path: each shard reader holds an
//! `Arc<ShardMetrics>` and bumps atomics; the registry's lock is taken only when a
//! shard is added or an exporter takes a snapshot.

//!
//! # Exporters and hooks
//! - [`http`]: `/metrics` (Prometheus text, [`prometheus`]), `/healthz`, `/readyz`.
//! - [`cloudwatch`]: PutMetricData of statistic sets, once per `metrics.interval`.
//! - [`behind`]: the falling-behind check against the stream's retention.
//! - [`notify`]: systemd `Type=notify` (READY, STOPPING, WATCHDOG).
//! - [`snapshot`]: one read of every figure, and what readiness means.

pub mod behind;
pub mod cloudwatch;
mod config;
pub mod http;
pub mod notify;
pub mod prometheus;
pub mod snapshot;

use std::collections::BTreeMap;
use std::sync::atomic::{AtomicBool, AtomicI64, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use aws_config::SdkConfig;
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;

use crate::config::Config;
use crate::event::Class;

pub use config::{HttpConfig, Level, MetricsConfig};
pub use snapshot::{Snapshot, Sources};

/// Starts the HTTP endpoints on `tracker` when `http.listen` is set, until
/// `cancel`. The port is bound before this returns (a port in use is an error
/// at start). Call it early, before the lease tables are set up, so `/healthz`
/// answers while the collector starts.
pub async fn serve_http(
    config: &Config,
    sources: Sources,
    tracker: &TaskTracker,
    cancel: CancellationToken,
) -> std::io::Result<()> {
    if let Some(listen) = config.http.listen {
        let server = http::HttpServer::bind(listen).await?;
        tracker.spawn(server.serve(sources, cancel));
    }
    Ok(())
}

/// Starts on `tracker`, until `cancel`: the CloudWatch publisher (one client per
/// entry of `regions`, the first also receiving the worker's metrics; none at
/// level `none`), the falling-behind watch (reading the retention of `streams`),
/// and systemd watchdog pings. The publisher sends its last interval when
/// `cancel` fires, so cancel after the sink has drained.
pub fn start_exporters(
    config: &Config,
    sources: Sources,
    regions: &[(String, SdkConfig)],
    streams: Vec<behind::StreamRetention>,
    tracker: &TaskTracker,
    cancel: CancellationToken,
) {
    let clients = regions
        .iter()
        .map(|(region, sdk)| (region.clone(), aws_sdk_cloudwatch::Client::new(sdk)))
        .collect();
    cloudwatch::Publisher::spawn(
        &config.metrics,
        sources.clone(),
        clients,
        tracker,
        cancel.clone(),
    );
    tracker.spawn(behind::watch(
        sources.telemetry,
        config.metrics.falling_behind_share,
        streams,
        cancel.clone(),
    ));
    tracker.spawn(notify::watchdog_task(cancel));
}

/// Identifies a shard across streams and regions.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct ShardKey {
    /// Stream name (not ARN).
    pub stream: String,
    /// AWS region of the stream.
    pub region: String,
    /// Shard id, e.g. `shardId-000000000000`.
    pub shard_id: String,
}

/// Counters and gauges of one shard reader. Counters only grow.
#[derive(Debug, Default)]
pub struct ShardMetrics {
    /// Kinesis records read (KCL: RecordsProcessed).
    pub records: AtomicU64,
    /// Bytes of record data read (KCL: DataBytesProcessed).
    pub data_bytes: AtomicU64,
    /// Events handed to the sink, per class ([`Class::index`]).
    pub events: [AtomicU64; 3],
    /// CloudWatch Logs control messages dropped.
    pub control_messages: AtomicU64,
    /// Records (or KPL sub-records) that failed to decode and were set aside.
    pub decode_errors: AtomicU64,
    /// Lines in a log group with a custom VPC format that did not fit it.
    pub vpc_format_misfits: AtomicU64,
    /// GetRecords answers that said the iterator had expired.
    pub expired_iterators: AtomicU64,
    /// GetRecords calls still throttled (ProvisionedThroughputExceeded) after the
    /// SDK's own retries; the reader then backs off.
    pub throttles: AtomicU64,
    /// Last MillisBehindLatest seen (-1 before the first answer).
    pub millis_behind_latest: AtomicI64,
    /// Unix time in ms of the last checkpoint written (0: none yet).
    pub last_checkpoint_ms: AtomicI64,
    /// Whether MillisBehindLatest is past the falling-behind share of the
    /// retention (set by [`behind::check`]).
    pub falling_behind: AtomicBool,
    /// Whether this worker reads the shard now: set by [`Telemetry::shard`],
    /// cleared by [`Telemetry::released`]. Gauges (MillisBehindLatest, checkpoint
    /// age, falling behind) of a shard not held are not reported; counters are.
    pub held: AtomicBool,
}

impl ShardMetrics {
    /// Fresh metrics with no MillisBehindLatest seen yet.
    pub fn new() -> ShardMetrics {
        let m = ShardMetrics::default();
        m.millis_behind_latest.store(-1, Ordering::Relaxed);
        m
    }

    /// Counts one forwarded event of `class`.
    pub fn event(&self, class: Class) {
        self.events[class.index()].fetch_add(1, Ordering::Relaxed);
    }

    /// Adds `n` to a counter.
    pub fn add(counter: &AtomicU64, n: u64) {
        counter.fetch_add(n, Ordering::Relaxed);
    }
}

/// Process-wide lease figures (KCL: CurrentLeases, TakenLeases, LostLeases).
#[derive(Debug, Default)]
pub struct LeaseMetrics {
    /// Leases held now.
    pub current: AtomicI64,
    /// Leases taken (free, expired or stolen) since start.
    pub taken: AtomicU64,
    /// Leases lost to another worker since start.
    pub lost: AtomicU64,
    /// Unix time in ms of the last successful lease table call (0: none yet).
    pub last_table_success_ms: AtomicI64,
}

/// The registry every component shares (cheap to clone).
#[derive(Debug, Clone, Default)]
pub struct Telemetry {
    shards: Arc<Mutex<BTreeMap<ShardKey, Arc<ShardMetrics>>>>,
    /// Lease figures.
    pub leases: Arc<LeaseMetrics>,
    /// Retention period per (stream, region), from DescribeStreamSummary.
    retention: Arc<Mutex<BTreeMap<(String, String), Duration>>>,
}

impl Telemetry {
    /// An empty registry.
    pub fn new() -> Telemetry {
        Telemetry::default()
    }

    /// The metrics of `key`, created on first use (a reader calls this once at start;
    /// a shard taken again keeps its counters).
    pub fn shard(&self, key: ShardKey) -> Arc<ShardMetrics> {
        let mut shards = self.shards.lock().expect("telemetry lock poisoned");
        let metrics = Arc::clone(
            shards
                .entry(key)
                .or_insert_with(|| Arc::new(ShardMetrics::new())),
        );
        metrics.held.store(true, Ordering::Relaxed);
        metrics
    }

    /// Marks the shard as no longer read by this worker (its lease ended, was
    /// lost or released): its gauges stop being reported, its counters stay.
    pub fn released(&self, key: &ShardKey) {
        let shards = self.shards.lock().expect("telemetry lock poisoned");
        if let Some(metrics) = shards.get(key) {
            metrics.held.store(false, Ordering::Relaxed);
            metrics.falling_behind.store(false, Ordering::Relaxed);
        }
    }

    /// Every shard seen so far with its metrics, in key order.
    pub fn shards(&self) -> Vec<(ShardKey, Arc<ShardMetrics>)> {
        let shards = self.shards.lock().expect("telemetry lock poisoned");
        shards
            .iter()
            .map(|(k, v)| (k.clone(), Arc::clone(v)))
            .collect()
    }

    /// Records a stream's retention period (from DescribeStreamSummary), for the
    /// falling-behind check.
    pub fn set_retention(&self, stream: &str, region: &str, retention: Duration) {
        let mut map = self.retention.lock().expect("telemetry lock poisoned");
        map.insert((stream.to_owned(), region.to_owned()), retention);
    }

    /// A stream's retention period, when known.
    pub fn retention(&self, stream: &str, region: &str) -> Option<Duration> {
        let map = self.retention.lock().expect("telemetry lock poisoned");
        map.get(&(stream.to_owned(), region.to_owned())).copied()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn shards_share_their_counters_through_the_registry() {
        let t = Telemetry::new();
        let key = ShardKey {
            stream: "s".into(),
            region: "us-east-1".into(),
            shard_id: "shardId-0".into(),
        };
        let a = t.shard(key.clone());
        a.event(Class::CloudTrail);
        ShardMetrics::add(&a.records, 3);
        let b = t.clone().shard(key);
        assert_eq!(
            b.events[Class::CloudTrail.index()].load(Ordering::Relaxed),
            1
        );
        assert_eq!(b.records.load(Ordering::Relaxed), 3);
        assert_eq!(b.millis_behind_latest.load(Ordering::Relaxed), -1);
        assert_eq!(t.shards().len(), 1);
        assert!(b.held.load(Ordering::Relaxed));
        t.released(&ShardKey {
            stream: "s".into(),
            region: "us-east-1".into(),
            shard_id: "shardId-0".into(),
        });
        assert!(!b.held.load(Ordering::Relaxed));
    }
}
