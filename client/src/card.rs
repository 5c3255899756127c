//! The contact card: everything a contact needs to reach you, as one string.
//!
//! A card carries the owner's [`PrekeyBundle`] (identity, signed X25519
//! prekey, signed ML-KEM-768 prekey), the gateway that holds the owner's
//! mailbox, the mailbox id, and the X25519 key that packets for the mailbox
//! are sealed to. The owner's identity key signs all of it, so a card that
//! was altered — even one whose checksum was recomputed — does not verify,
//! and a later card from the same identity (new mailbox, new prekeys) can be
//! recognised as such.
//!
//! ```text
//! card     = "aegis1" ‖ base64url-nopad(version ‖ body ‖ checksum)
//! body(v1) = bundle (1480) ‖ gateway (32) ‖ mailbox id (32) ‖ mailbox key (32) ‖ signature (64)
//! checksum = SHA-256("aegis1" ‖ version ‖ body)[..4]
//! signature = Ed25519(identity, "AegisLink contact card\0" ‖ version ‖ body without signature)
//! ```
//!
//! `aegis1` is a human-readable prefix followed by a separator digit, as in
//! bech32; the format version is the first encoded byte. The checksum
//! catches typos; the signature catches tampering. Decoding is strict: one
//! canonical string per card, and a distinct [`CardError`] for each way a
//! string can be wrong. The layout is in `docs/client.md`.

use std::fmt;
use std::str::FromStr;

use aegis_mix_packet::constants::{MAILBOX_ID_LEN, NODE_ID_LEN, X25519_KEY_LEN};
use aegis_mix_packet::{DROP_DESTINATION, MailboxId, NodeId};
use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use ed25519_dalek::{Signature, Signer, SigningKey, VerifyingKey};
use sha2::{Digest, Sha256};
use thiserror::Error;
use x25519_dalek::{PublicKey, StaticSecret};
use zeroize::Zeroizing;

use crate::edge::EdgeError;
use crate::edge::identity::{Identity, PqPrekey, PrekeyBundle, SignedPrekey};

/// Human-readable prefix every card starts with.
pub const CARD_PREFIX: &str = "aegis1";
/// The card format version this implementation writes and reads.
pub const CARD_VERSION: u8 = 1;
/// Length of the typo-catching checksum.
pub const CARD_CHECKSUM_LEN: usize = 4;
/// Length of the identity's signature over the card.
pub const CARD_SIGNATURE_LEN: usize = 64;
/// Length of a version-1 card body (before the checksum).
pub const CARD_BODY_LEN: usize =
    PrekeyBundle::LEN + NODE_ID_LEN + MAILBOX_ID_LEN + X25519_KEY_LEN + CARD_SIGNATURE_LEN;
/// Decoded bytes of a version-1 card: version, body, checksum.
const CARD_BYTES_LEN: usize = 1 + CARD_BODY_LEN + CARD_CHECKSUM_LEN;
/// Length of a version-1 card string.
pub const CARD_STRING_LEN: usize = CARD_PREFIX.len() + (CARD_BYTES_LEN * 4).div_ceil(3);
/// Longest string the decoder looks at; anything longer is refused unread.
pub const MAX_CARD_STRING_LEN: usize = 4 * CARD_STRING_LEN;

const CARD_SIGNATURE_CONTEXT: &[u8] = b"AegisLink contact card\0";

