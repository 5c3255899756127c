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
//!
//! Someone who writes first becomes a contact request, not a contact: at
//! most [`MAX_REQUESTS`] are kept, nothing is sent to them until the user
//! accepts, and a blocked contact's handshakes are not answered.

use aegis_mix_packet::Geometry;
use aegis_proto::{Address, ContactId};
use rand::CryptoRng;
use tracing::debug;

use crate::card::ContactCard;
use crate::edge::EdgeError;
use crate::edge::pqxdh::{InitialHeader, Version, initiate, respond};
use crate::edge::ratchet::Session;
use crate::envelope::{Content, Envelope, pq_budget};
use crate::profile::{
    ContactRecord, ContactState, MAX_REQUESTS, Profile, ProfileError, contact_id_of,
};

/// Why a message could not be sealed.
#[derive(Debug, thiserror::Error)]
pub enum SealError {
    /// The profile could not be read or written.
    #[error(transparent)]
    Profile(#[from] ProfileError),
    /// The contact is not in the profile.
    #[error("unknown contact")]
    UnknownContact,
    /// The contact is a request or blocked.
    #[error("{0} is {1}; accept them first")]
    NotAccepted(String, &'static str),
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
    /// Whether the sender was unknown before this message (they are a
    /// contact request now).
    pub new_contact: bool,
    /// Where the sender stands: a blocked sender's message is to be
    /// dropped, a request's kept within limits.
    pub state: ContactState,
    /// Whether the message brought a card different from the one held
    /// (a new gateway or new prekeys): the contact's address may change.
    pub card_changed: bool,
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

/// A message sealed for a contact.
#[derive(Debug)]
pub struct Sealed {
    /// The envelope to queue.
    pub envelope: Vec<u8>,
    /// Where it goes.
    pub address: Address,
    /// The version of our card it carries, if it carries one.
    pub card_version: Option<u32>,
}

/// Seals `content` for `contact` on a network of `geometry` (whose
/// fragment size bounds the post-quantum section). The session advances (and is saved)
/// before the message leaves. Our card rides along (inside the encryption)
/// until the contact has answered in the session, and after our card
/// changed until a message carrying the new one was delivered.
pub fn seal<R: CryptoRng + ?Sized>(
    rng: &mut R,
    profile: &Profile,
    contact: &ContactId,
    mut content: Content,
    geometry: &Geometry,
) -> Result<Sealed, SealError> {
    let mut record = profile.contact(contact)?.ok_or(SealError::UnknownContact)?;
    if record.state != ContactState::Contact {
        return Err(SealError::NotAccepted(record.name, record.state.word()));
    }
    let card = ContactCard::decode(&record.card).map_err(ProfileError::from)?;
    let mut sessions = profile.sessions(contact)?;
    // A session of an older version (made before this one) is replaced by
    // a new handshake once it is established: the contact answers in the
    // new session, and the old one stays to read what was already sent in
    // it. So conversations gain the post-quantum ratchet without either
    // side doing anything.
    let outdated = record.confirmed
        && sessions
            .first()
            .is_some_and(|s| s.version() != Version::LATEST);
    if sessions.is_empty() || outdated {
        let (header, secret) = initiate(rng, &profile.identity, &card.bundle)?;
        let session = Session::initiator(rng, &secret, &card.bundle.signed_prekey.key)?;
        let mut encoded = Vec::new();
        header.encode(&mut encoded);
        record.initial_header = Some(encoded);
        record.confirmed = false;
        sessions.insert(0, session);
    }
    let version = profile.card_version()?;
    let card_version = (!record.confirmed || record.card_known < version).then_some(version);
    if card_version.is_some() {
        content.card = Some(profile.card().encode());
    }
    let plaintext = content.encode();
    let initial = match (&record.initial_header, record.confirmed) {
        (Some(header), false) => Some(header.as_slice()),
        _ => None,
    };
    // The envelope's length without post-quantum shards; the shards then
    // take what the last fragment would leave empty, so they never make
    // the message a fragment longer.
    let bare = 1 + initial.map_or(0, <[u8]>::len) + sessions[0].overhead() + plaintext.len();
    let budget = pq_budget(geometry, bare);
    let message = sessions[0].encrypt(rng, &plaintext, budget)?;
    let envelope = match initial {
        Some(header) => Envelope::encode_initial(sessions[0].version(), header, &message),
        None => Envelope::Ratchet { message }.encode(),
    };
    profile.put_sessions(contact, &record, &sessions)?;
    Ok(Sealed {
        envelope,
        address: address_of(&card),
        card_version,
    })
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
    match &existing {
        Some(r) if r.seen_ephemerals.contains(&header.ephemeral) => {
            debug!("replayed handshake dropped");
            return None;
        }
        Some(r) if r.state == ContactState::Blocked => {
            debug!("handshake from a blocked contact dropped");
            return None;
        }
        None if requests(profile) >= MAX_REQUESTS => {
            debug!("handshake from a stranger dropped: too many contact requests");
            let _ = profile.count_request_dropped();
            return None;
        }
        _ => {}
    }
    let Some((signed_prekey, pq_prekey)) =
        profile.prekeys(header.signed_prekey_id, header.pq_prekey_id)
    else {
        debug!("handshake to prekeys no longer held dropped");
        return None;
    };
    let Ok(secret) = respond(&profile.identity, signed_prekey, pq_prekey, header) else {
        debug!("handshake refused");
        return None;
    };
    let mut session = Session::responder(rng, &secret, signed_prekey);
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
    let mut record = existing.unwrap_or_else(|| {
        ContactRecord::new(
            format!("request-{}", hex_prefix(&from.0)),
            card.encode(),
            ContactState::Request,
            aegis_directory::api::unix_now_ms(),
        )
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
    let held = record.card.clone();
    if !card_checked
        && let Some(card) = content
            .card
            .as_deref()
            .and_then(|c| ContactCard::decode(c).ok())
        && contact_id_of(&card.bundle.identity.signing) == id
    {
        record.card = card.encode();
    }
    let card_changed = record.card != held;
    if let Err(error) = profile.put_sessions(&id, &record, &sessions) {
        tracing::warn!(%error, "saving the session failed");
        return None;
    }
    Some(Opened {
        from: id,
        name: record.name,
        new_contact,
        state: record.state,
        card_changed,
        content,
    })
}

/// Contact requests held now.
fn requests(profile: &Profile) -> usize {
    profile.contacts().map_or(usize::MAX, |contacts| {
        contacts
            .iter()
            .filter(|(_, r)| r.state == ContactState::Request)
            .count()
    })
}

fn hex_prefix(bytes: &[u8]) -> String {
    bytes.iter().take(4).map(|b| format!("{b:02x}")).collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::profile::tests::profile;

    /// Seals for a network of the standard geometry.
    fn seal_standard(
        rng: &mut rand::rngs::ThreadRng,
        profile: &Profile,
        contact: &ContactId,
        content: Content,
    ) -> Result<Sealed, SealError> {
        seal(rng, profile, contact, content, &Geometry::STANDARD)
    }

    fn text(body: &str) -> Content {
        Content::new(false, body.as_bytes().to_vec())
    }

    #[test]
    fn a_stranger_is_a_request_until_accepted() {
        let dir = tempfile::tempdir().unwrap();
        let mut rng = rand::rng();
        let (alice, bob) = (profile(dir.path(), "a"), profile(dir.path(), "b"));
        let bob_id = alice.add_contact("bob", &bob.card().encode()).unwrap();
        let envelope = seal_standard(&mut rng, &alice, &bob_id, text("hi"))
            .unwrap()
            .envelope;
        let opened = open(&mut rng, &bob, &envelope).unwrap();
        assert!(opened.new_contact);
        assert_eq!(opened.state, ContactState::Request);
        assert!(opened.name.starts_with("request-"), "{}", opened.name);
        // Nothing goes to a request: not even an answer that would show
        // the stranger this profile is read.
        assert!(matches!(
            seal_standard(&mut rng, &bob, &opened.from, text("who?")),
            Err(SealError::NotAccepted(..))
        ));
        // Their next message comes through the session, still a request.
        let again = seal_standard(&mut rng, &alice, &bob_id, text("it's alice"))
            .unwrap()
            .envelope;
        let opened = open(&mut rng, &bob, &again).unwrap();
        assert_eq!(
            (opened.state, opened.new_contact),
            (ContactState::Request, false)
        );
        bob.accept_contact(&opened.name, Some("alice")).unwrap();
        let reply = seal_standard(&mut rng, &bob, &opened.from, text("hello alice"))
            .unwrap()
            .envelope;
        let at_alice = open(&mut rng, &alice, &reply).unwrap();
        assert_eq!(at_alice.state, ContactState::Contact);
        assert_eq!(at_alice.content.body, b"hello alice");
    }

    #[test]
    fn a_blocked_contact_is_recognised_and_its_new_handshakes_are_not_answered() {
        let dir = tempfile::tempdir().unwrap();
        let mut rng = rand::rng();
        let (mallory, bob) = (profile(dir.path(), "m"), profile(dir.path(), "b"));
        let bob_id = mallory.add_contact("bob", &bob.card().encode()).unwrap();
        let first = seal_standard(&mut rng, &mallory, &bob_id, text("spam"))
            .unwrap()
            .envelope;
        let name = open(&mut rng, &bob, &first).unwrap().name;
        bob.block_contact(&name).unwrap();
        let second = seal_standard(&mut rng, &mallory, &bob_id, text("more spam"))
            .unwrap()
            .envelope;
        assert_eq!(
            open(&mut rng, &bob, &second).unwrap().state,
            ContactState::Blocked,
            "the driver drops it"
        );
        // A fresh handshake (Mallory starts over) is not even answered.
        mallory.remove_contact("bob").unwrap();
        mallory.add_contact("bob", &bob.card().encode()).unwrap();
        let fresh = seal_standard(&mut rng, &mallory, &bob_id, text("hi again"))
            .unwrap()
            .envelope;
        assert!(open(&mut rng, &bob, &fresh).is_none());
    }

    #[test]
    fn strangers_beyond_the_request_limit_are_dropped_and_counted() {
        let dir = tempfile::tempdir().unwrap();
        let mut rng = rand::rng();
        let (alice, bob) = (profile(dir.path(), "a"), profile(dir.path(), "b"));
        let card = alice.card().encode();
        for i in 0..MAX_REQUESTS {
            let record = ContactRecord::new(
                format!("request-{i}"),
                card.clone(),
                ContactState::Request,
                0,
            );
            bob.put_contact(&ContactId([i as u8; 16]), &record).unwrap();
        }
        let bob_id = alice.add_contact("bob", &bob.card().encode()).unwrap();
        let envelope = seal_standard(&mut rng, &alice, &bob_id, text("hi"))
            .unwrap()
            .envelope;
        assert!(open(&mut rng, &bob, &envelope).is_none());
        assert_eq!(bob.requests_dropped().unwrap(), 1);
        // Accepting one makes room.
        bob.accept_contact("request-0", None).unwrap();
        assert!(open(&mut rng, &bob, &envelope).is_some());
    }

    /// Alice and Bob, each the other's contact, with a session both ways.
    #[test]
    fn a_session_of_version_1_is_replaced_by_one_of_version_2() {
        use crate::edge::pqxdh::initiate_version;
        let dir = tempfile::tempdir().unwrap();
        let mut rng = rand::rng();
        let (alice, bob, bob_id, alice_id) = talking(dir.path());
        // Put the two back on a version-1 session, as profiles written
        // before version 2 hold them.
        let card = ContactCard::decode(&alice.contact(&bob_id).unwrap().unwrap().card).unwrap();
        let (header, a) =
            initiate_version(&mut rng, &alice.identity, &card.bundle, Version::V1).unwrap();
        let (spk, pq) = bob
            .prekeys(header.signed_prekey_id, header.pq_prekey_id)
            .unwrap();
        let b = respond(&bob.identity, spk, pq, &header).unwrap();
        let mut a = Session::initiator(&mut rng, &a, &card.bundle.signed_prekey.key).unwrap();
        let mut b = Session::responder(&mut rng, &b, spk);
        let first = a.encrypt(&mut rng, b"", 0).unwrap();
        b.decrypt(&mut rng, &first).unwrap();
        let record = |p: &Profile, id| p.contact(id).unwrap().unwrap();
        alice
            .put_sessions(&bob_id, &record(&alice, &bob_id), &[a])
            .unwrap();
        bob.put_sessions(&alice_id, &record(&bob, &alice_id), &[b])
            .unwrap();
        // A message still sealed in version 1 before the upgrade...
        let old = {
            let mut sessions = bob.sessions(&alice_id).unwrap();
            let message = sessions[0]
                .encrypt(&mut rng, &text("late").encode(), 0)
                .unwrap();
            bob.put_sessions(&alice_id, &record(&bob, &alice_id), &sessions)
                .unwrap();
            Envelope::Ratchet { message }.encode()
        };
        // ...then Alice writes: a new handshake of version 2.
        let up = seal_standard(&mut rng, &alice, &bob_id, text("upgraded")).unwrap();
        assert_eq!(up.envelope[0], 0x05, "a version-2 handshake");
        let opened = open(&mut rng, &bob, &up.envelope).unwrap();
        assert_eq!(opened.content.body, b"upgraded");
        assert!(!opened.new_contact);
        assert_eq!(bob.sessions(&alice_id).unwrap()[0].version(), Version::V2);
        let back = seal_standard(&mut rng, &bob, &alice_id, text("in version 2")).unwrap();
        assert_eq!(back.envelope[0], 0x02);
        assert_eq!(
            open(&mut rng, &alice, &back.envelope).unwrap().content.body,
            b"in version 2"
        );
        let sessions = alice.sessions(&bob_id).unwrap();
        assert_eq!(sessions[0].version(), Version::V2);
        assert!(alice.contact(&bob_id).unwrap().unwrap().confirmed);
        // The old session still reads what was sent in it.
        assert_eq!(open(&mut rng, &alice, &old).unwrap().content.body, b"late");
        // And no further handshake: Alice's next message is a ratchet one.
        let next = seal_standard(&mut rng, &alice, &bob_id, text("and on")).unwrap();
        assert_eq!(next.envelope[0], 0x02);
    }

    fn talking(dir: &std::path::Path) -> (Profile, Profile, ContactId, ContactId) {
        let mut rng = rand::rng();
        let (alice, bob) = (profile(dir, "a"), profile(dir, "b"));
        let bob_id = alice.add_contact("bob", &bob.card().encode()).unwrap();
        let alice_id = bob.add_contact("alice", &alice.card().encode()).unwrap();
        let hello = seal_standard(&mut rng, &alice, &bob_id, text("hello")).unwrap();
        open(&mut rng, &bob, &hello.envelope).unwrap();
        let back = seal_standard(&mut rng, &bob, &alice_id, text("hi")).unwrap();
        assert_eq!(back.card_version, None, "Bob answers in Alice's session");
        open(&mut rng, &alice, &back.envelope).unwrap();
        (alice, bob, bob_id, alice_id)
    }

    #[test]
    fn a_moved_gateway_reaches_contacts_in_a_card_update_until_one_is_delivered() {
        let dir = tempfile::tempdir().unwrap();
        let mut rng = rand::rng();
        let (alice, mut bob, bob_id, alice_id) = talking(dir.path());
        let new_gateway = aegis_mix_packet::NodeId([9; 32]);
        bob.move_gateway(new_gateway).unwrap();
        assert_eq!(bob.card_version().unwrap(), 1);
        assert_eq!(bob.card_updates_due().unwrap(), vec![alice_id]);
        let update = Content {
            kind: crate::envelope::ContentKind::CardUpdate,
            card: None,
            body: Vec::new(),
        };
        let sealed = seal_standard(&mut rng, &bob, &alice_id, update).unwrap();
        assert_eq!(sealed.card_version, Some(1));
        bob.note_card_update(alice_id, aegis_proto::LocalId(7), 1)
            .unwrap();
        assert!(bob.card_updates_due().unwrap().is_empty(), "queued once");
        let at_alice = open(&mut rng, &alice, &sealed.envelope).unwrap();
        assert!(at_alice.card_changed);
        assert_eq!(
            at_alice.content.kind,
            crate::envelope::ContentKind::CardUpdate
        );
        let card = ContactCard::decode(&alice.contact(&bob_id).unwrap().unwrap().card).unwrap();
        assert_eq!(
            card.gateway, new_gateway,
            "Alice now writes to the new gateway"
        );
        // Until delivered, every message carries the card; a failed update
        // is queued again.
        assert_eq!(
            seal_standard(&mut rng, &bob, &alice_id, text("x"))
                .unwrap()
                .card_version,
            Some(1)
        );
        bob.note_status(aegis_proto::LocalId(7), aegis_proto::MessageStatus::Failed)
            .unwrap();
        assert_eq!(bob.card_updates_due().unwrap(), vec![alice_id]);
        bob.note_card_update(alice_id, aegis_proto::LocalId(8), 1)
            .unwrap();
        bob.note_status(
            aegis_proto::LocalId(8),
            aegis_proto::MessageStatus::Delivered,
        )
        .unwrap();
        assert_eq!(bob.contact(&alice_id).unwrap().unwrap().card_known, 1);
        assert_eq!(
            seal_standard(&mut rng, &bob, &alice_id, text("y"))
                .unwrap()
                .card_version,
            None,
            "once Alice has the card, messages go without it"
        );
    }

    #[test]
    fn prekeys_rotate_and_retired_ones_answer_until_their_grace_ends() {
        let dir = tempfile::tempdir().unwrap();
        let mut rng = rand::rng();
        let (alice, carol, mut bob) = (
            profile(dir.path(), "a"),
            profile(dir.path(), "c"),
            profile(dir.path(), "b"),
        );
        let old_card = bob.card().encode();
        let policy = crate::profile::PrekeyRotation::default();
        let day = 24 * 3_600_000;
        let now = aegis_directory::api::unix_now_ms();
        assert!(!bob.rotate_prekeys(&mut rng, now + day, policy).unwrap());
        assert!(bob.rotate_prekeys(&mut rng, now + 8 * day, policy).unwrap());
        assert_eq!(bob.card_version().unwrap(), 1);
        assert_ne!(bob.card().encode(), old_card, "new prekeys, new card");
        // Reopened, the profile holds the same keys.
        let path = dir.path().join("b");
        drop(bob);
        let mut bob = Profile::open(&path, b"passphrase").unwrap();
        assert_eq!(bob.signed_prekey.id, 2);
        assert!(bob.prekeys(1, 1).is_some(), "the retired ones are kept");
        // A card from before the rotation still starts a session.
        let bob_at_alice = alice.add_contact("bob", &old_card).unwrap();
        let first = seal_standard(&mut rng, &alice, &bob_at_alice, text("old card")).unwrap();
        assert!(open(&mut rng, &bob, &first.envelope).is_some());
        // After the grace period the retired private keys are gone.
        assert!(
            bob.rotate_prekeys(&mut rng, now + 40 * day, policy)
                .unwrap()
        );
        assert!(bob.prekeys(1, 1).is_none());
        let bob_at_carol = carol.add_contact("bob", &old_card).unwrap();
        let late = seal_standard(&mut rng, &carol, &bob_at_carol, text("too late")).unwrap();
        assert!(open(&mut rng, &bob, &late.envelope).is_none());
    }
}
