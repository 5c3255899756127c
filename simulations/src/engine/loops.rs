//! The nodes' loop cover (mixes and gateways), judged by the node's own
//! loss alarm, and the n−1 attack it is meant to reveal.

use super::*;

/// A mix's loops in flight and its loss alarm: the node's own bookkeeping.
pub(super) struct MixLoops {
    pub(super) tracker: LoopTracker<u64>,
    pub(super) alarm: LossAlarm,
    pub(super) returned: usize,
    pub(super) next_id: u64,
}

impl MixLoops {
    /// A mix's loop bookkeeping at start: nothing in flight, no alarm.
    pub(super) fn new(deadline: Duration) -> Self {
        MixLoops {
            tracker: LoopTracker::new(deadline),
            alarm: LossAlarm::new(LossAlarmConfig::default()),
            returned: 0,
            next_id: 0,
        }
    }
}

/// The n−1 attack's target and what came of it.
pub(super) struct Attack {
    pub(super) mix: usize,
    pub(super) start: Duration,
    pub(super) detected: Option<Duration>,
    pub(super) false_alarms: u32,
    pub(super) collateral_alarms: u32,
    pub(super) held_back: u64,
}

impl Sim<'_> {
    /// A node judges the loops resolved since its last loop (as
    /// `aegis-node` does before sending each one), then sends the next.
    pub(super) fn mix_loop(&mut self, now: Duration, mix: usize) {
        if self.is_down(mix) {
            // A stopped mix sends nothing; it resumes when it is back.
            self.next_loop(now, mix);
            return;
        }
        self.judge_loops(now, mix);
        let (route, hops) = self.topo.loop_route(&mut self.rng, mix);
        let delays = self.hop_delays(hops);
        let Some(loops) = self.loops.get_mut(mix).and_then(Option::as_mut) else {
            return;
        };
        let id = loops.next_id;
        loops.next_id += 1;
        loops.tracker.sent(id, now);
        self.bw.node_loops_sent += 1;
        let packet = Packet {
            kind: Kind::NodeLoop {
                origin: mix as u32,
                id,
            },
            sender: u32::MAX,
            route,
            delays,
            hop: 0,
            hops: hops as u8,
            view: View::Untracked,
            mixes_all_corrupt: false,
        };
        let pid = self.store(packet);
        if !self.link_drops(pid) {
            let arrive = now + self.link_delay();
            self.queue.schedule(
                arrive,
                Event::Arrive {
                    node: route[0],
                    packet: pid,
                },
            );
        }
        self.next_loop(now, mix);
    }

    fn next_loop(&mut self, now: Duration, mix: usize) {
        if let Some(gap) = self.loop_gap {
            let next = now + secs(gap.sample(&mut self.rng));
            self.queue.schedule(next, Event::MixLoop(mix as u32));
        }
    }

    /// The node's judgement: loops back since the last one count as kept,
    /// loops past the deadline as lost; an alarm on the attacked mix after
    /// the attack started is a detection, any other alarm is counted.
    pub(super) fn judge_loops(&mut self, now: Duration, mix: usize) {
        let Some(loops) = self.loops.get_mut(mix).and_then(Option::as_mut) else {
            return;
        };
        let back = std::mem::take(&mut loops.returned);
        let mut change = loops.alarm.observe_many(false, back);
        let lost = loops.tracker.expire(now);
        if let Some(c) = loops.alarm.observe_many(true, lost) {
            change = Some(c);
        }
        if !matches!(change, Some(AlarmChange::Raised { .. })) {
            return;
        }
        self.note_alarm(now, mix);
        let Some(attack) = self.attack.as_mut() else {
            return;
        };
        if now < attack.start {
            attack.false_alarms += 1;
        } else if mix == attack.mix {
            attack.detected.get_or_insert(now);
        } else {
            attack.collateral_alarms += 1;
        }
    }
}
