//! Classification of log events: VPC flow, CloudTrail or other, with the parsed
//! fields the JSON output carries.
//!
//! A [`Classifier`] is built once from `[vpc_flow]`; per payload the caller asks
//! [`Classifier::for_group`] once (the glob lookup) and then classifies each event of
//! that payload with the returned [`GroupClassifier`], which never allocates.
//!
//! Order of the checks for one message:
//! 1. a log group named by a configured format: the line is VPC flow if its number
//!    of values matches that format (the format wins over automatic detection);
//! 2. any other log group: the line is VPC flow if it is a strict version 2 record
//!    ([`vpc_flow::detect_default`]);
//! 3. a CloudTrail record ([`cloudtrail::is_cloudtrail`]);
//! 4. otherwise `other`.

pub mod cloudtrail;
mod config;
mod json_scan;
pub mod vpc_flow;

pub use config::{VpcFlowConfig, VpcFormatConfig};

use serde::Serialize;

use crate::event::{Class, Classification};

/// Why a [`Classifier`] could not be built (a `[vpc_flow]` that did not validate).
#[derive(Debug, thiserror::Error)]
pub enum ClassifierError {
    /// A `log_groups` pattern is not a valid glob.
    #[error("vpc_flow.formats[{index}].log_groups: invalid glob {pattern:?}: {source}")]
    Glob {
        /// Index of the `[[vpc_flow.formats]]` entry.
        index: usize,
        /// The pattern.
        pattern: String,
        /// What globset said.
        source: globset::Error,
    },
    /// A `format` is not a valid LogFormat.
    #[error("vpc_flow.formats[{index}].format: {}", join(errors))]
    Format {
        /// Index of the `[[vpc_flow.formats]]` entry.
        index: usize,
        /// Every problem of the format.
        errors: Vec<vpc_flow::FormatError>,
    },
}

fn join(errors: &[vpc_flow::FormatError]) -> String {
    let texts: Vec<String> = errors.iter().map(ToString::to_string).collect();
    texts.join("; ")
}

/// Classifies messages; built once from the configuration.
#[derive(Debug, Clone)]
pub struct Classifier {
    formats: Vec<(globset::GlobSet, vpc_flow::Format)>,
}

impl Default for Classifier {
    /// Automatic detection only (no custom formats).
    fn default() -> Self {
        Classifier {
            formats: Vec::new(),
        }
    }
}

impl Classifier {
    /// Builds the classifier; fails only for a config that does not validate.
    pub fn new(config: &VpcFlowConfig) -> Result<Classifier, ClassifierError> {
        let mut formats = Vec::with_capacity(config.formats.len());
        for (index, entry) in config.formats.iter().enumerate() {
            let mut set = globset::GlobSetBuilder::new();
            for pattern in &entry.log_groups {
                let glob = globset::Glob::new(pattern).map_err(|source| ClassifierError::Glob {
                    index,
                    pattern: pattern.clone(),
                    source,
                })?;
                set.add(glob);
            }
            let set = set.build().map_err(|source| ClassifierError::Glob {
                index,
                pattern: entry.log_groups.join(", "),
                source,
            })?;
            let format = vpc_flow::Format::parse(&entry.format)
                .map_err(|errors| ClassifierError::Format { index, errors })?;
            formats.push((set, format));
        }
        Ok(Classifier { formats })
    }

    /// The classifier for events of `log_group` (`None`: not from an envelope).
    /// The first configured format whose globs match the group applies.
    pub fn for_group(&self, log_group: Option<&str>) -> GroupClassifier<'_> {
        let custom = log_group.and_then(|group| {
            self.formats
                .iter()
                .enumerate()
                .find(|(_, (globs, _))| globs.is_match(group))
                .map(|(index, (_, format))| (index, format))
        });
        GroupClassifier { custom }
    }

    /// The parsed fields of `message`, classified as `c` by this classifier, for
    /// the JSON output; `None` for `other` (or a message that does not parse).
    /// Borrows `message`; serializing them is the only work done.
    pub fn fields<'a>(&'a self, message: &'a str, c: &Classification) -> Option<Fields<'a>> {
        match c.class {
            Class::VpcFlow => {
                let format = match c.vpc_format {
                    Some(i) => &self.formats.get(i)?.1,
                    None => vpc_flow::Format::default_v2(),
                };
                format.record(message).map(Fields::VpcFlow)
            }
            Class::CloudTrail => cloudtrail::fields(message).map(Fields::CloudTrail),
            Class::Other => None,
        }
    }
}

