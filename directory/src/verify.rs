//! Client-side verification of a consensus document against pinned
//! authority keys.
//!
//! Because the signatures travel with the document, a client may fetch it
//! from anywhere (a gateway's cache, a mirror) and still trust it: it counts
//! the valid signatures by distinct pinned authorities over the document's
//! hash and accepts only with at least the threshold. Signatures by keys it
//! does not pin, repeated signers and signatures that do not verify are not
//! counted (as Tor clients ignore signatures from unknown authorities), so a
//! cache cannot inflate the count.

use std::collections::BTreeSet;

use crate::consensus::{DocumentError, SignedConsensus};

/// Why a document is not accepted.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
pub enum VerifyError {
    /// The bytes are not a well-formed document.
    #[error(transparent)]
    Document(#[from] DocumentError),
    /// Fewer valid signatures by distinct pinned authorities than required.
    #[error(
        "{valid} valid signatures by pinned authorities, {threshold} required \
         ({unknown} by unknown keys, {invalid} invalid, {duplicate} duplicates)"
    )]
    BelowThreshold {
        /// Distinct pinned authorities with a valid signature.
        valid: usize,
        /// Required count.
        threshold: usize,
        /// Signatures by keys not pinned.
        unknown: usize,
        /// Signatures by pinned keys that do not verify or sign another hash.
        invalid: usize,
        /// Repeated signatures by one authority.
        duplicate: usize,
    },
    /// The document is for another epoch than asked for.
    #[error("document is for epoch {got}, expected {expected}")]
    WrongEpoch {
        /// Epoch in the document.
        got: u64,
        /// Epoch expected.
        expected: u64,
    },
    /// The document's validity window has ended.
    #[error("document for epoch {epoch} expired at {valid_until_ms} (now {now_ms})")]
    Expired {
        /// Epoch in the document.
        epoch: u64,
        /// End of validity, Unix ms.
        valid_until_ms: u64,
        /// The time checked against.
        now_ms: u64,
    },
}

/// Checks documents against a pinned set of authority keys and a threshold.
#[derive(Debug, Clone)]
pub struct Verifier {
    authorities: BTreeSet<[u8; 32]>,
    threshold: usize,
}

impl Verifier {
    /// A verifier pinning `authorities` with the majority threshold
    /// ⌊n/2⌋ + 1.
    pub fn new(authorities: impl IntoIterator<Item = [u8; 32]>) -> Self {
        let authorities: BTreeSet<_> = authorities.into_iter().collect();
        let threshold = majority(authorities.len());
        Verifier {
            authorities,
            threshold,
        }
    }

    /// A verifier with an explicit threshold; it is never allowed below the
    /// majority, which is what makes two conflicting documents impossible.
    pub fn with_threshold(
        authorities: impl IntoIterator<Item = [u8; 32]>,
        threshold: usize,
    ) -> Self {
        let mut verifier = Verifier::new(authorities);
        verifier.threshold = threshold.max(verifier.threshold);
        verifier
    }

    /// Signatures required.
    pub fn threshold(&self) -> usize {
        self.threshold
    }

    /// Whether `key` is one of the pinned authority keys.
    pub fn trusts(&self, key: &[u8; 32]) -> bool {
        self.authorities.contains(key)
    }

    /// The pinned authority keys.
    pub fn authorities(&self) -> &BTreeSet<[u8; 32]> {
        &self.authorities
    }

    /// Decodes and verifies document bytes.
    pub fn verify_bytes(
        &self,
        bytes: &[u8],
        expected_epoch: Option<u64>,
        now_ms: u64,
    ) -> Result<SignedConsensus, VerifyError> {
        let doc = SignedConsensus::from_bytes(bytes)?;
        self.verify(&doc, expected_epoch, now_ms)?;
        Ok(doc)
    }

    /// Verifies a decoded document: structure, epoch, expiry, signatures.
    pub fn verify(
        &self,
        doc: &SignedConsensus,
        expected_epoch: Option<u64>,
        now_ms: u64,
    ) -> Result<(), VerifyError> {
        doc.body.validate()?;
        let epoch = doc.body.epoch;
        if let Some(expected) = expected_epoch
            && expected != epoch
        {
            return Err(VerifyError::WrongEpoch {
                got: epoch,
                expected,
            });
        }
        if now_ms >= doc.body.valid_until_ms {
            return Err(VerifyError::Expired {
                epoch,
                valid_until_ms: doc.body.valid_until_ms,
                now_ms,
            });
        }
        self.check_signatures(doc)
    }

