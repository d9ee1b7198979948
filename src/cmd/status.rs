//! `status`: the lease table as operators and scripts need it. It reads the table
//! twice, a renew interval apart, and marks as stale the held leases whose
//! counter did not move (their owner stopped renewing: crashed, hung or cut off).
//! Leases at SHARD_END are no longer renewed by design: they show as `ended`,
//! never stale, and count for no worker. Read-only.

use crate::config::Config;
use std::collections::BTreeMap;
use std::process::ExitCode;
use std::time::Duration;

use clap::Args;
use serde::Serialize;

use crate::aws::{sdk_config, AwsTarget};
use crate::cli::ConfigArg;
use crate::lease::dynamodb::DynamoDbLeaseStore;
use crate::lease::{Checkpoint, Lease, LeaseStore};

/// Arguments of `status`.
#[derive(Debug, Args)]
pub struct StatusArgs {
    #[command(flatten)]
    pub config: ConfigArg,
    /// Print JSON instead of a table.
    #[arg(long)]
    pub json: bool,
    /// Time between the two reads; default the renew interval (lease.failover / 3).
    #[arg(long, value_parser = humantime::parse_duration, value_name = "DURATION")]
    pub wait: Option<Duration>,
}

/// One lease as `status` shows it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct LeaseStatus {
    /// `leaseKey`.
    pub key: String,
    /// The shard id.
    pub shard_id: String,
    /// `leaseOwner`; `None` when free.
    pub owner: Option<String>,
    /// `checkpoint` (sequence number or sentinel).
    pub checkpoint: String,
    /// `checkpointSubSequenceNumber`.
    pub sub_sequence_number: u64,
    /// `leaseCounter` at the second read.
    pub counter: u64,
    /// `parentShardId`.
    pub parents: Vec<String>,
    /// Held, not finished, and the counter did not move between the two reads.
    pub stale: bool,
    /// At SHARD_END: read to its end (deleted once its children have started).
    pub ended: bool,
    /// How far behind the stream's tip the holder's reader was at its last renewal
    /// or checkpoint (MillisBehindLatest); `None` until a collector wrote it.
    pub millis_behind_latest: Option<u64>,
}

/// The report of one region's lease table.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct StatusReport {
    /// The lease table.
    pub table: String,
    /// Its region.
    pub region: String,
    /// Seconds between the two reads.
    pub interval_secs: f64,
    /// Every lease, in key order.
    pub leases: Vec<LeaseStatus>,
    /// Leases held per worker.
    pub workers: BTreeMap<String, usize>,
    /// Leases with no owner.
    pub free: usize,
    /// Held leases whose counter did not move.
    pub stale: usize,
}

/// Compares two reads of the table (pure).
pub fn compare(
    table: &str,
    region: &str,
    interval: Duration,
    first: &[Lease],
    second: &[Lease],
) -> StatusReport {
    let before: BTreeMap<&str, u64> = first.iter().map(|l| (l.key.as_str(), l.counter)).collect();
    let mut leases: Vec<LeaseStatus> = second
        .iter()
        .map(|l| LeaseStatus {
            key: l.key.clone(),
            shard_id: l.shard_id().to_owned(),
            owner: l.owner.clone(),
            checkpoint: l.checkpoint.as_str().to_owned(),
            sub_sequence_number: l.checkpoint.sub_sequence_number(),
            counter: l.counter,
            parents: l.parent_shard_ids.clone(),
            stale: l.owner.is_some()
                && l.checkpoint != Checkpoint::ShardEnd
                && before.get(l.key.as_str()) == Some(&l.counter),
            ended: l.checkpoint == Checkpoint::ShardEnd,
            millis_behind_latest: l.millis_behind_latest,
        })
        .collect();
    leases.sort_by(|a, b| a.key.cmp(&b.key));
    let mut workers = BTreeMap::new();
    for lease in leases.iter().filter(|l| !l.ended) {
        if let Some(owner) = &lease.owner {
            *workers.entry(owner.clone()).or_default() += 1;
        }
    }
    StatusReport {
        table: table.to_owned(),
        region: region.to_owned(),
        interval_secs: interval.as_secs_f64(),
        free: leases
            .iter()
            .filter(|l| l.owner.is_none() && !l.ended)
            .count(),
        stale: leases.iter().filter(|l| l.stale).count(),
        workers,
        leases,
    }
}

impl StatusReport {
    /// The human-readable table.
    pub fn to_text(&self) -> String {
        use std::fmt::Write as _;
        let mut out = format!(
            "lease table {} in {}: {} leases, {} free, {} stale (read twice, {:.1} s apart)\n",
            self.table,
            self.region,
            self.leases.len(),
            self.free,
            self.stale,
            self.interval_secs
        );
        let _ = writeln!(
            out,
            "{:<28} {:<32} {:>8}  {:<6} {:>10} {:<24} checkpoint",
            "shard", "owner", "counter", "state", "behind", "parents"
        );
        for l in &self.leases {
            let state = if l.stale {
                "STALE"
            } else if l.ended {
                "ended"
            } else if l.owner.is_some() {
                "held"
            } else {
                "free"
            };
            let mut checkpoint = l.checkpoint.clone();
            if l.sub_sequence_number > 0 {
                let _ = write!(checkpoint, " (sub {})", l.sub_sequence_number);
            }
            let parents = if l.parents.is_empty() {
                "-".to_owned()
            } else {
                l.parents.join(",")
            };
            let behind = l.millis_behind_latest.map_or_else(
                || "-".to_owned(),
                |ms| humantime::format_duration(Duration::from_secs(ms / 1000)).to_string(),
            );
            let _ = writeln!(
                out,
                "{:<28} {:<32} {:>8}  {:<6} {:>10} {:<24} {}",
                l.shard_id,
                l.owner.as_deref().unwrap_or("-"),
                l.counter,
                state,
                behind,
                parents,
                checkpoint
            );
        }
        out.push_str("workers:\n");
        if self.workers.is_empty() {
            out.push_str("  none holds a lease\n");
        }
        for (worker, n) in &self.workers {
            let _ = writeln!(out, "  {worker}: {n} leases");
        }
        out
    }
}

