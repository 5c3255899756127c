//! The networked client: one tokio task that owns the profile and drives
//! the sans-IO cores — the traffic shaper, the outbox and the inbox — with
//! the clock, the gateway session and the consensus.
//!
//! Every packet leaves on the shaper's schedule: a real slot carries a
//! pending acknowledgement, a (re)transmitted fragment, or else loop cover;
//! loop and drop slots carry cover. Pulls happen on a fixed grid whose
//! interval follows from the published rates (see `Engine::pull_interval`).

use std::collections::{HashMap, VecDeque};
use std::sync::Arc;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use aegis_directory::{Fetcher, Schedule, Verifier};
use aegis_mix_packet::{
    Body, Geometry, HopDelays, LoopId, MailboxId, NodeId, OutgoingPacket, SphinxPublicKey, SurbAck,
    build_ack, build_drop_cover, build_mailbox_packet, open_delivery,
};
use aegis_node::Topology;
use aegis_node::access::{ACCESS_PROTOCOL, GatewaySession, PULL_BATCH};
use aegis_node::links::Host;
use ed25519_dalek::SigningKey;
use rand::{Rng as _, SeedableRng as _};
use tokio::sync::{mpsc, oneshot, watch};
use tracing::{debug, info, warn};

use crate::card::ContactCard;
use crate::delivery::{
    ContactId, Inbox, InboxConfig, LocalId, MessageStatus, Outbox, OutboxConfig, Received,
    Transmission, ack_timeout,
};
use crate::edge::pqxdh::{initiate, respond};
use crate::edge::ratchet::Session;
use crate::envelope::{Content, Envelope, MAX_SIGNAL_LEN};
use crate::profile::{ContactRecord, Profile, ProfileError, TrustedAuthority, contact_id_of};
use crate::shaping::{ShapingConfig, Slot, TrafficShaper};
use crate::store::Namespace;

/// Pending acknowledgements kept at most (each waits for a real slot).
const MAX_PENDING_ACKS: usize = 4_096;
/// Shortest time between pulls (gateways refuse more than 20 a second).
const MIN_PULL_INTERVAL_MS: u64 = 60;
/// Outbox record key.
const OUTBOX_KEY: &[u8] = b"outbox";
/// Inbox record key (ids of delivered messages, so that late copies are
/// recognised after a restart too).
const INBOX_KEY: &[u8] = b"inbox";
/// Prefix of kept fragments of incomplete messages.
const FRAGMENT_PREFIX: &[u8] = b"fragment/";

/// How the client runs.
#[derive(Debug, Clone)]
pub struct ClientConfig {
    /// Time between mailbox pulls.
    pub pull_interval: Duration,
    /// The sending schedule; `None` follows the consensus's λ rates.
    pub shaping: Option<ShapingConfig>,
    /// Outbox bounds and retries.
    pub outbox: OutboxConfig,
    /// Reach the gateway at this address instead of the ones the consensus
    /// publishes (a tunnel or port forward); the link still authenticates
    /// the gateway's identity.
    pub gateway_address: Option<aegis_node::libp2p::Multiaddr>,
}

impl Default for ClientConfig {
    fn default() -> Self {
        ClientConfig {
            pull_interval: Duration::from_secs(1),
            shaping: None,
            outbox: OutboxConfig::default(),
            gateway_address: None,
        }
    }
}

