//! The stratified topology: gateways around `layers` layers of mixes.
//!
//! Node ids: gateways first (`0..gateways`), then the mixes layer by layer.
//! A route is entry gateway, one mix per layer chosen uniformly, exit
//! gateway — the exit being the recipient's gateway, where its mailbox is.

use aegis_proto::route::pick_per_layer;
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
pub struct Layout {
    gateways: usize,
    layers: usize,
    width: usize,
    /// Node ids of each mix layer, for the route chooser.
    mixes: Vec<Vec<u32>>,
}

impl Layout {
    /// The layout of `spec`.
    pub fn new(spec: &TopologySpec) -> Self {
        let mixes = (0..spec.layers)
            .map(|layer| {
                (0..spec.width)
                    .map(|index| (spec.gateways + layer * spec.width + index) as u32)
                    .collect()
            })
            .collect();
        Layout {
            gateways: spec.gateways,
            layers: spec.layers,
            width: spec.width,
            mixes,
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

    /// A fresh route from `entry` to `exit` gateway through one random mix
    /// per layer, chosen by the protocol's route chooser.
    pub fn route<R: Rng + ?Sized>(
        &self,
        rng: &mut R,
        entry: usize,
        exit: usize,
    ) -> [u32; MAX_ROUTE] {
        let mut route = [0u32; MAX_ROUTE];
        route[0] = entry as u32;
        // Scenarios are validated to have at least one mix per layer.
        let mixes =
            pick_per_layer(rng, self.mixes.iter().map(Vec::as_slice), None).unwrap_or_default();
        for (slot, mix) in route[1..].iter_mut().zip(mixes) {
            *slot = mix;
        }
        route[self.layers + 1] = exit as u32;
        route
    }
}

impl Layout {
    /// A node's loop, in the order `aegis_proto::Topology::loop_route`
    /// uses: from a mix, one random mix of every layer after its own, a
    /// random gateway, one random mix of every layer before its own, and the
    /// mix itself; from a gateway, one random mix of every layer and the
    /// gateway itself. Returns the route and its number of hops
    /// (`layers + 1`).
    pub fn loop_route<R: Rng + ?Sized>(
        &self,
        rng: &mut R,
        mix: usize,
    ) -> ([u32; MAX_ROUTE], usize) {
        let mut route = [0u32; MAX_ROUTE];
        let layer = match self.role(mix) {
            NodeRole::Mix(layer) => layer,
            NodeRole::Gateway => {
                let picks = pick_per_layer(rng, self.mixes.iter().map(Vec::as_slice), None)
                    .unwrap_or_default();
                for (hop, &m) in picks.iter().enumerate().take(self.layers) {
                    route[hop] = m;
                }
                route[self.layers] = mix as u32;
                return (route, self.layers + 1);
            }
        };
        let picks =
            pick_per_layer(rng, self.mixes.iter().map(Vec::as_slice), None).unwrap_or_default();
        let mut hops = 0;
        for l in layer + 1..self.layers {
            route[hops] = picks.get(l).copied().unwrap_or_default();
            hops += 1;
        }
        route[hops] = rng.random_range(0..self.gateways) as u32;
        hops += 1;
        for l in 0..layer {
            route[hops] = picks.get(l).copied().unwrap_or_default();
            hops += 1;
        }
        route[hops] = mix as u32;
        (route, hops + 1)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use rand::SeedableRng;

    #[test]
    fn routes_visit_one_mix_per_layer_between_gateways() {
        let t = Layout::new(&TopologySpec {
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
        // A loop from the middle layer: layer 2, a gateway, layer 0, itself.
        let mix = t.mix(1, 3);
        let (r, hops) = t.loop_route(&mut rng, mix);
        assert_eq!(hops, 4);
        assert_eq!(t.role(r[0] as usize), NodeRole::Mix(2));
        assert_eq!(t.role(r[1] as usize), NodeRole::Gateway);
        assert_eq!(t.role(r[2] as usize), NodeRole::Mix(0));
        assert_eq!(r[3] as usize, mix);
        // A gateway's loop: one mix of each layer in order, then itself.
        let (r, hops) = t.loop_route(&mut rng, 1);
        assert_eq!(hops, 4);
        for (layer, &node) in r[..3].iter().enumerate() {
            assert_eq!(t.role(node as usize), NodeRole::Mix(layer));
        }
        assert_eq!(r[3], 1);
    }
}
