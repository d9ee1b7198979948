//! The running collector: wires the configuration into leases, readers, the
//! decoder, the sink and checkpoints, supervises the tasks, and stops cleanly.
//!
//! Per region (one lease table, named after `collector.application`): the lease
//! store, one coordinator (take loop and renew loop on their own tasks), and a
//! shard sync loop for the region's streams. Per lease acquired: one shard task
//! ([`crate::pipeline::run_shard`]) in a `JoinSet`, with its own span.
//!
//! Clean stop (the root token is cancelled): stop taking leases and reading, wait
//! for in-flight events to be acknowledged (bounded by `shutdown.drain_timeout`),
//! write the final checkpoints, release the leases so other workers take them at
//! once, close the sink. A fatal error stops the same way and is returned.

use std::collections::BTreeMap;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use tokio::sync::mpsc;
use tokio::task::JoinSet;
use tokio::time::Instant;
use tokio_util::sync::CancellationToken;
use tracing::{debug, error, info, warn, Instrument};

use crate::aws::{sdk_config, AwsConfigError, AwsTarget};
use crate::classify::{Classifier, ClassifierError};
use crate::collector::{run_problems, StreamConfig};
use crate::config::{Config, Problems};
use crate::kinesis::api::ApiError;
use crate::lease::coordinator::{default_worker_id, LeaseCoordinator, LeaseEvent};
use crate::lease::dynamodb::DynamoDbLeaseStore;
use crate::lease::shard_sync::{multi_stream_keys, sync_shards, LeaseKeys, ShardSyncError};
use crate::lease::{LeaseError, LeaseStore};
use crate::pipeline::{run_shard, DeadLetters, ShardEnd, ShardError, Shared, StreamContext};
use crate::sink::{Encoder, Sink, SinkError, SinkHandle, StatusSnapshot};
use crate::telemetry::{self, Telemetry};

/// Time allowed, beyond the drain time, for the final checkpoint writes.
const CHECKPOINT_GRACE: Duration = Duration::from_secs(10);