/// Why the client could not do something.
#[derive(Debug, thiserror::Error)]
pub enum ClientError {
    /// The profile failed.
    #[error(transparent)]
    Profile(#[from] ProfileError),
    /// The store failed.
    #[error(transparent)]
    Store(#[from] crate::store::StoreError),
    /// No verified consensus could be fetched.
    #[error("directory: {0}")]
    Directory(String),
    /// The gateway could not be reached or refused the session.
    #[error("gateway: {0}")]
    Gateway(String),
    /// The message cannot be queued.
    #[error("cannot queue the message: {0}")]
    Queue(String),
    /// The client has stopped.
    #[error("the client has stopped")]
    Stopped,
}

/// Network figures from the client's own traffic.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct NetworkStats {
    /// Real packets sent (fragments and acknowledgements).
    pub real_sent: u64,
    /// Loop cover sent.
    pub loops_sent: u64,
    /// Drop cover sent.
    pub drops_sent: u64,
    /// Loop cover that came back.
    pub loops_returned: u64,
    /// Median round trip of returned loops, in milliseconds.
    pub loop_rtt_p50_ms: Option<f64>,
    /// Slots skipped (no consensus or no gateway at the time).
    pub skipped: u64,
}

/// Something the application should know.
#[derive(Debug, Clone, PartialEq)]
pub enum Event {
    /// Attached to the gateway with a verified consensus.
    Connected {
        /// The consensus epoch.
        epoch: u64,
    },
    /// A message (or signalling message) arrived, exactly once.
    Message {
        /// From whom.
        from: ContactId,
        /// The contact's name.
        name: String,
        /// A signalling message (call set-up) rather than a message.
        signal: bool,
        /// The content.
        body: Vec<u8>,
    },
    /// A queued message changed status.
    Status {
        /// The message.
        local_id: LocalId,
        /// To whom.
        contact: ContactId,
        /// Its new status.
        status: MessageStatus,
    },
    /// Someone who was not a contact wrote; they are a contact now.
    NewContact {
        /// Their id.
        id: ContactId,
        /// The name given to them (a fingerprint until renamed).
        name: String,
    },
}

enum Command {
    Send {
        contact: ContactId,
        content: Content,
        reply: oneshot::Sender<Result<LocalId, ClientError>>,
    },
    Stats(oneshot::Sender<NetworkStats>),
}

/// A running client.
pub struct Client {
    commands: mpsc::Sender<Command>,
    shutdown: watch::Sender<bool>,
    task: tokio::task::JoinHandle<Profile>,
}

fn unix_ms() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_millis() as u64)
        .unwrap_or(0)
}

/// A fetcher for pinned authorities.
pub fn fetcher_for(authorities: &[TrustedAuthority]) -> Result<Fetcher, ClientError> {
    let verifier = Verifier::new(authorities.iter().map(|a| a.key));
    let urls = authorities.iter().map(|a| a.url.clone()).collect();
    Fetcher::new(urls, verifier, Duration::from_secs(5))
        .map_err(|e| ClientError::Directory(e.to_string()))
}

/// Fetches and verifies the current consensus.
pub async fn current_topology(fetcher: &Fetcher) -> Result<Topology, ClientError> {
    fetcher
        .fetch(None, unix_ms())
        .await
        .map(Topology::new)
        .map_err(|e| ClientError::Directory(e.to_string()))
}

impl Client {
    /// Starts the client: fetches the consensus, attaches to the gateway,
    /// and runs until [`Client::shutdown`]. Events arrive on the receiver.
    pub async fn start(
        profile: Profile,
        config: ClientConfig,
    ) -> Result<(Client, mpsc::Receiver<Event>), ClientError> {
        let fetcher = fetcher_for(&profile.authorities)?;
        let topology = current_topology(&fetcher).await?;
        let (shutdown, shutdown_rx) = watch::channel(false);
        // A fresh link identity per run: the gateway cannot link sessions
        // by it, and it is not the user's identity.
        let mut seed = [0u8; 32];
        rand::rng().fill_bytes(&mut seed);
        let (host, _swarm) = Host::start(&SigningKey::from_bytes(&seed), None, shutdown_rx.clone())
            .map_err(|e| ClientError::Gateway(e.to_string()))?;
        let (events_tx, events) = mpsc::channel(1_024);
        let (commands, commands_rx) = mpsc::channel(64);
        let mut engine = Engine::new(profile, config, fetcher, topology, host, events_tx)?;
        engine.connect().await?;
        let task = tokio::spawn(engine.run(commands_rx, shutdown_rx));
        Ok((
            Client {
                commands,
                shutdown,
                task,
            },
            events,
        ))
    }

    async fn send_content(
        &self,
        contact: ContactId,
        content: Content,
    ) -> Result<LocalId, ClientError> {
        let (reply, answer) = oneshot::channel();
        self.commands
            .send(Command::Send {
                contact,
                content,
                reply,
            })
            .await
            .map_err(|_| ClientError::Stopped)?;
        answer.await.map_err(|_| ClientError::Stopped)?
    }

    /// Queues a message; its status arrives as [`Event::Status`].
    pub async fn send(&self, contact: ContactId, body: Vec<u8>) -> Result<LocalId, ClientError> {
        self.send_content(
            contact,
            Content {
                signal: false,
                card: None,
                body,
            },
        )
        .await
    }

