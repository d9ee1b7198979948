//! The KCL 2.x lease item: attribute names and types, and the mapping between a
//! DynamoDB item and a [`Lease`].
//!
//! Names and types follow the KCL's `DynamoDBLeaseSerializer` (and
//! `DynamoDBMultiStreamLeaseSerializer` for `streamName` / `shardId`). Reading is
//! lenient where KCL versions differ: early 2.x releases wrote `childShardId`,
//! later ones `childShardIds`; missing numbers read as 0.

use std::collections::HashMap;

use aws_sdk_dynamodb::types::AttributeValue;

use super::{Checkpoint, Lease, LeaseError};

/// Hash key (S).
pub const LEASE_KEY: &str = "leaseKey";
/// Worker id of the holder (S); absent when free.
pub const LEASE_OWNER: &str = "leaseOwner";
/// Fencing counter (N).
pub const LEASE_COUNTER: &str = "leaseCounter";
/// Sequence number or sentinel (S).
pub const CHECKPOINT: &str = "checkpoint";
/// KPL sub-record of the checkpoint (N).
pub const CHECKPOINT_SUB_SEQUENCE_NUMBER: &str = "checkpointSubSequenceNumber";
/// Takes by another worker since the last checkpoint (N).
pub const OWNER_SWITCHES_SINCE_CHECKPOINT: &str = "ownerSwitchesSinceCheckpoint";
/// Parent shard ids (SS).
pub const PARENT_SHARD_ID: &str = "parentShardId";
/// Child shard ids (SS).
pub const CHILD_SHARD_IDS: &str = "childShardIds";
/// What early KCL 2.x releases called [`CHILD_SHARD_IDS`] (read only).
pub const CHILD_SHARD_ID_LEGACY: &str = "childShardId";
/// First hash key of the shard (S).
pub const STARTING_HASH_KEY: &str = "startingHashKey";
/// Last hash key of the shard (S).
pub const ENDING_HASH_KEY: &str = "endingHashKey";
/// Multi-stream mode: `account:stream:creationEpoch` (S).
pub const STREAM_NAME: &str = "streamName";
/// Multi-stream mode: the shard id (S).
pub const SHARD_ID: &str = "shardId";
/// How far behind the tip the holder's reader was (this collector's attribute).
pub const MILLIS_BEHIND_LATEST: &str = "millisBehindLatest";
/// Creation time of the stream the lease was made for, seconds since the Unix
/// epoch (N; this collector's attribute, single-stream mode).
pub const STREAM_CREATION_EPOCH: &str = "streamCreationEpoch";

/// A DynamoDB item.
pub type Item = HashMap<String, AttributeValue>;

/// Reads a lease from an item.
pub fn from_item(item: &Item) -> Result<Lease, LeaseError> {
    let key = match item.get(LEASE_KEY) {
        Some(AttributeValue::S(key)) => key.clone(),
        _ => {
            return Err(LeaseError::Malformed {
                key: "?".into(),
                reason: format!("no {LEASE_KEY} string attribute"),
            })
        }
    };
    let malformed = |reason: String| LeaseError::Malformed {
        key: key.clone(),
        reason,
    };
    let checkpoint = match string(item, CHECKPOINT).map_err(&malformed)? {
        Some(text) => {
            let sub = number(item, CHECKPOINT_SUB_SEQUENCE_NUMBER).map_err(&malformed)?;
            Checkpoint::parse(text, sub.unwrap_or(0)).map_err(&malformed)?
        }
        None => return Err(malformed(format!("no {CHECKPOINT} attribute"))),
    };
    let child_shard_ids = match string_set(item, CHILD_SHARD_IDS).map_err(&malformed)? {
        ids if ids.is_empty() => string_set(item, CHILD_SHARD_ID_LEGACY).map_err(&malformed)?,
        ids => ids,
    };
    let hash_key_range = match (
        string(item, STARTING_HASH_KEY).map_err(&malformed)?,
        string(item, ENDING_HASH_KEY).map_err(&malformed)?,
    ) {
        (Some(start), Some(end)) => Some((start.to_owned(), end.to_owned())),
        _ => None,
    };
    Ok(Lease {
        owner: string(item, LEASE_OWNER)
            .map_err(&malformed)?
            .map(str::to_owned),
        counter: number(item, LEASE_COUNTER)
            .map_err(&malformed)?
            .unwrap_or(0),
        checkpoint,
        owner_switches_since_checkpoint: number(item, OWNER_SWITCHES_SINCE_CHECKPOINT)
            .map_err(&malformed)?
            .unwrap_or(0),
        parent_shard_ids: string_set(item, PARENT_SHARD_ID).map_err(&malformed)?,
        child_shard_ids,
        hash_key_range,
        stream_name: string(item, STREAM_NAME)
            .map_err(&malformed)?
            .map(str::to_owned),
        shard_id: string(item, SHARD_ID)
            .map_err(&malformed)?
            .map(str::to_owned),
        millis_behind_latest: number(item, MILLIS_BEHIND_LATEST).map_err(&malformed)?,
        stream_creation_epoch: number(item, STREAM_CREATION_EPOCH).map_err(&malformed)?,
        key,
    })
}

