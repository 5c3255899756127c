//! The one route chooser: one node drawn uniformly from each layer of a
//! stratified network, in layer order.
//!
//! Client routes (entry gateway, one mix per layer, exit gateway), node loop
//! routes (every layer, a gateway, back to the node) and the simulator's
//! routes are all built from these two functions, so the distribution of
//! paths — what an adversary's guesses are measured against — is the same
//! everywhere.

use rand::{Rng, RngExt as _};

/// A layer (or the gateway list) with no node to choose from; the number is
/// its position in the list of layers given.
#[derive(Clone, Copy, Debug, PartialEq, Eq, thiserror::Error)]
#[error("layer {0} has no node to choose from")]
pub struct EmptyLayer(pub usize);

/// One node of `list`, uniformly at random. With `avoid` set, that node is
/// chosen only when it is the list's only member (a loop through a layer of
/// one still has to cross it).
pub fn pick_one<N, R>(rng: &mut R, list: &[N], avoid: Option<&N>) -> Option<N>
where
    N: Clone + PartialEq,
    R: Rng + ?Sized,
{
    let others = match avoid {
        Some(a) => list.iter().filter(|n| *n != a).count(),
        None => list.len(),
    };
    if others == 0 {
        // Either the list is empty or it holds only the avoided node.
        return list.first().cloned();
    }
    let index = rng.random_range(0..others);
    list.iter()
        .filter(|n| avoid.is_none_or(|a| *n != a))
        .nth(index)
        .cloned()
}

/// One node per layer, in order, each drawn with [`pick_one`].
pub fn pick_per_layer<'a, N, R, L>(
    rng: &mut R,
    layers: L,
    avoid: Option<&N>,
) -> Result<Vec<N>, EmptyLayer>
where
    N: Clone + PartialEq + 'a,
    R: Rng + ?Sized,
    L: IntoIterator<Item = &'a [N]>,
{
    layers
        .into_iter()
        .enumerate()
        .map(|(i, layer)| pick_one(rng, layer, avoid).ok_or(EmptyLayer(i)))
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use rand::SeedableRng;
    use rand_chacha::ChaCha8Rng;

    #[test]
    fn every_node_of_a_layer_is_chosen_about_equally_often() {
        let mut rng = ChaCha8Rng::seed_from_u64(7);
        let layer = [10u32, 11, 12, 13];
        let mut counts = [0u32; 4];
        for _ in 0..40_000 {
            let n = pick_one(&mut rng, &layer, None).unwrap();
            counts[(n - 10) as usize] += 1;
        }
        // Binomial(40 000, 1/4): sd ≈ 87; 5 sd either side.
        for c in counts {
            assert!((9_565..=10_435).contains(&c), "{counts:?}");
        }
    }

    #[test]
    fn the_avoided_node_is_skipped_unless_it_is_alone() {
        let mut rng = ChaCha8Rng::seed_from_u64(1);
        for _ in 0..1_000 {
            assert_ne!(pick_one(&mut rng, &[1u8, 2, 3], Some(&2)), Some(2));
        }
        assert_eq!(pick_one(&mut rng, &[2u8], Some(&2)), Some(2));
        assert_eq!(pick_one::<u8, _>(&mut rng, &[], Some(&2)), None);
    }

    #[test]
    fn a_path_has_one_node_from_each_layer_in_order() {
        let mut rng = ChaCha8Rng::seed_from_u64(3);
        let layers: [&[u8]; 3] = [&[1, 2], &[3, 4], &[5, 6]];
        for _ in 0..100 {
            let path = pick_per_layer(&mut rng, layers, None).unwrap();
            assert_eq!(path.len(), 3);
            for (node, layer) in path.iter().zip(layers) {
                assert!(layer.contains(node));
            }
        }
        let with_gap: [&[u8]; 3] = [&[1], &[], &[5]];
        assert_eq!(pick_per_layer(&mut rng, with_gap, None), Err(EmptyLayer(1)));
    }
}