/// Why a string is not a usable contact card.
#[derive(Debug, Clone, PartialEq, Eq, Error)]
pub enum CardError {
    /// The string does not start with `aegis1`: not an AegisLink contact card.
    #[error("not an AegisLink contact card (it must start with \"{CARD_PREFIX}\")")]
    WrongPrefix,
    /// A character outside the card alphabet (A–Z, a–z, 0–9, `-`, `_`), or
    /// one that cannot stand in its place (the last character of a card).
    #[error("invalid character {character:?} at position {position}")]
    BadCharacter {
        /// Position in the whole string, counting from 0.
        position: usize,
        /// The character found there.
        character: char,
    },
    /// The card is shorter than a card of its version: part of it is missing.
    #[error("the card is truncated ({len} characters, expected {expected})")]
    Truncated {
        /// Characters found.
        len: usize,
        /// Characters a card of this version has.
        expected: usize,
    },
    /// The card is longer than a card of its version.
    #[error("the card is too long ({len} characters, expected {expected})")]
    Oversized {
        /// Characters found.
        len: usize,
        /// Characters a card of this version has (or the decoder's limit).
        expected: usize,
    },
    /// The checksum does not match: the card was mistyped or damaged in copying.
    #[error("checksum mismatch: the card was mistyped or damaged")]
    BadChecksum,
    /// An intact card of a format version this client does not know.
    #[error("card format version {0} is not supported by this client")]
    UnknownVersion(u8),
    /// The checksum matches but a signature does not verify: the card was altered.
    #[error("the card was altered: {0}")]
    BadSignature(&'static str),
    /// The checksum and signatures are fine but a field is unusable.
    #[error("the card is invalid: {0}")]
    Invalid(&'static str),
}

/// A contact's public keys and address.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ContactCard {
    /// The contact's identity and signed prekeys.
    pub bundle: PrekeyBundle,
    /// The gateway holding the contact's mailbox (its node id).
    pub gateway: NodeId,
    /// The contact's mailbox at that gateway.
    pub mailbox: MailboxId,
    /// The X25519 key that packets for the mailbox are sealed to.
    pub mailbox_key: PublicKey,
    /// The identity's signature over all of the above.
    pub signature: [u8; CARD_SIGNATURE_LEN],
}

impl ContactCard {
    /// Builds and signs the card of `identity`, whose current prekeys are
    /// `signed_prekey` and `pq_prekey`, reachable at `mailbox` on `gateway`.
    pub fn new(
        identity: &Identity,
        signed_prekey: &SignedPrekey,
        pq_prekey: &PqPrekey,
        gateway: NodeId,
        mailbox: MailboxId,
        mailbox_key: PublicKey,
    ) -> Self {
        let mut card = ContactCard {
            bundle: PrekeyBundle {
                identity: identity.public(),
                signed_prekey: signed_prekey.public(),
                pq_prekey: pq_prekey.public(),
            },
            gateway,
            mailbox,
            mailbox_key,
            signature: [0; CARD_SIGNATURE_LEN],
        };
        let secret = identity.to_secret_bytes();
        let mut seed = Zeroizing::new([0u8; 32]);
        seed.copy_from_slice(&secret[..32]);
        let signing = SigningKey::from_bytes(&seed);
        card.signature = signing.sign(&card.signed_message(CARD_VERSION)).to_bytes();
        card
    }

    /// `context ‖ version ‖ body without the signature`.
    fn signed_message(&self, version: u8) -> Vec<u8> {
        let mut msg = Vec::with_capacity(CARD_SIGNATURE_CONTEXT.len() + 1 + CARD_BODY_LEN);
        msg.extend_from_slice(CARD_SIGNATURE_CONTEXT);
        msg.push(version);
        self.encode_unsigned(&mut msg);
        msg
    }

    fn encode_unsigned(&self, out: &mut Vec<u8>) {
        out.extend_from_slice(&self.bundle.encode());
        out.extend_from_slice(&self.gateway.0);
        out.extend_from_slice(&self.mailbox.0);
        out.extend_from_slice(self.mailbox_key.as_bytes());
    }

    /// Checks every signature (identity key, both prekeys, the card) and
    /// that the address fields are usable.
    pub fn verify(&self) -> Result<(), CardError> {
        self.bundle.verify().map_err(card_signature_error)?;
        self.verify_card()
    }

    /// The card signature and the address fields (the bundle is checked apart).
    fn verify_card(&self) -> Result<(), CardError> {
        let signer = VerifyingKey::from_bytes(&self.bundle.identity.signing)
            .map_err(|_| CardError::BadSignature("identity key"))?;
        signer
            .verify_strict(
                &self.signed_message(CARD_VERSION),
                &Signature::from_bytes(&self.signature),
            )
            .map_err(|_| CardError::BadSignature("card"))?;
        if self.mailbox.0 == DROP_DESTINATION {
            return Err(CardError::Invalid("reserved mailbox id"));
        }
        if is_low_order(&self.mailbox_key) {
            return Err(CardError::Invalid("low-order mailbox key"));
        }
        Ok(())
    }

