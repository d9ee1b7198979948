//! Events → syslog messages: the header (`pri`, RFC 5424, RFC 3164 or none) around
//! the body the [`format`](crate::format) module writes, and RFC 6587 framing, all
//! appended to one [`Batch`] buffer so a batch goes out in one write.

use std::collections::BTreeMap;
use std::sync::Arc;

use crate::classify::Classifier;
use crate::event::Event;
use crate::format::{escape_line_breaks, BodyFormat, Formatter, FSM_TAG};

use super::config::{Framing, Header, HostnameSource, SinkConfig};

/// SD-IDs of the RFC 5424 structured data. 32473 is the private enterprise number
/// reserved for documentation (RFC 5612), the customary choice of tools without
/// their own.
const SD_ORIGIN: &str = "origin@32473";
const SD_TAGS: &str = "tags@32473";

/// Encoded messages, one after another, framed for the transport; sent in one
/// write. `ends` remembers where each message ends (datagram and RELP transports
/// send messages one by one).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Batch {
    pub(crate) buf: Vec<u8>,
    pub(crate) ends: Vec<usize>,
}

impl Batch {
    /// An empty batch with room for `bytes`.
    pub fn with_capacity(bytes: usize) -> Batch {
        Batch {
            buf: Vec::with_capacity(bytes),
            ends: Vec::new(),
        }
    }

    /// Bytes encoded so far (what the batch weighs in the sink's queue).
    pub fn len_bytes(&self) -> usize {
        self.buf.len()
    }

    /// Messages encoded so far.
    pub fn events(&self) -> usize {
        self.ends.len()
    }

    /// True when no message was encoded.
    pub fn is_empty(&self) -> bool {
        self.ends.is_empty()
    }

    /// The encoded bytes.
    pub fn as_bytes(&self) -> &[u8] {
        &self.buf
    }

    /// Each message (framing included), in order.
    pub fn messages(&self) -> impl Iterator<Item = &[u8]> {
        let starts = std::iter::once(0).chain(self.ends.iter().copied());
        starts.zip(self.ends.iter()).map(|(s, &e)| &self.buf[s..e])
    }

    /// Appends one message already encoded for the transport (tests, benches, replay).
    pub fn push_message(&mut self, message: &[u8]) {
        self.buf.extend_from_slice(message);
        self.ends.push(self.buf.len());
    }
}

/// Encodes events into batches as the `[sink]` section says; one per reader (it
/// keeps caches and a scratch buffer).
#[derive(Debug, Clone)]
pub struct Encoder {
    header: Header,
    framing: Option<Framing>,
    format: BodyFormat,
    pri: Vec<u8>,
    hostname: String,
    hostname_source: HostnameSource,
    app_name: String,
    structured_data: bool,
    tags: Arc<BTreeMap<String, String>>,
    formatter: Formatter,
    scratch: Vec<u8>,
}

impl Encoder {
    /// An encoder for `config`. `hostname` is the collector's name (used when
    /// `config.hostname` is unset); `tags` are the stream's, for RFC 5424 structured
    /// data and JSON bodies.
    pub fn new(
        config: &SinkConfig,
        hostname: &str,
        tags: Arc<BTreeMap<String, String>>,
    ) -> Encoder {
        let pri = (config.facility as u8) * 8 + config.severity as u8;
        let hostname = config.hostname.as_deref().unwrap_or(hostname);
        Encoder {
            header: config.header,
            framing: config.effective_framing(),
            format: config.format,
            pri: format!("<{pri}>").into_bytes(),
            hostname: sanitize(hostname, 255),
            hostname_source: config.hostname_source,
            app_name: sanitize(&config.app_name, 48),
            structured_data: config.structured_data,
            tags: tags.clone(),
            formatter: Formatter::new(config.format).with_tags(tags),
            scratch: Vec::with_capacity(1024),
        }
    }

    /// Appends `event` to `batch` as one framed message.
    pub fn encode(&mut self, event: &Event<'_>, classifier: &Classifier, batch: &mut Batch) {
        match self.framing {
            Some(Framing::OctetCounting) => {
                let mut msg = std::mem::take(&mut self.scratch);
                msg.clear();
                self.write_message(event, classifier, false, &mut msg);
                write_decimal(msg.len(), &mut batch.buf);
                batch.buf.push(b' ');
                batch.buf.extend_from_slice(&msg);
                self.scratch = msg;
            }
            Some(Framing::Newline) => {
                self.write_message(event, classifier, true, &mut batch.buf);
                batch.buf.push(b'\n');
            }
            None => self.write_message(event, classifier, false, &mut batch.buf),
        }
        batch.ends.push(batch.buf.len());
    }

