//! `role_arn` on a stream named by its ARN (another account's stream): the
//! `kinesis-collector run` binary assumes the role through STS (moto) and reads
//! the stream as that role in the ARN's region, while its lease table stays with
//! its own credentials. A recording forward proxy (`HTTP_PROXY`; the emulators
//! speak plain HTTP) shows the signatures: every Kinesis call is signed with an
//! access key that moto's AssumeRole answered, every DynamoDB call with the
//! collector's own key, all for the ARN's region.
//!
//! moto's STS lets anyone assume any role unless its IAM authorization is on, so
//! the refused role runs against a moto of the test's own with authorization on
//! (`INITIAL_NO_AUTH_ACTION_COUNT`), where the collector's user has no policy
//! allowing sts:AssumeRole, as in AWS.

mod common {
    pub mod aws;
    pub mod collector;
    pub mod collector_process;
    pub mod forward_proxy;
}

use std::collections::BTreeSet;
use std::io::{BufRead, BufReader};
use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::time::Duration;

use common::aws;
use common::collector::{assert_each_once, publish, Receiver};
use common::collector_process::{config_text, CollectorProcess};
use common::forward_proxy::{Exchange, ForwardProxy};
use kinesis_collector::aws::{sdk_config, AwsTarget};

const ROLE: &str = "arn:aws:iam::111122223333:role/kinesis-collector-reader";
/// The external id the role's trust policy would require (moto checks none).
const EXTERNAL_ID: &str = "fortisiem-7f3a";

/// The port of an `AWS_ENDPOINT_URL_*` the emulators' settings export.
fn endpoint_port(variable: &str) -> u16 {
    let url = std::env::var(variable).unwrap();
    url.rsplit_once(':').unwrap().1.parse().unwrap()
}

/// The `<AccessKeyId>` of an STS answer.
fn answered_key(exchange: &Exchange) -> Option<String> {
    let body = std::str::from_utf8(&exchange.response_body).ok()?;
    let start = body.find("<AccessKeyId>")? + "<AccessKeyId>".len();
    let end = start + body[start..].find("</AccessKeyId>")?;
    Some(body[start..end].to_owned())
}

/// Another account's stream as operators configure it: named by its ARN, whose
/// region (us-west-2, not the environment's us-east-1) is where it is read, the
/// role assumed and the lease table kept.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_stream_with_role_arn_is_read_with_the_assumed_role_s_keys() {
    aws::ensure_emulators();
    let west = AwsTarget {
        region: Some("us-west-2".into()),
        ..AwsTarget::default()
    };
    let kinesis = aws_sdk_kinesis::Client::new(&sdk_config(&west, "t").await.unwrap());
    let stream = aws::create_stream(&kinesis, 2).await;
    let arn = kinesis
        .describe_stream_summary()
        .stream_name(&stream)
        .send()
        .await
        .unwrap()
        .stream_description_summary()
        .unwrap()
        .stream_arn()
        .to_owned();
    let (receiver, port) = Receiver::start().await;
    let config = config_text(
        &aws::unique_name("role-app"),
        &format!(
            "[[streams]]\nname = \"{arn}\"\nrole_arn = \"{ROLE}\"\nexternal_id = \"{EXTERNAL_ID}\"\n"
        ),
        port,
    );
    let proxy = ForwardProxy::start().await;
    let want = publish(&kinesis, &stream, 0, 4, 5).await;
    CollectorProcess::start(&config, &[("HTTP_PROXY", &proxy.url())])
        .deliver_and_stop(&receiver, &want, Duration::from_secs(45))
        .await;
    assert_each_once(&receiver, &want);

    let (kinesis_port, moto_port) = (
        endpoint_port("AWS_ENDPOINT_URL_KINESIS"),
        endpoint_port("AWS_ENDPOINT_URL_STS"),
    );
    let exchanges = proxy.exchanges();
    // STS AssumeRole, asked with the collector's own key, for the configured role.
    let assume: Vec<&Exchange> = exchanges
        .iter()
        .filter(|e| e.port() == Some(moto_port) && e.operation().as_deref() == Some("AssumeRole"))
        .collect();
    assert!(!assume.is_empty(), "no AssumeRole call");
    let encoded_role = ROLE.replace(':', "%3A").replace('/', "%2F");
    let mut assumed_keys = BTreeSet::new();
    for exchange in &assume {
        assert_eq!(exchange.access_key_id().as_deref(), Some("test"));
        let body = String::from_utf8_lossy(&exchange.request_body);
        assert!(body.contains(&format!("RoleArn={encoded_role}")), "{body}");
        assert!(body.contains("RoleSessionName="), "{body}");
        assert!(
            body.contains(&format!("ExternalId={EXTERNAL_ID}")),
            "{body}"
        );
        assert!(exchange.status.is_success(), "{exchange:?}");
        assumed_keys.insert(answered_key(exchange).expect("an AccessKeyId in the answer"));
    }
    assert!(!assumed_keys.contains("test"));
    // Every Kinesis call signed with a key STS answered, with its session token.
    let kinesis_calls: Vec<&Exchange> = exchanges
        .iter()
        .filter(|e| e.port() == Some(kinesis_port))
        .collect();
    assert!(
        kinesis_calls
            .iter()
            .any(|e| e.operation().as_deref() == Some("Kinesis_20131202.GetRecords")),
        "no GetRecords through the proxy"
    );
    for exchange in &kinesis_calls {
        let key = exchange.access_key_id().expect("signed");
        assert!(
            assumed_keys.contains(&key),
            "Kinesis call signed with {key}, not the role's {assumed_keys:?}: {exchange:?}"
        );
        assert!(exchange.headers.contains_key("x-amz-security-token"));
    }
    // All in the ARN's region.
    for exchange in &exchanges {
        assert_eq!(
            exchange.signing_region().as_deref(),
            Some("us-west-2"),
            "{exchange:?}"
        );
    }
    // The lease table (DynamoDB) with the collector's own key.
    let dynamodb_calls: Vec<&Exchange> = exchanges
        .iter()
        .filter(|e| {
            e.port() == Some(moto_port) && e.operation().is_some_and(|o| o.starts_with("DynamoDB"))
        })
        .collect();
    assert!(!dynamodb_calls.is_empty());
    for exchange in &dynamodb_calls {
        assert_eq!(
            exchange.access_key_id().as_deref(),
            Some("test"),
            "{exchange:?}"
        );
    }
    eprintln!(
        "{} AssumeRole, {} Kinesis calls as the role, {} DynamoDB calls as the collector",
        assume.len(),
        kinesis_calls.len(),
        dynamodb_calls.len()
    );
    aws::delete_stream(&kinesis, &stream).await;
}

