//! The consensus document: one per epoch, the network as every client and
//! node must see it, signed by a threshold of authorities.

use ed25519_dalek::SigningKey;
use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};

use crate::codec::{self, DecodeError, SignatureBytes};
use crate::constants::{
    DOCUMENT_FORMAT_VERSION, DOCUMENT_HASH_DOMAIN, DOCUMENT_SIGNATURE_DOMAIN, MAX_AUTHORITIES,
    MAX_DOCUMENT_BYTES, MAX_NODES, MAX_SIGNATURE_BYTES, MIX_LAYERS,
};
use crate::descriptor::{Role, SignedDescriptor};
use crate::schedule::Schedule;
use crate::trust::TrustedAuthority;

/// How mix nodes delay packets.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub enum MixingStrategy {
    /// Loopix continuous-time mixing: the sender draws each hop's delay from
    /// an exponential distribution with this mean.
    Poisson {
        /// Mean per-hop delay 1/μ, in milliseconds.
        mean_delay_ms: f64,
    },
    /// Every `interval_ms` the node flushes a random `fraction` of its pool,
    /// keeping at least `min_pool` packets back.
    TimedPool {
        /// Flush interval in milliseconds.
        interval_ms: u64,
        /// Packets always retained in the pool.
        min_pool: u32,
        /// Fraction of the excess sent per flush, in (0, 1].
        fraction: f64,
    },
    /// The node flushes once it holds `threshold` packets.
    ThresholdPool {
        /// Pool size that triggers a flush.
        threshold: u32,
    },
}

/// When clients send, as the consensus tells them.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum ClientShaping {
    /// Loopix's three independent Poisson streams at λP, λL and λD.
    #[default]
    Poisson,
    /// One real-or-loop packet at fixed intervals of 1 / (λP + λL + λD):
    /// the same bandwidth as the Poisson streams, with no randomness in
    /// the timing for an observer to read.
    ConstantRate,
}

/// Network-wide parameters that every node and client follows.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub struct NetworkParameters {
    /// The mixing strategy and its parameters.
    pub mixing: MixingStrategy,
    /// Client real-or-loop stream rate λP, packets per second.
    pub lambda_p: f64,
    /// Client loop cover rate λL, packets per second.
    pub lambda_l: f64,
    /// Client drop cover rate λD, packets per second.
    pub lambda_d: f64,
    /// Node loop cover rate λM, packets per second.
    pub lambda_m: f64,
    /// Hash of the packet geometry (`aegis_mix_packet::Geometry::hash`).
    pub geometry_hash: [u8; 32],
    /// Epoch length in milliseconds.
    pub epoch_length_ms: u64,
    /// How clients schedule their packets.
    pub shaping: ClientShaping,
}