    fn write_message(
        &mut self,
        event: &Event<'_>,
        classifier: &Classifier,
        line: bool,
        out: &mut Vec<u8>,
    ) {
        match self.header {
            Header::None => self.formatter.write_body(event, classifier, line, out),
            Header::Pri => {
                out.extend_from_slice(&self.pri);
                self.formatter.write_body(event, classifier, line, out);
            }
            Header::Rfc5424 => {
                out.extend_from_slice(&self.pri);
                out.extend_from_slice(b"1 ");
                self.formatter.write_timestamp(event.timestamp_ms, out);
                out.push(b' ');
                self.write_hostname(event, out);
                out.push(b' ');
                out.extend_from_slice(self.app_name.as_bytes());
                out.extend_from_slice(b" - - ");
                if self.structured_data {
                    self.write_structured_data(event, line, out);
                } else {
                    out.push(b'-');
                }
                out.push(b' ');
                self.write_tagged_body(event, classifier, line, out);
            }
            Header::Rfc3164 => {
                out.extend_from_slice(&self.pri);
                let start = out.len();
                self.formatter.write_timestamp(event.timestamp_ms, out);
                let ts: [u8; 24] = out[start..start + 24].try_into().expect("RFC 3339 length");
                out.truncate(start);
                write_rfc3164_time(&ts, out);
                out.push(b' ');
                self.write_hostname(event, out);
                out.push(b' ');
                out.extend_from_slice(self.app_name.as_bytes());
                out.extend_from_slice(b": ");
                self.write_tagged_body(event, classifier, line, out);
            }
        }
    }

    /// The body after a full header: `[FSM-AWSKinesis] message` (the header already
    /// holds the timestamp) or the JSON object.
    fn write_tagged_body(
        &mut self,
        event: &Event<'_>,
        classifier: &Classifier,
        line: bool,
        out: &mut Vec<u8>,
    ) {
        match self.format {
            BodyFormat::Fsm => {
                out.extend_from_slice(&FSM_TAG[1..]);
                if line {
                    escape_line_breaks(event.message.as_bytes(), out);
                } else {
                    out.extend_from_slice(event.message.as_bytes());
                }
            }
            BodyFormat::Json => self.formatter.write_body(event, classifier, line, out),
        }
    }

    fn write_hostname(&self, event: &Event<'_>, out: &mut Vec<u8>) {
        let from_event = match self.hostname_source {
            HostnameSource::Collector => None,
            HostnameSource::Owner => event.origin.owner.as_deref(),
            HostnameSource::LogGroup => event.origin.log_group.as_deref(),
        };
        match from_event.filter(|h| !h.is_empty()) {
            Some(h) => write_sanitized(h, 255, out),
            None => out.extend_from_slice(self.hostname.as_bytes()),
        }
    }

    fn write_structured_data(&self, event: &Event<'_>, line: bool, out: &mut Vec<u8>) {
        out.push(b'[');
        out.extend_from_slice(SD_ORIGIN.as_bytes());
        let o = event.origin;
        for (name, value) in [
            ("group", o.log_group.as_deref()),
            ("stream", o.log_stream.as_deref()),
            ("owner", o.owner.as_deref()),
            ("class", Some(event.classification.class.as_str())),
        ] {
            if let Some(value) = value {
                write_sd_param(name, value, line, out);
            }
        }
        out.push(b']');
        if !self.tags.is_empty() {
            out.push(b'[');
            out.extend_from_slice(SD_TAGS.as_bytes());
            for (name, value) in self.tags.iter() {
                write_sd_param(&sanitize_sd_name(name), value, line, out);
            }
            out.push(b']');
        }
    }
}

/// ` name="value"` with `"`, `\` and `]` escaped (RFC 5424 6.3.3).
fn write_sd_param(name: &str, value: &str, line: bool, out: &mut Vec<u8>) {
    out.push(b' ');
    out.extend_from_slice(name.as_bytes());
    out.extend_from_slice(b"=\"");
    for &b in value.as_bytes() {
        match b {
            b'"' | b'\\' | b']' => out.extend_from_slice(&[b'\\', b]),
            b'\n' if line => out.extend_from_slice(b"\\n"),
            b'\r' if line => out.extend_from_slice(b"\\r"),
            _ => out.push(b),
        }
    }
    out.push(b'"');
}

