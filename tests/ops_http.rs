//! The HTTP endpoints over a real socket: /healthz, /readyz turning ready when the
//! lease table has answered and the sink (a local TCP receiver) is connected,
//! /metrics with the pipeline's figures, and a clean stop on cancel.

mod common;

use std::sync::atomic::Ordering::Relaxed;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use common::*;
use kinesis_collector::event::Class;
use kinesis_collector::sink::Sink;
use kinesis_collector::telemetry::http::HttpServer;
use kinesis_collector::telemetry::{ShardKey, ShardMetrics, Sources, Telemetry};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};
use tokio_util::sync::CancellationToken;

/// GETs `path`; returns the status code and the body.
async fn get(addr: std::net::SocketAddr, path: &str) -> (u16, String) {
    let mut stream = TcpStream::connect(addr).await.unwrap();
    let request = format!("GET {path} HTTP/1.1\r\nHost: test\r\nConnection: close\r\n\r\n");
    stream.write_all(request.as_bytes()).await.unwrap();
    let mut response = String::new();
    stream.read_to_string(&mut response).await.unwrap();
    let status = response[9..12].parse().unwrap();
    let body = response
        .split_once("\r\n\r\n")
        .map(|(_, b)| b.to_owned())
        .unwrap_or_default();
    (status, body)
}

fn now_ms() -> i64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap()
        .as_millis() as i64
}

#[tokio::test]
async fn health_readiness_and_metrics_are_served() {
    // A receiver that accepts and reads everything.
    let receiver = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let sink_addr = receiver.local_addr().unwrap();
    let cancel = CancellationToken::new();
    tokio::spawn(async move {
        while let Ok((mut conn, _)) = receiver.accept().await {
            tokio::spawn(async move {
                let mut buf = [0u8; 4096];
                while conn.read(&mut buf).await.is_ok_and(|n| n > 0) {}
            });
        }
    });

    let telemetry = Telemetry::new();
    let shard = telemetry.shard(ShardKey {
        stream: "logs".into(),
        region: "us-east-1".into(),
        shard_id: "shardId-000000000000".into(),
    });
    ShardMetrics::add(&shard.records, 42);
    shard.event(Class::VpcFlow);
    let mut sources = Sources {
        telemetry: telemetry.clone(),
        sink: None,
        worker_id: "worker-1".into(),
        failover: Duration::from_secs(10),
    };
    let server = HttpServer::bind("127.0.0.1:0".parse().unwrap())
        .await
        .unwrap();
    let addr = server.local_addr().unwrap();

    // Not ready: no lease table answer, no sink.
    let early = tokio::spawn(server.serve(sources.clone(), cancel.child_token()));
    assert_eq!(get(addr, "/healthz").await, (200, "ok\n".into()));
    let (status, body) = get(addr, "/readyz").await;
    assert_eq!(status, 503, "{body}");
    assert!(body.contains("lease table has not answered"), "{body}");
    assert!(body.contains("sink has not started"), "{body}");
    cancel.cancel();
    tokio::time::timeout(Duration::from_secs(5), early)
        .await
        .expect("the server stops on cancel")
        .unwrap();
    assert!(
        TcpStream::connect(addr).await.is_err(),
        "the listener is closed after cancel"
    );

    // Ready: the lease table answered just now and the sink is connected.
    let cancel = CancellationToken::new();
    let config = sink_config(&format!(
        "transport = \"tcp\"\naddresses = [\"{sink_addr}\"]"
    ));
    let sink = Sink::start(&config, cancel.clone()).unwrap();
    sources.sink = Some(sink.handle());
    wait_status(&sink.handle(), Duration::from_secs(10), "connected", |s| {
        s.connected
    })
    .await;
    telemetry
        .leases
        .last_table_success_ms
        .store(now_ms(), Relaxed);
    telemetry.leases.current.store(1, Relaxed);
    let server = HttpServer::bind("127.0.0.1:0".parse().unwrap())
        .await
        .unwrap();
    let addr = server.local_addr().unwrap();
    let serving = tokio::spawn(server.serve(sources, cancel.child_token()));
    let (status, body) = get(addr, "/readyz").await;
    assert_eq!((status, body.as_str()), (200, "ready\n"));
    let (status, metrics) = get(addr, "/metrics").await;
    assert_eq!(status, 200);
    for line in [
        "kinesis_collector_records_processed_total{stream=\"logs\",region=\"us-east-1\",shard_id=\"shardId-000000000000\"} 42",
        "kinesis_collector_events_forwarded_total{stream=\"logs\",region=\"us-east-1\",shard_id=\"shardId-000000000000\",class=\"vpc_flow\"} 1",
        "kinesis_collector_leases_current 1.0",
        "kinesis_collector_sink_connected 1.0",
        "kinesis_collector_sink_connects_total 1",
        "kinesis_collector_ready 1.0",
    ] {
        assert!(metrics.lines().any(|l| l == line), "no {line:?} in\n{metrics}");
    }
    let (status, body) = get(addr, "/nope").await;
    assert_eq!(status, 404, "{body}");

    // A lease table silent for longer than the failover: not ready again.
    telemetry
        .leases
        .last_table_success_ms
        .store(now_ms() - 11_000, Relaxed);
    let (status, body) = get(addr, "/readyz").await;
    assert_eq!(status, 503, "{body}");
    assert!(body.contains("lease table last answered"), "{body}");

    cancel.cancel();
    tokio::time::timeout(Duration::from_secs(5), serving)
        .await
        .expect("the server stops on cancel")
        .unwrap();
    sink.close(Duration::from_secs(1)).await.unwrap();
}
