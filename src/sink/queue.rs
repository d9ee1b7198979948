//! The batches a sink connection holds until they are acknowledged: which bytes are
//! written, where each batch ends on the wire, and which are acknowledged. On a new
//! connection everything unacknowledged is written again from the start.

use std::collections::VecDeque;
use std::io::IoSlice;

use super::status::Status;
use super::Submitted;

#[derive(Debug)]
struct Item {
    sub: Submitted,
    /// Position on the connection (bytes, or RELP frames) just past this batch,
    /// once all of it has been handed to the socket.
    end: Option<u64>,
}

/// In-flight batches, oldest first.
#[derive(Debug, Default)]
pub(crate) struct Queue {
    items: VecDeque<Item>,
    /// First item not completely written on this connection.
    next: usize,
    /// Bytes of `items[next]` already written.
    offset: usize,
    /// First item whose `end` is not known yet.
    marked: usize,
}

impl Queue {
    pub(crate) fn push(&mut self, sub: Submitted) {
        self.items.push_back(Item { sub, end: None });
    }

    pub(crate) fn len(&self) -> usize {
        self.items.len()
    }

    pub(crate) fn is_empty(&self) -> bool {
        self.items.is_empty()
    }

    /// Whether some batch still has bytes to write.
    pub(crate) fn has_unwritten(&self) -> bool {
        self.next < self.items.len()
    }

    /// Whether written batches wait for their end to be recorded.
    pub(crate) fn has_unmarked_written(&self) -> bool {
        self.marked < self.next
    }

    /// Whether some batch was written and waits for its acknowledgement.
    pub(crate) fn awaits_ack(&self) -> bool {
        self.next > 0
    }

    /// Starts over on a new connection: every batch is unwritten again. Returns how
    /// many batches had been (partly) written and will be sent again.
    pub(crate) fn restart(&mut self) -> usize {
        let resent = self.next + usize::from(self.offset > 0);
        for item in &mut self.items {
            item.end = None;
        }
        self.next = 0;
        self.offset = 0;
        self.marked = 0;
        resent.min(self.items.len())
    }

    /// Up to `max` slices of unwritten bytes, in order.
    pub(crate) fn slices(&self, max: usize) -> Vec<IoSlice<'_>> {
        let mut slices = Vec::with_capacity(max.min(self.items.len() - self.next));
        for (i, item) in self.items.iter().enumerate().skip(self.next).take(max) {
            let skip = if i == self.next { self.offset } else { 0 };
            slices.push(IoSlice::new(&item.sub.batch.buf[skip..]));
        }
        slices
    }

    /// Records that `n` more bytes were written.
    pub(crate) fn advance(&mut self, mut n: usize) {
        while n > 0 {
            let left = self.items[self.next].sub.batch.buf.len() - self.offset;
            if n >= left {
                n -= left;
                self.next += 1;
                self.offset = 0;
            } else {
                self.offset += n;
                n = 0;
            }
        }
        // Empty batches are written as soon as they are reached.
        while self.next < self.items.len() && self.items[self.next].sub.batch.buf.is_empty() {
            self.next += 1;
        }
    }

    /// The unwritten batch at the head, for transports that write batch by batch.
    pub(crate) fn next_unwritten(&self) -> Option<&Submitted> {
        self.items.get(self.next).map(|item| &item.sub)
    }

    /// Marks the head unwritten batch completely written, ending at `end`.
    pub(crate) fn written_one(&mut self, end: u64) {
        self.items[self.next].end = Some(end);
        self.next += 1;
        self.offset = 0;
        self.marked = self.marked.max(self.next);
    }

    /// Records `end` as the position past every completely written batch whose end
    /// was not known yet.
    pub(crate) fn mark_written(&mut self, end: u64) {
        for item in self.items.range_mut(self.marked..self.next) {
            item.end = Some(end);
        }
        self.marked = self.next;
    }

    /// Acknowledges, oldest first, every batch that ends at or before `acked`.
    /// Returns how many.
    pub(crate) fn acknowledge_through(&mut self, acked: u64, status: &Status) -> usize {
        let mut count = 0;
        while let Some(item) = self.items.front() {
            match item.end {
                Some(end) if end <= acked => {}
                _ => break,
            }
            let item = self.items.pop_front().expect("front exists");
            self.next -= 1;
            self.marked -= 1;
            status.acknowledged(&item.sub.batch);
            item.sub.acknowledge();
            count += 1;
        }
        count
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::sink::encode::Batch;
    use std::sync::Arc;
    use tokio::sync::{oneshot, Semaphore};

    fn submitted(bytes: &[u8]) -> (Submitted, oneshot::Receiver<()>) {
        let permits = Arc::new(Semaphore::new(1 << 20));
        let permit = permits
            .try_acquire_many_owned(bytes.len().max(1) as u32)
            .unwrap();
        let (tx, rx) = oneshot::channel();
        let mut batch = Batch::default();
        batch.push_message(bytes);
        (Submitted::new(batch, permit, tx), rx)
    }

    #[test]
    fn acks_follow_written_positions_and_restart_resends_the_rest() {
        let status = Status::default();
        let mut q = Queue::default();
        let (a, mut ra) = submitted(b"aaaa");
        let (b, mut rb) = submitted(b"bb");
        let (c, mut rc) = submitted(b"cccccc");
        q.push(a);
        q.push(b);
        q.push(c);
        assert_eq!(q.slices(10).len(), 3);
        q.advance(5); // all of a, one byte of b
        assert_eq!(&*q.slices(10)[0], b"b");
        q.mark_written(5);
        assert!(q.awaits_ack() && q.has_unwritten());
        assert_eq!(
            q.acknowledge_through(4, &status),
            0,
            "a's end is only known as 5"
        );
        assert_eq!(q.acknowledge_through(5, &status), 1);
        assert!(ra.try_recv().is_ok());
        q.advance(1);
        q.mark_written(6);
        // Connection lost: b (written, unacked) and c (unwritten) go again, whole.
        assert_eq!(q.restart(), 1);
        assert_eq!(q.slices(10).iter().map(|s| s.len()).sum::<usize>(), 8);
        q.advance(8);
        q.mark_written(8);
        assert_eq!(q.acknowledge_through(8, &status), 2);
        assert!(rb.try_recv().is_ok() && rc.try_recv().is_ok());
        assert!(q.is_empty() && !q.awaits_ack());
        assert_eq!(status.snapshot(0).batches_acked, 3);
    }

    #[test]
    fn empty_batches_are_written_when_reached() {
        let status = Status::default();
        let mut q = Queue::default();
        let (a, mut ra) = submitted(b"");
        q.push(a);
        let (mut b, mut rb) = submitted(b"x");
        b.batch = Batch::default();
        q.push(b);
        q.advance(0);
        assert!(!q.has_unwritten() && q.has_unmarked_written());
        q.mark_written(0);
        assert_eq!(q.acknowledge_through(0, &status), 2);
        assert!(ra.try_recv().is_ok() && rb.try_recv().is_ok());
    }

    #[test]
    fn batch_by_batch_transports_record_each_end() {
        let status = Status::default();
        let mut q = Queue::default();
        let (a, _ra) = submitted(b"a");
        let (b, _rb) = submitted(b"b");
        q.push(a);
        q.push(b);
        q.written_one(3);
        q.written_one(7);
        assert!(!q.has_unwritten());
        assert_eq!(q.acknowledge_through(6, &status), 1);
        assert_eq!(q.acknowledge_through(7, &status), 1);
    }
}
