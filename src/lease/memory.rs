//! An in-memory [`LeaseStore`] with the DynamoDB store's conditional semantics, for
//! unit tests of the lease coordinator (several "workers" share one store by
//! cloning it). Not for production: nothing survives the process.

use std::collections::BTreeMap;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};

use super::{lost_reason, Checkpoint, DeleteIf, Lease, LeaseError, LeaseStore};
use crate::aws::{AwsError, ErrorClass};

/// Leases in a shared map; clones share it.
#[derive(Debug, Clone, Default)]
pub struct MemoryLeaseStore {
    leases: Arc<Mutex<BTreeMap<String, Lease>>>,
    failures: Arc<AtomicUsize>,
}

impl MemoryLeaseStore {
    /// An empty store.
    pub fn new() -> MemoryLeaseStore {
        MemoryLeaseStore::default()
    }

    /// Makes the next `n` operations fail with a transient error (an outage).
    pub fn fail_next(&self, n: usize) {
        self.failures.store(n, Ordering::SeqCst);
    }

    /// A copy of every lease, by key.
    pub fn snapshot(&self) -> BTreeMap<String, Lease> {
        self.lock().clone()
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, BTreeMap<String, Lease>> {
        // A panic while holding the lock leaves a consistent map (every update
        // is a single insert), so a poisoned lock is still usable.
        self.leases.lock().unwrap_or_else(|e| e.into_inner())
    }

    fn injected_failure(&self, operation: &'static str) -> Result<(), LeaseError> {
        let taken = self
            .failures
            .fetch_update(Ordering::SeqCst, Ordering::SeqCst, |n| n.checked_sub(1));
        match taken {
            Ok(_) => Err(LeaseError::Transient(AwsError {
                operation,
                class: ErrorClass::Transient,
                code: Some("InternalServerError".into()),
                message: "injected failure".into(),
            })),
            Err(_) => Ok(()),
        }
    }

    /// Applies `change` to the stored lease if its counter (and, when `holder`,
    /// its owner) still match `seen`; bumps the counter.
    fn conditional(
        &self,
        operation: &'static str,
        seen: &Lease,
        holder: bool,
        change: impl FnOnce(&mut Lease),
    ) -> Result<Lease, LeaseError> {
        self.injected_failure(operation)?;
        let mut leases = self.lock();
        let current = leases.get_mut(&seen.key);
        let matches = current.as_ref().is_some_and(|current| {
            current.counter == seen.counter
                && (!holder || (seen.owner.is_some() && current.owner == seen.owner))
        });
        match current {
            Some(current) if matches => {
                change(current);
                current.counter += 1;
                Ok(current.clone())
            }
            current => Err(LeaseError::Lost {
                key: seen.key.clone(),
                reason: lost_reason(current.as_deref()),
            }),
        }
    }
}

impl LeaseStore for MemoryLeaseStore {
    async fn ensure_table(&self) -> Result<(), LeaseError> {
        self.injected_failure("DescribeTable")
    }

    async fn list(&self) -> Result<Vec<Lease>, LeaseError> {
        self.injected_failure("Scan")?;
        Ok(self.lock().values().cloned().collect())
    }

    async fn get(&self, key: &str) -> Result<Option<Lease>, LeaseError> {
        self.injected_failure("GetItem")?;
        Ok(self.lock().get(key).cloned())
    }

    async fn create(&self, lease: &Lease) -> Result<bool, LeaseError> {
        self.injected_failure("PutItem")?;
        let mut leases = self.lock();
        if leases.contains_key(&lease.key) {
            return Ok(false);
        }
        leases.insert(lease.key.clone(), lease.clone());
        Ok(true)
    }

    async fn take(&self, lease: &Lease, owner: &str) -> Result<Lease, LeaseError> {
        self.conditional("UpdateItem", lease, false, |current| {
            if current.owner.as_deref().is_some_and(|old| old != owner) {
                current.owner_switches_since_checkpoint += 1;
            }
            current.owner = Some(owner.to_owned());
        })
    }

    async fn renew(&self, lease: &Lease) -> Result<Lease, LeaseError> {
        self.conditional("UpdateItem", lease, true, |current| {
            if lease.millis_behind_latest.is_some() {
                current.millis_behind_latest = lease.millis_behind_latest;
            }
        })
    }

    async fn checkpoint(
        &self,
        lease: &Lease,
        checkpoint: &Checkpoint,
        child_shard_ids: &[String],
    ) -> Result<Lease, LeaseError> {
        self.conditional("UpdateItem", lease, true, |current| {
            current.checkpoint = checkpoint.clone();
            current.owner_switches_since_checkpoint = 0;
            if lease.millis_behind_latest.is_some() {
                current.millis_behind_latest = lease.millis_behind_latest;
            }
            if !child_shard_ids.is_empty() {
                let mut children = child_shard_ids.to_vec();
                children.sort();
                children.dedup();
                current.child_shard_ids = children;
            }
        })
    }

    async fn release(&self, lease: &Lease) -> Result<Lease, LeaseError> {
        self.conditional("UpdateItem", lease, true, |current| current.owner = None)
    }

    async fn delete(&self, key: &str) -> Result<(), LeaseError> {
        self.injected_failure("DeleteItem")?;
        self.lock().remove(key);
        Ok(())
    }

    async fn delete_if(&self, lease: &Lease, condition: DeleteIf) -> Result<bool, LeaseError> {
        self.injected_failure("DeleteItem")?;
        let mut leases = self.lock();
        let matches = leases
            .get(&lease.key)
            .is_some_and(|current| match condition {
                DeleteIf::Finished => {
                    current.checkpoint == Checkpoint::ShardEnd
                        && current.counter == lease.counter
                        && current.owner == lease.owner
                }
                DeleteIf::Stale => {
                    current.stream_creation_epoch == lease.stream_creation_epoch
                        && (lease.stream_creation_epoch.is_some()
                            || current.checkpoint == lease.checkpoint)
                }
            });
        if matches {
            leases.remove(&lease.key);
        }
        Ok(matches)
    }

