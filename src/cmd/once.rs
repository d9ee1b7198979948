//! `once`: the connectivity dry run (FortiSIEM's "Test Connectivity"). For each
//! stream and region it tries, in order, every call the collector makes, and
//! prints one line per check with ✓ or ✗, the time taken and, on failure, the AWS
//! error and the fix. It takes no lease, writes no checkpoint and creates nothing;
//! the only writes are one CloudWatch test datum and, when asked, one test event.
//! Exit 0 only if every check passed.

use std::collections::BTreeMap;
use std::fmt::Write as _;
use std::future::Future;
use std::io::Write as _;
use std::path::Path;
use std::process::ExitCode;
use std::sync::Arc;
use std::time::{Duration, Instant, SystemTime};

use aws_config::SdkConfig;
use aws_credential_types::provider::ProvideCredentials;
use clap::Args;
use serde::Deserialize;
use tokio_util::sync::CancellationToken;

use crate::aws::{sdk_config, AwsError, AwsTarget};
use crate::classify::Classifier;
use crate::cli::ConfigArg;
use crate::config::{Config, ConfigError};
use crate::decode::Decoder;
use crate::event::{Class, Classification, Event, Origin};
use crate::format::Formatter;
use crate::kinesis::api::{self, GetRecordsError};
use crate::kinesis::StreamId;
use crate::lease::dynamodb::DynamoDbLeaseStore;
use crate::lease::{LeaseError, LeaseStore};
use crate::sink::{Batch, Encoder, Sink, Transport};
use crate::telemetry::Level;

/// Arguments of `once`.
#[derive(Debug, Args)]
pub struct OnceArgs {
    #[command(flatten)]
    pub config: ConfigArg,
    /// Also send one `[FSM-AWSKinesis]` test event to the SIEM.
    #[arg(long)]
    pub send_test_event: bool,
}

/// How far back the newest records are read from.
const READ_BACK: Duration = Duration::from_secs(300);
/// Most records read per shard.
const RECORDS_PER_SHARD: usize = 100;
/// Most shards read (a wide stream's first ones tell enough).
const SHARDS_READ: usize = 20;
/// Longest one check may take.
const CHECK_TIMEOUT: Duration = Duration::from_secs(30);
/// Longest the sink may take to connect.
const SINK_TIMEOUT: Duration = Duration::from_secs(15);

// ---------------------------------------------------------------------------
// The streams and collector settings. Until `[collector]` and `[[streams]]` are
// part of `Config` (the `run` command's sections), they are read here from the
// file and taken out before the rest is validated.

/// `[collector]`, as far as `once` and `status` need it.
#[derive(Debug, Clone, Deserialize)]
pub struct CollectorSettings {
    /// Lease table name and worker group.
    #[serde(default = "default_application")]
    pub application: String,
    /// This worker's id.
    #[serde(default)]
    pub worker_id: Option<String>,
}

fn default_application() -> String {
    "kinesis-collector".into()
}

impl Default for CollectorSettings {
    fn default() -> Self {
        CollectorSettings {
            application: default_application(),
            worker_id: None,
        }
    }
}

/// One `[[streams]]` entry, as far as `once` and `status` need it.
#[derive(Debug, Clone, Deserialize)]
pub struct StreamSettings {
    /// Stream name or ARN.
    pub name: String,
    /// Regions the stream is read in; empty: the chain's region.
    #[serde(default)]
    pub regions: Vec<String>,
    /// Role to assume.
    #[serde(default)]
    pub role_arn: Option<String>,
    /// Labels for this stream's events.
    #[serde(default)]
    pub tags: BTreeMap<String, String>,
    #[serde(flatten)]
    _rest: toml::Table,
}

/// The configuration with the collector and streams settings.
#[derive(Debug, Clone)]
pub struct Setup {
    /// Every other section.
    pub config: Config,
    /// `[collector]`.
    pub collector: CollectorSettings,
    /// `[[streams]]`.
    pub streams: Vec<StreamSettings>,
}

