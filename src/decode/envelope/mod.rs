//! The CloudWatch Logs subscription envelope, parsed leniently: unknown fields
//! (`policyLevel`, ...) are ignored, `id` may be a string (AWS) or a number (moto),
//! and strings borrow from the decompressed payload unless they held escapes.
//!
//! Reference: <https://docs.aws.amazon.com/AmazonCloudWatch/latest/logs/SubscriptionFilters.html>.

mod fast;

use std::borrow::Cow;
use std::fmt;

use serde::de::{self, Deserializer, Visitor};
use serde::Deserialize;

/// `messageType` of the messages CloudWatch Logs sends to check the destination.
pub const CONTROL_MESSAGE: &str = "CONTROL_MESSAGE";

/// One subscription payload.
#[derive(Debug, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Envelope<'a> {
    /// `DATA_MESSAGE` or `CONTROL_MESSAGE`.
    #[serde(borrow, default)]
    pub message_type: Option<Cow<'a, str>>,
    /// The AWS account id of the log data's owner.
    #[serde(borrow, default)]
    pub owner: Option<Cow<'a, str>>,
    /// The log group name.
    #[serde(borrow, default)]
    pub log_group: Option<Cow<'a, str>>,
    /// The log stream name.
    #[serde(borrow, default)]
    pub log_stream: Option<Cow<'a, str>>,
    /// The log events.
    #[serde(borrow, default)]
    pub log_events: Option<Vec<LogEvent<'a>>>,
}

/// One element of `logEvents`.
#[derive(Debug, PartialEq, Eq, Deserialize)]
pub struct LogEvent<'a> {
    /// The event id: a string of digits from AWS, a number from moto.
    #[serde(borrow, default, deserialize_with = "string_or_number")]
    pub id: Option<Cow<'a, str>>,
    /// Milliseconds since the epoch.
    #[serde(deserialize_with = "millis")]
    pub timestamp: i64,
    /// The log line.
    #[serde(borrow)]
    pub message: Cow<'a, str>,
}

impl Envelope<'_> {
    /// True for a CloudWatch Logs `CONTROL_MESSAGE`.
    pub fn is_control(&self) -> bool {
        self.message_type.as_deref() == Some(CONTROL_MESSAGE)
    }

    /// True when the object had the shape of an envelope at all.
    pub fn is_envelope(&self) -> bool {
        self.message_type.is_some() || self.log_events.is_some()
    }
}

/// Parses `text` as an envelope. A payload exactly as CloudWatch Logs writes it
/// takes a strict hand-written path (`fast`); anything else is parsed by sonic-rs
/// (SIMD; on these payloads about twice as fast as serde_json), with the same result.
pub fn parse(text: &str) -> Result<Envelope<'_>, sonic_rs::Error> {
    match fast::parse(text) {
        Some(envelope) => Ok(envelope),
        None => parse_generic(text),
    }
}

/// The general parse: any valid JSON object, leniently.
pub fn parse_generic(text: &str) -> Result<Envelope<'_>, sonic_rs::Error> {
    sonic_rs::from_str(text)
}

/// The strict fast path alone: `Some` only for a payload in the exact shape
/// CloudWatch Logs writes, and then equal to [`parse_generic`]'s result (exposed
/// for the differential fuzz target).
pub fn parse_fast(text: &str) -> Option<Envelope<'_>> {
    fast::parse(text)
}

/// True when text that failed to parse was meant to be an envelope (so the failure
/// is an error, not a record from another producer).
pub fn looks_like_envelope(text: &str) -> bool {
    text.trim_start().starts_with('{')
        && (text.contains("\"messageType\"") || text.contains("\"logEvents\""))
}