    /// The card as a printable string (`aegis1…`, URL-safe, no padding).
    pub fn encode(&self) -> String {
        let mut bytes = Vec::with_capacity(CARD_BYTES_LEN);
        bytes.push(CARD_VERSION);
        self.encode_unsigned(&mut bytes);
        bytes.extend_from_slice(&self.signature);
        let checksum = checksum(&bytes);
        bytes.extend_from_slice(&checksum);
        let mut out = String::with_capacity(CARD_STRING_LEN);
        out.push_str(CARD_PREFIX);
        URL_SAFE_NO_PAD.encode_string(&bytes, &mut out);
        out
    }

    /// Parses and verifies a card string. Surrounding whitespace is ignored;
    /// anything else that is not exactly a valid card is an error.
    pub fn decode(card: &str) -> Result<Self, CardError> {
        let card = card.trim();
        if card.len() > MAX_CARD_STRING_LEN {
            return Err(CardError::Oversized {
                len: card.len(),
                expected: MAX_CARD_STRING_LEN,
            });
        }
        let Some(encoded) = card.strip_prefix(CARD_PREFIX) else {
            return Err(CardError::WrongPrefix);
        };
        let bytes = decode_base64(encoded)?;
        let Some((&version, rest)) = bytes.split_first() else {
            return Err(CardError::Truncated {
                len: card.len(),
                expected: CARD_STRING_LEN,
            });
        };
        if version != CARD_VERSION {
            // An intact card from a newer client, or a typo in the first
            // characters: only the checksum can tell which.
            return if checksum_matches(&bytes) {
                Err(CardError::UnknownVersion(version))
            } else {
                Err(CardError::BadChecksum)
            };
        }
        if bytes.len() < CARD_BYTES_LEN {
            return Err(CardError::Truncated {
                len: card.len(),
                expected: CARD_STRING_LEN,
            });
        }
        if bytes.len() > CARD_BYTES_LEN {
            return Err(CardError::Oversized {
                len: card.len(),
                expected: CARD_STRING_LEN,
            });
        }
        if !checksum_matches(&bytes) {
            return Err(CardError::BadChecksum);
        }
        let body = &rest[..CARD_BODY_LEN];
        // Parsing the bundle verifies its signatures.
        let card = Self::parse_body(body)?;
        card.verify_card()?;
        Ok(card)
    }

    /// Splits a version-1 body into its fields; verification is separate.
    fn parse_body(body: &[u8]) -> Result<Self, CardError> {
        let (bundle, rest) = body.split_at(PrekeyBundle::LEN);
        let bundle = PrekeyBundle::decode(bundle).map_err(card_signature_error)?;
        let (gateway, rest) = rest.split_at(NODE_ID_LEN);
        let (mailbox, rest) = rest.split_at(MAILBOX_ID_LEN);
        let (mailbox_key, signature) = rest.split_at(X25519_KEY_LEN);
        Ok(ContactCard {
            bundle,
            gateway: NodeId(array(gateway)),
            mailbox: MailboxId(array(mailbox)),
            mailbox_key: PublicKey::from(array::<X25519_KEY_LEN>(mailbox_key)),
            signature: array(signature),
        })
    }
}

impl fmt::Display for ContactCard {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.encode())
    }
}

impl FromStr for ContactCard {
    type Err = CardError;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        ContactCard::decode(s)
    }
}

fn card_signature_error(e: EdgeError) -> CardError {
    match e {
        EdgeError::BadSignature(what) => CardError::BadSignature(what),
        EdgeError::InvalidKey(_) => CardError::BadSignature("invalid public key"),
        _ => CardError::Invalid("prekey bundle"),
    }
}

fn array<const N: usize>(bytes: &[u8]) -> [u8; N] {
    let mut out = [0u8; N];
    out.copy_from_slice(bytes);
    out
}

fn checksum(data: &[u8]) -> [u8; CARD_CHECKSUM_LEN] {
    let digest = Sha256::new()
        .chain_update(CARD_PREFIX.as_bytes())
        .chain_update(data)
        .finalize();
    array(&digest[..CARD_CHECKSUM_LEN])
}

/// Whether the last bytes of `bytes` are the checksum of the ones before.
fn checksum_matches(bytes: &[u8]) -> bool {
    if bytes.len() < CARD_CHECKSUM_LEN {
        return false;
    }
    let (data, sum) = bytes.split_at(bytes.len() - CARD_CHECKSUM_LEN);
    checksum(data) == sum
}

