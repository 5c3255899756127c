//! Outbox tests with virtual time; the end-to-end ones run an [`Inbox`] too.

use std::cmp::Reverse;
use std::collections::{BinaryHeap, HashMap};

use aegis_mix_packet::constants::ID_LEN;
use rand::{Rng, RngExt, SeedableRng};
use rand_chacha::ChaCha20Rng;

use super::*;
use crate::delivery::{Inbox, InboxConfig, Received};

const SECOND: Duration = Duration::from_secs(1);
const TIMEOUT: Duration = Duration::from_secs(10);

fn secs(s: u64) -> Duration {
    Duration::from_secs(s)
}

fn ack_id(rng: &mut ChaCha20Rng) -> AckId {
    let mut id = [0u8; ID_LEN];
    rng.fill_bytes(&mut id);
    AckId(id)
}

/// A reply key with random tag and seeds, as `SurbAck::new` hands out.
fn reply_key(rng: &mut ChaCha20Rng) -> ReplyKey {
    let mut bytes = [0u8; 16 + 5 * 16];
    rng.fill_bytes(&mut bytes);
    bytes[0] |= 1;
    ReplyKey::from_bytes(&bytes).unwrap()
}

fn contact(n: u8) -> ContactId {
    ContactId([n; 16])
}

fn config(max_attempts: u32) -> OutboxConfig {
    OutboxConfig {
        max_attempts,
        ..OutboxConfig::default()
    }
}

/// Hands out the next transmission and records it sent at `now`.
fn send(
    outbox: &mut Outbox,
    rng: &mut ChaCha20Rng,
    now: Duration,
) -> Option<(
    Transmission<ContactId>,
    AckId,
    Option<StatusEvent<ContactId>>,
)> {
    let t = outbox.next_transmission(now)?;
    let ack = ack_id(rng);
    let key = reply_key(rng);
    let event = outbox.record_sent(t.local_id, t.fragment.index, ack, key, now, TIMEOUT);
    Some((t, ack, event))
}

enum InFlight {
    Fragment(Fragment, AckId),
    Ack(AckId),
}

/// A lossy, duplicating, reordering network between one outbox and one
/// inbox, with a slot every second. Returns what each side saw.
fn run_lossy(
    seed: u64,
    payloads: &[Vec<u8>],
    loss: f64,
    duplicate: f64,
) -> (Vec<StatusEvent<ContactId>>, Vec<Vec<u8>>, u32) {
    let mut rng = ChaCha20Rng::seed_from_u64(seed);
    let mut outbox = Outbox::new(config(12));
    let mut inbox = Inbox::new(InboxConfig::default());
    for p in payloads {
        outbox
            .queue(&mut rng, contact(1), p.clone(), Duration::ZERO)
            .unwrap();
    }
    let mut network: BinaryHeap<(Reverse<Duration>, u64)> = BinaryHeap::new();
    let mut packets: HashMap<u64, InFlight> = HashMap::new();
    let mut serial = 0u64;
    let mut events = Vec::new();
    let mut delivered = Vec::new();
    let mut max_attempt = 0;
    let mut now = Duration::ZERO;
    // Retransmissions back off (10 s, 20 s, 40 s, …): a day is room for
    // every attempt.
    while !outbox.is_empty() && now < secs(24 * 3600) {
        now += SECOND;
        // Everything that arrives by now.
        while let Some(&(Reverse(at), id)) = network.peek() {
            if at > now {
                break;
            }
            network.pop();
            match packets.remove(&id) {
                Some(InFlight::Fragment(fragment, ack)) => {
                    match inbox.receive(fragment, at) {
                        Received::Complete(message) => delivered.push(message),
                        Received::Rejected(e) => panic!("rejected {e}"),
                        Received::Partial | Received::Duplicate => {}
                    }
                    if !rng.random_bool(loss) {
                        serial += 1;
                        let back = at + Duration::from_millis(rng.random_range(0..8000));
                        packets.insert(serial, InFlight::Ack(ack));
                        network.push((Reverse(back), serial));
                    }
                }
                Some(InFlight::Ack(ack)) => events.extend(outbox.acknowledged(ack, at)),
                None => unreachable!(),
            }
        }
        events.extend(outbox.poll(now));
        if let Some((t, ack, event)) = send(&mut outbox, &mut rng, now) {
            max_attempt = max_attempt.max(t.attempt);
            events.extend(event);
            let copies = if rng.random_bool(duplicate) { 2 } else { 1 };
            for _ in 0..copies {
                if rng.random_bool(loss) {
                    continue;
                }
                serial += 1;
                let at = now + Duration::from_millis(rng.random_range(0..8000));
                packets.insert(serial, InFlight::Fragment(t.fragment.clone(), ack));
                network.push((Reverse(at), serial));
            }
        }
    }
    assert!(outbox.is_empty(), "unfinished at {now:?}");
    assert_eq!(outbox.outstanding_acks(), 0);
    assert_eq!(outbox.queued_bytes(), 0);
    (events, delivered, max_attempt)
}

