//! Classification over real-shaped fixtures (`tests/fixtures/classify/`): VPC flow
//! records in the default and custom formats (v3, v4, v5, v7/ECS, v8, v11, Transit
//! Gateway), CloudTrail records of several kinds and versions, and other AWS logs;
//! plus property tests of the VPC flow parser.

use std::alloc::{GlobalAlloc, Layout, System};
use std::cell::Cell;
use std::path::PathBuf;

use kinesis_collector::classify::vpc_flow::{self, Kind, Scope, FIELDS};
use kinesis_collector::classify::{Classifier, VpcFlowConfig, VpcFormatConfig};
use kinesis_collector::config::Config;
use kinesis_collector::event::{Class, Classification};
use proptest::prelude::*;
use serde_json::{json, Value};

/// Counts this thread's allocations, so a test can prove the hot path makes none.
struct CountingAlloc;

thread_local! {
    static ALLOCATIONS: Cell<usize> = const { Cell::new(0) };
}

unsafe impl GlobalAlloc for CountingAlloc {
    unsafe fn alloc(&self, layout: Layout) -> *mut u8 {
        let _ = ALLOCATIONS.try_with(|n| n.set(n.get() + 1));
        unsafe { System.alloc(layout) }
    }
    unsafe fn dealloc(&self, ptr: *mut u8, layout: Layout) {
        unsafe { System.dealloc(ptr, layout) }
    }
    unsafe fn realloc(&self, ptr: *mut u8, layout: Layout, new_size: usize) -> *mut u8 {
        let _ = ALLOCATIONS.try_with(|n| n.set(n.get() + 1));
        unsafe { System.realloc(ptr, layout, new_size) }
    }
}

#[global_allocator]
static GLOBAL: CountingAlloc = CountingAlloc;

fn allocations() -> usize {
    ALLOCATIONS.with(Cell::get)
}

fn fixture(name: &str) -> String {
    let path = PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .join("tests/fixtures/classify")
        .join(name);
    std::fs::read_to_string(&path).unwrap_or_else(|e| panic!("{}: {e}", path.display()))
}

/// The classifier of `vpc-formats.toml`, read through the config loader.
fn classifier() -> Classifier {
    let config = Config::from_toml(&fixture("vpc-formats.toml"))
        .unwrap_or_else(|p| panic!("vpc-formats.toml is invalid:\n{p}"));
    Classifier::new(&config.vpc_flow).unwrap()
}

/// What one line is expected to become: `other`, or VPC flow with an event type.
const OTHER: &str = "other";

struct VpcCase {
    file: &'static str,
    group: &'static str,
    /// Per line: the event type, or [`OTHER`].
    expect: &'static [&'static str],
    /// Index of the configured format expected to apply (`None`: the default).
    format: Option<usize>,
}

