//! Starting and stopping a whole node: the stages wired together.
//!
//! ```text
//! links ─▶ ingress queue ─▶ crypto workers ─▶ mixing ─▶ egress queues ─▶ links
//!  (gateway: clients ─┘                   └─▶ mailboxes ─▶ clients' pulls)
//! ```

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::{Duration, Instant};

use aegis_directory::config::{generate_key, load_key};
use aegis_link::Multiaddr;
use aegis_mix_packet::{Geometry, NodeId, SphinxPublicKey, SphinxSecret};
use axum::Router;
use axum::extract::State;
use axum::http::{StatusCode, header};
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use tokio::sync::{mpsc, watch};
use tracing::{info, warn};

use crate::config::{DB_DIR, KEY_FILE, NodeConfig};
use crate::cover::{self, Loops};
use crate::egress::Egress;
use crate::keys::KeyRing;
use crate::mailbox;
use crate::metrics::{DropReason, NodeMetrics};
use crate::state::{Shared, Topologies, now_ms};
use crate::store::NodeStore;
use crate::sync::DirectorySync;
use crate::workers::{self, WorkerContext};
use crate::{gateway, ingress, mixstage};
use aegis_link::Host;
use aegis_mix_packet::access::mailbox_id_for;

/// Why a node could not start.
#[derive(Debug, thiserror::Error)]
pub enum NodeError {
    /// The identity key could not be read.
    #[error("identity key: {0}")]
    Key(String),
    /// The database could not be opened.
    #[error(transparent)]
    Store(#[from] crate::store::StoreError),
    /// The link layer could not start.
    #[error(transparent)]
    Link(#[from] aegis_link::LinkError),
    /// A listener or thread could not be set up.
    #[error("{0}")]
    Setup(String),
}

/// A node running in this process.
pub struct RunningNode {
    shared: Arc<Shared>,
    shutdown: watch::Sender<bool>,
    tasks: Vec<tokio::task::JoinHandle<()>>,
    threads: Vec<std::thread::JoinHandle<()>>,
    ingress: Option<crate::ingress::IngressQueue>,
    /// Where libp2p listens (with the real port).
    pub listen: Multiaddr,
    /// Where `/metrics` and `/health` are served.
    pub metrics_addr: SocketAddr,
}

/// Loads the identity key, creating it on first start.
pub fn load_or_create_identity(
    config: &NodeConfig,
) -> Result<ed25519_dalek::SigningKey, NodeError> {
    let path = config.data_dir.join(KEY_FILE);
    if path.exists() {
        load_key(&path).map_err(|e| NodeError::Key(e.to_string()))
    } else {
        std::fs::create_dir_all(&config.data_dir).map_err(|e| NodeError::Key(e.to_string()))?;
        generate_key(&path).map_err(|e| NodeError::Key(e.to_string()))
    }
}

impl RunningNode {
    /// Starts every stage. The node joins the network as soon as the
    /// authorities answer.
    pub async fn start(config: NodeConfig) -> Result<RunningNode, NodeError> {
        let identity = load_or_create_identity(&config)?;
        let store = NodeStore::open(&config.data_dir.join(DB_DIR))?;
        let mut rng = rand::rng();
        let mut loop_bytes = [0u8; 32];
        rand::Rng::fill_bytes(&mut rng, &mut loop_bytes);
        let loop_secret = SphinxSecret::from(loop_bytes);
        let loop_public = SphinxPublicKey::from(&loop_secret);
        let mut loop_mailbox_key = [0u8; 32];
        rand::Rng::fill_bytes(&mut rng, &mut loop_mailbox_key);
        let id = NodeId(identity.verifying_key().to_bytes());
        let metrics = NodeMetrics::new();
        let shared = Arc::new(Shared {
            geometry: Geometry::STANDARD,
            role: config.role,
            keys: KeyRing::default(),
            store,
            metrics,
            topologies: std::sync::RwLock::new(Topologies::default()),
            schedule: std::sync::RwLock::new(None),
            loop_secret,
            loop_public,
            loop_mailbox: mailbox_id_for(&loop_mailbox_key),
            started: Instant::now(),
            identity,
            id,
            config,
        });
        // Keys and filters from before a restart.
        let (ring, fresh) = KeyRing::load(&shared.store, &mut rng, shared.filter_sizing())?;
        if fresh > 0 {
            warn!(
                fresh,
                "replay filters missing for stored keys; started empty ones"
            );
        }
        for epoch in ring.epochs() {
            if let Some(slot) = ring.get(epoch) {
                shared.keys.adopt(epoch, slot);
            }
        }

        let (shutdown, shutdown_rx) = watch::channel(false);
        let listen: Multiaddr = shared
            .config
            .listen
            .parse()
            .map_err(|_| NodeError::Setup("listen address".into()))?;
        let (host, swarm_task) = Host::start_limited(
            &shared.identity,
            Some(listen),
            shared.config.connection_limits(),
            shared.metrics.link_refusals.clone(),
            shutdown_rx.clone(),
        )?;
        let listen = host
            .listen_address()
            .await
            .ok_or_else(|| NodeError::Setup("libp2p did not start listening".into()))?;

        let (ingress_tx, ingress_rx) = crossbeam_channel::bounded(shared.config.ingress_queue);
        // Batches of up to HANDOFF_BATCH packets: at most
        // min(mix_capacity, 65 536) packets wait between the workers and
        // the mixer.
        let (mix_tx, mix_rx) =
            mpsc::channel((shared.config.mix_capacity.min(65_536) / workers::HANDOFF_BATCH).max(1));
        let egress = Arc::new(Egress::new(
            shared.clone(),
            host.clone(),
            shutdown_rx.clone(),
        ));
        let loops = Arc::new(Loops::default());
        let workers = if shared.config.workers == 0 {
            std::thread::available_parallelism().map_or(1, |n| n.get())
        } else {
            shared.config.workers
        };
        let mut mailbox_thread = None;
        let mailboxes = if shared.role == aegis_directory::Role::Gateway {
            let (handle, thread) =
                mailbox::spawn(shared.clone()).map_err(|e| NodeError::Setup(e.to_string()))?;
            mailbox_thread = Some(thread);
            Some(handle)
        } else {
            None
        };
        let mut threads = workers::spawn(
            workers,
            ingress_rx,
            Arc::new(WorkerContext {
                shared: shared.clone(),
                mix: mix_tx,
                loops: loops.clone(),
                mailboxes,
            }),
        )
        .map_err(|e| NodeError::Setup(e.to_string()))?;
        // Joined after the workers: it ends when their handles are gone,
        // having stored every deposit they queued.
        threads.extend(mailbox_thread);

        let metrics_listener = tokio::net::TcpListener::bind(shared.config.metrics_listen)
            .await
            .map_err(|e| NodeError::Setup(format!("metrics listener: {e}")))?;
        let metrics_addr = metrics_listener
            .local_addr()
            .map_err(|e| NodeError::Setup(e.to_string()))?;

        let mut tasks = vec![swarm_task];
        let sync = DirectorySync::new(shared.clone(), host.clone()).map_err(NodeError::Setup)?;
        tasks.push(tokio::spawn(sync.run(shutdown_rx.clone())));
        tasks.push(tokio::spawn(mixstage::run(
            shared.clone(),
            mix_rx,
            egress.clone(),
            shutdown_rx.clone(),
        )));
        {
            let (shared, host, tx, rx) = (
                shared.clone(),
                host.clone(),
                ingress_tx.clone(),
                shutdown_rx.clone(),
            );
            tasks.push(tokio::spawn(async move {
                if let Err(error) = ingress::run(shared, host, tx, rx).await {
                    warn!(%error, "mix ingress stopped");
                }
            }));
        }
        if shared.role == aegis_directory::Role::Gateway {
            let (shared, host, tx, rx) = (
                shared.clone(),
                host.clone(),
                ingress_tx.clone(),
                shutdown_rx.clone(),
            );
            tasks.push(tokio::spawn(async move {
                if let Err(error) = gateway::run(shared, host, tx, rx).await {
                    warn!(%error, "client access stopped");
                }
            }));
        }
        tasks.push(tokio::spawn(cover::run(
            shared.clone(),
            egress.clone(),
            loops,
            shutdown_rx.clone(),
        )));
        tasks.push(tokio::spawn(housekeeping(
            shared.clone(),
            egress,
            shutdown_rx.clone(),
        )));
        let router = Router::new()
            .route(aegis_directory::api::METRICS, get(metrics_handler))
            .route(aegis_directory::api::HEALTH, get(health_handler))
            .with_state(shared.clone());
        let mut http_shutdown = shutdown_rx.clone();
        tasks.push(tokio::spawn(async move {
            let _ = axum::serve(metrics_listener, router)
                .with_graceful_shutdown(async move {
                    let _ = http_shutdown.changed().await;
                })
                .await;
        }));
        info!(role = ?shared.role, workers, "node started");
        Ok(RunningNode {
            shared,
            shutdown,
            tasks,
            threads,
            ingress: Some(ingress_tx),
            listen,
            metrics_addr,
        })
    }

    /// The node's identity.
    pub fn id(&self) -> NodeId {
        self.shared.id
    }

    /// The node's metrics.
    pub fn metrics(&self) -> &NodeMetrics {
        &self.shared.metrics
    }

    /// The epoch clock the node runs, once learnt from signed statements.
    pub fn schedule(&self) -> Option<aegis_directory::Schedule> {
        self.shared.schedule()
    }

    /// The epochs whose Sphinx keys the node holds, oldest first.
    pub fn key_epochs(&self) -> Vec<u64> {
        self.shared.keys.epochs()
    }

    /// Bytes the node's replay filters take together.
    pub fn replay_filter_bytes(&self) -> u64 {
        self.shared.keys.filter_bytes()
    }

    /// The newest consensus epoch held, if any.
    pub fn consensus_epoch(&self) -> Option<u64> {
        self.shared.topologies().latest().map(|t| t.epoch)
    }

    /// Stops every stage, then persists the replay filters and flushes the
    /// database (keys and mailboxes are written as they change).
    pub async fn shutdown(mut self) {
        let _ = self.shutdown.send(true);
        for task in self.tasks.drain(..) {
            let _ = tokio::time::timeout(Duration::from_secs(5), task).await;
        }
        // Closing the last sender ends the workers' loop.
        self.ingress.take();
        let threads = std::mem::take(&mut self.threads);
        let _ = tokio::task::spawn_blocking(move || {
            for t in threads {
                let _ = t.join();
            }
        })
        .await;
        persist(&self.shared);
        info!("node stopped; keys, replay filters and mailboxes are on disk");
    }
}

fn persist(shared: &Shared) {
    if let Err(error) = shared.keys.persist_filters(&shared.store) {
        warn!(%error, "saving replay filters failed");
    }
    if let Err(error) = shared.store.flush() {
        warn!(%error, "flushing the database failed");
    }
}

/// How often a gateway compacts away the deletion markers of delivered and
/// expired mailbox entries.
const PURGE_EVERY: Duration = Duration::from_secs(3_600);

/// Periodic work: replay-filter snapshots, mailbox expiry and purge, queue
/// gauges.
async fn housekeeping(
    shared: Arc<Shared>,
    egress: Arc<Egress>,
    mut shutdown: watch::Receiver<bool>,
) {
    let snapshot_every = Duration::from_secs(shared.config.filter_snapshot_secs);
    let mut last_snapshot = Instant::now();
    let mut last_purge = Instant::now();
    let retention_ms = (shared.config.mailbox_retention_hours * 3_600_000.0) as u64;
    loop {
        tokio::select! {
            _ = shutdown.changed() => return,
            _ = tokio::time::sleep(Duration::from_secs(1)) => {}
        }
        shared.metrics.egress_depth.set(egress.depth() as i64);
        if last_snapshot.elapsed() >= snapshot_every {
            last_snapshot = Instant::now();
            let purge = last_purge.elapsed() >= PURGE_EVERY;
            if purge {
                last_purge = Instant::now();
            }
            let shared = shared.clone();
            let _ = tokio::task::spawn_blocking(move || {
                if let Err(error) = shared.keys.persist_filters(&shared.store) {
                    warn!(%error, "saving replay filters failed");
                }
                if shared.role == aegis_directory::Role::Gateway {
                    match shared.store.expire(now_ms().saturating_sub(retention_ms)) {
                        Ok(n) => {
                            shared
                                .metrics
                                .dropped
                                .get_or_create(&crate::metrics::ReasonLabel {
                                    reason: DropReason::expired,
                                })
                                .inc_by(n as u64);
                        }
                        Err(error) => warn!(%error, "mailbox expiry failed"),
                    }
                    if purge && let Err(error) = shared.store.purge_deleted() {
                        warn!(%error, "purging deleted mailbox entries failed");
                    }
                }
            })
            .await;
        }
    }
}

async fn metrics_handler(State(shared): State<Arc<Shared>>) -> Response {
    (
        [(
            header::CONTENT_TYPE,
            "application/openmetrics-text; version=1.0.0; charset=utf-8",
        )],
        shared.metrics.encode(),
    )
        .into_response()
}

async fn health_handler(State(shared): State<Arc<Shared>>) -> Response {
    let epoch = shared.epoch();
    let current = epoch.and_then(|e| shared.topologies().get(e));
    let listed = current
        .as_ref()
        .is_some_and(|t| t.node(&shared.id).is_some());
    let body = serde_json::json!({
        "role": format!("{:?}", shared.role),
        "epoch": epoch,
        "consensus": current.as_ref().map(|t| t.epoch),
        "listed": listed,
        "key_epochs": shared.keys.epochs(),
    });
    let status = if listed {
        StatusCode::OK
    } else {
        StatusCode::SERVICE_UNAVAILABLE
    };
    (status, axum::Json(body)).into_response()
}
