//! The post-quantum ratchet inside sessions of version 2: healing after a
//! compromise, the transactional rule, the stored layouts. (Progress under
//! the mixnet's delays, reordering and loss is tested with the simulator's
//! latencies in `simulations/tests/pq_ratchet.rs`.)

use super::tests::{pair, pair_version};
use super::*;
use proptest::prelude::*;

/// What a short text leaves for the post-quantum section: the whole of a
/// fragment less the message (as `conversation::seal` computes it).
const SHORT_TEXT_BUDGET: usize = 1_300;

/// Bob's session as an adversary holds it: a copy of his state taken at the
/// compromise for the post-quantum part, and — granted, as a quantum
/// computer would give it — Bob's real elliptic-curve state before each
/// message. Reading a message to Bob succeeds exactly when the copy's
/// post-quantum secrets still give its key.
struct Adversary {
    pq: Spqr,
}

impl Adversary {
    fn reads<R: CryptoRng + ?Sized>(
        &mut self,
        rng: &mut R,
        bob_before: &Session,
        message: &[u8],
    ) -> bool {
        let mut probe = bob_before.clone();
        probe.pq = Some(self.pq.clone());
        match probe.decrypt(rng, message) {
            Ok(_) => {
                // What it read advances its copy, as Bob's own would.
                if let Some(pq) = probe.pq.take() {
                    self.pq = pq;
                }
                true
            }
            Err(_) => false,
        }
    }

    /// Bob wrote a message: his copy takes the same turn (its key pair,
    /// when it is Bob's turn to make one, is not Bob's: the copy does not
    /// know his fresh randomness).
    fn bob_wrote(&mut self) {
        let _ = self.pq.section(SHORT_TEXT_BUDGET);
    }
}

#[test]
fn a_copied_state_stops_decrypting_once_the_post_quantum_epoch_has_moved_on() {
    let (mut rng, mut alice, mut bob) = pair(20);
    // Some conversation first.
    for i in 0..4u8 {
        let m = alice.encrypt(&mut rng, &[i], SHORT_TEXT_BUDGET).unwrap();
        bob.decrypt(&mut rng, &m).unwrap();
        let r = bob.encrypt(&mut rng, &[i], SHORT_TEXT_BUDGET).unwrap();
        alice.decrypt(&mut rng, &r).unwrap();
    }
    // The compromise: the whole of Bob's state, copied.
    let stolen_epoch = bob.pq_epoch().unwrap();
    let mut adversary = Adversary {
        pq: bob.pq.clone().unwrap(),
    };
    let mut lost_at = None;
    for i in 0..12u8 {
        let m = alice.encrypt(&mut rng, &[i], SHORT_TEXT_BUDGET).unwrap();
        let before = bob.clone();
        assert_eq!(bob.decrypt(&mut rng, &m).unwrap(), vec![i]);
        let read = adversary.reads(&mut rng, &before, &m);
        match (read, lost_at) {
            (false, None) => lost_at = Some((i, bob.pq_epoch().unwrap())),
            (true, Some(_)) => panic!("the copy read message {i} again"),
            _ => {}
        }
        let r = bob.encrypt(&mut rng, &[i], SHORT_TEXT_BUDGET).unwrap();
        alice.decrypt(&mut rng, &r).unwrap();
        adversary.bob_wrote();
    }
    let (message, epoch) = lost_at.expect("the copy read every message");
    // The copy may follow at most the exchange it held secrets of; from
    // the next one on, Bob's fresh ML-KEM randomness is missing from it.
    assert!(
        epoch <= stolen_epoch + 2,
        "lost only at epoch {epoch} (stolen at {stolen_epoch})"
    );
    assert!(message <= 3, "lost only at message {message}");
}

#[test]
fn without_the_post_quantum_ratchet_the_same_adversary_reads_everything() {
    // The same adversary against version 1 (nothing but the elliptic-curve
    // state, which it is granted): it never loses, which is what makes the
    // test above mean something.
    let (mut rng, mut alice, mut bob) = pair_version(21, Version::V1);
    for i in 0..12u8 {
        let m = alice.encrypt(&mut rng, &[i], 0).unwrap();
        let probe = bob.clone();
        assert_eq!(bob.decrypt(&mut rng, &m).unwrap(), vec![i]);
        assert!(probe.clone().decrypt(&mut rng, &m).is_ok());
        let r = bob.encrypt(&mut rng, &[i], 0).unwrap();
        alice.decrypt(&mut rng, &r).unwrap();
    }
}

