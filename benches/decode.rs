//! Decoder throughput on a generated, realistic corpus: CloudWatch Logs
//! subscription payloads of 500 VPC flow v2 events, and of CloudTrail events, gzip
//! level 6, as they sit in Kinesis records.
//!
//! - `gunzip/libdeflate`: decompression alone (the ceiling for the pipeline);
//! - `pipeline/*`: decode → classify → `fsm` line, into a reused buffer.
//!
//! Throughput is in bytes of *decompressed* payload. Reproduce:
//! `cargo bench --bench decode` (see docs/BENCHMARKS.md).

use std::io::Write;
use std::sync::Arc;

use criterion::{criterion_group, criterion_main, Criterion, Throughput};
use kinesis_collector::classify::Classifier;
use kinesis_collector::decode::{DecodeConfig, Decoder};
use kinesis_collector::format::{BodyFormat, Formatter};

/// Deterministic pseudo-random numbers (xorshift64*), so every run sees one corpus.
struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 >> 12;
        self.0 ^= self.0 << 25;
        self.0 ^= self.0 >> 27;
        self.0.wrapping_mul(0x2545_f491_4f6c_dd1d)
    }
    fn below(&mut self, n: u64) -> u64 {
        self.next() % n
    }
}

fn vpc_payload(rng: &mut Rng, events: usize, t0: u64) -> String {
    // One network interface per log stream, talking to a handful of peers on a few
    // services, as real flow logs do (that is what makes them compress ~9:1).
    let eni = format!("eni-0{:016x}", rng.next() >> 4);
    let local = format!("10.7.{}.{}", rng.below(16), rng.below(256));
    let peers: Vec<String> = (0..12)
        .map(|_| {
            format!(
                "{}.{}.{}.{}",
                rng.below(224) + 1,
                rng.below(256),
                rng.below(256),
                rng.below(256)
            )
        })
        .collect();
    let id_base = rng.next() as u128 * 1_000_000_000_000_000;
    let mut log_events = Vec::with_capacity(events);
    for i in 0..events {
        let start = t0 + (i as u64) / 100;
        let message =
            if rng.below(200) == 0 {
                format!(
                    "2 311111777194 {eni} - - - - - - - {start} {} - NODATA",
                    start + 60
                )
            } else {
                let peer = &peers[rng.below(peers.len() as u64) as usize];
                let service = [443, 443, 22, 80, 53][rng.below(5) as usize];
                let ephemeral = 32_768 + rng.below(28_000);
                let (src, dst, sport, dport) = if rng.below(2) == 0 {
                    (peer.as_str(), local.as_str(), ephemeral, service)
                } else {
                    (local.as_str(), peer.as_str(), service, ephemeral)
                };
                let packets = 1 + rng.below(20);
                format!(
                "2 311111777194 {eni} {src} {dst} {sport} {dport} 6 {packets} {} {start} {} {} OK",
                packets * (40 + rng.below(1400)),
                start + 60,
                if rng.below(10) == 0 { "REJECT" } else { "ACCEPT" },
            )
            };
        log_events.push(LogEvent {
            id: format!("{}", id_base + i as u128 * 1_000_000_000_000),
            timestamp: start * 1000 + rng.below(1000),
            message,
        });
    }
    envelope("vpc-flow-logs", &format!("{eni}-all"), &log_events)
}

/// One element of `logEvents`.
struct LogEvent {
    id: String,
    timestamp: u64,
    message: String,
}

/// The payload as CloudWatch Logs writes it: compact JSON, keys in AWS's order
/// (`serde_json::json!` would sort them).
fn envelope(log_group: &str, log_stream: &str, events: &[LogEvent]) -> String {
    let s = |v: &str| serde_json::to_string(v).unwrap();
    let events: Vec<String> = events
        .iter()
        .map(|e| {
            format!(
                r#"{{"id":{},"timestamp":{},"message":{}}}"#,
                s(&e.id),
                e.timestamp,
                s(&e.message)
            )
        })
        .collect();
    format!(
        r#"{{"messageType":"DATA_MESSAGE","owner":"311111777194","logGroup":{},"logStream":{},"subscriptionFilters":["fortisiem"],"logEvents":[{}]}}"#,
        s(log_group),
        s(log_stream),
        events.join(",")
    )
}