    /// Queues a small signalling message (call set-up data such as SDP or
    /// ICE candidates, at most 8 KiB), sealed end to end like any message.
    pub async fn send_signal(
        &self,
        contact: ContactId,
        body: Vec<u8>,
    ) -> Result<LocalId, ClientError> {
        if body.len() > MAX_SIGNAL_LEN {
            return Err(ClientError::Queue(format!(
                "a signalling message holds at most {MAX_SIGNAL_LEN} bytes"
            )));
        }
        self.send_content(
            contact,
            Content {
                signal: true,
                card: None,
                body,
            },
        )
        .await
    }

    /// The client's own traffic figures.
    pub async fn stats(&self) -> Result<NetworkStats, ClientError> {
        let (reply, answer) = oneshot::channel();
        self.commands
            .send(Command::Stats(reply))
            .await
            .map_err(|_| ClientError::Stopped)?;
        answer.await.map_err(|_| ClientError::Stopped)
    }

    /// Stops the client (the outbox is saved) and hands the profile back.
    pub async fn shutdown(self) -> Result<Profile, ClientError> {
        let _ = self.shutdown.send(true);
        self.task.await.map_err(|_| ClientError::Stopped)
    }
}

/// What waits for a real slot.
enum Pending {
    Ack(OutgoingPacket),
    Fragment(Transmission<ContactId>),
}

struct Engine {
    profile: Profile,
    config: ClientConfig,
    geometry: Geometry,
    fetcher: Fetcher,
    topology: Arc<Topology>,
    schedule: Schedule,
    host: Host,
    session: Option<GatewaySession>,
    /// Ids of the entries the last pull brought, acknowledged by the next.
    unacknowledged: Vec<[u8; 8]>,
    shaper: TrafficShaper<Pending>,
    outbox: Outbox<ContactId>,
    inbox: Inbox,
    acks: VecDeque<OutgoingPacket>,
    loops: HashMap<LoopId, Duration>,
    loop_rtts: VecDeque<f64>,
    stats: NetworkStats,
    events: mpsc::Sender<Event>,
    origin: Instant,
    mailbox: MailboxId,
    sealing_public: SphinxPublicKey,
    outbox_dirty: bool,
}

fn schedule_of(topology: &Topology) -> Schedule {
    let length = topology.parameters.epoch_length_ms.max(1);
    let start = topology.document.body.valid_after_ms;
    Schedule {
        genesis_ms: start.saturating_sub(topology.epoch.saturating_mul(length)),
        epoch_length_ms: length,
    }
}

fn shaping_of(topology: &Topology) -> ShapingConfig {
    ShapingConfig::Poisson {
        payload_rate: topology.parameters.lambda_p,
        loop_rate: topology.parameters.lambda_l,
        drop_rate: topology.parameters.lambda_d,
    }
}

impl Engine {
    fn new(
        profile: Profile,
        config: ClientConfig,
        fetcher: Fetcher,
        topology: Topology,
        host: Host,
        events: mpsc::Sender<Event>,
    ) -> Result<Engine, ClientError> {
        let origin = Instant::now();
        let shaping = config
            .shaping
            .clone()
            .unwrap_or_else(|| shaping_of(&topology));
        let shaper = TrafficShaper::new(&shaping, Duration::ZERO, 64, &mut rand::rng());
        let outbox = match profile.store().get(Namespace::Outbox, OUTBOX_KEY)? {
            Some(bytes) => Outbox::from_bytes(&bytes, config.outbox.clone(), Duration::ZERO)
                .unwrap_or_else(|_| Outbox::new(config.outbox.clone())),
            None => Outbox::new(config.outbox.clone()),
        };
        let inbox = match profile.store().get(Namespace::Meta, INBOX_KEY)? {
            Some(bytes) => Inbox::from_bytes(&bytes, InboxConfig::default(), Duration::ZERO)
                .unwrap_or_else(|_| Inbox::new(InboxConfig::default())),
            None => Inbox::new(InboxConfig::default()),
        };
        let mailbox = profile.mailbox();
        let sealing_public = SphinxPublicKey::from(&profile.mailbox_sealing);
        let schedule = schedule_of(&topology);
        Ok(Engine {
            profile,
            geometry: Geometry::STANDARD,
            fetcher,
            topology: Arc::new(topology),
            schedule,
            host,
            session: None,
            unacknowledged: Vec::new(),
            shaper,
            outbox,
            inbox,
            acks: VecDeque::new(),
            loops: HashMap::new(),
            loop_rtts: VecDeque::new(),
            stats: NetworkStats::default(),
            events,
            origin,
            mailbox,
            sealing_public,
            outbox_dirty: false,
            config,
        })
    }

