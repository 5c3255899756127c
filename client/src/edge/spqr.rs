//! The sparse post-quantum ratchet beside the Double Ratchet (the
//! structure of Signal's SPQR, adapted to a mixnet's fixed-size packets).
//!
//! The two sides take turns: in the exchange that opens epoch `e + 1`, one
//! side generates an ML-KEM-768 key pair and sends the encapsulation key
//! (1,184 bytes), the other encapsulates to it and sends the ciphertext
//! (1,088 bytes). Both objects travel in pieces inside ordinary ratchet
//! messages, erasure-coded (below), so a lost or reordered message costs
//! nothing but the shards it carried. The new epoch's secret is
//!
//! ```text
//! S(e+1) = HKDF(salt = S(e), SS, "AegisLink_SPQR_Epoch" ‖ e+1 ‖ SHA-256(EK) ‖ SHA-256(CT))
//! ```
//!
//! and each message key mixes the elliptic-curve chain's key with the
//! epoch secret of the epoch the sender wrote in:
//!
//! ```text
//! key = HKDF(salt = S(epoch), MK, "AegisLink_TripleRatchet_Message" ‖ epoch)
//! ```
//!
//! The side that decapsulates knows `S(e+1)` first and writes in it at
//! once; the side that encapsulated keeps writing in `e` until a message
//! written in `e + 1` arrives (then the peer provably holds the secret),
//! and then generates the key pair for `e + 2`. Roles alternate, so each
//! side's fresh randomness enters every other epoch.
//!
//! **Shards.** An object of `k` shards of 32 bytes (37 for the key, 34 for
//! the ciphertext) is read as `k` points of a polynomial over GF(2⁸) per
//! byte position, at x = 0 … k−1; shard `t` is the polynomials' values at
//! x = t, for t in 0 … 254 (so shards 0 … k−1 are the object itself). Any
//! `k` distinct shards give the object back by Lagrange interpolation. A
//! message carries as many consecutive shards as fit in the space its last
//! fragment would leave empty anyway (see `conversation::seal`), so the
//! exchange never changes how many packets a message takes.
//!
//! Everything here runs on the session's working copy, so a message that
//! does not authenticate changes none of it.

use ml_kem::kem::{Decapsulate, Encapsulate, FromSeed, KeyExport, TryKeyInit};
use ml_kem::ml_kem_768::EncapsulationKey;
use ml_kem::{MlKem768, Seed};
use rand::CryptoRng;
use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};
use zeroize::{Zeroize, ZeroizeOnDrop, Zeroizing};

use super::EdgeError;
use super::identity::{MLKEM768_CIPHERTEXT_LEN, MLKEM768_KEY_LEN};
use super::kdf::hkdf_expand;

/// Bytes per shard.
pub const SHARD_LEN: usize = 32;
/// Distinct shard indices, x = 0 … 254: 255 field elements, and an index
/// still fits a byte with 255 left over as invalid.
pub const SHARD_INDICES: u16 = 255;
/// Epoch secrets kept for messages written in older epochs (reordering).
pub const KEPT_EPOCHS: usize = 6;
/// Bytes of a section that carries shards, before the shards.
pub const SECTION_HEADER_LEN: usize = 1 + 8 + 1 + 1;

const EPOCH_INFO: &[u8] = b"AegisLink_SPQR_Epoch";
const MESSAGE_INFO: &[u8] = b"AegisLink_TripleRatchet_Message";

const NONE: u8 = 0;
const KEY: u8 = 1;
const CIPHERTEXT: u8 = 2;

/// Shards of an encapsulation key.
const KEY_SHARDS: usize = MLKEM768_KEY_LEN / SHARD_LEN;
/// Shards of a ciphertext.
const CIPHERTEXT_SHARDS: usize = MLKEM768_CIPHERTEXT_LEN / SHARD_LEN;
const _: () = assert!(KEY_SHARDS * SHARD_LEN == MLKEM768_KEY_LEN);
const _: () = assert!(CIPHERTEXT_SHARDS * SHARD_LEN == MLKEM768_CIPHERTEXT_LEN);

