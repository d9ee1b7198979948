//! The daemon's own sections: `[collector]` (application and worker id),
//! `[[streams]]` (what to read, where, from which position), `[checkpoint]` and
//! `[shutdown]`, and the checks that only `run` needs (an application, at least one
//! stream).

use std::collections::BTreeMap;
use std::time::{Duration, SystemTime};

use serde::Deserialize;

use crate::config::{units, Config, Problems, Section};
use crate::kinesis::reader::ReaderConfig;
use crate::kinesis::StreamId;
use crate::lease::Checkpoint;

/// `[collector]` section.
#[derive(Debug, Clone, Default, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct CollectorConfig {
    /// The application name: the DynamoDB lease table's name and the worker group
    /// (instances with the same application share the shards). When replacing a
    /// KCL consumer, its application name keeps its checkpoints. Required by `run`.
    #[serde(default)]
    pub application: String,
    /// This instance's name in the lease table (`leaseOwner`). Default: the host
    /// name and a short random suffix.
    #[serde(default)]
    pub worker_id: Option<String>,
}

impl Section for CollectorConfig {
    const KEY: &'static str = "collector";

    fn validate(&self, problems: &mut Problems) {
        // DynamoDB table names: 3 to 255 of [a-zA-Z0-9_.-].
        let app = &self.application;
        if !app.is_empty()
            && (!(3..=255).contains(&app.len())
                || !app
                    .bytes()
                    .all(|b| b.is_ascii_alphanumeric() || b"_.-".contains(&b)))
        {
            problems.push(
                "collector.application",
                format!(
                    "{app:?} cannot name a DynamoDB table: use 3 to 255 of a-z, A-Z, 0-9, _ . -"
                ),
            );
        }
        if self.worker_id.as_deref().is_some_and(str::is_empty) {
            problems.push(
                "collector.worker_id",
                "is empty: leave it unset for the default",
            );
        }
    }
}

/// Where a shard without a checkpoint starts.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum StartPosition {
    /// The oldest record the stream keeps.
    #[default]
    TrimHorizon,
    /// Only records written from now on.
    Latest,
    /// Records written from `start_timestamp` on.
    AtTimestamp,
}

impl StartPosition {
    /// The checkpoint a new lease starts at.
    pub fn checkpoint(self) -> Checkpoint {
        match self {
            StartPosition::TrimHorizon => Checkpoint::TrimHorizon,
            StartPosition::Latest => Checkpoint::Latest,
            StartPosition::AtTimestamp => Checkpoint::AtTimestamp,
        }
    }
}

/// A stream's overrides of the `[reader]` defaults.
#[derive(Debug, Clone, Default, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ReaderOverrides {
    /// As `reader.poll_interval`, for this stream.
    #[serde(default, deserialize_with = "optional_duration")]
    pub poll_interval: Option<Duration>,
    /// As `reader.max_records`, for this stream.
    #[serde(default)]
    pub max_records: Option<u32>,
    /// As `reader.target_batch_size`, for this stream.
    #[serde(default, deserialize_with = "optional_byte_size")]
    pub target_batch_size: Option<u64>,
}

fn optional_duration<'de, D: serde::Deserializer<'de>>(d: D) -> Result<Option<Duration>, D::Error> {
    units::duration(d).map(Some)
}

fn optional_byte_size<'de, D: serde::Deserializer<'de>>(d: D) -> Result<Option<u64>, D::Error> {
    units::byte_size(d).map(Some)
}

