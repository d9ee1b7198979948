//! Stream transports: TCP, TLS and stdout. One connection at a time writes the
//! queued batches in order (many per `writev`) and acknowledges them as the peer's
//! TCP stack acknowledges their bytes; on any error the connection is dropped and
//! every unacknowledged batch is written again on the next one.

use std::io;
use std::os::fd::{AsRawFd, RawFd};
use std::pin::Pin;
use std::sync::atomic::{AtomicU64, Ordering::Relaxed};
use std::sync::Arc;
use std::task::{Context, Poll};
use std::time::{Duration, Instant};

use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt, ReadBuf};
use tracing::warn;

use super::config::Transport;
use super::connect::{after_session, connect, Backoff, Connected, End, Rotation};
use super::queue::Queue;
use super::{outq, tls, TaskContext};

/// Most batches handed to one `writev`.
const MAX_SLICES: usize = 64;
/// Bytes written before a flush is forced, so TLS batches learn their position on
/// the wire even while the queue never empties.
const FLUSH_EVERY: usize = 256 * 1024;
/// Ack polling: first and longest wait between `SIOCOUTQ` probes while bytes are
/// unacknowledged and nothing else happens.
const POLL_MIN: Duration = Duration::from_millis(1);
const POLL_MAX: Duration = Duration::from_millis(50);

type Reader = Box<dyn AsyncRead + Send + Unpin>;
type Writer = Box<dyn AsyncWrite + Send + Unpin>;

/// One connected stream.
struct Conn {
    reader: Option<Reader>,
    writer: Writer,
    /// Bytes handed to the socket (ciphertext for TLS).
    written: Arc<AtomicU64>,
    /// The socket to probe; `None`: written and flushed counts as acknowledged.
    fd: Option<RawFd>,
}

/// Position on the wire up to which the peer acknowledged: bytes handed to the
/// socket less those still in its send queue.
fn acked_position(written: &AtomicU64, fd: Option<RawFd>) -> io::Result<u64> {
    let written = written.load(Relaxed);
    match fd {
        Some(fd) => Ok(written.saturating_sub(outq::unacknowledged_bytes(fd)?)),
        None => Ok(written),
    }
}

pub(crate) async fn run(ctx: &mut TaskContext, queue: &mut Queue) {
    let mut backoff = Backoff::new(ctx.config.reconnect_min, ctx.config.reconnect_max);
    let mut rotation = Rotation::default();
    loop {
        if ctx.stop.closing.is_cancelled() {
            take_queued(ctx, queue);
            if queue.is_empty() {
                return;
            }
        }
        let conn = match ctx.config.transport {
            Transport::Stdout => {
                ctx.status.set_connected("stdout".to_owned());
                Some((stdout(), "stdout".to_owned(), 0))
            }
            Transport::Tls => {
                let config = ctx.tls.clone().expect("tls config built at start");
                let tls = ctx.config.tls.clone();
                connect(ctx, queue, &mut backoff, rotation, |c| {
                    tls_handshake(c, config.clone(), tls.clone())
                })
                .await
            }
            _ => {
                connect(ctx, queue, &mut backoff, rotation, |c| async move {
                    Ok(plain(c))
                })
                .await
            }
        };
        let Some((conn, label, index)) = conn else {
            return;
        };
        let end = session(ctx, queue, conn).await;
        let place = (index, label.as_str());
        if !after_session(ctx, queue, &mut backoff, &mut rotation, place, end).await {
            return;
        }
    }
}

/// Moves every batch already submitted into the queue (when closing).
fn take_queued(ctx: &mut TaskContext, queue: &mut Queue) {
    while let Ok(sub) = ctx.rx.try_recv() {
        queue.push(sub);
    }
}

async fn session(ctx: &mut TaskContext, queue: &mut Queue, conn: Conn) -> End {
    let Conn {
        mut reader,
        mut writer,
        written,
        fd,
    } = conn;
    let mut poll_delay = POLL_MIN;
    let mut unflushed = 0usize;
    let mut progressed = false;
    let mut discard = vec![0u8; 4096];
    let failed = |reason: String, progressed: bool| End::Failed { reason, progressed };
    // Since when written bytes wait for an acknowledgement without progress
    // (sockets only: stdout is acknowledged when written).
    let mut stalled_since: Option<Instant> = None;
    let mut last_acked = 0u64;
    loop {
        queue.advance(0); // an empty batch at the head counts as written
        if !queue.awaits_ack() {
            stalled_since = None;
        } else {
            match acked_position(&written, fd) {
                Ok(pos) => {
                    if pos > last_acked {
                        last_acked = pos;
                        stalled_since = None;
                    }
                    let since = *stalled_since.get_or_insert_with(Instant::now);
                    if fd.is_some() && since.elapsed() >= ctx.config.ack_timeout {
                        return failed(
                            format!(
                                "the receiver acknowledged nothing for {}",
                                humantime::format_duration(ctx.config.ack_timeout)
                            ),
                            progressed,
                        );
                    }
                    if queue.acknowledge_through(pos, &ctx.status) > 0 {
                        progressed = true;
                        poll_delay = POLL_MIN;
                    }
                }
                Err(err) => {
                    return failed(
                        format!("cannot read the socket's send queue: {err}"),
                        progressed,
                    )
                }
            }
        }
        let closing = ctx.stop.closing.is_cancelled();
        if closing {
            take_queued(ctx, queue);
            if queue.is_empty() {
                let _ = tokio::time::timeout(Duration::from_secs(1), writer.shutdown()).await;
                return End::Drained;
            }
        }
        let want_flush =
            queue.has_unmarked_written() && (!queue.has_unwritten() || unflushed >= FLUSH_EVERY);
        let can_write = queue.has_unwritten() && !want_flush;
        tokio::select! {
            biased;
            _ = ctx.stop.stopped() => return End::Stopped,
            r = async {
                if want_flush {
                    writer.flush().await.map(|()| None)
                } else {
                    let slices = queue.slices(MAX_SLICES);
                    writer.write_vectored(&slices).await.map(Some)
                }
            }, if can_write || want_flush => match r {
                Ok(Some(0)) => return failed("the connection accepts no more bytes".to_owned(), progressed),
                Ok(Some(n)) => {
                    queue.advance(n);
                    unflushed += n;
                }
                Ok(None) => {
                    queue.mark_written(written.load(Relaxed));
                    unflushed = 0;
                }
                Err(err) => return failed(format!("write failed: {err}"), progressed),
            },
            sub = ctx.rx.recv(), if !closing => match sub {
                Some(sub) => queue.push(sub),
                None => ctx.stop.closing.cancel(),
            },
            _ = ctx.stop.closing.cancelled(), if !closing => {}
            r = read_some(&mut reader, &mut discard) => match r {
                Ok(0) => return failed("connection closed by the receiver".to_owned(), progressed),
                Ok(_) => {} // syslog receivers send nothing; ignore what they do
                Err(err) => return failed(format!("read failed: {err}"), progressed),
            },
            _ = tokio::time::sleep(poll_delay), if queue.awaits_ack() => {
                poll_delay = (poll_delay * 2).min(POLL_MAX);
            }
        }
    }
}

