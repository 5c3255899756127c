//! PQXDH (Signal, revision 3) with X25519 and ML-KEM-768, without one-time
//! prekeys: AegisLink has no server to hand them out, so the signed prekey
//! and the signed post-quantum prekey from the contact card are used for
//! every session an initiator starts.
//!
//! ```text
//! DH1 = DH(IK_A, SPK_B)   DH2 = DH(EK_A, IK_B)   DH3 = DH(EK_A, SPK_B)
//! (CT, SS) = ML-KEM-768.Encaps(PQSPK_B)
//! SK = HKDF(0³², F ‖ DH1 ‖ DH2 ‖ DH3 ‖ SS, "AegisLink_CURVE25519_SHA-256_ML-KEM-768")
//! AD = Encode(IKsig_A) ‖ Encode(IK_A) ‖ Encode(IKsig_B) ‖ Encode(IK_B)
//! ```
//!
//! The responder learns nothing is wrong with a tampered ciphertext until the
//! first message fails to authenticate (ML-KEM's implicit rejection yields an
//! unrelated SS); then no state is kept.
//!
//! **Versions.** Version 1 sessions run the Double Ratchet alone; version 2
//! sessions run the sparse post-quantum ratchet beside it. The envelope's
//! type byte names the version, and the version picks the info string
//! (`PQXDH_INFO` or `PQXDH_INFO_V2`): a version changed on the way gives the
//! two sides different SKs, so the first message does not decrypt and the
//! handshake is dropped — a downgrade is never silent. New sessions are
//! version 2; a version-1 handshake (from software before it) is still
//! answered.

use ml_kem::kem::{Decapsulate, Encapsulate};
use rand::CryptoRng;
use x25519_dalek::{PublicKey, SharedSecret, StaticSecret};

use super::EdgeError;
use super::identity::{
    Identity, IdentityPublic, MLKEM768_CIPHERTEXT_LEN, PqPrekey, PrekeyBundle, SignedPrekey,
};
use super::kdf::{PQXDH_INFO, PQXDH_INFO_V2, Secret32, pqxdh_secret_with};

/// A session's protocol version.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Version {
    /// PQXDH and the Double Ratchet.
    V1,
    /// PQXDH and the Double Ratchet with the sparse post-quantum ratchet.
    V2,
}

impl Version {
    /// What new sessions use.
    pub const LATEST: Version = Version::V2;

    fn info(self) -> &'static [u8] {
        match self {
            Version::V1 => PQXDH_INFO,
            Version::V2 => PQXDH_INFO_V2,
        }
    }
}

/// What the initiator puts in front of its first message.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct InitialHeader {
    /// The session's version (carried by the envelope's type byte, not in
    /// these bytes).
    pub version: Version,
    /// The initiator's identity.
    pub identity: IdentityPublic,
    /// The initiator's ephemeral X25519 key EK_A.
    pub ephemeral: [u8; 32],
    /// Which signed prekey of the responder was used.
    pub signed_prekey_id: u32,
    /// Which PQ prekey of the responder was used.
    pub pq_prekey_id: u32,
    /// The ML-KEM-768 ciphertext.
    pub kem_ciphertext: Vec<u8>,
}

impl InitialHeader {
    /// Encoded length.
    pub const LEN: usize = IdentityPublic::LEN + 32 + 4 + 4 + MLKEM768_CIPHERTEXT_LEN;

    /// `identity ‖ EK ‖ spk id ‖ pq id ‖ CT`.
    pub fn encode(&self, out: &mut Vec<u8>) {
        self.identity.encode(out);
        out.extend_from_slice(&self.ephemeral);
        out.extend_from_slice(&self.signed_prekey_id.to_be_bytes());
        out.extend_from_slice(&self.pq_prekey_id.to_be_bytes());
        out.extend_from_slice(&self.kem_ciphertext);
    }

