//! The Prometheus text exposition of every figure, read fresh at each scrape
//! through a `prometheus-client` collector (no second copy of the counters).
//!
//! Names carry the prefix `kinesis_collector_`; per-shard figures have the labels
//! `stream`, `region` and `shard_id`.

use prometheus_client::collector::Collector;
use prometheus_client::encoding::{DescriptorEncoder, EncodeMetric};
use prometheus_client::metrics::counter::ConstCounter;
use prometheus_client::metrics::gauge::ConstGauge;
use prometheus_client::metrics::MetricType;
use prometheus_client::registry::{Registry, Unit};

use super::snapshot::{ShardSnapshot, Sources};
use crate::event::Class;

/// The content type of [`render`]'s output.
pub const CONTENT_TYPE: &str = "application/openmetrics-text; version=1.0.0; charset=utf-8";

/// Reads [`Sources`] at every scrape.
#[derive(Debug)]
struct SourcesCollector(Sources);

type Labels<'a> = Vec<(&'static str, &'a str)>;

fn shard_labels(shard: &ShardSnapshot) -> Labels<'_> {
    vec![
        ("stream", shard.key.stream.as_str()),
        ("region", shard.key.region.as_str()),
        ("shard_id", shard.key.shard_id.as_str()),
    ]
}

/// One family: its descriptor, then one sample per label set.
fn family<'a, M: EncodeMetric>(
    encoder: &mut DescriptorEncoder,
    name: &str,
    help: &str,
    unit: Option<&Unit>,
    kind: MetricType,
    samples: impl IntoIterator<Item = (Labels<'a>, M)>,
) -> Result<(), std::fmt::Error> {
    let mut samples: Vec<_> = samples.into_iter().collect();
    let mut family = encoder.encode_descriptor(name, help, unit, kind)?;
    if let [(labels, _)] = samples.as_slice() {
        if labels.is_empty() {
            // A process-wide figure: no label set at all (not `{}`).
            let (_, metric) = samples.pop().expect("one sample");
            return metric.encode(family);
        }
    }
    for (labels, metric) in samples {
        metric.encode(family.encode_family(&labels)?)?;
    }
    Ok(())
}

fn counter<'a>(
    encoder: &mut DescriptorEncoder,
    name: &str,
    help: &str,
    samples: impl IntoIterator<Item = (Labels<'a>, u64)>,
) -> Result<(), std::fmt::Error> {
    let samples = samples.into_iter().map(|(l, v)| (l, ConstCounter::new(v)));
    family(encoder, name, help, None, MetricType::Counter, samples)
}

fn gauge<'a>(
    encoder: &mut DescriptorEncoder,
    name: &str,
    help: &str,
    unit: Option<&Unit>,
    samples: impl IntoIterator<Item = (Labels<'a>, f64)>,
) -> Result<(), std::fmt::Error> {
    let samples = samples.into_iter().map(|(l, v)| (l, ConstGauge::new(v)));
    family(encoder, name, help, unit, MetricType::Gauge, samples)
}