/// The parsed fields of one event; serializes as a JSON object.
#[derive(Debug, Clone, Serialize)]
#[serde(untagged)]
pub enum Fields<'a> {
    /// A VPC flow record's values by field name ([`vpc_flow::Record`]).
    VpcFlow(vpc_flow::Record<'a>),
    /// A CloudTrail record's key fields ([`cloudtrail::Fields`]).
    CloudTrail(cloudtrail::Fields<'a>),
}

/// Classifies the events of one log group.
#[derive(Debug, Clone, Copy)]
pub struct GroupClassifier<'c> {
    custom: Option<(usize, &'c vpc_flow::Format)>,
}

impl GroupClassifier<'_> {
    /// Index of the configured format that applies to this log group, if any. An
    /// event of such a group classified `other` did not fit that format: worth a
    /// counter of its own, as it usually means the configured format is not the
    /// flow log's.
    pub fn format_index(&self) -> Option<usize> {
        self.custom.map(|(index, _)| index)
    }

    /// Classifies one message. Does not allocate.
    pub fn classify(&self, message: &str) -> Classification {
        let vpc = match self.custom {
            // A configured format wins for the log groups it names: a line that
            // does not fit it is not tried against the default format.
            Some((index, format)) => format.event_type(message).map(|t| (Some(index), t)),
            None => vpc_flow::detect_default(message).map(|t| (None, t)),
        };
        if let Some((vpc_format, event_type)) = vpc {
            return Classification {
                class: Class::VpcFlow,
                event_type: Some(event_type),
                vpc_format,
            };
        }
        if cloudtrail::is_cloudtrail(message) {
            return Classification {
                class: Class::CloudTrail,
                event_type: None,
                vpc_format: None,
            };
        }
        Classification::OTHER
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const V2: &str = "2 123456789010 eni-1235b8ca123456789 172.31.16.139 172.31.16.21 20641 22 6 20 4249 1418530010 1418530070 ACCEPT OK";
    const V3: &str = "3 vpc-0a1b2c3d subnet-aaaa1111 i-0123456789abcdef0 172.31.16.139 172.31.16.21 20641 22 6 20 4249 1418530010 1418530070 REJECT 2 OK";

    fn custom() -> Classifier {
        Classifier::new(&VpcFlowConfig {
            formats: vec![VpcFormatConfig {
                log_groups: vec!["vpc-custom-*".into(), "/aws/vpc/v3".into()],
                format: "${version} ${vpc-id} ${subnet-id} ${instance-id} ${srcaddr} ${dstaddr} ${srcport} ${dstport} ${protocol} ${packets} ${bytes} ${start} ${end} ${action} ${tcp-flags} ${log-status}".into(),
            }],
        })
        .unwrap()
    }

    #[test]
    fn configured_format_wins_for_its_groups_only() {
        let c = custom();
        let g = c.for_group(Some("vpc-custom-prod"));
        let v3 = g.classify(V3);
        assert_eq!(v3.class, Class::VpcFlow);
        assert_eq!(v3.event_type, Some(vpc_flow::REJECT));
        assert_eq!(v3.vpc_format, Some(0));
        // The default format is not tried in a group with a configured format.
        assert_eq!(g.classify(V2), Classification::OTHER);
        assert_eq!(g.format_index(), Some(0));
        assert_eq!(c.for_group(Some("vpc-flow")).format_index(), None);
        // Other groups, and plain records, get automatic detection.
        for group in [Some("vpc-flow"), None, Some("/aws/vpc/v3x")] {
            let g = c.for_group(group);
            assert_eq!(g.classify(V2).vpc_format, None, "{group:?}");
            assert_eq!(g.classify(V2).class, Class::VpcFlow);
            assert_eq!(g.classify(V3), Classification::OTHER);
        }
        assert_eq!(
            c.for_group(Some("/aws/vpc/v3")).classify(V3).vpc_format,
            Some(0)
        );
    }

    #[test]
    fn fields_follow_the_matching_format() {
        let c = custom();
        let class = c.for_group(Some("vpc-custom-a")).classify(V3);
        let v = serde_json::to_value(c.fields(V3, &class).unwrap()).unwrap();
        assert_eq!(v["vpc_id"], "vpc-0a1b2c3d");
        assert_eq!(v["tcp_flags"], 2);
        assert_eq!(v["log_status"], "OK");
        let class = c.for_group(None).classify(V2);
        let v = serde_json::to_value(c.fields(V2, &class).unwrap()).unwrap();
        assert_eq!(v["account_id"], "123456789010");
        assert_eq!(v["bytes"], 4249);
        assert!(c.fields("text", &Classification::OTHER).is_none());
        // A classification from another classifier cannot index out of bounds.
        assert!(Classifier::default()
            .fields(V3, &class_with_format(7))
            .is_none());
    }

    fn class_with_format(i: usize) -> Classification {
        Classification {
            class: Class::VpcFlow,
            event_type: Some(vpc_flow::ACCEPT),
            vpc_format: Some(i),
        }
    }

    #[test]
    fn cloudtrail_and_other() {
        let c = Classifier::default();
        let g = c.for_group(Some("CloudTrail/DefaultLogGroup"));
        let ct = r#"{"eventVersion":"1.09","eventTime":"2026-11-20T08:01:02Z","eventSource":"s3.amazonaws.com","eventName":"GetObject"}"#;
        assert_eq!(g.classify(ct).class, Class::CloudTrail);
        assert_eq!(g.classify(ct).event_type, None);
        assert_eq!(
            g.classify("START RequestId: 1 Version: $LATEST").class,
            Class::Other
        );
    }

    #[test]
    fn invalid_config_is_an_error_naming_the_entry() {
        let err = Classifier::new(&VpcFlowConfig {
            formats: vec![VpcFormatConfig {
                log_groups: vec!["a".into()],
                format: "${nope}".into(),
            }],
        })
        .unwrap_err();
        assert!(
            err.to_string()
                .starts_with("vpc_flow.formats[0].format: unknown field ${nope}"),
            "{err}"
        );
    }
}
