//! The Double Ratchet with header encryption (Signal's specification, §4).
//!
//! Headers — the sender's ratchet key and message numbers — are encrypted
//! under header keys that rotate with the root chain, so a gateway storing a
//! conversation's messages cannot link them by ratchet keys or counters.
//!
//! Three properties matter beyond the specification's pseudocode:
//! * **State changes only after a message authenticates.** Decryption runs
//!   on a copy of the session that replaces the stored one only on success;
//!   a forged, replayed or corrupted message leaves the state byte-identical.
//! * **Bounded skipped keys**: at most [`MAX_SKIP`] per chain step and
//!   [`MAX_SKIPPED_TOTAL`] held across all DH steps (oldest dropped first).
//! * **Nonces never repeat, even after a crash.** Header and body are sealed
//!   with XChaCha20-Poly1305 under a fresh random 192-bit nonce; if a crash
//!   rolls the state back and a message key is used again, its nonce is not.
//!
//! Sessions of version 2 run the sparse post-quantum ratchet
//! ([`super::spqr`]) beside it (Signal's "Triple Ratchet"): the header also
//! names the post-quantum epoch the message was written in, the body's
//! plaintext starts with the post-quantum section, and the body key is
//! derived from the chain's message key and that epoch's secret.

use chacha20poly1305::aead::AeadInOut;
use chacha20poly1305::{KeyInit, Tag, XChaCha20Poly1305, XNonce};
use rand::CryptoRng;
use serde::{Deserialize, Serialize};
use x25519_dalek::{PublicKey, StaticSecret};
use zeroize::{Zeroize, ZeroizeOnDrop, Zeroizing};

use super::EdgeError;
use super::identity::SignedPrekey;
use super::kdf::{Secret32, kdf_ck, kdf_rk, message_aead_key, session_keys, session_keys_v2};
use super::pqxdh::{SessionSecret, Version};
use super::spqr::{Section, Spqr};

/// Most message keys skipped in one chain (the specification suggests about 1000).
pub const MAX_SKIP: u32 = 1000;
/// Most skipped message keys held across all chains.
pub const MAX_SKIPPED_TOTAL: usize = 2000;

const NONCE_LEN: usize = 24;
const TAG_LEN: usize = 16;
const HEADER_PLAIN_LEN: usize = 32 + 4 + 4;
/// Version 2's header plaintext: also the post-quantum epoch (8 bytes).
const HEADER_PLAIN_LEN_V2: usize = HEADER_PLAIN_LEN + 8;
/// Length of an encrypted header.
pub const HEADER_LEN: usize = NONCE_LEN + HEADER_PLAIN_LEN + TAG_LEN;
/// Length of an encrypted header in a session of version 2.
pub const HEADER_LEN_V2: usize = NONCE_LEN + HEADER_PLAIN_LEN_V2 + TAG_LEN;
/// Bytes a ratchet message adds to its plaintext.
pub const MESSAGE_OVERHEAD: usize = HEADER_LEN + NONCE_LEN + TAG_LEN;
/// Bytes a version-2 message adds to its plaintext, its post-quantum
/// section aside.
pub const MESSAGE_OVERHEAD_V2: usize = HEADER_LEN_V2 + NONCE_LEN + TAG_LEN;

/// XChaCha20-Poly1305 under a fresh random nonce: `nonce ‖ ciphertext ‖ tag`
/// (also what the encrypted store seals its records with).
pub(crate) fn seal<R: CryptoRng + ?Sized>(
    key: &[u8; 32],
    rng: &mut R,
    ad: &[u8],
    plaintext: &[u8],
) -> Vec<u8> {
    let mut nonce = [0u8; NONCE_LEN];
    rng.fill_bytes(&mut nonce);
    let mut out = Vec::with_capacity(NONCE_LEN + plaintext.len() + TAG_LEN);
    out.extend_from_slice(&nonce);
    out.extend_from_slice(plaintext);
    let cipher = XChaCha20Poly1305::new(key.into());
    // Encryption fails only for plaintexts beyond 2^38 bytes.
    if let Ok(tag) =
        cipher.encrypt_inout_detached(&XNonce::from(nonce), ad, (&mut out[NONCE_LEN..]).into())
    {
        out.extend_from_slice(&tag);
    }
    out
}