/// Why network parameters are refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("invalid network parameter {0}")]
pub struct ParameterError(pub &'static str);

fn positive_rate(value: f64, name: &'static str) -> Result<(), ParameterError> {
    // Rates above 1e6/s are configuration mistakes, not networks.
    if value.is_finite() && value > 0.0 && value <= 1e6 {
        Ok(())
    } else {
        Err(ParameterError(name))
    }
}

impl NetworkParameters {
    /// The parameters for the standard packet geometry and the given epoch
    /// length, with Loopix-like rates.
    pub fn standard(epoch_length_ms: u64) -> Self {
        NetworkParameters {
            mixing: MixingStrategy::Poisson {
                mean_delay_ms: 50.0,
            },
            lambda_p: 10.0,
            lambda_l: 2.0,
            lambda_d: 2.0,
            lambda_m: 2.0,
            geometry_hash: aegis_mix_packet::Geometry::STANDARD.hash(),
            epoch_length_ms,
            shaping: ClientShaping::Poisson,
        }
    }

    /// A client's packets per second on its link to the gateway, pulls
    /// aside: λP + λL + λD in either shaping.
    pub fn client_rate(&self) -> f64 {
        self.lambda_p + self.lambda_l + self.lambda_d
    }

    /// Checks every parameter is finite and in a sane range.
    pub fn validate(&self) -> Result<(), ParameterError> {
        match self.mixing {
            MixingStrategy::Poisson { mean_delay_ms } => {
                positive_rate(mean_delay_ms, "mean_delay_ms")?
            }
            MixingStrategy::TimedPool {
                interval_ms,
                fraction,
                ..
            } => {
                if interval_ms == 0 {
                    return Err(ParameterError("interval_ms"));
                }
                if !(fraction.is_finite() && fraction > 0.0 && fraction <= 1.0) {
                    return Err(ParameterError("fraction"));
                }
            }
            MixingStrategy::ThresholdPool { threshold } => {
                if threshold == 0 {
                    return Err(ParameterError("threshold"));
                }
            }
        }
        positive_rate(self.lambda_p, "lambda_p")?;
        positive_rate(self.lambda_l, "lambda_l")?;
        positive_rate(self.lambda_d, "lambda_d")?;
        positive_rate(self.lambda_m, "lambda_m")?;
        if self.epoch_length_ms < 1_000 {
            return Err(ParameterError("epoch_length_ms"));
        }
        Ok(())
    }
}

/// The content of a consensus document. Field order is the encoding order;
/// every list is sorted by node identity.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ConsensusBody {
    /// Format version, [`DOCUMENT_FORMAT_VERSION`].
    pub format: u16,
    /// The epoch this document describes.
    pub epoch: u64,
    /// Unix time in milliseconds from which the document applies (the start
    /// of its epoch).
    pub valid_after_ms: u64,
    /// Unix time in milliseconds at which the document expires: one epoch
    /// after its own ends, so it covers a failed round that follows it.
    pub valid_until_ms: u64,
    /// Network parameters.
    pub parameters: NetworkParameters,
    /// Mix descriptors per layer, each sorted by identity.
    pub layers: [Vec<SignedDescriptor>; MIX_LAYERS],
    /// Gateway descriptors, sorted by identity.
    pub gateways: Vec<SignedDescriptor>,
    /// Hash of the most recent document before this one, if any.
    pub previous: Option<[u8; 32]>,
    /// The authorities a threshold of voters named (URL and key), sorted by
    /// key: how clients pinning an older list learn the current one.
    pub authorities: Vec<TrustedAuthority>,
}

/// One authority's signature on a document.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct DocumentSignature {
    /// The epoch of the signed document.
    pub epoch: u64,
    /// The signing authority's Ed25519 public key.
    pub authority: [u8; 32],
    /// The document hash signed.
    pub document_hash: [u8; 32],
    /// Signature over the domain-separated (epoch, document hash).
    pub signature: SignatureBytes,
}

/// A document body with the authorities' signatures, as published.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct SignedConsensus {
    /// The document.
    pub body: ConsensusBody,
    /// Signatures sorted by authority key.
    pub signatures: Vec<DocumentSignature>,
}

