//! The lease coordinator: takes leases ([`super::balance`]), renews the ones it
//! holds, and is the single writer of each held lease (renewals, checkpoints and
//! the release go through the lease's lock, so they never race each other into a
//! false "lost lease").
//!
//! Two loops, each on its own task and each stopped by its own token:
//! [`LeaseCoordinator::run_taker`] (stop it at shutdown) and
//! [`LeaseCoordinator::run_renewer`] (keep it running through the drain, stop it
//! after [`LeaseCoordinator::release_all`]). Renewal never waits behind a reader
//! or the sink: the only thing it can wait for is one checkpoint write of the same
//! lease. Readers learn what to read from [`LeaseEvent`]s and stop when their
//! lease's [`HeldLease::lost`] token is cancelled. A lease checkpointed at
//! SHARD_END is no longer held (nor renewed): the shard sync deletes it once its
//! children have started.

use std::collections::{BTreeMap, HashSet};
use std::hash::BuildHasher;
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::Duration;

use tokio::sync::{mpsc, Notify};
use tokio::task::JoinSet;
use tokio::time::{Instant, MissedTickBehavior};
use tokio_util::sync::CancellationToken;
use tracing::{debug, error, info, warn};

use super::balance::{plan_take, ExpiryTracker, TakeRules};
use super::{Checkpoint, Lease, LeaseConfig, LeaseError, LeaseStore};

/// The longest wait before a follow-up take round: after a starting worker left
/// free leases for later (it takes half per round, see [`TakeRules::starting`]) or
/// lost a race for one. A second is ample for a worker started at the same moment
/// to list the table and take its leases, which the follow-up round then sees, and
/// short enough that a lone worker reads all its shards within a few seconds
/// (8 shards: 4, then 6, 7 and 8 a second apart).
const FOLLOW_UP_WAIT: Duration = Duration::from_secs(1);

/// A lease this worker holds. Cloned as `Arc` between the coordinator and the
/// shard's reader.
#[derive(Debug)]
pub struct HeldLease {
    key: String,
    lease: tokio::sync::Mutex<Lease>,
    lost: CancellationToken,
    renewed_at: Mutex<Instant>,
    /// MillisBehindLatest last reported by the shard's reader (-1: none yet),
    /// written with the next renewal or checkpoint.
    lag: std::sync::atomic::AtomicI64,
}

impl HeldLease {
    /// The lease key.
    pub fn key(&self) -> &str {
        &self.key
    }

    /// Cancelled once this worker no longer holds the lease (lost, released, or
    /// finished at SHARD_END): the shard's reader selects on it and stops at once.
    pub fn lost(&self) -> &CancellationToken {
        &self.lost
    }

    /// Records how far behind the stream's tip the reader is; the next renewal or
    /// checkpoint writes it to the table, where `status` shows it.
    pub fn report_lag(&self, millis_behind_latest: i64) {
        self.lag
            .store(millis_behind_latest, std::sync::atomic::Ordering::Relaxed);
    }

    /// The lag to write with the next update, if the reader reported one.
    fn lag(&self) -> Option<u64> {
        u64::try_from(self.lag.load(std::sync::atomic::Ordering::Relaxed)).ok()
    }

    /// The lease as last written by this worker (its checkpoint is where a reader
    /// starts).
    pub async fn lease(&self) -> Lease {
        self.lease.lock().await.clone()
    }

    fn renewed_at(&self) -> MutexGuard<'_, Instant> {
        self.renewed_at.lock().unwrap_or_else(|e| e.into_inner())
    }
}

/// What readers are told.
#[derive(Debug)]
pub enum LeaseEvent {
    /// Now held: read the shard from the lease's checkpoint.
    Acquired(Arc<HeldLease>),
    /// No longer held (its `lost` token is already cancelled): another worker took
    /// it, or it could not be renewed within the failover time.
    Lost {
        /// The lease key.
        key: String,
        /// Why, for the log.
        reason: String,
    },
}

/// Takes, renews, checkpoints and releases this worker's leases. Clones share
/// state.
#[derive(Debug)]
pub struct LeaseCoordinator<S> {
    inner: Arc<Inner<S>>,
}

impl<S> Clone for LeaseCoordinator<S> {
    fn clone(&self) -> Self {
        LeaseCoordinator {
            inner: Arc::clone(&self.inner),
        }
    }
}

