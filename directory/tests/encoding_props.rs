//! Property tests of the canonical encoding.
#![allow(clippy::unwrap_used, clippy::expect_used, missing_docs)]

use aegis_directory::{
    ClientShaping, ConsensusBody, DescriptorBody, DocumentSignature, EpochSphinxKey,
    MixingStrategy, NetworkParameters, Role, SignedConsensus, SignedDescriptor, SignedVote,
    Verifier,
};
use ed25519_dalek::SigningKey;
use proptest::prelude::*;

fn descriptor_strategy() -> impl Strategy<Value = SignedDescriptor> {
    (
        any::<[u8; 32]>(),
        0u64..1_000_000,
        any::<u64>(),
        any::<bool>(),
        proptest::collection::vec("/[a-z0-9]{1,8}(/[a-z0-9.]{1,12}){0,4}", 1..8),
        "[ -~]{1,64}",
        any::<[[u8; 32]; 3]>(),
    )
        .prop_map(
            |(seed, epoch, revision, gateway, addresses, version, keys)| {
                let key = SigningKey::from_bytes(&seed);
                DescriptorBody {
                    identity: key.verifying_key().to_bytes(),
                    epoch,
                    revision,
                    role: if gateway { Role::Gateway } else { Role::Mix },
                    addresses,
                    sphinx_keys: [0usize, 1, 2].map(|i| EpochSphinxKey {
                        epoch: epoch + i as u64,
                        key: keys[i],
                    }),
                    kem_keys: vec![],
                    version,
                }
                .sign(&key)
            },
        )
}

fn parameters_strategy() -> impl Strategy<Value = NetworkParameters> {
    (
        0u8..3,
        0.001f64..1e5,
        0.001f64..1e3,
        1u32..10_000,
        1_000u64..10_000_000,
    )
        .prop_map(|(kind, a, b, n, epoch)| {
            let mixing = match kind {
                0 => MixingStrategy::Poisson { mean_delay_ms: a },
                1 => MixingStrategy::TimedPool {
                    interval_ms: u64::from(n),
                    min_pool: n,
                    fraction: (b / 1e3).max(0.001),
                },
                _ => MixingStrategy::ThresholdPool { threshold: n },
            };
            NetworkParameters {
                mixing,
                lambda_p: a,
                lambda_l: b,
                lambda_d: b,
                lambda_m: a,
                geometry_hash: [3; 32],
                epoch_length_ms: epoch,
                shaping: if kind == 0 {
                    ClientShaping::ConstantRate
                } else {
                    ClientShaping::Poisson
                },
            }
        })
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 64, ..ProptestConfig::default() })]

    #[test]
    fn descriptors_round_trip_exactly(d in descriptor_strategy()) {
        let bytes = d.to_bytes();
        let back = SignedDescriptor::from_bytes(&bytes).unwrap();
        prop_assert_eq!(back.to_bytes(), bytes);
        prop_assert_eq!(back, d);
    }

    #[test]
    fn documents_round_trip_and_verify(
        mut nodes in proptest::collection::vec(descriptor_strategy(), 0..12),
        parameters in parameters_strategy(),
        previous in any::<Option<[u8; 32]>>(),
    ) {
        let epoch = 5;
        let mut layers: [Vec<SignedDescriptor>; 3] = Default::default();
        let mut gateways = Vec::new();
        nodes.sort_by_key(SignedDescriptor::identity);
        nodes.dedup_by_key(|d| d.identity());
        for (i, d) in nodes.into_iter().enumerate() {
            let key_seed = d.body.identity;
            let mut body = d.body;
            body.epoch = epoch;
            for (k, key) in body.sphinx_keys.iter_mut().enumerate() {
                key.epoch = epoch + k as u64;
            }
            // Re-signing needs the secret; descriptors inside a document are
            // covered by the authorities' signatures, so an unsigned-looking
            // copy is enough for encoding tests.
            let d = SignedDescriptor { body, signature: aegis_directory::SignatureBytes([key_seed[0]; 64]) };
            match d.body.role {
                Role::Gateway => gateways.push(d),
                Role::Mix => layers[i % 3].push(d),
            }
        }
        let body = ConsensusBody {
            format: aegis_directory::constants::DOCUMENT_FORMAT_VERSION,
            epoch,
            valid_after_ms: 10,
            valid_until_ms: 20,
            parameters,
            layers,
            gateways,
            previous,
            authorities: Vec::new(),
        };
        let key = SigningKey::from_bytes(&[1; 32]);
        let doc = SignedConsensus { signatures: vec![DocumentSignature::create(&key, epoch, body.hash())], body };
        let bytes = doc.to_bytes();
        let verifier = Verifier::new([key.verifying_key().to_bytes()]);
        let back = verifier.verify_bytes(&bytes, Some(epoch), 0).unwrap();
        prop_assert_eq!(back.to_bytes(), bytes);
    }

    #[test]
    fn decoding_arbitrary_bytes_never_panics(bytes in proptest::collection::vec(any::<u8>(), 0..2048)) {
        let _ = SignedDescriptor::from_bytes(&bytes);
        let _ = SignedDescriptor::decode(&bytes);
        let _ = SignedVote::from_bytes(&bytes);
        let _ = SignedConsensus::from_bytes(&bytes);
        let _ = DocumentSignature::from_bytes(&bytes);
        let _ = Verifier::new([[1u8; 32]]).verify_bytes(&bytes, None, 0);
    }

    #[test]
    fn mutated_descriptors_never_panic_and_rarely_pass(d in descriptor_strategy(), at in any::<prop::sample::Index>(), bit in 0u8..8) {
        let mut bytes = d.to_bytes();
        let i = at.index(bytes.len());
        bytes[i] ^= 1 << bit;
        // A flipped bit must never yield a valid descriptor with different
        // content under the same signature.
        if let Ok(back) = SignedDescriptor::from_bytes(&bytes) {
            prop_assert_eq!(back, d);
        }
    }
}