/// The item that creates `lease` (only ever written with `attribute_not_exists`).
pub fn to_new_item(lease: &Lease) -> Item {
    let mut item = Item::new();
    item.insert(LEASE_KEY.into(), s(&lease.key));
    item.insert(LEASE_COUNTER.into(), n(lease.counter));
    if let Some(owner) = &lease.owner {
        item.insert(LEASE_OWNER.into(), s(owner));
    }
    item.insert(CHECKPOINT.into(), s(lease.checkpoint.as_str()));
    item.insert(
        CHECKPOINT_SUB_SEQUENCE_NUMBER.into(),
        n(lease.checkpoint.sub_sequence_number()),
    );
    item.insert(
        OWNER_SWITCHES_SINCE_CHECKPOINT.into(),
        n(lease.owner_switches_since_checkpoint),
    );
    if let Some(set) = ss(&lease.parent_shard_ids) {
        item.insert(PARENT_SHARD_ID.into(), set);
    }
    if let Some(set) = ss(&lease.child_shard_ids) {
        item.insert(CHILD_SHARD_IDS.into(), set);
    }
    if let Some((start, end)) = &lease.hash_key_range {
        item.insert(STARTING_HASH_KEY.into(), s(start));
        item.insert(ENDING_HASH_KEY.into(), s(end));
    }
    if let Some(stream) = &lease.stream_name {
        item.insert(STREAM_NAME.into(), s(stream));
    }
    if let Some(shard) = &lease.shard_id {
        item.insert(SHARD_ID.into(), s(shard));
    }
    if let Some(lag) = lease.millis_behind_latest {
        item.insert(MILLIS_BEHIND_LATEST.into(), n(lag));
    }
    if let Some(epoch) = lease.stream_creation_epoch {
        item.insert(STREAM_CREATION_EPOCH.into(), n(epoch));
    }
    item
}

/// A string attribute value.
pub fn s(value: &str) -> AttributeValue {
    AttributeValue::S(value.to_owned())
}

/// A number attribute value.
pub fn n(value: u64) -> AttributeValue {
    AttributeValue::N(value.to_string())
}

/// A string-set attribute value; `None` for an empty set (DynamoDB has no empty
/// sets). Duplicates are dropped.
pub fn ss(values: &[String]) -> Option<AttributeValue> {
    let mut values = values.to_vec();
    values.sort();
    values.dedup();
    (!values.is_empty()).then_some(AttributeValue::Ss(values))
}

fn string<'a>(item: &'a Item, name: &str) -> Result<Option<&'a str>, String> {
    match item.get(name) {
        None | Some(AttributeValue::Null(_)) => Ok(None),
        Some(AttributeValue::S(value)) => Ok(Some(value)),
        Some(other) => Err(format!("{name} is {other:?}, not a string")),
    }
}

fn number(item: &Item, name: &str) -> Result<Option<u64>, String> {
    match item.get(name) {
        None | Some(AttributeValue::Null(_)) => Ok(None),
        Some(AttributeValue::N(value)) => value
            .parse()
            .map(Some)
            .map_err(|_| format!("{name} is {value:?}, not a non-negative integer")),
        Some(other) => Err(format!("{name} is {other:?}, not a number")),
    }
}

