//! Classification of log events: VPC flow, CloudTrail or other, with the parsed
//! fields the JSON output carries.
//!
//! A [`Classifier`] is built once from `[vpc_flow]`; per payload the caller asks
//! [`Classifier::for_group`] once (the glob lookup) and then classifies each event of
//! that payload with the returned [`GroupClassifier`].

pub mod cloudtrail;
mod config;
pub mod vpc_flow;

pub use config::{VpcFlowConfig, VpcFormatConfig};

use crate::event::{Class, Classification};

/// Classifies messages; built once from the configuration.
#[derive(Debug, Clone)]
pub struct Classifier {
    formats: Vec<(globset::GlobSet, vpc_flow::Format)>,
}

impl Default for Classifier {
    fn default() -> Self {
        Classifier::new(&VpcFlowConfig::default()).expect("the empty config is valid")
    }
}

impl Classifier {
    /// Builds the classifier; fails only for a config that did not validate.
    pub fn new(config: &VpcFlowConfig) -> Result<Classifier, String> {
        let mut formats = Vec::with_capacity(config.formats.len());
        for entry in &config.formats {
            let mut set = globset::GlobSetBuilder::new();
            for pattern in &entry.log_groups {
                set.add(globset::Glob::new(pattern).map_err(|e| e.to_string())?);
            }
            let set = set.build().map_err(|e| e.to_string())?;
            formats.push((set, vpc_flow::Format::parse(&entry.format)?));
        }
        Ok(Classifier { formats })
    }

    /// The classifier for events of `log_group` (`None`: not from an envelope).
    pub fn for_group(&self, log_group: Option<&str>) -> GroupClassifier<'_> {
        let custom = log_group.and_then(|group| {
            self.formats
                .iter()
                .position(|(globs, _)| globs.is_match(group))
                .map(|i| (i, &self.formats[i].1))
        });
        GroupClassifier { custom }
    }

    /// The parsed fields of an event classified as `c`, for the JSON output.
    pub fn fields(
        &self,
        message: &str,
        c: &Classification,
    ) -> Option<serde_json::Map<String, serde_json::Value>> {
        match c.class {
            Class::VpcFlow => {
                let format = match c.vpc_format {
                    Some(i) => &self.formats[i].1,
                    None => vpc_flow::Format::default_v2(),
                };
                format.fields(message)
            }
            Class::CloudTrail => cloudtrail::fields(message),
            Class::Other => None,
        }
    }
}

/// Classifies the events of one log group.
#[derive(Debug, Clone, Copy)]
pub struct GroupClassifier<'c> {
    custom: Option<(usize, &'c vpc_flow::Format)>,
}

impl GroupClassifier<'_> {
    /// Classifies one message.
    pub fn classify(&self, message: &str) -> Classification {
        if let Some((index, format)) = self.custom {
            // A configured format wins for the log groups it names.
            return match format.event_type(message) {
                Some(event_type) => Classification {
                    class: Class::VpcFlow,
                    event_type: Some(event_type),
                    vpc_format: Some(index),
                },
                None => Classification::OTHER,
            };
        }
        if let Some(event_type) = vpc_flow::detect_default(message) {
            return Classification {
                class: Class::VpcFlow,
                event_type: Some(event_type),
                vpc_format: None,
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
