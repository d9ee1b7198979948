//! Local AWS for the integration tests: starts the emulators (kinesis-local and
//! moto, through `scripts/emulators`) once per test binary, points the standard AWS
//! settings at them, builds SDK clients through the crate's own configuration path,
//! and makes unique stream and table names so tests run in parallel.
//!
//! Use from a test file with `mod common { pub mod aws; }`.
#![allow(dead_code)] // each test binary uses a different part of it

use std::path::Path;
use std::process::Command;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::OnceLock;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use aws_config::SdkConfig;
use kinesis_collector::aws::{sdk_config, AwsTarget};

/// Starts the emulators unless they run, and exports the `AWS_*` settings that
/// `scripts/emulators env` prints, once per test binary. Panics with the script's
/// output when they cannot start.
pub fn ensure_emulators() {
    static READY: OnceLock<()> = OnceLock::new();
    READY.get_or_init(|| {
        let script = Path::new(env!("CARGO_MANIFEST_DIR")).join("scripts/emulators");
        let started = std::time::Instant::now();
        let out = Command::new(&script)
            .arg("start")
            .output()
            .expect("run scripts/emulators start");
        assert!(
            out.status.success(),
            "scripts/emulators start failed:\n{}{}",
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        );
        eprintln!("emulators ready after {:?}", started.elapsed());
        let out = Command::new(&script)
            .arg("env")
            .output()
            .expect("run scripts/emulators env");
        assert!(out.status.success());
        for line in String::from_utf8(out.stdout).unwrap().lines() {
            let Some((key, value)) = line
                .strip_prefix("export ")
                .and_then(|kv| kv.split_once('='))
            else {
                continue;
            };
            // Set once, before any client is built, by the first test to get here
            // (the others wait on the OnceLock); Rust's own env access is locked.
            std::env::set_var(key, value);
        }
        // A developer's own settings must not send test traffic elsewhere: no
        // profile, no instance metadata (169.254.169.254), no other endpoint.
        for key in [
            "AWS_PROFILE",
            "AWS_ENDPOINT_URL",
            "AWS_SESSION_TOKEN",
            "AWS_ROLE_ARN",
            "AWS_WEB_IDENTITY_TOKEN_FILE",
        ] {
            std::env::remove_var(key);
        }
        std::env::set_var("AWS_EC2_METADATA_DISABLED", "true");
        std::env::set_var("AWS_CONFIG_FILE", "/nonexistent/aws-config");
        std::env::set_var(
            "AWS_SHARED_CREDENTIALS_FILE",
            "/nonexistent/aws-credentials",
        );
    });
}

/// SDK configuration pointed at the emulators, made the way the daemon makes it.
pub async fn config() -> SdkConfig {
    ensure_emulators();
    sdk_config(&AwsTarget::default(), "integration-test")
        .await
        .expect("sdk config")
}

/// A Kinesis client for kinesis-local.
pub async fn kinesis() -> aws_sdk_kinesis::Client {
    aws_sdk_kinesis::Client::new(&config().await)
}

/// A DynamoDB client for moto.
pub async fn dynamodb() -> aws_sdk_dynamodb::Client {
    aws_sdk_dynamodb::Client::new(&config().await)
}

/// A name no other test (in this or a parallel run) uses: `prefix-<pid>-<time>-<n>`.
pub fn unique_name(prefix: &str) -> String {
    static NEXT: AtomicU64 = AtomicU64::new(0);
    let nanos = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap()
        .subsec_nanos();
    format!(
        "{prefix}-{}-{nanos}-{}",
        std::process::id(),
        NEXT.fetch_add(1, Ordering::Relaxed)
    )
}

/// Tests that measure time (handover, failover, back-off) share 2 cores with the
/// emulators: every test of such a binary holds this guard while it runs, so they
/// run one at a time (cargo already runs test binaries one after another).
pub async fn one_at_a_time() -> tokio::sync::MutexGuard<'static, ()> {
    static LOCK: tokio::sync::Mutex<()> = tokio::sync::Mutex::const_new(());
    LOCK.lock().await
}

