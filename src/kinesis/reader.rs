//! One shard's reader: GetRecords polling from a lease's checkpoint, handing
//! batches on a bounded channel until the shard ends, the lease is lost or the
//! worker stops.
//!
//! - Start: TRIM_HORIZON / LATEST / AT_TIMESTAMP for a lease never checkpointed;
//!   after a sequence number, AFTER_SEQUENCE_NUMBER; inside a KPL aggregate
//!   (sub-sequence number > 0), AT_SEQUENCE_NUMBER with the done sub-records named
//!   in the first batch so the decoder skips them.
//! - Pace: no wait while the shard is behind (`MillisBehindLatest` > 0) beyond the
//!   shard's 5 calls/s limit; `poll_interval` when caught up.
//! - Memory: `Limit` is sized from the observed record size to aim at
//!   `target_batch_size`, and each batch holds its size in a byte budget shared by
//!   all readers until the pipeline drops it.
//! - Errors: throttles and transient failures back off with jitter; an expired
//!   iterator is replaced by one AFTER the last record handed on (never the old
//!   checkpoint); a deleted stream or shard and fatal errors end the reader with
//!   the reason.

use std::future::Future;
use std::sync::Arc;
use std::time::{Duration, SystemTime};

use aws_sdk_kinesis::Client;
use serde::Deserialize;
use tokio::sync::{mpsc, OwnedSemaphorePermit, Semaphore};
use tokio::time::Instant;
use tokio_util::sync::CancellationToken;
use tracing::{debug, warn};

use super::api::{
    get_records, get_shard_iterator, ApiError, GetRecordsError, RecordBatch, StartingPosition,
    MAX_GET_RECORDS_LIMIT,
};
use super::{ChildShard, Record, StreamId};
use crate::aws::backoff::Backoff;
use crate::config::{units, Problems, Section};
use crate::lease::Checkpoint;

/// Kinesis allows 5 GetRecords calls per second per shard.
const MIN_CALL_GAP: Duration = Duration::from_millis(200);
/// First `Limit`, before any record size was seen.
const INITIAL_LIMIT: i32 = 1000;

/// `[reader]` section: defaults for every stream's shard readers.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ReaderConfig {
    /// Wait between two GetRecords calls of a shard that is caught up. No wait
    /// while the shard is behind. 200ms (the shard's 5 calls/s limit) to 1m;
    /// default `"1s"`.
    #[serde(
        default = "default_poll_interval",
        deserialize_with = "units::duration"
    )]
    pub poll_interval: Duration,
    /// Most records asked for in one GetRecords call. 1 to 10000; default 10000.
    #[serde(default = "default_max_records")]
    pub max_records: u32,
    /// Size one GetRecords answer should have: `Limit` follows the observed record
    /// size (an answer is at most 10 MB). 64 KiB to 10 MiB; default `"2 MiB"`.
    #[serde(
        default = "default_target_batch_size",
        deserialize_with = "units::byte_size"
    )]
    pub target_batch_size: u64,
    /// Most record bytes read from Kinesis and not yet processed, all shards
    /// together: readers wait when it is reached. 1 MiB to 4 GiB; default `"64 MiB"`.
    #[serde(
        default = "default_max_bytes_in_flight",
        deserialize_with = "units::byte_size"
    )]
    pub max_bytes_in_flight: u64,
    /// Directory where records that fail to decode are written raw, one file each
    /// (named by stream, shard and sequence number), before they are skipped.
    /// Unset: bad records are only logged and counted. Global only (not per stream).
    #[serde(default)]
    pub dead_letter_dir: Option<std::path::PathBuf>,
}

fn default_poll_interval() -> Duration {
    Duration::from_secs(1)
}
fn default_max_records() -> u32 {
    MAX_GET_RECORDS_LIMIT as u32
}
fn default_target_batch_size() -> u64 {
    2 << 20
}
fn default_max_bytes_in_flight() -> u64 {
    64 << 20
}

impl Default for ReaderConfig {
    fn default() -> Self {
        ReaderConfig {
            poll_interval: default_poll_interval(),
            max_records: default_max_records(),
            target_batch_size: default_target_batch_size(),
            max_bytes_in_flight: default_max_bytes_in_flight(),
            dead_letter_dir: None,
        }
    }
}

impl ReaderConfig {
    /// The byte budget all readers share (see `max_bytes_in_flight`).
    pub fn byte_budget(&self) -> Arc<Semaphore> {
        Arc::new(Semaphore::new(self.max_bytes_in_flight as usize))
    }
}

