//! The messages of the voting state machine: what goes in, what comes out,
//! why an input is refused, and how a round ended.

use serde::Serialize;

use crate::admission::AdmissionError;
use crate::codec::DecodeError;
use crate::consensus::{DocumentSignature, SignedConsensus};
use crate::descriptor::{DescriptorError, SignedDescriptor};
use crate::verify::VerifyError;
use crate::vote::{SignedVote, VoteError};

/// Something that happened to the authority.
#[derive(Debug, Clone)]
pub enum Input {
    /// A node uploaded a descriptor.
    Descriptor(SignedDescriptor),
    /// A peer sent its vote.
    Vote(SignedVote),
    /// A peer sent its signature on a document.
    Signature(DocumentSignature),
    /// A threshold-signed document fetched from a peer.
    Document(SignedConsensus),
    /// Time passed.
    Tick,
}

/// State worth keeping across restarts; replayed with [`super::Authority::restore`].
#[derive(Debug, Clone)]
pub enum Record {
    /// An accepted descriptor.
    Descriptor(SignedDescriptor),
    /// An accepted vote, own or a peer's.
    Vote(SignedVote),
    /// An accepted signature, own or a peer's.
    Signature(DocumentSignature),
    /// A threshold-signed document (again whenever it gains signatures).
    Document(SignedConsensus),
    /// Two different signed votes of one authority for one round.
    Equivocation(Box<Equivocation>),
}

/// The proof that an authority equivocated: two different votes for the
/// same round, each with its valid signature. Anyone holding the pinned
/// keys can check it ([`Equivocation::verify`]).
#[derive(Debug, Clone, PartialEq, Serialize, serde::Deserialize)]
pub struct Equivocation {
    /// One vote.
    pub first: SignedVote,
    /// A different vote of the same authority for the same round.
    pub second: SignedVote,
}

impl Equivocation {
    /// Whether this is a proof: same authority, same epoch, different
    /// bodies, both signatures valid.
    pub fn verify(&self) -> bool {
        self.first.body.authority == self.second.body.authority
            && self.first.body.epoch == self.second.body.epoch
            && self.first != self.second
            && self.first.verify().is_ok()
            && self.second.verify().is_ok()
    }

    /// The authority that equivocated.
    pub fn authority(&self) -> [u8; 32] {
        self.first.body.authority
    }

    /// The round.
    pub fn epoch(&self) -> u64 {
        self.first.body.epoch
    }
}

/// What the driver must do.
#[derive(Debug, Clone)]
pub enum Output {
    /// Persist this record before acting on anything else.
    Store(Record),
    /// Send this vote to every peer (this authority's own, or a peer's vote
    /// relayed once so that every authority sees what every other was sent).
    SendVote(SignedVote),
    /// An authority was caught sending two different votes for a round: it
    /// is left out of that round, and the proof is kept and published.
    Equivocated(Box<Equivocation>),
    /// Send this signature to every peer.
    SendSignature(DocumentSignature),
    /// A threshold-signed document is now available for its epoch.
    Publish(SignedConsensus),
    /// Ask peers for their signatures of this round.
    FetchSignatures {
        /// The round's target epoch.
        epoch: u64,
    },
    /// Ask peers for the threshold-signed document of this epoch.
    FetchDocument {
        /// The epoch wanted.
        epoch: u64,
    },
    /// The round reached its deadline without a document.
    RoundFailed {
        /// The round's target epoch.
        epoch: u64,
        /// Why, for operators.
        reason: String,
    },
}

