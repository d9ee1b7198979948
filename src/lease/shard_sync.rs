//! Shard sync: the lease table kept in step with the stream's shard list, at
//! start, every `lease.shard_sync_interval` (new shards appear after a split or
//! merge) and when a shard ends. Every worker runs it; every write is conditional,
//! so workers syncing at the same time agree.
//!
//! Which shards get a lease, and where a new lease starts ([`new_leases`]):
//! - a shard with a parent that has (or gets) a lease starts at TRIM_HORIZON: a
//!   child of a resharding is read from its first record, after its parents end
//!   (see [`super::balance`]), whatever the configured start position;
//! - a closed shard one of whose descendants (child, grandchild, ...) has a lease
//!   gets none: it was read and its lease deleted (see [`super::cleanup`]);
//! - any other shard starts at the configured position; with LATEST, closed
//!   shards get no lease (all their records are older than "now").
//!
//! Existing leases change only in two ways ([`plan_sync`]):
//! - in single-stream mode, a lease of an earlier stream of the same name
//!   (deleted and created again, see [`super::lineage`]) is reset: deleted, with
//!   a warning, and made again by the rules above; a lease without the stream's
//!   creation time (the KCL's, or an earlier version's) is adopted and stamped;
//! - a finished lease is deleted once its children have started or its shard
//!   expired ([`super::cleanup`]).
//!
//! A worker still holding a lease deleted here loses it at its next renewal (the
//! renewal's condition fails) and stops that shard's reader. In multi-stream mode
//! the keys, made at start, carry the stream's creation time: a stream created
//! again since fails the sync with [`ShardSyncError::CreatedAgain`] (restart to
//! read it) instead of mixing the two streams' leases.

use std::collections::{HashMap, HashSet};
use std::time::{Duration, SystemTime};

use aws_sdk_kinesis::Client;
use tracing::{info, warn};

use super::cleanup::{finished_leases, Finished};
use super::lineage::{lineage, Lineage, Stale};
use super::{Checkpoint, DeleteIf, Lease, LeaseError, LeaseStore};
use crate::kinesis::api::{describe_stream_summary, list_shards, ApiError};
use crate::kinesis::{ShardInfo, StreamId};

/// How lease keys are made for one stream.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum LeaseKeys {
    /// The shard id alone: one stream per lease table (the KCL's single-stream
    /// mode).
    ShardId,
    /// `account:stream:creationEpoch:shardId` (the KCL's multi-stream mode), for a
    /// table that coordinates several streams. A stream deleted and created again
    /// under the same name has a new creation time, and so fresh leases.
    MultiStream {
        /// `account:stream:creationEpoch`, the `streamName` attribute.
        stream_identifier: String,
    },
}

impl LeaseKeys {
    /// Multi-stream keys for the stream `name` of `account`, created at `created`.
    pub fn multi_stream(account: &str, name: &str, created: SystemTime) -> LeaseKeys {
        let epoch = epoch_secs(created);
        LeaseKeys::MultiStream {
            stream_identifier: format!("{account}:{name}:{epoch}"),
        }
    }

    /// The lease key of `shard_id`.
    pub fn key(&self, shard_id: &str) -> String {
        match self {
            LeaseKeys::ShardId => shard_id.to_owned(),
            LeaseKeys::MultiStream { stream_identifier } => {
                format!("{stream_identifier}:{shard_id}")
            }
        }
    }

    /// Whether `lease` belongs to this stream.
    pub fn owns(&self, lease: &Lease) -> bool {
        match self {
            LeaseKeys::ShardId => lease.stream_name.is_none(),
            LeaseKeys::MultiStream { stream_identifier } => {
                lease.stream_name.as_deref() == Some(stream_identifier)
            }
        }
    }

