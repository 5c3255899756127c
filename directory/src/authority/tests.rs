//! The voting round driven with virtual time and an in-memory network.

use super::*;
use crate::admission::OpenLimits;
use crate::descriptor::DescriptorError;
use crate::descriptor::Role;
use crate::descriptor::tests::{sample, sample_with_key};

const P: u64 = 8_000;
const SCHEDULE: Schedule = Schedule {
    genesis_ms: 0,
    epoch_length_ms: P,
};

struct Net {
    nodes: Vec<Authority>,
    up: Vec<bool>,
    published: Vec<Vec<SignedConsensus>>,
    failures: Vec<Vec<(u64, String)>>,
}

/// Every authority at a URL of its own.
fn directory(publics: &[[u8; 32]]) -> Vec<TrustedAuthority> {
    publics
        .iter()
        .enumerate()
        .map(|(i, key)| TrustedAuthority {
            url: format!("http://192.0.2.{}:7900", i + 1),
            public_key: *key,
        })
        .collect()
}

fn keys(n: u8) -> Vec<SigningKey> {
    (0..n)
        .map(|i| SigningKey::from_bytes(&[200 + i; 32]))
        .collect()
}

impl Net {
    fn new(n: u8) -> Self {
        Self::with_parameters(vec![NetworkParameters::standard(P); usize::from(n)])
    }

    fn with_parameters(parameters: Vec<NetworkParameters>) -> Self {
        let keys = keys(parameters.len() as u8);
        let publics: Vec<[u8; 32]> = keys.iter().map(|k| k.verifying_key().to_bytes()).collect();
        let directory = directory(&publics);
        let nodes: Vec<Authority> = keys
            .into_iter()
            .zip(parameters)
            .map(|(key, parameters)| {
                Authority::new(AuthorityConfig {
                    key,
                    authorities: publics.clone(),
                    schedule: SCHEDULE,
                    parameters,
                    admission: Admission::default(),
                    directory: directory.clone(),
                })
            })
            .collect();
        let n = nodes.len();
        Net {
            nodes,
            up: vec![true; n],
            published: vec![vec![]; n],
            failures: vec![vec![]; n],
        }
    }

    fn upload(&mut self, to: usize, now: u64, d: &SignedDescriptor) {
        self.nodes[to]
            .handle(now, Input::Descriptor(d.clone()))
            .unwrap();
    }

    fn upload_all(&mut self, now: u64, d: &SignedDescriptor) {
        for i in 0..self.nodes.len() {
            self.upload(i, now, d);
        }
    }

    /// Delivers messages between live authorities until quiet.
    fn deliver(&mut self, now: u64, from: usize, outputs: Vec<Output>) {
        let mut queue: Vec<(usize, Output)> = outputs.into_iter().map(|o| (from, o)).collect();
        while let Some((from, output)) = queue.pop() {
            let targets: Vec<usize> = (0..self.nodes.len())
                .filter(|&i| i != from && self.up[i])
                .collect();
            let inputs: Vec<(usize, Input)> = match output {
                Output::SendVote(v) => targets
                    .iter()
                    .map(|&t| (t, Input::Vote(v.clone())))
                    .collect(),
                Output::SendSignature(s) => {
                    targets.iter().map(|&t| (t, Input::Signature(s))).collect()
                }
                Output::FetchSignatures { epoch } => targets
                    .iter()
                    .flat_map(|&t| self.nodes[t].signatures(epoch))
                    .map(|s| (from, Input::Signature(s)))
                    .collect(),
                Output::FetchDocument { epoch } => targets
                    .iter()
                    .filter_map(|&t| self.nodes[t].document(epoch).cloned())
                    .map(|d| (from, Input::Document(d)))
                    .take(1)
                    .collect(),
                Output::Publish(doc) => {
                    self.published[from].push(doc);
                    vec![]
                }
                Output::RoundFailed { epoch, reason } => {
                    self.failures[from].push((epoch, reason));
                    vec![]
                }
                Output::Store(_) | Output::Equivocated(_) => vec![],
            };
            for (to, input) in inputs {
                // Refusals (duplicates, late votes) are normal on a network.
                if let Ok(more) = self.nodes[to].handle(now, input) {
                    queue.extend(more.into_iter().map(|o| (to, o)));
                }
            }
        }
    }

