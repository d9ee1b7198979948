//! KPL (Kinesis Producer Library) aggregated records: a magic prefix, a protobuf
//! `AggregatedRecord`, and the MD5 of the protobuf bytes.
//!
//! Format: <https://github.com/awslabs/amazon-kinesis-producer/blob/master/aggregation-format.md>.
//! As the KCL does, bytes that start with the magic but whose digest or protobuf
//! does not check out are one plain record.

use md5::{Digest, Md5};
use prost::Message;

/// The four bytes that start every aggregated record.
pub const MAGIC: [u8; 4] = [0xf3, 0x89, 0x9a, 0xc2];
const DIGEST_LEN: usize = 16;

/// `AggregatedRecord` from the KPL's `messages.proto`.
#[derive(Clone, PartialEq, Message)]
pub struct AggregatedRecord {
    /// Partition keys referenced by index from the records.
    #[prost(string, repeated, tag = "1")]
    pub partition_key_table: Vec<String>,
    /// Explicit hash keys referenced by index from the records.
    #[prost(string, repeated, tag = "2")]
    pub explicit_hash_key_table: Vec<String>,
    /// The user records, in order (subsequence numbers 0..n-1).
    #[prost(message, repeated, tag = "3")]
    pub records: Vec<SubRecord>,
}

/// `Record` from the KPL's `messages.proto`.
#[derive(Clone, PartialEq, Message)]
pub struct SubRecord {
    /// Index into `partition_key_table`.
    #[prost(uint64, tag = "1")]
    pub partition_key_index: u64,
    /// Index into `explicit_hash_key_table`.
    #[prost(uint64, optional, tag = "2")]
    pub explicit_hash_key_index: Option<u64>,
    /// The user record's bytes.
    #[prost(bytes = "vec", tag = "3")]
    pub data: Vec<u8>,
    /// Tags (unused by the KPL itself).
    #[prost(message, repeated, tag = "4")]
    pub tags: Vec<Tag>,
}

/// `Tag` from the KPL's `messages.proto`.
#[derive(Clone, PartialEq, Message)]
pub struct Tag {
    /// Tag key.
    #[prost(string, tag = "1")]
    pub key: String,
    /// Tag value.
    #[prost(string, optional, tag = "2")]
    pub value: Option<String>,
}

/// The user records of `data` if it is a valid aggregated record, else `None`.
pub fn deaggregate(data: &[u8]) -> Option<Vec<Vec<u8>>> {
    let body = data.strip_prefix(&MAGIC)?;
    let split = body.len().checked_sub(DIGEST_LEN)?;
    let (message, digest) = body.split_at(split);
    if Md5::digest(message).as_slice() != digest {
        return None;
    }
    let aggregated = AggregatedRecord::decode(message).ok()?;
    let keys = aggregated.partition_key_table.len() as u64;
    if aggregated
        .records
        .iter()
        .any(|r| r.partition_key_index >= keys)
    {
        return None;
    }
    Some(aggregated.records.into_iter().map(|r| r.data).collect())
}

/// Builds an aggregated record from user records (for tests, fixtures and benches).
pub fn aggregate(records: &[&[u8]]) -> Vec<u8> {
    let message = AggregatedRecord {
        partition_key_table: vec!["pk".to_owned()],
        explicit_hash_key_table: Vec::new(),
        records: records
            .iter()
            .map(|data| SubRecord {
                partition_key_index: 0,
                explicit_hash_key_index: None,
                data: data.to_vec(),
                tags: Vec::new(),
            })
            .collect(),
    }
    .encode_to_vec();
    let mut out = MAGIC.to_vec();
    out.extend_from_slice(&message);
    out.extend_from_slice(&Md5::digest(&message));
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn round_trips_sub_records_in_order() {
        let data = aggregate(&[b"a", b"", b"third"]);
        assert_eq!(
            deaggregate(&data).unwrap(),
            vec![b"a".to_vec(), Vec::new(), b"third".to_vec()]
        );
    }

    #[test]
    fn bad_digest_or_protobuf_means_not_aggregated() {
        let mut data = aggregate(&[b"x"]);
        let n = data.len();
        data[n - 1] ^= 1;
        assert!(deaggregate(&data).is_none());
        assert!(deaggregate(&MAGIC).is_none());
        let mut junk = MAGIC.to_vec();
        junk.extend_from_slice(&[0xff; 5]);
        junk.extend_from_slice(&Md5::digest([0xffu8; 5]));
        assert!(deaggregate(&junk).is_none());
        assert!(deaggregate(b"plain").is_none());
    }
}
