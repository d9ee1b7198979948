//! End to end as in the seed documents, all in moto: CloudWatch Logs PutLogEvents
//! (VPC flow lines and CloudTrail records) → subscription filter → moto's Kinesis
//! → the `kinesis-collector run` binary → a real rsyslog; every line rsyslog wrote
//! is the seed format exactly (`<134>`, the event's UTC time with milliseconds, the
//! `[FSM-AWSKinesis]` tag, the log line unchanged), once, in order. moto's CloudWatch Logs is
//! driven with boto3 from the emulators' own virtualenv (the crate has no
//! CloudWatch Logs client).

mod common {
    pub mod aws;
    #[allow(dead_code)] // the sink tests use the rest of it
    pub mod rsyslog;
}

use std::path::Path;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use common::aws;
use common::rsyslog::{Input, Rsyslog};

/// VPC flow lines (default format, version 2), as the flow log writes them.
const VPC: [&str; 3] = [
    "2 311111777194 eni-054c755e644dcf32d 10.7.12.121 109.14.142.11 22898 22717 6 1 40 1619538050 1619538102 REJECT OK",
    "2 311111777194 eni-054c755e644dcf32d 10.7.12.121 10.7.0.2 443 49152 6 10 8400 1619538050 1619538102 ACCEPT OK",
    "2 311111777194 eni-054c755e644dcf32d - - - - - - - 1619538050 1619538102 - NODATA",
];
/// CloudTrail records, one JSON object per log event as CloudTrail sends them to
/// CloudWatch Logs.
const TRAIL: [&str; 2] = [
    r#"{"eventVersion":"1.08","userIdentity":{"type":"IAMUser","accountId":"311111777194"},"eventTime":"2021-04-28T14:29:51Z","eventSource":"signin.amazonaws.com","eventName":"ConsoleLogin","awsRegion":"us-east-1","sourceIPAddress":"198.51.100.7","eventID":"5d3b0b0a-1111-2222-3333-444444444444","eventType":"AwsConsoleSignIn","recipientAccountId":"311111777194"}"#,
    r#"{"eventVersion":"1.08","userIdentity":{"type":"AssumedRole","principalId":"AROAEXAMPLE:fsm","arn":"arn:aws:sts::311111777194:assumed-role/fsm/fsm","accountId":"311111777194"},"eventTime":"2021-04-28T14:30:02Z","eventSource":"kinesis.amazonaws.com","eventName":"GetRecords","awsRegion":"us-east-1","sourceIPAddress":"10.0.0.1","userAgent":"aws-sdk-java/1.11.0","requestParameters":{"shardIterator":"AAAA"},"responseElements":null,"eventID":"5d3b0b0a-1111-2222-3333-555555555555","readOnly":true,"eventType":"AwsApiCall","recipientAccountId":"311111777194"}"#,
];

/// Creates the stream, the log group with a subscription filter to it, and puts
/// the messages (a JSON list) as log events at `now`, `now + 1`, ... ms.
const PUBLISH: &str = r#"
import json, sys, boto3
stream, group, messages, now = sys.argv[1:5]
kinesis = boto3.client("kinesis")
kinesis.create_stream(StreamName=stream, ShardCount=1)
arn = kinesis.describe_stream_summary(StreamName=stream)["StreamDescriptionSummary"]["StreamARN"]
logs = boto3.client("logs")
logs.create_log_group(logGroupName=group)
logs.create_log_stream(logGroupName=group, logStreamName="s")
logs.put_subscription_filter(logGroupName=group, filterName="to-kinesis", filterPattern="",
    destinationArn=arn, roleArn="arn:aws:iam::123456789012:role/cwl-to-kinesis")
logs.put_log_events(logGroupName=group, logStreamName="s", logEvents=[
    {"timestamp": int(now) + i, "message": m} for i, m in enumerate(json.loads(messages))])
"#;