/// Polls `check` every 50 ms until it returns `Some`, for at most `timeout`.
pub async fn wait_for<T, F, Fut>(what: &str, timeout: Duration, mut check: F) -> T
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = Option<T>>,
{
    let deadline = tokio::time::Instant::now() + timeout;
    loop {
        if let Some(value) = check().await {
            return value;
        }
        assert!(
            tokio::time::Instant::now() < deadline,
            "timed out after {timeout:?} waiting for {what}"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

/// Creates a stream with `shards` shards and waits until it is ACTIVE; returns
/// its name.
pub async fn create_stream(client: &aws_sdk_kinesis::Client, shards: i32) -> String {
    let name = unique_name("test-stream");
    create_stream_named(client, &name, shards).await;
    name
}

/// Creates the stream `name` with `shards` shards (e.g. again, after deleting it)
/// and waits until it is ACTIVE.
pub async fn create_stream_named(client: &aws_sdk_kinesis::Client, name: &str, shards: i32) {
    client
        .create_stream()
        .stream_name(name)
        .shard_count(shards)
        .send()
        .await
        .expect("CreateStream");
    wait_stream_active(client, name).await;
}

/// Deletes the stream `name` and waits until it is gone.
pub async fn delete_stream_and_wait(client: &aws_sdk_kinesis::Client, name: &str) {
    client
        .delete_stream()
        .stream_name(name)
        .send()
        .await
        .expect("DeleteStream");
    wait_for("stream deleted", Duration::from_secs(20), || async {
        match client
            .describe_stream_summary()
            .stream_name(name)
            .send()
            .await
        {
            Err(err)
                if err
                    .as_service_error()
                    .is_some_and(|e| e.is_resource_not_found_exception()) =>
            {
                Some(())
            }
            _ => None,
        }
    })
    .await
}

/// The middle of the hash key range: the new starting hash key that splits a shard
/// covering all of it into two halves.
pub const MID_HASH_KEY: &str = "170141183460469231731687303715884105728";

/// Splits `shard` of stream `name` at [`MID_HASH_KEY`] and waits until the stream
/// is active again.
#[allow(dead_code)] // not every test binary splits shards
pub async fn split_in_half(client: &aws_sdk_kinesis::Client, name: &str, shard: &str) {
    client
        .split_shard()
        .stream_name(name)
        .shard_to_split(shard)
        .new_starting_hash_key(MID_HASH_KEY)
        .send()
        .await
        .expect("SplitShard");
    wait_stream_active(client, name).await;
}

/// Waits until the stream is ACTIVE (after a create, split or merge).
pub async fn wait_stream_active(client: &aws_sdk_kinesis::Client, name: &str) {
    wait_for("stream ACTIVE", Duration::from_secs(20), || async {
        let out = client
            .describe_stream_summary()
            .stream_name(name)
            .send()
            .await
            .ok()?;
        let summary = out.stream_description_summary()?;
        (summary.stream_status().as_str() == "ACTIVE").then_some(())
    })
    .await
}

/// Puts one record with an explicit hash key (so the test picks the shard);
/// returns its sequence number.
pub async fn put(
    client: &aws_sdk_kinesis::Client,
    stream: &str,
    hash_key: &str,
    data: &[u8],
) -> String {
    client
        .put_record()
        .stream_name(stream)
        .partition_key("p")
        .explicit_hash_key(hash_key)
        .data(aws_sdk_kinesis::primitives::Blob::new(data))
        .send()
        .await
        .expect("PutRecord")
        .sequence_number()
        .to_owned()
}

/// Deletes a stream (best effort: the emulator is discarded anyway).
pub async fn delete_stream(client: &aws_sdk_kinesis::Client, name: &str) {
    let _ = client.delete_stream().stream_name(name).send().await;
}

/// Deletes a table (best effort).
pub async fn delete_table(client: &aws_sdk_dynamodb::Client, name: &str) {
    let _ = client.delete_table().table_name(name).send().await;
}

/// A DynamoDB attribute value from its JSON form, as `aws dynamodb scan` prints
/// it (`{"S": "x"}`, `{"N": "1"}`, `{"SS": [...]}`, ...).
pub fn attribute_from_json(value: &serde_json::Value) -> aws_sdk_dynamodb::types::AttributeValue {
    use aws_sdk_dynamodb::types::AttributeValue as A;
    let (kind, inner) = value
        .as_object()
        .and_then(|o| o.iter().next())
        .expect("one typed value");
    let strings = || -> Vec<String> {
        inner
            .as_array()
            .expect("a list")
            .iter()
            .map(|v| v.as_str().unwrap().to_owned())
            .collect()
    };
    match kind.as_str() {
        "S" => A::S(inner.as_str().unwrap().to_owned()),
        "N" => A::N(inner.as_str().unwrap().to_owned()),
        "BOOL" => A::Bool(inner.as_bool().unwrap()),
        "NULL" => A::Null(true),
        "SS" => A::Ss(strings()),
        "NS" => A::Ns(strings()),
        "L" => A::L(
            inner
                .as_array()
                .unwrap()
                .iter()
                .map(attribute_from_json)
                .collect(),
        ),
        "M" => A::M(item_from_json(inner)),
        other => panic!("attribute type {other} is not supported in fixtures"),
    }
}

/// A DynamoDB item from its JSON form.
pub fn item_from_json(
    value: &serde_json::Value,
) -> std::collections::HashMap<String, aws_sdk_dynamodb::types::AttributeValue> {
    value
        .as_object()
        .expect("an item is an object")
        .iter()
        .map(|(k, v)| (k.clone(), attribute_from_json(v)))
        .collect()
}
