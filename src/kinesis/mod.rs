//! Kinesis Data Streams: the typed API calls the readers and the shard sync make
//! ([`api`]), one shard's GetRecords reader ([`reader`], and its `[reader]`
//! section), and the stream and shard descriptions they pass around.

pub mod api;
pub mod reader;

use std::fmt;

pub use aws_sdk_kinesis::types::Record;

/// A stream, by name (in the client's account and region) or by ARN (any account).
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub enum StreamId {
    /// A stream name, e.g. `fortisiem`.
    Name(String),
    /// A stream ARN, e.g. `arn:aws:kinesis:us-east-1:123456789012:stream/fortisiem`.
    Arn(String),
}

impl StreamId {
    /// An ARN when `text` starts with `arn:`, else a name.
    pub fn parse(text: &str) -> StreamId {
        if text.starts_with("arn:") {
            StreamId::Arn(text.to_owned())
        } else {
            StreamId::Name(text.to_owned())
        }
    }

    /// The name alone (the last part of an ARN).
    pub fn name(&self) -> &str {
        match self {
            StreamId::Name(name) => name,
            StreamId::Arn(arn) => arn
                .rsplit_once("stream/")
                .map_or(arn.as_str(), |(_, name)| name),
        }
    }

    fn name_and_arn(&self) -> (Option<String>, Option<String>) {
        match self {
            StreamId::Name(name) => (Some(name.clone()), None),
            StreamId::Arn(arn) => (None, Some(arn.clone())),
        }
    }
}

impl fmt::Display for StreamId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            StreamId::Name(name) => f.write_str(name),
            StreamId::Arn(arn) => f.write_str(arn),
        }
    }
}

/// A shard as ListShards describes it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ShardInfo {
    /// e.g. `shardId-000000000003`.
    pub shard_id: String,
    /// The shard it was split from, or the two it was merged from (none for an
    /// original shard).
    pub parent_shard_ids: Vec<String>,
    /// First hash key of its range (a decimal 128-bit number).
    pub starting_hash_key: String,
    /// Last hash key of its range.
    pub ending_hash_key: String,
    /// Sequence number of its first record.
    pub starting_sequence_number: String,
    /// Sequence number of its last record, once the shard is closed (split or
    /// merged); `None` while it is open.
    pub ending_sequence_number: Option<String>,
}

impl ShardInfo {
    /// Whether the shard was closed by a split or merge (it gets no new records).
    pub fn is_closed(&self) -> bool {
        self.ending_sequence_number.is_some()
    }
}

/// A child of a closed shard, as GetRecords lists it at the shard's end.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ChildShard {
    /// The child's shard id.
    pub shard_id: String,
    /// All its parents (two for a merge).
    pub parent_shard_ids: Vec<String>,
    /// First hash key of its range.
    pub starting_hash_key: String,
    /// Last hash key of its range.
    pub ending_hash_key: String,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn stream_ids() {
        let arn = StreamId::parse("arn:aws:kinesis:us-east-1:123456789012:stream/fortisiem");
        assert!(matches!(arn, StreamId::Arn(_)));
        assert_eq!(arn.name(), "fortisiem");
        let name = StreamId::parse("fortisiem");
        assert_eq!(name, StreamId::Name("fortisiem".into()));
        assert_eq!(name.name(), "fortisiem");
        assert_eq!(name.to_string(), "fortisiem");
    }
}