const VPC_CASES: &[VpcCase] = &[
    VpcCase {
        file: "vpc-flow/v2.log",
        group: "vpc-flow-logs",
        expect: &[
            vpc_flow::ACCEPT,
            vpc_flow::REJECT,
            vpc_flow::NODATA,
            vpc_flow::SKIPDATA,
            vpc_flow::ACCEPT,
            vpc_flow::NODATA,
            vpc_flow::ACCEPT,
            vpc_flow::REJECT,
            vpc_flow::ACCEPT,
            vpc_flow::ACCEPT,
        ],
        format: None,
    },
    VpcCase {
        file: "vpc-flow/v2-lookalikes.log",
        group: "vpc-flow-logs",
        expect: &[OTHER; 11],
        format: None,
    },
    VpcCase {
        file: "vpc-flow/v3.log",
        group: "vpc-v3-prod",
        // The last two: one value short, and a default-format line (the configured
        // format wins in its groups).
        expect: &[
            vpc_flow::ACCEPT,
            vpc_flow::REJECT,
            vpc_flow::NODATA,
            OTHER,
            OTHER,
        ],
        format: Some(0),
    },
    VpcCase {
        file: "vpc-flow/v3.log",
        group: "vpc-flow-logs",
        // Without the format, v3 records are not VPC flow; the v2 line is.
        expect: &[OTHER, OTHER, OTHER, OTHER, vpc_flow::ACCEPT],
        format: None,
    },
    VpcCase {
        file: "vpc-flow/v4.log",
        group: "vpc-v4-edge",
        expect: &[vpc_flow::ACCEPT, vpc_flow::ACCEPT, vpc_flow::REJECT],
        format: Some(1),
    },
    VpcCase {
        file: "vpc-flow/v5.log",
        group: "vpc-v5-egress",
        expect: &[
            vpc_flow::ACCEPT,
            vpc_flow::ACCEPT,
            vpc_flow::ACCEPT,
            vpc_flow::NODATA,
        ],
        format: Some(2),
    },
    VpcCase {
        file: "vpc-flow/v7-ecs.log",
        group: "/aws/ecs/flow-prod",
        expect: &[vpc_flow::ACCEPT, vpc_flow::REJECT],
        format: Some(3),
    },
    VpcCase {
        file: "vpc-flow/v8-reject-reason.log",
        group: "vpc-v8-bpa",
        expect: &[vpc_flow::REJECT, vpc_flow::ACCEPT, vpc_flow::SKIPDATA],
        format: Some(4),
    },
    VpcCase {
        file: "vpc-flow/v11.log",
        group: "vpc-v11-all",
        expect: &[
            vpc_flow::ACCEPT,
            vpc_flow::ACCEPT,
            vpc_flow::NODATA,
            vpc_flow::REJECT,
            OTHER,
        ],
        format: Some(5),
    },
    VpcCase {
        file: "vpc-flow/tgw.log",
        group: "/aws/tgw/core",
        // Transit Gateway records have no action: OK is plain AWS_VPC_FLOW.
        expect: &[vpc_flow::FLOW, vpc_flow::FLOW, vpc_flow::NODATA],
        format: Some(6),
    },
];

#[test]
fn vpc_flow_fixtures_classify_as_expected() {
    let c = classifier();
    for case in VPC_CASES {
        let text = fixture(case.file);
        let lines: Vec<&str> = text.lines().collect();
        assert_eq!(lines.len(), case.expect.len(), "{}", case.file);
        let group = c.for_group(Some(case.group));
        for (i, (line, expect)) in lines.iter().zip(case.expect).enumerate() {
            let got = group.classify(line);
            let want = if *expect == OTHER {
                Classification::OTHER
            } else {
                Classification {
                    class: Class::VpcFlow,
                    event_type: Some(expect),
                    vpc_format: case.format,
                }
            };
            assert_eq!(
                got,
                want,
                "{}:{} in {}: {line}",
                case.file,
                i + 1,
                case.group
            );
            check_vpc_fields(&c, line, &got, case.file);
        }
    }
}

/// Every VPC record's fields: one per format field, typed by kind.
fn check_vpc_fields(c: &Classifier, line: &str, class: &Classification, file: &str) {
    let Some(fields) = c.fields(line, class) else {
        assert_ne!(class.class, Class::VpcFlow, "{file}: no fields for {line}");
        return;
    };
    let v = serde_json::to_value(&fields).unwrap();
    let obj = v.as_object().unwrap();
    assert_eq!(obj.len(), line.split(' ').count(), "{file}: {v}");
    for (key, value) in obj {
        let field = FIELDS.iter().find(|f| f.key == key).unwrap();
        let ok = match field.kind {
            _ if value.is_null() => true,
            Kind::Int => value.is_u64(),
            Kind::Id | Kind::Text => value.is_string(),
        };
        assert!(ok, "{file}: {key} = {value} in {line}");
    }
}

