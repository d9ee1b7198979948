//! The syslog sink: delivers encoded batches of events to the SIEM over TCP, TLS,
//! UDP, RELP or stdout, and tells each submitter when its batch is acknowledged, so
//! a shard checkpoint only ever moves past delivered events.
//!
//! # How a reader uses it
//! ```no_run
//! # async fn reader(handle: kinesis_collector::sink::SinkHandle,
//! #     mut encoder: kinesis_collector::sink::Encoder,
//! #     events: Vec<kinesis_collector::event::Event<'_>>,
//! #     classifier: kinesis_collector::classify::Classifier) {
//! use kinesis_collector::sink::Batch;
//! let mut batch = Batch::with_capacity(64 * 1024);
//! for event in &events {
//!     encoder.encode(event, &classifier, &mut batch);
//! }
//! // Waits while the queue is full (backpressure): the reader stops fetching.
//! let ack = handle.submit(batch).await.expect("sink is running");
//! // ... submit more batches, keep (position, ack) pairs in order ...
//! if ack.await.is_ok() {
//!     // Everything up to this batch's last record may be checkpointed.
//! }
//! # }
//! ```
//! - [`Encoder`]: one per reader; turns events into framed syslog messages in a
//!   [`Batch`] (header, body, escaping and framing as `[sink]` says).
//! - [`SinkHandle::submit`]: queues a batch, waiting (async) while the queue holds
//!   `queue_bytes` of unacknowledged batches; it never drops. It returns an [`Ack`],
//!   a future that resolves `Ok(())` once the batch is acknowledged, or
//!   `Err(Unacknowledged)` if the sink stopped first (never checkpoint then).
//!   Batches of one submitter are acknowledged in submission order.
//! - [`SinkHandle::status`]: connection state and counters for metrics and health.
//! - [`Sink::close`]: clean shutdown: stops taking batches, delivers the queued ones
//!   within a time bound, closes the connection. Cancelling the token given to
//!   [`Sink::start`] stops at once.
//!
//! # What "acknowledged" means
//! - `tcp`, `tls`: the receiver's TCP stack has acknowledged the bytes (the socket's
//!   unacknowledged send queue, Linux `SIOCOUTQ`, has drained past them), not merely
//!   `write` returned. After a connection error every batch not yet acknowledged is
//!   sent again on the next connection: duplicates are possible, loss only of bytes
//!   the receiver's kernel took and its process never read (RELP closes that gap).
//! - `relp`: the receiver answered `200 OK` for every event of the batch.
//! - `udp`: sent; `stdout`: written and flushed.
//!
//! # Layout
//! - [`config`]: the `[sink]` section.
//! - [`encode`]: headers (`pri`, RFC 5424, RFC 3164, none) and RFC 6587 framing.
//! - `queue`: the in-flight batches of one connection and their acknowledgement.
//! - `connect`: address resolution, failover and capped backoff with jitter.
//! - `stream`: TCP, TLS and stdout; `tls`: rustls client configuration;
//!   `relp`: the RELP client; `udp`: datagrams; `outq`: the `SIOCOUTQ` probe.

pub mod config;
mod connect;
pub mod encode;
mod outq;
mod queue;
mod relp;
mod status;
mod stream;
mod tls;
mod udp;

use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};
use std::time::Duration;

use tokio::sync::{mpsc, oneshot, OwnedSemaphorePermit, Semaphore};
use tokio::task::JoinHandle;
use tokio_util::sync::CancellationToken;

pub use config::{Framing, Header, HostnameSource, SinkConfig, Transport};
pub use encode::{Batch, Encoder};
pub use status::StatusSnapshot;

use status::Status;

/// Why the sink could not start.
#[derive(Debug, thiserror::Error)]
pub enum SinkError {
    /// The TLS settings could not be turned into a client configuration.
    #[error("sink tls: {0}")]
    Tls(String),
    /// The sink task panicked or was aborted.
    #[error("sink task failed: {0}")]
    Task(String),
}

/// [`SinkHandle::submit`] after the sink stopped or began closing.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
#[error("sink is closed: batch not accepted")]
pub struct SinkClosed;

/// An [`Ack`] whose batch was not acknowledged because the sink stopped first.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
#[error("sink stopped before the batch was acknowledged")]
pub struct Unacknowledged;

