//! The KEM packet's header: built by the sender for every hop at once,
//! opened by each hop with one decapsulation.
//!
//! `header = ct (1120) ‖ γ (16) ‖ β`, where `ct` is the hop's X-Wing
//! ciphertext, `γ` a MAC over `β`, and `β` the routing slots of this and
//! every later hop, encrypted in layers. A hop decapsulates, derives its
//! keys, checks `γ`, decrypts `β ‖ 0^S` with its stream and reads
//! `routing ‖ next ct ‖ next γ ‖ next β`. The `S` zero bytes it appends
//! keep the header's length; the sender computed what they decrypt to (the
//! filler) so the next hop's MAC covers them. This is Sphinx's layout with
//! the group element replaced by a ciphertext that travels inside the
//! previous hop's layer, as in Katzenpost's KEM Sphinx.

use std::time::Duration;

use chacha20::ChaCha20;
use chacha20::cipher::{KeyIvInit, StreamCipher};
use hkdf::Hkdf;
use hmac::{Hmac, KeyInit, Mac};
use rand::CryptoRng;
use sha2::Sha256;
use zeroize::{Zeroize, Zeroizing};

use super::xwing::{CIPHERTEXT_LEN, HybridPublic, HybridSecret};
use crate::constants::{
    DELIVERY_TAG_LEN, MAILBOX_ID_LEN, MAX_HOP_DELAY_NANOS, NODE_ID_LEN, PAYLOAD_KEY_SEED_LEN,
    REPLAY_TAG_LEN,
};
use crate::error::PacketError;
use crate::replay::ReplayTag;
use crate::route::{Destination, HopDelays, MailboxId, NodeId};

/// Length of the header MAC γ.
pub const MAC_LEN: usize = 16;

/// Length of one hop's routing command: kind (1), address (32), delay in
/// nanoseconds (8), delivery tag (16).
pub const ROUTING_LEN: usize = 1 + NODE_ID_LEN + 8 + DELIVERY_TAG_LEN;

/// What each hop strips from `β` and the next hop's header adds: a routing
/// command, the next ciphertext and the next MAC.
pub const SLOT_LEN: usize = ROUTING_LEN + CIPHERTEXT_LEN + MAC_LEN;

/// Length of `β` for `hops` hops: a full slot per hop but the last, whose
/// routing command is all it needs.
pub const fn beta_len(hops: usize) -> usize {
    hops.saturating_sub(1) * SLOT_LEN + ROUTING_LEN
}

/// Length of the header for `hops` hops.
pub const fn header_len(hops: usize) -> usize {
    CIPHERTEXT_LEN + MAC_LEN + beta_len(hops)
}

const ROUTE_FORWARD: u8 = 0x01;
const ROUTE_FINAL: u8 = 0x02;

/// HKDF salt and info of the per-hop keys.
const HOP_KEYS_SALT: &[u8] = b"aegislink/v1/kem-packet";
const HOP_KEYS_INFO: &[u8] = b"hop keys";

type Seed = [u8; PAYLOAD_KEY_SEED_LEN];

/// Everything one hop's shared secret gives.
pub(crate) struct HopKeys {
    stream: Zeroizing<[u8; 32]>,
    mac: Zeroizing<[u8; 32]>,
    /// The seed of the hop's payload key (`derive_payload_key`).
    pub(crate) seed: Zeroizing<Seed>,
    /// The hop's replay tag.
    pub(crate) tag: ReplayTag,
}

