//! A SURB-ACK received inside a fragment comes from the sender, who may be hostile.
#![no_main]

use aegis_mix_packet::{Geometry, SurbAck, build_ack};
use libfuzzer_sys::fuzz_target;
use rand::SeedableRng;

fuzz_target!(|data: &[u8]| {
    let geometry = Geometry::STANDARD;
    let mut rng = rand_chacha::ChaCha20Rng::seed_from_u64(0);
    let mut bytes = data.to_vec();
    bytes.resize(geometry.surb_ack_len(), 0);
    for candidate in [data, &bytes[..]] {
        if let Ok(surb_ack) = SurbAck::decode(&geometry, candidate) {
            let _ = build_ack(&mut rng, &geometry, surb_ack);
        }
    }
});
