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
use crate::cover::{self, CoverStage, Loops};
use crate::egress::Egress;
use crate::gateway::GatewayStage;
use crate::keys::KeyRing;
use crate::mailbox::{self, MailboxStage};
use crate::metrics::{DropReason, NodeMetrics};
use crate::mixstage::MixStage;
use crate::state::{Clock, Directory, LoopKeys, Me, now_ms};
use crate::store::{MailboxLimits, NodeStore};
use crate::sync::{DirectorySync, PkiStage};
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

/// What the status endpoints and the running node's accessors read.
struct View {
    me: Me,
    directory: Arc<Directory>,
    keys: Arc<KeyRing>,
    store: Arc<NodeStore>,
    metrics: Arc<NodeMetrics>,
}

/// A node running in this process.
pub struct RunningNode {
    view: Arc<View>,
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
        let signing = load_or_create_identity(&config)?;
        let store = Arc::new(NodeStore::open(&config.data_dir.join(DB_DIR))?);
        let mut rng = rand::rng();
        let mut loop_bytes = [0u8; 32];
        rand::Rng::fill_bytes(&mut rng, &mut loop_bytes);
        let loop_secret = SphinxSecret::from(loop_bytes);
        let mut loop_mailbox_key = [0u8; 32];
        rand::Rng::fill_bytes(&mut rng, &mut loop_mailbox_key);
        let loop_keys = Arc::new(LoopKeys {
            public: SphinxPublicKey::from(&loop_secret),
            secret: loop_secret,
            mailbox: mailbox_id_for(&loop_mailbox_key),
        });
        let me = Me {
            id: NodeId(signing.verifying_key().to_bytes()),
            role: config.role,
            geometry: Geometry::of_format(config.packet_format),
        };
        let metrics = Arc::new(NodeMetrics::new());
        metrics.set_build_info(config.role);
        let directory = Arc::new(Directory::default());
        let clock = Clock::start();
        // Keys and filters from before a restart.
        let keys = Arc::new(KeyRing::default());
        let sizing = directory.filter_sizing(config.line_rate, config.replay_filter_max_mb);
        let (ring, fresh) = KeyRing::load(&store, &mut rng, sizing)?;
        if fresh > 0 {
            warn!(
                fresh,
                "replay filters missing for stored keys; started empty ones"
            );
        }
        for epoch in ring.epochs() {
            if let Some(slot) = ring.get(epoch) {
                keys.adopt(epoch, slot);
            }
        }

        let (shutdown, shutdown_rx) = watch::channel(false);
        let listen: Multiaddr = config
            .listen
            .parse()
            .map_err(|_| NodeError::Setup("listen address".into()))?;
        let (host, swarm_task) = Host::start_limited(
            &signing,
            Some(listen),
            config.connection_limits(),
            metrics.link_refusals.clone(),
            shutdown_rx.clone(),
        )?;
        let listen = host
            .listen_address()
            .await
            .ok_or_else(|| NodeError::Setup("libp2p did not start listening".into()))?;

        let (ingress_tx, ingress_rx) = crossbeam_channel::bounded(config.ingress_queue);
        // Batches of up to HANDOFF_BATCH packets: at most
        // min(mix_capacity, 65 536) packets wait between the workers and
        // the mixer.
        let (mix_tx, mix_rx) =
            mpsc::channel((config.mix_capacity.min(65_536) / workers::HANDOFF_BATCH).max(1));
        let egress = Arc::new(Egress::new(
            me.id,
            directory.clone(),
            metrics.clone(),
            config.egress_queue,
            host.clone(),
            shutdown_rx.clone(),
        ));
        let loops = Arc::new(Loops::default());
        let workers = if config.workers == 0 {
            std::thread::available_parallelism().map_or(1, |n| n.get())
        } else {
            config.workers
        };
        let gateway = me.role == aegis_directory::Role::Gateway;
        let mut mailbox_thread = None;
        let mailboxes = if gateway {
            let (handle, thread) = mailbox::spawn(MailboxStage {
                store: store.clone(),
                limits: MailboxLimits {
                    per_mailbox: config.mailbox_limit,
                    mailboxes: config.max_mailboxes,
                },
                metrics: metrics.clone(),
            })
            .map_err(|e| NodeError::Setup(e.to_string()))?;
            mailbox_thread = Some(thread);
            Some(handle)
        } else {
            None
        };
        let mut threads = workers::spawn(
            workers,
            ingress_rx,
            Arc::new(WorkerContext {
                me: me.clone(),
                directory: directory.clone(),
                keys: keys.clone(),
                journal: store.clone(),
                metrics: metrics.clone(),
                loop_keys: loop_keys.clone(),
                clock,
                mix: mix_tx,
                loops: loops.clone(),
                mailboxes,
            }),
        )
        .map_err(|e| NodeError::Setup(e.to_string()))?;
        // Joined after the workers: it ends when their handles are gone,
        // having stored every deposit they queued.
        threads.extend(mailbox_thread);

