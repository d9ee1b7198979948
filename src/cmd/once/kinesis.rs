//! `once`'s Kinesis checks: DescribeStreamSummary, ListShards, then the newest
//! records of each shard read, decoded and counted per class.

use crate::config::Config;
use std::fmt::Write as _;
use std::sync::Arc;
use std::time::{Duration, Instant, SystemTime};

use aws_config::SdkConfig;

use super::{timed, Failure, Report, CHECK_TIMEOUT};
use crate::classify::Classifier;
use crate::decode::Decoder;
use crate::event::Class;
use crate::format::Formatter;
use crate::kinesis::api::{self, GetRecordsError, StartingPosition};
use crate::kinesis::{Record, StreamId};

/// How far back the newest records are read from.
const READ_BACK: Duration = Duration::from_secs(300);
/// Most records read per shard.
const RECORDS_PER_SHARD: usize = 100;
/// Most shards read (a wide stream's first ones tell enough).
const SHARDS_READ: usize = 20;
/// Longest sample line shown.
const SAMPLE_CHARS: usize = 300;

/// Runs the stream's checks in order; a failed one ends them.
pub(super) async fn check_stream(
    report: &mut Report,
    sdk: &SdkConfig,
    stream: &str,
    classifier: &Arc<Classifier>,
    config: &Config,
) {
    let client = aws_sdk_kinesis::Client::new(sdk);
    let id = StreamId::parse(stream);
    let resource = format!("stream {stream}");
    let (result, took) = timed(async {
        let s = api::describe_stream_summary(&client, &id)
            .await
            .map_err(|e| Failure::aws(e.aws(), "kinesis:DescribeStreamSummary", &resource))?;
        Ok(format!(
            "{}, {} open shards, retention {} h",
            s.status, s.open_shard_count, s.retention_period_hours
        ))
    })
    .await;
    if !report.outcome("DescribeStreamSummary", result, took) {
        report.skip("ListShards, GetRecords", "no stream");
        return;
    }
    let (result, took) = timed(async {
        api::list_shards(&client, &id, None)
            .await
            .map_err(|e| Failure::aws(e.aws(), "kinesis:ListShards", &resource))
    })
    .await;
    let shards = match result {
        Ok(shards) => {
            report.pass("ListShards", &format!("{} shards", shards.len()), took);
            shards
        }
        Err(failure) => {
            report.fail("ListShards", &failure, took);
            return;
        }
    };

    let start = Instant::now();
    let mut tally = Tally::new(config, classifier);
    let since = SystemTime::now() - READ_BACK;
    for shard in shards.iter().take(SHARDS_READ) {
        let read = read_newest(&client, &id, &shard.shard_id, since, &resource);
        let result = match tokio::time::timeout(CHECK_TIMEOUT, read).await {
            Ok(result) => result,
            Err(_) => Err(Failure::timeout()),
        };
        match result {
            Ok((records, behind)) => {
                tally.behind = tally.behind.max(behind);
                for record in &records {
                    tally.record(record);
                }
            }
            Err(failure) => {
                let what = format!("GetRecords {}", shard.shard_id);
                report.fail(&what, &failure, start.elapsed());
                return;
            }
        }
    }
    let detail = tally.summary(shards.len().min(SHARDS_READ));
    report.pass("read and decode", &detail, start.elapsed());
    for class in Class::ALL {
        if let Some(sample) = &tally.samples[class.index()] {
            report.detail(&format!("{}: {sample}", class.as_str()));
        }
    }
}

/// Counts per class and one sample line per class.
struct Tally<'c> {
    decoder: Decoder,
    formatter: Formatter,
    classifier: &'c Classifier,
    counts: [u64; 3],
    samples: [Option<String>; 3],
    records: usize,
    bad: usize,
    control: u32,
    behind: Option<i64>,
}

