//! Which finished leases to delete (the KCL's lease cleanup; pure logic, no I/O).
//!
//! A lease at SHARD_END keeps its shard's children waiting until it is read to its
//! end (see [`super::balance`]). Once every child has started (its checkpoint is a
//! sequence number or SHARD_END), that mark orders nothing any more and the lease
//! is deleted ([`Finished::ChildrenStarted`]); so is a lease at SHARD_END whose
//! shard ListShards no longer lists ([`Finished::ShardGone`]: its records are past
//! the retention period). As in the KCL's `LeaseCleanupManager`, a lease goes only
//! after its parents' leases: the table empties from the oldest generation down,
//! one generation per shard sync, and a child never waits on a parent deleted out
//! of order.
//!
//! Shard sync then no longer makes a lease for a closed shard one of whose
//! descendants has a lease (see [`super::shard_sync::new_leases`]), so a deleted
//! parent is never read again. The deletes are conditional
//! ([`super::DeleteIf::Finished`]): every worker runs the cleanup in its shard
//! sync, and of workers racing for the same lease one deletes it and the others'
//! conditions fail harmlessly.

use std::collections::{BTreeSet, HashMap};

use super::shard_sync::LeaseKeys;
use super::{Checkpoint, Lease};
use crate::kinesis::ShardInfo;

/// Why a finished lease is deleted.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Finished {
    /// Every child shard's lease has moved past its start.
    ChildrenStarted,
    /// The shard is no longer listed (its records expired).
    ShardGone,
}

impl Finished {
    /// For the log.
    pub fn as_str(self) -> &'static str {
        match self {
            Finished::ChildrenStarted => "every child shard's reader has started",
            Finished::ShardGone => "the shard is no longer listed (its records expired)",
        }
    }
}

/// The leases among `leases` (one stream's, the whole table's view) to delete,
/// given the stream's `shards` (a complete ListShards answer).
pub fn finished_leases<'a>(
    keys: &LeaseKeys,
    shards: &[ShardInfo],
    leases: &'a [Lease],
) -> Vec<(&'a Lease, Finished)> {
    let by_key: HashMap<&str, &Lease> = leases.iter().map(|l| (l.key.as_str(), l)).collect();
    let listed: HashMap<&str, &ShardInfo> =
        shards.iter().map(|s| (s.shard_id.as_str(), s)).collect();
    let mut children_listed: HashMap<&str, Vec<String>> = HashMap::new();
    for shard in shards {
        for parent in &shard.parent_shard_ids {
            children_listed
                .entry(parent.as_str())
                .or_default()
                .push(keys.key(&shard.shard_id));
        }
    }
    let started = |key: &str| {
        by_key.get(key).is_some_and(|l| {
            matches!(
                l.checkpoint,
                Checkpoint::Sequence { .. } | Checkpoint::ShardEnd
            )
        })
    };
    let mut finished = Vec::new();
    for lease in leases {
        if lease.checkpoint != Checkpoint::ShardEnd
            || lease
                .parent_shard_ids
                .iter()
                .any(|p| by_key.contains_key(p.as_str()))
        {
            continue;
        }
        let shard_id = lease.shard_id();
        if !listed.contains_key(shard_id) {
            finished.push((lease, Finished::ShardGone));
            continue;
        }
        // The children written at the shard's end (shard ids as the KCL writes
        // them, or lease keys as this collector does) and those listed.
        let children: BTreeSet<String> = lease
            .child_shard_ids
            .iter()
            .map(|c| match c.contains(':') {
                true => c.clone(),
                false => keys.key(c),
            })
            .chain(children_listed.get(shard_id).into_iter().flatten().cloned())
            .collect();
        if !children.is_empty() && children.iter().all(|c| started(c)) {
            finished.push((lease, Finished::ChildrenStarted));
        }
    }
    finished
}

#[cfg(test)]
mod tests {
    use super::*;

    fn id(n: u32) -> String {
        format!("shardId-{n:012}")
    }

    fn shard(n: u32, parents: &[u32], closed: bool) -> ShardInfo {
        ShardInfo {
            shard_id: id(n),
            parent_shard_ids: parents.iter().map(|p| id(*p)).collect(),
            starting_hash_key: "0".into(),
            ending_hash_key: "9".into(),
            starting_sequence_number: "1".into(),
            ending_sequence_number: closed.then(|| "2".into()),
        }
    }

