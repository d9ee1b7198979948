//! `once` and `status` against the emulators, run as the binary an operator runs:
//! `once` passes with a stream, lease table, CloudWatch and a listening sink, and
//! fails with the right line and exit status 1 for a wrong stream, a DynamoDB
//! endpoint nobody answers on, and a closed sink port; `status` shows fixture
//! leases with owners, parents and stale marks.

#[path = "common/mod.rs"]
mod common_helpers;
mod common {
    pub mod aws;
}

use std::io::Read;
use std::net::TcpListener;
use std::process::Command;
use std::sync::{Arc, Mutex};

use common::aws;
use common_helpers::CLOUDTRAIL_SEED;
use kinesis_collector::lease::dynamodb::DynamoDbLeaseStore;
use kinesis_collector::lease::{Checkpoint, Lease, LeaseStore};

/// A default-format (version 2) VPC flow log line.
const VPC_LINE: &str = "2 123456789010 eni-1235b8ca123456789 172.31.16.139 172.31.16.21 20641 22 6 20 4249 1418530010 1418530070 ACCEPT OK";

struct Fixture {
    stream: String,
    table: String,
    dir: tempfile::TempDir,
}

/// A stream with a VPC flow and a CloudTrail record, and a lease table with two
/// leases (one held by `worker-a`, one free and split from the first).
async fn fixture() -> Fixture {
    let kinesis = aws::kinesis().await;
    let stream = aws::create_stream(&kinesis, 1).await;
    aws::put(&kinesis, &stream, "0", &subscription_payload(VPC_LINE)).await;
    aws::put(&kinesis, &stream, "0", CLOUDTRAIL_SEED.as_bytes()).await;
    let table = aws::unique_name("ops-leases");
    let store = DynamoDbLeaseStore::new(aws::dynamodb().await, table.clone());
    store.ensure_table().await.expect("lease table");
    let parent = Lease::new("shardId-000000000000", Checkpoint::TrimHorizon);
    store.create(&parent).await.unwrap();
    let parent = store.get(&parent.key).await.unwrap().unwrap();
    store.take(&parent, "worker-a").await.expect("take");
    let mut child = Lease::new("shardId-000000000001", Checkpoint::TrimHorizon);
    child.parent_shard_ids = vec!["shardId-000000000000".into()];
    store.create(&child).await.unwrap();
    Fixture {
        stream,
        table,
        dir: tempfile::tempdir().unwrap(),
    }
}

/// What a CloudWatch Logs subscription writes: a gzip-compressed envelope.
fn subscription_payload(message: &str) -> Vec<u8> {
    use std::io::Write;
    let envelope = serde_json::json!({
        "messageType": "DATA_MESSAGE",
        "owner": "311111777194",
        "logGroup": "vpc-flow-logs",
        "logStream": "eni-054c755e644dcf32d-all",
        "subscriptionFilters": ["to-kinesis"],
        "logEvents": [{"id": "1", "timestamp": 1_619_538_050_000_i64, "message": message}],
    });
    let mut gz = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::default());
    gz.write_all(envelope.to_string().as_bytes()).unwrap();
    gz.finish().unwrap()
}

/// A receiver that keeps what it is sent.
fn receiver() -> (u16, Arc<Mutex<Vec<u8>>>) {
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    let port = listener.local_addr().unwrap().port();
    let got = Arc::new(Mutex::new(Vec::new()));
    let keep = Arc::clone(&got);
    std::thread::spawn(move || {
        for conn in listener.incoming() {
            let Ok(mut conn) = conn else { return };
            let keep = Arc::clone(&keep);
            std::thread::spawn(move || {
                let mut buf = [0u8; 4096];
                while let Ok(n) = conn.read(&mut buf) {
                    if n == 0 {
                        break;
                    }
                    keep.lock().unwrap().extend_from_slice(&buf[..n]);
                }
            });
        }
    });
    (port, got)
}

