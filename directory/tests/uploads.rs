//! Bad uploads get a clear 4xx and are counted; the server never falls over.
#![cfg(feature = "server")]
#![allow(clippy::unwrap_used, clippy::expect_used, missing_docs)]

mod common;

use aegis_directory::{Role, api};
use common::*;

async fn metric(url: &str, line: &str) -> bool {
    let (_, body) = get(&api::url(url, api::METRICS)).await;
    String::from_utf8(body).unwrap().contains(line)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn bad_uploads_are_refused_with_reasons() {
    let (slots, _) = cluster(1).await;
    let running = slots[0].start().await;
    let url = api::url(&slots[0].url(), api::DESCRIPTOR);
    let key = node_key(3);

    // Forged: content changed after signing.
    let mut forged = descriptor(&key, 1, Role::Mix, 0);
    forged.body.addresses = vec!["/ip4/10.9.9.9/tcp/1".into()];
    let (status, text) = post(&url, forged.to_bytes()).await;
    assert_eq!(status, 400, "{text}");
    assert!(text.contains("signature does not verify"), "{text}");

    // Malformed bytes.
    let (status, text) = post(&url, vec![0xFF; 40]).await;
    assert_eq!(status, 400, "{text}");
    assert!(
        text.contains("malformed") || text.contains("undecodable"),
        "{text}"
    );

    // Invalid field (address without a leading slash), validly signed.
    let mut body = descriptor(&key, 1, Role::Mix, 0).body;
    body.addresses = vec!["ip4/1.2.3.4/tcp/1".into()];
    let (status, text) = post(&url, body.sign(&key).to_bytes()).await;
    assert_eq!(status, 400, "{text}");
    assert!(text.contains("address 0 is invalid"), "{text}");

    // Wrong epoch.
    let (status, text) = post(&url, descriptor(&key, 9, Role::Mix, 0).to_bytes()).await;
    assert_eq!(status, 422, "{text}");
    assert!(text.contains("epoch 9"), "{text}");

    // Replay of the same upload, and an older revision after a newer one.
    let v1 = descriptor(&key, 1, Role::Mix, 1).to_bytes();
    let v2 = descriptor(&key, 1, Role::Mix, 2).to_bytes();
    assert_eq!(post(&url, v1.clone()).await.0, 200);
    let (status, text) = post(&url, v1.clone()).await;
    assert_eq!(status, 409, "{text}");
    assert!(text.contains("already accepted"), "{text}");
    assert_eq!(post(&url, v2).await.0, 200);
    let (status, text) = post(&url, v1).await;
    assert_eq!(status, 409, "{text}");
    assert!(
        text.contains("older than the accepted revision 2"),
        "{text}"
    );

    // Oversized body.
    let (status, _) = post(&url, vec![0u8; 64 * 1024]).await;
    assert_eq!(status, 413);

    let base = slots[0].url();
    assert!(metric(&base, "aegis_dir_descriptors_accepted_total 2").await);
    assert!(
        metric(
            &base,
            "aegis_dir_descriptors_rejected_total{reason=\"replay\"} 2"
        )
        .await
    );
    assert!(
        metric(
            &base,
            "aegis_dir_descriptors_rejected_total{reason=\"bad_signature\"} 1"
        )
        .await
    );
    assert!(
        metric(
            &base,
            "aegis_dir_descriptors_rejected_total{reason=\"wrong_epoch\"} 1"
        )
        .await
    );
    assert!(
        metric(
            &base,
            "aegis_dir_descriptors_rejected_total{reason=\"too_large\"} 1"
        )
        .await
    );
    assert!(
        metric(
            &base,
            "aegis_dir_descriptors_rejected_total{reason=\"malformed\"} 1"
        )
        .await
    );
    assert!(
        metric(
            &base,
            "aegis_dir_descriptors_rejected_total{reason=\"invalid_field\"} 1"
        )
        .await
    );

    // Peer endpoints refuse votes and signatures from strangers.
    let (status, _) = post(&api::url(&base, api::VOTE), vec![1, 2, 3]).await;
    assert_eq!(status, 400);
    let (status, _) = post(&api::url(&base, api::SIGNATURE), vec![0; 10]).await;
    assert_eq!(status, 400);
    running.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn votes_are_authenticated_before_they_are_read_whole_or_decoded() {
    let (slots, _) = cluster(2).await;
    let running = slots[0].start().await;
    let base = slots[0].url();
    let url = api::url(&base, api::VOTE);

    // A stranger's 8 MB "vote" is refused on its first 32 bytes. The server
    // stops reading there, so the sender may see its connection closed
    // before it has sent the rest, rather than the 403.
    let mut stranger = node_key(9).verifying_key().to_bytes().to_vec();
    stranger.resize(8 << 20, 0xAB);
    let status = post_early_refused(&url, stranger).await;
    assert!(matches!(status, None | Some(403)), "{status:?}");
    assert!(
        metric(
            &base,
            "aegis_dir_votes_rejected_total{reason=\"unknown_authority\"} 1"
        )
        .await
    );

    // The pinned peer's key with a body it did not sign: refused on the
    // signature, before any decoding.
    let mut forged = slots[1].public.to_vec();
    forged.extend_from_slice(&[0x11; 500]);
    let (status, text) = post(&url, forged).await;
    assert_eq!(status, 400, "{text}");
    assert!(text.contains("signature"), "{text}");

    // Longer than any real vote may be: refused while reading.
    let mut huge = slots[1].public.to_vec();
    huge.resize(aegis_directory::constants::MAX_DOCUMENT_BYTES + 1, 0);
    let status = post_early_refused(&url, huge).await;
    assert!(matches!(status, None | Some(413)), "{status:?}");
    assert!(
        metric(
            &base,
            "aegis_dir_votes_rejected_total{reason=\"too_large\"} 1"
        )
        .await
    );
    running.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn one_source_address_has_an_upload_quota_per_epoch() {
    let (mut slots, _) = cluster(1).await;
    slots[0].config.admission = aegis_directory::Admission::Open(aegis_directory::OpenLimits {
        uploads_per_source: 3,
        ..aegis_directory::OpenLimits::default()
    });
    let running = slots[0].start().await;
    let base = slots[0].url();
    let url = api::url(&base, api::DESCRIPTOR);
    for seed in 10..13u8 {
        let (status, text) = post(
            &url,
            descriptor(&node_key(seed), 1, Role::Mix, 0).to_bytes(),
        )
        .await;
        assert_eq!(status, 200, "{text}");
    }
    let (status, _) = post(&url, descriptor(&node_key(13), 1, Role::Mix, 0).to_bytes()).await;
    assert_eq!(status, 429);
    assert!(
        metric(
            &base,
            "aegis_dir_descriptors_rejected_total{reason=\"source_limit\"} 1"
        )
        .await
    );
    running.shutdown().await;
}

/// Posts a body the server may refuse before reading it whole: the status,
/// or `None` if the server closed the connection while it was being sent.
async fn post_early_refused(url: &str, body: Vec<u8>) -> Option<u16> {
    reqwest::Client::new()
        .post(url)
        .body(body)
        .send()
        .await
        .ok()
        .map(|r| r.status().as_u16())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_node_no_one_can_dial_is_refused_and_told_why() {
    let (mut slots, _) = cluster(1).await;
    slots[0].config.dial_back = true;
    let running = slots[0].start().await;
    let url = api::url(&slots[0].url(), api::DESCRIPTOR);
    let key = node_key(4);
    let closed = {
        let l = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        l.local_addr().unwrap().port()
    };
    let mut body = descriptor(&key, 1, Role::Mix, 1).body;
    body.addresses = vec![format!("/ip4/127.0.0.1/tcp/{closed}")];
    let (status, text) = post(&url, body.clone().sign(&key).to_bytes()).await;
    assert_eq!(status, 422, "{text}");
    assert!(text.starts_with("unreachable:"), "{text}");
    assert!(text.contains(&format!("127.0.0.1/tcp/{closed}")), "{text}");
    assert!(
        metric(
            &slots[0].url(),
            "aegis_dir_descriptors_rejected_total{reason=\"unreachable\"} 1"
        )
        .await
    );

    // The node opens its port: the next upload is dialled and taken.
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let open = listener.local_addr().unwrap().port();
    body.addresses = vec![format!("/ip4/127.0.0.1/tcp/{open}")];
    body.revision = 2;
    let (status, text) = post(&url, body.sign(&key).to_bytes()).await;
    assert_eq!(status, 200, "{text}");
    running.shutdown().await;
}
