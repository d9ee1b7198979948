//! One function per Kinesis API call, each with its API reference link, returning
//! the crate's own types and typed errors, so callers branch on what happened (an
//! expired iterator, a throttle, a deleted stream) instead of parsing messages.
//!
//! The SDK retries transient failures itself (standard retry mode); what reaches
//! the caller has been classified with [`crate::aws::classify`].

use std::time::SystemTime;

use aws_sdk_kinesis::error::{ProvideErrorMetadata, SdkError};
use aws_sdk_kinesis::types::{self as sdk, ShardFilterType, ShardIteratorType};
use aws_sdk_kinesis::Client;
use aws_smithy_runtime_api::client::orchestrator::HttpResponse;
use aws_smithy_types::DateTime;

use super::{ChildShard, Record, ShardInfo, StreamId};
use crate::aws::{AwsError, ErrorClass};

/// Most records one GetRecords call may ask for.
pub const MAX_GET_RECORDS_LIMIT: i32 = 10_000;

/// A failed Kinesis call other than GetRecords.
#[derive(Debug, thiserror::Error)]
pub enum ApiError {
    /// The stream (or shard) does not exist, or is being deleted.
    #[error("not found: {0}")]
    ResourceNotFound(#[source] AwsError),
    /// Over the call-rate limit: back off.
    #[error(transparent)]
    Throttled(AwsError),
    /// A network problem, timeout or server failure: retry.
    #[error(transparent)]
    Transient(AwsError),
    /// Retrying will not help (permissions, a bad argument).
    #[error(transparent)]
    Fatal(AwsError),
}

impl ApiError {
    fn new<E>(operation: &'static str, err: &SdkError<E, HttpResponse>) -> ApiError
    where
        E: ProvideErrorMetadata + std::error::Error + 'static,
    {
        let err = AwsError::new(operation, err);
        match (err.code.as_deref(), err.class) {
            (Some("ResourceNotFoundException"), _) => ApiError::ResourceNotFound(err),
            (_, ErrorClass::Throttled) => ApiError::Throttled(err),
            (_, ErrorClass::Transient) => ApiError::Transient(err),
            (_, ErrorClass::Fatal) => ApiError::Fatal(err),
        }
    }

    /// The underlying error, for logs and metrics.
    pub fn aws(&self) -> &AwsError {
        match self {
            ApiError::ResourceNotFound(e)
            | ApiError::Throttled(e)
            | ApiError::Transient(e)
            | ApiError::Fatal(e) => e,
        }
    }
}

/// A failed GetRecords call, by what the shard reader does next.
#[derive(Debug, thiserror::Error)]
pub enum GetRecordsError {
    /// The iterator is older than 5 minutes: get a new one after the last record
    /// handed on.
    #[error("shard iterator expired: {0}")]
    ExpiredIterator(#[source] AwsError),
    /// Over the shard's read limits (5 calls/s, 2 MB/s) or a KMS throttle: back off
    /// with jitter.
    #[error(transparent)]
    Throttled(AwsError),
    /// The stream or shard is gone.
    #[error("not found: {0}")]
    ResourceNotFound(#[source] AwsError),
    /// A network problem, timeout or server failure: retry.
    #[error(transparent)]
    Transient(AwsError),
    /// Retrying will not help (permissions, KMS key disabled, a bad iterator).
    #[error(transparent)]
    Fatal(AwsError),
}

impl GetRecordsError {
    fn new<E>(err: &SdkError<E, HttpResponse>) -> GetRecordsError
    where
        E: ProvideErrorMetadata + std::error::Error + 'static,
    {
        let err = AwsError::new("GetRecords", err);
        match (err.code.as_deref(), err.class) {
            (Some("ExpiredIteratorException"), _) => GetRecordsError::ExpiredIterator(err),
            (Some("ResourceNotFoundException"), _) => GetRecordsError::ResourceNotFound(err),
            (_, ErrorClass::Throttled) => GetRecordsError::Throttled(err),
            (_, ErrorClass::Transient) => GetRecordsError::Transient(err),
            (_, ErrorClass::Fatal) => GetRecordsError::Fatal(err),
        }
    }
}

/// Which shards ListShards returns.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ShardFilter {
    /// Every shard whose data has not all expired (open and closed).
    AtTrimHorizon,
    /// Open shards only.
    AtLatest,
    /// Shards open at the time, and those opened after.
    AtTimestamp(SystemTime),
    /// Every shard, including those whose data has expired.
    FromTrimHorizon,
    /// Shards open at the time or later, including expired ones.
    FromTimestamp(SystemTime),
    /// Shards after this one, in shard-id order.
    AfterShardId(String),
}

impl ShardFilter {
    fn to_sdk(&self) -> sdk::ShardFilter {
        let builder = sdk::ShardFilter::builder();
        let builder = match self {
            ShardFilter::AtTrimHorizon => builder.r#type(ShardFilterType::AtTrimHorizon),
            ShardFilter::AtLatest => builder.r#type(ShardFilterType::AtLatest),
            ShardFilter::AtTimestamp(t) => builder
                .r#type(ShardFilterType::AtTimestamp)
                .timestamp(DateTime::from(*t)),
            ShardFilter::FromTrimHorizon => builder.r#type(ShardFilterType::FromTrimHorizon),
            ShardFilter::FromTimestamp(t) => builder
                .r#type(ShardFilterType::FromTimestamp)
                .timestamp(DateTime::from(*t)),
            ShardFilter::AfterShardId(id) => builder
                .r#type(ShardFilterType::AfterShardId)
                .shard_id(id.clone()),
        };
        builder
            .build()
            .expect("the shard filter type is always set")
    }
}

/// Lists the stream's shards, every page, optionally filtered.
///
/// <https://docs.aws.amazon.com/kinesis/latest/APIReference/API_ListShards.html>
pub async fn list_shards(
    client: &Client,
    stream: &StreamId,
    filter: Option<&ShardFilter>,
) -> Result<Vec<ShardInfo>, ApiError> {
    let mut restarted = false;
    'restart: loop {
        let mut shards = Vec::new();
        let mut next_token: Option<String> = None;
        loop {
            let request = match &next_token {
                // A page token names the stream and filter: it must come alone.
                Some(token) => client.list_shards().next_token(token),
                None => {
                    let (name, arn) = stream.name_and_arn();
                    client
                        .list_shards()
                        .set_stream_name(name)
                        .set_stream_arn(arn)
                        .set_shard_filter(filter.map(ShardFilter::to_sdk))
                }
            };
            let page = match request.send().await {
                Ok(page) => page,
                // Tokens live 300 s; a very slow listing starts over, once.
                Err(err) if err.code() == Some("ExpiredNextTokenException") && !restarted => {
                    restarted = true;
                    continue 'restart;
                }
                Err(err) => return Err(ApiError::new("ListShards", &err)),
            };
            shards.extend(page.shards().iter().map(shard_info));
            match page.next_token() {
                Some(token) if !token.is_empty() => next_token = Some(token.to_owned()),
                _ => return Ok(shards),
            }
        }
    }
}

fn shard_info(shard: &sdk::Shard) -> ShardInfo {
    let (starting_hash_key, ending_hash_key) = hash_range(shard.hash_key_range());
    let range = shard.sequence_number_range();
    ShardInfo {
        shard_id: shard.shard_id().to_owned(),
        parent_shard_ids: shard
            .parent_shard_id()
            .into_iter()
            .chain(shard.adjacent_parent_shard_id())
            .map(str::to_owned)
            .collect(),
        starting_hash_key,
        ending_hash_key,
        starting_sequence_number: range
            .map(|r| r.starting_sequence_number().to_owned())
            .unwrap_or_default(),
        ending_sequence_number: range
            .and_then(|r| r.ending_sequence_number())
            .map(str::to_owned),
    }
}

fn hash_range(range: Option<&sdk::HashKeyRange>) -> (String, String) {
    range.map_or_else(Default::default, |r| {
        (
            r.starting_hash_key().to_owned(),
            r.ending_hash_key().to_owned(),
        )
    })
}

/// What DescribeStreamSummary tells about a stream.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StreamSummary {
    /// The stream's name.
    pub name: String,
    /// The stream's ARN.
    pub arn: String,
    /// `CREATING`, `ACTIVE`, `UPDATING` or `DELETING`.
    pub status: String,
    /// When the stream was created: a stream deleted and created again under the
    /// same name has a new one, and so fresh leases.
    pub creation_time: SystemTime,
    /// Open shards now.
    pub open_shard_count: i32,
    /// How long records are kept.
    pub retention_period_hours: i32,
}

/// Describes a stream without listing its shards.
///
/// <https://docs.aws.amazon.com/kinesis/latest/APIReference/API_DescribeStreamSummary.html>
pub async fn describe_stream_summary(
    client: &Client,
    stream: &StreamId,
) -> Result<StreamSummary, ApiError> {
    let (name, arn) = stream.name_and_arn();
    let out = client
        .describe_stream_summary()
        .set_stream_name(name)
        .set_stream_arn(arn)
        .send()
        .await
        .map_err(|err| ApiError::new("DescribeStreamSummary", &err))?;
    let Some(summary) = out.stream_description_summary() else {
        // The API marks the summary as required; an answer without it is not one.
        return Err(ApiError::Transient(AwsError {
            operation: "DescribeStreamSummary",
            class: ErrorClass::Transient,
            code: None,
            message: "answer has no StreamDescriptionSummary".into(),
        }));
    };
    Ok(StreamSummary {
        name: summary.stream_name().to_owned(),
        arn: summary.stream_arn().to_owned(),
        status: summary.stream_status().as_str().to_owned(),
        creation_time: SystemTime::try_from(*summary.stream_creation_timestamp())
            .unwrap_or(SystemTime::UNIX_EPOCH),
        open_shard_count: summary.open_shard_count(),
        retention_period_hours: summary.retention_period_hours(),
    })
}

/// Where in a shard to start reading.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum StartingPosition {
    /// The oldest record still kept.
    TrimHorizon,
    /// Just after the newest record: only records written from now on.
    Latest,
    /// The first record written at or after this time.
    AtTimestamp(SystemTime),
    /// This record (to re-read the rest of a KPL aggregate).
    AtSequenceNumber(String),
    /// The record after this one (resuming after a checkpoint).
    AfterSequenceNumber(String),
}

