//! Helpers shared by the integration tests.
#![allow(dead_code)]

pub mod rsyslog;

use std::borrow::Cow;
use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::{Duration, Instant};

use kinesis_collector::classify::Classifier;
use kinesis_collector::config::{Problems, Section};
use kinesis_collector::event::{Classification, Event, Origin};
use kinesis_collector::sink::{Batch, Encoder, SinkConfig, SinkHandle, StatusSnapshot};

/// The VPC flow line of the seed document.
pub const VPC_SEED: &str =
    "2 311111777194 eni-054c755e644dcf32d 22898 22717 6 1 40 1619538050 1619538102 REJECT OK";

/// A CloudTrail record as CloudWatch Logs carries it (one line of JSON).
pub const CLOUDTRAIL_SEED: &str = r#"{"eventVersion":"1.08","userIdentity":{"type":"AssumedRole","principalId":"AROAEXAMPLE:fsm","arn":"arn:aws:sts::311111777194:assumed-role/fsm/fsm","accountId":"311111777194"},"eventTime":"2021-04-28T14:29:51Z","eventSource":"kinesis.amazonaws.com","eventName":"GetRecords","awsRegion":"us-east-1","sourceIPAddress":"10.0.0.1","userAgent":"aws-sdk-java/1.11.0","requestParameters":{"shardIterator":"AAAA"},"responseElements":null,"eventID":"5d3b0b0a-1111-2222-3333-444444444444","readOnly":true,"eventType":"AwsApiCall","recipientAccountId":"311111777194"}"#;

/// Event time of the seed line: 2021-04-27T15:40:50.000Z.
pub const SEED_MS: i64 = 1_619_538_050_000;

/// Parses and validates a `[sink]` section.
pub fn sink_config(text: &str) -> SinkConfig {
    let config: SinkConfig = toml::from_str(text).unwrap();
    let mut problems = Problems::default();
    config.validate(&mut problems);
    assert!(problems.is_empty(), "invalid [sink]:\n{problems}");
    config
}

pub fn encoder(config: &SinkConfig) -> Encoder {
    Encoder::new(config, "collector-1", Arc::new(BTreeMap::new()))
}

/// Encodes `messages` as events of one batch.
pub fn batch_of(encoder: &mut Encoder, messages: &[&str]) -> Batch {
    batch_from(encoder, &Origin::default(), messages)
}

/// Encodes `messages` as events of one batch from `origin`.
pub fn batch_from(encoder: &mut Encoder, origin: &Origin<'_>, messages: &[&str]) -> Batch {
    let classifier = Classifier::default();
    let mut batch = Batch::default();
    for m in messages {
        let event = Event {
            origin,
            id: None,
            timestamp_ms: SEED_MS,
            message: Cow::Borrowed(m),
            subsequence: None,
            classification: Classification::OTHER,
        };
        encoder.encode(&event, &classifier, &mut batch);
    }
    batch
}

/// A numbered message about the size of a VPC flow line.
pub fn numbered(seq: u64) -> String {
    format!("seq={seq:08} 311111777194 eni-054c755e644dcf32d 10.0.0.1 10.0.0.2 443 49152 6 10 840 1619538050 1619538102 ACCEPT OK")
}

/// A batch of numbered messages `from..from + n`.
pub fn numbered_batch(encoder: &mut Encoder, from: u64, n: u64) -> Batch {
    let messages: Vec<String> = (from..from + n).map(numbered).collect();
    let refs: Vec<&str> = messages.iter().map(String::as_str).collect();
    batch_of(encoder, &refs)
}

/// The sequence numbers found in received lines.
pub fn seqs(lines: &[String]) -> std::collections::BTreeSet<u64> {
    lines
        .iter()
        .filter_map(|l| {
            let i = l.find("seq=")?;
            l.get(i + 4..i + 12)?.parse().ok()
        })
        .collect()
}

/// Waits (bounded) until the sink's status satisfies `cond`.
pub async fn wait_status(
    handle: &SinkHandle,
    timeout: Duration,
    what: &str,
    cond: impl Fn(&StatusSnapshot) -> bool,
) -> StatusSnapshot {
    let deadline = Instant::now() + timeout;
    loop {
        let status = handle.status();
        if cond(&status) {
            return status;
        }
        assert!(
            Instant::now() < deadline,
            "timed out after {timeout:?} waiting for {what}; status: {status:?}"
        );
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
}
