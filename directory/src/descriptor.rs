//! Node descriptors: what a mix node or gateway says about itself for one
//! epoch, signed with its Ed25519 identity key.

use ed25519_dalek::SigningKey;
use serde::{Deserialize, Serialize};

use crate::codec::{self, DecodeError, SignatureBytes};
use crate::constants::{
    DESCRIPTOR_DOMAIN, MAX_ADDRESS_LEN, MAX_ADDRESSES, MAX_DESCRIPTOR_BYTES, MAX_VERSION_LEN,
    SPHINX_KEYS_PER_DESCRIPTOR,
};

/// What a node does in the network.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
pub enum Role {
    /// A mix node, placed in one of the mix layers.
    Mix,
    /// A gateway: clients' first hop and mailbox.
    Gateway,
}

/// A Sphinx X25519 public key and the epoch it is used in.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub struct EpochSphinxKey {
    /// The epoch this key decrypts packets of.
    pub epoch: u64,
    /// The X25519 public key.
    pub key: [u8; 32],
}

/// A hybrid KEM public key (X-Wing: ML-KEM-768 then X25519, 1,216 bytes)
/// and the epoch it is used in, for networks whose geometry uses the KEM
/// packet format.
#[derive(Debug, Clone, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub struct EpochKemKey {
    /// The epoch this key decapsulates packets of.
    pub epoch: u64,
    /// The public key, `aegis_mix_packet::kem::HybridPublic`'s encoding.
    pub key: Vec<u8>,
}

/// The signed content of a descriptor. Field order is the encoding order.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct DescriptorBody {
    /// The node's Ed25519 identity public key (also its libp2p identity).
    pub identity: [u8; 32],
    /// The epoch this descriptor is for.
    pub epoch: u64,
    /// Revision within the epoch: a node that re-uploads must increase it,
    /// so authorities can refuse replays of older uploads.
    pub revision: u64,
    /// Mix or gateway.
    pub role: Role,
    /// libp2p multiaddresses, e.g. `/ip4/192.0.2.1/tcp/4000`.
    pub addresses: Vec<String>,
    /// Sphinx public keys for epochs `epoch`, `epoch + 1`, `epoch + 2`.
    pub sphinx_keys: [EpochSphinxKey; SPHINX_KEYS_PER_DESCRIPTOR],
    /// Hybrid KEM keys for the same three epochs, or none: a node publishes
    /// them when its network's geometry uses the KEM packet format.
    pub kem_keys: Vec<EpochKemKey>,
    /// Software version string, e.g. `aegis-node/0.1.0`.
    pub version: String,
}

/// A descriptor body with the node's signature over its canonical encoding.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct SignedDescriptor {
    /// The signed content.
    pub body: DescriptorBody,
    /// Ed25519 signature by `body.identity` over the domain-separated body.
    pub signature: SignatureBytes,
}

/// Why a descriptor is refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum DescriptorError {
    /// The bytes are not a descriptor.
    #[error("undecodable descriptor: {0}")]
    Decode(#[from] DecodeError),
    /// The identity key is not a valid Ed25519 point.
    #[error("identity is not a valid Ed25519 public key")]
    BadIdentity,
    /// Address list empty or too long.
    #[error("descriptor lists {0} addresses, must be 1..={MAX_ADDRESSES}")]
    AddressCount(usize),
    /// One address is malformed.
    #[error("address {index} is invalid: {why}")]
    BadAddress {
        /// Position in the list.
        index: usize,
        /// What is wrong.
        why: &'static str,
    },
    /// Version string empty, too long or not printable ASCII.
    #[error("version string must be 1..={MAX_VERSION_LEN} printable ASCII bytes")]
    BadVersion,
    /// The Sphinx keys are not for epochs e, e+1, e+2.
    #[error("sphinx keys must be for epochs {epoch}, {epoch}+1, {epoch}+2")]
    KeyEpochs {
        /// The descriptor's epoch.
        epoch: u64,
    },
    /// The hybrid KEM keys are not none or one for each of epochs e, e+1,
    /// e+2.
    #[error("hybrid KEM keys must be none, or for epochs {epoch}, {epoch}+1, {epoch}+2")]
    KemKeyEpochs {
        /// The descriptor's epoch.
        epoch: u64,
    },
    /// A hybrid KEM key does not decode (length, or ML-KEM's modulus check).
    #[error("hybrid KEM key for epoch {0} is malformed")]
    BadKemKey(u64),
    /// A Sphinx key is the all-zero point, which would make every shared
    /// secret with it zero.
    #[error("sphinx key for epoch {0} is the zero point")]
    ZeroKey(u64),
    /// The descriptor is for a different epoch than expected.
    #[error("descriptor is for epoch {got}, expected {expected}")]
    WrongEpoch {
        /// Epoch in the descriptor.
        got: u64,
        /// Epoch the caller accepts.
        expected: u64,
    },
    /// The signature does not verify under the identity key.
    #[error("descriptor signature does not verify")]
    BadSignature,
}

