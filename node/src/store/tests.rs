//! The node database, tested against a real RocksDB in a temporary folder.

use super::*;

fn limits(per_mailbox: u32) -> MailboxLimits {
    MailboxLimits {
        per_mailbox,
        mailboxes: 1_000,
    }
}

#[test]
fn a_new_mailbox_past_the_cap_is_refused_and_the_others_keep_theirs() {
    let dir = tempfile::tempdir().unwrap();
    let store = NodeStore::open(dir.path()).unwrap();
    let two = MailboxLimits {
        per_mailbox: 10,
        mailboxes: 2,
    };
    let (a, b, c) = (MailboxId([1; 32]), MailboxId([2; 32]), MailboxId([3; 32]));
    store.deliver(&a, b"a", 0, two).unwrap();
    store.deliver(&b, b"b", 0, two).unwrap();
    assert!(matches!(
        store.deliver(&c, b"c", 0, two),
        Err(StoreError::TooManyMailboxes)
    ));
    // Mailboxes already holding packets still take more.
    store.deliver(&a, b"a2", 0, two).unwrap();
    assert_eq!(store.mailbox_totals(), (3, 2));
    // Once one is emptied, a new one fits.
    let (entries, _) = store.pull(&b, 8).unwrap();
    store.acknowledge(&b, &[entries[0].id]).unwrap();
    store.deliver(&c, b"c", 0, two).unwrap();
    assert_eq!(store.mailbox_totals(), (3, 2));
}

#[test]
fn mailboxes_survive_reopen_and_delete_only_on_ack() {
    let dir = tempfile::tempdir().unwrap();
    let a = MailboxId([1; 32]);
    let b = MailboxId([2; 32]);
    {
        let store = NodeStore::open(dir.path()).unwrap();
        for i in 0..5u8 {
            store.deliver(&a, &[i; 10], 1_000, limits(100)).unwrap();
        }
        store.deliver(&b, &[9; 10], 1_000, limits(100)).unwrap();
        let (first, more) = store.pull(&a, 3).unwrap();
        assert_eq!(first.len(), 3);
        assert!(more);
        assert_eq!(first[0].payload, vec![0; 10]);
        // Acking another mailbox's ids deletes nothing.
        assert_eq!(store.acknowledge(&b, &[first[0].id]).unwrap(), 0);
        assert_eq!(store.acknowledge(&a, &[first[0].id]).unwrap(), 1);
        assert_eq!(store.mailbox_totals(), (5, 2));
    }
    let store = NodeStore::open(dir.path()).unwrap();
    assert_eq!(store.mailbox_totals(), (5, 2));
    let (rest, more) = store.pull(&a, 8).unwrap();
    assert_eq!(rest.len(), 4);
    assert!(!more);
    assert_eq!(rest[0].payload, vec![1; 10]);
    // New entries after a restart with an earlier clock still sort last.
    store.deliver(&a, &[7; 10], 0, limits(100)).unwrap();
    let (all, _) = store.pull(&a, 8).unwrap();
    assert_eq!(all.last().unwrap().payload, vec![7; 10]);
}

#[test]
fn limits_and_expiry() {
    let dir = tempfile::tempdir().unwrap();
    let store = NodeStore::open(dir.path()).unwrap();
    let a = MailboxId([1; 32]);
    store.deliver(&a, b"old", 100, limits(2)).unwrap();
    store
        .deliver(&a, b"new", 2 * HOUR_MS + 900, limits(2))
        .unwrap();
    assert!(matches!(
        store.deliver(&a, b"x", 2 * HOUR_MS + 900, limits(2)),
        Err(StoreError::MailboxFull)
    ));
    // Within the arrival hour nothing expires; the hour after, it does.
    assert_eq!(store.expire(HOUR_MS - 1).unwrap(), 0);
    assert_eq!(store.expire(HOUR_MS).unwrap(), 1);
    let (left, _) = store.pull(&a, 8).unwrap();
    assert_eq!(left.len(), 1);
    assert_eq!(left[0].payload, b"new");
    store.deliver(&a, b"again", 900, limits(2)).unwrap();
}

