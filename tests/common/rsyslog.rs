//! A real rsyslog receiver for sink tests: started on 127.0.0.1 with a random port
//! and a config of the test's own, writing each message it receives (raw, and as
//! rsyslog parsed it) to files in its own temporary directory.

use std::fmt::Write as _;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

/// Which input rsyslog listens with.
#[derive(Debug, Clone)]
pub enum Input {
    /// imtcp (octet-counted and newline framing both accepted).
    Tcp,
    /// imtcp with TLS via the `gtls` or `ossl` driver; `auth_mode` `anon` accepts
    /// any client, `x509/certvalid` requires a client certificate from `ca`.
    Tls {
        driver: &'static str,
        auth_mode: &'static str,
        ca: PathBuf,
        cert: PathBuf,
        key: PathBuf,
    },
    /// imrelp.
    Relp,
    /// imrelp with TLS (`tls="on"`) through librelp's `tls_lib` (`gnutls` or
    /// `openssl`), presenting `cert`. librelp has no anonymous mode once it has a
    /// certificate: clients must present one from `ca` naming `collector-1`.
    RelpTls {
        tls_lib: &'static str,
        ca: PathBuf,
        cert: PathBuf,
        key: PathBuf,
    },
    /// imudp.
    Udp,
}

/// A running rsyslogd.
pub struct Rsyslog {
    pub port: u16,
    pub dir: tempfile::TempDir,
    input: Input,
    /// Drop every message instead of writing files (benchmarks).
    discard: bool,
    child: Option<Child>,
}

/// Fails with a clear message when rsyslogd is missing (scripts/setup-test-deps
/// installs it); never skips.
pub fn rsyslogd() -> &'static str {
    const PATHS: [&str; 2] = ["/usr/sbin/rsyslogd", "/sbin/rsyslogd"];
    PATHS
        .into_iter()
        .find(|p| Path::new(p).exists())
        .expect("rsyslogd not found: run scripts/setup-test-deps (installs Debian's rsyslog, rsyslog-gnutls, rsyslog-openssl, rsyslog-relp)")
}

pub fn free_port(udp: bool) -> u16 {
    if udp {
        std::net::UdpSocket::bind("127.0.0.1:0")
            .unwrap()
            .local_addr()
            .unwrap()
            .port()
    } else {
        std::net::TcpListener::bind("127.0.0.1:0")
            .unwrap()
            .local_addr()
            .unwrap()
            .port()
    }
}

impl Rsyslog {
    /// Starts rsyslogd on a free port and waits until it listens.
    pub fn start(input: Input) -> Rsyslog {
        let port = free_port(matches!(input, Input::Udp));
        Rsyslog::start_on(input, port)
    }

    /// Starts rsyslogd on `port` and waits until it listens.
    pub fn start_on(input: Input, port: u16) -> Rsyslog {
        Rsyslog::start_with(input, port, false)
    }

    /// Starts rsyslogd on a free port, dropping what it receives (for benchmarks).
    pub fn start_discarding(input: Input) -> Rsyslog {
        let port = free_port(matches!(input, Input::Udp));
        Rsyslog::start_with(input, port, true)
    }

    fn start_with(input: Input, port: u16, discard: bool) -> Rsyslog {
        let dir = tempfile::tempdir().unwrap();
        let mut rs = Rsyslog {
            port,
            dir,
            input,
            discard,
            child: None,
        };
        rs.write_config();
        rs.restart();
        rs
    }

    fn write_config(&self) {
        let d = self.dir.path().display();
        let port = self.port;
        let mut conf = String::new();
        let _ = writeln!(conf, "global(workDirectory=\"{d}\" maxMessageSize=\"300k\"");
        if let Input::Tls { ca, cert, key, .. } = &self.input {
            let _ = write!(
                conf,
                " defaultNetstreamDriverCAFile=\"{}\" defaultNetstreamDriverCertFile=\"{}\" defaultNetstreamDriverKeyFile=\"{}\"",
                ca.display(),
                cert.display(),
                key.display()
            );
        }
        conf.push_str(")\n");
        let input = match &self.input {
            Input::Tcp => format!(
                "module(load=\"imtcp\" maxFrameSize=\"300000\")\ninput(type=\"imtcp\" address=\"127.0.0.1\" port=\"{port}\" ruleset=\"r\")"
            ),
            Input::Tls { driver, auth_mode, .. } => format!(
                "module(load=\"imtcp\" maxFrameSize=\"300000\" streamDriver.name=\"{driver}\" streamDriver.mode=\"1\" streamDriver.authMode=\"{auth_mode}\")\n\
                 input(type=\"imtcp\" address=\"127.0.0.1\" port=\"{port}\" ruleset=\"r\")"
            ),
            Input::Relp => format!(
                "module(load=\"imrelp\")\ninput(type=\"imrelp\" address=\"127.0.0.1\" port=\"{port}\" ruleset=\"r\" maxDataSize=\"300k\")"
            ),
            Input::RelpTls {
                tls_lib,
                ca,
                cert,
                key,
            } => format!(
                "module(load=\"imrelp\" tls.tlslib=\"{tls_lib}\")\n\
                 input(type=\"imrelp\" address=\"127.0.0.1\" port=\"{port}\" ruleset=\"r\" maxDataSize=\"300k\" \
                 tls=\"on\" tls.caCert=\"{}\" tls.myCert=\"{}\" tls.myPrivKey=\"{}\" \
                 tls.authMode=\"name\" tls.permittedPeer=[\"collector-1\"])",
                ca.display(),
                cert.display(),
                key.display()
            ),
            Input::Udp => format!(
                "module(load=\"imudp\")\ninput(type=\"imudp\" address=\"127.0.0.1\" port=\"{port}\" ruleset=\"r\")"
            ),
        };
        conf.push_str(&input);
        if self.discard {
            conf.push_str("\nruleset(name=\"r\") { action(type=\"omfile\" file=\"/dev/null\") }\n");
            std::fs::write(self.dir.path().join("rs.conf"), conf).unwrap();
            return;
        }
        let _ = write!(
            conf,
            r#"
template(name="raw" type="string" string="%rawmsg%\n")
template(name="parsed" type="string" string="pri=%pri% ts=%timereported:::date-rfc3339% host=%hostname% app=%app-name% sd=%structured-data% msg=%msg%\n")
ruleset(name="r") {{
  action(type="omfile" file="{d}/raw.log" template="raw")
  action(type="omfile" file="{d}/parsed.log" template="parsed")
}}
"#
        );
        std::fs::write(self.dir.path().join("rs.conf"), conf).unwrap();
    }

