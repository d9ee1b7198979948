//! Shard sync: a lease for every shard to read, made from the stream's shard list
//! at start and every `lease.shard_sync_interval` (new shards appear after a split
//! or merge).
//!
//! Which shards get a lease, and where a new lease starts:
//! - a shard with a parent that has (or gets) a lease starts at TRIM_HORIZON: a
//!   child of a resharding is read from its first record, after its parents end
//!   (see [`super::balance`]), whatever the configured start position;
//! - any other shard starts at the configured position; with LATEST, closed
//!   shards get no lease (all their records are older than "now").
//!
//! Existing leases are never changed here.

use std::collections::HashSet;
use std::time::SystemTime;

use aws_sdk_kinesis::Client;
use tracing::{info, warn};

use super::{Checkpoint, Lease, LeaseError, LeaseStore};
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
        let epoch = created
            .duration_since(SystemTime::UNIX_EPOCH)
            .map_or(0, |d| d.as_secs());
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
    let mut leased: HashSet<String> = existing.iter().map(|l| l.key.clone()).collect();
    let mut created = Vec::new();
    // Parents come before their children in the listing (shard ids grow), so a
    // child sees whether its parents got a lease in this same pass.
    let mut ordered: Vec<&ShardInfo> = shards.iter().collect();
    ordered.sort_by(|a, b| a.shard_id.cmp(&b.shard_id));
    for shard in ordered {
        let key = keys.key(&shard.shard_id);
        if leased.contains(&key) {
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
    /// Reading or writing the lease table failed.
    #[error(transparent)]
    Lease(#[from] LeaseError),
}

/// Lists the stream's shards and creates the missing leases; returns the leases
/// created (another worker may create the same ones at the same time: each is
/// created once).
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
    let mut created = Vec::new();
    for lease in new_leases(keys, &shards, &existing, initial) {
        if store.create(&lease).await? {
            info!(stream = %stream, lease_key = %lease.key, checkpoint = %lease.checkpoint, "created lease for shard");
            created.push(lease);
        }
    }
    Ok(created)
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
mod tests {
    use super::*;

    fn shard(id: u32, parents: &[u32], closed: bool) -> ShardInfo {
        ShardInfo {
            shard_id: format!("shardId-{id:012}"),
            parent_shard_ids: parents.iter().map(|p| format!("shardId-{p:012}")).collect(),
            starting_hash_key: "0".into(),
            ending_hash_key: "9".into(),
            starting_sequence_number: "1".into(),
            ending_sequence_number: closed.then(|| "2".into()),
        }
    }

    fn keys_and_checkpoints(leases: &[Lease]) -> Vec<(String, String)> {
        leases
            .iter()
            .map(|l| (l.key.clone(), l.checkpoint.as_str().to_owned()))
            .collect()
    }

    /// 0 was split into 2 and 3; 1 is still open.
    fn resharded() -> Vec<ShardInfo> {
        vec![
            shard(0, &[], true),
            shard(1, &[], false),
            shard(2, &[0], false),
            shard(3, &[0], false),
        ]
    }

    #[test]
    fn a_new_table_from_trim_horizon_reads_parents_then_children() {
        let leases = new_leases(
            &LeaseKeys::ShardId,
            &resharded(),
            &[],
            &Checkpoint::TrimHorizon,
        );
        assert_eq!(
            keys_and_checkpoints(&leases),
            [
                ("shardId-000000000000".into(), "TRIM_HORIZON".into()),
                ("shardId-000000000001".into(), "TRIM_HORIZON".into()),
                ("shardId-000000000002".into(), "TRIM_HORIZON".into()),
                ("shardId-000000000003".into(), "TRIM_HORIZON".into()),
            ]
        );
        assert_eq!(leases[2].parent_shard_ids, ["shardId-000000000000"]);
        assert_eq!(leases[2].hash_key_range, Some(("0".into(), "9".into())));
        assert_eq!(leases[0].owner, None);
    }

    #[test]
    fn a_new_table_from_latest_skips_closed_shards() {
        let leases = new_leases(&LeaseKeys::ShardId, &resharded(), &[], &Checkpoint::Latest);
        assert_eq!(
            keys_and_checkpoints(&leases),
            [
                ("shardId-000000000001".into(), "LATEST".into()),
                ("shardId-000000000002".into(), "LATEST".into()),
                ("shardId-000000000003".into(), "LATEST".into()),
            ]
        );
    }

    #[test]
    fn children_of_a_later_split_start_at_trim_horizon() {
        let existing = new_leases(
            &LeaseKeys::ShardId,
            &[shard(0, &[], false), shard(1, &[], false)],
            &[],
            &Checkpoint::Latest,
        );
        // Shard 1 is merged with 0 into 4 later.
        let after = vec![
            shard(0, &[], true),
            shard(1, &[], true),
            shard(4, &[0, 1], false),
        ];
        let leases = new_leases(&LeaseKeys::ShardId, &after, &existing, &Checkpoint::Latest);
        assert_eq!(
            keys_and_checkpoints(&leases),
            [("shardId-000000000004".into(), "TRIM_HORIZON".into())]
        );
        assert_eq!(leases[0].parent_shard_ids.len(), 2);
        // A second sync creates nothing.
        let all: Vec<Lease> = existing.into_iter().chain(leases).collect();
        assert!(new_leases(&LeaseKeys::ShardId, &after, &all, &Checkpoint::Latest).is_empty());
    }

    #[test]
    fn multi_stream_keys_carry_account_stream_and_creation_time() {
        let created = SystemTime::UNIX_EPOCH + std::time::Duration::from_secs(1_600_000_000);
        let keys = LeaseKeys::multi_stream("123456789012", "fortisiem", created);
        let leases = new_leases(&keys, &resharded(), &[], &Checkpoint::TrimHorizon);
        let child = &leases[2];
        assert_eq!(
            child.key,
            "123456789012:fortisiem:1600000000:shardId-000000000002"
        );
        assert_eq!(child.shard_id(), "shardId-000000000002");
        assert_eq!(
            child.stream_name.as_deref(),
            Some("123456789012:fortisiem:1600000000")
        );
        assert_eq!(
            child.parent_shard_ids,
            ["123456789012:fortisiem:1600000000:shardId-000000000000"]
        );
        assert!(keys.owns(child));
        assert!(!LeaseKeys::ShardId.owns(child));
        // The same name created again is another stream.
        let again = LeaseKeys::multi_stream(
            "123456789012",
            "fortisiem",
            created + std::time::Duration::from_secs(60),
        );
        assert!(!again.owns(child));
        assert_eq!(
            new_leases(&again, &resharded(), &leases, &Checkpoint::TrimHorizon).len(),
            4
        );
    }
}
