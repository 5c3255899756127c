//! The client library's API: start a [`Client`] with a profile, send
//! messages to contacts, and read [`Event`]s. One tokio task (the
//! [driver](crate::driver)) does the work behind it.

use std::time::Duration;

use aegis_directory::Fetcher;
use aegis_link::Host;
use aegis_mix_packet::{Geometry, NodeId};
use aegis_proto::{ContactId, LocalId, MessageStatus, OutboxConfig, Progress, ShapingConfig};
use ed25519_dalek::SigningKey;
use rand::Rng as _;
use tokio::sync::{mpsc, oneshot, watch};

use crate::call::{CallError, CallEventKind, CallId};
use crate::driver::Driver;
use crate::envelope::Content;
use crate::file::{FileMeta, max_file_len};
use crate::profile::{ContactRecord, Profile, ProfileError, StoredMessage};
use crate::safety::SafetyNumber;

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
    pub gateway_address: Option<aegis_link::Multiaddr>,
    /// When prekeys rotate and how long retired ones answer.
    pub prekeys: crate::profile::PrekeyRotation,
    /// Reach the gateway through this SOCKS5 proxy (a local Tor daemon's
    /// `SocksPort`, say), so the gateway sees the proxy's address instead
    /// of ours. With a proxy there is no direct connection at all.
    pub proxy: Option<aegis_link::Socks5Proxy>,
}

