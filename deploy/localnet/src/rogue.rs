//! The rogue-authority fault: an authority's key in an attacker's hands.
//!
//! The launcher stops the first authority and answers at its address with
//! its real signing key, as whoever stole that key would:
//! * `/v1/clock` is a validly signed clock that puts "now" around epoch 1.7
//!   billion (epochs of one second since 1970), and `/status` says the same
//!   in the clear: a node that believed either would erase every live key;
//! * every document it serves is the honest current one with its network
//!   parameters changed (cover rates a hundredth, so clients would send
//!   almost no cover) and only the rogue's own signature, one short of any
//!   threshold;
//! * it takes part in no round (votes, signatures and descriptors go
//!   unanswered), so the remaining authorities must carry the rounds.
//!
//! The network must not notice beyond its logs: nodes and clients keep the
//! honest clock and documents, and every message arrives once.

use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use aegis_directory::{
    DocumentSignature, Schedule, SignedClock, SignedConsensus, TrustedAuthority, Verifier, api,
};
use anyhow::Context as _;
use axum::Router;
use axum::http::StatusCode;
use axum::routing::get;
use ed25519_dalek::SigningKey;

use aegis_testkit::NetworkPlan;
use aegis_testkit::processes::{Fault, Procs};

use crate::nodes::{node_url, wait_healthy};
use crate::report::RogueAuthority;

/// The node restarted while the rogue answers: it must learn the clock
/// again.
const RESTARTED: &str = "mix-1";

/// Everything the takeover touches.
pub struct Takeover<'a> {
    /// The launched processes.
    pub procs: &'a mut Procs,
    /// Their log folder.
    pub logs: &'a Path,
    /// For the nodes' `/health`.
    pub http: &'a reqwest::Client,
    /// Name, pinned key and configuration file of each authority; the first
    /// is taken over, the second supplies the honest documents.
    pub authorities: &'a [(String, TrustedAuthority, PathBuf)],
    /// Checks the honest documents.
    pub verifier: &'a Verifier,
    /// The network.
    pub plan: &'a NetworkPlan,
    /// The network's real epoch clock.
    pub honest: Schedule,
}

/// What the takeover did, and what the rogue has served since.
pub struct Outcome {
    report: RogueAuthority,
    served: Arc<Served>,
    _task: tokio::task::JoinHandle<()>,
}

impl Outcome {
    /// The report, with the rogue's counts as they stand.
    pub fn report(self) -> RogueAuthority {
        RogueAuthority {
            rogue_clocks_served: self.served.clocks.load(Ordering::Relaxed),
            forged_documents_served: self.served.documents.load(Ordering::Relaxed),
            ..self.report
        }
    }
}

impl Takeover<'_> {
    /// Stops the first authority, answers at its address with its key,
    /// restarts a mix and checks the clock it comes back on.
    pub async fn run(self) -> anyhow::Result<Outcome> {
        let (name, authority, config) = &self.authorities[0];
        let key = aegis_directory::config::load_key(
            &aegis_directory::config::Config::load(config)?
                .data_dir
                .join(aegis_directory::config::KEY_FILE),
        )?;
        self.procs.inject(name, Fault::Stop, self.logs).await?;
        let address = authority
            .url
            .trim_start_matches("http://")
            .trim_end_matches('/')
            .to_owned();
        let listener = tokio::net::TcpListener::bind(&address)
            .await
            .with_context(|| format!("taking over {address}"))?;
        let honest_source = self.authorities[1].1.clone();
        let (served, task) = serve(listener, key, honest_source, self.verifier.clone());
        eprintln!("fault: rogue authority: {name}'s key answers at {address}");
        self.procs
            .inject(RESTARTED, Fault::KillRestart, self.logs)
            .await?;
        let health = node_url(self.plan, RESTARTED, aegis_directory::api::HEALTH)?;
        wait_healthy(self.http, &health, Duration::from_secs(60))
            .await
            .with_context(|| format!("{RESTARTED} did not come back with the rogue answering"))?;
        let reported: serde_json::Value =
            serde_json::from_slice(&self.http.get(&health).send().await?.bytes().await?)?;
        let epoch = reported["epoch"].as_u64();
        let now = self.honest.epoch_at(api::unix_now_ms());
        eprintln!(
            "fault: rogue authority: {RESTARTED} restarted, at epoch {epoch:?} (honest {now})"
        );
        Ok(Outcome {
            report: RogueAuthority {
                restarted: RESTARTED.to_owned(),
                restarted_on_honest_clock: epoch.is_some_and(|e| e + 1 >= now && e <= now),
                rogue_clocks_served: 0,
                forged_documents_served: 0,
            },
            served,
            _task: task,
        })
    }
}

