//! The `[sink]` section: where and how events are delivered, checked with every
//! problem listed by its key.

use std::path::PathBuf;
use std::time::Duration;

use serde::Deserialize;

use crate::config::{units, Problems, Section};
use crate::format::BodyFormat;

/// How events travel to the receiver.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Transport {
    /// Plain TCP (RFC 6587).
    Tcp,
    /// TCP with TLS (RFC 5425), rustls.
    Tls,
    /// One event per UDP datagram (RFC 5426); acknowledged when sent.
    Udp,
    /// RELP, rsyslog's Reliable Event Logging Protocol: acknowledged by the receiver.
    Relp,
    /// RELP over TLS (rsyslog's imrelp with `tls="on"`), with the `tls` settings.
    #[serde(rename = "relp-tls")]
    RelpTls,
    /// Standard output, one event per line: for trying the collector out.
    #[default]
    Stdout,
}

impl Transport {
    /// The name used in the config file.
    pub fn as_str(self) -> &'static str {
        match self {
            Transport::Tcp => "tcp",
            Transport::Tls => "tls",
            Transport::Udp => "udp",
            Transport::Relp => "relp",
            Transport::RelpTls => "relp-tls",
            Transport::Stdout => "stdout",
        }
    }

    /// Whether the transport is a byte stream that needs `framing`.
    pub fn is_stream(self) -> bool {
        matches!(self, Transport::Tcp | Transport::Tls | Transport::Stdout)
    }

    /// Whether the transport runs over TLS (and takes the `tls` settings).
    pub fn uses_tls(self) -> bool {
        matches!(self, Transport::Tls | Transport::RelpTls)
    }
}

/// How messages are delimited on a stream transport (RFC 6587).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum Framing {
    /// `LEN SP MSG` (RFC 6587 3.4.1); messages are sent as they are.
    OctetCounting,
    /// `MSG LF`; LF and CR inside a message are written as `\n` and `\r`.
    Newline,
}

/// What precedes the body of each message.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Header {
    /// `<PRI>` and the body.
    #[default]
    Pri,
    /// `<PRI>1 TIMESTAMP HOSTNAME APP-NAME - - SD MSG` (RFC 5424).
    Rfc5424,
    /// `<PRI>Mmm dd hh:mm:ss HOSTNAME APP-NAME: MSG` (RFC 3164, UTC).
    Rfc3164,
    /// The bare body.
    None,
}

/// Where the syslog HOSTNAME field comes from.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum HostnameSource {
    /// `hostname`, or this machine's name.
    #[default]
    Collector,
    /// The AWS account that owns the log group.
    Owner,
    /// The log group's name.
    LogGroup,
}

/// Syslog facility (RFC 5424 6.2.1).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "lowercase")]
#[allow(missing_docs)]
pub enum Facility {
    Kern = 0,
    User,
    Mail,
    Daemon,
    Auth,
    Syslog,
    Lpr,
    News,
    Uucp,
    Cron,
    Authpriv,
    Ftp,
    Ntp,
    Security,
    Console,
    #[serde(rename = "solaris-cron")]
    SolarisCron,
    #[default]
    Local0,
    Local1,
    Local2,
    Local3,
    Local4,
    Local5,
    Local6,
    Local7,
}

/// Syslog severity (RFC 5424 6.2.1).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "lowercase")]
#[allow(missing_docs)]
pub enum Severity {
    Emerg = 0,
    Alert,
    Crit,
    Err,
    Warning,
    Notice,
    #[default]
    Info,
    Debug,
}