/// Reads the file: `[collector]` and `[[streams]]` here, the rest through
/// [`Config`].
pub fn load_setup(path: &Path) -> anyhow::Result<Setup> {
    let text = std::fs::read_to_string(path).map_err(|source| ConfigError::Read {
        path: path.to_owned(),
        source,
    })?;
    let mut table: toml::Table = text
        .parse()
        .map_err(|err| anyhow::anyhow!("invalid config file {}: {err}", path.display()))?;
    let collector = match table.remove("collector") {
        Some(v) => v.try_into().map_err(|err| {
            anyhow::anyhow!("invalid config file {}: collector: {err}", path.display())
        })?,
        None => CollectorSettings::default(),
    };
    let streams: Vec<StreamSettings> = match table.remove("streams") {
        Some(v) => v.try_into().map_err(|err| {
            anyhow::anyhow!("invalid config file {}: streams: {err}", path.display())
        })?,
        None => Vec::new(),
    };
    let rest = toml::to_string(&table)?;
    let config = Config::from_toml(&rest).map_err(|problems| ConfigError::Invalid {
        path: path.to_owned(),
        problems,
    })?;
    Ok(Setup {
        config,
        collector,
        streams,
    })
}

impl Setup {
    /// The worker id: configured, or the hostname.
    pub fn worker_id(&self) -> String {
        self.collector
            .worker_id
            .clone()
            .unwrap_or_else(crate::sink::system_hostname)
    }

    /// Every (stream, region) pair; region `None` is the chain's.
    pub fn targets(&self) -> Vec<(&StreamSettings, Option<String>)> {
        let mut out = Vec::new();
        for stream in &self.streams {
            if stream.regions.is_empty() {
                out.push((stream, None));
            }
            for region in &stream.regions {
                out.push((stream, Some(region.clone())));
            }
        }
        out
    }
}

// ---------------------------------------------------------------------------

/// Prints the check lines and remembers whether any failed.
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
        println!("  ✓ {what}: {detail} ({})", ms(took));
    }

    fn fail(&mut self, what: &str, error: &str, fix: &str, took: Duration) {
        self.failed += 1;
        println!("  ✗ {what}: {error} ({})", ms(took));
        if !fix.is_empty() {
            println!("      fix: {fix}");
        }
    }

    fn skip(&self, what: &str, why: &str) {
        println!("  - {what}: skipped ({why})");
    }

    fn detail(&self, text: &str) {
        println!("      {text}");
    }
}

fn ms(d: Duration) -> String {
    format!("{} ms", d.as_millis())
}

/// Runs `check` with [`CHECK_TIMEOUT`], timing it.
async fn timed<T, E: From<String>>(
    check: impl Future<Output = Result<T, E>>,
) -> (Result<T, E>, Duration) {
    let start = Instant::now();
    let result = match tokio::time::timeout(CHECK_TIMEOUT, check).await {
        Ok(r) => r,
        Err(_) => Err(E::from(format!("no answer within {CHECK_TIMEOUT:?}"))),
    };
    (result, start.elapsed())
}

/// What to do about a failed AWS call.
fn fix_for(err: &AwsError, action: &str, resource: &str) -> String {
    let code = err.code.as_deref().unwrap_or("");
    if code.contains("AccessDenied") || code.contains("UnauthorizedOperation") {
        format!("allow {action} on {resource} in the collector's IAM policy")
    } else if code.contains("ResourceNotFound") {
        format!("{resource} does not exist: check the name and region")
    } else if code.contains("Expired")
        || code.contains("InvalidClientTokenId")
        || code.contains("UnrecognizedClient")
        || code.contains("SignatureDoesNotMatch")
    {
        "the credentials are invalid or expired: renew them".to_owned()
    } else if code.contains("KMS") {
        "allow kms:Decrypt on the stream's key".to_owned()
    } else if code.is_empty() {
        "check the network path to AWS (proxy, VPC endpoint, AWS_ENDPOINT_URL_*)".to_owned()
    } else {
        String::new()
    }
}

/// The provider that answered, from the credentials' debug form (the only place
/// the SDK shows it; the secret is redacted there, and only the name is kept).
fn provider_name(debug: &str) -> Option<&str> {
    let rest = debug.split_once("provider_name: \"")?.1;
    rest.split_once('"').map(|(name, _)| name)
}

/// Runs `once`.
pub fn run(args: &OnceArgs) -> anyhow::Result<ExitCode> {
    let setup = load_setup(&args.config.path())?;
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()?;
    let report = runtime.block_on(check_all(&setup, args.send_test_event));
    println!("{} checks passed, {} failed", report.passed, report.failed);
    let _ = std::io::stdout().flush();
    Ok(if report.failed == 0 {
        ExitCode::SUCCESS
    } else {
        ExitCode::FAILURE
    })
}

