//! Which leases a worker takes, as pure logic over a listing of the lease table
//! (no I/O, no clock of its own: the caller passes the time).
//!
//! A lease is expired when its counter has not changed for the failover time on
//! this worker's monotonic clock: no clock agreement between hosts is needed. Free
//! and expired leases are taken first, up to this worker's share, ceil(leases /
//! live workers) (capped by `max_leases_per_worker`). With none left and a share
//! not reached, one lease is stolen from the most loaded worker, only when that
//! narrows the gap between the two and leaves the victim at or above the floor
//! share (so leases never thrash back and forth). A worker in its first take
//! interval that sees no other live worker takes only half of the free leases
//! per round, so workers started together split them (see [`TakeRules::starting`]).
//!
//! Leases at SHARD_END need no reader and are not balanced; a child whose parent
//! leases have not reached SHARD_END waits (a parent missing from the table, e.g.
//! expired and deleted, does not block).

use std::collections::{BTreeMap, HashMap, HashSet};
use std::hash::{BuildHasher, Hasher};
use std::time::Duration;

use tokio::time::Instant;

use super::{Checkpoint, Lease};

/// When each lease's counter last changed, as this worker saw it.
#[derive(Debug, Default)]
pub struct ExpiryTracker {
    seen: HashMap<String, (u64, Instant)>,
}

impl ExpiryTracker {
    /// Records a listing made at `now`; forgets leases no longer listed.
    pub fn observe(&mut self, leases: &[Lease], now: Instant) {
        let mut seen = HashMap::with_capacity(leases.len());
        for lease in leases {
            let changed = match self.seen.get(&lease.key) {
                Some(&(counter, at)) if counter == lease.counter => at,
                _ => now,
            };
            seen.insert(lease.key.clone(), (lease.counter, changed));
        }
        self.seen = seen;
    }

    /// Whether `lease` has an owner that has not renewed it for `failover`.
    pub fn is_expired(&self, lease: &Lease, failover: Duration, now: Instant) -> bool {
        lease.owner.is_some()
            && self.seen.get(&lease.key).is_some_and(|&(counter, at)| {
                counter == lease.counter && now.duration_since(at) >= failover
            })
    }
}

/// What one take round does.
#[derive(Debug, Default, PartialEq, Eq)]
pub struct TakePlan {
    /// Free or expired leases to take.
    pub take: Vec<Lease>,
    /// A lease to steal from the most loaded worker.
    pub steal: Option<Lease>,
    /// This worker's share: ceil(balanced leases / live workers), capped.
    pub target: usize,
    /// Free or expired leases left for a later round (the first round takes
    /// only half, see [`plan_take`]).
    pub deferred: usize,
}

/// Inputs of [`plan_take`] besides the listing.
#[derive(Debug, Clone, Copy)]
pub struct TakeRules {
    /// Lease expiry on the local clock.
    pub failover: Duration,
    /// Most leases per worker; 0 for no limit.
    pub max_leases_per_worker: usize,
    /// The worker started less than a take interval ago. While starting and seeing
    /// no other live worker, it takes at most half of the free leases per round
    /// (the next round follows soon): workers started together then split the
    /// leases instead of one racing through all of them and the others stealing
    /// one per take interval. Later, a lone worker takes all it needs at once
    /// (failover after a crash, handover after a clean stop).
    pub starting: bool,
}

/// Plans one take round of `worker`, which holds `held`, over `leases` (the whole
/// table, listed at `now` and already passed to `tracker`).
pub fn plan_take(
    worker: &str,
    held: &HashSet<String>,
    leases: &[Lease],
    tracker: &ExpiryTracker,
    rules: TakeRules,
    now: Instant,
) -> TakePlan {
    let by_key: HashMap<&str, &Lease> = leases.iter().map(|l| (l.key.as_str(), l)).collect();
    let ready = |lease: &Lease| {
        lease.checkpoint != Checkpoint::ShardEnd
            && lease.parent_shard_ids.iter().all(|parent| {
                by_key
                    .get(parent.as_str())
                    .is_none_or(|p| p.checkpoint == Checkpoint::ShardEnd)
            })
    };
    let mut available = Vec::new();
    let mut load: BTreeMap<&str, Vec<&Lease>> = BTreeMap::new();
    let (mut balanced, mut mine) = (0usize, 0usize);
    for lease in leases.iter().filter(|l| ready(l)) {
        balanced += 1;
        if held.contains(&lease.key) {
            mine += 1;
            continue;
        }
        match lease.owner.as_deref() {
            // Ours in the table but not held here (e.g. before a restart): take it back.
            Some(owner) if owner != worker && !tracker.is_expired(lease, rules.failover, now) => {
                load.entry(owner).or_default().push(lease)
            }
            _ => available.push(lease),
        }
    }
    let workers = load.len() + 1;
    let cap = |n: usize| match rules.max_leases_per_worker {
        0 => n,
        max => n.min(max),
    };
    let target = cap(balanced.div_ceil(workers));
    let floor = cap(balanced / workers);
    let needed = target.saturating_sub(mine);
    let mut plan = TakePlan {
        target,
        ..TakePlan::default()
    };
    if needed == 0 {
        return plan;
    }
    if !available.is_empty() {
        shuffle(&mut available);
        let mut count = needed.min(available.len());
        if rules.starting && load.is_empty() {
            count = count.min(available.len().div_ceil(2));
        }
        plan.deferred = available.len().min(needed) - count;
        plan.take = available.into_iter().take(count).cloned().collect();
        return plan;
    }
    // Nothing free: steal one from the most loaded worker if that narrows the gap
    // and leaves it at or above the floor share.
    let Some((_, victim)) = load
        .iter()
        .max_by_key(|(owner, leases)| (leases.len(), std::cmp::Reverse(*owner)))
    else {
        return plan;
    };
    if victim.len() >= mine + 2 && victim.len() > floor {
        let mut victim = victim.clone();
        shuffle(&mut victim);
        plan.steal = victim.first().map(|l| (*l).clone());
    }
    plan
}

