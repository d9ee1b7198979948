//! Event bodies: the `fsm` line FortiSIEM expects, or one JSON object per event.
//!
//! A body is written into a caller's buffer; syslog headers and framing are the
//! sink's business. In line-oriented output, LF and CR inside a message become the
//! two characters `\n` and `\r` (nothing else is escaped, so CloudTrail JSON reaches
//! the SIEM unchanged); octet-counted frames carry the message as it is.

pub mod timestamp;

use std::collections::BTreeMap;
use std::str::FromStr;
use std::sync::Arc;

use serde::{Deserialize, Serialize};

use crate::classify::{Classifier, Fields};
use crate::event::Event;
use timestamp::TimestampWriter;

/// The tag FortiSIEM's AWS Kinesis parser keys on.
pub const FSM_TAG: &[u8] = b" [FSM-AWSKinesis] ";

/// Which body to write for each event.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Deserialize, Serialize, clap::ValueEnum)]
#[serde(rename_all = "lowercase")]
pub enum BodyFormat {
    /// `<RFC 3339 UTC time> [FSM-AWSKinesis] <message>`.
    #[default]
    Fsm,
    /// One JSON object per event, with the classifier's parsed fields.
    Json,
}

impl FromStr for BodyFormat {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        match s {
            "fsm" => Ok(BodyFormat::Fsm),
            "json" => Ok(BodyFormat::Json),
            other => Err(format!("unknown format {other:?} (expected fsm or json)")),
        }
    }
}

/// Writes event bodies; keeps the timestamp cache between events.
#[derive(Debug, Clone, Default)]
pub struct Formatter {
    format: BodyFormat,
    timestamps: TimestampWriter,
    tags: Option<Arc<BTreeMap<String, String>>>,
}

impl Formatter {
    /// A formatter for `format`.
    pub fn new(format: BodyFormat) -> Formatter {
        Formatter {
            format,
            timestamps: TimestampWriter::default(),
            tags: None,
        }
    }

    /// Adds `tags` (e.g. a stream's tenant) to every JSON body as a `tags` object.
    pub fn with_tags(mut self, tags: Arc<BTreeMap<String, String>>) -> Formatter {
        self.tags = (!tags.is_empty()).then_some(tags);
        self
    }

    /// The body format.
    pub fn format(&self) -> BodyFormat {
        self.format
    }

    /// Appends the body of `event` to `out`. With `line_oriented`, LF and CR in the
    /// message are escaped so the body is one line.
    pub fn write_body(
        &mut self,
        event: &Event<'_>,
        classifier: &Classifier,
        line_oriented: bool,
        out: &mut Vec<u8>,
    ) {
        match self.format {
            BodyFormat::Fsm => self.write_fsm(event, line_oriented, out),
            BodyFormat::Json => self.write_json(event, classifier, out),
        }
    }

    /// Appends the event's timestamp (RFC 3339 UTC, three fractional digits).
    pub fn write_timestamp(&mut self, ms: i64, out: &mut Vec<u8>) {
        self.timestamps.write(ms, out);
    }

    fn write_fsm(&mut self, event: &Event<'_>, line_oriented: bool, out: &mut Vec<u8>) {
        self.timestamps.write(event.timestamp_ms, out);
        out.extend_from_slice(FSM_TAG);
        if line_oriented {
            escape_line_breaks(event.message.as_bytes(), out);
        } else {
            out.extend_from_slice(event.message.as_bytes());
        }
    }

    fn write_json(&mut self, event: &Event<'_>, classifier: &Classifier, out: &mut Vec<u8>) {
        let mut ts = Vec::with_capacity(24);
        self.timestamps.write(event.timestamp_ms, &mut ts);
        let c = &event.classification;
        let body = JsonEvent {
            timestamp: std::str::from_utf8(&ts).expect("ASCII"),
            class: c.class.as_str(),
            event_type: c.event_type,
            tags: self.tags.as_deref(),
            log_group: event.origin.log_group.as_deref(),
            log_stream: event.origin.log_stream.as_deref(),
            owner: event.origin.owner.as_deref(),
            id: event.id.as_deref(),
            message: &event.message,
            fields: classifier.fields(&event.message, c),
        };
        serde_json::to_writer(&mut *out, &body).expect("writing to a Vec cannot fail");
    }
}