    /// Leases of an earlier stream of the same account and name (deleted and
    /// created again since): their checkpoints are not this stream's.
    pub fn stale<'a>(&self, leases: &'a [Lease]) -> Vec<&'a Lease> {
        let LeaseKeys::MultiStream { stream_identifier } = self else {
            return Vec::new();
        };
        let Some((account_and_name, _epoch)) = stream_identifier.rsplit_once(':') else {
            return Vec::new();
        };
        leases
            .iter()
            .filter(|l| {
                l.stream_name.as_deref().is_some_and(|id| {
                    id != stream_identifier
                        && id
                            .rsplit_once(':')
                            .is_some_and(|(prefix, _)| prefix == account_and_name)
                })
            })
            .collect()
    }

    fn new_lease(&self, shard: &ShardInfo, checkpoint: Checkpoint) -> Lease {
        let mut lease = Lease::new(self.key(&shard.shard_id), checkpoint);
        lease.parent_shard_ids = shard.parent_shard_ids.iter().map(|p| self.key(p)).collect();
        lease.hash_key_range = Some((
            shard.starting_hash_key.clone(),
            shard.ending_hash_key.clone(),
        ));
        if let LeaseKeys::MultiStream { stream_identifier } = self {
            lease.stream_name = Some(stream_identifier.clone());
            lease.shard_id = Some(shard.shard_id.clone());
        }
        lease
    }
}

/// The leases to create for `shards` (listed oldest first, as ListShards does),
/// given the `existing` leases and the configured start position `initial`
/// (TRIM_HORIZON, LATEST or AT_TIMESTAMP).
pub fn new_leases(
    keys: &LeaseKeys,
    shards: &[ShardInfo],
    existing: &[Lease],
    initial: &Checkpoint,
) -> Vec<Lease> {
    let in_table: HashSet<&str> = existing.iter().map(|l| l.key.as_str()).collect();
    let mut leased: HashSet<String> = existing.iter().map(|l| l.key.clone()).collect();
    let mut children: HashMap<&str, Vec<&str>> = HashMap::new();
    for shard in shards {
        for parent in &shard.parent_shard_ids {
            children
                .entry(parent.as_str())
                .or_default()
                .push(shard.shard_id.as_str());
        }
    }
    let mut created = Vec::new();
    // Parents come before their children in the listing (shard ids grow), so a
    // child sees whether its parents got a lease in this same pass.
    let mut ordered: Vec<&ShardInfo> = shards.iter().collect();
    ordered.sort_by(|a, b| a.shard_id.cmp(&b.shard_id));
    for shard in ordered {
        let key = keys.key(&shard.shard_id);
        if leased.contains(&key)
            || has_leased_descendant(keys, &shard.shard_id, &children, &in_table)
        {
            continue;
        }
        let has_leased_parent = shard
            .parent_shard_ids
            .iter()
            .any(|p| leased.contains(&keys.key(p)));
        let checkpoint = if has_leased_parent {
            Checkpoint::TrimHorizon
        } else if *initial == Checkpoint::Latest && shard.is_closed() {
            continue;
        } else {
            initial.clone()
        };
        leased.insert(key);
        created.push(keys.new_lease(shard, checkpoint));
    }
    created
}

/// Whether a child, grandchild, ... of `shard_id` has a lease in the table.
fn has_leased_descendant(
    keys: &LeaseKeys,
    shard_id: &str,
    children: &HashMap<&str, Vec<&str>>,
    in_table: &HashSet<&str>,
) -> bool {
    let mut seen = HashSet::new();
    let mut stack: Vec<&str> = children.get(shard_id).cloned().unwrap_or_default();
    while let Some(child) = stack.pop() {
        if !seen.insert(child) {
            continue;
        }
        if in_table.contains(keys.key(child).as_str()) {
            return true;
        }
        stack.extend(children.get(child).into_iter().flatten());
    }
    false
}

/// What one shard sync changes in the lease table (see [`plan_sync`]).
#[derive(Debug, Default, PartialEq, Eq)]
pub struct SyncPlan {
    /// The stream's creation time (single-stream mode), for the log.
    pub stream_created: Option<u64>,
    /// Leases of an earlier stream of the same name, to delete (their shards get
    /// fresh leases in `create`).
    pub reset: Vec<(Lease, Stale)>,
    /// Leases without the stream's creation time, kept with their checkpoints:
    /// stamp it on them.
    pub adopt: Vec<String>,
    /// Leases to create.
    pub create: Vec<Lease>,
    /// Finished leases to delete.
    pub finished: Vec<(Lease, Finished)>,
}