fn closed_port() -> u16 {
    TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

/// Runs the binary with `args` and the config text; returns (exit code, stdout).
fn run(f: &Fixture, config: &str, args: &[&str], env: &[(&str, String)]) -> (i32, String) {
    let path = f.dir.path().join(format!("{}.toml", aws::unique_name("c")));
    std::fs::write(&path, config).unwrap();
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_kinesis-collector"));
    cmd.args(args).arg("--config").arg(&path);
    for (k, v) in env {
        cmd.env(k, v);
    }
    let out = cmd.output().expect("run kinesis-collector");
    let stdout = String::from_utf8_lossy(&out.stdout).into_owned();
    eprintln!("{stdout}{}", String::from_utf8_lossy(&out.stderr));
    (out.status.code().unwrap_or(-1), stdout)
}

fn config(stream: &str, table: &str, sink_port: u16) -> String {
    format!(
        "[collector]\napplication = \"{table}\"\nworker_id = \"once-test\"\n\
         [[streams]]\nname = \"{stream}\"\nregions = [\"us-east-1\"]\n\
         [sink]\ntransport = \"tcp\"\naddresses = [\"127.0.0.1:{sink_port}\"]\n\
         [metrics]\nnamespace = \"{table}\"\n"
    )
}

fn line<'a>(stdout: &'a str, start: &str) -> &'a str {
    stdout
        .lines()
        .find(|l| l.trim_start().starts_with(start))
        .unwrap_or_else(|| panic!("no line starting {start:?} in\n{stdout}"))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn once_passes_against_the_emulators_and_sends_a_test_event() {
    let f = fixture().await;
    let (port, got) = receiver();
    let (code, out) = run(
        &f,
        &config(&f.stream, &f.table, port),
        &["once", "--send-test-event"],
        &[],
    );
    assert_eq!(code, 0, "{out}");
    line(&out, "✓ credentials: from");
    assert!(line(&out, "✓ DescribeStreamSummary").contains("ACTIVE, 1 open shards"));
    line(&out, "✓ ListShards: 1 shards");
    let read = line(&out, "✓ read and decode");
    assert!(read.contains("2 records"), "{read}");
    assert!(read.contains("vpc_flow 1, cloudtrail 1, other 0"), "{read}");
    assert!(
        line(&out, "vpc_flow:").contains("[FSM-AWSKinesis]"),
        "{out}"
    );
    let table = line(&out, "✓ lease table");
    assert!(
        table.contains("2 leases; owners: (free) 1, worker-a 1"),
        "{table}"
    );
    line(&out, "✓ CloudWatch PutMetricData");
    line(&out, "✓ connect: connected to");
    line(&out, "✓ test event");
    assert!(!out.contains('✗'), "{out}");
    // Acknowledged means written to the socket: the receiver reads it soon after.
    aws::wait_for("the test event", std::time::Duration::from_secs(10), || {
        let received = String::from_utf8_lossy(&got.lock().unwrap()).into_owned();
        let found = received.contains("[FSM-AWSKinesis]") && received.contains("connectivity test");
        std::future::ready(found.then_some(()))
    })
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn once_fails_with_the_right_line_for_each_broken_connection() {
    let f = fixture().await;
    let (port, _) = receiver();

    let (code, out) = run(
        &f,
        &config("no-such-stream", &f.table, port),
        &["once"],
        &[],
    );
    assert_eq!(code, 1, "{out}");
    let l = line(&out, "✗ DescribeStreamSummary");
    assert!(l.contains("ResourceNotFoundException"), "{l}");
    assert!(
        out.contains("fix: stream no-such-stream does not exist"),
        "{out}"
    );
    line(&out, "✓ lease table");

    let dynamodb = format!("http://127.0.0.1:{}", closed_port());
    let (code, out) = run(
        &f,
        &config(&f.stream, &f.table, port),
        &["once"],
        &[("AWS_ENDPOINT_URL_DYNAMODB", dynamodb)],
    );
    assert_eq!(code, 1, "{out}");
    line(&out, "✗ lease table");
    line(&out, "✓ read and decode");
    line(&out, "✓ connect");

    // `run --once` is the same dry run.
    for args in [&["once"][..], &["run", "--once"][..]] {
        let (code, out) = run(&f, &config(&f.stream, &f.table, closed_port()), args, &[]);
        assert_eq!(code, 1, "{args:?}: {out}");
        let l = line(&out, "✗ connect");
        assert!(l.contains("refused"), "{l}");
        line(&out, "✓ lease table");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn status_shows_owners_parents_and_stale_leases() {
    let f = fixture().await;
    let config = config(&f.stream, &f.table, closed_port());
    let (code, out) = run(&f, &config, &["status", "--wait", "200ms"], &[]);
    assert_eq!(code, 0, "{out}");
    assert!(out.contains("2 leases, 1 free, 1 stale"), "{out}");
    let parent = line(&out, "shardId-000000000000");
    assert!(
        parent.contains("worker-a") && parent.contains("STALE"),
        "{parent}"
    );
    let child = line(&out, "shardId-000000000001");
    assert!(
        child.contains("free") && child.contains("shardId-000000000000"),
        "{child}"
    );
    line(&out, "worker-a: 1 leases");

    let (code, out) = run(&f, &config, &["status", "--wait", "200ms", "--json"], &[]);
    assert_eq!(code, 0, "{out}");
    let json: serde_json::Value = serde_json::from_str(&out).unwrap();
    let report = &json[0];
    assert_eq!(report["table"], f.table.as_str());
    assert_eq!(report["region"], "us-east-1");
    assert_eq!(report["workers"]["worker-a"], 1);
    assert_eq!(report["leases"][0]["stale"], true);
    assert_eq!(report["leases"][1]["parents"][0], "shardId-000000000000");
}
