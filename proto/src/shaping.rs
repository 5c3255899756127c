//! Traffic shaping: when a client sends, independent of what it has to say.
//!
//! Loopix's client runs three Poisson streams: the payload stream (rate λP)
//! sends a real packet if one is queued and a loop cover packet otherwise;
//! the loop stream (λL) sends loop cover to the client itself; the drop
//! stream (λD) sends drop cover that the exit gateway discards. The
//! constant-rate alternative sends one real-or-loop packet per interval.
//!
//! The schedule is drawn from the RNG slot by slot whether or not anything is
//! queued, so an observer of the client's link sees the same process for an
//! idle client and a busy one; real fragments, acknowledgements and
//! retransmissions only take the place of cover in payload slots.

use std::collections::VecDeque;
use std::time::Duration;

use rand::Rng;
use rand_distr::{Distribution, Exp};

/// Slots further behind the current time than this are skipped rather than
/// sent in a burst (after the device slept, say).
pub const MAX_CATCH_UP: Duration = Duration::from_secs(1);

/// How a client schedules its packets; the rates are published in the consensus.
#[derive(Clone, Debug, PartialEq)]
pub enum ShapingConfig {
    /// Loopix's three Poisson streams; rates in packets per second (0 disables a stream).
    Poisson {
        /// λP: real-or-loop payload stream.
        payload_rate: f64,
        /// λL: loop cover stream.
        loop_rate: f64,
        /// λD: drop cover stream.
        drop_rate: f64,
    },
    /// One real-or-loop packet every `interval`.
    ConstantRate {
        /// Time between packets.
        interval: Duration,
    },
}

/// Which stream a slot belongs to.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Stream {
    /// Real-or-loop payload stream (λP, or the constant-rate stream).
    Payload,
    /// Loop cover stream (λL).
    Loop,
    /// Drop cover stream (λD).
    Drop,
}

/// What fills a slot.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Slot<Q> {
    /// A queued real item: a fragment, an acknowledgement or a retransmission.
    Real(Q),
    /// Loop cover: a packet to the client's own mailbox.
    Loop,
    /// Drop cover: a packet the exit gateway discards.
    Drop,
}

/// One packet to send at a scheduled time.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Emission<Q> {
    /// The slot's scheduled time.
    pub at: Duration,
    /// The stream it belongs to.
    pub stream: Stream,
    /// What to send.
    pub slot: Slot<Q>,
}

/// Counters of what the shaper did.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct ShaperStats {
    /// Real items sent in payload slots.
    pub real: u64,
    /// Loop cover packets (payload slots without a real item, and the loop stream).
    pub loops: u64,
    /// Drop cover packets.
    pub drops: u64,
    /// Slots skipped because the caller polled too late.
    pub skipped: u64,
}

#[derive(Debug)]
struct Timer {
    stream: Stream,
    next: Duration,
    gap: Gap,
}

#[derive(Debug)]
enum Gap {
    Exponential(Exp<f64>),
    Fixed(Duration),
}

impl Gap {
    fn sample<R: Rng + ?Sized>(&self, rng: &mut R) -> Duration {
        match self {
            Gap::Exponential(exp) => Duration::from_secs_f64(exp.sample(rng)),
            Gap::Fixed(d) => *d,
        }
    }
}

/// The client's send schedule, with the queue of real items waiting for a slot.
#[derive(Debug)]
pub struct TrafficShaper<Q> {
    timers: Vec<Timer>,
    queue: VecDeque<Q>,
    max_queue: usize,
    stats: ShaperStats,
}