/// SD-NAME: 1 to 32 printable ASCII characters except `=`, space, `]` and `"`.
fn sanitize_sd_name(name: &str) -> String {
    let mut s: String = name
        .bytes()
        .take(32)
        .map(|b| match b {
            b'=' | b']' | b'"' => '_',
            33..=126 => b as char,
            _ => '_',
        })
        .collect();
    if s.is_empty() {
        s.push('_');
    }
    s
}

/// HOSTNAME and APP-NAME: printable ASCII without spaces, at most `max` bytes;
/// anything else becomes `_`; empty becomes `-` (the RFC 5424 nil value).
fn sanitize(value: &str, max: usize) -> String {
    let mut out = Vec::new();
    write_sanitized(value, max, &mut out);
    if out.is_empty() {
        out.push(b'-');
    }
    String::from_utf8(out).expect("ASCII")
}

fn write_sanitized(value: &str, max: usize, out: &mut Vec<u8>) {
    out.extend(value.bytes().take(max).map(|b| match b {
        33..=126 => b,
        _ => b'_',
    }));
}

/// `Mmm dd hh:mm:ss` (day padded with a space) from `YYYY-MM-DDTHH:MM:SS.mmmZ`.
fn write_rfc3164_time(rfc3339: &[u8; 24], out: &mut Vec<u8>) {
    const MONTHS: [&[u8; 3]; 12] = [
        b"Jan", b"Feb", b"Mar", b"Apr", b"May", b"Jun", b"Jul", b"Aug", b"Sep", b"Oct", b"Nov",
        b"Dec",
    ];
    let month = usize::from((rfc3339[5] - b'0') * 10 + (rfc3339[6] - b'0'));
    out.extend_from_slice(MONTHS[month.clamp(1, 12) - 1]);
    out.push(b' ');
    out.push(if rfc3339[8] == b'0' { b' ' } else { rfc3339[8] });
    out.push(rfc3339[9]);
    out.push(b' ');
    out.extend_from_slice(&rfc3339[11..19]);
}