#[test]
fn vpc_flow_fields_by_aws_name() {
    let c = classifier();
    let cases: &[(&str, &str, usize, Value)] = &[
        (
            "vpc-flow/v2.log",
            "vpc-flow-logs",
            0,
            json!({
                "version": 2, "account_id": "123456789012", "interface_id": "eni-0a1b2c3d4e5f67890",
                "srcaddr": "172.31.16.139", "dstaddr": "172.31.16.21", "srcport": 20641, "dstport": 22,
                "protocol": 6, "packets": 20, "bytes": 4249, "start": 1763622000, "end": 1763622060,
                "action": "ACCEPT", "log_status": "OK",
            }),
        ),
        (
            "vpc-flow/v2.log",
            "vpc-flow-logs",
            3,
            json!({
                "version": 2, "account_id": "123456789012", "interface_id": "eni-11111111aaaaaaaaa",
                "srcaddr": null, "dstaddr": null, "srcport": null, "dstport": null, "protocol": null,
                "packets": null, "bytes": null, "start": 1763622000, "end": 1763622060,
                "action": null, "log_status": "SKIPDATA",
            }),
        ),
        (
            "vpc-flow/v2.log",
            "vpc-flow-logs",
            9,
            json!({
                "version": 2, "account_id": "012345678901", "interface_id": "eni-0a1b2c3d4e5f67890",
                "srcaddr": "10.0.0.8", "dstaddr": "10.0.0.9", "srcport": 123, "dstport": 123,
                "protocol": 17, "packets": 1, "bytes": 76, "start": 1763622000, "end": 1763622060,
                "action": "ACCEPT", "log_status": "OK",
            }),
        ),
        (
            "vpc-flow/v3.log",
            "vpc-v3-prod",
            1,
            json!({
                "version": 3, "vpc_id": "vpc-abcdefab012345678", "subnet_id": "subnet-aaaaaaaa012345678",
                "instance_id": null, "interface_id": "eni-1235b8ca123456789", "account_id": "123456789012",
                "type": "IPv4", "srcaddr": "10.0.1.5", "dstaddr": "10.0.0.220", "srcport": 43418,
                "dstport": 80, "pkt_srcaddr": "10.0.1.5", "pkt_dstaddr": "203.0.113.5", "protocol": 6,
                "bytes": 60, "packets": 1, "start": 1763622000, "end": 1763622060, "action": "REJECT",
                "tcp_flags": 19, "log_status": "OK",
            }),
        ),
        (
            "vpc-flow/v4.log",
            "vpc-v4-edge",
            0,
            json!({
                "version": 4, "account_id": "123456789012", "interface_id": "eni-0a1b2c3d4e5f67890",
                "srcaddr": "10.0.0.5", "dstaddr": "10.0.1.9", "srcport": 443, "dstport": 55012,
                "protocol": 6, "packets": 4, "bytes": 392, "start": 1763622000, "end": 1763622060,
                "action": "ACCEPT", "log_status": "OK", "region": "us-west-2", "az_id": "usw2-az1",
                "sublocation_type": "outpost", "sublocation_id": "op-0123456789abcdef0",
            }),
        ),
        (
            "vpc-flow/v5.log",
            "vpc-v5-egress",
            0,
            json!({
                "version": 5, "interface_id": "eni-0a1b2c3d4e5f67890", "flow_direction": "egress",
                "traffic_path": 8, "srcaddr": "10.0.0.112", "dstaddr": "52.219.96.112", "srcport": 58342,
                "dstport": 443, "pkt_src_aws_service": null, "pkt_dst_aws_service": "S3",
                "action": "ACCEPT", "log_status": "OK",
            }),
        ),
        (
            "vpc-flow/v7-ecs.log",
            "/aws/ecs/flow-prod",
            1,
            json!({
                "version": 7, "srcaddr": "10.0.1.30", "dstaddr": "10.0.2.44", "srcport": 40530,
                "dstport": 8080, "protocol": 6, "action": "REJECT", "log_status": "OK",
                "ecs_cluster_name": "prod-cluster",
                "ecs_cluster_arn": "arn:aws:ecs:us-east-1:123456789012:cluster/prod-cluster",
                "ecs_container_instance_id": "0123456789abcdef0123456789abcdef",
                "ecs_container_instance_arn": "arn:aws:ecs:us-east-1:123456789012:container-instance/prod-cluster/0123456789abcdef0123456789abcdef",
                "ecs_service_name": "api",
                "ecs_task_definition_arn": "arn:aws:ecs:us-east-1:123456789012:task-definition/api:7",
                // All digits, still an id: a string.
                "ecs_task_id": "12345678901234567890123456789012",
                "ecs_task_arn": "arn:aws:ecs:us-east-1:123456789012:task/prod-cluster/12345678901234567890123456789012",
                "ecs_container_id": "4a5b6c7d8e9f", "ecs_second_container_id": "5b6c7d8e9f0a",
            }),
        ),
        (
            "vpc-flow/v8-reject-reason.log",
            "vpc-v8-bpa",
            0,
            json!({
                "version": 8, "account_id": "123456789012", "interface_id": "eni-0a1b2c3d4e5f67890",
                "srcaddr": "198.51.100.23", "dstaddr": "10.0.0.8", "srcport": 51515, "dstport": 22,
                "protocol": 6, "packets": 1, "bytes": 60, "start": 1763622000, "end": 1763622060,
                "action": "REJECT", "log_status": "OK", "reject_reason": "BPA",
            }),
        ),
    ];
    for (file, group, index, want) in cases {
        let line = fixture(file).lines().nth(*index).unwrap().to_owned();
        let class = c.for_group(Some(group)).classify(&line);
        let got = serde_json::to_value(c.fields(&line, &class).unwrap()).unwrap();
        assert_eq!(&got, want, "{file}:{}", index + 1);
    }
    // Keys come out in format order, values unquoted where they are numbers.
    let line = fixture("vpc-flow/v5.log")
        .lines()
        .next()
        .unwrap()
        .to_owned();
    let class = c.for_group(Some("vpc-v5-a")).classify(&line);
    assert_eq!(
        serde_json::to_string(&c.fields(&line, &class).unwrap()).unwrap(),
        r#"{"version":5,"interface_id":"eni-0a1b2c3d4e5f67890","flow_direction":"egress","traffic_path":8,"srcaddr":"10.0.0.112","dstaddr":"52.219.96.112","srcport":58342,"dstport":443,"pkt_src_aws_service":null,"pkt_dst_aws_service":"S3","action":"ACCEPT","log_status":"OK"}"#
    );
}

