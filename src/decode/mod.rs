//! Record decoding: the data bytes of one Kinesis record become classified log
//! events.
//!
//! The steps, each in its own module: KPL de-aggregation ([`kpl`]), size-capped
//! gunzip ([`gzip`]), the CloudWatch Logs envelope ([`envelope`]); then each log
//! event is classified. A bad sub-record is an error for that sub-record only: the
//! caller counts it, logs it with its position and moves on.

pub mod envelope;
pub mod gzip;
pub mod kpl;

use std::borrow::Cow;
use std::sync::Arc;

use serde::Deserialize;

use crate::classify::Classifier;
use crate::config::{units, Problems, Section};
use crate::event::{Event, Origin};
use gzip::{Gunzip, GzipError};

/// `[decode]` section.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct DecodeConfig {
    /// Largest decompressed size of one record (or KPL sub-record); a record that
    /// inflates to more is a bad record. A byte count or a size such as `"16 MiB"`.
    #[serde(
        default = "default_max_record_bytes",
        deserialize_with = "units::byte_size"
    )]
    pub max_record_bytes: u64,
}

fn default_max_record_bytes() -> u64 {
    16 * 1024 * 1024
}

impl Default for DecodeConfig {
    fn default() -> Self {
        DecodeConfig {
            max_record_bytes: default_max_record_bytes(),
        }
    }
}

impl Section for DecodeConfig {
    const KEY: &'static str = "decode";

    fn validate(&self, problems: &mut Problems) {
        const MIN: u64 = 64 * 1024;
        const MAX: u64 = 1 << 30;
        if !(MIN..=MAX).contains(&self.max_record_bytes) {
            problems.push(
                "decode.max_record_bytes",
                format!(
                    "{} bytes is out of range: use 64 KiB to 1 GiB (Kinesis records are at most 1 MB compressed)",
                    self.max_record_bytes
                ),
            );
        }
    }
}

/// Why one record (or KPL sub-record) could not be decoded.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum DecodeError {
    /// gunzip failed or the output was over the cap.
    #[error(transparent)]
    Gzip(#[from] GzipError),
    /// The (decompressed) data is not UTF-8 text.
    #[error("data is not valid UTF-8 (first invalid byte at offset {valid_up_to})")]
    Utf8 {
        /// Length of the valid prefix.
        valid_up_to: usize,
    },
    /// The data was meant to be a CloudWatch Logs envelope but is not a valid one.
    #[error("invalid CloudWatch Logs envelope: {0}")]
    Envelope(String),
}

/// A decoding error with the KPL sub-record it concerns.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SubRecordError {
    /// Index of the KPL sub-record (`None`: the record was not aggregated).
    pub subsequence: Option<u32>,
    /// What went wrong.
    pub error: DecodeError,
}

/// What decoding one Kinesis record produced, besides its events.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct RecordOutcome {
    /// Number of KPL sub-records (0 when the record was not aggregated).
    pub sub_records: u32,
    /// Events handed to the callback.
    pub events: u64,
    /// CloudWatch Logs `CONTROL_MESSAGE`s seen (and dropped).
    pub control_messages: u32,
    /// Sub-records that failed; the others were decoded.
    pub errors: Vec<SubRecordError>,
}

/// Decodes records; one per shard reader (it owns reused buffers).
#[derive(Debug)]
pub struct Decoder {
    gunzip: Gunzip,
    classifier: Arc<Classifier>,
}

impl Decoder {
    /// A decoder with the given limits and classifier.
    pub fn new(config: &DecodeConfig, classifier: Arc<Classifier>) -> Decoder {
        let cap = usize::try_from(config.max_record_bytes).unwrap_or(usize::MAX);
        Decoder {
            gunzip: Gunzip::new(cap),
            classifier,
        }
    }

    /// The classifier events are classified with.
    pub fn classifier(&self) -> &Classifier {
        &self.classifier
    }