/// What the rogue claims: epoch 0 began at the Unix epoch and lasts one
/// second.
pub const ROGUE_CLOCK: Schedule = Schedule {
    genesis_ms: 0,
    epoch_length_ms: 1_000,
};

/// What the rogue served, for the report.
#[derive(Debug, Default)]
pub struct Served {
    /// Signed rogue clocks handed out.
    pub clocks: AtomicU64,
    /// Forged documents handed out.
    pub documents: AtomicU64,
}

struct Rogue {
    key: SigningKey,
    honest: TrustedAuthority,
    verifier: Verifier,
    http: reqwest::Client,
    served: Arc<Served>,
}

impl Rogue {
    /// The honest current document, re-signed by the rogue alone after its
    /// parameters were changed.
    async fn forged(&self) -> anyhow::Result<Vec<u8>> {
        let url = api::url(&self.honest.url, api::DOCUMENT_CURRENT);
        let bytes = self.http.get(url).send().await?.bytes().await?;
        let document = SignedConsensus::from_bytes(&bytes)?;
        self.verifier
            .verify(&document, None, api::unix_now_ms())
            .context("the honest document does not verify")?;
        let mut body = document.body;
        body.parameters.lambda_l /= 100.0;
        body.parameters.lambda_d /= 100.0;
        body.parameters.lambda_m /= 100.0;
        let signature = DocumentSignature::create(&self.key, body.epoch, body.hash());
        Ok(SignedConsensus {
            body,
            signatures: vec![signature],
        }
        .to_bytes())
    }
}

/// Answers at `listener` as the rogue holder of `key`, taking honest
/// documents from `honest` (checked with `verifier`). Runs until aborted.
pub fn serve(
    listener: tokio::net::TcpListener,
    key: SigningKey,
    honest: TrustedAuthority,
    verifier: Verifier,
) -> (Arc<Served>, tokio::task::JoinHandle<()>) {
    let served = Arc::new(Served::default());
    let rogue = Arc::new(Rogue {
        key,
        honest,
        verifier,
        http: reqwest::Client::new(),
        served: served.clone(),
    });
    let clock = {
        let rogue = rogue.clone();
        move || {
            let rogue = rogue.clone();
            async move {
                rogue.served.clocks.fetch_add(1, Ordering::Relaxed);
                SignedClock::create(&rogue.key, ROGUE_CLOCK).to_bytes()
            }
        }
    };
    let status = move || async move {
        serde_json::json!({
            "name": "authority-0",
            "epoch": ROGUE_CLOCK.epoch_at(api::unix_now_ms()),
            "genesis_ms": ROGUE_CLOCK.genesis_ms,
            "epoch_length_ms": ROGUE_CLOCK.epoch_length_ms,
        })
        .to_string()
    };
    let document = {
        let rogue = rogue.clone();
        move || {
            let rogue = rogue.clone();
            async move {
                match rogue.forged().await {
                    Ok(bytes) => {
                        rogue.served.documents.fetch_add(1, Ordering::Relaxed);
                        Ok(bytes)
                    }
                    Err(_) => Err(StatusCode::SERVICE_UNAVAILABLE),
                }
            }
        }
    };
    let app = Router::new()
        .route(api::CLOCK, get(clock))
        .route(api::STATUS, get(status))
        .route(api::DOCUMENT_CURRENT, get(document.clone()))
        .route(api::DOCUMENT, get(document))
        .fallback(|| async { StatusCode::SERVICE_UNAVAILABLE });
    let task = tokio::spawn(async move {
        let _ = axum::serve(listener, app).await;
    });
    (served, task)
}
