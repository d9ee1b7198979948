//! `once`: the connectivity dry run (FortiSIEM's "Test Connectivity"). For each
//! stream and region it tries, in order, every call the collector makes, and
//! prints one line per check with ✓ or ✗, the time taken and, on failure, the AWS
//! error and the fix. It takes no lease, writes no checkpoint and creates nothing;
//! the only writes are one CloudWatch test datum and, when asked, one test event.
//! Exit 0 only if every check passed.

mod kinesis;

use crate::config::Config;
use std::collections::BTreeMap;
use std::fmt::Write as _;
use std::future::Future;
use std::io::Write as _;
use std::process::ExitCode;
use std::sync::Arc;
use std::time::{Duration, Instant, SystemTime};

use aws_config::SdkConfig;
use aws_credential_types::provider::ProvideCredentials;
use aws_smithy_types::error::display::DisplayErrorContext;
use clap::Args;
use tokio_util::sync::CancellationToken;

use crate::aws::{sdk_config, AwsError, AwsTarget};
use crate::classify::Classifier;
use crate::cli::ConfigArg;
use crate::event::{Classification, Event, Origin};
use crate::lease::dynamodb::DynamoDbLeaseStore;
use crate::lease::{LeaseError, LeaseStore};
use crate::sink::{Batch, Encoder, Sink, SinkConfig, SinkHandle};
use crate::telemetry::{cloudwatch, Level};

/// Arguments of `once`.
#[derive(Debug, Args)]
pub struct OnceArgs {
    #[command(flatten)]
    pub config: ConfigArg,
    /// Also send one `[FSM-AWSKinesis]` test event to the SIEM.
    #[arg(long)]
    pub send_test_event: bool,
}

/// Longest one check may take.
const CHECK_TIMEOUT: Duration = Duration::from_secs(30);
/// Longest the sink may take to connect, or to acknowledge the test event.
const SINK_TIMEOUT: Duration = Duration::from_secs(15);

/// A failed check: what went wrong, and what to do about it.
#[derive(Debug)]
struct Failure {
    error: String,
    fix: String,
}

impl Failure {
    fn new(error: impl Into<String>, fix: impl Into<String>) -> Failure {
        Failure {
            error: error.into(),
            fix: fix.into(),
        }
    }

    fn timeout() -> Failure {
        Failure::new(
            format!("no answer within {CHECK_TIMEOUT:?}"),
            "check the network path to AWS (proxy, VPC endpoint, AWS_ENDPOINT_URL_*)",
        )
    }

    /// A failed AWS call, with the fix its error code suggests.
    fn aws(err: &AwsError, action: &str, resource: &str) -> Failure {
        let code = err.code.as_deref().unwrap_or("");
        let fix = if code.contains("AccessDenied") || code.contains("UnauthorizedOperation") {
            format!("allow {action} on {resource} in the collector's IAM policy")
        } else if code.contains("ResourceNotFound") {
            format!("{resource} does not exist: check the name and region")
        } else if [
            "Expired",
            "InvalidClientTokenId",
            "UnrecognizedClient",
            "SignatureDoesNotMatch",
        ]
        .iter()
        .any(|c| code.contains(c))
        {
            "the credentials are invalid or expired: renew them".to_owned()
        } else if code.contains("KMS") {
            "allow kms:Decrypt on the stream's key".to_owned()
        } else if code.is_empty() {
            "check the network path to AWS (proxy, VPC endpoint, AWS_ENDPOINT_URL_*)".to_owned()
        } else {
            String::new()
        };
        Failure::new(concise(err), fix)
    }
}

