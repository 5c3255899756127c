//! The virtual clock: a totally ordered queue of future events.

use std::cmp::Reverse;
use std::collections::BinaryHeap;
use std::time::Duration;

/// A min-queue of events by time. Events at the same instant come out in
/// the order they were scheduled, so a run never depends on heap internals.
#[derive(Debug)]
pub struct EventQueue<E> {
    heap: BinaryHeap<Reverse<(Duration, u64, E)>>,
    seq: u64,
    now: Duration,
    popped: u64,
}

impl<E: Ord> Default for EventQueue<E> {
    fn default() -> Self {
        Self::new()
    }
}

impl<E: Ord> EventQueue<E> {
    /// An empty queue at time zero.
    pub fn new() -> Self {
        EventQueue {
            heap: BinaryHeap::new(),
            seq: 0,
            now: Duration::ZERO,
            popped: 0,
        }
    }

    /// Schedules `event` at `at`; a time in the past is moved to now, since
    /// the clock never runs backwards.
    pub fn schedule(&mut self, at: Duration, event: E) {
        self.seq += 1;
        self.heap.push(Reverse((at.max(self.now), self.seq, event)));
    }

    /// The next event, advancing the clock to its time.
    pub fn pop(&mut self) -> Option<(Duration, E)> {
        let Reverse((at, _, event)) = self.heap.pop()?;
        self.now = at;
        self.popped += 1;
        Some((at, event))
    }

    /// The time of the next event, if any.
    pub fn peek_time(&self) -> Option<Duration> {
        self.heap.peek().map(|Reverse((at, _, _))| *at)
    }

    /// The current virtual time.
    pub fn now(&self) -> Duration {
        self.now
    }

    /// Events processed so far.
    pub fn processed(&self) -> u64 {
        self.popped
    }

    /// Events waiting.
    pub fn len(&self) -> usize {
        self.heap.len()
    }

    /// Whether nothing is scheduled.
    pub fn is_empty(&self) -> bool {
        self.heap.is_empty()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn events_come_out_by_time_then_by_scheduling_order() {
        let mut q = EventQueue::new();
        let ms = Duration::from_millis;
        q.schedule(ms(5), 'c');
        q.schedule(ms(1), 'b');
        q.schedule(ms(1), 'a');
        assert_eq!(q.pop(), Some((ms(1), 'b')));
        assert_eq!(q.pop(), Some((ms(1), 'a')));
        q.schedule(ms(0), 'z');
        assert_eq!(q.pop(), Some((ms(1), 'z')), "the past is clamped to now");
        assert_eq!(q.pop(), Some((ms(5), 'c')));
        assert_eq!(q.processed(), 4);
    }
}
