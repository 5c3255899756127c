//! Replay tags and the replay filter.
//!
//! Each hop derives a replay tag (hτ) from its shared secret. A node keeps,
//! per Sphinx key epoch, a Bloom filter of the tags it has processed and
//! drops a packet whose tag is already there. The filter is keyed with a
//! random secret so a sender, who can compute the tags of its own packets,
//! cannot aim them at chosen bits to make honest packets look replayed.
//! A full filter keeps working (its false-positive rate rises, which
//! [`ReplayFilter::estimated_fp_rate`] reports); it never panics.

use rand::Rng;
use sha2::{Digest, Sha256};

use crate::constants::REPLAY_TAG_LEN;
use crate::error::PacketError;

/// The per-hop replay tag of a packet.
#[derive(Clone, Copy, PartialEq, Eq, Hash)]
pub struct ReplayTag(pub [u8; REPLAY_TAG_LEN]);

impl std::fmt::Debug for ReplayTag {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "ReplayTag({:02x}{:02x}..)", self.0[0], self.0[1])
    }
}

const MAGIC: &[u8; 4] = b"AGRF";
const FORMAT_VERSION: u8 = 1;
const HEADER_LEN: usize = 4 + 1 + 32 + 8 + 4 + 8 + 8;
const MAX_HASHES: u32 = 32;
/// Largest filter accepted when loading: 2^34 bits (2 GiB).
const MAX_BITS: u64 = 1 << 34;

/// A keyed Bloom filter of replay tags.
pub struct ReplayFilter {
    key: [u8; 32],
    bits: Vec<u64>,
    num_bits: u64,
    num_hashes: u32,
    capacity: u64,
    inserted: u64,
}

impl ReplayFilter {
    /// A filter sized so that after `capacity` insertions the false-positive
    /// rate is `fp_rate` (Nym uses 1e-5, sized for a day at the measured rate).
    pub fn with_capacity<R: Rng + ?Sized>(rng: &mut R, capacity: u64, fp_rate: f64) -> Self {
        let n = capacity.max(1) as f64;
        let p = fp_rate.clamp(1e-12, 0.5);
        let ln2 = std::f64::consts::LN_2;
        let num_bits = ((-n * p.ln()) / (ln2 * ln2))
            .ceil()
            .clamp(64.0, MAX_BITS as f64) as u64;
        let num_hashes = ((num_bits as f64 / n) * ln2)
            .round()
            .clamp(1.0, MAX_HASHES as f64) as u32;
        let mut key = [0u8; 32];
        rng.fill_bytes(&mut key);
        // Write every word now rather than take lazily zeroed pages: the node
        // pays for the filter's memory up front instead of as page faults on
        // the packet path (and sees an allocation failure at start, not later).
        let mut bits = Vec::with_capacity(num_bits.div_ceil(64) as usize);
        bits.resize(num_bits.div_ceil(64) as usize, std::hint::black_box(0u64));
        ReplayFilter {
            key,
            bits,
            num_bits,
            num_hashes,
            capacity: capacity.max(1),
            inserted: 0,
        }
    }

    fn positions(&self, tag: &ReplayTag) -> impl Iterator<Item = u64> + use<> {
        let digest = Sha256::new()
            .chain_update(self.key)
            .chain_update(tag.0)
            .finalize();
        let mut a = [0u8; 8];
        let mut b = [0u8; 8];
        a.copy_from_slice(&digest[..8]);
        b.copy_from_slice(&digest[8..16]);
        let h1 = u64::from_le_bytes(a);
        let h2 = u64::from_le_bytes(b) | 1;
        let m = self.num_bits;
        (0..self.num_hashes as u64).map(move |i| h1.wrapping_add(i.wrapping_mul(h2)) % m)
    }

