//! AWS CloudTrail records (management, data and Insights events), recognised by
//! their top-level keys, and the few fields the JSON output lifts out of them.
//!
//! Record contents: <https://docs.aws.amazon.com/awscloudtrail/latest/userguide/cloudtrail-event-reference-record-contents.html>;
//! Insights events: <https://docs.aws.amazon.com/awscloudtrail/latest/userguide/cloudtrail-insights-events-record-contents.html>.

use std::borrow::Cow;
use std::fmt;
use std::sync::LazyLock;

use memchr::memmem;
use serde::de::{self, Deserializer, Visitor};
use serde::{Deserialize, Serialize};

use super::json_scan::{Flow, Scanner, Value};

/// Every CloudTrail record has this key; messages without it are not parsed at all.
static EVENT_VERSION_KEY: LazyLock<memmem::Finder<'static>> =
    LazyLock::new(|| memmem::Finder::new(b"\"eventVersion\""));

/// True when `message` is a CloudTrail record: a JSON object whose top level has
///
/// - `eventVersion` `1.<digits>` (every version so far: 1.0 to 1.11),
/// - a non-empty `eventTime`, and
/// - non-empty `eventSource` and `eventName` — or, for an Insights event, which
///   has neither at the top level, `eventType` `AwsCloudTrailInsight` and an
///   `insightDetails` object naming them.
///
/// Cheap on the hot path, and never allocates: anything that does not start with
/// `{` or lacks the bytes `"eventVersion"` is rejected at once; otherwise the
/// object's top-level members are walked (`json_scan`), nested values skipped by
/// bracket depth, and the walk stops as soon as the keys above have been seen
/// (they come first in AWS's records, before the large request and response
/// elements). The rest of the object is therefore not validated: the message is
/// forwarded verbatim whatever its class.
pub fn is_cloudtrail(message: &str) -> bool {
    let bytes = message.as_bytes();
    let Some(first) = bytes.iter().position(|b| !b.is_ascii_whitespace()) else {
        return false;
    };
    if bytes[first] != b'{' || EVENT_VERSION_KEY.find(bytes).is_none() {
        return false;
    }
    let mut p = Probe::default();
    // A walk that ends early (malformed tail, or a value that disqualifies the
    // record) leaves the probe as far as it got.
    let _ = Scanner::new(bytes).members(|key, s| {
        let value = if key == b"insightDetails" && s.peek_byte() == Some(b'{') {
            p.insight_details = names_an_api(s)?;
            Value::Other
        } else {
            s.value()?
        };
        match (key, value) {
            (b"eventVersion", Value::Str(v)) => p.version = is_version_1(v),
            (b"eventTime", Value::Str(v)) => p.time = !v.is_empty(),
            (b"eventSource", Value::Str(v)) => p.source = !v.is_empty(),
            (b"eventName", Value::Str(v)) => p.name = !v.is_empty(),
            (b"eventType", Value::Str(v)) => p.insight = v == b"AwsCloudTrailInsight",
            (b"eventVersion" | b"eventTime" | b"eventSource" | b"eventName", _) => return None,
            _ => {}
        }
        if key == b"eventVersion" && !p.version {
            return None;
        }
        Some(if p.version && p.time && p.source && p.name {
            Flow::Stop
        } else {
            Flow::Continue
        })
    });
    p.is_record()
}

/// What the probe has seen so far.
#[derive(Debug, Default)]
struct Probe {
    version: bool,
    time: bool,
    source: bool,
    name: bool,
    insight: bool,
    insight_details: bool,
}

impl Probe {
    fn is_record(&self) -> bool {
        self.version
            && self.time
            && ((self.source && self.name) || (self.insight && self.insight_details))
    }
}

/// Walks an `insightDetails` object: true when it names the API (non-empty
/// `eventSource` and `eventName`).
fn names_an_api(s: &mut Scanner<'_>) -> Option<bool> {
    let (mut source, mut name) = (false, false);
    s.members(|key, s| {
        if let Value::Str(v) = s.value()? {
            match key {
                b"eventSource" => source = !v.is_empty(),
                b"eventName" => name = !v.is_empty(),
                _ => {}
            }
        }
        Some(Flow::Continue)
    })?;
    Some(source && name)
}

/// `1.` followed by digits.
fn is_version_1(v: &[u8]) -> bool {
    v.strip_prefix(b"1.")
        .is_some_and(|minor| !minor.is_empty() && minor.iter().all(u8::is_ascii_digit))
}

/// A JSON string, borrowed from the message unless it held escapes.
#[derive(Debug, Clone, PartialEq, Eq)]
struct JsonStr<'a>(Cow<'a, str>);

