//! The streams and collector settings `once` and `status` need. Until
//! `[collector]` and `[[streams]]` are part of [`Config`] (the `run` command's
//! sections), they are read here from the file and taken out before the rest is
//! validated; then this module shrinks to [`Setup::targets`].

use std::collections::BTreeMap;
use std::path::Path;

use serde::Deserialize;

use crate::config::{Config, ConfigError};

/// `[collector]`, as far as `once` and `status` need it.
#[derive(Debug, Clone, Deserialize)]
pub struct CollectorSettings {
    /// Lease table name and worker group.
    #[serde(default = "default_application")]
    pub application: String,
    /// This worker's id.
    #[serde(default)]
    pub worker_id: Option<String>,
}

fn default_application() -> String {
    "kinesis-collector".into()
}

impl Default for CollectorSettings {
    fn default() -> Self {
        CollectorSettings {
            application: default_application(),
            worker_id: None,
        }
    }
}

/// One `[[streams]]` entry, as far as `once` and `status` need it.
#[derive(Debug, Clone, Deserialize)]
pub struct StreamSettings {
    /// Stream name or ARN.
    pub name: String,
    /// Regions the stream is read in; empty: the chain's region.
    #[serde(default)]
    pub regions: Vec<String>,
    /// Role to assume.
    #[serde(default)]
    pub role_arn: Option<String>,
    /// Labels for this stream's events.
    #[serde(default)]
    pub tags: BTreeMap<String, String>,
    #[serde(flatten)]
    _rest: toml::Table,
}

/// The configuration with the collector and streams settings.
#[derive(Debug, Clone)]
pub struct Setup {
    /// Every other section.
    pub config: Config,
    /// `[collector]`.
    pub collector: CollectorSettings,
    /// `[[streams]]`.
    pub streams: Vec<StreamSettings>,
}

/// Reads the file: `[collector]` and `[[streams]]` here, the rest through
/// [`Config`].
pub fn load_setup(path: &Path) -> anyhow::Result<Setup> {
    let text = std::fs::read_to_string(path).map_err(|source| ConfigError::Read {
        path: path.to_owned(),
        source,
    })?;
    let mut table: toml::Table = text
        .parse()
        .map_err(|err| anyhow::anyhow!("invalid config file {}: {err}", path.display()))?;
    let collector = match table.remove("collector") {
        Some(v) => v.try_into().map_err(|err| {
            anyhow::anyhow!("invalid config file {}: collector: {err}", path.display())
        })?,
        None => CollectorSettings::default(),
    };
    let streams: Vec<StreamSettings> = match table.remove("streams") {
        Some(v) => v.try_into().map_err(|err| {
            anyhow::anyhow!("invalid config file {}: streams: {err}", path.display())
        })?,
        None => Vec::new(),
    };
    let rest = toml::to_string(&table)?;
    let config = Config::from_toml(&rest).map_err(|problems| ConfigError::Invalid {
        path: path.to_owned(),
        problems,
    })?;
    Ok(Setup {
        config,
        collector,
        streams,
    })
}

impl Setup {
    /// The worker id: configured, or the hostname.
    pub fn worker_id(&self) -> String {
        self.collector
            .worker_id
            .clone()
            .unwrap_or_else(crate::sink::system_hostname)
    }

    /// Every (stream, region) pair; region `None` is the chain's.
    pub fn targets(&self) -> Vec<(&StreamSettings, Option<String>)> {
        let mut out = Vec::new();
        for stream in &self.streams {
            if stream.regions.is_empty() {
                out.push((stream, None));
            }
            for region in &stream.regions {
                out.push((stream, Some(region.clone())));
            }
        }
        out
    }
}