/// Why the collector could not start or had to stop.
#[derive(Debug, thiserror::Error)]
pub enum AppError {
    /// The HTTP endpoints cannot listen.
    #[error("http.listen: {0}")]
    Http(std::io::Error),
    /// The configuration lacks what `run` needs.
    #[error("the configuration cannot be run:\n{0}")]
    Config(Problems),
    /// `[vpc_flow]` could not be turned into a classifier.
    #[error(transparent)]
    Classifier(#[from] ClassifierError),
    /// The sink could not start.
    #[error(transparent)]
    Sink(#[from] SinkError),
    /// The dead-letter directory cannot be used.
    #[error("reader.dead_letter_dir {dir}: {source}")]
    DeadLetter {
        /// The directory.
        dir: String,
        /// Why.
        source: std::io::Error,
    },
    /// No AWS configuration for a region.
    #[error(transparent)]
    Aws(#[from] AwsConfigError),
    /// The lease table cannot be used.
    #[error("lease table {table} in {region}: {source}")]
    Lease {
        /// The table.
        table: String,
        /// Its region.
        region: String,
        /// Why.
        source: Box<LeaseError>,
    },
    /// A stream cannot be described or its shards listed.
    #[error("stream {stream} in {region}: {source}")]
    Stream {
        /// The stream.
        stream: String,
        /// The region.
        region: String,
        /// Why.
        source: Box<StreamSetupError>,
    },
    /// A shard could not be read for a reason retrying will not fix.
    #[error(transparent)]
    Shard(#[from] ShardError),
    /// A task panicked.
    #[error("internal task failed: {0}")]
    Task(String),
}

/// Why a stream could not be set up.
#[derive(Debug, thiserror::Error)]
pub enum StreamSetupError {
    /// DescribeStreamSummary failed.
    #[error(transparent)]
    Describe(#[from] ApiError),
    /// The first shard sync failed.
    #[error(transparent)]
    Sync(#[from] ShardSyncError),
}

/// What the run did, for the caller's last log line.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct RunReport {
    /// Leases released at the end.
    pub released: usize,
}

/// The collector, configured and not yet running.
#[derive(Debug)]
pub struct App {
    config: Config,
    worker_id: String,
    telemetry: Telemetry,
    ready: CancellationToken,
    sink: std::sync::OnceLock<SinkHandle>,
}

/// One region: its coordinator and the streams it reads there.
struct Region {
    coordinator: LeaseCoordinator<DynamoDbLeaseStore>,
    /// The region's name and SDK config (for the CloudWatch publisher).
    name: String,
    sdk: aws_config::SdkConfig,
    streams: Vec<Arc<StreamContext>>,
}

impl App {
    /// Checks what `run` needs beyond a valid file (an application, a stream).
    pub fn new(config: Config) -> Result<App, AppError> {
        let problems = run_problems(&config);
        if !problems.is_empty() {
            return Err(AppError::Config(problems));
        }
        let worker_id = config
            .collector
            .worker_id
            .clone()
            .unwrap_or_else(default_worker_id);
        Ok(App {
            config,
            worker_id,
            telemetry: Telemetry::new(),
            ready: CancellationToken::new(),
            sink: std::sync::OnceLock::new(),
        })
    }

    /// The counters every component updates, for the exporters.
    pub fn telemetry(&self) -> &Telemetry {
        &self.telemetry
    }

    /// Cancelled once the configuration is loaded, the lease tables answered and
    /// the coordinators run (systemd's READY=1); the SIEM is not waited for.
    pub fn ready(&self) -> &CancellationToken {
        &self.ready
    }

    /// The sink's connection state and counters, once `run` started it.
    pub fn sink_status(&self) -> Option<StatusSnapshot> {
        self.sink.get().map(SinkHandle::status)
    }

    /// This worker's id in the lease tables.
    pub fn worker_id(&self) -> &str {
        &self.worker_id
    }

    /// The configuration.
    pub fn config(&self) -> &Config {
        &self.config
    }

    /// Runs until `shutdown` is cancelled (then stops cleanly and returns `Ok`) or
    /// a fatal error (then stops the same way and returns it).
    pub async fn run(&self, shutdown: CancellationToken) -> Result<RunReport, AppError> {
        let config = &self.config;
        let classifier = Arc::new(Classifier::new(&config.vpc_flow)?);
        let dead_letters = match &config.reader.dead_letter_dir {
            Some(dir) => Some(Arc::new(DeadLetters::open(dir).map_err(|source| {
                AppError::DeadLetter {
                    dir: dir.display().to_string(),
                    source,
                }
            })?)),
            None => None,
        };
        // Never cancelled: the sink is closed (drained) at the end.
        let sink = Sink::start(&config.sink, CancellationToken::new())?;
        // A second `run` of the same App keeps the first handle: status only.
        let _ = self.sink.set(sink.handle());
        let shared = Shared {
            classifier,
            decode: config.decode.clone(),
            sink: sink.handle(),
            budget: config.reader.byte_budget(),
            telemetry: self.telemetry.clone(),
            dead_letters,
            checkpoint_interval: config.checkpoint.interval,
        };
        // Exporters (HTTP endpoints, CloudWatch, falling-behind) run beside the
        // pipeline and stop after it, so the last interval's figures are sent.
        let exporters = tokio_util::task::TaskTracker::new();
        let stop_exporters = CancellationToken::new();
        let sources = telemetry::Sources {
            telemetry: self.telemetry.clone(),
            sink: Some(sink.handle()),
            worker_id: self.worker_id.clone(),
            failover: config.lease.failover,
        };
        if let Err(err) =
            telemetry::serve_http(config, sources.clone(), &exporters, stop_exporters.clone()).await
        {
            let _ = sink.close(Duration::ZERO).await;
            return Err(AppError::Http(err));
        }
        let stop_taking = CancellationToken::new();
        let stop_renewing = CancellationToken::new();
        let mut background: JoinSet<Result<(), AppError>> = JoinSet::new();
        let (events_tx, events_rx) = mpsc::unbounded_channel();
        let regions = match self
            .start_regions(&stop_taking, &stop_renewing, &mut background, events_tx)
            .await
        {
            Ok(regions) => regions,
            Err(err) => {
                stop_taking.cancel();
                stop_renewing.cancel();
                background.shutdown().await;
                let _ = sink.close(Duration::ZERO).await;
                stop_exporters.cancel();
                exporters.close();
                exporters.wait().await;
                return Err(err);
            }
        };
        let cloudwatch: Vec<_> = regions
            .iter()
            .map(|r| (r.name.clone(), r.sdk.clone()))
            .collect();
        let retention = regions
            .iter()
            .flat_map(|r| &r.streams)
            .map(|s| telemetry::behind::StreamRetention {
                stream: s.stream.clone(),
                region: s.region.clone(),
                client: s.kinesis.clone(),
            })
            .collect();
        telemetry::start_exporters(
            config,
            sources,
            &cloudwatch,
            retention,
            &exporters,
            stop_exporters.clone(),
        );
        self.ready.cancel();
        telemetry::notify::ready();
        info!(
            worker_id = %self.worker_id,
            application = %config.collector.application,
            regions = regions.len(),
            streams = regions.iter().map(|r| r.streams.len()).sum::<usize>(),
            "collector running"
        );

        let stop_shards = CancellationToken::new();
        let drain_deadline = Arc::new(Mutex::new(None));
        let mut shards: JoinSet<Result<ShardEnd, ShardError>> = JoinSet::new();
        let failure = self
            .supervise(
                &shutdown,
                &regions,
                &shared,
                events_rx,
                &mut shards,
                &mut background,
                &stop_shards,
                &drain_deadline,
            )
            .await;

        // Clean stop.
        telemetry::notify::stopping();
        stop_taking.cancel();
        let drain = config.shutdown.drain_timeout;
        let deadline = Instant::now() + drain;
        *drain_deadline.lock().unwrap_or_else(|e| e.into_inner()) = Some(deadline);
        stop_shards.cancel();
        let drained = tokio::time::timeout_at(deadline + CHECKPOINT_GRACE, async {
            while let Some(result) = shards.join_next().await {
                log_shard_result(result);
            }
        })
        .await;
        if drained.is_err() {
            warn!(
                shards = shards.len(),
                "shard tasks did not finish within the drain time; stopping them"
            );
            shards.shutdown().await;
        }
        let mut report = RunReport::default();
        for region in &regions {
            report.released += region.coordinator.release_all().await;
        }
        stop_renewing.cancel();
        let left = deadline.saturating_duration_since(Instant::now());
        match sink.close(left).await {
            Ok(close) if close.unacknowledged_batches > 0 => warn!(
                batches = close.unacknowledged_batches,
                "sink closed with unacknowledged batches; they are read again (not checkpointed)"
            ),
            Ok(_) => {}
            Err(err) => warn!(error = %err, "sink did not close cleanly"),
        }
        while let Some(result) = background.join_next().await {
            if let Some(err) = task_error(result) {
                warn!(error = %err, "background task failed while stopping");
            }
        }
        self.update_current(&regions);
        stop_exporters.cancel(); // the publisher sends its last interval
        exporters.close();
        exporters.wait().await;
        info!(released = report.released, "collector stopped");
        match failure {
            Some(err) => Err(err),
            None => Ok(report),
        }
    }

    /// Per region: the lease table, the streams' clients and first shard sync,
    /// the coordinator's loops and the shard sync loop.
    async fn start_regions(
        &self,
        stop_taking: &CancellationToken,
        stop_renewing: &CancellationToken,
        background: &mut JoinSet<Result<(), AppError>>,
        events_tx: mpsc::UnboundedSender<(usize, LeaseEvent)>,
    ) -> Result<Vec<Region>, AppError> {
        let config = &self.config;
        let mut by_region: BTreeMap<Option<String>, Vec<&StreamConfig>> = BTreeMap::new();
        for stream in &config.streams.0 {
            for region in stream.target_regions() {
                by_region.entry(region).or_default().push(stream);
            }
        }
        let hostname = crate::sink::system_hostname();
        let table = &config.collector.application;
        let mut regions = Vec::new();
        for (index, (region, streams)) in by_region.into_iter().enumerate() {
            let target = AwsTarget {
                region: region.clone(),
                ..AwsTarget::default()
            };
            let base = sdk_config(&target, &self.worker_id).await?;
            let region_name = base
                .region()
                .map_or_else(|| "default".to_owned(), |r| r.to_string());
            let store = DynamoDbLeaseStore::from_config(&base, table.clone(), &config.lease);
            store
                .ensure_table()
                .await
                .map_err(|source| AppError::Lease {
                    table: table.clone(),
                    region: region_name.clone(),
                    source: Box::new(source),
                })?;
            let multi = streams.len() > 1;
            let mut contexts = Vec::new();
            for stream in streams {
                let ctx = self
                    .stream_context(stream, &region, &region_name, multi, &store, &hostname)
                    .await?;
                contexts.push(Arc::new(ctx));
            }
            let (coordinator, mut events) =
                LeaseCoordinator::new(store, self.worker_id.clone(), config.lease.clone());
            coordinator.report_to(Arc::clone(&self.telemetry.leases));
            let (c, stop) = (coordinator.clone(), stop_taking.clone());
            let r = region_name.clone();
            background.spawn(async move {
                c.run_taker(stop).await.map_err(|source| AppError::Lease {
                    table: c.store().table().to_owned(),
                    region: r,
                    source: Box::new(source),
                })
            });
            let (c, stop) = (coordinator.clone(), stop_renewing.clone());
            background.spawn(async move {
                c.run_renewer(stop).await;
                Ok(())
            });
            let (tx, stop) = (events_tx.clone(), stop_renewing.clone());
            background.spawn(async move {
                loop {
                    tokio::select! {
                        _ = stop.cancelled() => return Ok(()),
                        event = events.recv() => match event {
                            Some(event) => {
                                if tx.send((index, event)).is_err() {
                                    return Ok(());
                                }
                            }
                            None => return Ok(()),
                        },
                    }
                }
            });
            let (ctxs, stop) = (contexts.clone(), stop_taking.clone());
            let interval = config.lease.shard_sync_interval;
            background.spawn(async move {
                sync_loop(ctxs, interval, stop).await;
                Ok(())
            });
            regions.push(Region {
                coordinator,
                name: region_name,
                sdk: base,
                streams: contexts,
            });
        }
        Ok(regions)
    }

    async fn stream_context(
        &self,
        stream: &StreamConfig,
        region: &Option<String>,
        region_name: &str,
        multi: bool,
        store: &DynamoDbLeaseStore,
        hostname: &str,
    ) -> Result<StreamContext, AppError> {
        let id = stream.stream_id();
        let stream_error = |source: StreamSetupError| AppError::Stream {
            stream: id.to_string(),
            region: region_name.to_owned(),
            source: Box::new(source),
        };
        let target = AwsTarget {
            region: region.clone(),
            role_arn: stream.role_arn.clone(),
            external_id: stream.external_id.clone(),
        };
        let kinesis = aws_sdk_kinesis::Client::new(&sdk_config(&target, &self.worker_id).await?);
        let keys = if multi {
            multi_stream_keys(&kinesis, &id)
                .await
                .map_err(|e| stream_error(e.into()))?
        } else {
            LeaseKeys::ShardId
        };
        let initial = stream.start_position.checkpoint();
        let created = sync_shards(&kinesis, store, &id, &keys, &initial)
            .await
            .map_err(|e| stream_error(e.into()))?;
        info!(stream = %id, region = region_name, new_leases = created.len(), "stream ready");
        let tags = Arc::new(stream.tags.clone());
        Ok(StreamContext {
            stream: id,
            region: region_name.to_owned(),
            kinesis,
            store: store.clone(),
            keys,
            initial,
            start_time: stream.start_time(),
            reader: stream.reader(&self.config.reader),
            encoder: Encoder::new(&self.config.sink, hostname, tags),
        })
    }

    /// Starts a shard task per lease acquired, until `shutdown` or a fatal error
    /// (returned).
    #[allow(clippy::too_many_arguments)]
    async fn supervise(
        &self,
        shutdown: &CancellationToken,
        regions: &[Region],
        shared: &Shared,
        mut events: mpsc::UnboundedReceiver<(usize, LeaseEvent)>,
        shards: &mut JoinSet<Result<ShardEnd, ShardError>>,
        background: &mut JoinSet<Result<(), AppError>>,
        stop_shards: &CancellationToken,
        drain_deadline: &Arc<Mutex<Option<Instant>>>,
    ) -> Option<AppError> {
        let leases = &self.telemetry.leases;
        loop {
            tokio::select! {
                biased;
                _ = shutdown.cancelled() => return None,
                Some(result) = background.join_next() => {
                    if let Some(err) = task_error(result) {
                        error!(error = %err, "fatal: stopping");
                        return Some(err);
                    }
                }
                Some(result) = shards.join_next() => {
                    if let Err(err) = result.map_err(|e| AppError::Task(e.to_string())).and_then(|r| r.map_err(AppError::from)) {
                        error!(error = %err, "fatal: stopping");
                        return Some(err);
                    }
                }
                Some((index, event)) = events.recv() => match event {
                    LeaseEvent::Acquired(held) => {
                        leases.taken.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
                        let region = &regions[index];
                        let lease = held.lease().await;
                        let Some(ctx) = region.streams.iter().find(|c| c.keys.owns(&lease)) else {
                            warn!(lease_key = %lease.key, "lease of no configured stream; not read");
                            continue;
                        };
                        let span = tracing::info_span!(
                            "shard",
                            stream = %ctx.stream.name(),
                            region = %ctx.region,
                            shard_id = %lease.shard_id(),
                        );
                        shards.spawn(
                            run_shard(
                                Arc::clone(ctx),
                                shared.clone(),
                                region.coordinator.clone(),
                                held,
                                stop_shards.clone(),
                                Arc::clone(drain_deadline),
                            )
                            .instrument(span),
                        );
                    }
                    LeaseEvent::Lost { key, reason } => {
                        leases.lost.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
                        debug!(lease_key = %key, reason, "shard task stops: lease lost");
                    }
                },
            }
            self.update_current(regions);
        }
    }

    fn update_current(&self, regions: &[Region]) {
        let held: usize = regions.iter().map(|r| r.coordinator.held().len()).sum();
        self.telemetry
            .leases
            .current
            .store(held as i64, std::sync::atomic::Ordering::Relaxed);
    }
}

/// Syncs each stream's leases with its shards every `interval`: creates leases for
/// new shards, deletes finished parents' leases, resets the leases of a stream
/// created again (see [`crate::lease::shard_sync`]).
async fn sync_loop(streams: Vec<Arc<StreamContext>>, interval: Duration, stop: CancellationToken) {
    let mut ticks = tokio::time::interval(interval);
    ticks.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    ticks.reset();
    loop {
        tokio::select! {
            _ = stop.cancelled() => return,
            _ = ticks.tick() => {}
        }
        for ctx in &streams {
            let result = tokio::select! {
                _ = stop.cancelled() => return,
                result = sync_shards(&ctx.kinesis, &ctx.store, &ctx.stream, &ctx.keys, &ctx.initial) => result,
            };
            if let Err(err) = result {
                warn!(stream = %ctx.stream, region = %ctx.region, error = %err, "shard sync failed; retrying at the next interval");
            }
        }
    }
}

fn log_shard_result(result: Result<Result<ShardEnd, ShardError>, tokio::task::JoinError>) {
    match result {
        Ok(Ok(end)) => debug!(?end, "shard task ended"),
        Ok(Err(err)) => warn!(error = %err, "shard task failed while stopping"),
        Err(err) => error!(error = %err, "shard task panicked"),
    }
}

fn task_error(result: Result<Result<(), AppError>, tokio::task::JoinError>) -> Option<AppError> {
    match result {
        Ok(Ok(())) => None,
        Ok(Err(err)) => Some(err),
        Err(err) => Some(AppError::Task(err.to_string())),
    }
}