/// A low-order point gives an all-zero shared secret with every key; a
/// clamped scalar is a multiple of the cofactor, so any fixed one finds it.
fn is_low_order(key: &PublicKey) -> bool {
    !StaticSecret::from([0x11; 32])
        .diffie_hellman(key)
        .was_contributory()
}

/// Strict base64url without padding; positions in errors count the prefix.
fn decode_base64(encoded: &str) -> Result<Vec<u8>, CardError> {
    let position_of = |offset: usize| CARD_PREFIX.len() + offset;
    let char_at = |offset: usize| {
        encoded
            .get(offset..)
            .and_then(|s| s.chars().next())
            .unwrap_or('\u{FFFD}')
    };
    // Characters first, so that a stray character is reported as such
    // rather than as a length problem.
    if let Some((offset, character)) = encoded
        .char_indices()
        .find(|(_, c)| !(c.is_ascii_alphanumeric() || *c == '-' || *c == '_'))
    {
        return Err(CardError::BadCharacter {
            position: position_of(offset),
            character,
        });
    }
    URL_SAFE_NO_PAD.decode(encoded).map_err(|e| match e {
        base64::DecodeError::InvalidByte(offset, _)
        | base64::DecodeError::InvalidLastSymbol { offset, .. } => CardError::BadCharacter {
            position: position_of(offset),
            character: char_at(offset),
        },
        // 4k+1 characters cannot be base64, nor can padding appear here.
        base64::DecodeError::InvalidLength(_) | base64::DecodeError::InvalidPadding => {
            CardError::Truncated {
                len: position_of(encoded.len()),
                expected: CARD_STRING_LEN,
            }
        }
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use rand::SeedableRng;
    use rand_chacha::ChaCha20Rng;

    fn card(seed: u64) -> ContactCard {
        let mut rng = ChaCha20Rng::seed_from_u64(seed);
        let identity = Identity::generate(&mut rng);
        let spk = identity.new_signed_prekey(&mut rng, 1);
        let pq = identity.new_pq_prekey(&mut rng, 2);
        let mailbox_secret = StaticSecret::random_from_rng(&mut rng);
        ContactCard::new(
            &identity,
            &spk,
            &pq,
            NodeId([7; 32]),
            MailboxId::random(&mut rng),
            PublicKey::from(&mailbox_secret),
        )
    }

    /// Re-encodes altered card bytes with a correct checksum.
    fn rechecksummed(mut bytes: Vec<u8>) -> String {
        bytes.truncate(bytes.len() - CARD_CHECKSUM_LEN);
        let sum = checksum(&bytes);
        bytes.extend_from_slice(&sum);
        format!("{CARD_PREFIX}{}", URL_SAFE_NO_PAD.encode(&bytes))
    }

    fn raw(s: &str) -> Vec<u8> {
        URL_SAFE_NO_PAD
            .decode(s.strip_prefix(CARD_PREFIX).unwrap())
            .unwrap()
    }

    #[test]
    fn cards_round_trip_at_the_documented_length() {
        let c = card(1);
        let s = c.encode();
        assert_eq!(s.len(), CARD_STRING_LEN);
        assert!(s.starts_with("aegis1A"));
        assert_eq!(ContactCard::decode(&s).unwrap(), c);
        assert_eq!(format!("  {c}\n").parse::<ContactCard>().unwrap(), c);
    }

    #[test]
    fn every_single_character_change_is_rejected() {
        let s = card(2).encode();
        let alphabet: Vec<char> = ('A'..='Z')
            .chain('a'..='z')
            .chain('0'..='9')
            .chain(['-', '_', '=', ' ', '+', '/', 'é'])
            .collect();
        let chars: Vec<char> = s.chars().collect();
        let mut tried = 0;
        // Every position, against a spread of replacements (all 64 symbols
        // at the prefix, the ends and a sample of positions in between).
        for i in 0..chars.len() {
            let exhaustive = i < 10 || i + 4 >= chars.len() || i % 97 == 0;
            for (k, &c) in alphabet.iter().enumerate() {
                if c == chars[i] || !(exhaustive || k % 13 == i % 13) {
                    continue;
                }
                let mut changed = chars.clone();
                changed[i] = c;
                let changed: String = changed.into_iter().collect();
                assert!(
                    ContactCard::decode(&changed).is_err(),
                    "position {i} → {c:?} accepted"
                );
                tried += 1;
            }
        }
        assert!(tried > 8_000, "{tried}");
    }

    #[test]
    fn errors_say_what_is_wrong() {
        let s = card(3).encode();
        assert_eq!(
            ContactCard::decode(&s.replacen("aegis1", "aegis2", 1)),
            Err(CardError::WrongPrefix)
        );
        assert_eq!(ContactCard::decode(""), Err(CardError::WrongPrefix));
        let mut bad = s.clone();
        bad.insert(100, '!');
        assert_eq!(
            ContactCard::decode(&bad),
            Err(CardError::BadCharacter {
                position: 100,
                character: '!'
            })
        );
        // A flipped character in the body: the checksum catches it.
        let mut typo: Vec<char> = s.chars().collect();
        typo[500] = if typo[500] == 'x' { 'y' } else { 'x' };
        assert_eq!(
            ContactCard::decode(&typo.into_iter().collect::<String>()),
            Err(CardError::BadChecksum)
        );
        // Cut on a group boundary, so the remainder is valid base64.
        assert!(matches!(
            ContactCard::decode(&s[..s.len() - 6]),
            Err(CardError::Truncated { .. })
        ));
        assert!(matches!(
            ContactCard::decode(&s[..CARD_PREFIX.len()]),
            Err(CardError::Truncated { .. })
        ));
        assert!(matches!(
            ContactCard::decode(&format!("{s}AAAA")),
            Err(CardError::Oversized { .. })
        ));
        assert!(matches!(
            ContactCard::decode(&"A".repeat(MAX_CARD_STRING_LEN + 1)),
            Err(CardError::Oversized { .. })
        ));
        // An intact card of a later version.
        let mut future = raw(&s);
        future[0] = 2;
        assert_eq!(
            ContactCard::decode(&rechecksummed(future)),
            Err(CardError::UnknownVersion(2))
        );
    }

    #[test]
    fn a_tampered_card_with_a_recomputed_checksum_fails_on_its_signature() {
        let s = card(4).encode();
        let bytes = raw(&s);
        let body = 1..1 + CARD_BODY_LEN;
        // Every byte of the body, including the prekey ids, which the bundle
        // alone does not sign.
        for i in body.clone() {
            let mut bad = bytes.clone();
            bad[i] ^= 0x01;
            let err = ContactCard::decode(&rechecksummed(bad)).unwrap_err();
            assert!(
                matches!(err, CardError::BadSignature(_) | CardError::Invalid(_)),
                "byte {i}: {err:?}"
            );
        }
        // Redirecting the card to another mailbox is caught by the card signature.
        let mut redirected = bytes.clone();
        redirected[1 + PrekeyBundle::LEN + NODE_ID_LEN] ^= 0x80;
        assert_eq!(
            ContactCard::decode(&rechecksummed(redirected)),
            Err(CardError::BadSignature("card"))
        );
    }

    #[test]
    fn a_card_must_not_name_the_drop_address_or_a_low_order_key() {
        let mut c = card(5);
        c.mailbox = MailboxId(DROP_DESTINATION);
        assert_eq!(c.verify(), Err(CardError::BadSignature("card")));
        let mut rng = ChaCha20Rng::seed_from_u64(6);
        let identity = Identity::generate(&mut rng);
        let spk = identity.new_signed_prekey(&mut rng, 1);
        let pq = identity.new_pq_prekey(&mut rng, 2);
        let signed_drop = ContactCard::new(
            &identity,
            &spk,
            &pq,
            NodeId([1; 32]),
            MailboxId(DROP_DESTINATION),
            PublicKey::from([9; 32]),
        );
        assert_eq!(
            ContactCard::decode(&signed_drop.encode()),
            Err(CardError::Invalid("reserved mailbox id"))
        );
        let low_order = ContactCard::new(
            &identity,
            &spk,
            &pq,
            NodeId([1; 32]),
            MailboxId([3; 32]),
            PublicKey::from([0; 32]),
        );
        assert_eq!(
            ContactCard::decode(&low_order.encode()),
            Err(CardError::Invalid("low-order mailbox key"))
        );
    }
}
