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
            eprintln!("kinesis-collector: error: {}", error_line(&err));
            ExitCode::from(1)
        }
    }
}

/// The error and its causes, `: `-separated, leaving out a cause whose text the
/// line already holds: most of the crate's errors name their source in their own
/// message too, which `{err:#}` would print again (four times for a missing stream).
fn error_line(err: &anyhow::Error) -> String {
    let mut line = err.to_string();
    for cause in err.chain().skip(1) {
        let cause = cause.to_string();
        if !line.contains(&cause) {
            line.push_str(": ");
            line.push_str(&cause);
        }
    }
    line
}
