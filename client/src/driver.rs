//! The client's tokio driver: one task that owns the profile and drives
//! `aegis_proto`'s client [`Endpoint`] with the clock, the gateway session
//! and the consensus, seals and opens messages ([`conversation`]) and keeps
//! what must survive a restart in the encrypted store.
//!
//! Every protocol decision — which slot carries what, when to pull, what to
//! acknowledge, when to retransmit — is the endpoint's; this module only
//! moves bytes and records.

use std::sync::Arc;
use std::time::{Duration, Instant};

use aegis_directory::{Fetcher, Schedule};
use aegis_link::{GatewaySession, Host};
use aegis_mix_packet::Geometry;
use aegis_mix_packet::constants::ID_LEN;
use aegis_proto::{
    Backoff, ContactId, Endpoint, EndpointConfig, EndpointEvent, Inbox, InboxConfig, LocalId,
    Outbox, Own, Topology,
};
use rand::SeedableRng as _;
use rand::rngs::StdRng;
use tokio::sync::{mpsc, watch};
use tracing::{debug, info, warn};

use crate::api::{ClientConfig, ClientError, Command, Event, NetworkStats};
use crate::call::Calls;
use crate::conversation;
use crate::emission;
use crate::envelope::{ANONYMOUS, ANONYMOUS_REPLY, Content, ContentKind};
use crate::profile::{ContactState, MAX_REQUEST_MESSAGES, Profile};
use crate::store::Namespace;
use crate::store::writer::Writer;

/// Outbox record key.
const OUTBOX_KEY: &[u8] = b"outbox";
/// Where a saved outbox this client could not read is kept.
const UNREADABLE_OUTBOX_KEY: &[u8] = b"outbox.unreadable";
/// Inbox record key (ids of delivered messages, so that late copies are
/// recognised after a restart too).
const INBOX_KEY: &[u8] = b"inbox";
/// Prefix of kept fragments of incomplete messages.
const FRAGMENT_PREFIX: &[u8] = b"fragment/";
/// How often the driver checks whether the prekeys are due to rotate.
const CARD_CHECK: Duration = Duration::from_secs(3_600);
/// How often the driver looks for the next epoch's consensus.
const CONSENSUS_CHECK: Duration = Duration::from_millis(500);

pub(crate) use aegis_directory::api::unix_now_ms as unix_ms;

mod anonymous;
mod calls;
mod drain;

/// The epoch clock a document implies (its epoch starts at
/// `valid_after_ms`); a document whose numbers cannot hold one keeps the
/// clock at its own epoch's start.
fn schedule_of(topology: &Topology) -> Schedule {
    topology.document.body.schedule().unwrap_or(Schedule {
        genesis_ms: topology.document.body.valid_after_ms,
        epoch_length_ms: topology.parameters.epoch_length_ms.max(1),
    })
}

pub(crate) struct Driver {
    profile: Profile,
    config: ClientConfig,
    geometry: Geometry,
    fetcher: Fetcher,
    schedule: Schedule,
    host: Host,
    session: Option<GatewaySession>,
    endpoint: Endpoint<ContactId>,
    events: mpsc::Sender<Event>,
    /// Events the application was too slow to take, since the last
    /// [`Event::Lagged`] told it.
    missed_events: u64,
    /// Messages dropped from blocked contacts.
    blocked_dropped: u64,
    /// Slots whose frame was taken later than the release hold.
    release_overruns: u64,
    /// Writes the outbox and inbox snapshots off the emission path.
    writer: Option<Writer>,
    /// Store writes that failed, as last reported.
    writes_failed: u64,
    /// Calls: the one going on, and those that ended lately.
    calls: Calls<ContactId>,
    /// The gateway the mailbox moved away from, while it is drained.
    draining: Option<drain::Drain>,
    origin: Instant,
    rng: StdRng,
}

