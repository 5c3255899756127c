//! The no-account identity and its signed prekeys.
//!
//! An identity is an Ed25519 signing key and an X25519 key it signs; both
//! are generated on the device and never leave it. A prekey bundle — the
//! identity's public halves, a signed X25519 prekey and a signed ML-KEM-768
//! prekey — is what a contact card carries so that anyone can start a
//! session without the owner being online.
//!
//! Every public key is encoded with a one-byte type prefix before it is
//! signed or put into associated data, so that no key of one kind can be
//! taken for a key of another (the PQXDH analysis found curve/KEM key
//! confusion without it).

use ed25519_dalek::{Signature, Signer, SigningKey, VerifyingKey};
use ml_kem::kem::{FromSeed, KeyExport, TryKeyInit};
use ml_kem::ml_kem_768::{DecapsulationKey, EncapsulationKey};
use ml_kem::{MlKem768, Seed};
use rand::CryptoRng;
use x25519_dalek::{PublicKey, StaticSecret};
use zeroize::Zeroizing;

use super::EdgeError;

/// Type prefix of an encoded X25519 public key.
pub const X25519_PREFIX: u8 = 0x05;
/// Type prefix of an encoded ML-KEM-768 encapsulation key.
pub const MLKEM768_PREFIX: u8 = 0x0A;
/// Type prefix of an encoded Ed25519 public key.
pub const ED25519_PREFIX: u8 = 0x0E;
/// Length of an ML-KEM-768 encapsulation key.
pub const MLKEM768_KEY_LEN: usize = 1184;
/// Length of an ML-KEM-768 ciphertext.
pub const MLKEM768_CIPHERTEXT_LEN: usize = 1088;

const IDENTITY_KEY_CONTEXT: &[u8] = b"AegisLink identity key\0";
const SIGNED_PREKEY_CONTEXT: &[u8] = b"AegisLink signed prekey\0";
const PQ_PREKEY_CONTEXT: &[u8] = b"AegisLink signed PQ prekey\0";

/// `0x05 ‖ u-coordinate`.
pub fn encode_x25519(key: &[u8; 32]) -> [u8; 33] {
    let mut out = [0u8; 33];
    out[0] = X25519_PREFIX;
    out[1..].copy_from_slice(key);
    out
}

/// `0x0E ‖ Ed25519 key`.
pub fn encode_ed25519(key: &[u8; 32]) -> [u8; 33] {
    let mut out = [0u8; 33];
    out[0] = ED25519_PREFIX;
    out[1..].copy_from_slice(key);
    out
}

fn signed_message(context: &[u8], prefix: u8, key: &[u8]) -> Vec<u8> {
    let mut msg = Vec::with_capacity(context.len() + 1 + key.len());
    msg.extend_from_slice(context);
    msg.push(prefix);
    msg.extend_from_slice(key);
    msg
}

fn verify(
    signer: &[u8; 32],
    msg: &[u8],
    signature: &[u8; 64],
    what: &'static str,
) -> Result<(), EdgeError> {
    let key = VerifyingKey::from_bytes(signer).map_err(|_| EdgeError::InvalidKey("Ed25519"))?;
    key.verify_strict(msg, &Signature::from_bytes(signature))
        .map_err(|_| EdgeError::BadSignature(what))
}

/// A device's long-term identity. Never serialised except into the sealed store.
pub struct Identity {
    signing: SigningKey,
    dh: StaticSecret,
}

impl Identity {
    /// Generates a fresh identity.
    pub fn generate<R: CryptoRng + ?Sized>(rng: &mut R) -> Self {
        let mut seed = Zeroizing::new([0u8; 32]);
        rng.fill_bytes(seed.as_mut());
        Identity {
            signing: SigningKey::from_bytes(&seed),
            dh: StaticSecret::random_from_rng(rng),
        }
    }

    /// The 64 secret bytes (signing seed ‖ X25519 secret), for the sealed store.
    pub fn to_secret_bytes(&self) -> Zeroizing<[u8; 64]> {
        let mut out = Zeroizing::new([0u8; 64]);
        out[..32].copy_from_slice(&self.signing.to_bytes());
        out[32..].copy_from_slice(self.dh.as_bytes());
        out
    }

