//! `run`: the main job. Loads the configuration, starts the collector on a tokio
//! runtime, and stops it cleanly on SIGTERM / SIGINT (a second signal exits at
//! once with status 130).

use std::process::ExitCode;

use anyhow::Context as _;
use tokio_util::sync::CancellationToken;

use crate::app::App;
use crate::cli::ConfigArg;
use crate::config::Config;
use crate::shutdown;

/// Runs until a clean stop (exit 0) or a fatal error (returned: exit 1).
pub fn run(args: &ConfigArg) -> anyhow::Result<ExitCode> {
    let path = args.path();
    let config = Config::load(&path)?;
    let app = App::new(config).with_context(|| format!("config file {}", path.display()))?;
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .thread_name("kinesis-collector")
        .build()
        .context("cannot start the async runtime")?;
    runtime.block_on(async {
        let root = CancellationToken::new();
        tokio::select! {
            result = app.run(root.clone()) => result.map(|_| ExitCode::SUCCESS).map_err(anyhow::Error::from),
            () = shutdown::watch(root.clone()) => unreachable!("watch exits the process on a second signal"),
        }
    })
}
