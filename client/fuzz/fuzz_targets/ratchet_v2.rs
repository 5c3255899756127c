//! Arbitrary bytes at a version-2 session, as a message after a real one:
//! refused without a panic and without changing the session.
#![no_main]

use std::sync::OnceLock;

use aegis_client::edge::pqxdh::Version;
use aegis_client::edge::ratchet::{Session, fresh_pair};
use libfuzzer_sys::fuzz_target;
use rand::SeedableRng;
use rand_chacha::ChaCha20Rng;

/// Bob's session after one message from Alice, and Alice's next message.
fn bob() -> &'static (Vec<u8>, Vec<u8>) {
    static BOB: OnceLock<(Vec<u8>, Vec<u8>)> = OnceLock::new();
    BOB.get_or_init(|| {
        let mut rng = ChaCha20Rng::seed_from_u64(1);
        let (mut a, mut b) = fresh_pair(&mut rng, Version::V2).unwrap();
        let first = a.encrypt(&mut rng, b"first", 1_300).unwrap();
        b.decrypt(&mut rng, &first).unwrap();
        let next = a.encrypt(&mut rng, b"next", 1_300).unwrap();
        (b.to_bytes().to_vec(), next)
    })
}

fuzz_target!(|data: &[u8]| {
    let (state, next) = bob();
    let mut session = Session::from_bytes(state).unwrap();
    let mut rng = ChaCha20Rng::seed_from_u64(2);
    // The bytes as they are, and spliced into a real message's place.
    let mut spliced = next.clone();
    for (i, b) in data.iter().enumerate().take(spliced.len()) {
        spliced[i] ^= b;
    }
    for message in [data, &spliced[..]] {
        if session.decrypt(&mut rng, message).is_err() {
            assert_eq!(&*session.to_bytes(), &state[..], "a refused message changed the state");
        } else {
            session = Session::from_bytes(state).unwrap();
        }
    }
});
