//! The epoch clock, signed.
//!
//! A node must know the [`Schedule`] before the first consensus exists (it
//! uploads descriptors for epochs to come), and the schedule decides which
//! Sphinx keys it erases and how large its replay filters are. So the node
//! takes it only from signed statements: each authority signs its own
//! (genesis, epoch length), and a node adopts a schedule once a majority of
//! the authorities it pins signed exactly that schedule ([`agreed_schedule`]).
//! Once it holds a threshold-signed consensus, the document's own epoch
//! and start time say the same (see [`crate::ConsensusBody::schedule`]).

use ed25519_dalek::SigningKey;
use serde::{Deserialize, Serialize};

use crate::codec::{self, DecodeError, SignatureBytes};
use crate::constants::CLOCK_DOMAIN;
use crate::schedule::Schedule;
use crate::verify::Verifier;

/// Upper bound on an encoded clock statement.
pub const MAX_CLOCK_BYTES: usize = 160;

/// The shortest epoch a node accepts (a test network's), in milliseconds.
pub const MIN_EPOCH_LENGTH_MS: u64 = 1_000;
/// The longest epoch a node accepts, in milliseconds (one day).
pub const MAX_EPOCH_LENGTH_MS: u64 = 24 * 3_600_000;

/// One authority's signed statement of the epoch clock.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct SignedClock {
    /// The signing authority's Ed25519 public key.
    pub authority: [u8; 32],
    /// The clock it runs.
    pub schedule: Schedule,
    /// Signature over the domain-separated (genesis, epoch length).
    pub signature: SignatureBytes,
}

/// Why a clock statement is refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ClockError {
    /// Not a clock statement encoding.
    #[error("undecodable clock statement: {0}")]
    Decode(#[from] DecodeError),
    /// The signature does not verify.
    #[error("bad signature on the clock statement")]
    Signature,
    /// The epoch length is outside what a node runs.
    #[error("epoch length {0} ms is outside {MIN_EPOCH_LENGTH_MS}..={MAX_EPOCH_LENGTH_MS}")]
    EpochLength(u64),
}

fn message(schedule: &Schedule) -> [u8; 16] {
    let mut m = [0u8; 16];
    m[..8].copy_from_slice(&schedule.genesis_ms.to_be_bytes());
    m[8..].copy_from_slice(&schedule.epoch_length_ms.to_be_bytes());
    m
}

/// Refuses an epoch length outside what a node runs.
pub fn check_epoch_length(epoch_length_ms: u64) -> Result<(), ClockError> {
    if (MIN_EPOCH_LENGTH_MS..=MAX_EPOCH_LENGTH_MS).contains(&epoch_length_ms) {
        Ok(())
    } else {
        Err(ClockError::EpochLength(epoch_length_ms))
    }
}

impl SignedClock {
    /// Signs `schedule` with an authority key.
    pub fn create(key: &SigningKey, schedule: Schedule) -> Self {
        SignedClock {
            authority: key.verifying_key().to_bytes(),
            schedule,
            signature: codec::sign(key, CLOCK_DOMAIN, &message(&schedule)),
        }
    }

    /// The canonical encoding.
    pub fn to_bytes(&self) -> Vec<u8> {
        codec::encode(self)
    }

    /// Decodes and checks the signature and the epoch length (not whether
    /// the signer is trusted: that is [`agreed_schedule`]'s part).
    pub fn from_bytes(bytes: &[u8]) -> Result<Self, ClockError> {
        let clock: SignedClock = codec::decode(bytes, MAX_CLOCK_BYTES)?;
        check_epoch_length(clock.schedule.epoch_length_ms)?;
        if !codec::verify(
            &clock.authority,
            CLOCK_DOMAIN,
            &message(&clock.schedule),
            &clock.signature,
        ) {
            return Err(ClockError::Signature);
        }
        Ok(clock)
    }
}

