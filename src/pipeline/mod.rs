//! One shard's pipeline, from the lease to the checkpoint: the reader's batches are
//! decoded, encoded for the sink and submitted; the sink's acknowledgements move the
//! shard's [`Watermark`], which is checkpointed (fenced by the lease) every
//! `checkpoint.interval`, at the shard's end and at shutdown.
//!
//! - A lost lease stops the shard at once: no further checkpoint is tried.
//! - A record that fails to decode is logged with shard and sequence number,
//!   counted, written raw to the dead-letter directory when one is set, and done
//!   at once (it never stalls the shard).
//! - At the shard's end, once everything is acknowledged, the children's leases are
//!   made (shard sync) and SHARD_END is checkpointed with the children's ids, so
//!   they are taken next.
//! - At shutdown: stop reading, wait for the outstanding acknowledgements until the
//!   drain deadline, write the final checkpoint.

mod dead_letter;

use std::collections::VecDeque;
use std::sync::atomic::Ordering;
use std::sync::Arc;
use std::time::Duration;

use aws_sdk_kinesis::Client;
use tokio::sync::{mpsc, Semaphore};
use tokio::time::{Instant, MissedTickBehavior};
use tokio_util::sync::CancellationToken;
use tracing::{debug, error, info, warn};

use crate::classify::Classifier;
use crate::decode::Decoder;
use crate::event::Class;
use crate::kinesis::api::{ApiError, GetRecordsError, RecordBatch, StartingPosition};
use crate::kinesis::reader::{
    read_shard, ReadEnd, ReadError, ReaderConfig, ShardApi, ShardMessage, ShardRecords, Start,
    StreamShards,
};
use crate::kinesis::{ChildShard, StreamId};
use crate::lease::coordinator::{HeldLease, LeaseCoordinator};
use crate::lease::dynamodb::DynamoDbLeaseStore;
use crate::lease::shard_sync::{sync_shards, LeaseKeys};
use crate::lease::watermark::{Ticket, Watermark};
use crate::lease::{Checkpoint, LeaseError};
use crate::sink::{Ack, Batch, Encoder, SinkHandle};
use crate::telemetry::{ShardMetrics, Telemetry};

pub use dead_letter::DeadLetters;

/// A batch is submitted once it holds this many bytes (or at the end of each
/// GetRecords answer).
const BATCH_BYTES: usize = 256 * 1024;
/// Reader → pipeline channel depth, in GetRecords answers (bytes are bounded by
/// the readers' shared budget).
const CHANNEL_DEPTH: usize = 2;

/// What every shard of one stream (in one region) shares.
#[derive(Debug)]
pub struct StreamContext {
    /// The stream.
    pub stream: StreamId,
    /// Its region, for telemetry and logs.
    pub region: String,
    /// The Kinesis client (region, credentials).
    pub kinesis: Client,
    /// The region's lease table.
    pub store: DynamoDbLeaseStore,
    /// How the stream's lease keys are made.
    pub keys: LeaseKeys,
    /// Where shards without a checkpoint start.
    pub initial: Checkpoint,
    /// The AT_TIMESTAMP time, if configured.
    pub start_time: Option<std::time::SystemTime>,
    /// The stream's `[reader]` settings.
    pub reader: ReaderConfig,
    /// The encoder template (with the stream's tags), cloned per shard.
    pub encoder: Encoder,
}

/// What every shard of the process shares.
#[derive(Debug, Clone)]
pub struct Shared {
    /// Classifies events (built from `[vpc_flow]`).
    pub classifier: Arc<Classifier>,
    /// `[decode]` limits.
    pub decode: crate::decode::DecodeConfig,
    /// Where events go.
    pub sink: SinkHandle,
    /// Bytes read and not yet processed, all shards together.
    pub budget: Arc<Semaphore>,
    /// Counters.
    pub telemetry: Telemetry,
    /// Where bad records are written, if anywhere.
    pub dead_letters: Option<Arc<DeadLetters>>,
    /// How often checkpoints are written.
    pub checkpoint_interval: Duration,
}

/// How a shard task ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ShardEnd {
    /// Read to its end and checkpointed at SHARD_END.
    Finished,
    /// The lease was lost (or released): stopped at once.
    LeaseLost,
    /// Shutdown: drained and checkpointed.
    Stopped,
}

