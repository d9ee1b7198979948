//! CloudWatch PutMetricData: the telemetry sampled a few times per
//! `metrics.interval`, aggregated into statistic sets ([`aggregate`]) and sent
//! once per interval in as few calls as the API allows (1000 datums a call).
//!
//! Runs as its own task: a slow or failing CloudWatch never blocks or slows the
//! pipeline. Data that could not be sent is kept (up to [`MAX_PENDING`] datums,
//! oldest dropped first) and sent again with the next interval's; CloudWatch
//! accepts datums up to two weeks old, so an outage of a few intervals loses none.

pub mod aggregate;

use std::collections::{BTreeMap, VecDeque};
use std::time::{Duration, SystemTime};

use aws_sdk_cloudwatch::types::{Dimension, MetricDatum, StandardUnit, StatisticSet};
use aws_sdk_cloudwatch::Client;
use aws_smithy_types::DateTime;
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;
use tracing::{debug, info, warn};

use self::aggregate::{Aggregator, Datum, Unit};
use super::snapshot::Sources;
use super::{Level, MetricsConfig};
use crate::aws::AwsError;

/// Most datums in one PutMetricData call (the API's limit).
pub const MAX_DATUMS_PER_CALL: usize = 1000;
/// Most unsent datums kept for a later try, per region.
pub const MAX_PENDING: usize = 50_000;
/// How long the last flush at shutdown may take.
const FINAL_FLUSH_TIMEOUT: Duration = Duration::from_secs(5);

/// How often the figures are sampled within an interval: twelve times, every
/// 1 to 10 seconds.
pub fn sample_period(interval: Duration) -> Duration {
    (interval / 12).clamp(Duration::from_secs(1), Duration::from_secs(10))
}

/// The CloudWatch publisher.
#[derive(Debug)]
pub struct Publisher {
    namespace: String,
    worker_id: String,
    clients: BTreeMap<String, Client>,
    pending: BTreeMap<String, VecDeque<MetricDatum>>,
}

impl Publisher {
    /// Starts the publisher on `tracker` unless the level is `none`. `clients` has
    /// one CloudWatch client per region of the streams read; the first one's region
    /// also receives the process-wide metrics (leases, sink). Sends what it has
    /// once more when `cancel` fires.
    pub fn spawn(
        config: &MetricsConfig,
        sources: Sources,
        clients: Vec<(String, Client)>,
        tracker: &TaskTracker,
        cancel: CancellationToken,
    ) {
        if config.level == Level::None || clients.is_empty() {
            info!("cloudwatch metrics off (metrics.level = \"none\")");
            return;
        }
        let home = clients[0].0.clone();
        let publisher = Publisher {
            namespace: config.namespace.clone(),
            worker_id: sources.worker_id.clone(),
            clients: clients.into_iter().collect(),
            pending: BTreeMap::new(),
        };
        let aggregator = Aggregator::new(config.level, home);
        tracker.spawn(publisher.run(aggregator, sources, config.interval, cancel));
    }

    async fn run(
        mut self,
        mut aggregator: Aggregator,
        sources: Sources,
        interval: Duration,
        cancel: CancellationToken,
    ) {
        info!(
            namespace = %self.namespace,
            interval = %humantime::format_duration(interval),
            "cloudwatch metrics on"
        );
        let mut sample = tokio::time::interval(sample_period(interval));
        sample.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        let start = tokio::time::Instant::now() + interval;
        let mut flush = tokio::time::interval_at(start, interval);
        flush.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        loop {
            tokio::select! {
                _ = cancel.cancelled() => break,
                _ = sample.tick() => aggregator.sample(sources.snapshot()),
                _ = flush.tick() => {
                    aggregator.sample(sources.snapshot());
                    self.publish(aggregator.flush()).await;
                }
            }
        }
        aggregator.sample(sources.snapshot());
        let data = aggregator.flush();
        if tokio::time::timeout(FINAL_FLUSH_TIMEOUT, self.publish(data))
            .await
            .is_err()
        {
            warn!("cloudwatch metrics of the last interval not sent: timed out at shutdown");
        }
    }