/// An AWS error on one line: the operation, its code and the service's message,
/// without the SDK's debug dump of the raw response.
fn concise(err: &AwsError) -> String {
    let mut text = err.message.as_str();
    for dump in [
        " (ServiceError(",
        " (DispatchFailure(",
        " (TimeoutError(",
        " (ResponseError(",
        " (ConstructionFailure(",
    ] {
        if let Some(i) = text.find(dump) {
            text = &text[..i];
        }
    }
    text = text.strip_prefix("service error: ").unwrap_or(text);
    if let Some(code) = &err.code {
        // The SDK repeats "Code: message" once per cause.
        let repeated = format!(": {code}: ");
        if let Some(i) = text.find(&repeated) {
            text = &text[..i];
        }
    }
    format!("{} failed: {text}", err.operation)
}

/// Prints the check lines and counts them.
#[derive(Debug, Default)]
struct Report {
    failed: usize,
    passed: usize,
}

impl Report {
    fn heading(&self, text: &str) {
        println!("{text}");
    }

    fn pass(&mut self, what: &str, detail: &str, took: Duration) {
        self.passed += 1;
        println!("  ✓ {what}: {detail} ({} ms)", took.as_millis());
    }

    fn fail(&mut self, what: &str, failure: &Failure, took: Duration) {
        self.failed += 1;
        println!("  ✗ {what}: {} ({} ms)", failure.error, took.as_millis());
        if !failure.fix.is_empty() {
            println!("      fix: {}", failure.fix);
        }
    }

    /// Prints a check's outcome; returns whether it passed.
    fn outcome(&mut self, what: &str, result: Result<String, Failure>, took: Duration) -> bool {
        match result {
            Ok(detail) => {
                self.pass(what, &detail, took);
                true
            }
            Err(failure) => {
                self.fail(what, &failure, took);
                false
            }
        }
    }

    fn skip(&self, what: &str, why: &str) {
        println!("  - {what}: skipped ({why})");
    }

    fn detail(&self, text: &str) {
        println!("      {text}");
    }
}

/// Runs `check` with [`CHECK_TIMEOUT`], timing it.
async fn timed<T>(
    check: impl Future<Output = Result<T, Failure>>,
) -> (Result<T, Failure>, Duration) {
    let start = Instant::now();
    let result = match tokio::time::timeout(CHECK_TIMEOUT, check).await {
        Ok(result) => result,
        Err(_) => Err(Failure::timeout()),
    };
    (result, start.elapsed())
}

/// Runs `once`.
pub fn run(args: &OnceArgs) -> anyhow::Result<ExitCode> {
    let config = Config::load(&args.config.path())?;
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()?;
    let report = runtime.block_on(check_all(&config, args.send_test_event));
    println!("{} checks passed, {} failed", report.passed, report.failed);
    std::io::stdout().flush()?;
    Ok(if report.failed == 0 {
        ExitCode::SUCCESS
    } else {
        ExitCode::FAILURE
    })
}

/// This worker's id: configured, or the host name (`once` holds no lease, so
/// it needs no random suffix).
fn worker_id(config: &Config) -> String {
    config
        .collector
        .worker_id
        .clone()
        .unwrap_or_else(crate::sink::system_hostname)
}

