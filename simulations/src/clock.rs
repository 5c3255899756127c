//! The virtual clock: a totally ordered queue of future events.

use std::cmp::Reverse;
use std::collections::BinaryHeap;
use std::time::Duration;

/// A min-queue of events by time. Events at the same instant come out in
/// the order they were scheduled, so a run never depends on heap internals.
///
/// Two lanes share one order: `schedule` puts an event in the near lane, a
/// binary heap, and `schedule_far` in the far lane, a calendar of time
/// buckets. The far lane is for the many events a large population keeps
/// pending (one per client), the near one for the packets in flight: the
/// heap stays small and in cache, the calendar costs O(1) per event
/// however many clients wait, and events come out in the same order as
/// from one heap.
#[derive(Debug)]
pub struct EventQueue<E> {
    near: BinaryHeap<Reverse<(Duration, u64, E)>>,
    far: Calendar<E>,
    seq: u64,
    now: Duration,
    popped: u64,
}

/// Width of a calendar bucket.
const BUCKET: Duration = Duration::from_millis(32);
/// Buckets in the calendar's ring (about 17 minutes ahead, past most cover
/// streams' gaps); later events wait in an overflow heap until their bucket
/// comes into range.
const BUCKETS: usize = 32_768;

/// A calendar queue: events in buckets of `BUCKET` by time; the current
/// bucket is sorted when it is reached and popped from its end.
#[derive(Debug)]
struct Calendar<E> {
    ring: Vec<Vec<(Duration, u64, E)>>,
    /// Absolute index of the current bucket (`ring[cursor % BUCKETS]`).
    cursor: u64,
    /// Whether the current bucket is sorted (latest first).
    sorted: bool,
    /// Events in the ring.
    in_ring: usize,
    overflow: BinaryHeap<Reverse<(Duration, u64, E)>>,
}

fn bucket_of(at: Duration) -> u64 {
    (at.as_nanos() / BUCKET.as_nanos()) as u64
}

impl<E: Ord> Calendar<E> {
    fn new() -> Self {
        Calendar {
            ring: (0..BUCKETS).map(|_| Vec::new()).collect(),
            cursor: 0,
            sorted: false,
            in_ring: 0,
            overflow: BinaryHeap::new(),
        }
    }

    fn len(&self) -> usize {
        self.in_ring + self.overflow.len()
    }

    fn slot(b: u64) -> usize {
        (b % BUCKETS as u64) as usize
    }

    fn push(&mut self, item: (Duration, u64, E)) {
        let b = bucket_of(item.0).max(self.cursor);
        if b >= self.cursor + BUCKETS as u64 {
            self.overflow.push(Reverse(item));
            return;
        }
        let bucket = &mut self.ring[Self::slot(b)];
        if b == self.cursor && self.sorted {
            // Keep the current bucket sorted, latest first.
            let at = bucket.partition_point(|x| (x.0, x.1) > (item.0, item.1));
            bucket.insert(at, item);
        } else {
            bucket.push(item);
        }
        self.in_ring += 1;
    }

    /// Moves the cursor to the first non-empty bucket and sorts it; the
    /// earliest event is then the current bucket's last.
    fn settle(&mut self) -> Option<&(Duration, u64, E)> {
        if self.len() == 0 {
            return None;
        }
        while self.ring[Self::slot(self.cursor)].is_empty() {
            // A spent bucket gives its memory back: the ring would otherwise
            // keep every bucket's largest size, many times what is pending.
            self.ring[Self::slot(self.cursor)] = Vec::new();
            if self.in_ring == 0 {
                // Nothing in range: jump to the overflow's first bucket.
                let Reverse(next) = self.overflow.peek()?;
                self.cursor = self.cursor.max(bucket_of(next.0));
            } else {
                self.cursor += 1;
            }
            self.sorted = false;
            let horizon = self.cursor + BUCKETS as u64;
            while let Some(Reverse(next)) = self.overflow.peek() {
                if bucket_of(next.0) >= horizon {
                    break;
                }
                let Some(Reverse(item)) = self.overflow.pop() else {
                    break;
                };
                let b = bucket_of(item.0).max(self.cursor);
                self.ring[Self::slot(b)].push(item);
                self.in_ring += 1;
            }
        }
        let bucket = &mut self.ring[Self::slot(self.cursor)];
        if !self.sorted {
            bucket.sort_unstable_by_key(|x| std::cmp::Reverse((x.0, x.1)));
            self.sorted = true;
        }
        bucket.last()
    }

    fn pop(&mut self) -> Option<(Duration, u64, E)> {
        self.settle()?;
        self.in_ring -= 1;
        self.ring[Self::slot(self.cursor)].pop()
    }
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
            far: Calendar::new(),
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
        self.far.push((at.max(self.now), self.seq, event));
    }

    /// The next event's time and whether it is in the far lane.
    fn next(&mut self) -> Option<(Duration, bool)> {
        let far = self.far.settle().map(|x| (x.0, x.1));
        let near = self.near.peek().map(|Reverse(x)| (x.0, x.1));
        match (near, far) {
            (None, None) => None,
            (Some((a, _)), None) => Some((a, false)),
            (None, Some((b, _))) => Some((b, true)),
            (Some(a), Some(b)) => Some(if b < a { (b.0, true) } else { (a.0, false) }),
        }
    }

    /// The next event, advancing the clock to its time.
    pub fn pop(&mut self) -> Option<(Duration, E)> {
        let (_, far) = self.next()?;
        let (at, event) = if far {
            let (at, _, event) = self.far.pop()?;
            (at, event)
        } else {
            let Reverse((at, _, event)) = self.near.pop()?;
            (at, event)
        };
        self.now = at;
        self.popped += 1;
        Some((at, event))
    }

    /// The time of the next event, if any.
    pub fn peek_time(&mut self) -> Option<Duration> {
        self.next().map(|(at, _)| at)
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
        self.near.is_empty() && self.far.len() == 0
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
    fn the_far_lane_keeps_one_heaps_order_over_random_schedules() {
        use rand::{RngExt, SeedableRng};
        let mut rng = rand_chacha::ChaCha8Rng::seed_from_u64(3);
        let mut q = EventQueue::new();
        let mut reference = BinaryHeap::new();
        let mut seq = 0u64;
        for step in 0..200_000u64 {
            if rng.random_range(0..3) > 0 || q.is_empty() {
                // Anything from now to 40 minutes ahead: past the ring's 17 too.
                let ahead = Duration::from_micros(rng.random_range(0..2_400_000_000));
                let at = q.now() + ahead;
                seq += 1;
                if rng.random::<bool>() {
                    q.schedule_far(at, step);
                } else {
                    q.schedule(at, step);
                }
                reference.push(Reverse((at, seq, step)));
            } else {
                let Reverse((at, _, want)) = reference.pop().unwrap();
                assert_eq!(q.peek_time(), Some(at));
                assert_eq!(q.pop(), Some((at, want)));
            }
        }
        while let Some(Reverse((at, _, want))) = reference.pop() {
            assert_eq!(q.pop(), Some((at, want)));
        }
        assert!(q.is_empty());
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
