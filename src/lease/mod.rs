//! Shard leases: which worker reads which shard, and how far it has checkpointed,
//! kept in a DynamoDB table in the Kinesis Client Library's (KCL 2.x) schema so
//! operators' KCL tooling reads it and a team moving from a Java KCL consumer keeps
//! its checkpoints.
//!
//! - [`Lease`] and [`Checkpoint`]: one item of the table.
//! - [`LeaseStore`]: the conditional operations the coordinator needs (take, renew,
//!   checkpoint, release), each fenced by the lease counter so a worker that lost a
//!   lease can never move its checkpoint.
//! - [`dynamodb::DynamoDbLeaseStore`] for real use, [`memory::MemoryLeaseStore`]
//!   for tests of the coordinator; [`schema`] maps leases to DynamoDB items.
//! - [`balance`]: which leases to take (pure logic); [`coordinator`]: the take and
//!   renew loops and the single writer of each held lease.
//! - [`shard_sync`]: the lease table kept in step with the stream's shard list
//!   (children of a split or merge start at TRIM_HORIZON); single- and
//!   multi-stream lease keys.
//! - [`lineage`]: whether a single-stream lease is of the stream now called by
//!   its name or of an earlier one deleted and created again (pure); such leases
//!   are reset, not resumed.
//! - [`cleanup`]: which finished leases to delete once their children have
//!   started or their shard expired (the KCL's lease cleanup; pure).
//! - [`watermark`]: a shard's checkpoint, the highest position acknowledged with
//!   everything before it (pure).
//! - [`LeaseConfig`]: the `[lease]` section.
//!
//! Every write is an `UpdateItem` (or a `PutItem` that only creates, or a
//! conditional `DeleteItem`), so attributes written by other tools, such as KCL
//! 3.x's, are kept as they are.

pub mod balance;
pub mod cleanup;
mod config;
pub mod coordinator;
pub mod dynamodb;
pub mod lineage;
pub mod memory;
pub mod schema;
pub mod shard_sync;
pub mod watermark;

use std::fmt;
use std::future::Future;

use crate::aws::AwsError;
pub use config::LeaseConfig;

/// One lease: a shard, its owner and its checkpoint.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Lease {
    /// `leaseKey`: the shard id, or `account:stream:creationEpoch:shardId` when one
    /// table coordinates several streams (KCL multi-stream mode).
    pub key: String,
    /// `leaseOwner`: the worker id holding the lease; `None` when free.
    pub owner: Option<String>,
    /// `leaseCounter`: bumped by every take, renewal, checkpoint and release; every
    /// conditional write expects the value last seen.
    pub counter: u64,
    /// `checkpoint` and `checkpointSubSequenceNumber`.
    pub checkpoint: Checkpoint,
    /// `ownerSwitchesSinceCheckpoint`: takes by another worker since the last
    /// checkpoint (a lease that keeps moving without progress is thrashing).
    pub owner_switches_since_checkpoint: u64,
    /// `parentShardId`: the shards this one was split or merged from.
    pub parent_shard_ids: Vec<String>,
    /// `childShardIds`: set at the shard's end.
    pub child_shard_ids: Vec<String>,
    /// `startingHashKey` / `endingHashKey`, when known.
    pub hash_key_range: Option<(String, String)>,
    /// `streamName` (multi-stream mode): `account:stream:creationEpoch`.
    pub stream_name: Option<String>,
    /// `shardId` (multi-stream mode).
    pub shard_id: Option<String>,
    /// `millisBehindLatest`: how far behind the stream's tip the holder's reader
    /// was at its last renewal or checkpoint (this collector's own attribute, for
    /// `status`; KCL tools ignore it).
    pub millis_behind_latest: Option<u64>,
    /// `streamCreationEpoch` (single-stream mode; this collector's attribute, KCL
    /// tools ignore it): the creation time, in seconds since the Unix epoch, of
    /// the stream the lease was made for. A lease of an earlier stream of the same
    /// name is reset instead of resumed (see [`shard_sync`]). `None` on leases
    /// written by the Java KCL or earlier versions of this collector.
    pub stream_creation_epoch: Option<u64>,
}

