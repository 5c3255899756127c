//! A user's profile in the encrypted store: identity, prekeys, mailbox
//! keys, the gateway, the pinned authorities, contacts and their sessions,
//! and received messages.

use std::path::Path;

use aegis_mix_packet::{MailboxId, NodeId, SphinxPublicKey, SphinxSecret};
use ed25519_dalek::SigningKey;
use rand::CryptoRng;
use serde::{Deserialize, Serialize};
use sha2::{Digest as _, Sha256};
use zeroize::Zeroizing;

use crate::card::ContactCard;
use crate::edge::identity::{Identity, PqPrekey, SignedPrekey};
use crate::edge::ratchet::Session;
use crate::store::{Argon2Params, Batch, Namespace, Store, StoreError};
use aegis_proto::ContactId;

const IDENTITY: &[u8] = b"identity";
const SIGNED_PREKEY: &[u8] = b"signed-prekey";
const PQ_PREKEY: &[u8] = b"pq-prekey";
const MAILBOX_AUTH: &[u8] = b"mailbox-auth";
const MAILBOX_SEALING: &[u8] = b"mailbox-sealing";
const GATEWAY: &[u8] = b"gateway";
const AUTHORITIES: &[u8] = b"authorities";
const NEXT_MESSAGE: &[u8] = b"next-message";

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
}

impl ContactRecord {
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
    /// Unix milliseconds when it was received.
    pub received_ms: u64,
    /// Its content.
    pub body: Vec<u8>,
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
    store: Store,
    /// The identity.
    pub identity: Identity,
    /// The current signed X25519 prekey.
    pub signed_prekey: SignedPrekey,
    /// The current signed ML-KEM-768 prekey.
    pub pq_prekey: PqPrekey,
    /// The key proving mailbox ownership to the gateway.
    pub mailbox_auth: SigningKey,
    /// The key packets for the mailbox are sealed to.
    pub mailbox_sealing: SphinxSecret,
    /// The gateway holding the mailbox.
    pub gateway: NodeId,
    /// The pinned authorities.
    pub authorities: Vec<TrustedAuthority>,
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
        let mut spk = Zeroizing::new(Vec::with_capacity(36));
        spk.extend_from_slice(&signed_prekey.id.to_be_bytes());
        spk.extend_from_slice(signed_prekey.secret_bytes().as_ref());
        let mut pq = Zeroizing::new(Vec::with_capacity(68));
        pq.extend_from_slice(&pq_prekey.id.to_be_bytes());
        pq.extend_from_slice(pq_prekey.seed());
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
            .put(Namespace::Profile, AUTHORITIES, &authorities_bytes);
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
        let spk = Zeroizing::new(read::<36>(&store, SIGNED_PREKEY)?);
        let mut spk_id = [0u8; 4];
        spk_id.copy_from_slice(&spk[..4]);
        let mut spk_secret = [0u8; 32];
        spk_secret.copy_from_slice(&spk[4..]);
        let signed_prekey =
            SignedPrekey::from_secret(u32::from_be_bytes(spk_id), spk_secret, &identity);
        let pq = Zeroizing::new(read::<68>(&store, PQ_PREKEY)?);
        let mut pq_id = [0u8; 4];
        pq_id.copy_from_slice(&pq[..4]);
        let mut seed = Zeroizing::new([0u8; 64]);
        seed.copy_from_slice(&pq[4..]);
        let pq_prekey = PqPrekey::from_seed(u32::from_be_bytes(pq_id), &seed, &identity);
        let mailbox_auth = SigningKey::from_bytes(&read::<32>(&store, MAILBOX_AUTH)?);
        let mailbox_sealing = SphinxSecret::from(read::<32>(&store, MAILBOX_SEALING)?);
        let gateway = NodeId(read::<32>(&store, GATEWAY)?);
        let authorities = store
            .get(Namespace::Profile, AUTHORITIES)?
            .and_then(|b| postcard::from_bytes(&b).ok())
            .ok_or(ProfileError::Corrupt("authorities"))?;
        Ok(Profile {
            store,
            identity,
            signed_prekey,
            pq_prekey,
            mailbox_auth,
            mailbox_sealing,
            gateway,
            authorities,
        })
    }

    /// The underlying store.
    pub fn store(&self) -> &Store {
        &self.store
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

    /// Adds a contact from a card string under `name`.
    pub fn add_contact(&self, name: &str, card: &str) -> Result<ContactId, ProfileError> {
        let parsed = ContactCard::decode(card)?;
        let id = contact_id_of(&parsed.bundle.identity.signing);
        if id == self.own_contact_id() {
            return Err(ProfileError::OwnCard);
        }
        if let Some((other, _)) = self.contact_by_name(name)?
            && other != id
        {
            return Err(ProfileError::DuplicateName(name.to_owned()));
        }
        let record = match self.contact(&id)? {
            // A known contact with a new card (new address or prekeys):
            // keep the session state, take the card.
            Some(mut existing) => {
                existing.name = name.to_owned();
                existing.card = parsed.encode();
                existing
            }
            None => ContactRecord {
                name: name.to_owned(),
                card: parsed.encode(),
                confirmed: false,
                initial_header: None,
                seen_ephemerals: Vec::new(),
            },
        };
        self.put_contact(&id, &record)?;
        Ok(id)
    }

    /// A contact's record.
    pub fn contact(&self, id: &ContactId) -> Result<Option<ContactRecord>, ProfileError> {
        match self.store.get(Namespace::Contacts, &id.0)? {
            None => Ok(None),
            Some(bytes) => postcard::from_bytes(&bytes)
                .map(Some)
                .map_err(|_| ProfileError::Corrupt("contact")),
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
            let (Ok(id), Ok(record)) = (
                <[u8; 16]>::try_from(&key[..]),
                postcard::from_bytes::<ContactRecord>(&value),
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
        };
        let bytes = postcard::to_stdvec(&message).map_err(|_| ProfileError::Corrupt("message"))?;
        let mut batch = Batch::new();
        batch.put(Namespace::Inbox, &seq.to_be_bytes(), &bytes).put(
            Namespace::Meta,
            NEXT_MESSAGE,
            &(seq + 1).to_be_bytes(),
        );
        self.store.write_batch(batch)?;
        Ok(message)
    }

    /// Every stored message, oldest first.
    pub fn messages(&self) -> Result<Vec<StoredMessage>, ProfileError> {
        let mut out: Vec<StoredMessage> = self
            .store
            .list(Namespace::Inbox)?
            .into_iter()
            .filter_map(|(_, v)| postcard::from_bytes(&v).ok())
            .collect();
        out.sort_by_key(|m| m.seq);
        Ok(out)
    }
}
