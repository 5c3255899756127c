//! Replay tags and the replay filter.
//!
//! Each hop derives a replay tag (hτ) from its shared secret. A node keeps,
//! per Sphinx key epoch, a filter of the tags it has processed and drops a
//! packet whose tag is already there. The filter is keyed with a random
//! secret so a sender, who can compute the tags of its own packets, cannot
//! aim them at chosen bits to make honest packets look replayed.
//!
//! The filter is a scalable Bloom filter (Almeida, Baquero, Preguiça and
//! Hutchison, "Scalable Bloom Filters", Information Processing Letters 101,
//! 2007): a series of Bloom slices, each sized for the filter's capacity.
//! Tags go into the newest slice; when it holds its capacity, a new slice
//! is added whose false-positive rate is half the previous one's, so the
//! rate of the whole stays below twice the first slice's however many
//! slices there are. A flood of valid packets therefore costs the node
//! memory, not honest packets, until the filter's byte limit: past it the
//! newest slice keeps filling, its false-positive rate rises (reported by
//! [`ReplayFilter::estimated_fp_rate`] and [`ReplayFilter::is_saturated`]),
//! and it never panics.

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
/// Version 1: one Bloom filter. Version 2: slices and a byte limit.
const FORMAT_V1: u8 = 1;
const FORMAT_VERSION: u8 = 2;
const V1_HEADER_LEN: usize = 4 + 1 + 32 + 8 + 4 + 8 + 8;
/// `magic ‖ version ‖ key ‖ capacity ‖ fp rate (f64 bits) ‖ max bytes ‖ slices (u32)`.
const HEADER_LEN: usize = 4 + 1 + 32 + 8 + 8 + 8 + 4;
/// Each slice: `bits (u64) ‖ hashes (u32) ‖ inserted (u64) ‖ words`.
const SLICE_HEADER_LEN: usize = 8 + 4 + 8;
const MAX_HASHES: u32 = 32;
/// Largest slice accepted when loading: 2^34 bits (2 GiB).
const MAX_BITS: u64 = 1 << 34;
/// Most slices a filter holds (each halves the false-positive rate).
const MAX_SLICES: usize = 24;
/// Without an explicit limit a filter may grow to this many times its
/// first slice.
const DEFAULT_GROWTH: u64 = 8;

/// One Bloom filter of the series.
struct Slice {
    bits: Vec<u64>,
    num_bits: u64,
    num_hashes: u32,
    inserted: u64,
}

impl Slice {
    /// Sized so that `capacity` insertions give false-positive rate `p`.
    fn new(capacity: u64, p: f64) -> Self {
        let (num_bits, num_hashes) = Self::shape(capacity, p);
        // Write every word now rather than take lazily zeroed pages: the
        // node pays for the memory when the slice is made instead of as
        // page faults on the packet path.
        let mut bits = Vec::with_capacity(num_bits.div_ceil(64) as usize);
        bits.resize(num_bits.div_ceil(64) as usize, std::hint::black_box(0u64));
        Slice {
            bits,
            num_bits,
            num_hashes,
            inserted: 0,
        }
    }

    /// `m = -n·ln p / ln²2` bits and `k = (m/n)·ln 2` hashes.
    fn shape(capacity: u64, p: f64) -> (u64, u32) {
        let n = capacity.max(1) as f64;
        let p = p.clamp(1e-15, 0.5);
        let ln2 = std::f64::consts::LN_2;
        let num_bits = ((-n * p.ln()) / (ln2 * ln2))
            .ceil()
            .clamp(64.0, MAX_BITS as f64) as u64;
        let num_hashes = ((num_bits as f64 / n) * ln2)
            .round()
            .clamp(1.0, MAX_HASHES as f64) as u32;
        (num_bits, num_hashes)
    }

    fn bytes(capacity: u64, p: f64) -> u64 {
        Self::shape(capacity, p).0.div_ceil(64) * 8
    }

    /// Bit positions by enhanced double hashing; `index` makes each
    /// slice's positions independent of the others'.
    fn positions(&self, digest: &[u8; 32], index: usize) -> impl Iterator<Item = u64> + use<> {
        let word = |i: usize| {
            let mut w = [0u8; 8];
            w.copy_from_slice(&digest[i * 8..i * 8 + 8]);
            u64::from_le_bytes(w)
        };
        let j = index as u64;
        let h1 = word(0).wrapping_add(j.wrapping_mul(word(2)));
        let h2 = word(1).wrapping_add(j.wrapping_mul(word(3))) | 1;
        let m = self.num_bits;
        (0..self.num_hashes as u64).map(move |i| h1.wrapping_add(i.wrapping_mul(h2)) % m)
    }

