//! Building the packets an endpoint sends: loops, drops and message
//! fragments with their SURB-ACKs.

use super::*;

impl<C: Clone + Eq + Hash + Ord> Endpoint<C> {
    pub(super) fn delays<R: CryptoRng + ?Sized>(&self, rng: &mut R) -> HopDelays {
        HopDelays::sample_exponential(rng, self.geometry.hops, self.topology.mean_hop_delay())
    }

    /// A loop to the client's own mailbox, as a frame with its loop id.
    pub(super) fn loop_packet<R: CryptoRng + ?Sized>(&self, rng: &mut R) -> Option<Ready<C>> {
        let gateway = self.own.gateway;
        let route = self
            .topology
            .route(rng, &self.geometry, gateway, gateway)
            .ok()?;
        let delays = self.delays(rng);
        let mut id = [0u8; ID_LEN];
        rng.fill_bytes(&mut id);
        let id = LoopId(id);
        let packet = build_mailbox_packet(
            rng,
            &self.geometry,
            &route,
            &delays,
            self.own.mailbox,
            &self.own_key,
            &Body::Loop(id),
        )
        .ok()?;
        Some(Ready {
            frame: packet.to_frame(&self.geometry).ok()?,
            kind: PacketKind::Loop,
            after: After::Loop(id),
        })
    }

    /// Drop cover, as a frame.
    pub(super) fn drop_packet<R: CryptoRng + ?Sized>(&self, rng: &mut R) -> Option<Ready<C>> {
        let exit = self.topology.random_gateway(rng).ok()?;
        let route = self
            .topology
            .route(rng, &self.geometry, self.own.gateway, exit)
            .ok()?;
        let delays = self.delays(rng);
        let frame = build_drop_cover(rng, &self.geometry, &route, &delays)
            .ok()?
            .to_frame(&self.geometry)
            .ok()?;
        Some(Ready {
            frame,
            kind: PacketKind::Drop,
            after: After::Nothing,
        })
    }

    /// A fragment's packet with a fresh SURB-ACK over a fresh route back;
    /// `None` (the fragment goes back to the outbox) if no route or key is
    /// available.
    pub(super) fn fragment_packet<R: CryptoRng + ?Sized>(
        &mut self,
        rng: &mut R,
        t: Transmission<C>,
    ) -> Option<Ready<C>> {
        let built = if self.addresses.contains_key(&t.recipient) {
            self.build_fragment(rng, &t)
        } else {
            self.build_over_received(rng, &t)
        };
        if built.is_none() {
            self.outbox.not_sent(t.local_id, t.fragment.index);
        }
        let (frame, ack_id, key) = built?;
        Some(Ready {
            frame,
            kind: PacketKind::Fragment,
            after: After::Fragment(Box::new(SentFragment { t, ack_id, key })),
        })
    }

    pub(super) fn build_fragment<R: CryptoRng + ?Sized>(
        &self,
        rng: &mut R,
        t: &Transmission<C>,
    ) -> Option<(Vec<u8>, aegis_mix_packet::AckId, aegis_mix_packet::ReplyKey)> {
        let address = self.addresses.get(&t.recipient)?.clone();
        let geometry = &self.geometry;
        let route = self
            .topology
            .route(rng, geometry, self.own.gateway, address.gateway)
            .ok()?;
        let delays = self.delays(rng);
        let (surb_ack, reply_key) = self.own_surb_ack(rng, address.gateway)?;
        let ack_id = surb_ack.ack_id;
        let packet = build_mailbox_packet(
            rng,
            geometry,
            &route,
            &delays,
            address.mailbox,
            &address.mailbox_key,
            &Body::Fragment {
                fragment: t.fragment.clone(),
                surb_ack,
            },
        )
        .ok()?;
        Some((packet.to_frame(geometry).ok()?, ack_id, reply_key))
    }

    /// A SURB-ACK back to our mailbox over a fresh route from `from` (the
    /// gateway where it will be used), and the key to read what comes back.
    pub(super) fn own_surb_ack<R: CryptoRng + ?Sized>(
        &self,
        rng: &mut R,
        from: NodeId,
    ) -> Option<(SurbAck, aegis_mix_packet::ReplyKey)> {
        let back = self
            .topology
            .route(rng, &self.geometry, from, self.own.gateway)
            .ok()?;
        let delays = self.delays(rng);
        SurbAck::new(
            rng,
            &self.geometry,
            &back,
            &delays,
            self.own.mailbox,
            self.own_key,
        )
        .ok()
    }
}
