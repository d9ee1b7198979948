//! The `kinesis-collector` binary: parse the command line, set up logging, run the
//! command, and turn its outcome into an exit status (0 success, 1 a failure the
//! command reported, 2 usage).

use std::process::ExitCode;

use clap::Parser;

fn main() -> ExitCode {
    let cli = kinesis_collector::cli::Cli::parse();
    cli.init_logging();
    match cli.run() {
        Ok(code) => code,
        Err(err) => {
            eprintln!("kinesis-collector: error: {err:#}");
            ExitCode::from(1)
        }
    }
}