    /// Records `tag`; returns `true` if it was new, `false` if it was
    /// (probably) seen before.
    pub fn check_and_insert(&mut self, tag: &ReplayTag) -> bool {
        let mut new = false;
        for pos in self.positions(tag) {
            let (word, bit) = ((pos / 64) as usize, pos % 64);
            if self.bits[word] & (1 << bit) == 0 {
                new = true;
                self.bits[word] |= 1 << bit;
            }
        }
        if new {
            self.inserted = self.inserted.saturating_add(1);
        }
        new
    }

    /// Whether `tag` is (probably) in the filter.
    pub fn contains(&self, tag: &ReplayTag) -> bool {
        self.positions(tag)
            .all(|pos| self.bits[(pos / 64) as usize] & (1 << (pos % 64)) != 0)
    }

    /// Tags recorded so far.
    pub fn len(&self) -> u64 {
        self.inserted
    }

    /// Whether nothing was recorded yet.
    pub fn is_empty(&self) -> bool {
        self.inserted == 0
    }

    /// The number of tags the filter was sized for.
    pub fn capacity(&self) -> u64 {
        self.capacity
    }

    /// Whether more tags were recorded than the filter was sized for.
    pub fn is_saturated(&self) -> bool {
        self.inserted > self.capacity
    }

    /// The false-positive rate at the current fill: (1 - e^(-k·n/m))^k.
    pub fn estimated_fp_rate(&self) -> f64 {
        let k = self.num_hashes as f64;
        (1.0 - (-k * self.inserted as f64 / self.num_bits as f64).exp()).powf(k)
    }

    /// Size of the bit array in bytes.
    pub fn size_bytes(&self) -> usize {
        self.bits.len() * 8
    }

    /// Serialises the filter for persistence:
    /// `"AGRF" ‖ version ‖ key ‖ bits (u64) ‖ hashes (u32) ‖ capacity (u64) ‖ inserted (u64) ‖ words (LE)`.
    pub fn to_bytes(&self) -> Vec<u8> {
        let mut out = Vec::with_capacity(HEADER_LEN + self.bits.len() * 8);
        out.extend_from_slice(MAGIC);
        out.push(FORMAT_VERSION);
        out.extend_from_slice(&self.key);
        out.extend_from_slice(&self.num_bits.to_le_bytes());
        out.extend_from_slice(&self.num_hashes.to_le_bytes());
        out.extend_from_slice(&self.capacity.to_le_bytes());
        out.extend_from_slice(&self.inserted.to_le_bytes());
        for w in &self.bits {
            out.extend_from_slice(&w.to_le_bytes());
        }
        out
    }

