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

use chacha20poly1305::aead::AeadInOut;
use chacha20poly1305::{KeyInit, Tag, XChaCha20Poly1305, XNonce};
use rand::CryptoRng;
use serde::{Deserialize, Serialize};
use x25519_dalek::{PublicKey, StaticSecret};
use zeroize::{Zeroize, ZeroizeOnDrop, Zeroizing};

use super::EdgeError;
use super::identity::SignedPrekey;
use super::kdf::{kdf_ck, kdf_rk, message_aead_key, session_keys};
use super::pqxdh::SessionSecret;

/// Most message keys skipped in one chain (the specification suggests about 1000).
pub const MAX_SKIP: u32 = 1000;
/// Most skipped message keys held across all chains.
pub const MAX_SKIPPED_TOTAL: usize = 2000;

const NONCE_LEN: usize = 24;
const TAG_LEN: usize = 16;
const HEADER_PLAIN_LEN: usize = 32 + 4 + 4;
/// Length of an encrypted header.
pub const HEADER_LEN: usize = NONCE_LEN + HEADER_PLAIN_LEN + TAG_LEN;
/// Bytes a ratchet message adds to its plaintext.
pub const MESSAGE_OVERHEAD: usize = HEADER_LEN + NONCE_LEN + TAG_LEN;

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
}

impl Header {
    fn seal<R: CryptoRng + ?Sized>(&self, hk: &[u8; 32], rng: &mut R, ad: &[u8]) -> Vec<u8> {
        let mut plain = [0u8; HEADER_PLAIN_LEN];
        plain[..32].copy_from_slice(&self.dh);
        plain[32..36].copy_from_slice(&self.pn.to_be_bytes());
        plain[36..].copy_from_slice(&self.n.to_be_bytes());
        seal(hk, rng, ad, &plain)
    }

