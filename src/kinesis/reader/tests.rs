//! The reader against a scripted API, in paused time: pacing, shard end, expired
//! iterators, back-off, cancellation, limits and the byte budget.

use std::collections::VecDeque;
use std::sync::Mutex;

use aws_sdk_kinesis::primitives::Blob;

use super::*;
use crate::aws::{AwsError, ErrorClass};
use crate::config::Config;

/// Answers GetRecords from a script (then: caught up, nothing new), and records
/// every call.
#[derive(Default)]
struct Fake {
    script: Mutex<VecDeque<Result<RecordBatch, GetRecordsError>>>,
    positions: Mutex<Vec<StartingPosition>>,
    calls: Mutex<Vec<(Instant, i32)>>,
}

impl Fake {
    fn new(script: Vec<Result<RecordBatch, GetRecordsError>>) -> Fake {
        Fake {
            script: Mutex::new(script.into()),
            ..Fake::default()
        }
    }

    fn call_times(&self) -> Vec<Duration> {
        let calls = self.calls.lock().unwrap();
        calls.windows(2).map(|w| w[1].0 - w[0].0).collect()
    }
}

impl ShardApi for Fake {
    async fn iterator(
        &self,
        _shard_id: &str,
        position: &StartingPosition,
    ) -> Result<String, ApiError> {
        let mut positions = self.positions.lock().unwrap();
        positions.push(position.clone());
        Ok(format!("iterator-{}", positions.len()))
    }

    async fn records(&self, _iterator: &str, limit: i32) -> Result<RecordBatch, GetRecordsError> {
        self.calls.lock().unwrap().push((Instant::now(), limit));
        self.script
            .lock()
            .unwrap()
            .pop_front()
            .unwrap_or_else(|| Ok(batch(&[], Some(0), true)))
    }
}

fn record(seq: &str, size: usize) -> Record {
    Record::builder()
        .sequence_number(seq)
        .partition_key("p")
        .data(Blob::new(vec![b'x'; size]))
        .build()
        .unwrap()
}

fn batch(seqs: &[&str], behind: Option<i64>, more: bool) -> RecordBatch {
    RecordBatch {
        records: seqs.iter().map(|s| record(s, 100)).collect(),
        next_iterator: more.then(|| "next".to_owned()),
        millis_behind_latest: behind,
        child_shards: Vec::new(),
    }
}

fn error(code: &str, class: ErrorClass) -> AwsError {
    AwsError {
        operation: "GetRecords",
        class,
        code: Some(code.into()),
        message: "scripted".into(),
    }
}

fn config() -> ReaderConfig {
    ReaderConfig::default()
}

/// Runs a reader from TRIM_HORIZON to its end (or 1 minute), collecting what it sent.
async fn run(
    fake: &Fake,
    config: &ReaderConfig,
) -> (Result<ReadEnd, ReadError>, Vec<ShardMessage>) {
    let (tx, mut rx) = mpsc::channel(100);
    let cancel = CancellationToken::new();
    let start = Start::At(StartingPosition::TrimHorizon, None);
    let result = tokio::time::timeout(
        Duration::from_secs(60),
        read_shard(fake, "shardId-0", start, config, None, &tx, &cancel),
    )
    .await
    .expect("reader did not finish");
    drop(tx);
    let mut messages = Vec::new();
    while let Some(m) = rx.recv().await {
        messages.push(m);
    }
    (result, messages)
}

fn seqs(messages: &[ShardMessage]) -> Vec<Vec<String>> {
    messages
        .iter()
        .filter_map(|m| match m {
            ShardMessage::Records(r) => Some(
                r.records
                    .iter()
                    .map(|r| r.sequence_number().to_owned())
                    .collect(),
            ),
            ShardMessage::End { .. } => None,
        })
        .collect()
}

#[tokio::test(start_paused = true)]
async fn reads_without_waiting_while_behind_and_polls_when_caught_up() {
    let mut end = batch(&[], Some(0), false);
    end.child_shards = vec![ChildShard {
        shard_id: "shardId-2".into(),
        parent_shard_ids: vec!["shardId-0".into()],
        starting_hash_key: "0".into(),
        ending_hash_key: "9".into(),
    }];
    let fake = Fake::new(vec![
        Ok(batch(&["1", "2"], Some(5000), true)),
        Ok(batch(&["3"], Some(0), true)),
        Ok(batch(&[], Some(0), true)),
        Ok(end),
    ]);
    let (result, messages) = run(&fake, &config()).await;
    assert_eq!(result.unwrap(), ReadEnd::ShardEnd);
    assert_eq!(seqs(&messages), [vec!["1", "2"], vec!["3"]]);
    match messages.last() {
        Some(ShardMessage::End { shard_id, children }) => {
            assert_eq!(shard_id, "shardId-0");
            assert_eq!(children[0].shard_id, "shardId-2");
        }
        other => panic!("{other:?}"),
    }
    // Behind: only the 200 ms call gap. Caught up (also when empty): poll interval.
    assert_eq!(
        fake.call_times(),
        [MIN_CALL_GAP, Duration::from_secs(1), Duration::from_secs(1)]
    );
}