impl Driver {
    pub(crate) fn new(
        profile: Profile,
        config: ClientConfig,
        fetcher: Fetcher,
        topology: Topology,
        host: Host,
        events: mpsc::Sender<Event>,
    ) -> Result<Driver, ClientError> {
        let mut rng = StdRng::from_rng(&mut rand::rng());
        let profile_store = profile.store_handle();
        let geometry = crate::directory::geometry_of(&topology.document)?;
        let outbox = match profile.store().get(Namespace::Outbox, OUTBOX_KEY)? {
            Some(bytes) => {
                match Outbox::from_bytes(&bytes, config.outbox.clone(), &geometry, Duration::ZERO) {
                    Ok(outbox) => outbox,
                    Err(error) => {
                        // Not lost: kept aside, where the next save does
                        // not overwrite it (a network that moved to a
                        // geometry with smaller fragments, say).
                        warn!(%error, "saved outbox unreadable; kept aside, starting empty");
                        profile
                            .store()
                            .put(Namespace::Outbox, UNREADABLE_OUTBOX_KEY, &bytes)?;
                        Outbox::new(config.outbox.clone())
                    }
                }
            }
            None => Outbox::new(config.outbox.clone()),
        };
        let inbox = match profile.store().get(Namespace::Meta, INBOX_KEY)? {
            Some(bytes) => Inbox::from_bytes(&bytes, InboxConfig::default(), Duration::ZERO)
                .unwrap_or_else(|_| Inbox::new(InboxConfig::default())),
            None => Inbox::new(InboxConfig::default()),
        };
        let own = Own {
            gateway: profile.gateway,
            mailbox: profile.mailbox(),
            sealing: profile.mailbox_sealing.clone(),
        };
        let schedule = schedule_of(&topology);
        let endpoint_config = EndpointConfig {
            pull_interval: config.pull_interval,
            shaping: config.shaping.clone(),
            prepare_ahead: true,
        };
        let mut endpoint = Endpoint::new(
            &mut rng,
            endpoint_config,
            geometry.clone(),
            own,
            Arc::new(topology),
            outbox,
            inbox,
            Duration::ZERO,
        );
        for (contact, address) in conversation::addresses(&profile) {
            endpoint.set_address(contact, address);
        }
        Ok(Driver {
            profile,
            config,
            geometry,
            fetcher,
            schedule,
            host,
            session: None,
            endpoint,
            events,
            missed_events: 0,
            blocked_dropped: 0,
            release_overruns: 0,
            writer: Some(Writer::start(profile_store)),
            writes_failed: 0,
            calls: Calls::default(),
            draining: None,
            origin: Instant::now(),
            rng,
        })
    }

    fn now(&self) -> Duration {
        self.origin.elapsed()
    }

    pub(crate) async fn connect(&mut self) -> Result<(), ClientError> {
        let gateway = self.profile.gateway;
        let epoch = self.endpoint.topology().epoch;
        if self.endpoint.topology().node(&gateway).is_none() {
            return Err(ClientError::Gateway(
                "your gateway is not in the consensus (it may have left the network); \
                     move to another with `aegis move-gateway`"
                    .into(),
            ));
        }
        let address = self.config.gateway_address.clone();
        let session = self.attach_to(gateway, address).await?;
        self.session = Some(session);
        self.notify(Event::Connected { epoch });
        Ok(())
    }

    pub(crate) async fn run(
        mut self,
        mut commands: mpsc::Receiver<Command>,
        mut shutdown: watch::Receiver<bool>,
    ) -> Profile {
        self.refeed();
        self.keep_card_current();
        self.draining = self.drain_to_start();
        let mut next_card_check = self.now() + CARD_CHECK;
        let mut next_consensus_check = self.now();
        let mut reconnect = Backoff::new(Duration::from_millis(200), Duration::from_secs(5));
        let mut next_reconnect = self.now();
        loop {
            let now = self.now();
            let wake = self.endpoint.poll_timeout().min(next_consensus_check);
            tokio::select! {
                _ = shutdown.changed() => break,
                command = commands.recv() => match command {
                    None => break,
                    Some(Command::Send { contact, content, reply }) => {
                        let _ = reply.send(self.queue(contact, content));
                    }
                    Some(Command::Stats(reply)) => { let _ = reply.send(self.network_stats()); }
                    Some(Command::SendAnonymous { contact, content, reply }) => {
                        let _ = reply.send(self.send_anonymous(contact, content));
                    }
                    Some(Command::Reply { seq, content, reply }) => {
                        let _ = reply.send(self.reply_anonymous(seq, content));
                    }
                    Some(Command::Call(action, reply)) => {
                        let _ = reply.send(self.call_action(action));
                    }
                    Some(Command::Progress(id, reply)) => {
                        let _ = reply.send(self.endpoint.outbox().progress(id, self.now()));
                    }
                    Some(Command::Profile(job)) => {
                        job(&self.profile);
                        // A contact added or accepted: their address.
                        for (contact, address) in conversation::addresses(&self.profile) {
                            self.endpoint.set_address(contact, address);
                        }
                    }
                },
                _ = tokio::time::sleep(wake.saturating_sub(now)) => {}
            }
            let (now, slot) = (self.now(), Instant::now());
            // Frames built ahead leave at their slots, released a fixed
            // hold after the slot whatever they are; the next ones are
            // built once these are on their way.
            self.endpoint.handle_timeout(&mut self.rng, now);
            self.transmit(slot).await;
            self.endpoint.prepare(&mut self.rng, now);
            if let Some(ack) = self.endpoint.poll_pull(now) {
                if self.session.is_none() && now >= next_reconnect {
                    match self.connect().await {
                        Ok(()) => reconnect.reset(),
                        Err(error) => {
                            debug!(%error, "gateway unreachable");
                            next_reconnect = now + reconnect.next_delay();
                        }
                    }
                }
                self.pull(ack).await;
                self.drain().await;
                // Snapshots are written on the pull grid, which the
                // published rates alone set: when the disk is busy does
                // not follow which packets left.
                self.handle_events();
                self.save();
            }
            self.handle_events();
            self.call_timeouts();
            if now >= next_consensus_check {
                next_consensus_check = now + CONSENSUS_CHECK;
                self.refresh_topology().await;
            }
            if now >= next_card_check {
                next_card_check = now + CARD_CHECK;
                self.keep_card_current();
            }
        }
        self.save();
        if let Some(writer) = self.writer.take() {
            let failed = writer.finish();
            if failed > self.writes_failed {
                warn!(failed, "store writes failed");
            }
        }
        self.profile
    }

