//! One node of the harness: a mix or a gateway doing what `aegis-node`'s
//! pipeline does to each frame, without threads or sockets.

use std::collections::{HashMap, VecDeque};
use std::time::Duration;

use aegis_directory::{NetworkParameters, Role};
use aegis_mix_packet::access::{PULL_BATCH, padded_ack};
use aegis_mix_packet::constants::DELIVERY_TAG_LEN;
use aegis_mix_packet::{
    Body, Destination, Frame, Geometry, HopDelays, LoopId, MailboxId, NodeId, PacketError,
    Processed, SphinxPublicKey, build_mailbox_packet, join_delivery, open_delivery, process_frame,
};
use aegis_proto::access::{self, Verdict};
use aegis_proto::loop_cover::NODE_LOOP_TIMEOUT;
use aegis_proto::{LoopTracker, Mixer, Topology};
use rand::CryptoRng;

use aegis_proto::testnet::NodeSecrets;

/// Packets a node's mixer holds at most.
const MIX_CAPACITY: usize = 100_000;
/// Packets one mailbox holds at most.
const MAILBOX_CAPACITY: usize = 10_000;
/// The slack a gateway allows over the published client rates.
const CLIENT_RATE_SLACK: f64 = 3.0;

/// What became of a frame that reached a node.
#[derive(Debug, PartialEq, Eq)]
pub(super) enum Arrival {
    /// The node is stopped: the frame is lost.
    Lost,
    /// Unwrapped and held by the mixer.
    Held,
    /// Stored in a mailbox (this node is the exit gateway).
    Delivered,
    /// One of this node's own loops came back.
    LoopBack,
    /// Drop cover, discarded at its exit.
    DropCover,
    /// Seen before.
    Replayed,
    /// Over a limit: the client's rate, the mixer's or the mailbox's capacity.
    Refused,
    /// Did not unwrap.
    Invalid,
}

pub(super) struct SimNode {
    pub id: NodeId,
    pub secrets: NodeSecrets,
    strategy: aegis_directory::MixingStrategy,
    mixer: Mixer<(NodeId, Vec<u8>)>,
    mailboxes: HashMap<MailboxId, VecDeque<(u64, Vec<u8>)>>,
    next_entry: u64,
    sessions: HashMap<usize, access::Session>,
    send_rate: f64,
    pub loops: LoopTracker<LoopId>,
    up: bool,
}

impl SimNode {
    pub fn new(secrets: NodeSecrets, parameters: &NetworkParameters) -> Self {
        SimNode {
            id: secrets.id(),
            secrets,
            strategy: parameters.mixing,
            mixer: Mixer::new(&parameters.mixing, MIX_CAPACITY, Duration::ZERO),
            mailboxes: HashMap::new(),
            next_entry: 0,
            sessions: HashMap::new(),
            send_rate: access::client_send_rate(parameters, CLIENT_RATE_SLACK),
            loops: LoopTracker::new(NODE_LOOP_TIMEOUT),
            up: true,
        }
    }

    pub fn is_up(&self) -> bool {
        self.up
    }

    /// Stops for good; what the mixer held is lost.
    pub fn stop(&mut self) {
        self.up = false;
        self.mixer = Mixer::new(&self.strategy, MIX_CAPACITY, Duration::ZERO);
    }

    /// A restart: the mixer's packets and the client sessions are lost;
    /// keys, replay filters and mailboxes survive (a real node keeps them on disk).
    pub fn restart(&mut self) {
        self.mixer = Mixer::new(&self.strategy, MIX_CAPACITY, Duration::ZERO);
        self.sessions.clear();
    }

    fn session(&mut self, client: usize, now: Duration) -> &mut access::Session {
        let rate = self.send_rate;
        self.sessions
            .entry(client)
            .or_insert_with(|| access::Session::new(rate, now))
    }

    /// A frame arrives, from a neighbour or (at a gateway) from a client;
    /// the node tries the keys of `epochs` in order (the current epoch's
    /// and the previous one's, as a real node does between two rounds).
    pub fn receive(
        &mut self,
        geometry: &Geometry,
        frame: &[u8],
        epochs: &[u64],
        from_client: Option<usize>,
        now: Duration,
    ) -> Arrival {
        if !self.up {
            return Arrival::Lost;
        }
        if let Some(client) = from_client
            && self.session(client, now).on_send(now) != Verdict::Accept
        {
            return Arrival::Refused;
        }
        match process_frame(geometry, frame, &mut self.secrets.keys, epochs) {
            Err(PacketError::Replayed) => Arrival::Replayed,
            Err(_) => Arrival::Invalid,
            Ok((
                _,
                Processed::Forward {
                    next_hop,
                    delay,
                    packet,
                    ..
                },
            )) => {
                let Ok(frame) = Frame::encode(geometry, &packet) else {
                    return Arrival::Invalid;
                };
                match self.mixer.push(now, delay, (next_hop, frame)) {
                    Ok(()) => Arrival::Held,
                    Err(_) => Arrival::Refused,
                }
            }
            Ok((
                _,
                Processed::Final {
                    destination,
                    delivery_tag,
                    payload,
                },
            )) => self.final_hop(geometry, destination, &delivery_tag, payload, now),
        }
    }