    fn now(&self) -> Duration {
        self.origin.elapsed()
    }

    async fn connect(&mut self) -> Result<(), ClientError> {
        let gateway = self.profile.gateway;
        let entry = self
            .topology
            .node(&gateway)
            .ok_or_else(|| ClientError::Gateway("your gateway is not in the consensus".into()))?;
        let addresses = match &self.config.gateway_address {
            Some(address) => vec![address.clone()],
            None => entry.addresses.clone(),
        };
        self.host.add_addresses(entry.peer, addresses);
        let stream = self
            .host
            .open(entry.peer, ACCESS_PROTOCOL)
            .await
            .map_err(ClientError::Gateway)?;
        let session = GatewaySession::attach(
            stream,
            &gateway.0,
            &self.profile.mailbox_auth,
            self.geometry.frame_len(),
        )
        .await
        .map_err(|e| ClientError::Gateway(e.to_string()))?;
        self.session = Some(session);
        self.unacknowledged.clear();
        let _ = self
            .events
            .send(Event::Connected {
                epoch: self.topology.epoch,
            })
            .await;
        Ok(())
    }

    async fn run(
        mut self,
        mut commands: mpsc::Receiver<Command>,
        mut shutdown: watch::Receiver<bool>,
    ) -> Profile {
        self.refeed().await;
        let mut next_pull = self.now();
        let mut next_epoch_check = self.now();
        let mut reconnect_backoff = Duration::from_millis(200);
        loop {
            self.refill();
            let now = self.now();
            let mut wake = next_pull.min(next_epoch_check);
            if let Some(d) = self.shaper.next_deadline() {
                wake = wake.min(d);
            }
            if let Some(d) = self.outbox.next_deadline() {
                wake = wake.min(d);
            }
            tokio::select! {
                _ = shutdown.changed() => break,
                command = commands.recv() => match command {
                    None => break,
                    Some(Command::Send { contact, content, reply }) => {
                        let _ = reply.send(self.queue(contact, content));
                    }
                    Some(Command::Stats(reply)) => { let _ = reply.send(self.network_stats()); }
                },
                _ = tokio::time::sleep(wake.saturating_sub(now)) => {}
            }
            let now = self.now();
            for event in self.outbox.poll(now) {
                self.outbox_dirty = true;
                self.status(event).await;
            }
            self.refill();
            let emissions = self.shaper.poll(now, &mut rand::rng());
            for emission in emissions {
                self.emit(emission.slot).await;
            }
            if now >= next_pull {
                // A fixed grid: pulls leave on schedule, whatever arrived.
                let interval = self.pull_interval();
                next_pull += interval;
                if next_pull <= now {
                    next_pull = now + interval;
                }
                if self.session.is_none() {
                    match self.connect().await {
                        Ok(()) => reconnect_backoff = Duration::from_millis(200),
                        Err(error) => {
                            debug!(%error, "gateway unreachable");
                            next_pull = now + reconnect_backoff;
                            reconnect_backoff = (reconnect_backoff * 2).min(Duration::from_secs(5));
                        }
                    }
                }
                self.pull().await;
            }
            if now >= next_epoch_check {
                next_epoch_check = now + Duration::from_millis(500);
                self.refresh_topology().await;
            }
            self.save_outbox();
        }
        self.save_outbox();
        self.profile
    }

    fn network_stats(&self) -> NetworkStats {
        let mut stats = self.stats.clone();
        let mut rtts: Vec<f64> = self.loop_rtts.iter().copied().collect();
        rtts.sort_by(f64::total_cmp);
        stats.loop_rtt_p50_ms = rtts.get(rtts.len() / 2).copied();
        stats
    }

    fn save_outbox(&mut self) {
        if !self.outbox_dirty {
            return;
        }
        self.outbox_dirty = false;
        match self.outbox.to_bytes(self.now()) {
            Ok(bytes) => {
                if let Err(error) = self
                    .profile
                    .store()
                    .put(Namespace::Outbox, OUTBOX_KEY, &bytes)
                {
                    warn!(%error, "saving the outbox failed");
                }
            }
            Err(error) => warn!(%error, "encoding the outbox failed"),
        }
    }

