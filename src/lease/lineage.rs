//! Which stream a single-stream lease belongs to: the stream now called by its
//! name, or an earlier one deleted and created again under the same name (pure
//! logic, no I/O).
//!
//! In single-stream mode the lease key is the bare shard id (the KCL 2.x layout),
//! and a stream created again reuses the shard ids `shardId-000000000000`, ...: its
//! leases would resume from checkpoints of records that no longer exist. So every
//! lease this collector makes carries `streamCreationEpoch`, the stream's creation
//! time (DescribeStreamSummary), and each shard sync compares it:
//! - the same time: the lease is the stream's ([`Lineage::Current`]);
//! - another time: the lease is of an earlier stream ([`Stale::EarlierStream`]);
//!   it is reset (deleted and made again, see [`super::shard_sync`]);
//! - no time (written by a Java KCL worker or an earlier version of this
//!   collector): the lease is adopted with its checkpoint ([`Lineage::Adopt`]) and
//!   stamped, unless its checkpoint cannot be a position in the shard now listed
//!   under its id ([`Stale::ForeignCheckpoint`]): a sequence number below the
//!   shard's first one (or above a closed shard's last one), or SHARD_END on a
//!   shard still open. A record's sequence number is never outside its shard's
//!   range, so this never rejects a valid checkpoint; Kinesis numbers records by
//!   time, so a stream created again starts above every record of the earlier one
//!   (seen on kinesis-local), and the rule catches the common case of a lease
//!   table left from before a re-creation.

use std::cmp::Ordering;

use super::{Checkpoint, Lease};
use crate::kinesis::ShardInfo;

/// How a single-stream lease relates to the stream now listed.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Lineage {
    /// Made for this stream.
    Current,
    /// Without a creation time, and its checkpoint fits the shard: keep it and
    /// stamp the stream's creation time on it.
    Adopt,
    /// Without a creation time, for a shard not listed (finished, and past the
    /// retention period): nothing to compare with, left as it is.
    Unlisted,
    /// Of an earlier stream of the same name: reset it.
    Stale(Stale),
}

/// Why a lease is of an earlier stream.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Stale {
    /// Its `streamCreationEpoch` is another stream's.
    EarlierStream {
        /// That stream's creation time (seconds since the Unix epoch).
        created: u64,
    },
    /// It has no creation time, and its checkpoint cannot be in the shard listed
    /// under its id.
    ForeignCheckpoint,
}

/// Where `lease` belongs, for a stream created at `epoch` (seconds since the Unix
/// epoch) whose shard with the lease's id is `shard` (`None`: not listed).
pub fn lineage(lease: &Lease, epoch: u64, shard: Option<&ShardInfo>) -> Lineage {
    match lease.stream_creation_epoch {
        Some(created) if created == epoch => Lineage::Current,
        Some(created) => Lineage::Stale(Stale::EarlierStream { created }),
        None => match shard {
            Some(shard) if !fits(&lease.checkpoint, shard) => {
                Lineage::Stale(Stale::ForeignCheckpoint)
            }
            None => Lineage::Unlisted,
            Some(_) => Lineage::Adopt,
        },
    }
}

/// Whether `checkpoint` can be a position in `shard`.
fn fits(checkpoint: &Checkpoint, shard: &ShardInfo) -> bool {
    match checkpoint {
        Checkpoint::ShardEnd => shard.is_closed(),
        Checkpoint::Sequence {
            sequence_number, ..
        } => {
            let after_start = shard.starting_sequence_number.is_empty()
                || compare_sequence_numbers(sequence_number, &shard.starting_sequence_number)
                    != Ordering::Less;
            let before_end = shard.ending_sequence_number.as_deref().is_none_or(|end| {
                compare_sequence_numbers(sequence_number, end) != Ordering::Greater
            });
            after_start && before_end
        }
        Checkpoint::TrimHorizon | Checkpoint::Latest | Checkpoint::AtTimestamp => true,
    }
}

