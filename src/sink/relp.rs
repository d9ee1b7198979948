//! RELP client (rsyslog's Reliable Event Logging Protocol, over TCP, or over TLS
//! for `relp-tls`): every event is a `syslog` frame that the receiver's
//! application answers with `rsp 200`, so a batch is acknowledged only once the
//! receiver has taken all of its events.
//! No maintained Rust crate speaks RELP; the protocol is small:
//! `TXNR SP COMMAND SP DATALEN [SP DATA] LF`, an `open` offer first, `close` last.

use std::collections::{HashSet, VecDeque};
use std::time::Duration;

use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tracing::warn;

use super::connect::{after_session, connect, Backoff, End, Rotation};
use super::queue::Queue;
use super::stream::relp_split;
use super::TaskContext;

/// Transaction numbers run from 1 to this, then wrap to 1 (RFC-style RELP spec).
const MAX_TXNR: u32 = 999_999_999;
/// Largest frame header (`TXNR SP COMMAND SP DATALEN`) accepted from the receiver.
const MAX_HEADER: usize = 64;
/// Largest response data accepted (the `open` answer lists the receiver's offers).
const MAX_RESPONSE: usize = 64 * 1024;

type Reader = Box<dyn tokio::io::AsyncRead + Send + Unpin>;
type Writer = Box<dyn tokio::io::AsyncWrite + Send + Unpin>;

/// One frame received.
#[derive(Debug, PartialEq, Eq)]
pub(crate) struct Frame<'a> {
    pub(crate) txnr: u32,
    pub(crate) command: &'a [u8],
    pub(crate) data: &'a [u8],
}

/// Parses one frame at the start of `buf`: `Ok(None)` when incomplete, else the
/// frame and the bytes it took.
pub(crate) fn parse_frame(buf: &[u8]) -> Result<Option<(Frame<'_>, usize)>, String> {
    let mut fields = [&buf[..0]; 3];
    let mut pos = 0;
    for (i, field) in fields.iter_mut().enumerate() {
        let end = buf[pos..]
            .iter()
            .position(|&b| b == b' ' || (i == 2 && b == b'\n'));
        match end {
            Some(n) => {
                *field = &buf[pos..pos + n];
                pos += n;
                if i < 2 {
                    pos += 1;
                }
            }
            None if buf.len() > MAX_HEADER => {
                return Err(format!(
                    "malformed RELP frame header {:?}",
                    String::from_utf8_lossy(&buf[..MAX_HEADER])
                ))
            }
            None => return Ok(None),
        }
    }
    let number = |f: &[u8]| -> Result<usize, String> {
        std::str::from_utf8(f)
            .ok()
            .filter(|s| !s.is_empty() && s.len() <= 9 && s.bytes().all(|b| b.is_ascii_digit()))
            .and_then(|s| s.parse().ok())
            .ok_or_else(|| format!("malformed RELP number {:?}", String::from_utf8_lossy(f)))
    };
    let txnr = number(fields[0])? as u32;
    let len = number(fields[2])?;
    if len > MAX_RESPONSE {
        return Err(format!("RELP frame of {len} bytes is too large"));
    }
    // After DATALEN: LF when empty, else SP DATA LF.
    let data_start = if len == 0 { pos } else { pos + 1 };
    let need = data_start + len + 1;
    if buf.len() < need {
        return Ok(None);
    }
    if len > 0 && buf[pos] != b' ' {
        return Err("malformed RELP frame: no space before data".to_owned());
    }
    if buf[need - 1] != b'\n' {
        return Err("malformed RELP frame: no LF after data".to_owned());
    }
    Ok(Some((
        Frame {
            txnr,
            command: fields[1],
            data: &buf[data_start..data_start + len],
        },
        need,
    )))
}

/// Appends one frame.
pub(crate) fn write_frame(txnr: u32, command: &str, data: &[u8], out: &mut Vec<u8>) {
    out.extend_from_slice(format!("{txnr} {command} {}", data.len()).as_bytes());
    if !data.is_empty() {
        out.push(b' ');
        out.extend_from_slice(data);
    }
    out.push(b'\n');
}

fn next_txnr(t: u32) -> u32 {
    if t >= MAX_TXNR {
        1
    } else {
        t + 1
    }
}

/// A connection after a successful `open`.
struct Session {
    reader: Reader,
    writer: Writer,
    rbuf: Vec<u8>,
    fd: std::os::fd::RawFd,
}