    async fn refresh_topology(&mut self) {
        let epoch = self.schedule.epoch_at(unix_ms());
        if self.topology.epoch >= epoch {
            return;
        }
        match self.fetcher.fetch(Some(epoch), unix_ms()).await {
            Ok(document) => {
                let topology = Topology::new(document);
                self.schedule = schedule_of(&topology);
                self.topology = Arc::new(topology);
                debug!(epoch, "consensus refreshed");
            }
            Err(error) => debug!(%error, epoch, "consensus not available yet"),
        }
    }

    /// Keeps one real item waiting in the shaper: acknowledgements first,
    /// then the outbox's next (re)transmission.
    fn refill(&mut self) {
        if self.shaper.queued() > 0 {
            return;
        }
        if let Some(ack) = self.acks.pop_front() {
            if let Err(Pending::Ack(ack)) = self.shaper.enqueue(Pending::Ack(ack)) {
                self.acks.push_front(ack);
            }
            return;
        }
        let now = self.now();
        if let Some(t) = self.outbox.next_transmission(now) {
            self.outbox_dirty = true;
            if let Err(Pending::Fragment(t)) = self.shaper.enqueue(Pending::Fragment(t)) {
                self.outbox.not_sent(t.local_id, t.fragment.index);
            }
        }
    }

    async fn status(&mut self, event: crate::delivery::StatusEvent<ContactId>) {
        let _ = self
            .events
            .send(Event::Status {
                local_id: event.local_id,
                contact: event.recipient,
                status: event.status,
            })
            .await;
    }

    fn queue(&mut self, contact: ContactId, mut content: Content) -> Result<LocalId, ClientError> {
        let mut record = self
            .profile
            .contact(&contact)?
            .ok_or_else(|| ClientError::Queue("unknown contact".into()))?;
        let card = ContactCard::decode(&record.card).map_err(ProfileError::from)?;
        let mut rng = rand::rng();
        let mut sessions = self.profile.sessions(&contact)?;
        if sessions.is_empty() {
            {
                let (header, secret) = initiate(&mut rng, &self.profile.identity, &card.bundle)
                    .map_err(|e| ClientError::Queue(e.to_string()))?;
                let session = Session::initiator(&mut rng, &secret, &card.bundle.signed_prekey.key)
                    .map_err(|e| ClientError::Queue(e.to_string()))?;
                let mut encoded = Vec::new();
                header.encode(&mut encoded);
                record.initial_header = Some(encoded);
                record.confirmed = false;
                sessions.push(session);
            }
        }
        let session = &mut sessions[0];
        if !record.confirmed {
            content.card = Some(self.profile.card().encode());
        }
        let message = session
            .encrypt(&mut rng, &content.encode())
            .map_err(|e| ClientError::Queue(e.to_string()))?;
        let envelope = match (&record.initial_header, record.confirmed) {
            (Some(header), false) => {
                let mut bytes = vec![0x01];
                bytes.extend_from_slice(header);
                bytes.extend_from_slice(&message);
                bytes
            }
            _ => Envelope::Ratchet { message }.encode(),
        };
        // The session advances before the message leaves: state first.
        self.profile.put_sessions(&contact, &record, &sessions)?;
        let local = self
            .outbox
            .queue(&mut rng, contact, envelope, self.now())
            .map_err(|e| ClientError::Queue(e.to_string()))?;
        self.outbox_dirty = true;
        self.save_outbox();
        Ok(local)
    }

    fn delays(&self, rng: &mut impl rand::Rng) -> HopDelays {
        HopDelays::sample_exponential(rng, self.geometry.hops, self.topology.mean_hop_delay())
    }

    fn loop_packet(&mut self) -> Option<OutgoingPacket> {
        let mut rng = rand::rng();
        let gateway = self.profile.gateway;
        let route = self
            .topology
            .route(&mut rng, &self.geometry, gateway, gateway)
            .ok()?;
        let delays = self.delays(&mut rng);
        let mut id = [0u8; 16];
        rng.fill_bytes(&mut id);
        let packet = build_mailbox_packet(
            &mut rng,
            &self.geometry,
            self.topology.epoch,
            &route,
            &delays,
            self.mailbox,
            &self.sealing_public,
            &Body::Loop(LoopId(id)),
        )
        .ok()?;
        if self.loops.len() > 10_000 {
            let now = self.now();
            self.loops
                .retain(|_, at| now.saturating_sub(*at) < Duration::from_secs(300));
        }
        self.loops.insert(LoopId(id), self.now());
        Some(packet)
    }