fn payloads() -> Vec<Vec<u8>> {
    [1usize, 1024, 3000, 10 * 1024, 0]
        .iter()
        .enumerate()
        .map(|(i, &len)| (0..len).map(|b| (b * 7 + i) as u8).collect())
        .collect()
}

#[test]
fn lost_fragments_and_acks_are_retransmitted_until_delivered() {
    let payloads = payloads();
    let (events, delivered, max_attempt) = run_lossy(1, &payloads, 0.3, 0.0);
    assert!(max_attempt > 1, "30% loss without a retransmission");
    let mut got = delivered.clone();
    got.sort();
    let mut want = payloads.clone();
    want.sort();
    assert_eq!(got, want, "every message delivered exactly once");
    for id in 0..payloads.len() as u64 {
        let of = |s: MessageStatus| {
            events
                .iter()
                .filter(|e| e.local_id == LocalId(id) && e.status == s)
                .count()
        };
        assert_eq!(of(MessageStatus::Sent), 1, "message {id}");
        assert_eq!(of(MessageStatus::Delivered), 1, "message {id}");
        assert_eq!(of(MessageStatus::Failed), 0, "message {id}");
    }
}

#[test]
fn duplicated_and_reordered_fragments_are_delivered_exactly_once() {
    let payloads = payloads();
    for seed in 0..5 {
        let (events, delivered, _) = run_lossy(seed, &payloads, 0.1, 0.5);
        assert_eq!(delivered.len(), payloads.len(), "seed {seed}");
        let delivered_events = events
            .iter()
            .filter(|e| e.status == MessageStatus::Delivered)
            .count();
        assert_eq!(delivered_events, payloads.len(), "seed {seed}");
    }
}

#[test]
fn a_message_fails_after_its_last_attempt_times_out() {
    let mut rng = ChaCha20Rng::seed_from_u64(2);
    let mut outbox = Outbox::new(config(3));
    let id = outbox
        .queue(&mut rng, contact(1), vec![5; 100], Duration::ZERO)
        .unwrap();
    let mut attempts = vec![];
    let mut failed = vec![];
    for s in 0..100 {
        let now = secs(s);
        failed.extend(outbox.poll(now));
        if let Some((t, _, _)) = send(&mut outbox, &mut rng, now) {
            attempts.push((s, t.attempt));
        }
    }
    // Sent at 0; each timeout twice the one before: retransmitted at 10
    // (after 10 s) and 30 (after 20 s); failed at 70 (after 40 s).
    assert_eq!(attempts, [(0, 1), (10, 2), (30, 3)]);
    assert_eq!(
        failed,
        [StatusEvent {
            local_id: id,
            recipient: contact(1),
            status: MessageStatus::Failed
        }]
    );
    assert!(outbox.is_empty());
    assert_eq!(outbox.status(id), None);
    assert_eq!(outbox.outstanding_acks(), 0);
    assert_eq!(outbox.next_deadline(), None);
}