/// One `[[streams]]` entry.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct StreamConfig {
    /// The stream's name, or its ARN (`arn:aws:kinesis:REGION:ACCOUNT:stream/NAME`)
    /// for a stream in another account.
    pub name: String,
    /// Regions to read the stream in, e.g. `["us-east-1", "us-west-2"]`. Default:
    /// the ARN's region, else the standard chain's (`AWS_REGION`, the profile).
    #[serde(default)]
    pub regions: Vec<String>,
    /// Where a shard without a checkpoint starts: `trim_horizon` (default),
    /// `latest` or `at_timestamp`.
    #[serde(default)]
    pub start_position: StartPosition,
    /// With `at_timestamp`: the RFC 3339 time to start from, e.g.
    /// `"2024-05-01T00:00:00Z"`.
    #[serde(default)]
    pub start_timestamp: Option<String>,
    /// A role to assume (sts:AssumeRole) to read this stream, e.g. in another
    /// account. The lease table stays in the collector's own account.
    #[serde(default)]
    pub role_arn: Option<String>,
    /// With `role_arn`: the external id the role's trust policy requires
    /// (`sts:ExternalId`), as another account's owner may ask of third parties.
    #[serde(default)]
    pub external_id: Option<String>,
    /// Labels added to this stream's events (RFC 5424 structured data, JSON).
    #[serde(default)]
    pub tags: BTreeMap<String, String>,
    /// Overrides of the `[reader]` defaults for this stream.
    #[serde(default)]
    pub reader: ReaderOverrides,
}

impl StreamConfig {
    /// The stream as the API names it.
    pub fn stream_id(&self) -> StreamId {
        StreamId::parse(&self.name)
    }

    /// The regions to read in; `None` stands for the standard chain's region.
    pub fn target_regions(&self) -> Vec<Option<String>> {
        if !self.regions.is_empty() {
            return self.regions.iter().cloned().map(Some).collect();
        }
        vec![arn_region(&self.name).map(str::to_owned)]
    }

    /// The configured start time (for `at_timestamp`), if valid.
    pub fn start_time(&self) -> Option<SystemTime> {
        self.start_timestamp
            .as_deref()
            .and_then(|t| humantime::parse_rfc3339_weak(t).ok())
    }

    /// The `[reader]` settings for this stream: the defaults with its overrides.
    pub fn reader(&self, defaults: &ReaderConfig) -> ReaderConfig {
        let mut reader = defaults.clone();
        if let Some(v) = self.reader.poll_interval {
            reader.poll_interval = v;
        }
        if let Some(v) = self.reader.max_records {
            reader.max_records = v;
        }
        if let Some(v) = self.reader.target_batch_size {
            reader.target_batch_size = v;
        }
        reader
    }
}

/// The region of a stream ARN.
fn arn_region(name: &str) -> Option<&str> {
    name.strip_prefix("arn:")?
        .split(':')
        .nth(2)
        .filter(|r| !r.is_empty())
}

/// `[[streams]]`: every stream to read.
#[derive(Debug, Clone, Default, PartialEq, Eq, Deserialize)]
#[serde(transparent)]
pub struct Streams(pub Vec<StreamConfig>);

impl Section for Streams {
    const KEY: &'static str = "streams";