/// `[sink.tls]`: certificates for `transport = "tls"`.
#[derive(Debug, Clone, Default, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct TlsConfig {
    /// PEM file of the CA certificates that sign the receiver's certificate; when
    /// absent, the system's trusted roots.
    pub ca_file: Option<PathBuf>,
    /// PEM certificate chain presented to the receiver (mutual TLS); needs `key_file`.
    pub cert_file: Option<PathBuf>,
    /// PEM private key (PKCS#8, PKCS#1 or SEC1) of `cert_file`.
    pub key_file: Option<PathBuf>,
    /// Name to verify the receiver's certificate against (and send as SNI) instead of
    /// the host part of the address, e.g. when connecting by IP address.
    pub server_name: Option<String>,
    /// Accept any certificate: no verification at all. For tests only; every connect
    /// logs a warning.
    #[serde(default)]
    pub insecure_skip_verify: bool,
}

impl TlsConfig {
    fn set_keys(&self) -> Vec<&'static str> {
        let mut keys = Vec::new();
        if self.ca_file.is_some() {
            keys.push("ca_file");
        }
        if self.cert_file.is_some() {
            keys.push("cert_file");
        }
        if self.key_file.is_some() {
            keys.push("key_file");
        }
        if self.server_name.is_some() {
            keys.push("server_name");
        }
        if self.insecure_skip_verify {
            keys.push("insecure_skip_verify");
        }
        keys
    }
}

/// `[sink]` section.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SinkConfig {
    /// Receivers as `host:port` (`[v6addr]:port` for IPv6). The first that works is
    /// used; after a connection fails, attempts start at the next (wrapping around);
    /// names are resolved again at every connect (`udp`: every minute).
    #[serde(default)]
    pub addresses: Vec<String>,
    /// `tcp`, `tls`, `udp`, `relp`, `relp-tls` or `stdout`.
    #[serde(default)]
    pub transport: Transport,
    /// `octet-counting` or `newline`, for `tcp`, `tls` and `stdout`. Default:
    /// octet-counting on TLS (RFC 5425 requires it), newline otherwise.
    pub framing: Option<Framing>,
    /// `pri`, `rfc5424`, `rfc3164` or `none`.
    #[serde(default)]
    pub header: Header,
    /// Body of each message: `fsm` or `json`.
    #[serde(default)]
    pub format: BodyFormat,
    /// Syslog facility name (`local0`, `user`, `auth`, ...).
    #[serde(default)]
    pub facility: Facility,
    /// Syslog severity name (`info`, `notice`, ...).
    #[serde(default)]
    pub severity: Severity,
    /// Where HOSTNAME comes from: `collector`, `owner` (the AWS account) or
    /// `log_group`. Events without that field fall back to the collector's name.
    #[serde(default)]
    pub hostname_source: HostnameSource,
    /// The collector's HOSTNAME; default: this machine's host name.
    pub hostname: Option<String>,
    /// APP-NAME (RFC 5424) or TAG (RFC 3164), at most 48 printable ASCII characters.
    #[serde(default = "default_app_name")]
    pub app_name: String,
    /// With `header = "rfc5424"`: add structured data with the log group, stream,
    /// owner, class and the stream's tags.
    #[serde(default = "default_true")]
    pub structured_data: bool,
    /// Bytes of encoded events held between the readers and the receiver until it
    /// acknowledges them; when full, readers wait (nothing is dropped).
    #[serde(default = "default_queue_bytes", deserialize_with = "units::byte_size")]
    pub queue_bytes: u64,
    /// Longest wait for one connection attempt (TCP connect and TLS handshake).
    #[serde(
        default = "default_connect_timeout",
        deserialize_with = "units::duration"
    )]
    pub connect_timeout: Duration,
    /// Longest time sent events may wait for the receiver's acknowledgement (TCP/TLS:
    /// its TCP stack; RELP: its answer) without any progress; then the connection
    /// is dropped, the next address tried and the events sent again. Catches a
    /// receiver host that vanished without closing the connection, or one that
    /// stopped reading.
    #[serde(default = "default_ack_timeout", deserialize_with = "units::duration")]
    pub ack_timeout: Duration,
    /// First wait after a failed connection; doubles at each failure, with jitter.
    #[serde(
        default = "default_reconnect_min",
        deserialize_with = "units::duration"
    )]
    pub reconnect_min: Duration,
    /// Longest wait between connection attempts.
    #[serde(
        default = "default_reconnect_max",
        deserialize_with = "units::duration"
    )]
    pub reconnect_max: Duration,
    /// `udp`: largest datagram; longer events are truncated (and counted).
    #[serde(default = "default_max_datagram_bytes")]
    pub max_datagram_bytes: usize,
    /// `relp`: most events sent and not yet answered by the receiver (checked before
    /// each batch, so one batch may go past it).
    #[serde(default = "default_relp_window")]
    pub relp_window: usize,
    /// `tls` settings.
    #[serde(default)]
    pub tls: TlsConfig,
}

