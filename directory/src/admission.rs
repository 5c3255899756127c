//! Which nodes an authority takes descriptors from and puts in its vote.
//!
//! * [`Admission::Allowlist`]: only pinned node identities, as Katzenpost's
//!   authorities do. The choice for a production network: a stranger cannot
//!   add a node, however many descriptors it sends.
//! * [`Admission::Open`]: anyone, within limits. Nodes listed in the
//!   previous document (incumbents) are always taken; newcomers only up to a
//!   quota per round, so a flood of descriptors cannot fill the round before
//!   an honest listed node uploads. The vote then carries at most
//!   `mixes_per_layer` mixes per layer and `gateways` gateways, incumbents
//!   first, so no flood grows the document past what the operators chose.
//!
//! Per-source upload limits (by client address) are the server's part; this
//! module sees no addresses.

use std::collections::BTreeSet;

use serde::{Deserialize, Serialize};

use crate::constants::MIX_LAYERS;
use crate::descriptor::{Role, SignedDescriptor};

/// Limits of open admission.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct OpenLimits {
    /// Descriptors of nodes not in the previous document accepted per round.
    pub newcomers_per_round: usize,
    /// Mixes per layer the vote carries at most.
    pub mixes_per_layer: usize,
    /// Gateways the vote carries at most.
    pub gateways: usize,
    /// Descriptor uploads one source address may make per epoch (the
    /// server's part; honest nodes make two or three).
    #[serde(default = "default_uploads_per_source")]
    pub uploads_per_source: usize,
}

fn default_uploads_per_source() -> usize {
    64
}

/// Source addresses one epoch's upload counts track at most; beyond, new
/// sources are refused until the epoch turns.
pub const MAX_SOURCES_TRACKED: usize = 100_000;

/// Descriptor uploads per source address in the current epoch (kept in
/// memory only, never logged).
#[derive(Debug)]
pub struct SourceQuota<A> {
    epoch: u64,
    counts: std::collections::HashMap<A, usize>,
}

impl<A> Default for SourceQuota<A> {
    fn default() -> Self {
        SourceQuota {
            epoch: 0,
            counts: std::collections::HashMap::new(),
        }
    }
}

impl<A: std::hash::Hash + Eq> SourceQuota<A> {
    /// Whether `source` may upload once more in `epoch` (counting it if so).
    pub fn allow(&mut self, epoch: u64, source: A, limit: usize) -> bool {
        if epoch != self.epoch {
            self.epoch = epoch;
            self.counts.clear();
        }
        if !self.counts.contains_key(&source) && self.counts.len() >= MAX_SOURCES_TRACKED {
            return false;
        }
        let count = self.counts.entry(source).or_insert(0);
        if *count >= limit {
            return false;
        }
        *count += 1;
        true
    }
}

impl Default for OpenLimits {
    fn default() -> Self {
        OpenLimits {
            newcomers_per_round: 256,
            mixes_per_layer: 1_000,
            gateways: 1_000,
            uploads_per_source: default_uploads_per_source(),
        }
    }
}

/// An authority's admission policy.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "mode", rename_all = "lowercase", deny_unknown_fields)]
pub enum Admission {
    /// Only these node identity keys (hex in the configuration file).
    Allowlist {
        /// The admitted identities.
        #[serde(with = "hex_keys")]
        nodes: BTreeSet<[u8; 32]>,
    },
    /// Anyone, within these limits.
    Open(OpenLimits),
}

impl Default for Admission {
    fn default() -> Self {
        Admission::Open(OpenLimits::default())
    }
}

/// Why admission refused a descriptor.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum AdmissionError {
    /// The node is not on the allowlist.
    #[error("this node is not on the authority's allowlist")]
    NotAllowed,
    /// The round took as many newcomers as it may.
    #[error("this round takes no more new nodes; nodes already listed keep their place")]
    NewcomersFull,
}

impl Admission {
    /// Whether a descriptor from `identity` may join a round that holds
    /// `newcomers` newcomers already; `incumbent` says whether the node is
    /// in the previous document.
    pub fn admit(
        &self,
        identity: &[u8; 32],
        incumbent: bool,
        newcomers: usize,
    ) -> Result<(), AdmissionError> {
        match self {
            Admission::Allowlist { nodes } if nodes.contains(identity) => Ok(()),
            Admission::Allowlist { .. } => Err(AdmissionError::NotAllowed),
            Admission::Open(_) if incumbent => Ok(()),
            Admission::Open(limits) if newcomers < limits.newcomers_per_round => Ok(()),
            Admission::Open(_) => Err(AdmissionError::NewcomersFull),
        }
    }