#[test]
fn newest_and_transit_gateway_fields() {
    let c = classifier();
    let v11 = fixture("vpc-flow/v11.log");
    let line = v11.lines().nth(1).unwrap();
    let class = c.for_group(Some("vpc-v11-all")).classify(line);
    let v = serde_json::to_value(c.fields(line, &class).unwrap()).unwrap();
    assert_eq!(v["version"], 11);
    assert_eq!(v["resource_id"], "nat-0123456789abcdef0");
    assert_eq!(v["encryption_status"], 0);
    assert_eq!(v["traffic_path"], 8);
    assert_eq!(v["next_hop_interface_type"], "regional_nat_gateway");
    assert_eq!(v["next_hop_vpc_id"], "vpc-0aaa1111bbbb2222c");
    assert_eq!(v["instance_tag"], "web-frontend");
    assert_eq!(v["asg_tag"], "web-asg");
    assert_eq!(v["asg_tag_2"], Value::Null);
    let line = v11.lines().nth(3).unwrap();
    let class = c.for_group(Some("vpc-v11-all")).classify(line);
    let v = serde_json::to_value(c.fields(line, &class).unwrap()).unwrap();
    assert_eq!(v["reject_reason"], "BPA");
    assert_eq!(v["encryption_status"], Value::Null);

    let tgw = fixture("vpc-flow/tgw.log");
    let line = tgw.lines().nth(1).unwrap();
    let class = c.for_group(Some("tgw-flow-a")).classify(line);
    assert_eq!(class.vpc_format, Some(6));
    let v = serde_json::to_value(c.fields(line, &class).unwrap()).unwrap();
    assert_eq!(v["resource_type"], "TransitGateway");
    assert_eq!(v["tgw_id"], "tgw-0123456789abcdef0");
    assert_eq!(v["tgw_src_vpc_account_id"], "123456789012");
    assert_eq!(v["tgw_dst_vpc_account_id"], "210987654321");
    assert_eq!(v["tgw_src_eni"], "eni-0aaa1111bbbb2222c");
    assert_eq!(v["packets_lost_no_route"], 3);
    assert_eq!(v["packets_lost_mtu_exceeded"], 1);
    assert_eq!(v["flow_direction"], "ingress");
    assert_eq!(v.as_object().unwrap().len(), 36);
}