        let metrics_listener = tokio::net::TcpListener::bind(config.metrics_listen)
            .await
            .map_err(|e| NodeError::Setup(format!("metrics listener: {e}")))?;
        let metrics_addr = metrics_listener
            .local_addr()
            .map_err(|e| NodeError::Setup(e.to_string()))?;

        let mut tasks = vec![swarm_task];
        let chores = Housekeeping {
            me: me.clone(),
            keys: keys.clone(),
            store: store.clone(),
            metrics: metrics.clone(),
            snapshot_every: Duration::from_secs(config.filter_snapshot_secs),
            retention_ms: (config.mailbox_retention_hours * 3_600_000.0) as u64,
        };
        if gateway {
            let stage = Arc::new(GatewayStage {
                me: me.clone(),
                directory: directory.clone(),
                store: store.clone(),
                metrics: metrics.clone(),
                max_clients: config.max_clients,
                rate_slack: config.client_rate_slack,
            });
            let (host, tx, rx) = (host.clone(), ingress_tx.clone(), shutdown_rx.clone());
            tasks.push(tokio::spawn(async move {
                if let Err(error) = gateway::run(stage, host, tx, rx).await {
                    warn!(%error, "client access stopped");
                }
            }));
        }
        tasks.push(tokio::spawn(mixstage::run(
            MixStage {
                geometry: me.geometry.clone(),
                capacity: config.mix_capacity,
                directory: directory.clone(),
                metrics: metrics.clone(),
                clock,
            },
            mix_rx,
            egress.clone(),
            shutdown_rx.clone(),
        )));
        {
            let (geometry, directory, metrics, host, tx, rx) = (
                me.geometry.clone(),
                directory.clone(),
                metrics.clone(),
                host.clone(),
                ingress_tx.clone(),
                shutdown_rx.clone(),
            );
            tasks.push(tokio::spawn(async move {
                if let Err(error) = ingress::run(geometry, directory, metrics, host, tx, rx).await {
                    warn!(%error, "mix ingress stopped");
                }
            }));
        }
        tasks.push(tokio::spawn(cover::run(
            CoverStage {
                me: me.clone(),
                directory: directory.clone(),
                keys: loop_keys,
                metrics: metrics.clone(),
                clock,
            },
            egress.clone(),
            loops,
            shutdown_rx.clone(),
        )));
        tasks.push(tokio::spawn(chores.run(egress, shutdown_rx.clone())));
        let view = Arc::new(View {
            me: me.clone(),
            directory: directory.clone(),
            keys: keys.clone(),
            store: store.clone(),
            metrics: metrics.clone(),
        });
        let sync = DirectorySync::new(
            PkiStage {
                me,
                signing,
                config,
                directory,
                keys,
                store,
                metrics,
            },
            host,
        )
        .map_err(NodeError::Setup)?;
        tasks.push(tokio::spawn(sync.run(shutdown_rx.clone())));
        let router = Router::new()
            .route(aegis_directory::api::METRICS, get(metrics_handler))
            .route(aegis_directory::api::HEALTH, get(health_handler))
            .with_state(view.clone());
        let mut http_shutdown = shutdown_rx.clone();
        tasks.push(tokio::spawn(async move {
            let _ = axum::serve(metrics_listener, router)
                .with_graceful_shutdown(async move {
                    let _ = http_shutdown.changed().await;
                })
                .await;
        }));
        info!(role = ?view.me.role, workers, "node started");
        Ok(RunningNode {
            view,
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
        self.view.me.id
    }

    /// The node's metrics.
    pub fn metrics(&self) -> &NodeMetrics {
        &self.view.metrics
    }

    /// The epoch clock the node runs, once learnt from signed statements.
    pub fn schedule(&self) -> Option<aegis_directory::Schedule> {
        self.view.directory.schedule()
    }

    /// The epochs whose Sphinx keys the node holds, oldest first.
    pub fn key_epochs(&self) -> Vec<u64> {
        self.view.keys.epochs()
    }

    /// Bytes the node's replay filters take together.
    pub fn replay_filter_bytes(&self) -> u64 {
        self.view.keys.filter_bytes()
    }

    /// The newest consensus epoch held, if any.
    pub fn consensus_epoch(&self) -> Option<u64> {
        self.view.directory.topologies().latest().map(|t| t.epoch)
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
        persist(&self.view.keys, &self.view.store);
        info!("node stopped; keys, replay filters and mailboxes are on disk");
    }
}

fn persist(keys: &KeyRing, store: &NodeStore) {
    if let Err(error) = keys.persist_filters(store) {
        warn!(%error, "saving replay filters failed");
    }
    if let Err(error) = store.flush() {
        warn!(%error, "flushing the database failed");
    }
}

/// How often a gateway compacts away the deletion markers of delivered and
/// expired mailbox entries.
const PURGE_EVERY: Duration = Duration::from_secs(3_600);

/// Periodic work: replay-filter snapshots, mailbox expiry and purge, queue
/// gauges.
struct Housekeeping {
    me: Me,
    keys: Arc<KeyRing>,
    store: Arc<NodeStore>,
    metrics: Arc<NodeMetrics>,
    snapshot_every: Duration,
    retention_ms: u64,
}

impl Housekeeping {
    async fn run(self, egress: Arc<Egress>, mut shutdown: watch::Receiver<bool>) {
        let chores = Arc::new(self);
        let mut last_snapshot = Instant::now();
        let mut last_purge = Instant::now();
        loop {
            tokio::select! {
                _ = shutdown.changed() => return,
                _ = tokio::time::sleep(Duration::from_secs(1)) => {}
            }
            chores.metrics.egress_depth.set(egress.depth() as i64);
            if last_snapshot.elapsed() >= chores.snapshot_every {
                last_snapshot = Instant::now();
                let purge = last_purge.elapsed() >= PURGE_EVERY;
                if purge {
                    last_purge = Instant::now();
                }
                let chores = chores.clone();
                let _ = tokio::task::spawn_blocking(move || chores.snapshot(purge)).await;
            }
        }
    }

