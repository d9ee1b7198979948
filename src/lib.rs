//! kinesis-collector: reads AWS CloudTrail and VPC flow logs that CloudWatch Logs
//! subscriptions deliver into Kinesis Data Streams, and forwards every log event to
//! a SIEM as a `[FSM-AWSKinesis]`-tagged syslog line.
//!
//! The library does the work; `src/main.rs` is a thin binary around [`cli`].
//!
//! # Layout
//! - [`cli`]: command-line flags and subcommands (clap), dispatch to [`cmd`].
//! - [`cmd`]: one module per subcommand (`run`, `once`, `status`, `decode`,
//!   `check-config`).
//! - [`app`]: the running collector: config → leases → shard tasks → sink,
//!   supervision and the clean stop.
//! - [`shutdown`]: SIGTERM / SIGINT → the root cancellation token; a second
//!   signal exits at once.
//! - [`collector`]: the `[collector]`, `[[streams]]`, `[checkpoint]` and
//!   `[shutdown]` sections.
//! - [`pipeline`]: one shard's task: reader → decode → encode → sink, acks →
//!   watermark → checkpoints; dead letters.
//! - [`config`]: the TOML file, read into sections and validated with every problem
//!   listed; human units for durations and sizes.
//! - [`event`]: the log event every stage passes on, borrowing from reused buffers.
//! - [`decode`]: one Kinesis record's bytes → events: KPL de-aggregation, capped
//!   gunzip, the CloudWatch Logs envelope.
//! - [`classify`]: VPC flow (default and custom formats), CloudTrail, other.
//! - [`format`](mod@format): event bodies (`fsm`, `json`) and RFC 3339 timestamps.
//! - [`sink`]: syslog headers and framing, delivery over TCP/TLS/UDP/RELP/stdout
//!   with reconnects, a bounded queue and per-batch acknowledgements.
//! - [`telemetry`]: the counters and gauges the pipeline keeps, read by the exporters
//!   (Prometheus and health endpoints, CloudWatch PutMetricData), the falling-behind
//!   check, systemd notify.
//! - [`aws`]: SDK configuration from the standard chain (per-stream region and
//!   role), and SDK errors sorted into throttled / transient / fatal.
//! - [`kinesis`]: typed Kinesis API calls (ListShards, GetShardIterator,
//!   GetRecords, ...), the per-shard GetRecords reader.
//! - [`lease`]: KCL 2.x-compatible shard leases in DynamoDB: the lease model, the
//!   `LeaseStore` trait with DynamoDB and in-memory stores, balancing, the
//!   coordinator (take / renew / checkpoint / release) and shard sync.

pub mod app;
pub mod aws;
pub mod classify;
pub mod cli;
pub mod cmd;
pub mod collector;
pub mod config;
pub mod decode;
pub mod event;
pub mod format;
pub mod kinesis;
pub mod lease;
pub mod pipeline;
pub mod shutdown;
pub mod sink;
pub mod telemetry;
