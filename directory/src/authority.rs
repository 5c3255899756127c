//! The voting round of one authority, as a sans-IO state machine.
//!
//! [`Authority`] holds the descriptors, votes, signatures and documents of
//! the rounds in flight. It is driven by [`Authority::handle`] with an
//! [`Input`] and the current time, and answers with [`Output`]s for its
//! driver to carry out: records to persist, votes and signatures to send,
//! documents to publish or to fetch from peers, rounds that failed. It reads
//! no clock, opens no socket and draws no randomness (Ed25519 signing is
//! deterministic), so tests drive it with virtual time and the simulator can
//! run the very same code.

use std::collections::{BTreeMap, BTreeSet};

use ed25519_dalek::SigningKey;

use crate::admission::Admission;
use crate::consensus::{ConsensusBody, DocumentSignature, NetworkParameters, SignedConsensus};
use crate::constants::{DOCUMENTS_KEPT, MAX_NODES};
use crate::descriptor::SignedDescriptor;
use crate::schedule::{Phase, Schedule};
use crate::tally::{TallyInput, tally};
use crate::trust::TrustedAuthority;
use crate::verify::Verifier;
use crate::vote::{SignedVote, VoteBody};

mod events;
mod rounds;
pub use events::{Equivocation, Input, Output, Record, Rejection, RoundOutcome, RoundStatus};

/// The static setup of an authority.
pub struct AuthorityConfig {
    /// This authority's signing key.
    pub key: SigningKey,
    /// Public keys of all authorities, this one included.
    pub authorities: Vec<[u8; 32]>,
    /// The epoch clock.
    pub schedule: Schedule,
    /// The parameters this authority votes for.
    pub parameters: NetworkParameters,
    /// Which nodes it takes descriptors from.
    pub admission: Admission,
    /// The authorities it names in its votes (URL and key, itself
    /// included): what clients learn the authority list from.
    pub directory: Vec<TrustedAuthority>,
}

#[derive(Default)]
struct Round {
    descriptors: BTreeMap<[u8; 32], SignedDescriptor>,
    /// Descriptors held of nodes not in the previous document.
    newcomers: usize,
    votes: BTreeMap<[u8; 32], SignedVote>,
    voted: bool,
    tallied: Option<Result<ConsensusBody, String>>,
    signatures: BTreeMap<[u8; 32], DocumentSignature>,
    /// Authorities caught equivocating this round, with the proof.
    equivocations: BTreeMap<[u8; 32], Equivocation>,
    fetch_requested_for: Option<[u8; 32]>,
    last_fetch_ms: Option<u64>,
    outcome: Option<RoundOutcome>,
}

/// One directory authority's voting state.
pub struct Authority {
    key: SigningKey,
    me: [u8; 32],
    verifier: Verifier,
    schedule: Schedule,
    parameters: NetworkParameters,
    admission: Admission,
    directory: Vec<TrustedAuthority>,
    rounds: BTreeMap<u64, Round>,
    documents: BTreeMap<u64, SignedConsensus>,
    /// The nodes the previous document of a round lists, keyed by that
    /// document's epoch.
    incumbents: Option<(Option<u64>, BTreeSet<[u8; 32]>)>,
}

impl Authority {
    /// A fresh authority with no state.
    pub fn new(config: AuthorityConfig) -> Self {
        let me = config.key.verifying_key().to_bytes();
        let mut authorities = config.authorities;
        authorities.push(me);
        Authority {
            key: config.key,
            me,
            verifier: Verifier::new(authorities),
            schedule: config.schedule,
            parameters: config.parameters,
            admission: config.admission,
            directory: TrustedAuthority::canonical_list(config.directory),
            rounds: BTreeMap::new(),
            documents: BTreeMap::new(),
            incumbents: None,
        }
    }