    /// Restores an identity from [`Identity::to_secret_bytes`].
    pub fn from_secret_bytes(bytes: &[u8; 64]) -> Self {
        let mut signing = Zeroizing::new([0u8; 32]);
        let mut dh = Zeroizing::new([0u8; 32]);
        signing.copy_from_slice(&bytes[..32]);
        dh.copy_from_slice(&bytes[32..]);
        Identity {
            signing: SigningKey::from_bytes(&signing),
            dh: StaticSecret::from(*dh),
        }
    }

    /// The public identity, with the signature binding the X25519 key.
    pub fn public(&self) -> IdentityPublic {
        let dh = PublicKey::from(&self.dh).to_bytes();
        let signature = self
            .signing
            .sign(&signed_message(IDENTITY_KEY_CONTEXT, X25519_PREFIX, &dh))
            .to_bytes();
        IdentityPublic {
            signing: self.signing.verifying_key().to_bytes(),
            dh,
            dh_signature: signature,
        }
    }

    pub(crate) fn dh_secret(&self) -> &StaticSecret {
        &self.dh
    }

    /// Creates and signs an X25519 prekey.
    pub fn new_signed_prekey<R: CryptoRng + ?Sized>(&self, rng: &mut R, id: u32) -> SignedPrekey {
        SignedPrekey {
            id,
            secret: StaticSecret::random_from_rng(rng),
            signature: [0; 64],
        }
        .signed_by(self)
    }

    /// Creates and signs an ML-KEM-768 prekey.
    pub fn new_pq_prekey<R: CryptoRng + ?Sized>(&self, rng: &mut R, id: u32) -> PqPrekey {
        let mut seed = Zeroizing::new([0u8; 64]);
        rng.fill_bytes(seed.as_mut());
        PqPrekey::from_seed(id, &seed, self)
    }
}

/// The public half of an identity.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct IdentityPublic {
    /// Ed25519 verifying key.
    pub signing: [u8; 32],
    /// X25519 key used in the key agreement.
    pub dh: [u8; 32],
    /// Signature by `signing` over the encoded `dh`.
    pub dh_signature: [u8; 64],
}

impl IdentityPublic {
    /// Encoded length.
    pub const LEN: usize = 32 + 32 + 64;

    /// Checks the signature binding the X25519 key to the signing key.
    pub fn verify(&self) -> Result<(), EdgeError> {
        verify(
            &self.signing,
            &signed_message(IDENTITY_KEY_CONTEXT, X25519_PREFIX, &self.dh),
            &self.dh_signature,
            "identity key",
        )
    }

    /// `signing ‖ dh ‖ signature`.
    pub fn encode(&self, out: &mut Vec<u8>) {
        out.extend_from_slice(&self.signing);
        out.extend_from_slice(&self.dh);
        out.extend_from_slice(&self.dh_signature);
    }

    /// Decodes and verifies.
    pub fn decode(bytes: &[u8]) -> Result<Self, EdgeError> {
        if bytes.len() != Self::LEN {
            return Err(EdgeError::Malformed("identity"));
        }
        let mut id = IdentityPublic {
            signing: [0; 32],
            dh: [0; 32],
            dh_signature: [0; 64],
        };
        id.signing.copy_from_slice(&bytes[..32]);
        id.dh.copy_from_slice(&bytes[32..64]);
        id.dh_signature.copy_from_slice(&bytes[64..]);
        id.verify()?;
        Ok(id)
    }

    /// The associated-data encoding: `Encode(signing) ‖ Encode(dh)`.
    pub fn ad_encoding(&self) -> Vec<u8> {
        let mut out = encode_ed25519(&self.signing).to_vec();
        out.extend_from_slice(&encode_x25519(&self.dh));
        out
    }
}

/// A signed X25519 prekey (medium-term; rotated by the owner).
pub struct SignedPrekey {
    /// Identifier the initiator names in its first message.
    pub id: u32,
    secret: StaticSecret,
    signature: [u8; 64],
}

impl SignedPrekey {
    fn signed_by(mut self, identity: &Identity) -> Self {
        let public = PublicKey::from(&self.secret).to_bytes();
        self.signature = identity
            .signing
            .sign(&signed_message(
                SIGNED_PREKEY_CONTEXT,
                X25519_PREFIX,
                &public,
            ))
            .to_bytes();
        self
    }

    /// Restores a prekey from its id and secret bytes, re-signing it.
    pub fn from_secret(id: u32, secret: [u8; 32], identity: &Identity) -> Self {
        SignedPrekey {
            id,
            secret: StaticSecret::from(secret),
            signature: [0; 64],
        }
        .signed_by(identity)
    }

