//! The stratified topology: gateways around `layers` layers of mixes.
//!
//! Node ids: gateways first (`0..gateways`), then the mixes layer by layer.
//! A route is entry gateway, one mix per layer chosen uniformly, exit
//! gateway — the exit being the recipient's gateway, where its mailbox is.

use rand::{Rng, RngExt};

use crate::scenario::TopologySpec;

/// Longest route the simulator builds (Sphinx's maximum path length).
pub const MAX_ROUTE: usize = aegis_mix_packet::constants::MAX_HOPS;

/// What a node is.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum NodeRole {
    /// Entry and exit point; holds its clients' mailboxes.
    Gateway,
    /// A mix in the given layer (0-based).
    Mix(usize),
}

/// Node layout and routing.
#[derive(Clone, Debug)]
pub struct Topology {
    gateways: usize,
    layers: usize,
    width: usize,
}

impl Topology {
    /// The layout of `spec`.
    pub fn new(spec: &TopologySpec) -> Self {
        Topology {
            gateways: spec.gateways,
            layers: spec.layers,
            width: spec.width,
        }
    }

    /// Total nodes.
    pub fn nodes(&self) -> usize {
        self.gateways + self.layers * self.width
    }

    /// Hops of every route: two gateways and one mix per layer.
    pub fn route_len(&self) -> usize {
        self.layers + 2
    }

    /// Role of node `id`.
    pub fn role(&self, id: usize) -> NodeRole {
        if id < self.gateways {
            NodeRole::Gateway
        } else {
            NodeRole::Mix((id - self.gateways) / self.width)
        }
    }

    /// Node id of mix `index` in `layer`.
    pub fn mix(&self, layer: usize, index: usize) -> usize {
        self.gateways + layer * self.width + index
    }

    /// The gateway client `client` is attached to.
    pub fn gateway_of(&self, client: usize) -> usize {
        client % self.gateways
    }

    /// Number of gateways.
    pub fn gateways(&self) -> usize {
        self.gateways
    }

    /// A fresh route from `entry` to `exit` gateway through random mixes.
    pub fn route<R: Rng + ?Sized>(
        &self,
        rng: &mut R,
        entry: usize,
        exit: usize,
    ) -> [u32; MAX_ROUTE] {
        let mut route = [0u32; MAX_ROUTE];
        route[0] = entry as u32;
        for layer in 0..self.layers {
            route[layer + 1] = self.mix(layer, rng.random_range(0..self.width)) as u32;
        }
        route[self.layers + 1] = exit as u32;
        route
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use rand::SeedableRng;

    #[test]
    fn routes_visit_one_mix_per_layer_between_gateways() {
        let t = Topology::new(&TopologySpec {
            layers: 3,
            width: 4,
            gateways: 2,
            link_latency_ms: 1.0,
            link_jitter_ms: 0.0,
        });
        assert_eq!(t.nodes(), 14);
        let mut rng = rand_chacha::ChaCha8Rng::seed_from_u64(1);
        for _ in 0..100 {
            let r = t.route(&mut rng, 1, 0);
            assert_eq!((r[0], r[4]), (1, 0));
            for layer in 0..3 {
                assert_eq!(t.role(r[layer + 1] as usize), NodeRole::Mix(layer));
            }
        }
    }
}