/// Why a shard task failed.
#[derive(Debug, thiserror::Error)]
pub enum ShardError {
    /// The reader gave up (permissions, KMS, a bad request).
    #[error("shard {shard_id} of stream {stream}: {source}")]
    Read {
        /// The stream.
        stream: String,
        /// The shard.
        shard_id: String,
        /// Why.
        source: ReadError,
    },
    /// The sink stopped while the shard still had events to send.
    #[error("shard {shard_id}: the sink stopped")]
    SinkClosed {
        /// The shard.
        shard_id: String,
    },
}

/// Runs one shard's pipeline until the shard ends, the lease is lost, or `stop`
/// is cancelled (then drains until `drain_deadline` says).
pub async fn run_shard(
    ctx: Arc<StreamContext>,
    shared: Shared,
    coordinator: LeaseCoordinator<DynamoDbLeaseStore>,
    held: Arc<HeldLease>,
    stop: CancellationToken,
    drain_deadline: Arc<std::sync::Mutex<Option<Instant>>>,
) -> Result<ShardEnd, ShardError> {
    let lease = held.lease().await;
    let shard_id = lease.shard_id().to_owned();
    let key = crate::telemetry::ShardKey {
        stream: ctx.stream.name().to_owned(),
        region: ctx.region.clone(),
        shard_id: shard_id.clone(),
    };
    let metrics = shared.telemetry.shard(key.clone());
    // However the task ends, the shard's gauges stop being reported as held.
    let _released = Released(&shared.telemetry, key);
    let read_error = |source| ShardError::Read {
        stream: ctx.stream.to_string(),
        shard_id: shard_id.clone(),
        source,
    };
    let start = Start::from_checkpoint(&lease.checkpoint, ctx.start_time).map_err(read_error)?;
    info!(checkpoint = %lease.checkpoint, "reading shard");
    let (tx, rx) = mpsc::channel(CHANNEL_DEPTH);
    let fetch = CancellationToken::new();
    let api = CountingApi {
        api: StreamShards {
            client: ctx.kinesis.clone(),
            stream: ctx.stream.clone(),
        },
        metrics: Arc::clone(&metrics),
    };
    let reader = async {
        let result = read_shard(
            &api,
            &shard_id,
            start,
            &ctx.reader,
            Some(&shared.budget),
            &tx,
            &fetch,
        )
        .await;
        drop(tx);
        result
    };
    let mut shard = Shard {
        ctx: &ctx,
        shared: &shared,
        coordinator: &coordinator,
        held: &held,
        shard_id: &shard_id,
        metrics: Arc::clone(&api.metrics),
        decoder: Decoder::new(&shared.decode, Arc::clone(&shared.classifier)),
        encoder: ctx.encoder.clone(),
        watermark: Watermark::new(),
        in_flight: VecDeque::new(),
        to_checkpoint: None,
        group_cache: None,
    };
    let process = shard.process(rx, &fetch, &stop, &drain_deadline);
    let (read, processed) = tokio::join!(reader, process);
    let end = processed?;
    match read {
        Ok(ReadEnd::ShardEnd | ReadEnd::Stopped) => Ok(end),
        // A shard whose data expired (or a deleted stream) must not block its
        // children: finish it.
        Err(ReadError::NotFound(reason)) if end != ShardEnd::LeaseLost => {
            warn!(
                reason,
                "shard not found; marking it finished so its children are read"
            );
            shard.finish(&[]).await;
            Ok(ShardEnd::Finished)
        }
        Err(_) if end == ShardEnd::LeaseLost => Ok(end),
        Err(err) => Err(read_error(err)),
    }
}

/// The shard's Kinesis calls, counting throttles and expired iterators.
struct CountingApi {
    api: StreamShards,
    metrics: Arc<ShardMetrics>,
}

impl ShardApi for CountingApi {
    async fn iterator(
        &self,
        shard_id: &str,
        position: &StartingPosition,
    ) -> Result<String, ApiError> {
        let result = self.api.iterator(shard_id, position).await;
        if let Err(ApiError::Throttled(_)) = &result {
            ShardMetrics::add(&self.metrics.throttles, 1);
        }
        result
    }

    async fn records(&self, iterator: &str, limit: i32) -> Result<RecordBatch, GetRecordsError> {
        let result = self.api.records(iterator, limit).await;
        match &result {
            Err(GetRecordsError::Throttled(_)) => ShardMetrics::add(&self.metrics.throttles, 1),
            Err(GetRecordsError::ExpiredIterator(_)) => {
                ShardMetrics::add(&self.metrics.expired_iterators, 1)
            }
            _ => {}
        }
        result
    }
}