#[tokio::test(start_paused = true)]
async fn an_expired_iterator_resumes_after_the_last_record_handed_on() {
    let expired = || {
        Err(GetRecordsError::ExpiredIterator(error(
            "ExpiredIteratorException",
            ErrorClass::Fatal,
        )))
    };
    let fake = Fake::new(vec![
        expired(),
        Ok(batch(&["1", "2"], Some(0), true)),
        expired(),
        Ok(batch(&["3"], Some(0), false)),
    ]);
    let (result, messages) = run(&fake, &config()).await;
    assert_eq!(result.unwrap(), ReadEnd::ShardEnd);
    assert_eq!(seqs(&messages), [vec!["1", "2"], vec!["3"]]);
    assert_eq!(
        *fake.positions.lock().unwrap(),
        [
            StartingPosition::TrimHorizon,
            StartingPosition::TrimHorizon,
            StartingPosition::AfterSequenceNumber("2".into())
        ]
    );
}

#[tokio::test(start_paused = true)]
async fn throttles_and_transient_failures_back_off_then_read_on() {
    let throttled = || {
        Err(GetRecordsError::Throttled(error(
            "ProvisionedThroughputExceededException",
            ErrorClass::Throttled,
        )))
    };
    let fake = Fake::new(vec![
        throttled(),
        throttled(),
        Err(GetRecordsError::Transient(error(
            "InternalFailure",
            ErrorClass::Transient,
        ))),
        Ok(batch(&["1"], Some(0), false)),
    ]);
    let (result, messages) = run(&fake, &config()).await;
    assert_eq!(result.unwrap(), ReadEnd::ShardEnd);
    assert_eq!(seqs(&messages), [vec!["1"]]);
    // Never faster than the shard's call limit.
    assert!(
        fake.call_times().iter().all(|gap| *gap >= MIN_CALL_GAP),
        "{:?}",
        fake.call_times()
    );
}

#[tokio::test(start_paused = true)]
async fn gone_and_fatal_errors_end_the_reader_with_the_reason() {
    let fake = Fake::new(vec![Err(GetRecordsError::ResourceNotFound(error(
        "ResourceNotFoundException",
        ErrorClass::Fatal,
    )))]);
    let (result, _) = run(&fake, &config()).await;
    assert!(matches!(result, Err(ReadError::NotFound(_))), "{result:?}");
    let fake = Fake::new(vec![Err(GetRecordsError::Fatal(error(
        "AccessDeniedException",
        ErrorClass::Fatal,
    )))]);
    let (result, _) = run(&fake, &config()).await;
    let err = result.unwrap_err().to_string();
    assert!(err.contains("AccessDeniedException"), "{err}");
}

#[tokio::test(start_paused = true)]
async fn cancel_stops_a_waiting_reader_at_once() {
    let fake = Fake::new(vec![Ok(batch(&["1"], Some(0), true))]);
    let (tx, mut rx) = mpsc::channel(10);
    let cancel = CancellationToken::new();
    let config = ReaderConfig {
        poll_interval: Duration::from_secs(30),
        ..config()
    };
    let reader = read_shard(
        &fake,
        "s",
        Start::At(StartingPosition::Latest, None),
        &config,
        None,
        &tx,
        &cancel,
    );
    let stopper = async {
        assert!(rx.recv().await.is_some());
        let at = Instant::now();
        cancel.cancel();
        at
    };
    let (result, cancelled_at) = tokio::join!(reader, stopper);
    assert_eq!(result.unwrap(), ReadEnd::Stopped);
    assert!(cancelled_at.elapsed() < Duration::from_millis(10));
}

