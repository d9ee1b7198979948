//! Unit tests of the shard sync: new leases, plans and their application.

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

#[test]
fn closed_shards_whose_descendants_have_leases_get_none() {
    // 0 split into 2 and 3; 2 split into 4 and 5. The leases of 0 and 2 were
    // deleted once their children started.
    let shards = vec![
        shard(0, &[], true),
        shard(1, &[], false),
        shard(2, &[0], true),
        shard(3, &[0], false),
        shard(4, &[2], false),
        shard(5, &[2], false),
    ];
    let ids = |ns: &[u32]| -> Vec<Lease> {
        ns.iter()
            .map(|n| Lease::new(format!("shardId-{n:012}"), Checkpoint::at("5")))
            .collect()
    };
    for initial in [Checkpoint::TrimHorizon, Checkpoint::AtTimestamp] {
        let existing = ids(&[1, 3, 4, 5]);
        assert!(
            new_leases(&LeaseKeys::ShardId, &shards, &existing, &initial).is_empty(),
            "0 (grandchildren leased) and 2 (children leased) are not read again"
        );
    }
    // Only 4 leased: 0 and 2 are its ancestors; 3 and 5 get leases (5 at the
    // start position, its parent 2 having none).
    let leases = new_leases(
        &LeaseKeys::ShardId,
        &shards,
        &ids(&[1, 4]),
        &Checkpoint::TrimHorizon,
    );
    assert_eq!(
        keys_and_checkpoints(&leases),
        [
            ("shardId-000000000003".into(), "TRIM_HORIZON".into()),
            ("shardId-000000000005".into(), "TRIM_HORIZON".into()),
        ]
    );
}

const OLD: u64 = 1_600_000_000;
const NEW: u64 = 1_700_000_000;

fn stamped(n: u32, epoch: Option<u64>, checkpoint: Checkpoint) -> Lease {
    let mut lease = Lease::new(format!("shardId-{n:012}"), checkpoint);
    lease.stream_creation_epoch = epoch;
    lease
}

#[test]
fn a_stream_created_again_gets_fresh_leases() {
    // The earlier stream had 3 shards, all read; the new one has 2.
    let existing = vec![
        stamped(0, Some(OLD), Checkpoint::at("9")),
        stamped(1, Some(OLD), Checkpoint::ShardEnd),
        stamped(2, Some(OLD), Checkpoint::at("9")),
    ];
    let shards = vec![shard(0, &[], false), shard(1, &[], false)];
    let plan = plan_sync(
        &LeaseKeys::ShardId,
        Some(NEW),
        &shards,
        &existing,
        &Checkpoint::Latest,
    );
    assert_eq!(plan.reset.len(), 3);
    assert!(plan
        .reset
        .iter()
        .all(|(_, why)| *why == Stale::EarlierStream { created: OLD }));
    assert_eq!(
        keys_and_checkpoints(&plan.create),
        [
            ("shardId-000000000000".into(), "LATEST".into()),
            ("shardId-000000000001".into(), "LATEST".into()),
        ]
    );
    assert!(plan
        .create
        .iter()
        .all(|l| l.stream_creation_epoch == Some(NEW)));
    assert!(plan.adopt.is_empty() && plan.finished.is_empty());
}

#[test]
fn leases_without_a_creation_time_are_adopted_unless_foreign() {
    let mut shards = vec![shard(0, &[], false), shard(1, &[], false)];
    shards[0].starting_sequence_number = "100".into();
    shards[1].starting_sequence_number = "100".into();
    let existing = vec![
        stamped(0, None, Checkpoint::at("150")),
        stamped(1, None, Checkpoint::at("50")),
    ];
    let plan = plan_sync(
        &LeaseKeys::ShardId,
        Some(NEW),
        &shards,
        &existing,
        &Checkpoint::TrimHorizon,
    );
    assert_eq!(plan.adopt, ["shardId-000000000000"]);
    assert_eq!(plan.reset.len(), 1);
    assert_eq!(plan.reset[0].0.key, "shardId-000000000001");
    assert_eq!(plan.reset[0].1, Stale::ForeignCheckpoint);
    assert_eq!(
        keys_and_checkpoints(&plan.create),
        [("shardId-000000000001".into(), "TRIM_HORIZON".into())]
    );
    // Multi-stream keys carry the creation time: nothing is compared.
    let keys = LeaseKeys::multi_stream("1", "s", SystemTime::UNIX_EPOCH + Duration::from_secs(NEW));
    let mine: Vec<Lease> = new_leases(&keys, &shards, &[], &Checkpoint::TrimHorizon);
    let plan = plan_sync(&keys, None, &shards, &mine, &Checkpoint::TrimHorizon);
    assert_eq!(plan, SyncPlan::default());
}