    /// Decodes the data of one Kinesis record and hands each event to `on_event`, in
    /// order. `arrival_ms` is the record's ApproximateArrivalTimestamp, used as the
    /// time of events that carry none.
    pub fn decode_record<F>(
        &mut self,
        data: &[u8],
        arrival_ms: Option<i64>,
        mut on_event: F,
    ) -> RecordOutcome
    where
        F: FnMut(&Event<'_>),
    {
        let mut outcome = RecordOutcome::default();
        let arrival_ms = arrival_ms.unwrap_or_else(now_ms);
        if data.starts_with(&kpl::MAGIC) {
            if let Some(sub_records) = kpl::deaggregate(data) {
                outcome.sub_records = sub_records.len() as u32;
                for (i, sub) in sub_records.iter().enumerate() {
                    let subsequence = Some(i as u32);
                    self.decode_payload(sub, subsequence, arrival_ms, &mut outcome, &mut on_event);
                }
                return outcome;
            }
        }
        self.decode_payload(data, None, arrival_ms, &mut outcome, &mut on_event);
        outcome
    }

    fn decode_payload<F>(
        &mut self,
        data: &[u8],
        subsequence: Option<u32>,
        arrival_ms: i64,
        outcome: &mut RecordOutcome,
        on_event: &mut F,
    ) where
        F: FnMut(&Event<'_>),
    {
        let text = if data.starts_with(&gzip::MAGIC) {
            match self.gunzip.gunzip(data) {
                Ok(out) => out,
                Err(err) => {
                    outcome.errors.push(SubRecordError {
                        subsequence,
                        error: err.into(),
                    });
                    return;
                }
            }
        } else {
            data
        };
        // simdutf8 validates the whole payload several times faster than std; on
        // failure std says where.
        let text = match simdutf8::basic::from_utf8(text).or_else(|_| std::str::from_utf8(text)) {
            Ok(text) => text,
            Err(err) => {
                let error = DecodeError::Utf8 {
                    valid_up_to: err.valid_up_to(),
                };
                outcome.errors.push(SubRecordError { subsequence, error });
                return;
            }
        };
        let classifier = &*self.classifier;
        if text.trim_start().starts_with('{') {
            match envelope::parse(text) {
                Ok(env) if env.is_envelope() => {
                    if env.is_control() {
                        outcome.control_messages += 1;
                        return;
                    }
                    let origin = Origin {
                        owner: env.owner,
                        log_group: env.log_group,
                        log_stream: env.log_stream,
                    };
                    let group = classifier.for_group(origin.log_group.as_deref());
                    for log_event in env.log_events.unwrap_or_default() {
                        let classification = group.classify(&log_event.message);
                        on_event(&Event {
                            origin: &origin,
                            id: log_event.id,
                            timestamp_ms: log_event.timestamp,
                            message: log_event.message,
                            subsequence,
                            classification,
                        });
                        outcome.events += 1;
                    }
                    return;
                }
                Ok(_) => {}
                Err(err) if envelope::looks_like_envelope(text) => {
                    let error = DecodeError::Envelope(err.to_string());
                    outcome.errors.push(SubRecordError { subsequence, error });
                    return;
                }
                Err(_) => {}
            }
        }
        // Not an envelope: another producer's record, forwarded whole as one event.
        let origin = Origin::default();
        let classification = classifier.for_group(None).classify(text);
        on_event(&Event {
            origin: &origin,
            id: None,
            timestamp_ms: arrival_ms,
            message: Cow::Borrowed(text),
            subsequence,
            classification,
        });
        outcome.events += 1;
    }
}

fn now_ms() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_millis() as i64)
        .unwrap_or(0)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::event::Class;
    use std::io::Write;