/// Opens what [`seal`] produced; `None` if it does not authenticate.
pub(crate) fn open(key: &[u8; 32], ad: &[u8], sealed: &[u8]) -> Option<Zeroizing<Vec<u8>>> {
    if sealed.len() < NONCE_LEN + TAG_LEN {
        return None;
    }
    let (nonce, rest) = sealed.split_at(NONCE_LEN);
    let (ciphertext, tag) = rest.split_at(rest.len() - TAG_LEN);
    let mut plaintext = Zeroizing::new(ciphertext.to_vec());
    let nonce = XNonce::try_from(nonce).ok()?;
    let tag = Tag::try_from(tag).ok()?;
    XChaCha20Poly1305::new(key.into())
        .decrypt_inout_detached(&nonce, ad, plaintext.as_mut_slice().into(), &tag)
        .ok()?;
    Some(plaintext)
}

struct Header {
    dh: [u8; 32],
    pn: u32,
    n: u32,
    /// The post-quantum epoch (version 2 only).
    epoch: Option<u64>,
}

impl Header {
    fn seal<R: CryptoRng + ?Sized>(&self, hk: &[u8; 32], rng: &mut R, ad: &[u8]) -> Vec<u8> {
        let mut plain = Vec::with_capacity(HEADER_PLAIN_LEN_V2);
        plain.extend_from_slice(&self.dh);
        plain.extend_from_slice(&self.pn.to_be_bytes());
        plain.extend_from_slice(&self.n.to_be_bytes());
        if let Some(epoch) = self.epoch {
            plain.extend_from_slice(&epoch.to_be_bytes());
        }
        seal(hk, rng, ad, &plain)
    }

    /// Opens a header of the session's version (`v2`: with the epoch).
    fn open(hk: &[u8; 32], ad: &[u8], sealed: &[u8], v2: bool) -> Option<Header> {
        let plain = open(hk, ad, sealed)?;
        let expected = if v2 {
            HEADER_PLAIN_LEN_V2
        } else {
            HEADER_PLAIN_LEN
        };
        if plain.len() != expected {
            return None;
        }
        let mut dh = [0u8; 32];
        dh.copy_from_slice(&plain[..32]);
        let epoch = v2.then(|| {
            let mut e = [0u8; 8];
            e.copy_from_slice(&plain[40..48]);
            u64::from_be_bytes(e)
        });
        Some(Header {
            dh,
            pn: u32::from_be_bytes([plain[32], plain[33], plain[34], plain[35]]),
            n: u32::from_be_bytes([plain[36], plain[37], plain[38], plain[39]]),
            epoch,
        })
    }
}

#[derive(Clone, Serialize, Deserialize, Zeroize, ZeroizeOnDrop)]
struct SkippedKey {
    hk: [u8; 32],
    n: u32,
    mk: [u8; 32],
}

fn dh(secret: &[u8; 32], public: &[u8; 32]) -> Result<Zeroizing<[u8; 32]>, EdgeError> {
    let shared = StaticSecret::from(*secret).diffie_hellman(&PublicKey::from(*public));
    if !shared.was_contributory() {
        return Err(EdgeError::LowOrderPoint);
    }
    Ok(Zeroizing::new(shared.to_bytes()))
}

fn random_secret<R: CryptoRng + ?Sized>(rng: &mut R) -> [u8; 32] {
    StaticSecret::random_from_rng(rng).to_bytes()
}

/// The Double Ratchet's state: the whole of a version-1 session, and the
/// layout its stored bytes have.
#[derive(Clone, Serialize, Deserialize, Zeroize, ZeroizeOnDrop)]
struct Chains {
    dhs: [u8; 32],
    dhr: Option<[u8; 32]>,
    rk: [u8; 32],
    cks: Option<[u8; 32]>,
    ckr: Option<[u8; 32]>,
    ns: u32,
    nr: u32,
    pn: u32,
    hks: Option<[u8; 32]>,
    hkr: Option<[u8; 32]>,
    nhks: [u8; 32],
    nhkr: [u8; 32],
    skipped: Vec<SkippedKey>,
    ad: Vec<u8>,
}

/// One conversation's ratchet state. Encoded, the chains come first, so a
/// version-1 session's bytes are a version-2 session's without the
/// trailing post-quantum part.
#[derive(Clone, Serialize, Deserialize, Zeroize, ZeroizeOnDrop)]
pub struct Session {
    dr: Chains,
    /// The post-quantum ratchet (sessions of version 2).
    pq: Option<Spqr>,
}

/// The initial keys of a session: root key, the initiator's and the
/// responder's first header keys, and the post-quantum seed (version 2).
type InitialKeys = (Secret32, Secret32, Secret32, Option<Secret32>);