    fn network_stats(&self) -> NetworkStats {
        let stats = self.endpoint.stats();
        NetworkStats {
            real_sent: stats.real_sent,
            loops_sent: stats.loops_sent,
            drops_sent: stats.drops_sent,
            loops_returned: stats.loops.returned,
            loop_rtt_p50_ms: stats.loops.rtt_p50.map(|d| d.as_secs_f64() * 1_000.0),
            skipped: stats.skipped,
            blocked_dropped: self.blocked_dropped,
            events_missed: self.missed_events,
            acks_withheld: stats.acks_withheld,
            release_overruns: self.release_overruns,
        }
    }

    fn queue(&mut self, contact: ContactId, content: Content) -> Result<LocalId, ClientError> {
        let (kind, body) = (content.kind, content.body.clone());
        let sealed = conversation::seal(
            &mut self.rng,
            &self.profile,
            &contact,
            content,
            &self.geometry,
        )
        .map_err(|e| ClientError::Queue(e.to_string()))?;
        let now = self.now();
        let local = self
            .endpoint
            .queue(&mut self.rng, contact, sealed.address, sealed.envelope, now)
            .map_err(|e| ClientError::Queue(e.to_string()))?;
        let recorded = match (kind, sealed.card_version) {
            (ContentKind::CardUpdate, Some(version)) => {
                self.profile.note_card_update(contact, local, version)
            }
            // Call signals are not history: the call's events are.
            (ContentKind::CardUpdate, None) | (ContentKind::Signal, _) => Ok(()),
            (kind, card_version) => self
                .profile
                .store_sent(contact, kind, unix_ms(), body, local, card_version)
                .map(drop),
        };
        if let Err(error) = recorded {
            warn!(%error, "recording a sent message failed");
        }
        self.save();
        Ok(local)
    }

    /// Rotates the prekeys when due and sends our card to every contact
    /// whose copy is older than the current one (after a rotation or a
    /// gateway move), as a card update inside the ratchet.
    fn keep_card_current(&mut self) {
        match self
            .profile
            .rotate_prekeys(&mut self.rng, unix_ms(), self.config.prekeys)
        {
            Ok(true) => info!("prekeys rotated; contacts get the new card"),
            Ok(false) => {}
            Err(error) => warn!(%error, "rotating the prekeys failed"),
        }
        let due = match self.profile.card_updates_due() {
            Ok(due) => due,
            Err(error) => {
                warn!(%error, "reading contacts failed");
                return;
            }
        };
        for contact in due {
            let update = Content {
                kind: ContentKind::CardUpdate,
                card: None,
                body: Vec::new(),
            };
            if let Err(error) = self.queue(contact, update) {
                debug!(%error, "a card update could not be queued");
            }
        }
    }

