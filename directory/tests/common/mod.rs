//! Helpers for tests that run authorities on loopback.
#![allow(clippy::unwrap_used, clippy::expect_used, missing_docs, dead_code)]

use std::future::Future;
use std::net::SocketAddr;
use std::time::{Duration, Instant};

use aegis_directory::config::{KEY_FILE, generate_key};
use aegis_directory::server::spawn;
use aegis_directory::{
    Config, DescriptorBody, EpochSphinxKey, PeerConfig, Role, RunningAuthority, Schedule,
    SignedDescriptor, TrustedAuthority, api,
};
use ed25519_dalek::SigningKey;
use tempfile::TempDir;
use tokio::net::TcpListener;

pub const EPOCH_MS: u64 = 2_000;

pub use aegis_directory::api::unix_now_ms as now_ms;

/// One authority's setup: its directory, config and public key.
pub struct Slot {
    pub dir: TempDir,
    pub config: Config,
    pub public: [u8; 32],
}

impl Slot {
    pub fn url(&self) -> String {
        format!("http://{}", self.config.listen)
    }

    pub async fn start(&self) -> RunningAuthority {
        let listener = TcpListener::bind(self.config.listen).await.unwrap();
        spawn(self.config.clone(), listener).await.unwrap()
    }
}

/// Configures `n` authorities on loopback with genesis one second from now,
/// so that starting them and uploading fit in epoch 1's upload window even
/// on a loaded machine.
pub async fn cluster(n: usize) -> (Vec<Slot>, Schedule) {
    let genesis = now_ms() + 1_000;
    let mut slots = Vec::new();
    for i in 0..n {
        // Bind port 0 to learn a free port, then release it for the server.
        let addr: SocketAddr = TcpListener::bind("127.0.0.1:0")
            .await
            .unwrap()
            .local_addr()
            .unwrap();
        let dir = tempfile::tempdir().unwrap();
        let key = generate_key(&dir.path().join(KEY_FILE)).unwrap();
        let mut config = Config::new(&format!("a{i}"), addr, dir.path(), EPOCH_MS, genesis);
        // These tests upload descriptors of nodes that do not run; the
        // dial-back has its own test (`uploads.rs`).
        config.dial_back = false;
        slots.push(Slot {
            dir,
            config,
            public: key.verifying_key().to_bytes(),
        });
    }
    let peers: Vec<PeerConfig> = slots
        .iter()
        .map(|s| PeerConfig {
            name: s.config.name.clone(),
            authority: TrustedAuthority {
                url: s.url(),
                public_key: s.public,
            },
        })
        .collect();
    for (i, slot) in slots.iter_mut().enumerate() {
        slot.config.peers = peers
            .iter()
            .enumerate()
            .filter(|(j, _)| *j != i)
            .map(|(_, p)| p.clone())
            .collect();
    }
    (
        slots,
        Schedule {
            genesis_ms: genesis,
            epoch_length_ms: EPOCH_MS,
        },
    )
}

pub fn node_key(seed: u8) -> SigningKey {
    SigningKey::from_bytes(&[seed; 32])
}

pub fn descriptor(key: &SigningKey, epoch: u64, role: Role, revision: u64) -> SignedDescriptor {
    DescriptorBody {
        identity: key.verifying_key().to_bytes(),
        epoch,
        revision,
        role,
        addresses: vec!["/ip4/127.0.0.1/tcp/4000".into()],
        sphinx_keys: [0, 1, 2].map(|i| EpochSphinxKey {
            epoch: epoch + i,
            key: [7 + i as u8; 32],
        }),
        kem_keys: vec![],
        version: "aegis-node/0.1.0".into(),
    }
    .sign(key)
}

pub async fn post(url: &str, body: Vec<u8>) -> (u16, String) {
    let r = reqwest::Client::new()
        .post(url)
        .body(body)
        .send()
        .await
        .unwrap();
    (r.status().as_u16(), r.text().await.unwrap())
}

pub async fn get(url: &str) -> (u16, Vec<u8>) {
    let r = reqwest::Client::new().get(url).send().await.unwrap();
    (r.status().as_u16(), r.bytes().await.unwrap().to_vec())
}

/// Uploads descriptors of nodes 1..=7 (node 7 a gateway) for `epoch` to each URL.
pub async fn upload_nodes(urls: &[String], epoch: u64) {
    for seed in 1..=7u8 {
        let role = if seed == 7 { Role::Gateway } else { Role::Mix };
        let bytes = descriptor(&node_key(seed), epoch, role, 0).to_bytes();
        for url in urls {
            let (status, text) = post(&api::url(url, api::DESCRIPTOR), bytes.clone()).await;
            assert!(status == 200 || status == 409, "{status} {text}");
        }
    }
}

/// Polls `check` until it returns Some, or panics after `timeout`.
pub async fn wait_for<T, F, Fut>(timeout: Duration, what: &str, mut check: F) -> T
where
    F: FnMut() -> Fut,
    Fut: Future<Output = Option<T>>,
{
    let start = Instant::now();
    loop {
        if let Some(v) = check().await {
            return v;
        }
        assert!(start.elapsed() < timeout, "timed out waiting for {what}");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

/// Waits for the document of `epoch` at `url` and returns its bytes.
pub async fn document(url: &str, epoch: u64) -> Vec<u8> {
    let u = api::url(url, &api::document_path(Some(epoch)));
    wait_for(Duration::from_millis(3 * EPOCH_MS), &u.clone(), || {
        let u = u.clone();
        async move {
            let (status, body) = get(&u).await;
            (status == 200).then_some(body)
        }
    })
    .await
}

/// Sleeps until `t` (Unix ms).
pub async fn sleep_until_ms(t: u64) {
    let now = now_ms();
    if t > now {
        tokio::time::sleep(Duration::from_millis(t - now)).await;
    }
}