#[test]
fn cloudwatch_logs_subscription_to_siem_lines() {
    aws::ensure_emulators();
    let moto = std::env::var("AWS_ENDPOINT_URL_DYNAMODB").unwrap();
    let root = Path::new(env!("CARGO_MANIFEST_DIR"));
    let stream = aws::unique_name("cwl");
    let messages: Vec<&str> = VPC.iter().chain(&TRAIL).copied().collect();
    // The log events' timestamps: each line carries its event's.
    let now_ms = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap()
        .as_millis() as u64;
    let status = Command::new(root.join(".emulators/venv/bin/python"))
        .args([
            "-c",
            PUBLISH,
            &stream,
            &format!("/aws/{stream}"),
            &serde_json::to_string(&messages).unwrap(),
            &now_ms.to_string(),
        ])
        .env("AWS_ENDPOINT_URL", &moto)
        .env("AWS_ENDPOINT_URL_KINESIS", &moto)
        .env("AWS_DEFAULT_REGION", "us-east-1")
        .status()
        .unwrap();
    assert!(status.success(), "publishing through moto failed");

    let mut rsyslog = Rsyslog::start(Input::Tcp);
    let dir = tempfile::tempdir().unwrap();
    let config = dir.path().join("c.toml");
    std::fs::write(
        &config,
        format!(
            "[collector]\napplication = \"{}\"\n[[streams]]\nname = \"{stream}\"\n[reader]\npoll_interval = \"200ms\"\n[lease]\nfailover = \"2s\"\n[checkpoint]\ninterval = \"200ms\"\n[shutdown]\ndrain_timeout = \"5s\"\n[sink]\ntransport = \"tcp\"\naddresses = [\"{}\"]\nheader = \"pri\"\n",
            aws::unique_name("cwl-app"),
            rsyslog.address()
        ),
    )
    .unwrap();
    let mut child = Command::new(env!("CARGO_BIN_EXE_kinesis-collector"))
        .args(["run", "--config"])
        .arg(&config)
        // moto's own Kinesis holds what the subscription delivered.
        .env("AWS_ENDPOINT_URL_KINESIS", &moto)
        .stdout(Stdio::null())
        .stderr(std::fs::File::create(dir.path().join("stderr")).unwrap())
        .spawn()
        .unwrap();
    let deadline = Instant::now() + Duration::from_secs(30);
    while rsyslog.raw_lines().len() < messages.len() {
        if let Some(status) = child.try_wait().unwrap() {
            panic!(
                "collector exited early ({status}):\n{}",
                std::fs::read_to_string(dir.path().join("stderr")).unwrap()
            );
        }
        assert!(
            Instant::now() < deadline,
            "rsyslog got {:?} within 30 s",
            rsyslog.raw_lines()
        );
        std::thread::sleep(Duration::from_millis(50));
    }
    // SAFETY: signalling our own child process.
    unsafe { libc::kill(child.id() as i32, libc::SIGINT) };
    let stopped = Instant::now();
    let status = loop {
        if let Some(status) = child.try_wait().unwrap() {
            break status;
        }
        assert!(stopped.elapsed() < Duration::from_secs(20), "no clean stop");
        std::thread::sleep(Duration::from_millis(50));
    };
    let stderr = std::fs::read_to_string(dir.path().join("stderr")).unwrap();
    assert_eq!(status.code(), Some(0), "{stderr}");
    // Stopped, rsyslog has written everything it got: nothing more, nothing less.
    rsyslog.stop();
    let ts = |ms: u64| {
        humantime::format_rfc3339_millis(UNIX_EPOCH + Duration::from_millis(ms)).to_string()
    };
    let stamps: Vec<String> = (0..messages.len() as u64).map(|i| ts(now_ms + i)).collect();
    // UTC with three fractional digits, e.g. 2021-04-27T15:40:50.000Z.
    assert!(
        stamps
            .iter()
            .all(|t| t.len() == 24 && t.ends_with('Z') && t.as_bytes()[19] == b'.'),
        "{stamps:?}"
    );
    let want: Vec<String> = messages
        .iter()
        .zip(&stamps)
        .map(|(m, t)| format!("<134>{t} [FSM-AWSKinesis] {m}"))
        .collect();
    assert_eq!(rsyslog.raw_lines(), want, "{stderr}");
    // rsyslog read the priority and the time from the header; as a 3164-style
    // parser it takes `[FSM-AWSKinesis]` for the tag, so the message follows it
    // (FortiSIEM reads the raw line).
    let parsed = rsyslog.parsed_lines();
    assert_eq!(parsed.len(), messages.len(), "{parsed:?}");
    for ((line, t), m) in parsed.iter().zip(&stamps).zip(&messages) {
        assert!(line.starts_with(&format!("pri=134 ts={t} ")), "{line}");
        assert!(line.ends_with(&format!(" msg= {m}")), "{line}");
    }
}