#[test]
fn an_ack_of_an_earlier_attempt_still_counts() {
    let mut rng = ChaCha20Rng::seed_from_u64(3);
    let mut outbox = Outbox::new(config(5));
    let id = outbox
        .queue(&mut rng, contact(2), vec![1; 10], Duration::ZERO)
        .unwrap();
    let (_, first, sent) = send(&mut outbox, &mut rng, Duration::ZERO).unwrap();
    assert_eq!(sent.unwrap().status, MessageStatus::Sent);
    assert_eq!(outbox.next_deadline(), Some(TIMEOUT));
    assert!(outbox.poll(TIMEOUT).is_empty());
    let (t, second, _) = send(&mut outbox, &mut rng, TIMEOUT).unwrap();
    assert_eq!(t.attempt, 2);
    assert_eq!(outbox.outstanding_acks(), 2);
    // The first attempt's ack arrives late: the message is delivered.
    let delivered = outbox.acknowledged(first, secs(12)).unwrap();
    assert_eq!(delivered.status, MessageStatus::Delivered);
    assert_eq!(delivered.local_id, id);
    assert_eq!(outbox.acknowledged(second, secs(13)), None);
    assert_eq!(outbox.acknowledged(first, secs(13)), None);
    assert!(outbox.is_empty());
    assert!(outbox.poll(secs(100)).is_empty());

    // An ack arriving while the fragment waits for its retransmission.
    let id = outbox
        .queue(&mut rng, contact(2), vec![2; 10], secs(100))
        .unwrap();
    let (_, ack, _) = send(&mut outbox, &mut rng, secs(100)).unwrap();
    outbox.poll(secs(110));
    assert!(outbox.has_pending_transmission());
    assert_eq!(
        outbox
            .acknowledged(ack, secs(111))
            .map(|e| (e.local_id, e.status)),
        Some((id, MessageStatus::Delivered))
    );
    assert!(!outbox.has_pending_transmission());
    assert!(outbox.next_transmission(secs(112)).is_none());
}

#[test]
fn retransmissions_go_first_and_new_fragments_in_order() {
    let mut rng = ChaCha20Rng::seed_from_u64(4);
    let mut outbox = Outbox::new(config(5));
    let chunk = Geometry::STANDARD.fragment_data_len();
    let a = outbox
        .queue(&mut rng, contact(1), vec![1; 2 * chunk + 1], Duration::ZERO)
        .unwrap();
    let b = outbox
        .queue(&mut rng, contact(2), vec![2; 10], Duration::ZERO)
        .unwrap();
    assert_eq!(outbox.status(a), Some(MessageStatus::Queued));
    let mut order = vec![];
    let mut events = vec![];
    for s in [0, 5] {
        let (t, _, e) = send(&mut outbox, &mut rng, secs(s)).unwrap();
        order.push((t.local_id, t.fragment.index, t.fragment.count, t.attempt));
        events.extend(e);
    }
    // a#0 timed out (a#1 not yet): it goes before a#2 and b#0.
    outbox.poll(TIMEOUT);
    for s in 10..13 {
        let (t, _, e) = send(&mut outbox, &mut rng, secs(s)).unwrap();
        order.push((t.local_id, t.fragment.index, t.fragment.count, t.attempt));
        events.extend(e);
    }
    assert_eq!(
        order,
        [
            (a, 0, 3, 1),
            (a, 1, 3, 1),
            (a, 0, 3, 2),
            (a, 2, 3, 1),
            (b, 0, 1, 1)
        ]
    );
    assert_eq!(
        events
            .iter()
            .map(|e| (e.local_id, e.status))
            .collect::<Vec<_>>(),
        [(a, MessageStatus::Sent), (b, MessageStatus::Sent)]
    );
    let p = outbox.progress(a, secs(13)).unwrap();
    assert_eq!(
        (p.fragments, p.sent, p.acknowledged, p.age),
        (3, 3, 0, secs(13))
    );
}

#[test]
fn a_fragment_that_could_not_be_sent_goes_back_first_without_an_attempt() {
    let mut rng = ChaCha20Rng::seed_from_u64(5);
    let mut outbox = Outbox::new(config(2));
    outbox
        .queue(&mut rng, contact(1), vec![1; 10], Duration::ZERO)
        .unwrap();
    outbox
        .queue(&mut rng, contact(1), vec![2; 10], Duration::ZERO)
        .unwrap();
    let t = outbox.next_transmission(Duration::ZERO).unwrap();
    assert_eq!(outbox.next_deadline(), None, "handed out, not yet sent");
    outbox.not_sent(t.local_id, t.fragment.index);
    let again = outbox.next_transmission(SECOND).unwrap();
    assert_eq!((again.local_id, again.attempt), (t.local_id, 1));
    assert_eq!(
        outbox
            .record_sent(
                again.local_id,
                0,
                ack_id(&mut rng),
                reply_key(&mut rng),
                SECOND,
                TIMEOUT,
            )
            .map(|e| e.status),
        Some(MessageStatus::Sent)
    );
    // Recording it twice changes nothing.
    assert_eq!(
        outbox.record_sent(
            again.local_id,
            0,
            ack_id(&mut rng),
            reply_key(&mut rng),
            SECOND,
            TIMEOUT,
        ),
        None
    );
    assert_eq!(outbox.outstanding_acks(), 1);
}

