//! Packet geometry: the named, versioned set of sizes every packet of a
//! network has. Its hash goes into the directory consensus so that nodes and
//! clients notice a mismatch before they exchange a single packet.

use sha2::{Digest, Sha256};

use crate::constants::{
    AEAD_TAG_LEN, DELIVERY_TAG_LEN, FRAME_HEADER_LEN, FRAME_VERSION, GEOMETRY_HASH_DOMAIN, ID_LEN,
    MAX_HOPS, NODE_ID_LEN, PAYLOAD_KEY_SEED_LEN, SEALED_OVERHEAD, SPHINX_HEADER_LEN,
    SPHINX_VERSION,
};
use crate::error::PacketError;

/// The packet format a geometry's packets are built in. In configuration
/// files it is written by its [`PacketFormat::name`].
#[derive(
    Clone, Copy, Debug, Default, PartialEq, Eq, Hash, serde::Serialize, serde::Deserialize,
)]
pub enum PacketFormat {
    /// Sphinx over X25519 (`sphinx-packet`, version 260).
    #[default]
    #[serde(rename = "sphinx")]
    Sphinx,
    /// One X-Wing hybrid KEM (ML-KEM-768 and X25519) per hop ([`crate::kem`]).
    #[serde(rename = "pq")]
    Kem,
}

impl PacketFormat {
    /// The name used in configuration and on the command line.
    pub fn name(self) -> &'static str {
        match self {
            PacketFormat::Sphinx => "sphinx",
            PacketFormat::Kem => "pq",
        }
    }

    /// Parses [`PacketFormat::name`].
    pub fn from_name(name: &str) -> Option<Self> {
        match name {
            "sphinx" => Some(PacketFormat::Sphinx),
            "pq" => Some(PacketFormat::Kem),
            _ => None,
        }
    }
}

/// A packet geometry: the packet format, how many hops every route has and
/// how large the payload is. One geometry gives one packet size for every
/// kind of packet.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Geometry {
    /// Human-readable name, e.g. `aegis-5x2048`.
    pub name: &'static str,
    /// Version of this geometry's definition.
    pub version: u16,
    /// Number of Sphinx hops of every route (entry gateway, mixes, exit gateway).
    pub hops: usize,
    /// Size of the payload in bytes.
    pub payload_len: usize,
    /// The packet format.
    pub format: PacketFormat,
}

/// Size of the kind byte and fragment header inside the sealed plaintext:
/// kind (1), message id, index (2), count (2), data length (2).
pub(crate) const FRAGMENT_HEADER_LEN: usize = 1 + ID_LEN + 2 + 2 + 2;

impl Geometry {
    /// The geometry of the AegisLink network: entry gateway, three mix
    /// layers, exit gateway; a 2048-byte payload (Nym's regular packet size),
    /// large enough to carry a reply block for the acknowledgement beside
    /// useful data.
    pub const STANDARD: Geometry = Geometry {
        name: "aegis-5x2048",
        version: 1,
        hops: 5,
        payload_len: 2048,
        format: PacketFormat::Sphinx,
    };

    /// The post-quantum geometry: the same five hops in the KEM format. The
    /// header is 5,965 bytes (a ciphertext per hop), and a reply block for
    /// the acknowledgement rides in every fragment, so the payload is six
    /// times the standard one: a fragment then carries 6,156 bytes of
    /// message, four times as many, for 7.6 times the bytes on the wire.
    /// `docs/benchmarks.md` has the measured trade-off.
    pub const PQ: Geometry = Geometry {
        name: "aegis-pq-5x12288",
        version: 1,
        hops: 5,
        payload_len: 12288,
        format: PacketFormat::Kem,
    };

    /// The network geometries this build knows: one per packet format.
    pub const KNOWN: [Geometry; 2] = [Geometry::STANDARD, Geometry::PQ];

    /// The network geometry of a packet format.
    pub const fn of_format(format: PacketFormat) -> Geometry {
        match format {
            PacketFormat::Sphinx => Geometry::STANDARD,
            PacketFormat::Kem => Geometry::PQ,
        }
    }

    /// The known geometry whose [`Geometry::hash`] a consensus publishes,
    /// if this build knows it.
    pub fn by_hash(hash: &[u8; 32]) -> Option<Geometry> {
        Geometry::KNOWN.into_iter().find(|g| g.hash() == *hash)
    }

