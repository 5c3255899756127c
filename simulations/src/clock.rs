//! The virtual clock: a totally ordered queue of future events.

use std::cmp::Reverse;
use std::collections::BinaryHeap;
use std::time::Duration;

/// A min-queue of events by time. Events at the same instant come out in
/// the order they were scheduled, so a run never depends on heap internals.
///
/// Two heaps share one order: `schedule` puts an event in the near heap,
/// `schedule_far` in the far one. The far heap is for the many events a
/// large population keeps pending (one per client), the near one for the
/// packets in flight: most events then go through a small heap that stays
/// in cache, and the order of events is the same as with one heap.
#[derive(Debug)]
pub struct EventQueue<E> {
    near: BinaryHeap<Reverse<(Duration, u64, E)>>,
    far: BinaryHeap<Reverse<(Duration, u64, E)>>,
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
            near: BinaryHeap::new(),
            far: BinaryHeap::new(),
            seq: 0,
            now: Duration::ZERO,
            popped: 0,
        }
    }

    /// Schedules `event` at `at`; a time in the past is moved to now, since
    /// the clock never runs backwards.
    pub fn schedule(&mut self, at: Duration, event: E) {
        self.seq += 1;
        self.near.push(Reverse((at.max(self.now), self.seq, event)));
    }

    /// Schedules `event` at `at` in the far heap (same order as `schedule`).
    pub fn schedule_far(&mut self, at: Duration, event: E) {
        self.seq += 1;
        self.far.push(Reverse((at.max(self.now), self.seq, event)));
    }

    /// Which heap holds the next event: true for the far one.
    fn next_is_far(&self) -> Option<bool> {
        match (self.near.peek(), self.far.peek()) {
            (None, None) => None,
            (Some(_), None) => Some(false),
            (None, Some(_)) => Some(true),
            (Some(Reverse((a, sa, _))), Some(Reverse((b, sb, _)))) => Some((b, sb) < (a, sa)),
        }
    }

    /// The next event, advancing the clock to its time.
    pub fn pop(&mut self) -> Option<(Duration, E)> {
        let heap = if self.next_is_far()? {
            &mut self.far
        } else {
            &mut self.near
        };
        let Reverse((at, _, event)) = heap.pop()?;
        self.now = at;
        self.popped += 1;
        Some((at, event))
    }

    /// The time of the next event, if any.
    pub fn peek_time(&self) -> Option<Duration> {
        let heap = if self.next_is_far()? {
            &self.far
        } else {
            &self.near
        };
        heap.peek().map(|Reverse((at, _, _))| *at)
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
        self.near.len() + self.far.len()
    }

    /// Whether nothing is scheduled.
    pub fn is_empty(&self) -> bool {
        self.near.is_empty() && self.far.is_empty()
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

    #[test]
    fn the_far_heap_shares_the_order() {
        let mut q = EventQueue::new();
        let ms = Duration::from_millis;
        q.schedule_far(ms(2), 'd');
        q.schedule(ms(2), 'e');
        q.schedule_far(ms(1), 'a');
        q.schedule(ms(1), 'b');
        q.schedule(ms(3), 'f');
        assert_eq!(q.len(), 5);
        let order: Vec<char> = std::iter::from_fn(|| q.pop().map(|(_, e)| e)).collect();
        assert_eq!(order, ['a', 'b', 'd', 'e', 'f']);
        assert!(q.is_empty());
    }
}
