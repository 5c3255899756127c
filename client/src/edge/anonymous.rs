//! Anonymous messages and the replies to them.
//!
//! An anonymous message is sealed to the recipient's card with no identity
//! of the sender: PQXDH's ephemeral parts only (no DH with the sender's
//! identity key, which would name it), so the recipient learns that
//! *someone* holding its card wrote, and nothing about who.
//!
//! ```text
//! DH = DH(EK, SPK_B)    (CT, SS) = ML-KEM-768.Encaps(PQSPK_B)
//! S  = HKDF(0³², F ‖ DH ‖ SS, "AegisLink_Anonymous_CURVE25519_SHA-256_ML-KEM-768")
//! K_forward ‖ K_reply = HKDF(S, "AegisLink_Anonymous_Keys")
//! message = EK (32) ‖ SPK id (4) ‖ PQSPK id (4) ‖ CT (1088)
//!           ‖ XChaCha20-Poly1305(K_forward, AD = header ‖ Encode(IK_B))
//! reply   = thread (16) ‖ XChaCha20-Poly1305(K_reply, AD = thread)
//! ```
//!
//! The reply key is the writer's only way to be answered: replies travel
//! over the reply blocks the message carries, and only the writer can read
//! them. There is no ratchet: every anonymous message starts a thread of
//! its own with fresh keys, and its forward secrecy is that of PQXDH's
//! first message (the recipient's signed prekeys).

use ml_kem::kem::{Decapsulate, Encapsulate};
use rand::CryptoRng;
use x25519_dalek::{PublicKey, StaticSecret};
use zeroize::Zeroizing;

use super::EdgeError;
use super::identity::{
    IdentityPublic, MLKEM768_CIPHERTEXT_LEN, PqPrekey, PrekeyBundle, SignedPrekey,
};
use super::kdf::Secret32;
use super::pqxdh::dh;
use super::ratchet::{open, seal};

/// Info string of the anonymous secret.
const ANONYMOUS_INFO: &[u8] = b"AegisLink_Anonymous_CURVE25519_SHA-256_ML-KEM-768";
/// Info string of the two keys drawn from it.
const KEYS_INFO: &[u8] = b"AegisLink_Anonymous_Keys";

/// Length of the header in front of an anonymous message.
pub const HEADER_LEN: usize = 32 + 4 + 4 + MLKEM768_CIPHERTEXT_LEN;

/// A thread's id: the first 16 bytes the writer chose inside the message.
pub type ThreadId = [u8; 16];

/// The keys of one anonymous thread.
pub struct ThreadKeys {
    /// Seals the message (writer to recipient).
    pub forward: Secret32,
    /// Seals the replies (recipient to writer).
    pub reply: Secret32,
}

fn keys(dh: &[u8; 32], ss: &[u8]) -> ThreadKeys {
    let mut ikm = Zeroizing::new(Vec::with_capacity(64 + ss.len()));
    ikm.extend_from_slice(&[0xFF; 32]);
    ikm.extend_from_slice(dh);
    ikm.extend_from_slice(ss);
    let mut secret = Zeroizing::new([0u8; 32]);
    let _ = hkdf::Hkdf::<sha2::Sha256>::new(Some(&[0u8; 32]), &ikm)
        .expand(ANONYMOUS_INFO, secret.as_mut());
    let mut both = Zeroizing::new([0u8; 64]);
    let _ = hkdf::Hkdf::<sha2::Sha256>::new(Some(secret.as_ref()), &[])
        .expand(KEYS_INFO, both.as_mut());
    let (mut forward, mut reply) = (Zeroizing::new([0u8; 32]), Zeroizing::new([0u8; 32]));
    forward.copy_from_slice(&both[..32]);
    reply.copy_from_slice(&both[32..]);
    ThreadKeys { forward, reply }
}

fn ad(header: &[u8], recipient: &IdentityPublic) -> Vec<u8> {
    let mut ad = header.to_vec();
    ad.extend_from_slice(&recipient.ad_encoding());
    ad
}

/// Seals `plaintext` anonymously to the owner of `bundle`: the bytes to
/// send and the thread's keys (the writer keeps `reply`).
pub fn seal_anonymous<R: CryptoRng + ?Sized>(
    rng: &mut R,
    bundle: &PrekeyBundle,
    plaintext: &[u8],
) -> Result<(Vec<u8>, ThreadKeys), EdgeError> {
    let pq_key = bundle.verify()?;
    let ephemeral = StaticSecret::random_from_rng(rng);
    let shared = dh(&ephemeral, &bundle.signed_prekey.key)?;
    let (ciphertext, ss) = pq_key.encapsulate_with_rng(rng);
    let thread_keys = keys(shared.as_bytes(), &ss);
    let mut out = Vec::with_capacity(HEADER_LEN + plaintext.len() + 40);
    out.extend_from_slice(PublicKey::from(&ephemeral).as_bytes());
    out.extend_from_slice(&bundle.signed_prekey.id.to_be_bytes());
    out.extend_from_slice(&bundle.pq_prekey.id.to_be_bytes());
    out.extend_from_slice(&ciphertext);
    let sealed = seal(
        &thread_keys.forward,
        rng,
        &ad(&out, &bundle.identity),
        plaintext,
    );
    out.extend_from_slice(&sealed);
    Ok((out, thread_keys))
}