/// One submitted batch on its way through the sink.
#[derive(Debug)]
pub(crate) struct Submitted {
    pub(crate) batch: Batch,
    /// Queue capacity held until the batch is acknowledged.
    _permit: OwnedSemaphorePermit,
    ack: oneshot::Sender<()>,
}

impl Submitted {
    pub(crate) fn new(
        batch: Batch,
        permit: OwnedSemaphorePermit,
        ack: oneshot::Sender<()>,
    ) -> Submitted {
        Submitted {
            batch,
            _permit: permit,
            ack,
        }
    }

    /// Reports the batch acknowledged and frees its queue capacity.
    pub(crate) fn acknowledge(self) {
        let _ = self.ack.send(());
    }
}

/// Resolves when its batch is acknowledged; see the module documentation.
#[derive(Debug)]
#[must_use = "an Ack tells when a checkpoint may move"]
pub struct Ack(oneshot::Receiver<()>);

impl Future for Ack {
    type Output = Result<(), Unacknowledged>;

    fn poll(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Self::Output> {
        Pin::new(&mut self.0).poll(cx).map_err(|_| Unacknowledged)
    }
}

impl Ack {
    /// Non-blocking check: `Some(Ok(()))` once acknowledged.
    pub fn try_result(&mut self) -> Option<Result<(), Unacknowledged>> {
        match self.0.try_recv() {
            Ok(()) => Some(Ok(())),
            Err(oneshot::error::TryRecvError::Empty) => None,
            Err(oneshot::error::TryRecvError::Closed) => Some(Err(Unacknowledged)),
        }
    }
}

/// Submits batches to a running sink; cheap to clone, one per reader.
#[derive(Debug, Clone)]
pub struct SinkHandle {
    tx: mpsc::UnboundedSender<Submitted>,
    capacity: Arc<Semaphore>,
    queue_bytes: u32,
    status: Arc<Status>,
}

impl SinkHandle {
    /// Queues `batch`, waiting while the queue is full. A batch larger than the
    /// whole queue waits until the queue is empty and then goes alone.
    pub async fn submit(&self, batch: Batch) -> Result<Ack, SinkClosed> {
        let weight = u32::try_from(batch.len_bytes())
            .unwrap_or(u32::MAX)
            .clamp(1, self.queue_bytes);
        let permit = self
            .capacity
            .clone()
            .acquire_many_owned(weight)
            .await
            .map_err(|_| SinkClosed)?;
        let (ack, rx) = oneshot::channel();
        self.tx
            .send(Submitted::new(batch, permit, ack))
            .map_err(|_| SinkClosed)?;
        Ok(Ack(rx))
    }

    /// Connection state and counters.
    pub fn status(&self) -> StatusSnapshot {
        let queued = self.queue_bytes as usize - self.capacity.available_permits();
        self.status.snapshot(queued as u64)
    }
}

/// The running sink: one task that owns the connection. End it with
/// [`Sink::close`] (or the cancellation token): a `Sink` merely dropped leaves its
/// task delivering until every handle is gone and the queue is empty, or until
/// the token is cancelled.
#[derive(Debug)]
pub struct Sink {
    handle: SinkHandle,
    closing: CancellationToken,
    drain_deadline: Arc<std::sync::Mutex<Option<tokio::time::Instant>>>,
    task: JoinHandle<()>,
}

/// What [`Sink::close`] left behind.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct CloseReport {
    /// Batches still unacknowledged when the drain time ran out (their [`Ack`]s
    /// resolve to `Err`).
    pub unacknowledged_batches: usize,
}

impl Sink {
    /// Starts the sink task; call within a tokio runtime. `cancel` stops everything
    /// at once (unacknowledged batches stay unacknowledged). Fails only on TLS
    /// settings that cannot be used (unreadable or empty certificate files).
    pub fn start(config: &SinkConfig, cancel: CancellationToken) -> Result<Sink, SinkError> {
        let tls = match config.transport {
            Transport::Tls | Transport::RelpTls => Some(tls::client_config(&config.tls)?),
            _ => None,
        };
        let queue_bytes = u32::try_from(config.queue_bytes).unwrap_or(u32::MAX);
        let (tx, rx) = mpsc::unbounded_channel();
        let status = Arc::new(Status::default());
        let closing = CancellationToken::new();
        let drain_deadline = Arc::new(std::sync::Mutex::new(None));
        let ctx = TaskContext {
            config: config.clone(),
            tls,
            rx,
            status: status.clone(),
            stop: Stop {
                cancel,
                closing: closing.clone(),
                drain_deadline: drain_deadline.clone(),
            },
        };
        let task = tokio::spawn(run(ctx));
        Ok(Sink {
            handle: SinkHandle {
                tx,
                capacity: Arc::new(Semaphore::new(queue_bytes as usize)),
                queue_bytes,
                status,
            },
            closing,
            drain_deadline,
            task,
        })
    }