fn initial_keys(secret: &SessionSecret) -> InitialKeys {
    match secret.version {
        Version::V1 => {
            let (rk, hka, nhkb) = session_keys(&secret.sk);
            (rk, hka, nhkb, None)
        }
        Version::V2 => {
            let (rk, hka, nhkb, seed) = session_keys_v2(&secret.sk);
            (rk, hka, nhkb, Some(seed))
        }
    }
}

impl Session {
    /// The initiator's session after PQXDH; the responder's signed prekey is
    /// its first ratchet key.
    pub fn initiator<R: CryptoRng + ?Sized>(
        rng: &mut R,
        secret: &SessionSecret,
        responder_prekey: &[u8; 32],
    ) -> Result<Self, EdgeError> {
        let (rk0, hka, nhkb, seed) = initial_keys(secret);
        let dhs = random_secret(rng);
        let (rk, cks, nhks) = kdf_rk(&rk0, &*dh(&dhs, responder_prekey)?);
        let pq = seed.map(|seed| Spqr::new(rng, true, &seed));
        Ok(Session {
            dr: Chains {
                dhs,
                dhr: Some(*responder_prekey),
                rk: *rk,
                cks: Some(*cks),
                ckr: None,
                ns: 0,
                nr: 0,
                pn: 0,
                hks: Some(*hka),
                hkr: None,
                nhks: *nhks,
                nhkr: *nhkb,
                skipped: Vec::new(),
                ad: secret.ad.clone(),
            },
            pq,
        })
    }

    /// The responder's session after PQXDH, with the signed prekey the initiator used.
    pub fn responder<R: CryptoRng + ?Sized>(
        rng: &mut R,
        secret: &SessionSecret,
        signed_prekey: &SignedPrekey,
    ) -> Self {
        let (rk0, hka, nhkb, seed) = initial_keys(secret);
        Session {
            dr: Chains {
                dhs: *signed_prekey.secret_bytes(),
                dhr: None,
                rk: *rk0,
                cks: None,
                ckr: None,
                ns: 0,
                nr: 0,
                pn: 0,
                hks: None,
                hkr: None,
                nhks: *nhkb,
                nhkr: *hka,
                skipped: Vec::new(),
                ad: secret.ad.clone(),
            },
            pq: seed.map(|seed| Spqr::new(rng, false, &seed)),
        }
    }

    /// The session's version.
    pub fn version(&self) -> Version {
        if self.pq.is_some() {
            Version::V2
        } else {
            Version::V1
        }
    }

    /// The post-quantum epoch this side writes in (version 2).
    pub fn pq_epoch(&self) -> Option<u64> {
        self.pq.as_ref().map(Spqr::epoch)
    }

    /// Bytes [`Session::encrypt`] adds to a plaintext when the post-quantum
    /// section is its smallest (one byte, version 2).
    pub fn overhead(&self) -> usize {
        if self.pq.is_some() {
            MESSAGE_OVERHEAD_V2 + Section::len_with(0)
        } else {
            MESSAGE_OVERHEAD
        }
    }

    /// Encrypts `plaintext`: `encrypted header (80; 88 in version 2) ‖
    /// nonce (24) ‖ ciphertext ‖ tag (16)`. In version 2 the ciphertext's
    /// plaintext is the post-quantum section, of at most `pq_budget` bytes
    /// (but at least one), then `plaintext`.
    pub fn encrypt<R: CryptoRng + ?Sized>(
        &mut self,
        rng: &mut R,
        plaintext: &[u8],
        pq_budget: usize,
    ) -> Result<Vec<u8>, EdgeError> {
        let (Some(ck), Some(hk)) = (self.dr.cks, self.dr.hks) else {
            return Err(EdgeError::NotReadyToSend);
        };
        let (mk, next) = kdf_ck(&ck);
        let dhs_public = PublicKey::from(&StaticSecret::from(self.dr.dhs)).to_bytes();
        let (key, epoch, body) = match &mut self.pq {
            None => (message_aead_key(&mk), None, None),
            Some(pq) => {
                let (epoch, key) = pq.sending_key(&mk);
                let mut body = Vec::with_capacity(pq_budget.max(1) + plaintext.len());
                pq.section(pq_budget).encode(&mut body);
                body.extend_from_slice(plaintext);
                (key, Some(epoch), Some(body))
            }
        };
        let mut out = Header {
            dh: dhs_public,
            pn: self.dr.pn,
            n: self.dr.ns,
            epoch,
        }
        .seal(&hk, rng, &self.dr.ad);
        let mut ad = self.dr.ad.clone();
        ad.extend_from_slice(&out);
        let body = body.as_deref().unwrap_or(plaintext);
        out.extend_from_slice(&seal(&key, rng, &ad, body));
        self.dr.cks = Some(*next);
        self.dr.ns = self.dr.ns.wrapping_add(1);
        Ok(out)
    }

