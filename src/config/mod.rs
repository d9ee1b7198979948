//! Configuration: the TOML file read into raw sections, then validated with every
//! problem listed by its key path (ripgrep's two steps: parse, then resolve).
//!
//! Each component owns its section's struct (`decode::DecodeConfig`,
//! `classify::VpcFlowConfig`, ...); this module only knows the section names, reads
//! the file, and gathers the problems of all sections into one error.

mod problems;
pub mod units;

use std::path::{Path, PathBuf};

use serde::de::DeserializeOwned;

pub use problems::{Problem, Problems};

use crate::classify::VpcFlowConfig;
use crate::collector::{CheckpointConfig, CollectorConfig, ShutdownConfig, Streams};
use crate::decode::DecodeConfig;
use crate::kinesis::reader::ReaderConfig;
use crate::lease::LeaseConfig;
use crate::sink::SinkConfig;
use crate::telemetry::{HttpConfig, MetricsConfig};

/// Where commands look for the configuration when `--config` is not given.
pub const DEFAULT_PATH: &str = "/etc/kinesis-collector/kinesis-collector.toml";

/// The validated configuration.
#[derive(Debug, Clone, Default)]
pub struct Config {
    /// `[decode]`: record decoding limits.
    pub decode: DecodeConfig,
    /// `[vpc_flow]`: custom VPC flow log formats.
    pub vpc_flow: VpcFlowConfig,
    /// `[sink]`: where and how events are delivered.
    pub sink: SinkConfig,
    /// `[lease]`: shard lease timing and limits.
    pub lease: LeaseConfig,
    /// `[reader]`: shard reader pacing and memory bounds.
    pub reader: ReaderConfig,
    /// `[metrics]`: CloudWatch level, namespace and interval; falling-behind share.
    pub metrics: MetricsConfig,
    /// `[http]`: the Prometheus and health endpoints.
    pub http: HttpConfig,
    /// `[collector]`: application (lease table) and worker id.
    pub collector: CollectorConfig,
    /// `[[streams]]`: the streams to read.
    pub streams: Streams,
    /// `[checkpoint]`: how often checkpoints are written.
    pub checkpoint: CheckpointConfig,
    /// `[shutdown]`: the drain bound of a clean stop.
    pub shutdown: ShutdownConfig,
}

/// A section of the configuration file: its key and its own checks.
pub trait Section: DeserializeOwned + Default {
    /// The top-level key of the section, e.g. `decode`.
    const KEY: &'static str;

    /// Adds every problem of this section to `problems` (keys relative to the file).
    fn validate(&self, problems: &mut Problems);
}

/// Why a configuration could not be used.
#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    /// The file could not be read.
    #[error("cannot read config file {path}: {source}")]
    Read {
        /// The file.
        path: PathBuf,
        /// The I/O error.
        source: std::io::Error,
    },
    /// The file was read but is not a valid configuration.
    #[error("invalid config file {path}:\n{problems}")]
    Invalid {
        /// The file.
        path: PathBuf,
        /// Every problem found.
        problems: Problems,
    },
}

impl Config {
    /// Reads and validates the file at `path`.
    pub fn load(path: &Path) -> Result<Config, ConfigError> {
        let text = std::fs::read_to_string(path).map_err(|source| ConfigError::Read {
            path: path.to_owned(),
            source,
        })?;
        Config::from_toml(&text).map_err(|problems| ConfigError::Invalid {
            path: path.to_owned(),
            problems,
        })
    }

    /// Parses and validates TOML text, listing every problem found.
    pub fn from_toml(text: &str) -> Result<Config, Problems> {
        let mut problems = Problems::default();
        let mut table: toml::Table = match text.parse() {
            Ok(table) => table,
            Err(err) => {
                problems.push("", syntax_message(&err, text));
                return Err(problems);
            }
        };
        let config = Config {
            decode: section(&mut table, &mut problems),
            vpc_flow: section(&mut table, &mut problems),
            sink: section(&mut table, &mut problems),
            lease: section(&mut table, &mut problems),
            reader: section(&mut table, &mut problems),
            metrics: section(&mut table, &mut problems),
            http: section(&mut table, &mut problems),
            collector: section(&mut table, &mut problems),
            streams: section(&mut table, &mut problems),
            checkpoint: section(&mut table, &mut problems),
            shutdown: section(&mut table, &mut problems),
        };
        for key in table.keys() {
            problems.push(key, "unknown section");
        }
        if problems.is_empty() {
            Ok(config)
        } else {
            Err(problems)
        }
    }
}

/// Takes section `T` out of `table`, deserializes and validates it; a missing
/// section is its default.
fn section<T: Section>(table: &mut toml::Table, problems: &mut Problems) -> T {
    let Some(value) = table.remove(T::KEY) else {
        return T::default();
    };
    match serde_path_to_error::deserialize::<_, T>(value) {
        Ok(section) => {
            section.validate(problems);
            section
        }
        Err(err) => {
            let path = err.path().to_string();
            let key = if path == "." {
                T::KEY.to_owned()
            } else {
                format!("{}.{path}", T::KEY)
            };
            problems.push(key, err.into_inner().message().to_owned());
            T::default()
        }
    }
}

fn syntax_message(err: &toml::de::Error, text: &str) -> String {
    match err.span() {
        Some(span) => {
            let line = text[..span.start].matches('\n').count() + 1;
            format!("TOML syntax error at line {line}: {}", err.message())
        }
        None => format!("TOML syntax error: {}", err.message()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn empty_file_is_all_defaults() {
        let config = Config::from_toml("").unwrap();
        assert_eq!(config.decode.max_record_bytes, 16 * 1024 * 1024);
        assert!(config.vpc_flow.formats.is_empty());
    }

    #[test]
    fn every_problem_is_listed_with_its_key() {
        let problems = Config::from_toml(
            "[decode]\nmax_record_bytes = \"lots\"\n[bogus]\nx = 1\n[vpc_flow]\nformatz = []\n",
        )
        .unwrap_err();
        let keys: Vec<&str> = problems.iter().map(|p| p.key.as_str()).collect();
        assert!(keys.contains(&"decode.max_record_bytes"), "{problems}");
        assert!(keys.contains(&"bogus"), "{problems}");
        assert!(keys.iter().any(|k| k.starts_with("vpc_flow")), "{problems}");
        assert_eq!(problems.len(), 3, "{problems}");
    }

    #[test]
    fn syntax_errors_name_the_line() {
        let problems = Config::from_toml("[decode]\nmax_record_bytes = = 3\n").unwrap_err();
        assert!(problems.to_string().contains("line 2"), "{problems}");
    }

    #[test]
    fn example_config_is_valid_and_documents_every_section() {
        let text = include_str!("../../config/kinesis-collector.toml");
        if let Err(problems) = Config::from_toml(text) {
            panic!("config/kinesis-collector.toml is invalid:\n{problems}");
        }
        let table: toml::Table = text.parse().unwrap();
        for key in [
            "decode",
            "vpc_flow",
            "sink",
            "lease",
            "reader",
            "collector",
            "streams",
            "checkpoint",
            "shutdown",
            "metrics",
            "http",
        ] {
            assert!(table.contains_key(key), "example config lacks [{key}]");
        }
    }
}
