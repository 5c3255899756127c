//! Node loop cover: at the published rate λM the node sends a packet through
//! one mix of every layer and a gateway back to itself, and counts how many
//! return. The count is one reliability figure for the node as a whole,
//! never per peer. A loop not back by a deadline set from the published
//! delays counts as lost, and the loss feeds a [`LossAlarm`]: loss far above
//! the node's long-run loss is what an attacker who holds back this node's
//! input (an n−1 attack) causes, and it is raised as a metric and a warning.

use std::sync::{Arc, Mutex};
use std::time::Duration;

use aegis_mix_packet::{Body, HopDelays, LoopId, build_mailbox_packet};
use aegis_proto::loop_alarm::{NODE_LINK_SLACK, loop_deadline};
use aegis_proto::loop_cover::NODE_LOOP_TIMEOUT;
use aegis_proto::{AlarmChange, LoopTracker, LossAlarm, LossAlarmConfig};
use rand::{Rng as _, SeedableRng as _};
use rand_distr::{Distribution as _, Exp};
use tokio::sync::watch;

use crate::egress::Egress;
use crate::metrics::NodeMetrics;
use crate::state::{Clock, Directory, LoopKeys, Me};

/// The node's loops in flight, shared by the cover task (which sends them
/// and judges the overdue ones) and the crypto workers (which see them
/// return).
pub struct Loops(Mutex<LoopState>);

struct LoopState {
    tracker: LoopTracker<LoopId>,
    alarm: LossAlarm,
    /// Loops back in time since the alarm last saw them.
    returned: usize,
}

impl Default for Loops {
    fn default() -> Self {
        Loops::new(LossAlarmConfig::default())
    }
}

impl Loops {
    /// No loops yet, judged by `alarm`.
    pub fn new(alarm: LossAlarmConfig) -> Self {
        Loops(Mutex::new(LoopState {
            tracker: LoopTracker::new(NODE_LOOP_TIMEOUT),
            alarm: LossAlarm::new(alarm),
            returned: 0,
        }))
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, LoopState> {
        self.0.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Remembers a loop sent at `now`.
    pub fn sent(&self, id: LoopId, now: Duration) {
        self.lock().tracker.sent(id, now);
    }

    /// Whether `id` was in flight and is back in time (it is forgotten now:
    /// a replayed loop does not count twice).
    pub fn returned(&self, id: &LoopId, now: Duration) -> bool {
        let mut state = self.lock();
        let back = state.tracker.returned(id, now).is_some();
        if back {
            state.returned += 1;
        }
        back
    }

    /// Judges the loops resolved since the last call: those back in time,
    /// then those past `deadline` at `now` (counted lost). Returns how many
    /// were lost and the alarm's change, if any.
    pub fn judge(&self, now: Duration, deadline: Duration) -> (usize, Option<AlarmChange>) {
        let mut state = self.lock();
        state.tracker.set_timeout(deadline);
        let back = std::mem::take(&mut state.returned);
        let mut change = state.alarm.observe_many(false, back);
        let lost = state.tracker.expire(now);
        if let Some(c) = state.alarm.observe_many(true, lost) {
            change = Some(c);
        }
        (lost, change)
    }

    /// Whether the alarm is raised.
    pub fn alarm_raised(&self) -> bool {
        self.lock().alarm.raised()
    }
}

/// Counts what [`Loops::judge`] found and says so when the alarm changes.
fn report(metrics: &NodeMetrics, lost: usize, change: Option<AlarmChange>) {
    metrics.cover_lost.inc_by(lost as u64);
    match change {
        Some(AlarmChange::Raised {
            lost,
            window,
            baseline,
        }) => {
            metrics.loop_alarm.set(1);
            metrics.loop_alarms.inc();
            tracing::warn!(
                lost,
                window,
                baseline = format!("{baseline:.3}"),
                "loop cover loss far above normal: this node's input may be held back (n-1 attack), or its links are failing"
            );
        }
        Some(AlarmChange::Cleared) => {
            metrics.loop_alarm.set(0);
            tracing::info!("loop cover loss back to normal");
        }
        None => {}
    }
}

/// What the loop cover task reads.
pub struct CoverStage {
    /// Who the node is (loops start and end here).
    pub me: Me,
    /// The consensus: the rate λM and the routes.
    pub directory: Arc<Directory>,
    /// The keys loops are sealed to.
    pub keys: Arc<LoopKeys>,
    /// Where loops sent and lost are counted.
    pub metrics: Arc<NodeMetrics>,
    /// The node's monotonic time.
    pub clock: Clock,
}

/// Sends loop cover until `shutdown` turns true.
pub async fn run(
    stage: CoverStage,
    egress: Arc<Egress>,
    loops: Arc<Loops>,
    mut shutdown: watch::Receiver<bool>,
) {
    let CoverStage {
        me,
        directory,
        keys,
        metrics,
        clock,
    } = stage;
    let mut rng = rand::rngs::StdRng::from_rng(&mut rand::rng());
    loop {
        let topology = directory.current();
        let rate = topology
            .as_ref()
            .map(|t| t.parameters.lambda_m)
            .unwrap_or(1.0);
        let wait = Exp::new(rate)
            .map(|d| Duration::from_secs_f64(d.sample(&mut rng)))
            .unwrap_or(Duration::from_secs(1));
        tokio::select! {
            _ = shutdown.changed() => return,
            _ = tokio::time::sleep(wait) => {}
        }
        let Some(topology) = topology else { continue };
        let deadline = loop_deadline(
            topology.layers.len() + 1,
            topology.mean_hop_delay(),
            NODE_LINK_SLACK,
            NODE_LOOP_TIMEOUT,
        );
        let (lost, change) = loops.judge(clock.now(), deadline);
        report(&metrics, lost, change);
        if topology.node(&me.id).is_none() {
            continue;
        }
        let Ok(route) = topology.loop_route(&mut rng, &me.geometry, me.id) else {
            continue;
        };
        let delays =
            HopDelays::sample_exponential(&mut rng, route.hops().len(), topology.mean_hop_delay());
        let mut id = [0u8; aegis_mix_packet::constants::ID_LEN];
        rng.fill_bytes(&mut id);
        let id = LoopId(id);
        let Ok(packet) = build_mailbox_packet(
            &mut rng,
            &me.geometry,
            &route,
            &delays,
            keys.mailbox,
            &keys.public,
            &Body::Loop(id),
        ) else {
            continue;
        };
        let Ok(frame) = packet.to_frame(&me.geometry) else {
            continue;
        };
        loops.sent(id, clock.now());
        metrics.cover_sent.inc();
        egress.send(packet.first_hop, frame);
    }
}