impl<Q> TrafficShaper<Q> {
    /// A shaper whose streams start at `now`; at most `max_queue` real items wait.
    pub fn new<R: Rng + ?Sized>(
        config: &ShapingConfig,
        now: Duration,
        max_queue: usize,
        rng: &mut R,
    ) -> Self {
        let mut timers = Vec::new();
        let mut add = |stream, gap: Gap, rng: &mut R| {
            let next = now + gap.sample(rng);
            timers.push(Timer { stream, next, gap });
        };
        match *config {
            ShapingConfig::Poisson {
                payload_rate,
                loop_rate,
                drop_rate,
            } => {
                for (stream, rate) in [
                    (Stream::Payload, payload_rate),
                    (Stream::Loop, loop_rate),
                    (Stream::Drop, drop_rate),
                ] {
                    if let Ok(exp) = Exp::new(rate)
                        && rate > 0.0
                        && rate.is_finite()
                    {
                        add(stream, Gap::Exponential(exp), rng);
                    }
                }
            }
            ShapingConfig::ConstantRate { interval } => {
                let interval = interval.max(Duration::from_micros(1));
                add(Stream::Payload, Gap::Fixed(interval), rng);
            }
        }
        TrafficShaper {
            timers,
            queue: VecDeque::new(),
            max_queue,
            stats: ShaperStats::default(),
        }
    }

    /// Queues a real item for the next payload slot; hands it back if the queue is full.
    pub fn enqueue(&mut self, item: Q) -> Result<(), Q> {
        if self.queue.len() >= self.max_queue {
            return Err(item);
        }
        self.queue.push_back(item);
        Ok(())
    }

    /// Queues an item ahead of the others (acknowledgements: the sender is waiting).
    pub fn enqueue_front(&mut self, item: Q) -> Result<(), Q> {
        if self.queue.len() >= self.max_queue {
            return Err(item);
        }
        self.queue.push_front(item);
        Ok(())
    }

    /// Every slot due at or before `now`, in time order.
    pub fn poll<R: Rng + ?Sized>(&mut self, now: Duration, rng: &mut R) -> Vec<Emission<Q>> {
        let mut out = Vec::new();
        self.poll_into(now, rng, &mut out);
        out
    }

    /// [`TrafficShaper::poll`] into a buffer the caller keeps (no
    /// allocation while the buffer's capacity suffices).
    pub fn poll_into<R: Rng + ?Sized>(
        &mut self,
        now: Duration,
        rng: &mut R,
        out: &mut Vec<Emission<Q>>,
    ) {
        while let Some(timer) = self
            .timers
            .iter_mut()
            .filter(|t| t.next <= now)
            .min_by_key(|t| t.next)
        {
            let at = timer.next;
            let stream = timer.stream;
            timer.next = at + timer.gap.sample(rng);
            if now - at > MAX_CATCH_UP {
                self.stats.skipped += 1;
                continue;
            }
            let slot = match stream {
                Stream::Payload => match self.queue.pop_front() {
                    Some(item) => {
                        self.stats.real += 1;
                        Slot::Real(item)
                    }
                    None => {
                        self.stats.loops += 1;
                        Slot::Loop
                    }
                },
                Stream::Loop => {
                    self.stats.loops += 1;
                    Slot::Loop
                }
                Stream::Drop => {
                    self.stats.drops += 1;
                    Slot::Drop
                }
            };
            out.push(Emission { at, stream, slot });
        }
    }

    /// When the next slot is due; `None` if every stream is disabled.
    pub fn next_deadline(&self) -> Option<Duration> {
        self.timers.iter().map(|t| t.next).min()
    }

    /// Takes out every real item waiting for a slot, in order (to hand
    /// them to a shaper with a new schedule).
    pub fn drain_queued(&mut self) -> Vec<Q> {
        self.queue.drain(..).collect()
    }

    /// Real items waiting for a slot.
    pub fn queued(&self) -> usize {
        self.queue.len()
    }