#[test]
fn cloudtrail_fixtures_classify_with_their_fields() {
    let c = classifier();
    let arn = |who: &str| format!("arn:aws:{who}");
    let cases: Vec<(&str, Value)> = vec![
        (
            "console-login-1.08.json",
            json!({"eventName": "ConsoleLogin", "eventSource": "signin.amazonaws.com", "awsRegion": "us-east-1",
                   "sourceIPAddress": "198.51.100.7", "userIdentity.arn": arn("iam::123456789012:user/alice"),
                   "eventID": "3fcfb586-0c2a-4f5e-9d55-1e4f5c3a1b2c", "recipientAccountId": "123456789012"}),
        ),
        (
            "assume-role-1.08.json",
            json!({"eventName": "AssumeRole", "eventSource": "sts.amazonaws.com", "awsRegion": "eu-west-1",
                   "sourceIPAddress": "203.0.113.44",
                   "userIdentity.arn": arn("sts::123456789012:assumed-role/ci-deployer/ci-runner"),
                   "eventID": "a6d6e8f0-2222-4b3c-8d4e-000000000002", "recipientAccountId": "123456789012"}),
        ),
        (
            "s3-get-object-data-event-1.09.json",
            json!({"eventName": "GetObject", "eventSource": "s3.amazonaws.com", "awsRegion": "us-east-2",
                   "sourceIPAddress": "10.0.1.12",
                   "userIdentity.arn": arn("sts::123456789012:assumed-role/app-server/i-0123456789abcdef0"),
                   "eventID": "b2c3d4e5-4444-4d5e-8f6a-000000000004", "recipientAccountId": "123456789012"}),
        ),
        (
            // Insights events name the API in insightDetails; no caller, no address.
            "insight-1.07.json",
            json!({"eventName": "RunInstances", "eventSource": "ec2.amazonaws.com", "awsRegion": "us-east-1",
                   "eventID": "e1d2c3b4-5555-4e6f-9a7b-000000000005", "recipientAccountId": "123456789012"}),
        ),
        (
            "run-instances-1.05.json",
            json!({"eventName": "RunInstances", "eventSource": "ec2.amazonaws.com", "awsRegion": "ap-southeast-2",
                   "sourceIPAddress": "192.0.2.10", "userIdentity.arn": arn("iam::123456789012:user/bob"),
                   "eventID": "c3d4e5f6-8888-4f9a-8b1c-000000000008", "recipientAccountId": "123456789012"}),
        ),
        (
            // An AWS service acting: userIdentity has no arn.
            "kms-decrypt-aws-service-1.08.json",
            json!({"eventName": "Decrypt", "eventSource": "kms.amazonaws.com", "awsRegion": "us-east-1",
                   "sourceIPAddress": "lambda.amazonaws.com",
                   "eventID": "e5f6a7b8-aaaa-4b1c-9d3e-00000000000a", "recipientAccountId": "123456789012"}),
        ),
        (
            "create-user-1.02.json",
            json!({"eventName": "CreateUser", "eventSource": "iam.amazonaws.com", "awsRegion": "us-east-1",
                   "sourceIPAddress": "192.0.2.1", "userIdentity.arn": arn("iam::123456789012:root"),
                   "eventID": "b8c9d0e1-dddd-4e4f-8a6b-00000000000d", "recipientAccountId": "123456789012"}),
        ),
        (
            "get-caller-identity-1.11.json",
            json!({"eventName": "GetCallerIdentity", "eventSource": "sts.amazonaws.com", "awsRegion": "us-east-1",
                   "sourceIPAddress": "2001:db8::42", "userIdentity.arn": arn("iam::123456789012:user/alice"),
                   "eventID": "d0e1f2a3-ffff-4a6b-8c8d-00000000000f", "recipientAccountId": "123456789012"}),
        ),
    ];
    for (file, want) in cases {
        let message = fixture(&format!("cloudtrail/{file}"));
        let message = message.trim_end_matches('\n');
        // CloudTrail is recognised in any log group, custom-format groups included.
        for group in [
            Some("aws-cloudtrail-logs-123456789012"),
            Some("vpc-v3-x"),
            None,
        ] {
            let class = c.for_group(group).classify(message);
            assert_eq!(class.class, Class::CloudTrail, "{file} in {group:?}");
            assert_eq!(class.event_type, None);
        }
        let class = c.for_group(None).classify(message);
        let got = serde_json::to_value(c.fields(message, &class).unwrap()).unwrap();
        assert_eq!(got, want, "{file}");
    }
}

