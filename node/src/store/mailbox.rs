//! The gateway's mailboxes in the node database: stored packets keyed by
//! mailbox and sequence number, the entry ids clients see, limits, expiry
//! and the purge of what was deleted.

use super::*;

/// The permutation between internal sequence numbers and the entry ids
/// clients see: 8 Feistel rounds on 32-bit halves, each round function
/// SHA-256(secret ‖ round ‖ half) truncated.
pub(super) struct EntryIds {
    pub(super) secret: [u8; 32],
}

impl EntryIds {
    const ROUNDS: u8 = 8;

    fn round(&self, round: u8, half: u32) -> u32 {
        use sha2::Digest as _;
        let digest = sha2::Sha256::new()
            .chain_update(self.secret)
            .chain_update([round])
            .chain_update(half.to_be_bytes())
            .finalize();
        u32::from_be_bytes([digest[0], digest[1], digest[2], digest[3]])
    }

    pub(super) fn hide(&self, seq: u64) -> u64 {
        let (mut left, mut right) = ((seq >> 32) as u32, seq as u32);
        for i in 0..Self::ROUNDS {
            (left, right) = (right, left ^ self.round(i, right));
        }
        (u64::from(left) << 32) | u64::from(right)
    }

    pub(super) fn reveal(&self, id: u64) -> u64 {
        let (mut left, mut right) = ((id >> 32) as u32, id as u32);
        for i in (0..Self::ROUNDS).rev() {
            (left, right) = (right ^ self.round(i, left), left);
        }
        (u64::from(left) << 32) | u64::from(right)
    }
}

fn mailbox_key(mailbox: &MailboxId, id: u64) -> [u8; 40] {
    let mut k = [0u8; 40];
    k[..32].copy_from_slice(&mailbox.0);
    k[32..].copy_from_slice(&id.to_be_bytes());
    k
}

pub(super) fn split_mailbox_key(key: &[u8]) -> Option<(MailboxId, u64)> {
    if key.len() != 40 {
        return None;
    }
    let mut m = [0u8; 32];
    m.copy_from_slice(&key[..32]);
    let mut id = [0u8; 8];
    id.copy_from_slice(&key[32..]);
    Some((MailboxId(m), u64::from_be_bytes(id)))
}

/// The hour a stored packet arrived.
fn stored_hour(value: &[u8]) -> Option<u64> {
    let head: [u8; 8] = value.get(..8)?.try_into().ok()?;
    let at = u64::from_be_bytes(head);
    Some(if at >= MS_THRESHOLD { at / HOUR_MS } else { at })
}

impl NodeStore {
    pub(super) fn lock_counts(&self) -> std::sync::MutexGuard<'_, HashMap<MailboxId, u32>> {
        self.counts.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Appends a packet to a mailbox, unless it holds `limits.per_mailbox`
    /// packets already, or it is empty and `limits.mailboxes` others are not.
    pub fn deliver(
        &self,
        mailbox: &MailboxId,
        payload: &[u8],
        now_ms: u64,
        limits: MailboxLimits,
    ) -> Result<(), StoreError> {
        let mut counts = self.lock_counts();
        match counts.get(mailbox) {
            Some(&held) if held >= limits.per_mailbox => return Err(StoreError::MailboxFull),
            None if counts.len() >= limits.mailboxes => {
                return Err(StoreError::TooManyMailboxes);
            }
            _ => {}
        }
        let seq = self.next_entry.fetch_add(1, Ordering::Relaxed);
        let mut value = Vec::with_capacity(8 + payload.len());
        value.extend_from_slice(&(now_ms / HOUR_MS).to_be_bytes());
        value.extend_from_slice(payload);
        let mut batch = WriteBatch::default();
        batch.put_cf(self.cf(CF_MAILBOX)?, mailbox_key(mailbox, seq), value);
        batch.put_cf(
            self.cf(CF_META)?,
            META_NEXT_SEQ,
            seq.saturating_add(1).to_be_bytes(),
        );
        self.db.write(batch)?;
        *counts.entry(*mailbox).or_insert(0) += 1;
        Ok(())
    }

    /// Up to `max` packets of a mailbox, oldest first, and whether more wait.
    pub fn pull(
        &self,
        mailbox: &MailboxId,
        max: usize,
    ) -> Result<(Vec<StoredPacket>, bool), StoreError> {
        let start = mailbox_key(mailbox, 0);
        let iter = self.db.iterator_cf(
            self.cf(CF_MAILBOX)?,
            IteratorMode::From(&start, Direction::Forward),
        );
        let mut out = Vec::new();
        for item in iter {
            let (key, value) = item?;
            let Some((owner, id)) = split_mailbox_key(&key) else {
                continue;
            };
            if owner != *mailbox {
                break;
            }
            if out.len() == max {
                return Ok((out, true));
            }
            if value.len() < 8 {
                continue;
            }
            out.push(StoredPacket {
                id: self.entry_ids.hide(id),
                payload: value[8..].to_vec(),
            });
        }
        Ok((out, false))
    }

    /// Deletes acknowledged packets of one mailbox; unknown ids are ignored.
    /// Returns how many were deleted.
    pub fn acknowledge(&self, mailbox: &MailboxId, ids: &[u64]) -> Result<usize, StoreError> {
        let cf = self.cf(CF_MAILBOX)?;
        let mut counts = self.lock_counts();
        let mut batch = WriteBatch::default();
        let mut deleted = 0;
        for &id in ids {
            let key = mailbox_key(mailbox, self.entry_ids.reveal(id));
            if self.db.get_pinned_cf(cf, key)?.is_some() {
                batch.delete_cf(cf, key);
                deleted += 1;
            }
        }
        self.db.write(batch)?;
        if let Some(count) = counts.get_mut(mailbox) {
            *count = count.saturating_sub(deleted as u32);
            if *count == 0 {
                counts.remove(mailbox);
            }
        }
        Ok(deleted)
    }

    /// Deletes packets stored in an hour wholly before `cutoff_ms` (so a
    /// packet is kept up to an hour past the cutoff); returns how many.
    pub fn expire(&self, cutoff_ms: u64) -> Result<usize, StoreError> {
        let cf = self.cf(CF_MAILBOX)?;
        let cutoff_hour = cutoff_ms / HOUR_MS;
        let mut doomed = Vec::new();
        for item in self.db.iterator_cf(cf, IteratorMode::Start) {
            let (key, value) = item?;
            if stored_hour(&value).is_none_or(|hour| hour < cutoff_hour) {
                doomed.push(key);
            }
        }
        let mut counts = self.lock_counts();
        let mut batch = WriteBatch::default();
        for key in &doomed {
            batch.delete_cf(cf, key);
            if let Some((mailbox, _)) = split_mailbox_key(key)
                && let Some(count) = counts.get_mut(&mailbox)
            {
                *count = count.saturating_sub(1);
                if *count == 0 {
                    counts.remove(&mailbox);
                }
            }
        }
        self.db.write(batch)?;
        Ok(doomed.len())
    }

    /// Compacts the mailbox column family, which drops the deletion markers
    /// of acknowledged and expired entries and with them their mailbox ids.
    pub fn purge_deleted(&self) -> Result<(), StoreError> {
        self.compact_away(CF_MAILBOX)
    }

    /// Packets stored in all mailboxes, and the number of non-empty mailboxes.
    pub fn mailbox_totals(&self) -> (u64, u64) {
        let counts = self.lock_counts();
        (
            counts.values().map(|&c| u64::from(c)).sum(),
            counts.len() as u64,
        )
    }
}
