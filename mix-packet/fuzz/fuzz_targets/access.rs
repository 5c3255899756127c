//! Any bytes on an access stream, from either side: the length check, the
//! strict decoders of both directions, and the ownership proof.
#![no_main]

use aegis_mix_packet::access::{
    ClientMessage, ServerMessage, cell_len, decode, decode_message, verify_hello,
};
use aegis_mix_packet::Geometry;
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let cell = cell_len(Geometry::STANDARD.frame_len());
    for expect in [0, cell] {
        let _ = decode_message::<ClientMessage>(data, expect);
        let _ = decode_message::<ServerMessage>(data, expect);
    }
    let _ = decode::<ClientMessage>(data);
    if let Ok(ClientMessage::Hello {
        mailbox_key,
        signature,
    }) = decode::<ClientMessage>(data)
    {
        let _ = verify_hello(&[1; 32], &[2; 32], &mailbox_key, &signature);
    }
});
