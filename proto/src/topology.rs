//! The routing view of one verified consensus document: which nodes form
//! each layer, with which Sphinx keys, under which parameters, and the
//! routes through them. Nodes use it for their links and their own loop
//! cover, clients to build routes. Addresses stay the strings the
//! descriptors published; the link layer parses them.

use std::collections::HashMap;
use std::sync::Arc;

use aegis_directory::constants::MIX_LAYERS;
use aegis_directory::{NetworkParameters, Role, SignedConsensus, SignedDescriptor};
use aegis_mix_packet::kem::HybridPublic;
use aegis_mix_packet::{Geometry, Hop, NodeId, PacketError, Route, SphinxPublicKey};
use rand::Rng;

use crate::route::{EmptyLayer, pick_one, pick_per_layer};

/// A node as the consensus lists it.
#[derive(Debug, Clone)]
pub struct NodeEntry {
    /// Its identity (Ed25519 public key).
    pub id: NodeId,
    /// Where to reach it, as its descriptor published them.
    pub addresses: Vec<String>,
    /// Mix or gateway.
    pub role: Role,
    /// Mix layer (0-based), for mixes.
    pub layer: Option<u8>,
    /// Its published Sphinx keys by epoch.
    pub sphinx_keys: Vec<(u64, [u8; 32])>,
    /// Its published hybrid KEM keys by epoch (none in a Sphinx network).
    pub kem_keys: Vec<(u64, Arc<HybridPublic>)>,
}

impl NodeEntry {
    /// Its Sphinx public key for `epoch`, if published.
    pub fn sphinx_key(&self, epoch: u64) -> Option<SphinxPublicKey> {
        self.sphinx_keys
            .iter()
            .find(|(e, _)| *e == epoch)
            .map(|(_, k)| SphinxPublicKey::from(*k))
    }

    /// Its hybrid KEM key for `epoch`, if published.
    pub fn kem_key(&self, epoch: u64) -> Option<Arc<HybridPublic>> {
        self.kem_keys
            .iter()
            .find(|(e, _)| *e == epoch)
            .map(|(_, k)| Arc::clone(k))
    }

    /// The hop for a packet framed under `epoch`, with both of the node's
    /// keys for it (the hybrid one where published).
    pub fn hop(&self, epoch: u64) -> Option<Hop> {
        Some(Hop {
            kem_key: self.kem_key(epoch),
            ..Hop::sphinx(self.id, self.sphinx_key(epoch)?)
        })
    }
}

fn entry(descriptor: &SignedDescriptor, layer: Option<u8>) -> Option<NodeEntry> {
    let body = &descriptor.body;
    // The identity must be a valid Ed25519 key: links authenticate with it.
    ed25519_dalek::VerifyingKey::from_bytes(&body.identity).ok()?;
    Some(NodeEntry {
        id: NodeId(body.identity),
        addresses: body.addresses.clone(),
        role: body.role,
        layer,
        sphinx_keys: body.sphinx_keys.iter().map(|k| (k.epoch, k.key)).collect(),
        // Validated with the descriptor; a key that does not decode is left
        // out, and routes through the node fail for want of it.
        kem_keys: body
            .kem_keys
            .iter()
            .filter_map(|k| Some((k.epoch, Arc::new(HybridPublic::from_bytes(&k.key).ok()?))))
            .collect(),
    })
}

/// Why no route could be built.
#[derive(Debug, thiserror::Error)]
pub enum RouteError {
    /// A mix layer (0-based) has no node.
    #[error("the consensus has no node in mix layer {}", .0 + 1)]
    EmptyLayer(usize),
    /// The gateway list is empty.
    #[error("the consensus lists no gateway")]
    NoGateway,
    /// A node on the route has no key for the epoch.
    #[error("a node on the route publishes no key for epoch {0}")]
    NoKey(u64),
    /// A named node is not in the consensus.
    #[error("node not in the consensus")]
    UnknownNode,
    /// The packet layer refused the route.
    #[error(transparent)]
    Packet(#[from] PacketError),
}

/// A verified document for another packet geometry than the one this
/// program builds: its packets would not fit, so it is refused whole.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
#[error("the consensus is for packet geometry {}, this program runs {}", hex8(.published), hex8(.ours))]
pub struct GeometryMismatch {
    /// The geometry hash the document publishes.
    pub published: [u8; 32],
    /// This program's.
    pub ours: [u8; 32],
}

fn hex8(hash: &[u8; 32]) -> String {
    hash[..4].iter().map(|b| format!("{b:02x}")).collect()
}

/// One epoch's network.
#[derive(Debug, Clone)]
pub struct Topology {
    /// The document's epoch.
    pub epoch: u64,
    /// The document's network parameters.
    pub parameters: NetworkParameters,
    /// Every node, by identity.
    pub nodes: HashMap<NodeId, NodeEntry>,
    /// Mix identities per layer.
    pub layers: [Vec<NodeId>; MIX_LAYERS],
    /// Gateway identities.
    pub gateways: Vec<NodeId>,
    /// The verified document itself.
    pub document: Arc<SignedConsensus>,
}

impl Topology {
    /// The topology of a verified document. Descriptors whose identity is
    /// not a valid Ed25519 key are skipped.
    pub fn new(document: SignedConsensus) -> Self {
        let body = &document.body;
        let mut nodes = HashMap::new();
        let mut layers: [Vec<NodeId>; MIX_LAYERS] = Default::default();
        let mut gateways = Vec::new();
        for (layer, d) in body.mixes() {
            if let Some(e) = entry(d, Some(layer))
                && let Some(slot) = layers.get_mut(usize::from(layer))
            {
                slot.push(e.id);
                nodes.insert(e.id, e);
            }
        }
        for d in &body.gateways {
            if let Some(e) = entry(d, None) {
                gateways.push(e.id);
                nodes.insert(e.id, e);
            }
        }
        Topology {
            epoch: body.epoch,
            parameters: body.parameters,
            nodes,
            layers,
            gateways,
            document: Arc::new(document),
        }
    }