    /// Starts (again) on the same port; appends to the same files.
    pub fn restart(&mut self) {
        self.stop();
        let conf = self.dir.path().join("rs.conf");
        let pid = self.dir.path().join("rs.pid");
        let log = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(self.dir.path().join("rsyslogd.stderr"))
            .unwrap();
        let child = Command::new(rsyslogd())
            .arg("-n")
            .arg("-f")
            .arg(&conf)
            .arg("-i")
            .arg(&pid)
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(log)
            .spawn()
            .expect("cannot start rsyslogd");
        self.child = Some(child);
        let deadline = Instant::now() + Duration::from_secs(15);
        while !self.listening() {
            if let Some(status) = self.child.as_mut().unwrap().try_wait().unwrap() {
                panic!(
                    "rsyslogd exited with {status} before listening on port {}; config:\n{}",
                    self.port,
                    std::fs::read_to_string(&conf).unwrap()
                );
            }
            assert!(
                Instant::now() < deadline,
                "rsyslogd does not listen on 127.0.0.1:{} after 15 s",
                self.port
            );
            std::thread::sleep(Duration::from_millis(20));
        }
    }

    /// Whether the port is bound (read from /proc, so no test connection is made).
    fn listening(&self) -> bool {
        let (file, state) = match self.input {
            Input::Udp => ("/proc/net/udp", "07"),
            _ => ("/proc/net/tcp", "0A"),
        };
        let needle = format!("0100007F:{:04X}", self.port);
        std::fs::read_to_string(file).unwrap().lines().any(|l| {
            let f: Vec<&str> = l.split_whitespace().collect();
            f.len() > 3 && f[1] == needle && f[3] == state
        })
    }

    /// SIGTERM and wait.
    pub fn stop(&mut self) {
        if let Some(mut child) = self.child.take() {
            signal(&child, libc::SIGCONT);
            signal(&child, libc::SIGTERM);
            let _ = child.wait();
        }
    }

    /// SIGSTOP: the process stops reading; the kernel still takes bytes until its
    /// receive buffer is full.
    pub fn pause(&self) {
        signal(self.child.as_ref().unwrap(), libc::SIGSTOP);
    }

    /// SIGCONT after [`Rsyslog::pause`].
    pub fn resume(&self) {
        signal(self.child.as_ref().unwrap(), libc::SIGCONT);
    }

    pub fn address(&self) -> String {
        format!("127.0.0.1:{}", self.port)
    }

    /// The raw messages received so far, one per line.
    pub fn raw_lines(&self) -> Vec<String> {
        read_lines(&self.dir.path().join("raw.log"))
    }

    /// The parsed view (`pri= ts= host= app= sd= msg=`), one per message.
    pub fn parsed_lines(&self) -> Vec<String> {
        read_lines(&self.dir.path().join("parsed.log"))
    }

    /// Waits until `n` raw lines are there (or panics after `timeout`).
    pub fn wait_raw(&self, n: usize, timeout: Duration) -> Vec<String> {
        self.wait_lines(Self::raw_lines, n, timeout)
    }

    /// Waits until `n` parsed lines are there (rsyslog writes the two files one
    /// after the other: the raw one may be complete before the parsed one).
    pub fn wait_parsed(&self, n: usize, timeout: Duration) -> Vec<String> {
        self.wait_lines(Self::parsed_lines, n, timeout)
    }

    fn wait_lines(
        &self,
        read: fn(&Self) -> Vec<String>,
        n: usize,
        timeout: Duration,
    ) -> Vec<String> {
        let deadline = Instant::now() + timeout;
        loop {
            let lines = read(self);
            if lines.len() >= n {
                return lines;
            }
            assert!(
                Instant::now() < deadline,
                "rsyslog got {} of {n} messages in {timeout:?} (lengths {:?}); its stderr:\n{}",
                lines.len(),
                lines.iter().map(String::len).collect::<Vec<_>>(),
                std::fs::read_to_string(self.dir.path().join("rsyslogd.stderr"))
                    .unwrap_or_default()
            );
            std::thread::sleep(Duration::from_millis(20));
        }
    }
}

impl Drop for Rsyslog {
    fn drop(&mut self) {
        self.stop();
    }
}

fn signal(child: &Child, sig: libc::c_int) {
    // SAFETY: kill(2) on the pid of a child this test started and has not reaped.
    unsafe {
        libc::kill(child.id() as libc::pid_t, sig);
    }
}

fn read_lines(path: &Path) -> Vec<String> {
    match std::fs::read_to_string(path) {
        Ok(text) => text.lines().map(str::to_owned).collect(),
        Err(_) => Vec::new(),
    }
}
