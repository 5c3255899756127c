//! What an endpoint does with the packets it pulls: acks opened with the
//! kept reply keys, fragments reassembled and acknowledged, loops noted.

use super::*;

impl<C: Clone + Eq + Hash + Ord> Endpoint<C> {
    /// One stored packet: an ack over a reply block this client gave away
    /// is found by its delivery tag and turned back into its view with the
    /// kept reply key; anything else is its view already.
    pub(super) fn deliver(&mut self, delivery: &[u8], now: Duration) {
        let Ok((tag, payload)) = split_delivery(&self.geometry, delivery) else {
            return;
        };
        if let Some(key) = self.outbox.reply_key(tag) {
            if let Ok(view) = key.open(&self.geometry, payload) {
                self.receive(&view, now, true);
            }
            return;
        }
        if let Some((key, ack_to)) = self.take_given(tag) {
            // An anonymous reply: acknowledged by a forward packet.
            if let Ok(view) = key.open(&self.geometry, payload) {
                self.receive_acking(&view, now, true, Some(&ack_to));
            }
            return;
        }
        self.receive(payload, now, true);
    }

    pub(super) fn receive(&mut self, payload: &[u8], now: Duration, acknowledge: bool) {
        self.receive_acking(payload, now, acknowledge, None);
    }

    /// [`Endpoint::receive`]; fragments are acknowledged over their
    /// SURB-ACK, or with a forward packet to `forward_to` if given.
    fn receive_acking(
        &mut self,
        payload: &[u8],
        now: Duration,
        acknowledge: bool,
        forward_to: Option<&Address>,
    ) {
        let Ok(body) = open_delivery(&self.geometry, &self.own.sealing, payload) else {
            // Not sealed to this mailbox: a dummy or garbage.
            return;
        };
        match body {
            Body::Loop(id) => {
                self.loops.returned(&id, now);
            }
            Body::Ack(id) => {
                if let Some(event) = self.outbox.acknowledged(id, now) {
                    self.outbox_changed = true;
                    self.events.push_back(EndpointEvent::Status(event));
                }
            }
            Body::Fragment { fragment, surb_ack } => {
                let message_id = fragment.message_id.0;
                let index = fragment.index;
                let received = self.inbox.receive(fragment, now);
                match &received {
                    Received::Rejected(_) => return,
                    Received::Partial if acknowledge => {
                        self.events.push_back(EndpointEvent::KeepFragment {
                            message_id,
                            index,
                            payload: payload.to_vec(),
                        })
                    }
                    _ => {}
                }
                // Each block is used once: a second copy of the fragment
                // (a mailbox entry delivered again) gets no second ack,
                // which would repeat the block's Sphinx header on the wire.
                let answer = acknowledge && self.acks.len() < MAX_PENDING_ACKS;
                if answer && !self.inbox.first_answer(surb_ack.ack_id, now) {
                    self.stats.acks_withheld += 1;
                } else if answer {
                    self.inbox_changed = true;
                    self.acks.push_back(match forward_to {
                        Some(to) => OwedAck::Forward(to.clone(), surb_ack.ack_id),
                        None => OwedAck::Surb(surb_ack),
                    });
                }
                if let Received::Complete(bytes) = received {
                    self.inbox_changed = true;
                    self.events.push_back(EndpointEvent::Message(bytes));
                    self.events
                        .push_back(EndpointEvent::ForgetFragments { message_id });
                }
            }
        }
    }
}
