//! Connecting to the first receiver that answers: every address in order, each
//! name resolved again at every attempt, with capped exponential backoff and
//! jitter between rounds.

use std::net::SocketAddr;
use std::time::Duration;

use tokio::net::TcpStream;
use tracing::{info, warn};

use super::config::parse_address;
use super::queue::Queue;
use super::TaskContext;

/// Exponential backoff with jitter: each wait is drawn from [d/2, d], and d doubles
/// up to the cap at every failure.
#[derive(Debug, Clone)]
pub(crate) struct Backoff {
    min: Duration,
    max: Duration,
    current: Duration,
}

impl Backoff {
    pub(crate) fn new(min: Duration, max: Duration) -> Backoff {
        Backoff {
            min,
            max,
            current: min,
        }
    }

    /// The next wait.
    pub(crate) fn next_wait(&mut self) -> Duration {
        let d = self.current;
        self.current = (self.current * 2).min(self.max);
        let half = d / 2;
        half + half.mul_f64(fastrand::f64())
    }

    /// Back to the shortest wait (after a connection that made progress).
    pub(crate) fn reset(&mut self) {
        self.current = self.min;
    }
}

/// Where the next connection attempt starts in the address list: the first at
/// start; after a connection fails, the address after the one it was to, so a
/// receiver that accepts connections but does not acknowledge is left for the next
/// (wrapping around).
#[derive(Debug, Default, Clone, Copy)]
pub(crate) struct Rotation {
    pub(crate) start: usize,
}

impl Rotation {
    /// After a connection to address `index` failed.
    pub(crate) fn failed(&mut self, index: usize, addresses: usize) {
        self.start = (index + 1) % addresses.max(1);
    }
}

/// A TCP connection to one of the configured receivers.
pub(crate) struct Connected {
    pub(crate) stream: TcpStream,
    /// The configured `host:port`.
    pub(crate) address: String,
    /// The host part, for TLS server name checks.
    pub(crate) host: String,
}

/// One connection attempt per address (and per resolved IP), in order from
/// `start`. The
/// `handshake` may upgrade the stream (TLS, RELP open); its failure fails the
/// address. Each failure is logged once and counted. Returns `None` when every
/// address failed.
pub(crate) async fn connect_round<T, F, Fut>(
    ctx: &TaskContext,
    start: usize,
    mut handshake: F,
) -> Option<(T, String, usize)>
where
    F: FnMut(Connected) -> Fut,
    Fut: std::future::Future<Output = Result<T, String>>,
{
    let timeout = ctx.config.connect_timeout;
    let n = ctx.config.addresses.len();
    for index in (0..n).map(|i| (start + i) % n) {
        let address = &ctx.config.addresses[index];
        let Ok((host, port)) = parse_address(address) else {
            continue; // rejected by validation
        };
        let resolved = tokio::time::timeout(timeout, tokio::net::lookup_host((host, port))).await;
        let addrs: Vec<SocketAddr> = match resolved {
            Ok(Ok(addrs)) => addrs.collect(),
            Ok(Err(err)) => {
                connect_failed(ctx, address, None, format!("cannot resolve: {err}"));
                continue;
            }
            Err(_) => {
                connect_failed(
                    ctx,
                    address,
                    None,
                    format!("name resolution timed out after {timeout:?}"),
                );
                continue;
            }
        };
        for peer in addrs {
            let attempt = async {
                let stream = TcpStream::connect(peer)
                    .await
                    .map_err(|err| format!("connect failed: {err}"))?;
                let _ = stream.set_nodelay(true);
                handshake(Connected {
                    stream,
                    address: address.clone(),
                    host: host.to_owned(),
                })
                .await
            };
            match tokio::time::timeout(timeout, attempt).await {
                Ok(Ok(conn)) => {
                    let label = format!("{address} ({peer})");
                    info!(address = %address, peer = %peer, transport = ctx.config.transport.as_str(), "sink connected");
                    ctx.status.set_connected(label.clone());
                    return Some((conn, label, index));
                }
                Ok(Err(error)) => connect_failed(ctx, address, Some(peer), error),
                Err(_) => connect_failed(
                    ctx,
                    address,
                    Some(peer),
                    format!("timed out after {timeout:?}"),
                ),
            }
        }
    }
    None
}

