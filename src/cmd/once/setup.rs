//! The `[collector]` and `[[streams]]` settings `once` and `status` need, in the
//! shape of the `run` branch's `collector` module (`config.collector`,
//! `config.streams.0`, `StreamConfig::target_regions`, `run_problems`), read here
//! until that module is merged: both sections are taken out of the file and the
//! rest is validated by [`Config`]. After the merge, [`Setup`] becomes `Config`
//! and this module goes.

use std::ops::Deref;
use std::path::Path;

use serde::Deserialize;

use crate::config::{Config, ConfigError, Problems};

/// `[collector]`, as far as `once` and `status` need it.
#[derive(Debug, Clone, Default, Deserialize)]
pub struct CollectorSettings {
    /// Lease table name and worker group (required).
    #[serde(default)]
    pub application: String,
    /// This worker's id.
    #[serde(default)]
    pub worker_id: Option<String>,
}

/// One `[[streams]]` entry, as far as `once` and `status` need it.
#[derive(Debug, Clone, Deserialize)]
pub struct StreamSettings {
    /// Stream name or ARN.
    pub name: String,
    /// Regions the stream is read in; empty: the ARN's, or the chain's.
    #[serde(default)]
    pub regions: Vec<String>,
    /// Role to assume to read it.
    #[serde(default)]
    pub role_arn: Option<String>,
    /// The other keys (start position, tags, reader overrides): `run`'s.
    #[serde(flatten)]
    _rest: toml::Table,
}

impl StreamSettings {
    /// The regions to read in; `None` stands for the standard chain's region.
    pub fn target_regions(&self) -> Vec<Option<String>> {
        if !self.regions.is_empty() {
            return self.regions.iter().cloned().map(Some).collect();
        }
        let arn_region = self
            .name
            .strip_prefix("arn:")
            .and_then(|rest| rest.split(':').nth(2))
            .filter(|r| !r.is_empty());
        vec![arn_region.map(str::to_owned)]
    }
}

/// `[[streams]]`.
#[derive(Debug, Clone, Default)]
pub struct Streams(pub Vec<StreamSettings>);

/// The configuration with the collector and streams settings.
#[derive(Debug, Clone)]
pub struct Setup {
    /// Every other section.
    pub config: Config,
    /// `[collector]`.
    pub collector: CollectorSettings,
    /// `[[streams]]`.
    pub streams: Streams,
}

impl Deref for Setup {
    type Target = Config;

    fn deref(&self) -> &Config {
        &self.config
    }
}

/// Reads the file: `[collector]` and `[[streams]]` here, the rest through
/// [`Config`].
pub fn load(path: &Path) -> anyhow::Result<Setup> {
    let text = std::fs::read_to_string(path).map_err(|source| ConfigError::Read {
        path: path.to_owned(),
        source,
    })?;
    let invalid = |what: &str, err: &dyn std::fmt::Display| {
        anyhow::anyhow!("invalid config file {}: {what}: {err}", path.display())
    };
    let mut table: toml::Table = text.parse().map_err(|e| invalid("syntax", &e))?;
    let collector = match table.remove("collector") {
        Some(v) => v.try_into().map_err(|e| invalid("collector", &e))?,
        None => CollectorSettings::default(),
    };
    let streams = match table.remove("streams") {
        Some(v) => v.try_into().map_err(|e| invalid("streams", &e))?,
        None => Vec::new(),
    };
    let config =
        Config::from_toml(&toml::to_string(&table)?).map_err(|problems| ConfigError::Invalid {
            path: path.to_owned(),
            problems,
        })?;
    Ok(Setup {
        config,
        collector,
        streams: Streams(streams),
    })
}

/// What `run` needs beyond a valid file: an application and a stream.
pub fn run_problems(setup: &Setup) -> Problems {
    let mut problems = Problems::default();
    if setup.collector.application.is_empty() {
        problems.push(
            "collector.application",
            "is required: it names the lease table, e.g. application = \"fortisiem\"",
        );
    }
    if setup.streams.0.is_empty() {
        problems.push(
            "streams",
            "at least one [[streams]] entry is needed, e.g. [[streams]] name = \"fortisiem\"",
        );
    }
    problems
}