impl Section for ReaderConfig {
    const KEY: &'static str = "reader";

    fn validate(&self, problems: &mut Problems) {
        if !(MIN_CALL_GAP..=Duration::from_secs(60)).contains(&self.poll_interval) {
            problems.push(
                "reader.poll_interval",
                format!(
                    "{} is out of range: use 200ms to 1m",
                    humantime::format_duration(self.poll_interval)
                ),
            );
        }
        if !(1..=MAX_GET_RECORDS_LIMIT as u32).contains(&self.max_records) {
            problems.push(
                "reader.max_records",
                format!("{} is out of range: use 1 to 10000", self.max_records),
            );
        }
        if !(64 << 10..=10 << 20).contains(&self.target_batch_size) {
            problems.push(
                "reader.target_batch_size",
                format!(
                    "{} bytes is out of range: use 64 KiB to 10 MiB",
                    self.target_batch_size
                ),
            );
        }
        if !(1 << 20..=u32::MAX as u64).contains(&self.max_bytes_in_flight) {
            problems.push(
                "reader.max_bytes_in_flight",
                format!(
                    "{} bytes is out of range: use 1 MiB to 4 GiB",
                    self.max_bytes_in_flight
                ),
            );
        }
        if self
            .dead_letter_dir
            .as_ref()
            .is_some_and(|d| d.as_os_str().is_empty())
        {
            problems.push(
                "reader.dead_letter_dir",
                "is empty: name a directory or leave it unset",
            );
        }
    }
}

/// The two calls a reader makes, so tests can script them.
pub trait ShardApi: Send + Sync {
    /// GetShardIterator for `shard_id` at `position`.
    fn iterator(
        &self,
        shard_id: &str,
        position: &StartingPosition,
    ) -> impl Future<Output = Result<String, ApiError>> + Send;

    /// GetRecords at `iterator`, at most `limit` records.
    fn records(
        &self,
        iterator: &str,
        limit: i32,
    ) -> impl Future<Output = Result<RecordBatch, GetRecordsError>> + Send;
}

/// The real API for one stream.
#[derive(Debug, Clone)]
pub struct StreamShards {
    /// The Kinesis client (region, credentials).
    pub client: Client,
    /// The stream.
    pub stream: StreamId,
}

impl ShardApi for StreamShards {
    async fn iterator(
        &self,
        shard_id: &str,
        position: &StartingPosition,
    ) -> Result<String, ApiError> {
        get_shard_iterator(&self.client, &self.stream, shard_id, position).await
    }

    async fn records(&self, iterator: &str, limit: i32) -> Result<RecordBatch, GetRecordsError> {
        get_records(&self.client, iterator, limit).await
    }
}

/// What a reader hands on.
#[derive(Debug)]
pub enum ShardMessage {
    /// Records, oldest first.
    Records(ShardRecords),
    /// The shard was read to its end (split or merged): after these records are
    /// processed, checkpoint SHARD_END and make leases for the children.
    End {
        /// The shard.
        shard_id: String,
        /// Its children.
        children: Vec<ChildShard>,
    },
}

/// One GetRecords answer's records.
#[derive(Debug)]
pub struct ShardRecords {
    /// The shard.
    pub shard_id: String,
    /// The records (never empty).
    pub records: Vec<Record>,
    /// How far behind the stream's tip the last record is.
    pub millis_behind_latest: Option<i64>,
    /// When resuming inside a KPL aggregate: that record's sequence number and the
    /// last sub-record already done (skip it and those before it).
    pub done_sub_records: Option<(String, u64)>,
    /// Bytes held in the shared budget until this batch is dropped.
    pub budget: Option<OwnedSemaphorePermit>,
}

/// Where a reader starts, from its lease's checkpoint.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Start {
    /// Read from here; with the done sub-records of a KPL aggregate.
    At(StartingPosition, Option<(String, u64)>),
    /// The lease is at SHARD_END: nothing to read.
    Ended,
}