    async fn stamp_creation_epoch(&self, key: &str, epoch: u64) -> Result<bool, LeaseError> {
        self.injected_failure("UpdateItem")?;
        match self.lock().get_mut(key) {
            Some(current) if current.stream_creation_epoch.is_none() => {
                current.stream_creation_epoch = Some(epoch);
                Ok(true)
            }
            _ => Ok(false),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn take_renew_checkpoint_release() {
        let store = MemoryLeaseStore::new();
        let lease = Lease::new("shard-0", Checkpoint::TrimHorizon);
        assert!(store.create(&lease).await.unwrap());
        assert!(!store.create(&lease).await.unwrap());

        let a = store.take(&lease, "a").await.unwrap();
        assert_eq!((a.owner.as_deref(), a.counter), (Some("a"), 1));
        // b's view is stale: its take fails.
        let err = store.take(&lease, "b").await.unwrap_err();
        assert!(
            matches!(&err, LeaseError::Lost { reason, .. } if reason == "held by a (counter 1)"),
            "{err}"
        );
        // b steals with a fresh view; a's renewal then fails.
        let b = store.take(&a, "b").await.unwrap();
        assert_eq!(b.owner_switches_since_checkpoint, 1);
        assert!(matches!(
            store.renew(&a).await,
            Err(LeaseError::Lost { .. })
        ));
        assert!(matches!(
            store.checkpoint(&a, &Checkpoint::at("5"), &[]).await,
            Err(LeaseError::Lost { .. })
        ));

        let b = store.renew(&b).await.unwrap();
        let b = store
            .checkpoint(
                &b,
                &Checkpoint::ShardEnd,
                &["shard-2".into(), "shard-1".into()],
            )
            .await
            .unwrap();
        assert_eq!(b.checkpoint, Checkpoint::ShardEnd);
        assert_eq!(b.child_shard_ids, ["shard-1", "shard-2"]);
        assert_eq!(b.owner_switches_since_checkpoint, 0);
        let free = store.release(&b).await.unwrap();
        assert_eq!(free.owner, None);
        // Releasing a free lease is not the holder's write.
        assert!(matches!(
            store.release(&free).await,
            Err(LeaseError::Lost { .. })
        ));
        let a = store.take(&free, "a").await.unwrap();
        assert_eq!(
            a.owner_switches_since_checkpoint, 0,
            "a free lease taken is no switch"
        );

        store.delete("shard-0").await.unwrap();
        let err = store.renew(&a).await.unwrap_err();
        assert!(err.to_string().contains("deleted"), "{err}");
        assert!(store.list().await.unwrap().is_empty());
    }

    #[tokio::test]
    async fn conditional_deletes_and_the_creation_epoch_stamp() {
        let store = MemoryLeaseStore::new();
        let lease = Lease::new("shard-0", Checkpoint::TrimHorizon);
        store.create(&lease).await.unwrap();
        let held = store.take(&lease, "a").await.unwrap();
        // Not finished: kept.
        assert!(!store.delete_if(&held, DeleteIf::Finished).await.unwrap());
        let done = store
            .checkpoint(&held, &Checkpoint::ShardEnd, &[])
            .await
            .unwrap();
        // Listed before the last write: kept.
        assert!(!store.delete_if(&held, DeleteIf::Finished).await.unwrap());
        assert!(store.delete_if(&done, DeleteIf::Finished).await.unwrap());
        assert!(!store.delete_if(&done, DeleteIf::Finished).await.unwrap());

        // Stale without an epoch: only while still without one, at that checkpoint.
        let kcl = Lease::new("shard-1", Checkpoint::at("5"));
        store.create(&kcl).await.unwrap();
        let mut moved = kcl.clone();
        moved.checkpoint = Checkpoint::at("6");
        assert!(!store.delete_if(&moved, DeleteIf::Stale).await.unwrap());
        assert!(store.stamp_creation_epoch("shard-1", 100).await.unwrap());
        assert!(!store.stamp_creation_epoch("shard-1", 200).await.unwrap());
        assert!(!store.stamp_creation_epoch("missing", 200).await.unwrap());
        let stamped = store.get("shard-1").await.unwrap().unwrap();
        assert_eq!(
            (stamped.stream_creation_epoch, stamped.counter),
            (Some(100), 0),
            "the stamp leaves the counter alone"
        );
        assert!(!store.delete_if(&kcl, DeleteIf::Stale).await.unwrap());
        // Stale with an epoch: whatever the counter.
        let taken = store.take(&stamped, "b").await.unwrap();
        let renewed = store.renew(&taken).await.unwrap();
        assert_eq!(renewed.stream_creation_epoch, Some(100));
        let mut other = stamped.clone();
        other.stream_creation_epoch = Some(99);
        assert!(!store.delete_if(&other, DeleteIf::Stale).await.unwrap());
        assert!(store.delete_if(&stamped, DeleteIf::Stale).await.unwrap());
        assert!(store.list().await.unwrap().is_empty());
    }

    #[tokio::test]
    async fn injected_failures_are_transient_and_run_out() {
        let store = MemoryLeaseStore::new();
        store.fail_next(2);
        assert!(store.list().await.unwrap_err().is_transient());
        assert!(store.get("x").await.unwrap_err().is_transient());
        assert_eq!(store.get("x").await.unwrap(), None);
    }
}
