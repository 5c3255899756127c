//! Layer assignment: which mix layer each mix node serves in.
//!
//! Stable first: a node keeps the layer it had in the previous document, so
//! that its neighbours and the paths through it change as little as
//! possible. New nodes (and returning ones) go to the currently smallest
//! layer. Only if the layers then differ in size by more than one are nodes
//! moved, from the largest layer to the smallest. Every choice is ordered by
//! a per-epoch hash of the node identity, so every authority computes the
//! same assignment and no node can pick its own position by choosing keys
//! for a single epoch.

use std::collections::BTreeMap;

use sha2::{Digest, Sha256};

use crate::constants::{LAYER_HASH_DOMAIN, MIX_LAYERS};

/// The per-epoch ordering key of a node.
fn rank(epoch: u64, identity: &[u8; 32]) -> [u8; 32] {
    let mut hasher = Sha256::new();
    hasher.update(LAYER_HASH_DOMAIN);
    hasher.update(epoch.to_be_bytes());
    hasher.update(identity);
    hasher.finalize().into()
}

/// Assigns each of `mixes` a layer in `0..MIX_LAYERS` for `epoch`, given the
/// layers of the previous document. Pure and deterministic; the result does
/// not depend on the order of `mixes`.
pub fn assign_layers(
    epoch: u64,
    mixes: &[[u8; 32]],
    previous: &BTreeMap<[u8; 32], u8>,
) -> BTreeMap<[u8; 32], u8> {
    // Each layer holds (rank, identity), kept sorted so that "the node to
    // move" is always the highest rank.
    let mut layers: [Vec<([u8; 32], [u8; 32])>; MIX_LAYERS] = Default::default();
    let mut newcomers = Vec::new();
    for id in mixes {
        let entry = (rank(epoch, id), *id);
        match previous.get(id).map(|&l| usize::from(l)) {
            Some(layer) if layer < MIX_LAYERS => layers[layer].push(entry),
            _ => newcomers.push(entry),
        }
    }
    newcomers.sort_unstable();
    newcomers.dedup();
    for entry in newcomers {
        let smallest = layers.iter().map(Vec::len).min().unwrap_or(0);
        let candidates: Vec<usize> = (0..MIX_LAYERS)
            .filter(|&l| layers[l].len() == smallest)
            .collect();
        // Ties between equally small layers are broken by the node's hash.
        let pick = candidates[usize::from(entry.0[0]) % candidates.len()];
        layers[pick].push(entry);
    }
    for layer in &mut layers {
        layer.sort_unstable();
        layer.dedup();
    }
    loop {
        let (largest, smallest) = extremes(&layers);
        if layers[largest].len() <= layers[smallest].len() + 1 {
            break;
        }
        if let Some(moved) = layers[largest].pop() {
            let at = layers[smallest].binary_search(&moved).unwrap_or_else(|i| i);
            layers[smallest].insert(at, moved);
        }
    }
    let mut out = BTreeMap::new();
    for (index, layer) in (0u8..).zip(layers.iter()) {
        for (_, id) in layer {
            out.insert(*id, index);
        }
    }
    out
}

/// Indices of the largest and smallest layer (lowest index on ties).
fn extremes<T>(layers: &[Vec<T>; MIX_LAYERS]) -> (usize, usize) {
    let mut largest = 0;
    let mut smallest = 0;
    for (i, layer) in layers.iter().enumerate() {
        if layer.len() > layers[largest].len() {
            largest = i;
        }
        if layer.len() < layers[smallest].len() {
            smallest = i;
        }
    }
    (largest, smallest)
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn ids(n: u8) -> Vec<[u8; 32]> {
        (0..n).map(|i| [i; 32]).collect()
    }

    fn sizes(assignment: &BTreeMap<[u8; 32], u8>) -> [usize; 3] {
        let mut s = [0; 3];
        for &l in assignment.values() {
            s[usize::from(l)] += 1;
        }
        s
    }

    #[test]
    fn nodes_keep_their_layer_when_balanced() {
        let first = assign_layers(1, &ids(9), &BTreeMap::new());
        assert_eq!(sizes(&first), [3, 3, 3]);
        let second = assign_layers(2, &ids(9), &first);
        assert_eq!(first, second);
    }

    #[test]
    fn newcomers_fill_the_smallest_layer() {
        let mut previous = assign_layers(1, &ids(6), &BTreeMap::new());
        let removed: Vec<_> = previous
            .iter()
            .filter(|(_, l)| **l == 2)
            .map(|(id, _)| *id)
            .collect();
        previous.retain(|_, l| *l != 2);
        let mut nodes: Vec<_> = previous.keys().copied().collect();
        nodes.extend([[100u8; 32], [101u8; 32]]);
        let next = assign_layers(2, &nodes, &previous);
        assert_eq!(next[&[100u8; 32]], 2);
        assert_eq!(next[&[101u8; 32]], 2);
        for (id, layer) in &previous {
            assert_eq!(next[id], *layer, "an existing node moved");
        }
        assert_eq!(removed.len(), 2);
    }

    #[test]
    fn departures_are_rebalanced() {
        let previous = assign_layers(1, &ids(9), &BTreeMap::new());
        let nodes: Vec<_> = previous
            .iter()
            .filter(|(_, l)| **l != 0)
            .map(|(id, _)| *id)
            .collect();
        let next = assign_layers(2, &nodes, &previous);
        let s = sizes(&next);
        assert_eq!(s.iter().sum::<usize>(), 6);
        assert!(
            s.iter().max().unwrap() - s.iter().min().unwrap() <= 1,
            "{s:?}"
        );
        let moved = nodes.iter().filter(|id| next[*id] != previous[*id]).count();
        assert_eq!(moved, 2, "only the nodes needed to balance move");
    }

    proptest! {
        #[test]
        fn balanced_deterministic_and_order_independent(
            n in 0u8..60, keep in proptest::collection::vec(0u8..4, 60), epoch in 0u64..100,
        ) {
            let nodes = ids(n);
            let previous: BTreeMap<_, _> = nodes.iter().zip(&keep).filter(|(_, k)| **k < 3).map(|(id, k)| (*id, *k)).collect();
            let a = assign_layers(epoch, &nodes, &previous);
            let mut reversed = nodes.clone();
            reversed.reverse();
            prop_assert_eq!(&a, &assign_layers(epoch, &reversed, &previous));
            prop_assert_eq!(a.len(), nodes.len());
            let s = sizes(&a);
            prop_assert!(s.iter().max().unwrap() - s.iter().min().unwrap() <= 1);
        }
    }
}
