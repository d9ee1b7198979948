//! `[vpc_flow]`: custom VPC flow log formats per log group.

use serde::Deserialize;

use crate::config::{Problems, Section};

/// `[vpc_flow]` section.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct VpcFlowConfig {
    /// Custom formats (`[[vpc_flow.formats]]`), tried in order; the first whose
    /// `log_groups` glob matches the event's log group wins over automatic detection.
    #[serde(default)]
    pub formats: Vec<VpcFormatConfig>,
}

/// One `[[vpc_flow.formats]]` entry.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct VpcFormatConfig {
    /// Glob patterns on the CloudWatch Logs group name, e.g. `"vpc-custom-*"`.
    pub log_groups: Vec<String>,
    /// The flow log's LogFormat as `aws ec2 describe-flow-logs` prints it,
    /// e.g. `"${version} ${vpc-id} ${srcaddr} ..."`.
    pub format: String,
}

impl Section for VpcFlowConfig {
    const KEY: &'static str = "vpc_flow";

    fn validate(&self, problems: &mut Problems) {
        for (i, entry) in self.formats.iter().enumerate() {
            let key = format!("vpc_flow.formats[{i}]");
            if entry.log_groups.is_empty() {
                problems.push(
                    format!("{key}.log_groups"),
                    "must name at least one log group",
                );
            }
            for (j, pattern) in entry.log_groups.iter().enumerate() {
                if let Err(err) = globset::Glob::new(pattern) {
                    problems.push(
                        format!("{key}.log_groups[{j}]"),
                        format!("invalid glob {pattern:?}: {}", err.kind()),
                    );
                }
            }
            if let Err(err) = super::vpc_flow::Format::parse(&entry.format) {
                problems.push(format!("{key}.format"), err);
            }
        }
    }
}
