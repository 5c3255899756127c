//! A replay filter file read back after a crash may be truncated or corrupt.
#![no_main]

use aegis_mix_packet::{ReplayFilter, ReplayTag};
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    if let Ok(mut filter) = ReplayFilter::from_bytes(data) {
        let tag = ReplayTag([1; 32]);
        filter.check_and_insert(&tag);
        assert!(filter.contains(&tag));
    }
});
