//! A hop of the KEM packet format on hostile bytes: whatever arrives, the
//! hop refuses it with an error or processes it; it never panics. Inputs
//! shorter than a packet are also padded to the packet's length, so the
//! fuzzer reaches the decapsulation, the MAC and (rarely) the routing.
#![no_main]

use std::sync::LazyLock;

use aegis_mix_packet::kem::{HybridPublic, HybridSecret};
use aegis_mix_packet::{Geometry, peel_hybrid};
use libfuzzer_sys::fuzz_target;

static KEY: LazyLock<HybridSecret> = LazyLock::new(|| HybridSecret::from_seed(&[7; 32]));

fuzz_target!(|data: &[u8]| {
    let geometry = Geometry::PQ;
    let _ = peel_hybrid(&geometry, data, &KEY).and_then(|p| p.unwrap());
    let mut packet = data.to_vec();
    packet.resize(geometry.packet_len(), 0);
    let _ = peel_hybrid(&geometry, &packet, &KEY).and_then(|p| p.unwrap());
    let _ = HybridPublic::from_bytes(data);
});