    fn drop_packet(&self) -> Option<OutgoingPacket> {
        let mut rng = rand::rng();
        let exit = self.topology.random_gateway(&mut rng).ok()?;
        let route = self
            .topology
            .route(&mut rng, &self.geometry, self.profile.gateway, exit)
            .ok()?;
        let delays = self.delays(&mut rng);
        build_drop_cover(
            &mut rng,
            &self.geometry,
            self.topology.epoch,
            &route,
            &delays,
        )
        .ok()
    }

    fn fragment_packet(&mut self, t: &Transmission<ContactId>) -> Option<OutgoingPacket> {
        let record = self.profile.contact(&t.recipient).ok()??;
        let card = ContactCard::decode(&record.card).ok()?;
        let mut rng = rand::rng();
        let geometry = self.geometry.clone();
        let route = self
            .topology
            .route(&mut rng, &geometry, self.profile.gateway, card.gateway)
            .ok()?;
        let back = self
            .topology
            .route(&mut rng, &geometry, card.gateway, self.profile.gateway)
            .ok()?;
        let delays = self.delays(&mut rng);
        let back_delays = self.delays(&mut rng);
        let expected = self.topology.mean_hop_delay() * geometry.hops as u32;
        let surb_ack = SurbAck::new(
            &mut rng,
            &geometry,
            self.topology.epoch,
            &back,
            &back_delays,
            self.mailbox,
            self.sealing_public,
        )
        .ok()?;
        let ack_id = surb_ack.ack_id;
        let packet = build_mailbox_packet(
            &mut rng,
            &geometry,
            self.topology.epoch,
            &route,
            &delays,
            card.mailbox,
            &card.mailbox_key,
            &Body::Fragment {
                fragment: t.fragment.clone(),
                surb_ack,
            },
        )
        .ok()?;
        let timeout = ack_timeout(expected, self.pull_interval());
        let now = self.now();
        if let Some(event) =
            self.outbox
                .record_sent(t.local_id, t.fragment.index, ack_id, now, timeout)
        {
            let events = self.events.clone();
            tokio::spawn(async move {
                let _ = events
                    .send(Event::Status {
                        local_id: event.local_id,
                        contact: event.recipient,
                        status: event.status,
                    })
                    .await;
            });
        }
        self.outbox_dirty = true;
        Some(packet)
    }

    async fn emit(&mut self, slot: Slot<Pending>) {
        let packet = match slot {
            Slot::Real(Pending::Ack(packet)) => {
                self.stats.real_sent += 1;
                Some(packet)
            }
            Slot::Real(Pending::Fragment(t)) => match self.fragment_packet(&t) {
                Some(p) => {
                    self.stats.real_sent += 1;
                    Some(p)
                }
                None => {
                    self.outbox.not_sent(t.local_id, t.fragment.index);
                    None
                }
            },
            Slot::Loop => {
                self.stats.loops_sent += 1;
                self.loop_packet()
            }
            Slot::Drop => {
                self.stats.drops_sent += 1;
                self.drop_packet()
            }
        };
        let Some(packet) = packet else {
            self.stats.skipped += 1;
            return;
        };
        let Ok(frame) = packet.to_frame(&self.geometry) else {
            return;
        };
        if let Some(session) = self.session.as_mut()
            && session.send(frame).await.is_err()
        {
            info!("gateway session lost; reconnecting");
            self.session = None;
        }
    }

    /// Time between pulls: the configured interval, shortened when the
    /// consensus rates need it. A client's mailbox fills at about λP + λL
    /// packets a second (its own loops and what its contacts send in their
    /// payload slots), and each pull takes [`PULL_BATCH`] of them, so pulls
    /// come at least twice as often as that inflow needs. The interval
    /// depends only on the published rates, the same for every client.
    fn pull_interval(&self) -> Duration {
        let p = &self.topology.parameters;
        let inflow = (p.lambda_p + p.lambda_l).max(0.0);
        if inflow <= 0.0 || !inflow.is_finite() {
            return self.config.pull_interval;
        }
        let needed = Duration::from_secs_f64(PULL_BATCH as f64 / (2.0 * inflow));
        self.config
            .pull_interval
            .min(needed)
            .max(Duration::from_millis(MIN_PULL_INTERVAL_MS))
    }