#[derive(Debug)]
struct Inner<S> {
    store: S,
    worker_id: String,
    config: LeaseConfig,
    held: Mutex<BTreeMap<String, Arc<HeldLease>>>,
    tracker: Mutex<ExpiryTracker>,
    events: mpsc::UnboundedSender<LeaseEvent>,
    take_soon: Notify,
    /// Where to record that the lease table answered (for `/readyz`).
    telemetry: std::sync::OnceLock<Arc<crate::telemetry::LeaseMetrics>>,
}

impl<S: LeaseStore> LeaseCoordinator<S> {
    /// A coordinator for `worker_id` and the receiver of its events (one event per
    /// lease acquired or lost, so unbounded is bounded by the lease count).
    pub fn new(
        store: S,
        worker_id: impl Into<String>,
        config: LeaseConfig,
    ) -> (LeaseCoordinator<S>, mpsc::UnboundedReceiver<LeaseEvent>) {
        let (events, receiver) = mpsc::unbounded_channel();
        let inner = Inner {
            store,
            worker_id: worker_id.into(),
            config,
            held: Mutex::default(),
            tracker: Mutex::default(),
            events,
            take_soon: Notify::new(),
            telemetry: std::sync::OnceLock::new(),
        };
        (
            LeaseCoordinator {
                inner: Arc::new(inner),
            },
            receiver,
        )
    }

    /// Records in `metrics` the time of every answer of the lease table (listing,
    /// renewal, or a conditional write refused): `/readyz` reads it. Set once.
    pub fn report_to(&self, metrics: Arc<crate::telemetry::LeaseMetrics>) {
        let _ = self.inner.telemetry.set(metrics);
    }

    /// Notes that the lease table answered just now.
    fn table_answered(&self) {
        if let Some(metrics) = self.inner.telemetry.get() {
            let now = std::time::SystemTime::now()
                .duration_since(std::time::UNIX_EPOCH)
                .map_or(0, |d| d.as_millis() as i64);
            metrics
                .last_table_success_ms
                .store(now, std::sync::atomic::Ordering::Relaxed);
        }
    }

    /// This worker's id (the `leaseOwner` it writes).
    pub fn worker_id(&self) -> &str {
        &self.inner.worker_id
    }

    /// The store.
    pub fn store(&self) -> &S {
        &self.inner.store
    }

    /// The leases held now.
    pub fn held(&self) -> Vec<Arc<HeldLease>> {
        self.lock_held().values().cloned().collect()
    }

    /// The keys of the leases held now, sorted.
    pub fn held_keys(&self) -> Vec<String> {
        self.lock_held().keys().cloned().collect()
    }

    /// Asks for a take round now instead of at the next interval (e.g. a shard
    /// reached its end and its children may be ready).
    pub fn take_soon(&self) {
        self.inner.take_soon.notify_one();
    }

    fn lock_held(&self) -> MutexGuard<'_, BTreeMap<String, Arc<HeldLease>>> {
        self.inner.held.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// The take loop: a round at once, then every take interval (after
    /// `FOLLOW_UP_WAIT` (1 s) or a renew interval, the shorter, when free leases were
    /// left for later or another worker won a lease, or at once on
    /// [`take_soon`](Self::take_soon)), until `cancel`.
    /// Returns an error only when the table cannot be read for a reason retrying
    /// will not fix.
    pub async fn run_taker(&self, cancel: CancellationToken) -> Result<(), LeaseError> {
        let started = Instant::now();
        loop {
            if cancel.is_cancelled() {
                return Ok(());
            }
            let starting = started.elapsed() < self.inner.config.take_interval();
            let more_soon = self.take_round(starting).await?;
            let wait = if more_soon {
                self.inner.config.renew_interval().min(FOLLOW_UP_WAIT)
            } else {
                self.inner.config.take_interval()
            };
            tokio::select! {
                biased;
                _ = cancel.cancelled() => return Ok(()),
                _ = self.inner.take_soon.notified() => {}
                _ = tokio::time::sleep(wait) => {}
            }
        }
    }