    fn open(hk: &[u8; 32], ad: &[u8], sealed: &[u8]) -> Option<Header> {
        let plain = open(hk, ad, sealed)?;
        if plain.len() != HEADER_PLAIN_LEN {
            return None;
        }
        let mut dh = [0u8; 32];
        dh.copy_from_slice(&plain[..32]);
        Some(Header {
            dh,
            pn: u32::from_be_bytes([plain[32], plain[33], plain[34], plain[35]]),
            n: u32::from_be_bytes([plain[36], plain[37], plain[38], plain[39]]),
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

/// One conversation's ratchet state.
#[derive(Clone, Serialize, Deserialize, Zeroize, ZeroizeOnDrop)]
pub struct Session {
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

impl Session {
    /// The initiator's session after PQXDH; the responder's signed prekey is
    /// its first ratchet key.
    pub fn initiator<R: CryptoRng + ?Sized>(
        rng: &mut R,
        secret: &SessionSecret,
        responder_prekey: &[u8; 32],
    ) -> Result<Self, EdgeError> {
        let (rk0, hka, nhkb) = session_keys(&secret.sk);
        let dhs = random_secret(rng);
        let (rk, cks, nhks) = kdf_rk(&rk0, &*dh(&dhs, responder_prekey)?);
        Ok(Session {
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
        })
    }

    /// The responder's session after PQXDH, with the signed prekey the initiator used.
    pub fn responder(secret: &SessionSecret, signed_prekey: &SignedPrekey) -> Self {
        let (rk0, hka, nhkb) = session_keys(&secret.sk);
        Session {
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
        }
    }

    /// Encrypts `plaintext`: `encrypted header (80) ‖ nonce (24) ‖ ciphertext ‖ tag (16)`.
    pub fn encrypt<R: CryptoRng + ?Sized>(
        &mut self,
        rng: &mut R,
        plaintext: &[u8],
    ) -> Result<Vec<u8>, EdgeError> {
        let (Some(ck), Some(hk)) = (self.cks, self.hks) else {
            return Err(EdgeError::NotReadyToSend);
        };
        let (mk, next) = kdf_ck(&ck);
        let dhs_public = PublicKey::from(&StaticSecret::from(self.dhs)).to_bytes();
        let mut out = Header {
            dh: dhs_public,
            pn: self.pn,
            n: self.ns,
        }
        .seal(&hk, rng, &self.ad);
        let mut ad = self.ad.clone();
        ad.extend_from_slice(&out);
        out.extend_from_slice(&seal(&message_aead_key(&mk), rng, &ad, plaintext));
        self.cks = Some(*next);
        self.ns = self.ns.wrapping_add(1);
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
        if message.len() < MESSAGE_OVERHEAD {
            return Err(EdgeError::Malformed("ratchet message"));
        }
        let (sealed_header, body) = message.split_at(HEADER_LEN);
        let mut ad = self.ad.clone();
        ad.extend_from_slice(sealed_header);
        if let Some(plaintext) = self.try_skipped(sealed_header, body, &ad)? {
            return Ok(plaintext);
        }
        let current = self
            .hkr
            .and_then(|hk| Header::open(&hk, &self.ad, sealed_header));
        let header = match current {
            Some(header) => {
                if header.n < self.nr {
                    return Err(EdgeError::Duplicate);
                }
                header
            }
            None => {
                let header = Header::open(&self.nhkr, &self.ad, sealed_header)
                    .ok_or(EdgeError::HeaderAuthentication)?;
                self.skip(header.pn)?;
                self.dh_ratchet(rng, &header.dh)?;
                header
            }
        };
        self.skip(header.n)?;
        let ck = self.ckr.ok_or(EdgeError::HeaderAuthentication)?;
        let (mk, next) = kdf_ck(&ck);
        self.ckr = Some(*next);
        self.nr = self.nr.wrapping_add(1);
        open(&message_aead_key(&mk), &ad, body)
            .map(|p| p.to_vec())
            .ok_or(EdgeError::MessageAuthentication)
    }

    fn try_skipped(
        &mut self,
        sealed_header: &[u8],
        body: &[u8],
        ad: &[u8],
    ) -> Result<Option<Vec<u8>>, EdgeError> {
        let mut tried: Vec<[u8; 32]> = Vec::new();
        for i in 0..self.skipped.len() {
            let hk = self.skipped[i].hk;
            if tried.contains(&hk) {
                continue;
            }
            tried.push(hk);
            let Some(header) = Header::open(&hk, &self.ad, sealed_header) else {
                continue;
            };
            let Some(pos) = self
                .skipped
                .iter()
                .position(|s| s.hk == hk && s.n == header.n)
            else {
                continue;
            };
            let plaintext = open(&message_aead_key(&self.skipped[pos].mk), ad, body)
                .ok_or(EdgeError::MessageAuthentication)?;
            self.skipped.remove(pos);
            return Ok(Some(plaintext.to_vec()));
        }
        Ok(None)
    }

    fn skip(&mut self, until: u32) -> Result<(), EdgeError> {
        let (Some(mut ck), Some(hk)) = (self.ckr, self.hkr) else {
            return Ok(());
        };
        if until.saturating_sub(self.nr) > MAX_SKIP {
            return Err(EdgeError::TooManySkipped {
                requested: until,
                max: MAX_SKIP,
            });
        }
        while self.nr < until {
            let (mk, next) = kdf_ck(&ck);
            self.skipped.push(SkippedKey {
                hk,
                n: self.nr,
                mk: *mk,
            });
            ck = *next;
            self.nr += 1;
        }
        self.ckr = Some(ck);
        if self.skipped.len() > MAX_SKIPPED_TOTAL {
            let excess = self.skipped.len() - MAX_SKIPPED_TOTAL;
            self.skipped.drain(..excess);
        }
        Ok(())
    }

    fn dh_ratchet<R: CryptoRng + ?Sized>(
        &mut self,
        rng: &mut R,
        their: &[u8; 32],
    ) -> Result<(), EdgeError> {
        self.pn = self.ns;
        self.ns = 0;
        self.nr = 0;
        self.hks = Some(self.nhks);
        self.hkr = Some(self.nhkr);
        self.dhr = Some(*their);
        let (rk, ckr, nhkr) = kdf_rk(&self.rk, &*dh(&self.dhs, their)?);
        self.ckr = Some(*ckr);
        self.nhkr = *nhkr;
        self.dhs = random_secret(rng);
        let (rk, cks, nhks) = kdf_rk(&rk, &*dh(&self.dhs, their)?);
        self.rk = *rk;
        self.cks = Some(*cks);
        self.nhks = *nhks;
        Ok(())
    }

    /// Skipped message keys currently held.
    pub fn skipped_keys(&self) -> usize {
        self.skipped.len()
    }

    /// The session's canonical serialisation, for the sealed store.
    pub fn to_bytes(&self) -> Zeroizing<Vec<u8>> {
        Zeroizing::new(postcard::to_allocvec(self).unwrap_or_default())
    }

    /// Restores a session from [`Session::to_bytes`].
    pub fn from_bytes(bytes: &[u8]) -> Result<Self, EdgeError> {
        postcard::from_bytes(bytes).map_err(|_| EdgeError::Malformed("session state"))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::edge::identity::Identity;
    use crate::edge::pqxdh::{initiate, respond};
    use rand::SeedableRng;
    use rand::seq::SliceRandom;
    use rand_chacha::ChaCha20Rng;

    fn pair(seed: u64) -> (ChaCha20Rng, Session, Session) {
        let mut rng = ChaCha20Rng::seed_from_u64(seed);
        let alice = Identity::generate(&mut rng);
        let bob = Identity::generate(&mut rng);
        let spk = bob.new_signed_prekey(&mut rng, 1);
        let pq = bob.new_pq_prekey(&mut rng, 2);
        let bundle = crate::edge::identity::PrekeyBundle {
            identity: bob.public(),
            signed_prekey: spk.public(),
            pq_prekey: pq.public(),
        };
        let (header, a) = initiate(&mut rng, &alice, &bundle).unwrap();
        let b = respond(&bob, &spk, &pq, &header).unwrap();
        let a = Session::initiator(&mut rng, &a, &bundle.signed_prekey.key).unwrap();
        let b = Session::responder(&b, &spk);
        (rng, a, b)
    }

    #[test]
    fn messages_flow_both_ways_across_many_ratchet_steps() {
        let (mut rng, mut a, mut b) = pair(1);
        assert_eq!(
            b.encrypt(&mut rng, b"too early"),
            Err(EdgeError::NotReadyToSend)
        );
        for round in 0..20u32 {
            for i in 0..(round % 3 + 1) {
                let m = a
                    .encrypt(&mut rng, format!("a{round}.{i}").as_bytes())
                    .unwrap();
                assert_eq!(
                    b.decrypt(&mut rng, &m).unwrap(),
                    format!("a{round}.{i}").as_bytes()
                );
            }
            let m = b.encrypt(&mut rng, format!("b{round}").as_bytes()).unwrap();
            assert_eq!(
                a.decrypt(&mut rng, &m).unwrap(),
                format!("b{round}").as_bytes()
            );
        }
    }

    #[test]
    fn out_of_order_and_late_messages_across_dh_steps() {
        let (mut rng, mut a, mut b) = pair(2);
        let mut first: Vec<_> = (0..10)
            .map(|i| (i, a.encrypt(&mut rng, &[i]).unwrap()))
            .collect();
        first.shuffle(&mut rng);
        let late: Vec<_> = first.split_off(7);
        for (i, m) in &first {
            assert_eq!(b.decrypt(&mut rng, m).unwrap(), vec![*i]);
        }
        // a DH step in both directions before the late ones arrive
        let reply = b.encrypt(&mut rng, b"r").unwrap();
        a.decrypt(&mut rng, &reply).unwrap();
        let next = a.encrypt(&mut rng, b"n").unwrap();
        b.decrypt(&mut rng, &next).unwrap();
        for (i, m) in &late {
            assert_eq!(b.decrypt(&mut rng, m).unwrap(), vec![*i]);
        }
        assert_eq!(b.skipped_keys(), 0);
    }

    #[test]
    fn skipping_is_bounded_per_step_and_in_total() {
        let (mut rng, mut a, mut b) = pair(3);
        let first = a.encrypt(&mut rng, b"0").unwrap();
        b.decrypt(&mut rng, &first).unwrap();
        for _ in 0..MAX_SKIP + 1 {
            a.encrypt(&mut rng, b"lost").unwrap();
        }
        let too_far = a.encrypt(&mut rng, b"x").unwrap();
        let before = b.to_bytes();
        assert!(matches!(
            b.decrypt(&mut rng, &too_far),
            Err(EdgeError::TooManySkipped { .. })
        ));
        assert_eq!(*b.to_bytes(), *before);

        // Across DH steps: each step skips MAX_SKIP - 1, the total stays bounded.
        let (mut rng, mut a, mut b) = pair(4);
        for _ in 0..4 {
            for _ in 0..MAX_SKIP - 1 {
                a.encrypt(&mut rng, b"lost").unwrap();
            }
            let m = a.encrypt(&mut rng, b"arrives").unwrap();
            b.decrypt(&mut rng, &m).unwrap();
            let r = b.encrypt(&mut rng, b"reply").unwrap();
            a.decrypt(&mut rng, &r).unwrap();
            assert!(b.skipped_keys() <= MAX_SKIPPED_TOTAL);
        }
        assert_eq!(b.skipped_keys(), MAX_SKIPPED_TOTAL);
    }

    #[test]
    fn forged_replayed_or_corrupt_messages_leave_the_state_byte_identical() {
        let (mut rng, mut a, mut b) = pair(5);
        let m1 = a.encrypt(&mut rng, b"one").unwrap();
        let m2 = a.encrypt(&mut rng, b"two").unwrap();
        b.decrypt(&mut rng, &m2).unwrap(); // m1's key is now skipped
        let snapshot = b.to_bytes();
        let mut attempts = vec![m2.clone(), m1[..50].to_vec(), vec![0u8; 300]];
        for i in [
            0,
            30,
            HEADER_LEN - 1,
            HEADER_LEN,
            HEADER_LEN + 30,
            m1.len() - 1,
        ] {
            let mut bad = m1.clone();
            bad[i] ^= 0x80;
            attempts.push(bad);
        }
        for attempt in &attempts {
            assert!(b.decrypt(&mut rng, attempt).is_err());
            assert_eq!(*b.to_bytes(), *snapshot, "state changed");
        }
        assert_eq!(b.decrypt(&mut rng, &m2), Err(EdgeError::Duplicate));
        assert_eq!(b.decrypt(&mut rng, &m1).unwrap(), b"one");
        assert!(
            b.decrypt(&mut rng, &m1).is_err(),
            "a skipped key is used once"
        );
    }

    #[test]
    fn headers_do_not_link_messages_of_one_chain() {
        let (mut rng, mut a, _) = pair(6);
        let m1 = a.encrypt(&mut rng, b"same").unwrap();
        let m2 = a.encrypt(&mut rng, b"same").unwrap();
        // no 6-byte window of one header appears in the other
        for w in m1[..HEADER_LEN].windows(6) {
            assert!(!m2[..HEADER_LEN].windows(6).any(|x| x == w));
        }
        assert_eq!(m1.len(), m2.len());
    }

    #[test]
    fn a_low_order_ratchet_key_is_refused_without_changing_state() {
        let (mut rng, mut a, mut b) = pair(7);
        let m = a.encrypt(&mut rng, b"hi").unwrap();
        b.decrypt(&mut rng, &m).unwrap();
        // forge a header under the key of the next chain, as a peer knowing it could
        let header = Header {
            dh: [0u8; 32],
            pn: 0,
            n: 0,
        }
        .seal(&b.nhkr, &mut rng, &b.ad);
        let mut forged = header;
        forged.extend_from_slice(&[0u8; NONCE_LEN + TAG_LEN + 4]);
        let before = b.to_bytes();
        assert_eq!(b.decrypt(&mut rng, &forged), Err(EdgeError::LowOrderPoint));
        assert_eq!(*b.to_bytes(), *before);
    }

    #[test]
    fn state_survives_serialisation() {
        let (mut rng, mut a, b) = pair(8);
        let mut b = Session::from_bytes(&b.to_bytes()).unwrap();
        let m = a.encrypt(&mut rng, b"after restore").unwrap();
        assert_eq!(b.decrypt(&mut rng, &m).unwrap(), b"after restore");
        assert!(Session::from_bytes(&[1, 2, 3]).is_err());
    }
}