    fn lease(n: u32, parents: &[u32], checkpoint: Checkpoint) -> Lease {
        let mut lease = Lease::new(id(n), checkpoint);
        lease.parent_shard_ids = parents.iter().map(|p| id(*p)).collect();
        lease
    }

    fn deleted(shards: &[ShardInfo], leases: &[Lease]) -> Vec<(String, Finished)> {
        finished_leases(&LeaseKeys::ShardId, shards, leases)
            .into_iter()
            .map(|(l, why)| (l.key.clone(), why))
            .collect()
    }

    /// 0 split into 1 and 2; 1 split into 3 and 4.
    fn shards() -> Vec<ShardInfo> {
        vec![
            shard(0, &[], true),
            shard(1, &[0], true),
            shard(2, &[0], false),
            shard(3, &[1], false),
            shard(4, &[1], false),
        ]
    }

    #[test]
    fn a_parent_goes_once_every_child_has_started() {
        let seq = || Checkpoint::at("5");
        let mut leases = vec![
            lease(0, &[], Checkpoint::ShardEnd),
            lease(1, &[0], seq()),
            lease(2, &[0], Checkpoint::TrimHorizon),
        ];
        assert_eq!(deleted(&shards(), &leases), [], "child 2 has not started");
        leases[2].checkpoint = seq();
        assert_eq!(
            deleted(&shards(), &leases),
            [(id(0), Finished::ChildrenStarted)]
        );
        // A child at SHARD_END has started too; a missing child has not.
        leases[1].checkpoint = Checkpoint::ShardEnd;
        assert_eq!(deleted(&shards(), &leases).len(), 1);
        assert_eq!(
            deleted(&shards(), &[leases[0].clone(), leases[2].clone()]),
            []
        );
    }

    #[test]
    fn children_come_from_the_lease_and_the_listing() {
        // The lease names a child the listing does not show (yet): it must start too.
        let mut parent = lease(0, &[], Checkpoint::ShardEnd);
        parent.child_shard_ids = vec![id(1), id(9)];
        let leases = vec![
            parent,
            lease(1, &[0], Checkpoint::at("5")),
            lease(2, &[0], Checkpoint::at("5")),
        ];
        assert_eq!(deleted(&shards(), &leases), []);
    }

    #[test]
    fn generations_go_oldest_first() {
        let seq = || Checkpoint::at("5");
        let leases = vec![
            lease(0, &[], Checkpoint::ShardEnd),
            lease(1, &[0], Checkpoint::ShardEnd),
            lease(2, &[0], seq()),
            lease(3, &[1], seq()),
            lease(4, &[1], seq()),
        ];
        assert_eq!(
            deleted(&shards(), &leases),
            [(id(0), Finished::ChildrenStarted)],
            "1 waits until 0 is gone"
        );
        assert_eq!(
            deleted(&shards(), &leases[1..]),
            [(id(1), Finished::ChildrenStarted)]
        );
    }

    #[test]
    fn finished_leases_of_unlisted_shards_go_and_others_stay() {
        let listed = &shards()[2..];
        let leases = vec![
            lease(0, &[], Checkpoint::ShardEnd),
            lease(7, &[], Checkpoint::at("5")),
            lease(8, &[], Checkpoint::TrimHorizon),
            lease(2, &[0], Checkpoint::TrimHorizon),
        ];
        assert_eq!(deleted(listed, &leases), [(id(0), Finished::ShardGone)]);
        // An open shard at SHARD_END has no children: kept.
        let open = [shard(5, &[], false)];
        assert_eq!(deleted(&open, &[lease(5, &[], Checkpoint::ShardEnd)]), []);
    }

    #[test]
    fn multi_stream_children_written_as_shard_ids_are_found() {
        let keys = LeaseKeys::MultiStream {
            stream_identifier: "1:s:9".into(),
        };
        let mut parent = Lease::new(keys.key(&id(0)), Checkpoint::ShardEnd);
        parent.shard_id = Some(id(0));
        parent.child_shard_ids = vec![id(1)];
        let mut child = Lease::new(keys.key(&id(1)), Checkpoint::at("5"));
        child.shard_id = Some(id(1));
        child.parent_shard_ids = vec![keys.key(&id(0))];
        let listed = [shard(0, &[], true), shard(1, &[0], false)];
        let leases = [parent, child];
        let got = finished_leases(&keys, &listed, &leases);
        assert_eq!(got.len(), 1);
        assert_eq!(got[0].0.key, "1:s:9:shardId-000000000000");
    }
}