#[test]
fn a_silent_recipient_is_tried_about_hourly_for_a_week_then_the_message_fails() {
    let mut rng = ChaCha20Rng::seed_from_u64(21);
    let mut outbox = Outbox::new(OutboxConfig::default());
    let local = outbox
        .queue(&mut rng, contact(1), vec![1; 10], Duration::ZERO)
        .unwrap();
    let hour = secs(3_600);
    let week = 7 * 24 * hour;
    let (mut now, mut sent, mut failed_at) = (Duration::ZERO, 0u32, None);
    while failed_at.is_none() && now <= week + 2 * hour {
        if send(&mut outbox, &mut rng, now).is_some() {
            sent += 1;
        }
        for event in outbox.poll(now) {
            if event.local_id == local && event.status == MessageStatus::Failed {
                failed_at = Some(now);
            }
        }
        now = outbox
            .next_deadline()
            .map_or(now + SECOND, |d| d.max(now + SECOND));
    }
    // The waits double from 10 s to the 1 h cap (10 · 2⁸ = 2,560 s is the
    // last below it): nine attempts in the first ~85 minutes, then one an
    // hour until the week is over.
    let failed_at = failed_at.expect("the message failed");
    assert!(
        failed_at >= week && failed_at <= week + hour,
        "{failed_at:?}"
    );
    let hourly = (week.as_secs() - 5_110) / 3_600;
    assert!(
        (u64::from(sent) as i64 - (9 + hourly) as i64).abs() <= 2,
        "{sent} transmissions, about {} expected",
        9 + hourly
    );
}

#[test]
fn the_outbox_is_bounded() {
    let mut rng = ChaCha20Rng::seed_from_u64(6);
    let mut outbox = Outbox::new(OutboxConfig {
        max_messages: 2,
        max_bytes: 5000,
        max_attempts: 3,
        ..OutboxConfig::default()
    });
    let first = outbox
        .queue(&mut rng, contact(1), vec![0; 3000], Duration::ZERO)
        .unwrap();
    assert_eq!(
        outbox.queue(&mut rng, contact(1), vec![0; 2001], Duration::ZERO),
        Err(OutboxError::TooManyBytes {
            queued: 3000,
            len: 2001,
            max: 5000
        })
    );
    outbox
        .queue(&mut rng, contact(1), vec![0; 2000], Duration::ZERO)
        .unwrap();
    assert_eq!(
        outbox.queue(&mut rng, contact(1), vec![], Duration::ZERO),
        Err(OutboxError::TooManyMessages(2))
    );
    let mut big = Outbox::<ContactId>::new(OutboxConfig {
        max_bytes: usize::MAX,
        ..OutboxConfig::default()
    });
    let too_large = vec![0; Geometry::STANDARD.max_message_len() + 1];
    assert!(matches!(
        big.queue(&mut rng, contact(1), too_large, Duration::ZERO),
        Err(OutboxError::TooLarge(PacketError::MessageTooLarge { .. }))
    ));
    // Delivering the first message makes room.
    let mut acks = vec![];
    while let Some((t, ack, _)) = send(&mut outbox, &mut rng, Duration::ZERO) {
        if t.local_id == first {
            acks.push(ack);
        }
    }
    let mut delivered = None;
    for ack in acks {
        delivered = delivered.or(outbox.acknowledged(ack, SECOND));
    }
    assert_eq!(delivered.map(|e| e.local_id), Some(first));
    assert_eq!(outbox.queued_bytes(), 2000);
    outbox
        .queue(&mut rng, contact(1), vec![0; 3000], SECOND)
        .unwrap();
}