/// Gets an iterator for reading `shard_id` from `position`.
///
/// <https://docs.aws.amazon.com/kinesis/latest/APIReference/API_GetShardIterator.html>
pub async fn get_shard_iterator(
    client: &Client,
    stream: &StreamId,
    shard_id: &str,
    position: &StartingPosition,
) -> Result<String, ApiError> {
    let (name, arn) = stream.name_and_arn();
    let request = client
        .get_shard_iterator()
        .set_stream_name(name)
        .set_stream_arn(arn)
        .shard_id(shard_id);
    let request = match position {
        StartingPosition::TrimHorizon => {
            request.shard_iterator_type(ShardIteratorType::TrimHorizon)
        }
        StartingPosition::Latest => request.shard_iterator_type(ShardIteratorType::Latest),
        StartingPosition::AtTimestamp(t) => request
            .shard_iterator_type(ShardIteratorType::AtTimestamp)
            .timestamp(DateTime::from(*t)),
        StartingPosition::AtSequenceNumber(seq) => request
            .shard_iterator_type(ShardIteratorType::AtSequenceNumber)
            .starting_sequence_number(seq),
        StartingPosition::AfterSequenceNumber(seq) => request
            .shard_iterator_type(ShardIteratorType::AfterSequenceNumber)
            .starting_sequence_number(seq),
    };
    let out = request
        .send()
        .await
        .map_err(|err| ApiError::new("GetShardIterator", &err))?;
    out.shard_iterator().map(str::to_owned).ok_or_else(|| {
        ApiError::Transient(AwsError {
            operation: "GetShardIterator",
            class: ErrorClass::Transient,
            code: None,
            message: format!("answer for shard {shard_id} has no ShardIterator"),
        })
    })
}

