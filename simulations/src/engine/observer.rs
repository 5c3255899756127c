//! What the observer keeps about each packet and each node: the tracking
//! views, the arrival classes that split a node's pools, and the closed form
//! a run is compared with.

use super::*;

/// The observer's knowledge of a packet's sender, as the tracking method keeps it.
#[derive(Debug)]
pub(super) enum View {
    /// Tracking is off.
    Untracked,
    /// A distribution carried with the packet ([`MixturePool`]).
    Dense(SenderDist),
    /// Where it came from, expanded at delivery ([`Lineage`]).
    Lineage(Source),
}

/// What the observer can tell about a packet held by a node: the class of
/// link it arrived on. At a gateway, packets from clients leave towards the
/// first layer and packets from the last layer leave towards mailboxes, so an
/// observer of every link never confuses the two; each class is its own pool.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(super) enum Arrival {
    FromClient = 0,
    FromNode = 1,
}

/// The lineage pool of `node`'s arrivals of `class`.
pub(super) fn pool_id(node: usize, class: Arrival) -> usize {
    2 * node + class as usize
}

impl Arrival {
    pub(super) fn of_hop(hop: u8) -> Self {
        if hop == 0 {
            Arrival::FromClient
        } else {
            Arrival::FromNode
        }
    }
}

impl Node {
    pub(super) fn pool(&mut self, class: Arrival, senders: usize) -> Option<&mut MixturePool> {
        if !self.pooled {
            return None;
        }
        Some(self.pools[class as usize].get_or_insert_with(|| MixturePool::new(senders)))
    }
}

/// Hops of a client's route that delay its packets: the mixes, and the two
/// gateways when they delay.
fn delaying_hops(s: &NetworkScenario) -> Option<u32> {
    let gateways = if s.mixing.gateways_delay { 2 } else { 0 };
    u32::try_from(s.topology.layers + gateways).ok()
}

/// The chain closed form for `s` ([`crate::theory::chain_entropy_bits`]):
/// the clients' whole packet rate through every delaying hop. Only for
/// Poisson mixing seen by the global passive observer.
pub(super) fn chain_closed_form(s: &NetworkScenario, poisson: bool) -> Option<f64> {
    if !poisson || s.adversary.model != AdversaryModel::GlobalPassive {
        return None;
    }
    let per_client = s.shaping.client_rate(s.clients.rate);
    let hops = delaying_hops(s)?;
    let lambda = per_client * s.clients.count as f64;
    (lambda > 0.0).then(|| crate::theory::chain_entropy_bits(lambda, s.mixing.mu, hops))
}

impl Sim<'_> {
    /// The observer's guess about a delivered packet's sender, and the mass
    /// the tracking could not attribute.
    pub(super) fn judge(&self, p: &Packet) -> Option<(GuessSummary, f64)> {
        let k = self.s.adversary.top_k;
        match &p.view {
            View::Untracked => None,
            View::Dense(dist) => {
                let probs = dist.to_dense(self.s.clients.count);
                Some((GuessSummary::of_dense(&probs, p.sender as usize, k), 0.0))
            }
            View::Lineage(source) => {
                let m = self.lineage.as_ref()?.senders(*source);
                let truth = m.mass.get(&p.sender).copied().unwrap_or(0.0);
                let guess = GuessSummary::from_probs(m.mass.values().copied(), truth, k);
                Some((guess, m.lost))
            }
        }
    }

    /// Scores the conversations' flows (`crate::flow`) with the delay model
    /// the adversary knows from the published parameters: Gamma(k, 1/μ)
    /// over the delaying hops after every link's mean latency.
    pub(super) fn flow_report(&self) -> Option<FlowReport> {
        let (flow, _) = self.flow.as_ref()?;
        let s = self.s;
        let hops = delaying_hops(s)?;
        let links = self.topo.route_len() as f64;
        let shift = links * (self.latency.as_secs_f64() + self.jitter / 2.0);
        let kernel = DelayKernel::gamma(hops, s.mixing.mu, shift);
        let lengths = s.flow.lengths(s.duration_secs);
        let alpha = s.flow.false_positive_rate;
        let slots = match s.shaping {
            ShapingSpec::Poisson { payload_rate, .. } => Slots::Poisson(payload_rate),
            ShapingSpec::None => Slots::AtOnce,
            ShapingSpec::Constant { .. } => Slots::Other,
        };
        Some(FlowReport {
            pairs: s.flow.pairs,
            negatives: flow.negatives(),
            false_positive_rate: alpha,
            hops,
            shift_secs: shift,
            points: flow.evaluate(&kernel, &lengths, alpha, slots),
        })
    }
}