/// A submitted batch and the records (watermark tickets, with how many of their
/// events it holds) it completes.
struct InFlight {
    ack: Ack,
    tickets: Vec<(Ticket, u32)>,
}

struct Shard<'a> {
    ctx: &'a StreamContext,
    shared: &'a Shared,
    coordinator: &'a LeaseCoordinator<DynamoDbLeaseStore>,
    held: &'a Arc<HeldLease>,
    shard_id: &'a str,
    metrics: Arc<ShardMetrics>,
    decoder: Decoder,
    encoder: Encoder,
    watermark: Watermark,
    in_flight: VecDeque<InFlight>,
    /// The newest position acknowledged and not yet written.
    to_checkpoint: Option<Checkpoint>,
    /// The last log group seen and whether a custom VPC format applies to it.
    group_cache: Option<(Option<String>, bool)>,
}

impl Shard<'_> {
    async fn process(
        &mut self,
        mut rx: mpsc::Receiver<ShardMessage>,
        fetch: &CancellationToken,
        stop: &CancellationToken,
        drain_deadline: &std::sync::Mutex<Option<Instant>>,
    ) -> Result<ShardEnd, ShardError> {
        let lost = self.held.lost().clone();
        let mut ticks = tokio::time::interval(self.shared.checkpoint_interval);
        ticks.set_missed_tick_behavior(MissedTickBehavior::Delay);
        ticks.reset();
        let mut ended: Option<Vec<ChildShard>> = None;
        // Set once reading stopped: until when outstanding acks are awaited.
        let mut drain_until: Option<Instant> = None;
        loop {
            let stopping = drain_until.is_some();
            if (ended.is_some() || stopping) && self.in_flight.is_empty() {
                break;
            }
            let reading = ended.is_none() && !stopping;
            tokio::select! {
                biased;
                _ = lost.cancelled() => {
                    fetch.cancel();
                    return Ok(ShardEnd::LeaseLost);
                }
                _ = stop.cancelled(), if !stopping => {
                    debug!("stop: no more reads; draining acknowledgements");
                    fetch.cancel();
                    let deadline = *drain_deadline.lock().unwrap_or_else(|e| e.into_inner());
                    drain_until = Some(deadline.unwrap_or_else(Instant::now));
                }
                _ = tokio::time::sleep_until(drain_until.unwrap_or_else(Instant::now)), if stopping => {
                    warn!(batches = self.in_flight.len(), "drain time over; unacknowledged events will be read again");
                    break;
                }
                ack = async { (&mut self.in_flight.front_mut().expect("not empty").ack).await }, if !self.in_flight.is_empty() => {
                    let done = self.in_flight.pop_front().expect("not empty");
                    match ack {
                        Ok(()) => self.acknowledged(done.tickets),
                        Err(_) => {
                            // The sink stopped: only a shutdown does that.
                            fetch.cancel();
                            if stop.is_cancelled() {
                                break;
                            }
                            return Err(ShardError::SinkClosed { shard_id: self.shard_id.to_owned() });
                        }
                    }
                }
                _ = ticks.tick() => {
                    if self.write_checkpoint().await == Some(false) {
                        fetch.cancel();
                        return Ok(ShardEnd::LeaseLost);
                    }
                }
                message = rx.recv(), if reading => match message {
                    Some(ShardMessage::Records(records)) => {
                        if !self.records(records, &lost, stop).await? {
                            fetch.cancel();
                            return Ok(ShardEnd::LeaseLost);
                        }
                    }
                    Some(ShardMessage::End { children, .. }) => {
                        debug!(children = children.len(), "shard end reached; waiting for the last acknowledgements");
                        ended = Some(children);
                    }
                    // The reader gave up (its error is reported after the drain):
                    // let what was sent be acknowledged and checkpointed first.
                    None => drain_until = Some(Instant::now() + self.shared.checkpoint_interval),
                },
            }
        }
        if let Some(children) = ended {
            if self.in_flight.is_empty() {
                self.finish(&children).await;
                return Ok(ShardEnd::Finished);
            }
        }
        if self.write_checkpoint().await == Some(false) {
            return Ok(ShardEnd::LeaseLost);
        }
        Ok(ShardEnd::Stopped)
    }

    /// Decodes, encodes and submits one GetRecords answer. False when the lease was
    /// lost while waiting for room in the sink's queue.
    async fn records(
        &mut self,
        batch: ShardRecords,
        lost: &CancellationToken,
        stop: &CancellationToken,
    ) -> Result<bool, ShardError> {
        let ShardRecords {
            records,
            millis_behind_latest,
            done_sub_records,
            budget,
            ..
        } = batch;
        let m = Arc::clone(&self.metrics);
        if let Some(ms) = millis_behind_latest {
            m.millis_behind_latest.store(ms, Ordering::Relaxed);
            self.held.report_lag(ms);
        }
        ShardMetrics::add(&m.records, records.len() as u64);
        let mut out = Batch::with_capacity(BATCH_BYTES + 64 * 1024);
        let mut tickets: Vec<(Ticket, u32)> = Vec::new();
        let mut per_sub: Vec<u32> = Vec::new();
        for record in &records {
            let data = record.data().as_ref();
            ShardMetrics::add(&m.data_bytes, data.len() as u64);
            let seq = record.sequence_number();
            // Resuming inside a KPL aggregate: its done sub-records are skipped.
            let skip_through = done_sub_records
                .as_ref()
                .filter(|(s, _)| s == seq)
                .map(|(_, k)| *k);
            let arrival_ms = record
                .approximate_arrival_timestamp()
                .and_then(|t| t.to_millis().ok());
            per_sub.clear();
            let classifier = &*self.shared.classifier;
            let (encoder, group_cache) = (&mut self.encoder, &mut self.group_cache);
            let outcome = self.decoder.decode_record(data, arrival_ms, |event| {
                let sub = event.subsequence.unwrap_or(0) as usize;
                if skip_through.is_some_and(|k| sub as u64 <= k) {
                    return;
                }
                if per_sub.len() <= sub {
                    per_sub.resize(sub + 1, 0);
                }
                per_sub[sub] += 1;
                let class = event.classification.class;
                m.event(class);
                if class != Class::VpcFlow
                    && has_custom_format(group_cache, classifier, event.origin.log_group.as_deref())
                {
                    ShardMetrics::add(&m.vpc_format_misfits, 1);
                }
                encoder.encode(event, classifier, &mut out);
            });
            ShardMetrics::add(&m.control_messages, u64::from(outcome.control_messages));
            for bad in &outcome.errors {
                ShardMetrics::add(&m.decode_errors, 1);
                warn!(
                    sequence_number = seq,
                    subsequence = bad.subsequence,
                    error = %bad.error,
                    "bad record set aside"
                );
                if let Some(dead) = &self.shared.dead_letters {
                    dead.write(
                        self.ctx.stream.name(),
                        self.shard_id,
                        seq,
                        bad.subsequence,
                        data,
                    );
                }
            }
            // Register the record (or each KPL sub-record) with its event count.
            let subs = outcome.sub_records.max(1) as usize;
            per_sub.resize(subs.max(per_sub.len()), 0);
            for (sub, &events) in per_sub.iter().enumerate() {
                if skip_through.is_some_and(|k| sub as u64 <= k) {
                    continue;
                }
                let last = sub + 1 == per_sub.len();
                let ticket = self.watermark.push(seq, sub as u64, last, events);
                if events > 0 {
                    tickets.push((ticket, events));
                }
            }
            if out.len_bytes() >= BATCH_BYTES {
                let full =
                    std::mem::replace(&mut out, Batch::with_capacity(BATCH_BYTES + 64 * 1024));
                if !self
                    .submit(full, std::mem::take(&mut tickets), lost, stop)
                    .await?
                {
                    return Ok(false);
                }
            }
        }
        drop(budget);
        if !out.is_empty() {
            if !self.submit(out, tickets, lost, stop).await? {
                return Ok(false);
            }
        } else {
            // Records without events (bad ones, control messages) are done at once.
            self.acknowledged(Vec::new());
        }
        Ok(true)
    }

    /// Submits a batch, waiting for room in the sink's queue unless the lease is
    /// lost first (false) or the worker stops (the batch is dropped: its records
    /// stay unacknowledged, so no checkpoint passes them).
    async fn submit(
        &mut self,
        batch: Batch,
        tickets: Vec<(Ticket, u32)>,
        lost: &CancellationToken,
        stop: &CancellationToken,
    ) -> Result<bool, ShardError> {
        let submitted = tokio::select! {
            biased;
            _ = lost.cancelled() => return Ok(false),
            _ = stop.cancelled() => return Ok(true),
            submitted = self.shared.sink.submit(batch) => submitted,
        };
        let ack = submitted.map_err(|_| ShardError::SinkClosed {
            shard_id: self.shard_id.to_owned(),
        })?;
        self.in_flight.push_back(InFlight { ack, tickets });
        Ok(true)
    }

    fn acknowledged(&mut self, tickets: Vec<(Ticket, u32)>) {
        for (ticket, events) in tickets {
            for _ in 0..events {
                self.watermark.ack(ticket);
            }
        }
        if let Some(checkpoint) = self.watermark.advance() {
            self.to_checkpoint = Some(checkpoint);
        }
    }

    /// Writes the newest acknowledged position, if any. `Some(false)`: the lease
    /// is lost; `None`: nothing to write or a transient failure (retried later).
    async fn write_checkpoint(&mut self) -> Option<bool> {
        let checkpoint = self.to_checkpoint.take()?;
        match self
            .coordinator
            .checkpoint(self.held, &checkpoint, &[])
            .await
        {
            Ok(()) => {
                debug!(checkpoint = %checkpoint, "checkpointed");
                self.metrics
                    .last_checkpoint_ms
                    .store(now_ms(), Ordering::Relaxed);
                self.shared
                    .telemetry
                    .leases
                    .last_table_success_ms
                    .store(now_ms(), Ordering::Relaxed);
                Some(true)
            }
            Err(LeaseError::Lost { .. }) => Some(false),
            Err(err) => {
                warn!(checkpoint = %checkpoint, error = %err, "checkpoint failed; retrying at the next interval");
                // Keep it unless a newer one arrived meanwhile (none can: we hold &mut).
                self.to_checkpoint = Some(checkpoint);
                None
            }
        }
    }

    /// The shard was read to its end and everything acknowledged: make the
    /// children's leases, then checkpoint SHARD_END (which lets them be taken).
    async fn finish(&mut self, children: &[ChildShard]) {
        if !children.is_empty() {
            if let Err(err) = sync_shards(
                &self.ctx.kinesis,
                &self.ctx.store,
                &self.ctx.stream,
                &self.ctx.keys,
                &self.ctx.initial,
            )
            .await
            {
                warn!(error = %err, "making the children's leases failed; the periodic shard sync retries");
            }
        }
        let child_ids: Vec<String> = children
            .iter()
            .map(|c| self.ctx.keys.key(&c.shard_id))
            .collect();
        let mut attempt = 0u32;
        loop {
            match self
                .coordinator
                .checkpoint(self.held, &Checkpoint::ShardEnd, &child_ids)
                .await
            {
                Ok(()) => {
                    info!(children = ?child_ids, "shard finished: checkpointed SHARD_END");
                    self.metrics
                        .last_checkpoint_ms
                        .store(now_ms(), Ordering::Relaxed);
                    return;
                }
                Err(LeaseError::Lost { .. }) => return,
                Err(err) if err.is_transient() && attempt < 5 => {
                    attempt += 1;
                    warn!(error = %err, attempt, "SHARD_END checkpoint failed; retrying");
                    tokio::time::sleep(Duration::from_millis(200 * u64::from(attempt))).await;
                }
                Err(err) => {
                    error!(error = %err, "SHARD_END checkpoint failed; the shard is read again by its next owner");
                    return;
                }
            }
        }
    }
}

/// Whether a custom VPC flow format applies to `group` (cached for the last group:
/// events of one payload share it).
fn has_custom_format(
    cache: &mut Option<(Option<String>, bool)>,
    classifier: &Classifier,
    group: Option<&str>,
) -> bool {
    match cache {
        Some((cached, custom)) if cached.as_deref() == group => *custom,
        _ => {
            let custom = classifier.for_group(group).format_index().is_some();
            *cache = Some((group.map(str::to_owned), custom));
            custom
        }
    }
}

fn now_ms() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_millis() as i64)
}

/// Marks a shard's telemetry as no longer held when dropped.
struct Released<'a>(&'a crate::telemetry::Telemetry, crate::telemetry::ShardKey);

impl Drop for Released<'_> {
    fn drop(&mut self) {
        self.0.released(&self.1);
    }
}
