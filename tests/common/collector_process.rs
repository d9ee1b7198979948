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
use std::sync::Mutex;
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
    config_with(application, streams, port, "200ms", "")
}

/// [`config_text`] with checkpoints every `checkpoint_interval` and `extra`
/// sections (e.g. `[http]`) added. `streams` may start with more `[collector]`
/// keys, such as `worker_id`.
pub fn config_with(
    application: &str,
    streams: &str,
    port: u16,
    checkpoint_interval: &str,
    extra: &str,
) -> String {
    format!(
        "[collector]\napplication = \"{application}\"\n{streams}\n[metrics]\nlevel = \"none\"\n{}{extra}",
        super::collector::test_sections("", checkpoint_interval, port)
    )
}

/// A free `127.0.0.1` address to give the collector's `[http] listen`.
pub fn free_address() -> std::net::SocketAddr {
    let probe = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    probe.local_addr().unwrap()
}

/// Counter `kinesis_collector_<name>_total` of `shard_id` from the Prometheus
/// endpoint at `http`; `None` while it does not answer or has no such series.
pub async fn shard_counter(http: std::net::SocketAddr, name: &str, shard_id: &str) -> Option<u64> {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let mut stream = tokio::net::TcpStream::connect(http).await.ok()?;
    stream
        .write_all(b"GET /metrics HTTP/1.1\r\nHost: test\r\nConnection: close\r\n\r\n")
        .await
        .ok()?;
    let mut text = String::new();
    stream.read_to_string(&mut text).await.ok()?;
    let prefix = format!("kinesis_collector_{name}_total{{");
    let label = format!("shard_id=\"{shard_id}\"");
    text.lines()
        .find(|l| l.starts_with(&prefix) && l.contains(&label))?
        .rsplit_once(' ')?
        .1
        .parse()
        .ok()
}

/// A running collector process.
pub struct CollectorProcess {
    child: Mutex<Child>,
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
            child: Mutex::new(command.spawn().expect("start kinesis-collector")),
            stderr,
            _dir: dir,
        }
    }

    /// What the collector logged so far.
    pub fn log(&self) -> String {
        std::fs::read_to_string(&self.stderr).unwrap_or_default()
    }

    /// The exit status, once the process has exited.
    fn exited(&self) -> Option<ExitStatus> {
        let mut child = self.child.lock().unwrap_or_else(|e| e.into_inner());
        child.try_wait().unwrap()
    }

    /// Panics with the collector's log if it has exited.
    pub fn assert_running(&self) {
        if let Some(status) = self.exited() {
            panic!("collector exited early ({status}):\n{}", self.log());
        }
    }

    /// Waits (bounded) until `receiver` got every number of `want`; panics with
    /// the collector's log if it exits first or time runs out.
    pub async fn wait_delivered(
        &self,
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
            self.assert_running();
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
        self,
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
    pub async fn stop(self) -> (ExitStatus, String) {
        if self.exited().is_none() {
            let pid = self.child.lock().unwrap().id();
            // SAFETY: signalling our own child process, which has not been reaped.
            unsafe { libc::kill(pid as i32, libc::SIGINT) };
        }
        self.wait_exit(Duration::from_secs(20)).await
    }

    /// Waits (bounded) until the process exits by itself; returns the exit status
    /// and the log.
    pub async fn wait_exit(self, timeout: Duration) -> (ExitStatus, String) {
        let deadline = tokio::time::Instant::now() + timeout;
        loop {
            if let Some(status) = self.exited() {
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
        let child = self.child.get_mut().unwrap_or_else(|e| e.into_inner());
        if let Ok(None) = child.try_wait() {
            let _ = child.kill();
            let _ = child.wait();
        }
    }
}
