use super::header::{self, ROUTING_LEN, Routing};
use super::xwing::{CIPHERTEXT_LEN, HybridPublic, HybridSecret, PUBLIC_LEN};
use crate::error::PacketError;
use crate::route::{Destination, MailboxId, NodeId};

/// The X-Wing draft's known-answer vectors (`tests/vectors/xwing.txt`).
const XWING_VECTORS: &str = include_str!("../../tests/vectors/xwing.txt");

fn unhex(s: &str) -> Vec<u8> {
    (0..s.len())
        .step_by(2)
        .map(|i| u8::from_str_radix(&s[i..i + 2], 16).unwrap())
        .collect()
}

fn vectors() -> Vec<std::collections::HashMap<String, Vec<u8>>> {
    XWING_VECTORS
        .split("\n\n")
        .map(|block| {
            block
                .lines()
                .filter(|l| !l.starts_with('#') && l.contains(" = "))
                .map(|l| {
                    let (k, v) = l.split_once(" = ").unwrap();
                    (k.to_string(), unhex(v.trim()))
                })
                .collect::<std::collections::HashMap<_, _>>()
        })
        .filter(|v| !v.is_empty())
        .collect()
}

#[test]
fn x_wing_matches_the_drafts_vectors() {
    let all = vectors();
    assert_eq!(all.len(), 3);
    for v in all {
        let secret = HybridSecret::from_seed(v["sk"].as_slice().try_into().unwrap());
        assert_eq!(secret.public().as_bytes().as_slice(), v["pk"].as_slice());
        let public = HybridPublic::from_bytes(&v["pk"]).unwrap();
        let (ct, ss) = public.encapsulate_derand(v["eseed"].as_slice().try_into().unwrap());
        assert_eq!(ct.as_slice(), v["ct"].as_slice());
        assert_eq!(ss.as_slice(), v["ss"].as_slice());
        let ct: [u8; CIPHERTEXT_LEN] = v["ct"].as_slice().try_into().unwrap();
        assert_eq!(secret.decapsulate(&ct).as_slice(), v["ss"].as_slice());
    }
}

#[test]
fn a_tampered_ciphertext_gives_an_unrelated_secret() {
    let mut rng = rand::rng();
    let secret = HybridSecret::random(&mut rng);
    let (ct, ss) = secret.public().encapsulate(&mut rng);
    // in ML-KEM's part, in the X25519 point, and its ignored top bit
    for (byte, bit) in [(0, 0), (1087, 7), (1088, 0), (1119, 7)] {
        let mut bad = ct;
        bad[byte] ^= 1 << bit;
        assert_ne!(*secret.decapsulate(&bad), *ss, "byte {byte} bit {bit}");
    }
    let other = HybridSecret::random(&mut rng);
    assert_ne!(*other.decapsulate(&ct), *ss);
}

#[test]
fn public_keys_decode_strictly() {
    let mut rng = rand::rng();
    let key = HybridSecret::random(&mut rng);
    let bytes = key.public().as_bytes().to_vec();
    assert_eq!(&HybridPublic::from_bytes(&bytes).unwrap(), key.public());
    for len in [0, PUBLIC_LEN - 1, PUBLIC_LEN + 1] {
        let mut b = bytes.clone();
        b.resize(len, 0);
        assert!(matches!(
            HybridPublic::from_bytes(&b),
            Err(PacketError::MalformedKey(_))
        ));
    }
    // A coefficient of 0xFFF is not below q = 3329: FIPS 203's modulus check.
    let mut bad = bytes;
    bad[0] = 0xFF;
    bad[1] |= 0x0F;
    assert!(matches!(
        HybridPublic::from_bytes(&bad),
        Err(PacketError::MalformedKey(_))
    ));
    // The seed is all a node stores: it gives back the same key.
    assert_eq!(HybridSecret::from_seed(key.seed()).public(), key.public());
}

#[test]
fn routing_commands_decode_strictly() {
    let forward = Routing::Forward {
        next: NodeId([7; 32]),
        delay_nanos: 1234,
    };
    let last = Routing::Final {
        destination: Destination::Mailbox(MailboxId([9; 32])),
        tag: [3; 16],
    };
    let drop = Routing::Final {
        destination: Destination::Drop,
        tag: [4; 16],
    };
    for r in [forward, last, drop] {
        let bytes = header::encode_routing(&r);
        assert_eq!(bytes.len(), ROUTING_LEN);
        assert_eq!(header::decode_routing(&bytes).unwrap(), r);
    }
    let mut unknown = header::encode_routing(&Routing::Forward {
        next: NodeId([1; 32]),
        delay_nanos: 0,
    });
    for kind in [0x00, 0x03, 0xFF] {
        unknown[0] = kind;
        assert!(matches!(
            header::decode_routing(&unknown),
            Err(PacketError::MalformedRouting(_))
        ));
    }
    // a forward command with a tag, a final one with a delay
    let mut tagged = header::encode_routing(&Routing::Forward {
        next: NodeId([1; 32]),
        delay_nanos: 0,
    });
    tagged[ROUTING_LEN - 1] = 1;
    assert!(header::decode_routing(&tagged).is_err());
    let mut delayed = header::encode_routing(&Routing::Final {
        destination: Destination::Drop,
        tag: [0; 16],
    });
    delayed[40] = 1;
    assert!(header::decode_routing(&delayed).is_err());
}

#[test]
fn libcrux_and_the_rustcrypto_ml_kem_agree() {
    use ml_kem::kem::{Decapsulate, FromSeed, KeyExport};
    use rand::RngExt;
    let mut rng = rand::rng();
    for _ in 0..8 {
        let d_z: [u8; 64] = rng.random();
        let m: [u8; 32] = rng.random();
        let pair = libcrux_ml_kem::mlkem768::generate_key_pair(d_z);
        let (ct, ss) = libcrux_ml_kem::mlkem768::encapsulate(pair.public_key(), m);
        let (dk, ek) = ml_kem::MlKem768::from_seed(&ml_kem::Seed::from(d_z));
        assert_eq!(ek.to_bytes().as_slice(), pair.public_key().as_slice());
        let (ct2, ss2) = ek.encapsulate_deterministic(&ml_kem::B32::from(m));
        assert_eq!(ct2.as_slice(), ct.as_slice());
        assert_eq!(ss2.as_slice(), ss.as_slice());
        assert_eq!(dk.decapsulate(&ct2).as_slice(), ss.as_slice());
    }
}
