//! The client's per-message send cost and the PQXDH handshake, each beside a
//! baseline measured in the same run.
//!
//! * Per message: Double Ratchet encryption of a 1 KiB or 10 KiB message,
//!   queueing in the [`Outbox`] (which fragments it), and for every fragment
//!   a SURB-ACK back to the sender and a 5-hop mailbox packet sealed to the
//!   recipient — the client's whole send path short of the socket. Baseline:
//!   creating one bare 5-hop `sphinx-packet` packet, so the ratio per
//!   fragment says what AegisLink adds to the Sphinx work a fragment needs
//!   anyway.
//! * Handshake: PQXDH `initiate` (bundle verification, 3 DH, ML-KEM-768
//!   encapsulation) and `respond` (3 DH, decapsulation). Baseline: one bare
//!   X25519 Diffie-Hellman.
//!
//! Besides criterion's figures, a paired run alternates each measured
//! operation with its baseline and prints the ratios of the medians as JSON
//! lines at the end, so that load on the machine hits both alike.

#![allow(clippy::unwrap_used, missing_docs)]

use std::time::{Duration, Instant};

use aegis_client::ContactId;
use aegis_client::edge::identity::{Identity, PqPrekey, PrekeyBundle, SignedPrekey};
use aegis_client::edge::pqxdh::{initiate, respond};
use aegis_client::edge::ratchet::Session;
use aegis_mix_packet::{
    AckId, Body, Geometry, Hop, HopDelays, MailboxId, NodeId, OutgoingPacket, Route,
    SphinxPublicKey, SphinxSecret, SurbAck, build_mailbox_packet,
};
use aegis_proto::delivery::{Outbox, OutboxConfig};
use criterion::{Criterion, criterion_group};
use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha20Rng;
use sphinx_packet::header::delays::Delay;
use sphinx_packet::route::{Destination, DestinationAddressBytes, Node, NodeAddressBytes};
use sphinx_packet::{SphinxPacket, SphinxPacketBuilder};

const HOPS: usize = 5;

struct Mailbox {
    id: MailboxId,
    key: SphinxPublicKey,
}

struct Sender {
    rng: ChaCha20Rng,
    geometry: Geometry,
    session: Session,
    outbox: Outbox,
    forward: Route,
    back: Route,
    delays: HopDelays,
    own: Mailbox,
    peer: Mailbox,
    bare_route: Vec<Node>,
    bare_destination: Destination,
}

fn route(rng: &mut ChaCha20Rng, geometry: &Geometry) -> Route {
    let hops = (0..HOPS)
        .map(|_| {
            let mut id = [0u8; 32];
            rng.fill_bytes(&mut id);
            Hop::sphinx(
                NodeId(id),
                SphinxPublicKey::from(&SphinxSecret::random_from_rng(&mut *rng)),
            )
        })
        .collect();
    Route::new(hops, geometry).unwrap()
}

fn mailbox(rng: &mut ChaCha20Rng) -> Mailbox {
    Mailbox {
        id: MailboxId::random(rng),
        key: SphinxPublicKey::from(&SphinxSecret::random_from_rng(rng)),
    }
}

struct Bob {
    identity: Identity,
    spk: SignedPrekey,
    pq: PqPrekey,
}

impl Bob {
    fn new(rng: &mut ChaCha20Rng) -> Self {
        let identity = Identity::generate(rng);
        let spk = identity.new_signed_prekey(rng, 1);
        let pq = identity.new_pq_prekey(rng, 2);
        Bob { identity, spk, pq }
    }

    fn bundle(&self) -> PrekeyBundle {
        PrekeyBundle {
            identity: self.identity.public(),
            signed_prekey: self.spk.public(),
            pq_prekey: self.pq.public(),
        }
    }
}

