//! UDP (RFC 5426): one event per datagram, cut to `max_datagram_bytes` (counted),
//! acknowledged once sent. UDP cannot tell delivery: send errors (e.g. an ICMP
//! "port unreachable" for an earlier datagram) are logged once and counted. UDP has
//! no connection to fail and reconnect, so the receiver's name is resolved again
//! every [`RESOLVE_EVERY`]: a SIEM that DNS moves to another address gets the
//! datagrams from then on.

use std::future::Future;
use std::io;
use std::net::SocketAddr;
use std::pin::Pin;
use std::time::Duration;

use tokio::net::UdpSocket;
use tokio::time::Instant;
use tracing::{info, warn};

use super::config::parse_address;
use super::connect::{connect_failed, Backoff};
use super::queue::Queue;
use super::TaskContext;

/// How often the receiver's name is resolved again.
pub(crate) const RESOLVE_EVERY: Duration = Duration::from_secs(60);

/// Name resolution: the system's (DNS, hosts file), or a test's.
pub(crate) type Resolver =
    fn(String, u16) -> Pin<Box<dyn Future<Output = io::Result<Vec<SocketAddr>>> + Send>>;

fn system_resolver(
    host: String,
    port: u16,
) -> Pin<Box<dyn Future<Output = io::Result<Vec<SocketAddr>>> + Send>> {
    Box::pin(async move {
        Ok(tokio::net::lookup_host((host.as_str(), port))
            .await?
            .collect())
    })
}

/// A socket connected to a receiver.
struct Opened {
    socket: UdpSocket,
    /// `address (peer)`, for logs and the status.
    label: String,
    peer: SocketAddr,
}

/// Binds and connects a socket to the first address that resolves.
async fn open(ctx: &TaskContext, resolve: Resolver) -> Option<Opened> {
    for address in &ctx.config.addresses {
        let Ok((host, port)) = parse_address(address) else {
            continue;
        };
        let addrs = match resolve(host.to_owned(), port).await {
            Ok(addrs) => addrs,
            Err(err) => {
                connect_failed(ctx, address, None, format!("cannot resolve: {err}"));
                continue;
            }
        };
        for peer in addrs {
            let local: SocketAddr = if peer.is_ipv4() {
                ([0, 0, 0, 0], 0).into()
            } else {
                ([0u16; 8], 0).into()
            };
            let socket = match UdpSocket::bind(local).await {
                Ok(s) => s,
                Err(err) => {
                    warn!(error = %err, "sink cannot open a udp socket");
                    continue;
                }
            };
            match socket.connect(peer).await {
                Ok(()) => {
                    return Some(Opened {
                        socket,
                        label: format!("{address} ({peer})"),
                        peer,
                    })
                }
                Err(err) => connect_failed(ctx, address, Some(peer), err.to_string()),
            }
        }
    }
    None
}

/// The longest prefix of `msg` of at most `max` bytes that does not split a UTF-8
/// character.
fn truncate(msg: &[u8], max: usize) -> &[u8] {
    if msg.len() <= max {
        return msg;
    }
    let mut end = max;
    while end > 0 && (msg[end] & 0xC0) == 0x80 {
        end -= 1;
    }
    &msg[..end]
}

pub(crate) async fn run(ctx: &mut TaskContext, queue: &mut Queue) {
    run_with(ctx, queue, system_resolver, RESOLVE_EVERY).await;
}

