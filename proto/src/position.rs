//! Where a node stands in the stratified topology, and the one rule every
//! hop follows: a packet moves one step around the cycle
//! `gateway → layer 1 → … → layer L → gateway`, never sideways or back.
//!
//! Client traffic only ever uses those link classes (a client's gateway
//! forwards to layer 1; the last layer delivers to a gateway), and node
//! loop cover is routed over the same cycle ([`Topology::loop_route`]), so
//! a hop can refuse everything else: a route that visits a mix twice, skips
//! a layer or enters the network at a mix is dropped at the first node that
//! sees it out of place.

use aegis_directory::constants::MIX_LAYERS;
use aegis_mix_packet::NodeId;

use crate::topology::Topology;

/// A node's place in one epoch's topology.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Position {
    /// A gateway: entry for its clients, exit for the last layer.
    Gateway,
    /// A mix in this layer (0-based).
    Layer(usize),
}

impl Position {
    /// The position packets come from.
    pub fn before(self) -> Position {
        match self {
            Position::Gateway => Position::Layer(MIX_LAYERS - 1),
            Position::Layer(0) => Position::Gateway,
            Position::Layer(i) => Position::Layer(i - 1),
        }
    }

    /// The position packets go to.
    pub fn after(self) -> Position {
        match self {
            Position::Layer(i) if i + 1 < MIX_LAYERS => Position::Layer(i + 1),
            Position::Layer(_) => Position::Gateway,
            Position::Gateway => Position::Layer(0),
        }
    }
}

/// Where a packet came from, as the receiving node knows it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Source {
    /// A client attached to this gateway.
    Client,
    /// Another node, authenticated on the link by this identity.
    Node(NodeId),
}

/// What the hop made of the packet.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Next {
    /// Forward to this node.
    Forward(NodeId),
    /// This node is the last hop.
    Final,
}

/// Why a packet is out of place.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum HopOrderError {
    /// This node is not in the epoch's topology.
    #[error("this node is not listed in the packet's epoch")]
    NotListed,
    /// The packet came from a node that is not just before this one.
    #[error("the packet came from out of order")]
    Source,
    /// The packet would go to a node that is not just after this one.
    #[error("the packet would go out of order")]
    Next,
}

impl Topology {
    /// Where `id` stands in this epoch, if listed.
    pub fn position(&self, id: &NodeId) -> Option<Position> {
        let node = self.node(id)?;
        Some(match node.layer {
            Some(layer) => Position::Layer(usize::from(layer)),
            None => Position::Gateway,
        })
    }

    /// Checks one hop at node `me`: the packet must come from the position
    /// before `me` (or from a client, at a gateway, and then go on into the
    /// network) and go to the position after it (or end here).
    pub fn check_hop(&self, me: &NodeId, source: Source, next: Next) -> Result<(), HopOrderError> {
        let here = self.position(me).ok_or(HopOrderError::NotListed)?;
        match source {
            Source::Client => {
                // Clients enter at their gateway and their packets go on.
                if here != Position::Gateway || next == Next::Final {
                    return Err(HopOrderError::Source);
                }
            }
            Source::Node(from) => {
                if self.position(&from) != Some(here.before()) {
                    return Err(HopOrderError::Source);
                }
            }
        }
        match next {
            Next::Final => Ok(()),
            Next::Forward(to) if self.position(&to) == Some(here.after()) => Ok(()),
            Next::Forward(_) => Err(HopOrderError::Next),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::testnet;
    use aegis_directory::Role;
    use aegis_mix_packet::Geometry;
    use rand::SeedableRng as _;

    const G: Geometry = Geometry::STANDARD;

    /// Two mixes per layer and two gateways.
    fn network() -> Topology {
        let mut rng = rand_chacha::ChaCha20Rng::seed_from_u64(7);
        let mut node = |role, i| testnet::node(&mut rng, role, 1, i, 1_000).descriptor(1);
        let mixes: [Vec<_>; MIX_LAYERS] =
            std::array::from_fn(|l| vec![node(Role::Mix, 2 * l), node(Role::Mix, 2 * l + 1)]);
        let gateways = vec![node(Role::Gateway, 6), node(Role::Gateway, 7)];
        let parameters = aegis_directory::NetworkParameters::standard(3_600_000);
        let mut rng = rand_chacha::ChaCha20Rng::seed_from_u64(8);
        Topology::new(testnet::consensus(&mut rng, 1, parameters, mixes, gateways))
    }

    /// Walks a route from `origin` (a client when `None`) and checks every
    /// hop as the nodes would.
    fn walk(
        topology: &Topology,
        origin: Option<NodeId>,
        hops: &[NodeId],
    ) -> Result<(), HopOrderError> {
        let mut source = origin.map_or(Source::Client, Source::Node);
        for (i, me) in hops.iter().enumerate() {
            let next = hops.get(i + 1).map_or(Next::Final, |n| Next::Forward(*n));
            topology.check_hop(me, source, next)?;
            source = Source::Node(*me);
        }
        Ok(())
    }

    #[test]
    fn client_routes_and_every_loop_route_keep_their_place() {
        let topology = network();
        let mut rng = rand_chacha::ChaCha20Rng::seed_from_u64(1);
        for _ in 0..50 {
            let entry = topology.random_gateway(&mut rng).unwrap();
            let exit = topology.random_gateway(&mut rng).unwrap();
            let route = topology.route(&mut rng, &G, entry, exit).unwrap();
            let ids: Vec<NodeId> = route.hops().iter().map(|h| h.node).collect();
            assert_eq!(walk(&topology, None, &ids), Ok(()));
        }
        for node in topology.nodes.keys() {
            for _ in 0..10 {
                let route = topology.loop_route(&mut rng, &G, *node).unwrap();
                let ids: Vec<NodeId> = route.hops().iter().map(|h| h.node).collect();
                assert_eq!(ids.last(), Some(node), "a loop ends where it began");
                assert_eq!(
                    walk(&topology, Some(*node), &ids),
                    Ok(()),
                    "loop of {node:?}"
                );
            }
        }
    }

    #[test]
    fn out_of_place_hops_are_refused() {
        let topology = network();
        let [l1, l2, l3] = [0, 1, 2].map(|i| topology.layers[i][0]);
        let gateway = topology.gateways[0];
        // A route that visits a layer-1 mix twice.
        assert_eq!(
            walk(&topology, None, &[gateway, l1, l2, l1, gateway]),
            Err(HopOrderError::Next)
        );
        // Skipping a layer.
        assert_eq!(
            walk(&topology, None, &[gateway, l1, l3, gateway]),
            Err(HopOrderError::Next)
        );
        // A client entering at a mix, or ending at its own gateway.
        assert_eq!(
            walk(&topology, None, &[l1, l2, l3, gateway]),
            Err(HopOrderError::Source)
        );
        assert_eq!(
            walk(&topology, None, &[gateway]),
            Err(HopOrderError::Source)
        );
        // A node sending sideways into its own layer's successor position.
        assert_eq!(
            topology.check_hop(&l2, Source::Node(l3), Next::Forward(l3)),
            Err(HopOrderError::Source)
        );
        assert_eq!(
            topology.check_hop(&NodeId([9; 32]), Source::Client, Next::Final),
            Err(HopOrderError::NotListed)
        );
    }
}