impl Lease {
    /// A new, free lease for a shard, starting at `checkpoint`.
    pub fn new(key: impl Into<String>, checkpoint: Checkpoint) -> Lease {
        Lease {
            key: key.into(),
            owner: None,
            counter: 0,
            checkpoint,
            owner_switches_since_checkpoint: 0,
            parent_shard_ids: Vec::new(),
            child_shard_ids: Vec::new(),
            hash_key_range: None,
            stream_name: None,
            shard_id: None,
            millis_behind_latest: None,
            stream_creation_epoch: None,
        }
    }

    /// The shard id: `shardId` in multi-stream mode, else the key.
    pub fn shard_id(&self) -> &str {
        self.shard_id.as_deref().unwrap_or(&self.key)
    }

    /// Whether `worker` holds this lease.
    pub fn is_owned_by(&self, worker: &str) -> bool {
        self.owner.as_deref() == Some(worker)
    }
}

/// A position in a shard, as the KCL writes it in `checkpoint`: a sentinel or a
/// sequence number (with the KPL sub-record number in `checkpointSubSequenceNumber`).
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub enum Checkpoint {
    /// Not started: read from the oldest record kept.
    TrimHorizon,
    /// Not started: read only records written from now on.
    Latest,
    /// Not started: read from the configured time.
    AtTimestamp,
    /// The shard was read to its end (it was split or merged).
    ShardEnd,
    /// Everything up to and including this record (and KPL sub-record) is done.
    Sequence {
        /// The record's sequence number (decimal digits).
        sequence_number: String,
        /// The last done sub-record of a KPL aggregate; 0 for plain records.
        sub_sequence_number: u64,
    },
}

impl Checkpoint {
    /// A checkpoint at a plain (not aggregated) record.
    pub fn at(sequence_number: impl Into<String>) -> Checkpoint {
        Checkpoint::Sequence {
            sequence_number: sequence_number.into(),
            sub_sequence_number: 0,
        }
    }

    /// Reads the `checkpoint` and `checkpointSubSequenceNumber` attributes.
    pub fn parse(checkpoint: &str, sub_sequence_number: u64) -> Result<Checkpoint, String> {
        match checkpoint {
            "TRIM_HORIZON" => Ok(Checkpoint::TrimHorizon),
            "LATEST" => Ok(Checkpoint::Latest),
            "AT_TIMESTAMP" => Ok(Checkpoint::AtTimestamp),
            "SHARD_END" => Ok(Checkpoint::ShardEnd),
            seq if !seq.is_empty() && seq.bytes().all(|b| b.is_ascii_digit()) => {
                Ok(Checkpoint::Sequence {
                    sequence_number: seq.to_owned(),
                    sub_sequence_number,
                })
            }
            other => Err(format!(
                "checkpoint {other:?} is neither a sequence number nor TRIM_HORIZON, LATEST, AT_TIMESTAMP or SHARD_END"
            )),
        }
    }

    /// The `checkpoint` attribute.
    pub fn as_str(&self) -> &str {
        match self {
            Checkpoint::TrimHorizon => "TRIM_HORIZON",
            Checkpoint::Latest => "LATEST",
            Checkpoint::AtTimestamp => "AT_TIMESTAMP",
            Checkpoint::ShardEnd => "SHARD_END",
            Checkpoint::Sequence {
                sequence_number, ..
            } => sequence_number,
        }
    }

    /// The `checkpointSubSequenceNumber` attribute.
    pub fn sub_sequence_number(&self) -> u64 {
        match self {
            Checkpoint::Sequence {
                sub_sequence_number,
                ..
            } => *sub_sequence_number,
            _ => 0,
        }
    }
}