fn default_true() -> bool {
    true
}
fn default_app_name() -> String {
    "kinesis-collector".to_owned()
}
fn default_queue_bytes() -> u64 {
    64 * 1024 * 1024
}
fn default_connect_timeout() -> Duration {
    Duration::from_secs(10)
}
fn default_ack_timeout() -> Duration {
    Duration::from_secs(60)
}
fn default_reconnect_min() -> Duration {
    Duration::from_millis(500)
}
fn default_reconnect_max() -> Duration {
    Duration::from_secs(30)
}
fn default_max_datagram_bytes() -> usize {
    // Fits an IPv4 or IPv6 UDP datagram; receivers often accept less (rsyslog: 8 KiB
    // by default, raise `maxMessageSize`).
    65_000
}
fn default_relp_window() -> usize {
    1024
}

impl Default for SinkConfig {
    fn default() -> Self {
        toml::from_str("").expect("an empty [sink] is valid")
    }
}

impl SinkConfig {
    /// The framing in effect: the configured one, or the transport's default.
    /// Datagram and RELP messages carry their own length and need none.
    pub fn effective_framing(&self) -> Option<Framing> {
        match self.transport {
            Transport::Udp | Transport::Relp | Transport::RelpTls => None,
            Transport::Tls => Some(self.framing.unwrap_or(Framing::OctetCounting)),
            Transport::Tcp | Transport::Stdout => Some(self.framing.unwrap_or(Framing::Newline)),
        }
    }
}

impl Section for SinkConfig {
    const KEY: &'static str = "sink";