    /// Hands an event to the application without ever waiting for it: an
    /// application that stops reading must not stop the cover traffic.
    /// Events that do not fit are counted, and an [`Event::Lagged`] says
    /// how many once there is room (messages are in the history, statuses
    /// in [`crate::Client::history`]).
    fn notify(&mut self, event: Event) {
        use mpsc::error::TrySendError;
        if self.missed_events > 0 {
            match self.events.try_send(Event::Lagged {
                missed: self.missed_events,
            }) {
                Ok(()) => self.missed_events = 0,
                Err(TrySendError::Full(_)) => {
                    self.missed_events += 1;
                    return;
                }
                Err(TrySendError::Closed(_)) => return,
            }
        }
        if let Err(TrySendError::Full(_)) = self.events.try_send(event) {
            self.missed_events += 1;
        }
    }

    /// Sends the frames the endpoint produced at the slot that began at
    /// `slot`, the first no sooner than [`emission::RELEASE_HOLD`] after
    /// it; without a session they are lost like packets on a broken link
    /// (retransmission covers fragments).
    async fn transmit(&mut self, slot: Instant) {
        let mut released = false;
        while let Some(frame) = self.endpoint.poll_transmit() {
            if !released {
                released = true;
                if !emission::release_at(slot, emission::RELEASE_HOLD) {
                    self.release_overruns += 1;
                }
            }
            if let Some(session) = self.session.as_mut()
                && session.send(frame).await.is_err()
            {
                info!("gateway session lost; reconnecting");
                self.session = None;
            }
        }
    }

    /// One pull: acknowledges what the previous one brought and takes in
    /// the next batch.
    async fn pull(&mut self, ack: Vec<[u8; 8]>) {
        let Some(session) = self.session.as_mut() else {
            self.endpoint.pull_failed(ack);
            return;
        };
        match session.pull(&ack).await {
            Ok(entries) => {
                let entries = entries.into_iter().map(|e| (e.id, e.payload)).collect();
                let now = self.now();
                self.endpoint.handle_pulled(&mut self.rng, entries, now);
            }
            Err(_) => {
                info!("gateway session lost; reconnecting");
                self.session = None;
                self.endpoint.pull_failed(ack);
            }
        }
    }

    fn handle_events(&mut self) {
        while let Some(event) = self.endpoint.poll_event() {
            match event {
                EndpointEvent::Status(status) => {
                    if let Err(error) = self.profile.note_status(status.local_id, status.status) {
                        warn!(%error, "recording a status in the history failed");
                    }
                    self.notify(Event::Status {
                        local_id: status.local_id,
                        contact: status.recipient,
                        status: status.status,
                    });
                }
                EndpointEvent::Message(bytes) => self.deliver(&bytes),
                EndpointEvent::KeepFragment {
                    message_id,
                    index,
                    payload,
                } => self.keep_fragment(&message_id, index, &payload),
                EndpointEvent::ForgetFragments { message_id } => self.forget_fragments(&message_id),
            }
        }
    }

    /// Opens a complete message, stores it and tells the application. A
    /// blocked sender's message is dropped; a contact request's is kept up
    /// to [`MAX_REQUEST_MESSAGES`].
    fn deliver(&mut self, bytes: &[u8]) {
        match bytes.split_first() {
            Some((&ANONYMOUS, rest)) => return self.deliver_anonymous(rest),
            Some((&ANONYMOUS_REPLY, rest)) => return self.deliver_reply(rest),
            _ => {}
        }
        let Some(opened) = conversation::open(&mut self.rng, &self.profile, bytes) else {
            return;
        };
        match opened.state {
            ContactState::Blocked => {
                self.blocked_dropped += 1;
                return;
            }
            ContactState::Request
                if self
                    .profile
                    .received_from(&opened.from)
                    .is_ok_and(|n| n >= MAX_REQUEST_MESSAGES) =>
            {
                debug!("message from a contact request dropped: its share is full");
                let _ = self.profile.count_request_dropped();
                return;
            }
            ContactState::Request | ContactState::Contact => {}
        }
        if opened.card_changed
            && let Some((_, address)) = conversation::addresses(&self.profile)
                .into_iter()
                .find(|(id, _)| *id == opened.from)
        {
            // Their new gateway: retransmissions go there from now on.
            self.endpoint.set_address(opened.from, address);
        }
        match opened.content.kind {
            ContentKind::CardUpdate => return,
            ContentKind::Signal => {
                return self.handle_call_signal(opened.from, opened.state, &opened.content.body);
            }
            ContentKind::Message | ContentKind::File => {}
        }
        if opened.new_contact {
            self.notify(Event::ContactRequest {
                id: opened.from,
                name: opened.name.clone(),
            });
        }
        let content = opened.content;
        match self
            .profile
            .store_message(opened.from, content.kind, unix_ms(), content.body)
        {
            Ok(stored) => self.notify(Event::Message {
                from: opened.from,
                name: opened.name,
                request: opened.state == ContactState::Request,
                seq: stored.seq,
                body: stored.body,
                file: stored.file,
                thread: None,
            }),
            Err(error) => warn!(%error, "storing a message failed"),
        }
    }