    /// Decrypts a message. On any error the session is left exactly as it was.
    pub fn decrypt<R: CryptoRng + ?Sized>(
        &mut self,
        rng: &mut R,
        message: &[u8],
    ) -> Result<Vec<u8>, EdgeError> {
        let mut work = self.clone();
        let plaintext = work.decrypt_on_copy(rng, message)?;
        *self = work;
        Ok(plaintext)
    }

    fn decrypt_on_copy<R: CryptoRng + ?Sized>(
        &mut self,
        rng: &mut R,
        message: &[u8],
    ) -> Result<Vec<u8>, EdgeError> {
        let v2 = self.pq.is_some();
        let header_len = if v2 { HEADER_LEN_V2 } else { HEADER_LEN };
        if message.len() < self.overhead() {
            return Err(EdgeError::Malformed("ratchet message"));
        }
        let (sealed_header, body) = message.split_at(header_len);
        let mut ad = self.dr.ad.clone();
        ad.extend_from_slice(sealed_header);
        if let Some((epoch, plaintext)) = self.try_skipped(sealed_header, body, &ad)? {
            return self.take_section(rng, epoch, plaintext);
        }
        let current = self
            .dr
            .hkr
            .and_then(|hk| Header::open(&hk, &self.dr.ad, sealed_header, v2));
        let header = match current {
            Some(header) => {
                if header.n < self.dr.nr {
                    return Err(EdgeError::Duplicate);
                }
                header
            }
            None => {
                let header = Header::open(&self.dr.nhkr, &self.dr.ad, sealed_header, v2)
                    .ok_or(EdgeError::HeaderAuthentication)?;
                self.skip(header.pn)?;
                self.dh_ratchet(rng, &header.dh)?;
                header
            }
        };
        self.skip(header.n)?;
        let ck = self.dr.ckr.ok_or(EdgeError::HeaderAuthentication)?;
        let (mk, next) = kdf_ck(&ck);
        self.dr.ckr = Some(*next);
        self.dr.nr = self.dr.nr.wrapping_add(1);
        let key = self.body_key(header.epoch, &mk)?;
        let plaintext = open(&key, &ad, body).ok_or(EdgeError::MessageAuthentication)?;
        self.take_section(rng, header.epoch, plaintext)
    }

    /// The key a message body is sealed under: version 1's from the
    /// message key alone, version 2's from it and the epoch's secret.
    fn body_key(
        &self,
        epoch: Option<u64>,
        mk: &[u8; 32],
    ) -> Result<Zeroizing<[u8; 32]>, EdgeError> {
        match (&self.pq, epoch) {
            (None, _) => Ok(message_aead_key(mk)),
            (Some(pq), Some(epoch)) => pq.receiving_key(epoch, mk),
            (Some(_), None) => Err(EdgeError::HeaderAuthentication),
        }
    }

    /// Version 2: reads the post-quantum section off the front of an
    /// authenticated plaintext and hands it to the post-quantum ratchet.
    fn take_section<R: CryptoRng + ?Sized>(
        &mut self,
        rng: &mut R,
        epoch: Option<u64>,
        plaintext: Zeroizing<Vec<u8>>,
    ) -> Result<Vec<u8>, EdgeError> {
        let (Some(pq), Some(epoch)) = (&mut self.pq, epoch) else {
            return Ok(plaintext.to_vec());
        };
        let (section, rest) = Section::decode(&plaintext)?;
        pq.receive(rng, epoch, &section)?;
        Ok(rest.to_vec())
    }

    /// A message under a skipped key: its epoch (version 2) and plaintext.
    #[allow(clippy::type_complexity)]
    fn try_skipped(
        &mut self,
        sealed_header: &[u8],
        body: &[u8],
        ad: &[u8],
    ) -> Result<Option<(Option<u64>, Zeroizing<Vec<u8>>)>, EdgeError> {
        let v2 = self.pq.is_some();
        let mut tried: Vec<[u8; 32]> = Vec::new();
        for i in 0..self.dr.skipped.len() {
            let hk = self.dr.skipped[i].hk;
            if tried.contains(&hk) {
                continue;
            }
            tried.push(hk);
            let Some(header) = Header::open(&hk, &self.dr.ad, sealed_header, v2) else {
                continue;
            };
            let Some(pos) = self
                .dr
                .skipped
                .iter()
                .position(|s| s.hk == hk && s.n == header.n)
            else {
                continue;
            };
            let key = self.body_key(header.epoch, &self.dr.skipped[pos].mk)?;
            let plaintext = open(&key, ad, body).ok_or(EdgeError::MessageAuthentication)?;
            self.dr.skipped.remove(pos);
            return Ok(Some((header.epoch, plaintext)));
        }
        Ok(None)
    }

