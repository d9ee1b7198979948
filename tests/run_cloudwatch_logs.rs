//! End to end as in the seed documents, all in moto: CloudWatch Logs PutLogEvents
//! (a VPC flow line and a CloudTrail record) → subscription filter → moto's Kinesis
//! → the `kinesis-collector run` binary → a TCP receiver; the lines match. moto's
//! CloudWatch Logs is driven with boto3 from the emulators' own virtualenv (the
//! crate has no CloudWatch Logs client).

mod common {
    pub mod aws;
}

use std::io::{BufRead, BufReader};
use std::net::TcpListener;
use std::path::Path;
use std::process::{Command, Stdio};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use common::aws;

const VPC: &str =
    "2 311111777194 eni-054c755e644dcf32d 10.7.12.121 109.14.142.11 22898 22717 6 1 40 1619538050 1619538102 REJECT OK";
const TRAIL: &str = r#"{"eventVersion":"1.08","userIdentity":{"type":"IAMUser","accountId":"311111777194"},"eventTime":"2021-04-28T14:29:51Z","eventSource":"signin.amazonaws.com","eventName":"ConsoleLogin","awsRegion":"us-east-1","sourceIPAddress":"198.51.100.7","eventID":"5d3b0b0a-1111-2222-3333-444444444444","eventType":"AwsConsoleSignIn","recipientAccountId":"311111777194"}"#;

const PUBLISH: &str = r#"
import os, sys, time, boto3
stream, group, vpc, trail = sys.argv[1:5]
kinesis = boto3.client("kinesis")
kinesis.create_stream(StreamName=stream, ShardCount=1)
arn = kinesis.describe_stream_summary(StreamName=stream)["StreamDescriptionSummary"]["StreamARN"]
logs = boto3.client("logs")
logs.create_log_group(logGroupName=group)
logs.create_log_stream(logGroupName=group, logStreamName="s")
logs.put_subscription_filter(logGroupName=group, filterName="to-kinesis", filterPattern="",
    destinationArn=arn, roleArn="arn:aws:iam::123456789012:role/cwl-to-kinesis")
now = int(time.time() * 1000)
logs.put_log_events(logGroupName=group, logStreamName="s", logEvents=[
    {"timestamp": now, "message": vpc}, {"timestamp": now + 1, "message": trail}])
"#;

#[test]
fn cloudwatch_logs_subscription_to_siem_lines() {
    aws::ensure_emulators();
    let moto = std::env::var("AWS_ENDPOINT_URL_DYNAMODB").unwrap();
    let root = Path::new(env!("CARGO_MANIFEST_DIR"));
    let stream = aws::unique_name("cwl");
    let status = Command::new(root.join(".emulators/venv/bin/python"))
        .args([
            "-c",
            PUBLISH,
            &stream,
            &format!("/aws/{stream}"),
            VPC,
            TRAIL,
        ])
        .env("AWS_ENDPOINT_URL", &moto)
        .env("AWS_ENDPOINT_URL_KINESIS", &moto)
        .env("AWS_DEFAULT_REGION", "us-east-1")
        .status()
        .unwrap();
    assert!(status.success(), "publishing through moto failed");

    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    let port = listener.local_addr().unwrap().port();
    let lines = Arc::new(Mutex::new(Vec::<String>::new()));
    let sink_lines = lines.clone();
    std::thread::spawn(move || {
        for socket in listener.incoming().flatten() {
            for line in BufReader::new(socket).lines().map_while(Result::ok) {
                sink_lines.lock().unwrap().push(line);
            }
        }
    });
    let dir = tempfile::tempdir().unwrap();
    let config = dir.path().join("c.toml");
    std::fs::write(
        &config,
        format!(
            "[collector]\napplication = \"{}\"\n[[streams]]\nname = \"{stream}\"\n[reader]\npoll_interval = \"200ms\"\n[lease]\nfailover = \"2s\"\n[checkpoint]\ninterval = \"200ms\"\n[shutdown]\ndrain_timeout = \"5s\"\n[sink]\ntransport = \"tcp\"\naddresses = [\"127.0.0.1:{port}\"]\nheader = \"none\"\n",
            aws::unique_name("cwl-app")
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
    while lines.lock().unwrap().len() < 2 && Instant::now() < deadline {
        if let Some(status) = child.try_wait().unwrap() {
            panic!(
                "collector exited early ({status}):\n{}",
                std::fs::read_to_string(dir.path().join("stderr")).unwrap()
            );
        }
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
    let got = lines.lock().unwrap().clone();
    assert_eq!(got.len(), 2, "{got:?}\n{stderr}");
    assert!(
        got[0].ends_with(&format!("[FSM-AWSKinesis] {VPC}")),
        "{got:?}"
    );
    assert!(
        got[1].ends_with(&format!("[FSM-AWSKinesis] {TRAIL}")),
        "{got:?}"
    );
    assert_eq!(status.code(), Some(0), "{stderr}");
}
