//! One consistent read of every figure, taken by the exporters: the shard and
//! lease counters of [`Telemetry`], the sink's status, and what readiness means.

use std::sync::atomic::Ordering::Relaxed;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use super::{ShardKey, Telemetry};
use crate::sink::{SinkHandle, StatusSnapshot};

/// What the exporters read: the registry, the sink, and who this worker is.
#[derive(Debug, Clone)]
pub struct Sources {
    /// The pipeline's counters.
    pub telemetry: Telemetry,
    /// The running sink; `None` before it starts (then the collector is not ready).
    pub sink: Option<SinkHandle>,
    /// This worker's id (the CloudWatch WorkerId dimension).
    pub worker_id: String,
    /// `lease.failover`: the lease table must have answered within it to be ready.
    pub failover: Duration,
}

/// The figures of one shard at one moment.
#[derive(Debug, Clone, PartialEq)]
pub struct ShardSnapshot {
    /// Which shard.
    pub key: ShardKey,
    /// Kinesis records read.
    pub records: u64,
    /// Record bytes read.
    pub data_bytes: u64,
    /// Events forwarded, per class ([`crate::event::Class::index`]).
    pub events: [u64; 3],
    /// Control messages dropped.
    pub control_messages: u64,
    /// Records that failed to decode.
    pub decode_errors: u64,
    /// VPC lines that did not fit their group's custom format.
    pub vpc_format_misfits: u64,
    /// Expired iterators met.
    pub expired_iterators: u64,
    /// GetRecords calls throttled.
    pub throttles: u64,
    /// Last MillisBehindLatest, when one was seen.
    pub millis_behind_latest: Option<i64>,
    /// Seconds since the last checkpoint, when one was written.
    pub checkpoint_age_secs: Option<f64>,
    /// Whether the shard is falling behind (see [`super::behind`]).
    pub falling_behind: bool,
}

/// Lease figures at one moment.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct LeaseSnapshot {
    /// Leases held.
    pub current: i64,
    /// Leases taken since start.
    pub taken: u64,
    /// Leases lost since start.
    pub lost: u64,
    /// How long ago the lease table last answered; `None` before it ever did.
    pub table_age: Option<Duration>,
}

/// Every figure at one moment.
#[derive(Debug, Clone)]
pub struct Snapshot {
    /// Per shard, in key order.
    pub shards: Vec<ShardSnapshot>,
    /// Lease figures.
    pub leases: LeaseSnapshot,
    /// The sink's state; `None` before it starts.
    pub sink: Option<StatusSnapshot>,
}

/// Unix time now in milliseconds.
pub(crate) fn now_ms() -> i64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_millis() as i64)
}

impl Sources {
    /// Reads every figure now.
    pub fn snapshot(&self) -> Snapshot {
        let now = now_ms();
        let shards = self
            .telemetry
            .shards()
            .into_iter()
            .map(|(key, m)| {
                // A shard no longer held keeps its counters but has no current
                // lag or checkpoint age.
                let held = m.held.load(Relaxed);
                let behind = if held {
                    m.millis_behind_latest.load(Relaxed)
                } else {
                    -1
                };
                let checkpoint = if held {
                    m.last_checkpoint_ms.load(Relaxed)
                } else {
                    0
                };
                ShardSnapshot {
                    records: m.records.load(Relaxed),
                    data_bytes: m.data_bytes.load(Relaxed),
                    events: std::array::from_fn(|i| m.events[i].load(Relaxed)),
                    control_messages: m.control_messages.load(Relaxed),
                    decode_errors: m.decode_errors.load(Relaxed),
                    vpc_format_misfits: m.vpc_format_misfits.load(Relaxed),
                    expired_iterators: m.expired_iterators.load(Relaxed),
                    throttles: m.throttles.load(Relaxed),
                    millis_behind_latest: (behind >= 0).then_some(behind),
                    checkpoint_age_secs: (checkpoint > 0)
                        .then(|| (now - checkpoint).max(0) as f64 / 1000.0),
                    falling_behind: held && m.falling_behind.load(Relaxed),
                    key,
                }
            })
            .collect();
        let leases = &self.telemetry.leases;
        let last = leases.last_table_success_ms.load(Relaxed);
        Snapshot {
            shards,
            leases: LeaseSnapshot {
                current: leases.current.load(Relaxed),
                taken: leases.taken.load(Relaxed),
                lost: leases.lost.load(Relaxed),
                table_age: (last > 0).then(|| Duration::from_millis((now - last).max(0) as u64)),
            },
            sink: self.sink.as_ref().map(SinkHandle::status),
        }
    }
}