#[test]
fn a_forged_or_damaged_version_2_message_leaves_the_whole_state_byte_identical() {
    let (mut rng, mut alice, mut bob) = pair(23);
    let m = alice
        .encrypt(&mut rng, b"key shards", SHORT_TEXT_BUDGET)
        .unwrap();
    let snapshot = bob.to_bytes();
    for i in (0..m.len()).step_by(7) {
        let mut bad = m.clone();
        bad[i] ^= 0x01;
        assert!(bob.decrypt(&mut rng, &bad).is_err(), "flip at {i}");
        assert_eq!(*bob.to_bytes(), *snapshot, "state changed by a flip at {i}");
    }
    for cut in [0, HEADER_LEN_V2, m.len() - 1] {
        assert!(bob.decrypt(&mut rng, &m[..cut]).is_err());
        assert_eq!(*bob.to_bytes(), *snapshot);
    }
    bob.decrypt(&mut rng, &m).unwrap();
    let after = bob.to_bytes();
    assert!(bob.decrypt(&mut rng, &m).is_err(), "a replay");
    assert_eq!(*bob.to_bytes(), *after);
}

#[test]
fn every_message_keeps_its_fragment_count() {
    use crate::envelope::pq_budget;
    let (mut rng, mut alice, _) = pair(24);
    // In either packet format's geometry: the budget follows the network's
    // fragment size, not one fixed size.
    for geometry in aegis_mix_packet::Geometry::KNOWN {
        let per = geometry.fragment_data_len();
        for len in [
            0,
            10,
            500,
            per - 200,
            per - 130,
            per - 129,
            per,
            3 * per + 7,
        ] {
            let plaintext = vec![1u8; len];
            let bare = alice.overhead() + plaintext.len();
            let budget = pq_budget(&geometry, bare);
            let m = alice.encrypt(&mut rng, &plaintext, budget).unwrap();
            assert_eq!(
                m.len().div_ceil(per),
                bare.div_ceil(per),
                "{len} bytes of plaintext in {}",
                geometry.name
            );
        }
    }
}

#[test]
fn sessions_stored_before_version_2_still_load() {
    let (mut rng, mut alice, bob) = pair_version(25, Version::V1);
    let mut old_layout = bob.to_bytes().to_vec();
    // Version 1's layout is version 2's without the trailing `None`.
    assert_eq!(old_layout.pop(), Some(0));
    let mut restored = Session::from_bytes(&old_layout).unwrap();
    assert_eq!(restored.version(), Version::V1);
    let m = alice.encrypt(&mut rng, b"after the upgrade", 0).unwrap();
    assert_eq!(
        restored.decrypt(&mut rng, &m).unwrap(),
        b"after the upgrade"
    );
    let (_, _, v2) = pair(26);
    let back = Session::from_bytes(&v2.to_bytes()).unwrap();
    assert_eq!(*back.to_bytes(), *v2.to_bytes());
    assert!(Session::from_bytes(&v2.to_bytes()[..40]).is_err());
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(32))]

    /// Whatever happens to a version-2 message on the way — a flipped bit,
    /// a cut, bytes appended — it is refused with the state unchanged: the
    /// header's and the body's tags cover every byte.
    #[test]
    fn damaged_messages_never_change_the_state(
        seed in any::<u64>(),
        flip in any::<prop::sample::Index>(),
        bit in 0u8..8,
        extra in proptest::collection::vec(any::<u8>(), 1..64),
    ) {
        let (mut rng, mut alice, mut bob) = pair(seed);
        let m = alice.encrypt(&mut rng, b"x", SHORT_TEXT_BUDGET).unwrap();
        let snapshot = bob.to_bytes();
        let mut flipped = m.clone();
        let at = flip.index(m.len());
        flipped[at] ^= 1 << bit;
        let mut longer = m.clone();
        longer.extend_from_slice(&extra);
        for bad in [flipped, m[..at].to_vec(), longer] {
            prop_assert!(bob.decrypt(&mut rng, &bad).is_err());
            prop_assert_eq!(&*bob.to_bytes(), &*snapshot);
        }
    }
}
