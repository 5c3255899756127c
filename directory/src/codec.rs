//! The canonical binary encoding shared by every signed object, and the
//! 64-byte signature type that travels inside them.
//!
//! Everything is postcard over structs with a fixed field order; lists are
//! sorted by their owners before encoding. Decoding is strict: trailing bytes
//! are refused and the decoded value must re-encode to exactly the input, so
//! that one object has exactly one byte string and signatures over bytes are
//! signatures over values.

use ed25519_dalek::{Signature, Signer, SigningKey, VerifyingKey};
use serde::de::{DeserializeOwned, Error as _, SeqAccess, Visitor};
use serde::ser::SerializeTuple;
use serde::{Deserialize, Deserializer, Serialize, Serializer};
use std::fmt;

/// Why bytes could not be decoded into a protocol object.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum DecodeError {
    /// The input is larger than the object's limit.
    #[error("encoding is {len} bytes, limit is {limit}")]
    TooLarge {
        /// Input length.
        len: usize,
        /// The limit that applies.
        limit: usize,
    },
    /// The bytes are not a valid encoding.
    #[error("malformed encoding: {0}")]
    Malformed(String),
    /// Bytes follow the encoded object.
    #[error("{0} trailing bytes after the encoded object")]
    Trailing(usize),
    /// The bytes decode but are not the canonical encoding of the value.
    #[error("non-canonical encoding")]
    NonCanonical,
}

/// Encodes a value canonically.
pub fn encode<T: Serialize>(value: &T) -> Vec<u8> {
    // postcard only fails on types it cannot represent (maps with unknown
    // length, etc.); every protocol type is plain structs, enums and Vecs.
    postcard::to_stdvec(value).unwrap_or_default()
}

/// Decodes a value, refusing oversized, trailing and non-canonical input.
pub fn decode<T: Serialize + DeserializeOwned>(
    bytes: &[u8],
    limit: usize,
) -> Result<T, DecodeError> {
    if bytes.len() > limit {
        return Err(DecodeError::TooLarge {
            len: bytes.len(),
            limit,
        });
    }
    let (value, rest): (T, &[u8]) =
        postcard::take_from_bytes(bytes).map_err(|e| DecodeError::Malformed(e.to_string()))?;
    if !rest.is_empty() {
        return Err(DecodeError::Trailing(rest.len()));
    }
    if encode(&value) != bytes {
        return Err(DecodeError::NonCanonical);
    }
    Ok(value)
}

/// An Ed25519 signature as 64 raw bytes.
#[derive(Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct SignatureBytes(pub [u8; 64]);

impl fmt::Debug for SignatureBytes {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "SignatureBytes({}..)", hex::encode(&self.0[..8]))
    }
}

impl Serialize for SignatureBytes {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        // A tuple, not a sequence: fixed length, no length prefix.
        let mut tuple = serializer.serialize_tuple(64)?;
        for byte in &self.0 {
            tuple.serialize_element(byte)?;
        }
        tuple.end()
    }
}

impl<'de> Deserialize<'de> for SignatureBytes {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        struct SigVisitor;
        impl<'de> Visitor<'de> for SigVisitor {
            type Value = SignatureBytes;
            fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str("64 signature bytes")
            }
            fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<SignatureBytes, A::Error> {
                let mut out = [0u8; 64];
                for (i, slot) in out.iter_mut().enumerate() {
                    *slot = seq
                        .next_element()?
                        .ok_or_else(|| A::Error::invalid_length(i, &self))?;
                }
                Ok(SignatureBytes(out))
            }
        }
        deserializer.deserialize_tuple(64, SigVisitor)
    }
}

/// Signs `domain ‖ message` with `key`.
pub fn sign(key: &SigningKey, domain: &[u8], message: &[u8]) -> SignatureBytes {
    let mut input = Vec::with_capacity(domain.len() + message.len());
    input.extend_from_slice(domain);
    input.extend_from_slice(message);
    SignatureBytes(key.sign(&input).to_bytes())
}

/// Checks a signature over `domain ‖ message` by the Ed25519 key `signer`.
/// Uses strict verification (no small-order keys, canonical `s`).
pub fn verify(
    signer: &[u8; 32],
    domain: &[u8],
    message: &[u8],
    signature: &SignatureBytes,
) -> bool {
    let Ok(key) = VerifyingKey::from_bytes(signer) else {
        return false;
    };
    let mut input = Vec::with_capacity(domain.len() + message.len());
    input.extend_from_slice(domain);
    input.extend_from_slice(message);
    let sig = Signature::from_bytes(&signature.0);
    key.verify_strict(&input, &sig).is_ok()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn signature_bytes_round_trip_without_length_prefix() {
        let sig = SignatureBytes([7u8; 64]);
        let bytes = encode(&sig);
        assert_eq!(bytes.len(), 64);
        assert_eq!(decode::<SignatureBytes>(&bytes, 64), Ok(sig));
        assert!(decode::<SignatureBytes>(&bytes[..63], 64).is_err());
    }

    #[test]
    fn decode_refuses_trailing_bytes() {
        let mut bytes = encode(&5u32);
        bytes.push(0);
        assert_eq!(decode::<u32>(&bytes, 16), Err(DecodeError::Trailing(1)));
    }

    #[test]
    fn domains_separate_signatures() {
        let key = SigningKey::from_bytes(&[1u8; 32]);
        let public = key.verifying_key().to_bytes();
        let sig = sign(&key, b"a", b"msg");
        assert!(verify(&public, b"a", b"msg", &sig));
        assert!(!verify(&public, b"b", b"msg", &sig));
    }
}
