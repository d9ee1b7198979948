//! The sink against a real rsyslog: seed lines arrive intact in both framings and
//! rsyslog parses the header fields as sent.

mod common;

use std::time::Duration;

use common::rsyslog::{Input, Rsyslog};
use common::*;
use kinesis_collector::event::Origin;
use kinesis_collector::sink::Sink;
use std::borrow::Cow;
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
        let parsed = rs.wait_parsed(expected_parsed.len(), WAIT);
        assert_eq!(parsed.len(), expected_parsed.len());
        for (line, (header, body)) in parsed.iter().zip(&expected_parsed) {
            assert!(line.starts_with("pri=134 "), "{framing}/{header}: {line}");
            match *header {
                "rfc5424" => {
                    let want = format!("pri=134 ts=2021-04-27T15:40:50.000Z host=collector-1 app=kinesis-collector sd=- msg=[FSM-AWSKinesis] {body}");
                    assert_eq!(line, &want, "{framing}/{header}");
                }
                "rfc3164" => {
                    assert!(
                        line.contains(" host=collector-1 app=kinesis-collector sd=- msg="),
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

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn rfc5424_structured_data_and_hostname_from_the_event_parse_in_rsyslog() {
    let rs = Rsyslog::start(Input::Tcp);
    let config = sink_config(&format!(
        "transport = \"tcp\"\naddresses = [\"{}\"]\nframing = \"octet-counting\"\nheader = \"rfc5424\"\nhostname_source = \"owner\"\nfacility = \"auth\"\nseverity = \"notice\"",
        rs.address()
    ));
    let tags = std::sync::Arc::new(std::collections::BTreeMap::from([(
        "tenant".to_owned(),
        "acme \"east\"".to_owned(),
    )]));
    let mut enc = kinesis_collector::sink::Encoder::new(&config, "collector-1", tags);
    let origin = Origin {
        owner: Some(Cow::Borrowed("311111777194")),
        log_group: Some(Cow::Borrowed("vpc-flow-logs")),
        log_stream: Some(Cow::Borrowed("eni-054c755e644dcf32d-all")),
    };
    let sink = Sink::start(&config, CancellationToken::new()).unwrap();
    let ack = sink
        .handle()
        .submit(batch_from(&mut enc, &origin, &[VPC_SEED]))
        .await
        .unwrap();
    tokio::time::timeout(WAIT, ack).await.unwrap().unwrap();
    sink.close(Duration::from_secs(5)).await.unwrap();
    let parsed = tokio::task::block_in_place(|| rs.wait_parsed(1, WAIT));
    assert_eq!(
        parsed[0],
        format!(
            "pri=37 ts=2021-04-27T15:40:50.000Z host=311111777194 app=kinesis-collector \
             sd=[origin@32473 group=\"vpc-flow-logs\" stream=\"eni-054c755e644dcf32d-all\" owner=\"311111777194\" class=\"other\"]\
             [tags@32473 tenant=\"acme \\\"east\\\"\"] msg=[FSM-AWSKinesis] {VPC_SEED}"
        )
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn cloudtrail_sized_events_arrive_whole_over_tcp_and_relp() {
    // CloudTrail events reach 256 KB; the receivers allow 300k (maxMessageSize).
    let big = format!(
        "{{\"eventName\":\"PutObject\",\"pad\":\"{}\"}}",
        "x".repeat(250 * 1024)
    );
    for (input, transport) in [(Input::Tcp, "tcp"), (Input::Relp, "relp")] {
        let rs = Rsyslog::start(input);
        let framing = if transport == "tcp" {
            "framing = \"octet-counting\"\n"
        } else {
            ""
        };
        send(
            &format!(
                "transport = \"{transport}\"\n{framing}addresses = [\"{}\"]",
                rs.address()
            ),
            &[&big, VPC_SEED],
        )
        .await;
        let raw = tokio::task::block_in_place(|| rs.wait_raw(2, WAIT));
        assert_eq!(
            raw[0],
            format!("<134>2021-04-27T15:40:50.000Z [FSM-AWSKinesis] {big}"),
            "{transport}"
        );
        assert!(raw[1].ends_with(VPC_SEED), "{transport}");
    }
}