/// Plans a shard sync (pure) from the stream's `shards`, its creation time
/// `epoch` (seconds since the Unix epoch; single-stream mode, else `None`), its
/// `existing` leases (those `keys` owns) and the start position `initial`.
pub fn plan_sync(
    keys: &LeaseKeys,
    epoch: Option<u64>,
    shards: &[ShardInfo],
    existing: &[Lease],
    initial: &Checkpoint,
) -> SyncPlan {
    let listed: HashMap<&str, &ShardInfo> =
        shards.iter().map(|s| (s.shard_id.as_str(), s)).collect();
    let mut plan = SyncPlan {
        stream_created: epoch,
        ..SyncPlan::default()
    };
    let mut current = Vec::with_capacity(existing.len());
    for lease in existing {
        let Some(epoch) = epoch else {
            current.push(lease.clone());
            continue;
        };
        match lineage(lease, epoch, listed.get(lease.shard_id()).copied()) {
            Lineage::Stale(why) => plan.reset.push((lease.clone(), why)),
            Lineage::Adopt => {
                if lease.checkpoint != Checkpoint::ShardEnd {
                    plan.adopt.push(lease.key.clone());
                }
                current.push(lease.clone());
            }
            Lineage::Current | Lineage::Unlisted => current.push(lease.clone()),
        }
    }
    plan.create = new_leases(keys, shards, &current, initial);
    for lease in &mut plan.create {
        lease.stream_creation_epoch = epoch;
    }
    plan.finished = finished_leases(keys, shards, &current)
        .into_iter()
        .map(|(lease, why)| (lease.clone(), why))
        .collect();
    plan
}

