//! The clients: writing messages, their shapers' slots, going on- and
//! offline, and fetching from their mailboxes.

use super::*;

impl Sim<'_> {
    /// A uniformly chosen client writes to one of its contacts (the merged
    /// Poisson process of all clients' writes).
    pub(super) fn write(&mut self, now: Duration) {
        let clients = self.s.clients.count;
        let sender = self.rng.random_range(0..clients);
        // People write while their client is online.
        let online = self.online.is_online(sender);
        if online && let Some(recipient) = self.graph.pick(&mut self.rng, sender) {
            self.send_message(now, sender, recipient);
        }
        if let Some(gap) = self.write_gap {
            let next = now + secs(gap.sample(&mut self.rng));
            self.queue.schedule(next, Event::Write);
        }
    }

    /// Starts the flow-correlation experiment's conversations, if any.
    pub(super) fn start_conversations(&mut self) {
        let f = &self.s.flow;
        let Some(gap) = Some(f.rate)
            .filter(|_| f.enabled())
            .and_then(|r| Exp::new(r).ok())
        else {
            return;
        };
        for pair in 0..f.pairs {
            let at = secs(gap.sample(&mut self.rng));
            self.queue.schedule_far(at, Event::Converse(pair as u32));
        }
        self.flow = Some((FlowAttack::new(self.s.clients.count, f.pairs), gap));
    }

    /// Conversation `pair`'s sender writes to its partner (while online).
    pub(super) fn converse(&mut self, now: Duration, pair: usize) {
        let Some((flow, gap)) = &self.flow else {
            return;
        };
        let (sender, recipient) = flow.pair(pair);
        let next = now + secs(gap.sample(&mut self.rng));
        self.queue.schedule_far(next, Event::Converse(pair as u32));
        if self.online.is_online(sender) {
            self.send_message(now, sender, recipient as u32);
        }
    }

    /// `sender` writes one message to `recipient`; its shaper queues it, or
    /// without a shaper it leaves at once.
    fn send_message(&mut self, now: Duration, sender: usize, recipient: u32) {
        let id = self.written;
        self.written += 1;
        self.bw.messages_written += 1;
        let target = self.s.adversary.targets > 0
            && now >= self.warmup
            && self.targets_taken < self.s.adversary.targets
            && id.is_multiple_of(self.target_stride);
        if target {
            self.targets_taken += 1;
        }
        if let Some(r) = &mut self.relay_sda {
            r.observe_pair(now, sender, recipient as usize);
        }
        let message = Message {
            id,
            recipient,
            written: now,
            target,
            ack: 0,
        };
        if self.queue_message(now, sender, message) {
            return;
        }
        match &mut self.shapers[sender] {
            Some(shaper) => {
                if shaper.enqueue(message).is_err() {
                    self.bw.messages_queue_dropped += 1;
                }
            }
            None => self.emit(now, sender, Kind::Real(message)),
        }
    }

    /// A client connects or disconnects. Back online, it fetches what
    /// waited in its mailbox and its shaper resumes (slots missed while
    /// offline are skipped, as the real client skips them).
    pub(super) fn toggle(&mut self, now: Duration, client: usize) {
        let Some((on, off)) = self.churn else {
            return;
        };
        let online = !self.online.is_online(client);
        self.online.set(client, online, now);
        let period = if online { on } else { off }.sample(&mut self.rng);
        self.queue
            .schedule_far(now + secs(period), Event::Toggle(client as u32));
        if !online {
            return;
        }
        if self.pull.is_some() {
            self.resume_pulls(now, client);
        } else {
            for boxed in std::mem::take(&mut self.mailbox[client]) {
                self.fetched(now, client, boxed);
            }
        }
        if !self.due_pending[client] && self.shapers[client].is_some() {
            self.due_pending[client] = true;
            self.queue
                .schedule_far(now, Event::ClientDue(client as u32));
        }
    }

    /// A client fetched a packet from its mailbox.
    pub(super) fn fetched(&mut self, now: Duration, client: usize, boxed: Boxed) {
        match boxed {
            Boxed::Real(message) => {
                if self.receive(client, &message) {
                    self.hist.record((now - message.written).as_secs_f64());
                }
            }
            Boxed::Loop => {}
            Boxed::Ack(ack) => self.acknowledged(now, client, ack),
        }
        if let Some(sda) = &mut self.sda {
            sda.observe_delivery(now, client);
        }
    }

    pub(super) fn client_due(&mut self, now: Duration, client: usize) {
        self.due_pending[client] = false;
        if !self.online.is_online(client) {
            return; // resumes when the client is back
        }
        let Some(shaper) = self.shapers[client].as_mut() else {
            return;
        };
        let emissions = shaper.poll(now, &mut self.rng);
        let next = shaper.next_deadline();
        for e in emissions {
            let kind = match e.slot {
                Slot::Real(m) => Kind::Real(m),
                Slot::Loop if e.stream == Stream::Payload => {
                    self.fill_slot(e.at, client).unwrap_or(Kind::Loop)
                }
                Slot::Loop => Kind::Loop,
                Slot::Drop => Kind::Drop,
            };
            self.emit(e.at, client, kind);
        }
        if let Some(due) = next {
            self.due_pending[client] = true;
            self.queue
                .schedule_far(due, Event::ClientDue(client as u32));
        }
    }

    /// A client puts a packet on its link to its gateway.
    pub(super) fn emit(&mut self, at: Duration, sender: usize, kind: Kind) {
        let entry = self.topo.gateway_of(sender);
        let exit = match kind {
            Kind::Real(m) => self.topo.gateway_of(m.recipient as usize),
            Kind::Ack { to, .. } => self.topo.gateway_of(to as usize),
            Kind::Loop | Kind::NodeLoop { .. } => entry,
            Kind::Drop => self.rng.random_range(0..self.topo.gateways()),
        };
        match kind {
            Kind::Real(_) => self.bw.real_sent += 1,
            Kind::Loop => self.bw.loop_sent += 1,
            Kind::Drop => self.bw.drop_sent += 1,
            Kind::Ack { .. } => self.bw.ack_sent += 1,
            Kind::NodeLoop { .. } => {}
        }
        let route = self.topo.route(&mut self.rng, entry, exit);
        let delays = self.hop_delays(self.topo.route_len());
        let packet = Packet {
            kind,
            sender: sender as u32,
            route,
            delays,
            hop: 0,
            hops: self.topo.route_len() as u8,
            view: match self.tracking {
                None => View::Untracked,
                Some(Tracking::Dense) => View::Dense(SenderDist::Point(sender as u32)),
                Some(Tracking::Lineage) => View::Lineage(Source::Client(sender as u32)),
            },
            mixes_all_corrupt: true,
        };
        let id = self.store(packet);
        if let Some((flow, _)) = &mut self.flow {
            flow.observe_send(sender, at.as_secs_f64());
        }
        if let Some(sda) = &mut self.sda {
            sda.observe_send(at, sender);
        }
        if self.link_drops(id) {
            return;
        }
        let arrive = at + self.link_delay();
        self.queue.schedule(
            arrive,
            Event::Arrive {
                node: entry as u32,
                packet: id,
            },
        );
    }
}