    /// The descriptors a vote carries, sorted by identity: all of them under
    /// an allowlist; under open admission at most the limits, incumbents
    /// first, then newcomers by identity. Layers are assigned later, so the
    /// mix cap is on mixes in all layers together.
    pub fn select<'a>(
        &self,
        descriptors: impl Iterator<Item = &'a SignedDescriptor>,
        incumbent: impl Fn(&[u8; 32]) -> bool,
    ) -> Vec<SignedDescriptor> {
        let Admission::Open(limits) = self else {
            return descriptors.cloned().collect();
        };
        let mut all: Vec<&SignedDescriptor> = descriptors.collect();
        // Incumbents first; stable, so identity order within each group.
        all.sort_by_key(|d| (!incumbent(&d.identity()), d.identity()));
        let (mut mixes, mut gateways) = (0, 0);
        let mut chosen: Vec<SignedDescriptor> = all
            .into_iter()
            .filter(|d| {
                let (count, cap) = match d.body.role {
                    Role::Mix => (
                        &mut mixes,
                        limits.mixes_per_layer.saturating_mul(MIX_LAYERS),
                    ),
                    Role::Gateway => (&mut gateways, limits.gateways),
                };
                *count += 1;
                *count <= cap
            })
            .cloned()
            .collect();
        chosen.sort_by_key(SignedDescriptor::identity);
        chosen
    }
}

mod hex_keys {
    use std::collections::BTreeSet;

    use serde::{Deserialize, Deserializer, Serializer};

    pub fn serialize<S: Serializer>(keys: &BTreeSet<[u8; 32]>, s: S) -> Result<S::Ok, S::Error> {
        s.collect_seq(keys.iter().map(hex::encode))
    }

    pub fn deserialize<'de, D: Deserializer<'de>>(d: D) -> Result<BTreeSet<[u8; 32]>, D::Error> {
        Vec::<String>::deserialize(d)?
            .iter()
            .map(|k| crate::parse_key(k).map_err(serde::de::Error::custom))
            .collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::descriptor::tests::sample;

    #[test]
    fn allowlist_admits_only_its_nodes() {
        let allow = Admission::Allowlist {
            nodes: [[1; 32]].into_iter().collect(),
        };
        assert_eq!(allow.admit(&[1; 32], false, 10_000), Ok(()));
        assert_eq!(
            allow.admit(&[2; 32], true, 0),
            Err(AdmissionError::NotAllowed)
        );
    }

    #[test]
    fn open_admission_keeps_incumbents_before_newcomers() {
        let limits = OpenLimits {
            newcomers_per_round: 2,
            mixes_per_layer: 1,
            gateways: 1,
            uploads_per_source: 1,
        };
        let mut quota = SourceQuota::default();
        assert!(quota.allow(1, "a", 2) && quota.allow(1, "a", 2));
        assert!(!quota.allow(1, "a", 2));
        assert!(quota.allow(1, "b", 2));
        assert!(quota.allow(2, "a", 2), "a new epoch starts afresh");
        let open = Admission::Open(limits);
        assert_eq!(open.admit(&[1; 32], false, 1), Ok(()));
        assert_eq!(
            open.admit(&[1; 32], false, 2),
            Err(AdmissionError::NewcomersFull)
        );
        assert_eq!(open.admit(&[1; 32], true, 1_000_000), Ok(()));

        let descriptors: Vec<SignedDescriptor> = (1..=6)
            .map(|i| sample(i, 1, Role::Mix))
            .chain((7..=8).map(|i| sample(i, 1, Role::Gateway)))
            .collect();
        // The incumbents are the last mix and the last gateway.
        let incumbents = [descriptors[5].identity(), descriptors[7].identity()];
        let chosen = open.select(descriptors.iter(), |id| incumbents.contains(id));
        let mixes = chosen.iter().filter(|d| d.body.role == Role::Mix).count();
        assert_eq!(mixes, MIX_LAYERS);
        assert!(chosen.iter().any(|d| d.identity() == incumbents[0]));
        let gateways: Vec<_> = chosen
            .iter()
            .filter(|d| d.body.role == Role::Gateway)
            .collect();
        assert_eq!(gateways.len(), 1);
        assert_eq!(gateways[0].identity(), incumbents[1]);
        assert!(chosen.windows(2).all(|w| w[0].identity() < w[1].identity()));
    }

    #[cfg(feature = "server")]
    #[test]
    fn the_policy_reads_from_toml() {
        #[derive(Deserialize)]
        struct File {
            admission: Admission,
        }
        let text = format!(
            "[admission]\nmode = \"allowlist\"\nnodes = [\"{}\"]\n",
            hex::encode([7u8; 32])
        );
        let file: File = toml::from_str(&text).unwrap();
        assert_eq!(
            file.admission,
            Admission::Allowlist {
                nodes: [[7; 32]].into_iter().collect()
            }
        );
        let open: File = toml::from_str(
            "[admission]\nmode = \"open\"\nnewcomers_per_round = 5\nmixes_per_layer = 9\ngateways = 2\n",
        )
        .unwrap();
        assert!(matches!(open.admission, Admission::Open(l) if l.newcomers_per_round == 5));
    }
}
