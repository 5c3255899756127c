//! Only signed time: a node takes its epoch clock from a majority of its
//! pinned authorities' signed clocks (and then from each consensus), never
//! from an unsigned `/status`, so one rogue authority cannot make it erase
//! live keys, skip epochs or grow its replay filters.
#![allow(clippy::unwrap_used, clippy::expect_used, missing_docs)]

use std::net::SocketAddr;
use std::time::Duration;

use aegis_directory::config::{KEY_FILE, load_key};
use aegis_directory::{Schedule, SignedClock, api};
use aegis_testkit::{LocalNet, LocalNetSpec};
use axum::Router;
use axum::routing::get;

/// What the rogue authority claims: epoch 0 began at the Unix epoch and
/// epochs last one second, so "now" is epoch ~1.7 billion and every key a
/// node holds would be expired.
const ROGUE: Schedule = Schedule {
    genesis_ms: 0,
    epoch_length_ms: 1_000,
};

/// An HTTP server answering as a compromised authority: its real key signs
/// the rogue clock, and `/status` tells the rogue clock in the clear.
async fn rogue_authority(clock: Vec<u8>) -> (SocketAddr, tokio::task::JoinHandle<()>) {
    let status = serde_json::json!({
        "name": "rogue",
        "epoch": ROGUE.epoch_at(aegis_directory::api::unix_now_ms()),
        "genesis_ms": ROGUE.genesis_ms,
        "epoch_length_ms": ROGUE.epoch_length_ms,
    })
    .to_string();
    let app = Router::new()
        .route(api::CLOCK, get(move || async move { clock.clone() }))
        .route(api::STATUS, get(move || async move { status.clone() }));
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let task = tokio::spawn(async move {
        axum::serve(listener, app).await.unwrap();
    });
    (addr, task)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_rogue_authority_moves_no_clock_key_or_filter() {
    let dir = tempfile::tempdir().unwrap();
    let spec = LocalNetSpec {
        authorities: 3,
        ..LocalNetSpec::default()
    };
    let mut net = LocalNet::start(dir.path(), &spec).await.unwrap();
    net.wait_ready(Duration::from_secs(60)).await.unwrap();
    let honest = net.schedule;
    let before = net.node(0).unwrap().key_epochs();
    let filters_before = net.node(0).unwrap().replay_filter_bytes();
    assert_eq!(net.node(0).unwrap().schedule(), Some(honest));

    // Authority 0 turns rogue: its own key signs the rogue clock. The node
    // restarts (and so must learn the clock again) with the rogue first in
    // its list.
    net.stop_node(0).await;
    let key = load_key(&net.authorities[0].config.data_dir.join(KEY_FILE)).unwrap();
    let (addr, rogue) = rogue_authority(SignedClock::create(&key, ROGUE).to_bytes()).await;
    net.nodes[0].config.authorities[0].url = format!("http://{addr}");
    net.start_node(0).await.unwrap();

    let node = net.node(0).unwrap();
    let deadline = tokio::time::Instant::now() + Duration::from_secs(20);
    while node.schedule().is_none() {
        assert!(tokio::time::Instant::now() < deadline, "no clock learnt");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    // Give the sync loop a few ticks to act on whatever clock it holds.
    tokio::time::sleep(Duration::from_secs(2)).await;
    assert_eq!(node.schedule(), Some(honest), "the rogue clock was taken");
    let epoch = honest.epoch_at(aegis_directory::api::unix_now_ms());
    let after = node.key_epochs();
    assert!(
        after.iter().all(|&e| e + 2 >= epoch && e <= epoch + 5),
        "keys outside the honest epochs: {after:?} at epoch {epoch}"
    );
    for live in before.iter().filter(|&&e| e + 1 >= epoch) {
        assert!(after.contains(live), "live key {live} erased: {after:?}");
    }
    // Filters for the same epochs, sized for the same clock: the same
    // memory per epoch, not a rogue epoch length's.
    let per_epoch_before = filters_before / before.len().max(1) as u64;
    let per_epoch_after = node.replay_filter_bytes() / after.len().max(1) as u64;
    assert_eq!(per_epoch_before, per_epoch_after);
    rogue.abort();
    net.shutdown().await;
}