    /// One pull: acknowledges what the previous one brought and takes in
    /// the next batch. One pull per interval, however much is waiting, so
    /// the link shows the same pattern whether messages arrive or not.
    async fn pull(&mut self) {
        let Some(session) = self.session.as_mut() else {
            return;
        };
        let entries = match session.pull(&self.unacknowledged).await {
            Ok(entries) => entries,
            Err(_) => {
                info!("gateway session lost; reconnecting");
                self.session = None;
                return;
            }
        };
        self.unacknowledged.clear();
        for entry in entries {
            self.receive(&entry.payload).await;
            self.unacknowledged.push(entry.id);
        }
    }

    async fn receive(&mut self, payload: &[u8]) {
        let now = self.now();
        let body = match open_delivery(&self.geometry, &self.profile.mailbox_sealing, payload) {
            Ok(body) => body,
            Err(error) => {
                debug!(%error, "undecryptable mailbox packet dropped");
                return;
            }
        };
        match body {
            Body::Loop(id) => {
                if let Some(sent) = self.loops.remove(&id) {
                    self.stats.loops_returned += 1;
                    if self.loop_rtts.len() >= 256 {
                        self.loop_rtts.pop_front();
                    }
                    self.loop_rtts
                        .push_back(now.saturating_sub(sent).as_secs_f64() * 1_000.0);
                }
            }
            Body::Ack(id) => {
                if let Some(event) = self.outbox.acknowledged(id, now) {
                    self.outbox_dirty = true;
                    self.status(event).await;
                }
            }
            Body::Fragment { fragment, surb_ack } => {
                let message_id = fragment.message_id.0;
                let index = fragment.index;
                let received = self.inbox.receive(fragment, now);
                match &received {
                    Received::Rejected(_) => return,
                    // Kept until the message is complete: the gateway
                    // deletes it once acknowledged.
                    Received::Partial => self.keep_fragment(&message_id, index, payload),
                    _ => {}
                }
                if self.acks.len() < MAX_PENDING_ACKS
                    && let Ok(ack) = build_ack(&mut rand::rng(), &self.geometry, surb_ack)
                {
                    self.acks.push_back(ack);
                }
                if let Received::Complete(bytes) = received {
                    self.deliver(&bytes).await;
                    self.forget_fragments(&message_id);
                    self.save_inbox();
                }
            }
        }
    }

    fn keep_fragment(&self, message_id: &[u8; 16], index: u16, payload: &[u8]) {
        let mut key = FRAGMENT_PREFIX.to_vec();
        key.extend_from_slice(message_id);
        key.extend_from_slice(&index.to_be_bytes());
        if let Err(error) = self.profile.store().put(Namespace::Meta, &key, payload) {
            warn!(%error, "keeping a fragment failed");
        }
    }

    fn forget_fragments(&self, message_id: &[u8; 16]) {
        let mut prefix = FRAGMENT_PREFIX.to_vec();
        prefix.extend_from_slice(message_id);
        if let Ok(records) = self.profile.store().list(Namespace::Meta) {
            for (key, _) in records.iter().filter(|(k, _)| k.starts_with(&prefix)) {
                let _ = self.profile.store().delete(Namespace::Meta, key);
            }
        }
    }

    fn save_inbox(&self) {
        let bytes = self.inbox.to_bytes(self.now());
        if let Err(error) = self.profile.store().put(Namespace::Meta, INBOX_KEY, &bytes) {
            warn!(%error, "saving the inbox failed");
        }
    }

    /// After a restart: the fragments of incomplete messages kept before
    /// acknowledging them go through the inbox again.
    async fn refeed(&mut self) {
        let Ok(records) = self.profile.store().list(Namespace::Meta) else {
            return;
        };
        for (key, payload) in records {
            if key.starts_with(FRAGMENT_PREFIX) {
                self.receive(&payload).await;
            }
        }
    }