impl<'de: 'a, 'a> Deserialize<'de> for JsonStr<'a> {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<JsonStr<'a>, D::Error> {
        struct StrVisitor;
        impl<'de> Visitor<'de> for StrVisitor {
            type Value = JsonStr<'de>;
            fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str("a string")
            }
            fn visit_borrowed_str<E: de::Error>(self, v: &'de str) -> Result<JsonStr<'de>, E> {
                Ok(JsonStr(Cow::Borrowed(v)))
            }
            fn visit_str<E: de::Error>(self, v: &str) -> Result<JsonStr<'de>, E> {
                Ok(JsonStr(Cow::Owned(v.to_owned())))
            }
        }
        d.deserialize_str(StrVisitor)
    }
}

impl Serialize for JsonStr<'_> {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(&self.0)
    }
}

#[derive(Deserialize)]
struct InsightDetails<'a> {
    #[serde(rename = "eventSource", borrow)]
    event_source: Option<JsonStr<'a>>,
    #[serde(rename = "eventName", borrow)]
    event_name: Option<JsonStr<'a>>,
}

#[derive(Deserialize)]
struct UserIdentity<'a> {
    #[serde(borrow)]
    arn: Option<JsonStr<'a>>,
}

/// The record as far as the JSON output needs it (everything else is skipped).
#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct Raw<'a> {
    #[serde(borrow)]
    event_name: Option<JsonStr<'a>>,
    #[serde(borrow)]
    event_source: Option<JsonStr<'a>>,
    #[serde(borrow)]
    aws_region: Option<JsonStr<'a>>,
    #[serde(rename = "sourceIPAddress", borrow)]
    source_ip_address: Option<JsonStr<'a>>,
    #[serde(borrow)]
    user_identity: Option<UserIdentity<'a>>,
    #[serde(rename = "eventID", borrow)]
    event_id: Option<JsonStr<'a>>,
    #[serde(borrow)]
    recipient_account_id: Option<JsonStr<'a>>,
    #[serde(borrow)]
    insight_details: Option<InsightDetails<'a>>,
}

/// The fields the JSON output carries for a CloudTrail record, under CloudTrail's
/// own names (`userIdentity.arn` flattened); absent ones are left out. For an
/// Insights event, `eventName` and `eventSource` come from `insightDetails`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Fields<'a> {
    #[serde(rename = "eventName", skip_serializing_if = "Option::is_none")]
    event_name: Option<JsonStr<'a>>,
    #[serde(rename = "eventSource", skip_serializing_if = "Option::is_none")]
    event_source: Option<JsonStr<'a>>,
    #[serde(rename = "awsRegion", skip_serializing_if = "Option::is_none")]
    aws_region: Option<JsonStr<'a>>,
    #[serde(rename = "sourceIPAddress", skip_serializing_if = "Option::is_none")]
    source_ip_address: Option<JsonStr<'a>>,
    #[serde(rename = "userIdentity.arn", skip_serializing_if = "Option::is_none")]
    user_arn: Option<JsonStr<'a>>,
    #[serde(rename = "eventID", skip_serializing_if = "Option::is_none")]
    event_id: Option<JsonStr<'a>>,
    #[serde(rename = "recipientAccountId", skip_serializing_if = "Option::is_none")]
    recipient_account_id: Option<JsonStr<'a>>,
}