    /// The nodes listed in the newest held document before `epoch`: the
    /// incumbents of that round.
    /// Computed once per previous document and kept, since every
    /// descriptor upload asks (a flood asks a hundred thousand times). A
    /// held document's body never changes (a conflicting one is refused),
    /// so its epoch names it.
    fn incumbents(&mut self, epoch: u64) -> &BTreeSet<[u8; 32]> {
        let previous = self.documents.range(..epoch).next_back();
        let key = previous.map(|(e, _)| *e);
        if self
            .incumbents
            .as_ref()
            .is_none_or(|(held, _)| *held != key)
        {
            let listed = previous
                .into_iter()
                .flat_map(|(_, d)| d.body.mixes().map(|(_, m)| m).chain(&d.body.gateways))
                .map(SignedDescriptor::identity)
                .collect();
            self.incumbents = Some((key, listed));
        }
        &self
            .incumbents
            .get_or_insert_with(|| (key, BTreeSet::new()))
            .1
    }

    fn is_incumbent(&mut self, epoch: u64, identity: &[u8; 32]) -> bool {
        self.incumbents(epoch).contains(identity)
    }

    /// This authority's public key.
    pub fn public_key(&self) -> [u8; 32] {
        self.me
    }

    /// The signatures required on a document.
    pub fn threshold(&self) -> usize {
        self.verifier.threshold()
    }

    /// The epoch clock.
    pub fn schedule(&self) -> &Schedule {
        &self.schedule
    }

    /// The threshold-signed document for `epoch`, if held.
    pub fn document(&self, epoch: u64) -> Option<&SignedConsensus> {
        self.documents.get(&epoch)
    }

    /// The newest held document that is still valid at `now_ms` and not for
    /// a future epoch: what clients should use now.
    pub fn current_document(&self, now_ms: u64) -> Option<&SignedConsensus> {
        let current = self.schedule.epoch_at(now_ms);
        self.documents
            .range(..=current)
            .rev()
            .map(|(_, d)| d)
            .find(|d| now_ms < d.body.valid_until_ms)
    }

    /// The signatures held for a round.
    pub fn signatures(&self, epoch: u64) -> Vec<DocumentSignature> {
        self.rounds
            .get(&epoch)
            .map(|r| r.signatures.values().copied().collect())
            .unwrap_or_default()
    }

    /// Status of every round held, oldest first.
    pub fn rounds(&self) -> Vec<RoundStatus> {
        self.rounds
            .iter()
            .map(|(&epoch, r)| RoundStatus {
                epoch,
                descriptors: r.descriptors.len(),
                votes: r.votes.len(),
                signatures: r.signatures.len(),
                outcome: r.outcome.clone().unwrap_or(RoundOutcome::Pending),
            })
            .collect()
    }

    /// The most recent round that has an outcome.
    pub fn last_finished_round(&self) -> Option<RoundStatus> {
        self.rounds()
            .into_iter()
            .rev()
            .find(|r| r.outcome != RoundOutcome::Pending)
    }

    /// Feeds one input at time `now_ms`.
    pub fn handle(&mut self, now_ms: u64, input: Input) -> Result<Vec<Output>, Rejection> {
        let mut out = Vec::new();
        match input {
            Input::Descriptor(d) => self.on_descriptor(now_ms, d, &mut out)?,
            Input::Vote(v) => self.on_vote(now_ms, v, &mut out)?,
            Input::Signature(s) => self.on_signature(s, &mut out)?,
            Input::Document(d) => self.on_document(now_ms, d, &mut out)?,
            Input::Tick => self.on_tick(now_ms, &mut out),
        }
        Ok(out)
    }

    /// Reloads a persisted record after a restart. Checks signatures again
    /// but not timing: the record was accepted when it arrived.
    pub fn restore(&mut self, record: Record) -> Result<(), Rejection> {
        match record {
            Record::Descriptor(d) => {
                d.verify()?;
                let incumbent = self.is_incumbent(d.body.epoch, &d.identity());
                let round = self.rounds.entry(d.body.epoch).or_default();
                if !incumbent && !round.descriptors.contains_key(&d.identity()) {
                    round.newcomers += 1;
                }
                let newer = round
                    .descriptors
                    .get(&d.identity())
                    .is_none_or(|old| old.body.revision < d.body.revision);
                if newer {
                    round.descriptors.insert(d.identity(), d);
                }
            }
            Record::Vote(v) => {
                self.check_vote(&v)?;
                let round = self.rounds.entry(v.body.epoch).or_default();
                round.voted |= v.body.authority == self.me;
                if !round.equivocations.contains_key(&v.body.authority) {
                    round.votes.entry(v.body.authority).or_insert(v);
                }
            }
            Record::Equivocation(proof) => {
                if !proof.verify() || !self.verifier.authorities().contains(&proof.authority()) {
                    return Err(Rejection::Equivocation("proof"));
                }
                self.convict(*proof);
            }
            Record::Signature(s) => {
                self.check_signature(&s)?;
                self.rounds
                    .entry(s.epoch)
                    .or_default()
                    .signatures
                    .entry(s.authority)
                    .or_insert(s);
            }
            Record::Document(d) => {
                self.verifier.check_signatures(&d)?;
                let epoch = d.body.epoch;
                let hash = hex::encode(d.body.hash());
                let signatures = d.signatures.len();
                let round = self.rounds.entry(epoch).or_default();
                round
                    .outcome
                    .get_or_insert(RoundOutcome::Adopted { hash, signatures });
                self.documents.insert(epoch, d);
            }
        }
        Ok(())
    }