async fn check_all(setup: &Setup, send_test_event: bool) -> Report {
    let mut report = Report::default();
    let worker_id = setup.worker_id();
    if setup.streams.is_empty() {
        report.heading("streams");
        report.fail(
            "config",
            "no [[streams]] configured",
            "add a [[streams]] section with the stream's name and regions",
            Duration::ZERO,
        );
    }
    let classifier = match Classifier::new(&setup.config.vpc_flow) {
        Ok(c) => Arc::new(c),
        Err(err) => {
            report.heading("config");
            report.fail("vpc_flow", &err.to_string(), "", Duration::ZERO);
            return report;
        }
    };
    let mut tables_checked = Vec::new();
    for (stream, region) in setup.targets() {
        let region_text = region.as_deref().unwrap_or("default region");
        report.heading(&format!("stream {} ({region_text})", stream.name));
        let target = AwsTarget {
            region: region.clone(),
            role_arn: stream.role_arn.clone(),
            external_id: None,
        };
        let Some(sdk) = check_credentials(&mut report, &target, &worker_id).await else {
            report.skip("kinesis, lease table, cloudwatch", "no credentials");
            continue;
        };
        let region_name = sdk.region().map(|r| r.to_string()).unwrap_or_default();
        check_stream(&mut report, &sdk, stream, &classifier, &setup.config).await;
        if !tables_checked.contains(&region_name) {
            tables_checked.push(region_name.clone());
            check_lease_table(&mut report, &sdk, setup).await;
        }
        check_cloudwatch(&mut report, &sdk, setup, &worker_id).await;
    }
    report.heading(&format!(
        "sink {} {}",
        setup.config.sink.transport.as_str(),
        setup.config.sink.addresses.join(", ")
    ));
    check_sink(&mut report, setup, send_test_event).await;
    report
}

async fn check_credentials(
    report: &mut Report,
    target: &AwsTarget,
    worker_id: &str,
) -> Option<SdkConfig> {
    let start = Instant::now();
    let sdk = match sdk_config(target, worker_id).await {
        Ok(sdk) => sdk,
        Err(err) => {
            report.fail("credentials", &err.to_string(), "", start.elapsed());
            return None;
        }
    };
    let Some(provider) = sdk.credentials_provider() else {
        report.fail(
            "credentials",
            "no credentials provider",
            "configure credentials (environment, profile, web identity, instance role)",
            start.elapsed(),
        );
        return None;
    };
    match tokio::time::timeout(CHECK_TIMEOUT, provider.provide_credentials()).await {
        Ok(Ok(creds)) => {
            let debug = format!("{creds:?}");
            let mut detail = format!(
                "from {}",
                provider_name(&debug).unwrap_or("the default chain")
            );
            if let Some(role) = &target.role_arn {
                let _ = write!(detail, ", assuming {role}");
            }
            if let Some(expiry) = creds.expiry() {
                if let Ok(left) = expiry.duration_since(SystemTime::now()) {
                    let left = Duration::from_secs(left.as_secs());
                    let _ = write!(detail, ", expire in {}", humantime::format_duration(left));
                }
            }
            report.pass("credentials", &detail, start.elapsed());
            Some(sdk)
        }
        Ok(Err(err)) => {
            report.fail(
                "credentials",
                &aws_smithy_types::error::display::DisplayErrorContext(&err).to_string(),
                "configure credentials (environment, profile, web identity, instance role); \
                 with role_arn, allow sts:AssumeRole in the role's trust policy",
                start.elapsed(),
            );
            None
        }
        Err(_) => {
            report.fail(
                "credentials",
                &format!("no answer within {CHECK_TIMEOUT:?}"),
                "check the network path to the credentials source (IMDS, STS, proxy)",
                start.elapsed(),
            );
            None
        }
    }
}

struct Message(String);

impl From<String> for Message {
    fn from(s: String) -> Self {
        Message(s)
    }
}