async fn check_all(config: &Config, send_test_event: bool) -> Report {
    let mut report = Report::default();
    let worker_id = worker_id(config);
    let classifier = match Classifier::new(&config.vpc_flow) {
        Ok(c) => Arc::new(c),
        Err(err) => {
            report.heading("config");
            report.fail(
                "vpc_flow",
                &Failure::new(err.to_string(), ""),
                Duration::ZERO,
            );
            return report;
        }
    };
    let problems = crate::collector::run_problems(config);
    if !problems.is_empty() {
        report.heading("config");
        for problem in problems.iter() {
            let failure = Failure::new(problem.message.clone(), "");
            report.fail(&problem.key, &failure, Duration::ZERO);
        }
    }
    let targets = config
        .streams
        .0
        .iter()
        .flat_map(|s| s.target_regions().into_iter().map(move |r| (s, r)));
    let mut regions_checked = Vec::new();
    for (stream, region) in targets {
        let region_text = region.as_deref().unwrap_or("the default region");
        report.heading(&format!("stream {} in {region_text}", stream.name));
        // The lease table and CloudWatch are called with the collector's own
        // credentials; a stream with role_arn is read as that role.
        let own = AwsTarget {
            region: region.clone(),
            ..AwsTarget::default()
        };
        let Some(base) = check_credentials(&mut report, &own, &worker_id).await else {
            report.skip("Kinesis, lease table, CloudWatch", "no credentials");
            continue;
        };
        let reader = match &stream.role_arn {
            None => Some(base.clone()),
            Some(role) => {
                let target = AwsTarget {
                    role_arn: Some(role.clone()),
                    external_id: stream.external_id.clone(),
                    ..own.clone()
                };
                check_credentials(&mut report, &target, &worker_id).await
            }
        };
        match reader {
            Some(sdk) => {
                kinesis::check_stream(&mut report, &sdk, &stream.name, &classifier, config).await;
            }
            None => report.skip("Kinesis", "the role could not be assumed"),
        }
        // One lease table and one CloudWatch per region.
        let region_name = base.region().map(ToString::to_string).unwrap_or_default();
        if !regions_checked.contains(&region_name) {
            regions_checked.push(region_name);
            check_lease_table(&mut report, &base, config).await;
            check_cloudwatch(&mut report, &base, config, &worker_id).await;
        }
    }
    report.heading(&format!(
        "sink {} {}",
        config.sink.transport.as_str(),
        config.sink.addresses.join(", ")
    ));
    check_sink(&mut report, config, send_test_event).await;
    report
}

/// The provider that answered, from the credentials' debug form (the only place
/// the SDK shows it; the secret is redacted there, and only the name is kept).
fn provider_name(debug: &str) -> Option<&str> {
    let rest = debug.split_once("provider_name: \"")?.1;
    rest.split_once('"').map(|(name, _)| name)
}

async fn check_credentials(
    report: &mut Report,
    target: &AwsTarget,
    worker_id: &str,
) -> Option<SdkConfig> {
    let what = if target.role_arn.is_some() {
        "assume role"
    } else {
        "credentials"
    };
    const FIX: &str = "configure credentials (environment, profile, web identity, \
                       instance or task role); with role_arn, the role's trust policy \
                       must allow sts:AssumeRole";
    let (result, took) = timed(async {
        let sdk = sdk_config(target, worker_id)
            .await
            .map_err(|e| Failure::new(e.to_string(), ""))?;
        let provider = sdk
            .credentials_provider()
            .ok_or_else(|| Failure::new("no credentials provider", FIX))?;
        let creds = provider
            .provide_credentials()
            .await
            .map_err(|e| Failure::new(DisplayErrorContext(&e).to_string(), FIX))?;
        let debug = format!("{creds:?}");
        let mut detail = format!(
            "from {}",
            provider_name(&debug).unwrap_or("the default chain")
        );
        if let Some(role) = &target.role_arn {
            let _ = write!(detail, ", assuming {role}");
        }
        if let Some(left) = creds
            .expiry()
            .and_then(|e| e.duration_since(SystemTime::now()).ok())
        {
            let left = Duration::from_secs(left.as_secs());
            let _ = write!(detail, ", expire in {}", humantime::format_duration(left));
        }
        Ok((sdk, detail))
    })
    .await;
    match result {
        Ok((sdk, detail)) => {
            report.pass(what, &detail, took);
            Some(sdk)
        }
        Err(failure) => {
            report.fail(what, &failure, took);
            None
        }
    }
}

