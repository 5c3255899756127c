//! Call signalling: the wire form and both sides' state machines.

use proptest::prelude::*;

use super::*;

const ALICE: u8 = 1;
const BOB: u8 = 2;
const CAROL: u8 = 3;

fn s(secs: u64) -> Duration {
    Duration::from_secs(secs)
}

fn events(calls: &mut Calls<u8>) -> Vec<CallEvent<u8>> {
    std::iter::from_fn(|| calls.poll_event()).collect()
}

#[test]
fn a_call_is_offered_answered_connected_and_hung_up_on_both_sides() {
    let mut rng = rand::rng();
    let (mut alice, mut bob) = (Calls::<u8>::default(), Calls::<u8>::default());
    let (call, offer) = alice
        .place(&mut rng, BOB, "offer-sdp".into(), s(0))
        .unwrap();
    assert_eq!(alice.active(), Some((call, CallState::Offering)));
    assert_eq!(bob.handle(ALICE, offer, s(1)), None);
    assert_eq!(
        events(&mut bob),
        vec![CallEvent {
            call,
            contact: ALICE,
            kind: CallEventKind::Ringing {
                description: "offer-sdp".into()
            }
        }]
    );
    let (to, answer) = bob.answer(call, "answer-sdp".into(), s(2)).unwrap();
    assert_eq!(to, ALICE);
    assert_eq!(alice.handle(BOB, answer, s(3)), None);
    assert_eq!(
        events(&mut alice)[0].kind,
        CallEventKind::Connected {
            description: "answer-sdp".into()
        }
    );
    // Candidates both ways.
    let (_, c1) = alice.candidate(call, "cand-a".into()).unwrap();
    let (_, c2) = bob.candidate(call, "cand-b".into()).unwrap();
    bob.handle(ALICE, c1, s(4));
    alice.handle(BOB, c2, s(4));
    assert_eq!(
        events(&mut bob)[0].kind,
        CallEventKind::Candidate {
            candidate: "cand-a".into()
        }
    );
    assert_eq!(
        events(&mut alice)[0].kind,
        CallEventKind::Candidate {
            candidate: "cand-b".into()
        }
    );
    let (_, bye) = alice.hang_up(call).unwrap();
    assert_eq!(
        events(&mut alice)[0].kind,
        CallEventKind::Ended {
            reason: HangUpReason::Normal,
            by_them: false
        }
    );
    bob.handle(ALICE, bye.clone(), s(5));
    assert_eq!(
        events(&mut bob)[0].kind,
        CallEventKind::Ended {
            reason: HangUpReason::Normal,
            by_them: true
        }
    );
    assert_eq!((alice.active(), bob.active()), (None, None));
    // A late copy of the hang-up, or anything else for the ended call,
    // changes nothing and is counted.
    bob.handle(ALICE, bye, s(6));
    assert!(events(&mut bob).is_empty());
    assert_eq!(bob.ignored(), 1);
    assert!(matches!(alice.hang_up(call), Err(CallError::WrongState(_))));
}

#[test]
fn signals_from_anyone_but_the_calls_contact_are_ignored() {
    let mut rng = rand::rng();
    let (mut alice, mut bob) = (Calls::<u8>::default(), Calls::<u8>::default());
    let (call, offer) = alice.place(&mut rng, BOB, "o".into(), s(0)).unwrap();
    bob.handle(ALICE, offer, s(0));
    events(&mut bob);
    // Carol learnt the id: her answer, candidate and hang-up do nothing.
    let forged = [
        CallSignal::Answer {
            call,
            description: "evil".into(),
        },
        CallSignal::Candidate {
            call,
            candidate: "evil".into(),
        },
        CallSignal::HangUp {
            call,
            reason: HangUpReason::Normal,
        },
    ];
    for signal in forged.iter().cloned() {
        assert_eq!(alice.handle(CAROL, signal.clone(), s(1)), None);
        assert_eq!(bob.handle(CAROL, signal, s(1)), None);
    }
    assert!(events(&mut alice).is_empty() && events(&mut bob).is_empty());
    assert_eq!(alice.get(call).map(|(st, _)| st), Some(CallState::Offering));
    assert_eq!(bob.get(call).map(|(st, _)| st), Some(CallState::Ringing));
    assert_eq!((alice.ignored(), bob.ignored()), (3, 3));
    // An answer from the callee to its own ringing call is out of order.
    let own = CallSignal::Answer {
        call,
        description: "x".into(),
    };
    bob.handle(ALICE, own, s(1));
    assert_eq!(bob.get(call).map(|(st, _)| st), Some(CallState::Ringing));
    // A duplicated offer does not ring twice.
    let again = CallSignal::Offer {
        call,
        description: "o".into(),
    };
    assert_eq!(bob.handle(ALICE, again, s(2)), None);
    assert!(events(&mut bob).is_empty());
}