/// Runs `status`: one report per region the streams are read in (each region
/// has its own lease table); `--json` prints them as a JSON array.
pub fn run(args: &StatusArgs) -> anyhow::Result<ExitCode> {
    let config = Config::load(&args.config.path())?;
    let table = config.collector.application.clone();
    anyhow::ensure!(
        !table.is_empty(),
        "collector.application is not set: it names the lease table"
    );
    let wait = args.wait.unwrap_or_else(|| config.lease.renew_interval());
    let mut regions: Vec<Option<String>> = config
        .streams
        .0
        .iter()
        .flat_map(|s| s.target_regions())
        .collect();
    regions.sort();
    regions.dedup();
    if regions.is_empty() {
        regions.push(None);
    }
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()?;
    let reports = runtime.block_on(async {
        let mut stores = Vec::new();
        for region in regions {
            let target = AwsTarget {
                region,
                ..AwsTarget::default()
            };
            let sdk = sdk_config(&target, "kinesis-collector-status").await?;
            let name = sdk.region().map(ToString::to_string).unwrap_or_default();
            let client = aws_sdk_dynamodb::Client::new(&sdk);
            stores.push((name, DynamoDbLeaseStore::new(client, table.clone())));
        }
        let mut first = Vec::new();
        for (region, store) in &stores {
            let leases = store.list().await;
            first
                .push(leases.map_err(|e| anyhow::anyhow!("lease table {table} in {region}: {e}"))?);
        }
        tokio::time::sleep(wait).await;
        let mut reports = Vec::new();
        for ((region, store), first) in stores.iter().zip(first) {
            let second = store
                .list()
                .await
                .map_err(|e| anyhow::anyhow!("lease table {table} in {region}: {e}"))?;
            reports.push(compare(&table, region, wait, &first, &second));
        }
        anyhow::Ok(reports)
    })?;
    if args.json {
        println!("{}", serde_json::to_string_pretty(&reports)?);
    } else {
        for report in &reports {
            print!("{}", report.to_text());
        }
    }
    Ok(ExitCode::SUCCESS)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn lease(key: &str, owner: Option<&str>, counter: u64) -> Lease {
        let mut l = Lease::new(
            key,
            Checkpoint::at("49590338271490256608559692538361571095921575989136588898"),
        );
        l.owner = owner.map(str::to_owned);
        l.counter = counter;
        l
    }

    #[test]
    fn held_leases_whose_counter_did_not_move_are_stale() {
        let first = [
            lease("a", Some("w1"), 5),
            lease("b", Some("w2"), 7),
            lease("c", None, 1),
        ];
        let mut b = lease("b", Some("w2"), 9);
        b.parent_shard_ids = vec!["shardId-0".into()];
        b.millis_behind_latest = Some(3_723_000);
        let second = [
            lease("a", Some("w1"), 5),
            b,
            lease("c", None, 1),
            lease("d", Some("w2"), 1),
        ];
        let mut ended_first = lease("e", Some("w1"), 4);
        ended_first.checkpoint = Checkpoint::ShardEnd;
        let (first, second) = (
            [&first[..], &[ended_first.clone()]].concat(),
            [&second[..], &[ended_first]].concat(),
        );
        let report = compare("t", "eu-west-1", Duration::from_secs(3), &first, &second);
        let stale: Vec<&str> = report
            .leases
            .iter()
            .filter(|l| l.stale)
            .map(|l| l.key.as_str())
            .collect();
        assert_eq!(
            stale,
            ["a"],
            "a free lease, a new one and a finished one are not stale"
        );
        assert!(report.leases[4].ended);
        assert_eq!(
            report.workers,
            BTreeMap::from([("w1".into(), 1), ("w2".into(), 2)])
        );
        assert_eq!((report.free, report.stale), (1, 1));
        let text = report.to_text();
        assert!(text.contains("STALE"), "{text}");
        assert!(text.contains("shardId-0"), "{text}");
        let line_e = text.lines().find(|l| l.starts_with("e ")).unwrap();
        assert!(line_e.contains("ended"), "{line_e}");
        let line_b = text.lines().find(|l| l.starts_with("b ")).unwrap();
        assert!(line_b.contains("1h 2m 3s"), "{line_b}");
        let json = serde_json::to_value(&report).unwrap();
        assert_eq!(json["leases"][0]["stale"], true);
        assert_eq!(
            json["leases"][0]["millis_behind_latest"],
            serde_json::Value::Null
        );
        assert_eq!(json["leases"][1]["millis_behind_latest"], 3_723_000);
    }
}
