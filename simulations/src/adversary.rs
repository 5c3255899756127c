//! Which nodes the adversary controls.
//!
//! Every network adversary here watches every link (a global passive
//! observer); the models differ in which nodes it also runs. A corrupt node
//! knows which of its outputs is which of its inputs, so probability tracking
//! passes a packet's distribution through it unchanged. The dumb relay is a
//! different system, not a different adversary, and lives in `relay`.

use rand::{Rng, RngExt};

use crate::layout::{Layout, NodeRole};
use crate::scenario::{AdversaryModel, AdversarySpec};

/// The set of corrupt nodes.
#[derive(Clone, Debug)]
pub struct Adversary {
    corrupt: Vec<bool>,
}

impl Adversary {
    /// Chooses the corrupt nodes of `spec` in `topology`: for corrupt mixes,
    /// round(b·width) random mixes in each layer; for a corrupt gateway, the
    /// first `corrupt_gateways` gateways.
    pub fn new<R: Rng + ?Sized>(rng: &mut R, spec: &AdversarySpec, topology: &Layout) -> Self {
        let mut corrupt = vec![false; topology.nodes()];
        match spec.model {
            AdversaryModel::CorruptMixes => {
                let mut by_layer: Vec<Vec<usize>> = Vec::new();
                for id in 0..topology.nodes() {
                    if let NodeRole::Mix(layer) = topology.role(id) {
                        if by_layer.len() <= layer {
                            by_layer.resize(layer + 1, Vec::new());
                        }
                        by_layer[layer].push(id);
                    }
                }
                for mut layer in by_layer {
                    let k = (spec.corrupt_fraction * layer.len() as f64).round() as usize;
                    for i in 0..k.min(layer.len()) {
                        let j = rng.random_range(i..layer.len());
                        layer.swap(i, j);
                        corrupt[layer[i]] = true;
                    }
                }
            }
            AdversaryModel::CorruptGateway => {
                for c in corrupt
                    .iter_mut()
                    .take(spec.corrupt_gateways.min(topology.gateways()))
                {
                    *c = true;
                }
            }
            AdversaryModel::GlobalPassive | AdversaryModel::DumbRelay => {}
        }
        Adversary { corrupt }
    }

    /// Whether node `id` is corrupt.
    pub fn is_corrupt(&self, id: usize) -> bool {
        self.corrupt.get(id).copied().unwrap_or(false)
    }
}
