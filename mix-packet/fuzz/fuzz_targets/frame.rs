//! Any bytes arriving on a link: frame decoding and the whole hop.
#![no_main]

use aegis_mix_packet::{EpochKey, EpochKeys, Geometry, ReplayFilter, SphinxSecret, process_frame};
use libfuzzer_sys::fuzz_target;
use rand::SeedableRng;

fuzz_target!(|data: &[u8]| {
    let geometry = Geometry::STANDARD;
    let mut rng = rand_chacha::ChaCha20Rng::seed_from_u64(0);
    let mut keys = EpochKeys::new();
    keys.insert(1, EpochKey::new(SphinxSecret::from([7u8; 32]), ReplayFilter::with_capacity(&mut rng, 1000, 1e-3)));
    // Also try the input stretched to a full frame, so the fuzzer reaches the Sphinx code.
    let _ = process_frame(&geometry, data, &mut keys, &[1, 2, 0]);
    let mut full = vec![aegis_mix_packet::constants::FRAME_VERSION];
    full.extend_from_slice(data);
    full.resize(geometry.frame_len(), 0);
    let _ = process_frame(&geometry, &full, &mut keys, &[1, 2, 0]);
});
