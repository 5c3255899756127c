//! The routing view of one verified consensus document: which nodes form
//! each layer, with which Sphinx keys, under which parameters, and the
//! routes through them. Nodes use it for their links and their own loop
//! cover, clients to build routes. Addresses stay the strings the
//! descriptors published; the link layer parses them.

use std::collections::HashMap;
use std::sync::Arc;

use aegis_directory::constants::MIX_LAYERS;
use aegis_directory::{NetworkParameters, Role, SignedConsensus, SignedDescriptor};
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
}

impl NodeEntry {
    /// Its Sphinx public key for `epoch`, if published.
    pub fn sphinx_key(&self, epoch: u64) -> Option<SphinxPublicKey> {
        self.sphinx_keys
            .iter()
            .find(|(e, _)| *e == epoch)
            .map(|(_, k)| SphinxPublicKey::from(*k))
    }

    /// The hop for a packet framed under `epoch`.
    pub fn hop(&self, epoch: u64) -> Option<Hop> {
        Some(Hop {
            node: self.id,
            sphinx_key: self.sphinx_key(epoch)?,
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

    /// The route of a node's loop cover: one mix per layer (other than the
    /// node itself where its layer has others), a gateway (likewise), and
    /// the node last — the last `geometry.hops` of that path.
    pub fn loop_route<R: Rng + ?Sized>(
        &self,
        rng: &mut R,
        geometry: &Geometry,
        node: NodeId,
    ) -> Result<Route, RouteError> {
        let mut ids = self.mixes(rng, Some(&node))?;
        ids.push(pick_one(rng, &self.gateways, Some(&node)).ok_or(RouteError::NoGateway)?);
        ids.push(node);
        let start = ids.len().saturating_sub(geometry.hops);
        self.hops(geometry, &ids[start..])
    }

    /// A route over exactly these nodes, with their keys for this epoch.
    pub fn hops(&self, geometry: &Geometry, ids: &[NodeId]) -> Result<Route, RouteError> {
        let hops = ids
            .iter()
            .map(|id| {
                self.node(id)
                    .ok_or(RouteError::UnknownNode)?
                    .hop(self.epoch)
                    .ok_or(RouteError::NoKey(self.epoch))
            })
            .collect::<Result<Vec<_>, _>>()?;
        Ok(Route::new(hops, geometry)?)
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
