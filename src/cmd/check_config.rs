//! `check-config`: validate the configuration and list every problem.

use std::process::ExitCode;

use crate::cli::ConfigArg;
use crate::config::Config;

/// Prints "ok" and returns 0 for a valid file; prints every problem and returns 1.
pub fn run(args: &ConfigArg) -> ExitCode {
    let path = args.path();
    match Config::load(&path) {
        Ok(_) => {
            println!("ok");
            ExitCode::SUCCESS
        }
        Err(err) => {
            eprintln!("{err}");
            ExitCode::from(1)
        }
    }
}