    fn contains(&self, digest: &[u8; 32], index: usize) -> bool {
        self.positions(digest, index)
            .all(|pos| self.bits[(pos / 64) as usize] & (1 << (pos % 64)) != 0)
    }

    /// Sets the tag's bits; whether any was clear.
    fn insert(&mut self, digest: &[u8; 32], index: usize) -> bool {
        let mut new = false;
        for pos in self.positions(digest, index) {
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

    fn fp_rate(&self) -> f64 {
        let k = self.num_hashes as f64;
        (1.0 - (-k * self.inserted as f64 / self.num_bits as f64).exp()).powf(k)
    }
}

/// A keyed, scalable Bloom filter of replay tags.
pub struct ReplayFilter {
    key: [u8; 32],
    /// Tags each slice is sized for.
    capacity: u64,
    /// The first slice's false-positive rate at its capacity.
    fp_rate: f64,
    /// Bytes the slices may take together.
    max_bytes: u64,
    slices: Vec<Slice>,
}

impl ReplayFilter {
    /// A filter whose first slice gives false-positive rate `fp_rate` after
    /// `capacity` insertions (Nym uses 1e-5, sized for a day at the
    /// measured rate), allowed to grow to eight times that slice's memory.
    pub fn with_capacity<R: Rng + ?Sized>(rng: &mut R, capacity: u64, fp_rate: f64) -> Self {
        let first = Slice::bytes(capacity, fp_rate);
        Self::with_limit(rng, capacity, fp_rate, first.saturating_mul(DEFAULT_GROWTH))
    }

    /// [`ReplayFilter::with_capacity`] that grows only while its slices
    /// take at most `max_bytes` together (the first slice is made whatever
    /// the limit).
    pub fn with_limit<R: Rng + ?Sized>(
        rng: &mut R,
        capacity: u64,
        fp_rate: f64,
        max_bytes: u64,
    ) -> Self {
        let mut key = [0u8; 32];
        rng.fill_bytes(&mut key);
        let capacity = capacity.max(1);
        let fp_rate = fp_rate.clamp(1e-15, 0.5);
        ReplayFilter {
            key,
            capacity,
            fp_rate,
            max_bytes,
            slices: vec![Slice::new(capacity, fp_rate)],
        }
    }

    fn digest(&self, tag: &ReplayTag) -> [u8; 32] {
        Sha256::new()
            .chain_update(self.key)
            .chain_update(tag.0)
            .finalize()
            .into()
    }

    /// The false-positive rate of slice `index`: halved with each slice.
    fn slice_fp(&self, index: usize) -> f64 {
        self.fp_rate / f64::from(1u32 << index.min(31))
    }

    /// Records `tag`; returns `true` if it was new, `false` if it was
    /// (probably) seen before.
    pub fn check_and_insert(&mut self, tag: &ReplayTag) -> bool {
        let digest = self.digest(tag);
        if self
            .slices
            .iter()
            .enumerate()
            .any(|(i, s)| s.contains(&digest, i))
        {
            return false;
        }
        self.grow_if_full();
        let newest = self.slices.len() - 1;
        self.slices[newest].insert(&digest, newest)
    }

    /// Adds a slice when the newest holds its capacity and the byte limit
    /// leaves room for one more.
    fn grow_if_full(&mut self) {
        let newest = self.slices.len() - 1;
        if self.slices[newest].inserted < self.capacity || self.slices.len() >= MAX_SLICES {
            return;
        }
        let p = self.slice_fp(self.slices.len());
        let needed = Slice::bytes(self.capacity, p);
        if self.size_bytes() as u64 + needed <= self.max_bytes {
            self.slices.push(Slice::new(self.capacity, p));
        }
    }

    /// Whether `tag` is (probably) in the filter.
    pub fn contains(&self, tag: &ReplayTag) -> bool {
        let digest = self.digest(tag);
        self.slices
            .iter()
            .enumerate()
            .any(|(i, s)| s.contains(&digest, i))
    }

    /// Tags recorded so far.
    pub fn len(&self) -> u64 {
        self.slices
            .iter()
            .fold(0u64, |sum, s| sum.saturating_add(s.inserted))
    }

    /// Whether nothing was recorded yet.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// The number of tags the filter was sized for (per slice).
    pub fn capacity(&self) -> u64 {
        self.capacity
    }

    /// Slices held: 1 until a flood (or more traffic than sized for)
    /// fills the first.
    pub fn slices(&self) -> usize {
        self.slices.len()
    }

    /// Whether the newest slice holds more than its capacity: the filter
    /// could not grow (its byte limit), so its false-positive rate is
    /// rising past the design.
    pub fn is_saturated(&self) -> bool {
        self.slices
            .last()
            .is_some_and(|s| s.inserted > self.capacity)
    }

    /// The false-positive rate at the current fill: one minus the chance
    /// that no slice answers, each slice at `(1 - e^(-k·n/m))^k`.
    pub fn estimated_fp_rate(&self) -> f64 {
        1.0 - self
            .slices
            .iter()
            .map(|s| 1.0 - s.fp_rate())
            .product::<f64>()
    }

    /// Size of the bit arrays in bytes.
    pub fn size_bytes(&self) -> usize {
        self.slices.iter().map(|s| s.bits.len() * 8).sum()
    }

    /// Serialises the filter for persistence:
    /// `"AGRF" ‖ 2 ‖ key ‖ capacity (u64) ‖ fp rate (f64) ‖ max bytes (u64) ‖ slices (u32)`,
    /// then per slice `bits (u64) ‖ hashes (u32) ‖ inserted (u64) ‖ words`, all little-endian.
    pub fn to_bytes(&self) -> Vec<u8> {
        let mut out = Vec::with_capacity(
            HEADER_LEN + self.slices.len() * SLICE_HEADER_LEN + self.size_bytes(),
        );
        out.extend_from_slice(MAGIC);
        out.push(FORMAT_VERSION);
        out.extend_from_slice(&self.key);
        out.extend_from_slice(&self.capacity.to_le_bytes());
        out.extend_from_slice(&self.fp_rate.to_bits().to_le_bytes());
        out.extend_from_slice(&self.max_bytes.to_le_bytes());
        out.extend_from_slice(&(self.slices.len() as u32).to_le_bytes());
        for s in &self.slices {
            out.extend_from_slice(&s.num_bits.to_le_bytes());
            out.extend_from_slice(&s.num_hashes.to_le_bytes());
            out.extend_from_slice(&s.inserted.to_le_bytes());
            for w in &s.bits {
                out.extend_from_slice(&w.to_le_bytes());
            }
        }
        out
    }

    /// Restores a filter saved by [`ReplayFilter::to_bytes`] (or by the
    /// single-slice format 1 before it); strict about every field, since
    /// the file may have been truncated by a crash.
    pub fn from_bytes(bytes: &[u8]) -> Result<Self, PacketError> {
        let mut r = Reader(bytes);
        if r.take(4)? != MAGIC {
            return Err(PacketError::MalformedReplayFilter("bad magic"));
        }
        let version = r.take(1)?[0];
        let mut key = [0u8; 32];
        key.copy_from_slice(r.take(32)?);
        match version {
            FORMAT_V1 => {
                if bytes.len() < V1_HEADER_LEN {
                    return Err(PacketError::MalformedReplayFilter("truncated header"));
                }
                let num_bits = r.u64()?;
                let num_hashes = r.u32()?;
                let capacity = r.u64()?.max(1);
                let inserted = r.u64()?;
                let slice = read_words(&mut r, num_bits, num_hashes, inserted)?;
                r.end()?;
                // The rate the slice was built for, from its shape.
                let fp_rate = (-(slice.num_bits as f64 / capacity as f64)
                    * std::f64::consts::LN_2
                    * std::f64::consts::LN_2)
                    .exp()
                    .clamp(1e-15, 0.5);
                let max_bytes = (slice.bits.len() as u64 * 8).saturating_mul(DEFAULT_GROWTH);
                Ok(ReplayFilter {
                    key,
                    capacity,
                    fp_rate,
                    max_bytes,
                    slices: vec![slice],
                })
            }
            FORMAT_VERSION => {
                let capacity = r.u64()?;
                let fp_rate = f64::from_bits(r.u64()?);
                let max_bytes = r.u64()?;
                let count = r.u32()? as usize;
                if capacity == 0 {
                    return Err(PacketError::MalformedReplayFilter("zero capacity"));
                }
                if !(1e-15..=0.5).contains(&fp_rate) {
                    return Err(PacketError::MalformedReplayFilter(
                        "false-positive rate out of range",
                    ));
                }
                if count == 0 || count > MAX_SLICES {
                    return Err(PacketError::MalformedReplayFilter(
                        "slice count out of range",
                    ));
                }
                let mut slices = Vec::with_capacity(count);
                for _ in 0..count {
                    let num_bits = r.u64()?;
                    let num_hashes = r.u32()?;
                    let inserted = r.u64()?;
                    slices.push(read_words(&mut r, num_bits, num_hashes, inserted)?);
                }
                r.end()?;
                Ok(ReplayFilter {
                    key,
                    capacity,
                    fp_rate,
                    max_bytes,
                    slices,
                })
            }
            _ => Err(PacketError::MalformedReplayFilter("unknown format version")),
        }
    }
}

/// A cursor over untrusted bytes: every read checks what is left.
struct Reader<'a>(&'a [u8]);

impl<'a> Reader<'a> {
    fn take(&mut self, n: usize) -> Result<&'a [u8], PacketError> {
        if self.0.len() < n {
            return Err(PacketError::MalformedReplayFilter("truncated"));
        }
        let (head, rest) = self.0.split_at(n);
        self.0 = rest;
        Ok(head)
    }