    /// Checks that the geometry can be built: 1..=5 hops and a payload large
    /// enough for a fragment with its reply block and at least one data byte.
    pub fn validate(&self) -> Result<(), PacketError> {
        if self.hops == 0 || self.hops > MAX_HOPS {
            return Err(PacketError::InvalidGeometry("hops must be between 1 and 5"));
        }
        if self.payload_len > u16::MAX as usize {
            return Err(PacketError::InvalidGeometry(
                "payload larger than 65535 bytes",
            ));
        }
        if self.payload_len < SEALED_OVERHEAD + FRAGMENT_HEADER_LEN + self.surb_ack_len() + 1 {
            return Err(PacketError::InvalidGeometry(
                "payload too small for a fragment and its reply block",
            ));
        }
        Ok(())
    }

    /// Length of a packet's header in this geometry's format.
    pub const fn header_len(&self) -> usize {
        match self.format {
            PacketFormat::Sphinx => SPHINX_HEADER_LEN,
            PacketFormat::Kem => crate::kem::header::header_len(self.hops),
        }
    }

    /// Length of a packet (header and payload): the same for every kind.
    pub const fn packet_len(&self) -> usize {
        self.header_len() + self.payload_len
    }

    /// Length of a link frame carrying one packet.
    pub const fn frame_len(&self) -> usize {
        FRAME_HEADER_LEN + self.packet_len()
    }

    /// Length of the plaintext sealed to a mailbox owner inside the payload.
    pub const fn sealed_plaintext_len(&self) -> usize {
        self.payload_len - SEALED_OVERHEAD
    }

    /// Length of an encoded reply block given away: header, first hop and
    /// the last hop's payload key seed.
    pub const fn reply_block_len(&self) -> usize {
        self.header_len() + NODE_ID_LEN + PAYLOAD_KEY_SEED_LEN
    }

    /// Length of what a gateway hands a mailbox owner for one stored packet:
    /// the delivery tag the last hop saw, then the payload.
    pub const fn delivery_len(&self) -> usize {
        DELIVERY_TAG_LEN + self.payload_len
    }

    /// Length of an encoded SURB-ACK: ack id, the key the ack is sealed to
    /// (32), and the reply block.
    pub const fn surb_ack_len(&self) -> usize {
        ID_LEN + 32 + self.reply_block_len()
    }

    /// How many message bytes one fragment carries.
    pub const fn fragment_data_len(&self) -> usize {
        self.sealed_plaintext_len() - FRAGMENT_HEADER_LEN - self.surb_ack_len()
    }

    /// Largest message that can be sent: `MAX_FRAGMENTS` full fragments.
    pub const fn max_message_len(&self) -> usize {
        crate::constants::MAX_FRAGMENTS * self.fragment_data_len()
    }

    /// The geometry's canonical encoding: everything that decides what a
    /// packet looks like on the wire, including the frame and Sphinx
    /// versions. A KEM geometry appends its format's name and version, so
    /// the Sphinx geometries keep the hash they always had.
    pub fn canonical_bytes(&self) -> Vec<u8> {
        let mut out = Vec::with_capacity(64);
        out.extend_from_slice(GEOMETRY_HASH_DOMAIN);
        out.extend_from_slice(&(self.name.len() as u16).to_be_bytes());
        out.extend_from_slice(self.name.as_bytes());
        out.extend_from_slice(&self.version.to_be_bytes());
        out.push(self.hops as u8);
        out.extend_from_slice(&(self.payload_len as u32).to_be_bytes());
        out.push(FRAME_VERSION);
        out.extend_from_slice(&SPHINX_VERSION.value().to_be_bytes());
        out.extend_from_slice(&(AEAD_TAG_LEN as u16).to_be_bytes());
        if self.format == PacketFormat::Kem {
            out.extend_from_slice(crate::kem::FORMAT_NAME);
            out.push(crate::kem::FORMAT_VERSION);
        }
        out
    }

    /// SHA-256 of the canonical encoding; published in the consensus.
    pub fn hash(&self) -> [u8; 32] {
        Sha256::digest(self.canonical_bytes()).into()
    }
}