    /// The topology of a verified document, if it publishes `geometry`'s
    /// hash: what nodes and clients use, so that a document for another
    /// geometry is refused rather than routed on.
    pub fn for_geometry(
        document: SignedConsensus,
        geometry: &Geometry,
    ) -> Result<Self, GeometryMismatch> {
        let ours = geometry.hash();
        let published = document.body.parameters.geometry_hash;
        if published != ours {
            return Err(GeometryMismatch { published, ours });
        }
        Ok(Topology::new(document))
    }

    /// A node by identity.
    pub fn node(&self, id: &NodeId) -> Option<&NodeEntry> {
        self.nodes.get(id)
    }

    /// A random gateway.
    pub fn random_gateway<R: Rng + ?Sized>(&self, rng: &mut R) -> Result<NodeId, RouteError> {
        pick_one(rng, &self.gateways, None).ok_or(RouteError::NoGateway)
    }

    /// One random mix per layer, in order; with `avoid` set, not that node
    /// where its layer has others.
    fn mixes<R: Rng + ?Sized>(
        &self,
        rng: &mut R,
        avoid: Option<&NodeId>,
    ) -> Result<Vec<NodeId>, RouteError> {
        pick_per_layer(rng, self.layers.iter().map(Vec::as_slice), avoid)
            .map_err(|EmptyLayer(layer)| RouteError::EmptyLayer(layer))
    }

    /// A route `entry → one random mix per layer → exit` for packets framed
    /// under this document's epoch.
    pub fn route<R: Rng + ?Sized>(
        &self,
        rng: &mut R,
        geometry: &Geometry,
        entry: NodeId,
        exit: NodeId,
    ) -> Result<Route, RouteError> {
        let mut ids = vec![entry];
        ids.extend(self.mixes(rng, None)?);
        ids.push(exit);
        self.hops(geometry, &ids)
    }

    /// The route of a node's loop cover: once around the cycle
    /// `gateway → layer 1 → … → layer L → gateway` from the node's own
    /// position back to the node, so that every link it crosses is one
    /// client traffic uses too ([`crate::position`]): for a mix in layer i,
    /// one random mix of each later layer, a random gateway, one mix of each
    /// earlier layer, then the node; for a gateway, one mix per layer, then
    /// the gateway. That is `L + 1` hops, one fewer than a client route.
    pub fn loop_route<R: Rng + ?Sized>(
        &self,
        rng: &mut R,
        geometry: &Geometry,
        node: NodeId,
    ) -> Result<Route, RouteError> {
        let here = self.position(&node).ok_or(RouteError::UnknownNode)?;
        let mixes = self.mixes(rng, None)?;
        let mut ids = Vec::with_capacity(MIX_LAYERS + 1);
        let mut at = here.after();
        while at != here {
            ids.push(match at {
                crate::Position::Layer(i) => mixes[i],
                crate::Position::Gateway => {
                    pick_one(rng, &self.gateways, None).ok_or(RouteError::NoGateway)?
                }
            });
            at = at.after();
        }
        ids.push(node);
        let hops = self.hop_list(&ids)?;
        Ok(Route::cycle(hops, geometry)?)
    }

    fn hop_list(&self, ids: &[NodeId]) -> Result<Vec<Hop>, RouteError> {
        ids.iter()
            .map(|id| {
                self.node(id)
                    .ok_or(RouteError::UnknownNode)?
                    .hop(self.epoch)
                    .ok_or(RouteError::NoKey(self.epoch))
            })
            .collect()
    }

    /// A route over exactly these nodes, with their keys for this epoch.
    pub fn hops(&self, geometry: &Geometry, ids: &[NodeId]) -> Result<Route, RouteError> {
        Ok(Route::new(self.hop_list(ids)?, geometry)?)
    }