    /// Hands the outbox and inbox snapshots that changed to the writer
    /// thread: the loop never waits for the disk. Called on the pull grid,
    /// after queueing a message and at shutdown, not after each packet,
    /// so the disk's activity does not follow the packets' kinds. A crash
    /// loses at most one pull interval of sending records: those fragments
    /// are sent again, and the recipient drops the copies.
    fn save(&mut self) {
        let now = self.now();
        let Some(writer) = self.writer.as_ref() else {
            return;
        };
        if self.endpoint.take_outbox_changed() {
            match self.endpoint.outbox().to_bytes(now) {
                Ok(bytes) => writer.put(Namespace::Outbox, OUTBOX_KEY, bytes),
                Err(error) => warn!(%error, "encoding the outbox failed"),
            }
        }
        if self.endpoint.take_inbox_changed() {
            writer.put(
                Namespace::Meta,
                INBOX_KEY,
                self.endpoint.inbox().to_bytes(now),
            );
        }
        let failed = writer.failures();
        if failed > self.writes_failed {
            self.writes_failed = failed;
            warn!(failed, "saving the outbox or inbox failed");
        }
    }

    async fn refresh_topology(&mut self) {
        let epoch = self.schedule.epoch_at(unix_ms());
        if self.endpoint.topology().epoch >= epoch {
            return;
        }
        match self.fetcher.fetch(Some(epoch), unix_ms()).await {
            Ok(document) => {
                self.follow_authorities(&document);
                let topology = match Topology::for_geometry(document, &self.geometry) {
                    Ok(topology) => topology,
                    Err(error) => {
                        warn!(%error, epoch, "consensus refused");
                        return;
                    }
                };
                self.schedule = schedule_of(&topology);
                let now = self.now();
                self.endpoint.set_topology(Arc::new(topology), now);
                debug!(epoch, "consensus refreshed");
            }
            Err(error) => debug!(%error, epoch, "consensus not available yet"),
        }
    }

    /// Pins the authority list a verified document names, if it changed.
    fn follow_authorities(&mut self, document: &aegis_directory::SignedConsensus) {
        let Some(authorities) =
            crate::directory::authorities_after(&self.profile.authorities, document)
        else {
            return;
        };
        let fetcher = match crate::directory::fetcher_via(&authorities, self.config.proxy.as_ref())
        {
            Ok(fetcher) => fetcher,
            Err(error) => {
                warn!(%error, "the consensus names authorities that cannot be asked");
                return;
            }
        };
        let count = authorities.len();
        match self.profile.set_authorities(authorities) {
            Ok(()) => {
                self.fetcher = fetcher;
                info!(count, "authority list updated from the consensus");
            }
            Err(error) => warn!(%error, "saving the authority list failed"),
        }
    }

    fn keep_fragment(&self, message_id: &[u8; ID_LEN], index: u16, payload: &[u8]) {
        let mut key = FRAGMENT_PREFIX.to_vec();
        key.extend_from_slice(message_id);
        key.extend_from_slice(&index.to_be_bytes());
        if let Err(error) = self.profile.store().put(Namespace::Meta, &key, payload) {
            warn!(%error, "keeping a fragment failed");
        }
    }

    fn forget_fragments(&self, message_id: &[u8; ID_LEN]) {
        let mut prefix = FRAGMENT_PREFIX.to_vec();
        prefix.extend_from_slice(message_id);
        if let Ok(records) = self.profile.store().list(Namespace::Meta) {
            for (key, _) in records.iter().filter(|(k, _)| k.starts_with(&prefix)) {
                let _ = self.profile.store().delete(Namespace::Meta, key);
            }
        }
    }

    /// After a restart: the fragments of incomplete messages kept before
    /// acknowledging them go through the inbox again.
    fn refeed(&mut self) {
        let Ok(records) = self.profile.store().list(Namespace::Meta) else {
            return;
        };
        let now = self.now();
        for (key, payload) in records {
            if key.starts_with(FRAGMENT_PREFIX) {
                self.endpoint.refeed(&payload, now);
            }
        }
        self.handle_events();
    }
}
