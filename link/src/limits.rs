//! Caps on inbound connections: per source address and in all.
//!
//! libp2p accepts every TCP connection it is offered. A stranger with a
//! script could open thousands, each costing a Noise handshake, buffers and
//! a file descriptor, before any of our protocols sees it. [`SourceLimited`]
//! wraps the host's behaviour and refuses a connection at once, before its
//! handshake, when its source address already has `per_source` connections
//! open or pending, or when `total` inbound connections are. Refusals are
//! counted (one number for the host; the address is not kept).

use std::collections::{HashMap, HashSet};
use std::net::IpAddr;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::task::{Context, Poll};

use libp2p::PeerId;
use libp2p::core::transport::PortUse;
use libp2p::core::{Endpoint, Multiaddr};
use libp2p::multiaddr::Protocol;
use libp2p::swarm::{
    ConnectionDenied, ConnectionId, FromSwarm, NetworkBehaviour, THandler, THandlerInEvent,
    THandlerOutEvent, ToSwarm,
};

/// Inbound connection caps.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct ConnectionLimits {
    /// Inbound connections one source address may hold (open or in
    /// handshake).
    pub per_source: usize,
    /// Inbound connections in all.
    pub total: usize,
}

impl ConnectionLimits {
    /// No caps (a client, which does not listen).
    pub const NONE: ConnectionLimits = ConnectionLimits {
        per_source: usize::MAX,
        total: usize::MAX,
    };
}