/// TLS client configuration and settings, for `relp-tls`.
type Tls = Option<(
    std::sync::Arc<rustls::ClientConfig>,
    super::config::TlsConfig,
)>;

async fn open(c: super::connect::Connected, tls: Tls) -> Result<Session, String> {
    let (mut reader, mut writer, fd) = relp_split(c, tls).await?;
    let offer = format!(
        "relp_version=0\nrelp_software=kinesis-collector,{},https://github.com/kinesis-collector\ncommands=syslog",
        env!("CARGO_PKG_VERSION")
    );
    let mut out = Vec::new();
    write_frame(1, "open", offer.as_bytes(), &mut out);
    writer
        .write_all(&out)
        .await
        .map_err(|err| format!("relp open failed: {err}"))?;
    let mut rbuf = Vec::with_capacity(4096);
    loop {
        if let Some((frame, used)) = parse_frame(&rbuf)? {
            if frame.txnr != 1 || frame.command != b"rsp" || !frame.data.starts_with(b"200") {
                return Err(format!(
                    "relp open refused: {} {}",
                    String::from_utf8_lossy(frame.command),
                    String::from_utf8_lossy(frame.data)
                ));
            }
            if !frame.data.windows(15).any(|w| w == b"commands=syslog") {
                return Err("relp receiver does not offer the syslog command".to_owned());
            }
            rbuf.drain(..used);
            return Ok(Session {
                reader,
                writer,
                rbuf,
                fd,
            });
        }
        let mut chunk = [0u8; 4096];
        match reader.read(&mut chunk).await {
            Ok(0) => return Err("relp open: connection closed by the receiver".to_owned()),
            Ok(n) => rbuf.extend_from_slice(&chunk[..n]),
            Err(err) => return Err(format!("relp open: read failed: {err}")),
        }
    }
}

pub(crate) async fn run(ctx: &mut TaskContext, queue: &mut Queue) {
    let mut backoff = Backoff::new(ctx.config.reconnect_min, ctx.config.reconnect_max);
    let mut rotation = Rotation::default();
    loop {
        if ctx.stop.closing.is_cancelled() {
            while let Ok(sub) = ctx.rx.try_recv() {
                queue.push(sub);
            }
            if queue.is_empty() {
                return;
            }
        }
        let tls: Tls = ctx
            .tls
            .clone()
            .map(|config| (config, ctx.config.tls.clone()));
        let connected = connect(ctx, queue, &mut backoff, rotation, |c| open(c, tls.clone())).await;
        let Some((session, label, index)) = connected else {
            return;
        };
        let end = run_session(ctx, queue, session).await;
        let place = (index, label.as_str());
        if !after_session(ctx, queue, &mut backoff, &mut rotation, place, end).await {
            return;
        }
    }
}

