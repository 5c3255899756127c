//! Anonymous messages in the driver: writing one (with reply blocks from
//! the endpoint), answering one (over the blocks it brought), and opening
//! both kinds as they arrive.
//!
//! ```text
//! anonymous plaintext = thread (16) ‖ block count (1) ‖ reply blocks (count × SURB-ACK)
//!                       ‖ content (kind 1 or 4, no card)
//! reply plaintext     = content (kind 1 or 4, no card)
//! ```

use aegis_mix_packet::SurbAck;
use aegis_proto::{ContactId, LocalId};
use rand::RngExt as _;
use tracing::debug;

use super::{Driver, unix_ms};
use crate::api::{ClientError, Event};
use crate::card::ContactCard;
use crate::conversation::address_of;
use crate::edge::anonymous::{
    ThreadId, open_anonymous, open_reply, prekey_ids, reply_thread, seal_anonymous, seal_reply,
};
use crate::envelope::{ANONYMOUS, ANONYMOUS_REPLY, Content, ContentKind};
use crate::profile::{ContactState, anonymous_name, thread_contact};

/// Reply blocks an anonymous message carries: a one- or two-fragment
/// answer and its retransmissions.
pub const REPLY_BLOCKS: usize = 8;

fn queue_error(error: impl std::fmt::Display) -> ClientError {
    ClientError::Queue(error.to_string())
}

/// A message or a file, without a card: what anonymous threads carry.
fn thread_content(content: &Content) -> bool {
    matches!(content.kind, ContentKind::Message | ContentKind::File) && content.card.is_none()
}

impl Driver {
    /// Writes to `contact` without naming us: sealed to their card with no
    /// identity of ours, carrying [`REPLY_BLOCKS`] reply blocks to our
    /// mailbox.
    pub(super) fn send_anonymous(
        &mut self,
        contact: ContactId,
        content: Content,
    ) -> Result<LocalId, ClientError> {
        if !thread_content(&content) {
            return Err(queue_error(
                "only a message or a file can be sent anonymously",
            ));
        }
        let record = self
            .profile
            .contact(&contact)?
            .ok_or_else(|| queue_error("unknown contact"))?;
        if record.state != ContactState::Contact {
            return Err(queue_error(format!(
                "{} is {}",
                record.name,
                record.state.word()
            )));
        }
        let card = ContactCard::decode(&record.card).map_err(queue_error)?;
        let address = address_of(&card);
        let now = self.now();
        let blocks = self
            .endpoint
            .give_reply_blocks(&mut self.rng, &address, REPLY_BLOCKS, now);
        if blocks.is_empty() {
            return Err(queue_error("no route for reply blocks in this consensus"));
        }
        let thread: ThreadId = self.rng.random();
        let mut plaintext = thread.to_vec();
        plaintext.push(blocks.len() as u8);
        for block in &blocks {
            plaintext.extend_from_slice(block);
        }
        plaintext.extend_from_slice(&content.encode());
        let (sealed, keys) =
            seal_anonymous(&mut self.rng, &card.bundle, &plaintext).map_err(queue_error)?;
        let mut envelope = vec![ANONYMOUS];
        envelope.extend_from_slice(&sealed);
        self.profile
            .note_written_thread(&thread, contact, *keys.reply, unix_ms())?;
        let local = self
            .endpoint
            .queue(&mut self.rng, contact, address, envelope, now)
            .map_err(queue_error)?;
        self.sent_in_thread(contact, thread, content, local)
    }

    /// Answers the anonymous message `seq` of the history over the reply
    /// blocks it brought (taken from the store first: none is used twice).
    pub(super) fn reply_anonymous(
        &mut self,
        seq: u64,
        content: Content,
    ) -> Result<LocalId, ClientError> {
        if !thread_content(&content) {
            return Err(queue_error("only a message or a file can be a reply"));
        }
        let message = self
            .profile
            .message(seq)?
            .ok_or_else(|| queue_error(format!("no message #{seq}")))?;
        let thread = match message.thread {
            Some(thread) if message.contact == thread_contact(&thread) => thread,
            _ => return Err(queue_error(format!("#{seq} is not an anonymous message"))),
        };
        let record = self
            .profile
            .received_thread(&thread)?
            .ok_or_else(|| queue_error("that anonymous message is too old to answer"))?;
        let plaintext = content.encode();
        let writer = thread_contact(&thread);
        let fragments_needed =
            (1 + 16 + plaintext.len() + 40).div_ceil(self.geometry.fragment_data_len());
        let left = record.blocks.len() + self.endpoint.reply_blocks_left(&writer);
        if fragments_needed > left {
            return Err(queue_error(format!(
                "the reply needs {fragments_needed} reply blocks and {left} are left \
                 (each carries one fragment, once)"
            )));
        }
        let blocks: Vec<SurbAck> = self
            .profile
            .take_reply_blocks(&thread)?
            .iter()
            .filter_map(|b| SurbAck::decode(&self.geometry, b).ok())
            .collect();
        let mut envelope = vec![ANONYMOUS_REPLY];
        envelope.extend_from_slice(&seal_reply(
            &mut self.rng,
            &record.reply_key,
            &thread,
            &plaintext,
        ));
        let now = self.now();
        let local = self
            .endpoint
            .queue_over_blocks(&mut self.rng, writer, blocks, envelope, now)
            .map_err(queue_error)?;
        self.sent_in_thread(writer, thread, content, local)
    }

