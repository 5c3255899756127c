//! The libp2p host: TCP + Noise + yamux, authenticated by the Ed25519
//! identity the directory publishes.
//!
//! [`Host`] runs the libp2p swarm in its own task and hands out streams.
//! Mix traffic between nodes uses one long-lived stream per neighbour and
//! direction ([`MIX_PROTOCOL`](crate::MIX_PROTOCOL)), carrying back-to-back
//! fixed-size frames; clients use the access protocol.

use std::collections::HashMap;
use std::sync::Arc;
use std::time::Duration;

use ed25519_dalek::SigningKey;
use futures::StreamExt as _;
use libp2p::core::Transport as _;
use libp2p::swarm::SwarmEvent;
use libp2p::swarm::dial_opts::{DialOpts, PeerCondition};
use libp2p::{Multiaddr, PeerId, StreamProtocol};
use tokio::sync::{mpsc, oneshot, watch};
use tracing::debug;

use crate::limits::{ConnectionLimits, Refusals, SourceLimited};
use crate::socks5::{Socks5Proxy, Socks5Transport};

/// Connections with no stream open are closed after this long.
const IDLE_TIMEOUT: Duration = Duration::from_secs(120);

/// Why the link layer could not start.
#[derive(Debug, thiserror::Error)]
pub enum LinkError {
    /// The identity key could not become a libp2p key.
    #[error("identity key: {0}")]
    Key(String),
    /// The transport could not be built.
    #[error("transport: {0}")]
    Transport(String),
    /// The listen address could not be used.
    #[error("listen: {0}")]
    Listen(String),
    /// The swarm's task has stopped.
    #[error("link layer stopped")]
    Stopped,
    /// The peer could not be reached.
    #[error("dial: {0}")]
    Dial(String),
    /// A stream could not be opened or accepted.
    #[error("stream: {0}")]
    Stream(String),
}

enum Command {
    AddAddresses(PeerId, Vec<Multiaddr>),
    Connect(PeerId, oneshot::Sender<Result<(), String>>),
    ListenAddress(oneshot::Sender<Option<Multiaddr>>),
}

/// A running libp2p swarm.
#[derive(Clone)]
pub struct Host {
    control: libp2p_stream::Control,
    commands: mpsc::UnboundedSender<Command>,
    /// This host's peer id.
    pub peer_id: PeerId,
}

/// The libp2p peer id of a directory identity key.
pub fn peer_id_of(identity: &[u8; 32]) -> Option<PeerId> {
    let key = libp2p::identity::ed25519::PublicKey::try_from_bytes(identity).ok()?;
    Some(PeerId::from_public_key(&libp2p::identity::PublicKey::from(
        key,
    )))
}

/// The directory identity key behind a libp2p peer id: the inverse of
/// [`peer_id_of`] (Ed25519 peer ids carry the key itself).
pub fn identity_of(peer: &PeerId) -> Option<[u8; 32]> {
    let hash: &libp2p::multihash::Multihash<64> = peer.as_ref();
    // 0x00: the identity multihash, whose digest is the encoded key.
    if hash.code() != 0 {
        return None;
    }
    let key = libp2p::identity::PublicKey::try_decode_protobuf(hash.digest()).ok()?;
    Some(key.try_into_ed25519().ok()?.to_bytes())
}

/// The published addresses that parse as multiaddresses; others are skipped.
pub fn dial_addresses(published: &[String]) -> Vec<Multiaddr> {
    published.iter().filter_map(|a| a.parse().ok()).collect()
}

/// The libp2p key pair of an Ed25519 identity.
pub fn libp2p_keypair(identity: &SigningKey) -> Result<libp2p::identity::Keypair, LinkError> {
    let mut secret = identity.to_bytes();
    let result = libp2p::identity::Keypair::ed25519_from_bytes(&mut secret)
        .map_err(|e| LinkError::Key(e.to_string()));
    zeroize::Zeroize::zeroize(&mut secret);
    result
}

impl Host {
    /// Starts a swarm with `identity`, listening on `listen` if given (a
    /// client does not listen), with no cap on inbound connections. The
    /// swarm stops when `shutdown` turns true.
    pub fn start(
        identity: &SigningKey,
        listen: Option<Multiaddr>,
        shutdown: watch::Receiver<bool>,
    ) -> Result<(Host, tokio::task::JoinHandle<()>), LinkError> {
        let refusals = Arc::new(Refusals::default());
        Self::start_limited(identity, listen, ConnectionLimits::NONE, refusals, shutdown)
    }

    /// [`Host::start`] that refuses inbound connections past `limits`,
    /// counting them in `refusals`.
    pub fn start_limited(
        identity: &SigningKey,
        listen: Option<Multiaddr>,
        limits: ConnectionLimits,
        refusals: Arc<Refusals>,
        shutdown: watch::Receiver<bool>,
    ) -> Result<(Host, tokio::task::JoinHandle<()>), LinkError> {
        Self::start_with(identity, listen, None, limits, refusals, shutdown)
    }