fn cloudtrail_payload(rng: &mut Rng, events: usize, t0: u64) -> String {
    let names = [
        ("s3.amazonaws.com", "GetObject"),
        ("ec2.amazonaws.com", "DescribeInstances"),
        ("sts.amazonaws.com", "AssumeRole"),
        ("iam.amazonaws.com", "ListRoles"),
        ("kms.amazonaws.com", "Decrypt"),
    ];
    let mut log_events = Vec::with_capacity(events);
    for i in 0..events {
        let (source, name) = names[rng.below(names.len() as u64) as usize];
        let record = serde_json::json!({
            "eventVersion": "1.08",
            "userIdentity": {
                "type": "AssumedRole",
                "principalId": format!("AROA{:016X}:session-{}", rng.next(), rng.below(1000)),
                "arn": format!("arn:aws:sts::311111777194:assumed-role/app-{}/i-0{:016x}", rng.below(20), rng.next() >> 4),
                "accountId": "311111777194",
                "accessKeyId": format!("ASIA{:016X}", rng.next()),
                "sessionContext": {
                    "sessionIssuer": {"type": "Role", "principalId": "AROAEXAMPLE", "arn": "arn:aws:iam::311111777194:role/app", "accountId": "311111777194", "userName": "app"},
                    "attributes": {"creationDate": "2021-04-28T13:00:00Z", "mfaAuthenticated": "false"}
                }
            },
            "eventTime": "2021-04-28T14:29:51Z",
            "eventSource": source,
            "eventName": name,
            "awsRegion": "us-east-1",
            "sourceIPAddress": format!("{}.{}.{}.{}", rng.below(224) + 1, rng.below(256), rng.below(256), rng.below(256)),
            "userAgent": "aws-sdk-java/1.11.1000 Linux/5.4 OpenJDK_64-Bit_Server_VM/25.282-b08 java/1.8.0_282",
            "requestParameters": {"bucketName": format!("bucket-{}", rng.below(50)), "key": format!("logs/{}/{}.json", rng.below(1000), rng.next())},
            "responseElements": null,
            "requestID": format!("{:016X}", rng.next()),
            "eventID": format!("{:08x}-{:04x}-4{:03x}-a{:03x}-{:012x}", rng.next() as u32, rng.below(65536), rng.below(4096), rng.below(4096), rng.next() >> 16),
            "readOnly": true,
            "resources": [{"type": "AWS::S3::Object", "ARN": format!("arn:aws:s3:::bucket-{}/logs/{}", rng.below(50), rng.next())}],
            "eventType": "AwsApiCall",
            "managementEvent": false,
            "recipientAccountId": "311111777194",
            "eventCategory": "Data",
            "tlsDetails": {"tlsVersion": "TLSv1.2", "cipherSuite": "ECDHE-RSA-AES128-GCM-SHA256", "clientProvidedHostHeader": "s3.amazonaws.com"}
        });
        log_events.push(LogEvent {
            id: format!("3{:055}", rng.next() as u128 * 1_000_000 + i as u128),
            timestamp: t0 * 1000 + i as u64 * 7,
            message: record.to_string(),
        });
    }
    envelope(
        "aws-cloudtrail-logs-311111777194",
        "311111777194_CloudTrail_us-east-1",
        &log_events,
    )
}

fn gzip(text: &str) -> Vec<u8> {
    let mut e = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::new(6));
    e.write_all(text.as_bytes()).unwrap();
    e.finish().unwrap()
}

struct Corpus {
    name: &'static str,
    records: Vec<Vec<u8>>,
    decompressed: u64,
    events: u64,
}

fn corpus(
    name: &'static str,
    make: impl Fn(&mut Rng, u64) -> String,
    records: usize,
    events_per: usize,
) -> Corpus {
    let mut rng = Rng(0x9e37_79b9_7f4a_7c15);
    let mut c = Corpus {
        name,
        records: Vec::new(),
        decompressed: 0,
        events: 0,
    };
    let mut compressed = 0;
    for i in 0..records {
        let text = make(&mut rng, 1_619_538_000 + i as u64 * 60);
        c.decompressed += text.len() as u64;
        c.events += events_per as u64;
        let gz = gzip(&text);
        compressed += gz.len();
        c.records.push(gz);
    }
    eprintln!(
        "corpus {name}: {records} records, {} events, {:.1} MB decompressed, ratio {:.1}:1",
        c.events,
        c.decompressed as f64 / 1e6,
        c.decompressed as f64 / compressed as f64
    );
    c
}

fn benches(c: &mut Criterion) {
    let corpora = [
        corpus("vpc_flow", |r, t| vpc_payload(r, 500, t), 40, 500),
        corpus("cloudtrail", |r, t| cloudtrail_payload(r, 50, t), 40, 50),
    ];

    let mut g = c.benchmark_group("gunzip");
    for corpus in &corpora {
        g.throughput(Throughput::Bytes(corpus.decompressed));
        let mut inflater = libdeflater::Decompressor::new();
        let mut out = vec![0u8; 16 << 20];
        g.bench_function(format!("libdeflate/{}", corpus.name), |b| {
            b.iter(|| {
                let mut total = 0;
                for record in &corpus.records {
                    total += inflater.gzip_decompress(record, &mut out).unwrap();
                }
                total
            })
        });
    }
    g.finish();

    let mut g = c.benchmark_group("pipeline");
    for corpus in &corpora {
        let classifier = Arc::new(Classifier::default());
        let mut decoder = Decoder::new(&DecodeConfig::default(), Arc::clone(&classifier));
        let mut formatter = Formatter::new(BodyFormat::Fsm);
        let mut out = Vec::with_capacity(8 << 20);
        // Check once that the work is real: every event comes out.
        let mut lines = 0u64;
        for record in &corpus.records {
            decoder.decode_record(record, None, |e| {
                formatter.write_body(e, &classifier, true, &mut out);
                lines += 1;
            });
        }
        assert_eq!(lines, corpus.events);
        g.throughput(Throughput::Bytes(corpus.decompressed));
        g.bench_function(format!("fsm/{}", corpus.name), |b| {
            b.iter(|| {
                out.clear();
                for record in &corpus.records {
                    decoder.decode_record(record, None, |e| {
                        formatter.write_body(e, &classifier, true, &mut out);
                        out.push(b'\n');
                    });
                }
                out.len()
            })
        });
    }
    g.finish();
}

criterion_group!(decode, benches);
criterion_main!(decode);
