//! The lease lifecycle with the collector (`App`, in process) on kinesis-local and
//! moto's DynamoDB: a stream deleted and created again under the same name gets
//! fresh leases (with a warning) instead of the earlier stream's checkpoints,
//! whether the collector was stopped meanwhile or kept running; and a parent
//! shard's finished lease is deleted once its children have started, and never
//! made again. Same set-up as `run_collector.rs`: a TCP line receiver, a 2 s
//! failover, a 1 s shard sync.

mod common {
    pub mod aws;
    pub mod collector;
}

use std::collections::BTreeSet;
use std::io::Write;
use std::sync::{Arc, Mutex, OnceLock};
use std::time::Duration;

use common::aws;
use common::collector::*;
use kinesis_collector::kinesis::StreamId;
use kinesis_collector::lease::shard_sync::{sync_shards, LeaseKeys};
use kinesis_collector::lease::{Checkpoint, LeaseStore};

/// Every log line of this test binary's collectors (tests run in parallel:
/// look for lines naming your own stream).
fn logs() -> &'static Arc<Mutex<Vec<u8>>> {
    static LOGS: OnceLock<Arc<Mutex<Vec<u8>>>> = OnceLock::new();
    LOGS.get_or_init(|| {
        let buffer = Arc::new(Mutex::new(Vec::new()));
        let writer = Arc::clone(&buffer);
        tracing_subscriber::fmt()
            .with_env_filter("kinesis_collector=info")
            .with_ansi(false)
            .with_writer(move || LogWriter(Arc::clone(&writer)))
            .init();
        buffer
    })
}

struct LogWriter(Arc<Mutex<Vec<u8>>>);