/// Why a shard sync failed.
#[derive(Debug, thiserror::Error)]
pub enum ShardSyncError {
    /// Listing the shards failed.
    #[error("listing shards of stream {stream}: {source}")]
    Kinesis {
        /// The stream.
        stream: String,
        /// The API error.
        source: ApiError,
    },
    /// Describing the stream (for its creation time) failed.
    #[error("describing stream {stream}: {source}")]
    Describe {
        /// The stream.
        stream: String,
        /// The API error.
        source: ApiError,
    },
    /// Multi-stream mode: the stream was deleted and created again since its
    /// lease keys were made (at start).
    #[error("stream {stream} was deleted and created again ({created}) since the collector started: restart the collector to read it (multi-stream lease keys carry the creation time and are made at start)")]
    CreatedAgain {
        /// The stream.
        stream: String,
        /// Its new creation time.
        created: String,
    },
    /// Reading or writing the lease table failed.
    #[error(transparent)]
    Lease(#[from] LeaseError),
}

/// Lists the stream's shards and brings its leases in step ([`plan_sync`],
/// [`apply`]); returns the leases created (another worker may create the same
/// ones at the same time: each is created once).
pub async fn sync_shards<S: LeaseStore>(
    kinesis: &Client,
    store: &S,
    stream: &StreamId,
    keys: &LeaseKeys,
    initial: &Checkpoint,
) -> Result<Vec<Lease>, ShardSyncError> {
    let shards =
        list_shards(kinesis, stream, None)
            .await
            .map_err(|source| ShardSyncError::Kinesis {
                stream: stream.to_string(),
                source,
            })?;
    // Single-stream leases carry the creation time as an attribute, compared
    // with the stream's at every sync; multi-stream keys carry it in the key.
    let created = describe_stream_summary(kinesis, stream)
        .await
        .map(|summary| epoch_secs(summary.creation_time))
        .map_err(|source| ShardSyncError::Describe {
            stream: stream.to_string(),
            source,
        })?;
    let epoch = match keys {
        LeaseKeys::ShardId => Some(created),
        LeaseKeys::MultiStream { stream_identifier } => {
            let keyed = stream_identifier
                .rsplit_once(':')
                .and_then(|(_, epoch)| epoch.parse::<u64>().ok());
            if keyed.is_some_and(|keyed| keyed != created) {
                return Err(ShardSyncError::CreatedAgain {
                    stream: stream.to_string(),
                    created: rfc3339(created),
                });
            }
            None
        }
    };
    let all = store.list().await?;
    let stale = keys.stale(&all);
    if let Some(old) = stale.first() {
        warn!(
            stream = %stream,
            old_stream = old.stream_name.as_deref().unwrap_or_default(),
            stale_leases = stale.len(),
            "the stream was deleted and created again: its old leases are ignored and new ones start fresh; delete the old ones when done"
        );
    }
    let existing: Vec<Lease> = all.into_iter().filter(|l| keys.owns(l)).collect();
    let plan = plan_sync(keys, epoch, &shards, &existing, initial);
    Ok(apply(store, stream, plan).await?)
}

/// Carries out a [`SyncPlan`]: resets the leases of an earlier stream, creates
/// the new leases, stamps the adopted ones and deletes the finished ones, each
/// write conditional (one that finds the table changed is skipped, not an
/// error). Returns the leases created.
pub async fn apply<S: LeaseStore>(
    store: &S,
    stream: &StreamId,
    plan: SyncPlan,
) -> Result<Vec<Lease>, LeaseError> {
    let mut reset = 0;
    for (lease, why) in &plan.reset {
        if store.delete_if(lease, DeleteIf::Stale).await? {
            reset += 1;
            let reason = match why {
                Stale::EarlierStream { .. } => "made for the earlier stream",
                Stale::ForeignCheckpoint => {
                    "no stream creation time, and its checkpoint is outside the shard's sequence numbers"
                }
            };
            info!(stream = %stream, lease_key = %lease.key, checkpoint = %lease.checkpoint, reason, "deleted lease of an earlier stream");
        }
    }
    // Once per sync, by the worker that reset leases (others' deletes found them
    // gone).
    if reset > 0 {
        let old = plan.reset.iter().find_map(|(_, why)| match why {
            Stale::EarlierStream { created } => Some(*created),
            Stale::ForeignCheckpoint => None,
        });
        warn!(
            stream = %stream,
            old_stream_created = %old.map_or_else(|| "unknown".to_owned(), rfc3339),
            stream_created = %plan.stream_created.map_or_else(|| "unknown".to_owned(), rfc3339),
            stale_leases = reset,
            "the stream was deleted and created again: the earlier stream's leases are reset, their checkpoints dropped, and the shards read from the start position"
        );
    }
    let mut created = Vec::new();
    for lease in plan.create {
        if store.create(&lease).await? {
            info!(stream = %stream, lease_key = %lease.key, checkpoint = %lease.checkpoint, "created lease for shard");
            created.push(lease);
        }
    }
    if let Some(epoch) = plan.stream_created {
        for key in &plan.adopt {
            if store.stamp_creation_epoch(key, epoch).await? {
                info!(stream = %stream, lease_key = %key, "adopted lease written without the stream's creation time (by the KCL or an earlier version): its checkpoint is kept");
            }
        }
    }
    for (lease, why) in &plan.finished {
        if store.delete_if(lease, DeleteIf::Finished).await? {
            info!(stream = %stream, lease_key = %lease.key, reason = why.as_str(), "deleted finished lease");
        }
    }
    Ok(created)
}

/// Seconds since the Unix epoch (0 before it).
fn epoch_secs(time: SystemTime) -> u64 {
    time.duration_since(SystemTime::UNIX_EPOCH)
        .map_or(0, |d| d.as_secs())
}

/// An epoch in seconds as an RFC 3339 time, for the log.
fn rfc3339(secs: u64) -> String {
    humantime::format_rfc3339_seconds(SystemTime::UNIX_EPOCH + Duration::from_secs(secs))
        .to_string()
}

/// Multi-stream lease keys for `stream`, from its ARN and creation time
/// (DescribeStreamSummary).
pub async fn multi_stream_keys(kinesis: &Client, stream: &StreamId) -> Result<LeaseKeys, ApiError> {
    let summary = describe_stream_summary(kinesis, stream).await?;
    // arn:aws:kinesis:REGION:ACCOUNT:stream/NAME
    let account = summary.arn.split(':').nth(4).unwrap_or_default();
    Ok(LeaseKeys::multi_stream(
        account,
        &summary.name,
        summary.creation_time,
    ))
}

#[cfg(test)]
mod tests;
