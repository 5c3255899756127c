//! Retry back-off: the wait before each new attempt doubles from a first
//! value up to a cap, and a success starts it over.
//!
//! A link re-dialled after a failed write, a client reconnecting to its
//! gateway and the outbox's retransmissions all use it, so their behaviour
//! under failure is the same and is described once.

use std::time::Duration;

/// Doubling back-off between `first` and `cap`.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Backoff {
    first: Duration,
    cap: Duration,
    next: Duration,
}

impl Backoff {
    /// A back-off whose first wait is `first` and that never waits longer than `cap`.
    pub fn new(first: Duration, cap: Duration) -> Self {
        let first = first.min(cap);
        Backoff {
            first,
            cap,
            next: first,
        }
    }

    /// The wait before the next attempt; each call doubles the one after, up to the cap.
    pub fn next_delay(&mut self) -> Duration {
        let delay = self.next;
        self.next = self.next.saturating_mul(2).min(self.cap);
        delay
    }

    /// The wait the next call to [`Backoff::next_delay`] returns, without advancing.
    pub fn peek(&self) -> Duration {
        self.next
    }

    /// An attempt succeeded: the next failure waits `first` again.
    pub fn reset(&mut self) {
        self.next = self.first;
    }
}

/// The wait before the `attempt`-th try (counted from 1) of a doubling
/// back-off starting at `first`, at most `cap`: `first × 2^(attempt − 1)`.
/// The stateless form of [`Backoff`], for state machines that keep only an
/// attempt count.
pub fn nth_delay(first: Duration, cap: Duration, attempt: u32) -> Duration {
    let doublings = attempt.saturating_sub(1).min(32);
    first.saturating_mul(1u32 << doublings.min(31)).min(cap)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn waits_double_to_the_cap_and_start_over_after_a_success() {
        let ms = Duration::from_millis;
        let mut b = Backoff::new(ms(100), ms(1_000));
        let waits: Vec<_> = (0..6).map(|_| b.next_delay()).collect();
        assert_eq!(
            waits,
            [ms(100), ms(200), ms(400), ms(800), ms(1_000), ms(1_000)]
        );
        b.reset();
        assert_eq!(b.next_delay(), ms(100));
    }

    #[test]
    fn the_stateless_form_agrees_with_the_stateful_one() {
        let ms = Duration::from_millis;
        let mut b = Backoff::new(ms(30), ms(100_000));
        for attempt in 1..=40 {
            assert_eq!(nth_delay(ms(30), ms(100_000), attempt), b.next_delay());
        }
        assert_eq!(nth_delay(ms(30), ms(100), 0), ms(30));
        assert_eq!(nth_delay(Duration::MAX, Duration::MAX, 99), Duration::MAX);
    }
}