    fn validate(&self, problems: &mut Problems) {
        let mut seen = std::collections::HashSet::new();
        for (i, stream) in self.0.iter().enumerate() {
            let key = |k: &str| format!("streams[{i}].{k}");
            let id = stream.stream_id();
            if stream.name.is_empty() {
                problems.push(key("name"), "is empty: name a stream or give its ARN");
            } else if let StreamId::Arn(arn) = &id {
                let parts: Vec<&str> = arn.split(':').collect();
                if parts.len() != 6 || parts[2] != "kinesis" || !parts[5].starts_with("stream/") {
                    problems.push(
                        key("name"),
                        format!("{arn:?} is not a Kinesis stream ARN (arn:aws:kinesis:REGION:ACCOUNT:stream/NAME)"),
                    );
                } else if let Some(region) = arn_region(arn) {
                    if stream.regions.iter().any(|r| r != region) {
                        problems.push(
                            key("regions"),
                            format!("the ARN names region {region}; list only it (or no regions)"),
                        );
                    }
                }
            }
            for region in &stream.regions {
                if region.is_empty()
                    || !region
                        .bytes()
                        .all(|b| b.is_ascii_alphanumeric() || b == b'-')
                {
                    problems.push(key("regions"), format!("{region:?} is not a region name"));
                }
                if !seen.insert((id.name().to_owned(), region.clone())) {
                    problems.push(
                        key("regions"),
                        format!("stream {} in {region} is listed twice", id.name()),
                    );
                }
            }
            match (&stream.start_position, &stream.start_timestamp) {
                (StartPosition::AtTimestamp, None) => problems.push(
                    key("start_timestamp"),
                    "start_position = \"at_timestamp\" needs a start_timestamp (RFC 3339, e.g. \"2024-05-01T00:00:00Z\")",
                ),
                (_, Some(t)) if humantime::parse_rfc3339_weak(t).is_err() => problems.push(
                    key("start_timestamp"),
                    format!("{t:?} is not an RFC 3339 time such as \"2024-05-01T00:00:00Z\""),
                ),
                (StartPosition::TrimHorizon | StartPosition::Latest, Some(_)) => problems.push(
                    key("start_timestamp"),
                    "is only used with start_position = \"at_timestamp\"",
                ),
                _ => {}
            }
            if stream
                .role_arn
                .as_deref()
                .is_some_and(|r| !r.starts_with("arn:"))
            {
                problems.push(
                    key("role_arn"),
                    "is not a role ARN (arn:aws:iam::ACCOUNT:role/NAME)",
                );
            }
            match (&stream.external_id, &stream.role_arn) {
                (Some(_), None) => problems.push(
                    key("external_id"),
                    "is only used with role_arn (it is passed when assuming the role)",
                ),
                (Some(id), Some(_)) if !valid_external_id(id) => problems.push(
                    key("external_id"),
                    format!(
                        "{id:?} is not an STS external id: 2 to 1224 characters of \
                         letters, digits and +=,.@:/-"
                    ),
                ),
                _ => {}
            }
            let mut reader_problems = Problems::default();
            stream
                .reader(&ReaderConfig::default())
                .validate(&mut reader_problems);
            for p in reader_problems.iter() {
                let sub = p.key.strip_prefix("reader.").unwrap_or(&p.key);
                problems.push(key(&format!("reader.{sub}")), p.message.clone());
            }
        }
    }
}

/// `[checkpoint]` section.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct CheckpointConfig {
    /// How often each shard's acknowledged position is written to the lease
    /// table (also at a shard's end and at shutdown). 100ms to 10m; default `"5s"`.
    #[serde(default = "default_interval", deserialize_with = "units::duration")]
    pub interval: Duration,
}

fn default_interval() -> Duration {
    Duration::from_secs(5)
}

impl Default for CheckpointConfig {
    fn default() -> Self {
        CheckpointConfig {
            interval: default_interval(),
        }
    }
}

impl Section for CheckpointConfig {
    const KEY: &'static str = "checkpoint";

    fn validate(&self, problems: &mut Problems) {
        if !(Duration::from_millis(100)..=Duration::from_secs(600)).contains(&self.interval) {
            problems.push(
                "checkpoint.interval",
                format!(
                    "{} is out of range: use 100ms to 10m",
                    humantime::format_duration(self.interval)
                ),
            );
        }
    }
}

/// `[shutdown]` section.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ShutdownConfig {
    /// On SIGTERM / SIGINT: how long to wait for the SIEM to acknowledge what was
    /// sent before the final checkpoints and the lease release. Keep it below
    /// systemd's `TimeoutStopSec` and Kubernetes' `terminationGracePeriodSeconds`.
    /// 0s to 1h; default `"30s"`.
    #[serde(default = "default_drain", deserialize_with = "units::duration")]
    pub drain_timeout: Duration,
}

fn default_drain() -> Duration {
    Duration::from_secs(30)
}

impl Default for ShutdownConfig {
    fn default() -> Self {
        ShutdownConfig {
            drain_timeout: default_drain(),
        }
    }
}

impl Section for ShutdownConfig {
    const KEY: &'static str = "shutdown";

    fn validate(&self, problems: &mut Problems) {
        if self.drain_timeout > Duration::from_secs(3600) {
            problems.push(
                "shutdown.drain_timeout",
                format!(
                    "{} is out of range: use 0s to 1h",
                    humantime::format_duration(self.drain_timeout)
                ),
            );
        }
    }
}

