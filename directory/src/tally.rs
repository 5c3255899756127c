//! The tally: from the votes of the authorities to one consensus body.
//!
//! A pure function. Only what at least `threshold` votes carry byte for byte
//! enters the document: each descriptor, each authority entry (URL and
//! key), the parameters, the link to the previous document. Votes that
//! disagree are simply outvoted, so one divergent or broken authority
//! cannot block a round (the weakness of Katzenpost's voting noted in its
//! issue tracker); only when no value reaches the threshold does the round
//! fail, with the reason.

use std::collections::{BTreeMap, HashMap};

use crate::codec;
use crate::consensus::{ConsensusBody, NetworkParameters};
use crate::constants::{DOCUMENT_FORMAT_VERSION, MIX_LAYERS};
use crate::descriptor::{Role, SignedDescriptor};
use crate::layers::assign_layers;
use crate::schedule::Schedule;
use crate::trust::TrustedAuthority;
use crate::vote::SignedVote;

/// Why a tally produced no document.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum TallyError {
    /// Fewer votes than the threshold arrived.
    #[error("only {got} of the {threshold} required votes arrived")]
    NotEnoughVotes {
        /// Votes received.
        got: usize,
        /// Votes required.
        threshold: usize,
    },
    /// No single parameter set was in a threshold of votes.
    #[error("no parameter set is shared by {threshold} votes (largest group: {largest})")]
    ParametersDisagree {
        /// Votes required.
        threshold: usize,
        /// Size of the largest group of identical parameters.
        largest: usize,
    },
    /// No previous-document hash was in a threshold of votes.
    #[error(
        "authorities disagree on the previous document (largest group: {largest} of {threshold})"
    )]
    PreviousDisagree {
        /// Votes required.
        threshold: usize,
        /// Size of the largest group.
        largest: usize,
    },
    /// The agreed previous document is not held locally, so the layers
    /// cannot be assigned stably; the document is fetched from peers instead.
    #[error("previous document {} is not held locally", hex::encode(.0))]
    MissingPrevious([u8; 32]),
}

/// Everything the tally reads.
#[derive(Debug, Clone, Copy)]
pub struct TallyInput<'a> {
    /// The epoch of the document to produce.
    pub epoch: u64,
    /// Votes needed for anything to be included.
    pub threshold: usize,
    /// Verified votes for `epoch`, at most one per authority.
    pub votes: &'a [SignedVote],
    /// The locally held document the votes may name as previous.
    pub previous: Option<&'a ConsensusBody>,
    /// The epoch clock, for the validity window.
    pub schedule: &'a Schedule,
}

/// The value carried by at least `threshold` of `items`, and the size of the
/// largest group either way.
fn agreed<K: std::hash::Hash + Eq + Clone, V: Clone>(
    items: impl Iterator<Item = (K, V)>,
    threshold: usize,
) -> (Option<V>, usize) {
    let mut groups: HashMap<K, (usize, V)> = HashMap::new();
    for (key, value) in items {
        groups.entry(key).or_insert((0, value)).0 += 1;
    }
    let largest = groups.values().map(|(n, _)| *n).max().unwrap_or(0);
    let winner = groups
        .into_values()
        .find(|(n, _)| *n >= threshold)
        .map(|(_, v)| v);
    (winner, largest)
}

/// The authority entries (URL and key together) named by at least
/// `threshold` votes, sorted by key: an authority being added enters once a
/// threshold of its peers is configured with it, one being retired leaves
/// once a threshold has dropped it, and a URL changes once a threshold
/// agrees on the new one.
fn agreed_authorities(votes: &[SignedVote], threshold: usize) -> Vec<TrustedAuthority> {
    let mut counts: HashMap<Vec<u8>, (usize, &TrustedAuthority)> = HashMap::new();
    for vote in votes {
        for authority in &vote.body.authorities {
            counts
                .entry(codec::encode(authority))
                .or_insert((0, authority))
                .0 += 1;
        }
    }
    let mut agreed: Vec<&TrustedAuthority> = counts
        .into_values()
        .filter(|(n, _)| *n >= threshold)
        .map(|(_, a)| a)
        .collect();
    // Below a majority threshold two URLs for one key could both qualify:
    // keep one, the same on every authority.
    agreed.sort_by(|a, b| a.public_key.cmp(&b.public_key).then(a.url.cmp(&b.url)));
    TrustedAuthority::canonical_list(agreed.into_iter().cloned())
}

