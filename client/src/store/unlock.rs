//! Unlocking: from a passphrase to keys with Argon2id, and the cleartext
//! header — format version, parameters, salt and a sealed known string —
//! that stores and backups begin with.

use hkdf::Hkdf;
use sha2::Sha256;
use zeroize::Zeroizing;

use super::{SALT_LEN, StoreError};
use crate::edge::ratchet::{open as aead_open, seal as aead_seal};

/// The known string sealed in the header: it opens only under the right key.
const KEY_CHECK_PLAINTEXT: &[u8] = b"AegisLink store key check";
/// XChaCha20-Poly1305 nonce length.
pub(super) const NONCE_LEN: usize = 24;
/// Poly1305 tag length.
pub(super) const TAG_LEN: usize = 16;
const KEY_CHECK_LEN: usize = NONCE_LEN + KEY_CHECK_PLAINTEXT.len() + TAG_LEN;
/// m, t and p, four bytes each.
const PARAMS_LEN: usize = 12;
/// `version (1) ‖ m (4) ‖ t (4) ‖ p (4) ‖ salt (16) ‖ key check`.
pub(super) const HEADER_LEN: usize = 1 + PARAMS_LEN + SALT_LEN + KEY_CHECK_LEN;

/// Argon2id cost parameters.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Argon2Params {
    /// Memory in KiB (m).
    pub memory_kib: u32,
    /// Passes over the memory (t).
    pub iterations: u32,
    /// Lanes (p).
    pub parallelism: u32,
}

impl Argon2Params {
    /// Most memory a store or backup may ask for (4 GiB): a header is read
    /// before anything authenticates it, so its cost must be bounded.
    pub const MAX_MEMORY_KIB: u32 = 4 * 1024 * 1024;
    /// Most passes a header may ask for.
    pub const MAX_ITERATIONS: u32 = 64;
    /// Most lanes a header may ask for.
    pub const MAX_PARALLELISM: u32 = 16;

    /// The production default: 64 MiB, 3 passes, 1 lane (about a second on a phone).
    pub const DEFAULT: Argon2Params = Argon2Params {
        memory_kib: 64 * 1024,
        iterations: 3,
        parallelism: 1,
    };

    /// **Insecure**: the smallest parameters Argon2id allows (8 KiB, 1 pass),
    /// so tests run fast. A store made with these falls to a passphrase
    /// guessing attack at millions of guesses per second; never use them
    /// for real data.
    pub const fn insecure_fast() -> Self {
        Argon2Params {
            memory_kib: 8,
            iterations: 1,
            parallelism: 1,
        }
    }

    /// Checks the parameters against Argon2's minimums and this store's maximums.
    pub fn validate(&self) -> Result<(), StoreError> {
        if self.parallelism == 0 || self.parallelism > Self::MAX_PARALLELISM {
            return Err(StoreError::InvalidParams("parallelism must be 1 to 16"));
        }
        if self.iterations == 0 || self.iterations > Self::MAX_ITERATIONS {
            return Err(StoreError::InvalidParams("iterations must be 1 to 64"));
        }
        if self.memory_kib < 8 * self.parallelism || self.memory_kib > Self::MAX_MEMORY_KIB {
            return Err(StoreError::InvalidParams(
                "memory must be 8 KiB per lane to 4 GiB",
            ));
        }
        Ok(())
    }

    fn encode(&self, out: &mut Vec<u8>) {
        out.extend_from_slice(&self.memory_kib.to_be_bytes());
        out.extend_from_slice(&self.iterations.to_be_bytes());
        out.extend_from_slice(&self.parallelism.to_be_bytes());
    }

    fn decode(bytes: &[u8; PARAMS_LEN]) -> Self {
        let word =
            |i: usize| u32::from_be_bytes([bytes[i], bytes[i + 1], bytes[i + 2], bytes[i + 3]]);
        Argon2Params {
            memory_kib: word(0),
            iterations: word(4),
            parallelism: word(8),
        }
    }