    /// What the shaper has sent so far.
    pub fn stats(&self) -> &ShaperStats {
        &self.stats
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use rand::SeedableRng;
    use rand_chacha::ChaCha20Rng;

    const LOOPIX: ShapingConfig = ShapingConfig::Poisson {
        payload_rate: 50.0,
        loop_rate: 5.0,
        drop_rate: 5.0,
    };

    fn run(busy: bool, seed: u64, secs: u64) -> (Vec<(Duration, Stream)>, ShaperStats) {
        let mut rng = ChaCha20Rng::seed_from_u64(seed);
        let mut shaper = TrafficShaper::new(&LOOPIX, Duration::ZERO, 1_000_000, &mut rng);
        let mut times = vec![];
        let mut now = Duration::ZERO;
        let step = Duration::from_millis(10);
        while now < Duration::from_secs(secs) {
            if busy {
                for i in 0..3 {
                    let _ = shaper.enqueue(i);
                }
            }
            now += step;
            for e in shaper.poll(now, &mut rng) {
                assert!(e.at <= now && e.at + step > now, "emitted in its tick");
                times.push((e.at, e.stream));
            }
        }
        (times, shaper.stats().clone())
    }

    #[test]
    fn the_schedule_is_the_same_whether_or_not_the_client_has_something_to_say() {
        let (idle, idle_stats) = run(false, 9, 60);
        let (busy, busy_stats) = run(true, 9, 60);
        assert_eq!(idle, busy, "send times must not depend on the queue");
        assert_eq!(idle_stats.real, 0);
        assert!(busy_stats.real > 0);
        assert_eq!(
            idle_stats.real + idle_stats.loops,
            busy_stats.real + busy_stats.loops
        );
    }

    #[test]
    fn stream_rates_match_the_published_lambdas() {
        let (times, _) = run(false, 10, 200);
        let count = |s| times.iter().filter(|(_, st)| *st == s).count() as f64 / 200.0;
        // Poisson counts: s.d. of the rate estimate is sqrt(λ/200)
        assert!(
            (count(Stream::Payload) - 50.0).abs() < 2.0,
            "{}",
            count(Stream::Payload)
        );
        assert!(
            (count(Stream::Loop) - 5.0).abs() < 0.6,
            "{}",
            count(Stream::Loop)
        );
        assert!(
            (count(Stream::Drop) - 5.0).abs() < 0.6,
            "{}",
            count(Stream::Drop)
        );
        // inter-arrival gaps of the payload stream are exponential: P(gap > 2/λ) = e^-2
        let payload: Vec<_> = times
            .iter()
            .filter(|(_, s)| *s == Stream::Payload)
            .map(|(t, _)| *t)
            .collect();
        let long = payload
            .windows(2)
            .filter(|w| w[1] - w[0] > Duration::from_millis(40))
            .count() as f64;
        let frac = long / (payload.len() - 1) as f64;
        assert!((frac - (-2f64).exp()).abs() < 0.02, "{frac}");
    }

    #[test]
    fn constant_rate_sends_one_packet_per_interval_and_real_items_take_cover_slots() {
        let mut rng = ChaCha20Rng::seed_from_u64(11);
        let cfg = ShapingConfig::ConstantRate {
            interval: Duration::from_millis(100),
        };
        let mut shaper = TrafficShaper::new(&cfg, Duration::ZERO, 10, &mut rng);
        shaper.enqueue("a").unwrap();
        shaper.enqueue_front("ack").unwrap();
        let out = shaper.poll(Duration::from_millis(450), &mut rng);
        let ats: Vec<_> = out.iter().map(|e| e.at.as_millis()).collect();
        assert_eq!(ats, vec![100, 200, 300, 400]);
        let slots: Vec<_> = out.into_iter().map(|e| e.slot).collect();
        assert_eq!(
            slots,
            vec![Slot::Real("ack"), Slot::Real("a"), Slot::Loop, Slot::Loop]
        );
    }

    #[test]
    fn a_late_poll_skips_instead_of_bursting_and_a_full_queue_refuses() {
        let mut rng = ChaCha20Rng::seed_from_u64(12);
        let cfg = ShapingConfig::ConstantRate {
            interval: Duration::from_millis(100),
        };
        let mut shaper = TrafficShaper::new(&cfg, Duration::ZERO, 1, &mut rng);
        let out = shaper.poll(Duration::from_secs(60), &mut rng);
        assert!(out.len() <= 11, "{} packets in a burst", out.len());
        assert!(shaper.stats().skipped >= 589);
        shaper.enqueue(1).unwrap();
        assert_eq!(shaper.enqueue(2), Err(2));
    }
}
