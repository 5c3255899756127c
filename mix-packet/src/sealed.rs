//! The sealed box: what a mailbox owner receives.
//!
//! Every packet that ends in a mailbox carries, after its last Sphinx layer is
//! removed, one sealed box filling the whole payload: an ephemeral X25519 key
//! and a ChaCha20-Poly1305 ciphertext under a key only the mailbox owner can
//! derive. Real fragments, loop cover and acknowledgements all look like this,
//! so the exit gateway storing them cannot tell them apart.

use chacha20poly1305::aead::AeadInOut;
use chacha20poly1305::{ChaCha20Poly1305, KeyInit, Nonce, Tag};
use hkdf::Hkdf;
use rand::CryptoRng;
use sha2::Sha256;
use x25519_dalek::{PublicKey, StaticSecret};
use zeroize::Zeroizing;

use crate::constants::{AEAD_TAG_LEN, SEALED_BOX_INFO, SEALED_OVERHEAD, X25519_KEY_LEN};
use crate::error::PacketError;

fn derive_cipher(
    shared: &x25519_dalek::SharedSecret,
    ephemeral: &[u8; X25519_KEY_LEN],
    recipient: &PublicKey,
) -> Result<ChaCha20Poly1305, PacketError> {
    if !shared.was_contributory() {
        return Err(PacketError::LowOrderKey);
    }
    let mut salt = [0u8; 2 * X25519_KEY_LEN];
    salt[..X25519_KEY_LEN].copy_from_slice(ephemeral);
    salt[X25519_KEY_LEN..].copy_from_slice(recipient.as_bytes());
    let hk = Hkdf::<Sha256>::new(Some(&salt), shared.as_bytes());
    let mut key = Zeroizing::new([0u8; 32]);
    hk.expand(SEALED_BOX_INFO, key.as_mut())
        .map_err(|_| PacketError::Construction("hkdf output length".into()))?;
    Ok(ChaCha20Poly1305::new(&(*key).into()))
}

/// Seals `plaintext` to `recipient`. The output is `plaintext.len() + 48` bytes.
/// Each box uses a fresh ephemeral key, hence a fresh AEAD key, so the fixed
/// nonce is never reused under one key.
pub fn seal<R: CryptoRng + ?Sized>(
    rng: &mut R,
    recipient: &PublicKey,
    plaintext: &[u8],
) -> Result<Vec<u8>, PacketError> {
    let ephemeral = StaticSecret::random_from_rng(rng);
    let ephemeral_public = PublicKey::from(&ephemeral).to_bytes();
    let cipher = derive_cipher(
        &ephemeral.diffie_hellman(recipient),
        &ephemeral_public,
        recipient,
    )?;

    let mut out = Vec::with_capacity(plaintext.len() + SEALED_OVERHEAD);
    out.extend_from_slice(&ephemeral_public);
    out.extend_from_slice(plaintext);
    let tag = cipher
        .encrypt_inout_detached(&Nonce::default(), &[], (&mut out[X25519_KEY_LEN..]).into())
        .map_err(|_| PacketError::Construction("plaintext too long for the AEAD".into()))?;
    out.extend_from_slice(&tag);
    Ok(out)
}

/// Opens a sealed box with the mailbox owner's secret key.
pub fn open(secret: &StaticSecret, sealed: &[u8]) -> Result<Vec<u8>, PacketError> {
    if sealed.len() < SEALED_OVERHEAD {
        return Err(PacketError::PayloadAuthentication);
    }
    let (ephemeral, rest) = sealed.split_at(X25519_KEY_LEN);
    let (ciphertext, tag) = rest.split_at(rest.len() - AEAD_TAG_LEN);
    let mut ephemeral_bytes = [0u8; X25519_KEY_LEN];
    ephemeral_bytes.copy_from_slice(ephemeral);
    let shared = secret.diffie_hellman(&PublicKey::from(ephemeral_bytes));
    let cipher = derive_cipher(&shared, &ephemeral_bytes, &PublicKey::from(secret))?;

    let mut plaintext = ciphertext.to_vec();
    let tag = Tag::try_from(tag).map_err(|_| PacketError::PayloadAuthentication)?;
    cipher
        .decrypt_inout_detached(
            &Nonce::default(),
            &[],
            plaintext.as_mut_slice().into(),
            &tag,
        )
        .map_err(|_| PacketError::PayloadAuthentication)?;
    Ok(plaintext)
}

#[cfg(test)]
mod tests {
    use super::*;
    use rand::SeedableRng;
    use rand_chacha::ChaCha20Rng;

    #[test]
    fn seal_then_open_round_trips_and_only_the_recipient_opens() {
        let mut rng = ChaCha20Rng::seed_from_u64(3);
        let alice = StaticSecret::random_from_rng(&mut rng);
        let mallory = StaticSecret::random_from_rng(&mut rng);
        let boxed = seal(&mut rng, &PublicKey::from(&alice), b"hello mailbox").unwrap();
        assert_eq!(boxed.len(), 13 + SEALED_OVERHEAD);
        assert_eq!(open(&alice, &boxed).unwrap(), b"hello mailbox");
        assert_eq!(
            open(&mallory, &boxed),
            Err(PacketError::PayloadAuthentication)
        );
    }

    #[test]
    fn every_flipped_bit_is_detected() {
        let mut rng = ChaCha20Rng::seed_from_u64(4);
        let alice = StaticSecret::random_from_rng(&mut rng);
        let boxed = seal(&mut rng, &PublicKey::from(&alice), &[7u8; 40]).unwrap();
        for bit in 0..boxed.len() * 8 {
            let mut bad = boxed.clone();
            bad[bit / 8] ^= 1 << (bit % 8);
            assert!(open(&alice, &bad).is_err(), "bit {bit}");
        }
    }

    #[test]
    fn low_order_keys_are_rejected() {
        let mut rng = ChaCha20Rng::seed_from_u64(5);
        let zero = PublicKey::from([0u8; 32]);
        assert_eq!(seal(&mut rng, &zero, b"x"), Err(PacketError::LowOrderKey));
        let alice = StaticSecret::random_from_rng(&mut rng);
        let mut forged = vec![0u8; 64];
        forged[0] = 1; // u = 1 is of low order too
        assert_eq!(open(&alice, &forged), Err(PacketError::LowOrderKey));
        assert_eq!(
            open(&alice, &[0u8; 10]),
            Err(PacketError::PayloadAuthentication)
        );
    }
}