/// GF(2⁸) with the polynomial x⁸ + x⁴ + x³ + x + 1 and generator 3.
mod gf {
    const fn tables() -> ([u8; 256], [u8; 512]) {
        let mut log = [0u8; 256];
        let mut exp = [0u8; 512];
        let mut x: u16 = 1;
        let mut i = 0;
        while i < 255 {
            exp[i] = x as u8;
            log[x as usize] = i as u8;
            let mut doubled = x << 1;
            if doubled & 0x100 != 0 {
                doubled ^= 0x11B;
            }
            x = doubled ^ x;
            i += 1;
        }
        while i < 512 {
            exp[i] = exp[i - 255];
            i += 1;
        }
        (log, exp)
    }

    const TABLES: ([u8; 256], [u8; 512]) = tables();

    pub fn mul(a: u8, b: u8) -> u8 {
        if a == 0 || b == 0 {
            return 0;
        }
        TABLES.1[usize::from(TABLES.0[usize::from(a)]) + usize::from(TABLES.0[usize::from(b)])]
    }

    /// The inverse of a nonzero element.
    pub fn inv(a: u8) -> u8 {
        TABLES.1[255 - usize::from(TABLES.0[usize::from(a)])]
    }

    /// The Lagrange coefficients that evaluate at `x` the polynomial
    /// through points at the distinct abscissae `xs`.
    pub fn lagrange(xs: &[u8], x: u8) -> Vec<u8> {
        xs.iter()
            .enumerate()
            .map(|(m, &xm)| {
                let (mut num, mut den) = (1u8, 1u8);
                for (j, &xj) in xs.iter().enumerate() {
                    if j != m {
                        num = mul(num, x ^ xj);
                        den = mul(den, xm ^ xj);
                    }
                }
                mul(num, inv(den))
            })
            .collect()
    }

    #[cfg(test)]
    mod tests {
        use super::*;

        #[test]
        fn the_field_is_a_field() {
            // 3 generates the multiplicative group: 255 distinct powers.
            let mut seen = [false; 256];
            let mut x = 1u8;
            for _ in 0..255 {
                assert!(!seen[usize::from(x)]);
                seen[usize::from(x)] = true;
                x = mul(x, 3);
            }
            assert_eq!(x, 1);
            for a in 1..=255u8 {
                assert_eq!(mul(a, inv(a)), 1, "inverse of {a}");
                for b in [1u8, 2, 0x53, 0xCA, 0xFF] {
                    // x·(a ⊕ b) = x·a ⊕ x·b
                    assert_eq!(mul(0x57, a ^ b), mul(0x57, a) ^ mul(0x57, b));
                }
            }
            // FIPS-197 §4.2: {57} • {83} = {c1}, {57} • {13} = {fe}.
            assert_eq!(mul(0x57, 0x83), 0xC1);
            assert_eq!(mul(0x57, 0x13), 0xFE);
        }
    }
}

/// Shard `index` of `object` (whose length is a multiple of [`SHARD_LEN`]).
pub fn shard(object: &[u8], index: u8) -> [u8; SHARD_LEN] {
    let k = object.len() / SHARD_LEN;
    let mut out = [0u8; SHARD_LEN];
    if usize::from(index) < k {
        let at = usize::from(index) * SHARD_LEN;
        out.copy_from_slice(&object[at..at + SHARD_LEN]);
        return out;
    }
    let xs: Vec<u8> = (0..k as u8).collect();
    let coefficients = gf::lagrange(&xs, index);
    for (m, c) in coefficients.into_iter().enumerate() {
        let data = &object[m * SHARD_LEN..(m + 1) * SHARD_LEN];
        for (o, d) in out.iter_mut().zip(data) {
            *o ^= gf::mul(c, *d);
        }
    }
    out
}