    fn on_descriptor(
        &mut self,
        now_ms: u64,
        d: SignedDescriptor,
        out: &mut Vec<Output>,
    ) -> Result<(), Rejection> {
        let target = self.schedule.target_at(now_ms);
        let epoch = d.body.epoch;
        if epoch != target && epoch != target + 1 {
            return Err(Rejection::WrongEpoch {
                got: epoch,
                first: target,
                last: target + 1,
            });
        }
        let incumbent = self.is_incumbent(epoch, &d.identity());
        let round = self.rounds.entry(epoch).or_default();
        if round.voted {
            return Err(Rejection::RoundClosed(epoch));
        }
        let known = round.descriptors.contains_key(&d.identity());
        // Admission first: under a flood, refusing a newcomer past the quota
        // costs no signature check.
        if !known {
            self.admission
                .admit(&d.identity(), incumbent, round.newcomers)?;
        }
        d.verify()?;
        if d.body.kem_keys.is_empty() && runs_kem_format(&self.parameters) {
            return Err(Rejection::NoHybridKeys);
        }
        match round.descriptors.get(&d.identity()) {
            Some(old) if *old == d => return Err(Rejection::Duplicate),
            Some(old) if old.body.revision > d.body.revision => {
                return Err(Rejection::StaleRevision {
                    have: old.body.revision,
                    got: d.body.revision,
                });
            }
            Some(old) if old.body.revision == d.body.revision => {
                return Err(Rejection::RevisionConflict(d.body.revision));
            }
            None if round.descriptors.len() >= MAX_NODES => return Err(Rejection::Full),
            _ => {}
        }
        if !known && !incumbent {
            round.newcomers += 1;
        }
        round.descriptors.insert(d.identity(), d.clone());
        out.push(Output::Store(Record::Descriptor(d)));
        Ok(())
    }

    fn check_vote(&self, v: &SignedVote) -> Result<(), Rejection> {
        if !self.verifier.authorities().contains(&v.body.authority) {
            return Err(Rejection::UnknownAuthority);
        }
        v.verify()?;
        Ok(())
    }

    fn on_vote(
        &mut self,
        now_ms: u64,
        v: SignedVote,
        out: &mut Vec<Output>,
    ) -> Result<(), Rejection> {
        let epoch = v.body.epoch;
        // A vote counts only if it arrives before this authority tallies.
        let open = epoch == self.schedule.target_at(now_ms)
            && now_ms < self.schedule.phase_at(epoch, Phase::Sign);
        if !open {
            return Err(Rejection::VoteOutOfWindow(epoch));
        }
        let voter = v.body.authority;
        if self
            .rounds
            .get(&epoch)
            .is_some_and(|r| r.equivocations.contains_key(&voter))
        {
            return Err(Rejection::Equivocation("vote"));
        }
        if let Some(old) = self.rounds.get(&epoch).and_then(|r| r.votes.get(&voter)) {
            if *old == v {
                return Ok(());
            }
            // A second, different vote: if it is validly signed too, the
            // pair proves the authority equivocated. It is left out of the
            // round, and the proof is kept, stored and published (so the
            // input is handled, not refused: its outputs must reach the
            // driver).
            self.check_vote(&v)?;
            let proof = Equivocation {
                first: old.clone(),
                second: v,
            };
            self.convict(proof.clone());
            // Peers that saw only one of the two votes get the other.
            out.push(Output::SendVote(proof.second.clone()));
            out.push(Output::Store(Record::Equivocation(Box::new(proof.clone()))));
            out.push(Output::Equivocated(Box::new(proof)));
            return Ok(());
        }
        self.check_vote(&v)?;
        self.rounds
            .entry(epoch)
            .or_default()
            .votes
            .insert(voter, v.clone());
        out.push(Output::Store(Record::Vote(v.clone())));
        // Relay a peer's vote once, so that an authority sending different
        // votes to different peers is caught before the tally.
        if voter != self.me {
            out.push(Output::SendVote(v));
        }
        Ok(())
    }