impl DescriptorBody {
    /// Signs this body with the node's identity key. The key must be the one
    /// whose public half is `self.identity`.
    pub fn sign(self, identity: &SigningKey) -> SignedDescriptor {
        let signature = codec::sign(identity, DESCRIPTOR_DOMAIN, &codec::encode(&self));
        SignedDescriptor {
            body: self,
            signature,
        }
    }

    /// Checks every field's bounds, without the signature.
    pub fn validate(&self) -> Result<(), DescriptorError> {
        if ed25519_dalek::VerifyingKey::from_bytes(&self.identity).is_err() {
            return Err(DescriptorError::BadIdentity);
        }
        if self.addresses.is_empty() || self.addresses.len() > MAX_ADDRESSES {
            return Err(DescriptorError::AddressCount(self.addresses.len()));
        }
        for (index, address) in self.addresses.iter().enumerate() {
            check_address(address).map_err(|why| DescriptorError::BadAddress { index, why })?;
        }
        let version_ok = !self.version.is_empty()
            && self.version.len() <= MAX_VERSION_LEN
            && self
                .version
                .bytes()
                .all(|b| b.is_ascii_graphic() || b == b' ');
        if !version_ok {
            return Err(DescriptorError::BadVersion);
        }
        for (offset, key) in (0u64..).zip(self.sphinx_keys.iter()) {
            if Some(key.epoch) != self.epoch.checked_add(offset) {
                return Err(DescriptorError::KeyEpochs { epoch: self.epoch });
            }
            if key.key == [0u8; 32] {
                return Err(DescriptorError::ZeroKey(key.epoch));
            }
        }
        if !self.kem_keys.is_empty() {
            if self.kem_keys.len() != SPHINX_KEYS_PER_DESCRIPTOR {
                return Err(DescriptorError::KemKeyEpochs { epoch: self.epoch });
            }
            for (offset, key) in (0u64..).zip(self.kem_keys.iter()) {
                if Some(key.epoch) != self.epoch.checked_add(offset) {
                    return Err(DescriptorError::KemKeyEpochs { epoch: self.epoch });
                }
                if aegis_mix_packet::kem::HybridPublic::from_bytes(&key.key).is_err() {
                    return Err(DescriptorError::BadKemKey(key.epoch));
                }
            }
        }
        Ok(())
    }
}

/// A libp2p multiaddress in text form, checked strictly: printable ASCII
/// without spaces, starting with '/', bounded length, no empty components.
fn check_address(address: &str) -> Result<(), &'static str> {
    if address.len() < 2 || address.len() > MAX_ADDRESS_LEN {
        return Err("length out of bounds");
    }
    if !address.starts_with('/') {
        return Err("must start with '/'");
    }
    if !address.bytes().all(|b| b.is_ascii_graphic()) {
        return Err("must be printable ASCII without spaces");
    }
    if address[1..].split('/').any(str::is_empty) {
        return Err("empty component");
    }
    let mut parts = address[1..].split('/');
    match (parts.next(), parts.next()) {
        (Some("ip4"), Some("0.0.0.0")) | (Some("ip6"), Some("::")) => {
            Err("unspecified address (every interface of the node's machine): no one can dial it")
        }
        (Some("dns" | "dns4" | "dns6" | "dnsaddr"), _) => {
            Err("a DNS name: this network's nodes dial IP addresses only")
        }
        _ => Ok(()),
    }
}