/// [`run`] with the resolver and the time between resolutions given.
async fn run_with(
    ctx: &mut TaskContext,
    queue: &mut Queue,
    resolve: Resolver,
    resolve_every: Duration,
) {
    let mut backoff = Backoff::new(ctx.config.reconnect_min, ctx.config.reconnect_max);
    let mut opened = loop {
        tokio::select! {
            _ = ctx.stop.stopped() => return,
            opened = open(ctx, resolve) => if let Some(o) = opened { break o },
        }
        let wait = backoff.next_wait();
        tokio::select! {
            _ = ctx.stop.stopped() => return,
            _ = tokio::time::sleep(wait) => {}
        }
    };
    info!(peer = %opened.label, transport = "udp", "sink ready");
    ctx.status.set_connected(opened.label.clone());
    let mut resolved_at = Instant::now();
    let max = ctx.config.max_datagram_bytes;
    let mut failing = false;
    loop {
        let sub = if ctx.stop.closing.is_cancelled() {
            match ctx.rx.try_recv() {
                Ok(sub) => sub,
                Err(_) => return,
            }
        } else {
            tokio::select! {
                biased;
                _ = ctx.stop.stopped() => return,
                _ = ctx.stop.closing.cancelled() => continue,
                sub = ctx.rx.recv() => match sub {
                    Some(sub) => sub,
                    None => return,
                },
            }
        };
        if resolved_at.elapsed() >= resolve_every {
            resolved_at = Instant::now();
            // A failed resolution is logged and counted by `open`; the socket in
            // use stays.
            if let Some(again) = open(ctx, resolve).await {
                if again.peer != opened.peer {
                    info!(from = %opened.label, to = %again.label, "sink udp receiver moved to another address");
                    ctx.status.set_connected(again.label.clone());
                    opened = again;
                }
            }
        }
        let (socket, label) = (&opened.socket, &opened.label);
        let mut stopped = false;
        for message in sub.batch.messages() {
            let datagram = truncate(message, max);
            if datagram.len() < message.len() {
                ctx.status.truncated();
            }
            let sent = tokio::select! {
                _ = ctx.stop.stopped() => {
                    stopped = true;
                    break;
                }
                r = socket.send(datagram) => r,
            };
            match sent {
                Ok(_) => failing = false,
                Err(err) => {
                    ctx.status.send_error();
                    if !failing {
                        warn!(peer = %label, error = %err, "sink udp send failed (logged once until a send succeeds)");
                    }
                    failing = true;
                }
            }
        }
        if stopped {
            queue.push(sub);
            return;
        }
        ctx.status.acknowledged(&sub.batch);
        sub.acknowledge();
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn truncation_keeps_whole_characters() {
        assert_eq!(truncate(b"abc", 5), b"abc");
        assert_eq!(truncate("aé".as_bytes(), 2), b"a");
        assert_eq!(truncate(b"abcdef", 4), b"abcd");
    }

    use std::sync::atomic::{AtomicU16, Ordering::SeqCst};
    use std::sync::Arc;

    use tokio::sync::{mpsc, oneshot, Semaphore};
    use tokio_util::sync::CancellationToken;

    use super::super::status::Status;
    use super::super::{Batch, SinkConfig, Stop, Submitted};

    /// Where the test's resolver sends `siem.test`: a port on 127.0.0.1.
    static SIEM_PORT: AtomicU16 = AtomicU16::new(0);

    fn test_resolver(
        host: String,
        _port: u16,
    ) -> Pin<Box<dyn Future<Output = io::Result<Vec<SocketAddr>>> + Send>> {
        Box::pin(async move {
            assert_eq!(host, "siem.test");
            Ok(vec![([127, 0, 0, 1], SIEM_PORT.load(SeqCst)).into()])
        })
    }

    async fn submit(tx: &mpsc::UnboundedSender<Submitted>, message: &str) -> oneshot::Receiver<()> {
        let mut batch = Batch::with_capacity(64);
        batch.push_message(message.as_bytes());
        let permit = Arc::new(Semaphore::new(1))
            .acquire_many_owned(1)
            .await
            .unwrap();
        let (ack, acked) = oneshot::channel();
        tx.send(Submitted::new(batch, permit, ack)).unwrap();
        acked
    }

    async fn receive(socket: &UdpSocket) -> String {
        let mut buf = [0u8; 256];
        let n = tokio::time::timeout(Duration::from_secs(5), socket.recv(&mut buf))
            .await
            .expect("a datagram within 5 s")
            .unwrap();
        String::from_utf8_lossy(&buf[..n]).into_owned()
    }

    #[tokio::test]
    async fn datagrams_follow_the_receiver_when_its_name_resolves_elsewhere() {
        let old = UdpSocket::bind("127.0.0.1:0").await.unwrap();
        let new = UdpSocket::bind("127.0.0.1:0").await.unwrap();
        SIEM_PORT.store(old.local_addr().unwrap().port(), SeqCst);
        let config: SinkConfig =
            toml::from_str("transport = \"udp\"\naddresses = [\"siem.test:514\"]").unwrap();
        let (tx, rx) = mpsc::unbounded_channel();
        let status = Arc::new(Status::default());
        let cancel = CancellationToken::new();
        let mut ctx = TaskContext {
            config,
            tls: None,
            rx,
            status: status.clone(),
            stop: Stop {
                cancel: cancel.clone(),
                closing: CancellationToken::new(),
                drain_deadline: Arc::default(),
            },
        };
        let every = Duration::from_millis(100);
        let task = tokio::spawn(async move {
            let mut queue = Queue::default();
            run_with(&mut ctx, &mut queue, test_resolver, every).await;
        });

        submit(&tx, "first").await.await.unwrap();
        assert_eq!(receive(&old).await, "first");
        // Resolved again only once the interval has passed.
        SIEM_PORT.store(new.local_addr().unwrap().port(), SeqCst);
        submit(&tx, "second").await.await.unwrap();
        tokio::time::sleep(every * 2).await;
        submit(&tx, "third").await.await.unwrap();
        assert_eq!(receive(&old).await, "second");
        assert_eq!(receive(&new).await, "third");
        let snapshot = status.snapshot(0);
        assert!(
            snapshot
                .address
                .as_deref()
                .is_some_and(|a| a.ends_with(&format!("({})", new.local_addr().unwrap()))),
            "{:?}",
            snapshot.address
        );
        cancel.cancel();
        task.await.unwrap();
    }
}