#[test]
fn other_logs_are_other() {
    let c = classifier();
    for (file, group) in [
        ("other/lambda.log", "/aws/lambda/ingest"),
        ("other/route53-resolver.log", "/aws/route53resolver/queries"),
        (
            "other/api-gateway.log",
            "API-Gateway-Execution-Logs_abc123/prod",
        ),
        ("other/eventbridge-cloudtrail.log", "/aws/events/cloudtrail"),
        ("other/text.log", "app"),
    ] {
        let text = fixture(file);
        for line in text.lines() {
            for g in [Some(group), None] {
                let class = c.for_group(g).classify(line);
                assert_eq!(class, Classification::OTHER, "{file}: {line}");
                assert!(c.fields(line, &class).is_none());
            }
        }
    }
}

#[test]
fn classifying_does_not_allocate() {
    let c = classifier();
    let mut messages: Vec<(String, &str)> = Vec::new();
    for case in VPC_CASES {
        for line in fixture(case.file).lines() {
            messages.push((line.to_owned(), case.group));
        }
    }
    for dir in ["cloudtrail", "other"] {
        let path = PathBuf::from(env!("CARGO_MANIFEST_DIR"))
            .join("tests/fixtures/classify")
            .join(dir);
        for entry in std::fs::read_dir(path).unwrap() {
            let text = std::fs::read_to_string(entry.unwrap().path()).unwrap();
            for line in text.lines() {
                messages.push((line.to_owned(), "any"));
            }
        }
    }
    // Warm up the lazily built statics (the CloudTrail key finder).
    for (message, _) in &messages {
        c.for_group(None).classify(message);
    }
    let mut classes = [0; 3];
    for (message, group) in &messages {
        let g = c.for_group(Some(group));
        let before = allocations();
        let class = g.classify(message);
        assert_eq!(allocations(), before, "classify allocated for {message}");
        classes[class.class.index()] += 1;
    }
    // The fixtures exercised every class.
    assert!(classes.iter().all(|&n| n > 5), "{classes:?}");
}

#[test]
fn the_example_config_builds_a_classifier() {
    let path = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("config/kinesis-collector.toml");
    let config = Config::load(&path).unwrap();
    Classifier::new(&config.vpc_flow).unwrap();
}

// ---- property tests of the VPC flow parser ----

fn classifier_for(format: &str) -> Classifier {
    Classifier::new(&VpcFlowConfig {
        formats: vec![VpcFormatConfig {
            log_groups: vec!["g".into()],
            format: format.into(),
        }],
    })
    .unwrap()
}

