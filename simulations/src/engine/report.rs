//! What a run produced: the attacks' results and the traffic counts, put
//! together when the clock stops.

use super::*;

impl Sim<'_> {
    pub(super) fn finish(mut self, end: Duration) -> NetworkReport {
        let flow = self.flow_report();
        let faults = self.fault_report();
        let delivery = self.delivery_report();
        let access = self.access_report();
        for sda in [&mut self.sda, &mut self.relay_sda].into_iter().flatten() {
            sda.advance(end);
        }
        if let Some(attack) = &mut self.intersection {
            attack.advance(end, &self.online);
        }
        let bw = &mut self.bw;
        let client_packets = bw.real_sent + bw.loop_sent + bw.drop_sent + bw.ack_sent;
        bw.overhead = client_packets as f64 / bw.real_sent.max(1) as f64;
        bw.hops_per_delivered_message = bw.packet_hops as f64 / bw.real_delivered.max(1) as f64;
        let s = self.s;
        let b = match s.adversary.model {
            AdversaryModel::CorruptMixes => {
                (s.adversary.corrupt_fraction * s.topology.width as f64).round()
                    / s.topology.width as f64
            }
            _ => 0.0,
        };
        self.records.sort_by_key(|r| r.message);
        let anonymity = (s.adversary.targets > 0).then(|| AnonymityReport {
            chain_closed_form_bits: chain_closed_form(s, self.poisson),
            ..AnonymityReport::from_targets(
                &self.records,
                s.adversary.top_k,
                s.clients.count,
                b.powi(s.topology.layers as i32),
            )
        });
        NetworkReport {
            name: s.name.clone(),
            seed: s.seed,
            adversary: format!("{:?}", s.adversary.model),
            clients: s.clients.count,
            duration_secs: s.duration_secs,
            anonymity,
            targets: self.records,
            latency: self.hist.summary(),
            latency_cdf: self.hist.cdf(),
            bandwidth: self.bw,
            disclosure: self.sda.map(|a| a.curve().to_vec()).unwrap_or_default(),
            relay_disclosure: self.relay_sda.map(|a| a.curve().to_vec()),
            intersection: self
                .intersection
                .map(|a| a.curve().to_vec())
                .unwrap_or_default(),
            n_minus_one: self.attack.map(|a| NMinusOneReport {
                mix: a.mix as u32,
                layer: s.n_minus_one.layer,
                start_secs: a.start.as_secs_f64(),
                loop_rate: s.node_cover.loop_rate,
                deadline_secs: self.loop_deadline.as_secs_f64(),
                detected_after_secs: a.detected.map(|t| (t - a.start).as_secs_f64()),
                false_alarms: a.false_alarms,
                collateral_alarms: a.collateral_alarms,
                held_back: a.held_back,
            }),
            flow,
            faults,
            delivery,
            access,
            events: self.queue.processed(),
        }
    }
}
