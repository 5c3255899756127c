//! Test networks without authorities or sockets: node identities and Sphinx
//! keys, their signed descriptors, and a consensus document listing them,
//! signed the way authorities sign it. For tests and for the simulator's
//! whole-network harness; a real network's documents come from its
//! authorities. Enabled by the `testnet` feature (and in this crate's tests).

use aegis_directory::constants::{DOCUMENT_FORMAT_VERSION, MIX_LAYERS, SPHINX_KEYS_PER_DESCRIPTOR};
use aegis_directory::{
    ConsensusBody, DescriptorBody, DocumentSignature, EpochKemKey, EpochSphinxKey,
    NetworkParameters, Role, SignedConsensus, SignedDescriptor,
};
use aegis_mix_packet::kem::HybridSecret;
use aegis_mix_packet::{
    EpochKey, EpochKeys, MailboxId, NodeId, PacketFormat, ReplayFilter, SphinxPublicKey,
    SphinxSecret,
};
use ed25519_dalek::SigningKey;
use rand::{CryptoRng, RngExt as _};

/// False-positive rate of the harness nodes' replay filters (as the nodes').
const FILTER_FP_RATE: f64 = 1e-5;

/// A node's secrets: identity, Sphinx keys by epoch, and its loop mailbox.
pub struct NodeSecrets {
    /// The identity key.
    pub identity: SigningKey,
    /// Mix or gateway.
    pub role: Role,
    /// Its number in the test network (it makes the published address).
    pub index: usize,
    /// Sphinx keys with replay filters, by epoch.
    pub keys: EpochKeys,
    /// The public halves, by epoch.
    pub public_keys: Vec<(u64, [u8; 32])>,
    /// The packet format its keys are for: in the KEM format each epoch
    /// also has an X-Wing key, published in the descriptor.
    pub format: PacketFormat,
    /// The X-Wing public keys, by epoch (KEM format only).
    pub kem_public_keys: Vec<(u64, Vec<u8>)>,
    /// The mailbox its loop cover returns to.
    pub loop_mailbox: MailboxId,
    /// The key its loop cover is sealed to.
    pub loop_secret: SphinxSecret,
}

impl NodeSecrets {
    /// The node's identity.
    pub fn id(&self) -> NodeId {
        NodeId(self.identity.verifying_key().to_bytes())
    }

    /// Makes sure the node holds Sphinx keys for `epoch` and the epochs a
    /// descriptor publishes ahead, each with a replay filter for `capacity` packets.
    pub fn keys_from<R: CryptoRng + ?Sized>(&mut self, rng: &mut R, epoch: u64, capacity: u64) {
        for e in epoch..epoch + SPHINX_KEYS_PER_DESCRIPTOR as u64 {
            if self.keys.get(e).is_some() {
                continue;
            }
            let mut bytes = [0u8; 32];
            rng.fill_bytes(&mut bytes);
            let secret = SphinxSecret::from(bytes);
            self.public_keys
                .push((e, SphinxPublicKey::from(&secret).to_bytes()));
            let filter = ReplayFilter::with_capacity(rng, capacity, FILTER_FP_RATE);
            let key = match self.format {
                PacketFormat::Sphinx => EpochKey::new(secret, filter),
                PacketFormat::Kem => {
                    let kem = HybridSecret::random(rng);
                    self.kem_public_keys
                        .push((e, kem.public().as_bytes().to_vec()));
                    EpochKey::with_kem(secret, kem, filter)
                }
            };
            self.keys.insert(e, key);
        }
    }

    /// The node's signed descriptor for `epoch` (its keys for it must be held).
    pub fn descriptor(&self, epoch: u64) -> SignedDescriptor {
        let key_of = |e: u64| {
            self.public_keys
                .iter()
                .find(|(k, _)| *k == e)
                .map(|(_, key)| *key)
                .unwrap_or_default()
        };
        DescriptorBody {
            identity: self.identity.verifying_key().to_bytes(),
            epoch,
            revision: 1,
            role: self.role,
            // Never dialled: test networks move frames themselves.
            addresses: vec![format!("/ip4/127.0.0.1/tcp/{}", 20_000 + self.index)],
            sphinx_keys: std::array::from_fn(|i| EpochSphinxKey {
                epoch: epoch + i as u64,
                key: key_of(epoch + i as u64),
            }),
            kem_keys: self
                .kem_public_keys
                .iter()
                .filter(|(e, _)| (epoch..epoch + SPHINX_KEYS_PER_DESCRIPTOR as u64).contains(e))
                .map(|(e, key)| EpochKemKey {
                    epoch: *e,
                    key: key.clone(),
                })
                .collect(),
            version: "aegis testnet".into(),
        }
        .sign(&self.identity)
    }
}

/// Generates a node with Sphinx keys from `epoch` on.
pub fn node<R: CryptoRng + ?Sized>(
    rng: &mut R,
    role: Role,
    epoch: u64,
    index: usize,
    capacity: u64,
) -> NodeSecrets {
    node_in(PacketFormat::Sphinx, rng, role, epoch, index, capacity)
}

/// Generates a node with keys for `format` from `epoch` on (the Sphinx
/// format draws from `rng` exactly as [`node`] does).
pub fn node_in<R: CryptoRng + ?Sized>(
    format: PacketFormat,
    rng: &mut R,
    role: Role,
    epoch: u64,
    index: usize,
    capacity: u64,
) -> NodeSecrets {
    let mut seed = [0u8; 32];
    rng.fill_bytes(&mut seed);
    let mut loop_bytes = [0u8; 32];
    rng.fill_bytes(&mut loop_bytes);
    let mut secrets = NodeSecrets {
        identity: SigningKey::from_bytes(&seed),
        role,
        index,
        keys: EpochKeys::new(),
        public_keys: Vec::new(),
        format,
        kem_public_keys: Vec::new(),
        loop_mailbox: MailboxId(rng.random()),
        loop_secret: SphinxSecret::from(loop_bytes),
    };
    secrets.keys_from(rng, epoch, capacity);
    secrets
}

/// The consensus for `epoch` listing `mixes` (per layer) and `gateways`,
/// signed by one authority key.
pub fn consensus<R: CryptoRng + ?Sized>(
    rng: &mut R,
    epoch: u64,
    parameters: NetworkParameters,
    mixes: [Vec<SignedDescriptor>; MIX_LAYERS],
    gateways: Vec<SignedDescriptor>,
) -> SignedConsensus {
    let sorted = |mut list: Vec<SignedDescriptor>| {
        list.sort_by_key(SignedDescriptor::identity);
        list
    };
    let body = ConsensusBody {
        format: DOCUMENT_FORMAT_VERSION,
        epoch,
        valid_after_ms: epoch * parameters.epoch_length_ms,
        valid_until_ms: (epoch + 1) * parameters.epoch_length_ms,
        parameters,
        layers: mixes.map(sorted),
        gateways: sorted(gateways),
        previous: None,
        authorities: Vec::new(),
    };
    let mut seed = [0u8; 32];
    rng.fill_bytes(&mut seed);
    let authority = SigningKey::from_bytes(&seed);
    let signature = DocumentSignature::create(&authority, epoch, body.hash());
    let mut document = SignedConsensus {
        body,
        signatures: Vec::new(),
    };
    document.add_signature(signature);
    document
}