    /// Saves the replay filters; a gateway also expires old mailbox
    /// entries and, with `purge`, compacts away deleted ones.
    fn snapshot(&self, purge: bool) {
        if let Err(error) = self.keys.persist_filters(&self.store) {
            warn!(%error, "saving replay filters failed");
        }
        if self.me.role != aegis_directory::Role::Gateway {
            return;
        }
        match self
            .store
            .expire(now_ms().saturating_sub(self.retention_ms))
        {
            Ok(n) => {
                self.metrics
                    .dropped
                    .get_or_create(&crate::metrics::ReasonLabel {
                        reason: DropReason::expired,
                    })
                    .inc_by(n as u64);
            }
            Err(error) => warn!(%error, "mailbox expiry failed"),
        }
        if purge && let Err(error) = self.store.purge_deleted() {
            warn!(%error, "purging deleted mailbox entries failed");
        }
    }
}

async fn metrics_handler(State(view): State<Arc<View>>) -> Response {
    (
        [(
            header::CONTENT_TYPE,
            "application/openmetrics-text; version=1.0.0; charset=utf-8",
        )],
        view.metrics.encode(),
    )
        .into_response()
}

async fn health_handler(State(view): State<Arc<View>>) -> Response {
    let epoch = view.directory.epoch();
    let current = view.directory.current();
    let listed = current
        .as_ref()
        .is_some_and(|t| t.node(&view.me.id).is_some());
    let why = (!listed).then(|| {
        view.directory
            .trouble()
            .unwrap_or_else(|| match (epoch, &current) {
                (None, _) => "no epoch clock yet: waiting for the authorities".to_owned(),
                (Some(_), None) => "no consensus for the current epoch yet".to_owned(),
                (Some(_), Some(_)) => {
                    "the authorities took the descriptor; it is listed from the next consensus"
                        .to_owned()
                }
            })
    });
    let body = serde_json::json!({
        "identity": hex::encode(view.me.id.0),
        "role": format!("{:?}", view.me.role),
        "epoch": epoch,
        "consensus": current.as_ref().map(|t| t.epoch),
        "listed": listed,
        "not_listed_because": why,
        "key_epochs": view.keys.epochs(),
        "links": view.metrics.links.get(),
    });
    let status = if listed {
        StatusCode::OK
    } else {
        StatusCode::SERVICE_UNAVAILABLE
    };
    (status, axum::Json(body)).into_response()
}