fn sender() -> Sender {
    let mut rng = ChaCha20Rng::seed_from_u64(1);
    let geometry = Geometry::STANDARD;
    let alice = Identity::generate(&mut rng);
    let bob = Bob::new(&mut rng);
    let bundle = bob.bundle();
    let (_, secret) = initiate(&mut rng, &alice, &bundle).unwrap();
    let session = Session::initiator(&mut rng, &secret, &bundle.signed_prekey.key).unwrap();
    let forward = route(&mut rng, &geometry);
    let back = route(&mut rng, &geometry);
    let own = mailbox(&mut rng);
    let peer = mailbox(&mut rng);
    let bare_route = forward
        .hops()
        .iter()
        .map(|h| Node::new(NodeAddressBytes::from_bytes(h.node.0), h.sphinx_key))
        .collect();
    let bare_destination =
        Destination::new(DestinationAddressBytes::from_bytes(peer.id.0), [3; 16]);
    Sender {
        rng,
        geometry,
        session,
        outbox: Outbox::new(OutboxConfig::default()),
        forward,
        back,
        delays: HopDelays::fixed(&[Duration::ZERO; HOPS]),
        own,
        peer,
        bare_route,
        bare_destination,
    }
}

impl Sender {
    /// Encrypt, queue, and build one packet per fragment; then acknowledge
    /// them so the outbox stays empty between iterations.
    fn send(&mut self, plaintext: &[u8]) -> Vec<OutgoingPacket> {
        let ciphertext = self.session.encrypt(&mut self.rng, plaintext, 0).unwrap();
        self.outbox
            .queue(
                &mut self.rng,
                ContactId([1; 16]),
                ciphertext,
                Duration::ZERO,
            )
            .unwrap();
        let mut packets = Vec::new();
        let mut acks = Vec::new();
        while let Some(t) = self.outbox.next_transmission(Duration::ZERO) {
            let (surb_ack, reply_key) = SurbAck::new(
                &mut self.rng,
                &self.geometry,
                &self.back,
                &self.delays,
                self.own.id,
                self.own.key,
            )
            .unwrap();
            let ack_id: AckId = surb_ack.ack_id;
            let index = t.fragment.index;
            let body = Body::Fragment {
                fragment: t.fragment,
                surb_ack,
            };
            packets.push(
                build_mailbox_packet(
                    &mut self.rng,
                    &self.geometry,
                    &self.forward,
                    &self.delays,
                    self.peer.id,
                    &self.peer.key,
                    &body,
                )
                .unwrap(),
            );
            self.outbox.record_sent(
                t.local_id,
                index,
                ack_id,
                reply_key,
                Duration::ZERO,
                Duration::from_secs(30),
            );
            acks.push(ack_id);
        }
        for ack in acks {
            self.outbox.acknowledged(ack, Duration::ZERO);
        }
        packets
    }

    fn bare_packet(&self) -> SphinxPacket {
        SphinxPacketBuilder::new()
            .with_payload_size(self.geometry.payload_len)
            .build_packet(
                b"bare",
                &self.bare_route,
                &self.bare_destination,
                &[Delay::new_from_nanos(0); HOPS],
            )
            .unwrap()
    }
}

fn handshake(rng: &mut ChaCha20Rng, alice: &Identity, bob: &Bob, bundle: &PrekeyBundle) {
    let (header, a) = initiate(rng, alice, bundle).unwrap();
    let b = respond(&bob.identity, &bob.spk, &bob.pq, &header).unwrap();
    assert_eq!(*a.sk, *b.sk);
}

const KIB: usize = 1024;