    /// Strict decoding of a header of `version`; verifies the initiator's
    /// identity signature.
    pub fn decode(version: Version, bytes: &[u8]) -> Result<Self, EdgeError> {
        if bytes.len() != Self::LEN {
            return Err(EdgeError::Malformed("initial header"));
        }
        let identity = IdentityPublic::decode(&bytes[..IdentityPublic::LEN])?;
        let rest = &bytes[IdentityPublic::LEN..];
        let mut ephemeral = [0u8; 32];
        ephemeral.copy_from_slice(&rest[..32]);
        Ok(InitialHeader {
            version,
            identity,
            ephemeral,
            signed_prekey_id: u32::from_be_bytes([rest[32], rest[33], rest[34], rest[35]]),
            pq_prekey_id: u32::from_be_bytes([rest[36], rest[37], rest[38], rest[39]]),
            kem_ciphertext: rest[40..].to_vec(),
        })
    }
}

/// The agreed secret and associated data of a new session.
pub struct SessionSecret {
    /// The session's version.
    pub version: Version,
    /// SK.
    pub sk: Secret32,
    /// AD.
    pub ad: Vec<u8>,
}

pub(super) fn dh(secret: &StaticSecret, public: &[u8; 32]) -> Result<SharedSecret, EdgeError> {
    let shared = secret.diffie_hellman(&PublicKey::from(*public));
    if shared.was_contributory() {
        Ok(shared)
    } else {
        Err(EdgeError::LowOrderPoint)
    }
}

fn associated_data(initiator: &IdentityPublic, responder: &IdentityPublic) -> Vec<u8> {
    let mut ad = initiator.ad_encoding();
    ad.extend_from_slice(&responder.ad_encoding());
    ad
}

/// The initiator's side: verifies the bundle, returns the header to send and
/// the session secret. The responder's signed prekey becomes the first
/// ratchet key (`bundle.signed_prekey.key`).
pub fn initiate<R: CryptoRng + ?Sized>(
    rng: &mut R,
    identity: &Identity,
    bundle: &PrekeyBundle,
) -> Result<(InitialHeader, SessionSecret), EdgeError> {
    initiate_version(rng, identity, bundle, Version::LATEST)
}

/// [`initiate`] for a given version.
pub fn initiate_version<R: CryptoRng + ?Sized>(
    rng: &mut R,
    identity: &Identity,
    bundle: &PrekeyBundle,
    version: Version,
) -> Result<(InitialHeader, SessionSecret), EdgeError> {
    let pq_key = bundle.verify()?;
    let ephemeral = StaticSecret::random_from_rng(rng);
    let dh1 = dh(identity.dh_secret(), &bundle.signed_prekey.key)?;
    let dh2 = dh(&ephemeral, &bundle.identity.dh)?;
    let dh3 = dh(&ephemeral, &bundle.signed_prekey.key)?;
    let (ciphertext, ss) = pq_key.encapsulate_with_rng(rng);
    let sk = pqxdh_secret_with(
        version.info(),
        dh1.as_bytes(),
        dh2.as_bytes(),
        dh3.as_bytes(),
        &ss,
    );
    let ours = identity.public();
    let ad = associated_data(&ours, &bundle.identity);
    let header = InitialHeader {
        version,
        identity: ours,
        ephemeral: PublicKey::from(&ephemeral).to_bytes(),
        signed_prekey_id: bundle.signed_prekey.id,
        pq_prekey_id: bundle.pq_prekey.id,
        kem_ciphertext: ciphertext.to_vec(),
    };
    Ok((header, SessionSecret { version, sk, ad }))
}