/// The TCP socket address of a published multiaddress
/// (`/ip4/A/tcp/P` or `/ip6/A/tcp/P`, anything after ignored), if it is one.
pub fn tcp_address(address: &str) -> Option<std::net::SocketAddr> {
    let mut parts = address.strip_prefix('/')?.split('/');
    let ip: std::net::IpAddr = match (parts.next()?, parts.next()?) {
        ("ip4", ip) => std::net::IpAddr::V4(ip.parse().ok()?),
        ("ip6", ip) => std::net::IpAddr::V6(ip.parse().ok()?),
        _ => return None,
    };
    match (parts.next()?, parts.next()?) {
        ("tcp", port) => Some(std::net::SocketAddr::new(ip, port.parse().ok()?)),
        _ => None,
    }
}

impl SignedDescriptor {
    /// The canonical encoding.
    pub fn to_bytes(&self) -> Vec<u8> {
        codec::encode(self)
    }

    /// Decodes without verifying (for records this process stored itself).
    pub fn decode(bytes: &[u8]) -> Result<Self, DescriptorError> {
        Ok(codec::decode(bytes, MAX_DESCRIPTOR_BYTES)?)
    }

    /// Decodes and fully verifies a descriptor (bounds and signature).
    pub fn from_bytes(bytes: &[u8]) -> Result<Self, DescriptorError> {
        let descriptor: SignedDescriptor = codec::decode(bytes, MAX_DESCRIPTOR_BYTES)?;
        descriptor.verify()?;
        Ok(descriptor)
    }

    /// Checks bounds and the signature.
    pub fn verify(&self) -> Result<(), DescriptorError> {
        self.body.validate()?;
        let body = codec::encode(&self.body);
        if !codec::verify(
            &self.body.identity,
            DESCRIPTOR_DOMAIN,
            &body,
            &self.signature,
        ) {
            return Err(DescriptorError::BadSignature);
        }
        Ok(())
    }

    /// Checks bounds, signature and that the descriptor is for `epoch`.
    pub fn verify_for_epoch(&self, epoch: u64) -> Result<(), DescriptorError> {
        if self.body.epoch != epoch {
            return Err(DescriptorError::WrongEpoch {
                got: self.body.epoch,
                expected: epoch,
            });
        }
        self.verify()
    }

    /// The node's identity key.
    pub fn identity(&self) -> [u8; 32] {
        self.body.identity
    }
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;

    #[test]
    fn addresses_no_one_can_dial_are_refused_and_tcp_ones_read() {
        for bad in [
            "/ip4/0.0.0.0/tcp/4100",
            "/ip6/::/tcp/4100",
            "/dns4/mix.example/tcp/4100",
        ] {
            assert!(check_address(bad).is_err(), "{bad}");
        }
        assert!(check_address("/ip4/127.0.0.1/tcp/4100").is_ok());
        assert_eq!(
            tcp_address("/ip4/203.0.113.20/tcp/4100"),
            Some("203.0.113.20:4100".parse().unwrap())
        );
        assert_eq!(
            tcp_address("/ip6/2001:db8::1/tcp/9/p2p/x"),
            Some("[2001:db8::1]:9".parse().unwrap())
        );
        for not_tcp in [
            "/ip4/1.2.3.4/udp/9",
            "/dns4/a/tcp/9",
            "/ip4/1.2.3.4",
            "ip4/1.2.3.4/tcp/9",
            "/ip4/x/tcp/9",
        ] {
            assert_eq!(tcp_address(not_tcp), None, "{not_tcp}");
        }
    }

    /// A valid descriptor for tests, from a seed byte.
    pub(crate) fn sample(seed: u8, epoch: u64, role: Role) -> SignedDescriptor {
        let key = SigningKey::from_bytes(&[seed; 32]);
        sample_with_key(&key, epoch, role, 0)
    }

    pub(crate) fn sample_with_key(
        key: &SigningKey,
        epoch: u64,
        role: Role,
        revision: u64,
    ) -> SignedDescriptor {
        DescriptorBody {
            identity: key.verifying_key().to_bytes(),
            epoch,
            revision,
            role,
            addresses: vec!["/ip4/127.0.0.1/tcp/4000".into()],
            sphinx_keys: [0, 1, 2].map(|i| EpochSphinxKey {
                epoch: epoch + i,
                key: [9 + i as u8; 32],
            }),
            kem_keys: vec![],
            version: "aegis-node/0.1.0".into(),
        }
        .sign(key)
    }