/// Shuffles in place (Fisher-Yates) so that workers racing for the same leases
/// try them in different orders.
fn shuffle<T>(items: &mut [T]) {
    let state = std::collections::hash_map::RandomState::new();
    for i in (1..items.len()).rev() {
        let mut hasher = state.build_hasher();
        hasher.write_usize(i);
        let j = (hasher.finish() % (i as u64 + 1)) as usize;
        items.swap(i, j);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const FAILOVER: Duration = Duration::from_secs(10);

    fn lease(key: &str, owner: Option<&str>) -> Lease {
        let mut lease = Lease::new(key, Checkpoint::TrimHorizon);
        lease.owner = owner.map(str::to_owned);
        lease
    }

    fn rules() -> TakeRules {
        TakeRules {
            failover: FAILOVER,
            max_leases_per_worker: 0,
            starting: false,
        }
    }

    /// Leases s0..s{n}, owned as `owners[i]`.
    fn table(owners: &[Option<&str>]) -> Vec<Lease> {
        owners
            .iter()
            .enumerate()
            .map(|(i, o)| lease(&format!("s{i}"), *o))
            .collect()
    }

    fn plan(worker: &str, leases: &[Lease], rules: TakeRules) -> TakePlan {
        let now = Instant::now();
        let mut tracker = ExpiryTracker::default();
        tracker.observe(leases, now);
        let held = leases
            .iter()
            .filter(|l| l.owner.as_deref() == Some(worker))
            .map(|l| l.key.clone())
            .collect();
        plan_take(worker, &held, leases, &tracker, rules, now)
    }

    #[test]
    fn a_lone_worker_takes_every_free_lease_or_half_while_starting() {
        let leases = table(&[None; 8]);
        let p = plan("a", &leases, rules());
        assert_eq!(
            (p.take.len(), p.target, p.steal, p.deferred),
            (8, 8, None, 0)
        );
        let p = plan(
            "a",
            &leases,
            TakeRules {
                starting: true,
                ..rules()
            },
        );
        assert_eq!((p.take.len(), p.deferred), (4, 4));
        // One left: taken.
        let mut leases = table(&[Some("a"); 7]);
        leases.push(lease("s7", None));
        let p = plan(
            "a",
            &leases,
            TakeRules {
                starting: true,
                ..rules()
            },
        );
        assert_eq!(p.take.len(), 1);
    }

    #[test]
    fn a_second_worker_takes_free_leases_up_to_its_share() {
        let mut owners = vec![Some("a"); 4];
        owners.extend([None; 4]);
        let p = plan(
            "b",
            &table(&owners),
            TakeRules {
                starting: true,
                ..rules()
            },
        );
        assert_eq!(
            (p.take.len(), p.target),
            (4, 4),
            "not alone: its share at once"
        );
        let p = plan("b", &table(&owners), rules());
        assert_eq!((p.take.len(), p.target), (4, 4));
        assert!(p.take.iter().all(|l| l.owner.is_none()));
    }

    #[test]
    fn steals_one_from_the_most_loaded_never_below_the_floor() {
        // a 8, b 0: b steals one.
        let p = plan("b", &table(&[Some("a"); 8]), rules());
        assert_eq!((p.take.len(), p.target), (0, 4));
        assert_eq!(p.steal.unwrap().owner.as_deref(), Some("a"));
        // a 5, b 3: b steals to 4/4.
        let mut owners = vec![Some("a"); 5];
        owners.extend([Some("b"); 3]);
        assert!(plan("b", &table(&owners), rules()).steal.is_some());
        // a 5, b 4: stealing would just swap the imbalance.
        owners.push(Some("b"));
        assert_eq!(plan("b", &table(&owners), rules()).steal, None);
        // a 2, b 2, c 0 (4 leases, 3 workers): c steals one (a or b keeps 1 = floor).
        let owners = [Some("a"), Some("a"), Some("b"), Some("b")];
        let p = plan("c", &table(&owners), rules());
        assert!(p.steal.is_some());
        // a 2, b 1, c 1: balanced, nothing moves.
        let owners = [Some("a"), Some("a"), Some("b"), Some("c")];
        for w in ["a", "b", "c"] {
            let p = plan(w, &table(&owners), rules());
            assert_eq!((p.take.len(), p.steal, p.target), (0, None, 2), "{w}");
        }
        // The most loaded is the victim: a 1, b 5, me 0.
        let mut owners = vec![Some("a")];
        owners.extend([Some("b"); 5]);
        assert_eq!(
            plan("c", &table(&owners), rules())
                .steal
                .unwrap()
                .owner
                .as_deref(),
            Some("b")
        );
    }

    #[test]
    fn expired_leases_are_taken_and_renewed_ones_are_not() {
        let leases = table(&[Some("dead"), Some("dead"), Some("alive"), Some("alive")]);
        let start = Instant::now();
        let mut tracker = ExpiryTracker::default();
        tracker.observe(&leases, start);
        let held = HashSet::new();
        let plan_at = |tracker: &ExpiryTracker, leases: &[Lease], at| {
            plan_take("me", &held, leases, tracker, rules(), at)
        };
        // Not yet expired: 3 workers, target 2, steal from a loaded one? Both have
        // 2 = ceil(4/3), floor 1, me 0: steal one.
        assert!(plan_at(&tracker, &leases, start + FAILOVER / 2)
            .steal
            .is_some());
        // "alive" renews (its counters move); "dead" does not.
        let mut later = leases.clone();
        later[2].counter += 3;
        later[3].counter += 3;
        tracker.observe(&later, start + FAILOVER);
        let p = plan_at(&tracker, &later, start + FAILOVER);
        let mut taken: Vec<_> = p.take.iter().map(|l| l.key.as_str()).collect();
        taken.sort();
        assert_eq!(taken, ["s0", "s1"], "dead worker's leases expired");
        assert_eq!(p.target, 2, "the dead worker no longer counts");
    }

    #[test]
    fn first_sight_is_not_expiry() {
        let leases = table(&[Some("x")]);
        let mut tracker = ExpiryTracker::default();
        let t = Instant::now();
        tracker.observe(&leases, t + FAILOVER * 5);
        assert!(!tracker.is_expired(&leases[0], FAILOVER, t + FAILOVER * 5));
        assert!(tracker.is_expired(&leases[0], FAILOVER, t + FAILOVER * 6));
        assert!(
            !tracker.is_expired(&lease("s0", None), FAILOVER, t + FAILOVER * 6),
            "free is not expired"
        );
    }

    #[test]
    fn finished_shards_are_not_balanced_and_children_wait_for_parents() {
        let mut leases = table(&[Some("a"), None, None]);
        // s0 finished; s1 is its child (ready); s2 is a child of s1 (not ready).
        leases[0].checkpoint = Checkpoint::ShardEnd;
        leases[1].parent_shard_ids = vec!["s0".into()];
        leases[2].parent_shard_ids = vec!["s1".into(), "gone".into()];
        let p = plan("b", &leases, rules());
        assert_eq!(
            p.take.iter().map(|l| l.key.as_str()).collect::<Vec<_>>(),
            ["s1"]
        );
        assert_eq!(p.target, 1);
    }

    #[test]
    fn max_leases_per_worker_caps_the_share() {
        let p = plan(
            "a",
            &table(&[None; 8]),
            TakeRules {
                max_leases_per_worker: 3,
                ..rules()
            },
        );
        assert_eq!((p.take.len(), p.target), (3, 3));
    }

    #[test]
    fn leases_ours_in_the_table_but_not_held_are_taken_back() {
        let leases = table(&[Some("a"), Some("a")]);
        let mut tracker = ExpiryTracker::default();
        let now = Instant::now();
        tracker.observe(&leases, now);
        let p = plan_take("a", &HashSet::new(), &leases, &tracker, rules(), now);
        assert_eq!(p.take.len(), 2);
    }

    #[test]
    fn shuffle_keeps_every_item() {
        let mut items: Vec<u32> = (0..50).collect();
        shuffle(&mut items);
        let mut sorted = items.clone();
        sorted.sort();
        assert_eq!(sorted, (0..50).collect::<Vec<_>>());
    }
}