/// One GetRecords answer.
#[derive(Debug, Clone, Default)]
pub struct RecordBatch {
    /// The records, oldest first (possibly none even when more follow).
    pub records: Vec<Record>,
    /// Where to read next; `None` once a closed shard has been read to its end.
    pub next_iterator: Option<String>,
    /// How far the answer's last record is behind the stream's tip; 0 when
    /// caught up.
    pub millis_behind_latest: Option<i64>,
    /// At the end of a closed shard: its children.
    pub child_shards: Vec<ChildShard>,
}

impl RecordBatch {
    /// Whether the shard has been read to its end (it was split or merged).
    pub fn is_shard_end(&self) -> bool {
        self.next_iterator.is_none()
    }
}

/// Reads up to `limit` records (1 to 10 000) at `iterator`.
///
/// <https://docs.aws.amazon.com/kinesis/latest/APIReference/API_GetRecords.html>
pub async fn get_records(
    client: &Client,
    iterator: &str,
    limit: i32,
) -> Result<RecordBatch, GetRecordsError> {
    let out = client
        .get_records()
        .shard_iterator(iterator)
        .limit(limit.clamp(1, MAX_GET_RECORDS_LIMIT))
        .send()
        .await
        .map_err(|err| GetRecordsError::new(&err))?;
    let child_shards = out
        .child_shards()
        .iter()
        .map(|child| {
            let (starting_hash_key, ending_hash_key) = hash_range(child.hash_key_range());
            ChildShard {
                shard_id: child.shard_id().to_owned(),
                parent_shard_ids: child.parent_shards().to_vec(),
                starting_hash_key,
                ending_hash_key,
            }
        })
        .collect();
    let millis_behind_latest = out.millis_behind_latest();
    // An empty iterator is how some emulators say "none".
    let next_iterator = out
        .next_shard_iterator()
        .filter(|i| !i.is_empty())
        .map(str::to_owned);
    Ok(RecordBatch {
        records: out.records,
        next_iterator,
        millis_behind_latest,
        child_shards,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn shard_filters_map_to_the_api() {
        let f = ShardFilter::AfterShardId("shardId-000000000001".into()).to_sdk();
        assert_eq!(f.r#type(), &ShardFilterType::AfterShardId);
        assert_eq!(f.shard_id(), Some("shardId-000000000001"));
        let t = SystemTime::UNIX_EPOCH + std::time::Duration::from_secs(1_600_000_000);
        let f = ShardFilter::AtTimestamp(t).to_sdk();
        assert_eq!(f.timestamp().map(|d| d.secs()), Some(1_600_000_000));
    }

    #[test]
    fn shards_from_the_api() {
        let shard = sdk::Shard::builder()
            .shard_id("shardId-000000000003")
            .parent_shard_id("shardId-000000000001")
            .adjacent_parent_shard_id("shardId-000000000002")
            .hash_key_range(
                sdk::HashKeyRange::builder()
                    .starting_hash_key("0")
                    .ending_hash_key("99")
                    .build()
                    .unwrap(),
            )
            .sequence_number_range(
                sdk::SequenceNumberRange::builder()
                    .starting_sequence_number("100")
                    .build()
                    .unwrap(),
            )
            .build()
            .unwrap();
        let info = shard_info(&shard);
        assert_eq!(
            info.parent_shard_ids,
            ["shardId-000000000001", "shardId-000000000002"]
        );
        assert_eq!(
            (
                info.starting_hash_key.as_str(),
                info.ending_hash_key.as_str()
            ),
            ("0", "99")
        );
        assert!(!info.is_closed());
    }
}