/// Computes the consensus body, or why there is none.
pub fn tally(input: TallyInput<'_>) -> Result<ConsensusBody, TallyError> {
    let TallyInput {
        epoch,
        threshold,
        votes,
        previous,
        schedule,
    } = input;
    let threshold = threshold.max(1);
    if votes.len() < threshold {
        return Err(TallyError::NotEnoughVotes {
            got: votes.len(),
            threshold,
        });
    }

    let (parameters, largest) = agreed::<Vec<u8>, NetworkParameters>(
        votes
            .iter()
            .map(|v| (codec::encode(&v.body.parameters), v.body.parameters)),
        threshold,
    );
    let parameters = parameters.ok_or(TallyError::ParametersDisagree { threshold, largest })?;

    let (previous_hash, largest) = agreed(
        votes.iter().map(|v| (v.body.previous, v.body.previous)),
        threshold,
    );
    let previous_hash = previous_hash.ok_or(TallyError::PreviousDisagree { threshold, largest })?;
    let previous_layers: BTreeMap<[u8; 32], u8> = match previous_hash {
        None => BTreeMap::new(),
        Some(hash) => match previous {
            Some(body) if body.hash() == hash => body
                .mixes()
                .map(|(layer, d)| (d.identity(), layer))
                .collect(),
            _ => return Err(TallyError::MissingPrevious(hash)),
        },
    };

    // Descriptors by exact bytes: two uploads that differ in one byte are two
    // different descriptors and each must reach the threshold on its own.
    let mut counts: HashMap<Vec<u8>, (usize, &SignedDescriptor)> = HashMap::new();
    for vote in votes {
        for descriptor in &vote.body.descriptors {
            counts
                .entry(descriptor.to_bytes())
                .or_insert((0, descriptor))
                .0 += 1;
        }
    }
    let mut included: Vec<&SignedDescriptor> = counts
        .into_values()
        .filter(|(n, d)| *n >= threshold && d.body.epoch == epoch)
        .map(|(_, d)| d)
        .collect();
    // With threshold > n/2 at most one version per node can qualify; if a
    // caller passes a lower threshold, keep the highest revision.
    included.sort_by(|a, b| {
        a.identity()
            .cmp(&b.identity())
            .then(b.body.revision.cmp(&a.body.revision))
            .then(a.signature.cmp(&b.signature))
    });
    included.dedup_by_key(|d| d.identity());

    let mix_ids: Vec<[u8; 32]> = included
        .iter()
        .filter(|d| d.body.role == Role::Mix)
        .map(|d| d.identity())
        .collect();
    let assignment = assign_layers(epoch, &mix_ids, &previous_layers);
    let mut layers: [Vec<SignedDescriptor>; MIX_LAYERS] = Default::default();
    let mut gateways = Vec::new();
    for descriptor in included {
        match descriptor.body.role {
            Role::Gateway => gateways.push(descriptor.clone()),
            Role::Mix => {
                if let Some(&layer) = assignment.get(&descriptor.identity()) {
                    layers[usize::from(layer)].push(descriptor.clone());
                }
            }
        }
    }
    let (valid_after_ms, valid_until_ms) = schedule.validity(epoch);
    Ok(ConsensusBody {
        authorities: agreed_authorities(votes, threshold),
        format: DOCUMENT_FORMAT_VERSION,
        epoch,
        valid_after_ms,
        valid_until_ms,
        parameters,
        layers,
        gateways,
        previous: previous_hash,
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::descriptor::tests::sample;
    use crate::vote::VoteBody;
    use ed25519_dalek::SigningKey;

    const SCHEDULE: Schedule = Schedule {
        genesis_ms: 0,
        epoch_length_ms: 8_000,
    };

    fn vote(seed: u8, epoch: u64, nodes: &[u8], parameters: NetworkParameters) -> SignedVote {
        vote_naming(seed, epoch, nodes, parameters, &[])
    }

    fn authority(key: u8, url: &str) -> TrustedAuthority {
        TrustedAuthority {
            url: url.into(),
            public_key: [key; 32],
        }
    }

    fn vote_naming(
        seed: u8,
        epoch: u64,
        nodes: &[u8],
        parameters: NetworkParameters,
        named: &[(u8, &str)],
    ) -> SignedVote {
        let key = SigningKey::from_bytes(&[seed; 32]);
        let mut descriptors: Vec<_> = nodes
            .iter()
            .map(|&n| sample(n, epoch, if n % 4 == 0 { Role::Gateway } else { Role::Mix }))
            .collect();
        descriptors.sort_by_key(SignedDescriptor::identity);
        VoteBody {
            authority: key.verifying_key().to_bytes(),
            epoch,
            parameters,
            previous: None,
            descriptors,
            authorities: TrustedAuthority::canonical_list(
                named.iter().map(|&(k, url)| authority(k, url)),
            ),
        }
        .sign(&key)
    }

    fn input<'a>(votes: &'a [SignedVote]) -> TallyInput<'a> {
        TallyInput {
            epoch: 2,
            threshold: 2,
            votes,
            previous: None,
            schedule: &SCHEDULE,
        }
    }

    #[test]
    fn threshold_decides_descriptors() {
        let p = NetworkParameters::standard(8_000);
        let votes = [
            vote(100, 2, &[1, 2, 3, 4], p),
            vote(101, 2, &[1, 2, 3], p),
            vote(102, 2, &[1, 5], p),
        ];
        let body = tally(input(&votes)).unwrap();
        let mut ids: Vec<_> = body.mixes().map(|(_, d)| d.identity()).collect();
        ids.sort();
        let mut expected: Vec<_> = [1u8, 2, 3]
            .iter()
            .map(|&n| sample(n, 2, Role::Mix).identity())
            .collect();
        expected.sort();
        assert_eq!(ids, expected);
        assert!(
            body.gateways.is_empty(),
            "gateway 4 was seen by one authority only"
        );
        assert_eq!(body.validate(), Ok(()));
    }

    #[test]
    fn the_order_of_votes_does_not_matter() {
        let p = NetworkParameters::standard(8_000);
        let votes = [
            vote(100, 2, &[1, 2, 3, 4, 6, 7], p),
            vote(101, 2, &[1, 2, 3, 4, 7], p),
            vote(102, 2, &[1, 2, 3, 6], p),
        ];
        let mut reversed = votes.clone();
        reversed.reverse();
        assert_eq!(
            tally(input(&votes)).unwrap().to_bytes(),
            tally(input(&reversed)).unwrap().to_bytes()
        );
    }

    #[test]
    fn divergent_parameters_are_outvoted_and_a_split_fails() {
        let p = NetworkParameters::standard(8_000);
        let mut q = p;
        q.lambda_p = 99.0;
        let votes = [
            vote(100, 2, &[1], p),
            vote(101, 2, &[1], p),
            vote(102, 2, &[1], q),
        ];
        assert_eq!(tally(input(&votes)).unwrap().parameters, p);
        let mut r = p;
        r.lambda_l = 7.0;
        let split = [
            vote(100, 2, &[1], p),
            vote(101, 2, &[1], r),
            vote(102, 2, &[1], q),
        ];
        assert_eq!(
            tally(input(&split)),
            Err(TallyError::ParametersDisagree {
                threshold: 2,
                largest: 1
            })
        );
    }

    #[test]
    fn authorities_named_by_a_threshold_enter_with_the_agreed_url() {
        let p = NetworkParameters::standard(8_000);
        // Authority 9 is being added: two of three voters know it. Authority
        // 8 is being retired: only one still names it. Authority 2 moved:
        // two voters have its new URL.
        let votes = [
            vote_naming(
                100,
                2,
                &[1],
                p,
                &[(1, "http://a"), (2, "http://b2"), (9, "http://n")],
            ),
            vote_naming(
                101,
                2,
                &[1],
                p,
                &[(1, "http://a"), (2, "http://b2"), (9, "http://n")],
            ),
            vote_naming(
                102,
                2,
                &[1],
                p,
                &[(1, "http://a"), (2, "http://b"), (8, "http://old")],
            ),
        ];
        let body = tally(input(&votes)).unwrap();
        assert_eq!(
            body.authorities,
            vec![
                authority(1, "http://a"),
                authority(2, "http://b2"),
                authority(9, "http://n")
            ]
        );
        assert_eq!(body.validate(), Ok(()));
        // With a threshold below a majority, two URLs for one key both
        // qualify; the document still names the key once.
        let low = TallyInput {
            threshold: 1,
            ..input(&votes)
        };
        let body = tally(low).unwrap();
        assert_eq!(body.authorities.len(), 4);
        assert_eq!(body.validate(), Ok(()));
    }

    #[test]
    fn too_few_votes_fail() {
        let votes = [vote(100, 2, &[1], NetworkParameters::standard(8_000))];
        assert_eq!(
            tally(input(&votes)),
            Err(TallyError::NotEnoughVotes {
                got: 1,
                threshold: 2
            })
        );
    }
}
