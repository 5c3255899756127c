//! Anonymous threads. The writer keeps, per anonymous message it sent, the
//! key replies are sealed with and the contact it wrote to; the recipient
//! keeps the key and the reply blocks the message carried, which a reply
//! uses up. Both are kept a day at most (reply blocks die with the keys
//! of the epoch they were built in long before) and the recipient keeps
//! at most [`MAX_ANONYMOUS_THREADS`]: a flood of anonymous messages costs
//! it that much and no more.

use super::*;
use crate::edge::anonymous::ThreadId;

const WRITTEN: &[u8] = b"anonymous-written/";
const RECEIVED: &[u8] = b"anonymous-received/";

/// Anonymous threads a recipient keeps at most; a new anonymous message
/// beyond them is dropped and counted.
pub const MAX_ANONYMOUS_THREADS: usize = 64;
/// How long a thread is kept, in milliseconds.
pub const THREAD_KEPT_MS: u64 = 24 * 3600 * 1000;

/// An anonymous message we wrote, as we keep it.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct WrittenThread {
    /// To whom.
    pub contact: ContactId,
    /// The key its replies are sealed with.
    pub reply_key: [u8; 32],
    /// When (Unix ms).
    pub made_ms: u64,
}

/// An anonymous message we received, as we keep it.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct ReceivedThread {
    /// The key our replies are sealed with.
    pub reply_key: [u8; 32],
    /// Reply blocks not used yet (encoded SURB-ACKs).
    pub blocks: Vec<Vec<u8>>,
    /// When it arrived (Unix ms).
    pub made_ms: u64,
}

fn key(prefix: &[u8], thread: &ThreadId) -> Vec<u8> {
    [prefix, thread.as_slice()].concat()
}

/// The contact id an anonymous writer is known by: its thread.
pub fn thread_contact(thread: &ThreadId) -> ContactId {
    ContactId(*thread)
}

/// The name an anonymous writer is shown by.
pub fn anonymous_name(thread: &ThreadId) -> String {
    format!("anonymous-{}", hex::encode(&thread[..3]))
}

impl Profile {
    /// Keeps what replies to our anonymous message `thread` need.
    pub fn note_written_thread(
        &self,
        thread: &ThreadId,
        contact: ContactId,
        reply_key: [u8; 32],
        now_ms: u64,
    ) -> Result<(), ProfileError> {
        self.prune_threads(WRITTEN, now_ms, |b| {
            postcard::from_bytes::<WrittenThread>(b)
                .ok()
                .map(|t| t.made_ms)
        })?;
        let record = WrittenThread {
            contact,
            reply_key,
            made_ms: now_ms,
        };
        let bytes = postcard::to_stdvec(&record).map_err(|_| ProfileError::Corrupt("thread"))?;
        Ok(self
            .store
            .put(Namespace::Meta, &key(WRITTEN, thread), &bytes)?)
    }

    /// Our anonymous message `thread`, if we still keep it.
    pub fn written_thread(&self, thread: &ThreadId) -> Result<Option<WrittenThread>, ProfileError> {
        Ok(self
            .store
            .get(Namespace::Meta, &key(WRITTEN, thread))?
            .and_then(|b| postcard::from_bytes(&b).ok()))
    }

    /// Keeps an anonymous message's thread; false if it is known already
    /// (a replay) or [`MAX_ANONYMOUS_THREADS`] are kept (then counted).
    pub fn accept_thread(
        &self,
        thread: &ThreadId,
        reply_key: [u8; 32],
        blocks: Vec<Vec<u8>>,
        now_ms: u64,
    ) -> Result<bool, ProfileError> {
        let kept = self.prune_threads(RECEIVED, now_ms, |b| {
            postcard::from_bytes::<ReceivedThread>(b)
                .ok()
                .map(|t| t.made_ms)
        })?;
        if self.received_thread(thread)?.is_some() {
            return Ok(false);
        }
        if kept >= MAX_ANONYMOUS_THREADS {
            self.count_request_dropped()?;
            return Ok(false);
        }
        let record = ReceivedThread {
            reply_key,
            blocks,
            made_ms: now_ms,
        };
        let bytes = postcard::to_stdvec(&record).map_err(|_| ProfileError::Corrupt("thread"))?;
        self.store
            .put(Namespace::Meta, &key(RECEIVED, thread), &bytes)?;
        Ok(true)
    }

    /// An anonymous message's thread, if we still keep it.
    pub fn received_thread(
        &self,
        thread: &ThreadId,
    ) -> Result<Option<ReceivedThread>, ProfileError> {
        Ok(self
            .store
            .get(Namespace::Meta, &key(RECEIVED, thread))?
            .and_then(|b| postcard::from_bytes(&b).ok()))
    }

    /// Takes the thread's unused reply blocks: they are removed from the
    /// store before they are used, so none is ever used twice, even
    /// across a restart.
    pub fn take_reply_blocks(&self, thread: &ThreadId) -> Result<Vec<Vec<u8>>, ProfileError> {
        let Some(mut record) = self.received_thread(thread)? else {
            return Ok(Vec::new());
        };
        let blocks = std::mem::take(&mut record.blocks);
        let bytes = postcard::to_stdvec(&record).map_err(|_| ProfileError::Corrupt("thread"))?;
        self.store
            .put(Namespace::Meta, &key(RECEIVED, thread), &bytes)?;
        Ok(blocks)
    }

    /// Deletes threads older than [`THREAD_KEPT_MS`] under `prefix`;
    /// returns how many are left.
    fn prune_threads(
        &self,
        prefix: &[u8],
        now_ms: u64,
        made: impl Fn(&[u8]) -> Option<u64>,
    ) -> Result<usize, ProfileError> {
        let mut kept = 0;
        let mut batch = Batch::new();
        for (k, v) in self.store.list(Namespace::Meta)? {
            if !k.starts_with(prefix) {
                continue;
            }
            match made(&v) {
                Some(at) if now_ms.saturating_sub(at) < THREAD_KEPT_MS => kept += 1,
                _ => {
                    batch.delete(Namespace::Meta, &k);
                }
            }
        }
        self.store.write_batch(batch)?;
        Ok(kept)
    }
}