    /// The secret bytes, for the sealed store.
    pub fn secret_bytes(&self) -> Zeroizing<[u8; 32]> {
        Zeroizing::new(self.secret.to_bytes())
    }

    pub(crate) fn secret(&self) -> &StaticSecret {
        &self.secret
    }

    /// The public half with its signature.
    pub fn public(&self) -> SignedPrekeyPublic {
        SignedPrekeyPublic {
            id: self.id,
            key: PublicKey::from(&self.secret).to_bytes(),
            signature: self.signature,
        }
    }
}

/// The public half of a signed X25519 prekey.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct SignedPrekeyPublic {
    /// Identifier.
    pub id: u32,
    /// X25519 public key.
    pub key: [u8; 32],
    /// Signature by the identity over the encoded key.
    pub signature: [u8; 64],
}

impl SignedPrekeyPublic {
    /// Checks the signature against the owner's signing key.
    pub fn verify(&self, signer: &[u8; 32]) -> Result<(), EdgeError> {
        verify(
            signer,
            &signed_message(SIGNED_PREKEY_CONTEXT, X25519_PREFIX, &self.key),
            &self.signature,
            "signed prekey",
        )
    }
}

/// A signed ML-KEM-768 prekey (the "last-resort" post-quantum prekey).
pub struct PqPrekey {
    /// Identifier the initiator names in its first message.
    pub id: u32,
    seed: Zeroizing<[u8; 64]>,
    decapsulation: DecapsulationKey,
    signature: [u8; 64],
}

impl PqPrekey {
    /// Derives the key pair from a 64-byte seed and signs it.
    pub fn from_seed(id: u32, seed: &[u8; 64], identity: &Identity) -> Self {
        let (decapsulation, encapsulation) = MlKem768::from_seed(&Seed::from(*seed));
        let signature = identity
            .signing
            .sign(&signed_message(
                PQ_PREKEY_CONTEXT,
                MLKEM768_PREFIX,
                &encapsulation.to_bytes(),
            ))
            .to_bytes();
        PqPrekey {
            id,
            seed: Zeroizing::new(*seed),
            decapsulation,
            signature,
        }
    }

    /// The seed, for the sealed store.
    pub fn seed(&self) -> &[u8; 64] {
        &self.seed
    }

    pub(crate) fn decapsulation_key(&self) -> &DecapsulationKey {
        &self.decapsulation
    }

    /// The public half with its signature.
    pub fn public(&self) -> PqPrekeyPublic {
        PqPrekeyPublic {
            id: self.id,
            key: self.decapsulation.encapsulation_key().to_bytes().to_vec(),
            signature: self.signature,
        }
    }
}

/// The public half of a signed ML-KEM-768 prekey.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct PqPrekeyPublic {
    /// Identifier.
    pub id: u32,
    /// Encapsulation key, 1184 bytes.
    pub key: Vec<u8>,
    /// Signature by the identity over the encoded key.
    pub signature: [u8; 64],
}

impl PqPrekeyPublic {
    /// Checks the signature and parses the key.
    pub fn verify(&self, signer: &[u8; 32]) -> Result<EncapsulationKey, EdgeError> {
        if self.key.len() != MLKEM768_KEY_LEN {
            return Err(EdgeError::InvalidKey("ML-KEM-768"));
        }
        verify(
            signer,
            &signed_message(PQ_PREKEY_CONTEXT, MLKEM768_PREFIX, &self.key),
            &self.signature,
            "PQ prekey",
        )?;
        EncapsulationKey::new_from_slice(&self.key).map_err(|_| EdgeError::InvalidKey("ML-KEM-768"))
    }
}

/// Everything an initiator needs to start a session with the owner.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct PrekeyBundle {
    /// The owner's identity.
    pub identity: IdentityPublic,
    /// The owner's signed X25519 prekey.
    pub signed_prekey: SignedPrekeyPublic,
    /// The owner's signed ML-KEM-768 prekey.
    pub pq_prekey: PqPrekeyPublic,
}

impl PrekeyBundle {
    /// Encoded length.
    pub const LEN: usize = IdentityPublic::LEN + (4 + 32 + 64) + (4 + MLKEM768_KEY_LEN + 64);

