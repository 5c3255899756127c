//! What the profile keeps per contact and per message, with the older
//! record layouts it still reads.

use super::*;

/// Where someone stands with the user.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub enum ContactState {
    /// Added from their card, or accepted: messages are shown and can be
    /// sent.
    Contact,
    /// Wrote first and is not accepted yet: their messages are kept (at
    /// most [`MAX_REQUEST_MESSAGES`]), nothing is sent to them.
    Request,
    /// Blocked: their messages are acknowledged (so their client stops
    /// retrying) and dropped unread.
    Blocked,
}

impl ContactState {
    /// A word for people.
    pub fn word(self) -> &'static str {
        match self {
            ContactState::Contact => "a contact",
            ContactState::Request => "a contact request",
            ContactState::Blocked => "blocked",
        }
    }
}

/// What the profile keeps about a contact.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct ContactRecord {
    /// The name the user gave (or the card's short fingerprint for
    /// contacts who wrote first).
    pub name: String,
    /// Their card.
    pub card: String,
    /// Whether they have written to us in the current session (until then
    /// our messages carry the handshake and our card).
    pub confirmed: bool,
    /// The encoded handshake header to repeat until confirmed.
    pub initial_header: Option<Vec<u8>>,
    /// Handshake ephemerals already answered (replay protection).
    pub seen_ephemerals: Vec<[u8; 32]>,
    /// Contact, request or blocked.
    pub state: ContactState,
    /// Whether the user compared the safety number with them (reset if
    /// their identity could change; it cannot under one contact id).
    pub verified: bool,
    /// Unix milliseconds when they were added or first wrote.
    pub added_ms: u64,
    /// The newest version of our card they acknowledged receiving.
    pub card_known: u32,
    /// The newest version of our card queued for them as a card update.
    pub card_announced: u32,
}

/// A contact record as profiles before contact requests kept it.
#[derive(Deserialize)]
pub(super) struct ContactRecordV1 {
    name: String,
    card: String,
    confirmed: bool,
    initial_header: Option<Vec<u8>>,
    seen_ephemerals: Vec<[u8; 32]>,
}

impl ContactRecord {
    /// A new record for someone with this card.
    pub fn new(name: String, card: String, state: ContactState, added_ms: u64) -> ContactRecord {
        ContactRecord {
            name,
            card,
            confirmed: false,
            initial_header: None,
            seen_ephemerals: Vec::new(),
            state,
            verified: false,
            added_ms,
            card_known: 0,
            card_announced: 0,
        }
    }

    /// Decodes a stored record, also in the format before contact
    /// requests (those were all contacts).
    pub(super) fn decode(bytes: &[u8]) -> Option<ContactRecord> {
        if let Ok(record) = postcard::from_bytes::<ContactRecord>(bytes) {
            return Some(record);
        }
        let old: ContactRecordV1 = postcard::from_bytes(bytes).ok()?;
        Some(ContactRecord {
            name: old.name,
            card: old.card,
            confirmed: old.confirmed,
            initial_header: old.initial_header,
            seen_ephemerals: old.seen_ephemerals,
            state: ContactState::Contact,
            verified: false,
            added_ms: 0,
            card_known: 0,
            card_announced: 0,
        })
    }

    /// Remembers a handshake ephemeral; false if it was seen before.
    pub fn note_ephemeral(&mut self, ephemeral: [u8; 32]) -> bool {
        if self.seen_ephemerals.contains(&ephemeral) {
            return false;
        }
        if self.seen_ephemerals.len() >= MAX_SEEN_EPHEMERALS {
            self.seen_ephemerals.remove(0);
        }
        self.seen_ephemerals.push(ephemeral);
        true
    }
}

/// A received message as stored.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct StoredMessage {
    /// Its sequence number in this profile.
    pub seq: u64,
    /// Who sent it.
    pub contact: ContactId,
    /// Whether it is a signalling message (call set-up) rather than a message.
    pub signal: bool,
    /// Unix milliseconds when it was received (or, for one the user
    /// sent, queued).
    pub received_ms: u64,
    /// Its content.
    pub body: Vec<u8>,
    /// For a message the user sent: its id and latest status.
    pub sent: Option<SentMessage>,
    /// For a file: its name and type (the body is the file's bytes).
    pub file: Option<FileMeta>,
    /// For a message of an anonymous thread: the thread. Its writer is
    /// then `contact` only if that is [`super::thread_contact`] of it (we
    /// received or answered an anonymous message); otherwise we wrote
    /// anonymously to `contact`, or it is their reply.
    pub thread: Option<[u8; 16]>,
}

/// What the history keeps of a message the user sent.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct SentMessage {
    /// The id `send` returned.
    pub local_id: LocalId,
    /// Its latest status.
    pub status: MessageStatus,
    /// The version of our card it carried, if any (once delivered, the
    /// contact has that card).
    pub card_version: Option<u32>,
}

/// A message as profiles before files kept it.
#[derive(Deserialize)]
pub(super) struct StoredMessageV2 {
    seq: u64,
    contact: ContactId,
    signal: bool,
    received_ms: u64,
    body: Vec<u8>,
    sent: Option<SentMessage>,
}

/// A received message as profiles before sent messages kept it.
#[derive(Deserialize)]
pub(super) struct StoredMessageV1 {
    seq: u64,
    contact: ContactId,
    signal: bool,
    received_ms: u64,
    body: Vec<u8>,
}

impl StoredMessage {
    /// Decodes a record of this or an earlier form (each form ends with
    /// a field the one before lacks, so a shorter record never decodes as
    /// a longer form).
    pub(super) fn decode(bytes: &[u8]) -> Option<StoredMessage> {
        if let Ok(message) = postcard::from_bytes::<StoredMessage>(bytes) {
            return Some(message);
        }
        if let Ok(old) = postcard::from_bytes::<StoredMessageV2>(bytes) {
            return Some(StoredMessage {
                seq: old.seq,
                contact: old.contact,
                signal: old.signal,
                received_ms: old.received_ms,
                body: old.body,
                sent: old.sent,
                file: None,
                thread: None,
            });
        }
        let old: StoredMessageV1 = postcard::from_bytes(bytes).ok()?;
        Some(StoredMessage {
            seq: old.seq,
            contact: old.contact,
            signal: old.signal,
            received_ms: old.received_ms,
            body: old.body,
            sent: None,
            file: None,
            thread: None,
        })
    }
}