/// The responder's side, with the prekeys the header names.
pub fn respond(
    identity: &Identity,
    signed_prekey: &SignedPrekey,
    pq_prekey: &PqPrekey,
    header: &InitialHeader,
) -> Result<SessionSecret, EdgeError> {
    if header.signed_prekey_id != signed_prekey.id {
        return Err(EdgeError::UnknownPrekey(header.signed_prekey_id));
    }
    if header.pq_prekey_id != pq_prekey.id {
        return Err(EdgeError::UnknownPrekey(header.pq_prekey_id));
    }
    header.identity.verify()?;
    let dh1 = dh(signed_prekey.secret(), &header.identity.dh)?;
    let dh2 = dh(identity.dh_secret(), &header.ephemeral)?;
    let dh3 = dh(signed_prekey.secret(), &header.ephemeral)?;
    let ss = pq_prekey
        .decapsulation_key()
        .decapsulate_slice(&header.kem_ciphertext)
        .map_err(|_| EdgeError::Malformed("KEM ciphertext"))?;
    let sk = pqxdh_secret_with(
        header.version.info(),
        dh1.as_bytes(),
        dh2.as_bytes(),
        dh3.as_bytes(),
        &ss,
    );
    Ok(SessionSecret {
        version: header.version,
        sk,
        ad: associated_data(&header.identity, &identity.public()),
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use rand::SeedableRng;
    use rand_chacha::ChaCha20Rng;

    struct Bob {
        id: Identity,
        spk: SignedPrekey,
        pq: PqPrekey,
    }

    fn bob(rng: &mut ChaCha20Rng) -> Bob {
        let id = Identity::generate(rng);
        let spk = id.new_signed_prekey(rng, 7);
        let pq = id.new_pq_prekey(rng, 8);
        Bob { id, spk, pq }
    }

    fn bundle(b: &Bob) -> PrekeyBundle {
        PrekeyBundle {
            identity: b.id.public(),
            signed_prekey: b.spk.public(),
            pq_prekey: b.pq.public(),
        }
    }

    #[test]
    fn both_sides_agree() {
        let mut rng = ChaCha20Rng::seed_from_u64(1);
        let alice = Identity::generate(&mut rng);
        let b = bob(&mut rng);
        let (header, a) = initiate(&mut rng, &alice, &bundle(&b)).unwrap();
        let mut bytes = vec![];
        header.encode(&mut bytes);
        let header = InitialHeader::decode(Version::V2, &bytes).unwrap();
        let s = respond(&b.id, &b.spk, &b.pq, &header).unwrap();
        assert_eq!(*a.sk, *s.sk);
        assert_eq!(a.ad, s.ad);
    }

    #[test]
    fn a_tampered_kem_ciphertext_gives_a_different_secret() {
        let mut rng = ChaCha20Rng::seed_from_u64(2);
        let alice = Identity::generate(&mut rng);
        let b = bob(&mut rng);
        let (mut header, a) = initiate(&mut rng, &alice, &bundle(&b)).unwrap();
        header.kem_ciphertext[100] ^= 1;
        let s = respond(&b.id, &b.spk, &b.pq, &header).unwrap();
        assert_ne!(*a.sk, *s.sk);
    }

    #[test]
    fn a_changed_version_gives_a_different_secret() {
        let mut rng = ChaCha20Rng::seed_from_u64(5);
        let alice = Identity::generate(&mut rng);
        let b = bob(&mut rng);
        for version in [Version::V1, Version::V2] {
            let (mut header, a) = initiate_version(&mut rng, &alice, &bundle(&b), version).unwrap();
            let same = respond(&b.id, &b.spk, &b.pq, &header).unwrap();
            assert_eq!(*a.sk, *same.sk);
            assert_eq!(same.version, version);
            header.version = match version {
                Version::V1 => Version::V2,
                Version::V2 => Version::V1,
            };
            let changed = respond(&b.id, &b.spk, &b.pq, &header).unwrap();
            assert_ne!(*a.sk, *changed.sk, "a version changed on the way");
        }
    }

    #[test]
    fn low_order_ephemeral_keys_are_refused() {
        let mut rng = ChaCha20Rng::seed_from_u64(3);
        let alice = Identity::generate(&mut rng);
        let b = bob(&mut rng);
        let (mut header, _) = initiate(&mut rng, &alice, &bundle(&b)).unwrap();
        for point in [[0u8; 32], {
            let mut one = [0u8; 32];
            one[0] = 1;
            one
        }] {
            header.ephemeral = point;
            assert_eq!(
                respond(&b.id, &b.spk, &b.pq, &header).err(),
                Some(EdgeError::LowOrderPoint)
            );
        }
    }

    #[test]
    fn wrong_prekey_ids_and_forged_bundles_are_refused() {
        let mut rng = ChaCha20Rng::seed_from_u64(4);
        let alice = Identity::generate(&mut rng);
        let b = bob(&mut rng);
        let (mut header, _) = initiate(&mut rng, &alice, &bundle(&b)).unwrap();
        header.signed_prekey_id = 99;
        assert_eq!(
            respond(&b.id, &b.spk, &b.pq, &header).err(),
            Some(EdgeError::UnknownPrekey(99))
        );
        let mut forged = bundle(&b);
        forged.pq_prekey.key[0] ^= 1;
        assert!(initiate(&mut rng, &alice, &forged).is_err());
    }
}