#[test]
fn the_outbox_survives_a_restart_on_a_new_time_origin() {
    let mut rng = ChaCha20Rng::seed_from_u64(7);
    let mut outbox = Outbox::new(config(4));
    let chunk = Geometry::STANDARD.fragment_data_len();
    let a = outbox
        .queue(&mut rng, contact(1), vec![1; 3 * chunk], secs(1000))
        .unwrap();
    let b = outbox
        .queue(&mut rng, contact(2), vec![2; 10], secs(1000))
        .unwrap();
    let (_, ack0, _) = send(&mut outbox, &mut rng, secs(1000)).unwrap(); // a#0
    let (_, ack1, _) = send(&mut outbox, &mut rng, secs(1001)).unwrap(); // a#1
    assert!(outbox.acknowledged(ack1, secs(1002)).is_none());
    let handed = outbox.next_transmission(secs(1003)).unwrap(); // a#2, not recorded
    assert_eq!(handed.fragment.index, 2);

    let saved = outbox.to_bytes(secs(1004)).unwrap();
    // The clock starts again at zero.
    let mut restored: Outbox =
        Outbox::from_bytes(&saved, config(4), &Geometry::STANDARD, Duration::ZERO).unwrap();
    assert_eq!(restored.len(), 2);
    assert_eq!(restored.queued_bytes(), outbox.queued_bytes());
    assert_eq!(restored.status(a), Some(MessageStatus::Queued));
    // a#0's deadline was 1010, 6 s after saving; a#2 is due at once.
    assert_eq!(restored.next_deadline(), Some(Duration::ZERO));
    let mut order = vec![];
    for s in 0..2 {
        let (t, _, _) = send(&mut restored, &mut rng, secs(s)).unwrap();
        order.push((t.local_id, t.fragment.index, t.attempt));
    }
    assert_eq!(order, [(a, 2, 2), (b, 0, 1)]);
    assert_eq!(restored.next_deadline(), Some(secs(6)));
    // An ack from before the restart still counts.
    assert!(restored.acknowledged(ack0, secs(2)).is_none());
    assert_eq!(restored.progress(a, secs(2)).unwrap().acknowledged, 2);
    // New messages get new local ids.
    let c = restored
        .queue(&mut rng, contact(3), vec![], secs(3))
        .unwrap();
    assert!(c > b);
}

#[test]
fn an_outbox_of_the_post_quantum_geometry_is_restored_in_it_and_refused_in_a_smaller_one() {
    let mut rng = ChaCha20Rng::seed_from_u64(9);
    let pq = Geometry::PQ;
    let mut outbox = Outbox::new(config(4));
    outbox.set_geometry(pq.clone());
    // One fragment holding more than a standard fragment can.
    let len = Geometry::STANDARD.fragment_data_len() + 100;
    assert!(len <= pq.fragment_data_len());
    let id = outbox
        .queue(&mut rng, contact(1), vec![7; len], Duration::ZERO)
        .unwrap();
    send(&mut outbox, &mut rng, Duration::ZERO).unwrap();
    let saved = outbox.to_bytes(SECOND).unwrap();
    let restored = Outbox::<ContactId>::from_bytes(&saved, config(4), &pq, SECOND).unwrap();
    assert_eq!(restored.status(id), Some(MessageStatus::Sent));
    assert_eq!(restored.queued_bytes(), outbox.queued_bytes());
    assert_eq!(
        Outbox::<ContactId>::from_bytes(&saved, config(4), &Geometry::STANDARD, SECOND).err(),
        Some(OutboxError::Malformed("fragment data length"))
    );
}

#[test]
fn saved_outboxes_are_checked() {
    let mut rng = ChaCha20Rng::seed_from_u64(8);
    let mut outbox = Outbox::new(config(4));
    outbox
        .queue(&mut rng, contact(1), vec![1; 5000], Duration::ZERO)
        .unwrap();
    send(&mut outbox, &mut rng, Duration::ZERO).unwrap();
    let saved = outbox.to_bytes(SECOND).unwrap();
    let restore =
        |b: &[u8]| Outbox::<ContactId>::from_bytes(b, config(4), &Geometry::STANDARD, SECOND);
    restore(&saved).unwrap();
    assert_eq!(
        restore(&[]).err(),
        Some(OutboxError::Malformed("empty input"))
    );
    assert_eq!(
        restore(&[7, 0, 0]).err(),
        Some(OutboxError::UnsupportedVersion(7))
    );
    let mut trailing = saved.clone();
    trailing.push(0);
    assert!(restore(&trailing).is_err());
    for len in 0..saved.len() {
        assert!(restore(&saved[..len]).is_err(), "truncated to {len}");
    }
    // Arbitrary bytes never panic.
    for _ in 0..2000 {
        let mut junk = saved.clone();
        let i = rng.random_range(1..junk.len());
        junk[i] = rng.random();
        let _ = restore(&junk);
    }
}