fn string_set(item: &Item, name: &str) -> Result<Vec<String>, String> {
    match item.get(name) {
        None | Some(AttributeValue::Null(_)) => Ok(Vec::new()),
        Some(AttributeValue::Ss(values)) => Ok(values.clone()),
        // Tolerate a single string or a list of strings written by other tools.
        Some(AttributeValue::S(value)) => Ok(vec![value.clone()]),
        Some(AttributeValue::L(values)) => values
            .iter()
            .map(|v| match v {
                AttributeValue::S(s) => Ok(s.clone()),
                other => Err(format!("{name} holds {other:?}, not a string")),
            })
            .collect(),
        Some(other) => Err(format!("{name} is {other:?}, not a string set")),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn full_lease() -> Lease {
        Lease {
            key: "shardId-000000000002".into(),
            owner: Some("worker-a".into()),
            counter: 17,
            checkpoint: Checkpoint::Sequence {
                sequence_number: "49590338271490256608559692538361571095921575989136588898".into(),
                sub_sequence_number: 2,
            },
            owner_switches_since_checkpoint: 1,
            parent_shard_ids: vec!["shardId-000000000000".into(), "shardId-000000000001".into()],
            child_shard_ids: vec!["shardId-000000000003".into()],
            hash_key_range: Some(("0".into(), "170141183460469231731687303715884105727".into())),
            stream_name: Some("123456789012:fortisiem:1600000000".into()),
            shard_id: Some("shardId-000000000002".into()),
            millis_behind_latest: Some(1500),
            stream_creation_epoch: Some(1_600_000_000),
        }
    }

    #[test]
    fn round_trip() {
        let lease = full_lease();
        assert_eq!(from_item(&to_new_item(&lease)).unwrap(), lease);
        let free = Lease::new("shardId-000000000000", Checkpoint::TrimHorizon);
        let item = to_new_item(&free);
        assert!(!item.contains_key(LEASE_OWNER));
        assert!(!item.contains_key(PARENT_SHARD_ID));
        assert_eq!(from_item(&item).unwrap(), free);
    }

    #[test]
    fn kcl_item_with_legacy_child_attribute_and_extras() {
        let mut item = Item::new();
        item.insert(LEASE_KEY.into(), s("shardId-000000000000"));
        item.insert(LEASE_COUNTER.into(), n(4));
        item.insert(CHECKPOINT.into(), s("SHARD_END"));
        item.insert(
            CHILD_SHARD_ID_LEGACY.into(),
            AttributeValue::Ss(vec!["shardId-000000000001".into()]),
        );
        item.insert("throughputKBps".into(), AttributeValue::N("1.5".into()));
        let lease = from_item(&item).unwrap();
        assert_eq!(lease.checkpoint, Checkpoint::ShardEnd);
        assert_eq!(lease.child_shard_ids, ["shardId-000000000001"]);
        assert_eq!(lease.owner, None);
        assert_eq!(lease.owner_switches_since_checkpoint, 0);
    }

    #[test]
    fn malformed_items_name_the_problem() {
        let mut item = to_new_item(&full_lease());
        item.insert(LEASE_COUNTER.into(), s("x"));
        let err = from_item(&item).unwrap_err().to_string();
        assert!(
            err.contains("shardId-000000000002") && err.contains(LEASE_COUNTER),
            "{err}"
        );

        let mut item = to_new_item(&full_lease());
        item.remove(CHECKPOINT);
        assert!(from_item(&item)
            .unwrap_err()
            .to_string()
            .contains("no checkpoint"));

        let mut item = to_new_item(&full_lease());
        item.insert(LEASE_COUNTER.into(), n(1));
        item.insert(CHECKPOINT.into(), s("garbage"));
        assert!(from_item(&item)
            .unwrap_err()
            .to_string()
            .contains("garbage"));

        let err = from_item(&Item::new()).unwrap_err().to_string();
        assert!(err.contains("no leaseKey"), "{err}");
    }

    #[test]
    fn sets_are_deduplicated_and_never_empty() {
        assert_eq!(ss(&[]), None);
        assert_eq!(
            ss(&["b".into(), "a".into(), "b".into()]),
            Some(AttributeValue::Ss(vec!["a".into(), "b".into()]))
        );
    }
}