    /// Decrypts a complete message: the sessions we have first, then a
    /// handshake; stores it and tells the application.
    async fn deliver(&mut self, bytes: &[u8]) {
        let envelope = match Envelope::decode(bytes) {
            Ok(e) => e,
            Err(error) => {
                debug!(%error, "malformed message dropped");
                return;
            }
        };
        let message = match &envelope {
            Envelope::Initial { message, .. } | Envelope::Ratchet { message } => message.clone(),
        };
        let mut rng = rand::rngs::StdRng::from_rng(&mut rand::rng());
        let contacts = match self.profile.contacts() {
            Ok(c) => c,
            Err(error) => {
                warn!(%error, "reading contacts failed");
                return;
            }
        };
        for (id, mut record) in contacts {
            let Ok(mut sessions) = self.profile.sessions(&id) else {
                continue;
            };
            let decrypted = sessions
                .iter_mut()
                .find_map(|s| s.decrypt(&mut rng, &message).ok());
            if let Some(plaintext) = decrypted {
                record.confirmed |= matches!(envelope, Envelope::Ratchet { .. });
                if let Envelope::Initial { header, .. } = &envelope {
                    record.note_ephemeral(header.ephemeral);
                }
                self.accept(id, record, sessions, &plaintext, false).await;
                return;
            }
        }
        let Envelope::Initial { header, message } = envelope else {
            debug!("message for no known session dropped");
            return;
        };
        let from = contact_id_of(&header.identity.signing);
        let existing = self.profile.contact(&from).ok().flatten();
        if existing
            .as_ref()
            .is_some_and(|r| r.seen_ephemerals.contains(&header.ephemeral))
        {
            debug!("replayed handshake dropped");
            return;
        }
        let profile = &self.profile;
        let Ok(secret) = respond(
            &profile.identity,
            &profile.signed_prekey,
            &profile.pq_prekey,
            &header,
        ) else {
            debug!("handshake refused");
            return;
        };
        let mut session = Session::responder(&secret, &profile.signed_prekey);
        let mut sessions = profile.sessions(&from).unwrap_or_default();
        let Ok(plaintext) = session.decrypt(&mut rng, &message) else {
            debug!("first message did not decrypt");
            return;
        };
        let Ok(content) = Content::decode(&plaintext) else {
            return;
        };
        let Some(card) = content
            .card
            .as_deref()
            .and_then(|c| ContactCard::decode(c).ok())
        else {
            debug!("first message without a valid card dropped");
            return;
        };
        if contact_id_of(&card.bundle.identity.signing) != from {
            debug!("card of another identity dropped");
            return;
        }
        let is_new = existing.is_none();
        let mut record = existing.unwrap_or_else(|| ContactRecord {
            name: format!("contact-{}", hex_prefix(&from.0)),
            card: card.encode(),
            confirmed: false,
            initial_header: None,
            seen_ephemerals: Vec::new(),
        });
        record.card = card.encode();
        // Their handshake replaces ours: answer in their session.
        record.initial_header = None;
        record.confirmed = true;
        record.note_ephemeral(header.ephemeral);
        if is_new {
            let _ = self
                .events
                .send(Event::NewContact {
                    id: from,
                    name: record.name.clone(),
                })
                .await;
        }
        // Their handshake's session becomes the active one; ours (if both
        // started at once) stays to decrypt what they send in it.
        sessions.insert(0, session);
        self.accept(from, record, sessions, &plaintext, true).await;
    }

    async fn accept(
        &mut self,
        id: ContactId,
        mut record: ContactRecord,
        sessions: Vec<Session>,
        plaintext: &[u8],
        decoded_card: bool,
    ) {
        let Ok(content) = Content::decode(plaintext) else {
            return;
        };
        if !decoded_card
            && let Some(card) = content
                .card
                .as_deref()
                .and_then(|c| ContactCard::decode(c).ok())
            && contact_id_of(&card.bundle.identity.signing) == id
        {
            record.card = card.encode();
        }
        if let Err(error) = self.profile.put_sessions(&id, &record, &sessions) {
            warn!(%error, "saving the session failed");
            return;
        }
        match self
            .profile
            .store_message(id, content.signal, unix_ms(), content.body.clone())
        {
            Ok(_) => {
                let _ = self
                    .events
                    .send(Event::Message {
                        from: id,
                        name: record.name,
                        signal: content.signal,
                        body: content.body,
                    })
                    .await;
            }
            Err(error) => warn!(%error, "storing a message failed"),
        }
    }
}

fn hex_prefix(bytes: &[u8]) -> String {
    bytes.iter().take(4).map(|b| format!("{b:02x}")).collect()
}

/// A random gateway from the current consensus, for a new profile.
pub async fn pick_gateway(fetcher: &Fetcher) -> Result<NodeId, ClientError> {
    let topology = current_topology(fetcher).await?;
    topology
        .random_gateway(&mut rand::rng())
        .map_err(|e| ClientError::Directory(e.to_string()))
}