    fn final_hop(
        &mut self,
        geometry: &Geometry,
        destination: Destination,
        tag: &[u8; DELIVERY_TAG_LEN],
        payload: Vec<u8>,
        now: Duration,
    ) -> Arrival {
        let mailbox = match destination {
            Destination::Drop => return Arrival::DropCover,
            Destination::Mailbox(m) => m,
        };
        if mailbox == self.secrets.loop_mailbox {
            if let Ok(Body::Loop(id)) = open_delivery(geometry, &self.secrets.loop_secret, &payload)
            {
                self.loops.returned(&id, now);
                return Arrival::LoopBack;
            }
            return Arrival::Invalid;
        }
        if self.secrets.role != Role::Gateway {
            return Arrival::Invalid;
        }
        let stored = self.mailboxes.entry(mailbox).or_default();
        if stored.len() >= MAILBOX_CAPACITY {
            return Arrival::Refused;
        }
        self.next_entry += 1;
        stored.push_back((self.next_entry, join_delivery(tag, &payload)));
        Arrival::Delivered
    }

    /// Where packets due by `now` go, in the order the mixer lets them go.
    pub fn due<R: CryptoRng + ?Sized>(
        &mut self,
        rng: &mut R,
        now: Duration,
    ) -> Vec<(NodeId, Vec<u8>)> {
        let mut out = Vec::new();
        if self.up {
            self.mixer.poll(now, rng, &mut out);
        }
        out
    }

    pub fn next_deadline(&self) -> Option<Duration> {
        if self.up {
            self.mixer.next_deadline()
        } else {
            None
        }
    }

    /// A client's pull at `now`: deletes what `ack` names, answers with the
    /// mailbox's oldest entries; `None` when the gateway is down or the
    /// session is ended for pulling too fast.
    pub fn pull<R: CryptoRng + ?Sized>(
        &mut self,
        rng: &mut R,
        geometry: &Geometry,
        client: usize,
        mailbox: &MailboxId,
        ack: &[[u8; 8]],
        now: Duration,
    ) -> Option<Vec<([u8; 8], Vec<u8>)>> {
        if !self.up {
            return None;
        }
        // What a client's pull cell carries: its ids padded with random ones.
        let padded = padded_ack(rng, ack).ok()?;
        if let Verdict::Detach(_) = self.session(client, now).on_pull(now, padded.len()) {
            self.sessions.remove(&client);
            return None;
        }
        let stored = self.mailboxes.entry(*mailbox).or_default();
        let acked: Vec<u64> = padded.iter().map(|id| u64::from_be_bytes(*id)).collect();
        stored.retain(|(id, _)| !acked.contains(id));
        let oldest = stored.iter().take(PULL_BATCH).cloned();
        let answer = access::pull_answer(rng, oldest, geometry.delivery_len());
        Some(
            answer
                .into_iter()
                .filter(|entry| entry.real)
                .map(|entry| (entry.id, entry.payload))
                .collect(),
        )
    }

    /// A loop cover packet through every layer and a gateway back to this
    /// node: its first hop and frame.
    pub fn loop_packet<R: CryptoRng + ?Sized>(
        &mut self,
        rng: &mut R,
        geometry: &Geometry,
        topology: &Topology,
        now: Duration,
    ) -> Option<(NodeId, Vec<u8>)> {
        if !self.up {
            return None;
        }
        let route = topology.loop_route(rng, geometry, self.id).ok()?;
        let delays =
            HopDelays::sample_exponential(rng, route.hops().len(), topology.mean_hop_delay());
        let mut id = [0u8; aegis_mix_packet::constants::ID_LEN];
        rng.fill_bytes(&mut id);
        let id = LoopId(id);
        let key = SphinxPublicKey::from(&self.secrets.loop_secret);
        let packet = build_mailbox_packet(
            rng,
            geometry,
            &route,
            &delays,
            self.secrets.loop_mailbox,
            &key,
            &Body::Loop(id),
        )
        .ok()?;
        self.loops.sent(id, now);
        Some((packet.first_hop, packet.to_frame(geometry).ok()?))
    }
}