    /// The mean per-hop delay the senders draw, if the network mixes by
    /// Poisson delays.
    pub fn mean_hop_delay(&self) -> std::time::Duration {
        match self.parameters.mixing {
            aegis_directory::MixingStrategy::Poisson { mean_delay_ms } => {
                std::time::Duration::from_secs_f64(mean_delay_ms.max(0.0) / 1_000.0)
            }
            _ => std::time::Duration::ZERO,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::testnet;
    use rand::SeedableRng as _;

    #[test]
    fn a_document_for_another_geometry_is_refused() {
        let mut rng = rand_chacha::ChaCha20Rng::seed_from_u64(3);
        let mut node = |role, i| testnet::node(&mut rng, role, 1, i, 1_000).descriptor(1);
        let mixes: [Vec<_>; MIX_LAYERS] = std::array::from_fn(|l| vec![node(Role::Mix, l)]);
        let gateways = vec![node(Role::Gateway, 3)];
        let mut parameters = NetworkParameters::standard(3_600_000);
        let mut rng = rand_chacha::ChaCha20Rng::seed_from_u64(4);
        let ours = Geometry::STANDARD;
        let document = testnet::consensus(&mut rng, 1, parameters, mixes.clone(), gateways.clone());
        assert!(Topology::for_geometry(document, &ours).is_ok());
        parameters.geometry_hash = [7; 32];
        let other = testnet::consensus(&mut rng, 1, parameters, mixes, gateways);
        assert_eq!(
            Topology::for_geometry(other, &ours).err(),
            Some(GeometryMismatch {
                published: [7; 32],
                ours: ours.hash(),
            })
        );
    }

    /// Descriptors that publish hybrid KEM keys give routes whose hops carry
    /// them, and a packet of the post-quantum geometry built over such a
    /// route crosses every node to its mailbox.
    #[test]
    fn published_hybrid_keys_reach_the_route_and_open_at_every_hop() {
        use aegis_mix_packet::kem::HybridSecret;
        use aegis_mix_packet::{
            Body, Destination, HopDelays, LoopId, MailboxId, PacketFormat, Processed, SphinxSecret,
            build_mailbox_packet, open_delivery, peel_hybrid,
        };

        let mut rng = rand_chacha::ChaCha20Rng::seed_from_u64(5);
        let geometry = Geometry::PQ;
        let mut kem_secrets: HashMap<NodeId, HybridSecret> = HashMap::new();
        let mut node = |role, i| {
            let secrets = testnet::node_in(PacketFormat::Kem, &mut rng, role, 1, i, 1_000);
            let descriptor = secrets.descriptor(1);
            assert_eq!(descriptor.body.kem_keys.len(), 3);
            let kem = secrets.keys.get(1).unwrap().kem.clone().unwrap();
            kem_secrets.insert(secrets.id(), kem);
            descriptor
        };
        let mixes: [Vec<_>; MIX_LAYERS] = std::array::from_fn(|l| vec![node(Role::Mix, l)]);
        let gateways = vec![node(Role::Gateway, 3)];
        let mut parameters = NetworkParameters::standard(3_600_000);
        parameters.geometry_hash = geometry.hash();
        let document = testnet::consensus(&mut rng, 1, parameters, mixes, gateways);
        let topology = Topology::for_geometry(document, &geometry).unwrap();
        // a Sphinx node refuses the post-quantum network's document
        assert!(Topology::for_geometry((*topology.document).clone(), &Geometry::STANDARD).is_err());

        let gateway = topology.random_gateway(&mut rng).unwrap();
        let route = topology
            .route(&mut rng, &geometry, gateway, gateway)
            .unwrap();
        assert!(route.hops().iter().all(|h| h.kem_key.is_some()));
        let owner = SphinxSecret::from([4u8; 32]);
        let mailbox = MailboxId([6; 32]);
        let delays = HopDelays::fixed(&[std::time::Duration::ZERO; 5]);
        let body = Body::Loop(LoopId([8; 16]));
        let out = build_mailbox_packet(
            &mut rng,
            &geometry,
            &route,
            &delays,
            mailbox,
            &SphinxPublicKey::from(&owner),
            &body,
        )
        .unwrap();
        let mut packet = out.packet;
        for (i, hop) in route.hops().iter().enumerate() {
            let key = &kem_secrets[&hop.node];
            match peel_hybrid(&geometry, &packet, key)
                .unwrap()
                .unwrap()
                .unwrap()
            {
                Processed::Forward {
                    next_hop,
                    packet: next,
                    ..
                } => {
                    assert_eq!(next_hop, route.hops()[i + 1].node);
                    packet = next;
                }
                Processed::Final {
                    destination,
                    payload,
                    ..
                } => {
                    assert_eq!(i, 4);
                    assert_eq!(destination, Destination::Mailbox(mailbox));
                    assert!(matches!(
                        open_delivery(&geometry, &owner, &payload).unwrap(),
                        Body::Loop(LoopId([8, ..]))
                    ));
                }
            }
        }
    }
}