    /// Restores a filter saved by [`ReplayFilter::to_bytes`]; strict about
    /// every field, since the file may have been truncated by a crash.
    pub fn from_bytes(bytes: &[u8]) -> Result<Self, PacketError> {
        if bytes.len() < HEADER_LEN {
            return Err(PacketError::MalformedReplayFilter("truncated header"));
        }
        if &bytes[..4] != MAGIC {
            return Err(PacketError::MalformedReplayFilter("bad magic"));
        }
        if bytes[4] != FORMAT_VERSION {
            return Err(PacketError::MalformedReplayFilter("unknown format version"));
        }
        let u64_at = |at: usize| {
            let mut b = [0u8; 8];
            b.copy_from_slice(&bytes[at..at + 8]);
            u64::from_le_bytes(b)
        };
        let mut key = [0u8; 32];
        key.copy_from_slice(&bytes[5..37]);
        let num_bits = u64_at(37);
        let num_hashes = u32::from_le_bytes([bytes[45], bytes[46], bytes[47], bytes[48]]);
        let capacity = u64_at(49);
        let inserted = u64_at(57);
        if num_bits == 0 || num_bits > MAX_BITS {
            return Err(PacketError::MalformedReplayFilter("bit count out of range"));
        }
        if num_hashes == 0 || num_hashes > MAX_HASHES {
            return Err(PacketError::MalformedReplayFilter(
                "hash count out of range",
            ));
        }
        let words = num_bits.div_ceil(64) as usize;
        if bytes.len() != HEADER_LEN + words * 8 {
            return Err(PacketError::MalformedReplayFilter(
                "length does not match bit count",
            ));
        }
        let bits = bytes[HEADER_LEN..]
            .chunks_exact(8)
            .map(|c| {
                let mut b = [0u8; 8];
                b.copy_from_slice(c);
                u64::from_le_bytes(b)
            })
            .collect();
        Ok(ReplayFilter {
            key,
            bits,
            num_bits,
            num_hashes,
            capacity,
            inserted,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use rand::SeedableRng;
    use rand_chacha::ChaCha20Rng;

    fn tag(rng: &mut ChaCha20Rng) -> ReplayTag {
        let mut t = [0u8; 32];
        rng.fill_bytes(&mut t);
        ReplayTag(t)
    }

    #[test]
    fn detects_every_replay_and_keeps_false_positives_near_the_target() {
        let mut rng = ChaCha20Rng::seed_from_u64(11);
        let mut f = ReplayFilter::with_capacity(&mut rng, 20_000, 1e-3);
        let tags: Vec<_> = (0..20_000).map(|_| tag(&mut rng)).collect();
        let mut false_positives = 0;
        for t in &tags {
            if !f.check_and_insert(t) {
                false_positives += 1;
            }
        }
        assert!(
            tags.iter().all(|t| !f.check_and_insert(t)),
            "a replay got through"
        );
        let fresh_fp = (0..20_000).filter(|_| f.contains(&tag(&mut rng))).count();
        assert!(
            fresh_fp < 60,
            "{fresh_fp} false positives in 20000 at p=1e-3"
        );
        assert!(false_positives < 60);
        assert!(f.estimated_fp_rate() < 2e-3);
        assert!(!f.is_saturated());
    }

    #[test]
    fn persists_and_restores_exactly() {
        let mut rng = ChaCha20Rng::seed_from_u64(12);
        let mut f = ReplayFilter::with_capacity(&mut rng, 1000, 1e-5);
        let seen = tag(&mut rng);
        f.check_and_insert(&seen);
        let bytes = f.to_bytes();
        let g = ReplayFilter::from_bytes(&bytes).unwrap();
        assert!(g.contains(&seen));
        assert_eq!(g.len(), 1);
        assert_eq!(g.to_bytes(), bytes);
    }

    #[test]
    fn corrupt_files_are_rejected() {
        let mut rng = ChaCha20Rng::seed_from_u64(13);
        let bytes = ReplayFilter::with_capacity(&mut rng, 1000, 1e-5).to_bytes();
        assert!(ReplayFilter::from_bytes(&bytes[..bytes.len() - 1]).is_err());
        assert!(ReplayFilter::from_bytes(&bytes[..10]).is_err());
        let mut bad = bytes.clone();
        bad[0] = b'X';
        assert!(ReplayFilter::from_bytes(&bad).is_err());
        let mut bad = bytes;
        bad[45] = 0;
        bad[46] = 0;
        assert!(ReplayFilter::from_bytes(&bad).is_err());
    }

    #[test]
    fn a_counter_at_its_limit_does_not_overflow() {
        let mut rng = ChaCha20Rng::seed_from_u64(15);
        let mut bytes = ReplayFilter::with_capacity(&mut rng, 10, 1e-2).to_bytes();
        bytes[57..65].copy_from_slice(&u64::MAX.to_le_bytes());
        let mut f = ReplayFilter::from_bytes(&bytes).unwrap();
        assert!(f.check_and_insert(&tag(&mut rng)));
        assert_eq!(f.len(), u64::MAX);
    }

    #[test]
    fn overfull_filter_still_answers() {
        let mut rng = ChaCha20Rng::seed_from_u64(14);
        let mut f = ReplayFilter::with_capacity(&mut rng, 10, 1e-2);
        for _ in 0..1000 {
            f.check_and_insert(&tag(&mut rng));
        }
        assert!(f.is_saturated());
        assert!(f.estimated_fp_rate() > 0.5);
    }
}