impl Write for LogWriter {
    fn write(&mut self, bytes: &[u8]) -> std::io::Result<usize> {
        // Through the test harness's capture: shown only when a test fails.
        eprint!("{}", String::from_utf8_lossy(bytes));
        self.0.lock().unwrap().extend_from_slice(bytes);
        Ok(bytes.len())
    }

    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

/// The log lines that contain every one of `words`.
fn log_lines_with(words: &[&str]) -> Vec<String> {
    let text = String::from_utf8_lossy(&logs().lock().unwrap()).into_owned();
    text.lines()
        .filter(|l| words.iter().all(|w| l.contains(w)))
        .map(str::to_owned)
        .collect()
}

/// Deletes the stream `name` (created at `old_epoch`) and creates it again with
/// `shards` shards. Creation times have whole seconds (as the KCL's): on AWS a
/// deletion takes longer than that, on the emulator this waits for the next second.
async fn create_again(kinesis: &aws_sdk_kinesis::Client, name: &str, old_epoch: u64, shards: i32) {
    aws::delete_stream_and_wait(kinesis, name).await;
    next_second(old_epoch).await;
    aws::create_stream_named(kinesis, name, shards).await;
}

/// Waits until the clock is past second `epoch`.
async fn next_second(epoch: u64) {
    aws::wait_for("the next second", Duration::from_secs(2), || async {
        let now = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .unwrap()
            .as_secs();
        (now > epoch).then_some(())
    })
    .await;
}

async fn creation_epoch(kinesis: &aws_sdk_kinesis::Client, stream: &str) -> u64 {
    let out = kinesis
        .describe_stream_summary()
        .stream_name(stream)
        .send()
        .await
        .unwrap();
    out.stream_description_summary()
        .unwrap()
        .stream_creation_timestamp()
        .secs() as u64
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_stream_created_again_under_the_same_name_gets_fresh_leases() {
    logs();
    let (kinesis, setup, receiver, store) = setup(2).await;
    let first = publish(&kinesis, &setup.stream, 0, 4, 3).await;
    let worker = Worker::start(&setup, "w1");
    receiver.wait_for_all(&first, Duration::from_secs(30)).await;
    worker.stop().await;
    let old_epoch = creation_epoch(&kinesis, &setup.stream).await;
    let old = store.list().await.unwrap();
    assert_eq!(old.len(), 2, "{old:?}");
    for lease in &old {
        assert_eq!(lease.stream_creation_epoch, Some(old_epoch), "{lease:?}");
        assert!(
            matches!(lease.checkpoint, Checkpoint::Sequence { .. }),
            "{lease:?}"
        );
    }

    // Deleted and created again under the same name, with new events. The
    // creation time has whole seconds (as the KCL's): on AWS a deletion takes
    // longer than that, on the emulator the test waits for the next second.
    create_again(&kinesis, &setup.stream, old_epoch, 2).await;
    let new_epoch = creation_epoch(&kinesis, &setup.stream).await;
    assert!(new_epoch > old_epoch, "{new_epoch} after {old_epoch}");
    let second = publish(&kinesis, &setup.stream, 1000, 4, 3).await;
    let worker = Worker::start(&setup, "w2");
    receiver
        .wait_for_all(&second, Duration::from_secs(30))
        .await;
    worker.stop().await;

    let warnings = log_lines_with(&["WARN", &setup.stream, "deleted and created again"]);
    assert_eq!(
        warnings.len(),
        1,
        "one warning per sync that resets: {warnings:?}"
    );
    assert!(warnings[0].contains("stale_leases=2"), "{warnings:?}");
    let want: BTreeSet<u64> = first.union(&second).copied().collect();
    assert_each_once(&receiver, &want);
    let fresh = store.list().await.unwrap();
    assert_eq!(fresh.len(), 2, "{fresh:?}");
    for lease in &fresh {
        assert_eq!(lease.stream_creation_epoch, Some(new_epoch), "{lease:?}");
    }
    aws::delete_stream(&kinesis, &setup.stream).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_finished_parent_lease_is_deleted_once_its_children_started() {
    logs();
    let (kinesis, setup, receiver, store) = setup(1).await;
    let first = publish(&kinesis, &setup.stream, 0, 4, 2).await;
    let worker = Worker::start(&setup, "w1");
    receiver.wait_for_all(&first, Duration::from_secs(30)).await;
    let parent = "shardId-000000000000";
    aws::split_in_half(&kinesis, &setup.stream, parent).await;
    // Round robin over the four quarters of the key space: both children.
    let second = publish(&kinesis, &setup.stream, 1000, 8, 2).await;
    receiver
        .wait_for_all(&second, Duration::from_secs(30))
        .await;

    let children = ["shardId-000000000001", "shardId-000000000002"];
    // The children checkpoint every 200 ms and the shard sync runs every second.
    let leases = aws::wait_for(
        "the parent's lease deleted",
        Duration::from_secs(15),
        || async {
            let leases = store.list().await.ok()?;
            let keys: Vec<&str> = leases.iter().map(|l| l.key.as_str()).collect();
            (keys == children).then_some(leases)
        },
    )
    .await;
    for child in &leases {
        assert!(
            matches!(child.checkpoint, Checkpoint::Sequence { .. }),
            "{child:?}"
        );
        assert_eq!(child.parent_shard_ids, [parent]);
    }
    assert_eq!(
        log_lines_with(&["deleted finished lease", &setup.stream, parent]).len(),
        1
    );
    // A further shard sync does not make the parent's lease again.
    let created = sync_shards(
        &kinesis,
        &store,
        &StreamId::parse(&setup.stream),
        &LeaseKeys::ShardId,
        &Checkpoint::TrimHorizon,
    )
    .await
    .unwrap();
    assert!(created.is_empty(), "{created:?}");
    worker.stop().await;
    let keys: Vec<String> = store
        .list()
        .await
        .unwrap()
        .into_iter()
        .map(|l| l.key)
        .collect();
    assert_eq!(keys, children);
    let want: BTreeSet<u64> = first.union(&second).copied().collect();
    assert_each_once(&receiver, &want);
    aws::delete_stream(&kinesis, &setup.stream).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_stream_created_again_while_the_collector_runs_is_read_from_the_start() {
    logs();
    let (kinesis, setup, receiver, store) = setup(1).await;
    let first = publish(&kinesis, &setup.stream, 0, 2, 3).await;
    let worker = Worker::start(&setup, "w1");
    receiver.wait_for_all(&first, Duration::from_secs(30)).await;
    let old_epoch = creation_epoch(&kinesis, &setup.stream).await;
    aws::delete_stream_and_wait(&kinesis, &setup.stream).await;
    // The reader finds its shard gone and marks it finished.
    aws::wait_for(
        "the old lease at SHARD_END",
        Duration::from_secs(15),
        || async {
            let leases = store.list().await.ok()?;
            leases
                .iter()
                .all(|l| l.checkpoint == Checkpoint::ShardEnd)
                .then_some(())
        },
    )
    .await;
    next_second(old_epoch).await;
    aws::create_stream_named(&kinesis, &setup.stream, 1).await;
    let second = publish(&kinesis, &setup.stream, 1000, 2, 3).await;
    // The next shard sync resets the lease; the next take round takes it.
    receiver
        .wait_for_all(&second, Duration::from_secs(30))
        .await;
    worker.stop().await;
    let want: BTreeSet<u64> = first.union(&second).copied().collect();
    assert_each_once(&receiver, &want);
    assert_eq!(
        log_lines_with(&["WARN", &setup.stream, "deleted and created again"]).len(),
        1
    );
    let new_epoch = creation_epoch(&kinesis, &setup.stream).await;
    let leases = store.list().await.unwrap();
    assert_eq!(leases.len(), 1, "{leases:?}");
    assert_eq!(leases[0].stream_creation_epoch, Some(new_epoch));
    aws::delete_stream(&kinesis, &setup.stream).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_multi_stream_collector_says_to_restart_when_a_stream_is_created_again() {
    logs();
    let (kinesis, mut setup, receiver, _store) = setup(1).await;
    let other = aws::create_stream(&kinesis, 1).await;
    setup.more_streams.push(other.clone());
    let first = publish(&kinesis, &setup.stream, 0, 2, 3).await;
    let worker = Worker::start(&setup, "w1");
    receiver.wait_for_all(&first, Duration::from_secs(30)).await;
    let old_epoch = creation_epoch(&kinesis, &setup.stream).await;
    create_again(&kinesis, &setup.stream, old_epoch, 1).await;
    // Its lease keys were made at start: the shard sync refuses to go on with
    // them and says what to do.
    aws::wait_for("the restart warning", Duration::from_secs(10), || async {
        let lines = log_lines_with(&["shard sync failed", &setup.stream, "restart the collector"]);
        (!lines.is_empty()).then_some(())
    })
    .await;
    worker.stop().await;
    aws::delete_stream(&kinesis, &setup.stream).await;
    aws::delete_stream(&kinesis, &other).await;
}
