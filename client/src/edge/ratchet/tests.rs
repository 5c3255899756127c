use super::*;
use rand::SeedableRng;
use rand::seq::SliceRandom;
use rand_chacha::ChaCha20Rng;

/// Alice's (initiator's) and Bob's sessions of the latest version.
pub(super) fn pair(seed: u64) -> (ChaCha20Rng, Session, Session) {
    pair_version(seed, Version::LATEST)
}

pub(super) fn pair_version(seed: u64, version: Version) -> (ChaCha20Rng, Session, Session) {
    let mut rng = ChaCha20Rng::seed_from_u64(seed);
    let (a, b) = fresh_pair(&mut rng, version).unwrap();
    (rng, a, b)
}

#[test]
fn messages_flow_both_ways_across_many_ratchet_steps() {
    for version in [Version::V1, Version::V2] {
        flow_both_ways(version);
    }
}

fn flow_both_ways(version: Version) {
    let (mut rng, mut a, mut b) = pair_version(1, version);
    assert_eq!((a.version(), b.version()), (version, version));
    assert_eq!(
        b.encrypt(&mut rng, b"too early", 0),
        Err(EdgeError::NotReadyToSend)
    );
    for round in 0..20u32 {
        for i in 0..(round % 3 + 1) {
            let m = a
                .encrypt(&mut rng, format!("a{round}.{i}").as_bytes(), 0)
                .unwrap();
            assert_eq!(
                b.decrypt(&mut rng, &m).unwrap(),
                format!("a{round}.{i}").as_bytes()
            );
        }
        let m = b
            .encrypt(&mut rng, format!("b{round}").as_bytes(), 0)
            .unwrap();
        assert_eq!(
            a.decrypt(&mut rng, &m).unwrap(),
            format!("b{round}").as_bytes()
        );
    }
}

#[test]
fn out_of_order_and_late_messages_across_dh_steps() {
    let (mut rng, mut a, mut b) = pair(2);
    let mut first: Vec<_> = (0..10)
        .map(|i| (i, a.encrypt(&mut rng, &[i], 0).unwrap()))
        .collect();
    first.shuffle(&mut rng);
    let late: Vec<_> = first.split_off(7);
    for (i, m) in &first {
        assert_eq!(b.decrypt(&mut rng, m).unwrap(), vec![*i]);
    }
    // a DH step in both directions before the late ones arrive
    let reply = b.encrypt(&mut rng, b"r", 0).unwrap();
    a.decrypt(&mut rng, &reply).unwrap();
    let next = a.encrypt(&mut rng, b"n", 0).unwrap();
    b.decrypt(&mut rng, &next).unwrap();
    for (i, m) in &late {
        assert_eq!(b.decrypt(&mut rng, m).unwrap(), vec![*i]);
    }
    assert_eq!(b.skipped_keys(), 0);
}

#[test]
fn skipping_is_bounded_per_step_and_in_total() {
    let (mut rng, mut a, mut b) = pair(3);
    let first = a.encrypt(&mut rng, b"0", 0).unwrap();
    b.decrypt(&mut rng, &first).unwrap();
    for _ in 0..MAX_SKIP + 1 {
        a.encrypt(&mut rng, b"lost", 0).unwrap();
    }
    let too_far = a.encrypt(&mut rng, b"x", 0).unwrap();
    let before = b.to_bytes();
    assert!(matches!(
        b.decrypt(&mut rng, &too_far),
        Err(EdgeError::TooManySkipped { .. })
    ));
    assert_eq!(*b.to_bytes(), *before);

    // Across DH steps: each step skips MAX_SKIP - 1, the total stays bounded.
    let (mut rng, mut a, mut b) = pair(4);
    for _ in 0..4 {
        for _ in 0..MAX_SKIP - 1 {
            a.encrypt(&mut rng, b"lost", 0).unwrap();
        }
        let m = a.encrypt(&mut rng, b"arrives", 0).unwrap();
        b.decrypt(&mut rng, &m).unwrap();
        let r = b.encrypt(&mut rng, b"reply", 0).unwrap();
        a.decrypt(&mut rng, &r).unwrap();
        assert!(b.skipped_keys() <= MAX_SKIPPED_TOTAL);
    }
    assert_eq!(b.skipped_keys(), MAX_SKIPPED_TOTAL);
}

#[test]
fn forged_replayed_or_corrupt_messages_leave_the_state_byte_identical() {
    let (mut rng, mut a, mut b) = pair(5);
    let m1 = a.encrypt(&mut rng, b"one", 0).unwrap();
    let m2 = a.encrypt(&mut rng, b"two", 0).unwrap();
    b.decrypt(&mut rng, &m2).unwrap(); // m1's key is now skipped
    let snapshot = b.to_bytes();
    let mut attempts = vec![m2.clone(), m1[..50].to_vec(), vec![0u8; 300]];
    for i in [
        0,
        30,
        HEADER_LEN - 1,
        HEADER_LEN,
        HEADER_LEN + 30,
        m1.len() - 1,
    ] {
        let mut bad = m1.clone();
        bad[i] ^= 0x80;
        attempts.push(bad);
    }
    for attempt in &attempts {
        assert!(b.decrypt(&mut rng, attempt).is_err());
        assert_eq!(*b.to_bytes(), *snapshot, "state changed");
    }
    assert_eq!(b.decrypt(&mut rng, &m2), Err(EdgeError::Duplicate));
    assert_eq!(b.decrypt(&mut rng, &m1).unwrap(), b"one");
    assert!(
        b.decrypt(&mut rng, &m1).is_err(),
        "a skipped key is used once"
    );
}

#[test]
fn headers_do_not_link_messages_of_one_chain() {
    let (mut rng, mut a, _) = pair(6);
    let m1 = a.encrypt(&mut rng, b"same", 0).unwrap();
    let m2 = a.encrypt(&mut rng, b"same", 0).unwrap();
    // no 6-byte window of one header appears in the other
    for w in m1[..HEADER_LEN].windows(6) {
        assert!(!m2[..HEADER_LEN].windows(6).any(|x| x == w));
    }
    assert_eq!(m1.len(), m2.len());
}

#[test]
fn a_low_order_ratchet_key_is_refused_without_changing_state() {
    let (mut rng, mut a, mut b) = pair(7);
    let m = a.encrypt(&mut rng, b"hi", 0).unwrap();
    b.decrypt(&mut rng, &m).unwrap();
    // forge a header under the key of the next chain, as a peer knowing it could
    let header = Header {
        dh: [0u8; 32],
        pn: 0,
        n: 0,
        epoch: b.pq_epoch(),
    }
    .seal(&b.dr.nhkr, &mut rng, &b.dr.ad);
    let mut forged = header;
    forged.extend_from_slice(&[0u8; NONCE_LEN + TAG_LEN + 4]);
    let before = b.to_bytes();
    assert_eq!(b.decrypt(&mut rng, &forged), Err(EdgeError::LowOrderPoint));
    assert_eq!(*b.to_bytes(), *before);
}

#[test]
fn state_survives_serialisation() {
    let (mut rng, mut a, b) = pair(8);
    let mut b = Session::from_bytes(&b.to_bytes()).unwrap();
    let m = a.encrypt(&mut rng, b"after restore", 0).unwrap();
    assert_eq!(b.decrypt(&mut rng, &m).unwrap(), b"after restore");
    assert!(Session::from_bytes(&[1, 2, 3]).is_err());
}
