//! Store tests on real RocksDB databases in temporary directories.

use super::*;
use crate::edge::identity::Identity;
use rand::SeedableRng;
use rand_chacha::ChaCha20Rng;

const PASS: &[u8] = b"correct horse battery staple";

fn fresh() -> (tempfile::TempDir, Store) {
    let dir = tempfile::tempdir().unwrap();
    let store = Store::create(dir.path(), PASS, Argon2Params::insecure_fast()).unwrap();
    (dir, store)
}

#[test]
fn values_round_trip_per_namespace() {
    let (_dir, store) = fresh();
    store.put(Namespace::Contacts, b"alice", b"card A").unwrap();
    store.put(Namespace::Contacts, b"bob", b"card B").unwrap();
    store
        .put(Namespace::Sessions, b"alice", b"session")
        .unwrap();
    store.put(Namespace::Meta, b"", b"").unwrap();
    assert_eq!(
        store
            .get(Namespace::Contacts, b"alice")
            .unwrap()
            .unwrap()
            .as_slice(),
        b"card A"
    );
    assert_eq!(
        store
            .get(Namespace::Sessions, b"alice")
            .unwrap()
            .unwrap()
            .as_slice(),
        b"session"
    );
    assert!(store.get(Namespace::Profile, b"alice").unwrap().is_none());
    assert_eq!(store.get(Namespace::Meta, b"").unwrap().unwrap().len(), 0);
    let contacts = store.list(Namespace::Contacts).unwrap();
    let keys: Vec<&[u8]> = contacts.iter().map(|(k, _)| k.as_slice()).collect();
    assert_eq!(keys, [b"alice".as_slice(), b"bob".as_slice()]);
    store
        .put(Namespace::Contacts, b"alice", b"card A2")
        .unwrap();
    store.delete(Namespace::Contacts, b"bob").unwrap();
    store.delete(Namespace::Contacts, b"nobody").unwrap();
    let contacts = store.list(Namespace::Contacts).unwrap();
    assert_eq!(contacts.len(), 1);
    assert_eq!(contacts[0].1.as_slice(), b"card A2");
    assert!(store.list(Namespace::Inbox).unwrap().is_empty());
    assert!(matches!(
        store.put(Namespace::Meta, &[0; MAX_KEY_LEN + 1], b""),
        Err(StoreError::KeyTooLong(_))
    ));
}

#[test]
fn batches_apply_together() {
    let (_dir, store) = fresh();
    store.put(Namespace::Outbox, b"m1", b"queued").unwrap();
    let mut batch = Batch::new();
    batch
        .delete(Namespace::Outbox, b"m1")
        .put(Namespace::Inbox, b"m1", b"delivered")
        .put(Namespace::Meta, b"counter", b"1");
    assert_eq!(batch.len(), 3);
    store.write_batch(batch).unwrap();
    assert!(store.get(Namespace::Outbox, b"m1").unwrap().is_none());
    assert_eq!(
        store
            .get(Namespace::Inbox, b"m1")
            .unwrap()
            .unwrap()
            .as_slice(),
        b"delivered"
    );
    // A batch with an invalid operation writes nothing.
    let mut bad = Batch::new();
    bad.put(Namespace::Meta, b"counter", b"2")
        .put(Namespace::Meta, &[1; MAX_KEY_LEN + 1], b"x");
    assert!(store.write_batch(bad).is_err());
    assert_eq!(
        store
            .get(Namespace::Meta, b"counter")
            .unwrap()
            .unwrap()
            .as_slice(),
        b"1"
    );
}