impl HopKeys {
    /// `HKDF-SHA256(salt, ss, info)` → stream key (32) ‖ MAC key (32) ‖
    /// payload key seed (16) ‖ replay tag (32).
    pub(crate) fn derive(shared: &[u8; 32]) -> Self {
        let mut okm = Zeroizing::new([0u8; 32 + 32 + PAYLOAD_KEY_SEED_LEN + REPLAY_TAG_LEN]);
        // 112 bytes, far below HKDF-SHA256's limit of 8,160.
        let _ =
            Hkdf::<Sha256>::new(Some(HOP_KEYS_SALT), shared).expand(HOP_KEYS_INFO, okm.as_mut());
        let mut stream = Zeroizing::new([0u8; 32]);
        let mut mac = Zeroizing::new([0u8; 32]);
        let mut seed = Zeroizing::new([0u8; PAYLOAD_KEY_SEED_LEN]);
        let mut tag = [0u8; REPLAY_TAG_LEN];
        stream.copy_from_slice(&okm[..32]);
        mac.copy_from_slice(&okm[32..64]);
        seed.copy_from_slice(&okm[64..64 + PAYLOAD_KEY_SEED_LEN]);
        tag.copy_from_slice(&okm[64 + PAYLOAD_KEY_SEED_LEN..]);
        HopKeys {
            stream,
            mac,
            seed,
            tag: ReplayTag(tag),
        }
    }

    /// The hop's keystream: ChaCha20 under the stream key, nonce zero (each
    /// key is used for one packet).
    fn keystream(&self, len: usize) -> Vec<u8> {
        let mut out = vec![0u8; len];
        let mut cipher = ChaCha20::new(&(*self.stream).into(), &[0u8; 12].into());
        cipher.apply_keystream(&mut out);
        out
    }

    fn mac(&self, beta: &[u8]) -> [u8; MAC_LEN] {
        let mut out = [0u8; MAC_LEN];
        out.copy_from_slice(&self.hmac(beta).finalize().into_bytes()[..MAC_LEN]);
        out
    }

    fn hmac(&self, beta: &[u8]) -> Hmac<Sha256> {
        // HMAC takes keys of any length; 32 bytes never fails.
        let mut mac = <Hmac<Sha256> as KeyInit>::new_from_slice(self.mac.as_ref())
            .unwrap_or_else(|_| unreachable!("HMAC accepts 32-byte keys"));
        mac.update(beta);
        mac
    }

    /// Constant-time check of γ.
    fn verify(&self, beta: &[u8], gamma: &[u8]) -> bool {
        self.hmac(beta).verify_truncated_left(gamma).is_ok()
    }
}

/// One hop's routing command, as the hop reads it.
#[derive(Debug, PartialEq, Eq)]
pub(crate) enum Routing {
    Forward {
        next: NodeId,
        delay_nanos: u64,
    },
    Final {
        destination: Destination,
        tag: [u8; DELIVERY_TAG_LEN],
    },
}

/// The routing command's bytes (for the tests).
#[cfg(test)]
pub(crate) fn encode_routing(routing: &Routing) -> [u8; ROUTING_LEN] {
    routing.encode()
}

/// Strict decoding of a routing command (for the tests).
#[cfg(test)]
pub(crate) fn decode_routing(bytes: &[u8]) -> Result<Routing, PacketError> {
    Routing::decode(bytes)
}

impl Routing {
    fn encode(&self) -> [u8; ROUTING_LEN] {
        let mut out = [0u8; ROUTING_LEN];
        match self {
            Routing::Forward { next, delay_nanos } => {
                out[0] = ROUTE_FORWARD;
                out[1..33].copy_from_slice(&next.0);
                out[33..41].copy_from_slice(&delay_nanos.to_be_bytes());
            }
            Routing::Final { destination, tag } => {
                out[0] = ROUTE_FINAL;
                let address = match destination {
                    Destination::Mailbox(m) => m.0,
                    Destination::Drop => crate::route::DROP_DESTINATION,
                };
                out[1..33].copy_from_slice(&address);
                out[41..].copy_from_slice(tag);
            }
        }
        out
    }

