//! `decode`: offline replay of recorded Kinesis data, for users checking what the
//! collector would send and for us reproducing a bad record.
//!
//! An input is the raw data of one record, or the JSON `aws kinesis get-records`
//! prints; the latter is streamed record by record, never held whole.

use std::borrow::Cow;
use std::fmt;
use std::fs::File;
use std::io::{self, BufRead, BufReader, BufWriter, Read, Write};
use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::sync::Arc;

use anyhow::Context as _;
use base64::Engine as _;
use serde::de::{self, DeserializeSeed, IgnoredAny, MapAccess, SeqAccess, Visitor};
use serde_json::Value;

use crate::classify::Classifier;
use crate::cli::DecodeArgs;
use crate::decode::Decoder;
use crate::format::Formatter;

/// Runs `decode`; exit status 1 when any record was bad.
pub fn run(args: &DecodeArgs) -> anyhow::Result<ExitCode> {
    let config = args.config.load_or_default()?;
    let classifier = Classifier::new(&config.vpc_flow)
        .map_err(|err| anyhow::anyhow!("invalid [vpc_flow] config: {err}"))?;
    let classifier = Arc::new(classifier);
    let stdout = io::stdout().lock();
    let mut replay = Replay {
        decoder: Decoder::new(&config.decode, Arc::clone(&classifier)),
        classifier,
        formatter: Formatter::new(args.format),
        max_record_bytes: config.decode.max_record_bytes,
        line: Vec::with_capacity(4096),
        out: BufWriter::with_capacity(1 << 16, stdout),
        write_error: None,
        bad: 0,
    };
    let stdin_only = [PathBuf::from("-")];
    let files = if args.files.is_empty() {
        &stdin_only[..]
    } else {
        &args.files[..]
    };
    for file in files {
        replay.input(file);
        if replay.write_error.is_some() {
            break;
        }
    }
    let flushed = replay.out.flush();
    match replay.write_error.map_or(flushed, Err) {
        Err(err) if err.kind() == io::ErrorKind::BrokenPipe => {}
        Err(err) => return Err(err).context("cannot write to standard output"),
        Ok(()) => {}
    }
    Ok(if replay.bad > 0 {
        ExitCode::from(1)
    } else {
        ExitCode::SUCCESS
    })
}

/// Where a bad record was found, for the report on stderr.
struct Position<'a> {
    file: &'a str,
    sequence: Option<&'a str>,
    subsequence: Option<u32>,
}

impl fmt::Display for Position<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.file)?;
        if let Some(seq) = self.sequence {
            write!(f, ": record {seq}")?;
        }
        if let Some(sub) = self.subsequence {
            write!(f, " sub-record {sub}")?;
        }
        Ok(())
    }
}

struct Replay<W: Write> {
    decoder: Decoder,
    classifier: Arc<Classifier>,
    formatter: Formatter,
    max_record_bytes: u64,
    line: Vec<u8>,
    out: W,
    write_error: Option<io::Error>,
    bad: u64,
}

impl<W: Write> Replay<W> {
    fn bad_record(&mut self, at: Position<'_>, reason: impl fmt::Display) {
        self.bad += 1;
        eprintln!("kinesis-collector: bad record: {at}: {reason}");
    }

    fn input(&mut self, path: &Path) {
        let name = path.display().to_string();
        let reader: Box<dyn Read> = if path == Path::new("-") {
            Box::new(io::stdin().lock())
        } else {
            match File::open(path) {
                Ok(file) => Box::new(file),
                Err(err) => {
                    let at = Position {
                        file: &name,
                        sequence: None,
                        subsequence: None,
                    };
                    return self.bad_record(at, format!("cannot read file: {err}"));
                }
            }
        };
        let mut reader = BufReader::with_capacity(1 << 16, reader);
        let is_listing = match reader.fill_buf() {
            Ok(head) => is_get_records_json(head),
            Err(err) => {
                let at = Position {
                    file: &name,
                    sequence: None,
                    subsequence: None,
                };
                return self.bad_record(at, format!("cannot read file: {err}"));
            }
        };
        if is_listing {
            self.get_records_json(&name, reader);
        } else {
            self.raw_record(&name, reader);
        }
    }

    /// The whole input is the data of one record.
    fn raw_record(&mut self, name: &str, reader: impl Read) {
        let mut data = Vec::new();
        let at = Position {
            file: name,
            sequence: None,
            subsequence: None,
        };
        match reader
            .take(self.max_record_bytes + 1)
            .read_to_end(&mut data)
        {
            Err(err) => self.bad_record(at, format!("cannot read file: {err}")),
            Ok(n) if n as u64 > self.max_record_bytes => self.bad_record(
                at,
                format!(
                    "larger than decode.max_record_bytes ({} bytes)",
                    self.max_record_bytes
                ),
            ),
            Ok(_) => self.record(name, None, &data, None),
        }
    }

    /// `aws kinesis get-records` output, streamed.
    fn get_records_json(&mut self, name: &str, reader: impl Read) {
        let mut de = serde_json::Deserializer::from_reader(reader);
        let result = ListingSeed {
            replay: self,
            file: name,
        }
        .deserialize(&mut de)
        .and_then(|()| de.end());
        if let Err(err) = result {
            let at = Position {
                file: name,
                sequence: None,
                subsequence: None,
            };
            self.bad_record(at, format!("invalid get-records JSON: {err}"));
        }
    }

