//! Node loop cover: at the published rate λM the node sends a packet through
//! one mix of every layer and a gateway back to itself, and counts how many
//! return. The count is one reliability figure for the node as a whole,
//! never per peer.

use std::sync::{Arc, Mutex};
use std::time::Duration;

use aegis_mix_packet::{Body, HopDelays, LoopId, build_mailbox_packet};
use aegis_proto::LoopTracker;
use aegis_proto::loop_cover::NODE_LOOP_TIMEOUT;
use rand::{Rng as _, SeedableRng as _};
use rand_distr::{Distribution as _, Exp};
use tokio::sync::watch;

use crate::egress::Egress;
use crate::state::Shared;

/// The node's loops in flight, shared by the cover task (which sends them)
/// and the crypto workers (which see them return).
pub struct Loops(Mutex<LoopTracker<LoopId>>);

impl Default for Loops {
    fn default() -> Self {
        Loops(Mutex::new(LoopTracker::new(NODE_LOOP_TIMEOUT)))
    }
}

impl Loops {
    fn lock(&self) -> std::sync::MutexGuard<'_, LoopTracker<LoopId>> {
        self.0.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Remembers a loop sent at `now`.
    pub fn sent(&self, id: LoopId, now: Duration) {
        self.lock().sent(id, now);
    }

    /// Whether `id` was in flight and is back in time (it is forgotten now:
    /// a replayed loop does not count twice).
    pub fn returned(&self, id: &LoopId, now: Duration) -> bool {
        self.lock().returned(id, now).is_some()
    }
}

/// Sends loop cover until `shutdown` turns true.
pub async fn run(
    shared: Arc<Shared>,
    egress: Arc<Egress>,
    loops: Arc<Loops>,
    mut shutdown: watch::Receiver<bool>,
) {
    let mut rng = rand::rngs::StdRng::from_rng(&mut rand::rng());
    loop {
        let topology = shared.epoch().and_then(|e| shared.topologies().get(e));
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
        if topology.node(&shared.id).is_none() {
            continue;
        }
        let Ok(route) = topology.loop_route(&mut rng, &shared.geometry, shared.id) else {
            continue;
        };
        let delays =
            HopDelays::sample_exponential(&mut rng, route.hops().len(), topology.mean_hop_delay());
        let mut id = [0u8; aegis_mix_packet::constants::ID_LEN];
        rng.fill_bytes(&mut id);
        let id = LoopId(id);
        let Ok(packet) = build_mailbox_packet(
            &mut rng,
            &shared.geometry,
            topology.epoch,
            &route,
            &delays,
            shared.loop_mailbox,
            &shared.loop_public,
            &Body::Loop(id),
        ) else {
            continue;
        };
        let Ok(frame) = packet.to_frame(&shared.geometry) else {
            continue;
        };
        loops.sent(id, shared.started.elapsed());
        shared.metrics.cover_sent.inc();
        egress.send(packet.first_hop, frame);
    }
}