async fn check_stream(
    report: &mut Report,
    sdk: &SdkConfig,
    stream: &StreamSettings,
    classifier: &Arc<Classifier>,
    config: &Config,
) {
    let client = aws_sdk_kinesis::Client::new(sdk);
    let id = StreamId::parse(&stream.name);
    let resource = format!("stream {}", stream.name);
    let (result, took) = timed(async {
        api::describe_stream_summary(&client, &id)
            .await
            .map_err(|e| {
                Message(format!(
                    "{e}\0{}",
                    fix_for(e.aws(), "kinesis:DescribeStreamSummary", &resource)
                ))
            })
    })
    .await;
    match result {
        Ok(s) => report.pass(
            "DescribeStreamSummary",
            &format!(
                "{}, {} open shards, retention {} h",
                s.status, s.open_shard_count, s.retention_period_hours
            ),
            took,
        ),
        Err(Message(m)) => {
            let (error, fix) = m.split_once('\0').unwrap_or((&m, ""));
            report.fail("DescribeStreamSummary", error, fix, took);
            report.skip("ListShards, GetRecords", "no stream");
            return;
        }
    }
    let (result, took) = timed(async {
        api::list_shards(&client, &id, None).await.map_err(|e| {
            Message(format!(
                "{e}\0{}",
                fix_for(e.aws(), "kinesis:ListShards", &resource)
            ))
        })
    })
    .await;
    let shards = match result {
        Ok(shards) => {
            report.pass("ListShards", &format!("{} shards", shards.len()), took);
            shards
        }
        Err(Message(m)) => {
            let (error, fix) = m.split_once('\0').unwrap_or((&m, ""));
            report.fail("ListShards", error, fix, took);
            return;
        }
    };

    let start = Instant::now();
    let mut decoder = Decoder::new(&config.decode, Arc::clone(classifier));
    let mut formatter = Formatter::new(config.sink.format);
    let mut counts = [0u64; 3];
    let mut samples: [Option<String>; 3] = Default::default();
    let (mut records, mut bad, mut control) = (0usize, 0usize, 0u32);
    let mut behind: Option<i64> = None;
    let since = SystemTime::now() - READ_BACK;
    for shard in shards.iter().take(SHARDS_READ) {
        let read = read_newest(&client, &id, &shard.shard_id, since, &resource);
        let batch = match tokio::time::timeout(CHECK_TIMEOUT, read).await {
            Ok(Ok(batch)) => batch,
            Ok(Err((error, fix))) => {
                let what = format!("GetRecords {}", shard.shard_id);
                report.fail(&what, &error, &fix, start.elapsed());
                return;
            }
            Err(_) => {
                let what = format!("GetRecords {}", shard.shard_id);
                let error = format!("no answer within {CHECK_TIMEOUT:?}");
                report.fail(&what, &error, "", start.elapsed());
                return;
            }
        };
        behind = behind.max(batch.1);
        for record in &batch.0 {
            records += 1;
            let arrival_ms = record
                .approximate_arrival_timestamp()
                .and_then(|t| t.to_millis().ok());
            let outcome = decoder.decode_record(record.data().as_ref(), arrival_ms, |event| {
                let i = event.classification.class.index();
                counts[i] += 1;
                if samples[i].is_none() {
                    let mut line = Vec::new();
                    formatter.write_body(event, decoder_classifier(classifier), true, &mut line);
                    let mut text = String::from_utf8_lossy(&line).into_owned();
                    if text.len() > 300 {
                        let cut = (0..=300)
                            .rev()
                            .find(|&i| text.is_char_boundary(i))
                            .unwrap_or(0);
                        text.truncate(cut);
                        text.push('…');
                    }
                    samples[i] = Some(text);
                }
            });
            bad += outcome.errors.len();
            control += outcome.control_messages;
        }
    }
    let mut detail = format!(
        "{records} records from the last {} min of {} shards: ",
        READ_BACK.as_secs() / 60,
        shards.len().min(SHARDS_READ)
    );
    let classes: Vec<String> = Class::ALL
        .iter()
        .map(|c| format!("{} {}", c.as_str(), counts[c.index()]))
        .collect();
    detail.push_str(&classes.join(", "));
    let _ = write!(detail, ", {control} control messages, {bad} bad");
    if let Some(ms) = behind {
        let _ = write!(detail, "; {ms} ms behind latest");
    }
    report.pass("read and decode", &detail, start.elapsed());
    for class in Class::ALL {
        if let Some(sample) = &samples[class.index()] {
            report.detail(&format!("{}: {sample}", class.as_str()));
        }
    }
}

fn decoder_classifier(c: &Arc<Classifier>) -> &Classifier {
    c
}

