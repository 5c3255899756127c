//! The history: received and sent messages, their status, and deleting
//! them.

use super::*;

impl Profile {
    /// Stores a received message of `kind` (a file's name and type are
    /// kept apart from its bytes); returns it with its sequence number.
    pub fn store_message(
        &self,
        contact: ContactId,
        kind: ContentKind,
        received_ms: u64,
        body: Vec<u8>,
    ) -> Result<StoredMessage, ProfileError> {
        self.append(contact, kind, received_ms, body, None, None)
    }

    /// Stores a message of an anonymous thread (received, or sent with
    /// `sent` as its id).
    pub fn store_in_thread(
        &self,
        contact: ContactId,
        thread: [u8; 16],
        kind: ContentKind,
        time_ms: u64,
        body: Vec<u8>,
        sent: Option<LocalId>,
    ) -> Result<StoredMessage, ProfileError> {
        let sent = sent.map(|local_id| SentMessage {
            local_id,
            status: MessageStatus::Queued,
            card_version: None,
        });
        self.append(contact, kind, time_ms, body, sent, Some(thread))
    }

    /// Records a message the user sent (status `Queued`), so the history
    /// shows both sides; [`Profile::note_status`] follows it.
    /// `card_version` is the version of our card it carried, if any.
    pub fn store_sent(
        &self,
        contact: ContactId,
        kind: ContentKind,
        queued_ms: u64,
        body: Vec<u8>,
        local_id: LocalId,
        card_version: Option<u32>,
    ) -> Result<StoredMessage, ProfileError> {
        let sent = SentMessage {
            local_id,
            status: MessageStatus::Queued,
            card_version,
        };
        self.append(contact, kind, queued_ms, body, Some(sent), None)
    }

    fn append(
        &self,
        contact: ContactId,
        kind: ContentKind,
        received_ms: u64,
        body: Vec<u8>,
        sent: Option<SentMessage>,
        thread: Option<[u8; 16]>,
    ) -> Result<StoredMessage, ProfileError> {
        let (file, body) = match kind {
            ContentKind::File => {
                let (meta, data) = FileMeta::decode_body(&body)?;
                (Some(meta), data.to_vec())
            }
            _ => (None, body),
        };
        let seq = self
            .store
            .get(Namespace::Meta, NEXT_MESSAGE)?
            .and_then(|b| <[u8; 8]>::try_from(&b[..]).ok())
            .map(u64::from_be_bytes)
            .unwrap_or(0);
        let message = StoredMessage {
            seq,
            contact,
            signal: kind == ContentKind::Signal,
            received_ms,
            body,
            sent,
            file,
            thread,
        };
        let bytes = postcard::to_stdvec(&message).map_err(|_| ProfileError::Corrupt("message"))?;
        let mut batch = Batch::new();
        batch.put(Namespace::Inbox, &seq.to_be_bytes(), &bytes).put(
            Namespace::Meta,
            NEXT_MESSAGE,
            &(seq + 1).to_be_bytes(),
        );
        if let Some(sent) = sent {
            batch.put(
                Namespace::Meta,
                &sent_index(sent.local_id),
                &seq.to_be_bytes(),
            );
        }
        self.store.write_batch(batch)?;
        Ok(message)
    }