#[tokio::test(start_paused = true)]
async fn limit_follows_the_record_size() {
    let big = RecordBatch {
        records: (0..10).map(|i| record(&i.to_string(), 64 << 10)).collect(),
        next_iterator: Some("n".into()),
        millis_behind_latest: Some(1),
        child_shards: Vec::new(),
    };
    let fake = Fake::new(vec![Ok(big), Ok(batch(&[], Some(0), false))]);
    let (result, _) = run(&fake, &config()).await;
    result.unwrap();
    let limits: Vec<i32> = fake.calls.lock().unwrap().iter().map(|c| c.1).collect();
    assert_eq!(limits, [INITIAL_LIMIT, 32], "2 MiB / 64 KiB records");

    let mut sizer = LimitSizer::new(2 << 20, 10_000);
    sizer.observe(1000, 100_000);
    assert_eq!(sizer.limit(), 10_000, "capped");
    sizer.observe(0, 0);
    assert_eq!(sizer.limit(), 10_000, "an empty answer changes nothing");
}

#[tokio::test(start_paused = true)]
async fn the_byte_budget_holds_readers_until_batches_are_dropped() {
    let each = 600 << 10;
    let fake = Fake::new(
        (0..3)
            .map(|i| {
                Ok(RecordBatch {
                    records: vec![record(&i.to_string(), each)],
                    next_iterator: Some("n".into()),
                    millis_behind_latest: Some(1),
                    child_shards: Vec::new(),
                })
            })
            .collect(),
    );
    let config = ReaderConfig {
        max_bytes_in_flight: 1 << 20,
        ..config()
    };
    let budget = config.byte_budget();
    let (tx, mut rx) = mpsc::channel(10);
    let cancel = CancellationToken::new();
    let start = Start::At(StartingPosition::TrimHorizon, None);
    let reader = read_shard(&fake, "s", start, &config, Some(&budget), &tx, &cancel);
    let consumer = async {
        let first = rx.recv().await.unwrap();
        // The second batch (600 KiB more) does not fit in 1 MiB while the first is held.
        tokio::time::sleep(Duration::from_secs(5)).await;
        assert!(
            rx.try_recv().is_err(),
            "second batch arrived over the budget"
        );
        assert!(
            budget.available_permits() < each,
            "the waiting reader holds what is left"
        );
        drop(first);
        let second = tokio::time::timeout(Duration::from_secs(1), rx.recv())
            .await
            .unwrap()
            .unwrap();
        drop(second);
        cancel.cancel();
    };
    let (result, ()) = tokio::join!(reader, consumer);
    assert_eq!(result.unwrap(), ReadEnd::Stopped);
}

#[test]
fn starts_from_checkpoints() {
    let t = SystemTime::UNIX_EPOCH + Duration::from_secs(1_600_000_000);
    let cases = [
        (
            Checkpoint::TrimHorizon,
            Start::At(StartingPosition::TrimHorizon, None),
        ),
        (
            Checkpoint::Latest,
            Start::At(StartingPosition::Latest, None),
        ),
        (
            Checkpoint::AtTimestamp,
            Start::At(StartingPosition::AtTimestamp(t), None),
        ),
        (Checkpoint::ShardEnd, Start::Ended),
        (
            Checkpoint::at("42"),
            Start::At(StartingPosition::AfterSequenceNumber("42".into()), None),
        ),
        (
            Checkpoint::parse("42", 3).unwrap(),
            Start::At(
                StartingPosition::AtSequenceNumber("42".into()),
                Some(("42".into(), 3)),
            ),
        ),
    ];
    for (checkpoint, want) in cases {
        assert_eq!(
            Start::from_checkpoint(&checkpoint, Some(t)).unwrap(),
            want,
            "{checkpoint}"
        );
    }
    assert!(matches!(
        Start::from_checkpoint(&Checkpoint::AtTimestamp, None),
        Err(ReadError::NoTimestamp)
    ));
}

#[test]
fn config_is_validated() {
    let config =
        Config::from_toml("[reader]\npoll_interval = \"250ms\"\nmax_bytes_in_flight = \"8 MiB\"\n")
            .unwrap();
    assert_eq!(config.reader.poll_interval, Duration::from_millis(250));
    assert_eq!(config.reader.max_bytes_in_flight, 8 << 20);
    let problems = Config::from_toml(
        "[reader]\npoll_interval = \"100ms\"\nmax_records = 20000\ntarget_batch_size = \"1 KiB\"\nmax_bytes_in_flight = \"8 GiB\"\n",
    )
    .unwrap_err();
    let keys: Vec<&str> = problems.iter().map(|p| p.key.as_str()).collect();
    assert_eq!(
        keys,
        [
            "reader.poll_interval",
            "reader.max_records",
            "reader.target_batch_size",
            "reader.max_bytes_in_flight"
        ],
        "{problems}"
    );
}
