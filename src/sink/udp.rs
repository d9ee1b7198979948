//! UDP (RFC 5426): one event per datagram, cut to `max_datagram_bytes` (counted),
//! acknowledged once sent. UDP cannot tell delivery: send errors (e.g. an ICMP
//! "port unreachable" for an earlier datagram) are logged once and counted.

use std::net::SocketAddr;

use tokio::net::UdpSocket;
use tracing::{info, warn};

use super::config::parse_address;
use super::connect::{connect_failed, Backoff};
use super::queue::Queue;
use super::TaskContext;

/// Binds and connects a socket to the first address that resolves.
async fn open(ctx: &TaskContext) -> Option<(UdpSocket, String)> {
    for address in &ctx.config.addresses {
        let Ok((host, port)) = parse_address(address) else {
            continue;
        };
        let addrs: Vec<SocketAddr> = match tokio::net::lookup_host((host, port)).await {
            Ok(addrs) => addrs.collect(),
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
                    let label = format!("{address} ({peer})");
                    info!(address = %address, peer = %peer, transport = "udp", "sink ready");
                    ctx.status.set_connected(label.clone());
                    return Some((socket, label));
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
    let mut backoff = Backoff::new(ctx.config.reconnect_min, ctx.config.reconnect_max);
    let (socket, label) = loop {
        tokio::select! {
            _ = ctx.stop.stopped() => return,
            opened = open(ctx) => if let Some(o) = opened { break o },
        }
        let wait = backoff.next_wait();
        tokio::select! {
            _ = ctx.stop.stopped() => return,
            _ = tokio::time::sleep(wait) => {}
        }
    };
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
}
