//! Anonymous replies. A client that writes without revealing who or where
//! it is puts reply blocks in its message: each a route it chose from the
//! recipient's gateway back to its own mailbox, of which the recipient
//! learns only the first hop (its own gateway). The recipient answers over
//! them, one block per packet, never one twice. What arrives over a
//! given block is found by its delivery tag and opened with the kept
//! reply key; its fragments are acknowledged with a forward packet to the
//! recipient's address (the writer knows it: it wrote to that address),
//! since the writer cannot use a block that would have to start at its
//! own, undisclosed gateway.

use std::collections::HashMap;

use aegis_mix_packet::constants::DELIVERY_TAG_LEN;
use aegis_mix_packet::{AckId, ReplyKey, build_over_block};

use super::*;

/// Reply keys kept at most for blocks given away; the oldest goes first.
pub const MAX_GIVEN_BLOCKS: usize = 512;

/// A block given away, as its creator keeps it.
#[derive(Debug)]
pub(super) struct GivenBlock {
    key: ReplyKey,
    /// Where the fragments that come back over it are acknowledged.
    ack_to: Address,
    made: Duration,
}

/// The blocks given away and the blocks received, by recipient.
#[derive(Debug)]
pub(super) struct Anonymous<C> {
    given: HashMap<[u8; DELIVERY_TAG_LEN], GivenBlock>,
    received: HashMap<C, VecDeque<SurbAck>>,
}

impl<C> Default for Anonymous<C> {
    fn default() -> Self {
        Anonymous {
            given: HashMap::new(),
            received: HashMap::new(),
        }
    }
}

impl<C: Clone + Eq + Hash + Ord> Endpoint<C> {
    /// How long a block lives: the keys of the epoch it was built in serve
    /// that epoch and the next, so at most two epochs.
    fn block_lifetime(&self) -> Duration {
        Duration::from_millis(self.topology.parameters.epoch_length_ms.saturating_mul(2))
    }

    /// `count` reply blocks (encoded as SURB-ACKs) over which the holder of
    /// `to` can answer us without learning our address: each starts at
    /// `to`'s gateway and ends in our mailbox. Fewer if routes are missing
    /// or [`MAX_GIVEN_BLOCKS`] are out already (expired ones are dropped
    /// first).
    pub fn give_reply_blocks<R: CryptoRng + ?Sized>(
        &mut self,
        rng: &mut R,
        to: &Address,
        count: usize,
        now: Duration,
    ) -> Vec<Vec<u8>> {
        let lifetime = self.block_lifetime();
        self.anonymous
            .given
            .retain(|_, b| now.saturating_sub(b.made) < lifetime);
        let mut blocks = Vec::with_capacity(count);
        for _ in 0..count {
            if self.anonymous.given.len() >= MAX_GIVEN_BLOCKS {
                break;
            }
            let Ok(route) = self
                .topology
                .route(rng, &self.geometry, to.gateway, self.own.gateway)
            else {
                break;
            };
            let delays = self.delays(rng);
            let Ok((block, key)) = SurbAck::new(
                rng,
                &self.geometry,
                &route,
                &delays,
                self.own.mailbox,
                self.own_key,
            ) else {
                break;
            };
            let mut encoded = Vec::with_capacity(self.geometry.surb_ack_len());
            block.encode(&mut encoded);
            self.anonymous.given.insert(
                *key.tag(),
                GivenBlock {
                    key,
                    ack_to: to.clone(),
                    made: now,
                },
            );
            blocks.push(encoded);
        }
        blocks
    }

    /// Reply blocks given by someone who wrote anonymously, added to those
    /// held for `recipient`: messages queued to it
    /// ([`Endpoint::queue_over_blocks`]) go over them, one block per
    /// transmission, in the order given.
    pub fn add_reply_blocks(&mut self, recipient: C, blocks: Vec<SurbAck>) {
        self.anonymous
            .received
            .entry(recipient)
            .or_default()
            .extend(blocks);
    }

    /// Reply blocks left for `recipient`.
    pub fn reply_blocks_left(&self, recipient: &C) -> usize {
        self.anonymous
            .received
            .get(recipient)
            .map_or(0, VecDeque::len)
    }

    /// Queues a message (sealed end to end) to someone known only by the
    /// reply blocks they gave (`blocks` are added to those held for them):
    /// each transmission, retransmissions included, takes the next block;
    /// with none left it waits and in the end fails.
    pub fn queue_over_blocks<R: CryptoRng + ?Sized>(
        &mut self,
        rng: &mut R,
        recipient: C,
        blocks: Vec<SurbAck>,
        message: Vec<u8>,
        now: Duration,
    ) -> Result<LocalId, OutboxError> {
        self.addresses.remove(&recipient);
        self.add_reply_blocks(recipient.clone(), blocks);
        let local = self.outbox.queue(rng, recipient, message, now)?;
        self.outbox_changed = true;
        if self.config.prepare_ahead {
            self.prepare(rng, now);
        }
        Ok(local)
    }

    /// A fragment's packet over the next reply block for its recipient,
    /// with a SURB-ACK of ours for the format's sake (the writer
    /// acknowledges by a forward packet to our address and uses only its
    /// id).
    pub(super) fn build_over_received<R: CryptoRng + ?Sized>(
        &mut self,
        rng: &mut R,
        t: &Transmission<C>,
    ) -> Option<(Vec<u8>, AckId, ReplyKey)> {
        let geometry = self.geometry.clone();
        let (surb_ack, reply_key) = self.own_surb_ack(rng, self.own.gateway)?;
        let ack_id = surb_ack.ack_id;
        let block = self.anonymous.received.get_mut(&t.recipient)?.pop_front()?;
        let body = Body::Fragment {
            fragment: t.fragment.clone(),
            surb_ack,
        };
        let frame = build_over_block(rng, &geometry, block, &body)
            .ok()?
            .to_frame(&geometry)
            .ok()?;
        Some((frame, ack_id, reply_key))
    }

    /// The block a delivery came back over, if it is one we gave away
    /// (each is used once: its key goes with it).
    pub(super) fn take_given(
        &mut self,
        tag: &[u8; DELIVERY_TAG_LEN],
    ) -> Option<(ReplyKey, Address)> {
        self.anonymous.given.remove(tag).map(|b| (b.key, b.ack_to))
    }

    /// An acknowledgement of `ack_id` as a forward packet to `to`.
    pub(super) fn forward_ack<R: CryptoRng + ?Sized>(
        &self,
        rng: &mut R,
        to: &Address,
        ack_id: AckId,
    ) -> Option<Vec<u8>> {
        let route = self
            .topology
            .route(rng, &self.geometry, self.own.gateway, to.gateway)
            .ok()?;
        let delays = self.delays(rng);
        build_mailbox_packet(
            rng,
            &self.geometry,
            &route,
            &delays,
            to.mailbox,
            &to.mailbox_key,
            &Body::Ack(ack_id),
        )
        .ok()?
        .to_frame(&self.geometry)
        .ok()
    }
}