    /// `identity ‖ spk id ‖ spk ‖ spk sig ‖ pq id ‖ pq key ‖ pq sig`.
    pub fn encode(&self) -> Vec<u8> {
        let mut out = Vec::with_capacity(Self::LEN);
        self.identity.encode(&mut out);
        out.extend_from_slice(&self.signed_prekey.id.to_be_bytes());
        out.extend_from_slice(&self.signed_prekey.key);
        out.extend_from_slice(&self.signed_prekey.signature);
        out.extend_from_slice(&self.pq_prekey.id.to_be_bytes());
        out.extend_from_slice(&self.pq_prekey.key);
        out.extend_from_slice(&self.pq_prekey.signature);
        out
    }

    /// Decodes and verifies every signature.
    pub fn decode(bytes: &[u8]) -> Result<Self, EdgeError> {
        if bytes.len() != Self::LEN {
            return Err(EdgeError::Malformed("prekey bundle"));
        }
        let identity = IdentityPublic::decode(&bytes[..IdentityPublic::LEN])?;
        let rest = &bytes[IdentityPublic::LEN..];
        let mut spk = SignedPrekeyPublic {
            id: 0,
            key: [0; 32],
            signature: [0; 64],
        };
        spk.id = u32::from_be_bytes([rest[0], rest[1], rest[2], rest[3]]);
        spk.key.copy_from_slice(&rest[4..36]);
        spk.signature.copy_from_slice(&rest[36..100]);
        let rest = &rest[100..];
        let mut signature = [0u8; 64];
        signature.copy_from_slice(&rest[4 + MLKEM768_KEY_LEN..]);
        let pq = PqPrekeyPublic {
            id: u32::from_be_bytes([rest[0], rest[1], rest[2], rest[3]]),
            key: rest[4..4 + MLKEM768_KEY_LEN].to_vec(),
            signature,
        };
        let bundle = PrekeyBundle {
            identity,
            signed_prekey: spk,
            pq_prekey: pq,
        };
        bundle.verify()?;
        Ok(bundle)
    }

    /// Verifies every signature in the bundle.
    pub fn verify(&self) -> Result<EncapsulationKey, EdgeError> {
        self.identity.verify()?;
        self.signed_prekey.verify(&self.identity.signing)?;
        self.pq_prekey.verify(&self.identity.signing)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use rand::SeedableRng;
    use rand_chacha::ChaCha20Rng;

    fn bundle(rng: &mut ChaCha20Rng) -> (Identity, PrekeyBundle) {
        let id = Identity::generate(rng);
        let spk = id.new_signed_prekey(rng, 1);
        let pq = id.new_pq_prekey(rng, 2);
        let b = PrekeyBundle {
            identity: id.public(),
            signed_prekey: spk.public(),
            pq_prekey: pq.public(),
        };
        (id, b)
    }

    #[test]
    fn bundles_round_trip_and_every_flipped_byte_is_refused() {
        let mut rng = ChaCha20Rng::seed_from_u64(1);
        let (_, b) = bundle(&mut rng);
        let bytes = b.encode();
        assert_eq!(bytes.len(), PrekeyBundle::LEN);
        assert_eq!(PrekeyBundle::decode(&bytes).unwrap(), b);
        for i in
            (0..bytes.len()).filter(|i| !(IdentityPublic::LEN..IdentityPublic::LEN + 4).contains(i))
        {
            if (IdentityPublic::LEN + 100..IdentityPublic::LEN + 104).contains(&i) {
                continue; // prekey ids are not signed: they only name the key
            }
            let mut bad = bytes.clone();
            bad[i] ^= 0x01;
            assert!(PrekeyBundle::decode(&bad).is_err(), "byte {i}");
        }
        assert!(PrekeyBundle::decode(&bytes[1..]).is_err());
    }

    #[test]
    fn identities_restore_from_their_secret_bytes() {
        let mut rng = ChaCha20Rng::seed_from_u64(2);
        let id = Identity::generate(&mut rng);
        let again = Identity::from_secret_bytes(&id.to_secret_bytes());
        assert_eq!(id.public(), again.public());
        let pq = id.new_pq_prekey(&mut rng, 5);
        assert_eq!(
            PqPrekey::from_seed(5, pq.seed(), &again).public(),
            pq.public()
        );
    }

    #[test]
    fn a_prekey_signed_by_another_identity_is_refused() {
        let mut rng = ChaCha20Rng::seed_from_u64(3);
        let (_, mut b) = bundle(&mut rng);
        let (_, other) = bundle(&mut rng);
        b.signed_prekey = other.signed_prekey;
        assert_eq!(
            b.verify().unwrap_err(),
            EdgeError::BadSignature("signed prekey")
        );
    }
}
