//! Faults at a layer-1 mix from a link authenticated as a gateway (a flood
//! of garbage and replayed frames, a replay across a `kill -9`), and a flood
//! of descriptors from strangers at the authorities.

use std::path::Path;
use std::time::{Duration, Instant};

use anyhow::Context as _;

/// A link to a layer-1 mix, authenticated as a gateway, and one good
/// packet for it (routed layer 1 → 2 → 3 → gateway).
pub struct Probe {
    host: aegis_link::Host,
    peer: aegis_link::PeerId,
    /// The good packet's frame.
    pub good: Vec<u8>,
    /// The layer-1 mix.
    pub target: aegis_mix_packet::NodeId,
    /// The packet geometry the document names.
    pub geometry: aegis_mix_packet::Geometry,
    _task: tokio::task::JoinHandle<()>,
}

impl Probe {
    /// Builds the packet and a host with the key of the gateway whose
    /// configuration is at `flooder`.
    pub fn new(
        flooder: &Path,
        document: aegis_directory::SignedConsensus,
        stop: tokio::sync::watch::Receiver<bool>,
    ) -> anyhow::Result<Probe> {
        use aegis_mix_packet::{
            Body, Geometry, HopDelays, LoopId, MailboxId, SphinxPublicKey, SphinxSecret,
            build_mailbox_packet,
        };
        use rand::{RngExt as _, SeedableRng as _};

        let g = Geometry::by_hash(&document.body.parameters.geometry_hash)
            .context("the document names an unknown packet geometry")?;
        let config = aegis_node::NodeConfig::load(flooder)?;
        let key =
            aegis_directory::config::load_key(&config.data_dir.join(aegis_node::config::KEY_FILE))?;
        let topology = aegis_proto::Topology::new(document);
        let target = *topology.layers[0].first().context("no layer-1 mix")?;
        let gateway = *topology.gateways.first().context("no gateway")?;
        // Entering at layer 1: one hop shorter than a client's route.
        let hops = [
            target,
            topology.layers[1][0],
            topology.layers[2][0],
            gateway,
        ]
        .iter()
        .map(|id| {
            topology
                .node(id)
                .and_then(|n| n.hop(topology.epoch))
                .context("a node on the route has no key")
        })
        .collect::<anyhow::Result<Vec<_>>>()?;
        let route = aegis_mix_packet::Route::cycle(hops, &g)?;
        let mut rng = rand::rngs::StdRng::from_rng(&mut rand::rng());
        let sealing = SphinxPublicKey::from(&SphinxSecret::from(rng.random::<[u8; 32]>()));
        let (mailbox, loop_id) = (MailboxId(rng.random()), LoopId(rng.random()));
        let good = build_mailbox_packet(
            &mut rng,
            &g,
            &route,
            &HopDelays::fixed(&[Duration::ZERO; 4]),
            mailbox,
            &sealing,
            &Body::Loop(loop_id),
        )?
        .to_frame(&g)?;
        let (host, task) = aegis_link::Host::start(&key, None, stop)?;
        let entry = topology.node(&target).context("target not listed")?;
        let peer = host
            .add_node(&entry.id.0, &entry.addresses)
            .context("target identity is not a key")?;
        Ok(Probe {
            host,
            peer,
            good,
            target,
            geometry: g,
            _task: task,
        })
    }

    /// A fresh mix stream to the target.
    pub async fn stream(&self) -> anyhow::Result<aegis_link::Stream> {
        Ok(self.host.open(self.peer, aegis_link::MIX_PROTOCOL).await?)
    }

    /// Sends the good packet once, on a fresh stream.
    pub async fn send_good(&self) -> anyhow::Result<()> {
        use futures::AsyncWriteExt as _;
        let mut stream = self.stream().await?;
        stream.write_all(&self.good).await?;
        stream.flush().await?;
        // Give the frame time to leave before the stream is dropped.
        tokio::time::sleep(Duration::from_millis(300)).await;
        Ok(())
    }
}

/// Floods a layer-1 mix for five seconds from a link authenticated as the
/// gateway whose configuration is at `flooder`: one good packet, then
/// alternately a replay of it and a frame of random bytes (right length and
/// version), as fast as the link takes them. Returns the target's
/// identity and the frames sent.
pub async fn flood(
    flooder: &Path,
    document: aegis_directory::SignedConsensus,
    stop: tokio::sync::watch::Receiver<bool>,
) -> anyhow::Result<(String, u64)> {
    use aegis_mix_packet::Frame;
    use futures::AsyncWriteExt as _;
    use rand::Rng as _;

    let probe = Probe::new(flooder, document, stop)?;
    let g = probe.geometry.clone();
    let mut rng = {
        use rand::SeedableRng as _;
        rand::rngs::StdRng::from_rng(&mut rand::rng())
    };
    let mut stream = probe.stream().await?;
    let started = Instant::now();
    let mut frames = 0u64;
    let mut noise = vec![0u8; g.packet_len()];
    while started.elapsed() < Duration::from_secs(5) {
        let frame = if frames.is_multiple_of(2) {
            probe.good.clone()
        } else {
            rng.fill_bytes(&mut noise);
            Frame::encode(&g, &noise)?
        };
        stream.write_all(&frame).await?;
        frames += 1;
        if frames.is_multiple_of(64) {
            stream.flush().await?;
        }
    }
    stream.flush().await?;
    Ok((hex::encode(probe.target.0), frames))
}

/// Uploads `count` descriptors, each signed by a fresh node key, for the
/// epoch after next, to every authority. Returns the uploads
/// made and how many were refused.
pub async fn descriptor_flood(
    authorities: Vec<aegis_directory::TrustedAuthority>,
    schedule: aegis_directory::Schedule,
    count: usize,
) -> anyhow::Result<(u64, u64)> {
    use aegis_directory::{DescriptorBody, EpochSphinxKey, Role, api};
    use ed25519_dalek::SigningKey;
    use rand::{RngExt as _, SeedableRng as _};

    let http = reqwest::Client::builder()
        .timeout(Duration::from_secs(5))
        .build()?;
    let mut rng = rand::rngs::StdRng::from_rng(&mut rand::rng());
    let (mut sent, mut refused) = (0u64, 0u64);
    for _ in 0..count {
        // The epoch after next: its uploads are open all through this one.
        let epoch = schedule.target_at(api::unix_now_ms()) + 1;
        let key = SigningKey::from_bytes(&rng.random());
        let descriptor = DescriptorBody {
            identity: key.verifying_key().to_bytes(),
            epoch,
            revision: 1,
            role: Role::Mix,
            addresses: vec!["/ip4/127.0.0.1/tcp/9".into()],
            sphinx_keys: std::array::from_fn(|i| EpochSphinxKey {
                epoch: epoch + i as u64,
                key: rng.random(),
            }),
            kem_keys: vec![],
            version: "flood".into(),
        }
        .sign(&key)
        .to_bytes();
        for authority in &authorities {
            sent += 1;
            let response = http
                .post(api::url(&authority.url, api::DESCRIPTOR))
                .body(descriptor.clone())
                .send()
                .await?;
            if !response.status().is_success() {
                refused += 1;
            }
        }
    }
    Ok((sent, refused))
}
