//! Ingress: accepts mix streams from neighbours in the consensus and reads
//! back-to-back fixed-size frames into the bounded queue of the crypto
//! workers, each with the neighbour it came from (the workers check that it
//! stands just before this node). A full queue drops the frame and counts it.

use std::sync::Arc;

use futures::{AsyncReadExt as _, StreamExt as _};
use tokio::sync::watch;

use aegis_mix_packet::{Geometry, NodeId};
use aegis_proto::Source;

use crate::metrics::{Direction, DropReason, NodeMetrics};
use crate::state::Directory;
use aegis_link::Host;
use aegis_link::MIX_PROTOCOL;

/// A frame for the crypto workers and where it came from.
pub struct Inbound {
    /// A client of this gateway, or the neighbour the link authenticated.
    pub source: Source,
    /// The frame as read.
    pub frame: Vec<u8>,
}

/// The crypto workers' input queue.
pub type IngressQueue = crossbeam_channel::Sender<Inbound>;

/// Hands a frame to the workers, or drops and counts it.
pub fn enqueue(metrics: &NodeMetrics, queue: &IngressQueue, source: Source, frame: Vec<u8>) {
    metrics.received.inc();
    if queue.try_send(Inbound { source, frame }).is_err() {
        metrics.count_drop(DropReason::ingress_full);
    } else {
        metrics.ingress_depth.set(queue.len() as i64);
    }
}

/// Accepts mix streams from the neighbours `directory` lists until
/// `shutdown` turns true.
pub async fn run(
    geometry: Geometry,
    directory: Arc<Directory>,
    metrics: Arc<NodeMetrics>,
    host: Host,
    queue: IngressQueue,
    mut shutdown: watch::Receiver<bool>,
) -> Result<(), aegis_link::LinkError> {
    let mut incoming = host.accept(MIX_PROTOCOL)?;
    let frame_len = geometry.frame_len();
    loop {
        let (peer, mut stream) = tokio::select! {
            _ = shutdown.changed() => return Ok(()),
            next = incoming.next() => match next {
                Some(s) => s,
                None => return Ok(()),
            },
        };
        let Some(neighbour) = aegis_link::identity_of(&peer)
            .map(NodeId)
            .filter(|id| directory.topologies().knows(id))
        else {
            metrics.count_drop(DropReason::unknown_peer);
            continue;
        };
        let metrics = metrics.clone();
        let queue = queue.clone();
        let mut shutdown = shutdown.clone();
        tokio::spawn(async move {
            metrics.links.inc();
            loop {
                let mut frame = vec![0u8; frame_len];
                tokio::select! {
                    _ = shutdown.changed() => break,
                    read = stream.read_exact(&mut frame) => {
                        if read.is_err() {
                            break;
                        }
                    }
                }
                metrics.count_bytes(Direction::received, frame.len());
                enqueue(&metrics, &queue, Source::Node(neighbour), frame);
            }
            metrics.links.dec();
        });
    }
}
