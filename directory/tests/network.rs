//! Authorities on loopback: agreement, failures and restarts.
#![cfg(feature = "server")]
#![allow(clippy::unwrap_used, clippy::expect_used, missing_docs)]

mod common;

use std::time::Duration;

use aegis_directory::{NetworkParameters, Phase, Role, SignedConsensus, Verifier, api};
use common::*;

fn verifier(slots: &[Slot]) -> Verifier {
    Verifier::new(slots.iter().map(|s| s.public))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn three_agree_then_two_carry_on_then_one_fails_visibly() {
    let (slots, schedule) = cluster(3).await;
    let mut running = Vec::new();
    for s in &slots {
        running.push(s.start().await);
    }
    let urls: Vec<String> = slots.iter().map(Slot::url).collect();

    // Epochs 1 and 2: all three agree byte for byte.
    for epoch in 1..=2u64 {
        upload_nodes(&urls, epoch).await;
        let docs: Vec<Vec<u8>> = futures_join(&urls, epoch).await;
        // The signed bodies agree byte for byte; the signature sets may still
        // be filling in when the documents are fetched.
        let bodies = bodies_of(&docs);
        assert_eq!(bodies[0], bodies[1], "epoch {epoch}");
        assert_eq!(bodies[1], bodies[2], "epoch {epoch}");
        let doc = verifier(&slots)
            .verify_bytes(&docs[0], Some(epoch), now_ms())
            .unwrap();
        assert_eq!(doc.body.mixes().count(), 6);
        assert_eq!(doc.body.gateways.len(), 1);
        if epoch == 2 {
            let first = SignedConsensus::from_bytes(&document(&urls[0], 1).await).unwrap();
            assert_eq!(doc.body.previous, Some(first.body.hash()));
        }
        sleep_until_ms(schedule.epoch_start(epoch)).await;
    }

    // Epoch 3: the third authority is stopped; the other two still publish.
    running.pop().unwrap().shutdown().await;
    upload_nodes(&urls[..2], 3).await;
    let a = document(&urls[0], 3).await;
    let b = document(&urls[1], 3).await;
    assert_eq!(a, b);
    let doc = verifier(&slots)
        .verify_bytes(&a, Some(3), now_ms())
        .unwrap();
    assert_eq!(doc.signatures.len(), 2);
    sleep_until_ms(schedule.epoch_start(3)).await;

    // Epoch 4: two are stopped; nothing is published and the reason shows.
    running.pop().unwrap().shutdown().await;
    upload_nodes(&urls[..1], 4).await;
    sleep_until_ms(schedule.phase_at(4, Phase::Deadline) + 200).await;
    let (status, _) = get(&api::url(&urls[0], &api::document_path(Some(4)))).await;
    assert_eq!(status, 404);
    let (_, body) = get(&api::url(&urls[0], api::STATUS)).await;
    let text = String::from_utf8(body).unwrap();
    assert!(text.contains("\"state\":\"failed\""), "{text}");
    assert!(text.contains("only 1 of the 2 required votes"), "{text}");
    let (_, metrics) = get(&api::url(&urls[0], api::METRICS)).await;
    let metrics = String::from_utf8(metrics).unwrap();
    assert!(
        metrics.contains("aegis_dir_rounds_total{outcome=\"failed\"} 1"),
        "{metrics}"
    );
    assert!(
        metrics.contains("aegis_dir_last_round_failed 1"),
        "{metrics}"
    );
    // In epoch 4 the document of epoch 3 is still served as current: it is
    // valid through epoch 4.
    sleep_until_ms(schedule.epoch_start(4) + 100).await;
    let (status, current) = get(&api::url(&urls[0], api::DOCUMENT_CURRENT)).await;
    assert_eq!(status, 200);
    assert_eq!(SignedConsensus::from_bytes(&current).unwrap().body.epoch, 3);
    running.pop().unwrap().shutdown().await;
}

async fn futures_join(urls: &[String], epoch: u64) -> Vec<Vec<u8>> {
    let mut docs = Vec::new();
    for url in urls {
        docs.push(document(url, epoch).await);
    }
    docs
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_divergent_authority_is_outvoted() {
    let (mut slots, _) = cluster(3).await;
    slots[2].config.parameters.lambda_p = 99.0;
    let mut running = Vec::new();
    for s in &slots {
        running.push(s.start().await);
    }
    let urls: Vec<String> = slots.iter().map(Slot::url).collect();
    upload_nodes(&urls, 1).await;
    // A node only the divergent authority saw.
    let lonely = descriptor(&node_key(99), 1, Role::Mix, 0);
    assert_eq!(
        post(&api::url(&urls[2], api::DESCRIPTOR), lonely.to_bytes())
            .await
            .0,
        200
    );
    let docs = futures_join(&urls, 1).await;
    let bodies = bodies_of(&docs);
    assert_eq!(bodies[0], bodies[1]);
    // Compared by signed body: the signature sets may still be filling in.
    assert_eq!(
        bodies[0], bodies[2],
        "the divergent authority adopts the threshold's document"
    );
    let doc = verifier(&slots)
        .verify_bytes(&docs[0], Some(1), now_ms())
        .unwrap();
    assert_eq!(doc.body.parameters, NetworkParameters::standard(EPOCH_MS));
    assert!(
        doc.body
            .mixes()
            .all(|(_, d)| d.identity() != lonely.identity())
    );
    assert_eq!(doc.body.mixes().count(), 6);
    for r in running {
        r.shutdown().await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_restarted_authority_keeps_its_state_and_rejoins() {
    let (slots, schedule) = cluster(3).await;
    let mut running = Vec::new();
    for s in &slots {
        running.push(s.start().await);
    }
    let urls: Vec<String> = slots.iter().map(Slot::url).collect();
    upload_nodes(&urls, 1).await;
    // Restart authority 0 after it voted, before the tally.
    sleep_until_ms(schedule.phase_at(1, Phase::Vote) + 150).await;
    running.remove(0).shutdown().await;
    running.insert(0, slots[0].start().await);
    let (_, body) = get(&api::url(&urls[0], api::STATUS)).await;
    let status: serde_json_value::Status = serde_json_value::parse(&body);
    let round = status.round(1);
    assert_eq!(round.0, 7, "descriptors survive the restart");
    assert!(round.1 >= 1, "its own vote survives the restart");
    // It rejoins: same document as the others.
    let docs = futures_join(&urls, 1).await;
    let bodies = bodies_of(&docs);
    assert_eq!(bodies[0], bodies[1]);
    assert_eq!(bodies[0], bodies[2]);
    // Documents survive a restart too, and are served at once.
    running.remove(0).shutdown().await;
    running.insert(0, slots[0].start().await);
    let (status, again) = get(&api::url(&urls[0], &api::document_path(Some(1)))).await;
    assert_eq!(status, 200);
    // Its signature set may differ from the peer's copy; the signed body may not.
    assert_eq!(bodies_of(&[again])[0], bodies[1]);
    for r in running {
        r.shutdown().await;
    }
}

/// Minimal reading of the status JSON without a JSON dependency: counts of
/// the round for an epoch.
mod serde_json_value {
    pub struct Status(String);

    pub fn parse(body: &[u8]) -> Status {
        Status(String::from_utf8(body.to_vec()).unwrap())
    }

    impl Status {
        /// (descriptors, votes) of the round for `epoch`.
        pub fn round(&self, epoch: u64) -> (u64, u64) {
            let key = format!("{{\"epoch\":{epoch},\"descriptors\":");
            let at = self
                .0
                .find(&key)
                .unwrap_or_else(|| panic!("no round {epoch} in {}", self.0));
            let rest = &self.0[at + key.len()..];
            let descriptors: u64 = rest[..rest.find(',').unwrap()].parse().unwrap();
            let votes_at = rest.find("\"votes\":").unwrap() + 8;
            let rest = &rest[votes_at..];
            let votes: u64 = rest[..rest.find(',').unwrap()].parse().unwrap();
            (descriptors, votes)
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_fetcher_returns_the_first_document_that_verifies() {
    let (slots, _) = cluster(1).await;
    let running = slots[0].start().await;
    let url = slots[0].url();
    upload_nodes(std::slice::from_ref(&url), 1).await;
    let expected = document(&url, 1).await;
    let dead = "http://127.0.0.1:9".to_owned();
    let fetcher = aegis_directory::Fetcher::new(
        vec![dead.clone(), url.clone()],
        verifier(&slots),
        Duration::from_secs(2),
    )
    .unwrap();
    let doc = fetcher.fetch(Some(1), now_ms()).await.unwrap();
    assert_eq!(doc.to_bytes(), expected);
    // Pinned to another key, the same document is refused everywhere.
    let stranger = Verifier::new([[42u8; 32]]);
    let fetcher =
        aegis_directory::Fetcher::new(vec![dead, url], stranger, Duration::from_secs(2)).unwrap();
    let err = fetcher
        .fetch(Some(1), now_ms())
        .await
        .unwrap_err()
        .to_string();
    assert!(
        err.contains("valid signatures by pinned authorities"),
        "{err}"
    );
    running.shutdown().await;
}

/// Each document's signed body, encoded.
fn bodies_of(docs: &[Vec<u8>]) -> Vec<Vec<u8>> {
    docs.iter()
        .map(|d| SignedConsensus::from_bytes(d).unwrap().body.to_bytes())
        .collect()
}
