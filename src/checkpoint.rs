//! Which position of a shard may be checkpointed: the last one such that it and
//! everything read before it has been acknowledged by the sink.
//!
//! Pure bookkeeping, no I/O (the lease store writes the checkpoint, fenced by owner
//! and lease counter). A reader registers each record's position in read order and
//! gets a [`Ticket`]; acknowledgements may arrive in any order; the watermark only
//! moves over a contiguous prefix of acknowledged tickets (Quickwit's and Vector's
//! rule: never checkpoint past a gap).

use std::collections::VecDeque;

/// A position in a shard: a sequence number and, for KPL aggregates, the index of the
/// last sub-record covered.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Position {
    /// The Kinesis sequence number (up to 128 bits, kept as its decimal string).
    pub sequence_number: String,
    /// Sub-record index within an aggregated record (`None`: the whole record).
    pub subsequence: Option<u32>,
}

/// The handle of one registered position, to acknowledge it with.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct Ticket(u64);

/// Per-shard tracker of positions in flight.
#[derive(Debug, Default)]
pub struct Tracker {
    /// Ticket number of `pending[0]`.
    first: u64,
    /// Registered, not yet below the watermark: (position, acknowledged).
    pending: VecDeque<(Position, bool)>,
    /// The highest position whose prefix is all acknowledged, not yet taken.
    watermark: Option<Position>,
    /// Whether `watermark` moved since the last [`Tracker::take_watermark`].
    moved: bool,
}

impl Tracker {
    /// An empty tracker.
    pub fn new() -> Tracker {
        Tracker::default()
    }

    /// Registers the next position in read order.
    pub fn register(&mut self, position: Position) -> Ticket {
        let ticket = Ticket(self.first + self.pending.len() as u64);
        self.pending.push_back((position, false));
        ticket
    }

    /// Marks a ticket acknowledged (by the sink, or as a bad record set aside) and
    /// advances the watermark over the acknowledged prefix. Unknown or repeated
    /// tickets are ignored.
    pub fn acknowledge(&mut self, ticket: Ticket) {
        let Some(index) = ticket.0.checked_sub(self.first) else {
            return;
        };
        if let Some(entry) = self.pending.get_mut(index as usize) {
            entry.1 = true;
        }
        while self.pending.front().is_some_and(|(_, acked)| *acked) {
            let (position, _) = self.pending.pop_front().expect("front exists");
            self.first += 1;
            self.watermark = Some(position);
            self.moved = true;
        }
    }

    /// Positions registered and not yet covered by the watermark.
    pub fn in_flight(&self) -> usize {
        self.pending.len()
    }

    /// The position to checkpoint if it moved since last taken.
    pub fn take_watermark(&mut self) -> Option<Position> {
        if std::mem::take(&mut self.moved) {
            self.watermark.clone()
        } else {
            None
        }
    }

    /// The highest position whose prefix is all acknowledged.
    pub fn watermark(&self) -> Option<&Position> {
        self.watermark.as_ref()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn pos(n: usize) -> Position {
        Position {
            sequence_number: n.to_string(),
            subsequence: None,
        }
    }

    #[test]
    fn the_watermark_waits_for_gaps_to_fill() {
        let mut t = Tracker::new();
        let tickets: Vec<Ticket> = (0..4).map(|n| t.register(pos(n))).collect();
        t.acknowledge(tickets[1]);
        t.acknowledge(tickets[2]);
        assert_eq!(t.take_watermark(), None);
        t.acknowledge(tickets[0]);
        assert_eq!(t.take_watermark(), Some(pos(2)));
        assert_eq!(t.take_watermark(), None, "taken once");
        assert_eq!(t.in_flight(), 1);
        t.acknowledge(tickets[0]); // repeated: ignored
        t.acknowledge(Ticket(99)); // unknown: ignored
        assert_eq!(t.watermark(), Some(&pos(2)));
        t.acknowledge(tickets[3]);
        assert_eq!(t.take_watermark(), Some(pos(3)));
        assert_eq!(t.in_flight(), 0);
    }

    proptest! {
        /// Whatever order acknowledgements come in, the watermark is always the
        /// longest fully acknowledged prefix.
        #[test]
        fn watermark_is_the_acknowledged_prefix(order in Just((0..40usize).collect::<Vec<_>>()).prop_shuffle()) {
            let mut t = Tracker::new();
            let tickets: Vec<Ticket> = (0..40).map(|n| t.register(pos(n))).collect();
            let mut acked = [false; 40];
            for i in order {
                t.acknowledge(tickets[i]);
                acked[i] = true;
                let prefix = acked.iter().take_while(|a| **a).count();
                let want = prefix.checked_sub(1).map(pos);
                prop_assert_eq!(t.watermark().cloned(), want);
            }
        }
    }
}