    fn gz(text: &str) -> Vec<u8> {
        let mut e = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::fast());
        e.write_all(text.as_bytes()).unwrap();
        e.finish().unwrap()
    }

    /// (message, timestamp, subsequence, class) of one decoded event.
    type Seen = (String, i64, Option<u32>, Class);

    /// Decodes `data` and returns what each event was.
    fn run(data: &[u8], cap: u64) -> (Vec<Seen>, RecordOutcome) {
        let config = DecodeConfig {
            max_record_bytes: cap,
        };
        let mut decoder = Decoder::new(&config, Arc::new(Classifier::default()));
        let mut events = Vec::new();
        let outcome = decoder.decode_record(data, Some(42), |e| {
            events.push((
                e.message.to_string(),
                e.timestamp_ms,
                e.subsequence,
                e.classification.class,
            ));
        });
        assert_eq!(outcome.events, events.len() as u64);
        (events, outcome)
    }

    const ENVELOPE: &str = r#"{"messageType":"DATA_MESSAGE","owner":"1","logGroup":"g","logStream":"s",
        "logEvents":[{"id":"1","timestamp":1000,"message":"one"},{"id":"2","timestamp":2000,"message":"two"}]}"#;

    #[test]
    fn envelope_events_keep_their_own_timestamps() {
        let (events, outcome) = run(&gz(ENVELOPE), 1 << 20);
        assert_eq!(
            events,
            [
                ("one".into(), 1000, None, Class::Other),
                ("two".into(), 2000, None, Class::Other)
            ]
        );
        assert!(outcome.errors.is_empty());
        // The same envelope uncompressed decodes the same.
        assert_eq!(run(ENVELOPE.as_bytes(), 1 << 20).0, events);
    }

    #[test]
    fn control_messages_are_counted_not_forwarded() {
        let control = r#"{"messageType":"CONTROL_MESSAGE","owner":"CloudwatchLogs","logGroup":"","logStream":"",
            "subscriptionFilters":[],"logEvents":[{"id":"","timestamp":1,"message":"CWL CONTROL MESSAGE"}]}"#;
        let (events, outcome) = run(&gz(control), 1 << 20);
        assert!(events.is_empty());
        assert_eq!(outcome.control_messages, 1);
    }

    #[test]
    fn other_text_is_one_event_at_arrival_time() {
        for text in [
            "plain text",
            "{\"some\":\"json\"}",
            "[1,2]",
            "",
            "{not json",
        ] {
            let (events, outcome) = run(text.as_bytes(), 1 << 20);
            assert_eq!(
                events,
                [(text.to_owned(), 42, None, Class::Other)],
                "{text:?}"
            );
            assert!(outcome.errors.is_empty());
        }
    }

    #[test]
    fn each_bad_record_has_its_reason() {
        let (_, o) = run(&ENVELOPE.as_bytes()[..60], 1 << 20);
        assert!(
            matches!(o.errors[0].error, DecodeError::Envelope(_)),
            "{:?}",
            o.errors
        );
        let (_, o) = run(b"\xff\xfe", 1 << 20);
        assert_eq!(o.errors[0].error, DecodeError::Utf8 { valid_up_to: 0 });
        let big = gz(&"x".repeat(70_000));
        let (_, o) = run(&big, 65_536);
        assert_eq!(
            o.errors[0].error,
            DecodeError::Gzip(GzipError::TooLarge { cap: 65_536 })
        );
        let g = gz(ENVELOPE);
        let (_, o) = run(&g[..g.len() - 10], 1 << 20);
        assert!(matches!(
            o.errors[0].error,
            DecodeError::Gzip(GzipError::Corrupt(_))
        ));
        assert_eq!(o.events, 0);
    }

    #[test]
    fn kpl_sub_records_are_decoded_in_order_and_fail_alone() {
        let good = gz(ENVELOPE);
        let data = kpl::aggregate(&[&good, b"\x1f\x8b\x08 broken", b"third"]);
        let (events, outcome) = run(&data, 1 << 20);
        assert_eq!(outcome.sub_records, 3);
        let got: Vec<(&str, Option<u32>)> = events.iter().map(|e| (e.0.as_str(), e.2)).collect();
        assert_eq!(
            got,
            [("one", Some(0)), ("two", Some(0)), ("third", Some(2))]
        );
        assert_eq!(outcome.errors.len(), 1);
        assert_eq!(outcome.errors[0].subsequence, Some(1));
    }

    #[test]
    fn a_kpl_lookalike_is_one_plain_record() {
        let mut data = kpl::MAGIC.to_vec();
        data.extend_from_slice(b"not protobuf");
        let (events, outcome) = run(&data, 1 << 20);
        assert_eq!(outcome.sub_records, 0);
        // The magic bytes are not UTF-8, so this plain record is a bad one.
        assert!(events.is_empty());
        assert!(matches!(outcome.errors[0].error, DecodeError::Utf8 { .. }));
    }

    #[test]
    fn max_record_bytes_is_validated() {
        let mut problems = Problems::default();
        DecodeConfig {
            max_record_bytes: 10,
        }
        .validate(&mut problems);
        assert_eq!(
            problems.iter().next().unwrap().key,
            "decode.max_record_bytes"
        );
        let mut problems = Problems::default();
        DecodeConfig::default().validate(&mut problems);
        assert!(problems.is_empty());
    }
}