    /// Strict decoding: a known kind, and zeros where the kind has nothing.
    fn decode(bytes: &[u8]) -> Result<Self, PacketError> {
        let mut address = [0u8; NODE_ID_LEN];
        address.copy_from_slice(&bytes[1..33]);
        let mut delay = [0u8; 8];
        delay.copy_from_slice(&bytes[33..41]);
        let delay_nanos = u64::from_be_bytes(delay);
        let mut tag = [0u8; DELIVERY_TAG_LEN];
        tag.copy_from_slice(&bytes[41..ROUTING_LEN]);
        match bytes[0] {
            ROUTE_FORWARD if tag == [0u8; DELIVERY_TAG_LEN] => Ok(Routing::Forward {
                next: NodeId(address),
                delay_nanos,
            }),
            ROUTE_FINAL if delay_nanos == 0 => {
                let destination = if address == crate::route::DROP_DESTINATION {
                    Destination::Drop
                } else {
                    let mut mailbox = [0u8; MAILBOX_ID_LEN];
                    mailbox.copy_from_slice(&address);
                    Destination::Mailbox(MailboxId(mailbox))
                };
                Ok(Routing::Final { destination, tag })
            }
            ROUTE_FORWARD | ROUTE_FINAL => Err(PacketError::MalformedRouting(
                "non-zero bytes in an unused routing field".into(),
            )),
            other => Err(PacketError::MalformedRouting(format!(
                "unknown routing kind {other:#04x}"
            ))),
        }
    }
}

/// A header built for a route, and every hop's payload key seed in route
/// order.
pub(crate) struct BuiltHeader {
    pub(crate) header: Vec<u8>,
    pub(crate) seeds: Vec<Seed>,
}

impl Drop for BuiltHeader {
    fn drop(&mut self) {
        self.seeds.zeroize();
    }
}

/// Builds the header of a packet over `hops` (each node and its hybrid key)
/// for a geometry of `max_hops` hops, ending at `destination` with
/// `delivery_tag`. A route shorter than `max_hops` (a node's loop) gets the
/// same header length: the padding is random.
pub(crate) fn build<R: CryptoRng + ?Sized>(
    rng: &mut R,
    max_hops: usize,
    hops: &[(NodeId, &HybridPublic)],
    delays: &HopDelays,
    destination: Destination,
    delivery_tag: [u8; DELIVERY_TAG_LEN],
) -> Result<BuiltHeader, PacketError> {
    if hops.is_empty() || hops.len() > max_hops {
        return Err(PacketError::RouteLength {
            expected: max_hops,
            got: hops.len(),
        });
    }
    if delays.len() != hops.len() {
        return Err(PacketError::DelayCount {
            expected: hops.len(),
            got: delays.len(),
        });
    }
    let n = hops.len();
    let beta = beta_len(max_hops);
    let mut ciphertexts = Vec::with_capacity(n);
    let mut keys = Vec::with_capacity(n);
    for (_, key) in hops {
        let (ct, ss) = key.encapsulate(rng);
        ciphertexts.push(ct);
        keys.push(HopKeys::derive(&ss));
    }
    let streams: Vec<Vec<u8>> = keys.iter().map(|k| k.keystream(beta + SLOT_LEN)).collect();

    // The filler: what hops 1..n-1 append and decrypt, as the last hop sees it.
    let mut filler: Vec<u8> = Vec::with_capacity((n - 1) * SLOT_LEN);
    for stream in &streams[..n - 1] {
        let start = beta - filler.len();
        filler.extend_from_slice(&[0u8; SLOT_LEN]);
        for (f, s) in filler.iter_mut().zip(&stream[start..]) {
            *f ^= s;
        }
    }

    // The last hop: its routing command, random padding, then the filler.
    let last = Routing::Final {
        destination,
        tag: delivery_tag,
    };
    let mut current = vec![0u8; beta];
    current[..ROUTING_LEN].copy_from_slice(&last.encode());
    rng.fill_bytes(&mut current[ROUTING_LEN..beta - filler.len()]);
    let open_len = beta - filler.len();
    for (b, s) in current[..open_len].iter_mut().zip(&streams[n - 1]) {
        *b ^= s;
    }
    current[open_len..].copy_from_slice(&filler);
    let mut gamma = keys[n - 1].mac(&current);

    // Every earlier hop wraps the next one's ciphertext, MAC and β.
    for i in (0..n - 1).rev() {
        let delay_nanos = delays.0[i].to_nanos().min(MAX_HOP_DELAY_NANOS);
        let routing = Routing::Forward {
            next: hops[i + 1].0,
            delay_nanos,
        };
        let mut layer = Vec::with_capacity(beta);
        layer.extend_from_slice(&routing.encode());
        layer.extend_from_slice(&ciphertexts[i + 1]);
        layer.extend_from_slice(&gamma);
        layer.extend_from_slice(&current[..beta - SLOT_LEN]);
        for (b, s) in layer.iter_mut().zip(&streams[i]) {
            *b ^= s;
        }
        gamma = keys[i].mac(&layer);
        current = layer;
    }

    let mut header = Vec::with_capacity(header_len(max_hops));
    header.extend_from_slice(&ciphertexts[0]);
    header.extend_from_slice(&gamma);
    header.extend_from_slice(&current);
    Ok(BuiltHeader {
        header,
        seeds: keys.iter().map(|k| *k.seed).collect(),
    })
}

