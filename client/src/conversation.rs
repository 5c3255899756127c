//! Conversations: sealing a message for a contact and opening what arrives,
//! with the sessions of the profile.
//!
//! Sealing starts a PQXDH handshake when there is no session yet; until the
//! contact answers, every message carries the handshake header and the
//! sender's card (inside the encryption), so a contact who did not know the
//! sender can answer. Opening tries the sessions held for each contact, and
//! otherwise answers a handshake. Sessions are saved before a sealed
//! message leaves and only after an arriving one authenticates: forged or
//! replayed input changes nothing.

use aegis_proto::{Address, ContactId};
use rand::CryptoRng;
use tracing::debug;

use crate::card::ContactCard;
use crate::edge::EdgeError;
use crate::edge::pqxdh::{InitialHeader, initiate, respond};
use crate::edge::ratchet::Session;
use crate::envelope::{Content, Envelope};
use crate::profile::{ContactRecord, Profile, ProfileError, contact_id_of};

/// Why a message could not be sealed.
#[derive(Debug, thiserror::Error)]
pub enum SealError {
    /// The profile could not be read or written.
    #[error(transparent)]
    Profile(#[from] ProfileError),
    /// The contact is not in the profile.
    #[error("unknown contact")]
    UnknownContact,
    /// The handshake or the ratchet refused.
    #[error(transparent)]
    Edge(#[from] EdgeError),
}

/// A message opened for the application.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Opened {
    /// From whom.
    pub from: ContactId,
    /// The contact's name.
    pub name: String,
    /// Whether the sender was not a contact before this message.
    pub new_contact: bool,
    /// The content.
    pub content: Content,
}

/// Where a contact's packets go, from its card.
pub fn address_of(card: &ContactCard) -> Address {
    Address {
        gateway: card.gateway,
        mailbox: card.mailbox,
        mailbox_key: card.mailbox_key,
    }
}

/// Seals `content` for `contact`: the envelope to queue and the contact's
/// address. The session advances (and is saved) before the message leaves.
pub fn seal<R: CryptoRng + ?Sized>(
    rng: &mut R,
    profile: &Profile,
    contact: &ContactId,
    mut content: Content,
) -> Result<(Vec<u8>, Address), SealError> {
    let mut record = profile.contact(contact)?.ok_or(SealError::UnknownContact)?;
    let card = ContactCard::decode(&record.card).map_err(ProfileError::from)?;
    let mut sessions = profile.sessions(contact)?;
    if sessions.is_empty() {
        let (header, secret) = initiate(rng, &profile.identity, &card.bundle)?;
        let session = Session::initiator(rng, &secret, &card.bundle.signed_prekey.key)?;
        let mut encoded = Vec::new();
        header.encode(&mut encoded);
        record.initial_header = Some(encoded);
        record.confirmed = false;
        sessions.push(session);
    }
    if !record.confirmed {
        content.card = Some(profile.card().encode());
    }
    let message = sessions[0].encrypt(rng, &content.encode())?;
    let envelope = match (&record.initial_header, record.confirmed) {
        (Some(header), false) => Envelope::encode_initial(header, &message),
        _ => Envelope::Ratchet { message }.encode(),
    };
    profile.put_sessions(contact, &record, &sessions)?;
    Ok((envelope, address_of(&card)))
}

/// Every contact's address, for messages restored from a saved outbox.
pub fn addresses(profile: &Profile) -> Vec<(ContactId, Address)> {
    let Ok(contacts) = profile.contacts() else {
        return Vec::new();
    };
    contacts
        .into_iter()
        .filter_map(|(id, record)| {
            let card = ContactCard::decode(&record.card).ok()?;
            Some((id, address_of(&card)))
        })
        .collect()
}

/// Opens a complete message: the sessions held first, then a handshake.
/// The session and, for a stranger, the new contact are saved; the message
/// itself is left to the caller. `None` for anything that does not
/// authenticate (it is dropped and changes nothing).
pub fn open<R: CryptoRng + ?Sized>(rng: &mut R, profile: &Profile, bytes: &[u8]) -> Option<Opened> {
    let envelope = match Envelope::decode(bytes) {
        Ok(e) => e,
        Err(error) => {
            debug!(%error, "malformed message dropped");
            return None;
        }
    };
    let message = match &envelope {
        Envelope::Initial { message, .. } | Envelope::Ratchet { message } => message.clone(),
    };
    for (id, mut record) in profile.contacts().ok()? {
        let Ok(mut sessions) = profile.sessions(&id) else {
            continue;
        };
        let decrypted = sessions
            .iter_mut()
            .find_map(|s| s.decrypt(rng, &message).ok());
        if let Some(plaintext) = decrypted {
            record.confirmed |= matches!(envelope, Envelope::Ratchet { .. });
            if let Envelope::Initial { header, .. } = &envelope {
                record.note_ephemeral(header.ephemeral);
            }
            return accept(profile, id, record, sessions, &plaintext, false, false);
        }
    }
    let Envelope::Initial { header, message } = envelope else {
        debug!("message for no known session dropped");
        return None;
    };
    answer_handshake(rng, profile, &header, &message)
}

/// A first message from someone whose handshake we have not answered.
fn answer_handshake<R: CryptoRng + ?Sized>(
    rng: &mut R,
    profile: &Profile,
    header: &InitialHeader,
    message: &[u8],
) -> Option<Opened> {
    let from = contact_id_of(&header.identity.signing);
    let existing = profile.contact(&from).ok().flatten();
    if existing
        .as_ref()
        .is_some_and(|r| r.seen_ephemerals.contains(&header.ephemeral))
    {
        debug!("replayed handshake dropped");
        return None;
    }
    let Ok(secret) = respond(
        &profile.identity,
        &profile.signed_prekey,
        &profile.pq_prekey,
        header,
    ) else {
        debug!("handshake refused");
        return None;
    };
    let mut session = Session::responder(&secret, &profile.signed_prekey);
    let mut sessions = profile.sessions(&from).unwrap_or_default();
    let Ok(plaintext) = session.decrypt(rng, message) else {
        debug!("first message did not decrypt");
        return None;
    };
    let content = Content::decode(&plaintext).ok()?;
    let Some(card) = content
        .card
        .as_deref()
        .and_then(|c| ContactCard::decode(c).ok())
    else {
        debug!("first message without a valid card dropped");
        return None;
    };
    if contact_id_of(&card.bundle.identity.signing) != from {
        debug!("card of another identity dropped");
        return None;
    }
    let is_new = existing.is_none();
    let mut record = existing.unwrap_or_else(|| ContactRecord {
        name: format!("contact-{}", hex_prefix(&from.0)),
        card: card.encode(),
        confirmed: false,
        initial_header: None,
        seen_ephemerals: Vec::new(),
    });
    record.card = card.encode();
    // Their handshake replaces ours: answer in their session.
    record.initial_header = None;
    record.confirmed = true;
    record.note_ephemeral(header.ephemeral);
    // Their handshake's session becomes the active one; ours (if both
    // started at once) stays to decrypt what they send in it.
    sessions.insert(0, session);
    accept(profile, from, record, sessions, &plaintext, true, is_new)
}

/// Saves the sessions (and a newer card the message carried) and hands the
/// content back.
fn accept(
    profile: &Profile,
    id: ContactId,
    mut record: ContactRecord,
    sessions: Vec<Session>,
    plaintext: &[u8],
    card_checked: bool,
    new_contact: bool,
) -> Option<Opened> {
    let content = Content::decode(plaintext).ok()?;
    if !card_checked
        && let Some(card) = content
            .card
            .as_deref()
            .and_then(|c| ContactCard::decode(c).ok())
        && contact_id_of(&card.bundle.identity.signing) == id
    {
        record.card = card.encode();
    }
    if let Err(error) = profile.put_sessions(&id, &record, &sessions) {
        tracing::warn!(%error, "saving the session failed");
        return None;
    }
    Some(Opened {
        from: id,
        name: record.name,
        new_contact,
        content,
    })
}

fn hex_prefix(bytes: &[u8]) -> String {
    bytes.iter().take(4).map(|b| format!("{b:02x}")).collect()
}