    fn validate(&self, problems: &mut Problems) {
        let t = self.transport.as_str();
        if self.transport == Transport::Stdout {
            if !self.addresses.is_empty() {
                problems.push(
                    "sink.addresses",
                    "transport \"stdout\" takes no addresses (remove them or set transport)",
                );
            }
        } else if self.addresses.is_empty() {
            problems.push(
                "sink.addresses",
                format!("transport {t:?} needs at least one \"host:port\" address"),
            );
        }
        for (i, address) in self.addresses.iter().enumerate() {
            if let Err(why) = parse_address(address) {
                problems.push(format!("sink.addresses[{i}]"), why);
            }
        }
        if self.framing.is_some() && !self.transport.is_stream() {
            problems.push(
                "sink.framing",
                format!("transport {t:?} frames each message itself: remove framing"),
            );
        }
        if !self.transport.uses_tls() {
            for key in self.tls.set_keys() {
                problems.push(
                    format!("sink.tls.{key}"),
                    format!("only used with transport \"tls\" or \"relp-tls\", not {t:?}"),
                );
            }
        }
        if self.tls.cert_file.is_some() != self.tls.key_file.is_some() {
            problems.push(
                "sink.tls",
                "cert_file and key_file go together: set both for mutual TLS, or neither",
            );
        }
        for (key, path) in [
            ("ca_file", &self.tls.ca_file),
            ("cert_file", &self.tls.cert_file),
            ("key_file", &self.tls.key_file),
        ] {
            if let Some(path) = path {
                if let Err(err) = std::fs::metadata(path) {
                    problems.push(
                        format!("sink.tls.{key}"),
                        format!("cannot read {}: {err}", path.display()),
                    );
                }
            }
        }
        if let Some(name) = &self.tls.server_name {
            if rustls_pki_types::ServerName::try_from(name.as_str()).is_err() {
                problems.push(
                    "sink.tls.server_name",
                    format!("{name:?} is not a DNS name or IP address"),
                );
            }
        }
        if let Some(name) = &self.hostname {
            check_printable("sink.hostname", name, 255, problems);
        }
        check_printable("sink.app_name", &self.app_name, 48, problems);
        const MIN_QUEUE: u64 = 64 * 1024;
        const MAX_QUEUE: u64 = 4 * 1024 * 1024 * 1024 - 1;
        if !(MIN_QUEUE..=MAX_QUEUE).contains(&self.queue_bytes) {
            problems.push(
                "sink.queue_bytes",
                format!(
                    "{} bytes is out of range: use 64 KiB to 4 GiB",
                    self.queue_bytes
                ),
            );
        }
        if self.connect_timeout.is_zero() {
            problems.push("sink.connect_timeout", "must be more than zero");
        }
        if self.ack_timeout.is_zero() {
            problems.push("sink.ack_timeout", "must be more than zero");
        }
        if self.reconnect_min.is_zero() {
            problems.push("sink.reconnect_min", "must be more than zero");
        }
        if self.reconnect_max < self.reconnect_min {
            problems.push(
                "sink.reconnect_max",
                format!(
                    "{} is less than reconnect_min ({})",
                    humantime::format_duration(self.reconnect_max),
                    humantime::format_duration(self.reconnect_min)
                ),
            );
        }
        if !(480..=65_507).contains(&self.max_datagram_bytes) {
            problems.push(
                "sink.max_datagram_bytes",
                format!(
                    "{} is out of range: use 480 to 65507",
                    self.max_datagram_bytes
                ),
            );
        }
        if !(1..=100_000).contains(&self.relp_window) {
            problems.push(
                "sink.relp_window",
                format!("{} is out of range: use 1 to 100000", self.relp_window),
            );
        }
    }
}

/// Splits `host:port` (or `[v6]:port`) into host and port.
pub fn parse_address(address: &str) -> Result<(&str, u16), String> {
    let Some((host, port)) = address.rsplit_once(':') else {
        return Err(format!("{address:?} has no port: write \"host:port\""));
    };
    let host = match host.strip_prefix('[') {
        Some(inner) => inner
            .strip_suffix(']')
            .ok_or_else(|| format!("{address:?} has an unclosed '['"))?,
        None if host.contains(':') => {
            return Err(format!(
                "{address:?}: write an IPv6 address in brackets, e.g. \"[::1]:514\""
            ))
        }
        None => host,
    };
    if host.is_empty() || host.contains(char::is_whitespace) {
        return Err(format!("{address:?} has no valid host"));
    }
    match port.parse::<u16>() {
        Ok(port) if port > 0 => Ok((host, port)),
        _ => Err(format!(
            "{address:?} has an invalid port {port:?} (1 to 65535)"
        )),
    }
}

