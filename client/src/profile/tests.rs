//! Profile tests: contacts, safety numbers, old records, history.

use super::*;

pub(crate) fn profile(dir: &Path, name: &str) -> Profile {
    Profile::create(
        &mut rand::rng(),
        &dir.join(name),
        b"passphrase",
        Argon2Params::insecure_fast(),
        NodeId([1; 32]),
        Vec::new(),
    )
    .unwrap()
}

#[test]
fn both_sides_compute_one_safety_number_and_only_its_digits_verify() {
    let dir = tempfile::tempdir().unwrap();
    let (alice, bob) = (profile(dir.path(), "a"), profile(dir.path(), "b"));
    alice.add_contact("bob", &bob.card().encode()).unwrap();
    bob.add_contact("alice", &alice.card().encode()).unwrap();
    let at_alice = alice.safety_number("bob").unwrap();
    assert_eq!(at_alice, bob.safety_number("alice").unwrap());
    let mut wrong = at_alice.digits().to_owned();
    wrong.replace_range(
        0..5,
        if &wrong[0..5] == "00000" {
            "11111"
        } else {
            "00000"
        },
    );
    assert!(matches!(
        alice.verify_contact("bob", Some(&wrong)),
        Err(ProfileError::SafetyNumberMismatch)
    ));
    assert!(!alice.named("bob").unwrap().1.verified);
    alice
        .verify_contact("bob", Some(&at_alice.grouped()))
        .unwrap();
    assert!(alice.named("bob").unwrap().1.verified);
}

#[test]
fn contacts_are_renamed_blocked_accepted_and_removed_by_name() {
    let dir = tempfile::tempdir().unwrap();
    let (alice, bob, carol) = (
        profile(dir.path(), "a"),
        profile(dir.path(), "b"),
        profile(dir.path(), "c"),
    );
    let bob_id = alice.add_contact(" bob ", &bob.card().encode()).unwrap();
    alice.add_contact("carol", &carol.card().encode()).unwrap();
    assert_eq!(alice.named("bob").unwrap().0, bob_id, "names are trimmed");
    assert!(matches!(
        alice.rename_contact("bob", "carol"),
        Err(ProfileError::DuplicateName(_))
    ));
    assert!(matches!(
        alice.rename_contact("bob", "  "),
        Err(ProfileError::EmptyName)
    ));
    alice.rename_contact("bob", "robert").unwrap();
    assert!(alice.contact_by_name("bob").unwrap().is_none());
    alice.block_contact("robert").unwrap();
    assert_eq!(
        alice.named("robert").unwrap().1.state,
        ContactState::Blocked
    );
    alice.accept_contact("robert", Some("bob")).unwrap();
    assert_eq!(alice.named("bob").unwrap().1.state, ContactState::Contact);
    assert_eq!(alice.remove_contact("bob").unwrap(), bob_id);
    assert!(alice.contact(&bob_id).unwrap().is_none());
    assert!(alice.sessions(&bob_id).unwrap().is_empty());
    assert!(matches!(
        alice.remove_contact("bob"),
        Err(ProfileError::UnknownContact(_))
    ));
    assert_eq!(alice.contacts().unwrap().len(), 1);
}

#[test]
fn records_written_before_contact_requests_still_read_as_contacts() {
    #[derive(Serialize)]
    struct Old {
        name: String,
        card: String,
        confirmed: bool,
        initial_header: Option<Vec<u8>>,
        seen_ephemerals: Vec<[u8; 32]>,
    }
    let dir = tempfile::tempdir().unwrap();
    let (alice, bob) = (profile(dir.path(), "a"), profile(dir.path(), "b"));
    let id = bob.own_contact_id();
    let old = Old {
        name: "bob".into(),
        card: bob.card().encode(),
        confirmed: true,
        initial_header: None,
        seen_ephemerals: vec![[7; 32]],
    };
    alice
        .store()
        .put(
            Namespace::Contacts,
            &id.0,
            &postcard::to_stdvec(&old).unwrap(),
        )
        .unwrap();
    let record = alice.contact(&id).unwrap().unwrap();
    assert_eq!(record.state, ContactState::Contact);
    assert!(record.confirmed && !record.verified);
    assert_eq!(record.seen_ephemerals, vec![[7; 32]]);
    // Old received messages too.
    #[derive(Serialize)]
    struct OldMessage {
        seq: u64,
        contact: ContactId,
        signal: bool,
        received_ms: u64,
        body: Vec<u8>,
    }
    let old = OldMessage {
        seq: 0,
        contact: id,
        signal: false,
        received_ms: 5,
        body: b"hi".to_vec(),
    };
    alice
        .store()
        .put(
            Namespace::Inbox,
            &0u64.to_be_bytes(),
            &postcard::to_stdvec(&old).unwrap(),
        )
        .unwrap();
    // And messages written before files were kept (with `sent`).
    #[derive(Serialize)]
    struct SentBeforeFiles {
        seq: u64,
        contact: ContactId,
        signal: bool,
        received_ms: u64,
        body: Vec<u8>,
        sent: Option<SentMessage>,
    }
    let sent = SentMessage {
        local_id: LocalId(3),
        status: MessageStatus::Sent,
        card_version: Some(2),
    };
    let before_files = SentBeforeFiles {
        seq: 1,
        contact: id,
        signal: false,
        received_ms: 6,
        body: b"yo".to_vec(),
        sent: Some(sent),
    };
    alice
        .store()
        .put(
            Namespace::Inbox,
            &1u64.to_be_bytes(),
            &postcard::to_stdvec(&before_files).unwrap(),
        )
        .unwrap();
    let messages = alice.messages().unwrap();
    assert_eq!(messages.len(), 2);
    assert_eq!(
        (messages[0].body.as_slice(), messages[0].sent),
        (&b"hi"[..], None)
    );
    assert_eq!(
        (
            messages[1].body.as_slice(),
            messages[1].sent,
            &messages[1].file
        ),
        (&b"yo"[..], Some(sent), &None)
    );
}

