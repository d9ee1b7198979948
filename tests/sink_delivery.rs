//! Delivery guarantees against a real rsyslog: receiver restarts (plain TCP and
//! RELP), a receiver that stops reading, refused connections and failover, UDP.

mod common;

use std::collections::VecDeque;
use std::time::Duration;

use common::rsyslog::{free_port, Input, Rsyslog};
use common::*;
use kinesis_collector::sink::{Ack, Sink, SinkHandle};
use tokio_util::sync::CancellationToken;

const WAIT: Duration = Duration::from_secs(30);
const MARKER: &str = "end-of-test-marker";

/// Sends `batches` batches of `per` numbered events, restarting the receiver after
/// `restart_after` batches were acknowledged. Returns how many events were lost,
/// after checking that none of them was submitted after the restart (the sink only
/// loses what the old receiver had taken).
async fn stream_through_restart(input: Input, transport: &str) -> usize {
    let mut rs = Rsyslog::start(input);
    let config = sink_config(&format!(
        "transport = \"{transport}\"\naddresses = [\"{}\"]\nreconnect_min = \"50ms\"\nreconnect_max = \"500ms\"\nqueue_bytes = \"4 MiB\"",
        rs.address()
    ));
    let sink = Sink::start(&config, CancellationToken::new()).unwrap();
    let handle = sink.handle();
    let mut enc = encoder(&config);
    let (batches, per, restart_after) = (200u64, 100u64, 60u64);
    let mut acks: VecDeque<Ack> = VecDeque::new();
    let mut acked = 0u64;
    let mut restarted = false;
    for b in 0..batches {
        acks.push_back(
            handle
                .submit(numbered_batch(&mut enc, b * per, per))
                .await
                .unwrap(),
        );
        while let Some(r) = acks.front_mut().and_then(Ack::try_result) {
            r.expect("acknowledged");
            acks.pop_front();
            acked += 1;
        }
        if b == 2 * restart_after {
            // Restart while batches are in flight: some acknowledged, some not.
            while acked < restart_after {
                acks.pop_front().unwrap().await.expect("acknowledged");
                acked += 1;
            }
            restarted = true;
            tokio::task::block_in_place(|| rs.restart());
        }
    }
    for ack in acks {
        tokio::time::timeout(WAIT, ack)
            .await
            .expect("acked in time")
            .expect("acknowledged");
    }
    assert!(restarted);
    let marker = handle.submit(batch_of(&mut enc, &[MARKER])).await.unwrap();
    tokio::time::timeout(WAIT, marker).await.unwrap().unwrap();
    let status = handle.status();
    assert!(status.connects >= 2, "no reconnect happened: {status:?}");
    sink.close(Duration::from_secs(5)).await.unwrap();
    let lines = tokio::task::block_in_place(|| {
        let deadline = std::time::Instant::now() + WAIT;
        loop {
            let lines = rs.raw_lines();
            if lines.iter().any(|l| l.ends_with(MARKER)) {
                return lines;
            }
            assert!(std::time::Instant::now() < deadline, "marker never arrived");
            std::thread::sleep(Duration::from_millis(20));
        }
    });
    let received = seqs(&lines);
    let numbered_lines = lines.iter().filter(|l| l.contains("seq=")).count();
    let lost = (batches * per) as usize - received.len();
    let duplicates = numbered_lines - received.len();
    let mut missing: Vec<(u64, u64)> = Vec::new();
    for seq in (0..batches * per).filter(|s| !received.contains(s)) {
        match missing.last_mut() {
            Some((_, end)) if *end + 1 == seq => *end = seq,
            _ => missing.push((seq, seq)),
        }
    }
    eprintln!(
        "{transport}: receiver restarted mid-stream: {} events sent, {lost} lost {missing:?}, {duplicates} duplicates, {} batches resent",
        batches * per,
        status.batches_resent
    );
    let submitted_before_restart = (2 * restart_after + 1) * per;
    assert!(
        missing
            .iter()
            .all(|&(_, end)| end < submitted_before_restart),
        "{transport} lost events submitted after the restart: {missing:?}"
    );
    lost
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn tcp_receiver_restart_reconnects_and_resends_unacknowledged() {
    // Plain TCP can lose what the receiver's kernel acknowledged and rsyslog had not
    // read when it stopped (its socket buffer); the helper checks nothing else is.
    stream_through_restart(Input::Tcp, "tcp").await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn relp_receiver_restart_loses_nothing() {
    let lost = stream_through_restart(Input::Relp, "relp").await;
    assert_eq!(lost, 0, "relp lost events");
}

/// Submits batches until `submit` blocks for `stall`; returns the batches' acks.
async fn fill(
    handle: &SinkHandle,
    enc: &mut kinesis_collector::sink::Encoder,
    next: &mut u64,
    stall: Duration,
) -> Vec<Ack> {
    let mut acks = Vec::new();
    loop {
        let batch = numbered_batch(enc, *next, 100);
        match tokio::time::timeout(stall, handle.submit(batch)).await {
            Ok(ack) => {
                acks.push(ack.unwrap());
                *next += 100;
            }
            Err(_) => return acks, // blocked: backpressure (that batch was not queued)
        }
        assert!(
            *next < 2_000_000,
            "submit never blocked: the queue is not bounded"
        );
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn receiver_that_stops_reading_stops_acks_and_bounds_the_queue() {
    let rs = Rsyslog::start(Input::Tcp);
    let queue_bytes = 256 * 1024u64;
    let config = sink_config(&format!(
        "transport = \"tcp\"\naddresses = [\"{}\"]\nqueue_bytes = {queue_bytes}",
        rs.address()
    ));
    let sink = Sink::start(&config, CancellationToken::new()).unwrap();
    let handle = sink.handle();
    let mut enc = encoder(&config);
    rs.pause();
    let mut next = 0u64;
    let mut acks = fill(&handle, &mut enc, &mut next, Duration::from_millis(500)).await;
    let before = handle.status();
    assert!(before.queued_bytes <= queue_bytes, "{before:?}");
    assert!(
        before.queued_bytes > queue_bytes / 2,
        "queue not full when submit blocked: {before:?}"
    );
    // Nothing more is acknowledged while the receiver does not read.
    tokio::time::sleep(Duration::from_millis(300)).await;
    let still = handle.status();
    assert_eq!(
        still.events_acked, before.events_acked,
        "acked while the receiver was stopped"
    );
    assert!(acks.last_mut().unwrap().try_result().is_none());
    eprintln!(
        "stopped receiver: {} events acknowledged (kernel buffers), {} bytes queued of {queue_bytes}",
        before.events_acked, before.queued_bytes
    );
    rs.resume();
    for ack in acks.drain(..) {
        tokio::time::timeout(WAIT, ack)
            .await
            .expect("acked after resume")
            .unwrap();
    }
    let marker = handle.submit(batch_of(&mut enc, &[MARKER])).await.unwrap();
    tokio::time::timeout(WAIT, marker).await.unwrap().unwrap();
    let lines = tokio::task::block_in_place(|| rs.wait_raw(next as usize + 1, WAIT));
    assert_eq!(
        seqs(&lines).len() as u64,
        next,
        "every event arrived once resumed"
    );
    sink.close(Duration::from_secs(5)).await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn refused_connection_retries_with_a_clear_error_then_delivers() {
    let port = free_port(false);
    let config = sink_config(&format!(
        "transport = \"tcp\"\naddresses = [\"127.0.0.1:{port}\"]\nreconnect_min = \"20ms\"\nreconnect_max = \"100ms\""
    ));
    let sink = Sink::start(&config, CancellationToken::new()).unwrap();
    let handle = sink.handle();
    let mut enc = encoder(&config);
    let ack = handle
        .submit(batch_of(&mut enc, &[VPC_SEED]))
        .await
        .unwrap();
    let status = wait_status(&handle, WAIT, "three failed attempts", |s| {
        s.connect_failures >= 3
    })
    .await;
    assert!(!status.connected);
    let error = status.last_error.unwrap();
    assert!(
        error.contains(&format!("127.0.0.1:{port}")) && error.contains("refused"),
        "{error}"
    );
    let rs = tokio::task::block_in_place(|| Rsyslog::start_on(Input::Tcp, port));
    tokio::time::timeout(WAIT, ack)
        .await
        .expect("delivered once the receiver is up")
        .unwrap();
    let lines = tokio::task::block_in_place(|| rs.wait_raw(1, WAIT));
    assert!(lines[0].ends_with(VPC_SEED));
    sink.close(Duration::from_secs(5)).await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn fails_over_to_the_next_address() {
    let rs = Rsyslog::start(Input::Tcp);
    let dead = free_port(false);
    let config = sink_config(&format!(
        "transport = \"tcp\"\naddresses = [\"127.0.0.1:{dead}\", \"{}\"]",
        rs.address()
    ));
    let sink = Sink::start(&config, CancellationToken::new()).unwrap();
    let handle = sink.handle();
    let mut enc = encoder(&config);
    let ack = handle
        .submit(batch_of(&mut enc, &[VPC_SEED]))
        .await
        .unwrap();
    tokio::time::timeout(WAIT, ack).await.unwrap().unwrap();
    let status = handle.status();
    assert_eq!(status.connect_failures, 1, "{status:?}");
    assert!(status.address.unwrap().starts_with(&rs.address()));
    let lines = tokio::task::block_in_place(|| rs.wait_raw(1, WAIT));
    assert!(lines[0].ends_with(VPC_SEED));
    sink.close(Duration::from_secs(5)).await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn udp_sends_one_event_per_datagram_and_truncates_long_ones() {
    let rs = Rsyslog::start(Input::Udp);
    let config = sink_config(&format!(
        "transport = \"udp\"\naddresses = [\"{}\"]\nmax_datagram_bytes = 480",
        rs.address()
    ));
    let sink = Sink::start(&config, CancellationToken::new()).unwrap();
    let handle = sink.handle();
    let mut enc = encoder(&config);
    let long = "x".repeat(1000);
    let ack = handle
        .submit(batch_of(&mut enc, &[VPC_SEED, &long]))
        .await
        .unwrap();
    tokio::time::timeout(WAIT, ack).await.unwrap().unwrap();
    assert_eq!(handle.status().truncated_events, 1);
    let lines = tokio::task::block_in_place(|| rs.wait_raw(2, WAIT));
    assert_eq!(
        lines[0],
        format!("<134>2021-04-27T15:40:50.000Z [FSM-AWSKinesis] {VPC_SEED}")
    );
    assert_eq!(lines[1].len(), 480);
    sink.close(Duration::from_secs(5)).await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn cancel_stops_at_once_and_close_refuses_new_batches() {
    let port = free_port(false);
    let config = sink_config(&format!(
        "transport = \"tcp\"\naddresses = [\"127.0.0.1:{port}\"]\nreconnect_min = \"10s\"\nreconnect_max = \"10s\""
    ));
    let cancel = CancellationToken::new();
    let sink = Sink::start(&config, cancel.clone()).unwrap();
    let handle = sink.handle();
    let mut enc = encoder(&config);
    let ack = handle
        .submit(batch_of(&mut enc, &[VPC_SEED]))
        .await
        .unwrap();
    wait_status(&handle, WAIT, "a failed attempt", |s| {
        s.connect_failures >= 1
    })
    .await;
    cancel.cancel();
    let result = tokio::time::timeout(Duration::from_secs(5), ack)
        .await
        .expect("cancel is prompt");
    assert!(result.is_err(), "a batch never sent is not acknowledged");
    let report = tokio::time::timeout(Duration::from_secs(5), sink.close(Duration::from_secs(60)))
        .await
        .expect("close after cancel returns at once")
        .unwrap();
    assert_eq!(report.unacknowledged_batches, 1);
    assert!(handle
        .submit(batch_of(&mut enc, &[VPC_SEED]))
        .await
        .is_err());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn close_with_nothing_queued_does_not_wait_for_a_receiver() {
    let port = free_port(false);
    let config = sink_config(&format!(
        "transport = \"tcp\"\naddresses = [\"127.0.0.1:{port}\"]\nreconnect_min = \"20s\"\nreconnect_max = \"20s\""
    ));
    let sink = Sink::start(&config, CancellationToken::new()).unwrap();
    let handle = sink.handle();
    wait_status(&handle, WAIT, "a failed attempt", |s| {
        s.connect_failures >= 1
    })
    .await;
    let report = tokio::time::timeout(Duration::from_secs(5), sink.close(Duration::from_secs(60)))
        .await
        .expect("close returns without waiting out the backoff or the drain time")
        .unwrap();
    assert_eq!(report.unacknowledged_batches, 0);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_receiver_that_stops_acknowledging_is_left_for_the_next_address() {
    let primary = Rsyslog::start(Input::Tcp);
    let secondary = Rsyslog::start(Input::Tcp);
    let config = sink_config(&format!(
        "transport = \"tcp\"\naddresses = [\"{}\", \"{}\"]\nack_timeout = \"300ms\"\nreconnect_min = \"20ms\"\nreconnect_max = \"100ms\"",
        primary.address(),
        secondary.address()
    ));
    primary.pause();
    let sink = Sink::start(&config, CancellationToken::new()).unwrap();
    let handle = sink.handle();
    let mut enc = encoder(&config);
    // About 4.5 MB: more than the paused receiver's socket buffers take.
    let (batches, per) = (300u64, 100u64);
    let mut acks = Vec::new();
    for b in 0..batches {
        acks.push(
            handle
                .submit(numbered_batch(&mut enc, b * per, per))
                .await
                .unwrap(),
        );
    }
    for ack in acks {
        tokio::time::timeout(WAIT, ack)
            .await
            .expect("acknowledged after failover")
            .unwrap();
    }
    let status = handle.status();
    assert!(
        status
            .address
            .as_deref()
            .unwrap()
            .starts_with(&secondary.address()),
        "{status:?}"
    );
    assert!(
        status
            .last_error
            .as_deref()
            .unwrap()
            .contains("acknowledged nothing"),
        "{status:?}"
    );
    sink.close(Duration::from_secs(5)).await.unwrap();
    // What the paused receiver's kernel took (and acknowledged) arrives once it reads.
    primary.resume();
    let total = batches * per;
    let all = tokio::task::block_in_place(|| {
        let deadline = std::time::Instant::now() + WAIT;
        loop {
            let mut lines = primary.raw_lines();
            lines.extend(secondary.raw_lines());
            let got = seqs(&lines);
            if got.len() as u64 == total || std::time::Instant::now() > deadline {
                return got;
            }
            std::thread::sleep(Duration::from_millis(20));
        }
    });
    assert_eq!(
        all.len() as u64,
        total,
        "every event reached one of the receivers"
    );
    eprintln!(
        "failover after ack timeout: primary got {}, secondary {}",
        seqs(&primary.raw_lines()).len(),
        seqs(&secondary.raw_lines()).len()
    );
}
