//! Pure aggregation: samples of the telemetry → one CloudWatch statistic set per
//! metric and dimension set over an interval (no I/O).
//!
//! Counters are sampled as the increase since the previous sample, gauges as their
//! value; at `summary` a stream's shards fold into one series per stream (counter
//! increases added up per sample, gauge values each a sample, so Maximum is the
//! worst shard); `detailed` adds a series per shard.

use std::collections::{BTreeMap, HashMap};

use super::super::snapshot::{ShardSnapshot, Snapshot};
use super::super::{Level, ShardKey};

/// A CloudWatch unit, for the metrics this collector sends.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub enum Unit {
    /// Count.
    Count,
    /// Bytes.
    Bytes,
    /// Milliseconds.
    Milliseconds,
    /// Seconds.
    Seconds,
}

/// Minimum, maximum, sum and count of the samples of one interval.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Stat {
    /// Smallest sample.
    pub min: f64,
    /// Largest sample.
    pub max: f64,
    /// Sum of the samples.
    pub sum: f64,
    /// Number of samples.
    pub count: f64,
}

impl Stat {
    fn of(value: f64) -> Stat {
        Stat {
            min: value,
            max: value,
            sum: value,
            count: 1.0,
        }
    }

    fn add(&mut self, value: f64) {
        self.min = self.min.min(value);
        self.max = self.max.max(value);
        self.sum += value;
        self.count += 1.0;
    }
}

/// One metric and dimension set.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord)]
pub struct Series {
    /// Region whose CloudWatch receives it (the stream's; process-wide metrics go
    /// to the home region).
    pub region: String,
    /// Metric name.
    pub name: &'static str,
    /// Unit.
    pub unit: Unit,
    /// StreamName dimension (none for process-wide metrics).
    pub stream: Option<String>,
    /// ShardId dimension (`detailed` only).
    pub shard_id: Option<String>,
}

/// A statistic set ready to send.
#[derive(Debug, Clone, PartialEq)]
pub struct Datum {
    /// Which metric.
    pub series: Series,
    /// Its statistics over the interval.
    pub stat: Stat,
}