    fn run_until(&mut self, from: u64, to: u64) {
        let mut now = from;
        while now <= to {
            for i in 0..self.nodes.len() {
                if self.up[i] {
                    let out = self.nodes[i].handle(now, Input::Tick).unwrap();
                    self.deliver(now, i, out);
                }
            }
            now += P / 32;
        }
    }
}

fn mixes_and_gateway(epoch: u64) -> Vec<SignedDescriptor> {
    let mut v: Vec<_> = (1..=6).map(|s| sample(s, epoch, Role::Mix)).collect();
    v.push(sample(50, epoch, Role::Gateway));
    v
}

#[test]
fn three_authorities_agree_byte_for_byte() {
    let mut net = Net::new(3);
    for d in mixes_and_gateway(1) {
        net.upload_all(0, &d);
    }
    net.run_until(0, P - 1);
    let docs: Vec<Vec<u8>> = net
        .nodes
        .iter()
        .map(|a| a.document(1).unwrap().to_bytes())
        .collect();
    assert_eq!(docs[0], docs[1]);
    assert_eq!(docs[1], docs[2]);
    let doc = net.nodes[0].document(1).unwrap();
    assert_eq!(doc.signatures.len(), 3);
    assert_eq!(doc.body.mixes().count(), 6);
    assert_eq!(doc.body.gateways.len(), 1);
    assert!(net.failures.iter().all(Vec::is_empty));
}

#[test]
fn documents_chain_and_layers_stay_stable() {
    let mut net = Net::new(3);
    for epoch in 1..=3u64 {
        let start = SCHEDULE.epoch_start(epoch - 1);
        for d in mixes_and_gateway(epoch) {
            net.upload_all(start, &d);
        }
        net.run_until(start, start + P - 1);
    }
    let d1 = net.nodes[0].document(1).unwrap();
    let d2 = net.nodes[1].document(2).unwrap();
    let d3 = net.nodes[2].document(3).unwrap();
    assert_eq!(d2.body.previous, Some(d1.body.hash()));
    assert_eq!(d3.body.previous, Some(d2.body.hash()));
    let layers = |d: &SignedConsensus| {
        d.body
            .mixes()
            .map(|(l, d)| (d.identity(), l))
            .collect::<BTreeMap<_, _>>()
    };
    assert_eq!(layers(d1), layers(d3));
}

#[test]
fn one_authority_down_does_not_block_the_round() {
    let mut net = Net::new(3);
    net.up[2] = false;
    for d in mixes_and_gateway(1) {
        net.upload(0, 0, &d);
        net.upload(1, 0, &d);
    }
    net.run_until(0, P - 1);
    assert_eq!(net.nodes[0].document(1).unwrap().signatures.len(), 2);
    assert_eq!(net.nodes[0].document(1), net.nodes[1].document(1));
    assert!(net.nodes[2].document(1).is_none());
    // The document names every authority and where to reach it, the one
    // that did not vote too: the two that did name it.
    let publics: Vec<[u8; 32]> = keys(3)
        .iter()
        .map(|k| k.verifying_key().to_bytes())
        .collect();
    assert_eq!(
        net.nodes[0].document(1).unwrap().body.authorities,
        TrustedAuthority::canonical_list(directory(&publics))
    );
}

#[test]
fn divergent_authority_is_outvoted_and_adopts_the_result() {
    let mut odd = NetworkParameters::standard(P);
    odd.lambda_p = 123.0;
    let mut net = Net::with_parameters(vec![
        NetworkParameters::standard(P),
        NetworkParameters::standard(P),
        odd,
    ]);
    for d in mixes_and_gateway(1) {
        net.upload_all(0, &d);
    }
    // Only authority 2 saw this node: it must not enter the document.
    let lonely = sample(77, 1, Role::Mix);
    net.upload(2, 0, &lonely);
    net.run_until(0, P - 1);
    let doc = net.nodes[2].document(1).unwrap();
    assert_eq!(doc.body.parameters, NetworkParameters::standard(P));
    assert!(
        doc.body
            .mixes()
            .all(|(_, d)| d.identity() != lonely.identity())
    );
    assert_eq!(doc, net.nodes[0].document(1).unwrap());
}