    fn skip(&mut self, until: u32) -> Result<(), EdgeError> {
        let (Some(mut ck), Some(hk)) = (self.dr.ckr, self.dr.hkr) else {
            return Ok(());
        };
        if until.saturating_sub(self.dr.nr) > MAX_SKIP {
            return Err(EdgeError::TooManySkipped {
                requested: until,
                max: MAX_SKIP,
            });
        }
        while self.dr.nr < until {
            let (mk, next) = kdf_ck(&ck);
            self.dr.skipped.push(SkippedKey {
                hk,
                n: self.dr.nr,
                mk: *mk,
            });
            ck = *next;
            self.dr.nr += 1;
        }
        self.dr.ckr = Some(ck);
        if self.dr.skipped.len() > MAX_SKIPPED_TOTAL {
            let excess = self.dr.skipped.len() - MAX_SKIPPED_TOTAL;
            self.dr.skipped.drain(..excess);
        }
        Ok(())
    }

    fn dh_ratchet<R: CryptoRng + ?Sized>(
        &mut self,
        rng: &mut R,
        their: &[u8; 32],
    ) -> Result<(), EdgeError> {
        self.dr.pn = self.dr.ns;
        self.dr.ns = 0;
        self.dr.nr = 0;
        self.dr.hks = Some(self.dr.nhks);
        self.dr.hkr = Some(self.dr.nhkr);
        self.dr.dhr = Some(*their);
        let (rk, ckr, nhkr) = kdf_rk(&self.dr.rk, &*dh(&self.dr.dhs, their)?);
        self.dr.ckr = Some(*ckr);
        self.dr.nhkr = *nhkr;
        self.dr.dhs = random_secret(rng);
        let (rk, cks, nhks) = kdf_rk(&rk, &*dh(&self.dr.dhs, their)?);
        self.dr.rk = *rk;
        self.dr.cks = Some(*cks);
        self.dr.nhks = *nhks;
        Ok(())
    }

    /// Skipped message keys currently held.
    pub fn skipped_keys(&self) -> usize {
        self.dr.skipped.len()
    }

    /// The session's canonical serialisation, for the sealed store.
    pub fn to_bytes(&self) -> Zeroizing<Vec<u8>> {
        Zeroizing::new(postcard::to_allocvec(self).unwrap_or_default())
    }

    /// Restores a session from [`Session::to_bytes`], or from the layout
    /// version 1 wrote (then without a post-quantum ratchet).
    pub fn from_bytes(bytes: &[u8]) -> Result<Self, EdgeError> {
        if let Ok((session, [])) = postcard::take_from_bytes::<Session>(bytes) {
            return Ok(session);
        }
        match postcard::take_from_bytes::<Chains>(bytes) {
            Ok((dr, [])) => Ok(Session { dr, pq: None }),
            _ => Err(EdgeError::Malformed("session state")),
        }
    }
}

/// Alice's and Bob's sessions after a handshake of `version` between two
/// fresh identities (Alice initiates; Bob's session can send once it has
/// received): for tests, benchmarks and fuzzing of the ratchets.
pub fn fresh_pair<R: CryptoRng + ?Sized>(
    rng: &mut R,
    version: Version,
) -> Result<(Session, Session), EdgeError> {
    use super::identity::{Identity, PrekeyBundle};
    let alice = Identity::generate(rng);
    let bob = Identity::generate(rng);
    let spk = bob.new_signed_prekey(rng, 1);
    let pq = bob.new_pq_prekey(rng, 2);
    let bundle = PrekeyBundle {
        identity: bob.public(),
        signed_prekey: spk.public(),
        pq_prekey: pq.public(),
    };
    let (header, a) = super::pqxdh::initiate_version(rng, &alice, &bundle, version)?;
    let b = super::pqxdh::respond(&bob, &spk, &pq, &header)?;
    let a = Session::initiator(rng, &a, &bundle.signed_prekey.key)?;
    let b = Session::responder(rng, &b, &spk);
    Ok((a, b))
}

#[cfg(test)]
mod pq_tests;
#[cfg(test)]
mod tests;