/// Why a connection was refused.
#[derive(Debug, thiserror::Error)]
#[error("inbound connection limit reached ({0})")]
pub struct LimitReached(&'static str);

/// Refusal counts, shared with whoever exports them.
#[derive(Debug, Default)]
pub struct Refusals {
    /// Refused because the source address held its share.
    pub per_source: AtomicU64,
    /// Refused because the host held its total.
    pub total: AtomicU64,
}

/// A behaviour with inbound connection caps in front of it.
pub struct SourceLimited<B> {
    inner: B,
    limits: ConnectionLimits,
    by_source: HashMap<IpAddr, HashSet<ConnectionId>>,
    source_of: HashMap<ConnectionId, IpAddr>,
    refusals: Arc<Refusals>,
}

impl<B> SourceLimited<B> {
    /// Wraps `inner` with `limits`; refusals are counted in `refusals`.
    pub fn new(inner: B, limits: ConnectionLimits, refusals: Arc<Refusals>) -> Self {
        SourceLimited {
            inner,
            limits,
            by_source: HashMap::new(),
            source_of: HashMap::new(),
            refusals,
        }
    }

    /// The wrapped behaviour.
    pub fn inner(&self) -> &B {
        &self.inner
    }

    /// Inbound connections held (open or in handshake).
    pub fn inbound(&self) -> usize {
        self.source_of.len()
    }

    fn admit(&mut self, id: ConnectionId, remote: &Multiaddr) -> Result<(), ConnectionDenied> {
        let Some(ip) = source_ip(remote) else {
            // Not an IP transport: only the total applies.
            return self.admit_total();
        };
        self.admit_total()?;
        let held = self.by_source.get(&ip).map_or(0, HashSet::len);
        if held >= self.limits.per_source {
            self.refusals.per_source.fetch_add(1, Ordering::Relaxed);
            return Err(ConnectionDenied::new(LimitReached("per source")));
        }
        self.by_source.entry(ip).or_default().insert(id);
        self.source_of.insert(id, ip);
        Ok(())
    }

    fn admit_total(&mut self) -> Result<(), ConnectionDenied> {
        if self.source_of.len() >= self.limits.total {
            self.refusals.total.fetch_add(1, Ordering::Relaxed);
            return Err(ConnectionDenied::new(LimitReached("total")));
        }
        Ok(())
    }

    fn forget(&mut self, id: ConnectionId) {
        if let Some(ip) = self.source_of.remove(&id)
            && let Some(held) = self.by_source.get_mut(&ip)
        {
            held.remove(&id);
            if held.is_empty() {
                self.by_source.remove(&ip);
            }
        }
    }
}

/// The IP address a multiaddr starts with, if any.
fn source_ip(addr: &Multiaddr) -> Option<IpAddr> {
    addr.iter().find_map(|p| match p {
        Protocol::Ip4(ip) => Some(IpAddr::V4(ip)),
        Protocol::Ip6(ip) => Some(IpAddr::V6(ip)),
        _ => None,
    })
}

impl<B: NetworkBehaviour> NetworkBehaviour for SourceLimited<B> {
    type ConnectionHandler = B::ConnectionHandler;
    type ToSwarm = B::ToSwarm;

    fn handle_pending_inbound_connection(
        &mut self,
        connection_id: ConnectionId,
        local_addr: &Multiaddr,
        remote_addr: &Multiaddr,
    ) -> Result<(), ConnectionDenied> {
        self.admit(connection_id, remote_addr)?;
        let result =
            self.inner
                .handle_pending_inbound_connection(connection_id, local_addr, remote_addr);
        if result.is_err() {
            self.forget(connection_id);
        }
        result
    }

    fn handle_established_inbound_connection(
        &mut self,
        connection_id: ConnectionId,
        peer: PeerId,
        local_addr: &Multiaddr,
        remote_addr: &Multiaddr,
    ) -> Result<THandler<Self>, ConnectionDenied> {
        let result = self.inner.handle_established_inbound_connection(
            connection_id,
            peer,
            local_addr,
            remote_addr,
        );
        if result.is_err() {
            self.forget(connection_id);
        }
        result
    }

    fn handle_pending_outbound_connection(
        &mut self,
        connection_id: ConnectionId,
        maybe_peer: Option<PeerId>,
        addresses: &[Multiaddr],
        effective_role: Endpoint,
    ) -> Result<Vec<Multiaddr>, ConnectionDenied> {
        self.inner.handle_pending_outbound_connection(
            connection_id,
            maybe_peer,
            addresses,
            effective_role,
        )
    }

    fn handle_established_outbound_connection(
        &mut self,
        connection_id: ConnectionId,
        peer: PeerId,
        addr: &Multiaddr,
        role_override: Endpoint,
        port_use: PortUse,
    ) -> Result<THandler<Self>, ConnectionDenied> {
        self.inner.handle_established_outbound_connection(
            connection_id,
            peer,
            addr,
            role_override,
            port_use,
        )
    }

    fn on_swarm_event(&mut self, event: FromSwarm) {
        match &event {
            FromSwarm::ConnectionClosed(closed) => self.forget(closed.connection_id),
            FromSwarm::ListenFailure(failure) => self.forget(failure.connection_id),
            _ => {}
        }
        self.inner.on_swarm_event(event);
    }

    fn on_connection_handler_event(
        &mut self,
        peer_id: PeerId,
        connection_id: ConnectionId,
        event: THandlerOutEvent<Self>,
    ) {
        self.inner
            .on_connection_handler_event(peer_id, connection_id, event);
    }

    fn poll(
        &mut self,
        cx: &mut Context<'_>,
    ) -> Poll<ToSwarm<Self::ToSwarm, THandlerInEvent<Self>>> {
        self.inner.poll(cx)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn addr(s: &str) -> Multiaddr {
        s.parse().unwrap()
    }

    #[test]
    fn each_source_gets_its_share_and_the_total_holds() {
        let refusals = Arc::new(Refusals::default());
        let mut limited = SourceLimited::new(
            (),
            ConnectionLimits {
                per_source: 2,
                total: 3,
            },
            refusals.clone(),
        );
        let a = addr("/ip4/192.0.2.1/tcp/40000");
        let b = addr("/ip6/2001:db8::1/tcp/40000");
        let ids: Vec<ConnectionId> = (1..=6).map(ConnectionId::new_unchecked).collect();
        assert!(limited.admit(ids[0], &a).is_ok());
        assert!(limited.admit(ids[1], &a).is_ok());
        assert!(
            limited.admit(ids[2], &a).is_err(),
            "a third from one source"
        );
        assert!(limited.admit(ids[3], &b).is_ok());
        assert!(limited.admit(ids[4], &b).is_err(), "past the total");
        assert_eq!(refusals.per_source.load(Ordering::Relaxed), 1);
        assert_eq!(refusals.total.load(Ordering::Relaxed), 1);
        // A closed connection frees its source's share.
        limited.forget(ids[0]);
        assert!(limited.admit(ids[5], &a).is_ok());
        assert_eq!(limited.inbound(), 3);
        limited.forget(ids[1]);
        limited.forget(ids[3]);
        limited.forget(ids[5]);
        assert!(limited.by_source.is_empty());
        assert_eq!(source_ip(&addr("/dns4/example.org/tcp/1")), None);
    }
}
