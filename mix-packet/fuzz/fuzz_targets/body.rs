//! What a mailbox owner opens: sealed boxes and bodies.
#![no_main]

use aegis_mix_packet::{Body, Geometry, SphinxSecret, open_delivery};
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let geometry = Geometry::STANDARD;
    let mut body = data.to_vec();
    body.resize(geometry.sealed_plaintext_len(), 0);
    let _ = Body::decode(&geometry, &body);
    let _ = Body::decode(&geometry, data);
    let mut payload = data.to_vec();
    payload.resize(geometry.payload_len, 0);
    let _ = open_delivery(&geometry, &SphinxSecret::from([9u8; 32]), &payload);
});
