//! The `kinesis-collector run` binary as a child process, for tests about what a
//! process takes from its environment (regions, proxies, credentials): a config
//! file of the test's own, the test's environment variables on top of the
//! emulators' (proxy variables of the developer's shell removed), bounded waits
//! that fail early with the collector's log when it exits, a clean stop by SIGINT.
//!
//! Use with `mod common { pub mod aws; pub mod collector; pub mod collector_process; }`.
#![allow(dead_code)] // each test binary uses a different part of it

use std::collections::BTreeSet;
use std::path::PathBuf;
use std::process::{Child, Command, ExitStatus, Stdio};
use std::time::Duration;

use super::aws;
use super::collector::Receiver;

/// Proxy variables the SDK reads (both spellings): never inherited from the
/// shell that runs the tests, only set by a test.
pub const PROXY_VARIABLES: [&str; 8] = [
    "HTTP_PROXY",
    "http_proxy",
    "HTTPS_PROXY",
    "https_proxy",
    "ALL_PROXY",
    "all_proxy",
    "NO_PROXY",
    "no_proxy",
];

/// A config of `application` with `streams` (`[[streams]]` tables) and the
/// shared test sections (fast polls, leases and checkpoints, a TCP sink to `port`
/// without a syslog header), CloudWatch metrics off.
pub fn config_text(application: &str, streams: &str, port: u16) -> String {
    format!(
        "[collector]\napplication = \"{application}\"\n{streams}\n[metrics]\nlevel = \"none\"\n{}",
        super::collector::test_sections("", port)
    )
}

/// A running collector process.
pub struct CollectorProcess {
    child: Child,
    stderr: PathBuf,
    _dir: tempfile::TempDir,
}

impl CollectorProcess {
    /// Writes `config` to a file and starts `kinesis-collector run` on it with
    /// `env` set (after the emulators' settings).
    pub fn start(config: &str, env: &[(&str, &str)]) -> CollectorProcess {
        aws::ensure_emulators();
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("collector.toml");
        std::fs::write(&path, config).unwrap();
        let stderr = dir.path().join("stderr");
        let mut command = Command::new(env!("CARGO_BIN_EXE_kinesis-collector"));
        command
            .args(["run", "--config"])
            .arg(&path)
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(std::fs::File::create(&stderr).unwrap());
        if std::env::var_os("RUST_LOG").is_none() {
            command.env("RUST_LOG", "info");
        }
        for key in PROXY_VARIABLES {
            command.env_remove(key);
        }
        for (key, value) in env {
            command.env(key, value);
        }
        CollectorProcess {
            child: command.spawn().expect("start kinesis-collector"),
            stderr,
            _dir: dir,
        }
    }

    /// What the collector logged so far.
    pub fn log(&self) -> String {
        std::fs::read_to_string(&self.stderr).unwrap_or_default()
    }

    /// Waits (bounded) until `receiver` got every number of `want`; panics with
    /// the collector's log if it exits first or time runs out.
    pub async fn wait_delivered(
        &mut self,
        receiver: &Receiver,
        want: &BTreeSet<u64>,
        timeout: Duration,
    ) {
        let deadline = tokio::time::Instant::now() + timeout;
        loop {
            let got: BTreeSet<u64> = receiver.seqs().into_iter().collect();
            if want.is_subset(&got) {
                return;
            }
            if let Some(status) = self.child.try_wait().unwrap() {
                panic!("collector exited early ({status}):\n{}", self.log());
            }
            assert!(
                tokio::time::Instant::now() < deadline,
                "timed out after {timeout:?}: {} of {} events delivered\n{}",
                want.intersection(&got).count(),
                want.len(),
                self.log()
            );
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }

    /// Waits until `want` is delivered, then stops cleanly and checks the exit
    /// status is 0; returns the log.
    pub async fn deliver_and_stop(
        mut self,
        receiver: &Receiver,
        want: &BTreeSet<u64>,
        timeout: Duration,
    ) -> String {
        self.wait_delivered(receiver, want, timeout).await;
        let (status, log) = self.stop().await;
        assert_eq!(status.code(), Some(0), "{log}");
        log
    }

    /// A clean stop (SIGINT); returns the exit status and the log.
    pub async fn stop(mut self) -> (ExitStatus, String) {
        if self.child.try_wait().unwrap().is_none() {
            // SAFETY: signalling our own child process, which has not been reaped.
            unsafe { libc::kill(self.child.id() as i32, libc::SIGINT) };
        }
        self.wait_exit(Duration::from_secs(20)).await
    }

    /// Waits (bounded) until the process exits by itself; returns the exit status
    /// and the log.
    pub async fn wait_exit(mut self, timeout: Duration) -> (ExitStatus, String) {
        let deadline = tokio::time::Instant::now() + timeout;
        loop {
            if let Some(status) = self.child.try_wait().unwrap() {
                return (status, self.log());
            }
            assert!(
                tokio::time::Instant::now() < deadline,
                "collector still runs after {timeout:?}:\n{}",
                self.log()
            );
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }
}

impl Drop for CollectorProcess {
    /// A test that failed half-way leaves no collector behind.
    fn drop(&mut self) {
        if let Ok(None) = self.child.try_wait() {
            let _ = self.child.kill();
            let _ = self.child.wait();
        }
    }
}
