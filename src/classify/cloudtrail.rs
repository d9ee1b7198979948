//! AWS CloudTrail records: recognised by their required top-level fields.

use serde::Deserialize;
use serde_json::{Map, Value};

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct Probe<'a> {
    #[serde(borrow)]
    event_version: std::borrow::Cow<'a, str>,
    #[serde(borrow)]
    event_source: std::borrow::Cow<'a, str>,
    #[serde(borrow)]
    event_name: std::borrow::Cow<'a, str>,
    #[serde(borrow)]
    event_time: std::borrow::Cow<'a, str>,
}

/// True when `message` is a JSON object that is a CloudTrail record.
pub fn is_cloudtrail(message: &str) -> bool {
    if !message.trim_start().starts_with('{') {
        return false;
    }
    match serde_json::from_str::<Probe<'_>>(message) {
        Ok(p) => {
            p.event_version.starts_with("1.")
                && !p.event_source.is_empty()
                && !p.event_name.is_empty()
                && !p.event_time.is_empty()
        }
        Err(_) => false,
    }
}

/// The fields the JSON output carries for a CloudTrail record.
pub fn fields(message: &str) -> Option<Map<String, Value>> {
    let v: Value = serde_json::from_str(message).ok()?;
    let mut map = Map::new();
    for key in [
        "eventName",
        "eventSource",
        "awsRegion",
        "sourceIPAddress",
        "eventID",
        "recipientAccountId",
    ] {
        if let Some(x) = v.get(key) {
            map.insert(key.to_owned(), x.clone());
        }
    }
    if let Some(arn) = v.pointer("/userIdentity/arn") {
        map.insert("userIdentity.arn".to_owned(), arn.clone());
    }
    Some(map)
}