impl Default for Geometry {
    fn default() -> Self {
        Geometry::STANDARD
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn standard_geometry_is_valid_and_sized_as_documented() {
        let g = Geometry::STANDARD;
        g.validate().unwrap();
        assert_eq!(g.packet_len(), 348 + 2048);
        assert_eq!(g.frame_len(), 1 + 348 + 2048);
        assert_eq!(g.reply_block_len(), 348 + 32 + 16);
        assert_eq!(g.surb_ack_len(), 444);
        assert_eq!(g.fragment_data_len(), 2048 - 48 - 23 - 444);
        // The hash every deployed consensus carries for the standard geometry.
        assert_eq!(
            hex(&g.hash()),
            STANDARD_HASH,
            "adding the packet format must not change the Sphinx geometry's hash"
        );
    }

    #[test]
    fn post_quantum_geometry_is_valid_and_sized_as_documented() {
        let g = Geometry::PQ;
        g.validate().unwrap();
        let slot = 57 + 1120 + 16;
        assert_eq!(g.header_len(), 1120 + 16 + 4 * slot + 57);
        assert_eq!(g.header_len(), 5965);
        assert_eq!(g.packet_len(), 5965 + 12288);
        assert_eq!(g.reply_block_len(), 5965 + 32 + 16);
        assert_eq!(g.surb_ack_len(), 16 + 32 + 6013);
        assert_eq!(g.fragment_data_len(), 12288 - 48 - 23 - 6061);
        assert_ne!(g.hash(), Geometry::STANDARD.hash());
        // What an authority of a post-quantum network sets as its
        // `geometry_hash`, computed apart from this code as STANDARD_HASH.
        assert_eq!(hex(&g.hash()), PQ_HASH);
    }

    #[test]
    fn a_published_hash_names_one_known_geometry_per_format() {
        for format in [PacketFormat::Sphinx, PacketFormat::Kem] {
            let g = Geometry::of_format(format);
            assert_eq!(g.format, format);
            assert_eq!(Geometry::by_hash(&g.hash()), Some(g));
            assert_eq!(PacketFormat::from_name(format.name()), Some(format));
        }
        assert_eq!(Geometry::by_hash(&[7; 32]), None);
        let other = Geometry {
            payload_len: 4096,
            ..Geometry::STANDARD
        };
        assert_eq!(Geometry::by_hash(&other.hash()), None);
    }

    /// SHA-256 of the standard geometry's canonical bytes, computed apart
    /// from this code (Python's hashlib over the layout in docs/protocol.md).
    const STANDARD_HASH: &str = "a862322974a84d7bb405aad79f6d91263dfe938ff32de394856aa56b8fb62c75";
    /// The same for the post-quantum geometry.
    const PQ_HASH: &str = "44e57e5ba48020d2024fcefb4fa058a20c5bb8272af54d8f74602feba3600716";

    fn hex(bytes: &[u8]) -> String {
        bytes.iter().map(|b| format!("{b:02x}")).collect()
    }

    #[test]
    fn hash_changes_with_every_field() {
        let base = Geometry::STANDARD;
        let variants = [
            Geometry {
                name: "other",
                ..base.clone()
            },
            Geometry {
                version: 2,
                ..base.clone()
            },
            Geometry {
                hops: 4,
                ..base.clone()
            },
            Geometry {
                payload_len: 4096,
                ..base.clone()
            },
            Geometry {
                format: PacketFormat::Kem,
                ..base.clone()
            },
        ];
        for v in variants {
            assert_ne!(v.hash(), base.hash(), "{v:?}");
        }
        assert_eq!(base.hash(), Geometry::STANDARD.hash());
    }

    #[test]
    fn invalid_geometries_are_rejected() {
        let base = Geometry::STANDARD;
        assert!(
            Geometry {
                hops: 0,
                ..base.clone()
            }
            .validate()
            .is_err()
        );
        assert!(
            Geometry {
                hops: 6,
                ..base.clone()
            }
            .validate()
            .is_err()
        );
        assert!(
            Geometry {
                payload_len: 515,
                ..base.clone()
            }
            .validate()
            .is_err()
        );
        assert!(
            Geometry {
                payload_len: 516,
                ..base.clone()
            }
            .validate()
            .is_ok()
        );
        assert!(
            Geometry {
                payload_len: 70_000,
                ..base
            }
            .validate()
            .is_err()
        );
    }
}