async fn check_lease_table(report: &mut Report, sdk: &SdkConfig, config: &Config) {
    let table = &config.collector.application;
    if table.is_empty() {
        report.skip("lease table", "collector.application is not set");
        return;
    }
    let what = format!("lease table {table}");
    let resource = format!("table {table}");
    let client = aws_sdk_dynamodb::Client::new(sdk);
    let (result, took) = timed(async {
        if let Err(err) = client.describe_table().table_name(table).send().await {
            let err = AwsError::new("DescribeTable", &err);
            if err.code.as_deref() != Some("ResourceNotFoundException") {
                return Err(Failure::aws(&err, "dynamodb:DescribeTable", &resource));
            }
            if config.lease.create_table {
                return Ok(
                    "does not exist yet; the first worker creates it (lease.create_table)"
                        .to_owned(),
                );
            }
            return Err(Failure::new(
                "does not exist and lease.create_table = false",
                "create it (hash key leaseKey of type S) or set lease.create_table = true",
            ));
        }
        let store = DynamoDbLeaseStore::new(client.clone(), table.clone());
        let leases = store.list().await.map_err(|err| match &err {
            LeaseError::Fatal(aws) | LeaseError::Transient(aws) => {
                Failure::aws(aws, "dynamodb:Scan", &resource)
            }
            other => Failure::new(other.to_string(), ""),
        })?;
        if leases.is_empty() {
            return Ok("exists, no leases yet".to_owned());
        }
        let mut owners: BTreeMap<&str, usize> = BTreeMap::new();
        for lease in &leases {
            *owners
                .entry(lease.owner.as_deref().unwrap_or("(free)"))
                .or_default() += 1;
        }
        let owners: Vec<String> = owners.iter().map(|(o, n)| format!("{o} {n}")).collect();
        Ok(format!(
            "exists, {} leases; owners: {}",
            leases.len(),
            owners.join(", ")
        ))
    })
    .await;
    report.outcome(&what, result, took);
}

async fn check_cloudwatch(report: &mut Report, sdk: &SdkConfig, config: &Config, worker_id: &str) {
    const WHAT: &str = "CloudWatch PutMetricData";
    let metrics = &config.metrics;
    if metrics.level == Level::None {
        report.skip(WHAT, "metrics.level = \"none\"");
        return;
    }
    let client = aws_sdk_cloudwatch::Client::new(sdk);
    let ns = &metrics.namespace;
    let (result, took) = timed(async {
        cloudwatch::put_test_datum(&client, ns, worker_id)
            .await
            .map_err(|e| {
                let resource = format!("namespace {ns} (condition cloudwatch:namespace)");
                Failure::aws(&e, "cloudwatch:PutMetricData", &resource)
            })?;
        Ok(format!(
            "test datum ConnectivityTest sent to namespace {ns}"
        ))
    })
    .await;
    report.outcome(WHAT, result, took);
}

async fn check_sink(report: &mut Report, config: &Config, send_test_event: bool) {
    let worker_id = worker_id(config);
    let config = &config.sink;
    let cancel = CancellationToken::new();
    let start = Instant::now();
    let sink = match Sink::start(config, cancel.clone()) {
        Ok(sink) => sink,
        Err(err) => {
            report.fail(
                "connect",
                &Failure::new(err.to_string(), ""),
                start.elapsed(),
            );
            return;
        }
    };
    let handle = sink.handle();
    let connected = connect(&handle).await;
    let status = handle.status();
    if connected {
        let to = status.address.unwrap_or_else(|| "stdout".into());
        let tls = if config.transport.uses_tls() {
            ", TLS handshake done"
        } else {
            ""
        };
        report.pass(
            "connect",
            &format!("connected to {to}{tls}"),
            start.elapsed(),
        );
    } else {
        let error = status
            .last_error
            .unwrap_or_else(|| format!("not connected within {SINK_TIMEOUT:?}"));
        let fix = "check sink.addresses, that the SIEM listens there, the firewall, and \
                   for TLS the CA (sink.tls.ca_file) and server name";
        report.fail("connect", &Failure::new(error, fix), start.elapsed());
    }
    if send_test_event && connected {
        let start = Instant::now();
        let result = send_test(&handle, config, &worker_id).await;
        report.outcome("test event", result, start.elapsed());
    } else if send_test_event {
        report.skip("test event", "not connected");
    }
    drop(handle);
    cancel.cancel();
    let _ = sink.close(Duration::from_secs(2)).await;
}