    fn u64(&mut self) -> Result<u64, PacketError> {
        let mut b = [0u8; 8];
        b.copy_from_slice(self.take(8)?);
        Ok(u64::from_le_bytes(b))
    }

    fn u32(&mut self) -> Result<u32, PacketError> {
        let mut b = [0u8; 4];
        b.copy_from_slice(self.take(4)?);
        Ok(u32::from_le_bytes(b))
    }

    fn end(&self) -> Result<(), PacketError> {
        if self.0.is_empty() {
            Ok(())
        } else {
            Err(PacketError::MalformedReplayFilter(
                "length does not match bit count",
            ))
        }
    }
}

/// One slice's words, after its shape was checked.
fn read_words(
    r: &mut Reader<'_>,
    num_bits: u64,
    num_hashes: u32,
    inserted: u64,
) -> Result<Slice, PacketError> {
    if num_bits == 0 || num_bits > MAX_BITS {
        return Err(PacketError::MalformedReplayFilter("bit count out of range"));
    }
    if num_hashes == 0 || num_hashes > MAX_HASHES {
        return Err(PacketError::MalformedReplayFilter(
            "hash count out of range",
        ));
    }
    let words = num_bits.div_ceil(64) as usize;
    if r.0.len() < words * 8 {
        return Err(PacketError::MalformedReplayFilter(
            "length does not match bit count",
        ));
    }
    let bits = r
        .take(words * 8)?
        .chunks_exact(8)
        .map(|c| {
            let mut b = [0u8; 8];
            b.copy_from_slice(c);
            u64::from_le_bytes(b)
        })
        .collect();
    Ok(Slice {
        bits,
        num_bits,
        num_hashes,
        inserted,
    })
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
        // The first slice's hash count (after the header and its bit count).
        let mut bad = bytes.clone();
        bad[HEADER_LEN + 8..HEADER_LEN + 12].copy_from_slice(&0u32.to_le_bytes());
        assert!(ReplayFilter::from_bytes(&bad).is_err());
        // A slice count past the limit, or zero.
        for count in [0u32, MAX_SLICES as u32 + 1] {
            let mut bad = bytes.clone();
            bad[HEADER_LEN - 4..HEADER_LEN].copy_from_slice(&count.to_le_bytes());
            assert!(ReplayFilter::from_bytes(&bad).is_err());
        }
        let mut bad = bytes;
        bad[4] = 9;
        assert!(ReplayFilter::from_bytes(&bad).is_err());
    }

    #[test]
    fn a_counter_at_its_limit_does_not_overflow() {
        let mut rng = ChaCha20Rng::seed_from_u64(15);
        // A filter that cannot grow, with its only slice's count at the top.
        let mut bytes = ReplayFilter::with_limit(&mut rng, 10, 1e-2, 0).to_bytes();
        let at = HEADER_LEN + 8 + 4;
        bytes[at..at + 8].copy_from_slice(&u64::MAX.to_le_bytes());
        let mut f = ReplayFilter::from_bytes(&bytes).unwrap();
        assert!(f.check_and_insert(&tag(&mut rng)));
        assert_eq!(f.len(), u64::MAX);
    }

    #[test]
    fn a_filter_at_its_byte_limit_still_answers_and_says_it_is_saturated() {
        let mut rng = ChaCha20Rng::seed_from_u64(14);
        let mut f = ReplayFilter::with_limit(&mut rng, 10, 1e-2, 0);
        for _ in 0..1000 {
            f.check_and_insert(&tag(&mut rng));
        }
        assert_eq!(f.slices(), 1);
        assert!(f.is_saturated());
        assert!(f.estimated_fp_rate() > 0.5);
    }

    #[test]
    fn a_flood_of_five_times_the_capacity_costs_memory_not_honest_packets() {
        // Sized like a node's filter (false positives 1e-6 at capacity),
        // flooded with five times the tags it was sized for. A plain Bloom
        // filter would then refuse (1 - e^(-k·5n/m))^k of honest packets:
        // with k = 20 and m/n = 28.8 bits, about half of them.
        let mut rng = ChaCha20Rng::seed_from_u64(16);
        let capacity = 20_000;
        let mut f = ReplayFilter::with_capacity(&mut rng, capacity, 1e-6);
        let first = f.size_bytes();
        for _ in 0..5 * capacity {
            f.check_and_insert(&tag(&mut rng));
        }
        assert_eq!(f.slices(), 5);
        assert!(!f.is_saturated());
        let honest = 10_000;
        let refused = (0..honest)
            .filter(|_| !f.check_and_insert(&tag(&mut rng)))
            .count();
        assert!(refused * 100 < honest, "{refused} of {honest} refused");
        // The bound the construction gives: below twice the first slice's
        // rate, so ~0.02 expected here.
        assert!(refused <= 2, "{refused}");
        assert!(f.estimated_fp_rate() < 2.5e-6, "{}", f.estimated_fp_rate());
        // The memory it took: six slices now, each a little larger than
        // the one before (its rate is half): 6.75 times the first.
        assert_eq!(f.slices(), 6);
        assert!(f.size_bytes() < 7 * first, "{} vs {first}", f.size_bytes());
        // The plain filter's figure, from the same formula.
        let k = 20f64;
        let plain = (1.0 - (-k * 5.0 / 28.8f64).exp()).powf(k);
        assert!(plain > 0.5, "{plain}");
    }

    #[test]
    fn a_slice_series_persists_and_a_single_filter_from_before_loads() {
        let mut rng = ChaCha20Rng::seed_from_u64(17);
        let mut f = ReplayFilter::with_capacity(&mut rng, 100, 1e-4);
        let tags: Vec<_> = (0..350).map(|_| tag(&mut rng)).collect();
        for t in &tags {
            f.check_and_insert(t);
        }
        assert_eq!(f.slices(), 4);
        let g = ReplayFilter::from_bytes(&f.to_bytes()).unwrap();
        assert_eq!(g.to_bytes(), f.to_bytes());
        assert!(tags.iter().all(|t| g.contains(t)));
        // Format 1: one filter, as written before slices existed.
        let mut v1 = Vec::new();
        v1.extend_from_slice(MAGIC);
        v1.push(FORMAT_V1);
        v1.extend_from_slice(&[9u8; 32]);
        let (bits, hashes) = Slice::shape(100, 1e-4);
        v1.extend_from_slice(&bits.to_le_bytes());
        v1.extend_from_slice(&hashes.to_le_bytes());
        v1.extend_from_slice(&100u64.to_le_bytes());
        v1.extend_from_slice(&0u64.to_le_bytes());
        v1.extend(std::iter::repeat_n(0u8, bits.div_ceil(64) as usize * 8));
        let mut old = ReplayFilter::from_bytes(&v1).unwrap();
        assert_eq!((old.slices(), old.capacity()), (1, 100));
        assert!((old.fp_rate / 1e-4 - 1.0).abs() < 0.05, "{}", old.fp_rate);
        let t = tag(&mut rng);
        assert!(old.check_and_insert(&t));
        assert!(!old.check_and_insert(&t));
        assert!(ReplayFilter::from_bytes(&v1[..v1.len() - 1]).is_err());
    }
}
