//! Routes: the hops a packet visits, where it ends, and how long each hop
//! holds it.

use std::fmt;
use std::sync::Arc;
use std::time::Duration;

use rand::Rng;
use rand_distr::{Distribution, Exp};
use sphinx_packet::header::delays::Delay;
use sphinx_packet::route::{DestinationAddressBytes, Node, NodeAddressBytes};
use x25519_dalek::PublicKey;

use crate::constants::{MAILBOX_ID_LEN, MAX_HOP_DELAY_NANOS, NODE_ID_LEN};
use crate::error::PacketError;
use crate::geometry::Geometry;
use crate::kem::HybridPublic;

/// A node's identifier: its Ed25519 identity public key.
#[derive(Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct NodeId(pub [u8; NODE_ID_LEN]);

/// A mailbox identifier at a gateway: 32 random bytes, a client's address.
#[derive(Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct MailboxId(pub [u8; MAILBOX_ID_LEN]);

/// The reserved destination of drop-cover packets. The exit gateway discards
/// packets addressed here; it is the only thing it learns about them.
pub const DROP_DESTINATION: [u8; MAILBOX_ID_LEN] = [0xFF; MAILBOX_ID_LEN];

impl MailboxId {
    /// A fresh random mailbox id.
    pub fn random<R: Rng + ?Sized>(rng: &mut R) -> Self {
        let mut id = [0u8; MAILBOX_ID_LEN];
        rng.fill_bytes(&mut id);
        if id == DROP_DESTINATION {
            id[0] = 0;
        }
        MailboxId(id)
    }
}

macro_rules! short_hex_debug {
    ($t:ty, $name:literal) => {
        impl fmt::Debug for $t {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                write!(
                    f,
                    concat!($name, "({:02x}{:02x}{:02x}{:02x}..)"),
                    self.0[0], self.0[1], self.0[2], self.0[3]
                )
            }
        }
    };
}
short_hex_debug!(NodeId, "NodeId");
short_hex_debug!(MailboxId, "MailboxId");

/// Where a packet ends after its last hop.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Destination {
    /// A mailbox at the exit gateway.
    Mailbox(MailboxId),
    /// Drop cover: the exit gateway discards it.
    Drop,
}

impl Destination {
    pub(crate) fn to_sphinx(self) -> DestinationAddressBytes {
        match self {
            Destination::Mailbox(m) => DestinationAddressBytes::from_bytes(m.0),
            Destination::Drop => DestinationAddressBytes::from_bytes(DROP_DESTINATION),
        }
    }

    pub(crate) fn from_sphinx(address: &DestinationAddressBytes) -> Self {
        let bytes = address.as_bytes();
        if bytes == DROP_DESTINATION {
            Destination::Drop
        } else {
            Destination::Mailbox(MailboxId(bytes))
        }
    }
}

/// One hop of a route: the node and its packet keys for the packet's epoch.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Hop {
    /// The node's identity.
    pub node: NodeId,
    /// The node's Sphinx (X25519) public key for the epoch the packet is framed with.
    pub sphinx_key: PublicKey,
    /// The node's hybrid KEM key for that epoch, which packets in the KEM
    /// format need; `None` where the network runs Sphinx only.
    pub kem_key: Option<Arc<HybridPublic>>,
}

impl Hop {
    /// A hop of a Sphinx-only network.
    pub fn sphinx(node: NodeId, sphinx_key: PublicKey) -> Self {
        Hop {
            node,
            sphinx_key,
            kem_key: None,
        }
    }
}

/// An ordered list of hops: entry gateway, mix layers, exit gateway.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Route {
    hops: Vec<Hop>,
}

impl Route {
    /// A route over the given hops; it must have the geometry's number of hops.
    pub fn new(hops: Vec<Hop>, geometry: &Geometry) -> Result<Self, PacketError> {
        if hops.is_empty() || hops.len() != geometry.hops {
            return Err(PacketError::RouteLength {
                expected: geometry.hops,
                got: hops.len(),
            });
        }
        Ok(Route { hops })
    }

    /// A route that goes once around the stratified cycle back to its
    /// sender (a node's loop cover): at least two hops and at most the
    /// geometry's. The header is padded to the geometry's size whatever the
    /// number of hops, so on the wire it looks like every other packet.
    pub fn cycle(hops: Vec<Hop>, geometry: &Geometry) -> Result<Self, PacketError> {
        if hops.len() < 2 || hops.len() > geometry.hops {
            return Err(PacketError::RouteLength {
                expected: geometry.hops,
                got: hops.len(),
            });
        }
        Ok(Route { hops })
    }

    /// The hops in order.
    pub fn hops(&self) -> &[Hop] {
        &self.hops
    }