/// Waits until the sink task has connected, or failed to (every address tried).
async fn connect(handle: &SinkHandle) -> bool {
    let deadline = Instant::now() + SINK_TIMEOUT;
    while Instant::now() < deadline {
        let status = handle.status();
        if status.connected {
            return true;
        }
        if status.connect_failures > 0 && status.last_error.is_some() {
            return false;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    false
}

/// Sends one `[FSM-AWSKinesis]` test event and waits for its acknowledgement.
async fn send_test(
    handle: &SinkHandle,
    config: &SinkConfig,
    worker_id: &str,
) -> Result<String, Failure> {
    let hostname = crate::sink::system_hostname();
    let mut encoder = Encoder::new(config, &hostname, Arc::new(BTreeMap::new()));
    let origin = Origin::default();
    let message =
        format!("kinesis-collector connectivity test from {hostname} (worker {worker_id})");
    let event = Event {
        origin: &origin,
        id: None,
        timestamp_ms: crate::telemetry::snapshot::now_ms(),
        message: message.into(),
        subsequence: None,
        classification: Classification::OTHER,
    };
    let mut batch = Batch::with_capacity(512);
    encoder.encode(&event, &Classifier::default(), &mut batch);
    let sent = async {
        let ack = handle
            .submit(batch)
            .await
            .map_err(|e| Failure::new(e.to_string(), ""))?;
        ack.await.map_err(|e| Failure::new(e.to_string(), ""))
    };
    match tokio::time::timeout(SINK_TIMEOUT, sent).await {
        Ok(Ok(())) => Ok("one [FSM-AWSKinesis] test event sent and acknowledged".into()),
        Ok(Err(failure)) => Err(failure),
        Err(_) => Err(Failure::new(
            format!("not acknowledged within {SINK_TIMEOUT:?}"),
            "",
        )),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::aws::ErrorClass;

    #[test]
    fn provider_name_is_read_without_the_secret() {
        let debug = r#"Credentials { provider_name: "Environment", access_key_id: "AKIA", secret_access_key: "** redacted **" }"#;
        assert_eq!(provider_name(debug), Some("Environment"));
        assert_eq!(provider_name("Credentials {}"), None);
    }

    #[test]
    fn fixes_follow_the_error_code() {
        let err = |code: Option<&str>| AwsError {
            operation: "ListShards",
            class: ErrorClass::Fatal,
            code: code.map(str::to_owned),
            message: "m".into(),
        };
        let fix = |code| Failure::aws(&err(code), "kinesis:ListShards", "stream s").fix;
        assert_eq!(
            fix(Some("AccessDeniedException")),
            "allow kinesis:ListShards on stream s in the collector's IAM policy"
        );
        assert_eq!(
            fix(Some("ResourceNotFoundException")),
            "stream s does not exist: check the name and region"
        );
        assert!(fix(Some("ExpiredTokenException")).contains("expired"));
        assert!(fix(None).contains("network path"));
        assert_eq!(fix(Some("ValidationException")), "");
    }

    #[test]
    fn errors_are_shown_without_the_sdk_dump() {
        let err = AwsError {
            operation: "DescribeStreamSummary",
            class: ErrorClass::Fatal,
            code: Some("ResourceNotFoundException".into()),
            message: "service error: ResourceNotFoundException: Stream s not found: \
                      ResourceNotFoundException: Stream s not found (ServiceError(ServiceError { raw }))"
                .into(),
        };
        assert_eq!(
            concise(&err),
            "DescribeStreamSummary failed: ResourceNotFoundException: Stream s not found"
        );
        let err = AwsError {
            operation: "Scan",
            class: ErrorClass::Transient,
            code: None,
            message:
                "dispatch failure: io error: Connection refused (os error 111) (DispatchFailure(x))"
                    .into(),
        };
        assert_eq!(
            concise(&err),
            "Scan failed: dispatch failure: io error: Connection refused (os error 111)"
        );
    }
}
