//! The sink against a real rsyslog: seed lines arrive intact in both framings and
//! rsyslog parses the header fields as sent.

mod common;

use std::time::Duration;

use common::rsyslog::{Input, Rsyslog};
use common::*;
use kinesis_collector::sink::Sink;
use tokio_util::sync::CancellationToken;

const WAIT: Duration = Duration::from_secs(20);

async fn send(config_text: &str, messages: &[&str]) {
    let config = sink_config(config_text);
    let sink = Sink::start(&config, CancellationToken::new()).unwrap();
    let handle = sink.handle();
    let mut enc = encoder(&config);
    let ack = handle.submit(batch_of(&mut enc, messages)).await.unwrap();
    tokio::time::timeout(WAIT, ack)
        .await
        .expect("acknowledged in time")
        .unwrap();
    let report = sink.close(Duration::from_secs(5)).await.unwrap();
    assert_eq!(report.unacknowledged_batches, 0);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn seed_lines_arrive_intact_and_headers_parse_in_both_framings() {
    for framing in ["newline", "octet-counting"] {
        let rs = Rsyslog::start(Input::Tcp);
        let multi = "first line\nsecond line";
        let mut expected_raw = Vec::new();
        let mut expected_parsed = Vec::new();
        for header in ["pri", "rfc5424", "rfc3164"] {
            let cfg = format!(
                "transport = \"tcp\"\naddresses = [\"{}\"]\nframing = \"{framing}\"\nheader = \"{header}\"\nstructured_data = false",
                rs.address()
            );
            let messages: &[&str] = if framing == "newline" {
                &[VPC_SEED, CLOUDTRAIL_SEED, multi]
            } else {
                &[VPC_SEED, CLOUDTRAIL_SEED]
            };
            send(&cfg, messages).await;
            for m in messages {
                let body = if framing == "newline" {
                    m.replace('\n', "\\n")
                } else {
                    m.to_string()
                };
                expected_raw.push(match header {
                    "pri" => format!("<134>2021-04-27T15:40:50.000Z [FSM-AWSKinesis] {body}"),
                    "rfc5424" => format!("<134>1 2021-04-27T15:40:50.000Z collector-1 kinesis-collector - - - [FSM-AWSKinesis] {body}"),
                    _ => format!("<134>Apr 27 15:40:50 collector-1 kinesis-collector: [FSM-AWSKinesis] {body}"),
                });
                expected_parsed.push((header, body));
            }
        }
        let raw = rs.wait_raw(expected_raw.len(), WAIT);
        assert_eq!(raw, expected_raw, "framing {framing}");
        let parsed = rs.parsed_lines();
        assert_eq!(parsed.len(), expected_parsed.len());
        for (line, (header, body)) in parsed.iter().zip(&expected_parsed) {
            assert!(line.starts_with("pri=134 "), "{framing}/{header}: {line}");
            match *header {
                "rfc5424" => {
                    let want = format!("pri=134 ts=2021-04-27T15:40:50.000Z host=collector-1 app=kinesis-collector msg=[FSM-AWSKinesis] {body}");
                    assert_eq!(line, &want, "{framing}/{header}");
                }
                "rfc3164" => {
                    assert!(
                        line.contains(" host=collector-1 app=kinesis-collector msg="),
                        "{framing}/{header}: {line}"
                    );
                    assert!(
                        line.contains("-04-27T15:40:50"),
                        "{framing}/{header}: {line}"
                    );
                    assert!(
                        line.ends_with(&format!("[FSM-AWSKinesis] {body}")),
                        "{framing}/{header}: {line}"
                    );
                }
                _ => {
                    // A 3164-style parser takes `[FSM-AWSKinesis]` for the tag: the raw
                    // message (checked above) is what FortiSIEM reads.
                    assert!(
                        line.contains("ts=2021-04-27T15:40:50"),
                        "{framing}/{header}: {line}"
                    );
                }
            }
        }
    }
}