    /// One take round (`starting`: see [`TakeRules::starting`]); returns whether
    /// another round should follow soon (free leases were left for later, or
    /// another worker won one: workers are starting together). Transient failures
    /// end the round (the next one retries).
    pub async fn take_round(&self, starting: bool) -> Result<bool, LeaseError> {
        let worker = self.worker_id();
        let leases = match self.inner.store.list().await {
            Ok(leases) => {
                self.table_answered();
                leases
            }
            Err(err) if err.is_transient() => {
                warn!(worker, error = %err, "listing leases failed; next take round retries");
                return Ok(false);
            }
            Err(err) => return Err(err),
        };
        let now = Instant::now();
        let held: HashSet<String> = self.lock_held().keys().cloned().collect();
        let plan = {
            let mut tracker = self.inner.tracker.lock().unwrap_or_else(|e| e.into_inner());
            tracker.observe(&leases, now);
            let rules = TakeRules {
                failover: self.inner.config.failover,
                max_leases_per_worker: self.inner.config.max_leases_per_worker,
                starting,
            };
            plan_take(worker, &held, &leases, &tracker, rules, now)
        };
        let mut contended = false;
        let takes = plan.take.iter().map(|l| (l, false));
        for (lease, steal) in takes.chain(plan.steal.iter().map(|l| (l, true))) {
            match self.inner.store.take(lease, worker).await {
                Ok(taken) => {
                    let from = lease.owner.as_deref().unwrap_or("");
                    if steal {
                        info!(worker, lease_key = %taken.key, from, target = plan.target, "stole lease to balance");
                    } else if !from.is_empty() && from != worker {
                        info!(worker, lease_key = %taken.key, from, "took expired lease");
                    } else {
                        info!(worker, lease_key = %taken.key, "took lease");
                    }
                    self.acquired(taken);
                }
                Err(LeaseError::Lost { key, reason }) => {
                    debug!(worker, lease_key = %key, reason, "another worker took the lease first");
                    contended = true;
                }
                Err(err) if err.is_transient() => {
                    warn!(worker, lease_key = %lease.key, error = %err, "taking lease failed; next take round retries");
                    return Ok(false);
                }
                Err(err) => return Err(err),
            }
        }
        Ok(plan.deferred > 0 || contended)
    }

    fn acquired(&self, lease: Lease) {
        let held = Arc::new(HeldLease {
            key: lease.key.clone(),
            lease: tokio::sync::Mutex::new(lease),
            lost: CancellationToken::new(),
            renewed_at: Mutex::new(Instant::now()),
            lag: std::sync::atomic::AtomicI64::new(-1),
        });
        self.lock_held().insert(held.key.clone(), Arc::clone(&held));
        // A closed receiver means the application is stopping: nothing to tell.
        let _ = self.inner.events.send(LeaseEvent::Acquired(held));
    }

    /// Drops a lease that is no longer ours, stops its reader and tells.
    fn lost(&self, held: &Arc<HeldLease>, reason: String) {
        {
            let mut map = self.lock_held();
            if map.get(&held.key).is_some_and(|h| Arc::ptr_eq(h, held)) {
                map.remove(&held.key);
            }
        }
        if held.lost.is_cancelled() {
            return;
        }
        held.lost.cancel();
        warn!(worker = self.worker_id(), lease_key = %held.key, reason, "lease lost; its reader stops");
        let _ = self.inner.events.send(LeaseEvent::Lost {
            key: held.key.clone(),
            reason,
        });
    }

    /// Stops holding a lease checkpointed at SHARD_END, as the KCL does: no more
    /// renewals (its counter stays still, so the shard sync's conditional delete
    /// of the finished lease succeeds, see [`super::cleanup`]), no release at
    /// shutdown. The owner stays in the table; nobody takes a finished lease.
    fn finished(&self, held: &Arc<HeldLease>) {
        {
            let mut map = self.lock_held();
            if map.get(&held.key).is_some_and(|h| Arc::ptr_eq(h, held)) {
                map.remove(&held.key);
            }
        }
        held.lost.cancel();
        debug!(worker = self.worker_id(), lease_key = %held.key, "shard finished: lease no longer renewed");
    }

    /// The renew loop: renews every held lease each renew interval (a third of
    /// the failover time), concurrently, until `cancel`.
    pub async fn run_renewer(&self, cancel: CancellationToken) {
        let mut ticks = tokio::time::interval(self.inner.config.renew_interval());
        ticks.set_missed_tick_behavior(MissedTickBehavior::Delay);
        loop {
            tokio::select! {
                biased;
                _ = cancel.cancelled() => return,
                _ = ticks.tick() => self.renew_round().await,
            }
        }
    }