/// One received shard.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize, Zeroize)]
struct Shard {
    index: u8,
    bytes: [u8; SHARD_LEN],
}

/// The shards of one object received so far (at most `k`, distinct).
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize, Zeroize)]
pub struct Collector {
    k: u8,
    shards: Vec<Shard>,
}

impl Collector {
    fn new(k: usize) -> Self {
        Collector {
            k: k as u8,
            shards: Vec::new(),
        }
    }

    /// Takes a shard; a repeated index, or anything past `k`, is ignored.
    fn add(&mut self, index: u8, bytes: &[u8]) {
        if index as u16 >= SHARD_INDICES
            || self.shards.len() >= usize::from(self.k)
            || self.shards.iter().any(|s| s.index == index)
        {
            return;
        }
        let mut shard = Shard {
            index,
            bytes: [0; SHARD_LEN],
        };
        shard.bytes.copy_from_slice(bytes);
        self.shards.push(shard);
    }

    /// The object, once `k` distinct shards are in.
    fn object(&self) -> Option<Vec<u8>> {
        let k = usize::from(self.k);
        if self.shards.len() < k {
            return None;
        }
        let xs: Vec<u8> = self.shards.iter().map(|s| s.index).collect();
        let mut object = vec![0u8; k * SHARD_LEN];
        for x in 0..k {
            let out = &mut object[x * SHARD_LEN..(x + 1) * SHARD_LEN];
            if let Some(s) = self.shards.iter().find(|s| usize::from(s.index) == x) {
                out.copy_from_slice(&s.bytes);
                continue;
            }
            for (c, s) in gf::lagrange(&xs, x as u8).into_iter().zip(&self.shards) {
                for (o, d) in out.iter_mut().zip(&s.bytes) {
                    *o ^= gf::mul(c, *d);
                }
            }
        }
        Some(object)
    }

    /// Distinct shards held.
    pub fn held(&self) -> usize {
        self.shards.len()
    }
}

/// What a ratchet message carries for the post-quantum exchange:
/// `kind (1)` and, for a key or ciphertext, `epoch it opens (8) ‖ first
/// shard index (1) ‖ shard count (1) ‖ shards`.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Section {
    /// `None`, or what the shards are of, the epoch they open, the first
    /// shard's index and the shards (consecutive indices modulo 255).
    pub shards: Option<(SectionKind, u64, u8, Vec<[u8; SHARD_LEN]>)>,
}

/// What a section's shards are pieces of.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum SectionKind {
    /// An ML-KEM-768 encapsulation key.
    Key,
    /// An ML-KEM-768 ciphertext.
    Ciphertext,
}

impl Section {
    /// Encoded length of a section with `count` shards.
    pub const fn len_with(count: usize) -> usize {
        if count == 0 {
            1
        } else {
            SECTION_HEADER_LEN + count * SHARD_LEN
        }
    }

    /// Appends the encoding to `out`.
    pub fn encode(&self, out: &mut Vec<u8>) {
        match &self.shards {
            None => out.push(NONE),
            Some((kind, epoch, first, shards)) => {
                out.push(match kind {
                    SectionKind::Key => KEY,
                    SectionKind::Ciphertext => CIPHERTEXT,
                });
                out.extend_from_slice(&epoch.to_be_bytes());
                out.push(*first);
                out.push(shards.len() as u8);
                for s in shards {
                    out.extend_from_slice(s);
                }
            }
        }
    }