/// The prekey ids an anonymous message names.
pub fn prekey_ids(bytes: &[u8]) -> Option<(u32, u32)> {
    let ids = bytes.get(32..40)?;
    Some((
        u32::from_be_bytes([ids[0], ids[1], ids[2], ids[3]]),
        u32::from_be_bytes([ids[4], ids[5], ids[6], ids[7]]),
    ))
}

/// Opens an anonymous message with the prekeys it names.
pub fn open_anonymous(
    identity: &IdentityPublic,
    signed_prekey: &SignedPrekey,
    pq_prekey: &PqPrekey,
    bytes: &[u8],
) -> Result<(Zeroizing<Vec<u8>>, ThreadKeys), EdgeError> {
    if bytes.len() <= HEADER_LEN {
        return Err(EdgeError::Malformed("anonymous message"));
    }
    let (header, sealed) = bytes.split_at(HEADER_LEN);
    let mut ephemeral = [0u8; 32];
    ephemeral.copy_from_slice(&header[..32]);
    let shared = dh(signed_prekey.secret(), &ephemeral)?;
    let ss = pq_prekey
        .decapsulation_key()
        .decapsulate_slice(&header[40..])
        .map_err(|_| EdgeError::Malformed("KEM ciphertext"))?;
    let thread_keys = keys(shared.as_bytes(), &ss);
    let plaintext = open(&thread_keys.forward, &ad(header, identity), sealed)
        .ok_or(EdgeError::Malformed("anonymous message"))?;
    Ok((plaintext, thread_keys))
}

/// Seals a reply in `thread` under the thread's reply key.
pub fn seal_reply<R: CryptoRng + ?Sized>(
    rng: &mut R,
    reply_key: &[u8; 32],
    thread: &ThreadId,
    plaintext: &[u8],
) -> Vec<u8> {
    let mut out = thread.to_vec();
    out.extend_from_slice(&seal(reply_key, rng, thread, plaintext));
    out
}

/// The thread a reply names.
pub fn reply_thread(bytes: &[u8]) -> Option<ThreadId> {
    bytes.get(..16)?.try_into().ok()
}

/// Opens a reply with its thread's reply key.
pub fn open_reply(reply_key: &[u8; 32], bytes: &[u8]) -> Result<Zeroizing<Vec<u8>>, EdgeError> {
    let thread = reply_thread(bytes).ok_or(EdgeError::Malformed("reply"))?;
    open(reply_key, &thread, &bytes[16..]).ok_or(EdgeError::Malformed("reply"))
}

#[cfg(test)]
mod tests {
    use rand::SeedableRng;
    use rand_chacha::ChaCha20Rng;

    use super::*;
    use crate::edge::identity::Identity;

    #[test]
    fn an_anonymous_message_opens_with_the_prekeys_and_names_no_sender() {
        let mut rng = ChaCha20Rng::seed_from_u64(5);
        let bob = Identity::generate(&mut rng);
        let (spk, pq) = (
            bob.new_signed_prekey(&mut rng, 3),
            bob.new_pq_prekey(&mut rng, 4),
        );
        let bundle = PrekeyBundle {
            identity: bob.public(),
            signed_prekey: spk.public(),
            pq_prekey: pq.public(),
        };
        let (bytes, writer) = seal_anonymous(&mut rng, &bundle, b"who am I?").unwrap();
        assert_eq!(prekey_ids(&bytes), Some((3, 4)));
        let (plaintext, reader) = open_anonymous(&bob.public(), &spk, &pq, &bytes).unwrap();
        assert_eq!(plaintext.as_slice(), b"who am I?");
        assert_eq!(*writer.reply, *reader.reply);
        // No identity key of any writer appears in it: the same writer's
        // two messages share no bytes beyond the prekey ids.
        let (again, _) = seal_anonymous(&mut rng, &bundle, b"who am I?").unwrap();
        assert_ne!(bytes[..32], again[..32]);
        // Every single-bit flip is refused.
        for i in (0..bytes.len()).step_by(97) {
            let mut bad = bytes.clone();
            bad[i] ^= 1;
            assert!(
                open_anonymous(&bob.public(), &spk, &pq, &bad).is_err(),
                "bit at {i}"
            );
        }
        assert!(open_anonymous(&bob.public(), &spk, &pq, &bytes[..HEADER_LEN]).is_err());
        // The reply opens only with the thread's key, for its thread.
        let thread = [9u8; 16];
        let reply = seal_reply(&mut rng, &reader.reply, &thread, b"hello, stranger");
        assert_eq!(reply_thread(&reply), Some(thread));
        assert_eq!(
            open_reply(&writer.reply, &reply).unwrap().as_slice(),
            b"hello, stranger"
        );
        assert!(open_reply(&writer.forward, &reply).is_err());
        let mut moved = reply.clone();
        moved[0] ^= 1;
        assert!(
            open_reply(&writer.reply, &moved).is_err(),
            "bound to its thread"
        );
    }
}
