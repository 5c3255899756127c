//! A user's profile in the encrypted store: identity, prekeys, mailbox
//! keys, the gateway, the pinned authorities, contacts and their sessions,
//! and received messages.

use std::path::Path;
use std::sync::Arc;

use aegis_mix_packet::{MailboxId, NodeId, SphinxPublicKey, SphinxSecret};
use ed25519_dalek::SigningKey;
use rand::CryptoRng;
use serde::{Deserialize, Serialize};
use sha2::{Digest as _, Sha256};
use zeroize::Zeroizing;

use crate::card::ContactCard;
use crate::edge::identity::{Identity, PqPrekey, SignedPrekey};
use crate::edge::ratchet::Session;
use crate::safety::SafetyNumber;
use crate::store::{Argon2Params, Batch, Namespace, Store, StoreError};
use aegis_proto::{ContactId, LocalId, MessageStatus};

const IDENTITY: &[u8] = b"identity";
const SIGNED_PREKEY: &[u8] = b"signed-prekey";
const PQ_PREKEY: &[u8] = b"pq-prekey";
const MAILBOX_AUTH: &[u8] = b"mailbox-auth";
const MAILBOX_SEALING: &[u8] = b"mailbox-sealing";
const GATEWAY: &[u8] = b"gateway";
const AUTHORITIES: &[u8] = b"authorities";
const NEXT_MESSAGE: &[u8] = b"next-message";
/// Prekeys retired by rotation and kept for the grace period.
const OLD_PREKEYS: &[u8] = b"old-prekeys";
/// When the current prekeys were made (Unix ms).
const PREKEYS_MADE: &[u8] = b"prekeys-made";
/// The version of the profile's own card (bumped by a gateway move or a
/// prekey rotation).
const CARD_VERSION: &[u8] = b"card-version";
/// Prefix of the index from a card update's local id to its contact and
/// card version.
const CARD_UPDATE_INDEX: &[u8] = b"card-update/";
/// Prefix of the index from a sent message's local id to its history entry.
const SENT_INDEX: &[u8] = b"sent/";
/// Messages dropped from contact requests beyond the limits.
const REQUESTS_DROPPED: &[u8] = b"requests-dropped";

/// Sessions kept per contact.
pub const MAX_SESSIONS: usize = 3;

/// Most handshake ephemerals remembered per contact (replayed first
/// messages are recognised by them).
const MAX_SEEN_EPHEMERALS: usize = 256;

