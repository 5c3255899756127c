//! The authority server: the [`Authority`] state machine on tokio, with the
//! HTTP API, RocksDB persistence, peer exchange and metrics.
//!
//! The state machine sits behind one mutex; every input is handled with the
//! wall-clock time read here, and the outputs are carried out here: records
//! are written to the store before anything is sent, votes and signatures
//! are pushed to every peer, missing signatures and documents are pulled
//! from peers, outcomes are logged and counted.

use crate::api::unix_now_ms as now_ms;
use std::net::SocketAddr;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::Duration;

use axum::Router;
use axum::body::Bytes;
use axum::extract::rejection::BytesRejection;
use axum::extract::{ConnectInfo, DefaultBodyLimit, Path, State};
use axum::http::{StatusCode, header};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use serde::Serialize;
use tokio::net::TcpListener;
use tokio::sync::oneshot;
use tokio::task::JoinHandle;
use tracing::{debug, info, warn};

use crate::admission::{Admission, SourceQuota};
use crate::api;
use crate::authority::{
    Authority, AuthorityConfig, Input, Output, Rejection, RoundOutcome, RoundStatus,
};
use crate::clock::SignedClock;
use crate::codec;
use crate::config::{Config, ConfigError, DB_DIR, KEY_FILE, load_key};
use crate::consensus::{DocumentSignature, SignedConsensus};
use crate::constants::{
    DOCUMENTS_KEPT, MAX_AUTHORITIES, MAX_DESCRIPTOR_BYTES, MAX_DOCUMENT_BYTES, MAX_SIGNATURE_BYTES,
};
use crate::descriptor::SignedDescriptor;
use crate::fetch::{Fetcher, read_limited};
use crate::metrics::{Metrics, ReasonLabel};
use crate::store::{Store, StoreError};
use crate::verify::Verifier;
use crate::vote::SignedVote;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;

mod page;
mod reach;
mod routes;
use routes::router;