impl Snapshot {
    /// Why the collector is not ready (empty when it is): the lease table must have
    /// answered within `failover`, and the sink must be connected.
    pub fn unready_reasons(&self, failover: Duration) -> Vec<String> {
        let mut reasons = Vec::new();
        match self.leases.table_age {
            None => reasons.push("the lease table has not answered yet".to_owned()),
            Some(age) if age > failover => reasons.push(format!(
                "the lease table last answered {} ago (failover {})",
                humantime::format_duration(Duration::from_secs(age.as_secs())),
                humantime::format_duration(failover)
            )),
            Some(_) => {}
        }
        match &self.sink {
            None => reasons.push("the sink has not started".to_owned()),
            Some(sink) if !sink.connected => reasons.push(match &sink.last_error {
                Some(err) => format!("the sink is not connected: {err}"),
                None => "the sink is not connected".to_owned(),
            }),
            Some(_) => {}
        }
        reasons
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::event::Class;
    use crate::telemetry::ShardMetrics;

    fn sources() -> Sources {
        Sources {
            telemetry: Telemetry::new(),
            sink: None,
            worker_id: "w".into(),
            failover: Duration::from_secs(10),
        }
    }

    #[test]
    fn snapshot_reads_the_counters() {
        let s = sources();
        let m = s.telemetry.shard(ShardKey {
            stream: "s".into(),
            region: "r".into(),
            shard_id: "shardId-1".into(),
        });
        ShardMetrics::add(&m.records, 5);
        m.event(Class::VpcFlow);
        m.last_checkpoint_ms.store(now_ms() - 2_000, Relaxed);
        let snap = s.snapshot();
        assert_eq!(snap.shards.len(), 1);
        let shard = &snap.shards[0];
        assert_eq!(shard.records, 5);
        assert_eq!(shard.events, [1, 0, 0]);
        assert_eq!(shard.millis_behind_latest, None);
        let age = shard.checkpoint_age_secs.unwrap();
        assert!((1.5..10.0).contains(&age), "{age}");
        m.millis_behind_latest.store(5, Relaxed);
        s.telemetry.released(&snap.shards[0].key);
        let shard = &s.snapshot().shards[0];
        assert_eq!(shard.records, 5, "counters stay");
        assert_eq!(
            shard.millis_behind_latest, None,
            "no lag for a shard not held"
        );
        assert_eq!(shard.checkpoint_age_secs, None);
    }

    #[test]
    fn readiness_needs_a_recent_lease_table_answer_and_a_connected_sink() {
        let s = sources();
        let reasons = s.snapshot().unready_reasons(s.failover);
        assert_eq!(reasons.len(), 2, "{reasons:?}");
        s.telemetry
            .leases
            .last_table_success_ms
            .store(now_ms() - 60_000, Relaxed);
        let mut snap = s.snapshot();
        let reasons = snap.unready_reasons(s.failover);
        assert!(reasons[0].contains("last answered 1m"), "{reasons:?}");
        snap.leases.table_age = Some(Duration::from_secs(1));
        snap.sink = Some(StatusSnapshot {
            connected: true,
            ..Default::default()
        });
        assert!(snap.unready_reasons(s.failover).is_empty());
    }
}