    /// Reads a section from the front of `bytes`; the rest is returned.
    /// Strict: an unknown kind, an index past 254, no shards after a kind
    /// that has them, more shards than the object has, or a short input
    /// is refused.
    pub fn decode(bytes: &[u8]) -> Result<(Section, &[u8]), EdgeError> {
        let malformed = EdgeError::Malformed("post-quantum section");
        let (&kind, rest) = bytes.split_first().ok_or(malformed.clone())?;
        let kind = match kind {
            NONE => return Ok((Section { shards: None }, rest)),
            KEY => SectionKind::Key,
            CIPHERTEXT => SectionKind::Ciphertext,
            _ => return Err(malformed),
        };
        if rest.len() < SECTION_HEADER_LEN - 1 {
            return Err(malformed);
        }
        let mut epoch = [0u8; 8];
        epoch.copy_from_slice(&rest[..8]);
        let (first, count) = (rest[8], usize::from(rest[9]));
        let most = match kind {
            SectionKind::Key => KEY_SHARDS,
            SectionKind::Ciphertext => CIPHERTEXT_SHARDS,
        };
        if u16::from(first) >= SHARD_INDICES || count == 0 || count > most {
            return Err(malformed);
        }
        let body = &rest[10..];
        if body.len() < count * SHARD_LEN {
            return Err(malformed);
        }
        let shards = body[..count * SHARD_LEN]
            .chunks_exact(SHARD_LEN)
            .map(|c| {
                let mut s = [0u8; SHARD_LEN];
                s.copy_from_slice(c);
                s
            })
            .collect();
        Ok((
            Section {
                shards: Some((kind, u64::from_be_bytes(epoch), first, shards)),
            },
            &body[count * SHARD_LEN..],
        ))
    }
}

/// Where a side is in the exchange that opens epoch `next`.
#[derive(Clone, Serialize, Deserialize, Zeroize, ZeroizeOnDrop)]
enum Phase {
    /// We sent (and keep sending) our encapsulation key; the peer's
    /// ciphertext is collected.
    SendKey {
        next: u64,
        /// The key pair's 64-byte seed (serde takes arrays up to 32).
        seed: [[u8; 32]; 2],
        key: Vec<u8>,
        ciphertext: Collector,
    },
    /// The peer's encapsulation key is collected.
    AwaitKey { next: u64, key: Collector },
    /// We encapsulated and send (and keep sending) the ciphertext; the new
    /// secret is used once the peer writes in `next`.
    SendCiphertext {
        next: u64,
        ciphertext: Vec<u8>,
        secret: [u8; 32],
    },
}

/// An epoch and its secret.
#[derive(Clone, Serialize, Deserialize, Zeroize, ZeroizeOnDrop)]
struct EpochSecret {
    epoch: u64,
    secret: [u8; 32],
}

/// One session's post-quantum ratchet.
#[derive(Clone, Serialize, Deserialize, Zeroize, ZeroizeOnDrop)]
pub struct Spqr {
    initiator: bool,
    /// The epoch we write in.
    epoch: u64,
    /// Secrets of the current and up to [`KEPT_EPOCHS`]` − 1` older epochs.
    secrets: Vec<EpochSecret>,
    phase: Phase,
    /// The next shard index to send.
    cursor: u8,
}

fn hash(bytes: &[u8]) -> [u8; 32] {
    Sha256::digest(bytes).into()
}

/// HKDF-SHA-256 to 32 bytes with the info given in parts.
fn hkdf32(salt: &[u8; 32], ikm: &[u8], info: &[&[u8]]) -> Zeroizing<[u8; 32]> {
    hkdf_expand::<32>(salt, ikm, &info.concat())
}

fn epoch_secret(
    previous: &[u8; 32],
    shared: &[u8],
    next: u64,
    key: &[u8],
    ciphertext: &[u8],
) -> Zeroizing<[u8; 32]> {
    hkdf32(
        previous,
        shared,
        &[
            EPOCH_INFO,
            &next.to_be_bytes(),
            &hash(key),
            &hash(ciphertext),
        ],
    )
}

/// The 64-byte ML-KEM seed from its two halves.
fn full_seed(halves: &[[u8; 32]; 2]) -> Zeroizing<[u8; 64]> {
    let mut seed = Zeroizing::new([0u8; 64]);
    seed[..32].copy_from_slice(&halves[0]);
    seed[32..].copy_from_slice(&halves[1]);
    seed
}