/// Reads up to [`RECORDS_PER_SHARD`] records written since `since`: the records
/// and the last MillisBehindLatest.
async fn read_newest(
    client: &aws_sdk_kinesis::Client,
    id: &StreamId,
    shard_id: &str,
    since: SystemTime,
    resource: &str,
) -> Result<(Vec<crate::kinesis::Record>, Option<i64>), (String, String)> {
    let position = api::StartingPosition::AtTimestamp(since);
    let mut iterator = api::get_shard_iterator(client, id, shard_id, &position)
        .await
        .map_err(|e| {
            let fix = fix_for(e.aws(), "kinesis:GetShardIterator", resource);
            (e.to_string(), fix)
        })?;
    let mut records = Vec::new();
    let mut behind = None;
    // A few calls: an answer may be empty while records follow.
    for _ in 0..5 {
        let limit = (RECORDS_PER_SHARD - records.len()) as i32;
        let batch = api::get_records(client, &iterator, limit)
            .await
            .map_err(|e| {
                let fix = match &e {
                    GetRecordsError::ExpiredIterator(a)
                    | GetRecordsError::Throttled(a)
                    | GetRecordsError::ResourceNotFound(a)
                    | GetRecordsError::Transient(a)
                    | GetRecordsError::Fatal(a) => fix_for(a, "kinesis:GetRecords", resource),
                };
                (e.to_string(), fix)
            })?;
        behind = batch.millis_behind_latest;
        records.extend(batch.records);
        match batch.next_iterator {
            Some(next) if records.len() < RECORDS_PER_SHARD && behind != Some(0) => {
                iterator = next;
            }
            _ => break,
        }
    }
    Ok((records, behind))
}

async fn check_lease_table(report: &mut Report, sdk: &SdkConfig, setup: &Setup) {
    let table = &setup.collector.application;
    let what = format!("lease table {table}");
    let client = aws_sdk_dynamodb::Client::new(sdk);
    let resource = format!("table {table}");
    let start = Instant::now();
    let described = tokio::time::timeout(
        CHECK_TIMEOUT,
        client.describe_table().table_name(table).send(),
    )
    .await;
    match described {
        Err(_) => {
            let error = format!("no answer within {CHECK_TIMEOUT:?}");
            report.fail(
                &what,
                &error,
                "check the network path to DynamoDB",
                start.elapsed(),
            );
            return;
        }
        Ok(Err(err)) => {
            let err = AwsError::new("DescribeTable", &err);
            let missing = err.code.as_deref() == Some("ResourceNotFoundException");
            if missing && setup.config.lease.create_table {
                report.pass(
                    &what,
                    "does not exist yet; the first worker creates it (lease.create_table)",
                    start.elapsed(),
                );
            } else if missing {
                report.fail(
                    &what,
                    "does not exist and lease.create_table = false",
                    "create it (hash key leaseKey of type S) or set lease.create_table = true",
                    start.elapsed(),
                );
            } else {
                let fix = fix_for(&err, "dynamodb:DescribeTable", &resource);
                report.fail(&what, &err.to_string(), &fix, start.elapsed());
            }
            return;
        }
        Ok(Ok(_)) => {}
    }
    let store = DynamoDbLeaseStore::new(client, table.clone());
    match tokio::time::timeout(CHECK_TIMEOUT, store.list()).await {
        Ok(Ok(leases)) => {
            let mut owners: BTreeMap<&str, usize> = BTreeMap::new();
            for lease in &leases {
                *owners
                    .entry(lease.owner.as_deref().unwrap_or("(free)"))
                    .or_default() += 1;
            }
            let owners: Vec<String> = owners.iter().map(|(o, n)| format!("{o} {n}")).collect();
            let detail = if leases.is_empty() {
                "exists, no leases yet".to_owned()
            } else {
                format!(
                    "exists, {} leases; owners: {}",
                    leases.len(),
                    owners.join(", ")
                )
            };
            report.pass(&what, &detail, start.elapsed());
        }
        Ok(Err(err)) => {
            let fix = match &err {
                LeaseError::Fatal(aws) | LeaseError::Transient(aws) => {
                    fix_for(aws, "dynamodb:Scan", &resource)
                }
                _ => String::new(),
            };
            report.fail(&what, &err.to_string(), &fix, start.elapsed());
        }
        Err(_) => {
            let error = format!("no answer within {CHECK_TIMEOUT:?}");
            report.fail(&what, &error, "", start.elapsed());
        }
    }
}

async fn check_cloudwatch(report: &mut Report, sdk: &SdkConfig, setup: &Setup, worker_id: &str) {
    let metrics = &setup.config.metrics;
    if metrics.level == Level::None {
        report.skip("CloudWatch PutMetricData", "metrics.level = \"none\"");
        return;
    }
    let client = aws_sdk_cloudwatch::Client::new(sdk);
    let ns = &metrics.namespace;
    let (result, took) = timed(async {
        crate::telemetry::cloudwatch::put_test_datum(&client, ns, worker_id)
            .await
            .map_err(|e| {
                let fix = fix_for(
                    &e,
                    "cloudwatch:PutMetricData",
                    &format!("namespace {ns} (condition cloudwatch:namespace)"),
                );
                Message(format!("{e}\0{fix}"))
            })
    })
    .await;
    match result {
        Ok(()) => report.pass(
            "CloudWatch PutMetricData",
            &format!("test datum ConnectivityTest sent to namespace {ns}"),
            took,
        ),
        Err(Message(m)) => {
            let (error, fix) = m.split_once('\0').unwrap_or((&m, ""));
            report.fail("CloudWatch PutMetricData", error, fix, took);
        }
    }
}