#[derive(Clone, Debug)]
enum Op {
    Queue(usize),
    Slot,
    SlotNotSent,
    Ack(usize),
    Advance(u64),
}

fn op() -> impl proptest::strategy::Strategy<Value = Op> {
    use proptest::prelude::*;
    prop_oneof![
        (0usize..5000).prop_map(Op::Queue),
        Just(Op::Slot),
        Just(Op::Slot),
        Just(Op::SlotNotSent),
        any::<usize>().prop_map(Op::Ack),
        (0u64..15).prop_map(Op::Advance),
    ]
}

proptest::proptest! {
    /// Whatever happens, each message gets at most one `Sent` and one final
    /// event, `Sent` comes first, the byte count matches, and saving and
    /// restoring keeps every message's status.
    #[test]
    fn outbox_invariants_hold_under_any_sequence(ops in proptest::collection::vec(op(), 1..120)) {
        let mut rng = ChaCha20Rng::seed_from_u64(9);
        let mut outbox = Outbox::new(OutboxConfig { max_messages: 8, max_bytes: 20_000, max_attempts: 3, ..OutboxConfig::default() });
        let mut now = Duration::ZERO;
        let mut sizes = HashMap::new();
        let mut acks = Vec::new();
        let mut events = Vec::new();
        for op in ops {
            match op {
                Op::Queue(len) => {
                    if let Ok(id) = outbox.queue(&mut rng, contact(1), vec![1; len], now) {
                        sizes.insert(id, len);
                    }
                }
                Op::Slot => {
                    if let Some((_, ack, e)) = send(&mut outbox, &mut rng, now) {
                        acks.push(ack);
                        events.extend(e);
                    }
                }
                Op::SlotNotSent => {
                    if let Some(t) = outbox.next_transmission(now) {
                        outbox.not_sent(t.local_id, t.fragment.index);
                    }
                }
                Op::Ack(i) if !acks.is_empty() => {
                    let ack = acks[i % acks.len()];
                    events.extend(outbox.acknowledged(ack, now));
                }
                Op::Ack(_) => {}
                Op::Advance(s) => {
                    now += secs(s);
                    events.extend(outbox.poll(now));
                }
            }
        }
        // Failures found while handing out transmissions wait for `poll`.
        events.extend(outbox.poll(now));
        for id in sizes.keys() {
            let of: Vec<MessageStatus> = events.iter().filter(|e| e.local_id == *id).map(|e| e.status).collect();
            let finals = of.iter().filter(|s| matches!(s, MessageStatus::Delivered | MessageStatus::Failed)).count();
            proptest::prop_assert!(finals <= 1, "{:?}", of);
            proptest::prop_assert!(of.iter().filter(|s| **s == MessageStatus::Sent).count() <= 1);
            if of.contains(&MessageStatus::Delivered) {
                proptest::prop_assert_eq!(of[0], MessageStatus::Sent);
            }
            proptest::prop_assert_eq!(finals == 1, outbox.status(*id).is_none(), "{:?}", of);
        }
        let queued: usize = sizes.iter().filter(|(id, _)| outbox.status(**id).is_some()).map(|(_, l)| *l).sum();
        proptest::prop_assert_eq!(outbox.queued_bytes(), queued);
        let restored: Outbox = Outbox::from_bytes(&outbox.to_bytes(now).unwrap(), outbox.config.clone(), &outbox.geometry, now).unwrap();
        proptest::prop_assert_eq!(restored.len(), outbox.len());
        proptest::prop_assert_eq!(restored.queued_bytes(), outbox.queued_bytes());
        for id in sizes.keys() {
            proptest::prop_assert_eq!(restored.status(*id), outbox.status(*id));
        }
    }
}