    /// The first hop: where the packet is sent. `Route::new` refuses empty routes.
    pub fn first(&self) -> Option<&Hop> {
        self.hops.first()
    }

    pub(crate) fn to_sphinx(&self) -> Vec<Node> {
        self.hops
            .iter()
            .map(|h| Node::new(NodeAddressBytes::from_bytes(h.node.0), h.sphinx_key))
            .collect()
    }
}

/// Per-hop delays chosen by the sender.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct HopDelays(pub(crate) Vec<Delay>);

impl HopDelays {
    /// Samples one delay per hop from Exp(μ) with mean `mean` (Loopix's
    /// Poisson mixing). Samples are not clamped to small values, which would
    /// break the memorylessness the mixing relies on; only a sample above the
    /// absurd [`MAX_HOP_DELAY_NANOS`] is reduced to it. The first hop (the
    /// entry gateway) and the last (exit gateway) get delays too: every hop mixes.
    pub fn sample_exponential<R: Rng + ?Sized>(rng: &mut R, hops: usize, mean: Duration) -> Self {
        let mean_nanos = mean.as_nanos() as f64;
        let delays = match Exp::new(1.0 / mean_nanos) {
            Ok(exp) if mean_nanos > 0.0 => (0..hops)
                .map(|_| {
                    let sample: f64 = exp.sample(rng);
                    Delay::new_from_nanos((sample.round() as u64).min(MAX_HOP_DELAY_NANOS))
                })
                .collect(),
            _ => vec![Delay::new_from_nanos(0); hops],
        };
        HopDelays(delays)
    }

    /// Explicit delays, e.g. zero delays for batching strategies that ignore them.
    pub fn fixed(delays: &[Duration]) -> Self {
        HopDelays(
            delays
                .iter()
                .map(|d| Delay::new_from_nanos((d.as_nanos() as u64).min(MAX_HOP_DELAY_NANOS)))
                .collect(),
        )
    }

    /// The delays as durations.
    pub fn as_durations(&self) -> Vec<Duration> {
        self.0.iter().map(|d| d.to_duration()).collect()
    }

    /// Sum of all hop delays: the expected mixing latency of the route.
    pub fn total(&self) -> Duration {
        self.0.iter().map(|d| d.to_duration()).sum()
    }

    /// Number of delays.
    pub fn len(&self) -> usize {
        self.0.len()
    }

    /// Whether there are no delays.
    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use rand::SeedableRng;
    use rand_chacha::ChaCha20Rng;

    #[test]
    fn exponential_delays_have_the_requested_mean_and_are_not_clamped_small() {
        let mut rng = ChaCha20Rng::seed_from_u64(7);
        let mean = Duration::from_millis(50);
        let mut sum = 0u128;
        let mut above_3_means = 0;
        let n = 20_000;
        for _ in 0..n / 5 {
            for d in HopDelays::sample_exponential(&mut rng, 5, mean).as_durations() {
                sum += d.as_nanos();
                if d > mean * 3 {
                    above_3_means += 1;
                }
            }
        }
        let observed = sum as f64 / n as f64 / 1e6;
        assert!((observed - 50.0).abs() < 2.5, "mean {observed} ms");
        // P(X > 3/μ) = e^-3 ≈ 5%: the tail is intact, not clamped.
        let frac = above_3_means as f64 / n as f64;
        assert!((frac - 0.0498).abs() < 0.01, "tail fraction {frac}");
    }

    #[test]
    fn absurd_delays_are_capped() {
        let d = HopDelays::fixed(&[Duration::from_secs(3600)]);
        assert_eq!(
            d.as_durations()[0],
            Duration::from_nanos(MAX_HOP_DELAY_NANOS)
        );
        let mut rng = ChaCha20Rng::seed_from_u64(1);
        let huge = HopDelays::sample_exponential(&mut rng, 5, Duration::from_secs(1_000_000));
        assert!(
            huge.as_durations()
                .iter()
                .all(|d| d.as_nanos() as u64 <= MAX_HOP_DELAY_NANOS)
        );
    }

    #[test]
    fn zero_mean_gives_zero_delays() {
        let mut rng = ChaCha20Rng::seed_from_u64(1);
        let d = HopDelays::sample_exponential(&mut rng, 3, Duration::ZERO);
        assert_eq!(d.total(), Duration::ZERO);
        assert_eq!(d.len(), 3);
    }

    #[test]
    fn drop_destination_round_trips_and_random_mailboxes_avoid_it() {
        assert_eq!(
            Destination::from_sphinx(&Destination::Drop.to_sphinx()),
            Destination::Drop
        );
        let m = MailboxId([3; 32]);
        assert_eq!(
            Destination::from_sphinx(&Destination::Mailbox(m).to_sphinx()),
            Destination::Mailbox(m)
        );
    }
}