    /// Counts valid signatures by distinct pinned authorities.
    pub fn check_signatures(&self, doc: &SignedConsensus) -> Result<(), VerifyError> {
        let hash = doc.body.hash();
        let mut signers = BTreeSet::new();
        let (mut unknown, mut invalid, mut duplicate) = (0, 0, 0);
        for signature in &doc.signatures {
            if !self.authorities.contains(&signature.authority) {
                unknown += 1;
            } else if signers.contains(&signature.authority) {
                duplicate += 1;
            } else if signature.epoch != doc.body.epoch
                || signature.document_hash != hash
                || !signature.verify()
            {
                invalid += 1;
            } else {
                signers.insert(signature.authority);
            }
        }
        if signers.len() >= self.threshold {
            Ok(())
        } else {
            Err(VerifyError::BelowThreshold {
                valid: signers.len(),
                threshold: self.threshold,
                unknown,
                invalid,
                duplicate,
            })
        }
    }
}

/// ⌊n/2⌋ + 1: the smallest count two disjoint sets of signers cannot both reach.
pub fn majority(n: usize) -> usize {
    n / 2 + 1
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::consensus::DocumentSignature;
    use crate::consensus::tests::body;
    use ed25519_dalek::SigningKey;

    fn keys() -> Vec<SigningKey> {
        (1..=3u8)
            .map(|i| SigningKey::from_bytes(&[100 + i; 32]))
            .collect()
    }

    fn signed(signers: &[&SigningKey]) -> SignedConsensus {
        let mut doc = SignedConsensus {
            body: body(5),
            signatures: vec![],
        };
        let hash = doc.body.hash();
        for key in signers {
            doc.add_signature(DocumentSignature::create(key, 5, hash));
        }
        doc
    }

    fn verifier() -> Verifier {
        Verifier::new(keys().iter().map(|k| k.verifying_key().to_bytes()))
    }

    #[test]
    fn threshold_of_pinned_signers_is_accepted() {
        let k = keys();
        let doc = signed(&[&k[0], &k[2]]);
        assert_eq!(
            verifier().verify_bytes(&doc.to_bytes(), Some(5), 0),
            Ok(doc)
        );
    }

    #[test]
    fn below_threshold_is_rejected() {
        let k = keys();
        let err = verifier()
            .verify(&signed(&[&k[1]]), Some(5), 0)
            .unwrap_err();
        assert!(
            matches!(
                err,
                VerifyError::BelowThreshold {
                    valid: 1,
                    threshold: 2,
                    ..
                }
            ),
            "{err}"
        );
    }

    #[test]
    fn unknown_signers_do_not_count() {
        let strangers: Vec<_> = (1..=3u8)
            .map(|i| SigningKey::from_bytes(&[200 + i; 32]))
            .collect();
        let doc = signed(&strangers.iter().collect::<Vec<_>>());
        let err = verifier().verify(&doc, Some(5), 0).unwrap_err();
        assert!(
            matches!(
                err,
                VerifyError::BelowThreshold {
                    valid: 0,
                    unknown: 3,
                    ..
                }
            ),
            "{err}"
        );
    }

    #[test]
    fn duplicate_signers_count_once() {
        let k = keys();
        let mut doc = signed(&[&k[0]]);
        doc.signatures.push(doc.signatures[0]);
        let err = verifier().verify(&doc, Some(5), 0).unwrap_err();
        assert!(
            matches!(
                err,
                VerifyError::BelowThreshold {
                    valid: 1,
                    duplicate: 1,
                    ..
                }
            ),
            "{err}"
        );
    }

    #[test]
    fn bad_signature_does_not_count() {
        let k = keys();
        let mut doc = signed(&[&k[0], &k[1]]);
        doc.signatures[1].signature.0[10] ^= 1;
        let err = verifier().verify(&doc, Some(5), 0).unwrap_err();
        assert!(
            matches!(
                err,
                VerifyError::BelowThreshold {
                    valid: 1,
                    invalid: 1,
                    ..
                }
            ),
            "{err}"
        );
    }

    #[test]
    fn every_single_flipped_byte_is_rejected() {
        let k = keys();
        let bytes = signed(&[&k[0], &k[1]]).to_bytes();
        let v = verifier();
        for i in 0..bytes.len() {
            let mut copy = bytes.clone();
            copy[i] ^= 0x01;
            assert!(
                v.verify_bytes(&copy, Some(5), 0).is_err(),
                "flip at byte {i} of {} accepted",
                bytes.len()
            );
        }
    }

    #[test]
    fn wrong_epoch_and_expired_are_rejected() {
        let k = keys();
        let doc = signed(&[&k[0], &k[1]]);
        assert_eq!(
            verifier().verify(&doc, Some(6), 0),
            Err(VerifyError::WrongEpoch {
                got: 5,
                expected: 6
            })
        );
        let until = doc.body.valid_until_ms;
        assert!(matches!(
            verifier().verify(&doc, None, until),
            Err(VerifyError::Expired { .. })
        ));
    }

    #[test]
    fn threshold_never_drops_below_majority() {
        let v = Verifier::with_threshold(keys().iter().map(|k| k.verifying_key().to_bytes()), 1);
        assert_eq!(v.threshold(), 2);
    }
}
