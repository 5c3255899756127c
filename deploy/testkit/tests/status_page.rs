//! The authorities' network status page, loaded in a real browser
//! (headless Chromium, Debian's `chromium`, which `scripts/prerequisites.sh`
//! installs): it shows the current consensus — epoch, parameters, the
//! signatures present, every layer's mixes and the gateways — and loads
//! nothing from anywhere else.
#![allow(clippy::unwrap_used, clippy::expect_used, missing_docs)]

use std::process::Command;
use std::time::Duration;

use aegis_testkit::{LocalNet, LocalNetSpec};

/// The page's DOM after Chromium loaded and rendered it.
fn rendered(url: &str) -> String {
    let profile = tempfile::tempdir().unwrap();
    let out = Command::new("chromium")
        .args([
            "--headless",
            "--no-sandbox",
            "--disable-gpu",
            "--no-first-run",
            &format!("--user-data-dir={}", profile.path().display()),
            "--dump-dom",
            url,
        ])
        .output()
        .expect("chromium (Debian package `chromium`; scripts/prerequisites.sh installs it)");
    assert!(
        out.status.success(),
        "chromium: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8(out.stdout).unwrap()
}

/// The text of the element with `id` (a span or bold: no nesting).
fn by_id<'a>(dom: &'a str, id: &str) -> &'a str {
    let start = dom
        .find(&format!("id=\"{id}\">"))
        .unwrap_or_else(|| panic!("no #{id} in {dom}"));
    let rest = &dom[start..];
    let text = &rest[rest.find('>').unwrap() + 1..];
    &text[..text.find('<').unwrap()]
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_status_page_shows_the_current_consensus_in_a_browser() {
    let base = tempfile::tempdir().unwrap();
    let spec = LocalNetSpec {
        authorities: 3,
        mixes: 3,
        gateways: 2,
        ..LocalNetSpec::default()
    };
    let net = LocalNet::start(base.path(), &spec).await.unwrap();
    let topology = net.wait_ready(Duration::from_secs(90)).await.unwrap();
    let url = format!("{}/", net.authorities[0].url);

    // The page may only style itself: no script, nothing fetched.
    let response = reqwest::get(&url).await.unwrap();
    let policy = response.headers()["content-security-policy"]
        .to_str()
        .unwrap()
        .to_owned();
    assert_eq!(policy, "default-src 'none'; style-src 'unsafe-inline'");

    let dom = tokio::task::spawn_blocking(move || rendered(&url))
        .await
        .unwrap();
    net.shutdown().await;

    assert_eq!(by_id(&dom, "authority"), "authority-0");
    let shown: u64 = by_id(&dom, "document-epoch").parse().unwrap();
    assert!(
        shown == topology.epoch || shown == topology.epoch + 1,
        "{shown} against {}",
        topology.epoch
    );
    // Every authority signs in a healthy network.
    assert_eq!(by_id(&dom, "signatures"), "3 of 3");
    assert_eq!(dom.matches("class=\"present\"").count(), 3, "{dom}");
    // Every node, in its place: three layers of one mix, two gateways.
    for (i, layer) in topology.layers.iter().enumerate() {
        let group = format!("data-group=\"Layer {}\"", i + 1);
        assert!(dom.contains(&group), "{dom}");
        for id in layer {
            assert!(
                dom.contains(&hex::encode(id.0)),
                "mix {} missing",
                hex::encode(id.0)
            );
        }
    }
    for id in &topology.gateways {
        assert!(dom.contains(&hex::encode(id.0)), "{dom}");
    }
    assert_eq!(dom.matches(">mix<").count(), 3, "{dom}");
    assert_eq!(dom.matches(">gateway<").count(), 2, "{dom}");
    assert!(dom.contains("Poisson mixing"), "{dom}");
    assert!(!dom.contains("<script"), "{dom}");
}