fn check_printable(key: &str, value: &str, max: usize, problems: &mut Problems) {
    if value.is_empty() || value.len() > max || !value.bytes().all(|b| (33..=126).contains(&b)) {
        problems.push(
            key,
            format!("{value:?} must be 1 to {max} printable ASCII characters without spaces"),
        );
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn problems(toml_text: &str) -> Vec<String> {
        let config: SinkConfig = toml::from_str(toml_text).unwrap();
        let mut problems = Problems::default();
        config.validate(&mut problems);
        problems.iter().map(|p| p.key.clone()).collect()
    }

    #[test]
    fn defaults_are_valid_stdout_newline() {
        let c = SinkConfig::default();
        assert_eq!(c.transport, Transport::Stdout);
        assert_eq!(c.effective_framing(), Some(Framing::Newline));
        assert_eq!(c.header, Header::Pri);
        assert!(problems("").is_empty());
    }

    #[test]
    fn framing_defaults_follow_the_transport() {
        let tls: SinkConfig =
            toml::from_str("addresses = [\"h:6514\"]\ntransport = \"tls\"").unwrap();
        assert_eq!(tls.effective_framing(), Some(Framing::OctetCounting));
        let tcp: SinkConfig =
            toml::from_str("addresses = [\"h:514\"]\ntransport = \"tcp\"").unwrap();
        assert_eq!(tcp.effective_framing(), Some(Framing::Newline));
        let udp: SinkConfig =
            toml::from_str("addresses = [\"h:514\"]\ntransport = \"udp\"").unwrap();
        assert_eq!(udp.effective_framing(), None);
    }

    #[test]
    fn relp_tls_takes_the_tls_settings_and_no_framing() {
        let text =
            "addresses = [\"h:2514\"]\ntransport = \"relp-tls\"\n[tls]\nserver_name = \"siem\"";
        let relp_tls: SinkConfig = toml::from_str(text).unwrap();
        assert_eq!(relp_tls.transport, Transport::RelpTls);
        assert_eq!(relp_tls.effective_framing(), None);
        assert!(problems(text).is_empty(), "{:?}", problems(text));
        let plain = text.replace("relp-tls", "relp");
        assert_eq!(problems(&plain), ["sink.tls.server_name"]);
        let framed = format!("framing = \"newline\"\n{text}");
        assert_eq!(problems(&framed), ["sink.framing"]);
    }

    #[test]
    fn every_problem_is_listed() {
        let keys = problems(
            r#"
            addresses = ["siem", "[::1:514", "h:0", "::1:514", "ok.example:6514"]
            transport = "relp"
            framing = "newline"
            app_name = "has space"
            queue_bytes = 10
            reconnect_min = "2s"
            reconnect_max = "1s"
            max_datagram_bytes = 10
            [tls]
            cert_file = "/nonexistent/cert.pem"
            insecure_skip_verify = true
            "#,
        );
        for key in [
            "sink.addresses[0]",
            "sink.addresses[1]",
            "sink.addresses[2]",
            "sink.addresses[3]",
            "sink.framing",
            "sink.tls.cert_file",
            "sink.tls.insecure_skip_verify",
            "sink.tls",
            "sink.app_name",
            "sink.queue_bytes",
            "sink.reconnect_max",
            "sink.max_datagram_bytes",
        ] {
            assert!(keys.contains(&key.to_owned()), "{key} missing in {keys:?}");
        }
        assert!(!keys.contains(&"sink.addresses[4]".to_owned()));
    }

    #[test]
    fn network_transports_need_addresses_and_stdout_takes_none() {
        assert_eq!(problems("transport = \"tcp\""), ["sink.addresses"]);
        assert_eq!(problems("addresses = [\"h:1\"]"), ["sink.addresses"]);
    }

    #[test]
    fn addresses_parse_with_ipv6_brackets() {
        assert_eq!(
            parse_address("siem.example:6514"),
            Ok(("siem.example", 6514))
        );
        assert_eq!(parse_address("[::1]:514"), Ok(("::1", 514)));
        assert!(parse_address("siem.example:65536").is_err());
    }

    #[test]
    fn unknown_keys_and_values_are_rejected() {
        assert!(toml::from_str::<SinkConfig>("transport = \"http\"").is_err());
        assert!(toml::from_str::<SinkConfig>("facility = \"local9\"").is_err());
        assert!(toml::from_str::<SinkConfig>("adresses = []").is_err());
        let c: SinkConfig = toml::from_str("facility = \"auth\"\nseverity = \"notice\"").unwrap();
        assert_eq!((c.facility as u8, c.severity as u8), (4, 5));
    }
}
