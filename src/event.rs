//! The log event: what one CloudWatch Logs log event (or one plain-text record)
//! becomes after decoding, shared by the classifier, the formatters and the sink.
//!
//! Events borrow from the decoder's reused buffers: nothing is copied unless the
//! JSON envelope held escapes that had to be undone.

use std::borrow::Cow;
use std::fmt;

/// The CloudWatch Logs envelope fields every event of one payload shares.
///
/// All of them are absent for a record that was not an envelope.
#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub struct Origin<'a> {
    /// AWS account that owns the log group (`owner`).
    pub owner: Option<Cow<'a, str>>,
    /// `logGroup`, e.g. `CloudTrail/DefaultLogGroup`.
    pub log_group: Option<Cow<'a, str>>,
    /// `logStream`, e.g. `eni-054c755e644dcf32d-all`.
    pub log_stream: Option<Cow<'a, str>>,
}

/// What kind of log line an event carries.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Class {
    /// An Amazon VPC flow log record.
    VpcFlow,
    /// An AWS CloudTrail record (management, data or Insights event).
    CloudTrail,
    /// Anything else: Lambda, Route 53 resolver, API Gateway, plain text.
    Other,
}

impl Class {
    /// Every class, in a fixed order (for counters and reports).
    pub const ALL: [Class; 3] = [Class::VpcFlow, Class::CloudTrail, Class::Other];

    /// The name used in JSON output, metrics and config.
    pub fn as_str(self) -> &'static str {
        match self {
            Class::VpcFlow => "vpc_flow",
            Class::CloudTrail => "cloudtrail",
            Class::Other => "other",
        }
    }

    /// Position in [`Class::ALL`], for array-indexed counters.
    pub fn index(self) -> usize {
        self as usize
    }
}

impl fmt::Display for Class {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// The outcome of classifying one message.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Classification {
    /// The class.
    pub class: Class,
    /// FortiSIEM event type for VPC flow records (`AWS_VPC_FLOW_ACCEPT`, ...).
    pub event_type: Option<&'static str>,
    /// Which configured VPC flow format matched (`None`: the default v2 format).
    pub vpc_format: Option<usize>,
}

impl Classification {
    /// The classification of a message nothing recognised.
    pub const OTHER: Classification = Classification {
        class: Class::Other,
        event_type: None,
        vpc_format: None,
    };
}

/// One log event, ready to be formatted.
#[derive(Debug, Clone)]
pub struct Event<'a> {
    /// The envelope it came from (empty for plain records).
    pub origin: &'a Origin<'a>,
    /// The log event id (a 56-digit string from AWS; moto sends a number).
    pub id: Option<Cow<'a, str>>,
    /// Milliseconds since the Unix epoch: the log event's own `timestamp`, or for a
    /// plain record its Kinesis arrival time.
    pub timestamp_ms: i64,
    /// The log line, verbatim.
    pub message: Cow<'a, str>,
    /// Index of the KPL sub-record this event came from (`None`: not aggregated).
    pub subsequence: Option<u32>,
    /// What the classifier made of `message`.
    pub classification: Classification,
}
