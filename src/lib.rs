//! kinesis-collector: reads AWS CloudTrail and VPC flow logs that CloudWatch Logs
//! subscriptions deliver into Kinesis Data Streams, and forwards every log event to
//! a SIEM as a `[FSM-AWSKinesis]`-tagged syslog line.
//!
//! The library does the work; `src/main.rs` is a thin binary around [`cli`].
//!
//! # Layout
//! - [`checkpoint`]: acknowledged positions → the contiguous watermark to checkpoint.
//! - [`cli`]: command-line flags and subcommands (clap), dispatch to [`cmd`].
//! - [`cmd`]: one module per subcommand (`decode`, `check-config`).
//! - [`config`]: the TOML file, read into sections and validated with every problem
//!   listed; human units for durations and sizes.
//! - [`event`]: the log event every stage passes on, borrowing from reused buffers.
//! - [`decode`]: one Kinesis record's bytes → events: KPL de-aggregation, capped
//!   gunzip, the CloudWatch Logs envelope.
//! - [`classify`]: VPC flow (default and custom formats), CloudTrail, other.
//! - [`format`]: event bodies (`fsm`, `json`) and RFC 3339 timestamps.
//! - [`sink`]: syslog headers and framing, delivery over TCP/TLS/UDP/RELP/stdout
//!   with reconnects, a bounded queue and per-batch acknowledgements.

pub mod checkpoint;
pub mod classify;
pub mod cli;
pub mod cmd;
pub mod config;
pub mod decode;
pub mod event;
pub mod format;
pub mod sink;
