//! Node loop cover: at the published rate λM the node sends a packet through
//! one mix of every layer and a gateway back to itself, and counts how many
//! return. The count is one reliability figure for the node as a whole,
//! never per peer.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use aegis_mix_packet::{Body, HopDelays, LoopId, NodeId, build_mailbox_packet};
use rand::{Rng as _, RngExt as _, SeedableRng as _};
use rand_distr::{Distribution as _, Exp};
use tokio::sync::watch;

use crate::egress::Egress;
use crate::state::Shared;
use crate::topology::{RouteError, Topology};

/// Loops in flight at most; the oldest are forgotten beyond this.
const MAX_IN_FLIGHT: usize = 10_000;
/// A loop not back within this time is counted lost.
const LOOP_TIMEOUT: Duration = Duration::from_secs(120);

/// Loop packets sent and not yet back.
#[derive(Default)]
pub struct LoopTracker {
    in_flight: Mutex<HashMap<LoopId, Duration>>,
}

impl LoopTracker {
    /// Remembers a loop sent at `now`, forgetting expired ones.
    pub fn sent(&self, id: LoopId, now: Duration) {
        let mut map = self.in_flight.lock().unwrap_or_else(|p| p.into_inner());
        if map.len() >= MAX_IN_FLIGHT {
            map.retain(|_, at| now.saturating_sub(*at) < LOOP_TIMEOUT);
        }
        if map.len() < MAX_IN_FLIGHT {
            map.insert(id, now);
        }
    }

    /// Whether `id` was in flight (it is forgotten now: a replayed loop
    /// does not count twice).
    pub fn returned(&self, id: &LoopId) -> bool {
        self.in_flight
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .remove(id)
            .is_some()
    }
}

/// The route of a loop: one mix per layer (other than this node where the
/// layer has others), a gateway, and this node last.
pub fn loop_route<R: rand::Rng + ?Sized>(
    rng: &mut R,
    shared: &Shared,
    topology: &Topology,
) -> Result<aegis_mix_packet::Route, RouteError> {
    let mut ids: Vec<NodeId> = Vec::with_capacity(shared.geometry.hops);
    let pick = |rng: &mut R, list: &[NodeId], what| -> Result<NodeId, RouteError> {
        let others: Vec<NodeId> = list.iter().copied().filter(|n| *n != shared.id).collect();
        let pool = if others.is_empty() {
            list.to_vec()
        } else {
            others
        };
        if pool.is_empty() {
            return Err(RouteError::Empty(what));
        }
        Ok(pool[rng.random_range(0..pool.len())])
    };
    for layer in &topology.layers {
        ids.push(pick(rng, layer, "a mix layer")?);
    }
    ids.push(pick(rng, &topology.gateways, "the gateway list")?);
    ids.push(shared.id);
    topology.hops(&shared.geometry, &ids[ids.len() - shared.geometry.hops..])
}

/// Sends loop cover until `shutdown` turns true.
pub async fn run(
    shared: Arc<Shared>,
    egress: Arc<Egress>,
    loops: Arc<LoopTracker>,
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
        let Ok(route) = loop_route(&mut rng, &shared, &topology) else {
            continue;
        };
        let delays = HopDelays::sample_exponential(
            &mut rng,
            shared.geometry.hops,
            topology.mean_hop_delay(),
        );
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
