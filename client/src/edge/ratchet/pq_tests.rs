//! The post-quantum ratchet inside sessions of version 2: healing after a
//! compromise, progress under the mixnet's loss and reordering, the
//! transactional rule, the stored layouts.

use super::tests::{pair, pair_version};
use super::*;
use proptest::prelude::*;
use rand::{RngExt, SeedableRng};
use rand_chacha::ChaCha20Rng;
use rand_distr::{Distribution, Exp};

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

/// One message in flight: when it arrives, who wrote it, the bytes.
struct InFlight {
    arrives: f64,
    from_alice: bool,
    bytes: Vec<u8>,
}

/// Messages per epoch advance when both sides write at random times
/// (Poisson, one message a second each) and each message crosses five
/// hops of exponential delay with the consensus's mean (50 ms) and waits
/// for its recipient's next pull (every second), and `loss` of them never
/// arrive (the outbox's retransmissions aside). Returns the number of
/// messages written before each epoch the two sides reach, and how many
/// arrived messages failed to decrypt.
fn through_the_mixnet(seed: u64, loss: f64, budget: usize, messages: usize) -> (Vec<usize>, usize) {
    let (mut rng, mut alice, mut bob) = pair(seed);
    let mut net = ChaCha20Rng::seed_from_u64(seed ^ 0x5EED);
    let hop = Exp::new(1.0 / 0.050).unwrap();
    let gap = Exp::new(2.0).unwrap();
    let mut now = 0.0;
    let mut in_flight: Vec<InFlight> = Vec::new();
    let mut advanced_at = Vec::new();
    let mut failed = 0;
    // Alice writes first (Bob's session cannot send before it received).
    let first = alice.encrypt(&mut rng, b"hello", budget).unwrap();
    in_flight.push(InFlight {
        arrives: 0.5,
        from_alice: true,
        bytes: first,
    });
    let mut written = 1;
    while written < messages {
        now += gap.sample(&mut net);
        // Deliver what arrived by now, in order of arrival.
        in_flight.sort_by(|a, b| b.arrives.total_cmp(&a.arrives));
        while in_flight.last().is_some_and(|m| m.arrives <= now) {
            let m = in_flight.pop().unwrap();
            let to = if m.from_alice { &mut bob } else { &mut alice };
            if to.decrypt(&mut rng, &m.bytes).is_err() {
                failed += 1;
            }
        }
        let epoch = alice.pq_epoch().unwrap().min(bob.pq_epoch().unwrap()) as usize;
        while advanced_at.len() < epoch {
            advanced_at.push(written);
        }
        let from_alice = net.random::<bool>();
        let from = if from_alice { &mut alice } else { &mut bob };
        let Ok(bytes) = from.encrypt(&mut rng, b"a short text", budget) else {
            continue; // Bob before Alice's first message: he waits.
        };
        written += 1;
        if net.random::<f64>() < loss {
            continue;
        }
        let route: f64 = (0..5).map(|_| hop.sample(&mut net)).sum();
        let pull = net.random_range(0.0..1.0);
        in_flight.push(InFlight {
            arrives: now + route + pull,
            from_alice,
            bytes,
        });
    }
    (advanced_at, failed)
}

#[test]
fn through_loss_and_reordering_the_epoch_still_advances() {
    for (loss, budget, most) in [
        // Seen with these seeds: 57 epochs in 600 messages, a median of
        // 10 and at most 18 messages each; with a fifth lost, 49 epochs,
        // median 12, at most 28.
        (0.0, SHORT_TEXT_BUDGET, 30),
        (0.2, SHORT_TEXT_BUDGET, 45),
        // Two shards a message: 19 messages for the key, 17 for the
        // ciphertext, each side writing half of them.
        // Seen: 6 epochs, median 99, at most 111.
        (0.2, Section::len_with(2), 160),
    ] {
        let (advanced_at, failed) = through_the_mixnet(22, loss, budget, 600);
        assert_eq!(failed, 0, "every message that arrived decrypted");
        assert!(
            advanced_at.len() >= 4,
            "loss {loss}: epochs {advanced_at:?}"
        );
        let gaps: Vec<usize> = std::iter::once(advanced_at[0])
            .chain(advanced_at.windows(2).map(|w| w[1] - w[0]))
            .collect();
        let worst = gaps.iter().max().copied().unwrap_or(0);

        assert!(
            worst <= most,
            "loss {loss}, budget {budget}: an epoch took {worst} messages ({gaps:?})"
        );
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
    let per = aegis_mix_packet::Geometry::STANDARD.fragment_data_len();
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
        let budget = pq_budget(bare);
        let m = alice.encrypt(&mut rng, &plaintext, budget).unwrap();
        assert_eq!(
            m.len().div_ceil(per),
            bare.div_ceil(per),
            "{len} bytes of plaintext"
        );
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
