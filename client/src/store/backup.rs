//! Encrypted backups: every record of a store in one file, sealed under a
//! key derived from a backup passphrase of its own.

use std::path::Path;

use zeroize::Zeroizing;

use super::unlock::{HEADER_LEN, Header, NONCE_LEN, TAG_LEN, expand};
use super::{
    BACKUP_FORMAT_VERSION, BACKUP_MAGIC, Batch, MAX_BACKUP_LEN, MAX_KEY_LEN, MAX_VALUE_LEN,
    Namespace, Store, StoreError,
};
use crate::edge::ratchet::{open as aead_open, seal as aead_seal};

/// Magic, then the header every store has.
const BACKUP_HEADER_LEN: usize = BACKUP_MAGIC.len() + HEADER_LEN;
const BACKUP_INFO: &[u8] = b"aegislink/v1/backup/seal";
const BACKUP_KEY_CHECK_AD: &[u8] = b"aegislink/v1/backup/key-check";

impl Store {
    /// An encrypted copy of every record, sealed under a key derived from
    /// `backup_passphrase` with a salt of its own (and the store's Argon2id
    /// parameters). The store's passphrase is not needed to restore it.
    pub fn export_backup(&self, backup_passphrase: &[u8]) -> Result<Vec<u8>, StoreError> {
        let records = self.all_records()?;
        let mut plain = Zeroizing::new(Vec::new());
        plain.extend_from_slice(&(records.len() as u32).to_be_bytes());
        for (ns, (key, value)) in &records {
            plain.push(ns.tag());
            plain.extend_from_slice(&(key.len() as u16).to_be_bytes());
            plain.extend_from_slice(key);
            plain.extend_from_slice(&(value.len() as u32).to_be_bytes());
            plain.extend_from_slice(value);
        }
        let (header, master) = Header::create(
            self.params,
            backup_passphrase,
            BACKUP_INFO,
            BACKUP_KEY_CHECK_AD,
        )?;
        let mut out = Vec::with_capacity(BACKUP_HEADER_LEN + plain.len() + NONCE_LEN + TAG_LEN);
        out.extend_from_slice(BACKUP_MAGIC);
        out.extend_from_slice(&header.encode(BACKUP_FORMAT_VERSION));
        let body = aead_seal(
            &expand(&master, BACKUP_INFO),
            &mut rand::rng(),
            &out,
            &plain,
        );
        out.extend_from_slice(&body);
        Ok(out)
    }

    /// Restores `backup` into a new store at `path`, protected by
    /// `new_store_passphrase` with the backup's Argon2id parameters.
    pub fn import_backup(
        path: impl AsRef<Path>,
        backup: &[u8],
        backup_passphrase: &[u8],
        new_store_passphrase: &[u8],
    ) -> Result<Self, StoreError> {
        if backup.len() > MAX_BACKUP_LEN {
            return Err(StoreError::CorruptBackup("larger than the backup limit"));
        }
        let Some(rest) = backup.strip_prefix(BACKUP_MAGIC.as_slice()) else {
            return Err(StoreError::CorruptBackup("not an AegisLink backup"));
        };
        if rest.len() < HEADER_LEN {
            return Err(StoreError::CorruptBackup("truncated header"));
        }
        let header =
            Header::decode(&rest[..HEADER_LEN], "backup", BACKUP_FORMAT_VERSION).map_err(|e| {
                match e {
                    StoreError::CorruptHeader(what) => StoreError::CorruptBackup(what),
                    other => other,
                }
            })?;
        let master = header
            .unlock(backup_passphrase, BACKUP_INFO, BACKUP_KEY_CHECK_AD)?
            .ok_or(StoreError::WrongBackupPassphrase)?;
        let (authenticated, body) = backup.split_at(BACKUP_HEADER_LEN);
        let plain = aead_open(&expand(&master, BACKUP_INFO), authenticated, body)
            .ok_or(StoreError::CorruptBackup("contents do not authenticate"))?;
        let records = parse_backup_records(&plain)?;
        let store = Store::create(path, new_store_passphrase, header.params)?;
        let mut batch = Batch::new();
        for (ns, key, value) in records {
            batch.put(ns, key, value);
        }
        store.write_batch(batch)?;
        Ok(store)
    }
}

/// A record inside a backup: namespace, logical key, value.
type BackupRecord<'a> = (Namespace, &'a [u8], &'a [u8]);

