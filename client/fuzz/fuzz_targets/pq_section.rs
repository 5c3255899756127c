//! The post-quantum section at the front of a version-2 message body.
#![no_main]

use aegis_client::edge::spqr::Section;
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    if let Ok((section, rest)) = Section::decode(data) {
        let mut again = Vec::new();
        section.encode(&mut again);
        assert_eq!(&again[..], &data[..data.len() - rest.len()]);
    }
});
