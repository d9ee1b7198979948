//! `[lease]`: how shard leases are held and balanced between workers.

use std::time::Duration;

use serde::Deserialize;

use crate::config::{units, Problems, Section};

/// `[lease]` section.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct LeaseConfig {
    /// How long a lease may go without renewal before other workers take it (the
    /// failover time after a crash). Held leases are renewed every third of it.
    /// 1s to 1h; default `"10s"`.
    #[serde(default = "default_failover", deserialize_with = "units::duration")]
    pub failover: Duration,
    /// Whether the first worker creates the lease table (on-demand capacity) when
    /// it is missing. With `false` the table must exist: hash key `leaseKey` (S).
    #[serde(default = "default_true")]
    pub create_table: bool,
    /// Most leases one worker holds; 0 for no limit. Shards beyond what all
    /// workers may hold are not read.
    #[serde(default)]
    pub max_leases_per_worker: usize,
    /// How often the stream's shards are listed to create leases for new shards
    /// (after a split or merge), delete finished parents' leases once their
    /// children are read, and reset the leases of an earlier stream of the same
    /// name. 1s to 1h; default `"60s"`.
    #[serde(
        default = "default_shard_sync_interval",
        deserialize_with = "units::duration"
    )]
    pub shard_sync_interval: Duration,
}

fn default_failover() -> Duration {
    Duration::from_secs(10)
}

fn default_shard_sync_interval() -> Duration {
    Duration::from_secs(60)
}

fn default_true() -> bool {
    true
}

impl Default for LeaseConfig {
    fn default() -> Self {
        LeaseConfig {
            failover: default_failover(),
            create_table: true,
            max_leases_per_worker: 0,
            shard_sync_interval: default_shard_sync_interval(),
        }
    }
}

impl LeaseConfig {
    /// How often held leases are renewed: a third of the failover time, so two
    /// renewals may fail before others see the lease as expired.
    pub fn renew_interval(&self) -> Duration {
        self.failover / 3
    }

    /// How often free, expired and surplus leases are looked for: twice the
    /// failover time, as the KCL does.
    pub fn take_interval(&self) -> Duration {
        self.failover * 2
    }
}

impl Section for LeaseConfig {
    const KEY: &'static str = "lease";

    fn validate(&self, problems: &mut Problems) {
        const MIN: Duration = Duration::from_secs(1);
        const MAX: Duration = Duration::from_secs(3600);
        for (key, value) in [
            ("lease.failover", self.failover),
            ("lease.shard_sync_interval", self.shard_sync_interval),
        ] {
            if !(MIN..=MAX).contains(&value) {
                problems.push(
                    key,
                    format!(
                        "{} is out of range: use 1s to 1h",
                        humantime::format_duration(value)
                    ),
                );
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::Config;

    #[test]
    fn defaults_and_derived_intervals() {
        let config = LeaseConfig::default();
        assert_eq!(
            config.renew_interval(),
            Duration::from_millis(3333) + Duration::from_nanos(333_333)
        );
        assert_eq!(config.take_interval(), Duration::from_secs(20));
        assert!(config.create_table);
    }

    #[test]
    fn parsed_and_validated() {
        let config = Config::from_toml(
            "[lease]\nfailover = \"2s\"\ncreate_table = false\nmax_leases_per_worker = 4\n",
        )
        .unwrap();
        assert_eq!(config.lease.failover, Duration::from_secs(2));
        assert!(!config.lease.create_table);
        assert_eq!(config.lease.max_leases_per_worker, 4);

        let problems =
            Config::from_toml("[lease]\nfailover = \"100ms\"\nshard_sync_interval = \"2h\"\n")
                .unwrap_err();
        let keys: Vec<&str> = problems.iter().map(|p| p.key.as_str()).collect();
        assert_eq!(
            keys,
            ["lease.failover", "lease.shard_sync_interval"],
            "{problems}"
        );
        assert!(problems.to_string().contains("100ms"), "{problems}");
    }
}
