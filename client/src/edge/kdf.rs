//! Key derivation functions and their constants.
//!
//! PQXDH: HKDF-SHA-256 over `F ‖ DH1 ‖ DH2 ‖ DH3 ‖ SS` with `F` 32 bytes of
//! 0xFF and a zero salt of hash length (Signal, PQXDH rev. 3, §2.2). Double
//! Ratchet: `KDF_RK` is HKDF with the root key as salt; `KDF_CK` derives the
//! message key as HMAC(ck, 0x01) and the next chain key as HMAC(ck, 0x02)
//! (Signal, Double Ratchet §5.2). The info strings are AegisLink's own.

use hkdf::Hkdf;
use hmac::{Hmac, KeyInit, Mac};
use sha2::Sha256;
use zeroize::Zeroizing;

/// A 32-byte secret that zeroises on drop.
pub type Secret32 = Zeroizing<[u8; 32]>;

/// PQXDH info string: names the curve, hash and KEM.
pub const PQXDH_INFO: &[u8] = b"AegisLink_CURVE25519_SHA-256_ML-KEM-768";
/// PQXDH info string of sessions that run the post-quantum ratchet
/// (version 2). Another string than version 1's, so a handshake whose
/// version was changed on the way yields another SK and its first message
/// does not decrypt: the version cannot be downgraded silently.
pub const PQXDH_INFO_V2: &[u8] = b"AegisLink_CURVE25519_SHA-256_ML-KEM-768_SPQR";
/// Info for the session's initial root key and header keys derived from SK.
pub const SESSION_INFO: &[u8] = b"AegisLink_Session_HeaderKeys";
/// Info for version 2's initial keys: root key, the two header keys and
/// the post-quantum ratchet's seed.
pub const SESSION_INFO_V2: &[u8] = b"AegisLink_Session_HeaderKeys_SPQR";
/// Info for `KDF_RK`.
pub const ROOT_INFO: &[u8] = b"AegisLink_Ratchet_Root";
/// Info for expanding a message key into an AEAD key.
pub const MESSAGE_INFO: &[u8] = b"AegisLink_Ratchet_Message";
/// `KDF_CK` input byte for the message key.
pub const MESSAGE_KEY_CONSTANT: u8 = 0x01;
/// `KDF_CK` input byte for the next chain key.
pub const CHAIN_KEY_CONSTANT: u8 = 0x02;

pub(crate) fn hkdf_expand<const N: usize>(
    salt: &[u8],
    ikm: &[u8],
    info: &[u8],
) -> Zeroizing<[u8; N]> {
    let mut out = Zeroizing::new([0u8; N]);
    // Lengths here are at most 3 × 32 bytes, far within HKDF's 255 × 32.
    let _ = Hkdf::<Sha256>::new(Some(salt), ikm).expand(info, out.as_mut());
    out
}

fn split3(bytes: &[u8; 96]) -> (Secret32, Secret32, Secret32) {
    let mut a = Zeroizing::new([0u8; 32]);
    let mut b = Zeroizing::new([0u8; 32]);
    let mut c = Zeroizing::new([0u8; 32]);
    a.copy_from_slice(&bytes[..32]);
    b.copy_from_slice(&bytes[32..64]);
    c.copy_from_slice(&bytes[64..]);
    (a, b, c)
}

/// PQXDH: `SK = HKDF(salt = 0³², F ‖ DH1 ‖ DH2 ‖ DH3 ‖ SS, PQXDH_INFO)`.
pub fn pqxdh_secret(dh1: &[u8; 32], dh2: &[u8; 32], dh3: &[u8; 32], ss: &[u8]) -> Secret32 {
    pqxdh_secret_with(PQXDH_INFO, dh1, dh2, dh3, ss)
}

/// PQXDH's SK under the given info string.
pub fn pqxdh_secret_with(
    info: &[u8],
    dh1: &[u8; 32],
    dh2: &[u8; 32],
    dh3: &[u8; 32],
    ss: &[u8],
) -> Secret32 {
    let mut ikm = Zeroizing::new(Vec::with_capacity(32 * 4 + ss.len()));
    ikm.extend_from_slice(&[0xFF; 32]);
    ikm.extend_from_slice(dh1);
    ikm.extend_from_slice(dh2);
    ikm.extend_from_slice(dh3);
    ikm.extend_from_slice(ss);
    hkdf_expand::<32>(&[0u8; 32], &ikm, info)
}

/// From SK: the initial root key and the two shared header keys
/// (`shared_hka` for the initiator's first chain, `shared_nhkb` for the responder's).
pub fn session_keys(sk: &[u8; 32]) -> (Secret32, Secret32, Secret32) {
    split3(&hkdf_expand::<96>(&[0u8; 32], sk, SESSION_INFO))
}