    /// Follows a sent message's status in the history (a message deleted
    /// from the history, or sent before it kept sent messages, is
    /// skipped), and, once a message that carried our card is delivered,
    /// notes that the contact has that card.
    pub fn note_status(
        &self,
        local_id: LocalId,
        status: MessageStatus,
    ) -> Result<(), ProfileError> {
        let done = matches!(status, MessageStatus::Delivered | MessageStatus::Failed);
        let delivered = status == MessageStatus::Delivered;
        let update_key = card_update_index(local_id);
        if let Some(value) = self.store.get(Namespace::Meta, &update_key)? {
            if done {
                if let (Ok(contact), Ok(version)) = (
                    <[u8; 16]>::try_from(value.get(..16).unwrap_or_default()),
                    <[u8; 4]>::try_from(value.get(16..).unwrap_or_default()),
                ) {
                    self.card_reached(ContactId(contact), u32::from_be_bytes(version), delivered)?;
                }
                self.store.delete(Namespace::Meta, &update_key)?;
            }
            return Ok(());
        }
        let Some(seq) = self
            .store
            .get(Namespace::Meta, &sent_index(local_id))?
            .and_then(|b| <[u8; 8]>::try_from(&b[..]).ok())
        else {
            return Ok(());
        };
        let Some(mut message) = self
            .store
            .get(Namespace::Inbox, &seq)?
            .and_then(|b| StoredMessage::decode(&b))
        else {
            return Ok(());
        };
        let mut carried = None;
        if let Some(sent) = message.sent.as_mut() {
            sent.status = status;
            carried = sent.card_version;
        }
        let bytes = postcard::to_stdvec(&message).map_err(|_| ProfileError::Corrupt("message"))?;
        let mut batch = Batch::new();
        batch.put(Namespace::Inbox, &seq, &bytes);
        if done {
            batch.delete(Namespace::Meta, &sent_index(local_id));
        }
        self.store.write_batch(batch)?;
        if let (true, Some(version)) = (done, carried) {
            self.card_reached(message.contact, version, delivered)?;
        }
        Ok(())
    }

    /// One message of the history, if it is there.
    pub fn message(&self, seq: u64) -> Result<Option<StoredMessage>, ProfileError> {
        Ok(self
            .store
            .get(Namespace::Inbox, &seq.to_be_bytes())?
            .and_then(|b| StoredMessage::decode(&b)))
    }

    /// The latest status the history holds for the sent message
    /// `local_id` (`None` if it holds no such message).
    pub fn sent_status(&self, local_id: LocalId) -> Result<Option<MessageStatus>, ProfileError> {
        Ok(self
            .messages()?
            .into_iter()
            .rev()
            .find_map(|m| m.sent.filter(|s| s.local_id == local_id))
            .map(|s| s.status))
    }

    /// Every stored message, oldest first.
    pub fn messages(&self) -> Result<Vec<StoredMessage>, ProfileError> {
        let mut out: Vec<StoredMessage> = self
            .store
            .list(Namespace::Inbox)?
            .into_iter()
            .filter_map(|(_, v)| StoredMessage::decode(&v))
            .collect();
        out.sort_by_key(|m| m.seq);
        Ok(out)
    }

    /// The messages to and from one contact, oldest first.
    pub fn history(&self, contact: &ContactId) -> Result<Vec<StoredMessage>, ProfileError> {
        let mut messages = self.messages()?;
        messages.retain(|m| m.contact == *contact);
        Ok(messages)
    }

    /// How many messages from `contact` the history holds.
    pub fn received_from(&self, contact: &ContactId) -> Result<usize, ProfileError> {
        Ok(self
            .history(contact)?
            .iter()
            .filter(|m| m.sent.is_none())
            .count())
    }

    /// Deletes one message from the history; false if there was none.
    pub fn delete_message(&self, seq: u64) -> Result<bool, ProfileError> {
        let key = seq.to_be_bytes();
        let Some(message) = self
            .store
            .get(Namespace::Inbox, &key)?
            .and_then(|b| StoredMessage::decode(&b))
        else {
            return Ok(false);
        };
        let mut batch = Batch::new();
        batch.delete(Namespace::Inbox, &key);
        if let Some(sent) = message.sent {
            batch.delete(Namespace::Meta, &sent_index(sent.local_id));
        }
        self.store.write_batch(batch)?;
        Ok(true)
    }

    /// Deletes the whole history with one contact; returns how many
    /// messages went.
    pub fn delete_history(&self, contact: &ContactId) -> Result<usize, ProfileError> {
        let history = self.history(contact)?;
        for message in &history {
            self.delete_message(message.seq)?;
        }
        Ok(history.len())
    }
}