/// Tokens that make near-miss lines likely.
fn token() -> impl Strategy<Value = String> {
    prop_oneof![
        Just("2".to_owned()),
        Just("-".to_owned()),
        Just("unknown".to_owned()),
        Just("OK".to_owned()),
        Just("NODATA".to_owned()),
        Just("ACCEPT".to_owned()),
        Just("REJECT".to_owned()),
        Just(String::new()),
        "eni-[0-9a-f]{0,17}",
        "[0-9]{1,13}",
        "\\PC{0,6}",
        "\\{\"eventVersion\":\"1\\.[0-9]{2}\"[,}]{0,1}",
    ]
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(2000))]

    /// Nothing panics, whatever the message, and fields exist exactly for VPC
    /// flow and CloudTrail events.
    #[test]
    fn no_input_panics(
        noise in "\\PC{0,200}",
        tokens in prop::collection::vec(token(), 0..20),
    ) {
        let custom = classifier_for("${version} ${account-id} ${action} ${log-status}");
        let near = tokens.join(" ");
        for message in [noise.as_str(), near.as_str()] {
            for c in [&Classifier::default(), &custom] {
                for group in [None, Some("g")] {
                    let class = c.for_group(group).classify(message);
                    let fields = c.fields(message, &class);
                    if class.class == Class::VpcFlow {
                        prop_assert!(fields.is_some());
                    }
                    if let Some(f) = fields {
                        serde_json::to_string(&f).unwrap();
                    }
                }
            }
        }
    }
}

/// One generated default-format record: the line and its expected fields.
fn v2_record() -> impl Strategy<Value = (String, &'static str, Value)> {
    let account = prop_oneof!["[0-9]{12}", Just("unknown".to_owned())];
    let eni = prop_oneof!["eni-[0-9a-f]{8}", "eni-[0-9a-f]{17}"];
    let addr = prop_oneof![
        any::<std::net::Ipv4Addr>().prop_map(|a| a.to_string()),
        any::<std::net::Ipv6Addr>().prop_map(|a| a.to_string()),
    ];
    let traffic = (
        addr.clone(),
        addr,
        any::<u16>(),
        any::<u16>(),
        any::<u8>(),
        any::<u64>(),
        any::<u64>(),
        prop_oneof![Just("ACCEPT"), Just("REJECT")],
    );
    let status = prop_oneof![
        3 => traffic.prop_map(Some),
        1 => Just(None),
    ];
    (account, eni, any::<u32>(), any::<u32>(), status, any::<bool>()).prop_map(
        |(account, eni, start, end, traffic, skip)| {
            let mut fields = json!({
                "version": 2, "account_id": account, "interface_id": eni,
                "start": start, "end": end,
            });
            let (values, event_type) = match traffic {
                Some((src, dst, sport, dport, proto, packets, bytes, action)) => {
                    for (k, v) in [
                        ("srcaddr", json!(src)), ("dstaddr", json!(dst)), ("srcport", json!(sport)),
                        ("dstport", json!(dport)), ("protocol", json!(proto)), ("packets", json!(packets)),
                        ("bytes", json!(bytes)), ("action", json!(action)), ("log_status", json!("OK")),
                    ] {
                        fields[k] = v;
                    }
                    let values = format!("{src} {dst} {sport} {dport} {proto} {packets} {bytes} {start} {end} {action} OK");
                    let t = if action == "ACCEPT" { vpc_flow::ACCEPT } else { vpc_flow::REJECT };
                    (values, t)
                }
                None => {
                    let status = if skip { "SKIPDATA" } else { "NODATA" };
                    for k in ["srcaddr", "dstaddr", "srcport", "dstport", "protocol", "packets", "bytes", "action"] {
                        fields[k] = Value::Null;
                    }
                    fields["log_status"] = json!(status);
                    let t = if skip { vpc_flow::SKIPDATA } else { vpc_flow::NODATA };
                    (format!("- - - - - - - {start} {end} - {status}"), t)
                }
            };
            (format!("2 {account} {eni} {values}"), event_type, fields)
        },
    )
}