#[test]
fn a_second_caller_gets_busy_a_declined_call_ends_and_unanswered_calls_time_out() {
    let mut rng = rand::rng();
    let (mut alice, mut bob, mut carol) = (
        Calls::<u8>::default(),
        Calls::<u8>::default(),
        Calls::<u8>::default(),
    );
    let (_, offer) = alice.place(&mut rng, BOB, "a".into(), s(0)).unwrap();
    bob.handle(ALICE, offer, s(0));
    let (carol_call, carol_offer) = carol.place(&mut rng, BOB, "c".into(), s(0)).unwrap();
    let (to, busy) = bob.handle(CAROL, carol_offer, s(1)).unwrap();
    assert_eq!(to, CAROL);
    carol.handle(BOB, busy, s(2));
    assert_eq!(
        events(&mut carol),
        vec![CallEvent {
            call: carol_call,
            contact: BOB,
            kind: CallEventKind::Ended {
                reason: HangUpReason::Busy,
                by_them: true
            }
        }]
    );
    // One call at a time on the caller's side too.
    assert_eq!(
        alice.place(&mut rng, CAROL, "x".into(), s(3)),
        Err(CallError::Busy)
    );
    // Bob declines.
    let (call, _) = bob.active().unwrap();
    events(&mut bob);
    let (_, declined) = bob.hang_up(call).unwrap();
    assert_eq!(
        declined,
        CallSignal::HangUp {
            call,
            reason: HangUpReason::Declined
        }
    );
    alice.handle(BOB, declined, s(4));
    assert!(matches!(
        events(&mut alice)[..],
        [CallEvent {
            kind: CallEventKind::Ended {
                reason: HangUpReason::Declined,
                by_them: true
            },
            ..
        }]
    ));
    // Nobody answers: both sides give up after the ring timeout.
    let (call, offer) = alice.place(&mut rng, BOB, "a".into(), s(10)).unwrap();
    bob.handle(ALICE, offer, s(11));
    events(&mut bob);
    assert_eq!(alice.next_deadline(), Some(s(10) + RING_TIMEOUT));
    assert!(alice.handle_timeout(s(10) + RING_TIMEOUT - s(1)).is_empty());
    let sent = alice.handle_timeout(s(10) + RING_TIMEOUT);
    assert_eq!(
        sent,
        vec![(
            BOB,
            CallSignal::HangUp {
                call,
                reason: HangUpReason::NoAnswer
            }
        )]
    );
    let callee_gives_up = bob.handle_timeout(s(11) + RING_TIMEOUT);
    assert_eq!(callee_gives_up.len(), 1);
    assert_eq!(
        bob.get(call).map(|(st, _)| st),
        Some(CallState::Ended(HangUpReason::NoAnswer))
    );
    assert_eq!(alice.next_deadline(), None);
}

#[test]
fn ended_calls_are_remembered_up_to_a_bound() {
    let mut rng = rand::rng();
    let mut alice = Calls::<u8>::default();
    let mut first = None;
    for i in 0..(ENDED_KEPT + 5) {
        let (call, _) = alice
            .place(&mut rng, BOB, String::new(), s(i as u64))
            .unwrap();
        first.get_or_insert(call);
        alice.hang_up(call).unwrap();
    }
    assert_eq!(alice.calls.len(), ENDED_KEPT);
    assert!(alice.get(first.unwrap()).is_none());
}

#[test]
fn the_wire_form_round_trips_and_refuses_what_is_malformed() {
    let call = CallId([7; 16]);
    let signals = [
        CallSignal::Offer {
            call,
            description: "v=0".into(),
        },
        CallSignal::Answer {
            call,
            description: String::new(),
        },
        CallSignal::Candidate {
            call,
            candidate: "candidate:1 1 udp 2122260223 192.0.2.1 54400 typ host".into(),
        },
        CallSignal::HangUp {
            call,
            reason: HangUpReason::Busy,
        },
    ];
    for signal in &signals {
        let bytes = signal.encode();
        assert_eq!(&CallSignal::decode(&bytes).unwrap(), signal);
        for cut in 0..bytes.len() {
            assert!(CallSignal::decode(&bytes[..cut]).is_err(), "cut at {cut}");
        }
        let mut longer = bytes.clone();
        longer.push(0);
        assert!(CallSignal::decode(&longer).is_err());
    }
    let mut bad_tag = signals[0].encode();
    bad_tag[0] = 9;
    assert!(CallSignal::decode(&bad_tag).is_err());
    let mut bad_reason = signals[3].encode();
    bad_reason[17] = 0;
    assert!(CallSignal::decode(&bad_reason).is_err());
    let mut bad_utf8 = signals[0].encode();
    bad_utf8[19] = 0xff;
    assert!(CallSignal::decode(&bad_utf8).is_err());
    // The longest field fits a signalling message; one byte more does not.
    let longest = CallSignal::Offer {
        call,
        description: "x".repeat(MAX_FIELD_LEN),
    };
    assert_eq!(longest.encode().len(), MAX_SIGNAL_LEN);
    assert!(CallSignal::decode(&longest.encode()).is_ok());
    let mut rng = rand::rng();
    let mut calls = Calls::<u8>::default();
    assert_eq!(
        calls.place(&mut rng, BOB, "x".repeat(MAX_FIELD_LEN + 1), s(0)),
        Err(CallError::TooLong)
    );
    assert_eq!(CallId::from_hex(&call.to_hex()), Some(call));
    assert_eq!(CallId::from_hex("abc"), None);
}

proptest! {
    #[test]
    fn decoding_any_bytes_never_panics_and_what_decodes_re_encodes_alike(
        bytes in proptest::collection::vec(any::<u8>(), 0..64)
    ) {
        if let Ok(signal) = CallSignal::decode(&bytes) {
            prop_assert_eq!(signal.encode(), bytes);
        }
    }

    #[test]
    fn every_single_bit_flip_of_a_signal_is_refused_or_reads_differently(
        text in "[ -~]{0,40}", bit in 0usize..8, at in any::<prop::sample::Index>()
    ) {
        let signal = CallSignal::Candidate { call: CallId([3; 16]), candidate: text };
        let mut bytes = signal.encode();
        let i = at.index(bytes.len());
        bytes[i] ^= 1 << bit;
        if let Ok(other) = CallSignal::decode(&bytes) {
            prop_assert_ne!(other, signal);
        }
    }
}