#[test]
fn reopening_keeps_the_data_and_checks_the_passphrase() {
    let dir = tempfile::tempdir().unwrap();
    {
        let store = Store::create(dir.path(), PASS, Argon2Params::insecure_fast()).unwrap();
        store.put(Namespace::Profile, b"name", b"me").unwrap();
    }
    assert!(matches!(
        Store::create(dir.path(), PASS, Argon2Params::insecure_fast()),
        Err(StoreError::AlreadyExists)
    ));
    assert!(matches!(
        Store::open(dir.path(), b"wrong passphrase"),
        Err(StoreError::WrongPassphrase)
    ));
    let store = Store::open(dir.path(), PASS).unwrap();
    assert_eq!(store.params(), Argon2Params::insecure_fast());
    assert_eq!(
        store
            .get(Namespace::Profile, b"name")
            .unwrap()
            .unwrap()
            .as_slice(),
        b"me"
    );
    let empty = tempfile::tempdir().unwrap();
    assert!(matches!(
        Store::open(empty.path().join("none"), PASS),
        Err(StoreError::NotFound)
    ));
}

#[test]
fn invalid_or_unbounded_parameters_are_refused() {
    let dir = tempfile::tempdir().unwrap();
    for params in [
        Argon2Params {
            memory_kib: 4,
            ..Argon2Params::insecure_fast()
        },
        Argon2Params {
            iterations: 0,
            ..Argon2Params::insecure_fast()
        },
        Argon2Params {
            parallelism: 17,
            memory_kib: 1024,
            iterations: 1,
        },
        Argon2Params {
            memory_kib: u32::MAX,
            ..Argon2Params::DEFAULT
        },
    ] {
        assert!(matches!(
            Store::create(dir.path(), PASS, params),
            Err(StoreError::InvalidParams(_))
        ));
    }
    Argon2Params::DEFAULT.validate().unwrap();
}

/// Raw access to the database of a closed store.
fn raw(dir: &Path) -> DB {
    DB::open(&db_options(false), dir).unwrap()
}

#[test]
fn values_swapped_or_altered_on_disk_are_detected() {
    let dir = tempfile::tempdir().unwrap();
    let (ka, kb) = {
        let store = Store::create(dir.path(), PASS, Argon2Params::insecure_fast()).unwrap();
        store
            .put(Namespace::Sessions, b"alice", b"alice's session")
            .unwrap();
        store
            .put(Namespace::Sessions, b"bob", b"bob's session")
            .unwrap();
        (
            store.record_key(Namespace::Sessions, b"alice"),
            store.record_key(Namespace::Sessions, b"bob"),
        )
    };
    {
        let db = raw(dir.path());
        let a = db.get(&ka).unwrap().unwrap();
        let b = db.get(&kb).unwrap().unwrap();
        db.put(&ka, &b).unwrap();
        db.put(&kb, &a).unwrap();
    }
    let store = Store::open(dir.path(), PASS).unwrap();
    assert!(matches!(
        store.get(Namespace::Sessions, b"alice"),
        Err(StoreError::Tampered)
    ));
    assert!(matches!(
        store.list(Namespace::Sessions),
        Err(StoreError::Tampered)
    ));
    drop(store);
    {
        let db = raw(dir.path());
        let mut a = db.get(&kb).unwrap().unwrap();
        a[30] ^= 1;
        db.put(&ka, &a).unwrap();
        // A record moved into another namespace.
        let mut moved = ka.clone();
        moved[0] = Namespace::Contacts.tag();
        db.put(&moved, db.get(&kb).unwrap().unwrap()).unwrap();
    }
    let store = Store::open(dir.path(), PASS).unwrap();
    assert!(matches!(
        store.get(Namespace::Sessions, b"alice"),
        Err(StoreError::Tampered)
    ));
    assert!(matches!(
        store.list(Namespace::Contacts),
        Err(StoreError::Tampered)
    ));
}

