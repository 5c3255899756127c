//! When a slot's packet leaves.
//!
//! The traffic shaper draws the slots; what the client does between a slot
//! and the frame's write must not depend on what the frame is. Frames are
//! built ahead (`aegis_proto::Endpoint::prepare`) and store writes happen on
//! the pull grid, so taking a slot's frame is the same short code for every
//! kind — but "the same code" still leaves a few microseconds that follow
//! what the processor did before the slot (a fragment's two Sphinx builds
//! against a cover packet's one), enough for a statistical test inside the
//! process to tell kinds apart (`docs/benchmarks.md`, "Emission timing by
//! packet kind").
//!
//! So the frame is released at a fixed offset after the slot: the driver
//! takes it, then waits until [`RELEASE_HOLD`] after the slot began, and
//! only then writes it. Whatever the frame is, it leaves at slot +
//! [`RELEASE_HOLD`] (to the resolution of the clock), unless taking it took
//! longer than the hold; such overruns are counted
//! (`NetworkStats::release_overruns`), since they are what could still
//! tell kinds apart. The wait spins rather than sleeps: a sleep's wake-up
//! is tens of microseconds coarse, a spin ends within the clock's
//! resolution. At a client's rates (some 14 slots a second) the hold costs
//! about 0.14 % of a core.

use std::time::{Duration, Instant};

/// How long after its slot began a frame is released. Taking a prepared
/// frame takes 14–21 µs at the 90th percentile with the store under write
/// load (`client/benches/emission.rs`), so the hold leaves a margin of
/// five times that for preemption.
pub const RELEASE_HOLD: Duration = Duration::from_micros(100);

/// Waits until `hold` after `slot`; `false` if that moment had already
/// passed (an overrun: the release came late, by however long the work
/// took).
pub fn release_at(slot: Instant, hold: Duration) -> bool {
    let deadline = slot + hold;
    if Instant::now() > deadline {
        return false;
    }
    while Instant::now() < deadline {
        std::hint::spin_loop();
    }
    true
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_release_comes_no_sooner_than_the_hold() {
        let slot = Instant::now();
        assert!(release_at(slot, Duration::from_micros(200)));
        assert!(slot.elapsed() >= Duration::from_micros(200));
    }

    #[test]
    fn a_release_whose_moment_passed_is_an_overrun_and_does_not_wait() {
        let slot = Instant::now();
        std::thread::sleep(Duration::from_millis(2));
        let before = Instant::now();
        assert!(!release_at(slot, Duration::from_micros(100)));
        // It returned at once rather than waiting out any hold.
        assert!(before.elapsed() < Duration::from_millis(50));
    }
}
