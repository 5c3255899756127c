//! Votes: what one authority saw for the coming epoch, signed by it.

use ed25519_dalek::SigningKey;
use serde::{Deserialize, Serialize};

use crate::codec::{self, DecodeError, SignatureBytes};
use crate::consensus::{NetworkParameters, ParameterError};
use crate::constants::{MAX_DOCUMENT_BYTES, MAX_NODES, VOTE_DOMAIN};
use crate::descriptor::{DescriptorError, SignedDescriptor};
use crate::trust::TrustedAuthority;

/// The signed content of a vote. Field order is the encoding order.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct VoteBody {
    /// The voting authority's Ed25519 public key.
    pub authority: [u8; 32],
    /// The epoch whose document this vote is for.
    pub epoch: u64,
    /// The parameters this authority is configured with.
    pub parameters: NetworkParameters,
    /// Hash of the most recent document this authority holds before `epoch`.
    pub previous: Option<[u8; 32]>,
    /// Every valid descriptor for `epoch` it received, sorted by identity,
    /// one per node.
    pub descriptors: Vec<SignedDescriptor>,
    /// The authorities it is configured with, itself included, as
    /// clients should reach them; sorted by key.
    pub authorities: Vec<TrustedAuthority>,
}

/// A vote with the authority's signature over its canonical encoding.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct SignedVote {
    /// The signed content.
    pub body: VoteBody,
    /// Signature by `body.authority`.
    pub signature: SignatureBytes,
}