/// One failed attempt: logged once with its reason, counted, kept for the status.
pub(crate) fn connect_failed(
    ctx: &TaskContext,
    address: &str,
    peer: Option<SocketAddr>,
    reason: String,
) {
    match peer {
        Some(peer) => {
            warn!(address = %address, peer = %peer, error = %reason, "sink connection attempt failed");
            ctx.status
                .connect_failed(format!("{address} ({peer}): {reason}"));
        }
        None => {
            warn!(address = %address, error = %reason, "sink connection attempt failed");
            ctx.status.connect_failed(format!("{address}: {reason}"));
        }
    }
}

/// Connects, retrying with backoff until connected or stopped (`None`).
pub(crate) async fn connect<T, F, Fut>(
    ctx: &TaskContext,
    queue: &Queue,
    backoff: &mut Backoff,
    rotation: Rotation,
    mut handshake: F,
) -> Option<(T, String, usize)>
where
    F: FnMut(Connected) -> Fut,
    Fut: std::future::Future<Output = Result<T, String>>,
{
    loop {
        let round = connect_round(ctx, rotation.start, &mut handshake);
        tokio::select! {
            _ = ctx.stop.stopped() => return None,
            _ = nothing_left(ctx, queue) => return None,
            connected = round => if let Some(c) = connected { return Some(c) },
        }
        let wait = backoff.next_wait();
        info!(addresses = ?ctx.config.addresses, retry_in = ?wait, "sink has no receiver; retrying");
        tokio::select! {
            _ = ctx.stop.stopped() => return None,
            _ = nothing_left(ctx, queue) => return None,
            _ = tokio::time::sleep(wait) => {}
        }
    }
}

/// Resolves when the sink is closing and holds no batch: no reason to connect.
pub(crate) async fn nothing_left(ctx: &TaskContext, queue: &Queue) {
    ctx.stop.closing.cancelled().await;
    if !(queue.is_empty() && ctx.rx.is_empty()) {
        std::future::pending::<()>().await;
    }
}

/// How a session (one connection of a stream or RELP sink) ended.
pub(crate) enum End {
    /// Cancelled, or the drain time ran out.
    Stopped,
    /// Closing and everything was acknowledged.
    Drained,
    /// The connection failed; `progressed`: something was acknowledged first.
    Failed { reason: String, progressed: bool },
}

/// After a session to the address at `index` (`label`) ended: whether to connect
/// again. A stopped or drained session ends the sink. After a failure: requeue
/// every unacknowledged batch, move on to the next address, log once and wait out
/// the backoff; false when the sink should stop instead (cancelled, or closing
/// with nothing left to deliver).
pub(crate) async fn after_session(
    ctx: &TaskContext,
    queue: &mut Queue,
    backoff: &mut Backoff,
    rotation: &mut Rotation,
    (index, label): (usize, &str),
    end: End,
) -> bool {
    let End::Failed { reason, progressed } = end else {
        return false;
    };
    let resent = queue.restart();
    rotation.failed(index, ctx.config.addresses.len());
    if progressed {
        backoff.reset();
    }
    let wait = backoff.next_wait();
    warn!(peer = %label, transport = ?ctx.config.transport, error = %reason, resend_batches = resent, retry_in = ?wait, "sink connection lost");
    ctx.status
        .disconnected_by_error(format!("{label}: {reason}"), resent);
    tokio::select! {
        _ = ctx.stop.stopped() => false,
        _ = nothing_left(ctx, queue) => false,
        _ = tokio::time::sleep(wait) => true,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn backoff_doubles_to_the_cap_with_jitter() {
        let mut b = Backoff::new(Duration::from_millis(100), Duration::from_secs(1));
        let waits: Vec<Duration> = (0..6).map(|_| b.next_wait()).collect();
        for (w, d) in waits.iter().zip([100, 200, 400, 800, 1000, 1000]) {
            let d = Duration::from_millis(d);
            assert!(*w >= d / 2 && *w <= d, "{w:?} not in [{:?}, {d:?}]", d / 2);
        }
        b.reset();
        assert!(b.next_wait() <= Duration::from_millis(100));
    }

    #[test]
    fn rotation_moves_past_the_failed_address_and_wraps() {
        let mut r = Rotation::default();
        assert_eq!(r.start, 0);
        r.failed(0, 3);
        assert_eq!(r.start, 1);
        r.failed(2, 3);
        assert_eq!(r.start, 0);
        r.failed(0, 1);
        assert_eq!(r.start, 0);
    }
}
