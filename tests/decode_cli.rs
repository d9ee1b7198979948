//! The `decode` and `check-config` commands, run as a user runs them, over the
//! fixtures in `tests/fixtures/decode/` and the outputs `make.py` computed for them
//! independently of this crate.

use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};

use serde_json::Value;

fn bin() -> Command {
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_kinesis-collector"));
    cmd.env_remove("KINESIS_COLLECTOR_CONFIG")
        .env("RUST_LOG", "warn");
    cmd
}

fn fixture(name: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("tests/fixtures/decode")
        .join(name)
}

fn expected() -> serde_json::Map<String, Value> {
    let text = std::fs::read_to_string(fixture("expected.json")).unwrap();
    serde_json::from_str(&text).unwrap()
}

fn decode(args: &[&str]) -> Output {
    bin().arg("decode").args(args).output().unwrap()
}

fn stdout_lines(out: &Output) -> Vec<String> {
    String::from_utf8(out.stdout.clone())
        .unwrap()
        .lines()
        .map(str::to_owned)
        .collect()
}

#[test]
fn every_fixture_decodes_to_its_expected_output() {
    let cases = expected();
    assert!(cases.len() >= 14, "expected.json has {} cases", cases.len());
    for (name, case) in &cases {
        let path = fixture(name);
        let out = decode(&[path.to_str().unwrap()]);
        let stderr = String::from_utf8_lossy(&out.stderr);
        if let Some(want) = case["stdout"].as_array() {
            let want: Vec<&str> = want.iter().map(|l| l.as_str().unwrap()).collect();
            assert_eq!(
                stdout_lines(&out),
                want,
                "stdout of {name}; stderr: {stderr}"
            );
        }
        for needle in case["stderr"].as_array().unwrap() {
            let needle = needle.as_str().unwrap();
            assert!(
                stderr.contains(needle),
                "stderr of {name} lacks {needle:?}: {stderr}"
            );
        }
        if case["stderr"].as_array().unwrap().is_empty() {
            assert!(stderr.is_empty(), "unexpected stderr for {name}: {stderr}");
        }
        let status = case["status"].as_i64().unwrap() as i32;
        assert_eq!(
            out.status.code(),
            Some(status),
            "exit status of {name}; stderr: {stderr}"
        );
    }
}

#[test]
fn several_files_decode_in_order_and_a_bad_one_does_not_stop_the_rest() {
    let names = [
        "vpc-flow-v2.json.gz",
        "truncated.json.gz",
        "no-such-file.gz",
        "cloudtrail.json.gz",
    ];
    let paths: Vec<String> = names
        .iter()
        .map(|n| fixture(n).to_str().unwrap().to_owned())
        .collect();
    let args: Vec<&str> = paths.iter().map(String::as_str).collect();
    let out = decode(&args);
    let cases = expected();
    let mut want: Vec<&str> = Vec::new();
    for name in ["vpc-flow-v2.json.gz", "cloudtrail.json.gz"] {
        want.extend(
            cases[name]["stdout"]
                .as_array()
                .unwrap()
                .iter()
                .map(|l| l.as_str().unwrap()),
        );
    }
    assert_eq!(stdout_lines(&out), want);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        stderr.contains("no-such-file.gz: cannot read file"),
        "{stderr}"
    );
    assert!(stderr.contains("truncated.json.gz"), "{stderr}");
    assert_eq!(out.status.code(), Some(1));
}

#[test]
fn standard_input_is_read_with_a_dash_or_no_file() {
    for args in [&["-"][..], &[][..]] {
        let mut child = bin()
            .arg("decode")
            .args(args)
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .spawn()
            .unwrap();
        let data = std::fs::read(fixture("get-records-cli-v2.json")).unwrap();
        std::io::Write::write_all(child.stdin.as_mut().unwrap(), &data).unwrap();
        drop(child.stdin.take());
        let out = child.wait_with_output().unwrap();
        let want = expected()["get-records-cli-v2.json"]["stdout"]
            .as_array()
            .unwrap()
            .len();
        assert_eq!(stdout_lines(&out).len(), want);
        assert_eq!(out.status.code(), Some(1));
    }
}

#[test]
fn plain_text_records_are_stamped_with_the_time_of_reading() {
    let before = std::time::SystemTime::now();
    let out = decode(&[fixture("plain-text.txt").to_str().unwrap()]);
    let lines = stdout_lines(&out);
    assert_eq!(lines.len(), 1);
    let (stamp, rest) = lines[0].split_once(' ').unwrap();
    assert_eq!(
        rest,
        "[FSM-AWSKinesis] plain text from another producer\twith a tab"
    );
    let t = humantime::parse_rfc3339(stamp).unwrap();
    let slack = std::time::Duration::from_secs(1);
    assert!(
        t + slack >= before && t <= std::time::SystemTime::now() + slack,
        "{stamp}"
    );
    assert_eq!(stamp.len(), "2021-04-27T15:40:50.000Z".len());
}