/// Why an input was refused.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
pub enum Rejection {
    /// The bytes are not a valid encoding.
    #[error("malformed: {0}")]
    Malformed(#[from] DecodeError),
    /// The descriptor itself is invalid.
    #[error(transparent)]
    Descriptor(#[from] DescriptorError),
    /// The descriptor is for an epoch not being collected.
    #[error("descriptor is for epoch {got}; accepting epochs {first}..={last}")]
    WrongEpoch {
        /// Epoch in the descriptor.
        got: u64,
        /// First accepted epoch.
        first: u64,
        /// Last accepted epoch.
        last: u64,
    },
    /// Uploads for this epoch closed when the vote went out.
    #[error("uploads for epoch {0} are closed; upload for the next epoch")]
    RoundClosed(u64),
    /// The same descriptor was already accepted.
    #[error("this exact descriptor was already accepted")]
    Duplicate,
    /// A newer revision of the node's descriptor was already accepted.
    #[error("revision {got} is older than the accepted revision {have}")]
    StaleRevision {
        /// Accepted revision.
        have: u64,
        /// Uploaded revision.
        got: u64,
    },
    /// A different descriptor with the same revision was already accepted.
    #[error("a different descriptor with revision {0} was already accepted")]
    RevisionConflict(u64),
    /// The round already holds the maximum number of descriptors.
    #[error("round is full")]
    Full,
    /// The network runs the KEM packet format and the descriptor carries
    /// no hybrid keys: no packet could be built through the node.
    #[error(
        "the network runs the post-quantum packet format; publish X-Wing keys \
         (packet_format = \"pq\" in aegis-node.toml)"
    )]
    NoHybridKeys,
    /// The admission policy does not take this node (now).
    #[error(transparent)]
    NotAdmitted(#[from] AdmissionError),
    /// Signed by a key that is not a pinned authority.
    #[error("not signed by a known authority")]
    UnknownAuthority,
    /// The vote is invalid.
    #[error(transparent)]
    Vote(#[from] VoteError),
    /// The vote is for a round that is not accepting votes.
    #[error("vote for epoch {0} arrived outside its voting window")]
    VoteOutOfWindow(u64),
    /// The authority already sent a different vote or signature this round.
    #[error("authority already sent a different {0} for this round")]
    Equivocation(&'static str),
    /// The signature does not verify.
    #[error("signature does not verify")]
    BadSignature,
    /// The signature or document is for a round this authority does not track.
    #[error("no round for epoch {0}")]
    UnknownRound(u64),
    /// A fetched document does not verify.
    #[error(transparent)]
    Document(#[from] VerifyError),
    /// A fetched document conflicts with a threshold-signed one already held.
    #[error("conflicting threshold-signed document for epoch {0}")]
    ConflictingDocument(u64),
}

impl Rejection {
    /// A short stable label for metrics.
    pub fn label(&self) -> &'static str {
        match self {
            Rejection::Malformed(_) | Rejection::Descriptor(DescriptorError::Decode(_)) => {
                "malformed"
            }
            Rejection::Descriptor(DescriptorError::BadSignature) => "bad_signature",
            Rejection::Descriptor(DescriptorError::WrongEpoch { .. })
            | Rejection::WrongEpoch { .. } => "wrong_epoch",
            Rejection::Descriptor(_) | Rejection::NoHybridKeys => "invalid_field",
            Rejection::RoundClosed(_) | Rejection::VoteOutOfWindow(_) => "out_of_window",
            Rejection::Duplicate
            | Rejection::StaleRevision { .. }
            | Rejection::RevisionConflict(_) => "replay",
            Rejection::Full | Rejection::NotAdmitted(AdmissionError::NewcomersFull) => "full",
            Rejection::NotAdmitted(AdmissionError::NotAllowed) => "not_allowed",
            Rejection::UnknownAuthority => "unknown_authority",
            Rejection::Vote(_) => "invalid_vote",
            Rejection::Equivocation(_) => "equivocation",
            Rejection::BadSignature => "bad_signature",
            Rejection::UnknownRound(_) => "unknown_round",
            Rejection::Document(_) | Rejection::ConflictingDocument(_) => "invalid_document",
        }
    }
}

/// How a round ended, or that it has not yet.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(tag = "state", rename_all = "snake_case")]
pub enum RoundOutcome {
    /// Still running.
    Pending,
    /// This authority's document reached the threshold.
    Published {
        /// Hex document hash.
        hash: String,
        /// Signatures held.
        signatures: usize,
    },
    /// A peer's threshold-signed document was fetched and adopted.
    Adopted {
        /// Hex document hash.
        hash: String,
        /// Signatures held.
        signatures: usize,
    },
    /// No document by the deadline.
    Failed {
        /// Why.
        reason: String,
    },
}

/// A round's state as shown on the status endpoint.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct RoundStatus {
    /// The round's target epoch.
    pub epoch: u64,
    /// Descriptors collected.
    pub descriptors: usize,
    /// Votes held (own included).
    pub votes: usize,
    /// Signatures held, on any document.
    pub signatures: usize,
    /// The outcome.
    pub outcome: RoundOutcome,
}