#[test]
fn keys_and_filters_are_erased_with_their_epoch() {
    let dir = tempfile::tempdir().unwrap();
    let store = NodeStore::open(dir.path()).unwrap();
    store.put_key(4, &[4; 32]).unwrap();
    store.put_key(5, &[5; 32]).unwrap();
    store.put_kem_key(4, &[0x44; 32]).unwrap();
    store.put_kem_key(5, &[0x55; 32]).unwrap();
    store.put_filter(4, b"filter").unwrap();
    store.erase_epoch(4).unwrap();
    for keys in [store.keys().unwrap(), store.kem_keys().unwrap()] {
        assert_eq!(keys.len(), 1);
        assert_eq!(keys[0].0, 5);
    }
    assert!(store.filter(4).unwrap().is_none());
    // The erased secrets are in no file of the database.
    store.flush().unwrap();
    for file in std::fs::read_dir(dir.path()).unwrap() {
        let path = file.unwrap().path();
        let bytes = std::fs::read(&path).unwrap();
        for erased in [[4; 32], [0x44; 32]] {
            assert!(
                !bytes.windows(32).any(|w| w == erased),
                "{} still holds an erased key",
                path.display()
            );
        }
    }
}
#[test]
fn entry_ids_hide_the_sequence_and_are_never_reused() {
    let dir = tempfile::tempdir().unwrap();
    let a = MailboxId([1; 32]);
    let first = {
        let store = NodeStore::open(dir.path()).unwrap();
        for i in 0..4u8 {
            store.deliver(&a, &[i], 0, limits(100)).unwrap();
        }
        let (entries, _) = store.pull(&a, 8).unwrap();
        let ids: Vec<u64> = entries.iter().map(|e| e.id).collect();
        // Consecutive arrivals do not get consecutive (or ordered) ids.
        assert!(
            ids.windows(2).all(|w| w[1].abs_diff(w[0]) > 1 << 16),
            "{ids:?}"
        );
        for id in &ids {
            assert_eq!(store.entry_ids.hide(store.entry_ids.reveal(*id)), *id);
        }
        assert_eq!(store.acknowledge(&a, &ids).unwrap(), 4);
        ids
    };
    // Emptied and reopened: the next packet gets an id never seen.
    let store = NodeStore::open(dir.path()).unwrap();
    store.deliver(&a, b"later", 0, limits(100)).unwrap();
    let (entries, _) = store.pull(&a, 8).unwrap();
    assert!(!first.contains(&entries[0].id));
    // A stale acknowledgement of the old ids deletes nothing.
    assert_eq!(store.acknowledge(&a, &first).unwrap(), 0);
    assert_eq!(store.mailbox_totals(), (1, 1));
}

#[test]
fn arrival_is_kept_to_the_hour_and_old_millisecond_records_still_expire() {
    let dir = tempfile::tempdir().unwrap();
    let store = NodeStore::open(dir.path()).unwrap();
    let a = MailboxId([1; 32]);
    let at_ms = 1_700_000_123_456;
    store.deliver(&a, b"new", at_ms, limits(100)).unwrap();
    let (key, value) = store
        .db
        .iterator_cf(store.cf(CF_MAILBOX).unwrap(), IteratorMode::Start)
        .next()
        .unwrap()
        .unwrap();
    assert_eq!(value[..8], (at_ms / HOUR_MS).to_be_bytes());
    // A record as older versions wrote it: Unix milliseconds.
    let mut legacy = at_ms.to_be_bytes().to_vec();
    legacy.extend_from_slice(b"old");
    let mut legacy_key = key.to_vec();
    legacy_key[39] ^= 0x80;
    store
        .db
        .put_cf(store.cf(CF_MAILBOX).unwrap(), &legacy_key, legacy)
        .unwrap();
    assert_eq!(store.expire(at_ms).unwrap(), 0);
    assert_eq!(store.expire(at_ms + HOUR_MS).unwrap(), 2);
}

#[test]
fn purged_entries_leave_no_mailbox_id_on_disk() {
    let dir = tempfile::tempdir().unwrap();
    let store = NodeStore::open(dir.path()).unwrap();
    let gone = MailboxId([0x5a; 32]);
    store.deliver(&gone, b"bye", 0, limits(100)).unwrap();
    store.flush().unwrap();
    let (entries, _) = store.pull(&gone, 8).unwrap();
    store.acknowledge(&gone, &[entries[0].id]).unwrap();
    store.flush().unwrap();
    store.purge_deleted().unwrap();
    // Reopening rewrites the manifest, which named the purged table
    // file's first and last keys.
    drop(store);
    drop(NodeStore::open(dir.path()).unwrap());
    for file in std::fs::read_dir(dir.path()).unwrap() {
        let path = file.unwrap().path();
        let name = path.file_name().unwrap().to_string_lossy().into_owned();
        // RocksDB's own text logs name no keys.
        if name.starts_with("LOG") {
            continue;
        }
        let bytes = std::fs::read(&path).unwrap();
        assert!(
            !bytes.windows(32).any(|w| w == gone.0),
            "{name} still holds the mailbox id"
        );
    }
}