impl fmt::Display for Checkpoint {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self.sub_sequence_number() {
            0 => f.write_str(self.as_str()),
            sub => write!(f, "{}/{sub}", self.as_str()),
        }
    }
}

/// Why a lease operation failed.
#[derive(Debug, thiserror::Error)]
pub enum LeaseError {
    /// A conditional write failed: another worker took the lease (or it was
    /// released or deleted) since we last saw it. The shard's reader must stop.
    #[error("lease {key} lost: {reason}")]
    Lost {
        /// The lease.
        key: String,
        /// What the table holds now, e.g. `taken by worker-b (counter 8)`.
        reason: String,
    },
    /// The lease table does not exist and may not be created.
    #[error("lease table {table} does not exist and lease.create_table is false: create it (hash key leaseKey of type S, on-demand) or set lease.create_table = true")]
    TableMissing {
        /// The table name.
        table: String,
    },
    /// The table exists but cannot be a lease table, or never became usable.
    #[error("lease table {table} is unusable: {reason}")]
    BadTable {
        /// The table name.
        table: String,
        /// Why.
        reason: String,
    },
    /// An item in the table is not a valid lease.
    #[error("lease {key} is malformed: {reason}")]
    Malformed {
        /// The lease key (or `?` when even that is missing).
        key: String,
        /// What is wrong.
        reason: String,
    },
    /// Throttled, a network problem or a server failure: try again later.
    #[error(transparent)]
    Transient(AwsError),
    /// Retrying will not help (permissions, a bad request).
    #[error(transparent)]
    Fatal(AwsError),
}

impl LeaseError {
    /// Whether the operation may succeed if tried again unchanged.
    pub fn is_transient(&self) -> bool {
        matches!(self, LeaseError::Transient(_))
    }
}

/// What a conditional delete ([`LeaseStore::delete_if`]) expects of the item.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum DeleteIf {
    /// A finished lease nobody wrote since it was listed: still at SHARD_END,
    /// with the counter and owner of the lease given.
    Finished,
    /// A lease of an earlier stream of the same name, still as listed: its
    /// `streamCreationEpoch` as in the lease given or, for a lease without one,
    /// still without one and at the same checkpoint.
    Stale,
}

/// The lease table's operations. Every write but `create`, `delete`, `delete_if`
/// and `stamp_creation_epoch` is
/// conditional on the lease counter last seen (and, for the holder's writes, on the
/// owner), and returns the lease as the table now holds it, so the caller keeps an
/// up-to-date counter for its next write.
///
/// A lease's renewals, checkpoints and release must go through one owner (one task
/// or lock per lease): each bumps the counter, so two racing writes would make the
/// second look like a lost lease.
pub trait LeaseStore: Send + Sync + 'static {
    /// Makes sure the table exists (creating it when allowed) and is ACTIVE.
    fn ensure_table(&self) -> impl Future<Output = Result<(), LeaseError>> + Send;

    /// Every lease in the table (a consistent scan). Items that are not valid
    /// leases are logged and skipped.
    fn list(&self) -> impl Future<Output = Result<Vec<Lease>, LeaseError>> + Send;

    /// One lease, if it exists (a consistent read).
    fn get(&self, key: &str) -> impl Future<Output = Result<Option<Lease>, LeaseError>> + Send;

    /// Creates `lease` unless a lease with its key exists; returns whether it did.
    fn create(&self, lease: &Lease) -> impl Future<Output = Result<bool, LeaseError>> + Send;

    /// Takes `lease` (free, expired or stolen) for `owner`, if its counter is still
    /// `lease.counter`. Counts an owner switch when it had another owner.
    fn take(
        &self,
        lease: &Lease,
        owner: &str,
    ) -> impl Future<Output = Result<Lease, LeaseError>> + Send;

    /// Renews a held lease: bumps the counter, if owner and counter are unchanged.
    fn renew(&self, lease: &Lease) -> impl Future<Output = Result<Lease, LeaseError>> + Send;

    /// Writes the checkpoint of a held lease (and, at the shard's end, its children;
    /// empty leaves them as they are), if owner and counter are unchanged. Resets
    /// the owner-switch count.
    fn checkpoint(
        &self,
        lease: &Lease,
        checkpoint: &Checkpoint,
        child_shard_ids: &[String],
    ) -> impl Future<Output = Result<Lease, LeaseError>> + Send;

    /// Releases a held lease (removes the owner) so another worker takes it at its
    /// next take, if owner and counter are unchanged.
    fn release(&self, lease: &Lease) -> impl Future<Output = Result<Lease, LeaseError>> + Send;

    /// Deletes the lease (e.g. a finished shard whose data has expired).
    fn delete(&self, key: &str) -> impl Future<Output = Result<(), LeaseError>> + Send;

    /// Deletes `lease` if the table still holds it as `condition` says; returns
    /// whether it did (`false`: another worker changed or deleted it first, not an
    /// error). The counter is not part of [`DeleteIf::Stale`]: a holder's renewals
    /// must not keep a lease of an earlier stream alive.
    fn delete_if(
        &self,
        lease: &Lease,
        condition: DeleteIf,
    ) -> impl Future<Output = Result<bool, LeaseError>> + Send;

    /// Writes `streamCreationEpoch` on the lease `key` if it exists without one
    /// (a lease adopted from the KCL or an earlier version); returns whether it
    /// did. Leaves the counter alone, so the holder's next write still succeeds.
    fn stamp_creation_epoch(
        &self,
        key: &str,
        epoch: u64,
    ) -> impl Future<Output = Result<bool, LeaseError>> + Send;
}