/// The schedule that at least the verifier's threshold of its pinned
/// authorities signed, if any. Statements by unknown keys count for nothing,
/// and one authority counts once however many statements it sent.
pub fn agreed_schedule(verifier: &Verifier, statements: &[SignedClock]) -> Option<Schedule> {
    let mut counted: Vec<(Schedule, Vec<[u8; 32]>)> = Vec::new();
    for clock in statements {
        if !verifier.trusts(&clock.authority)
            || check_epoch_length(clock.schedule.epoch_length_ms).is_err()
            || !codec::verify(
                &clock.authority,
                CLOCK_DOMAIN,
                &message(&clock.schedule),
                &clock.signature,
            )
        {
            continue;
        }
        let entry = match counted.iter_mut().find(|(s, _)| *s == clock.schedule) {
            Some(entry) => entry,
            None => {
                counted.push((clock.schedule, Vec::new()));
                counted.last_mut()?
            }
        };
        if !entry.1.contains(&clock.authority) {
            entry.1.push(clock.authority);
        }
    }
    counted
        .into_iter()
        .find(|(_, signers)| signers.len() >= verifier.threshold())
        .map(|(schedule, _)| schedule)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn keys(n: u8) -> Vec<SigningKey> {
        (1..=n).map(|i| SigningKey::from_bytes(&[i; 32])).collect()
    }

    const HONEST: Schedule = Schedule {
        genesis_ms: 1_700_000_000_000,
        epoch_length_ms: 60_000,
    };

    #[test]
    fn round_trips_and_refuses_tampering() {
        let key = &keys(1)[0];
        let bytes = SignedClock::create(key, HONEST).to_bytes();
        assert!(bytes.len() <= MAX_CLOCK_BYTES);
        assert_eq!(SignedClock::from_bytes(&bytes).unwrap().schedule, HONEST);
        for i in 0..bytes.len() {
            let mut bad = bytes.clone();
            bad[i] ^= 1;
            assert!(SignedClock::from_bytes(&bad).is_err(), "flip at {i}");
        }
        assert!(SignedClock::from_bytes(&bytes[..bytes.len() - 1]).is_err());
        let long = Schedule {
            epoch_length_ms: MAX_EPOCH_LENGTH_MS + 1,
            ..HONEST
        };
        assert_eq!(
            SignedClock::from_bytes(&SignedClock::create(key, long).to_bytes()),
            Err(ClockError::EpochLength(MAX_EPOCH_LENGTH_MS + 1))
        );
    }

    #[test]
    fn a_majority_of_pinned_authorities_decides() {
        let keys = keys(5);
        let verifier = Verifier::new(keys[..3].iter().map(|k| k.verifying_key().to_bytes()));
        let rogue = Schedule {
            genesis_ms: 0,
            epoch_length_ms: 1_000,
        };
        let honest = |k: &SigningKey| SignedClock::create(k, HONEST);
        // One pinned authority, repeated, is one vote.
        let once = [honest(&keys[0]), honest(&keys[0]), honest(&keys[0])];
        assert_eq!(agreed_schedule(&verifier, &once), None);
        // Keys nobody pinned count for nothing.
        let strangers = [honest(&keys[0]), honest(&keys[3]), honest(&keys[4])];
        assert_eq!(agreed_schedule(&verifier, &strangers), None);
        // Two of three pinned authorities agree; the third is rogue.
        let mixed = [
            SignedClock::create(&keys[2], rogue),
            honest(&keys[0]),
            honest(&keys[1]),
        ];
        assert_eq!(agreed_schedule(&verifier, &mixed), Some(HONEST));
        // A statement whose signature was swapped from another is refused.
        let mut forged = SignedClock::create(&keys[1], rogue);
        forged.signature = honest(&keys[1]).signature;
        let forged = [SignedClock::create(&keys[0], rogue), forged];
        assert_eq!(agreed_schedule(&verifier, &forged), None);
    }
}
