//! `[metrics]` and `[http]`: what the collector reports about itself, and where.

use std::net::SocketAddr;
use std::time::Duration;

use serde::Deserialize;

use crate::config::{units, Problems, Section};

/// How much goes to CloudWatch.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize, Default)]
#[serde(rename_all = "lowercase")]
pub enum Level {
    /// Nothing is sent to CloudWatch (Prometheus still serves every figure).
    None,
    /// Per stream and worker (dimensions StreamName, WorkerId).
    #[default]
    Summary,
    /// Also per shard (dimensions StreamName, WorkerId, ShardId).
    Detailed,
}

/// `[metrics]` section.
#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct MetricsConfig {
    /// CloudWatch level: `"none"`, `"summary"` (default) or `"detailed"`.
    #[serde(default)]
    pub level: Level,
    /// CloudWatch namespace; default `"KinesisCollector"`. 1 to 255 characters,
    /// not starting with `AWS/`.
    #[serde(default = "default_namespace")]
    pub namespace: String,
    /// How long figures are aggregated before one PutMetricData round. 10s to 1h;
    /// default `"60s"`.
    #[serde(default = "default_interval", deserialize_with = "units::duration")]
    pub interval: Duration,
    /// Share of the stream's retention period that a shard's MillisBehindLatest may
    /// reach before it counts as falling behind (a warning and a metric). Above 0 and
    /// at most 1; default `0.5`.
    #[serde(default = "default_falling_behind_share")]
    pub falling_behind_share: f64,
}

fn default_namespace() -> String {
    "KinesisCollector".into()
}

fn default_interval() -> Duration {
    Duration::from_secs(60)
}

fn default_falling_behind_share() -> f64 {
    0.5
}

impl Default for MetricsConfig {
    fn default() -> Self {
        MetricsConfig {
            level: Level::default(),
            namespace: default_namespace(),
            interval: default_interval(),
            falling_behind_share: default_falling_behind_share(),
        }
    }
}

impl Section for MetricsConfig {
    const KEY: &'static str = "metrics";

    fn validate(&self, problems: &mut Problems) {
        let ns = &self.namespace;
        if ns.is_empty() || ns.len() > 255 {
            problems.push("metrics.namespace", "must be 1 to 255 characters");
        } else if ns.starts_with("AWS/") {
            problems.push(
                "metrics.namespace",
                format!("{ns:?} starts with AWS/, which is reserved for AWS services"),
            );
        }
        if !(Duration::from_secs(10)..=Duration::from_secs(3600)).contains(&self.interval) {
            problems.push(
                "metrics.interval",
                format!(
                    "{} is out of range: use 10s to 1h",
                    humantime::format_duration(self.interval)
                ),
            );
        }
        let share = self.falling_behind_share;
        if !(share > 0.0 && share <= 1.0) {
            problems.push(
                "metrics.falling_behind_share",
                format!("{share} is out of range: use a share above 0 and at most 1"),
            );
        }
    }
}

/// `[http]` section.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize, Default)]
#[serde(deny_unknown_fields)]
pub struct HttpConfig {
    /// Address and port of the `/metrics`, `/healthz` and `/readyz` endpoints, e.g.
    /// `"0.0.0.0:9108"`; no HTTP server when unset.
    #[serde(default)]
    pub listen: Option<SocketAddr>,
}

impl Section for HttpConfig {
    const KEY: &'static str = "http";

    fn validate(&self, _problems: &mut Problems) {}
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::Config;

    #[test]
    fn defaults() {
        let config = Config::from_toml("").unwrap();
        assert_eq!(config.metrics, MetricsConfig::default());
        assert_eq!(config.metrics.level, Level::Summary);
        assert_eq!(config.metrics.namespace, "KinesisCollector");
        assert_eq!(config.metrics.interval, Duration::from_secs(60));
        assert_eq!(config.http.listen, None);
    }

    #[test]
    fn parsed() {
        let config = Config::from_toml(
            "[metrics]\nlevel = \"detailed\"\nnamespace = \"X\"\ninterval = \"30s\"\n\
             falling_behind_share = 0.25\n[http]\nlisten = \"127.0.0.1:9108\"\n",
        )
        .unwrap();
        assert_eq!(config.metrics.level, Level::Detailed);
        assert_eq!(config.metrics.interval, Duration::from_secs(30));
        assert_eq!(config.metrics.falling_behind_share, 0.25);
        assert_eq!(config.http.listen, Some("127.0.0.1:9108".parse().unwrap()));
    }

    #[test]
    fn every_problem_is_listed() {
        let problems = Config::from_toml(
            "[metrics]\nnamespace = \"AWS/Kinesis\"\ninterval = \"1s\"\nfalling_behind_share = 0\n",
        )
        .unwrap_err();
        let keys: Vec<&str> = problems.iter().map(|p| p.key.as_str()).collect();
        assert_eq!(
            keys,
            [
                "metrics.namespace",
                "metrics.interval",
                "metrics.falling_behind_share"
            ],
            "{problems}"
        );
        let problems = Config::from_toml("[metrics]\nlevel = \"all\"\n").unwrap_err();
        assert!(problems.to_string().contains("metrics.level"), "{problems}");
        let problems = Config::from_toml("[http]\nlisten = \"nowhere\"\n").unwrap_err();
        assert!(problems.to_string().contains("http.listen"), "{problems}");
    }
}