impl Start {
    /// The start for a lease at `checkpoint`; `at_timestamp` is the configured
    /// time for AT_TIMESTAMP leases.
    pub fn from_checkpoint(
        checkpoint: &Checkpoint,
        at_timestamp: Option<SystemTime>,
    ) -> Result<Start, ReadError> {
        Ok(match checkpoint {
            Checkpoint::TrimHorizon => Start::At(StartingPosition::TrimHorizon, None),
            Checkpoint::Latest => Start::At(StartingPosition::Latest, None),
            Checkpoint::AtTimestamp => match at_timestamp {
                Some(t) => Start::At(StartingPosition::AtTimestamp(t), None),
                None => {
                    return Err(ReadError::NoTimestamp);
                }
            },
            Checkpoint::ShardEnd => Start::Ended,
            Checkpoint::Sequence {
                sequence_number,
                sub_sequence_number: 0,
            } => Start::At(
                StartingPosition::AfterSequenceNumber(sequence_number.clone()),
                None,
            ),
            Checkpoint::Sequence {
                sequence_number,
                sub_sequence_number,
            } => Start::At(
                StartingPosition::AtSequenceNumber(sequence_number.clone()),
                Some((sequence_number.clone(), *sub_sequence_number)),
            ),
        })
    }
}

/// How a reader ended without an error.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ReadEnd {
    /// The shard ended; [`ShardMessage::End`] was sent.
    ShardEnd,
    /// Cancelled (lease lost, or shutdown), or the receiver is gone.
    Stopped,
}

/// Why a reader gave up.
#[derive(Debug, thiserror::Error)]
pub enum ReadError {
    /// The lease starts AT_TIMESTAMP but no time is configured.
    #[error(
        "the lease starts at AT_TIMESTAMP but no start timestamp is configured for the stream"
    )]
    NoTimestamp,
    /// The stream or shard no longer exists.
    #[error("shard is gone: {0}")]
    NotFound(String),
    /// Retrying will not help (permissions, KMS, a bad request).
    #[error("reading failed: {0}")]
    Fatal(String),
}

/// Reads `shard_id` from `start`, sending batches on `out`, until the shard ends,
/// `cancel` fires or `out` is closed.
pub async fn read_shard<A: ShardApi>(
    api: &A,
    shard_id: &str,
    start: Start,
    config: &ReaderConfig,
    budget: Option<&Arc<Semaphore>>,
    out: &mpsc::Sender<ShardMessage>,
    cancel: &CancellationToken,
) -> Result<ReadEnd, ReadError> {
    let (position, mut done_sub_records) = match start {
        Start::Ended => return Ok(ReadEnd::ShardEnd),
        Start::At(position, done) => (position, done),
    };
    let mut backoff = Backoff::new(Duration::from_millis(100), Duration::from_secs(10));
    let Some(mut iterator) = iterator_at(api, shard_id, &position, &mut backoff, cancel).await?
    else {
        return Ok(ReadEnd::Stopped);
    };
    let max_records = config.max_records.clamp(1, MAX_GET_RECORDS_LIMIT as u32) as i32;
    let mut limit = LimitSizer::new(config.target_batch_size, max_records);
    let mut last_handed: Option<String> = None;
    let mut last_call: Option<Instant> = None;
    loop {
        if let Some(at) = last_call {
            let gap = at + MIN_CALL_GAP;
            if wait_until(gap, cancel).await.is_none() {
                return Ok(ReadEnd::Stopped);
            }
        }
        last_call = Some(Instant::now());
        let batch = tokio::select! {
            biased;
            _ = cancel.cancelled() => return Ok(ReadEnd::Stopped),
            batch = api.records(&iterator, limit.limit()) => batch,
        };
        let batch = match batch {
            Ok(batch) => batch,
            Err(GetRecordsError::ExpiredIterator(_)) => {
                // Never back to the old checkpoint: after what was handed on.
                let resume = match &last_handed {
                    Some(seq) => StartingPosition::AfterSequenceNumber(seq.clone()),
                    None => position.clone(),
                };
                debug!(
                    shard_id,
                    ?resume,
                    "shard iterator expired; getting a new one"
                );
                match iterator_at(api, shard_id, &resume, &mut backoff, cancel).await? {
                    Some(fresh) => iterator = fresh,
                    None => return Ok(ReadEnd::Stopped),
                }
                continue;
            }
            Err(err @ (GetRecordsError::Throttled(_) | GetRecordsError::Transient(_))) => {
                let delay = backoff.next_delay();
                warn!(shard_id, attempt = backoff.attempts(), delay_ms = delay.as_millis() as u64, error = %err, "get_records failed; backing off");
                if wait_until(Instant::now() + delay, cancel).await.is_none() {
                    return Ok(ReadEnd::Stopped);
                }
                continue;
            }
            Err(GetRecordsError::ResourceNotFound(err)) => {
                return Err(ReadError::NotFound(err.to_string()))
            }
            Err(GetRecordsError::Fatal(err)) => return Err(ReadError::Fatal(err.to_string())),
        };
        backoff.reset();
        let RecordBatch {
            records,
            next_iterator,
            millis_behind_latest,
            child_shards,
        } = batch;
        let behind = millis_behind_latest.unwrap_or(0) > 0;
        if let Some(last) = records.last() {
            last_handed = Some(last.sequence_number().to_owned());
            let bytes: usize = records.iter().map(|r| r.data().as_ref().len()).sum();
            limit.observe(records.len(), bytes);
            let permit = match budget {
                Some(budget) => {
                    let wanted = bytes.clamp(1, config.max_bytes_in_flight as usize) as u32;
                    tokio::select! {
                        biased;
                        _ = cancel.cancelled() => return Ok(ReadEnd::Stopped),
                        permit = Arc::clone(budget).acquire_many_owned(wanted) => permit.ok(),
                    }
                }
                None => None,
            };
            let message = ShardMessage::Records(ShardRecords {
                shard_id: shard_id.to_owned(),
                records,
                millis_behind_latest,
                done_sub_records: done_sub_records.take(),
                budget: permit,
            });
            if !send(out, message, cancel).await {
                return Ok(ReadEnd::Stopped);
            }
        }
        let Some(next) = next_iterator else {
            let end = ShardMessage::End {
                shard_id: shard_id.to_owned(),
                children: child_shards,
            };
            return Ok(if send(out, end, cancel).await {
                ReadEnd::ShardEnd
            } else {
                ReadEnd::Stopped
            });
        };
        iterator = next;
        if !behind {
            let wake = last_call.map_or_else(Instant::now, |at| at + config.poll_interval);
            if wait_until(wake, cancel).await.is_none() {
                return Ok(ReadEnd::Stopped);
            }
        }
    }
}