type Counter = (&'static str, Unit, fn(&ShardSnapshot) -> u64);
type Gauge = (&'static str, Unit, fn(&ShardSnapshot) -> Option<f64>);

/// Per-shard counters: KCL names where the meaning is the same.
const SHARD_COUNTERS: [Counter; 9] = [
    ("RecordsProcessed", Unit::Count, |s| s.records),
    ("DataBytesProcessed", Unit::Bytes, |s| s.data_bytes),
    ("ExpiredIterator", Unit::Count, |s| s.expired_iterators),
    ("ReadThrottles", Unit::Count, |s| s.throttles),
    ("VpcFlowEvents", Unit::Count, |s| s.events[0]),
    ("CloudTrailEvents", Unit::Count, |s| s.events[1]),
    ("OtherEvents", Unit::Count, |s| s.events[2]),
    ("ControlMessages", Unit::Count, |s| s.control_messages),
    ("DecodeErrors", Unit::Count, |s| s.decode_errors),
];

/// Per-shard gauges.
const SHARD_GAUGES: [Gauge; 3] = [
    ("MillisBehindLatest", Unit::Milliseconds, |s| {
        s.millis_behind_latest.map(|v| v as f64)
    }),
    ("CheckpointAgeSeconds", Unit::Seconds, |s| {
        s.checkpoint_age_secs
    }),
    ("FallingBehind", Unit::Count, |s| {
        Some(f64::from(u8::from(s.falling_behind)))
    }),
];

/// Metrics per stream and region (and per shard at `detailed`).
pub const PER_STREAM: usize = SHARD_COUNTERS.len() + SHARD_GAUGES.len();
/// Process-wide metrics (dimension WorkerId only).
pub const PER_WORKER: usize = 5;

/// Statistic sets being built over one interval.
#[derive(Debug)]
pub struct Aggregator {
    level: Level,
    home_region: String,
    previous: Option<Snapshot>,
    sets: BTreeMap<Series, Stat>,
}

impl Aggregator {
    /// An aggregator for `level`; process-wide metrics go to `home_region`.
    pub fn new(level: Level, home_region: impl Into<String>) -> Aggregator {
        Aggregator {
            level,
            home_region: home_region.into(),
            previous: None,
            sets: BTreeMap::new(),
        }
    }

    fn add(&mut self, series: Series, value: f64) {
        self.sets
            .entry(series)
            .and_modify(|s| s.add(value))
            .or_insert_with(|| Stat::of(value));
    }

    /// Adds one sample of every figure.
    pub fn sample(&mut self, snap: Snapshot) {
        if self.level == Level::None {
            return;
        }
        let previous: HashMap<&ShardKey, &ShardSnapshot> = self
            .previous
            .as_ref()
            .map(|p| p.shards.iter().map(|s| (&s.key, s)).collect())
            .unwrap_or_default();
        let detailed = self.level == Level::Detailed;
        let mut per_stream: BTreeMap<(String, String), [u64; SHARD_COUNTERS.len()]> =
            BTreeMap::new();
        let mut samples = Vec::new();
        for shard in &snap.shards {
            let before = previous.get(&shard.key);
            let sums = per_stream
                .entry((shard.key.region.clone(), shard.key.stream.clone()))
                .or_default();
            for (i, (name, unit, get)) in SHARD_COUNTERS.iter().enumerate() {
                // A shard new since the last sample counted from zero.
                let delta = get(shard).saturating_sub(before.map_or(0, |b| get(b)));
                sums[i] += delta;
                if detailed {
                    samples.push((series(name, *unit, &shard.key, true), delta as f64));
                }
            }
            for (name, unit, get) in SHARD_GAUGES {
                if let Some(value) = get(shard) {
                    samples.push((series(name, unit, &shard.key, false), value));
                    if detailed {
                        samples.push((series(name, unit, &shard.key, true), value));
                    }
                }
            }
        }
        for ((region, stream), sums) in per_stream {
            for ((name, unit, _), sum) in SHARD_COUNTERS.iter().zip(sums) {
                let s = Series {
                    region: region.clone(),
                    name,
                    unit: *unit,
                    stream: Some(stream.clone()),
                    shard_id: None,
                };
                samples.push((s, sum as f64));
            }
        }
        let worker = |name, unit| Series {
            region: self.home_region.clone(),
            name,
            unit,
            stream: None,
            shard_id: None,
        };
        let (before_leases, before_sink) = match &self.previous {
            Some(p) => (Some(p.leases), p.sink.clone()),
            None => (None, None),
        };
        let leases = snap.leases;
        samples.push((worker("CurrentLeases", Unit::Count), leases.current as f64));
        let taken = leases.taken - before_leases.map_or(0, |b| b.taken.min(leases.taken));
        samples.push((worker("TakenLeases", Unit::Count), taken as f64));
        let lost = leases.lost - before_leases.map_or(0, |b| b.lost.min(leases.lost));
        samples.push((worker("LostLeases", Unit::Count), lost as f64));
        if let Some(sink) = &snap.sink {
            let connected = f64::from(u8::from(sink.connected));
            samples.push((worker("SinkConnected", Unit::Count), connected));
            // A reconnect is any connection after the first.
            let reconnects = |connects: u64| connects.saturating_sub(1);
            let before = before_sink.map_or(0, |b| reconnects(b.connects));
            let now = reconnects(sink.connects).saturating_sub(before);
            samples.push((worker("SinkReconnects", Unit::Count), now as f64));
        }
        for (series, value) in samples {
            self.add(series, value);
        }
        self.previous = Some(snap);
    }

    /// The statistic sets of the interval ending now; the next interval starts empty.
    pub fn flush(&mut self) -> Vec<Datum> {
        std::mem::take(&mut self.sets)
            .into_iter()
            .map(|(series, stat)| Datum { series, stat })
            .collect()
    }
}

fn series(name: &'static str, unit: Unit, key: &ShardKey, shard: bool) -> Series {
    Series {
        region: key.region.clone(),
        name,
        unit,
        stream: Some(key.stream.clone()),
        shard_id: shard.then(|| key.shard_id.clone()),
    }
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use super::*;
    use crate::sink::StatusSnapshot;
    use crate::telemetry::snapshot::LeaseSnapshot;

    fn shard(id: &str, records: u64, behind: i64) -> ShardSnapshot {
        ShardSnapshot {
            key: ShardKey {
                stream: "s".into(),
                region: "eu-west-1".into(),
                shard_id: id.into(),
            },
            records,
            data_bytes: records * 100,
            events: [records, 0, 0],
            control_messages: 0,
            decode_errors: 0,
            vpc_format_misfits: 0,
            expired_iterators: 0,
            throttles: 0,
            millis_behind_latest: Some(behind),
            checkpoint_age_secs: Some(2.0),
            falling_behind: false,
        }
    }

    fn snap(shards: Vec<ShardSnapshot>, connects: u64) -> Snapshot {
        Snapshot {
            shards,
            leases: LeaseSnapshot {
                current: 2,
                taken: 2,
                lost: 0,
                table_age: Some(Duration::ZERO),
            },
            sink: Some(StatusSnapshot {
                connected: true,
                connects,
                ..Default::default()
            }),
        }
    }

    fn find<'a>(data: &'a [Datum], name: &str, shard: Option<&str>) -> &'a Stat {
        &data
            .iter()
            .find(|d| d.series.name == name && d.series.shard_id.as_deref() == shard)
            .unwrap_or_else(|| panic!("no {name} {shard:?} in {data:#?}"))
            .stat
    }

    #[test]
    fn summary_folds_shards_into_one_statistic_set_per_stream() {
        let mut agg = Aggregator::new(Level::Summary, "us-east-1");
        agg.sample(snap(vec![shard("a", 10, 100), shard("b", 5, 300)], 1));
        agg.sample(snap(vec![shard("a", 30, 50), shard("b", 5, 0)], 3));
        let data = agg.flush();
        assert!(data.iter().all(|d| d.series.shard_id.is_none()));
        // Increases per sample, both shards added: 15 then 20.
        let records = find(&data, "RecordsProcessed", None);
        assert_eq!(
            (records.sum, records.min, records.max, records.count),
            (35.0, 15.0, 20.0, 2.0)
        );
        let behind = find(&data, "MillisBehindLatest", None);
        assert_eq!((behind.max, behind.min, behind.count), (300.0, 0.0, 4.0));
        let reconnects = find(&data, "SinkReconnects", None);
        assert_eq!(reconnects.sum, 2.0);
        let taken = find(&data, "TakenLeases", None);
        assert_eq!(taken.sum, 2.0, "counted once, from zero");
        assert_eq!(data.len(), PER_STREAM + PER_WORKER);
        let worker = data
            .iter()
            .find(|d| d.series.name == "CurrentLeases")
            .unwrap();
        assert_eq!(worker.series.region, "us-east-1");
        assert_eq!(worker.series.stream, None);
        assert!(agg.flush().is_empty(), "a flush starts a new interval");
    }

    #[test]
    fn detailed_adds_a_series_per_shard() {
        let mut agg = Aggregator::new(Level::Detailed, "us-east-1");
        agg.sample(snap(vec![shard("a", 10, 100), shard("b", 5, 300)], 1));
        let data = agg.flush();
        assert_eq!(data.len(), PER_STREAM * 3 + PER_WORKER);
        assert_eq!(find(&data, "RecordsProcessed", Some("b")).sum, 5.0);
    }

    #[test]
    fn level_none_keeps_nothing() {
        let mut agg = Aggregator::new(Level::None, "us-east-1");
        agg.sample(snap(vec![shard("a", 10, 100)], 1));
        assert!(agg.flush().is_empty());
    }
}
