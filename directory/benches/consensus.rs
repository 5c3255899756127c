//! Building, signing and verifying the consensus for 10,000 descriptors,
//! against a baseline of verifying 10,000 bare Ed25519 signatures in the
//! same run.
#![allow(clippy::unwrap_used, clippy::expect_used, missing_docs)]

use std::hint::black_box;
use std::time::Duration;

use aegis_directory::{
    DescriptorBody, DocumentSignature, EpochSphinxKey, NetworkParameters, Role, Schedule,
    SignedConsensus, SignedDescriptor, TallyInput, Verifier, VoteBody, tally,
};
use criterion::{Criterion, criterion_group, criterion_main};
use ed25519_dalek::{Signer, SigningKey, Verifier as _};

const NODES: u32 = 10_000;
const EPOCH: u64 = 1;

fn descriptors() -> Vec<SignedDescriptor> {
    let mut out: Vec<SignedDescriptor> = (0..NODES)
        .map(|i| {
            let mut seed = [0u8; 32];
            seed[..4].copy_from_slice(&i.to_le_bytes());
            let key = SigningKey::from_bytes(&seed);
            DescriptorBody {
                identity: key.verifying_key().to_bytes(),
                epoch: EPOCH,
                revision: 0,
                role: if i % 10 == 0 {
                    Role::Gateway
                } else {
                    Role::Mix
                },
                addresses: vec![format!(
                    "/ip4/10.{}.{}.{}/tcp/4000",
                    i >> 16,
                    (i >> 8) & 255,
                    i & 255
                )],
                sphinx_keys: [0, 1, 2].map(|k| EpochSphinxKey {
                    epoch: EPOCH + k,
                    key: [1 + k as u8; 32],
                }),
                kem_keys: vec![],
                version: "aegis-node/0.1.0".into(),
            }
            .sign(&key)
        })
        .collect();
    out.sort_by_key(SignedDescriptor::identity);
    out
}

fn bench(c: &mut Criterion) {
    let schedule = Schedule {
        genesis_ms: 0,
        epoch_length_ms: 1_200_000,
    };
    let authorities: Vec<SigningKey> = (1..=3u8)
        .map(|i| SigningKey::from_bytes(&[i; 32]))
        .collect();
    let descriptors = descriptors();
    let votes: Vec<_> = authorities
        .iter()
        .map(|k| {
            VoteBody {
                authority: k.verifying_key().to_bytes(),
                epoch: EPOCH,
                parameters: NetworkParameters::standard(1_200_000),
                previous: None,
                descriptors: descriptors.clone(),
                authorities: Vec::new(),
            }
            .sign(k)
        })
        .collect();
    let input = TallyInput {
        epoch: EPOCH,
        threshold: 2,
        votes: &votes,
        previous: None,
        schedule: &schedule,
    };
    let verifier = Verifier::new(authorities.iter().map(|k| k.verifying_key().to_bytes()));

    let build = || {
        let body = tally(input).unwrap();
        let hash = body.hash();
        let mut doc = SignedConsensus {
            body,
            signatures: vec![],
        };
        for k in &authorities {
            doc.add_signature(DocumentSignature::create(k, EPOCH, hash));
        }
        doc
    };
    let bytes = build().to_bytes();
    eprintln!("document: {} descriptors, {} bytes", NODES, bytes.len());

    let messages: Vec<(
        ed25519_dalek::VerifyingKey,
        Vec<u8>,
        ed25519_dalek::Signature,
    )> = (0..NODES)
        .map(|i| {
            let k = SigningKey::from_bytes(&[(i % 251) as u8; 32]);
            let m = i.to_le_bytes().repeat(8);
            let s = k.sign(&m);
            (k.verifying_key(), m, s)
        })
        .collect();

    let mut group = c.benchmark_group("directory_10k");
    group
        .sample_size(10)
        .measurement_time(Duration::from_secs(8));
    group.bench_function("baseline_verify_10k_ed25519", |b| {
        b.iter(|| {
            for (k, m, s) in &messages {
                k.verify(black_box(m), s).unwrap();
            }
        })
    });
    group.bench_function("tally_and_sign_10k", |b| b.iter(|| black_box(build())));
    group.bench_function("decode_and_verify_10k", |b| {
        b.iter(|| {
            verifier
                .verify_bytes(black_box(&bytes), Some(EPOCH), 0)
                .unwrap()
        })
    });
    group.bench_function("authority_check_vote_10k", |b| {
        b.iter(|| votes[0].verify().unwrap())
    });
    group.finish();
}

criterion_group!(benches, bench);
criterion_main!(benches);