#[test]
fn a_finished_parent_is_deleted_and_not_made_again() {
    let existing = vec![
        stamped(0, Some(NEW), Checkpoint::ShardEnd),
        stamped(1, Some(NEW), Checkpoint::at("5")),
        stamped(2, Some(NEW), Checkpoint::at("7")),
    ];
    let shards = vec![
        shard(0, &[], true),
        shard(1, &[0], false),
        shard(2, &[0], false),
    ];
    let plan = plan_sync(
        &LeaseKeys::ShardId,
        Some(NEW),
        &shards,
        &existing,
        &Checkpoint::TrimHorizon,
    );
    assert_eq!(plan.finished.len(), 1);
    assert_eq!(plan.finished[0].0.key, "shardId-000000000000");
    assert!(plan.create.is_empty() && plan.reset.is_empty() && plan.adopt.is_empty());
    let after = plan_sync(
        &LeaseKeys::ShardId,
        Some(NEW),
        &shards,
        &existing[1..],
        &Checkpoint::TrimHorizon,
    );
    assert!(after.create.is_empty(), "{:?}", after.create);
}

#[tokio::test]
async fn a_plan_is_applied_with_conditional_writes() {
    use crate::lease::memory::MemoryLeaseStore;
    let store = MemoryLeaseStore::new();
    let stream = StreamId::parse("s");
    let shards = vec![
        shard(0, &[], true),
        shard(1, &[0], false),
        shard(2, &[0], false),
        shard(3, &[], false),
    ];
    // A table as an earlier stream of the same name and a KCL worker left it.
    for lease in [
        stamped(0, Some(OLD), Checkpoint::at("9")),
        stamped(3, None, Checkpoint::at("1")),
    ] {
        store.create(&lease).await.unwrap();
    }
    let sync = |store: MemoryLeaseStore| {
        let (shards, stream) = (shards.clone(), stream.clone());
        async move {
            let existing = store.list().await.unwrap();
            let plan = plan_sync(
                &LeaseKeys::ShardId,
                Some(NEW),
                &shards,
                &existing,
                &Checkpoint::TrimHorizon,
            );
            apply(&store, &stream, plan).await.unwrap()
        }
    };
    // Two workers planning from the same listing: the second one's writes all
    // find the table changed, and change nothing.
    let listed = store.list().await.unwrap();
    let plan = || {
        plan_sync(
            &LeaseKeys::ShardId,
            Some(NEW),
            &shards,
            &listed,
            &Checkpoint::TrimHorizon,
        )
    };
    let created = apply(&store, &stream, plan()).await.unwrap();
    assert_eq!(created.len(), 3, "{created:?}");
    let table = store.snapshot();
    assert!(apply(&store, &stream, plan()).await.unwrap().is_empty());
    assert_eq!(store.snapshot(), table);
    assert!(table.values().all(|l| l.stream_creation_epoch == Some(NEW)));
    assert_eq!(
        table["shardId-000000000000"].checkpoint,
        Checkpoint::TrimHorizon
    );
    assert_eq!(
        table["shardId-000000000003"].checkpoint,
        Checkpoint::at("1")
    );
    assert!(
        sync(store.clone()).await.is_empty(),
        "a second sync changes nothing"
    );

    // Shard 0 is read to its end and both children start: it is deleted,
    // and not made again.
    for (key, checkpoint) in [
        ("shardId-000000000000", Checkpoint::ShardEnd),
        ("shardId-000000000001", Checkpoint::at("5")),
        ("shardId-000000000002", Checkpoint::ShardEnd),
    ] {
        let lease = store.take(&table[key], "w").await.unwrap();
        store.checkpoint(&lease, &checkpoint, &[]).await.unwrap();
    }
    assert!(sync(store.clone()).await.is_empty());
    let keys: Vec<String> = store.snapshot().into_keys().collect();
    assert_eq!(
        keys,
        [
            "shardId-000000000001",
            "shardId-000000000002",
            "shardId-000000000003"
        ]
    );
    assert!(sync(store.clone()).await.is_empty());
    assert_eq!(store.snapshot().len(), 3);
}