#[test]
fn authority_that_missed_the_votes_adopts_the_threshold_document() {
    let mut net = Net::new(3);
    for d in mixes_and_gateway(1) {
        net.upload_all(0, &d);
    }
    // Authority 2 is cut off during voting: it tallies alone and fails
    // locally, then fetches the document the other two signed.
    net.up[2] = false;
    net.run_until(0, SCHEDULE.phase_at(1, Phase::Sign) + 1);
    net.up[2] = true;
    net.run_until(SCHEDULE.phase_at(1, Phase::Sign) + 2, P - 1);
    assert_eq!(net.nodes[2].document(1), net.nodes[0].document(1));
    let status = net.nodes[2]
        .rounds()
        .into_iter()
        .find(|r| r.epoch == 1)
        .unwrap();
    assert!(
        matches!(status.outcome, RoundOutcome::Adopted { .. }),
        "{status:?}"
    );
}

#[test]
fn two_authorities_down_fail_with_a_reason_and_keep_the_old_document() {
    let mut net = Net::new(3);
    for d in mixes_and_gateway(1) {
        net.upload_all(0, &d);
    }
    net.run_until(0, P - 1);
    net.up[1] = false;
    net.up[2] = false;
    for d in mixes_and_gateway(2) {
        net.upload(0, P, &d);
    }
    net.run_until(P, 2 * P - 1);
    assert!(net.nodes[0].document(2).is_none());
    let (epoch, reason) = net.failures[0].last().unwrap().clone();
    assert_eq!(epoch, 2);
    assert!(
        reason.contains("only 1 of the 2 required votes"),
        "{reason}"
    );
    // The document for epoch 1 stays valid through epoch 2.
    assert_eq!(
        net.nodes[0].current_document(2 * P - 1).unwrap().body.epoch,
        1
    );
    assert!(net.nodes[0].current_document(3 * P).is_none());
    let last = net.nodes[0].last_finished_round().unwrap();
    assert!(matches!(last.outcome, RoundOutcome::Failed { .. }));
}

#[test]
fn descriptor_replays_and_wrong_epochs_are_refused() {
    let mut a = Net::new(1).nodes.remove(0);
    let key = SigningKey::from_bytes(&[9; 32]);
    let v1 = sample_with_key(&key, 1, Role::Mix, 1);
    let v2 = sample_with_key(&key, 1, Role::Mix, 2);
    assert!(a.handle(0, Input::Descriptor(v1.clone())).is_ok());
    assert_eq!(
        a.handle(0, Input::Descriptor(v1.clone())).unwrap_err(),
        Rejection::Duplicate
    );
    assert!(a.handle(0, Input::Descriptor(v2)).is_ok());
    assert_eq!(
        a.handle(0, Input::Descriptor(v1)).unwrap_err(),
        Rejection::StaleRevision { have: 2, got: 1 }
    );
    let wrong = sample(10, 5, Role::Mix);
    assert_eq!(
        a.handle(0, Input::Descriptor(wrong)).unwrap_err(),
        Rejection::WrongEpoch {
            got: 5,
            first: 1,
            last: 2
        }
    );
    let mut forged = sample(11, 1, Role::Mix);
    forged.body.version = "evil".into();
    assert_eq!(
        a.handle(0, Input::Descriptor(forged)).unwrap_err(),
        Rejection::Descriptor(DescriptorError::BadSignature)
    );
}

#[test]
fn under_the_kem_format_a_descriptor_without_hybrid_keys_is_refused() {
    let mut parameters = NetworkParameters::standard(P);
    parameters.geometry_hash = aegis_mix_packet::Geometry::PQ.hash();
    let mut a = Net::with_parameters(vec![parameters]).nodes.remove(0);
    let classical = sample(13, 1, Role::Mix);
    assert_eq!(
        a.handle(0, Input::Descriptor(classical)).unwrap_err(),
        Rejection::NoHybridKeys
    );
    let key = SigningKey::from_bytes(&[13; 32]);
    let mut body = sample_with_key(&key, 1, Role::Mix, 2).body;
    body.kem_keys = (0..3)
        .map(|i| crate::EpochKemKey {
            epoch: 1 + i,
            key: aegis_mix_packet::kem::HybridSecret::from_seed(&[i as u8; 32])
                .public()
                .as_bytes()
                .to_vec(),
        })
        .collect();
    assert!(a.handle(0, Input::Descriptor(body.sign(&key))).is_ok());
    // A Sphinx network takes both: hybrid keys are simply not used there.
    let mut sphinx = Net::new(1).nodes.remove(0);
    assert!(
        sphinx
            .handle(0, Input::Descriptor(sample(13, 1, Role::Mix)))
            .is_ok()
    );
}