/// Parses the output fields of a CloudTrail record; `None` when `message` is not a
/// JSON object or one of these fields is not a string.
pub fn fields(message: &str) -> Option<Fields<'_>> {
    let raw: Raw<'_> = serde_json::from_str(message).ok()?;
    let (insight_source, insight_name) = match raw.insight_details {
        Some(d) => (d.event_source, d.event_name),
        None => (None, None),
    };
    Some(Fields {
        event_name: raw.event_name.or(insight_name),
        event_source: raw.event_source.or(insight_source),
        aws_region: raw.aws_region,
        source_ip_address: raw.source_ip_address,
        user_arn: raw.user_identity.and_then(|u| u.arn),
        event_id: raw.event_id,
        recipient_account_id: raw.recipient_account_id,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    const CONSOLE_LOGIN: &str = r#"{"eventVersion":"1.08","userIdentity":{"type":"IAMUser","principalId":"AIDAEXAMPLE","arn":"arn:aws:iam::123456789012:user/alice","accountId":"123456789012","userName":"alice"},"eventTime":"2026-11-20T08:01:02Z","eventSource":"signin.amazonaws.com","eventName":"ConsoleLogin","awsRegion":"us-east-1","sourceIPAddress":"198.51.100.7","userAgent":"Mozilla/5.0","requestParameters":null,"responseElements":{"ConsoleLogin":"Success"},"eventID":"3fcfb586-0c2a-4f5e-9d55-1e4f5c3a1b2c","readOnly":false,"eventType":"AwsConsoleSignIn","managementEvent":true,"recipientAccountId":"123456789012","eventCategory":"Management"}"#;

    const INSIGHT: &str = r#"{"eventVersion":"1.07","eventTime":"2026-11-20T08:00:00Z","awsRegion":"us-east-1","eventID":"a1b2c3d4-0000-4d00-b913-beca2e0a1b2c","eventType":"AwsCloudTrailInsight","recipientAccountId":"123456789012","sharedEventID":"12345678-1729-42f1-b735-5d8c0a1b2c3d","insightDetails":{"state":"Start","eventSource":"ssm.amazonaws.com","eventName":"UpdateInstanceAssociationStatus","insightType":"ApiCallRateInsight","insightContext":{}},"eventCategory":"Insight"}"#;

    #[test]
    fn recognises_records_and_insights() {
        assert!(is_cloudtrail(CONSOLE_LOGIN));
        assert!(is_cloudtrail(&format!("  \n{CONSOLE_LOGIN}")));
        assert!(is_cloudtrail(INSIGHT));
        assert!(is_cloudtrail(
            r#"{"eventVersion":"1.0","eventTime":"2014-03-06T21:22:54Z","eventSource":"ec2.amazonaws.com","eventName":"StartInstances"}"#
        ));
    }

    #[test]
    fn rejects_lookalikes() {
        let cases = [
            "",
            "eventVersion",
            r#"["eventVersion"]"#,
            r#"{"eventVersion":"2.0","eventTime":"t","eventSource":"s","eventName":"n"}"#,
            r#"{"eventVersion":"1.","eventTime":"t","eventSource":"s","eventName":"n"}"#,
            r#"{"eventVersion":1.08,"eventTime":"t","eventSource":"s","eventName":"n"}"#,
            r#"{"eventVersion":"1.08","eventTime":"","eventSource":"s","eventName":"n"}"#,
            r#"{"eventVersion":"1.08","eventTime":"t","eventSource":"s"}"#,
            r#"{"eventVersion":"1.08","eventTime":"t","eventType":"AwsCloudTrailInsight"}"#,
            r#"{"eventVersion":"1.08","eventTime":"t","eventType":"AwsApiCall","insightDetails":{"eventSource":"s","eventName":"n"}}"#,
            r#"{"Records":[{"eventVersion":"1.08","eventTime":"t","eventSource":"s","eventName":"n"}]}"#,
            r#"{"detail":{"eventVersion":"1.08","eventTime":"t","eventSource":"s","eventName":"n"}}"#,
            r#"{"eventVersion":"1.08","eventTime":"t","eventSource":"s","#,
        ];
        for case in cases {
            assert!(!is_cloudtrail(case), "{case}");
        }
    }

    #[test]
    fn stops_reading_once_recognised() {
        // The tail is not read: a truncated record whose required keys came first
        // is still recognised (it is forwarded verbatim either way).
        let truncated = &CONSOLE_LOGIN[..CONSOLE_LOGIN.find("\"awsRegion\"").unwrap() + 5];
        assert!(is_cloudtrail(truncated));
    }

    #[test]
    fn every_prefix_is_safe_and_only_complete_enough_ones_are_records() {
        let member = "\"eventName\":\"ConsoleLogin\"";
        let needed = CONSOLE_LOGIN.find(member).unwrap() + member.len();
        for end in 0..=CONSOLE_LOGIN.len() {
            assert_eq!(is_cloudtrail(&CONSOLE_LOGIN[..end]), end >= needed, "{end}");
        }
        // An Insights event is only recognised once insightDetails is complete.
        let details_end = INSIGHT.find(",\"eventCategory\"").unwrap();
        for end in 0..=INSIGHT.len() {
            assert_eq!(is_cloudtrail(&INSIGHT[..end]), end >= details_end, "{end}");
        }
    }

    #[test]
    fn fields_are_lifted_by_cloudtrail_name() {
        let v = serde_json::to_value(fields(CONSOLE_LOGIN).unwrap()).unwrap();
        assert_eq!(
            v,
            serde_json::json!({
                "eventName": "ConsoleLogin",
                "eventSource": "signin.amazonaws.com",
                "awsRegion": "us-east-1",
                "sourceIPAddress": "198.51.100.7",
                "userIdentity.arn": "arn:aws:iam::123456789012:user/alice",
                "eventID": "3fcfb586-0c2a-4f5e-9d55-1e4f5c3a1b2c",
                "recipientAccountId": "123456789012",
            })
        );
        let v = serde_json::to_value(fields(INSIGHT).unwrap()).unwrap();
        assert_eq!(v["eventName"], "UpdateInstanceAssociationStatus");
        assert_eq!(v["eventSource"], "ssm.amazonaws.com");
        assert!(v.get("sourceIPAddress").is_none());
        assert!(fields("{").is_none());
    }
}