/// GetShardIterator, retrying throttles and transient failures; `None` when
/// cancelled.
async fn iterator_at<A: ShardApi>(
    api: &A,
    shard_id: &str,
    position: &StartingPosition,
    backoff: &mut Backoff,
    cancel: &CancellationToken,
) -> Result<Option<String>, ReadError> {
    loop {
        let result = tokio::select! {
            biased;
            _ = cancel.cancelled() => return Ok(None),
            result = api.iterator(shard_id, position) => result,
        };
        match result {
            Ok(iterator) => return Ok(Some(iterator)),
            Err(err @ (ApiError::Throttled(_) | ApiError::Transient(_))) => {
                let delay = backoff.next_delay();
                warn!(shard_id, attempt = backoff.attempts(), error = %err, "get_shard_iterator failed; backing off");
                if wait_until(Instant::now() + delay, cancel).await.is_none() {
                    return Ok(None);
                }
            }
            Err(ApiError::ResourceNotFound(err)) => {
                return Err(ReadError::NotFound(err.to_string()))
            }
            Err(ApiError::Fatal(err)) => return Err(ReadError::Fatal(err.to_string())),
        }
    }
}

/// Sleeps until `deadline`; `None` if cancelled first.
async fn wait_until(deadline: Instant, cancel: &CancellationToken) -> Option<()> {
    tokio::select! {
        biased;
        _ = cancel.cancelled() => None,
        _ = tokio::time::sleep_until(deadline) => Some(()),
    }
}

/// Sends unless cancelled or the receiver is gone.
async fn send(
    out: &mpsc::Sender<ShardMessage>,
    message: ShardMessage,
    cancel: &CancellationToken,
) -> bool {
    tokio::select! {
        biased;
        _ = cancel.cancelled() => false,
        sent = out.send(message) => sent.is_ok(),
    }
}

/// `Limit` from the observed record size: about `target` bytes per answer.
#[derive(Debug)]
struct LimitSizer {
    target: u64,
    max: i32,
    average: Option<f64>,
}

impl LimitSizer {
    fn new(target: u64, max: i32) -> LimitSizer {
        LimitSizer {
            target,
            max,
            average: None,
        }
    }

    fn observe(&mut self, records: usize, bytes: usize) {
        if records == 0 {
            return;
        }
        let size = (bytes as f64 / records as f64).max(1.0);
        self.average = Some(match self.average {
            Some(avg) => avg * 0.5 + size * 0.5,
            None => size,
        });
    }

    fn limit(&self) -> i32 {
        match self.average {
            None => INITIAL_LIMIT.min(self.max),
            Some(avg) => ((self.target as f64 / avg) as i64).clamp(1, self.max as i64) as i32,
        }
    }
}

#[cfg(test)]
mod tests;