fn string_or_number<'de: 'a, 'a, D: Deserializer<'de>>(
    d: D,
) -> Result<Option<Cow<'a, str>>, D::Error> {
    struct V;
    impl<'de> Visitor<'de> for V {
        type Value = Option<Cow<'de, str>>;
        fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
            f.write_str("a string or a number")
        }
        fn visit_borrowed_str<E: de::Error>(self, v: &'de str) -> Result<Self::Value, E> {
            Ok(Some(Cow::Borrowed(v)))
        }
        fn visit_str<E: de::Error>(self, v: &str) -> Result<Self::Value, E> {
            Ok(Some(Cow::Owned(v.to_owned())))
        }
        fn visit_u64<E: de::Error>(self, v: u64) -> Result<Self::Value, E> {
            Ok(Some(Cow::Owned(v.to_string())))
        }
        fn visit_i64<E: de::Error>(self, v: i64) -> Result<Self::Value, E> {
            Ok(Some(Cow::Owned(v.to_string())))
        }
        fn visit_f64<E: de::Error>(self, v: f64) -> Result<Self::Value, E> {
            Ok(Some(Cow::Owned(v.to_string())))
        }
        fn visit_unit<E: de::Error>(self) -> Result<Self::Value, E> {
            Ok(None)
        }
    }
    d.deserialize_any(V)
}

fn millis<'de, D: Deserializer<'de>>(d: D) -> Result<i64, D::Error> {
    struct V;
    impl Visitor<'_> for V {
        type Value = i64;
        fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
            f.write_str("milliseconds since the epoch")
        }
        fn visit_i64<E: de::Error>(self, v: i64) -> Result<i64, E> {
            Ok(v)
        }
        fn visit_u64<E: de::Error>(self, v: u64) -> Result<i64, E> {
            i64::try_from(v).map_err(|_| E::custom(format!("timestamp {v} out of range")))
        }
        fn visit_f64<E: de::Error>(self, v: f64) -> Result<i64, E> {
            if v.is_finite() && v.abs() < 9.2e18 {
                Ok(v as i64)
            } else {
                Err(E::custom(format!("timestamp {v} out of range")))
            }
        }
    }
    d.deserialize_any(V)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn borrows_plain_strings_and_reads_both_id_kinds() {
        let text = r#"{"messageType":"DATA_MESSAGE","owner":"123456789012","logGroup":"g",
            "logStream":"s","subscriptionFilters":["f"],"policyLevel":"ACCOUNT_LEVEL_POLICY",
            "logEvents":[{"id":"3595","timestamp":1619538050000,"message":"a b"},
                         {"id":7,"timestamp":1.6e12,"message":"q\"x"}]}"#;
        let env = parse(text).unwrap();
        assert!(env.is_envelope() && !env.is_control());
        let events = env.log_events.unwrap();
        assert!(matches!(events[0].message, Cow::Borrowed("a b")));
        assert!(matches!(events[0].id, Some(Cow::Borrowed("3595"))));
        assert_eq!(events[1].id.as_deref(), Some("7"));
        assert_eq!(events[1].message, "q\"x");
        assert_eq!(events[1].timestamp, 1_600_000_000_000);
    }

    #[test]
    fn rejects_truncated_and_mistyped_envelopes() {
        let text = r#"{"messageType":"DATA_MESSAGE","logEvents":[{"id":"1","timestamp":1,"message":"x"}]}"#;
        for cut in [10, 40, text.len() - 1] {
            assert!(parse(&text[..cut]).is_err(), "{}", &text[..cut]);
        }
        assert!(parse(r#"{"logEvents":[{"id":"1","timestamp":"soon","message":"x"}]}"#).is_err());
        assert!(parse(r#"{"logEvents":[{"id":"1","timestamp":1}]}"#).is_err());
    }

    #[test]
    fn recognises_what_was_meant_to_be_an_envelope() {
        assert!(looks_like_envelope(r#" {"messageType":"DATA_MES"#));
        assert!(!looks_like_envelope(r#"{"eventVersion":"1.08"}"#));
        assert!(!looks_like_envelope("plain text"));
    }
}