/// Runs a moto of its own on 127.0.0.1 with IAM authorization on after two
/// calls, which create user `collector` and its access key; prints
/// `URL KEY_ID SECRET` and serves until its stdin closes.
const STRICT_STS: &str = r#"
import logging, os, sys
os.environ["INITIAL_NO_AUTH_ACTION_COUNT"] = "2"
logging.getLogger("werkzeug").setLevel(logging.ERROR)
import boto3
from moto.server import ThreadedMotoServer
server = ThreadedMotoServer(ip_address="127.0.0.1", port=0, verbose=False)
server.start()
host, port = server.get_host_and_port()
url = f"http://{host}:{port}"
iam = boto3.client("iam", region_name="us-east-1", endpoint_url=url,
                   aws_access_key_id="test", aws_secret_access_key="test")
iam.create_user(UserName="collector")
key = iam.create_access_key(UserName="collector")["AccessKey"]
print(url, key["AccessKeyId"], key["SecretAccessKey"], flush=True)
sys.stdin.read()
server.stop()
"#;

/// The strict moto; stopped (its own child process) when dropped.
struct StrictSts {
    child: Child,
    url: String,
    key_id: String,
    secret: String,
}

impl StrictSts {
    fn start() -> StrictSts {
        aws::ensure_emulators();
        let python = Path::new(env!("CARGO_MANIFEST_DIR")).join(".emulators/venv/bin/python");
        let mut child = Command::new(python)
            .args(["-c", STRICT_STS])
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::inherit())
            .spawn()
            .expect("start moto");
        let mut line = String::new();
        BufReader::new(child.stdout.take().unwrap())
            .read_line(&mut line)
            .unwrap();
        let parts: Vec<&str> = line.split_whitespace().collect();
        let [url, key_id, secret] = parts[..] else {
            let _ = child.kill();
            panic!("strict moto did not start: {line:?}");
        };
        StrictSts {
            url: url.to_owned(),
            key_id: key_id.to_owned(),
            secret: secret.to_owned(),
            child,
        }
    }
}

impl Drop for StrictSts {
    fn drop(&mut self) {
        drop(self.child.stdin.take());
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_role_that_cannot_be_assumed_stops_the_collector_with_the_reason() {
    let sts = StrictSts::start();
    let kinesis = aws::kinesis().await;
    let stream = aws::create_stream(&kinesis, 1).await;
    let (_receiver, port) = Receiver::start().await;
    let config = config_text(
        &aws::unique_name("role-refused"),
        &format!("[[streams]]\nname = \"{stream}\"\nrole_arn = \"{ROLE}\"\n"),
        port,
    );
    let collector = CollectorProcess::start(
        &config,
        &[
            ("AWS_ENDPOINT_URL_STS", &sts.url),
            ("AWS_ACCESS_KEY_ID", &sts.key_id),
            ("AWS_SECRET_ACCESS_KEY", &sts.secret),
        ],
    );
    let (status, log) = collector.wait_exit(Duration::from_secs(30)).await;
    assert_eq!(status.code(), Some(1), "{log}");
    for part in [
        ROLE,
        "AccessDenied",
        "not authorized to perform: sts:AssumeRole",
    ] {
        assert!(log.contains(part), "{part:?} missing from:\n{log}");
    }
    aws::delete_stream(&kinesis, &stream).await;
}