/// A value for a field of `kind`, and its JSON.
fn value_for(kind: Kind) -> BoxedStrategy<(String, Value)> {
    let dash = Just(("-".to_owned(), Value::Null));
    match kind {
        Kind::Int => prop_oneof![
            4 => any::<u64>().prop_map(|n| (n.to_string(), json!(n))),
            1 => dash,
        ]
        .boxed(),
        Kind::Id => prop_oneof![
            4 => "[a-z]{1,6}-[0-9a-f]{8,17}".prop_map(|s| (s.clone(), json!(s))),
            // Numeric ids stay strings.
            2 => "[0-9]{12}".prop_map(|s| (s.clone(), json!(s))),
            1 => dash,
        ]
        .boxed(),
        Kind::Text => prop_oneof![
            4 => "[!-~&&[^-]][!-~]{0,30}".prop_map(|s| (s.clone(), json!(s))),
            1 => dash,
        ]
        .boxed(),
    }
}

/// A random custom format (a shuffled subset of the VPC or the Transit Gateway
/// fields) with one line generated for it and that line's expected fields.
fn custom_record() -> impl Strategy<Value = (String, String, Value)> {
    prop_oneof![Just(Scope::Vpc), Just(Scope::TransitGateway)]
        .prop_flat_map(|scope| {
            let usable: Vec<usize> = (0..FIELDS.len())
                .filter(|&i| FIELDS[i].scope == scope || FIELDS[i].scope == Scope::Both)
                .collect();
            let n = usable.len();
            prop::sample::subsequence(usable, 1..=n).prop_shuffle()
        })
        .prop_flat_map(|chosen| {
            let values: Vec<_> = chosen.iter().map(|&i| value_for(FIELDS[i].kind)).collect();
            (Just(chosen), values)
        })
        .prop_map(|(chosen, values)| {
            let format: Vec<String> = chosen
                .iter()
                .map(|&i| format!("${{{}}}", FIELDS[i].name))
                .collect();
            let line: Vec<&str> = values.iter().map(|(text, _)| text.as_str()).collect();
            let mut expected = serde_json::Map::new();
            for (&i, (_, json)) in chosen.iter().zip(&values) {
                expected.insert(FIELDS[i].key.to_owned(), json.clone());
            }
            (format.join(" "), line.join(" "), Value::Object(expected))
        })
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(1000))]

    /// Every valid default-format record is recognised, with its event type, and
    /// its fields come back with the values it was built from.
    #[test]
    fn v2_records_round_trip((line, event_type, expected) in v2_record()) {
        let c = Classifier::default();
        let class = c.for_group(Some("any")).classify(&line);
        prop_assert_eq!(class, Classification {
            class: Class::VpcFlow,
            event_type: Some(event_type),
            vpc_format: None,
        });
        let got = serde_json::to_value(c.fields(&line, &class).unwrap()).unwrap();
        prop_assert_eq!(got, expected);
        // One value more or less is not a record.
        prop_assert_eq!(c.for_group(None).classify(&format!("{line} OK")), Classification::OTHER);
        let shorter = &line[..line.rfind(' ').unwrap()];
        prop_assert_eq!(c.for_group(None).classify(shorter), Classification::OTHER);
    }

    /// A format built from any subset of the documented fields, in any order,
    /// parses the lines generated for it into the values they were built from.
    #[test]
    fn custom_formats_parse_their_lines((format, line, expected) in custom_record()) {
        let c = classifier_for(&format);
        let class = c.for_group(Some("g")).classify(&line);
        prop_assert_eq!(class.class, Class::VpcFlow, "{} / {}", format, line);
        prop_assert_eq!(class.vpc_format, Some(0));
        let got = serde_json::to_value(c.fields(&line, &class).unwrap()).unwrap();
        prop_assert_eq!(&got, &expected);
        let want_type = match (expected.get("log_status").and_then(Value::as_str), expected.get("action").and_then(Value::as_str)) {
            (Some("NODATA"), _) => vpc_flow::NODATA,
            (Some("SKIPDATA"), _) => vpc_flow::SKIPDATA,
            (_, Some("ACCEPT")) => vpc_flow::ACCEPT,
            (_, Some("REJECT")) => vpc_flow::REJECT,
            _ => vpc_flow::FLOW,
        };
        prop_assert_eq!(class.event_type, Some(want_type));
        // A value more is not a record of this format.
        prop_assert_eq!(c.for_group(Some("g")).classify(&format!("{line} -")).class, Class::Other);
    }
}
