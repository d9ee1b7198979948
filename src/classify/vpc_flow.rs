//! Amazon VPC flow log records: the default version 2 format recognised
//! automatically, and custom formats in AWS's LogFormat syntax (`${field} ...`).

use std::sync::OnceLock;

use serde_json::{Map, Value};

/// The default format (version 2), as AWS documents it.
pub const DEFAULT_V2: &str = "${version} ${account-id} ${interface-id} ${srcaddr} ${dstaddr} \
${srcport} ${dstport} ${protocol} ${packets} ${bytes} ${start} ${end} ${action} ${log-status}";

/// A parsed LogFormat: the field names in order.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Format {
    fields: Vec<String>,
    action: Option<usize>,
    log_status: Option<usize>,
}

impl Format {
    /// Parses a LogFormat string such as `"${version} ${srcaddr}"`.
    pub fn parse(text: &str) -> Result<Format, String> {
        let mut fields = Vec::new();
        for token in text.split_ascii_whitespace() {
            let name = token
                .strip_prefix("${")
                .and_then(|t| t.strip_suffix('}'))
                .ok_or_else(|| format!("expected ${{field}}, found {token:?}"))?;
            fields.push(name.to_owned());
        }
        if fields.is_empty() {
            return Err("empty format".to_owned());
        }
        let position = |n: &str| fields.iter().position(|f| f == n);
        Ok(Format {
            action: position("action"),
            log_status: position("log-status"),
            fields,
        })
    }

    /// The default version 2 format.
    pub fn default_v2() -> &'static Format {
        static V2: OnceLock<Format> = OnceLock::new();
        V2.get_or_init(|| Format::parse(DEFAULT_V2).expect("valid"))
    }

    /// The event type of a line in this format, or `None` when it does not fit.
    pub fn event_type(&self, line: &str) -> Option<&'static str> {
        let values: Vec<&str> = line.split(' ').collect();
        if values.len() != self.fields.len() {
            return None;
        }
        Some(event_type(
            self.action.map(|i| values[i]),
            self.log_status.map(|i| values[i]),
        ))
    }

    /// The fields of a line by AWS name with underscores.
    pub fn fields(&self, line: &str) -> Option<Map<String, Value>> {
        let values: Vec<&str> = line.split(' ').collect();
        if values.len() != self.fields.len() {
            return None;
        }
        let mut map = Map::new();
        for (name, value) in self.fields.iter().zip(values) {
            let v = if value == "-" {
                Value::Null
            } else if !name.ends_with("-id") {
                value
                    .parse::<u64>()
                    .map(Value::from)
                    .unwrap_or_else(|_| Value::from(value))
            } else {
                Value::from(value)
            };
            map.insert(name.replace('-', "_"), v);
        }
        Some(map)
    }
}

fn event_type(action: Option<&str>, log_status: Option<&str>) -> &'static str {
    match (log_status, action) {
        (Some("NODATA"), _) => "AWS_VPC_FLOW_NODATA",
        (Some("SKIPDATA"), _) => "AWS_VPC_FLOW_SKIPDATA",
        (_, Some("ACCEPT")) => "AWS_VPC_FLOW_ACCEPT",
        (_, Some("REJECT")) => "AWS_VPC_FLOW_REJECT",
        _ => "AWS_VPC_FLOW",
    }
}

/// Recognises a default-format (version 2) line strictly; returns its event type.
pub fn detect_default(line: &str) -> Option<&'static str> {
    let mut it = line.split(' ');
    let f: [&str; 14] = std::array::from_fn(|_| it.next().unwrap_or(""));
    if it.next().is_some() || f[13].is_empty() || f[0] != "2" {
        return None;
    }
    let account_ok =
        f[1] == "unknown" || (f[1].len() == 12 && f[1].bytes().all(|b| b.is_ascii_digit()));
    let eni_ok = f[2].starts_with("eni-") || f[2] == "-";
    if !account_ok || !eni_ok || !matches!(f[13], "OK" | "NODATA" | "SKIPDATA") {
        return None;
    }
    Some(event_type(Some(f[12]), Some(f[13])))
}