/// What the table holds instead of the lease we expected.
fn lost_reason(current: Option<&Lease>) -> String {
    match current {
        None => "it was deleted".into(),
        Some(Lease {
            owner: Some(owner),
            counter,
            ..
        }) => format!("held by {owner} (counter {counter})"),
        Some(Lease { counter, .. }) => format!("it is free (counter {counter})"),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn checkpoints_round_trip() {
        for (text, sub, want) in [
            ("TRIM_HORIZON", 0, Checkpoint::TrimHorizon),
            ("LATEST", 0, Checkpoint::Latest),
            ("AT_TIMESTAMP", 0, Checkpoint::AtTimestamp),
            ("SHARD_END", 0, Checkpoint::ShardEnd),
            (
                "49590338271490256608559692538361571095921575989136588898",
                3,
                Checkpoint::Sequence {
                    sequence_number: "49590338271490256608559692538361571095921575989136588898"
                        .into(),
                    sub_sequence_number: 3,
                },
            ),
        ] {
            let parsed = Checkpoint::parse(text, sub).unwrap();
            assert_eq!(parsed, want);
            assert_eq!(parsed.as_str(), text);
            assert_eq!(parsed.sub_sequence_number(), sub);
        }
        assert_eq!(Checkpoint::at("12").to_string(), "12");
        assert_eq!(Checkpoint::parse("12", 4).unwrap().to_string(), "12/4");
    }

    #[test]
    fn bad_checkpoints_are_explained() {
        for bad in ["", "shardId-1", "12a", "trim_horizon"] {
            let err = Checkpoint::parse(bad, 0).unwrap_err();
            assert!(err.contains("neither a sequence number"), "{err}");
        }
    }

    #[test]
    fn multi_stream_leases_name_their_shard() {
        let mut lease = Lease::new("shardId-000000000001", Checkpoint::TrimHorizon);
        assert_eq!(lease.shard_id(), "shardId-000000000001");
        lease.key = "123456789012:fortisiem:1600000000:shardId-000000000001".into();
        lease.shard_id = Some("shardId-000000000001".into());
        assert_eq!(lease.shard_id(), "shardId-000000000001");
        assert!(!lease.is_owned_by("w1"));
        lease.owner = Some("w1".into());
        assert!(lease.is_owned_by("w1"));
    }
}