    /// Leaves an equivocating authority out of its round and keeps the proof.
    fn convict(&mut self, proof: Equivocation) {
        let round = self.rounds.entry(proof.epoch()).or_default();
        round.votes.remove(&proof.authority());
        round.equivocations.insert(proof.authority(), proof);
    }

    /// The equivocation proofs held for a round.
    pub fn equivocations(&self, epoch: u64) -> Vec<Equivocation> {
        self.rounds
            .get(&epoch)
            .map(|r| r.equivocations.values().cloned().collect())
            .unwrap_or_default()
    }

    fn check_signature(&self, s: &DocumentSignature) -> Result<(), Rejection> {
        if !self.verifier.authorities().contains(&s.authority) {
            return Err(Rejection::UnknownAuthority);
        }
        if !s.verify() {
            return Err(Rejection::BadSignature);
        }
        Ok(())
    }

    fn on_signature(
        &mut self,
        s: DocumentSignature,
        out: &mut Vec<Output>,
    ) -> Result<(), Rejection> {
        self.check_signature(&s)?;
        let round = self
            .rounds
            .get_mut(&s.epoch)
            .ok_or(Rejection::UnknownRound(s.epoch))?;
        if let Some(old) = round.signatures.get(&s.authority) {
            return if *old == s {
                Ok(())
            } else {
                Err(Rejection::Equivocation("signature"))
            };
        }
        round.signatures.insert(s.authority, s);
        out.push(Output::Store(Record::Signature(s)));
        self.check_threshold(s.epoch, out);
        Ok(())
    }

    fn on_document(
        &mut self,
        now_ms: u64,
        doc: SignedConsensus,
        out: &mut Vec<Output>,
    ) -> Result<(), Rejection> {
        let epoch = doc.body.epoch;
        if epoch > self.schedule.target_at(now_ms) {
            return Err(Rejection::UnknownRound(epoch));
        }
        self.verifier.verify(&doc, Some(epoch), now_ms)?;
        let hash = doc.body.hash();
        if let Some(held) = self.documents.get(&epoch) {
            if held.body.hash() != hash {
                return Err(Rejection::ConflictingDocument(epoch));
            }
            if held.signatures.len() >= doc.signatures.len() {
                return Ok(());
            }
        }
        let round = self.rounds.entry(epoch).or_default();
        // Keep the document's valid signatures with the round's, so that
        // signatures arriving later extend the same set.
        for s in &doc.signatures {
            if s.document_hash == hash
                && self.verifier.authorities().contains(&s.authority)
                && s.verify()
            {
                round.signatures.entry(s.authority).or_insert(*s);
            }
        }
        let signatures = doc.signatures.len();
        match &mut round.outcome {
            Some(
                RoundOutcome::Published { signatures: n, .. }
                | RoundOutcome::Adopted { signatures: n, .. },
            ) => {
                *n = signatures;
            }
            _ => {
                round.outcome = Some(RoundOutcome::Adopted {
                    hash: hex::encode(hash),
                    signatures,
                });
                out.push(Output::Publish(doc.clone()));
            }
        }
        out.push(Output::Store(Record::Document(doc.clone())));
        self.documents.insert(epoch, doc);
        Ok(())
    }
}

#[cfg(test)]
mod tests;

/// Whether `parameters` name a geometry of the KEM packet format, whose
/// routes need every node's hybrid keys.
fn runs_kem_format(parameters: &NetworkParameters) -> bool {
    aegis_mix_packet::Geometry::by_hash(&parameters.geometry_hash)
        .is_some_and(|g| g.format == aegis_mix_packet::PacketFormat::Kem)
}