/// Reads from the connection when it has a read side; never resolves otherwise.
async fn read_some(reader: &mut Option<Reader>, buf: &mut [u8]) -> io::Result<usize> {
    match reader {
        Some(r) => r.read(buf).await,
        None => std::future::pending().await,
    }
}

fn stdout() -> Conn {
    let written = Arc::new(AtomicU64::new(0));
    Conn {
        reader: None,
        writer: Box::new(Counted {
            inner: tokio::io::stdout(),
            written: written.clone(),
        }),
        written,
        fd: None,
    }
}

fn plain(c: Connected) -> Conn {
    let fd = c.stream.as_raw_fd();
    let written = Arc::new(AtomicU64::new(0));
    let (r, w) = tokio::io::split(Counted {
        inner: c.stream,
        written: written.clone(),
    });
    Conn {
        reader: Some(Box::new(r)),
        writer: Box::new(w),
        written,
        fd: Some(fd),
    }
}

async fn tls_handshake(
    c: Connected,
    config: Arc<rustls::ClientConfig>,
    settings: super::config::TlsConfig,
) -> Result<Conn, String> {
    if settings.insecure_skip_verify {
        warn!(address = %c.address, "sink tls: insecure_skip_verify is set, the receiver's certificate is NOT verified");
    }
    let name = tls::server_name(&settings, &c.host)?;
    let fd = c.stream.as_raw_fd();
    let written = Arc::new(AtomicU64::new(0));
    let counted = Counted {
        inner: c.stream,
        written: written.clone(),
    };
    let stream = tokio_rustls::TlsConnector::from(config)
        .connect(name.clone(), counted)
        .await
        .map_err(|err| format!("tls handshake failed (server name {name:?}): {err}"))?;
    let (r, w) = tokio::io::split(stream);
    Ok(Conn {
        reader: Some(Box::new(r)),
        writer: Box::new(w),
        written,
        fd: Some(fd),
    })
}

/// Counts the bytes written through it.
struct Counted<S> {
    inner: S,
    written: Arc<AtomicU64>,
}

impl<S: AsyncRead + Unpin> AsyncRead for Counted<S> {
    fn poll_read(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        Pin::new(&mut self.inner).poll_read(cx, buf)
    }
}

impl<S: AsyncWrite + Unpin> AsyncWrite for Counted<S> {
    fn poll_write(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        let r = Pin::new(&mut self.inner).poll_write(cx, buf);
        if let Poll::Ready(Ok(n)) = r {
            self.written.fetch_add(n as u64, Relaxed);
        }
        r
    }

    fn poll_write_vectored(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        bufs: &[io::IoSlice<'_>],
    ) -> Poll<io::Result<usize>> {
        let r = Pin::new(&mut self.inner).poll_write_vectored(cx, bufs);
        if let Poll::Ready(Ok(n)) = r {
            self.written.fetch_add(n as u64, Relaxed);
        }
        r
    }

    fn is_write_vectored(&self) -> bool {
        self.inner.is_write_vectored()
    }

    fn poll_flush(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.inner).poll_flush(cx)
    }

    fn poll_shutdown(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.inner).poll_shutdown(cx)
    }
}

/// Used by the RELP client, which runs over the same connections: plain TCP, or
/// TLS with `tls` (the client configuration built at start, and the settings).
pub(crate) async fn relp_split(
    c: Connected,
    tls: Option<(Arc<rustls::ClientConfig>, super::config::TlsConfig)>,
) -> Result<(Reader, Writer, RawFd), String> {
    let conn = match tls {
        Some((config, settings)) => tls_handshake(c, config, settings).await?,
        None => plain(c),
    };
    let fd = conn.fd.expect("tcp has a socket");
    Ok((conn.reader.expect("tcp has a read side"), conn.writer, fd))
}
