//! The flood fault: garbage and replayed frames at a layer-1 mix.

use std::path::Path;
use std::time::{Duration, Instant};

use anyhow::Context as _;

/// Floods a layer-1 mix for five seconds from a link authenticated as the
/// gateway whose configuration is at `flooder`: one good packet, then
/// alternately a replay of it and a frame of random bytes (right length,
/// right epoch), as fast as the link takes them. Returns the target's
/// identity and the frames sent.
pub async fn flood(
    flooder: &Path,
    document: aegis_directory::SignedConsensus,
    stop: tokio::sync::watch::Receiver<bool>,
) -> anyhow::Result<(String, u64)> {
    use aegis_mix_packet::{
        Body, Frame, Geometry, HopDelays, LoopId, MailboxId, SphinxPublicKey, SphinxSecret,
        build_mailbox_packet,
    };
    use futures::AsyncWriteExt as _;
    use rand::{Rng as _, RngExt as _, SeedableRng as _};

    const G: Geometry = Geometry::STANDARD;
    let config = aegis_node::NodeConfig::load(flooder)?;
    let key =
        aegis_directory::config::load_key(&config.data_dir.join(aegis_node::config::KEY_FILE))?;
    let topology = aegis_proto::Topology::new(document);
    let target = *topology.layers[0].first().context("no layer-1 mix")?;
    let gateway = *topology.gateways.first().context("no gateway")?;
    let route = topology.hops(
        &G,
        &[
            target,
            topology.layers[1][0],
            topology.layers[2][0],
            gateway,
            gateway,
        ],
    )?;
    let mut rng = rand::rngs::StdRng::from_rng(&mut rand::rng());
    let sealing = SphinxPublicKey::from(&SphinxSecret::from(rng.random::<[u8; 32]>()));
    let (mailbox, loop_id) = (MailboxId(rng.random()), LoopId(rng.random()));
    let good = build_mailbox_packet(
        &mut rng,
        &G,
        topology.epoch,
        &route,
        &HopDelays::fixed(&[Duration::ZERO; 5]),
        mailbox,
        &sealing,
        &Body::Loop(loop_id),
    )?
    .to_frame(&G)?;
    let (host, _task) = aegis_link::Host::start(&key, None, stop)?;
    let entry = topology.node(&target).context("target not listed")?;
    let peer = host
        .add_node(&entry.id.0, &entry.addresses)
        .context("target identity is not a key")?;
    let mut stream = host.open(peer, aegis_link::MIX_PROTOCOL).await?;
    let started = Instant::now();
    let mut frames = 0u64;
    let mut noise = vec![0u8; G.packet_len()];
    while started.elapsed() < Duration::from_secs(5) {
        let frame = if frames.is_multiple_of(2) {
            good.clone()
        } else {
            rng.fill_bytes(&mut noise);
            Frame::encode(&G, topology.epoch, &noise)?
        };
        stream.write_all(&frame).await?;
        frames += 1;
        if frames.is_multiple_of(64) {
            stream.flush().await?;
        }
    }
    stream.flush().await?;
    Ok((hex::encode(target.0), frames))
}
