//! systemd notify against a fake service manager: a Unix datagram socket named by
//! NOTIFY_SOCKET receives READY=1, STOPPING=1 and WATCHDOG=1 pings at half of
//! WATCHDOG_USEC. (One test: the environment is process-wide.)

use std::os::unix::net::UnixDatagram;
use std::time::{Duration, Instant};

use kinesis_collector::telemetry::notify;
use tokio_util::sync::CancellationToken;

fn recv(socket: &UnixDatagram) -> String {
    let mut buf = [0u8; 256];
    let n = socket.recv(&mut buf).expect("a notification");
    String::from_utf8_lossy(&buf[..n]).into_owned()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn ready_stopping_and_watchdog_reach_the_service_manager() {
    // Outside systemd every call is a no-op.
    std::env::remove_var("NOTIFY_SOCKET");
    std::env::remove_var("WATCHDOG_USEC");
    notify::ready();
    assert_eq!(notify::watchdog_period(), None);
    notify::watchdog_task(CancellationToken::new()).await; // returns at once

    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("notify.sock");
    let socket = UnixDatagram::bind(&path).unwrap();
    socket
        .set_read_timeout(Some(Duration::from_secs(5)))
        .unwrap();
    std::env::set_var("NOTIFY_SOCKET", &path);

    notify::ready();
    assert_eq!(recv(&socket), "READY=1\n");

    std::env::set_var("WATCHDOG_USEC", "200000");
    std::env::set_var("WATCHDOG_PID", std::process::id().to_string());
    assert_eq!(notify::watchdog_period(), Some(Duration::from_millis(100)));
    let cancel = CancellationToken::new();
    let pings = tokio::spawn(notify::watchdog_task(cancel.clone()));
    let start = Instant::now();
    let socket = tokio::task::spawn_blocking(move || {
        for _ in 0..3 {
            assert_eq!(recv(&socket), "WATCHDOG=1\n");
        }
        socket
    })
    .await
    .unwrap();
    // First ping at once, then every 100 ms.
    assert!(
        start.elapsed() >= Duration::from_millis(180),
        "{:?}",
        start.elapsed()
    );
    cancel.cancel();
    tokio::time::timeout(Duration::from_secs(5), pings)
        .await
        .expect("the watchdog task stops on cancel")
        .unwrap();

    notify::stopping();
    // Pings sent before the cancel may still be queued; STOPPING comes after them.
    let mut last = recv(&socket);
    while last == "WATCHDOG=1\n" {
        last = recv(&socket);
    }
    assert_eq!(last, "STOPPING=1\n");
}