async fn run_session(ctx: &mut TaskContext, queue: &mut Queue, session: Session) -> End {
    let Session {
        mut reader,
        mut writer,
        mut rbuf,
        fd,
    } = session;
    let window = ctx.config.relp_window;
    let mut txnr = 1u32; // `open` used 1
    let mut sent_frames = 0u64;
    let mut acked_frames = 0u64;
    let mut outstanding: VecDeque<u32> = VecDeque::new();
    let mut early: HashSet<u32> = HashSet::new();
    let mut wbuf: Vec<u8> = Vec::with_capacity(256 * 1024);
    let mut wpos = 0usize;
    let mut progressed = false;
    // Since when sent frames wait for an answer without progress.
    let mut stalled_since = tokio::time::Instant::now();
    let mut chunk = vec![0u8; 16 * 1024];
    let failed = |reason: String, progressed: bool| End::Failed { reason, progressed };
    loop {
        // Frame the next batches while the window has room.
        if wpos == wbuf.len() {
            wbuf.clear();
            wpos = 0;
            while wbuf.len() < 256 * 1024 && outstanding.len() < window {
                let Some(sub) = queue.next_unwritten() else {
                    break;
                };
                if outstanding.is_empty() {
                    stalled_since = tokio::time::Instant::now();
                }
                for message in sub.batch.messages() {
                    txnr = next_txnr(txnr);
                    write_frame(txnr, "syslog", message, &mut wbuf);
                    outstanding.push_back(txnr);
                    sent_frames += 1;
                }
                queue.written_one(sent_frames);
            }
        }
        let closing = ctx.stop.closing.is_cancelled();
        if closing {
            while let Ok(sub) = ctx.rx.try_recv() {
                queue.push(sub);
            }
            if queue.is_empty() {
                let mut out = Vec::new();
                write_frame(next_txnr(txnr), "close", b"", &mut out);
                let _ = tokio::time::timeout(Duration::from_secs(1), async {
                    writer.write_all(&out).await?;
                    writer.shutdown().await
                })
                .await;
                return End::Drained;
            }
        }
        tokio::select! {
            biased;
            _ = ctx.stop.stopped() => return End::Stopped,
            r = reader.read(&mut chunk) => match r {
                Ok(0) => return failed("connection closed by the receiver".to_owned(), progressed),
                Ok(n) => {
                    super::outq::quick_ack(fd);
                    rbuf.extend_from_slice(&chunk[..n]);
                    let mut used_total = 0;
                    loop {
                        let frame = match parse_frame(&rbuf[used_total..]) {
                            Ok(Some(f)) => f,
                            Ok(None) => break,
                            Err(err) => return failed(err, progressed),
                        };
                        let (frame, used) = frame;
                        used_total += used;
                        match frame.command {
                            b"rsp" if frame.data.starts_with(b"200") => {
                                stalled_since = tokio::time::Instant::now();
                                if outstanding.front() == Some(&frame.txnr) {
                                    outstanding.pop_front();
                                    acked_frames += 1;
                                    while let Some(t) = outstanding.front() {
                                        if !early.remove(t) {
                                            break;
                                        }
                                        outstanding.pop_front();
                                        acked_frames += 1;
                                    }
                                } else if outstanding.contains(&frame.txnr) {
                                    early.insert(frame.txnr);
                                }
                            }
                            b"rsp" => return failed(format!(
                                "receiver refused event {}: {}",
                                frame.txnr,
                                String::from_utf8_lossy(frame.data)
                            ), progressed),
                            b"serverclose" => return failed("receiver closed the session (serverclose)".to_owned(), progressed),
                            other => warn!(command = %String::from_utf8_lossy(other), "sink relp: unexpected command ignored"),
                        }
                    }
                    rbuf.drain(..used_total);
                    if queue.acknowledge_through(acked_frames, &ctx.status) > 0 {
                        progressed = true;
                    }
                }
                Err(err) => return failed(format!("read failed: {err}"), progressed),
            },
            r = writer.write(&wbuf[wpos..]), if wpos < wbuf.len() => match r {
                Ok(0) => return failed("the connection accepts no more bytes".to_owned(), progressed),
                Ok(n) => wpos += n,
                Err(err) => return failed(format!("write failed: {err}"), progressed),
            },
            sub = ctx.rx.recv(), if !closing => match sub {
                Some(sub) => queue.push(sub),
                None => ctx.stop.closing.cancel(),
            },
            _ = ctx.stop.closing.cancelled(), if !closing => {}
            _ = tokio::time::sleep_until(stalled_since + ctx.config.ack_timeout), if !outstanding.is_empty() => {
                return failed(format!(
                    "the receiver answered nothing for {} ({} events waiting)",
                    humantime::format_duration(ctx.config.ack_timeout),
                    outstanding.len()
                ), progressed);
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn frames_round_trip() {
        let mut out = Vec::new();
        write_frame(2, "syslog", b"<134>hello\nworld", &mut out);
        write_frame(3, "close", b"", &mut out);
        assert_eq!(out, b"2 syslog 16 <134>hello\nworld\n3 close 0\n");
        let (f, used) = parse_frame(&out).unwrap().unwrap();
        assert_eq!(
            (f.txnr, f.command, f.data),
            (2, &b"syslog"[..], &b"<134>hello\nworld"[..])
        );
        let (f, _) = parse_frame(&out[used..]).unwrap().unwrap();
        assert_eq!((f.txnr, f.command, f.data), (3, &b"close"[..], &b""[..]));
    }

    #[test]
    fn partial_frames_wait_and_garbage_fails() {
        assert_eq!(parse_frame(b"12 rsp 6 200 O").unwrap(), None);
        assert_eq!(parse_frame(b"12 rs").unwrap(), None);
        assert!(parse_frame(b"x rsp 6 200 OK\n").is_err());
        assert!(parse_frame(b"1 rsp 2 OKX").is_err());
        assert!(parse_frame(&[b'9'; 100]).is_err());
    }

    #[test]
    fn txnr_wraps_to_one() {
        assert_eq!(next_txnr(MAX_TXNR), 1);
        assert_eq!(next_txnr(1), 2);
    }
}
