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
use crate::envelope::ContentKind;
use crate::file::FileMeta;
use crate::safety::SafetyNumber;
use crate::store::{Argon2Params, Batch, Namespace, Store, StoreError};
use aegis_proto::{ContactId, LocalId, MessageStatus};

const IDENTITY: &[u8] = b"identity";
const SIGNED_PREKEY: &[u8] = b"signed-prekey";
const PQ_PREKEY: &[u8] = b"pq-prekey";
const MAILBOX_AUTH: &[u8] = b"mailbox-auth";
const MAILBOX_SEALING: &[u8] = b"mailbox-sealing";
const GATEWAY: &[u8] = b"gateway";
/// The gateway the mailbox moved away from and when (Unix ms), while the
/// client still drains it.
const PREVIOUS_GATEWAY: &[u8] = b"previous-gateway";
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
    /// A file message's body is not a file body.
    #[error("not a file: {0}")]
    NotAFile(#[from] crate::edge::EdgeError),
}

/// Contact requests (strangers who wrote first) kept at most; a stranger
/// beyond them is dropped and counted.
pub const MAX_REQUESTS: usize = 64;

/// Messages kept from one contact request; later ones are dropped and
/// counted until the user accepts (or blocks) them.
pub const MAX_REQUEST_MESSAGES: usize = 16;

mod anonymous;
mod contacts;
mod history;
mod records;
pub use anonymous::{
    MAX_ANONYMOUS_THREADS, ReceivedThread, THREAD_KEPT_MS, WrittenThread, anonymous_name,
    thread_contact,
};
pub use records::{ContactRecord, ContactState, SentMessage, StoredMessage};

/// A directory authority the profile trusts (kept in the profile as its
/// URL and the 32 key bytes).
pub use aegis_directory::TrustedAuthority;

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
    /// goes to the old gateway, which the running client keeps draining
    /// ([`Profile::previous_gateway`]).
    pub fn move_gateway(&mut self, gateway: NodeId) -> Result<(), ProfileError> {
        if gateway == self.gateway {
            return Ok(());
        }
        let mut previous = self.gateway.0.to_vec();
        previous.extend_from_slice(&aegis_directory::api::unix_now_ms().to_be_bytes());
        let mut batch = Batch::new();
        batch
            .put(Namespace::Profile, GATEWAY, &gateway.0)
            .put(
                Namespace::Meta,
                CARD_VERSION,
                &(self.card_version()? + 1).to_be_bytes(),
            )
            .put(Namespace::Meta, PREVIOUS_GATEWAY, &previous);
        self.store.write_batch(batch)?;
        self.gateway = gateway;
        Ok(())
    }

    /// The gateway the mailbox last moved away from, and when (Unix ms),
    /// until [`Profile::forget_previous_gateway`].
    pub fn previous_gateway(&self) -> Result<Option<(NodeId, u64)>, ProfileError> {
        Ok(self
            .store
            .get(Namespace::Meta, PREVIOUS_GATEWAY)?
            .and_then(|b| {
                let id = <[u8; 32]>::try_from(b.get(..32)?).ok()?;
                let at = <[u8; 8]>::try_from(b.get(32..)?).ok()?;
                Some((NodeId(id), u64::from_be_bytes(at)))
            })
            .filter(|(id, _)| *id != self.gateway))
    }

    /// The old gateway is drained: stop going there.
    pub fn forget_previous_gateway(&self) -> Result<(), ProfileError> {
        Ok(self.store.delete(Namespace::Meta, PREVIOUS_GATEWAY)?)
    }

    /// Whether every contact has acknowledged our current card (so none
    /// still writes to an old address).
    pub fn card_known_by_all(&self) -> Result<bool, ProfileError> {
        let version = self.card_version()?;
        Ok(self
            .contacts()?
            .iter()
            .all(|(_, r)| r.state != ContactState::Contact || r.card_known >= version))
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