impl Default for ClientConfig {
    fn default() -> Self {
        ClientConfig {
            pull_interval: Duration::from_secs(1),
            shaping: None,
            outbox: OutboxConfig::default(),
            gateway_address: None,
            prekeys: crate::profile::PrekeyRotation::default(),
            proxy: None,
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
    /// A call action was refused.
    #[error(transparent)]
    Call(#[from] CallError),
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
    /// Messages from blocked contacts dropped unread (since start).
    pub blocked_dropped: u64,
    /// Events the application did not take in time (since start).
    pub events_missed: u64,
    /// Fragments delivered a second time that got no second ack (their
    /// reply block was used already), since start.
    pub acks_withheld: u64,
    /// Slots whose frame was ready only after the release hold
    /// ([`crate::emission::RELEASE_HOLD`]), so it left later than slot +
    /// hold (since start).
    pub release_overruns: u64,
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
        /// From a contact request (someone not accepted yet).
        request: bool,
        /// Its place in the history.
        seq: u64,
        /// The content (for a file, the file's bytes).
        body: Vec<u8>,
        /// For a file: its name and media type.
        file: Option<FileMeta>,
        /// For a message of an anonymous thread, the thread: `from` is
        /// then the anonymous writer (answer with [`Client::reply`]) if it
        /// is [`crate::profile::thread_contact`] of it, otherwise a
        /// contact answering our anonymous message.
        thread: Option<[u8; 16]>,
    },
    /// Something happened to a call.
    Call {
        /// The call.
        call: CallId,
        /// The other side.
        contact: ContactId,
        /// Their name.
        name: String,
        /// What happened.
        kind: CallEventKind,
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
    /// Someone who was not a contact wrote: a contact request, until the
    /// user accepts ([`Client::accept_contact`]) or blocks them.
    ContactRequest {
        /// Their id.
        id: ContactId,
        /// The name given to them (`request-` and a fingerprint).
        name: String,
    },
    /// The application did not take `missed` events in time and they were
    /// dropped (the client never waits for the application). Messages and
    /// statuses are in the history.
    Lagged {
        /// How many.
        missed: u64,
    },
}

/// What the user does with a call.
#[derive(Debug, Clone)]
pub(crate) enum CallAction {
    Place {
        contact: ContactId,
        description: String,
    },
    Answer {
        call: CallId,
        description: String,
    },
    Candidate {
        call: CallId,
        candidate: String,
    },
    HangUp {
        call: CallId,
    },
}

/// Work on the profile, run by the driver that owns it.
pub(crate) type ProfileJob = Box<dyn FnOnce(&Profile) + Send>;

pub(crate) enum Command {
    Send {
        contact: ContactId,
        content: Content,
        reply: oneshot::Sender<Result<LocalId, ClientError>>,
    },
    Stats(oneshot::Sender<NetworkStats>),
    Progress(LocalId, oneshot::Sender<Option<Progress>>),
    SendAnonymous {
        contact: ContactId,
        content: Content,
        reply: oneshot::Sender<Result<LocalId, ClientError>>,
    },
    Reply {
        seq: u64,
        content: Content,
        reply: oneshot::Sender<Result<LocalId, ClientError>>,
    },
    Call(CallAction, oneshot::Sender<Result<CallId, ClientError>>),
    Profile(ProfileJob),
}

/// Events held for the application at most; more are counted and dropped
/// ([`Event::Lagged`]).
pub const EVENT_QUEUE: usize = 1_024;

/// Attempts at attaching to the gateway when a client starts.
const FIRST_CONNECT_TRIES: u32 = 4;

/// A running client.
pub struct Client {
    commands: mpsc::Sender<Command>,
    geometry: Geometry,
    shutdown: watch::Sender<bool>,
    task: tokio::task::JoinHandle<Profile>,
}

pub use crate::directory::{current_topology, fetcher_for, fetcher_via};

impl Client {
    /// Starts the client: fetches the consensus, attaches to the gateway,
    /// and runs until [`Client::shutdown`]. Events arrive on the receiver.
    pub async fn start(
        profile: Profile,
        config: ClientConfig,
    ) -> Result<(Client, mpsc::Receiver<Event>), ClientError> {
        let mut fetcher = fetcher_via(&profile.authorities, config.proxy.as_ref())?;
        let document =
            crate::directory::current_document(&fetcher)
                .await
                .map_err(|error| match (&config.proxy, error) {
                    (Some(proxy), ClientError::Directory(why)) => ClientError::Directory(format!(
                        "through the SOCKS5 proxy at {}: {why}",
                        proxy.address
                    )),
                    (_, error) => error,
                })?;
        let mut profile = profile;
        if let Some(authorities) =
            crate::directory::authorities_after(&profile.authorities, &document)
        {
            fetcher = fetcher_via(&authorities, config.proxy.as_ref())?;
            profile.set_authorities(authorities)?;
        }
        let topology = crate::directory::topology_of(document)?;
        let geometry = crate::directory::geometry_of(&topology.document)?;
        let (shutdown, shutdown_rx) = watch::channel(false);
        // A fresh link identity per run: the gateway cannot link sessions
        // by it, and it is not the user's identity.
        let mut seed = [0u8; 32];
        rand::rng().fill_bytes(&mut seed);
        let key = SigningKey::from_bytes(&seed);
        let (host, _swarm) = match &config.proxy {
            Some(proxy) => Host::start_via_proxy(&key, proxy.clone(), shutdown_rx.clone()),
            None => Host::start(&key, None, shutdown_rx.clone()),
        }
        .map_err(|e| ClientError::Gateway(e.to_string()))?;
        let (events_tx, events) = mpsc::channel(EVENT_QUEUE);
        let (commands, commands_rx) = mpsc::channel(64);
        let mut driver = Driver::new(profile, config, fetcher, topology, host, events_tx)?;
        // A first attempt can meet a link that is being set up or replaced
        // (the stream then ends early); a few tries, backing off, before
        // reporting the gateway unreachable.
        let mut backoff =
            aegis_proto::Backoff::new(Duration::from_millis(250), Duration::from_secs(2));
        let mut tries = 1;
        loop {
            match driver.connect().await {
                Ok(()) => break,
                Err(ClientError::Gateway(_)) if tries < FIRST_CONNECT_TRIES => {
                    tries += 1;
                    tokio::time::sleep(backoff.next_delay()).await;
                }
                Err(error) => return Err(error),
            }
        }
        let task = tokio::spawn(driver.run(commands_rx, shutdown_rx));
        Ok((
            Client {
                commands,
                geometry,
                shutdown,
                task,
            },
            events,
        ))
    }

    /// The packet geometry of the network the client is in (the consensus
    /// names it): what decides the largest file [`Client::send_file`] takes.
    pub fn geometry(&self) -> &Geometry {
        &self.geometry
    }

    /// Hands the driver a command carrying `reply` and waits for the answer.
    async fn ask<T>(
        &self,
        command: impl FnOnce(oneshot::Sender<T>) -> Command,
    ) -> Result<T, ClientError> {
        let (reply, answer) = oneshot::channel();
        self.commands
            .send(command(reply))
            .await
            .map_err(|_| ClientError::Stopped)?;
        answer.await.map_err(|_| ClientError::Stopped)
    }

    async fn send_content(
        &self,
        contact: ContactId,
        content: Content,
    ) -> Result<LocalId, ClientError> {
        self.ask(|reply| Command::Send {
            contact,
            content,
            reply,
        })
        .await?
    }

    /// Queues a message; its status arrives as [`Event::Status`].
    pub async fn send(&self, contact: ContactId, body: Vec<u8>) -> Result<LocalId, ClientError> {
        self.send_content(contact, Content::new(false, body)).await
    }

    async fn call_action(&self, action: CallAction) -> Result<CallId, ClientError> {
        self.ask(|reply| Command::Call(action, reply)).await?
    }

    /// Calls a contact: sends an offer with our session description
    /// (SDP or the like, at most [`crate::call::MAX_FIELD_LEN`] bytes).
    /// [`Event::Call`] reports the answer, candidates and the end.
    pub async fn place_call(
        &self,
        contact: ContactId,
        description: String,
    ) -> Result<CallId, ClientError> {
        self.call_action(CallAction::Place {
            contact,
            description,
        })
        .await
    }

    /// Answers a ringing call with our session description.
    pub async fn answer_call(&self, call: CallId, description: String) -> Result<(), ClientError> {
        self.call_action(CallAction::Answer { call, description })
            .await
            .map(drop)
    }

    /// Sends one of our connectivity candidates for a call going on.
    pub async fn send_candidate(&self, call: CallId, candidate: String) -> Result<(), ClientError> {
        self.call_action(CallAction::Candidate { call, candidate })
            .await
            .map(drop)
    }

    /// Hangs up a call (declines it, if it is ringing).
    pub async fn hang_up(&self, call: CallId) -> Result<(), ClientError> {
        self.call_action(CallAction::HangUp { call })
            .await
            .map(drop)
    }

    /// Queues a file (its name and media type travel sealed with it) as
    /// one message, of at most [`max_file_len`] bytes; its status arrives
    /// as [`Event::Status`], and [`Client::progress`] tells how many of its
    /// fragments have been acknowledged.
    pub async fn send_file(
        &self,
        contact: ContactId,
        meta: &FileMeta,
        data: &[u8],
    ) -> Result<LocalId, ClientError> {
        let max = max_file_len(&self.geometry, meta);
        if data.len() > max {
            return Err(ClientError::Queue(format!(
                "{} is {} bytes; one message carries at most {max} bytes",
                meta.name,
                data.len()
            )));
        }
        self.send_content(contact, Content::file(meta, data)).await
    }

    /// Writes to a contact without revealing who we are or where our
    /// mailbox is: the message is sealed to their card with no identity of
    /// ours and carries reply blocks, over which they can answer
    /// ([`Client::reply`]) within the blocks' life (two epochs). They see
    /// it as from `anonymous-…`.
    pub async fn send_anonymous(
        &self,
        contact: ContactId,
        body: Vec<u8>,
    ) -> Result<LocalId, ClientError> {
        let content = Content::new(false, body);
        self.ask(|reply| Command::SendAnonymous {
            contact,
            content,
            reply,
        })
        .await?
    }

    /// Answers the anonymous message `seq` of the history over the reply
    /// blocks it brought (each used once; a long answer needs more blocks
    /// than a short one).
    pub async fn reply(&self, seq: u64, body: Vec<u8>) -> Result<LocalId, ClientError> {
        let content = Content::new(false, body);
        self.ask(|reply| Command::Reply {
            seq,
            content,
            reply,
        })
        .await?
    }

    /// How far a message still in the outbox has come (fragments sent and
    /// acknowledged); `None` once it has left (delivered or failed).
    pub async fn progress(&self, id: LocalId) -> Result<Option<Progress>, ClientError> {
        self.ask(|reply| Command::Progress(id, reply)).await
    }

    /// The client's own traffic figures.
    pub async fn stats(&self) -> Result<NetworkStats, ClientError> {
        self.ask(Command::Stats).await
    }

    /// Runs `job` on the profile inside the running client (which owns
    /// it) and returns its result.
    pub async fn with_profile<T: Send + 'static>(
        &self,
        job: impl FnOnce(&Profile) -> T + Send + 'static,
    ) -> Result<T, ClientError> {
        self.ask(|reply| {
            Command::Profile(Box::new(move |profile| {
                let _ = reply.send(job(profile));
            }))
        })
        .await
    }

    /// Every contact, request and blocked contact, sorted by name.
    pub async fn contacts(&self) -> Result<Vec<(ContactId, ContactRecord)>, ClientError> {
        Ok(self.with_profile(|p| p.contacts()).await??)
    }

    /// The contact named `name`.
    pub async fn contact(&self, name: &str) -> Result<(ContactId, ContactRecord), ClientError> {
        let name = name.to_owned();
        Ok(self.with_profile(move |p| p.named(&name)).await??)
    }

    /// Adds a contact from their card.
    pub async fn add_contact(&self, name: &str, card: &str) -> Result<ContactId, ClientError> {
        let (name, card) = (name.to_owned(), card.to_owned());
        Ok(self
            .with_profile(move |p| p.add_contact(&name, &card))
            .await??)
    }

    /// Renames a contact.
    pub async fn rename_contact(&self, name: &str, new_name: &str) -> Result<(), ClientError> {
        let (name, new_name) = (name.to_owned(), new_name.to_owned());
        Ok(self
            .with_profile(move |p| p.rename_contact(&name, &new_name))
            .await??)
    }

    /// Accepts a contact request, optionally naming them.
    pub async fn accept_contact(
        &self,
        name: &str,
        new_name: Option<&str>,
    ) -> Result<(), ClientError> {
        let (name, new_name) = (name.to_owned(), new_name.map(str::to_owned));
        Ok(self
            .with_profile(move |p| p.accept_contact(&name, new_name.as_deref()))
            .await??)
    }

    /// Blocks a contact or request.
    pub async fn block_contact(&self, name: &str) -> Result<(), ClientError> {
        let name = name.to_owned();
        Ok(self.with_profile(move |p| p.block_contact(&name)).await??)
    }

    /// Removes a contact and its sessions.
    pub async fn remove_contact(&self, name: &str) -> Result<ContactId, ClientError> {
        let name = name.to_owned();
        Ok(self
            .with_profile(move |p| p.remove_contact(&name))
            .await??)
    }

    /// The safety number with a contact.
    pub async fn safety_number(&self, name: &str) -> Result<SafetyNumber, ClientError> {
        let name = name.to_owned();
        Ok(self.with_profile(move |p| p.safety_number(&name)).await??)
    }

    /// Marks a contact verified; `typed`, if given, must be the safety
    /// number.
    pub async fn verify_contact(&self, name: &str, typed: Option<&str>) -> Result<(), ClientError> {
        let (name, typed) = (name.to_owned(), typed.map(str::to_owned));
        Ok(self
            .with_profile(move |p| p.verify_contact(&name, typed.as_deref()))
            .await??)
    }

    /// The messages to and from a contact (all messages with `None`),
    /// oldest first, with their times and, for sent ones, their status.
    pub async fn history(
        &self,
        contact: Option<ContactId>,
    ) -> Result<Vec<StoredMessage>, ClientError> {
        Ok(self
            .with_profile(move |p| match contact {
                Some(c) => p.history(&c),
                None => p.messages(),
            })
            .await??)
    }

    /// Deletes one message from the history.
    pub async fn delete_message(&self, seq: u64) -> Result<bool, ClientError> {
        Ok(self.with_profile(move |p| p.delete_message(seq)).await??)
    }

    /// The profile's own contact card.
    pub async fn card(&self) -> Result<String, ClientError> {
        self.with_profile(|p| p.card().encode()).await
    }

    /// Stops the client (the outbox is saved) and hands the profile back.
    pub async fn shutdown(self) -> Result<Profile, ClientError> {
        let _ = self.shutdown.send(true);
        self.task.await.map_err(|_| ClientError::Stopped)
    }
}

/// A random gateway from the current consensus, for a new profile.
pub async fn pick_gateway(fetcher: &Fetcher) -> Result<NodeId, ClientError> {
    let topology = current_topology(fetcher).await?;
    topology
        .random_gateway(&mut rand::rng())
        .map_err(|e| ClientError::Directory(e.to_string()))
}