/// Compares two sequence numbers (decimal digits, up to 128 bits and more) by
/// value.
pub fn compare_sequence_numbers(a: &str, b: &str) -> Ordering {
    let a = a.trim_start_matches('0');
    let b = b.trim_start_matches('0');
    a.len().cmp(&b.len()).then_with(|| a.cmp(b))
}

#[cfg(test)]
mod tests {
    use super::*;

    const START: &str = "49680455627305204782542603866381401179941233759531040770";
    const BEFORE: &str = "49680455627305204782542603866381401179941233759531040769";
    const INSIDE: &str = "49680455627305204782542603866381401179941233759531099999";
    const END: &str = "49680455627305204782542603866381401179941233759532000000";
    const AFTER: &str = "49680455627305204782542603866381401179941233759532000001";

    fn shard(closed: bool) -> ShardInfo {
        ShardInfo {
            shard_id: "shardId-000000000000".into(),
            parent_shard_ids: Vec::new(),
            starting_hash_key: "0".into(),
            ending_hash_key: "9".into(),
            starting_sequence_number: START.into(),
            ending_sequence_number: closed.then(|| END.into()),
        }
    }

    fn lease(epoch: Option<u64>, checkpoint: Checkpoint) -> Lease {
        let mut lease = Lease::new("shardId-000000000000", checkpoint);
        lease.stream_creation_epoch = epoch;
        lease
    }

    #[test]
    fn leases_with_a_creation_time_are_this_streams_or_an_earlier_ones() {
        let at = Checkpoint::at(BEFORE);
        assert_eq!(
            lineage(&lease(Some(100), at.clone()), 100, Some(&shard(false))),
            Lineage::Current,
            "the time decides, not the checkpoint"
        );
        for listed in [Some(shard(false)), None] {
            assert_eq!(
                lineage(
                    &lease(Some(99), Checkpoint::at(INSIDE)),
                    100,
                    listed.as_ref()
                ),
                Lineage::Stale(Stale::EarlierStream { created: 99 })
            );
        }
    }

    #[test]
    fn leases_without_one_are_adopted_when_their_checkpoint_fits_the_shard() {
        let open = shard(false);
        let closed = shard(true);
        let stale = Lineage::Stale(Stale::ForeignCheckpoint);
        for (checkpoint, shard, want) in [
            (Checkpoint::at(START), &open, Lineage::Adopt),
            (Checkpoint::at(INSIDE), &open, Lineage::Adopt),
            (
                Checkpoint::Sequence {
                    sequence_number: INSIDE.into(),
                    sub_sequence_number: 3,
                },
                &closed,
                Lineage::Adopt,
            ),
            (Checkpoint::at(END), &closed, Lineage::Adopt),
            (Checkpoint::at(AFTER), &open, Lineage::Adopt),
            (Checkpoint::TrimHorizon, &open, Lineage::Adopt),
            (Checkpoint::Latest, &closed, Lineage::Adopt),
            (Checkpoint::AtTimestamp, &open, Lineage::Adopt),
            (Checkpoint::ShardEnd, &closed, Lineage::Adopt),
            (Checkpoint::at(BEFORE), &open, stale.clone()),
            (Checkpoint::at("7"), &closed, stale.clone()),
            (Checkpoint::at(AFTER), &closed, stale.clone()),
            (Checkpoint::ShardEnd, &open, stale.clone()),
        ] {
            assert_eq!(
                lineage(&lease(None, checkpoint.clone()), 100, Some(shard)),
                want,
                "{checkpoint} in {shard:?}"
            );
        }
        assert_eq!(
            lineage(&lease(None, Checkpoint::at(BEFORE)), 100, None),
            Lineage::Unlisted
        );
    }

    #[test]
    fn sequence_numbers_compare_by_value() {
        assert_eq!(compare_sequence_numbers("9", "10"), Ordering::Less);
        assert_eq!(compare_sequence_numbers("010", "10"), Ordering::Equal);
        assert_eq!(compare_sequence_numbers(AFTER, END), Ordering::Greater);
        assert_eq!(compare_sequence_numbers(BEFORE, START), Ordering::Less);
    }
}
