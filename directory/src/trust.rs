//! The one description of a directory authority that nodes, clients and
//! other authorities trust: where its API is and the key it signs with.
//!
//! Configuration files (TOML) write the key as 64 hex digits; binary
//! encodings (a client's postcard profile) keep the 32 bytes as they are.

use std::fmt;

use serde::{Deserialize, Deserializer, Serialize, Serializer};

use crate::verify::Verifier;

/// A directory authority someone trusts.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct TrustedAuthority {
    /// Base URL of its HTTP API, e.g. `http://192.0.2.7:7900`.
    pub url: String,
    /// Its pinned Ed25519 public key.
    #[serde(with = "key_encoding")]
    pub public_key: [u8; 32],
}

/// Why a `URL=KEY` or hex key could not be read.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum TrustError {
    /// The key is not 64 hex digits.
    #[error("authority key {0:?} is not 64 hex digits")]
    Key(String),
    /// The text is not `URL=KEY`.
    #[error("authority {0:?} is not URL=HEXKEY")]
    Form(String),
    /// The URL is not an http(s) URL.
    #[error("authority URL {0:?} does not start with http:// or https://")]
    Url(String),
}

impl TrustedAuthority {
    /// Reads the `URL=HEXKEY` form the command lines take.
    pub fn parse(text: &str) -> Result<Self, TrustError> {
        let (url, key) = text
            .rsplit_once('=')
            .ok_or_else(|| TrustError::Form(text.to_owned()))?;
        let authority = TrustedAuthority {
            url: url.trim_end_matches('/').to_owned(),
            public_key: parse_key(key)?,
        };
        authority.check()?;
        Ok(authority)
    }

    /// Refuses a URL no HTTP client could use.
    pub fn check(&self) -> Result<(), TrustError> {
        if self.url.starts_with("http://") || self.url.starts_with("https://") {
            Ok(())
        } else {
            Err(TrustError::Url(self.url.clone()))
        }
    }

    /// A verifier pinning these authorities' keys (majority threshold).
    pub fn verifier(authorities: &[TrustedAuthority]) -> Verifier {
        Verifier::new(authorities.iter().map(|a| a.public_key))
    }

    /// Their base URLs, in order.
    pub fn urls(authorities: &[TrustedAuthority]) -> Vec<String> {
        authorities.iter().map(|a| a.url.clone()).collect()
    }
}

impl fmt::Display for TrustedAuthority {
    /// The `URL=HEXKEY` form [`TrustedAuthority::parse`] reads.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}={}", self.url, hex::encode(self.public_key))
    }
}

/// Reads a 32-byte key from 64 hex digits.
pub fn parse_key(text: &str) -> Result<[u8; 32], TrustError> {
    hex::decode(text.trim())
        .ok()
        .and_then(|bytes| <[u8; 32]>::try_from(bytes).ok())
        .ok_or_else(|| TrustError::Key(text.to_owned()))
}

mod key_encoding {
    use super::*;

    pub fn serialize<S: Serializer>(key: &[u8; 32], serializer: S) -> Result<S::Ok, S::Error> {
        if serializer.is_human_readable() {
            hex::encode(key).serialize(serializer)
        } else {
            key.serialize(serializer)
        }
    }

    pub fn deserialize<'de, D: Deserializer<'de>>(deserializer: D) -> Result<[u8; 32], D::Error> {
        if deserializer.is_human_readable() {
            let text = String::deserialize(deserializer)?;
            parse_key(&text).map_err(serde::de::Error::custom)
        } else {
            <[u8; 32]>::deserialize(deserializer)
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn sample() -> TrustedAuthority {
        TrustedAuthority {
            url: "http://192.0.2.7:7900".into(),
            public_key: [0xab; 32],
        }
    }

    #[test]
    fn binary_encoding_is_url_then_raw_key() {
        let bytes = postcard::to_allocvec(&sample()).unwrap();
        // The layout client profiles have always used: the URL as a
        // length-prefixed string, then the 32 key bytes as they are.
        let mut expected = postcard::to_allocvec("http://192.0.2.7:7900").unwrap();
        expected.extend_from_slice(&[0xab; 32]);
        assert_eq!(bytes, expected);
        let back: TrustedAuthority = postcard::from_bytes(&bytes).unwrap();
        assert_eq!(back, sample());
    }

    #[test]
    fn url_equals_key_round_trips_and_refuses_bad_forms() {
        let text = sample().to_string();
        assert_eq!(TrustedAuthority::parse(&text).unwrap(), sample());
        assert!(matches!(
            TrustedAuthority::parse("http://x"),
            Err(TrustError::Form(_))
        ));
        assert!(matches!(
            TrustedAuthority::parse("http://x=abcd"),
            Err(TrustError::Key(_))
        ));
        let ftp = format!("ftp://x={}", hex::encode([1u8; 32]));
        assert!(matches!(
            TrustedAuthority::parse(&ftp),
            Err(TrustError::Url(_))
        ));
    }
}