/// A fresh key pair: its seed and encoded encapsulation key.
fn key_pair<R: CryptoRng + ?Sized>(rng: &mut R) -> ([[u8; 32]; 2], Vec<u8>) {
    let mut halves = [[0u8; 32]; 2];
    rng.fill_bytes(&mut halves[0]);
    rng.fill_bytes(&mut halves[1]);
    let (_, encapsulation) = MlKem768::from_seed(&Seed::from(*full_seed(&halves)));
    (halves, encapsulation.to_bytes().to_vec())
}

/// Whether the initiator sends the key of the exchange opening `next`.
fn initiator_sends_key(next: u64) -> bool {
    next % 2 == 1
}

impl Spqr {
    /// The state right after the handshake, from its post-quantum seed.
    pub fn new<R: CryptoRng + ?Sized>(rng: &mut R, initiator: bool, seed: &[u8; 32]) -> Self {
        let mut spqr = Spqr {
            initiator,
            epoch: 0,
            secrets: vec![EpochSecret {
                epoch: 0,
                secret: *seed,
            }],
            phase: Phase::AwaitKey {
                next: 1,
                key: Collector::new(KEY_SHARDS),
            },
            cursor: 0,
        };
        spqr.open_exchange(rng, 1);
        spqr
    }

    /// Starts the exchange that opens `next`: our key pair if it is our
    /// turn, else waiting for the peer's key.
    fn open_exchange<R: CryptoRng + ?Sized>(&mut self, rng: &mut R, next: u64) {
        self.cursor = 0;
        self.phase = if initiator_sends_key(next) == self.initiator {
            let (seed, key) = key_pair(rng);
            Phase::SendKey {
                next,
                seed,
                key,
                ciphertext: Collector::new(CIPHERTEXT_SHARDS),
            }
        } else {
            Phase::AwaitKey {
                next,
                key: Collector::new(KEY_SHARDS),
            }
        };
    }

    /// The epoch we write in.
    pub fn epoch(&self) -> u64 {
        self.epoch
    }

    fn secret(&self, epoch: u64) -> Option<&[u8; 32]> {
        self.secrets
            .iter()
            .find(|s| s.epoch == epoch)
            .map(|s| &s.secret)
    }

    fn enter(&mut self, epoch: u64, secret: &[u8; 32]) {
        self.epoch = epoch;
        self.secrets.push(EpochSecret {
            epoch,
            secret: *secret,
        });
        if self.secrets.len() > KEPT_EPOCHS {
            let excess = self.secrets.len() - KEPT_EPOCHS;
            self.secrets.drain(..excess);
        }
    }

    /// The message key for a message we write now, and the epoch to name
    /// in its header.
    pub fn sending_key(&self, chain_key: &[u8; 32]) -> (u64, Zeroizing<[u8; 32]>) {
        // The current epoch's secret is always held (`enter` keeps the
        // newest); the fallback is never taken.
        let secret = self.secret(self.epoch).copied().unwrap_or([0; 32]);
        (self.epoch, message_key(&secret, chain_key, self.epoch))
    }

    /// The message key for a message written in `epoch`, if we hold (or
    /// are about to use) its secret.
    pub fn receiving_key(
        &self,
        epoch: u64,
        chain_key: &[u8; 32],
    ) -> Result<Zeroizing<[u8; 32]>, EdgeError> {
        let secret = match (&self.phase, self.secret(epoch)) {
            (_, Some(secret)) => *secret,
            (Phase::SendCiphertext { next, secret, .. }, None) if *next == epoch => *secret,
            _ => return Err(EdgeError::UnknownEpoch(epoch)),
        };
        Ok(message_key(&secret, chain_key, epoch))
    }