    /// A client's host that reaches every peer through a SOCKS5 proxy
    /// (and has no other transport, so nothing goes around it); it does
    /// not listen.
    pub fn start_via_proxy(
        identity: &SigningKey,
        proxy: Socks5Proxy,
        shutdown: watch::Receiver<bool>,
    ) -> Result<(Host, tokio::task::JoinHandle<()>), LinkError> {
        let refusals = Arc::new(Refusals::default());
        Self::start_with(
            identity,
            None,
            Some(proxy),
            ConnectionLimits::NONE,
            refusals,
            shutdown,
        )
    }

    fn start_with(
        identity: &SigningKey,
        listen: Option<Multiaddr>,
        proxy: Option<Socks5Proxy>,
        limits: ConnectionLimits,
        refusals: Arc<Refusals>,
        mut shutdown: watch::Receiver<bool>,
    ) -> Result<(Host, tokio::task::JoinHandle<()>), LinkError> {
        let keypair = libp2p_keypair(identity)?;
        let peer_id = keypair.public().to_peer_id();
        let behaviour = SourceLimited::new(libp2p_stream::Behaviour::new(), limits, refusals);
        let idle = |c: libp2p::swarm::Config| c.with_idle_connection_timeout(IDLE_TIMEOUT);
        let transport = |e: &dyn std::fmt::Display| LinkError::Transport(e.to_string());
        let builder = libp2p::SwarmBuilder::with_existing_identity(keypair).with_tokio();
        let mut swarm = match proxy {
            None => builder
                .with_tcp(
                    libp2p::tcp::Config::default().nodelay(true),
                    libp2p::noise::Config::new,
                    libp2p::yamux::Config::default,
                )
                .map_err(|e| transport(&e))?
                .with_behaviour(|_| behaviour)
                .map_err(|e| transport(&e))?
                .with_swarm_config(idle)
                .build(),
            Some(proxy) => builder
                .with_other_transport(|key| {
                    let noise = libp2p::noise::Config::new(key)?;
                    Ok::<_, Box<dyn std::error::Error + Send + Sync>>(
                        Socks5Transport::new(proxy)
                            .upgrade(libp2p::core::upgrade::Version::V1)
                            .authenticate(noise)
                            .multiplex(libp2p::yamux::Config::default()),
                    )
                })
                .map_err(|e| transport(&e))?
                .with_behaviour(|_| behaviour)
                .map_err(|e| transport(&e))?
                .with_swarm_config(idle)
                .build(),
        };
        if let Some(addr) = listen {
            swarm
                .listen_on(addr)
                .map_err(|e| LinkError::Listen(e.to_string()))?;
        }
        let control = swarm.behaviour().inner().new_control();
        let (commands, mut rx) = mpsc::unbounded_channel();
        let task = tokio::spawn(async move {
            let mut listening: Option<Multiaddr> = None;
            let mut waiting: Vec<oneshot::Sender<Option<Multiaddr>>> = Vec::new();
            // The swarm keeps no address book of its own: this is it.
            let mut book: HashMap<PeerId, Vec<Multiaddr>> = HashMap::new();
            let mut connecting: HashMap<PeerId, Vec<oneshot::Sender<Result<(), String>>>> =
                HashMap::new();
            loop {
                tokio::select! {
                    _ = shutdown.changed() => break,
                    command = rx.recv() => match command {
                        None => break,
                        Some(Command::AddAddresses(peer, addrs)) => {
                            // Bounded: only consensus nodes (and a client's gateway) are added.
                            book.insert(peer, addrs);
                        }
                        Some(Command::Connect(peer, reply)) => {
                            if swarm.is_connected(&peer) {
                                let _ = reply.send(Ok(()));
                                continue;
                            }
                            let Some(addrs) = book.get(&peer).cloned() else {
                                let _ = reply.send(Err("no known address".into()));
                                continue;
                            };
                            let first = !connecting.contains_key(&peer);
                            connecting.entry(peer).or_default().push(reply);
                            if first {
                                let opts = DialOpts::peer_id(peer)
                                    .addresses(addrs)
                                    .condition(PeerCondition::DisconnectedAndNotDialing)
                                    .build();
                                if let Err(error) = swarm.dial(opts) {
                                    for r in connecting.remove(&peer).unwrap_or_default() {
                                        let _ = r.send(Err(error.to_string()));
                                    }
                                }
                            }
                        }
                        Some(Command::ListenAddress(reply)) => match &listening {
                            Some(a) => { let _ = reply.send(Some(a.clone())); }
                            None => waiting.push(reply),
                        },
                    },
                    event = swarm.select_next_some() => match event {
                        SwarmEvent::NewListenAddr { address, .. } => {
                            listening.get_or_insert(address.clone());
                            for reply in waiting.drain(..) {
                                let _ = reply.send(Some(address.clone()));
                            }
                        }
                        SwarmEvent::ConnectionEstablished { peer_id, .. } => {
                            debug!("link connection up");
                            for r in connecting.remove(&peer_id).unwrap_or_default() {
                                let _ = r.send(Ok(()));
                            }
                        }
                        SwarmEvent::ConnectionClosed { .. } => debug!("link connection closed"),
                        SwarmEvent::OutgoingConnectionError { error, peer_id, .. } => {
                            debug!(%error, "dial failed");
                            if let Some(peer) = peer_id {
                                for r in connecting.remove(&peer).unwrap_or_default() {
                                    let _ = r.send(Err(error.to_string()));
                                }
                            }
                        }
                        _ => {}
                    },
                }
            }
        });
        Ok((
            Host {
                control,
                commands,
                peer_id,
            },
            task,
        ))
    }