fn write_decimal(mut n: usize, out: &mut Vec<u8>) {
    let mut digits = [0u8; 20];
    let mut i = digits.len();
    loop {
        i -= 1;
        digits[i] = b'0' + (n % 10) as u8;
        n /= 10;
        if n == 0 {
            break;
        }
    }
    out.extend_from_slice(&digits[i..]);
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::event::{Classification, Origin};
    use std::borrow::Cow;

    const VPC: &str =
        "2 311111777194 eni-054c755e644dcf32d 22898 22717 6 1 40 1619538050 1619538102 REJECT OK";

    fn encode(config: &str, origin: &Origin<'_>, message: &str) -> Vec<Vec<u8>> {
        let config: SinkConfig = toml::from_str(config).unwrap();
        let tags = Arc::new(BTreeMap::from([(
            "tenant".to_owned(),
            "acme \"x\"".to_owned(),
        )]));
        let mut encoder = Encoder::new(&config, "collector-1", tags);
        let classifier = Classifier::default();
        let event = Event {
            origin,
            id: None,
            timestamp_ms: 1_619_538_050_000,
            message: Cow::Borrowed(message),
            subsequence: None,
            classification: Classification::OTHER,
        };
        let mut batch = Batch::default();
        encoder.encode(&event, &classifier, &mut batch);
        encoder.encode(&event, &classifier, &mut batch);
        assert_eq!(batch.events(), 2);
        batch.messages().map(<[u8]>::to_vec).collect()
    }

    fn text(b: &[u8]) -> &str {
        std::str::from_utf8(b).unwrap()
    }

    #[test]
    fn pri_header_newline_framing_is_the_seed_line() {
        let m = encode("", &Origin::default(), VPC);
        assert_eq!(
            text(&m[0]),
            format!("<134>2021-04-27T15:40:50.000Z [FSM-AWSKinesis] {VPC}\n")
        );
        assert_eq!(m[0], m[1]);
    }

    #[test]
    fn octet_counting_prefixes_the_exact_length_and_keeps_line_breaks() {
        let cfg = "transport = \"tcp\"\naddresses = [\"h:1\"]\nframing = \"octet-counting\"\nheader = \"none\"";
        let m = encode(cfg, &Origin::default(), "a\nb");
        let body = "2021-04-27T15:40:50.000Z [FSM-AWSKinesis] a\nb";
        assert_eq!(text(&m[0]), format!("{} {body}", body.len()));
    }

    #[test]
    fn newline_framing_escapes_line_breaks() {
        let m = encode("header = \"none\"", &Origin::default(), "a\r\nb");
        assert_eq!(
            text(&m[0]),
            "2021-04-27T15:40:50.000Z [FSM-AWSKinesis] a\\r\\nb\n"
        );
    }

    #[test]
    fn rfc5424_has_every_field_and_structured_data() {
        let origin = Origin {
            owner: Some(Cow::Borrowed("311111777194")),
            log_group: Some(Cow::Borrowed("vpc flow]")),
            log_stream: Some(Cow::Borrowed("eni-1")),
        };
        let cfg = "header = \"rfc5424\"\nfacility = \"auth\"\nseverity = \"notice\"\nhostname_source = \"owner\"";
        let m = encode(cfg, &origin, VPC);
        assert_eq!(
            text(&m[0]),
            format!(
                "<37>1 2021-04-27T15:40:50.000Z 311111777194 kinesis-collector - - \
                 [origin@32473 group=\"vpc flow\\]\" stream=\"eni-1\" owner=\"311111777194\" class=\"other\"]\
                 [tags@32473 tenant=\"acme \\\"x\\\"\"] [FSM-AWSKinesis] {VPC}\n"
            )
        );
        let cfg = "header = \"rfc5424\"\nstructured_data = false\nhostname_source = \"log_group\"\napp_name = \"kc\"";
        let m = encode(cfg, &origin, VPC);
        assert_eq!(
            text(&m[0]),
            format!("<134>1 2021-04-27T15:40:50.000Z vpc_flow] kc - - - [FSM-AWSKinesis] {VPC}\n")
        );
    }

    #[test]
    fn rfc3164_uses_the_utc_time_and_falls_back_to_the_collector_name() {
        let cfg = "header = \"rfc3164\"\nhostname_source = \"owner\"";
        let m = encode(cfg, &Origin::default(), VPC);
        assert_eq!(
            text(&m[0]),
            format!("<134>Apr 27 15:40:50 collector-1 kinesis-collector: [FSM-AWSKinesis] {VPC}\n")
        );
        let mut out = Vec::new();
        write_rfc3164_time(b"2021-12-05T01:02:03.000Z", &mut out);
        assert_eq!(text(&out), "Dec  5 01:02:03");
    }

    #[test]
    fn json_works_with_every_header_and_carries_tags() {
        for header in ["pri", "rfc5424", "rfc3164", "none"] {
            let cfg = format!("header = \"{header}\"\nformat = \"json\"");
            let m = encode(&cfg, &Origin::default(), "x\ny");
            let line = text(&m[0]);
            let json = &line[line.find('{').unwrap()..line.len() - 1];
            let v: serde_json::Value = serde_json::from_str(json).unwrap();
            assert_eq!(v["message"], "x\ny", "{header}");
            assert_eq!(v["tags"]["tenant"], "acme \"x\"", "{header}");
            assert_eq!(line.matches('\n').count(), 1, "{header}");
        }
    }

    #[test]
    fn udp_and_relp_messages_are_unframed() {
        let m = encode(
            "transport = \"udp\"\naddresses = [\"h:1\"]",
            &Origin::default(),
            "a\nb",
        );
        assert_eq!(
            text(&m[0]),
            "<134>2021-04-27T15:40:50.000Z [FSM-AWSKinesis] a\nb"
        );
    }

    #[test]
    fn decimal_and_sanitizing_helpers() {
        let mut out = Vec::new();
        for n in [0, 7, 10, 123_456] {
            out.clear();
            write_decimal(n, &mut out);
            assert_eq!(text(&out), n.to_string());
        }
        assert_eq!(sanitize("a b\u{e9}", 255), "a_b__");
        assert_eq!(sanitize("", 5), "-");
        assert_eq!(sanitize_sd_name("a=b c"), "a_b_c");
    }
}