#[test]
fn json_output_has_class_origin_and_fields() {
    let out = decode(&[
        "--format",
        "json",
        fixture("vpc-flow-v2.json.gz").to_str().unwrap(),
    ]);
    assert_eq!(out.status.code(), Some(0));
    let events: Vec<Value> = stdout_lines(&out)
        .iter()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect();
    let types: Vec<&str> = events
        .iter()
        .map(|e| e["event_type"].as_str().unwrap())
        .collect();
    assert_eq!(
        types,
        [
            "AWS_VPC_FLOW_REJECT",
            "AWS_VPC_FLOW_ACCEPT",
            "AWS_VPC_FLOW_NODATA",
            "AWS_VPC_FLOW_SKIPDATA"
        ]
    );
    assert!(events
        .iter()
        .all(|e| e["class"] == "vpc_flow" && e["log_group"] == "vpc-flow-logs"));
    assert_eq!(events[0]["timestamp"], "2021-04-27T15:40:50.000Z");
    assert_eq!(events[0]["owner"], "311111777194");
    assert_eq!(events[0]["fields"]["srcport"], 22898);
    let out = decode(&[
        "--format",
        "json",
        fixture("cloudtrail.json.gz").to_str().unwrap(),
    ]);
    let event: Value = serde_json::from_str(&stdout_lines(&out)[0]).unwrap();
    assert_eq!(event["class"], "cloudtrail");
    assert_eq!(event["fields"]["eventName"], "ConsoleLogin");
}

#[test]
fn a_large_listing_streams_through() {
    // 20 000 records in one get-records file: all of them come out, in order.
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("big.json");
    let mut text = String::from("{\"Records\": [");
    for i in 0..20_000 {
        if i > 0 {
            text.push(',');
        }
        let data = base64_encode(format!("line {i}").as_bytes());
        text.push_str(&format!(
            "{{\"SequenceNumber\":\"{i}\",\"ApproximateArrivalTimestamp\":1619538050.{:03},\"Data\":\"{data}\"}}",
            i % 1000
        ));
    }
    text.push_str("], \"NextShardIterator\": null}");
    std::fs::write(&path, text).unwrap();
    let out = decode(&[path.to_str().unwrap()]);
    assert_eq!(
        out.status.code(),
        Some(0),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let lines = stdout_lines(&out);
    assert_eq!(lines.len(), 20_000);
    assert_eq!(
        lines[19_999],
        "2021-04-27T15:40:50.999Z [FSM-AWSKinesis] line 19999"
    );
}

fn base64_encode(data: &[u8]) -> String {
    use base64::Engine as _;
    base64::engine::general_purpose::STANDARD.encode(data)
}

#[test]
fn check_config_accepts_the_example_and_lists_every_problem_otherwise() {
    let example = Path::new(env!("CARGO_MANIFEST_DIR")).join("config/kinesis-collector.toml");
    let out = bin()
        .args(["check-config", "--config"])
        .arg(&example)
        .output()
        .unwrap();
    assert_eq!(String::from_utf8_lossy(&out.stdout), "ok\n");
    assert_eq!(out.status.code(), Some(0));

    let dir = tempfile::tempdir().unwrap();
    let bad = dir.path().join("bad.toml");
    std::fs::write(&bad, "[decode]\nmax_record_bytes = 12\nwhat = 1\n[typo]\n").unwrap();
    let out = bin()
        .args(["check-config", "--config"])
        .arg(&bad)
        .output()
        .unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        stderr.contains("decode") && stderr.contains("typo"),
        "{stderr}"
    );
    assert_eq!(out.status.code(), Some(1));

    let out = bin()
        .args(["check-config", "--config"])
        .arg(dir.path().join("missing.toml"))
        .output()
        .unwrap();
    assert!(String::from_utf8_lossy(&out.stderr).contains("cannot read config file"));
    assert_eq!(out.status.code(), Some(1));
}

#[test]
fn usage_errors_exit_with_2() {
    let out = bin().args(["decode", "--format", "xml"]).output().unwrap();
    assert_eq!(out.status.code(), Some(2));
    let out = bin().arg("no-such-command").output().unwrap();
    assert_eq!(out.status.code(), Some(2));
}
