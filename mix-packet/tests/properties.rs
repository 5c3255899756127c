//! Property tests for the codecs and the fragmentation state machine.

#![allow(clippy::unwrap_used, missing_docs)]

use aegis_mix_packet::{
    Body, Frame, Geometry, MessageId, Reassembled, Reassembler, ReassemblyLimits, ReplayFilter,
    SurbAck, split,
};
use proptest::prelude::*;
use std::time::Duration;

proptest! {
    #![proptest_config(ProptestConfig::with_cases(256))]

    #[test]
    fn frame_round_trips(seed in any::<u8>()) {
        let g = Geometry::STANDARD;
        let packet: Vec<u8> = (0..g.packet_len()).map(|i| (i as u8).wrapping_mul(seed)).collect();
        let bytes = Frame::encode(&g, &packet).unwrap();
        prop_assert_eq!(bytes.len(), g.frame_len());
        let frame = Frame::decode(&g, &bytes).unwrap();
        prop_assert_eq!(frame.packet, &packet[..]);
    }

    #[test]
    fn frame_decoding_accepts_exactly_one_length(len in 0usize..6000, version in any::<u8>()) {
        let g = Geometry::STANDARD;
        let mut bytes = vec![0u8; len];
        if let Some(b) = bytes.first_mut() { *b = version; }
        let decoded = Frame::decode(&g, &bytes);
        prop_assert_eq!(decoded.is_ok(), len == g.frame_len() && version == aegis_mix_packet::constants::FRAME_VERSION);
    }

    #[test]
    fn untrusted_decoders_never_panic(bytes in proptest::collection::vec(any::<u8>(), 0..3000)) {
        let g = Geometry::STANDARD;
        let _ = Frame::decode(&g, &bytes);
        let _ = Body::decode(&g, &bytes);
        let _ = SurbAck::decode(&g, &bytes);
        let _ = ReplayFilter::from_bytes(&bytes);
        let mut padded = bytes.clone();
        padded.resize(g.sealed_plaintext_len(), 0);
        let _ = Body::decode(&g, &padded);
    }

    #[test]
    fn fragments_reassemble_in_any_order_with_duplicates(
        len in 0usize..20_000,
        seed in any::<u64>(),
        dup_mask in any::<u64>(),
    ) {
        let g = Geometry::STANDARD;
        let message: Vec<u8> = (0..len).map(|i| (i as u64 ^ seed) as u8).collect();
        let id = MessageId(seed.to_be_bytes().repeat(2).try_into().unwrap());
        let fragments = split(&g, id, &message).unwrap();
        prop_assert_eq!(fragments.len(), len.div_ceil(g.fragment_data_len()).max(1));
        prop_assert!(fragments.iter().all(|f| f.data.len() <= g.fragment_data_len()));

        // shuffle deterministically from the seed, duplicate some
        let mut order: Vec<usize> = (0..fragments.len()).collect();
        let mut s = seed;
        for i in (1..order.len()).rev() {
            s = s.wrapping_mul(6364136223846793005).wrapping_add(1442695040888963407);
            order.swap(i, (s >> 33) as usize % (i + 1));
        }
        let mut stream: Vec<usize> = order.clone();
        for (k, &i) in order.iter().enumerate() {
            if dup_mask >> (k % 64) & 1 == 1 { stream.push(i); }
        }

        let mut r = Reassembler::new(ReassemblyLimits::default());
        let mut complete = vec![];
        for (t, &i) in stream.iter().enumerate() {
            if let Reassembled::Complete(got_id, m) = r.insert(fragments[i].clone(), Duration::from_millis(t as u64)).unwrap() {
                complete.push((got_id, m));
            }
        }
        prop_assert_eq!(complete, vec![(id, message)]);
        prop_assert_eq!(r.partial_messages(), 0);
        prop_assert_eq!(r.buffered_bytes(), 0);
    }
}