    /// Argon2id of the passphrase: the 32-byte master key.
    fn derive(&self, passphrase: &[u8], salt: &[u8; SALT_LEN]) -> Result<Key, StoreError> {
        self.validate()?;
        let params =
            argon2::Params::new(self.memory_kib, self.iterations, self.parallelism, Some(32))
                .map_err(|_| StoreError::InvalidParams("refused by Argon2"))?;
        let argon =
            argon2::Argon2::new(argon2::Algorithm::Argon2id, argon2::Version::V0x13, params);
        let mut master = Key::default();
        argon
            .hash_password_into(passphrase, salt, &mut master[..])
            .map_err(|_| StoreError::InvalidParams("refused by Argon2"))?;
        Ok(master)
    }
}

impl Default for Argon2Params {
    fn default() -> Self {
        Argon2Params::DEFAULT
    }
}

/// A 32-byte key that zeroises on drop.
pub(super) type Key = Zeroizing<[u8; 32]>;

/// HKDF-SHA256 of the master key for one purpose.
pub(super) fn expand(master: &Key, info: &[u8]) -> Key {
    let mut out = Key::default();
    // 32 bytes is far below HKDF-SHA256's limit of 8160.
    let _ = Hkdf::<Sha256>::new(None, &master[..]).expand(info, &mut out[..]);
    out
}

fn random_bytes<const N: usize>() -> [u8; N] {
    use rand::Rng;
    let mut out = [0u8; N];
    rand::rng().fill_bytes(&mut out);
    out
}

/// The cleartext header shared by stores and backups: version, parameters,
/// salt, and the sealed known string.
pub(super) struct Header {
    pub(super) params: Argon2Params,
    salt: [u8; SALT_LEN],
    key_check: Vec<u8>,
}

impl Header {
    /// Derives a new key from `passphrase` under a fresh salt; returns the
    /// header and the master key.
    pub(super) fn create(
        params: Argon2Params,
        passphrase: &[u8],
        key_check_info: &[u8],
        key_check_ad: &[u8],
    ) -> Result<(Self, Key), StoreError> {
        let salt = random_bytes::<SALT_LEN>();
        let master = params.derive(passphrase, &salt)?;
        let key_check = aead_seal(
            &expand(&master, key_check_info),
            &mut rand::rng(),
            key_check_ad,
            KEY_CHECK_PLAINTEXT,
        );
        let header = Header {
            params,
            salt,
            key_check,
        };
        Ok((header, master))
    }

    /// Derives the key from `passphrase`; `None` if the key check does not open.
    pub(super) fn unlock(
        &self,
        passphrase: &[u8],
        key_check_info: &[u8],
        key_check_ad: &[u8],
    ) -> Result<Option<Key>, StoreError> {
        let master = self.params.derive(passphrase, &self.salt)?;
        let opened = aead_open(
            &expand(&master, key_check_info),
            key_check_ad,
            &self.key_check,
        );
        Ok(match opened {
            Some(text) if text.as_slice() == KEY_CHECK_PLAINTEXT => Some(master),
            _ => None,
        })
    }

    pub(super) fn encode(&self, version: u8) -> Vec<u8> {
        let mut out = Vec::with_capacity(HEADER_LEN);
        out.push(version);
        self.params.encode(&mut out);
        out.extend_from_slice(&self.salt);
        out.extend_from_slice(&self.key_check);
        out
    }

    /// Strict decoding of exactly [`HEADER_LEN`] bytes of a known version.
    pub(super) fn decode(
        bytes: &[u8],
        what: &'static str,
        known_version: u8,
    ) -> Result<Self, StoreError> {
        let Some((&version, rest)) = bytes.split_first() else {
            return Err(StoreError::CorruptHeader("empty header"));
        };
        if version != known_version {
            return Err(StoreError::UnsupportedVersion { what, version });
        }
        if bytes.len() != HEADER_LEN {
            return Err(StoreError::CorruptHeader("header length"));
        }
        let (params, rest) = rest.split_at(PARAMS_LEN);
        let (salt, key_check) = rest.split_at(SALT_LEN);
        let mut p = [0u8; PARAMS_LEN];
        p.copy_from_slice(params);
        let params = Argon2Params::decode(&p);
        params.validate()?;
        let mut s = [0u8; SALT_LEN];
        s.copy_from_slice(salt);
        Ok(Header {
            params,
            salt: s,
            key_check: key_check.to_vec(),
        })
    }
}