    /// The section for the message we write now, using at most `budget`
    /// bytes (at least one byte is always used).
    pub fn section(&mut self, budget: usize) -> Section {
        let (kind, next, object) = match &self.phase {
            Phase::SendKey { next, key, .. } => (SectionKind::Key, *next, key.as_slice()),
            Phase::SendCiphertext {
                next, ciphertext, ..
            } => (SectionKind::Ciphertext, *next, ciphertext.as_slice()),
            Phase::AwaitKey { .. } => return Section { shards: None },
        };
        let k = object.len() / SHARD_LEN;
        let count = budget.saturating_sub(SECTION_HEADER_LEN) / SHARD_LEN;
        let count = count.min(k);
        if count == 0 {
            return Section { shards: None };
        }
        let first = self.cursor;
        let shards = (0..count)
            .map(|i| shard(object, ((usize::from(first) + i) % 255) as u8))
            .collect();
        self.cursor = ((usize::from(first) + count) % 255) as u8;
        Section {
            shards: Some((kind, next, first, shards)),
        }
    }

    /// Takes in an authenticated message written in `epoch` and its
    /// section.
    pub fn receive<R: CryptoRng + ?Sized>(
        &mut self,
        rng: &mut R,
        epoch: u64,
        section: &Section,
    ) -> Result<(), EdgeError> {
        // The peer writes in the epoch our ciphertext opened: it holds the
        // secret, so we use it too and take our turn at the key.
        if let Phase::SendCiphertext { next, secret, .. } = &self.phase
            && *next == epoch
        {
            let secret = *secret;
            self.enter(epoch, &secret);
            self.open_exchange(rng, epoch + 1);
        }
        let Some((kind, opens, first, shards)) = &section.shards else {
            return Ok(());
        };
        let current = self.secret(self.epoch).copied().unwrap_or([0; 32]);
        match (&mut self.phase, kind) {
            (Phase::AwaitKey { next, key }, SectionKind::Key) if next == opens => {
                for (i, s) in shards.iter().enumerate() {
                    key.add(((usize::from(*first) + i) % 255) as u8, s);
                }
                let Some(object) = key.object() else {
                    return Ok(());
                };
                let encapsulation = EncapsulationKey::new_from_slice(&object)
                    .map_err(|_| EdgeError::InvalidKey("ML-KEM-768"))?;
                let (ciphertext, shared) = encapsulation.encapsulate_with_rng(rng);
                let next = *next;
                let secret = epoch_secret(&current, &shared, next, &object, &ciphertext);
                self.cursor = 0;
                self.phase = Phase::SendCiphertext {
                    next,
                    ciphertext: ciphertext.to_vec(),
                    secret: *secret,
                };
            }
            (
                Phase::SendKey {
                    next,
                    seed,
                    key,
                    ciphertext,
                },
                SectionKind::Ciphertext,
            ) if next == opens => {
                for (i, s) in shards.iter().enumerate() {
                    ciphertext.add(((usize::from(*first) + i) % 255) as u8, s);
                }
                let Some(object) = ciphertext.object() else {
                    return Ok(());
                };
                let (decapsulation, _) = MlKem768::from_seed(&Seed::from(*full_seed(seed)));
                let shared = decapsulation
                    .decapsulate_slice(&object)
                    .map_err(|_| EdgeError::Malformed("KEM ciphertext"))?;
                let next = *next;
                let secret = epoch_secret(&current, &shared, next, key, &object);
                self.enter(next, &secret);
                self.open_exchange(rng, next + 1);
            }
            // Shards of an exchange already done, or of one not yet begun
            // on this side: nothing to do.
            _ => {}
        }
        Ok(())
    }

    /// Shards of the object being collected, held so far (for figures).
    pub fn collected(&self) -> usize {
        match &self.phase {
            Phase::SendKey { ciphertext, .. } => ciphertext.held(),
            Phase::AwaitKey { key, .. } => key.held(),
            Phase::SendCiphertext { .. } => 0,
        }
    }
}

fn message_key(secret: &[u8; 32], chain_key: &[u8; 32], epoch: u64) -> Zeroizing<[u8; 32]> {
    hkdf32(secret, chain_key, &[MESSAGE_INFO, &epoch.to_be_bytes()])
}

#[cfg(test)]
mod tests;