#[derive(Serialize)]
struct JsonEvent<'a> {
    timestamp: &'a str,
    class: &'static str,
    #[serde(skip_serializing_if = "Option::is_none")]
    event_type: Option<&'static str>,
    /// The stream's tags (tenant, organization), when it has any.
    #[serde(skip_serializing_if = "Option::is_none")]
    tags: Option<&'a BTreeMap<String, String>>,
    log_group: Option<&'a str>,
    log_stream: Option<&'a str>,
    owner: Option<&'a str>,
    id: Option<&'a str>,
    message: &'a str,
    #[serde(skip_serializing_if = "Option::is_none")]
    fields: Option<Fields<'a>>,
}

/// Appends `msg` with LF written as `\n` and CR as `\r`.
pub fn escape_line_breaks(msg: &[u8], out: &mut Vec<u8>) {
    let mut rest = msg;
    while let Some(i) = memchr::memchr2(b'\n', b'\r', rest) {
        out.extend_from_slice(&rest[..i]);
        out.extend_from_slice(if rest[i] == b'\n' { b"\\n" } else { b"\\r" });
        rest = &rest[i + 1..];
    }
    out.extend_from_slice(rest);
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::event::{Classification, Origin};
    use std::borrow::Cow;

    fn event<'a>(origin: &'a Origin<'a>, message: &'a str, classifier: &Classifier) -> Event<'a> {
        Event {
            origin,
            id: Some(Cow::Borrowed("36")),
            timestamp_ms: 1_619_538_050_000,
            message: Cow::Borrowed(message),
            subsequence: None,
            classification: classifier
                .for_group(origin.log_group.as_deref())
                .classify(message),
        }
    }

    #[test]
    fn fsm_line_matches_the_seed_sample() {
        let c = Classifier::default();
        let origin = Origin::default();
        let msg = "2 311111777194 eni-054c755e644dcf32d 22898 22717 6 1 40 1619538050 1619538102 REJECT OK";
        let mut out = Vec::new();
        Formatter::new(BodyFormat::Fsm).write_body(&event(&origin, msg, &c), &c, true, &mut out);
        assert_eq!(
            String::from_utf8(out).unwrap(),
            format!("2021-04-27T15:40:50.000Z [FSM-AWSKinesis] {msg}")
        );
    }

    #[test]
    fn line_breaks_are_escaped_only_when_line_oriented() {
        let c = Classifier::default();
        let origin = Origin::default();
        let msg = "a\nb\r\nc \\n";
        let mut f = Formatter::new(BodyFormat::Fsm);
        let mut line = Vec::new();
        f.write_body(&event(&origin, msg, &c), &c, true, &mut line);
        assert!(
            line.ends_with(br"] a\nb\r\nc \n"),
            "{}",
            String::from_utf8_lossy(&line)
        );
        let mut framed = Vec::new();
        f.write_body(&event(&origin, msg, &c), &c, false, &mut framed);
        assert!(framed.ends_with(b"] a\nb\r\nc \\n"));
    }

    #[test]
    fn json_carries_origin_class_and_fields() {
        let c = Classifier::default();
        let origin = Origin {
            owner: Some(Cow::Borrowed("311111777194")),
            log_group: Some(Cow::Borrowed("vpc-flow")),
            log_stream: Some(Cow::Borrowed("eni-1")),
        };
        let msg = "2 311111777194 eni-054c755e644dcf32d 10.0.0.1 10.0.0.2 22898 22717 6 1 40 1619538050 1619538102 REJECT OK";
        let mut out = Vec::new();
        Formatter::new(BodyFormat::Json).write_body(&event(&origin, msg, &c), &c, true, &mut out);
        let v: serde_json::Value = serde_json::from_slice(&out).unwrap();
        assert_eq!(v["timestamp"], "2021-04-27T15:40:50.000Z");
        assert_eq!(v["class"], "vpc_flow");
        assert_eq!(v["event_type"], "AWS_VPC_FLOW_REJECT");
        assert_eq!(v["log_group"], "vpc-flow");
        assert_eq!(v["owner"], "311111777194");
        assert_eq!(v["id"], "36");
        assert_eq!(v["message"], msg);
        assert_eq!(v["fields"]["dstport"], 22717);
        assert_eq!(v["fields"]["account_id"], "311111777194");
        assert!(!out.contains(&b'\n'));
        let _ = Classification::OTHER;
    }
}
