//! The timer-driven steps of a round: casting the vote, tallying and
//! signing, collecting signatures to the threshold, chasing what peers
//! hold, and forgetting old rounds.

use super::*;

impl Authority {
    pub(super) fn on_tick(&mut self, now_ms: u64, out: &mut Vec<Output>) {
        let target = self.schedule.target_at(now_ms);
        self.rounds.entry(target).or_default();
        if now_ms >= self.schedule.phase_at(target, Phase::Vote) {
            self.cast_vote(target, out);
        }
        if now_ms >= self.schedule.phase_at(target, Phase::Sign) {
            self.tally_and_sign(target, out);
        }
        // Earlier rounds that are still unresolved keep pulling from peers
        // until the epoch they were for has ended.
        let unresolved: Vec<u64> = self
            .rounds
            .iter()
            .filter(|(e, r)| {
                **e <= target
                    && r.outcome
                        .as_ref()
                        .is_none_or(|o| matches!(o, RoundOutcome::Failed { .. }))
            })
            .map(|(e, _)| *e)
            .collect();
        for epoch in unresolved {
            self.chase(now_ms, epoch, out);
        }
        self.prune(target);
    }

    pub(super) fn cast_vote(&mut self, epoch: u64, out: &mut Vec<Output>) {
        let previous = self
            .documents
            .range(..epoch)
            .next_back()
            .map(|(_, d)| d.body.hash());
        if self.rounds.get(&epoch).is_none_or(|r| r.voted) {
            return;
        }
        let incumbents = self.incumbents(epoch).clone();
        let Some(round) = self.rounds.get_mut(&epoch) else {
            return;
        };
        let descriptors = self
            .admission
            .select(round.descriptors.values(), |id| incumbents.contains(id));
        let vote = VoteBody {
            authority: self.me,
            epoch,
            parameters: self.parameters,
            previous,
            descriptors,
            authorities: self.directory.clone(),
        }
        .sign(&self.key);
        round.voted = true;
        round.votes.insert(self.me, vote.clone());
        out.push(Output::Store(Record::Vote(vote.clone())));
        out.push(Output::SendVote(vote));
    }

    pub(super) fn tally_and_sign(&mut self, epoch: u64, out: &mut Vec<Output>) {
        let previous = self
            .documents
            .range(..epoch)
            .next_back()
            .map(|(_, d)| &d.body);
        let threshold = self.verifier.threshold();
        let Some(round) = self.rounds.get_mut(&epoch) else {
            return;
        };
        if round.tallied.is_some() {
            return;
        }
        let votes: Vec<SignedVote> = round.votes.values().cloned().collect();
        let result = tally(TallyInput {
            epoch,
            threshold,
            votes: &votes,
            previous,
            schedule: &self.schedule,
        });
        match result {
            Ok(body) => {
                let signature = DocumentSignature::create(&self.key, epoch, body.hash());
                round.tallied = Some(Ok(body));
                // After a restart the own signature may already be stored.
                if let std::collections::btree_map::Entry::Vacant(slot) =
                    round.signatures.entry(self.me)
                {
                    slot.insert(signature);
                    out.push(Output::Store(Record::Signature(signature)));
                    out.push(Output::SendSignature(signature));
                }
                self.check_threshold(epoch, out);
            }
            Err(error) => round.tallied = Some(Err(error.to_string())),
        }
    }

    /// Publishes when a threshold signed the document this authority
    /// computed, or asks for the document when a threshold signed another.
    pub(super) fn check_threshold(&mut self, epoch: u64, out: &mut Vec<Output>) {
        let threshold = self.verifier.threshold();
        let Some(round) = self.rounds.get_mut(&epoch) else {
            return;
        };
        let mut counts: BTreeMap<[u8; 32], usize> = BTreeMap::new();
        for s in round.signatures.values() {
            *counts.entry(s.document_hash).or_default() += 1;
        }
        let Some((&winner, &count)) = counts.iter().find(|(_, n)| **n >= threshold) else {
            return;
        };
        let own = match &round.tallied {
            Some(Ok(body)) if body.hash() == winner => Some(body.clone()),
            _ => None,
        };
        let Some(body) = own else {
            // Before its own tally an authority just waits; after it, a
            // threshold on another hash means it computed something else.
            let tallied = round.tallied.is_some();
            if tallied && round.outcome.is_none() && round.fetch_requested_for != Some(winner) {
                round.fetch_requested_for = Some(winner);
                out.push(Output::FetchDocument { epoch });
            }
            return;
        };
        let signatures: Vec<DocumentSignature> = round
            .signatures
            .values()
            .filter(|s| s.document_hash == winner)
            .copied()
            .collect();
        let doc = SignedConsensus { body, signatures };
        let hash = hex::encode(winner);
        match &mut round.outcome {
            Some(
                RoundOutcome::Published { signatures, .. }
                | RoundOutcome::Adopted { signatures, .. },
            ) => {
                if *signatures >= count {
                    return;
                }
                *signatures = count;
            }
            _ => {
                round.outcome = Some(RoundOutcome::Published {
                    hash,
                    signatures: count,
                });
                out.push(Output::Publish(doc.clone()));
            }
        }
        out.push(Output::Store(Record::Document(doc.clone())));
        self.documents.insert(epoch, doc);
    }

    /// Pulls what is missing from peers after the publish point and
    /// declares failure at the deadline.
    pub(super) fn chase(&mut self, now_ms: u64, epoch: u64, out: &mut Vec<Output>) {
        let publish_at = self.schedule.phase_at(epoch, Phase::Publish);
        let deadline = self.schedule.phase_at(epoch, Phase::Deadline);
        let give_up = self.schedule.epoch_start(epoch.saturating_add(1));
        let retry = (self.schedule.epoch_length_ms / 16).max(1);
        let threshold = self.verifier.threshold();
        let Some(round) = self.rounds.get_mut(&epoch) else {
            return;
        };
        if now_ms < publish_at || now_ms >= give_up {
            return;
        }
        if round
            .last_fetch_ms
            .is_none_or(|t| now_ms >= t.saturating_add(retry))
        {
            round.last_fetch_ms = Some(now_ms);
            out.push(Output::FetchSignatures { epoch });
            out.push(Output::FetchDocument { epoch });
        }
        if now_ms >= deadline && round.outcome.is_none() {
            let reason = match &round.tallied {
                Some(Err(reason)) => reason.clone(),
                Some(Ok(body)) => {
                    let hash = body.hash();
                    let mine = round
                        .signatures
                        .values()
                        .filter(|s| s.document_hash == hash)
                        .count();
                    let other = round.signatures.len() - mine;
                    format!(
                        "only {mine} of the {threshold} required signatures on this authority's document \
                         ({other} authorities signed a different document)"
                    )
                }
                None => "this authority did not take part in the round".to_owned(),
            };
            round.outcome = Some(RoundOutcome::Failed {
                reason: reason.clone(),
            });
            out.push(Output::RoundFailed { epoch, reason });
        }
    }

    pub(super) fn prune(&mut self, target: u64) {
        self.rounds.retain(|&e, _| e.saturating_add(2) >= target);
        self.documents
            .retain(|&e, _| e.saturating_add(DOCUMENTS_KEPT) >= target);
    }
}