/// Version 2, from SK: the initial root key, the two shared header keys
/// and the post-quantum ratchet's seed (128 bytes of HKDF output; with
/// header encryption this is libsignal's 96-byte split of root key, chain
/// key and post-quantum seed, the chain key's place taken by two header
/// keys).
pub fn session_keys_v2(sk: &[u8; 32]) -> (Secret32, Secret32, Secret32, Secret32) {
    let all = hkdf_expand::<128>(&[0u8; 32], sk, SESSION_INFO_V2);
    let mut first = Zeroizing::new([0u8; 96]);
    first.copy_from_slice(&all[..96]);
    let (rk, hka, nhkb) = split3(&first);
    let mut seed = Zeroizing::new([0u8; 32]);
    seed.copy_from_slice(&all[96..]);
    (rk, hka, nhkb, seed)
}

/// `KDF_RK(rk, dh_out) → (root key, chain key, next header key)`.
pub fn kdf_rk(rk: &[u8; 32], dh_out: &[u8; 32]) -> (Secret32, Secret32, Secret32) {
    split3(&hkdf_expand::<96>(rk, dh_out, ROOT_INFO))
}

fn hmac(key: &[u8; 32], byte: u8) -> Secret32 {
    let mut out = Zeroizing::new([0u8; 32]);
    // HMAC accepts keys of any length; this cannot fail.
    if let Ok(mut mac) = <Hmac<Sha256> as KeyInit>::new_from_slice(key) {
        mac.update(&[byte]);
        out.copy_from_slice(&mac.finalize().into_bytes());
    }
    out
}

/// `KDF_CK(ck) → (message key, next chain key)`.
pub fn kdf_ck(ck: &[u8; 32]) -> (Secret32, Secret32) {
    (hmac(ck, MESSAGE_KEY_CONSTANT), hmac(ck, CHAIN_KEY_CONSTANT))
}

/// The AEAD key a message key stands for.
pub fn message_aead_key(mk: &[u8; 32]) -> Secret32 {
    hkdf_expand::<32>(&[0u8; 32], mk, MESSAGE_INFO)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn hex32(s: &str) -> [u8; 32] {
        let mut out = [0u8; 32];
        for (i, b) in out.iter_mut().enumerate() {
            *b = u8::from_str_radix(&s[2 * i..2 * i + 2], 16).unwrap();
        }
        out
    }

    // Expected values computed independently (Python's hmac/hashlib, RFC 5869
    // HKDF), not by this code.
    #[test]
    fn chain_kdf_known_answers() {
        let ck = [0x42u8; 32];
        let (mk, next) = kdf_ck(&ck);
        assert_eq!(*mk, hex32(KAT_MK));
        assert_eq!(*next, hex32(KAT_CK));
    }

    #[test]
    fn root_kdf_known_answers() {
        let (rk, ck, nhk) = kdf_rk(&[0x01; 32], &[0x02; 32]);
        assert_eq!(*rk, hex32(KAT_RK_ROOT));
        assert_eq!(*ck, hex32(KAT_RK_CHAIN));
        assert_eq!(*nhk, hex32(KAT_RK_HEADER));
    }

    #[test]
    fn pqxdh_kdf_known_answer() {
        let sk = pqxdh_secret(&[1; 32], &[2; 32], &[3; 32], &[4; 32]);
        assert_eq!(*sk, hex32(KAT_PQXDH));
    }

    #[test]
    fn version_2_kdf_known_answers() {
        let sk = pqxdh_secret_with(PQXDH_INFO_V2, &[1; 32], &[2; 32], &[3; 32], &[4; 32]);
        assert_eq!(*sk, hex32(KAT_PQXDH_V2));
        let (rk, hka, nhkb, seed) = session_keys_v2(&[7; 32]);
        assert_eq!(
            [*rk, *hka, *nhkb, *seed],
            KAT_SESSION_V2.map(hex32),
            "root key, header keys, post-quantum seed"
        );
    }

    const KAT_PQXDH_V2: &str = "8d27e51333d354a6a9c5e8c2ca386e745d41f72a4e74878193f15bdf58f0da44";
    const KAT_SESSION_V2: [&str; 4] = [
        "79eb11d7664bb77a9db10e494de7c72ae87037d06def0d4afe03863b97daadc1",
        "d32c36cb31fb051d1d1a9c38238d52630c7cf8aaf76ee7970a2cb0a39aaaf620",
        "fd2cb5558b8b539193f2f472ff12d3beacc6bf9099454f0c84042e1e8cb6b41b",
        "ba74e3903d91a6dd37ed5acdc1f055b747901b55f747284d3e9b82fbadcbce06",
    ];
    const KAT_MK: &str = "0b175bca3524cc7301c33946d7e00d3f008cb14632b72855b3442a7365403893";
    const KAT_CK: &str = "4fa923f5d122080142716bf80fec4930203815c6b10199d1a871e09fe0a3c720";
    const KAT_RK_ROOT: &str = "89628d8cdc5f314ae032299b4960e47ae0868ea0137a4bd57f5771baf44b552b";
    const KAT_RK_CHAIN: &str = "7c88960afaa44a672d43560a44d8634ecf73dca2fb1ece6c771b8be6cd86d4d8";
    const KAT_RK_HEADER: &str = "217169bdb0d912fd6f7849f2dc2a6b4a8e1ff1ec0b6ee8fcf162940a94dcb2c1";
    const KAT_PQXDH: &str = "1f7b94b8d6e26e329711e741d4ae55767b6c4eb98442964abe2ef8e8340bad2c";
}