/// Why a vote is refused.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
pub enum VoteError {
    /// Not a vote encoding.
    #[error("undecodable vote: {0}")]
    Decode(#[from] DecodeError),
    /// The signature does not verify.
    #[error("vote signature does not verify")]
    BadSignature,
    /// The parameters are out of range.
    #[error(transparent)]
    Parameters(#[from] ParameterError),
    /// The descriptor list is unsorted, has duplicates or is too long.
    #[error("descriptor list is not sorted, unique and bounded")]
    DescriptorList,
    /// The authority list is unsorted, too long or has an unusable URL.
    #[error("invalid authority list: {0}")]
    Authorities(&'static str),
    /// One descriptor is invalid.
    #[error("descriptor {index}: {error}")]
    Descriptor {
        /// Position in the list.
        index: usize,
        /// What is wrong with it.
        error: DescriptorError,
    },
}

impl VoteBody {
    /// Signs the vote with the authority key.
    pub fn sign(self, key: &SigningKey) -> SignedVote {
        let signature = codec::sign(key, VOTE_DOMAIN, &codec::encode(&self));
        SignedVote {
            body: self,
            signature,
        }
    }
}

impl SignedVote {
    /// Canonical encoding.
    pub fn to_bytes(&self) -> Vec<u8> {
        codec::encode(self)
    }

    /// Decodes without verifying.
    pub fn from_bytes(bytes: &[u8]) -> Result<Self, VoteError> {
        Ok(codec::decode(bytes, MAX_DOCUMENT_BYTES)?)
    }

    /// The voter a vote's bytes claim, read without decoding them: the
    /// canonical encoding begins with the body, whose first field is the
    /// voter's 32-byte key.
    pub fn claimed_voter(bytes: &[u8]) -> Option<[u8; 32]> {
        bytes.get(..32)?.try_into().ok()
    }

    /// Checks a vote's signature on its raw bytes, before anything is
    /// decoded: the canonical encoding is the body's encoding followed by
    /// the 64 signature bytes, and the signature covers exactly that body
    /// encoding. A stranger's or a forged upload costs a hash and one
    /// signature check, not a decode of up to [`MAX_DOCUMENT_BYTES`].
    pub fn authenticate(bytes: &[u8]) -> Result<[u8; 32], VoteError> {
        let voter = Self::claimed_voter(bytes).ok_or(VoteError::BadSignature)?;
        let split = bytes
            .len()
            .checked_sub(64)
            .filter(|&at| at >= 32)
            .ok_or(VoteError::BadSignature)?;
        let signature: [u8; 64] = bytes[split..]
            .try_into()
            .map_err(|_| VoteError::BadSignature)?;
        if codec::verify(
            &voter,
            VOTE_DOMAIN,
            &bytes[..split],
            &SignatureBytes(signature),
        ) {
            Ok(voter)
        } else {
            Err(VoteError::BadSignature)
        }
    }

    /// Checks the authority's signature, the parameters and every descriptor
    /// (bounds, signature and that it is for the vote's epoch). The caller
    /// checks that the authority is one it pins.
    pub fn verify(&self) -> Result<(), VoteError> {
        if !codec::verify(
            &self.body.authority,
            VOTE_DOMAIN,
            &codec::encode(&self.body),
            &self.signature,
        ) {
            return Err(VoteError::BadSignature);
        }
        self.body.parameters.validate()?;
        TrustedAuthority::check_list(&self.body.authorities).map_err(VoteError::Authorities)?;
        let list = &self.body.descriptors;
        if list.len() > MAX_NODES || !list.windows(2).all(|w| w[0].identity() < w[1].identity()) {
            return Err(VoteError::DescriptorList);
        }
        for (index, descriptor) in list.iter().enumerate() {
            descriptor
                .verify_for_epoch(self.body.epoch)
                .map_err(|error| VoteError::Descriptor { index, error })?;
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::descriptor::Role;
    use crate::descriptor::tests::sample;

    /// A vote for epoch 3 listing one mix and one gateway, and its key.
    fn two_node_vote() -> (SigningKey, SignedVote) {
        let key = SigningKey::from_bytes(&[5; 32]);
        let mut descriptors = vec![sample(1, 3, Role::Mix), sample(2, 3, Role::Gateway)];
        descriptors.sort_by_key(SignedDescriptor::identity);
        let vote = VoteBody {
            authority: key.verifying_key().to_bytes(),
            epoch: 3,
            parameters: NetworkParameters::standard(10_000),
            previous: None,
            descriptors,
            authorities: vec![],
        }
        .sign(&key);
        (key, vote)
    }

    #[test]
    fn vote_round_trips_and_verifies() {
        let (_, vote) = two_node_vote();
        let back = SignedVote::from_bytes(&vote.to_bytes()).unwrap();
        assert_eq!(back, vote);
        assert_eq!(back.verify(), Ok(()));
        let mut tampered = vote.clone();
        tampered.body.epoch = 4;
        assert_eq!(tampered.verify(), Err(VoteError::BadSignature));
    }

    #[test]
    fn raw_bytes_authenticate_before_decoding() {
        let (key, vote) = two_node_vote();
        let bytes = vote.to_bytes();
        assert_eq!(
            SignedVote::authenticate(&bytes),
            Ok(key.verifying_key().to_bytes())
        );
        // Every single-bit flip fails before any decoding.
        for i in 0..bytes.len() {
            let mut bad = bytes.clone();
            bad[i] ^= 1;
            assert!(SignedVote::authenticate(&bad).is_err(), "flip at {i}");
        }
        assert!(SignedVote::authenticate(&bytes[..bytes.len() - 1]).is_err());
        assert!(SignedVote::authenticate(&bytes[..40]).is_err());
        assert!(SignedVote::authenticate(&[]).is_err());
    }

    #[test]
    fn descriptors_for_another_epoch_spoil_the_vote() {
        let key = SigningKey::from_bytes(&[5; 32]);
        let vote = VoteBody {
            authority: key.verifying_key().to_bytes(),
            epoch: 3,
            parameters: NetworkParameters::standard(10_000),
            previous: None,
            descriptors: vec![sample(1, 4, Role::Mix)],
            authorities: vec![],
        }
        .sign(&key);
        assert!(matches!(
            vote.verify(),
            Err(VoteError::Descriptor { index: 0, .. })
        ));
    }

    #[test]
    fn an_unsorted_authority_list_spoils_the_vote() {
        let key = SigningKey::from_bytes(&[5; 32]);
        let at = |k: u8| TrustedAuthority {
            url: "http://192.0.2.1:7900".into(),
            public_key: [k; 32],
        };
        let vote = VoteBody {
            authority: key.verifying_key().to_bytes(),
            epoch: 3,
            parameters: NetworkParameters::standard(10_000),
            previous: None,
            descriptors: vec![],
            authorities: vec![at(2), at(1)],
        }
        .sign(&key);
        assert!(matches!(vote.verify(), Err(VoteError::Authorities(_))));
    }
}