/// Why a profile operation failed.
#[derive(Debug, thiserror::Error)]
pub enum ProfileError {
    /// The store refused.
    #[error(transparent)]
    Store(#[from] StoreError),
    /// A record is missing or unreadable.
    #[error("profile record {0} is missing or corrupt")]
    Corrupt(&'static str),
    /// The contact card is invalid.
    #[error(transparent)]
    Card(#[from] crate::card::CardError),
    /// No contact by that name or id.
    #[error("no contact {0}")]
    UnknownContact(String),
    /// A contact with that name exists already.
    #[error("a contact named {0} exists already")]
    DuplicateName(String),
    /// The card is the profile's own.
    #[error("that is your own card")]
    OwnCard,
    /// The digits given are not the contact's safety number.
    #[error(
        "the safety number does not match: compare it again, in person or over a channel you trust"
    )]
    SafetyNumberMismatch,
    /// The contact is a request or blocked, not a contact.
    #[error("{0} is {1}; accept them first")]
    NotAccepted(String, &'static str),
    /// An empty name, or one that only whitespace makes.
    #[error("a contact's name cannot be empty")]
    EmptyName,
}

/// Contact requests (strangers who wrote first) kept at most; a stranger
/// beyond them is dropped and counted.
pub const MAX_REQUESTS: usize = 64;

/// Messages kept from one contact request; later ones are dropped and
/// counted until the user accepts (or blocks) them.
pub const MAX_REQUEST_MESSAGES: usize = 16;

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

/// A directory authority the profile trusts (kept in the profile as its
/// URL and the 32 key bytes).
pub use aegis_directory::TrustedAuthority;

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
struct ContactRecordV1 {
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
    fn decode(bytes: &[u8]) -> Option<ContactRecord> {
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

/// A received message as profiles before sent messages kept it.
#[derive(Deserialize)]
struct StoredMessageV1 {
    seq: u64,
    contact: ContactId,
    signal: bool,
    received_ms: u64,
    body: Vec<u8>,
}

impl StoredMessage {
    fn decode(bytes: &[u8]) -> Option<StoredMessage> {
        if let Ok(message) = postcard::from_bytes::<StoredMessage>(bytes) {
            return Some(message);
        }
        let old: StoredMessageV1 = postcard::from_bytes(bytes).ok()?;
        Some(StoredMessage {
            seq: old.seq,
            contact: old.contact,
            signal: old.signal,
            received_ms: old.received_ms,
            body: old.body,
            sent: None,
        })
    }
}

/// The contact id of an identity: a hash of its signing key.
pub fn contact_id_of(identity_signing_key: &[u8; 32]) -> ContactId {
    let digest = Sha256::new()
        .chain_update(b"aegislink/contact-id/v1\0")
        .chain_update(identity_signing_key)
        .finalize();
    let mut id = [0u8; 16];
    id.copy_from_slice(&digest[..16]);
    ContactId(id)
}

/// An open profile.
pub struct Profile {
    store: Arc<Store>,
    /// The identity.
    pub identity: Identity,
    /// The current signed X25519 prekey.
    pub signed_prekey: SignedPrekey,
    /// The current signed ML-KEM-768 prekey.
    pub pq_prekey: PqPrekey,
    /// Prekeys retired by rotation, with when each was retired: handshakes
    /// to them are still answered until the grace period ends.
    old_prekeys: Vec<(SignedPrekey, PqPrekey, u64)>,
    /// When the current prekeys were made (Unix ms; 0 if unknown).
    prekeys_made_ms: u64,
    /// The key proving mailbox ownership to the gateway.
    pub mailbox_auth: SigningKey,
    /// The key packets for the mailbox are sealed to.
    pub mailbox_sealing: SphinxSecret,
    /// The gateway holding the mailbox.
    pub gateway: NodeId,
    /// The pinned authorities.
    pub authorities: Vec<TrustedAuthority>,
}

/// How often prekeys rotate and how long retired ones still answer.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct PrekeyRotation {
    /// Age at which the current prekeys are replaced (default a week).
    pub every: std::time::Duration,
    /// How long retired prekeys still answer handshakes before their
    /// private keys are erased (default four weeks): a card handed out
    /// starts sessions for at least this long after a rotation.
    pub grace: std::time::Duration,
}

impl Default for PrekeyRotation {
    fn default() -> Self {
        PrekeyRotation {
            every: std::time::Duration::from_secs(7 * 24 * 3600),
            grace: std::time::Duration::from_secs(28 * 24 * 3600),
        }
    }
}

/// Length of an encoded signed prekey (`id ‖ secret`).
const SPK_LEN: usize = 36;
/// Length of an encoded PQ prekey (`id ‖ seed`).
const PQ_LEN: usize = 68;
/// Length of an old prekeys entry (`signed ‖ pq ‖ retired_ms`).
const OLD_LEN: usize = SPK_LEN + PQ_LEN + 8;

fn encode_signed_prekey(prekey: &SignedPrekey, out: &mut Vec<u8>) {
    out.extend_from_slice(&prekey.id.to_be_bytes());
    out.extend_from_slice(prekey.secret_bytes().as_ref());
}

fn encode_pq_prekey(prekey: &PqPrekey, out: &mut Vec<u8>) {
    out.extend_from_slice(&prekey.id.to_be_bytes());
    out.extend_from_slice(prekey.seed());
}

fn decode_signed_prekey(bytes: &[u8], identity: &Identity) -> Option<SignedPrekey> {
    let bytes: &[u8; SPK_LEN] = bytes.try_into().ok()?;
    let mut secret = [0u8; 32];
    secret.copy_from_slice(&bytes[4..]);
    let id = u32::from_be_bytes([bytes[0], bytes[1], bytes[2], bytes[3]]);
    Some(SignedPrekey::from_secret(id, secret, identity))
}

fn decode_pq_prekey(bytes: &[u8], identity: &Identity) -> Option<PqPrekey> {
    let bytes: &[u8; PQ_LEN] = bytes.try_into().ok()?;
    let mut seed = Zeroizing::new([0u8; 64]);
    seed.copy_from_slice(&bytes[4..]);
    let id = u32::from_be_bytes([bytes[0], bytes[1], bytes[2], bytes[3]]);
    Some(PqPrekey::from_seed(id, &seed, identity))
}

fn read_u64(store: &Store, ns: Namespace, key: &[u8]) -> Result<u64, ProfileError> {
    Ok(store
        .get(ns, key)?
        .and_then(|b| <[u8; 8]>::try_from(&b[..]).ok())
        .map(u64::from_be_bytes)
        .unwrap_or(0))
}

fn read<const N: usize>(store: &Store, key: &'static [u8]) -> Result<[u8; N], ProfileError> {
    let value = store
        .get(Namespace::Profile, key)?
        .ok_or(ProfileError::Corrupt("profile"))?;
    <[u8; N]>::try_from(&value[..]).map_err(|_| ProfileError::Corrupt("profile"))
}

impl Profile {
    /// Creates a profile: every key generated here, on this device.
    pub fn create<R: CryptoRng + ?Sized>(
        rng: &mut R,
        path: &Path,
        passphrase: &[u8],
        params: Argon2Params,
        gateway: NodeId,
        authorities: Vec<TrustedAuthority>,
    ) -> Result<Profile, ProfileError> {
        let store = Store::create(path, passphrase, params)?;
        let identity = Identity::generate(rng);
        let signed_prekey = identity.new_signed_prekey(rng, 1);
        let pq_prekey = identity.new_pq_prekey(rng, 1);
        let mut auth = Zeroizing::new([0u8; 32]);
        rng.fill_bytes(auth.as_mut());
        let mut sealing = Zeroizing::new([0u8; 32]);
        rng.fill_bytes(sealing.as_mut());
        let mut batch = Batch::new();
        let mut spk = Zeroizing::new(Vec::with_capacity(SPK_LEN));
        encode_signed_prekey(&signed_prekey, &mut spk);
        let mut pq = Zeroizing::new(Vec::with_capacity(PQ_LEN));
        encode_pq_prekey(&pq_prekey, &mut pq);
        let authorities_bytes =
            postcard::to_stdvec(&authorities).map_err(|_| ProfileError::Corrupt("authorities"))?;
        batch
            .put(
                Namespace::Profile,
                IDENTITY,
                identity.to_secret_bytes().as_ref(),
            )
            .put(Namespace::Profile, SIGNED_PREKEY, &spk)
            .put(Namespace::Profile, PQ_PREKEY, &pq)
            .put(Namespace::Profile, MAILBOX_AUTH, auth.as_ref())
            .put(Namespace::Profile, MAILBOX_SEALING, sealing.as_ref())
            .put(Namespace::Profile, GATEWAY, &gateway.0)
            .put(Namespace::Profile, AUTHORITIES, &authorities_bytes)
            .put(
                Namespace::Profile,
                PREKEYS_MADE,
                &aegis_directory::api::unix_now_ms().to_be_bytes(),
            );
        store.write_batch(batch)?;
        drop(store);
        Profile::open(path, passphrase)
    }

    /// Opens a profile; a wrong passphrase is a clear error.
    pub fn open(path: &Path, passphrase: &[u8]) -> Result<Profile, ProfileError> {
        let store = Store::open(path, passphrase)?;
        Profile::from_store(store)
    }

    /// A profile over an open store.
    pub fn from_store(store: Store) -> Result<Profile, ProfileError> {
        let identity = Identity::from_secret_bytes(&Zeroizing::new(read::<64>(&store, IDENTITY)?));
        let corrupt = || ProfileError::Corrupt("prekeys");
        let spk = Zeroizing::new(read::<SPK_LEN>(&store, SIGNED_PREKEY)?);
        let signed_prekey = decode_signed_prekey(spk.as_ref(), &identity).ok_or_else(corrupt)?;
        let pq = Zeroizing::new(read::<PQ_LEN>(&store, PQ_PREKEY)?);
        let pq_prekey = decode_pq_prekey(pq.as_ref(), &identity).ok_or_else(corrupt)?;
        let mut old_prekeys = Vec::new();
        if let Some(old) = store.get(Namespace::Profile, OLD_PREKEYS)? {
            if old.len() % OLD_LEN != 0 {
                return Err(corrupt());
            }
            for entry in old.chunks_exact(OLD_LEN) {
                let (spk, rest) = entry.split_at(SPK_LEN);
                let (pq, retired) = rest.split_at(PQ_LEN);
                let retired = u64::from_be_bytes(retired.try_into().map_err(|_| corrupt())?);
                old_prekeys.push((
                    decode_signed_prekey(spk, &identity).ok_or_else(corrupt)?,
                    decode_pq_prekey(pq, &identity).ok_or_else(corrupt)?,
                    retired,
                ));
            }
        }
        let prekeys_made_ms = read_u64(&store, Namespace::Profile, PREKEYS_MADE)?;
        let mailbox_auth = SigningKey::from_bytes(&read::<32>(&store, MAILBOX_AUTH)?);
        let mailbox_sealing = SphinxSecret::from(read::<32>(&store, MAILBOX_SEALING)?);
        let gateway = NodeId(read::<32>(&store, GATEWAY)?);
        let authorities = store
            .get(Namespace::Profile, AUTHORITIES)?
            .and_then(|b| postcard::from_bytes(&b).ok())
            .ok_or(ProfileError::Corrupt("authorities"))?;
        Ok(Profile {
            store: Arc::new(store),
            identity,
            signed_prekey,
            pq_prekey,
            old_prekeys,
            prekeys_made_ms,
            mailbox_auth,
            mailbox_sealing,
            gateway,
            authorities,
        })
    }

    /// The prekeys a handshake names: the current ones, or retired ones
    /// still within their grace period.
    pub fn prekeys(&self, signed_id: u32, pq_id: u32) -> Option<(&SignedPrekey, &PqPrekey)> {
        if self.signed_prekey.id == signed_id && self.pq_prekey.id == pq_id {
            return Some((&self.signed_prekey, &self.pq_prekey));
        }
        self.old_prekeys
            .iter()
            .find(|(s, p, _)| s.id == signed_id && p.id == pq_id)
            .map(|(s, p, _)| (s, p))
    }

    /// Rotates the prekeys if the current ones are `policy.every` old, and
    /// erases retired ones past `policy.grace` (their records deleted and
    /// the store compacted, so the private keys leave the disk too).
    /// Returns whether the card changed (contacts are then sent the new
    /// one). A profile that does not know its prekeys' age counts them as
    /// made now.
    pub fn rotate_prekeys<R: CryptoRng + ?Sized>(
        &mut self,
        rng: &mut R,
        now_ms: u64,
        policy: PrekeyRotation,
    ) -> Result<bool, ProfileError> {
        let ms = |d: std::time::Duration| u64::try_from(d.as_millis()).unwrap_or(u64::MAX);
        if self.prekeys_made_ms == 0 {
            self.prekeys_made_ms = now_ms;
            self.store
                .put(Namespace::Profile, PREKEYS_MADE, &now_ms.to_be_bytes())?;
        }
        let before = self.old_prekeys.len();
        self.old_prekeys
            .retain(|(_, _, retired)| now_ms.saturating_sub(*retired) < ms(policy.grace));
        let erased = self.old_prekeys.len() != before;
        let rotate = now_ms.saturating_sub(self.prekeys_made_ms) >= ms(policy.every);
        if !rotate && !erased {
            return Ok(false);
        }
        let mut batch = Batch::new();
        if rotate {
            let signed = self
                .identity
                .new_signed_prekey(rng, self.signed_prekey.id.wrapping_add(1));
            let pq = self
                .identity
                .new_pq_prekey(rng, self.pq_prekey.id.wrapping_add(1));
            let old_signed = std::mem::replace(&mut self.signed_prekey, signed);
            let old_pq = std::mem::replace(&mut self.pq_prekey, pq);
            self.old_prekeys.push((old_signed, old_pq, now_ms));
            self.prekeys_made_ms = now_ms;
            let mut spk = Zeroizing::new(Vec::with_capacity(SPK_LEN));
            encode_signed_prekey(&self.signed_prekey, &mut spk);
            let mut pq = Zeroizing::new(Vec::with_capacity(PQ_LEN));
            encode_pq_prekey(&self.pq_prekey, &mut pq);
            batch
                .put(Namespace::Profile, SIGNED_PREKEY, &spk)
                .put(Namespace::Profile, PQ_PREKEY, &pq)
                .put(Namespace::Profile, PREKEYS_MADE, &now_ms.to_be_bytes())
                .put(
                    Namespace::Meta,
                    CARD_VERSION,
                    &(self.card_version()? + 1).to_be_bytes(),
                );
        }
        let mut old = Zeroizing::new(Vec::with_capacity(self.old_prekeys.len() * OLD_LEN));
        for (signed, pq, retired) in &self.old_prekeys {
            encode_signed_prekey(signed, &mut old);
            encode_pq_prekey(pq, &mut old);
            old.extend_from_slice(&retired.to_be_bytes());
        }
        batch.put(Namespace::Profile, OLD_PREKEYS, &old);
        self.store.write_batch(batch)?;
        if erased {
            self.store.purge_deleted()?;
        }
        Ok(rotate)
    }

    /// The version of the profile's own card: it changes when the gateway
    /// moves or the prekeys rotate.
    pub fn card_version(&self) -> Result<u32, ProfileError> {
        Ok(self
            .store
            .get(Namespace::Meta, CARD_VERSION)?
            .and_then(|b| <[u8; 4]>::try_from(&b[..]).ok())
            .map(u32::from_be_bytes)
            .unwrap_or(0))
    }

    /// Moves the mailbox to another gateway: the same mailbox key, at
    /// `gateway`. Contacts learn the new card through the ratchet (card
    /// updates the running client sends them); until then what they send
    /// goes to the old gateway and is retransmitted once they know.
    pub fn move_gateway(&mut self, gateway: NodeId) -> Result<(), ProfileError> {
        if gateway == self.gateway {
            return Ok(());
        }
        let mut batch = Batch::new();
        batch.put(Namespace::Profile, GATEWAY, &gateway.0).put(
            Namespace::Meta,
            CARD_VERSION,
            &(self.card_version()? + 1).to_be_bytes(),
        );
        self.store.write_batch(batch)?;
        self.gateway = gateway;
        Ok(())
    }

    /// Replaces the pinned authorities (after checking the new list
    /// against documents the old one signed).
    pub fn set_authorities(
        &mut self,
        authorities: Vec<TrustedAuthority>,
    ) -> Result<(), ProfileError> {
        let bytes =
            postcard::to_stdvec(&authorities).map_err(|_| ProfileError::Corrupt("authorities"))?;
        self.store.put(Namespace::Profile, AUTHORITIES, &bytes)?;
        self.authorities = authorities;
        Ok(())
    }

    /// Contacts whose copy of our card is older than the current one and
    /// who have no card update queued: each is to be sent one. Requests
    /// and blocked contacts are not.
    pub fn card_updates_due(&self) -> Result<Vec<ContactId>, ProfileError> {
        let version = self.card_version()?;
        Ok(self
            .contacts()?
            .into_iter()
            .filter(|(_, r)| {
                r.state == ContactState::Contact
                    && r.card_known < version
                    && r.card_announced < version
            })
            .map(|(id, _)| id)
            .collect())
    }

    /// Notes that a card update (`local_id`) carrying card `version` was
    /// queued for `contact`.
    pub fn note_card_update(
        &self,
        contact: ContactId,
        local_id: LocalId,
        version: u32,
    ) -> Result<(), ProfileError> {
        let Some(mut record) = self.contact(&contact)? else {
            return Ok(());
        };
        record.card_announced = record.card_announced.max(version);
        let mut value = contact.0.to_vec();
        value.extend_from_slice(&version.to_be_bytes());
        let record_bytes =
            postcard::to_stdvec(&record).map_err(|_| ProfileError::Corrupt("contact"))?;
        let mut batch = Batch::new();
        batch
            .put(Namespace::Contacts, &contact.0, &record_bytes)
            .put(Namespace::Meta, &card_update_index(local_id), &value);
        self.store.write_batch(batch)?;
        Ok(())
    }

    /// A message that carried card `version` to `contact` reached its end
    /// (`delivered`: they have the card; otherwise a new update is due).
    fn card_reached(
        &self,
        contact: ContactId,
        version: u32,
        delivered: bool,
    ) -> Result<(), ProfileError> {
        let Some(mut record) = self.contact(&contact)? else {
            return Ok(());
        };
        if delivered {
            record.card_known = record.card_known.max(version);
        } else if record.card_known < version {
            record.card_announced = record.card_known;
        }
        self.put_contact(&contact, &record)
    }

    /// The underlying store.
    pub fn store(&self) -> &Store {
        &self.store
    }

    /// A shared handle on the store (for its writer thread).
    pub fn store_handle(&self) -> Arc<Store> {
        Arc::clone(&self.store)
    }

    /// The mailbox id (a hash of the mailbox key).
    pub fn mailbox(&self) -> MailboxId {
        aegis_mix_packet::access::mailbox_id_for(&self.mailbox_auth.verifying_key().to_bytes())
    }

    /// The profile's own contact card.
    pub fn card(&self) -> ContactCard {
        ContactCard::new(
            &self.identity,
            &self.signed_prekey,
            &self.pq_prekey,
            self.gateway,
            self.mailbox(),
            SphinxPublicKey::from(&self.mailbox_sealing),
        )
    }

    /// This profile's contact id (as contacts see it).
    pub fn own_contact_id(&self) -> ContactId {
        contact_id_of(&self.identity.public().signing)
    }

    /// Adds a contact from a card string under `name`. A request or a
    /// blocked contact with that card becomes a contact.
    pub fn add_contact(&self, name: &str, card: &str) -> Result<ContactId, ProfileError> {
        let name = checked_name(name)?;
        let parsed = ContactCard::decode(card)?;
        let id = contact_id_of(&parsed.bundle.identity.signing);
        if id == self.own_contact_id() {
            return Err(ProfileError::OwnCard);
        }
        self.check_name_free(&name, &id)?;
        let record = match self.contact(&id)? {
            // A known contact with a new card (new address or prekeys):
            // keep the session state, take the card.
            Some(mut existing) => {
                existing.name = name;
                existing.card = parsed.encode();
                existing.state = ContactState::Contact;
                existing
            }
            None => ContactRecord::new(name, parsed.encode(), ContactState::Contact, unix_ms()),
        };
        self.put_contact(&id, &record)?;
        Ok(id)
    }

    fn check_name_free(&self, name: &str, id: &ContactId) -> Result<(), ProfileError> {
        match self.contact_by_name(name)? {
            Some((other, _)) if other != *id => Err(ProfileError::DuplicateName(name.to_owned())),
            _ => Ok(()),
        }
    }

    /// The contact named `name`, or an error saying there is none.
    pub fn named(&self, name: &str) -> Result<(ContactId, ContactRecord), ProfileError> {
        self.contact_by_name(name)?
            .ok_or_else(|| ProfileError::UnknownContact(name.to_owned()))
    }

    /// Renames a contact (or request).
    pub fn rename_contact(&self, name: &str, new_name: &str) -> Result<(), ProfileError> {
        let new_name = checked_name(new_name)?;
        let (id, mut record) = self.named(name)?;
        self.check_name_free(&new_name, &id)?;
        record.name = new_name;
        self.put_contact(&id, &record)
    }

    /// Accepts a contact request (optionally naming them): they become a
    /// contact, messages can be sent to them.
    pub fn accept_contact(&self, name: &str, new_name: Option<&str>) -> Result<(), ProfileError> {
        let (id, mut record) = self.named(name)?;
        if let Some(new_name) = new_name {
            let new_name = checked_name(new_name)?;
            self.check_name_free(&new_name, &id)?;
            record.name = new_name;
        }
        record.state = ContactState::Contact;
        self.put_contact(&id, &record)
    }

    /// Blocks a contact or request: what they send is dropped unread.
    pub fn block_contact(&self, name: &str) -> Result<(), ProfileError> {
        let (id, mut record) = self.named(name)?;
        record.state = ContactState::Blocked;
        self.put_contact(&id, &record)
    }

    /// Removes a contact with its sessions (their messages in the history
    /// stay until deleted). Writing again, they come back as a request.
    pub fn remove_contact(&self, name: &str) -> Result<ContactId, ProfileError> {
        let (id, _) = self.named(name)?;
        let mut batch = Batch::new();
        batch
            .delete(Namespace::Contacts, &id.0)
            .delete(Namespace::Sessions, &id.0);
        self.store.write_batch(batch)?;
        Ok(id)
    }

    /// The safety number with a contact: the same digits on their side
    /// when no one sits between.
    pub fn safety_number(&self, name: &str) -> Result<SafetyNumber, ProfileError> {
        let (_, record) = self.named(name)?;
        let card = ContactCard::decode(&record.card)?;
        Ok(SafetyNumber::between(
            &self.identity.public().signing,
            &card.bundle.identity.signing,
        ))
    }

    /// Marks a contact verified once the user has compared the safety
    /// number; `typed` (digits read out or scanned) must be it.
    pub fn verify_contact(&self, name: &str, typed: Option<&str>) -> Result<(), ProfileError> {
        let number = self.safety_number(name)?;
        if let Some(typed) = typed
            && !number.matches(typed)
        {
            return Err(ProfileError::SafetyNumberMismatch);
        }
        let (id, mut record) = self.named(name)?;
        record.verified = true;
        self.put_contact(&id, &record)
    }

    /// Messages dropped from contact requests beyond the limits.
    pub fn requests_dropped(&self) -> Result<u64, ProfileError> {
        Ok(self
            .store
            .get(Namespace::Meta, REQUESTS_DROPPED)?
            .and_then(|b| <[u8; 8]>::try_from(&b[..]).ok())
            .map(u64::from_be_bytes)
            .unwrap_or(0))
    }

    /// Counts a message dropped from a contact request.
    pub fn count_request_dropped(&self) -> Result<(), ProfileError> {
        let n = self.requests_dropped()? + 1;
        self.store
            .put(Namespace::Meta, REQUESTS_DROPPED, &n.to_be_bytes())?;
        Ok(())
    }

    /// A contact's record.
    pub fn contact(&self, id: &ContactId) -> Result<Option<ContactRecord>, ProfileError> {
        match self.store.get(Namespace::Contacts, &id.0)? {
            None => Ok(None),
            Some(bytes) => ContactRecord::decode(&bytes)
                .map(Some)
                .ok_or(ProfileError::Corrupt("contact")),
        }
    }

    /// Writes a contact's record.
    pub fn put_contact(&self, id: &ContactId, record: &ContactRecord) -> Result<(), ProfileError> {
        let bytes = postcard::to_stdvec(record).map_err(|_| ProfileError::Corrupt("contact"))?;
        self.store.put(Namespace::Contacts, &id.0, &bytes)?;
        Ok(())
    }

    /// Every contact, sorted by name.
    pub fn contacts(&self) -> Result<Vec<(ContactId, ContactRecord)>, ProfileError> {
        let mut out = Vec::new();
        for (key, value) in self.store.list(Namespace::Contacts)? {
            let (Ok(id), Some(record)) = (
                <[u8; 16]>::try_from(&key[..]),
                ContactRecord::decode(&value),
            ) else {
                return Err(ProfileError::Corrupt("contact"));
            };
            out.push((ContactId(id), record));
        }
        out.sort_by(|a, b| a.1.name.cmp(&b.1.name));
        Ok(out)
    }

    /// The contact named `name`.
    pub fn contact_by_name(
        &self,
        name: &str,
    ) -> Result<Option<(ContactId, ContactRecord)>, ProfileError> {
        Ok(self.contacts()?.into_iter().find(|(_, r)| r.name == name))
    }

    /// A contact's ratchet sessions, the active one (used to send) first.
    /// Several exist when both sides started a handshake at once; each
    /// side keeps the other's too, so every message still decrypts.
    pub fn sessions(&self, id: &ContactId) -> Result<Vec<Session>, ProfileError> {
        let Some(bytes) = self.store.get(Namespace::Sessions, &id.0)? else {
            return Ok(Vec::new());
        };
        let encoded: Vec<Vec<u8>> =
            postcard::from_bytes(&bytes).map_err(|_| ProfileError::Corrupt("session"))?;
        encoded
            .iter()
            .map(|b| Session::from_bytes(b).map_err(|_| ProfileError::Corrupt("session")))
            .collect()
    }

    /// Writes a contact's record and sessions together (at most
    /// [`MAX_SESSIONS`] are kept, the first being the active one).
    pub fn put_sessions(
        &self,
        id: &ContactId,
        record: &ContactRecord,
        sessions: &[Session],
    ) -> Result<(), ProfileError> {
        let record_bytes =
            postcard::to_stdvec(record).map_err(|_| ProfileError::Corrupt("contact"))?;
        let encoded: Vec<Zeroizing<Vec<u8>>> = sessions
            .iter()
            .take(MAX_SESSIONS)
            .map(|s| s.to_bytes())
            .collect();
        let plain: Vec<&[u8]> = encoded.iter().map(|b| b.as_slice()).collect();
        let sessions_bytes = Zeroizing::new(
            postcard::to_stdvec(&plain).map_err(|_| ProfileError::Corrupt("session"))?,
        );
        let mut batch = Batch::new();
        batch.put(Namespace::Contacts, &id.0, &record_bytes).put(
            Namespace::Sessions,
            &id.0,
            &sessions_bytes,
        );
        self.store.write_batch(batch)?;
        Ok(())
    }

    /// Stores a received message; returns it with its sequence number.
    pub fn store_message(
        &self,
        contact: ContactId,
        signal: bool,
        received_ms: u64,
        body: Vec<u8>,
    ) -> Result<StoredMessage, ProfileError> {
        self.append(contact, signal, received_ms, body, None)
    }

    /// Records a message the user sent (status `Queued`), so the history
    /// shows both sides; [`Profile::note_status`] follows it.
    /// `card_version` is the version of our card it carried, if any.
    pub fn store_sent(
        &self,
        contact: ContactId,
        signal: bool,
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
        self.append(contact, signal, queued_ms, body, Some(sent))
    }

    fn append(
        &self,
        contact: ContactId,
        signal: bool,
        received_ms: u64,
        body: Vec<u8>,
        sent: Option<SentMessage>,
    ) -> Result<StoredMessage, ProfileError> {
        let seq = self
            .store
            .get(Namespace::Meta, NEXT_MESSAGE)?
            .and_then(|b| <[u8; 8]>::try_from(&b[..]).ok())
            .map(u64::from_be_bytes)
            .unwrap_or(0);
        let message = StoredMessage {
            seq,
            contact,
            signal,
            received_ms,
            body,
            sent,
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

fn card_update_index(local_id: LocalId) -> Vec<u8> {
    let mut key = CARD_UPDATE_INDEX.to_vec();
    key.extend_from_slice(&local_id.0.to_be_bytes());
    key
}

fn sent_index(local_id: LocalId) -> Vec<u8> {
    let mut key = SENT_INDEX.to_vec();
    key.extend_from_slice(&local_id.0.to_be_bytes());
    key
}

/// A name with surrounding whitespace trimmed; an empty one is refused.
fn checked_name(name: &str) -> Result<String, ProfileError> {
    let name = name.trim();
    if name.is_empty() {
        return Err(ProfileError::EmptyName);
    }
    Ok(name.to_owned())
}

/// The wall clock in Unix milliseconds.
fn unix_ms() -> u64 {
    aegis_directory::api::unix_now_ms()
}

#[cfg(test)]
pub(crate) mod tests;
