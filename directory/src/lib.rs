//! AegisLink's directory: which nodes form the network in each epoch, in
//! which layer, with which keys and under which parameters.
//!
//! Several independent authorities collect signed node [`SignedDescriptor`]s,
//! exchange signed [`SignedVote`]s, [`tally`] what at least a threshold of
//! them saw byte for byte, [`assign_layers`] deterministically and stably,
//! and sign the resulting [`ConsensusBody`]. The published
//! [`SignedConsensus`] carries its signatures, so anyone can fetch it from
//! any cache and check it with a [`Verifier`] holding the pinned authority
//! keys; the `Fetcher` does that over HTTP.
//!
//! The voting round is the sans-IO state machine [`Authority`]: inputs and
//! the current time go in, messages to send and documents to publish come
//! out; it reads no clock and touches no socket. Without features the crate
//! is this sans-IO core. The `fetch` feature adds the HTTP `Fetcher` nodes
//! and clients use; the `server` feature adds the tokio `server` module,
//! which wraps the `Authority` with an HTTP API, RocksDB persistence
//! (`Store`) and Prometheus metrics, and `aegis-dir`, its command line.
#![forbid(unsafe_code)]

pub mod constants;

pub mod api;

mod codec;
pub use codec::{DecodeError, SignatureBytes};

mod schedule;
pub use schedule::{Phase, Schedule};

mod descriptor;
pub use descriptor::{
    DescriptorBody, DescriptorError, EpochKemKey, EpochSphinxKey, Role, SignedDescriptor,
    tcp_address,
};

mod consensus;
pub use consensus::{
    ClientShaping, ConsensusBody, DocumentError, DocumentSignature, MixingStrategy,
    NetworkParameters, ParameterError, SignedConsensus,
};

mod vote;
pub use vote::{SignedVote, VoteBody, VoteError};

mod layers;
pub use layers::assign_layers;

mod tally;
pub use tally::{TallyError, TallyInput, tally};

mod verify;
pub use verify::{Verifier, VerifyError, majority};

mod admission;
pub use admission::{Admission, AdmissionError, OpenLimits, SourceQuota};

mod clock;
pub use clock::{
    ClockError, MAX_CLOCK_BYTES, MAX_EPOCH_LENGTH_MS, MIN_EPOCH_LENGTH_MS, SignedClock,
    agreed_schedule, check_epoch_length,
};

mod trust;
pub use trust::{TrustError, TrustedAuthority, parse_key};

mod authority;
pub use authority::{
    Authority, AuthorityConfig, Equivocation, Input, Output, Record, Rejection, RoundOutcome,
    RoundStatus,
};

#[cfg(feature = "fetch")]
mod fetch;
#[cfg(feature = "fetch")]
pub use fetch::{Dialer, FetchError, Fetcher, read_limited};

#[cfg(feature = "server")]
mod store;
#[cfg(feature = "server")]
pub use store::{Store, StoreError};

#[cfg(feature = "server")]
mod metrics;
#[cfg(feature = "server")]
pub use metrics::Metrics;

#[cfg(feature = "server")]
pub mod config;
#[cfg(feature = "server")]
pub use config::{Config, ConfigError, PeerConfig};

#[cfg(feature = "server")]
pub mod server;
#[cfg(feature = "server")]
pub use server::{RunningAuthority, ServerError};