/// Why the server could not start.
#[derive(Debug, thiserror::Error)]
pub enum ServerError {
    /// Configuration or key problem.
    #[error(transparent)]
    Config(#[from] ConfigError),
    /// Database problem.
    #[error(transparent)]
    Store(#[from] StoreError),
    /// Socket problem.
    #[error("listener: {0}")]
    Io(#[from] std::io::Error),
    /// HTTP client problem.
    #[error("http client: {0}")]
    Client(String),
}

struct Peer {
    name: String,
    url: String,
}

struct Shared {
    name: String,
    authority: Mutex<Authority>,
    store: Store,
    metrics: Metrics,
    peers: Vec<Peer>,
    /// The pinned keys of the other authorities: the only voters.
    peer_keys: Vec<[u8; 32]>,
    client: reqwest::Client,
    fetcher: Fetcher,
    /// This authority's signed epoch clock, as served.
    clock: Vec<u8>,
    /// The admission policy (for the per-source upload limit).
    admission: Admission,
    /// Descriptor uploads per source address this epoch.
    sources: Mutex<SourceQuota<std::net::IpAddr>>,
    /// Nodes whose published addresses answered, if dialling back is on.
    reached: Option<reach::Reached>,
    stopped: AtomicBool,
}

/// A running authority; dropping it without [`RunningAuthority::shutdown`]
/// leaves its tasks running.
pub struct RunningAuthority {
    addr: SocketAddr,
    shared: Arc<Shared>,
    stop_http: oneshot::Sender<()>,
    http: JoinHandle<()>,
    ticker: JoinHandle<()>,
}

impl Shared {
    fn authority(&self) -> MutexGuard<'_, Authority> {
        // A panic while holding the lock cannot leave the state machine
        // half-updated in a way later inputs care about; keep serving.
        self.authority
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
    }

    fn feed(self: &Arc<Self>, input: Input) -> Result<(), Rejection> {
        let outputs = self.authority().handle(now_ms(), input)?;
        self.apply(outputs);
        Ok(())
    }

    fn apply(self: &Arc<Self>, outputs: Vec<Output>) {
        for output in outputs {
            match output {
                Output::Store(record) => {
                    if let Err(e) = self.store.put(&record) {
                        self.metrics.store_errors.inc();
                        warn!(error = %e, "could not persist a record");
                    }
                }
                Output::SendVote(vote) => self.push(api::VOTE, vote.to_bytes()),
                Output::Equivocated(proof) => warn!(
                    authority = %hex::encode(proof.authority()),
                    epoch = proof.epoch(),
                    "an authority sent two different votes; it is left out of the round and the proof is published"
                ),
                Output::SendSignature(signature) => self.push(api::SIGNATURE, signature.to_bytes()),
                Output::Publish(doc) => self.on_publish(&doc),
                Output::FetchSignatures { epoch } => self.pull_signatures(epoch),
                Output::FetchDocument { epoch } => self.pull_document(epoch),
                Output::RoundFailed { epoch, reason } => {
                    warn!(epoch, %reason, "no consensus for this epoch; the previous document stays valid until it expires");
                    self.metrics.round("failed");
                }
            }
        }
    }

    fn on_publish(&self, doc: &SignedConsensus) {
        let epoch = doc.body.epoch;
        let outcome = self
            .authority()
            .rounds()
            .into_iter()
            .find(|r| r.epoch == epoch)
            .map(|r| r.outcome);
        let label = if matches!(outcome, Some(RoundOutcome::Adopted { .. })) {
            "adopted"
        } else {
            "published"
        };
        info!(
            epoch,
            outcome = label,
            hash = %hex::encode(&doc.body.hash()[..8]),
            signatures = doc.signatures.len(),
            mixes = doc.body.mixes().count(),
            gateways = doc.body.gateways.len(),
            "consensus document available"
        );
        self.metrics.round(label);
        self.metrics.latest_document_epoch.set(epoch as i64);
        let floor = epoch.saturating_sub(2);
        if let Err(e) = self
            .store
            .prune(floor, epoch.saturating_sub(DOCUMENTS_KEPT))
        {
            warn!(error = %e, "could not prune old records");
        }
    }

    fn push(self: &Arc<Self>, route: &'static str, body: Vec<u8>) {
        for peer in &self.peers {
            let shared = Arc::clone(self);
            let url = api::url(&peer.url, route);
            let name = peer.name.clone();
            let body = body.clone();
            tokio::spawn(async move {
                // Two attempts: a peer restarting for a second still gets it.
                for attempt in 0..2 {
                    if shared.stopped.load(Ordering::Relaxed) {
                        return;
                    }
                    match shared.client.post(&url).body(body.clone()).send().await {
                        Ok(r) if r.status().is_success() || r.status().is_client_error() => {
                            if r.status().is_client_error() {
                                debug!(peer = %name, route, status = %r.status(), "peer refused");
                            }
                            return;
                        }
                        Ok(_) | Err(_) => {
                            shared.metrics.peer_errors.inc();
                            debug!(peer = %name, route, attempt, "push to peer failed");
                            tokio::time::sleep(Duration::from_millis(200)).await;
                        }
                    }
                }
            });
        }
    }

    fn pull_signatures(self: &Arc<Self>, epoch: u64) {
        for peer in &self.peers {
            let shared = Arc::clone(self);
            let url = api::url(&peer.url, &api::round_signatures_path(epoch));
            tokio::spawn(async move {
                let body = match shared.client.get(&url).send().await {
                    Ok(r) if r.status().is_success() => {
                        read_limited(r, MAX_AUTHORITIES * MAX_SIGNATURE_BYTES)
                            .await
                            .ok()
                    }
                    _ => None,
                };
                let Some(signatures) =
                    body.and_then(|b| codec::decode::<Vec<DocumentSignature>>(&b, b.len()).ok())
                else {
                    shared.metrics.peer_errors.inc();
                    return;
                };
                if shared.stopped.load(Ordering::Relaxed) {
                    return;
                }
                for signature in signatures.into_iter().take(MAX_AUTHORITIES) {
                    let _ = shared.feed(Input::Signature(signature));
                }
            });
        }
    }

    fn pull_document(self: &Arc<Self>, epoch: u64) {
        let shared = Arc::clone(self);
        tokio::spawn(async move {
            match shared.fetcher.fetch(Some(epoch), now_ms()).await {
                Ok(doc) if !shared.stopped.load(Ordering::Relaxed) => {
                    if let Err(e) = shared.feed(Input::Document(doc)) {
                        debug!(epoch, error = %e, "fetched document not adopted");
                    }
                }
                Ok(_) => {}
                Err(e) => debug!(epoch, error = %e, "no peer had the document yet"),
            }
        });
    }
}

impl RunningAuthority {
    /// The address the HTTP API listens on.
    pub fn addr(&self) -> SocketAddr {
        self.addr
    }

    /// Stops serving, stops the round, and closes the database.
    pub async fn shutdown(self) {
        self.shared.stopped.store(true, Ordering::Relaxed);
        self.ticker.abort();
        let _ = self.ticker.await;
        let _ = self.stop_http.send(());
        let mut http = self.http;
        if tokio::time::timeout(Duration::from_secs(2), &mut http)
            .await
            .is_err()
        {
            warn!("http server did not stop in time; closing its connections");
            http.abort();
            let _ = http.await;
        }
        self.shared.store.close();
    }
}

/// Starts an authority on an already bound listener (lets tests bind port 0
/// first and then write the peers' URLs into each configuration).
pub async fn spawn(config: Config, listener: TcpListener) -> Result<RunningAuthority, ServerError> {
    config.check()?;
    let key = load_key(&config.data_dir.join(KEY_FILE))?;
    let peer_keys = config.peer_keys();
    let store = Store::open(&config.data_dir.join(DB_DIR))?;
    let clock = SignedClock::create(&key, config.schedule()).to_bytes();
    let directory = config.directory(key.verifying_key().to_bytes());
    let mut authority = Authority::new(AuthorityConfig {
        key,
        authorities: peer_keys.clone(),
        schedule: config.schedule(),
        parameters: config.network_parameters()?,
        admission: config.admission.clone(),
        directory,
    });
    let (records, undecodable) = store.load()?;
    let total = records.len();
    let mut refused = 0;
    for record in records {
        if authority.restore(record).is_err() {
            refused += 1;
        }
    }
    info!(name = %config.name, restored = total - refused, refused, undecodable, "authority state loaded");

    let mut verifier_keys = peer_keys;
    verifier_keys.push(authority.public_key());
    let peer_urls: Vec<String> = config
        .peers
        .iter()
        .map(|p| p.authority.url.clone())
        .collect();
    let fetcher = Fetcher::new(
        peer_urls,
        Verifier::new(verifier_keys),
        Duration::from_secs(5),
    )
    .map_err(|e| ServerError::Client(e.to_string()))?;
    let client = reqwest::Client::builder()
        .timeout(Duration::from_secs(5))
        .pool_max_idle_per_host(0)
        .build()
        .map_err(|e| ServerError::Client(e.to_string()))?;
    let tick_every = Duration::from_millis((config.epoch_length_ms / 64).clamp(20, 1_000));
    let shared = Arc::new(Shared {
        name: config.name.clone(),
        authority: Mutex::new(authority),
        store,
        metrics: Metrics::new(),
        peers: config
            .peers
            .iter()
            .map(|p| Peer {
                name: p.name.clone(),
                url: p.authority.url.clone(),
            })
            .collect(),
        peer_keys: config.peer_keys(),
        client,
        fetcher,
        clock,
        admission: config.admission.clone(),
        sources: Mutex::new(SourceQuota::default()),
        reached: config.dial_back.then(reach::Reached::default),
        stopped: AtomicBool::new(false),
    });

    let addr = listener.local_addr()?;
    let (stop_http, stopped) = oneshot::channel::<()>();
    let app = router(Arc::clone(&shared));
    let http = tokio::spawn(async move {
        let app = app.into_make_service_with_connect_info::<SocketAddr>();
        let serve = axum::serve(listener, app).with_graceful_shutdown(async move {
            let _ = stopped.await;
        });
        if let Err(e) = serve.await {
            warn!(error = %e, "http server stopped");
        }
    });
    let ticking = Arc::clone(&shared);
    let ticker = tokio::spawn(async move {
        let mut interval = tokio::time::interval(tick_every);
        interval.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Skip);
        loop {
            interval.tick().await;
            let now = now_ms();
            let outputs = ticking
                .authority()
                .handle(now, Input::Tick)
                .unwrap_or_default();
            ticking
                .metrics
                .epoch
                .set(ticking.authority().schedule().epoch_at(now) as i64);
            ticking.apply(outputs);
        }
    });
    info!(name = %shared.name, %addr, "authority listening");
    Ok(RunningAuthority {
        addr,
        shared,
        stop_http,
        http,
        ticker,
    })
}

/// Waits for SIGTERM or Ctrl-C (SIGINT): what stops a service gracefully.
pub async fn shutdown_signal() {
    match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
        Ok(mut term) => {
            tokio::select! {
                _ = term.recv() => {}
                _ = tokio::signal::ctrl_c() => {}
            }
        }
        Err(_) => {
            let _ = tokio::signal::ctrl_c().await;
        }
    }
}

/// Runs an authority from its configuration until SIGTERM or Ctrl-C.
pub async fn run(config: Config) -> Result<(), ServerError> {
    let listener = TcpListener::bind(config.listen).await?;
    let running = spawn(config, listener).await?;
    shutdown_signal().await;
    info!("shutting down");
    running.shutdown().await;
    Ok(())
}