/// Why a document is structurally invalid (signatures aside).
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
pub enum DocumentError {
    /// Not a document encoding.
    #[error("undecodable document: {0}")]
    Decode(#[from] DecodeError),
    /// Unknown format version.
    #[error("unsupported document format {0}")]
    Format(u16),
    /// Parameters out of range.
    #[error(transparent)]
    Parameters(#[from] ParameterError),
    /// A list is unsorted, has duplicates, a node in the wrong list, or a
    /// descriptor for another epoch.
    #[error("inconsistent node lists: {0}")]
    Nodes(&'static str),
    /// Too many signatures.
    #[error("too many signatures")]
    TooManySignatures,
    /// The authority list is unsorted, too long or has an unusable URL.
    #[error("invalid authority list: {0}")]
    Authorities(&'static str),
}

fn signature_message(epoch: u64, document_hash: &[u8; 32]) -> [u8; 40] {
    let mut message = [0u8; 40];
    message[..8].copy_from_slice(&epoch.to_be_bytes());
    message[8..].copy_from_slice(document_hash);
    message
}

impl DocumentSignature {
    /// Signs (epoch, hash) with an authority key.
    pub fn create(key: &SigningKey, epoch: u64, document_hash: [u8; 32]) -> Self {
        let signature = codec::sign(
            key,
            DOCUMENT_SIGNATURE_DOMAIN,
            &signature_message(epoch, &document_hash),
        );
        DocumentSignature {
            epoch,
            authority: key.verifying_key().to_bytes(),
            document_hash,
            signature,
        }
    }

    /// Checks the signature against the `authority` field.
    pub fn verify(&self) -> bool {
        codec::verify(
            &self.authority,
            DOCUMENT_SIGNATURE_DOMAIN,
            &signature_message(self.epoch, &self.document_hash),
            &self.signature,
        )
    }

    /// Canonical encoding.
    pub fn to_bytes(&self) -> Vec<u8> {
        codec::encode(self)
    }

    /// Decodes (without verifying).
    pub fn from_bytes(bytes: &[u8]) -> Result<Self, DecodeError> {
        codec::decode(bytes, MAX_SIGNATURE_BYTES)
    }
}

impl ConsensusBody {
    /// The canonical encoding of the body.
    pub fn to_bytes(&self) -> Vec<u8> {
        codec::encode(self)
    }

    /// SHA-256 over the domain label and the canonical encoding: what
    /// authorities sign and what the next document links to.
    pub fn hash(&self) -> [u8; 32] {
        let mut hasher = Sha256::new();
        hasher.update(DOCUMENT_HASH_DOMAIN);
        hasher.update(self.to_bytes());
        hasher.finalize().into()
    }

    /// All mix descriptors with their layer index.
    pub fn mixes(&self) -> impl Iterator<Item = (u8, &SignedDescriptor)> {
        (0u8..)
            .zip(self.layers.iter())
            .flat_map(|(layer, nodes)| nodes.iter().map(move |d| (layer, d)))
    }

    /// The epoch clock this document implies: its epoch starts at
    /// `valid_after_ms` and lasts the published epoch length.
    pub fn schedule(&self) -> Option<Schedule> {
        let length = self.parameters.epoch_length_ms;
        let genesis_ms = self
            .valid_after_ms
            .checked_sub(self.epoch.checked_mul(length)?)?;
        Some(Schedule {
            genesis_ms,
            epoch_length_ms: length,
        })
    }

    /// Checks format, parameters and the shape of the node lists. Descriptor
    /// signatures are the authorities' job and are covered by theirs.
    pub fn validate(&self) -> Result<(), DocumentError> {
        if self.format != DOCUMENT_FORMAT_VERSION {
            return Err(DocumentError::Format(self.format));
        }
        self.parameters.validate()?;
        if self.valid_until_ms <= self.valid_after_ms {
            return Err(DocumentError::Nodes("empty validity window"));
        }
        let total = self.layers.iter().map(Vec::len).sum::<usize>() + self.gateways.len();
        if total > MAX_NODES {
            return Err(DocumentError::Nodes("too many nodes"));
        }
        let mut all: Vec<[u8; 32]> = Vec::with_capacity(total);
        let lists = self
            .layers
            .iter()
            .map(|l| (l, Role::Mix))
            .chain(std::iter::once((&self.gateways, Role::Gateway)));
        for (list, role) in lists {
            if !list.windows(2).all(|w| w[0].identity() < w[1].identity()) {
                return Err(DocumentError::Nodes("list not sorted by identity"));
            }
            for d in list {
                if d.body.role != role {
                    return Err(DocumentError::Nodes("node listed under the wrong role"));
                }
                if d.body.epoch != self.epoch {
                    return Err(DocumentError::Nodes("descriptor for another epoch"));
                }
                all.push(d.identity());
            }
        }
        all.sort_unstable();
        if all.windows(2).any(|w| w[0] == w[1]) {
            return Err(DocumentError::Nodes("node listed twice"));
        }
        TrustedAuthority::check_list(&self.authorities).map_err(DocumentError::Authorities)
    }
}

impl SignedConsensus {
    /// The canonical encoding, as served over HTTP.
    pub fn to_bytes(&self) -> Vec<u8> {
        codec::encode(self)
    }

    /// Decodes and checks the structure; signatures are checked by
    /// [`crate::Verifier`].
    pub fn from_bytes(bytes: &[u8]) -> Result<Self, DocumentError> {
        let doc: SignedConsensus = codec::decode(bytes, MAX_DOCUMENT_BYTES)?;
        if doc.signatures.len() > MAX_AUTHORITIES {
            return Err(DocumentError::TooManySignatures);
        }
        doc.body.validate()?;
        Ok(doc)
    }

    /// Adds a signature, keeping the list sorted and one per authority.
    pub fn add_signature(&mut self, signature: DocumentSignature) {
        if let Err(at) = self
            .signatures
            .binary_search_by(|s| s.authority.cmp(&signature.authority))
        {
            self.signatures.insert(at, signature);
        }
    }
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;
    use crate::descriptor::tests::sample;

    pub(crate) fn body(epoch: u64) -> ConsensusBody {
        let mut layers: [Vec<SignedDescriptor>; 3] = Default::default();
        for (i, seed) in [1u8, 2, 3].into_iter().enumerate() {
            layers[i].push(sample(seed, epoch, Role::Mix));
        }
        ConsensusBody {
            format: DOCUMENT_FORMAT_VERSION,
            epoch,
            valid_after_ms: 1000,
            valid_until_ms: 3000,
            parameters: NetworkParameters::standard(1000),
            layers,
            gateways: vec![sample(4, epoch, Role::Gateway)],
            previous: None,
            authorities: vec![TrustedAuthority {
                url: "http://192.0.2.7:7900".into(),
                public_key: [7; 32],
            }],
        }
    }

    #[test]
    fn document_round_trips_and_hash_is_stable() {
        let mut doc = SignedConsensus {
            body: body(5),
            signatures: vec![],
        };
        let key = SigningKey::from_bytes(&[7; 32]);
        doc.add_signature(DocumentSignature::create(&key, 5, doc.body.hash()));
        let bytes = doc.to_bytes();
        let back = SignedConsensus::from_bytes(&bytes).unwrap();
        assert_eq!(back, doc);
        assert_eq!(back.body.hash(), doc.body.hash());
        assert!(back.signatures[0].verify());
    }

    #[test]
    fn unsorted_or_misplaced_nodes_are_refused() {
        let mut b = body(5);
        b.gateways.push(sample(4, 5, Role::Gateway));
        assert!(b.validate().is_err());
        let mut b = body(5);
        b.layers[0].push(sample(9, 5, Role::Gateway));
        assert!(b.validate().is_err());
        let mut b = body(5);
        b.layers[0].push(sample(2, 5, Role::Mix));
        assert!(b.validate().is_err(), "a node in two layers");
    }

    #[test]
    fn an_unusable_authority_list_is_refused() {
        let mut b = body(5);
        b.authorities.insert(
            0,
            TrustedAuthority {
                url: "http://192.0.2.8:7900".into(),
                public_key: [9; 32],
            },
        );
        assert!(matches!(b.validate(), Err(DocumentError::Authorities(_))));
        let mut b = body(5);
        b.authorities[0].url = "gopher://192.0.2.7".into();
        assert!(matches!(b.validate(), Err(DocumentError::Authorities(_))));
    }

    #[test]
    fn parameters_must_be_sane() {
        let mut p = NetworkParameters::standard(60_000);
        assert!(p.validate().is_ok());
        p.lambda_p = f64::NAN;
        assert!(p.validate().is_err());
        p = NetworkParameters::standard(60_000);
        p.mixing = MixingStrategy::TimedPool {
            interval_ms: 100,
            min_pool: 3,
            fraction: 1.5,
        };
        assert!(p.validate().is_err());
    }
}