/// What `run` needs beyond a valid file: an application and at least one stream.
pub fn run_problems(config: &Config) -> Problems {
    let mut problems = Problems::default();
    if config.collector.application.is_empty() {
        problems.push(
            "collector.application",
            "is required by `run`: it names the lease table, e.g. application = \"fortisiem\"",
        );
    }
    if config.streams.0.is_empty() {
        problems.push(
            "streams",
            "`run` needs at least one [[streams]] entry, e.g. [[streams]] name = \"fortisiem\"",
        );
    }
    problems
}

/// Whether `id` is an STS external id: 2 to 1224 characters of `[\w+=,.@:/-]`.
fn valid_external_id(id: &str) -> bool {
    (2..=1224).contains(&id.len())
        && id
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || "_+=,.@:/-".contains(c))
}

#[cfg(test)]
mod tests {
    use super::*;

    const EXAMPLE: &str = r#"
[collector]
application = "fortisiem"
[[streams]]
name = "fortisiem"
regions = ["us-east-1", "us-west-2"]
start_position = "trim_horizon"
tags = { tenant = "acme" }
reader = { poll_interval = "500ms", max_records = 500 }
[[streams]]
name = "arn:aws:kinesis:eu-west-1:123456789012:stream/other"
start_position = "at_timestamp"
start_timestamp = "2024-05-01T00:00:00Z"
role_arn = "arn:aws:iam::123456789012:role/reader"
external_id = "fortisiem-7f3a"
[checkpoint]
interval = "2s"
[shutdown]
drain_timeout = "10s"
"#;

    #[test]
    fn streams_and_their_defaults() {
        let config = Config::from_toml(EXAMPLE).unwrap();
        assert!(run_problems(&config).is_empty());
        assert_eq!(config.collector.application, "fortisiem");
        let [a, b] = &config.streams.0[..] else {
            panic!("{:?}", config.streams)
        };
        assert_eq!(
            a.target_regions(),
            [Some("us-east-1".into()), Some("us-west-2".into())]
        );
        let reader = a.reader(&config.reader);
        assert_eq!(reader.poll_interval, Duration::from_millis(500));
        assert_eq!(reader.max_records, 500);
        assert_eq!(reader.target_batch_size, config.reader.target_batch_size);
        assert_eq!(a.tags["tenant"], "acme");
        assert_eq!(b.target_regions(), [Some("eu-west-1".into())]);
        assert_eq!(b.stream_id().name(), "other");
        assert_eq!(
            b.start_time(),
            Some(SystemTime::UNIX_EPOCH + Duration::from_secs(1_714_521_600))
        );
        assert_eq!(b.start_position.checkpoint(), Checkpoint::AtTimestamp);
        assert_eq!(b.external_id.as_deref(), Some("fortisiem-7f3a"));
        assert_eq!(config.checkpoint.interval, Duration::from_secs(2));
        assert_eq!(config.shutdown.drain_timeout, Duration::from_secs(10));
    }

    #[test]
    fn every_stream_problem_is_listed() {
        let problems = Config::from_toml(
            r#"
[collector]
application = "x"
[[streams]]
name = ""
start_position = "at_timestamp"
[[streams]]
name = "arn:aws:kinesis:eu-west-1:1:stream/s"
regions = ["us-east-1"]
start_timestamp = "yesterday"
reader = { poll_interval = "10ms" }
external_id = "no role"
[[streams]]
name = "third"
role_arn = "arn:aws:iam::123456789012:role/reader"
external_id = "has space"
"#,
        )
        .unwrap_err();
        let keys: Vec<&str> = problems.iter().map(|p| p.key.as_str()).collect();
        assert_eq!(
            keys,
            [
                "collector.application",
                "streams[0].name",
                "streams[0].start_timestamp",
                "streams[1].regions",
                "streams[1].start_timestamp",
                "streams[1].external_id",
                "streams[1].reader.poll_interval",
                "streams[2].external_id",
            ],
            "{problems}"
        );
    }

    #[test]
    fn run_needs_an_application_and_a_stream() {
        let problems = run_problems(&Config::default());
        let keys: Vec<&str> = problems.iter().map(|p| p.key.as_str()).collect();
        assert_eq!(keys, ["collector.application", "streams"], "{problems}");
    }
}
