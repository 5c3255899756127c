//! The mixing stage: a tokio task owning the consensus's mixing strategy
//! (a sans-IO [`Mixer`]), fed by the crypto workers and releasing packets to
//! the egress queues when they are due.

use std::sync::Arc;
use std::time::Duration;

use aegis_directory::MixingStrategy;
use aegis_mix_packet::{Frame, Geometry, NodeId};
use rand::SeedableRng as _;
use tokio::sync::{mpsc, watch};

use crate::egress::Egress;
use crate::metrics::{DropReason, NodeMetrics};
use crate::state::{Clock, Directory};
use aegis_proto::Mixer;

/// A processed packet waiting to be mixed.
#[derive(Debug)]
pub struct MixItem {
    /// Where it goes.
    pub next_hop: NodeId,
    /// The sender-chosen delay for this hop (capped).
    pub delay: Duration,
    /// The packet for the next hop.
    pub packet: Vec<u8>,
}

/// What the mixing stage reads.
pub struct MixStage {
    /// The packet geometry frames are encoded in.
    pub geometry: Geometry,
    /// Packets the pool holds at most.
    pub capacity: usize,
    /// The consensus, which names the mixing strategy.
    pub directory: Arc<Directory>,
    /// Where drops and the pool size are counted.
    pub metrics: Arc<NodeMetrics>,
    /// The node's monotonic time.
    pub clock: Clock,
}

/// Runs the mixing stage until the input closes or `shutdown` turns true.
pub async fn run(
    stage: MixStage,
    mut input: mpsc::Receiver<Vec<MixItem>>,
    egress: Arc<Egress>,
    mut shutdown: watch::Receiver<bool>,
) {
    let MixStage {
        geometry,
        capacity,
        directory,
        metrics,
        clock,
    } = stage;
    let mut rng = rand::rngs::StdRng::from_rng(&mut rand::rng());
    let mut config = MixingStrategy::Poisson { mean_delay_ms: 0.0 };
    let now = || clock.now();
    let mut mixer: Mixer<MixItem> = Mixer::new(&config, capacity, now());
    let mut due = Vec::new();
    loop {
        // The consensus says which strategy runs; a change takes effect
        // once the current pool has drained.
        if let Some(latest) = directory.topologies().latest() {
            let wanted = latest.parameters.mixing;
            if wanted != config && mixer.is_empty() {
                config = wanted;
                mixer = Mixer::new(&config, capacity, now());
            }
        }
        let sleep = match mixer.next_deadline() {
            Some(deadline) => deadline.saturating_sub(now()),
            None => Duration::from_secs(1),
        };
        tokio::select! {
            _ = shutdown.changed() => return,
            items = input.recv() => {
                let Some(items) = items else { return };
                let arrived = now();
                for item in items {
                    let delay = item.delay;
                    if mixer.push(arrived, delay, item).is_err() {
                        metrics.count_drop(DropReason::mix_full);
                    }
                }
            }
            _ = tokio::time::sleep(sleep) => {}
        }
        mixer.poll(now(), &mut rng, &mut due);
        for item in due.drain(..) {
            match Frame::encode(&geometry, &item.packet) {
                Ok(frame) => egress.send(item.next_hop, frame),
                Err(_) => metrics.count_drop(DropReason::bad_packet),
            }
        }
        metrics.mix_pool.set(mixer.len() as i64);
    }
}