#[test]
fn a_damaged_header_is_reported_as_such() {
    let dir = tempfile::tempdir().unwrap();
    drop(Store::create(dir.path(), PASS, Argon2Params::insecure_fast()).unwrap());
    {
        let db = raw(dir.path());
        let mut header = db.get(HEADER_KEY).unwrap().unwrap();
        header[0] = 9;
        db.put(HEADER_KEY, &header).unwrap();
    }
    assert!(matches!(
        Store::open(dir.path(), PASS),
        Err(StoreError::UnsupportedVersion {
            what: "store",
            version: 9
        })
    ));
    {
        let db = raw(dir.path());
        let mut header = db.get(HEADER_KEY).unwrap().unwrap();
        header[0] = STORE_FORMAT_VERSION;
        header.pop();
        db.put(HEADER_KEY, &header).unwrap();
    }
    assert!(matches!(
        Store::open(dir.path(), PASS),
        Err(StoreError::CorruptHeader(_))
    ));
    {
        let db = raw(dir.path());
        let mut header = db.get(HEADER_KEY).unwrap().unwrap();
        header.push(0);
        // Ask for 4 TiB of Argon2 memory: refused before any is allocated.
        header[1..5].copy_from_slice(&u32::MAX.to_be_bytes());
        db.put(HEADER_KEY, &header).unwrap();
    }
    assert!(matches!(
        Store::open(dir.path(), PASS),
        Err(StoreError::InvalidParams(_))
    ));
}

/// Every byte of every file below `dir`.
fn all_file_bytes(dir: &Path) -> Vec<(std::path::PathBuf, Vec<u8>)> {
    let mut out = Vec::new();
    let mut pending = vec![dir.to_path_buf()];
    while let Some(d) = pending.pop() {
        for entry in std::fs::read_dir(&d).unwrap() {
            let path = entry.unwrap().path();
            if path.is_dir() {
                pending.push(path);
            } else {
                out.push((path.clone(), std::fs::read(&path).unwrap()));
            }
        }
    }
    out
}

fn contains(haystack: &[u8], needle: &[u8]) -> bool {
    haystack.windows(needle.len()).any(|w| w == needle)
}

#[test]
fn no_secret_plaintext_or_contact_name_reaches_the_disk() {
    let mut rng = ChaCha20Rng::seed_from_u64(1);
    let identity = Identity::generate(&mut rng);
    let secret = identity.to_secret_bytes();
    let message = b"meet me at the old bridge at nine, bring the documents";
    let contact = b"contact:alice-liddell";
    let dir = tempfile::tempdir().unwrap();
    {
        let store = Store::create(dir.path(), PASS, Argon2Params::insecure_fast()).unwrap();
        store
            .put(Namespace::Profile, b"identity", &secret[..])
            .unwrap();
        store.put(Namespace::Inbox, contact, message).unwrap();
        let mut batch = Batch::new();
        batch.put(Namespace::Contacts, contact, message);
        store.write_batch(batch).unwrap();
        // Push the memtable into table files too, so both forms are checked.
        store.db.flush().unwrap();
        store.put(Namespace::Outbox, contact, message).unwrap();
    }
    let files = all_file_bytes(dir.path());
    assert!(files.len() >= 3, "{} files", files.len());
    let total: usize = files.iter().map(|(_, b)| b.len()).sum();
    assert!(total > 1000, "the database wrote {total} bytes");
    let needles: Vec<(&str, Vec<u8>)> = vec![
        ("identity secret", secret.to_vec()),
        ("signing seed", secret[..32].to_vec()),
        ("X25519 secret", secret[32..].to_vec()),
        ("secret hex", hex::encode(&secret[..]).into_bytes()),
        ("seed hex", hex::encode(&secret[..32]).into_bytes()),
        ("SECRET HEX", hex::encode_upper(&secret[..]).into_bytes()),
        ("message", message.to_vec()),
        ("message start", message[..16].to_vec()),
        ("message hex", hex::encode(message).into_bytes()),
        ("contact name", contact.to_vec()),
        ("passphrase", PASS.to_vec()),
    ];
    for (path, bytes) in &files {
        for (what, needle) in &needles {
            assert!(
                !contains(bytes, needle),
                "{what} found in {}",
                path.display()
            );
        }
    }
    // And the store still reads it all back.
    let store = Store::open(dir.path(), PASS).unwrap();
    assert_eq!(
        store
            .get(Namespace::Profile, b"identity")
            .unwrap()
            .unwrap()
            .as_slice(),
        &secret[..]
    );
    assert_eq!(
        store
            .get(Namespace::Outbox, contact)
            .unwrap()
            .unwrap()
            .as_slice(),
        message
    );
}