    /// Renews every held lease once.
    pub async fn renew_round(&self) {
        let mut renewals = JoinSet::new();
        for held in self.held() {
            let this = self.clone();
            renewals.spawn(async move { this.renew(&held).await });
        }
        while let Some(result) = renewals.join_next().await {
            if let Err(err) = result {
                error!(worker = self.worker_id(), error = %err, "lease renewal task failed");
            }
        }
    }

    async fn renew(&self, held: &Arc<HeldLease>) {
        let mut lease = held.lease.lock().await;
        if held.lost.is_cancelled() {
            return;
        }
        lease.millis_behind_latest = held.lag().or(lease.millis_behind_latest);
        match self.inner.store.renew(&lease).await {
            Ok(renewed) => {
                self.table_answered();
                *lease = renewed;
                *held.renewed_at() = Instant::now();
            }
            Err(LeaseError::Lost { reason, .. }) => {
                self.table_answered();
                drop(lease);
                self.lost(held, reason);
            }
            Err(err) => {
                let since = held.renewed_at().elapsed();
                warn!(worker = self.worker_id(), lease_key = %held.key, error = %err, "lease renewal failed");
                if since >= self.inner.config.failover {
                    drop(lease);
                    let reason = format!(
                        "not renewed for {} (others may take it after the failover time); last error: {err}",
                        humantime::format_duration(round_ms(since))
                    );
                    self.lost(held, reason);
                }
            }
        }
    }

    /// Writes a checkpoint of a held lease (with the children at SHARD_END),
    /// fenced by owner and counter. A [`LeaseError::Lost`] means the lease is gone
    /// (its reader is stopped and a `Lost` event sent); a transient error may be
    /// retried.
    pub async fn checkpoint(
        &self,
        held: &Arc<HeldLease>,
        checkpoint: &Checkpoint,
        child_shard_ids: &[String],
    ) -> Result<(), LeaseError> {
        let mut lease = held.lease.lock().await;
        if held.lost.is_cancelled() {
            return Err(LeaseError::Lost {
                key: held.key.clone(),
                reason: "it was lost or released before this checkpoint".into(),
            });
        }
        lease.millis_behind_latest = held.lag().or(lease.millis_behind_latest);
        match self
            .inner
            .store
            .checkpoint(&lease, checkpoint, child_shard_ids)
            .await
        {
            Ok(updated) => {
                *lease = updated;
                *held.renewed_at() = Instant::now();
                if *checkpoint == Checkpoint::ShardEnd {
                    // Before the lock goes: a renewal waiting for it then sees
                    // the lease finished and writes nothing.
                    self.finished(held);
                    drop(lease);
                    self.take_soon();
                }
                Ok(())
            }
            Err(LeaseError::Lost { key, reason }) => {
                drop(lease);
                self.lost(held, reason.clone());
                Err(LeaseError::Lost { key, reason })
            }
            Err(err) => Err(err),
        }
    }

    /// Releases every held lease (after the final checkpoints of a clean stop), so
    /// other workers take them at their next take instead of after the failover
    /// time. Stop the taker first. Returns how many were released.
    pub async fn release_all(&self) -> usize {
        let held: Vec<Arc<HeldLease>> = std::mem::take(&mut *self.lock_held())
            .into_values()
            .collect();
        let mut released = 0;
        for held in held {
            let lease = held.lease.lock().await;
            if held.lost.is_cancelled() {
                continue;
            }
            held.lost.cancel();
            match self.inner.store.release(&lease).await {
                Ok(_) => {
                    released += 1;
                    info!(worker = self.worker_id(), lease_key = %held.key, "released lease");
                }
                Err(err) => {
                    warn!(worker = self.worker_id(), lease_key = %held.key, error = %err, "releasing lease failed; it expires after the failover time")
                }
            }
        }
        released
    }
}

/// The default worker id: the host name and a short random suffix, so two
/// processes on one host (or a restart before the old leases expired) are
/// different workers.
pub fn default_worker_id() -> String {
    let host = std::fs::read_to_string("/proc/sys/kernel/hostname")
        .ok()
        .or_else(|| std::env::var("HOSTNAME").ok())
        .map(|h| h.trim().to_owned())
        .filter(|h| !h.is_empty())
        .unwrap_or_else(|| "kinesis-collector".to_owned());
    let random = std::collections::hash_map::RandomState::new().hash_one(std::process::id());
    format!("{host}-{:06x}", random & 0xff_ffff)
}

fn round_ms(d: Duration) -> Duration {
    Duration::from_millis(d.as_millis() as u64)
}

#[cfg(test)]
mod tests;