    /// Queues `data` behind what is pending and sends as much as CloudWatch takes.
    async fn publish(&mut self, data: Vec<Datum>) {
        let now = DateTime::from(SystemTime::now());
        for datum in data {
            let region = datum.series.region.clone();
            let queue = self.pending.entry(region).or_default();
            queue.push_back(to_sdk(&datum, &self.worker_id, now));
        }
        for (region, queue) in &mut self.pending {
            let dropped = queue.len().saturating_sub(MAX_PENDING);
            if dropped > 0 {
                queue.drain(..dropped);
                warn!(%region, dropped, "cloudwatch unreachable too long: oldest metrics dropped");
            }
            let Some(client) = self.clients.get(region) else {
                warn!(%region, "no cloudwatch client for region: metrics dropped");
                queue.clear();
                continue;
            };
            while !queue.is_empty() {
                let n = queue.len().min(MAX_DATUMS_PER_CALL);
                let batch: Vec<MetricDatum> = queue.iter().take(n).cloned().collect();
                match put(client, &self.namespace, batch).await {
                    Ok(()) => {
                        debug!(%region, datums = n, "cloudwatch metrics sent");
                        queue.drain(..n);
                    }
                    Err(err) => {
                        warn!(
                            %region,
                            pending = queue.len(),
                            error = %err,
                            "cloudwatch PutMetricData failed; trying again next interval"
                        );
                        break;
                    }
                }
            }
        }
    }
}

/// One PutMetricData call.
///
/// <https://docs.aws.amazon.com/AmazonCloudWatch/latest/APIReference/API_PutMetricData.html>
pub async fn put(client: &Client, namespace: &str, data: Vec<MetricDatum>) -> Result<(), AwsError> {
    client
        .put_metric_data()
        .namespace(namespace)
        .set_metric_data(Some(data))
        .send()
        .await
        .map(|_| ())
        .map_err(|err| AwsError::new("PutMetricData", &err))
}

/// The one test datum `once` sends: `ConnectivityTest` = 1 with the WorkerId.
pub async fn put_test_datum(
    client: &Client,
    namespace: &str,
    worker_id: &str,
) -> Result<(), AwsError> {
    let datum = MetricDatum::builder()
        .metric_name("ConnectivityTest")
        .dimensions(dimension("WorkerId", worker_id))
        .value(1.0)
        .unit(StandardUnit::Count)
        .timestamp(DateTime::from(SystemTime::now()))
        .build();
    put(client, namespace, vec![datum]).await
}

fn dimension(name: &str, value: &str) -> Dimension {
    Dimension::builder().name(name).value(value).build()
}

fn to_sdk(datum: &Datum, worker_id: &str, timestamp: DateTime) -> MetricDatum {
    let s = &datum.series;
    let mut builder = MetricDatum::builder()
        .metric_name(s.name)
        .timestamp(timestamp)
        .unit(match s.unit {
            Unit::Count => StandardUnit::Count,
            Unit::Bytes => StandardUnit::Bytes,
            Unit::Milliseconds => StandardUnit::Milliseconds,
            Unit::Seconds => StandardUnit::Seconds,
        })
        .statistic_values(
            StatisticSet::builder()
                .minimum(datum.stat.min)
                .maximum(datum.stat.max)
                .sum(datum.stat.sum)
                .sample_count(datum.stat.count)
                .build(),
        );
    if let Some(stream) = &s.stream {
        builder = builder.dimensions(dimension("StreamName", stream));
    }
    builder = builder.dimensions(dimension("WorkerId", worker_id));
    if let Some(shard) = &s.shard_id {
        builder = builder.dimensions(dimension("ShardId", shard));
    }
    builder.build()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sampled_twelve_times_an_interval_within_bounds() {
        assert_eq!(
            sample_period(Duration::from_secs(60)),
            Duration::from_secs(5)
        );
        assert_eq!(
            sample_period(Duration::from_secs(10)),
            Duration::from_secs(1)
        );
        assert_eq!(
            sample_period(Duration::from_secs(3600)),
            Duration::from_secs(10)
        );
    }
}
