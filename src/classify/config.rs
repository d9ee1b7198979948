//! `[vpc_flow]`: custom VPC flow log formats per log group.

use serde::Deserialize;

use super::vpc_flow::Format;
use crate::config::{Problems, Section};

/// `[vpc_flow]` section.
///
/// Flow logs in the default format (version 2, 14 fields) are recognised
/// automatically in every log group. A flow log with a custom format needs its
/// format here, for the log groups it writes to.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct VpcFlowConfig {
    /// Custom formats (`[[vpc_flow.formats]]`). For each event the first entry
    /// whose `log_groups` matches its log group applies, and wins over automatic
    /// detection: a line in such a group is a VPC flow record when it has as many
    /// values as the format has fields, and `other` otherwise.
    #[serde(default)]
    pub formats: Vec<VpcFormatConfig>,
}

/// One `[[vpc_flow.formats]]` entry.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct VpcFormatConfig {
    /// Glob patterns on the CloudWatch Logs group name, e.g. `"vpc-custom-*"` or
    /// `"/aws/vpc/prod-*"`. `*` matches any characters, `/` included; `?`, `[a-z]`
    /// and `{a,b}` work as usual; matching is case-sensitive.
    pub log_groups: Vec<String>,
    /// The flow log's LogFormat exactly as `aws ec2 describe-flow-logs` prints it,
    /// e.g. `"${version} ${vpc-id} ${srcaddr} ..."`. Every field AWS documents for
    /// VPC and Transit Gateway flow logs is known (versions 2 to 11).
    pub format: String,
}

impl Section for VpcFlowConfig {
    const KEY: &'static str = "vpc_flow";

    fn validate(&self, problems: &mut Problems) {
        // Every pattern seen so far, with where it was first listed.
        let mut seen: Vec<(&str, String)> = Vec::new();
        for (i, entry) in self.formats.iter().enumerate() {
            let key = format!("vpc_flow.formats[{i}]");
            if entry.log_groups.is_empty() {
                problems.push(
                    format!("{key}.log_groups"),
                    "must name at least one log group pattern",
                );
            }
            for (j, pattern) in entry.log_groups.iter().enumerate() {
                let at = format!("{key}.log_groups[{j}]");
                if pattern.trim().is_empty() {
                    problems.push(at, "empty pattern");
                    continue;
                }
                if let Err(err) = globset::Glob::new(pattern) {
                    problems.push(at, format!("invalid glob {pattern:?}: {}", err.kind()));
                    continue;
                }
                match seen.iter().find(|(p, _)| p == pattern) {
                    Some((_, first)) => problems.push(
                        at,
                        format!(
                            "pattern {pattern:?} is already listed at {first}; the first \
                             matching entry applies, so this one never does"
                        ),
                    ),
                    None => seen.push((pattern, at)),
                }
            }
            if let Err(errors) = Format::parse(&entry.format) {
                for error in errors {
                    problems.push(format!("{key}.format"), error.to_string());
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use crate::config::Config;

    fn problems(toml: &str) -> Vec<(String, String)> {
        match Config::from_toml(toml) {
            Ok(_) => Vec::new(),
            Err(p) => p
                .iter()
                .map(|p| (p.key.clone(), p.message.clone()))
                .collect(),
        }
    }

    #[test]
    fn a_valid_section_has_no_problems() {
        let toml = r#"
            [[vpc_flow.formats]]
            log_groups = ["vpc-custom-*", "/aws/vpc/{prod,staging}"]
            format = "${version} ${vpc-id} ${srcaddr} ${dstaddr} ${action} ${log-status}"
            [[vpc_flow.formats]]
            log_groups = ["tgw-*"]
            format = "${version} ${resource-type} ${tgw-id} ${srcaddr} ${log-status}"
        "#;
        assert_eq!(problems(toml), Vec::<(String, String)>::new());
    }

    #[test]
    fn an_unknown_field_is_the_only_problem_reported() {
        let toml = r#"
            [[vpc_flow.formats]]
            log_groups = ["vpc-custom-*"]
            format = "${version} ${vpc-id} ${srcaddr} ${dst-addr} ${action} ${log-status}"
        "#;
        let p = problems(toml);
        assert_eq!(p.len(), 1, "{p:?}");
        assert_eq!(p[0].0, "vpc_flow.formats[0].format");
        assert!(
            p[0].1
                .starts_with("unknown field ${dst-addr} (did you mean ${dstaddr}?)"),
            "{}",
            p[0].1
        );
    }

    #[test]
    fn every_problem_is_listed_with_its_key() {
        let toml = r#"
            [[vpc_flow.formats]]
            log_groups = []
            format = "${version} ${version}"
            [[vpc_flow.formats]]
            log_groups = ["a[", "", "vpc-*"]
            format = ""
            [[vpc_flow.formats]]
            log_groups = ["vpc-*"]
            format = "${interface-id} ${tgw-id} srcaddr"
        "#;
        let p = problems(toml);
        let keys: Vec<&str> = p.iter().map(|(k, _)| k.as_str()).collect();
        assert_eq!(
            keys,
            [
                "vpc_flow.formats[0].log_groups",
                "vpc_flow.formats[0].format",
                "vpc_flow.formats[1].log_groups[0]",
                "vpc_flow.formats[1].log_groups[1]",
                "vpc_flow.formats[1].format",
                "vpc_flow.formats[2].log_groups[0]",
                "vpc_flow.formats[2].format",
                "vpc_flow.formats[2].format",
            ],
            "{p:#?}"
        );
        assert!(p[1].1.contains("${version} appears more than once"));
        assert!(p[2].1.starts_with("invalid glob \"a[\""), "{}", p[2].1);
        assert!(p[4].1.starts_with("empty format"));
        assert!(p[5]
            .1
            .contains("already listed at vpc_flow.formats[1].log_groups[2]"));
        assert!(p[6].1.contains("\"srcaddr\""));
        assert!(p[7].1.contains("mixes VPC-only field ${interface-id}"));
    }

    #[test]
    fn the_commented_examples_in_the_example_config_are_valid() {
        let text = include_str!("../../config/kinesis-collector.toml");
        let section = &text[text.find("[vpc_flow]").unwrap()..];
        let examples: String = section
            .lines()
            .filter_map(|l| l.strip_prefix("# "))
            .filter(|l| {
                l.starts_with("[[vpc_flow.formats]]")
                    || l.starts_with("log_groups = ")
                    || l.starts_with("format = ")
            })
            .map(|l| format!("{l}\n"))
            .collect();
        let config = Config::from_toml(&examples).unwrap_or_else(|p| panic!("{p}\n{examples}"));
        assert_eq!(config.vpc_flow.formats.len(), 2, "{examples}");
    }

    #[test]
    fn unknown_keys_are_rejected() {
        let p = problems("[[vpc_flow.formats]]\nlog_group = [\"a\"]\nformat = \"${version}\"\n");
        assert_eq!(p.len(), 1, "{p:?}");
        assert!(p[0].0.starts_with("vpc_flow"), "{p:?}");
    }
}
