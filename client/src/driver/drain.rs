//! After a gateway move: the old gateway still holds what contacts sent
//! before they learnt the new address, and keeps receiving until they do.
//! The driver pulls the old mailbox too, on the same grid as the new one,
//! until every contact has acknowledged the new card and the old mailbox
//! has come back empty [`QUIET_PULLS`] times in a row — or for at most
//! [`DRAIN_FOR`], after which senders have given up anyway.

use std::time::Duration;

use aegis_link::{ACCESS_PROTOCOL, GatewaySession, dial_addresses, peer_id_of};
use aegis_mix_packet::NodeId;
use tracing::{debug, info, warn};

use super::{ClientError, Driver, unix_ms};

/// Empty pulls in a row, once every contact has the new card, before the
/// old gateway is left.
pub(super) const QUIET_PULLS: u32 = 8;

/// Longest the old gateway is drained: as long as a sender keeps trying
/// (the outbox's default `give_up_after`).
pub(super) const DRAIN_FOR: Duration = Duration::from_secs(7 * 24 * 3600);

/// Pull ticks between attempts to reach the old gateway.
const RETRY_TICKS: u32 = 16;

/// The old gateway being drained.
pub(super) struct Drain {
    gateway: NodeId,
    session: Option<GatewaySession>,
    /// Ids of what the last pull brought, acknowledged by the next.
    ack: Vec<[u8; 8]>,
    quiet: u32,
    /// Pull ticks until the next attempt to connect.
    wait: u32,
}

impl Drain {
    pub(super) fn new(gateway: NodeId) -> Drain {
        Drain {
            gateway,
            session: None,
            ack: Vec::new(),
            quiet: 0,
            wait: 0,
        }
    }
}

impl Driver {
    /// The old gateway to drain, if the profile moved lately.
    pub(super) fn drain_to_start(&self) -> Option<Drain> {
        let (gateway, moved_ms) = self.profile.previous_gateway().ok()??;
        if unix_ms().saturating_sub(moved_ms) > DRAIN_FOR.as_millis() as u64 {
            let _ = self.profile.forget_previous_gateway();
            return None;
        }
        Some(Drain::new(gateway))
    }

    /// One pull of the old mailbox (called on the pull grid).
    pub(super) async fn drain(&mut self) {
        let Some(mut drain) = self.draining.take() else {
            return;
        };
        if drain.session.is_none() {
            if drain.wait > 0 {
                drain.wait -= 1;
                self.draining = Some(drain);
                return;
            }
            match self.attach_to(drain.gateway, None).await {
                Ok(session) => drain.session = Some(session),
                Err(error) => {
                    debug!(%error, "the old gateway is unreachable for now");
                    drain.wait = RETRY_TICKS;
                }
            }
        }
        if let Some(session) = drain.session.as_mut() {
            let ack = std::mem::take(&mut drain.ack);
            match session.pull(&ack).await {
                Ok(entries) => {
                    drain.quiet = if entries.is_empty() {
                        drain.quiet + 1
                    } else {
                        0
                    };
                    drain.ack = entries.iter().map(|e| e.id).collect();
                    let deliveries = entries.into_iter().map(|e| e.payload).collect();
                    let now = self.now();
                    self.endpoint.handle_drained(&mut self.rng, deliveries, now);
                }
                Err(_) => {
                    drain.session = None;
                    drain.ack = ack;
                }
            }
        }
        let everyone_knows = self.profile.card_known_by_all().unwrap_or(false);
        let expired = self
            .profile
            .previous_gateway()
            .ok()
            .flatten()
            .is_none_or(|(_, at)| unix_ms().saturating_sub(at) > DRAIN_FOR.as_millis() as u64);
        if (everyone_knows && drain.quiet >= QUIET_PULLS && drain.ack.is_empty()) || expired {
            info!("the old gateway is drained");
            if let Err(error) = self.profile.forget_previous_gateway() {
                warn!(%error, "forgetting the old gateway failed");
            }
            return;
        }
        self.draining = Some(drain);
    }

    /// Attaches to `gateway` (of the consensus, or at `address`) with our
    /// mailbox key.
    pub(super) async fn attach_to(
        &mut self,
        gateway: NodeId,
        address: Option<aegis_link::Multiaddr>,
    ) -> Result<GatewaySession, ClientError> {
        let topology = std::sync::Arc::clone(self.endpoint.topology());
        let entry = topology
            .node(&gateway)
            .ok_or_else(|| ClientError::Gateway("not in the consensus".into()))?;
        let peer = peer_id_of(&gateway.0)
            .ok_or_else(|| ClientError::Gateway("the gateway's identity is not a key".into()))?;
        let addresses = match address {
            Some(address) => vec![address],
            None => dial_addresses(&entry.addresses),
        };
        self.host.add_addresses(peer, addresses);
        let stream = self
            .host
            .open(peer, ACCESS_PROTOCOL)
            .await
            .map_err(|e| ClientError::Gateway(e.to_string()))?;
        GatewaySession::attach(
            stream,
            &gateway.0,
            &self.profile.mailbox_auth,
            self.geometry.frame_len(),
        )
        .await
        .map_err(|e| ClientError::Gateway(e.to_string()))
    }
}
