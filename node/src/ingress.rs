//! Ingress: accepts mix streams from neighbours in the consensus and reads
//! back-to-back fixed-size frames into the bounded queue of the crypto
//! workers. A full queue drops the frame and counts it.

use std::sync::Arc;

use futures::{AsyncReadExt as _, StreamExt as _};
use tokio::sync::watch;

use crate::metrics::DropReason;
use crate::state::Shared;
use aegis_link::Host;
use aegis_link::MIX_PROTOCOL;

/// Hands a frame to the workers, or drops and counts it.
pub fn enqueue(shared: &Shared, queue: &crossbeam_channel::Sender<Vec<u8>>, frame: Vec<u8>) {
    shared.metrics.received.inc();
    if queue.try_send(frame).is_err() {
        shared.metrics.drop(DropReason::ingress_full);
    } else {
        shared.metrics.ingress_depth.set(queue.len() as i64);
    }
}

/// Accepts mix streams until `shutdown` turns true.
pub async fn run(
    shared: Arc<Shared>,
    host: Host,
    queue: crossbeam_channel::Sender<Vec<u8>>,
    mut shutdown: watch::Receiver<bool>,
) -> Result<(), aegis_link::LinkError> {
    let mut incoming = host.accept(MIX_PROTOCOL)?;
    loop {
        let (peer, mut stream) = tokio::select! {
            _ = shutdown.changed() => return Ok(()),
            next = incoming.next() => match next {
                Some(s) => s,
                None => return Ok(()),
            },
        };
        if !shared.topologies().knows_peer(&peer) {
            shared.metrics.drop(DropReason::unknown_peer);
            continue;
        }
        let shared = shared.clone();
        let queue = queue.clone();
        let mut shutdown = shutdown.clone();
        tokio::spawn(async move {
            shared.metrics.links.inc();
            let frame_len = shared.geometry.frame_len();
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
                enqueue(&shared, &queue, frame);
            }
            shared.metrics.links.dec();
        });
    }
}