#[test]
fn uploads_close_when_the_vote_is_cast() {
    let mut a = Net::new(1).nodes.remove(0);
    a.handle(SCHEDULE.phase_at(1, Phase::Vote), Input::Tick)
        .unwrap();
    let late = sample(12, 1, Role::Mix);
    assert_eq!(
        a.handle(SCHEDULE.phase_at(1, Phase::Vote), Input::Descriptor(late))
            .unwrap_err(),
        Rejection::RoundClosed(1)
    );
}

#[test]
fn single_authority_publishes_alone() {
    let mut net = Net::new(1);
    for d in mixes_and_gateway(1) {
        net.upload_all(0, &d);
    }
    net.run_until(0, P - 1);
    assert_eq!(net.published[0].len(), 1);
    assert_eq!(net.nodes[0].document(1).unwrap().signatures.len(), 1);
}

#[test]
fn restored_state_resumes_the_round() {
    let mut net = Net::new(3);
    for d in mixes_and_gateway(1) {
        net.upload_all(0, &d);
    }
    let mut records = Vec::new();
    let mut now = 0;
    // Run authority 0 alone past its vote, keeping what it asks to store.
    while now <= SCHEDULE.phase_at(1, Phase::Vote) {
        for out in net.nodes[0].handle(now, Input::Tick).unwrap() {
            if let Output::Store(r) = out {
                records.push(r);
            }
        }
        now += P / 32;
    }
    let key = keys(3).remove(0);
    let publics: Vec<[u8; 32]> = keys(3)
        .iter()
        .map(|k| k.verifying_key().to_bytes())
        .collect();
    let mut restored = Authority::new(AuthorityConfig {
        key,
        authorities: publics,
        schedule: SCHEDULE,
        parameters: NetworkParameters::standard(P),
        admission: Admission::default(),
        directory: Vec::new(),
    });
    for d in mixes_and_gateway(1) {
        restored.restore(Record::Descriptor(d)).unwrap();
    }
    for r in records {
        restored.restore(r).unwrap();
    }
    let status = &restored.rounds()[0];
    assert_eq!((status.descriptors, status.votes), (7, 1));
    // The restored authority does not vote twice.
    let out = restored.handle(now, Input::Tick).unwrap();
    assert!(!out.iter().any(|o| matches!(o, Output::SendVote(_))));
}

#[test]
fn a_descriptor_flood_does_not_push_out_a_listed_node() {
    let mut net = Net::new(3);
    for d in mixes_and_gateway(1) {
        net.upload_all(0, &d);
    }
    net.run_until(0, P - 1);
    assert_eq!(net.nodes[0].document(1).unwrap().body.mixes().count(), 6);

    // Epoch 2's round: 100,000 descriptors from fresh keys reach every
    // authority before the listed nodes upload.
    let start = SCHEDULE.epoch_start(1);
    let mut refused = 0;
    for i in 0..100_000u32 {
        let mut seed = [0u8; 32];
        seed[..4].copy_from_slice(&i.to_be_bytes());
        seed[31] = 0xF1;
        let role = if i % 10 == 0 {
            Role::Gateway
        } else {
            Role::Mix
        };
        let flood = sample_with_key(&SigningKey::from_bytes(&seed), 2, role, 0);
        for node in &mut net.nodes {
            if let Err(rejection) = node.handle(start, Input::Descriptor(flood.clone())) {
                assert_eq!(rejection.label(), "full");
                refused += 1;
            }
        }
    }
    let quota = OpenLimits::default().newcomers_per_round;
    assert_eq!(refused, 3 * (100_000 - quota));
    // The listed nodes still get in, and into the document.
    for d in mixes_and_gateway(2) {
        net.upload_all(start, &d);
    }
    net.run_until(start, start + P - 1);
    let listed: BTreeSet<[u8; 32]> = net.nodes[0]
        .document(2)
        .unwrap()
        .body
        .mixes()
        .map(|(_, d)| d.identity())
        .chain(
            net.nodes[0]
                .document(2)
                .unwrap()
                .body
                .gateways
                .iter()
                .map(SignedDescriptor::identity),
        )
        .collect();
    for d in mixes_and_gateway(2) {
        assert!(
            listed.contains(&d.identity()),
            "a listed node was pushed out"
        );
    }
}