    /// One record of a get-records listing, as its JSON value.
    fn listed_record(&mut self, file: &str, index: usize, value: Value) {
        let sequence = value
            .get("SequenceNumber")
            .and_then(Value::as_str)
            .map(str::to_owned);
        let label = sequence.clone().unwrap_or_else(|| format!("#{index}"));
        let at = Position {
            file,
            sequence: Some(&label),
            subsequence: None,
        };
        let Some(encoded) = value.get("Data").and_then(Value::as_str) else {
            return self.bad_record(at, "no Data string");
        };
        let data = match base64::engine::general_purpose::STANDARD.decode(encoded) {
            Ok(data) => data,
            Err(err) => return self.bad_record(at, format!("Data is not base64: {err}")),
        };
        let arrival = match value.get("ApproximateArrivalTimestamp").map(arrival_ms) {
            Some(Err(reason)) => return self.bad_record(at, reason),
            Some(Ok(ms)) => Some(ms),
            None => None,
        };
        self.record(file, Some(&label), &data, arrival);
    }

    /// Decodes one record's data and prints its events.
    fn record(&mut self, file: &str, sequence: Option<&str>, data: &[u8], arrival_ms: Option<i64>) {
        let Replay {
            decoder,
            classifier,
            formatter,
            line,
            out,
            write_error,
            ..
        } = self;
        let outcome = decoder.decode_record(data, arrival_ms, |event| {
            if write_error.is_some() {
                return;
            }
            line.clear();
            formatter.write_body(event, classifier, true, line);
            line.push(b'\n');
            if let Err(err) = out.write_all(line) {
                *write_error = Some(err);
            }
        });
        for err in outcome.errors {
            let at = Position {
                file,
                sequence,
                subsequence: err.subsequence,
            };
            self.bad_record(at, err.error);
        }
    }
}

/// True when the input starts like the JSON of `aws kinesis get-records`: an object
/// whose first key is one of its keys.
fn is_get_records_json(head: &[u8]) -> bool {
    let text = String::from_utf8_lossy(&head[..head.len().min(4096)]);
    let Some(rest) = text.trim_start().strip_prefix('{') else {
        return false;
    };
    let rest = rest.trim_start();
    [
        "\"Records\"",
        "\"NextShardIterator\"",
        "\"MillisBehindLatest\"",
        "\"ChildShards\"",
    ]
    .iter()
    .any(|key| rest.starts_with(key))
}

/// ApproximateArrivalTimestamp: epoch seconds (CLI v1) or an ISO 8601 string (v2).
fn arrival_ms(value: &Value) -> Result<i64, String> {
    match value {
        Value::Number(n) => n
            .as_f64()
            .filter(|s| s.is_finite())
            .map(|s| (s * 1000.0).round() as i64)
            .ok_or_else(|| format!("invalid ApproximateArrivalTimestamp {n}")),
        Value::String(s) => {
            time::OffsetDateTime::parse(s, &time::format_description::well_known::Rfc3339)
                .map(|t| (t.unix_timestamp_nanos() / 1_000_000) as i64)
                .map_err(|err| format!("invalid ApproximateArrivalTimestamp {s:?}: {err}"))
        }
        other => Err(format!("invalid ApproximateArrivalTimestamp {other}")),
    }
}

struct ListingSeed<'r, W: Write> {
    replay: &'r mut Replay<W>,
    file: &'r str,
}

impl<'de, W: Write> DeserializeSeed<'de> for ListingSeed<'_, W> {
    type Value = ();
    fn deserialize<D: de::Deserializer<'de>>(self, d: D) -> Result<(), D::Error> {
        d.deserialize_map(self)
    }
}

impl<'de, W: Write> Visitor<'de> for ListingSeed<'_, W> {
    type Value = ();
    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("a get-records JSON object")
    }
    fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<(), A::Error> {
        while let Some(key) = map.next_key::<Cow<'de, str>>()? {
            if key == "Records" {
                map.next_value_seed(RecordsSeed {
                    replay: &mut *self.replay,
                    file: self.file,
                })?;
            } else {
                map.next_value::<IgnoredAny>()?;
            }
        }
        Ok(())
    }
}

struct RecordsSeed<'r, W: Write> {
    replay: &'r mut Replay<W>,
    file: &'r str,
}

impl<'de, W: Write> DeserializeSeed<'de> for RecordsSeed<'_, W> {
    type Value = ();
    fn deserialize<D: de::Deserializer<'de>>(self, d: D) -> Result<(), D::Error> {
        d.deserialize_seq(self)
    }
}

impl<'de, W: Write> Visitor<'de> for RecordsSeed<'_, W> {
    type Value = ();
    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("a Records array")
    }
    fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<(), A::Error> {
        let mut index = 0;
        while let Some(value) = seq.next_element::<Value>()? {
            self.replay.listed_record(self.file, index, value);
            if self.replay.write_error.is_some() {
                return Err(de::Error::custom("standard output closed"));
            }
            index += 1;
        }
        Ok(())
    }
}