async fn check_sink(report: &mut Report, setup: &Setup, send_test_event: bool) {
    let config = &setup.config.sink;
    let cancel = CancellationToken::new();
    let start = Instant::now();
    let sink = match Sink::start(config, cancel.clone()) {
        Ok(sink) => sink,
        Err(err) => {
            report.fail("connect", &err.to_string(), "check [sink]", start.elapsed());
            return;
        }
    };
    let handle = sink.handle();
    let deadline = tokio::time::Instant::now() + SINK_TIMEOUT;
    let mut connected = false;
    // The sink task connects on its own; its status says when it has (or why not).
    while tokio::time::Instant::now() < deadline {
        let status = handle.status();
        if status.connected {
            connected = true;
            break;
        }
        if status.connect_failures > 0 && status.last_error.is_some() {
            break;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    let status = handle.status();
    let tls = if config.transport == Transport::Tls {
        " (TLS handshake done)"
    } else {
        ""
    };
    if connected {
        let to = status.address.clone().unwrap_or_else(|| "stdout".into());
        report.pass(
            "connect",
            &format!("connected to {to}{tls}"),
            start.elapsed(),
        );
    } else {
        let error = status
            .last_error
            .clone()
            .unwrap_or_else(|| format!("not connected within {SINK_TIMEOUT:?}"));
        report.fail(
            "connect",
            &error,
            "check sink.addresses, that the SIEM listens there, the firewall, and for TLS \
             the CA (sink.tls.ca_file) and server name",
            start.elapsed(),
        );
    }
    if send_test_event && connected {
        let start = Instant::now();
        let mut encoder = Encoder::new(
            config,
            &crate::sink::system_hostname(),
            Arc::new(BTreeMap::new()),
        );
        let origin = Origin::default();
        let message = format!(
            "kinesis-collector connectivity test from {} (worker {})",
            crate::sink::system_hostname(),
            setup.worker_id()
        );
        let event = Event {
            origin: &origin,
            id: None,
            timestamp_ms: crate::telemetry::snapshot::now_ms(),
            message: message.into(),
            subsequence: None,
            classification: Classification::OTHER,
        };
        let classifier = Classifier::new(&Default::default()).expect("default classifier");
        let mut batch = Batch::with_capacity(512);
        encoder.encode(&event, &classifier, &mut batch);
        let sent = async {
            let ack = handle.submit(batch).await.map_err(|e| e.to_string())?;
            ack.await.map_err(|e| e.to_string())
        };
        match tokio::time::timeout(SINK_TIMEOUT, sent).await {
            Ok(Ok(())) => report.pass(
                "test event",
                "one [FSM-AWSKinesis] test event sent and acknowledged",
                start.elapsed(),
            ),
            Ok(Err(err)) => report.fail("test event", &err, "", start.elapsed()),
            Err(_) => report.fail(
                "test event",
                &format!("not acknowledged within {SINK_TIMEOUT:?}"),
                "",
                start.elapsed(),
            ),
        }
    } else if send_test_event {
        report.skip("test event", "not connected");
    }
    drop(handle);
    cancel.cancel();
    let _ = sink.close(Duration::from_secs(2)).await;
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn provider_name_is_read_without_the_secret() {
        let debug = r#"Credentials { provider_name: "Environment", access_key_id: "AKIA", secret_access_key: "** redacted **" }"#;
        assert_eq!(provider_name(debug), Some("Environment"));
        assert_eq!(provider_name("Credentials {}"), None);
    }

    #[test]
    fn fixes_name_the_missing_action() {
        let err = AwsError {
            operation: "ListShards",
            class: crate::aws::ErrorClass::Fatal,
            code: Some("AccessDeniedException".into()),
            message: "denied".into(),
        };
        assert_eq!(
            fix_for(&err, "kinesis:ListShards", "stream s"),
            "allow kinesis:ListShards on stream s in the collector's IAM policy"
        );
    }
}