#[test]
fn the_history_holds_both_directions_follows_statuses_and_deletes() {
    let dir = tempfile::tempdir().unwrap();
    let (alice, bob) = (profile(dir.path(), "a"), profile(dir.path(), "b"));
    let bob_id = alice.add_contact("bob", &bob.card().encode()).unwrap();
    let other = ContactId([9; 16]);
    alice
        .store_sent(
            bob_id,
            ContentKind::Message,
            10,
            b"hello".to_vec(),
            LocalId(4),
            None,
        )
        .unwrap();
    alice
        .store_message(bob_id, ContentKind::Message, 20, b"hi".to_vec())
        .unwrap();
    alice
        .store_message(other, ContentKind::Message, 30, b"?".to_vec())
        .unwrap();
    alice.note_status(LocalId(4), MessageStatus::Sent).unwrap();
    alice
        .note_status(LocalId(4), MessageStatus::Delivered)
        .unwrap();
    // A status for a message the history does not hold changes nothing.
    alice
        .note_status(LocalId(5), MessageStatus::Failed)
        .unwrap();
    let history = alice.history(&bob_id).unwrap();
    assert_eq!(history.len(), 2);
    assert_eq!(
        history[0].sent,
        Some(SentMessage {
            local_id: LocalId(4),
            status: MessageStatus::Delivered,
            card_version: None,
        })
    );
    assert_eq!((history[1].received_ms, history[1].sent), (20, None));
    assert_eq!(alice.received_from(&bob_id).unwrap(), 1);
    assert!(alice.delete_message(history[0].seq).unwrap());
    assert!(!alice.delete_message(history[0].seq).unwrap());
    assert_eq!(alice.delete_history(&bob_id).unwrap(), 1);
    assert!(alice.history(&bob_id).unwrap().is_empty());
    assert_eq!(alice.messages().unwrap().len(), 1, "other contacts' stay");
}

#[test]
fn a_file_is_kept_as_its_name_type_and_bytes() {
    let dir = tempfile::tempdir().unwrap();
    let (alice, bob) = (profile(dir.path(), "a"), profile(dir.path(), "b"));
    let bob_id = alice.add_contact("bob", &bob.card().encode()).unwrap();
    let meta = FileMeta::for_name("photo.jpg", None).unwrap();
    let data: Vec<u8> = (0..50_000u32).map(|i| (i % 251) as u8).collect();
    let stored = alice
        .store_message(bob_id, ContentKind::File, 7, meta.encode_body(&data))
        .unwrap();
    let read = alice.message(stored.seq).unwrap().unwrap();
    assert_eq!((read.file.as_ref(), &read.body), (Some(&meta), &data));
    assert!(alice.message(stored.seq + 1).unwrap().is_none());
    // A file message whose body is no file body is refused, not stored.
    assert!(
        alice
            .store_message(bob_id, ContentKind::File, 8, vec![3, b'.', b'.'])
            .is_err()
    );
    assert_eq!(alice.messages().unwrap().len(), 1);
}

#[test]
fn anonymous_threads_refuse_replays_stay_bounded_and_give_their_blocks_once() {
    let dir = tempfile::tempdir().unwrap();
    let bob = profile(dir.path(), "b");
    let now = 1_000_000;
    assert!(
        bob.accept_thread(&[1; 16], [7; 32], vec![vec![1], vec![2]], now)
            .unwrap()
    );
    // The same thread again (a replayed message) is refused.
    assert!(!bob.accept_thread(&[1; 16], [7; 32], vec![], now).unwrap());
    assert_eq!(
        bob.take_reply_blocks(&[1; 16]).unwrap(),
        vec![vec![1], vec![2]]
    );
    assert!(
        bob.take_reply_blocks(&[1; 16]).unwrap().is_empty(),
        "never twice"
    );
    assert_eq!(
        bob.received_thread(&[1; 16]).unwrap().unwrap().reply_key,
        [7; 32]
    );
    // At most MAX_ANONYMOUS_THREADS are kept; beyond, new ones are dropped
    // and counted, until old ones age out.
    for i in 1..MAX_ANONYMOUS_THREADS {
        let thread = [i as u8 + 1; 16];
        assert!(bob.accept_thread(&thread, [0; 32], vec![], now).unwrap());
    }
    assert!(
        !bob.accept_thread(&[0xEE; 16], [0; 32], vec![], now)
            .unwrap()
    );
    let later = now + THREAD_KEPT_MS;
    assert!(
        bob.accept_thread(&[0xEE; 16], [0; 32], vec![], later)
            .unwrap()
    );
    assert!(bob.received_thread(&[1; 16]).unwrap().is_none(), "aged out");
    // The writer's side.
    bob.note_written_thread(&[5; 16], ContactId([6; 16]), [8; 32], now)
        .unwrap();
    let written = bob.written_thread(&[5; 16]).unwrap().unwrap();
    assert_eq!(
        (written.contact, written.reply_key),
        (ContactId([6; 16]), [8; 32])
    );
}