    /// A handle for submitting batches.
    pub fn handle(&self) -> SinkHandle {
        self.handle.clone()
    }

    /// Stops taking batches, delivers the queued ones for at most `drain`, then
    /// closes the connection and waits for the task to end.
    pub async fn close(self, drain: Duration) -> Result<CloseReport, SinkError> {
        *self.drain_deadline.lock().expect("not poisoned") =
            Some(tokio::time::Instant::now() + drain);
        self.handle.capacity.close();
        self.closing.cancel();
        let status = self.handle.status.clone();
        drop(self.handle);
        self.task
            .await
            .map_err(|err| SinkError::Task(err.to_string()))?;
        Ok(CloseReport {
            unacknowledged_batches: status.unacknowledged_at_exit(),
        })
    }
}

/// Everything the sink task owns.
pub(crate) struct TaskContext {
    pub(crate) config: SinkConfig,
    pub(crate) tls: Option<Arc<rustls::ClientConfig>>,
    pub(crate) rx: mpsc::UnboundedReceiver<Submitted>,
    pub(crate) status: Arc<Status>,
    pub(crate) stop: Stop,
}

/// When the sink task must stop: cancelled, or closing and out of drain time.
#[derive(Debug, Clone)]
pub(crate) struct Stop {
    pub(crate) cancel: CancellationToken,
    /// Cancelled by [`Sink::close`]: take no more batches, deliver the queued ones.
    pub(crate) closing: CancellationToken,
    drain_deadline: Arc<std::sync::Mutex<Option<tokio::time::Instant>>>,
}

impl Stop {
    /// When closing: the instant the drain ends.
    pub(crate) fn drain_deadline(&self) -> Option<tokio::time::Instant> {
        *self.drain_deadline.lock().expect("not poisoned")
    }

    /// Resolves when the sink must stop now: cancelled, or the drain time is over.
    pub(crate) async fn stopped(&self) {
        tokio::select! {
            _ = self.cancel.cancelled() => {}
            _ = async {
                self.closing.cancelled().await;
                match self.drain_deadline() {
                    Some(deadline) => tokio::time::sleep_until(deadline).await,
                    None => std::future::pending().await,
                }
            } => {}
        }
    }
}

async fn run(mut ctx: TaskContext) {
    let mut queue = queue::Queue::default();
    match ctx.config.transport {
        Transport::Tcp | Transport::Tls | Transport::Stdout => {
            stream::run(&mut ctx, &mut queue).await
        }
        Transport::Relp | Transport::RelpTls => relp::run(&mut ctx, &mut queue).await,
        Transport::Udp => udp::run(&mut ctx, &mut queue).await,
    }
    // Whatever is left is unacknowledged: dropping it resolves its Acks to Err.
    ctx.rx.close();
    while let Ok(sub) = ctx.rx.try_recv() {
        queue.push(sub);
    }
    ctx.status.set_unacknowledged_at_exit(queue.len());
    ctx.status.set_disconnected();
}

/// This machine's host name, for the `collector` HOSTNAME (`localhost` if unknown).
pub fn system_hostname() -> String {
    let mut buf = [0u8; 256];
    // SAFETY: gethostname writes at most `buf.len()` bytes into `buf`.
    let rc = unsafe { libc::gethostname(buf.as_mut_ptr().cast(), buf.len()) };
    let len = buf.iter().position(|&b| b == 0).unwrap_or(buf.len());
    match std::str::from_utf8(&buf[..len]) {
        Ok(name) if rc == 0 && !name.is_empty() => name.to_owned(),
        _ => "localhost".to_owned(),
    }
}