    /// Records a message we sent in an anonymous thread.
    fn sent_in_thread(
        &mut self,
        contact: ContactId,
        thread: ThreadId,
        content: Content,
        local: LocalId,
    ) -> Result<LocalId, ClientError> {
        let (kind, body) = (content.kind, content.body);
        self.profile
            .store_in_thread(contact, thread, kind, unix_ms(), body, Some(local))?;
        self.save();
        Ok(local)
    }

    /// An anonymous message (`bytes` after its first byte): kept, within
    /// [`crate::profile::MAX_ANONYMOUS_THREADS`], with its reply blocks.
    pub(super) fn deliver_anonymous(&mut self, bytes: &[u8]) {
        let Some((signed_id, pq_id)) = prekey_ids(bytes) else {
            return;
        };
        let Some((signed, pq)) = self.profile.prekeys(signed_id, pq_id) else {
            debug!("anonymous message to prekeys no longer held dropped");
            return;
        };
        let opened = open_anonymous(&self.profile.identity.public(), signed, pq, bytes);
        let Ok((plaintext, keys)) = opened else {
            debug!("anonymous message that does not open dropped");
            return;
        };
        let Some((thread, blocks, content)) = self.split_anonymous(&plaintext) else {
            debug!("malformed anonymous message dropped");
            return;
        };
        match self
            .profile
            .accept_thread(&thread, *keys.reply, blocks, unix_ms())
        {
            Ok(true) => {}
            Ok(false) => {
                debug!("anonymous message dropped: a replay, or too many threads");
                return;
            }
            Err(error) => {
                debug!(%error, "keeping an anonymous thread failed");
                return;
            }
        }
        let writer = thread_contact(&thread);
        self.store_and_tell(writer, anonymous_name(&thread), thread, content);
    }

    /// A reply to one of our anonymous messages (`bytes` after its first
    /// byte).
    pub(super) fn deliver_reply(&mut self, bytes: &[u8]) {
        let Some(thread) = reply_thread(bytes) else {
            return;
        };
        let Ok(Some(record)) = self.profile.written_thread(&thread) else {
            debug!("reply to no anonymous message of ours dropped");
            return;
        };
        let Ok(plaintext) = open_reply(&record.reply_key, bytes) else {
            debug!("reply that does not open dropped");
            return;
        };
        let Some(content) = Content::decode(&plaintext).ok().filter(thread_content) else {
            return;
        };
        let name = self
            .profile
            .contact(&record.contact)
            .ok()
            .flatten()
            .map_or_else(|| "?".to_owned(), |r| r.name);
        self.store_and_tell(record.contact, name, thread, content);
    }

    fn split_anonymous(&self, plaintext: &[u8]) -> Option<(ThreadId, Vec<Vec<u8>>, Content)> {
        let thread: ThreadId = plaintext.get(..16)?.try_into().ok()?;
        let count = usize::from(*plaintext.get(16)?);
        let len = self.geometry.surb_ack_len();
        let blocks_end = 17 + count * len;
        let blocks: Vec<Vec<u8>> = plaintext
            .get(17..blocks_end)?
            .chunks_exact(len)
            .map(<[u8]>::to_vec)
            .collect();
        if blocks
            .iter()
            .any(|b| SurbAck::decode(&self.geometry, b).is_err())
        {
            return None;
        }
        let content = Content::decode(plaintext.get(blocks_end..)?)
            .ok()
            .filter(thread_content)?;
        Some((thread, blocks, content))
    }

    fn store_and_tell(
        &mut self,
        contact: ContactId,
        name: String,
        thread: ThreadId,
        content: Content,
    ) {
        let kind = content.kind;
        match self
            .profile
            .store_in_thread(contact, thread, kind, unix_ms(), content.body, None)
        {
            Ok(stored) => self.notify(Event::Message {
                from: contact,
                name,
                request: false,
                seq: stored.seq,
                body: stored.body,
                file: stored.file,
                thread: Some(thread),
            }),
            Err(error) => debug!(%error, "storing an anonymous message failed"),
        }
    }
}