    #[test]
    fn valid_descriptor_round_trips() {
        let d = sample(1, 10, Role::Mix);
        assert_eq!(SignedDescriptor::from_bytes(&d.to_bytes()), Ok(d));
    }

    #[test]
    fn forged_signature_is_refused() {
        let mut d = sample(1, 10, Role::Mix);
        d.body.addresses = vec!["/ip4/10.0.0.1/tcp/1".into()];
        assert_eq!(d.verify(), Err(DescriptorError::BadSignature));
    }

    #[test]
    fn key_epochs_must_follow_the_descriptor_epoch() {
        let key = SigningKey::from_bytes(&[2; 32]);
        let mut body = sample(2, 10, Role::Mix).body;
        body.sphinx_keys[2].epoch = 13;
        assert_eq!(
            body.sign(&key).verify(),
            Err(DescriptorError::KeyEpochs { epoch: 10 })
        );
    }

    #[test]
    fn hybrid_keys_are_none_or_three_that_decode() {
        let key = SigningKey::from_bytes(&[2; 32]);
        let hybrid = |seed: u8| {
            aegis_mix_packet::kem::HybridSecret::from_seed(&[seed; 32])
                .public()
                .as_bytes()
                .to_vec()
        };
        let mut body = sample(2, 10, Role::Mix).body;
        body.kem_keys = (0..3)
            .map(|i| EpochKemKey {
                epoch: 10 + i,
                key: hybrid(i as u8),
            })
            .collect();
        let signed = body.clone().sign(&key);
        assert_eq!(signed.verify(), Ok(()));
        // it fits the size limit and round-trips
        assert_eq!(SignedDescriptor::from_bytes(&signed.to_bytes()), Ok(signed));

        let mut two = body.clone();
        two.kem_keys.pop();
        assert_eq!(
            two.sign(&key).verify(),
            Err(DescriptorError::KemKeyEpochs { epoch: 10 })
        );
        let mut shifted = body.clone();
        shifted.kem_keys[1].epoch = 12;
        assert_eq!(
            shifted.sign(&key).verify(),
            Err(DescriptorError::KemKeyEpochs { epoch: 10 })
        );
        let mut short = body.clone();
        short.kem_keys[2].key.pop();
        assert_eq!(
            short.sign(&key).verify(),
            Err(DescriptorError::BadKemKey(12))
        );
        // an ML-KEM coefficient of 0xFFF is not below q = 3329
        let mut unreduced = body;
        unreduced.kem_keys[0].key[0] = 0xFF;
        unreduced.kem_keys[0].key[1] |= 0x0F;
        assert_eq!(
            unreduced.sign(&key).verify(),
            Err(DescriptorError::BadKemKey(10))
        );
    }

    #[test]
    fn addresses_are_checked_strictly() {
        for bad in [
            "",
            "ip4/1.2.3.4",
            "/ip4//tcp",
            "/ip4/1.2.3.4 /tcp/1",
            "/ïp4/1",
        ] {
            assert!(check_address(bad).is_err(), "{bad:?} accepted");
        }
        assert!(check_address(&format!("/{}", "a".repeat(MAX_ADDRESS_LEN))).is_err());
        // Nodes dial IP addresses only: a DNS name would be listed and
        // never reached.
        assert!(check_address("/dns4/example.org/tcp/443").is_err());
        let mut body = sample(3, 1, Role::Gateway).body;
        body.addresses = vec!["/ip4/1.2.3.4/tcp/1".into(); MAX_ADDRESSES + 1];
        assert_eq!(
            body.validate(),
            Err(DescriptorError::AddressCount(MAX_ADDRESSES + 1))
        );
    }

    #[test]
    fn wrong_epoch_is_refused() {
        let d = sample(4, 7, Role::Mix);
        assert_eq!(
            d.verify_for_epoch(8),
            Err(DescriptorError::WrongEpoch {
                got: 7,
                expected: 8
            })
        );
    }
}
