//! The one description of a directory authority that nodes, clients and
//! other authorities trust: where its API is and the key it signs with.
//!
//! Configuration files (TOML) write the key as 64 hex digits; binary
//! encodings (a client's postcard profile) keep the 32 bytes as they are.

use std::fmt;

use serde::{Deserialize, Deserializer, Serialize, Serializer};

use crate::constants::{MAX_ADDRESS_LEN, MAX_AUTHORITIES};
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

    /// The list as votes and documents carry it: sorted by key, one entry
    /// per key (the first given wins).
    pub fn canonical_list(
        authorities: impl IntoIterator<Item = TrustedAuthority>,
    ) -> Vec<TrustedAuthority> {
        let mut list: Vec<TrustedAuthority> = authorities.into_iter().collect();
        list.sort_by_key(|a| a.public_key);
        list.dedup_by_key(|a| a.public_key);
        list
    }

    /// Checks a list a vote or document carries: at most
    /// [`MAX_AUTHORITIES`] entries, strictly sorted by key, each with an
    /// http(s) URL of at most [`MAX_ADDRESS_LEN`] bytes.
    pub fn check_list(authorities: &[TrustedAuthority]) -> Result<(), &'static str> {
        if authorities.len() > MAX_AUTHORITIES {
            return Err("too many authorities");
        }
        if !authorities
            .windows(2)
            .all(|w| w[0].public_key < w[1].public_key)
        {
            return Err("authority list not sorted by key or a key listed twice");
        }
        if authorities
            .iter()
            .any(|a| a.url.len() > MAX_ADDRESS_LEN || a.check().is_err())
        {
            return Err("an authority URL is too long or not http(s)");
        }
        Ok(())
    }

    /// Whether two lists name the same authorities at the same URLs,
    /// whatever their order.
    pub fn same_list(a: &[TrustedAuthority], b: &[TrustedAuthority]) -> bool {
        Self::canonical_list(a.iter().cloned()) == Self::canonical_list(b.iter().cloned())
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
    fn lists_are_checked_for_order_size_and_urls() {
        let at = |key: u8, url: &str| TrustedAuthority {
            url: url.into(),
            public_key: [key; 32],
        };
        let list = TrustedAuthority::canonical_list([
            at(3, "http://c"),
            at(1, "http://a"),
            at(3, "http://other"),
        ]);
        assert_eq!(list, vec![at(1, "http://a"), at(3, "http://c")]);
        assert_eq!(TrustedAuthority::check_list(&list), Ok(()));
        assert!(TrustedAuthority::same_list(
            &list,
            &[at(3, "http://c"), at(1, "http://a")]
        ));
        assert!(!TrustedAuthority::same_list(&list, &[at(1, "http://a")]));
        let reversed: Vec<_> = list.iter().rev().cloned().collect();
        assert!(TrustedAuthority::check_list(&reversed).is_err());
        let twice = vec![at(1, "http://a"), at(1, "http://a")];
        assert!(TrustedAuthority::check_list(&twice).is_err());
        assert!(TrustedAuthority::check_list(&[at(1, "ftp://a")]).is_err());
        let long = format!("http://{}", "a".repeat(MAX_ADDRESS_LEN));
        assert!(TrustedAuthority::check_list(&[at(1, &long)]).is_err());
        let many: Vec<_> = (0..=MAX_AUTHORITIES as u8)
            .map(|i| at(i, "http://a"))
            .collect();
        assert!(TrustedAuthority::check_list(&many).is_err());
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
