//! A shard's checkpoint watermark: the highest position such that it and every
//! record before it in the shard has been acknowledged by the sink (pure: no I/O,
//! no clock; the coordinator writes what it yields, fenced by owner and counter).
//!
//! Records (or KPL sub-records) are registered in shard order with the number of
//! events each produced; acknowledgements may arrive in any order. Only the
//! acknowledged prefix moves the watermark: never earlier work, never later.
//!
//! KPL aggregates: a checkpoint `(sequence, k)` with `k > 0` resumes AT the record
//! and skips sub-records up to `k`; `(sequence, 0)` resumes AFTER it. So a
//! partially done aggregate is never checkpointed at sub-record 0: the watermark
//! stays at the previous position until a later sub-record is done.

use std::collections::VecDeque;

use super::Checkpoint;

/// A registered record's place in the watermark, to acknowledge its events.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct Ticket(u64);

#[derive(Debug)]
struct Entry {
    checkpoint: Option<Checkpoint>,
    outstanding: u32,
}

/// The watermark of one shard.
#[derive(Debug, Default)]
pub struct Watermark {
    /// Ticket number of `entries[0]`.
    base: u64,
    entries: VecDeque<Entry>,
}

impl Watermark {
    /// An empty watermark.
    pub fn new() -> Watermark {
        Watermark::default()
    }

    /// Registers the next record of the shard: a plain record (`sub_sequence` 0,
    /// `last_sub_record` true) or one sub-record of a KPL aggregate; `events` is
    /// how many events it produced (0 for a record that was skipped, e.g. one that
    /// failed to decode or a CloudWatch Logs control message: it is done at once).
    pub fn push(
        &mut self,
        sequence_number: &str,
        sub_sequence: u64,
        last_sub_record: bool,
        events: u32,
    ) -> Ticket {
        // (seq, 0) would mean "the whole record": only true for its last sub-record.
        let checkpoint = (sub_sequence > 0 || last_sub_record).then(|| Checkpoint::Sequence {
            sequence_number: sequence_number.to_owned(),
            sub_sequence_number: sub_sequence,
        });
        self.entries.push_back(Entry {
            checkpoint,
            outstanding: events,
        });
        Ticket(self.base + self.entries.len() as u64 - 1)
    }

    /// Acknowledges one event of `ticket`'s record. Acknowledging more events than
    /// the record produced, or a ticket already passed, is ignored.
    pub fn ack(&mut self, ticket: Ticket) {
        let Some(index) = ticket.0.checked_sub(self.base) else {
            return;
        };
        if let Some(entry) = self.entries.get_mut(index as usize) {
            entry.outstanding = entry.outstanding.saturating_sub(1);
        }
    }

    /// The new checkpoint, if the acknowledged prefix moved past a position that
    /// can be checkpointed; forgets the records it covers.
    pub fn advance(&mut self) -> Option<Checkpoint> {
        let mut newest = None;
        while self.entries.front().is_some_and(|e| e.outstanding == 0) {
            let entry = self.entries.pop_front().expect("checked above");
            self.base += 1;
            if entry.checkpoint.is_some() {
                newest = entry.checkpoint;
            }
        }
        newest
    }

    /// Records registered and not yet passed by the watermark.
    pub fn pending(&self) -> usize {
        self.entries.len()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_the_acknowledged_prefix_moves_it() {
        let mut w = Watermark::new();
        let a = w.push("1", 0, true, 2);
        let b = w.push("2", 0, true, 1);
        let c = w.push("3", 0, true, 1);
        assert_eq!(w.advance(), None);
        w.ack(c);
        w.ack(b);
        assert_eq!(w.advance(), None, "record 1 is not done");
        w.ack(a);
        assert_eq!(
            w.advance(),
            None,
            "one of record 1's two events is still out"
        );
        w.ack(a);
        assert_eq!(w.advance(), Some(Checkpoint::at("3")));
        assert_eq!(w.pending(), 0);
        assert_eq!(w.advance(), None, "nothing new");
    }

    #[test]
    fn records_without_events_are_done_at_once() {
        let mut w = Watermark::new();
        w.push("1", 0, true, 0);
        let t = w.push("2", 0, true, 1);
        w.push("3", 0, true, 0);
        assert_eq!(w.advance(), Some(Checkpoint::at("1")));
        w.ack(t);
        assert_eq!(w.advance(), Some(Checkpoint::at("3")));
    }

    #[test]
    fn kpl_aggregates_are_never_checkpointed_at_a_partial_sub_record_zero() {
        let mut w = Watermark::new();
        let done = w.push("1", 0, true, 1);
        let sub0 = w.push("2", 0, false, 1);
        let sub1 = w.push("2", 1, false, 1);
        let sub2 = w.push("2", 2, true, 1);
        w.ack(done);
        w.ack(sub0);
        // (2, 0) would resume after record 2 and lose sub-records 1 and 2.
        assert_eq!(w.advance(), Some(Checkpoint::at("1")));
        w.ack(sub1);
        assert_eq!(w.advance(), Some(Checkpoint::parse("2", 1).unwrap()));
        w.ack(sub2);
        assert_eq!(w.advance(), Some(Checkpoint::parse("2", 2).unwrap()));
    }

    #[test]
    fn stray_acknowledgements_are_ignored() {
        let mut w = Watermark::new();
        let t = w.push("1", 0, true, 1);
        w.ack(t);
        w.ack(t);
        assert_eq!(w.advance(), Some(Checkpoint::at("1")));
        w.ack(t);
        w.ack(Ticket(99));
        let u = w.push("2", 0, true, 1);
        assert_eq!(w.advance(), None);
        w.ack(u);
        assert_eq!(w.advance(), Some(Checkpoint::at("2")));
    }

    proptest::proptest! {
        /// Whatever the acknowledgement order, the watermark only names records
        /// whose events and all earlier events are acknowledged, and ends at the
        /// last record.
        #[test]
        fn never_ahead_of_the_acknowledged_prefix(
            events in proptest::collection::vec(0u32..3, 1..40),
            seed in proptest::prelude::any::<u64>(),
        ) {
            let mut w = Watermark::new();
            let tickets: Vec<Ticket> = events
                .iter()
                .enumerate()
                .map(|(i, &n)| w.push(&(i + 1).to_string(), 0, true, n))
                .collect();
            // Every acknowledgement, in a seeded shuffled order.
            let mut acks: Vec<usize> = events.iter().enumerate().flat_map(|(i, &n)| std::iter::repeat_n(i, n as usize)).collect();
            let mut state = seed | 1;
            for i in (1..acks.len()).rev() {
                state ^= state << 13;
                state ^= state >> 7;
                state ^= state << 17;
                acks.swap(i, (state % (i as u64 + 1)) as usize);
            }
            let mut left = events.clone();
            let mut last = Checkpoint::TrimHorizon;
            for record in acks {
                w.ack(tickets[record]);
                left[record] -= 1;
                if let Some(checkpoint) = w.advance() {
                    let at: usize = checkpoint.as_str().parse().unwrap();
                    proptest::prop_assert!(left[..at].iter().all(|&n| n == 0), "checkpoint {} ahead of {:?}", at, left);
                    last = checkpoint;
                }
            }
            if let Some(checkpoint) = w.advance() {
                last = checkpoint;
            }
            proptest::prop_assert_eq!(last, Checkpoint::at(events.len().to_string()));
        }
    }
}