impl<'c> Tally<'c> {
    fn new(config: &Config, classifier: &'c Arc<Classifier>) -> Tally<'c> {
        Tally {
            decoder: Decoder::new(&config.decode, Arc::clone(classifier)),
            formatter: Formatter::new(config.sink.format),
            classifier,
            counts: [0; 3],
            samples: Default::default(),
            records: 0,
            bad: 0,
            control: 0,
            behind: None,
        }
    }

    fn record(&mut self, record: &Record) {
        self.records += 1;
        let arrival_ms = record
            .approximate_arrival_timestamp()
            .and_then(|t| t.to_millis().ok());
        let (counts, samples) = (&mut self.counts, &mut self.samples);
        let (formatter, classifier) = (&mut self.formatter, self.classifier);
        let outcome = self
            .decoder
            .decode_record(record.data().as_ref(), arrival_ms, |event| {
                let i = event.classification.class.index();
                counts[i] += 1;
                if samples[i].is_none() {
                    let mut line = Vec::new();
                    formatter.write_body(event, classifier, true, &mut line);
                    samples[i] = Some(shorten(&String::from_utf8_lossy(&line)));
                }
            });
        self.bad += outcome.errors.len();
        self.control += outcome.control_messages;
    }

    fn summary(&self, shards: usize) -> String {
        let classes: Vec<String> = Class::ALL
            .iter()
            .map(|c| format!("{} {}", c.as_str(), self.counts[c.index()]))
            .collect();
        let mut detail = format!(
            "{} records from the last {} min of {shards} shards: {}, {} control messages, {} bad",
            self.records,
            READ_BACK.as_secs() / 60,
            classes.join(", "),
            self.control,
            self.bad
        );
        if let Some(ms) = self.behind {
            let _ = write!(detail, "; {ms} ms behind latest");
        }
        detail
    }
}

/// At most [`SAMPLE_CHARS`] characters.
fn shorten(text: &str) -> String {
    match text.char_indices().nth(SAMPLE_CHARS) {
        Some((cut, _)) => format!("{}…", &text[..cut]),
        None => text.to_owned(),
    }
}

/// Reads up to [`RECORDS_PER_SHARD`] records written since `since`: the records
/// and the last MillisBehindLatest.
async fn read_newest(
    client: &aws_sdk_kinesis::Client,
    id: &StreamId,
    shard_id: &str,
    since: SystemTime,
    resource: &str,
) -> Result<(Vec<Record>, Option<i64>), Failure> {
    let position = StartingPosition::AtTimestamp(since);
    let mut iterator = api::get_shard_iterator(client, id, shard_id, &position)
        .await
        .map_err(|e| Failure::aws(e.aws(), "kinesis:GetShardIterator", resource))?;
    let mut records = Vec::new();
    let mut behind = None;
    // A few calls: an answer may be empty while records follow.
    for _ in 0..5 {
        let limit = (RECORDS_PER_SHARD - records.len()) as i32;
        let batch = api::get_records(client, &iterator, limit)
            .await
            .map_err(|e| {
                let (GetRecordsError::ExpiredIterator(aws)
                | GetRecordsError::Throttled(aws)
                | GetRecordsError::ResourceNotFound(aws)
                | GetRecordsError::Transient(aws)
                | GetRecordsError::Fatal(aws)) = &e;
                Failure::aws(aws, "kinesis:GetRecords", resource)
            })?;
        behind = batch.millis_behind_latest;
        records.extend(batch.records);
        match batch.next_iterator {
            Some(next) if records.len() < RECORDS_PER_SHARD && behind != Some(0) => {
                iterator = next;
            }
            _ => break,
        }
    }
    Ok((records, behind))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn samples_are_cut_on_a_character_boundary() {
        assert_eq!(shorten("short"), "short");
        let long = "é".repeat(SAMPLE_CHARS + 5);
        let cut = shorten(&long);
        assert_eq!(cut.chars().count(), SAMPLE_CHARS + 1);
        assert!(cut.ends_with('…'));
    }
}