    /// Tells the swarm where a peer can be reached.
    pub fn add_addresses(&self, peer: PeerId, addresses: Vec<Multiaddr>) {
        let _ = self.commands.send(Command::AddAddresses(peer, addresses));
    }

    /// Tells the swarm where a directory node can be reached (the addresses
    /// its descriptor published that parse as multiaddresses) and returns
    /// its peer id; `None` if `identity` is not an Ed25519 key.
    pub fn add_node(&self, identity: &[u8; 32], addresses: &[String]) -> Option<PeerId> {
        let peer = peer_id_of(identity)?;
        self.add_addresses(peer, dial_addresses(addresses));
        Some(peer)
    }

    /// The first address the swarm listens on (with the real port when the
    /// configured one was 0).
    pub async fn listen_address(&self) -> Option<Multiaddr> {
        let (tx, rx) = oneshot::channel();
        self.commands.send(Command::ListenAddress(tx)).ok()?;
        rx.await.ok().flatten()
    }

    /// A control for opening and accepting streams.
    pub fn control(&self) -> libp2p_stream::Control {
        self.control.clone()
    }

    /// Opens a stream to `peer` for `protocol`, dialling its known
    /// addresses if not connected.
    pub async fn open(
        &self,
        peer: PeerId,
        protocol: &'static str,
    ) -> Result<libp2p::Stream, LinkError> {
        let (tx, rx) = oneshot::channel();
        self.commands
            .send(Command::Connect(peer, tx))
            .map_err(|_| LinkError::Stopped)?;
        rx.await
            .map_err(|_| LinkError::Stopped)?
            .map_err(LinkError::Dial)?;
        self.control()
            .open_stream(peer, StreamProtocol::new(protocol))
            .await
            .map_err(|e| LinkError::Stream(e.to_string()))
    }

    /// Incoming streams of `protocol`.
    pub fn accept(
        &self,
        protocol: &'static str,
    ) -> Result<libp2p_stream::IncomingStreams, LinkError> {
        self.control()
            .accept(StreamProtocol::new(protocol))
            .map_err(|e| LinkError::Stream(e.to_string()))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_peer_id_gives_back_the_identity_it_was_made_from() {
        let identity = SigningKey::from_bytes(&[5; 32]).verifying_key().to_bytes();
        let peer = peer_id_of(&identity).unwrap();
        assert_eq!(identity_of(&peer), Some(identity));
        assert_eq!(identity_of(&PeerId::random()), None);
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn one_address_holds_at_most_its_share_of_connections() {
        let (_stop, stop_rx) = watch::channel(false);
        let refusals = Arc::new(Refusals::default());
        let limits = ConnectionLimits {
            per_source: 2,
            total: 100,
        };
        let (server, _task) = Host::start_limited(
            &SigningKey::from_bytes(&[1; 32]),
            Some("/ip4/127.0.0.1/tcp/0".parse().unwrap()),
            limits,
            refusals.clone(),
            stop_rx,
        )
        .unwrap();
        let address = server.listen_address().await.unwrap();
        let _incoming = server.accept(crate::MIX_PROTOCOL).unwrap();
        // Each client is a host of its own: one connection each, all from
        // 127.0.0.1.
        let mut clients = Vec::new();
        let mut opened = Vec::new();
        for n in 0..3u8 {
            let (stop, stop_rx) = watch::channel(false);
            let (client, _task) =
                Host::start(&SigningKey::from_bytes(&[10 + n; 32]), None, stop_rx).unwrap();
            client.add_addresses(server.peer_id, vec![address.clone()]);
            opened.push(
                client
                    .open(server.peer_id, crate::MIX_PROTOCOL)
                    .await
                    .is_ok(),
            );
            clients.push((stop, client));
        }
        assert_eq!(opened, vec![true, true, false]);
        assert_eq!(
            refusals
                .per_source
                .load(std::sync::atomic::Ordering::Relaxed),
            1
        );
        // One leaves: its share is free again.
        let (stop, _) = clients.remove(0);
        stop.send(true).unwrap();
        let (_stop, stop_rx) = watch::channel(false);
        let (late, _task) = Host::start(&SigningKey::from_bytes(&[20; 32]), None, stop_rx).unwrap();
        late.add_addresses(server.peer_id, vec![address]);
        let deadline = tokio::time::Instant::now() + Duration::from_secs(10);
        loop {
            if late.open(server.peer_id, crate::MIX_PROTOCOL).await.is_ok() {
                break;
            }
            assert!(
                tokio::time::Instant::now() < deadline,
                "the freed share was not given back"
            );
            tokio::time::sleep(Duration::from_millis(200)).await;
        }
    }
}
