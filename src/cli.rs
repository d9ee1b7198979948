//! Command-line interface: global flags, the subcommands, and logging set-up.

use std::path::PathBuf;
use std::process::ExitCode;

use clap::{Args, Parser, Subcommand, ValueEnum};

use crate::cmd;
use crate::config::{self, Config};
use crate::format::BodyFormat;

/// Forwards CloudTrail and VPC flow logs from Kinesis Data Streams to a SIEM.
#[derive(Debug, Parser)]
#[command(name = "kinesis-collector", version, about, propagate_version = true)]
pub struct Cli {
    /// Log output format on stderr (levels and filters come from RUST_LOG, e.g.
    /// `RUST_LOG=info,kinesis_collector=debug`).
    #[arg(long, global = true, value_enum, default_value_t = LogFormat::Text)]
    pub log_format: LogFormat,
    /// What to do.
    #[command(subcommand)]
    pub command: Command,
}

/// How logs are written.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum LogFormat {
    /// Human-readable lines.
    Text,
    /// One JSON object per line.
    Json,
}

/// The subcommands.
#[derive(Debug, Subcommand)]
pub enum Command {
    /// Run the collector: take shard leases, read the streams, forward every event
    /// to the SIEM, checkpoint what it acknowledged.
    ///
    /// SIGTERM or SIGINT stops cleanly (drain bounded by `shutdown.drain_timeout`,
    /// final checkpoints, leases released) and exits 0; a second signal exits at
    /// once with status 130. A fatal error exits 1 with the reason. `--once` runs
    /// the connectivity dry run instead (the same as the `once` command).
    Run(RunArgs),
    /// Decode recorded Kinesis data offline and print the events it holds.
    ///
    /// Each FILE is either the raw data of one record (gzip, a CloudWatch Logs
    /// envelope, or text) or the JSON that `aws kinesis get-records` prints. `-`
    /// reads standard input. Bad records are reported on stderr and decoding goes
    /// on; the exit status is 1 if any record was bad.
    Decode(DecodeArgs),
    /// Validate the configuration file, listing every problem; prints "ok" if valid.
    CheckConfig(ConfigArg),
    /// Connectivity dry run: try every call the collector makes, once, for each
    /// stream and region (credentials, Kinesis, lease table, CloudWatch, sink) and
    /// print one line per check. Takes no lease and moves no checkpoint; exit
    /// status 0 only if every check passed.
    Once(cmd::once::OnceArgs),
    /// Show the lease table: per shard its owner, checkpoint, counter and parent,
    /// per worker its lease count, and which leases look stale.
    Status(cmd::status::StatusArgs),
}

/// Arguments of `run`.
#[derive(Debug, Args)]
pub struct RunArgs {
    #[command(flatten)]
    pub config: ConfigArg,
    /// Do not run: check connectivity once, as `kinesis-collector once` does.
    #[arg(long)]
    pub once: bool,
    /// With `--once`: also send one `[FSM-AWSKinesis]` test event to the SIEM.
    #[arg(long, requires = "once")]
    pub send_test_event: bool,
}

/// `--config FILE`, taken by every command.
#[derive(Debug, Clone, Args)]
pub struct ConfigArg {
    /// Configuration file.
    #[arg(
        long,
        short = 'c',
        value_name = "FILE",
        env = "KINESIS_COLLECTOR_CONFIG"
    )]
    pub config: Option<PathBuf>,
}

impl ConfigArg {
    /// The path named, or the default one.
    pub fn path(&self) -> PathBuf {
        self.config
            .clone()
            .unwrap_or_else(|| PathBuf::from(config::DEFAULT_PATH))
    }

    /// Loads the configuration; when no path was given and the default file does not
    /// exist, the built-in defaults (for offline commands such as `decode`).
    pub fn load_or_default(&self) -> Result<Config, config::ConfigError> {
        match &self.config {
            Some(path) => Config::load(path),
            None if !std::path::Path::new(config::DEFAULT_PATH).exists() => {
                tracing::debug!(
                    path = config::DEFAULT_PATH,
                    "no config file, using defaults"
                );
                Ok(Config::default())
            }
            None => Config::load(std::path::Path::new(config::DEFAULT_PATH)),
        }
    }
}

/// Arguments of `decode`.
#[derive(Debug, Args)]
pub struct DecodeArgs {
    #[command(flatten)]
    pub config: ConfigArg,
    /// Output format of each event.
    #[arg(long, value_enum, default_value_t = BodyFormat::Fsm)]
    pub format: BodyFormat,
    /// Input files (`-` for standard input); standard input when none is given.
    #[arg(value_name = "FILE")]
    pub files: Vec<PathBuf>,
}

impl Cli {
    /// Sets up the tracing subscriber on stderr.
    pub fn init_logging(&self) {
        let filter = tracing_subscriber::EnvFilter::try_from_default_env()
            .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("info"));
        let builder = tracing_subscriber::fmt()
            .with_env_filter(filter)
            .with_writer(std::io::stderr);
        match self.log_format {
            LogFormat::Text => builder.init(),
            LogFormat::Json => builder.json().init(),
        }
    }

    /// Runs the command.
    pub fn run(self) -> anyhow::Result<ExitCode> {
        match self.command {
            Command::Run(args) if args.once => cmd::once::run(&cmd::once::OnceArgs {
                config: args.config,
                send_test_event: args.send_test_event,
            }),
            Command::Run(args) => cmd::run::run(&args.config),
            Command::Decode(args) => cmd::decode::run(&args),
            Command::CheckConfig(args) => Ok(cmd::check_config::run(&args)),
            Command::Once(args) => cmd::once::run(&args),
            Command::Status(args) => cmd::status::run(&args),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_cli_is_well_formed() {
        use clap::CommandFactory;
        Cli::command().debug_assert();
    }
}