impl Collector for SourcesCollector {
    fn encode(&self, mut e: DescriptorEncoder) -> Result<(), std::fmt::Error> {
        let snap = self.0.snapshot();
        let shards = &snap.shards;
        let per_shard =
            |f: fn(&ShardSnapshot) -> u64| shards.iter().map(move |s| (shard_labels(s), f(s)));
        counter(
            &mut e,
            "records_processed",
            "Kinesis records read (KCL RecordsProcessed)",
            per_shard(|s| s.records),
        )?;
        counter(
            &mut e,
            "data_bytes_processed",
            "Bytes of Kinesis record data read (KCL DataBytesProcessed)",
            per_shard(|s| s.data_bytes),
        )?;
        counter(
            &mut e,
            "events_forwarded",
            "Log events handed to the sink, per class",
            shards.iter().flat_map(|s| {
                Class::ALL.into_iter().map(move |class| {
                    let mut labels = shard_labels(s);
                    labels.push(("class", class.as_str()));
                    (labels, s.events[class.index()])
                })
            }),
        )?;
        counter(
            &mut e,
            "control_messages",
            "CloudWatch Logs control messages dropped",
            per_shard(|s| s.control_messages),
        )?;
        counter(
            &mut e,
            "decode_errors",
            "Records or KPL sub-records that failed to decode",
            per_shard(|s| s.decode_errors),
        )?;
        counter(
            &mut e,
            "vpc_format_misfits",
            "VPC flow lines that did not fit their log group's custom format",
            per_shard(|s| s.vpc_format_misfits),
        )?;
        counter(
            &mut e,
            "expired_iterators",
            "GetRecords answers saying the shard iterator had expired (KCL ExpiredIterator)",
            per_shard(|s| s.expired_iterators),
        )?;
        counter(
            &mut e,
            "get_records_throttled",
            "GetRecords calls still throttled (ProvisionedThroughputExceeded) after the SDK's own retries",
            per_shard(|s| s.throttles),
        )?;
        gauge(
            &mut e,
            "millis_behind_latest",
            "How far the shard's reader is behind the stream's tip (KCL MillisBehindLatest)",
            None,
            shards.iter().filter_map(|s| {
                s.millis_behind_latest
                    .map(|ms| (shard_labels(s), ms as f64))
            }),
        )?;
        gauge(
            &mut e,
            "checkpoint_age",
            "Time since the shard's last checkpoint",
            Some(&Unit::Seconds),
            shards
                .iter()
                .filter_map(|s| s.checkpoint_age_secs.map(|a| (shard_labels(s), a))),
        )?;
        gauge(
            &mut e,
            "falling_behind",
            "1 when MillisBehindLatest is past metrics.falling_behind_share of the retention",
            None,
            shards
                .iter()
                .map(|s| (shard_labels(s), f64::from(u8::from(s.falling_behind)))),
        )?;

        let l = snap.leases;
        gauge(
            &mut e,
            "leases_current",
            "Leases held by this worker (KCL CurrentLeases)",
            None,
            [(vec![], l.current as f64)],
        )?;
        counter(
            &mut e,
            "leases_taken",
            "Leases taken since start (KCL TakenLeases)",
            [(vec![], l.taken)],
        )?;
        counter(
            &mut e,
            "leases_lost",
            "Leases lost to another worker since start (KCL LostLeases)",
            [(vec![], l.lost)],
        )?;
        gauge(
            &mut e,
            "lease_table_age",
            "Time since the lease table last answered",
            Some(&Unit::Seconds),
            l.table_age.map(|a| (vec![], a.as_secs_f64())),
        )?;

        if let Some(sink) = &snap.sink {
            gauge(
                &mut e,
                "sink_connected",
                "1 while the sink is connected",
                None,
                [(vec![], f64::from(u8::from(sink.connected)))],
            )?;
            for (name, help, value) in [
                ("sink_connects", "Sink connections made", sink.connects),
                (
                    "sink_connect_failures",
                    "Sink connection attempts that failed",
                    sink.connect_failures,
                ),
                (
                    "sink_disconnects",
                    "Sink connections lost",
                    sink.disconnects,
                ),
                (
                    "sink_events_acked",
                    "Events the receiver acknowledged",
                    sink.events_acked,
                ),
                (
                    "sink_bytes_acked",
                    "Encoded bytes the receiver acknowledged",
                    sink.bytes_acked,
                ),
                (
                    "sink_batches_resent",
                    "Batches sent again after a reconnect (possible duplicates)",
                    sink.batches_resent,
                ),
            ] {
                counter(&mut e, name, help, [(vec![], value)])?;
            }
            gauge(
                &mut e,
                "sink_queued",
                "Bytes submitted to the sink and not yet acknowledged",
                Some(&Unit::Bytes),
                [(vec![], sink.queued_bytes as f64)],
            )?;
        }
        gauge(
            &mut e,
            "ready",
            "1 when /readyz answers 200",
            None,
            [(
                vec![],
                f64::from(u8::from(snap.unready_reasons(self.0.failover).is_empty())),
            )],
        )?;
        Ok(())
    }
}

/// A registry that reads `sources` at every encode.
pub fn registry(sources: Sources) -> Registry {
    let mut registry = Registry::with_prefix("kinesis_collector");
    registry.register_collector(Box::new(SourcesCollector(sources)));
    registry
}

/// The text exposition of `registry`.
pub fn render(registry: &Registry) -> String {
    let mut out = String::new();
    prometheus_client::encoding::text::encode(&mut out, registry)
        .expect("writing to a String cannot fail");
    out
}

#[cfg(test)]
mod tests {
    use std::sync::atomic::Ordering::Relaxed;
    use std::time::Duration;

    use super::*;
    use crate::telemetry::{ShardKey, ShardMetrics, Telemetry};

    #[test]
    fn every_figure_is_exposed_with_its_labels() {
        let telemetry = Telemetry::new();
        let m = telemetry.shard(ShardKey {
            stream: "logs".into(),
            region: "eu-west-1".into(),
            shard_id: "shardId-000000000001".into(),
        });
        ShardMetrics::add(&m.records, 7);
        m.event(Class::CloudTrail);
        m.millis_behind_latest.store(1500, Relaxed);
        telemetry.leases.current.store(3, Relaxed);
        let text = render(&registry(Sources {
            telemetry,
            sink: None,
            worker_id: "w".into(),
            failover: Duration::from_secs(10),
        }));
        let labels = r#"stream="logs",region="eu-west-1",shard_id="shardId-000000000001""#;
        for line in [
            format!("kinesis_collector_records_processed_total{{{labels}}} 7"),
            format!("kinesis_collector_events_forwarded_total{{{labels},class=\"cloudtrail\"}} 1"),
            format!("kinesis_collector_millis_behind_latest{{{labels}}} 1500.0"),
            "kinesis_collector_leases_current 3.0".to_owned(),
            "kinesis_collector_ready 0.0".to_owned(),
            "# EOF".to_owned(),
        ] {
            assert!(text.lines().any(|l| l == line), "no {line:?} in\n{text}");
        }
        assert!(!text.contains("sink_connected"), "no sink yet:\n{text}");
    }
}