/// A header whose hop keys are known; `γ` not checked yet.
pub(crate) struct OpenedHeader {
    keys: HopKeys,
    header: Vec<u8>,
    hops: usize,
}

/// Decapsulates the header's ciphertext with `key`. `header` must be
/// `header_len(hops)` bytes (the caller checked the packet's length).
pub(crate) fn open(header: &[u8], hops: usize, key: &HybridSecret) -> OpenedHeader {
    let mut ct = [0u8; CIPHERTEXT_LEN];
    ct.copy_from_slice(&header[..CIPHERTEXT_LEN]);
    let shared = key.decapsulate(&ct);
    OpenedHeader {
        keys: HopKeys::derive(&shared),
        header: header.to_vec(),
        hops,
    }
}

impl OpenedHeader {
    pub(crate) fn keys(&self) -> &HopKeys {
        &self.keys
    }

    /// Whether `γ` authenticates `β` under this hop's key.
    pub(crate) fn authentic(&self) -> bool {
        let (gamma, beta) = self.header[CIPHERTEXT_LEN..].split_at(MAC_LEN);
        self.keys.verify(beta, gamma)
    }

    /// Checks `γ`, then removes this hop's layer: the routing command and,
    /// for a forward hop, the next hop's header.
    pub(crate) fn unwrap(&self) -> Result<(Routing, Option<Vec<u8>>), PacketError> {
        if !self.authentic() {
            return Err(PacketError::HeaderAuthentication);
        }
        let beta = beta_len(self.hops);
        let mut plain = Vec::with_capacity(beta + SLOT_LEN);
        plain.extend_from_slice(&self.header[CIPHERTEXT_LEN + MAC_LEN..]);
        plain.resize(beta + SLOT_LEN, 0);
        for (b, s) in plain.iter_mut().zip(self.keys.keystream(beta + SLOT_LEN)) {
            *b ^= s;
        }
        let routing = Routing::decode(&plain[..ROUTING_LEN])?;
        match routing {
            Routing::Forward { .. } => Ok((routing, Some(plain.split_off(ROUTING_LEN)))),
            Routing::Final { .. } => Ok((routing, None)),
        }
    }
}

/// The delay a forward hop asks for, capped as for Sphinx packets.
pub(crate) fn capped_delay(delay_nanos: u64) -> (Duration, bool) {
    (
        Duration::from_nanos(delay_nanos.min(MAX_HOP_DELAY_NANOS)),
        delay_nanos > MAX_HOP_DELAY_NANOS,
    )
}
