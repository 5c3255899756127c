use super::*;
use proptest::prelude::*;
use rand::SeedableRng;
use rand::seq::SliceRandom;
use rand_chacha::ChaCha20Rng;

fn hex32(s: &str) -> [u8; 32] {
    let bytes = hex::decode(s).unwrap();
    bytes.try_into().unwrap()
}

// Expected values from Python's hmac/hashlib (RFC 5869 HKDF), not from
// this code.
#[test]
fn epoch_and_message_kdf_known_answers() {
    let secret = epoch_secret(
        &[0x11; 32],
        &[0x22; 32],
        1,
        &[0x33; MLKEM768_KEY_LEN],
        &[0x44; MLKEM768_CIPHERTEXT_LEN],
    );
    assert_eq!(
        *secret,
        hex32("603da2a1c330f3480b69e3940b979c0e2a42db5b10ee9b55bf8390573290941a")
    );
    assert_eq!(
        *message_key(&[0x55; 32], &[0x66; 32], 5),
        hex32("ca3f29c047ef4a83014027fb4232ee4ebe4883756aa9b6dde21053559093e077")
    );
}

#[test]
fn the_first_k_shards_are_the_object() {
    let object: Vec<u8> = (0..KEY_SHARDS * SHARD_LEN).map(|i| i as u8).collect();
    for i in 0..KEY_SHARDS {
        assert_eq!(
            shard(&object, i as u8).as_slice(),
            &object[i * SHARD_LEN..(i + 1) * SHARD_LEN]
        );
    }
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(48))]

    /// Any k distinct shards of the 255 give the object back.
    #[test]
    fn any_k_distinct_shards_recover_the_object(
        seed in any::<u64>(),
        ciphertext in any::<bool>(),
    ) {
        let mut rng = ChaCha20Rng::seed_from_u64(seed);
        let k = if ciphertext { CIPHERTEXT_SHARDS } else { KEY_SHARDS };
        let mut object = vec![0u8; k * SHARD_LEN];
        rng.fill_bytes(&mut object);
        let mut indices: Vec<u8> = (0..255).collect();
        indices.shuffle(&mut rng);
        let mut collector = Collector::new(k);
        for (n, &i) in indices.iter().enumerate() {
            prop_assert!(collector.object().is_none() || n >= k);
            collector.add(i, &shard(&object, i));
            // A repeat changes nothing.
            collector.add(i, &shard(&object, i));
            if n + 1 == k {
                prop_assert_eq!(collector.object(), Some(object.clone()));
            }
        }
        prop_assert_eq!(collector.held(), k);
    }

    /// Decoding arbitrary bytes never panics, and what decodes re-encodes
    /// to the bytes it read.
    #[test]
    fn sections_decode_strictly(bytes in proptest::collection::vec(any::<u8>(), 0..1400)) {
        if let Ok((section, rest)) = Section::decode(&bytes) {
            let mut again = Vec::new();
            section.encode(&mut again);
            prop_assert_eq!(&again[..], &bytes[..bytes.len() - rest.len()]);
        }
    }
}

#[test]
fn sections_round_trip_and_every_truncation_is_refused() {
    let section = Section {
        shards: Some((SectionKind::Ciphertext, 9, 250, vec![[7; SHARD_LEN]; 3])),
    };
    let mut bytes = Vec::new();
    section.encode(&mut bytes);
    assert_eq!(bytes.len(), Section::len_with(3));
    let (back, rest) = Section::decode(&bytes).unwrap();
    assert_eq!(back, section);
    assert!(rest.is_empty());
    for cut in 0..bytes.len() {
        assert!(Section::decode(&bytes[..cut]).is_err(), "cut at {cut}");
    }
    // Unknown kind, index 255, no shards, more shards than the object has.
    for (at, value) in [(0, 3), (9, 255), (10, 0), (10, CIPHERTEXT_SHARDS as u8 + 1)] {
        let mut bad = bytes.clone();
        bad[at] = value;
        assert!(Section::decode(&bad).is_err(), "byte {at} = {value}");
    }
    let mut none = Vec::new();
    Section { shards: None }.encode(&mut none);
    assert_eq!(none, vec![NONE]);
}

/// One section from `from` to `to`, `budget` bytes.
fn hand_over(from: &mut Spqr, to: &mut Spqr, rng: &mut ChaCha20Rng, budget: usize) {
    let (epoch, key) = from.sending_key(&[9; 32]);
    let section = from.section(budget);
    assert_eq!(
        *to.receiving_key(epoch, &[9; 32]).unwrap(),
        *key,
        "both sides derive the message key"
    );
    to.receive(rng, epoch, &section).unwrap();
}

/// Hands each side's sections to the other directly, `budget` bytes each.
fn converse(a: &mut Spqr, b: &mut Spqr, rng: &mut ChaCha20Rng, turns: usize, budget: usize) {
    for _ in 0..turns {
        hand_over(a, b, rng, budget);
        hand_over(b, a, rng, budget);
    }
}

#[test]
fn epochs_advance_in_turns_and_both_sides_agree() {
    let mut rng = ChaCha20Rng::seed_from_u64(1);
    let mut a = Spqr::new(&mut rng, true, &[3; 32]);
    let mut b = Spqr::new(&mut rng, false, &[3; 32]);
    // Whole objects fit: an epoch per round trip and a half.
    converse(&mut a, &mut b, &mut rng, 12, 1_400);
    assert!(a.epoch() >= 6, "epoch {}", a.epoch());
    assert!(a.epoch().abs_diff(b.epoch()) <= 1);
    // Two shards per message: the key takes 19 messages, the
    // ciphertext 17, and still every key agrees.
    let epoch = a.epoch();
    converse(&mut a, &mut b, &mut rng, 80, Section::len_with(2));
    assert!(a.epoch() >= epoch + 2, "epoch {}", a.epoch());
}

#[test]
fn a_budget_too_small_for_a_shard_carries_none() {
    let mut rng = ChaCha20Rng::seed_from_u64(2);
    let mut a = Spqr::new(&mut rng, true, &[3; 32]);
    for budget in [0, 1, SECTION_HEADER_LEN + SHARD_LEN - 1] {
        assert_eq!(a.section(budget), Section { shards: None });
    }
    let one = a.section(Section::len_with(1));
    let mut bytes = Vec::new();
    one.encode(&mut bytes);
    assert_eq!(bytes.len(), Section::len_with(1));
}

#[test]
fn old_epoch_secrets_are_erased() {
    let mut rng = ChaCha20Rng::seed_from_u64(3);
    let mut a = Spqr::new(&mut rng, true, &[3; 32]);
    let mut b = Spqr::new(&mut rng, false, &[3; 32]);
    converse(&mut a, &mut b, &mut rng, 20, 1_400);
    assert!(a.epoch() > KEPT_EPOCHS as u64);
    assert_eq!(
        a.receiving_key(0, &[9; 32]).err(),
        Some(EdgeError::UnknownEpoch(0))
    );
    assert!(a.secrets.len() <= KEPT_EPOCHS);
    assert!(
        a.receiving_key(a.epoch() + 5, &[9; 32]).is_err(),
        "no key for an epoch not reached"
    );
}