fn benches(c: &mut Criterion) {
    let mut s = sender();
    let mut group = c.benchmark_group("send_message");
    group.bench_function("baseline_bare_sphinx_5_hops", |b| {
        b.iter(|| s.bare_packet())
    });
    for size in [KIB, 10 * KIB] {
        let plaintext = vec![0x42; size];
        group.bench_function(format!("aegis_{}KiB", size / KIB), |b| {
            b.iter(|| s.send(&plaintext))
        });
    }
    group.finish();

    let mut rng = ChaCha20Rng::seed_from_u64(2);
    let alice = Identity::generate(&mut rng);
    let bob = Bob::new(&mut rng);
    let bundle = bob.bundle();
    let dh_secret = SphinxSecret::random_from_rng(&mut rng);
    let dh_public = SphinxPublicKey::from(&SphinxSecret::random_from_rng(&mut rng));
    let mut group = c.benchmark_group("pqxdh");
    group.bench_function("baseline_x25519_dh", |b| {
        b.iter(|| dh_secret.diffie_hellman(&dh_public))
    });
    group.bench_function("initiate_and_respond", |b| {
        b.iter(|| handshake(&mut rng, &alice, &bob, &bundle))
    });
    group.finish();
}

fn median(v: &mut [f64]) -> f64 {
    v.sort_by(|a, b| a.total_cmp(b));
    v[v.len() / 2]
}

/// Alternates `measured` and `baseline` `rounds` times; medians in µs.
fn paired(rounds: usize, mut measured: impl FnMut(), mut baseline: impl FnMut()) -> (f64, f64) {
    let (mut ours, mut base) = (Vec::with_capacity(rounds), Vec::with_capacity(rounds));
    for _ in 0..rounds {
        let t = Instant::now();
        baseline();
        base.push(t.elapsed().as_secs_f64() * 1e6);
        let t = Instant::now();
        measured();
        ours.push(t.elapsed().as_secs_f64() * 1e6);
    }
    (median(&mut ours), median(&mut base))
}

criterion_group!(group, benches);

fn main() {
    group();
    Criterion::default().configure_from_args().final_summary();

    let mut s = sender();
    let fragment_len = s.geometry.fragment_data_len();
    for size in [KIB, 10 * KIB] {
        let plaintext = vec![0x42; size];
        let fragments =
            (size + aegis_client::edge::ratchet::MESSAGE_OVERHEAD).div_ceil(fragment_len);
        let mut built = 0;
        let bare_route = s.bare_route.clone();
        let bare_destination = s.bare_destination.clone();
        let geometry = s.geometry.clone();
        let (ours, bare) = paired(
            400,
            || built = std::hint::black_box(s.send(&plaintext)).len(),
            || {
                std::hint::black_box(
                    SphinxPacketBuilder::new()
                        .with_payload_size(geometry.payload_len)
                        .build_packet(
                            b"bare",
                            &bare_route,
                            &bare_destination,
                            &[Delay::new_from_nanos(0); HOPS],
                        )
                        .unwrap(),
                );
            },
        );
        assert_eq!(built, fragments);
        println!(
            "{{\"bench\":\"send_{}KiB_paired\",\"fragments\":{fragments},\"aegis_us\":{ours:.1},\"bare_sphinx_packet_us\":{bare:.1},\"ratio_per_message\":{:.2},\"ratio_per_fragment\":{:.2}}}",
            size / KIB,
            ours / bare,
            ours / bare / fragments as f64
        );
    }

    let mut rng = ChaCha20Rng::seed_from_u64(3);
    let alice = Identity::generate(&mut rng);
    let bob = Bob::new(&mut rng);
    let bundle = bob.bundle();
    let dh_secret = SphinxSecret::random_from_rng(&mut rng);
    let dh_public = SphinxPublicKey::from(&SphinxSecret::random_from_rng(&mut rng));
    let mut handshake_rng = ChaCha20Rng::seed_from_u64(4);
    let (ours, bare) = paired(
        1000,
        || handshake(&mut handshake_rng, &alice, &bob, &bundle),
        || {
            std::hint::black_box(dh_secret.diffie_hellman(&dh_public));
        },
    );
    println!(
        "{{\"bench\":\"pqxdh_paired\",\"initiate_and_respond_us\":{ours:.1},\"bare_x25519_dh_us\":{bare:.1},\"ratio\":{:.1}}}",
        ours / bare
    );
}