#[test]
fn an_allowlist_admits_only_pinned_nodes() {
    let key = keys(1).remove(0);
    let allowed = sample(1, 1, Role::Mix);
    let mut authority = Authority::new(AuthorityConfig {
        authorities: Vec::new(),
        schedule: SCHEDULE,
        parameters: NetworkParameters::standard(P),
        admission: Admission::Allowlist {
            nodes: [allowed.identity()].into_iter().collect(),
        },
        key,
        directory: Vec::new(),
    });
    assert!(authority.handle(0, Input::Descriptor(allowed)).is_ok());
    let stranger = sample(2, 1, Role::Mix);
    let refused = authority.handle(0, Input::Descriptor(stranger));
    assert!(
        matches!(refused, Err(ref r) if r.label() == "not_allowed"),
        "{refused:?}"
    );
}

#[test]
fn an_authority_sending_different_votes_is_caught_and_left_out() {
    let mut net = Net::new(5);
    for d in mixes_and_gateway(1) {
        net.upload_all(0, &d);
    }
    // Authority 0 does not vote itself: it sends vote A to authorities 1
    // and 2 and a different vote B to 3 and 4.
    net.up[0] = false;
    let key = keys(5).remove(0);
    let vote = |descriptors: Vec<SignedDescriptor>| {
        VoteBody {
            authority: key.verifying_key().to_bytes(),
            epoch: 1,
            parameters: NetworkParameters::standard(P),
            previous: None,
            descriptors,
            authorities: Vec::new(),
        }
        .sign(&key)
    };
    let mut all = mixes_and_gateway(1);
    all.sort_by_key(SignedDescriptor::identity);
    let a = vote(all.clone());
    let b = vote(all[..all.len() - 1].to_vec());
    let at = SCHEDULE.phase_at(1, Phase::Vote);
    net.run_until(0, at - 1);
    for (to, v) in [(1, &a), (2, &a), (3, &b), (4, &b)] {
        // Relayed copies may have got there first (and convicted already).
        if let Ok(out) = net.nodes[to].handle(at, Input::Vote(v.clone())) {
            net.deliver(at, to, out);
        }
    }
    net.run_until(at, P - 1);
    for i in 1..5 {
        let proofs = net.nodes[i].equivocations(1);
        assert_eq!(proofs.len(), 1, "authority {i} holds no proof");
        assert!(proofs[0].verify());
        assert_eq!(proofs[0].authority(), key.verifying_key().to_bytes());
        assert!(
            net.nodes[i].document(1).is_some(),
            "authority {i} has no document"
        );
    }
    // The four honest authorities agree, without the equivocator's vote.
    let doc = net.nodes[1].document(1).unwrap().to_bytes();
    assert!((2..5).all(|i| net.nodes[i].document(1).unwrap().to_bytes() == doc));
    // A restored authority keeps the proof and leaves the vote out.
    let proof = net.nodes[1].equivocations(1).remove(0);
    let mut restored = Authority::new(AuthorityConfig {
        key: keys(5).remove(1),
        authorities: keys(5)
            .iter()
            .map(|k| k.verifying_key().to_bytes())
            .collect(),
        schedule: SCHEDULE,
        parameters: NetworkParameters::standard(P),
        admission: Admission::default(),
        directory: Vec::new(),
    });
    restored.restore(Record::Vote(a.clone())).unwrap();
    restored
        .restore(Record::Equivocation(Box::new(proof)))
        .unwrap();
    assert_eq!(restored.equivocations(1).len(), 1);
    assert!(matches!(
        restored.handle(at, Input::Vote(a)),
        Err(Rejection::Equivocation(_))
    ));
}