/// Strict parsing of the backup's plaintext: every length within bounds and
/// within the input, known namespaces, nothing left over.
fn parse_backup_records(mut bytes: &[u8]) -> Result<Vec<BackupRecord<'_>>, StoreError> {
    fn take<'a>(bytes: &mut &'a [u8], n: usize) -> Result<&'a [u8], StoreError> {
        if bytes.len() < n {
            return Err(StoreError::CorruptBackup("truncated record"));
        }
        let (head, tail) = bytes.split_at(n);
        *bytes = tail;
        Ok(head)
    }
    let count = take(&mut bytes, 4)?;
    let count = u32::from_be_bytes([count[0], count[1], count[2], count[3]]) as usize;
    // Each record takes at least 7 bytes: do not trust the count further.
    let mut records = Vec::with_capacity(count.min(bytes.len() / 7));
    for _ in 0..count {
        let tag = take(&mut bytes, 1)?[0];
        let ns = Namespace::from_tag(tag).ok_or(StoreError::CorruptBackup("unknown namespace"))?;
        let key_len = take(&mut bytes, 2)?;
        let key_len = u16::from_be_bytes([key_len[0], key_len[1]]) as usize;
        if key_len > MAX_KEY_LEN {
            return Err(StoreError::CorruptBackup("record key too long"));
        }
        let key = take(&mut bytes, key_len)?;
        let value_len = take(&mut bytes, 4)?;
        let value_len =
            u32::from_be_bytes([value_len[0], value_len[1], value_len[2], value_len[3]]) as usize;
        if value_len > MAX_VALUE_LEN {
            return Err(StoreError::CorruptBackup("record value too large"));
        }
        let value = take(&mut bytes, value_len)?;
        records.push((ns, key, value));
    }
    if !bytes.is_empty() {
        return Err(StoreError::CorruptBackup("trailing bytes"));
    }
    Ok(records)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::store::{Argon2Params, store_exists};

    const PASS: &[u8] = b"correct horse battery staple";

    fn fresh() -> (tempfile::TempDir, Store) {
        let dir = tempfile::tempdir().unwrap();
        let store = Store::create(dir.path(), PASS, Argon2Params::insecure_fast()).unwrap();
        (dir, store)
    }

    #[test]
    fn backups_round_trip_and_need_their_own_passphrase() {
        let (_dir, store) = fresh();
        store
            .put(Namespace::Profile, b"identity", &[7; 64])
            .unwrap();
        store
            .put(Namespace::Contacts, b"alice", b"aegis1...")
            .unwrap();
        store.put(Namespace::Inbox, b"msg", &[]).unwrap();
        let backup = store.export_backup(b"backup words").unwrap();
        assert!(backup.starts_with(BACKUP_MAGIC));

        let target = tempfile::tempdir().unwrap();
        assert!(matches!(
            Store::import_backup(target.path(), &backup, PASS, b"new"),
            Err(StoreError::WrongBackupPassphrase)
        ));
        assert!(!store_exists(target.path()), "nothing written on failure");
        let mut damaged = backup.clone();
        let last = damaged.len() - 1;
        damaged[last] ^= 1;
        assert!(matches!(
            Store::import_backup(target.path(), &damaged, b"backup words", b"new"),
            Err(StoreError::CorruptBackup(_))
        ));
        assert!(matches!(
            Store::import_backup(target.path(), &backup[..40], b"backup words", b"new"),
            Err(StoreError::CorruptBackup(_))
        ));
        assert!(matches!(
            Store::import_backup(target.path(), b"not a backup", b"backup words", b"new"),
            Err(StoreError::CorruptBackup(_))
        ));

        let restored =
            Store::import_backup(target.path(), &backup, b"backup words", b"new").unwrap();
        for ns in Namespace::ALL {
            let a: Vec<_> = store.list(ns).unwrap();
            let b: Vec<_> = restored.list(ns).unwrap();
            assert_eq!(a.len(), b.len());
            for ((ka, va), (kb, vb)) in a.iter().zip(&b) {
                assert_eq!((ka, va.as_slice()), (kb, vb.as_slice()));
            }
        }
        drop(restored);
        assert!(matches!(
            Store::open(target.path(), PASS),
            Err(StoreError::WrongPassphrase)
        ));
        Store::open(target.path(), b"new").unwrap();
    }

    #[test]
    fn backup_record_parsing_is_strict() {
        let mut rec = vec![
            0,
            0,
            0,
            1,
            Namespace::Meta.tag(),
            0,
            1,
            b'k',
            0,
            0,
            0,
            1,
            b'v',
        ];
        assert_eq!(parse_backup_records(&rec).unwrap().len(), 1);
        rec.push(0);
        assert!(parse_backup_records(&rec).is_err());
        rec.pop();
        rec[4] = 0;
        assert!(parse_backup_records(&rec).is_err());
        rec[4] = Namespace::Meta.tag();
        rec[3] = 2;
        assert!(parse_backup_records(&rec).is_err());
        assert!(parse_backup_records(&[0xFF, 0xFF, 0xFF, 0xFF]).is_err());
    }
}
