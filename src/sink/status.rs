//! The sink's connection state and counters, shared with metrics and health.

use std::sync::atomic::{AtomicBool, AtomicU64, AtomicUsize, Ordering::Relaxed};
use std::sync::Mutex;

use super::encode::Batch;

/// Live state, updated by the sink task.
#[derive(Debug, Default)]
pub(crate) struct Status {
    connected: AtomicBool,
    address: Mutex<Option<String>>,
    last_error: Mutex<Option<String>>,
    connects: AtomicU64,
    connect_failures: AtomicU64,
    disconnects: AtomicU64,
    batches_acked: AtomicU64,
    events_acked: AtomicU64,
    bytes_acked: AtomicU64,
    batches_resent: AtomicU64,
    truncated_events: AtomicU64,
    send_errors: AtomicU64,
    unacknowledged_at_exit: AtomicUsize,
}

/// A copy of the sink's state at one moment.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct StatusSnapshot {
    /// Whether a connection is up (always true for stdout once started).
    pub connected: bool,
    /// The receiver connected to, as `address (ip:port)`.
    pub address: Option<String>,
    /// The latest connection failure or loss, with its reason.
    pub last_error: Option<String>,
    /// Connections made.
    pub connects: u64,
    /// Connection attempts that failed (one per address tried).
    pub connect_failures: u64,
    /// Connections lost or closed by an error.
    pub disconnects: u64,
    /// Batches acknowledged.
    pub batches_acked: u64,
    /// Events acknowledged.
    pub events_acked: u64,
    /// Encoded bytes acknowledged.
    pub bytes_acked: u64,
    /// Batches written again after a reconnect (possible duplicates).
    pub batches_resent: u64,
    /// UDP events cut to `max_datagram_bytes`.
    pub truncated_events: u64,
    /// UDP send errors (the datagram is counted as sent).
    pub send_errors: u64,
    /// Bytes submitted and not yet acknowledged.
    pub queued_bytes: u64,
}

impl Status {
    pub(crate) fn snapshot(&self, queued_bytes: u64) -> StatusSnapshot {
        StatusSnapshot {
            connected: self.connected.load(Relaxed),
            address: self.address.lock().expect("not poisoned").clone(),
            last_error: self.last_error.lock().expect("not poisoned").clone(),
            connects: self.connects.load(Relaxed),
            connect_failures: self.connect_failures.load(Relaxed),
            disconnects: self.disconnects.load(Relaxed),
            batches_acked: self.batches_acked.load(Relaxed),
            events_acked: self.events_acked.load(Relaxed),
            bytes_acked: self.bytes_acked.load(Relaxed),
            batches_resent: self.batches_resent.load(Relaxed),
            truncated_events: self.truncated_events.load(Relaxed),
            send_errors: self.send_errors.load(Relaxed),
            queued_bytes,
        }
    }

    pub(crate) fn set_connected(&self, address: String) {
        *self.address.lock().expect("not poisoned") = Some(address);
        self.connected.store(true, Relaxed);
        self.connects.fetch_add(1, Relaxed);
    }

    pub(crate) fn set_disconnected(&self) {
        self.connected.store(false, Relaxed);
    }

    pub(crate) fn disconnected_by_error(&self, reason: String, resent: usize) {
        *self.last_error.lock().expect("not poisoned") = Some(reason);
        self.set_disconnected();
        self.disconnects.fetch_add(1, Relaxed);
        self.batches_resent.fetch_add(resent as u64, Relaxed);
    }

    pub(crate) fn connect_failed(&self, reason: String) {
        *self.last_error.lock().expect("not poisoned") = Some(reason);
        self.connect_failures.fetch_add(1, Relaxed);
    }

    pub(crate) fn acknowledged(&self, batch: &Batch) {
        self.batches_acked.fetch_add(1, Relaxed);
        self.events_acked.fetch_add(batch.events() as u64, Relaxed);
        self.bytes_acked
            .fetch_add(batch.len_bytes() as u64, Relaxed);
    }

    pub(crate) fn truncated(&self) {
        self.truncated_events.fetch_add(1, Relaxed);
    }

    pub(crate) fn send_error(&self) {
        self.send_errors.fetch_add(1, Relaxed);
    }

    pub(crate) fn set_unacknowledged_at_exit(&self, n: usize) {
        self.unacknowledged_at_exit.store(n, Relaxed);
    }

    pub(crate) fn unacknowledged_at_exit(&self) -> usize {
        self.unacknowledged_at_exit.load(Relaxed)
    }
}
